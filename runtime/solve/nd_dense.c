/* Dense output of the adaptive Runge–Kutta methods, so that output times are
 * interpolated and never shorten a step ([HNW] II.6; see the sources in
 * nd_tableaus.c), in two forms of the same polynomial:
 *  - the weights w_i(theta) of y(t + theta h) = y + h sum_i w_i(theta) k_i,
 *    which the tests check against the order conditions and the discrete
 *    gradient differentiates (nd_backprop.c);
 *  - Hairer's evaluation (dopri5.f DENSE/CONTD5, dop853.f CONTD8): per accepted
 *    step a few coefficient vectors, then per output time a short Horner
 *    polynomial in theta, which is what the solver runs (nd_adaptive.c). */
#include "nd_adaptive.h"
#include "nd_tableaus.h"

/* Hairer's nested form (dopri5.f CONTD5, dop853.f CONTD8), expanded per stage:
 * D = h sum b_i k_i, B = h k_0 - D, C = D - h k_fnew - B, P = h sum p_i k_i with
 * p_i = d0 + th (d1 + th1 (d2 + th d3)), and w = th (D + th1 (B + th (C + th1 P))). */
static void dense_nested(const NdTableau *tab, nd_real th, nd_real *w)
{
    nd_real th1 = 1.0 - th;
    for (int i = 0; i < tab->dense_stages; i++) {
        nd_real bi = i < tab->stages ? tab->b[i] : 0.0;
        nd_real bspl = (i == 0 ? 1.0 : 0.0) - bi;
        nd_real cdiff = bi - (i == tab->fnew_stage ? 1.0 : 0.0) - bspl;
        const nd_real *d0 = tab->d[0], *d1 = tab->d[1], *d2 = tab->d[2], *d3 = tab->d[3];
        nd_real p = d0[i] + th * (d1[i] + th1 * (d2[i] + th * d3[i]));
        w[i] = th * (bi + th1 * (bspl + th * (cdiff + th1 * p)));
    }
}

/* w_i = sum_m r[i][m] theta^(m+1), by Horner's rule. */
static void dense_poly(const NdTableau *tab, nd_real th, nd_real *w)
{
    for (int i = 0; i < tab->dense_stages; i++) {
        const nd_real *r = tab->r[i];
        w[i] = th * (r[0] + th * (r[1] + th * (r[2] + th * r[3])));
    }
}

void nd_dense_weights(const NdTableau *tab, nd_real theta, nd_real *w)
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

/* ---- Hairer's evaluation: coefficient vectors once per step ---- */

/* The vectors of P(theta) a nested form needs: none (bosh3's Hermite), d0
 * (dopri5) or all four (dop853); two or three are kept as four. */
static int nested_parts(const NdTableau *tab)
{
    int parts = 0;
    for (int m = 0; m < 4; m++)
        for (int i = 0; i < tab->dense_stages; i++)
            if (tab->d[m][i] != 0.0)
                parts = m + 1;
    return parts <= 1 ? parts : 4;
}

int nd_dense_count(const NdTableau *tab)
{
    if (!tab || tab->embedded_order == 0)
        return 0;
    switch (tab->dense) {
    case ND_DENSE_NESTED: return 3 + nested_parts(tab);
    case ND_DENSE_POLY: return 4;
    case ND_DENSE_NONE: return 0;
    }
    return 0;
}

/* The stage parts: P_m = h sum_i d[m][i] k_i (nested), Q_m = h sum_i r[i][m] k_i
 * (poly, theta^(m+1)'s vector). */
void nd_dense_setup(NdSolver *s)
{
    const NdTableau *tab = s->tab;
    s->ndense = nd_dense_count(tab);
    if (s->ndense == 0)
        return;
    if (tab->dense == ND_DENSE_NESTED) {
        for (int m = 0; m + 3 < s->ndense; m++)
            nd_combo_build(&s->dense_row[m], tab->d[m], tab->dense_stages);
        return;
    }
    for (int m = 0; m < 4; m++) {
        nd_real col[ND_RK_MAX_STAGES];
        for (int i = 0; i < tab->dense_stages; i++)
            col[i] = tab->r[i][m];
        nd_combo_build(&s->dense_row[m], col, tab->dense_stages);
    }
}

/* Nested: dense[0..2] = D = y_new - y, B = h k_0 - D, C = D - h k_fnew - B
 * (dopri5.f's YDIFF, BSPL and CONT(3)), dense[3..] = P's vectors. */
void nd_dense_prepare(NdSolver *s, nd_real h)
{
    const NdTableau *tab = s->tab;
    nd_real *const *v = s->dense;
    if (tab->dense == ND_DENSE_POLY) {
        for (int m = 0; m < 4; m++)
            nd_combo_scale(&s->dense_row[m], s->K, h, v[m], s->n);
        return;
    }
    const nd_real *y = s->y, *ynew = s->ynew, *k0 = s->K[0], *kf = s->K[tab->fnew_stage];
    nd_real *D = v[0], *Bs = v[1], *C = v[2];
    for (size_t e = 0; e < s->n; e++) {
        nd_real ydiff = ynew[e] - y[e], bspl = h * k0[e] - ydiff;
        D[e] = ydiff;
        Bs[e] = bspl;
        C[e] = ydiff - h * kf[e] - bspl;
    }
    for (int m = 3; m < s->ndense; m++)
        nd_combo_scale(&s->dense_row[m - 3], s->K, h, v[m], s->n);
}

/* y + th (D + th1 (B + th (C + th1 P))), P = P0 + th (P1 + th1 (P2 + th P3)),
 * at th = (ts[q] - t) / h (the solve's own division, so a theta is the same
 * number wherever it is recomputed). */
static void eval_nested(const NdSolver *s, nd_real t, nd_real h, const nd_real *ts, int count,
                        nd_real *ND_RESTRICT out)
{
    const nd_real *y = s->y, *D = s->dense[0], *Bs = s->dense[1], *C = s->dense[2];
    const nd_real *P0 = s->dense[3], *P1 = s->dense[4], *P2 = s->dense[5], *P3 = s->dense[6];
    size_t n = s->n;
    for (int q = 0; q < count; q++, out += s->out_row) {
        nd_real th = (ts[q] - t) / h, th1 = 1.0 - th;
        if (s->ndense == 3) {
            for (size_t e = 0; e < n; e++)
                out[e] = y[e] + th * (D[e] + th1 * (Bs[e] + th * C[e]));
        } else if (s->ndense == 4) {
            for (size_t e = 0; e < n; e++)
                out[e] = y[e] + th * (D[e] + th1 * (Bs[e] + th * (C[e] + th1 * P0[e])));
        } else {
            for (size_t e = 0; e < n; e++) {
                nd_real p = P0[e] + th * (P1[e] + th1 * (P2[e] + th * P3[e]));
                out[e] = y[e] + th * (D[e] + th1 * (Bs[e] + th * (C[e] + th1 * p)));
            }
        }
    }
}

/* y + th (Q0 + th (Q1 + th (Q2 + th Q3))). */
static void eval_poly(const NdSolver *s, nd_real t, nd_real h, const nd_real *ts, int count,
                      nd_real *ND_RESTRICT out)
{
    const nd_real *y = s->y, *Q0 = s->dense[0], *Q1 = s->dense[1], *Q2 = s->dense[2];
    const nd_real *Q3 = s->dense[3];
    size_t n = s->n;
    for (int q = 0; q < count; q++, out += s->out_row) {
        nd_real th = (ts[q] - t) / h;
        for (size_t e = 0; e < n; e++)
            out[e] = y[e] + th * (Q0[e] + th * (Q1[e] + th * (Q2[e] + th * Q3[e])));
    }
}

void nd_dense_eval(const NdSolver *s, nd_real t, nd_real h, const nd_real *ts, int count,
                   nd_real *ND_RESTRICT out)
{
    if (s->tab->dense == ND_DENSE_NESTED)
        eval_nested(s, t, h, ts, count, out);
    else
        eval_poly(s, t, h, ts, count, out);
}
