/* Benchmark of one training iteration of the spiral demo (`make bench_train`, never a
 * test): LANGUAGE.md 5.3 as written (dopri5 rtol 1e-7 atol 1e-9, 20 windows of 10
 * observations solved as one batch, f64, RMSprop) with `gradient = adjoint` and
 * `gradient = backprop`, run through the real `nodec run` so that the number is
 * what a user gets: batch drawing, compiled loss kernels, the gradient, the
 * optimizer. The history file (log_every = 1) gives each iteration's time and its
 * function evaluations; times are medians after a warm-up, as the machine is shared.
 * bench/torch_spiral.py runs the same iteration in plain PyTorch with the same gradient
 * method (its dopri5 a Python loop; backprop by autograd through the steps, the adjoint
 * as torchdiffeq's odeint_adjoint), with /usr/bin/python3 (Debian's torch; env
 * NODEC_PYTHON overrides), in the same run: the measurements alternate (nodec adjoint,
 * PyTorch adjoint, nodec backprop, PyTorch backprop, --repeats times) and every ratio
 * printed is PyTorch's median over nodec's from those runs. torchdiffeq's own demo
 * (not installed here) was measured in an earlier session at 15 ms per iteration with
 * backprop and 59 ms with its adjoint (issue 6); those figures are printed as a
 * labelled reference only, never divided by.
 * Usage: bench_train [--nodec PATH] [--steps N] [--repeats N] [--no-torch] */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_timing.h"

enum { WARMUP = 20, MAX_STEPS = 100000, MAX_REPEATS = 50, TORCH_ITERS = 100 };

/* torchdiffeq's demo, quoted from an earlier session (issue 6): a reference line only. */
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

/* bench/torch_spiral.py's result for one gradient: its median ms per iteration and nfe. */
typedef struct TorchResult {
    double ms, nfe_fwd, nfe_bwd;
    int threads;
    char version[64];
} TorchResult;

static double json_number(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? atof(p + strlen(pat)) : -1;
}

static void script_dir(char *dir, size_t len)
{
    snprintf(dir, len, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, len, ".");
}

/* 0 when python imports torch; otherwise prints why the ratios are not measured. */
static int torch_available(const char *python)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", python);
    if (system(cmd) == 0)
        return 0;
    printf("vs PyTorch: not measured ('%s' cannot import torch; set NODEC_PYTHON)\n", python);
    return -1;
}

static int run_torch(const char *python, const char *gradient, TorchResult *r)
{
    char dir[PATH_MAX], cmd[3 * PATH_MAX];
    script_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "'%s' '%s/torch_spiral.py' --json --iters %d --gradient %s",
             python, dir, TORCH_ITERS, gradient);
    FILE *p = popen(cmd, "r");
    char line[1024] = "";
    if (!p)
        return -1;
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    int rc = pclose(p);
    *r = (TorchResult){.ms = json_number(line, "ms_per_iter"),
                       .nfe_fwd = json_number(line, "nfe_forward"),
                       .nfe_bwd = json_number(line, "nfe_backward"),
                       .threads = (int)json_number(line, "threads")};
    const char *v = strstr(line, "\"torch\": \"");
    if (v)
        sscanf(v + strlen("\"torch\": \""), "%63[^\"]", r->version);
    if (rc != 0 || r->ms <= 0) {
        fprintf(stderr, "bench_train: %s failed\n", cmd);
        return -1;
    }
    return 0;
}

static void range(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

int main(int argc, char **argv)
{
    char nodec[PATH_MAX];
    long steps = 500;
    int torch = 1, repeats = 5;
    default_nodec(nodec, sizeof nodec);
    const char *python = getenv("NODEC_PYTHON");
    if (!python || !*python)
        python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodec") == 0 && i + 1 < argc)
            snprintf(nodec, sizeof nodec, "%s", argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = 0;
        else
            return fprintf(stderr, "usage: bench_train [--nodec PATH] [--steps N] [--repeats N] "
                                   "[--no-torch]\n"), 2;
    }
    if (steps <= WARMUP || steps > MAX_STEPS)
        return fprintf(stderr, "bench_train: --steps must be in (%d, %d]\n", WARMUP, MAX_STEPS), 2;
    if (repeats < 1 || repeats > MAX_REPEATS)
        return fprintf(stderr, "bench_train: --repeats must be in [1, %d]\n", MAX_REPEATS), 2;
    printf("spiral demo, one training iteration: dopri5 rtol 1e-7 atol 1e-9, 20 windows x 10, f64\n"
           "nodec: medians over %ld iterations after %d of warm-up", steps - WARMUP, WARMUP);
    if (torch)
        printf("; PyTorch (bench/torch_spiral.py,\n%s): medians over %d iterations after 5; "
               "%d alternating rounds (nodec adjoint,\nPyTorch adjoint, nodec backprop, PyTorch "
               "backprop)", python, TORCH_ITERS, repeats);
    else
        printf("; %d rounds", repeats);
    printf(", ms/iter the median of the rounds'\nmedians [their range]; nfe = forward/backward "
           "evaluations\n\n");
    fflush(stdout);
    if (torch && torch_available(python) != 0)
        torch = 0;
    fflush(stdout);

    static Result nr[2][MAX_REPEATS];
    static TorchResult tr[2][MAX_REPEATS];
    for (int k = 0; k < repeats; k++)
        for (int g = 0; g < 2; g++) {
            if (run_nodec(nodec, GRADIENTS[g], steps, &nr[g][k])) {
                fprintf(stderr, "bench_train: '%s' failed (give --nodec PATH)\n", nodec);
                return 1;
            }
            if (torch && run_torch(python, GRADIENTS[g], &tr[g][k]) != 0) {
                printf("vs PyTorch: not measured (bench/torch_spiral.py failed)\n");
                torch = 0;
            }
        }

    printf("%-9s %-8s %9s %17s %9s %8s %8s %11s\n", "gradient", "", "ms/iter", "[range]",
           "mean ms", "nfe fwd", "nfe bwd", "vs PyTorch");
    for (int g = 0; g < 2; g++) {
        double ms[MAX_REPEATS], mean[MAX_REPEATS], fw[MAX_REPEATS], bw[MAX_REPEATS], lo, hi;
        for (int k = 0; k < repeats; k++) {
            ms[k] = nr[g][k].ms;
            mean[k] = nr[g][k].ms_mean;
            fw[k] = nr[g][k].nfe_fwd;
            bw[k] = nr[g][k].nfe_bwd;
        }
        range(ms, repeats, &lo, &hi);
        double nodec_ms = median(ms, repeats);
        char rng[64], ratio[32] = "-";
        snprintf(rng, sizeof rng, "[%.3f-%.3f]", lo, hi);
        double t_ms[MAX_REPEATS], t_fw[MAX_REPEATS], t_bw[MAX_REPEATS], t_lo = 0, t_hi = 0, torch_ms = 0;
        if (torch) {
            for (int k = 0; k < repeats; k++) {
                t_ms[k] = tr[g][k].ms;
                t_fw[k] = tr[g][k].nfe_fwd;
                t_bw[k] = tr[g][k].nfe_bwd;
            }
            range(t_ms, repeats, &t_lo, &t_hi);
            torch_ms = median(t_ms, repeats);
            snprintf(ratio, sizeof ratio, "%.1fx", torch_ms / nodec_ms);
        }
        printf("%-9s %-8s %9.3f %17s %9.3f %8.0f %8.0f %11s\n", GRADIENTS[g], "nodec", nodec_ms,
               rng, median(mean, repeats), median(fw, repeats), median(bw, repeats), ratio);
        if (torch) {
            snprintf(rng, sizeof rng, "[%.2f-%.2f]", t_lo, t_hi);
            printf("%-9s %-8s %9.3f %17s %9s %8.0f %8.0f\n", "", "PyTorch", torch_ms, rng, "-",
                   median(t_fw, repeats), median(t_bw, repeats));
        }
    }
    if (torch)
        printf("\nvs PyTorch: PyTorch's ms/iter over nodec's, the same gradient method on both sides,\n"
               "both measured in this run (torch %s, %d thread%s)\n",
               tr[0][0].version, tr[0][0].threads, tr[0][0].threads == 1 ? "" : "s");
    else
        printf("\nvs PyTorch: not measured in this run (no ratios printed)\n");
    printf("reference only, not measured here: torchdiffeq's own demo, measured in an earlier\n"
           "session (issue 6; torchdiffeq is not installed here): %.0f ms (adjoint), %.0f ms "
           "(backprop)\n",
           TORCHDIFFEQ_MS[0], TORCHDIFFEQ_MS[1]);
    return 0;
}
