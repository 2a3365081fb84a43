/* The training loop behind `train`: batches of initial states and observations,
 * a gradient through the ODE solve (nd_gradient: adjoint, backprop or
 * checkpoint), an optimizer step, logs and a history file.
 *
 * The compiler's part is IR: the loss at an observation, the final loss and the
 * initial states (which may read the data row and the parameters) are lowered by
 * sema, differentiated by the pipeline's kernel requests (compiler/plan) and
 * compiled next to the model's rhs and vjp (compilation_train_kernels), so the
 * runtime only ever calls kernels. Everything a
 * training iteration touches is allocated before the first one. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "nd_safetensors.h"
#include "nd_schedule.h"
#include "train_internal.h"

/* train_run's status after a Ctrl-C: the shell's code for a SIGINT (128 + 2). */
enum { TRAIN_INTERRUPTED = 130 };

/* Trajectories at their own times form one batch on the union of their times
 * when each time of the union is, on average, an observation of at least
 * UNION_MIN_SHARED of them (a common grid with missing values): every time of
 * the union is a step end
 * of the gradients' forward solve and a restart of the adjoint's backward one
 * for the whole batch, so a union of all-distinct times costs more than one
 * solve per trajectory (bench/bench_batches.py measures both), and at most
 * UNION_MAX_ROWS observation rows (union times x samples x data columns: 2^24
 * doubles, 128 MiB). */
enum { UNION_MIN_SHARED = 2, UNION_MAX_ROWS = 1 << 24 };

/* ---- kernels ---- */

/* The model's rhs and vjp (and jac for an implicit solver), and the directive's
 * loss and init kernels (compiler/plan/train_kernels.c), from one JIT module
 * the pipeline compiled. */
void train_take_kernels(Trainer *t)
{
    const CompiledSet *cs = compilation_train_kernels(t->r->c, t->dir);
    if (!cs || !cs->jit)
        INTERNAL_ERROR("train of model '%s' reached the runner uncompiled", t->tr->model->name);
    t->k = cs->kernels;
    memcpy(t->fn, cs->loss, sizeof t->fn);
    memcpy(t->metric_fn, cs->metrics, sizeof t->metric_fn);
    memcpy(t->fn_d, cs->loss_d, sizeof t->fn_d);
}

/* ---- the loss at each observation ---- */

/* Copies the group's data rows for every observation into drows. */
static void gather_data(Trainer *t, const Group *g)
{
    const SemaData *data = t->tr->data;
    if (!data)
        return;
    size_t width = (size_t)t->ncols, n = (size_t)data->ncols;
    if (g->lens) {
        for (int b = 0; b < g->B; b++)
            for (int j = 0; j < g->lens[b]; j++) {
                int u = g->uidx[(size_t)b * (size_t)g->max_len + (size_t)j];
                run_to_real(t->drows + ((size_t)u * g->B + b) * width,
                            data->values + (size_t)(g->rows[b] + j) * n, n);
            }
        return;
    }
    for (int j = 0; j < g->nt; j++)
        for (int b = 0; b < g->B; b++) {
            int row = g->rows[b] + t->row_step * j;
            run_to_real(t->drows + ((size_t)j * g->B + b) * width,
                        data->values + (size_t)row * n, n);
        }
}

/* `sample`'s noise of the samples of group gi, N(0, 1) from the directive's stream:
 * drawn once per step (train_step) or per scoring (train_forward_groups), so every loss
 * and gradient of the step sees the same eps. */
void train_draw_eps(Trainer *t, int gi)
{
    size_t n = (size_t)t->group_B * (size_t)t->tr->n_eps;
    for (size_t i = 0; i < n; i++)
        t->eps[(size_t)gi * n + i] = (nd_real)nd_random_normal(&t->r->rng, 0, 1);
}

/* Copies the group's data rows for every observation into drows, and each sample's
 * noise into the columns after the data's (the same at every observation). */
static void gather_rows(Trainer *t, const Group *g)
{
    gather_data(t, g);
    int n_eps = t->tr->n_eps;
    if (n_eps == 0)
        return;
    const nd_real *eps = t->eps + (size_t)(g - t->groups) * (size_t)t->group_B * (size_t)n_eps;
    for (int j = 0; j < g->nt; j++)
        for (int b = 0; b < g->B; b++)
            memcpy(t->drows + ((size_t)j * g->B + b) * (size_t)t->ncols + t->tr->eps_col,
                   eps + (size_t)b * (size_t)n_eps, sizeof(nd_real) * (size_t)n_eps);
}

/* div_est's noise states: fresh at every step (nd_train_loss calls this after init). */
void train_draw_noise(void *ctx, nd_real *y0, int64_t B)
{
    Trainer *t = ctx;
    run_draw_states(t->r, t->m, y0, B);
}

/* The group's rows with `sample`'s noise and the encoder's value: every column
 * the kernels read. */
int train_group_rows(Trainer *t, const Group *g, const nd_real *p)
{
    gather_rows(t, g);
    return train_encoder_forward(&t->enc, p, g->B, g->nt, g->ts, t->drows, g->observed);
}

/* Why the last loss of tl failed: the encoder's message, else the loss's. */
const char *train_failure(const Trainer *t, const NdTrainLoss *tl)
{
    return t->enc.failed[0] ? t->enc.failed : nd_train_loss_get_message(tl);
}

/* ---- batches ---- */

/* The train block's `t` (the compiler's doubles) as the solver's reals, in the
 * compilation's arena. */
const nd_real *train_span(Trainer *t, const double *ts, int nt)
{
    nd_real *out = arena_alloc(t->r->c->arena, sizeof(nd_real) * (size_t)nt);
    run_to_real(out, ts, (size_t)nt);
    return out;
}

/* Observation times of the data set, contiguous (the t column): exact (the
 * data's doubles), for deciding which times are alike, and as the solver's
 * reals. In single precision a uniform grid's rounded steps differ by an ulp
 * of t, so the decisions are made on the doubles. */
static nd_real *time_column(Trainer *t)
{
    const SemaData *d = t->tr->data;
    nd_real *tc = arena_alloc(t->r->c->arena, sizeof(nd_real) * (size_t)d->nrows);
    double *exact = arena_alloc(t->r->c->arena, sizeof(double) * (size_t)d->nrows);
    for (int i = 0; i < d->nrows; i++)
        tc[i] = (nd_real)(exact[i] = d->values[(size_t)i * d->ncols + d->t_col]);
    t->tcol_exact = exact;
    return tc;
}

/* Whether every trajectory (segment) is on one uniform grid: the same step
 * between consecutive observations throughout, so every window of L
 * observations sees the same times relative to its start. */
static bool same_spacing(const double *tc, const int *starts, int nseg)
{
    double dt = NAN, lo = tc[0], hi = tc[0];
    for (int i = 0; i < starts[nseg]; i++) {
        lo = fmin(lo, tc[i]);
        hi = fmax(hi, tc[i]);
    }
    for (int s = 0; s < nseg; s++)
        for (int i = starts[s]; i + 1 < starts[s + 1]; i++) {
            double step = tc[i + 1] - tc[i];
            if (isnan(dt))
                dt = step;
            else if (fabs(step - dt) > 1e-9 * (hi - lo))
                return false;
        }
    return true;
}

/* Whether the trajectories, whole, have the same times relative to their starts. */
static bool same_relative_times(const double *tc, const int *starts, int nseg)
{
    for (int s = 1; s < nseg; s++)
        if (starts[s + 1] - starts[s] != starts[1] - starts[0])
            return false;
    return same_spacing(tc, starts, nseg);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Gives g room for samples with their own times: at most max_len observations
 * each (lens[b] set by the caller, or max_len for all). */
static void union_alloc(Trainer *t, Group *g, int max_len)
{
    Arena *a = t->r->c->arena;
    size_t B = (size_t)g->B, total = B * (size_t)max_len;
    g->max_len = max_len;
    g->lens = arena_alloc(a, sizeof(int) * B);
    for (size_t b = 0; b < B; b++)
        g->lens[b] = max_len;
    g->uidx = arena_alloc(a, sizeof(int) * total);
    g->last = arena_alloc(a, sizeof(int) * B);
    g->observed = arena_alloc(a, total * B);
    g->own_ts = arena_alloc(a, sizeof(nd_real) * total);
    g->sorted = arena_alloc(a, sizeof(double) * total);
}

/* The union of g's samples' times relative to their starts, in g->ts, and
 * where each sample's observations fall in it. Times closer than a few units
 * in the last place of the largest |t| are one: the rounding of t_{i+j} - t_i
 * makes equal spacings differ by that much. Allocates nothing. */
static void build_union(const Trainer *t, Group *g)
{
    const double *tc = t->tcol_exact;
    size_t n = 0;
    double big = 0;
    for (int b = 0; b < g->B; b++)
        for (int j = 0; j < g->lens[b]; j++) {
            g->sorted[n++] = tc[g->rows[b] + j] - tc[g->rows[b]];
            big = fmax(big, fabs(tc[g->rows[b] + j]));
        }
    qsort(g->sorted, n, sizeof(double), compare_doubles);
    double tol = 8 * DBL_EPSILON * big;
    int nu = 0;
    for (size_t i = 0; i < n; i++) /* the union's exact times compacted to sorted's front */
        if (nu == 0 || g->sorted[i] - g->sorted[nu - 1] > tol) {
            g->sorted[nu] = g->sorted[i];
            g->own_ts[nu++] = (nd_real)g->sorted[i];
        }
    g->ts = g->own_ts;
    g->nt = nu;
    memset(g->observed, 0, (size_t)nu * (size_t)g->B);
    for (int b = 0; b < g->B; b++) {
        int u = 0;
        for (int j = 0; j < g->lens[b]; j++) {
            double tau = tc[g->rows[b] + j] - tc[g->rows[b]];
            while (u + 1 < nu && g->sorted[u + 1] - tau <= tol)
                u++;
            g->uidx[(size_t)b * (size_t)g->max_len + (size_t)j] = u;
            g->observed[(size_t)u * (size_t)g->B + (size_t)b] = 1;
        }
        g->last[b] = u;
    }
}

/* Rows where a new trajectory starts (by the id column), ending with nrows. */
static int segments(Trainer *t, int **starts)
{
    const SemaData *d = t->tr->data;
    int *s = arena_alloc(t->r->c->arena, sizeof(int) * (size_t)(d->nrows + 1));
    int n = 0;
    for (int i = 0; i < d->nrows; i++) {
        const double *row = d->values + (size_t)i * d->ncols;
        if (i == 0 || (d->id_col >= 0 && row[d->id_col] != row[d->id_col - d->ncols]))
            s[n++] = i;
    }
    s[n] = d->nrows;
    *starts = s;
    return n;
}

void train_alloc_groups(Trainer *t, int n_groups, int B, int nt)
{
    Arena *a = t->r->c->arena;
    t->n_groups = n_groups;
    t->group_B = B;
    t->group_nt = nt;
    t->groups = arena_alloc(a, sizeof(Group) * (size_t)n_groups);
    t->all_rows = arena_alloc(a, sizeof(int) * (size_t)n_groups * (size_t)B);
    for (int g = 0; g < n_groups; g++)
        t->groups[g] = (Group){.B = B, .rows = t->all_rows + (size_t)g * B, .nt = nt};
}

/* Plans the trajectories as one batch on the union of their times when that
 * is worth it (UNION_MIN_SHARED, UNION_MAX_ROWS); false, planning nothing,
 * when it is not. */
static bool union_batch(Trainer *t, const int *starts, int nseg, int total, int longest)
{
    /* the probe's observed flags: a byte per sample and possible union time */
    if ((double)nseg * nseg * longest > 8.0 * UNION_MAX_ROWS)
        return false;
    train_alloc_groups(t, 1, nseg, total);
    Group *g = &t->groups[0];
    union_alloc(t, g, longest);
    for (int s = 0; s < nseg; s++) {
        g->rows[s] = starts[s];
        g->lens[s] = starts[s + 1] - starts[s];
    }
    build_union(t, g);
    if ((double)g->nt * UNION_MIN_SHARED <= total &&
        (double)g->nt * nseg * fmax(1, t->ncols) <= UNION_MAX_ROWS) {
        t->group_nt = g->nt;
        return true;
    }
    t->n_groups = 0; /* the arena keeps the probe */
    return false;
}

/* Time series: whole trajectories, or random windows of consecutive observations. */
int train_plan_time_series(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    nd_real *tc = t->tcol = time_column(t);
    int *starts, nseg = segments(t, &starts);
    t->row_step = 1;
    if (tr->batch != SEMA_BATCH_WINDOWS) {
        int longest = 0, total = 0;
        for (int s = 0; s < nseg; s++) {
            int len = starts[s + 1] - starts[s];
            longest = len > longest ? len : longest;
            total += len;
        }
        /* trajectories on the same relative times are one batch (a model or loss
         * that reads t does so through its clock, which starts at each one's
         * first time: train_clock in sema) */
        if (same_relative_times(t->tcol_exact, starts, nseg)) {
            train_alloc_groups(t, 1, nseg, longest);
            for (int s = 0; s < nseg; s++)
                t->groups[0].rows[s] = starts[s];
            t->groups[0].ts = tc + starts[0];
        } else if (union_batch(t, starts, nseg, total, longest)) {
            /* each trajectory at its own times: one batch on their union */
        } else {
            train_alloc_groups(t, nseg, 1, longest);
            for (int s = 0; s < nseg; s++) {
                t->groups[s].rows[0] = starts[s];
                t->groups[s].ts = tc + starts[s];
                t->groups[s].nt = starts[s + 1] - starts[s];
            }
        }
        t->scale_obs = 1.0 / total;
        t->scale_final = 1.0 / nseg;
        return 0;
    }
    int L = tr->batch_length, C = tr->batch_count;
    t->candidates = arena_alloc(t->r->c->arena, sizeof(int) * (size_t)tr->data->nrows);
    for (int s = 0; s < nseg; s++)
        for (int i = starts[s]; i + L <= starts[s + 1]; i++)
            t->candidates[t->n_candidates++] = i;
    if (t->n_candidates == 0) {
        diag_error(&t->r->c->diag, t->dir->loc,
                   "no trajectory in the data has %d observations for windows of length %d", L,
                   L);
        return -1;
    }
    /* On a uniform grid every window sees the same times relative to its start,
     * so the windows form one batch (torchdiffeq's demo), a forced model's too:
     * it reads t through its clock state (train_clock in sema), which starts at
     * each window's first time. Otherwise each window is solved on its own times. */
    bool shared = same_spacing(t->tcol_exact, starts, nseg);
    train_alloc_groups(t, shared ? 1 : C, shared ? C : 1, L);
    for (int g = 0; g < t->n_groups; g++) /* a window's times (all alike when shared) */
        t->groups[g].ts = tc + t->candidates[0];
    t->scale_obs = 1.0 / ((double)C * L);
    t->scale_final = 1.0 / C;
    return 0;
}

/* Samples (no t column) or no data: one group over the train block's `t`. */
static int plan_samples(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    int n = tr->data ? tr->data->nrows : 1;
    int B = tr->batch == SEMA_BATCH_MINIBATCH ? tr->batch_count : n;
    train_alloc_groups(t, 1, B, tr->nt);
    t->groups[0].ts = train_span(t, tr->t, tr->nt);
    t->candidates = arena_alloc(t->r->c->arena, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        t->candidates[i] = tr->data ? i : -1;
    t->n_candidates = n;
    for (int b = 0; b < B; b++)
        t->groups[0].rows[b] = t->candidates[b];
    t->scale_obs = 1.0 / ((double)B * tr->nt);
    t->scale_final = 1.0 / B;
    return 0;
}

/* Draws the rows of this step's batch: distinct candidates while there are enough
 * (a partial Fisher-Yates shuffle), so windows do not repeat within a batch. */
static void draw_batch(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    if (tr->batch == SEMA_BATCH_ALL)
        return;
    int need = t->n_groups * t->group_B, n = t->n_candidates;
    for (int i = 0; i < need; i++) {
        int pick;
        if (need <= n) {
            int j = i + (int)(nd_random_u64(&t->r->rng) % (uint64_t)(n - i));
            int tmp = t->candidates[i];
            t->candidates[i] = t->candidates[j];
            t->candidates[j] = tmp;
            pick = t->candidates[i];
        } else {
            pick = t->candidates[nd_random_u64(&t->r->rng) % (uint64_t)n];
        }
        t->all_rows[i] = pick;
    }
    /* windows solved one by one run on their own times */
    for (int g = 0; tr->batch == SEMA_BATCH_WINDOWS && t->group_B == 1 && g < t->n_groups; g++)
        t->groups[g].ts = t->tcol + t->groups[g].rows[0];
}

/* ---- setup ---- */

nd_real *train_alloc_reals(size_t n)
{
    return calloc(n ? n : 1, sizeof(nd_real));
}

static NdOptim *make_optimizer(Trainer *t)
{
    const SemaOptimizer *o = &t->tr->optimizer;
    NdOptimConfig cfg = o->cfg;
    /* PyTorch's SGD with momentum is the momentum optimizer */
    if (cfg.kind == ND_OPT_SGD && (o->given & ND_OBIT_MOMENTUM) && cfg.momentum > 0)
        cfg.kind = ND_OPT_MOMENTUM;
    return nd_optim_create(&cfg, t->np);
}

/* 0 when one group's states and observations fit RUN_MAX_BATCH_ELEMENTS, else
 * -1 after saying what they would need. */
int train_workspace_fits(Trainer *t)
{
    double B = t->group_B, states = B * t->m->ny, rows = (double)t->group_nt * B * t->ncols;
    char b[32];
    if (states > RUN_MAX_BATCH_ELEMENTS)
        diag_error(&t->r->c->diag, t->dir->loc, "train %s's batch is too large: %d samples x %d "
                   "state elements = %.0f elements, more than the limit of %llu (the states "
                   "alone would need %s)", t->m->name, t->group_B, t->m->ny, states,
                   RUN_MAX_BATCH_ELEMENTS, run_gib(states, b));
    else if (rows > RUN_MAX_BATCH_ELEMENTS)
        diag_error(&t->r->c->diag, t->dir->loc, "train %s's batch is too large: %d samples x %d "
                   "times x %d data columns = %.0f observations, more than the limit of %llu "
                   "(they would need %s)", t->m->name, t->group_B, t->group_nt, t->ncols, rows,
                   RUN_MAX_BATCH_ELEMENTS, run_gib(rows, b));
    else
        return 0;
    return -1;
}

/* NdElementNamer for a model's parameters (ctx: the IrModel). */
static void name_param(void *ctx, long i, char *buf, size_t len)
{
    const IrModel *m = ctx;
    run_name_var_element(m->params, m->n_params, i, "parameter element", buf, len);
}

/* The loss kernels' part of the encoder: its columns and their gradients. */
static void lk_encoder(const Trainer *t, NdLossKernels *lk)
{
    const SemaEncoder *enc = t->tr->encoder;
    if (!enc)
        return;
    lk->loss_grad_d = t->fn_d[TRAIN_KD_LOSS];
    lk->final_grad_d = t->fn_d[TRAIN_KD_FINAL];
    lk->init_vjp_d = t->fn_d[TRAIN_KD_INIT];
    lk->gd_col = enc->col;
    lk->gd_n = enc->nh;
}

static int alloc_workspace(Trainer *t)
{
    if (train_workspace_fits(t) != 0)
        return -1;
    size_t B = (size_t)t->group_B, np = (size_t)t->np;
    t->drows = train_alloc_reals((size_t)t->group_nt * B * (size_t)t->ncols);
    t->eps = train_alloc_reals((size_t)t->n_groups * B * (size_t)t->tr->n_eps);
    t->grad_p = train_alloc_reals(np);
    t->sum_grad = train_alloc_reals(np);
    NdSolver *tmpl = run_make_solver(t->r, &t->tr->solver, t->dir->loc, &t->k, t->group_B);
    if (!tmpl)
        return -1;
    nd_solver_set_element_namer(tmpl, run_name_element, t->m);
    NdLossKernels lk = {.loss = t->fn[TRAIN_K_LOSS], .loss_grad = t->fn[TRAIN_K_LOSS_GRAD],
                        .final = t->fn[TRAIN_K_FINAL], .final_grad = t->fn[TRAIN_K_FINAL_GRAD],
                        .init = t->fn[TRAIN_K_INIT], .init_vjp = t->fn[TRAIN_K_INIT_VJP],
                        .nd = t->ncols, .cost_offset = t->cost_offset, .prepare = train_draw_noise,
                        .prepare_ctx = t};
    lk_encoder(t, &lk);
    t->tl = nd_train_loss_create(&t->k, &lk, tmpl, run_grad_method(t->tr->gradient), t->group_B,
                                 t->group_nt);
    nd_solver_free(tmpl);
    if (t->tl)
        nd_gradient_set_param_namer(nd_train_loss_get_gradient(t->tl), name_param, t->m);
    if (t->tl && t->tr->seminorm)
        nd_gradient_set_seminorm(nd_train_loss_get_gradient(t->tl), 1);
    t->opt = make_optimizer(t);
    if (train_encoder_create(t->r, t->dir, t->group_B, t->group_B, t->group_nt, t->ncols, true,
                             &t->enc))
        return -1;
    if (!t->drows || !t->eps || !t->grad_p || !t->sum_grad || !t->tl || !t->opt) {
        diag_error(&t->r->c->diag, t->dir->loc, "out of memory for training");
        return -1;
    }
    return 0;
}

void trainer_free(Trainer *t)
{
    free(t->drows);
    free(t->eps);
    free(t->grad_p);
    free(t->sum_grad);
    nd_train_loss_free(t->tl);
    nd_train_loss_free(t->tl_rest);
    free(t->iw);
    train_encoder_free(&t->enc);
    nd_optim_free(t->opt);
}

/* ---- one step ---- */

/* Loss and gradient of one group, added into *L and t->sum_grad. */
static int group_gradient(Trainer *t, Group *g, nd_real *L)
{
    int status = train_group_rows(t, g, t->p);
    if (status != ND_OK)
        return status;
    nd_real Lg;
    nd_train_loss_set_observed(t->tl, g->observed, g->last);
    status = nd_train_loss_compute(t->tl, t->p, g->nt, g->ts, t->ncols ? t->drows : NULL,
                                   t->scale_obs, t->scale_final, &Lg, t->grad_p);
    if (status == ND_OK)
        status = train_encoder_backward(&t->enc, t->p, nd_train_loss_get_data_gradient(t->tl),
                                        t->grad_p);
    if (status != ND_OK)
        return status;
    for (int i = 0; i < t->np; i++)
        t->sum_grad[i] += t->grad_p[i];
    *L += Lg;
    const NdGradient *grad = nd_train_loss_get_gradient(t->tl);
    t->nfe_fwd += nd_gradient_get_num_forward_evals(grad) + t->enc.nfe_fwd;
    t->nfe_bwd += nd_gradient_get_num_backward_evals(grad) + t->enc.nfe_bwd;
    return ND_OK;
}

/* ---- --check-gradient ---- */

/* The batch's loss at parameters p (every group), the gradient discarded. */
static int batch_loss(Trainer *t, const nd_real *p, nd_real *grad_scratch, nd_real *L)
{
    *L = 0;
    for (int i = 0; i < t->n_groups; i++) {
        Group *g = &t->groups[i];
        int status = train_group_rows(t, g, p);
        if (status != ND_OK)
            return status;
        nd_real Lg;
        nd_train_loss_set_observed(t->tl, g->observed, g->last);
        status = nd_train_loss_compute(t->tl, p, g->nt, g->ts, t->ncols ? t->drows : NULL,
                                       t->scale_obs, t->scale_final, &Lg, grad_scratch);
        if (status != ND_OK)
            return status;
        *L += Lg;
    }
    return ND_OK;
}

/* Central differences of the batch loss, element by element: h = eps^(1/3)
 * max(1, |p_i|), the step that balances truncation (h^2) against rounding
 * (eps / h) for a smooth loss. */
static int central_differences(Trainer *t, nd_real *fd)
{
    nd_real *p = train_alloc_reals((size_t)t->np), *scratch = train_alloc_reals((size_t)t->np);
    int status = p && scratch ? ND_OK : ND_ERR_MEMORY;
    if (p)
        memcpy(p, t->p, sizeof(nd_real) * (size_t)t->np);
    for (int i = 0; status == ND_OK && i < t->np; i++) {
        nd_real h = cbrt(ND_REAL_EPSILON) * fmax(1.0, fabs(t->p[i])), Lp = 0, Lm = 0;
        p[i] = t->p[i] + h;
        status = batch_loss(t, p, scratch, &Lp);
        p[i] = t->p[i] - h;
        if (status == ND_OK)
            status = batch_loss(t, p, scratch, &Lm);
        p[i] = t->p[i];
        fd[i] = (Lp - Lm) / (2 * h);
    }
    free(p);
    free(scratch);
    return status;
}

/* `nodec run --check-gradient`: at the first step, the chosen gradient of the
 * step's batch against central differences, one line per parameter: the
 * relative error |g - fd| / max(|g|, |fd|) over its elements (2-norms). */
static int check_gradient(Trainer *t)
{
    const IrModel *m = t->tr->model;
    nd_real *fd = train_alloc_reals((size_t)t->np);
    int status = fd ? central_differences(t, fd) : ND_ERR_MEMORY;
    if (status != ND_OK) {
        diag_error(&t->r->c->diag, t->dir->loc, "train %s: --check-gradient failed (%s): %s",
                   m->name, nd_status_name(status), train_failure(t, t->tl));
        free(fd);
        return -1;
    }
    fprintf(stderr, "check-gradient %s: %s gradient against central differences at step 1\n",
            m->name, t->tr->gradient);
    for (int j = 0; j < m->n_params; j++) {
        const IrVar *v = &m->params[j];
        nd_real diff = 0, norm_g = 0, norm_fd = 0;
        for (int k = 0; k < ir_shape_size(v->shape); k++) {
            nd_real g = t->sum_grad[v->offset + k], f = fd[v->offset + k];
            diff += (g - f) * (g - f);
            norm_g += g * g;
            norm_fd += f * f;
        }
        nd_real scale = sqrt(fmax(norm_g, norm_fd));
        fprintf(stderr, "  %-16s relative error %.2e  (|gradient| %.3e, |differences| %.3e)\n",
                v->name, scale > 0 ? sqrt(diff) / scale : 0.0, sqrt(norm_g), sqrt(norm_fd));
    }
    free(fd);
    return 0;
}

/* A gradient element that is inf or nan under a finite loss (a derivative
 * undefined where the solution is: sqrt or log at 0, a kink) would make the
 * parameters nan at the update and the next step fail far from the cause:
 * stop before it, naming the parameter. */
static int nonfinite_gradient(Trainer *t, long step, nd_real L)
{
    const IrModel *m = t->tr->model;
    for (int i = 0; i < t->np; i++) {
        if (isfinite(t->sum_grad[i]))
            continue;
        char name[96];
        run_name_var_element(m->params, m->n_params, i, "parameter element", name, sizeof name);
        diag_error(&t->r->c->diag, t->dir->loc,
                   "train %s failed at step %ld: the gradient of %s is %s while the loss is %g; "
                   "the parameters were not updated",
                   m->name, step, name,
                   isnan(t->sum_grad[i]) ? "nan" : t->sum_grad[i] > 0 ? "inf" : "-inf", L);
        diag_note(&t->r->c->diag, m->loc,
                  "a derivative in model '%s' is undefined where the solution goes (sqrt, log "
                  "or a power below 1 at 0, abs or a step at a kink): check the equations there",
                  m->name);
        return -1;
    }
    return 0;
}

/* `clip = C`, torch.nn.utils.clip_grad_norm_'s rule exactly: with n the 2-norm of
 * the whole summed gradient, g *= C / (n + 1e-6) when that factor is below 1
 * (the 1e-6 keeps a zero gradient finite). */
static void clip_gradient(Trainer *t)
{
    nd_real C = t->tr->clip, norm2 = 0;
    if (C <= 0)
        return;
    for (int i = 0; i < t->np; i++)
        norm2 += t->sum_grad[i] * t->sum_grad[i];
    nd_real factor = C / (sqrt(norm2) + 1e-6);
    for (int i = 0; factor < 1 && i < t->np; i++)
        t->sum_grad[i] *= factor;
}

/* NdLossAt for lbfgs's line search: the batch's loss at p (t->grad_p, free once
 * the groups' gradients are summed, takes the unused gradient). */
static int loss_at(void *ctx, const nd_real *p, nd_real *L)
{
    Trainer *t = ctx;
    return batch_loss(t, p, t->grad_p, L) == ND_OK ? 0 : -1;
}

/* The scheduled learning rate of this step (nd_schedule.c), or the optimizer's own. */
static void schedule_lr(Trainer *t, long step)
{
    const SemaSchedule *sc = &t->tr->schedule;
    if (sc->name)
        nd_optim_set_lr(t->opt, nd_schedule_lr(&sc->cfg, step));
}

static int train_step(Trainer *t, long step, nd_real *L)
{
    draw_batch(t);
    if (t->tr->model->diffusion) /* one Brownian path per step (docs/gradients.md) */
        nd_gradient_set_brownian(nd_train_loss_get_gradient(t->tl), nd_random_u64(&t->r->rng));
    for (int g = 0; g < t->n_groups && t->tr->n_eps > 0; g++)
        train_draw_eps(t, g);
    memset(t->sum_grad, 0, sizeof(nd_real) * (size_t)t->np);
    *L = 0;
    t->nfe_fwd = t->nfe_bwd = 0;
    for (int g = 0; g < t->n_groups; g++) {
        int status = group_gradient(t, &t->groups[g], L);
        if (status != ND_OK) {
            const char *why = train_failure(t, t->tl);
            diag_error(&t->r->c->diag, t->dir->loc, "train %s failed at step %ld (%s): %s",
                       t->tr->model->name, step, nd_status_name(status), why);
            if (status == ND_ERR_NONFINITE && strncmp(why, "backward", 8) == 0)
                diag_note(&t->r->c->diag, t->tr->model->loc,
                          "the forward solve of '%s' was finite, but a derivative is not finite "
                          "where the solution goes (sqrt, log or a power below 1 at 0, a "
                          "division by a state that reaches 0): check the equations there",
                          t->tr->model->name);
            else
                run_note_fault(t->r, status, &t->tr->solver, t->tr->model);
            return -1;
        }
    }
    if (!isfinite(*L)) {
        diag_error(&t->r->c->diag, t->dir->loc, "train %s: the loss became %s at step %ld",
                   t->tr->model->name, isnan(*L) ? "nan" : *L > 0 ? "inf" : "-inf", step);
        return -1;
    }
    if (nonfinite_gradient(t, step, *L)) /* before --check-gradient compares it */
        return -1;
    if (step == 1 && t->r->opts->check_gradient && check_gradient(t))
        return -1;
    clip_gradient(t);
    schedule_lr(t, step);
    nd_optim_step_search(t->opt, t->p, t->sum_grad, *L, loss_at, t);
    return 0;
}

/* ---- parameters on disk: safetensors with the IR's names and shapes ---- */

/* The safetensors layout of m's parameters: names, offsets and shapes. */
static NdTensorSpec *model_param_specs(Arena *a, const IrModel *m)
{
    size_t n = (size_t)(m->n_params ? m->n_params : 1);
    NdTensorSpec *s = arena_alloc(a, sizeof *s * n);
    for (int j = 0; j < m->n_params; j++) {
        IrShape sh = m->params[j].shape;
        s[j] = (NdTensorSpec){.name = m->params[j].name, .offset = m->params[j].offset,
                              .size = ir_shape_size(sh), .rank = sh.rank};
        for (int d = 0; d < sh.rank; d++)
            s[j].dims[d] = ir_shape_dim(sh, d);
    }
    return s;
}

static NdTensorSpec *param_specs(Trainer *t)
{
    return model_param_specs(t->r->c->arena, t->tr->model);
}

int run_load_params(Runner *r, const IrModel *m, nd_real *p, const char *path, SrcLoc at)
{
    char err[512];
    if (nd_safetensors_load(path, m->n_params, model_param_specs(r->c->arena, m), p, err,
                            sizeof err) != 0) {
        diag_error(&r->c->diag, at, "cannot load parameters: %s", err);
        return -1;
    }
    return 0;
}

/* ---- the optimizer's state in the same file, so a loaded run resumes exactly ---- */

/* The moment buffers a file may hold, with their tensors' name prefixes
 * (`__optim.m.f.l1.W` is the first moment of parameter f.l1.W). */
static const struct {
    NdOptimMoment which;
    const char *prefix;
} saved_moments[] = {{ND_MOMENT_M, ND_SAFETENSORS_RESERVED "m."},
                     {ND_MOMENT_V, ND_SAFETENSORS_RESERVED "v."}};

enum { N_SAVED_MOMENTS = sizeof saved_moments / sizeof saved_moments[0] };

/* The optimizer's moment buffers in save order (NULL for one it does not keep). */
static int optimizer_moments(Trainer *t, nd_real *out[N_SAVED_MOMENTS])
{
    int n = 0;
    for (int j = 0; j < N_SAVED_MOMENTS; j++)
        n += (out[j] = nd_optim_get_moment(t->opt, saved_moments[j].which)) != NULL;
    return n;
}

/* The parameters' specs followed by one copy per kept moment, offset into one
 * buffer of np * (1 + moments) doubles: the parameters, then each moment. */
static NdTensorSpec *state_specs(Trainer *t, nd_real *const moment[N_SAVED_MOMENTS], int *n)
{
    const IrModel *m = t->tr->model;
    Arena *a = t->r->c->arena;
    NdTensorSpec *params = param_specs(t);
    NdTensorSpec *s = arena_alloc(a, sizeof *s * (size_t)(m->n_params * (1 + N_SAVED_MOMENTS) + 1));
    memcpy(s, params, sizeof *s * (size_t)m->n_params);
    *n = m->n_params;
    for (int j = 0, copy = 1; j < N_SAVED_MOMENTS; j++) {
        if (!moment[j])
            continue;
        for (int i = 0; i < m->n_params; i++) {
            NdTensorSpec *x = &s[(*n)++];
            *x = params[i];
            size_t len = strlen(saved_moments[j].prefix) + strlen(params[i].name) + 1;
            char *name = arena_alloc(a, len);
            snprintf(name, len, "%s%s", saved_moments[j].prefix, params[i].name);
            x->name = name;
            x->offset += (long)copy * t->np;
        }
        copy++;
    }
    return s;
}

/* The parameters and the optimizer's step count and moments, with metadata naming
 * the optimizer, so that a `load` by the same optimizer continues where this
 * run stopped (a resumed Adam keeps its bias correction and moments). */
static int save_params(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    char step[32], err[512];
    snprintf(step, sizeof step, "%ld", nd_optim_get_step(t->opt));
    const char *meta[] = {"format", "nodec", "model", tr->model->name, "step", step,
                          "optimizer", nd_optim_name(nd_optim_get_kind(t->opt))};
    nd_real *moment[N_SAVED_MOMENTS];
    int copies = 1 + optimizer_moments(t, moment), n;
    NdTensorSpec *specs = state_specs(t, moment, &n);
    nd_real *all = train_alloc_reals((size_t)t->np * (size_t)copies);
    if (!all) {
        diag_error(&t->r->c->diag, tr->save_loc, "out of memory for saving '%s'", tr->save);
        return -1;
    }
    memcpy(all, t->p, sizeof(nd_real) * (size_t)t->np);
    for (int j = 0, copy = 1; j < N_SAVED_MOMENTS; j++)
        if (moment[j])
            memcpy(all + (size_t)(copy++) * (size_t)t->np, moment[j], sizeof(nd_real) * (size_t)t->np);
    int rc = nd_safetensors_save(tr->save, n, specs, all, 4, meta, err, sizeof err);
    free(all);
    if (rc != 0) {
        diag_error(&t->r->c->diag, tr->save_loc, "%s", err);
        return -1;
    }
    return 0;
}

/* The step count of a file saved by this train's optimizer, or -1 when the file
 * holds no state for it (*saved_by: the optimizer it names, "" for none). */
static long resumable_step(Trainer *t, char *saved_by, size_t len)
{
    const char *path = t->tr->load, *mine = nd_optim_name(nd_optim_get_kind(t->opt));
    char step[32], err[512], *end;
    saved_by[0] = '\0';
    if (nd_safetensors_get_meta(path, "optimizer", saved_by, len, err, sizeof err) != 1 ||
        strcmp(saved_by, mine) != 0 ||
        nd_safetensors_get_meta(path, "step", step, sizeof step, err, sizeof err) != 1)
        return -1;
    errno = 0;
    long n = strtol(step, &end, 10);
    return errno || end == step || *end || n < 0 ? -1 : n;
}

/* What a load that leaves the optimizer fresh says (not under --quiet). */
static void note_fresh_optimizer(const Trainer *t, const char *saved_by)
{
    const char *mine = nd_optim_name(nd_optim_get_kind(t->opt));
    if (t->r->opts->quiet)
        return;
    if (saved_by[0])
        fprintf(stderr, "train %s: '%s' holds %s's state, not %s's: parameters loaded, %s "
                "starts afresh\n", t->tr->model->name, t->tr->load, saved_by, mine, mine);
    else
        fprintf(stderr, "train %s: '%s' holds no optimizer state: parameters loaded, %s starts "
                "afresh\n", t->tr->model->name, t->tr->load, mine);
}

/* Parameters only (a file from elsewhere, or from another optimizer). */
static int load_parameters_only(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    char err[512];
    if (nd_safetensors_load(tr->load, tr->model->n_params, param_specs(t), t->p, err,
                            sizeof err) != 0) {
        diag_error(&t->r->c->diag, tr->load_loc, "cannot load parameters: %s", err);
        return -1;
    }
    return 0;
}

static int load_params(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    char saved_by[32], err[512];
    long step = resumable_step(t, saved_by, sizeof saved_by);
    if (step < 0) {
        if (load_parameters_only(t))
            return -1;
        note_fresh_optimizer(t, saved_by);
        return 0;
    }
    nd_real *moment[N_SAVED_MOMENTS];
    int copies = 1 + optimizer_moments(t, moment), n;
    NdTensorSpec *specs = state_specs(t, moment, &n);
    nd_real *all = train_alloc_reals((size_t)t->np * (size_t)copies);
    int rc = all ? nd_safetensors_load(tr->load, n, specs, all, err, sizeof err) : -1;
    if (rc != 0) {
        if (!all)
            snprintf(err, sizeof err, "%s: out of memory", tr->load);
        diag_error(&t->r->c->diag, tr->load_loc, "cannot load parameters: %s", err);
        free(all);
        return -1;
    }
    memcpy(t->p, all, sizeof(nd_real) * (size_t)t->np);
    for (int j = 0, copy = 1; j < N_SAVED_MOMENTS; j++)
        if (moment[j])
            memcpy(moment[j], all + (size_t)(copy++) * (size_t)t->np, sizeof(nd_real) * (size_t)t->np);
    nd_optim_set_step(t->opt, step);
    free(all);
    if (!t->r->opts->quiet)
        fprintf(stderr, "train %s: resuming %s at step %ld from '%s'\n", tr->model->name,
                saved_by, step, tr->load);
    return 0;
}

/* ---- Ctrl-C: finish the iteration, then save and stop ---- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* SA_RESETHAND: a second Ctrl-C stops at once (the save is atomic, so even one
 * during the save leaves no broken file). A SIGINT the parent ignores (nohup, a
 * background job) stays ignored. */
static void catch_sigint(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, NULL, old);
    if (old->sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
}

/* ---- progress on stderr, and the history file ---- */

typedef struct Progress {
    const Trainer *t;
    bool quiet;
    bool live;         /* stderr is a terminal: a progress line redrawn in place */
    int width;         /* the terminal's columns: a longer line would not redraw */
    double start, last_draw; /* ms */
    FILE *hist;
    int hist_errno; /* the first failed write to hist, reported when it closes */
} Progress;

enum { PROGRESS_REDRAW_MS = 100 };

static int progress_open(Trainer *t, Progress *pg)
{
    const SemaTrain *tr = t->tr;
    struct winsize ws;
    *pg = (Progress){.t = t, .quiet = t->r->opts->quiet, .start = run_now_ms(), .width = 80};
    pg->live = !pg->quiet && isatty(fileno(stderr));
    if (pg->live && ioctl(fileno(stderr), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        pg->width = ws.ws_col;
    if (!tr->history)
        return 0;
    pg->hist = fopen(tr->history, "w");
    if (!pg->hist) {
        diag_error(&t->r->c->diag, tr->history_loc, "cannot write '%s': %s", tr->history,
                   strerror(errno));
        return -1;
    }
    fputs(tr->validation ? "step,loss,nfe_forward,nfe_backward,seconds,val_loss\n"
                         : "step,loss,nfe_forward,nfe_backward,seconds\n",
          pg->hist);
    return 0;
}

static void format_eta(char *out, size_t len, double secs)
{
    long s = (long)(secs + 0.5);
    if (s < 60)
        snprintf(out, len, "%ld s", s);
    else if (s < 3600)
        snprintf(out, len, "%ld:%02ld", s / 60, s % 60);
    else
        snprintf(out, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* The live line: step, loss, speed, nfe forward/backward, time left. */
static void progress_draw(Progress *pg, long step, nd_real L)
{
    double now = run_now_ms();
    if (!pg->live || now - pg->last_draw < PROGRESS_REDRAW_MS)
        return;
    pg->last_draw = now;
    const Trainer *t = pg->t;
    double rate = step / ((now - pg->start) / 1e3);
    char eta[32], speed[32], line[256];
    format_eta(eta, sizeof eta, (t->tr->steps - step) / rate);
    snprintf(speed, sizeof speed, rate >= 100 ? "%.0f" : "%.3g", rate);
    snprintf(line, sizeof line,
             "train %s: step %ld/%ld  loss %.4g  %s steps/s  nfe %ld/%ld  ETA %s",
             t->tr->model->name, step, t->tr->steps, L, speed, t->nfe_fwd, t->nfe_bwd, eta);
    if (pg->width > 1 && (size_t)pg->width <= sizeof line)
        line[pg->width - 1] = '\0'; /* one column short of the edge, so no wrap */
    fprintf(stderr, "\r\033[K%s", line);
}

static void progress_clear(Progress *pg)
{
    if (pg->live && pg->last_draw > 0)
        fputs("\r\033[K", stderr);
    pg->last_draw = 0;
}

/* A permanent log line on stderr, and a history row when asked. */
static void progress_log(Progress *pg, long step, nd_real L, bool history)
{
    const Trainer *t = pg->t;
    double secs = (run_now_ms() - pg->start) / 1e3;
    char val[48] = "";
    if (t->val)
        snprintf(val, sizeof val, "  val_loss %.6g", t->val_loss);
    if (!pg->quiet) {
        progress_clear(pg);
        fprintf(stderr, "train %s: step %ld/%ld  loss %.6g%s  nfe %ld/%ld  %.2f s\n",
                t->tr->model->name, step, t->tr->steps, L, val, t->nfe_fwd, t->nfe_bwd, secs);
    }
    if (pg->hist && history) {
        fprintf(pg->hist, "%ld,%.*g,%ld,%ld,%.6f", step, ND_REAL_DIGITS, (double)L, t->nfe_fwd, t->nfe_bwd, secs);
        if (t->val)
            fprintf(pg->hist, ",%.*g", ND_REAL_DIGITS, (double)t->val_loss);
        fputc('\n', pg->hist);
        if (fflush(pg->hist) != 0 && !pg->hist_errno) /* readable while training runs */
            pg->hist_errno = errno;
    }
}

static int progress_close(Progress *pg)
{
    progress_clear(pg);
    if (!pg->hist)
        return 0;
    int bad = ferror(pg->hist), err = pg->hist_errno;
    if (fclose(pg->hist) != 0 && !err)
        err = errno;
    if (bad || err) { /* a failed fflush leaves nothing for fclose to fail on */
        diag_error(&pg->t->r->c->diag, pg->t->tr->history_loc, "cannot write '%s': %s",
                   pg->t->tr->history, strerror(err ? err : EIO));
        return -1;
    }
    return 0;
}

/* ---- the allocation check (NODEC_ALLOC_CHECK=1, for the tests) ---- */

/* Training iterations must not allocate: with the variable set, the heap in use
 * is compared before and after every iteration but the first (which may size
 * the backprop tape), and the count of iterations that changed it is reported. */
typedef struct AllocCheck {
    bool on;
    size_t before;
    long changed, checked;
} AllocCheck;

static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

static void alloc_check_before(AllocCheck *ac, long step)
{
    if (ac->on && step > 1)
        ac->before = heap_in_use();
}

static void alloc_check_after(AllocCheck *ac, long step)
{
    if (!ac->on || step == 1)
        return;
    ac->checked++;
    ac->changed += heap_in_use() != ac->before;
}

static void alloc_check_report(const AllocCheck *ac, const Trainer *t)
{
    if (ac->on)
        fprintf(stderr, "train %s: allocation check: the heap changed in %ld of %ld iterations\n",
                t->tr->model->name, ac->changed, ac->checked);
}

/* ---- validation ---- */

/* Every group's loss and its first n_metrics metrics at t's parameters, one
 * forward solve each (evaluate, and the validation set's scores): summed into
 * *L and metrics, the forward evaluations into *nfe; on a train_failure, the
 * group's loss object (for its message) in *failed. Allocates nothing. */
int train_forward_groups(Trainer *t, int n_metrics, double *L, double *metrics, long *nfe,
                          const NdTrainLoss **failed)
{
    int at_each = t->tr->loss != NULL; /* metrics are averaged like the loss */
    for (int i = 0; i < t->n_groups; i++) {
        Group *g = &t->groups[i];
        NdTrainLoss *tl = g->B == t->group_B ? t->tl : t->tl_rest;
        if (t->tr->n_eps > 0)
            train_draw_eps(t, i);
        int status = train_group_rows(t, g, t->p);
        if (status != ND_OK) {
            *failed = tl;
            return status;
        }
        double Lg = 0;
        nd_train_loss_set_observed(tl, g->observed, g->last);
        status = nd_train_loss_evaluate(tl, t->p, g->nt, g->ts, t->ncols ? t->drows : NULL,
                                            t->scale_obs, t->scale_final, n_metrics,
                                            t->metric_fn, at_each, &Lg, metrics);
        if (status != ND_OK) {
            *failed = tl;
            return status;
        }
        *L += Lg;
        *nfe += nd_train_loss_get_forward_evals(tl) + t->enc.nfe_fwd;
    }
    return ND_OK;
}

/* The evaluator of `validation = D`: the train's kernels and parameters over
 * D's rows, grouped as evaluate groups them (whole trajectories, or every
 * sample), with forward losses made before the first step. */
static int validation_setup(Trainer *t)
{
    Arena *a = t->r->c->arena;
    SemaTrain *vtr = arena_alloc(a, sizeof *vtr);
    *vtr = *t->tr;
    vtr->data = (SemaData *)t->tr->validation;
    vtr->batch = SEMA_BATCH_ALL;
    Trainer *v = arena_alloc(a, sizeof *v);
    *v = (Trainer){.r = t->r, .dir = t->dir, .tr = vtr, .m = t->m, .p = t->p, .k = t->k,
                   .ny = t->ny, .np = t->np, .ncols = t->ncols, .cost_offset = t->cost_offset};
    memcpy(v->fn, t->fn, sizeof v->fn);
    if (vtr->data->t_col >= 0) {
        if (train_plan_time_series(v) != 0)
            return -1;
    } else {
        evaluate_plan_samples(v);
    }
    t->val = v;
    t->best_val = INFINITY;
    return evaluate_workspace(v);
}

/* The loss of the validation set at the current parameters (no gradient). */
static int score_validation(Trainer *t, long step)
{
    double sum = 0;
    long nfe = 0;
    const NdTrainLoss *failed;
    int status = train_forward_groups(t->val, 0, &sum, NULL, &nfe, &failed);
    if (status != ND_OK) {
        diag_error(&t->r->c->diag, t->dir->loc,
                   "train %s: scoring the validation set '%s' at step %ld failed (%s): %s",
                   t->tr->model->name, t->tr->validation->name, step, nd_status_name(status),
                   train_failure(t, failed));
        run_note_fault(t->r, status, &t->tr->solver, t->tr->model);
        return -1;
    }
    t->val_loss = sum;
    if (sum < t->best_val) {
        t->best_val = sum;
        t->best_step = step;
        t->since_best = 0;
    } else {
        t->since_best++;
    }
    return 0;
}

/* `patience = N`: N scores in a row without a lower validation loss. */
static bool early_stop(Trainer *t, long step)
{
    long patience = t->tr->patience;
    if (!t->val || patience <= 0 || t->since_best < patience || step == t->tr->steps)
        return false;
    if (!t->r->opts->quiet)
        fprintf(stderr, "train %s: stopped early at step %ld: the validation loss has not gone "
                        "below %.6g (step %ld) in %ld scores\n",
                t->tr->model->name, step, t->best_val, t->best_step, patience);
    return true;
}

/* ---- the loop ---- */

static int train_loop(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    Progress pg;
    if (progress_open(t, &pg))
        return -1;
    const char *check = getenv("NODEC_ALLOC_CHECK");
    AllocCheck ac = {.on = check && *check && strcmp(check, "0") != 0};
    long log_every = tr->log_every > 0 ? tr->log_every : (tr->steps >= 10 ? tr->steps / 10 : 1);
    struct sigaction old;
    catch_sigint(&old);
    int rc = 0;
    for (long step = 1; step <= tr->steps && !interrupted; step++) {
        nd_real L;
        alloc_check_before(&ac, step);
        rc = train_step(t, step, &L);
        alloc_check_after(&ac, step);
        if (rc)
            break;
        t->steps_done = step;
        bool log = step % log_every == 0 || step == tr->steps || interrupted;
        if (log && t->val && (rc = score_validation(t, step)) != 0)
            break;
        if (log)
            progress_log(&pg, step, L, step % log_every == 0);
        else
            progress_draw(&pg, step, L);
        t->last_loss = L;
        if (log && early_stop(t, step))
            break;
    }
    if (tr->steps == 0 && !pg.quiet)
        fprintf(stderr, "train %s: steps = 0: no optimizer step, the parameters as %s\n",
                tr->model->name, tr->load ? "loaded" : "initialized");
    bool stopped = interrupted && t->steps_done < tr->steps;
    sigaction(SIGINT, &old, NULL);
    if (progress_close(&pg))
        rc = -1;
    alloc_check_report(&ac, t);
    return rc ? -1 : stopped ? TRAIN_INTERRUPTED : 0;
}

/* After a Ctrl-C: what was kept, said even under --quiet. */
static void note_interrupt(const Trainer *t, int saved)
{
    const SemaTrain *tr = t->tr;
    fprintf(stderr, "train %s: interrupted at step %ld", tr->model->name, t->steps_done);
    if (tr->save)
        fprintf(stderr, "; parameters %s to '%s'", saved == 0 ? "saved" : "NOT saved", tr->save);
    if (tr->history)
        fprintf(stderr, "; history in '%s'", tr->history);
    fputc('\n', stderr);
}

/* Runs one train directive: 0, -1 after reporting, or TRAIN_INTERRUPTED after a
 * Ctrl-C (the parameters saved when `save` is given). */
/* At the end of a train: the last loss (and validation loss), the time, and
 * the value of each parameter of at most 8 elements (the fitted rates of a
 * mechanistic model; a network's weights are too many to read). */
static void print_summary(const Trainer *t, double secs)
{
    const IrModel *m = t->tr->model;
    fprintf(stderr, "train %s: done: %ld steps in %.2f s, loss %.6g", m->name, t->steps_done, secs,
            t->last_loss);
    if (t->val)
        fprintf(stderr, ", val_loss %.6g (best %.6g at step %ld)", t->val_loss, t->best_val,
                t->best_step);
    fputc('\n', stderr);
    for (int j = 0; j < m->n_params; j++) {
        const IrVar *v = &m->params[j];
        int n = ir_shape_size(v->shape);
        if (n > 8)
            continue;
        fprintf(stderr, "  %s = ", v->name);
        if (v->shape.rank > 0)
            fputc('[', stderr);
        for (int k = 0; k < n; k++)
            fprintf(stderr, "%s%.8g", k ? ", " : "", t->p[v->offset + k]);
        fputs(v->shape.rank > 0 ? "]\n" : "\n", stderr);
    }
}

void trainer_start(Trainer *t, Runner *r, const SemaDirective *d)
{
    const SemaTrain *tr = &d->train;
    /* the model, or its copy with shared states (sema_shared.c) */
    *t = (Trainer){.r = r, .dir = d, .tr = tr, .m = tr->augmented, .cost_offset = -1};
    t->p = run_model(r, tr->model)->p;
    t->ny = t->m->ny;
    t->np = t->m->np;
    t->ncols = tr->eps_col + tr->n_eps; /* the data's columns, the encoder's, sample's noise */
    if (tr->cost_state >= 0) /* per sample; its offset counts per-sample elements (sema_shared.c) */
        t->cost_offset = t->m->states[tr->cost_state].offset;
    train_take_kernels(t);
}

int train_run(Runner *r, const SemaDirective *d)
{
    const SemaTrain *tr = &d->train;
    Trainer t;
    trainer_start(&t, r, d);
    if (t.np == 0) /* sema refuses a train of a model without parameters */
        INTERNAL_ERROR("train of model '%s' reached the runner without parameters",
                       tr->model->name);
    int rc = tr->data && tr->data->t_col >= 0 ? train_plan_time_series(&t) : plan_samples(&t);
    if (rc == 0)
        rc = alloc_workspace(&t);
    if (rc == 0 && tr->validation)
        rc = validation_setup(&t);
    if (rc == 0 && tr->load)
        rc = load_params(&t);
    double t0 = run_now_ms();
    if (rc == 0)
        rc = train_loop(&t);
    if (rc == 0 && !r->opts->quiet)
        print_summary(&t, (run_now_ms() - t0) / 1e3);
    int saved = 0;
    if ((rc == 0 || rc == TRAIN_INTERRUPTED) && tr->save)
        saved = save_params(&t);
    if (rc == TRAIN_INTERRUPTED)
        note_interrupt(&t, saved);
    else if (saved)
        rc = -1;
    if (t.val)
        trainer_free(t.val);
    trainer_free(&t);
    return rc;
}
