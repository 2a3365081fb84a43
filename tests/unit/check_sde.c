/* Tests of the stochastic solvers (runtime/solve/nd_sde.c) on hand-written C
 * kernels: the Brownian tree's law and consistency, geometric Brownian motion
 * against its exact solution on the same path, Euler's method when g = 0, and
 * the argument errors. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "nd_gradient.h"
#include "nd_solver.h"

Suite *sde_suite(void);

/* dx = mu x dt + sigma x dW per sample (mu = p0, sigma = p1). */
static void gbm_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *work)
{
    (void)t, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = p[0] * y[b];
}

static void gbm_g(double t, const double *y, const double *p, const double *a, const double *d,
                  double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[b] = p[1] * y[b];
}

static void gbm_ggx(double t, const double *y, const double *p, const double *a,
                    const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[b] = p[1] * y[b] * p[1];
}

/* The vjps (a^T d./dy per sample, a^T d./dp summed): f = mu x, g = sigma x,
 * g g' = sigma^2 x. */
static void gbm_vjp(double t, const double *y, const double *p, const double *a, const double *d,
                    double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)d, (void)work;
    out1[0] = out1[1] = 0;
    for (int64_t b = 0; b < B; b++)
        out0[b] = a[b] * p[0], out1[0] += a[b] * y[b];
}

static void gbm_g_vjp(double t, const double *y, const double *p, const double *a,
                      const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)d, (void)work;
    out1[0] = out1[1] = 0;
    for (int64_t b = 0; b < B; b++)
        out0[b] = a[b] * p[1], out1[1] += a[b] * y[b];
}

static void gbm_ggx_vjp(double t, const double *y, const double *p, const double *a,
                        const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)d, (void)work;
    out1[0] = out1[1] = 0;
    for (int64_t b = 0; b < B; b++)
        out0[b] = a[b] * p[1] * p[1], out1[1] += 2 * a[b] * p[1] * y[b];
}

static NdKernels gbm_kernels(int noise)
{
    NdKernels k;
    memset(&k, 0, sizeof k);
    k.ny = 1;
    k.np = 2;
    k.rhs = gbm_rhs;
    if (noise) {
        k.diffusion = gbm_g;
        k.diffusion_dx = gbm_ggx;
    }
    return k;
}

/* L = sum_b x_b(T)^2 at the last of the times. */
static int final_square(void *ctx, int j, double t, const double *y, const double *p, double *L,
                        double *gy, double *gp)
{
    (void)t, (void)p, (void)gp;
    const int *last = (const int *)ctx;
    for (int b = 0; j == *last && b < 2; b++)
        *L += y[b] * y[b], gy[b] = 2 * y[b];
    return 0;
}

/* Backprop through euler_maruyama and milstein (nd_backprop_sde.c) against
 * the closed form of the discrete GBM on the path the tree gives: each step
 * multiplies x by F_n = 1 + mu h + sigma dW_n (+ sigma^2/2 (dW_n^2 - h) for
 * Milstein), so x_N = x0 prod F_n and dL/dtheta = 2 x_N^2 sum dF_n/F_n. */
START_TEST(test_gbm_backprop_closed_form)
{
    NdMethod method = _i ? ND_MILSTEIN : ND_EULER_MARUYAMA;
    NdKernels k = gbm_kernels(1);
    k.vjp = gbm_vjp, k.diffusion_vjp = gbm_g_vjp, k.diffusion_dx_vjp = gbm_ggx_vjp;
    NdSolver *tmpl = nd_solver_create(&k, method, 2);
    ck_assert_int_eq(nd_solver_set_step(tmpl, 0.01), ND_OK);
    ck_assert_int_eq(nd_solver_set_brownian(tmpl, 42), ND_OK);
    ck_assert_ptr_null(nd_gradient_create(&k, tmpl, ND_GRAD_ADJOINT, 2, 3));
    ck_assert_ptr_null(nd_gradient_create(&k, tmpl, ND_GRAD_CHECKPOINT, 2, 3));
    NdGradient *g = nd_gradient_create(&k, tmpl, ND_GRAD_BACKPROP, 2, 3);
    ck_assert_ptr_nonnull(g);
    double p[2] = {0.3, 0.5}, y0[2] = {1.0, 2.0}, ts[3] = {0, 0.4, 1}, L, gp[2], gy0[2];
    int last = 2;
    NdLoss loss = {3, ts, final_square, &last};
    for (int pass = 0; pass < 2; pass++) { /* a second seed: another path, still exact */
        ck_assert_int_eq(nd_gradient_compute(g, p, y0, &loss, &L, gp, gy0), ND_OK);
        double want_L = 0, want_mu = 0, want_sigma = 0;
        uint64_t seed = pass ? 43 : 42;
        for (int b = 0; b < 2; b++) {
            double x = y0[b], smu = 0, ssig = 0, w = 0, t = 0;
            for (int j = 0; j + 1 < 3; j++) { /* nd_solve's grid: t_j + k h, the last on t_{j+1} */
                long nk = lround((ts[j + 1] - ts[j]) / 0.01);
                for (long q = 1; q <= nk; q++) {
                    double tn = q == nk ? ts[j + 1] : ts[j] + (double)q * 0.01, h = tn - t;
                    double wn = nd_brownian_at(seed, b, 0, 0, 1, tn), dW = wn - w;
                    double F = 1 + p[0] * h + p[1] * dW, dFs = dW;
                    if (method == ND_MILSTEIN)
                        F += 0.5 * p[1] * p[1] * (dW * dW - h), dFs += p[1] * (dW * dW - h);
                    x *= F, smu += h / F, ssig += dFs / F, w = wn, t = tn;
                }
            }
            want_L += x * x, want_mu += 2 * x * x * smu, want_sigma += 2 * x * x * ssig;
            ck_assert_double_eq_tol(gy0[b], 2 * x * x / y0[b], 1e-11 * fabs(gy0[b]));
        }
        ck_assert_double_eq_tol(L, want_L, 1e-12 * want_L);
        ck_assert_double_eq_tol(gp[0], want_mu, 1e-11 * fabs(want_mu));
        ck_assert_double_eq_tol(gp[1], want_sigma, 1e-11 * fabs(want_sigma));
        ck_assert_int_eq(nd_gradient_set_brownian(g, 43), ND_OK);
    }
    nd_gradient_free(g);
    nd_solver_free(tmpl);
}
END_TEST

START_TEST(test_tree_law)
{
    /* W(1) ~ N(0, 1) and W(0.75) - W(0.25) ~ N(0, 0.5) over independent elements */
    enum { N = 20000 };
    double s1 = 0, s2 = 0, d1 = 0, d2 = 0;
    for (long i = 0; i < N; i++) {
        double w = nd_brownian_at(7, 0, i, 0, 1, 1);
        double d = nd_brownian_at(7, 0, i, 0, 1, 0.75) - nd_brownian_at(7, 0, i, 0, 1, 0.25);
        s1 += w, s2 += w * w, d1 += d, d2 += d * d;
    }
    ck_assert_double_le(fabs(s1 / N), 4 / sqrt(N));
    ck_assert_double_le(fabs(s2 / N - 1), 4 * sqrt(2.0 / N));
    ck_assert_double_le(fabs(d1 / N), 4 * sqrt(0.5 / N));
    ck_assert_double_le(fabs(d2 / N - 0.5), 4 * 0.5 * sqrt(2.0 / N));
    ck_assert(nd_brownian_at(7, 0, 0, 0, 1, 0) == 0.0);
    /* a pure function of its key: the same value asked twice, another sample another one */
    ck_assert(nd_brownian_at(7, 3, 1, 0, 1, 0.3) == nd_brownian_at(7, 3, 1, 0, 1, 0.3));
    ck_assert(nd_brownian_at(7, 3, 1, 0, 1, 0.3) != nd_brownian_at(7, 4, 1, 0, 1, 0.3));
    ck_assert(nd_brownian_at(7, 3, 1, 0, 1, 0.3) != nd_brownian_at(8, 3, 1, 0, 1, 0.3));
}
END_TEST

START_TEST(test_gbm_exact_on_path)
{
    enum { B = 64 };
    NdKernels k = gbm_kernels(1);
    double p[2] = {0.5, 0.8}, y0[B], ts[2] = {0, 1}, yout[2 * B];
    for (int b = 0; b < B; b++)
        y0[b] = 1;
    double err[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        NdSolver *s = nd_solver_create(&k, m ? ND_MILSTEIN : ND_EULER_MARUYAMA, B);
        ck_assert_int_eq(nd_solver_set_step(s, 1.0 / 1024), ND_OK);
        ck_assert_int_eq(nd_solver_set_brownian(s, 99), ND_OK);
        ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, yout), ND_OK);
        ck_assert_int_eq(nd_solver_get_num_steps(s), 1024);
        for (int b = 0; b < B; b++) {
            double w = nd_brownian_at(99, b, 0, 0, 1, 1);
            err[m] += fabs(yout[B + b] - exp((0.5 - 0.32) + 0.8 * w)) / B;
        }
        nd_solver_free(s);
    }
    ck_assert_double_le(err[0], 0.03); /* strong order 1/2: ~ sqrt(h) */
    ck_assert_double_le(err[1], 1.5e-3); /* strong order 1: ~ h */
    ck_assert_double_le(err[1], err[0] / 5);
}
END_TEST

START_TEST(test_no_noise_is_euler)
{
    NdKernels k = gbm_kernels(0);
    double p[2] = {0.5, 0.8}, y0 = 1, ts[3] = {0, 0.3, 1}, a[3], b[3];
    for (int m = 0; m < 2; m++) {
        NdSolver *e = nd_solver_create(&k, ND_EULER, 1);
        NdSolver *s = nd_solver_create(&k, m ? ND_MILSTEIN : ND_EULER_MARUYAMA, 1);
        nd_solver_set_step(e, 0.07);
        nd_solver_set_step(s, 0.07);
        ck_assert_int_eq(nd_solve(e, p, &y0, ts, 3, a), ND_OK);
        ck_assert_int_eq(nd_solve(s, p, &y0, ts, 3, b), ND_OK);
        for (int j = 0; j < 3; j++)
            ck_assert(a[j] == b[j]);
        nd_solver_free(e);
        nd_solver_free(s);
    }
}
END_TEST

START_TEST(test_arguments)
{
    NdKernels k = gbm_kernels(1);
    double p[2] = {0.5, 0.8}, y0 = 1, ts[2] = {1, 0}, out[2];
    NdSolver *r = nd_solver_create(&k, ND_RK4, 1);
    ck_assert_int_eq(nd_solver_set_brownian(r, 1), ND_ERR_ARG);
    nd_solver_free(r);
    NdSolver *s = nd_solver_create(&k, ND_MILSTEIN, 1);
    nd_solver_set_step(s, 0.1);
    ck_assert_int_eq(nd_solve(s, p, &y0, ts, 2, out), ND_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "forward in time"));
    nd_solver_free(s);
    ck_assert_int_eq(nd_method_from_name("em"), ND_EULER_MARUYAMA);
    ck_assert_int_eq(nd_method_is_sde(ND_MILSTEIN), 1);
    ck_assert_int_eq(nd_method_is_sde(ND_EULER), 0);
}
END_TEST

Suite *sde_suite(void)
{
    Suite *s = suite_create("sde");
    TCase *tc = tcase_create("sde");
    tcase_add_test(tc, test_tree_law);
    tcase_add_test(tc, test_gbm_exact_on_path);
    tcase_add_test(tc, test_no_noise_is_euler);
    tcase_add_test(tc, test_arguments);
    tcase_add_loop_test(tc, test_gbm_backprop_closed_form, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
