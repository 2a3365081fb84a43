/* A plain hand-written C dopri5 for bench_solvers: the reference that nodec's
 * runtime (a tableau-driven engine calling a JIT'd kernel) is measured against.
 * Same algorithm as runtime/solve/nd_adaptive.c and Hairer's dopri5.f (error norm,
 * PI controller, initial step, 4th-order dense output), so on the same problem
 * both take the same steps and the time ratio is the cost of generality. */
#ifndef HAND_DOPRI5_H
#define HAND_DOPRI5_H

#include <stddef.h>

/* dydt = f(t, y) for a system of n doubles. */
typedef void (*HdRhs)(void *ctx, double t, const double *y, double *dydt);

typedef struct HdStats {
    long nfe, steps, rejected;
} HdStats;

typedef struct HdDopri5 HdDopri5;

/* Workspace for systems of n doubles; NULL on out-of-memory. */
HdDopri5 *hd_dopri5_create(size_t n);
void hd_dopri5_free(HdDopri5 *w);

/* Integrates y' = f from y0 at ts[0] to ts[nt-1] (increasing), writing y at
 * every ts[j] into yout[j*n ..] (dense output between steps). Returns 0, or -1
 * when 100000 steps did not reach the end or the step size underflowed. */
int hd_dopri5_solve(HdDopri5 *w, HdRhs f, void *ctx, const double *y0, const double *ts, int nt,
                    double rtol, double atol, double *yout, HdStats *st);

#endif
