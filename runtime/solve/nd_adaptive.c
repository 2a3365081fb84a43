/* The error-controlled explicit Runge–Kutta engine behind nd_solve for bosh3,
 * dopri5, tsit5 and dop853, after Hairer's dopri5.f / dop853.f and
 * [HNW] E. Hairer, S. P. Nørsett, G. Wanner, Solving ODEs I, 2nd ed., II.4
 * (step size control, initial step), II.6 and II.10 (dense output). One step
 * size serves the whole batch; output times are interpolated, never stepped
 * to, except the last one. Nothing here allocates: every vector is carved
 * from the solver's block at create (nd_solver.c). */
#include "nd_adaptive.h"

#include <float.h>
#include "nd_real.h"
#include <string.h>

#include "nd_events.h"

/* Step size controller constants ([HNW] II.4; dopri5.f SAFE, FAC1, FAC2):
 * the new step is h * safety * err^(-1/q), kept between shrink * h and
 * grow * h. dop853.f's own limits (0.333, 6) are not used: one set for all. */
#define ND_SAFETY 0.9
#define ND_GROW 10.0
#define ND_SHRINK 0.2
/* dopri5.f's floor on the previous error in the PI term: an exact step
 * (err = 0) must not make the next factor infinite. */
#define ND_FACOLD_MIN 1e-4
/* A step this close to the end is stretched to land on it ([HNW] dopri5.f:
 * x + 1.01 h passing xend), which avoids a sliver of a last step. */
#define ND_LAST_STRETCH 1.01
/* A step smaller than this many ulps of t cannot move t meaningfully. */
#define ND_UNDERFLOW_ULPS 16.0

/* The mean over the batch of per-sample means, kept as the first sample's mean
 * plus the mean deviation from it: the same number as the mean over all
 * B * ny elements, but a batch of identical samples gives exactly the mean of
 * one (the deviations are 0), so it steps exactly as a single solve does. */
typedef struct BatchMean {
    nd_real first, dev;
    int64_t count;
} BatchMean;

static void batch_mean_add(BatchMean *a, nd_real sample_mean)
{
    if (a->count++ == 0)
        a->first = sample_mean;
    else
        a->dev += sample_mean - a->first;
}

static nd_real batch_mean(const BatchMean *a)
{
    return a->first + a->dev / (nd_real)a->count;
}

static void rhs(NdRun *r, nd_real t, const nd_real *y, nd_real *dydt)
{
    nd_solver_rhs(r->s, r->p, t, y, dydt);
}

/* Weighted RMS norm of v / (atol + rtol |y|) over one part of the state. */
static nd_real part_rms(const NdSolver *s, const NdNormPart *part, const nd_real *v,
                       const nd_real *y)
{
    BatchMean mean = {0};
    nd_real shared = 0.0, count = (nd_real)(part->group + part->tail);
    for (size_t e = part->off + part->len; e < part->off + part->len + part->tail; e++) {
        nd_real q = part->tail_weight * v[e] / (s->atol + s->rtol * fabs(y[e]));
        shared += q * q;
    }
    for (size_t e0 = part->off; e0 < part->off + part->len; e0 += part->group) {
        nd_real sum = 0.0;
        for (size_t e = e0; e < e0 + part->group; e++) {
            nd_real q = v[e] / (s->atol + s->rtol * fabs(y[e]));
            sum += q * q;
        }
        batch_mean_add(&mean, (sum + shared) / count);
    }
    return sqrt(batch_mean(&mean));
}

/* fmax and fmin for numbers known not to be NaN: the same values, without a
 * libm call (the error weights call it per element, the controller per step). */
static inline nd_real larger(nd_real a, nd_real b)
{
    return a >= b ? a : b;
}

static inline nd_real smaller(nd_real a, nd_real b)
{
    return a <= b ? a : b;
}

/* The larger of two norms, NaN if either is (unlike fmax, which would hide a
 * NaN estimate that must reject the step). */
static nd_real max_nan(nd_real a, nd_real b)
{
    return (a >= b || isnan(a)) ? a : b;
}

/* The largest part's norm, the norm of the initial step. */
static nd_real weighted_rms(const NdSolver *s, const nd_real *v, const nd_real *y)
{
    nd_real norm = 0.0;
    for (int i = 0; i < s->norm_parts; i++)
        if (s->norm[i].len > 0)
            norm = max_nan(norm, part_rms(s, &s->norm[i], v, y));
    return norm;
}

nd_real nd_weighted_rms(const NdSolver *s, const nd_real *v, const nd_real *y)
{
    return weighted_rms(s, v, y);
}

/* Hairer's starting step ([HNW] II.4, p. 169; dopri5.f HINIT): an Euler step
 * small against y, then h with h^q * max(|f|, |f'|) = 0.01. One evaluation of f,
 * into K[1] (free until the first step), from ytmp. */
static nd_real run_initial_step(NdRun *r)
{
    NdSolver *s = r->s;
    const nd_real *y = s->y, *f0 = s->K[0];
    nd_real d0 = weighted_rms(s, y, y), d1 = weighted_rms(s, f0, y);
    nd_real h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, r->hmax);
    for (size_t e = 0; e < s->n; e++)
        s->ytmp[e] = y[e] + r->dir * h0 * f0[e];
    rhs(r, r->t + r->dir * h0, s->ytmp, s->K[1]);
    for (size_t e = 0; e < s->n; e++)
        s->ytmp[e] = s->K[1][e] - f0[e];
    nd_real d2 = weighted_rms(s, s->ytmp, y) / h0;
    nd_real der = fmax(d1, d2); /* fmax drops a NaN d2: a bad trial f leaves d1 */
    nd_real h1 = der <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / der, 1.0 / s->tab->error_order);
    nd_real h = fmin(fmax(fmin(100.0 * h0, h1), nd_least_starting_step(r->t)), r->hmax);
    return (h > 0 && isfinite(h)) ? h : fmin(1e-6, r->hmax);
}

/* Stages 1..s-1 of a step of h from (t, y); y_new = y + h sum b_i k_i. For FSAL
 * methods y_new is the last stage's argument and k_{s-1} = f(t + h, y_new). */
static void step_stages(NdRun *r, nd_real h, nd_real t_new)
{
    NdSolver *s = r->s;
    const NdTableau *tab = s->tab;
    for (int i = 1; i < tab->stages; i++) {
        nd_real *arg = (tab->fsal && i == tab->stages - 1) ? s->ynew : s->ytmp;
        nd_combo_axpy(&s->row[i], s->K, s->y, h, arg, s->n);
        rhs(r, nd_stage_time(tab, i, r->t, h, t_new), arg, s->K[i]);
    }
    if (!tab->fsal) /* row fnew_stage of a is b */
        nd_combo_axpy(&s->row[tab->fnew_stage], s->K, s->y, h, s->ynew, s->n);
}

/* One group's sums of squares of the scaled estimates est (and est3, for
 * dop853) over its elements [e0, e0 + group): ms[0] and ms[1]. */
static void group_error(const NdSolver *s, const nd_real *est, const nd_real *est3, size_t e0,
                        size_t group, nd_real ms[2])
{
    const nd_real *y = s->y, *ynew = s->ynew;
    nd_real sum5 = 0.0, sum3 = 0.0;
    for (size_t e = e0; e < e0 + group; e++) {
        nd_real sk = s->atol + s->rtol * larger(fabs(y[e]), fabs(ynew[e]));
        sum5 += (est[e] / sk) * (est[e] / sk);
        if (est3)
            sum3 += (est3[e] / sk) * (est3[e] / sk);
    }
    ms[0] = sum5;
    ms[1] = sum3;
}

/* The error of one part of the state, a mean over its groups. dop853 divides
 * its 5th-order estimate by a blend with the 3rd-order one,
 * err5^2 / sqrt(err5^2 + 0.01 err3^2), which behaves as O(h^8) (dop853.f).
 * The estimates sum_i e_i k_i are in s->ytmp and (e3) s->dense[0]. */
static nd_real part_error(const NdSolver *s, const NdNormPart *part, nd_real h)
{
    BatchMean mean5 = {0}, mean3 = {0};
    const nd_real *est3 = s->use_e3 ? s->dense[0] : NULL;
    nd_real shared[2] = {0.0, 0.0}, count = (nd_real)(part->group + part->tail);
    if (part->tail) {
        group_error(s, s->ytmp, est3, part->off + part->len, part->tail, shared);
        shared[0] *= part->tail_weight * part->tail_weight;
        shared[1] *= part->tail_weight * part->tail_weight;
    }
    for (size_t e0 = part->off; e0 < part->off + part->len; e0 += part->group) {
        nd_real ms[2];
        group_error(s, s->ytmp, est3, e0, part->group, ms);
        batch_mean_add(&mean5, (ms[0] + shared[0]) / count);
        batch_mean_add(&mean3, (ms[1] + shared[1]) / count);
    }
    nd_real m5 = batch_mean(&mean5);
    if (s->use_e3) {
        nd_real deno = m5 + 0.01 * batch_mean(&mean3);
        return fabs(h) * m5 / sqrt(deno > 0 ? deno : 1.0);
    }
    return fabs(h) * sqrt(m5);
}

/* The local error estimate in the weighted RMS norm (the largest over the
 * parts of the state), or +inf when y_new or the estimate is not finite
 * (r->bad names the element). */
static nd_real error_norm(NdRun *r, nd_real h)
{
    NdSolver *s = r->s;
    r->bad = nd_first_nonfinite(s->ynew, s->n);
    if (r->bad >= 0) {
        r->bad_value = s->ynew[r->bad];
        return INFINITY;
    }
    /* the stage arguments are spent: ytmp and the dense vectors are free */
    nd_combo_scale(&s->e, s->K, 1.0, s->ytmp, s->n);
    if (s->use_e3)
        nd_combo_scale(&s->e3, s->K, 1.0, s->dense[0], s->n);
    nd_real err = 0.0;
    for (int i = 0; i < s->norm_parts; i++)
        if (s->norm[i].len > 0)
            err = max_nan(err, part_error(s, &s->norm[i], h));
    if (!isfinite(err)) { /* a stage blew up where y_new did not look */
        r->bad_value = NAN;
        return INFINITY;
    }
    return err;
}

/* dop853's three extra stages for its dense output (rows past fnew_stage),
 * computed only when an output time falls inside the step. */
static void dense_stages(NdRun *r, nd_real h)
{
    NdSolver *s = r->s;
    const NdTableau *tab = s->tab;
    for (int i = tab->fnew_stage + 1; i < tab->dense_stages; i++) {
        nd_rk_stage_arg(s, i, h, s->y, s->ytmp);
        rhs(r, r->t + tab->c[i] * h, s->ytmp, s->K[i]);
    }
}

void nd_adaptive_dense_prepare(NdRun *r, nd_real h)
{
    NdSolver *s = r->s;
    if (s->tab->dense_stages > s->tab->fnew_stage + 1)
        dense_stages(r, h);
    nd_dense_prepare(s, h);
}

/* Fills every output row whose time lies in (t, t_new]: the last step lands on
 * t_end exactly, so its row is y_new itself; the others are interpolated, from
 * coefficient vectors computed once for the step (nd_dense.c). */
static void run_write_outputs(NdRun *r, nd_real t_new, nd_real h)
{
    NdSolver *s = r->s;
    const nd_real *ts = r->ts;
    int j = r->j;
    while (j < r->nt && (ts[j] - t_new) * r->dir < 0)
        j++;
    if (j > r->j) {
        if (s->tab->dense_stages > s->tab->fnew_stage + 1)
            dense_stages(r, h);
        nd_dense_prepare(s, h);
        nd_dense_eval(s, r->t, h, ts + r->j, j - r->j, r->yout + (size_t)r->j * s->out_row);
    }
    if (j < r->nt && ts[j] == t_new)
        memcpy(r->yout + (size_t)j++ * s->out_row, s->ynew, s->n * sizeof *r->yout);
    if (j > r->j)
        r->attempts = 0;
    r->j = j;
}

static void swap_vectors(nd_real **a, nd_real **b)
{
    nd_real *tmp = *a;
    *a = *b;
    *b = tmp;
}

/* Takes the step: f(t + h, y_new) becomes the next k_0 (free for FSAL methods),
 * outputs inside the step are written, the hook sees the step (with every
 * stage the outputs read), and (t, y) advance. */
static void accept_step(NdRun *r, nd_real h, nd_real t_new)
{
    NdSolver *s = r->s;
    const NdTableau *tab = s->tab;
    if (!tab->fsal)
        rhs(r, t_new, s->ynew, s->K[tab->fnew_stage]);
    run_write_outputs(r, t_new, h);
    if (s->on_step)
        s->on_step(s->hook_ctx, s, r->t, h, t_new, s->y);
    swap_vectors(&s->K[0], &s->K[tab->fnew_stage]);
    swap_vectors(&s->y, &s->ynew);
    r->t = t_new;
    s->num_steps++;
}

/* The PI controller of dopri5.f with Lund's stabilisation ([HNW] IV.2):
 * h_new = h * safety * err^-(1/q - 0.75 beta) * err_old^beta, within
 * [shrink h, grow h], never growing right after a rejection. */
static nd_real next_step(NdRun *r, nd_real h, nd_real err)
{
    const NdTableau *tab = r->s->tab;
    if (!isfinite(err)) /* a non-finite stage: retreat hard and retry */
        return h * ND_SHRINK;
    nd_real fac11 = pow(err, 1.0 / tab->error_order - 0.75 * tab->beta);
    if (err > 1.0)
        return h / smaller(1.0 / ND_SHRINK, fac11 / ND_SAFETY);
    nd_real fac = fac11 / pow(r->facold, tab->beta);
    fac = larger(1.0 / ND_GROW, smaller(1.0 / ND_SHRINK, fac / ND_SAFETY));
    nd_real hnew = h / fac;
    if (r->rejected)
        hnew = r->dir * smaller(fabs(hnew), fabs(h));
    if (fabs(hnew) > r->hmax)
        hnew = r->dir * r->hmax;
    return hnew;
}

/* ---- failures: a status, a message naming the time, the state reached ---- */

static int run_fail_nonfinite(NdRun *r)
{
    NdSolver *s = r->s;
    char at[ND_ELEMENT_TEXT];
    return nd_solver_fail(s, ND_ERR_NONFINITE,
                          "%s became %s in a step from t = %.10g; the step size shrank to h = "
                          "%.3g without a finite step",
                          nd_solver_element(s, r->bad < 0 ? 0 : r->bad, at, sizeof at),
                          nd_nonfinite_word(r->bad_value), r->t, fabs(r->h));
}

int nd_check_progress(NdSolver *s, long attempts, nd_real t_end, nd_real t, nd_real h)
{
    if (attempts >= s->max_steps)
        return nd_solver_fail(s, ND_ERR_MAX_STEPS,
                              "%s took max_steps = %ld steps without reaching t = %.10g: stopped "
                              "at t = %.10g with step h = %.3g (raise max_steps or loosen rtol, "
                              "atol)",
                              nd_method_name(s->method), s->max_steps, t_end, t, h);
    if (h > ND_UNDERFLOW_ULPS * ND_REAL_EPSILON * fabs(t) && h >= ND_REAL_MIN)
        return ND_OK;
    return ND_ERR_STEP_UNDERFLOW;
}

nd_real nd_least_starting_step(nd_real t)
{
    nd_real least = 2 * ND_UNDERFLOW_ULPS * ND_REAL_EPSILON * fabs(t);
    return least > ND_REAL_MIN ? least : ND_REAL_MIN;
}

int nd_fail_step_underflow(NdSolver *s, nd_real t, nd_real h, const char *cause)
{
    return nd_solver_fail(s, ND_ERR_STEP_UNDERFLOW,
                          "step size underflow at t = %.10g: h = %.3g is below the roundoff of t "
                          "(the solution may blow up there%s)",
                          t, h, cause);
}

static int run_check_progress(NdRun *r)
{
    nd_real h = fabs(r->h);
    int st = nd_check_progress(r->s, r->attempts, r->ts[r->j], r->t, h);
    if (st != ND_ERR_STEP_UNDERFLOW)
        return st;
    return r->bad >= 0 ? run_fail_nonfinite(r)
                       : nd_fail_step_underflow(r->s, r->t, h, ", or the problem is stiff");
}

/* One attempted step; ND_OK whether accepted or rejected. */
int nd_adaptive_attempt(NdRun *r)
{
    int st = run_check_progress(r);
    if (st)
        return st;
    nd_real h = r->h, t_new = r->t + h;
    nd_real t_end = r->land ? r->ts[r->j] : r->t_end;
    if (r->s->ev) /* a step is redone to land on an event */
        t_end = nd_events_target(r->s, t_end, r->dir);
    int landing = (r->t + ND_LAST_STRETCH * h - t_end) * r->dir > 0;
    nd_real wanted = fabs(h);
    if (landing) {
        h = t_end - r->t;
        t_new = t_end;
    }
    r->attempts++;
    step_stages(r, h, t_new);
    nd_real err = error_norm(r, h);
    r->h = next_step(r, h, err);
    if (err <= 1.0 && r->s->ev && nd_events_adaptive_check(r, h, t_new)) {
        r->h = h; /* redo it: the landing above shortens it onto the event */
        return ND_OK;
    }
    if (err <= 1.0) {
        /* a step shortened to land was accepted: the step it replaced is what the
         * error allows next, not the controller's guess from the short step */
        r->h_wanted = landing ? larger(wanted, fabs(r->h)) : fabs(r->h);
        r->facold = larger(err, ND_FACOLD_MIN);
        r->rejected = 0;
        accept_step(r, h, t_new);
        if (r->s->ev)
            return nd_events_adaptive_fire(r);
    } else {
        r->rejected = 1;
        r->s->num_rejected++;
    }
    return ND_OK;
}

static int run_start(NdRun *r)
{
    NdSolver *s = r->s;
    rhs(r, r->t, s->y, s->K[0]);
    long i = nd_first_nonfinite(s->K[0], s->n);
    char at[ND_ELEMENT_TEXT];
    if (i >= 0)
        return nd_solver_fail(s, ND_ERR_NONFINITE,
                              "the right-hand side is %s at t = %.10g (for %s at the initial "
                              "state)",
                              nd_nonfinite_word(s->K[0][i]), r->t,
                              nd_solver_element(s, i, at, sizeof at));
    nd_real h = s->h0 > 0 ? fmin(s->h0, r->hmax) : run_initial_step(r);
    r->h = r->dir * h;
    return ND_OK;
}

int nd_adaptive_begin(NdRun *r, NdSolver *s, const nd_real *p, const nd_real *y0,
                      const nd_real *ts, int nt, nd_real *yout, int land)
{
    /* designators in declaration order, no compound literal: emit-c compiles this as C++ */
    NdRun start_run = {.s = s, .p = p, .ts = ts, .nt = nt, .yout = yout, .t = ts[0],
                       .dir = ts[nt - 1] > ts[0] ? (nd_real)1 : (nd_real)-1, .t_end = ts[nt - 1],
                       .hmax = fabs(ts[nt - 1] - ts[0]), .facold = ND_FACOLD_MIN, .land = land,
                       .j = 1, .bad = -1};
    *r = start_run;
    memcpy(s->y, y0, s->n * sizeof *s->y);
    memmove(yout, y0, s->n * sizeof *yout);
    int st = s->ev ? nd_events_begin(s, p, r->t, s->y) : ND_OK;
    return st ? st : run_start(r);
}

void nd_adaptive_resume(NdRun *r, const NdRun *saved, const nd_real *y)
{
    *r = *saved;
    memcpy(r->s->y, y, r->s->n * sizeof *y);
    rhs(r, r->t, r->s->y, r->s->K[0]);
}

int nd_adaptive_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                      nd_real *yout)
{
    NdRun r;
    int st = nd_adaptive_begin(&r, s, p, y0, ts, nt, yout, 0);
    while (!st && r.j < nt)
        st = nd_adaptive_attempt(&r);
    s->h_next = st ? 0 : r.h_wanted;
    if (st && r.j < nt) /* the row after the last good one: where the solve stopped */
        memcpy(yout + (size_t)r.j * s->out_row, s->y, s->n * sizeof *yout);
    return st;
}
