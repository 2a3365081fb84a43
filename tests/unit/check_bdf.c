/* Tests of the stiff solvers bdf (runtime/solve/nd_bdf.c) and rodas4
 * (runtime/solve/nd_onestep.c) with kernels compiled from .node source
 * (compile_file, the symbolic Jacobian of diff_model_jacobian,
 * jit_compile_request with jac = 1) and hand-written ones: Robertson to
 * t = 4e10, Van der Pol with mu = 1000, HIRES and OREGO against references of
 * scipy 1.10.1's Radau at rtol 1e-12 (`bench/scipy_stiff.py refs` prints
 * them; HIRES and OREGO also agree with the Bari test set's values) across rtol
 * 1e-4 ... 1e-10; a non-stiff problem with an exact solution (tolerance
 * proportionality), dense output, batches, backwards integration, failures,
 * the three gradient paths of a stiff model's loss against central finite
 * differences (bdf) and its memory, rodas4's and kvaerno5's order of one
 * step. Define CHECK_BDF_VERBOSE to print the numbers seen. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"
#include "diff.h"
#include "driver.h"
#include "nd_bdf.h"
#include "nd_grad_internal.h" /* steps and peak memory of a compute */
#include "nd_gradient.h"
#include "nd_onestep.h"

Suite *bdf_suite(void);

#ifdef CHECK_BDF_VERBOSE
#define VERBOSE(...) printf(__VA_ARGS__)
#else
#define VERBOSE(...) do { if (0) printf(__VA_ARGS__); } while (0) /* still type-checked */
#endif

enum { MAX_NY = 8, MAX_T = 12, MAX_B = 3 };

/* ---- the stiff problems, as .node source, and their references ---- */

typedef struct Ref {
    double t, y[MAX_NY];
} Ref;

typedef struct Stiff {
    const char *name;
    const char *src; /* model M */
    int nt;
    Ref ref[MAX_T];
    double atol_per_rtol; /* atol = rtol * this: each problem's scale */
    double factor;        /* the global error stays below factor * tolerance */
} Stiff;

/* Radau, rtol 1e-12, atol 1e-22 / 1e-12 / 1e-16 / 1e-14 (scipy_stiff.py refs). */
static const Stiff problems[] = {
    {"robertson",
     "model M {\n  state y[3] = [1, 0, 0]\n  param k[3] = [0.04, 3e7, 1e4]\n"
     "  dy/dt = [-k[0] * y[0] + k[2] * y[1] * y[2],\n"
     "           k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1]^2,\n"
     "           k[1] * y[1]^2]\n}\n",
     11,
     {{0, {1, 0, 0}},
      {40, {0.71582706871943069, 9.1855347645586079e-06, 0.2841637457458055}},
      {400, {0.45051866847108696, 3.2229014416742659e-06, 0.54947810862747171}},
      {4000, {0.18320225777671487, 8.9423712527761086e-07, 0.81679684798615915}},
      {40000, {0.03898337708548566, 1.6217683159098074e-07, 0.96101646073768088}},
      {400000, {0.004938274520980254, 1.9849940879545542e-08, 0.99506170562907659}},
      {4000000, {0.00051680960149318557, 2.0682944912274484e-09, 0.99948318833021077}},
      {40000000, {5.2030718441205055e-05, 2.0813357318925171e-10, 0.99994796907342465}},
      {400000000, {5.2077021035718284e-06, 2.0830915594148285e-11, 0.99999479227706511}},
      {4000000000, {5.2082766114342885e-07, 2.0833117166039174e-12, 0.99999947917025356}},
      {40000000000, {5.208345176795671e-08, 2.0833381779240618e-13, 0.99999994791633973}}},
     1e-10, 100},
    {"vdp",
     "model M {\n  state y[2] = [2, 0]\n  const mu = 1000\n"
     "  dy/dt = [y[1], mu * (1 - y[0]^2) * y[1] - y[0]]\n}\n",
     6,
     {{0, {2, 0}},
      {1, {1.9993333705059668, -0.0006670371231736695}},
      {500, {1.5967689510553695, -0.0010303911878334197}},
      {1000, {-1.8636462548115422, 0.00075354308654219688}},
      {2000, {1.7061677321790003, -0.00089280970101112214}},
      {3000, {-1.5106069367597728, 0.0011783800006971701}}},
     1, 1000},
    {"hires",
     "model M {\n  state y[8] = [1, 0, 0, 0, 0, 0, 0, 0.0057]\n"
     "  dy/dt = [-1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,\n"
     "           1.71 * y[0] - 8.75 * y[1],\n"
     "           -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],\n"
     "           8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],\n"
     "           -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],\n"
     "           -280 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],\n"
     "           280 * y[5] * y[7] - 1.81 * y[6],\n"
     "           -280 * y[5] * y[7] + 1.81 * y[6]]\n}\n",
     3,
     {{0, {1, 0, 0, 0, 0, 0, 0, 0.0057}},
      {5, {0.031651675704572363, 0.006481549531058825, 0.0045834510647476314,
           0.089743232735188389, 0.16245145375265241, 0.68504389614442041,
           0.0056467003419205233, 5.3299658079454454e-05}},
      {321.8122, {0.00073713125733256609, 0.00014424857263161832, 5.8887297409675643e-05,
                  0.0011756513432831471, 0.0023863561988313252, 0.0062389682527428034,
                  0.002849998395185759, 0.0028500016048142204}}},
     1e-4, 100},
    {"orego",
     "model M {\n  state y[3] = [1, 2, 3]\n"
     "  dy/dt = [77.27 * (y[1] + y[0] * (1 - 8.375e-6 * y[0] - y[1])),\n"
     "           (y[2] - (1 + y[0]) * y[1]) / 77.27,\n"
     "           0.161 * (y[0] - y[2])]\n}\n",
     4,
     {{0, {1, 2, 3}},
      {30, {1.0006614671804932, 1512.7789373483042, 10358.543127671832}},
      {180, {1.0197634725372868, 51.59761322947903, 1.0169857789563728}},
      {360, {1.0008148703185227, 1228.1785215499078, 132.05549428466179}}},
     1, 1000},
};
enum { N_PROBLEMS = sizeof problems / sizeof problems[0] };

static const double rtols[] = {1e-4, 1e-6, 1e-8, 1e-10};
enum { N_RTOLS = sizeof rtols / sizeof rtols[0] };

/* ---- compiling a model with its Jacobian (and vjp) ---- */

typedef struct Compiled {
    Compilation *c;
    JitModel *jit;
    NdKernels k;
    double p[8];
} Compiled;

static Compiled *compiled_new(const char *src)
{
    Compiled *x = calloc(1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    x->c = compile_file("stiff.node", src, stderr, 0);
    ck_assert_int_eq(x->c->diag.errors, 0);
    IrModel *m = sema_find_model(x->c->program, "M");
    ck_assert_ptr_nonnull(m);
    diff_model_jacobian(x->c->ir, m);
    diff_model_adjoint(x->c->ir, m);
    JitRequest req = {.vjp = 1, .jac = 1};
    x->jit = jit_compile_request(m, &req, &x->k, &x->c->diag);
    ck_assert_ptr_nonnull(x->jit);
    ck_assert_ptr_nonnull(x->k.jac);
    ck_assert_int_le(x->k.np, 8);
    return x;
}

static void compiled_free(Compiled *x)
{
    jit_free(x->jit);
    compilation_free(x->c);
    free(x);
}

/* The method the engine tests run: loop tests set it from _i (tests run one at
 * a time). */
static const NdMethod stiff_methods[] = {ND_BDF, ND_RODAS4, ND_KVAERNO5};
enum { N_STIFF = sizeof stiff_methods / sizeof stiff_methods[0] };
static NdMethod stiff_method = ND_BDF;

static NdSolver *bdf_new(const NdKernels *k, int64_t B, double rtol, double atol)
{
    NdSolver *s = nd_solver_create(k, stiff_method, B);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(nd_solver_get_message(s), "");
    ck_assert_int_eq(nd_solver_set_tolerances(s, rtol, atol), ND_OK);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 1000000), ND_OK);
    return s;
}

/* ---- (a) the stiff problems across tolerances ---- */

/* The worst |y - ref| / (atol + rtol |ref|) over every output time and element. */
static double worst_error(const Stiff *pr, const double *yout, int ny, double rtol, double atol)
{
    double worst = 0.0;
    for (int j = 1; j < pr->nt; j++)
        for (int i = 0; i < ny; i++) {
            double ref = pr->ref[j].y[i];
            worst = fmax(worst, fabs(yout[j * ny + i] - ref) / (atol + rtol * fabs(ref)));
        }
    return worst;
}

START_TEST(test_stiff_references)
{
    const Stiff *pr = &problems[_i % N_PROBLEMS];
    stiff_method = stiff_methods[_i / N_PROBLEMS];
    Compiled *x = compiled_new(pr->src);
    ck_assert_int_eq(x->k.autonomous, 1); /* none reads t: rodas4 skips df/dt */
    int ny = x->k.ny;
    double p[3] = {0.04, 3e7, 1e4}, ts[MAX_T], yout[MAX_T * MAX_NY];
    for (int j = 0; j < pr->nt; j++)
        ts[j] = pr->ref[j].t;
    for (int r = 0; r < N_RTOLS; r++) {
        double rtol = rtols[r], atol = rtol * pr->atol_per_rtol;
        NdSolver *s = bdf_new(&x->k, 1, rtol, atol);
        int st = nd_solve(s, p, pr->ref[0].y, ts, pr->nt, yout);
        ck_assert_msg(st == ND_OK, "%s rtol %g: %s", pr->name, rtol, nd_solver_get_message(s));
        double err = worst_error(pr, yout, ny, rtol, atol);
        VERBOSE("%-6s %-10s rtol %-6g err/tol %8.2f steps %6ld rejected %4ld f %6ld jac %4ld "
                "lu %5ld\n", nd_method_name(stiff_method), pr->name, rtol, err,
                nd_solver_get_num_steps(s), nd_solver_get_num_rejected(s),
                nd_solver_get_num_rhs_evals(s),
                nd_bdf_get_num_jac_evals(s) + nd_onestep_get_num_jac_evals(s),
                nd_bdf_get_num_lu(s) + nd_onestep_get_num_lu(s));
        ck_assert_msg(err < pr->factor, "%s at rtol %g: error %g x tolerance", pr->name, rtol,
                      err);
        /* a tighter tolerance takes more steps, and the work stays sane */
        ck_assert_int_lt(nd_solver_get_num_steps(s), stiff_method == ND_BDF ? 20000 : 40000);
        nd_solver_free(s);
    }
    compiled_free(x);
}
END_TEST

/* ---- (b) a non-stiff problem with an exact solution ---- */

/* y' = cos(t) y, y(0) = 1: y = exp(sin t). Hand-written, with its Jacobian. */
static void osc_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *w)
{
    (void)p, (void)w;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = cos(t) * y[b];
}

static void osc_jac(double t, const double *y, const double *p, const double *a,
                    const double *d, double *out0, double *out1, int64_t B, double *w)
{
    (void)y, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++)
        out0[b] = cos(t);
}

static const NdKernels osc = {.ny = 1, .rhs = osc_rhs, .jac = osc_jac};

static double osc_error(double rtol, int nt, long *steps, double *last)
{
    NdSolver *s = bdf_new(&osc, 1, rtol, rtol);
    double ts[64], yout[64], y0 = 1.0, worst = 0.0;
    for (int j = 0; j < nt; j++)
        ts[j] = 10.0 * j / (nt - 1);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, nt, yout), ND_OK);
    for (int j = 0; j < nt; j++)
        worst = fmax(worst, fabs(yout[j] - exp(sin(ts[j]))));
    *steps = nd_solver_get_num_steps(s);
    *last = yout[nt - 1];
    nd_solver_free(s);
    return worst;
}

/* The global error falls with the tolerance about proportionally (an
 * order-k error per step and steps ~ tol^(-1/(k+1)) make it ~ tol^(k/(k+1))):
 * over four decades it must fall by 2.4 to 5 decades and stay within 50 tol,
 * and the steps grow as tol^(-1/(k+1)) at the orders used (bdf 4-5: about 5x;
 * rodas4, whose step follows its order-3 estimate: about 10x). */
START_TEST(test_tolerance_proportionality)
{
    stiff_method = stiff_methods[_i];
    long steps[2];
    double last, e4 = osc_error(1e-4, 2, &steps[0], &last);
    double e8 = osc_error(1e-8, 2, &steps[1], &last);
    double slope = log10(e4 / e8) / 4.0;
    VERBOSE("osc: err %.3e at 1e-4 (%ld steps), %.3e at 1e-8 (%ld steps), slope %.2f\n", e4,
            steps[0], e8, steps[1], slope);
    ck_assert_double_gt(slope, 0.6);
    ck_assert_double_lt(slope, 1.25);
    ck_assert_double_lt(e4, 50 * 1e-4);
    ck_assert_double_lt(e8, 50 * 1e-8);
    static const int growth[N_STIFF][2] = {{3, 8}, {6, 16}, {3, 12}};
    ck_assert_int_gt(steps[1], growth[_i][0] * steps[0]);
    ck_assert_int_lt(steps[1], growth[_i][1] * steps[0]);
}
END_TEST

/* ---- (c) dense output ---- */

/* 60 output times are interpolated from the history, within 300 tol of the
 * exact solution (the global error: scipy's BDF makes 100 tol on this problem
 * at this tolerance), and do not change the steps taken. */
START_TEST(test_dense_output)
{
    stiff_method = ND_BDF;
    long steps2, steps60;
    double last2, last60;
    osc_error(1e-7, 2, &steps2, &last2);
    double err = osc_error(1e-7, 60, &steps60, &last60);
    VERBOSE("dense output: err %.3e, steps %ld and %ld\n", err, steps2, steps60);
    ck_assert_int_eq(steps2, steps60);
    ck_assert(last2 == last60);
    ck_assert_double_lt(err, 300 * 1e-7);
}
END_TEST

/* ---- (d) batches and direction ---- */

/* Robertson, hand-written, sample b's rates scaled by rob_base + rob_spread b
 * (tests run one at a time). */
static double rob_base = 1.0, rob_spread = 0.0;

static void rob_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *w)
{
    (void)t, (void)p, (void)w;
    for (int64_t b = 0; b < B; b++) {
        const double *x = y + 3 * b;
        double s = rob_base + rob_spread * (double)b;
        dydt[3 * b] = s * (-0.04 * x[0] + 1e4 * x[1] * x[2]);
        dydt[3 * b + 1] = s * (0.04 * x[0] - 1e4 * x[1] * x[2] - 3e7 * x[1] * x[1]);
        dydt[3 * b + 2] = s * 3e7 * x[1] * x[1];
    }
}

static void rob_jac(double t, const double *y, const double *p, const double *a,
                    const double *d, double *J, double *out1, int64_t B, double *w)
{
    (void)t, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++) {
        const double *x = y + 3 * b;
        double s = rob_base + rob_spread * (double)b;
        double rows[9] = {-0.04, 1e4 * x[2], 1e4 * x[1], 0.04, -1e4 * x[2] - 6e7 * x[1],
                          -1e4 * x[1], 0, 6e7 * x[1], 0};
        for (int i = 0; i < 9; i++)
            J[9 * b + i] = s * rows[i];
    }
}

static const NdKernels rob = {.ny = 3, .rhs = rob_rhs, .jac = rob_jac};

/* Three rate sets in one batch (one shared step size): each sample within
 * the tolerance of its own solve. */
START_TEST(test_batch_each_sample)
{
    stiff_method = stiff_methods[_i];
    double ts[2] = {0, 1e4}, y0[9] = {1, 0, 0, 1, 0, 0, 1, 0, 0}, yb[18], y1[6];
    rob_base = 1.0, rob_spread = 0.5;
    NdSolver *s = bdf_new(&rob, 3, 1e-7, 1e-14);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yb), ND_OK);
    nd_solver_free(s);
    for (int b = 0; b < 3; b++) {
        rob_base = 1.0 + 0.5 * b, rob_spread = 0.0;
        s = bdf_new(&rob, 1, 1e-7, 1e-14);
        ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, y1), ND_OK);
        nd_solver_free(s);
        for (int i = 0; i < 3; i++)
            ck_assert_double_eq_tol(yb[9 + 3 * b + i], y1[3 + i], 1e-5 * fabs(y1[3 + i]) + 1e-12);
    }
    rob_base = 1.0;
}
END_TEST

/* A batch of three copies steps exactly as one sample (the batch mean of
 * nd_adaptive.c's norm, one LU per sample). */
START_TEST(test_batch_of_copies)
{
    stiff_method = stiff_methods[_i];
    double ts[3] = {0, 40, 4e5}, y0[9] = {1, 0, 0, 1, 0, 0, 1, 0, 0}, yb[27], y1[9];
    rob_base = 1.0, rob_spread = 0.0;
    NdSolver *s = bdf_new(&rob, 1, 1e-6, 1e-12);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 3, y1), ND_OK);
    long steps = nd_solver_get_num_steps(s);
    nd_solver_free(s);
    s = bdf_new(&rob, 3, 1e-6, 1e-12);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 3, yb), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), steps);
    nd_solver_free(s);
    for (int j = 0; j < 3; j++)
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 3; i++)
                ck_assert(yb[(j * 3 + b) * 3 + i] == y1[j * 3 + i]);
}
END_TEST

/* Backwards in time on the exact problem: from y(10) back to y(0) = 1. */
START_TEST(test_backward)
{
    stiff_method = stiff_methods[_i];
    NdSolver *s = bdf_new(&osc, 1, 1e-8, 1e-10);
    double ts[3] = {10, 4, 0}, y0 = exp(sin(10.0)), yout[3];
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 3, yout), ND_OK);
    ck_assert_double_eq_tol(yout[1], exp(sin(4.0)), 1e-6);
    ck_assert_double_eq_tol(yout[2], 1.0, 1e-6);
    nd_solver_free(s);
}
END_TEST

/* ---- (e) failures ---- */

/* y' = y^2 from y(0) = 1 blows up at t = 1. */
static void blow_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *w)
{
    (void)t, (void)p, (void)w;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = y[b] * y[b];
}

static void blow_jac(double t, const double *y, const double *p, const double *a,
                     const double *d, double *J, double *out1, int64_t B, double *w)
{
    (void)t, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++)
        J[b] = 2.0 * y[b];
}

static void nan_jac(double t, const double *y, const double *p, const double *a,
                    const double *d, double *J, double *out1, int64_t B, double *w)
{
    (void)t, (void)y, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++)
        J[b] = NAN;
}

START_TEST(test_failures)
{
    stiff_method = ND_BDF;
    double ts[2] = {0, 2}, y0 = 1.0, yout[2];
    /* no Jacobian: said at create, and every solve refuses */
    NdKernels k = {.ny = 1, .rhs = blow_rhs};
    NdSolver *s = nd_solver_create(&k, ND_BDF, 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "Jacobian"));
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "jac kernel"));
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_ERR_ARG); /* bdf takes rtol, not h */
    nd_solver_free(s);
    /* the blow-up stops near t = 1 with a step-size or non-finite failure */
    k.jac = blow_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    int st = nd_solve(s, NULL, &y0, ts, 2, yout);
    VERBOSE("blow-up: %s\n", nd_solver_get_message(s));
    ck_assert(st == ND_ERR_STEP_UNDERFLOW || st == ND_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "t = 0.99"));
    /* max_steps */
    ck_assert_int_eq(nd_solver_set_max_steps(s, 5), ND_OK);
    ts[1] = 0.9;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_MAX_STEPS);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "max_steps = 5"));
    nd_solver_free(s);
    /* a Jacobian that ruins Newton's iteration */
    k.jac = nan_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_CONVERGENCE);
    ck_assert_str_eq(nd_status_name(ND_ERR_CONVERGENCE), "newton iteration failed");
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), "Newton"));
    nd_solver_free(s);
    /* a non-finite start */
    k.jac = blow_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    y0 = NAN;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_NONFINITE);
    nd_solver_free(s);
}
END_TEST

START_TEST(test_method_name)
{
    ck_assert_int_eq(nd_method_from_name("bdf"), ND_BDF);
    ck_assert_str_eq(nd_method_name(ND_BDF), "bdf");
    ck_assert_int_eq(nd_method_is_adaptive(ND_BDF), 1);
    ck_assert_int_eq(nd_method_is_implicit(ND_BDF), 1);
    ck_assert_int_eq(nd_method_is_implicit(ND_DOPRI5), 0);
    ck_assert_int_eq(nd_method_order(ND_BDF), 5);
    ck_assert_int_eq(nd_method_from_name("rodas4"), ND_RODAS4);
    ck_assert_str_eq(nd_method_name(ND_RODAS4), "rodas4");
    ck_assert_int_eq(nd_method_is_adaptive(ND_RODAS4), 1);
    ck_assert_int_eq(nd_method_is_implicit(ND_RODAS4), 1);
    ck_assert_int_eq(nd_method_order(ND_RODAS4), 4);
    ck_assert_int_eq(nd_method_from_name("kvaerno5"), ND_KVAERNO5);
    ck_assert_str_eq(nd_method_name(ND_KVAERNO5), "kvaerno5");
    ck_assert_int_eq(nd_method_is_adaptive(ND_KVAERNO5), 1);
    ck_assert_int_eq(nd_method_is_implicit(ND_KVAERNO5), 1);
    ck_assert_int_eq(nd_method_order(ND_KVAERNO5), 5);
    ck_assert_int_eq(nd_method_from_name("radau5"), -1);
}
END_TEST

/* ---- (f) the one-step methods' coefficients: the order of one step ---- */

/* The error (summed over the ny elements) of one step of h of method from y0 at
 * t = 0 (h0 = h, tolerances loose enough to accept it), against exact[ny]. */
static double one_step_error(NdMethod method, const NdKernels *k, const double *y0,
                             const double *exact, double h)
{
    enum { MAX_ONE = 2 };
    NdSolver *s = nd_solver_create(k, method, 1);
    ck_assert_int_eq(nd_solver_set_tolerances(s, 1.0, 1.0), ND_OK);
    ck_assert_int_eq(nd_solver_set_initial_step(s, h), ND_OK);
    double ts[2] = {0, h}, yout[2 * MAX_ONE], err = 0.0;
    ck_assert_int_le(k->ny, MAX_ONE);
    ck_assert_int_eq(nd_solve(s, NULL, y0, ts, 2, yout), ND_OK);
    ck_assert_int_eq(nd_solver_get_num_steps(s), 1);
    nd_solver_free(s);
    for (int i = 0; i < k->ny; i++)
        err += fabs(yout[k->ny + i] - exact[i]);
    return err;
}

/* rodas4 on y' = cos(t) y from y(0) = 1: y = exp(sin t). */
static double rodas4_one_step(double h)
{
    double y0 = 1.0, exact = exp(sin(h));
    return one_step_error(ND_RODAS4, &osc, &y0, &exact, h);
}

/* Order 4 makes a step's local error O(h^5): halving h divides it by ~32. A
 * wrong coefficient (or a wrong df/dt term: this f reads t) drops the order.
 * (From h = 0.4 down the ratios seen are 94, 66, 50, 41, 36: the higher terms
 * fade by h = 0.05.) */
START_TEST(test_rodas4_order)
{
    double e1 = rodas4_one_step(0.05), e2 = rodas4_one_step(0.025);
    VERBOSE("rodas4 one step: %.3e -> %.3e (ratio %.1f)\n", e1, e2, e1 / e2);
    ck_assert_double_gt(e1 / e2, 28.0);
    ck_assert_double_lt(e1 / e2, 48.0);
}
END_TEST

/* y' = [[-1, 2], [-2, -1]] y: linear with a constant Jacobian, so kvaerno5's
 * Newton iterations are exact after one correction and a step's error is the
 * method's alone. y(t) = e^-t [cos 2t, -sin 2t] from [1, 0]. */
static void rot_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                    double *w)
{
    (void)t, (void)p, (void)w;
    for (int64_t b = 0; b < B; b++) {
        dydt[2 * b] = -y[2 * b] + 2 * y[2 * b + 1];
        dydt[2 * b + 1] = -2 * y[2 * b] - y[2 * b + 1];
    }
}

static void rot_jac(double t, const double *y, const double *p, const double *a,
                    const double *d, double *J, double *out1, int64_t B, double *w)
{
    (void)t, (void)y, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++) {
        J[4 * b] = -1, J[4 * b + 1] = 2;
        J[4 * b + 2] = -2, J[4 * b + 3] = -1;
    }
}

static double kvaerno5_one_step(double h)
{
    static const NdKernels rot = {.ny = 2, .rhs = rot_rhs, .jac = rot_jac, .autonomous = 1};
    double y0[2] = {1, 0}, exact[2] = {exp(-h) * cos(2 * h), -exp(-h) * sin(2 * h)};
    return one_step_error(ND_KVAERNO5, &rot, y0, exact, h);
}

/* Order 5: halving h divides a step's error by ~64 (seen from h = 0.8 down:
 * 24, 53, 62, 53, 59); order 4 would give ~32. */
START_TEST(test_kvaerno5_order)
{
    double e1 = kvaerno5_one_step(0.2), e2 = kvaerno5_one_step(0.1);
    VERBOSE("kvaerno5 one step: %.3e -> %.3e (ratio %.1f)\n", e1, e2, e1 / e2);
    ck_assert_double_gt(e1 / e2, 45.0);
    ck_assert_double_lt(e1 / e2, 80.0);
}
END_TEST

/* Every output time is a step end: 60 outputs on [0, 10] take at least 59
 * steps, and each is as accurate as a step (where an interpolant would be
 * much worse on a stiff problem: Prothero-Robinson, y = cos t exactly). */
static void pr_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                   double *w)
{
    (void)p, (void)w;
    for (int64_t b = 0; b < B; b++)
        dydt[b] = -1e4 * (y[b] - cos(t)) - sin(t);
}

static void pr_jac(double t, const double *y, const double *p, const double *a,
                   const double *d, double *J, double *out1, int64_t B, double *w)
{
    (void)t, (void)y, (void)p, (void)a, (void)d, (void)out1, (void)w;
    for (int64_t b = 0; b < B; b++)
        J[b] = -1e4;
}

START_TEST(test_onestep_outputs_are_steps)
{
    NdKernels k = {.ny = 1, .rhs = pr_rhs, .jac = pr_jac};
    stiff_method = _i ? ND_KVAERNO5 : ND_RODAS4;
    NdSolver *s = bdf_new(&k, 1, 1e-6, 1e-9);
    double ts[60], yout[60], y0 = 1.0, worst = 0.0;
    for (int j = 0; j < 60; j++)
        ts[j] = 10.0 * j / 59;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 60, yout), ND_OK);
    for (int j = 0; j < 60; j++)
        worst = fmax(worst, fabs(yout[j] - cos(ts[j])));
    VERBOSE("%s Prothero-Robinson: worst %.3e over 60 outputs, %ld steps\n",
            nd_method_name(stiff_method), worst, nd_solver_get_num_steps(s));
    ck_assert_int_ge(nd_solver_get_num_steps(s), 59);
    ck_assert_double_lt(worst, 1e-6);
    nd_solver_free(s);
}
END_TEST

/* A model that does not read t (the kernel table says so) skips df/dt: the
 * same numbers, bit for bit (the difference quotient is exactly 0 there),
 * with one evaluation fewer per step. */
START_TEST(test_rodas4_autonomous)
{
    NdKernels flagged = rob;
    flagged.autonomous = 1;
    double ts[3] = {0, 40, 4e5}, y0[3] = {1, 0, 0}, ya[9], yb[9];
    rob_base = 1.0, rob_spread = 0.0;
    stiff_method = ND_RODAS4;
    NdSolver *a = bdf_new(&rob, 1, 1e-6, 1e-12), *b = bdf_new(&flagged, 1, 1e-6, 1e-12);
    ck_assert_int_eq(nd_solve(a, NULL, y0, ts, 3, ya), ND_OK);
    ck_assert_int_eq(nd_solve(b, NULL, y0, ts, 3, yb), ND_OK);
    ck_assert(memcmp(ya, yb, sizeof ya) == 0);
    long steps = nd_solver_get_num_steps(a);
    ck_assert_int_eq(nd_solver_get_num_steps(b), steps);
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(a) - nd_solver_get_num_rhs_evals(b), steps);
    nd_solver_free(a);
    nd_solver_free(b);
}
END_TEST

START_TEST(test_onestep_failures)
{
    double ts[2] = {0, 2}, y0 = 1.0, yout[2];
    stiff_method = _i ? ND_KVAERNO5 : ND_RODAS4;
    const char *name = nd_method_name(stiff_method);
    char want[80];
    NdKernels k = {.ny = 1, .rhs = blow_rhs};
    NdSolver *s = nd_solver_create(&k, stiff_method, 1);
    ck_assert_ptr_nonnull(s);
    snprintf(want, sizeof want, "%s needs the model's Jacobian", name);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), want));
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_UNSUPPORTED);
    ck_assert_int_eq(nd_solver_set_step(s, 0.1), ND_ERR_ARG);
    /* gradients follow bdf's steps; systems (the adjoint's) have no Jacobian kernel */
    k.vjp = blow_jac;
    ck_assert_ptr_null(nd_gradient_create(&k, s, ND_GRAD_ADJOINT, 1, 2));
    ck_assert_ptr_null(nd_gradient_create(&k, s, ND_GRAD_BACKPROP, 1, 2));
    nd_solver_free(s);
    ck_assert_ptr_null(nd_solver_create_system(stiff_method, 2, NULL, NULL));
    /* the blow-up stops at t = 1 (the implicit steps stay finite into the
     * singularity, so it stops on the step size there) */
    k.jac = blow_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    int st = nd_solve(s, NULL, &y0, ts, 2, yout);
    VERBOSE("%s blow-up: %s\n", name, nd_solver_get_message(s));
    ck_assert(st == ND_ERR_STEP_UNDERFLOW || st == ND_ERR_NONFINITE);
    const char *at = strstr(nd_solver_get_message(s), "at t = ");
    ck_assert_ptr_nonnull(at);
    ck_assert_double_eq_tol(strtod(at + strlen("at t = "), NULL), 1.0, 1e-3);
    ck_assert_int_eq(nd_solver_set_max_steps(s, 5), ND_OK);
    ts[1] = 0.9;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_MAX_STEPS);
    snprintf(want, sizeof want, "%s took max_steps = 5", name);
    ck_assert_ptr_nonnull(strstr(nd_solver_get_message(s), want));
    nd_solver_free(s);
    /* a Jacobian of NaN: no step size helps, so it fails at once */
    k.jac = nan_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_NONFINITE);
    ck_assert_str_eq(nd_solver_get_message(s),
                     "the Jacobian is nan at t = 0 (d f[0] / d y[0] of sample 0)");
    ck_assert_int_eq(nd_solver_get_num_rejected(s), 0);
    nd_solver_free(s);
    k.jac = blow_jac;
    s = bdf_new(&k, 1, 1e-6, 1e-9);
    y0 = NAN;
    ck_assert_int_eq(nd_solve(s, NULL, &y0, ts, 2, yout), ND_ERR_NONFINITE);
    nd_solver_free(s);
}
END_TEST

/* ---- (f) gradients of a stiff model's loss ---- */

/* Robertson with its rates as parameters; L = sum over t_j in {0, 1, 10, 100}
 * of (y0 - 0.5)^2 + (1e4 y1)^2 + y2^2, which weighs the fast, tiny y1. */
static const double grad_ts[4] = {0, 1, 10, 100};

static int rob_loss(void *ctx, int j, double t, const double *y, const double *p, double *L,
                    double *gy, double *gp)
{
    (void)ctx, (void)j, (void)t, (void)p, (void)gp;
    double r0 = y[0] - 0.5, r1 = 1e4 * y[1];
    *L += r0 * r0 + r1 * r1 + y[2] * y[2];
    gy[0] = 2 * r0, gy[1] = 2e4 * r1, gy[2] = 2 * y[2];
    return 0;
}

static double rob_forward_loss(NdSolver *s, const double *p, const double *y0)
{
    double yout[12], L = 0, gy[3];
    int st = nd_solve(s, p, y0, grad_ts, 4, yout);
    ck_assert_msg(st == ND_OK, "%s", nd_solver_get_message(s));
    for (int j = 0; j < 4; j++)
        rob_loss(NULL, j, grad_ts[j], yout + 3 * j, p, &L, gy, NULL);
    return L;
}

/* Central differences of a tight bdf solve (rtol 1e-11): steps of 1e-4
 * relative keep its truncation (~1e-8) and the solve's noise (~1e-11 / 1e-4)
 * far below the 1e-5 the paths are held to (they agree to 1e-6 at rtol 1e-8). */
static void rob_fd(const NdKernels *k, const double *p0, const double *y00, double *fd)
{
    NdSolver *s = bdf_new(k, 1, 1e-11, 1e-18);
    double p[3], y0[3];
    for (int i = 0; i < 6; i++) {
        memcpy(p, p0, sizeof p);
        memcpy(y0, y00, sizeof y0);
        double *v = i < 3 ? &p[i] : &y0[i - 3], v0 = *v, eps = 1e-4 * fmax(fabs(v0), 1e-2);
        *v = v0 + eps;
        double Lp = rob_forward_loss(s, p, y0);
        *v = v0 - eps;
        double Lm = rob_forward_loss(s, p, y0);
        fd[i] = (Lp - Lm) / (2 * eps);
    }
    nd_solver_free(s);
}

START_TEST(test_gradients_vs_fd)
{
    stiff_method = ND_BDF;
    Compiled *x = compiled_new(problems[0].src);
    double p[3] = {0.04, 3e7, 1e4}, y0[3] = {1, 0, 0}, fd[6];
    rob_fd(&x->k, p, y0, fd);
    NdLoss loss = {.nt = 4, .ts = grad_ts, .fn = rob_loss};
    const NdGradMethod gms[3] = {ND_GRAD_ADJOINT, ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT};
    double got[3][6];
    for (int m = 0; m < 3; m++) {
        NdSolver *tmpl = bdf_new(&x->k, 1, 1e-8, 1e-14);
        NdGradient *g = nd_gradient_create(&x->k, tmpl, gms[m], 1, 4);
        ck_assert_ptr_nonnull(g);
        nd_solver_free(tmpl);
        double L, *gp = got[m], *gy = got[m] + 3;
        int st = nd_gradient_compute(g, p, y0, &loss, &L, gp, gy);
        ck_assert_msg(st == ND_OK, "path %d: %s", m, nd_gradient_get_message(g));
        for (int i = 0; i < 6; i++) {
            /* p spans 0.04 ... 3e7: each element relative to itself */
            double rel = fabs(got[m][i] - fd[i]) / fmax(fabs(fd[i]), 1e-6);
            VERBOSE("path %d grad[%d] = %.10g fd %.10g rel %.2e\n", m, i, got[m][i], fd[i], rel);
            ck_assert_msg(rel < 1e-5, "path %d, element %d: %.10g vs fd %.10g", m, i, got[m][i],
                          fd[i]);
        }
        nd_gradient_free(g);
    }
    /* backprop and checkpoint differentiate the same steps: equal to rounding */
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(got[1][i], got[2][i], 1e-9 * fabs(got[1][i]) + 1e-300);
    compiled_free(x);
}
END_TEST

/* The compiled Jacobian matches the hand-written one. */
START_TEST(test_compiled_jacobian)
{
    stiff_method = ND_BDF;
    Compiled *x = compiled_new(problems[0].src);
    double p[3] = {0.04, 3e7, 1e4}, y[3] = {0.7, 2e-5, 0.3}, J[9], Jh[9];
    double *work = calloc(nd_kernels_work_size(&x->k, 1) + 1, sizeof *work);
    x->k.jac(0.0, y, p, NULL, NULL, J, NULL, 1, work);
    rob_base = 1.0, rob_spread = 0.0;
    rob_jac(0.0, y, NULL, NULL, NULL, Jh, NULL, 1, NULL);
    for (int i = 0; i < 9; i++)
        ck_assert_double_eq_tol(J[i], Jh[i], 1e-12 * fabs(Jh[i]) + 1e-15);
    free(work);
    compiled_free(x);
}
END_TEST

/* The bdf adjoint's memory: it replays the forward steps between checkpoints,
 * so what it keeps grows as sqrt(steps), not as the steps. Robertson's loss at
 * rtol 1e-3 and at rtol 1e-10 (71 and 759 steps): the peak tape and checkpoint
 * doubles grow 3.1x (a tape of every step would grow 10.7x), and the two
 * gradients agree to the looser one's accuracy. */
START_TEST(test_adjoint_memory)
{
    stiff_method = ND_BDF;
    Compiled *x = compiled_new(problems[0].src);
    double p[3] = {0.04, 3e7, 1e4}, y0[3] = {1, 0, 0};
    NdLoss loss = {.nt = 4, .ts = grad_ts, .fn = rob_loss};
    const double rtol[2] = {1e-3, 1e-10};
    long steps[2];
    size_t peak[2];
    double L, gp[2][3], gy[3];
    for (int r = 0; r < 2; r++) {
        NdSolver *tmpl = bdf_new(&x->k, 1, rtol[r], rtol[r] * 1e-6);
        NdGradient *g = nd_gradient_create(&x->k, tmpl, ND_GRAD_ADJOINT, 1, 4);
        nd_solver_free(tmpl);
        ck_assert_int_eq(nd_gradient_compute(g, p, y0, &loss, &L, gp[r], gy), ND_OK);
        steps[r] = g->num_steps;
        peak[r] = g->peak_extra;
        nd_gradient_free(g);
    }
    double step_ratio = (double)steps[1] / steps[0], peak_ratio = (double)peak[1] / peak[0];
    VERBOSE("bdf adjoint memory: %ld -> %ld steps (%.1fx), peak %zu -> %zu doubles (%.1fx)\n",
            steps[0], steps[1], step_ratio, peak[0], peak[1], peak_ratio);
    ck_assert_double_gt(step_ratio, 8.0);
    ck_assert_double_lt(peak_ratio, 5.0);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(gp[1][i], gp[0][i], 1e-2 * fabs(gp[1][i]) + 1e-12);
    compiled_free(x);
}
END_TEST

Suite *bdf_suite(void)
{
    Suite *s = suite_create("bdf");
    TCase *tc = tcase_create("stiff");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_stiff_references, 0, N_PROBLEMS * N_STIFF);
    tcase_add_test(tc, test_compiled_jacobian);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("engine");
    tcase_add_loop_test(te, test_tolerance_proportionality, 0, N_STIFF);
    tcase_add_test(te, test_dense_output); /* bdf: rodas4 steps onto outputs instead */
    tcase_add_loop_test(te, test_batch_each_sample, 0, N_STIFF);
    tcase_add_loop_test(te, test_batch_of_copies, 0, N_STIFF);
    tcase_add_loop_test(te, test_backward, 0, N_STIFF);
    tcase_add_test(te, test_failures);
    tcase_add_test(te, test_method_name);
    tcase_add_test(te, test_rodas4_order);
    tcase_add_loop_test(te, test_onestep_outputs_are_steps, 0, 2);
    tcase_add_test(te, test_kvaerno5_order);
    tcase_add_test(te, test_rodas4_autonomous);
    tcase_add_loop_test(te, test_onestep_failures, 0, 2);
    suite_add_tcase(s, te);
    TCase *tg = tcase_create("gradients");
    tcase_set_timeout(tg, 120);
    tcase_add_test(tg, test_gradients_vs_fd);
    tcase_add_test(tg, test_adjoint_memory);
    suite_add_tcase(s, tg);
    return s;
}
