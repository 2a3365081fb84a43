/* Private to the checker (sema.c, sema_expr.c, sema_directive.c): the value an
 * expression lowers to, scopes of names, and the state of one check. Values are
 * IR nodes, or functions and net instances passed around by name (`act`), or an
 * error sentinel so that one mistake gives one message. */
#ifndef NODEC_SEMA_INTERNAL_H
#define NODEC_SEMA_INTERNAL_H

#include "sema.h"

typedef enum ValKind {
    V_ERR,     /* an error was already reported: propagate silently */
    V_NODE,    /* a tensor: node */
    V_FN,      /* a user fn: fn (AST_FN) */
    V_BUILTIN, /* a builtin function by name: builtin */
    V_NET,     /* a net instance: net */
} ValKind;

typedef struct NetInst NetInst;

typedef struct Val {
    ValKind kind;
    IrNode *node;
    const Ast *fn;
    struct Scope *home; /* V_FN: the scope the fn was declared in (its file's names) */
    const char *builtin;
    NetInst *net;
} Val;

typedef enum BindKind {
    B_STATE, B_PARAM, B_CONST, B_LET, B_LET_PENDING, B_ARG, B_NET, /* values */
    B_FN, B_TEMPLATE, B_MODEL,                                   /* global declarations */
} BindKind;

typedef struct Binding {
    const char *name;
    BindKind kind;
    struct Scope *home; /* the scope it was declared in */
    SrcLoc loc;     /* of the declaring name */
    Val val;
    const Ast *ast; /* the declaration */
} Binding;

typedef struct Scope {
    struct Scope *parent;
    Binding *items;
    int n, cap;
    /* Past a few names, an open-addressed table of item index + 1 by the
     * interned name's address, so a model of 100 000 states checks in linear
     * time (sema.c); NULL while the scope is small. */
    int *index;
    int index_cap; /* a power of two, at least twice n */
} Scope;

/* A net instance: its template and the scope holding its arguments, params,
 * sub-nets and lets (the forward expression is lowered in a child of it). */
struct NetInst {
    const Ast *tmpl;
    Scope *scope;
    const char *prefix; /* "f.l1." */
};

/* What an expression may depend on where it is being lowered. ALLOW_DATA (a data
 * set's fields, `obs.y`) is outside ALLOW_ALL: only train blocks add it. */
enum { ALLOW_STATE = 1, ALLOW_PARAM = 2, ALLOW_TIME = 4, ALLOW_ALL = 7, ALLOW_DATA = 8 };

typedef struct ModelInfo {
    IrModel *model;
    Scope *scope;
    const Ast *ast;
    bool broken; /* its own check reported errors: directives check against it, build nothing on it */
} ModelInfo;

enum { SEMA_MAX_DEPTH = 64 };
/* Bodies one outermost fn call may inline: f(f(x)) nested 16 deep is 65536
 * bodies and as many IR nodes for the back ends, from a few lines of source
 * (minutes of LLVM); an outermost call of a real model inlines a few dozen. */
enum { SEMA_MAX_INLINED = 10000 };

/* A state whose equation div() is lowering on demand (sema_expr.c). */
typedef struct DivFrame {
    const IrModel *model;
    int slot;
} DivFrame;

/* The noise of a div_est() of the model being built, a hidden state (sema_expr.c). */
typedef struct Hidden {
    int of;          /* the slot of x */
    IrInitKind kind; /* IR_INIT_NORMAL or IR_INIT_RADEMACHER */
    IrVar var;
} Hidden;

typedef struct Sema {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag *diag;
    Scope *global;
    /* what the expression being lowered may use, and how to name it in errors */
    unsigned allow;
    const char *context; /* "a constant expression", "an initial value" */
    /* the model being built (params are appended by nets too) */
    IrModel *model;
    int params_cap;
    /* fns and net templates being inlined / instantiated: recursion detection */
    const Ast *stack[SEMA_MAX_DEPTH];
    int depth;
    PtrVec broken; /* fns whose body already reported an error */
    /* Inlined fn calls by (fn, arguments): a call seen before reuses its IR,
     * so `f(x) + f(x)` nested n deep costs n inlinings, not 2^n (sema_expr.c);
     * inlined counts the bodies under the outermost call, which is bounded. */
    struct FnMemo **memo;
    int memo_n, memo_cap;
    int inlined;
    ModelInfo *models;
    int n_models;
    /* inside a train block (else NULL): its model, for `dx/dt`, and its data set,
     * for `obs.y` (sema_train.c sets them around each expression) */
    const IrModel *train_model;
    const SemaData *train_data;
    /* the train block whose `sample z ~ normal(..)` values are read by name in
       sample_scope (the model's scope; a net's or fn's body does not see them:
       sema_sample.c); NULL outside one */
    Scope *sample_scope;
    const SemaTrain *sample_train;
    /* data sets declared so far, in order (SemaData *), for `data = obs` */
    PtrVec datasets;
    /* the user's file: its `data` directives name data sets before they are checked,
     * so a model that reads one is told where data can be read */
    const Ast *program;
    /* SemaInput's: which stdlib module declares a name (sema_module_of) */
    const char *(*module_of)(void *ctx, const char *name);
    void *module_ctx;
    /* div(x) of states whose equations are being lowered on demand, innermost
     * last, to find cycles; what the outermost div() reports when one fails */
    struct {
        DivFrame stack[SEMA_MAX_DEPTH];
        int depth;
        int cycle;        /* a cycle was found under the outermost div() */
        char reason[200]; /* the first error of the failed equation, for the note */
    } div;
    /* One per (state, noise kind) of the model being built; the bound is the
     * number of states a model could reasonably estimate divergences of. */
    Hidden hidden[SEMA_MAX_DEPTH];
    int n_hidden;
} Sema;

/* ---- sema.c ---- */
Scope *scope_new(Sema *S, Scope *parent);
Binding *scope_find_local(Scope *sc, const char *name);
Binding *scope_lookup(Scope *sc, const char *name);
/* Adds a binding; a duplicate in the same scope is reported (note at the first)
 * and NULL returned. */
Binding *scope_declare(Sema *S, Scope *sc, const char *name, BindKind kind, SrcLoc loc,
                       const Ast *ast);
/* Notes "did you mean 'x'?" at the closest name in sc's chain (and the builtins
 * when with_builtins), if one is within edit distance 2. */
void sema_suggest(Sema *S, Scope *sc, const char *name, SrcLoc use, int with_builtins);
void sema_suggest_among(Sema *S, const char *name, SrcLoc use, int n, const char *const *cands);
int sema_edit_distance(const char *a, const char *b);
/* Index of the closest of cands within the did-you-mean distance, or -1. */
int sema_closest(const char *name, int n, const char *const *cands);
NetInst *sema_instantiate(Sema *S, Scope *sc, const Ast *netuse, const char *prefix);
/* The model's scope in the list S->models, or NULL. */
ModelInfo *sema_find_model_info(Sema *S, const char *name);
/* `~ normal(m, s)`, `~ uniform(a, b)`, `~ glorot` into v's init_kind and dist_a/b. */
void sema_dist(Sema *S, Scope *sc, const Ast *dist, IrVar *v);

/* ---- sema_expr.c ---- */
Val val_err(void);
Val val_node(IrNode *n);
Val sema_expr(Sema *S, Scope *sc, const Ast *e);
/* Lowers e and insists on a tensor (not a function); V_ERR otherwise. */
Val sema_tensor(Sema *S, Scope *sc, const Ast *e);
/* Lowers e with only `allow` dependencies, named `context` in errors. */
Val sema_expr_in(Sema *S, Scope *sc, const Ast *e, unsigned allow, const char *context);
/* Constant-folds e (reporting when it is not constant): a folded IR_CONST node. */
IrNode *sema_const(Sema *S, Scope *sc, const Ast *e, const char *what);
/* The same for an already lowered value (NULL after reporting; silent for V_ERR). */
IrNode *sema_const_val(Sema *S, Val v, SrcLoc loc, const char *what);
/* n folded to an IR_CONST when it depends on nothing, else n. */
IrNode *sema_fold(Sema *S, IrNode *n);
/* A constant integer in [lo, hi]; what names it in errors ("an index"). */
int sema_const_int(Sema *S, Scope *sc, const Ast *e, const char *what, int lo, int hi, int *out);
/* 1 when a value of shape s (dimensions at most IR_MAX_ELEMENTS each) has at most
 * IR_MAX_ELEMENTS elements; else reports "WHAT has N elements (R x C), more than the limit". */
int sema_size_ok(Sema *S, SrcLoc loc, const char *what, IrShape s);
/* Dependencies of n as ALLOW_* bits. */
unsigned sema_deps(Sema *S, IrNode *n);
/* node with a scalar broadcast to shape (shapes already checked) */
IrNode *sema_fill(Sema *S, IrNode *node, IrShape shape);
/* Appends to the model being built the hidden states its div_est() calls asked
 * for (their noise, drawn at each solve); called once its equations are lowered. */
void sema_hidden_states(Sema *S);
/* ---- sema_events.c ---- */
/* The model's `when` blocks as its IrEvents (after its equations and hidden states). */
void sema_model_events(Sema *S, Scope *sc, const Ast *model);
/* Refuses, at the solver's name, rodas4 or kvaerno5 for a model with events. */
void sema_events_solver(Sema *S, const IrModel *m, const SemaSolver *sv);
/* An SDE model (dx = f dt + g dW) needs euler_maruyama or milstein: a located
 * error for any other solver, the stiff ones with their own words. */
void sema_sde_solver(Sema *S, const IrModel *m, const SemaSolver *sv);
/* Refuses, at where, a train or evaluate (named by directive) of a model with events. */
void sema_events_evaluate(Sema *S, const IrModel *m, SrcLoc where);
void sema_events_train(Sema *S, const SemaTrain *tr, SrcLoc where);
/* ---- sema_second_order.c ---- */
/* The velocity state's interned name for position x: "dx/dt" (NULL past 300 bytes). */
const char *sema_velocity_name(Sema *S, const char *x);
/* Refuses, at the solver's name, verlet for a model with a first-order state,
 * an acceleration that reads a velocity, or events. */
void sema_verlet_solver(Sema *S, const IrModel *m, const SemaSolver *sv);
/* A train's verlet: the model as above, and backprop or checkpoint. */
void sema_verlet_train(Sema *S, const SemaTrain *tr, SrcLoc where);
/* Refuses a train's gradient other than backprop (and checkpoint when
 * checkpoint_ok) through its solver, saying why (sema_second_order.c). */
void sema_backprop_only(Sema *S, const SemaTrain *tr, SrcLoc where, bool checkpoint_ok,
                        const char *why);
/* A train or evaluate of a stochastic model: an SDE solver, and backprop. */
void sema_sde_train(Sema *S, const SemaTrain *tr, SrcLoc where);
/* Shape string in an arena-free buffer (at least 32 bytes). */
const char *sema_shape(IrShape s, char *buf);
int sema_is_builtin(const char *name);
/* sema_sample.c: a train block's `sample` entries lowered into tr (eps_col, n_eps,
   samples) and made readable by name; whether `name` in scope sc is a sample, with its
   value (NULL: the sample failed, already reported) */
void sema_train_samples(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *const *entries, int n);
bool sema_sample_lookup(Sema *S, Scope *sc, const char *name, IrNode **value);
/* sema_encoder.c: a train block's `encoder h[n] { ... }` entries (at most one) lowered
   into tr->encoder, before its samples; the encoder's solver once the train's is known
   (the train's own when the block gives none); whether `name` is tr's encoder, with
   its value (the DATA columns the runner fills). */
void sema_train_encoders(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *const *entries, int n);
void sema_encoder_solver(Sema *S, SemaTrain *tr);
bool sema_encoder_lookup(const SemaTrain *tr, IrBuilder *b, const char *name, IrNode **value);
/* Whether n reads a column of the data row before column ncols (the data set's own,
   not the encoder's or the samples' noise after them). */
bool sema_reads_row(Sema *S, IrNode *n, int ncols);
/* Whether `name` (at loc) may name a train block's sample or encoder: it hides no
   name of the model, data set or builtin, and repeats no sample or encoder; reports
   when not. `what` is "sample" or "encoder". */
bool sema_block_name_free(Sema *S, ModelInfo *mi, const SemaTrain *tr, const char *name,
                          SrcLoc loc, const char *what);
extern const char *const sema_builtin_names[];
extern const int sema_n_builtins;

/* ---- sema_functions.c: min, max, clamp, atan2, argmax, softmax, log_softmax,
 * logsumexp, cross_entropy (the lowering of a call whose argument count and
 * values sema_expr.c has checked) ---- */
typedef struct FnArgs {
    int n;
    IrNode **x;         /* the arguments' nodes */
    const SrcLoc *loc;  /* where each was written */
    SrcLoc whole;       /* the call */
} FnArgs;
Val sema_function(Sema *S, const char *name, const FnArgs *a);
/* Equal shapes, or scalars (where, min, max, clamp, atan2): the common one in *out. */
int sema_common_shape(Sema *S, const char *name, const FnArgs *a, IrShape *out);

/* ---- sema_conv.c: conv2d, avg_pool, max_pool, group_norm, instance_norm,
 * reshape, flatten, and the broadcasting of same-rank tensors ---- */
typedef struct ConvArgs {
    const char *name;   /* the builtin */
    int n;
    IrNode **x;         /* the arguments' nodes */
    const char **key;   /* NULL for a positional argument, else its name (`stride = 2`) */
    const SrcLoc *loc;
    SrcLoc whole;
} ConvArgs;
int sema_is_conv_builtin(const char *name);
Val sema_conv_builtin(Sema *S, const ConvArgs *a);
/* Two tensors of one rank (3 or 4) whose dimensions are equal or 1: the stretched
 * shape in *out (0 when they do not broadcast). */
int sema_broadcast_shape(IrShape a, IrShape b, IrShape *out);
IrNode *sema_broadcast_to(Sema *S, IrNode *x, IrShape to);
/* sum(x, axis) or (mean) mean(x, axis); at: where the axis was written. */
Val sema_reduce_axis(Sema *S, const char *name, int mean, IrNode *x, Val axis, SrcLoc at);

/* ---- sema_directive.c ---- */
void sema_directives(Sema *S, const Ast *program, SemaProgram *out);
/* Pieces of a solve shared with `data = simulate(...)` and `train`. */
void sema_solve_times(Sema *S, Scope *sc, const Ast *e, SemaSolve *out);
/* `init = { x = ... }` into init (one per state of mi's model). in_train: values
 * may read data fields; `x ~ dist` is refused (it belongs in solve and simulate). */
void sema_init_record(Sema *S, ModelInfo *mi, const Ast *e, IrNode **init, int in_train);
/* The same for simulate: values, and draws `x ~ dist` into draw (per state). */
void sema_init_draws(Sema *S, ModelInfo *mi, const Ast *e, IrNode **init, SemaDraw *draw);
/* Whether a solve draws a state at each solve (by init's `~`, or the model's
 * div_est noise); *first: the first state init draws, or -1. */
int sema_solve_draws(const SemaSolve *out, int *first);
/* Reports init's entry drawing state `first` of out's model: a draw needs samples. */
void sema_draw_needs_samples(Sema *S, const Ast *init, const SemaSolve *out, int first);
/* dopri5 with its default settings, located at where. */
void sema_default_solver(Sema *S, SrcLoc where, SemaSolver *out);
/* `name` or `name(key = value, ...)` into out, every setting checked. */
void sema_solver_call(Sema *S, const Ast *e, SemaSolver *out);
/* Every state of s's model has a starting value (init, a draw or the model's
 * default); reports each one that has none at where. */
void sema_solve_starts(Sema *S, const SemaSolve *s, SrcLoc where);
/* Two consecutive output times; the widest pair of t (nt >= 2) or {0, 0}. */
typedef struct SemaSpan {
    double a, b;
} SemaSpan;
SemaSpan sema_widest_interval(const double *t, int nt);
/* Refuses a fixed-step solver that would take more than max_steps steps over
 * the interval widest (reported at h). */
void sema_check_steps(Sema *S, const SemaSolver *sv, SemaSpan widest);
/* The model a directive names (did-you-mean when unknown). */
ModelInfo *sema_directive_model(Sema *S, const char *name, SrcLoc at);
/* Index of name among names, or -1. */
int sema_find_name(const char *name, int n, const char *const *names);
/* names[0..n) as "a, b, c" with `last` before the last one (", " or " or "),
 * arena-allocated: the lists of names in messages. */
const char *sema_join(Sema *S, int n, const char *const *names, const char *last);
/* Whether v is a value for the initial value of `state` (reported at loc
 * when it is a function; an error value was reported where it arose). */
bool sema_initial_value(Sema *S, Val v, SrcLoc loc, const char *state);
/* Whether e is `name` or `name(...)`, as solvers, optimizers and gradient
 * methods are written; else reports `expected` at e. */
bool sema_is_call(Sema *S, const Ast *e, const char *expected);
/* How a family of settings (a solver's, an optimizer's) is checked. */
typedef struct SemaSetting {
    const char *what;       /* "a solver argument", for sema_const's messages */
    const char *kind;       /* "solver argument": "... 'rtol' must be ..." */
    const char *not_scalar; /* what a non-scalar value is told to be */
    const char *(*range)(int key, double v); /* NULL in range, else what it must be */
} SemaSetting;
/* The value of setting k of a call (a bit of given per setting already seen):
 * false after reporting a duplicate at `at`, a value that is not a constant,
 * or one out of its range. */
bool sema_call_setting(Sema *S, const Ast *arg, SrcLoc at, unsigned given, int k,
                       const SemaSetting *setting, double *value);
/* Whether n (a scalar broadcasts) fits a state of shape want; else reports
 * "shape mismatch in <where> '<state>': the state is .. but <what> is ..". */
bool sema_fits_state(Sema *S, IrShape want, const IrNode *n, SrcLoc loc, const char *where,
                     const char *state, const char *what);
/* The names all[k] whose bit 1 << k is in set (k < n), in order, into out;
 * returns how many: a method's or an optimizer's allowed keys. */
int sema_names_in(unsigned set, int n, const char *const *all, const char **out);

/* ---- sema_data.c ---- */
void sema_data_directive(Sema *S, const Ast *ast, SemaDirective *d);
/* `NAME.field` inside a train block, where NAME is not a name in scope. */
Val sema_data_field(Sema *S, const Ast *e);
const SemaField *sema_data_find_field(const SemaData *d, const char *name);
/* The IR that reads field f from a sample's data row (DATA leaves, slot 0). */
IrNode *sema_data_field_ir(Sema *S, const SemaField *f);
/* The data set called name declared so far, or NULL. */
SemaData *sema_find_data(Sema *S, const char *name);

/* ---- sema_plot.c ---- */
/* A plot of the user's file; earlier holds the directives checked before it
 * (the sources it may read), program the whole file (for notes on later ones). */
void sema_plot_directive(Sema *S, const Ast *ast, SemaDirective *d, const SemaProgram *earlier,
                         const Ast *program);

/* ---- sema_train.c ---- */
/* train M { ... } and evaluate M { ... } (d->kind says which). */
void sema_train_directive(Sema *S, const Ast *ast, SemaDirective *d);
/* A file key's value (`save = "x.params"`), its location in *loc; NULL after
 * an error (not a string) or when entry is NULL. */
const char *sema_file_value(Sema *S, const Ast *entry, SrcLoc *loc);
/* A named entry (`metric acc = ...`) outside evaluate, or one whose kind is not
 * `metric`: reported (true), else false. */
bool sema_named_entry_misplaced(Sema *S, const Ast *entry, const char *directive);
/* `dx/dt` inside a train block: the right-hand side of state x. */
Val sema_train_deriv(Sema *S, const Ast *e);

/* The stdlib module (not imported) that declares name, or NULL. */
const char *sema_module_of(Sema *S, const char *name);

#endif
