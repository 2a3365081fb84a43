/* Expressions: names, operators, literals, indexing, calls of builtins, fns and
 * net instances, lowered straight into hash-consed IR. Every shape is checked
 * here before an IR constructor sees it (constructors assume valid shapes), and
 * a mistake yields V_ERR so that it is reported once, not at every use. */
#include "sema_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"

Val val_err(void)
{
    return (Val){.kind = V_ERR};
}

Val val_node(IrNode *n)
{
    return (Val){.kind = V_NODE, .node = n};
}

const char *sema_shape(IrShape s, char *buf)
{
    return ir_shape_str(s, buf);
}

/* ---- dependencies and constants ---- */

static void deps_walk(IrNode *n, unsigned char *seen, int cap, unsigned *acc)
{
    if (n->id >= 0 && n->id < cap) {
        if (seen[n->id])
            return;
        seen[n->id] = 1;
    }
    if (n->op == IR_STATE)
        *acc |= ALLOW_STATE;
    else if (n->op == IR_PARAM)
        *acc |= ALLOW_PARAM;
    else if (n->op == IR_TIME)
        *acc |= ALLOW_TIME;
    else if (n->op == IR_DATA)
        *acc |= ALLOW_DATA;
    for (int i = 0; i < n->nargs; i++)
        deps_walk(n->args[i], seen, cap, acc);
}

unsigned sema_deps(Sema *S, IrNode *n)
{
    if (n->op == IR_CONST)
        return 0;
    int cap = ir_node_count(S->ir) + 1;
    unsigned char *seen = arena_alloc(S->arena, (size_t)cap);
    unsigned acc = 0;
    deps_walk(n, seen, cap, &acc);
    return acc;
}

static const char *deps_text(unsigned d)
{
    if (d & ALLOW_STATE)
        return "a state";
    if (d & ALLOW_PARAM)
        return "a parameter";
    if (d & ALLOW_DATA)
        return "data";
    return "the time 't'";
}

/* The folded constant of a dependency-free node (evaluated once by the IR's
 * interpreter, so every later pass sees a plain IR_CONST). */
static IrNode *fold(Sema *S, IrNode *n)
{
    if (n->op == IR_CONST)
        return n;
    double *v = arena_alloc(S->arena, sizeof(double) * (size_t)ir_shape_size(n->shape));
    ir_eval(1, &n, 0.0, NULL, NULL, &v);
    return ir_const(S->ir, n->shape, v);
}

IrNode *sema_fold(Sema *S, IrNode *n)
{
    return sema_deps(S, n) ? n : fold(S, n);
}

/* A constant tensor from v, or NULL after reporting what must be constant. */
IrNode *sema_const_val(Sema *S, Val v, SrcLoc loc, const char *what)
{
    if (v.kind == V_ERR)
        return NULL;
    if (v.kind != V_NODE) {
        diag_error(S->diag, loc, "%s must be a number, not a function", what);
        return NULL;
    }
    unsigned d = sema_deps(S, v.node);
    if (d) {
        diag_error(S->diag, loc, "%s must be constant, but this depends on %s", what, deps_text(d));
        return NULL;
    }
    IrNode *c = fold(S, v.node);
    for (int i = 0, n = ir_shape_size(c->shape); i < n; i++) { /* 1/0, log(0), sqrt(-1) */
        if (isfinite(c->value[i]))
            continue;
        double x = isnan(c->value[i]) ? fabs(c->value[i]) : c->value[i]; /* "nan", not "-nan" */
        if (n == 1)
            diag_error(S->diag, loc, "%s must be a finite number, but this evaluates to %g", what, x);
        else
            diag_error(S->diag, loc, "%s must be finite, but its element %d evaluates to %g", what,
                       i, x);
        return NULL;
    }
    return c;
}

/* A constant integer (any range a double holds exactly; callers check theirs). An
 * integer past their range is "too large", never "not an integer". */
static int val_int64(Sema *S, Val v, SrcLoc loc, const char *what, int64_t *out)
{
    IrNode *c = sema_const_val(S, v, loc, what);
    if (!c)
        return 0;
    if (c->shape.rank != 0) {
        char b[32];
        diag_error(S->diag, loc, "%s must be a scalar integer, got %s", what, sema_shape(c->shape, b));
        return 0;
    }
    double x = c->value[0];
    if (!(x == floor(x)) || !isfinite(x)) {
        diag_error(S->diag, loc, "%s must be an integer, got %g", what, x);
        return 0;
    }
    if (fabs(x) > 0x1p62) {
        diag_error(S->diag, loc, "%s is too large: %g", what, x);
        return 0;
    }
    *out = (int64_t)x;
    return 1;
}

/* A constant integer in [lo, hi], reported as too small or too large. */
static int val_int_in(Sema *S, Val v, SrcLoc loc, const char *what, int lo, int hi, int *out)
{
    int64_t x = 0;
    if (!val_int64(S, v, loc, what, &x))
        return 0;
    if (x > hi) {
        diag_error(S->diag, loc, "%s is too large: %lld (the limit is %d)", what, (long long)x, hi);
        return 0;
    }
    if (x < lo) {
        diag_error(S->diag, loc, "%s must be at least %d, got %lld", what, lo, (long long)x);
        return 0;
    }
    *out = (int)x;
    return 1;
}

int sema_size_ok(Sema *S, SrcLoc loc, const char *what, IrShape s)
{
    int64_t n = (int64_t)s.rows * s.cols;
    if (n <= IR_MAX_ELEMENTS)
        return 1;
    if (s.rank == 2)
        diag_error(S->diag, loc, "%s has %lld elements (%d x %d), more than the limit of %d", what,
                   (long long)n, s.rows, s.cols, IR_MAX_ELEMENTS);
    else
        diag_error(S->diag, loc, "%s has %lld elements, more than the limit of %d", what,
                   (long long)n, IR_MAX_ELEMENTS);
    return 0;
}

Val sema_expr_in(Sema *S, Scope *sc, const Ast *e, unsigned allow, const char *context)
{
    unsigned old_allow = S->allow;
    const char *old_context = S->context;
    S->allow = allow;
    S->context = context;
    Val v = sema_expr(S, sc, e);
    S->allow = old_allow;
    S->context = old_context;
    return v;
}

IrNode *sema_const(Sema *S, Scope *sc, const Ast *e, const char *what)
{
    Val v = sema_expr_in(S, sc, e, 0, what);
    return sema_const_val(S, v, e->loc, what);
}

int sema_const_int(Sema *S, Scope *sc, const Ast *e, const char *what, int lo, int hi, int *out)
{
    return val_int_in(S, sema_expr_in(S, sc, e, 0, what), e->loc, what, lo, hi, out);
}

IrNode *sema_fill(Sema *S, IrNode *node, IrShape shape)
{
    if (shape.rank == 0 || node->shape.rank != 0)
        return node;
    if (node->op == IR_CONST)
        return ir_fill(S->ir, shape, node->value[0]);
    int n = shape.rank == 1 ? shape.rows : shape.cols;
    IrNode **copies = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)n);
    for (int i = 0; i < n; i++)
        copies[i] = node;
    IrNode *row = ir_concat(S->ir, n, copies);
    if (shape.rank == 1)
        return row;
    IrNode **rows = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)shape.rows);
    for (int i = 0; i < shape.rows; i++)
        rows[i] = row;
    return ir_stack(S->ir, shape.rows, rows);
}

/* ---- names ---- */

static Val name_error(Sema *S, Scope *sc, const Ast *e)
{
    const char *mod = sema_module_of(S, e->name);
    if (mod) {
        diag_error(S->diag, e->loc, "unknown name '%s': it is defined in module '%s': add "
                   "`import \"%s\"`", e->name, mod, mod);
        return val_err();
    }
    diag_error(S->diag, e->loc, "unknown name '%s'", e->name);
    if (strcmp(e->name, "dW") == 0) /* not a value: the Brownian increment of an SDE's step */
        diag_note(S->diag, e->loc, "dW is not a value: it is written only after the noise "
                  "coefficient of a stochastic equation, dx = f dt + g dW");
    else
        sema_suggest(S, sc, e->name, e->loc, 0);
    return val_err();
}

static Val name_binding(Sema *S, const Ast *e, Binding *b)
{
    switch (b->kind) {
    case B_STATE:
        if (!(S->allow & ALLOW_STATE)) {
            diag_error(S->diag, e->loc, "%s cannot use state '%s'", S->context, e->name);
            return val_err();
        }
        return b->val;
    case B_PARAM:
        if (!(S->allow & ALLOW_PARAM)) {
            diag_error(S->diag, e->loc, "%s cannot use parameter '%s'", S->context, e->name);
            return val_err();
        }
        return b->val;
    case B_LET:
        if (b->val.kind == V_NODE && S->allow != ALLOW_ALL) {
            unsigned d = sema_deps(S, b->val.node) & ~S->allow;
            if (d) {
                diag_error(S->diag, e->loc, "%s cannot use '%s', which depends on %s", S->context,
                           e->name, deps_text(d));
                return val_err();
            }
        }
        return b->val;
    case B_LET_PENDING:
        diag_error(S->diag, e->loc, "'%s' is used before its definition", e->name);
        diag_note(S->diag, b->loc, "'%s' is defined here; lets are evaluated in order", e->name);
        return val_err();
    case B_CONST: case B_ARG: case B_NET:
        return b->val;
    case B_FN:
        return (Val){.kind = V_FN, .fn = b->ast, .home = b->home};
    case B_TEMPLATE:
        diag_error(S->diag, e->loc,
                   "'%s' is a net template: declare an instance with `net f = %s(...)` in a model",
                   e->name, e->name);
        return val_err();
    case B_MODEL:
        diag_error(S->diag, e->loc, "'%s' is a model, not a value", e->name);
        return val_err();
    }
    return val_err();
}

static Val lower_name(Sema *S, Scope *sc, const Ast *e)
{
    Binding *b = scope_lookup(sc, e->name);
    if (b)
        return name_binding(S, e, b);
    IrNode *z;
    if (sema_sample_lookup(S, sc, e->name, &z))
        return z ? val_node(z) : val_err();
    if (strcmp(e->name, "t") == 0) {
        if (!(S->allow & ALLOW_TIME)) {
            diag_error(S->diag, e->loc, "%s cannot use the time 't'", S->context);
            return val_err();
        }
        return val_node(ir_time(S->ir));
    }
    if (strcmp(e->name, "pi") == 0)
        return val_node(ir_scalar(S->ir, 3.141592653589793));
    if (sema_is_builtin(e->name))
        return (Val){.kind = V_BUILTIN, .builtin = e->name};
    return name_error(S, sc, e);
}

Val sema_tensor(Sema *S, Scope *sc, const Ast *e)
{
    Val v = sema_expr(S, sc, e);
    if (v.kind == V_FN || v.kind == V_BUILTIN || v.kind == V_NET) {
        const char *what = v.kind == V_NET ? "a net" : "a function";
        if (e->kind == AST_NAME)
            diag_error(S->diag, e->loc, "'%s' is %s: call it with arguments, like %s(x)", e->name,
                       what, e->name);
        else
            diag_error(S->diag, e->loc, "expected a value, but this is %s", what);
        return val_err();
    }
    return v;
}

/* ---- operators ---- */

static Val lower_matmul(Sema *S, const Ast *e, IrNode *x, IrNode *y)
{
    char bx[32], by[32];
    IrShape a = x->shape, b = y->shape;
    if (a.rank > 2 || b.rank > 2) {
        diag_error(S->diag, e->loc,
                   "shape mismatch in '@': %s @ %s ('@' needs vectors or matrices; reshape a tensor "
                   "first, or use conv2d)",
                   sema_shape(a, bx), sema_shape(b, by));
        return val_err();
    }
    if (a.rank == 0 || b.rank == 0) {
        diag_error(S->diag, e->loc,
                   "shape mismatch in '@': %s @ %s ('@' needs vectors or matrices; use '*' to scale)",
                   sema_shape(a, bx), sema_shape(b, by));
        return val_err();
    }
    int inner_a = a.rank == 2 ? a.cols : a.rows;
    if (inner_a != b.rows) {
        diag_error(S->diag, e->loc, "shape mismatch in '@': %s @ %s (inner dimensions %d and %d differ)",
                   sema_shape(a, bx), sema_shape(b, by), inner_a, b.rows);
        return val_err();
    }
    IrShape out = {.rank = 2, .rows = a.rows, .cols = b.cols};
    if (a.rank == 2 && b.rank == 2 && !sema_size_ok(S, e->loc, "the result of '@'", out))
        return val_err();
    if (a.rank == 1 && b.rank == 2) /* v @ M = transpose(M) @ v */
        return val_node(ir_matmul(S->ir, ir_transpose(S->ir, y), x));
    return val_node(ir_matmul(S->ir, x, y));
}

static IrOp binary_op(int op)
{
    switch (op) {
    case OP_ADD: return IR_ADD;
    case OP_SUB: return IR_SUB;
    case OP_MUL: return IR_MUL;
    case OP_DIV: return IR_DIV;
    case OP_POW: return IR_POW;
    case OP_LT: return IR_LT;
    case OP_GT: return IR_GT;
    case OP_LE: return IR_LE;
    case OP_GE: return IR_GE;
    case OP_EQ: return IR_EQ;
    default: return IR_NE;
    }
}

static int elementwise_ok(IrShape a, IrShape b)
{
    return a.rank == 0 || b.rank == 0 || ir_shape_eq(a, b);
}

static Val lower_binary(Sema *S, Scope *sc, const Ast *e)
{
    Val l = sema_tensor(S, sc, e->a), r = sema_tensor(S, sc, e->b);
    if (l.kind == V_ERR || r.kind == V_ERR)
        return val_err();
    if (e->op == OP_MATMUL)
        return lower_matmul(S, e, l.node, r.node);
    char bl[32], br[32];
    const char *op = ast_op_text(e->op);
    if (e->op == OP_POW && r.node->shape.rank != 0) {
        diag_error(S->diag, e->loc, "shape mismatch in '^': the exponent must be a scalar, got %s",
                   sema_shape(r.node->shape, br));
        return val_err();
    }
    IrShape to;
    if (!elementwise_ok(l.node->shape, r.node->shape) &&
        sema_broadcast_shape(l.node->shape, r.node->shape, &to)) {
        l.node = sema_broadcast_to(S, l.node, to);
        r.node = sema_broadcast_to(S, r.node, to);
    }
    if (!elementwise_ok(l.node->shape, r.node->shape)) {
        diag_error(S->diag, e->loc,
                   "shape mismatch in '%s': %s %s %s (elementwise operands need equal shapes, or one "
                   "scalar%s)",
                   op, sema_shape(l.node->shape, bl), op, sema_shape(r.node->shape, br),
                   l.node->shape.rank >= 3 || r.node->shape.rank >= 3
                       ? ", or tensors of one rank whose dimensions are equal or 1"
                       : "");
        return val_err();
    }
    return val_node(ir_binary(S->ir, binary_op(e->op), l.node, r.node));
}

/* ---- literals ---- */

static Val lower_list(Sema *S, Scope *sc, const Ast *e)
{
    int n = e->list.n;
    if (n == 0) {
        diag_error(S->diag, e->loc, "empty list: a vector needs at least one element");
        return val_err();
    }
    IrNode **items = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        Val v = sema_tensor(S, sc, e->list.items[i]);
        bad |= v.kind == V_ERR;
        items[i] = v.node;
    }
    if (bad)
        return val_err();
    IrShape first = items[0]->shape;
    for (int i = 0; i < n; i++) {
        IrShape s = items[i]->shape;
        if (s.rank == 2 || !ir_shape_eq(s, first)) {
            char b0[32], bi[32];
            diag_error(S->diag, e->list.items[i]->loc,
                       "shape mismatch in list: element %d is %s but element 0 is %s (a list holds "
                       "scalars, or vectors of equal length as matrix rows)",
                       i, sema_shape(s, bi), sema_shape(first, b0));
            return val_err();
        }
    }
    if (first.rank == 0)
        return val_node(ir_concat(S->ir, n, items));
    return val_node(ir_stack(S->ir, n, items));
}

/* ---- indexing ---- */

typedef struct Range {
    int lo, hi;  /* half-open */
    int single;  /* an index, not a slice: drops the dimension */
} Range;

static int index_bound(Sema *S, Scope *sc, const Ast *e, int lo, int hi, const char *what,
                       const char *base, int *out)
{
    Val v = sema_tensor(S, sc, e);
    int64_t x = 0;
    if (!val_int64(S, v, e->loc, what, &x))
        return 0;
    if (x < lo || x > hi) {
        diag_error(S->diag, e->loc, "%s %lld is out of range for %s (valid: %d to %d)", what,
                   (long long)x, base, lo, hi);
        return 0;
    }
    *out = (int)x;
    return 1;
}

/* The range an index item selects in a dimension of n elements. */
static int index_range(Sema *S, Scope *sc, const Ast *item, int n, const char *base, Range *r)
{
    if (item->kind != AST_SLICE) {
        r->single = 1;
        if (!index_bound(S, sc, item, 0, n - 1, "index", base, &r->lo))
            return 0;
        r->hi = r->lo + 1;
        return 1;
    }
    r->single = 0;
    r->lo = 0;
    r->hi = n;
    if (item->a && !index_bound(S, sc, item->a, 0, n, "slice start", base, &r->lo))
        return 0;
    if (item->b && !index_bound(S, sc, item->b, 0, n, "slice end", base, &r->hi))
        return 0;
    if (r->hi <= r->lo) {
        diag_error(S->diag, item->loc, "empty slice %d:%d (a slice a:b needs a < b)", r->lo, r->hi);
        return 0;
    }
    return 1;
}

static Val index_vector(Sema *S, IrNode *x, Range r)
{
    if (r.single)
        return val_node(ir_element(S->ir, x, r.lo, 0));
    return val_node(ir_slice(S->ir, x, r.lo, 0, ir_vector_shape(r.hi - r.lo)));
}

static Val index_matrix(Sema *S, IrNode *x, Range r, Range c)
{
    if (r.single && c.single)
        return val_node(ir_element(S->ir, x, r.lo, c.lo));
    if (c.single) /* part of a column */
        return val_node(ir_slice(S->ir, x, r.lo, c.lo, ir_vector_shape(r.hi - r.lo)));
    if (r.single) /* part of a row: a column of the transpose */
        return val_node(ir_slice(S->ir, ir_transpose(S->ir, x), c.lo, r.lo,
                                 ir_vector_shape(c.hi - c.lo)));
    return val_node(ir_slice(S->ir, x, r.lo, c.lo, ir_matrix_shape(r.hi - r.lo, c.hi - c.lo)));
}

static Val lower_index(Sema *S, Scope *sc, const Ast *e)
{
    Val base = sema_tensor(S, sc, e->a);
    if (base.kind == V_ERR)
        return val_err();
    IrShape s = base.node->shape;
    char bs[32];
    sema_shape(s, bs);
    int n = e->list.n;
    if (s.rank == 0) {
        diag_error(S->diag, e->loc, "a scalar cannot be indexed");
        return val_err();
    }
    if (s.rank > 2) {
        diag_error(S->diag, e->loc,
                   "a tensor of shape %s cannot be indexed in this version: reshape it to a matrix "
                   "or a vector first", bs);
        return val_err();
    }
    if (n > s.rank || n == 0) {
        diag_error(S->diag, e->loc, "a value of shape %s takes %s, got %d", bs,
                   s.rank == 1 ? "one index" : "one or two indices", n);
        return val_err();
    }
    Range r, c = {0, s.cols, 0};
    if (!index_range(S, sc, e->list.items[0], s.rows, bs, &r))
        return val_err();
    if (s.rank == 1)
        return index_vector(S, base.node, r);
    if (n == 2 && !index_range(S, sc, e->list.items[1], s.cols, bs, &c))
        return val_err();
    return index_matrix(S, base.node, r, c);
}

/* ---- builtins ---- */

typedef enum BuiltinKind {
    BK_UNARY, BK_SUM, BK_MEAN, BK_NORM, BK_DOT, BK_OUTER, BK_TRANSPOSE, BK_CONCAT,
    BK_FILL, BK_EYE, BK_LINSPACE, BK_WHERE, BK_DIV, BK_DIV_EST,
    BK_FUNCTION, /* sema_functions.c, by name (op unused) */
} BuiltinKind;

typedef struct Builtin {
    const char *name;
    int min, max; /* max -1: any number */
    const char *sig;
    BuiltinKind kind;
    IrOp op;
    double fill;
} Builtin;

static const Builtin builtins[] = {
    {"exp", 1, 1, "exp(x)", BK_UNARY, IR_EXP, 0},
    {"log", 1, 1, "log(x)", BK_UNARY, IR_LOG, 0},
    {"sqrt", 1, 1, "sqrt(x)", BK_UNARY, IR_SQRT, 0},
    {"abs", 1, 1, "abs(x)", BK_UNARY, IR_ABS, 0},
    {"sin", 1, 1, "sin(x)", BK_UNARY, IR_SIN, 0},
    {"cos", 1, 1, "cos(x)", BK_UNARY, IR_COS, 0},
    {"tan", 1, 1, "tan(x)", BK_UNARY, IR_TAN, 0},
    {"tanh", 1, 1, "tanh(x)", BK_UNARY, IR_TANH, 0},
    {"sigmoid", 1, 1, "sigmoid(x)", BK_UNARY, IR_SIGMOID, 0},
    {"relu", 1, 1, "relu(x)", BK_UNARY, IR_RELU, 0},
    {"softplus", 1, 1, "softplus(x)", BK_UNARY, IR_SOFTPLUS, 0},
    {"floor", 1, 1, "floor(x)", BK_UNARY, IR_FLOOR, 0},
    {"atan", 1, 1, "atan(x)", BK_UNARY, IR_ATAN, 0},
    {"sinh", 1, 1, "sinh(x)", BK_UNARY, IR_SINH, 0},
    {"cosh", 1, 1, "cosh(x)", BK_UNARY, IR_COSH, 0},
    {"asinh", 1, 1, "asinh(x)", BK_UNARY, IR_ASINH, 0},
    {"erf", 1, 1, "erf(x)", BK_UNARY, IR_ERF, 0},
    {"min", 1, 2, "min(x) or min(a, b)", BK_FUNCTION, IR_MIN, 0},
    {"max", 1, 2, "max(x) or max(a, b)", BK_FUNCTION, IR_MAX, 0},
    {"clamp", 3, 3, "clamp(x, lo, hi)", BK_FUNCTION, IR_CONST, 0},
    {"atan2", 2, 2, "atan2(y, x)", BK_FUNCTION, IR_ATAN2, 0},
    {"argmax", 1, 1, "argmax(x)", BK_FUNCTION, IR_ARGMAX, 0},
    {"softmax", 1, 1, "softmax(x)", BK_FUNCTION, IR_CONST, 0},
    {"log_softmax", 1, 1, "log_softmax(x)", BK_FUNCTION, IR_CONST, 0},
    {"logsumexp", 1, 1, "logsumexp(x)", BK_FUNCTION, IR_CONST, 0},
    {"cross_entropy", 2, 2, "cross_entropy(logits, target)", BK_FUNCTION, IR_CONST, 0},
    {"sum", 1, 2, "sum(x) or sum(x, axis)", BK_SUM, IR_SUM, 0},
    {"mean", 1, 2, "mean(x) or mean(x, axis)", BK_MEAN, IR_SUM, 0},
    {"norm", 1, 1, "norm(x)", BK_NORM, IR_SUM, 0},
    {"dot", 2, 2, "dot(a, b)", BK_DOT, IR_MATMUL, 0},
    {"outer", 2, 2, "outer(a, b)", BK_OUTER, IR_OUTER, 0},
    {"transpose", 1, 1, "transpose(M)", BK_TRANSPOSE, IR_TRANSPOSE, 0},
    {"concat", 1, -1, "concat(a, b, ...)", BK_CONCAT, IR_CONCAT, 0},
    {"zeros", 1, 2, "zeros(n) or zeros(m, n)", BK_FILL, IR_CONST, 0},
    {"ones", 1, 2, "ones(n) or ones(m, n)", BK_FILL, IR_CONST, 1},
    {"eye", 1, 1, "eye(n)", BK_EYE, IR_CONST, 0},
    {"linspace", 3, 3, "linspace(a, b, n)", BK_LINSPACE, IR_CONST, 0},
    {"where", 3, 3, "where(c, a, b)", BK_WHERE, IR_WHERE, 0},
    {"div", 1, 1, "div(x)", BK_DIV, IR_CONST, 0},
    {"div_est", 1, 2, "div_est(x) or div_est(x, rademacher)", BK_DIV_EST, IR_CONST, 0},
};
enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };

const char *const sema_builtin_names[] = {
    "exp", "log", "sqrt", "abs", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "softplus", "sum",
    "mean", "norm", "dot", "outer", "transpose", "concat", "zeros", "ones", "eye", "linspace",
    "where", "div", "div_est", "t", "pi", "floor", "atan", "sinh", "cosh", "asinh", "erf", "min",
    "max", "clamp", "atan2", "argmax", "softmax", "log_softmax", "logsumexp", "cross_entropy",
    "conv2d", "avg_pool", "max_pool", "group_norm", "instance_norm", "reshape", "flatten",
};
const int sema_n_builtins = sizeof sema_builtin_names / sizeof sema_builtin_names[0];

static const Builtin *builtin_find(const char *name)
{
    for (int i = 0; i < N_BUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}

int sema_is_builtin(const char *name)
{
    return builtin_find(name) != NULL || sema_is_conv_builtin(name);
}

/* Arguments of a call, already lowered, with where each was written. */
typedef struct Args {
    int n;
    Val *v;
    SrcLoc *loc;
    SrcLoc call; /* the callee's name */
    SrcLoc whole;
} Args;

static int need_vector(Sema *S, const Builtin *b, Args *a, int i)
{
    IrShape s = a->v[i].node->shape;
    if (s.rank == 1)
        return 1;
    char bs[32];
    diag_error(S->diag, a->loc[i], "shape mismatch in '%s': argument %d must be a vector, got %s",
               b->name, i + 1, sema_shape(s, bs));
    return 0;
}

static Val builtin_dot_outer(Sema *S, const Builtin *b, Args *a)
{
    if (!need_vector(S, b, a, 0) || !need_vector(S, b, a, 1))
        return val_err();
    IrNode *x = a->v[0].node, *y = a->v[1].node;
    if (b->kind == BK_OUTER)
        return sema_size_ok(S, a->whole, "the result of 'outer'",
                            (IrShape){.rank = 2, .rows = x->shape.rows, .cols = y->shape.rows})
                   ? val_node(ir_outer(S->ir, x, y))
                   : val_err();
    if (x->shape.rows != y->shape.rows) {
        char bx[32], by[32];
        diag_error(S->diag, a->whole, "shape mismatch in 'dot': %s and %s (lengths differ)",
                   sema_shape(x->shape, bx), sema_shape(y->shape, by));
        return val_err();
    }
    return val_node(ir_matmul(S->ir, x, y));
}

static Val builtin_transpose(Sema *S, Args *a)
{
    IrShape s = a->v[0].node->shape;
    if (s.rank == 2)
        return val_node(ir_transpose(S->ir, a->v[0].node));
    char bs[32];
    diag_error(S->diag, a->loc[0], "shape mismatch in 'transpose': it needs a matrix, got %s%s",
               sema_shape(s, bs),
               s.rank == 1 ? " (vectors have no orientation: `v @ M` already computes the "
                             "row-vector product, and outer(a, b) builds a matrix)"
                           : "");
    return val_err();
}

static Val builtin_concat(Sema *S, Args *a)
{
    IrNode **xs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)a->n);
    int64_t len = 0;
    for (int i = 0; i < a->n; i++) {
        xs[i] = a->v[i].node;
        len += xs[i]->shape.rows;
        if (xs[i]->shape.rank >= 2) {
            char bs[32];
            diag_error(S->diag, a->loc[i],
                       "shape mismatch in 'concat': argument %d is %s (concat joins scalars and vectors)",
                       i + 1, sema_shape(xs[i]->shape, bs));
            return val_err();
        }
    }
    if (len > IR_MAX_ELEMENTS) {
        diag_error(S->diag, a->whole,
                   "the result of 'concat' has %lld elements, more than the limit of %d",
                   (long long)len, IR_MAX_ELEMENTS);
        return val_err();
    }
    return val_node(ir_concat(S->ir, a->n, xs));
}

static int arg_count(Sema *S, Args *a, int i, const char *what, int *out)
{
    return val_int_in(S, a->v[i], a->loc[i], what, 1, IR_MAX_ELEMENTS, out);
}

static Val builtin_fill(Sema *S, const Builtin *b, Args *a)
{
    int m = 0, n = 0;
    if (!arg_count(S, a, 0, "a size", &m) || (a->n == 2 && !arg_count(S, a, 1, "a size", &n)))
        return val_err();
    IrShape s = {.rank = a->n, .rows = m, .cols = a->n == 2 ? n : 1};
    if (!sema_size_ok(S, a->whole, b->fill ? "the result of 'ones'" : "the result of 'zeros'",
                      s))
        return val_err();
    return val_node(ir_fill(S->ir, s, b->fill));
}

static Val builtin_eye(Sema *S, Args *a)
{
    int n = 0;
    if (!arg_count(S, a, 0, "a size", &n) ||
        !sema_size_ok(S, a->whole, "the result of 'eye'", (IrShape){.rank = 2, .rows = n, .cols = n}))
        return val_err();
    double *v = arena_alloc(S->arena, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++)
        v[i * n + i] = 1;
    return val_node(ir_const(S->ir, ir_matrix_shape(n, n), v));
}

static Val builtin_linspace(Sema *S, Args *a)
{
    IrNode *lo = sema_const_val(S, a->v[0], a->loc[0], "linspace's start");
    IrNode *hi = sema_const_val(S, a->v[1], a->loc[1], "linspace's end");
    int n = 0;
    if (!lo || !hi || !arg_count(S, a, 2, "linspace's count", &n))
        return val_err();
    if (lo->shape.rank || hi->shape.rank) {
        diag_error(S->diag, a->whole, "linspace needs scalar start and end");
        return val_err();
    }
    double x0 = lo->value[0], x1 = hi->value[0];
    double *v = arena_alloc(S->arena, sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        v[i] = n == 1 ? x0 : x0 + (x1 - x0) * i / (n - 1);
    if (n > 1)
        v[n - 1] = x1; /* exact end point */
    return val_node(ir_const(S->ir, ir_vector_shape(n), v));
}

static FnArgs fn_args(Sema *S, const Args *a)
{
    IrNode **x = arena_alloc(S->arena, sizeof *x * (size_t)(a->n ? a->n : 1));
    for (int i = 0; i < a->n; i++)
        x[i] = a->v[i].node;
    return (FnArgs){a->n, x, a->loc, a->whole};
}

static Val builtin_where(Sema *S, Args *a)
{
    FnArgs f = fn_args(S, a);
    IrShape common;
    if (!sema_common_shape(S, "where", &f, &common))
        return val_err();
    return val_node(ir_where(S->ir, a->v[0].node, a->v[1].node, a->v[2].node));
}

/* An elementwise op; floor's node remembers where it was written, for the
 * error of a gradient that would need its derivative (diff_has_no_derivative). */
static Val builtin_unary(Sema *S, const Builtin *b, Args *a)
{
    IrNode *n = ir_unary(S->ir, b->op, a->v[0].node);
    if (diff_has_no_derivative(b->op) && n->op == b->op)
        ir_set_origin(S->ir, n, a->whole);
    return val_node(n);
}

static Val builtin_reduce(Sema *S, const Builtin *b, IrNode *x)
{
    if (b->kind == BK_SUM)
        return val_node(ir_sum(S->ir, x));
    if (b->kind == BK_MEAN)
        return val_node(ir_div(S->ir, ir_sum(S->ir, x), ir_scalar(S->ir, ir_shape_size(x->shape))));
    return val_node(ir_unary(S->ir, IR_SQRT, ir_sum(S->ir, ir_mul(S->ir, x, x))));
}

/* ---- div(x): the exact divergence of a state's equation ----
 * div(x) needs the right-hand side of x, which may be written after the
 * equation that uses it (dlogp/dt = -div(z) before dz/dt = ...). So when x's
 * equation is not built yet it is lowered here on demand, inside a diagnostic
 * mark that is rolled back (its own errors are reported once, where sema.c
 * lowers it), and the result is the same hash-consed IR sema.c will build. The
 * states whose equations are being lowered on demand are kept on a stack in
 * S->div to find cycles (dx/dt = div(x), or through other states' div()). */

/* Keeps the first failed equation's first error for the outermost div()'s note. */
static void div_keep_reason(Sema *S, const char *msg)
{
    char *reason = S->div.reason;
    if (!msg || reason[0])
        return;
    size_t n = strcspn(msg, "\n");
    if (n >= sizeof S->div.reason)
        n = sizeof S->div.reason - 1;
    memcpy(reason, msg, n);
    reason[n] = 0;
}

static ModelInfo *current_model_info(Sema *S)
{
    for (int i = 0; i <= S->n_models; i++) /* the model being built is not counted yet */
        if (S->models && S->models[i].model == S->model)
            return &S->models[i];
    return NULL;
}

static const Ast *state_equation(const Ast *model, const char *name)
{
    for (int i = 0; i < model->list.n; i++) {
        const Ast *it = model->list.items[i];
        if (it->kind == AST_EQUATION && it->op != 2 && strcmp(it->name, name) == 0)
            return it; /* (a second-order equation is its velocity's: lowered in sema.c) */
    }
    return NULL;
}

static int div_busy(Sema *S, const IrModel *m, int slot)
{
    for (int i = 0; i < S->div.depth; i++)
        if (S->div.stack[i].model == m && S->div.stack[i].slot == slot)
            return 1;
    return 0;
}

/* Lowers x's equation with what it reports rolled back: NULL when it has an
 * error or the wrong shape. */
static IrNode *div_lower_equation(Sema *S, ModelInfo *mi, const Ast *eq, int slot)
{
    DiagMark mark = diag_mark(S->diag);
    unsigned allow = S->allow;
    const char *context = S->context;
    S->allow = ALLOW_ALL;
    S->context = "this expression";
    S->div.stack[S->div.depth++] = (DivFrame){S->model, slot};
    Val v = sema_tensor(S, mi->scope, eq->a);
    S->div.depth--;
    S->allow = allow;
    S->context = context;
    int failed = diag_errors_since(S->diag, mark) > 0;
    if (failed)
        div_keep_reason(S, diag_first_error(S->diag, mark));
    diag_rollback(S->diag, mark);
    if (failed || v.kind != V_NODE)
        return NULL;
    IrShape want = S->model->states[slot].shape;
    if (ir_shape_eq(v.node->shape, want))
        return v.node;
    return v.node->shape.rank == 0 ? sema_fill(S, v.node, want) : NULL;
}

/* The right-hand side of state `slot`, or NULL after reporting. */
static IrNode *div_rhs(Sema *S, int slot, SrcLoc at)
{
    IrModel *m = S->model;
    const char *name = m->states[slot].name;
    if (m->rhs[slot])
        return m->rhs[slot];
    if (div_busy(S, m, slot)) {
        S->div.cycle = 1;
        return NULL;
    }
    ModelInfo *mi = current_model_info(S);
    const Ast *eq = mi ? state_equation(mi->ast, name) : NULL;
    if (!eq) /* sema.c reports the missing equation */
        return NULL;
    if (S->div.depth >= SEMA_MAX_DEPTH) {
        diag_error(S->diag, at, "div() nested too deeply (more than %d)", SEMA_MAX_DEPTH);
        return NULL;
    }
    if (S->div.depth == 0) {
        S->div.cycle = 0;
        S->div.reason[0] = 0;
    }
    IrNode *rhs = div_lower_equation(S, mi, eq, slot);
    if (rhs || S->div.depth > 0) /* inner levels: the outermost div() reports */
        return rhs;
    if (S->div.cycle) {
        diag_error(S->diag, at, "div(%s) is circular: the equation of '%s' depends on div(%s)", name,
                   name, name);
        diag_note(S->diag, eq->loc, "the equation of '%s' is here", name);
    } else {
        diag_error(S->diag, at, "div(%s) needs the equation of '%s', which cannot be checked here",
                   name, name);
        diag_note(S->diag, eq->loc, "in the equation of '%s': %s", name,
                  S->div.reason[0] ? S->div.reason : "it has an error");
    }
    return NULL;
}

/* The slot of state leaf x of the model being built, or -1. */
static int state_slot(Sema *S, const IrNode *x)
{
    IrModel *m = S->model;
    if (!m || x->op != IR_STATE || x->slot >= m->n_states)
        return -1;
    const IrVar *v = &m->states[x->slot];
    return x == ir_state(S->ir, x->slot, v->offset, v->shape) ? x->slot : -1;
}

/* A divergence through floor or argmax is refused (diff.h), at the floor. */
static int div_usable(Sema *S, const char *fn, int slot, const IrNode *blocked, SrcLoc at)
{
    if (!blocked)
        return 1;
    char what[300];
    snprintf(what, sizeof what, "%s(%s)", fn, S->model->states[slot].name);
    diff_report_blocked(S->diag, S->ir, blocked, what, at, what);
    return 0;
}

static Val builtin_div(Sema *S, Args *a)
{
    if (!S->model) {
        diag_error(S->diag, a->whole,
                   "div() can only be used inside a model (it is the divergence of a state's equation)");
        return val_err();
    }
    int slot = state_slot(S, a->v[0].node);
    if (slot < 0) {
        diag_error(S->diag, a->loc[0], "div() needs a state of this model, as in div(z)");
        return val_err();
    }
    IrNode *rhs = div_rhs(S, slot, a->whole);
    if (!rhs)
        return val_err();
    const IrNode *blocked = NULL;
    IrNode *d = diff_divergence_blocked(S->ir, rhs, a->v[0].node, &blocked);
    return div_usable(S, "div", slot, blocked, a->whole) ? val_node(d) : val_err();
}

/* ---- div_est(x): Hutchinson's unbiased estimate of div(x) ----
 * eps^T (d f / d x) eps, with eps drawn at the start of every solve and fixed
 * during it (FFJORD's trace estimator). eps is a hidden state of the model,
 * `__eps_x` (Gaussian) or `__rad_x` (Rademacher), shaped like x, with d/dt = 0
 * and an initial value the runner draws; so the estimate is ordinary IR
 * (eps . vjp(f, eps)) and its derivatives for the adjoint come for free. The
 * hidden states are collected in S->hidden while the model's equations are
 * lowered and appended when they are done (sema_hidden_states), after the
 * declared ones. */

/* The noise leaf for div_est of state `slot`, registered on first use. */
static IrNode *hidden_noise(Sema *S, int slot, IrInitKind kind, SrcLoc at)
{
    IrModel *m = S->model;
    int offset = m->ny;
    for (int i = 0; i < S->n_hidden; i++) {
        const IrVar *v = &S->hidden[i].var;
        if (S->hidden[i].of == slot && S->hidden[i].kind == kind)
            return ir_state(S->ir, m->n_states + i, v->offset, v->shape);
        offset += ir_shape_size(v->shape);
    }
    if (S->n_hidden == SEMA_MAX_DEPTH) {
        diag_error(S->diag, at, "too many div_est() noise vectors in one model (at most %d)",
                   SEMA_MAX_DEPTH);
        return NULL;
    }
    const IrVar *x = &m->states[slot];
    char name[256];
    snprintf(name, sizeof name, "__%s_%s", kind == IR_INIT_NORMAL ? "eps" : "rad", x->name);
    IrVar v = {.name = strtab_cstr(S->names, name), .loc = x->loc, .shape = x->shape,
               .offset = offset, .init_kind = kind, .init = ir_fill(S->ir, x->shape, 0),
               .dist_a = 0, .dist_b = 1};
    S->hidden[S->n_hidden++] = (Hidden){slot, kind, v};
    return ir_state(S->ir, m->n_states + S->n_hidden - 1, offset, x->shape);
}

void sema_hidden_states(Sema *S)
{
    IrModel *m = S->model;
    int n = m->n_states + S->n_hidden;
    if (S->n_hidden > 0) {
        IrVar *states = arena_alloc(S->arena, sizeof(IrVar) * (size_t)(n + 1));
        IrNode **rhs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(n + 1));
        memcpy(states, m->states, sizeof(IrVar) * (size_t)m->n_states);
        memcpy(rhs, m->rhs, sizeof(IrNode *) * (size_t)m->n_states);
        for (int i = 0; i < S->n_hidden; i++) {
            const IrVar *v = &S->hidden[i].var;
            states[m->n_states + i] = *v;
            rhs[m->n_states + i] = ir_fill(S->ir, v->shape, 0);
            m->ny += ir_shape_size(v->shape);
        }
        m->states = states;
        m->rhs = rhs;
        m->n_states = n;
    }
    S->n_hidden = 0;
}

/* The noise named by div_est's optional second argument. */
static int noise_kind(Sema *S, const Ast *e, IrInitKind *kind)
{
    *kind = IR_INIT_NORMAL;
    if (e->list.n < 2)
        return 1;
    const Ast *k = e->list.items[1];
    if (k->kind == AST_NAME && strcmp(k->name, "gaussian") == 0)
        return 1;
    if (k->kind == AST_NAME && strcmp(k->name, "rademacher") == 0) {
        *kind = IR_INIT_RADEMACHER;
        return 1;
    }
    diag_error(S->diag, k->loc,
               "the noise of div_est is gaussian (the default) or rademacher, as in "
               "div_est(z, rademacher)");
    return 0;
}

static Val lower_div_est(Sema *S, Scope *sc, const Ast *e)
{
    IrInitKind kind;
    if (e->list.n < 1 || e->list.n > 2) {
        diag_error(S->diag, e->loc,
                   "wrong number of arguments to 'div_est': expected div_est(x) or "
                   "div_est(x, rademacher), got %d",
                   e->list.n);
        return val_err();
    }
    if (!noise_kind(S, e, &kind))
        return val_err();
    if (!S->model) {
        diag_error(S->diag, e->loc, "div_est() can only be used inside a model (it estimates the "
                   "divergence of a state's equation)");
        return val_err();
    }
    Val x = sema_tensor(S, sc, e->list.items[0]);
    if (x.kind == V_ERR)
        return x;
    int slot = state_slot(S, x.node);
    if (slot < 0) {
        diag_error(S->diag, e->list.items[0]->loc, "div_est() needs a state of this model, as in "
                   "div_est(z)");
        return val_err();
    }
    IrNode *rhs = div_rhs(S, slot, e->loc);
    IrNode *eps = rhs ? hidden_noise(S, slot, kind, e->loc) : NULL;
    if (!eps)
        return val_err();
    IrNode *vjp;
    const IrNode *blocked = diff_vjp_blocked(S->ir, 1, &rhs, &eps, 1, &x.node, &vjp);
    if (!div_usable(S, "div_est", slot, blocked, e->loc))
        return val_err();
    return val_node(ir_sum(S->ir, ir_mul(S->ir, vjp, eps)));
}

static Val builtin_apply(Sema *S, const Builtin *b, Args *a)
{
    switch (b->kind) {
    case BK_UNARY: return builtin_unary(S, b, a);
    case BK_FUNCTION: {
        FnArgs f = fn_args(S, a);
        return sema_function(S, b->name, &f);
    }
    case BK_SUM: case BK_MEAN: case BK_NORM:
        return a->n == 2 ? sema_reduce_axis(S, b->name, b->kind == BK_MEAN, a->v[0].node, a->v[1], a->loc[1])
                         : builtin_reduce(S, b, a->v[0].node);
    case BK_DOT: case BK_OUTER: return builtin_dot_outer(S, b, a);
    case BK_TRANSPOSE: return builtin_transpose(S, a);
    case BK_CONCAT: return builtin_concat(S, a);
    case BK_FILL: return builtin_fill(S, b, a);
    case BK_EYE: return builtin_eye(S, a);
    case BK_LINSPACE: return builtin_linspace(S, a);
    case BK_WHERE: return builtin_where(S, a);
    case BK_DIV: return builtin_div(S, a);
    case BK_DIV_EST: /* lower_call lowers calls of div_est itself; this is a use as a value */
        diag_error(S->diag, a->whole, "div_est must be called directly, as in div_est(z)");
        return val_err();
    }
    return val_err();
}

/* Every argument of a builtin call a value (not a function, not an error). */
static int args_are_values(Sema *S, const char *name, const Args *a)
{
    for (int i = 0; i < a->n; i++) {
        if (a->v[i].kind == V_ERR)
            return 0;
        if (a->v[i].kind != V_NODE) {
            diag_error(S->diag, a->loc[i], "argument %d of '%s' must be a value, not a function", i + 1,
                       name);
            return 0;
        }
    }
    return 1;
}

static Val call_conv(Sema *S, const char *name, Args *a, const char **key)
{
    ConvArgs c = {name, a->n, arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(a->n + 1)),
                  key, a->loc, a->whole};
    if (!key)
        c.key = arena_alloc(S->arena, sizeof(char *) * (size_t)(a->n + 1));
    if (!args_are_values(S, name, a))
        return val_err();
    for (int i = 0; i < a->n; i++)
        c.x[i] = a->v[i].node;
    return sema_conv_builtin(S, &c);
}

static Val call_builtin(Sema *S, const char *name, Args *a)
{
    if (sema_is_conv_builtin(name))
        return call_conv(S, name, a, NULL);
    const Builtin *b = builtin_find(name);
    if (a->n < b->min || (b->max >= 0 && a->n > b->max)) {
        diag_error(S->diag, a->whole, "wrong number of arguments to '%s': expected %s, got %d", name,
                   b->sig, a->n);
        return val_err();
    }
    if (!args_are_values(S, name, a))
        return val_err();
    return builtin_apply(S, b, a);
}

/* ---- fns and net instances ---- */

static int is_broken(Sema *S, const Ast *decl)
{
    for (int i = 0; i < S->broken.n; i++)
        if (S->broken.items[i] == decl)
            return 1;
    return 0;
}

static int check_arity(Sema *S, const Ast *decl, const AstList *params, Args *a, const char *what)
{
    if (a->n == params->n)
        return 1;
    diag_error(S->diag, a->whole, "wrong number of arguments to %s '%s': expected %d, got %d", what,
               decl->name, params->n, a->n);
    diag_note(S->diag, decl->name_loc, "'%s' is declared here", decl->name);
    return 0;
}

/* Binds args to params in a fresh child of parent, lowers the lets in order, then
 * the result: the body of a fn or a forward. */
static Val inline_body(Sema *S, Scope *parent, const AstList *params, const AstList *lets,
                       const Ast *result, Args *a)
{
    Scope *sc = scope_new(S, parent);
    for (int i = 0; i < params->n; i++) {
        const Ast *p = params->items[i];
        Binding *b = scope_declare(S, sc, p->name, B_ARG, p->loc, p);
        if (b)
            b->val = a->v[i];
    }
    for (int i = 0; i < lets->n; i++) {
        const Ast *let = lets->items[i];
        Val v = sema_expr(S, sc, let->a);
        Binding *b = scope_declare(S, sc, let->name, B_LET, let->name_loc, let);
        if (b)
            b->val = v;
    }
    return result ? sema_tensor(S, sc, result) : val_err();
}

/* Runs an inlined body, marking decl broken when it reported errors so that
 * later calls stay silent, and pointing at the call that exposed them. */
static Val inline_guarded(Sema *S, const Ast *decl, Scope *parent, const Ast *body, Args *a)
{
    int before = S->diag->errors;
    S->stack[S->depth++] = decl;
    Val v = inline_body(S, parent, &body->params, &body->list, body->a, a);
    S->depth--;
    if (S->diag->errors > before) {
        ptrvec_push(S->arena, &S->broken, (void *)decl);
        diag_note(S->diag, a->call, "in this call of '%s'", decl->name);
        return val_err();
    }
    return v;
}

/* One inlined call: a fn is pure, so the same fn on the same argument nodes,
 * in the same model and context, lowers to the same node. */
typedef struct FnMemo {
    const Ast *fn;
    const Scope *home;
    const IrModel *model, *train_model;
    unsigned allow;
    int n;
    IrNode **args;
    Val result;
    uint64_t hash;
    struct FnMemo *next;
} FnMemo;

static uint64_t memo_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    return h;
}

/* The key's hash, or 0 when an argument is not a tensor (fns passed by name
 * are not memoised). */
static uint64_t memo_hash(Sema *S, const Ast *fn, const Scope *home, const Args *a)
{
    uint64_t h = memo_mix(memo_mix((uintptr_t)fn, (uintptr_t)home), (uintptr_t)S->model);
    h = memo_mix(memo_mix(h, (uintptr_t)S->train_model), S->allow);
    for (int i = 0; i < a->n; i++) {
        if (a->v[i].kind != V_NODE)
            return 0;
        h = memo_mix(h, (uint64_t)a->v[i].node->id);
    }
    return h | 1;
}

static FnMemo *memo_find(Sema *S, uint64_t h, const Ast *fn, const Scope *home, const Args *a)
{
    if (!S->memo_cap)
        return NULL;
    for (FnMemo *e = S->memo[h & (uint64_t)(S->memo_cap - 1)]; e; e = e->next) {
        if (e->hash != h || e->fn != fn || e->home != home || e->model != S->model ||
            e->train_model != S->train_model || e->allow != S->allow || e->n != a->n)
            continue;
        int same = 1;
        for (int i = 0; i < a->n && same; i++)
            same = e->args[i] == a->v[i].node;
        if (same)
            return e;
    }
    return NULL;
}

static void memo_rehash(Sema *S)
{
    int cap = S->memo_cap ? S->memo_cap * 2 : 256;
    FnMemo **buckets = arena_alloc(S->arena, sizeof *buckets * (size_t)cap);
    memset(buckets, 0, sizeof *buckets * (size_t)cap);
    for (int i = 0; i < S->memo_cap; i++) {
        for (FnMemo *e = S->memo[i], *next; e; e = next) {
            next = e->next;
            e->next = buckets[e->hash & (uint64_t)(cap - 1)];
            buckets[e->hash & (uint64_t)(cap - 1)] = e;
        }
    }
    S->memo = buckets;
    S->memo_cap = cap;
}

static void memo_add(Sema *S, uint64_t h, const Ast *fn, const Scope *home, const Args *a, Val v)
{
    if (S->memo_n >= S->memo_cap / 2)
        memo_rehash(S);
    FnMemo *e = arena_alloc(S->arena, sizeof *e);
    *e = (FnMemo){fn, home, S->model, S->train_model, S->allow, a->n, NULL, v, h, NULL};
    e->args = arena_alloc(S->arena, sizeof *e->args * (size_t)(a->n ? a->n : 1));
    for (int i = 0; i < a->n; i++)
        e->args[i] = a->v[i].node;
    e->next = S->memo[h & (uint64_t)(S->memo_cap - 1)];
    S->memo[h & (uint64_t)(S->memo_cap - 1)] = e;
    S->memo_n++;
}

/* Inlines fn, or reuses an identical call's node; counts the bodies inlined
 * under the outermost call and stops at SEMA_MAX_INLINED with an error there. */
static Val call_fn_memo(Sema *S, const Ast *fn, Scope *home, Args *a)
{
    uint64_t h = memo_hash(S, fn, home, a);
    FnMemo *e = h ? memo_find(S, h, fn, home, a) : NULL;
    if (e)
        return e->result;
    int outermost = S->depth == 0;
    if (outermost)
        S->inlined = 0;
    if (++S->inlined > SEMA_MAX_INLINED)
        return val_err(); /* the outermost call reports */
    Val v = inline_guarded(S, fn, home ? home : S->global, fn, a);
    if (outermost && S->inlined > SEMA_MAX_INLINED) {
        diag_error(S->diag, a->whole,
                   "this call inlines more than %d fn bodies: fns are inlined, so each call "
                   "inside a fn multiplies the calls of the fns it calls",
                   SEMA_MAX_INLINED);
        return val_err();
    }
    if (h && v.kind != V_ERR)
        memo_add(S, h, fn, home, a, v);
    return v;
}

static Val call_fn(Sema *S, const Ast *fn, Scope *home, Args *a)
{
    if (is_broken(S, fn))
        return val_err();
    for (int i = 0; i < S->depth; i++) {
        if (S->stack[i] == fn) {
            diag_error(S->diag, a->call,
                       "recursive call to '%s': fns are inlined, so recursion cannot be compiled",
                       fn->name);
            diag_note(S->diag, fn->name_loc, "'%s' is declared here", fn->name);
            ptrvec_push(S->arena, &S->broken, (void *)fn);
            return val_err();
        }
    }
    if (S->depth >= SEMA_MAX_DEPTH) {
        diag_error(S->diag, a->call, "fn calls nested too deeply (more than %d)", SEMA_MAX_DEPTH);
        return val_err();
    }
    if (!check_arity(S, fn, &fn->params, a, "fn"))
        return val_err();
    return call_fn_memo(S, fn, home, a);
}

static const Ast *net_forward(const Ast *tmpl)
{
    for (int i = 0; i < tmpl->list.n; i++)
        if (tmpl->list.items[i]->kind == AST_FORWARD)
            return tmpl->list.items[i];
    return NULL;
}

static Val call_net(Sema *S, NetInst *net, Args *a)
{
    const Ast *fwd = net_forward(net->tmpl);
    if (!fwd || is_broken(S, net->tmpl))
        return val_err();
    if (S->depth >= SEMA_MAX_DEPTH) {
        diag_error(S->diag, a->call, "net calls nested too deeply (more than %d)", SEMA_MAX_DEPTH);
        return val_err();
    }
    if (!check_arity(S, net->tmpl, &fwd->params, a, "the forward of net"))
        return val_err();
    return inline_guarded(S, net->tmpl, net->scope, fwd, a);
}

static Val call_value(Sema *S, Val f, Args *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (a->v[i].kind == V_ERR)
            return val_err();
    switch (f.kind) {
    case V_FN: return call_fn(S, f.fn, f.home, a);
    case V_BUILTIN: return call_builtin(S, f.builtin, a);
    case V_NET: return call_net(S, f.net, a);
    case V_NODE:
        diag_error(S->diag, a->call, "'%s' is a value, not a function", name);
        return val_err();
    case V_ERR: break;
    }
    return val_err();
}

/* Lowers a call's arguments; named arguments belong to directives only, and to the
 * image builtins (key non-NULL: their names go there). */
static int lower_args(Sema *S, Scope *sc, const Ast *e, Args *a, const char **key)
{
    int n = e->list.n, ok = 1;
    a->n = n;
    a->v = arena_alloc(S->arena, sizeof(Val) * (size_t)(n ? n : 1));
    a->loc = arena_alloc(S->arena, sizeof(SrcLoc) * (size_t)(n ? n : 1));
    a->call = e->name_loc.line > 0 ? e->name_loc : e->loc;
    a->whole = e->loc;
    for (int i = 0; i < n; i++) {
        const Ast *arg = e->list.items[i];
        a->loc[i] = arg->loc;
        if (arg->kind == AST_ARG && key) {
            key[i] = arg->name;
            a->v[i] = sema_expr(S, sc, arg->a);
            ok &= a->v[i].kind != V_ERR;
            continue;
        }
        if (key)
            key[i] = NULL;
        if (arg->kind == AST_ARG) {
            diag_error(S->diag, arg->loc,
                       "named argument '%s' is only allowed in directive calls such as rk4(h = 0.25)",
                       arg->name);
            ok = 0;
            continue;
        }
        a->v[i] = sema_expr(S, sc, arg);
        ok &= a->v[i].kind != V_ERR;
    }
    return ok;
}

static Val lower_call(Sema *S, Scope *sc, const Ast *e)
{
    Binding *b = scope_lookup(sc, e->name);
    Val f;
    if (b && b->kind != B_TEMPLATE && b->kind != B_MODEL && b->kind != B_LET_PENDING) {
        f = b->kind == B_FN ? (Val){.kind = V_FN, .fn = b->ast, .home = b->home} : b->val;
    } else if (b) {
        Ast name = *e;
        name.kind = AST_NAME;
        name.loc = e->name_loc.line > 0 ? e->name_loc : e->loc;
        return name_binding(S, &name, b);
    } else if (sema_is_builtin(e->name)) {
        f = (Val){.kind = V_BUILTIN, .builtin = e->name};
    } else {
        SrcLoc at = e->name_loc.line > 0 ? e->name_loc : e->loc;
        const char *mod = sema_module_of(S, e->name);
        if (mod) {
            diag_error(S->diag, at, "unknown function '%s': it is defined in module '%s': add "
                       "`import \"%s\"`", e->name, mod, mod);
            return val_err();
        }
        diag_error(S->diag, at, "unknown function '%s'", e->name);
        sema_suggest(S, sc, e->name, at, 1);
        return val_err();
    }
    if (f.kind == V_ERR)
        return f;
    if (f.kind == V_BUILTIN && strcmp(e->name, "div_est") == 0)
        return lower_div_est(S, sc, e); /* its second argument names a noise, not a value */
    Args a;
    if (f.kind == V_BUILTIN && sema_is_conv_builtin(e->name)) {
        const char **key = arena_alloc(S->arena, sizeof(char *) * (size_t)(e->list.n + 1));
        if (!lower_args(S, sc, e, &a, key))
            return val_err();
        return call_conv(S, e->name, &a, key);
    }
    if (!lower_args(S, sc, e, &a, NULL))
        return val_err();
    return call_value(S, f, &a, e->name);
}

/* ---- the dispatcher ---- */

/* name is a data set of the user's file (declared before or after this use). */
static int names_data(Sema *S, const char *name)
{
    for (int i = 0; S->program && i < S->program->list.n; i++)
        if (S->program->list.items[i]->kind == AST_DATA && S->program->list.items[i]->name == name)
            return 1;
    return sema_find_data(S, name) != NULL;
}

static Val lower_field(Sema *S, Scope *sc, const Ast *e)
{
    if (S->train_model && e->a->kind == AST_NAME && !scope_lookup(sc, e->a->name))
        return sema_data_field(S, e); /* obs.y in a train block */
    if (e->a->kind == AST_NAME && !scope_lookup(sc, e->a->name) && names_data(S, e->a->name)) {
        diag_error(S->diag, e->a->loc,
                   "data set '%s' can be read only in a train block, in a solve's init (x = %s.x) "
                   "and as a solve's output times (t = %s.t)",
                   e->a->name, e->a->name, e->a->name);
        return val_err();
    }
    Val base = sema_expr(S, sc, e->a);
    if (base.kind == V_ERR)
        return base;
    if (base.kind != V_NET) {
        diag_error(S->diag, e->loc,
                   "'.%s' needs a net instance on its left (data fields like obs.y belong in train blocks)",
                   e->name);
        return val_err();
    }
    Binding *b = scope_find_local(base.net->scope, e->name);
    if (!b || (b->kind != B_PARAM && b->kind != B_NET && b->kind != B_CONST && b->kind != B_LET)) {
        diag_error(S->diag, e->loc, "net '%s' has no parameter or net named '%s'",
                   base.net->tmpl->name, e->name);
        return val_err();
    }
    Ast name = *e;
    name.kind = AST_NAME;
    return name_binding(S, &name, b);
}

Val sema_expr(Sema *S, Scope *sc, const Ast *e)
{
    switch (e->kind) {
    case AST_NUM: return val_node(ir_scalar(S->ir, e->num));
    case AST_NAME: return lower_name(S, sc, e);
    case AST_BINARY: return lower_binary(S, sc, e);
    case AST_NEG: {
        Val v = sema_tensor(S, sc, e->a);
        return v.kind == V_ERR ? v : val_node(ir_neg(S->ir, v.node));
    }
    case AST_CALL: return lower_call(S, sc, e);
    case AST_INDEX: return lower_index(S, sc, e);
    case AST_LIST: return lower_list(S, sc, e);
    case AST_FIELD: return lower_field(S, sc, e);
    case AST_DERIV:
        if (S->train_model)
            return sema_train_deriv(S, e);
        if (S->model) { /* `dx/dt` of a second-order state: its velocity, the state "dx/dt" */
            Ast named_v = {.kind = AST_NAME, .loc = e->loc, .name = sema_velocity_name(S, e->name)};
            Binding *b = named_v.name ? scope_lookup(sc, named_v.name) : NULL;
            if (b && b->kind == B_STATE)
                return lower_name(S, sc, &named_v);
        }
        diag_error(S->diag, e->loc,
                   "'d%s/dt' can only be used in train blocks, and in a model as the velocity of a "
                   "second-order state (d2%s/dt2 = ...), which '%s' is not: name its right-hand "
                   "side with a let",
                   e->name, e->name, e->name);
        return val_err();
    case AST_STR:
        diag_error(S->diag, e->loc, "a string is not a value here");
        return val_err();
    case AST_RECORD:
        diag_error(S->diag, e->loc, "a record { ... } is not a value here");
        return val_err();
    default:
        diag_error(S->diag, e->loc, "expected an expression");
        return val_err();
    }
}
