/* Runs the directives of a checked program (see run.h). Parameters are
 * initialised once, for every model in declaration order, from the program's
 * seed, so a model's parameters do not depend on which directives run first.
 * Everything that can fail at run time (a solver this version lacks, a missing
 * initial value, a non-finite state, an unwritable output) is reported through
 * diag with the directive's location. */
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff.h"
#include "nd_io.h"
#include "nd_solver.h"
#include "run_internal.h"

/* Evaluates a (constant or parameter-dependent) initial-value expression into
 * out[size]; a scalar fills a tensor-shaped variable. */
void run_eval_init(IrNode *init, double t, const double *p, double *out, int size)
{
    int n = ir_shape_size(init->shape);
    double *tmp = malloc(sizeof(double) * (size_t)(n > size ? n : size));
    ir_eval(1, &init, t, NULL, p, &tmp);
    for (int i = 0; i < size; i++)
        out[i] = tmp[n == 1 ? 0 : i];
    free(tmp);
}

/* Glorot/Xavier uniform: fan-in is a matrix's columns, fan-out its rows (a vector
 * counts as one column). */
static double glorot_limit(IrShape s)
{
    double fan_out = s.rows, fan_in = s.rank == 2 ? s.cols : 1;
    return sqrt(6.0 / (fan_in + fan_out));
}

static void init_param(Runner *r, const IrVar *v, double *p)
{
    int size = ir_shape_size(v->shape);
    double *x = p + v->offset;
    for (int i = 0; i < size; i++) {
        switch (v->init_kind) {
        case IR_INIT_NONE: x[i] = 0; break;
        case IR_INIT_EXPR: break;
        case IR_INIT_NORMAL: x[i] = nd_random_normal(&r->rng, v->dist_a, v->dist_b); break;
        case IR_INIT_UNIFORM: x[i] = nd_random_uniform(&r->rng, v->dist_a, v->dist_b); break;
        case IR_INIT_GLOROT: {
            double lim = glorot_limit(v->shape);
            x[i] = nd_random_uniform(&r->rng, -lim, lim);
            break;
        }
        }
    }
    if (v->init_kind == IR_INIT_EXPR)
        run_eval_init(v->init, 0, p, x, size);
}

static void runner_init(Runner *r, Compilation *c, const RunOptions *opts)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->opts = opts;
    SemaProgram *prog = c->program;
    nd_random_seed(&r->rng, prog->has_seed ? prog->seed : 0);
    r->n_runs = prog->n_models;
    r->runs = calloc((size_t)(r->n_runs ? r->n_runs : 1), sizeof *r->runs);
    for (int i = 0; i < r->n_runs; i++) {
        ModelRun *mr = &r->runs[i];
        mr->model = prog->models[i];
        mr->p = calloc((size_t)(mr->model->np ? mr->model->np : 1), sizeof(double));
        for (int j = 0; j < mr->model->n_params; j++)
            init_param(r, &mr->model->params[j], mr->p);
    }
}

static void runner_free(Runner *r)
{
    for (int i = 0; i < r->n_runs; i++) {
        jit_free(r->runs[i].jit);
        free(r->runs[i].p);
    }
    free(r->runs);
    for (int i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
}

ModelRun *run_model(Runner *r, const IrModel *m)
{
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].model == m)
            return &r->runs[i];
    return NULL;
}

/* Implicit solvers need the model's Jacobian kernel. */
bool run_solver_needs_jacobian(const SemaCall *solver)
{
    static const char *const implicit[] = {"bdf", "rodas4", "kvaerno5"};
    for (size_t i = 0; solver->name && i < sizeof implicit / sizeof implicit[0]; i++)
        if (strcmp(solver->name, implicit[i]) == 0)
            return true;
    return false;
}

/* JIT-compiles a model the first time a directive needs it, and again with the
 * Jacobian kernel the first time an implicit solver needs that. */
int run_ensure_compiled(Runner *r, ModelRun *mr, bool need_jac)
{
    if (mr->jit && (!need_jac || mr->kernels.jac))
        return 0;
    jit_free(mr->jit);
    if (need_jac)
        diff_model_jacobian(r->c->ir, mr->model);
    JitRequest req = {.jac = need_jac};
    mr->jit = jit_compile_request(mr->model, &req, &mr->kernels, &r->c->diag);
    return mr->jit ? 0 : -1;
}

/* ---- solve ---- */

static const SemaArg *find_arg(const SemaCall *call, const char *key)
{
    for (int i = 0; i < call->nargs; i++)
        if (strcmp(call->args[i].key, key) == 0)
            return &call->args[i];
    return NULL;
}

/* Checks the solver spec against what this runtime has and configures a solver
 * for it; reports and returns NULL when it cannot run. Sema has already checked
 * the argument names of each solver family. */
NdSolver *run_make_solver(Runner *r, const SemaCall *call, SrcLoc where, const NdKernels *k,
                          int64_t B)
{
    Diag *diag = &r->c->diag;
    if (!call->name) {
        diag_error(diag, where, "a solver is needed here, e.g. solver = dopri5(rtol = 1e-6)");
        return NULL;
    }
    int m = nd_method_from_name(call->name);
    if (m < 0) {
        diag_error(diag, call->loc,
                   "solver '%s' is not available yet in this version of nodec", call->name);
        diag_note(diag, call->loc, "available: euler, midpoint, heun, rk4 (fixed step h) and "
                                   "bosh3, dopri5, tsit5, dop853 (adaptive)");
        return NULL;
    }
    const SemaArg *ha = find_arg(call, "h");
    if (!nd_method_is_adaptive((NdMethod)m) && !ha) {
        diag_error(diag, call->loc, "%s needs a step size: %s(h = 0.01)", call->name, call->name);
        return NULL;
    }
    NdSolver *s = nd_solver_create(k, (NdMethod)m, B);
    if (!s) {
        diag_error(diag, where, "out of memory for this solver");
        return NULL;
    }
    const SemaArg *rtol = find_arg(call, "rtol"), *atol = find_arg(call, "atol");
    const SemaArg *h0 = find_arg(call, "h0"), *max_steps = find_arg(call, "max_steps");
    const SemaArg *bad = NULL;
    if (ha && nd_solver_set_step(s, ha->value))
        bad = ha;
    else if ((rtol || atol) &&
             nd_solver_set_tolerances(s, rtol ? rtol->value : ND_DEFAULT_RTOL,
                                      atol ? atol->value : ND_DEFAULT_ATOL))
        bad = rtol ? rtol : atol;
    else if (h0 && nd_solver_set_initial_step(s, h0->value))
        bad = h0;
    else if (max_steps && nd_solver_set_max_steps(s, (long)max_steps->value))
        bad = max_steps;
    if (bad) {
        diag_error(diag, bad->loc, "invalid %s for %s: %s", bad->key, call->name,
                   nd_solver_get_message(s));
        nd_solver_free(s);
        return NULL;
    }
    return s;
}

/* The initial state of one sample: init overrides, else the model's defaults. */
static int initial_state(Runner *r, const SemaSolve *s, SrcLoc where, const ModelRun *mr,
                         double *y0)
{
    const IrModel *m = mr->model;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = s->init && s->init[i] ? s->init[i] : v->init;
        if (!init) {
            diag_error(&r->c->diag, where,
                       "state '%s' of model '%s' has no initial value: give one with "
                       "init = { %s = ... }",
                       v->name, m->name, v->name);
            diag_note(&r->c->diag, v->loc, "'%s' is declared here without '= value'", v->name);
            return -1;
        }
        run_eval_init(init, s->t[0], mr->p, y0 + v->offset, ir_shape_size(v->shape));
    }
    return 0;
}

static int write_results(Runner *r, const SemaDirective *d, const IrModel *m, const double *yout)
{
    const SemaSolve *s = &d->solve;
    const char **names = sema_state_columns(r->c->arena, m);
    if (!s->output) {
        nd_print_table(stdout, m->ny, names, s->nt, s->t, yout);
        return 0;
    }
    if (nd_write_csv(s->output, m->ny, names, s->nt, s->t, yout) != 0) {
        diag_error(&r->c->diag, s->output_loc, "cannot write '%s': %s", s->output,
                   strerror(errno));
        return -1;
    }
    return 0;
}

double run_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report_solve(Runner *r, const SemaSolve *s, const char *dest, NdSolver *solver,
                         double ms)
{
    if (!r->opts->quiet)
        fprintf(stderr, "solve %s: %s over [%g, %g], %d output times -> %s\n", s->model->name,
                s->solver.name, s->t[0], s->t[s->nt - 1], s->nt, dest);
    if (r->opts->stats)
        fprintf(stderr,
                "  stats: %ld steps (%ld rejected), %ld right-hand-side evaluations, %.3f ms\n",
                nd_solver_get_num_steps(solver), nd_solver_get_num_rejected(solver),
                nd_solver_get_num_rhs_evals(solver), ms);
}

/* Integrates one sample of s into yout [nt * ny]; reports failures at where. */
static int solve_into(Runner *r, const SemaSolve *s, SrcLoc where, const char *dest,
                      double *yout)
{
    ModelRun *mr = run_model(r, s->model);
    if (run_ensure_compiled(r, mr, run_solver_needs_jacobian(&s->solver)))
        return -1;
    NdSolver *solver = run_make_solver(r, &s->solver, where, &mr->kernels, 1);
    if (!solver)
        return -1;
    int ny = s->model->ny, rc = -1;
    double *y0 = calloc((size_t)(ny ? ny : 1), sizeof(double));
    if (!y0) {
        diag_error(&r->c->diag, where, "out of memory for this solve");
    } else if (initial_state(r, s, where, mr, y0) == 0) {
        double t0 = run_now_ms();
        int status = nd_solve(solver, mr->p, y0, s->t, s->nt, yout);
        if (status != ND_OK)
            diag_error(&r->c->diag, where, "solve %s failed (%s): %s", s->model->name,
                       nd_status_name(status), nd_solver_get_message(solver));
        else
            report_solve(r, s, dest, solver, run_now_ms() - t0);
        rc = status == ND_OK ? 0 : -1;
    }
    nd_solver_free(solver);
    free(y0);
    return rc;
}

static int run_solve(Runner *r, const SemaDirective *d)
{
    const SemaSolve *s = &d->solve;
    int ny = s->model->ny;
    double *yout = calloc((size_t)s->nt * (size_t)(ny ? ny : 1), sizeof(double));
    if (!yout) {
        diag_error(&r->c->diag, d->loc, "out of memory for this solve");
        return -1;
    }
    int rc = solve_into(r, s, d->loc, s->output ? s->output : "stdout", yout);
    if (rc == 0)
        rc = write_results(r, d, s->model, yout);
    free(yout);
    return rc;
}

/* `data NAME = simulate(...)`: the table t, states... that a csv would hold. A
 * csv data set was read when the program was checked. */
static int run_data(Runner *r, const SemaDirective *d)
{
    SemaData *data = d->data;
    if (data->kind != SEMA_DATA_SIMULATE)
        return 0;
    const SemaSolve *s = &data->sim;
    int ny = s->model->ny;
    double *yout = calloc((size_t)s->nt * (size_t)(ny ? ny : 1), sizeof(double));
    double *table = calloc((size_t)s->nt * (size_t)(ny + 1), sizeof(double));
    double **owned = realloc(r->owned, sizeof(double *) * (size_t)(r->n_owned + 1));
    if (owned)
        r->owned = owned;
    if (!yout || !table || !owned) {
        free(yout);
        free(table);
        diag_error(&r->c->diag, d->loc, "out of memory for this simulation");
        return -1;
    }
    r->owned[r->n_owned++] = table;
    int rc = solve_into(r, s, d->loc, data->name, yout);
    for (int j = 0; rc == 0 && j < s->nt; j++) {
        table[(size_t)j * (ny + 1)] = s->t[j];
        memcpy(table + (size_t)j * (ny + 1) + 1, yout + (size_t)j * ny, sizeof(double) * (size_t)ny);
    }
    data->values = table;
    data->nrows = s->nt;
    free(yout);
    return rc;
}

int run_program(Compilation *c, const RunOptions *opts)
{
    Runner r;
    runner_init(&r, c, opts);
    int rc = 0;
    for (int i = 0; i < c->program->n_dirs && rc == 0; i++) {
        const SemaDirective *d = &c->program->dirs[i];
        switch (d->kind) {
        case SEMA_SOLVE:
            rc = run_solve(&r, d);
            break;
        case SEMA_TRAIN:
            rc = train_run(&r, d);
            break;
        case SEMA_DATA:
            rc = run_data(&r, d);
            break;
        }
    }
    runner_free(&r);
    return rc ? 1 : 0;
}
