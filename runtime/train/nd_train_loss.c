/* A batch's loss and gradient through the solve (nd_train_loss.h): the loss
 * callback nd_gradient calls at each observation, fed by the loss kernels,
 * then the initial states' share of the gradient through init_vjp. The
 * arithmetic is tools/train.c's, in its order (a term's values summed sample
 * by sample, then scaled gradients added), so a program that drives this
 * object gets the training loop's numbers. */
#include "nd_train_loss.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct NdTrainLoss {
    NdKernels k;
    NdLossKernels lk;
    NdGradient *g;
    int64_t B;
    int max_nt;
    const char *msg; /* an argument refused by the last compute, or NULL */
    /* the current compute */
    const nd_real *d;
    int nt;
    nd_real scale_obs, scale_final;
    /* nd_train_loss_set_observed: which samples each time observes, and the
     * time of each sample's last observation; NULL: all, and the last time */
    const unsigned char *observed;
    const int *last;
    nd_real *work, *dbuf, *vals, *gy_tmp, *gp_tmp, *y0, *grad_y0;
    nd_real *ysub; /* a run of samples with the shared block (run_state) */
    nd_real *gd, *gd_tmp; /* B * gd_n: dL/d(the encoder's columns), and one term's */
    /* a forward object (nd_train_loss_create_forward) */
    NdSolver *solver;
    nd_real *yout; /* max_nt * (B * ny + ns): the states at every observation */
};

static const nd_real *row_block(const NdTrainLoss *t, int j)
{
    return t->lk.nd ? t->d + (size_t)j * (size_t)t->B * (size_t)t->lk.nd : NULL;
}

/* Samples [b0, b0 + nb) of the batch: the kernels' layout is sample-major, so
 * a run of samples is a batch of its own (y, d and gy offset to its first). */
typedef struct Run {
    int64_t b0, nb;
} Run;

/* The next run of samples at or after *b that time j scores: observed there
 * (final = 0) or observed for the last time there (final = 1). Without masks
 * every sample is observed at every time and for the last time at the last. */
static int next_run(const NdTrainLoss *t, int j, int final, int64_t *b, Run *r)
{
    if (!t->observed) {
        if (*b > 0 || (final && j < t->nt - 1))
            return 0;
        *r = (Run){0, t->B};
        *b = t->B;
        return 1;
    }
    const unsigned char *obs = t->observed + (size_t)j * (size_t)t->B;
#define SCORED(i) (final ? t->last[i] == j : obs[i] != 0)
    while (*b < t->B && !SCORED(*b))
        (*b)++;
    if (*b >= t->B)
        return 0;
    r->b0 = *b;
    while (*b < t->B && SCORED(*b))
        (*b)++;
#undef SCORED
    r->nb = *b - r->b0;
    return 1;
}

/* The state of run r as a batch of its own: y itself for the whole batch, else
 * its samples' rows followed by the shared block (the kernels read that at
 * y + nb * ny), copied into ysub when there is a shared block. */
static const nd_real *run_state(const NdTrainLoss *t, Run r, const nd_real *y)
{
    size_t ny = (size_t)t->k.ny, n = (size_t)r.nb * ny;
    if (t->k.ns == 0 || r.nb == t->B)
        return y + (size_t)r.b0 * ny;
    memcpy(t->ysub, y + (size_t)r.b0 * ny, sizeof(nd_real) * n);
    memcpy(t->ysub + n, y + (size_t)t->B * ny, sizeof(nd_real) * (size_t)t->k.ns);
    return t->ysub;
}

/* Adds scale * the data gradient kernel grad_d over run r to the samples' rows of gd. */
static void add_data_term(NdTrainLoss *t, NdKernelFn grad_d, nd_real scale, nd_real tj, Run r,
                          const nd_real *yr, const nd_real *p, const nd_real *a,
                          const nd_real *dr)
{
    size_t w = (size_t)t->lk.gd_n;
    grad_d(tj, yr, p, a, dr, t->gd_tmp, NULL, r.nb, t->work);
    for (size_t i = 0; i < (size_t)r.nb * w; i++)
        t->gd[(size_t)r.b0 * w + i] += scale * t->gd_tmp[i];
}

/* Adds scale * (sum of the value kernel over run r) to *L and scale * its
 * gradient to gy, gp (the shared block's part to gy's shared block), and to the
 * encoder's columns with grad_d (when not NULL). */
static void add_term(NdTrainLoss *t, NdKernelFn value, NdKernelFn grad, NdKernelFn grad_d,
                     nd_real scale, nd_real tj, Run r, const nd_real *y, const nd_real *p,
                     const nd_real *d, nd_real *L, nd_real *gy, nd_real *gp)
{
    size_t ny = (size_t)t->k.ny, n = (size_t)r.nb * ny, off = (size_t)r.b0 * ny;
    const nd_real *dr = d ? d + (size_t)r.b0 * (size_t)t->lk.nd : NULL, *yr = run_state(t, r, y);
    value(tj, yr, p, NULL, dr, t->vals, NULL, r.nb, t->work);
    for (int64_t b = 0; b < r.nb; b++)
        *L += scale * t->vals[b];
    grad(tj, yr, p, NULL, dr, t->gy_tmp, t->gp_tmp, r.nb, t->work);
    for (size_t i = 0; i < n; i++)
        gy[off + i] += scale * t->gy_tmp[i];
    for (size_t i = 0; i < (size_t)t->k.ns; i++)
        gy[(size_t)t->B * ny + i] += scale * t->gy_tmp[n + i];
    for (int i = 0; i < t->k.np; i++)
        gp[i] += scale * t->gp_tmp[i];
    if (grad_d && t->lk.gd_n > 0)
        add_data_term(t, grad_d, scale, tj, r, yr, p, NULL, dr);
}

static int observe(void *ctx, int j, nd_real tj, const nd_real *y, const nd_real *p, nd_real *L,
                   nd_real *gy, nd_real *gp)
{
    NdTrainLoss *t = (NdTrainLoss *)ctx;
    const nd_real *d = row_block(t, j);
    size_t ny = (size_t)t->k.ny;
    memset(gy, 0, sizeof(nd_real) * nd_kernels_state_size(&t->k, t->B));
    Run r;
    for (int64_t b = 0; t->lk.loss && next_run(t, j, 0, &b, &r);)
        add_term(t, t->lk.loss, t->lk.loss_grad, t->lk.loss_grad_d, t->scale_obs, tj, r, y, p, d,
                 L, gy, gp);
    for (int64_t b = 0; next_run(t, j, 1, &b, &r);) {
        if (t->lk.final)
            add_term(t, t->lk.final, t->lk.final_grad, t->lk.final_grad_d, t->scale_final, tj, r,
                     y, p, d, L, gy, gp);
        for (int64_t i = r.b0; t->lk.cost_offset >= 0 && i < r.b0 + r.nb; i++) {
            *L += t->scale_final * y[(size_t)i * ny + (size_t)t->lk.cost_offset];
            gy[(size_t)i * ny + (size_t)t->lk.cost_offset] += t->scale_final;
        }
    }
    return 0;
}

static nd_real *alloc_doubles(size_t n)
{
    return (nd_real *)calloc(n ? n : 1, sizeof(nd_real));
}

NdTrainLoss *nd_train_loss_create(const NdKernels *k, const NdLossKernels *lk,
                                  const NdSolver *solver_template, NdGradMethod gm, int64_t B,
                                  int max_nt)
{
    if (!k || !lk || !lk->init || (lk->loss && !lk->loss_grad) || (lk->final && !lk->final_grad) ||
        B < 1 || max_nt < 2)
        return NULL;
    NdTrainLoss *t = (NdTrainLoss *)calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t n = nd_kernels_state_size(k, B), np = (size_t)k->np;
    t->k = *k;
    t->lk = *lk;
    t->B = B;
    t->max_nt = max_nt;
    t->work = alloc_doubles(nd_kernels_work_size(k, B));
    t->vals = alloc_doubles((size_t)B);
    t->gy_tmp = alloc_doubles(n);
    t->gp_tmp = alloc_doubles(np);
    t->y0 = alloc_doubles(n);
    t->grad_y0 = alloc_doubles(n);
    t->ysub = alloc_doubles(n);
    t->gd = alloc_doubles((size_t)B * (size_t)lk->gd_n);
    t->gd_tmp = alloc_doubles((size_t)B * (size_t)lk->gd_n);
    t->g = nd_gradient_create(k, solver_template, gm, B, max_nt);
    if (!t->work || !t->vals || !t->gy_tmp || !t->gp_tmp || !t->y0 || !t->grad_y0 || !t->ysub ||
        !t->gd || !t->gd_tmp || !t->g) {
        nd_train_loss_free(t);
        return NULL;
    }
    return t;
}

NdTrainLoss *nd_train_loss_create_forward(const NdKernels *k, const NdLossKernels *lk,
                                          const NdSolver *solver_template, int64_t B,
                                          int max_nt)
{
    if (!k || !lk || !lk->init || B < 1 || max_nt < 2)
        return NULL;
    NdTrainLoss *t = (NdTrainLoss *)calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t n = nd_kernels_state_size(k, B);
    t->k = *k;
    t->lk = *lk;
    t->B = B;
    t->max_nt = max_nt;
    t->work = alloc_doubles(nd_kernels_work_size(k, B));
    t->vals = alloc_doubles((size_t)B);
    t->y0 = alloc_doubles(n);
    t->yout = alloc_doubles((size_t)max_nt * n);
    t->ysub = alloc_doubles(n);
    t->solver = nd_solver_create_like(solver_template, k, B);
    if (!t->work || !t->vals || !t->y0 || !t->yout || !t->ysub || !t->solver) {
        nd_train_loss_free(t);
        return NULL;
    }
    return t;
}

/* sum over the samples time j scores (as next_run) of kernel f's value at
 * (tj, y), times scale, into *acc: a double, so a score summed over many
 * samples in single precision is not off in its sixth digit; with each (not
 * NULL), each sample's unscaled value into each[b] instead */
static void add_value(NdTrainLoss *t, NdKernelFn f, int j, int final, double scale, nd_real tj,
                      const nd_real *y, const nd_real *p, const nd_real *d, double *acc,
                      double *each)
{
    Run r;
    for (int64_t b = 0; next_run(t, j, final, &b, &r);) {
        f(tj, run_state(t, r, y), p, NULL, d ? d + (size_t)r.b0 * (size_t)t->lk.nd : NULL,
          t->vals, NULL, r.nb, t->work);
        for (int64_t i = 0; i < r.nb; i++)
            if (each)
                each[r.b0 + i] += t->vals[i];
            else
                *acc += scale * t->vals[i];
    }
}

/* the running costs of the samples time j observes for the last time (as add_value) */
static void add_costs(NdTrainLoss *t, int j, double scale, const nd_real *y, double *acc,
                      double *each)
{
    Run r;
    size_t ny = (size_t)t->k.ny;
    for (int64_t b = 0; t->lk.cost_offset >= 0 && next_run(t, j, 1, &b, &r);)
        for (int64_t i = r.b0; i < r.b0 + r.nb; i++) {
            nd_real c = y[(size_t)i * ny + (size_t)t->lk.cost_offset];
            if (each)
                each[i] += c;
            else
                *acc += scale * c;
        }
}

/* A forward object's solve: y0 from init (and prepare), the states at every ts into
 * yout; ND_ERR_ARG (with the message) for a gradient object, too many times or a
 * NULL argument (outputs_ok: the caller's outputs are there). */
static int forward_solve(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                         const nd_real *d, bool outputs_ok)
{
    t->msg = !t->solver ? "not a forward object (nd_train_loss_create_forward)"
             : nt > t->max_nt ? "more observation times than the object was created for"
             : !p || !ts || !outputs_ok || (t->lk.nd && !d) ? "a NULL argument"
                                                            : NULL;
    if (t->msg)
        return ND_ERR_ARG;
    t->d = d;
    t->nt = nt;
    t->lk.init(ts[0], NULL, p, NULL, row_block(t, 0), t->y0, NULL, t->B, t->work);
    if (t->lk.prepare)
        t->lk.prepare(t->lk.prepare_ctx, t->y0, t->B);
    return nd_solve(t->solver, p, t->y0, ts, nt, t->yout);
}

void nd_train_loss_set_observed(NdTrainLoss *t, const unsigned char *observed, const int *last)
{
    t->observed = observed && last ? observed : NULL;
    t->last = observed && last ? last : NULL;
}

int nd_train_loss_evaluate(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                           const nd_real *d, double scale_obs, double scale_final, int n_metrics,
                           NdKernelFn const *metrics, int metrics_at_each, double *L,
                           double *metric_sums)
{
    int status = forward_solve(t, p, nt, ts, d,
                               L && (n_metrics <= 0 || (metrics && metric_sums)));
    if (status != ND_OK)
        return status;
    *L = 0;
    size_t n = nd_kernels_state_size(&t->k, t->B);
    for (int j = 0; j < nt; j++) {
        const nd_real *y = t->yout + (size_t)j * n, *dj = row_block(t, j);
        if (t->lk.loss)
            add_value(t, t->lk.loss, j, 0, scale_obs, ts[j], y, p, dj, L, NULL);
        if (t->lk.final)
            add_value(t, t->lk.final, j, 1, scale_final, ts[j], y, p, dj, L, NULL);
        add_costs(t, j, scale_final, y, L, NULL);
        for (int k = 0; k < n_metrics; k++)
            add_value(t, metrics[k], j, !metrics_at_each,
                      metrics_at_each ? scale_obs : scale_final, ts[j], y, p, dj,
                      &metric_sums[k], NULL);
    }
    return ND_OK;
}

int nd_train_loss_evaluate_samples(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                                   const nd_real *d, double *totals)
{
    int status = forward_solve(t, p, nt, ts, d, totals != NULL);
    if (status != ND_OK)
        return status;
    memset(totals, 0, sizeof(double) * (size_t)t->B);
    size_t n = nd_kernels_state_size(&t->k, t->B);
    for (int j = 0; j < nt; j++) {
        const nd_real *y = t->yout + (size_t)j * n, *dj = row_block(t, j);
        if (t->lk.loss)
            add_value(t, t->lk.loss, j, 0, 1, ts[j], y, p, dj, NULL, totals);
        if (t->lk.final)
            add_value(t, t->lk.final, j, 1, 1, ts[j], y, p, dj, NULL, totals);
        add_costs(t, j, 1, y, NULL, totals);
    }
    return ND_OK;
}

long nd_train_loss_get_forward_evals(const NdTrainLoss *t)
{
    return t->solver ? nd_solver_get_num_rhs_evals(t->solver) : 0;
}

void nd_train_loss_free(NdTrainLoss *t)
{
    if (!t)
        return;
    nd_solver_free(t->solver);
    free(t->yout);
    nd_real *bufs[] = {t->work, t->vals, t->gy_tmp, t->gp_tmp, t->y0, t->grad_y0, t->ysub,
                       t->gd, t->gd_tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    nd_gradient_free(t->g);
    free(t);
}

NdGradient *nd_train_loss_get_gradient(NdTrainLoss *t)
{
    return t->g;
}

int64_t nd_train_loss_get_batch(const NdTrainLoss *t)
{
    return t->B;
}

const char *nd_train_loss_get_message(const NdTrainLoss *t)
{
    return t->msg ? t->msg : t->solver ? nd_solver_get_message(t->solver)
                                       : nd_gradient_get_message(t->g);
}

int nd_train_loss_compute(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                          const nd_real *d, nd_real scale_obs, nd_real scale_final, nd_real *L,
                          nd_real *grad_p)
{
    t->msg = !t->g ? "a forward object has no gradient (nd_train_loss_create)"
             : nt > t->max_nt ? "more observation times than the object was created for"
             : !p || !ts || !L || !grad_p || (t->lk.nd && !d) ? "a NULL argument"
                                                               : NULL;
    if (t->msg)
        return ND_ERR_ARG;
    t->nt = nt;
    t->d = d;
    t->scale_obs = scale_obs;
    t->scale_final = scale_final;
    t->lk.init(ts[0], NULL, p, NULL, row_block(t, 0), t->y0, NULL, t->B, t->work);
    if (t->lk.prepare)
        t->lk.prepare(t->lk.prepare_ctx, t->y0, t->B);
    NdLoss loss = {nt, ts, observe, t};
    *L = 0;
    memset(t->gd, 0, sizeof(nd_real) * (size_t)t->B * (size_t)t->lk.gd_n);
    int status = nd_gradient_compute(t->g, p, t->y0, &loss, L, grad_p, t->grad_y0);
    if (status != ND_OK)
        return status;
    if (t->lk.init_vjp) {
        t->lk.init_vjp(ts[0], NULL, p, t->grad_y0, row_block(t, 0), NULL, t->gp_tmp, t->B,
                       t->work);
        for (int i = 0; i < t->k.np; i++)
            grad_p[i] += t->gp_tmp[i];
    }
    if (t->lk.init_vjp_d && t->lk.gd_n > 0)
        add_data_term(t, t->lk.init_vjp_d, 1, ts[0], (Run){0, t->B}, NULL, p, t->grad_y0,
                      row_block(t, 0));
    return ND_OK;
}

const nd_real *nd_train_loss_get_data_gradient(const NdTrainLoss *t)
{
    return t->gd;
}
