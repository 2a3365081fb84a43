/* Events in the explicit engines (docs/language.md "Events"): after each
 * accepted step every condition g is evaluated at the step's end; where a
 * sample's g crossed zero in its event's direction, the crossing time is found
 * by the Illinois method (M. Dowell, P. Jarratt, BIT 11 (1971) 168-174: regula
 * falsi that halves the value kept at an end retained twice, superlinear and
 * always bracketing) on the step's interpolant: the method's dense output
 * (nd_dense.c), or for fixed-step methods the cubic Hermite interpolant of y and
 * f at both ends. The step is redone to land on the earliest crossing of the
 * batch, so the state at an event is a true step's; the events there are then
 * applied and logged. All memory is allocated at attach. */
#include "nd_events.h"

#include "nd_real.h"
#include <stdlib.h>
#include <string.h>

/* Event times are located to |dt| <= ND_EVENT_RTOL * max(1, |t|): far below any
 * step's error, within a few thousand ulps of t (in single precision, whose
 * ulp is 1.2e-7, within a few ulps). */
#ifdef ND_REAL_F32
#define ND_EVENT_RTOL 1e-6
#else
#define ND_EVENT_RTOL 1e-12
#endif
/* A step may hold two crossings (the ball rises from the floor and falls back
 * within one step, and right after a bounce g is 0 to rounding), which its ends
 * alone do not show: the interpolant is also sampled at this many interior
 * points (DifferentialEquations.jl's interp_points), and the first sign change
 * brackets the root. */
#define ND_EVENT_INTERP_POINTS 8
/* Illinois converges superlinearly; every third iteration bisects as well, so
 * this bound is never the reason it stops (2^-66 of the step). */
#define ND_EVENT_MAX_ITER 200

/* Half the promised distance: the root finder's bracket and the distance at
 * which a step's end counts as the event's time each take half. */
static nd_real event_tol(nd_real t)
{
    return 0.5 * ND_EVENT_RTOL * fmax(1.0, fabs(t));
}

/* ---- the workspace and its log ---- */

static int log_alloc(NdEvents *ev, long cap, size_t ny)
{
    NdEventRecord *log = (NdEventRecord *)calloc((size_t)cap, sizeof *log);
    nd_real *log_y = (nd_real *)calloc((size_t)cap * 2 * ny, sizeof *log_y);
    if (!log || !log_y) {
        free(log);
        free(log_y);
        return ND_ERR_MEMORY;
    }
    free(ev->log);
    free(ev->log_y);
    ev->log = log;
    ev->log_y = log_y;
    ev->cap = cap;
    ev->count = 0;
    return ND_OK;
}

int nd_events_attach(NdSolver *s)
{
    /* casts: emit-c compiles the runtime as C++ too */
    NdEvents *ev = (NdEvents *)calloc(1, sizeof *ev);
    if (!ev)
        return ND_ERR_MEMORY;
    s->ev = ev;
    size_t ne = (size_t)s->k.n_events, B = (size_t)s->B, n = s->n;
    ev->ne = s->k.n_events;
    ev->g_prev = (nd_real *)calloc(7 * ne * B + 4 * n + B, sizeof(nd_real));
    ev->fire = (unsigned char *)calloc(ne * B + B, 1);
    if (!ev->g_prev || !ev->fire || log_alloc(ev, ND_DEFAULT_MAX_EVENTS, (size_t)s->k.ny)) {
        nd_events_detach(s);
        return ND_ERR_MEMORY;
    }
    ev->g_new = ev->g_prev + ne * B;
    ev->t_root = ev->g_new + ne * B;
    ev->yt = ev->t_root + ne * B;
    ev->ysave = ev->yt + n;
    ev->f0 = ev->ysave + n;
    ev->f1 = ev->f0 + n;
    ev->gt = ev->f1 + n;
    ev->bracket = ev->gt + B;
    ev->frozen = ev->fire + ne * B;
    return ND_OK;
}

void nd_events_detach(NdSolver *s)
{
    NdEvents *ev = s ? s->ev : NULL;
    if (!ev)
        return;
    free(ev->g_prev);
    free(ev->fire);
    free(ev->log);
    free(ev->log_y);
    free(ev);
    s->ev = NULL;
}

int nd_solver_set_max_events(NdSolver *s, long max_events)
{
    if (!s)
        return ND_ERR_ARG;
    if (max_events < 1 || max_events > 100000000L)
        return nd_solver_fail(s, ND_ERR_ARG, "max_events must be from 1 to 1e8, got %ld",
                              max_events);
    if (!s->ev)
        return nd_solver_fail(s, ND_ERR_ARG, "the model has no events");
    return log_alloc(s->ev, max_events, (size_t)s->k.ny);
}

long nd_solver_get_num_events(const NdSolver *s)
{
    return s && s->ev ? s->ev->count : 0;
}

int nd_solver_get_event(const NdSolver *s, long i, int64_t *sample, int *event, nd_real *t,
                        const nd_real **y_before, const nd_real **y_after)
{
    if (!s || !s->ev || i < 0 || i >= s->ev->count)
        return ND_ERR_ARG;
    const NdEventRecord *rec = &s->ev->log[i];
    const nd_real *y = s->ev->log_y + (size_t)i * 2 * (size_t)s->k.ny;
    if (sample)
        *sample = rec->sample;
    if (event)
        *event = rec->event;
    if (t)
        *t = rec->t;
    if (y_before)
        *y_before = y;
    if (y_after)
        *y_after = y + s->k.ny;
    return ND_OK;
}

int nd_events_frozen_any(const NdSolver *s)
{
    return s->ev->n_frozen > 0;
}

void nd_events_freeze(const NdSolver *s, nd_real *dydt)
{
    size_t ny = (size_t)s->k.ny;
    for (int64_t b = 0; b < s->B; b++)
        if (s->ev->frozen[b])
            memset(dydt + (size_t)b * ny, 0, ny * sizeof *dydt);
}

void nd_events_freeze_jac(const NdSolver *s, nd_real *J)
{
    size_t block = (size_t)s->k.ny * (size_t)s->k.ny;
    for (int64_t b = 0; b < s->B; b++)
        if (s->ev->frozen[b])
            memset(J + (size_t)b * block, 0, block * sizeof *J);
}

/* ---- conditions ---- */

/* Every condition at (t, y) for the whole batch: g[e * B + b]. */
static void eval_conds(NdSolver *s, const nd_real *p, nd_real t, const nd_real *y, nd_real *g)
{
    for (int e = 0; e < s->ev->ne; e++)
        s->k.events[e].cond(t, y, p, NULL, NULL, g + (size_t)e * (size_t)s->B, NULL, s->B,
                            s->work);
}

int nd_events_begin(NdSolver *s, const nd_real *p, nd_real t0, const nd_real *y0)
{
    NdEvents *ev = s->ev;
    if (nd_method_is_implicit(s->method) && s->method != ND_BDF)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED,
                              "%s cannot locate events: use bdf or an explicit solver (dopri5, "
                              "tsit5, dop853, bosh3, rk4, ...) for a model with `when`",
                              nd_method_name(s->method));
    ev->count = 0;
    ev->n_frozen = 0;
    ev->pending = 0;
    memset(ev->fire, 0, (size_t)ev->ne * (size_t)s->B + (size_t)s->B);
    eval_conds(s, p, t0, y0, ev->g_prev);
    return ND_OK;
}

nd_real nd_events_target(const NdSolver *s, nd_real t_end, nd_real dir)
{
    const NdEvents *ev = s->ev;
    return ev->pending && (ev->t_pending - t_end) * dir < 0 ? ev->t_pending : t_end;
}

static int crossed(int direction, nd_real g0, nd_real g1)
{
    return direction < 0 ? (g0 > 0 && g1 <= 0) : (g0 < 0 && g1 >= 0);
}

/* The batch's state at a time inside the step, from the step's interpolant, into s->ev->yt. */
typedef NdInterpFn InterpFn;

typedef struct Locate {
    NdSolver *s;
    const nd_real *p;
    InterpFn interp;
    void *ctx;
    int e;
    int64_t b;
    nd_real sign; /* -1 for a rising event: the root finder's phi falls */
} Locate;

/* phi = sign g, positive before the crossing and <= 0 after it. */
static nd_real phi(Locate *L, nd_real t)
{
    L->interp(L->ctx, t);
    const nd_real *yb = L->s->ev->yt + (size_t)L->b * (size_t)L->s->k.ny;
    nd_real g = 0.0;
    L->s->k.events[L->e].cond(t, yb, L->p, NULL, NULL, &g, NULL, 1, L->s->work);
    return L->sign * g;
}

/* The root of phi in (a, b] with phi(a) = fa > 0 >= fb = phi(b), within the
 * tolerance: Illinois, bisecting every third iteration, then one secant step on
 * the final bracket's true values (the interpolant is linear at that scale, so
 * the time is close to the interpolant's root, not just within the bracket). */
static nd_real illinois(Locate *L, nd_real a, nd_real fa, nd_real b, nd_real fb)
{
    int side = 0;
    nd_real ga = fa, gb = fb; /* the true values; fa and fb are Illinois' scaled ones */
    for (int it = 0; it < ND_EVENT_MAX_ITER && fabs(b - a) > event_tol(b); it++) {
        nd_real c = b - fb * (b - a) / (fb - fa);
        if (it % 3 == 2 || !(c > fmin(a, b) && c < fmax(a, b)))
            c = 0.5 * (a + b);
        nd_real fc = phi(L, c);
        if (fc > 0) {
            a = c;
            fa = ga = fc;
            if (side < 0)
                fb *= 0.5;
            side = -1;
        } else {
            b = c;
            fb = gb = fc;
            if (side > 0)
                fa *= 0.5;
            side = 1;
        }
    }
    nd_real c = b - gb * (b - a) / (gb - ga);
    return c >= fmin(a, b) && c <= fmax(a, b) ? c : b;
}

enum { LOCATE_NONE, LOCATE_FIRE, LOCATE_REDO };

/* After a step from t to t_new whose end has g_new: the crossings' times,
 * marked to fire at t_new (LOCATE_FIRE) or, when the earliest lies before t_new,
 * at it (LOCATE_REDO, t_pending). A step that lands on a pending event fires
 * the events marked for it. */
/* Brackets of the first crossing of each (event, sample) in the step: the
 * interior points' conditions are scanned in order after g_prev, then g_new.
 * bracket[4 i ..] = t_a, g_a, t_b, g_b, with t_b = NAN where nothing crosses. */
static void brackets(Locate *L, nd_real t, nd_real t_new)
{
    NdSolver *s = L->s;
    NdEvents *ev = s->ev;
    size_t B = (size_t)s->B, nb = (size_t)ev->ne * B;
    for (size_t i = 0; i < nb; i++) {
        nd_real *br = ev->bracket + 4 * i;
        br[0] = t, br[1] = ev->g_prev[i], br[2] = NAN;
    }
    for (int q = 1; q <= ND_EVENT_INTERP_POINTS + 1; q++) {
        nd_real tq = q > ND_EVENT_INTERP_POINTS
                        ? t_new : t + (t_new - t) * q / (ND_EVENT_INTERP_POINTS + 1.0);
        if (q <= ND_EVENT_INTERP_POINTS)
            L->interp(L->ctx, tq);
        for (int e = 0; e < ev->ne; e++) {
            const nd_real *g = ev->g_new + (size_t)e * B;
            if (q <= ND_EVENT_INTERP_POINTS) {
                s->k.events[e].cond(tq, ev->yt, L->p, NULL, NULL, ev->gt, NULL, s->B, s->work);
                g = ev->gt;
            }
            for (size_t b = 0; b < B; b++) {
                nd_real *br = ev->bracket + 4 * ((size_t)e * B + b);
                if (!isnan(br[2]) || ev->frozen[b])
                    continue;
                if (crossed(s->k.events[e].direction, br[1], g[b]))
                    br[2] = tq, br[3] = g[b];
                else
                    br[0] = tq, br[1] = g[b];
            }
        }
    }
}

static int locate(Locate *L, nd_real t, nd_real t_new)
{
    NdSolver *s = L->s;
    NdEvents *ev = s->ev;
    size_t B = (size_t)s->B;
    int landed = ev->pending && t_new == ev->t_pending, any = 0;
    nd_real dir = t_new > t ? 1.0 : -1.0, earliest = t_new;
    brackets(L, t, t_new);
    for (int e = 0; e < ev->ne; e++)
        for (size_t b = 0; b < B; b++) {
            size_t i = (size_t)e * B + b;
            const nd_real *br = ev->bracket + 4 * i;
            int direction = s->k.events[e].direction;
            ev->t_root[i] = NAN;
            if (ev->frozen[b])
                continue;
            if (!isnan(br[2])) {
                L->e = e;
                L->b = (int64_t)b;
                L->sign = direction < 0 ? 1.0 : -1.0;
                ev->t_root[i] = illinois(L, br[0], L->sign * br[1], br[2], L->sign * br[3]);
            } else if (landed && ev->fire[i]) {
                ev->t_root[i] = t_new;
            } else {
                continue;
            }
            any = 1;
            if ((ev->t_root[i] - earliest) * dir < 0)
                earliest = ev->t_root[i];
        }
    if (!any) { /* a step short of a pending event keeps its marks */
        if (landed)
            ev->pending = 0;
        memcpy(ev->g_prev, ev->g_new, (size_t)ev->ne * B * sizeof *ev->g_prev);
        return LOCATE_NONE;
    }
    nd_real tol = event_tol(t_new);
    int now = (t_new - earliest) * dir <= tol;
    for (size_t i = 0; i < (size_t)ev->ne * B; i++)
        ev->fire[i] = !isnan(ev->t_root[i]) && (now || (ev->t_root[i] - earliest) * dir <= tol);
    ev->pending = !now;
    ev->t_pending = earliest;
    return now ? LOCATE_FIRE : LOCATE_REDO;
}

/* Applies the marked events at (t, y): resets (each from the state the earlier
 * ones of the sample left) and terminations, logged in sample order. */
static int apply(NdSolver *s, const nd_real *p, nd_real t, nd_real *y)
{
    NdEvents *ev = s->ev;
    size_t B = (size_t)s->B, ny = (size_t)s->k.ny;
    for (size_t b = 0; b < B; b++)
        for (int e = 0; e < ev->ne; e++) {
            size_t i = (size_t)e * B + b;
            if (!ev->fire[i])
                continue;
            ev->fire[i] = 0;
            if (ev->count >= ev->cap)
                return nd_solver_fail(s, ND_ERR_MAX_EVENTS,
                                      "more than max_events = %ld events: event %d of sample %zu "
                                      "at t = %.10g is one more (events may accumulate there, as "
                                      "a bouncing ball's do: end the solve earlier)",
                                      ev->cap, e, b, t);
            nd_real *yb = y + b * ny, *rec_y = ev->log_y + (size_t)ev->count * 2 * ny;
            NdEventRecord rec = {(int64_t)b, e, t};
            ev->log[ev->count++] = rec;
            memcpy(rec_y, yb, ny * sizeof *yb);
            const NdEvent *event = &s->k.events[e];
            if (event->terminate && !ev->frozen[b]) {
                ev->frozen[b] = 1;
                ev->n_frozen++;
            } else if (!event->terminate && !ev->frozen[b]) {
                event->reset(t, yb, p, NULL, NULL, ev->yt, NULL, 1, s->work);
                memcpy(yb, ev->yt, ny * sizeof *yb);
            }
            memcpy(rec_y + ny, yb, ny * sizeof *yb);
        }
    eval_conds(s, p, t, y, ev->g_prev);
    return ND_OK;
}

int nd_events_apply(NdSolver *s, const nd_real *p, nd_real t, nd_real *y)
{
    return apply(s, p, t, y);
}

nd_real nd_events_locate(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new,
                        const nd_real *y_new, NdInterpFn interp, void *ctx)
{
    NdEvents *ev = s->ev;
    eval_conds(s, p, t_new, y_new, ev->g_new);
    Locate L = {s, p, interp, ctx, 0, 0, 1.0};
    int where = locate(&L, t, t_new);
    ev->pending = 0; /* no step is redone: the event is taken where it is found */
    return where == LOCATE_NONE ? NAN : where == LOCATE_FIRE ? t_new : ev->t_pending;
}

/* ---- the adaptive engine ---- */

typedef struct DenseCtx {
    NdRun *r;
    nd_real h, t_new;
    int prepared;
} DenseCtx;

static void dense_interp(void *ctx, nd_real t)
{
    DenseCtx *c = (DenseCtx *)ctx;
    NdSolver *s = c->r->s;
    if (!c->prepared) {
        if (!s->tab->fsal) /* f(t + h, y_new), which accept_step would compute next */
            nd_solver_rhs(s, c->r->p, c->t_new, s->ynew, s->K[s->tab->fnew_stage]);
        nd_adaptive_dense_prepare(c->r, c->h);
        c->prepared = 1;
    }
    nd_dense_eval(s, c->r->t, c->h, &t, 1, s->ev->yt);
}

static int firing(const NdEvents *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ev->fire[i])
            return 1;
    return 0;
}

int nd_events_adaptive_check(NdRun *r, nd_real h, nd_real t_new)
{
    NdSolver *s = r->s;
    eval_conds(s, r->p, t_new, s->ynew, s->ev->g_new);
    DenseCtx ctx = {r, h, t_new, 0};
    Locate L = {s, r->p, dense_interp, &ctx, 0, 0, 1.0};
    return locate(&L, r->t, t_new) == LOCATE_REDO;
}

int nd_events_adaptive_fire(NdRun *r)
{
    NdSolver *s = r->s;
    NdEvents *ev = s->ev;
    if (!firing(ev, (size_t)ev->ne * (size_t)s->B))
        return ND_OK;
    int st = apply(s, r->p, r->t, s->y);
    if (st)
        return st;
    nd_solver_rhs(s, r->p, r->t, s->y, s->K[0]); /* the method restarts at the event */
    if (ev->n_frozen == s->B) { /* nothing moves any more: the outputs left are this state */
        for (; r->j < r->nt; r->j++)
            memcpy(r->yout + (size_t)r->j * s->n, s->y, s->n * sizeof *s->y);
    }
    return ND_OK;
}

/* ---- the fixed-step engine ---- */

typedef struct HermiteCtx {
    NdSolver *s;
    nd_real t, h;
    const nd_real *y1;
} HermiteCtx;

/* The cubic Hermite interpolant of (y0, f0) at t and (y1, f1) at t + h. */
static void hermite_interp(void *ctx, nd_real tq)
{
    HermiteCtx *c = (HermiteCtx *)ctx;
    NdEvents *ev = c->s->ev;
    nd_real th = (tq - c->t) / c->h, u = 1.0 - th;
    nd_real h00 = (1.0 + 2.0 * th) * u * u, h10 = th * u * u * c->h;
    nd_real h01 = th * th * (3.0 - 2.0 * th), h11 = -th * th * u * c->h;
    for (size_t k = 0; k < c->s->n; k++)
        ev->yt[k] = h00 * ev->ysave[k] + h10 * ev->f0[k] + h01 * c->y1[k] + h11 * ev->f1[k];
}

/* After a fixed step from (t, ysave) to (t_new, y): LOCATE_* as locate. */
static int fixed_locate(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, const nd_real *y)
{
    NdEvents *ev = s->ev;
    eval_conds(s, p, t_new, y, ev->g_new);
    nd_solver_rhs(s, p, t_new, y, ev->f1); /* f at the step's end, for the interpolant */
    HermiteCtx ctx = {s, t, t_new - t, y};
    Locate L = {s, p, hermite_interp, &ctx, 0, 0, 1.0};
    return locate(&L, t, t_new);
}

nd_real nd_events_fixed_locate(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new,
                              const nd_real *y)
{
    NdEvents *ev = s->ev;
    memcpy(ev->f0, s->K[0], s->n * sizeof *y); /* stage 0 is f(t, ysave) */
    int where = fixed_locate(s, p, t, t_new, y);
    ev->pending = 0;
    return where == LOCATE_NONE ? NAN : where == LOCATE_FIRE ? t_new : ev->t_pending;
}

int nd_events_fixed_interval(NdSolver *s, const nd_real *p, nd_real t0, nd_real t1, nd_real *y)
{
    NdEvents *ev = s->ev;
    size_t n = s->n;
    nd_real span = fabs(t1 - t0), hd = t1 > t0 ? s->h : -s->h;
    long steps = nd_fixed_steps(span, s->h);
    nd_real t = t0;
    for (long k = 1; k <= steps && ev->n_frozen < s->B;) {
        nd_real t_next = k == steps ? t1 : t0 + (nd_real)k * hd;
        memcpy(ev->ysave, y, n * sizeof *y);
        nd_rk_step(s, p, t, t_next, y);
        memcpy(ev->f0, s->K[0], n * sizeof *y); /* stage 0 is f(t, y) */
        int st = nd_fixed_check_step(s, y, t_next, t);
        if (st)
            return st;
        int where = fixed_locate(s, p, t, t_next, y);
        nd_real t_at = t_next;
        if (where == LOCATE_REDO) { /* step again from t, exactly onto the event */
            t_at = ev->t_pending;
            ev->pending = 0;
            memcpy(y, ev->ysave, n * sizeof *y);
            s->num_steps--;
            nd_rk_step(s, p, t, t_at, y);
            st = nd_fixed_check_step(s, y, t_at, t);
            if (st)
                return st;
        }
        if (where != LOCATE_NONE && (st = apply(s, p, t_at, y)) != ND_OK)
            return st;
        t = t_at;
        if (where != LOCATE_REDO)
            k++;
    }
    return ND_OK;
}
