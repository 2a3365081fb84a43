/* Internal to the runtime (not installed, not for callers): the solver object
 * shared by nd_solver.c (create / set / get, the fixed-step engine) and
 * nd_adaptive.c (the error-controlled engine with dense output), and the
 * step-level entry points the gradients (nd_gradient.c, nd_adjoint.c,
 * nd_backprop.c) drive: a solver may integrate any vector system (the adjoint's
 * augmented one), report each accepted step, and be stopped and resumed at any
 * accepted step. Callers see only nd_solver.h. */
#ifndef ND_ADAPTIVE_H
#define ND_ADAPTIVE_H

#include <stddef.h>

#include "nd_solver.h"
#include "nd_tableaus.h"

enum { ND_MESSAGE_SIZE = 256 };

/* C's restrict, in its common spelling for C++ (emit-c compiles the runtime as
 * both): on an output the stepping loops write, it spares them the run-time
 * overlap checks that cost more than the loop at small n. */
#ifdef __cplusplus
#define ND_RESTRICT __restrict
#else
#define ND_RESTRICT restrict
#endif

/* The most coefficient vectors a dense output keeps per step: dop853's
 * D, B, C and the four of P (nd_dense.c). */
enum { ND_DENSE_MAX = 7 };

/* A right-hand side other than the model's kernel: dzdt = F(t, z), z of n
 * doubles (the adjoint's [y; a; g]). */
typedef void (*NdSystemFn)(void *ctx, nd_real t, const nd_real *z, nd_real *dzdt);

/* Called at each accepted step from (t, y) to t_new = t + h (both engines),
 * before y moves: s->K[0..stages) hold the step's stage derivatives. The
 * adaptive engine calls it after writing the step's outputs, so dop853's dense
 * stages are in K too when an output time fell inside the step. */
typedef void (*NdStepHook)(void *ctx, NdSolver *s, nd_real t, nd_real h, nd_real t_new,
                           const nd_real *y);

/* The adaptive error norm is the largest of the weighted RMS norms of up to
 * three parts of the state (torchdiffeq's mixed norm for a tuple state); each
 * part is a mean over groups of `group` elements (one group per sample). The
 * model's solve has one part, the whole batch in groups of ny. A part's tail
 * (the shared block, nd_kernels.h) follows its groups and is counted as if
 * each group held a copy of it: every group's mean is over group + tail
 * elements, the mean the per-copy layout gives, computed once per norm
 * (docs/language.md, "Shared states"). */
enum { ND_NORM_MAX_PARTS = 3 };
typedef struct NdNormPart {
    size_t off, len, group; /* len a multiple of group; len = 0: unused */
    size_t tail;            /* elements at off + len shared by every group; 0: none */
    nd_real tail_weight;     /* the tail's values are weighted by it (the adjoint's shared
                               part, a sum over the batch, by 1/B: nd_adjoint.c) */
} NdNormPart;

struct NdSolver {
    NdKernels k;
    NdMethod method;
    const NdTableau *tab;
    int64_t B;
    size_t n;                      /* B * ny + ns: the length of every state-sized vector */
    nd_real h;                      /* fixed step, > 0; 0 until nd_solver_set_step */
    nd_real rtol, atol;             /* adaptive tolerances */
    nd_real h0;                     /* adaptive first step; 0 = automatic */
    nd_real h_next;                 /* adaptive: the step the controller wanted after
                                    * the last solve (before landing shortened it) */
    long max_steps;                /* adaptive: attempts allowed between outputs */
    int use_e3;                    /* the tableau has a second error estimate (dop853) */
    nd_real *K[ND_RK_MAX_STAGES];   /* stage derivatives k_0..k_{s-1}, n doubles each */
    nd_real *ytmp;                  /* stage argument y + h sum_j a[i][j] k_j */
    nd_real *y, *ynew;              /* adaptive: state at t and at t + h (NULL if fixed) */
    nd_real *work;                  /* kernel scratch, nd_kernels_work_size(k, B) doubles */
    nd_real *block;                 /* the one allocation behind all the vectors */
    size_t block_doubles;          /* its size, for memory accounting */
    NdSystemFn sys;                /* when set, integrated instead of k.rhs */
    void *sys_ctx;
    int norm_parts;
    NdNormPart norm[ND_NORM_MAX_PARTS];
    NdStepHook on_step;            /* NULL, or called at every accepted step */
    void *hook_ctx;
    struct NdBdf *bdf;             /* ND_BDF only: the implicit engine's workspace (nd_bdf.h) */
    struct NdOneStep *onestep;     /* ND_RODAS4, ND_KVAERNO5: their engine (nd_onestep.h) */
    struct NdEvents *ev;           /* the model's events' workspace and log (nd_events.h), or NULL */
    /* the tableau's rows as their nonzero terms, built at create: row[i] the
     * argument of stage i, then b, the error weights e and e3, and the stage
     * parts of the dense output's coefficient vectors (nd_dense.c) */
    NdCombo row[ND_RK_MAX_STAGES], b, e, e3, dense_row[ND_DENSE_MAX];
    int ndense;                    /* adaptive: dense coefficient vectors per step */
    nd_real *dense[ND_DENSE_MAX];   /* the accepted step's (nd_dense_prepare); free
                                    * scratch while a step is tried */
    long num_steps;
    long num_rejected;
    long num_rhs_evals;
    char message[ND_MESSAGE_SIZE]; /* "" after a successful solve */
    NdElementNamer namer;          /* names state elements in messages, or NULL */
    void *namer_ctx;
    NdStepControl step_control;    /* ND_STEP_SHARED unless nd_solver_set_step_control */
    NdSolver *one;                 /* per sample with B > 1: the solver of one sample,
                                    * which nd_solve drives over each sample in turn */
    size_t out_row;                /* doubles from one row of yout to the next: n, or for
                                    * `one` the batch's B * ny */
    long sample;                   /* `one`: the sample it is solving (a message's
                                    * "sample 3: " prefix names it), else -1 */
    int fsal_ok;                   /* verlet: K[0] holds f at (fsal_t, the current y) */
    nd_real fsal_t;
    uint64_t brownian_seed;        /* euler_maruyama, milstein: the path's key
                                    * (nd_solver_set_brownian; 0 by default) */
    double brownian_t0, brownian_t1; /* the span its tree covers (nd_sde_begin) */
};

/* "y[1] of sample 3" (or "state element 1 of sample 3" without a namer) for
 * element `flat` of a B * ny vector, into buf; returns buf. */
const char *nd_solver_element(const NdSolver *s, long flat, char *buf, size_t len);

/* Keeps a printf-style message in s and returns status. */
int nd_solver_fail(NdSolver *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The checks every adaptive engine makes before a step: ND_ERR_MAX_STEPS
 * (reported) after max_steps attempts short of t_end, ND_ERR_STEP_UNDERFLOW
 * (not reported: the caller tells a non-finite state from a true underflow,
 * then calls nd_fail_step_underflow) when |h| is within 16 ulps of t, where
 * a step cannot move t; else ND_OK. */
int nd_check_progress(NdSolver *s, long attempts, nd_real t_end, nd_real t, nd_real h);
int nd_fail_step_underflow(NdSolver *s, nd_real t, nd_real h, const char *cause);
/* The least starting step at t: twice the underflow bound above. Hairer's
 * starting step can come out below it where a component starts at 0 with a
 * tiny atol (an adjoint's gradient part, whose weight is atol alone); in
 * double that bound is 1e-14 |t| and never met, but in single precision
 * (2e-6 |t|) the solve would stop before its first step, where a step of the
 * bound is accepted and grows. The engines' starting steps start here. */
nd_real nd_least_starting_step(nd_real t);

/* out = y + h * sum_{j<i} a[i][j] k_j: the argument of stage i. */
void nd_rk_stage_arg(NdSolver *s, int i, nd_real h, const nd_real *y, nd_real *out);

/* The stepping loops over the n elements of a state (nd_solver.c), one loop
 * per term count so that the sum stays in registers: out = y + h sum_t c_t k_t
 * (out may be y) and out = h sum_t c_t k_t (h = 1 is exact). */
void nd_combo_axpy(const NdCombo *c, nd_real *const *K, const nd_real *y, nd_real h, nd_real *out,
                   size_t n);
void nd_combo_scale(const NdCombo *c, nd_real *const *K, nd_real h, nd_real *out, size_t n);

/* Dense output in Hairer's form (nd_dense.c): per accepted step with an output
 * time inside it, the coefficient vectors once (dopri5.f's CONT), then per
 * output time a polynomial in theta, a few operations per element. */
int nd_dense_count(const NdTableau *tab);  /* vectors a method keeps; 0 if none */
void nd_dense_setup(NdSolver *s);          /* s->dense_row and s->ndense, at create */
/* From s->y, s->ynew and the stages of the accepted step of h (dop853's extra
 * dense stages already evaluated). */
void nd_dense_prepare(NdSolver *s, nd_real h);
/* Row q < count of out (n doubles each) = y(ts[q]), from the prepared vectors
 * and s->y = y(t), for times ts[q] inside the step from t of h. */
void nd_dense_eval(const NdSolver *s, nd_real t, nd_real h, const nd_real *ts, int count,
                   nd_real *ND_RESTRICT out);

/* The error norm of the state's parts (above) of v with weights
 * atol + rtol |y_i|; NaN when v holds a NaN. Shared with nd_bdf.c. */
nd_real nd_weighted_rms(const NdSolver *s, const nd_real *v, const nd_real *y);

/* Index of the first element of y that is not finite, or -1. */
long nd_first_nonfinite(const nd_real *y, size_t n);
enum { ND_ELEMENT_TEXT = 96 }; /* room for nd_solver_element's text */
const char *nd_nonfinite_word(nd_real v); /* "nan", "inf" or "-inf" */

/* A solver for the system F on n doubles (p = NULL in its solves), with
 * method's tableau and default settings; NULL on out-of-memory. Its messages
 * count elements of z as "state element i of sample 0". */
NdSolver *nd_solver_create_system(NdMethod method, size_t n, NdSystemFn F, void *ctx);

/* The time of stage i in a step from t to t_new = t + h. Both engines use it, so
 * that a gradient sweep sees the very times the step saw: c = 1 is t_new
 * itself (landing exactly), not t + h. */
static inline nd_real nd_stage_time(const NdTableau *tab, int i, nd_real t, nd_real h, nd_real t_new)
{
    return tab->c[i] == 1.0 ? t_new : t + tab->c[i] * h;
}

/* nd_events.c: zeroes the rows of samples an event terminated. */
void nd_events_freeze(const NdSolver *s, nd_real *dydt);
int nd_events_frozen_any(const NdSolver *s);

/* dzdt = f(t, z) through s->sys or the kernel, counted in num_rhs_evals
 * (inline: the engines call it for every stage). A sample an event terminated
 * has a zero derivative, so its state and error estimate stay put. */
static inline void nd_solver_rhs(NdSolver *s, const nd_real *p, nd_real t, const nd_real *z,
                                 nd_real *dzdt)
{
    if (s->sys)
        s->sys(s->sys_ctx, t, z, dzdt);
    else
        s->k.rhs(t, z, p, dzdt, s->B, s->work);
    if (s->ev && nd_events_frozen_any(s))
        nd_events_freeze(s, dzdt);
    s->num_rhs_evals++;
}

/* Fixed-step engine: steps of at most h covering |span| (the last one shortens
 * to land); one step from (t, y) to t_new in place, calling s->on_step. Step k
 * of an interval [t0, t1] ends at t0 + k h (times the direction), the last at t1. */
long nd_fixed_steps(nd_real span, nd_real h);
void nd_rk_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y);
/* ND_ERR_MAX_STEPS, with the message, when an interval of ts needs more than
 * s->max_steps fixed steps of s->h; nd_solve's and nd_gradient's check. */
int nd_fixed_check_steps(NdSolver *s, const nd_real *ts, int nt);

/* One adaptive solve in progress: the controller's whole state, so a copy of it
 * (with the state vector s->y) is a checkpoint the solve can resume from. */
typedef struct NdRun {
    NdSolver *s;
    const nd_real *p, *ts;
    int nt;
    nd_real *yout;
    nd_real t, h;        /* current time; step to try next (signed) */
    nd_real h_wanted;    /* |step| the controller wants after the last accepted step,
                         * before landing on an output time shortens it */
    nd_real dir, t_end;  /* +1 or -1; ts[nt - 1] */
    nd_real hmax;        /* |t_end - ts[0]|, as dopri5.f's default HMAX */
    nd_real facold;      /* the last accepted error, for the PI term */
    int rejected;       /* the last attempt was rejected: do not grow */
    int land;           /* step exactly onto every output time (no interpolation) */
    int j;              /* next row of yout to fill */
    long attempts;      /* steps tried since the last output time */
    long bad;           /* element that went non-finite in the last attempt, or -1 */
    nd_real bad_value;
} NdRun;

/* Starts a run over ts (s->y = y0, yout row 0 = y0, f(t0, y0), first step);
 * land = 1 makes every output time a step end. Then nd_adaptive_attempt tries one
 * step (accepted or rejected) until r->j == nt or a failure status. */
int nd_adaptive_begin(NdRun *r, NdSolver *s, const nd_real *p, const nd_real *y0,
                      const nd_real *ts, int nt, nd_real *yout, int land);
int nd_adaptive_attempt(NdRun *r);
/* Restarts from a copy `saved` of a run taken between steps and its state y:
 * the same steps follow, bit for bit (f(t, y) is recomputed, as FSAL kept it). */
void nd_adaptive_resume(NdRun *r, const NdRun *saved, const nd_real *y);

/* The accepted step's dense output prepared (dop853's extra stages evaluated
 * first), for nd_dense_eval inside the step of h from r->t. */
void nd_adaptive_dense_prepare(NdRun *r, nd_real h);

/* The adaptive solve behind nd_solve; arguments already checked, y0 finite. */
int nd_adaptive_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                      nd_real *yout);

#endif
