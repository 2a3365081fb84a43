/* Shared by the training loop (train.c) and evaluate (evaluate.c): a train or
 * evaluate directive's batches, its kernels and its workspace, and the steps both
 * take (rows, encodings, forward losses). */
#ifndef NODEC_TRAIN_INTERNAL_H
#define NODEC_TRAIN_INTERNAL_H

#include "nd_gradient.h"
#include "nd_optim.h"
#include "nd_train_loss.h"
#include "run_internal.h"

/* A group of samples solved together over the same observation times. */
typedef struct Group {
    int B;
    int *rows;        /* per sample: data row of the first observation (or -1) */
    const nd_real *ts; /* observation times */
    int nt;
    /* Samples with their own times (build_union): sample b's observation j is
     * row rows[b] + j, for j < lens[b], at union time ts[uidx[b * max_len + j]],
     * every time relative to the sample's start; observed and last as
     * nd_train_loss_set_observed. NULL lens: every sample observed at every ts. */
    int *lens, max_len, *uidx, *last;
    unsigned char *observed;
    nd_real *own_ts;   /* the union's storage (ts points here) */
    double *sorted;    /* scratch: every sample's relative times, exact; then the union's */
} Group;

typedef struct Trainer {
    Runner *r;
    const SemaDirective *dir;
    const SemaTrain *tr;
    IrModel *m;        /* augmented */
    nd_real *p;         /* the model's parameters, trained in place */
    NdKernels k;
    NdKernelFn fn[TRAIN_K_COUNT];
    NdKernelFn fn_d[TRAIN_KD_COUNT]; /* the losses' gradients w.r.t. the encoder's columns */
    TrainEncoder enc;  /* the block's encoder (enc.enc NULL without one) */
    int ny, np, ncols, cost_offset; /* cost_offset: of __cost, or -1 */
    int row_step;     /* 1 for time series (observation j is row + j), 0 for samples */
    /* the batch */
    int n_groups, group_B, group_nt;
    Group *groups;
    int *all_rows;    /* n_groups * group_B */
    nd_real *ts_buf;   /* n_groups * group_nt when groups have their own times */
    nd_real *tcol;     /* the data's t column */
    const double *tcol_exact; /* the same, as the data holds it (time_column) */
    int *candidates;  /* window starts or sample rows to draw from */
    int n_candidates;
    double scale_obs, scale_final; /* in double: evaluate's sums (nd_train_loss.h) */
    /* workspace */
    nd_real *drows;    /* a group's data rows: observation j of sample b at (j * B + b) * ncols */
    nd_real *eps;      /* `sample`'s noise: n_eps per sample of each group, drawn per step */
    nd_real *grad_p, *sum_grad;
    NdTrainLoss *tl;  /* one group's loss and gradient through the solve */
    NdOptim *opt;
    /* the last step */
    long nfe_fwd, nfe_bwd; /* function evaluations, summed over the groups */
    long steps_done;
    /* evaluate: the metrics' kernels, and the loss of the last group when it
     * has fewer samples than the others (a minibatch size that does not
     * divide the data) */
    NdKernelFn metric_fn[SEMA_MAX_METRICS];
    NdTrainLoss *tl_rest;
    double *iw;        /* evaluate's iwae: per sample of a group, 3 rows of group_B */
    /* train with `validation = D`: an evaluator of D (its own groups and forward
     * losses, the train's kernels and parameters), the last score and the best */
    struct Trainer *val;
    double val_loss, best_val;
    long best_step, since_best;
    nd_real last_loss;
} Trainer;

/* t for directive d: its model (or the shared-states copy), parameters, row width
 * and kernels. */
void trainer_start(Trainer *t, Runner *r, const SemaDirective *d);
/* The directive's kernels (its compiled set) into t. */
void train_take_kernels(Trainer *t);
/* `sample`'s noise of group gi, N(0, 1) from the directive's stream. */
void train_draw_eps(Trainer *t, int gi);
/* div_est's noise states (NdLossKernels.prepare; ctx: the Trainer). */
void train_draw_noise(void *ctx, nd_real *y0, int64_t B);
/* The group's rows with `sample`'s noise and the encoder's value at parameters p:
 * every column the kernels read. ND_OK or the encoder's status. */
int train_group_rows(Trainer *t, const Group *g, const nd_real *p);
/* Why the last loss of tl failed: the encoder's message, else the loss's. */
const char *train_failure(const Trainer *t, const NdTrainLoss *tl);
/* The block's `t` as the solver's reals, in the compilation's arena. */
const nd_real *train_span(Trainer *t, const double *ts, int nt);
/* n_groups groups of B samples over at most nt times, in the arena. */
void train_alloc_groups(Trainer *t, int n_groups, int B, int nt);
/* Time series: whole trajectories, or random windows of consecutive observations. */
int train_plan_time_series(Trainer *t);
nd_real *train_alloc_reals(size_t n);
/* 0 when one group's states and observations fit RUN_MAX_BATCH_ELEMENTS, else -1
 * after saying what they would need. */
int train_workspace_fits(Trainer *t);
void trainer_free(Trainer *t);
/* Every group's loss and its first n_metrics metrics at t's parameters, one forward
 * solve each: summed into *L and metrics, the evaluations into *nfe; on a failure
 * the group's loss object in *failed. Allocates nothing. */
int train_forward_groups(Trainer *t, int n_metrics, double *L, double *metrics, long *nfe,
                         const NdTrainLoss **failed);

/* evaluate.c: sample data in chunks of the minibatch size (or one group of every
 * row); the forward workspace of an evaluate or a validation set. */
void evaluate_plan_samples(Trainer *t);
int evaluate_workspace(Trainer *t);

#endif
