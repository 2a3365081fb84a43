/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): one array, read into doubles.
 * The dtypes read are the little-endian numbers <f8 <f4 <i8 <i4 <i2 <u2 and the bytes
 * |i1 |u1; C order only. Errors name the file ("images.npy: truncated: ...") so the
 * compiler can point at it. */
#ifndef ND_NPY_H
#define ND_NPY_H

#include <stddef.h>

enum { ND_NPY_MAX_DIMS = 32 }; /* numpy's own limit (NPY_MAXDIMS) */

typedef struct NdNpy {
    int ndim;
    long long shape[ND_NPY_MAX_DIMS];
    size_t count;     /* the product of shape (1 for shape ()) */
    double *values;   /* count values, C order (row-major) */
    char descr[16];   /* the dtype as the header spells it, "<f4" */
} NdNpy;

/* NULL on failure, err receiving "PATH: what" (or "cannot open 'PATH': why"). */
NdNpy *nd_npy_read(const char *path, char *err, size_t errlen);
void nd_npy_free(NdNpy *a);
/* "(1797, 1, 8, 8)", "(3,)", "()": the shape as Python writes it, for messages. */
const char *nd_npy_shape_text(const NdNpy *a, char *buf, size_t len);

#endif
