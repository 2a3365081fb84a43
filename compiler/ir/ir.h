/* The symbolic IR: one hash-consed expression DAG per model. Every node is a
 * pure function of its operands, so equal (op, attributes, operands) are built
 * once and shared: CSE for free. Constructors simplify as they build (constant
 * folding, x*1, x+0, x*0, --x ...), so every later pass sees simplified IR.
 *
 * Shapes are static: rank 0 (scalar), 1 (vector [rows]), 2 (matrix [rows, cols]),
 * or 3 and 4 (tensors: an image [C, H, W], a filter bank [Cout, Cin, kh, kw]), data
 * row-major. A tensor is also a matrix of its first dimension by the product of the
 * rest (rows, cols), so elementwise ops, sums and copies treat every rank alike. Constructors assume valid shapes: sema checks them and reports
 * errors with locations before building; a violated assumption is an internal
 * error, not a user error. */
#ifndef NODEC_IR_H
#define NODEC_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"

typedef enum IrOp {
#define X(name, arity, print, cls) IR_##name,
#include "ir_ops.def"
#undef X
    IR_OP_COUNT
} IrOp;

typedef enum IrOpClass { IR_LEAF, IR_UNARY, IR_BINARY, IR_OTHER } IrOpClass;

enum { IR_MAX_RANK = 4 };

typedef struct IrShape {
    int rank;       /* 0 .. IR_MAX_RANK */
    int rows, cols; /* scalar 1x1; vector [n] is n x 1; matrix [m,n] is m x n; a tensor
                       [d0, d1, ...] is d0 x (d1 * ...) */
    int dim[IR_MAX_RANK]; /* rank >= 3: every dimension (read any rank's with ir_shape_dim) */
} IrShape;

/* Node flags. */
enum {
    IR_BATCHED = 1u << 0, /* depends on per-sample data (a state): differs across the batch */
    IR_TIMED = 1u << 1,   /* depends on t */
};

typedef struct IrNode {
    IrOp op;
    IrShape shape;
    unsigned flags;
    int id;              /* creation order: operands always have smaller ids */
    int nargs;
    struct IrNode **args;
    double *value;       /* IR_CONST: shape size values */
    int slot, offset;    /* IR_STATE, IR_PARAM */
    int attr[4];         /* IR_SLICE, IR_PAD: first row, first col; the window ops
                            (IM2COL ... MAXPOOL_T): kh, kw, stride, pad; SUMAXIS,
                            BROADCAST: the axis */
    uint64_t hash;
    struct IrNode *next_in_bucket;
} IrNode;

typedef struct IrBuilder IrBuilder;

IrBuilder *ir_builder_new(Arena *arena);
int ir_node_count(const IrBuilder *b);
/* The arena the builder's nodes live in: derived passes allocate what lives as
 * long as the IR there (IrModel's adj_state, adj_param). */
Arena *ir_builder_arena(const IrBuilder *b);

/* The most elements one value (and one model's states, or its parameters, together) may
 * have: 2^28 doubles, 2 GiB. Sizes and offsets in the IR are int; this bound keeps every
 * sum and product of them far from overflow. The checker refuses anything larger with a
 * located message before a shape is built; the constructors treat it as an internal error. */
enum { IR_MAX_ELEMENTS = 1 << 28 };

/* Shapes */
IrShape ir_scalar_shape(void);
IrShape ir_vector_shape(int n);
IrShape ir_matrix_shape(int m, int n);
/* Any rank from its dimensions: rank <= 2 gives the scalar, vector and matrix shapes. */
IrShape ir_tensor_shape(int rank, const int *dims);
int ir_shape_dim(IrShape s, int i); /* dimension i < rank */
int ir_shape_size(IrShape s);
bool ir_shape_eq(IrShape a, IrShape b);
/* "scalar", "[3]", "[2, 2]", "[16, 8, 8]" into buf (at least 32 bytes); returns buf */
const char *ir_shape_str(IrShape s, char *buf);

/* Leaves */
IrNode *ir_const(IrBuilder *b, IrShape shape, const double *values);
IrNode *ir_scalar(IrBuilder *b, double v);
IrNode *ir_fill(IrBuilder *b, IrShape shape, double v); /* zeros, ones */
IrNode *ir_time(IrBuilder *b);
IrNode *ir_state(IrBuilder *b, int slot, int offset, IrShape shape);
IrNode *ir_param(IrBuilder *b, int slot, int offset, IrShape shape);
IrNode *ir_adjoint(IrBuilder *b, int slot, int offset, IrShape shape); /* batched */
IrNode *ir_data(IrBuilder *b, int slot, int offset, IrShape shape);    /* batched */
/* A shared state and its cotangent (docs/language.md, "Shared states"): one
 * copy per batch, offset into the shared block (at y + B*ny, nd_kernels.h), so
 * not batched; attr[0] = 1 tells them from the per-sample leaves. */
IrNode *ir_shared_state(IrBuilder *b, int slot, int offset, IrShape shape);
IrNode *ir_shared_adjoint(IrBuilder *b, int slot, int offset, IrShape shape);
bool ir_is_shared(const IrNode *n);

/* Operations (shapes as in ir_ops.def) */
IrNode *ir_unary(IrBuilder *b, IrOp op, IrNode *x);
IrNode *ir_binary(IrBuilder *b, IrOp op, IrNode *x, IrNode *y);
IrNode *ir_where(IrBuilder *b, IrNode *c, IrNode *x, IrNode *y);
IrNode *ir_matmul(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_transpose(IrBuilder *b, IrNode *x);
IrNode *ir_outer(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_sum(IrBuilder *b, IrNode *x);
IrNode *ir_reduce_max(IrBuilder *b, IrNode *x); /* all elements -> the largest */
IrNode *ir_argmax(IrBuilder *b, IrNode *x);     /* all elements -> its row-major index */
IrNode *ir_slice(IrBuilder *b, IrNode *x, int row0, int col0, IrShape shape);
IrNode *ir_pad(IrBuilder *b, IrNode *x, int row0, int col0, IrShape shape);
IrNode *ir_concat(IrBuilder *b, int n, IrNode **args);
IrNode *ir_stack(IrBuilder *b, int n, IrNode **args);

/* Tensor ops (ir_tensor.c; docs/language.md, "Tensors"). A window is kh x kw at
 * stride, over an image zero-padded by pad on every side: an [H, W] plane has
 * Ho = (H + 2 pad - kh) / stride + 1 rows of windows (rounded down), Wo likewise. */
IrNode *ir_reshape(IrBuilder *b, IrNode *x, IrShape shape); /* the same elements, row-major */
IrNode *ir_im2col(IrBuilder *b, IrNode *x, int kh, int kw, int stride, int pad);
IrNode *ir_col2im(IrBuilder *b, IrNode *cols, IrShape image, int kh, int kw, int stride, int pad);
IrNode *ir_avg_pool(IrBuilder *b, IrNode *x, int kh, int kw, int stride);
IrNode *ir_avg_pool_t(IrBuilder *b, IrNode *g, IrShape image, int kh, int kw, int stride);
IrNode *ir_max_pool(IrBuilder *b, IrNode *x, IrNode *u, int kh, int kw, int stride);
IrNode *ir_max_pool_t(IrBuilder *b, IrNode *x, IrNode *v, int kh, int kw, int stride);
IrNode *ir_sum_axis(IrBuilder *b, IrNode *x, int axis);
IrNode *ir_broadcast_axis(IrBuilder *b, IrNode *x, int axis, int n);
/* The output plane of a window op: Ho, Wo as above (0 when no window fits). */
int ir_window_count(int size, int k, int stride, int pad);
/* A window op's geometry: image [C, H, W] (the operand's, or COL2IM's and
 * AVGPOOL_T's own shape), kh x kw windows at stride s over padding p, the
 * plane [Ho, Wo]. */
typedef struct IrWindow {
    int C, H, W, kh, kw, s, p, Ho, Wo;
} IrWindow;
IrWindow ir_window_of(const IrNode *n);
/* A SUMAXIS operand's (or a BROADCAST result's) layout as [outer, n, inner] around axis. */
void ir_axis_split(IrShape s, int axis, int *outer, int *n, int *inner);

/* Helpers built from the above */
IrNode *ir_add(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_sub(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_mul(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_div(IrBuilder *b, IrNode *x, IrNode *y);
IrNode *ir_neg(IrBuilder *b, IrNode *x);
IrNode *ir_element(IrBuilder *b, IrNode *x, int row, int col); /* scalar element */

bool ir_is_const(const IrNode *n);
/* True when n is a constant whose every element equals v. */
bool ir_is_const_value(const IrNode *n, double v);

const char *ir_op_name(IrOp op);
IrOpClass ir_op_class(IrOp op);
/* A binary op written as a call, max(a, b), not infix. */
bool ir_op_is_call(IrOp op);

/* Where a node was written, for the nodes sema records (those with no useful
 * derivative: floor, argmax), so that compiler/diff's report of one can point
 * at the source. The first place recorded wins; NULL when none was. */
void ir_set_origin(IrBuilder *b, const IrNode *n, SrcLoc loc);
const SrcLoc *ir_origin(const IrBuilder *b, const IrNode *n);

/* ---- models: what sema produces and codegen, eval and the runtime consume ---- */

typedef enum IrInitKind {
    IR_INIT_NONE,    /* state: no default (a solve must give one); param: zeros */
    IR_INIT_EXPR,    /* init expression (states may use params; params are constant) */
    IR_INIT_NORMAL,  /* ~ normal(a, b): mean a, standard deviation b */
    IR_INIT_UNIFORM, /* ~ uniform(a, b) */
    IR_INIT_GLOROT,  /* ~ glorot: uniform(+-sqrt(6 / (fan_in + fan_out))) */
    IR_INIT_RADEMACHER, /* +-1 with probability 1/2 each (div_est's noise states) */
} IrInitKind;

typedef struct IrVar {
    const char *name;   /* "x", "f.l1.W" (dotted through nets) */
    SrcLoc loc;
    IrShape shape;
    int offset;         /* into one sample's y (states) or into p (params); a shared
                           state's into the shared block */
    bool shared;        /* a state integrated once per batch (IrModel.ns) */
    IrInitKind init_kind; /* a state with NORMAL or RADEMACHER is drawn at every solve */
    IrNode *init;       /* IR_INIT_EXPR (a drawn state also holds zeros here) */
    double dist_a, dist_b;
    int velocity_of;    /* a second-order state's velocity "dx/dt": the slot of its
                           position x, plus 1; 0 for every other state and for params */
} IrVar;

typedef struct IrModel {
    const char *name;
    SrcLoc loc;
    IrVar *states;
    int n_states, ny;   /* ny: total state elements per sample */
    /* A directive's copy of a model with shared states (sema_shared.c): ns
     * elements in the shared block, and the program's model it was made from
     * (its parameters, its per-copy layout for output). 0 and NULL otherwise. */
    int ns;
    const struct IrModel *origin;
    IrVar *params;
    int n_params, np;   /* np: total parameter elements */
    IrNode **rhs;       /* rhs[i]: d(states[i])/dt, shaped like states[i]; for an SDE
                           `dx = f dt + g dW`, the drift f */
    /* An SDE model (docs/language.md, "Stochastic differential equations"):
     * diffusion[i] is the g of state i's `dx = f dt + g dW`, shaped like
     * states[i] (diagonal noise), NULL for a state with dx/dt = ...;
     * diffusion itself is NULL for an ODE model. */
    IrNode **diffusion;
    /* Milstein's correction per state, g_i * dg_i/dx_i elementwise (each
     * element of g by its own state element), built on demand by
     * diff_model_diffusion_dx; NULL until then. */
    IrNode **diffusion_dx;
    /* Derived systems, built on demand by compiler/diff (NULL until then). */
    IrNode **adj_state; /* adj_state[i] = a^T df/d(states[i]), shaped like states[i] */
    IrNode **adj_param; /* adj_param[j] = a^T df/d(params[j]) for one sample */
    /* With shared states (ns > 0) adj_state and adj_param hold the per-sample
     * rhs's terms only (a kernel sums them over the batch for a shared state
     * or a parameter), and adj_once[k] (k over the states, then the params) the
     * shared rhs's own a_s^T df_s/d(...), unbatched, counted once. */
    IrNode **adj_once;
    const IrNode *adj_blocked; /* the first floor or argmax adj_state/adj_param differentiate
                                  through (diff_vjp_blocked), NULL for none */
    IrNode *jac;        /* df/dy: [ny, ny], row i = d(rhs element i)/dy */
    /* With shared states (ns > 0), jac is the per-sample rows' d/d(per-sample
     * states) and the bordered rest (nd_kernels.h): jac_border [ny, ns] their
     * d/d(shared states), jac_shared [ns, ns] the shared rows' (unbatched). */
    IrNode *jac_border, *jac_shared;
    IrNode **adj_init;  /* adj_init[j * n_states + i] = a_i^T d(init of states[i])/d(params[j])
                           at t0, NULL where the initial value does not read params[j] */
    struct IrEvent *events; /* the model's `when` blocks, in declaration order */
    int n_events;
} IrModel;

/* State i's leaf and its cotangent's, shared or per sample as m says. */
IrNode *ir_model_state(IrBuilder *b, const IrModel *m, int i);
IrNode *ir_model_adjoint(IrBuilder *b, const IrModel *m, int i);

/* roots rebuilt with leaves replaced: out[i] is roots[i] with every leaf L for
 * which leaf(ctx, L) returns non-NULL replaced by it, through the
 * constructors (so simplified and hash-consed). */
typedef IrNode *(*IrLeafMap)(void *ctx, IrBuilder *b, const IrNode *leaf);
void ir_rebuild(IrBuilder *b, int n, IrNode *const *roots, IrLeafMap leaf, void *ctx,
                IrNode **out);

/* An event (`when A < B { ... }`): the runtime's NdEvent (nd_kernels.h). */
typedef struct IrEvent {
    SrcLoc loc;         /* the `when` */
    IrNode *cond;       /* g = A - B, a scalar per sample */
    int direction;      /* -1 for `<` (g falls through 0), +1 for `>` */
    int terminate;
    IrNode **reset;     /* per state: its value after the event, NULL for unchanged */
} IrEvent;

/* Whether no right-hand side of m reads t (rodas4 then skips df/dt). */
bool ir_model_autonomous(const IrModel *m);
/* 1 when every state of m is half of a second-order pair laid out as sema
 * lowers them: the positions first, then their velocities in the same order,
 * so one sample's y is [x; dx/dt] with halves of ny/2 (NdKernels.second_order). */
int ir_model_second_order(const IrModel *m);

/* Evaluation by interpretation, for one sample: t, that sample's y, and p.
 * Used for constants, initial values, and as the independent reference the JIT
 * is tested against. outs[i] receives roots[i]'s shape-size values. */
void ir_eval(int n, IrNode *const *roots, double t, const double *y, const double *p,
             double *const *outs);
double ir_eval_scalar(IrNode *root); /* a constant-valued scalar */

/* Everything a node may read, for the general evaluator: a (cotangents, laid out
 * like y) and d (one sample's data) may be NULL when the roots do not use them. */
typedef struct IrEnv {
    double t;
    const double *y, *p, *a, *d;
} IrEnv;
void ir_eval_env(int n, IrNode *const *roots, const IrEnv *env, double *const *outs);
/* One node's values from its operands' values (args[i]: n->args[i]'s values),
 * into out (n's shape size). The interpreter's kernel, shared with constant
 * folding so that the two cannot disagree; n's operands are only read for
 * their shapes. Leaves other than IR_CONST have no operands to compute from. */
void ir_eval_op(const IrNode *n, const double *const *args, double *out);

/* Printing. ir_print_expr writes infix math ("2 * x * t"), naming leaves by
 * the model's variables when m is non-NULL. ir_dump_model writes the SSA-style
 * listing of --dump=ir: one numbered line per node reachable from the rhs. */
void ir_print_expr(FILE *out, const IrNode *n, const IrModel *m);
void ir_dump_model(FILE *out, const IrModel *m);
/* The same listing for any roots (m names the leaves; may be NULL): the nodes
 * reachable from each root that were not listed yet, then "labels[i] = %id". */
void ir_dump_roots(FILE *out, const IrModel *m, int n, const char *const *labels,
                   IrNode *const *roots);

/* Printing several expressions that share subexpressions (nodec adjoint):
 * ir_names_new picks the nodes to name once (used twice and more than an op
 * on leaves, or nested too deeply to print), ir_names_print_defs writes one
 * "where s1 = ..." line per name, operands first, and ir_names_print writes an
 * expression using the names. The names live in arena; every printed node
 * must be reachable from roots. */
typedef struct IrNames IrNames;
IrNames *ir_names_new(Arena *arena, const IrModel *m, int n, IrNode *const *roots);
void ir_names_print_defs(FILE *out, IrNames *nm, const char *indent);
void ir_names_print(FILE *out, IrNames *nm, const IrNode *n);
bool ir_names_atom(const IrNames *nm, const IrNode *n); /* a leaf or a name */

/* All nodes reachable from roots, operands before users (the order codegen
 * emits them in). Returns the count; *order is arena-allocated. */
int ir_topo_order(Arena *arena, int n, IrNode *const *roots, IrNode ***order);
/* Rewrites roots[0..n) (NULL entries skipped) in place with every occurrence of
 * from replaced by to (same shape): the clock state standing for t. */
void ir_replace(IrBuilder *b, int n, IrNode **roots, const IrNode *from, IrNode *to);

#endif
