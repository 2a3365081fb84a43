/* Tests of the adaptive Runge–Kutta solvers (runtime/solve/nd_adaptive.c, the tables
 * of runtime/solve/nd_tableaus.c, the dense output of runtime/solve/nd_dense.c): tableaus
 * against the order conditions, a catalogue of problems with exact solutions
 * (DETEST, Hull, Enright, Fellen, Sedgwick, SIAM J. Numer. Anal. 9 (1972)
 * 603–637) across tolerances, dense output order, step-count regressions,
 * outputs not changing steps, backward solves, batches, failures, and the
 * conformance suite's reference values. Define CHECK_ADAPTIVE_VERBOSE to print
 * the errors and step counts seen. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_adaptive.h" /* the solver's vectors, for the dense output's two forms */
#include "nd_solver.h"
#include "nd_tableaus.h"

Suite *adaptive_suite(void);

#define PI 3.14159265358979323846

static const NdMethod methods[] = {ND_BOSH3, ND_DOPRI5, ND_TSIT5, ND_DOP853};
enum { N_METHODS = sizeof methods / sizeof methods[0] };

/* ---- order conditions: every rooted tree up to order 8 ---- */

/* A rooted tree as the list of its root's subtrees (indices of earlier trees,
 * non-increasing), with its order |t| and density gamma(t) (Butcher 2008,
 * section 30). 1 + 1 + 2 + 4 + 9 + 20 + 48 + 115 = 200 trees up to order 8. */
enum { MAX_TREE_ORDER = 9, MAX_TREES = 520, MAX_KIDS = 8 };
typedef struct Tree {
    int order, nkids, kids[MAX_KIDS];
    double gamma;
} Tree;
static Tree trees[MAX_TREES];
static int n_trees, first_of_order[MAX_TREE_ORDER + 2];

/* Adds every tree of order `order` whose root has the subtrees kids[0..nk)
 * followed by subtrees of total order `left`, each index <= max_kid. */
static void trees_extend(int order, int left, int max_kid, int *kids, int nk)
{
    if (left == 0) {
        Tree *t = &trees[n_trees++];
        ck_assert_int_lt(n_trees, MAX_TREES);
        t->order = order, t->nkids = nk, t->gamma = order;
        for (int i = 0; i < nk; i++) {
            t->kids[i] = kids[i];
            t->gamma *= trees[kids[i]].gamma;
        }
        return;
    }
    for (int k = max_kid; k >= 0; k--) {
        if (trees[k].order > left)
            continue;
        kids[nk] = k;
        trees_extend(order, left - trees[k].order, k, kids, nk + 1);
    }
}

static void trees_build(void)
{
    if (n_trees)
        return;
    int kids[MAX_KIDS + 1];
    for (int order = 1; order <= MAX_TREE_ORDER; order++) {
        first_of_order[order] = n_trees;
        trees_extend(order, order - 1, n_trees - 1, kids, 0);
    }
    first_of_order[MAX_TREE_ORDER + 1] = n_trees;
}

/* phi[t][i] = Phi_i(t) = prod over subtrees u of (sum_j a[i][j] Phi_j(u)), for
 * the first m stages. */
static double phi[MAX_TREES][ND_RK_MAX_STAGES];

static void trees_phi(const NdTableau *tab, int m)
{
    for (int t = 0; t < n_trees; t++)
        for (int i = 0; i < m; i++) {
            double prod = 1.0;
            for (int u = 0; u < trees[t].nkids; u++) {
                double acc = 0.0;
                for (int j = 0; j < i; j++)
                    acc += tab->a[i][j] * phi[trees[t].kids[u]][j];
                prod *= acc;
            }
            phi[t][i] = prod;
        }
}

/* The largest |sum_i w_i Phi_i(t) - theta^|t| / gamma(t)| over trees of order `order`. */
static double trees_residual(const double *w, int m, int order, double theta)
{
    double worst = 0.0;
    for (int t = first_of_order[order]; t < first_of_order[order + 1]; t++) {
        double acc = 0.0;
        for (int i = 0; i < m; i++)
            acc += w[i] * phi[t][i];
        worst = fmax(worst, fabs(acc - pow(theta, order) / trees[t].gamma));
    }
    return worst;
}

START_TEST(test_tree_count)
{
    static const int counts[] = {0, 1, 1, 2, 4, 9, 20, 48, 115, 286}; /* OEIS A000081 */
    trees_build();
    for (int order = 1; order <= MAX_TREE_ORDER; order++)
        ck_assert_int_eq(first_of_order[order + 1] - first_of_order[order], counts[order]);
}
END_TEST

/* b has exactly the claimed order: conditions hold up to p and fail at p + 1;
 * b_hat likewise for the embedded order; e = b - b_hat. The tolerance 1e-13 is
 * roundoff in coefficients of size up to ~40 (tsit5's residuals reach 1e-14);
 * a wrong digit in a coefficient shows as 1e-6 or more. */
START_TEST(test_order_conditions)
{
    const NdTableau *tab = nd_tableau_get(methods[_i]);
    trees_build();
    trees_phi(tab, tab->dense_stages);
    const char *name = nd_method_name(methods[_i]);
    int p = nd_method_order(methods[_i]), q = tab->embedded_order, s = tab->stages;
    for (int order = 1; order <= p; order++)
        ck_assert_msg(trees_residual(tab->b, s, order, 1.0) < 1e-13, "%s: b fails order %d: %g",
                      name, order, trees_residual(tab->b, s, order, 1.0));
    ck_assert_double_gt(trees_residual(tab->b, s, p + 1, 1.0), 1e-6);
    for (int order = 1; order <= q; order++)
        ck_assert_msg(trees_residual(tab->b_hat, s, order, 1.0) < 1e-13,
                      "%s: b_hat fails order %d", name, order);
    ck_assert_double_gt(trees_residual(tab->b_hat, s, q + 1, 1.0), 1e-6);
    for (int i = 0; i < s; i++)
        ck_assert_double_eq_tol(tab->e[i], tab->b[i] - tab->b_hat[i], 1e-15);
    /* the stages: c_i = sum_j a_ij, a strictly lower triangular */
    for (int i = 0; i < tab->dense_stages; i++) {
        double row = 0.0;
        for (int j = 0; j < ND_RK_MAX_STAGES; j++) {
            if (j >= i)
                ck_assert(tab->a[i][j] == 0.0);
            row += tab->a[i][j];
        }
        ck_assert_double_eq_tol(row, tab->c[i], 1e-14);
    }
}
END_TEST

START_TEST(test_dop853_third_order_estimate)
{
    /* b - e3 is dop853.f's BHH: a 3rd-order quadrature that is not 4th-order */
    const NdTableau *tab = nd_tableau_get(ND_DOP853);
    double w[ND_RK_MAX_STAGES];
    for (int i = 0; i < ND_RK_MAX_STAGES; i++)
        w[i] = tab->b[i] - tab->e3[i];
    trees_build();
    trees_phi(tab, tab->stages);
    for (int order = 1; order <= 3; order++)
        ck_assert_double_lt(trees_residual(w, tab->stages, order, 1.0), 1e-14);
    ck_assert_double_gt(trees_residual(w, tab->stages, 4, 1.0), 1e-6);
}
END_TEST

/* The dense output weights meet the order conditions of the continuous
 * extension, sum w_i(theta) Phi_i(t) = theta^|t| / gamma(t), at off-step theta,
 * and reproduce y_new at theta = 1 and y at theta = 0. */
START_TEST(test_dense_order_conditions)
{
    const NdTableau *tab = nd_tableau_get(methods[_i]);
    int m = tab->dense_stages, pd = tab->dense_order;
    static const double thetas[] = {0.1, 0.37, 0.5, 0.81};
    trees_build();
    trees_phi(tab, m);
    for (size_t k = 0; k < sizeof thetas / sizeof thetas[0]; k++) {
        double w[ND_RK_MAX_STAGES] = {0};
        nd_dense_weights(tab, thetas[k], w);
        for (int order = 1; order <= pd; order++)
            ck_assert_msg(trees_residual(w, m, order, thetas[k]) < 1e-12,
                          "%s: dense output fails order %d at theta %g (residual %g)",
                          nd_method_name(methods[_i]), order, thetas[k],
                          trees_residual(w, m, order, thetas[k]));
        if (k == 1) /* order pd + 1 fails somewhere: the claimed order is the true one */
            ck_assert_double_gt(trees_residual(w, m, pd + 1, thetas[k]), 1e-6);
    }
    double w0[ND_RK_MAX_STAGES], w1[ND_RK_MAX_STAGES];
    nd_dense_weights(tab, 0.0, w0);
    nd_dense_weights(tab, 1.0, w1);
    for (int i = 0; i < m; i++) {
        ck_assert_double_eq_tol(w0[i], 0.0, 1e-15);
        ck_assert_double_eq_tol(w1[i], i < tab->stages ? tab->b[i] : 0.0, 1e-13);
    }
}
END_TEST

/* ---- the engines' loops against the tableaus written out ---- */

enum { LOOP_N = 5 };

static void unused_system(void *ctx, double t, const double *z, double *dzdt)
{
    (void)ctx, (void)t, (void)z, (void)dzdt;
}

/* A solver of LOOP_N elements whose y and stage vectors hold made-up values. */
static NdSolver *solver_with_stages(NdMethod m)
{
    NdSolver *s = nd_solver_create_system(m, LOOP_N, unused_system, NULL);
    ck_assert_ptr_nonnull(s);
    const NdTableau *tab = s->tab;
    int stages = tab->embedded_order > 0 ? tab->dense_stages : tab->stages;
    for (int i = 0; i < stages; i++)
        for (int e = 0; e < LOOP_N; e++)
            s->K[i][e] = sin(1.0 + 3.7 * i + 1.3 * e) * (1.0 + i);
    if (s->y)
        for (int e = 0; e < LOOP_N; e++)
            s->y[e] = 0.5 + cos(2.1 * e);
    return s;
}

/* y + h sum_j coef[j] k_j, summed as the tableau reads, row by row. */
static double written_out(const NdSolver *s, const double *coef, int len, const double *y,
                          double h, int e)
{
    double acc = 0.0;
    for (int j = 0; j < len; j++)
        acc += coef[j] * s->K[j][e];
    return (y ? y[e] : 0.0) + h * acc;
}

/* The stage arguments, the update and the error weights as the engines form
 * them (nonzero terms only, loops unrolled by count, up to dop853's rows of 9)
 * against the full rows of the tableau. */
START_TEST(test_stage_loops)
{
    NdSolver *s = solver_with_stages((NdMethod)_i);
    const NdTableau *tab = s->tab;
    double y[LOOP_N], out[LOOP_N], h = 0.37;
    for (int e = 0; e < LOOP_N; e++)
        y[e] = 1.0 - 0.3 * e;
    int rows = tab->embedded_order > 0 ? tab->dense_stages : tab->stages;
    for (int i = 0; i < rows; i++) {
        nd_rk_stage_arg(s, i, h, y, out);
        for (int e = 0; e < LOOP_N; e++)
            ck_assert_double_eq_tol(out[e], written_out(s, tab->a[i], i, y, h, e), 1e-14);
    }
    nd_combo_scale(&s->e, s->K, 1.0, out, LOOP_N);
    for (int e = 0; e < LOOP_N; e++)
        ck_assert_double_eq_tol(out[e], written_out(s, tab->e, tab->stages, NULL, 1.0, e),
                                1e-14);
    nd_combo_axpy(&s->b, s->K, y, h, out, LOOP_N);
    for (int e = 0; e < LOOP_N; e++)
        ck_assert_double_eq_tol(out[e], written_out(s, tab->b, tab->stages, y, h, e), 1e-14);
    nd_combo_axpy(&s->b, s->K, y, h, y, LOOP_N); /* in place, as the fixed-step update */
    ck_assert(memcmp(y, out, sizeof y) == 0);
    nd_solver_free(s);
}
END_TEST

/* The solver's dense output (coefficient vectors per step, then Horner in
 * theta: dopri5.f's form) equals y + h sum_i w_i(theta) k_i of the weights. */
START_TEST(test_dense_forms_agree)
{
    NdSolver *s = solver_with_stages(methods[_i]);
    const NdTableau *tab = s->tab;
    double t = 2.0, h = -0.25, ts[5], out[5 * LOOP_N];
    nd_rk_stage_arg(s, tab->fnew_stage, h, s->y, s->ynew);
    for (int q = 0; q < 5; q++)
        ts[q] = t + h * (0.05 + 0.2 * q);
    nd_dense_prepare(s, h);
    nd_dense_eval(s, t, h, ts, 5, out);
    for (int q = 0; q < 5; q++) {
        double w[ND_RK_MAX_STAGES];
        nd_dense_weights(tab, (ts[q] - t) / h, w);
        for (int e = 0; e < LOOP_N; e++) {
            double ref = written_out(s, w, tab->dense_stages, s->y, h, e);
            ck_assert_double_eq_tol(out[q * LOOP_N + e], ref, 1e-13 * (1.0 + fabs(ref)));
        }
    }
    nd_solver_free(s);
}
END_TEST

/* ---- the catalogue: right-hand sides over a batch, exact solutions ---- */

typedef void (*ExactFn)(double t, double *y);

typedef struct Problem {
    const char *name;
    NdKernels k;
    double t1;        /* solved on [0, t1]; y0 = exact(0) */
    ExactFn exact;
    double factor;    /* bound on the global error / tolerance (see below) */
} Problem;

/* A kernel table with only a right-hand side and no scratch. */
#define KERNEL(n, fn) {.ny = (n), .rhs = (fn)}

#define FOR_SAMPLES(ny) for (int64_t b = 0; b < B; b++, y += (ny), dydt += (ny))

/* DETEST A1: y' = -y, y = e^-t. */
static void rhs_a1(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = -y[0];
}
static void exact_a1(double t, double *y) { y[0] = exp(-t); }

/* DETEST A2: y' = -y^3 / 2, y(0) = 1: y = 1 / sqrt(t + 1). */
static void rhs_a2(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = -0.5 * y[0] * y[0] * y[0];
}
static void exact_a2(double t, double *y) { y[0] = 1.0 / sqrt(t + 1.0); }

/* DETEST A3: y' = y cos t, y(0) = 1: y = exp(sin t). */
static void rhs_a3(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = y[0] * cos(t);
}
static void exact_a3(double t, double *y) { y[0] = exp(sin(t)); }

/* DETEST A4: y' = y (1 - y / 20) / 4, y(0) = 1: y = 20 / (1 + 19 e^(-t/4)). */
static void rhs_a4(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = 0.25 * y[0] * (1.0 - y[0] / 20.0);
}
static void exact_a4(double t, double *y) { y[0] = 20.0 / (1.0 + 19.0 * exp(-t / 4.0)); }

/* DETEST B5, Euler's equations of a rigid body: y1' = y2 y3, y2' = -y1 y3,
 * y3' = -0.51 y1 y2, y(0) = (0, 1, 1): (sn, cn, dn)(t | m = 0.51). */
static void rhs_b5(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(3) {
        dydt[0] = y[1] * y[2];
        dydt[1] = -y[0] * y[2];
        dydt[2] = -0.51 * y[0] * y[1];
    }
}

/* Jacobi's sn, cn, dn by the arithmetic-geometric mean (Abramowitz & Stegun
 * 16.4): descend a, b, c to c_N ~ 0, then phi_N = 2^N a_N u and
 * phi_{n-1} = (phi_n + asin(c_n sin(phi_n) / a_n)) / 2. */
static void exact_b5(double t, double *y)
{
    enum { N = 12 };
    const double m = 0.51;
    double a[N + 1], c[N + 1], bb = sqrt(1.0 - m);
    a[0] = 1.0, c[0] = sqrt(m);
    int n = 0;
    while (n < N && fabs(c[n]) > 1e-17) {
        a[n + 1] = 0.5 * (a[n] + bb);
        c[n + 1] = 0.5 * (a[n] - bb);
        bb = sqrt(a[n] * bb);
        n++;
    }
    double ph = ldexp(a[n] * t, n), ph1 = ph;
    for (; n > 0; n--) {
        ph1 = ph;
        ph = 0.5 * (ph + asin(c[n] * sin(ph) / a[n]));
    }
    y[0] = sin(ph);
    y[1] = cos(ph);
    y[2] = cos(ph) / cos(ph1 - ph);
}

/* DETEST C1: a chain of 10 first-order decays, y1' = -y1, yi' = y(i-1) - yi,
 * y(0) = e1: yi = t^(i-1) e^-t / (i-1)!. */
static void rhs_c1(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(10) {
        dydt[0] = -y[0];
        for (int i = 1; i < 10; i++)
            dydt[i] = y[i - 1] - y[i];
    }
}
static void exact_c1(double t, double *y)
{
    double term = exp(-t);
    for (int i = 0; i < 10; i++) {
        y[i] = term;
        term *= t / (i + 1);
    }
}

/* DETEST D1–D5: the Kepler orbit of eccentricity e, x'' = -x / r^3 with
 * x(0) = (1 - e, 0), x'(0) = (0, sqrt((1 + e) / (1 - e))), state (x1, x2, v1, v2).
 * Exact through Kepler's equation u - e sin u = t (period 2 pi). */
static void rhs_kepler(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(4) {
        double r2 = y[0] * y[0] + y[1] * y[1], r3 = r2 * sqrt(r2);
        dydt[0] = y[2];
        dydt[1] = y[3];
        dydt[2] = -y[0] / r3;
        dydt[3] = -y[1] / r3;
    }
}
static void kepler_exact(double e, double t, double *y)
{
    double u = t + e * sin(t); /* Newton on u - e sin u - t = 0 */
    for (int it = 0; it < 50; it++) {
        double du = (u - e * sin(u) - t) / (1.0 - e * cos(u));
        u -= du;
        if (fabs(du) < 1e-16)
            break;
    }
    double s = sqrt(1.0 - e * e), den = 1.0 - e * cos(u);
    y[0] = cos(u) - e;
    y[1] = s * sin(u);
    y[2] = -sin(u) / den;
    y[3] = s * cos(u) / den;
}
static void exact_d1(double t, double *y) { kepler_exact(0.1, t, y); }
static void exact_d3(double t, double *y) { kepler_exact(0.5, t, y); }
static void exact_d5(double t, double *y) { kepler_exact(0.9, t, y); }

/* DETEST E1: y'' + y' / (t + 1) + (1 - 0.25 / (t + 1)^2) y = 0, Bessel's
 * equation of order 1/2 in x = t + 1: y = sqrt(2 / pi) sin(x) / sqrt(x). */
static void rhs_e1(double t, const double *y, const double *p, double *dydt, int64_t B, double *w)
{
    (void)p, (void)w;
    double x = t + 1.0;
    FOR_SAMPLES(2) {
        dydt[0] = y[1];
        dydt[1] = -(y[1] / x + (1.0 - 0.25 / (x * x)) * y[0]);
    }
}
static void exact_e1(double t, double *y)
{
    double x = t + 1.0, c = sqrt(2.0 / PI);
    y[0] = c * sin(x) / sqrt(x);
    y[1] = c * (cos(x) / sqrt(x) - 0.5 * sin(x) / (x * sqrt(x)));
}

/* y' = 2 y t, y(0) = 3: y = 3 exp(t^2) (the seed's Growth model). */
static void rhs_growth(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *w)
{
    (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = 2.0 * y[0] * t;
}
static void exact_growth(double t, double *y) { y[0] = 3.0 * exp(t * t); }

/* y' = cos t - y, y(0) = 0: y = (sin t + cos t - e^-t) / 2. */
static void rhs_forced(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *w)
{
    (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = cos(t) - y[0];
}
static void exact_forced(double t, double *y) { y[0] = 0.5 * (sin(t) + cos(t) - exp(-t)); }

/* Harmonic oscillator y0' = y1, y1' = -y0, y(0) = (1, 0): (cos t, -sin t). */
static void rhs_osc(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(2) {
        dydt[0] = y[1];
        dydt[1] = -y[0];
    }
}
static void exact_osc(double t, double *y)
{
    y[0] = cos(t);
    y[1] = -sin(t);
}

/* Error bounds: 100 x tol for most problems. B5 at rtol 1e-3 is barely
 * resolved (dopri5: 19 steps over 20 time units, 252 x tol). The Kepler orbits
 * turn every local error into a phase error that grows with each of the ~3
 * orbits and is multiplied by the speed at perihelion (4.4 for e = 0.9), so
 * their global error reaches 10^3-10^4 x tol at loose tolerances (largest
 * seen: dopri5 on D5, 7.4e3 at 1e-5). */
static const Problem problems[] = {
    {"A1", KERNEL(1, rhs_a1), 20.0, exact_a1, 100},
    {"A2", KERNEL(1, rhs_a2), 20.0, exact_a2, 100},
    {"A3", KERNEL(1, rhs_a3), 20.0, exact_a3, 100},
    {"A4", KERNEL(1, rhs_a4), 20.0, exact_a4, 100},
    {"B5", KERNEL(3, rhs_b5), 20.0, exact_b5, 1000},
    {"C1", KERNEL(10, rhs_c1), 20.0, exact_c1, 100},
    {"D1", KERNEL(4, rhs_kepler), 20.0, exact_d1, 5000},
    {"D3", KERNEL(4, rhs_kepler), 20.0, exact_d3, 5000},
    {"D5", KERNEL(4, rhs_kepler), 20.0, exact_d5, 20000},
    {"E1", KERNEL(2, rhs_e1), 20.0, exact_e1, 100},
    {"growth", KERNEL(1, rhs_growth), 1.0, exact_growth, 100},
    {"forced", KERNEL(1, rhs_forced), 10.0, exact_forced, 100},
    {"oscillator", KERNEL(2, rhs_osc), 10.0, exact_osc, 100},
};
enum { N_PROBLEMS = sizeof problems / sizeof problems[0], MAX_NY = 10 };
enum { N_LOOPS = N_METHODS * N_PROBLEMS };

static const Problem *find_problem(const char *name)
{
    for (int i = 0; i < N_PROBLEMS; i++)
        if (strcmp(problems[i].name, name) == 0)
            return &problems[i];
    ck_abort_msg("no problem %s", name);
    return NULL;
}

/* Solves pr with m from its exact y(ts[0]) at (rtol, atol); returns the status
 * and, when given, the solver's counters (steps, rejected, evaluations). */
static int solve_problem(const Problem *pr, NdMethod m, double rtol, double atol,
                         const double *ts, int nt, double *yout, long counts[3])
{
    double y0[MAX_NY];
    pr->exact(ts[0], y0);
    NdSolver *s = nd_solver_create(&pr->k, m, 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_tolerances(s, rtol, atol), ND_OK);
    int st = nd_solve(s, NULL, y0, ts, nt, yout);
    if (counts) {
        counts[0] = nd_solver_get_num_steps(s);
        counts[1] = nd_solver_get_num_rejected(s);
        counts[2] = nd_solver_get_num_rhs_evals(s);
    }
    nd_solver_free(s);
    return st;
}

/* max over rows and elements of |y - exact| / (atol + rtol |exact|) */
static double scaled_error(const Problem *pr, const double *ts, int nt, const double *yout,
                           double rtol, double atol)
{
    int ny = pr->k.ny;
    double worst = 0.0, ex[MAX_NY];
    for (int j = 0; j < nt; j++) {
        pr->exact(ts[j], ex);
        for (int i = 0; i < ny; i++)
            worst = fmax(worst, fabs(yout[j * ny + i] - ex[i]) / (atol + rtol * fabs(ex[i])));
    }
    return worst;
}

static void linspace(double a, double b, int n, double *ts)
{
    for (int j = 0; j < n; j++)
        ts[j] = j == n - 1 ? b : a + (b - a) * j / (n - 1);
}

/* ---- achieved accuracy across tolerances ---- */

/* The global error at 21 output times (most of them interpolated), scaled by
 * the tolerance, stays below the problem's factor for rtol = 1e-3 ... 1e-10
 * with atol = rtol: the tolerance bounds the local error per step, and the
 * global error is its sum over the interval (here up to t = 20), amplified by
 * the problem's own sensitivity. dop853 gets 30 x more on scalar problems: its
 * blended estimate err5^2 / sqrt(err5^2 + 0.01 err3^2) nearly vanishes when the
 * single 5th-order estimate crosses zero inside a long step, and such a step
 * is accepted with ~100 x tol of true error (A3 near t = 12 at 1e-8, 987 x tol
 * in all); on systems the components average that out. */
static double accuracy_bound(const Problem *pr, NdMethod m)
{
    return pr->factor * (m == ND_DOP853 && pr->k.ny == 1 ? 30.0 : 1.0);
}

START_TEST(test_accuracy_across_tolerances)
{
    const Problem *pr = &problems[_i % N_PROBLEMS];
    NdMethod m = methods[_i / N_PROBLEMS];
    enum { NT = 21 };
    double ts[NT], yout[NT * MAX_NY];
    linspace(0.0, pr->t1, NT, ts);
    for (int k = 3; k <= 10; k++) {
        double tol = pow(10.0, -k);
        long counts[3];
        ck_assert_int_eq(solve_problem(pr, m, tol, tol, ts, NT, yout, counts), ND_OK);
        double ratio = scaled_error(pr, ts, NT, yout, tol, tol);
#ifdef CHECK_ADAPTIVE_VERBOSE
        fprintf(stderr, "%-7s %-10s tol=1e-%-2d err/tol=%8.3f steps=%7ld rejected=%5ld "
                "evals=%8ld\n", nd_method_name(m), pr->name, k, ratio, counts[0], counts[1],
                counts[2]);
#endif
        ck_assert_msg(ratio < accuracy_bound(pr, m), "%s on %s at tol 1e-%d: error %g x tol",
                      nd_method_name(m), pr->name, k, ratio);
    }
}
END_TEST

/* ---- dense output ---- */

/* The error of the interpolant at t0 + theta h after one step of h from the
 * exact y(t0) (tolerances huge so that the step is accepted as it is). */
static double one_step_dense_error(const Problem *pr, NdMethod m, double t0, double h,
                                   double theta)
{
    double ts[3] = {t0, t0 + theta * h, t0 + h}, yout[3 * MAX_NY], y0[MAX_NY], ex[MAX_NY];
    pr->exact(t0, y0);
    NdSolver *s = nd_solver_create(&pr->k, m, 1);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e6, 1e6), ND_OK);
    ck_assert_int_eq(nd_solver_set_initial_step(s, h), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 3, yout), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), 1);
    nd_solver_free(s);
    pr->exact(ts[1], ex);
    double e = 0.0;
    for (int i = 0; i < pr->k.ny; i++)
        e = fmax(e, fabs(yout[pr->k.ny + i] - ex[i]));
    return e;
}

/* An interpolant of order p* has a local error O(h^(p*+1)) inside the step:
 * halving h divides it by about 2^(p*+1) (16 bosh3, 32 dopri5 and tsit5, 256
 * dop853). On E1 (smooth, two components, no error crossing zero) the ratios
 * seen are within 15 % of that; the test allows 0.7–1.4 times. */
START_TEST(test_dense_output_order)
{
    NdMethod m = methods[_i];
    const Problem *e1 = find_problem("E1");
    double h = m == ND_DOP853 ? 0.25 : 0.1;
    double expected = ldexp(1.0, nd_tableau_get(m)->dense_order + 1);
    static const double thetas[] = {0.3, 0.5};
    for (int k = 0; k < 2; k++) {
        double err1 = one_step_dense_error(e1, m, 0.5, h, thetas[k]);
        double err2 = one_step_dense_error(e1, m, 0.5, h / 2, thetas[k]);
        double ratio = err1 / err2;
#ifdef CHECK_ADAPTIVE_VERBOSE
        fprintf(stderr, "%-7s dense theta=%.1f h=%g err=%.3e ratio=%.1f (2^(p*+1) = %g)\n",
                nd_method_name(m), thetas[k], h, err1, ratio, expected);
#endif
        ck_assert_double_gt(err2, 1e-14); /* above roundoff */
        ck_assert_msg(ratio > 0.7 * expected && ratio < 1.4 * expected,
                      "%s dense output at theta %g: ratio %g, expected %g", nd_method_name(m),
                      thetas[k], ratio, expected);
    }
}
END_TEST

/* Output times never shorten a step: 1000 outputs take exactly the steps of 2,
 * and the final state agrees bit for bit. dop853 alone pays for outputs, 3
 * evaluations in each step that holds one. */
START_TEST(test_outputs_do_not_change_steps)
{
    NdMethod m = methods[_i];
    const Problem *pr = find_problem("D3");
    enum { NT = 1000 };
    static double ts[NT], yout[NT * 4];
    double t2[2] = {0.0, pr->t1}, y2[2 * 4];
    linspace(0.0, pr->t1, NT, ts);
    long many[3], two[3];
    ck_assert_int_eq(solve_problem(pr, m, 1e-7, 1e-9, ts, NT, yout, many), ND_OK);
    ck_assert_int_eq(solve_problem(pr, m, 1e-7, 1e-9, t2, 2, y2, two), ND_OK);
    ck_assert_int_eq(many[0], two[0]);
    ck_assert_int_eq(many[1], two[1]);
    if (m == ND_DOP853) {
        ck_assert_int_gt(many[2], two[2]);
        ck_assert_int_le(many[2], two[2] + 3 * many[0]);
    } else {
        ck_assert_int_eq(many[2], two[2]);
    }
    ck_assert(memcmp(&yout[(NT - 1) * 4], &y2[4], 4 * sizeof(double)) == 0);
    ck_assert(memcmp(yout, y2, 4 * sizeof(double)) == 0);
    /* and the interpolated rows are accurate: D3's global error here is < 1e-4 */
    double ex[4];
    for (int j = 0; j < NT; j += 37) {
        pr->exact(ts[j], ex);
        for (int i = 0; i < 4; i++)
            ck_assert_double_eq_tol(yout[j * 4 + i], ex[i], 1e-4);
    }
}
END_TEST

/* ---- statistics and regressions ---- */

/* Evaluations follow from the steps: f(t0, y0) and the initial-step trial,
 * then per attempt s - 1 (FSAL) or s - 1 plus f(t + h, y_new) per accepted step
 * (dop853, whose dense stages are not used with only the endpoints). */
START_TEST(test_evaluation_count)
{
    NdMethod m = methods[_i];
    const NdTableau *tab = nd_tableau_get(m);
    const Problem *pr = find_problem("B5");
    double ts[2] = {0.0, pr->t1}, yout[2 * 3];
    long c[3];
    ck_assert_int_eq(solve_problem(pr, m, 1e-6, 1e-8, ts, 2, yout, c), ND_OK);
    long attempts = c[0] + c[1];
    long expected = 2 + (tab->stages - 1) * attempts + (tab->fsal ? 0 : c[0]);
    ck_assert_int_eq(c[2], expected);
    ck_assert_int_gt(c[0], 10);
}
END_TEST

/* Step counts for a fixed problem stay fixed: y' = 2 y t from y(0) = 3 to t = 1,
 * rtol 1e-8, atol 1e-10, recorded from this implementation (steps, rejected,
 * evaluations). A change here means the controller or a tableau changed. */
START_TEST(test_step_count_regression)
{
    static const struct { NdMethod m; long steps, rejected, evals; } expect[] = {
        {ND_BOSH3, 338, 0, 1016},
        {ND_DOPRI5, 16, 2, 110},
        {ND_TSIT5, 16, 1, 104},
        {ND_DOP853, 8, 2, 120},
    };
    const Problem *pr = find_problem("growth");
    for (int k = 0; k < N_METHODS; k++) {
        double ts[2] = {0.0, 1.0}, yout[2];
        long c[3];
        ck_assert_int_eq(solve_problem(pr, expect[k].m, 1e-8, 1e-10, ts, 2, yout, c), ND_OK);
#ifdef CHECK_ADAPTIVE_VERBOSE
        fprintf(stderr, "%-7s growth rtol 1e-8: steps %ld rejected %ld evals %ld, error %.3g\n",
                nd_method_name(expect[k].m), c[0], c[1], c[2], yout[1] - 3.0 * exp(1.0));
#endif
        ck_assert_int_eq(c[0], expect[k].steps);
        ck_assert_int_eq(c[1], expect[k].rejected);
        ck_assert_int_eq(c[2], expect[k].evals);
        ck_assert_double_eq_tol(yout[1], 3.0 * exp(1.0), 1e-6);
    }
}
END_TEST

/* ---- backward in time ---- */

/* From the exact y(t1) back to 0 through 21 decreasing output times. */
START_TEST(test_backward)
{
    static const char *names[] = {"A3", "B5", "D3", "E1", "growth", "oscillator"};
    enum { N_NAMES = sizeof names / sizeof names[0], NT = 21 };
    const Problem *pr = find_problem(names[_i % N_NAMES]);
    NdMethod m = methods[_i / N_NAMES];
    double ts[NT], yout[NT * MAX_NY], tol = 1e-8;
    linspace(pr->t1, 0.0, NT, ts);
    long c[3];
    ck_assert_int_eq(solve_problem(pr, m, tol, tol, ts, NT, yout, c), ND_OK);
    ck_assert_int_gt(c[0], 3);
    double ratio = scaled_error(pr, ts, NT, yout, tol, tol);
#ifdef CHECK_ADAPTIVE_VERBOSE
    fprintf(stderr, "%-7s %-10s backward err/tol=%.2f steps=%ld\n", nd_method_name(m), pr->name,
            ratio, c[0]);
#endif
    ck_assert_msg(ratio < accuracy_bound(pr, m), "%s backward on %s: %g x tol", nd_method_name(m),
                  pr->name, ratio);
}
END_TEST

/* ---- batches: one shared step size ---- */

START_TEST(test_batch_of_identical_samples)
{
    /* B copies of one sample take the steps of one solve: the RMS norm over
     * B * ny equal errors is the norm over ny, so every bit agrees */
    NdMethod m = methods[_i];
    const Problem *pr = find_problem("D3");
    enum { B = 5, NT = 7 };
    double ts[NT], y0[B * 4], yout[NT * B * 4], one[NT * 4];
    linspace(0.0, 7.0, NT, ts);
    for (int b = 0; b < B; b++)
        pr->exact(0.0, &y0[b * 4]);
    NdSolver *s = nd_solver_create(&pr->k, m, B);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-7, 1e-9), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, NT, yout), ND_OK);
    long batch_steps = nd_solver_get_num_steps(s);
    nd_solver_free(s);
    long c[3];
    ck_assert_int_eq(solve_problem(pr, m, 1e-7, 1e-9, ts, NT, one, c), ND_OK);
    ck_assert_int_eq(batch_steps, c[0]);
    for (int j = 0; j < NT; j++)
        for (int b = 0; b < B; b++)
            ck_assert(memcmp(&yout[(j * B + b) * 4], &one[j * 4], 4 * sizeof(double)) == 0);
}
END_TEST

/* Oscillators of amplitude A_b and phase phi_b: (A cos(t + phi), -A sin(t + phi)). */
START_TEST(test_batch_each_sample_within_tolerance)
{
    NdMethod m = methods[_i];
    enum { B = 5, NT = 11 };
    NdKernels k = KERNEL(2, rhs_osc);
    double ts[NT], y0[B * 2], yout[NT * B * 2], amp[B], phase[B], tol = 1e-8;
    linspace(0.0, 10.0, NT, ts);
    for (int b = 0; b < B; b++) {
        amp[b] = 0.1 + b, phase[b] = 0.7 * b;
        y0[2 * b] = amp[b] * cos(phase[b]);
        y0[2 * b + 1] = -amp[b] * sin(phase[b]);
    }
    NdSolver *s = nd_solver_create(&k, m, B);
    ck_assert_int_eq(nd_solver_set_tolerances(s, tol, tol), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, NT, yout), ND_OK);
    nd_solver_free(s);
    for (int j = 0; j < NT; j++)
        for (int b = 0; b < B; b++) {
            double x = amp[b] * cos(ts[j] + phase[b]), v = -amp[b] * sin(ts[j] + phase[b]);
            const double *row = &yout[(j * B + b) * 2];
            ck_assert_double_le(fabs(row[0] - x), 100.0 * tol * (1.0 + fabs(x)));
            ck_assert_double_le(fabs(row[1] - v), 100.0 * tol * (1.0 + fabs(v)));
        }
}
END_TEST

/* ---- failures ---- */

/* y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1. */
static void rhs_square(double t, const double *y, const double *p, double *dydt, int64_t B,
                       double *w)
{
    (void)t, (void)p, (void)w;
    FOR_SAMPLES(1) dydt[0] = y[0] * y[0];
}

/* The time in a message "... at t = <time>...", or NAN. */
static double message_time(const char *msg, const char *after)
{
    const char *at = strstr(msg, after);
    return at ? strtod(at + strlen(after), NULL) : NAN;
}

START_TEST(test_blowup_stops_near_singularity)
{
    NdMethod m = methods[_i];
    NdKernels k = KERNEL(1, rhs_square);
    double ts[3] = {0.0, 0.5, 2.0}, y0 = 1.0, yout[3];
    NdSolver *s = nd_solver_create(&k, m, 1);
    int st = nd_solve(s, NULL, &y0, ts, 3, yout);
    ck_assert_int_eq(st, ND_ERR_STEP_UNDERFLOW);
    ck_assert_str_eq(nd_status_name(st), "step size underflow");
    const char *msg = nd_solver_get_message(s);
    ck_assert_msg(strncmp(msg, "step size underflow at t = ", 27) == 0, "message: %s", msg);
    double t = message_time(msg, "at t = ");
    ck_assert_msg(fabs(t - 1.0) < 1e-5, "%s stopped at t = %.10g", nd_method_name(m), t);
    ck_assert_double_eq_tol(yout[1], 2.0, 1e-5);  /* y(0.5), before the trouble */
    ck_assert_double_gt(yout[2], 1e4);           /* the state where it stopped */
    ck_assert_int_lt(nd_solver_get_num_steps(s) + nd_solver_get_num_rejected(s), 5000);
    /* the solver stays usable, and a good solve clears the message */
    ts[2] = 0.9;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 3, yout), ND_OK);
    ck_assert_str_eq(nd_solver_get_message(s), "");
    ck_assert_double_eq_tol(yout[2], 10.0, 1e-3);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_max_steps)
{
    /* max_steps bounds the attempts between two output times: A1 on [0, 20]
     * needs ~30 dopri5 steps; 3 are too few for the endpoints alone, plenty
     * when an output time falls every 0.1 */
    const Problem *a1 = find_problem("A1");
    double ts[201], yout[201], y0 = 1.0;
    NdSolver *s = nd_solver_create(&a1->k, ND_DOPRI5, 1);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 3), ND_OK);
    double t2[2] = {0.0, 20.0};
    int st = nd_solve(s, NULL, &y0, t2, 2, yout);
    ck_assert_int_eq(st, ND_ERR_MAX_STEPS);
    ck_assert_str_eq(nd_status_name(st), "too many steps");
    const char *msg = nd_solver_get_message(s);
    static const char *prefix =
        "dopri5 took max_steps = 3 steps without reaching t = 20: stopped at t = ";
    ck_assert_msg(strncmp(msg, prefix, strlen(prefix)) == 0, "message: %s", msg);
    double t = message_time(msg, "stopped at t = ");
    ck_assert_double_gt(t, 0.0);
    ck_assert_double_lt(t, 20.0);
    ck_assert_double_eq_tol(yout[1], exp(-t), 1e-5); /* the state reached */
    linspace(0.0, 20.0, 201, ts);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 201, yout), ND_OK);
    ck_assert_double_eq_tol(yout[200], exp(-20.0), 1e-9);
    nd_solver_free(s);
}
END_TEST

/* nd_solver_get_next_step: A1 (y' = -y) solved on [0, 10] in two halves, the
 * second starting from the first's next step, costs fewer evaluations than the
 * second half from scratch (no initial-step trial, no small first step) and
 * agrees with the exact solution as well. 0 after a failed solve and for a
 * fixed-step method. */
START_TEST(test_next_step_continues)
{
    const Problem *a1 = find_problem("A1");
    NdSolver *s = nd_solver_create(&a1->k, ND_DOPRI5, 1);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-8, 1e-10), ND_OK);
    double first[2] = {0.0, 5.0}, second[2] = {5.0, 10.0}, y0 = 1.0, mid[2], end[2];
    ck_assert_int_eq(nd_solve(s, NULL, &y0, first, 2, mid), ND_OK);
    double h = nd_solver_get_next_step(s);
    ck_assert_double_gt(h, 0.0);
    ck_assert_double_lt(h, 5.0);
    ck_assert_int_eq(nd_solve(s, NULL, &mid[1], second, 2, end), ND_OK);
    long fresh = nd_solver_get_num_rhs_evals(s);
    ck_assert_int_eq(nd_solver_set_initial_step(s, h), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, &mid[1], second, 2, end), ND_OK);
    long carried = nd_solver_get_num_rhs_evals(s);
    ck_assert_int_lt(carried, fresh);
    ck_assert_double_eq_tol(end[1], exp(-10.0), 1e-9);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 1), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, first, 2, mid), ND_ERR_MAX_STEPS);
    ck_assert(nd_solver_get_next_step(s) == 0.0);
    nd_solver_free(s);
    s = nd_solver_create(&a1->k, ND_RK4, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, first, 2, mid), ND_OK);
    ck_assert(nd_solver_get_next_step(s) == 0.0);
    nd_solver_free(s);
}
END_TEST

/* f is finite up to t = 0.5 and NaN after: the solver retreats towards 0.5
 * with ever shorter steps and reports the NaN once h reaches roundoff. */
static void rhs_nan_after_half(double t, const double *y, const double *p, double *dydt,
                               int64_t B, double *w)
{
    (void)p, (void)w;
    FOR_SAMPLES(2) {
        dydt[0] = 1.0;
        dydt[1] = t < 0.5 ? -y[1] : NAN;
    }
}

START_TEST(test_nonfinite_rhs)
{
    NdMethod m = methods[_i];
    NdKernels k = KERNEL(2, rhs_nan_after_half);
    double ts[2] = {0.0, 1.0}, y0[4] = {0, 1, 0, 1}, yout[8];
    NdSolver *s = nd_solver_create(&k, m, 2);
    int st = nd_solve(s, NULL, y0, ts, 2, yout);
    ck_assert_int_eq(st, ND_ERR_NONFINITE);
    const char *msg = nd_solver_get_message(s);
    static const char *prefix = "state element 1 of sample 0 became nan in a step from t = 0.5; "
                                "the step size shrank to h = ";
    ck_assert_msg(strncmp(msg, prefix, strlen(prefix)) == 0, "message: %s", msg);
    ck_assert_double_eq_tol(yout[4], 0.5, 1e-12); /* the state reached: y0 = t */
    ck_assert_int_lt(nd_solver_get_num_rejected(s), 200);
    nd_solver_free(s);
}
END_TEST

static void rhs_nan(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *w)
{
    (void)t, (void)y, (void)p, (void)w;
    for (int64_t e = 0; e < 3 * B; e++)
        dydt[e] = e == 4 ? -INFINITY : 0.0;
}

START_TEST(test_nonfinite_at_start)
{
    NdKernels k = KERNEL(3, rhs_nan);
    double ts[2] = {0.0, 1.0}, y0[6] = {0}, yout[12];
    NdSolver *s = nd_solver_create(&k, ND_TSIT5, 2);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "the right-hand side is -inf at t = 0 (for state element 1 of sample 1 at "
                     "the initial state)");
    y0[2] = NAN;
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s), "the initial value of state element 2 of sample 0 is nan");
    nd_solver_free(s);
}
END_TEST

/* ---- the conformance suite's reference values ---- */

static double solve_final(const Problem *pr, NdMethod m, double rtol, double atol, double t0,
                          double t1, const double *y0, double *y1)
{
    NdSolver *s = nd_solver_create(&pr->k, m, 1);
    double ts[2] = {t0, t1}, yout[2 * MAX_NY];
    ck_assert_int_eq(nd_solver_set_tolerances(s, rtol, atol), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_OK);
    nd_solver_free(s);
    memcpy(y1, &yout[pr->k.ny], pr->k.ny * sizeof *y1);
    return y1[0];
}

START_TEST(test_reference_values)
{
    const Problem *growth = find_problem("growth");
    double ts[11], yout[11], y;
    linspace(0.0, 1.0, 11, ts);
    long c[3];
    ck_assert_int_eq(solve_problem(growth, ND_DOPRI5, 1e-10, 1e-12, ts, 11, yout, c), ND_OK);
    ck_assert(yout[0] == 3.0);
    ck_assert_double_eq_tol(yout[10], 8.154845485377136, 1e-8);
    ck_assert_double_eq_tol(yout[5], 3.852076250063224, 1e-8);
    /* backwards from x(1) = 3e */
    double y1 = 3.0 * exp(1.0);
    ck_assert_double_eq_tol(solve_final(growth, ND_DOPRI5, 1e-10, 1e-12, 1.0, 0.0, &y1, &y), 3.0,
                            1e-8);
    /* dx/dt = cos t - x from x(0) = 0, at t = 10 */
    const Problem *forced = find_problem("forced");
    double x0 = 0.0, ref = -0.6915690199477923;
    ck_assert_double_eq_tol(solve_final(forced, ND_DOPRI5, 1e-10, 1e-12, 0, 10, &x0, &y), ref,
                            1e-8);
    ck_assert_double_eq_tol(solve_final(forced, ND_BOSH3, 1e-9, 1e-12, 0, 10, &x0, &y), ref, 1e-6);
    ck_assert_double_eq_tol(solve_final(forced, ND_DOP853, 1e-12, 1e-14, 0, 10, &x0, &y), ref,
                            1e-10);
    ck_assert_double_eq_tol(solve_final(forced, ND_TSIT5, 1e-10, 1e-12, 0, 10, &x0, &y), ref,
                            1e-8);
    /* harmonic oscillator with tsit5 */
    const Problem *osc = find_problem("oscillator");
    double ys[3 * 2], t3[3] = {0.0, PI / 2, PI}, start[2] = {1.0, 0.0};
    NdSolver *s = nd_solver_create(&osc->k, ND_TSIT5, 1);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-10, 1e-12), ND_OK);
    ck_assert_int_eq(nd_solve(s, NULL, start, t3, 3, ys), ND_OK);
    nd_solver_free(s);
    ck_assert_double_eq_tol(ys[2], 0.0, 1e-8);
    ck_assert_double_eq_tol(ys[3], -1.0, 1e-8);
    ck_assert_double_eq_tol(ys[4], -1.0, 1e-8);
    ck_assert_double_eq_tol(ys[5], 0.0, 1e-8);
}
END_TEST

/* ---- API: names, settings, defaults ---- */

START_TEST(test_methods_and_settings)
{
    static const char *names[] = {"bosh3", "dopri5", "tsit5", "dop853"};
    static const int orders[] = {3, 5, 5, 8};
    for (int i = 0; i < N_METHODS; i++) {
        ck_assert_int_eq(nd_method_from_name(names[i]), methods[i]);
        ck_assert_str_eq(nd_method_name(methods[i]), names[i]);
        ck_assert_int_eq(nd_method_order(methods[i]), orders[i]);
        ck_assert_int_eq(nd_method_is_adaptive(methods[i]), 1);
    }
    ck_assert_int_eq(nd_method_is_adaptive(ND_RK4), 0);
    ck_assert_int_eq(nd_method_is_adaptive(ND_EULER), 0);
    ck_assert_int_eq(nd_method_is_adaptive(ND_METHOD_COUNT), 0);
    ck_assert_str_eq(nd_status_name(ND_ERR_NONFINITE), "non-finite state");

    const Problem *a1 = find_problem("A1");
    NdSolver *s = nd_solver_create(&a1->k, ND_DOPRI5, 1);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "dopri5 is adaptive: it takes rtol, atol and h0, not a fixed step h");
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-6, 0.0), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s), "tolerances need rtol >= 0 and atol > 0, finite; "
                                               "got rtol = 1e-06, atol = 0");
    ck_assert_int_eq(nd_solver_set_tolerances(s, -1.0, 1e-6), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_tolerances(s, NAN, 1e-6), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-6, INFINITY), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 0.0, 1e-6), ND_OK); /* pure absolute */
    ck_assert_int_eq(nd_solver_set_initial_step(s, -0.1), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_initial_step(s, NAN), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_initial_step(s, 0.0), ND_OK);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 0), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s), "max_steps must be at least 1, got 0");
    nd_solver_free(s);

    s = nd_solver_create(&a1->k, ND_RK4, 1);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-6, 1e-9), ND_ERR_ARG);
    ck_assert_str_eq(nd_solver_get_message(s), "rk4 is a fixed-step method: it takes h, not rtol "
                                               "and atol");
    ck_assert_int_eq(nd_solver_set_initial_step(s, 0.1), ND_ERR_ARG);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 10), ND_OK); /* a fixed step's cap too */
    ck_assert_int_eq(nd_solver_get_num_rejected(s), 0);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_defaults)
{
    /* without any setting: rtol 1e-6, atol 1e-9, automatic h0; the seed's
     * growth problem comes out within 100 x that */
    NdMethod m = methods[_i];
    const Problem *growth = find_problem("growth");
    double ts[2] = {0.0, 1.0}, y0 = 3.0, yout[2];
    NdSolver *s = nd_solver_create(&growth->k, m, 1);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_OK);
    double exact = 3.0 * exp(1.0);
    ck_assert_double_le(fabs(yout[1] - exact), 100.0 * (ND_DEFAULT_ATOL + ND_DEFAULT_RTOL * exact));
    ck_assert_double_gt(fabs(yout[1] - exact), 1e-14); /* it did not just solve at 1e-14 */
    nd_solver_free(s);
}
END_TEST

Suite *adaptive_suite(void)
{
    Suite *s = suite_create("adaptive");
    TCase *tc = tcase_create("tableaus");
    tcase_add_test(tc, test_tree_count);
    tcase_add_loop_test(tc, test_order_conditions, 0, N_METHODS);
    tcase_add_test(tc, test_dop853_third_order_estimate);
    tcase_add_loop_test(tc, test_dense_order_conditions, 0, N_METHODS);
    tcase_add_loop_test(tc, test_stage_loops, 0, ND_BDF); /* the explicit methods: bdf and rodas4 have no tableau */
    tcase_add_loop_test(tc, test_dense_forms_agree, 0, N_METHODS);
    suite_add_tcase(s, tc);

    tc = tcase_create("catalogue");
    tcase_set_timeout(tc, 60); /* bosh3 at rtol 1e-10 takes ~10^4 steps per problem */
    tcase_add_loop_test(tc, test_accuracy_across_tolerances, 0, N_LOOPS);
    tcase_add_loop_test(tc, test_dense_output_order, 0, N_METHODS);
    tcase_add_loop_test(tc, test_outputs_do_not_change_steps, 0, N_METHODS);
    tcase_add_loop_test(tc, test_evaluation_count, 0, N_METHODS);
    tcase_add_test(tc, test_step_count_regression);
    tcase_add_loop_test(tc, test_backward, 0, N_METHODS * 6);
    tcase_add_loop_test(tc, test_batch_of_identical_samples, 0, N_METHODS);
    tcase_add_loop_test(tc, test_batch_each_sample_within_tolerance, 0, N_METHODS);
    tcase_add_test(tc, test_reference_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_loop_test(tc, test_blowup_stops_near_singularity, 0, N_METHODS);
    tcase_add_test(tc, test_max_steps);
    tcase_add_test(tc, test_next_step_continues);
    tcase_add_loop_test(tc, test_nonfinite_rhs, 0, N_METHODS);
    tcase_add_test(tc, test_nonfinite_at_start);
    tcase_add_test(tc, test_methods_and_settings);
    tcase_add_loop_test(tc, test_defaults, 0, N_METHODS);
    suite_add_tcase(s, tc);
    return s;
}
