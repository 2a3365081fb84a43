/* Internal to the runtime (not installed): the Rosenbrock engine of
 * nd_rosenbrock.c for stiff problems, `rodas4`, as the solver object
 * (nd_solver.c) and the tests drive it. Callers see only nd_solver.h
 * (ND_RODAS4, "rodas4").
 *
 * A Rosenbrock method is linearly implicit: each step factors the matrix
 * I / (h gamma) - J once (J the Jacobian at the step's start, one m x m block
 * per sample) and solves with it once per stage, with no Newton iteration.
 * It solves model kernels only (no system of nd_solver_create_system), so the
 * gradients (which integrate systems) do not use it. */
#ifndef ND_ROSENBROCK_H
#define ND_ROSENBROCK_H

#include <stddef.h>

#include "nd_adaptive.h"

/* Allocates the engine's workspace for s (nd_solver.c, at create): nblocks
 * Jacobian blocks of m. */
int nd_ros_attach(NdSolver *s, size_t nblocks, int m);
void nd_ros_detach(NdSolver *s);

/* The solve behind nd_solve for ND_RODAS4; arguments already checked. */
int nd_ros_solve(NdSolver *s, const double *p, const double *y0, const double *ts, int nt,
                 double *yout);

long nd_ros_get_num_jac_evals(const NdSolver *s);
long nd_ros_get_num_lu(const NdSolver *s); /* factorisations (each of B blocks) */

#endif
