/* The LAPACK calls of the runtime (nd_lapack.h). OpenBLAS exports LAPACK's
 * Fortran symbols; they are declared here rather than through lapacke, which
 * Debian's libopenblas-dev does not require. Fortran passes every argument by
 * reference and appends the lengths of character arguments (gfortran: size_t). */
#include "nd_lapack.h"

#include <stddef.h>

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *lda,
             const int *ipiv, double *b, const int *ldb, int *info, size_t trans_len);

int nd_lu_factor(int m, double *a, int *ipiv)
{
    int info = 0;
    dgetrf_(&m, &m, a, &m, ipiv, &info);
    return info;
}

void nd_lu_solve(int m, const double *lu, const int *ipiv, double *b, int transpose)
{
    int one = 1, info = 0;
    /* info < 0 only flags a bad argument, which the sizes above rule out */
    dgetrs_(transpose ? "T" : "N", &m, &one, lu, &m, ipiv, b, &m, &info, 1);
}
