/* The one-step implicit engines behind nd_solve for stiff problems: `rodas4`,
 * a Rosenbrock method, and `kvaerno5`, an ESDIRK method. Both factor, once per
 * step, E = I / (h gamma) - J with J = df/dy(t, y) from the compiler's
 * symbolic Jacobian kernel (block diagonal: one m x m block per sample,
 * factored block by block with nd_lapack.c), and share the step-size control,
 * the landing on output times and the failures; one step size serves the
 * batch.
 *
 * rodas4 is RODAS of E. Hairer and G. Wanner, Solving Ordinary Differential
 * Equations II (2nd ed., Springer 1996), section VI.4 and its code rodas.f
 * (method 1): stiffly accurate, L-stable, 6 stages, order 4 with an embedded
 * order-3 solution. In rodas.f's transformed form a step solves for k_1 .. k_6
 *   E k_i = f(t + c_i h, y + sum_{j<i} a_ij k_j) + sum_{j<i} (C_ij / h) k_j
 *           + h d_i df/dt(t, y)
 * (d_5 = d_6 = 0); stage 6's argument is stage 5's plus k_5 (the embedded
 * solution) and y_new is stage 6's argument plus k_6, so k_6 is the error
 * estimate. No Newton iteration: one solve per stage. df/dt is a forward
 * difference (as rodas.f without an analytic one), skipped when the kernel
 * table says the model does not read t.
 *
 * kvaerno5 is the 7-stage ESDIRK method of order 5 with an embedded order-4
 * solution of A. Kvaerno, "Singly diagonally implicit Runge-Kutta methods with
 * an explicit first stage", BIT 44 (2004) 489-502: stiffly accurate, L-stable,
 * gamma = 0.26. Stage 1 is f(t, y); stage i > 1 solves
 *   z_i = y + h sum_{j<i} a_ij k_j + h gamma f(t + c_i h, z_i)
 * by Newton's iteration with the matrix I - h gamma J = h gamma E, and
 * k_i = (z_i - y - h sum_{j<i} a_ij k_j) / (h gamma). y_new = z_7 and the
 * embedded solution is z_6, so z_7 - z_6 is the error estimate, filtered by
 * E / (h gamma)'s inverse as Shampine does, which keeps the estimate of a
 * stiff component near its true size. A Newton iteration that diverges or
 * has not converged after NEWTON_MAXITER iterations shrinks the step.
 *
 * Step size: h_new = h / clamp(err^(1/(q+1)) / 0.9, 1/6, 5) (q the embedded
 * order) with Gustafsson's predictive controller after an accepted step, no
 * growth right after a rejection (rodas.f's controller).
 *
 * Every output time is a step end (the step before it shortens to land), not
 * interpolated: rodas.f's continuous extension is of order 3, and on stiff
 * problems, where the error estimate lets the steps grow long, it is far less
 * accurate than the steps (Prothero-Robinson y' = -1e4 (y - cos t) - sin t at
 * rtol 1e-6: 4e-3 between steps, 2e-8 at them; a cubic Hermite does no
 * better). Dense output times cost steps, never accuracy. No allocation here
 * after nd_onestep_attach. */
#include "nd_onestep.h"

#include <float.h>
#include "nd_real.h"
#include <stdlib.h>
#include <string.h>

#include "nd_lapack.h"

/* rodas.f's controller: safety factor, step ratio bounds (FAC1, FAC2 there are
 * the reciprocals), the floor of the remembered error (Gustafsson), and the
 * shrink when E is singular. As nd_adaptive.c: a step within 1 % of the end
 * lands on it, and a step below 16 ulps of t cannot move t. */
#define ROS_SAFE 0.9
#define ROS_MAX_GROW 6.0
#define ROS_MAX_SHRINK 5.0
#define ROS_ERRACC_FLOOR 1e-2
#define ROS_SINGULAR_SHRINK 0.5
#define ROS_LAST_STRETCH 1.01
#define ROS_UNDERFLOW_ULPS 16.0

enum { ROS_STAGES = 6 };

/* RODAS, method 1 of rodas.f (ROCOE): gamma, the stage times c_i, the df/dt
 * weights d_i, the stage argument weights a_ij and the couplings C_ij. Hairer
 * and Wanner print 16 digits. */
static const nd_real ros_gamma = 0.25;
static const nd_real ros_c[ROS_STAGES] = {0.0, 0.386, 0.21, 0.63, 1.0, 1.0};
static const nd_real ros_d[ROS_STAGES] = {0.25, -0.1043, 0.1035, -0.03620000000000023, 0.0, 0.0};
static const nd_real ros_a[ROS_STAGES][ROS_STAGES] = {
    {0},
    {1.544},
    {0.9466785280815826, 0.2557011698983284},
    {3.314825187068521, 2.896124015972201, 0.9986419139977817},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1.0},
};
static const nd_real ros_cc[ROS_STAGES][ROS_STAGES] = {
    {0},
    {-5.6688},
    {-2.430093356833875, -0.2063599157091915},
    {-0.1073529058151375, -9.594562251023355, -20.47028614809616},
    {7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160},
    {8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
     -6.058818238834054},
};
/* Kvaerno's 5(4) ESDIRK (as printed to 17 digits by its users; the diagonal is
 * gamma, stage 1 explicit). Row 7 is y_new (stiffly accurate), row 6 the
 * embedded solution. */
enum { ESD_STAGES = 7 };
static const nd_real esd_gamma = 0.26;
static const nd_real esd_c[ESD_STAGES] = {0.0, 0.52, 1.230333209967908, 0.8957659843500759,
                                         0.43639360985864756, 1.0, 1.0};
static const nd_real esd_a[ESD_STAGES][ESD_STAGES] = {
    {0},
    {0.26},
    {0.13, 0.84033320996790809},
    {0.22371961478320505, 0.47675532319799699, -0.06470895363112615},
    {0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998},
    {0.13855640231268224, 0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676},
    {0.13659751177640291, 0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
     0.06962479448202728},
};

/* Newton's iteration in a kvaerno5 stage: it stops when the next correction
 * is predicted below NEWTON_KAPPA of what the error test allows (Hairer and
 * Wanner's eta ||dz|| <= kappa), and fails on divergence or after
 * NEWTON_MAXITER iterations; the step then shrinks by NEWTON_SHRINK. */
#define NEWTON_KAPPA 0.01
#define NEWTON_MAXITER 10
#define NEWTON_SHRINK 0.25

enum { MAX_STAGES = ESD_STAGES };

struct NdOneStep {
    const nd_real *p, *ts;
    nd_real *yout;
    size_t n, nblocks;
    int m;
    size_t ns;              /* the shared block (nd_kernels.h): J and LU bordered */
    nd_real t, dir, hmax;
    nd_real gamma;           /* the method's diagonal: E = I / (h gamma) - J */
    int esdirk;             /* kvaerno5, else rodas4 */
    int q;                  /* the embedded solution's order */
    long attempts, bad;     /* attempts since the last output; element gone non-finite */
    nd_real bad_value;
    int j, nt;              /* next row of yout */
    nd_real *J, *LU;
    int *ipiv;
    nd_real *y, *f0, *ft, *k[MAX_STAGES], *arg, *f, *ynew, *scale, *z, *err;
    nd_real *block;
    size_t block_doubles;
    long num_jac, num_lu;
};

enum { ONESTEP_VECTORS = 9 + MAX_STAGES };

/* ---- workspace ---- */

int nd_onestep_attach(NdSolver *s, size_t nblocks, int m)
{
    /* casts: emit-c compiles this as C++ too */
    struct NdOneStep *r = (struct NdOneStep *)calloc(1, sizeof *r);
    if (!r)
        return ND_ERR_MEMORY;
    s->onestep = r;
    size_t n = s->n, mm = (size_t)m * (size_t)m, ns = (size_t)s->k.ns;
    size_t jac_n = nblocks * mm + nblocks * (size_t)m * ns + ns * ns;
    size_t total = ONESTEP_VECTORS * n + jac_n + nblocks * mm + ns * ns;
    r->block = (nd_real *)calloc(total, sizeof(nd_real));
    r->ipiv = (int *)calloc(nblocks * (size_t)m + ns + 1, sizeof(int));
    if (!r->block || !r->ipiv)
        return ND_ERR_MEMORY;
    r->block_doubles = total;
    s->block_doubles += total;
    r->n = n, r->nblocks = nblocks, r->m = m, r->ns = ns;
    nd_real *q = r->block;
    r->J = q, q += jac_n;
    r->LU = q, q += nblocks * mm + ns * ns;
    nd_real **vec[ONESTEP_VECTORS] = {&r->y,    &r->f0,   &r->ft,   &r->arg,  &r->f,
                                     &r->ynew, &r->scale, &r->z,    &r->err,  &r->k[0],
                                     &r->k[1], &r->k[2], &r->k[3], &r->k[4], &r->k[5],
                                     &r->k[6]};
    for (int i = 0; i < ONESTEP_VECTORS; i++)
        *vec[i] = q, q += n;
    return ND_OK;
}

void nd_onestep_detach(NdSolver *s)
{
    if (!s->onestep)
        return;
    free(s->onestep->block);
    free(s->onestep->ipiv);
    free(s->onestep);
    s->onestep = NULL;
}

/* ---- the matrix E = I / (h gamma) - J, block by block ---- */

/* LU of diag I - J for one m x m block at J (row-major) into A, column-major
 * for LAPACK. Returns nonzero when it is singular. */
static int factor_one(int m, const nd_real *J, nd_real diag, nd_real *A, int *ipiv)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            A[(size_t)j * m + i] = (i == j ? diag : 0.0) - J[(size_t)i * m + j];
    return nd_lu_factor(m, A, ipiv) != 0;
}

/* LU of E per block, and of the shared block's (its coupling columns need
 * none). Returns nonzero when a block is singular. */
static int factor_blocks(struct NdOneStep *r, nd_real h)
{
    int m = r->m, singular = 0;
    size_t mm = (size_t)m * (size_t)m;
    nd_real diag = 1.0 / (h * r->gamma);
    for (size_t blk = 0; blk < r->nblocks; blk++)
        singular |= factor_one(m, r->J + blk * mm, diag, r->LU + blk * mm,
                               r->ipiv + blk * (size_t)m);
    if (r->ns)
        singular |= factor_one((int)r->ns, r->J + r->nblocks * (mm + (size_t)m * r->ns), diag,
                               r->LU + r->nblocks * mm, r->ipiv + r->nblocks * (size_t)m);
    r->num_lu++;
    return singular;
}

/* x <- E^{-1} x. With a shared block E is bordered, [E_b, -C_b; 0, E_s]
 * (nd_kernels.h): x_s = E_s^{-1} r_s first, then x_b = E_b^{-1} (r_b + C_b x_s). */
static void solve_blocks(struct NdOneStep *r, nd_real *x)
{
    size_t m = (size_t)r->m, mm = m * m, ns = r->ns;
    nd_real *xs = x + r->nblocks * m;
    if (ns)
        nd_lu_solve((int)ns, r->LU + r->nblocks * mm, r->ipiv + r->nblocks * m, xs, 0);
    for (size_t blk = 0; blk < r->nblocks; blk++) {
        const nd_real *Cb = r->J + r->nblocks * mm + blk * m * ns;
        nd_real *xb = x + blk * m;
        for (size_t i = 0; ns && i < m; i++) {
            nd_real acc = 0.0;
            for (size_t j = 0; j < ns; j++)
                acc += Cb[i * ns + j] * xs[j];
            xb[i] += acc;
        }
        nd_lu_solve(r->m, r->LU + blk * mm, r->ipiv + blk * m, xb, 0);
    }
}

/* ---- one step ---- */

/* f(t, y) (unless the start computed it), J(t, y) and, unless the model
 * ignores t, df/dt by a forward difference of rodas.f's size
 * sqrt(eps max(1e-5, |t|)). A non-finite f or J at an accepted state fails
 * here: no step size can make the stages finite. */
static int step_start(NdSolver *s, int have_f0)
{
    struct NdOneStep *r = s->onestep;
    if (!have_f0)
        nd_solver_rhs(s, r->p, r->t, r->y, r->f0);
    long i = nd_first_nonfinite(r->f0, r->n);
    char at[ND_ELEMENT_TEXT];
    if (i >= 0)
        return nd_solver_fail(s, ND_ERR_NONFINITE, "the right-hand side is %s at t = %.10g (for %s)",
                              nd_nonfinite_word(r->f0[i]), r->t,
                              nd_solver_element(s, i, at, sizeof at));
    s->k.jac(r->t, r->y, r->p, NULL, NULL, r->J, NULL, s->B, s->work);
    r->num_jac++;
    i = nd_first_nonfinite(r->J, r->nblocks * (size_t)r->m * (size_t)r->m);
    if (i >= 0) {
        long mm = (long)r->m * r->m;
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the Jacobian is %s at t = %.10g (d f[%ld] / d y[%ld] of sample %ld)",
                              nd_nonfinite_word(r->J[i]), r->t, i % mm / r->m, i % r->m, i / mm);
    }
    if (r->esdirk) /* no df/dt term */
        return ND_OK;
    if (s->k.autonomous) {
        memset(r->ft, 0, r->n * sizeof *r->ft);
        return ND_OK;
    }
    nd_real delta = sqrt(ND_REAL_EPSILON * fmax(1e-5, fabs(r->t)));
    nd_solver_rhs(s, r->p, r->t + delta, r->y, r->ft);
    for (size_t e = 0; e < r->n; e++)
        r->ft[e] = (r->ft[e] - r->f0[e]) / delta;
    return ND_OK;
}

/* rodas4's six stages of a step of h (signed) to t_new, E already factored;
 * leaves y_new in r->ynew and k_6 (the error estimate) in r->err. */
static int rodas4_stages(NdSolver *s, nd_real h, nd_real t_new)
{
    struct NdOneStep *r = s->onestep;
    size_t n = r->n;
    for (int i = 0; i < ROS_STAGES; i++) {
        nd_real *rhs = r->k[i];
        if (i == 0) {
            memcpy(rhs, r->f0, n * sizeof *rhs);
        } else {
            for (size_t e = 0; e < n; e++) {
                nd_real acc = r->y[e];
                for (int j = 0; j < i; j++)
                    acc += ros_a[i][j] * r->k[j][e];
                r->arg[e] = acc;
            }
            nd_real ti = ros_c[i] == 1.0 ? t_new : r->t + ros_c[i] * h;
            nd_solver_rhs(s, r->p, ti, r->arg, rhs);
            for (size_t e = 0; e < n; e++) {
                nd_real acc = 0.0;
                for (int j = 0; j < i; j++)
                    acc += ros_cc[i][j] * r->k[j][e];
                rhs[e] += acc / h;
            }
        }
        if (ros_d[i] != 0.0)
            for (size_t e = 0; e < n; e++)
                rhs[e] += h * ros_d[i] * r->ft[e];
        solve_blocks(r, rhs);
    }
    for (size_t e = 0; e < n; e++)
        r->ynew[e] = r->arg[e] + r->k[5][e];
    memcpy(r->err, r->k[5], n * sizeof *r->err);
    return ND_OK;
}

/* Newton's iteration for stage z = base + h gamma f(ti, z), from the z given;
 * base is r->arg. Returns ND_OK, or 1 when it diverged or did not converge
 * (the caller shrinks the step). */
static int newton_stage(NdSolver *s, nd_real h, nd_real ti)
{
    struct NdOneStep *r = s->onestep;
    size_t n = r->n;
    nd_real hg = h * r->gamma, prev = 0.0;
    for (int it = 0; it < NEWTON_MAXITER; it++) {
        nd_solver_rhs(s, r->p, ti, r->z, r->f);
        /* -R = base + h gamma f - z, then dz = (I - h gamma J)^-1 (-R) = E^-1 (-R) / (h gamma) */
        for (size_t e = 0; e < n; e++)
            r->f[e] = (r->arg[e] + hg * r->f[e] - r->z[e]) / hg;
        solve_blocks(r, r->f);
        for (size_t e = 0; e < n; e++)
            r->z[e] += r->f[e];
        nd_real norm = nd_weighted_rms(s, r->f, r->y);
        if (!(norm < INFINITY))
            return 1;
        if (norm == 0.0)
            return ND_OK;
        if (it > 0) {
            nd_real rate = norm / prev;
            if (rate >= 1.0)
                return 1;
            if (rate / (1.0 - rate) * norm <= NEWTON_KAPPA)
                return ND_OK;
        } else if (norm <= 1e-3 * NEWTON_KAPPA) {
            return ND_OK;
        }
        prev = norm;
    }
    return 1;
}

/* kvaerno5's seven stages of a step of h to t_new, E already factored; leaves
 * y_new = z_7 in r->ynew and the filtered z_7 - z_6 in r->err. Returns 1 when
 * a stage's Newton iteration failed. */
static int kvaerno5_stages(NdSolver *s, nd_real h, nd_real t_new)
{
    struct NdOneStep *r = s->onestep;
    size_t n = r->n;
    nd_real hg = h * r->gamma;
    memcpy(r->k[0], r->f0, n * sizeof *r->k[0]);
    for (int i = 1; i < ESD_STAGES; i++) {
        for (size_t e = 0; e < n; e++) {
            nd_real acc = 0.0;
            for (int j = 0; j < i; j++)
                acc += esd_a[i][j] * r->k[j][e];
            r->arg[e] = r->y[e] + h * acc;
            r->z[e] = r->arg[e] + hg * r->k[i - 1][e]; /* predictor: k_i near k_{i-1} */
        }
        nd_real ti = esd_c[i] == 1.0 ? t_new : r->t + esd_c[i] * h;
        if (newton_stage(s, h, ti))
            return 1;
        for (size_t e = 0; e < n; e++)
            r->k[i][e] = (r->z[e] - r->arg[e]) / hg;
        if (i == ESD_STAGES - 2)
            memcpy(r->err, r->z, n * sizeof *r->err); /* z_6, the embedded solution */
    }
    for (size_t e = 0; e < n; e++) {
        r->ynew[e] = r->z[e];
        r->err[e] = (r->z[e] - r->err[e]) / hg; /* E^-1 (z_7 - z_6) / (h gamma) */
    }
    solve_blocks(r, r->err);
    return ND_OK;
}

/* The error norm of r->err with weights atol + rtol max(|y|, |y_new|)
 * (rodas.f); records the first non-finite element of y_new. */
static nd_real step_error(NdSolver *s)
{
    struct NdOneStep *r = s->onestep;
    long i = nd_first_nonfinite(r->ynew, r->n);
    if (i >= 0) {
        r->bad = i;
        r->bad_value = r->ynew[i];
        return INFINITY;
    }
    for (size_t e = 0; e < r->n; e++)
        r->scale[e] = fmax(fabs(r->y[e]), fabs(r->ynew[e]));
    nd_real err = nd_weighted_rms(s, r->err, r->scale);
    return isnan(err) ? INFINITY : err;
}

static int fail_progress(NdSolver *s, nd_real h_abs)
{
    struct NdOneStep *r = s->onestep;
    if (r->attempts >= s->max_steps)
        return nd_solver_fail(s, ND_ERR_MAX_STEPS,
                              "%s took max_steps = %ld steps without reaching t = %.10g: "
                              "stopped at t = %.10g with step h = %.3g (raise max_steps or loosen "
                              "rtol, atol)",
                              nd_method_name(s->method), s->max_steps, r->ts[r->j], r->t, h_abs);
    if (h_abs > ROS_UNDERFLOW_ULPS * ND_REAL_EPSILON * fabs(r->t) && h_abs >= ND_REAL_MIN)
        return ND_OK;
    char at[ND_ELEMENT_TEXT];
    if (r->bad >= 0)
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the solution became %s (%s) in a %s step from t = %.10g; the step "
                              "size shrank to h = %.3g without a finite step",
                              nd_nonfinite_word(r->bad_value),
                              nd_solver_element(s, r->bad, at, sizeof at),
                              nd_method_name(s->method), r->t, h_abs);
    return nd_solver_fail(s, ND_ERR_STEP_UNDERFLOW,
                          "step size underflow at t = %.10g: h = %.3g is below the roundoff of t "
                          "(the solution may blow up there)",
                          r->t, h_abs);
}

/* Hairer's starting step ([HNW I] II.4) for the embedded order q. */
static nd_real initial_step(NdSolver *s)
{
    struct NdOneStep *r = s->onestep;
    nd_real d0 = nd_weighted_rms(s, r->y, r->y), d1 = nd_weighted_rms(s, r->f0, r->y);
    nd_real h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, r->hmax);
    for (size_t e = 0; e < r->n; e++)
        r->arg[e] = r->y[e] + r->dir * h0 * r->f0[e];
    nd_solver_rhs(s, r->p, r->t + r->dir * h0, r->arg, r->f);
    for (size_t e = 0; e < r->n; e++)
        r->f[e] -= r->f0[e];
    nd_real d2 = nd_weighted_rms(s, r->f, r->y) / h0, der = fmax(d1, d2);
    nd_real h1 = der <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / der, 1.0 / (r->q + 1));
    nd_real h = fmin(fmax(fmin(100.0 * h0, h1), nd_least_starting_step(r->t)), r->hmax);
    return (h > 0 && isfinite(h)) ? h : fmin(1e-6, r->hmax);
}

static int solve_start(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                       nd_real *yout)
{
    struct NdOneStep *r = s->onestep;
    if (!s->k.jac)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "%s needs the model's Jacobian: compile "
                              "the model with its jac kernel", nd_method_name(s->method));
    r->esdirk = s->method == ND_KVAERNO5;
    r->gamma = r->esdirk ? esd_gamma : ros_gamma;
    r->q = r->esdirk ? 4 : 3;
    r->p = p, r->ts = ts, r->yout = yout, r->nt = nt, r->j = 1;
    r->t = ts[0], r->dir = ts[nt - 1] > ts[0] ? 1.0 : -1.0;
    r->hmax = fabs(ts[nt - 1] - ts[0]);
    r->attempts = 0, r->bad = -1;
    r->num_jac = r->num_lu = 0;
    memcpy(r->y, y0, r->n * sizeof *r->y);
    memmove(yout, y0, r->n * sizeof *yout);
    nd_solver_rhs(s, p, r->t, r->y, r->f0); /* initial_step and the first step use it */
    return ND_OK;
}

int nd_onestep_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout)
{
    struct NdOneStep *r = s->onestep;
    int st = solve_start(s, p, y0, ts, nt, yout);
    if (st)
        return st;
    nd_real h_abs = s->h0 > 0 ? fmin(s->h0, r->hmax) : initial_step(s);
    nd_real h_acc = 0.0, err_acc = 0.0;
    int rejected = 0, accepted = 0;
    while (!st && r->j < nt) {
        if ((st = step_start(s, accepted == 0)) != ND_OK)
            break;
        for (;;) { /* attempts from (t, y) until one is accepted */
            if ((st = fail_progress(s, h_abs)) != ND_OK)
                break;
            r->attempts++;
            nd_real h = r->dir * h_abs, t_new = r->t + h, t_out = r->ts[r->j];
            int landing = (r->t + ROS_LAST_STRETCH * h - t_out) * r->dir > 0;
            if (landing) {
                h = t_out - r->t;
                t_new = t_out;
            }
            if (factor_blocks(r, h)) {
                h_abs = fabs(h) * ROS_SINGULAR_SHRINK;
                rejected = 1;
                s->num_rejected++;
                continue;
            }
            if ((r->esdirk ? kvaerno5_stages : rodas4_stages)(s, h, t_new)) {
                h_abs = fabs(h) * NEWTON_SHRINK;
                rejected = 1;
                s->num_rejected++;
                continue;
            }
            nd_real err = step_error(s), expo = 1.0 / (r->q + 1);
            nd_real fac = fmin(ROS_MAX_SHRINK, fmax(1.0 / ROS_MAX_GROW, pow(err, expo) / ROS_SAFE));
            nd_real h_new = fabs(h) / fac;
            if (!(err <= 1.0)) {
                h_abs = h_new;
                rejected = 1;
                s->num_rejected++;
                continue;
            }
            if (accepted++ > 0) { /* Gustafsson: the last two errors predict the next */
                nd_real gus = h_acc / fabs(h) * pow(err * err / err_acc, expo) / ROS_SAFE;
                gus = fmin(ROS_MAX_SHRINK, fmax(1.0 / ROS_MAX_GROW, gus));
                h_new = fabs(h) / fmax(fac, gus);
            }
            h_acc = fabs(h);
            err_acc = fmax(ROS_ERRACC_FLOOR, err);
            if (rejected)
                h_new = fmin(h_new, fabs(h));
            else if (landing) /* the step it replaced is what the error allows next */
                h_new = fmax(h_new, h_abs);
            rejected = 0;
            r->bad = -1;
            s->num_steps++;
            r->t = t_new;
            memcpy(r->y, r->ynew, r->n * sizeof *r->y);
            if (landing) {
                memcpy(r->yout + (size_t)r->j * s->out_row, r->y, r->n * sizeof *r->y);
                r->j++;
                r->attempts = 0;
            }
            h_abs = fmin(h_new, r->hmax);
            break;
        }
    }
    if (st && r->j < nt) /* the row after the last good one: where the solve stopped */
        memcpy(yout + (size_t)r->j * s->out_row, r->y, r->n * sizeof *yout);
    return st;
}

long nd_onestep_get_num_jac_evals(const NdSolver *s)
{
    return s && s->onestep ? s->onestep->num_jac : 0;
}

long nd_onestep_get_num_lu(const NdSolver *s)
{
    return s && s->onestep ? s->onestep->num_lu : 0;
}
