/* The discrete gradients (ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT): reverse-mode
 * differentiation of the forward Runge–Kutta steps themselves, with the step
 * sizes held constant (as torchdiffeq does). For a step from (t, y_n),
 *   Y_i = y_n + h sum_{j<i} a_ij k_j,  k_i = f(t + c_i h, Y_i),
 *   y_{n+1} = y_n + h sum_i b_i k_i,
 * and the observations inside it, interpolated by the dense output
 *   y_o = y_n + h sum_i w_i(theta_o) k_i  (nd_dense_weights; linear in y_n, k),
 * the sweep takes the cotangent ybar of y_{n+1} back through the stages, last
 * first: kbar_i = h (b_i ybar + sum_{j>i} a_ji Ybar_j + sum_o w_i(theta_o) gy_o),
 * Ybar_i = kbar_i^T df/dy (the vjp kernel, whose other output adds
 * kbar_i^T df/dp to dL/dp), and ybar_n = ybar + sum_i Ybar_i + sum_o gy_o.
 * For dopri5, tsit5 and bosh3 the dense output also reads f(t + h, y_{n+1}),
 * which is the next step's k_0 (FSAL): its cotangent joins that k_0's, so one
 * vjp serves both (only the last step does its own). Backprop records every
 * step's stage arguments on a tape; checkpoint keeps only cursors (and
 * states) every ck_every steps and recomputes each segment onto the tape in
 * the reverse sweep.
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
    return g->ck_row + (sizeof(NdCursor) + sizeof(nd_real) - 1) / sizeof(nd_real);
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
static nd_real *tape_push(NdGradient *g)
{
    size_t need = g->tape_len + g->rec_size;
    if (need > g->tape_cap) {
        size_t cap = 2 * g->tape_cap;
        if (cap < ND_TAPE_MIN_RECORDS * g->rec_size)
            cap = ND_TAPE_MIN_RECORDS * g->rec_size;
        if (cap < need)
            cap = need;
        nd_real *tape = (nd_real *)realloc(g->tape, cap * sizeof *tape);
        if (!tape)
            return NULL;
        g->tape = tape;
        g->tape_cap = cap;
    }
    nd_real *rec = g->tape + g->tape_len;
    g->tape_len = need;
    note_peak(g);
    return rec;
}

/* The step's observations: those strictly inside (t, t_new), then the one at
 * t_new itself; next_obs moves past them. */
static NdStepObs step_observations(NdGradient *g, nd_real t, nd_real h, nd_real t_new, int *land)
{
    const nd_real *ts = g->loss->ts;
    int nt = g->loss->nt;
    NdStepObs o;
    o.t = t, o.h = h, o.lo = o.hi = g->next_obs;
    while (o.hi < nt && (ts[o.hi] - t_new) * g->dir < 0)
        o.hi++;
    *land = o.hi < nt && ts[o.hi] == t_new ? o.hi : -1;
    g->next_obs = *land >= 0 ? o.hi + 1 : o.hi;
    return o;
}

/* Fills a record: the step, its observations and the previous step's, then
 * the argument of every slot the step needs (recomputed from y and the stage
 * derivatives, bit for bit what the step evaluated f at). */
static void write_record(NdGradient *g, NdSolver *s, nd_real *rec, const NdStepObs *o, int land,
                         nd_real t_new, const nd_real *y)
{
    rec[ND_REC_T] = o->t, rec[ND_REC_H] = o->h, rec[ND_REC_TNEW] = t_new;
    rec[ND_REC_LO] = o->lo, rec[ND_REC_HI] = o->hi, rec[ND_REC_LAND] = land;
    rec[ND_REC_PREV_T] = g->prev.t, rec[ND_REC_PREV_H] = g->prev.h;
    rec[ND_REC_PREV_LO] = g->prev.lo, rec[ND_REC_PREV_HI] = g->prev.hi;
    if (g->verlet || g->sde) {
        if (g->verlet)
            nd_backprop_verlet_args(g, s, rec, o->h, y);
        else
            nd_backprop_sde_args(g, s, rec, t_new, y);
        return;
    }
    for (int q = 0; q < g->nslot; q++) {
        nd_real *Y = rec + ND_REC_HEAD + (size_t)q * g->n;
        if (!g->always[q] && o->hi == o->lo)
            continue; /* read only by the dense output, unused here */
        if (g->slot[q] == 0)
            memcpy(Y, y, g->n * sizeof *y);
        else
            nd_rk_stage_arg(s, g->slot[q], o->h, y, Y);
    }
}

/* The step hook (after the step's outputs are written, before y moves):
 * notes the step's observations and, while recording, appends its record. */
void nd_backprop_record(void *ctx, NdSolver *s, nd_real t, nd_real h, nd_real t_new,
                        const nd_real *y)
{
    NdGradient *g = (NdGradient *)ctx;
    int land;
    NdStepObs o = step_observations(g, t, h, t_new, &land);
    if (g->recording) {
        nd_real *rec = tape_push(g);
        if (rec)
            write_record(g, s, rec, &o, land, t_new, y);
        else
            g->tape_failed = 1;
    }
    g->prev = o;
}

/* ---- the reverse sweep ---- */

static void add_into(nd_real *acc, const nd_real *v, size_t n)
{
    for (size_t e = 0; e < n; e++)
        acc[e] += v[e];
}

static void add_scaled(nd_real *acc, nd_real c, const nd_real *v, size_t n)
{
    for (size_t e = 0; e < n; e++)
        acc[e] += c * v[e];
}

/* Rows of g->wobs: the dense weights of the observations o.lo..o.hi - 1, at the
 * theta the forward solve interpolated them at (nd_dense_eval). */
static void observation_weights(NdGradient *g, const NdStepObs *o, nd_real *w)
{
    const nd_real *ts = g->loss->ts;
    for (int j = o->lo; j < o->hi; j++)
        nd_dense_weights(g->fwd->tab, (ts[j] - o->t) / o->h, w + (size_t)(j - o->lo) *
                                                               ND_RK_MAX_STAGES);
}

/* out = h sum_o w_i(theta_o) gy_o over the step's interpolated observations. */
static void observed_cotangent(NdGradient *g, const NdStepObs *o, const nd_real *w, int i,
                               nd_real *out)
{
    memset(out, 0, g->n * sizeof *out);
    for (int j = o->lo; j < o->hi; j++) {
        nd_real c = o->h * w[(size_t)(j - o->lo) * ND_RK_MAX_STAGES + i];
        if (c != 0.0)
            add_scaled(out, c, g->obs_gy + (size_t)j * g->n, g->n);
    }
}

/* Slot q takes part in a step: always, or when an observation is inside it. */
static int slot_used(const NdGradient *g, int q, int inside)
{
    return g->always[q] || inside;
}

/* kbar_i = h (b_i ybar + sum over later slots j of a_ji Ybar_j) + h sum_o w_i gy_o,
 * and for k_0 the cotangent the step before handed on (g->kin). */
static void stage_cotangent(NdGradient *g, int q, const NdStepObs *o, nd_real h, int handoff)
{
    const NdTableau *tab = g->fwd->tab;
    int i = g->slot[q], inside = o->hi > o->lo;
    size_t n = g->n;
    if (inside)
        observed_cotangent(g, o, g->wobs, i, g->kbar);
    else
        memset(g->kbar, 0, n * sizeof *g->kbar);
    if (i < tab->stages && tab->b[i] != 0.0)
        add_scaled(g->kbar, h * tab->b[i], g->ybar, n);
    for (int qj = q + 1; qj < g->nslot; qj++)
        if (slot_used(g, qj, inside) && tab->a[g->slot[qj]][i] != 0.0)
            add_scaled(g->kbar, h * tab->a[g->slot[qj]][i], g->Ybar[qj], n);
    if (i == 0 && handoff)
        add_into(g->kbar, g->kin, n);
}

void nd_backprop_vjp_add(NdGradient *g, NdKernelFn fn, nd_real t, const nd_real *Y, nd_real *acc)
{
    fn(t, Y, g->p, g->kbar, NULL, g->Ybar[0], g->pbar, g->B, g->work);
    g->vjp_evals++;
    add_into(acc, g->Ybar[0], g->n);
    add_into(g->grad_p, g->pbar, (size_t)g->np);
}

static void stage_vjp(NdGradient *g, nd_real t, const nd_real *Y, nd_real *Ybar)
{
    g->k.vjp(t, Y, g->p, g->kbar, NULL, Ybar, g->pbar, g->B, g->work);
    g->vjp_evals++;
    add_into(g->grad_p, g->pbar, (size_t)g->np);
}

/* The last step's f(t_end, y_end), read by its dense output, has no next step
 * to hand its cotangent to: its own vjp, into ybar (y_end's cotangent). The
 * step's observation weights are in g->wobs; g->kin is scratch here. */
static void last_fsal_stage(NdGradient *g, const NdStepObs *o)
{
    int f = g->fwd->tab->fnew_stage, nt = g->loss->nt;
    observed_cotangent(g, o, g->wobs, f, g->kbar);
    stage_vjp(g, g->loss->ts[nt - 1], g->obs_y + (size_t)(nt - 1) * g->n, g->kin);
    add_into(g->ybar, g->kin, g->n);
}

/* g->kin = the cotangent of f(t_{n+1}, y_{n+1}) through the previous step's
 * dense output (record rec is step n + 1); 0 when nothing was interpolated
 * there, or the method hands nothing on. Uses g->wobs. */
static int handed_on(NdGradient *g, const nd_real *rec)
{
    NdStepObs o;
    o.t = rec[ND_REC_PREV_T], o.h = rec[ND_REC_PREV_H];
    o.lo = (int)rec[ND_REC_PREV_LO], o.hi = (int)rec[ND_REC_PREV_HI];
    if (!g->fsal_handoff || o.h == 0.0 || o.hi == o.lo)
        return 0;
    observation_weights(g, &o, g->wobs);
    observed_cotangent(g, &o, g->wobs, g->fwd->tab->fnew_stage, g->kin);
    return 1;
}

/* Takes ybar from y_{n+1} (plus the loss's dL/dy at observations the step
 * lands on or interpolates) back to y_n, adding the parameter terms into grad_p. */
static void sweep_record(NdGradient *g, const nd_real *rec, int at_event)
{
    const NdTableau *tab = g->fwd->tab;
    nd_real t = rec[ND_REC_T], h = rec[ND_REC_H], t_new = rec[ND_REC_TNEW];
    NdStepObs o;
    o.t = t, o.h = h, o.lo = (int)rec[ND_REC_LO], o.hi = (int)rec[ND_REC_HI];
    int land = (int)rec[ND_REC_LAND], inside = o.hi > o.lo;
    if (land >= 0)
        add_into(g->ybar, g->obs_gy + (size_t)land * g->n, g->n);
    if (inside && g->fsal_handoff && land == g->loss->nt - 1) {
        observation_weights(g, &o, g->wobs);
        last_fsal_stage(g, &o);
    }
    /* after an event, k_0 is f at the state after it, not the last step's f */
    int handoff = !at_event && handed_on(g, rec);
    if (inside)
        observation_weights(g, &o, g->wobs);
    for (int q = g->nslot - 1; q >= 0; q--) {
        if (!slot_used(g, q, inside))
            continue;
        stage_cotangent(g, q, &o, h, handoff);
        stage_vjp(g, nd_stage_time(tab, g->slot[q], t, h, t_new),
                  rec + ND_REC_HEAD + (size_t)q * g->n, g->Ybar[q]);
    }
    for (int q = 0; q < g->nslot; q++)
        if (slot_used(g, q, inside))
            add_into(g->ybar, g->Ybar[q], g->n);
    for (int j = o.lo; j < o.hi; j++)
        add_into(g->ybar, g->obs_gy + (size_t)j * g->n, g->n);
}

/* ---- bdf ---- */

void nd_backprop_record_bdf(void *ctx, NdSolver *s, const NdBdfStep *st, const nd_real *y_new)
{
    NdGradient *g = (NdGradient *)ctx;
    (void)s;
    int obs = -1;
    if (g->next_obs < g->loss->nt && st->t_new == g->loss->ts[g->next_obs])
        obs = g->next_obs++;
    if (!g->recording)
        return;
    nd_real *rec = tape_push(g);
    if (!rec) {
        g->tape_failed = 1;
        return;
    }
    rec[0] = st->t, rec[1] = st->h, rec[2] = st->t_new, rec[3] = obs;
    rec[4] = st->h_from, rec[5] = st->order;
    memcpy(rec + ND_BDF_REC_HEAD, y_new, g->n * sizeof *y_new);
}

/* One step back: kbar holds w, ybar the cotangent through the predictor. */
static int sweep_record_bdf(NdGradient *g, const nd_real *rec)
{
    NdBdfStep st = {.t = rec[0], .h = rec[1], .t_new = rec[2], .h_from = rec[4],
                    .order = (int)rec[5]};
    const nd_real *y_new = rec + ND_BDF_REC_HEAD;
    int obs = (int)rec[3];
    if (obs >= 0)
        add_into(g->Dbar, g->obs_gy + (size_t)obs * g->n, g->n);
    nd_real c;
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
    nd_real h0 = g->bdf_h0;
    const nd_real *Dbar1 = g->Dbar + g->n;
    for (size_t e = 0; e < g->n; e++)
        g->kbar[e] = h0 * Dbar1[e];
    g->k.vjp(g->loss->ts[0], g->obs_y, g->p, g->kbar, NULL, g->ybar, g->pbar, g->B, g->work);
    g->vjp_evals++;
    add_into(g->grad_p, g->pbar, (size_t)g->np);
    add_into(g->ybar, g->Dbar, g->n);
}

/* ---- events ---- */

/* 1 when record rec starts at the time of the latest event not yet swept:
 * the step before it was redone to land on the event, whose resets apply
 * between the two. */
static int starts_at_event(const NdGradient *g, const nd_real *rec)
{
    nd_real t = 0;
    if (g->k.n_events == 0 || g->ev_next < 0)
        return 0;
    nd_solver_get_event(g->fwd, g->ev_next, NULL, NULL, &t, NULL, NULL);
    return rec[ND_REC_T] == t;
}

/* ybar, the cotangent of the state after the events at rec's start t*, jumps
 * to that of the state before them (nd_event_jump, once per logged event
 * there). The step that landed on t* ended at the state before: when its
 * dense output interpolated an observation, it read f(t*, x-), which with
 * FSAL would have been this step's k_0 but is not after a reset (the method
 * restarts with f(t*, x+)): its own vjp, at x- (rec's k_0 argument, x+, with
 * the event samples' rows put back to their x-). */
static int event_boundary(NdGradient *g, const nd_real *rec)
{
    nd_real t = rec[ND_REC_T], te = 0;
    size_t ny = (size_t)g->k.ny;
    memcpy(g->ycur, rec + ND_REC_HEAD, g->n * sizeof *g->ycur); /* slot 0: y itself */
    for (; g->ev_next >= 0; g->ev_next--) {
        int64_t b = 0;
        const nd_real *xm = NULL;
        nd_solver_get_event(g->fwd, g->ev_next, &b, NULL, &te, &xm, NULL);
        if (te != t)
            break;
        int st = nd_event_jump(g, g->ev_next, g->ybar, g->grad_p);
        if (st)
            return st;
        memcpy(g->ycur + (size_t)b * ny, xm, ny * sizeof *g->ycur);
    }
    NdStepObs o;
    o.t = rec[ND_REC_PREV_T], o.h = rec[ND_REC_PREV_H];
    o.lo = (int)rec[ND_REC_PREV_LO], o.hi = (int)rec[ND_REC_PREV_HI];
    if (!g->fsal_handoff || o.h == 0.0 || o.hi == o.lo)
        return ND_OK;
    observation_weights(g, &o, g->wobs);
    observed_cotangent(g, &o, g->wobs, g->fwd->tab->fnew_stage, g->kbar);
    stage_vjp(g, t, g->ycur, g->kin);
    add_into(g->ybar, g->kin, g->n);
    return ND_OK;
}

static int sweep_tape(NdGradient *g)
{
    for (size_t off = g->tape_len; off > g->tape_base; off -= g->rec_size) {
        const nd_real *rec = g->tape + off - g->rec_size;
        if (g->implicit) {
            if (sweep_record_bdf(g, rec))
                return ND_ERR_NONFINITE;
            continue;
        }
        if (g->verlet || g->sde) {
            if (g->verlet)
                nd_backprop_verlet_sweep(g, rec);
            else
                nd_backprop_sde_sweep(g, rec);
            continue;
        }
        int at_event = starts_at_event(g, rec);
        sweep_record(g, rec, at_event);
        int st = at_event ? event_boundary(g, rec) : ND_OK;
        if (st)
            return st;
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
static void finish(NdGradient *g, nd_real *grad_y0)
{
    if (g->implicit)
        finish_bdf(g);
    add_into(g->ybar, g->obs_gy, g->n);
    if (grad_y0)
        memcpy(grad_y0, g->ybar, g->n * sizeof *grad_y0);
}

int nd_backprop_backward(NdGradient *g, nd_real *grad_y0)
{
    start_sweep(g);
    g->ev_next = g->k.n_events > 0 ? nd_solver_get_num_events(g->fwd) - 1 : -1;
    int st = sweep_tape(g);
    if (!st)
        finish(g, grad_y0);
    return st;
}

/* ---- checkpoints ---- */

static int ckpt_grow(NdGradient *g)
{
    size_t cap = g->ck_cap ? 2 * g->ck_cap : ND_CKPT_MIN;
    NdCursor *ck = (NdCursor *)realloc(g->ck, cap * sizeof *ck);
    if (!ck)
        return ND_ERR_MEMORY;
    g->ck = ck;
    nd_real *ck_y = (nd_real *)realloc(g->ck_y, cap * g->ck_row * sizeof *ck_y);
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
int nd_replay_segment(NdGradient *g, size_t i, long end)
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

int nd_checkpoint_backward(NdGradient *g, nd_real *grad_y0)
{
    start_sweep(g);
    for (size_t i = g->ck_count; i-- > 0;) {
        long end = i + 1 < g->ck_count ? g->ck[i + 1].step : g->num_steps;
        int st = nd_replay_segment(g, i, end);
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
