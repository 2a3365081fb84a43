/* Benchmark of image ODE-Nets (issue 16; `make bench`, never a test): nodec's side of
 * bench/bench_conv.py, which sets it beside bench/torch_conv.py in one run.
 *
 * (a) The convolutional rhs of examples/odenet_digits.node at a bench size, B = 128
 *     samples of h [16, 8, 8]:
 *         dh/dt = conv2d(K2, tanh(conv2d(K1, h, pad = 1) + b1), pad = 1)
 *     built by hand with the ir_* constructors exactly as sema_conv.c lowers it
 *     (reshape(reshape(K, [Co, Ci*9]) @ im2col(x), [Co, Ho, Wo]), b1 [16, 1, 1] stretched
 *     by one broadcast per axis), JIT-compiled, and timed per call (f64), with its vjp
 *     (diff_model_adjoint: a^T df/dh per sample, a^T df/dp summed over the batch).
 *     Beside them, for the where-does-the-time-go question: a hand-written C rhs and vjp
 *     (im2col over a chunk of samples, cblas_dgemm, col2im; checked against ir_eval) that
 *     check the JIT's numbers and show what one core does with the same flops, JIT models
 *     of the parts alone (im2col, col2im, transpose, the two kinds of product, one conv
 *     and its vjp) and the hand-written im2col and col2im.
 * (b) The digits ODE-Net's training iteration: `nodec run` on a copy of
 *     examples/odenet_digits.node with the OdeNet train only, fewer steps and a history
 *     file, whose seconds column (docs/training.md) gives the time per step after the first
 *     logged one (compilation and the first steps excluded).
 *
 * (c) Both again in single precision (JitRequest.f32, `nodec run --precision f32`), checked
 *     against the double kernels to float rounding.
 *
 * Usage: bench_conv [--json] [--rounds R] [--nodec PATH] [--examples DIR] [--steps N]
 *                   [--no-train] [--no-parts] [--no-jit] [--profile-vjp N]
 *                   [--emit-llvm]
 * --json prints one JSON object per line (what bench_conv.py reads); --no-jit times the
 * hand-written C only; --profile-vjp N only calls the JIT's vjp N times (for perf record);
 * --emit-llvm prints the optimised rhs and vjp module. */
#include "llvm_jit.h"
#include "llvm_jit_internal.h"
#include "diff.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_timing.h"

void openblas_set_num_threads(int n);

enum { BATCH = 128, CH = 16, SZ = 8, PIX = SZ * SZ, NY = CH * PIX, KC = CH * 9 };
enum { OFF_K1 = 0, OFF_B1 = CH * KC, OFF_K2 = CH * KC + CH, NP = 2 * CH * KC + CH };

static int json, no_jit, emit_llvm, profile_vjp; /* profile_vjp: calls of the JIT's vjp alone */

static void report_dtype(const char *name, const char *dtype, double seconds, const char *extra)
{
    if (json)
        printf("{\"case\": \"%s\", \"dtype\": \"%s\", \"seconds\": %.9g%s%s}\n", name, dtype,
               seconds, extra ? ", " : "", extra ? extra : "");
    else
        printf("%-28s %-8s %12.1f us%s%s\n", name, dtype, seconds * 1e6, extra ? "   " : "",
               extra ? extra : "");
    fflush(stdout);
}

static void report(const char *name, double seconds, const char *extra)
{
    report_dtype(name, "float64", seconds, extra);
}

/* ---- the models ---- */

static IrNode *conv(IrBuilder *b, IrNode *K, IrNode *x)
{
    IrNode *km = ir_reshape(b, K, ir_matrix_shape(CH, KC));
    IrNode *y = ir_matmul(b, km, ir_im2col(b, x, 3, 3, 1, 1));
    int dims[3] = {CH, SZ, SZ};
    return ir_reshape(b, y, ir_tensor_shape(3, dims));
}

static IrModel *new_model(Arena *arena, const char *name, int n_states, int n_params)
{
    IrModel *m = arena_alloc(arena, sizeof *m);
    *m = (IrModel){.name = name, .n_states = n_states, .n_params = n_params};
    m->states = arena_alloc(arena, sizeof *m->states * (size_t)n_states);
    m->rhs = arena_alloc(arena, sizeof *m->rhs * (size_t)n_states);
    m->params = arena_alloc(arena, sizeof *m->params * (size_t)(n_params ? n_params : 1));
    return m;
}

/* dh/dt = conv2d(K2, tanh(conv2d(K1, h, pad = 1) + b1), pad = 1). With full = 0, the
 * first convolution alone: dh/dt = conv2d(K1, h, pad = 1). */
static IrModel *conv_model(IrBuilder *b, Arena *arena, int full)
{
    int d3[3] = {CH, SZ, SZ}, k4[4] = {CH, CH, 3, 3}, b3[3] = {CH, 1, 1};
    IrShape hs = ir_tensor_shape(3, d3), ks = ir_tensor_shape(4, k4), bs = ir_tensor_shape(3, b3);
    IrNode *h = ir_state(b, 0, 0, hs);
    IrNode *K1 = ir_param(b, 0, OFF_K1, ks), *b1 = ir_param(b, 1, OFF_B1, bs);
    IrNode *K2 = ir_param(b, 2, OFF_K2, ks);
    IrModel *m = new_model(arena, full ? "conv_rhs" : "conv1", 1, 3);
    m->states[0] = (IrVar){.name = "h", .shape = hs, .offset = 0};
    m->ny = NY;
    m->params[0] = (IrVar){.name = "K1", .shape = ks, .offset = OFF_K1};
    m->params[1] = (IrVar){.name = "b1", .shape = bs, .offset = OFF_B1};
    m->params[2] = (IrVar){.name = "K2", .shape = ks, .offset = OFF_K2};
    m->np = NP;
    if (!full) {
        m->rhs[0] = conv(b, K1, h);
        m->n_params = 1, m->np = OFF_B1;
        return m;
    }
    /* b1 stretched as sema_broadcast_to does: its kept dimension, then axes 1 and 2 */
    IrNode *bb = ir_reshape(b, b1, ir_vector_shape(CH));
    bb = ir_broadcast_axis(b, bb, 1, SZ);
    bb = ir_broadcast_axis(b, bb, 2, SZ);
    IrNode *u = ir_unary(b, IR_TANH, ir_add(b, conv(b, K1, h), bb));
    m->rhs[0] = conv(b, K2, u);
    return m;
}

/* The parts alone, each a model of two states: an input u that stays (du/dt = 0) and
 * an output v, at B = 128:
 *   IM2COL     u [16, 8, 8],  dv/dt = im2col(u)             v [144, 64]
 *   MATMUL     u [144, 64],   dv/dt = K @ u, K [16, 144]    v [16, 64]  (a conv's product)
 *   COL2IM     u [144, 64],   dv/dt = col2im(u)             v [16, 8, 8]
 *   TRANSPOSE  u [144, 64],   dv/dt = transpose(u)          v [64, 144] (the vjp's cols^T)
 *   MATMUL_T   u [144, 64], w [16, 64], dv/dt = w @ transpose(u)   v [16, 144]
 *              (a filter's gradient per sample, before its sum over the batch) */
enum { PART_IM2COL, PART_MATMUL, PART_COL2IM, PART_TRANSPOSE, PART_MATMUL_T, N_IR_PARTS };

static IrModel *part_model(IrBuilder *b, Arena *arena, int which)
{
    int d3[3] = {CH, SZ, SZ};
    IrShape is = ir_tensor_shape(3, d3), cs = ir_matrix_shape(KC, PIX);
    IrShape us = which == PART_IM2COL ? is : cs;
    IrModel *m = new_model(arena, "part", which == PART_MATMUL_T ? 3 : 2, 1);
    IrNode *u = ir_state(b, 0, 0, us), *K = ir_param(b, 0, 0, ir_matrix_shape(CH, KC)), *v;
    int nu = ir_shape_size(us);
    m->params[0] = (IrVar){.name = "K", .shape = K->shape, .offset = 0};
    m->np = CH * KC;
    m->states[0] = (IrVar){.name = "u", .shape = us, .offset = 0};
    m->rhs[0] = ir_fill(b, us, 0);
    int off = nu;
    if (which == PART_MATMUL_T) {
        IrShape ws = ir_matrix_shape(CH, PIX);
        IrNode *w = ir_state(b, 1, nu, ws);
        m->states[1] = (IrVar){.name = "w", .shape = ws, .offset = nu};
        m->rhs[1] = ir_fill(b, ws, 0);
        off += CH * PIX;
        v = ir_matmul(b, w, ir_transpose(b, u));
    } else if (which == PART_IM2COL)
        v = ir_im2col(b, u, 3, 3, 1, 1);
    else if (which == PART_MATMUL)
        v = ir_matmul(b, K, u);
    else if (which == PART_COL2IM)
        v = ir_col2im(b, u, is, 3, 3, 1, 1);
    else
        v = ir_transpose(b, u);
    int last = m->n_states - 1;
    m->states[last] = (IrVar){.name = "v", .shape = v->shape, .offset = off};
    m->rhs[last] = v;
    m->ny = off + ir_shape_size(v->shape);
    return m;
}

/* ---- the hand-written rhs: im2col over NB samples at a time, one dgemm per conv ---- */

enum { NB = 8, COLS = NB * PIX };

/* cols [KC, COLS], column s*64 + pixel, from x whose element (s, c, i, j) is at
 * x[s*ss + c*sc + i*8 + j]; zero outside the image (pad 1). */
static void im2col_c(const double *x, long ss, long sc, int ns, double *cols)
{
    for (int c = 0; c < CH; c++)
        for (int ki = 0; ki < 3; ki++)
            for (int kj = 0; kj < 3; kj++) {
                double *row = cols + (size_t)((c * 3 + ki) * 3 + kj) * COLS;
                for (int s = 0; s < ns; s++) {
                    const double *xc = x + s * ss + c * sc;
                    for (int i = 0; i < SZ; i++) {
                        int si = i + ki - 1;
                        double *r = row + s * PIX + i * SZ;
                        if (si < 0 || si >= SZ) {
                            memset(r, 0, sizeof *r * SZ);
                            continue;
                        }
                        for (int j = 0; j < SZ; j++) {
                            int sj = j + kj - 1;
                            r[j] = sj < 0 || sj >= SZ ? 0.0 : xc[si * SZ + sj];
                        }
                    }
                }
            }
}

/* work: 2 * KC*COLS + 2 * CH*COLS doubles */
static void conv_rhs_c(const double *y, const double *p, double *dydt, int64_t B, double *work)
{
    double *cols = work, *u = cols + KC * COLS, *v = u + CH * COLS;
    for (int64_t s0 = 0; s0 < B; s0 += NB) {
        int ns = B - s0 < NB ? (int)(B - s0) : NB;
        im2col_c(y + s0 * NY, NY, PIX, ns, cols);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CH, ns * PIX, KC, 1.0, p + OFF_K1,
                    KC, cols, COLS, 0.0, u, COLS);
        for (int c = 0; c < CH; c++)
            for (int k = 0; k < ns * PIX; k++)
                u[c * COLS + k] = tanh(u[c * COLS + k] + p[OFF_B1 + c]);
        im2col_c(u, PIX, COLS, ns, cols);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CH, ns * PIX, KC, 1.0, p + OFF_K2,
                    KC, cols, COLS, 0.0, v, COLS);
        for (int s = 0; s < ns; s++)
            for (int c = 0; c < CH; c++)
                memcpy(dydt + (s0 + s) * NY + c * PIX, v + c * COLS + s * PIX, sizeof *v * PIX);
    }
}

/* x += col2im(cols): im2col_c's transpose (x zeroed by the caller). */
static void col2im_c(const double *cols, long ss, long sc, int ns, double *x)
{
    for (int c = 0; c < CH; c++)
        for (int ki = 0; ki < 3; ki++)
            for (int kj = 0; kj < 3; kj++) {
                const double *row = cols + (size_t)((c * 3 + ki) * 3 + kj) * COLS;
                for (int s = 0; s < ns; s++) {
                    double *xc = x + s * ss + c * sc;
                    for (int i = 0; i < SZ; i++) {
                        int si = i + ki - 1;
                        if (si < 0 || si >= SZ)
                            continue;
                        const double *r = row + s * PIX + i * SZ;
                        for (int j = 0; j < SZ; j++) {
                            int sj = j + kj - 1;
                            if (sj >= 0 && sj < SZ)
                                xc[si * SZ + sj] += r[j];
                        }
                    }
                }
            }
}

/* The vjp by hand, as a framework's backward does it: the forward again (cols1,
 * u = tanh(K1 cols1 + b1), cols2), then gK2 += a cols2^T, g_u = col2im(K2^T a),
 * g_z = g_u (1 - u^2), gb1 += sum g_z, gK1 += g_z cols1^T, gy = col2im(K1^T g_z).
 * work: hand_vjp_work doubles. */
enum { HAND_VJP_WORK = 3 * KC * COLS + 3 * CH * COLS };
static void conv_vjp_c(const double *y, const double *p, const double *a, double *gy, double *gp,
                       int64_t B, double *work)
{
    double *cols1 = work, *cols2 = cols1 + KC * COLS, *gcols = cols2 + KC * COLS;
    double *u = gcols + KC * COLS, *am = u + CH * COLS, *gz = am + CH * COLS;
    memset(gp, 0, sizeof *gp * NP);
    for (int64_t s0 = 0; s0 < B; s0 += NB) {
        int ns = B - s0 < NB ? (int)(B - s0) : NB, nc = ns * PIX;
        im2col_c(y + s0 * NY, NY, PIX, ns, cols1);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CH, nc, KC, 1.0, p + OFF_K1, KC,
                    cols1, COLS, 0.0, u, COLS);
        for (int c = 0; c < CH; c++)
            for (int k = 0; k < nc; k++)
                u[c * COLS + k] = tanh(u[c * COLS + k] + p[OFF_B1 + c]);
        im2col_c(u, PIX, COLS, ns, cols2);
        for (int s = 0; s < ns; s++) /* a in the chunk's [16, COLS] layout */
            for (int c = 0; c < CH; c++)
                memcpy(am + c * COLS + s * PIX, a + (s0 + s) * NY + c * PIX, sizeof *am * PIX);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, CH, KC, nc, 1.0, am, COLS, cols2, COLS,
                    1.0, gp + OFF_K2, KC);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KC, nc, CH, 1.0, p + OFF_K2, KC, am,
                    COLS, 0.0, gcols, COLS);
        memset(gz, 0, sizeof *gz * CH * COLS);
        col2im_c(gcols, PIX, COLS, ns, gz);
        for (int c = 0; c < CH; c++) {
            double sb = 0;
            for (int k = 0; k < nc; k++) {
                double v = u[c * COLS + k];
                sb += gz[c * COLS + k] *= 1 - v * v;
            }
            gp[OFF_B1 + c] += sb;
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, CH, KC, nc, 1.0, gz, COLS, cols1, COLS,
                    1.0, gp + OFF_K1, KC);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KC, nc, CH, 1.0, p + OFF_K1, KC, gz,
                    COLS, 0.0, gcols, COLS);
        memset(gy + s0 * NY, 0, sizeof *gy * (size_t)(ns * NY));
        col2im_c(gcols, NY, PIX, ns, gy + s0 * NY);
    }
}

/* ---- timing ---- */

typedef void (*HandFn)(const double *y, const double *p, double *dydt, int64_t B, double *work);

static double time_rhs(NdRhsFn f, HandFn hf, const double *y, const double *p, double *d,
                       int64_t B, double *work, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        if (f)
            f(0.1 * r, y, p, d, B, work);
        else
            hf(y, p, d, B, work);
    return (now_s() - t0) / reps;
}

static double time_vjp(NdKernelFn f, const double *y, const double *p, const double *a, double *oy,
                       double *op, int64_t B, double *work, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        f(0.1 * r, y, p, a, NULL, oy, op, B, work);
    return (now_s() - t0) / reps;
}

/* Calls that last about 30 ms, from one timed call. */
static int reps_for(double one)
{
    int n = (int)(0.03 / (one > 1e-9 ? one : 1e-9));
    return n < 1 ? 1 : n;
}

static double max_rel_diff(const double *a, const double *b, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fmax(fabs(a[i]), fabs(b[i])));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]) / fmax(scale, 1e-300));
    return worst;
}

static void fill(double *v, size_t n, double scale, double phase)
{
    for (size_t i = 0; i < n; i++)
        v[i] = scale * sin(0.7311 * (double)i + phase);
}

/* The hand-written rhs and vjp against the IR's interpreter (ir_eval: the rhs on a
 * first, a middle and a last sample; the vjp's a^T df/dh on those and its a^T df/dp
 * summed over all samples), so that they can check the JIT; their times with --no-jit. */
static int check_hand_c(const IrModel *m)
{
    size_t n = (size_t)(BATCH * NY);
    double *y = malloc(sizeof *y * n), *d = malloc(sizeof *d * n), *p = malloc(sizeof *p * NP);
    double *a = malloc(sizeof *a * n), *gy = malloc(sizeof *gy * n), *gp = malloc(sizeof *gp * NP);
    double *rp = calloc(NP, sizeof *rp), *one = malloc(sizeof *one * NP);
    double *work = malloc(sizeof *work * HAND_VJP_WORK), ref[NY], worst = 0, worst_vjp = 0;
    fill(y, n, 1.0, 0.3), fill(a, n, 1.0, 1.1), fill(p, NP, 0.1, 0.7);
    conv_rhs_c(y, p, d, BATCH, work);
    conv_vjp_c(y, p, a, gy, gp, BATCH, work);
    for (int s = 0; s < BATCH; s++) {
        IrEnv env = {.t = 0, .y = y + (size_t)s * NY, .p = p, .a = a + (size_t)s * NY};
        double *outs[4] = {ref, one + OFF_K1, one + OFF_B1, one + OFF_K2};
        if (s == 0 || s == 77 || s == BATCH - 1) {
            ir_eval(1, m->rhs, 0.0, env.y, p, outs);
            worst = fmax(worst, max_rel_diff(ref, d + (size_t)s * NY, NY));
        }
        ir_eval_env(1, m->adj_state, &env, outs);
        ir_eval_env(3, m->adj_param, &env, outs + 1);
        if (s == 0 || s == 77 || s == BATCH - 1)
            worst_vjp = fmax(worst_vjp, max_rel_diff(ref, gy + (size_t)s * NY, NY));
        for (int k = 0; k < NP; k++)
            rp[k] += one[k];
    }
    worst_vjp = fmax(worst_vjp, max_rel_diff(rp, gp, NP));
    if (no_jit) {
        double t[9], tv[9];
        int reps = reps_for(time_rhs(NULL, conv_rhs_c, y, p, d, BATCH, work, 1));
        double t0 = now_s();
        conv_vjp_c(y, p, a, gy, gp, BATCH, work);
        int rv = reps_for(now_s() - t0);
        for (int r = 0; r < 9; r++) {
            t[r] = time_rhs(NULL, conv_rhs_c, y, p, d, BATCH, work, reps);
            t0 = now_s();
            for (int k = 0; k < rv; k++)
                conv_vjp_c(y, p, a, gy, gp, BATCH, work);
            tv[r] = (now_s() - t0) / rv;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "\"max_rel_diff_vs_ir_eval\": %.3g", worst);
        report("hand_c_rhs", median(t, 9), extra);
        snprintf(extra, sizeof extra, "\"max_rel_diff_vs_ir_eval\": %.3g", worst_vjp);
        report("hand_c_vjp", median(tv, 9), extra);
    }
    free(y), free(d), free(p), free(a), free(gy), free(gp), free(rp), free(one), free(work);
    if (worst > 1e-12 || worst_vjp > 1e-12)
        fprintf(stderr, "bench_conv: the hand-written rhs is %.3g, its vjp %.3g off ir_eval\n", worst,
                worst_vjp);
    return worst <= 1e-12 && worst_vjp <= 1e-12;
}

static void bench_rhs_vjp(Diag *diag, int rounds)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrModel *m = conv_model(b, arena, 1);
    diff_model_adjoint(b, m);
    const int64_t B = BATCH;
    if (emit_llvm) /* the optimised module, rhs and vjp, for reading where the time goes */
        exit(cg_print_llvm(stdout, m, false, diag));
    if (!profile_vjp && !check_hand_c(m))
        exit(1);
    if (no_jit)
        return;
    NdKernels k;
    JitRequest req = {.vjp = 1};
    JitModel *jit = jit_compile_request(m, &req, &k, diag);
    if (!jit)
        exit(1);
    size_t n = (size_t)(B * NY), wk = nd_kernels_work_size(&k, B);
    size_t wh = HAND_VJP_WORK;
    double *y = malloc(sizeof *y * n), *a = malloc(sizeof *a * n), *d1 = malloc(sizeof *y * n);
    double *d2 = malloc(sizeof *y * n), *gy = malloc(sizeof *y * n), *p = malloc(sizeof *p * NP);
    double *gp = malloc(sizeof *p * NP), *yp = malloc(sizeof *y * n);
    double *work = malloc(sizeof *work * (wk > wh ? wk : wh));
    fill(y, n, 1.0, 0.3), fill(a, n, 1.0, 1.1), fill(p, NP, 0.1, 0.7);
    if (profile_vjp) { /* for perf record: nothing else in the profile but the compile */
        for (int r = 0; r < profile_vjp; r++)
            k.vjp(0.0, y, p, a, NULL, gy, gp, B, work);
        exit(0);
    }
    k.rhs(0.0, y, p, d1, B, work);
    conv_rhs_c(y, p, d2, B, work);
    double diff = max_rel_diff(d1, d2, n);
    /* the vjp against a central difference of the rhs along y itself:
       a . (f(y + e y) - f(y - e y)) / 2e  ==  (a^T df/dy) . y */
    k.vjp(0.0, y, p, a, NULL, gy, gp, B, work);
    double e = 1e-5, fd = 0, an = 0;
    for (size_t i = 0; i < n; i++)
        yp[i] = y[i] * (1 + e);
    k.rhs(0.0, yp, p, d2, B, work);
    for (size_t i = 0; i < n; i++)
        yp[i] = y[i] * (1 - e), fd += a[i] * d2[i];
    k.rhs(0.0, yp, p, d2, B, work);
    for (size_t i = 0; i < n; i++)
        fd -= a[i] * d2[i], an += gy[i] * y[i];
    fd /= 2 * e;
    /* and along the parameters: (a^T df/dp) . p  ==  a . (f(p + e p) - f(p - e p)) / 2e */
    double *pp = malloc(sizeof *pp * NP), fdp = 0, anp = 0;
    for (int i = 0; i < NP; i++)
        pp[i] = p[i] * (1 + e), anp += gp[i] * p[i];
    k.rhs(0.0, y, pp, d2, B, work);
    for (size_t i = 0; i < n; i++)
        fdp += a[i] * d2[i];
    for (int i = 0; i < NP; i++)
        pp[i] = p[i] * (1 - e);
    k.rhs(0.0, y, pp, d2, B, work);
    for (size_t i = 0; i < n; i++)
        fdp -= a[i] * d2[i];
    fdp /= 2 * e;
    double vjp_err = fmax(fabs(fd - an) / fabs(fd), fabs(fdp - anp) / fabs(fdp));
    double *gy2 = malloc(sizeof *gy2 * n), *gp2 = malloc(sizeof *gp2 * NP);
    conv_vjp_c(y, p, a, gy2, gp2, B, work);
    double vjp_diff = fmax(max_rel_diff(gy, gy2, n), max_rel_diff(gp, gp2, NP));

    int rr = reps_for(time_rhs(k.rhs, NULL, y, p, d1, B, work, 1));
    int rh = reps_for(time_rhs(NULL, conv_rhs_c, y, p, d2, B, work, 1));
    int rv = reps_for(time_vjp(k.vjp, y, p, a, gy, gp, B, work, 1));
    double t0 = now_s();
    conv_vjp_c(y, p, a, gy2, gp2, B, work);
    int rhv = reps_for(now_s() - t0);
    double *thv = malloc(sizeof *thv * (size_t)rounds);
    double *tr = malloc(sizeof *tr * (size_t)rounds), *th = malloc(sizeof *th * (size_t)rounds);
    double *tv = malloc(sizeof *tv * (size_t)rounds);
    for (int r = 0; r < rounds; r++) { /* interleaved, so drift hits all alike */
        tr[r] = time_rhs(k.rhs, NULL, y, p, d1, B, work, rr);
        th[r] = time_rhs(NULL, conv_rhs_c, y, p, d2, B, work, rh);
        tv[r] = time_vjp(k.vjp, y, p, a, gy, gp, B, work, rv);
        t0 = now_s();
        for (int q = 0; q < rhv; q++)
            conv_vjp_c(y, p, a, gy2, gp2, B, work);
        thv[r] = (now_s() - t0) / rhv;
    }
    char extra[160];
    snprintf(extra, sizeof extra, "\"max_rel_diff_vs_hand_c\": %.3g, \"compile_ms\": %.1f", diff,
             jit_compile_ms(jit));
    report("conv_rhs", median(tr, rounds), extra);
    snprintf(extra, sizeof extra, "\"rel_err_vs_central_diff\": %.3g, \"max_rel_diff_vs_hand_c\": %.3g",
             vjp_err, vjp_diff);
    report("conv_vjp", median(tv, rounds), extra);
    report("hand_c_rhs", median(th, rounds), "\"what\": \"im2col + cblas_dgemm, 8 samples a chunk\"");
    report("hand_c_vjp", median(thv, rounds), "\"what\": \"forward again, 4 cblas_dgemm, col2im\"");
    free(gy2), free(gp2), free(thv);
    free(y), free(a), free(d1), free(d2), free(gy), free(p), free(gp), free(yp), free(pp);
    free(work), free(tr), free(th), free(tv);
    jit_free(jit);
    arena_free(arena);
}

/* The kernels of an f32 request (JitRequest.f32): the float signatures that the
 * table's double-typed slots hold (llvm_jit.h). */
typedef void (*RhsF32)(float t, const float *y, const float *p, float *dydt, int64_t B,
                       float *work);
typedef void (*KernelF32)(float t, const float *y, const float *p, const float *a,
                          const float *d, float *out0, float *out1, int64_t B, float *work);

static float *to_floats(const double *v, size_t n)
{
    float *f = malloc(sizeof *f * n);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    return f;
}

/* The same conv rhs and vjp compiled in single precision (option precision = f32),
 * timed like the f64 ones, and checked against them (to float rounding). */
static void bench_rhs_vjp_f32(Diag *diag, int rounds)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrModel *m = conv_model(b, arena, 1);
    diff_model_adjoint(b, m);
    const int64_t B = BATCH;
    NdKernels k64, k32;
    JitRequest req64 = {.vjp = 1}, req32 = {.vjp = 1, .f32 = true};
    JitModel *jit64 = jit_compile_request(m, &req64, &k64, diag);
    JitModel *jit32 = jit_compile_request(m, &req32, &k32, diag);
    if (!jit64 || !jit32)
        exit(1);
    RhsF32 rhs = (RhsF32)(void (*)(void))k32.rhs;
    KernelF32 vjp = (KernelF32)(void (*)(void))k32.vjp;
    size_t n = (size_t)(B * NY), wk = nd_kernels_work_size(&k32, B);
    double *y = malloc(sizeof *y * n), *a = malloc(sizeof *a * n), *p = malloc(sizeof *p * NP);
    double *d = malloc(sizeof *d * n), *gy = malloc(sizeof *gy * n), *gp = malloc(sizeof *gp * NP);
    double *w64 = malloc(sizeof *w64 * nd_kernels_work_size(&k64, B));
    fill(y, n, 1.0, 0.3), fill(a, n, 1.0, 1.1), fill(p, NP, 0.1, 0.7);
    float *yf = to_floats(y, n), *af = to_floats(a, n), *pf = to_floats(p, NP);
    float *df = malloc(sizeof *df * n), *gyf = malloc(sizeof *gyf * n), *gpf = malloc(sizeof *gpf * NP);
    float *work = malloc(sizeof *work * wk);
    k64.rhs(0.0, y, p, d, B, w64);
    k64.vjp(0.0, y, p, a, NULL, gy, gp, B, w64);
    rhs(0.0f, yf, pf, df, B, work);
    vjp(0.0f, yf, pf, af, NULL, gyf, gpf, B, work);
    double drhs = 0, dvjp = 0, big = 0, bigv = 0;
    for (size_t i = 0; i < n; i++) {
        drhs = fmax(drhs, fabs(df[i] - d[i])), big = fmax(big, fabs(d[i]));
        dvjp = fmax(dvjp, fabs(gyf[i] - gy[i])), bigv = fmax(bigv, fabs(gy[i]));
    }
    double one = now_s();
    rhs(0.1f, yf, pf, df, B, work);
    int rr = reps_for(now_s() - one);
    one = now_s();
    vjp(0.1f, yf, pf, af, NULL, gyf, gpf, B, work);
    int rv = reps_for(now_s() - one);
    double *tr = malloc(sizeof *tr * (size_t)rounds), *tv = malloc(sizeof *tv * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int q = 0; q < rr; q++)
            rhs(0.1f * (float)q, yf, pf, df, B, work);
        tr[r] = (now_s() - t0) / rr;
        t0 = now_s();
        for (int q = 0; q < rv; q++)
            vjp(0.1f * (float)q, yf, pf, af, NULL, gyf, gpf, B, work);
        tv[r] = (now_s() - t0) / rv;
    }
    char extra[160];
    snprintf(extra, sizeof extra, "\"max_diff_vs_f64_over_max\": %.3g, \"compile_ms\": %.1f",
             drhs / big, jit_compile_ms(jit32));
    report_dtype("conv_rhs", "float32", median(tr, rounds), extra);
    snprintf(extra, sizeof extra, "\"max_diff_vs_f64_over_max\": %.3g", dvjp / bigv);
    report_dtype("conv_vjp", "float32", median(tv, rounds), extra);
    free(y), free(a), free(p), free(d), free(gy), free(gp), free(w64), free(yf), free(af);
    free(pf), free(df), free(gyf), free(gpf), free(work), free(tr), free(tv);
    jit_free(jit64);
    jit_free(jit32);
    arena_free(arena);
}

/* The rhs of m (and its vjp when vjp) at B = 128, median of rounds. */
static void bench_part(Diag *diag, int which, int rounds)
{
    static const char *names[] = {"part_im2col", "part_matmul", "part_col2im", "part_transpose",
                                  "part_matmul_t", "part_conv1", "part_conv1_vjp"};
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrModel *m = which < N_IR_PARTS ? part_model(b, arena, which) : conv_model(b, arena, 0);
    int vjp = which == N_IR_PARTS + 1;
    if (vjp)
        diff_model_adjoint(b, m);
    NdKernels k;
    JitRequest req = {.vjp = vjp};
    JitModel *jit = jit_compile_request(m, &req, &k, diag);
    if (!jit)
        exit(1);
    const int64_t B = BATCH;
    size_t n = (size_t)(B * m->ny);
    double *y = malloc(sizeof *y * n), *d = malloc(sizeof *d * n), *a = malloc(sizeof *a * n);
    double *p = malloc(sizeof *p * (size_t)m->np), *gp = malloc(sizeof *p * (size_t)m->np);
    double *work = malloc(sizeof *work * (nd_kernels_work_size(&k, B) + 1));
    fill(y, n, 1.0, 0.3), fill(a, n, 1.0, 1.1), fill(p, (size_t)m->np, 0.1, 0.7);
    double one = vjp ? time_vjp(k.vjp, y, p, a, d, gp, B, work, 1)
                     : time_rhs(k.rhs, NULL, y, p, d, B, work, 1);
    int reps = reps_for(one);
    double *t = malloc(sizeof *t * (size_t)rounds);
    for (int r = 0; r < rounds; r++)
        t[r] = vjp ? time_vjp(k.vjp, y, p, a, d, gp, B, work, reps)
                   : time_rhs(k.rhs, NULL, y, p, d, B, work, reps);
    report(names[which], median(t, rounds), NULL);
    free(y), free(d), free(a), free(p), free(gp), free(work), free(t);
    jit_free(jit);
    arena_free(arena);
}

/* The hand-written im2col and col2im over the batch, 8 samples a chunk (the same
 * elements as part_im2col and part_col2im move), beside the JIT's. */
static void bench_hand_parts(int rounds)
{
    size_t n = (size_t)(BATCH * NY);
    double *x = malloc(sizeof *x * n), *cols = malloc(sizeof *cols * KC * COLS);
    double *t = malloc(sizeof *t * (size_t)rounds), *t2 = malloc(sizeof *t2 * (size_t)rounds);
    fill(x, n, 1.0, 0.3), fill(cols, KC * COLS, 1.0, 0.5);
    for (int r = 0; r < rounds; r++) {
        int reps = 20;
        double t0 = now_s();
        for (int q = 0; q < reps; q++)
            for (int s0 = 0; s0 < BATCH; s0 += NB)
                im2col_c(x + (size_t)s0 * NY, NY, PIX, NB, cols);
        t[r] = (now_s() - t0) / reps;
        t0 = now_s();
        for (int q = 0; q < reps; q++) {
            memset(x, 0, sizeof *x * n);
            for (int s0 = 0; s0 < BATCH; s0 += NB)
                col2im_c(cols, NY, PIX, NB, x + (size_t)s0 * NY);
        }
        t2[r] = (now_s() - t0) / reps;
    }
    report("hand_im2col", median(t, rounds), NULL);
    report("hand_col2im", median(t2, rounds), NULL);
    free(x), free(cols), free(t), free(t2);
}

/* ---- (b): nodec run on a copy of examples/odenet_digits.node ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    s[n] = 0;
    fclose(f);
    return s;
}

/* The line of s that starts with key (after spaces), or NULL. */
static char *find_line(char *s, const char *key)
{
    for (char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char *q = l;
        while (*q == ' ')
            q++;
        if (strncmp(q, key, strlen(key)) == 0)
            return l;
    }
    return NULL;
}

static void blank_line(char *l)
{
    while (*l && *l != '\n')
        *l++ = ' ';
}

static int bench_train(const char *nodec, const char *examples, int steps, const char *precision)
{
    char path[4096], dir[] = "/tmp/bench_conv_XXXXXX";
    snprintf(path, sizeof path, "%s/odenet_digits.node", examples);
    char *src = read_text(path);
    if (!src || !mkdtemp(dir)) {
        fprintf(stderr, "bench_conv: cannot read %s (--examples DIR)\n", path);
        return 1;
    }
    /* the OdeNet model and its train only: cut at its evaluate, drop the test data,
       and set steps, log_every and a history file */
    char *cut = strstr(src, "\nevaluate OdeNet");
    char *st = cut ? find_line(src, "steps") : NULL, *lg = cut ? find_line(src, "log_every") : NULL;
    char *te = find_line(src, "data test");
    char *dg = find_line(src, "data digits");
    if (!cut || !st || !lg || !te || !dg || st > cut || lg > cut) {
        fprintf(stderr, "bench_conv: %s is not laid out as expected\n", path);
        return 1;
    }
    cut[1] = 0;
    blank_line(st), blank_line(lg), blank_line(te), blank_line(dg);
    int log_every = steps / 4 > 0 ? steps / 4 : 1;
    char node[4096], hist[4096];
    snprintf(node, sizeof node, "%s/odenet_bench.node", dir);
    snprintf(hist, sizeof hist, "%s/history.csv", dir);
    FILE *f = fopen(node, "w");
    /* `data digits = csv(...)` and the train's extra lines go where the blanked ones were:
       simplest is to write the header lines first and the rest as it is */
    char *abs = realpath(examples, NULL);
    fprintf(f, "data digits = csv(\"%s/digits_train.csv\")\n", abs ? abs : examples);
    char *train_end = strrchr(src, '}');
    *train_end = 0;
    fputs(src, f);
    fprintf(f, "  steps = %d\n  log_every = %d\n  history = \"%s\"\n}\n", steps, log_every, hist);
    fclose(f);
    free(abs);
    char cmd[12288], *exe = realpath(nodec, NULL);
    if (!exe) {
        fprintf(stderr, "bench_conv: no nodec at %s (--nodec PATH)\n", nodec);
        return 1;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && OPENBLAS_NUM_THREADS=1 '%s' run -q --precision %s '%s' >/dev/null", dir, exe,
             precision, node);
    free(exe);
    double t0 = now_s();
    int rc = system(cmd);
    double wall = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_conv: `%s` failed (%d); the file is kept in %s\n", cmd, rc, dir);
        return 1;
    }
    /* step,loss,nfe_forward,nfe_backward,seconds: per step from the first row to the last */
    FILE *h = fopen(hist, "r");
    char line[512];
    long s_first = -1, s_last = -1, step;
    double t_first = 0, t_last = 0, loss = 0, first_loss = 0, sec;
    long nf = 0, nb = 0;
    while (h && fgets(line, sizeof line, h))
        if (sscanf(line, "%ld,%lf,%ld,%ld,%lf", &step, &loss, &nf, &nb, &sec) == 5) {
            if (s_first < 0)
                s_first = step, t_first = sec, first_loss = loss;
            s_last = step, t_last = sec;
        }
    if (h)
        fclose(h);
    if (s_first < 0 || s_last <= s_first) {
        fprintf(stderr, "bench_conv: %s has fewer than two rows\n", hist);
        return 1;
    }
    char extra[256];
    snprintf(extra, sizeof extra,
             "\"steps\": %d, \"timed_steps\": %ld, \"loss_at_first_row\": %.4f, \"last_loss\": %.4f, "
             "\"whole_run_s\": %.2f, \"nfe_forward\": %ld, \"nfe_backward\": %ld",
             steps, s_last - s_first, first_loss, loss, wall, nf, nb);
    report_dtype("digits_iter", strcmp(precision, "f32") == 0 ? "float32" : "float64",
                 (t_last - t_first) / (double)(s_last - s_first), extra);
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        return 1;
    free(src);
    return 0;
}

int main(int argc, char **argv)
{
    /* One core, as torch_conv.py: OpenBLAS starts its threads before main, and idle
       they spin in sched_yield, so set the variable and start again. */
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
    }
    int rounds = 9, steps = 40, train = 1, parts = 1;
    const char *nodec = "build/nodec", *examples = "examples";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nodec") == 0 && i + 1 < argc)
            nodec = argv[++i];
        else if (strcmp(argv[i], "--examples") == 0 && i + 1 < argc)
            examples = argv[++i];
        else if (strcmp(argv[i], "--no-train") == 0)
            train = 0;
        else if (strcmp(argv[i], "--no-parts") == 0)
            parts = 0;
        else if (strcmp(argv[i], "--emit-llvm") == 0)
            emit_llvm = 1;
        else if (strcmp(argv[i], "--profile-vjp") == 0 && i + 1 < argc)
            profile_vjp = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-jit") == 0) /* the hand-written C and the train only */
            no_jit = 1, parts = 0;
        else {
            fprintf(stderr, "usage: bench_conv [--json] [--rounds R] [--nodec PATH] [--examples DIR] "
                            "[--steps N] [--no-train] [--no-parts]\n");
            return 2;
        }
    }
    if (rounds < 1)
        rounds = 1;
    openblas_set_num_threads(1);
    Diag diag;
    diag_init(&diag, stderr);
    if (!json)
        printf("B = %d, h [%d, %d, %d], f64, median of %d rounds\n", BATCH, CH, SZ, SZ, rounds);
    bench_rhs_vjp(&diag, rounds);
    if (!no_jit)
        bench_rhs_vjp_f32(&diag, rounds);
    if (parts)
        for (int w = 0; w < N_IR_PARTS + 2; w++)
            bench_part(&diag, w, rounds);
    if (parts)
        bench_hand_parts(rounds);
    if (train && (bench_train(nodec, examples, steps, "f64") != 0 ||
                  bench_train(nodec, examples, steps, "f32") != 0))
        return 1;
    return 0;
}
