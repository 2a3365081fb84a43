/* Runs the directives of a checked program (see run.h). Parameters are
 * initialised once, for every model in declaration order, from the program's
 * seed, so a model's parameters do not depend on which directives run first;
 * each directive then draws from its own stream of the seed (params_init.h).
 * Everything that can fail at run time (a non-finite state, a step size that
 * collapses, an unwritable output) is reported through diag with the
 * directive's location; what fails for a fixed reason sema has refused. */
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nd_csv_write.h"
#include "nd_output.h"
#include "nd_solver.h"
#include "params_init.h"
#include "plot.h"
#include "run_internal.h"

static void runner_init(Runner *r, Compilation *c, const RunOptions *opts)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->opts = opts;
    SemaProgram *prog = c->program;
    r->n_runs = prog->n_models;
    r->runs = calloc((size_t)(r->n_runs ? r->n_runs : 1), sizeof *r->runs);
    double **params = calloc((size_t)(r->n_runs ? r->n_runs : 1), sizeof *params);
    for (int i = 0; i < r->n_runs; i++) {
        ModelRun *mr = &r->runs[i];
        mr->model = prog->models[i];
        params[i] = calloc((size_t)(mr->model->np ? mr->model->np : 1), sizeof(double));
        mr->p = calloc((size_t)(mr->model->np ? mr->model->np : 1), sizeof(nd_real));
    }
    params_init(prog, params); /* drawn in double whatever the precision: the same draws */
    for (int i = 0; i < r->n_runs; i++) {
        run_to_real(r->runs[i].p, params[i], (size_t)r->runs[i].model->np);
        free(params[i]);
    }
    free(params);
}

nd_real *run_real_copy(const double *src, size_t n)
{
    nd_real *dst = malloc(sizeof(nd_real) * (n ? n : 1));
    if (dst)
        run_to_real(dst, src, n);
    return dst;
}

static void runner_free(Runner *r)
{
    for (int i = 0; i < r->n_runs; i++)
        free(r->runs[i].p);
    free(r->runs);
}

ModelRun *run_model(Runner *r, const IrModel *m)
{
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].model == m)
            return &r->runs[i];
    return NULL;
}

/* "x", "y[1]", "W[0,1]": element i of one sample of model ctx's y. */
/* The name of element i of the variables vars (states or parameters, laid
 * out by offset): "x", "y[1]", "W[0,2]", or what else says. */
void run_name_var_element(const IrVar *vars, int n, long i, const char *what, char *buf,
                          size_t len)
{
    for (int k = 0; k < n; k++) {
        const IrVar *v = &vars[k];
        long size = ir_shape_size(v->shape), e = i - v->offset;
        if (e < 0 || e >= size)
            continue;
        sema_element_name(buf, len, v->name, v->shape, (int)e);
        return;
    }
    snprintf(buf, len, "%s %ld", what, i);
}

/* Past ny, element i - ny of the shared block (nd_solver.h). */
void run_name_element(void *ctx, long i, char *buf, size_t len)
{
    const IrModel *m = ctx;
    bool shared = m->ns > 0 && i >= m->ny;
    for (int k = 0; m->ns > 0 && k < m->n_states; k++) {
        const IrVar *v = &m->states[k];
        long e = (shared ? i - m->ny : i) - v->offset;
        if (v->shared == shared && e >= 0 && e < ir_shape_size(v->shape)) {
            run_name_var_element(v, 1, e + v->offset, "state element", buf, len);
            return;
        }
    }
    run_name_var_element(m->states, m->n_states, i, "state element", buf, len);
}

/* What to try after a solve (or a train's solve) of model m stopped with
 * status: a note at the solver, or at the model when no solver was written. */
void run_note_fault(Runner *r, int status, const SemaSolver *sv, const IrModel *m)
{
    SrcLoc at = sv->loc.file ? sv->loc : m->loc;
    if (status == ND_ERR_NONFINITE)
        diag_note(&r->c->diag, m->loc,
                  "a state of '%s' that becomes inf or nan means the solution blows up there, or "
                  "the right-hand side is undefined (a division by zero, log or sqrt of a "
                  "negative number): check the equations and the parameters, or end the solve "
                  "earlier",
                  m->name);
    else if (status == ND_ERR_STEP_UNDERFLOW && sv->name && nd_method_is_implicit(sv->method))
        diag_note(&r->c->diag, at,
                  "a solution that blows up cannot be integrated past that time: check the "
                  "equations and the parameters, or end the solve earlier");
    else if (status == ND_ERR_STEP_UNDERFLOW)
        diag_note(&r->c->diag, at,
                  "a stiff problem steps better with solver = bdf (or rodas4, kvaerno5); a "
                  "solution that blows up cannot be integrated past that time");
}

/* ---- solve ---- */

/* The first setting of sv that s refuses (in nd_methods.def's order, with rtol
 * and atol set together), or -1 when s takes them all. */
static int configure(NdSolver *s, const SemaSolver *sv)
{
    unsigned given = sv->given;
    if ((given & ND_SBIT_H) && nd_solver_set_step(s, sv->h))
        return ND_SKEY_H;
    if ((given & (ND_SBIT_RTOL | ND_SBIT_ATOL)) && nd_solver_set_tolerances(s, sv->rtol, sv->atol))
        return given & ND_SBIT_RTOL ? ND_SKEY_RTOL : ND_SKEY_ATOL;
    if ((given & ND_SBIT_H0) && nd_solver_set_initial_step(s, sv->h0))
        return ND_SKEY_H0;
    if ((given & ND_SBIT_MAX_STEPS) && nd_solver_set_max_steps(s, sv->max_steps))
        return ND_SKEY_MAX_STEPS;
    if ((given & ND_SBIT_STEP_CONTROL) && nd_solver_set_step_control(s, sv->step_control))
        return ND_SKEY_STEP_CONTROL;
    return -1;
}

/* The runtime raises an rtol below ND_MIN_RTOL (single precision's floor) to
 * it; the user hears of it here, at the setting. */
static void warn_unresolvable_rtol(Runner *r, const SemaSolver *sv)
{
    if ((sv->given & ND_SBIT_RTOL) && sv->rtol < ND_MIN_RTOL)
        diag_warning(&r->c->diag, sv->arg_loc[ND_SKEY_RTOL],
                     "rtol = %g is below what single precision resolves: this solve uses "
                     "rtol = %g (or run it with option precision = f64)", sv->rtol, ND_MIN_RTOL);
}

/* Configures a solver for the spec; reports and returns NULL when it cannot
 * run. Sema has already checked each method's setting names (nd_methods.def's
 * keys), their ranges and a fixed step's h, so configure refuses nothing a
 * checked program gives. */
NdSolver *run_make_solver(Runner *r, const SemaSolver *sv, SrcLoc where, const NdKernels *k,
                          int64_t B)
{
    Diag *diag = &r->c->diag;
    if (!sv->name) { /* sema gives every solve, simulate and train a solver (dopri5 by default) */
        DIAG_INTERNAL(diag, "a directive reached the runner without a solver");
        return NULL;
    }
    NdSolver *s = nd_solver_create(k, sv->method, B);
    if (!s) {
        diag_error(diag, where, "out of memory for this solver");
        return NULL;
    }
    warn_unresolvable_rtol(r, sv);
    int bad = configure(s, sv);
    if (bad >= 0) {
        diag_error(diag, sv->arg_loc[bad], "invalid %s for %s: %s",
                   nd_solver_key_name((NdSolverKey)bad), sv->name, nd_solver_get_message(s));
        nd_solver_free(s);
        return NULL;
    }
    return s;
}


/* Fills the drawn states of B samples, sample by sample (so the first samples of a
 * larger batch are the same draws). */
static void draw_states(Runner *r, const IrModel *m, const SemaDraw *draw, nd_real *y, int64_t B)
{
    for (int64_t b = 0; b < B; b++)
        for (int i = 0; i < m->n_states; i++) {
            SemaDraw d = params_state_draw(m, draw, i);
            nd_real *x = y + b * m->ny + m->states[i].offset;
            for (int k = 0; d.kind != IR_INIT_NONE && k < ir_shape_size(m->states[i].shape); k++)
                x[k] = params_draw(&r->rng, d.kind, d.a, d.b);
        }
}

void run_draw_states(Runner *r, const IrModel *m, nd_real *y, int64_t B)
{
    draw_states(r, m, NULL, y, B);
}

/* Samples a solve integrates together: `samples = N`, one per data row, or 1. */
static int solve_batch(const SemaSolve *s)
{
    return s->samples > 0 ? s->samples : s->rows ? s->rows->nrows : 1;
}

/* init evaluated for each sample b of y0 (stride ny): once when it reads no data,
 * else on each row of the solve's data set. */
static void eval_init_batch(const SemaSolve *s, IrNode *init, const double *p, int B, int ny,
                            nd_real *y0)
{
    int n = ir_shape_size(init->shape);
    bool per_row = s->rows && (init->flags & IR_BATCHED);
    double *tmp = malloc(sizeof(double) * (size_t)n);
    for (int b = 0; b < B; b++) {
        if (b == 0 || per_row) {
            IrEnv env = {.t = s->t[0], .p = p,
                         .d = per_row ? s->rows->values + (size_t)b * s->rows->ncols : NULL};
            ir_eval_env(1, &init, &env, &tmp);
        }
        run_to_real(y0 + (size_t)b * ny, tmp, (size_t)n);
    }
    free(tmp);
}

/* What a simulation draws for each trajectory after its initial states (run_data):
 * the rows of t it keeps and the noise of their values. */
typedef struct SimDraws {
    const SemaData *data;
    int K;       /* rows per trajectory */
    int *kept;   /* [B * K]: indices into t, increasing, kept[b * K] = 0 */
    double *eps; /* [B * K * ny]: N(0, 1) per value (when the data is noisy) */
} SimDraws;

/* Trajectory b's kept times, K of t's nt: t0, then K - 1 of the others by
 * selection sampling (Knuth's Algorithm S: one uniform per later time, so each
 * trajectory takes as many draws whatever it keeps), then its noise, row by row. */
static void sim_draws(Runner *r, const SimDraws *sd, int b, int ny)
{
    int nt = sd->data->sim.nt, K = sd->K, *kept = sd->kept + (size_t)b * K;
    if (!sd->data->keep) {
        for (int j = 0; j < nt; j++)
            kept[j] = j;
    } else {
        int need = K - 1;
        kept[0] = 0;
        for (int j = 1; j < nt; j++)
            if (nd_random_uniform(&r->rng, 0, 1) * (nt - j) < need)
                kept[K - need--] = j;
    }
    for (size_t i = 0; sd->data->noisy && i < (size_t)K * ny; i++)
        sd->eps[(size_t)b * K * ny + i] = nd_random_normal(&r->rng, 0, 1);
}

/* The initial states of B samples of m (the solve's model, or the copy it
 * integrates with shared states: theirs once, at y0 + B*ny): draws, init
 * overrides (which may read a data row), else the model's defaults. The draws
 * go sample by sample, each sample's simulation draws (sim, or NULL) after its
 * states'. */
static int initial_states(Runner *r, const SemaSolve *s, const double *p, const IrModel *m,
                          nd_real *y0, int B, const SimDraws *sim)
{
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = s->init && s->init[i] ? s->init[i] : v->init;
        if (params_state_draw(m, s->draw, i).kind != IR_INIT_NONE)
            continue;
        if (!init) /* sema_solve_starts refuses a solve that leaves a state without one */
            INTERNAL_ERROR("state '%s' of model '%s' reached a solve without an initial value",
                           v->name, m->name);
        if (ir_shape_size(init->shape) != ir_shape_size(v->shape))
            init = ir_mul(r->c->ir, init, ir_fill(r->c->ir, v->shape, 1));
        if (v->shared)
            eval_init_batch(s, init, p, 1, m->ny, y0 + (size_t)B * m->ny + v->offset);
        else
            eval_init_batch(s, init, p, B, m->ny, y0 + v->offset);
    }
    for (int b = 0; b < B; b++) {
        draw_states(r, m, s->draw, y0 + (size_t)b * m->ny, 1);
        if (sim)
            sim_draws(r, sim, b, s->model->ny);
    }
    return 0;
}

/* ---- solve output ---- */

/* The state elements a user sees: all but hidden states (`__eps_z`, named by
 * the compiler). Fills idx with their positions in y; returns how many. */
static int visible_columns(const IrModel *m, int *idx)
{
    int n = 0;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        for (int k = 0; strncmp(v->name, "__", 2) != 0 && k < ir_shape_size(v->shape); k++)
            idx[n++] = v->offset + k;
    }
    return n;
}

/* The terminal table's column width and digits, as nd_print_table's. */
static int table_width(const char *name)
{
    int len = (int)strlen(name);
    return len > 17 ? len : 17;
}

/* A cell after the sample column: a CSV field with every digit (%.17g), or a
 * right-aligned table column. */
static void batch_cell(FILE *f, bool csv, const char *name, const nd_real *v)
{
    if (csv && v) {
        fprintf(f, ",%.*g", ND_REAL_DIGITS, (double)*v);
    } else if (csv) {
        fputc(',', f);
        nd_csv_field(f, name);
    } else if (v)
        fprintf(f, "  %*.*g", table_width(name), ND_REAL_TABLE_DIGITS, (double)*v);
    else
        fprintf(f, "  %*s", table_width(name), name);
}

/* One row per (sample, time), samples in order: `sample, t, states` as CSV, or
 * as an aligned table when csv is false. */
static void write_batch(FILE *f, bool csv, const SemaSolve *s, int B, int nv, const int *idx,
                        const char *const *names, const nd_real *yout)
{
    int ny = s->model->ny, w = csv ? 0 : 6;
    fprintf(f, "%*s", w, "sample");
    batch_cell(f, csv, "t", NULL);
    for (int c = 0; c < nv; c++)
        batch_cell(f, csv, names[idx[c]], NULL);
    fputc('\n', f);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < s->nt; j++) {
            const nd_real *y = yout + ((size_t)j * B + b) * ny;
            nd_real t = (nd_real)s->t[j]; /* the time the solver reached */
            fprintf(f, "%*d", w, b);
            batch_cell(f, csv, "t", &t);
            for (int c = 0; c < nv; c++)
                batch_cell(f, csv, names[idx[c]], &y[idx[c]]);
            fputc('\n', f);
        }
}

/* 0 when what went to stdout reached it (a full device or a closed pipe
 * fails at the flush), else -1 with errno set. */
static int stdout_written(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    if (!errno)
        errno = EIO;
    return -1;
}

int run_write_file(const char *path, void (*write)(FILE *f, const void *ctx), const void *ctx)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    errno = 0;
    write(f, ctx);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err)
        err = errno ? errno : EIO;
    errno = err;
    return err ? -1 : 0;
}

/* write_batch's arguments, for run_write_file. */
typedef struct Batch {
    const SemaSolve *s;
    int B, nv;
    const int *idx;
    const char *const *names;
    const nd_real *yout;
} Batch;

static void write_batch_csv(FILE *f, const void *ctx)
{
    const Batch *b = ctx;
    write_batch(f, true, b->s, b->B, b->nv, b->idx, b->names, b->yout);
}

/* A batched solve's output (with the sample column), to the file or stdout. */
static int write_batch_output(const SemaSolve *s, int B, int nv, const int *idx,
                              const char *const *names, const nd_real *yout)
{
    if (!s->output) {
        write_batch(stdout, false, s, B, nv, idx, names, yout);
        return stdout_written();
    }
    Batch b = {s, B, nv, idx, names, yout};
    return run_write_file(s->output, write_batch_csv, &b);
}

/* The visible columns of a single solve, packed row by row into packed. */
static void pack_columns(int nt, int ny, int nv, const int *idx, const nd_real *yout,
                         nd_real *packed)
{
    for (int j = 0; j < nt; j++)
        for (int c = 0; c < nv; c++)
            packed[(size_t)j * nv + c] = yout[(size_t)j * ny + idx[c]];
}

/* A single solve's output: t and the visible state columns, through nd_io. */
static int write_single(Runner *r, const SemaSolve *s, int nv, const int *idx,
                        const char *const *names, const nd_real *yout)
{
    const char **vnames = arena_alloc(r->c->arena, sizeof(char *) * (size_t)(nv + 1));
    nd_real *packed = malloc(sizeof(nd_real) * (size_t)s->nt * (size_t)(nv ? nv : 1));
    nd_real *t = run_real_copy(s->t, (size_t)s->nt);
    if (!packed || !t) {
        free(packed);
        free(t);
        errno = ENOMEM;
        return -1;
    }
    for (int c = 0; c < nv; c++)
        vnames[c] = names[idx[c]];
    pack_columns(s->nt, s->model->ny, nv, idx, yout, packed);
    int rc = 0;
    if (!s->output) {
        nd_print_table(stdout, nv, vnames, s->nt, t, packed);
        rc = stdout_written();
    } else
        rc = nd_write_csv(s->output, nv, vnames, s->nt, t, packed);
    free(packed);
    free(t);
    return rc;
}

static int write_results(Runner *r, const SemaDirective *d, int B, const nd_real *yout)
{
    const SemaSolve *s = &d->solve;
    const char **names = sema_state_columns(r->c->arena, s->model);
    int *idx = arena_alloc(r->c->arena, sizeof(int) * (size_t)(s->model->ny + 1));
    int nv = visible_columns(s->model, idx);
    int rc = s->samples > 0 || s->rows ? write_batch_output(s, B, nv, idx, names, yout)
                                       : write_single(r, s, nv, idx, names, yout);
    if (rc != 0 && s->output)
        diag_error(&r->c->diag, s->output_loc, "cannot write '%s': %s", s->output, strerror(errno));
    else if (rc != 0)
        diag_error(&r->c->diag, d->loc, "cannot write the results: %s", strerror(errno));
    return rc;
}

/* `brownian = "w.csv"`: W(t) - W(t0) of every sample's path at the output
 * times, laid out and written as the states are (a column per state element,
 * the W that drives it), into yout's storage. */
static int write_brownian(Runner *r, const SemaDirective *d, int B, nd_real *yout)
{
    const SemaSolve *s = &d->solve;
    int ny = s->model->ny;
    double t0 = s->t[0], t1 = s->t[s->nt - 1];
    for (int j = 0; j < s->nt; j++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < ny; i++)
                yout[((size_t)j * B + b) * ny + i] =
                    (nd_real)nd_brownian_at(r->brownian_seed, b, i, t0, t1, s->t[j]);
    SemaDirective w = *d;
    w.solve.output = s->brownian;
    w.solve.output_loc = s->brownian_loc;
    return write_results(r, &w, B, yout);
}

double run_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report_solve(Runner *r, const SemaSolve *s, const char *dest, int B,
                         NdSolver *solver, double ms)
{
    char batch[64] = "";
    int apart = B > 1 && nd_solver_get_step_control(solver) == ND_STEP_PER_SAMPLE;
    if (B > 1)
        snprintf(batch, sizeof batch, ", %d samples%s", B, apart ? " stepped apart" : "");
    if (!r->opts->quiet)
        fprintf(stderr, "solve %s: %s over [%g, %g], %d output times%s -> %s\n", s->model->name,
                s->solver.name, s->t[0], s->t[s->nt - 1], s->nt, batch, dest);
    if (r->opts->stats) /* per sample: totals of the samples' solves, calls of one sample */
        fprintf(stderr,
                "  stats: %ld steps (%ld rejected), %ld right-hand-side evaluations%s, %.3f ms\n",
                nd_solver_get_num_steps(solver), nd_solver_get_num_rejected(solver),
                nd_solver_get_num_rhs_evals(solver), apart ? " of one sample" : "", ms);
    if (r->opts->stats && s->model->n_events > 0)
        fprintf(stderr, "  events: %ld\n", nd_solver_get_num_events(solver));
}

/* The copy's rows (shared block after the samples) in the model's layout:
 * every sample's row holds the shared states' values again. */
static void expand_shared(const SemaSolve *s, int B, const nd_real *once, nd_real *yout)
{
    const IrModel *c = s->integrated, *m = s->model;
    size_t n = (size_t)B * c->ny + c->ns;
    for (int j = 0; j < s->nt; j++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < m->n_states; i++) {
                const IrVar *v = &c->states[i];
                const nd_real *from = once + j * n + (v->shared ? (size_t)B * c->ny
                                                               : (size_t)b * c->ny) + v->offset;
                memcpy(yout + ((size_t)j * B + b) * m->ny + m->states[i].offset, from,
                       sizeof(nd_real) * (size_t)ir_shape_size(v->shape));
            }
}

/* A stochastic solve's Brownian path (nd_solver_set_brownian): `path = N`'s,
 * from option seed and N alone, so solves that name it share it; else the
 * next number of the directive's stream. */
static uint64_t path_key(Runner *r, const SemaSolve *s)
{
    if (s->path < 0)
        return nd_random_u64(&r->rng);
    NdRandom g;
    nd_random_seed_stream(&g, params_seed(r->c->program), (UINT64_C(0x5de) << 32) | (uint64_t)s->path);
    return nd_random_u64(&g);
}

/* Integrates the B samples of s together into yout [nt * B * ny] (nd_solve's
 * layout for s's model, shared states or not), drawing a simulation's sim (or
 * NULL) with the initial states; reports failures at where. */
static int solve_into(Runner *r, const SemaSolve *s, SrcLoc where, const char *dest, int B,
                      nd_real *yout, const SimDraws *sim)
{
    const IrModel *m = s->integrated ? s->integrated : s->model;
    ModelRun *mr = run_model(r, s->model);
    const CompiledSet *cs = compilation_model_kernels(r->c, m);
    if (!cs || !cs->jit) /* the pipeline plans a set for every model a solve integrates */
        INTERNAL_ERROR("model '%s' reached a solve uncompiled", s->model->name);
    NdSolver *solver = run_make_solver(r, &s->solver, where, &cs->kernels, B);
    if (!solver)
        return -1;
    nd_solver_set_element_namer(solver, run_name_element, (void *)m);
    if (s->max_events > 0 && nd_solver_set_max_events(solver, s->max_events)) {
        diag_error(&r->c->diag, where, "out of memory for the events of this solve");
        nd_solver_free(solver);
        return -1;
    }
    int rc = -1;
    size_t n = nd_kernels_state_size(&cs->kernels, B);
    nd_real *y0 = calloc(n ? n : 1, sizeof(nd_real));
    nd_real *once = s->integrated ? calloc((size_t)s->nt * n, sizeof(nd_real)) : NULL;
    nd_real *ts = run_real_copy(s->t, (size_t)s->nt);
    size_t np = (size_t)mr->model->np;
    double *p = malloc(sizeof(double) * (np ? np : 1)); /* the initial values' (ir_eval) */
    if (p)
        run_to_double(p, mr->p, np);
    if (!y0 || !ts || !p || (s->integrated && !once)) {
        diag_error(&r->c->diag, where, "out of memory for this solve");
    } else if (initial_states(r, s, p, m, y0, B, sim) == 0) {
        /* the path's key from the directive's stream, after the initial draws
         * (so they are those of an ODE solve) */
        if (nd_method_is_sde(s->solver.method))
            nd_solver_set_brownian(solver, r->brownian_seed = path_key(r, s));
        double t0 = run_now_ms();
        int status = nd_solve(solver, mr->p, y0, ts, s->nt, once ? once : yout);
        if (once)
            expand_shared(s, B, once, yout);
        if (status != ND_OK) {
            diag_error(&r->c->diag, where, "solve %s failed (%s): %s", s->model->name,
                       nd_status_name(status), nd_solver_get_message(solver));
            run_note_fault(r, status, &s->solver, s->model);
        } else
            report_solve(r, s, dest, B, solver, run_now_ms() - t0);
        rc = status == ND_OK ? 0 : -1;
        if (rc == 0 && s->events)
            rc = run_write_events(r, s, solver, s->samples > 0 || s->rows);
    }
    nd_solver_free(solver);
    free(y0);
    free(once);
    free(ts);
    free(p);
    return rc;
}

/* "16 GiB" for the bytes of n doubles. */
const char *run_gib(double n, char *buf)
{
    snprintf(buf, 32, "%.3g GiB", n * sizeof(nd_real) / (1024.0 * 1024 * 1024));
    return buf;
}

/* 0 when B samples of s fit the limits, else -1 after reporting at where what
 * they would need (counted in doubles, which hold any of these products). */
static int batch_fits(Runner *r, const SemaSolve *s, SrcLoc where, const char *what, int B)
{
    double states = (double)B * s->model->ny, out = states * s->nt;
    char b[32];
    if (states > RUN_MAX_BATCH_ELEMENTS) {
        diag_error(&r->c->diag, where, "%s's batch is too large: %d samples x %d state elements "
                   "= %.0f elements, more than the limit of %llu (the states alone would need %s)",
                   what, B, s->model->ny, states, RUN_MAX_BATCH_ELEMENTS, run_gib(states, b));
        return -1;
    }
    if (out > RUN_MAX_BATCH_ELEMENTS) {
        diag_error(&r->c->diag, where, "%s's output is too large: %d output times x %d samples x "
                   "%d state elements = %.0f elements, more than the limit of %llu (it would need "
                   "%s)", what, s->nt, B, s->model->ny, out, RUN_MAX_BATCH_ELEMENTS, run_gib(out, b));
        return -1;
    }
    return 0;
}

static int run_solve(Runner *r, const SemaDirective *d)
{
    const SemaSolve *s = &d->solve;
    int ny = s->model->ny, B = solve_batch(s);
    if (batch_fits(r, s, d->loc, "this solve", B) != 0)
        return -1;
    size_t n = (size_t)s->nt * (size_t)B * (size_t)(ny ? ny : 1);
    nd_real *yout = calloc(n, sizeof(nd_real));
    if (!yout) {
        char b[32];
        diag_error(&r->c->diag, d->loc, "out of memory for this solve: its output needs %s",
                   run_gib((double)n, b));
        return -1;
    }
    int rc = solve_into(r, s, d->loc, s->output ? s->output : "stdout", B, yout, NULL);
    if (rc == 0)
        rc = write_results(r, d, B, yout);
    if (rc == 0 && s->brownian)
        rc = write_brownian(r, d, B, yout);
    free(yout);
    return rc;
}

/* The simulation's table (sema's, values NaN but the ids): trajectory b's
 * kept rows of yout, their values plus noise times eps. */
static void fill_table(SemaData *data, int B, const SimDraws *sd, const nd_real *yout)
{
    const SemaSolve *s = &data->sim;
    int ny = s->model->ny, first = data->t_col + 1;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < sd->K; j++) {
            size_t row = (size_t)b * sd->K + j;
            int at = sd->kept[row];
            double *v = data->values + row * (size_t)data->ncols;
            const nd_real *y = yout + ((size_t)at * B + b) * ny;
            v[data->t_col] = s->t[at];
            for (int i = 0; i < ny; i++)
                v[first + i] = (double)y[i] + (data->noisy ? data->noise * sd->eps[row * ny + i] : 0);
        }
}

/* The table as a CSV data set would hold it: the column names, then every row
 * with every digit (%.17g). */
static void write_table(FILE *f, const void *ctx)
{
    const SemaData *data = ctx;
    for (int c = 0; c < data->ncols; c++) {
        if (c)
            fputc(',', f);
        nd_csv_field(f, data->colnames[c]);
    }
    fputc('\n', f);
    for (int r = 0; r < data->nrows; r++)
        for (int c = 0; c < data->ncols; c++)
            fprintf(f, "%.17g%c", data->values[(size_t)r * data->ncols + c],
                    c + 1 < data->ncols ? ',' : '\n');
}

/* `data NAME = simulate(...)`: fills the table sema allocated ([id,] t, states:
 * what a csv of the trajectories would hold) and writes it to `output`, unless
 * the runner only runs the trains (write 0). A csv data set was read when the
 * program was checked. */
static int run_data(Runner *r, const SemaDirective *d, bool write)
{
    SemaData *data = d->data;
    if (data->kind != SEMA_DATA_SIMULATE)
        return 0;
    const SemaSolve *s = &data->sim;
    int ny = s->model->ny, B = s->samples > 0 ? s->samples : 1;
    if (batch_fits(r, s, d->loc, "this simulation", B) != 0)
        return -1;
    SimDraws sd = {.data = data, .K = data->keep ? data->keep : s->nt};
    size_t rows = (size_t)B * sd.K;
    nd_real *yout = calloc((size_t)s->nt * B * (size_t)(ny ? ny : 1), sizeof(nd_real));
    sd.kept = malloc(sizeof(int) * rows);
    sd.eps = malloc(sizeof(double) * (data->noisy ? rows * ny : 1));
    int rc = -1;
    if (!yout || !sd.kept || !sd.eps)
        diag_error(&r->c->diag, d->loc, "out of memory for this simulation");
    else
        rc = solve_into(r, s, d->loc, data->name, B, yout, &sd);
    if (rc == 0)
        fill_table(data, B, &sd, yout);
    if (rc == 0 && write && s->output && run_write_file(s->output, write_table, data) != 0) {
        diag_error(&r->c->diag, s->output_loc, "cannot write '%s': %s", s->output, strerror(errno));
        rc = -1;
    }
    free(yout);
    free(sd.kept);
    free(sd.eps);
    return rc;
}

/* The directives in order; with emit set (run_trains), a solve only records
 * the parameters it would use into emit->at_solve. */
typedef struct EmitRecord {
    double *const *final, *const *at_solve;
} EmitRecord;

/* One output file, checked; reported at the value of its key. */
static int check_output(Compilation *c, const char *path, SrcLoc at, int replace)
{
    char err[1024];
    if (!path || nd_output_check(path, replace, err, sizeof err) == 0)
        return 0;
    diag_error(&c->diag, at, "%s", err);
    return -1;
}

/* Every file the directives will write, before the first one runs: a `save`
 * that cannot be written would otherwise be found after the training it was
 * meant to keep. With emit set, solves write nothing (the emitted program
 * writes their output). */
static int check_outputs(Compilation *c, const EmitRecord *emit)
{
    int rc = 0;
    for (int i = 0; i < c->program->n_dirs; i++) {
        const SemaDirective *d = &c->program->dirs[i];
        if (d->kind == SEMA_SOLVE && !emit) {
            rc |= check_output(c, d->solve.output, d->solve.output_loc, 0);
            rc |= check_output(c, d->solve.events, d->solve.events_loc, 0);
        }
        if (d->kind == SEMA_TRAIN) {
            rc |= check_output(c, d->train.history, d->train.history_loc, 0);
            rc |= check_output(c, d->train.save, d->train.save_loc, 1);
        }
        if (d->kind == SEMA_EVALUATE)
            rc |= check_output(c, d->train.output, d->train.output_loc, 0);
        if (d->kind == SEMA_DATA && d->data->kind == SEMA_DATA_SIMULATE && !emit)
            rc |= check_output(c, d->data->sim.output, d->data->sim.output_loc, 0);
        if (d->kind == SEMA_PLOT && !emit && plot_available())
            rc |= check_output(c, d->plot.output, d->plot.output_loc, 0);
    }
    return rc;
}

static int run_directives(Compilation *c, const RunOptions *opts, const EmitRecord *emit)
{
    if (check_outputs(c, emit) != 0)
        return 1;
    Runner r;
    runner_init(&r, c, opts);
    int rc = 0, solves = 0;
    for (int i = 0; i < c->program->n_dirs && rc == 0; i++) {
        const SemaDirective *d = &c->program->dirs[i];
        params_directive_rng(c->program, i, &r.rng);
        switch (d->kind) {
        case SEMA_SOLVE:
            if (d->solve.load && run_load_params(&r, d->solve.model,
                                                 run_model(&r, d->solve.model)->p, d->solve.load,
                                                 d->solve.load_loc) != 0) {
                rc = 1;
                break;
            }
            if (!emit) {
                rc = run_solve(&r, d);
                break;
            }
            run_to_double(emit->at_solve[solves++], run_model(&r, d->solve.model)->p,
                          (size_t)d->solve.model->np);
            break;
        case SEMA_TRAIN:
            rc = train_run(&r, d);
            break;
        case SEMA_EVALUATE: /* emit-c's program does not score; nodec run does */
            if (!emit)
                rc = evaluate_run(&r, d);
            break;
        case SEMA_DATA:
            rc = run_data(&r, d, !emit);
            break;
        case SEMA_PLOT: /* emit-c: its sources are the emitted program's to write */
            rc = emit ? 0 : plot_draw(&c->diag, d, opts->quiet);
            break;
        }
    }
    for (int i = 0; emit && rc == 0 && i < r.n_runs; i++)
        run_to_double(emit->final[i], r.runs[i].p, (size_t)r.runs[i].model->np);
    runner_free(&r);
    return rc == 130 ? 130 : rc ? 1 : 0;
}

int run_program(Compilation *c, const RunOptions *opts)
{
    return run_directives(c, opts, NULL);
}

int run_trains(Compilation *c, const RunOptions *opts, double *const *final,
               double *const *at_solve)
{
    EmitRecord emit = {final, at_solve};
    return run_directives(c, opts, &emit);
}
