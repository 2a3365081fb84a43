/* The shared block of the kernel ABI (nd_kernels.h) in the runtime, with
 * hand-written kernels (rhs, vjp and the bordered jac) of an ANODEV2-like model: per-sample z[2] and weights
 * W[2,2] that evolve by their own ODE,
 *   dz/dt = tanh(W z),   dW/dt = tanh(P .* W)   (p = P, 4 elements),
 * written twice: "once" (ny = 2, W in the shared block, ns = 4) and "per copy"
 * (ny = 6, each sample its own W). The two layouts must give the same values,
 * the same adaptive steps (the norm counts the shared block as per copy) and
 * the same gradients: to rounding for fixed steps and backprop/checkpoint,
 * to the backward solve's tolerance for the adaptive adjoint (whose norm of
 * the copies' separate adjoints cannot be the norm of their sum); and the
 * gradients agree with central differences of the once layout. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nd_gradient.h"
#include "nd_solver.h"

Suite *shared_runtime_suite(void);

enum { SB = 3, NZ = 2, NW = 4, NP = 4, NT = 3 };

/* ---- the kernels ---- */

static void z_rhs(const double *W, const double *z, double *dz)
{
    for (int i = 0; i < NZ; i++)
        dz[i] = tanh(W[i * NZ] * z[0] + W[i * NZ + 1] * z[1]);
}

static void w_rhs(const double *P, const double *W, double *dW)
{
    for (int e = 0; e < NW; e++)
        dW[e] = tanh(P[e] * W[e]);
}

/* a_z^T d(z_rhs): into dz (per sample) and ADDED into dW (d/dW). */
static void z_vjp(const double *W, const double *z, const double *az, double *dz, double *dW)
{
    double g[NZ];
    for (int i = 0; i < NZ; i++) {
        double th = tanh(W[i * NZ] * z[0] + W[i * NZ + 1] * z[1]);
        g[i] = az[i] * (1 - th * th);
    }
    for (int j = 0; j < NZ; j++)
        dz[j] = g[0] * W[j] + g[1] * W[NZ + j];
    for (int i = 0; i < NZ; i++)
        for (int j = 0; j < NZ; j++)
            dW[i * NZ + j] += g[i] * z[j];
}

/* a_W^T d(w_rhs): ADDED into dW and dP. */
static void w_vjp(const double *P, const double *W, const double *aw, double *dW, double *dP)
{
    for (int e = 0; e < NW; e++) {
        double th = tanh(P[e] * W[e]), g = aw[e] * (1 - th * th);
        dW[e] += g * P[e];
        dP[e] += g * W[e];
    }
}

static void once_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *w)
{
    (void)t, (void)w;
    const double *W = y + B * NZ;
    for (int64_t b = 0; b < B; b++)
        z_rhs(W, y + b * NZ, dydt + b * NZ);
    w_rhs(p, W, dydt + B * NZ); /* once per evaluation */
}

static void once_vjp(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *w)
{
    (void)t, (void)d, (void)w;
    const double *W = y + B * NZ;
    double *dW = out0 + B * NZ;
    memset(dW, 0, sizeof(double) * NW);
    memset(out1, 0, sizeof(double) * NP);
    for (int64_t b = 0; b < B; b++)
        z_vjp(W, y + b * NZ, a + b * NZ, out0 + b * NZ, dW);
    w_vjp(p, W, a + B * NZ, dW, out1);
}

static void copy_rhs(double t, const double *y, const double *p, double *dydt, int64_t B,
                     double *w)
{
    (void)t, (void)w;
    for (int64_t b = 0; b < B; b++) {
        const double *yb = y + b * (NZ + NW);
        z_rhs(yb + NZ, yb, dydt + b * (NZ + NW));
        w_rhs(p, yb + NZ, dydt + b * (NZ + NW) + NZ);
    }
}

static void copy_vjp(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *w)
{
    (void)t, (void)d, (void)w;
    memset(out1, 0, sizeof(double) * NP);
    for (int64_t b = 0; b < B; b++) {
        const double *yb = y + b * (NZ + NW), *ab = a + b * (NZ + NW);
        double *ob = out0 + b * (NZ + NW);
        memset(ob + NZ, 0, sizeof(double) * NW);
        z_vjp(yb + NZ, yb, ab, ob, ob + NZ);
        w_vjp(p, yb + NZ, ab + NZ, ob + NZ, out1);
    }
}

/* df/dy of one sample's z rows: dz into jz [NZ x NZ], dW into jw (NZ rows of
 * stride `stride`, from column 0). */
static void z_jac(const double *W, const double *z, double *jz, double *jw, int stride)
{
    for (int i = 0; i < NZ; i++) {
        double th = tanh(W[i * NZ] * z[0] + W[i * NZ + 1] * z[1]), g = 1 - th * th;
        for (int j = 0; j < NZ; j++) {
            jz[i * NZ + j] = g * W[i * NZ + j];
            jw[i * stride + i * NZ + j] = g * z[j];
        }
    }
}

/* The bordered layout (nd_kernels.h): [B][NZ x NZ], [B][NZ x NW], [NW x NW]. */
static void once_jac(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *w)
{
    (void)t, (void)a, (void)d, (void)out1, (void)w;
    const double *W = y + B * NZ;
    double *C = out0 + B * NZ * NZ, *S = C + B * NZ * NW;
    memset(C, 0, sizeof(double) * (size_t)(B * NZ * NW + NW * NW));
    for (int64_t b = 0; b < B; b++)
        z_jac(W, y + b * NZ, out0 + b * NZ * NZ, C + b * NZ * NW, NW);
    for (int e = 0; e < NW; e++) {
        double th = tanh(p[e] * W[e]);
        S[e * NW + e] = (1 - th * th) * p[e];
    }
}

/* Per copy: one [NZ + NW] square block per sample. */
static void copy_jac(double t, const double *y, const double *p, const double *a,
                     const double *d, double *out0, double *out1, int64_t B, double *w)
{
    (void)t, (void)a, (void)d, (void)out1, (void)w;
    enum { N = NZ + NW };
    memset(out0, 0, sizeof(double) * (size_t)(B * N * N));
    for (int64_t b = 0; b < B; b++) {
        const double *yb = y + b * N;
        double *J = out0 + b * N * N, jz[NZ * NZ];
        z_jac(yb + NZ, yb, jz, J + NZ, N);
        for (int i = 0; i < NZ; i++)
            for (int j = 0; j < NZ; j++)
                J[i * N + j] = jz[i * NZ + j];
        for (int e = 0; e < NW; e++) {
            double th = tanh(p[e] * yb[NZ + e]);
            J[(NZ + e) * N + NZ + e] = (1 - th * th) * p[e];
        }
    }
}

static const NdKernels once_k = {.ny = NZ, .np = NP, .ns = NW, .rhs = once_rhs, .vjp = once_vjp,
                                 .jac = once_jac};
static const NdKernels copy_k = {.ny = NZ + NW, .np = NP, .rhs = copy_rhs, .vjp = copy_vjp,
                                 .jac = copy_jac};

static const double P0[NP] = {0.7, -0.4, 0.3, 0.9};
static const double W0[NW] = {0.5, -1.1, 0.8, 0.2};
static double w0_cur[NW] = {0.5, -1.1, 0.8, 0.2}; /* W0, moved by the differences */
static const double Z0[SB][NZ] = {{1.0, -0.5}, {0.3, 0.8}, {-1.2, 0.4}};
static const double ts[NT] = {0.0, 0.6, 1.5};
static int nb = SB; /* the batch the gradients run (test_single_sample: 1) */

static void y0_once(double *y)
{
    for (int b = 0; b < nb; b++)
        memcpy(y + b * NZ, Z0[b], sizeof Z0[b]);
    memcpy(y + nb * NZ, w0_cur, sizeof w0_cur);
}

static void y0_copy(double *y)
{
    for (int b = 0; b < nb; b++) {
        memcpy(y + b * (NZ + NW), Z0[b], sizeof Z0[b]);
        memcpy(y + b * (NZ + NW) + NZ, w0_cur, sizeof w0_cur);
    }
}

/* The methods each test runs: fixed rk4, adaptive dopri5 (and tsit5), and the
 * implicit bdf, rodas4 and kvaerno5 (the bordered matrices; no gradients for
 * the last two). */
static const NdMethod methods[] = {ND_RK4, ND_DOPRI5, ND_TSIT5, ND_BDF, ND_RODAS4, ND_KVAERNO5};

static NdSolver *make_solver(const NdKernels *k, NdMethod m)
{
    NdSolver *s = nd_solver_create(k, m, nb);
    ck_assert_ptr_nonnull(s);
    if (nd_method_is_adaptive(m))
        ck_assert_int_eq(nd_solver_set_tolerances(s, 1e-8, 1e-10), ND_OK);
    else
        ck_assert_int_eq(nd_solver_set_step(s, 0.05), ND_OK);
    return s;
}

START_TEST(test_values_match_per_copy)
{
    NdMethod m = methods[_i];
    NdSolver *so = make_solver(&once_k, m), *sc = make_solver(&copy_k, m);
    double y0o[SB * NZ + NW], y0c[SB * (NZ + NW)];
    double yo[NT * (SB * NZ + NW)], yc[NT * SB * (NZ + NW)];
    y0_once(y0o);
    y0_copy(y0c);
    ck_assert_int_eq(nd_solve(so, P0, y0o, ts, NT, yo), ND_OK);
    ck_assert_int_eq(nd_solve(sc, P0, y0c, ts, NT, yc), ND_OK);
    /* the same steps: the shared block counts as per copy in the error norm */
    ck_assert_int_eq(nd_solver_get_num_steps(so), nd_solver_get_num_steps(sc));
    ck_assert_int_eq(nd_solver_get_num_rejected(so), nd_solver_get_num_rejected(sc));
    /* and, for bdf, the same Newton iterations: the bordered elimination solves
     * the per-copy matrix's system (a wrong one would still converge, slower) */
    ck_assert_int_eq(nd_solver_get_num_rhs_evals(so), nd_solver_get_num_rhs_evals(sc));
    for (int j = 0; j < NT; j++)
        for (int b = 0; b < SB; b++) {
            const double *o = yo + j * (SB * NZ + NW), *c = yc + (j * SB + b) * (NZ + NW);
            double tol = nd_method_is_implicit(m) ? 1e-10 : 1e-13;
            for (int i = 0; i < NZ; i++)
                ck_assert_double_eq_tol(o[b * NZ + i], c[i], tol);
            for (int e = 0; e < NW; e++)
                ck_assert_double_eq_tol(o[SB * NZ + e], c[NZ + e], tol);
        }
    /* and the weights moved (the test is not of a constant) */
    ck_assert_double_gt(fabs(yo[2 * (SB * NZ + NW) + SB * NZ] - W0[0]), 0.1);
    nd_solver_free(so);
    nd_solver_free(sc);
}
END_TEST

/* L = sum over observations j >= 1 and samples of q . z^2, plus r . W at the
 * last observation, once (the per-copy callback puts it on sample 0's copy). */
static const double qz[NZ] = {0.8, -0.3}, rw[NW] = {0.2, 0.5, -0.7, 0.1};

static int loss_fn(void *ctx, int j, double t, const double *y, const double *p, double *L,
                   double *gy, double *gp)
{
    (void)t, (void)p, (void)gp;
    int per_copy = *(const int *)ctx;
    int stride = per_copy ? NZ + NW : NZ;
    memset(gy, 0, sizeof(double) * (size_t)(per_copy ? nb * (NZ + NW) : nb * NZ + NW));
    if (j == 0)
        return 0;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < NZ; i++) {
            double z = y[b * stride + i];
            *L += qz[i] * z * z;
            gy[b * stride + i] = 2 * qz[i] * z;
        }
    if (j == NT - 1) {
        int w = per_copy ? NZ : nb * NZ;
        for (int e = 0; e < NW; e++) {
            *L += rw[e] * y[w + e];
            gy[w + e] = rw[e];
        }
    }
    return 0;
}

static double gradient(const NdKernels *k, NdMethod m, NdGradMethod gm, const double *p,
                       double *gp, double *gy0)
{
    int per_copy = k->ns == 0;
    NdSolver *s = make_solver(k, m);
    NdGradient *g = nd_gradient_create(k, s, gm, nb, NT);
    ck_assert_ptr_nonnull(g);
    if (nd_method_is_adaptive(m) && gm == ND_GRAD_ADJOINT)
        nd_gradient_set_seminorm(g, 0);
    double y0[SB * (NZ + NW)], L = 0;
    if (per_copy)
        y0_copy(y0);
    else
        y0_once(y0);
    NdLoss loss = {.nt = NT, .ts = ts, .fn = loss_fn, .ctx = &per_copy};
    int st = nd_gradient_compute(g, p, y0, &loss, &L, gp, gy0);
    ck_assert_msg(st == ND_OK, "%s", nd_gradient_get_message(g));
    nd_gradient_free(g);
    nd_solver_free(s);
    return L;
}

static const NdGradMethod grads[] = {ND_GRAD_ADJOINT, ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT};

START_TEST(test_gradients_match_per_copy)
{
    NdMethod m = methods[_i % 4];
    NdGradMethod gm = grads[_i / 4];
    /* the adaptive adjoint's backward steps differ a little (its norm); bdf's
     * Newton iterations see the two layouts' roundings */
    double tol = (nd_method_is_adaptive(m) && gm == ND_GRAD_ADJOINT) ? 1e-6
                 : m == ND_BDF                                       ? 1e-9
                                                                     : 1e-12;
    double gpo[NP], gpc[NP], gyo[SB * NZ + NW], gyc[SB * (NZ + NW)];
    double Lo = gradient(&once_k, m, gm, P0, gpo, gyo);
    double Lc = gradient(&copy_k, m, gm, P0, gpc, gyc);
    double ltol = m == ND_BDF ? 1e-9 : 1e-12;
    ck_assert_double_eq_tol(Lo, Lc, ltol);
    for (int e = 0; e < NP; e++)
        ck_assert_double_eq_tol(gpo[e], gpc[e], tol);
    for (int b = 0; b < SB; b++)
        for (int i = 0; i < NZ; i++)
            ck_assert_double_eq_tol(gyo[b * NZ + i], gyc[b * (NZ + NW) + i], tol);
    /* the shared adjoint at t0 is the sum of the copies' (dL/dW0) */
    for (int e = 0; e < NW; e++) {
        double sum = 0;
        for (int b = 0; b < SB; b++)
            sum += gyc[b * (NZ + NW) + NZ + e];
        ck_assert_double_eq_tol(gyo[SB * NZ + e], sum, tol);
        ck_assert_double_gt(fabs(sum), 1e-3);
    }
}
END_TEST

/* One sample: the once layout's shared adjoint is that sample's copy's, and the
 * adjoint's norm weights it by 1/B = 1, so even the adaptive backward solves
 * take the per-copy steps and Newton iterations (bdf: the transposed bordered
 * system of the continuous adjoint, which a wrong elimination would still
 * solve, with more iterations). */
START_TEST(test_single_sample)
{
    NdMethod m = _i == 0 ? ND_BDF : ND_DOPRI5;
    nb = 1;
    double gpo[NP], gpc[NP], gyo[SB * NZ + NW], gyc[SB * (NZ + NW)];
    NdSolver *so = make_solver(&once_k, m), *sc = make_solver(&copy_k, m);
    NdGradient *go = nd_gradient_create(&once_k, so, ND_GRAD_ADJOINT, 1, NT);
    NdGradient *gc = nd_gradient_create(&copy_k, sc, ND_GRAD_ADJOINT, 1, NT);
    double y0o[SB * NZ + NW], y0c[SB * (NZ + NW)], Lo = 0, Lc = 0;
    int once = 0, copy = 1;
    y0_once(y0o);
    y0_copy(y0c);
    NdLoss lo = {.nt = NT, .ts = ts, .fn = loss_fn, .ctx = &once};
    NdLoss lc = {.nt = NT, .ts = ts, .fn = loss_fn, .ctx = &copy};
    ck_assert_int_eq(nd_gradient_compute(go, P0, y0o, &lo, &Lo, gpo, gyo), ND_OK);
    ck_assert_int_eq(nd_gradient_compute(gc, P0, y0c, &lc, &Lc, gpc, gyc), ND_OK);
    ck_assert_int_eq(nd_gradient_get_num_backward_evals(go), nd_gradient_get_num_backward_evals(gc));
    for (int e = 0; e < NP; e++)
        ck_assert_double_eq_tol(gpo[e], gpc[e], 1e-9);
    for (int e = 0; e < NW; e++)
        ck_assert_double_eq_tol(gyo[NZ + e], gyc[NZ + e], 1e-9);
    nd_gradient_free(go);
    nd_gradient_free(gc);
    nd_solver_free(so);
    nd_solver_free(sc);
    nb = SB;
}
END_TEST

/* Central differences of the once layout's loss in P and W0 (rk4: fixed
 * steps, so the differences see the very computation backprop differentiates;
 * the adjoint is the continuous gradient, within rk4's error at h = 0.05). */
START_TEST(test_gradients_vs_fd)
{
    NdGradMethod gm = grads[_i];
    double gp[NP], gy[SB * NZ + NW], sp[NP], sy[SB * NZ + NW];
    gradient(&once_k, ND_RK4, gm, P0, gp, gy);
    const double h = 1e-5, tol = gm == ND_GRAD_ADJOINT ? 1e-5 : 1e-7;
    for (int e = 0; e < NP; e++) {
        double p[NP];
        memcpy(p, P0, sizeof p);
        p[e] = P0[e] + h;
        double Lp = gradient(&once_k, ND_RK4, ND_GRAD_BACKPROP, p, sp, sy);
        p[e] = P0[e] - h;
        double Lm = gradient(&once_k, ND_RK4, ND_GRAD_BACKPROP, p, sp, sy);
        ck_assert_double_eq_tol(gp[e], (Lp - Lm) / (2 * h), tol);
    }
    for (int e = 0; e < NW; e++) {
        w0_cur[e] = W0[e] + h;
        double Lp = gradient(&once_k, ND_RK4, ND_GRAD_BACKPROP, P0, sp, sy);
        w0_cur[e] = W0[e] - h;
        double Lm = gradient(&once_k, ND_RK4, ND_GRAD_BACKPROP, P0, sp, sy);
        w0_cur[e] = W0[e];
        ck_assert_double_eq_tol(gy[SB * NZ + e], (Lp - Lm) / (2 * h), tol);
    }
}
END_TEST


Suite *shared_runtime_suite(void)
{
    Suite *s = suite_create("shared_runtime");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_values_match_per_copy, 0, 6);
    tcase_add_loop_test(tc, test_gradients_match_per_copy, 0, 12);
    tcase_add_loop_test(tc, test_gradients_vs_fd, 0, 3);
    tcase_add_loop_test(tc, test_single_sample, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
