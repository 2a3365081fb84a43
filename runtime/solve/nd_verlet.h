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
/* The step's two halves over a batch of B samples of ny = [x; v]: the kick
 * v += c a (a laid out like y, its velocity half the acceleration) and the
 * drift x += h v. Backprop's tape (nd_backprop_verlet.c) redoes them to
 * recover the second evaluation's argument bit for bit. The step calls the
 * solver's on_step hook with y_n once a_n is in K[0]. */
void nd_verlet_kick(nd_real *ND_RESTRICT y, const nd_real *a, size_t ny, int64_t B, nd_real c);
void nd_verlet_drift(nd_real *ND_RESTRICT y, size_t ny, int64_t B, nd_real h);

#endif
