/* emit-c against the JIT on the spiral forward solve (`make bench_emit_c`,
 * never a test): the torchdiffeq spiral model (2-50-2 tanh MLP on y^3),
 * dopri5(rtol = 1e-7, atol = 1e-9) over linspace(0, 25, 1000), one sample.
 * The JIT side is `nodec run`'s path (LLVM kernels, the runtime linked into
 * nodec); the C side is `nodec emit-c`'s file compiled by the system's cc into
 * a shared object (the embedded solver and the generated kernels, each built
 * with the flags shown) and loaded with dlopen. Both start from the emitted
 * parameters, so they take the very same steps. Medians of repeated rounds
 * (the machine is shared); the ratio C / JIT is the figure of issue 7
 * (target <= 1.1). Usage: bench_emit_c [rounds] */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_timing.h"
#include "llvm_jit.h"
#include "c_codegen.h"
#include "driver.h"
#include "nd_solver.h"

static const char program[] =
    "option seed = 0\n"
    "model Spiral {\n"
    "  state y[2] = [2, 0]\n"
    "  net f = MLP(2, 50, 2, tanh)\n"
    "  dy/dt = f(y^3)\n"
    "}\n"
    "solve Spiral { t = linspace(0, 25, 1000); solver = dopri5(rtol = 1e-7, atol = 1e-9) }\n";

enum { NT = 1000, SOLVES = 20 };

typedef struct Api {
    void (*kernels)(NdKernels *);
    void (*params)(double *);
    NdSolver *(*create)(const NdKernels *, NdMethod, int64_t);
    int (*tolerances)(NdSolver *, double, double);
    int (*solve)(NdSolver *, const double *, const double *, const double *, int, double *);
    void (*free)(NdSolver *);
} Api;

/* Seconds per solve: the median over rounds of SOLVES solves each. */
static double time_solves(const Api *api, const NdKernels *k, const double *p, int rounds,
                          double *yout)
{
    double ts[NT], y0[2] = {2, 0}, *t = malloc(sizeof(double) * (size_t)rounds);
    for (int j = 0; j < NT; j++)
        ts[j] = 25.0 * j / (NT - 1);
    NdSolver *s = api->create(k, ND_DOPRI5, 1);
    api->tolerances(s, 1e-7, 1e-9);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < SOLVES; i++)
            if (api->solve(s, p, y0, ts, NT, yout) != ND_OK)
                fprintf(stderr, "solve failed\n");
        t[r] = (now_s() - t0) / SOLVES;
    }
    api->free(s);
    double med = median(t, rounds);
    free(t);
    return med;
}

/* Nanoseconds per rhs call: the median over rounds of 20000 calls. */
static double time_rhs(const NdKernels *k, const double *p, int rounds)
{
    double y[2] = {0.7, -1.1}, dydt[2], work[512], *t = malloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < 20000; i++) {
            k->rhs(0, y, p, dydt, 1, work);
            y[0] += 1e-9 * dydt[0];
        }
        t[r] = (now_s() - t0) / 20000;
    }
    double med = median(t, rounds);
    free(t);
    return med * 1e9;
}

static void *load(const char *dir, const char *flags, int index)
{
    char cmd[1024], so[256];
    snprintf(so, sizeof so, "%s/spiral%d.so", dir, index);
    snprintf(cmd, sizeof cmd, "cc -std=c99 %s -fPIC -shared -Wl,-Bsymbolic -DNODEC_NO_MAIN "
                              "%s/spiral.c -o %s -lm", flags, dir, so);
    if (system(cmd) != 0)
        return NULL;
    return dlopen(so, RTLD_NOW | RTLD_LOCAL);
}

static Api api_of(void *so)
{
    Api a;
    *(void **)&a.kernels = dlsym(so, "Spiral_kernels");
    *(void **)&a.params = dlsym(so, "Spiral_params");
    *(void **)&a.create = dlsym(so, "nd_solver_create");
    *(void **)&a.tolerances = dlsym(so, "nd_solver_set_tolerances");
    *(void **)&a.solve = dlsym(so, "nd_solve");
    *(void **)&a.free = dlsym(so, "nd_solver_free");
    return a;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    char dir[] = "/tmp/nodec_bench_emit_XXXXXX", path[128];
    if (rounds < 1 || !mkdtemp(dir))
        return 1;
    CompileOptions opts = {.path = "spiral.node", .text = program, .diag_out = stderr,
                           .until = COMPILE_DERIVE, .targets = TARGET_C};
    Compilation *c = compile(&opts);
    snprintf(path, sizeof path, "%s/spiral.c", dir);
    if (c->diag.errors || emit_c_program(c, path) != 0)
        return 1;
    NdKernels kj;
    JitModel *jit = jit_compile(sema_find_model(c->program, "Spiral"), &kj, &c->diag);
    Api japi = {NULL, NULL, nd_solver_create, nd_solver_set_tolerances, nd_solve,
                nd_solver_free};
    const char *flags[3] = {"-O2", "-O2 -march=native", "-O3 -march=native"};
    double *yj = malloc(sizeof(double) * 2 * NT), *yc = malloc(sizeof(double) * 2 * NT);
    printf("spiral forward solve, dopri5 rtol 1e-7 atol 1e-9, %d outputs, median of %d rounds\n",
           NT, rounds);
    for (int f = 0; f < 3; f++) {
        void *so = load(dir, flags[f], f);
        if (!so || !jit) {
            fprintf(stderr, "cannot build or load the emitted C\n");
            return 1;
        }
        Api capi = api_of(so);
        NdKernels kc;
        double p[252];
        capi.kernels(&kc);
        capi.params(p);
        double tj = time_solves(&japi, &kj, p, rounds, yj);
        double tc = time_solves(&capi, &kc, p, rounds, yc);
        double tk = time_solves(&japi, &kc, p, rounds, yc); /* C kernels, nodec's solver */
        double diff = 0;
        for (int i = 0; i < 2 * NT; i++)
            diff = fmax(diff, fabs(yj[i] - yc[i]));
        printf("  JIT %8.1f us   emitted C (cc %-17s) %8.1f us   ratio C/JIT %.3f   "
               "max |diff| %.1e\n", tj * 1e6, flags[f], tc * 1e6, tc / tj, diff);
        printf("      (its kernels under nodec's own solver: %.1f us, ratio %.3f; one rhs call: "
               "JIT %.0f ns, C %.0f ns)\n", tk * 1e6, tk / tj, time_rhs(&kj, p, rounds),
               time_rhs(&kc, p, rounds));
        dlclose(so);
    }
    free(yj);
    free(yc);
    jit_free(jit);
    compilation_free(c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
