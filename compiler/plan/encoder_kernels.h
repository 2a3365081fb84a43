/* The kernels of a train's encoder (SemaEncoder, `encoder h[n] { ... }`) beside
 * its model's rhs and vjp: "jump" (h after an observation, per sample into out0
 * [B*nh], from h in y and the row in d), "jump_vjp" (with the cotangent a [B*nh] of
 * h after the jump: a^T d(jump)/dh per sample into out0, a^T d(jump)/dp summed over
 * the batch into out1; a train's only) and "mask" (a scalar per sample into out0[b],
 * when the block gives one). Every kernel reads rows nd reals wide (the train's
 * data row with its hidden columns). The runtime's NdOdeRnn runs them
 * (runtime/include/nd_ode_rnn.h). */
#ifndef NODEC_ENCODER_KERNELS_H
#define NODEC_ENCODER_KERNELS_H

#include "plan.h"
#include "sema.h"

enum { ENC_K_JUMP, ENC_K_JUMP_VJP, ENC_K_MASK, ENC_K_COUNT };

typedef struct EncoderKernels {
    PlanKernelSpec specs[ENC_K_COUNT];
    int n;
    int slot[ENC_K_COUNT]; /* its index in specs, or -1 */
    const IrNode *blocked; /* the first floor or argmax the jump's gradient passes through */
} EncoderKernels;

/* The specs of train (or evaluate) d's encoder; grads: with jump_vjp. */
void encoder_kernels_build(Arena *a, IrBuilder *b, const SemaDirective *d, bool grads,
                           EncoderKernels *out);

#endif
