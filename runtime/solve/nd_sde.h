/* The stochastic engine behind nd_solve for euler_maruyama and milstein
 * (nd_sde.c): fixed steps of dy = f dt + g dW with diagonal noise, the
 * Brownian path drawn from a Brownian tree keyed by the solver's seed. */
#ifndef ND_SDE_H
#define ND_SDE_H

#include "nd_adaptive.h"

/* nd_solve for an SDE method (s->method's engine is SDE). */
int nd_sde_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout);

#endif
