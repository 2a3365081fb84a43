/* The tensor ops (compiler/ir/ir_tensor.c) end to end: (a) the interpreter's
 * convolution, written as sema writes it (reshape(reshape(K) @ im2col(x))), its
 * pooling, sums over an axis and broadcasts against direct loops written here;
 * (b) compiler/diff's rules for each op, and for a small conv net, against
 * central differences of the interpreter; (c) the JIT's loops for each op
 * (llvm_tensor.c) against the interpreter bit for bit at B = 1, 3 and 37, on
 * batched and unbatched (parameter-only) operands, and a convolution whose
 * product goes through BLAS (to rounding). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "ir.h"
#include "llvm_jit.h"
#include "llvm_jit_internal.h"

static uint64_t rng_state = 4242;

static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng_state >> 11) / 9007199254740992.0) * 2.0 - 1.0; /* [-1, 1) */
}

static double *random_doubles(size_t n)
{
    double *v = malloc(sizeof *v * (n ? n : 1));
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd();
    return v;
}

static IrShape shape3(int a, int b, int c)
{
    int d[3] = {a, b, c};
    return ir_tensor_shape(3, d);
}

static IrShape shape4(int a, int b, int c, int e)
{
    int d[4] = {a, b, c, e};
    return ir_tensor_shape(4, d);
}

/* conv2d(K, x) as sema writes it. */
static IrNode *conv(IrBuilder *b, IrNode *K, IrNode *x, int stride, int pad)
{
    int co = K->shape.dim[0], ci = K->shape.dim[1], kh = K->shape.dim[2], kw = K->shape.dim[3];
    int ho = ir_window_count(x->shape.dim[1], kh, stride, pad);
    int wo = ir_window_count(x->shape.dim[2], kw, stride, pad);
    IrNode *k2 = ir_reshape(b, K, ir_matrix_shape(co, ci * kh * kw));
    return ir_reshape(b, ir_matmul(b, k2, ir_im2col(b, x, kh, kw, stride, pad)), shape3(co, ho, wo));
}

static void eval1(IrNode *f, const double *y, const double *p, double *out)
{
    double *outs[1] = {out};
    ir_eval(1, &f, 0.5, y, p, outs);
}

/* ---- (a) the interpreter against direct loops ---- */

START_TEST(test_eval_conv)
{
    static const int cases[][5] = {/* H, W, stride, pad, k */
                                   {5, 7, 1, 0, 3}, {5, 7, 1, 1, 3}, {6, 7, 2, 0, 3},
                                   {6, 5, 2, 1, 3}, {4, 6, 1, 1, 2}, {7, 4, 2, 1, 2}};
    const int *c = cases[_i];
    int H = c[0], W = c[1], s = c[2], p = c[3], k = c[4], Ci = 2, Co = 3;
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrNode *x = ir_state(b, 0, 0, shape3(Ci, H, W));
    IrNode *K = ir_param(b, 0, 0, shape4(Co, Ci, k, k));
    IrNode *f = conv(b, K, x, s, p);
    int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    ck_assert_int_eq(f->shape.dim[1], Ho);
    ck_assert_int_eq(f->shape.dim[2], Wo);
    double *y = random_doubles((size_t)(Ci * H * W)), *P = random_doubles((size_t)(Co * Ci * k * k));
    double *got = malloc(sizeof *got * (size_t)(Co * Ho * Wo));
    eval1(f, y, P, got);
    for (int co = 0; co < Co; co++)
        for (int oi = 0; oi < Ho; oi++)
            for (int oj = 0; oj < Wo; oj++) {
                double want = 0;
                for (int ci = 0; ci < Ci; ci++)
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = 0; kj < k; kj++) {
                            int h = oi * s + ki - p, w = oj * s + kj - p;
                            if (h >= 0 && h < H && w >= 0 && w < W)
                                want += P[((co * Ci + ci) * k + ki) * k + kj] * y[(ci * H + h) * W + w];
                        }
                double g = got[(co * Ho + oi) * Wo + oj];
                ck_assert_msg(fabs(g - want) <= 1e-13, "conv [%d,%d,%d]: %.17g vs %.17g", co, oi, oj,
                              g, want);
            }
    free(y), free(P), free(got);
    arena_free(arena);
}
END_TEST

START_TEST(test_eval_pools)
{
    static const int cases[][3] = {{2, 2, 2}, {3, 2, 1}, {2, 3, 2}, {3, 3, 3}}; /* kh, kw, s */
    const int *c = cases[_i];
    int C = 2, H = 6, W = 7, kh = c[0], kw = c[1], s = c[2];
    int Ho = (H - kh) / s + 1, Wo = (W - kw) / s + 1;
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrNode *x = ir_state(b, 0, 0, shape3(C, H, W));
    IrNode *avg = ir_avg_pool(b, x, kh, kw, s), *mx = ir_max_pool(b, x, x, kh, kw, s);
    double *y = random_doubles((size_t)(C * H * W));
    double *ga = malloc(sizeof(double) * (size_t)(C * Ho * Wo)), *gm = malloc(sizeof(double) * (size_t)(C * Ho * Wo));
    eval1(avg, y, NULL, ga);
    eval1(mx, y, NULL, gm);
    for (int ch = 0; ch < C; ch++)
        for (int oi = 0; oi < Ho; oi++)
            for (int oj = 0; oj < Wo; oj++) {
                double sum = 0, best = -INFINITY;
                for (int ki = 0; ki < kh; ki++)
                    for (int kj = 0; kj < kw; kj++) {
                        double v = y[(ch * H + oi * s + ki) * W + oj * s + kj];
                        sum += v;
                        best = v > best ? v : best;
                    }
                int o = (ch * Ho + oi) * Wo + oj;
                ck_assert(fabs(ga[o] - sum / (kh * kw)) <= 1e-15);
                ck_assert(gm[o] == best);
            }
    free(y), free(ga), free(gm);
    arena_free(arena);
}
END_TEST

START_TEST(test_eval_axis)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    enum { A = 2, B = 3, C = 4 };
    IrNode *x = ir_state(b, 0, 0, shape3(A, B, C));
    double *y = random_doubles(A * B * C), out[A * B * C * 5];
    for (int axis = 0; axis < 3; axis++) {
        eval1(ir_sum_axis(b, x, axis), y, NULL, out);
        int k = 0;
        for (int i = 0; i < (axis == 0 ? B : A); i++)
            for (int j = 0; j < (axis == 2 ? B : C); j++, k++) {
                double want = 0;
                for (int l = 0; l < (axis == 0 ? A : axis == 1 ? B : C); l++)
                    want += axis == 0   ? y[(l * B + i) * C + j]
                            : axis == 1 ? y[(i * B + l) * C + j]
                                        : y[(i * B + j) * C + l];
                ck_assert(fabs(out[k] - want) <= 1e-15);
            }
    }
    for (int axis = 0; axis <= 3; axis++) {
        IrNode *f = ir_broadcast_axis(b, x, axis, 5);
        ck_assert_int_eq(f->shape.rank, 4);
        ck_assert_int_eq(ir_shape_dim(f->shape, axis), 5);
        eval1(f, y, NULL, out);
        int idx[4], k = 0;
        for (idx[0] = 0; idx[0] < ir_shape_dim(f->shape, 0); idx[0]++)
            for (idx[1] = 0; idx[1] < ir_shape_dim(f->shape, 1); idx[1]++)
                for (idx[2] = 0; idx[2] < ir_shape_dim(f->shape, 2); idx[2]++)
                    for (idx[3] = 0; idx[3] < ir_shape_dim(f->shape, 3); idx[3]++, k++) {
                        int src[3], r = 0;
                        for (int d = 0; d < 4; d++)
                            if (d != axis)
                                src[r++] = idx[d];
                        ck_assert(out[k] == y[(src[0] * B + src[1]) * C + src[2]]);
                    }
    }
    free(y);
    arena_free(arena);
}
END_TEST

/* ---- (b) derivative rules against central differences ---- */

enum { NYD = 64, NPD = 128 };
static double fy[NYD], fp[NPD], fa[512];

static double phi(IrNode *f)
{
    double out[512];
    eval1(f, fy, fp, out);
    double s = 0;
    for (int i = 0; i < ir_shape_size(f->shape); i++)
        s += fa[i] * out[i];
    return s;
}

/* vjp of f w.r.t. the leaves against differences of a^T f. */
static void check_fd(IrBuilder *b, IrNode *f, int n, IrNode **wrt)
{
    ck_assert_int_le(ir_shape_size(f->shape), 512);
    for (int i = 0; i < NYD; i++)
        fy[i] = rnd();
    for (int i = 0; i < NPD; i++)
        fp[i] = rnd();
    for (int i = 0; i < 512; i++)
        fa[i] = rnd();
    IrNode *cot = ir_adjoint(b, 0, 0, f->shape), *grads[4];
    diff_vjp(b, 1, &f, &cot, n, wrt, grads);
    IrEnv env = {.t = 0.5, .y = fy, .p = fp, .a = fa};
    for (int k = 0; k < n; k++) {
        double got[512];
        double *outs[1] = {got};
        ir_eval_env(1, &grads[k], &env, outs);
        double *base = wrt[k]->op == IR_STATE ? fy : fp;
        for (int j = 0; j < ir_shape_size(wrt[k]->shape); j++) {
            double *v = &base[wrt[k]->offset + j], saved = *v, h = 1e-6;
            *v = saved + h;
            double up = phi(f);
            *v = saved - h;
            double down = phi(f);
            *v = saved;
            double want = (up - down) / (2 * h);
            ck_assert_msg(fabs(got[j] - want) <= 1e-6 * fmax(1, fabs(want)),
                          "%s: d/d%s[%d]: %.12g vs finite differences %.12g", ir_op_name(f->op),
                          ir_op_name(wrt[k]->op), j, got[j], want);
        }
    }
}

START_TEST(test_diff_ops)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrNode *x = ir_state(b, 0, 0, shape3(2, 4, 5));        /* 40 */
    IrNode *m = ir_param(b, 0, 0, ir_matrix_shape(8, 12)); /* col2im's operand: 2*2*2 x 3*4 */
    IrNode *g = ir_param(b, 0, 96, shape3(2, 3, 4));       /* 24: a pooled plane (2x2, stride 1) */
    IrNode *wx[1] = {x}, *wm[1] = {m}, *wg[2] = {x, g};
    check_fd(b, ir_reshape(b, x, ir_matrix_shape(5, 8)), 1, wx);
    check_fd(b, ir_im2col(b, x, 3, 3, 1, 1), 1, wx);
    check_fd(b, ir_im2col(b, x, 2, 3, 2, 0), 1, wx);
    check_fd(b, ir_col2im(b, m, shape3(2, 4, 5), 2, 2, 1, 0), 1, wm);
    check_fd(b, ir_avg_pool(b, x, 2, 2, 2), 1, wx);
    check_fd(b, ir_avg_pool(b, x, 3, 2, 1), 1, wx);
    IrNode *ag = ir_param(b, 0, 96, shape3(2, 2, 2));
    IrNode *wag[1] = {ag};
    check_fd(b, ir_avg_pool_t(b, ag, shape3(2, 4, 5), 2, 2, 2), 1, wag);
    check_fd(b, ir_max_pool(b, x, x, 2, 2, 2), 1, wx);
    check_fd(b, ir_max_pool(b, x, ir_unary(b, IR_TANH, x), 3, 2, 1), 1, wx);
    check_fd(b, ir_max_pool_t(b, x, g, 2, 2, 1), 2, wg);
    for (int axis = 0; axis < 3; axis++)
        check_fd(b, ir_sum_axis(b, x, axis), 1, wx);
    for (int axis = 0; axis <= 3; axis++)
        check_fd(b, ir_broadcast_axis(b, x, axis, 3), 1, wx);
    arena_free(arena);
}
END_TEST

/* relu(conv(K2, relu(conv(K1, x)))) with stride and padding, and its pool */
START_TEST(test_diff_conv_net)
{
    Arena *arena = arena_new();
    IrBuilder *b = ir_builder_new(arena);
    IrNode *x = ir_state(b, 0, 0, shape3(2, 5, 6));        /* 60 */
    IrNode *K1 = ir_param(b, 0, 0, shape4(3, 2, 3, 3));    /* 54 */
    IrNode *K2 = ir_param(b, 1, 54, shape4(2, 3, 2, 2));   /* 24 */
    IrNode *h = ir_unary(b, IR_RELU, conv(b, K1, x, 1, 1));
    IrNode *f = ir_unary(b, IR_RELU, conv(b, K2, h, 2, 1));
    IrNode *wrt[3] = {x, K1, K2};
    check_fd(b, f, 3, wrt);
    check_fd(b, ir_max_pool(b, h, h, 2, 2, 1), 3, wrt);
    check_fd(b, ir_sum_axis(b, ir_avg_pool(b, f, 2, 2, 1), 0), 3, wrt);
    arena_free(arena);
}
END_TEST

/* ---- (c) the JIT against the interpreter ---- */

typedef struct Tm {
    Arena *arena;
    IrBuilder *b;
    IrVar states[4], params[4];
    IrNode *rhs[4];
    IrModel m;
} Tm;

static Tm *tm_new(void)
{
    Tm *t = calloc(1, sizeof *t);
    t->arena = arena_new();
    t->b = ir_builder_new(t->arena);
    t->m = (IrModel){.name = "img", .states = t->states, .params = t->params, .rhs = t->rhs};
    return t;
}

static IrNode *tm_state(Tm *t, IrShape s)
{
    int i = t->m.n_states++;
    t->states[i] = (IrVar){.name = "x", .shape = s, .offset = t->m.ny};
    IrNode *leaf = ir_state(t->b, i, t->m.ny, s);
    t->rhs[i] = ir_neg(t->b, leaf);
    t->m.ny += ir_shape_size(s);
    return leaf;
}

static IrNode *tm_param(Tm *t, IrShape s)
{
    int i = t->m.n_params++;
    t->params[i] = (IrVar){.name = "p", .shape = s, .offset = t->m.np};
    t->m.np += ir_shape_size(s);
    return ir_param(t->b, i, t->params[i].offset, s);
}

static void tm_free(Tm *t)
{
    arena_free(t->arena);
    free(t);
}

/* One extra kernel writing every node of nodes[] per sample, compiled and run at
 * B = 1, 3, 37 against ir_eval_env per sample: bit for bit (exact) or to
 * rounding. Some states are set to -0 to see that copies keep the sign. */
static void check_jit_nodes(Tm *t, int n, IrNode **nodes, bool exact)
{
    PlanOutput *outs = calloc((size_t)n, sizeof *outs);
    int stride = 0;
    for (int i = 0; i < n; i++) {
        outs[i] = (PlanOutput){nodes[i], 0, stride, 0, 0, false, false};
        stride += ir_shape_size(nodes[i]->shape);
    }
    for (int i = 0; i < n; i++)
        outs[i].stride = stride;
    PlanKernelSpec spec = {"probe", n, outs, 0};
    NdKernelFn fn;
    JitRequest req = {.n_extra = 1, .extra = &spec, .extra_fns = &fn};
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitModel *jit = jit_compile_request(&t->m, &req, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    const int64_t batches[3] = {1, 3, 37};
    for (int bi = 0; bi < 3; bi++) {
        int64_t B = batches[bi];
        size_t ny = (size_t)t->m.ny;
        double *y = random_doubles(ny * (size_t)B), *p = random_doubles((size_t)t->m.np);
        for (size_t i = 0; i < ny * (size_t)B; i += 7)
            y[i] = -0.0;
        double *out = malloc(sizeof *out * (size_t)stride * (size_t)B);
        double *ref = malloc(sizeof *ref * (size_t)stride);
        double *work = malloc(sizeof *work * (nd_kernels_work_size(&k, B) + 1));
        for (size_t i = 0; i < (size_t)stride * (size_t)B; i++)
            out[i] = NAN;
        fn(0.5, y, p, NULL, NULL, out, NULL, B, work);
        for (int64_t s = 0; s < B; s++) {
            double **refs = malloc(sizeof *refs * (size_t)n);
            for (int i = 0; i < n; i++)
                refs[i] = ref + outs[i].offset;
            IrEnv env = {.t = 0.5, .y = y + (size_t)s * ny, .p = p};
            ir_eval_env(n, nodes, &env, refs);
            free(refs);
            const double *got = out + (size_t)s * (size_t)stride;
            for (int i = 0; i < n; i++)
                for (int e = 0; e < ir_shape_size(nodes[i]->shape); e++) {
                    double g = got[outs[i].offset + e], w = ref[outs[i].offset + e];
                    bool ok = exact ? memcmp(&g, &w, sizeof g) == 0
                                    : fabs(g - w) <= 1e-12 * fmax(1, fabs(w));
                    if (!ok)
                        ck_abort_msg("B=%lld sample %lld: output %d (%s) element %d: jit %.17g, "
                                     "ir_eval %.17g", (long long)B, (long long)s, i,
                                     ir_op_name(nodes[i]->op), e, g, w);
                }
        }
        free(y), free(p), free(out), free(ref), free(work);
    }
    jit_free(jit);
    free(outs);
}

/* An exact elementwise op (the JIT's tanh and exp are not libm's to the bit). */
static IrNode *sq(IrBuilder *b, IrNode *v)
{
    return ir_sub(b, ir_mul(b, v, v), ir_scalar(b, 0.25));
}

/* Every op on batched (state) and unbatched (param) operands, and mixed. */
START_TEST(test_jit_ops)
{
    Tm *t = tm_new();
    IrBuilder *b = t->b;
    IrShape img = shape3(2, 5, 6);
    IrNode *x = tm_state(t, img), *q = tm_param(t, img);
    IrNode *m = tm_state(t, ir_matrix_shape(18, 30)), *mq = tm_param(t, ir_matrix_shape(8, 12));
    IrNode *nodes[64];
    int n = 0;
    IrNode *srcs[2] = {x, q};
    for (int s = 0; s < 2; s++) {
        IrNode *v = srcs[s];
        nodes[n++] = ir_reshape(b, v, ir_matrix_shape(5, 12));
        nodes[n++] = sq(b, ir_reshape(b, v, ir_vector_shape(60)));
        nodes[n++] = ir_im2col(b, v, 3, 3, 1, 1);
        nodes[n++] = ir_im2col(b, v, 2, 3, 2, 0);
        nodes[n++] = ir_im2col(b, v, 3, 2, 2, 1);
        nodes[n++] = ir_avg_pool(b, v, 2, 2, 2);
        nodes[n++] = ir_avg_pool(b, v, 3, 2, 1);
        nodes[n++] = ir_avg_pool(b, v, 1, 1, 1);
        nodes[n++] = ir_avg_pool_t(b, sq(b, ir_avg_pool(b, v, 2, 2, 1)), img, 2, 2, 1);
        nodes[n++] = ir_avg_pool_t(b, sq(b, ir_avg_pool(b, v, 2, 3, 2)), img, 2, 3, 2);
        nodes[n++] = ir_col2im(b, sq(b, ir_im2col(b, v, 3, 3, 1, 1)), img, 3, 3, 1, 1);
        nodes[n++] = ir_col2im(b, sq(b, ir_im2col(b, v, 2, 2, 2, 1)), img, 2, 2, 2, 1);
        nodes[n++] = ir_max_pool(b, v, v, 2, 2, 2);
        nodes[n++] = ir_max_pool(b, v, sq(b, v), 3, 2, 1);
        nodes[n++] = ir_max_pool_t(b, v, sq(b, ir_max_pool(b, v, v, 2, 2, 1)), 2, 2, 1);
        nodes[n++] = ir_max_pool_t(b, v, sq(b, ir_max_pool(b, v, v, 3, 3, 2)), 3, 3, 2);
        for (int axis = 0; axis < 3; axis++)
            nodes[n++] = ir_sum_axis(b, v, axis);
        for (int axis = 0; axis <= 3; axis++)
            nodes[n++] = ir_broadcast_axis(b, v, axis, 3);
    }
    nodes[n++] = ir_col2im(b, m, img, 3, 3, 1, 1);       /* straight from a state */
    nodes[n++] = ir_col2im(b, mq, shape3(2, 4, 5), 2, 2, 1, 0);
    nodes[n++] = ir_max_pool(b, q, x, 2, 2, 1);          /* unbatched selects batched */
    nodes[n++] = ir_max_pool(b, x, q, 2, 2, 1);
    nodes[n++] = ir_max_pool_t(b, q, ir_avg_pool(b, x, 2, 2, 1), 2, 2, 1);
    nodes[n++] = ir_broadcast_axis(b, ir_sum(b, x), 0, 4); /* a scalar broadcast */
    nodes[n++] = ir_broadcast_axis(b, ir_sum(b, q), 0, 4); /* an unbatched register */
    ck_assert_int_le(n, 64);
    check_jit_nodes(t, n, nodes, true);
    tm_free(t);
}
END_TEST

/* The conv net as a model: its rhs bit for bit with inline products, to
 * rounding through BLAS (forced, and by the rule on a bigger net); its vjp to
 * rounding. */
START_TEST(test_jit_conv_net)
{
    static const double modes[3] = {1e30, 0, -1};
    cg_set_blas_min_flops(modes[_i]);
    Tm *t = tm_new();
    IrBuilder *b = t->b;
    int C = _i == 2 ? 8 : 2, H = _i == 2 ? 8 : 5, W = _i == 2 ? 8 : 6;
    IrNode *x = tm_state(t, shape3(C, H, W));
    IrNode *K1 = tm_param(t, shape4(3, C, 3, 3)), *K2 = tm_param(t, shape4(C, 3, 3, 3));
    IrNode *h = ir_unary(b, IR_RELU, conv(b, K1, x, 1, 1));
    IrNode *f = ir_unary(b, IR_RELU, conv(b, K2, h, 1, 1));
    t->rhs[0] = ir_sub(b, f, ir_max_pool(b, x, x, 1, 1, 1));
    IrNode *nodes[4] = {t->rhs[0], conv(b, K1, x, 2, 1), ir_avg_pool(b, h, 2, 2, 2),
                        conv(b, K1, x, 1, 0)};
    check_jit_nodes(t, 4, nodes, _i == 0);
    diff_model_adjoint(b, &t->m);
    IrNode *grads[3] = {t->m.adj_state[0], t->m.adj_param[0], t->m.adj_param[1]};
    Diag diag;
    diag_init(&diag, stderr);
    NdKernels k;
    JitRequest req = {.vjp = 1};
    JitModel *jit = jit_compile_request(&t->m, &req, &k, &diag);
    ck_assert_ptr_nonnull(jit);
    int64_t B = 3;
    size_t ny = (size_t)t->m.ny, np = (size_t)t->m.np;
    double *y = random_doubles(ny * B), *a = random_doubles(ny * B), *p = random_doubles(np);
    double *g0 = malloc(sizeof(double) * ny * B), *g1 = malloc(sizeof(double) * np);
    double *work = malloc(sizeof(double) * (nd_kernels_work_size(&k, B) + 1));
    k.vjp(0.5, y, p, a, NULL, g0, g1, B, work);
    double *r0 = malloc(sizeof(double) * ny), *r1 = malloc(sizeof(double) * np);
    double *sum = calloc(np, sizeof(double));
    for (int64_t s = 0; s < B; s++) {
        IrEnv env = {.t = 0.5, .y = y + s * ny, .p = p, .a = a + s * ny};
        double *outs[3] = {r0, r1, r1 + t->params[1].offset};
        ir_eval_env(3, grads, &env, outs);
        for (size_t i = 0; i < ny; i++)
            ck_assert_msg(fabs(g0[s * ny + i] - r0[i]) <= 1e-12 * fmax(1, fabs(r0[i])),
                          "vjp dy[%zu]: %.17g vs %.17g", i, g0[s * ny + i], r0[i]);
        for (size_t i = 0; i < np; i++)
            sum[i] += r1[i];
    }
    for (size_t i = 0; i < np; i++)
        ck_assert_msg(fabs(g1[i] - sum[i]) <= 1e-11 * fmax(1, fabs(sum[i])), "vjp dp[%zu]: %.17g vs %.17g",
                      i, g1[i], sum[i]);
    free(y), free(a), free(p), free(g0), free(g1), free(work), free(r0), free(r1), free(sum);
    jit_free(jit);
    tm_free(t);
    cg_set_blas_min_flops(-1);
}
END_TEST

Suite *tensor_suite(void);
Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *te = tcase_create("eval");
    tcase_add_loop_test(te, test_eval_conv, 0, 6);
    tcase_add_loop_test(te, test_eval_pools, 0, 4);
    tcase_add_test(te, test_eval_axis);
    suite_add_tcase(s, te);
    TCase *td = tcase_create("diff");
    tcase_add_test(td, test_diff_ops);
    tcase_add_test(td, test_diff_conv_net);
    suite_add_tcase(s, td);
    TCase *tj = tcase_create("jit");
    tcase_set_timeout(tj, 60);
    tcase_add_test(tj, test_jit_ops);
    tcase_add_loop_test(tj, test_jit_conv_net, 0, 3);
    suite_add_tcase(s, tj);
    return s;
}
