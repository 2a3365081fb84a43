/* Per-sample step control against the shared step (nd_solver_set_step_control):
 * a batch of 1000 pendulums, theta'' = -sin theta, one of them (sample 0) at
 * theta0 = 3.1, near upright, the others at small angles, over t in [0, 10]
 * with 11 output times: once at 0.05 to 0.5 rad, where relative error control
 * makes every sample about as hard as the outlier, and once at 0.001 to 0.01,
 * where atol governs the easy ones and the outlier is the hard one. dopri5 and bdf at rtol 1e-8, atol 1e-10,
 * with the kernels JIT-compiled from .node source (rhs and symbolic Jacobian).
 * For each: the steps and rejections, the kernel calls and the sample
 * evaluations they make (calls x samples per call), the median wall time, and
 * the largest error over the output times of the outlier and of the easy
 * samples against dop853 at rtol 1e-13 per sample (and the outlier's solved
 * alone, which per-sample mode reproduces bit for bit). Everything is created
 * once; times are medians of rounds. Run: cmake --build build --target
 * bench_per_sample && build/bench_per_sample. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_timing.h"
#include "diff.h"
#include "driver.h"
#include "llvm_jit.h"
#include "nd_gradient.h"
#include "nd_solver.h"

enum { B = 1000, NY = 2, NT = 11, ROUNDS = 5 };

static const char src[] =
    "model Pend { state theta; state omega = 0; param g = 1\n"
    "  dtheta/dt = omega\n"
    "  domega/dt = -g * sin(theta) }\n";

static double ts[NT], yinit[B * NY], ref[NT * B * NY], out[NT * B * NY], solo[NT * NY];
static const double p[1] = {1.0};

static NdSolver *make(const NdKernels *k, NdMethod m, int64_t nb, NdStepControl c, double rtol,
                      double atol)
{
    NdSolver *s = nd_solver_create(k, m, nb);
    if (!s || nd_solver_set_step_control(s, c) || nd_solver_set_tolerances(s, rtol, atol)) {
        fprintf(stderr, "bench_per_sample: %s\n", s ? nd_solver_get_message(s) : "no solver");
        exit(1);
    }
    return s;
}

static void solve(NdSolver *s, const double *y, double *yout)
{
    if (nd_solve(s, p, y, ts, NT, yout)) {
        fprintf(stderr, "bench_per_sample: %s\n", nd_solver_get_message(s));
        exit(1);
    }
}

/* The largest |y - ref| over the output times and both elements of sample b
 * (rows of nb samples in y, of B in ref). */
static double sample_error(const double *y, int64_t nb, int64_t yb, int64_t b)
{
    double worst = 0.0;
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < NY; i++)
            worst = fmax(worst, fabs(y[(j * nb + yb) * NY + i] - ref[(j * B + b) * NY + i]));
    return worst;
}

static double median_ms(NdSolver *s)
{
    double ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s();
        solve(s, yinit, out);
        ms[r] = 1e3 * (now_s() - t0);
    }
    return median(ms, ROUNDS);
}

static void report(const NdKernels *k, NdMethod m, NdStepControl c)
{
    NdSolver *s = make(k, m, B, c, 1e-8, 1e-10);
    double ms = median_ms(s);
    long calls = nd_solver_get_num_rhs_evals(s);
    long evals = c == ND_STEP_PER_SAMPLE ? calls : calls * B;
    double easy = 0.0;
    for (int64_t b = 1; b < B; b++)
        easy = fmax(easy, sample_error(out, B, b, b));
    printf("%-7s %-10s %8ld %6ld %9ld %10ld %9.2f %11.2e %11.2e %11.2e\n", nd_method_name(m),
           c == ND_STEP_PER_SAMPLE ? "per_sample" : "shared", nd_solver_get_num_steps(s),
           nd_solver_get_num_rejected(s), calls, evals, ms, sample_error(out, B, 0, 0),
           sample_error(out, B, 1, 1), easy);
    nd_solver_free(s);
}

/* The outlier solved alone: its error, and whether the per-sample batch's
 * rows of it are the same doubles. */
static void report_solo(const NdKernels *k, NdMethod m)
{
    NdSolver *one = make(k, m, 1, ND_STEP_SHARED, 1e-8, 1e-10);
    NdSolver *per = make(k, m, B, ND_STEP_PER_SAMPLE, 1e-8, 1e-10);
    solve(one, yinit, solo);
    solve(per, yinit, out);
    int same = 1;
    for (int j = 0; j < NT; j++)
        same = same && memcmp(out + j * B * NY, solo + j * NY, NY * sizeof *solo) == 0;
    printf("%-7s outlier alone: %ld steps, error %.2e; per_sample batch's outlier rows %s\n",
           nd_method_name(m), nd_solver_get_num_steps(one), sample_error(solo, 1, 0, 0),
           same ? "identical" : "DIFFERENT");
    nd_solver_free(one);
    nd_solver_free(per);
}

/* One table: sample 0 at 3.1, the others at amax times 0.1 to 1 (spread
 * evenly), released at rest. */
static void scenario(const NdKernels *k, double amax)
{
    for (int b = 0; b < B; b++) {
        yinit[b * NY] = b == 0 ? 3.1 : amax * (0.1 + 0.9 * (b - 1) / (B - 2));
        yinit[b * NY + 1] = 0.0;
    }
    NdSolver *r = make(k, ND_DOP853, B, ND_STEP_PER_SAMPLE, 1e-13, 1e-15);
    solve(r, yinit, ref);
    nd_solver_free(r);
    printf("sample 0 at theta0 = 3.1, the other %d at %g to %g\n", B - 1, 0.1 * amax, amax);
    printf("%-7s %-10s %8s %6s %9s %10s %9s %11s %11s %11s\n", "method", "step", "steps",
           "rej", "f calls", "f samples", "ms", "outlier err", "sample 1", "worst easy");
    const NdMethod methods[2] = {ND_DOPRI5, ND_BDF};
    for (int i = 0; i < 2; i++) {
        report(k, methods[i], ND_STEP_SHARED);
        report(k, methods[i], ND_STEP_PER_SAMPLE);
    }
    for (int i = 0; i < 2; i++)
        report_solo(k, methods[i]);
    printf("\n");
}

/* ---- gradients: L = sum over the samples of theta(T)^2 ---- */

static int final_loss(void *ctx, int j, double t, const double *y, const double *pp, double *L,
                      double *gy, double *gp)
{
    (void)ctx, (void)t, (void)pp, (void)gp;
    for (int b = 0; b < B; b++) {
        double th = j == NT - 1 ? y[b * NY] : 0.0;
        *L += th * th;
        gy[b * NY] = 2.0 * th;
        gy[b * NY + 1] = 0.0;
    }
    return 0;
}

static double gy_ref[B * NY];

/* One gradient of the batch (median time of ROUNDS computes) into gy; with a
 * label, its line of the table. */
static void gradient(const NdKernels *k, NdGradMethod gm, NdStepControl c, double rtol,
                     double *gy, const char *label)
{
    NdSolver *tmpl = make(k, ND_DOPRI5, B, c, rtol, rtol * 1e-2);
    NdGradient *g = nd_gradient_create(k, tmpl, gm, B, NT);
    nd_solver_free(tmpl);
    NdLoss loss = {NT, ts, final_loss, NULL};
    double L, gp[1], ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_s();
        if (!g || nd_gradient_compute(g, p, yinit, &loss, &L, gp, gy)) {
            fprintf(stderr, "bench_per_sample: %s\n", g ? nd_gradient_get_message(g) : "no gradient");
            exit(1);
        }
        ms[r] = 1e3 * (now_s() - t0);
    }
    long per = c == ND_STEP_PER_SAMPLE ? 1 : B; /* a shared call evaluates B samples */
    double easy = 0.0;
    for (int b = 1; b < B; b++)
        easy = fmax(easy, fabs(gy[b * NY] - gy_ref[b * NY]) / fabs(gy_ref[b * NY]));
    if (label)
        printf("%-10s %-10s %11ld %11ld %9.2f %12.2e %12.2e\n", label,
               c == ND_STEP_PER_SAMPLE ? "per_sample" : "shared",
               nd_gradient_get_num_forward_evals(g) * per,
               nd_gradient_get_num_backward_evals(g) * per, median(ms, ROUNDS),
               fabs(gy[0] - gy_ref[0]) / fabs(gy_ref[0]), easy);
    nd_gradient_free(g);
}

/* dL/dtheta0 of every sample, dopri5 rtol 1e-8, against the adjoint at rtol
 * 1e-12 per sample. */
static void gradients(const NdKernels *k)
{
    double gy[B * NY];
    gradient(k, ND_GRAD_ADJOINT, ND_STEP_PER_SAMPLE, 1e-12, gy_ref, NULL);
    printf("gradients, dopri5 rtol 1e-8: L = sum theta(T)^2; evals are sample evaluations "
           "(rhs forward; backward: augmented / vjp);\nerrors of dL/dtheta0, relative, "
           "against the adjoint at rtol 1e-12 per sample\n");
    printf("%-10s %-10s %11s %11s %9s %12s %12s\n", "gradient", "step", "fwd evals",
           "bwd evals", "ms", "outlier err", "worst easy");
    const NdGradMethod gms[2] = {ND_GRAD_ADJOINT, ND_GRAD_BACKPROP};
    const char *names[2] = {"adjoint", "backprop"};
    for (int i = 0; i < 2; i++) {
        gradient(k, gms[i], ND_STEP_SHARED, 1e-8, gy, names[i]);
        gradient(k, gms[i], ND_STEP_PER_SAMPLE, 1e-8, gy, names[i]);
    }
}

/* Optional arguments: the end time (10) and one largest easy angle (else
 * two tables, 0.5 and 0.01). */
int main(int argc, char **argv)
{
    double T = argc > 1 ? atof(argv[1]) : 10.0;
    for (int j = 0; j < NT; j++)
        ts[j] = T * j / (NT - 1);
    Compilation *c = compile_file("pend.node", src, stderr, 0);
    IrModel *m = c->program ? sema_find_model(c->program, "Pend") : NULL;
    if (!m) {
        fprintf(stderr, "bench_per_sample: the model does not compile\n");
        return 1;
    }
    diff_model_adjoint(c->ir, m);
    diff_model_jacobian(c->ir, m);
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = 1};
    JitModel *jit = jit_compile_request(m, &req, &k, &c->diag);
    if (!jit) {
        fprintf(stderr, "bench_per_sample: the JIT failed\n");
        return 1;
    }
    printf("%d pendulums over t in [0, %g], %d outputs, rtol 1e-8, atol 1e-10; errors: the "
           "largest |y - ref| over the outputs,\nref = dop853 at rtol 1e-13 per sample; "
           "f samples = f calls x samples per call; ms: median of %d solves\n\n", B, T, NT,
           ROUNDS);
    if (argc > 2) {
        scenario(&k, atof(argv[2]));
    } else {
        scenario(&k, 0.5);
        scenario(&k, 0.01);
    }
    gradients(&k); /* on the last scenario's batch */
    jit_free(jit);
    compilation_free(c);
    return 0;
}
