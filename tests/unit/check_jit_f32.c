/* The LLVM back end's single-precision kernels (JitRequest.f32, `option
 * precision = f32`) against its double ones: each model's source compiled
 * through the driver twice, with and without the option, and every kernel of
 * every kernel set (rhs, vjp, jac, rhs_vjp, train losses, events) called on the
 * same inputs (float-representable, so both see the same numbers). The f32
 * kernels are called through their float signature; this binary's nd_real is
 * double, so the table's slots are cast. Agreement to 2e-5 * max(1, |ref|):
 * float's epsilon is 6e-8, and the sums and chains of these models are short. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "llvm_jit.h"
#include "llvm_jit_internal.h"

Suite *jit_f32_suite(void);

typedef void (*RhsF32)(float t, const float *y, const float *p, float *dydt, int64_t B,
                       float *work);
typedef void (*KernelF32)(float t, const float *y, const float *p, const float *a,
                          const float *d, float *out0, float *out1, int64_t B, float *work);

/* Every buffer a kernel sees holds this many elements: more than any of these
 * small models reads or writes (the largest, the conv model's jac, is 7 500). */
enum { BUF = 1 << 15, BATCH = 3 };

static Compilation *compile_text(const char *src, bool f32)
{
    static char text[8192];
    snprintf(text, sizeof text, "%s%s", f32 ? "option precision = f32\n" : "", src);
    CompileOptions o = {.path = "jit_f32.node", .text = text, .diag_out = stderr,
                        .until = COMPILE_BACKEND, .targets = TARGET_JIT};
    Compilation *c = compile(&o);
    ck_assert_int_eq(c->diag.errors, 0);
    ck_assert_ptr_nonnull(c->program);
    ck_assert(c->program->f32 == f32);
    return c;
}

/* The inputs of one comparison: in [-1, 1] (cotangents, data and all), each a
 * float, in both types. */
typedef struct Inputs {
    double t, *d64[4]; /* y, p, a, d */
    float *d32[4];
} Inputs;

static uint64_t rng = 99;

static double rnd(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

static void inputs_init(Inputs *in)
{
    in->t = (float)0.37;
    for (int i = 0; i < 4; i++) {
        in->d64[i] = malloc(sizeof(double) * BUF);
        in->d32[i] = malloc(sizeof(float) * BUF);
        for (int k = 0; k < BUF; k++) {
            in->d32[i][k] = (float)rnd();
            in->d64[i][k] = in->d32[i][k];
        }
    }
}

static void inputs_free(Inputs *in)
{
    for (int i = 0; i < 4; i++) {
        free(in->d64[i]);
        free(in->d32[i]);
    }
}

/* Both outputs of the two kernels (NaN only where the reference is NaN). */
static void compare(const char *what, const double *ref, const float *got)
{
    for (int k = 0; k < BUF; k++) {
        if (isnan(ref[k])) {
            ck_assert_msg(isnan(got[k]), "%s[%d]: %g, not NaN", what, k, got[k]);
            continue;
        }
        double tol = 2e-5 * fmax(1, fabs(ref[k]));
        ck_assert_msg(fabs(got[k] - ref[k]) <= tol, "%s[%d]: f32 %.9g, f64 %.17g", what, k,
                      (double)got[k], ref[k]);
    }
}

/* Outputs and work of one call in both types, zeroed. */
typedef struct Outs {
    double *o64[2], *w64;
    float *o32[2], *w32;
} Outs;

static void outs_init(Outs *o, size_t work)
{
    for (int i = 0; i < 2; i++) {
        o->o64[i] = calloc(BUF, sizeof(double));
        o->o32[i] = calloc(BUF, sizeof(float));
    }
    o->w64 = calloc(work + 1, sizeof(double));
    o->w32 = calloc(work + 1, sizeof(float));
}

static void outs_free(Outs *o)
{
    for (int i = 0; i < 2; i++) {
        free(o->o64[i]);
        free(o->o32[i]);
    }
    free(o->w64);
    free(o->w32);
}

/* fn64 and fn32 (the same slot of the two tables) on the same inputs;
 * returns 1, or 0 for an empty slot. */
static int compare_kernel(const char *what, NdKernelFn fn64, NdKernelFn fn32, const Inputs *in,
                          size_t work)
{
    ck_assert_msg((fn64 == NULL) == (fn32 == NULL), "%s: in one table only", what);
    if (!fn64)
        return 0;
    Outs o;
    outs_init(&o, work);
    fn64(in->t, in->d64[0], in->d64[1], in->d64[2], in->d64[3], o.o64[0], o.o64[1], BATCH, o.w64);
    KernelF32 f = (KernelF32)(uintptr_t)fn32;
    f((float)in->t, in->d32[0], in->d32[1], in->d32[2], in->d32[3], o.o32[0], o.o32[1], BATCH,
      o.w32);
    char name[96];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s out%d", what, i);
        compare(name, o.o64[i], o.o32[i]);
    }
    outs_free(&o);
    return 1;
}

static void compare_rhs(const NdKernels *k64, const NdKernels *k32, const Inputs *in, size_t work)
{
    Outs o;
    outs_init(&o, work);
    k64->rhs(in->t, in->d64[0], in->d64[1], o.o64[0], BATCH, o.w64);
    RhsF32 f = (RhsF32)(uintptr_t)k32->rhs;
    f((float)in->t, in->d32[0], in->d32[1], o.o32[0], BATCH, o.w32);
    compare("rhs", o.o64[0], o.o32[0]);
    outs_free(&o);
}

/* Every kernel of one compiled set, in both tables. */
static int compare_set(const CompiledSet *s64, const CompiledSet *s32, const Inputs *in)
{
    const NdKernels *k64 = &s64->kernels, *k32 = &s32->kernels;
    ck_assert_int_eq(k64->ny, k32->ny);
    ck_assert_uint_eq(k64->work_fixed, k32->work_fixed); /* elements in both */
    ck_assert_uint_eq(k64->work_per_sample, k32->work_per_sample);
    ck_assert_uint_lt(nd_kernels_jac_size(k64, BATCH), BUF);
    size_t work = nd_kernels_work_size(k64, BATCH);
    compare_rhs(k64, k32, in, work);
    int n = 1;
    n += compare_kernel("vjp", k64->vjp, k32->vjp, in, work);
    n += compare_kernel("jac", k64->jac, k32->jac, in, work);
    n += compare_kernel("rhs_vjp", k64->rhs_vjp, k32->rhs_vjp, in, work);
    for (int i = 0; i < TRAIN_K_COUNT; i++)
        n += compare_kernel("loss", s64->loss[i], s32->loss[i], in, work);
    for (int i = 0; i < SEMA_MAX_METRICS; i++)
        n += compare_kernel("metric", s64->metrics[i], s32->metrics[i], in, work);
    ck_assert_int_eq(k64->n_events, k32->n_events);
    for (int e = 0; e < k64->n_events; e++) {
        const NdEvent *e64 = &k64->events[e], *e32 = &k32->events[e];
        n += compare_kernel("cond", e64->cond, e32->cond, in, work);
        n += compare_kernel("reset", e64->reset, e32->reset, in, work);
        n += compare_kernel("cond_grad", e64->cond_grad, e32->cond_grad, in, work);
        n += compare_kernel("reset_vjp", e64->reset_vjp, e32->reset_vjp, in, work);
    }
    return n;
}

/* src compiled in both precisions, every set's kernels compared; returns the
 * number of kernels compared, so a test can tell its kernels were made. */
static int compare_source(const char *src)
{
    Compilation *c64 = compile_text(src, false), *c32 = compile_text(src, true);
    ck_assert_int_eq(c64->sets.n, c32->sets.n);
    Inputs in;
    inputs_init(&in);
    int n = 0;
    for (int i = 0; i < c64->sets.n; i++)
        if (c64->compiled[i].jit)
            n += compare_set(&c64->compiled[i], &c32->compiled[i], &in);
    inputs_free(&in);
    compilation_free(c64);
    compilation_free(c32);
    return n;
}

/* An MLP with a training run: the rhs with tanh and products of both the
 * inline and the BLAS sizes, its vjp, rhs_vjp and the losses. */
static const char *const MLP =
    "model M {\n"
    "  state z[2] = [1, -0.5]\n"
    "  param W1[32, 2] = reshape(linspace(-0.8, 0.7, 64), [32, 2])\n"
    "  param b1[32] = linspace(-0.1, 0.1, 32)\n"
    "  param W2[32, 32] = reshape(linspace(-0.2, 0.25, 1024), [32, 32])\n"
    "  param W3[2, 32] = reshape(linspace(0.3, -0.3, 64), [2, 32])\n"
    "  dz/dt = W3 @ tanh(W2 @ tanh(W1 @ z + b1)) - 0.1 * z^3\n"
    "}\n"
    "train M { t = [0, 1]; final_loss = sum(z^2); solver = rk4(h = 0.1)\n"
    "          gradient = adjoint; optimizer = adam(lr = 0.01); steps = 1 }\n"
    "solve M { t = [0, 1]; solver = dopri5(); output = \"m.csv\" }\n";

START_TEST(test_mlp)
{
    double saved = cg_blas_min_flops();
    const double rules[3] = {-1, 0, 1e30}; /* measured, always BLAS, never */
    for (int r = 0; r < 3; r++) {
        cg_set_blas_min_flops(rules[r]);
        ck_assert_int_ge(compare_source(MLP), 4);
    }
    cg_set_blas_min_flops(saved == PLAN_BLAS_MIN_FLOPS ? -1 : saved);
}
END_TEST

/* Every elementwise function the language has, on arguments in their domains
 * (one equation is one line: the pieces below are one string). */
START_TEST(test_functions)
{
    const char *src =
        "model F {\n"
        "  state x[4] = [0.3, -0.7, 0.9, -0.1]\n"
        "  param q = 0.4\n"
        "  dx/dt = exp(x) + log(abs(x) + 0.5) + sqrt(abs(x) + 0.1) + sin(3 * x) + cos(x) +"
        " tan(0.5 * x) + tanh(2 * x) + sigmoid(x) + relu(x) + softplus(x) +"
        " atan(x) + sinh(x) + cosh(x) + asinh(x) + erf(x) +"
        " min(x, q) + max(x, -q) + clamp(x, -0.5, 0.5) + atan2(x, q + 1) +"
        " (abs(x) + 0.2)^1.7 + x^2 + softmax(x) + log_softmax(x) + logsumexp(x) +"
        " q * x\n"
        "}\n"
        "train F { t = [0, 1]; final_loss = sum(x^2); solver = rk4(h = 0.5)\n"
        "          gradient = adjoint; optimizer = sgd(lr = 0.01); steps = 1 }\n"
        /* floor has no derivative: solved only */
        "model G { state y[3] = [0.2, -1.3, 2.6]; dy/dt = floor(4 * y) + y }\n"
        "solve G { t = [0, 1]; solver = dopri5(); output = \"g.csv\" }\n";
    ck_assert_int_ge(compare_source(src), 4);
}
END_TEST

/* A bouncing ball: the events' cond, reset and their gradients. */
START_TEST(test_events)
{
    const char *src =
        "model Ball { param h0 = 10; param e = 0.8; state h = h0; state v = 0\n"
        "  dh/dt = v; dv/dt = -9.81; when h < 0 { v = -e * v } }\n"
        "train Ball { t = [0, 6]; final_loss = h^2; solver = dopri5(rtol = 1e-6, atol = 1e-6)\n"
        "  gradient = adjoint; optimizer = sgd(lr = 1e-4); steps = 1 }\n";
    ck_assert_int_ge(compare_source(src), 5);
}
END_TEST

/* conv2d, max_pool and avg_pool (tests/lang/tensor_conv_ode.node's model). */
START_TEST(test_tensor)
{
    const char *src =
        "model Img {\n"
        "  state h[2, 5, 5] = reshape(linspace(-1, 1, 50), [2, 5, 5])\n"
        "  param K[2, 2, 3, 3] = reshape(linspace(-0.5, 0.5, 36), [2, 2, 3, 3])\n"
        "  param K2[2, 2, 2, 2] = reshape(linspace(0.3, -0.2, 16), [2, 2, 2, 2])\n"
        "  param b[2, 1, 1] = reshape([0.1, -0.2], [2, 1, 1])\n"
        "  dh/dt = tanh(conv2d(K, h, pad = 1) + b) +"
        " 0.1 * conv2d(K2, max_pool(h, 2, stride = 1), pad = 1) + 0.3 * avg_pool(h, 5)\n"
        "}\n"
        "train Img { t = [0, 1]; final_loss = sum(h^2); solver = rk4(h = 0.5)\n"
        "            gradient = adjoint; optimizer = sgd(lr = 0.01); steps = 1 }\n";
    ck_assert_int_ge(compare_source(src), 3);
}
END_TEST

/* emit-llvm in f32: every kernel takes floats, and none a double. */
START_TEST(test_emit_llvm_f32)
{
    Compilation *c = compile_text(MLP, true);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    double saved = cg_blas_min_flops();
    cg_set_blas_min_flops(0); /* the products through BLAS: sgemm, never dgemm */
    ck_assert_int_eq(cg_print_llvm(out, c->program->models[0], true, &c->diag), 0);
    cg_set_blas_min_flops(saved == PLAN_BLAS_MIN_FLOPS ? -1 : saved);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "define void @M_rhs(float"));
    ck_assert_ptr_nonnull(strstr(text, "@cblas_sgemm"));
    ck_assert_ptr_null(strstr(text, "@cblas_dgemm"));
    for (char *line = strstr(text, "\ndefine "); line; line = strstr(line + 1, "\ndefine ")) {
        char head[512];
        snprintf(head, sizeof head, "%s", line + 1);
        head[strcspn(head, "\n")] = 0;
        ck_assert_msg(!strstr(head, "double"), "%s", head);
    }
    free(text);
    compilation_free(c);
}
END_TEST

Suite *jit_f32_suite(void)
{
    Suite *s = suite_create("jit_f32");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mlp);
    tcase_add_test(tc, test_functions);
    tcase_add_test(tc, test_events);
    tcase_add_test(tc, test_tensor);
    tcase_add_test(tc, test_emit_llvm_f32);
    suite_add_tcase(s, tc);
    return s;
}
