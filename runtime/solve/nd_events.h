/* Internal to the runtime: events (a model's `when` blocks) in the explicit
 * engines. nd_events.c locates each crossing by root finding on a step's
 * interpolant, and the engines (nd_adaptive.c, nd_solver.c's fixed-step loop)
 * call it at each accepted step. The workspace is allocated with the solver
 * (nd_events_attach, from nd_solver_create); nothing here allocates in a step. */
#ifndef ND_EVENTS_H
#define ND_EVENTS_H

#include "nd_adaptive.h"

typedef struct NdEventRecord {
    int64_t sample;
    int event;
    nd_real t;
} NdEventRecord;

typedef struct NdEvents {
    int ne;                /* k.n_events */
    nd_real *g_prev;        /* [ne * B]: each condition at the current step's start */
    nd_real *g_new;         /* [ne * B]: at the tried step's end */
    nd_real *t_root;        /* [ne * B]: the crossing's time, or NAN for none */
    nd_real *yt;            /* [n]: the interpolated state */
    nd_real *gt;            /* [B]: a condition kernel's output */
    nd_real *bracket;       /* [4 * ne * B]: each crossing's bracket in the step (nd_events.c) */
    nd_real *ysave, *f0, *f1; /* [n] each: fixed step: y and f at its start, f at its end */
    unsigned char *fire;   /* [ne * B]: fires at t_pending */
    unsigned char *frozen; /* [B]: terminated samples */
    int64_t n_frozen;
    int pending;           /* a step is being redone to land on t_pending */
    nd_real t_pending;
    long cap, count;       /* the log: capacity (max_events) and events logged */
    NdEventRecord *log;
    nd_real *log_y;         /* [cap * 2 * ny]: the state before, then after, per event */
} NdEvents;

/* At create (k->n_events > 0): the workspace and a log of ND_DEFAULT_MAX_EVENTS;
 * ND_ERR_MEMORY on failure. nd_events_detach frees it (NULL-safe). */
int nd_events_attach(NdSolver *s);
void nd_events_detach(NdSolver *s);

/* Zeroes the derivative rows of terminated samples (nd_solver_rhs calls it), and
 * their Jacobian blocks (J: B blocks of ny x ny, bdf). */
void nd_events_freeze(const NdSolver *s, nd_real *dydt);
void nd_events_freeze_jac(const NdSolver *s, nd_real *J);

/* A solve starts at (t0, y0): the log is emptied, no sample frozen, and the
 * conditions evaluated. ND_ERR_UNSUPPORTED for an implicit method. */
int nd_events_begin(NdSolver *s, const nd_real *p, nd_real t0, const nd_real *y0);

/* Adaptive engine, an accepted trial step of h from r->t to t_new (s->ynew, the
 * stages in s->K): 1 when an event lies inside the step before its end, so the
 * step must be redone to land on it (the time is then nd_events_target's);
 * 0 to accept it, with the events that fire at t_new marked. */
int nd_events_adaptive_check(NdRun *r, nd_real h, nd_real t_new);
/* The time the next adaptive step must not pass: t_end, or an earlier pending event. */
nd_real nd_events_target(const NdSolver *s, nd_real t_end, nd_real dir);
/* After the step was accepted (r->t = t_new, s->y its state, s->K[0] = f there):
 * applies the marked events, restarts the method's f, and fills the remaining
 * outputs when every sample has terminated. Status (ND_ERR_MAX_EVENTS). */
int nd_events_adaptive_fire(NdRun *r);

/* Fixed-step engine: y in place from t0 to t1 in steps of s->h (the last
 * shortened), with events; the fixed-step loop of nd_solver.c otherwise. */
int nd_events_fixed_interval(NdSolver *s, const nd_real *p, nd_real t0, nd_real t1, nd_real *y);

/* bdf (nd_bdf.c), after an accepted step from t to t_new (y_new its end): the
 * time of the earliest event in (t, t_new] located on the step's interpolant
 * (interp(ctx, tq) fills s->ev->yt with y(tq)), the events there marked; NAN when
 * none. A multistep method cannot redo one step onto it: bdf takes the
 * interpolated state at the event and restarts there (as CVODE's root finding
 * with a reinitialisation does). */
typedef void (*NdInterpFn)(void *ctx, nd_real t);
nd_real nd_events_locate(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new,
                        const nd_real *y_new, NdInterpFn interp, void *ctx);
/* One fixed step from (t, s->ev->ysave) to (t_new, y) just taken (its stage 0,
 * f(t, ysave), still in s->K[0]), as nd_events_fixed_interval locates: NAN for
 * no event, t_new when the marked events fire there, or an earlier t* to which
 * the caller redoes the step from ysave; then nd_events_apply at the time
 * returned. (The gradient's forward pass, nd_gradient.c, steps this way.) */
nd_real nd_events_fixed_locate(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new,
                              const nd_real *y);
/* Applies the marked events to the batch's state y at t. Status (ND_ERR_MAX_EVENTS). */
int nd_events_apply(NdSolver *s, const nd_real *p, nd_real t, nd_real *y);

/* nd_solver.c's check after a fixed step: ND_ERR_NONFINITE, with the message. */
int nd_fixed_check_step(NdSolver *s, const nd_real *y, nd_real t, nd_real t_prev);

#endif
