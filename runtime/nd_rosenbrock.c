/* The Rosenbrock engine behind nd_solve for `rodas4`, for stiff problems:
 * RODAS of E. Hairer and G. Wanner, Solving Ordinary Differential Equations II
 * (2nd ed., Springer 1996), section VI.4 and its code rodas.f (method 1), a
 * stiffly accurate, L-stable 6-stage method of order 4 with an embedded
 * order-3 solution.
 *
 * In the transformed form of rodas.f a step of h from (t, y) factors
 * E = I / (h gamma) - J, J = df/dy(t, y), and solves for k_1 .. k_6
 *   E k_i = f(t + c_i h, y + sum_{j<i} a_ij k_j) + sum_{j<i} (C_ij / h) k_j
 *           + h d_i df/dt(t, y)
 * (d_5 = d_6 = 0); stage 6's argument is stage 5's plus k_5 (the embedded
 * solution) and y_new is stage 6's argument plus k_6, so k_6 is the error
 * estimate. J comes from the compiler's symbolic Jacobian kernel; df/dt from
 * a forward difference (as rodas.f does without an analytic one), skipped when
 * the kernel table says the model does not read t. The step size follows
 * rodas.f: h_new = h / clamp(err^(1/4) / 0.9, 1/6, 5) with Gustafsson's
 * predictive controller after an accepted step, no growth right after a
 * rejection. E is block diagonal (one m x m block per sample), factored block
 * by block with nd_lapack.c. One step size serves the batch.
 *
 * Every output time is a step end (the step before it shortens to land), not
 * interpolated: rodas.f's continuous extension is of order 3, and on stiff
 * problems, where the error estimate lets the steps grow long, it is far less
 * accurate than the steps (Prothero-Robinson y' = -1e4 (y - cos t) - sin t at
 * rtol 1e-6: 4e-3 between steps, 2e-8 at them; a cubic Hermite does no
 * better). Dense output times cost steps, never accuracy. No allocation here
 * after nd_ros_attach. */
#include "nd_rosenbrock.h"

#include <float.h>
#include <math.h>
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
static const double ros_gamma = 0.25;
static const double ros_c[ROS_STAGES] = {0.0, 0.386, 0.21, 0.63, 1.0, 1.0};
static const double ros_d[ROS_STAGES] = {0.25, -0.1043, 0.1035, -0.03620000000000023, 0.0, 0.0};
static const double ros_a[ROS_STAGES][ROS_STAGES] = {
    {0},
    {1.544},
    {0.9466785280815826, 0.2557011698983284},
    {3.314825187068521, 2.896124015972201, 0.9986419139977817},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1.0},
};
static const double ros_cc[ROS_STAGES][ROS_STAGES] = {
    {0},
    {-5.6688},
    {-2.430093356833875, -0.2063599157091915},
    {-0.1073529058151375, -9.594562251023355, -20.47028614809616},
    {7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160},
    {8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
     -6.058818238834054},
};
struct NdRos {
    const double *p, *ts;
    double *yout;
    size_t n, nblocks;
    int m;
    double t, dir, hmax;
    long attempts, bad;     /* attempts since the last output; element gone non-finite */
    double bad_value;
    int j, nt;              /* next row of yout */
    double *J, *LU;
    int *ipiv;
    double *y, *f0, *ft, *k[ROS_STAGES], *arg, *f, *ynew, *scale;
    double *block;
    size_t block_doubles;
    long num_jac, num_lu;
};

enum { ROS_VECTORS = 7 + ROS_STAGES };

/* ---- workspace ---- */

int nd_ros_attach(NdSolver *s, size_t nblocks, int m)
{
    struct NdRos *r = (struct NdRos *)calloc(1, sizeof *r); /* casts: emit-c compiles as C++ */
    if (!r)
        return ND_ERR_MEMORY;
    s->ros = r;
    size_t n = s->n, mm = (size_t)m * (size_t)m;
    size_t total = ROS_VECTORS * n + 2 * nblocks * mm;
    r->block = (double *)calloc(total, sizeof(double));
    r->ipiv = (int *)calloc(nblocks * (size_t)m + 1, sizeof(int));
    if (!r->block || !r->ipiv)
        return ND_ERR_MEMORY;
    r->block_doubles = total;
    s->block_doubles += total;
    r->n = n, r->nblocks = nblocks, r->m = m;
    double *q = r->block;
    r->J = q, q += nblocks * mm;
    r->LU = q, q += nblocks * mm;
    double **vec[ROS_VECTORS] = {&r->y,    &r->f0,   &r->ft,   &r->arg,  &r->f,
                                 &r->ynew, &r->scale, &r->k[0], &r->k[1], &r->k[2],
                                 &r->k[3], &r->k[4], &r->k[5]};
    for (int i = 0; i < ROS_VECTORS; i++)
        *vec[i] = q, q += n;
    return ND_OK;
}

void nd_ros_detach(NdSolver *s)
{
    if (!s->ros)
        return;
    free(s->ros->block);
    free(s->ros->ipiv);
    free(s->ros);
    s->ros = NULL;
}

/* ---- the matrix E = I / (h gamma) - J, block by block ---- */

/* LU of E per block, column-major for LAPACK (J is row-major). Returns nonzero
 * when a block is singular. */
static int factor_blocks(struct NdRos *r, double h)
{
    int m = r->m, singular = 0;
    size_t mm = (size_t)m * (size_t)m;
    double diag = 1.0 / (h * ros_gamma);
    for (size_t blk = 0; blk < r->nblocks; blk++) {
        const double *J = r->J + blk * mm;
        double *A = r->LU + blk * mm;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
                A[(size_t)j * m + i] = (i == j ? diag : 0.0) - J[(size_t)i * m + j];
        singular |= nd_lu_factor(m, A, r->ipiv + blk * (size_t)m) != 0;
    }
    r->num_lu++;
    return singular;
}

static void solve_blocks(struct NdRos *r, double *x)
{
    size_t m = (size_t)r->m, mm = m * m;
    for (size_t blk = 0; blk < r->nblocks; blk++)
        nd_lu_solve(r->m, r->LU + blk * mm, r->ipiv + blk * m, x + blk * m, 0);
}

/* ---- one step ---- */

/* f(t, y) (unless the start computed it), J(t, y) and, unless the model
 * ignores t, df/dt by a forward difference of rodas.f's size
 * sqrt(eps max(1e-5, |t|)). A non-finite f or J at an accepted state fails
 * here: no step size can make the stages finite. */
static int step_start(NdSolver *s, int have_f0)
{
    struct NdRos *r = s->ros;
    int ny = s->k.ny;
    if (!have_f0)
        nd_solver_rhs(s, r->p, r->t, r->y, r->f0);
    long i = nd_first_nonfinite(r->f0, r->n);
    if (i >= 0)
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the right-hand side is %s at t = %.10g (element %ld of sample %ld)",
                              nd_nonfinite_word(r->f0[i]), r->t, i % ny, i / ny);
    s->k.jac(r->t, r->y, r->p, NULL, NULL, r->J, NULL, s->B, s->work);
    r->num_jac++;
    i = nd_first_nonfinite(r->J, r->nblocks * (size_t)r->m * (size_t)r->m);
    if (i >= 0) {
        long mm = (long)r->m * r->m;
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the Jacobian is %s at t = %.10g (d f[%ld] / d y[%ld] of sample %ld)",
                              nd_nonfinite_word(r->J[i]), r->t, i % mm / r->m, i % r->m, i / mm);
    }
    if (s->k.autonomous) {
        memset(r->ft, 0, r->n * sizeof *r->ft);
        return ND_OK;
    }
    double delta = sqrt(DBL_EPSILON * fmax(1e-5, fabs(r->t)));
    nd_solver_rhs(s, r->p, r->t + delta, r->y, r->ft);
    for (size_t e = 0; e < r->n; e++)
        r->ft[e] = (r->ft[e] - r->f0[e]) / delta;
    return ND_OK;
}

/* The six stages of a step of h (signed) to t_new, E already factored;
 * leaves y_new in r->ynew and k_6 (the error estimate) in r->k[5]. */
static void stages(NdSolver *s, double h, double t_new)
{
    struct NdRos *r = s->ros;
    size_t n = r->n;
    for (int i = 0; i < ROS_STAGES; i++) {
        double *rhs = r->k[i];
        if (i == 0) {
            memcpy(rhs, r->f0, n * sizeof *rhs);
        } else {
            for (size_t e = 0; e < n; e++) {
                double acc = r->y[e];
                for (int j = 0; j < i; j++)
                    acc += ros_a[i][j] * r->k[j][e];
                r->arg[e] = acc;
            }
            double ti = ros_c[i] == 1.0 ? t_new : r->t + ros_c[i] * h;
            nd_solver_rhs(s, r->p, ti, r->arg, rhs);
            for (size_t e = 0; e < n; e++) {
                double acc = 0.0;
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
}

/* The error norm of k_6 with weights atol + rtol max(|y|, |y_new|) (rodas.f);
 * records the first non-finite element of y_new. */
static double step_error(NdSolver *s)
{
    struct NdRos *r = s->ros;
    long i = nd_first_nonfinite(r->ynew, r->n);
    if (i >= 0) {
        r->bad = i;
        r->bad_value = r->ynew[i];
        return INFINITY;
    }
    for (size_t e = 0; e < r->n; e++)
        r->scale[e] = fmax(fabs(r->y[e]), fabs(r->ynew[e]));
    double err = nd_weighted_rms(s, r->k[5], r->scale);
    return isnan(err) ? INFINITY : err;
}

static int fail_progress(NdSolver *s, double h_abs)
{
    struct NdRos *r = s->ros;
    if (r->attempts >= s->max_steps)
        return nd_solver_fail(s, ND_ERR_MAX_STEPS,
                              "rodas4 took max_steps = %ld steps without reaching t = %.10g: "
                              "stopped at t = %.10g with step h = %.3g (raise max_steps or loosen "
                              "rtol, atol)",
                              s->max_steps, r->ts[r->j], r->t, h_abs);
    if (h_abs > ROS_UNDERFLOW_ULPS * DBL_EPSILON * fabs(r->t) && h_abs >= DBL_MIN)
        return ND_OK;
    if (r->bad >= 0) {
        int ny = s->k.ny;
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the solution became %s (element %ld of sample %ld) in a rodas4 "
                              "step from t = %.10g; the step size shrank to h = %.3g without a "
                              "finite step",
                              nd_nonfinite_word(r->bad_value), r->bad % ny, r->bad / ny, r->t,
                              h_abs);
    }
    return nd_solver_fail(s, ND_ERR_STEP_UNDERFLOW,
                          "step size underflow at t = %.10g: h = %.3g is below the roundoff of t "
                          "(the solution may blow up there)",
                          r->t, h_abs);
}

/* Hairer's starting step ([HNW I] II.4) for the embedded order 3. */
static double initial_step(NdSolver *s)
{
    struct NdRos *r = s->ros;
    double d0 = nd_weighted_rms(s, r->y, r->y), d1 = nd_weighted_rms(s, r->f0, r->y);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, r->hmax);
    for (size_t e = 0; e < r->n; e++)
        r->arg[e] = r->y[e] + r->dir * h0 * r->f0[e];
    nd_solver_rhs(s, r->p, r->t + r->dir * h0, r->arg, r->f);
    for (size_t e = 0; e < r->n; e++)
        r->f[e] -= r->f0[e];
    double d2 = nd_weighted_rms(s, r->f, r->y) / h0, der = fmax(d1, d2);
    double h1 = der <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / der, 1.0 / 4.0);
    double h = fmin(fmin(100.0 * h0, h1), r->hmax);
    return (h > 0 && isfinite(h)) ? h : fmin(1e-6, r->hmax);
}

static int solve_start(NdSolver *s, const double *p, const double *y0, const double *ts, int nt,
                       double *yout)
{
    struct NdRos *r = s->ros;
    if (!s->k.jac)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "rodas4 needs the model's Jacobian: "
                                                     "compile the model with its jac kernel");
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

int nd_ros_solve(NdSolver *s, const double *p, const double *y0, const double *ts, int nt,
                 double *yout)
{
    struct NdRos *r = s->ros;
    int st = solve_start(s, p, y0, ts, nt, yout);
    if (st)
        return st;
    double h_abs = s->h0 > 0 ? fmin(s->h0, r->hmax) : initial_step(s);
    double h_acc = 0.0, err_acc = 0.0;
    int rejected = 0, accepted = 0;
    while (!st && r->j < nt) {
        if ((st = step_start(s, accepted == 0)) != ND_OK)
            break;
        for (;;) { /* attempts from (t, y) until one is accepted */
            if ((st = fail_progress(s, h_abs)) != ND_OK)
                break;
            r->attempts++;
            double h = r->dir * h_abs, t_new = r->t + h, t_out = r->ts[r->j];
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
            stages(s, h, t_new);
            double err = step_error(s);
            double fac = fmin(ROS_MAX_SHRINK, fmax(1.0 / ROS_MAX_GROW, pow(err, 0.25) / ROS_SAFE));
            double h_new = fabs(h) / fac;
            if (!(err <= 1.0)) {
                h_abs = h_new;
                rejected = 1;
                s->num_rejected++;
                continue;
            }
            if (accepted++ > 0) { /* Gustafsson: the last two errors predict the next */
                double gus = h_acc / fabs(h) * pow(err * err / err_acc, 0.25) / ROS_SAFE;
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
                memcpy(r->yout + (size_t)r->j * r->n, r->y, r->n * sizeof *r->y);
                r->j++;
                r->attempts = 0;
            }
            h_abs = fmin(h_new, r->hmax);
            break;
        }
    }
    if (st && r->j < nt) /* the row after the last good one: where the solve stopped */
        memcpy(yout + (size_t)r->j * r->n, r->y, r->n * sizeof *yout);
    return st;
}

long nd_ros_get_num_jac_evals(const NdSolver *s)
{
    return s && s->ros ? s->ros->num_jac : 0;
}

long nd_ros_get_num_lu(const NdSolver *s)
{
    return s && s->ros ? s->ros->num_lu : 0;
}
