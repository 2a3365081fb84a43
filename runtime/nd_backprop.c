/* The discrete gradients (ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT): reverse-mode
 * differentiation of the forward Runge–Kutta steps themselves, with the step
 * sizes held constant (as torchdiffeq does). For a step from (t, y_n),
 *   Y_i = y_n + h sum_{j<i} a_ij k_j,  k_i = f(t + c_i h, Y_i),
 *   y_{n+1} = y_n + h sum_i b_i k_i,
 * the sweep takes the cotangent ybar of y_{n+1} back through the stages, last
 * first: kbar_i = h (b_i ybar + sum_{j>i} a_ji Ybar_j), Ybar_i = kbar_i^T df/dy
 * (the vjp kernel, whose other output adds kbar_i^T df/dp to dL/dp), and
 * ybar_n = ybar + sum_i Ybar_i. Backprop records every step's stage arguments
 * on a tape; checkpoint keeps only cursors (and states) every ck_every steps and
 * recomputes each segment onto the tape in the reverse sweep.
 *
 * For bdf the sweep is the discrete adjoint of nd_bdf.c's steps with the
 * Newton solution treated as exact (the step sizes and orders constant): the
 * cotangent Dbar of the difference array goes back through the difference
 * update, the corrector d - c f(y_pred + d) + psi = 0 by one transposed solve
 * with the LU of I - c J at the converged point (w = (I - c J)^-T dbar, then
 * c J^T w and c (df/dp)^T w from the vjp), the predictor and the rescale
 * between steps (nd_bdf.h). A record holds the step and y_new. */
#include <stdlib.h>
#include <string.h>

#include "nd_grad_internal.h"

/* The tape's first size, in records, so that short solves do not regrow it. */
#define ND_TAPE_MIN_RECORDS 64
#define ND_CKPT_MIN 16

/* Doubles a checkpoint holds: its state and its cursor. */
static size_t ckpt_doubles(const NdGradient *g)
{
    return g->ck_row + (sizeof(NdCursor) + sizeof(double) - 1) / sizeof(double);
}

static void note_peak(NdGradient *g)
{
    size_t in_use = g->tape_len + g->ck_count * ckpt_doubles(g);
    if (in_use > g->peak_extra)
        g->peak_extra = in_use;
}

/* ---- the tape ---- */

/* Room for one more record, growing the tape geometrically; NULL when memory
 * runs out. The tape stays allocated across computes. */
static double *tape_push(NdGradient *g)
{
    size_t need = g->tape_len + g->rec_size;
    if (need > g->tape_cap) {
        size_t cap = 2 * g->tape_cap;
        if (cap < ND_TAPE_MIN_RECORDS * g->rec_size)
            cap = ND_TAPE_MIN_RECORDS * g->rec_size;
        if (cap < need)
            cap = need;
        double *tape = realloc(g->tape, cap * sizeof *tape);
        if (!tape)
            return NULL;
        g->tape = tape;
        g->tape_cap = cap;
    }
    double *rec = g->tape + g->tape_len;
    g->tape_len = need;
    note_peak(g);
    return rec;
}

/* The step hook: while recording, one record per accepted step with the
 * argument of every live stage (recomputed from y and the stage derivatives,
 * bit for bit what the step evaluated f at). */
void nd_backprop_record(void *ctx, NdSolver *s, double t, double h, double t_new,
                        const double *y)
{
    NdGradient *g = ctx;
    if (!g->recording)
        return;
    int obs = -1;
    if (g->next_obs < g->loss->nt && t_new == g->loss->ts[g->next_obs])
        obs = g->next_obs++;
    double *rec = tape_push(g);
    if (!rec) {
        g->tape_failed = 1;
        return;
    }
    rec[0] = t, rec[1] = h, rec[2] = t_new, rec[3] = obs;
    for (int li = 0; li < g->nlive; li++) {
        double *Y = rec + ND_REC_HEAD + (size_t)li * g->n;
        if (g->live[li] == 0)
            memcpy(Y, y, g->n * sizeof *y);
        else
            nd_rk_stage_arg(s, g->live[li], h, y, Y);
    }
}

/* ---- the reverse sweep ---- */

static void add_into(double *acc, const double *v, size_t n)
{
    for (size_t e = 0; e < n; e++)
        acc[e] += v[e];
}

/* kbar = h (b_i ybar + sum over later live stages j of a_ji Ybar_j). */
static void stage_cotangent(NdGradient *g, int li, double h)
{
    const NdTableau *tab = g->fwd->tab;
    int i = g->live[li];
    for (size_t e = 0; e < g->n; e++) {
        double acc = tab->b[i] * g->ybar[e];
        for (int lj = li + 1; lj < g->nlive; lj++)
            acc += tab->a[g->live[lj]][i] * g->Ybar[lj][e];
        g->kbar[e] = h * acc;
    }
}

/* Takes ybar from y_{n+1} (plus the loss's dL/dy if the step lands on an
 * observation) back to y_n, adding the parameter terms into grad_p. */
static void sweep_record(NdGradient *g, const double *rec)
{
    const NdTableau *tab = g->fwd->tab;
    double t = rec[0], h = rec[1], t_new = rec[2];
    int obs = (int)rec[3];
    if (obs >= 0)
        add_into(g->ybar, g->obs_gy + (size_t)obs * g->n, g->n);
    for (int li = g->nlive - 1; li >= 0; li--) {
        int i = g->live[li];
        const double *Y = rec + ND_REC_HEAD + (size_t)li * g->n;
        stage_cotangent(g, li, h);
        g->k.vjp(nd_stage_time(tab, i, t, h, t_new), Y, g->p, g->kbar, NULL, g->Ybar[li],
                 g->pbar, g->B, g->work);
        g->vjp_evals++;
        add_into(g->grad_p, g->pbar, (size_t)g->np);
    }
    for (int li = 0; li < g->nlive; li++)
        add_into(g->ybar, g->Ybar[li], g->n);
}

/* ---- bdf ---- */

void nd_backprop_record_bdf(void *ctx, NdSolver *s, const NdBdfStep *st, const double *y_new)
{
    NdGradient *g = (NdGradient *)ctx;
    (void)s;
    if (!g->recording)
        return;
    int obs = -1;
    if (g->next_obs < g->loss->nt && st->t_new == g->loss->ts[g->next_obs])
        obs = g->next_obs++;
    double *rec = tape_push(g);
    if (!rec) {
        g->tape_failed = 1;
        return;
    }
    rec[0] = st->t, rec[1] = st->h, rec[2] = st->t_new, rec[3] = obs;
    rec[4] = st->h_from, rec[5] = st->order;
    memcpy(rec + ND_BDF_REC_HEAD, y_new, g->n * sizeof *y_new);
}

/* One step back: kbar holds w, ybar the cotangent through the predictor. */
static int sweep_record_bdf(NdGradient *g, const double *rec)
{
    NdBdfStep st = {.t = rec[0], .h = rec[1], .t_new = rec[2], .h_from = rec[4],
                    .order = (int)rec[5]};
    const double *y_new = rec + ND_BDF_REC_HEAD;
    int obs = (int)rec[3];
    if (obs >= 0)
        add_into(g->Dbar, g->obs_gy + (size_t)obs * g->n, g->n);
    double c;
    if (nd_bdf_adjoint_solve(g->fwd, g->p, &st, y_new, g->Dbar, g->kbar, &c))
        return nd_grad_fail(g, ND_ERR_NONFINITE, "backward sweep: I - h J is singular at "
                            "t = %.10g", st.t_new);
    for (size_t e = 0; e < g->n; e++)
        g->kbar[e] *= c;
    g->k.vjp(st.t_new, y_new, g->p, g->kbar, NULL, g->ybar, g->pbar, g->B, g->work);
    g->vjp_evals++;
    add_into(g->grad_p, g->pbar, (size_t)g->np);
    for (size_t e = 0; e < g->n; e++)
        g->kbar[e] /= c; /* w again: psi's cotangent is -w */
    nd_bdf_adjoint_predict(g->fwd, &st, g->ybar, g->kbar, g->Dbar);
    return ND_OK;
}

/* The start: D[0] = y0 and D[1] = h0 f(t0, y0). */
static void finish_bdf(NdGradient *g)
{
    double h0 = nd_bdf_initial_step(g->fwd);
    const double *Dbar1 = g->Dbar + g->n;
    for (size_t e = 0; e < g->n; e++)
        g->kbar[e] = h0 * Dbar1[e];
    g->k.vjp(g->loss->ts[0], g->obs_y, g->p, g->kbar, NULL, g->ybar, g->pbar, g->B, g->work);
    g->vjp_evals++;
    add_into(g->grad_p, g->pbar, (size_t)g->np);
    add_into(g->ybar, g->Dbar, g->n);
}

static int sweep_tape(NdGradient *g)
{
    for (size_t off = g->tape_len; off > 0; off -= g->rec_size) {
        const double *rec = g->tape + off - g->rec_size;
        if (!g->implicit)
            sweep_record(g, rec);
        else if (sweep_record_bdf(g, rec))
            return ND_ERR_NONFINITE;
    }
    return ND_OK;
}

static void start_sweep(NdGradient *g)
{
    memset(g->ybar, 0, g->n * sizeof *g->ybar);
    if (g->implicit)
        memset(g->Dbar, 0, ND_BDF_ROWS * g->n * sizeof *g->Dbar);
}

/* ybar at t0 takes the loss at ts[0] too; it is dL/dy0. */
static void finish(NdGradient *g, double *grad_y0)
{
    if (g->implicit)
        finish_bdf(g);
    add_into(g->ybar, g->obs_gy, g->n);
    if (grad_y0)
        memcpy(grad_y0, g->ybar, g->n * sizeof *grad_y0);
}

int nd_backprop_backward(NdGradient *g, double *grad_y0)
{
    start_sweep(g);
    int st = sweep_tape(g);
    if (!st)
        finish(g, grad_y0);
    return st;
}

/* ---- checkpoints ---- */

static int ckpt_grow(NdGradient *g)
{
    size_t cap = g->ck_cap ? 2 * g->ck_cap : ND_CKPT_MIN;
    NdCursor *ck = realloc(g->ck, cap * sizeof *ck);
    if (!ck)
        return ND_ERR_MEMORY;
    g->ck = ck;
    double *ck_y = realloc(g->ck_y, cap * g->ck_row * sizeof *ck_y);
    if (!ck_y)
        return ND_ERR_MEMORY;
    g->ck_y = ck_y;
    g->ck_cap = cap;
    return ND_OK;
}

/* Keeps every other checkpoint (those at multiples of 2 ck_every steps) and
 * doubles the spacing. Run whenever the count passes 2 ck_every, it keeps
 * between ck_every and 2 ck_every checkpoints ck_every steps apart, so both the
 * count and the longest segment (the tape) stay near sqrt(steps), whatever
 * the number of steps an adaptive solve turns out to take. */
static void ckpt_thin(NdGradient *g)
{
    long every = 2 * g->ck_every;
    size_t kept = 0;
    for (size_t i = 0; i < g->ck_count; i++) {
        if (g->ck[i].step % every)
            continue;
        if (kept != i) {
            g->ck[kept] = g->ck[i];
            memcpy(g->ck_y + kept * g->ck_row, g->ck_y + i * g->ck_row,
                   g->ck_row * sizeof *g->ck_y);
        }
        kept++;
    }
    g->ck_count = kept;
    g->ck_every = every;
}

int nd_checkpoint_push(NdGradient *g, const NdCursor *c)
{
    if (g->ck_count == g->ck_cap && ckpt_grow(g))
        return nd_grad_fail(g, ND_ERR_MEMORY, "out of memory keeping checkpoint %zu",
                            g->ck_count);
    g->ck[g->ck_count] = *c;
    nd_grad_cursor_save(g, g->ck_y + g->ck_count * g->ck_row);
    g->ck_count++;
    note_peak(g);
    if (g->ck_count > 2 * (size_t)g->ck_every)
        ckpt_thin(g);
    return ND_OK;
}

/* The observation the first step after cursor c may land on. */
static int cursor_next_obs(const NdGradient *g, const NdCursor *c)
{
    if (g->implicit)
        return nd_bdf_next_output(g->fwd);
    return g->adaptive ? c->run.j : c->j + 1;
}

/* Recomputes the steps from checkpoint i up to step `end` onto the tape. */
static int replay_segment(NdGradient *g, size_t i, long end)
{
    NdCursor c;
    nd_grad_cursor_resume(g, &c, &g->ck[i], g->ck_y + i * g->ck_row);
    g->tape_len = 0;
    g->next_obs = cursor_next_obs(g, &c);
    g->recording = 1;
    int st = ND_OK;
    while (!st && c.step < end)
        st = nd_grad_cursor_step(g, &c);
    g->recording = 0;
    return st;
}

int nd_checkpoint_backward(NdGradient *g, double *grad_y0)
{
    start_sweep(g);
    for (size_t i = g->ck_count; i-- > 0;) {
        long end = i + 1 < g->ck_count ? g->ck[i + 1].step : g->num_steps;
        int st = replay_segment(g, i, end);
        if (!st)
            st = sweep_tape(g);
        if (st)
            return st;
    }
    finish(g, grad_y0);
    return ND_OK;
}

void nd_backprop_free(NdGradient *g)
{
    free(g->tape);
    free(g->ck);
    free(g->ck_y);
}
