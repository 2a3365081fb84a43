/* L-BFGS (see nd_lbfgs.h): Nocedal and Wright, "Numerical Optimization", 2nd ed.,
 * algorithm 7.4 (the two-loop recursion) and 3.1 (backtracking with the Armijo
 * condition), in the form of PyTorch's torch/optim/lbfgs.py so that without a line
 * search its iterates are PyTorch's with max_iter = 1:
 *   y = g - g_prev, s = t_prev d_prev; kept (at most `history` pairs, the oldest
 *   dropped) when y's > 1e-10, with H0 = y's / y'y;
 *   d = -H g by the two loops (d = -g on the first iteration);
 *   t = min(1, 1/|g|_1) lr on the first iteration, lr after;
 *   no step when max |g| <= 1e-7 or g'd > -1e-9 (PyTorch's tolerance_grad and
 *   tolerance_change).
 * The line search (PyTorch offers strong Wolfe instead): t is halved, at most
 * LS_TRIALS times, until L(p + t d) <= L + 1e-4 t g'd; when no trial is accepted
 * p stays, and the zero step drops out of the history (y's = 0). */
#include "nd_lbfgs.h"

#include "nd_real.h"
#include <stdlib.h>
#include <string.h>

enum { LS_TRIALS = 20 };
static const nd_real TOL_GRAD = 1e-7, TOL_CHANGE = 1e-9, ARMIJO_C1 = 1e-4, CURVATURE_MIN = 1e-10;

struct NdLbfgs {
    int n, m;     /* parameters, history size */
    int k;        /* pairs held, the newest last */
    long iter;    /* iterations taken */
    nd_real *s, *y, *ro, *al; /* m x n, m x n, m, m */
    nd_real *d, *g_prev, *trial; /* n each */
    nd_real t_prev, H_diag;
};

static nd_real dot(const nd_real *a, const nd_real *b, int n)
{
    nd_real r = 0;
    for (int i = 0; i < n; i++)
        r += a[i] * b[i];
    return r;
}

NdLbfgs *nd_lbfgs_create(int n, int history)
{
    NdLbfgs *o = calloc(1, sizeof *o);
    size_t len = (size_t)(n > 0 ? n : 1), m = (size_t)(history > 0 ? history : 1);
    nd_real *block = o ? calloc(2 * m * len + 2 * m + 3 * len, sizeof(nd_real)) : NULL;
    if (!block) {
        free(o);
        return NULL;
    }
    *o = (NdLbfgs){.n = n, .m = (int)m, .s = block, .y = block + m * len,
                   .ro = block + 2 * m * len, .al = block + 2 * m * len + m,
                   .d = block + 2 * m * len + 2 * m, .g_prev = block + 2 * m * len + 2 * m + len,
                   .trial = block + 2 * m * len + 2 * m + 2 * len, .H_diag = 1};
    return o;
}

void nd_lbfgs_free(NdLbfgs *o)
{
    if (o)
        free(o->s);
    free(o);
}

/* The pair of the last step, when its curvature is positive (the oldest pair
 * makes room when the history is full). */
static void remember(NdLbfgs *o, const nd_real *g)
{
    size_t n = (size_t)o->n;
    if (o->k == o->m) {
        memmove(o->s, o->s + n, sizeof(nd_real) * n * (size_t)(o->m - 1));
        memmove(o->y, o->y + n, sizeof(nd_real) * n * (size_t)(o->m - 1));
        memmove(o->ro, o->ro + 1, sizeof(nd_real) * (size_t)(o->m - 1));
        o->k--;
    }
    nd_real *s = o->s + n * (size_t)o->k, *y = o->y + n * (size_t)o->k;
    for (size_t i = 0; i < n; i++) {
        y[i] = g[i] - o->g_prev[i];
        s[i] = o->t_prev * o->d[i];
    }
    nd_real ys = dot(y, s, o->n);
    if (ys > CURVATURE_MIN) {
        o->ro[o->k++] = 1 / ys;
        o->H_diag = ys / dot(y, y, o->n);
    }
}

/* d = -H g by the two-loop recursion over the pairs held. */
static void direction(NdLbfgs *o, const nd_real *g)
{
    int n = o->n;
    for (int i = 0; i < n; i++)
        o->d[i] = -g[i];
    for (int j = o->k - 1; j >= 0; j--) {
        o->al[j] = dot(o->s + (size_t)j * n, o->d, n) * o->ro[j];
        for (int i = 0; i < n; i++)
            o->d[i] -= o->al[j] * o->y[(size_t)j * n + i];
    }
    for (int i = 0; i < n; i++)
        o->d[i] *= o->H_diag;
    for (int j = 0; j < o->k; j++) {
        nd_real be = dot(o->y + (size_t)j * n, o->d, n) * o->ro[j];
        for (int i = 0; i < n; i++)
            o->d[i] += (o->al[j] - be) * o->s[(size_t)j * n + i];
    }
}

/* The step length along d that the Armijo condition accepts, or 0. */
static nd_real backtrack(NdLbfgs *o, const nd_real *p, nd_real L, nd_real gtd, nd_real t,
                        NdLossAt loss_at, void *ctx, int *evals)
{
    for (int k = 0; k < LS_TRIALS; k++, t /= 2) {
        for (int i = 0; i < o->n; i++)
            o->trial[i] = p[i] + t * o->d[i];
        nd_real Lt;
        ++*evals;
        if (loss_at(ctx, o->trial, &Lt) == 0 && isfinite(Lt) && Lt <= L + ARMIJO_C1 * t * gtd)
            return t;
    }
    return 0;
}

int nd_lbfgs_step(NdLbfgs *o, nd_real lr, nd_real *p, const nd_real *grad, nd_real L,
                  NdLossAt loss_at, void *ctx)
{
    nd_real gmax = 0, g1 = 0;
    for (int i = 0; i < o->n; i++) {
        gmax = fmax(gmax, fabs(grad[i]));
        g1 += fabs(grad[i]);
    }
    if (gmax <= TOL_GRAD) /* converged: PyTorch returns before counting an iteration */
        return 0;
    if (++o->iter > 1)
        remember(o, grad);
    direction(o, grad);
    memcpy(o->g_prev, grad, sizeof(nd_real) * (size_t)o->n);
    nd_real t = o->iter == 1 ? fmin(1.0, 1.0 / g1) * lr : lr;
    nd_real gtd = dot(grad, o->d, o->n);
    int evals = 0;
    if (gtd > -TOL_CHANGE)
        t = 0; /* not a descent direction worth taking */
    else if (loss_at)
        t = backtrack(o, p, L, gtd, t, loss_at, ctx, &evals);
    for (int i = 0; i < o->n; i++)
        p[i] += t * o->d[i];
    o->t_prev = t;
    return evals;
}
