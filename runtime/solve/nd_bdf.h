/* Internal to the runtime (not installed): the variable-order BDF engine of
 * nd_bdf.c for stiff problems, as the solver object (nd_solver.c), the
 * gradients (nd_gradient.c, nd_adjoint.c, nd_backprop.c), the tests and the
 * benchmark drive it. Callers see only nd_solver.h (ND_BDF, "bdf").
 *
 * The state between steps is the array D of backward differences of the
 * interpolating polynomial (ND_BDF_ROWS rows of n): D[0] = y_n,
 * D[1] = y_n - y_{n-1}, ... on a grid of the current step size. The Newton
 * matrix I - c J (c = h / alpha_k) is block diagonal: one m x m block per
 * sample (the model: B blocks of ny), the elements after the blocks having
 * J = 0 (the adjoint's parameter part); or, with a model's shared block
 * (nd_kernels.h), bordered: the blocks, each with its columns of the shared
 * elements, and the shared elements' own block, solved shared block first
 * (nd_bdf.c, solve_bordered). */
#ifndef ND_BDF_H
#define ND_BDF_H

#include <stddef.h>

#include "nd_adaptive.h"

enum { ND_BDF_MAX_ORDER = 5, ND_BDF_ROWS = ND_BDF_MAX_ORDER + 3 };

/* A system's Jacobian (for nd_solver_create_system): blocks receives nblocks
 * row-major m x m blocks, block i = d F[i m .. i m + m) / d z[i m .. i m + m). */
typedef void (*NdSystemJacFn)(void *ctx, nd_real t, const nd_real *z, nd_real *blocks);

/* One accepted step as the hook and the discrete adjoint see it: from t to
 * t_new = t + h (h signed) at order k, the difference array having been
 * rescaled from the spacing h_from (|h| of the previous accepted step, or of
 * the initial step) to |h| before it. */
typedef struct NdBdfStep {
    nd_real t, h, t_new, h_from;
    int order;
} NdBdfStep;

/* Called at each accepted step with the new state, before D moves on. */
typedef void (*NdBdfHook)(void *ctx, NdSolver *s, const NdBdfStep *st, const nd_real *y_new);

/* Allocates the engine's workspace for s (nd_solver.c, at create): nblocks
 * Jacobian blocks of m (0 for a system until nd_bdf_set_system_jac). */
int nd_bdf_attach(NdSolver *s, size_t nblocks, int m);
void nd_bdf_detach(NdSolver *s);
/* A system's Jacobian and its block structure (reallocates the blocks). */
int nd_bdf_set_system_jac(NdSolver *s, NdSystemJacFn jac, void *ctx, size_t nblocks, int m);
/* The continuous adjoint's system [a; g] of a model with a shared block of ns:
 * jac writes the model's bordered J (nd_kernels.h), not -J^T; the engine
 * factors and solves I + c J^T from it (ns = 0: nd_bdf_set_system_jac). */
int nd_bdf_set_adjoint_jac(NdSolver *s, NdSystemJacFn jac, void *ctx, size_t nblocks, int m,
                           size_t ns);
void nd_bdf_set_hook(NdSolver *s, NdBdfHook hook, void *ctx);

/* The solve behind nd_solve for ND_BDF; arguments already checked. */
int nd_bdf_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout);

/* Step by step, as nd_adaptive_begin / nd_adaptive_attempt: land = 1 makes
 * every output time a step end (the gradients' forward pass). */
int nd_bdf_begin(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                 nd_real *yout, int land);
int nd_bdf_attempt(NdSolver *s);
int nd_bdf_next_output(const NdSolver *s); /* the next row of yout to fill */
nd_real *nd_bdf_state(NdSolver *s);         /* y at the current time */
nd_real nd_bdf_initial_step(const NdSolver *s); /* signed: D[1] = h0 f(t0, y0) at the start */

/* Everything the engine needs to resume bit for bit (controller, D, J, LU). */
size_t nd_bdf_snapshot_doubles(const NdSolver *s);
void nd_bdf_save(const NdSolver *s, nd_real *buf);
void nd_bdf_restore(NdSolver *s, const nd_real *buf);

/* ---- the discrete adjoint of one accepted step (nd_backprop.c) ----
 * Dbar: the cotangent of D after the step (ND_BDF_ROWS rows of n).
 * 1. nd_bdf_adjoint_solve takes Dbar through the difference update, leaves the
 *    cotangent of the Newton correction in w, solves (I - c J)^T w = dbar with
 *    J at (t_new, y_new) and returns c: the caller then forms, with its vjp,
 *    ypbar = c J^T w (and adds c (df/dp)^T w to dL/dp).
 * 2. nd_bdf_adjoint_predict adds ypbar through the predictor and -w through
 *    psi, then undoes the rescale from h_from: Dbar is then the cotangent of D
 *    after the previous accepted step. Returns a LAPACK status (0 ok). */
int nd_bdf_adjoint_solve(NdSolver *s, const nd_real *p, const NdBdfStep *st,
                         const nd_real *y_new, nd_real *Dbar, nd_real *w, nd_real *c_out);
void nd_bdf_adjoint_predict(const NdSolver *s, const NdBdfStep *st, const nd_real *ypbar,
                            const nd_real *w, nd_real *Dbar);

long nd_bdf_get_num_jac_evals(const NdSolver *s);
long nd_bdf_get_num_lu(const NdSolver *s); /* factorisations of I - c J (each of B blocks) */

#endif
