/* Backprop through the SDE methods (nd_sde.c): the exact gradient of the
 * discrete solve on its fixed Brownian path. A step from (t, y_n) is
 *     y_{n+1} = y_n + h f(t, y_n) + g(t, y_n) dW + 1/2 (g g')(t, y_n) (dW^2 - h)
 * (the last term Milstein's only), elementwise in the noise (diagonal). Its
 * record keeps y_n and the step's increments dW, the engine's own
 * (nd_sde_increment), so the sweep sees exactly the forward path. With ybar
 * the cotangent of y_{n+1}, the step's reverse is
 *     ybar_n = ybar + (h ybar)^T df/dy + (dW ybar)^T dg/dy
 *              + (1/2 (dW^2 - h) ybar)^T d(g g')/dy
 * (products elementwise), the vjp, diffusion_vjp and diffusion_dx_vjp kernels
 * with those cotangents, whose parameter parts add into dL/dp. */
#include <string.h>

#include "nd_grad_internal.h"
#include "nd_sde.h"

/* Record slots 0 and 1: y_n and dW (W(t) in s->K[3] until the step moves it). */
void nd_backprop_sde_args(NdGradient *g, NdSolver *s, nd_real *rec, nd_real t_new,
                          const nd_real *y)
{
    nd_real *dW = rec + ND_REC_HEAD + g->n, w;
    size_t ny = (size_t)g->k.ny;
    memcpy(rec + ND_REC_HEAD, y, g->n * sizeof *y);
    for (int64_t b = 0; b < g->B; b++)
        for (size_t i = 0; i < ny; i++)
            dW[(size_t)b * ny + i] = nd_sde_increment(s, b, i, t_new, &w);
}

/* Takes ybar from y_{n+1} (plus dL/dy at an observation the step lands on)
 * back to y_n. */
void nd_backprop_sde_sweep(NdGradient *g, const nd_real *rec)
{
    nd_real t = rec[ND_REC_T], h = rec[ND_REC_H];
    int land = (int)rec[ND_REC_LAND];
    const nd_real *y = rec + ND_REC_HEAD, *dW = y + g->n;
    size_t n = g->n;
    if (land >= 0)
        for (size_t e = 0; e < n; e++)
            g->ybar[e] += g->obs_gy[(size_t)land * n + e];
    memset(g->kin, 0, n * sizeof *g->kin);
    for (size_t e = 0; e < n; e++)
        g->kbar[e] = h * g->ybar[e];
    nd_backprop_vjp_add(g, g->k.vjp, t, y, g->kin);
    if (g->k.diffusion_vjp) {
        for (size_t e = 0; e < n; e++)
            g->kbar[e] = dW[e] * g->ybar[e];
        nd_backprop_vjp_add(g, g->k.diffusion_vjp, t, y, g->kin);
    }
    if (g->fwd->method == ND_MILSTEIN && g->k.diffusion_dx_vjp) {
        for (size_t e = 0; e < n; e++)
            g->kbar[e] = (nd_real)0.5 * (dW[e] * dW[e] - h) * g->ybar[e];
        nd_backprop_vjp_add(g, g->k.diffusion_dx_vjp, t, y, g->kin);
    }
    for (size_t e = 0; e < n; e++)
        g->ybar[e] += g->kin[e];
}
