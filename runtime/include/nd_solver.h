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

/* The methods, in nd_methods.def's order (its comments say what each is). */
typedef enum NdMethod {
#define ND_METHOD(name, ID, order, cls, keys, grad, engine) ND_##ID,
#include "nd_methods.def"
    ND_METHOD_COUNT
} NdMethod;

/* How a method steps, and so which settings it takes: h for FIXED, tolerances
 * for the others. IMPLICIT methods are adaptive too and need k->jac. */
typedef enum NdMethodClass { ND_CLASS_FIXED, ND_CLASS_ADAPTIVE, ND_CLASS_IMPLICIT } NdMethodClass;

/* How an adaptive method chooses the steps of a batch (`step_control` of a
 * .node solver; nd_solver_set_step_control). */
typedef enum NdStepControl { ND_STEP_SHARED, ND_STEP_PER_SAMPLE } NdStepControl;

/* The settings a `solver = name(key = value)` call may give (nd_methods.def),
 * and each one's bit in a set of them. */
typedef enum NdSolverKey {
#define ND_SOLVER_KEY(name, ID, type, def) ND_SKEY_##ID,
#include "nd_methods.def"
    ND_SOLVER_KEY_COUNT
} NdSolverKey;

enum {
#define ND_SOLVER_KEY(name, ID, type, def) ND_SBIT_##ID = 1u << ND_SKEY_##ID,
#include "nd_methods.def"
    /* the two sets methods take (nd_methods.def's keys column) */
    ND_KEYS_STEP = ND_SBIT_H | ND_SBIT_MAX_STEPS,
    ND_KEYS_TOL = ND_SBIT_RTOL | ND_SBIT_ATOL | ND_SBIT_H0 | ND_SBIT_MAX_STEPS |
                  ND_SBIT_STEP_CONTROL
};

enum {
    ND_OK = 0,
    ND_ERR_ARG = -1,         /* invalid argument (bad h, times not monotone, ...) */
    ND_ERR_NONFINITE = -2,   /* a state became NaN or infinite */
    ND_ERR_MEMORY = -3,
    ND_ERR_UNSUPPORTED = -4, /* method not available */
    ND_ERR_STEP_UNDERFLOW = -5, /* adaptive step size fell below roundoff of t */
    ND_ERR_MAX_STEPS = -6,   /* more than max_steps steps between outputs */
    ND_ERR_CONVERGENCE = -7, /* implicit: Newton's iteration failed repeatedly in one step */
    ND_ERR_MAX_EVENTS = -8,  /* more events than the log holds (nd_solver_set_max_events) */
};

/* Adaptive defaults: tolerances tight enough for plotting and fitting (one step
 * in a million, absolute floor 1e-9) and dopri5.f's NMAX. */
#define ND_DEFAULT_RTOL 1e-6
/* The least rtol the solvers use: in single precision an adaptive step's error
 * estimate, itself computed in floats, does not fall below a few ulps (6e-8
 * each), so a tighter rtol would reject every step until h collapses;
 * nd_solver_set_tolerances raises a smaller one to this (docs/precision.md). */
#ifdef ND_REAL_F32
#define ND_MIN_RTOL 1e-6
#else
#define ND_MIN_RTOL 0.0
#endif
#define ND_DEFAULT_ATOL 1e-9
#define ND_DEFAULT_MAX_STEPS 100000L
/* Events one solve may log (all samples together): a bouncing ball's bounces
 * accumulate at a finite time (Zeno), and this bound stops such a solve with a
 * message instead of stepping forever. */
#define ND_DEFAULT_MAX_EVENTS 1000L

typedef struct NdSolver NdSolver;

/* Looks a method up by its .node name ("rk4"); -1 when unknown. */
int nd_method_from_name(const char *name);
const char *nd_method_name(NdMethod m);
int nd_method_order(NdMethod m);
int nd_method_is_adaptive(NdMethod m); /* 1 for bosh3, dopri5, tsit5, dop853 and the implicit */
int nd_method_is_implicit(NdMethod m); /* 1 for bdf, rodas4, kvaerno5: they need k->jac */
NdMethodClass nd_method_class(NdMethod m);
/* The ND_SBIT_ set of the settings m takes; 0 for no method. */
unsigned nd_method_keys(NdMethod m);
/* 1 for the stochastic methods, euler_maruyama and milstein (nd_sde.c). */
int nd_method_is_sde(NdMethod m);
/* 1 when nd_gradient can differentiate a solve by m (not rodas4, kvaerno5). */
int nd_method_has_gradient(NdMethod m);
const char *nd_solver_key_name(NdSolverKey key); /* "h", "rtol", ... */

/* NULL on out-of-memory. B = number of samples in the batch. An implicit
 * method without k->jac gives a solver whose message (nd_solver_get_message)
 * says so at once and whose solves fail with ND_ERR_UNSUPPORTED. */
NdSolver *nd_solver_create(const NdKernels *k, NdMethod method, int64_t B);
/* A solver of k for B samples with tmpl's method and settings (step, tolerances,
 * initial step, max_steps, step control, element namer, Brownian seed); NULL as
 * nd_solver_create. */
NdSolver *nd_solver_create_like(const NdSolver *tmpl, const NdKernels *k, int64_t B);
void nd_solver_free(NdSolver *s);
int nd_solver_set_step(NdSolver *s, nd_real h); /* fixed-step methods: h > 0 */

/* Adaptive methods only (ND_ERR_ARG with a message on a fixed-step method).
 * Each step keeps the weighted RMS norm of the local error estimate e,
 *   sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |y_new_i|)))^2) <= 1,
 * the mean taken over all B * ny elements of the batch: the batch shares one
 * step size (as torchdiffeq does), so a batch is not B separate solves
 * (unless the step control is per sample, below). The shared block counts as
 * if each sample held a copy of it (nd_adaptive.h), so a solve with shared
 * states takes the steps of the per-copy layout. The implicit methods solve a
 * shared block with the bordered Jacobian (nd_kernels.h).
 * rtol >= 0 and atol > 0 (defaults ND_DEFAULT_RTOL, ND_DEFAULT_ATOL); an rtol below
 * ND_MIN_RTOL is raised to it. */
int nd_solver_set_tolerances(NdSolver *s, nd_real rtol, nd_real atol);
/* First step size (its sign follows the direction of ts); 0 = automatic, by
 * Hairer's algorithm (HNW I, II.4, p. 169), the default. */
int nd_solver_set_initial_step(NdSolver *s, nd_real h0);
/* Attempted steps (accepted or rejected) allowed between two consecutive
 * output times before the solve stops with ND_ERR_MAX_STEPS; default
 * ND_DEFAULT_MAX_STEPS. A fixed-step method knows its count in advance, so
 * nd_solve refuses (ND_ERR_MAX_STEPS) before its first step when an interval
 * would need more than max_steps steps of h. */
int nd_solver_set_max_steps(NdSolver *s, long max_steps);
/* Names for the state elements in messages ("y[1]" where the default says
 * "state element 1"): name(ctx, i, buf, len) writes the name of element i of
 * one sample (0 <= i < ny), or of shared element i - ny (ny <= i < ny + ns);
 * for a solver of a system (nd_solver_create_system), of element i of the whole vector, as the full text. The compiler knows the
 * states' names; the runtime does not. NULL restores the default. */
typedef void (*NdElementNamer)(void *ctx, long element, char *buf, size_t len);
int nd_solver_set_element_namer(NdSolver *s, NdElementNamer name, void *ctx);

/* ND_STEP_SHARED (the default): one step size, error norm and set of
 * rejections for the whole batch, each stage one kernel call over all B
 * samples. ND_STEP_PER_SAMPLE: nd_solve solves each sample as its own
 * problem, one after another (torchode's and Diffrax-under-vmap's behaviour):
 * sample b's rows of yout are bit for bit those of a solver of B = 1 given
 * sample b alone, so one hard sample neither slows nor changes the others;
 * the price is B kernel calls of one sample per stage instead of one of B.
 * The solver of one sample is made here (ND_ERR_MEMORY if it cannot be), so
 * nd_solve still allocates nothing. The counters (steps, rejected, rhs
 * evaluations) are then totals over the samples; a failure stops at the
 * first failing sample b (samples before it solved, the rows of b as a
 * solve of b alone leaves them, later samples untouched), its message
 * starting "sample b: ". Adaptive and implicit methods only: a fixed-step
 * method takes the same steps of h for every sample already, so
 * ND_STEP_PER_SAMPLE is refused there (ND_ERR_ARG), as on a system solver;
 * ND_STEP_SHARED is always accepted. Settings given before or after apply
 * to each sample's solve alike. */
int nd_solver_set_step_control(NdSolver *s, NdStepControl control);
NdStepControl nd_solver_get_step_control(const NdSolver *s);

/* Integrates from y0 at ts[0] through ts[1..nt-1] (strictly increasing or strictly
 * decreasing; decreasing integrates backwards). With N = nd_kernels_state_size(k, B)
 * (B * ny, plus the ns shared elements), yout receives nt * N values:
 * yout[j * N + b * ny + i] is element i of sample b at ts[j], yout[j * N + B * ny + i]
 * shared element i; yout[0..] = y0.
 * Fixed-step methods take steps of h, shortening the last step of each interval
 * so they land exactly on every output time. Adaptive methods choose their own
 * steps, land exactly on ts[nt-1] only, and interpolate every other output time
 * with their dense output, so the output times never change the steps taken.
 * On failure the rows before the failing output time hold the solution and
 * the next row the state reached where the solve stopped. */
int nd_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
             nd_real *yout);

/* Events (k->n_events > 0; nd_solver_create allocates their log): after every
 * accepted step each condition is evaluated at the step's end; a sample whose g
 * crossed zero in the event's direction has its event time t* found by
 * bracketing root finding (Illinois) on the step's dense output (fixed-step
 * methods: the cubic Hermite interpolant of y and f at both ends) to
 * |dt| <= 1e-12 max(1, |t*|). The step is then redone from t to land exactly on
 * the earliest t* of the batch, outputs up to t* are written with the state just
 * before the event, the resets of the samples whose event is at t* are applied
 * (declaration order; a terminate freezes the sample: its derivative is zero from
 * then on), and the method restarts at t*. Each event is logged. bdf cannot redo
 * a step: it takes its interpolant's state at t* and restarts there at order 1.
 * rodas4 and kvaerno5 refuse a model with events (ND_ERR_UNSUPPORTED).
 * max_events >= 1 bounds the log (ND_DEFAULT_MAX_EVENTS); one more event stops
 * the solve with ND_ERR_MAX_EVENTS. */
int nd_solver_set_max_events(NdSolver *s, long max_events);
long nd_solver_get_num_events(const NdSolver *s); /* logged by the last solve */
/* Event i (0 <= i < num_events, in time order): the sample, the event's index in
 * k->events, its time, and the batch-sample state just before and after it
 * (ny doubles each, valid until the next solve). ND_ERR_ARG for a bad i. */
int nd_solver_get_event(const NdSolver *s, long i, int64_t *sample, int *event, nd_real *t,
                        const nd_real **y_before, const nd_real **y_after);

/* Stochastic solves (euler_maruyama, milstein; docs/language.md, "Stochastic
 * differential equations"): dy = f dt + g dW with diagonal noise, f the
 * table's rhs, g its diffusion kernel (g = 0 without one: then both are
 * Euler's method), milstein adding 0.5 g g' (dW^2 - h) with g' = dg_i/dy_i
 * from diffusion_dx. Element i of sample b is driven by its own Brownian
 * motion W, a function of (seed, b, i) alone: a Brownian tree over the
 * solve's span [ts[0], ts[nt-1]] (nd_brownian_at), so every solve with the
 * same seed and span sees the same path whatever its step, and a step's dW is
 * W(t + h) - W(t) exactly (a coarse step's dW is the sum of the fine steps'
 * over it). Integrates forward in time only (ND_ERR_ARG otherwise). The
 * seed is 0 until set; ND_ERR_ARG for a method that draws no path. */
int nd_solver_set_brownian(NdSolver *s, uint64_t seed);
/* W(t) - W(t0) of element `element` of sample `sample` on the path of seed
 * over the span [t0, t1] (t0 < t1), as the stochastic solvers see it:
 * W(t1) - W(t0) ~ N(0, t1 - t0), then each midpoint of the dyadic bisection
 * of the span drawn from the Brownian bridge between its ends (Lévy's
 * construction; Gaines and Lyons 1997, "Variable step size control in the
 * numerical solution of stochastic differential equations"), from a
 * counter-based generator keyed by (seed, sample, element, node). A dyadic
 * point of the span is reached exactly; elsewhere the bisection stops after
 * ND_BROWNIAN_DEPTH levels and interpolates linearly (a standard deviation of
 * 2^-25 sqrt(t1 - t0) at most). Computed in double in both precisions. */
#define ND_BROWNIAN_DEPTH 50
double nd_brownian_at(uint64_t seed, int64_t sample, long element, double t0, double t1,
                      double t);

const char *nd_status_name(int status);
const char *nd_solver_get_message(const NdSolver *s); /* "" when the last solve succeeded */
long nd_solver_get_num_steps(const NdSolver *s);      /* accepted steps */
long nd_solver_get_num_rejected(const NdSolver *s);   /* rejected steps (adaptive) */
/* Adaptive: the step size the controller wanted to take next when the last solve
 * ended (a step shortened to land on the end does not count), 0 after a failed
 * solve, for other methods, or per sample (each sample has its own); as h0 it
 * continues a solve where it stopped. */
nd_real nd_solver_get_next_step(const NdSolver *s);
/* Right-hand side calls over the batch; adaptive methods count f(t0, y0), the
 * initial step's trial and dop853's dense output stages too. */
long nd_solver_get_num_rhs_evals(const NdSolver *s);

#endif
