/* Gradients of a loss through an ODE solve (nd_gradient.h): the object, the
 * forward pass all three paths share, the loss calls and the dispatch to the
 * backward passes of nd_adjoint.c and nd_backprop.c.
 *
 * The forward pass is nd_solve's: fixed-step methods step onto every
 * observation time (steps of h, the last of each interval shortened), adaptive
 * ones step freely and interpolate the observations with their dense output,
 * so observations cost no steps (torchdiffeq's behaviour). The interpolant is
 * linear in the step's y and stages, so backprop differentiates through it
 * (nd_backprop.c); the three paths see the very same forward values. bdf
 * (nd_bdf.c) lands on each observation; its controller lives in the solver,
 * so its checkpoints are snapshots. */
#include "nd_gradient.h"

#include "nd_real.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_events.h"
#include "nd_grad_internal.h"
#include "nd_sde.h"
#include "nd_verlet.h"

/* As nd_solver.c: an interval needing more steps than this is a mistake. */
#define ND_MAX_STEPS_PER_INTERVAL 1e15

int nd_grad_fail(NdGradient *g, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->message, sizeof g->message, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- create / free ---- */

/* reached[i] for the first m stages: stage i's derivative enters the weights
 * `direct` (b, or the dense output's), or a later reached stage's argument. */
static void reach_stages(const NdTableau *tab, int m, const int *direct, int *reached)
{
    for (int i = m - 1; i >= 0; i--) {
        reached[i] = direct[i];
        for (int j = i + 1; j < m; j++)
            if (reached[j] && tab->a[j][i] != 0.0)
                reached[i] = 1;
    }
}

/* The record's slots (nd_grad_internal.h): the stages reaching y_{n+1}, and
 * for adaptive methods those the dense output reaches (its weights at two
 * generic theta tell which it reads). */
static void find_slots(NdGradient *g)
{
    const NdTableau *tab = g->fwd->tab;
    int m = tab->stages, inb[ND_RK_MAX_STAGES] = {0}, indense[ND_RK_MAX_STAGES] = {0};
    int live[ND_RK_MAX_STAGES] = {0}, dense[ND_RK_MAX_STAGES] = {0};
    for (int i = 0; i < m; i++)
        inb[i] = tab->b[i] != 0.0;
    reach_stages(tab, m, inb, live);
    if (g->adaptive) {
        nd_real w1[ND_RK_MAX_STAGES], w2[ND_RK_MAX_STAGES];
        nd_dense_weights(tab, 0.3, w1);
        nd_dense_weights(tab, 0.7, w2);
        m = tab->dense_stages;
        for (int i = 0; i < m; i++)
            indense[i] = w1[i] != 0.0 || w2[i] != 0.0;
        reach_stages(tab, m, indense, dense);
        g->fsal_handoff = tab->fsal && tab->dense_stages == tab->stages;
        if (g->fsal_handoff) /* its argument is y_{n+1}: the next step's k_0 takes it */
            dense[tab->fnew_stage] = 0;
    }
    g->nslot = 0;
    for (int i = 0; i < m; i++)
        if (live[i] || dense[i]) {
            g->slot[g->nslot] = i;
            g->always[g->nslot++] = live[i];
        }
}

/* One block for every vector whose size does not depend on the step count. */
static int carve_workspace(NdGradient *g)
{
    size_t n = g->n, rows = (size_t)g->max_nt * n, np = (size_t)g->np;
    size_t dbar = g->implicit ? ND_BDF_ROWS * n : 0;
    size_t wobs = (size_t)g->max_nt * ND_RK_MAX_STAGES;
    size_t ev = g->k.n_events > 0 ? 4 * (size_t)g->k.ny + np : 0;
    size_t total = 2 * rows + (4 + (size_t)g->nslot) * n + np + 2 * (2 * n + np) + dbar + wobs +
                   ev + nd_kernels_work_size(&g->k, g->B);
    g->block = (nd_real *)calloc(total, sizeof(nd_real)); /* casts: emit-c compiles as C++ */
    if (!g->block)
        return ND_ERR_MEMORY;
    g->block_doubles = total;
    nd_real *q = g->block;
    g->obs_y = q, q += rows;
    g->obs_gy = q, q += rows;
    g->ycur = q, q += n;
    g->ybar = q, q += n;
    g->kbar = q, q += n;
    g->kin = q, q += n;
    for (int i = 0; i < g->nslot; i++)
        g->Ybar[i] = q, q += n;
    g->wobs = q, q += wobs;
    g->pbar = q, q += np;
    g->z = q, q += 2 * (2 * n + np);
    g->Dbar = q, q += dbar;
    g->ev_buf = q, q += ev;
    g->work = q;
    return ND_OK;
}

static int gradient_init(NdGradient *g, const NdSolver *tmpl)
{
    g->fwd = nd_solver_create_like(tmpl, &g->k, g->B);
    if (!g->fwd)
        return ND_ERR_MEMORY;
    g->fwd->on_step = nd_backprop_record;
    g->fwd->hook_ctx = g;
    g->n = g->fwd->n;
    g->implicit = nd_method_is_implicit(tmpl->method);
    g->adaptive = nd_method_is_adaptive(tmpl->method) && !g->implicit;
    g->verlet = tmpl->method == ND_VERLET;
    g->sde = nd_method_is_sde(tmpl->method);
    g->ck_row = g->n;
    if (g->implicit) { /* no stages: a record holds y_new */
        nd_bdf_set_hook(g->fwd, nd_backprop_record_bdf, g);
        g->rec_size = ND_BDF_REC_HEAD + g->n;
        g->ck_row = nd_bdf_snapshot_doubles(g->fwd);
    } else if (g->verlet || g->sde) { /* two vectors per step: nd_backprop_verlet.c, _sde.c */
        g->nslot = 2;
        g->slot[0] = 0, g->slot[1] = 1;
        g->always[0] = g->always[1] = 1;
        g->rec_size = ND_REC_HEAD + 2 * g->n;
        if (g->verlet && nd_verlet_check(g->fwd))
            return ND_ERR_UNSUPPORTED;
    } else {
        find_slots(g);
        g->rec_size = ND_REC_HEAD + (size_t)g->nslot * g->n;
    }
    int st = carve_workspace(g);
    if (!st && g->gm == ND_GRAD_ADJOINT)
        st = nd_adjoint_setup(g, tmpl);
    return st;
}

/* Per sample (nd_grad_internal.h): the gradient of one sample, and the
 * batch's observation rows, one per-sample bdf initial step, and where each
 * sample's records end on one's tape. */
static int per_sample_init(NdGradient *g, const NdSolver *tmpl)
{
    g->one = nd_gradient_create(&g->k, tmpl, g->gm, 1, g->max_nt);
    if (!g->one)
        return ND_ERR_MEMORY;
    g->implicit = g->one->implicit;
    g->adaptive = g->one->adaptive;
    g->n = (size_t)g->B * (size_t)g->k.ny;
    size_t rows = (size_t)g->max_nt * g->n, total = 2 * rows + (size_t)g->B;
    g->block = (nd_real *)calloc(total, sizeof(nd_real));
    g->seg_end = (size_t *)calloc((size_t)g->B, sizeof *g->seg_end);
    if (!g->block || !g->seg_end)
        return ND_ERR_MEMORY;
    g->block_doubles = total;
    g->obs_y = g->block;
    g->obs_gy = g->block + rows;
    g->h_init = g->block + 2 * rows;
    return ND_OK;
}

/* Gradients through event times (nd_adjoint.c, nd_backprop.c): the adjoint
 * or backprop with an explicit solver (adaptive or fixed step) of a batch stepped together, every event a reset with its
 * gradient kernels, no shared block (events reset the model's own layout). */
static int events_supported(const NdKernels *k, const NdSolver *tmpl, NdGradMethod gm,
                            int64_t B)
{
    if (gm == ND_GRAD_CHECKPOINT || k->ns > 0 || nd_method_is_implicit(tmpl->method) ||
        (tmpl->step_control == ND_STEP_PER_SAMPLE && B > 1))
        return 0;
    for (int e = 0; e < k->n_events; e++)
        if (k->events[e].terminate || !k->events[e].cond_grad || !k->events[e].reset_vjp)
            return 0;
    return 1;
}

NdGradient *nd_gradient_create(const NdKernels *k, const NdSolver *solver_template,
                               NdGradMethod gm, int64_t B, int max_nt)
{
    if (!k || !k->rhs || !k->vjp || !solver_template || B < 1 || max_nt < 2)
        return NULL;
    if (gm != ND_GRAD_ADJOINT && gm != ND_GRAD_BACKPROP && gm != ND_GRAD_CHECKPOINT)
        return NULL;
    /* the implicit gradients follow bdf's steps (its tape and its adjoint) */
    if (!nd_method_has_gradient(solver_template->method))
        return NULL;
    if (k->n_events > 0 && !events_supported(k, solver_template, gm, B))
        return NULL;
    /* verlet's adjoint would be a first-order backward solve of [y; a; g]; the
     * SDE methods' checkpoints would need W(t) at each; their gradients need
     * the diffusion's vjps */
    if (solver_template->method == ND_VERLET && gm == ND_GRAD_ADJOINT)
        return NULL;
    if (nd_method_is_sde(solver_template->method) &&
        (gm != ND_GRAD_BACKPROP || solver_template->step_control == ND_STEP_PER_SAMPLE ||
         (k->diffusion && !k->diffusion_vjp) || (k->diffusion_dx && !k->diffusion_dx_vjp) ||
         k->n_events > 0 || k->ns > 0))
        return NULL;
    NdGradient *g = (NdGradient *)calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->k = *k;
    g->gm = gm;
    g->B = B;
    g->max_nt = max_nt;
    g->np = k->np;
    int per_sample = solver_template->step_control == ND_STEP_PER_SAMPLE && B > 1;
    if (per_sample ? per_sample_init(g, solver_template) : gradient_init(g, solver_template)) {
        nd_gradient_free(g);
        return NULL;
    }
    return g;
}

void nd_gradient_free(NdGradient *g)
{
    if (!g)
        return;
    nd_solver_free(g->fwd);
    nd_solver_free(g->aug);
    nd_backprop_free(g);
    nd_gradient_free(g->one);
    free(g->seg_end);
    free(g->block);
    free(g);
}

/* ---- the forward pass, one accepted step at a time ---- */

/* The step count of interval j, after checking h can cover it. */
static int interval_begin(NdGradient *g, NdCursor *c)
{
    const nd_real *ts = g->loss->ts;
    nd_real span = fabs(ts[c->j + 1] - ts[c->j]), h = g->fwd->h;
    if (span / h > ND_MAX_STEPS_PER_INTERVAL)
        return nd_grad_fail(g, ND_ERR_ARG, "forward solve: step h = %g is too small for the "
                            "interval [%g, %g]", h, ts[c->j], ts[c->j + 1]);
    c->k = 0;
    c->nk = nd_fixed_steps(span, h);
    return ND_OK;
}

int nd_grad_cursor_begin(NdGradient *g, NdCursor *c, const nd_real *y0)
{
    const NdLoss *loss = g->loss;
    memset(c, 0, sizeof *c);
    memset(&g->prev, 0, sizeof g->prev);
    g->next_obs = 1;
    if (g->implicit) {
        int st = nd_bdf_begin(g->fwd, g->p, y0, loss->ts, loss->nt, g->obs_y, 1);
        return st ? nd_grad_fail(g, st, "forward solve: %s", g->fwd->message) : ND_OK;
    }
    if (g->adaptive) {
        int st = nd_adaptive_begin(&c->run, g->fwd, g->p, y0, loss->ts, loss->nt, g->obs_y,
                                   g->land);
        return st ? nd_grad_fail(g, st, "forward solve: %s", g->fwd->message) : ND_OK;
    }
    int st = nd_fixed_check_steps(g->fwd, loss->ts, loss->nt);
    if (st)
        return nd_grad_fail(g, st, "forward solve: %s", g->fwd->message);
    memcpy(g->ycur, y0, g->n * sizeof *y0);
    memcpy(g->obs_y, y0, g->n * sizeof *y0);
    g->fwd->fsal_ok = 0; /* verlet: a_0 is this solve's, at these parameters */
    if (g->sde && (st = nd_sde_begin(g->fwd, loss->ts, loss->nt)) != ND_OK)
        return nd_grad_fail(g, st, "forward solve: %s", g->fwd->message);
    if (g->fwd->ev && (st = nd_events_begin(g->fwd, g->p, loss->ts[0], y0)) != ND_OK)
        return nd_grad_fail(g, st, "forward solve: %s", g->fwd->message);
    return interval_begin(g, c);
}

static int check_finite(NdGradient *g, const nd_real *y, nd_real t, nd_real t_prev)
{
    long i = nd_first_nonfinite(y, g->n);
    if (i < 0)
        return ND_OK;
    char at[ND_ELEMENT_TEXT];
    return nd_grad_fail(g, ND_ERR_NONFINITE,
                        "forward solve: %s became %s at t = %.10g (last finite at t = %.10g)",
                        nd_solver_element(g->fwd, i, at, sizeof at), nd_nonfinite_word(y[i]), t,
                        t_prev);
}

/* Step k + 1 of interval j ends at t0 + (k + 1) h, the last one at t1 exactly
 * (the grid of nd_solve's fixed-step engine). */
static int fixed_step(NdGradient *g, NdCursor *c)
{
    const nd_real *ts = g->loss->ts;
    nd_real t0 = ts[c->j], t1 = ts[c->j + 1], hd = t1 > t0 ? g->fwd->h : -g->fwd->h;
    nd_real t = c->shifted ? c->t_from : t0 + (nd_real)c->k * hd;
    nd_real t_new = c->k + 1 == c->nk ? t1 : t0 + (nd_real)(c->k + 1) * hd;
    NdEvents *ev = g->fwd->ev;
    size_t tape_at = g->tape_len;
    NdStepObs prev = g->prev;
    int next_obs = g->next_obs;
    if (ev)
        memcpy(ev->ysave, g->ycur, g->n * sizeof *g->ycur);
    if (g->verlet)
        nd_verlet_step(g->fwd, g->p, t, t_new, g->ycur);
    else if (g->sde)
        nd_sde_step(g->fwd, g->p, t, t_new, g->ycur);
    else
        nd_rk_step(g->fwd, g->p, t, t_new, g->ycur);
    int st = check_finite(g, g->ycur, t_new, t);
    if (st)
        return st;
    c->shifted = 0;
    if (ev) { /* as nd_events_fixed_interval: redo the step onto an event inside it */
        nd_real t_at = nd_events_fixed_locate(g->fwd, g->p, t, t_new, g->ycur);
        if (!isnan(t_at) && t_at != t_new) {
            memcpy(g->ycur, ev->ysave, g->n * sizeof *g->ycur);
            g->fwd->num_steps--;
            g->tape_len = tape_at; /* the record of the step not taken */
            g->prev = prev;
            g->next_obs = next_obs;
            nd_rk_step(g->fwd, g->p, t, t_at, g->ycur);
            if ((st = check_finite(g, g->ycur, t_at, t)) != ND_OK)
                return st;
            c->shifted = 1; /* the grid step k + 1 is still to finish, from t_at */
            c->t_from = t_at;
        }
        if (!isnan(t_at) && (st = nd_events_apply(g->fwd, g->p, t_at, g->ycur)) != ND_OK)
            return nd_grad_fail(g, st, "forward solve: %s", g->fwd->message);
        if (c->shifted)
            return ND_OK;
    }
    if (++c->k < c->nk)
        return ND_OK;
    memcpy(g->obs_y + (size_t)(c->j + 1) * g->n, g->ycur, g->n * sizeof *g->ycur);
    c->j++;
    return c->j + 1 < g->loss->nt ? interval_begin(g, c) : ND_OK;
}

static int adaptive_step(NdGradient *g, NdCursor *c)
{
    long before = g->fwd->num_steps;
    int st = ND_OK;
    while (!st && g->fwd->num_steps == before)
        st = g->implicit ? nd_bdf_attempt(g->fwd) : nd_adaptive_attempt(&c->run);
    return st ? nd_grad_fail(g, st, "forward solve: %s", g->fwd->message) : ND_OK;
}

int nd_grad_cursor_step(NdGradient *g, NdCursor *c)
{
    int st = g->adaptive || g->implicit ? adaptive_step(g, c) : fixed_step(g, c);
    if (!st && g->tape_failed)
        st = nd_grad_fail(g, ND_ERR_MEMORY, "out of memory growing the tape at step %ld",
                          c->step);
    c->step++;
    c->prev = g->prev;
    return st;
}

int nd_grad_cursor_done(const NdGradient *g, const NdCursor *c)
{
    if (g->implicit)
        return nd_bdf_next_output(g->fwd) >= g->loss->nt;
    return g->adaptive ? c->run.j >= g->loss->nt : c->j + 1 >= g->loss->nt;
}

void nd_grad_cursor_save(NdGradient *g, nd_real *state)
{
    if (g->implicit)
        nd_bdf_save(g->fwd, state);
    else
        memcpy(state, g->adaptive ? g->fwd->y : g->ycur, g->n * sizeof *state);
}

void nd_grad_cursor_resume(NdGradient *g, NdCursor *c, const NdCursor *saved,
                           const nd_real *state)
{
    *c = *saved;
    g->prev = saved->prev;
    if (g->implicit)
        nd_bdf_restore(g->fwd, state);
    else if (g->adaptive)
        nd_adaptive_resume(&c->run, &saved->run, state);
    else
        memcpy(g->ycur, state, g->n * sizeof *state);
    g->fwd->fsal_ok = 0; /* verlet: K[0] is not the resumed step's a_0 */
}

/* The whole forward solve: backprop records every step (the hook), checkpoint
 * and the bdf adjoint keep cursors (nd_checkpoint_push thins them as the count
 * grows). */
static int forward(NdGradient *g, const nd_real *y0)
{
    NdCursor c;
    g->tape_len = g->tape_base;
    g->ck_count = 0;
    g->ck_every = 1;
    /* the bdf adjoint reads y(t) from forward steps replayed between
     * checkpoints (nd_adjoint.c), as the checkpoint gradient does */
    int keep = g->gm == ND_GRAD_CHECKPOINT || (g->gm == ND_GRAD_ADJOINT && g->implicit);
    g->recording = g->gm == ND_GRAD_BACKPROP;
    int st = nd_grad_cursor_begin(g, &c, y0);
    if (!st && keep)
        st = nd_checkpoint_push(g, &c);
    while (!st && !nd_grad_cursor_done(g, &c)) {
        st = nd_grad_cursor_step(g, &c);
        if (!st && keep && c.step % g->ck_every == 0)
            st = nd_checkpoint_push(g, &c);
    }
    g->recording = 0;
    g->num_steps = c.step;
    if (g->implicit)
        g->bdf_h0 = nd_bdf_initial_step(g->fwd);
    return st;
}

/* ---- the loss and the compute ---- */

static int call_losses(NdGradient *g, nd_real *L)
{
    const NdLoss *loss = g->loss;
    *L = 0.0;
    memset(g->obs_gy, 0, (size_t)loss->nt * g->n * sizeof *g->obs_gy);
    for (int j = 0; j < loss->nt; j++) {
        size_t row = (size_t)j * g->n;
        int st = loss->fn(loss->ctx, j, loss->ts[j], g->obs_y + row, g->p, L, g->obs_gy + row,
                          g->grad_p);
        if (st < 0)
            return nd_grad_fail(g, st, "the loss returned status %d at observation %d (t = %g)",
                                st, j, loss->ts[j]);
    }
    return ND_OK;
}

static int grad_check_times(NdGradient *g, const NdLoss *loss)
{
    if (!loss->ts || !loss->fn || loss->nt < 2 || loss->nt > g->max_nt)
        return nd_grad_fail(g, ND_ERR_ARG, "the loss needs times, a callback and 2 to %d "
                            "observations, got %d", g->max_nt, loss->nt);
    const nd_real *ts = loss->ts;
    nd_real dir = ts[1] > ts[0] ? 1.0 : -1.0;
    for (int j = 0; j < loss->nt; j++)
        if (!isfinite(ts[j]) || (j > 0 && !((ts[j] - ts[j - 1]) * dir > 0)))
            return nd_grad_fail(g, ND_ERR_ARG, "observation times must be finite and strictly "
                                "monotone: t[%d] = %g", j, ts[j]);
    return ND_OK;
}

static int grad_check_args(NdGradient *g, const nd_real *p, const nd_real *y0, const NdLoss *loss,
                      const nd_real *L, const nd_real *grad_p)
{
    if (!y0 || !loss || !L || (!grad_p && g->np > 0) || (!p && g->np > 0))
        return nd_grad_fail(g, ND_ERR_ARG, "p, y0, loss, L and grad_p must not be NULL");
    if (!g->adaptive && !g->implicit && !(g->fwd->h > 0))
        return nd_grad_fail(g, ND_ERR_ARG, "fixed-step solver needs h (nd_solver_set_step)");
    int st = grad_check_times(g, loss);
    if (st)
        return st;
    long i = nd_first_nonfinite(y0, g->n);
    char at[ND_ELEMENT_TEXT];
    if (i >= 0)
        return nd_grad_fail(g, ND_ERR_NONFINITE, "the initial value of %s is %s",
                            nd_solver_element(g->fwd, i, at, sizeof at), nd_nonfinite_word(y0[i]));
    return ND_OK;
}

static int backward(NdGradient *g, nd_real *grad_y0)
{
    switch (g->gm) {
    case ND_GRAD_ADJOINT: return nd_adjoint_backward(g, grad_y0);
    case ND_GRAD_BACKPROP: return nd_backprop_backward(g, grad_y0);
    case ND_GRAD_CHECKPOINT: return nd_checkpoint_backward(g, grad_y0);
    }
    return ND_ERR_ARG;
}

/* ---- per-sample step control ---- */

static int per_sample_fail(NdGradient *g, int64_t b, int st)
{
    return nd_grad_fail(g, st, "sample %ld: %s", (long)b, g->one->message);
}

/* Sample b's rows of a batch's observation array (rows of B * ny) to or from
 * the rows of one sample (rows of ny). */
static void sample_rows(const NdGradient *g, int64_t b, nd_real *batch, nd_real *one,
                        int to_batch)
{
    size_t ny = (size_t)g->k.ny;
    for (int j = 0; j < g->loss->nt; j++) {
        nd_real *row = batch + ((size_t)j * (size_t)g->B + (size_t)b) * ny, *r1 = one + j * ny;
        memcpy(to_batch ? row : r1, to_batch ? r1 : row, ny * sizeof *row);
    }
}

/* The arguments and each sample's initial state, named as "sample b: ...". */
static int per_sample_check(NdGradient *g, const nd_real *p, const nd_real *y0,
                            const NdLoss *loss, const nd_real *L, const nd_real *grad_p)
{
    if (!y0 || !loss || !L || (!grad_p && g->np > 0) || (!p && g->np > 0))
        return nd_grad_fail(g, ND_ERR_ARG, "p, y0, loss, L and grad_p must not be NULL");
    int st = grad_check_times(g, loss);
    size_t ny = (size_t)g->k.ny;
    for (int64_t b = 0; !st && b < g->B; b++) {
        const nd_real *y = y0 + (size_t)b * ny;
        long i = nd_first_nonfinite(y, ny);
        char at[ND_ELEMENT_TEXT];
        g->one->fwd->sample = (long)b;
        if (i >= 0)
            st = nd_grad_fail(g, ND_ERR_NONFINITE, "sample %ld: the initial value of %s is %s",
                              (long)b, nd_solver_element(g->one->fwd, i, at, sizeof at),
                              nd_nonfinite_word(y[i]));
    }
    return st;
}

/* one's compute-wide state, as nd_gradient_compute sets its own. */
static void per_sample_begin(NdGradient *g)
{
    NdGradient *o = g->one;
    o->message[0] = '\0';
    o->rhs_evals = o->vjp_evals = o->fwd_evals = 0;
    o->peak_extra = 0;
    o->tape_failed = 0;
    o->tape_base = 0;
    o->fwd->num_rhs_evals = o->fwd->num_steps = o->fwd->num_rejected = 0;
    o->p = g->p, o->loss = g->loss, o->grad_p = g->grad_p, o->dir = g->dir;
    o->seminorm = g->seminorm, o->land = g->land;
    o->param_namer = g->param_namer, o->param_namer_ctx = g->param_namer_ctx;
}

/* Every sample's forward pass, its observations into the batch's rows;
 * backprop keeps each sample's records on one's tape, one after another. */
static int per_sample_forward(NdGradient *g, const nd_real *y0)
{
    NdGradient *o = g->one;
    g->num_steps = 0;
    for (int64_t b = 0; b < g->B; b++) {
        o->fwd->sample = (long)b;
        int st = forward(o, y0 + (size_t)b * (size_t)g->k.ny);
        if (st)
            return per_sample_fail(g, b, st);
        g->num_steps += o->num_steps;
        g->seg_end[b] = o->tape_len;
        if (g->gm == ND_GRAD_BACKPROP)
            o->tape_base = o->tape_len;
        g->h_init[b] = o->bdf_h0;
        sample_rows(g, b, g->obs_y, o->obs_y, 1);
    }
    return ND_OK;
}

/* Each sample's backward pass with its rows of dL/dy, last sample first:
 * its forward pass is the one still in one. Checkpoints (the checkpoint
 * gradient's and the bdf adjoint's) hold one sample's at a time, so the
 * other samples run their forward pass again first (the same steps, bit
 * for bit); backprop sweeps the sample's own records. */
static int per_sample_backward(NdGradient *g, const nd_real *y0, nd_real *grad_y0)
{
    NdGradient *o = g->one;
    size_t ny = (size_t)g->k.ny;
    int keep = g->gm == ND_GRAD_CHECKPOINT || (g->gm == ND_GRAD_ADJOINT && g->implicit);
    for (int64_t b = g->B; b-- > 0;) {
        o->fwd->sample = (long)b;
        int st = keep && b + 1 < g->B ? forward(o, y0 + (size_t)b * ny) : ND_OK;
        if (st)
            return per_sample_fail(g, b, st);
        sample_rows(g, b, g->obs_y, o->obs_y, 0);
        sample_rows(g, b, g->obs_gy, o->obs_gy, 0);
        if (g->gm == ND_GRAD_BACKPROP) {
            o->tape_base = b > 0 ? g->seg_end[b - 1] : 0;
            o->tape_len = g->seg_end[b];
        }
        o->bdf_h0 = g->h_init[b];
        st = backward(o, grad_y0 ? grad_y0 + (size_t)b * ny : NULL);
        if (st)
            return per_sample_fail(g, b, st);
    }
    o->tape_base = 0;
    return ND_OK;
}

/* All the samples' forward passes, the loss once per observation over the
 * whole batch (nd_gradient.h: separable), then each sample's backward pass:
 * sample b's gradient is its own solve's. */
static int per_sample_compute(NdGradient *g, const nd_real *p, const nd_real *y0,
                              const NdLoss *loss, nd_real *L, nd_real *grad_p, nd_real *grad_y0)
{
    int st = per_sample_check(g, p, y0, loss, L, grad_p);
    if (st)
        return st;
    g->p = p, g->loss = loss, g->grad_p = grad_p;
    g->dir = loss->ts[1] > loss->ts[0] ? 1.0 : -1.0;
    if (g->np > 0)
        memset(grad_p, 0, (size_t)g->np * sizeof *grad_p);
    per_sample_begin(g);
    NdGradient *o = g->one;
    st = per_sample_forward(g, y0);
    g->fwd_evals = o->fwd->num_rhs_evals;
    if (!st)
        st = call_losses(g, L);
    if (!st)
        st = per_sample_backward(g, y0, grad_y0);
    g->rhs_evals = o->rhs_evals + o->fwd->num_rhs_evals;
    g->vjp_evals = o->vjp_evals;
    g->peak_extra = o->peak_extra;
    return st;
}

int nd_gradient_compute(NdGradient *g, const nd_real *p, const nd_real *y0, const NdLoss *loss,
                        nd_real *L, nd_real *grad_p, nd_real *grad_y0)
{
    if (!g)
        return ND_ERR_ARG;
    g->message[0] = '\0';
    g->rhs_evals = g->vjp_evals = g->fwd_evals = 0;
    g->peak_extra = 0;
    g->tape_failed = 0;
    if (g->one)
        return per_sample_compute(g, p, y0, loss, L, grad_p, grad_y0);
    g->fwd->num_rhs_evals = g->fwd->num_steps = g->fwd->num_rejected = 0;
    int st = grad_check_args(g, p, y0, loss, L, grad_p);
    if (st)
        return st;
    g->p = p;
    g->loss = loss;
    g->grad_p = grad_p;
    g->dir = loss->ts[1] > loss->ts[0] ? 1.0 : -1.0;
    if (g->np > 0)
        memset(grad_p, 0, (size_t)g->np * sizeof *grad_p);
    st = forward(g, y0);
    g->fwd_evals = g->fwd->num_rhs_evals;
    if (!st)
        st = call_losses(g, L);
    if (!st)
        st = backward(g, grad_y0);
    g->rhs_evals += g->fwd->num_rhs_evals;
    return st;
}

/* ---- settings and counters ---- */

int nd_gradient_set_param_namer(NdGradient *g, NdElementNamer name, void *ctx)
{
    if (!g)
        return ND_ERR_ARG;
    g->param_namer = name;
    g->param_namer_ctx = ctx;
    return ND_OK;
}

int nd_gradient_set_brownian(NdGradient *g, uint64_t seed)
{
    if (!g)
        return ND_ERR_ARG;
    if (g->one || !g->sde)
        return nd_grad_fail(g, ND_ERR_ARG, "the gradient draws no Brownian path (euler_maruyama "
                            "and milstein do)");
    g->fwd->brownian_seed = seed;
    return ND_OK;
}

int nd_gradient_set_seminorm(NdGradient *g, int on)
{
    if (!g)
        return ND_ERR_ARG;
    if (g->gm != ND_GRAD_ADJOINT)
        return nd_grad_fail(g, ND_ERR_ARG, "the seminorm applies to the adjoint only");
    g->seminorm = on != 0;
    return ND_OK;
}

/* The counters and the last message, one line each (as nd_solver.c's). */
const char *nd_gradient_get_message(const NdGradient *g) { return g ? g->message : "no gradient"; }
long nd_gradient_get_num_rhs_evals(const NdGradient *g) { return g ? g->rhs_evals : 0; }
long nd_gradient_get_num_vjp_evals(const NdGradient *g) { return g ? g->vjp_evals : 0; }
long nd_gradient_get_num_forward_evals(const NdGradient *g) { return g ? g->fwd_evals : 0; }

long nd_gradient_get_num_backward_evals(const NdGradient *g)
{
    if (!g)
        return 0;
    long recomputed = g->rhs_evals - g->fwd_evals; /* adjoint: the augmented evaluations */
    return g->gm == ND_GRAD_ADJOINT ? recomputed : recomputed + g->vjp_evals;
}

size_t nd_gradient_get_peak_doubles(const NdGradient *g)
{
    if (!g)
        return 0;
    if (g->one)
        return g->block_doubles + nd_gradient_get_peak_doubles(g->one);
    size_t fixed = g->block_doubles + g->fwd->block_doubles;
    if (g->aug)
        fixed += g->aug->block_doubles;
    return fixed + g->peak_extra;
}
