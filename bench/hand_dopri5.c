/* Dormand–Prince 5(4) written out by hand, for bench_solvers only.
 * Tableau: J. R. Dormand, P. J. Prince, "A family of embedded Runge–Kutta
 * formulae", J. Comp. Appl. Math. 6 (1980) 19–26; dense output (Shampine's
 * 4th-order continuous extension) and step control after E. Hairer,
 * S. P. Nørsett, G. Wanner, Solving ODEs I, 2nd ed., II.4–II.6 (dopri5.f):
 * err = |h| rms(sum e_i k_i / (atol + rtol max(|y|, |y_new|))), PI controller
 * with beta 0.04, safety 0.9, step ratio in [0.2, 10], Hairer's initial step.
 * Every stage is a plain loop over the n elements, coefficients as literals. */
#include "hand_dopri5.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The Butcher tableau (c_i, a_ij; the 5th-order weights b are row 7). */
#define C2 (1.0 / 5)
#define C3 (3.0 / 10)
#define C4 (4.0 / 5)
#define C5 (8.0 / 9)
#define A21 (1.0 / 5)
#define A31 (3.0 / 40)
#define A32 (9.0 / 40)
#define A41 (44.0 / 45)
#define A42 (-56.0 / 15)
#define A43 (32.0 / 9)
#define A51 (19372.0 / 6561)
#define A52 (-25360.0 / 2187)
#define A53 (64448.0 / 6561)
#define A54 (-212.0 / 729)
#define A61 (9017.0 / 3168)
#define A62 (-355.0 / 33)
#define A63 (46732.0 / 5247)
#define A64 (49.0 / 176)
#define A65 (-5103.0 / 18656)
#define A71 (35.0 / 384)
#define A73 (500.0 / 1113)
#define A74 (125.0 / 192)
#define A75 (-2187.0 / 6784)
#define A76 (11.0 / 84)
/* e_i = b_i - bhat_i: the 5th minus the embedded 4th-order weights. */
#define E1 (71.0 / 57600)
#define E3 (-71.0 / 16695)
#define E4 (71.0 / 1920)
#define E5 (-17253.0 / 339200)
#define E6 (22.0 / 525)
#define E7 (-1.0 / 40)
/* The continuous extension's last coefficient vector (dopri5.f's D1..D7). */
#define D1 (-12715105075.0 / 11282082432.0)
#define D3 (87487479700.0 / 32700410799.0)
#define D4 (-10690763975.0 / 1880347072.0)
#define D5 (701980252875.0 / 199316789632.0)
#define D6 (-1453857185.0 / 822651844.0)
#define D7 (69997945.0 / 29380423.0)

#define SAFE 0.9
#define FAC_MIN 0.2  /* h shrinks at most 5x */
#define FAC_MAX 10.0 /* and grows at most 10x */
#define BETA 0.04
#define EXPO1 (0.2 - BETA * 0.75)
#define MAX_STEPS 100000L

struct HdDopri5 {
    size_t n;
    double *y, *y1, *k1, *k2, *k3, *k4, *k5, *k6, *k7, *ytmp, *block;
};

HdDopri5 *hd_dopri5_create(size_t n)
{
    HdDopri5 *w = calloc(1, sizeof *w);
    double *b = malloc(sizeof *b * 10 * (n ? n : 1));
    if (!w || !b) {
        free(w), free(b);
        return NULL;
    }
    double **v[10] = {&w->y, &w->y1, &w->k1, &w->k2, &w->k3, &w->k4, &w->k5, &w->k6, &w->k7,
                      &w->ytmp};
    for (int i = 0; i < 10; i++)
        *v[i] = b + (size_t)i * n;
    w->n = n;
    w->block = b;
    return w;
}

void hd_dopri5_free(HdDopri5 *w)
{
    if (w)
        free(w->block);
    free(w);
}

/* rms over the n elements of v / (atol + rtol |y|). */
static double rms_scaled(size_t n, const double *v, const double *y, double rtol, double atol)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double q = v[i] / (atol + rtol * fabs(y[i]));
        sum += q * q;
    }
    return sqrt(sum / (double)n);
}

/* Hairer's starting step (dopri5.f HINIT): h with h^5 max(|f|, |f'|) = 0.01. */
static double initial_step(HdDopri5 *w, HdRhs f, void *ctx, double t, double hmax, double rtol,
                           double atol, HdStats *st)
{
    size_t n = w->n;
    double d0 = rms_scaled(n, w->y, w->y, rtol, atol), d1 = rms_scaled(n, w->k1, w->y, rtol, atol);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = fmin(h0, hmax);
    for (size_t i = 0; i < n; i++)
        w->ytmp[i] = w->y[i] + h0 * w->k1[i];
    f(ctx, t + h0, w->ytmp, w->k2);
    st->nfe++;
    for (size_t i = 0; i < n; i++)
        w->ytmp[i] = w->k2[i] - w->k1[i];
    double d2 = rms_scaled(n, w->ytmp, w->y, rtol, atol) / h0;
    double der = fmax(d1, d2);
    double h1 = der <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / der, 0.2);
    return fmin(fmin(100 * h0, h1), hmax);
}

/* The six new stages of a step of h from (t, y); y1 = the 5th-order solution,
 * k7 = f(t + h, y1) (first same as last). */
static void step(HdDopri5 *w, HdRhs f, void *ctx, double t, double h, double t_new)
{
    size_t n = w->n;
    double *y = w->y, *yt = w->ytmp, *k1 = w->k1, *k2 = w->k2, *k3 = w->k3, *k4 = w->k4;
    double *k5 = w->k5, *k6 = w->k6;
    for (size_t i = 0; i < n; i++)
        yt[i] = y[i] + h * A21 * k1[i];
    f(ctx, t + C2 * h, yt, k2);
    for (size_t i = 0; i < n; i++)
        yt[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i]);
    f(ctx, t + C3 * h, yt, k3);
    for (size_t i = 0; i < n; i++)
        yt[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
    f(ctx, t + C4 * h, yt, k4);
    for (size_t i = 0; i < n; i++)
        yt[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
    f(ctx, t + C5 * h, yt, k5);
    for (size_t i = 0; i < n; i++)
        yt[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]);
    f(ctx, t_new, yt, k6);
    for (size_t i = 0; i < n; i++)
        w->y1[i] = y[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i]);
    f(ctx, t_new, w->y1, w->k7);
}

static double error_norm(const HdDopri5 *w, double h, double rtol, double atol)
{
    double sum = 0;
    for (size_t i = 0; i < w->n; i++) {
        double sk = atol + rtol * fmax(fabs(w->y[i]), fabs(w->y1[i]));
        double e = E1 * w->k1[i] + E3 * w->k3[i] + E4 * w->k4[i] + E5 * w->k5[i] +
                   E6 * w->k6[i] + E7 * w->k7[i];
        sum += (e / sk) * (e / sk);
    }
    return fabs(h) * sqrt(sum / (double)w->n);
}

/* y(t + theta h) from the accepted step's stages (dopri5.f CONTD5). */
static void dense(const HdDopri5 *w, double h, double theta, double *out)
{
    double th1 = 1 - theta;
    for (size_t i = 0; i < w->n; i++) {
        double ydiff = w->y1[i] - w->y[i], bspl = h * w->k1[i] - ydiff;
        double r4 = ydiff - h * w->k7[i] - bspl;
        double r5 = h * (D1 * w->k1[i] + D3 * w->k3[i] + D4 * w->k4[i] + D5 * w->k5[i] +
                         D6 * w->k6[i] + D7 * w->k7[i]);
        out[i] = w->y[i] + theta * (ydiff + th1 * (bspl + theta * (r4 + th1 * r5)));
    }
}

/* The next step from this one's error (PI control, [HNW] IV.2). */
static double next_h(double h, double err, double facold, int last_rejected, double hmax)
{
    if (!isfinite(err)) /* a stage overflowed: retreat hard */
        return h * FAC_MIN;
    double fac11 = pow(err, EXPO1);
    if (err > 1)
        return h / fmin(1 / FAC_MIN, fac11 / SAFE);
    double fac = fmax(1 / FAC_MAX, fmin(1 / FAC_MIN, fac11 / pow(facold, BETA) / SAFE));
    double hnew = h / fac;
    if (last_rejected)
        hnew = fmin(hnew, h);
    return fmin(hnew, hmax);
}

static void swap(double **a, double **b)
{
    double *t = *a;
    *a = *b;
    *b = t;
}

int hd_dopri5_solve(HdDopri5 *w, HdRhs f, void *ctx, const double *y0, const double *ts, int nt,
                    double rtol, double atol, double *yout, HdStats *st)
{
    size_t n = w->n;
    double t = ts[0], t_end = ts[nt - 1], hmax = t_end - t, facold = 1e-4;
    int j = 1, rejected = 0;
    *st = (HdStats){0};
    memcpy(w->y, y0, n * sizeof *y0);
    memcpy(yout, y0, n * sizeof *y0);
    f(ctx, t, w->y, w->k1);
    st->nfe++;
    double h = initial_step(w, f, ctx, t, hmax, rtol, atol, st);
    for (long attempts = 0; j < nt; attempts++) {
        if (attempts >= MAX_STEPS || h < 16 * DBL_EPSILON * fabs(t))
            return -1;
        double t_new = t + h;
        if (t + 1.01 * h > t_end)
            h = t_end - t, t_new = t_end;
        step(w, f, ctx, t, h, t_new);
        st->nfe += 6;
        double err = error_norm(w, h, rtol, atol), hnew = next_h(h, err, facold, rejected, hmax);
        rejected = !(err <= 1);
        if (rejected) {
            st->rejected++;
        } else {
            facold = fmax(err, 1e-4);
            for (; j < nt && ts[j] <= t_new; j++) {
                if (ts[j] == t_new)
                    memcpy(yout + (size_t)j * n, w->y1, n * sizeof *yout);
                else
                    dense(w, h, (ts[j] - t) / h, yout + (size_t)j * n);
            }
            swap(&w->k1, &w->k7);
            swap(&w->y, &w->y1);
            t = t_new;
            st->steps++;
        }
        h = hnew;
    }
    return 0;
}
