/* Solving an initial value problem with the compiled right-hand side: the
 * runtime's public solver API, in the SUNDIALS shape (create / set / solve /
 * get / free). All workspace is allocated at create; nd_solve allocates nothing
 * and no step allocates.
 *
 * Status codes are negative on failure; nd_status_name gives a readable name and
 * nd_solver_get_message the full sentence (time reached, which state element). */
#ifndef ND_SOLVER_H
#define ND_SOLVER_H

#include <stdint.h>

#include "nd_kernels.h"

typedef enum NdMethod {
    ND_EULER,
    ND_MIDPOINT,
    ND_HEUN,
    ND_RK4,
    ND_METHOD_COUNT
} NdMethod;

enum {
    ND_OK = 0,
    ND_ERR_ARG = -1,         /* invalid argument (bad h, times not monotone, ...) */
    ND_ERR_NONFINITE = -2,   /* a state became NaN or infinite */
    ND_ERR_MEMORY = -3,
    ND_ERR_UNSUPPORTED = -4, /* method not available */
};

typedef struct NdSolver NdSolver;

/* Looks a method up by its .node name ("rk4"); -1 when unknown. */
int nd_method_from_name(const char *name);
const char *nd_method_name(NdMethod m);
int nd_method_order(NdMethod m);

/* NULL on out-of-memory. B = number of samples in the batch. */
NdSolver *nd_solver_create(const NdKernels *k, NdMethod method, int64_t B);
void nd_solver_free(NdSolver *s);
int nd_solver_set_step(NdSolver *s, double h); /* fixed-step methods: h > 0 */

/* Integrates from y0 at ts[0] through ts[1..nt-1] (strictly increasing or strictly
 * decreasing; decreasing integrates backwards). yout receives nt * B * ny values:
 * yout[(j * B + b) * ny + i] is element i of sample b at ts[j]; yout[0..] = y0.
 * Fixed-step methods take steps of h, shortening the last step of each interval
 * so they land exactly on every output time. */
int nd_solve(NdSolver *s, const double *p, const double *y0, const double *ts, int nt,
             double *yout);

const char *nd_status_name(int status);
const char *nd_solver_get_message(const NdSolver *s); /* "" when the last solve succeeded */
long nd_solver_get_num_steps(const NdSolver *s);
long nd_solver_get_num_rhs_evals(const NdSolver *s);

#endif
