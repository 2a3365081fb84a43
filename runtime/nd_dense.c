/* Dense output of the adaptive Runge–Kutta methods: the weights w_i(theta) of
 * y(t + theta h) = y + h sum_i w_i(theta) k_i inside an accepted step, so that
 * output times are interpolated and never shorten a step ([HNW] II.6; see the
 * sources in nd_tableaus.c). Writing every interpolant as weights on the
 * stages keeps the evaluation one loop for all methods (nd_adaptive.c) and
 * lets the tests check the weights against the order conditions. */
#include "nd_tableaus.h"

/* Hairer's nested form (dopri5.f CONTD5, dop853.f CONTD8), expanded per stage:
 * D = h sum b_i k_i, B = h k_0 - D, C = D - h k_fnew - B, P = h sum p_i k_i with
 * p_i = d0 + th (d1 + th1 (d2 + th d3)), and w = th (D + th1 (B + th (C + th1 P))). */
static void dense_nested(const NdTableau *tab, double th, double *w)
{
    double th1 = 1.0 - th;
    for (int i = 0; i < tab->dense_stages; i++) {
        double bi = i < tab->stages ? tab->b[i] : 0.0;
        double bspl = (i == 0 ? 1.0 : 0.0) - bi;
        double cdiff = bi - (i == tab->fnew_stage ? 1.0 : 0.0) - bspl;
        const double *d0 = tab->d[0], *d1 = tab->d[1], *d2 = tab->d[2], *d3 = tab->d[3];
        double p = d0[i] + th * (d1[i] + th1 * (d2[i] + th * d3[i]));
        w[i] = th * (bi + th1 * (bspl + th * (cdiff + th1 * p)));
    }
}

/* w_i = sum_m r[i][m] theta^(m+1), by Horner's rule. */
static void dense_poly(const NdTableau *tab, double th, double *w)
{
    for (int i = 0; i < tab->dense_stages; i++) {
        const double *r = tab->r[i];
        w[i] = th * (r[0] + th * (r[1] + th * (r[2] + th * r[3])));
    }
}

void nd_dense_weights(const NdTableau *tab, double theta, double *w)
{
    switch (tab->dense) {
    case ND_DENSE_NESTED:
        dense_nested(tab, theta, w);
        break;
    case ND_DENSE_POLY:
        dense_poly(tab, theta, w);
        break;
    case ND_DENSE_NONE:
        /* linear in the step's increment: only for completeness */
        for (int i = 0; i < tab->stages; i++)
            w[i] = theta * tab->b[i];
        break;
    }
}
