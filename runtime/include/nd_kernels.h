/* The kernel table: the only thing the runtime knows of a model. The compiler's
 * JIT (or emit-c, or a hand-written test) fills it with plain C functions.
 *
 * Batch layout: B samples stored contiguously, sample-major: element i of
 * sample b is y[b * ny + i]. Parameters p[np] are shared by the whole batch. */
#ifndef ND_KERNELS_H
#define ND_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* dydt = f(t, y, p) for B samples. work: scratch of at least
 * nd_kernels_work_size(k, B) doubles, owned by the caller (so the kernel never
 * allocates). */
typedef void (*NdRhsFn)(double t, const double *y, const double *p, double *dydt, int64_t B,
                        double *work);

/* The general kernel: inputs y [B*ny], p [np], a [B*na] (cotangents, laid out
 * like y), d [B*nd] (one row of data per sample); outputs out0 and out1, whose
 * layout each kernel states. Outputs "summed over the batch" hold the sum over
 * the B samples (written, not accumulated). Inputs a kernel does not read may be
 * NULL. */
typedef void (*NdKernelFn)(double t, const double *y, const double *p, const double *a,
                           const double *d, double *out0, double *out1, int64_t B,
                           double *work);

/* An event (a model's `when` block, docs/language.md "Events"): the condition
 * g(t, y, p) and what happens where it crosses zero in its direction. */
typedef struct NdEvent {
    NdKernelFn cond;  /* g per sample into out0[b] (out0 [B]) */
    NdKernelFn reset; /* the state after the event, all ny elements per sample, into
                       * out0 [B*ny], from the state just before it; NULL for terminate */
    int direction;    /* -1: fires where g falls through 0 (g > 0 before, g <= 0 after);
                       * +1: where it rises (g < 0 before, g >= 0 after) */
    int terminate;    /* 1: the sample stops there; its state is frozen from then on */
} NdEvent;

typedef struct NdKernels {
    int ny;                 /* state elements per sample */
    int np;                 /* parameter elements */
    size_t work_fixed;      /* scratch doubles independent of B (the most any kernel needs) */
    size_t work_per_sample; /* scratch doubles per sample */
    NdRhsFn rhs;
    /* a^T df/dy and a^T df/dp: out0 [B*ny] per sample, out1 [np] summed over the
     * batch. NULL when the model was compiled without gradients. */
    NdKernelFn vjp;
    /* df/dy: out0 [B*ny*ny], per sample row-major (row i = d f_i / dy). NULL unless asked. */
    NdKernelFn jac;
    /* The rhs and the vjp fused (the adjoint's backward stage, which needs both
     * at the same y: the forward values they share are computed once):
     * out0 [2*B*ny] holds dydt [B*ny] then a^T df/dy [B*ny], out1 [np] a^T df/dp
     * summed over the batch, the same numbers as rhs and vjp. With z = [y; a; g]
     * that is dz/dt up to the sign of its last two parts, in place. NULL unless
     * asked; the runtime then calls rhs and vjp. */
    NdKernelFn rhs_vjp;
    /* 1 when f does not read t (the compiler knows): rodas4 then needs no
     * df/dt. 0 is always safe (df/dt by a difference, exactly 0 for such f). */
    int autonomous;
    void *user;             /* owner's handle (e.g. the JIT module); unused by the runtime */
    /* The model's events (n_events of them, NULL when none), located and applied by
     * the explicit solvers (nd_solver.h: nd_solver_get_event). The cond and reset
     * kernels use the scratch sizes above. Gradients through events are not
     * supported yet: nd_gradient_create refuses a table that has them. */
    int n_events;
    const NdEvent *events;
} NdKernels;

static inline size_t nd_kernels_work_size(const NdKernels *k, int64_t B)
{
    return k->work_fixed + k->work_per_sample * (size_t)B;
}

#endif
