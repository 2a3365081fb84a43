/* The stochastic engine behind nd_solve for euler_maruyama and milstein
 * (nd_sde.c): fixed steps of dy = f dt + g dW with diagonal noise, the
 * Brownian path drawn from a Brownian tree keyed by the solver's seed. */
#ifndef ND_SDE_H
#define ND_SDE_H

#include "nd_adaptive.h"

/* What nd_solve checks and sets before an SDE method's first step (its engine
 * is SDE): the span [ts[0], ts[nt-1]] the Brownian tree covers, W(t0) = 0.
 * The steps are nd_solve's fixed steps, each through nd_sde_step. */
int nd_sde_begin(NdSolver *s, const nd_real *ts, int nt);
/* One step from t to t_new in place, on the path's increment W(t_new) - W(t). */
void nd_sde_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y);
/* Element i of sample b's increment W(t_new) - W(t) from the step's start
 * (K[3] holds W(t)); *w = W(t_new). The step calls the solver's on_step hook
 * with y_n before it moves y, so backprop's tape (nd_backprop_sde.c) records
 * the same increments. */
nd_real nd_sde_increment(const NdSolver *s, int64_t b, size_t i, nd_real t_new, nd_real *w);

#endif
