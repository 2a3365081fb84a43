/* The kernel table: the only thing the runtime knows of a model. The compiler's
 * JIT (or emit-c, or a hand-written test) fills it with plain C functions.
 *
 * Every real is nd_real (nd_real.h): double, or float in a program with
 * `option precision = f32`, whose kernels the compiler emits in float.
 *
 * Batch layout: B samples stored contiguously, sample-major: element i of
 * sample b is y[b * ny + i]. Parameters p[np] are shared by the whole batch.
 *
 * The shared block (docs/language.md, "Shared states"): a state whose initial
 * value and right-hand side depend on no per-sample quantity (ANODEV2's
 * weights) lives once per batch, after the samples: a batch's state vector is
 * y[B*ny + ns], element j of the shared block is y[B*ny + j]
 * (nd_kernels_state_size). Every kernel reads the shared block as it reads p
 * (one copy for the whole batch) and writes the shared part of a state-shaped
 * output once, at out + B*ny. The shared right-hand side reads only the
 * shared block, p and t, so it runs once per evaluation whatever B is. A
 * model compiled without shared states has ns = 0 and the layout of before
 * (so has every model emit-c writes, and `option shared_states = per_copy`). */
#ifndef ND_KERNELS_H
#define ND_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "nd_real.h"

/* dydt = f(t, y, p) for B samples, y and dydt [B*ny + ns]. work: scratch of
 * at least nd_kernels_work_size(k, B) doubles, owned by the caller (so the
 * kernel never allocates). */
typedef void (*NdRhsFn)(nd_real t, const nd_real *y, const nd_real *p, nd_real *dydt, int64_t B,
                        nd_real *work);

/* The general kernel: inputs y [B*ny + ns], p [np], a (cotangents, laid out
 * like y: [B*ny + ns]), d [B*nd] (one row of data per sample); outputs out0
 * and out1, whose layout each kernel states. Outputs "summed over the batch" hold the sum over
 * the B samples (written, not accumulated). Inputs a kernel does not read may be
 * NULL. */
typedef void (*NdKernelFn)(nd_real t, const nd_real *y, const nd_real *p, const nd_real *a,
                           const nd_real *d, nd_real *out0, nd_real *out1, int64_t B,
                           nd_real *work);

/* An event (a model's `when` block, docs/language.md "Events"): the condition
 * g(t, y, p) and what happens where it crosses zero in its direction. */
typedef struct NdEvent {
    NdKernelFn cond;  /* g per sample into out0[b] (out0 [B]) */
    NdKernelFn reset; /* the state after the event, all ny elements per sample, into
                       * out0 [B*ny], from the state just before it; NULL for terminate */
    int direction;    /* -1: fires where g falls through 0 (g > 0 before, g <= 0 after);
                       * +1: where it rises (g < 0 before, g >= 0 after) */
    int terminate;    /* 1: the sample stops there; its state is frozen from then on */
    /* For gradients through the event time (docs/gradients.md, "Events"; NULL
     * when the table was compiled without them, and then nd_gradient_create
     * refuses it). Sample-major like every kernel: call them on one sample's
     * y + b*ny with B = 1 for that sample's values. */
    NdKernelFn cond_grad; /* dg/dy per sample into out0 [B*ny], dg/dp summed over the
                           * batch into out1 [np] */
    NdKernelFn reset_vjp; /* with the cotangent a [B*ny] of the state after the event:
                           * a^T dr/dy per sample into out0 [B*ny], a^T dr/dp summed
                           * into out1 [np]; NULL for terminate */
} NdEvent;

typedef struct NdKernels {
    int ny;                 /* state elements per sample */
    int np;                 /* parameter elements */
    int ns;                 /* shared state elements: one copy per batch, at y + B*ny */
    size_t work_fixed;      /* scratch doubles independent of B (the most any kernel needs) */
    size_t work_per_sample; /* scratch doubles per sample */
    NdRhsFn rhs;
    /* a^T df/dy and a^T df/dp: out0 [B*ny + ns] laid out like y, out1 [np]
     * summed over the batch. With shared states, out0's shared part is
     * a_s^T df_s/ds (the shared rhs's own term, once) plus the sum over the
     * samples of a_b^T df_b/ds (what each sample's rhs owes the shared states),
     * written once; out1 likewise counts the shared rhs's a_s^T df_s/dp once.
     * NULL when the model was compiled without gradients. */
    NdKernelFn vjp;
    /* df/dy: out0 [B*ny*ny], per sample row-major (row i = d f_i / dy). NULL unless asked.
     * With shared states (ns > 0) the Jacobian of the whole vector is bordered:
     *     [ J_1           C_1 ]   J_b = df_b/dy_b  [ny, ny]  (per sample)
     *     [      ...      ... ]   C_b = df_b/ds    [ny, ns]  (per sample)
     *     [          J_B  C_B ]   S   = df_s/ds    [ns, ns]  (once)
     *     [  0  ...  0    S   ]   (f_s reads no per-sample state)
     * and out0 holds [B*ny*ny] (the J_b), then [B*ny*ns] (the C_b, each
     * row-major), then [ns*ns] (S): nd_kernels_jac_size doubles. The
     * implicit solvers eliminate it shared block first, then sample by sample
     * (nd_bdf.c, nd_onestep.c; a transposed solve the other way round), so no
     * (B*ny + ns)^2 matrix is formed. */
    NdKernelFn jac;
    /* The rhs and the vjp fused (the adjoint's backward stage, which needs both
     * at the same y: the forward values they share are computed once):
     * out0 [2*N] (N = nd_kernels_state_size) holds dydt [N] then a^T df/dy
     * [N], out1 [np] a^T df/dp summed over the batch, the same numbers as rhs
     * and vjp. With z = [y; a; g]
     * that is dz/dt up to the sign of its last two parts, in place. NULL unless
     * asked; the runtime then calls rhs and vjp. */
    NdKernelFn rhs_vjp;
    /* 1 when f does not read t (the compiler knows): rodas4 then needs no
     * df/dt. 0 is always safe (df/dt by a difference, exactly 0 for such f). */
    int autonomous;
    /* 1 when every state is half of a second-order pair (`d2x/dt2 = ...`,
     * docs/language.md "Second-order equations") and the pairs are laid out
     * positions first: one sample's y [ny] is [x; v] with x = y[0 : ny/2] and
     * its velocity v = y[ny/2 : ny], dx/dt = v, so dv/dt is the acceleration.
     * Only the verlet method reads it (it refuses a table with 0); 0 is always
     * safe otherwise. */
    int second_order;
    void *user;             /* owner's handle (e.g. the JIT module); unused by the runtime */
    /* The model's events (n_events of them, NULL when none), located and applied by
     * the explicit solvers (nd_solver.h: nd_solver_get_event). The cond and reset
     * kernels use the scratch sizes above. nd_gradient_create takes a table with
     * events when each has cond_grad and (unless it terminates) reset_vjp, and
     * no condition reads t (g_t is taken as 0: sema refuses such a train). */
    int n_events;
    const NdEvent *events;
    /* A stochastic model dy = f dt + g dW with diagonal noise (docs/language.md,
     * "Stochastic differential equations"; rhs is the drift f): g per sample
     * into out0 [B*ny] laid out like y (0 for a state without noise), and
     * Milstein's g * dg/dy on the diagonal (element i of g by element i of y)
     * likewise into out0; inputs t, y, p. Both NULL for an ODE model (the SDE
     * solvers then take g = 0, and are Euler's method). SDE models have no
     * shared block (ns = 0). */
    NdKernelFn diffusion;
    NdKernelFn diffusion_dx;
    /* Their vector-Jacobian products, for backprop through the SDE methods
     * (docs/gradients.md, "Verlet and the SDE methods"): with the cotangent a
     * [B*ny] laid out like y, a^T dg/dy per sample into out0 [B*ny] and a^T
     * dg/dp summed over the batch into out1 [np]; diffusion_dx_vjp the same
     * for g * dg/dy. NULL unless a train asked for them (nd_gradient_create
     * then refuses a table with diffusion). */
    NdKernelFn diffusion_vjp;
    NdKernelFn diffusion_dx_vjp;
} NdKernels;

static inline size_t nd_kernels_work_size(const NdKernels *k, int64_t B)
{
    return k->work_fixed + k->work_per_sample * (size_t)B;
}

/* Doubles in a batch's state vector: B samples of ny, then the shared block. */
static inline size_t nd_kernels_state_size(const NdKernels *k, int64_t B)
{
    return (size_t)B * (size_t)k->ny + (size_t)k->ns;
}

/* Doubles in the jac kernel's out0 (the bordered layout above). */
static inline size_t nd_kernels_jac_size(const NdKernels *k, int64_t B)
{
    size_t ny = (size_t)k->ny, ns = (size_t)k->ns;
    return (size_t)B * ny * (ny + ns) + ns * ns;
}

#endif
