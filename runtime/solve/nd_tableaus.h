/* Explicit Runge–Kutta methods as data: one Butcher tableau per method, read by
 * the stepping engines in nd_solver.c (fixed step) and nd_adaptive.c (error
 * control). Adding an explicit method is adding a table in nd_tableaus.c and
 * its row in nd_methods.def (name, order, class); the engines do not change.
 * The adaptive methods add error weights, controller constants and a dense
 * output (continuous extension) so that output times never shorten a step. */
#ifndef ND_TABLEAUS_H
#define ND_TABLEAUS_H

#include "nd_solver.h"

/* The largest tableau: dop853 takes 12 stages per step, one more evaluation
 * f(t + h, y_new) after an accepted step, and 3 more for its dense output
 * (Hairer–Nørsett–Wanner I, II.6 and II.10): 16 stage vectors in all. */
enum { ND_RK_MAX_STAGES = 16 };

/* How a method interpolates inside an accepted step [t, t + h]. Every kind is
 * linear in the stages: y(t + theta h) = y + h sum_i w_i(theta) k_i, with the
 * weights from nd_dense_weights. */
typedef enum NdDenseKind {
    ND_DENSE_NONE,    /* fixed-step methods land on output times instead */
    ND_DENSE_NESTED,  /* Hairer's nested form (dopri5.f CONTD5, dop853.f CONTD8):
                       * y + th (D + th1 (B + th (C + th1 P(th)))), th1 = 1 - th,
                       * D = y_new - y, B = h f(t, y) - D, C = D - h f(t + h, y_new) - B,
                       * P(th) = h sum_i (d0 + th (d1 + th1 (d2 + th d3)))_i k_i.
                       * With P = 0 it is the cubic Hermite interpolant (bosh3). */
    ND_DENSE_POLY,    /* w_i(theta) = sum_m r[i][m] theta^(m+1) (Tsitouras 2011) */
} NdDenseKind;

/* Stage i (0-based) evaluates k_i = f(t + c[i] h, y + h * sum_{j<i} a[i][j] k_j);
 * the step is y_new = y + h * sum_i b[i] k_i. Only the first `stages` entries of
 * c, a and b are read by a step; a is strictly lower triangular. Rows past
 * `stages` (dop853 only) hold f(t + h, y_new) and the dense output stages. */
typedef struct NdTableau {
    int stages;          /* s: right-hand side evaluations per step (before FSAL reuse) */
    int fsal;            /* first same as last: the last stage is f(t + h, y_new) and
                          * serves as the next step's k_0 */
    int embedded_order;  /* order of b_hat, 0 when the method has no error estimate */
    nd_real c[ND_RK_MAX_STAGES];
    nd_real a[ND_RK_MAX_STAGES][ND_RK_MAX_STAGES];
    nd_real b[ND_RK_MAX_STAGES];
    nd_real b_hat[ND_RK_MAX_STAGES]; /* embedded weights for the error estimate */

    /* ---- adaptive methods only (embedded_order > 0) ---- */
    nd_real e[ND_RK_MAX_STAGES];  /* error weights: err = h sum_i e[i] k_i (= b - b_hat) */
    nd_real e3[ND_RK_MAX_STAGES]; /* dop853's second, 3rd-order estimate (0 elsewhere) */
    int error_order;     /* q: the estimate behaves as O(h^q); h scales by err^(-1/q) */
    nd_real beta;         /* Lund's PI stabilisation exponent (dopri5.f BETA) */
    int fnew_stage;      /* index of the stage vector holding f(t + h, y_new) */
    int dense_stages;    /* stage vectors the dense output reads (>= stages) */
    NdDenseKind dense;
    int dense_order;     /* order of the continuous extension */
    nd_real d[4][ND_RK_MAX_STAGES];  /* ND_DENSE_NESTED: P's coefficients d0..d3 */
    nd_real r[ND_RK_MAX_STAGES][4];  /* ND_DENSE_POLY: w_i = sum_m r[i][m] theta^(m+1) */
} NdTableau;

/* One row of coefficients as its nonzero terms, sum_t coef[t] k_{idx[t]} in
 * the row's order: the stepping loops read only these, so a zero costs nothing
 * and the sums round exactly as the full row's would (adding +0 is exact). */
typedef struct NdCombo {
    int m;                          /* terms */
    int idx[ND_RK_MAX_STAGES];
    nd_real coef[ND_RK_MAX_STAGES];
} NdCombo;

/* c = the nonzero entries of coef[0..len). */
void nd_combo_build(NdCombo *c, const nd_real *coef, int len);

/* The tableau of m, or NULL when m is not an explicit Runge–Kutta method. */
const NdTableau *nd_tableau_get(NdMethod m);

/* The dense output weights w[0..dense_stages) at theta in [0, 1]:
 * y(t + theta h) = y + h sum_i w[i] k_i (nd_dense.c). */
void nd_dense_weights(const NdTableau *tab, nd_real theta, nd_real *w);

#endif
