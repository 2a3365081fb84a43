/* Benchmark of the JIT'd right-hand side and its vjp (`make bench`, never a
 * test): the 2-50-2 tanh MLP  dy/dt = W2 @ tanh(W1 @ y^3 + b1) + b2  and
 * compiler/diff's a^T df/dy, a^T df/dp against the same math hand-written in C
 * (compiled -O3 -march=native here), side by side in one run, medians of
 * repeated rounds because the machine is shared. A second table measures the
 * inline-loop / OpenBLAS crossover for matrix products that
 * compiler/llvm/llvm_matmul.c's threshold comes from (docs/codegen.md), and a
 * third the inline transcendental functions of llvm_math.c against libm's.
 * Usage: bench_rhs [--no-crossover] */
#include "llvm_jit.h"
#include "llvm_jit_internal.h"
#include "diff.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_timing.h"

enum { H = 50, NY = 2, NP = H * 2 + H + 2 * H + 2, ROUNDS = 15 };




/* p = [W1 (50x2), b1 (50), W2 (2x50), b2 (2)], row-major. */
static IrModel *mlp_model(IrBuilder *b, Arena *arena)
{
    IrNode *y = ir_state(b, 0, 0, ir_vector_shape(NY));
    IrNode *W1 = ir_param(b, 0, 0, ir_matrix_shape(H, NY));
    IrNode *b1 = ir_param(b, 1, 2 * H, ir_vector_shape(H));
    IrNode *W2 = ir_param(b, 2, 3 * H, ir_matrix_shape(NY, H));
    IrNode *b2 = ir_param(b, 3, 5 * H, ir_vector_shape(NY));
    IrNode *y3 = ir_binary(b, IR_POW, y, ir_scalar(b, 3));
    IrNode *h = ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, W1, y3), b1));
    IrNode **rhs = arena_alloc(arena, sizeof *rhs);
    rhs[0] = ir_add(b, ir_matmul(b, W2, h), b2);
    IrVar *states = arena_alloc(arena, sizeof *states);
    states[0] = (IrVar){.name = "y", .shape = ir_vector_shape(NY), .offset = 0};
    IrVar *params = arena_alloc(arena, 4 * sizeof *params);
    IrNode *leaves[4] = {W1, b1, W2, b2};
    const char *names[4] = {"W1", "b1", "W2", "b2"};
    for (int j = 0; j < 4; j++)
        params[j] = (IrVar){.name = names[j], .shape = leaves[j]->shape, .offset = leaves[j]->offset};
    IrModel *m = arena_alloc(arena, sizeof *m);
    *m = (IrModel){.name = "mlp", .states = states, .n_states = 1, .ny = NY, .params = params,
                   .n_params = 4, .np = NP, .rhs = rhs};
    return m;
}

/* The same model written by hand, per sample, in the IR's summation order. */
static void mlp_c(double t, const double *y, const double *p, double *dydt, int64_t B,
                  double *work)
{
    (void)t;
    const double *W1 = p, *b1 = p + 2 * H, *W2 = p + 3 * H, *b2 = p + 5 * H;
    double *h = work;
    for (int64_t s = 0; s < B; s++) {
        double z0 = y[s * NY] * y[s * NY] * y[s * NY];
        double z1 = y[s * NY + 1] * y[s * NY + 1] * y[s * NY + 1];
        for (int j = 0; j < H; j++)
            h[j] = tanh(W1[2 * j] * z0 + W1[2 * j + 1] * z1 + b1[j]);
        for (int i = 0; i < NY; i++) {
            double acc = 0;
            for (int j = 0; j < H; j++)
                acc += W2[i * H + j] * h[j];
            dydt[s * NY + i] = acc + b2[i];
        }
    }
}

/* Its vjp by hand: out_y[b] = a^T df/dy per sample, out_p = a^T df/dp summed
 * over the batch. work: 2H doubles. */
static void mlp_vjp_c(double t, const double *y, const double *p, const double *a,
                      const double *d, double *out_y, double *out_p, int64_t B, double *work)
{
    (void)t, (void)d;
    const double *W1 = p, *b1 = p + 2 * H, *W2 = p + 3 * H, *b2 = p + 5 * H;
    double *gW1 = out_p, *gb1 = out_p + 2 * H, *gW2 = out_p + 3 * H, *gb2 = out_p + 5 * H;
    double *h = work, *gu = work + H;
    (void)b2;
    memset(out_p, 0, sizeof *out_p * NP);
    for (int64_t s = 0; s < B; s++) {
        const double *ys = y + s * NY, *as = a + s * NY;
        double z0 = ys[0] * ys[0] * ys[0], z1 = ys[1] * ys[1] * ys[1], gz0 = 0, gz1 = 0;
        for (int j = 0; j < H; j++) {
            h[j] = tanh(W1[2 * j] * z0 + W1[2 * j + 1] * z1 + b1[j]);
            double gh = W2[j] * as[0] + W2[H + j] * as[1];
            gu[j] = gh * (1 - h[j] * h[j]);
            gz0 += W1[2 * j] * gu[j];
            gz1 += W1[2 * j + 1] * gu[j];
            gW1[2 * j] += gu[j] * z0;
            gW1[2 * j + 1] += gu[j] * z1;
            gb1[j] += gu[j];
            gW2[j] += as[0] * h[j];
            gW2[H + j] += as[1] * h[j];
        }
        gb2[0] += as[0];
        gb2[1] += as[1];
        out_y[s * NY] = gz0 * 3 * ys[0] * ys[0];
        out_y[s * NY + 1] = gz1 * 3 * ys[1] * ys[1];
    }
}

static double time_vjp(NdKernelFn f, const double *y, const double *p, const double *a,
                       double *oy, double *op, int64_t B, double *work, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        f(0.1 * r, y, p, a, NULL, oy, op, B, work);
    return (now_s() - t0) / reps;
}

static double time_calls(NdRhsFn f, const double *y, const double *p, double *dydt, int64_t B,
                         double *work, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        f(0.1 * r, y, p, dydt, B, work);
    return (now_s() - t0) / reps;
}

static double max_rel_diff(const double *a, const double *b, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(1e-300, fmax(fabs(a[i]), fabs(b[i])));
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* Median of 9 compiles (with the vjp when req asks); *first gets the first,
 * which also pays the process's one-time costs (LLVM initialisation, faulting
 * in libLLVM's pages). */
static double compile_median(const IrModel *m, const JitRequest *req, Diag *diag, double *first)
{
    double ms[9];
    for (int r = 0; r < 9; r++) {
        NdKernels k;
        JitModel *jit = jit_compile_request(m, req, &k, diag);
        if (!jit)
            exit(1);
        ms[r] = jit_compile_ms(jit);
        jit_free(jit);
    }
    *first = ms[0];
    return median(ms, 9);
}

static void bench_mlp(const IrModel *m, Diag *diag)
{
    double first, med = compile_median(m, NULL, diag, &first);
    printf("JIT compile (IR -> callable, median of 9): %.2f ms   [target <= 50 ms]\n", med);
    printf("  first compile in the process: %.2f ms\n", first);
    JitRequest req = {.vjp = 1};
    double first_vjp, med_vjp = compile_median(m, &req, diag, &first_vjp);
    printf("JIT compile of rhs + vjp (one module, median of 9): %.2f ms   [target < 100 ms]\n\n",
           med_vjp);
    NdKernels k, ki; /* the measured rule, and inline loops only (for comparison) */
    JitModel *jit = jit_compile(m, &k, diag);
    cg_set_blas_min_flops(1e30);
    JitModel *jit_inline = jit_compile(m, &ki, diag);
    cg_set_blas_min_flops(-1);
    if (!jit || !jit_inline)
        exit(1);
    double p[NP];
    for (int i = 0; i < NP; i++)
        p[i] = 0.3 * sin(1.7 * i + 0.4);
    printf("%6s %14s %14s %8s %12s %16s\n", "B", "JIT ns/call", "C -O3 ns/call", "ratio",
           "max rel diff", "JIT no-BLAS ns");
    const int64_t batches[3] = {1, 20, 1000};
    for (int bi = 0; bi < 3; bi++) {
        int64_t B = batches[bi];
        double *y = malloc(sizeof *y * (size_t)(B * NY)), *d1 = malloc(sizeof *y * (size_t)(B * NY));
        double *d2 = malloc(sizeof *y * (size_t)(B * NY));
        size_t wk = nd_kernels_work_size(&k, B), wi = nd_kernels_work_size(&ki, B);
        double *work = malloc(sizeof *work * ((wk > wi ? wk : wi) + H));
        for (int64_t i = 0; i < B * NY; i++)
            y[i] = cos(0.37 * (double)i);
        k.rhs(0.0, y, p, d1, B, work);
        mlp_c(0.0, y, p, d2, B, work);
        double diff = max_rel_diff(d1, d2, (int)(B * NY));
        int reps = (int)(20000 / B) + 1;
        double tj[ROUNDS], tc[ROUNDS], ti[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) { /* interleaved, so drift hits all alike */
            tj[r] = time_calls(k.rhs, y, p, d1, B, work, reps);
            tc[r] = time_calls(mlp_c, y, p, d2, B, work, reps);
            ti[r] = time_calls(ki.rhs, y, p, d2, B, work, reps);
        }
        double mj = median(tj, ROUNDS), mc = median(tc, ROUNDS), mi = median(ti, ROUNDS);
        printf("%6lld %14.1f %14.1f %8.3f %12.2e %16.1f\n", (long long)B, mj * 1e9, mc * 1e9,
               mj / mc, diff, mi * 1e9);
        free(y), free(d1), free(d2), free(work);
    }
    printf("(ratio = JIT / hand-written C; target <= 1.2)\n");
    jit_free(jit);
    jit_free(jit_inline);
}

/* The vjp a^T df/dy (per sample) and a^T df/dp (summed over the batch)
 * beside the rhs: JIT against the hand-written mlp_vjp_c. */
static void bench_vjp(const IrModel *m, Diag *diag)
{
    NdKernels k;
    JitRequest req = {.vjp = 1};
    JitModel *jit = jit_compile_request(m, &req, &k, diag);
    if (!jit)
        exit(1);
    double p[NP], gp1[NP], gp2[NP];
    for (int i = 0; i < NP; i++)
        p[i] = 0.3 * sin(1.7 * i + 0.4);
    printf("\nvjp (a^T df/dy per sample, a^T df/dp summed over the batch)\n");
    printf("%6s %12s %14s %14s %8s %12s\n", "B", "rhs ns/call", "vjp JIT ns", "vjp C -O3 ns",
           "ratio", "max rel diff");
    const int64_t batches[3] = {1, 20, 1000};
    for (int bi = 0; bi < 3; bi++) {
        int64_t B = batches[bi];
        size_t n = (size_t)(B * NY);
        double *y = malloc(sizeof *y * n), *a = malloc(sizeof *a * n), *d = malloc(sizeof *d * n);
        double *g1 = malloc(sizeof *g1 * n), *g2 = malloc(sizeof *g2 * n);
        double *work = malloc(sizeof *work * (nd_kernels_work_size(&k, B) + 2 * H));
        for (size_t i = 0; i < n; i++)
            y[i] = cos(0.37 * (double)i), a[i] = sin(0.91 * (double)i + 0.2);
        k.vjp(0.0, y, p, a, NULL, g1, gp1, B, work);
        mlp_vjp_c(0.0, y, p, a, NULL, g2, gp2, B, work);
        double diff = fmax(max_rel_diff(g1, g2, (int)n), max_rel_diff(gp1, gp2, NP));
        int reps = (int)(10000 / B) + 1;
        double tr[ROUNDS], tj[ROUNDS], tc[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            tr[r] = time_calls(k.rhs, y, p, d, B, work, reps);
            tj[r] = time_vjp(k.vjp, y, p, a, g1, gp1, B, work, reps);
            tc[r] = time_vjp(mlp_vjp_c, y, p, a, g2, gp2, B, work, reps);
        }
        double mr = median(tr, ROUNDS), mj = median(tj, ROUNDS), mc = median(tc, ROUNDS);
        printf("%6lld %12.1f %14.1f %14.1f %8.3f %12.2e\n", (long long)B, mr * 1e9, mj * 1e9,
               mc * 1e9, mj / mc, diff);
        free(y), free(a), free(d), free(g1), free(g2), free(work);
    }
    jit_free(jit);
}

/* ---- the inline transcendental functions (llvm_math.c) against libm ---- */

static double ref_sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

static double ref_softplus(double x)
{
    return fmax(x, 0) + log1p(exp(-fabs(x)));
}

typedef struct MathBench {
    const char *name;
    IrOp op;
    bool log1p; /* IR_LOG compiled as log1p (cg_set_log_as_log1p) */
    double (*libm)(double);
    double lo, hi; /* the inputs, evenly spaced */
} MathBench;

static const MathBench math_benches[] = {
    {"exp", IR_EXP, false, exp, -10, 10},
    {"tanh", IR_TANH, false, tanh, -5, 5},
    {"log", IR_LOG, false, log, 1e-3, 10},
    {"log1p", IR_LOG, true, log1p, 0, 1},
    {"sin", IR_SIN, false, sin, -10, 10},
    {"cos", IR_COS, false, cos, -10, 10},
    {"erf", IR_ERF, false, erf, -4, 4},
    {"sigmoid", IR_SIGMOID, false, ref_sigmoid, -10, 10},
    {"softplus", IR_SOFTPLUS, false, ref_softplus, -10, 10},
};
enum { MATH_B = 4096 };

/* libm in a loop, the same shape as the kernel (gcc does not widen the calls). */
static double time_libm(double (*f)(double), const double *x, double *y, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < MATH_B; i++)
            y[i] = f(x[i]);
    return (now_s() - t0) / reps;
}

/* dx/dt = f(x) for one scalar state, a batch of MATH_B: the kernel is then one
 * loop of MATH_B evaluations, widened by the vectoriser. */
static void math_row(const MathBench *mb, Diag *diag)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrNode *x = ir_state(b, 0, 0, ir_scalar_shape());
    IrNode **rhs = arena_alloc(arena, sizeof *rhs);
    rhs[0] = ir_unary(b, mb->op, x);
    IrVar *st = arena_alloc(arena, sizeof *st);
    st[0] = (IrVar){.name = "x", .shape = ir_scalar_shape()};
    IrModel m = {.name = "math", .states = st, .n_states = 1, .ny = 1, .np = 0, .rhs = rhs};
    NdKernels k;
    cg_set_log_as_log1p(mb->log1p);
    JitModel *jit = jit_compile(&m, &k, diag);
    cg_set_log_as_log1p(false);
    if (!jit)
        exit(1);
    double *xs = malloc(MATH_B * sizeof *xs), *y = malloc(MATH_B * sizeof *y);
    double *work = calloc(nd_kernels_work_size(&k, MATH_B) + 1, sizeof *work);
    for (int i = 0; i < MATH_B; i++)
        xs[i] = mb->lo + (mb->hi - mb->lo) * i / (MATH_B - 1);
    double tj[ROUNDS], tl[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) { /* interleaved rounds */
        tj[r] = time_calls(k.rhs, xs, NULL, y, MATH_B, work, 200);
        tl[r] = time_libm(mb->libm, xs, y, 200);
    }
    double nj = median(tj, ROUNDS) * 1e9 / MATH_B, nl = median(tl, ROUNDS) * 1e9 / MATH_B;
    printf("%9s %12.2f %10.2f %8.1f\n", mb->name, nj, nl, nl / nj);
    free(xs), free(y), free(work);
    jit_free(jit);
    arena_free(arena);
}

static void bench_math(Diag *diag)
{
    printf("\ninline transcendental functions (llvm_math.c) vs libm, a map over B = %d, "
           "ns per element, medians of %d rounds\n",
           MATH_B, ROUNDS);
    printf("%9s %12s %10s %8s\n", "function", "inline (JIT)", "libm loop", "speedup");
    for (size_t i = 0; i < sizeof math_benches / sizeof math_benches[0]; i++)
        math_row(&math_benches[i], diag);
}

/* The three ways a product meets the batch (llvm_matmul.c's cg_emit_matmul):
 * STACKED  dx/dt = W @ x: W [m,n] shared, x [n] a state -> one dgemm per batch
 * SINGLE   dx/dt = W @ v: everything shared -> one dgemv per call
 * SAMPLE   dx/dt = A @ z: A [m,n] and z [n] both states -> one dgemv per sample
 * (all square, m == n, so the product has the state's shape) */
typedef enum MatCase { MC_STACKED, MC_SINGLE, MC_SAMPLE } MatCase;

static IrModel *matmul_model(IrBuilder *b, Arena *arena, MatCase mc, int m, int n)
{
    IrModel *mod = arena_alloc(arena, sizeof *mod);
    IrVar *st = arena_alloc(arena, 2 * sizeof *st);
    IrNode **rhs = arena_alloc(arena, 2 * sizeof *rhs);
    IrShape sn = ir_vector_shape(n), smn = ir_matrix_shape(m, n);
    *mod = (IrModel){.name = "matmul", .states = st, .rhs = rhs, .n_states = 1};
    if (mc == MC_SAMPLE) {
        IrNode *A = ir_state(b, 0, 0, smn), *z = ir_state(b, 1, m * n, sn);
        /* dA/dt = 0, dz/dt = A z (square: m == n) */
        st[0] = (IrVar){.name = "A", .shape = smn, .offset = 0};
        st[1] = (IrVar){.name = "z", .shape = sn, .offset = m * n};
        rhs[0] = ir_fill(b, smn, 0);
        rhs[1] = ir_matmul(b, A, z);
        mod->n_states = 2, mod->ny = m * n + n, mod->np = 1;
        return mod;
    }
    IrNode *W = ir_param(b, 0, 0, smn);
    IrNode *x = mc == MC_STACKED ? ir_state(b, 0, 0, sn) : ir_param(b, 1, m * n, sn);
    st[0] = (IrVar){.name = "x", .shape = sn}; /* square: dx/dt = W x has x's shape */
    rhs[0] = ir_matmul(b, W, x);
    mod->ny = m, mod->np = m * n + n;
    return mod;
}

static double time_model(const IrModel *m, double min_flops, int64_t B, Diag *diag)
{
    cg_set_blas_min_flops(min_flops);
    NdKernels k;
    JitModel *jit = jit_compile(m, &k, diag);
    cg_set_blas_min_flops(-1);
    if (!jit)
        exit(1);
    size_t ny = (size_t)m->ny;
    double *y = calloc(ny * (size_t)B, sizeof *y), *d = calloc(ny * (size_t)B, sizeof *d);
    double *p = calloc((size_t)m->np, sizeof *p);
    double *work = calloc(nd_kernels_work_size(&k, B) + 1, sizeof *work);
    for (size_t i = 0; i < ny * (size_t)B; i++)
        y[i] = sin((double)i);
    for (int i = 0; i < m->np; i++)
        p[i] = cos((double)i);
    int reps = (int)(2e6 / ((double)ny * ny * (double)B)) + 3;
    double t[7];
    for (int r = 0; r < 7; r++)
        t[r] = time_calls(k.rhs, y, p, d, B, work, reps);
    free(y), free(d), free(p), free(work);
    jit_free(jit);
    return median(t, 7);
}

static void crossover_row(Diag *diag, MatCase mc, int m, int n, int64_t B)
{
    static const char *names[] = {"stacked", "single", "sample"};
    Arena *arena = arena_new();
    IrModel *mod = matmul_model(ir_builder_new(arena), arena, mc, m, n);
    double tin = time_model(mod, 1e30, B, diag), tbl = time_model(mod, 0, B, diag);
    double flops = (double)m * n * (mc == MC_SINGLE ? 1 : (double)B);
    printf("%8s %4d %4d %6lld %10.0f %12.1f %12.1f %8.2f\n", names[mc], m, n, (long long)B, flops,
           tin * 1e9, tbl * 1e9, tbl / tin);
    arena_free(arena);
}

static void bench_crossover(Diag *diag)
{
    printf("\nmatrix product crossover: inline loops vs OpenBLAS, [m,n] @ [n], batch B\n");
    printf("%8s %4s %4s %6s %10s %12s %12s %8s\n", "case", "m", "n", "B", "flops", "inline ns",
           "BLAS ns", "BLAS/inl");
    const int sq[] = {2, 4, 8, 16, 32, 64};
    const int64_t bs[] = {1, 4, 16, 64, 256, 1024};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++)
        for (size_t j = 0; j < sizeof bs / sizeof bs[0]; j++)
            if ((double)sq[i] * sq[i] * (double)bs[j] <= 300000)
                crossover_row(diag, MC_STACKED, sq[i], sq[i], bs[j]);
    const int sizes[] = {4, 8, 12, 16, 24, 32, 64, 128};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        crossover_row(diag, MC_SINGLE, sizes[i], sizes[i], 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        crossover_row(diag, MC_SAMPLE, sizes[i], sizes[i], 64);
    printf("rule in llvm_matmul.c: BLAS when the reduction is >= 16 long and a call has >= %.0f "
           "multiply-adds,\n  or, for one dgemm over the batch (stacked), >= 8 long and >= 4096\n",
           cg_blas_min_flops());
}

int main(int argc, char **argv)
{
    Diag diag;
    diag_init(&diag, stderr);
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrModel *m = mlp_model(b, arena);
    diff_model_adjoint(b, m);
    bench_mlp(m, &diag);
    bench_vjp(m, &diag);
    bench_math(&diag);
    if (!(argc > 1 && strcmp(argv[1], "--no-crossover") == 0))
        bench_crossover(&diag);
    arena_free(arena);
    return 0;
}
