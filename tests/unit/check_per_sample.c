/* Tests of per-sample step control (nd_solver_set_step_control, and the
 * gradients that follow the template's): a damped pendulum batch with one
 * sample at theta0 = 3.1, near the upright position, among easy ones. Each
 * sample's rows of a per-sample solve are compared with a solve of that
 * sample alone, bit for bit, for every adaptive and implicit method; the
 * gradients' dL/dy0 likewise with a gradient of the sample alone, and all of
 * them against central finite differences. Define CHECK_PER_SAMPLE_VERBOSE
 * to print the numbers seen. */
#include <check.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "nd_gradient.h"
#include "nd_solver.h"

Suite *per_sample_suite(void);

#ifdef CHECK_PER_SAMPLE_VERBOSE
#define VERBOSE(...) printf(__VA_ARGS__)
#else
#define VERBOSE(...) do { if (0) printf(__VA_ARGS__); } while (0) /* still type-checked */
#endif

/* ---- the pendulum, by hand: theta' = omega, omega' = -g sin theta - c omega ---- */

enum { NY = 2, NP = 2, B = 6, NT = 6, OUTLIER = 3 };

static void pend_rhs(double t, const double *y, const double *p, double *dydt, int64_t nb,
                     double *w)
{
    (void)t, (void)w;
    for (int64_t b = 0; b < nb; b++) {
        const double *x = y + b * NY;
        dydt[b * NY] = x[1];
        dydt[b * NY + 1] = -p[0] * sin(x[0]) - p[1] * x[1];
    }
}

/* a^T df/dy per sample, a^T df/dp summed over the batch. */
static void pend_vjp(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t nb, double *w)
{
    (void)t, (void)d, (void)w;
    out1[0] = out1[1] = 0.0;
    for (int64_t b = 0; b < nb; b++) {
        const double *x = y + b * NY, *ab = a + b * NY;
        out0[b * NY] = -ab[1] * p[0] * cos(x[0]);
        out0[b * NY + 1] = ab[0] - ab[1] * p[1];
        out1[0] -= ab[1] * sin(x[0]);
        out1[1] -= ab[1] * x[1];
    }
}

static void pend_jac(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t nb, double *w)
{
    (void)t, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < nb; b++) {
        double *J = out0 + b * NY * NY;
        J[0] = 0.0, J[1] = 1.0;
        J[2] = -p[0] * cos(y[b * NY]), J[3] = -p[1];
    }
}

static const NdKernels pend = {.ny = NY, .np = NP, .rhs = pend_rhs, .vjp = pend_vjp,
                               .jac = pend_jac};
static const double pend_p[NP] = {1.0, 0.05};
static const double pend_y0[B * NY] = {0.1, 0, -0.2, 0.1, 0.3, 0, 3.1, 0, 0.05, -0.1, -0.15, 0};
static const double pend_ts[NT] = {0, 2, 4, 6, 8, 10};

static const NdMethod adaptive_methods[] = {ND_DOPRI5, ND_TSIT5, ND_DOP853, ND_BOSH3,
                                            ND_BDF,    ND_RODAS4, ND_KVAERNO5};
enum { N_ADAPTIVE = sizeof adaptive_methods / sizeof adaptive_methods[0] };

static double method_rtol(NdMethod m)
{
    return nd_method_is_implicit(m) ? 1e-7 : m == ND_BOSH3 ? 1e-6 : 1e-9;
}

/* A solver of nb samples; the step control is set before the tolerances, so
 * settings given after it must reach the samples' solves too. */
static NdSolver *make_solver(NdMethod m, int64_t nb, NdStepControl control)
{
    NdSolver *s = nd_solver_create(&pend, m, nb);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_step_control(s, control), ND_OK);
    ck_assert_int_eq(nd_solver_set_tolerances(s, method_rtol(m), method_rtol(m) * 1e-2), ND_OK);
    return s;
}

static void solve_ok(NdSolver *s, const double *y0, double *yout)
{
    int st = nd_solve(s, pend_p, y0, pend_ts, NT, yout);
    ck_assert_msg(st == ND_OK, "status %d: %s", st, nd_solver_get_message(s));
}

/* Whether sample b's rows of a batch output are exactly those of a solo one. */
static bool same_rows(const double *batch, int b, const double *solo)
{
    for (int j = 0; j < NT; j++)
        if (memcmp(batch + ((size_t)j * B + (size_t)b) * NY, solo + (size_t)j * NY,
                   NY * sizeof(double)) != 0)
            return false;
    return true;
}

/* ---- solves ---- */

/* Every sample of a per-sample batch is its solo solve to the last bit; the
 * counters are the solos' totals. A shared-step batch changes the easy
 * samples' answers (the outlier drives the step size), so the comparison
 * can tell the two apart. */
START_TEST(test_solo_bitwise)
{
    NdMethod m = adaptive_methods[_i];
    double yout[NT * B * NY], shared_out[NT * B * NY], solo[NT * NY];
    NdSolver *per = make_solver(m, B, ND_STEP_PER_SAMPLE);
    NdSolver *shared = make_solver(m, B, ND_STEP_SHARED);
    NdSolver *one = make_solver(m, 1, ND_STEP_SHARED);
    solve_ok(per, pend_y0, yout);
    solve_ok(shared, pend_y0, shared_out);
    long steps = 0, rejected = 0, evals = 0;
    int shared_differs = 0;
    for (int b = 0; b < B; b++) {
        solve_ok(one, pend_y0 + b * NY, solo);
        ck_assert_msg(same_rows(yout, b, solo), "%s sample %d differs from its solo solve",
                      nd_method_name(m), b);
        shared_differs += b != OUTLIER && !same_rows(shared_out, b, solo);
        steps += nd_solver_get_num_steps(one);
        rejected += nd_solver_get_num_rejected(one);
        evals += nd_solver_get_num_rhs_evals(one);
    }
    VERBOSE("%-8s per sample: %ld steps %ld rejected %ld f; shared %ld steps %ld f\n",
            nd_method_name(m), steps, rejected, evals, nd_solver_get_num_steps(shared),
            nd_solver_get_num_rhs_evals(shared));
    ck_assert_int_gt(shared_differs, 0);
    ck_assert_int_eq(nd_solver_get_num_steps(per), steps);
    ck_assert_int_eq(nd_solver_get_num_rejected(per), rejected);
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(per), evals);
    ck_assert(nd_solver_get_next_step(per) == 0.0);
    nd_solver_free(per);
    nd_solver_free(shared);
    nd_solver_free(one);
}
END_TEST

/* The output may start in y0's own storage (yout = y0), as in one batch. */
START_TEST(test_in_place)
{
    double yout[NT * B * NY], ref[NT * B * NY];
    NdSolver *s = make_solver(ND_DOPRI5, B, ND_STEP_PER_SAMPLE);
    solve_ok(s, pend_y0, ref);
    memcpy(yout, pend_y0, sizeof pend_y0);
    solve_ok(s, yout, yout);
    ck_assert(memcmp(yout, ref, sizeof ref) == 0);
    nd_solver_free(s);
}
END_TEST

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

START_TEST(test_no_allocation)
{
    double yout[NT * B * NY];
    NdSolver *s = make_solver(adaptive_methods[_i], B, ND_STEP_PER_SAMPLE);
    solve_ok(s, pend_y0, yout);
    bool clean = false; /* as check_gradient.c: one clean round of three passes */
    for (int round = 0; round < 3 && !clean; round++) {
        size_t before = heap_in_use();
        clean = true;
        for (int r = 0; r < 3; r++) {
            solve_ok(s, pend_y0, yout);
            clean = clean && heap_in_use() == before;
        }
    }
    ck_assert_msg(clean, "every round of solves changed the heap");
    nd_solver_free(s);
}
END_TEST

/* y' = y^2 blows up at t = 1 / y0: sample 2 (y0 = 2) fails at t = 0.5; the
 * message names it, the samples before it are their solo solves. */
static void sq_rhs(double t, const double *y, const double *p, double *dydt, int64_t nb,
                   double *w)
{
    (void)t, (void)p, (void)w;
    for (int64_t b = 0; b < nb; b++)
        dydt[b] = y[b] * y[b];
}

static void sq_namer(void *ctx, long i, char *buf, size_t len)
{
    (void)ctx;
    snprintf(buf, len, "u[%ld]", i);
}

START_TEST(test_failure_names_sample)
{
    NdKernels k = {.ny = 1, .rhs = sq_rhs};
    double y0[4] = {0.1, 0.2, 2.0, 0.3}, ts[2] = {0, 1}, yout[8], solo[2];
    NdSolver *s = nd_solver_create(&k, ND_DOPRI5, 4), *one = nd_solver_create(&k, ND_DOPRI5, 1);
    ck_assert_int_eq(nd_solver_set_step_control(s, ND_STEP_PER_SAMPLE), ND_OK);
    nd_solver_set_element_namer(s, sq_namer, NULL);
    nd_solver_set_element_namer(one, sq_namer, NULL);
    int st = nd_solve(s, NULL, y0, ts, 2, yout);
    ck_assert_int_lt(st, 0);
    const char *msg = nd_solver_get_message(s);
    VERBOSE("blow-up: %s\n", msg);
    ck_assert_msg(strncmp(msg, "sample 2: ", 10) == 0, "message: %s", msg);
    ck_assert_ptr_null(strstr(msg, "of sample")); /* the prefix names it, once */
    ck_assert_int_eq(nd_solve(one, NULL, y0 + 2, ts, 2, solo), st);
    ck_assert_str_eq(msg + 10, nd_solver_get_message(one));
    for (int b = 0; b < 2; b++) {
        ck_assert_int_eq(nd_solve(one, NULL, y0 + b, ts, 2, solo), ND_OK);
        ck_assert(yout[4 + b] == solo[1]);
    }
    /* a non-finite initial value is found before any sample is solved */
    y0[3] = NAN;
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s), "the initial value of u[0] of sample 3 is nan");
    nd_solver_free(s);
    nd_solver_free(one);
}
END_TEST

START_TEST(test_settings)
{
    NdSolver *rk4 = nd_solver_create(&pend, ND_RK4, B);
    ck_assert_int_eq(nd_solver_set_step_control(rk4, ND_STEP_PER_SAMPLE), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(rk4),
                     "rk4 is a fixed-step method: every sample takes the same steps of h, so "
                     "per-sample step control would change nothing");
    ck_assert_int_eq(nd_solver_set_step_control(rk4, ND_STEP_SHARED), ND_OK);
    ck_assert_int_eq(nd_solver_get_step_control(rk4), ND_STEP_SHARED);
    nd_solver_free(rk4);
    NdSolver *s = nd_solver_create(&pend, ND_DOPRI5, B);
    ck_assert_int_eq(nd_solver_set_step_control(s, (NdStepControl)7), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_get_step_control(s), ND_STEP_SHARED);
    ck_assert_int_eq(nd_solver_set_step_control(NULL, ND_STEP_SHARED), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_step_control(s, ND_STEP_PER_SAMPLE), ND_OK);
    nd_solver_set_tolerances(s, 1e-9, 1e-11);
    /* create_like carries the step control, for any batch size */
    NdSolver *like = nd_solver_create_like(s, &pend, 3), *solo = nd_solver_create_like(s, &pend, 1);
    ck_assert_int_eq(nd_solver_get_step_control(like), ND_STEP_PER_SAMPLE);
    double a[NT * 3 * NY], b1[NT * NY];
    ck_assert_int_eq(nd_solve(like, pend_p, pend_y0 + 3 * NY, pend_ts, NT, a), ND_OK);
    ck_assert_int_eq(nd_solve(solo, pend_p, pend_y0 + 3 * NY, pend_ts, NT, b1), ND_OK);
    ck_assert(memcmp(a + (NT - 1) * 3 * NY, b1 + (NT - 1) * NY, NY * sizeof(double)) == 0);
    /* back to shared: sample 0 (the outlier) drives the batch's steps, so
     * sample 1's answer is no longer its solo one */
    ck_assert_int_eq(nd_solver_set_step_control(like, ND_STEP_SHARED), ND_OK);
    ck_assert_int_eq(nd_solver_get_step_control(like), ND_STEP_SHARED);
    ck_assert_int_eq(nd_solve(like, pend_p, pend_y0 + 3 * NY, pend_ts, NT, a), ND_OK);
    ck_assert_int_eq(nd_solve(solo, pend_p, pend_y0 + 4 * NY, pend_ts, NT, b1), ND_OK);
    ck_assert(memcmp(a + (NT - 1) * 3 * NY + NY, b1 + (NT - 1) * NY, NY * sizeof(double)) != 0);
    nd_solver_free(like);
    nd_solver_free(solo);
    nd_solver_free(s);
}
END_TEST

/* ---- gradients ---- */

/* L = sum over observations and samples of (theta - 0.5)^2 + 0.1 omega^2,
 * separable over samples: the callback sees nb samples, any nb. */
static int pend_loss(void *ctx, int j, double t, const double *y, const double *p, double *L,
                     double *gy, double *gp)
{
    (void)j, (void)t, (void)p, (void)gp;
    int64_t nb = *(const int64_t *)ctx;
    for (int64_t b = 0; b < nb; b++) {
        double th = y[b * NY] - 0.5, om = y[b * NY + 1];
        *L += th * th + 0.1 * om * om;
        gy[b * NY] = 2.0 * th;
        gy[b * NY + 1] = 0.2 * om;
    }
    return 0;
}

typedef struct GradCase {
    NdGradMethod gm;
    NdMethod method;
    double rtol;
} GradCase;

static const GradCase grad_cases[] = {
    {ND_GRAD_ADJOINT, ND_DOPRI5, 1e-10},   {ND_GRAD_BACKPROP, ND_DOPRI5, 1e-9},
    {ND_GRAD_CHECKPOINT, ND_DOPRI5, 1e-9}, {ND_GRAD_BACKPROP, ND_TSIT5, 1e-9},
    {ND_GRAD_ADJOINT, ND_DOP853, 1e-10},   {ND_GRAD_CHECKPOINT, ND_BOSH3, 1e-7},
    {ND_GRAD_ADJOINT, ND_BDF, 1e-8},       {ND_GRAD_BACKPROP, ND_BDF, 1e-8},
    {ND_GRAD_CHECKPOINT, ND_BDF, 1e-8},
};
enum { N_GRAD = sizeof grad_cases / sizeof grad_cases[0] };

static const char *gm_name(NdGradMethod gm)
{
    return gm == ND_GRAD_ADJOINT ? "adjoint" : gm == ND_GRAD_BACKPROP ? "backprop" : "checkpoint";
}

static NdGradient *make_gradient(const GradCase *c, int64_t nb, NdStepControl control)
{
    NdSolver *s = nd_solver_create(&pend, c->method, nb);
    ck_assert_int_eq(nd_solver_set_step_control(s, control), ND_OK);
    ck_assert_int_eq(nd_solver_set_tolerances(s, c->rtol, c->rtol * 1e-2), ND_OK);
    NdGradient *g = nd_gradient_create(&pend, s, c->gm, nb, NT);
    nd_solver_free(s); /* the template is only read */
    ck_assert_ptr_nonnull(g);
    return g;
}

static void compute_ok(NdGradient *g, int64_t *nb, const double *p, const double *y0, double *L,
                       double *gp, double *gy0)
{
    NdLoss loss = {NT, pend_ts, pend_loss, nb};
    int st = nd_gradient_compute(g, p, y0, &loss, L, gp, gy0);
    ck_assert_msg(st == ND_OK, "status %d: %s", st, nd_gradient_get_message(g));
}

/* Sample b's dL/dy0 is its solo gradient's, bit for bit; L and dL/dp are the
 * solos' sums; the counters their totals. */
START_TEST(test_gradient_solo)
{
    const GradCase *c = &grad_cases[_i];
    NdGradient *g = make_gradient(c, B, ND_STEP_PER_SAMPLE);
    NdGradient *one = make_gradient(c, 1, ND_STEP_SHARED);
    int64_t nb = B, n1 = 1;
    double L, gp[NP], gy0[B * NY], L1, gp1[NP], gy1[NY], Lsum = 0, gpsum[NP] = {0};
    compute_ok(g, &nb, pend_p, pend_y0, &L, gp, gy0);
    long fwd = 0, rhs = 0, vjp = 0;
    for (int b = 0; b < B; b++) {
        compute_ok(one, &n1, pend_p, pend_y0 + b * NY, &L1, gp1, gy1);
        ck_assert_msg(memcmp(gy0 + b * NY, gy1, sizeof gy1) == 0,
                      "%s %s sample %d: dL/dy0 differs from its solo gradient", gm_name(c->gm),
                      nd_method_name(c->method), b);
        Lsum += L1;
        for (int i = 0; i < NP; i++)
            gpsum[i] += gp1[i];
        fwd += nd_gradient_get_num_forward_evals(one);
        rhs += nd_gradient_get_num_rhs_evals(one);
        vjp += nd_gradient_get_num_vjp_evals(one);
    }
    ck_assert_double_eq_tol(L, Lsum, 1e-13 * Lsum);
    for (int i = 0; i < NP; i++)
        ck_assert_double_eq_tol(gp[i], gpsum[i], 1e-12 * fabs(gpsum[i]));
    /* the forward passes are the solos'; the backward work too, but for the
     * samples whose checkpoints are recomputed (all but the last) */
    ck_assert_int_eq(nd_gradient_get_num_forward_evals(g), fwd);
    int again = c->gm == ND_GRAD_CHECKPOINT || (c->gm == ND_GRAD_ADJOINT && c->method == ND_BDF);
    if (!again) {
        ck_assert_int_eq(nd_gradient_get_num_rhs_evals(g), rhs);
        ck_assert_int_eq(nd_gradient_get_num_vjp_evals(g), vjp);
    } else {
        ck_assert_int_gt(nd_gradient_get_num_rhs_evals(g), rhs);
        ck_assert_int_eq(nd_gradient_get_num_vjp_evals(g), vjp);
    }
    nd_gradient_free(g);
    nd_gradient_free(one);
}
END_TEST

/* L of an accurate solve (dop853, rtol 1e-12, per sample): the function
 * every gradient path approximates. */
static double reference_loss(NdSolver *ref, const double *p, const double *y0)
{
    double yout[NT * B * NY], gy[B * NY], L = 0.0;
    int64_t nb = B;
    int st = nd_solve(ref, p, y0, pend_ts, NT, yout);
    ck_assert_msg(st == ND_OK, "%s", nd_solver_get_message(ref));
    for (int j = 0; j < NT; j++)
        pend_loss(&nb, j, pend_ts[j], yout + j * B * NY, p, &L, gy, NULL);
    return L;
}

/* dL/dp and dL/dy0 of the per-sample batch against central differences of
 * the reference (steps of 1e-5 relative: the reference's noise is about
 * 1e-12 / 1e-5), within what the paths' own tolerances allow: seen 6e-7 for
 * the explicit paths, 3e-6 for bdf's at rtol 1e-8; held to 2e-5. */
START_TEST(test_gradient_vs_fd)
{
    const GradCase *c = &grad_cases[_i];
    NdGradient *g = make_gradient(c, B, ND_STEP_PER_SAMPLE);
    NdSolver *ref = nd_solver_create(&pend, ND_DOP853, B);
    nd_solver_set_step_control(ref, ND_STEP_PER_SAMPLE);
    nd_solver_set_tolerances(ref, 1e-12, 1e-14);
    int64_t nb = B;
    double L, gp[NP], gy0[B * NY], p[NP], y0[B * NY], worst = 0.0;
    compute_ok(g, &nb, pend_p, pend_y0, &L, gp, gy0);
    for (int i = 0; i < NP + B * NY; i++) {
        memcpy(p, pend_p, sizeof p);
        memcpy(y0, pend_y0, sizeof y0);
        double *x = i < NP ? &p[i] : &y0[i - NP], x0 = *x, eps = 1e-5 * fmax(0.1, fabs(x0));
        *x = x0 + eps;
        double Lp = reference_loss(ref, p, y0);
        *x = x0 - eps;
        double Lm = reference_loss(ref, p, y0);
        double fd = (Lp - Lm) / (2.0 * eps), an = i < NP ? gp[i] : gy0[i - NP];
        worst = fmax(worst, fabs(an - fd) / fmax(fabs(fd), 1.0));
    }
    VERBOSE("fd %-10s %-6s rtol %g: worst rel %.2e (L %.6g)\n", gm_name(c->gm),
            nd_method_name(c->method), c->rtol, worst, L);
    ck_assert_double_le(worst, 2e-5);
    nd_solver_free(ref);
    nd_gradient_free(g);
}
END_TEST

START_TEST(test_gradient_no_allocation)
{
    const GradCase *c = &grad_cases[_i];
    NdGradient *g = make_gradient(c, B, ND_STEP_PER_SAMPLE);
    int64_t nb = B;
    double L, gp[NP], gy0[B * NY], L2;
    compute_ok(g, &nb, pend_p, pend_y0, &L, gp, gy0);
    bool clean = false;
    for (int round = 0; round < 3 && !clean; round++) {
        size_t before = heap_in_use();
        clean = true;
        for (int r = 0; r < 3; r++) {
            compute_ok(g, &nb, pend_p, pend_y0, &L2, gp, gy0);
            clean = clean && heap_in_use() == before;
            ck_assert(L2 == L);
        }
    }
    ck_assert_msg(clean, "every round of computes changed the heap");
    ck_assert_uint_gt(nd_gradient_get_peak_doubles(g), 0);
    nd_gradient_free(g);
}
END_TEST

START_TEST(test_gradient_failure_names_sample)
{
    GradCase c = {ND_GRAD_ADJOINT, ND_DOPRI5, 1e-8};
    NdGradient *g = make_gradient(&c, B, ND_STEP_PER_SAMPLE);
    int64_t nb = B;
    double y0[B * NY], L, gp[NP], gy0[B * NY];
    memcpy(y0, pend_y0, sizeof y0);
    y0[4 * NY + 1] = INFINITY;
    NdLoss loss = {NT, pend_ts, pend_loss, &nb};
    ck_assert_int_eq(nd_gradient_compute(g, pend_p, y0, &loss, &L, gp, gy0), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_gradient_get_message(g),
                     "sample 4: the initial value of state element 1 is inf");
    /* a max_steps failure in one sample's forward pass */
    NdSolver *s = nd_solver_create(&pend, ND_DOPRI5, B);
    nd_solver_set_step_control(s, ND_STEP_PER_SAMPLE);
    nd_solver_set_tolerances(s, 1e-12, 1e-14);
    nd_solver_set_max_steps(s, 60);
    NdGradient *tight = nd_gradient_create(&pend, s, ND_GRAD_BACKPROP, B, NT);
    nd_solver_free(s);
    int st = nd_gradient_compute(tight, pend_p, pend_y0, &loss, &L, gp, gy0);
    const char *msg = nd_gradient_get_message(tight);
    VERBOSE("max_steps: %s\n", msg);
    ck_assert_int_eq(st, ND_ERR_MAX_STEPS);
    ck_assert_msg(strncmp(msg, "sample ", 7) == 0 && strstr(msg, ": forward solve: "),
                  "message: %s", msg);
    nd_gradient_free(tight);
    nd_gradient_free(g);
}
END_TEST

Suite *per_sample_suite(void)
{
    Suite *s = suite_create("per_sample");
    TCase *tc = tcase_create("solve");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_solo_bitwise, 0, N_ADAPTIVE);
    tcase_add_test(tc, test_in_place);
    tcase_add_loop_test(tc, test_no_allocation, 0, N_ADAPTIVE);
    tcase_add_test(tc, test_failure_names_sample);
    tcase_add_test(tc, test_settings);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradient");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gradient_solo, 0, N_GRAD);
    tcase_add_loop_test(tc, test_gradient_vs_fd, 0, N_GRAD);
    tcase_add_loop_test(tc, test_gradient_no_allocation, 0, N_GRAD);
    tcase_add_test(tc, test_gradient_failure_names_sample);
    suite_add_tcase(s, tc);
    return s;
}
