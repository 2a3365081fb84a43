/* Stochastic differential equations dy = f(t, y) dt + g(t, y) dW with
 * diagonal noise (element i of g multiplies its own Brownian increment dW_i):
 * the fixed-step engine behind nd_solve for euler_maruyama and milstein, and
 * the Brownian tree both draw their paths from (nd_solver.h). Step n, from t
 * to t + h with dW = W(t + h) - W(t):
 *   Euler–Maruyama  y += f h + g dW                         (strong order 1/2)
 *   Milstein        y += f h + g dW + 1/2 g g' (dW^2 - h)    (strong order 1)
 * with g' = dg_i/dy_i (the kernel table's diffusion_dx gives g g' at once).
 * Kloeden and Platen, Numerical Solution of Stochastic Differential Equations
 * (1992) [KP92], 10.2 and 10.3; Higham, SIAM Review 43 (2001) 525-546. */
#include "nd_sde.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nd_solver.h"

/* splitmix64's finaliser (Steele, Lea and Flood 2014): a bijection of the
 * 64-bit words that scatters neighbouring counters, so (seed, sample,
 * element, node) -> a normal is a pure function and the tree needs no
 * storage. */
static uint64_t nd_sde_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A standard normal for node `node` of the tree of key (Box–Muller). */
static double nd_sde_normal(uint64_t key, uint64_t node)
{
    uint64_t r1 = nd_sde_mix(key ^ nd_sde_mix(node)), r2 = nd_sde_mix(r1);
    double u1 = ((double)(r1 >> 11) + 0.5) * 0x1p-53; /* (0, 1): log is finite */
    double u2 = (double)(r2 >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Node 0 draws W(t1); node k >= 1 the midpoint of its interval, whose halves
 * are nodes 2k and 2k + 1. */
double nd_brownian_at(uint64_t seed, int64_t sample, long element, double t0, double t1,
                      double t)
{
    uint64_t key = nd_sde_mix(nd_sde_mix(seed) ^ (uint64_t)sample);
    key = nd_sde_mix(key ^ ((uint64_t)element * 0xD1B54A32D192ED03ull));
    double span = t1 - t0;
    if (!(span > 0) || t <= t0)
        return 0.0;
    double a = t0, b = t1, wa = 0.0, wb = sqrt(span) * nd_sde_normal(key, 0);
    if (t >= t1)
        return wb;
    /* times closer than this to a midpoint are taken as it: steps of a float
     * solve land on dyadic points only up to rounding */
    double tol = span * (sizeof(nd_real) == sizeof(float) ? 1e-6 : 1e-12);
    uint64_t node = 1;
    for (int d = 0; d < ND_BROWNIAN_DEPTH; d++) {
        double m = a + 0.5 * (b - a);
        double wm = 0.5 * (wa + wb) + 0.5 * sqrt(b - a) * nd_sde_normal(key, node);
        if (fabs(t - m) <= tol)
            return wm;
        if (t < m) {
            b = m, wb = wm, node = 2 * node;
        } else {
            a = m, wa = wm, node = 2 * node + 1;
        }
        if (fabs(t - a) <= tol)
            return wa;
        if (fabs(t - b) <= tol)
            return wb;
    }
    return wa + (wb - wa) * (t - a) / (b - a);
}

/* The kernels' outputs at (t, y): f into K[0], g into K[1], and for milstein
 * g g' into K[2]; g = 0 for a table without noise. */
static void nd_sde_eval(NdSolver *s, const nd_real *p, nd_real t, const nd_real *y)
{
    nd_solver_rhs(s, p, t, y, s->K[0]);
    if (s->k.diffusion)
        s->k.diffusion(t, y, p, NULL, NULL, s->K[1], NULL, s->B, s->work);
    else
        memset(s->K[1], 0, s->n * sizeof *s->K[1]);
    if (s->method == ND_MILSTEIN && s->k.diffusion_dx)
        s->k.diffusion_dx(t, y, p, NULL, NULL, s->K[2], NULL, s->B, s->work);
    else
        memset(s->K[2], 0, s->n * sizeof *s->K[2]);
}

nd_real nd_sde_increment(const NdSolver *s, int64_t b, size_t i, nd_real t_new, nd_real *w)
{
    *w = (nd_real)nd_brownian_at(s->brownian_seed, b, (long)i, s->brownian_t0, s->brownian_t1,
                                 t_new);
    return *w - s->K[3][(size_t)b * (size_t)s->k.ny + i];
}

/* W (K[3]) holds each element's W(t) and leaves with W(t_new). */
void nd_sde_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y)
{
    nd_real h = t_new - t;
    const nd_real *f = s->K[0], *g = s->K[1], *gg = s->K[2];
    nd_real *W = s->K[3];
    size_t ny = (size_t)s->k.ny;
    nd_sde_eval(s, p, t, y);
    if (s->on_step) /* backprop's tape (nd_backprop_sde.c) reads y_n and W(t) */
        s->on_step(s->hook_ctx, s, t, h, t_new, y);
    for (int64_t b = 0; b < s->B; b++)
        for (size_t i = 0; i < ny; i++) {
            size_t e = (size_t)b * ny + i;
            nd_real w;
            nd_real dW = nd_sde_increment(s, b, i, t_new, &w);
            W[e] = w;
            y[e] += f[e] * h + g[e] * dW + (nd_real)0.5 * gg[e] * (dW * dW - h);
        }
    s->num_steps++;
}

int nd_sde_begin(NdSolver *s, const nd_real *ts, int nt)
{
    if (s->sys || s->k.ns > 0 || s->ev)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "%s solves a model without events or "
                              "shared states only", nd_method_name(s->method));
    if (ts[nt - 1] < ts[0])
        return nd_solver_fail(s, ND_ERR_ARG, "%s integrates forward in time only (t = [%g, ..., "
                              "%g] runs backwards)", nd_method_name(s->method), ts[0], ts[nt - 1]);
    s->brownian_t0 = ts[0];
    s->brownian_t1 = ts[nt - 1];
    memset(s->K[3], 0, s->n * sizeof *s->K[3]); /* W(t0) = 0 */
    return ND_OK;
}
