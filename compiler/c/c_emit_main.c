/* emit-c's main: the file's solve directives, each executed as `nodec run`
 * executes it (tools/run.c): the same solver settings, initial states, output
 * times, CSV file or stdout table, progress line on stderr and exit status.
 * Each solve's data (times, initial state, the parameters it sees) is computed
 * here, at emit time, and written as constants. */
#include "c_emit_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nd_random.h"
#include "nd_solver.h"
#include "params_init.h"

/* The solver spec type and its configuration, outside NODEC_NO_MAIN: the
 * train gradient functions use them too (static inline: no unused warning). */
static const char solver_support[] =
    "/* A solver as a directive's `solver = ...` configures it (nodec's tools/run.c). */\n"
    "typedef struct NodecSolverSpec {\n"
    "    const char *name;\n"
    "    NdMethod method;\n"
    "    int has_h, has_tol, has_h0, has_max_steps;\n"
    "    double h, rtol, atol, h0, max_steps;\n"
    "    NdStepControl step_control;\n"
    "} NodecSolverSpec;\n\n"
    "static inline int nodec_solver_configure(NdSolver *s, const NodecSolverSpec *v)\n"
    "{\n"
    "    if (v->has_h && nd_solver_set_step(s, v->h))\n"
    "        return -1;\n"
    "    if (v->has_tol && nd_solver_set_tolerances(s, v->rtol, v->atol))\n"
    "        return -1;\n"
    "    if (v->has_h0 && nd_solver_set_initial_step(s, v->h0))\n"
    "        return -1;\n"
    "    if (v->has_max_steps && nd_solver_set_max_steps(s, (long)v->max_steps))\n"
    "        return -1;\n"
    "    if (v->step_control != ND_STEP_SHARED && nd_solver_set_step_control(s, v->step_control))\n"
    "        return -1;\n"
    "    return 0;\n"
    "}\n\n";

static const char runner[] =
    "#ifndef NODEC_NO_MAIN\n"
    "/* Drawn values as nodec's params_draw: kind 1 normal(a, b), 2 uniform [a, b),\n"
    " * 3 rademacher; `size` draws into y[offset..] (or discarded). */\n"
    "typedef struct NodecDraw {\n"
    "    int offset, size, kind;\n"
    "    double a, b;\n"
    "} NodecDraw;\n\n"
    "static double nodec_draw(NdRandom *r, const NodecDraw *d)\n"
    "{\n"
    "    switch (d->kind) {\n"
    "    case 1: return nd_random_normal(r, d->a, d->b);\n"
    "    case 2: return nd_random_uniform(r, d->a, d->b);\n"
    "    case 3: return nd_random_u64(r) >> 63 ? 1.0 : -1.0;\n"
    "    default: return 0.0;\n"
    "    }\n"
    "}\n\n"
    "/* One solve directive, executed as `nodec run` executes it (tools/run.c). */\n"
    "typedef struct NodecSolve {\n"
    "    const char *model, *output;\n"
    "    void (*kernels)(NdKernels *k);\n"
    "    void (*params)(nd_real *p);\n"
    "    const nd_real *p;           /* the parameters it sees, or NULL: params() */\n"
    "    const char *const *names;   /* the visible columns' names */\n"
    "    NodecSolverSpec solver;\n"
    "    int nt, nv;                 /* output times; visible state columns */\n"
    "    const nd_real *ts, *y0;     /* y0: y0_rows samples' undrawn states */\n"
    "    const int *cols;            /* the visible columns' positions in y */\n"
    "    int B, batched, y0_rows;    /* samples; whether the output has a sample column */\n"
    "    int n_draws;                /* drawn states, drawn per sample in this order */\n"
    "    const NodecDraw *draws;\n"
    "    const char *events;         /* the events file, or NULL */\n"
    "    int max_events;             /* 0: the runtime's default */\n"
    "} NodecSolve;\n\n"
    "/* The B samples' initial states: y0's row (its own row per data row), then\n"
    " * the draws, sample by sample (tools/run.c's initial_states). */\n"
    "static void nodec_initial(const NodecSolve *v, int ny, NdRandom *rng, nd_real *y0)\n"
    "{\n"
    "    for (int b = 0; b < v->B; b++) {\n"
    "        nd_real *y = y0 + (size_t)b * (size_t)ny;\n"
    "        memcpy(y, v->y0 + (size_t)(v->y0_rows > 1 ? b : 0) * (size_t)ny, sizeof(nd_real) * (size_t)ny);\n"
    "        for (int i = 0; i < v->n_draws; i++)\n"
    "            for (int k = 0; k < v->draws[i].size; k++)\n"
    "                y[v->draws[i].offset + k] = (nd_real)nodec_draw(rng, &v->draws[i]);\n"
    "    }\n"
    "}\n\n"
    "/* A batched output's cell: CSV with every digit (ND_REAL_DIGITS), or a\n"
    " * right-aligned table column (tools/run.c's). */\n"
    "static void nodec_cell(FILE *f, int csv, const char *name, const nd_real *x)\n"
    "{\n"
    "    int len = (int)strlen(name), w = len > 17 ? len : 17;\n"
    "    if (csv && x) {\n"
    "        fprintf(f, \",%.*g\", ND_REAL_DIGITS, (double)*x);\n"
    "    } else if (csv) {\n"
    "        fputc(',', f);\n"
    "        nd_csv_field(f, name);\n"
    "    } else if (x)\n"
    "        fprintf(f, \"  %*.*g\", w, ND_REAL_TABLE_DIGITS, (double)*x);\n"
    "    else\n"
    "        fprintf(f, \"  %*s\", w, name);\n"
    "}\n\n"
    "/* One row per (sample, time) after a `sample` header column. */\n"
    "static void nodec_write_batch(FILE *f, int csv, const NodecSolve *v, int ny, const nd_real *yout)\n"
    "{\n"
    "    int w = csv ? 0 : 6;\n"
    "    fprintf(f, \"%*s\", w, \"sample\");\n"
    "    nodec_cell(f, csv, \"t\", NULL);\n"
    "    for (int c = 0; c < v->nv; c++)\n"
    "        nodec_cell(f, csv, v->names[c], NULL);\n"
    "    fputc('\\n', f);\n"
    "    for (int b = 0; b < v->B; b++)\n"
    "        for (int j = 0; j < v->nt; j++) {\n"
    "            const nd_real *y = yout + ((size_t)j * (size_t)v->B + (size_t)b) * (size_t)ny;\n"
    "            fprintf(f, \"%*d\", w, b);\n"
    "            nodec_cell(f, csv, \"t\", &v->ts[j]);\n"
    "            for (int c = 0; c < v->nv; c++)\n"
    "                nodec_cell(f, csv, v->names[c], &y[v->cols[c]]);\n"
    "            fputc('\\n', f);\n"
    "        }\n"
    "}\n\n"
    "/* Closes f, written to path: 0, or 1 after saying why writing failed (f NULL:\n"
    " * fopen's errno). */\n"
    "static int nodec_close(FILE *f, const char *path)\n"
    "{\n"
    "    int err = f ? (ferror(f) ? (errno ? errno : EIO) : 0) : errno;\n"
    "    if (f && fclose(f) != 0 && !err)\n"
    "        err = errno ? errno : EIO;\n"
    "    if (!err)\n"
    "        return 0;\n"
    "    fprintf(stderr, \"error: cannot write '%s': %s\\n\", path, strerror(err));\n"
    "    return 1;\n"
    "}\n\n"
    "static int nodec_write_batched(const NodecSolve *v, int ny, const nd_real *yout)\n"
    "{\n"
    "    if (!v->output) {\n"
    "        nodec_write_batch(stdout, 0, v, ny, yout);\n"
    "        return 0;\n"
    "    }\n"
    "    FILE *f = fopen(v->output, \"w\");\n"
    "    if (f) {\n"
    "        errno = 0;\n"
    "        nodec_write_batch(f, 1, v, ny, yout);\n"
    "    }\n"
    "    return nodec_close(f, v->output);\n"
    "}\n\n"
    "/* `events = FILE`: a row per logged event, as tools/run_events.c writes it. */\n"
    "static int nodec_write_events(const NodecSolve *v, const NdSolver *s)\n"
    "{\n"
    "    FILE *f = fopen(v->events, \"w\");\n"
    "    if (f) {\n"
    "        errno = 0;\n"
    "        fputs(v->batched ? \"sample,event,t\" : \"event,t\", f);\n"
    "        for (int c = 0; c < v->nv; c++) {\n"
    "            fputc(',', f);\n"
    "            nd_csv_field(f, v->names[c]);\n"
    "        }\n"
    "        fputc('\\n', f);\n"
    "        for (long i = 0; i < nd_solver_get_num_events(s); i++) {\n"
    "            int64_t b;\n"
    "            int e;\n"
    "            nd_real t;\n"
    "            const nd_real *y;\n"
    "            nd_solver_get_event(s, i, &b, &e, &t, NULL, &y);\n"
    "            if (v->batched)\n"
    "                fprintf(f, \"%lld,\", (long long)b);\n"
    "            fprintf(f, \"%d,%.*g\", e, ND_REAL_DIGITS, (double)t);\n"
    "            for (int c = 0; c < v->nv; c++)\n"
    "                fprintf(f, \",%.*g\", ND_REAL_DIGITS, (double)y[v->cols[c]]);\n"
    "            fputc('\\n', f);\n"
    "        }\n"
    "    }\n"
    "    return nodec_close(f, v->events);\n"
    "}\n\n"
    "/* The visible columns (compiler-named states such as __eps_z are hidden). */\n"
    "static int nodec_write(const NodecSolve *v, int ny, nd_real *yout)\n"
    "{\n"
    "    if (v->batched)\n"
    "        return nodec_write_batched(v, ny, yout);\n"
    "    for (int j = 0; j < v->nt; j++) /* packed in place: cols are increasing */\n"
    "        for (int c = 0; c < v->nv; c++)\n"
    "            yout[(size_t)j * (size_t)v->nv + (size_t)c] = yout[(size_t)j * (size_t)ny + (size_t)v->cols[c]];\n"
    "    if (!v->output) {\n"
    "        nd_print_table(stdout, v->nv, v->names, v->nt, v->ts, yout);\n"
    "        return 0;\n"
    "    }\n"
    "    if (nd_write_csv(v->output, v->nv, v->names, v->nt, v->ts, yout) == 0)\n"
    "        return 0;\n"
    "    fprintf(stderr, \"error: cannot write '%s': %s\\n\", v->output, strerror(errno));\n"
    "    return 1;\n"
    "}\n\n"
    "static void nodec_report(const NodecSolve *v)\n"
    "{\n"
    "    char batch[48] = \"\";\n"
    "    if (v->B > 1)\n"
    "        snprintf(batch, sizeof batch, \", %d samples\", v->B);\n"
    "    fprintf(stderr, \"solve %s: %s over [%g, %g], %d output times%s -> %s\\n\", v->model,\n"
    "            v->solver.name, (double)v->ts[0], (double)v->ts[v->nt - 1], v->nt, batch, v->output ? v->output : \"stdout\");\n"
    "}\n\n"
    "/* State elements by name in the runtime's messages (\"y[1] of sample 0\"). */\n"
    "static void nodec_name_element(void *ctx, long i, char *buf, size_t len)\n"
    "{\n"
    "    const NodecSolve *v = (const NodecSolve *)ctx;\n"
    "    for (int c = 0; c < v->nv; c++)\n"
    "        if (v->cols[c] == i) {\n"
    "            snprintf(buf, len, \"%s\", v->names[c]);\n"
    "            return;\n"
    "        }\n"
    "    snprintf(buf, len, \"state element %ld\", i);\n"
    "}\n\n"
    "static int nodec_run_solve(const NodecSolve *v, NdRandom *rng)\n"
    "{\n"
    "    NdKernels k;\n"
    "    v->kernels(&k);\n"
    "    size_t batch = (size_t)v->B * (size_t)k.ny;\n"
    "    nd_real *p = (nd_real *)calloc((size_t)k.np + 1, sizeof(nd_real));\n"
    "    nd_real *y0 = (nd_real *)calloc(batch + 1, sizeof(nd_real));\n"
    "    nd_real *yout = (nd_real *)calloc((size_t)v->nt * batch + 1, sizeof(nd_real));\n"
    "    NdSolver *s = nd_solver_create(&k, v->solver.method, v->B);\n"
    "    int rc = 1;\n"
    "    if (!p || !y0 || !yout || !s) {\n"
    "        fprintf(stderr, \"error: out of memory for solve %s\\n\", v->model);\n"
    "    } else if (nodec_solver_configure(s, &v->solver) ||\n"
    "               (v->max_events > 0 && nd_solver_set_max_events(s, v->max_events))) {\n"
    "        fprintf(stderr, \"error: invalid settings for %s: %s\\n\", v->solver.name,\n"
    "                nd_solver_get_message(s));\n"
    "    } else {\n"
    "        nd_solver_set_element_namer(s, nodec_name_element, (void *)v);\n"
    "        if (v->p)\n"
    "            memcpy(p, v->p, sizeof(nd_real) * (size_t)k.np);\n"
    "        else\n"
    "            v->params(p);\n"
    "        nodec_initial(v, k.ny, rng, y0);\n"
    "        int st = nd_solve(s, p, y0, v->ts, v->nt, yout);\n"
    "        if (st != ND_OK)\n"
    "            fprintf(stderr, \"error: solve %s failed (%s): %s\\n\", v->model, nd_status_name(st),\n"
    "                    nd_solver_get_message(s));\n"
    "        else\n"
    "            nodec_report(v);\n"
    "        rc = st == ND_OK ? nodec_write(v, k.ny, yout) : 1;\n"
    "        if (rc == 0 && v->events)\n"
    "            rc = nodec_write_events(v, s);\n"
    "    }\n"
    "    nd_solver_free(s);\n"
    "    free(yout);\n"
    "    free(y0);\n"
    "    free(p);\n"
    "    return rc;\n"
    "}\n\n";

void emit_solver_support(FILE *f)
{
    fputs(solver_support, f);
}

int emit_check_solver(Compilation *c, const SemaSolver *sv, SrcLoc where, const IrModel *model)
{
    Diag *diag = &c->diag;
    if (!sv->name) {
        diag_error(diag, where, "a solver is needed here, e.g. solver = dopri5(rtol = 1e-6)");
        return -1;
    }
    if (!nd_method_is_adaptive(sv->method) && !(sv->given & ND_SBIT_H)) {
        diag_error(diag, sv->loc, "%s needs a step size: %s(h = 0.01)", sv->name, sv->name);
        return -1;
    }
    if (nd_method_is_implicit(sv->method) && !cc_model_has_jacobian(model)) {
        diag_error(diag, sv->loc, "%s needs the Jacobian, which emit-c writes for models of at "
                                  "most 64 state elements ('%s' has %d)", sv->name,
                   model->name, model->ny);
        return -1;
    }
    return (int)sv->method;
}

static void put_value(FILE *f, double v)
{
    fputs(", ", f);
    cc_print_double(f, v);
}

/* A NodecSolverSpec initialiser: which settings were given, and every value
 * (a default where not given, which nodec_solver_configure then leaves). */
void emit_solver_spec(FILE *f, const SemaSolver *sv)
{
    fputc('{', f);
    emit_put_cstring(f, sv->name);
    unsigned given = sv->given;
    fprintf(f, ", (NdMethod)%d, %d, %d, %d, %d", (int)sv->method, (given & ND_SBIT_H) != 0,
            (given & (ND_SBIT_RTOL | ND_SBIT_ATOL)) != 0, (given & ND_SBIT_H0) != 0,
            (given & ND_SBIT_MAX_STEPS) != 0);
    put_value(f, sv->h);
    put_value(f, sv->rtol);
    put_value(f, sv->atol);
    put_value(f, sv->h0);
    put_value(f, (double)sv->max_steps);
    fprintf(f, ", %s", sv->step_control == ND_STEP_PER_SAMPLE ? "ND_STEP_PER_SAMPLE"
                                                               : "ND_STEP_SHARED");
    fputc('}', f);
}

/* ---- the solves' data, computed at emit time ---- */


static int check_batch(Compilation *c, const SemaDirective *d)
{
    const SemaSolve *s = &d->solve;
    if (s->rows && s->rows->kind != SEMA_DATA_CSV) {
        diag_error(&c->diag, d->loc, "emit-c reads the rows of a csv data set only, not of "
                                     "'%s' (a simulation)", s->rows->name);
        return -1;
    }
    return 0;
}

int emit_check_solve(Compilation *c, const SemaDirective *d)
{
    const SemaSolve *s = &d->solve;
    const IrModel *m = s->model;
    if (emit_check_solver(c, &s->solver, d->loc, m) < 0 || check_batch(c, d))
        return -1;
    for (int i = 0; i < m->n_states; i++)
        if (!(s->init && s->init[i]) && !m->states[i].init &&
            params_state_draw(m, s->draw, i).kind == IR_INIT_NONE) {
            const char *v = m->states[i].name;
            diag_error(&c->diag, d->loc, "state '%s' of model '%s' has no initial value: give "
                                         "one with init = { %s = ... }", v, m->name, v);
            return -1;
        }
    return 0;
}

/* Samples the solve integrates together: `samples = N`, one per data row, or 1. */
static int solve_batch(const SemaSolve *s)
{
    return s->samples > 0 ? s->samples : s->rows ? s->rows->nrows : 1;
}

static bool reads_row(const SemaSolve *s, const IrNode *init)
{
    return s->rows && (init->flags & IR_BATCHED);
}

static IrNode *state_init(const SemaSolve *s, int i)
{
    return s->init && s->init[i] ? s->init[i] : s->model->states[i].init;
}

/* How many rows y0 holds: one per sample when an init reads the data rows. */
static int y0_rows(const SemaSolve *s)
{
    for (int i = 0; i < s->model->n_states; i++)
        if (params_state_draw(s->model, s->draw, i).kind == IR_INIT_NONE && reads_row(s, state_init(s, i)))
            return solve_batch(s);
    return 1;
}

/* y0's rows (stride ny): the undrawn states, the directive's init overrides
 * else the defaults, evaluated with the parameters this solve sees, on each
 * data row when they read one (tools/run.c's eval_init_batch). */
static void initial_states(const SemaSolve *s, const double *p, int rows, double *y0)
{
    const IrModel *m = s->model;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = state_init(s, i);
        if (params_state_draw(m, s->draw, i).kind != IR_INIT_NONE)
            continue;
        int n = ir_shape_size(init->shape), size = ir_shape_size(v->shape);
        double *tmp = malloc(sizeof(double) * (size_t)n);
        for (int b = 0; b < rows; b++) {
            bool per_row = reads_row(s, init);
            if (b == 0 || per_row) {
                IrEnv env = {.t = s->t[0], .p = p,
                             .d = per_row ? s->rows->values + (size_t)b * s->rows->ncols : NULL};
                ir_eval_env(1, &init, &env, &tmp);
            }
            for (int k = 0; k < size; k++) /* a scalar fills a tensor */
                y0[(size_t)b * m->ny + v->offset + k] = tmp[n == 1 ? 0 : k];
        }
        free(tmp);
    }
}

/* The draws as the program's NodecDraw table wants them: 1 normal, 2 uniform, 3 rademacher. */
static int draw_code(IrInitKind kind)
{
    return kind == IR_INIT_NORMAL ? 1 : kind == IR_INIT_UNIFORM ? 2 : 3;
}

static void put_draw(FILE *f, int offset, int size, int kind, double a, double b)
{
    fprintf(f, "    {%d, %d, %d, ", offset, size, kind);
    cc_print_double(f, a);
    fputs(", ", f);
    cc_print_double(f, b);
    fputs("},\n", f);
}

/* Solve k's drawn states, in state order; returns how many. */
static int write_draws(Emit *e, const SemaSolve *s, int k)
{
    const IrModel *m = s->model;
    int n = 0;
    fprintf(e->out, "static const NodecDraw nodec_draws%d[] = {\n", k);
    for (int i = 0; i < m->n_states; i++) {
        SemaDraw d = params_state_draw(m, s->draw, i);
        if (d.kind != IR_INIT_NONE && ++n)
            put_draw(e->out, m->states[i].offset, ir_shape_size(m->states[i].shape),
                     draw_code(d.kind), d.a, d.b);
    }
    if (n == 0)
        put_draw(e->out, 0, 0, 0, 0, 0); /* C has no empty initialiser */
    fputs("};\n", e->out);
    return n;
}

/* Visible state columns: all but the compiler's hidden states ("__..."). */
static int visible_count(const IrModel *m)
{
    int n = 0;
    for (int i = 0; i < m->n_states; i++)
        if (strncmp(m->states[i].name, "__", 2) != 0)
            n += ir_shape_size(m->states[i].shape);
    return n;
}

/* The parameters solve k sees, when they are not M_params's (a solve before
 * a train): nodec_p<k>. Returns whether written. */
static bool write_solve_params(Emit *e, const SemaSolve *s, int k)
{
    const double *p = e->at_solve[k], *final = e->params[emit_model_index(e, s->model)];
    int np = s->model->np;
    if (np == 0 || memcmp(p, final, sizeof(double) * (size_t)np) == 0)
        return false;
    fprintf(e->out, "static const nd_real nodec_p%d[%d] = { /* as before the trains */\n", k, np);
    emit_put_reals(e->out, p, np, e->f32);
    fputs("};\n", e->out);
    return true;
}

static void write_columns(Emit *e, const IrModel *m, int k)
{
    const char **names = sema_state_columns(e->c->arena, m);
    FILE *f = e->out;
    fprintf(f, "static const int nodec_cols%d[%d] = {", k, m->ny);
    for (int i = 0, c = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        for (int j = 0; strncmp(v->name, "__", 2) != 0 && j < ir_shape_size(v->shape); j++)
            fprintf(f, "%s%d", c++ ? ", " : "", v->offset + j);
    }
    fputs(visible_count(m) ? "" : "0", f); /* C has no empty initialiser */
    fprintf(f, "};\nstatic const char *const nodec_names%d[%d] = {", k, m->ny);
    for (int i = 0, c = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        for (int j = 0; strncmp(v->name, "__", 2) != 0 && j < ir_shape_size(v->shape); j++) {
            fputs(c++ ? ", " : "", f);
            emit_put_cstring(f, names[v->offset + j]);
        }
    }
    fputs(visible_count(m) ? "};\n" : "NULL};\n", f);
}

/* What main's entry for a solve refers to, beyond its index. */
typedef struct SolveData {
    bool own_params; /* nodec_p<k> */
    int rows;        /* rows of nodec_y0_<k> */
    int n_draws;     /* entries of nodec_draws<k> */
} SolveData;

/* Solve k's constants: times, undrawn initial states (one row, or one per
 * data row: the values the init reads, evaluated here), draws, columns. */
static SolveData write_solve_data(Emit *e, const SemaDirective *d, int k)
{
    const SemaSolve *s = &d->solve;
    int ny = s->model->ny;
    SolveData sd = {.rows = y0_rows(s)};
    double *y0 = arena_alloc(e->c->arena, sizeof(double) * ((size_t)sd.rows * ny + 1));
    memset(y0, 0, sizeof(double) * ((size_t)sd.rows * ny + 1));
    initial_states(s, e->at_solve[k], sd.rows, y0);
    fprintf(e->out, "static const nd_real nodec_ts%d[%d] = {\n", k, s->nt);
    emit_put_reals(e->out, s->t, s->nt, e->f32);
    fprintf(e->out, "};\nstatic const nd_real nodec_y0_%d[%d] = {\n", k, sd.rows * ny + 1);
    emit_put_reals(e->out, y0, sd.rows * ny + 1, e->f32); /* + 1: never empty (ny = 0) */
    fputs("};\n", e->out);
    sd.n_draws = write_draws(e, s, k);
    write_columns(e, s->model, k);
    sd.own_params = write_solve_params(e, s, k);
    return sd;
}

static void write_solve_entry(Emit *e, const SemaDirective *d, int k, const SolveData *sd)
{
    const SemaSolve *s = &d->solve;
    const char *name = s->model->name;
    FILE *f = e->out;
    fputs("    {", f);
    emit_put_cstring(f, name);
    fputs(", ", f);
    emit_put_cstring(f, s->output);
    fprintf(f, ", %s_kernels, %s_params, ", name, name);
    if (sd->own_params)
        fprintf(f, "nodec_p%d", k);
    else
        fputs("NULL", f);
    fprintf(f, ", nodec_names%d,\n     ", k);
    emit_solver_spec(f, &s->solver);
    fprintf(f, ", %d, %d, nodec_ts%d, nodec_y0_%d, nodec_cols%d,\n     %d, %d, %d, %d, nodec_draws%d, ",
            s->nt, visible_count(s->model), k, k, k, solve_batch(s), s->samples > 0 || s->rows,
            sd->rows, sd->n_draws, k);
    emit_put_cstring(f, s->events);
    fprintf(f, ", %d},\n", s->max_events);
}

int emit_main(Emit *e)
{
    const SemaProgram *prog = e->c->program;
    fputs(runner, e->out);
    int n = 0;
    SolveData *sd = arena_alloc(e->c->arena, sizeof *sd * (size_t)(prog->n_dirs + 1));
    for (int i = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE) {
            sd[n] = write_solve_data(e, &prog->dirs[i], n);
            n++;
        }
    fprintf(e->out, "\nstatic const NodecSolve nodec_solves[%d] = {\n", n ? n : 1);
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE) {
            write_solve_entry(e, &prog->dirs[i], k, &sd[k]);
            k++;
        }
    if (n == 0)
        fputs("    {NULL, NULL, NULL, NULL, NULL, NULL, {NULL, ND_EULER, 0, 0, 0, 0, 0.0, 0.0, "
              "0.0, 0.0, 0.0}, 0, 0, NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0},\n", e->out);
    /* each solve draws from its directive's stream, as in `nodec run` */
    fputs("};\n\nstatic const unsigned long long nodec_solve_streams[] = {", e->out);
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE)
            fprintf(e->out, "%s%lluULL", k++ ? ", " : "",
                    (unsigned long long)params_directive_stream(i));
    fprintf(e->out, "%s};\n\n/* Each solve draws from its directive's own stream of the seed, as\n"
                    " * `nodec run` does (compiler/check/params_init.h). */\nint main(void)\n{\n"
                    "    for (int i = 0; i < %d; i++) {\n"
                    "        NdRandom rng;\n"
                    "        nd_random_seed_stream(&rng, %lluULL, nodec_solve_streams[i]);\n"
                    "        if (nodec_run_solve(&nodec_solves[i], &rng))\n            return 1;\n"
                    "    }\n    return 0;\n}\n#endif /* NODEC_NO_MAIN */\n",
            n ? "" : "0", n, (unsigned long long)params_seed(prog));
    return 0;
}
