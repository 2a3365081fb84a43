/* Tests of events (runtime/solve/nd_events.c) with a hand-written kernel table:
 * the bouncing ball h' = v, v' = -g with `when h < 0 { v = -e v }` against its
 * closed form (first bounce at sqrt(2 h0 / g), then intervals 2 v_k / g with
 * v_k = e^k sqrt(2 g h0)). Its solution is a quadratic between bounces, which
 * every method of order >= 2 integrates exactly and every interpolant (the
 * methods' dense outputs, the fixed-step Hermite cubic) reproduces, so event
 * times and states are checked to near roundoff. Also a batch of heights, a
 * terminate event (the frozen state), bdf's restart at an event, the max_events
 * bound, the one-step implicit methods' and the gradients' refusals. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_gradient.h"
#include "nd_solver.h"

Suite *events_suite(void);

#define G 9.81

static void ball_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *work)
{
    (void)t, (void)p, (void)work;
    for (int64_t b = 0; b < B; b++) {
        dydt[2 * b] = y[2 * b + 1];
        dydt[2 * b + 1] = -G;
    }
}

static void ball_jac(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)y, (void)p, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++) {
        double *J = out0 + 4 * b;
        J[0] = 0, J[1] = 1, J[2] = 0, J[3] = 0;
    }
}

static void ball_vjp(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)y, (void)p, (void)d, (void)work;
    for (int64_t b = 0; b < B; b++) {
        out0[2 * b] = 0;
        out0[2 * b + 1] = a[2 * b];
    }
    out1[0] = 0;
}

/* g = h */
static void floor_cond(double t, const double *y, const double *p, const double *a,
                       const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)p, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[b] = y[2 * b];
}

/* v = -e v */
static void bounce(double t, const double *y, const double *p, const double *a,
                   const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++) {
        out0[2 * b] = y[2 * b];
        out0[2 * b + 1] = -p[0] * y[2 * b + 1];
    }
}

/* g = h - 12 */
static void ceiling_cond(double t, const double *y, const double *p, const double *a,
                         const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)p, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[b] = y[2 * b] - 12.0;
}

static const NdEvent ball_events[] = {{floor_cond, bounce, -1, 0, NULL, NULL},
                                     {ceiling_cond, NULL, 1, 1, NULL, NULL}};

static NdKernels ball_kernels(int n_events)
{
    NdKernels k;
    memset(&k, 0, sizeof k);
    k.ny = 2;
    k.np = 1;
    k.rhs = ball_rhs;
    k.vjp = ball_vjp;
    k.jac = ball_jac;
    k.n_events = n_events;
    k.events = ball_events;
    return k;
}

/* The closed form from h0 at rest: bounce times T[k] and speeds V[k] after them. */
static void ball_bounces(double h0, double e, int n, double *T, double *V)
{
    double v0 = sqrt(2 * G * h0);
    T[0] = sqrt(2 * h0 / G);
    V[0] = e * v0;
    for (int k = 1; k < n; k++) {
        T[k] = T[k - 1] + 2 * V[k - 1] / G;
        V[k] = e * V[k - 1];
    }
}

/* Height at t from the closed form (t below the last of the n bounces). */
static double ball_height(double h0, double e, double t)
{
    double T[32], V[32];
    ball_bounces(h0, e, 32, T, V);
    if (t < T[0])
        return h0 - 0.5 * G * t * t;
    int k = 0;
    while (t >= T[k + 1])
        k++;
    double s = t - T[k];
    return V[k] * s - 0.5 * G * s * s;
}

static const NdMethod explicit_methods[] = {ND_BOSH3, ND_DOPRI5, ND_TSIT5, ND_DOP853,
                                            ND_MIDPOINT, ND_HEUN, ND_RK4};
enum { N_EXPLICIT = sizeof explicit_methods / sizeof explicit_methods[0] };

static NdSolver *ball_solver(NdMethod m, const NdKernels *k, int64_t B)
{
    NdSolver *s = nd_solver_create(k, m, B);
    ck_assert_ptr_nonnull(s);
    if (nd_method_is_adaptive(m))
        ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-10, 1e-12), ND_OK);
    else
        ck_assert_int_eq(nd_solver_set_step(s, 0.01), ND_OK);
    return s;
}

/* Four bounces in [0, 9]: their times, the states there, and the outputs. */
START_TEST(test_ball_closed_form)
{
    NdMethod m = explicit_methods[_i];
    NdKernels k = ball_kernels(1);
    NdSolver *s = ball_solver(m, &k, 1);
    double p[1] = {0.9}, y0[2] = {10, 0}, ts[10], yout[20], T[4], V[4];
    for (int j = 0; j < 10; j++)
        ts[j] = j;
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 10, yout), ND_OK);
    ball_bounces(10, 0.9, 4, T, V);
    ck_assert_int_eq(nd_solver_get_num_events(s), 4);
    for (int i = 0; i < 4; i++) {
        int64_t b;
        int e;
        double t;
        const double *before, *after;
        ck_assert_int_eq(nd_solver_get_event(s, i, &b, &e, &t, &before, &after), ND_OK);
        ck_assert_int_eq(b, 0);
        ck_assert_int_eq(e, 0);
        ck_assert_double_eq_tol(t, T[i], 1e-12);
        ck_assert_double_eq_tol(before[0], 0, 1e-11);
        ck_assert_double_eq_tol(after[1], V[i], 1e-9);
        ck_assert_double_eq_tol(before[1], -V[i] / 0.9, 1e-9);
    }
    for (int j = 0; j < 10; j++)
        ck_assert_double_eq_tol(yout[2 * j], ball_height(10, 0.9, ts[j]), 1e-9);
    nd_solver_free(s);
}
END_TEST

/* Balls from 10, 5 and 2 m bounce at their own times (the last ones' bounces
 * accumulate at 9 t1 = 5.75 s: the span stops before); the log is in time order. */
START_TEST(test_ball_batch)
{
    NdMethod m = explicit_methods[_i];
    NdKernels k = ball_kernels(1);
    NdSolver *s = ball_solver(m, &k, 3);
    double p[1] = {0.8}, h0[3] = {10, 5, 2}, y0[6] = {10, 0, 5, 0, 2, 0}, ts[2] = {0, 4};
    double yout[12];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, yout), ND_OK);
    int seen[3] = {0};
    double last = 0;
    for (long i = 0; i < nd_solver_get_num_events(s); i++) {
        int64_t b;
        double t, T[16], V[16];
        ck_assert_int_eq(nd_solver_get_event(s, i, &b, NULL, &t, NULL, NULL), ND_OK);
        ck_assert(t >= last);
        last = t;
        ball_bounces(h0[b], 0.8, 16, T, V);
        ck_assert_double_eq_tol(t, T[seen[b]++], 1e-10);
    }
    for (int b = 0; b < 3; b++) {
        double T[16], V[16];
        int n = 0;
        ball_bounces(h0[b], 0.8, 16, T, V);
        while (T[n] < 4)
            n++;
        ck_assert_int_eq(seen[b], n);
        ck_assert_double_eq_tol(yout[6 + 2 * b], ball_height(h0[b], 0.8, 4), 1e-8);
    }
    nd_solver_free(s);
}
END_TEST

/* Thrown up from 10 m at 10 and 5 m/s: the first passes 12 m and stops there
 * (its state frozen), the second never reaches it and bounces. */
START_TEST(test_terminate)
{
    NdMethod m = explicit_methods[_i];
    NdKernels k = ball_kernels(2);
    NdSolver *s = ball_solver(m, &k, 2);
    double p[1] = {0.9}, y0[4] = {10, 10, 10, 5}, ts[3] = {0, 1, 3}, yout[12];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 3, yout), ND_OK);
    double tstar = (10 - sqrt(100 - 4 * 0.5 * G * 2)) / G; /* 10 + 10 t - g t^2 / 2 = 12 */
    int64_t b;
    int e;
    double t;
    const double *after;
    ck_assert_int_eq(nd_solver_get_event(s, 0, &b, &e, &t, NULL, &after), ND_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(e, 1);
    ck_assert_double_eq_tol(t, tstar, 1e-11);
    for (int j = 1; j < 3; j++) {
        ck_assert_double_eq_tol(yout[4 * j], 12, 1e-9);
        ck_assert_double_eq_tol(yout[4 * j + 1], 10 - G * tstar, 1e-9);
    }
    double s1 = sqrt(25 + 2 * G * 10), tb = (5 + s1) / G; /* the second ball's first bounce */
    ck_assert_int_eq(nd_solver_get_event(s, 1, &b, &e, &t, NULL, NULL), ND_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(e, 0);
    ck_assert_double_eq_tol(t, tb, 1e-10);
    double u = 3 - tb, v = 0.9 * s1;
    ck_assert_double_eq_tol(yout[8 + 2], v * u - 0.5 * G * u * u, 1e-8);
    nd_solver_free(s);
}
END_TEST

/* bdf cannot redo a step: it takes the interpolated state at the event and
 * restarts at order 1 there, so its times hold to its tolerance, not to
 * rounding. A terminated sample's Jacobian block is zeroed with its f. */
START_TEST(test_bdf)
{
    NdKernels k = ball_kernels(2);
    NdSolver *s = nd_solver_create(&k, ND_BDF, 2);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-10, 1e-12), ND_OK);
    double p[1] = {0.9}, y0[4] = {10, 0, 10, 10}, ts[10], yout[40], T[4], V[4];
    for (int j = 0; j < 10; j++)
        ts[j] = j;
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 10, yout), ND_OK);
    ball_bounces(10, 0.9, 4, T, V);
    double tstar = (10 - sqrt(100 - 4 * 0.5 * G * 2)) / G;
    int bounces = 0, stops = 0;
    for (long i = 0; i < nd_solver_get_num_events(s); i++) {
        int64_t b;
        int e;
        double t;
        const double *after;
        ck_assert_int_eq(nd_solver_get_event(s, i, &b, &e, &t, NULL, &after), ND_OK);
        if (b == 0) {
            ck_assert_int_eq(e, 0);
            ck_assert_double_eq_tol(t, T[bounces], 1e-8);
            ck_assert_double_eq_tol(after[1], V[bounces++], 1e-7);
        } else {
            ck_assert_int_eq(e, 1);
            ck_assert_double_eq_tol(t, tstar, 1e-8);
            stops++;
        }
    }
    ck_assert_int_eq(bounces, 4);
    ck_assert_int_eq(stops, 1);
    for (int j = 0; j < 10; j++)
        ck_assert_double_eq_tol(yout[4 * j], ball_height(10, 0.9, ts[j]), 1e-7);
    ck_assert_double_eq_tol(yout[4 * 9 + 2], 12, 1e-7);
    ck_assert_double_eq_tol(yout[4 * 9 + 3], 10 - G * tstar, 1e-7);
    nd_solver_free(s);
}
END_TEST

/* The bounces accumulate at t = 19 t1 (Zeno): the log's bound stops the solve. */
START_TEST(test_max_events)
{
    NdKernels k = ball_kernels(1);
    NdSolver *s = ball_solver(ND_DOPRI5, &k, 1);
    ck_assert_int_eq(nd_solver_set_max_events(s, 10), ND_OK);
    ck_assert_int_eq(nd_solver_set_max_events(s, 0), ND_ERR_ARG);
    double p[1] = {0.9}, y0[2] = {10, 0}, ts[2] = {0, 40}, yout[4];
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, yout), ND_ERR_MAX_EVENTS);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "max_events = 10"));
    ck_assert_int_eq(nd_solver_get_num_events(s), 10);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_refusals)
{
    NdKernels k = ball_kernels(1);
    double p[1] = {0.9}, y0[2] = {10, 0}, ts[2] = {0, 2}, yout[4];
    NdSolver *s = nd_solver_create(&k, ND_RODAS4, 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solve(s, p, y0, ts, 2, yout), ND_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "cannot locate events"));
    nd_solver_free(s);
    s = nd_solver_create(&k, ND_DOPRI5, 1);
    ck_assert_ptr_null(nd_gradient_create(&k, s, ND_GRAD_BACKPROP, 1, 2));
    nd_solver_free(s);
}
END_TEST

Suite *events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("ball");
    tcase_add_loop_test(tc, test_ball_closed_form, 0, N_EXPLICIT);
    tcase_add_loop_test(tc, test_ball_batch, 0, N_EXPLICIT);
    tcase_add_loop_test(tc, test_terminate, 0, N_EXPLICIT);
    tcase_add_test(tc, test_bdf);
    tcase_add_test(tc, test_max_events);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}
