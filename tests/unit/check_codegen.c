/* The JIT against the interpreter: models built by hand with the ir.h
 * constructors are compiled by jit_compile and their rhs compared, sample by
 * sample, with ir_eval (two independent computations) for batches of 1, 3 and
 * 37 random states; a batch must also agree with separate B = 1 calls. The
 * derived kernels (vjp and jac from compiler/diff, and extra kernels reading
 * cotangent and data leaves) are compared the same way with ir_eval_env, their
 * batch sums with the sum of per-sample evaluations. Work, inputs and outputs
 * are allocated at their exact sizes so ASan catches any overrun. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"
#include "llvm_jit_internal.h"
#include "diff.h"

enum { MAXV = 16 };

typedef struct Mdl {
    Arena *arena;
    IrBuilder *b;
    IrVar states[MAXV], params[MAXV];
    IrNode *leaves[MAXV], *rhs[MAXV];
    IrModel m;
} Mdl;

static Mdl *mdl_new(const char *name)
{
    Mdl *d = calloc(1, sizeof *d);
    d->arena = arena_new();
    d->b = ir_builder_new(d->arena);
    d->m = (IrModel){.name = name, .states = d->states, .params = d->params, .rhs = d->rhs};
    return d;
}

static void mdl_free(Mdl *d)
{
    arena_free(d->arena);
    free(d);
}

static IrNode *mdl_state(Mdl *d, IrShape s)
{
    int i = d->m.n_states++;
    d->states[i] = (IrVar){.name = "x", .shape = s, .offset = d->m.ny};
    d->leaves[i] = ir_state(d->b, i, d->m.ny, s);
    d->rhs[i] = ir_neg(d->b, d->leaves[i]); /* until mdl_set */
    d->m.ny += ir_shape_size(s);
    return d->leaves[i];
}

static IrNode *mdl_param(Mdl *d, IrShape s)
{
    int i = d->m.n_params++;
    d->params[i] = (IrVar){.name = "p", .shape = s, .offset = d->m.np};
    d->m.np += ir_shape_size(s);
    return ir_param(d->b, i, d->params[i].offset, s);
}

static void mdl_set(Mdl *d, IrNode *state, IrNode *rhs)
{
    ck_assert_int_eq(state->shape.rows, rhs->shape.rows);
    ck_assert_int_eq(state->shape.cols, rhs->shape.cols);
    d->rhs[state->slot] = rhs;
}

static uint64_t rng_state = 12345;

static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng_state >> 11) / 9007199254740992.0) * 3.0 - 1.5; /* [-1.5, 1.5) */
}

static double *alloc_doubles(size_t n)
{
    double *v = malloc(sizeof *v * (n ? n : 1));
    ck_assert_ptr_nonnull(v);
    return v;
}

static void assert_close(double got, double want, const char *what, int64_t b, int i)
{
    double tol = 1e-12 * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol) && !(isnan(got) && isnan(want)))
        ck_abort_msg("%s: sample %lld element %d: got %.17g, want %.17g", what, (long long)b, i,
                     got, want);
}

/* One batch of B random states: the JIT against ir_eval per sample, and
 * against itself called one sample at a time. */
static void check_batch(const IrModel *m, const NdKernels *k, int64_t B)
{
    size_t ny = (size_t)m->ny, n = ny * (size_t)B;
    double *y = alloc_doubles(n), *dydt = alloc_doubles(n), *ref = alloc_doubles(ny);
    double *one = alloc_doubles(ny), *p = alloc_doubles((size_t)m->np);
    double *work = alloc_doubles(nd_kernels_work_size(k, B));
    double **outs = malloc(sizeof *outs * (size_t)m->n_states);
    for (size_t i = 0; i < n; i++)
        y[i] = rnd(), dydt[i] = NAN;
    for (int i = 0; i < m->np; i++)
        p[i] = rnd();
    for (int s = 0; s < m->n_states; s++)
        outs[s] = ref + m->states[s].offset;
    double t = 0.7;
    k->rhs(t, y, p, dydt, B, work);
    for (int64_t b = 0; b < B; b++) {
        ir_eval(m->n_states, m->rhs, t, y + (size_t)b * ny, p, outs);
        for (size_t i = 0; i < ny; i++)
            assert_close(dydt[(size_t)b * ny + i], ref[i], "jit vs ir_eval", b, (int)i);
    }
    free(work);
    work = alloc_doubles(nd_kernels_work_size(k, 1));
    for (int64_t b = 0; b < B; b++) {
        k->rhs(t, y + (size_t)b * ny, p, one, 1, work);
        for (size_t i = 0; i < ny; i++)
            assert_close(one[i], dydt[(size_t)b * ny + i], "B=1 call vs batch", b, (int)i);
    }
    free(y), free(dydt), free(ref), free(one), free(p), free(work), free(outs);
}

/* Compiles d's model and checks B = 1, 3 and 37; frees d. */
static void mdl_check(Mdl *d)
{
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile(&d->m, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_int_eq(diag.errors, 0);
    ck_assert_int_eq(k.ny, d->m.ny);
    ck_assert_int_eq(k.np, d->m.np);
    ck_assert_ptr_eq(k.user, jit);
    ck_assert(jit_compile_ms(jit) > 0);
    const int64_t batches[4] = {1, 3, 37, 150}; /* 150: three chunks of the rhs and vjp (64, 64, 22) */
    for (int i = 0; i < 4; i++)
        check_batch(&d->m, &k, batches[i]);
    jit_free(jit);
    mdl_free(d);
}

static IrNode *num(Mdl *d, double v)
{
    return ir_scalar(d->b, v);
}

START_TEST(test_scalar_time)
{
    Mdl *d = mdl_new("decay");
    IrNode *x = mdl_state(d, ir_scalar_shape());
    IrNode *t = ir_time(d->b);
    IrNode *a = mdl_param(d, ir_scalar_shape());
    /* dx/dt = -a x t + sin(t) */
    mdl_set(d, x, ir_add(d->b, ir_neg(d->b, ir_mul(d->b, ir_mul(d->b, a, x), t)),
                         ir_unary(d->b, IR_SIN, t)));
    mdl_check(d);
}
END_TEST

/* The unary ops, each on a batched vector, an unbatched vector (computed once
 * per call) and an unbatched scalar (a register). */
static const IrOp unary_ops[] = {IR_NEG, IR_EXP, IR_LOG, IR_SQRT, IR_ABS, IR_SIN, IR_COS,
                                 IR_TAN, IR_TANH, IR_SIGMOID, IR_RELU, IR_SOFTPLUS, IR_SIGN,
                                 IR_STEP};

/* A domain the op is defined on; sigmoid and softplus see |x| up to 30, where
 * the unstable forms would overflow. */
static IrNode *unary_arg(Mdl *d, IrOp op, IrNode *x)
{
    if (op == IR_LOG || op == IR_SQRT)
        return ir_add(d->b, ir_unary(d->b, IR_ABS, x), num(d, 0.25));
    if (op == IR_SIGMOID || op == IR_SOFTPLUS)
        return ir_mul(d->b, x, num(d, 20));
    return x;
}

START_TEST(test_unary_ops)
{
    IrOp op = unary_ops[_i];
    Mdl *d = mdl_new("unary");
    IrNode *v = mdl_state(d, ir_vector_shape(5));
    IrNode *q = mdl_param(d, ir_vector_shape(5)), *s = mdl_param(d, ir_scalar_shape());
    IrNode *fv = ir_unary(d->b, op, unary_arg(d, op, v));
    IrNode *fq = ir_unary(d->b, op, unary_arg(d, op, q));
    IrNode *fs = ir_unary(d->b, op, unary_arg(d, op, s));
    mdl_set(d, v, ir_add(d->b, fv, ir_mul(d->b, fq, fs)));
    mdl_check(d);
}
END_TEST

static const IrOp binary_ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_LT, IR_LE,
                                  IR_GT, IR_GE, IR_EQ, IR_NE};

/* Every operand kind on either side: batched vector, batched scalar,
 * unbatched vector, unbatched scalar. */
START_TEST(test_binary_ops)
{
    IrOp op = binary_ops[_i];
    Mdl *d = mdl_new("binary");
    IrNode *v = mdl_state(d, ir_vector_shape(5)), *w = mdl_state(d, ir_vector_shape(5));
    IrNode *sb = mdl_state(d, ir_scalar_shape());
    IrNode *q = mdl_param(d, ir_vector_shape(5)), *sp = mdl_param(d, ir_scalar_shape());
    IrNode *sp2 = mdl_param(d, ir_scalar_shape());
    IrBuilder *b = d->b;
    IrNode *r = ir_add(b, ir_binary(b, op, v, w), ir_binary(b, op, v, sb));
    r = ir_add(b, r, ir_binary(b, op, sb, v));
    r = ir_add(b, r, ir_mul(b, ir_binary(b, op, q, sp), ir_binary(b, op, sp, sp2)));
    r = ir_add(b, r, ir_binary(b, op, q, w));
    r = ir_add(b, r, ir_binary(b, op, sp, v));
    mdl_set(d, v, r);
    mdl_set(d, sb, ir_binary(b, op, sb, sp)); /* a batched scalar root */
    mdl_check(d);
}
END_TEST

START_TEST(test_pow)
{
    Mdl *d = mdl_new("power");
    IrBuilder *b = d->b;
    IrNode *v = mdl_state(d, ir_vector_shape(4)), *sb = mdl_state(d, ir_scalar_shape());
    IrNode *q = mdl_param(d, ir_vector_shape(4)), *sp = mdl_param(d, ir_scalar_shape());
    IrNode *av = ir_add(b, ir_unary(b, IR_ABS, v), num(d, 0.5));
    IrNode *aq = ir_add(b, ir_unary(b, IR_ABS, q), num(d, 0.5));
    IrNode *r = ir_add(b, ir_binary(b, IR_POW, v, num(d, 2)), ir_binary(b, IR_POW, v, num(d, 3)));
    r = ir_add(b, r, ir_binary(b, IR_POW, av, num(d, 0.5)));
    r = ir_add(b, r, ir_binary(b, IR_POW, av, sb));
    r = ir_add(b, r, ir_binary(b, IR_POW, aq, sp));
    r = ir_add(b, r, ir_binary(b, IR_POW, ir_add(b, ir_unary(b, IR_ABS, sp), num(d, 0.5)), sp));
    mdl_set(d, v, r);
    mdl_check(d);
}
END_TEST

START_TEST(test_where)
{
    Mdl *d = mdl_new("select");
    IrBuilder *b = d->b;
    IrNode *v = mdl_state(d, ir_vector_shape(6)), *w = mdl_state(d, ir_vector_shape(6));
    IrNode *sb = mdl_state(d, ir_scalar_shape());
    IrNode *q = mdl_param(d, ir_vector_shape(6)), *sp = mdl_param(d, ir_scalar_shape());
    IrNode *r = ir_where(b, ir_binary(b, IR_GT, v, w), ir_mul(b, v, num(d, 2)), sb);
    r = ir_add(b, r, ir_where(b, ir_binary(b, IR_GT, sb, num(d, 0)), q, v));
    r = ir_add(b, r, ir_where(b, ir_binary(b, IR_GT, sp, num(d, 0)), v, w));
    r = ir_add(b, r, ir_where(b, ir_binary(b, IR_GT, q, num(d, 0)), sp, v));
    r = ir_add(b, r, ir_where(b, ir_binary(b, IR_LT, q, sp), q, sp)); /* unbatched vector */
    mdl_set(d, v, r);
    mdl_set(d, sb, ir_where(b, ir_binary(b, IR_LT, sp, num(d, 0)), sp, sb));
    mdl_check(d);
}
END_TEST

/* ---- matrix products: every shape and batching combination, each with
 * the inline loops, with BLAS forced, and with the measured rule ---- */

enum { MM_CASES = 13 };

static void build_matmul_case(Mdl *d, int c, int m, int n, int k)
{
    IrBuilder *b = d->b;
    IrShape sm = ir_vector_shape(m), sn = ir_vector_shape(n), sk = ir_vector_shape(k);
    IrShape smn = ir_matrix_shape(m, n), snk = ir_matrix_shape(n, k), smk = ir_matrix_shape(m, k);
    switch (c) {
    case 0: { /* shared matrix @ batched vector: one dgemm for the batch */
        IrNode *x = mdl_state(d, sn), *z = mdl_state(d, sm);
        mdl_set(d, z, ir_matmul(b, mdl_param(d, smn), x));
        break;
    }
    case 1: { /* batched matrix @ batched vector (A[2,2] @ z in the spirit of the issue) */
        IrNode *A = mdl_state(d, smn), *x = mdl_state(d, sn), *z = mdl_state(d, sm);
        mdl_set(d, z, ir_matmul(b, A, x));
        break;
    }
    case 2: { /* all shared: once per call, added to a batched state */
        IrNode *z = mdl_state(d, sm);
        mdl_set(d, z, ir_add(b, ir_matmul(b, mdl_param(d, smn), mdl_param(d, sn)), z));
        break;
    }
    case 3: { /* batched vector @ shared matrix */
        IrNode *x = mdl_state(d, sn), *u = mdl_state(d, sk);
        mdl_set(d, u, ir_matmul(b, x, mdl_param(d, snk)));
        break;
    }
    case 4: { /* dot of two batched vectors */
        IrNode *x = mdl_state(d, sn), *w = mdl_state(d, sn), *s = mdl_state(d, ir_scalar_shape());
        mdl_set(d, s, ir_matmul(b, x, w));
        break;
    }
    case 5: { /* dot of a shared vector and a batched one */
        IrNode *x = mdl_state(d, sn), *s = mdl_state(d, ir_scalar_shape());
        mdl_set(d, s, ir_matmul(b, mdl_param(d, sn), x));
        break;
    }
    case 6: { /* shared matrix @ batched matrix */
        IrNode *X = mdl_state(d, snk), *Z = mdl_state(d, smk);
        mdl_set(d, Z, ir_matmul(b, mdl_param(d, smn), X));
        break;
    }
    case 7: { /* computed batched matrix (contiguous) @ shared matrix: stacked rows */
        IrNode *X = mdl_state(d, smn), *Z = mdl_state(d, smk);
        mdl_set(d, Z, ir_matmul(b, ir_unary(b, IR_TANH, X), mdl_param(d, snk)));
        break;
    }
    case 8: { /* batched matrix state (stride ny) @ shared matrix */
        IrNode *X = mdl_state(d, smn), *Z = mdl_state(d, smk);
        mdl_set(d, Z, ir_matmul(b, X, mdl_param(d, snk)));
        break;
    }
    case 9: { /* shared vector @ shared matrix */
        IrNode *u = mdl_state(d, sk);
        mdl_set(d, u, ir_add(b, u, ir_matmul(b, mdl_param(d, sn), mdl_param(d, snk))));
        break;
    }
    case 10: { /* shared matrix @ shared matrix */
        IrNode *Z = mdl_state(d, smk);
        mdl_set(d, Z, ir_mul(b, Z, ir_matmul(b, mdl_param(d, smn), mdl_param(d, snk))));
        break;
    }
    case 11: { /* shared dot */
        IrNode *s = mdl_state(d, ir_scalar_shape());
        mdl_set(d, s, ir_sub(b, s, ir_matmul(b, mdl_param(d, sn), mdl_param(d, sn))));
        break;
    }
    default: { /* batched matrix @ batched matrix */
        IrNode *X = mdl_state(d, smn), *Y = mdl_state(d, snk), *Z = mdl_state(d, smk);
        mdl_set(d, Z, ir_matmul(b, X, Y));
        break;
    }
    }
}

START_TEST(test_matmul)
{
    int c = _i % MM_CASES, size = (_i / MM_CASES) % 3, mode = _i / (3 * MM_CASES);
    static const double modes[3] = {1e30, 0, -1}; /* inline, BLAS, the measured rule */
    cg_set_blas_min_flops(modes[mode]);
    Mdl *d = mdl_new("mm");
    if (size == 0)
        build_matmul_case(d, c, 3, 4, 2);
    else if (size == 1) /* reduction 20: the rule takes BLAS for 37 samples, loops for 1 */
        build_matmul_case(d, c, 17, 20, 3);
    else /* reduction 8: the rule takes one dgemm for 37 stacked samples, loops otherwise */
        build_matmul_case(d, c, 17, 8, 3);
    mdl_check(d);
    cg_set_blas_min_flops(-1);
}
END_TEST

/* One-element vectors and matrices are not scalars: they live in memory, so
 * even a forced BLAS path can take them. */
START_TEST(test_unit_shapes)
{
    cg_set_blas_min_flops(_i ? 0 : -1);
    Mdl *d = mdl_new("unit");
    IrBuilder *b = d->b;
    IrNode *z = mdl_state(d, ir_vector_shape(3)), *u = mdl_state(d, ir_vector_shape(1));
    IrNode *v1 = ir_add(b, mdl_param(d, ir_vector_shape(1)), num(d, 1));
    IrNode *W = mdl_param(d, ir_matrix_shape(3, 1));
    mdl_set(d, z, ir_add(b, ir_matmul(b, W, v1), ir_matmul(b, W, ir_unary(b, IR_EXP, u))));
    mdl_set(d, u, ir_matmul(b, ir_transpose(b, W), z));
    mdl_check(d);
    cg_set_blas_min_flops(-1);
}
END_TEST

START_TEST(test_shape_ops)
{
    Mdl *d = mdl_new("shapes");
    IrBuilder *b = d->b;
    IrNode *X = mdl_state(d, ir_matrix_shape(3, 4)), *x = mdl_state(d, ir_vector_shape(4));
    IrNode *T = mdl_state(d, ir_matrix_shape(4, 3)), *O = mdl_state(d, ir_matrix_shape(4, 5));
    IrNode *s = mdl_state(d, ir_scalar_shape()), *c = mdl_state(d, ir_vector_shape(8));
    IrNode *S = mdl_state(d, ir_matrix_shape(3, 4)), *u = mdl_state(d, ir_vector_shape(2));
    IrNode *P = mdl_param(d, ir_matrix_shape(3, 4)), *q = mdl_param(d, ir_vector_shape(5));
    IrNode *q4 = mdl_param(d, ir_vector_shape(4));
    mdl_set(d, T, ir_add(b, ir_transpose(b, X), ir_transpose(b, ir_mul(b, P, P))));
    mdl_set(d, O, ir_add(b, ir_outer(b, x, q), ir_outer(b, q4, ir_unary(b, IR_SIN, q))));
    mdl_set(d, s, ir_add(b, ir_add(b, ir_sum(b, X), ir_sum(b, ir_unary(b, IR_EXP, q))),
                         ir_sum(b, ir_mul(b, x, x))));
    /* views: part of a vector, a matrix row; a copy: a column segment */
    IrNode *xs = ir_slice(b, x, 1, 0, ir_vector_shape(2));
    IrNode *row = ir_slice(b, X, 1, 0, ir_matrix_shape(1, 4));
    IrNode *col = ir_slice(b, X, 1, 2, ir_vector_shape(2));
    IrNode *parts[4] = {ir_element(b, X, 2, 3), xs, col, ir_slice(b, ir_unary(b, IR_TANH, q), 0, 0,
                                                                 ir_vector_shape(3))};
    mdl_set(d, c, ir_concat(b, 4, parts));
    mdl_set(d, u, ir_add(b, xs, ir_slice(b, ir_mul(b, x, x), 2, 0, ir_vector_shape(2))));
    IrNode *rows[3] = {ir_unary(b, IR_COS, x), q4, ir_mul(b, x, ir_element(b, row, 0, 1))};
    mdl_set(d, S, ir_stack(b, 3, rows));
    mdl_set(d, X, ir_add(b, ir_slice(b, ir_stack(b, 3, rows), 0, 0, ir_matrix_shape(3, 4)), P));
    mdl_check(d);
}
END_TEST

/* Roots that are not computed in place: a leaf, a parameter, a constant, the
 * time, and one node shared by two states. */
START_TEST(test_roots)
{
    Mdl *d = mdl_new("roots");
    IrBuilder *b = d->b;
    IrNode *x = mdl_state(d, ir_vector_shape(3)), *y = mdl_state(d, ir_vector_shape(3));
    IrNode *z = mdl_state(d, ir_vector_shape(3)), *w = mdl_state(d, ir_vector_shape(3));
    IrNode *s = mdl_state(d, ir_scalar_shape()), *r = mdl_state(d, ir_vector_shape(3));
    IrNode *c = mdl_state(d, ir_vector_shape(3));
    IrNode *q = mdl_param(d, ir_vector_shape(3));
    double k[3] = {1.5, -2, 0.25};
    IrNode *shared = ir_unary(b, IR_TANH, ir_add(b, x, y));
    mdl_set(d, x, y);
    mdl_set(d, y, q);
    mdl_set(d, z, shared);
    mdl_set(d, w, shared);
    mdl_set(d, s, ir_time(b));
    mdl_set(d, r, ir_const(b, ir_vector_shape(3), k));
    mdl_set(d, c, ir_add(b, ir_fill(b, ir_vector_shape(3), 2), ir_unary(b, IR_SIN, q)));
    mdl_check(d);
}
END_TEST

static IrNode *mlp(Mdl *d, int hidden)
{
    IrBuilder *b = d->b;
    IrNode *y = mdl_state(d, ir_vector_shape(2));
    IrNode *W1 = mdl_param(d, ir_matrix_shape(hidden, 2)), *b1 = mdl_param(d, ir_vector_shape(hidden));
    IrNode *W2 = mdl_param(d, ir_matrix_shape(2, hidden)), *b2 = mdl_param(d, ir_vector_shape(2));
    IrNode *h = ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, W1, ir_binary(b, IR_POW, y, num(d, 3))), b1));
    mdl_set(d, y, ir_add(b, ir_matmul(b, W2, h), b2));
    return y;
}

START_TEST(test_mlp)
{
    Mdl *d = mdl_new("spiral");
    mlp(d, 50);
    mdl_check(d);
}
END_TEST

/* Work per sample of the rhs of d's model (then checked as usual). */
static size_t chain_work(Mdl *d)
{
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile(&d->m, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_uint_eq(k.work_fixed, 0);
    size_t w = k.work_per_sample;
    jit_free(jit);
    mdl_check(d);
    return w;
}

/* A chain of single-reader elementwise ops is one fused loop: no buffers. A
 * chain whose links are each read twice stores them, reusing buffers once
 * their readers are done: two [10] buffers live at a time, not eight. */
START_TEST(test_work_reuse)
{
    Mdl *d = mdl_new("chain");
    IrBuilder *b = d->b;
    IrNode *x = mdl_state(d, ir_vector_shape(10)), *e = x;
    for (int i = 0; i < 8; i++)
        e = ir_unary(b, i % 2 ? IR_SIN : IR_TANH, ir_add(b, e, num(d, 0.1 * (i + 1))));
    mdl_set(d, x, e);
    ck_assert_uint_eq(chain_work(d), 0);
    d = mdl_new("twice");
    b = d->b;
    x = mdl_state(d, ir_vector_shape(10)), e = x;
    for (int i = 0; i < 8; i++) /* e read by tanh and by the product */
        e = ir_mul(b, ir_unary(b, IR_TANH, ir_add(b, e, num(d, 0.1 * (i + 1)))), e);
    mdl_set(d, x, ir_unary(b, IR_SIN, e));
    ck_assert_uint_le(chain_work(d), 20);
}
END_TEST

/* ---- the inline transcendental functions (llvm_math.c) against libm ---- */

/* The libm forms the JIT replaces (ir_eval.c's sigmoid and softplus). */
static double ref_sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

static double ref_softplus(double x)
{
    return fmax(x, 0) + log1p(exp(-fabs(x)));
}

typedef struct MathCase {
    IrOp op;
    double (*ref)(double);
    long double (*ref_long)(long double); /* more precise truth, or NULL */
    double lo, hi;                        /* the dense sweep */
    double e_lo, e_hi;                    /* log-spaced 10^e, e in [e_lo, e_hi] */
    bool both_signs;                      /* ... of both signs (alternating) */
    double near;                          /* and near + 10^e, e in [-17, 0], when nonzero */
    double max_ulp, max_ulp_true;         /* bounds vs libm and vs the long-double truth */
    double limit;                         /* NaN from |x| = limit on, when nonzero */
} MathCase;

/* The bounds are the measured maxima (docs/codegen.md) rounded up, under the
 * 4 ulp target. sin and cos are NaN from |x| = 2^50 on (llvm_math.c's
 * SIN_COS_LIMIT), and their log-spaced sweep goes up to there. */
#define SIN_COS_LIMIT 0x1p50
#define SIN_COS_E_HI 15.0514 /* 10^15.0514 < 2^50 */
static const MathCase math_cases[] = {
    {IR_TANH, tanh, tanhl, -40, 40, -300, 2, true, 0, 2, 1.1, 0},
    {IR_EXP, exp, expl, -745, 709.78, -300, 2, false, 0, 1, 1, 0},
    {IR_SIGMOID, ref_sigmoid, NULL, -40, 40, -300, 2, true, 0, 2, 0, 0},
    {IR_LOG, log, logl, 0, 4, -323.3, 308.25, false, 1, 1, 1, 0},
    {IR_LOG, log1p, log1pl, -1, 2, -300, 308.25, false, -1, 1, 1, 0}, /* as log1p */
    {IR_SOFTPLUS, ref_softplus, NULL, -750, 750, -300, 2, true, 0, 2, 0, 0},
    {IR_SIN, sin, sinl, -1e5, 1e5, -300, SIN_COS_E_HI, true, 0, 1, 1, SIN_COS_LIMIT},
    {IR_COS, cos, cosl, -1e5, 1e5, -300, SIN_COS_E_HI, true, 0, 1, 1, SIN_COS_LIMIT},
    {IR_ERF, erf, erfl, -7, 7, -300, 2, true, 0, 1, 1, 0},
};

/* Values every version must get exactly as libm does (special cases, the
 * edges of the clamps and of the subnormal range) where the result is 0, +-1,
 * +-inf, subnormal or NaN, and within the bound elsewhere; then each
 * function's own edges (the pieces' and the reductions' boundaries, near
 * multiples of pi/2, huge arguments), then the sweeps. */
static const double math_specials[] = {
    0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 1e-310, -1e-310, 5e-324, -5e-324, DBL_MIN,
    -DBL_MIN, 1e-300, -1e-300, 1e-20, -1e-20, 1e-8, -1e-8, 0.1732, -0.1732, 0.5493, 0.75,
    19.06, -19.06, 19.07, 20, -20, 21, 22, -22, 40, 700, -700, 709.78, 709.79, 710, 720,
    -708.4, -740, -745.1, -745.2, -746, -800, DBL_MAX, -DBL_MAX,
    /* log, log1p */
    1, -1, 2, 0.5, 0x1.fffffffffffffp-1, 0x1.0000000000001p+0, 0x1.6a09e667f3bccp-1,
    0x1.6a09e667f3bcdp-1, 0x1.6a09e667f3bcdp+0, 0x1.fffffffffffffp-1023, 0x1p-1074, 1e-320,
    -0x1.fffffffffffffp-1, -0.5, -0.2928932188134524, 0.41421356237309515, 3, 0x1p52, 0x1p53,
    0x1.0000000000001p53, 1e300, -1.5, -2, 1e-17, -1e-17, 0x1p-53, -0x1p-54, 1e-5, -1e-5,
    /* sin, cos: multiples of pi/4, points near multiples of pi/2, large arguments */
    3.141592653589793, 1.5707963267948966, 0.7853981633974483, 2.356194490192345,
    -3.141592653589793, 4.71238898038469, 6.283185307179586, 1e5, -1e5, 1e6, 0x1p20, 1e9,
    355, 103993, 104348, 208341, 245850922, 1e10, 1e12, -1e12, 0x1p39, 0x1.fffffffffffffp39,
    0x1p40, 1e13, 1e14, -1e15, 0x1.fffffffffffffp49, 0x1p50, -0x1p50, 1e16, 1e100,
    /* erf: the pieces' bounds and the clamp */
    0.84375, 0x1.affffffffffffp-1, 1.25, 0x1.3ffffffffffffp+0, 2.857142857142857,
    2.8571428571428577, -1.25, -0.84375, 6, 5.999999, -6, 5.9, 27, 28, 0x1p-28, 1.5, -3, 4,
};
enum { MATH_N_SPECIAL = sizeof math_specials / sizeof math_specials[0], MATH_SWEEP = 1000000 };

/* Compiles dx/dt = op(x) for one scalar state: a batch of n samples is then n
 * evaluations in one vectorised loop. */
static JitModel *math_kernel(Mdl *d, IrOp op, NdKernels *k)
{
    IrNode *x = mdl_state(d, ir_scalar_shape());
    mdl_set(d, x, ir_unary(d->b, op, x));
    Diag diag;
    diag_init(&diag, stderr);
    JitModel *jit = jit_compile(&d->m, k, &diag);
    ck_assert_ptr_nonnull(jit);
    return jit;
}

/* Same bits for NaN-or-equal values, and the sign of a zero. */
static void assert_same_special(double got, double want, double x)
{
    int same = (isnan(got) && isnan(want)) ||
                (got == want && signbit(got) == signbit(want));
    if (!same)
        ck_abort_msg("f(%.17g): got %.17g, want %.17g", x, got, want);
}

/* |got - want| in units of the last place of want (as a double: 2^(e - 52),
 * e its exponent, 2^-1074 in the subnormal range). Equal infinities and two
 * NaNs are 0 apart, anything else non-finite infinitely far. */
static double ulp_err(double got, long double want)
{
    if ((isnan(got) && isnan(want)) || got == want)
        return 0;
    if (!isfinite(got) || !isfinite(want))
        return INFINITY;
    double w = (double)want;
    double ulp = w == 0 ? 0x1p-1074 : fmax(ldexp(1, ilogb(w) - 52), 0x1p-1074);
    return (double)(fabsl((long double)got - want) / ulp);
}

/* The sweeps: evenly spaced over [lo, hi], log-spaced 10^e, and (when c->near
 * is nonzero; x has room for it then) near + 10^e. */
static void math_points(const MathCase *c, double *x)
{
    for (int i = 0; i < MATH_SWEEP; i++) {
        x[i] = c->lo + (c->hi - c->lo) * i / (MATH_SWEEP - 1);
        double tiny = pow(10, c->e_lo + (c->e_hi - c->e_lo) * i / MATH_SWEEP);
        x[MATH_SWEEP + i] = c->both_signs && i % 2 ? -tiny : tiny;
        double off = pow(10, -17 + 17.0 * i / MATH_SWEEP);
        if (c->near) /* both sides of +1, above -1 */
            x[2 * MATH_SWEEP + i] = c->near + (i % 2 && c->near > 0 ? -off : off);
    }
}

START_TEST(test_math_accuracy)
{
    const MathCase *c = &math_cases[_i];
    Mdl *d = mdl_new("math");
    NdKernels k;
    cg_set_log_as_log1p(c->ref == log1p);
    JitModel *jit = math_kernel(d, c->op, &k);
    cg_set_log_as_log1p(false);
    int64_t n = MATH_N_SPECIAL + (c->near ? 3 : 2) * MATH_SWEEP;
    double *x = alloc_doubles((size_t)n), *f = alloc_doubles((size_t)n);
    double *work = alloc_doubles(nd_kernels_work_size(&k, n));
    memcpy(x, math_specials, sizeof math_specials);
    math_points(c, x + MATH_N_SPECIAL);
    k.rhs(0, x, NULL, f, n, work);
    double worst = 0, worst_true = 0, at = 0, at_true = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = c->limit && !(fabs(x[i]) < c->limit) ? NAN : c->ref(x[i]);
        if (i < MATH_N_SPECIAL && (!isfinite(want) || want == 0 || !isfinite(x[i]) ||
                                   fabs(want) < DBL_MIN || fabs(want) == 1))
            assert_same_special(f[i], want, x[i]);
        double e = ulp_err(f[i], want);
        if (e > worst)
            worst = e, at = x[i];
        long double truth = c->ref_long && !isnan(want) ? c->ref_long(x[i]) : 0; /* where normal */
        if (fabsl(truth) >= DBL_MIN && fabsl(truth) <= DBL_MAX && ulp_err(f[i], truth) > worst_true)
            worst_true = ulp_err(f[i], truth), at_true = x[i];
    }
    if (getenv("NODEC_MATH_REPORT")) /* the figures of docs/codegen.md */
        fprintf(stderr, "op %d: max %.3f ulp vs libm (x = %.17g), %.3f vs long double (x = %.17g)\n",
                (int)c->op, worst, at, worst_true, at_true);
    if (worst > c->max_ulp || (c->ref_long && worst_true > c->max_ulp_true))
        ck_abort_msg("op %d: max error %.3f ulp vs libm (at x = %.17g), %.3f ulp vs long double "
                     "(at x = %.17g); bounds %g, %g",
                     (int)c->op, worst, at, worst_true, at_true, c->max_ulp, c->max_ulp_true);
    free(x), free(f), free(work);
    jit_free(jit);
    mdl_free(d);
}
END_TEST

/* The optimised LLVM IR of d's rhs kernel, as `nodec emit-llvm` prints it (free it). */
static char *llvm_text(Mdl *d)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    Diag diag;
    diag_init(&diag, stderr);
    ck_assert_int_eq(cg_print_llvm(out, &d->m, false, &diag), 0);
    fclose(out);
    return text;
}

START_TEST(test_print_llvm)
{
    Mdl *d = mdl_new("spiral");
    mlp(d, 50);
    char *text = llvm_text(d);
    ck_assert_ptr_nonnull(strstr(text, "define void @spiral_rhs("));
    ck_assert_ptr_nonnull(strstr(text, "@cblas_dgemm")); /* W2 @ h: reduction 50 */
    ck_assert_ptr_null(strstr(text, "@tanh")); /* inline (llvm_math.c), no libm call */
    ck_assert_ptr_nonnull(strstr(text, "%v_B"));
    /* the tanh loop vectorised for the host: its polynomial as vector fmuladds */
    ck_assert(strstr(text, "@llvm.fmuladd.v4f64") || strstr(text, "@llvm.fmuladd.v2f64") ||
              strstr(text, "@llvm.fmuladd.v8f64"));
    free(text);
    mdl_free(d);
}
END_TEST

/* Each inline function mapped over the batch (llvm_math.c): the optimised
 * module declares no function but LLVM intrinsics, and none of those that
 * the back end lowers to libm calls (a libm call would be a declaration:
 * @log, @log1p, @llvm.sin.f64 ...), and the loop is widened (the polynomials
 * as vector fmuladds). */
static const IrOp math_map_ops[] = {IR_EXP, IR_TANH, IR_LOG, IR_SIN, IR_COS,
                                    IR_ERF, IR_SIGMOID, IR_SOFTPLUS};
static const char *const libm_intrinsics[] = {"@llvm.exp.", "@llvm.exp2.", "@llvm.log.",
                                              "@llvm.log2.", "@llvm.log10.", "@llvm.sin.",
                                              "@llvm.cos.", "@llvm.pow."};

START_TEST(test_print_llvm_math)
{
    IrOp op = math_map_ops[_i / 2];
    cg_set_log_as_log1p(_i % 2); /* the second time: IR_LOG as log1p */
    Mdl *d = mdl_new("map");
    IrNode *x = mdl_state(d, ir_scalar_shape());
    mdl_set(d, x, ir_unary(d->b, op, x));
    char *text = llvm_text(d);
    cg_set_log_as_log1p(false);
    for (char *line = strstr(text, "\ndeclare "); line; line = strstr(line + 1, "\ndeclare ")) {
        char head[512];
        snprintf(head, sizeof head, "%s", line + 1);
        head[strcspn(head, "\n")] = 0;
        ck_assert_msg(strstr(head, "@llvm."), "op %d: %s", (int)op, head);
        for (size_t i = 0; i < sizeof libm_intrinsics / sizeof libm_intrinsics[0]; i++)
            ck_assert_msg(!strstr(head, libm_intrinsics[i]), "op %d: %s", (int)op, head);
    }
    ck_assert_msg(strstr(text, "@llvm.fmuladd.v4f64") || strstr(text, "@llvm.fmuladd.v2f64") ||
                      strstr(text, "@llvm.fmuladd.v8f64"),
                  "op %d: no vector fmuladd", (int)op);
    free(text);
    mdl_free(d);
}
END_TEST

/* The measured rule's short stacked products: W[8,8] @ x (a reduction of 8) is
 * one dgemm over the batch when B * 64 >= 4096, behind the run-time branch;
 * W[4,4] @ x (a reduction of 4) stays inline loops. */
static bool llvm_has_dgemm(int n)
{
    Mdl *d = mdl_new("short");
    IrNode *x = mdl_state(d, ir_vector_shape(n));
    mdl_set(d, x, ir_matmul(d->b, mdl_param(d, ir_matrix_shape(n, n)), x));
    char *text = llvm_text(d);
    bool has = strstr(text, "@cblas_dgemm") != NULL;
    free(text);
    mdl_free(d);
    return has;
}

START_TEST(test_short_stacked_rule)
{
    cg_set_blas_min_flops(-1);
    ck_assert(llvm_has_dgemm(8));
    ck_assert(!llvm_has_dgemm(4));
}
END_TEST

/* ---- derived kernels: NdKernelFn against ir_eval_env ---- */

/* Doubles an output array needs in destination dst for a batch of B. */
static size_t outs_size(int n, const PlanOutput *outs, int dst, int64_t B)
{
    size_t need = 0;
    for (int o = 0; o < n; o++) {
        if (outs[o].dst != dst)
            continue;
        size_t size = (size_t)ir_shape_size(outs[o].node->shape);
        size_t end = outs[o].batch_sum ? (size_t)outs[o].offset + size
                                       : (size_t)outs[o].stride * (size_t)B;
        need = end > need ? end : need;
    }
    return need;
}

static double *random_doubles(size_t n)
{
    double *v = alloc_doubles(n);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd();
    return v;
}

/* The values of every output for sample b, by the interpreter. */
static void eval_sample(const IrModel *m, int n, const PlanOutput *outs, double t, const double *y,
                        const double *p, const double *a, const double *d, int nd, int64_t b,
                        double **ref)
{
    IrNode **roots = malloc(sizeof *roots * (size_t)n);
    for (int o = 0; o < n; o++)
        roots[o] = outs[o].node;
    size_t ny = (size_t)m->ny;
    IrEnv env = {t, y + (size_t)b * ny, p, a + (size_t)b * ny, d ? d + (size_t)b * (size_t)nd : NULL};
    ir_eval_env(n, roots, &env, ref);
    free(roots);
}

/* One call of fn on B random samples, each output checked against the
 * interpreter: per-sample outputs element by element, batch sums against the
 * sum of the per-sample values (tolerance scaled by the sum of magnitudes). */
static void check_kernel(const IrModel *m, const NdKernels *k, NdKernelFn fn, int n,
                         const PlanOutput *outs, int nd, int64_t B)
{
    size_t ny = (size_t)m->ny, n0 = outs_size(n, outs, 0, B), n1 = outs_size(n, outs, 1, B);
    double *y = random_doubles(ny * (size_t)B), *a = random_doubles(ny * (size_t)B);
    double *p = random_doubles((size_t)m->np), *d = nd ? random_doubles((size_t)nd * (size_t)B) : NULL;
    double *out0 = alloc_doubles(n0), *out1 = alloc_doubles(n1);
    double *work = alloc_doubles(nd_kernels_work_size(k, B));
    for (size_t i = 0; i < n0; i++)
        out0[i] = NAN;
    for (size_t i = 0; i < n1; i++)
        out1[i] = NAN;
    double t = 0.3;
    fn(t, y, p, a, d, out0, out1, B, work);
    double **ref = malloc(sizeof *ref * (size_t)n), **sum = malloc(sizeof *sum * (size_t)n);
    double **mag = malloc(sizeof *mag * (size_t)n);
    for (int o = 0; o < n; o++) {
        size_t size = (size_t)ir_shape_size(outs[o].node->shape);
        ref[o] = alloc_doubles(size);
        sum[o] = calloc(size, sizeof **sum);
        mag[o] = calloc(size, sizeof **mag);
    }
    for (int64_t b = 0; b < B; b++) {
        eval_sample(m, n, outs, t, y, p, a, d, nd, b, ref);
        for (int o = 0; o < n; o++) {
            const PlanOutput *out = &outs[o];
            const double *got = (out->dst ? out1 : out0) + out->offset;
            for (int i = 0; i < ir_shape_size(out->node->shape); i++) {
                sum[o][i] += ref[o][i];
                mag[o][i] += fabs(ref[o][i]);
                if (!out->batch_sum)
                    assert_close(got[(size_t)b * (size_t)out->stride + (size_t)i], ref[o][i],
                                 "kernel vs ir_eval_env", b, i);
            }
        }
    }
    for (int o = 0; o < n; o++) {
        const double *got = (outs[o].dst ? out1 : out0) + outs[o].offset;
        for (int i = 0; outs[o].batch_sum && i < ir_shape_size(outs[o].node->shape); i++)
            if (!(fabs(got[i] - sum[o][i]) <= 1e-12 * fmax(1.0, mag[o][i])))
                ck_abort_msg("batch sum: output %d element %d: got %.17g, want %.17g", o, i,
                             got[i], sum[o][i]);
        free(ref[o]), free(sum[o]), free(mag[o]);
    }
    free(ref), free(sum), free(mag);
    free(y), free(a), free(p), free(d), free(out0), free(out1), free(work);
}

static void check_kernel_batches(const IrModel *m, const NdKernels *k, NdKernelFn fn, int n,
                                 const PlanOutput *outs, int nd)
{
    ck_assert_ptr_nonnull(fn);
    const int64_t batches[4] = {1, 3, 37, 150}; /* 150: three chunks of the rhs and vjp (64, 64, 22) */
    for (int i = 0; i < 4; i++)
        check_kernel(m, k, fn, n, outs, nd, batches[i]);
}

/* The vjp's outputs as nd_kernels.h states them, written out independently of
 * codegen's own list. */
static PlanOutput *vjp_outputs(const IrModel *m, int *n)
{
    *n = m->n_states + m->n_params;
    PlanOutput *o = calloc((size_t)*n, sizeof *o);
    for (int s = 0; s < m->n_states; s++)
        o[s] = (PlanOutput){m->adj_state[s], 0, m->states[s].offset, m->ny, 0, false, false};
    for (int j = 0; j < m->n_params; j++)
        o[m->n_states + j] = (PlanOutput){m->adj_param[j], 1, m->params[j].offset, m->np, 1, false, false};
    return o;
}

/* diff's vjp and jac of d's model, JIT'd in one module with the rhs, against
 * the interpreter; the rhs still against ir_eval. Frees d. */
static void mdl_check_derived(Mdl *d)
{
    diff_model_adjoint(d->b, &d->m);
    diff_model_jacobian(d->b, &d->m);
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = 1};
    JitModel *jit = jit_compile_request(&d->m, &req, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_int_eq(diag.errors, 0);
    int n;
    PlanOutput *vjp = vjp_outputs(&d->m, &n);
    check_kernel_batches(&d->m, &k, k.vjp, n, vjp, 0);
    PlanOutput jac = {d->m.jac, 0, 0, d->m.ny * d->m.ny, 0, false, false};
    check_kernel_batches(&d->m, &k, k.jac, 1, &jac, 0);
    const int64_t batches[4] = {1, 3, 37, 150}; /* 150: three chunks of the rhs and vjp (64, 64, 22) */
    for (int i = 0; i < 4; i++)
        check_batch(&d->m, &k, batches[i]);
    free(vjp);
    jit_free(jit);
    mdl_free(d);
}

/* dx/dt = -a x t + c sin(t x) + x^2 / (1 + c^2) */
static void scalar_time_model(Mdl *d)
{
    IrBuilder *b = d->b;
    IrNode *x = mdl_state(d, ir_scalar_shape()), *t = ir_time(b);
    IrNode *a = mdl_param(d, ir_scalar_shape()), *c = mdl_param(d, ir_scalar_shape());
    IrNode *r = ir_neg(b, ir_mul(b, ir_mul(b, a, x), t));
    r = ir_add(b, r, ir_mul(b, c, ir_unary(b, IR_SIN, ir_mul(b, t, x))));
    r = ir_add(b, r, ir_div(b, ir_binary(b, IR_POW, x, num(d, 2)),
                            ir_add(b, num(d, 1), ir_mul(b, c, c))));
    mdl_set(d, x, r);
}

START_TEST(test_derived_scalar_time)
{
    Mdl *d = mdl_new("decay");
    scalar_time_model(d);
    mdl_check_derived(d);
}
END_TEST

/* The MLP with each matmul path: inline forced, BLAS forced, the rule. */
START_TEST(test_derived_mlp)
{
    static const double modes[3] = {1e30, 0, -1};
    cg_set_blas_min_flops(modes[_i]);
    Mdl *d = mdl_new("spiral");
    mlp(d, 50);
    mdl_check_derived(d);
    cg_set_blas_min_flops(-1);
}
END_TEST

/* Matrix and vector states with products both ways, transposes, slices (whose
 * gradients are pads), outer, sum, where, and time. */
static void matrix_model(Mdl *d)
{
    IrBuilder *b = d->b;
    IrNode *X = mdl_state(d, ir_matrix_shape(3, 3)), *v = mdl_state(d, ir_vector_shape(3));
    IrNode *W = mdl_param(d, ir_matrix_shape(3, 3)), *c = mdl_param(d, ir_vector_shape(3));
    IrNode *s = mdl_param(d, ir_scalar_shape()), *t = ir_time(b);
    IrNode *rX = ir_add(b, ir_unary(b, IR_TANH, ir_matmul(b, W, X)), ir_outer(b, v, c));
    rX = ir_sub(b, rX, ir_mul(b, ir_transpose(b, X), ir_mul(b, s, t)));
    IrNode *row = ir_slice(b, X, 1, 0, ir_matrix_shape(1, 3));
    IrNode *rv = ir_add(b, ir_matmul(b, X, v), ir_mul(b, ir_unary(b, IR_SIN, t), c));
    rv = ir_add(b, rv, ir_mul(b, ir_sum(b, ir_mul(b, X, X)), ir_element(b, row, 0, 2)));
    rv = ir_add(b, rv, ir_where(b, ir_binary(b, IR_GT, v, num(d, 0)), ir_matmul(b, v, W), c));
    IrNode *parts[2] = {ir_slice(b, v, 1, 0, ir_vector_shape(2)), ir_element(b, X, 2, 2)};
    rv = ir_add(b, rv, ir_unary(b, IR_COS, ir_concat(b, 2, parts)));
    mdl_set(d, X, rX);
    mdl_set(d, v, rv);
}

START_TEST(test_derived_matrix)
{
    cg_set_blas_min_flops(_i ? 0 : -1);
    Mdl *d = mdl_new("mat");
    matrix_model(d);
    mdl_check_derived(d);
    cg_set_blas_min_flops(-1);
}
END_TEST

/* ---- the fused rhs_vjp kernel ---- */

static JitModel *compile_req(const IrModel *m, JitRequest req, NdKernels *k)
{
    Diag diag;
    diag_init(&diag, stderr);
    JitModel *jit = jit_compile_request(m, &req, k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_int_eq(diag.errors, 0);
    return jit;
}

static void assert_same(const double *got, const double *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
            ck_abort_msg("%s: element %zu: got %.17g, want %.17g", what, i, got[i], want[i]);
}

/* Within 1e-13 of the larger magnitude (parameter sums added in another order). */
static void assert_near(const double *got, const double *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= 1e-13 * fmax(1, fmax(fabs(got[i]), fabs(want[i])))))
            ck_abort_msg("%s: element %zu: got %.17g, want %.17g", what, i, got[i], want[i]);
}

/* One batch: rhs_vjp (alone in its module, with the vjp calling it) against
 * rhs and vjp compiled without it, bit for bit: the same IR nodes, emitted by
 * the same code, in the same order. Past 64 samples the plain vjp sums its
 * a^T df/dp in chunks of 64 (docs/codegen.md, "The batch in chunks") where
 * rhs_vjp sums in one pass: those sums agree to rounding. Exact-size buffers
 * for ASan. */
static void check_fused_batch(const IrModel *m, const NdKernels *sep, const NdKernels *fused,
                              const NdKernels *both, int64_t B)
{
    size_t n = (size_t)m->ny * (size_t)B, np = (size_t)m->np;
    double *y = random_doubles(n), *a = random_doubles(n), *p = random_doubles(np);
    double *dzdt = alloc_doubles(2 * n), *g = alloc_doubles(np), *want = alloc_doubles(2 * n);
    double *want_g = alloc_doubles(np), *got = alloc_doubles(n), *got_g = alloc_doubles(np);
    const NdKernels *tables[3] = {sep, fused, both};
    double *work[3];
    for (int i = 0; i < 3; i++)
        work[i] = alloc_doubles(nd_kernels_work_size(tables[i], B));
    double t = 0.45;
    sep->rhs(t, y, p, want, B, work[0]);
    sep->vjp(t, y, p, a, NULL, want + n, want_g, B, work[0]);
    for (int i = 1; i < 3; i++) {
        tables[i]->rhs_vjp(t, y, p, a, NULL, dzdt, g, B, work[i]);
        assert_same(dzdt, want, n, "rhs_vjp: dydt vs rhs");
        assert_same(dzdt + n, want + n, n, "rhs_vjp: a^T df/dy vs vjp");
        (B > 64 ? assert_near : assert_same)(g, want_g, np, "rhs_vjp: a^T df/dp vs vjp");
    }
    both->vjp(t, y, p, a, NULL, got, got_g, B, work[2]); /* the vjp that calls rhs_vjp */
    assert_same(got, want + n, n, "vjp through rhs_vjp: a^T df/dy");
    (B > 64 ? assert_near : assert_same)(got_g, want_g, np, "vjp through rhs_vjp: a^T df/dp");
    for (int i = 0; i < 3; i++)
        free(work[i]);
    free(y), free(a), free(p), free(dzdt), free(g), free(want), free(want_g), free(got), free(got_g);
}

/* The fused kernel of the MLP (each matmul path), the scalar model with time
 * and the matrix model (the BLAS paths forced there too). */
START_TEST(test_fused_rhs_vjp)
{
    static const double modes[3] = {-1, 1e30, 0};
    cg_set_blas_min_flops(modes[_i % 3]);
    Mdl *d = mdl_new(_i < 3 ? "spiral" : _i < 6 ? "mat" : "decay");
    if (_i < 3)
        mlp(d, 50);
    else if (_i < 6)
        matrix_model(d);
    else
        scalar_time_model(d);
    diff_model_adjoint(d->b, &d->m);
    NdKernels sep, fused, both;
    JitModel *j1 = compile_req(&d->m, (JitRequest){.vjp = 1}, &sep);
    JitModel *j2 = compile_req(&d->m, (JitRequest){.rhs_vjp = 1}, &fused);
    JitModel *j3 = compile_req(&d->m, (JitRequest){.vjp = 1, .jac = 0, .rhs_vjp = 1}, &both);
    ck_assert_ptr_null(sep.rhs_vjp);
    ck_assert_ptr_null(fused.vjp);
    ck_assert_ptr_nonnull(fused.rhs_vjp);
    ck_assert_ptr_nonnull(both.vjp);
    const int64_t batches[4] = {1, 3, 37, 150}; /* 150: three chunks of the rhs and vjp (64, 64, 22) */
    for (int i = 0; i < 4; i++)
        check_fused_batch(&d->m, &sep, &fused, &both, batches[i]);
    for (int i = 0; i < 3; i++) /* the rhs of a module with rhs_vjp is still the rhs */
        check_batch(&d->m, &both, batches[i]);
    jit_free(j1), jit_free(j2), jit_free(j3);
    mdl_free(d);
    cg_set_blas_min_flops(-1);
}
END_TEST

/* Hand-built kernels reading every leaf, with PAD, unbatched outputs (per
 * sample: broadcast; summed: B times the value), a node shared by two outputs
 * and a data row wider than the leaves read. */
START_TEST(test_extra_leaves)
{
    Mdl *d = mdl_new("leaves");
    IrBuilder *b = d->b;
    IrNode *x = mdl_state(d, ir_vector_shape(3)), *M = mdl_state(d, ir_matrix_shape(2, 3));
    IrNode *q = mdl_param(d, ir_vector_shape(3)), *P = mdl_param(d, ir_matrix_shape(2, 2));
    IrNode *ax = ir_adjoint(b, 0, 0, ir_vector_shape(3));
    IrNode *aM = ir_adjoint(b, 1, 3, ir_matrix_shape(2, 3));
    IrNode *obs = ir_data(b, 0, 2, ir_vector_shape(3)), *w = ir_data(b, 1, 5, ir_scalar_shape());
    IrNode *xa = ir_mul(b, ir_slice(b, x, 1, 0, ir_vector_shape(2)), ir_slice(b, ax, 0, 0, ir_vector_shape(2)));
    IrNode *padded = ir_pad(b, xa, 1, 0, ir_vector_shape(5));
    IrNode *padM = ir_pad(b, ir_mul(b, P, ir_time(b)), 1, 2, ir_matrix_shape(4, 5));
    IrNode *mix = ir_add(b, ir_mul(b, ir_unary(b, IR_TANH, M), aM), ir_pad(b, w, 1, 1, ir_matrix_shape(2, 3)));
    IrNode *res = ir_mul(b, ir_sub(b, x, obs), w);
    PlanOutput outs[] = {
        {padded, 0, 0, 40, 0, false, false},
        {padded, 0, 5, 40, 0, false, false},                   /* shared: the second is a copy */
        {padM, 0, 10, 40, 0, false, false},                    /* unbatched: broadcast */
        {mix, 0, 30, 40, 0, false, false},
        {ir_sum(b, ir_mul(b, q, q)), 0, 36, 40, 0, false, false},
        {res, 1, 0, 0, 1, false, false},
        {mix, 1, 3, 0, 1, false, false},
        {ir_mul(b, P, num(d, 3)), 1, 9, 0, 1, false, false},   /* unbatched: B times */
        {ir_pad(b, q, 1, 0, ir_vector_shape(5)), 1, 13, 0, 1, false, false},
    };
    int n = (int)(sizeof outs / sizeof outs[0]);
    PlanKernelSpec specs[2] = {{"probe", n, outs, 8}, {"probe_nd0", n, outs, 0}};
    NdKernelFn fns[2];
    JitRequest req = {.n_extra = 2, .extra = specs, .extra_fns = fns};
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile_request(&d->m, &req, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_ptr_null(k.vjp);
    ck_assert_ptr_null(k.jac);
    check_kernel_batches(&d->m, &k, fns[0], n, outs, 8);
    check_kernel_batches(&d->m, &k, fns[1], n, outs, 6); /* inferred: w ends at 6 */
    const int64_t batches[4] = {1, 3, 37, 150}; /* 150: three chunks of the rhs and vjp (64, 64, 22) */
    for (int i = 0; i < 4; i++)
        check_batch(&d->m, &k, batches[i]);
    jit_free(jit);
    mdl_free(d);
}
END_TEST

/* A training loss as a train directive would compile it: per sample
 * mean(abs(y - obs)) summed over the batch, and its gradient w.r.t. the state
 * by diff_vjp, per sample; the data row is [t, obs...]. */
START_TEST(test_extra_loss)
{
    Mdl *d = mdl_new("fit");
    IrBuilder *b = d->b;
    IrNode *y = mlp(d, 20);
    IrNode *obs = ir_data(b, 0, 1, ir_vector_shape(2));
    IrNode *loss = ir_div(b, ir_sum(b, ir_unary(b, IR_ABS, ir_sub(b, y, obs))), num(d, 2));
    IrNode *one = num(d, 1), *grad;
    diff_vjp(b, 1, &loss, &one, 1, &y, &grad);
    diff_model_adjoint(b, &d->m);
    PlanOutput lo = {loss, 1, 0, 0, 1, false, false}, go = {grad, 0, 0, 2, 0, false, false};
    PlanKernelSpec specs[2] = {{"loss", 1, &lo, 3}, {"loss_grad", 1, &go, 3}};
    NdKernelFn fns[2];
    JitRequest req = {.vjp = 1, .n_extra = 2, .extra = specs, .extra_fns = fns};
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile_request(&d->m, &req, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    check_kernel_batches(&d->m, &k, fns[0], 1, &lo, 3);
    check_kernel_batches(&d->m, &k, fns[1], 1, &go, 3);
    int n;
    PlanOutput *vjp = vjp_outputs(&d->m, &n);
    check_kernel_batches(&d->m, &k, k.vjp, n, vjp, 0);
    free(vjp);
    /* the gradient is sign(y - obs) / 2: check one value independently */
    double yv[2] = {0.5, -1}, dv[3] = {9, 1, 2}, g[2], l;
    double *work = alloc_doubles(nd_kernels_work_size(&k, 1));
    fns[0](0, yv, NULL, NULL, dv, NULL, &l, 1, work);
    fns[1](0, yv, NULL, NULL, dv, g, NULL, 1, work);
    ck_assert_double_eq_tol(l, (0.5 + 3) / 2, 1e-15);
    ck_assert_double_eq_tol(g[0], -0.5, 1e-15);
    ck_assert_double_eq_tol(g[1], -0.5, 1e-15);
    free(work);
    jit_free(jit);
    mdl_free(d);
}
END_TEST

/* A module with several kernels needs, for each, at least what that kernel
 * needs alone: the table's work sizes are the maximum. The vjp beside the
 * fused kernel is a call of it (one derivative kernel to compile, not two):
 * its scratch is rhs_vjp's plus dydt and a^T df/dy. */
START_TEST(test_work_max)
{
    Mdl *d = mdl_new("spiral");
    mlp(d, 30);
    diff_model_adjoint(d->b, &d->m);
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k1, k2;
    JitModel *j1 = jit_compile(&d->m, &k1, &diag);
    JitRequest req = {.vjp = 1};
    JitModel *j2 = jit_compile_request(&d->m, &req, &k2, &diag);
    ck_assert_ptr_nonnull(j1);
    ck_assert_ptr_nonnull(j2);
    ck_assert_uint_ge(k2.work_per_sample, k1.work_per_sample);
    ck_assert_uint_ge(k2.work_fixed, k1.work_fixed);
    ck_assert_uint_gt(k2.work_per_sample + k2.work_fixed, k1.work_per_sample + k1.work_fixed);
    ck_assert_ptr_null(k1.vjp);
    NdKernels fused, both;
    JitModel *j3 = compile_req(&d->m, (JitRequest){.rhs_vjp = 1}, &fused);
    JitModel *j4 = compile_req(&d->m, (JitRequest){.vjp = 1, .rhs_vjp = 1}, &both);
    ck_assert_uint_eq(both.work_per_sample, fused.work_per_sample + 2 * (size_t)d->m.ny);
    ck_assert_uint_eq(both.work_fixed, fused.work_fixed);
    jit_free(j1), jit_free(j2), jit_free(j3), jit_free(j4);
    mdl_free(d);
}
END_TEST

/* Requests codegen cannot honour are internal errors, not crashes. */
START_TEST(test_request_errors)
{
    Mdl *d = mdl_new("bad");
    IrNode *x = mdl_state(d, ir_vector_shape(2));
    mdl_set(d, x, ir_unary(d->b, IR_SIN, x));
    FILE *sink = fopen("/dev/null", "w");
    Diag diag;
    diag_init(&diag, sink);
    NdKernels k;
    JitRequest vjp = {.vjp = 1}, jac = {.jac = 1};
    ck_assert_ptr_null(jit_compile_request(&d->m, &vjp, &k, &diag)); /* no diff_model_adjoint */
    ck_assert_ptr_null(jit_compile_request(&d->m, &jac, &k, &diag));
    JitRequest fused = {.rhs_vjp = 1};
    ck_assert_ptr_null(jit_compile_request(&d->m, &fused, &k, &diag)); /* the same */
    PlanOutput wide = {x, 0, 1, 2, 0, false, false}; /* offset + size beyond the stride */
    PlanKernelSpec spec = {"wide", 1, &wide, 0};
    NdKernelFn fn;
    JitRequest ext = {.n_extra = 1, .extra = &spec, .extra_fns = &fn};
    ck_assert_ptr_null(jit_compile_request(&d->m, &ext, &k, &diag));
    PlanKernelSpec twin = {"rhs", 0, NULL, 0}; /* "<model>_rhs" twice */
    ext.extra = &twin;
    ck_assert_ptr_null(jit_compile_request(&d->m, &ext, &k, &diag));
    d->rhs[0] = ir_adjoint(d->b, 0, 0, ir_vector_shape(2)); /* the rhs cannot read a */
    ck_assert_ptr_null(jit_compile(&d->m, &k, &diag));
    ck_assert_int_eq(diag.errors, 6);
    fclose(sink);
    mdl_free(d);
}
END_TEST

static char *print_llvm(const IrModel *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    Diag diag;
    diag_init(&diag, stderr);
    ck_assert_int_eq(cg_print_llvm(out, m, false, &diag), 0);
    fclose(out);
    return text;
}

START_TEST(test_print_llvm_derived)
{
    Mdl *d = mdl_new("spiral");
    mlp(d, 50);
    char *text = print_llvm(&d->m);
    ck_assert_ptr_null(strstr(text, "@spiral_vjp"));
    free(text);
    diff_model_adjoint(d->b, &d->m);
    text = print_llvm(&d->m);
    ck_assert_ptr_nonnull(strstr(text, "define void @spiral_rhs("));
    ck_assert_ptr_nonnull(strstr(text, "define void @spiral_vjp("));
    ck_assert_ptr_null(strstr(text, "@spiral_jac"));
    ck_assert_ptr_nonnull(strstr(text, "%v_out1"));
    free(text);
    diff_model_jacobian(d->b, &d->m);
    text = print_llvm(&d->m);
    ck_assert_ptr_nonnull(strstr(text, "define void @spiral_jac("));
    free(text);
    mdl_free(d);
}
END_TEST

Suite *codegen_suite(void);
Suite *codegen_suite(void)
{
    Suite *s = suite_create("codegen");
    TCase *tc = tcase_create("jit");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scalar_time);
    tcase_add_loop_test(tc, test_unary_ops, 0, (int)(sizeof unary_ops / sizeof unary_ops[0]));
    tcase_add_loop_test(tc, test_binary_ops, 0, (int)(sizeof binary_ops / sizeof binary_ops[0]));
    tcase_add_test(tc, test_pow);
    tcase_add_test(tc, test_where);
    tcase_add_loop_test(tc, test_matmul, 0, MM_CASES * 3 * 3);
    tcase_add_test(tc, test_short_stacked_rule);
    tcase_add_loop_test(tc, test_unit_shapes, 0, 2);
    tcase_add_test(tc, test_shape_ops);
    tcase_add_test(tc, test_roots);
    tcase_add_test(tc, test_mlp);
    tcase_add_test(tc, test_work_reuse);
    tcase_add_test(tc, test_print_llvm);
    tcase_add_loop_test(tc, test_print_llvm_math, 0,
                        2 * (int)(sizeof math_map_ops / sizeof math_map_ops[0]));
    tcase_add_loop_test(tc, test_math_accuracy, 0, (int)(sizeof math_cases / sizeof math_cases[0]));
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("derived");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, test_derived_scalar_time);
    tcase_add_loop_test(td, test_derived_mlp, 0, 3);
    tcase_add_loop_test(td, test_derived_matrix, 0, 2);
    tcase_add_test(td, test_extra_leaves);
    tcase_add_test(td, test_extra_loss);
    tcase_add_test(td, test_work_max);
    tcase_add_test(td, test_request_errors);
    tcase_add_test(td, test_print_llvm_derived);
    tcase_add_loop_test(td, test_fused_rhs_vjp, 0, 7);
    suite_add_tcase(s, td);
    return s;
}
