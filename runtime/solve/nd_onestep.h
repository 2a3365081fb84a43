/* Internal to the runtime (not installed): the one-step implicit engines of
 * nd_onestep.c for stiff problems, `rodas4` (Rosenbrock) and `kvaerno5`
 * (ESDIRK), as the solver object (nd_solver.c) and the tests drive them.
 * Callers see only nd_solver.h (ND_RODAS4, ND_KVAERNO5).
 *
 * Each step factors I / (h gamma) - J once (J the Jacobian at the step's
 * start, one m x m block per sample). They solve model kernels only (no
 * system of nd_solver_create_system), so the gradients (which integrate
 * systems and follow bdf's steps) do not use them. */
#ifndef ND_ONESTEP_H
#define ND_ONESTEP_H

#include <stddef.h>

#include "nd_adaptive.h"

/* Allocates the engine's workspace for s (nd_solver.c, at create): nblocks
 * Jacobian blocks of m. */
int nd_onestep_attach(NdSolver *s, size_t nblocks, int m);
void nd_onestep_detach(NdSolver *s);

/* The solve behind nd_solve for ND_RODAS4 and ND_KVAERNO5; arguments checked. */
int nd_onestep_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                     nd_real *yout);

long nd_onestep_get_num_jac_evals(const NdSolver *s);
long nd_onestep_get_num_lu(const NdSolver *s); /* factorisations (each of B blocks) */

#endif
