/* A model's event kernels (its `when` blocks, IrEvent): per event the condition
 * g (a scalar per sample into out0[b]) and, unless it terminates, the reset (the
 * whole state after the event into out0, laid out like y: an unassigned state
 * keeps its value). Built once as kernel specs for both back ends (the JIT in
 * compiler/driver.c, emit-c in compiler/c/c_emit.c), which fill the runtime's
 * NdEvent table (nd_kernels.h) with event_kernels_assign. */
#ifndef NODEC_EVENT_KERNELS_H
#define NODEC_EVENT_KERNELS_H

#include "nd_kernels.h"
#include "plan.h"

typedef struct EventKernels {
    PlanKernelSpec *specs; /* arena; per event "event<e>_cond", then "event<e>_reset" unless
                            * terminate, then with grads "event<e>_cond_grad" and
                            * "event<e>_reset_vjp" (unless terminate): nd_kernels.h's NdEvent */
    int n;
    bool grads;            /* a train's: the gradient kernels too */
    const IrNode *blocked; /* with grads: the first floor/argmax they pass through, or NULL */
} EventKernels;

/* The specs of m's events into out (n = 0 for a model without events), with
 * their gradient kernels when grads (a train's). */
void event_kernels_build(Arena *a, IrBuilder *b, const IrModel *m, bool grads,
                         EventKernels *out);

/* The vjp of roots (one per state, or a single scalar) with cotangents cot
 * with respect to every state (per sample into out0, laid out like y) and every
 * parameter (summed over the batch into out1): the gradient kernels of an event
 * (docs/gradients.md, "Events") and of an SDE's diffusion (kernel_sets.c).
 * *blocked takes the first floor/argmax the cotangent passes, if still NULL. */
PlanKernelSpec plan_vjp_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                             int n_roots, IrNode **roots, IrNode **cot, const IrNode **blocked);

/* The runtime's table of m's events from the compiled specs (compiled[k] is
 * spec k's function): out[e] for each of m->n_events. */
void event_kernels_assign(const IrModel *m, bool grads, NdKernelFn *const compiled,
                          NdEvent *out);

#endif
