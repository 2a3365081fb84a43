/* The variable-order (1-5), variable-step BDF engine behind nd_solve for
 * `bdf`, for stiff problems. The formulas are the numerical differentiation
 * formulas in backward-difference, quasi-constant step size form of
 *   [SR] L. F. Shampine, M. W. Reichelt, The MATLAB ODE Suite, SIAM J. Sci.
 *        Comput. 18 (1997) 1-22, section 2 (as scipy's BDF implements them),
 * the fixed-leading-coefficient form of
 *   [BH] G. D. Byrne, A. C. Hindmarsh, A polyalgorithm for the numerical
 *        solution of ordinary differential equations, ACM TOMS 1 (1975) 71-96:
 * a step of size h at order k solves, for d = y_new - y_pred,
 *   d - c f(t_new, y_pred + d) + psi = 0,  c = h / alpha_k,
 *   y_pred = sum_{i<=k} D[i],  psi = sum_{1<=i<=k} gamma_i D[i] / alpha_k,
 * with a change of step size interpolating D onto the new grid (D <- (R U)^T D).
 * Newton's method solves it with the compiler's symbolic Jacobian; the matrix
 * I - c J and its LU (LAPACK dgetrf/dgetrs, one block per sample) are reused
 * across steps as CVODE does ([CV] A. C. Hindmarsh et al., SUNDIALS, ACM TOMS
 * 31 (2005) 363-396, and the CVODE user guide, sections 2.1 and 2.2): a new LU
 * when c changed by more than 30 %, every 20 steps or after a Newton failure,
 * a new Jacobian every 51 steps or when a failure happened with a stale one;
 * a stale LU's correction is scaled by 2 / (1 + c / c_lu). Orders change as in
 * [SR] (after k + 1 steps of one size); the step changes as in [CV], only when
 * it may grow by 1.5 or more (or after a failure). One step size serves the
 * batch; output times are interpolated from D. No allocation here after
 * nd_bdf_attach. */
#include "nd_bdf.h"

#include <float.h>
#include "nd_real.h"
#include <stdlib.h>
#include <string.h>

#include "nd_events.h"
#include "nd_lapack.h"

/* Controller constants: [SR]/scipy (NEWTON_MAXITER, MIN_FACTOR, MAX_FACTOR,
 * the 0.9 safety) and [CV] (DGMAX, MSBP, MSBJ, MXNCF, ETACF, the 1.5 threshold
 * THRESH, the convergence rate floor CRDOWN). */
#define ND_BDF_NEWTON_MAXITER 4
#define ND_BDF_MIN_FACTOR 0.2
#define ND_BDF_MAX_FACTOR 10.0
#define ND_BDF_SAFETY 0.9
#define ND_BDF_GROW_THRESHOLD 1.5
#define ND_BDF_DGMAX 0.3
#define ND_BDF_MSBP 20
#define ND_BDF_MSBJ 51
#define ND_BDF_MXNCF 10
#define ND_BDF_NEWTON_SHRINK 0.25
#define ND_BDF_CRDOWN 0.3
/* Newton stops when its next correction is below NLSCOEF of what the error
 * test allows, as [CV]'s test (tq[4] = nlscoef / tq[2]) but with 0.01 for
 * CVODE's 0.1: the gradients treat the Newton solution as exact, and at 0.1
 * (or 0.03) the noisier error estimate costs rejected steps and the adjoint
 * drifts from finite differences by 2e-5; scipy's min(0.03, sqrt(rtol)) is
 * 1e-3 at rtol 1e-6 and costs a quarter more evaluations than 0.01. */
#define ND_BDF_NLSCOEF 0.01
/* As nd_adaptive.c: a step within 1 % of the next landing time lands on it. */
#define ND_BDF_LAST_STRETCH 1.01

/* The NDF coefficients of [SR] table 1 (kappa = 0 is the classical BDF):
 * orders 1-4 take about 20 % larger steps than BDFs for the same accuracy. */
static const nd_real ndf_kappa[ND_BDF_MAX_ORDER + 1] = {0, -0.1850, -1.0 / 9, -0.0823, -0.0415, 0};

/* The engine's whole controller state: with D, J, LU and the pivots it is a
 * snapshot the solve resumes from bit for bit (checkpoints). */
typedef struct NdBdfState {
    nd_real t, h_abs, dir, t_end, hmax;
    nd_real h_init;     /* signed first step: D[1] = h_init f(t0, y0) */
    nd_real h_acc;      /* the spacing of D after the last accepted step */
    nd_real c_lu;       /* c of the factored matrices */
    nd_real crate;      /* Newton convergence rate remembered across steps [CV] */
    nd_real bad_value;
    long since_lu, since_jac, attempts, bad;
    int order, n_equal, j, nt, land;
    int lu_ok, jac_ok;  /* LU holds I - c_lu J; J has been evaluated */
    int jac_fresh;      /* J was evaluated during the current step */
    int newton_failed;  /* the last attempt's Newton iteration failed */
    int fails;          /* Newton failures in the current step */
} NdBdfState;

struct NdBdf {
    NdBdfState st;
    const nd_real *p, *ts;
    nd_real *yout;
    size_t n, nblocks;
    int m;
    /* the shared block (nd_kernels.h): ns elements after the blocks whose rows
     * read only themselves, the blocks' rows reading them too. J then holds the
     * bordered layout (the blocks, their ns columns, the ns x ns block) and LU
     * the blocks' factors and then the shared block's */
    size_t ns, jac_doubles, lu_doubles, npiv;
    /* a system whose Jacobian is -J^T of a model's bordered J (the continuous
     * adjoint's [a; g] with a shared block): J holds the model's J, and the
     * Newton matrix I + c J^T is factored as I + c J and solved transposed */
    int adjoint_of;
    nd_real *D, *J, *LU;
    int *ipiv;
    nd_real *ypred, *psi, *d, *ynew, *f, *dy;
    nd_real *block;
    size_t block_doubles;
    NdSystemJacFn sys_jac;
    void *jac_ctx;
    NdBdfHook hook;
    void *hook_ctx;
    long num_jac, num_lu;
};

/* ---- coefficients ---- */

static nd_real coef_gamma(int k)
{
    nd_real g = 0.0;
    for (int i = 1; i <= k; i++)
        g += 1.0 / i;
    return g;
}

static nd_real coef_alpha(int k)
{
    return (1.0 - ndf_kappa[k]) * coef_gamma(k);
}

/* The local error of order k is error_const(k) * d ([SR] (2.3)). */
static nd_real coef_error(int k)
{
    return ndf_kappa[k] * coef_gamma(k) + 1.0 / (k + 1);
}

/* R(factor) of [SR]: R[i][j] = prod_{r=1..i} (r - 1 - factor j) / r. */
static void rescale_r(int order, nd_real factor, nd_real R[][ND_BDF_MAX_ORDER + 1])
{
    for (int j = 0; j <= order; j++) {
        R[0][j] = 1.0;
        for (int i = 1; i <= order; i++)
            R[i][j] = R[i - 1][j] * (i - 1 - factor * j) / i;
    }
}

/* RU = R(factor) U with U = R(1): D <- RU^T D moves D onto a grid of
 * factor times the spacing (the same polynomial). */
static void rescale_matrix(int order, nd_real factor, nd_real RU[][ND_BDF_MAX_ORDER + 1])
{
    nd_real R[ND_BDF_MAX_ORDER + 1][ND_BDF_MAX_ORDER + 1], U[ND_BDF_MAX_ORDER + 1][ND_BDF_MAX_ORDER + 1];
    rescale_r(order, factor, R);
    rescale_r(order, 1.0, U);
    for (int i = 0; i <= order; i++)
        for (int j = 0; j <= order; j++) {
            nd_real acc = 0.0;
            for (int l = 0; l <= order; l++)
                acc += R[i][l] * U[l][j];
            RU[i][j] = acc;
        }
}

/* D[0..order] <- RU^T D[0..order] (transpose = 0), or its adjoint
 * Dbar[0..order] <- RU Dbar[0..order] (transpose = 1). */
static void rescale_rows(nd_real *D, size_t n, int order, nd_real factor, int transpose)
{
    if (factor == 1.0)
        return; /* RU = U U = I */
    nd_real RU[ND_BDF_MAX_ORDER + 1][ND_BDF_MAX_ORDER + 1], v[ND_BDF_MAX_ORDER + 1];
    rescale_matrix(order, factor, RU);
    for (size_t e = 0; e < n; e++) {
        for (int i = 0; i <= order; i++)
            v[i] = D[(size_t)i * n + e];
        for (int i = 0; i <= order; i++) {
            nd_real acc = 0.0;
            for (int j = 0; j <= order; j++)
                acc += (transpose ? RU[i][j] : RU[j][i]) * v[j];
            D[(size_t)i * n + e] = acc;
        }
    }
}

/* ---- workspace ---- */

enum { BDF_SCRATCH = 6 }; /* ypred, psi, d, ynew, f, dy */

static int bdf_alloc(struct NdBdf *b, size_t n, size_t nblocks, int m, size_t ns)
{
    size_t mm = (size_t)m * (size_t)m;
    size_t jac_n = nblocks * mm + nblocks * (size_t)m * ns + ns * ns, lu_n = nblocks * mm + ns * ns;
    size_t total = ND_BDF_ROWS * n + BDF_SCRATCH * n + jac_n + lu_n;
    nd_real *block = (nd_real *)calloc(total, sizeof(nd_real));
    int *ipiv = (int *)calloc(nblocks * (size_t)m + ns + 1, sizeof(int));
    if (!block || !ipiv) {
        free(block);
        free(ipiv);
        return ND_ERR_MEMORY;
    }
    free(b->block);
    free(b->ipiv);
    b->block = block;
    b->ipiv = ipiv;
    b->block_doubles = total;
    b->n = n, b->nblocks = nblocks, b->m = m;
    b->ns = ns, b->jac_doubles = jac_n, b->lu_doubles = lu_n, b->npiv = nblocks * (size_t)m + ns;
    nd_real *q = block; /* D, J and LU first and contiguous: the snapshot */
    b->D = q, q += ND_BDF_ROWS * n;
    b->J = q, q += jac_n;
    b->LU = q, q += lu_n;
    nd_real **scratch[BDF_SCRATCH] = {&b->ypred, &b->psi, &b->d, &b->ynew, &b->f, &b->dy};
    for (int i = 0; i < BDF_SCRATCH; i++)
        *scratch[i] = q, q += n;
    return ND_OK;
}

int nd_bdf_attach(NdSolver *s, size_t nblocks, int m)
{
    struct NdBdf *b = (struct NdBdf *)calloc(1, sizeof *b);
    if (!b)
        return ND_ERR_MEMORY;
    s->bdf = b;
    int st = bdf_alloc(b, s->n, nblocks, m, s->sys ? 0 : (size_t)s->k.ns);
    if (!st)
        s->block_doubles += b->block_doubles;
    return st;
}

void nd_bdf_detach(NdSolver *s)
{
    if (!s->bdf)
        return;
    free(s->bdf->block);
    free(s->bdf->ipiv);
    free(s->bdf);
    s->bdf = NULL;
}

int nd_bdf_set_system_jac(NdSolver *s, NdSystemJacFn jac, void *ctx, size_t nblocks, int m)
{
    return nd_bdf_set_adjoint_jac(s, jac, ctx, nblocks, m, 0);
}

int nd_bdf_set_adjoint_jac(NdSolver *s, NdSystemJacFn jac, void *ctx, size_t nblocks, int m,
                           size_t ns)
{
    struct NdBdf *b = s->bdf;
    if (!b || !jac || m < 1 || nblocks * (size_t)m + ns > s->n)
        return ND_ERR_ARG;
    s->block_doubles -= b->block_doubles;
    int st = bdf_alloc(b, s->n, nblocks, m, ns);
    b->adjoint_of = ns > 0;
    s->block_doubles += b->block_doubles;
    b->sys_jac = jac;
    b->jac_ctx = ctx;
    return st;
}

void nd_bdf_set_hook(NdSolver *s, NdBdfHook hook, void *ctx)
{
    s->bdf->hook = hook;
    s->bdf->hook_ctx = ctx;
}

/* ---- the Newton matrix, block by block ---- */

static void eval_jac(NdSolver *s, nd_real t, const nd_real *y)
{
    struct NdBdf *b = s->bdf;
    if (b->sys_jac)
        b->sys_jac(b->jac_ctx, t, y, b->J);
    else
        s->k.jac(t, y, b->p, NULL, NULL, b->J, NULL, s->B, s->work);
    if (s->ev && nd_events_frozen_any(s)) /* a terminated sample's f is 0, and so is its block */
        nd_events_freeze_jac(s, b->J);
    b->num_jac++;
    b->st.since_jac = 0;
    b->st.jac_ok = b->st.jac_fresh = 1;
}

/* LU of I - c J, column-major for LAPACK (J is row-major), of an m x m
 * block at J into A. Returns nonzero when it is singular. */
static int factor_one(int m, const nd_real *J, nd_real c, nd_real *A, int *ipiv)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            A[(size_t)j * m + i] = (i == j) - c * J[(size_t)i * m + j];
    return nd_lu_factor(m, A, ipiv) != 0;
}

/* LU of I - c J per block, and of the shared block's I - c S (the coupling
 * columns need no factor). Returns nonzero when a block is singular. */
static int factor_blocks(struct NdBdf *b, nd_real c_newton)
{
    /* the adjoint's I - c (-J^T) is I + c J, solved transposed */
    nd_real c = b->adjoint_of ? -c_newton : c_newton;
    int m = b->m, singular = 0;
    size_t mm = (size_t)m * (size_t)m;
    for (size_t blk = 0; blk < b->nblocks; blk++)
        singular |= factor_one(m, b->J + blk * mm, c, b->LU + blk * mm, b->ipiv + blk * (size_t)m);
    if (b->ns)
        singular |= factor_one((int)b->ns, b->J + b->nblocks * (mm + (size_t)m * b->ns), c,
                               b->LU + b->nblocks * mm, b->ipiv + b->nblocks * (size_t)m);
    b->st.c_lu = c_newton; /* the coupling's factor in solve_bordered */
    b->num_lu++;
    return singular;
}

/* The bordered elimination (nd_kernels.h): with the shared block's rows
 * reading only themselves, I - c J = [A_b, -c C_b; 0, A_s], so
 *   x_s = A_s^{-1} r_s,  x_b = A_b^{-1} (r_b + c C_b x_s);
 * and its transpose the other way round, the samples first:
 *   x_b = A_b^{-T} r_b,  x_s = A_s^{-T} (r_s + c sum_b C_b^T x_b). */
static void solve_bordered(struct NdBdf *b, nd_real *x, int transpose)
{
    size_t m = (size_t)b->m, mm = m * m, ns = b->ns;
    const nd_real *C = b->J + b->nblocks * mm, *LUs = b->LU + b->nblocks * mm;
    const int *piv_s = b->ipiv + b->nblocks * m;
    nd_real *xs = x + b->nblocks * m, c = b->adjoint_of ? -b->st.c_lu : b->st.c_lu;
    if (!transpose)
        nd_lu_solve((int)ns, LUs, piv_s, xs, 0);
    for (size_t blk = 0; blk < b->nblocks; blk++) {
        const nd_real *Cb = C + blk * m * ns;
        nd_real *xb = x + blk * m;
        if (!transpose) {
            for (size_t i = 0; i < m; i++) {
                nd_real acc = 0.0;
                for (size_t j = 0; j < ns; j++)
                    acc += Cb[i * ns + j] * xs[j];
                xb[i] += c * acc;
            }
        }
        nd_lu_solve(b->m, b->LU + blk * mm, b->ipiv + blk * m, xb, transpose);
        for (size_t i = 0; transpose && i < m; i++)
            for (size_t j = 0; j < ns; j++)
                xs[j] += c * Cb[i * ns + j] * xb[i];
    }
    if (transpose)
        nd_lu_solve((int)ns, LUs, piv_s, xs, 1);
}

/* x <- (I - c J)^{-1} x (or its transpose); the elements past the blocks
 * have J = 0, or are the shared block. */
static void solve_blocks(struct NdBdf *b, nd_real *x, int transpose)
{
    size_t m = (size_t)b->m, mm = m * m;
    if (b->ns) {
        solve_bordered(b, x, transpose != b->adjoint_of);
        return;
    }
    for (size_t blk = 0; blk < b->nblocks; blk++)
        nd_lu_solve(b->m, b->LU + blk * mm, b->ipiv + blk * m, x + blk * m, transpose);
}

/* CVODE's lsetup: a new LU (and Jacobian when the old one is stale) at
 * (t_new, y_pred). Returns nonzero when I - c J is singular. */
static int setup(NdSolver *s, nd_real t_new, nd_real c, int new_jac)
{
    struct NdBdf *b = s->bdf;
    if (new_jac || !b->st.jac_ok)
        eval_jac(s, t_new, b->ypred);
    b->st.c_lu = c;
    b->st.since_lu = 0;
    b->st.crate = 1.0;
    b->st.lu_ok = 1;
    if (factor_blocks(b, c)) {
        b->st.lu_ok = 0;
        return 1;
    }
    return 0;
}

static int need_setup(const struct NdBdf *b, nd_real c)
{
    const NdBdfState *st = &b->st;
    return !st->lu_ok || fabs(c / st->c_lu - 1.0) > ND_BDF_DGMAX || st->since_lu >= ND_BDF_MSBP ||
           st->newton_failed;
}

/* ---- Newton's iteration ---- */

/* Solves d - c f(t_new, y_pred + d) + psi = 0 from d = 0 into b->d, b->ynew:
 * 1 when converged ([SR]'s test on the rate of convergence with [CV]'s
 * tolerance; the first iteration uses the rate remembered from earlier steps,
 * as [CV]), 0 when it diverges, is too slow or meets a non-finite f (st.bad). */
static int newton(NdSolver *s, nd_real t_new, nd_real c, int *iters)
{
    struct NdBdf *b = s->bdf;
    size_t n = s->n;
    nd_real scale = c == b->st.c_lu ? 1.0 : 2.0 / (1.0 + c / b->st.c_lu);
    nd_real old = 0.0, tol = ND_BDF_NLSCOEF / coef_error(b->st.order);
    memcpy(b->ynew, b->ypred, n * sizeof *b->ynew);
    memset(b->d, 0, n * sizeof *b->d);
    for (int k = 0; k < ND_BDF_NEWTON_MAXITER; k++) {
        *iters = k + 1;
        nd_solver_rhs(s, b->p, t_new, b->ynew, b->f);
        long bad = nd_first_nonfinite(b->f, n);
        if (bad >= 0) {
            b->st.bad = bad;
            b->st.bad_value = b->f[bad];
            return 0;
        }
        for (size_t e = 0; e < n; e++)
            b->dy[e] = c * b->f[e] - b->psi[e] - b->d[e];
        solve_blocks(b, b->dy, 0);
        if (scale != 1.0)
            for (size_t e = 0; e < n; e++)
                b->dy[e] *= scale;
        nd_real dy_norm = nd_weighted_rms(s, b->dy, b->ypred), rate = b->st.crate;
        if (k > 0) {
            rate = dy_norm / old;
            b->st.crate = fmax(ND_BDF_CRDOWN * b->st.crate, rate);
            if (!(rate < 1.0) ||
                pow(rate, ND_BDF_NEWTON_MAXITER - k) / (1.0 - rate) * dy_norm > tol)
                return 0;
        }
        if (!isfinite(dy_norm))
            return 0;
        for (size_t e = 0; e < n; e++) {
            b->ynew[e] += b->dy[e];
            b->d[e] += b->dy[e];
        }
        if (dy_norm == 0.0 || (k == 0 && dy_norm * fmin(1.0, rate) < tol) ||
            (k > 0 && rate / (1.0 - rate) * dy_norm < tol))
            return 1;
        old = dy_norm;
    }
    return 0;
}

/* Newton with the current LU, then once more with a fresh Jacobian when the
 * one used was stale ([CV]: a convergence failure with jcur false). */
static int solve_corrector(NdSolver *s, nd_real t_new, nd_real c, int *iters)
{
    struct NdBdf *b = s->bdf;
    b->st.bad = -1;
    if (need_setup(b, c)) {
        int stale = b->st.newton_failed && !b->st.jac_fresh;
        if (setup(s, t_new, c, stale || b->st.since_jac >= ND_BDF_MSBJ))
            return 0;
    }
    if (newton(s, t_new, c, iters))
        return 1;
    if (b->st.jac_fresh || b->st.bad >= 0)
        return 0;
    if (setup(s, t_new, c, 1))
        return 0;
    return newton(s, t_new, c, iters);
}

/* ---- one attempted step ---- */

static void rescale(struct NdBdf *b, nd_real factor)
{
    rescale_rows(b->D, b->n, b->st.order, factor, 0);
    b->st.h_abs *= factor;
    b->st.n_equal = 0;
}

/* y_pred and psi of a step at order k from D. */
static void predict(struct NdBdf *b)
{
    int k = b->st.order;
    size_t n = b->n;
    nd_real alpha = coef_alpha(k);
    for (size_t e = 0; e < n; e++) {
        nd_real yp = b->D[e], ps = 0.0;
        for (int i = 1; i <= k; i++) {
            yp += b->D[(size_t)i * n + e];
            ps += coef_gamma(i) * b->D[(size_t)i * n + e];
        }
        b->ypred[e] = yp;
        b->psi[e] = ps / alpha;
    }
}

static int fail_nonfinite(NdSolver *s)
{
    const NdBdfState *st = &s->bdf->st;
    char at[ND_ELEMENT_TEXT];
    return nd_solver_fail(s, ND_ERR_NONFINITE,
                          "the right-hand side became %s (for %s) in a bdf step from t = %.10g; "
                          "the step size shrank to h = %.3g without a finite step",
                          nd_nonfinite_word(st->bad_value),
                          nd_solver_element(s, st->bad < 0 ? 0 : st->bad, at, sizeof at), st->t,
                          st->h_abs);
}

static int check_progress(NdSolver *s)
{
    const NdBdfState *st = &s->bdf->st;
    int status = nd_check_progress(s, st->attempts, s->bdf->ts[st->j], st->t, st->h_abs);
    if (status != ND_ERR_STEP_UNDERFLOW)
        return status;
    return st->bad >= 0 ? fail_nonfinite(s) : nd_fail_step_underflow(s, st->t, st->h_abs, "");
}

/* A failed Newton iteration: a smaller step, or the end after MXNCF of them. */
static int newton_failure(NdSolver *s)
{
    struct NdBdf *b = s->bdf;
    s->num_rejected++;
    b->st.newton_failed = 1;
    if (++b->st.fails >= ND_BDF_MXNCF && b->st.bad < 0)
        return nd_solver_fail(s, ND_ERR_CONVERGENCE,
                              "bdf: Newton's iteration failed %d times in one step at t = %.10g "
                              "(h = %.3g), with a fresh Jacobian: the Jacobian may not match the "
                              "right-hand side",
                              b->st.fails, b->st.t, b->st.h_abs);
    rescale(b, ND_BDF_NEWTON_SHRINK);
    return ND_OK;
}

/* Order (k - 1, k or k + 1) and step for the next steps ([SR]), once k + 1
 * steps of one size have passed; the step changes only if it can grow by
 * THRESH ([CV]'s eta_max_fx), and then the order may change with it. */
static void choose_next(struct NdBdf *b, nd_real err, nd_real safety, NdSolver *s)
{
    NdBdfState *st = &b->st;
    int k = st->order;
    size_t n = b->n;
    if (st->n_equal < k + 1)
        return;
    nd_real norms[3] = {INFINITY, err, INFINITY};
    if (k > 1) {
        for (size_t e = 0; e < n; e++)
            b->dy[e] = coef_error(k - 1) * b->D[(size_t)k * n + e];
        norms[0] = nd_weighted_rms(s, b->dy, b->D);
    }
    if (k < ND_BDF_MAX_ORDER) {
        for (size_t e = 0; e < n; e++)
            b->dy[e] = coef_error(k + 1) * b->D[(size_t)(k + 2) * n + e];
        norms[2] = nd_weighted_rms(s, b->dy, b->D);
    }
    int best = 1;
    nd_real fbest = 0.0;
    for (int i = 0; i < 3; i++) {
        nd_real f = norms[i] > 0 ? pow(norms[i], -1.0 / (k + i)) : INFINITY;
        if (f > fbest || (i == 1 && f >= fbest))
            fbest = f, best = i;
    }
    nd_real factor = fmin(ND_BDF_MAX_FACTOR, safety * fbest);
    if (!(factor >= ND_BDF_GROW_THRESHOLD))
        return;
    factor = fmin(factor, st->hmax / st->h_abs);
    st->order = k + best - 1;
    rescale(b, factor);
}

/* The interpolant of the last step through D at time t (into out). */
static void interpolate(const struct NdBdf *b, nd_real t, nd_real t_new, nd_real h, int order,
                        nd_real *out)
{
    size_t n = b->n;
    nd_real w[ND_BDF_MAX_ORDER + 1], prod = 1.0;
    for (int i = 1; i <= order; i++) {
        prod *= (t - (t_new - (i - 1) * h)) / (i * h);
        w[i] = prod;
    }
    for (size_t e = 0; e < n; e++) {
        nd_real acc = b->D[e];
        for (int i = 1; i <= order; i++)
            acc += w[i] * b->D[(size_t)i * n + e];
        out[e] = acc;
    }
}

/* The output rows up to t_upto (t_new, or an event inside the step). */
static void write_outputs(NdSolver *s, nd_real t_new, nd_real h, int order, nd_real t_upto)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    while (st->j < st->nt && (b->ts[st->j] - t_upto) * st->dir <= 0) {
        nd_real *row = b->yout + (size_t)st->j * s->out_row;
        if (b->ts[st->j] == t_new)
            memcpy(row, b->D, s->n * sizeof *row);
        else
            interpolate(b, b->ts[st->j], t_new, h, order, row);
        st->j++;
        st->attempts = 0;
    }
}

/* ---- events (nd_events.h) ---- */

typedef struct BdfInterp {
    NdSolver *s;
    nd_real t_new, h;
    int order;
} BdfInterp;

static void bdf_interp(void *ctx, nd_real t)
{
    BdfInterp *c = (BdfInterp *)ctx;
    interpolate(c->s->bdf, t, c->t_new, c->h, c->order, c->s->ev->yt);
}

/* After the step to t_new (D updated): an event inside it ends the step there.
 * The outputs up to the event get the interpolant, the state there is the
 * interpolant's, the events are applied and the method restarts at order 1
 * from it (D[1] = h f, the step size kept). 1 when that happened; 0 for no
 * event; a negative status. */
static int bdf_events(NdSolver *s, nd_real t_new, nd_real h, int order)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    BdfInterp ctx = {s, t_new, h, order};
    nd_real t_ev = nd_events_locate(s, b->p, st->t, t_new, b->D, bdf_interp, &ctx);
    if (isnan(t_ev))
        return 0;
    write_outputs(s, t_new, h, order, t_ev);
    if (t_ev != t_new)
        interpolate(b, t_ev, t_new, h, order, b->D);
    memset(b->D + s->n, 0, (ND_BDF_ROWS - 1) * s->n * sizeof *b->D);
    int status = nd_events_apply(s, b->p, t_ev, b->D);
    if (status)
        return status;
    st->t = t_ev;
    nd_real *f = b->D + s->n;
    nd_solver_rhs(s, b->p, t_ev, b->D, f);
    for (size_t e = 0; e < s->n; e++)
        f[e] *= st->dir * st->h_abs;
    st->h_acc = st->h_abs;
    st->order = 1;
    st->n_equal = 0;
    st->fails = 0;
    st->newton_failed = 0;
    st->jac_ok = st->lu_ok = 0; /* the state jumped */
    s->num_steps++;
    return 1;
}

/* The step is taken: D moves to y_new ([SR]: D[k+2] = d - D[k+1],
 * D[k+1] = d, D[i] += D[i+1] for i = k..0), outputs are written. */
static int accept(NdSolver *s, nd_real t_new, nd_real h, nd_real err, int iters)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    int k = st->order;
    size_t n = b->n;
    if (b->hook) {
        NdBdfStep step = {.t = st->t, .h = h, .t_new = t_new, .h_from = st->h_acc, .order = k};
        b->hook(b->hook_ctx, s, &step, b->ynew);
    }
    nd_real *Dk1 = b->D + (size_t)(k + 1) * n, *Dk2 = b->D + (size_t)(k + 2) * n;
    for (size_t e = 0; e < n; e++) {
        Dk2[e] = b->d[e] - Dk1[e];
        Dk1[e] = b->d[e];
    }
    for (int i = k; i >= 0; i--)
        for (size_t e = 0; e < n; e++)
            b->D[(size_t)i * n + e] += b->D[(size_t)(i + 1) * n + e];
    int event = s->ev ? bdf_events(s, t_new, h, k) : 0;
    if (event)
        return event < 0 ? event : ND_OK;
    write_outputs(s, t_new, h, k, t_new);
    st->t = t_new;
    st->h_acc = st->h_abs;
    st->n_equal++;
    st->since_lu++;
    st->since_jac++;
    st->jac_fresh = 0;
    st->newton_failed = 0;
    st->fails = 0;
    s->num_steps++;
    nd_real safety = ND_BDF_SAFETY * (2 * ND_BDF_NEWTON_MAXITER + 1) /
                    (2 * ND_BDF_NEWTON_MAXITER + iters);
    choose_next(b, err, safety, s);
    return ND_OK;
}

/* The step size and end of the next attempt: within hmax, landing exactly on
 * the next output time (land) or the end. */
static nd_real step_end(struct NdBdf *b)
{
    NdBdfState *st = &b->st;
    if (st->h_abs > st->hmax)
        rescale(b, st->hmax / st->h_abs);
    nd_real target = st->land ? b->ts[st->j] : st->t_end;
    nd_real t_new = st->t + st->dir * st->h_abs;
    if ((st->t + ND_BDF_LAST_STRETCH * st->dir * st->h_abs - target) * st->dir > 0) {
        t_new = target;
        rescale(b, fabs(t_new - st->t) / st->h_abs);
    }
    /* t_new is rounded: D must be spaced by what t really moves, or the
     * predictor is off by (1 - h / h_abs) h f, which does not shrink with h */
    nd_real h = fabs(t_new - st->t);
    if (h != st->h_abs) {
        rescale_rows(b->D, b->n, st->order, h / st->h_abs, 0);
        st->h_abs = h;
    }
    return t_new;
}

int nd_bdf_attempt(NdSolver *s)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    int status = check_progress(s);
    if (status)
        return status;
    st->attempts++;
    nd_real t_new = step_end(b), h = t_new - st->t;
    int k = st->order, iters = 0;
    nd_real c = h / coef_alpha(k);
    predict(b);
    if (!solve_corrector(s, t_new, c, &iters))
        return newton_failure(s);
    st->newton_failed = 0;
    for (size_t e = 0; e < b->n; e++)
        b->dy[e] = coef_error(k) * b->d[e];
    nd_real err = nd_weighted_rms(s, b->dy, b->ynew);
    if (err <= 1.0)
        return accept(s, t_new, h, err, iters);
    s->num_rejected++;
    nd_real safety = ND_BDF_SAFETY * (2 * ND_BDF_NEWTON_MAXITER + 1) /
                    (2 * ND_BDF_NEWTON_MAXITER + iters);
    rescale(b, fmax(ND_BDF_MIN_FACTOR, safety * pow(err, -1.0 / (k + 1))));
    return ND_OK;
}

/* ---- starting ---- */

/* Hairer's starting step for an order-1 method ([HNW] II.4, as scipy's BDF
 * starts): h0 = 0.01 |y| / |f|, then h with h^2 max(|f|, |f'|) = 0.01. Uses
 * ynew and f as scratch; D[1] holds f(t0, y0). */
static nd_real initial_step(NdSolver *s)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    const nd_real *y = b->D, *f0 = b->D + s->n;
    nd_real d0 = nd_weighted_rms(s, y, y), d1 = nd_weighted_rms(s, f0, y);
    nd_real h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, st->hmax);
    for (size_t e = 0; e < s->n; e++)
        b->ynew[e] = y[e] + st->dir * h0 * f0[e];
    nd_solver_rhs(s, b->p, st->t + st->dir * h0, b->ynew, b->f);
    for (size_t e = 0; e < s->n; e++)
        b->dy[e] = b->f[e] - f0[e];
    nd_real d2 = nd_weighted_rms(s, b->dy, y) / h0, der = fmax(d1, d2);
    nd_real h1 = der <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : sqrt(0.01 / der);
    nd_real h = fmin(fmax(fmin(100.0 * h0, h1), nd_least_starting_step(st->t)), st->hmax);
    return (h > 0 && isfinite(h)) ? h : fmin(1e-6, st->hmax);
}

static int start(NdSolver *s)
{
    struct NdBdf *b = s->bdf;
    NdBdfState *st = &b->st;
    nd_real *f0 = b->D + s->n;
    nd_solver_rhs(s, b->p, st->t, b->D, f0);
    long i = nd_first_nonfinite(f0, s->n);
    char at[ND_ELEMENT_TEXT];
    if (i >= 0)
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the right-hand side is %s at t = %.10g (for %s at the initial "
                              "state)",
                              nd_nonfinite_word(f0[i]), st->t, nd_solver_element(s, i, at, sizeof at));
    st->h_abs = s->h0 > 0 ? fmin(s->h0, st->hmax) : initial_step(s);
    st->h_init = st->dir * st->h_abs;
    st->h_acc = st->h_abs;
    for (size_t e = 0; e < s->n; e++)
        f0[e] *= st->h_init;
    return ND_OK;
}

int nd_bdf_begin(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout, int land)
{
    struct NdBdf *b = s->bdf;
    memset(&b->st, 0, sizeof b->st);
    if (!b->sys_jac && !s->k.jac)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED,
                              "bdf needs the model's Jacobian: compile the model with its jac "
                              "kernel");
    NdBdfState *st = &b->st;
    b->p = p, b->ts = ts, b->yout = yout;
    b->num_jac = b->num_lu = 0;
    st->t = ts[0], st->dir = ts[nt - 1] > ts[0] ? 1.0 : -1.0, st->t_end = ts[nt - 1];
    st->hmax = fabs(ts[nt - 1] - ts[0]);
    st->order = 1, st->j = 1, st->nt = nt, st->land = land, st->bad = -1;
    memset(b->D, 0, ND_BDF_ROWS * b->n * sizeof *b->D);
    memcpy(b->D, y0, b->n * sizeof *b->D);
    memmove(yout, y0, b->n * sizeof *yout);
    return start(s);
}

int nd_bdf_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout)
{
    int st = nd_bdf_begin(s, p, y0, ts, nt, yout, 0);
    while (!st && s->bdf->st.j < nt)
        st = nd_bdf_attempt(s);
    int j = s->bdf->st.j;
    if (st && j < nt && j > 0) /* the row after the last good one: where the solve stopped */
        memcpy(yout + (size_t)j * s->out_row, s->bdf->D, s->n * sizeof *yout);
    return st;
}

int nd_bdf_next_output(const NdSolver *s)
{
    return s->bdf->st.j;
}

nd_real *nd_bdf_state(NdSolver *s)
{
    return s->bdf->D;
}

nd_real nd_bdf_initial_step(const NdSolver *s)
{
    return s->bdf->st.h_init;
}

long nd_bdf_get_num_jac_evals(const NdSolver *s)
{
    return s && s->bdf ? s->bdf->num_jac : 0;
}

long nd_bdf_get_num_lu(const NdSolver *s)
{
    return s && s->bdf ? s->bdf->num_lu : 0;
}

/* ---- snapshots ---- */

static size_t doubles_for(size_t bytes)
{
    return (bytes + sizeof(nd_real) - 1) / sizeof(nd_real);
}

size_t nd_bdf_snapshot_doubles(const NdSolver *s)
{
    const struct NdBdf *b = s->bdf;
    return doubles_for(sizeof b->st) + ND_BDF_ROWS * b->n + b->jac_doubles + b->lu_doubles +
           doubles_for(b->npiv * sizeof(int));
}

/* D, J and LU are contiguous in the block, in that order. */
void nd_bdf_save(const NdSolver *s, nd_real *buf)
{
    const struct NdBdf *b = s->bdf;
    size_t arrays = (size_t)(b->LU - b->D) + b->lu_doubles;
    memcpy(buf, &b->st, sizeof b->st);
    buf += doubles_for(sizeof b->st);
    memcpy(buf, b->D, arrays * sizeof *buf);
    memcpy(buf + arrays, b->ipiv, b->npiv * sizeof *b->ipiv);
}

void nd_bdf_restore(NdSolver *s, const nd_real *buf)
{
    struct NdBdf *b = s->bdf;
    size_t arrays = (size_t)(b->LU - b->D) + b->lu_doubles;
    memcpy(&b->st, buf, sizeof b->st);
    buf += doubles_for(sizeof b->st);
    memcpy(b->D, buf, arrays * sizeof *buf);
    memcpy(b->ipiv, buf + arrays, b->npiv * sizeof *b->ipiv);
}

/* ---- the discrete adjoint of an accepted step ---- */

int nd_bdf_adjoint_solve(NdSolver *s, const nd_real *p, const NdBdfStep *step,
                         const nd_real *y_new, nd_real *Dbar, nd_real *w, nd_real *c_out)
{
    struct NdBdf *b = s->bdf;
    size_t n = b->n;
    int k = step->order;
    nd_real *row[ND_BDF_ROWS];
    for (int i = 0; i < ND_BDF_ROWS; i++)
        row[i] = Dbar + (size_t)i * n;
    /* D_new[i] = sum_{m=i..k} D_old[m] + d (i <= k), D_new[k+1] = d,
     * D_new[k+2] = d - D_old[k+1]: prefix sums carry Dbar back */
    for (size_t e = 0; e < n; e++) {
        nd_real acc = 0.0;
        for (int i = 0; i <= k; i++) {
            acc += row[i][e];
            row[i][e] = acc;
        }
        w[e] = acc + row[k + 1][e] + row[k + 2][e];
        row[k + 1][e] = -row[k + 2][e];
        row[k + 2][e] = 0.0;
    }
    nd_real c = step->h / coef_alpha(k);
    b->p = p;
    eval_jac(s, step->t_new, y_new);
    int singular = factor_blocks(b, c);
    b->st.lu_ok = 0; /* the forward solve must not reuse this LU */
    solve_blocks(b, w, 1);
    *c_out = c;
    return singular;
}

void nd_bdf_adjoint_predict(const NdSolver *s, const NdBdfStep *step, const nd_real *ypbar,
                            const nd_real *w, nd_real *Dbar)
{
    size_t n = s->n;
    int k = step->order;
    nd_real alpha = coef_alpha(k);
    for (int i = 0; i <= k; i++) {
        nd_real gi = i > 0 ? coef_gamma(i) / alpha : 0.0;
        nd_real *row = Dbar + (size_t)i * n;
        for (size_t e = 0; e < n; e++)
            row[e] += ypbar[e] - gi * w[e];
    }
    rescale_rows(Dbar, n, k, fabs(step->h) / step->h_from, 1);
}
