/* Unit tests of the everyday functions (issue 14): each one written in a
 * model, lowered by sema (compiler/check/sema_functions.c for the
 * compositions), differentiated by compiler/diff, and its vector-Jacobian
 * product evaluated by the interpreter against central finite differences of
 * the forward expression (two independent computations). Also the tie
 * conventions of min, max and their reductions, and which functions diff
 * reports as having no useful derivative (floor, argmax). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "driver.h"
#include "ir.h"

/* x and y are the inputs; every other state's equation is one function of
 * them and the parameter k. */
static const char *const SOURCE =
    "model F {\n"
    "  state x[4]\n  state y[4]\n  param k\n"
    "  dx/dt = zeros(4)\n  dy/dt = zeros(4)\n"
    "  state e0[4]\n  de0/dt = atan(x * k)\n"
    "  state e1[4]\n  de1/dt = sinh(x) + cosh(y * k)\n"
    "  state e2[4]\n  de2/dt = asinh(x * k)\n"
    "  state e3[4]\n  de3/dt = erf(x * k)\n"
    "  state e4[4]\n  de4/dt = min(x, y * k) + max(x * k, y)\n"
    "  state e5[4]\n  de5/dt = max(x, k) - min(k, y)\n"
    "  state e6[4]\n  de6/dt = atan2(x, y * k) + atan2(k, x)\n"
    "  state e7[4]\n  de7/dt = clamp(x * k, -0.5, 0.75) + clamp(y, x, x + k)\n"
    "  state e8\n  de8/dt = max(x * k) + min(y * k)\n"
    "  state e9[4]\n  de9/dt = softmax(x * k)\n"
    "  state e10[4]\n  de10/dt = log_softmax(x * k)\n"
    "  state e11\n  de11/dt = logsumexp(x * k) + logsumexp(100 * y)\n"
    "  state e12\n  de12/dt = cross_entropy(x * k, 2) + cross_entropy(y, softmax(x * k))\n"
    "  state e13\n  de13/dt = cross_entropy(x * k, floor(abs(y[1]) / 10 + 3))\n"
    "  state e14[4]\n  de14/dt = floor(x * k)\n"
    "  state e15\n  de15/dt = argmax(x * k)\n"
    "}\n";

enum { N_FUNCTIONS = 16, FIRST = 2, BLOCKED_FIRST = 14, MAXN = 64 };

static Compilation *c;
static IrModel *m;
static IrNode *wrt[3]; /* x, y, k */

static unsigned long long rng = 88172645463325252ull;

static double uniform(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

static void setup(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&text, &len);
    c = compile_file("functions.node", SOURCE, err, 0);
    fclose(err);
    ck_assert_msg(c->program != NULL, "%s", text);
    free(text);
    m = sema_find_model(c->program, "F");
    ck_assert_int_eq(m->n_states, FIRST + N_FUNCTIONS);
    for (int i = 0; i < 2; i++)
        wrt[i] = ir_state(c->ir, i, m->states[i].offset, m->states[i].shape);
    wrt[2] = ir_param(c->ir, 0, m->params[0].offset, m->params[0].shape);
}

static void teardown(void)
{
    compilation_free(c);
    c = NULL;
}

/* a . f(y, p) for the constant cotangent a. */
static double phi(IrNode *f, const double *a, const double *y, const double *p)
{
    double out[MAXN], sum = 0;
    double *outs[1] = {out};
    ir_eval(1, &f, 0, y, p, outs);
    for (int i = 0; i < ir_shape_size(f->shape); i++)
        sum += a[i] * out[i];
    return sum;
}

static double central_difference(IrNode *f, const double *a, double *y, double *p, double *v)
{
    double saved = *v, h = 1e-6 * fmax(1, fabs(saved));
    *v = saved + h;
    double up = phi(f, a, y, p);
    *v = saved - h;
    double down = phi(f, a, y, p);
    *v = saved;
    return (up - down) / (2 * h);
}

/* Points where no element sits near a kink (min, max, clamp, the largest
 * element): the inputs are spread out and kept apart from each other. */
static void random_point(double *y, double *p)
{
    for (int tries = 0;; tries++) {
        ck_assert(tries < 1000);
        for (int i = 0; i < m->ny; i++)
            y[i] = uniform(-2, 2);
        p[0] = uniform(0.6, 1.6);
        bool apart = true;
        for (int i = 0; i < 8 && apart; i++) {
            for (int j = i + 1; j < 8; j++)
                apart &= fabs(y[i] - y[j]) > 0.05 && fabs(y[i] * p[0] - y[j]) > 0.05 &&
                         fabs(y[j] * p[0] - y[i]) > 0.05;
            apart &= fabs(y[i] - p[0]) > 0.05 && fabs(y[i] * p[0] + 0.5) > 0.05 &&
                     fabs(y[i] * p[0] - 0.75) > 0.05;
            if (i >= 4) /* clamp(y, x, x + k) */
                apart &= fabs(y[i] - y[i - 4]) > 0.05 && fabs(y[i] - y[i - 4] - p[0]) > 0.05;
        }
        if (apart)
            return;
    }
}

/* The vjp of equation FIRST + _i against finite differences in x, y and k. */
START_TEST(test_derivative)
{
    IrNode *f = m->rhs[FIRST + _i];
    int n = ir_shape_size(f->shape);
    for (int trial = 0; trial < 4; trial++) {
        double y[MAXN] = {0}, p[1], a[MAXN];
        random_point(y, p);
        for (int i = 0; i < n; i++)
            a[i] = uniform(-1, 1);
        IrNode *cot = ir_const(c->ir, f->shape, a), *grads[3];
        const IrNode *blocked = diff_vjp_blocked(c->ir, 1, &f, &cot, 3, wrt, grads);
        ck_assert_ptr_null(blocked);
        for (int k = 0; k < 3; k++) {
            double got[MAXN];
            double *outs[1] = {got};
            ir_eval(1, &grads[k], 0, y, p, outs);
            for (int j = 0; j < ir_shape_size(wrt[k]->shape); j++) {
                double *v = k == 2 ? &p[0] : &y[wrt[k]->offset + j];
                double want = central_difference(f, a, y, p, v);
                ck_assert_msg(fabs(got[j] - want) <= 1e-6 * fmax(1, fabs(want)),
                              "equation e%d, wrt %d[%d]: symbolic %.12g, differences %.12g", _i,
                              k, j, got[j], want);
            }
        }
    }
}
END_TEST

/* floor and argmax: diff reports the node, and it is the one sema recorded
 * where it was written. */
START_TEST(test_blocked)
{
    for (int e = BLOCKED_FIRST; e < N_FUNCTIONS; e++) {
        IrNode *f = m->rhs[FIRST + e], *grads[3];
        IrNode *cot = ir_fill(c->ir, f->shape, 1);
        const IrNode *blocked = diff_vjp_blocked(c->ir, 1, &f, &cot, 3, wrt, grads);
        ck_assert_ptr_nonnull(blocked);
        ck_assert(diff_has_no_derivative(blocked->op));
        const SrcLoc *at = ir_origin(c->ir, blocked);
        ck_assert_ptr_nonnull(at);
        ck_assert_int_eq(at->line, 8 + 2 * e);
    }
}
END_TEST

/* Ties: max(a, b) and min(a, b) pass the derivative to a, and max(x) to its
 * first largest element (argmax's index). */
START_TEST(test_ties)
{
    double y[MAXN] = {0}, p[1] = {1};
    double x[4] = {0.5, 2, 2, -1};
    memcpy(y, x, sizeof x);
    memcpy(y + 4, x, sizeof x); /* y = x: every min and max in e4 ties */
    IrNode *e8 = m->rhs[FIRST + 8], *e4 = m->rhs[FIRST + 4], *grads[3];
    IrNode *one = ir_scalar(c->ir, 1);
    diff_vjp(c->ir, 1, &e8, &one, 3, wrt, grads);
    double gx[4], gy[4];
    double *outs[1] = {gx};
    ir_eval(1, &grads[0], 0, y, p, outs);
    ck_assert(gx[0] == 0 && gx[1] == 1 && gx[2] == 0 && gx[3] == 0); /* max(x * k) */
    outs[0] = gy;
    ir_eval(1, &grads[1], 0, y, p, outs);
    ck_assert(gy[0] == 0 && gy[1] == 0 && gy[2] == 0 && gy[3] == 1); /* min(y * k) */
    IrNode *ones = ir_fill(c->ir, e4->shape, 1);
    diff_vjp(c->ir, 1, &e4, &ones, 3, wrt, grads);
    outs[0] = gx;
    ir_eval(1, &grads[0], 0, y, p, outs);
    outs[0] = gy;
    ir_eval(1, &grads[1], 0, y, p, outs);
    for (int i = 0; i < 4; i++) /* min(x, y k) and max(x k, y): x is first in both */
        ck_assert(gx[i] == 2 && gy[i] == 0);
}
END_TEST

Suite *functions_suite(void);

Suite *functions_suite(void)
{
    Suite *s = suite_create("functions");
    TCase *tc = tcase_create("derivatives");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_derivative, 0, BLOCKED_FIRST);
    tcase_add_test(tc, test_blocked);
    tcase_add_test(tc, test_ties);
    suite_add_tcase(s, tc);
    return s;
}
