/* Internal to the runtime (not installed): the velocity Verlet engine of
 * nd_verlet.c for second-order models (`solver = verlet(h = ...)`), as the
 * solver object (nd_solver.c) drives it. Callers see only nd_solver.h
 * (ND_VERLET). It steps model kernels whose table says second_order
 * (nd_kernels.h): one sample's y is [x; v]. */
#ifndef ND_VERLET_H
#define ND_VERLET_H

#include "nd_adaptive.h"

/* ND_OK, or ND_ERR_UNSUPPORTED with a message when s cannot run verlet: a
 * table that is not second order, shared states, events, a system. */
int nd_verlet_check(NdSolver *s);

/* One step from (t, y) to t_new, y in place; one evaluation of f (the
 * acceleration at the step's start is kept from the previous step's end). */
void nd_verlet_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y);

#endif
