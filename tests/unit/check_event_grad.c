/* Gradients through event times (docs/gradients.md, "Events"; nd_adjoint.c's
 * nd_event_jump, nd_backprop.c's event_boundary) with a hand-written kernel
 * table: a ball with linear drag, h' = v, v' = -g - c v, bouncing off the floor
 * (`when h < 0 { v = -e v }`), p = [e, c], a batch of two drop heights whose
 * bounces fall at different times, observed at times between the bounces. Its
 * solution is not a polynomial, so the steps' errors and the event times'
 * derivatives both count. The adjoint's and backprop's dL/dp and dL/dy0 with
 * adaptive and fixed-step methods (whose forward pass redoes the step that
 * crosses, onto the event) against central differences of the loss from plain
 * solves at a tight tolerance, and the refusals (checkpoint, bdf, an event
 * without its gradient kernels). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_gradient.h"
#include "nd_solver.h"

Suite *event_grad_suite(void);

#define G 9.81

static void drag_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *work)
{
    (void)t, (void)work;
    for (int64_t b = 0; b < B; b++) {
        dydt[2 * b] = y[2 * b + 1];
        dydt[2 * b + 1] = -G - p[1] * y[2 * b + 1];
    }
}

/* a^T df/dy, a^T df/dp summed */
static void drag_vjp(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)d, (void)work;
    out1[0] = out1[1] = 0;
    for (int64_t b = 0; b < B; b++) {
        out0[2 * b] = 0;
        out0[2 * b + 1] = a[2 * b] - p[1] * a[2 * b + 1];
        out1[1] += -y[2 * b + 1] * a[2 * b + 1];
    }
}

static void floor_cond(double t, const double *y, const double *p, const double *a,
                       const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)p, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[b] = y[2 * b];
}

static void floor_cond_grad(double t, const double *y, const double *p, const double *a,
                            const double *d, double *out0, double *out1, int64_t B,
                            double *work)
{
    (void)t, (void)y, (void)p, (void)a, (void)d, (void)work;
    for (int64_t b = 0; b < B; b++)
        out0[2 * b] = 1, out0[2 * b + 1] = 0;
    out1[0] = out1[1] = 0;
}

static void bounce(double t, const double *y, const double *p, const double *a,
                   const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)a, (void)d, (void)out1, (void)work;
    for (int64_t b = 0; b < B; b++) {
        out0[2 * b] = y[2 * b];
        out0[2 * b + 1] = -p[0] * y[2 * b + 1];
    }
}

static void bounce_vjp(double t, const double *y, const double *p, const double *a,
                       const double *d, double *out0, double *out1, int64_t B, double *work)
{
    (void)t, (void)d, (void)work;
    out1[0] = out1[1] = 0;
    for (int64_t b = 0; b < B; b++) {
        out0[2 * b] = a[2 * b];
        out0[2 * b + 1] = -p[0] * a[2 * b + 1];
        out1[0] += -y[2 * b + 1] * a[2 * b + 1];
    }
}

static const NdEvent drag_events[] = {{floor_cond, bounce, -1, 0, floor_cond_grad, bounce_vjp}};
static const NdEvent no_grad_events[] = {{floor_cond, bounce, -1, 0, NULL, NULL}};

static NdKernels drag_kernels(const NdEvent *events)
{
    NdKernels k;
    memset(&k, 0, sizeof k);
    k.ny = 2;
    k.np = 2;
    k.rhs = drag_rhs;
    k.vjp = drag_vjp;
    k.n_events = 1;
    k.events = events;
    return k;
}

enum { B = 2, NT = 6 };
static const double obs_t[NT] = {0, 0.7, 1.9, 3.1, 4.4, 6.0};

/* L = sum over observations and samples of w_b (h^2 + 0.3 v) */
static int drag_loss(void *ctx, int j, double t, const double *y, const double *p, double *L,
                     double *gy, double *gp)
{
    (void)ctx, (void)j, (void)t, (void)p, (void)gp;
    for (int b = 0; b < B; b++) {
        double w = b ? 0.5 : 1.0, h = y[2 * b], v = y[2 * b + 1];
        *L += w * (h * h + 0.3 * v);
        gy[2 * b] = w * 2 * h;
        gy[2 * b + 1] = w * 0.3;
    }
    return 0;
}

/* The loss from a plain solve (the events located at a tight tolerance). */
static double solve_loss(const NdKernels *k, const double *p, const double *y0)
{
    NdSolver *s = nd_solver_create(k, ND_DOP853, B);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-13, 1e-13), ND_OK);
    double yout[NT * 2 * B], L = 0, gy[2 * B], gp[2];
    ck_assert_int_eq(nd_solve(s, p, y0, obs_t, NT, yout), ND_OK);
    ck_assert_int_ge(nd_solver_get_num_events(s), 5); /* bounces of both samples */
    for (int j = 0; j < NT; j++)
        drag_loss(NULL, j, obs_t[j], yout + j * 2 * B, p, &L, gy, gp);
    nd_solver_free(s);
    return L;
}

static const NdMethod methods[] = {ND_DOPRI5, ND_TSIT5, ND_DOP853, ND_BOSH3, ND_RK4, ND_MIDPOINT};
static const NdGradMethod paths[] = {ND_GRAD_ADJOINT, ND_GRAD_BACKPROP};

static void check_close(double got, double want, double rtol, const char *what, int i)
{
    double err = fabs(got - want) / fmax(1.0, fabs(want));
    ck_assert_msg(err < rtol, "%s %d: %.12g against central differences %.12g (err %.2e)",
                  what, i, got, want, err);
}

START_TEST(test_against_differences)
{
    NdMethod m = methods[_i / 2];
    NdGradMethod gm = paths[_i % 2];
    NdKernels k = drag_kernels(drag_events);
    double p[2] = {0.8, 0.15}, y0[2 * B] = {10, 0, 6, 1};
    NdSolver *tmpl = nd_solver_create(&k, m, B);
    ck_assert_ptr_nonnull(tmpl);
    if (nd_method_is_adaptive(m)) {
        ck_assert_int_eq(nd_solver_set_tolerances(tmpl, 1e-11, 1e-11), ND_OK);
    } else { /* the fixed-step solution's error: h^4 for rk4, h^2 for midpoint */
        ck_assert_int_eq(nd_solver_set_step(tmpl, m == ND_RK4 ? 1e-3 : 2e-5), ND_OK);
    }
    NdGradient *g = nd_gradient_create(&k, tmpl, gm, B, NT);
    ck_assert_ptr_nonnull(g);
    NdLoss loss = {NT, obs_t, drag_loss, NULL};
    double L, gp[2] = {0, 0}, gy0[2 * B];
    int st = nd_gradient_compute(g, p, y0, &loss, &L, gp, gy0);
    ck_assert_msg(st == ND_OK, "%s", nd_gradient_get_message(g));
    check_close(L, solve_loss(&k, p, y0), 1e-8, "loss", 0);
    for (int i = 0; i < 2; i++) {
        double hp[2] = {p[0], p[1]}, hm[2] = {p[0], p[1]}, h = 1e-5;
        hp[i] += h, hm[i] -= h;
        double fd = (solve_loss(&k, hp, y0) - solve_loss(&k, hm, y0)) / (2 * h);
        check_close(gp[i], fd, 1e-6, "dL/dp", i);
    }
    for (int i = 0; i < 2 * B; i++) {
        double yp[2 * B], ym[2 * B], h = 1e-5;
        memcpy(yp, y0, sizeof yp), memcpy(ym, y0, sizeof ym);
        yp[i] += h, ym[i] -= h;
        double fd = (solve_loss(&k, p, yp) - solve_loss(&k, p, ym)) / (2 * h);
        check_close(gy0[i], fd, 1e-6, "dL/dy0", i);
    }
    /* the second compute reuses everything (and gives the same numbers) */
    double L2, gp2[2] = {0, 0};
    ck_assert_int_eq(nd_gradient_compute(g, p, y0, &loss, &L2, gp2, NULL), ND_OK);
    ck_assert(L2 == L && gp2[0] == gp[0] && gp2[1] == gp[1]);
    nd_gradient_free(g);
    nd_solver_free(tmpl);
}
END_TEST

START_TEST(test_refusals)
{
    NdKernels k = drag_kernels(drag_events), bare = drag_kernels(no_grad_events);
    NdSolver *s = nd_solver_create(&k, ND_DOPRI5, B);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(nd_gradient_create(&k, s, ND_GRAD_CHECKPOINT, B, NT));
    ck_assert_ptr_null(nd_gradient_create(&bare, s, ND_GRAD_ADJOINT, B, NT));
    NdGradient *g = nd_gradient_create(&k, s, ND_GRAD_ADJOINT, B, NT);
    ck_assert_ptr_nonnull(g);
    nd_gradient_free(g);
    nd_solver_free(s);
    s = nd_solver_create(&k, ND_BDF, B);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(nd_gradient_create(&k, s, ND_GRAD_BACKPROP, B, NT));
    nd_solver_free(s);
}
END_TEST

Suite *event_grad_suite(void)
{
    Suite *s = suite_create("event_grad");
    TCase *tc = tcase_create("drag");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_against_differences, 0, 12);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}
