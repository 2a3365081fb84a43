/* Benchmark of forward solves (`make bench_solvers`, never a test; issue 3):
 * the true spiral dy/dt = A^T y^3 and the 2-50-2 tanh MLP dy/dt = f(y^3)
 * (torchdiffeq's demo network: weights ~ normal(0, 0.1) with seed 2024, biases
 * 0; batch 20 = points on the circle of radius 2) over [0, 25] with 1000 output
 * times at rtol 1e-7, atol 1e-9. nodec (the .node text through compile_file,
 * jit_compile, nd_solve with dopri5) next to a plain hand-written C dopri5
 * (hand_dopri5.c) on hand-written C right-hand sides, SUNDIALS CVODE (Adams,
 * fixed-point iteration, Debian's unoptimised build) on the same C
 * right-hand sides, and scipy's solve_ivp (scipy_solvers.py, a subprocess).
 * Times are medians over interleaved rounds (the machine is shared).
 * Usage: bench_solvers [rounds]   (docs/benchmarks.md) */
#include "llvm_jit.h"
#include "driver.h"
#include "hand_dopri5.h"
#include "nd_random.h"
#include "nd_solver.h"

#include <cvode/cvode.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_timing.h"

enum { NT = 1000, H = 50, MAX_B = 20, MAX_N = 2 * MAX_B, MAX_ROUNDS = 101 };

#define T_END 25.0
#define RTOL 1e-7
#define ATOL 1e-9
/* Every tool's y(25) must agree with nodec's to this (relative to max(1, |y|)). */
#define AGREE_TOL 1e-5
/* Each timed measurement runs solves for about this long. */
#define MEASURE_S 0.02

static const char *const spiral_src =
    "model TrueSpiral {\n  state y[2] = [2, 0]\n  const A[2, 2] = [[-0.1, 2.0], [-2.0, -0.1]]\n"
    "  dy/dt = transpose(A) @ y^3\n}\n";
static const char *const mlp_src =
    "model Spiral {\n  state y[2]\n  net f = MLP(2, 50, 2, tanh)\n  dy/dt = f(y^3)\n}\n";

/* Issue 3's figures measured on these machines: CVODE 6.4.1 built -O3 (and
 * Debian's build, which drops -O2), in ms per solve; < 0: not given. */
typedef struct IssueRef {
    double cvode_o3, cvode_debian, hand, hand_vec;
} IssueRef;

typedef struct Problem {
    const char *name, *model, *src;
    int B, n, mlp;
    IssueRef ref;
    Compilation *c;
    IrModel *m;
    JitModel *jit;
    NdKernels k;
    double *p, *work;
    double y0[MAX_N];
    const double *W1, *b1, *W2, *b2; /* MLP parameters inside p */
    double ts[NT];
} Problem;

/* One row of the table. */
typedef struct Result {
    const char *tool;
    double ms;      /* median ms per solve; < 0: not run */
    long nfe, steps;
    double y_end[MAX_N];
} Result;

/* The table's rows: the tools run in this process, then scipy's. */
enum { T_NODEC, T_RUNTIME_C, T_HAND, T_HAND_VEC, T_CVODE, N_INPROC, T_SCIPY_RK45 = N_INPROC,
       T_SCIPY_DOP853, N_ROWS };




static void *xcalloc(size_t n, size_t size)
{
    void *v = calloc(n ? n : 1, size);
    if (!v) {
        fprintf(stderr, "bench_solvers: out of memory\n");
        exit(1);
    }
    return v;
}

/* ---- the hand-written right-hand sides (what a C user would write) ---- */

/* tanh inline and vectorisable, the same algorithm as the JIT's
 * (compiler/llvm/llvm_math.c, docs/codegen.md), for the "hand, vec tanh" row:
 * u = expm1(2|x|) as a double-double from exp's reduction 2|x| = k ln2 + r,
 * then tanh = u / (u + 2) refined once with the exact residual. */
static inline double vec_tanh(double x)
{
    const double shift = 6755399441055744.0, ln2_hi = 6.93147180369123816490e-01,
                 ln2_lo = 1.90821492927058770002e-10;
    double a = fabs(x) > 20.0 ? 20.0 : fabs(x), y = a + a; /* NaN stays NaN */
    double sh = y * 1.4426950408889634 + shift, kf = sh - shift;
    int64_t bits, sb;
    memcpy(&bits, &sh, 8);
    memcpy(&sb, &shift, 8);
    double r = (y - kf * ln2_hi) - kf * ln2_lo;
    double poly = 1.0 / 6227020800; /* expm1(r) = r + r^2 (1/2! + r/3! + ... + r^11/13!) */
    poly = poly * r + 1.0 / 479001600;
    poly = poly * r + 1.0 / 39916800;
    poly = poly * r + 1.0 / 3628800;
    poly = poly * r + 1.0 / 362880;
    poly = poly * r + 1.0 / 40320;
    poly = poly * r + 1.0 / 5040;
    poly = poly * r + 1.0 / 720;
    poly = poly * r + 1.0 / 120;
    poly = poly * r + 1.0 / 24;
    poly = poly * r + 1.0 / 6;
    poly = poly * r + 0.5;
    int64_t e = (bits - sb + 1023) << 52; /* 2^k */
    double s;
    memcpy(&s, &e, 8);
    double sm1 = s - 1, sr = s * r, hi = sm1 + sr, bb = hi - sm1;
    double lo = (sm1 - (hi - bb)) + (sr - bb) + s * (r * r * poly);
    double uh = hi + lo, ul = lo - (uh - hi);
    double q = uh + 2;
    bb = q - uh;
    double ql = (uh - (q - bb)) + (2 - bb) + ul;
    double rq = 1 / q, t0 = uh * rq;
    double rem = fma(-t0, q, uh) + ul - t0 * ql;
    return copysign(fma(rem, rq, t0), x);
}

static void spiral_rhs(void *ctx, double t, const double *y, double *dydt)
{
    (void)t, (void)ctx;
    double z0 = y[0] * y[0] * y[0], z1 = y[1] * y[1] * y[1];
    dydt[0] = -0.1 * z0 - 2.0 * z1; /* (A^T z)_0 = A00 z0 + A10 z1 */
    dydt[1] = 2.0 * z0 - 0.1 * z1;
}

/* dydt = W2 tanh(W1 y^3 + b1) + b2 per sample; vec picks the inline tanh
 * (in a loop of its own, which GCC vectorises). */
static inline void mlp_eval(const Problem *P, const double *y, double *dydt, int vec)
{
    const double *W1 = P->W1, *b1 = P->b1, *W2 = P->W2, *b2 = P->b2;
    double u[H], h[H];
    for (int s = 0; s < P->B; s++) {
        double z0 = y[2 * s] * y[2 * s] * y[2 * s], z1 = y[2 * s + 1] * y[2 * s + 1] * y[2 * s + 1];
        for (int j = 0; j < H; j++)
            u[j] = W1[2 * j] * z0 + W1[2 * j + 1] * z1 + b1[j];
        if (vec)
            for (int j = 0; j < H; j++)
                h[j] = vec_tanh(u[j]);
        else
            for (int j = 0; j < H; j++)
                h[j] = tanh(u[j]);
        for (int i = 0; i < 2; i++) {
            double acc = 0;
            for (int j = 0; j < H; j++)
                acc += W2[i * H + j] * h[j];
            dydt[2 * s + i] = acc + b2[i];
        }
    }
}

static void mlp_rhs(void *ctx, double t, const double *y, double *dydt)
{
    (void)t;
    mlp_eval(ctx, y, dydt, 0);
}

static void mlp_rhs_vec(void *ctx, double t, const double *y, double *dydt)
{
    (void)t;
    mlp_eval(ctx, y, dydt, 1);
}

/* ---- the problems ---- */

/* Weights ~ normal(0, 0.1), biases 0 (as bench_gradient, torchdiffeq's demo). */
static void init_mlp_params(Problem *P)
{
    NdRandom rng;
    nd_random_seed(&rng, 2024);
    for (int j = 0; j < P->m->n_params; j++) {
        const IrVar *v = &P->m->params[j];
        int weight = strstr(v->name, ".W") != NULL;
        for (int e = 0; e < ir_shape_size(v->shape); e++)
            P->p[v->offset + e] = weight ? nd_random_normal(&rng, 0.0, 0.1) : 0.0;
        const double **slot = strcmp(v->name, "f.l1.W") == 0   ? &P->W1
                              : strcmp(v->name, "f.l1.b") == 0 ? &P->b1
                              : strcmp(v->name, "f.l2.W") == 0 ? &P->W2
                                                               : &P->b2;
        *slot = P->p + v->offset;
    }
}

static void problem_init(Problem *P)
{
    P->c = compile_file("bench_solvers.node", P->src, stderr, 0);
    P->m = P->c->diag.errors ? NULL : sema_find_model(P->c->program, P->model);
    if (!P->m)
        exit(1);
    P->jit = jit_compile(P->m, &P->k, &P->c->diag);
    if (!P->jit)
        exit(1);
    P->n = P->B * P->k.ny;
    P->p = xcalloc((size_t)P->k.np + 1, sizeof(double));
    P->work = xcalloc(nd_kernels_work_size(&P->k, P->B), sizeof(double));
    if (P->mlp)
        init_mlp_params(P);
    for (int b = 0; b < P->B; b++) {
        double phi = 2.0 * M_PI * b / P->B;
        P->y0[2 * b] = 2.0 * cos(phi);
        P->y0[2 * b + 1] = 2.0 * sin(phi);
    }
    for (int j = 0; j < NT; j++)
        P->ts[j] = T_END * j / (NT - 1);
}

static void problem_free(Problem *P)
{
    jit_free(P->jit);
    compilation_free(P->c);
    free(P->p), free(P->work);
}

/* The C right-hand sides as an NdRhsFn, so the runtime's dopri5 can run them
 * (the row that separates the JIT'd kernel's cost from the solver's). The
 * kernel table has no context pointer: the problem being measured is here. */
static const Problem *c_kernel_problem;

static void c_kernel(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *work)
{
    (void)p, (void)B, (void)work;
    const Problem *P = c_kernel_problem;
    if (P->mlp)
        mlp_eval(P, y, dydt, 1);
    else
        spiral_rhs(NULL, t, y, dydt);
}

/* ---- the solvers: each "run" does one full solve into yout ---- */

typedef struct Runner Runner;
typedef void (*RunFn)(Runner *r, double *yout, Result *res);

struct Runner {
    Problem *P;
    RunFn run;
    NdSolver *nd;
    HdDopri5 *hd;
    HdRhs hd_rhs;
    void *cv_mem;
    N_Vector cv_y;
    SUNNonlinearSolver cv_nls;
    SUNContext cv_ctx;
};

static void run_nodec(Runner *r, double *yout, Result *res)
{
    Problem *P = r->P;
    int st = nd_solve(r->nd, P->p, P->y0, P->ts, NT, yout);
    if (st) {
        fprintf(stderr, "bench_solvers: nodec failed: %s\n", nd_solver_get_message(r->nd));
        exit(1);
    }
    res->nfe = nd_solver_get_num_rhs_evals(r->nd);
    res->steps = nd_solver_get_num_steps(r->nd);
}

static void run_hand(Runner *r, double *yout, Result *res)
{
    HdStats st;
    if (hd_dopri5_solve(r->hd, r->hd_rhs, r->P, r->P->y0, r->P->ts, NT, RTOL, ATOL, yout, &st)) {
        fprintf(stderr, "bench_solvers: the hand-written dopri5 failed\n");
        exit(1);
    }
    res->nfe = st.nfe;
    res->steps = st.steps;
}

/* CVODE calls the plain C right-hand side (libm tanh for the MLP). */
static int cv_rhs(sunrealtype t, N_Vector y, N_Vector ydot, void *user)
{
    Problem *P = user;
    (P->mlp ? mlp_rhs : spiral_rhs)(P, t, N_VGetArrayPointer(y), N_VGetArrayPointer(ydot));
    return 0;
}

static void run_cvode(Runner *r, double *yout, Result *res)
{
    Problem *P = r->P;
    double *y = N_VGetArrayPointer(r->cv_y);
    memcpy(y, P->y0, sizeof *y * (size_t)P->n);
    memcpy(yout, P->y0, sizeof *y * (size_t)P->n);
    if (CVodeReInit(r->cv_mem, P->ts[0], r->cv_y) != CV_SUCCESS)
        exit(1);
    for (int j = 1; j < NT; j++) {
        sunrealtype t;
        if (CVode(r->cv_mem, P->ts[j], r->cv_y, &t, CV_NORMAL) < 0) {
            fprintf(stderr, "bench_solvers: CVODE failed at t = %g\n", t);
            exit(1);
        }
        memcpy(yout + (size_t)j * P->n, y, sizeof *y * (size_t)P->n);
    }
    CVodeGetNumRhsEvals(r->cv_mem, &res->nfe);
    CVodeGetNumSteps(r->cv_mem, &res->steps);
}

/* Adams–Moulton with fixed-point (functional) iteration: the non-stiff
 * setting, no Jacobian; the same tolerances and output times. */
static void cvode_init(Runner *r)
{
    Problem *P = r->P;
    if (SUNContext_Create(NULL, &r->cv_ctx))
        exit(1);
    r->cv_y = N_VNew_Serial(P->n, r->cv_ctx);
    memcpy(N_VGetArrayPointer(r->cv_y), P->y0, sizeof(double) * (size_t)P->n);
    r->cv_mem = CVodeCreate(CV_ADAMS, r->cv_ctx);
    r->cv_nls = SUNNonlinSol_FixedPoint(r->cv_y, 0, r->cv_ctx);
    if (!r->cv_mem || !r->cv_nls || CVodeInit(r->cv_mem, cv_rhs, P->ts[0], r->cv_y) ||
        CVodeSStolerances(r->cv_mem, RTOL, ATOL) || CVodeSetUserData(r->cv_mem, P) ||
        CVodeSetNonlinearSolver(r->cv_mem, r->cv_nls) || CVodeSetMaxNumSteps(r->cv_mem, 100000)) {
        fprintf(stderr, "bench_solvers: CVODE setup failed\n");
        exit(1);
    }
}

static void runner_init(Runner *r, Problem *P, int tool)
{
    *r = (Runner){.P = P};
    switch (tool) {
    case T_NODEC:
    case T_RUNTIME_C: {
        NdKernels k = P->k;
        if (tool == T_RUNTIME_C)
            k.rhs = c_kernel, c_kernel_problem = P;
        r->run = run_nodec;
        r->nd = nd_solver_create(&k, ND_DOPRI5, P->B);
        if (!r->nd || nd_solver_set_tolerances(r->nd, RTOL, ATOL))
            exit(1);
        break;
    }
    case T_HAND:
    case T_HAND_VEC:
        r->run = run_hand;
        r->hd = hd_dopri5_create((size_t)P->n);
        r->hd_rhs = !P->mlp ? spiral_rhs : tool == T_HAND ? mlp_rhs : mlp_rhs_vec;
        if (!r->hd)
            exit(1);
        break;
    default:
        r->run = run_cvode;
        cvode_init(r);
    }
}

static void runner_free(Runner *r)
{
    nd_solver_free(r->nd);
    hd_dopri5_free(r->hd);
    if (r->cv_mem) {
        CVodeFree(&r->cv_mem);
        SUNNonlinSolFree(r->cv_nls);
        N_VDestroy(r->cv_y);
        SUNContext_Free(&r->cv_ctx);
    }
}

/* Seconds per solve over reps solves. */
static double time_solves(Runner *r, int reps, double *yout, Result *res)
{
    double t0 = now_s();
    for (int i = 0; i < reps; i++)
        r->run(r, yout, res);
    return (now_s() - t0) / reps;
}

/* The in-process tools, interleaved round by round so drift hits all alike
 * (the spiral has no tanh: no vec-tanh row). */
static void measure(Problem *P, int rounds, Result *res)
{
    Runner r[N_INPROC];
    int reps[N_INPROC], n_tools = N_INPROC;
    double *yout = xcalloc((size_t)NT * (size_t)P->n, sizeof(double));
    static double times[N_INPROC][MAX_ROUNDS];
    for (int i = 0; i < n_tools; i++) {
        if (i == T_HAND_VEC && !P->mlp) {
            r[i] = (Runner){0};
            continue;
        }
        runner_init(&r[i], P, i);
        double once = time_solves(&r[i], 1, yout, &res[i]); /* warm-up and calibration */
        reps[i] = (int)fmax(1, fmin(10000, MEASURE_S / fmax(once, 1e-7)));
        memcpy(res[i].y_end, yout + (size_t)(NT - 1) * P->n, sizeof(double) * (size_t)P->n);
    }
    for (int k = 0; k < rounds; k++)
        for (int i = 0; i < n_tools; i++)
            if (r[i].run)
                times[i][k] = time_solves(&r[i], reps[i], yout, &res[i]);
    for (int i = 0; i < n_tools; i++) {
        if (r[i].run)
            res[i].ms = 1e3 * median(times[i], rounds);
        runner_free(&r[i]);
    }
    free(yout);
}

/* ---- scipy, in a subprocess ---- */

/* The parameters and initial states for scipy_solvers.py, one named array a line. */
static void write_array(FILE *f, const char *name, const double *v, int n)
{
    fprintf(f, "%s", name);
    for (int i = 0; i < n; i++)
        fprintf(f, " %.17g", v[i]);
    fputc('\n', f);
}

static int write_problem_file(const Problem *mlp, char *path)
{
    strcpy(path, "/tmp/nodec_bench_solversXXXXXX");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return -1;
    write_array(f, "W1", mlp->W1, 2 * H);
    write_array(f, "b1", mlp->b1, H);
    write_array(f, "W2", mlp->W2, 2 * H);
    write_array(f, "b2", mlp->b2, 2);
    fclose(f);
    return 0;
}

/* Lines "RESULT problem method ms nfe steps y..." fill the scipy rows. */
static void read_scipy_line(const char *line, Problem *probs, int n_probs,
                            Result res[][N_ROWS])
{
    char prob[32], method[16];
    int used = 0;
    double ms;
    long nfe, steps;
    if (sscanf(line, "RESULT %31s %15s %lf %ld %ld%n", prob, method, &ms, &nfe, &steps, &used) < 5)
        return;
    for (int i = 0; i < n_probs; i++) {
        if (strcmp(prob, probs[i].name) != 0)
            continue;
        Result *r = &res[i][T_SCIPY_RK45 + (strcmp(method, "DOP853") == 0)];
        r->ms = ms, r->nfe = nfe, r->steps = steps;
        const char *s = line + used;
        for (int e = 0; e < probs[i].n; e++) {
            char *end;
            r->y_end[e] = strtod(s, &end);
            s = end;
        }
    }
}

static void run_scipy(Problem *probs, int n_probs, int rounds, Result res[][N_ROWS])
{
    char path[64], cmd[512], line[8192];
    if (write_problem_file(&probs[1], path))
        return;
    /* Debian's interpreter, where python3-scipy is, before whatever python3 is
     * first on PATH (a pyenv shim may hide it); $NODEC_PYTHON overrides both. */
    const char *py = getenv("NODEC_PYTHON");
    if (!py)
        py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof cmd, "%s %s/scipy_solvers.py %s %d", py, NODEC_BENCH_DIR, path, rounds);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p))
        read_scipy_line(line, probs, n_probs, res);
    if (!p || pclose(p) != 0)
        printf("(scipy: `%s` failed; its rows are missing)\n", cmd);
    unlink(path);
}

/* ---- the table ---- */

static double max_diff(const Result *a, const Result *b, int n)
{
    double d = 0;
    for (int e = 0; e < n; e++)
        d = fmax(d, fabs(a->y_end[e] - b->y_end[e]) / fmax(1.0, fabs(b->y_end[e])));
    return d;
}

static void print_row(const char *tool, double ms, long nfe, long steps, double nodec_ms,
                      const char *agree)
{
    if (ms < 0)
        return;
    printf("  %-34s %10.4f %7ld %6ld %9.2f  %s\n", tool, ms, nfe, steps, ms / nodec_ms, agree);
}

static void print_ref(const char *tool, double ms, double nodec_ms)
{
    if (ms > 0)
        printf("  %-34s %10.4f %7s %6s %9.2f  (issue 3's figure)\n", tool, ms, "-", "-",
               ms / nodec_ms);
}

static int print_problem(const Problem *P, const Result *res)
{
    const Result *nodec = &res[T_NODEC];
    int bad = 0;
    printf("\n%s  (y(25) = [%.6f, %.6f]%s)\n", P->name, nodec->y_end[0], nodec->y_end[1],
           P->B > 1 ? " for sample 0" : "");
    printf("  %-34s %10s %7s %6s %9s  %s\n", "tool", "ms/solve", "nfe", "steps", "x nodec",
           "y(25) vs nodec");
    for (int i = 0; i < N_ROWS; i++) {
        if (res[i].ms < 0)
            continue;
        char agree[64] = "-";
        if (i != T_NODEC) {
            double d = max_diff(&res[i], nodec, P->n);
            bad |= !(d <= AGREE_TOL);
            snprintf(agree, sizeof agree, "%.1e%s", d, d <= AGREE_TOL ? "" : "  DISAGREES");
        }
        print_row(res[i].tool, res[i].ms, res[i].nfe, res[i].steps, nodec->ms, agree);
    }
    print_ref("CVODE -O3 build", P->ref.cvode_o3, nodec->ms);
    print_ref("CVODE Debian build", P->ref.cvode_debian, nodec->ms);
    print_ref("hand dopri5 -O3", P->ref.hand, nodec->ms);
    print_ref("hand dopri5 -O3, vectorised tanh", P->ref.hand_vec, nodec->ms);
    return bad;
}

/* The targets of issue 3, measured on this run. */
static void print_targets(const Problem *probs, Result res[][N_ROWS], int n_probs)
{
    printf("\ntargets (issue 3)\n");
    for (int i = 0; i < n_probs; i++) {
        const Result *r = res[i];
        int hand = probs[i].mlp ? T_HAND_VEC : T_HAND;
        double ratio = r[T_NODEC].ms / r[hand].ms;
        printf("  %-14s nodec / %s = %.2f (<= 1.2: %s; nfe %ld vs %ld)", probs[i].name,
               hand == T_HAND ? "hand" : "hand vec-tanh", ratio, ratio <= 1.2 ? "met" : "NOT met",
               r[T_NODEC].nfe, r[hand].nfe);
        if (probs[i].ref.cvode_o3 > 0) {
            double speedup = probs[i].ref.cvode_o3 / r[T_NODEC].ms;
            printf(";  CVODE -O3 / nodec = %.1f (>= 3: %s)", speedup, speedup >= 3 ? "met" : "NOT met");
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 11;
    rounds = rounds < 1 ? 1 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
    Problem probs[3] = {
        {.name = "spiral", .model = "TrueSpiral", .src = spiral_src, .B = 1,
         .ref = {0.29, 1.02, 0.055, -1}},
        {.name = "mlp_b1", .model = "Spiral", .src = mlp_src, .B = 1, .mlp = 1,
         .ref = {0.31, 0.61, 0.27, 0.094}},
        {.name = "mlp_b20", .model = "Spiral", .src = mlp_src, .B = 20, .mlp = 1,
         .ref = {-1, -1, -1, -1}},
    };
    static Result res[3][N_ROWS];
    const char *tools[N_ROWS] = {"nodec (JIT + runtime dopri5)", "runtime dopri5 + hand C rhs",
                                 "hand dopri5 (C -O3, libm tanh)",
                                      "hand dopri5 (C -O3, vec tanh)", "CVODE Adams (Debian, -O0)",
                                      "scipy RK45", "scipy DOP853"};
    printf("forward solves over [0, 25], %d output times, rtol %g, atol %g; median of %d "
           "interleaved rounds\n", NT, RTOL, ATOL, rounds);
    for (int i = 0; i < 3; i++) {
        problem_init(&probs[i]);
        for (int t = 0; t < N_ROWS; t++)
            res[i][t] = (Result){.tool = tools[t], .ms = -1};
        measure(&probs[i], rounds, res[i]);
    }
    run_scipy(probs, 3, rounds < 5 ? rounds : 5, res);
    int bad = 0;
    for (int i = 0; i < 3; i++)
        bad |= print_problem(&probs[i], res[i]);
    printf("\nCVODE is Debian's libsundials-dev 6.4.1, whose build drops -O2 (unoptimised); the\n"
           "issue's -O3 figures are printed beside it. scipy runs in its own process, not\n"
           "interleaved. x nodec = time / nodec's time.\n");
    print_targets(probs, res, 3);
    for (int i = 0; i < 3; i++)
        problem_free(&probs[i]);
    return bad;
}
