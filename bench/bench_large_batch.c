/* Issue 18's large-batch figure (`make bench`, never a test): the JIT'd
 * right-hand side and vjp of an MLP at batch 4096,
 *   dy/dt = W2 tanh(W1 y + b1) + b2,   y in R^D, hidden 512,
 * in GFLOP/s against OpenBLAS dgemm running the same products on the same
 * shapes in the same run (rhs: Y W1^T and H W2^T; vjp: A W2, G W1 for the state
 * part, A^T H and G^T Y for the parameter part), medians of rounds. The
 * target: the kernels at >= 70% of dgemm's throughput.
 * Usage: bench_large_batch [B] */
#include "llvm_jit.h"
#include "diff.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_timing.h"

/* OpenBLAS's CBLAS entry point, as in cblas.h (the runtime's wrapper owns <cblas.h>). */
void cblas_dgemm(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

enum { HID = 512, ROUNDS = 7 };

/* p = [W1 (HID x D), b1 (HID), W2 (D x HID), b2 (D)], row-major. */
static IrModel *wide_mlp(IrBuilder *b, Arena *arena, int D)
{
    long o_b1 = (long)HID * D, o_w2 = o_b1 + HID, o_b2 = o_w2 + (long)D * HID;
    IrNode *y = ir_state(b, 0, 0, ir_vector_shape(D));
    IrNode *W1 = ir_param(b, 0, 0, ir_matrix_shape(HID, D));
    IrNode *b1 = ir_param(b, 1, o_b1, ir_vector_shape(HID));
    IrNode *W2 = ir_param(b, 2, o_w2, ir_matrix_shape(D, HID));
    IrNode *b2 = ir_param(b, 3, o_b2, ir_vector_shape(D));
    IrNode *h = ir_unary(b, IR_TANH, ir_add(b, ir_matmul(b, W1, y), b1));
    IrNode **rhs = arena_alloc(arena, sizeof *rhs);
    rhs[0] = ir_add(b, ir_matmul(b, W2, h), b2);
    IrVar *states = arena_alloc(arena, sizeof *states);
    states[0] = (IrVar){.name = "y", .shape = ir_vector_shape(D), .offset = 0};
    IrVar *params = arena_alloc(arena, 4 * sizeof *params);
    IrNode *leaves[4] = {W1, b1, W2, b2};
    const char *names[4] = {"W1", "b1", "W2", "b2"};
    for (int j = 0; j < 4; j++)
        params[j] = (IrVar){.name = names[j], .shape = leaves[j]->shape, .offset = leaves[j]->offset};
    IrModel *m = arena_alloc(arena, sizeof *m);
    *m = (IrModel){.name = "wide", .states = states, .n_states = 1, .ny = D, .params = params,
                   .n_params = 4, .np = (int)(o_b2 + D), .rhs = rhs};
    return m;
}

static void fill(double *v, size_t n, double scale, double phase)
{
    for (size_t i = 0; i < n; i++)
        v[i] = scale * sin(0.37 * (double)i + phase);
}

/* C(m x n) = op(A) op(B) with op's reduction k, row-major, as the kernels' shapes. */
static void gemm(int ta, int tb, int m, int n, int k, const double *a, int lda, const double *b,
                 int ldb, double *c)
{
    cblas_dgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, n);
}

static void bench_width(int D, int64_t B, Diag *diag)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrModel *m = wide_mlp(b, arena, D);
    diff_model_adjoint(b, m);
    NdKernels k;
    JitRequest req = {.vjp = 1};
    JitModel *jit = jit_compile_request(m, &req, &k, diag);
    if (!jit)
        exit(1);
    size_t ny = (size_t)B * (size_t)D, nh = (size_t)B * HID, np = (size_t)m->np;
    double *y = malloc(sizeof *y * ny), *a = malloc(sizeof *a * ny), *dy = malloc(sizeof *dy * ny);
    double *gy = malloc(sizeof *gy * ny), *p = malloc(sizeof *p * np), *gp = malloc(sizeof *gp * np);
    double *h = malloc(sizeof *h * nh), *g = malloc(sizeof *g * nh);
    double *w = malloc(sizeof *w * np), *work = malloc(sizeof *work * (nd_kernels_work_size(&k, B) + 1));
    fill(y, ny, 1.0, 0.1), fill(a, ny, 1.0, 0.7), fill(p, np, 0.05, 0.3), fill(h, nh, 0.5, 0.2);
    fill(g, nh, 0.5, 0.9);
    const double *W1 = p, *W2 = p + (size_t)HID * D + HID;
    double t_rhs[ROUNDS], t_vjp[ROUNDS], t_g2[ROUNDS], t_g4[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) { /* alternating, so load hits both sides alike */
        double t0 = now_s();
        k.rhs(0.0, y, p, dy, B, work);
        double t1 = now_s();
        k.vjp(0.0, y, p, a, NULL, gy, gp, B, work);
        double t2 = now_s();
        gemm(NO_TRANS, TRANS, (int)B, HID, D, y, D, W1, D, h);   /* Y W1^T */
        gemm(NO_TRANS, TRANS, (int)B, D, HID, h, HID, W2, HID, dy); /* H W2^T */
        double t3 = now_s();
        gemm(NO_TRANS, NO_TRANS, (int)B, HID, D, a, D, W2, HID, g);  /* A W2 */
        gemm(NO_TRANS, NO_TRANS, (int)B, D, HID, g, HID, W1, D, gy); /* G W1 */
        gemm(TRANS, NO_TRANS, D, HID, (int)B, a, D, h, HID, w);      /* A^T H */
        gemm(TRANS, NO_TRANS, HID, D, (int)B, g, HID, y, D, w);      /* G^T Y */
        double t4 = now_s();
        t_rhs[r] = t1 - t0, t_vjp[r] = t2 - t1, t_g2[r] = t3 - t2, t_g4[r] = t4 - t3;
    }
    double flop2 = 2.0 * 2.0 * (double)B * D * HID, flop4 = 2.0 * flop2;
    double rhs = median(t_rhs, ROUNDS), vjp = median(t_vjp, ROUNDS);
    double g2 = median(t_g2, ROUNDS), g4 = median(t_g4, ROUNDS);
    printf("%5d %6lld %-4s %10.3f %10.1f %12.3f %10.1f %9.0f%%\n", D, (long long)B, "rhs",
           rhs * 1e3, flop2 / rhs * 1e-9, g2 * 1e3, flop2 / g2 * 1e-9, 100 * g2 / rhs);
    printf("%5d %6lld %-4s %10.3f %10.1f %12.3f %10.1f %9.0f%%\n", D, (long long)B, "vjp",
           vjp * 1e3, flop4 / vjp * 1e-9, g4 * 1e3, flop4 / g4 * 1e-9, 100 * g4 / vjp);
    free(y), free(a), free(dy), free(gy), free(p), free(gp), free(h), free(g), free(w), free(work);
    jit_free(jit);
    arena_free(arena);
}

int main(int argc, char **argv)
{
    int64_t B = argc > 1 ? atol(argv[1]) : 4096;
    if (B < 1 || B > 1 << 20)
        return fprintf(stderr, "usage: bench_large_batch [B]  (1 <= B <= 2^20)\n"), 2;
    Diag diag;
    diag_init(&diag, stderr);
    printf("MLP D -> %d -> D (tanh) at batch %lld, f64: the JIT's kernels against OpenBLAS dgemm\n"
           "on the same products (medians of %d alternating rounds; GFLOP/s counts the products'\n"
           "2 flops per multiply-add only; %% = dgemm's time / the kernel's, the target >= 70%%)\n\n",
           HID, (long long)B, ROUNDS);
    printf("%5s %6s %-4s %10s %10s %12s %10s %10s\n", "D", "B", "", "JIT ms", "GFLOP/s",
           "dgemm ms", "GFLOP/s", "of dgemm");
    const int widths[] = {2, 16, 64};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        bench_width(widths[i], B, &diag);
    return 0;
}
