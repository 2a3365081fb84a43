/* The IR interpreter: evaluates expressions for one sample (t, y, p, and
 * the cotangents a and data d of derived expressions). It is
 * the reference the JIT and the C back end are tested against, computes
 * initial values, and its kernel ir_eval_op is what the builder folds constants
 * with. Not a hot path: clarity over speed, scratch memory per call. */
#include "ir.h"
#include "ir_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_FAIL(...) INTERNAL_ERROR(__VA_ARGS__)

/* 1/(1+exp(-x)) without overflow: for x < 0, exp(x) is at most 1. */
static double sigmoid(double x)
{
    if (x >= 0)
        return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

/* log(1+exp(x)) = max(x,0) + log1p(exp(-|x|)): exact for large |x|. */
static double softplus(double x)
{
    return fmax(x, 0) + log1p(exp(-fabs(x)));
}

static double eval_unary(IrOp op, double x)
{
    switch (op) {
    case IR_NEG: return -x;
    case IR_EXP: return exp(x);
    case IR_LOG: return log(x);
    case IR_SQRT: return sqrt(x);
    case IR_ABS: return fabs(x);
    case IR_SIN: return sin(x);
    case IR_COS: return cos(x);
    case IR_TAN: return tan(x);
    case IR_TANH: return tanh(x);
    case IR_SIGMOID: return sigmoid(x);
    case IR_RELU: return x > 0 ? x : 0;
    case IR_SOFTPLUS: return softplus(x);
    case IR_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case IR_STEP: return x > 0 ? 1 : 0;
    case IR_FLOOR: return floor(x);
    case IR_ATAN: return atan(x);
    case IR_SINH: return sinh(x);
    case IR_COSH: return cosh(x);
    case IR_ASINH: return asinh(x);
    case IR_ERF: return erf(x);
    default: EVAL_FAIL("%s is not unary", ir_op_name(op));
    }
}

static double eval_binary(IrOp op, double x, double y)
{
    switch (op) {
    case IR_ADD: return x + y;
    case IR_SUB: return x - y;
    case IR_MUL: return x * y;
    case IR_DIV: return x / y;
    case IR_POW: return pow(x, y);
    case IR_LT: return x < y;
    case IR_LE: return x <= y;
    case IR_GT: return x > y;
    case IR_GE: return x >= y;
    case IR_EQ: return x == y;
    case IR_NE: return x != y;
    case IR_MIN: return x != x || x <= y ? x : y; /* NaN from either side; a tie is x */
    case IR_MAX: return x != x || x >= y ? x : y;
    case IR_ATAN2: return atan2(x, y);
    default: EVAL_FAIL("%s is not binary", ir_op_name(op));
    }
}

/* A scalar operand broadcasts: its stride is 0. */
static int stride(const IrNode *x)
{
    return x->shape.rank == 0 ? 0 : 1;
}

static void eval_elementwise(const IrNode *n, const double *const *a, double *out)
{
    int size = ir_shape_size(n->shape);
    if (n->op == IR_WHERE) {
        int sc = stride(n->args[0]), sx = stride(n->args[1]), sy = stride(n->args[2]);
        for (int i = 0; i < size; i++)
            out[i] = a[0][i * sc] != 0 ? a[1][i * sx] : a[2][i * sy];
    } else if (n->nargs == 1) {
        for (int i = 0; i < size; i++)
            out[i] = eval_unary(n->op, a[0][i]);
    } else {
        int sx = stride(n->args[0]), sy = stride(n->args[1]);
        for (int i = 0; i < size; i++)
            out[i] = eval_binary(n->op, a[0][i * sx], a[1][i * sy]);
    }
}

/* The first largest element's index (numpy's argmax: a NaN is the largest),
 * and with it the maximum, MAX folded over the elements in order. */
static int eval_argmax(const double *x, int size)
{
    int at = 0;
    for (int i = 1; i < size; i++)
        if (x[at] == x[at] && (x[i] > x[at] || x[i] != x[i]))
            at = i;
    return at;
}

/* [m,n]@[n,k], [m,n]@[n], [n]@[n,k] and [n]@[n] are all one loop nest once a
 * vector on the left is read as [1,n] and on the right as [n,1]. */
static void eval_matmul(const IrNode *n, const double *x, const double *y, double *out)
{
    IrShape xs = n->args[0]->shape, ys = n->args[1]->shape;
    int m = xs.rank == 2 ? xs.rows : 1;
    int inner = xs.rank == 2 ? xs.cols : xs.rows;
    int k = ys.rank == 2 ? ys.cols : 1;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < k; j++) {
            double acc = 0;
            for (int l = 0; l < inner; l++)
                acc += x[i * inner + l] * y[l * k + j];
            out[i * k + j] = acc;
        }
    }
}

/* A slice's extent is rows x cols of the source's row-major data (a vector is
 * a column: n x 1). */
static void eval_slice(const IrNode *n, const double *x, double *out)
{
    int src_cols = n->args[0]->shape.cols;
    for (int i = 0; i < n->shape.rows; i++)
        for (int j = 0; j < n->shape.cols; j++)
            out[i * n->shape.cols + j] = x[(n->attr[0] + i) * src_cols + n->attr[1] + j];
}

/* The transpose of eval_slice: the operand written into zeros. */
static void eval_pad(const IrNode *n, const double *x, double *out)
{
    IrShape in = n->args[0]->shape;
    memset(out, 0, sizeof *out * (size_t)ir_shape_size(n->shape));
    for (int i = 0; i < in.rows; i++)
        for (int j = 0; j < in.cols; j++)
            out[(n->attr[0] + i) * n->shape.cols + n->attr[1] + j] = x[i * in.cols + j];
}

/* CONCAT and STACK lay their operands out one after the other, row-major. */
static void eval_join(const IrNode *n, const double *const *a, double *out)
{
    for (int i = 0, at = 0; i < n->nargs; i++) {
        int size = ir_shape_size(n->args[i]->shape);
        memcpy(out + at, a[i], sizeof *out * (size_t)size);
        at += size;
    }
}

void ir_eval_op(const IrNode *n, const double *const *a, double *out)
{
    IrShape s = n->shape;
    switch (n->op) {
    case IR_CONST:
        memcpy(out, n->value, sizeof *out * (size_t)ir_shape_size(s));
        break;
    case IR_TIME:
    case IR_STATE:
    case IR_PARAM:
    case IR_ADJOINT:
    case IR_DATA:
        EVAL_FAIL("ir_eval_op on a %s leaf", ir_op_name(n->op));
    case IR_WHERE:
        eval_elementwise(n, a, out);
        break;
    case IR_MATMUL:
        eval_matmul(n, a[0], a[1], out);
        break;
    case IR_TRANSPOSE:
        for (int i = 0; i < s.rows; i++)
            for (int j = 0; j < s.cols; j++)
                out[i * s.cols + j] = a[0][j * s.rows + i];
        break;
    case IR_OUTER:
        for (int i = 0; i < s.rows; i++)
            for (int j = 0; j < s.cols; j++)
                out[i * s.cols + j] = a[0][i] * a[1][j];
        break;
    case IR_SUM: {
        double acc = 0;
        for (int i = 0, size = ir_shape_size(n->args[0]->shape); i < size; i++)
            acc += a[0][i];
        out[0] = acc;
        break;
    }
    case IR_MAXR:
        out[0] = a[0][eval_argmax(a[0], ir_shape_size(n->args[0]->shape))];
        break;
    case IR_ARGMAX:
        out[0] = eval_argmax(a[0], ir_shape_size(n->args[0]->shape));
        break;
    case IR_SLICE:
        eval_slice(n, a[0], out);
        break;
    case IR_PAD:
        eval_pad(n, a[0], out);
        break;
    case IR_CONCAT:
    case IR_STACK:
        eval_join(n, a, out);
        break;
    case IR_RESHAPE:
    case IR_IM2COL:
    case IR_COL2IM:
    case IR_AVGPOOL:
    case IR_AVGPOOL_T:
    case IR_MAXPOOL:
    case IR_MAXPOOL_T:
    case IR_SUMAXIS:
    case IR_BROADCAST:
        ir_eval_tensor_op(n, a, out);
        break;
    default:
        if (ir_op_class(n->op) != IR_UNARY && ir_op_class(n->op) != IR_BINARY)
            EVAL_FAIL("no evaluation rule for %s", ir_op_name(n->op));
        eval_elementwise(n, a, out);
        break;
    }
}

/* Values of one node: leaves point straight into t, y, p or the constant. */
/* A leaf's values: a pointer into the environment array it reads. */
static const double *leaf_values(const IrNode *n, const double *base, const char *what)
{
    if (!base)
        EVAL_FAIL("%s leaf evaluated without a %s vector", ir_op_name(n->op), what);
    return base + n->offset;
}

static const double *eval_node(Arena *scratch, const IrNode *n, const double *const *vals,
                               const IrEnv *env)
{
    switch (n->op) {
    case IR_CONST: return n->value;
    case IR_TIME: return &env->t;
    case IR_STATE: return leaf_values(n, env->y, "state");
    case IR_PARAM: return leaf_values(n, env->p, "parameter");
    case IR_ADJOINT: return leaf_values(n, env->a, "cotangent");
    case IR_DATA: return leaf_values(n, env->d, "data");
    default: break;
    }
    const double **args = arena_alloc(scratch, sizeof *args * (size_t)n->nargs);
    for (int i = 0; i < n->nargs; i++)
        args[i] = vals[n->args[i]->id];
    double *out = arena_alloc(scratch, sizeof *out * (size_t)ir_shape_size(n->shape));
    ir_eval_op(n, args, out);
    return out;
}

void ir_eval(int n, IrNode *const *roots, double t, const double *y, const double *p,
             double *const *outs)
{
    IrEnv env = {.t = t, .y = y, .p = p};
    ir_eval_env(n, roots, &env, outs);
}

void ir_eval_env(int n, IrNode *const *roots, const IrEnv *env, double *const *outs)
{
    if (n <= 0)
        return;
    Arena *scratch = arena_new();
    IrNode **order;
    int count = ir_topo_order(scratch, n, roots, &order);
    int max_id = 0;
    for (int i = 0; i < count; i++)
        max_id = order[i]->id > max_id ? order[i]->id : max_id;
    /* memo by node id: a shared subexpression is computed once */
    const double **vals = arena_alloc(scratch, sizeof *vals * (size_t)(max_id + 1));
    for (int i = 0; i < count; i++)
        vals[order[i]->id] = eval_node(scratch, order[i], vals, env);
    for (int i = 0; i < n; i++)
        memcpy(outs[i], vals[roots[i]->id], sizeof *outs[i] * (size_t)ir_shape_size(roots[i]->shape));
    arena_free(scratch);
}

double ir_eval_scalar(IrNode *root)
{
    if (!root || root->shape.rank != 0)
        EVAL_FAIL("ir_eval_scalar of a non-scalar");
    if (root->flags & (IR_BATCHED | IR_TIMED))
        EVAL_FAIL("ir_eval_scalar of an expression that depends on a state or t");
    double v;
    double *outs[1] = {&v};
    ir_eval(1, &root, 0, NULL, NULL, outs);
    return v;
}
