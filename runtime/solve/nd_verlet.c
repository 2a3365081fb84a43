/* Velocity Verlet (Störmer–Verlet, kick-drift-kick) for the second-order
 * systems x'' = a(t, x) that `d2x/dt2 = ...` lowers to the pairs dx/dt = v,
 * dv/dt = a (docs/language.md, "Second-order equations"):
 *
 *     v_{n+1/2} = v_n + h/2 a(t_n, x_n)
 *     x_{n+1}   = x_n + h v_{n+1/2}
 *     v_{n+1}   = v_{n+1/2} + h/2 a(t_{n+1}, x_{n+1})
 *
 * second order, symmetric and symplectic (for a = -grad U(x) the energy error
 * stays bounded over exponentially long times instead of drifting). Hairer,
 * Lubich & Wanner, Geometric Numerical Integration, 2nd ed. (2006), I.1.4,
 * eq. (1.17); Swope, Andersen, Berens & Wilson, J. Chem. Phys. 76 (1982) 637.
 *
 * The kernel evaluates the whole [v; a] right-hand side; the engine reads its
 * velocity half (the acceleration) only. The acceleration at a step's end is
 * the next step's start (FSAL): one evaluation per step. The velocity passed
 * with x_{n+1} is v_{n+1/2}, which a reads not (sema refuses verlet for an
 * acceleration that reads dx/dt). */
#include "nd_verlet.h"

#include <string.h>

#include "nd_events.h"

int nd_verlet_check(NdSolver *s)
{
    if (s->sys)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "verlet steps second-order models only");
    if (s->k.ns != 0) /* (checked first: a table with shared states says second_order = 0) */
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "verlet does not step shared states (not in "
                              "this version): use option shared_states = per_copy");
    if (!s->k.second_order || s->k.ny % 2 != 0)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "verlet needs a model whose states are all "
                              "second order (d2x/dt2 = ...): use rk4");
    if (s->ev)
        return nd_solver_fail(s, ND_ERR_UNSUPPORTED, "verlet does not locate events (not in this "
                              "version): use rk4");
    return ND_OK;
}

/* v += c * a over the velocity half of every sample. */
void nd_verlet_kick(nd_real *ND_RESTRICT y, const nd_real *a, size_t ny, int64_t B, nd_real c)
{
    size_t half = ny / 2;
    for (int64_t b = 0; b < B; b++) {
        nd_real *v = y + (size_t)b * ny + half;
        const nd_real *acc = a + (size_t)b * ny + half;
        for (size_t i = 0; i < half; i++)
            v[i] += c * acc[i];
    }
}

/* x += h * v over the position half of every sample. */
void nd_verlet_drift(nd_real *ND_RESTRICT y, size_t ny, int64_t B, nd_real h)
{
    size_t half = ny / 2;
    for (int64_t b = 0; b < B; b++) {
        nd_real *x = y + (size_t)b * ny;
        for (size_t i = 0; i < half; i++)
            x[i] += h * x[half + i];
    }
}

void nd_verlet_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y)
{
    nd_real h = t_new - t, *a = s->K[0];
    size_t ny = (size_t)s->k.ny;
    if (!s->fsal_ok || s->fsal_t != t)
        nd_solver_rhs(s, p, t, y, a);
    if (s->on_step) /* backprop's tape (nd_backprop_verlet.c) reads y_n and a_n */
        s->on_step(s->hook_ctx, s, t, h, t_new, y);
    nd_verlet_kick(y, a, ny, s->B, (nd_real)0.5 * h);
    nd_verlet_drift(y, ny, s->B, h);
    nd_solver_rhs(s, p, t_new, y, a);
    nd_verlet_kick(y, a, ny, s->B, (nd_real)0.5 * h);
    s->fsal_ok = 1;
    s->fsal_t = t_new;
    s->num_steps++;
}
