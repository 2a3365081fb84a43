/* Benchmark of a gradient through an ODE solve (`make bench_gradient`, never a
 * test): L = sum(y(25)^2) for the 2-50-2 tanh MLP spiral model dy/dt = f(y^3)
 * (torchdiffeq's demo network: weights ~ normal(0, 0.1), biases 0, fixed seed),
 * y0 = [2, 0] (batch 1) or 20 points on the circle of radius 2 starting there
 * (batch 20), rtol 1e-7, atol 1e-9. nodec's adjoint (full norm and seminorm;
 * each with the fused rhs_vjp kernel and, as before it, with separate rhs and
 * vjp calls) and backprop (dopri5) next to SUNDIALS CVODES's adjoint: CVodeF forward with
 * checkpoints, CVodeB backward with quadratures for dL/dp (Adams, fixed-point
 * iteration: the problem is not stiff). CVODES calls the same JIT kernels
 * (rhs, a^T df/dy, a^T df/dp), so the ratio measures the gradient machinery.
 * Gradients are checked against each other and against a tight reference.
 * Times are medians of repeated rounds because the machine is shared.
 * Usage: bench_gradient [rounds] */
#include "llvm_jit.h"
#include "diff.h"
#include "driver.h"
#include "nd_gradient.h"
#include "nd_random.h"
#include "bench_timing.h"

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_B = 20, MAX_ROUNDS = 101 };

#define T_END 25.0
#define RTOL 1e-7
#define ATOL 1e-9

static const char *const spiral_src =
    "model Spiral {\n  state y[2]\n  net f = MLP(2, 50, 2, tanh)\n  dy/dt = f(y^3)\n}\n";

/* The compiled model and the problem's data, shared by both sides. */
typedef struct Problem {
    Compilation *c;
    IrModel *m;
    JitModel *jit, *jit_fused;
    NdKernels k;  /* rhs and vjp: CVODES, backprop, checkpoint, the adjoint before rhs_vjp */
    NdKernels kf; /* rhs and rhs_vjp (its vjp a call of rhs_vjp): the adjoint */
    NdKernelFn vjp_y, vjp_p; /* a^T df/dy alone, a^T df/dp alone (for CVODES's fB, fQB) */
    int B, n, np;
    double *p, *y0, *work;
} Problem;

static void *xcalloc(size_t n, size_t size)
{
    void *v = calloc(n ? n : 1, size);
    if (!v) {
        fprintf(stderr, "bench_gradient: out of memory\n");
        exit(1);
    }
    return v;
}

/* ---- the problem ---- */

/* The vjp split in two kernels, so that CVODES's fB and fQB each pay only
 * for their part (nodec's own backward solve wants both at once). */
static void split_vjp_specs(Arena *a, const IrModel *m, PlanKernelSpec *specs)
{
    PlanOutput *oy = arena_alloc(a, sizeof *oy * (size_t)m->n_states);
    PlanOutput *op = arena_alloc(a, sizeof *op * (size_t)m->n_params);
    for (int i = 0; i < m->n_states; i++)
        oy[i] = (PlanOutput){m->adj_state[i], 0, m->states[i].offset, m->ny, 0};
    for (int j = 0; j < m->n_params; j++)
        op[j] = (PlanOutput){m->adj_param[j], 1, m->params[j].offset, 0, 1};
    specs[0] = (PlanKernelSpec){.name = "vjp_y", .n_outputs = m->n_states, .outputs = oy};
    specs[1] = (PlanKernelSpec){.name = "vjp_p", .n_outputs = m->n_params, .outputs = op};
}

/* Weights ~ normal(0, 0.1) and biases 0, as torchdiffeq's demo initialises them. */
static void init_params(const IrModel *m, double *p)
{
    NdRandom rng;
    nd_random_seed(&rng, 2024);
    for (int j = 0; j < m->n_params; j++) {
        const IrVar *v = &m->params[j];
        bool weight = strstr(v->name, ".W") != NULL;
        for (int e = 0; e < ir_shape_size(v->shape); e++)
            p[v->offset + e] = weight ? nd_random_normal(&rng, 0.0, 0.1) : 0.0;
    }
}

static Problem *problem_new(int B)
{
    Problem *P = xcalloc(1, sizeof *P);
    P->c = compile_file("spiral_bench.node", spiral_src, stderr, 0);
    P->m = P->c->diag.errors ? NULL : sema_find_model(P->c->program, "Spiral");
    if (!P->m)
        exit(1);
    diff_model_adjoint(P->c->ir, P->m);
    PlanKernelSpec specs[2];
    NdKernelFn fns[2];
    split_vjp_specs(P->c->arena, P->m, specs);
    JitRequest req = {.vjp = 1, .n_extra = 2, .extra = specs, .extra_fns = fns};
    P->jit = jit_compile_request(P->m, &req, &P->k, &P->c->diag);
    JitRequest fused = {.vjp = 1, .rhs_vjp = 1}; /* as train.c asks for the adjoint */
    P->jit_fused = jit_compile_request(P->m, &fused, &P->kf, &P->c->diag);
    if (!P->jit || !P->jit_fused)
        exit(1);
    P->vjp_y = fns[0];
    P->vjp_p = fns[1];
    P->B = B;
    P->n = B * P->k.ny;
    P->np = P->k.np;
    P->p = xcalloc((size_t)P->np, sizeof(double));
    P->y0 = xcalloc((size_t)P->n, sizeof(double));
    P->work = xcalloc(nd_kernels_work_size(&P->k, B), sizeof(double)); /* CVODES's */
    init_params(P->m, P->p);
    for (int b = 0; b < B; b++) {
        double phi = 2.0 * M_PI * b / B;
        P->y0[2 * b] = 2.0 * cos(phi);
        P->y0[2 * b + 1] = 2.0 * sin(phi);
    }
    return P;
}

static void problem_free(Problem *P)
{
    free(P->p);
    free(P->y0);
    free(P->work);
    jit_free(P->jit);
    jit_free(P->jit_fused);
    compilation_free(P->c);
    free(P);
}

/* One result of a gradient computation. */
typedef struct Result {
    double L, ms;
    long nfe, nvjp; /* rhs calls (forward and backward); vjp calls, or CVODES's fB + fQB */
    double peak_kb; /* nodec: workspace + tape + checkpoints; 0 for CVODES */
    double *gp, *gy0;
} Result;

static Result result_new(const Problem *P)
{
    return (Result){.gp = xcalloc((size_t)P->np, sizeof(double)),
                    .gy0 = xcalloc((size_t)P->n, sizeof(double))};
}

static void result_free(Result *r)
{
    free(r->gp);
    free(r->gy0);
}

/* ---- nodec ---- */

static int final_loss(void *ctx, int j, double t, const double *y, const double *p, double *L,
                      double *gy, double *gp)
{
    (void)t, (void)p, (void)gp;
    const Problem *P = ctx;
    for (int e = 0; e < P->n; e++) {
        *L += j == 1 ? y[e] * y[e] : 0.0;
        gy[e] = j == 1 ? 2.0 * y[e] : 0.0;
    }
    return 0;
}

/* fused: the table with rhs_vjp; else rhs and vjp (the adjoint calls both). */
static NdGradient *nodec_gradient(const Problem *P, NdGradMethod gm, int seminorm, int fused,
                                  double rtol, double atol)
{
    const NdKernels *k = fused ? &P->kf : &P->k;
    NdSolver *s = nd_solver_create(k, ND_DOPRI5, P->B);
    nd_solver_set_tolerances(s, rtol, atol);
    NdGradient *g = nd_gradient_create(k, s, gm, P->B, 2);
    nd_solver_free(s);
    if (!g || (seminorm && nd_gradient_set_seminorm(g, 1) != ND_OK))
        exit(1);
    return g;
}

static int nodec_run(const Problem *P, NdGradient *g, Result *r)
{
    static const double ts[2] = {0.0, T_END};
    NdLoss loss = {2, ts, final_loss, (void *)P};
    r->L = 0.0;
    int st = nd_gradient_compute(g, P->p, P->y0, &loss, &r->L, r->gp, r->gy0);
    if (st != ND_OK)
        fprintf(stderr, "nodec gradient failed: %s\n", nd_gradient_get_message(g));
    r->nfe = nd_gradient_get_num_rhs_evals(g);
    r->nvjp = nd_gradient_get_num_vjp_evals(g);
    r->peak_kb = (double)nd_gradient_get_peak_doubles(g) * sizeof(double) / 1024.0;
    return st;
}

/* ---- CVODES ---- */

typedef struct Cvodes {
    const Problem *P;
    SUNContext ctx;
    void *mem;
    N_Vector y, yB, qB;
    SUNNonlinearSolver nls, nlsB;
    int which, errconQ;
    double *ay; /* a^T df/dy scratch */
} Cvodes;

static int cv_f(realtype t, N_Vector y, N_Vector ydot, void *ud)
{
    const Problem *P = ((Cvodes *)ud)->P;
    P->k.rhs(t, N_VGetArrayPointer(y), P->p, N_VGetArrayPointer(ydot), P->B, P->work);
    return 0;
}

/* lambda' = -(df/dy)^T lambda, integrated from T down to t0. */
static int cv_fB(realtype t, N_Vector y, N_Vector yB, N_Vector yBdot, void *ud)
{
    Cvodes *cv = ud;
    const Problem *P = cv->P;
    double *out = N_VGetArrayPointer(yBdot);
    P->vjp_y(t, N_VGetArrayPointer(y), P->p, N_VGetArrayPointer(yB), NULL, out, NULL, P->B,
             P->work);
    for (int e = 0; e < P->n; e++)
        out[e] = -out[e];
    return 0;
}

/* qB' = -lambda^T df/dp, so that qB(t0) = int_t0^T lambda^T df/dp dt = dL/dp. */
static int cv_fQB(realtype t, N_Vector y, N_Vector yB, N_Vector qBdot, void *ud)
{
    Cvodes *cv = ud;
    const Problem *P = cv->P;
    double *out = N_VGetArrayPointer(qBdot);
    P->vjp_p(t, N_VGetArrayPointer(y), P->p, N_VGetArrayPointer(yB), NULL, cv->ay, out, P->B,
             P->work);
    for (int j = 0; j < P->np; j++)
        out[j] = -out[j];
    return 0;
}

static void cv_check(int flag, const char *what)
{
    if (flag < 0) {
        fprintf(stderr, "CVODES: %s failed with flag %d\n", what, flag);
        exit(1);
    }
}

/* Everything is created once; each gradient re-initialises (CVodeReInit, ...). */
static Cvodes *cvodes_new(const Problem *P, int errconQ, double rtol, double atol)
{
    Cvodes *cv = xcalloc(1, sizeof *cv);
    cv->P = P;
    cv->errconQ = errconQ;
    cv->ay = xcalloc((size_t)P->n, sizeof(double));
    cv_check(SUNContext_Create(NULL, &cv->ctx), "SUNContext_Create");
    cv->y = N_VNew_Serial(P->n, cv->ctx);
    cv->yB = N_VNew_Serial(P->n, cv->ctx);
    cv->qB = N_VNew_Serial(P->np, cv->ctx);
    memcpy(N_VGetArrayPointer(cv->y), P->y0, sizeof(double) * (size_t)P->n);
    cv->mem = CVodeCreate(CV_ADAMS, cv->ctx);
    cv_check(CVodeInit(cv->mem, cv_f, 0.0, cv->y), "CVodeInit");
    cv_check(CVodeSStolerances(cv->mem, rtol, atol), "CVodeSStolerances");
    cv_check(CVodeSetUserData(cv->mem, cv), "CVodeSetUserData");
    cv_check(CVodeSetMaxNumSteps(cv->mem, 1000000), "CVodeSetMaxNumSteps");
    cv->nls = SUNNonlinSol_FixedPoint(cv->y, 0, cv->ctx);
    cv_check(CVodeSetNonlinearSolver(cv->mem, cv->nls), "CVodeSetNonlinearSolver");
    cv_check(CVodeAdjInit(cv->mem, 200, CV_HERMITE), "CVodeAdjInit");
    cv_check(CVodeCreateB(cv->mem, CV_ADAMS, &cv->which), "CVodeCreateB");
    N_VConst(0.0, cv->yB);
    cv_check(CVodeInitB(cv->mem, cv->which, cv_fB, T_END, cv->yB), "CVodeInitB");
    cv_check(CVodeSStolerancesB(cv->mem, cv->which, rtol, atol), "CVodeSStolerancesB");
    cv_check(CVodeSetUserDataB(cv->mem, cv->which, cv), "CVodeSetUserDataB");
    cv_check(CVodeSetMaxNumStepsB(cv->mem, cv->which, 1000000), "CVodeSetMaxNumStepsB");
    cv->nlsB = SUNNonlinSol_FixedPoint(cv->yB, 0, cv->ctx);
    cv_check(CVodeSetNonlinearSolverB(cv->mem, cv->which, cv->nlsB), "CVodeSetNonlinearSolverB");
    N_VConst(0.0, cv->qB);
    cv_check(CVodeQuadInitB(cv->mem, cv->which, cv_fQB, cv->qB), "CVodeQuadInitB");
    cv_check(CVodeQuadSStolerancesB(cv->mem, cv->which, rtol, atol), "CVodeQuadSStolerancesB");
    cv_check(CVodeSetQuadErrConB(cv->mem, cv->which, errconQ), "CVodeSetQuadErrConB");
    return cv;
}

static void cvodes_free(Cvodes *cv)
{
    CVodeFree(&cv->mem);
    SUNNonlinSolFree(cv->nls);
    SUNNonlinSolFree(cv->nlsB);
    N_VDestroy(cv->y);
    N_VDestroy(cv->yB);
    N_VDestroy(cv->qB);
    SUNContext_Free(&cv->ctx);
    free(cv->ay);
    free(cv);
}

static long cv_counter(void *mem, int (*get)(void *, long *))
{
    long v = 0;
    get(mem, &v);
    return v;
}

static int cvodes_run(Cvodes *cv, Result *r)
{
    const Problem *P = cv->P;
    double t;
    int ncheck;
    memcpy(N_VGetArrayPointer(cv->y), P->y0, sizeof(double) * (size_t)P->n);
    cv_check(CVodeReInit(cv->mem, 0.0, cv->y), "CVodeReInit");
    cv_check(CVodeAdjReInit(cv->mem), "CVodeAdjReInit");
    cv_check(CVodeF(cv->mem, T_END, cv->y, &t, CV_NORMAL, &ncheck), "CVodeF");
    const double *yT = N_VGetArrayPointer(cv->y);
    double *lam = N_VGetArrayPointer(cv->yB);
    r->L = 0.0;
    for (int e = 0; e < P->n; e++) {
        r->L += yT[e] * yT[e];
        lam[e] = 2.0 * yT[e]; /* lambda(T) = dL/dy(T) */
    }
    N_VConst(0.0, cv->qB);
    cv_check(CVodeReInitB(cv->mem, cv->which, T_END, cv->yB), "CVodeReInitB");
    cv_check(CVodeQuadReInitB(cv->mem, cv->which, cv->qB), "CVodeQuadReInitB");
    cv_check(CVodeB(cv->mem, 0.0, CV_NORMAL), "CVodeB");
    cv_check(CVodeGetB(cv->mem, cv->which, &t, cv->yB), "CVodeGetB");
    cv_check(CVodeGetQuadB(cv->mem, cv->which, &t, cv->qB), "CVodeGetQuadB");
    memcpy(r->gy0, N_VGetArrayPointer(cv->yB), sizeof(double) * (size_t)P->n);
    memcpy(r->gp, N_VGetArrayPointer(cv->qB), sizeof(double) * (size_t)P->np);
    void *memB = CVodeGetAdjCVodeBmem(cv->mem, cv->which);
    /* f calls as CVODES counts them (the forward solve and any recomputation of
     * checkpointed segments); fB and fQB each compute one of the vjp's two products */
    r->nfe = cv_counter(cv->mem, CVodeGetNumRhsEvals);
    r->nvjp = cv_counter(memB, CVodeGetNumRhsEvals) + cv_counter(memB, CVodeGetQuadNumRhsEvals);
    return 0;
}

/* ---- timing and comparison ---- */

typedef enum Kind {
    K_ADJOINT, K_SEMINORM, K_ADJOINT_SPLIT, K_SEMINORM_SPLIT, K_BACKPROP, K_CHECKPOINT, K_CVODES,
    K_CVODES_NOQ, K_COUNT
} Kind;

static const char *const kind_names[K_COUNT] = {
    "nodec adjoint", "nodec adjoint (seminorm)", "nodec adjoint, rhs + vjp",
    "nodec adjoint (seminorm), rhs + vjp", "nodec backprop", "nodec checkpoint",
    "CVODES adjoint", "CVODES adjoint (no quad. errcon)"};

static const NdGradMethod kind_method[K_COUNT] = {ND_GRAD_ADJOINT, ND_GRAD_ADJOINT,
                                                  ND_GRAD_ADJOINT, ND_GRAD_ADJOINT,
                                                  ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT};

typedef struct Runner {
    Kind kind;
    NdGradient *g;
    Cvodes *cv;
} Runner;

static Runner runner_new(const Problem *P, Kind kind)
{
    Runner r = {.kind = kind};
    if (kind == K_CVODES || kind == K_CVODES_NOQ)
        r.cv = cvodes_new(P, kind == K_CVODES, RTOL, ATOL);
    else
        r.g = nodec_gradient(P, kind_method[kind], kind == K_SEMINORM || kind == K_SEMINORM_SPLIT,
                             kind == K_ADJOINT || kind == K_SEMINORM, RTOL, ATOL);
    return r;
}

static int runner_run(const Problem *P, Runner *r, Result *res)
{
    return r->cv ? cvodes_run(r->cv, res) : nodec_run(P, r->g, res);
}

static void runner_free(Runner *r)
{
    if (r->cv)
        cvodes_free(r->cv);
    nd_gradient_free(r->g);
}

static void time_runner(const Problem *P, Kind kind, int rounds, Result *res)
{
    Runner r = runner_new(P, kind);
    double t[MAX_ROUNDS];
    runner_run(P, &r, res); /* warm-up: first-touch of the tape, caches */
    for (int i = 0; i < rounds; i++) {
        double t0 = now_s();
        if (runner_run(P, &r, res) != 0)
            exit(1);
        t[i] = (now_s() - t0) * 1e3;
    }
    res->ms = median(t, rounds);
    runner_free(&r);
}

/* max_i |a_i - b_i| / max_i |b_i|: the vector's error on its own scale. */
static double rel_diff(const double *a, const double *b, int n)
{
    double d = 0.0, s = 0.0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return s > 0 ? d / s : d;
}

/* The reference: nodec backprop through dopri5 at rtol 1e-12, atol 1e-14. */
static void reference(const Problem *P, Result *ref)
{
    NdGradient *g = nodec_gradient(P, ND_GRAD_BACKPROP, 0, 0, 1e-12, 1e-14);
    if (nodec_run(P, g, ref) != 0)
        exit(1);
    nd_gradient_free(g);
}

static void bench_batch(int B, int rounds, double o3_ms)
{
    Problem *P = problem_new(B);
    Result ref = result_new(P), res[K_COUNT];
    reference(P, &ref);
    printf("\nbatch %d (%d states, %d parameters), L = sum(y(25)^2) = %.10g, rtol %g atol %g, "
           "dopri5 for nodec, Adams for CVODES\n",
           B, P->n, P->np, ref.L, RTOL, ATOL);
    printf("  %-34s %10s %8s %8s %9s %11s %11s %11s\n", "method", "ms/grad", "rhs", "vjp",
           "peak KB", "dL/dp err", "dL/dy0 err", "vs CVODES");
    for (int k = 0; k < K_COUNT; k++) {
        res[k] = result_new(P);
        time_runner(P, (Kind)k, rounds, &res[k]);
    }
    for (int k = 0; k < K_COUNT; k++) {
        double ratio = res[K_CVODES].ms / res[k].ms;
        char peak[32] = "-";
        if (res[k].peak_kb > 0)
            snprintf(peak, sizeof peak, "%.1f", res[k].peak_kb);
        printf("  %-34s %10.3f %8ld %8ld %9s %11.2e %11.2e %10.2fx%s\n", kind_names[k],
               res[k].ms, res[k].nfe, res[k].nvjp, peak,
               rel_diff(res[k].gp, ref.gp, P->np),
               rel_diff(res[k].gy0, ref.gy0, P->n), ratio,
               k >= K_CVODES ? "  (Debian's libsundials: unoptimised build)" : "");
    }
    printf("  %-34s %10.3f %8s %8s %9s %11s %11s %10.2fx  (the issue's figure, not measured "
           "here)\n", "CVODES adjoint, -O3 build", o3_ms, "", "", "", "", "",
           res[K_CVODES].ms / o3_ms);
    printf("  nodec adjoint vs CVODES adjoint: dL/dp differ by %.2e, dL/dy0 by %.2e (relative "
           "to the largest element)\n",
           rel_diff(res[K_ADJOINT].gp, res[K_CVODES].gp, P->np),
           rel_diff(res[K_ADJOINT].gy0, res[K_CVODES].gy0, P->n));
    printf("  speed-up over the -O3 CVODES figure: adjoint %.2fx, seminorm %.2fx, backprop "
           "%.2fx (target >= 2x)\n",
           o3_ms / res[K_ADJOINT].ms, o3_ms / res[K_SEMINORM].ms, o3_ms / res[K_BACKPROP].ms);
    printf("  fused rhs_vjp kernel: adjoint %.2fx, seminorm %.2fx faster than rhs + vjp; "
           "gradients differ by %.1e\n",
           res[K_ADJOINT_SPLIT].ms / res[K_ADJOINT].ms,
           res[K_SEMINORM_SPLIT].ms / res[K_SEMINORM].ms,
           rel_diff(res[K_ADJOINT].gp, res[K_ADJOINT_SPLIT].gp, P->np));
    for (int k = 0; k < K_COUNT; k++)
        result_free(&res[k]);
    result_free(&ref);
    problem_free(P);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 21;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 21;
    printf("gradient of L = sum(y(25)^2) for dy/dt = MLP(2, 50, 2, tanh)(y^3); medians of %d "
           "rounds\n", rounds);
    printf("err: max |g - g_ref| / max |g_ref| against nodec backprop at rtol 1e-12\n");
    printf("reference (the issue): -O3 CVODES 1.9 ms (batch 1), 16.7 ms (batch 20); torchdiffeq "
           "121 ms backprop / 328 ms adjoint (batch 1)\n");
    bench_batch(1, rounds, 1.9);
    bench_batch(MAX_B, rounds, 16.7);
    return 0;
}
