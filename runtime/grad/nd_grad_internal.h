/* Internal to the runtime: the gradient object shared by nd_gradient.c (create,
 * the forward pass every path shares, the loss, the dispatch), nd_adjoint.c (the
 * augmented backward solve) and nd_backprop.c (the tape, its reverse sweep and
 * the checkpointed variant). Callers see only nd_gradient.h. */
#ifndef ND_GRAD_INTERNAL_H
#define ND_GRAD_INTERNAL_H

#include "nd_adaptive.h"
#include "nd_bdf.h"
#include "nd_gradient.h"

/* The observations of one explicit step from t to t + h: those strictly
 * inside it (lo <= j < hi) were interpolated by the method's dense output; one
 * at t + h itself, if any, is the step's end. h = 0: no step. */
typedef struct NdStepObs {
    nd_real t, h;
    int lo, hi;
} NdStepObs;

/* Where the forward solve stands between two accepted steps: enough to resume
 * it bit for bit (a checkpoint is one of these plus the state vector, or for
 * bdf, whose controller lives in the solver, plus the engine's snapshot). */
typedef struct NdCursor {
    long step;     /* accepted steps taken so far */
    int j;         /* fixed step: the interval [ts[j], ts[j+1]] being stepped */
    long k, nk;    /* fixed step: steps done in it, of nk */
    int shifted;   /* fixed step with events: the next step starts at t_from (an event
                    * the last one was redone to land on), not on the grid */
    nd_real t_from;
    NdRun run;     /* adaptive: the controller */
    NdStepObs prev; /* the last step's observations (the sweep hands its f(t + h, y_new) on) */
} NdCursor;

struct NdGradient {
    NdKernels k;
    NdGradMethod gm;
    int64_t B;
    int max_nt, np;
    size_t n;            /* B * ny */
    int adaptive;        /* explicit and error-controlled */
    int implicit;        /* bdf: the forward steps are nd_bdf.c's */
    int verlet;          /* velocity Verlet: records of Y_0, Y_1 (nd_backprop_verlet.c) */
    int sde;             /* euler_maruyama, milstein: records of y_n, dW (nd_backprop_sde.c) */
    NdSolver *fwd;       /* the model's solver, with the template's settings */
    NdSolver *aug;       /* adjoint: the solver of [y; a; g] (2n + np doubles) */
    int seminorm;
    NdElementNamer param_namer; /* names dL/dp's elements in messages, or NULL */
    void *param_namer_ctx;
    int land;            /* adaptive: step onto every observation instead of
                          * interpolating (0 unless a test sets it) */

    /* during a compute */
    const nd_real *p;
    const NdLoss *loss;
    nd_real *grad_p;
    int next_obs;        /* the first observation after the current time */
    nd_real dir;          /* +1 or -1: the direction of the observation times */
    NdStepObs prev;      /* the last step's observations, as the hook saw them */
    int recording;       /* the step hook appends to the tape */
    int tape_failed;     /* the tape could not grow */

    /* workspace, one block allocated at create */
    nd_real *obs_y;       /* max_nt rows of n: the forward state at each observation */
    nd_real *obs_gy;      /* max_nt rows of n: dL_j/dy */
    nd_real *ycur;        /* fixed step: the forward state */
    nd_real *ybar;        /* the cotangent of the state in the reverse sweep */
    nd_real *kbar;        /* the cotangent of one stage derivative */
    nd_real *kin;         /* the cotangent handed to a step's k_0 by the step before */
    nd_real *Ybar[ND_RK_MAX_STAGES]; /* the cotangents of the recorded stage arguments */
    nd_real *wobs;        /* max_nt rows of ND_RK_MAX_STAGES: one step's dense weights */
    nd_real *pbar;        /* one vjp's parameter part, np */
    nd_real *z;           /* adjoint: two rows of 2n + np */
    nd_real *Dbar;        /* bdf backprop: the cotangent of the difference array */
    nd_real *ev_buf;      /* events: f before and after, the reset's vjp and dg/dy (ny
                          * each), then dg/dp (np): one event's jump (nd_adjoint.c) */
    long interp_at;      /* bdf adjoint: the tape record the last y(t) came from */
    long ev_next;        /* backprop with events: the latest logged event not yet swept */
    nd_real *work;        /* kernel scratch */
    nd_real *block;
    size_t block_doubles;

    /* The stages a record keeps the arguments of, in stage order: always those
     * whose derivative reaches y_{n+1} (an FSAL method's last one does not),
     * and when an observation is interpolated inside the step those the
     * dense output reads (dop853's last four). An FSAL method whose dense
     * output reads no stage past f(t + h, y_new) (dopri5, tsit5, bosh3) has
     * that stage's cotangent added to the next step's k_0, the same number
     * f(t_{n+1}, y_{n+1}): fsal_handoff, one vjp for both. */
    int nslot, slot[ND_RK_MAX_STAGES], always[ND_RK_MAX_STAGES];
    int fsal_handoff;

    /* the tape: records of ND_REC_HEAD doubles then nslot stage arguments; kept
     * across computes so that after the first a compute allocates nothing */
    nd_real *tape;
    size_t tape_cap, tape_len, rec_size;

    /* checkpoints: cursors and their states, every ck_every-th step */
    NdCursor *ck;
    nd_real *ck_y;        /* rows of ck_row doubles: the state, or bdf's snapshot */
    size_t ck_row;
    size_t ck_cap, ck_count;
    long ck_every;

    long num_steps;      /* accepted forward steps, last compute */
    long rhs_evals, vjp_evals;
    long fwd_evals;      /* rhs evaluations of the forward solve alone, last compute */
    size_t peak_extra;   /* the most tape + checkpoint doubles in use this compute */
    char message[ND_MESSAGE_SIZE];

    nd_real bdf_h0;       /* bdf: the forward solve's initial step (finish_bdf's D[1]) */
    size_t tape_base;    /* where this forward pass's records start on the tape: 0,
                          * but for one sample of a per-sample backprop */
    /* Per-sample step control with B > 1 (the template's): g holds the batch's
     * observations (obs_y, obs_gy) only, fwd and aug are NULL, and `one`, a
     * gradient of B = 1, does each sample's forward and backward passes. */
    struct NdGradient *one;
    size_t *seg_end;     /* backprop: where sample b's records end on one's tape */
    nd_real *h_init;      /* bdf: sample b's bdf_h0 */
};

/* A tape record of an explicit step: t, h, t_new, its observations (NdStepObs
 * lo, hi; the one it lands on or -1), the previous step's (t, h, lo, hi), then
 * the stage arguments Y_i = y + h sum_j a_ij k_j of the slots. A bdf record is
 * t, h, t_new, the observation it lands on (or -1), h_from and the order, then
 * y_new (nd_bdf.h, NdBdfStep). */
enum { ND_REC_T, ND_REC_H, ND_REC_TNEW, ND_REC_LO, ND_REC_HI, ND_REC_LAND, ND_REC_PREV_T,
       ND_REC_PREV_H, ND_REC_PREV_LO, ND_REC_PREV_HI, ND_REC_HEAD };
enum { ND_BDF_REC_HEAD = 6 };

int nd_grad_fail(NdGradient *g, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The forward pass (nd_gradient.c): start at y0, take one accepted step. */
int nd_grad_cursor_begin(NdGradient *g, NdCursor *c, const nd_real *y0);
int nd_grad_cursor_step(NdGradient *g, NdCursor *c);
int nd_grad_cursor_done(const NdGradient *g, const NdCursor *c);
/* A checkpoint's state (ck_row doubles), and resuming from it. */
void nd_grad_cursor_save(NdGradient *g, nd_real *state);
void nd_grad_cursor_resume(NdGradient *g, NdCursor *c, const NdCursor *saved,
                           const nd_real *state);

/* The backward passes: from obs_y / obs_gy (the loss already called), they add
 * into g->grad_p and leave dL/dy0 in grad_y0 (when not NULL). */
int nd_adjoint_backward(NdGradient *g, nd_real *grad_y0);
int nd_backprop_backward(NdGradient *g, nd_real *grad_y0);
int nd_checkpoint_backward(NdGradient *g, nd_real *grad_y0);

/* The step hook that records the tape; the tape and checkpoint growth. */
void nd_backprop_record(void *ctx, NdSolver *s, nd_real t, nd_real h, nd_real t_new,
                        const nd_real *y);
void nd_backprop_record_bdf(void *ctx, NdSolver *s, const NdBdfStep *st, const nd_real *y_new);
int nd_checkpoint_push(NdGradient *g, const NdCursor *c);
/* Recomputes the steps from checkpoint i up to step `end` onto the tape (its
 * records replace what it held). */
int nd_replay_segment(NdGradient *g, size_t i, long end);
int nd_adjoint_setup(NdGradient *g, const NdSolver *tmpl);
/* The jump of the cotangent a (the batch's, of the state at the event's time)
 * backwards across logged event i of g->fwd, its parameter terms added into gp
 * (nd_adjoint.c; docs/gradients.md, "Events"). Status: a grazing event fails. */
int nd_event_jump(NdGradient *g, long i, nd_real *a, nd_real *gp);
void nd_backprop_free(NdGradient *g);
/* acc += kbar^T dk/dy of kernel fn (a vjp-shaped NdKernelFn) at (t, Y), with
 * g->Ybar[0] its scratch, and its parameter part kbar^T dk/dp into dL/dp. */
void nd_backprop_vjp_add(NdGradient *g, NdKernelFn fn, nd_real t, const nd_real *Y, nd_real *acc);
/* Velocity Verlet (nd_backprop_verlet.c): a record's two evaluation arguments
 * from the step's y_n (a_n in s->K[0]), and one record's reverse sweep. */
void nd_backprop_verlet_args(NdGradient *g, NdSolver *s, nd_real *rec, nd_real h,
                             const nd_real *y);
void nd_backprop_verlet_sweep(NdGradient *g, const nd_real *rec);
/* The SDE methods (nd_backprop_sde.c): a record's y_n and increments dW, and
 * one record's reverse sweep. */
void nd_backprop_sde_args(NdGradient *g, NdSolver *s, nd_real *rec, nd_real t_new,
                          const nd_real *y);
void nd_backprop_sde_sweep(NdGradient *g, const nd_real *rec);

#endif
