/* Explicit Runge–Kutta methods as data: one Butcher tableau per method, read by
 * the single stepping engine in nd_solver.c. Adding an explicit method is adding
 * a table in nd_tableaus.c (and its NdMethod constant); the engine does not
 * change. Embedded weights and the FSAL flag are there for the adaptive methods. */
#ifndef ND_TABLEAUS_H
#define ND_TABLEAUS_H

#include "nd_solver.h"

/* The largest tableau planned: dop853 takes 12 stages per step and 3 more for
 * its dense output (Hairer–Nørsett–Wanner I, II.10), so 16 leaves one spare. */
enum { ND_RK_MAX_STAGES = 16 };

/* Stage i (0-based) evaluates k_i = f(t + c[i] h, y + h * sum_{j<i} a[i][j] k_j);
 * the step is y_new = y + h * sum_i b[i] k_i. Only the first `stages` entries of
 * c, a and b are read; a is strictly lower triangular. */
typedef struct NdTableau {
    const char *name;    /* the .node name: "rk4" */
    int order;           /* p: the global error is O(h^p) */
    int stages;          /* s: right-hand side evaluations per step (before FSAL reuse) */
    int fsal;            /* first same as last: the last stage is f(t + h, y_new) and
                          * serves as the next step's k_0 */
    int embedded_order;  /* order of b_hat, 0 when the method has no error estimate */
    double c[ND_RK_MAX_STAGES];
    double a[ND_RK_MAX_STAGES][ND_RK_MAX_STAGES];
    double b[ND_RK_MAX_STAGES];
    double b_hat[ND_RK_MAX_STAGES]; /* embedded weights for the error estimate */
} NdTableau;

/* The tableau of m, or NULL when m is not an explicit Runge–Kutta method. */
const NdTableau *nd_tableau_get(NdMethod m);

#endif
