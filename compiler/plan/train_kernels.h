/* The kernels a train directive needs beyond its model's rhs, vjp and jac:
 * the loss at an observation and the final loss with their gradients, and
 * the initial states (which may read the data row and the parameters) with
 * their vector-Jacobian product. Built here as kernel specs on the IR, once
 * for both back ends: the training loop JIT-compiles them (tools/train.c),
 * `nodec emit-c` prints them as C (compiler/c/c_emit_train.c). */
#ifndef NODEC_TRAIN_KERNELS_H
#define NODEC_TRAIN_KERNELS_H

#include "nd_kernels.h"
#include "plan.h"
#include "sema.h"

/* The slots, in the order the specs are built (those a directive lacks are
 * skipped): "loss" (a scalar per sample into out0[b]) and "loss_grad" (d/dy
 * into out0 laid out like the augmented model's y, d/dp summed over the batch
 * into out1), "final" and "final_grad" likewise, "init" (every state's initial
 * value into out0, laid out like y; the running cost starts at 0) and
 * "init_vjp" (a^T d(init)/dp summed over the batch into out1, a laid out like
 * y). Every kernel reads the sample's data row from d (the data set's
 * columns, in order). */
enum {
    TRAIN_K_LOSS,
    TRAIN_K_LOSS_GRAD,
    TRAIN_K_FINAL,
    TRAIN_K_FINAL_GRAD,
    TRAIN_K_INIT,
    TRAIN_K_INIT_VJP,
    TRAIN_K_COUNT
};

/* A train with an encoder (SemaTrain.encoder) also differentiates its loss, final
 * loss and initial states with respect to the encoder's columns of the data row
 * (nh = its size), per sample into out0 [B*nh]: "loss_grad_d", "final_grad_d" (d of
 * the value) and "init_vjp_d" (a^T d(init)/d(columns), a laid out like y), the
 * gradient the runner carries back through the encoder (nd_train_loss.h). */
enum { TRAIN_KD_LOSS, TRAIN_KD_FINAL, TRAIN_KD_INIT, TRAIN_KD_COUNT };

/* An evaluate's kernels are the values only (loss, final, init: no
 * gradients), and one "metric<k>" value kernel (a scalar per sample into
 * out0[b]) per metric. */
enum { TRAIN_K_MAX_SPECS = TRAIN_K_COUNT + TRAIN_KD_COUNT + SEMA_MAX_METRICS };

typedef struct TrainKernels {
    PlanKernelSpec specs[TRAIN_K_MAX_SPECS];
    int n;                    /* specs built */
    int slot[TRAIN_K_COUNT];  /* its index in specs, or -1 */
    int slot_d[TRAIN_KD_COUNT]; /* likewise */
    int n_metrics;
    int metric_slot[SEMA_MAX_METRICS];
    const IrNode *blocked;    /* the first floor or argmax a gradient goes through (diff.h) */
} TrainKernels;

/* Builds the specs of train directive d in the arena and IR builder (which
 * also gets the IR of every gradient). Returns 0, or -1 after reporting
 * through diag a state that has no initial value. */
int train_kernels_build(Arena *a, IrBuilder *b, Diag *diag, const SemaDirective *d,
                        TrainKernels *out);

/* The function each slot's kernel holds, from the n functions compiled for
 * the specs (in spec order): fns[slot], or NULL for a slot not built. */
void train_kernels_assign(const TrainKernels *tk, NdKernelFn *const compiled,
                          NdKernelFn out[TRAIN_K_COUNT], NdKernelFn metrics[SEMA_MAX_METRICS],
                          NdKernelFn data_grads[TRAIN_KD_COUNT]);

#endif
