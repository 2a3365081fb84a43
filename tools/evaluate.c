/* `evaluate M { ... }`: the loss and the metrics of a data set at the model's
 * parameters, one forward solve per group and no gradient (docs/training.md,
 * "evaluate"); its workspace also serves a train's validation set. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

/* Sample data in chunks of the minibatch size (all rows, in order; the last
 * chunk may be smaller), or one group of every row (or of the one sample
 * without data); the scales average over every sample. */
void evaluate_plan_samples(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    int n = tr->data ? tr->data->nrows : 1;
    int B = tr->batch == SEMA_BATCH_MINIBATCH && tr->batch_count < n ? tr->batch_count : n;
    int groups = (n + B - 1) / B;
    train_alloc_groups(t, groups, B, tr->nt);
    for (int g = 0; g < groups; g++) {
        t->groups[g].ts = train_span(t, tr->t, tr->nt);
        t->groups[g].B = g == groups - 1 ? n - g * B : B;
        for (int b = 0; b < t->groups[g].B; b++)
            t->groups[g].rows[b] = tr->data ? g * B + b : -1;
    }
    t->scale_obs = 1.0 / ((double)n * tr->nt);
    t->scale_final = 1.0 / n;
}

int evaluate_workspace(Trainer *t)
{
    if (train_workspace_fits(t) != 0)
        return -1;
    t->drows = train_alloc_reals((size_t)t->group_nt * (size_t)t->group_B * (size_t)t->ncols);
    t->eps = train_alloc_reals((size_t)t->n_groups * (size_t)t->group_B * (size_t)t->tr->n_eps);
    NdSolver *tmpl = run_make_solver(t->r, &t->tr->solver, t->dir->loc, &t->k, t->group_B);
    if (!tmpl)
        return -1;
    nd_solver_set_element_namer(tmpl, run_name_element, t->m);
    if (nd_method_is_sde(t->tr->solver.method)) /* one Brownian path, from the directive's stream */
        nd_solver_set_brownian(tmpl, nd_random_u64(&t->r->rng));
    NdLossKernels lk = {.loss = t->fn[TRAIN_K_LOSS], .final = t->fn[TRAIN_K_FINAL],
                        .init = t->fn[TRAIN_K_INIT], .nd = t->ncols,
                        .cost_offset = t->cost_offset, .prepare = train_draw_noise, .prepare_ctx = t};
    t->tl = nd_train_loss_create_forward(&t->k, &lk, tmpl, t->group_B, t->group_nt);
    int rest = t->groups[t->n_groups - 1].B;
    if (train_encoder_create(t->r, t->dir, t->group_B, rest, t->group_nt, t->ncols, false,
                             &t->enc)) {
        nd_solver_free(tmpl);
        return -1;
    }
    if (rest != t->group_B)
        t->tl_rest = nd_train_loss_create_forward(&t->k, &lk, tmpl, rest, t->group_nt);
    nd_solver_free(tmpl);
    if (t->tr->iwae > 0)
        t->iw = calloc(3 * (size_t)t->group_B, sizeof(double));
    if (!t->drows || !t->eps || !t->tl || (rest != t->group_B && !t->tl_rest) ||
        (t->tr->iwae > 0 && !t->iw)) {
        diag_error(&t->r->c->diag, t->dir->loc, "out of memory for this evaluate");
        return -1;
    }
    return 0;
}

/* `iwae = K`: per sample, -log (1/K) sum_k exp(-L_k) over K fresh draws of its
 * `sample`s, L_k the unscaled total of its terms at draw k (Burda et al. 2016), the
 * log-mean-exp taken stably; its mean over the samples into *iwae. */
static int iwae_groups(Trainer *t, double *iwae, long *nfe, const NdTrainLoss **failed)
{
    long K = t->tr->iwae;
    double sum = 0;
    long n = 0;
    for (int i = 0; i < t->n_groups; i++) {
        Group *g = &t->groups[i];
        NdTrainLoss *tl = g->B == t->group_B ? t->tl : t->tl_rest;
        double *most = t->iw, *acc = t->iw + g->B, *total = t->iw + 2 * (size_t)g->B;
        for (int b = 0; b < g->B; b++) {
            most[b] = -INFINITY;
            acc[b] = 0;
        }
        nd_train_loss_set_observed(tl, g->observed, g->last);
        for (long k = 0; k < K; k++) {
            train_draw_eps(t, i);
            int status = train_group_rows(t, g, t->p);
            if (status == ND_OK)
                status = nd_train_loss_evaluate_samples(tl, t->p, g->nt, g->ts,
                                                        t->ncols ? t->drows : NULL, total);
            if (status != ND_OK) {
                *failed = tl;
                return status;
            }
            *nfe += nd_train_loss_get_forward_evals(tl) + t->enc.nfe_fwd;
            for (int b = 0; b < g->B; b++) {
                double lw = -total[b];
                if (lw > most[b]) { /* rescale the sum to the new largest log-weight */
                    acc[b] = acc[b] * exp(most[b] - lw) + 1;
                    most[b] = lw;
                } else {
                    acc[b] += exp(lw - most[b]);
                }
            }
        }
        for (int b = 0; b < g->B; b++, n++)
            sum += -(most[b] + log(acc[b] / (double)K));
    }
    *iwae = sum / (double)n;
    return ND_OK;
}

/* One CSV row of the scores: a header line, then the values. */
static int write_scores(const SemaTrain *tr, double L, const double *metrics, double iwae)
{
    FILE *f = fopen(tr->output, "w");
    if (!f)
        return -1;
    errno = 0;
    fputs("loss", f);
    for (int k = 0; k < tr->n_metrics; k++)
        fprintf(f, ",%s", tr->metric_names[k]);
    if (tr->iwae > 0)
        fputs(",iwae", f);
    fprintf(f, "\n%.*g", ND_REAL_DIGITS, L);
    for (int k = 0; k < tr->n_metrics; k++)
        fprintf(f, ",%.*g", ND_REAL_DIGITS, metrics[k]);
    if (tr->iwae > 0)
        fprintf(f, ",%.*g", ND_REAL_DIGITS, iwae);
    fputc('\n', f);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err)
        err = errno ? errno : EIO;
    errno = err;
    return err ? -1 : 0;
}

/* Every group's loss and metrics, one forward solve each; then `loss = ...`
 * and `NAME = ...` on stdout (and a progress line on stderr). */
static int evaluate_groups(Trainer *t)
{
    const SemaTrain *tr = t->tr;
    double L = 0, metrics[SEMA_MAX_METRICS] = {0};
    long nfe = 0;
    double t0 = run_now_ms();
    const NdTrainLoss *failed;
    double iwae = 0;
    int status = train_forward_groups(t, tr->n_metrics, &L, metrics, &nfe, &failed);
    if (status == ND_OK && tr->iwae > 0)
        status = iwae_groups(t, &iwae, &nfe, &failed);
    if (status != ND_OK) {
        diag_error(&t->r->c->diag, t->dir->loc, "evaluate %s failed (%s): %s", tr->model->name,
                   nd_status_name(status), train_failure(t, failed));
        run_note_fault(t->r, status, &tr->solver, tr->model);
        return -1;
    }
    double ms = run_now_ms() - t0;
    if (!t->r->opts->quiet)
        fprintf(stderr, "evaluate %s: %d samples in %d %s, nfe %ld/0, %.2f %s%s%s\n",
                tr->model->name, t->n_groups > 1 ? (t->n_groups - 1) * t->group_B +
                                                        t->groups[t->n_groups - 1].B
                                                  : t->groups[0].B,
                t->n_groups, t->n_groups == 1 ? "batch" : "batches", nfe,
                ms < 1e3 ? ms : ms / 1e3, ms < 1e3 ? "ms" : "s", tr->output ? " -> " : "",
                tr->output ? tr->output : "");
    printf("loss = %.10g\n", L);
    for (int k = 0; k < tr->n_metrics; k++)
        printf("%s = %.10g\n", tr->metric_names[k], metrics[k]);
    if (tr->iwae > 0)
        printf("iwae = %.10g\n", iwae);
    if (tr->output && write_scores(tr, L, metrics, iwae) != 0) {
        diag_error(&t->r->c->diag, tr->output_loc, "cannot write '%s': %s", tr->output,
                   strerror(errno));
        return -1;
    }
    return 0;
}

int evaluate_run(Runner *r, const SemaDirective *d)
{
    const SemaTrain *tr = &d->train;
    Trainer t;
    trainer_start(&t, r, d);
    int rc = 0;
    if (tr->data && tr->data->t_col >= 0)
        rc = train_plan_time_series(&t);
    else
        evaluate_plan_samples(&t);
    if (rc == 0)
        rc = evaluate_workspace(&t);
    if (rc == 0 && tr->load)
        rc = run_load_params(r, tr->model, t.p, tr->load, tr->load_loc);
    if (rc == 0)
        rc = evaluate_groups(&t);
    trainer_free(&t);
    return rc;
}
