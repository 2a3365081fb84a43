/* emit-c's main: the file's solve directives, each executed as `nodec run`
 * executes it (tools/run.c): the same solver settings, initial states, output
 * times, CSV file or stdout table, progress line on stderr and exit status.
 * Each solve's data (times, initial state, the parameters it sees) is computed
 * here, at emit time, and written as constants. */
#include "emit_c_internal.h"

#include <string.h>

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
    "    return 0;\n"
    "}\n\n";

static const char runner[] =
    "#ifndef NODEC_NO_MAIN\n"
    "/* One solve directive, executed as `nodec run` executes it (tools/run.c). */\n"
    "typedef struct NodecSolve {\n"
    "    const char *model, *output;\n"
    "    void (*kernels)(NdKernels *k);\n"
    "    void (*params)(double *p);\n"
    "    const double *p;            /* the parameters it sees, or NULL: params() */\n"
    "    const char *const *names;   /* the visible columns' names */\n"
    "    NodecSolverSpec solver;\n"
    "    int nt, nv;                 /* output times; visible state columns */\n"
    "    const double *ts, *y0;\n"
    "    const int *cols;            /* the visible columns' positions in y */\n"
    "} NodecSolve;\n\n"
    "/* The visible columns (compiler-named states such as __eps_z are hidden). */\n"
    "static int nodec_write(const NodecSolve *v, int ny, double *yout)\n"
    "{\n"
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
    "static int nodec_run_solve(const NodecSolve *v)\n"
    "{\n"
    "    NdKernels k;\n"
    "    v->kernels(&k);\n"
    "    double *p = (double *)calloc((size_t)k.np + 1, sizeof(double));\n"
    "    double *yout = (double *)calloc((size_t)v->nt * (size_t)k.ny, sizeof(double));\n"
    "    NdSolver *s = nd_solver_create(&k, v->solver.method, 1);\n"
    "    int rc = 1;\n"
    "    if (!p || !yout || !s) {\n"
    "        fprintf(stderr, \"error: out of memory for solve %s\\n\", v->model);\n"
    "    } else if (nodec_solver_configure(s, &v->solver)) {\n"
    "        fprintf(stderr, \"error: invalid settings for %s: %s\\n\", v->solver.name,\n"
    "                nd_solver_get_message(s));\n"
    "    } else {\n"
    "        if (v->p)\n"
    "            memcpy(p, v->p, sizeof(double) * (size_t)k.np);\n"
    "        else\n"
    "            v->params(p);\n"
    "        int st = nd_solve(s, p, v->y0, v->ts, v->nt, yout);\n"
    "        if (st != ND_OK)\n"
    "            fprintf(stderr, \"error: solve %s failed (%s): %s\\n\", v->model, nd_status_name(st),\n"
    "                    nd_solver_get_message(s));\n"
    "        else\n"
    "            fprintf(stderr, \"solve %s: %s over [%g, %g], %d output times -> %s\\n\", v->model,\n"
    "                    v->solver.name, v->ts[0], v->ts[v->nt - 1], v->nt, v->output ? v->output : \"stdout\");\n"
    "        rc = st == ND_OK ? nodec_write(v, k.ny, yout) : 1;\n"
    "    }\n"
    "    nd_solver_free(s);\n"
    "    free(yout);\n"
    "    free(p);\n"
    "    return rc;\n"
    "}\n\n";

void emit_solver_support(FILE *f)
{
    fputs(solver_support, f);
}

static const SemaArg *find_arg(const SemaCall *call, const char *key)
{
    for (int i = 0; i < call->nargs; i++)
        if (strcmp(call->args[i].key, key) == 0)
            return &call->args[i];
    return NULL;
}

int emit_check_solver(Compilation *c, const SemaCall *call, SrcLoc where, const IrModel *model)
{
    Diag *diag = &c->diag;
    if (!call->name) {
        diag_error(diag, where, "a solver is needed here, e.g. solver = dopri5(rtol = 1e-6)");
        return -1;
    }
    int m = nd_method_from_name(call->name);
    if (m < 0) {
        diag_error(diag, call->loc, "solver '%s' is not available to emit-c in this version",
                   call->name);
        return -1;
    }
    if (!nd_method_is_adaptive((NdMethod)m) && !find_arg(call, "h")) {
        diag_error(diag, call->loc, "%s needs a step size: %s(h = 0.01)", call->name, call->name);
        return -1;
    }
    if (nd_method_is_implicit((NdMethod)m) && !cc_model_has_jacobian(model)) {
        diag_error(diag, call->loc, "%s needs the Jacobian, which emit-c writes for models of at "
                                    "most 64 state elements ('%s' has %d)", call->name,
                   model->name, model->ny);
        return -1;
    }
    return m;
}

static void put_arg(FILE *f, const SemaCall *call, const char *key, double def)
{
    const SemaArg *a = find_arg(call, key);
    fputs(", ", f);
    cc_print_double(f, a ? a->value : def);
}

void emit_solver_spec(FILE *f, const SemaCall *call)
{
    fputc('{', f);
    emit_put_cstring(f, call->name);
    bool tol = find_arg(call, "rtol") || find_arg(call, "atol");
    fprintf(f, ", (NdMethod)%d, %d, %d, %d, %d", nd_method_from_name(call->name),
            find_arg(call, "h") != NULL, tol, find_arg(call, "h0") != NULL,
            find_arg(call, "max_steps") != NULL);
    put_arg(f, call, "h", 0);
    put_arg(f, call, "rtol", ND_DEFAULT_RTOL);
    put_arg(f, call, "atol", ND_DEFAULT_ATOL);
    put_arg(f, call, "h0", 0);
    put_arg(f, call, "max_steps", 0);
    fputc('}', f);
}

/* ---- the solves' data, computed at emit time ---- */

static bool drawn_init(const SemaSolve *s)
{
    const IrModel *m = s->model;
    bool drawn = s->samples > 0 || s->rows;
    for (int i = 0; i < m->n_states; i++)
        drawn |= (s->draw && s->draw[i].kind != IR_INIT_NONE) ||
                 (m->states[i].init_kind != IR_INIT_EXPR && m->states[i].init_kind != IR_INIT_NONE);
    return drawn;
}

int emit_check_solve(Compilation *c, const SemaDirective *d)
{
    const SemaSolve *s = &d->solve;
    const IrModel *m = s->model;
    if (emit_check_solver(c, &s->solver, d->loc, m) < 0)
        return -1;
    if (drawn_init(s)) {
        diag_error(&c->diag, d->loc, "emit-c does not handle batched or drawn initial states "
                                     "(samples, data rows, ~ distributions) yet");
        return -1;
    }
    for (int i = 0; i < m->n_states; i++)
        if (!(s->init && s->init[i]) && !m->states[i].init) {
            const char *v = m->states[i].name;
            diag_error(&c->diag, d->loc, "state '%s' of model '%s' has no initial value: give "
                                         "one with init = { %s = ... }", v, m->name, v);
            return -1;
        }
    return 0;
}

/* y0 of one sample: the directive's init overrides, else the defaults,
 * evaluated with the parameters this solve sees. */
static void initial_state(const SemaSolve *s, const double *p, double *y0)
{
    const IrModel *m = s->model;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = s->init && s->init[i] ? s->init[i] : v->init;
        params_eval_init(init, s->t[0], p, y0 + v->offset, ir_shape_size(v->shape));
    }
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
    fprintf(e->out, "static const double nodec_p%d[%d] = { /* as before the trains */\n", k, np);
    emit_put_doubles(e->out, p, np);
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

/* Solve k's constants; returns whether it has its own parameters. */
static bool write_solve_data(Emit *e, const SemaDirective *d, int k)
{
    const SemaSolve *s = &d->solve;
    double *y0 = arena_alloc(e->c->arena, sizeof(double) * (size_t)(s->model->ny + 1));
    initial_state(s, e->at_solve[k], y0);
    fprintf(e->out, "static const double nodec_ts%d[%d] = {\n", k, s->nt);
    emit_put_doubles(e->out, s->t, s->nt);
    fprintf(e->out, "};\nstatic const double nodec_y0_%d[%d] = {\n", k, s->model->ny);
    emit_put_doubles(e->out, y0, s->model->ny);
    fputs("};\n", e->out);
    write_columns(e, s->model, k);
    return write_solve_params(e, s, k);
}

static void write_solve_entry(Emit *e, const SemaDirective *d, int k, bool own_params)
{
    const SemaSolve *s = &d->solve;
    const char *name = s->model->name;
    FILE *f = e->out;
    fputs("    {", f);
    emit_put_cstring(f, name);
    fputs(", ", f);
    emit_put_cstring(f, s->output);
    fprintf(f, ", %s_kernels, %s_params, ", name, name);
    if (own_params)
        fprintf(f, "nodec_p%d", k);
    else
        fputs("NULL", f);
    fprintf(f, ", nodec_names%d,\n     ", k);
    emit_solver_spec(f, &s->solver);
    fprintf(f, ", %d, %d, nodec_ts%d, nodec_y0_%d, nodec_cols%d},\n", s->nt,
            visible_count(s->model), k, k, k);
}

int emit_main(Emit *e)
{
    const SemaProgram *prog = e->c->program;
    fputs(runner, e->out);
    int n = 0;
    bool *own = arena_alloc(e->c->arena, sizeof(bool) * (size_t)(prog->n_dirs + 1));
    for (int i = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE) {
            own[n] = write_solve_data(e, &prog->dirs[i], n);
            n++;
        }
    fprintf(e->out, "\nstatic const NodecSolve nodec_solves[%d] = {\n", n ? n : 1);
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE) {
            write_solve_entry(e, &prog->dirs[i], k, own[k]);
            k++;
        }
    if (n == 0)
        fputs("    {NULL, NULL, NULL, NULL, NULL, NULL, {NULL, ND_EULER, 0, 0, 0, 0, 0.0, 0.0, "
              "0.0, 0.0, 0.0}, 0, 0, NULL, NULL, NULL},\n", e->out);
    fprintf(e->out, "};\n\nint main(void)\n{\n    for (int i = 0; i < %d; i++)\n"
                    "        if (nodec_run_solve(&nodec_solves[i]))\n            return 1;\n"
                    "    return 0;\n}\n#endif /* NODEC_NO_MAIN */\n", n);
    return 0;
}
