/* Tests of the fixed-step Runge–Kutta solvers (runtime/solve/nd_solver.c) on
 * hand-written C kernels: a catalogue of problems with exact solutions, run
 * steppers x problems with tcase_add_loop_test (GSL ode-initval2/test.c), for
 * convergence order, the seed's numbers, backward integration, landing on
 * output times, batches, blow-ups and argument errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nd_solver.h"
#include "nd_tableaus.h"

Suite *solvers_suite(void);

/* ---- the catalogue: right-hand sides over a batch, and exact solutions ---- */

/* y' = -p0 y, y(0) = 1: y = exp(-t) (p0 = 1). */
static void rhs_decay(double t, const double *y, const double *p, double *dydt, int64_t B,
                      double *work)
{
    (void)t, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = -p[0] * y[b];
}

static void exact_decay(double t, double *y)
{
    y[0] = exp(-t);
}

/* y' = 2t, y(0) = 2: y = 2 + t^2 (the seed's Linear model). */
static void rhs_linear(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *work)
{
    (void)y, (void)p, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = 2.0 * t;
}

static void exact_linear(double t, double *y)
{
    y[0] = 2.0 + t * t;
}

/* y' = 2 y t, y(0) = 3: y = 3 exp(t^2) (the seed's Growth model). */
static void rhs_growth(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *work)
{
    (void)p, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = 2.0 * y[b] * t;
}

static void exact_growth(double t, double *y)
{
    y[0] = 3.0 * exp(t * t);
}

/* Harmonic oscillator y0' = y1, y1' = -y0, y(0) = (1, 0): (cos t, -sin t). */
static void rhs_oscillator(double t, const double *y, const double *p, double *dydt, int64_t B,
                           double *work)
{
    (void)t, (void)p, (void)work;
    for (int64_t b = 0; b < B; b++) {
        dydt[2 * b] = y[2 * b + 1];
        dydt[2 * b + 1] = -y[2 * b];
    }
}

static void exact_oscillator(double t, double *y)
{
    y[0] = cos(t);
    y[1] = -sin(t);
}

/* y' = cos t - y, y(0) = 1: y = (cos t + sin t)/2 + exp(-t)/2 (linear, forced). */
static void rhs_forced(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *work)
{
    (void)p, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = cos(t) - y[b];
}

static void exact_forced(double t, double *y)
{
    y[0] = 0.5 * (cos(t) + sin(t)) + 0.5 * exp(-t);
}

/* A decay chain (Bateman 1910): y0' = -y0, y1' = y0 - 2 y1, y2' = y1 - 3 y2,
 * y(0) = (1, 0, 0): y0 = e^-t, y1 = e^-t - e^-2t, y2 = (e^-t - 2 e^-2t + e^-3t)/2.
 * It routes A y through the kernel scratch (3 per sample + 2 fixed) so an
 * undersized work array shows under the sanitizer build. */
static void rhs_chain(double t, const double *y, const double *p, double *dydt, int64_t B,
                      double *work)
{
    (void)t, (void)p;
    static const double A[3][3] = {{-1, 0, 0}, {1, -2, 0}, {0, 1, -3}};
    work[0] = work[1] = 0.0;
    for (int64_t b = 0; b < B; b++) {
        double *w = work + 2 + 3 * b;
        for (int i = 0; i < 3; i++)
            w[i] = A[i][0] * y[3 * b] + A[i][1] * y[3 * b + 1] + A[i][2] * y[3 * b + 2];
    }
    for (int64_t e = 0; e < 3 * B; e++)
        dydt[e] = work[2 + e];
}

static void exact_chain(double t, double *y)
{
    double e1 = exp(-t), e2 = exp(-2 * t), e3 = exp(-3 * t);
    y[0] = e1;
    y[1] = e1 - e2;
    y[2] = 0.5 * (e1 - 2 * e2 + e3);
}

/* y' = y^2, y(0) = 1: y = 1/(1 - t), blows up at t = 1. */
static void rhs_square(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *work)
{
    (void)t, (void)p, (void)work;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = y[b] * y[b];
}

typedef struct Problem {
    const char *name;
    NdKernels k;
    double p[1];
    double t1;                /* solved on [0, t1] */
    double y0[3];
    void (*exact)(double t, double *y);
    int exact_above_order;    /* methods of higher order are exact here (0: none) */
} Problem;

static const Problem problems[] = {
    {"decay", {.ny = 1, .np = 1, .work_fixed = 0, .work_per_sample = 0, .rhs = rhs_decay}, {1.0}, 1.0, {1.0}, exact_decay, 0},
    {"linear", {.ny = 1, .np = 0, .work_fixed = 0, .work_per_sample = 0, .rhs = rhs_linear}, {0}, 1.0, {2.0}, exact_linear, 1},
    {"growth", {.ny = 1, .np = 0, .work_fixed = 0, .work_per_sample = 0, .rhs = rhs_growth}, {0}, 1.0, {3.0}, exact_growth, 0},
    {"oscillator", {.ny = 2, .np = 0, .work_fixed = 0, .work_per_sample = 0, .rhs = rhs_oscillator}, {0}, 2.0, {1.0, 0.0}, exact_oscillator, 0},
    {"forced", {.ny = 1, .np = 0, .work_fixed = 0, .work_per_sample = 0, .rhs = rhs_forced}, {0}, 2.0, {1.0}, exact_forced, 0},
    {"chain", {.ny = 3, .np = 0, .work_fixed = 2, .work_per_sample = 3, .rhs = rhs_chain}, {0}, 1.0, {1.0, 0.0, 0.0}, exact_chain, 0},
};
/* The fixed-step methods come first in NdMethod; the adaptive ones (bosh3 ...
 * dop853) have their own suite, tests/unit/check_adaptive.c. */
enum { N_FIXED = ND_RK4 + 1 };
enum { N_PROBLEMS = sizeof problems / sizeof problems[0], N_LOOPS = N_FIXED * N_PROBLEMS };

static const Problem *loop_problem(int i)
{
    return &problems[i % N_PROBLEMS];
}

static NdMethod loop_method(int i)
{
    return (NdMethod)(i / N_PROBLEMS);
}

/* Solves pr on ts[0..nt) from y0 with method m and step h, batch B; returns the status. */
static int solve_with(const Problem *pr, NdMethod m, double h, int64_t B, const double *y0,
                      const double *ts, int nt, double *yout, long *steps)
{
    NdSolver *s = nd_solver_create(&pr->k, m, B);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_step(s, h), ND_OK);
    int st = nd_solve(s, pr->p, y0, ts, nt, yout);
    if (steps)
        *steps = nd_solver_get_num_steps(s);
    nd_solver_free(s);
    return st;
}

/* Max-norm error at pr->t1 of a solve from 0 with step h. */
static double final_error(const Problem *pr, NdMethod m, double h)
{
    double ts[2] = {0.0, pr->t1}, yout[2 * 3], exact[3];
    ck_assert_int_eq(solve_with(pr, m, h, 1, pr->y0, ts, 2, yout, NULL), ND_OK);
    pr->exact(pr->t1, exact);
    double err = 0.0;
    for (int i = 0; i < pr->k.ny; i++)
        err = fmax(err, fabs(yout[pr->k.ny + i] - exact[i]));
    return err;
}

/* ---- (a) convergence order ---- */

/* Steps in the asymptotic regime for each method: small enough that the next
 * term of the error is < 10 % of the leading one, large enough that the error
 * (>= 1e-10 here) stays far above roundoff. Ratios seen are in the report. */
static const double conv_h[ND_METHOD_COUNT] = {
    [ND_EULER] = 1.0 / 1024,
    [ND_MIDPOINT] = 1.0 / 256,
    [ND_HEUN] = 1.0 / 256,
    [ND_RK4] = 1.0 / 32,
};

START_TEST(test_convergence_order)
{
    const Problem *pr = loop_problem(_i);
    NdMethod m = loop_method(_i);
    int order = nd_method_order(m);
    double e1 = final_error(pr, m, conv_h[m]);
    double e2 = final_error(pr, m, conv_h[m] / 2);
    if (pr->exact_above_order && order > pr->exact_above_order) {
        /* e.g. y' = 2t: midpoint, heun, rk4 integrate a linear f(t) exactly */
        ck_assert_double_le(e1, 1e-13);
        ck_assert_double_le(e2, 1e-13);
        return;
    }
    double ratio = e1 / e2, expected = ldexp(1.0, order);
#ifdef CHECK_SOLVERS_VERBOSE
    fprintf(stderr, "%-8s %-10s h=%-10g err=%.3e ratio=%.4f (2^p=%g)\n", nd_method_name(m),
            pr->name, conv_h[m], e1, ratio, expected);
#endif
    ck_assert_msg(e2 > 1e-11, "%s on %s: error %g too close to roundoff", nd_method_name(m),
                  pr->name, e2);
    ck_assert_msg(fabs(ratio / expected - 1.0) < 0.10, "%s on %s: error ratio %g, expected %g",
                  nd_method_name(m), pr->name, ratio, expected);
}
END_TEST

/* ---- (b) the seed's numbers (LANGUAGE.md 5.1) ---- */

static double solve_seed(const Problem *pr, NdMethod m)
{
    double ts[2] = {0.0, 1.0}, yout[2];
    long steps = 0;
    ck_assert_int_eq(solve_with(pr, m, 0.25, 1, pr->y0, ts, 2, yout, &steps), ND_OK);
    ck_assert_int_eq(steps, 4);
    ck_assert(yout[0] == pr->y0[0]);
    return yout[1];
}

START_TEST(test_seed_numbers)
{
    const Problem *linear = &problems[1], *growth = &problems[2];
    ck_assert_double_eq_tol(solve_seed(linear, ND_EULER), 2.75, 1e-12);
    ck_assert_double_eq_tol(solve_seed(growth, ND_EULER), 5.80078125, 1e-12);
    ck_assert_double_eq_tol(solve_seed(growth, ND_MIDPOINT), 7.85044676810503, 1e-12);
    ck_assert_double_eq_tol(solve_seed(growth, ND_RK4), 8.153615386705436, 1e-12);
    /* heun: computed independently in exact rational arithmetic (Python fractions) */
    ck_assert_double_eq_tol(solve_seed(growth, ND_HEUN), 7.982635974884033, 1e-12);
}
END_TEST

/* ---- (c) backward integration ---- */

START_TEST(test_backward_recovers_start)
{
    const Problem *pr = loop_problem(_i);
    NdMethod m = loop_method(_i);
    static const double tol[ND_METHOD_COUNT] = {
        [ND_EULER] = 1e-2, [ND_MIDPOINT] = 1e-5, [ND_HEUN] = 1e-5, [ND_RK4] = 1e-10};
    double ts[2] = {pr->t1, 0.0}, y1[3], yout[6], exact0[3];
    pr->exact(pr->t1, y1);
    pr->exact(0.0, exact0);
    long steps = 0;
    ck_assert_int_eq(solve_with(pr, m, 1e-3, 1, y1, ts, 2, yout, &steps), ND_OK);
    ck_assert_int_eq(steps, lround(pr->t1 / 1e-3));
    for (int i = 0; i < pr->k.ny; i++) /* relative to the size of the start */
        ck_assert_double_eq_tol(yout[pr->k.ny + i], exact0[i], tol[m] * fmax(1.0, fabs(exact0[i])));
}
END_TEST

START_TEST(test_backward_euler_exact_steps)
{
    /* y' = 2t from y(1) = 3 back to 0 with h = 0.25: 3 - 0.25 (2 + 1.5 + 1 + 0.5) = 1.75 */
    const Problem *linear = &problems[1];
    double ts[3] = {1.0, 0.5, 0.0}, y1 = 3.0, yout[3];
    long steps = 0;
    ck_assert_int_eq(solve_with(linear, ND_EULER, 0.25, 1, &y1, ts, 3, yout, &steps), ND_OK);
    ck_assert_int_eq(steps, 4);
    ck_assert(yout[0] == 3.0);
    ck_assert_double_eq_tol(yout[1], 2.125, 1e-15);
    ck_assert_double_eq_tol(yout[2], 1.75, 1e-15);
}
END_TEST

/* ---- (d) landing on output times ---- */

START_TEST(test_lands_on_outputs)
{
    /* midpoint is exact for y' = 2t, so any miss of an output time shows */
    const Problem *linear = &problems[1];
    double ts[11], yout[11];
    for (int j = 0; j < 11; j++)
        ts[j] = j / 10.0;
    NdSolver *s = nd_solver_create(&linear->k, ND_MIDPOINT, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.03), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, linear->y0, ts, 11, yout), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), 10 * 4); /* ceil(0.1 / 0.03) = 4 each */
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(s), 10 * 4 * 2);
    ck_assert_str_eq(nd_solver_get_message(s), "");
    for (int j = 0; j < 11; j++)
        ck_assert_double_eq_tol(yout[j], 2.0 + ts[j] * ts[j], 1e-14);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_intervals_are_independent)
{
    /* each row equals a separate solve of its own interval, bit for bit */
    const Problem *growth = &problems[2];
    double ts[6] = {0.0, 0.07, 0.3, 0.31, 0.8, 1.0}, yout[6];
    ck_assert_int_eq(solve_with(growth, ND_RK4, 0.04, 1, growth->y0, ts, 6, yout, NULL), ND_OK);
    for (int j = 1; j < 6; j++) {
        double piece[2];
        ck_assert_int_eq(solve_with(growth, ND_RK4, 0.04, 1, &yout[j - 1], &ts[j - 1], 2, piece,
                                    NULL),
                         ND_OK);
        ck_assert(memcmp(&piece[1], &yout[j], sizeof(double)) == 0);
    }
}
END_TEST

START_TEST(test_step_counts)
{
    const Problem *decay = &problems[0];
    static const struct { double t0, t1, h; long steps; } cases[] = {
        {0.1, 0.4, 0.1, 3},      /* 0.3/0.1 rounds to 3.0000000000000004: no sliver step */
        {0.0, 1.0, 0.1, 10},
        {0.0, 1.0, 0.25, 4},
        {0.0, 1.0, 0.3, 4},      /* 0.3, 0.3, 0.3 and a last step of 0.1 */
        {0.0, 1.0, 5.0, 1},      /* h longer than the interval: one step onto t1 */
        {0.0, 1000.0, 0.1, 10000},
        {0.7, 1.4, 0.1, 7},
        {0.4, 0.1, 0.1, 3},      /* backwards */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double ts[2] = {cases[c].t0, cases[c].t1}, yout[2];
        long steps = 0;
        ck_assert_int_eq(solve_with(decay, ND_EULER, cases[c].h, 1, decay->y0, ts, 2, yout, &steps),
                         ND_OK);
        ck_assert_msg(steps == cases[c].steps, "[%g, %g], h = %g: %ld steps, expected %ld",
                      cases[c].t0, cases[c].t1, cases[c].h, steps, cases[c].steps);
    }
}
END_TEST

/* Records the times the right-hand side is called at (y' = 0). */
enum { MAX_CALLS = 2000 };
static double call_times[MAX_CALLS];
static int n_calls;

static void rhs_record(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *work)
{
    (void)y, (void)p, (void)work;
    if (n_calls < MAX_CALLS)
        call_times[n_calls++] = t;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = 0.0;
}

START_TEST(test_step_times_not_accumulated)
{
    /* euler evaluates at each step's start: exactly t0 + k h, where a running
     * sum t += 0.1 would have drifted by ~1e-13 after a few hundred steps */
    NdKernels k = {.ny = 1, .rhs = rhs_record};
    double ts[2] = {0.0, 100.0}, y0 = 1.0, yout[2];
    n_calls = 0;
    NdSolver *s = nd_solver_create(&k, ND_EULER, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_OK);
    ck_assert_int_eq(n_calls, 1000);
    for (int i = 0; i < n_calls; i++)
        ck_assert_msg(call_times[i] == i * 0.1, "step %d starts at %.17g, not %.17g", i,
                      call_times[i], i * 0.1);
    /* backwards from 100: 100 - k h */
    ts[0] = 100.0, ts[1] = 0.0, n_calls = 0;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_OK);
    for (int i = 0; i < n_calls; i++)
        ck_assert(call_times[i] == 100.0 + i * -0.1);
    nd_solver_free(s);
}
END_TEST

/* ---- (e) batches ---- */

START_TEST(test_batch_matches_separate_solves)
{
    const Problem *pr = loop_problem(_i);
    NdMethod m = loop_method(_i);
    enum { B = 5, NT = 4 };
    int ny = pr->k.ny;
    double ts[NT] = {0.0, 0.3, 0.5, pr->t1}, y0[B * 3], yout[NT * B * 3];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < ny; i++)
            y0[b * ny + i] = pr->y0[i] * (1.0 + 0.1 * b) + 0.01 * b;
    ck_assert_int_eq(solve_with(pr, m, 0.07, B, y0, ts, NT, yout, NULL), ND_OK);
    for (int b = 0; b < B; b++) {
        double one[NT * 3];
        ck_assert_int_eq(solve_with(pr, m, 0.07, 1, &y0[b * ny], ts, NT, one, NULL), ND_OK);
        for (int j = 0; j < NT; j++)
            ck_assert(memcmp(&yout[(j * B + b) * ny], &one[j * ny], ny * sizeof(double)) == 0);
    }
}
END_TEST

/* ---- (f) blow-up ---- */

START_TEST(test_blowup_is_reported)
{
    /* euler on y' = y^2 overflows at step 114 (checked by an independent loop in
     * Python): y becomes inf at t = 1.14, last finite at 1.13 */
    NdKernels k = {.ny = 1, .rhs = rhs_square};
    double ts[2] = {0.0, 5.0}, y0 = 1.0, yout[2];
    NdSolver *s = nd_solver_create(&k, ND_EULER, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.01), ND_OK);
    int st = nd_solve(s, NULL, &y0, ts, 2, yout);
    ck_assert_int_eq(st, ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_status_name(st), "non-finite state");
    ck_assert_str_eq(nd_solver_get_message(s),
                     "state element 0 of sample 0 became inf at t = 1.14 (last finite at t = 1.13)");
    ck_assert_int_eq(nd_solver_get_num_steps(s), 114);
    /* the solver stays usable: a good solve afterwards clears the message */
    ts[1] = 0.5;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_OK);
    ck_assert_str_eq(nd_solver_get_message(s), "");
    ck_assert_double_eq_tol(yout[1], 2.0, 0.05); /* 1/(1 - 0.5) */
    nd_solver_free(s);
}
END_TEST

static void name_oscillator(void *ctx, long i, char *buf, size_t len)
{
    (void)ctx;
    snprintf(buf, len, "v[%ld]", i);
}

START_TEST(test_blowup_names_sample_and_element)
{
    /* oscillator samples are fine; a NaN start in sample 2 is refused up front */
    const Problem *osc = &problems[3];
    double ts[2] = {0.0, 1.0}, y0[6] = {1, 0, 1, 0, 1, NAN}, yout[12];
    NdSolver *s = nd_solver_create(&osc->k, ND_RK4, 3);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "the initial value of state element 1 of sample 2 is nan");
    /* with the compiler's names for the elements */
    ck_assert_int_eq(nd_solver_set_element_namer(s, name_oscillator, NULL), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s), "the initial value of v[1] of sample 2 is nan");
    nd_solver_free(s);
}
END_TEST

/* ---- (g) invalid arguments ---- */

static int solve_args(double h, const double *ts, int nt)
{
    const Problem *decay = &problems[0];
    double yout[8];
    NdSolver *s = nd_solver_create(&decay->k, ND_RK4, 1);
    if (h != 0.0 && nd_solver_set_step(s, h) != ND_OK) {
        nd_solver_free(s);
        return ND_ERR_ARG;
    }
    int st = nd_solve(s, decay->p, decay->y0, ts, nt, yout);
    if (st == ND_ERR_ARG)
        ck_assert_str_ne(nd_solver_get_message(s), "");
    nd_solver_free(s);
    return st;
}

START_TEST(test_invalid_arguments)
{
    double up[3] = {0, 0.5, 1}, zigzag[3] = {0, 1, 0.5}, flat[3] = {0, 0.5, 0.5};
    double nan_t[3] = {0, NAN, 1}, down[3] = {1, 0.5, 0};
    ck_assert_int_eq(solve_args(0.1, up, 3), ND_OK);
    ck_assert_int_eq(solve_args(0.1, down, 3), ND_OK);
    ck_assert_int_eq(solve_args(0.1, zigzag, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(0.1, flat, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(0.1, nan_t, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(0.1, up, 1), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(0.1, up, 0), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(0.0, up, 3), ND_ERR_ARG); /* h never set */
    ck_assert_int_eq(solve_args(-0.1, up, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(INFINITY, up, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(NAN, up, 3), ND_ERR_ARG);
    ck_assert_int_eq(solve_args(1e-300, up, 3), ND_ERR_MAX_STEPS); /* absurdly many steps */
}
END_TEST

/* A fixed step knows its count: too many is refused before the first step. */
START_TEST(test_fixed_step_cap)
{
    const Problem *decay = &problems[0];
    double ts[3] = {0, 0.5, 1}, yout[8];
    NdSolver *s = nd_solver_create(&decay->k, ND_RK4, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 1e-12), ND_OK);
    ck_assert_int_eq(nd_solve(s, decay->p, decay->y0, ts, 3, yout), ND_ERR_MAX_STEPS);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "rk4 would take 5e+11 steps of h = 1e-12 from t = 0 to t = 0.5, more than "
                     "max_steps = 100000 (raise h or max_steps)");
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(s), 0);
    ck_assert_int_eq(nd_solver_set_step(s, 0.05), ND_OK);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 9), ND_OK);
    ck_assert_int_eq(nd_solve(s, decay->p, decay->y0, ts, 3, yout), ND_ERR_MAX_STEPS);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 10), ND_OK); /* 10 steps per interval */
    ck_assert_int_eq(nd_solve(s, decay->p, decay->y0, ts, 3, yout), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), 20);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_argument_messages)
{
    const Problem *decay = &problems[0];
    double ts[3] = {0, 1, 0.5}, yout[3];
    NdSolver *s = nd_solver_create(&decay->k, ND_EULER, 1);
    ck_assert_int_eq(nd_solve(s, decay->p, decay->y0, ts, 3, yout), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s), "fixed-step solver needs h (nd_solver_set_step)");
    ck_assert_int_eq(nd_solver_set_step(s, -1.0), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s), "step h must be positive and finite, got -1");
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, decay->p, decay->y0, ts, 3, yout), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "output times must be strictly increasing or strictly decreasing: "
                     "t[1] = 1, t[2] = 0.5");
    ck_assert_int_eq(nd_solve(s, NULL, decay->y0, ts, 3, yout), ND_ERR_ARG); /* np = 1 */
    ck_assert_int_eq(nd_solver_get_num_steps(s), 0);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_create_rejects)
{
    NdKernels k = {.ny = 1, .rhs = rhs_decay};
    ck_assert_ptr_null(nd_solver_create(NULL, ND_RK4, 1));
    ck_assert_ptr_null(nd_solver_create(&k, ND_RK4, 0));
    ck_assert_ptr_null(nd_solver_create(&k, ND_METHOD_COUNT, 1));
    ck_assert_ptr_null(nd_solver_create(&k, (NdMethod)-1, 1));
    ck_assert_ptr_null(nd_solver_create(&k, ND_RK4, INT64_MAX)); /* size overflow, not a crash */
    k.rhs = NULL;
    ck_assert_ptr_null(nd_solver_create(&k, ND_RK4, 1));
    k.rhs = rhs_decay;
    k.ny = 0;
    ck_assert_ptr_null(nd_solver_create(&k, ND_RK4, 1));
    nd_solver_free(NULL);
}
END_TEST

/* ---- methods, names and tableaus ---- */

START_TEST(test_method_names)
{
    static const char *names[N_FIXED] = {"euler", "midpoint", "heun", "rk4"};
    static const int orders[N_FIXED] = {1, 2, 2, 4};
    for (int m = 0; m < N_FIXED; m++) {
        ck_assert_int_eq(nd_method_is_adaptive((NdMethod)m), 0);
        ck_assert_int_eq(nd_method_from_name(names[m]), m);
        ck_assert_str_eq(nd_method_name((NdMethod)m), names[m]);
        ck_assert_int_eq(nd_method_order((NdMethod)m), orders[m]);
    }
    ck_assert_int_eq(nd_method_from_name("rk5"), -1);
    ck_assert_int_eq(nd_method_from_name("RK4"), -1);
    ck_assert_int_eq(nd_method_from_name(""), -1);
    ck_assert_int_eq(nd_method_from_name(NULL), -1);
    ck_assert_str_eq(nd_status_name(ND_OK), "ok");
    ck_assert_str_eq(nd_status_name(ND_ERR_ARG), "invalid argument");
    ck_assert_str_eq(nd_status_name(ND_ERR_MEMORY), "out of memory");
    ck_assert_str_eq(nd_status_name(ND_ERR_UNSUPPORTED), "unsupported method");
    ck_assert_str_eq(nd_status_name(-99), "unknown status");
}
END_TEST

START_TEST(test_tableau_conditions)
{
    /* consistency of every tableau: sum b = 1, c_i = sum_j a_ij, a strictly
     * lower triangular, and for order >= 2 the condition sum b c = 1/2; the
     * embedded weights of the adaptive pairs too (1e-14: dop853's 12-stage
     * sums of 30-digit coefficients round in the last bits). The full order
     * conditions of the adaptive pairs are in check_adaptive.c. */
    const NdTableau *tab = nd_tableau_get((NdMethod)_i);
    ck_assert_ptr_nonnull(tab);
    double sum_b = 0.0, sum_bc = 0.0, sum_bhat = 0.0, sum_bhat_c = 0.0;
    for (int i = 0; i < tab->stages; i++) {
        double row = 0.0;
        for (int j = 0; j < ND_RK_MAX_STAGES; j++) {
            if (j >= i)
                ck_assert(tab->a[i][j] == 0.0);
            row += tab->a[i][j];
        }
        ck_assert_double_eq_tol(row, tab->c[i], 1e-14);
        sum_b += tab->b[i];
        sum_bc += tab->b[i] * tab->c[i];
        sum_bhat += tab->b_hat[i];
        sum_bhat_c += tab->b_hat[i] * tab->c[i];
    }
    ck_assert_double_eq_tol(sum_b, 1.0, 1e-14);
    if (nd_method_order((NdMethod)_i) >= 2)
        ck_assert_double_eq_tol(sum_bc, 0.5, 1e-14);
    ck_assert_int_eq(nd_method_is_adaptive((NdMethod)_i), tab->embedded_order > 0);
    if (tab->embedded_order > 0) {
        ck_assert_double_eq_tol(sum_bhat, 1.0, 1e-14);
        ck_assert_double_eq_tol(sum_bhat_c, 0.5, 1e-14);
    }
}
END_TEST

/* (h) No allocation inside nd_solve: checked by review rather than a malloc hook
 * (glibc 2.34 removed __malloc_hook). nd_solver.c calls calloc only in
 * nd_solver_create and free only in nd_solver_free; nd_solve, solve_interval and
 * rk_step use the carved workspace. `grep -n alloc runtime/solve/nd_solver.c` shows it. */

Suite *solvers_suite(void)
{
    Suite *s = suite_create("solvers");
    TCase *tc = tcase_create("catalogue");
    tcase_add_loop_test(tc, test_convergence_order, 0, N_LOOPS);
    tcase_add_loop_test(tc, test_backward_recovers_start, 0, N_LOOPS);
    tcase_add_loop_test(tc, test_batch_matches_separate_solves, 0, N_LOOPS);
    tcase_add_loop_test(tc, test_tableau_conditions, 0, ND_BDF); /* the explicit ones */
    suite_add_tcase(s, tc);
    tc = tcase_create("semantics");
    tcase_add_test(tc, test_seed_numbers);
    tcase_add_test(tc, test_backward_euler_exact_steps);
    tcase_add_test(tc, test_lands_on_outputs);
    tcase_add_test(tc, test_intervals_are_independent);
    tcase_add_test(tc, test_step_counts);
    tcase_add_test(tc, test_step_times_not_accumulated);
    tcase_add_test(tc, test_blowup_is_reported);
    tcase_add_test(tc, test_blowup_names_sample_and_element);
    tcase_add_test(tc, test_invalid_arguments);
    tcase_add_test(tc, test_fixed_step_cap);
    tcase_add_test(tc, test_argument_messages);
    tcase_add_test(tc, test_create_rejects);
    tcase_add_test(tc, test_method_names);
    suite_add_tcase(s, tc);
    return s;
}
