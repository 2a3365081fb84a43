/* Internal to the runtime (not installed, not for callers): the solver object
 * shared by nd_solver.c (create / set / get, the fixed-step engine) and
 * nd_adaptive.c (the error-controlled engine with dense output). Callers see
 * only nd_solver.h. */
#ifndef ND_ADAPTIVE_H
#define ND_ADAPTIVE_H

#include <stddef.h>

#include "nd_solver.h"
#include "nd_tableaus.h"

enum { ND_MESSAGE_SIZE = 256 };

struct NdSolver {
    NdKernels k;
    NdMethod method;
    const NdTableau *tab;
    int64_t B;
    size_t n;                      /* B * ny: the length of every state-sized vector */
    double h;                      /* fixed step, > 0; 0 until nd_solver_set_step */
    double rtol, atol;             /* adaptive tolerances */
    double h0;                     /* adaptive first step; 0 = automatic */
    long max_steps;                /* adaptive: attempts allowed between outputs */
    int use_e3;                    /* the tableau has a second error estimate (dop853) */
    double *K[ND_RK_MAX_STAGES];   /* stage derivatives k_0..k_{s-1}, n doubles each */
    double *ytmp;                  /* stage argument y + h sum_j a[i][j] k_j */
    double *y, *ynew;              /* adaptive: state at t and at t + h (NULL if fixed) */
    double *work;                  /* kernel scratch, nd_kernels_work_size(k, B) doubles */
    double *block;                 /* the one allocation behind all the vectors */
    long num_steps;
    long num_rejected;
    long num_rhs_evals;
    char message[ND_MESSAGE_SIZE]; /* "" after a successful solve */
};

/* Keeps a printf-style message in s and returns status. */
int nd_solver_fail(NdSolver *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* out = y + h * sum_{j<i} a[i][j] k_j: the argument of stage i. */
void nd_rk_stage_arg(NdSolver *s, int i, double h, const double *y, double *out);

/* Index of the first element of y that is not finite, or -1. */
long nd_first_nonfinite(const double *y, size_t n);
const char *nd_nonfinite_word(double v); /* "nan", "inf" or "-inf" */

/* The adaptive solve behind nd_solve; arguments already checked, y0 finite. */
int nd_adaptive_solve(NdSolver *s, const double *p, const double *y0, const double *ts, int nt,
                      double *yout);

#endif
