/* IR -> C99: each kernel of a model (rhs, vjp, jac, a loss and its gradient)
 * printed as one C function with the kernel table's signature (nd_kernels.h),
 * for `nodec emit-c`. The planner the JIT uses too (compiler/plan/plan.c, with
 * this back end's PlanOptions) decides where every node's values live (a
 * literal, a scalar local, straight in an input or an output, a static
 * constant table, a view into another node, a buffer in work, or computed
 * inside its single elementwise reader's loop); this file names those homes as
 * C text, prints the unbatched nodes once, and a loop over the samples that
 * computes the batched ones with plain counted loops. Sums run in the order of
 * ir_eval.c and of the JIT's inline loops, so results agree to rounding. */
#include "c_codegen.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_sets.h"

/* How a node's values are read, from its plan (cc_bind). */
typedef enum CcKind {
    CK_LIT,     /* a literal: a scalar or splat constant (text) */
    CK_VAR,     /* a scalar local nd_real named text ("v12"), or t */
    CK_PTR,     /* element k is text[off + k] */
    CK_VIEW,    /* a contiguous slice: element k is element off + k of its operand */
    CK_INLINE,  /* elementwise with one elementwise reader: computed in that reader's loop */
    CK_FUSED,   /* an OUTER only summed over the batch: accumulated in place, never stored */
} CcKind;

typedef struct CcNode {
    CcKind kind;
    const char *text;
    long off;
    int out; /* index of the output written in place, or -1 */
} CcNode;

typedef struct Cc {
    FILE *out;
    const IrModel *m;
    const PlanKernelSpec *spec;
    bool rhs;
    const char *out_name[2]; /* "dydt" for the rhs, else "out0", "out1" */
    Arena *arena;
    Plan plan;    /* the nodes in order and their homes (compiler/plan) */
    CcNode *node; /* by topo index */
    int nd;       /* d's stride */
    bool f32;     /* nd_real is float: float literals and libm's float functions */
    const char *zero, *one; /* 0 and 1 as literals of nd_real */
} Cc;

/* ---- small helpers ---- */

static const char *fmt(Cc *cc, const char *f, ...) __attribute__((format(printf, 2, 3)));

/* printf into the kernel's arena. */
static const char *fmt(Cc *cc, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int len = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = arena_alloc(cc->arena, (size_t)len + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)len + 1, f, ap);
    va_end(ap);
    return s;
}

/* A float literal ("%.9g" reads back to the same float, the f suffix keeps
 * float arithmetic float): v rounded to float first, so that a value beyond
 * float's range prints as the infinity the float program would hold. */
static void print_float(FILE *out, double v)
{
    float x = (float)v;
    if (isnan(x)) {
        fputs("NAN", out);
        return;
    }
    if (isinf(x)) {
        fputs(x > 0 ? "HUGE_VALF" : "(-HUGE_VALF)", out);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.9g", (double)x);
    bool real = strpbrk(buf, ".e") != NULL; /* "2f" is not a literal */
    fprintf(out, x < 0 || signbit(x) ? "(%s%sf)" : "%s%sf", buf, real ? "" : ".0");
}

void cc_print_real(FILE *out, double v, bool f32)
{
    if (f32)
        print_float(out, v);
    else
        cc_print_double(out, v);
}

void cc_print_double(FILE *out, double v)
{
    if (isnan(v)) {
        fputs("NAN", out);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "HUGE_VAL" : "(-HUGE_VAL)", out);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    bool real = strpbrk(buf, ".e") != NULL; /* "2" would be an int */
    fprintf(out, v < 0 || signbit(v) ? "(%s%s)" : "%s%s", buf, real ? "" : ".0");
}

static const char *lit(Cc *cc, double v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cc_print_real(f, v, cc->f32);
    fclose(f);
    const char *s = fmt(cc, "%s", buf);
    free(buf);
    return s;
}

static CcNode *info(Cc *cc, const IrNode *n)
{
    return &cc->node[plan_index(&cc->plan, n)];
}

static int size_of(const IrNode *n)
{
    return ir_shape_size(n->shape);
}

/* "row * stride + col" with the trivial parts left out. */
static const char *idx2(Cc *cc, const char *row, long stride, const char *col)
{
    if (strcmp(row, "0") == 0 || stride == 0)
        return col;
    if (strcmp(col, "0") == 0)
        return stride == 1 ? row : fmt(cc, "%s * %ld", row, stride);
    return stride == 1 ? fmt(cc, "%s + %s", row, col) : fmt(cc, "%s * %ld + %s", row, stride, col);
}

static void line(Cc *cc, int depth, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void line(Cc *cc, int depth, const char *f, ...)
{
    fprintf(cc->out, "%*s", 4 * depth, "");
    va_list ap;
    va_start(ap, f);
    vfprintf(cc->out, f, ap);
    va_end(ap);
    fputc('\n', cc->out);
}

/* ---- planning (compiler/plan) ---- */

/* One loop over the samples, each node's elements a C expression: a batched
 * scalar is one local, a local reads by name anywhere, and every buffer keeps
 * its own range of work (PlanOptions). Products follow the JIT's measured rule
 * per sample (under -DNODEC_USE_CBLAS). */
static const PlanOptions cc_plan_options = {
    .sample_locals = true, .expr_locals = true, .flat_costly = false, .reuse_work = false,
    .blas = {PLAN_BLAS_MIN_FLOPS, PLAN_BLAS_MIN_INNER}};

static bool const_is_splat(const IrNode *n)
{
    for (int k = 1; k < size_of(n); k++)
        if (memcmp(&n->value[k], &n->value[0], sizeof(double)) != 0)
            return false;
    return true;
}

/* Node i's home as C: a constant all of whose elements are equal is a literal,
 * a register a local ("v12", or t), the other homes an array and an offset
 * (the per-sample rows y_b, a_b, d_b and out<k>_b<o> are set up in the sample
 * loop, emit_sample_pointers). */
static void cc_bind(Cc *cc, int i)
{
    const IrNode *n = cc->plan.order[i];
    const PlanNode *pl = &cc->plan.node[i];
    CcNode *c = &cc->node[i];
    c->out = pl->out;
    c->off = pl->off;
    c->kind = CK_PTR;
    switch (pl->kind) {
    case PLAN_REG: case PLAN_CONST:
        if (n->op == IR_CONST && const_is_splat(n)) {
            c->kind = CK_LIT;
            c->text = lit(cc, n->value[0]);
        } else if (n->op == IR_CONST) {
            c->text = fmt(cc, "c%d", n->id);
        } else {
            c->kind = CK_VAR;
            c->text = n->op == IR_TIME ? "t" : fmt(cc, "v%d", n->id);
        }
        return;
    case PLAN_INPUT:
        c->text = n->op == IR_STATE ? "y_b" : n->op == IR_ADJOINT ? "a_b" : "d_b";
        c->off = n->offset;
        return;
    case PLAN_PARAM: c->text = "p"; c->off = n->offset; return;
    case PLAN_VIEW: c->kind = CK_VIEW; return;
    case PLAN_FIXED: c->text = "w"; return;
    case PLAN_SAMPLE: c->text = "ws"; return;
    case PLAN_OUT:
        c->text = fmt(cc, "%s_b%d", cc->out_name[cc->plan.outputs[pl->out].dst], pl->out);
        return;
    case PLAN_INLINE: c->kind = CK_INLINE; return;
    case PLAN_FUSED: c->kind = CK_FUSED; return;
    default: return;
    }
}

static void cc_plan(Cc *cc)
{
    plan_nodes(&cc->plan, cc->arena, &cc_plan_options);
    cc->node = arena_alloc(cc->arena, sizeof *cc->node * (size_t)(cc->plan.count + 1));
    for (int i = 0; i < cc->plan.count; i++)
        cc_bind(cc, i);
}

/* ---- expressions ---- */

static const char *elem(Cc *cc, const IrNode *n, const char *k);

/* Element k of operand a of n: a scalar operand broadcasts. */
static const char *operand(Cc *cc, const IrNode *n, int a, const char *k)
{
    const IrNode *x = n->args[a];
    return elem(cc, x, size_of(x) == 1 ? "0" : k);
}

/* libm's function fn for nd_real: fn itself, or its float form (tanhf) in
 * f32, where the double one would compute the expression in double; the
 * program's own helpers (nodec_*) are written in nd_real. */
static const char *math_fn(Cc *cc, const char *fn)
{
    if (!cc->f32 || strncmp(fn, "nodec_", 6) == 0)
        return fn;
    return fmt(cc, "%sf", fn);
}

static const char *unary_expr(Cc *cc, IrOp op, const char *x)
{
    static const struct {
        IrOp op;
        const char *fn;
    } fns[] = {{IR_EXP, "nodec_exp"},   {IR_LOG, "log"},         {IR_SQRT, "sqrt"},
               {IR_ABS, "fabs"},  {IR_SIN, "sin"},         {IR_COS, "cos"},
               {IR_TAN, "tan"},   {IR_TANH, "nodec_tanh"},       {IR_SIGMOID, "nodec_sigmoid"},
               {IR_RELU, "nodec_relu"}, {IR_SOFTPLUS, "nodec_softplus"},
               {IR_SIGN, "nodec_sign"}, {IR_STEP, "nodec_step"}, {IR_FLOOR, "floor"},
               {IR_ATAN, "atan"}, {IR_SINH, "sinh"}, {IR_COSH, "cosh"}, {IR_ASINH, "asinh"},
               {IR_ERF, "erf"}};
    if (op == IR_NEG)
        return fmt(cc, "(-%s)", x);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (fns[i].op == op)
            return fmt(cc, "%s(%s)", math_fn(cc, fns[i].fn), x);
    return NULL;
}

/* x^2 and x^3 by multiplication, as the JIT does (the MLP's y^3). */
static const char *pow_expr(Cc *cc, const IrNode *n, const char *x, const char *y)
{
    const IrNode *e = n->args[1];
    if (size_of(e) == 1 && ir_is_const_value(e, 2))
        return fmt(cc, "nodec_square(%s)", x);
    if (size_of(e) == 1 && ir_is_const_value(e, 3))
        return fmt(cc, "nodec_cube(%s)", x);
    return fmt(cc, "%s(%s, %s)", math_fn(cc, "pow"), x, y);
}

static const char *binary_expr(Cc *cc, const IrNode *n, const char *x, const char *y)
{
    static const struct {
        IrOp op;
        const char *sym;
        bool cmp;
    } ops[] = {{IR_ADD, "+", 0}, {IR_SUB, "-", 0}, {IR_MUL, "*", 0}, {IR_DIV, "/", 0},
               {IR_LT, "<", 1},  {IR_LE, "<=", 1}, {IR_GT, ">", 1},  {IR_GE, ">=", 1},
               {IR_EQ, "==", 1}, {IR_NE, "!=", 1}};
    if (n->op == IR_POW)
        return pow_expr(cc, n, x, y);
    if (n->op == IR_MIN || n->op == IR_MAX || n->op == IR_ATAN2)
        return fmt(cc, "%s(%s, %s)",
                   math_fn(cc, n->op == IR_MIN   ? "nodec_min"
                               : n->op == IR_MAX ? "nodec_max"
                                                 : "atan2"),
                   x, y);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (ops[i].op == n->op)
            return ops[i].cmp ? fmt(cc, "(%s %s %s ? %s : %s)", x, ops[i].sym, y, cc->one, cc->zero)
                              : fmt(cc, "(%s %s %s)", x, ops[i].sym, y);
    return NULL;
}

/* Element k of the elementwise node n from its operands' elements. */
static const char *op_expr(Cc *cc, const IrNode *n, const char *k)
{
    const char *x[3];
    for (int a = 0; a < n->nargs && a < 3; a++)
        x[a] = operand(cc, n, a, k);
    if (n->op == IR_WHERE)
        return fmt(cc, "(%s != 0 ? %s : %s)", x[0], x[1], x[2]);
    if (n->nargs == 1)
        return unary_expr(cc, n->op, x[0]);
    return binary_expr(cc, n, x[0], x[1]);
}

/* Element k (a C expression) of n, read where its plan keeps it. */
static const char *elem(Cc *cc, const IrNode *n, const char *k)
{
    const CcNode *c = info(cc, n);
    switch (c->kind) {
    case CK_LIT: case CK_VAR: return c->text;
    case CK_PTR:
        if (strcmp(k, "0") == 0)
            return fmt(cc, "%s[%ld]", c->text, c->off);
        return c->off ? fmt(cc, "%s[%ld + %s]", c->text, c->off, k) : fmt(cc, "%s[%s]", c->text, k);
    case CK_VIEW:
        if (strcmp(k, "0") == 0)
            return elem(cc, n->args[0], fmt(cc, "%ld", c->off));
        return elem(cc, n->args[0], c->off ? fmt(cc, "%ld + %s", c->off, k) : k);
    case CK_INLINE: return op_expr(cc, n, k);
    default: return cc->zero; /* CK_FUSED: never read */
    }
}

/* The address of n's first element, or NULL when it has none (for cblas). */
static const char *address(Cc *cc, const IrNode *n)
{
    const CcNode *c = info(cc, n);
    if (c->kind == CK_PTR)
        return c->off ? fmt(cc, "(%s + %ld)", c->text, c->off) : c->text;
    if (c->kind == CK_VIEW) {
        const char *base = address(cc, n->args[0]);
        return base ? fmt(cc, "(%s + %ld)", base, c->off) : NULL;
    }
    return NULL;
}

/* ---- nodes ---- */

/* for (int k = 0; k < size; k++) n[k] = element k of n's operation. */
static void emit_map(Cc *cc, int depth, const IrNode *n)
{
    if (size_of(n) == 1) {
        line(cc, depth, "%s = %s;", elem(cc, n, "0"), op_expr(cc, n, "0"));
        return;
    }
    line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
    line(cc, depth + 1, "%s = %s;", elem(cc, n, "k"), op_expr(cc, n, "k"));
}

/* A matmul as C[m,k] = A[m,inner] B[inner,k]: a vector on the left is [1,n],
 * on the right [n,1] (ir_eval.c's reading), summed in ir_eval's order. */
static void emit_matmul_loops(Cc *cc, int depth, const IrNode *n, int m, int inner, int kk)
{
    const IrNode *x = n->args[0], *y = n->args[1];
    line(cc, depth, "for (int i = 0; i < %d; i++)", m);
    line(cc, depth + 1, "for (int j = 0; j < %d; j++) {", kk);
    line(cc, depth + 2, "nd_real acc = %s;", cc->zero);
    line(cc, depth + 2, "for (int l = 0; l < %d; l++)", inner);
    line(cc, depth + 3, "acc += %s * %s;", elem(cc, x, idx2(cc, m == 1 ? "0" : "i", inner, "l")),
         elem(cc, y, idx2(cc, "l", kk, kk == 1 ? "0" : "j")));
    line(cc, depth + 2, "%s = acc;", elem(cc, n, idx2(cc, m == 1 ? "0" : "i", kk, kk == 1 ? "0" : "j")));
    line(cc, depth + 1, "}");
}

/* Under -DNODEC_USE_CBLAS, a product big enough for the JIT's rule is one
 * BLAS call: dgemv for matrix-vector and vector-matrix, dgemm otherwise. */
static bool emit_matmul_blas(Cc *cc, int depth, const IrNode *n, int m, int inner, int kk)
{
    const char *A = address(cc, n->args[0]), *Bm = address(cc, n->args[1]), *C = address(cc, n);
    if (!A || !Bm || !C || !plan_blas_pays(&cc->plan.opt.blas, (PlanMatDims){m, inner, kk}) ||
        (m == 1 && kk == 1))
        return false;
    const char p = cc->f32 ? 's' : 'd', *one = cc->one, *zero = cc->zero;
    fputs("#ifdef NODEC_USE_CBLAS\n", cc->out);
    if (kk == 1)
        line(cc, depth, "cblas_%cgemv(CblasRowMajor, CblasNoTrans, %d, %d, %s, %s, %d, %s, 1, %s, "
                        "%s, 1);", p, m, inner, one, A, inner, Bm, zero, C);
    else if (m == 1)
        line(cc, depth, "cblas_%cgemv(CblasRowMajor, CblasTrans, %d, %d, %s, %s, %d, %s, 1, %s, "
                        "%s, 1);", p, inner, kk, one, Bm, kk, A, zero, C);
    else
        line(cc, depth, "cblas_%cgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, %d, %d, %d, %s, "
                        "%s, %d, %s, %d, %s, %s, %d);", p, m, kk, inner, one, A, inner, Bm, kk, zero,
             C, kk);
    fputs("#else\n", cc->out);
    return true;
}

static void emit_matmul(Cc *cc, int depth, const IrNode *n)
{
    PlanMatDims d = plan_mat_dims(n);
    bool blas = emit_matmul_blas(cc, depth, n, d.m, d.inner, d.k);
    emit_matmul_loops(cc, depth, n, d.m, d.inner, d.k);
    if (blas)
        fputs("#endif\n", cc->out);
}

/* TRANSPOSE, OUTER and a SLICE that is not a view: out[i, j] = f(i, j). */
static void emit_grid(Cc *cc, int depth, const IrNode *n)
{
    const IrNode *x = n->args[0];
    int rows = n->shape.rows, cols = n->shape.cols;
    const char *v;
    if (n->op == IR_TRANSPOSE)
        v = elem(cc, x, idx2(cc, "j", rows, "i"));
    else if (n->op == IR_OUTER)
        v = fmt(cc, "%s * %s", elem(cc, x, "i"), elem(cc, n->args[1], "j"));
    else /* IR_SLICE */
        v = elem(cc, x, fmt(cc, "(i + %d) * %d + j + %d", n->attr[0], x->shape.cols, n->attr[1]));
    line(cc, depth, "for (int i = 0; i < %d; i++)", rows);
    line(cc, depth + 1, "for (int j = 0; j < %d; j++)", cols);
    line(cc, depth + 2, "%s = %s;", elem(cc, n, idx2(cc, "i", cols, "j")), v);
}

static void emit_pad(Cc *cc, int depth, const IrNode *n)
{
    const IrNode *x = n->args[0];
    line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
    line(cc, depth + 1, "%s = %s;", elem(cc, n, "k"), cc->zero);
    line(cc, depth, "for (int i = 0; i < %d; i++)", x->shape.rows);
    line(cc, depth + 1, "for (int j = 0; j < %d; j++)", x->shape.cols);
    line(cc, depth + 2, "%s = %s;",
         elem(cc, n, fmt(cc, "(i + %d) * %d + j + %d", n->attr[0], n->shape.cols, n->attr[1])),
         elem(cc, x, idx2(cc, "i", x->shape.cols, "j")));
}

static void emit_sum(Cc *cc, int depth, const IrNode *n)
{
    line(cc, depth, "{");
    line(cc, depth + 1, "nd_real acc = %s;", cc->zero);
    line(cc, depth + 1, "for (int k = 0; k < %d; k++)", size_of(n->args[0]));
    line(cc, depth + 2, "acc += %s;", elem(cc, n->args[0], "k"));
    line(cc, depth + 1, "%s = acc;", elem(cc, n, "0"));
    line(cc, depth, "}");
}

/* MAXR and ARGMAX: the first largest element's index (ir_eval.c's eval_argmax). */
static void emit_argmax(Cc *cc, int depth, const IrNode *n)
{
    const IrNode *x = n->args[0];
    line(cc, depth, "{");
    line(cc, depth + 1, "int at = 0;");
    line(cc, depth + 1, "for (int k = 1; k < %d; k++)", size_of(x));
    line(cc, depth + 2, "if (%s == %s && (%s > %s || %s != %s))", elem(cc, x, "at"),
         elem(cc, x, "at"), elem(cc, x, "k"), elem(cc, x, "at"), elem(cc, x, "k"), elem(cc, x, "k"));
    line(cc, depth + 3, "at = k;");
    line(cc, depth + 1, "%s = %s;", elem(cc, n, "0"),
         n->op == IR_MAXR ? elem(cc, x, "at") : "(nd_real)at");
    line(cc, depth, "}");
}

/* CONCAT and STACK: each operand copied after the previous (row-major). */
static void emit_join(Cc *cc, int depth, const IrNode *n)
{
    int at = 0;
    for (int a = 0; a < n->nargs; a++) {
        const IrNode *x = n->args[a];
        int size = size_of(x);
        if (size == 1) {
            line(cc, depth, "%s = %s;", elem(cc, n, fmt(cc, "%d", at)), elem(cc, x, "0"));
        } else {
            line(cc, depth, "for (int k = 0; k < %d; k++)", size);
            line(cc, depth + 1, "%s = %s;", elem(cc, n, at ? fmt(cc, "%d + k", at) : "k"),
                 elem(cc, x, "k"));
        }
        at += size;
    }
}

/* ---- tensor ops: ir_tensor.c's loops (ir_eval_tensor_op), in its order ---- */

static void zero_fill(Cc *cc, int depth, const IrNode *n)
{
    line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
    line(cc, depth + 1, "%s = %s;", elem(cc, n, "k"), cc->zero);
}

/* for (ch, ki, kj, oi, oj) with hh, xx the pixel read (maybe in the padding):
 * IM2COL copies it (0 outside), COL2IM adds the column element back. */
static void emit_im2col(Cc *cc, int depth, const IrNode *n)
{
    bool back = n->op == IR_COL2IM;
    IrWindow w = ir_window_of(n);
    const IrNode *x = n->args[0];
    if (back)
        zero_fill(cc, depth, n);
    line(cc, depth, "for (int ch = 0; ch < %d; ch++)", w.C);
    line(cc, depth + 1, "for (int ki = 0; ki < %d; ki++)", w.kh);
    line(cc, depth + 2, "for (int kj = 0; kj < %d; kj++)", w.kw);
    line(cc, depth + 3, "for (int oi = 0; oi < %d; oi++)", w.Ho);
    line(cc, depth + 4, "for (int oj = 0; oj < %d; oj++) {", w.Wo);
    line(cc, depth + 5, "const int hh = oi * %d + ki - %d, xx = oj * %d + kj - %d;", w.s, w.p, w.s,
         w.p);
    const char *inside = fmt(cc, "hh >= 0 && hh < %d && xx >= 0 && xx < %d", w.H, w.W);
    const char *pix = fmt(cc, "(ch * %d + hh) * %d + xx", w.H, w.W);
    const char *col = fmt(cc, "((ch * %d + ki) * %d + kj) * %d + oi * %d + oj", w.kh, w.kw,
                          w.Ho * w.Wo, w.Wo);
    if (!back) {
        line(cc, depth + 5, "%s = %s ? %s : %s;", elem(cc, n, col), inside, elem(cc, x, pix),
             cc->zero);
    } else {
        line(cc, depth + 5, "if (%s)", inside);
        line(cc, depth + 6, "%s += %s;", elem(cc, n, pix), elem(cc, x, col));
    }
    line(cc, depth + 4, "}");
}

/* The pools and their transposes: for (ch, oi, oj) over the windows. */
static void emit_pool(Cc *cc, int depth, const IrNode *n)
{
    bool back = n->op == IR_AVGPOOL_T || n->op == IR_MAXPOOL_T;
    IrWindow w = ir_window_of(n);
    const IrNode *x = n->args[0];
    const char *inv = lit(cc, 1.0 / (w.kh * w.kw));
    const char *o = fmt(cc, "(ch * %d + oi) * %d + oj", w.Ho, w.Wo);
    const char *pix = fmt(cc, "(ch * %d + oi * %d + ki) * %d + oj * %d + kj", w.H, w.s, w.W, w.s);
    if (back)
        zero_fill(cc, depth, n);
    line(cc, depth, "for (int ch = 0; ch < %d; ch++)", w.C);
    line(cc, depth + 1, "for (int oi = 0; oi < %d; oi++)", w.Ho);
    line(cc, depth + 2, "for (int oj = 0; oj < %d; oj++) {", w.Wo);
    int d = depth + 3;
    if (n->op == IR_AVGPOOL) {
        line(cc, d, "nd_real acc = %s;", cc->zero);
    } else if (n->op == IR_MAXPOOL || n->op == IR_MAXPOOL_T) {
        line(cc, d, "int best = (ch * %d + oi * %d) * %d + oj * %d;", w.H, w.s, w.W, w.s);
    }
    line(cc, d, "for (int ki = 0; ki < %d; ki++)", w.kh);
    line(cc, d + 1, "for (int kj = 0; kj < %d; kj++) {", w.kw);
    if (n->op == IR_AVGPOOL) {
        line(cc, d + 2, "acc += %s;", elem(cc, x, pix));
    } else if (n->op == IR_AVGPOOL_T) {
        line(cc, d + 2, "%s += %s * %s;", elem(cc, n, pix), elem(cc, x, o), inv);
    } else {
        line(cc, d + 2, "const int at = %s;", pix);
        line(cc, d + 2, "if (%s == %s && (%s > %s || %s != %s))", elem(cc, x, "best"),
             elem(cc, x, "best"), elem(cc, x, "at"), elem(cc, x, "best"), elem(cc, x, "at"),
             elem(cc, x, "at"));
        line(cc, d + 3, "best = at;");
    }
    line(cc, d + 1, "}");
    if (n->op == IR_AVGPOOL)
        line(cc, d, "%s = acc * %s;", elem(cc, n, o), inv);
    else if (n->op == IR_MAXPOOL)
        line(cc, d, "%s = %s;", elem(cc, n, o), elem(cc, n->args[1], "best"));
    else if (n->op == IR_MAXPOOL_T)
        line(cc, d, "%s += %s;", elem(cc, n, "best"), elem(cc, n->args[1], o));
    line(cc, depth + 2, "}");
}

/* SUMAXIS (j ascending from +0) and BROADCAST over [outer, n, inner]. */
static void emit_axis(Cc *cc, int depth, const IrNode *n)
{
    bool sum = n->op == IR_SUMAXIS;
    int outer, len, inner;
    ir_axis_split(sum ? n->args[0]->shape : n->shape, n->attr[0], &outer, &len, &inner);
    const char *wide = fmt(cc, "(o * %d + j) * %d + i", len, inner);
    const char *narrow = fmt(cc, "o * %d + i", inner);
    line(cc, depth, "for (int o = 0; o < %d; o++)", outer);
    if (sum) {
        line(cc, depth + 1, "for (int i = 0; i < %d; i++) {", inner);
        line(cc, depth + 2, "nd_real acc = %s;", cc->zero);
        line(cc, depth + 2, "for (int j = 0; j < %d; j++)", len);
        line(cc, depth + 3, "acc += %s;", elem(cc, n->args[0], wide));
        line(cc, depth + 2, "%s = acc;", elem(cc, n, narrow));
        line(cc, depth + 1, "}");
    } else {
        line(cc, depth + 1, "for (int j = 0; j < %d; j++)", len);
        line(cc, depth + 2, "for (int i = 0; i < %d; i++)", inner);
        line(cc, depth + 3, "%s = %s;", elem(cc, n, wide), elem(cc, n->args[0], narrow));
    }
}

/* A RESHAPE the planner did not make a view: a copy. */
static void emit_copy(Cc *cc, int depth, const IrNode *n)
{
    line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
    line(cc, depth + 1, "%s = %s;", elem(cc, n, "k"), elem(cc, n->args[0], "k"));
}

static void emit_node(Cc *cc, int depth, int i)
{
    IrNode *n = cc->plan.order[i];
    CcNode *c = &cc->node[i];
    bool leaf = ir_op_class(n->op) == IR_LEAF;
    if (leaf || c->kind == CK_LIT || c->kind == CK_VIEW || c->kind == CK_INLINE ||
        c->kind == CK_FUSED)
        return;
    if (c->kind == CK_VAR && plan_is_elementwise(n->op)) {
        line(cc, depth, "const nd_real %s = %s;", c->text, op_expr(cc, n, "0"));
        return;
    }
    if (c->kind == CK_VAR)
        line(cc, depth, "nd_real %s;", c->text);
    switch (n->op) {
    case IR_MATMUL: emit_matmul(cc, depth, n); return;
    case IR_TRANSPOSE: case IR_OUTER: case IR_SLICE: emit_grid(cc, depth, n); return;
    case IR_SUM: emit_sum(cc, depth, n); return;
    case IR_MAXR: case IR_ARGMAX: emit_argmax(cc, depth, n); return;
    case IR_PAD: emit_pad(cc, depth, n); return;
    case IR_CONCAT: case IR_STACK: emit_join(cc, depth, n); return;
    case IR_RESHAPE: emit_copy(cc, depth, n); return;
    case IR_IM2COL: case IR_COL2IM: emit_im2col(cc, depth, n); return;
    case IR_AVGPOOL: case IR_AVGPOOL_T: case IR_MAXPOOL: case IR_MAXPOOL_T:
        emit_pool(cc, depth, n);
        return;
    case IR_SUMAXIS: case IR_BROADCAST: emit_axis(cc, depth, n); return;
    default: emit_map(cc, depth, n); return;
    }
}

/* ---- outputs ---- */

static const char *out_ptr(Cc *cc, const PlanOutput *o)
{
    return o->offset ? fmt(cc, "(%s + %d)", cc->out_name[o->dst], o->offset)
                     : cc->out_name[o->dst];
}

/* Before the sample loop: zeros in the batch sums that samples add to. */
static void emit_sum_zeros(Cc *cc, int depth)
{
    for (int o = 0; o < cc->spec->n_outputs; o++) {
        const PlanOutput *out = &cc->spec->outputs[o];
        if (out->batch_sum && plan_is_batched(out->node)) {
            line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(out->node));
            line(cc, depth + 1, "%s[k] = %s;", out_ptr(cc, out), cc->zero);
        }
    }
}

/* Inside the sample loop: copies of outputs not computed in place, and each
 * sample's share of the batch sums (in sample order, as the JIT sums). */
static void emit_sample_outputs(Cc *cc, int depth)
{
    for (int o = 0; o < cc->spec->n_outputs; o++) {
        const PlanOutput *out = &cc->spec->outputs[o];
        const IrNode *n = out->node;
        const CcNode *c = info(cc, n);
        if (c->kind == CK_FUSED) {
            const IrNode *u = n->args[0], *v = n->args[1];
            int cols = size_of(v);
            line(cc, depth, "for (int i = 0; i < %d; i++)", size_of(u));
            line(cc, depth + 1, "for (int j = 0; j < %d; j++)", cols);
            line(cc, depth + 2, "%s[i * %d + j] += %s * %s;", out_ptr(cc, out), cols,
                 elem(cc, u, "i"), elem(cc, v, "j"));
        } else if (out->batch_sum && plan_is_batched(n)) {
            line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
            line(cc, depth + 1, "%s[k] += %s;", out_ptr(cc, out), elem(cc, n, "k"));
        } else if (!out->batch_sum && c->out != o) {
            line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(n));
            line(cc, depth + 1, "%s[b * %d + %d + k] = %s;", cc->out_name[out->dst], out->stride,
                 out->offset, elem(cc, n, "k"));
        }
    }
}

/* After the loop: the batch sum of an unbatched node is B times its value. */
static void emit_unbatched_sums(Cc *cc, int depth)
{
    for (int o = 0; o < cc->spec->n_outputs; o++) {
        const PlanOutput *out = &cc->spec->outputs[o];
        if (!out->batch_sum || plan_is_batched(out->node))
            continue;
        line(cc, depth, "for (int k = 0; k < %d; k++)", size_of(out->node));
        line(cc, depth + 1, "%s[k] = %s * (nd_real)B;", out_ptr(cc, out), elem(cc, out->node, "k"));
    }
}

/* ---- the function ---- */

static void emit_signature(Cc *cc, const char *name)
{
    if (cc->rhs) {
        fprintf(cc->out, "void %s(nd_real t, const nd_real *y, const nd_real *p, nd_real *dydt, "
                         "int64_t B, nd_real *work)\n{\n", name);
        line(cc, 1, "(void)t; (void)y; (void)p; (void)work;");
    } else {
        fprintf(cc->out, "void %s(nd_real t, const nd_real *y, const nd_real *p, const nd_real *a,\n"
                         "    const nd_real *d, nd_real *out0, nd_real *out1, int64_t B, "
                         "nd_real *work)\n{\n", name);
        line(cc, 1, "(void)t; (void)y; (void)p; (void)a; (void)d; (void)out0; (void)out1; "
                    "(void)work;");
    }
}

static void emit_constants(Cc *cc)
{
    for (int i = 0; i < cc->plan.count; i++) {
        const IrNode *n = cc->plan.order[i];
        if (n->op != IR_CONST || cc->node[i].kind != CK_PTR)
            continue;
        fprintf(cc->out, "    static const nd_real c%d[%d] = {", n->id, size_of(n));
        for (int k = 0; k < size_of(n); k++) {
            fputs(k ? (k % 4 ? ", " : ",\n        ") : "", cc->out);
            cc_print_real(cc->out, n->value[k], cc->f32);
        }
        fputs("};\n", cc->out);
    }
}

/* Pointers to the sample's rows of the inputs it reads and of the outputs
 * its nodes are computed into. */
static void emit_sample_pointers(Cc *cc, int depth)
{
    bool need[3] = {false, false, false};
    for (int i = 0; i < cc->plan.count; i++) {
        IrOp op = cc->plan.order[i]->op;
        need[0] |= op == IR_STATE;
        need[1] |= op == IR_ADJOINT;
        need[2] |= op == IR_DATA;
    }
    if (need[0])
        line(cc, depth, "const nd_real *y_b = y + b * %d;", cc->m->ny);
    if (need[1])
        line(cc, depth, "const nd_real *a_b = a + b * %d;", cc->m->ny);
    if (need[2])
        line(cc, depth, "const nd_real *d_b = d + b * %d;", cc->nd);
    for (int o = 0; o < cc->spec->n_outputs; o++) {
        const PlanOutput *out = &cc->spec->outputs[o];
        if (info(cc, out->node)->out == o && info(cc, out->node)->kind == CK_PTR)
            line(cc, depth, "nd_real *%s_b%d = %s + b * %d;", cc->out_name[out->dst], o,
                 cc->out_name[out->dst], out->stride);
    }
}

static void emit_body(Cc *cc)
{
    emit_constants(cc);
    if (cc->plan.fixed.total)
        line(cc, 1, "nd_real *w = work;");
    if (cc->plan.sample.total)
        line(cc, 1, "nd_real *ws = work + %ld;", cc->plan.fixed.total);
    for (int i = 0; i < cc->plan.count; i++)
        if (!plan_is_batched(cc->plan.order[i]))
            emit_node(cc, 1, i);
    emit_sum_zeros(cc, 1);
    line(cc, 1, "for (int64_t b = 0; b < B; b++) {");
    emit_sample_pointers(cc, 2);
    for (int i = 0; i < cc->plan.count; i++)
        if (plan_is_batched(cc->plan.order[i]))
            emit_node(cc, 2, i);
    emit_sample_outputs(cc, 2);
    line(cc, 1, "}");
    emit_unbatched_sums(cc, 1);
    fputs("}\n\n", cc->out);
}

static int cc_internal(Cc *cc, Diag *diag, int line_no, const char *name, const char *what)
{
    diag_internal(diag, __FILE__, line_no, "kernel '%s' of model '%s': %s", name, cc->m->name,
                  what);
    return -1;
}

int cc_emit_kernel(FILE *out, const IrModel *m, const char *name, bool rhs, bool f32,
                   const PlanKernelSpec *spec, CcWork *work, Diag *diag)
{
    Cc cc = {.out = out, .m = m, .spec = spec, .rhs = rhs, .f32 = f32};
    cc.zero = cc.f32 ? "0.0f" : "0.0";
    cc.one = cc.f32 ? "1.0f" : "1.0";
    cc.out_name[0] = rhs ? "dydt" : "out0";
    cc.out_name[1] = "out1";
    cc.arena = arena_new();
    plan_order(&cc.plan, cc.arena, spec->n_outputs, spec->outputs);
    const char *why = plan_check(&cc.plan, rhs, 1, spec->nd, &cc.nd);
    int rc = why ? cc_internal(&cc, diag, __LINE__, name, why) : 0;
    if (rc == 0) {
        cc_plan(&cc);
        emit_signature(&cc, name);
        emit_body(&cc);
        size_t need = (size_t)(cc.plan.fixed.total + cc.plan.sample.total);
        if (need > work->work_fixed)
            work->work_fixed = need;
    }
    arena_free(cc.arena);
    return rc;
}

/* ---- a model's kernels ---- */

bool cc_model_has_jacobian(const IrModel *m)
{
    return kernel_sets_c_has_jacobian(m);
}

int cc_emit_model_kernels(FILE *out, Arena *a, const IrModel *m, const char *prefix, bool f32,
                          CcWork *work, Diag *diag)
{
    int n_kernels = cc_model_has_jacobian(m) ? 3 : 2;
    if (!m->adj_state || (n_kernels == 3 && !m->jac)) {
        DIAG_INTERNAL(diag, "model '%s' reached the C back end underived", m->name);
        return -1;
    }
    PlanKernelSpec specs[3] = {plan_spec_rhs(a, m), plan_spec_vjp(a, m), plan_spec_jac(a, m)};
    for (int k = 0; k < n_kernels; k++) {
        char name[256];
        snprintf(name, sizeof name, "%s_%s", prefix, specs[k].name);
        if (cc_emit_kernel(out, m, name, k == 0, f32, &specs[k], work, diag))
            return -1;
    }
    return 0;
}
