/* div_est(x), Hutchinson's trace estimator, end to end through the compiler:
 * the hidden noise state sema adds, and the JIT-compiled estimate
 * eps^T (df/dx) eps evaluated on many noise draws. For f = A z its mean is
 * trace(A) and its variance has a closed form (Hutchinson 1990; Avron and
 * Toledo 2011): 2 ||S||_F^2 for Gaussian noise, 2 (||S||_F^2 - sum S_ii^2) for
 * Rademacher noise, with S = (A + A^T) / 2. For a nonlinear f the mean matches
 * the exact div() at the same state. Noise is drawn here with the runtime's
 * generator, so these checks are independent of the runner. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"
#include "driver.h"
#include "nd_random.h"

Suite *div_est_suite(void);

enum { N_DRAWS = 20000 };

typedef struct Compiled {
    Compilation *c;
    IrModel *m;
    JitModel *jit;
    NdKernels k;
} Compiled;

static void compiled_init(Compiled *x, const char *src)
{
    x->c = compile_file("div_est.node", src, stderr, 0);
    ck_assert_int_eq(x->c->diag.errors, 0);
    x->m = sema_find_model(x->c->program, "M");
    ck_assert_ptr_nonnull(x->m);
    x->jit = jit_compile(x->m, &x->k, &x->c->diag);
    ck_assert_ptr_nonnull(x->jit);
}

static void compiled_fini(Compiled *x)
{
    jit_free(x->jit);
    compilation_free(x->c);
}

static const IrVar *state_named(const IrModel *m, const char *name)
{
    for (int i = 0; i < m->n_states; i++)
        if (strcmp(m->states[i].name, name) == 0)
            return &m->states[i];
    return NULL;
}

/* Evaluates the rhs on N_DRAWS samples that share z (given) and draw the noise
 * state `noise` of kind; returns the mean and variance of element `q` of dy/dt,
 * and the mean of element `r` (an exact reference, or -1). */
static void estimate(const Compiled *x, const double *z, int nz, const char *noise,
                     IrInitKind kind, const char *q, const char *r, double *mean,
                     double *var, double *ref)
{
    const IrVar *eps = state_named(x->m, noise), *vq = state_named(x->m, q);
    const IrVar *vr = r ? state_named(x->m, r) : NULL;
    ck_assert_ptr_nonnull(eps);
    ck_assert_ptr_nonnull(vq);
    ck_assert_int_eq(eps->init_kind, kind);
    int ny = x->k.ny;
    double *y = calloc((size_t)N_DRAWS * ny, sizeof(double));
    double *dy = calloc((size_t)N_DRAWS * ny, sizeof(double));
    double *work = calloc(nd_kernels_work_size(&x->k, N_DRAWS) + 1, sizeof(double));
    NdRandom rng;
    nd_random_seed(&rng, 7);
    for (int b = 0; b < N_DRAWS; b++) {
        memcpy(y + (size_t)b * ny, z, sizeof(double) * (size_t)nz);
        for (int k = 0; k < nz; k++)
            y[(size_t)b * ny + eps->offset + k] =
                kind == IR_INIT_NORMAL ? nd_random_normal(&rng, 0, 1)
                                       : (nd_random_u64(&rng) >> 63 ? 1.0 : -1.0);
    }
    x->k.rhs(0, y, NULL, dy, N_DRAWS, work);
    double s = 0, s2 = 0;
    for (int b = 0; b < N_DRAWS; b++) {
        double v = dy[(size_t)b * ny + vq->offset];
        s += v;
        s2 += v * v;
    }
    *mean = s / N_DRAWS;
    *var = (s2 - s * s / N_DRAWS) / (N_DRAWS - 1);
    *ref = vr ? dy[vr->offset] : -1;
    free(y);
    free(dy);
    free(work);
}

/* A = [[0.5, 1], [0, -2]]: trace -1.5; S = [[0.5, 0.5], [0.5, -2]], ||S||_F^2 = 4.75,
 * sum S_ii^2 = 4.25: variance 9.5 (Gaussian) and 1 (Rademacher). */
static const char *const linear_src =
    "model M {\n"
    "  state z[2] = [1, 1]\n"
    "  state q = 0\n"
    "  state r = 0\n"
    "  const A[2, 2] = [[0.5, 1], [0, -2]]\n"
    "  dq/dt = div_est(z)\n"
    "  dr/dt = div_est(z, rademacher)\n"
    "  dz/dt = A @ z\n"
    "}\n";

START_TEST(test_hidden_states)
{
    Compiled x;
    compiled_init(&x, linear_src);
    /* z, q, r as declared, then one noise vector per kind, shaped like z, constant */
    ck_assert_int_eq(x.m->n_states, 5);
    ck_assert_str_eq(x.m->states[3].name, "__eps_z");
    ck_assert_str_eq(x.m->states[4].name, "__rad_z");
    ck_assert_int_eq(x.m->states[3].init_kind, IR_INIT_NORMAL);
    ck_assert_int_eq(x.m->states[4].init_kind, IR_INIT_RADEMACHER);
    ck_assert_int_eq(x.m->states[4].offset, 6);
    ck_assert_int_eq(x.m->ny, 8);
    ck_assert(ir_is_const_value(x.m->rhs[3], 0));
    compiled_fini(&x);
}
END_TEST

/* Per noise kind: the estimate's expected variance, and tolerances of 5 standard
 * errors for the mean (sqrt(var / 20000): 0.022 and 0.007) and ~5 for the variance. */
static const struct {
    const char *noise, *q;
    IrInitKind kind;
    double var, mean_tol, var_tol;
} linear_cases[] = {
    {"__eps_z", "q", IR_INIT_NORMAL, 9.5, 0.11, 0.15 * 9.5},
    /* the estimate is -1.5 +- 1 exactly: variance 1, a tenth of the Gaussian's */
    {"__rad_z", "r", IR_INIT_RADEMACHER, 1.0, 0.035, 0.05},
};

START_TEST(test_linear)
{
    Compiled x;
    compiled_init(&x, linear_src);
    double z[2] = {0.3, -0.7}, mean, var, ref;
    estimate(&x, z, 2, linear_cases[_i].noise, linear_cases[_i].kind, linear_cases[_i].q, NULL,
             &mean, &var, &ref);
    ck_assert_double_eq_tol(mean, -1.5, linear_cases[_i].mean_tol);
    ck_assert_double_eq_tol(var, linear_cases[_i].var, linear_cases[_i].var_tol);
    compiled_fini(&x);
}
END_TEST

/* A diagonal Jacobian: Rademacher noise gives the trace exactly on every draw. */
START_TEST(test_diagonal_exact)
{
    Compiled x;
    compiled_init(&x, "model M {\n  state z[3] = [1, 2, 3]\n  state q = 0\n"
                      "  dq/dt = div_est(z, rademacher)\n  dz/dt = sin(z) - 2 * z\n}\n");
    double z[3] = {0.1, -0.5, 2.0}, mean, var, ref;
    estimate(&x, z, 3, "__rad_z", IR_INIT_RADEMACHER, "q", NULL, &mean, &var, &ref);
    ck_assert_double_eq_tol(mean, cos(0.1) + cos(-0.5) + cos(2.0) - 6, 1e-12);
    ck_assert_double_eq_tol(var, 0, 1e-9); /* rounding in the one-pass variance only */
    compiled_fini(&x);
}
END_TEST

/* A small tanh network at a fixed state: the mean estimate is the exact div(). */
START_TEST(test_nonlinear_mean)
{
    Compiled x;
    compiled_init(&x, "model M {\n  state z[3] = [1, 2, 3]\n  state q = 0\n  state r = 0\n"
                      "  const P[3, 3] = [[0.8, -1.2, 0.3], [0.5, 0.3, -0.9], [1.1, 0.2, -0.4]]\n"
                      "  dz/dt = tanh(P @ z) * z\n"
                      "  dq/dt = div_est(z)\n  dr/dt = div(z)\n}\n");
    double z[3] = {0.4, -0.3, 0.9}, mean, var, ref;
    estimate(&x, z, 3, "__eps_z", IR_INIT_NORMAL, "q", "r", &mean, &var, &ref);
    ck_assert(var > 0.01);
    ck_assert_double_eq_tol(mean, ref, 5 * sqrt(var / N_DRAWS));
    compiled_fini(&x);
}
END_TEST

/* Two uses of div_est(z) share one noise vector; div_est outside a model and a
 * bad noise name are errors. */
START_TEST(test_sharing_and_errors)
{
    Compiled x;
    compiled_init(&x, "model M {\n  state z[2] = [1, 1]\n  state q = 0\n"
                      "  let e = div_est(z)\n  dq/dt = e + 2 * div_est(z)\n  dz/dt = -z\n}\n");
    ck_assert_int_eq(x.m->n_states, 3);
    compiled_fini(&x);
    FILE *null = fopen("/dev/null", "w");
    Compilation *c = compile_file("bad.node",
                                  "model M {\n  state z[2] = [1, 1]\n  state q = 0\n"
                                  "  dq/dt = div_est(z, uniform)\n  dz/dt = -z\n}\n",
                                  null, 0);
    ck_assert_int_eq(c->diag.errors, 1);
    compilation_free(c);
    fclose(null);
}
END_TEST

Suite *div_est_suite(void)
{
    Suite *s = suite_create("div_est");
    TCase *tc = tcase_create("hutchinson");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hidden_states);
    tcase_add_loop_test(tc, test_linear, 0, 2);
    tcase_add_test(tc, test_diagonal_exact);
    tcase_add_test(tc, test_nonlinear_mean);
    tcase_add_test(tc, test_sharing_and_errors);
    suite_add_tcase(s, tc);
    return s;
}
