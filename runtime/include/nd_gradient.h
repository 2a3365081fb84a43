/* Gradients of a loss through an ODE solve: the three paths of `gradient =`.
 *
 *   ND_GRAD_ADJOINT     the seed's augmented backward solve of [y; a; dL/dp] from the
 *                       last observation to t0, with a jumping by dL/dy at every
 *                       observation; memory independent of the number of steps
 *                       (Chen et al. 2018; adaptive error control on y and a, or
 *                       on the seminorm of Kidger et al. 2021 as an option).
 *   ND_GRAD_BACKPROP    the exact gradient of the discrete forward solve: the
 *                       accepted steps and their stages are recorded, then swept in
 *                       reverse with the compiled vjp (step sizes are constants).
 *   ND_GRAD_CHECKPOINT  forward states stored at checkpoints, each segment
 *                       recomputed in the reverse sweep; the same gradient as
 *                       backprop to rounding, memory ~ sqrt(steps).
 *
 * The model is seen only through its kernel table (rhs and vjp). The loss is a
 * callback at each observation time, so the runtime knows nothing of data. */
#ifndef ND_GRADIENT_H
#define ND_GRADIENT_H

#include <stdint.h>

#include "nd_kernels.h"
#include "nd_solver.h"

typedef enum NdGradMethod { ND_GRAD_ADJOINT, ND_GRAD_BACKPROP, ND_GRAD_CHECKPOINT } NdGradMethod;

/* Observation j at time ts[j] (ts[0] = t0 may carry a loss too). The callback gets
 * the batch's state y [B*ny] at ts[j] and must: add the loss of this observation
 * (summed over the batch, already weighted) to *L, write dL_j/dy into gy [B*ny],
 * and ADD dL_j/dp into gp [np]. Returns 0, or a negative status to stop. */
typedef int (*NdLossFn)(void *ctx, int j, double t, const double *y, const double *p,
                        double *L, double *gy, double *gp);

typedef struct NdLoss {
    int nt;
    const double *ts; /* strictly monotone, nt >= 2 */
    NdLossFn fn;
    void *ctx;
} NdLoss;

typedef struct NdGradient NdGradient;

/* solver_template supplies the method and its settings (h, or rtol/atol/h0/
 * max_steps); it is only read here. max_nt bounds loss->nt for the workspace.
 * NULL for rodas4: the implicit gradients follow bdf's steps; NULL for a model
 * with events (k->n_events > 0): gradients through event times are not done. */
NdGradient *nd_gradient_create(const NdKernels *k, const NdSolver *solver_template,
                               NdGradMethod gm, int64_t B, int max_nt);
void nd_gradient_free(NdGradient *g);
/* Adjoint only: 1 to control the backward solve's error on y and a only (the
 * seminorm), 0 (default) on all of [y; a; dL/dp]. */
int nd_gradient_set_seminorm(NdGradient *g, int on);
/* Names for the parameter elements in messages (the adjoint's backward solve
 * integrates dL/dp as part of its state): name(ctx, i, ...) for 0 <= i < np.
 * NULL (default): "parameter element i". */
int nd_gradient_set_param_namer(NdGradient *g, NdElementNamer name, void *ctx);

/* Forward solve from y0 [B*ny] through loss->ts, the loss, and its gradient:
 * *L = sum of the callback's losses; grad_p [np] = dL/dp; grad_y0 [B*ny] = dL/dy0
 * (may be NULL). Status as nd_solve; nd_gradient_get_message explains failures. */
int nd_gradient_compute(NdGradient *g, const double *p, const double *y0, const NdLoss *loss,
                        double *L, double *grad_p, double *grad_y0);

const char *nd_gradient_get_message(const NdGradient *g);
long nd_gradient_get_num_rhs_evals(const NdGradient *g); /* forward + backward, last compute */
long nd_gradient_get_num_vjp_evals(const NdGradient *g);
/* The same work split by direction, as torchdiffeq's demo counts it (last compute):
 * forward = rhs evaluations of the forward solve; backward = evaluations of the
 * backward dynamics: for the adjoint, of the augmented system (one rhs and one
 * vjp each); for backprop, vjp calls; for checkpoint, vjp calls plus the rhs
 * evaluations that recompute the segments. */
long nd_gradient_get_num_forward_evals(const NdGradient *g);
long nd_gradient_get_num_backward_evals(const NdGradient *g);
size_t nd_gradient_get_peak_doubles(const NdGradient *g); /* workspace + tape, for memory tests */

#endif
