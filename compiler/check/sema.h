/* Semantic analysis: names, imports, net templates, fn inlining, shapes, and the
 * directives, turning the parsed programs into one IrModel per model (built
 * straight into the hash-consed IR) and a list of checked directives. Every
 * error is reported through diag with its location; nothing downstream runs
 * when any was reported. */
#ifndef NODEC_SEMA_H
#define NODEC_SEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ast.h"
#include "ir.h"
#include "nd_optim.h"
#include "nd_schedule.h"
#include "nd_solver.h"

/* `solver = rk4(h = 0.25)`, checked against nd_methods.def: the method and
 * each of its settings, as given or else the solver's own default (so every
 * consumer reads the values the solver runs with from one place). */
typedef struct SemaSolver {
    const char *name; /* interned .node name; NULL when the directive did not give one */
    NdMethod method;
    SrcLoc loc;       /* of the name */
    unsigned given;   /* ND_SBIT_ set of the settings the call wrote */
    SrcLoc arg_loc[ND_SOLVER_KEY_COUNT]; /* of each given setting's value */
#define ND_SOLVER_KEY(name, ID, type, def) type name;
#include "nd_methods.def"
} SemaSolver;

/* `optimizer = adam(lr = 1e-3)`, checked against nd_optimizers.def: the
 * runtime's configuration with each argument as given or its default. */
typedef struct SemaOptimizer {
    const char *name; /* interned; NULL when the directive did not give one */
    SrcLoc loc;       /* of the name */
    unsigned given;   /* ND_OBIT_ set of the arguments the call wrote */
    SrcLoc arg_loc[ND_OPTIM_KEY_COUNT]; /* of each given argument's value */
    NdOptimConfig cfg;
} SemaOptimizer;

/* `schedule = cosine(warmup = 100)`, checked against nd_schedules.def: the
 * runtime's schedule with the optimizer's lr and the train's steps filled in. */
typedef struct SemaSchedule {
    const char *name; /* interned; NULL without `schedule` (a constant lr) */
    SrcLoc loc;       /* of the name */
    unsigned given;   /* ND_SBIT_ set of the arguments the call wrote */
    SrcLoc arg_loc[ND_SCHEDULE_KEY_COUNT];
    NdSchedule cfg;
} SemaSchedule;

/* `init = { z ~ normal(0, 1) }` in a solve: a state drawn per sample. */
typedef struct SemaDraw {
    IrInitKind kind;  /* IR_INIT_NONE (not drawn), IR_INIT_NORMAL (mean a, sd b), IR_INIT_UNIFORM */
    double a, b;
} SemaDraw;

typedef struct SemaData SemaData;

typedef struct SemaSolve {
    IrModel *model;
    int nt;
    double *t;        /* output times; t[0] is t0; strictly monotone, at least 2 */
    SrcLoc t_loc;
    IrNode **init;    /* per state of model: override from `init = {...}`, or NULL */
    SemaSolver solver;
    const char *output; /* CSV path, or NULL: a table on stdout (simulate: no file) */
    SrcLoc output_loc;
    /* Batches. A batched solve writes a leading `sample` column; a simulate with
     * samples makes a data set of N trajectories (SemaData's keep and noise). */
    SemaDraw *draw;   /* per state of model: drawn initial value, or kind NONE; NULL: none */
    int samples;      /* `samples = N`: N samples; 0 when not given */
    SrcLoc samples_loc;
    const SemaData *rows; /* init reads this data set: one sample per row (init's DATA leaves) */
    const char *load;     /* `load = "file.params"`: the model's parameters from a file, or NULL */
    SrcLoc load_loc;
    /* The copy of model a batched solve integrates with shared states in the
     * kernel ABI's shared block (sema_share_states), or NULL: model itself. The
     * output keeps model's columns (each sample's row repeats the shared ones). */
    IrModel *integrated;
    const char *events;   /* `events = "file.csv"`: one row per event, or NULL */
    SrcLoc events_loc;
    int max_events;       /* `max_events = N`; 0: the runtime's default */
    const char *brownian; /* `brownian = "w.csv"`: W(t) of a stochastic solve at the output
                           * times, in the output's columns, or NULL */
    SrcLoc brownian_loc;
    int path;             /* `path = N`: the Brownian path's number, shared by every solve
                           * that names it; -1: the directive's own (its random stream) */
    SrcLoc path_loc;
} SemaSolve;

/* A field of a data set: `obs.y` gathers the columns y[0], y[1] of each row. */
typedef struct SemaField {
    const char *name;  /* interned: "y", "label", "t" */
    IrShape shape;
    int *cols;         /* shape-size column indices into a row, row-major */
} SemaField;

typedef enum SemaDataKind { SEMA_DATA_CSV, SEMA_DATA_SIMULATE } SemaDataKind;

/* `data NAME = csv("file.csv")`, `npy(key = "file.npy", ...)` (kind CSV: a table read at
 * check time, the same as a CSV's) or `data NAME = simulate(Model, t = ..., solver = ...)`.
 * A csv file is read when the program is checked (its columns give the fields'
 * shapes); a simulation's table is allocated when checked and filled when the
 * directive runs: columns t, then the model's state columns; with `samples = N`
 * an `id` column first (0 .. N-1, known when checked) and K rows per trajectory
 * (`keep = K`, else every time of t). */
struct SemaData {
    const char *name;
    SrcLoc loc;
    SemaDataKind kind;
    int ncols;
    const char **colnames;
    int nrows;          /* csv: rows read; simulate: (samples or 1) x (keep or nt) */
    double *values;     /* nrows * ncols (arena); simulate: NaN but the id column until run */
    int t_col, id_col;  /* column of `t` and of `id`, or -1 */
    int n_fields;
    SemaField *fields;  /* every named column group except t and id */
    /* simulate */
    SemaSolve sim;
    int keep;           /* `keep = K`: K of t's times per trajectory, t0 among them; 0: all */
    bool noisy;         /* `noise = s` given: N(0, s^2) drawn for every state value */
    double noise;       /* s */
};

/* Metrics one evaluate may define (each its own kernel). */
enum { SEMA_MAX_METRICS = 16 };
/* `sample` statements in one train or evaluate block (a fixed table in the check) */
enum { SEMA_MAX_SAMPLES = 16 };

typedef enum SemaBatchKind { SEMA_BATCH_ALL, SEMA_BATCH_WINDOWS, SEMA_BATCH_MINIBATCH } SemaBatchKind;

/* `encoder h[n] { dh/dt = f(h); h = cell(obs.x, h); mask = ...; solver = ... }` in a
 * train or evaluate over a time series (sema_encoder.c; docs/language.md, "Encoders"):
 * an ODE-RNN (Rubanova et al. 2019) read backwards in time over each sample's own
 * observations. h starts at 0 at the sample's last observation, jumps to the cell's
 * value at each observation (where the mask is not 0) and follows dh/dt between them
 * down to the sample's first observation, where its value is what the block's
 * expressions read by the encoder's name: DATA columns [col, col + nh) of every row
 * of the sample, filled by the runner before each loss (tools/train.c). */
typedef struct SemaEncoder {
    const char *name;
    SrcLoc loc, name_loc;
    IrModel *model;  /* h as its one state (offset 0), the train model's parameters
                        (same offsets), rhs[0] = dh/dt; reads no data row */
    IrNode *jump;    /* h after an observation: reads h (the state leaf), p, the row */
    IrNode *mask;    /* scalar of the row (0: no jump there), or NULL: every observation */
    SemaSolver solver; /* between observations: an explicit method; the train's when not given */
    int col, nh;
} SemaEncoder;

/* `train M { ... }`, lowered. IR expressions read the model's states and params,
 * t, and DATA leaves: DATA slot 0 at offset c is column c of the data row that
 * belongs to the sample (the observation's row for time series; the sample's
 * row for sample data). */
typedef struct SemaTrain {
    IrModel *model;     /* the model as declared (a later solve uses its parameters) */
    IrModel *augmented; /* model plus, when `regularize` is given, a scalar state `__cost`
                           with d(__cost)/dt = the running cost, and for a time series whose
                           model or losses read t, a scalar state `__clock` (d/dt = 1,
                           starting at each sample's first observation time) that stands
                           for t, so samples starting at different times form one batch
                           (their solve runs on times relative to their start); else == model */
    int cost_state, clock_state; /* the slots of __cost and __clock in augmented, or -1
                                    (their offsets: augmented->states[slot].offset, which
                                    a shared copy changes: sema_shared.c) */
    SemaData *data;     /* NULL without `data` */
    IrNode **init;      /* per state of model: initial value (may read DATA and params), or
                           NULL: the model's default, or (time series) the observed state */
    int nt;
    double *t;          /* `t`: the span for sample data or no data (NULL for time series) */
    IrNode *loss;       /* scalar per observation and sample, or NULL */
    IrNode *final_loss; /* scalar per sample at the last time, or NULL */
    IrNode *regularize; /* scalar running cost integrand, or NULL */
    SemaBatchKind batch;
    int batch_length, batch_count; /* windows(length, count); minibatch: count = N */
    SemaSolver solver;
    const char *gradient; /* "adjoint" (default), "backprop", "checkpoint" */
    SrcLoc gradient_loc;
    int seminorm;         /* adjoint(seminorm = 1): backward error control on y and a only */
    SemaOptimizer optimizer; /* sgd(lr = ...), momentum, adam, rmsprop */
    long steps, log_every;
    const char *history, *save, *load;
    SrcLoc history_loc, save_loc, load_loc;
    /* evaluate M { ... } (SEMA_EVALUATE) shares this record: the loss keys, no
     * gradient or optimizer; each `metric NAME = expr` is a scalar averaged like
     * the loss (at each observation of a time series, else at the last time) */
    bool evaluate;
    int n_metrics;
    const char **metric_names;
    IrNode **metrics;
    const char *output; /* one CSV row of the loss and the metrics, or NULL */
    long iwae;          /* `iwae = K`: the importance-weighted estimate over K draws, or 0 */
    SrcLoc output_loc;
    /* `validation = D`: scored every log_every steps (laid out like data), or NULL;
     * `patience = N`: stop after N scores without a lower one (0: never) */
    const SemaData *validation;
    long patience;
    SemaSchedule schedule; /* the lr of each step (name NULL: the optimizer's lr throughout) */
    double clip;           /* `clip = C`: the summed gradient's 2-norm limit; 0 without */
    /* `sample z ~ normal(mu, sigma)` (sema_sample.c): samples[i] = mu + sigma * eps is
     * IR whose eps is DATA at columns eps_col (the data set's width, or 0) and on, n_eps
     * of them for all samples; the runner appends them to every data row it passes */
    int n_samples, eps_col, n_eps;
    /* `encoder h[n] { ... }` (at most one), or NULL; its columns come before eps's */
    SemaEncoder *encoder;
    const char *encoder_failed; /* the name of an encoder that failed (reported), or NULL:
                                   its uses stay quiet */
    const char **sample_names;
    SrcLoc *sample_locs;
    IrNode **samples;
} SemaTrain;

/* One layer of a plot (docs/plot.md): a line through, or points at, columns of
 * one source, a data set or a CSV file that an earlier solve or train writes. */
typedef enum SemaPlotMark { SEMA_MARK_LINE, SEMA_MARK_POINTS } SemaPlotMark;

typedef struct SemaPlotLayer {
    SemaPlotMark mark;
    const SemaData *data; /* the source when it is a data set, else NULL */
    const char *file;     /* the source when it is a file: a solve's output or a train's history */
    bool history;         /* file is a train's history (step, loss, ...) */
    const char *source;   /* how labels name the source: "obs", "fit.csv" */
    SrcLoc loc;           /* of the layer's value */
    SrcLoc from_loc;
    const char *group;    /* a column that numbers trajectories ("sample", "id"), or NULL */
    const char *x;        /* column names, as in the source's header */
    SrcLoc x_loc;
    int ny;
    const char **y;
    SrcLoc *y_loc;
    bool val_loss;        /* y left to its default on a history: add val_loss when it is there */
    const char *label;    /* NULL: the column's name (with the source's when several layers) */
} SemaPlotLayer;

typedef enum SemaPlotLegend {
    SEMA_LEGEND_TOP_RIGHT, SEMA_LEGEND_TOP_LEFT, SEMA_LEGEND_BOTTOM_RIGHT,
    SEMA_LEGEND_BOTTOM_LEFT, SEMA_LEGEND_NONE,
} SemaPlotLegend;

/* `plot "fit.png" { ... }`: a picture drawn when the directive is reached. */
typedef struct SemaPlot {
    const char *output;   /* .png or .svg: the format */
    SrcLoc output_loc;
    bool svg;
    int n_layers;
    SemaPlotLayer *layers;
    const char *title, *xlabel, *ylabel; /* NULL: none, the x column's name, the y column's */
    int width, height;    /* pixels (PNG) or points (SVG) */
    bool logy;
    SemaPlotLegend legend;
} SemaPlot;

typedef enum SemaDirKind { SEMA_SOLVE, SEMA_TRAIN, SEMA_DATA, SEMA_EVALUATE, SEMA_PLOT } SemaDirKind;

typedef struct SemaDirective {
    SemaDirKind kind;
    SrcLoc loc;       /* of the keyword through the target name */
    const Ast *ast;   /* the directive as written */
    SemaSolve solve;  /* SEMA_SOLVE */
    SemaTrain train;  /* SEMA_TRAIN and SEMA_EVALUATE */
    SemaData *data;   /* SEMA_DATA */
    SemaPlot plot;    /* SEMA_PLOT */
} SemaDirective;

typedef struct SemaProgram {
    IrModel **models;
    int n_models;
    SemaDirective *dirs;
    int n_dirs;
    bool has_seed;
    uint64_t seed;    /* option seed */
    bool shared_per_copy; /* option shared_states = per_copy (sema_shared.c) */
    bool f32;         /* option precision = f32: every kernel, solver, optimiser and
                         parameter file of the program in single precision (docs/precision.md) */
} SemaProgram;

typedef struct SemaInput {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag *diag;
    /* Programs in the order they are read: the prelude, imported modules (already
     * parsed by the driver), then the user's file. Only the last one's directives
     * run; declarations of all are visible. */
    Ast **programs;
    int n_programs;
    /* The stdlib module that declares name (one not imported), or NULL; for an
     * unknown name's "add `import ...`". May be NULL itself. */
    const char *(*module_of)(void *ctx, const char *name);
    void *module_ctx;
} SemaInput;

/* NULL only when an error was reported (diag->errors > 0). */
SemaProgram *sema_check(const SemaInput *in);

IrModel *sema_find_model(const SemaProgram *p, const char *name);

/* Gives each train and batched solve that integrates shared states
 * (docs/language.md, "Shared states") its copy of the model with them in the
 * kernel ABI's shared block (IrModel.ns, .origin): a train's augmented model,
 * loss and metrics then read the copy's leaves; a solve's `integrated`. Nothing with option shared_states = per_copy. The driver
 * calls it for the JIT; emit-c writes the per-copy layout. */
void sema_share_states(SemaProgram *prog, Arena *arena, IrBuilder *ir);

/* The CSV column names of a model's state elements ("x", "y[0]", "W[0,1]"),
 * ny of them, arena-allocated. */
const char **sema_state_columns(Arena *arena, const IrModel *m);
/* Element k (row-major) of a value of shape s named name, as a CSV column names it:
 * "x", "y[3]", "W[0,1]", "h[2,0,5]". */
void sema_element_name(char *buf, size_t len, const char *name, IrShape s, int k);

#endif
