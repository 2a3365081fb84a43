/* The LAPACK calls of the runtime (nd_lapack.h). OpenBLAS exports LAPACK's
 * Fortran symbols; they are declared here rather than through lapacke, which
 * Debian's libopenblas-dev does not require. Fortran passes every argument by
 * reference and appends the lengths of character arguments (gfortran: size_t).
 * With NODEC_NO_LAPACK defined (emit-c's standalone programs, which may need
 * only libc and libm) a plain C LU takes their place. */
#include "nd_lapack.h"

#include <stddef.h>

#ifndef NODEC_NO_LAPACK

/* sgetrf/sgetrs in single precision, dgetrf/dgetrs in double (nd_real.h). */
#ifdef ND_REAL_F32
#define ND_GETRF sgetrf_
#define ND_GETRS sgetrs_
#else
#define ND_GETRF dgetrf_
#define ND_GETRS dgetrs_
#endif
void ND_GETRF(const int *m, const int *n, nd_real *a, const int *lda, int *ipiv, int *info);
void ND_GETRS(const char *trans, const int *n, const int *nrhs, const nd_real *a, const int *lda,
              const int *ipiv, nd_real *b, const int *ldb, int *info, size_t trans_len);

int nd_lu_factor(int m, nd_real *a, int *ipiv)
{
    int info = 0;
    ND_GETRF(&m, &m, a, &m, ipiv, &info);
    return info;
}

void nd_lu_solve(int m, const nd_real *lu, const int *ipiv, nd_real *b, int transpose)
{
    int one = 1, info = 0;
    /* info < 0 only flags a bad argument, which the sizes above rule out */
    ND_GETRS(transpose ? "T" : "N", &m, &one, lu, &m, ipiv, b, &m, &info, 1);
}

#else /* NODEC_NO_LAPACK */

#include "nd_real.h"

/* Reference LAPACK's unblocked dgetf2 (right-looking, partial pivoting on the
 * first largest |a_ij| as idamax, the column scaled by the pivot's reciprocal):
 * the same factors as dgetrf to rounding, the same pivots and the same info.
 * The blocks here are one sample's Jacobian, small enough that blocking would
 * not pay. Pivots are 1-based, as LAPACK's. */
static void lu_swap_rows(int m, nd_real *a, int r1, int r2)
{
    for (int c = 0; c < m; c++) {
        nd_real tmp = a[(size_t)c * m + r1];
        a[(size_t)c * m + r1] = a[(size_t)c * m + r2];
        a[(size_t)c * m + r2] = tmp;
    }
}

static int lu_pivot(int m, const nd_real *col, int j)
{
    int p = j;
    for (int i = j + 1; i < m; i++)
        if (fabs(col[i]) > fabs(col[p]))
            p = i;
    return p;
}

int nd_lu_factor(int m, nd_real *a, int *ipiv)
{
    int info = 0;
    for (int j = 0; j < m; j++) {
        nd_real *col = a + (size_t)j * m;
        int p = lu_pivot(m, col, j);
        ipiv[j] = p + 1;
        if (col[p] == 0.0) {
            info = info ? info : j + 1; /* singular: the column is left as is */
            continue;
        }
        if (p != j)
            lu_swap_rows(m, a, j, p);
        nd_real r = 1.0 / col[j];
        for (int i = j + 1; i < m; i++)
            col[i] *= r;
        for (int c = j + 1; c < m; c++) {
            nd_real *dst = a + (size_t)c * m, f = dst[j];
            for (int i = j + 1; f != 0.0 && i < m; i++)
                dst[i] -= col[i] * f;
        }
    }
    return info;
}

/* dgetrs with one right-hand side: P L U x = b, or U^T L^T P^T x = b. */
void nd_lu_solve(int m, const nd_real *lu, const int *ipiv, nd_real *b, int transpose)
{
    if (!transpose) {
        for (int i = 0; i < m; i++) { /* the row swaps, in order */
            nd_real tmp = b[i];
            b[i] = b[ipiv[i] - 1];
            b[ipiv[i] - 1] = tmp;
        }
        for (int c = 0; c < m; c++) /* L (unit diagonal), column by column */
            for (int i = c + 1; i < m; i++)
                b[i] -= lu[(size_t)c * m + i] * b[c];
        for (int c = m - 1; c >= 0; c--) { /* U */
            b[c] /= lu[(size_t)c * m + c];
            for (int i = 0; i < c; i++)
                b[i] -= lu[(size_t)c * m + i] * b[c];
        }
        return;
    }
    for (int c = 0; c < m; c++) { /* U^T: row c of U^T is column c of U */
        nd_real s = b[c];
        for (int i = 0; i < c; i++)
            s -= lu[(size_t)c * m + i] * b[i];
        b[c] = s / lu[(size_t)c * m + c];
    }
    for (int c = m - 1; c >= 0; c--) { /* L^T */
        nd_real s = b[c];
        for (int i = c + 1; i < m; i++)
            s -= lu[(size_t)c * m + i] * b[i];
        b[c] = s;
    }
    for (int i = m - 1; i >= 0; i--) { /* the row swaps, undone in reverse */
        nd_real tmp = b[i];
        b[i] = b[ipiv[i] - 1];
        b[ipiv[i] - 1] = tmp;
    }
}

#endif /* NODEC_NO_LAPACK */
