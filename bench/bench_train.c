/* Benchmark of one training iteration of the spiral demo (`make bench_train`, never a
 * test): LANGUAGE.md 5.3 as written (dopri5 rtol 1e-7 atol 1e-9, 20 windows of 10
 * observations solved as one batch, f64, RMSprop) with `gradient = adjoint` and
 * `gradient = backprop`, run through the real `nodec run` so that the number is
 * what a user gets: batch drawing, compiled loss kernels, the gradient, the
 * optimizer. The history file (log_every = 1) gives each iteration's time and its
 * function evaluations; times are medians after a warm-up, as the machine is shared.
 * torchdiffeq's demo on these machines: 15 ms per iteration with backprop, 59 ms
 * with its adjoint (issue 6); where PyTorch is installed, bench/torch_spiral.py runs
 * the same iteration in plain PyTorch for a ratio measured here.
 * Usage: bench_train [--nodec PATH] [--steps N] [--no-torch] */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_timing.h"

enum { WARMUP = 20, MAX_STEPS = 100000 };

static const double TORCHDIFFEQ_MS[2] = {59.0, 15.0}; /* adjoint, backprop */
static const char *const GRADIENTS[2] = {"adjoint", "backprop"};

static const char SPIRAL[] =
    "option seed = 0\n"
    "model TrueSpiral {\n"
    "  state y[2] = [2, 0]\n"
    "  const A[2, 2] = [[-0.1, 2.0], [-2.0, -0.1]]\n"
    "  dy/dt = transpose(A) @ y^3\n"
    "}\n"
    "data obs = simulate(TrueSpiral, t = linspace(0, 25, 1000), solver = dopri5(rtol = 1e-7, atol = 1e-9))\n"
    "model Spiral {\n"
    "  state y[2]\n"
    "  net f = MLP(2, 50, 2, tanh)\n"
    "  dy/dt = f(y^3)\n"
    "}\n"
    "train Spiral {\n"
    "  data = obs\n"
    "  loss = mean(abs(y - obs.y))\n"
    "  batch = windows(length = 10, count = 20)\n"
    "  solver = dopri5(rtol = 1e-7, atol = 1e-9)\n"
    "  gradient = %s\n"
    "  optimizer = rmsprop(lr = 1e-3)\n"
    "  steps = %ld\n"
    "  log_every = 1\n"
    "  history = \"history.csv\"\n"
    "}\n";

typedef struct Result {
    double ms, ms_mean; /* per iteration: median, mean */
    double nfe_fwd, nfe_bwd; /* medians */
    long n;
} Result;

/* Reads history.csv: per-iteration seconds (differences) and nfe after the warm-up. */
static int read_history(const char *path, Result *r)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static double dt[MAX_STEPS], fw[MAX_STEPS], bw[MAX_STEPS];
    char line[256];
    double prev = 0, sum = 0;
    long step, nf, nb, n = 0;
    double loss, secs;
    if (!fgets(line, sizeof line, f))
        return fclose(f), -1;
    while (fgets(line, sizeof line, f) &&
           sscanf(line, "%ld,%lf,%ld,%ld,%lf", &step, &loss, &nf, &nb, &secs) == 5) {
        if (step > WARMUP && n < MAX_STEPS) {
            dt[n] = 1e3 * (secs - prev);
            fw[n] = (double)nf;
            bw[n] = (double)nb;
            sum += dt[n++];
        }
        prev = secs;
    }
    fclose(f);
    if (n == 0)
        return -1;
    *r = (Result){.ms_mean = sum / n, .n = n};
    r->ms = median(dt, n);
    r->nfe_fwd = median(fw, n);
    r->nfe_bwd = median(bw, n);
    return 0;
}

static int run_nodec(const char *nodec, const char *gradient, long steps, Result *r)
{
    char dir[] = "/tmp/nodec_bench_train_XXXXXX", path[PATH_MAX], cmd[2 * PATH_MAX];
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/spiral.node", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, SPIRAL, gradient, steps);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && '%s' run --quiet spiral.node", dir, nodec);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/history.csv", dir);
    if (rc == 0)
        rc = read_history(path, r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}

/* nodec next to this binary (both are built in the build folder). */
static void default_nodec(char *out, size_t len)
{
    char self[PATH_MAX - 8]; /* room for "/nodec" in out */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(out, len, "nodec");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(out, len, "%s/nodec", self);
}

/* bench/torch_spiral.py's median ms per iteration, or a negative number. */
static double run_torch(void)
{
    char dir[PATH_MAX], cmd[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(cmd, sizeof cmd, "python3 '%s/torch_spiral.py' --json 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    if (!p)
        return -1;
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    int rc = pclose(p);
    const char *ms = strstr(line, "\"ms_per_iter\": ");
    if (rc != 0 || !ms)
        return -1;
    fputs(line, stdout);
    return atof(ms + strlen("\"ms_per_iter\": "));
}

int main(int argc, char **argv)
{
    char nodec[PATH_MAX];
    long steps = 500;
    int torch = 1;
    default_nodec(nodec, sizeof nodec);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodec") == 0 && i + 1 < argc)
            snprintf(nodec, sizeof nodec, "%s", argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = 0;
        else
            return fprintf(stderr, "usage: bench_train [--nodec PATH] [--steps N] [--no-torch]\n"), 2;
    }
    if (steps <= WARMUP || steps > MAX_STEPS)
        return fprintf(stderr, "bench_train: --steps must be in (%d, %d]\n", WARMUP, MAX_STEPS), 2;
    printf("spiral demo, one training iteration: dopri5 rtol 1e-7 atol 1e-9, 20 windows x 10, f64\n"
           "(medians over %ld iterations after %d of warm-up; nfe = forward/backward evaluations)\n\n",
           steps - WARMUP, WARMUP);
    printf("%-9s %12s %12s %10s %10s %16s\n", "gradient", "ms/iter", "mean ms", "nfe fwd",
           "nfe bwd", "vs torchdiffeq");
    double nodec_bp = -1;
    for (int g = 0; g < 2; g++) {
        Result r;
        if (run_nodec(nodec, GRADIENTS[g], steps, &r)) {
            fprintf(stderr, "bench_train: '%s' failed (give --nodec PATH)\n", nodec);
            return 1;
        }
        printf("%-9s %12.3f %12.3f %10.0f %10.0f %15.1fx\n", GRADIENTS[g], r.ms, r.ms_mean,
               r.nfe_fwd, r.nfe_bwd, TORCHDIFFEQ_MS[g] / r.ms);
        if (g == 1)
            nodec_bp = r.ms;
    }
    printf("\ntorchdiffeq's demo measured on these machines: %.0f ms (adjoint), %.0f ms "
           "(backprop); target: 50x\n",
           TORCHDIFFEQ_MS[0], TORCHDIFFEQ_MS[1]);
    if (torch) {
        double t = run_torch();
        if (t > 0)
            printf("plain PyTorch (bench/torch_spiral.py), backprop: %.3f ms per iteration: "
                   "nodec is %.1fx faster\n", t, t / nodec_bp);
        else
            printf("plain PyTorch: not measured (python3 with torch not found)\n");
    }
    return 0;
}
