/* Tests of the velocity Verlet engine (runtime/solve/nd_verlet.c) on
 * hand-written second-order kernels laid out as the compiler lowers
 * `d2x/dt2 = a(x)` (nd_kernels.h, second_order: one sample's y = [x; v]):
 * second-order convergence, a bounded energy error over a long run (it is
 * symplectic), one right-hand side call per step, batches, backward
 * integration, and the tables it refuses. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "nd_solver.h"

Suite *verlet_suite(void);

/* x'' = -w^2 x with w = p[0], x = y[0], v = y[1]: x = cos(w t), v = -w sin(w t)
 * from (1, 0). */
static void rhs_oscillator(nd_real t, const nd_real *y, const nd_real *p, nd_real *dydt,
                           int64_t B, nd_real *work)
{
    (void)t, (void)work;
    for (int64_t b = 0; b < B; b++) {
        dydt[2 * b] = y[2 * b + 1];
        dydt[2 * b + 1] = -p[0] * p[0] * y[2 * b];
    }
}

/* The pendulum x'' = -sin(x), two angles per sample: y = [x0, x1, v0, v1]. */
static void rhs_pendulum(nd_real t, const nd_real *y, const nd_real *p, nd_real *dydt, int64_t B,
                         nd_real *work)
{
    (void)t, (void)p, (void)work;
    for (int64_t b = 0; b < B; b++) {
        const nd_real *x = y + 4 * b;
        nd_real *f = dydt + 4 * b;
        f[0] = x[2], f[1] = x[3];
        f[2] = -sin(x[0]), f[3] = -sin(x[1]);
    }
}

static const NdKernels oscillator = {.ny = 2, .np = 1, .rhs = rhs_oscillator, .second_order = 1};
static const NdKernels pendulum = {.ny = 4, .np = 0, .rhs = rhs_pendulum, .second_order = 1};

/* |x(t1) - cos(w t1)| after verlet with step h from (1, 0). */
static double oscillator_error(double h, double t1, double w)
{
    NdSolver *s = nd_solver_create(&oscillator, ND_VERLET, 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_step(s, h), ND_OK);
    double p[1] = {w}, y0[2] = {1, 0}, ts[2] = {0, t1}, out[4];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, out), ND_OK);
    nd_solver_free(s);
    return fabs(out[2] - cos(w * t1));
}

START_TEST(test_second_order_convergence)
{
    double e1 = oscillator_error(0.02, 2.0, 2.0), e2 = oscillator_error(0.01, 2.0, 2.0),
           e3 = oscillator_error(0.005, 2.0, 2.0);
    ck_assert_double_lt(e1, 1e-3);
    ck_assert_double_eq_tol(e1 / e2, 4.0, 0.1); /* halving h divides the error by 2^2 */
    ck_assert_double_eq_tol(e2 / e3, 4.0, 0.1);
}
END_TEST

/* E = (v^2 + w^2 x^2) / 2 along 10^5 steps of h = 0.1 (about 3000 periods):
 * verlet's error stays within O(h^2) of E(0) at every output, with no drift
 * (the last thousand outputs deviate no more than the first thousand); rk4
 * at the same h loses energy steadily. */
START_TEST(test_energy_bounded)
{
    enum { NT = 10001 };
    static double ts[NT], out[2 * NT];
    for (int i = 0; i < NT; i++)
        ts[i] = i;
    double p[1] = {2.0}, y0[2] = {1, 0}, e0 = 2.0;
    NdSolver *s = nd_solver_create(&oscillator, ND_VERLET, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, p, y0, ts, NT, out), ND_OK);
    nd_solver_free(s);
    double first = 0, last = 0;
    for (int i = 0; i < NT; i++) {
        double x = out[2 * i], v = out[2 * i + 1];
        double dev = fabs(0.5 * (v * v + 4 * x * x) - e0);
        ck_assert_double_lt(dev, 0.03); /* (w h)^2 / 4 * E relative: 0.02 */
        if (i < 1000 && dev > first)
            first = dev;
        if (i >= NT - 1000 && dev > last)
            last = dev;
    }
    ck_assert_double_lt(last, 1.01 * first);
    s = nd_solver_create(&oscillator, ND_RK4, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, p, y0, ts, NT, out), ND_OK);
    nd_solver_free(s);
    double x = out[2 * (NT - 1)], v = out[2 * (NT - 1) + 1];
    ck_assert_double_gt(fabs(0.5 * (v * v + 4 * x * x) - e0), 0.1); /* rk4 drifts */
}
END_TEST

/* One evaluation per step (FSAL), the first step's start included. */
START_TEST(test_one_rhs_per_step)
{
    NdSolver *s = nd_solver_create(&oscillator, ND_VERLET, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.01), ND_OK);
    double p[1] = {1.0}, y0[2] = {1, 0}, ts[5] = {0, 0.25, 0.5, 0.75, 1}, out[10];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 5, out), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), 100);
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(s), 101);
    nd_solver_free(s);
}
END_TEST

/* A batch of two samples of two angles each: each sample as solved alone,
 * and close to rk4 at a small step. Backwards returns to the start. */
START_TEST(test_pendulum_batch_backward)
{
    double y0[8] = {0.5, 1.0, 0, 0.2, -1.0, 2.0, 0.3, 0}, ts[2] = {0, 3}, out[16], ref[16];
    NdSolver *s = nd_solver_create(&pendulum, ND_VERLET, 2);
    ck_assert_int_eq(nd_solver_set_step(s, 1e-3), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, out), ND_OK);
    NdSolver *one = nd_solver_create(&pendulum, ND_VERLET, 1);
    ck_assert_int_eq(nd_solver_set_step(one, 1e-3), ND_OK);
    ck_assert_int_eq(nd_solve(one, NULL, y0 + 4, ts, 2, ref), ND_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(out[12 + i], ref[4 + i]);
    NdSolver *rk = nd_solver_create(&pendulum, ND_RK4, 2);
    ck_assert_int_eq(nd_solver_set_step(rk, 1e-3), ND_OK);
    ck_assert_int_eq(nd_solve(rk, NULL, y0, ts, 2, ref), ND_OK);
    for (int i = 8; i < 16; i++)
        ck_assert_double_eq_tol(out[i], ref[i], 1e-5);
    double back[16], tb[2] = {3, 0};
    ck_assert_int_eq(nd_solve(s, NULL, out + 8, tb, 2, back), ND_OK);
    for (int i = 0; i < 8; i++) /* symmetric: stepping back retraces the steps */
        ck_assert_double_eq_tol(back[8 + i], y0[i], 1e-9);
    nd_solver_free(s);
    nd_solver_free(one);
    nd_solver_free(rk);
}
END_TEST

/* A table that is not second order, or has a shared block, is refused with a message. */
START_TEST(test_refuses_first_order)
{
    NdKernels k = oscillator;
    k.second_order = 0;
    NdSolver *s = nd_solver_create(&k, ND_VERLET, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    double p[1] = {1.0}, y0[2] = {1, 0}, ts[2] = {0, 1}, out[4];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, out), ND_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "second order"));
    nd_solver_free(s);
    ck_assert_int_eq(nd_method_is_adaptive(ND_VERLET), 0);
    ck_assert_int_eq(nd_method_has_gradient(ND_VERLET), 1);
}
END_TEST

Suite *verlet_suite(void)
{
    Suite *s = suite_create("verlet");
    TCase *tc = tcase_create("verlet");
    tcase_add_test(tc, test_second_order_convergence);
    tcase_add_test(tc, test_energy_bounded);
    tcase_add_test(tc, test_one_rhs_per_step);
    tcase_add_test(tc, test_pendulum_batch_backward);
    tcase_add_test(tc, test_refuses_first_order);
    suite_add_tcase(s, tc);
    return s;
}
