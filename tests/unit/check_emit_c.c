/* The C back end against the JIT: a program with a model (an MLP, a
 * parameter, slices, where) and a train directive is written by
 * emit_c_program, compiled by the system's C compiler into a shared object
 * (-DNODEC_NO_MAIN) and loaded with dlopen; its rhs, vjp, jac and the train
 * loss's value and gradient kernels are compared on random batches with the
 * same kernels JIT-compiled from the same IR, and the generated gradient with
 * central differences of the generated loss (an independent check). Also:
 * literals read back exactly, and the embedded runtime is the runtime. */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen.h"
#include "codegen_c.h"
#include "diff.h"
#include "driver.h"

static const char program[] =
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
    "train M {\n"
    "  t = [0, 1]\n"
    "  final_loss = sum(y^2) + k * sum(y) + s^2\n"
    "  solver = rk4(h = 0.1)\n"
    "  optimizer = adam(lr = 1e-2)\n"
    "  steps = 1\n"
    "}\n";

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
static void emitted_open(Emitted *e)
{
    memset(e, 0, sizeof *e);
    e->c = compile_file("emit_test.node", program, stderr, 0);
    ck_assert_int_eq(e->c->diag.errors, 0);
    e->m = sema_find_model(e->c->program, "M");
    ck_assert_ptr_nonnull(e->m);
    snprintf(e->dir, sizeof e->dir, "/tmp/nodec_emit_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/out.c", e->dir);
    ck_assert_int_eq(emit_c_program(e->c, path), 0);
    if (system("cc --version > /dev/null 2>&1") != 0)
        return;
    snprintf(cmd, sizeof cmd, "cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -fPIC -shared "
                              "-DNODEC_NO_MAIN %s/out.c -o %s/out.so -lm", e->dir, e->dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/out.so", e->dir);
    e->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(e->so != NULL, "dlopen: %s", dlerror());
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
    double *a = random_doubles(ny), *work = calloc(1 << 16, sizeof(double));
    double *c0 = calloc(n0 + 1, sizeof(double)), *c1 = calloc(n1 + 1, sizeof(double));
    double *j0 = calloc(n0 + 1, sizeof(double)), *j1 = calloc(n1 + 1, sizeof(double));
    c_fn(0.37, y, p, a, NULL, c0, c1, B, work);
    jit_fn(0.37, y, p, a, NULL, j0, j1, B, work);
    assert_close(c0, j0, n0, what);
    assert_close(c1, j1, n1, what);
    free(y), free(p), free(a), free(work), free(c0), free(c1), free(j0), free(j1);
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
    CgKernelSpec specs[4];
    int n = emit_c_train_specs(e.c->arena, e.c->ir, &e.c->program->dirs[0].train, specs);
    ck_assert_int_eq(n, 2); /* final, final_grad */
    NdKernelFn fns[4];
    NdKernels k;
    JitRequest req = {.vjp = 1, .jac = 1, .n_extra = n, .extra = specs, .extra_fns = fns};
    JitModel *jit = jit_compile_request(m, &req, &k, &e.c->diag);
    ck_assert_ptr_nonnull(jit);
    int64_t B = 3 + _i * 4;
    size_t ny = (size_t)m->ny, np = (size_t)m->np, nb = (size_t)B;
    compare_kernel((NdKernelFn)sym(&e, "M_vjp"), k.vjp, m, nb * ny, np, B, "vjp");
    compare_kernel((NdKernelFn)sym(&e, "M_jac"), k.jac, m, nb * ny * ny, 0, B, "jac");
    compare_kernel((NdKernelFn)sym(&e, "M_train0_final"), fns[0], m, nb, 0, B, "final");
    compare_kernel((NdKernelFn)sym(&e, "M_train0_final_grad"), fns[1], m, nb * ny, np, B,
                   "final_grad");
    NdRhsFn rhs = (NdRhsFn)sym(&e, "M_rhs");
    double *y = random_doubles(nb * ny), *p = random_doubles(np), *work = calloc(4096, 8);
    double *dc = calloc(nb * ny, sizeof(double)), *dj = calloc(nb * ny, sizeof(double));
    rhs(0.5, y, p, dc, B, work);
    k.rhs(0.5, y, p, dj, B, work);
    assert_close(dc, dj, nb * ny, "rhs");
    free(y), free(p), free(work), free(dc), free(dj);
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
    tcase_add_test(tc, test_params_and_names);
    tcase_add_test(tc, test_literals_read_back);
    tcase_add_test(tc, test_embedded_runtime_is_the_runtime);
    suite_add_tcase(s, tc);
    return s;
}
