/* The JIT against the interpreter: models built by hand with the ir.h
 * constructors are compiled by jit_compile and their rhs compared, sample by
 * sample, with ir_eval (two independent computations) for batches of 1, 3 and
 * 37 random states; a batch must also agree with separate B = 1 calls. Work,
 * y and dydt are allocated at their exact sizes so ASan catches any overrun. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"
#include "codegen_internal.h"

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
    const int64_t batches[3] = {1, 3, 37};
    for (int i = 0; i < 3; i++)
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
    int c = _i % MM_CASES, size = (_i / MM_CASES) % 2, mode = _i / (2 * MM_CASES);
    static const double modes[3] = {1e30, 0, -1}; /* inline, BLAS, the measured rule */
    cg_set_blas_min_flops(modes[mode]);
    Mdl *d = mdl_new("mm");
    if (size == 0)
        build_matmul_case(d, c, 3, 4, 2);
    else /* reduction 20: the rule takes BLAS for 37 samples, loops for 1 */
        build_matmul_case(d, c, 17, 20, 3);
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

/* A chain of elementwise ops reuses buffers once their reader is done. */
START_TEST(test_work_reuse)
{
    Mdl *d = mdl_new("chain");
    IrBuilder *b = d->b;
    IrNode *x = mdl_state(d, ir_vector_shape(10)), *e = x;
    for (int i = 0; i < 8; i++)
        e = ir_unary(b, i % 2 ? IR_SIN : IR_TANH, ir_add(b, e, num(d, 0.1 * (i + 1))));
    mdl_set(d, x, e);
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile(&d->m, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    ck_assert_uint_le(k.work_per_sample, 20); /* 15 intermediates live two at a time */
    ck_assert_uint_eq(k.work_fixed, 0);
    jit_free(jit);
    mdl_check(d);
}
END_TEST

START_TEST(test_print_llvm)
{
    Mdl *d = mdl_new("spiral");
    mlp(d, 50);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    Diag diag;
    diag_init(&diag, stderr);
    ck_assert_int_eq(cg_print_llvm(out, &d->m, &diag), 0);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "define void @spiral_rhs("));
    ck_assert_ptr_nonnull(strstr(text, "@cblas_dgemm")); /* W2 @ h: reduction 50 */
    ck_assert_ptr_nonnull(strstr(text, "@tanh"));
    ck_assert_ptr_nonnull(strstr(text, "%v_B"));
    ck_assert_ptr_nonnull(strstr(text, " x double>")); /* vectorised for the host */
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
    tcase_add_loop_test(tc, test_matmul, 0, MM_CASES * 2 * 3);
    tcase_add_loop_test(tc, test_unit_shapes, 0, 2);
    tcase_add_test(tc, test_shape_ops);
    tcase_add_test(tc, test_roots);
    tcase_add_test(tc, test_mlp);
    tcase_add_test(tc, test_work_reuse);
    tcase_add_test(tc, test_print_llvm);
    suite_add_tcase(s, tc);
    return s;
}
