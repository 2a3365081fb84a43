/* Gradients of compiled models end to end: .node source through compile_file,
 * the adjoint system derived by compiler/diff, the rhs and vjp JIT-compiled,
 * and each gradient path of runtime/grad/nd_gradient (adjoint, backprop,
 * checkpoint; dopri5 at rtol 1e-10 and rk4) checked against central finite
 * differences of an accurate forward solve (nd_solve, the loss computed here):
 * two independent computations that share only the rhs kernel. The models
 * cover a scalar, an MLP (matmul, tanh), a matrix state, time dependence, a
 * flow whose rhs uses div() (so the adjoint holds second derivatives) and the
 * ANODEV2 model with a state shared by the batch. Define
 * CHECK_GRAD_COMPILED_VERBOSE to print the errors seen. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"
#include "diff.h"
#include "driver.h"
#include "nd_gradient.h"

Suite *grad_compiled_suite(void);

#ifdef CHECK_GRAD_COMPILED_VERBOSE
#define VERBOSE(...) printf(__VA_ARGS__)
#else
#define VERBOSE(...) do { if (0) printf(__VA_ARGS__); } while (0) /* still type-checked */
#endif

enum { MAX_P = 64, MAX_N = 32, MAX_T = 4 };

/* ---- the models ---- */

/* Every model is called M. p and y0 are set by formula (not by the declared
 * initialisers) so the numbers do not depend on the random generator;
 * p_scale keeps each model's dynamics moderate over [0, 1.5]. shared_at and
 * shared_len mark a state shared by the batch (its y0 is copied from sample 0). */
typedef struct Case {
    const char *name;
    const char *src;
    int B;
    double p_scale;
    int shared_at, shared_len;
} Case;

static const Case cases[] = {
    {"decay", "model M { state x; param k; dx/dt = -k * x }", 1, 1.0, 0, 0},
    {"mlp", "model M {\n  state y[2]\n  net f = MLP(2, 8, 2, tanh)\n  dy/dt = f(y^3)\n}", 2,
     0.5, 0, 0},
    {"matrix", "model M {\n  state W[2, 2]\n  param P[2, 2]\n  dW/dt = tanh(P @ W) - W\n}", 2,
     1.5, 0, 0},
    {"forced",
     "model M {\n  state x[2]\n  param A[2, 2]\n  param c[2]\n"
     "  dx/dt = A @ x + c * cos(3 * t)\n}", 1, 1.0, 0, 0},
    {"flow",
     "model M {\n  state z[2]\n  state logp = 0\n  net f = MLP(2, 5, 2, tanh)\n"
     "  dz/dt = f(z)\n  dlogp/dt = -div(z)\n}", 2, 0.8, 0, 0},
    /* LANGUAGE.md 5.5 as written: W is shared, z per sample */
    {"coupled",
     "model M {\n  state z[2]\n  state W[2, 2] = W0\n  param W0[2, 2] ~ normal(0, 0.5)\n"
     "  param P[2, 2] ~ normal(0, 0.1)\n  dz/dt = tanh(W @ z)\n  dW/dt = tanh(P @ W) - W\n}",
     3, 1.0, 2, 4},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

typedef struct Compiled {
    Compilation *c;
    IrModel *m;
    JitModel *jit;
    NdKernels k;
    int B, n; /* samples, B * ny */
    double p[MAX_P], y0[MAX_N];
} Compiled;

/* Compiles src's model M with its vjp (and, with fused, the rhs_vjp kernel the
 * adjoint then uses, as train.c asks for it), and fills p and y0 for the case. */
static Compiled *compiled_new_fused(const Case *cs, int fused)
{
    Compiled *x = calloc(1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    x->c = compile_file("grad.node", cs->src, stderr, 0);
    ck_assert_int_eq(x->c->diag.errors, 0);
    x->m = sema_find_model(x->c->program, "M");
    ck_assert_ptr_nonnull(x->m);
    diff_model_adjoint(x->c->ir, x->m);
    JitRequest req = {.vjp = 1, .rhs_vjp = fused};
    x->jit = jit_compile_request(x->m, &req, &x->k, &x->c->diag);
    ck_assert_ptr_nonnull(x->jit);
    ck_assert_ptr_nonnull(x->k.vjp);
    ck_assert(!x->k.rhs_vjp == !fused);
    x->B = cs->B;
    x->n = x->k.ny * cs->B;
    ck_assert_int_le(x->k.np, MAX_P);
    ck_assert_int_le(x->n, MAX_N);
    for (int i = 0; i < x->k.np; i++)
        x->p[i] = cs->p_scale * sin(1.3 * i + 0.5);
    for (int b = 0; b < x->B; b++)
        for (int i = 0; i < x->k.ny; i++) {
            bool shared = i >= cs->shared_at && i < cs->shared_at + cs->shared_len;
            int e = shared ? i : b * x->k.ny + i;
            x->y0[b * x->k.ny + i] = 0.9 * cos(0.7 * e + 0.2);
        }
    return x;
}

static Compiled *compiled_new(const Case *cs)
{
    return compiled_new_fused(cs, 0);
}

static void compiled_free(Compiled *x)
{
    jit_free(x->jit);
    compilation_free(x->c);
    free(x);
}

/* ---- the losses ---- */

/* final: L = sum y(t1)^2 over every element of the batch (ts = {0, 1.5});
 * obs: L = sum_j (1/nt) sum_e (y_e(t_j) - 0.5 cos(0.7 j + e))^2 at four times,
 * t0 included, so the adjoint jumps at each of them. */
typedef struct LossSpec {
    int final_only;
    int nt;
    double ts[MAX_T];
} LossSpec;

static const LossSpec losses[] = {{1, 2, {0.0, 1.5}}, {0, 4, {0.0, 0.4, 1.0, 1.5}}};

typedef struct LossCtx {
    const LossSpec *spec;
    int n;
} LossCtx;

static double target(int j, int e)
{
    return 0.5 * cos(0.7 * j + e);
}

static int loss_cb(void *ctx, int j, double t, const double *y, const double *p, double *L,
                   double *gy, double *gp)
{
    (void)t, (void)p, (void)gp;
    const LossCtx *c = ctx;
    double w = c->spec->final_only ? (j == c->spec->nt - 1) : 1.0 / c->spec->nt;
    for (int e = 0; e < c->n; e++) {
        double r = c->spec->final_only ? y[e] : y[e] - target(j, e);
        *L += w * r * r;
        gy[e] = 2.0 * w * r;
    }
    return 0;
}

/* The same loss from a table of states (nd_solve's output), for the differences. */
static double loss_of(const LossCtx *c, const double *yout)
{
    double L = 0.0, gy[MAX_N], gp[1];
    for (int j = 0; j < c->spec->nt; j++)
        loss_cb((void *)c, j, c->spec->ts[j], yout + (size_t)j * c->n, NULL, &L, gy, gp);
    return L;
}

/* ---- the reference: central differences of an accurate forward ---- */

/* rk4 with h = 1e-3 is accurate to ~1e-12 on these problems and, being fixed
 * step, smooth in p and y0, so differences of it approximate the continuous
 * gradient that every path converges to. */
static double forward_loss(NdSolver *s, const LossCtx *lc, const double *p, const double *y0)
{
    double yout[MAX_T * MAX_N];
    int st = nd_solve(s, p, y0, lc->spec->ts, lc->spec->nt, yout);
    ck_assert_msg(st == ND_OK, "forward: %s", nd_solver_get_message(s));
    return loss_of(lc, yout);
}

static void finite_differences(const Compiled *x, const LossCtx *lc, double *fd_p, double *fd_y0)
{
    NdSolver *s = nd_solver_create(&x->k, ND_RK4, x->B);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(nd_solver_set_step(s, 1e-3), ND_OK);
    double p[MAX_P], y0[MAX_N];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < (pass == 0 ? x->k.np : x->n); i++) {
            memcpy(p, x->p, sizeof p);
            memcpy(y0, x->y0, sizeof y0);
            double *v = pass == 0 ? &p[i] : &y0[i], v0 = *v;
            double eps = 1e-5 * fmax(1.0, fabs(v0));
            *v = v0 + eps;
            double Lp = forward_loss(s, lc, p, y0);
            *v = v0 - eps;
            double Lm = forward_loss(s, lc, p, y0);
            (pass == 0 ? fd_p : fd_y0)[i] = (Lp - Lm) / (2.0 * eps);
        }
    nd_solver_free(s);
}

/* max_i |x_i - ref_i| / max(|ref_i|, 1e-3 max_k |ref_k|): relative per element,
 * with elements far below the vector's scale measured against that scale. */
static double worst_rel(const double *v, const double *ref, int n)
{
    double scale = 0.0, worst = 0.0;
    for (int i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fabs(v[i] - ref[i]) / fmax(fmax(fabs(ref[i]), 1e-3 * scale), 1e-300));
    return worst;
}

/* ---- the gradient paths ---- */

typedef struct Config {
    NdGradMethod gm;
    NdMethod method;
} Config;

static const Config configs[] = {
    {ND_GRAD_ADJOINT, ND_DOPRI5}, {ND_GRAD_BACKPROP, ND_DOPRI5}, {ND_GRAD_CHECKPOINT, ND_DOPRI5},
    {ND_GRAD_ADJOINT, ND_RK4},    {ND_GRAD_BACKPROP, ND_RK4},    {ND_GRAD_CHECKPOINT, ND_RK4},
};
enum { N_CONFIGS = sizeof configs / sizeof configs[0] };

static const char *gm_name(NdGradMethod gm)
{
    return gm == ND_GRAD_ADJOINT ? "adjoint" : gm == ND_GRAD_BACKPROP ? "backprop" : "checkpoint";
}

/* dopri5 at rtol 1e-10, atol 1e-12; rk4 with h (whose O(h^4) error stays far
 * below the 1e-6 the gradients are held to). */
static NdGradient *gradient_new(const Compiled *x, Config c, double h, int max_nt)
{
    NdSolver *s = nd_solver_create(&x->k, c.method, x->B);
    ck_assert_ptr_nonnull(s);
    if (nd_method_is_adaptive(c.method))
        ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-10, 1e-12), ND_OK);
    else
        ck_assert_int_eq(nd_solver_set_step(s, h), ND_OK);
    NdGradient *g = nd_gradient_create(&x->k, s, c.gm, x->B, max_nt);
    ck_assert_ptr_nonnull(g);
    nd_solver_free(s);
    return g;
}

static void gradient_ok(NdGradient *g, const Compiled *x, const NdLoss *loss, double *L,
                        double *gp, double *gy0)
{
    int st = nd_gradient_compute(g, x->p, x->y0, loss, L, gp, gy0);
    ck_assert_msg(st == ND_OK, "status %d: %s", st, nd_gradient_get_message(g));
}

/* Loop index: case * 2 + loss. Every path against one set of differences, then
 * checkpoint against backprop for each solver. */
START_TEST(test_paths_vs_fd)
{
    const Case *cs = &cases[_i / 2];
    const LossSpec *spec = &losses[_i % 2];
    Compiled *x = compiled_new(cs);
    LossCtx lc = {spec, x->n};
    NdLoss loss = {spec->nt, spec->ts, loss_cb, &lc};
    double fd_p[MAX_P], fd_y0[MAX_N];
    finite_differences(x, &lc, fd_p, fd_y0);
    double gp[N_CONFIGS][MAX_P], gy[N_CONFIGS][MAX_N], L[N_CONFIGS];
    for (int c = 0; c < N_CONFIGS; c++) {
        NdGradient *g = gradient_new(x, configs[c], 0.01, MAX_T);
        gradient_ok(g, x, &loss, &L[c], gp[c], gy[c]);
        double ep = worst_rel(gp[c], fd_p, x->k.np), ey = worst_rel(gy[c], fd_y0, x->n);
        VERBOSE("%-8s %-5s B=%d %-10s %-6s: dL/dp rel %.1e, dL/dy0 rel %.1e (%ld rhs, %ld vjp)\n",
                cs->name, spec->final_only ? "final" : "obs", cs->B, gm_name(configs[c].gm),
                nd_method_name(configs[c].method), ep, ey, nd_gradient_get_num_rhs_evals(g),
                nd_gradient_get_num_vjp_evals(g));
        ck_assert_msg(ep <= 1e-6 && ey <= 1e-6, "%s %s %s: dL/dp rel %g, dL/dy0 rel %g",
                      cs->name, gm_name(configs[c].gm), nd_method_name(configs[c].method), ep,
                      ey);
        nd_gradient_free(g);
    }
    /* checkpoint (2, 5) replays backprop's (1, 4) forward steps exactly */
    for (int c = 1; c < N_CONFIGS; c += 3) {
        ck_assert(L[c] == L[c + 1]);
        double ep = worst_rel(gp[c + 1], gp[c], x->k.np), ey = worst_rel(gy[c + 1], gy[c], x->n);
        VERBOSE("%-8s checkpoint vs backprop %s: %.1e %.1e\n", cs->name,
                nd_method_name(configs[c].method), ep, ey);
        ck_assert_double_le(ep, 1e-12);
        ck_assert_double_le(ey, 1e-12);
    }
    compiled_free(x);
}
END_TEST

/* The adjoint through the fused rhs_vjp kernel (one call per backward stage),
 * with the full norm and the seminorm, for dopri5 and rk4: against the same
 * differences, and, with the full norm, the same numbers as through rhs and
 * vjp (the kernels agree bit for bit). Loop index as test_paths_vs_fd. */
START_TEST(test_fused_adjoint_vs_fd)
{
    const Case *cs = &cases[_i / 2];
    const LossSpec *spec = &losses[_i % 2];
    Compiled *x = compiled_new_fused(cs, 1), *plain = compiled_new(cs);
    LossCtx lc = {spec, x->n};
    NdLoss loss = {spec->nt, spec->ts, loss_cb, &lc};
    double fd_p[MAX_P], fd_y0[MAX_N];
    finite_differences(x, &lc, fd_p, fd_y0);
    for (int c = 0; c < 4; c++) {
        Config cfg = {ND_GRAD_ADJOINT, c % 2 ? ND_RK4 : ND_DOPRI5};
        NdGradient *g = gradient_new(x, cfg, 0.01, MAX_T);
        ck_assert_int_eq(nd_gradient_set_seminorm(g, c >= 2), ND_OK);
        double L, gp[MAX_P], gy[MAX_N];
        gradient_ok(g, x, &loss, &L, gp, gy);
        double ep = worst_rel(gp, fd_p, x->k.np), ey = worst_rel(gy, fd_y0, x->n);
        VERBOSE("%-8s %-5s fused adjoint %-6s%s: dL/dp rel %.1e, dL/dy0 rel %.1e (%ld evals)\n",
                cs->name, spec->final_only ? "final" : "obs", nd_method_name(cfg.method),
                c >= 2 ? " seminorm" : "", ep, ey, nd_gradient_get_num_backward_evals(g));
        ck_assert_msg(ep <= 1e-6 && ey <= 1e-6, "%s fused adjoint %s: dL/dp rel %g, dL/dy0 rel %g",
                      cs->name, nd_method_name(cfg.method), ep, ey);
        nd_gradient_free(g);
        if (c >= 2)
            continue;
        NdGradient *g2 = gradient_new(plain, cfg, 0.01, MAX_T);
        double L2, gp2[MAX_P], gy2[MAX_N];
        gradient_ok(g2, plain, &loss, &L2, gp2, gy2);
        ck_assert(L2 == L);
        ck_assert(memcmp(gp2, gp, sizeof(double) * (size_t)x->k.np) == 0);
        ck_assert(memcmp(gy2, gy, sizeof(double) * (size_t)x->n) == 0);
        nd_gradient_free(g2);
    }
    compiled_free(x);
    compiled_free(plain);
}
END_TEST

/* The shared state of the coupled model: its copies in the samples stay equal
 * along the solve, and dL/dW0 (an initial state given by a parameter) is the
 * sum over the batch of the copies' adjoints at t0, which differences of L
 * with W moved in every sample at once confirm. */
START_TEST(test_shared_state)
{
    const Case *cs = &cases[N_CASES - 1];
    Compiled *x = compiled_new(cs);
    const LossSpec *spec = &losses[1];
    LossCtx lc = {spec, x->n};
    NdLoss loss = {spec->nt, spec->ts, loss_cb, &lc};
    NdSolver *s = nd_solver_create(&x->k, ND_RK4, x->B);
    nd_solver_set_step(s, 1e-3);
    double yout[MAX_T * MAX_N];
    ck_assert_int_eq(nd_solve(s, x->p, x->y0, spec->ts, spec->nt, yout), ND_OK);
    int ny = x->k.ny;
    for (int b = 1; b < x->B; b++)
        for (int i = cs->shared_at; i < cs->shared_at + cs->shared_len; i++)
            ck_assert(yout[(spec->nt - 1) * x->n + b * ny + i] ==
                      yout[(spec->nt - 1) * x->n + i]);
    for (int gm = 0; gm < 3; gm++) {
        NdGradient *g = gradient_new(x, (Config){(NdGradMethod)gm, ND_DOPRI5}, 0, MAX_T);
        double L, gp[MAX_P], gy[MAX_N];
        gradient_ok(g, x, &loss, &L, gp, gy);
        for (int i = cs->shared_at; i < cs->shared_at + cs->shared_len; i++) {
            double sum = 0.0, y0[MAX_N], eps = 1e-5;
            for (int b = 0; b < x->B; b++)
                sum += gy[b * ny + i];
            memcpy(y0, x->y0, sizeof y0);
            for (int b = 0; b < x->B; b++)
                y0[b * ny + i] = x->y0[i] + eps;
            double Lp = forward_loss(s, &lc, x->p, y0);
            for (int b = 0; b < x->B; b++)
                y0[b * ny + i] = x->y0[i] - eps;
            double fd = (Lp - forward_loss(s, &lc, x->p, y0)) / (2.0 * eps);
            VERBOSE("shared W element %d, %s: sum of adjoints %.15g, differences %.15g\n",
                    i - cs->shared_at, gm_name((NdGradMethod)gm), sum, fd);
            ck_assert_double_eq_tol(sum, fd, 1e-6 * fabs(fd));
        }
        nd_gradient_free(g);
    }
    nd_solver_free(s);
    compiled_free(x);
}
END_TEST

/* ---- memory: the adjoint's does not grow with the number of steps ---- */

START_TEST(test_adjoint_memory)
{
    Compiled *x = compiled_new(&cases[1]); /* the mlp, B = 2 */
    const LossSpec *spec = &losses[1];
    LossCtx lc = {spec, x->n};
    NdLoss loss = {spec->nt, spec->ts, loss_cb, &lc};
    size_t peak[2][2];
    double gp[2][MAX_P], L;
    for (int i = 0; i < 2; i++) /* 1.5e3 and 1.5e5 rk4 steps */
        for (int gm = 0; gm < 2; gm++) {
            NdGradient *g = gradient_new(x, (Config){(NdGradMethod)gm, ND_RK4},
                                         i == 0 ? 1e-3 : 1e-5, MAX_T);
            gradient_ok(g, x, &loss, &L, gp[gm], NULL);
            peak[i][gm] = nd_gradient_get_peak_doubles(g);
            nd_gradient_free(g);
        }
    VERBOSE("peak doubles 1.5e3 -> 1.5e5 rk4 steps: adjoint %zu -> %zu, backprop %zu -> %zu\n",
            peak[0][0], peak[1][0], peak[0][1], peak[1][1]);
    ck_assert_uint_eq(peak[0][ND_GRAD_ADJOINT], peak[1][ND_GRAD_ADJOINT]);
    ck_assert_uint_gt(peak[1][ND_GRAD_BACKPROP], 50 * peak[0][ND_GRAD_BACKPROP]);
    /* and at h = 1e-5 both paths give the continuous gradient */
    ck_assert_double_le(worst_rel(gp[ND_GRAD_ADJOINT], gp[ND_GRAD_BACKPROP], x->k.np), 1e-9);
    compiled_free(x);
}
END_TEST

Suite *grad_compiled_suite(void)
{
    Suite *s = suite_create("grad_compiled");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_paths_vs_fd, 0, 2 * N_CASES);
    tcase_add_loop_test(tc, test_fused_adjoint_vs_fd, 0, 2 * N_CASES);
    tcase_add_test(tc, test_shared_state);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_adjoint_memory);
    suite_add_tcase(s, tc);
    return s;
}
