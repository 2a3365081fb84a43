/* The kernel planner both back ends consume (compiler/llvm/llvm_codegen.c,
 * compiler/c/c_codegen.c): a kernel is a list of outputs (PlanKernelSpec); the
 * planner orders their nodes (ir_topo_order) and gives each node a home — a
 * register, an input or output in place, a constant, a view, a work buffer, or
 * nothing when it is computed inside its reader's loop. Where the JIT and the C
 * back end decide differently, the difference is a PlanOptions field, so the
 * rules themselves are written once. Arrows: plan reads ir; llvm and c read plan. */
#ifndef NODEC_PLAN_H
#define NODEC_PLAN_H

#include <stdbool.h>

#include "arena.h"
#include "ir.h"

/* One output of a kernel (signature NdKernelFn): a node's values written into
 * out0 or out1 at `offset` within each sample's `stride` doubles
 * (out[b * stride + offset + k]), or, with batch_sum, the sum over the batch
 * into out[offset + k]. dst 2 is out0 + B*ny + ns (the model's ny and ns): a
 * second block laid out like y after a first one, as the JIT's fused rhs_vjp
 * kernel writes. A shared output is in the shared block of a state-shaped
 * destination (nd_kernels.h), at out[B*ny + offset + k], written once: an
 * unbatched node, or a batch_sum. An `add` output (unbatched, shared or into
 * out1) adds its node to what an earlier output of the kernel wrote there: a
 * shared state's gradient is the per-sample terms' batch sum plus the shared
 * rhs's own term. */
typedef struct PlanOutput {
    IrNode *node;
    /* 0: out0, 1: out1, 2: out0 + B*ny + ns; the bordered jac's (nd_kernels.h)
     * 3: out0 + B*ny*ny, 4: out0 + B*ny*(ny + ns). Stride 0 with an unbatched
     * node outside a batch sum: written once. */
    int dst;
    int offset;
    int stride;
    int batch_sum;
    bool shared;
    bool add;
} PlanOutput;

typedef struct PlanKernelSpec {
    const char *name; /* symbol suffix: "<model>_<name>" */
    int n_outputs;
    PlanOutput *outputs;
    int nd; /* doubles per sample in d; 0: the largest offset + size of the DATA leaves read */
} PlanKernelSpec;

/* A model's own kernels, in arena: the rhs (each state's rhs into dydt at its
 * offset, stride ny), the vjp (a^T df/dy per sample into out0 laid out like y,
 * a^T df/dp summed over the batch into out1 laid out like p; needs
 * diff_model_adjoint) and the jac ([ny, ny] per sample into out0; needs
 * diff_model_jacobian). */
PlanKernelSpec plan_spec_rhs(Arena *arena, const IrModel *m);
PlanKernelSpec plan_spec_vjp(Arena *arena, const IrModel *m);
PlanKernelSpec plan_spec_jac(Arena *arena, const IrModel *m);

/* Where a node's values live. */
typedef enum PlanKind {
    PLAN_PENDING, /* a computed node not yet given storage */
    PLAN_REG,     /* a scalar in a register or local (PlanOptions.sample_locals says which) */
    PLAN_INPUT,   /* STATE: y + offset, ADJOINT: a + offset (stride ny); DATA: d + offset (stride nd) */
    PLAN_PARAM,   /* p + offset */
    PLAN_CONST,   /* a constant table */
    PLAN_VIEW,    /* a contiguous slice or a reshape: elements off.. of its operand's storage */
    PLAN_FIXED,   /* work block at off: computed once per call */
    PLAN_SAMPLE,  /* per-sample work block at off (the JIT: work_fixed + B*off, sample-major) */
    PLAN_OUT,     /* an output's node written straight into its output (offset off, its stride) */
    PLAN_FUSED,   /* an OUTER only summed over the batch: never stored, its sum is one product */
    PLAN_INLINE,  /* an elementwise node with one elementwise reader: computed in that reader's loop */
} PlanKind;

typedef struct PlanNode {
    PlanKind kind;
    long off;     /* FIXED/SAMPLE: buffer offset; VIEW: element offset; OUT: output offset */
    int out;      /* OUT, FUSED: index of the output it is; else -1 */
    int owner;    /* topo index of the node whose storage holds this one */
    int last_use; /* topo index of the last reader of the owner's storage (reuse_work) */
    int block;    /* FIXED/SAMPLE: pool block index */
} PlanNode;

/* The measured crossover (bench_rhs, docs/codegen.md): a cblas call costs
 * 35-70 ns, and inline loops whose reduction is shorter than 16 are fully
 * unrolled and vectorised across rows; from a reduction of 16 on, BLAS wins
 * once a call has ~512 multiply-adds. One dgemm over a whole batch (the JIT's
 * stacked form) also wins with a reduction of 8 to 15 once it has 4096
 * multiply-adds (0.6-0.8x the inline time at B >= 64 for W[8,8]); per-sample
 * calls with so short a reduction never do. */
#define PLAN_BLAS_MIN_FLOPS 512.0
#define PLAN_BLAS_MIN_INNER 16
#define PLAN_BLAS_STACKED_SHORT_INNER 8
#define PLAN_BLAS_STACKED_SHORT_FLOPS 4096.0

/* Which products a kernel's code hands to BLAS: at least min_flops
 * multiply-adds in one call and a reduction of at least min_inner. */
typedef struct PlanBlasRule {
    double min_flops;
    int min_inner;
} PlanBlasRule;

/* A matmul as C[m,k] = A[m,inner] B[inner,k]: a vector on the left is [1,n],
 * on the right [n,1] (ir_eval.c's reading). */
typedef struct PlanMatDims {
    int m, inner, k;
} PlanMatDims;

PlanMatDims plan_mat_dims(const IrNode *matmul);
/* Whether one call of d's product pays for BLAS under rule r. */
bool plan_blas_pays(const PlanBlasRule *r, PlanMatDims d);

/* What the back ends' code is made of decides some homes. The JIT writes each
 * node as a loop over the whole batch (B known only at run time), its scalars
 * SSA values computed once outside the loops; the C back end writes one loop
 * over the samples with each node's elements a C expression, so a local is
 * read by name anywhere. */
typedef struct PlanOptions {
    /* Every one-element node is a local (PLAN_REG), batched or not, whatever its
     * op: inside the C back end's sample loop a batched scalar is one double.
     * Off (the JIT): only unbatched rank-0 elementwise nodes are registers; a
     * batched scalar needs B doubles. */
    bool sample_locals;
    /* A local is an expression like any other: it may be computed inside its
     * reader (inlined), an inlined node may be read by a local, and a local may be
     * sliced as a view (C). Off (the JIT): a register is computed once, before
     * the loops, and has no address. */
    bool expr_locals;
    /* Keep a costly elementwise loop (tanh, exp) one flat loop over the batch:
     * do not inline into it a node that reads an unbatched vector (the JIT's
     * map_is_flat, llvm_emit.c). */
    bool flat_costly;
    /* Reuse a work block once its last reader is done (the JIT's pools).
     * Off (C): each buffer its own range, in node order. */
    bool reuse_work;
    /* The products' rule, read by the emitters (the planner gives a product a
     * home whatever path it takes). */
    PlanBlasRule blas;
} PlanOptions;

/* A first-fit pool of work buffers (the fixed or the per-sample region). */
typedef struct PlanBlock {
    long off, size;
    bool busy;
} PlanBlock;

typedef struct PlanPool {
    PlanBlock *blk;
    int n;
    long total; /* doubles: the region's size */
} PlanPool;

/* One kernel's plan; every array is in the arena given to plan_order. */
typedef struct Plan {
    PlanOptions opt;
    int n_outputs;
    const PlanOutput *outputs;
    int count;       /* nodes, in topological order: */
    IrNode **order;
    int *index;      /* topo index by node id */
    int *uses;       /* readers of each node: operand slots and outputs */
    int *user;       /* the last node reading each node, -1 for none */
    PlanNode *node;  /* each node's home (plan_nodes) */
    PlanPool fixed, sample;
} Plan;

/* Orders the nodes the n outputs read (ir_topo_order) and counts their readers. */
void plan_order(Plan *p, Arena *arena, int n_outputs, const PlanOutput *outputs);

/* What a plan relies on, checked before planning: every output has a node
 * and lies inside its destination (dst at most max_dst), the rhs (rhs set)
 * reads no cotangent or data leaf, no DATA leaf beyond nd. Returns NULL and
 * sets *nd_out to d's stride (nd, or 0: the largest offset + size of the DATA
 * leaves), or what is wrong. */
const char *plan_check(const Plan *p, bool rhs, int max_dst, int nd, int *nd_out);

/* Gives every node of an ordered plan its home, under opt. */
void plan_nodes(Plan *p, Arena *arena, const PlanOptions *opt);

/* n's index in the plan's topological order. */
int plan_index(const Plan *p, const IrNode *n);

bool plan_is_batched(const IrNode *n);
bool plan_is_elementwise(IrOp op);

#endif
