/* Dense LU factorisation and solves for the implicit solvers (nd_bdf.c): the
 * one place that declares and calls LAPACK (dgetrf, dgetrs from OpenBLAS,
 * which ships LAPACK). Matrices are m x m, column-major, as LAPACK stores
 * them; the Newton matrix of a batch is block diagonal, so each sample's block
 * is factored on its own and no (B ny)^2 matrix is ever formed. */
#ifndef ND_LAPACK_H
#define ND_LAPACK_H

#include "nd_real.h"

/* LU with partial pivoting of a (column-major m x m) in place; ipiv receives m
 * pivots. Returns 0, or i > 0 when U(i, i) is exactly zero (a singular block). */
int nd_lu_factor(int m, nd_real *a, int *ipiv);

/* Solves A x = b (transpose = 0) or A^T x = b (transpose = 1) with the factors
 * of nd_lu_factor; b is overwritten by x. */
void nd_lu_solve(int m, const nd_real *lu, const int *ipiv, nd_real *b, int transpose);

#endif
