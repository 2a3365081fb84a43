/* Unit tests of the IR: hash-consing, simplification at construction (with
 * the shapes of the results), constant folding against hand-computed values,
 * the interpreter against libm, topological order, and printing. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static Arena *arena;
static IrBuilder *b;

static void setup(void)
{
    arena = arena_new();
    b = ir_builder_new(arena);
}

static void teardown(void)
{
    arena_free(arena);
    arena = NULL;
    b = NULL;
}

/* ---- helpers ---- */

static IrNode *vec(int n, const double *v)
{
    return ir_const(b, ir_vector_shape(n), v);
}

static IrNode *mat(int m, int n, const double *v)
{
    return ir_const(b, ir_matrix_shape(m, n), v);
}

static void assert_shape(const IrNode *n, int rank, int rows, int cols)
{
    ck_assert_int_eq(n->shape.rank, rank);
    ck_assert_int_eq(n->shape.rows, rows);
    ck_assert_int_eq(n->shape.cols, cols);
}

/* tol is absolute (Check's _tol compares with a strict <, so exact values use
 * a tiny positive tol). */
static void assert_values(const double *got, const double *want, int n, double tol)
{
    for (int i = 0; i < n; i++)
        ck_assert_double_eq_tol(got[i], want[i], tol);
}

static void assert_const(const IrNode *n, const double *want, int size)
{
    ck_assert_int_eq(n->op, IR_CONST);
    ck_assert_int_eq(ir_shape_size(n->shape), size);
    assert_values(n->value, want, size, 1e-14);
}

/* Evaluates one root for (t, y, p) into out. */
static void eval1(IrNode *root, double t, const double *y, const double *p, double *out)
{
    double *outs[1] = {out};
    ir_eval(1, &root, t, y, p, outs);
}

static char *print_str(const IrNode *n, const IrModel *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_expr(f, n, m);
    fclose(f);
    return buf;
}

static void assert_prints(const IrNode *n, const IrModel *m, const char *want)
{
    char *got = print_str(n, m);
    ck_assert_str_eq(got, want);
    free(got);
}

/* ---- hash-consing ---- */

START_TEST(test_hash_consing)
{
    double v[3] = {1, 2, 3};
    IrNode *c1 = vec(3, v), *c2 = vec(3, v);
    ck_assert_ptr_eq(c1, c2);
    double w[3] = {1, 2, 4};
    ck_assert_ptr_ne(c1, vec(3, w));
    ck_assert_ptr_ne(ir_scalar(b, 0.0), ir_scalar(b, -0.0)); /* 1/x tells them apart */
    ck_assert_ptr_eq(ir_scalar(b, NAN), ir_scalar(b, NAN));
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(3));
    ck_assert_ptr_eq(x, ir_state(b, 0, 0, ir_vector_shape(3)));
    ck_assert_ptr_ne(x, ir_param(b, 0, 0, ir_vector_shape(3)));
    ck_assert_ptr_ne(x, ir_state(b, 0, 1, ir_vector_shape(3)));
    ck_assert_ptr_eq(ir_time(b), ir_time(b));
    IrNode *e1 = ir_unary(b, IR_TANH, ir_add(b, x, c1));
    int count = ir_node_count(b);
    IrNode *e2 = ir_unary(b, IR_TANH, ir_add(b, x, vec(3, v)));
    ck_assert_ptr_eq(e1, e2);
    ck_assert_int_eq(ir_node_count(b), count); /* nothing new was built */
    ck_assert_ptr_eq(ir_element(b, x, 1, 0), ir_element(b, x, 1, 0));
    ck_assert_ptr_ne(ir_element(b, x, 1, 0), ir_element(b, x, 2, 0));
    /* ids are creation order: operands come first */
    ck_assert_int_lt(x->id, e1->args[0]->id);
    ck_assert_int_lt(e1->args[0]->id, e1->id);
}
END_TEST

START_TEST(test_hash_table_growth)
{
    /* far beyond the first table size: every node must still be found */
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *nodes[3000];
    for (int i = 0; i < 3000; i++)
        nodes[i] = ir_add(b, x, ir_scalar(b, i + 1));
    for (int i = 0; i < 3000; i++)
        ck_assert_ptr_eq(nodes[i], ir_add(b, ir_scalar(b, i + 1), x));
    ck_assert_int_eq(ir_node_count(b), 1 + 2 * 3000);
}
END_TEST

START_TEST(test_commutative)
{
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *y = ir_param(b, 0, 0, ir_scalar_shape());
    ck_assert_ptr_eq(ir_mul(b, x, y), ir_mul(b, y, x));
    ck_assert_ptr_eq(ir_add(b, x, y), ir_add(b, y, x));
    ck_assert_ptr_eq(ir_binary(b, IR_EQ, x, y), ir_binary(b, IR_EQ, y, x));
    ck_assert_ptr_eq(ir_binary(b, IR_NE, x, y), ir_binary(b, IR_NE, y, x));
    ck_assert_ptr_ne(ir_sub(b, x, y), ir_sub(b, y, x));
    ck_assert_ptr_ne(ir_div(b, x, y), ir_div(b, y, x));
    ck_assert_ptr_ne(ir_binary(b, IR_LT, x, y), ir_binary(b, IR_LT, y, x));
    IrNode *two = ir_scalar(b, 2);
    ck_assert_ptr_eq(ir_mul(b, two, x), ir_mul(b, x, two));
    /* and the shared node still computes x - y vs y - x correctly */
    double yv = 5, pv = 3, out;
    eval1(ir_sub(b, y, x), 0, &yv, &pv, &out);
    ck_assert_double_eq_tol(out, -2, 1e-15);
    eval1(ir_div(b, x, y), 0, &yv, &pv, &out);
    ck_assert_double_eq_tol(out, 5.0 / 3.0, 1e-15);
}
END_TEST

/* ---- simplification ---- */

START_TEST(test_simplify_add_sub)
{
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *v = ir_state(b, 1, 1, ir_vector_shape(3));
    IrNode *zero = ir_scalar(b, 0), *zeros3 = ir_fill(b, ir_vector_shape(3), 0);
    ck_assert_ptr_eq(ir_add(b, x, zero), x);
    ck_assert_ptr_eq(ir_add(b, zero, x), x);
    ck_assert_ptr_eq(ir_add(b, v, zero), v);
    ck_assert_ptr_eq(ir_add(b, v, zeros3), v);
    /* a scalar cannot stand for a vector result: the add stays */
    IrNode *bx = ir_add(b, x, zeros3);
    ck_assert_int_eq(bx->op, IR_ADD);
    assert_shape(bx, 1, 3, 1);
    ck_assert_ptr_eq(ir_sub(b, x, zero), x);
    IrNode *nx = ir_sub(b, zero, x);
    ck_assert_int_eq(nx->op, IR_NEG);
    ck_assert_ptr_eq(nx->args[0], x);
    IrNode *nv = ir_sub(b, zero, v);
    ck_assert_int_eq(nv->op, IR_NEG);
    assert_shape(nv, 1, 3, 1);
    IrNode *zx = ir_sub(b, zeros3, x);
    ck_assert_int_eq(zx->op, IR_SUB);
    assert_shape(zx, 1, 3, 1);
    IrNode *vv = ir_sub(b, v, v);
    double z3[3] = {0, 0, 0};
    assert_const(vv, z3, 3);
    assert_shape(vv, 1, 3, 1);
    /* x + -y -> x - y, x - -y -> x + y */
    IrNode *y = ir_param(b, 0, 0, ir_scalar_shape());
    ck_assert_ptr_eq(ir_add(b, x, ir_neg(b, y)), ir_sub(b, x, y));
    ck_assert_ptr_eq(ir_add(b, ir_neg(b, y), x), ir_sub(b, x, y));
    ck_assert_ptr_eq(ir_sub(b, x, ir_neg(b, y)), ir_add(b, x, y));
}
END_TEST

START_TEST(test_simplify_mul_div_pow)
{
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *v = ir_state(b, 1, 1, ir_vector_shape(3));
    IrNode *one = ir_scalar(b, 1), *zero = ir_scalar(b, 0);
    ck_assert_ptr_eq(ir_mul(b, x, one), x);
    ck_assert_ptr_eq(ir_mul(b, one, x), x);
    ck_assert_ptr_eq(ir_mul(b, v, one), v);
    double z3[3] = {0, 0, 0}, o3[3] = {1, 1, 1};
    IrNode *zv = ir_mul(b, zero, v); /* scalar 0 * vector: a zero vector */
    assert_const(zv, z3, 3);
    assert_shape(zv, 1, 3, 1);
    zv = ir_mul(b, v, zero);
    assert_const(zv, z3, 3);
    assert_shape(zv, 1, 3, 1);
    IrNode *zs = ir_mul(b, x, zero);
    assert_shape(zs, 0, 1, 1);
    ck_assert(ir_is_const_value(zs, 0));
    IrNode *zm = ir_mul(b, x, ir_fill(b, ir_matrix_shape(2, 2), 0));
    assert_shape(zm, 2, 2, 2);
    ck_assert(ir_is_const_value(zm, 0));
    IrNode *ones3 = ir_fill(b, ir_vector_shape(3), 1);
    IrNode *xo = ir_mul(b, x, ones3); /* scalar x * ones(3) must stay a vector */
    ck_assert_int_eq(xo->op, IR_MUL);
    assert_shape(xo, 1, 3, 1);
    IrNode *mneg = ir_mul(b, v, ir_scalar(b, -1));
    ck_assert_int_eq(mneg->op, IR_NEG);
    ck_assert_ptr_eq(mneg->args[0], v);
    ck_assert_ptr_eq(ir_div(b, x, one), x);
    ck_assert_ptr_eq(ir_div(b, v, one), v);
    ck_assert_int_eq(ir_div(b, one, x)->op, IR_DIV);
    ck_assert_ptr_eq(ir_binary(b, IR_POW, v, one), v);
    IrNode *p0 = ir_binary(b, IR_POW, v, zero);
    assert_const(p0, o3, 3);
    assert_shape(p0, 1, 3, 1);
    IrNode *p2 = ir_binary(b, IR_POW, v, ir_scalar(b, 2));
    ck_assert_int_eq(p2->op, IR_POW);
    assert_shape(p2, 1, 3, 1);
}
END_TEST

START_TEST(test_simplify_neg)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2));
    ck_assert_ptr_eq(ir_neg(b, ir_neg(b, x)), x);
    IrNode *n2 = ir_neg(b, ir_scalar(b, 2));
    double m2 = -2;
    assert_const(n2, &m2, 1);
    ck_assert_ptr_eq(n2, ir_scalar(b, -2));
}
END_TEST

START_TEST(test_simplify_structural)
{
    IrNode *m = ir_param(b, 0, 0, ir_matrix_shape(2, 3));
    IrNode *mt = ir_transpose(b, m);
    ck_assert_int_eq(mt->op, IR_TRANSPOSE);
    assert_shape(mt, 2, 3, 2);
    ck_assert_ptr_eq(ir_transpose(b, mt), m);
    IrNode *v = ir_state(b, 0, 0, ir_vector_shape(4));
    ck_assert_ptr_eq(ir_slice(b, v, 0, 0, ir_vector_shape(4)), v);
    ck_assert_ptr_eq(ir_slice(b, m, 0, 0, ir_matrix_shape(2, 3)), m);
    ck_assert_int_eq(ir_slice(b, v, 0, 0, ir_vector_shape(3))->op, IR_SLICE);
    /* a slice of a slice is one slice */
    IrNode *s = ir_slice(b, ir_slice(b, v, 1, 0, ir_vector_shape(3)), 1, 0, ir_vector_shape(2));
    ck_assert_int_eq(s->op, IR_SLICE);
    ck_assert_ptr_eq(s->args[0], v);
    ck_assert_int_eq(s->attr[0], 2);
    IrNode *x = ir_state(b, 1, 4, ir_scalar_shape());
    ck_assert_ptr_eq(ir_sum(b, x), x);
    ck_assert_ptr_eq(ir_concat(b, 1, &v), v);
    IrNode *c1 = ir_concat(b, 1, &x); /* one scalar: a vector [1] */
    ck_assert_int_eq(c1->op, IR_CONCAT);
    assert_shape(c1, 1, 1, 1);
    /* slices of concatenations pick the pieces */
    IrNode *y = ir_param(b, 1, 6, ir_scalar_shape());
    IrNode *parts[3] = {x, v, y};
    IrNode *cat = ir_concat(b, 3, parts);
    assert_shape(cat, 1, 6, 1);
    ck_assert_ptr_eq(ir_element(b, cat, 0, 0), x);
    ck_assert_ptr_eq(ir_element(b, cat, 5, 0), y);
    ck_assert_ptr_eq(ir_slice(b, cat, 1, 0, ir_vector_shape(4)), v);
    ck_assert_ptr_eq(ir_element(b, cat, 2, 0), ir_element(b, v, 1, 0));
    /* nested concatenations flatten */
    IrNode *inner[2] = {x, y}, *outer[2];
    outer[0] = ir_concat(b, 2, inner);
    outer[1] = v;
    IrNode *flat[3] = {x, y, v};
    ck_assert_ptr_eq(ir_concat(b, 2, outer), ir_concat(b, 3, flat));
    /* adjacent pieces of one vector join: [v[0], v[1], v[2], v[3]] is v */
    IrNode *els[4];
    for (int i = 0; i < 4; i++)
        els[i] = ir_element(b, v, i, 0);
    ck_assert_ptr_eq(ir_concat(b, 4, els), v);
    IrNode *mid = ir_concat(b, 2, els + 1);
    ck_assert_ptr_eq(mid, ir_slice(b, v, 1, 0, ir_vector_shape(2)));
    IrNode *gap[3] = {els[0], els[2], els[3]};
    IrNode *g = ir_concat(b, 3, gap);
    ck_assert_int_eq(g->op, IR_CONCAT);
    ck_assert_int_eq(g->nargs, 2);
    ck_assert_ptr_eq(g->args[1], ir_slice(b, v, 2, 0, ir_vector_shape(2)));
    IrNode *sv[2] = {ir_slice(b, v, 0, 0, ir_vector_shape(3)), els[3]};
    ck_assert_ptr_eq(ir_concat(b, 2, sv), v);
    IrNode *rev[2] = {els[1], els[0]};
    ck_assert_int_eq(ir_concat(b, 2, rev)->op, IR_CONCAT);
}
END_TEST

START_TEST(test_simplify_where)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(3));
    IrNode *y = ir_param(b, 0, 0, ir_vector_shape(3));
    IrNode *s = ir_param(b, 1, 3, ir_scalar_shape());
    ck_assert_ptr_eq(ir_where(b, ir_scalar(b, 1), x, y), x);
    ck_assert_ptr_eq(ir_where(b, ir_scalar(b, 0), x, y), y);
    ck_assert_ptr_eq(ir_where(b, ir_fill(b, ir_vector_shape(3), 2), x, y), x);
    double mixed[3] = {1, 0, 1};
    IrNode *w = ir_where(b, vec(3, mixed), x, y);
    ck_assert_int_eq(w->op, IR_WHERE);
    /* the chosen branch is a scalar but the result is a vector: stays */
    IrNode *ws = ir_where(b, ir_scalar(b, 1), s, y);
    ck_assert_int_eq(ws->op, IR_WHERE);
    assert_shape(ws, 1, 3, 1);
    ck_assert_ptr_eq(ir_where(b, ir_binary(b, IR_LT, x, y), x, x), x);
    IrNode *c = ir_binary(b, IR_GT, s, ir_scalar(b, 0));
    assert_shape(ir_where(b, c, s, y), 1, 3, 1);
}
END_TEST

/* ---- constant folding, against values computed by hand ---- */

START_TEST(test_fold_unary)
{
    struct { IrOp op; double x, want; } cases[] = {
        {IR_NEG, 1.5, -1.5},
        {IR_EXP, 1, 2.718281828459045},
        {IR_LOG, 2.718281828459045, 1},
        {IR_SQRT, 2.25, 1.5},
        {IR_ABS, -3, 3},
        {IR_SIN, 0.5235987755982988, 0.5},          /* pi/6 */
        {IR_COS, 1.0471975511965976, 0.5},          /* pi/3 */
        {IR_TAN, 0.7853981633974483, 1},            /* pi/4 */
        {IR_TANH, 0.5493061443340549, 0.5},         /* atanh(1/2) = log(3)/2 */
        {IR_SIGMOID, 1.0986122886681098, 0.75},     /* log 3: 1/(1+1/3) */
        {IR_SIGMOID, -1.0986122886681098, 0.25},
        {IR_RELU, -2, 0},
        {IR_RELU, 2.5, 2.5},
        {IR_SOFTPLUS, 0, 0.6931471805599453},       /* log 2 */
        {IR_SOFTPLUS, 1.0986122886681098, 1.3862943611198906}, /* log(1+3) */
        {IR_SIGN, -0.1, -1},
        {IR_SIGN, 0, 0},
        {IR_SIGN, 7, 1},
        {IR_STEP, 0, 0},
        {IR_STEP, 0.1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IrNode *r = ir_unary(b, cases[i].op, ir_scalar(b, cases[i].x));
        ck_assert_int_eq(r->op, IR_CONST);
        ck_assert_double_eq_tol(r->value[0], cases[i].want, 1e-14);
    }
    double v[3] = {-1, 0, 4}, want[3] = {1, 0, 2};
    IrNode *r = ir_unary(b, IR_SQRT, ir_unary(b, IR_ABS, vec(3, v)));
    assert_const(r, want, 3);
    assert_shape(r, 1, 3, 1);
}
END_TEST

START_TEST(test_fold_binary)
{
    double a[4] = {1, 2, 3, 4}, c[4] = {4, 3, 2, 1};
    IrNode *A = mat(2, 2, a), *C = mat(2, 2, c), *two = ir_scalar(b, 2);
    double add[4] = {5, 5, 5, 5}, sub[4] = {-3, -1, 1, 3}, mul[4] = {4, 6, 6, 4};
    double div[4] = {0.25, 2.0 / 3.0, 1.5, 4}, pw[4] = {1, 4, 9, 16}, sdiv[4] = {2, 1, 2.0 / 3.0, 0.5};
    assert_const(ir_add(b, A, C), add, 4);
    assert_const(ir_sub(b, A, C), sub, 4);
    assert_const(ir_mul(b, A, C), mul, 4);
    assert_const(ir_div(b, A, C), div, 4);
    assert_const(ir_binary(b, IR_POW, A, two), pw, 4);
    assert_const(ir_div(b, two, A), sdiv, 4); /* scalar broadcasts on the left */
    assert_shape(ir_div(b, two, A), 2, 2, 2);
    double lt[4] = {1, 0, 0, 0}, le[4] = {1, 1, 0, 0}, gt[4] = {0, 0, 1, 1};
    double eq[4] = {0, 1, 0, 0}, ne[4] = {1, 0, 1, 1}, ge2[4] = {0, 1, 1, 1};
    double av[4] = {1, 2, 3, 4}, bv[4] = {4, 2, 2, 1};
    IrNode *X = vec(4, av), *Y = vec(4, bv);
    assert_const(ir_binary(b, IR_LT, X, Y), lt, 4);
    assert_const(ir_binary(b, IR_LE, X, Y), le, 4);
    assert_const(ir_binary(b, IR_GT, X, Y), gt, 4);
    assert_const(ir_binary(b, IR_EQ, X, Y), eq, 4);
    assert_const(ir_binary(b, IR_NE, X, Y), ne, 4);
    assert_const(ir_binary(b, IR_GE, X, two), ge2, 4);
    double wv[4] = {1, 4, 4, 4}; /* where(X < Y, X, 4) */
    IrNode *w = ir_where(b, ir_binary(b, IR_LT, X, Y), X, ir_scalar(b, 4));
    assert_const(w, wv, 4);
}
END_TEST

START_TEST(test_fold_linear_algebra)
{
    double a[6] = {1, 2, 3, 4, 5, 6}, bb[6] = {7, 8, 9, 10, 11, 12};
    IrNode *A = mat(2, 3, a), *B = mat(3, 2, bb);
    double ab[4] = {58, 64, 139, 154};
    IrNode *AB = ir_matmul(b, A, B);
    assert_const(AB, ab, 4);
    assert_shape(AB, 2, 2, 2);
    double v[3] = {1, 2, 3}, av[2] = {14, 32};
    IrNode *Av = ir_matmul(b, A, vec(3, v));
    assert_const(Av, av, 2);
    assert_shape(Av, 1, 2, 1);
    double w[3] = {4, 5, 6}, dot = 32;
    IrNode *vw = ir_matmul(b, vec(3, v), vec(3, w));
    assert_const(vw, &dot, 1);
    assert_shape(vw, 0, 1, 1);
    double u[2] = {1, 2}, ua[3] = {9, 12, 15};
    IrNode *uA = ir_matmul(b, vec(2, u), A);
    assert_const(uA, ua, 3);
    assert_shape(uA, 1, 3, 1);
    double at[6] = {1, 4, 2, 5, 3, 6};
    IrNode *At = ir_transpose(b, A);
    assert_const(At, at, 6);
    assert_shape(At, 2, 3, 2);
    double x2[2] = {1, 2}, y3[3] = {3, 4, 5}, out[6] = {3, 4, 5, 6, 8, 10};
    IrNode *o = ir_outer(b, vec(2, x2), vec(3, y3));
    assert_const(o, out, 6);
    assert_shape(o, 2, 2, 3);
    double s = 21;
    assert_const(ir_sum(b, A), &s, 1);
}
END_TEST

START_TEST(test_fold_slice_concat_stack)
{
    double a[6] = {1, 2, 3, 4, 5, 6}, v[4] = {10, 20, 30, 40};
    IrNode *A = mat(2, 3, a), *V = vec(4, v);
    double e = 4;
    assert_const(ir_element(b, A, 1, 0), &e, 1);
    double sub[4] = {2, 3, 5, 6};
    IrNode *S = ir_slice(b, A, 0, 1, ir_matrix_shape(2, 2));
    assert_const(S, sub, 4);
    assert_shape(S, 2, 2, 2);
    double col[2] = {3, 6}; /* a vector from a matrix is a column segment */
    assert_const(ir_slice(b, A, 0, 2, ir_vector_shape(2)), col, 2);
    double mid[2] = {20, 30};
    assert_const(ir_slice(b, V, 1, 0, ir_vector_shape(2)), mid, 2);
    IrNode *parts[3] = {ir_scalar(b, -1), V, ir_scalar(b, 7)};
    double cat[6] = {-1, 10, 20, 30, 40, 7};
    IrNode *C = ir_concat(b, 3, parts);
    assert_const(C, cat, 6);
    assert_shape(C, 1, 6, 1);
    double r1[2] = {1, 2}, r2[2] = {3, 4}, st[4] = {1, 2, 3, 4};
    IrNode *rows[2] = {vec(2, r1), vec(2, r2)};
    IrNode *M = ir_stack(b, 2, rows);
    assert_const(M, st, 4);
    assert_shape(M, 2, 2, 2);
    IrNode *sc[3] = {ir_scalar(b, 5), ir_scalar(b, 6), ir_scalar(b, 7)};
    double sv[3] = {5, 6, 7};
    IrNode *SV = ir_stack(b, 3, sc);
    assert_const(SV, sv, 3);
    assert_shape(SV, 1, 3, 1);
}
END_TEST

/* ---- the interpreter against libm ---- */

static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_relu(double x) { return fmax(x, 0); }
static double ref_softplus(double x) { return log(1 + exp(x)); }
static double ref_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }
static double ref_step(double x) { return x > 0 ? 1 : 0; }
static double ref_neg(double x) { return -x; }

START_TEST(test_eval_unary)
{
    struct { IrOp op; double (*f)(double); } ops[] = {
        {IR_NEG, ref_neg}, {IR_EXP, exp}, {IR_LOG, log}, {IR_SQRT, sqrt}, {IR_ABS, fabs},
        {IR_SIN, sin}, {IR_COS, cos}, {IR_TAN, tan}, {IR_TANH, tanh},
        {IR_SIGMOID, ref_sigmoid}, {IR_RELU, ref_relu}, {IR_SOFTPLUS, ref_softplus},
        {IR_SIGN, ref_sign}, {IR_STEP, ref_step},
    };
    double pos[6] = {0.25, 1.5, 3.0, 0.5, 2.0, 0.75};
    double mixed[6] = {-1.5, 0, 2.0, -0.3, 0.7, 1.1};
    IrNode *v = ir_state(b, 0, 0, ir_vector_shape(6));
    IrNode *m = ir_state(b, 0, 0, ir_matrix_shape(2, 3)); /* the same data as a matrix */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        bool domain = ops[i].op == IR_LOG || ops[i].op == IR_SQRT;
        const double *y = domain ? pos : mixed;
        double out[6], outm[6];
        eval1(ir_unary(b, ops[i].op, v), 0, y, NULL, out);
        eval1(ir_unary(b, ops[i].op, m), 0, y, NULL, outm);
        for (int k = 0; k < 6; k++) {
            ck_assert_double_eq_tol(out[k], ops[i].f(y[k]), 1e-15);
            ck_assert_double_eq_tol(outm[k], ops[i].f(y[k]), 1e-15);
        }
    }
    double x = 0.3, out;
    eval1(ir_unary(b, IR_TANH, ir_state(b, 0, 0, ir_scalar_shape())), 0, &x, NULL, &out);
    ck_assert_double_eq_tol(out, tanh(0.3), 1e-15);
}
END_TEST

START_TEST(test_eval_binary)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(3));
    IrNode *p = ir_param(b, 0, 0, ir_vector_shape(3));
    IrNode *s = ir_param(b, 1, 3, ir_scalar_shape());
    double y[3] = {1, 2, 3}, pv[4] = {3, 2, 0.5, 2};
    IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_POW, IR_LT, IR_LE, IR_GT, IR_GE, IR_EQ, IR_NE};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        double vv[3], vs[3], sv[3];
        eval1(ir_binary(b, ops[i], x, p), 0, y, pv, vv);
        eval1(ir_binary(b, ops[i], x, s), 0, y, pv, vs);
        eval1(ir_binary(b, ops[i], s, x), 0, y, pv, sv);
        for (int k = 0; k < 3; k++) {
            double a = y[k], c = pv[k], sc = pv[3], want[3];
            switch (ops[i]) {
            case IR_ADD: want[0] = a + c; want[1] = a + sc; want[2] = sc + a; break;
            case IR_SUB: want[0] = a - c; want[1] = a - sc; want[2] = sc - a; break;
            case IR_MUL: want[0] = a * c; want[1] = a * sc; want[2] = sc * a; break;
            case IR_DIV: want[0] = a / c; want[1] = a / sc; want[2] = sc / a; break;
            case IR_POW: want[0] = pow(a, c); want[1] = pow(a, sc); want[2] = pow(sc, a); break;
            case IR_LT: want[0] = a < c; want[1] = a < sc; want[2] = sc < a; break;
            case IR_LE: want[0] = a <= c; want[1] = a <= sc; want[2] = sc <= a; break;
            case IR_GT: want[0] = a > c; want[1] = a > sc; want[2] = sc > a; break;
            case IR_GE: want[0] = a >= c; want[1] = a >= sc; want[2] = sc >= a; break;
            case IR_EQ: want[0] = a == c; want[1] = a == sc; want[2] = sc == a; break;
            default: want[0] = a != c; want[1] = a != sc; want[2] = sc != a; break;
            }
            ck_assert_double_eq_tol(vv[k], want[0], 1e-15);
            ck_assert_double_eq_tol(vs[k], want[1], 1e-15);
            ck_assert_double_eq_tol(sv[k], want[2], 1e-15);
        }
    }
    /* where with broadcasting of the condition and of a branch */
    double w[3];
    eval1(ir_where(b, ir_binary(b, IR_GT, x, s), x, ir_neg(b, s)), 0, y, pv, w);
    double ww[3] = {-2, -2, 3};
    assert_values(w, ww, 3, 1e-12);
    /* a scalar condition selects whole branches */
    eval1(ir_where(b, ir_binary(b, IR_LT, s, ir_time(b)), x, p), 2.5, y, pv, w);
    assert_values(w, y, 3, 1e-12);
    eval1(ir_where(b, ir_binary(b, IR_LT, s, ir_time(b)), x, p), 1.5, y, pv, w);
    assert_values(w, pv, 3, 1e-12);
    /* a matrix with a scalar */
    IrNode *M = ir_param(b, 0, 0, ir_matrix_shape(2, 2));
    double mm[4];
    eval1(ir_mul(b, ir_time(b), M), 0.5, NULL, pv, mm);
    double want_m[4] = {1.5, 1, 0.25, 1};
    assert_values(mm, want_m, 4, 1e-15);
}
END_TEST

START_TEST(test_eval_stable)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(4));
    double y[4] = {800, -800, 30, -30}, sg[4], sp[4];
    eval1(ir_unary(b, IR_SIGMOID, x), 0, y, NULL, sg);
    eval1(ir_unary(b, IR_SOFTPLUS, x), 0, y, NULL, sp);
    for (int i = 0; i < 4; i++) {
        ck_assert(isfinite(sg[i]));
        ck_assert(isfinite(sp[i]));
    }
    ck_assert_double_eq(sg[0], 1);
    ck_assert_double_eq(sg[1], 0);
    ck_assert_double_eq_tol(sg[2], 1 - 9.357622968839299e-14, 1e-15);
    ck_assert(sg[2] < 1);
    /* e^-30 / (1 + e^-30), to relative precision */
    ck_assert_double_eq_tol(sg[3] / 9.357622968839299e-14, 1, 1e-12);
    ck_assert_double_eq(sp[0], 800);
    ck_assert_double_eq(sp[1], 0);
    ck_assert_double_eq_tol(sp[2], 30 + 9.357622968840175e-14, 1e-13);
    ck_assert_double_eq_tol(sp[3] / 9.357622968840175e-14, 1, 1e-12); /* log1p(e^-30) */
}
END_TEST

START_TEST(test_eval_matmul)
{
    IrNode *A = ir_param(b, 0, 0, ir_matrix_shape(2, 3));
    IrNode *B = ir_param(b, 1, 6, ir_matrix_shape(3, 2));
    IrNode *v = ir_state(b, 0, 0, ir_vector_shape(3));
    IrNode *w = ir_state(b, 1, 3, ir_vector_shape(3));
    IrNode *u = ir_state(b, 2, 6, ir_vector_shape(2));
    double p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    double y[8] = {1, 2, 3, 4, 5, 6, 1, 2};
    double ab[4], av[2], vw, ua[3];
    IrNode *roots[4] = {ir_matmul(b, A, B), ir_matmul(b, A, v), ir_matmul(b, v, w), ir_matmul(b, u, A)};
    assert_shape(roots[0], 2, 2, 2);
    assert_shape(roots[1], 1, 2, 1);
    assert_shape(roots[2], 0, 1, 1);
    assert_shape(roots[3], 1, 3, 1);
    double *outs[4] = {ab, av, &vw, ua};
    ir_eval(4, roots, 0, y, p, outs);
    double want_ab[4] = {58, 64, 139, 154}, want_av[2] = {14, 32}, want_ua[3] = {9, 12, 15};
    assert_values(ab, want_ab, 4, 1e-12);
    assert_values(av, want_av, 2, 1e-12);
    ck_assert_double_eq(vw, 32);
    assert_values(ua, want_ua, 3, 1e-12);
    /* transpose, outer, sum of non-constant operands */
    double at[6], o[6], s;
    IrNode *r2[3] = {ir_transpose(b, A), ir_outer(b, u, v), ir_sum(b, A)};
    double *outs2[3] = {at, o, &s};
    ir_eval(3, r2, 0, y, p, outs2);
    double want_at[6] = {1, 4, 2, 5, 3, 6}, want_o[6] = {1, 2, 3, 2, 4, 6};
    assert_values(at, want_at, 6, 1e-12);
    assert_values(o, want_o, 6, 1e-12);
    ck_assert_double_eq(s, 21);
    /* matmul by zeros is zeros of the result shape */
    IrNode *z = ir_matmul(b, A, ir_fill(b, ir_vector_shape(3), 0));
    assert_shape(z, 1, 2, 1);
    ck_assert(ir_is_const_value(z, 0));
}
END_TEST

START_TEST(test_eval_slice_concat_stack)
{
    IrNode *M = ir_param(b, 0, 0, ir_matrix_shape(3, 3));
    IrNode *v = ir_state(b, 0, 0, ir_vector_shape(4));
    IrNode *x = ir_state(b, 1, 4, ir_scalar_shape());
    double p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[5] = {10, 20, 30, 40, 50};
    double e, sub[4], col[2], seg[2], cat[7], st[8];
    IrNode *parts[3] = {x, v, ir_element(b, M, 2, 2)};
    IrNode *rows[2] = {v, ir_slice(b, ir_concat(b, 3, parts), 1, 0, ir_vector_shape(4))};
    IrNode *roots[6] = {
        ir_element(b, M, 1, 2), ir_slice(b, M, 1, 1, ir_matrix_shape(2, 2)),
        ir_slice(b, M, 1, 0, ir_vector_shape(2)), ir_slice(b, v, 2, 0, ir_vector_shape(2)),
        ir_concat(b, 3, parts), ir_stack(b, 2, rows),
    };
    double *outs[6] = {&e, sub, col, seg, cat, st};
    ir_eval(6, roots, 0, y, p, outs);
    ck_assert_double_eq(e, 6);
    double want_sub[4] = {5, 6, 8, 9}, want_col[2] = {4, 7}, want_seg[2] = {30, 40};
    double want_cat[7] = {50, 10, 20, 30, 40, 9, 0}, want_st[8] = {10, 20, 30, 40, 10, 20, 30, 40};
    assert_values(sub, want_sub, 4, 1e-12);
    assert_values(col, want_col, 2, 1e-12);
    assert_values(seg, want_seg, 2, 1e-12);
    assert_values(cat, want_cat, 6, 1e-12);
    assert_values(st, want_st, 8, 1e-12);
    assert_shape(roots[5], 2, 2, 4);
    /* elements of a stack, and slices of a stack, without the stack */
    IrNode *srows[2] = {v, ir_unary(b, IR_EXP, v)};
    IrNode *S = ir_stack(b, 2, srows);
    ck_assert_ptr_eq(ir_element(b, S, 0, 3), ir_element(b, v, 3, 0));
    IrNode *sub2 = ir_slice(b, S, 0, 1, ir_matrix_shape(2, 2));
    double got[4];
    eval1(sub2, 0, y, p, got);
    double want2[4] = {20, 30, exp(20), exp(30)};
    assert_values(got, want2, 4, 1e-6);
    IrNode *colS = ir_slice(b, S, 0, 1, ir_vector_shape(2));
    double gc[2];
    eval1(colS, 0, y, p, gc);
    ck_assert_double_eq(gc[0], 20);
    ck_assert_double_eq_tol(gc[1] / exp(20), 1, 1e-15);
}
END_TEST

START_TEST(test_eval_shared_and_time)
{
    /* x * t + x * t shares x * t; both roots come out */
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *xt = ir_mul(b, x, ir_time(b));
    IrNode *r = ir_add(b, xt, xt);
    ck_assert_ptr_eq(r->args[0], r->args[1]);
    double y = 3, o1, o2;
    IrNode *roots[2] = {r, xt};
    double *outs[2] = {&o1, &o2};
    ir_eval(2, roots, 0.5, &y, NULL, outs);
    ck_assert_double_eq(o1, 3);
    ck_assert_double_eq(o2, 1.5);
    IrNode *k = ir_add(b, ir_scalar(b, 2), ir_scalar(b, 0.5));
    ck_assert_double_eq(ir_eval_scalar(k), 2.5);
    IrNode *p = ir_param(b, 0, 0, ir_scalar_shape());
    ck_assert_int_eq(ir_mul(b, p, ir_scalar(b, 3))->op, IR_MUL);
}
END_TEST

/* ---- flags, order ---- */

START_TEST(test_flags)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2));
    IrNode *W = ir_param(b, 0, 0, ir_matrix_shape(2, 2));
    IrNode *t = ir_time(b);
    ck_assert_uint_eq(x->flags, IR_BATCHED);
    ck_assert_uint_eq(t->flags, IR_TIMED);
    ck_assert_uint_eq(W->flags, 0);
    ck_assert_uint_eq(ir_scalar(b, 1)->flags, 0);
    IrNode *Wx = ir_matmul(b, W, x);
    ck_assert_uint_eq(Wx->flags, IR_BATCHED);
    IrNode *Wt = ir_mul(b, W, t);
    ck_assert_uint_eq(Wt->flags, IR_TIMED);
    IrNode *both = ir_add(b, ir_unary(b, IR_TANH, Wx), ir_sum(b, Wt));
    ck_assert_uint_eq(both->flags, IR_BATCHED | IR_TIMED);
    IrNode *parts[2] = {ir_element(b, x, 0, 0), t};
    ck_assert_uint_eq(ir_concat(b, 2, parts)->flags, IR_BATCHED | IR_TIMED);
    IrNode *w = ir_where(b, ir_binary(b, IR_GT, t, ir_scalar(b, 1)), W, ir_transpose(b, W));
    ck_assert_uint_eq(w->flags, IR_TIMED);
    ck_assert_uint_eq(ir_element(b, x, 1, 0)->flags, IR_BATCHED);
}
END_TEST

START_TEST(test_topo_order)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2));
    IrNode *W = ir_param(b, 0, 0, ir_matrix_shape(2, 2));
    IrNode *c = ir_param(b, 1, 4, ir_vector_shape(2));
    IrNode *h = ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, W, x), c));
    IrNode *r1 = ir_sub(b, ir_matmul(b, W, h), x);
    IrNode *r2 = ir_mul(b, h, h);
    ir_time(b); /* unreachable: must not appear */
    IrNode *roots[3] = {r1, r2, r1};
    IrNode **order;
    int n = ir_topo_order(arena, 3, roots, &order);
    /* x, W, c, W@x, +, tanh, W@h, -, * */
    ck_assert_int_eq(n, 9);
    for (int i = 0; i < n; i++) {
        ck_assert_int_ne(order[i]->op, IR_TIME);
        for (int j = i + 1; j < n; j++)
            ck_assert_ptr_ne(order[i], order[j]); /* each once */
        for (int a = 0; a < order[i]->nargs; a++) {
            int found = -1;
            for (int j = 0; j < n; j++)
                if (order[j] == order[i]->args[a])
                    found = j;
            ck_assert_int_ge(found, 0);
            ck_assert_int_lt(found, i); /* operands before users */
        }
    }
}
END_TEST

/* ---- printing ---- */

static IrVar g_states[2], g_params[5];
static IrModel g_model;

/* A model with states x (scalar), y[3] and params W[3,3], b[3], a, c, d. */
static const IrModel *print_model(void)
{
    memset(&g_model, 0, sizeof g_model);
    g_states[0] = (IrVar){.name = "x", .shape = ir_scalar_shape(), .offset = 0};
    g_states[1] = (IrVar){.name = "y", .shape = ir_vector_shape(3), .offset = 1};
    g_params[0] = (IrVar){.name = "W", .shape = ir_matrix_shape(3, 3), .offset = 0};
    g_params[1] = (IrVar){.name = "b", .shape = ir_vector_shape(3), .offset = 9};
    g_params[2] = (IrVar){.name = "a", .shape = ir_scalar_shape(), .offset = 12};
    g_params[3] = (IrVar){.name = "c", .shape = ir_scalar_shape(), .offset = 13};
    g_params[4] = (IrVar){.name = "d", .shape = ir_scalar_shape(), .offset = 14};
    g_model.name = "M";
    g_model.states = g_states;
    g_model.n_states = 2;
    g_model.ny = 4;
    g_model.params = g_params;
    g_model.n_params = 5;
    g_model.np = 15;
    return &g_model;
}

START_TEST(test_print_expr)
{
    const IrModel *m = print_model();
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape()), *y = ir_state(b, 1, 1, ir_vector_shape(3));
    IrNode *W = ir_param(b, 0, 0, ir_matrix_shape(3, 3)), *bb = ir_param(b, 1, 9, ir_vector_shape(3));
    IrNode *a = ir_param(b, 2, 12, ir_scalar_shape()), *c = ir_param(b, 3, 13, ir_scalar_shape());
    IrNode *d = ir_param(b, 4, 14, ir_scalar_shape()), *t = ir_time(b), *two = ir_scalar(b, 2);
    assert_prints(ir_mul(b, ir_mul(b, two, x), t), m, "2 * x * t");
    assert_prints(ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, W, y), bb)), m, "tanh(W @ y + b)");
    IrNode *x2 = ir_binary(b, IR_POW, x, two);
    assert_prints(ir_neg(b, x2), m, "-(x ^ 2)");
    assert_prints(ir_binary(b, IR_POW, ir_neg(b, x), two), m, "(-x) ^ 2");
    assert_prints(ir_sub(b, a, ir_sub(b, c, d)), m, "a - (c - d)");
    assert_prints(ir_sub(b, ir_sub(b, a, c), d), m, "a - c - d");
    assert_prints(ir_mul(b, ir_add(b, a, c), d), m, "(a + c) * d");
    assert_prints(ir_div(b, a, ir_mul(b, c, d)), m, "a / (c * d)");
    assert_prints(ir_binary(b, IR_POW, ir_binary(b, IR_POW, a, c), d), m, "(a ^ c) ^ d");
    assert_prints(ir_binary(b, IR_POW, a, ir_binary(b, IR_POW, c, d)), m, "a ^ c ^ d");
    assert_prints(ir_binary(b, IR_POW, a, ir_scalar(b, -1)), m, "a ^ (-1)");
    assert_prints(ir_matmul(b, ir_transpose(b, W), ir_binary(b, IR_POW, y, ir_scalar(b, 3))), m,
                  "transpose(W) @ y ^ 3");
    assert_prints(ir_element(b, y, 1, 0), m, "y[1]");
    assert_prints(ir_slice(b, y, 0, 0, ir_vector_shape(2)), m, "y[0:2]");
    assert_prints(ir_element(b, W, 1, 0), m, "W[1, 0]");
    assert_prints(ir_slice(b, W, 0, 1, ir_matrix_shape(2, 2)), m, "W[0:2, 1:3]");
    IrNode *lit[2] = {ir_element(b, y, 1, 0), ir_neg(b, ir_element(b, y, 0, 0))};
    assert_prints(ir_concat(b, 2, lit), m, "[y[1], -y[0]]");
    assert_prints(ir_where(b, ir_binary(b, IR_GT, x, ir_scalar(b, 0)), x, ir_neg(b, x)), m,
                  "where(x > 0, x, -x)");
    assert_prints(ir_sum(b, ir_binary(b, IR_POW, ir_sub(b, y, bb), two)), m, "sum((y - b) ^ 2)");
    assert_prints(ir_outer(b, y, bb), m, "outer(y, b)");
    assert_prints(ir_unary(b, IR_EXP, ir_neg(b, ir_element(b, ir_add(b, y, bb), 2, 0))), m,
                  "exp(-(y + b)[2])");
    /* without a model: offsets */
    assert_prints(ir_add(b, ir_element(b, y, 1, 0), c), NULL, "y@1[1] + p@13");
}
END_TEST

START_TEST(test_print_constants)
{
    assert_prints(ir_scalar(b, 2), NULL, "2");
    assert_prints(ir_scalar(b, 0.5), NULL, "0.5");
    assert_prints(ir_scalar(b, 0.1), NULL, "0.1");
    assert_prints(ir_scalar(b, 1e-7), NULL, "1e-7");
    assert_prints(ir_scalar(b, 3.141592653589793), NULL, "3.141592653589793");
    assert_prints(ir_scalar(b, -2.5), NULL, "-2.5");
    double v[2] = {1, 2}, m[4] = {0, 1, -1, 0};
    assert_prints(vec(2, v), NULL, "[1, 2]");
    assert_prints(mat(2, 2, m), NULL, "[[0, 1], [-1, 0]]");
    double big[100];
    for (int i = 0; i < 100; i++)
        big[i] = i;
    assert_prints(mat(50, 2, big), NULL, "const[50, 2]");
    assert_prints(vec(50, big), NULL, "const[50]");
    assert_prints(ir_fill(b, ir_vector_shape(50), 0), NULL, "zeros(50)");
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    assert_prints(ir_mul(b, x, ir_scalar(b, -2)), NULL, "-2 * y@0");
    assert_prints(ir_sub(b, x, ir_scalar(b, -2)), NULL, "y@0 - -2");
    assert_prints(ir_add(b, x, ir_scalar(b, 1)), NULL, "y@0 + 1");
}
END_TEST

START_TEST(test_dump_model)
{
    IrVar st[1] = {{.name = "x", .shape = ir_scalar_shape(), .offset = 0,
                    .init_kind = IR_INIT_EXPR, .init = ir_scalar(b, 3)}};
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode *two_x = ir_mul(b, ir_scalar(b, 2), x);
    IrNode *rhs = ir_mul(b, two_x, ir_time(b));
    IrModel m = {.name = "Growth", .states = st, .n_states = 1, .ny = 1, .rhs = &rhs};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_dump_model(f, &m);
    fclose(f);
    const char *want = "model Growth: 1 state (ny = 1), 0 params (np = 0)\n"
                       "  state x : scalar @0 = 3\n"
                       "  %2 = const 2  : scalar\n"
                       "  %1 = state x  : scalar\n"
                       "  %3 = %2 * %1  : scalar\n"
                       "  %4 = t  : scalar\n"
                       "  %5 = %3 * %4  : scalar\n"
                       "  dx/dt = %5\n";
    ck_assert_str_eq(buf, want);
    free(buf);
}
END_TEST

/* ---- the leaves and ops that differentiation adds: ADJOINT, DATA, PAD ---- */

START_TEST(test_adjoint_data_leaves)
{
    IrNode *a = ir_adjoint(b, 1, 1, ir_vector_shape(3)), *d = ir_data(b, 0, 2, ir_vector_shape(3));
    ck_assert_ptr_eq(a, ir_adjoint(b, 1, 1, ir_vector_shape(3)));
    ck_assert_ptr_ne(a, ir_state(b, 1, 1, ir_vector_shape(3))); /* same slot and offset, other op */
    ck_assert_ptr_ne(a, ir_adjoint(b, 1, 2, ir_vector_shape(3)));
    ck_assert_ptr_ne(d, ir_param(b, 0, 2, ir_vector_shape(3)));
    ck_assert_int_eq(a->flags, IR_BATCHED);
    ck_assert_int_eq(d->flags, IR_BATCHED);
    ck_assert_int_eq(ir_mul(b, a, ir_time(b))->flags, IR_BATCHED | IR_TIMED);
    /* evaluation reads a and d at the leaves' offsets */
    double av[4] = {9, 1, 2, 3}, dv[5] = {0, 0, 10, 20, 30}, out[3];
    IrNode *e = ir_add(b, a, d);
    IrEnv env = {.t = 0, .a = av, .d = dv};
    double *outs[1] = {out};
    ir_eval_env(1, &e, &env, outs);
    double want[3] = {11, 22, 33};
    assert_values(out, want, 3, 1e-15);
}
END_TEST

START_TEST(test_pad_simplify)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2)), *m = ir_state(b, 1, 2, ir_matrix_shape(2, 3));
    IrNode *p = ir_pad(b, x, 1, 0, ir_vector_shape(5));
    assert_shape(p, 1, 5, 1);
    ck_assert_int_eq(p->op, IR_PAD);
    ck_assert_ptr_eq(ir_pad(b, x, 0, 0, x->shape), x);                          /* full extent */
    ck_assert(ir_is_const_value(ir_pad(b, ir_fill(b, x->shape, 0), 2, 0, ir_vector_shape(4)), 0));
    /* slices of a pad: inside the operand, in the zeros, or straddling */
    ck_assert_ptr_eq(ir_slice(b, p, 1, 0, ir_vector_shape(2)), x);
    ck_assert_ptr_eq(ir_element(b, p, 2, 0), ir_element(b, x, 1, 0));
    IrNode *z = ir_slice(b, p, 3, 0, ir_vector_shape(2));
    ck_assert(ir_is_const_value(z, 0));
    assert_shape(z, 1, 2, 1);
    ck_assert_int_eq(ir_slice(b, p, 0, 0, ir_vector_shape(2))->op, IR_SLICE);
    /* a pad of a pad is one pad */
    IrNode *pp = ir_pad(b, p, 0, 2, ir_matrix_shape(6, 3));
    ck_assert_int_eq(pp->op, IR_PAD);
    ck_assert_ptr_eq(pp->args[0], x);
    ck_assert_int_eq(pp->attr[0], 1);
    ck_assert_int_eq(pp->attr[1], 2);
    /* a matrix in a bigger matrix, and an element of it */
    IrNode *pm = ir_pad(b, m, 1, 1, ir_matrix_shape(3, 4));
    ck_assert_ptr_eq(ir_element(b, pm, 2, 3), ir_element(b, m, 1, 2));
    ck_assert(ir_is_const_value(ir_element(b, pm, 0, 3), 0));
    ck_assert_ptr_eq(ir_pad(b, x, 1, 0, ir_vector_shape(5)), p); /* hash-consed with attrs */
    ck_assert_ptr_ne(ir_pad(b, x, 2, 0, ir_vector_shape(5)), p);
}
END_TEST

START_TEST(test_pad_fold_and_eval)
{
    double v[2] = {4, 5};
    IrNode *c = ir_pad(b, vec(2, v), 1, 0, ir_vector_shape(4));
    double want[4] = {0, 4, 5, 0};
    assert_const(c, want, 4);
    double mv[4] = {1, 2, 3, 4};
    IrNode *cm = ir_pad(b, mat(2, 2, mv), 0, 1, ir_matrix_shape(3, 3));
    double wantm[9] = {0, 1, 2, 0, 3, 4, 0, 0, 0};
    assert_const(cm, wantm, 9);
    /* evaluated from a state: a column placed in a matrix, a scalar in a vector */
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2)), *s = ir_state(b, 0, 2, ir_scalar_shape());
    IrNode *col = ir_pad(b, x, 1, 2, ir_matrix_shape(3, 3)), *one = ir_pad(b, s, 2, 0, ir_vector_shape(3));
    double y[3] = {7, 8, 9}, out[9], out3[3];
    eval1(col, 0, y, NULL, out);
    double wantc[9] = {0, 0, 0, 0, 0, 7, 0, 0, 8};
    assert_values(out, wantc, 9, 1e-15);
    eval1(one, 0, y, NULL, out3);
    double want3[3] = {0, 0, 9};
    assert_values(out3, want3, 3, 1e-15);
}
END_TEST

START_TEST(test_print_new_ops)
{
    const IrModel *m = print_model();
    IrNode *ay = ir_adjoint(b, 1, 1, ir_vector_shape(3)), *ax = ir_adjoint(b, 0, 0, ir_scalar_shape());
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    assert_prints(ir_mul(b, ax, x), m, "a_x * x");
    assert_prints(ay, m, "a_y");
    assert_prints(ir_element(b, ay, 1, 0), m, "a_y[1]");
    assert_prints(ir_adjoint(b, 1, 2, ir_scalar_shape()), m, "a_y[1]");
    assert_prints(ir_adjoint(b, 1, 2, ir_scalar_shape()), NULL, "a@2");
    assert_prints(ir_data(b, 0, 3, ir_vector_shape(2)), m, "data@3");
    assert_prints(ir_pad(b, x, 1, 0, ir_vector_shape(3)), m, "pad(x, 1, [3])");
    assert_prints(ir_pad(b, ay, 0, 1, ir_matrix_shape(3, 2)), m, "pad(a_y, 0, 1, [3, 2])");
    assert_prints(ir_add(b, ir_pad(b, x, 1, 0, ir_vector_shape(3)), ay), m, "pad(x, 1, [3]) + a_y");
}
END_TEST

START_TEST(test_simplify_derivative_shapes)
{
    IrNode *x = ir_state(b, 0, 0, ir_vector_shape(2)), *s = ir_state(b, 1, 2, ir_scalar_shape());
    IrNode *A = ir_param(b, 0, 0, ir_matrix_shape(3, 2)), *v = ir_param(b, 1, 6, ir_vector_shape(3));
    double e1[2] = {0, 2};
    /* products with one-hot vectors pick a column, a row, an element */
    ck_assert_ptr_eq(ir_matmul(b, A, vec(2, e1)), ir_mul(b, ir_scalar(b, 2), ir_slice(b, A, 0, 1, ir_vector_shape(3))));
    ck_assert_ptr_eq(ir_matmul(b, A, ir_pad(b, s, 0, 0, ir_vector_shape(2))),
                     ir_mul(b, s, ir_slice(b, A, 0, 0, ir_vector_shape(3))));
    ck_assert_ptr_eq(ir_matmul(b, vec(2, e1), x), ir_mul(b, ir_scalar(b, 2), ir_element(b, x, 1, 0)));
    IrNode *row = ir_matmul(b, ir_pad(b, s, 1, 0, ir_vector_shape(3)), A); /* [3]@[3,2]: row 1 of A */
    ck_assert_ptr_eq(row, ir_mul(b, s, ir_slice(b, ir_transpose(b, A), 0, 1, ir_vector_shape(2))));
    /* an element of a product is one dot product */
    IrNode *el = ir_element(b, ir_matmul(b, ir_transpose(b, A), v), 1, 0);
    ck_assert_ptr_eq(el, ir_matmul(b, ir_slice(b, A, 0, 1, ir_vector_shape(3)), v));
    /* negations move out of products, pads and sums */
    ck_assert_ptr_eq(ir_mul(b, x, ir_neg(b, s)), ir_neg(b, ir_mul(b, x, s)));
    ck_assert_ptr_eq(ir_mul(b, ir_scalar(b, 0.5), ir_neg(b, x)), ir_mul(b, ir_scalar(b, -0.5), x));
    ck_assert_ptr_eq(ir_pad(b, ir_neg(b, s), 1, 0, ir_vector_shape(2)),
                     ir_neg(b, ir_pad(b, s, 1, 0, ir_vector_shape(2))));
    ck_assert_ptr_eq(ir_sum(b, ir_neg(b, x)), ir_neg(b, ir_sum(b, x)));
    /* pads of disjoint parts add up to a concatenation, also one at a time */
    IrNode *y0 = ir_element(b, x, 0, 0), *y1 = ir_element(b, x, 1, 0);
    IrNode *sum = ir_add(b, ir_pad(b, y1, 0, 0, ir_vector_shape(2)), ir_pad(b, s, 1, 0, ir_vector_shape(2)));
    IrNode *parts[2] = {y1, s};
    ck_assert_ptr_eq(sum, ir_concat(b, 2, parts));
    IrNode *z3 = ir_add(b, ir_add(b, ir_pad(b, y0, 0, 0, ir_vector_shape(3)), v),
                        ir_pad(b, y1, 1, 0, ir_vector_shape(3)));
    IrNode *joined[2] = {x, ir_fill(b, ir_vector_shape(1), 0)}; /* [y0, y1] is x */
    ck_assert_ptr_eq(z3, ir_add(b, v, ir_concat(b, 2, joined)));
    /* overlapping pads stay a sum */
    ck_assert_int_eq(ir_add(b, ir_pad(b, x, 0, 0, ir_vector_shape(3)), ir_pad(b, x, 1, 0, ir_vector_shape(3)))->op, IR_ADD);
    double y[3] = {3, 4, 5}, out[3];
    eval1(z3, 0, y, (double[]){0, 0, 0, 0, 0, 0, 10, 20, 30}, out);
    double want[3] = {13, 24, 30};
    assert_values(out, want, 3, 1e-15);
}
END_TEST

Suite *ir_suite(void);

Suite *ir_suite(void)
{
    Suite *s = suite_create("ir");
    TCase *tc = tcase_create("build");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_hash_consing);
    tcase_add_test(tc, test_hash_table_growth);
    tcase_add_test(tc, test_commutative);
    tcase_add_test(tc, test_simplify_add_sub);
    tcase_add_test(tc, test_simplify_mul_div_pow);
    tcase_add_test(tc, test_simplify_neg);
    tcase_add_test(tc, test_simplify_structural);
    tcase_add_test(tc, test_simplify_where);
    tcase_add_test(tc, test_flags);
    tcase_add_test(tc, test_topo_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("fold");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fold_unary);
    tcase_add_test(tc, test_fold_binary);
    tcase_add_test(tc, test_fold_linear_algebra);
    tcase_add_test(tc, test_fold_slice_concat_stack);
    suite_add_tcase(s, tc);
    tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_eval_unary);
    tcase_add_test(tc, test_eval_binary);
    tcase_add_test(tc, test_eval_stable);
    tcase_add_test(tc, test_eval_matmul);
    tcase_add_test(tc, test_eval_slice_concat_stack);
    tcase_add_test(tc, test_eval_shared_and_time);
    suite_add_tcase(s, tc);
    tc = tcase_create("print");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_print_expr);
    tcase_add_test(tc, test_print_constants);
    tcase_add_test(tc, test_dump_model);
    tcase_add_test(tc, test_print_new_ops);
    suite_add_tcase(s, tc);
    tc = tcase_create("derivative ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_adjoint_data_leaves);
    tcase_add_test(tc, test_pad_simplify);
    tcase_add_test(tc, test_pad_fold_and_eval);
    tcase_add_test(tc, test_simplify_derivative_shapes);
    suite_add_tcase(s, tc);
    return s;
}
