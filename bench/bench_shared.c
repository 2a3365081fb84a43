/* Benchmark of shared states (`make bench_shared`, never a test): the model of
 * examples/anodev2.node (z[4] per sample, the weights W[4,4] an ODE of their own)
 * at batch 1, 16, 256 and 4096, compiled twice in one run, with the shared block
 * (option shared_states = once) and per copy (per_copy), side by side:
 *   - the shared part's cost per evaluation: a kernel of dW/dt alone, laid out
 *     as each side's rhs computes it (once into the shared block: flat in B;
 *     per copy: B times), and the whole rhs, next to the per-sample part alone
 *     (W a parameter, ZOnly below);
 *   - one gradient of the train's loss (rk4 h = 0.05 over [0, 1], the adjoint, as
 *     anodev2.node trains): nd_train_loss_compute, what a training step costs
 *     besides the optimizer.
 * The data are rings like examples/rings.csv (4096 points drawn here). Times are
 * medians of repeated rounds, as the machine is shared.
 * Usage: bench_shared [rounds] */
#include "driver.h"
#include "nd_random.h"
#include "nd_train_loss.h"
#include "params_init.h"
#include "bench_timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NB = 4, MAX_B = 4096, MAX_ROUNDS = 51 };
static const int BATCHES[NB] = {1, 16, 256, 4096};

/* A train on the rings as anodev2.node's first, of a model given as text:
 * the shared_states option, the model's declaration, its name. */
static const char *const TRAIN =
    "option seed = 2\n"
    "option shared_states = %s\n"
    "data rings = csv(\"rings.csv\")\n"
    "%s"
    "train %s {\n"
    "  data       = rings\n"
    "  init       = { z = concat(rings.x, zeros(2)) }\n"
    "  t          = [0, 1]\n"
    "  final_loss = softplus(dot(w, z) + b) - rings.label * (dot(w, z) + b)\n"
    "  solver     = rk4(h = 0.05)\n"
    "  optimizer  = adam(lr = 2e-2)\n"
    "  steps      = 1\n"
    "}\n";

static const char *const COUPLED =
    "model Coupled {\n"
    "  state z[4]\n"
    "  state W[4, 4] = W0\n"
    "  param W0[4, 4] ~ normal(0, 0.5)\n"
    "  param P[4, 4] ~ normal(0, 0.1)\n"
    "  param c[4] = 0\n"
    "  param w[4] ~ normal(0, 0.1)\n"
    "  param b = 0\n"
    "  dz/dt = tanh(W @ z + c)\n"
    "  dW/dt = tanh(P @ W) - W\n"
    "}\n";

/* The per-sample part alone: W a parameter. */
static const char *const ZONLY =
    "model ZOnly {\n"
    "  state z[4]\n"
    "  param W[4, 4] ~ normal(0, 0.5)\n"
    "  param c[4] = 0\n"
    "  param w[4] ~ normal(0, 0.1)\n"
    "  param b = 0\n"
    "  dz/dt = tanh(W @ z + c)\n"
    "}\n";

typedef struct Side {
    Compilation *c;
    const CompiledSet *cs;
    const SemaTrain *tr;
    const IrModel *m; /* the model the train integrates (the copy with the shared block) */
    double *p;
    JitModel *part;   /* the weights' rhs alone (dW/dt), as this layout computes it */
    NdKernels part_k;
    NdKernelFn part_fn;
} Side;

static void die(const char *what)
{
    fprintf(stderr, "bench_shared: %s\n", what);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *v = calloc(n ? n : 1, size);
    if (!v)
        die("out of memory");
    return v;
}

/* MAX_B rings: label 1 inside the unit circle, in a box of +-1.6. */
static double *write_rings(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rings.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write rings.csv");
    NdRandom rng;
    nd_random_seed(&rng, 7);
    double *rows = xcalloc((size_t)MAX_B * 3, sizeof(double));
    fprintf(f, "x[0],x[1],label\n");
    for (int i = 0; i < MAX_B; i++) {
        double x = nd_random_uniform(&rng, -1.6, 1.6), y = nd_random_uniform(&rng, -1.6, 1.6);
        double label = x * x + y * y < 1.0;
        fprintf(f, "%.17g,%.17g,%g\n", x, y, label);
        rows[3 * i] = x, rows[3 * i + 1] = y, rows[3 * i + 2] = label;
    }
    fclose(f);
    return rows;
}

static Side compile_side(const char *dir, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bench.node", dir);
    CompileOptions o = {.path = path, .text = text, .diag_out = stderr,
                        .until = COMPILE_BACKEND, .targets = TARGET_JIT};
    Side s = {.c = compile(&o)};
    if (!s.c->program)
        die("the model does not compile");
    const SemaProgram *prog = s.c->program;
    for (int i = 0; i < prog->n_dirs && !s.tr; i++)
        if (prog->dirs[i].kind == SEMA_TRAIN) {
            s.tr = &prog->dirs[i].train;
            s.cs = compilation_train_kernels(s.c, &prog->dirs[i]);
            s.m = s.tr->augmented;
        }
    if (!s.cs)
        die("no train kernels");
    double **params = xcalloc((size_t)prog->n_models, sizeof *params);
    for (int i = 0; i < prog->n_models; i++)
        params[i] = xcalloc((size_t)prog->models[i]->np, sizeof(double));
    params_init(prog, params);
    s.p = params[0];
    free(params);
    return s;
}

/* A kernel of the weights' rhs alone (state 1, W), laid out as the side's
 * rhs writes it: once into the shared block, or per sample. */
static void compile_part(Side *s)
{
    PlanOutput *o = xcalloc(1, sizeof *o);
    const IrVar *w = &s->m->states[1];
    *o = (PlanOutput){s->m->rhs[1], 0, w->offset, s->m->ny, 0, w->shared, false};
    PlanKernelSpec spec = {"wpart", 1, o, 0};
    JitRequest req = {.n_extra = 1, .extra = &spec, .extra_fns = &s->part_fn};
    s->part = jit_compile_request(s->m, &req, &s->part_k, &s->c->diag);
    if (!s->part)
        die("the weights' kernel does not compile");
    free(o);
}

/* Median time of one evaluation of the weights' rhs alone at B (ns). */
static double time_part(const Side *s, const double *y, int B, int rounds)
{
    size_t n = nd_kernels_state_size(&s->part_k, B);
    double *dy = xcalloc(n, sizeof(double));
    double *work = xcalloc(nd_kernels_work_size(&s->part_k, B) + 1, sizeof(double));
    int reps = (int)(200000 / (B + 8)) + 1;
    double t[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            s->part_fn(0.0, y, s->p, NULL, NULL, dy, NULL, B, work);
        t[r] = (now_s() - t0) / reps * 1e9;
    }
    free(dy), free(work);
    return median(t, rounds);
}

/* The data rows of B samples at both observations: (j * B + b) * 3. */
static double *rows_for(const double *rings, int B)
{
    double *d = xcalloc((size_t)2 * B * 3, sizeof(double));
    for (int j = 0; j < 2; j++)
        memcpy(d + (size_t)j * B * 3, rings, sizeof(double) * (size_t)B * 3);
    return d;
}

/* Median time of one rhs evaluation at B (ns), and of the weights' part
 * alone into *part (when the side has one). */
static double time_rhs(const Side *s, const double *d, int B, int rounds, double *part)
{
    const NdKernels *k = &s->cs->kernels;
    size_t n = nd_kernels_state_size(k, B);
    double *y = xcalloc(n, sizeof(double)), *dy = xcalloc(n, sizeof(double));
    double *work = xcalloc(nd_kernels_work_size(k, B) + 1, sizeof(double));
    s->cs->loss[TRAIN_K_INIT](0.0, NULL, s->p, NULL, d, y, NULL, B, work);
    if (part)
        *part = time_part(s, y, B, rounds);
    int reps = (int)(200000 / (B + 8)) + 1;
    double t[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            k->rhs(0.0, y, s->p, dy, B, work);
        t[r] = (now_s() - t0) / reps * 1e9;
    }
    free(y), free(dy), free(work);
    return median(t, rounds);
}

/* Median time of one loss gradient at B (ms); its loss into *L. */
static double time_gradient(const Side *s, const double *d, int B, int rounds, double *L)
{
    const NdKernels *k = &s->cs->kernels;
    const NdKernelFn *f = s->cs->loss;
    NdLossKernels lk = {f[TRAIN_K_LOSS], f[TRAIN_K_LOSS_GRAD], f[TRAIN_K_FINAL],
                        f[TRAIN_K_FINAL_GRAD], f[TRAIN_K_INIT], f[TRAIN_K_INIT_VJP],
                        3, -1, NULL, NULL};
    NdSolver *tmpl = nd_solver_create(k, ND_RK4, B);
    nd_solver_set_step(tmpl, 0.05);
    NdTrainLoss *tl = nd_train_loss_create(k, &lk, tmpl, ND_GRAD_ADJOINT, B, 2);
    if (!tl)
        die("nd_train_loss_create failed");
    double ts[2] = {0.0, 1.0}, *g = xcalloc((size_t)k->np, sizeof(double)), t[MAX_ROUNDS];
    int reps = B >= 256 ? 1 : 4096 / B / 4 + 1;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            if (nd_train_loss_compute(tl, s->p, 2, ts, d, 1.0 / B, 1.0 / B, L, g) != ND_OK)
                die(nd_train_loss_get_message(tl));
        t[r] = (now_s() - t0) / reps * 1e3;
    }
    nd_train_loss_free(tl);
    nd_solver_free(tmpl);
    free(g);
    return median(t, rounds);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 15;
    char dir[] = "/tmp/bench_shared_XXXXXX";
    if (!mkdtemp(dir))
        die("cannot make a temporary folder");
    double *rings = write_rings(dir);
    char text[4096];
    snprintf(text, sizeof text, TRAIN, "once", COUPLED, "Coupled");
    Side once = compile_side(dir, text);
    snprintf(text, sizeof text, TRAIN, "per_copy", COUPLED, "Coupled");
    Side copy = compile_side(dir, text);
    snprintf(text, sizeof text, TRAIN, "once", ZONLY, "ZOnly");
    Side zonly = compile_side(dir, text);
    if (once.cs->kernels.ns != 16 || copy.cs->kernels.ns != 0)
        die("the two sides do not have the layouts they are named for");
    compile_part(&once);
    compile_part(&copy);
    printf("anodev2's model (z[4] per sample, W[4,4] shared), rk4 h = 0.05 over [0, 1], "
           "medians of %d rounds\n\n", rounds);
    printf("%6s | %25s | %29s | %34s\n", "", "shared part (dW/dt) (ns)",
           "whole rhs per evaluation (ns)", "gradient of the loss (ms)");
    printf("%6s | %8s %9s %6s | %8s %9s %10s | %8s %9s %7s %7s\n", "B", "once", "per_copy",
           "ratio", "once", "per_copy", "z alone", "once", "per_copy", "ratio", "|dL|");
    for (int i = 0; i < NB; i++) {
        int B = BATCHES[i];
        double *d = rows_for(rings, B), w1, w2;
        double r1 = time_rhs(&once, d, B, rounds, &w1), r2 = time_rhs(&copy, d, B, rounds, &w2);
        double rz = time_rhs(&zonly, d, B, rounds, NULL);
        double L1, L2;
        double g1 = time_gradient(&once, d, B, rounds, &L1);
        double g2 = time_gradient(&copy, d, B, rounds, &L2);
        if (fabs(L1 - L2) > 1e-12 * fmax(1.0, fabs(L2)))
            die("the two layouts' losses differ");
        printf("%6d | %8.0f %9.0f %5.0fx | %8.0f %9.0f %10.0f | %8.3f %9.3f %6.2fx %7.1e\n", B,
               w1, w2, w2 / w1, r1, r2, rz, g1, g2, g2 / g1, fabs(L1 - L2));
        free(d);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/rings.csv", dir);
    unlink(path);
    rmdir(dir);
    jit_free(once.part);
    jit_free(copy.part);
    compilation_free(once.c);
    compilation_free(copy.c);
    compilation_free(zonly.c);
    free(rings);
    return 0;
}
