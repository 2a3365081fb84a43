/* The C back end against the JIT: a program with a model (an MLP, a
 * parameter, slices, where) and three train directives is written by
 * emit_c_program, compiled by the system's C compiler into a shared object
 * (-DNODEC_NO_MAIN) and loaded with dlopen; its rhs, vjp, jac and the train
 * loss's value and gradient kernels are compared on random batches with the
 * same kernels JIT-compiled from the same IR, the generated gradient with
 * central differences of the generated loss (an independent check), and each
 * train's generated gradient through the solve (adjoint with a running cost,
 * backprop through bdf, ...) with nd_gradient_compute driving JIT kernels.
 * Also: literals read back exactly, the embedded runtime is the runtime, and
 * the plain C LU (runtime/solve/nd_lapack.c under NODEC_NO_LAPACK) against LAPACK. */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llvm_jit.h"
#include "c_codegen.h"
#include "diff.h"
#include "driver.h"
#include "nd_gradient.h"
#include "nd_lapack.h"
#include "train_kernels.h"

/* The fallback LU, compiled here under other names next to the LAPACK one. */
#define NODEC_NO_LAPACK 1
#define nd_lu_factor fallback_lu_factor
#define nd_lu_solve fallback_lu_solve
int fallback_lu_factor(int m, double *a, int *ipiv);
void fallback_lu_solve(int m, const double *lu, const int *ipiv, double *b, int transpose);
#include "../../runtime/solve/nd_lapack.c"
#undef nd_lu_factor
#undef nd_lu_solve

/* %s: the folder of obs.csv (t, y[0], y[1], s: a time series of 6 rows). */
static const char program_fmt[] =
    "option seed = 7\n"
    "model M {\n"
    "  state y[2] = [1, 0.5]\n"
    "  state s = 0\n"
    "  net f = MLP(2, 8, 2, tanh)\n"
    "  param k = 0.3\n"
    "  param w[2] ~ normal(0, 1)\n"
    "  dy/dt = f(y^3) - k * y + where(y > 0, sigmoid(w), softplus(w))\n"
    "  ds/dt = dot(w, y) * y[0] + relu(s)\n"
    "}\n"
    "data obs = csv(\"%s/obs.csv\")\n"
    "train M {\n"
    "  t = [0, 1]\n"
    "  final_loss = sum(y^2) + k * sum(y) + s^2\n"
    "  solver = rk4(h = 0.1)\n"
    "  optimizer = adam(lr = 1e-2)\n"
    "  steps = 1\n"
    "}\n"
    "train M {\n"
    "  data = obs\n"
    "  loss = sum((y - obs.y)^2) + k * (s - obs.s)^2\n"
    "  regularize = 0.01 * sum(y^2)\n"
    "  batch = windows(length = 4, count = 2)\n"
    "  solver = dopri5(rtol = 1e-8, atol = 1e-10)\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "  steps = 1\n"
    "}\n"
    "train M {\n"
    "  data = obs\n"
    "  init = { y = obs.y + w, s = k }\n"
    "  loss = mean(abs(y - obs.y))\n"
    "  final_loss = s^2\n"
    "  batch = windows(length = 4, count = 2)\n"
    "  solver = bdf(rtol = 1e-6, atol = 1e-9)\n"
    "  gradient = backprop\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "  steps = 1\n"
    "}\n"
    "train M {\n"
    "  data = obs\n"
    "  loss = sum((y - obs.y)^2)\n"
    "  batch = windows(length = 4, count = 2)\n"
    "  solver = tsit5(rtol = 1e-7, atol = 1e-9)\n"
    "  gradient = checkpoint\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "  steps = 1\n"
    "}\n";

static const char obs_csv[] = "t,y[0],y[1],s\n"
                              "0,1,0.5,0\n"
                              "0.2,0.9,0.6,0.1\n"
                              "0.4,0.7,0.8,0.15\n"
                              "0.6,0.5,0.9,0.3\n"
                              "0.8,0.2,1.1,0.4\n"
                              "1,0.1,1.0,0.6\n";

typedef struct Emitted {
    Compilation *c;
    IrModel *m;
    char dir[64];
    void *so;
} Emitted;

static uint64_t rng_state = 99;

static double rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng_state >> 11) / 9007199254740992.0) * 2.0 - 1.0;
}

static double *random_doubles(size_t n)
{
    double *v = malloc(sizeof *v * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = rnd();
    return v;
}

/* Emits the program into a fresh folder and loads it; so is NULL (and the
 * test skipped) when no C compiler is found. */
static void emitted_open_text(Emitted *e, const char *program);

static void emitted_open(Emitted *e)
{
    emitted_open_text(e, program_fmt);
}

/* program: a format with one %s, the folder (as program_fmt). */
static void emitted_open_text(Emitted *e, const char *program)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/nodec_emit_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    char path[128], cmd[512], text[sizeof program_fmt + 1024];
    snprintf(path, sizeof path, "%s/obs.csv", e->dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(obs_csv, f);
    fclose(f);
    ck_assert_uint_lt(strlen(program) + 64, sizeof text);
    snprintf(text, sizeof text, program, e->dir);
    CompileOptions opts = {.path = "emit_test.node", .text = text, .diag_out = stderr,
                           .until = COMPILE_DERIVE, .targets = TARGET_C};
    e->c = compile(&opts);
    ck_assert_int_eq(e->c->diag.errors, 0);
    e->m = sema_find_model(e->c->program, "M");
    ck_assert_ptr_nonnull(e->m);
    snprintf(path, sizeof path, "%s/out.c", e->dir);
    ck_assert_int_eq(emit_c_program(e->c, path), 0);
    if (system("cc --version > /dev/null 2>&1") != 0)
        return;
    /* -march=native: the JIT fuses its polynomials' multiply-adds where the host
     * has FMA, the C where FP_FAST_FMA says so; so both take the same steps */
    snprintf(cmd, sizeof cmd, "cc -std=c99 -O2 -march=native -Wall -Wextra -Werror -pedantic "
                              "-fPIC -shared -DNODEC_NO_MAIN %s/out.c -o %s/out.so -lm",
             e->dir, e->dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/out.so", e->dir);
    e->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(e->so != NULL, "dlopen: %s", dlerror());
}

/* The index-th train directive. */
static const SemaDirective *train_dir(const Emitted *e, int index)
{
    for (int i = 0, t = 0; i < e->c->program->n_dirs; i++)
        if (e->c->program->dirs[i].kind == SEMA_TRAIN && t++ == index)
            return &e->c->program->dirs[i];
    ck_abort_msg("no train %d", index);
    return NULL;
}

static void emitted_close(Emitted *e)
{
    char cmd[128];
    if (e->so)
        dlclose(e->so);
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    ck_assert_int_eq(system(cmd), 0);
    compilation_free(e->c);
}

static void *sym(Emitted *e, const char *name)
{
    void *p = dlsym(e->so, name);
    ck_assert_msg(p != NULL, "no symbol %s", name);
    return p;
}

static void assert_close(const double *got, const double *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-12 * fmax(1.0, fabs(want[i])),
                      "%s[%zu]: C %.17g, JIT %.17g", what, i, got[i], want[i]);
}

/* Calls a generated kernel and the JIT's on the same random inputs. */
static void compare_kernel(NdKernelFn c_fn, NdKernelFn jit_fn, const IrModel *m, size_t n0,
                           size_t n1, int64_t B, const char *what)
{
    size_t ny = (size_t)m->ny * (size_t)B;
    double *y = random_doubles(ny), *p = random_doubles((size_t)m->np);
    double *a = random_doubles(ny), *work = calloc(1 << 20, sizeof(double)); /* the tensor jac needs ~70k */
    double *c0 = calloc(n0 + 1, sizeof(double)), *c1 = calloc(n1 + 1, sizeof(double));
    double *j0 = calloc(n0 + 1, sizeof(double)), *j1 = calloc(n1 + 1, sizeof(double));
    c_fn(0.37, y, p, a, NULL, c0, c1, B, work);
    jit_fn(0.37, y, p, a, NULL, j0, j1, B, work);
    assert_close(c0, j0, n0, what);
    assert_close(c1, j1, n1, what);
    free(y), free(p), free(a), free(work), free(c0), free(c1), free(j0), free(j1);
}

/* The generated rhs and the JIT's on the same random batch. */
static void compare_rhs(NdRhsFn c_fn, NdRhsFn jit_fn, const IrModel *m, int64_t B, const char *what)
{
    size_t n = (size_t)m->ny * (size_t)B;
    double *y = random_doubles(n), *p = random_doubles((size_t)m->np);
    double *work = calloc(1 << 16, sizeof(double));
    double *dc = calloc(n, sizeof(double)), *dj = calloc(n, sizeof(double));
    c_fn(0.5, y, p, dc, B, work);
    jit_fn(0.5, y, p, dj, B, work);
    assert_close(dc, dj, n, what);
    free(y), free(p), free(work), free(dc), free(dj);
}

START_TEST(test_kernels_match_jit)
{
    Emitted e;
    emitted_open(&e);
    if (!e.so) {
        emitted_close(&e);
        return;
    }
    IrModel *m = e.m;
    TrainKernels tk;
    ck_assert_int_eq(train_kernels_build(e.c->arena, e.c->ir, &e.c->diag, train_dir(&e, 0), &tk), 0);
    ck_assert_int_eq(tk.n, 4); /* final, final_grad, init, init_vjp */
    NdKernelFn fns[TRAIN_K_MAX_SPECS];
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = 1, .n_extra = tk.n, .extra = tk.specs, .extra_fns = fns};
    JitModel *jit = jit_compile_request(m, &req, &k, &e.c->diag);
    ck_assert_ptr_nonnull(jit);
    int64_t B = 3 + _i * 4;
    size_t ny = (size_t)m->ny, np = (size_t)m->np, nb = (size_t)B;
    compare_kernel((NdKernelFn)sym(&e, "M_vjp"), k.vjp, m, nb * ny, np, B, "vjp");
    compare_kernel((NdKernelFn)sym(&e, "M_jac"), k.jac, m, nb * ny * ny, 0, B, "jac");
    compare_kernel((NdKernelFn)sym(&e, "M_train0_final"), fns[0], m, nb, 0, B, "final");
    compare_kernel((NdKernelFn)sym(&e, "M_train0_final_grad"), fns[1], m, nb * ny, np, B,
                   "final_grad");
    compare_rhs((NdRhsFn)sym(&e, "M_rhs"), k.rhs, m, B, "rhs");
    jit_free(jit);
    emitted_close(&e);
}
END_TEST

/* An image model through every tensor op sema writes: convolutions with
 * padding (im2col, a product, reshapes; col2im in the vjp), max and average
 * pooling (and their transposes in the vjp), a sum over an axis broadcast
 * back; 84 states, past the C jac's limit (its 9000 lines took cc 20 s).
 * %s: the folder, for the output's name. */
static const char tensor_fmt[] =
    "model M {\n"
    "  state h[2, 6, 7] = reshape(linspace(-1, 1, 84), [2, 6, 7])\n"
    "  param K[2, 2, 3, 3] = reshape(linspace(-0.5, 0.5, 36), [2, 2, 3, 3])\n"
    "  param K2[2, 2, 2, 2] = reshape(linspace(0.3, -0.2, 16), [2, 2, 2, 2])\n"
    "  param b[2, 1, 1] = reshape([0.1, -0.2], [2, 1, 1])\n"
    "  dh/dt = tanh(conv2d(K, h, pad = 1) + b) + 0.1 * conv2d(K2, max_pool(h, 2, stride = 1), "
    "pad = 1) + 0.3 * avg_pool(h, 5) + 0.05 * reshape(sum(h, 0), [1, 6, 7]) - 0.1 * "
    "conv2d(K2, avg_pool(relu(h), 2, stride = 1), pad = 1)\n"
    "}\n"
    "solve M {\n"
    "  t = [0, 1]\n"
    "  solver = rk4(h = 0.1)\n"
    "  output = \"%s/img.csv\"\n"
    "}\n";

START_TEST(test_tensor_kernels_match_jit)
{
    Emitted e;
    emitted_open_text(&e, tensor_fmt);
    if (!e.so) {
        emitted_close(&e);
        return;
    }
    IrModel *m = e.m;
    bool jac = cc_model_has_jacobian(m);
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = jac};
    JitModel *jit = jit_compile_request(m, &req, &k, &e.c->diag);
    ck_assert_ptr_nonnull(jit);
    for (int64_t B = 1; B <= 5; B += 4) {
        size_t ny = (size_t)m->ny, np = (size_t)m->np, nb = (size_t)B;
        compare_kernel((NdKernelFn)sym(&e, "M_vjp"), k.vjp, m, nb * ny, np, B, "tensor vjp");
        if (jac)
            compare_kernel((NdKernelFn)sym(&e, "M_jac"), k.jac, m, nb * ny * ny, 0, B, "tensor jac");
        compare_rhs((NdRhsFn)sym(&e, "M_rhs"), k.rhs, m, B, "tensor rhs");
    }
    jit_free(jit);
    emitted_close(&e);
}
END_TEST

/* d(final)/dp and d(final)/dy of the generated kernels against central
 * differences of the generated loss itself. */
START_TEST(test_gradient_finite_differences)
{
    Emitted e;
    emitted_open(&e);
    if (!e.so) {
        emitted_close(&e);
        return;
    }
    NdKernelFn loss = (NdKernelFn)sym(&e, "M_train0_final");
    NdKernelFn grad = (NdKernelFn)sym(&e, "M_train0_final_grad");
    void (*params)(double *) = (void (*)(double *))sym(&e, "M_params");
    size_t ny = (size_t)e.m->ny, np = (size_t)e.m->np;
    double *y = random_doubles(ny), *p = calloc(np, sizeof(double)), work[4096];
    double *gy = calloc(ny, sizeof(double)), *gp = calloc(np, sizeof(double));
    params(p);
    grad(0, y, p, NULL, NULL, gy, gp, 1, work);
    double *vars[2] = {y, p}, *grads[2] = {gy, gp};
    size_t sizes[2] = {ny, np};
    for (int v = 0; v < 2; v++)
        for (size_t i = 0; i < sizes[v]; i++) {
            double x = vars[v][i], h = 1e-6, up, down;
            vars[v][i] = x + h;
            loss(0, y, p, NULL, NULL, &up, NULL, 1, work);
            vars[v][i] = x - h;
            loss(0, y, p, NULL, NULL, &down, NULL, 1, work);
            vars[v][i] = x;
            ck_assert_double_eq_tol(grads[v][i], (up - down) / (2 * h), 1e-6);
        }
    free(y), free(p), free(gy), free(gp);
    emitted_close(&e);
}
END_TEST

/* ---- the gradient through the solve: generated vs JIT ---- */

/* The reference: one batch's loss and gradient as tools/train.c computes it
 * (its observe and add_term, written again here on purpose), JIT kernels
 * driven by nd_gradient_compute. */
typedef struct RefLoss {
    NdKernelFn fn[TRAIN_K_COUNT];
    int64_t B;
    int ny, np, nd, nt, cost;
    const double *d;
    double scale_obs, scale_final;
    double *vals, *gy, *gp, *work;
} RefLoss;

static void ref_term(RefLoss *r, int slot, double scale, double tj, const double *y,
                     const double *p, const double *d, double *L, double *gy, double *gp)
{
    r->fn[slot](tj, y, p, NULL, d, r->vals, NULL, r->B, r->work);
    for (int64_t b = 0; b < r->B; b++)
        *L += scale * r->vals[b];
    r->fn[slot + 1](tj, y, p, NULL, d, r->gy, r->gp, r->B, r->work);
    for (int64_t i = 0; i < r->B * r->ny; i++)
        gy[i] += scale * r->gy[i];
    for (int i = 0; i < r->np; i++)
        gp[i] += scale * r->gp[i];
}

static int ref_observe(void *ctx, int j, double tj, const double *y, const double *p, double *L,
                       double *gy, double *gp)
{
    RefLoss *r = ctx;
    const double *d = r->nd ? r->d + (size_t)j * (size_t)r->B * (size_t)r->nd : NULL;
    memset(gy, 0, sizeof(double) * (size_t)(r->B * r->ny));
    if (r->fn[TRAIN_K_LOSS])
        ref_term(r, TRAIN_K_LOSS, r->scale_obs, tj, y, p, d, L, gy, gp);
    if (j == r->nt - 1 && r->fn[TRAIN_K_FINAL])
        ref_term(r, TRAIN_K_FINAL, r->scale_final, tj, y, p, d, L, gy, gp);
    for (int64_t b = 0; j == r->nt - 1 && r->cost >= 0 && b < r->B; b++) {
        *L += r->scale_final * y[b * r->ny + r->cost];
        gy[b * r->ny + r->cost] += r->scale_final;
    }
    return 0;
}

/* How each train of the program solves (its solver and gradient keys). */
typedef struct TrainCase {
    NdMethod method;
    double h, rtol, atol;
    NdGradMethod gm;
    int64_t B;
    int nt;
} TrainCase;

static const TrainCase train_cases[] = {
    {ND_RK4, 0.1, 0, 0, ND_GRAD_ADJOINT, 3, 2},
    {ND_DOPRI5, 0, 1e-8, 1e-10, ND_GRAD_ADJOINT, 2, 4},
    {ND_BDF, 0, 1e-6, 1e-9, ND_GRAD_BACKPROP, 2, 4},
    {ND_TSIT5, 0, 1e-7, 1e-9, ND_GRAD_CHECKPOINT, 2, 4},
};

/* The reference loss and gradient of train `index` at p. */
static void jit_gradient(Emitted *e, int index, const double *p, const double *ts,
                         const double *d, double *L, double *grad_p)
{
    const TrainCase *tc = &train_cases[index];
    const SemaDirective *dir = train_dir(e, index);
    IrModel *m = dir->train.augmented;
    TrainKernels tk;
    ck_assert_int_eq(train_kernels_build(e->c->arena, e->c->ir, &e->c->diag, dir, &tk), 0);
    diff_model_adjoint(e->c->ir, m);
    diff_model_jacobian(e->c->ir, m);
    NdKernelFn fns[TRAIN_K_MAX_SPECS];
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = 1, .n_extra = tk.n, .extra = tk.specs, .extra_fns = fns};
    JitModel *jit = jit_compile_request(m, &req, &k, &e->c->diag);
    ck_assert_ptr_nonnull(jit);
    RefLoss r = {.B = tc->B, .ny = m->ny, .np = m->np, .nt = tc->nt, .d = d,
                 .nd = dir->train.data ? dir->train.data->ncols : 0,
                 .cost = m != dir->train.model ? dir->train.model->ny : -1,
                 .scale_obs = 1.0 / ((double)tc->B * tc->nt), .scale_final = 1.0 / tc->B};
    NdKernelFn metrics[SEMA_MAX_METRICS], data_grads[TRAIN_KD_COUNT];
    train_kernels_assign(&tk, fns, r.fn, metrics, data_grads);
    size_t n = (size_t)(tc->B * m->ny);
    r.vals = calloc((size_t)tc->B, sizeof(double));
    r.gy = calloc(n, sizeof(double));
    r.gp = calloc((size_t)m->np, sizeof(double));
    r.work = calloc(nd_kernels_work_size(&k, tc->B) + 1, sizeof(double));
    double *y0 = calloc(n, sizeof(double)), *gy0 = calloc(n, sizeof(double));
    double *gp_init = calloc((size_t)m->np, sizeof(double));
    NdSolver *tmpl = nd_solver_create(&k, tc->method, tc->B);
    ck_assert_int_eq(tc->h > 0 ? nd_solver_set_step(tmpl, tc->h)
                               : nd_solver_set_tolerances(tmpl, tc->rtol, tc->atol), 0);
    NdGradient *g = nd_gradient_create(&k, tmpl, tc->gm, tc->B, tc->nt);
    r.fn[TRAIN_K_INIT](ts[0], NULL, p, NULL, d, y0, NULL, tc->B, r.work);
    NdLoss loss = {tc->nt, ts, ref_observe, &r};
    *L = 0;
    ck_assert_int_eq(nd_gradient_compute(g, p, y0, &loss, L, grad_p, gy0), ND_OK);
    r.fn[TRAIN_K_INIT_VJP](ts[0], NULL, p, gy0, d, NULL, gp_init, tc->B, r.work);
    for (int i = 0; i < m->np; i++)
        grad_p[i] += gp_init[i];
    nd_gradient_free(g);
    nd_solver_free(tmpl);
    jit_free(jit);
    free(r.vals), free(r.gy), free(r.gp), free(r.work), free(y0), free(gy0), free(gp_init);
}

typedef void *(*CreateFn)(int64_t B, int max_nt);
typedef int (*GradientFn)(void *g, const double *p, int nt, const double *ts, const double *d,
                          double *L, double *grad_p);

/* Train _i's generated M_train<i>_gradient against the JIT path, to 1e-12. */
START_TEST(test_train_gradient_matches_jit)
{
    Emitted e;
    emitted_open(&e);
    if (!e.so) {
        emitted_close(&e);
        return;
    }
    const TrainCase *tc = &train_cases[_i];
    char name[64];
    size_t np = (size_t)e.m->np;
    double *p = calloc(np, sizeof(double)), *gc = calloc(np, sizeof(double));
    double *gj = calloc(np, sizeof(double)), Lc, Lj;
    ((void (*)(double *))sym(&e, "M_params"))(p);
    /* time series rows: sample b's observation j is row 2 b + j of obs.csv */
    const SemaData *data = train_dir(&e, _i)->train.data;
    double ts_rows[4] = {0, 0.2, 0.4, 0.6}, ts_span[2] = {0, 1};
    const double *ts = data ? ts_rows : ts_span;
    double *d = data ? calloc((size_t)(tc->nt * tc->B * data->ncols), sizeof(double)) : NULL;
    for (int j = 0; data && j < tc->nt; j++)
        for (int64_t b = 0; b < tc->B; b++)
            memcpy(d + (j * tc->B + b) * data->ncols, data->values + (2 * b + j) * data->ncols,
                   sizeof(double) * (size_t)data->ncols);
    snprintf(name, sizeof name, "M_train%d_create", _i);
    void *g = ((CreateFn)sym(&e, name))(tc->B, tc->nt);
    ck_assert_ptr_nonnull(g);
    snprintf(name, sizeof name, "M_train%d_gradient", _i);
    ck_assert_int_eq(((GradientFn)sym(&e, name))(g, p, tc->nt, ts, d, &Lc, gc), 0);
    ((void (*)(void *))sym(&e, "nd_train_loss_free"))(g);
    jit_gradient(&e, _i, p, ts, d, &Lj, gj);
    ck_assert(Lj > 0);
    assert_close(&Lc, &Lj, 1, "L");
    assert_close(gc, gj, np, "grad_p");
    double norm = 0;
    for (size_t i = 0; i < np; i++)
        norm += gj[i] * gj[i];
    ck_assert(norm > 1e-12); /* a gradient that is there to compare */
    free(p), free(gc), free(gj), free(d);
    emitted_close(&e);
}
END_TEST

/* The plain C LU (NODEC_NO_LAPACK) against LAPACK's dgetrf/dgetrs: the same
 * pivots and, to rounding, the same solutions of A x = b and A^T x = b; a
 * singular matrix reported at the same column. */
START_TEST(test_lu_fallback_matches_lapack)
{
    enum { M = 7 };
    double a[M * M], lu1[M * M], lu2[M * M], b[M], x1[M], x2[M];
    int ip1[M], ip2[M];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < M * M; i++)
            a[i] = rnd() + (i % (M + 1) == 0 ? 0.1 * trial : 0.0);
        for (int i = 0; i < M; i++)
            b[i] = rnd();
        memcpy(lu1, a, sizeof a);
        memcpy(lu2, a, sizeof a);
        ck_assert_int_eq(fallback_lu_factor(M, lu1, ip1), nd_lu_factor(M, lu2, ip2));
        ck_assert_int_eq(memcmp(ip1, ip2, sizeof ip1), 0);
        for (int tr = 0; tr < 2; tr++) {
            memcpy(x1, b, sizeof b);
            memcpy(x2, b, sizeof b);
            fallback_lu_solve(M, lu1, ip1, x1, tr);
            nd_lu_solve(M, lu2, ip2, x2, tr);
            for (int i = 0; i < M; i++)
                ck_assert_double_eq_tol(x1[i], x2[i], 1e-10 * fmax(1.0, fabs(x2[i])));
            double r = 0; /* and the residual of A x = b itself */
            for (int i = 0; i < M; i++) {
                double s = -b[i];
                for (int j = 0; j < M; j++)
                    s += (tr ? a[i * M + j] : a[j * M + i]) * x1[j];
                r = fmax(r, fabs(s));
            }
            ck_assert_double_lt(r, 1e-10);
        }
    }
    memset(a, 0, sizeof a); /* column 3 zero below and on the diagonal */
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            a[j * M + i] = j == 2 ? 0.0 : (i == j) + 0.01 * (i + j);
    memcpy(lu1, a, sizeof a);
    memcpy(lu2, a, sizeof a);
    ck_assert_int_eq(fallback_lu_factor(M, lu1, ip1), nd_lu_factor(M, lu2, ip2));
    ck_assert_int_eq(nd_lu_factor(M, a, ip2), 3);
}
END_TEST

/* Parameters as nodec run initialises them: k = 0.3 (its expression), the
 * normal draws of w nonzero, and the program's default state names. */
START_TEST(test_params_and_names)
{
    Emitted e;
    emitted_open(&e);
    if (!e.so) {
        emitted_close(&e);
        return;
    }
    void (*params)(double *) = (void (*)(double *))sym(&e, "M_params");
    const char *const *(*names)(void) = (const char *const *(*)(void))sym(&e, "M_state_names");
    double *p = calloc((size_t)e.m->np, sizeof(double));
    params(p);
    for (int j = 0; j < e.m->n_params; j++) {
        const IrVar *v = &e.m->params[j];
        if (strcmp(v->name, "k") == 0)
            ck_assert_double_eq(p[v->offset], 0.3);
        if (strcmp(v->name, "w") == 0)
            ck_assert(p[v->offset] != 0.0 && p[v->offset + 1] != p[v->offset]);
    }
    ck_assert_str_eq(names()[0], "y[0]");
    ck_assert_str_eq(names()[2], "s");
    free(p);
    emitted_close(&e);
}
END_TEST

START_TEST(test_literals_read_back)
{
    const double values[] = {0.1, -2.0, 1e-300, 3.0e300, 2.0 / 3.0, -0.0, 5e-324, 123456789.0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cc_print_double(f, values[i]);
        fclose(f);
        ck_assert_msg(strpbrk(buf, ".e") != NULL, "%s is not a double literal", buf);
        const char *s = buf[0] == '(' ? buf + 1 : buf;
        double back = strtod(s, NULL);
        ck_assert(memcmp(&back, &values[i], sizeof back) == 0);
        free(buf);
    }
}
END_TEST

/* The embedded copy is byte for byte the runtime's source (when the source
 * tree is found through NODEC_TEST_DIR). */
START_TEST(test_embedded_runtime_is_the_runtime)
{
    const char *dir = getenv("NODEC_TEST_DIR");
    ck_assert_int_gt(cc_runtime_file_count, 5);
    for (int i = 0; dir && i < cc_runtime_file_count; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/../runtime/%s", dir, cc_runtime_files[i].name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue; /* removed since the build */
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        char *text = malloc((size_t)n + 1);
        ck_assert_int_eq(fread(text, 1, (size_t)n, f), (size_t)n);
        text[n] = '\0';
        fclose(f);
        ck_assert_msg(strcmp(text, cc_runtime_files[i].text) == 0, "%s differs (rebuild?)",
                      cc_runtime_files[i].name);
        free(text);
    }
}
END_TEST

Suite *emit_c_suite(void);
Suite *emit_c_suite(void)
{
    Suite *s = suite_create("emit_c");
    TCase *tc = tcase_create("emit_c");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_kernels_match_jit, 0, 2);
    tcase_add_test(tc, test_gradient_finite_differences);
    tcase_add_test(tc, test_tensor_kernels_match_jit);
    tcase_add_loop_test(tc, test_train_gradient_matches_jit, 0, 4);
    tcase_add_test(tc, test_lu_fallback_matches_lapack);
    tcase_add_test(tc, test_params_and_names);
    tcase_add_test(tc, test_literals_read_back);
    tcase_add_test(tc, test_embedded_runtime_is_the_runtime);
    suite_add_tcase(s, tc);
    return s;
}
