/* One batch's loss and its gradient through the ODE solve, from a train
 * directive's kernels: what nodec's training loop (tools/train.c) computes
 * for one group of samples, as a runtime object for programs that bring their
 * own loop (emit-c's per-train gradient functions, docs/emit-c.md). The
 * kernels come from the compiler (compiler/plan/train_kernels.h); the gradient
 * path (adjoint, backprop, checkpoint) is nd_gradient's. */
#ifndef ND_TRAIN_LOSS_H
#define ND_TRAIN_LOSS_H

#include <stdint.h>

#include "nd_gradient.h"
#include "nd_kernels.h"
#include "nd_solver.h"

/* Each kernel reads the sample's data row from d (nd doubles per sample). */
typedef struct NdLossKernels {
    NdKernelFn loss, loss_grad;   /* at each observation (out0[b]; d/dy, d/dp), or NULL */
    NdKernelFn final, final_grad; /* at the last observation, or NULL */
    NdKernelFn init, init_vjp;    /* y0 from p and the first row; a^T d(y0)/dp into out1 */
    int nd;                       /* doubles per data row (0: no data) */
    int cost_offset;              /* the running cost's state in y (regularize), or -1 */
    /* Called with the batch's initial states after init, before the solve, or
     * NULL: nodec draws div_est's noise states there, fresh at every compute. */
    void (*prepare)(void *ctx, nd_real *y0, int64_t B);
    void *prepare_ctx;
    /* With an encoder (nd_ode_rnn.h) whose value the kernels read as gd_n columns
     * of the row from gd_col on (the same in every row of a sample): the loss's,
     * the final loss's and the initial states' gradients with respect to them, per
     * sample into out0 [B*gd_n] (init_vjp_d with a = dL/dy0, laid out like y). The
     * compute then leaves dL/d(columns) per sample in nd_train_loss_get_data_gradient.
     * gd_n = 0: none. */
    NdKernelFn loss_grad_d, final_grad_d, init_vjp_d;
    int gd_col, gd_n;
} NdLossKernels;

typedef struct NdTrainLoss NdTrainLoss;

/* For batches of B samples and at most max_nt observation times; the solver
 * template supplies the method and its settings (only read here). All memory
 * is allocated here (the backprop tape may grow at the first compute). */
NdTrainLoss *nd_train_loss_create(const NdKernels *k, const NdLossKernels *lk,
                                  const NdSolver *solver_template, NdGradMethod gm, int64_t B,
                                  int max_nt);
void nd_train_loss_free(NdTrainLoss *t);
/* The gradient object, for its settings (nd_gradient_set_seminorm) and counters. */
NdGradient *nd_train_loss_get_gradient(NdTrainLoss *t);
int64_t nd_train_loss_get_batch(const NdTrainLoss *t); /* B */

/* From parameters p [np]: y0 = init(p, first rows), the solve through ts[nt]
 * (nt >= 2, strictly monotone, ts[0] = t0), and
 *   L = scale_obs * sum_{j,b} loss(ts[j], y_b, d_jb)
 *     + scale_final * sum_b (final(ts[nt-1], y_b, d_{nt-1,b}) + cost_b),
 * into *L, and grad_p [np] = dL/dp, through the solve and through y0. d holds
 * the rows sample-major per observation: row of sample b at observation j at
 * d + (j * B + b) * nd (NULL when nd = 0). Returns ND_OK or a negative status
 * (nd_train_loss_get_message explains it). Allocates nothing. */
int nd_train_loss_compute(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                          const nd_real *d, nd_real scale_obs, nd_real scale_final, nd_real *L,
                          nd_real *grad_p);
const char *nd_train_loss_get_message(const NdTrainLoss *t);
/* After a compute with gd_n > 0: dL/d(the gd_n columns) per sample [B*gd_n]. */
const nd_real *nd_train_loss_get_data_gradient(const NdTrainLoss *t);

/* Samples with their own observation times, solved together on the union of
 * their times (each relative to its start, so ts[0] starts every sample):
 * observed[j * B + b] = 1 when time ts[j] is an observation of sample b, and
 * last[b] the index of its last one. The next computes and evaluates score
 * each sample at its own observations only: the loss and the metrics taken at
 * each observation where observed, the final loss, the running cost and the
 * final metrics at last[b]; data rows where a sample is not observed are never
 * read. Both arrays stay the caller's and are read at every compute; NULL
 * (the default) scores every sample at every time and finally at the last. */
void nd_train_loss_set_observed(NdTrainLoss *t, const unsigned char *observed, const int *last);

/* Scoring without a gradient (nodec's evaluate): an object with a forward
 * solver only (its gradient is NULL; nd_train_loss_compute refuses it), and
 * the loss of nd_train_loss_compute's formula into *L, from one forward solve
 * through ts (no backward pass). Each of the n_metrics kernels (a scalar per
 * sample into out0[b]) is summed like the loss: with metrics_at_each, over
 * every observation and sample, scaled by scale_obs; else over the samples at
 * the last time, scaled by scale_final; into metric_sums[k] (added to). The
 * scales, the loss and the sums are double in either precision: scores summed
 * over thousands of samples in floats would be off in their sixth digit.
 * Allocates nothing. */
NdTrainLoss *nd_train_loss_create_forward(const NdKernels *k, const NdLossKernels *lk,
                                          const NdSolver *solver_template, int64_t B,
                                          int max_nt);
int nd_train_loss_evaluate(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                           const nd_real *d, double scale_obs, double scale_final, int n_metrics,
                           NdKernelFn const *metrics, int metrics_at_each, double *L,
                           double *metric_sums);
/* The forward solver's right-hand-side evaluations in the last evaluate. */
long nd_train_loss_get_forward_evals(const NdTrainLoss *t);
/* One forward solve as nd_train_loss_evaluate's, and per sample b the unscaled total
 * of its terms into totals[b] (written): the loss summed over the times that observe
 * it, plus its final loss and running cost at its last observation (the negative
 * log-weight of one draw, for an importance-weighted estimate). Allocates nothing. */
int nd_train_loss_evaluate_samples(NdTrainLoss *t, const nd_real *p, int nt, const nd_real *ts,
                                   const nd_real *d, double *totals);

#endif
