/* The Butcher tableaus of the explicit Runge–Kutta methods, one constant table
 * each, indexed by NdMethod. Sources:
 *   [HNW] E. Hairer, S. P. Nørsett, G. Wanner, Solving Ordinary Differential
 *         Equations I, 2nd ed., Springer 1993, section II.1 (the first
 *         Runge–Kutta methods: Runge 1895, Heun 1900, Kutta 1901).
 *   [B08] J. C. Butcher, Numerical Methods for Ordinary Differential Equations,
 *         2nd ed., Wiley 2008, sections 20 (Euler) and 23 (Runge–Kutta methods). */
#include "nd_tableaus.h"

#include <stddef.h>

/* Forward Euler: y_new = y + h f(t, y). Order 1. [HNW] I.7, [B08] 20. */
static const NdTableau euler = {
    .name = "euler",
    .order = 1,
    .stages = 1,
    .c = {0.0},
    .b = {1.0},
};

/* Explicit midpoint (Runge 1895): k1 = f(t, y), k2 = f(t + h/2, y + h/2 k1),
 * y_new = y + h k2. Order 2. [HNW] II.1; [B08] 23. */
static const NdTableau midpoint = {
    .name = "midpoint",
    .order = 2,
    .stages = 2,
    .c = {0.0, 0.5},
    .a = {{0.0}, {0.5}},
    .b = {0.0, 1.0},
};

/* Heun's method, the explicit trapezoidal predictor-corrector: predict with
 * Euler, correct with the trapezoidal rule, y_new = y + h (k1 + k2) / 2.
 * Order 2. [HNW] II.1 (Heun 1900); [B08] 23. */
static const NdTableau heun = {
    .name = "heun",
    .order = 2,
    .stages = 2,
    .c = {0.0, 1.0},
    .a = {{0.0}, {1.0}},
    .b = {0.5, 0.5},
};

/* The classic fourth-order method of Kutta (1901):
 * y_new = y + h (k1 + 2 k2 + 2 k3 + k4) / 6. [HNW] II.1; [B08] 23. */
static const NdTableau rk4 = {
    .name = "rk4",
    .order = 4,
    .stages = 4,
    .c = {0.0, 0.5, 0.5, 1.0},
    .a = {{0.0}, {0.5}, {0.0, 0.5}, {0.0, 0.0, 1.0}},
    .b = {1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0},
};

static const NdTableau *const tableaus[ND_METHOD_COUNT] = {
    [ND_EULER] = &euler,
    [ND_MIDPOINT] = &midpoint,
    [ND_HEUN] = &heun,
    [ND_RK4] = &rk4,
};

const NdTableau *nd_tableau_get(NdMethod m)
{
    if ((int)m < 0 || m >= ND_METHOD_COUNT)
        return NULL;
    return tableaus[m];
}
