/* Shared by the directive runner (run.c) and the training loop (train.c): a
 * model's run-time state, and the helpers both need. */
#ifndef NODEC_RUN_INTERNAL_H
#define NODEC_RUN_INTERNAL_H

#include <string.h>

#include "nd_ode_rnn.h"
#include "nd_random.h"
#include "nd_solver.h"
#include "run.h"

/* A model's run-time state: its parameter values (its kernels are the
 * compilation's: compilation_model_kernels). */
typedef struct ModelRun {
    IrModel *model;
    nd_real *p;
} ModelRun;

typedef struct Runner {
    Compilation *c;
    const RunOptions *opts;
    ModelRun *runs;
    int n_runs;
    NdRandom rng;   /* the running directive's stream (params_directive_rng) */
    uint64_t brownian_seed; /* the last stochastic solve's path (nd_solver_set_brownian) */
} Runner;

ModelRun *run_model(Runner *r, const IrModel *m);

/* The compiler holds its numbers (times, data tables, constants, the first
 * parameters) in double; the runtime in nd_real (nd_real.h). These copy across
 * that edge: exact in double precision, rounded to nearest in single. */
static inline void run_to_real(nd_real *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (nd_real)src[i];
}

static inline void run_to_double(double *dst, const nd_real *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (double)src[i];
}

/* A malloc'd nd_real copy of n doubles (NULL when out of memory). */
nd_real *run_real_copy(const double *src, size_t n);
/* A train's `gradient = ...` name as the runtime's path (adjoint when not given). */
static inline NdGradMethod run_grad_method(const char *name)
{
    if (name && strcmp(name, "backprop") == 0)
        return ND_GRAD_BACKPROP;
    if (name && strcmp(name, "checkpoint") == 0)
        return ND_GRAD_CHECKPOINT;
    return ND_GRAD_ADJOINT;
}

/* A note on what to try after a solve of m stopped with status (run.c). */
void run_note_fault(Runner *r, int status, const SemaSolver *sv, const IrModel *m);
/* NdElementNamer for a model's states (ctx: the IrModel): "y[1]" in messages. */
void run_name_element(void *ctx, long i, char *buf, size_t len);
/* The most elements of a solve's or a train's batch of states (B x ny), of a
 * solve's output (nt x B x ny) and of a train's observations (nt x B x
 * columns): 2^31 doubles, 16 GiB. The runtime's workspaces are several times
 * the batch, and a request past this is a mistake (a data set, `samples` or
 * `windows` one way too large) better refused with its size than left to the
 * allocator. */
#define RUN_MAX_BATCH_ELEMENTS (1ull << 31)
/* "16 GiB" for the bytes of n doubles, in buf (32 bytes). */
const char *run_gib(double n, char *buf);
/* Element i of vars (n of them, laid out by offset) by name, or "WHAT i". */
void run_name_var_element(const IrVar *vars, int n, long i, const char *what, char *buf,
                          size_t len);
/* Configures a solver from a directive's `solver = ...`; reports and returns NULL
 * when it cannot run. `where` locates errors when no solver was given. */
NdSolver *run_make_solver(Runner *r, const SemaSolver *sv, SrcLoc where, const NdKernels *k,
                          int64_t B);
double run_now_ms(void);
/* Writes path through write(f, ctx): 0, or -1 with errno set (the open, a write
 * or the close failed). */
int run_write_file(const char *path, void (*write)(FILE *f, const void *ctx), const void *ctx);
/* run_events.c: the solve's `events` file from the solver's log (batch: with a
 * sample column); 0, or -1 after reporting at the file's value. */
int run_write_events(Runner *r, const SemaSolve *s, const NdSolver *solver, bool batch);
/* Draws, for B samples of y (m's layout), the states m draws at every solve:
 * div_est's noise, fixed during one solve and fresh at the next (train.c calls
 * it after its init kernel, once per group and step). */
void run_draw_states(Runner *r, const IrModel *m, nd_real *y, int64_t B);

/* Runs one train directive: 0, or -1 after reporting. */
int train_run(Runner *r, const SemaDirective *d);
/* evaluate M { ... }: the loss and the metrics of the data, printed (train.c). */
int evaluate_run(Runner *r, const SemaDirective *d);
/* The parameters of m from a safetensors file into p; -1 after a report at `at`. */
int run_load_params(Runner *r, const IrModel *m, nd_real *p, const char *path, SrcLoc at);

/* A train's or an evaluate's encoder (train_encoder.c; SemaEncoder, nd_ode_rnn.h):
 * the ODE-RNN of each group of B samples (and of a smaller last group), whose
 * value it writes into the encoder's columns of every row of the group before
 * the loss, and whose gradient it carries back from the loss's data gradient. */
typedef struct TrainEncoder {
    const SemaEncoder *enc; /* NULL: the directive has no encoder (the rest is unused) */
    NdOdeRnn *rnn, *rnn_rest;
    int B, ncols;
    nd_real *h0;            /* B * nh */
    char failed[600];       /* the last failure's message, "" when none */
    long nfe_fwd, nfe_bwd;  /* the last pass's evaluations */
} TrainEncoder;

/* For groups of B samples (rest: the last group's, or B) over at most max_nt times,
 * rows ncols wide; grad: with the backward pass. 0, or -1 after reporting. */
int train_encoder_create(Runner *r, const SemaDirective *d, int B, int rest, int max_nt,
                         int ncols, bool grad, TrainEncoder *te);
void train_encoder_free(TrainEncoder *te);
/* The encoding of a group of B samples at nt times ts (rows in drows as tools/train.c
 * lays them out, observed as nd_train_loss_set_observed), into the encoder's
 * columns of all its rows. ND_OK or a status (te->failed says why). */
int train_encoder_forward(TrainEncoder *te, const nd_real *p, int B, int nt, const nd_real *ts,
                          nd_real *drows, const unsigned char *observed);
/* After train_encoder_forward of a group of te->B: adds to grad_p what the loss's
 * gradient a0 [B*nh] with respect to the encoding owes the parameters. */
int train_encoder_backward(TrainEncoder *te, const nd_real *p, const nd_real *a0,
                           nd_real *grad_p);

#endif
