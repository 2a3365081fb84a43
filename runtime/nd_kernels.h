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

typedef struct NdKernels {
    int ny;                 /* state elements per sample */
    int np;                 /* parameter elements */
    size_t work_fixed;      /* scratch doubles independent of B */
    size_t work_per_sample; /* scratch doubles per sample */
    NdRhsFn rhs;
    void *user;             /* owner's handle (e.g. the JIT module); unused by the runtime */
} NdKernels;

static inline size_t nd_kernels_work_size(const NdKernels *k, int64_t B)
{
    return k->work_fixed + k->work_per_sample * (size_t)B;
}

#endif
