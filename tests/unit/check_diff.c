/* Unit tests of symbolic differentiation (compiler/diff/diff.c): every derivative
 * the compiler builds, evaluated by the interpreter, against central finite
 * differences of the forward expression (two independent computations, as in
 * micrograd's tests), at random points with random cotangents. Also the
 * Jacobian, the divergence, second derivatives through div(), sharing of
 * forward nodes, and the text of `nodec adjoint`. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adjoint_print.h"
#include "diff.h"
#include "driver.h"
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

/* ---- a fixed environment of leaves, each a slice of y, p, d or t ----
 * states: x[3] @0, s @3, M[3,2] @4, z[2] @10       (ny = 12)
 * params: W[2,3] @0, k @6, c[2] @7, V[3,3] @9      (np = 18)
 * data:   u[3] @0;  time t */
enum { NY = 12, NP = 18, ND = 3, NA = 64, N_LEAVES = 10 };

typedef struct Env {
    double t, y[NY], p[NP], d[ND], a[NA];
} Env;

static IrNode *X, *S, *M, *Z, *W, *K, *C, *V, *U, *T;
static IrNode *leaves[N_LEAVES];

static void make_leaves(void)
{
    X = ir_state(b, 0, 0, ir_vector_shape(3));
    S = ir_state(b, 1, 3, ir_scalar_shape());
    M = ir_state(b, 2, 4, ir_matrix_shape(3, 2));
    Z = ir_state(b, 3, 10, ir_vector_shape(2));
    W = ir_param(b, 0, 0, ir_matrix_shape(2, 3));
    K = ir_param(b, 1, 6, ir_scalar_shape());
    C = ir_param(b, 2, 7, ir_vector_shape(2));
    V = ir_param(b, 3, 9, ir_matrix_shape(3, 3));
    U = ir_data(b, 0, 0, ir_vector_shape(3));
    T = ir_time(b);
    IrNode *all[N_LEAVES] = {X, S, M, Z, W, K, C, V, U, T};
    memcpy(leaves, all, sizeof all);
}

static unsigned long long rng = 88172645463325252ull;

static double uniform01(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Magnitudes in [0.2, 1] with either sign: away from the kinks of abs, relu,
 * sign and step, where finite differences would straddle the kink. */
static double random_value(void)
{
    double v = 0.2 + 0.8 * uniform01();
    return uniform01() < 0.5 ? -v : v;
}

static void random_env(Env *e)
{
    e->t = random_value();
    for (int i = 0; i < NY; i++)
        e->y[i] = random_value();
    for (int i = 0; i < NP; i++)
        e->p[i] = random_value();
    for (int i = 0; i < ND; i++)
        e->d[i] = random_value();
    for (int i = 0; i < NA; i++)
        e->a[i] = random_value();
}

static IrEnv ir_env(const Env *e)
{
    return (IrEnv){.t = e->t, .y = e->y, .p = e->p, .a = e->a, .d = e->d};
}

static double *leaf_value(Env *e, const IrNode *leaf, int j)
{
    switch (leaf->op) {
    case IR_STATE: return &e->y[leaf->offset + j];
    case IR_PARAM: return &e->p[leaf->offset + j];
    case IR_DATA: return &e->d[leaf->offset + j];
    default: return &e->t;
    }
}

/* The cotangent of the root is an adjoint leaf reading e->a from 0. */
static double eval_phi(IrNode *f, const Env *e)
{
    int size = ir_shape_size(f->shape);
    double out[64];
    double *outs[1] = {out};
    ir_eval(1, &f, e->t, e->y, e->p, outs); /* the plain evaluator: d is not needed */
    double phi = 0;
    for (int i = 0; i < size; i++)
        phi += e->a[i] * out[i];
    return phi;
}

static double eval_phi_env(IrNode *f, const Env *e)
{
    int size = ir_shape_size(f->shape);
    double out[64];
    double *outs[1] = {out};
    IrEnv env = ir_env(e);
    ir_eval_env(1, &f, &env, outs);
    double phi = 0;
    for (int i = 0; i < size; i++)
        phi += e->a[i] * out[i];
    return phi;
}

static bool uses_data(IrNode *f)
{
    IrNode **order;
    Arena *scratch = arena_new();
    int n = ir_topo_order(scratch, 1, &f, &order);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= order[i]->op == IR_DATA;
    arena_free(scratch);
    return found;
}

static double central_difference(IrNode *f, Env *e, double *v)
{
    double saved = *v, h = 1e-6 * fmax(1, fabs(saved));
    bool data = uses_data(f);
    *v = saved + h;
    double up = data ? eval_phi_env(f, e) : eval_phi(f, e);
    *v = saved - h;
    double down = data ? eval_phi_env(f, e) : eval_phi(f, e);
    *v = saved;
    return (up - down) / (2 * h);
}

static void assert_close(double got, double want, double rel, const char *what, int j)
{
    double scale = fmax(fabs(want), 1e-2);
    if (!(fabs(got - want) <= rel * scale))
        ck_abort_msg("%s[%d]: symbolic %.12g, finite differences %.12g", what, j, got, want);
}

/* grad_f against finite differences of a^T f for every leaf of the table. */
static void check_vjp_at(IrNode *f, Env *e)
{
    IrNode *cot = ir_adjoint(b, 0, 0, f->shape), *grads[N_LEAVES];
    diff_vjp(b, 1, &f, &cot, N_LEAVES, leaves, grads);
    IrEnv env = ir_env(e);
    for (int k = 0; k < N_LEAVES; k++) {
        ck_assert(ir_shape_eq(grads[k]->shape, leaves[k]->shape));
        double got[64];
        double *outs[1] = {got};
        ir_eval_env(1, &grads[k], &env, outs);
        for (int j = 0; j < ir_shape_size(leaves[k]->shape); j++)
            assert_close(got[j], central_difference(f, e, leaf_value(e, leaves[k], j)), 1e-6,
                         ir_op_name(leaves[k]->op), j);
    }
}

static void check_vjp(IrNode *f)
{
    for (int trial = 0; trial < 3; trial++) {
        Env e;
        random_env(&e);
        check_vjp_at(f, &e);
    }
}

static IrNode *num(double v)
{
    return ir_scalar(b, v);
}

/* A vector expression of x, s and k, at least 0.5, for log, sqrt and powers. */
static IrNode *positive3(void)
{
    return ir_add(b, ir_mul(b, ir_mul(b, X, X), ir_mul(b, S, S)), ir_add(b, ir_mul(b, K, K), num(0.5)));
}

/* ---- rules, op by op ---- */

START_TEST(test_scalar_growth)
{
    make_leaves();
    check_vjp(ir_mul(b, ir_mul(b, num(2), S), T)); /* dx/dt = 2 x t */
    check_vjp(ir_add(b, ir_mul(b, K, ir_unary(b, IR_SIN, S)), ir_mul(b, S, S)));
}
END_TEST

static const IrOp unary_ops[] = {IR_NEG, IR_EXP, IR_SIN, IR_COS, IR_TAN, IR_TANH, IR_SIGMOID,
                                 IR_RELU, IR_SOFTPLUS, IR_ABS, IR_SIGN, IR_STEP};

START_TEST(test_unary_each)
{
    make_leaves();
    IrNode *u = ir_add(b, ir_mul(b, X, K), ir_mul(b, S, U)); /* depends on x, s, k, data */
    IrOp op = unary_ops[_i];
    check_vjp(ir_unary(b, op, u));
    check_vjp(ir_mul(b, ir_unary(b, op, X), X)); /* a product rule through each */
}
END_TEST

START_TEST(test_log_sqrt)
{
    make_leaves();
    check_vjp(ir_unary(b, IR_LOG, positive3()));
    check_vjp(ir_unary(b, IR_SQRT, positive3()));
    check_vjp(ir_unary(b, IR_LOG, ir_unary(b, IR_SQRT, positive3())));
}
END_TEST

START_TEST(test_binary_broadcast)
{
    make_leaves();
    IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV};
    for (int i = 0; i < 4; i++) {
        check_vjp(ir_binary(b, ops[i], X, S));         /* tensor op scalar */
        check_vjp(ir_binary(b, ops[i], S, X));         /* scalar op tensor */
        check_vjp(ir_binary(b, ops[i], X, U));         /* equal shapes */
        check_vjp(ir_binary(b, ops[i], ir_mul(b, K, T), Z)); /* a scalar expression of k, t */
        check_vjp(ir_binary(b, ops[i], M, ir_mul(b, S, K)));
    }
    check_vjp(ir_binary(b, IR_DIV, ir_unary(b, IR_EXP, X), ir_mul(b, X, S)));
}
END_TEST

START_TEST(test_pow)
{
    make_leaves();
    check_vjp(ir_binary(b, IR_POW, X, num(3)));
    check_vjp(ir_binary(b, IR_POW, X, num(2)));
    check_vjp(ir_binary(b, IR_POW, positive3(), num(0.5)));
    check_vjp(ir_binary(b, IR_POW, positive3(), num(-1.5)));
    check_vjp(ir_binary(b, IR_POW, positive3(), S));       /* non-constant exponent */
    check_vjp(ir_binary(b, IR_POW, positive3(), ir_mul(b, K, T)));
    check_vjp(ir_binary(b, IR_POW, ir_mul(b, K, K), S));   /* scalar base */
}
END_TEST

START_TEST(test_comparisons_and_where)
{
    make_leaves();
    IrOp cmp[] = {IR_LT, IR_LE, IR_GT, IR_GE, IR_EQ, IR_NE};
    for (int i = 0; i < 6; i++) {
        IrNode *c = ir_binary(b, cmp[i], X, S);
        check_vjp(ir_mul(b, c, X)); /* the comparison is piecewise constant */
        check_vjp(ir_where(b, c, ir_mul(b, X, K), ir_unary(b, IR_SIN, S)));
    }
    check_vjp(ir_where(b, ir_binary(b, IR_GT, S, num(0)), S, ir_mul(b, X, X)));
    check_vjp(ir_where(b, ir_binary(b, IR_GT, X, num(0)), K, T)); /* both branches scalar */
}
END_TEST

START_TEST(test_matmul_shapes)
{
    make_leaves();
    check_vjp(ir_matmul(b, W, X));                                   /* [2,3]@[3] */
    check_vjp(ir_matmul(b, W, M));                                   /* [2,3]@[3,2] */
    check_vjp(ir_matmul(b, X, ir_unary(b, IR_TANH, X)));             /* [3]@[3] */
    check_vjp(ir_matmul(b, X, M));                                   /* [3]@[3,2] */
    check_vjp(ir_matmul(b, V, ir_matmul(b, M, Z)));
    check_vjp(ir_transpose(b, ir_mul(b, M, S)));
    check_vjp(ir_matmul(b, ir_transpose(b, M), X));
    check_vjp(ir_outer(b, X, Z));
    check_vjp(ir_outer(b, ir_unary(b, IR_TANH, Z), ir_mul(b, X, K)));
    check_vjp(ir_matmul(b, ir_transpose(b, V), ir_binary(b, IR_POW, X, num(3)))); /* the spiral */
}
END_TEST

START_TEST(test_mlp)
{
    make_leaves();
    /* W2 @ tanh(W1 @ x + b1) + b2 with W1 = V, b1 = x-sized data, W2 = W, b2 = c */
    IrNode *h = ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, V, X), U));
    check_vjp(ir_add(b, ir_matmul(b, W, h), C));
    IrNode *r = ir_unary(b, IR_RELU, ir_add(b, ir_matmul(b, V, X), U));
    check_vjp(ir_add(b, ir_matmul(b, W, r), C));
}
END_TEST

START_TEST(test_matrix_state)
{
    make_leaves();
    /* ANODEV2's weight network on a square state: tanh(P @ W) - W */
    IrNode *sq = ir_slice(b, M, 0, 0, ir_matrix_shape(2, 2));
    IrNode *P = ir_slice(b, V, 0, 0, ir_matrix_shape(2, 2));
    check_vjp(ir_sub(b, ir_unary(b, IR_TANH, ir_matmul(b, P, sq)), sq));
    check_vjp(ir_unary(b, IR_TANH, ir_matmul(b, sq, Z)));
}
END_TEST

START_TEST(test_reductions_and_time)
{
    make_leaves();
    check_vjp(ir_sum(b, ir_mul(b, X, X)));
    check_vjp(ir_sum(b, ir_unary(b, IR_TANH, M)));
    check_vjp(ir_unary(b, IR_SQRT, ir_sum(b, ir_mul(b, Z, Z)))); /* norm */
    check_vjp(ir_mul(b, ir_unary(b, IR_SIN, ir_mul(b, T, K)), X));
    check_vjp(ir_div(b, ir_sum(b, X), num(3))); /* mean */
}
END_TEST

START_TEST(test_slices_concat_stack_pad)
{
    make_leaves();
    check_vjp(ir_element(b, X, 1, 0));
    check_vjp(ir_slice(b, X, 1, 0, ir_vector_shape(2)));
    check_vjp(ir_element(b, M, 2, 1));
    check_vjp(ir_slice(b, M, 1, 0, ir_matrix_shape(2, 2)));
    check_vjp(ir_slice(b, M, 0, 1, ir_vector_shape(3))); /* a column */
    IrNode *parts[4] = {ir_element(b, X, 2, 0), S, Z, ir_mul(b, K, ir_element(b, X, 0, 0))};
    check_vjp(ir_concat(b, 4, parts));
    IrNode *cc = ir_concat(b, 4, parts);
    check_vjp(ir_unary(b, IR_TANH, ir_slice(b, cc, 1, 0, ir_vector_shape(3))));
    IrNode *rows[3] = {ir_unary(b, IR_SIN, Z), ir_mul(b, Z, S), C};
    check_vjp(ir_stack(b, 3, rows));
    check_vjp(ir_matmul(b, ir_stack(b, 3, rows), Z));
    check_vjp(ir_pad(b, ir_mul(b, Z, S), 1, 0, ir_vector_shape(4)));
    check_vjp(ir_pad(b, ir_mul(b, Z, S), 1, 1, ir_matrix_shape(3, 2)));
    check_vjp(ir_pad(b, ir_mul(b, K, S), 1, 1, ir_matrix_shape(2, 3)));
    check_vjp(ir_pad(b, ir_transpose(b, M), 0, 1, ir_matrix_shape(3, 4)));
}
END_TEST

START_TEST(test_independent_is_zero)
{
    make_leaves();
    IrNode *f = ir_unary(b, IR_TANH, X), *cot = ir_adjoint(b, 0, 0, f->shape), *g[2];
    IrNode *wrt[2] = {M, K};
    diff_vjp(b, 1, &f, &cot, 2, wrt, g);
    ck_assert(ir_is_const_value(g[0], 0) && ir_shape_eq(g[0]->shape, M->shape));
    ck_assert(ir_is_const_value(g[1], 0) && g[1]->shape.rank == 0);
    /* a piecewise-constant expression has a zero gradient */
    IrNode *step = ir_unary(b, IR_STEP, X);
    diff_vjp(b, 1, &step, &cot, 1, &X, g);
    ck_assert(ir_is_const_value(g[0], 0));
}
END_TEST

/* Several roots and a node with several users: cotangents add up. */
START_TEST(test_several_roots)
{
    make_leaves();
    IrNode *h = ir_unary(b, IR_TANH, ir_matmul(b, W, X));
    IrNode *roots[2] = {ir_mul(b, h, h), ir_sum(b, ir_mul(b, h, C))};
    IrNode *cot[2] = {ir_adjoint(b, 0, 0, roots[0]->shape), ir_adjoint(b, 1, 2, roots[1]->shape)};
    IrNode *grads[N_LEAVES];
    diff_vjp(b, 2, roots, cot, N_LEAVES, leaves, grads);
    /* the same as one root concat(roots) */
    IrNode *joint = ir_concat(b, 2, roots);
    for (int trial = 0; trial < 3; trial++) {
        Env e;
        random_env(&e);
        IrEnv env = ir_env(&e);
        for (int k = 0; k < N_LEAVES; k++) {
            double got[64];
            double *outs[1] = {got};
            ir_eval_env(1, &grads[k], &env, outs);
            for (int j = 0; j < ir_shape_size(leaves[k]->shape); j++)
                assert_close(got[j], central_difference(joint, &e, leaf_value(&e, leaves[k], j)),
                             1e-6, "several roots", j);
        }
    }
}
END_TEST

/* ---- sharing ---- */

static bool reaches(IrNode *root, const IrNode *target)
{
    IrNode **order;
    Arena *scratch = arena_new();
    int n = ir_topo_order(scratch, 1, &root, &order);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= order[i] == target;
    arena_free(scratch);
    return found;
}

START_TEST(test_shares_forward_nodes)
{
    make_leaves();
    IrNode *pre = ir_matmul(b, W, X), *h = ir_unary(b, IR_TANH, pre);
    IrNode *cot = ir_adjoint(b, 0, 0, h->shape), *g;
    diff_vjp(b, 1, &h, &cot, 1, &X, &g);
    ck_assert(reaches(g, h)); /* 1 - tanh^2 reads the forward tanh */
    IrNode *sg = ir_unary(b, IR_SIGMOID, pre);
    diff_vjp(b, 1, &sg, &cot, 1, &X, &g);
    ck_assert(reaches(g, sg));
    IrNode *ex = ir_unary(b, IR_EXP, X);
    cot = ir_adjoint(b, 0, 0, ex->shape);
    diff_vjp(b, 1, &ex, &cot, 1, &X, &g);
    ck_assert_ptr_eq(g, ir_mul(b, ir_adjoint(b, 0, 0, ex->shape), ex)); /* g * exp(x), exactly */
    /* the same derivative twice is the same node: nothing new is built */
    int before = ir_node_count(b);
    IrNode *g2;
    diff_vjp(b, 1, &ex, &cot, 1, &X, &g2);
    ck_assert_ptr_eq(g, g2);
    ck_assert_int_eq(ir_node_count(b), before);
}
END_TEST

START_TEST(test_simplified_results)
{
    make_leaves();
    IrNode *cot = ir_adjoint(b, 0, 0, ir_scalar_shape()), *g;
    IrNode *f = ir_mul(b, ir_mul(b, num(2), S), T); /* 2 s t */
    diff_vjp(b, 1, &f, &cot, 1, &S, &g);
    ck_assert_ptr_eq(g, ir_mul(b, ir_mul(b, cot, T), num(2)));
    IrNode *lin = ir_add(b, S, K); /* d/ds (s + k) = the cotangent itself */
    diff_vjp(b, 1, &lin, &cot, 1, &S, &g);
    ck_assert_ptr_eq(g, cot);
    IrNode *sq = ir_binary(b, IR_POW, S, num(2)); /* 2 s^1 -> 2 s: no power left */
    diff_vjp(b, 1, &sq, &cot, 1, &S, &g);
    ck_assert_ptr_eq(g, ir_mul(b, cot, ir_mul(b, num(2), S)));
}
END_TEST

/* ---- divergence, Jacobian, second derivatives ---- */

static double fd_trace(IrNode *f, IrNode *x, Env *e)
{
    double tr = 0;
    int size = ir_shape_size(x->shape);
    for (int i = 0; i < size; i++) {
        memset(e->a, 0, sizeof e->a);
        e->a[i] = 1; /* phi = f_i */
        tr += central_difference(f, e, leaf_value(e, x, i));
    }
    return tr;
}

static void check_divergence(IrNode *f, IrNode *x)
{
    IrNode *div = diff_divergence(b, f, x);
    ck_assert_int_eq(div->shape.rank, 0);
    for (int trial = 0; trial < 3; trial++) {
        Env e;
        random_env(&e);
        double got = 0;
        double *outs[1] = {&got};
        IrEnv env = ir_env(&e);
        ir_eval_env(1, &div, &env, outs);
        assert_close(got, fd_trace(f, x, &e), 1e-6, "divergence", trial);
    }
}

START_TEST(test_divergence)
{
    make_leaves();
    IrNode *sq = ir_slice(b, V, 0, 0, ir_matrix_shape(2, 2));
    check_divergence(ir_unary(b, IR_TANH, ir_matmul(b, sq, Z)), Z);
    IrNode *mlp = ir_add(b, ir_matmul(b, W, ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, V, X), U))), C);
    IrNode *back = ir_matmul(b, ir_transpose(b, W), mlp); /* [3] -> [3] */
    check_divergence(back, X);
    check_divergence(ir_mul(b, ir_mul(b, S, S), T), S);
    check_divergence(ir_unary(b, IR_TANH, ir_matmul(b, V, M)), M);
    /* an exactly known case: div(A z) = trace(A) */
    double a[4] = {1.5, 2, -3, 0.25};
    IrNode *lin = ir_matmul(b, ir_const(b, ir_matrix_shape(2, 2), a), Z);
    ck_assert(ir_is_const_value(diff_divergence(b, lin, Z), 1.75));
    /* independent of x: zero */
    ck_assert(ir_is_const_value(diff_divergence(b, ir_mul(b, ir_unary(b, IR_TANH, U), K), X), 0));
}
END_TEST

/* A model: z[2] and logp, with dz/dt = tanh(P z + c) k, dlogp/dt = -div(z). */
static IrModel *flow_model(void)
{
    static IrVar states[2], params[3];
    static IrNode *rhs[2];
    static IrModel m;
    memset(&m, 0, sizeof m);
    IrNode *z = ir_state(b, 0, 0, ir_vector_shape(2));
    IrNode *P = ir_param(b, 0, 0, ir_matrix_shape(2, 2));
    IrNode *c = ir_param(b, 1, 4, ir_vector_shape(2));
    IrNode *k = ir_param(b, 2, 6, ir_scalar_shape());
    states[0] = (IrVar){.name = "z", .shape = z->shape, .offset = 0};
    states[1] = (IrVar){.name = "logp", .shape = ir_scalar_shape(), .offset = 2};
    params[0] = (IrVar){.name = "P", .shape = P->shape, .offset = 0};
    params[1] = (IrVar){.name = "c", .shape = c->shape, .offset = 4};
    params[2] = (IrVar){.name = "k", .shape = k->shape, .offset = 6};
    IrNode *zt = ir_mul(b, ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, P, z), c)), ir_mul(b, k, ir_time(b)));
    rhs[0] = ir_add(b, zt, ir_mul(b, z, ir_state(b, 1, 2, ir_scalar_shape())));
    rhs[1] = ir_neg(b, diff_divergence(b, rhs[0], z));
    m = (IrModel){.name = "Flow", .states = states, .n_states = 2, .ny = 3, .params = params,
                  .n_params = 3, .np = 7, .rhs = rhs};
    return &m;
}

/* a^T f(y) of the whole model, for finite differences of the adjoint system. */
static IrNode *model_as_vector(IrModel *m)
{
    return ir_concat(b, m->n_states, m->rhs);
}

START_TEST(test_model_adjoint_second_order)
{
    IrModel *m = flow_model();
    diff_model_adjoint(b, m);
    IrNode *first = m->adj_state[0];
    diff_model_adjoint(b, m); /* idempotent */
    ck_assert_ptr_eq(m->adj_state[0], first);
    IrNode *f = model_as_vector(m);
    for (int trial = 0; trial < 3; trial++) {
        Env e;
        random_env(&e);
        IrEnv env = ir_env(&e);
        for (int i = 0; i < m->n_states + m->n_params; i++) {
            bool st = i < m->n_states;
            IrVar *v = st ? &m->states[i] : &m->params[i - m->n_states];
            IrNode *g = st ? m->adj_state[i] : m->adj_param[i - m->n_states];
            ck_assert(ir_shape_eq(g->shape, v->shape));
            double got[8];
            double *outs[1] = {got};
            ir_eval_env(1, &g, &env, outs);
            for (int j = 0; j < ir_shape_size(v->shape); j++) {
                double *val = st ? &e.y[v->offset + j] : &e.p[v->offset + j];
                assert_close(got[j], central_difference(f, &e, val), 1e-6, v->name, j);
            }
        }
    }
}
END_TEST

START_TEST(test_model_jacobian)
{
    IrModel *m = flow_model();
    diff_model_jacobian(b, m);
    ck_assert(m->jac && m->jac->shape.rank == 2 && m->jac->shape.rows == 3 && m->jac->shape.cols == 3);
    IrNode *f = model_as_vector(m);
    Env e;
    random_env(&e);
    double jac[9];
    double *outs[1] = {jac};
    IrEnv env = ir_env(&e);
    ir_eval_env(1, &m->jac, &env, outs);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++) {
            memset(e.a, 0, sizeof e.a);
            e.a[r] = 1;
            assert_close(jac[r * 3 + c], central_difference(f, &e, &e.y[c]), 1e-6, "jac", r * 3 + c);
        }
    }
}
END_TEST

/* The Jacobian of a matrix state is laid out row-major like y. */
START_TEST(test_jacobian_matrix_state)
{
    static IrVar states[2];
    static IrNode *rhs[2];
    IrNode *w = ir_state(b, 0, 0, ir_matrix_shape(2, 2)), *q = ir_state(b, 1, 4, ir_scalar_shape());
    states[0] = (IrVar){.name = "W", .shape = w->shape, .offset = 0};
    states[1] = (IrVar){.name = "q", .shape = q->shape, .offset = 4};
    double pv[4] = {0.3, -0.7, 1.1, 0.4};
    IrNode *P = ir_const(b, w->shape, pv);
    rhs[0] = ir_sub(b, ir_unary(b, IR_TANH, ir_matmul(b, P, w)), ir_mul(b, w, q));
    rhs[1] = ir_sum(b, ir_mul(b, w, w));
    IrModel m = {.name = "Coupled", .states = states, .n_states = 2, .ny = 5, .rhs = rhs};
    diff_model_jacobian(b, &m);
    IrNode *f = ir_concat(b, 2, (IrNode *[]){ir_concat(b, 2, (IrNode *[]){
        ir_slice(b, ir_transpose(b, rhs[0]), 0, 0, ir_vector_shape(2)),
        ir_slice(b, ir_transpose(b, rhs[0]), 0, 1, ir_vector_shape(2))}), rhs[1]});
    Env e;
    random_env(&e);
    double jac[25];
    double *outs[1] = {jac};
    IrEnv env = ir_env(&e);
    ir_eval_env(1, &m.jac, &env, outs);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 5; c++) {
            memset(e.a, 0, sizeof e.a);
            e.a[r] = 1;
            assert_close(jac[r * 5 + c], central_difference(f, &e, &e.y[c]), 1e-6, "jac", r * 5 + c);
        }
}
END_TEST

/* ---- printing ---- */

static char *adjoint_text(IrModel *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    diff_model_adjoint(b, m); /* the pipeline's derive stage for `nodec adjoint` */
    diff_model_init_adjoint(b, m);
    ck_assert_int_eq(adjoint_print(out, b, m), 0);
    fclose(out);
    return buf;
}

START_TEST(test_adjoint_print_growth)
{
    static IrVar states[1], params[1];
    static IrNode *rhs[1];
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape()), *k = ir_param(b, 0, 0, ir_scalar_shape());
    states[0] = (IrVar){.name = "x", .shape = x->shape};
    params[0] = (IrVar){.name = "k", .shape = k->shape};
    rhs[0] = ir_mul(b, ir_mul(b, k, x), ir_time(b)); /* dx/dt = k * x * t */
    IrModel m = {.name = "Growth", .states = states, .n_states = 1, .ny = 1, .params = params,
                 .n_params = 1, .np = 1, .rhs = rhs};
    char *text = adjoint_text(&m);
    ck_assert_str_eq(text, "model Growth\n"
                           "  state x, adjoint a_x\n"
                           "  dx/dt = x * k * t\n"
                           "  da_x/dt = -(t * a_x * k)\n"
                           "  dL/dk = -∫ (t * a_x * x) dt\n");
    free(text);
}
END_TEST

START_TEST(test_adjoint_print_vector)
{
    IrModel *m = flow_model();
    char *text = adjoint_text(m);
    ck_assert_ptr_nonnull(strstr(text, "model Flow\n  state z[2], adjoint a_z\n  state logp, adjoint a_logp\n"));
    ck_assert_ptr_nonnull(strstr(text, "da_z/dt = -("));
    ck_assert_ptr_nonnull(strstr(text, "da_logp/dt = -("));
    ck_assert_ptr_nonnull(strstr(text, "dL/dP = -∫ "));
    ck_assert_ptr_nonnull(strstr(text, "dL/dc = -∫ "));
    ck_assert_ptr_null(strstr(text, "<null>"));
    free(text);
}
END_TEST

START_TEST(test_adjoint_print_init_param)
{
    static IrVar states[1], params[2];
    static IrNode *rhs[1];
    IrNode *w = ir_state(b, 0, 0, ir_vector_shape(2));
    IrNode *w0 = ir_param(b, 0, 0, ir_vector_shape(2)), *k = ir_param(b, 1, 2, ir_scalar_shape());
    states[0] = (IrVar){.name = "w", .shape = w->shape, .init_kind = IR_INIT_EXPR, .init = w0};
    params[0] = (IrVar){.name = "w0", .shape = w0->shape, .offset = 0};
    params[1] = (IrVar){.name = "k", .shape = k->shape, .offset = 2};
    rhs[0] = ir_unary(b, IR_TANH, ir_mul(b, w, k));
    IrModel m = {.name = "Shared", .states = states, .n_states = 1, .ny = 2, .params = params,
                 .n_params = 2, .np = 3, .rhs = rhs};
    char *text = adjoint_text(&m);
    /* tanh(w * k) and its derivative times a_w are shared: each is named once */
    ck_assert_str_eq(text, "model Shared\n"
                           "  state w[2], adjoint a_w\n"
                           "  where s1 = tanh(w * k)\n"
                           "  where s2 = (1 - s1 * s1) * a_w\n"
                           "  dw/dt = s1\n"
                           "  da_w/dt = -(s2 * k)\n"
                           "  dL/dw0 = a_w(t0)\n"
                           "  dL/dk = -∫ (sum(s2 * w)) dt\n");
    free(text);
}
END_TEST

/* sin(sin(...(x))) 5000 deep: printed with names every few levels, so the
 * printer's recursion is bounded; a state named s1 moves the names aside. */
START_TEST(test_adjoint_print_deep)
{
    static IrVar states[1];
    static IrNode *rhs[1];
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape()), *e = x;
    for (int i = 0; i < 5000; i++)
        e = ir_unary(b, IR_SIN, e);
    states[0] = (IrVar){.name = "s1", .shape = x->shape};
    rhs[0] = e;
    IrModel m = {.name = "Deep", .states = states, .n_states = 1, .ny = 1, .rhs = rhs};
    char *text = adjoint_text(&m);
    ck_assert_ptr_nonnull(strstr(text, "  where s_1 = sin(sin("));
    ck_assert_ptr_nonnull(strstr(text, "  ds1/dt = "));
    ck_assert_ptr_null(strstr(text, "..."));
    ck_assert_uint_lt(strlen(text), 1000000);
    free(text);
}
END_TEST

/* ---- div() in the language: sema lowers it through diff_divergence ---- */

static Compilation *compile_text(const char *text, char **diag_text)
{
    size_t len = 0;
    FILE *err = open_memstream(diag_text, &len);
    Compilation *c = compile_file("test.node", text, err, 0);
    fclose(err);
    return c;
}

/* logp's equation, written before z's, evaluates to -trace(A) = 1.5 at any z. */
START_TEST(test_sema_div_value)
{
    char *diag = NULL;
    Compilation *c = compile_text("model L {\n  state logp = 0\n  state z[2]\n"
                                  "  const A[2, 2] = [[0.5, 1], [0, -2]]\n"
                                  "  dlogp/dt = -div(z)\n  dz/dt = A @ z\n}\n"
                                  "model N {\n  state z[2]\n  state q\n  param P[2, 2]\n"
                                  "  dz/dt = tanh(P @ z)\n  dq/dt = div(z) * t\n}\n",
                                  &diag);
    ck_assert_msg(c->program != NULL, "%s", diag);
    IrModel *l = sema_find_model(c->program, "L"), *n = sema_find_model(c->program, "N");
    ck_assert(ir_is_const_value(l->rhs[0], 1.5));
    /* N: dq/dt = t * trace(d tanh(P z) / dz), against finite differences */
    double y[3] = {0.3, -0.7, 0}, p[4] = {0.9, -0.4, 0.6, 1.3}, got;
    double *outs[1] = {&got};
    ir_eval(1, &n->rhs[1], 0.5, y, p, outs);
    double tr = 0;
    for (int i = 0; i < 2; i++) {
        double h = 1e-6, up[2], down[2], saved = y[i];
        double *o2[1] = {up};
        y[i] = saved + h;
        ir_eval(1, &n->rhs[0], 0.5, y, p, o2);
        o2[0] = down;
        y[i] = saved - h;
        ir_eval(1, &n->rhs[0], 0.5, y, p, o2);
        y[i] = saved;
        tr += (up[i] - down[i]) / (2 * h);
    }
    ck_assert_double_eq_tol(got, 0.5 * tr, 1e-8);
    compilation_free(c);
    free(diag);
}
END_TEST

static void assert_compile_error(const char *text, const char *want)
{
    char *diag = NULL;
    Compilation *c = compile_text(text, &diag);
    ck_assert_ptr_null(c->program);
    ck_assert_msg(strstr(diag, want) != NULL, "want '%s' in:\n%s", want, diag);
    compilation_free(c);
    free(diag);
}

START_TEST(test_sema_div_errors)
{
    assert_compile_error("model B {\n  state z[2]\n  dz/dt = -div(z)\n}\n",
                         "test.node:3:12: error: div(z) is circular: the equation of 'z' depends on div(z)");
    assert_compile_error("model B {\n  state x\n  state y\n  dx/dt = div(y)\n  dy/dt = div(x) * y\n}\n",
                         "test.node:4:11: error: div(y) is circular");
    assert_compile_error("model B {\n  state x\n  param k\n  dx/dt = div(k)\n}\n",
                         "test.node:4:15: error: div() needs a state of this model, as in div(z)");
    assert_compile_error("const c = div(1)\n", "error: div() can only be used inside a model");
    assert_compile_error("model B {\n  state x\n  state q\n  let v = div(x)\n  dq/dt = v\n  dx/dt = x * v\n}\n",
                         "note: in the equation of 'x': 'v' is used before its definition");
    assert_compile_error("model B {\n  state x\n  dx/dt = div(x, x)\n}\n",
                         "wrong number of arguments to 'div'");
}
END_TEST

Suite *diff_suite(void);

Suite *diff_suite(void)
{
    Suite *s = suite_create("diff");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_scalar_growth);
    tcase_add_loop_test(tc, test_unary_each, 0, (int)(sizeof unary_ops / sizeof unary_ops[0]));
    tcase_add_test(tc, test_log_sqrt);
    tcase_add_test(tc, test_binary_broadcast);
    tcase_add_test(tc, test_pow);
    tcase_add_test(tc, test_comparisons_and_where);
    tcase_add_test(tc, test_matmul_shapes);
    tcase_add_test(tc, test_mlp);
    tcase_add_test(tc, test_matrix_state);
    tcase_add_test(tc, test_reductions_and_time);
    tcase_add_test(tc, test_slices_concat_stack_pad);
    tcase_add_test(tc, test_independent_is_zero);
    tcase_add_test(tc, test_several_roots);
    suite_add_tcase(s, tc);
    tc = tcase_create("sharing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_shares_forward_nodes);
    tcase_add_test(tc, test_simplified_results);
    suite_add_tcase(s, tc);
    tc = tcase_create("derived");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_divergence);
    tcase_add_test(tc, test_model_adjoint_second_order);
    tcase_add_test(tc, test_model_jacobian);
    tcase_add_test(tc, test_jacobian_matrix_state);
    suite_add_tcase(s, tc);
    tc = tcase_create("print");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_adjoint_print_growth);
    tcase_add_test(tc, test_adjoint_print_vector);
    tcase_add_test(tc, test_adjoint_print_init_param);
    tcase_add_test(tc, test_adjoint_print_deep);
    suite_add_tcase(s, tc);
    tc = tcase_create("sema");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sema_div_value);
    tcase_add_test(tc, test_sema_div_errors);
    suite_add_tcase(s, tc);
    return s;
}
