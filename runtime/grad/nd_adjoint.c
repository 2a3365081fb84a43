/* The continuous adjoint (ND_GRAD_ADJOINT) of Chen et al., Neural Ordinary
 * Differential Equations, NeurIPS 2018, Algorithm 1: the augmented state
 * z = [y; a; g] (N + N + np doubles, N = B*ny + ns the state's: the parameter
 * part is shared by the batch, as the shared states' are) solves
 *   dy/dt = f(t, y),  da/dt = -a^T df/dy,  dg/dt = -a^T df/dp
 * backwards from the last observation, with a(t_end) = dL/dy there, g = 0, and a
 * jumping by dL_j/dy at every earlier observation; at t0, a = dL/dy0 and
 * g = dL/dp minus the loss's direct terms. The same engine and settings as the
 * forward solve integrate it; nothing depends on the number of steps. At each
 * observation y restarts from the forward value (as torchdiffeq does), so the
 * backward solve's own drift in y does not carry over; the step size does
 * carry over (torchdiffeq restarts it with its initial-step heuristic). The
 * error norm is the largest RMS norm of y, a and g, or of y and a only: the
 * seminorm of Kidger, Chen and Lyons, "Hey, that's not an ODE", ICML 2021.
 *
 * With bdf the backward system is solved by bdf too (it is as stiff as the
 * forward one), but without y: backwards in time y's fast modes grow as fast
 * as they decayed forwards, and the Newton matrix I - c J of a backward step
 * turns singular where h lambda = alpha_k, a wall the step size cannot cross
 * (seen on Robertson: y overflows within 0.01 of the last observation). So, as
 * CVODES does, y(t) comes from the forward solve: the forward pass keeps
 * checkpoints (the checkpoint gradient's, about sqrt(steps) of them, each the
 * engine's snapshot), and the backward solve goes through the segments between
 * them last to first, stopping at each segment's start: a segment's steps are
 * recomputed onto the tape (with at least ND_BDF_MAX_ORDER steps before it, so
 * that the interpolation keeps its order at the segment's start) and y is
 * interpolated through the step ends by the polynomial of the step's own
 * order. Memory grows as sqrt(steps), not as the steps (CVODES's grows with
 * its checkpoints too); the price is a second forward pass. The backward
 * system [a; g] has the Jacobian blocks -J^T per sample (a) and 0 (g), derived
 * from the same symbolic Jacobian (with a shared block, -J^T of the bordered J,
 * whose shared rows read the samples: nd_bdf solves it samples first); it is
 * exact, and the error control measures a and g (a alone with the seminorm). */
#include "nd_real.h"
#include <stdio.h>
#include <string.h>

#include "nd_grad_internal.h"

/* dz/dt: one rhs and one vjp evaluation over the batch, in one call when the
 * table has the fused kernel (its out0 is dz/dt's [y; a] part, laid out as z
 * is), so the forward values both need are computed once. */
static void adjoint_rhs(void *ctx, nd_real t, const nd_real *z, nd_real *dzdt)
{
    NdGradient *g = (NdGradient *)ctx;
    size_t n = g->n, tail = n + (size_t)g->np;
    if (g->k.rhs_vjp) {
        g->k.rhs_vjp(t, z, g->p, z + n, NULL, dzdt, dzdt + 2 * n, g->B, g->work);
    } else {
        g->k.rhs(t, z, g->p, dzdt, g->B, g->work);
        g->k.vjp(t, z, g->p, z + n, NULL, dzdt + n, dzdt + 2 * n, g->B, g->work);
    }
    for (size_t e = n; e < n + tail; e++)
        dzdt[e] = -dzdt[e];
    g->rhs_evals++;
    g->vjp_evals++;
}

/* ---- bdf: y(t) from the recorded forward steps ---- */

/* Step end r of the tape (r = -1: the start), its time and state. */
static const nd_real *tape_point(const NdGradient *g, long r, nd_real *t)
{
    if (r < 0) {
        *t = g->loss->ts[0];
        return g->obs_y;
    }
    const nd_real *rec = g->tape + (size_t)r * g->rec_size;
    *t = rec[2];
    return rec + ND_BDF_REC_HEAD;
}

/* g->ycur = y(t): the Lagrange polynomial through the end of the step that
 * holds t and the k step ends before it (k its order). The backward solve
 * moves monotonically, so the search starts where the last one ended. */
static void forward_state(NdGradient *g, nd_real t)
{
    long nrec = (long)(g->tape_len / g->rec_size), r = g->interp_at;
    nd_real dir = g->loss->ts[g->loss->nt - 1] > g->loss->ts[0] ? 1.0 : -1.0, tr, tl;
    while (r > 0 && (tape_point(g, r - 1, &tl), (t - tl) * dir < 0))
        r--;
    while (r < nrec - 1 && (tape_point(g, r, &tr), (t - tr) * dir > 0))
        r++;
    g->interp_at = r;
    int k = (int)g->tape[(size_t)r * g->rec_size + 5];
    if (r - k < -1)
        k = (int)r + 1;
    nd_real ti[ND_BDF_MAX_ORDER + 1] = {0}, w[ND_BDF_MAX_ORDER + 1];
    for (int i = 0; i <= k; i++)
        tape_point(g, r - i, &ti[i]);
    for (int i = 0; i <= k; i++) {
        w[i] = 1.0;
        for (int j = 0; j <= k; j++)
            if (j != i)
                w[i] *= (t - ti[j]) / (ti[i] - ti[j]);
    }
    memset(g->ycur, 0, g->n * sizeof *g->ycur);
    for (int i = 0; i <= k; i++) {
        const nd_real *y = tape_point(g, r - i, &tl);
        for (size_t e = 0; e < g->n; e++)
            g->ycur[e] += w[i] * y[e];
    }
}

/* d[a; g]/dt = -[a^T df/dy; a^T df/dp] at the forward y(t): one vjp. */
static void adjoint_rhs_bdf(void *ctx, nd_real t, const nd_real *z, nd_real *dzdt)
{
    NdGradient *g = (NdGradient *)ctx;
    size_t n = g->n;
    forward_state(g, t);
    g->k.vjp(t, g->ycur, g->p, z, NULL, dzdt, dzdt + n, g->B, g->work);
    for (size_t e = 0; e < n + (size_t)g->np; e++)
        dzdt[e] = -dzdt[e];
    g->vjp_evals++;
    g->rhs_evals++; /* one evaluation of the augmented system, as adjoint_rhs counts */
}

/* d(da/dt)/da = -J^T per sample, transposed in place block by block; with a
 * shared block the model's bordered J as it is (nd_bdf_set_adjoint_jac). */
static void adjoint_jac_bdf(void *ctx, nd_real t, const nd_real *z, nd_real *blocks)
{
    NdGradient *g = (NdGradient *)ctx;
    size_t ny = (size_t)g->k.ny, mm = ny * ny;
    (void)z;
    forward_state(g, t);
    g->k.jac(t, g->ycur, g->p, NULL, NULL, blocks, NULL, g->B, g->work);
    for (size_t b = 0; g->k.ns == 0 && b < (size_t)g->B; b++) {
        nd_real *J = blocks + b * mm;
        for (size_t i = 0; i < ny; i++) {
            J[i * ny + i] = -J[i * ny + i];
            for (size_t j = i + 1; j < ny; j++) {
                nd_real v = J[i * ny + j];
                J[i * ny + j] = -J[j * ny + i];
                J[j * ny + i] = -v;
            }
        }
    }
}

static int setup_bdf(NdGradient *g, const NdSolver *tmpl)
{
    g->aug = nd_solver_create_system(tmpl->method, g->n + (size_t)g->np, adjoint_rhs_bdf, g);
    if (!g->aug)
        return ND_ERR_MEMORY;
    return g->k.jac ? nd_bdf_set_adjoint_jac(g->aug, adjoint_jac_bdf, g, (size_t)g->B, g->k.ny,
                                             (size_t)g->k.ns)
                    : ND_OK;
}

/* The augmented system's elements in messages, by the forward solve's names:
 * [y; a; g] ([a; g] for bdf, which reads y from the tape). */
static void adjoint_element(void *ctx, long i, char *buf, size_t len)
{
    const NdGradient *g = (const NdGradient *)ctx;
    long n = (long)g->n, y_len = g->implicit ? 0 : n;
    char at[ND_ELEMENT_TEXT];
    if (i < y_len)
        snprintf(buf, len, "%s (recomputed backwards)",
                 nd_solver_element(g->fwd, i, at, sizeof at));
    else if (i < y_len + n)
        snprintf(buf, len, "the adjoint of %s",
                 nd_solver_element(g->fwd, i - y_len, at, sizeof at));
    else if (g->param_namer) {
        g->param_namer(g->param_namer_ctx, i - y_len - n, at, sizeof at);
        snprintf(buf, len, "the gradient integral of %s", at);
    } else {
        snprintf(buf, len, "the gradient integral of parameter element %ld", i - y_len - n);
    }
}

int nd_adjoint_setup(NdGradient *g, const NdSolver *tmpl)
{
    size_t N = 2 * g->n + (size_t)g->np;
    int st = ND_OK;
    if (nd_method_is_implicit(tmpl->method))
        st = setup_bdf(g, tmpl);
    else
        g->aug = nd_solver_create_system(tmpl->method, N, adjoint_rhs, g);
    if (!g->aug || st)
        return ND_ERR_MEMORY;
    g->aug->h = tmpl->h;
    g->aug->rtol = tmpl->rtol;
    g->aug->atol = tmpl->atol;
    g->aug->h0 = tmpl->h0;
    g->aug->max_steps = tmpl->max_steps;
    g->aug->namer = adjoint_element;
    g->aug->namer_ctx = g;
    return ND_OK;
}

/* y and a in groups of one sample, g as one group; g left out by the seminorm.
 * The shared block is each part's tail: y's counted as in every sample (as
 * the forward solve does), a's weighted by 1/B: the shared adjoint is the sum
 * over the batch of what each copy's adjoint holds in the per-copy layout, so
 * a_s / B is a copy's typical size and a large batch does not shrink the
 * backward steps. (The copies' adjoints differ, so the backward steps are
 * close to the per-copy path's, not equal: docs/gradients.md.) */
static void set_norm(NdGradient *g)
{
    size_t n = g->n, ns = (size_t)g->k.ns, ny = (size_t)g->k.ny, np = (size_t)g->np;
    NdSolver *s = g->aug;
    s->norm_parts = g->seminorm ? 2 : 3;
    s->norm[0] = (NdNormPart){.off = 0, .len = n - ns, .group = ny, .tail = ns,
                              .tail_weight = 1.0};
    s->norm[1] = (NdNormPart){.off = n, .len = n - ns, .group = ny, .tail = ns,
                              .tail_weight = (nd_real)1 / (nd_real)g->B};
    s->norm[2] = (NdNormPart){.off = 2 * n, .len = np, .group = np ? np : 1};
    if (g->implicit) { /* [a; g]: no y */
        s->norm[0].len = 0;
        s->norm[1].off = 0;
        s->norm[2].off = n;
    }
}

/* Row 0 of g->z is z at t_from; it becomes z at t_to (row 1 is scratch). */
static int solve_span(NdGradient *g, nd_real t_from, nd_real t_to)
{
    nd_real span[2] = {t_from, t_to};
    size_t N = g->aug->n;
    int st = nd_solve(g->aug, NULL, g->z, span, 2, g->z);
    if (st)
        return nd_grad_fail(g, st, "backward solve (adjoint) from t = %.10g to t = %.10g: %s",
                            t_from, t_to, nd_solver_get_message(g->aug));
    memcpy(g->z, g->z + N, N * sizeof *g->z);
    return ND_OK;
}

/* bdf: recomputes checkpoint segment seg onto the tape, from ND_BDF_MAX_ORDER
 * steps before it (or the start), and returns the time it starts at. */
static int load_segment(NdGradient *g, size_t seg, nd_real *t_start)
{
    size_t from = seg;
    while (from > 0 && g->ck[seg].step - g->ck[from].step < ND_BDF_MAX_ORDER)
        from--;
    long end = seg + 1 < g->ck_count ? g->ck[seg + 1].step : g->num_steps;
    int st = nd_replay_segment(g, from, end);
    if (st)
        return st;
    if (g->tape_failed)
        return nd_grad_fail(g, ND_ERR_MEMORY, "out of memory replaying the forward steps");
    long before = g->ck[seg].step - g->ck[from].step; /* steps on the tape before seg */
    *t_start = before == 0 ? g->loss->ts[0] : g->tape[(size_t)(before - 1) * g->rec_size + 2];
    g->interp_at = (long)(g->tape_len / g->rec_size) - 1;
    return ND_OK;
}

/* bdf: the backward solve from ts[j] to ts[j - 1], stopping at the start of
 * every checkpoint segment on the way (where the tape moves one segment back). */
static int solve_interval_bdf(NdGradient *g, int j, size_t *seg, nd_real *seg_t0)
{
    const nd_real *ts = g->loss->ts;
    nd_real dir = ts[g->loss->nt - 1] > ts[0] ? 1.0 : -1.0, t_hi = ts[j];
    for (;;) {
        while (*seg > 0 && (t_hi - *seg_t0) * dir <= 0) {
            int st = load_segment(g, --*seg, seg_t0);
            if (st)
                return st;
        }
        nd_real t_stop = (*seg_t0 - ts[j - 1]) * dir > 0 ? *seg_t0 : ts[j - 1];
        int st = solve_span(g, t_hi, t_stop);
        if (st || t_stop == ts[j - 1])
            return st;
        t_hi = t_stop;
    }
}

/* ---- events: the jump of [y; a; g] backwards across a logged event ---- */

static nd_real dot(const nd_real *u, const nd_real *v, size_t n)
{
    nd_real s = 0;
    for (size_t i = 0; i < n; i++)
        s += u[i] * v[i];
    return s;
}

/* Event record i of the forward solve (sample b, reset x+ = r(x-, p) at t*
 * where g(x-, p) = 0): with f- = f(x-), f+ = f(x+), D = dg/dy f- (dg/dt, the
 * condition reading no t), the time's derivative is d(t*)/dp = -(dg/dy s- +
 * dg/dp)/D, and transposing s+ = r_y (s- + f- d(t*)/dp) + r_p - f+ d(t*)/dp gives
 *   c = ((r_y^T a+) . f- - a+ . f+) / D,  a- = r_y^T a+ - c dg/dy^T,
 *   dL/dp += r_p^T a+ - c dg/dp^T
 * (docs/gradients.md, "Events"), a the batch's cotangent of the state at t*,
 * gp the gradient accumulator. (The adjoint then restarts y from x-: its
 * backward y ran through x+, and before t* the state is x-'s trajectory.) */
int nd_event_jump(NdGradient *g, long i, nd_real *a, nd_real *gp)
{
    int64_t b = 0;
    int e = 0;
    nd_real t = 0;
    const nd_real *xm = NULL, *xp = NULL; /* (initialised for -Wmaybe-uninitialized) */
    nd_solver_get_event(g->fwd, i, &b, &e, &t, &xm, &xp);
    const NdEvent *ev = &g->k.events[e];
    size_t ny = (size_t)g->k.ny, np = (size_t)g->np;
    nd_real *fm = g->ev_buf, *fp = fm + ny, *w = fp + ny, *gy = w + ny, *gth = gy + ny;
    nd_real *ab = a + (size_t)b * ny, *rth = g->pbar;
    g->k.rhs(t, xm, g->p, fm, 1, g->work);
    g->k.rhs(t, xp, g->p, fp, 1, g->work);
    ev->reset_vjp(t, xm, g->p, ab, NULL, w, rth, 1, g->work);
    ev->cond_grad(t, xm, g->p, NULL, NULL, gy, gth, 1, g->work);
    g->rhs_evals += 2;
    g->vjp_evals += 2;
    /* grazing: the crossing's angle, D / (|dg/dy| |f-|), below sqrt(eps), where
     * the time's derivative is amplified past what the location resolves */
    nd_real D = dot(gy, fm, ny), scale = sqrt(dot(gy, gy, ny) * dot(fm, fm, ny));
    if (!(fabs(D) > 1.5e-8 * scale))
        return nd_grad_fail(g, ND_ERR_ARG,
                            "event %d (the model's when block %d) of sample %lld at t = %.10g "
                            "grazes its condition: dg/dt = %g there, so the derivative of the "
                            "event time, -(dg/dp)/(dg/dt), is undefined",
                            e, e + 1, (long long)b, t, D);
    nd_real c = (dot(w, fm, ny) - dot(ab, fp, ny)) / D;
    for (size_t k = 0; k < ny; k++)
        ab[k] = w[k] - c * gy[k];
    for (size_t k = 0; k < np; k++)
        gp[k] += rth[k] - c * gth[k];
    return ND_OK;
}

/* The explicit backward solve from ts[j] to ts[j - 1], stopping at every
 * event logged in (ts[j - 1], ts[j]] (the latest first, *ev the next one
 * back) to jump across it. */
static int solve_interval_events(NdGradient *g, int j, long *ev)
{
    const nd_real *ts = g->loss->ts;
    nd_real dir = ts[g->loss->nt - 1] > ts[0] ? 1.0 : -1.0, t_hi = ts[j];
    size_t n = g->n;
    nd_real *y = g->z, *a = g->z + n, *gp = g->z + 2 * n;
    for (; *ev >= 0; --*ev) {
        nd_real t = 0;
        nd_solver_get_event(g->fwd, *ev, NULL, NULL, &t, NULL, NULL);
        if ((t - ts[j - 1]) * dir <= 0)
            break;
        int st = t != t_hi ? solve_span(g, t_hi, t) : ND_OK;
        if (!st)
            st = nd_event_jump(g, *ev, a, gp);
        if (st)
            return st;
        int64_t b = 0;
        const nd_real *xm = NULL;
        nd_solver_get_event(g->fwd, *ev, &b, NULL, NULL, &xm, NULL);
        memcpy(y + (size_t)b * (size_t)g->k.ny, xm, (size_t)g->k.ny * sizeof *y);
        t_hi = t;
    }
    return solve_span(g, t_hi, ts[j - 1]);
}

int nd_adjoint_backward(NdGradient *g, nd_real *grad_y0)
{
    long ev = g->k.n_events > 0 ? nd_solver_get_num_events(g->fwd) - 1 : -1;
    size_t n = g->n, np = (size_t)g->np, ny = g->implicit ? 0 : n;
    int nt = g->loss->nt;
    nd_real *y = g->z, *a = g->z + ny, *gp = g->z + ny + n;
    set_norm(g);
    size_t seg = g->ck_count ? g->ck_count - 1 : 0;
    nd_real seg_t0 = g->loss->ts[0];
    if (g->implicit) {
        int st = load_segment(g, seg, &seg_t0);
        if (st)
            return st;
    }
    memcpy(y, g->obs_y + (size_t)(nt - 1) * n, ny * sizeof *y);
    memcpy(a, g->obs_gy + (size_t)(nt - 1) * n, n * sizeof *a);
    memset(gp, 0, np * sizeof *gp);
    /* Each interval starts where the last one's step control left off (unless the
     * user fixed h0): the initial-step heuristic would cost an evaluation per
     * observation and start with a guess. bdf restarts at order 1 regardless. */
    nd_real user_h0 = g->aug->h0;
    int carry = !g->implicit && user_h0 == 0;
    int st = ND_OK;
    for (int j = nt - 1; j > 0 && !st; j--) {
        st = g->implicit     ? solve_interval_bdf(g, j, &seg, &seg_t0)
             : g->k.n_events ? solve_interval_events(g, j, &ev)
                             : solve_span(g, g->loss->ts[j], g->loss->ts[j - 1]);
        if (carry)
            g->aug->h0 = nd_solver_get_next_step(g->aug);
        memcpy(y, g->obs_y + (size_t)(j - 1) * n, ny * sizeof *y);
        for (size_t e = 0; e < n; e++)
            a[e] += g->obs_gy[(size_t)(j - 1) * n + e];
    }
    g->aug->h0 = user_h0;
    if (st)
        return st;
    for (size_t e = 0; e < np; e++)
        g->grad_p[e] += gp[e];
    if (grad_y0)
        memcpy(grad_y0, a, n * sizeof *a);
    return ND_OK;
}
