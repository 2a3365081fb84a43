/* Backprop (and checkpoint) through velocity Verlet (nd_verlet.c): the exact
 * gradient of the discrete solve. A step from (t, [x_n; v_n]) is
 *     a_0 = A(t, x_n),   v_h = v_n + h/2 a_0,   x_1 = x_n + h v_h,
 *     a_1 = A(t + h, x_1),   v_1 = v_h + h/2 a_1
 * with A the velocity half of the first-order rhs f = [v; A]. Its record keeps
 * both evaluations' arguments, Y_0 = [x_n; v_n] and Y_1 = [x_1; v_h] (the
 * engine's own kick and drift redone, so bit for bit what it evaluated at).
 * The reverse of a kick v += c A(Y) with cotangent [xbar; vbar] is
 * [xbar; vbar] += (c vbar)^T dA/dY: the vjp kernel with the cotangent
 * [0; c vbar] gives exactly that (f's first half contributes nothing), and
 * its other output (c vbar)^T dA/dp goes into dL/dp; the drift's reverse is
 * vbar += h xbar. The sweep runs them last first: kick at Y_1, drift, kick
 * at Y_0. */
#include <string.h>

#include "nd_grad_internal.h"
#include "nd_verlet.h"

/* Record slots 0 and 1: Y_0 = y_n and Y_1 = [x_1; v_h] (K[0] holds a_0). */
void nd_backprop_verlet_args(NdGradient *g, NdSolver *s, nd_real *rec, nd_real h,
                             const nd_real *y)
{
    nd_real *Y0 = rec + ND_REC_HEAD, *Y1 = Y0 + g->n;
    size_t ny = (size_t)g->k.ny;
    memcpy(Y0, y, g->n * sizeof *y);
    memcpy(Y1, y, g->n * sizeof *y);
    nd_verlet_kick(Y1, s->K[0], ny, g->B, (nd_real)0.5 * h);
    nd_verlet_drift(Y1, ny, g->B, h);
}

/* The reverse of the kick v += c A(t, Y): ybar += (c vbar)^T dA/dY. */
static void kick_back(NdGradient *g, nd_real t, const nd_real *Y, nd_real c)
{
    size_t ny = (size_t)g->k.ny, half = ny / 2;
    for (int64_t b = 0; b < g->B; b++) {
        nd_real *kb = g->kbar + (size_t)b * ny;
        const nd_real *vb = g->ybar + (size_t)b * ny + half;
        for (size_t i = 0; i < half; i++)
            kb[i] = 0, kb[half + i] = c * vb[i];
    }
    nd_backprop_vjp_add(g, g->k.vjp, t, Y, g->ybar);
}

/* Takes ybar from y_{n+1} (plus dL/dy at an observation the step lands on)
 * back to y_n. */
void nd_backprop_verlet_sweep(NdGradient *g, const nd_real *rec)
{
    nd_real t = rec[ND_REC_T], h = rec[ND_REC_H], t_new = rec[ND_REC_TNEW];
    int land = (int)rec[ND_REC_LAND];
    const nd_real *Y0 = rec + ND_REC_HEAD, *Y1 = Y0 + g->n;
    size_t ny = (size_t)g->k.ny, half = ny / 2;
    if (land >= 0)
        for (size_t e = 0; e < g->n; e++)
            g->ybar[e] += g->obs_gy[(size_t)land * g->n + e];
    kick_back(g, t_new, Y1, (nd_real)0.5 * h);
    for (int64_t b = 0; b < g->B; b++) {
        nd_real *yb = g->ybar + (size_t)b * ny;
        for (size_t i = 0; i < half; i++)
            yb[half + i] += h * yb[i];
    }
    kick_back(g, t, Y0, (nd_real)0.5 * h);
}
