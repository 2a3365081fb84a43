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
 * the batch's state y [N] at ts[j] (N = nd_kernels_state_size: the samples, then
 * the shared block) and must: add the loss of this observation
 * (summed over the batch, already weighted) to *L, write dL_j/dy into gy [N],
 * and ADD dL_j/dp into gp [np]. Returns 0, or a negative status to stop.
 *
 * With a per-sample template (nd_solver_set_step_control, ND_STEP_PER_SAMPLE)
 * the loss must be separable over the samples: sample b's terms of L and of
 * dL_j/dy depend on sample b's state only (and p). The compute then runs every
 * sample's forward solve, calls fn once per observation with the whole batch,
 * as always, and runs each sample's backward pass with its own rows of gy. */
typedef int (*NdLossFn)(void *ctx, int j, nd_real t, const nd_real *y, const nd_real *p,
                        nd_real *L, nd_real *gy, nd_real *gp);

typedef struct NdLoss {
    int nt;
    const nd_real *ts; /* strictly monotone, nt >= 2 */
    NdLossFn fn;
    void *ctx;
} NdLoss;

typedef struct NdGradient NdGradient;

/* solver_template supplies the method and its settings (h, or rtol/atol/h0/
 * max_steps, and the step control); it is only read here. max_nt bounds loss->nt
 * for the workspace. NULL for rodas4: the implicit gradients follow bdf's steps.
 * A per-sample template with B > 1 gives a gradient that solves each sample as
 * its own problem (its forward and backward passes those of B = 1, in turn):
 * grad_y0 per sample as each sample's solo gradient, bit for bit, grad_p summed
 * over the samples, the counters totals; a failure's message starts
 * "sample b: ". Checkpoint and the bdf adjoint keep one sample's checkpoints at
 * a time, so every sample but the last repeats its forward pass once.
 * A model with events (k->n_events > 0): the gradient follows the event
 * times (docs/gradients.md, "Events") with the adjoint or backprop and an
 * explicit method (adaptive or fixed step) of a batch stepped together, when every event is a
 * reset with its cond_grad and reset_vjp kernels and no shared block; NULL
 * otherwise (checkpoint, implicit, terminate). The forward solve's
 * event log (the template's default capacity) is what the backward pass reads.
 * verlet: backprop or checkpoint (NULL for the adjoint). euler_maruyama and
 * milstein: backprop only, a table with diffusion_vjp (and diffusion_dx_vjp)
 * when it has diffusion, no events or shared block; the path is the
 * template's Brownian seed until nd_gradient_set_brownian. */
NdGradient *nd_gradient_create(const NdKernels *k, const NdSolver *solver_template,
                               NdGradMethod gm, int64_t B, int max_nt);
void nd_gradient_free(NdGradient *g);
/* Adjoint only: 1 to control the backward solve's error on y and a only (the
 * seminorm), 0 (default) on all of [y; a; dL/dp]. */
int nd_gradient_set_seminorm(NdGradient *g, int on);
/* euler_maruyama and milstein (backprop only): the Brownian tree's seed of
 * the following computes (nd_solver_set_brownian; initially the template's).
 * Every compute with one seed solves on the same path, so a loss and its
 * gradient, and central differences of it, all see one path. */
int nd_gradient_set_brownian(NdGradient *g, uint64_t seed);
/* Names for the parameter elements in messages (the adjoint's backward solve
 * integrates dL/dp as part of its state): name(ctx, i, ...) for 0 <= i < np.
 * NULL (default): "parameter element i". */
int nd_gradient_set_param_namer(NdGradient *g, NdElementNamer name, void *ctx);

/* Forward solve from y0 [N] through loss->ts, the loss, and its gradient:
 * *L = sum of the callback's losses; grad_p [np] = dL/dp; grad_y0 [N] = dL/dy0
 * (its shared part: the shared states' adjoint at t0, once)
 * (may be NULL). Status as nd_solve; nd_gradient_get_message explains failures. */
int nd_gradient_compute(NdGradient *g, const nd_real *p, const nd_real *y0, const NdLoss *loss,
                        nd_real *L, nd_real *grad_p, nd_real *grad_y0);

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
