/* Shared by the directive runner (run.c) and the training loop (train.c): a
 * model's run-time state, and the helpers both need. */
#ifndef NODEC_RUN_INTERNAL_H
#define NODEC_RUN_INTERNAL_H

#include "nd_random.h"
#include "nd_solver.h"
#include "run.h"

/* A model's run-time state: its parameter values (its kernels are the
 * compilation's: compilation_model_kernels). */
typedef struct ModelRun {
    IrModel *model;
    double *p;
} ModelRun;

typedef struct Runner {
    Compilation *c;
    const RunOptions *opts;
    ModelRun *runs;
    int n_runs;
    NdRandom rng;   /* the running directive's stream (params_directive_rng) */
    double **owned; /* tables filled at run time (simulate), freed at the end */
    int n_owned;
} Runner;

ModelRun *run_model(Runner *r, const IrModel *m);
/* A note on what to try after a solve of m stopped with status (run.c). */
void run_note_fault(Runner *r, int status, const SemaSolver *sv, const IrModel *m);
/* NdElementNamer for a model's states (ctx: the IrModel): "y[1]" in messages. */
void run_name_element(void *ctx, long i, char *buf, size_t len);
/* Element i of vars (n of them, laid out by offset) by name, or "WHAT i". */
void run_name_var_element(const IrVar *vars, int n, long i, const char *what, char *buf,
                          size_t len);
/* Configures a solver from a directive's `solver = ...`; reports and returns NULL
 * when it cannot run. `where` locates errors when no solver was given. */
NdSolver *run_make_solver(Runner *r, const SemaSolver *sv, SrcLoc where, const NdKernels *k,
                          int64_t B);
double run_now_ms(void);
/* Draws, for B samples of y (m's layout), the states m draws at every solve:
 * div_est's noise, fixed during one solve and fresh at the next (train.c calls
 * it after its init kernel, once per group and step). */
void run_draw_states(Runner *r, const IrModel *m, double *y, int64_t B);

/* Runs one train directive: 0, or -1 after reporting. */
int train_run(Runner *r, const SemaDirective *d);

#endif
