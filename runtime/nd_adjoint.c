/* The continuous adjoint (ND_GRAD_ADJOINT) of Chen et al., Neural Ordinary
 * Differential Equations, NeurIPS 2018, Algorithm 1: the augmented state
 * z = [y; a; g] (B*ny + B*ny + np doubles: the parameter part is shared by the
 * batch) solves
 *   dy/dt = f(t, y),  da/dt = -a^T df/dy,  dg/dt = -a^T df/dp
 * backwards from the last observation, with a(t_end) = dL/dy there, g = 0, and a
 * jumping by dL_j/dy at every earlier observation; at t0, a = dL/dy0 and
 * g = dL/dp minus the loss's direct terms. The same engine and settings as the
 * forward solve integrate it; nothing depends on the number of steps. At each
 * observation y restarts from the forward value (as torchdiffeq does), so the
 * backward solve's own drift in y does not carry over. The error norm is the
 * largest RMS norm of y, a and g, or of y and a only: the seminorm of Kidger,
 * Chen and Lyons, "Hey, that's not an ODE", ICML 2021. */
#include <string.h>

#include "nd_grad_internal.h"

/* dz/dt: one rhs and one vjp evaluation over the batch. */
static void adjoint_rhs(void *ctx, double t, const double *z, double *dzdt)
{
    NdGradient *g = ctx;
    size_t n = g->n, tail = n + (size_t)g->np;
    g->k.rhs(t, z, g->p, dzdt, g->B, g->work);
    g->k.vjp(t, z, g->p, z + n, NULL, dzdt + n, dzdt + 2 * n, g->B, g->work);
    for (size_t e = n; e < n + tail; e++)
        dzdt[e] = -dzdt[e];
    g->rhs_evals++;
    g->vjp_evals++;
}

int nd_adjoint_setup(NdGradient *g, const NdSolver *tmpl)
{
    size_t N = 2 * g->n + (size_t)g->np;
    g->aug = nd_solver_create_system(tmpl->method, N, adjoint_rhs, g);
    if (!g->aug)
        return ND_ERR_MEMORY;
    g->aug->h = tmpl->h;
    g->aug->rtol = tmpl->rtol;
    g->aug->atol = tmpl->atol;
    g->aug->h0 = tmpl->h0;
    g->aug->max_steps = tmpl->max_steps;
    return ND_OK;
}

/* y and a in groups of one sample, g as one group; g left out by the seminorm. */
static void set_norm(NdGradient *g)
{
    size_t n = g->n, ny = (size_t)g->k.ny, np = (size_t)g->np;
    NdSolver *s = g->aug;
    s->norm_parts = g->seminorm ? 2 : 3;
    s->norm[0] = (NdNormPart){.off = 0, .len = n, .group = ny};
    s->norm[1] = (NdNormPart){.off = n, .len = n, .group = ny};
    s->norm[2] = (NdNormPart){.off = 2 * n, .len = np, .group = np ? np : 1};
}

/* Row 0 of g->z is z at ts[j]; row 1 receives z at ts[j - 1]. */
static int solve_interval(NdGradient *g, int j)
{
    const double *ts = g->loss->ts;
    double span[2] = {ts[j], ts[j - 1]};
    size_t N = g->aug->n;
    int st = nd_solve(g->aug, NULL, g->z, span, 2, g->z);
    if (st)
        return nd_grad_fail(g, st, "backward solve (adjoint) from t = %.10g to t = %.10g: %s",
                            ts[j], ts[j - 1], nd_solver_get_message(g->aug));
    memcpy(g->z, g->z + N, N * sizeof *g->z);
    return ND_OK;
}

int nd_adjoint_backward(NdGradient *g, double *grad_y0)
{
    size_t n = g->n, np = (size_t)g->np;
    int nt = g->loss->nt;
    double *y = g->z, *a = g->z + n, *gp = g->z + 2 * n;
    set_norm(g);
    memcpy(y, g->obs_y + (size_t)(nt - 1) * n, n * sizeof *y);
    memcpy(a, g->obs_gy + (size_t)(nt - 1) * n, n * sizeof *a);
    memset(gp, 0, np * sizeof *gp);
    for (int j = nt - 1; j > 0; j--) {
        int st = solve_interval(g, j);
        if (st)
            return st;
        memcpy(y, g->obs_y + (size_t)(j - 1) * n, n * sizeof *y);
        for (size_t e = 0; e < n; e++)
            a[e] += g->obs_gy[(size_t)(j - 1) * n + e];
    }
    for (size_t e = 0; e < np; e++)
        g->grad_p[e] += gp[e];
    if (grad_y0)
        memcpy(grad_y0, a, n * sizeof *a);
    return ND_OK;
}
