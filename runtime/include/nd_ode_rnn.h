/* The ODE-RNN encoder of latent ODEs (Rubanova et al. 2019), as nodec's
 * `encoder h[n] { dh/dt = f(h); h = cell(obs.x, h); mask = m }` runs it
 * (docs/language.md, "Encoders"): for a batch of B samples observed at some of nt
 * common times ts[0] < ... < ts[nt-1] (the union of their own times, each
 * relative to the sample's start, so ts[0] is every sample's first), the hidden
 * state h is read backwards in time:
 *
 *   h_b = 0 until sample b's last observation (its first in this order);
 *   at each time ts[j], from the last down to ts[0]: h_b follows dh/dt = f(h)
 *   from ts[j+1] back to ts[j] (the solver's steps, for the whole batch), then
 *   jumps h_b = jump(h_b, row_jb) where b is observed at ts[j] and its mask is
 *   not 0;
 *
 * and h_b at ts[0] is the encoding. The gradient is the reverse sweep: each jump
 * through jump_vjp, each interval through nd_gradient (the chosen path) from the
 * states stored at the observations, so memory is 2 nt B nh reals plus one
 * interval's gradient. */
#ifndef ND_ODE_RNN_H
#define ND_ODE_RNN_H

#include <stdint.h>

#include "nd_gradient.h"
#include "nd_kernels.h"
#include "nd_solver.h"

typedef struct NdOdeRnnKernels {
    NdKernelFn jump;     /* h after an observation, per sample into out0 [B*nh], from y = h */
    NdKernelFn jump_vjp; /* with a [B*nh]: a^T d(jump)/dh into out0, a^T d(jump)/dp summed
                          * into out1 [np]; NULL for an encoder without gradient */
    NdKernelFn mask;     /* a scalar per sample into out0 [B] (0: no jump), or NULL */
    int nd;              /* reals per data row */
} NdOdeRnnKernels;

typedef struct NdOdeRnn NdOdeRnn;

/* k: the hidden state's own table (ny = nh, rhs, and vjp for a gradient); tmpl
 * the method and settings between observations; gm the gradient path (ignored
 * without gradient). All memory is allocated here. NULL on a bad argument or
 * out of memory. */
NdOdeRnn *nd_ode_rnn_create(const NdKernels *k, const NdOdeRnnKernels *ek,
                            const NdSolver *tmpl, int with_gradient, NdGradMethod gm, int64_t B,
                            int max_nt);
void nd_ode_rnn_free(NdOdeRnn *e);

/* The encoding h0 [B*nh] of the batch: rows d (observation j of sample b at d +
 * (j * B + b) * nd; a row where b is not observed is never used), observed[j * B +
 * b] (NULL: every sample at every time). Keeps what the backward pass needs.
 * Returns ND_OK or a negative status (nd_ode_rnn_get_message). */
int nd_ode_rnn_forward(NdOdeRnn *e, const nd_real *p, int nt, const nd_real *ts,
                       const nd_real *d, const unsigned char *observed, nd_real *h0);
/* After a forward pass: with a0 = dL/dh0 [B*nh], ADDS dL/dp into grad_p [np]. */
int nd_ode_rnn_backward(NdOdeRnn *e, const nd_real *p, const nd_real *a0, nd_real *grad_p);
const char *nd_ode_rnn_get_message(const NdOdeRnn *e);
/* Function evaluations of the last forward (its solves) and backward (the
 * gradients' forward and backward evaluations). */
long nd_ode_rnn_get_forward_evals(const NdOdeRnn *e);
long nd_ode_rnn_get_backward_evals(const NdOdeRnn *e);

#endif
