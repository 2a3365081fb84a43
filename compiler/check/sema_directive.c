/* Directives of the user's file: `solve` is checked here in full (times, initial
 * overrides, solver call, output file), and its pieces are shared with `data =
 * simulate(...)` (sema_data.c) and `train` (sema_train.c); `option seed` is read.
 * Whether a known solver is available is the runner's decision, not the
 * checker's. */
#include "sema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "params_init.h"
#include "sema_internal.h"

static const char *const solve_keys[] = {"t",       "init", "solver",    "output",
                                         "samples", "load", "events", "max_events",
                                         "brownian", "path"};

int sema_find_name(const char *name, int n, const char *const *names)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *sema_join(Sema *S, int n, const char *const *names, const char *last)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + strlen(last) + 2;
    char *out = arena_alloc(S->arena, len), *at = out;
    *out = '\0';
    for (int i = 0; i < n; i++)
        at += sprintf(at, "%s%s", i == 0 ? "" : i == n - 1 ? last : ", ", names[i]);
    return out;
}

static SrcLoc name_loc_of(const Ast *a)
{
    return a->name_loc.line > 0 ? a->name_loc : a->loc;
}

/* Did-you-mean among the models. */
ModelInfo *sema_directive_model(Sema *S, const char *name, SrcLoc at)
{
    ModelInfo *mi = sema_find_model_info(S, name);
    if (mi)
        return mi;
    diag_error(S->diag, at, "unknown model '%s'", name);
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(S->n_models + 1));
    for (int i = 0; i < S->n_models; i++)
        names[i] = S->models[i].ast->name;
    sema_suggest_among(S, name, at, S->n_models, names);
    return NULL;
}

static ModelInfo *find_model(Sema *S, const Ast *dir)
{
    return sema_directive_model(S, dir->name, name_loc_of(dir));
}

/* ---- t ---- */

/* `t = obs.t`: a data set read before this directive, when e names one. */
static const SemaData *times_data(Sema *S, Scope *sc, const Ast *e)
{
    if (e->kind != AST_FIELD || e->a->kind != AST_NAME || scope_lookup(sc, e->a->name))
        return NULL;
    return sema_find_data(S, e->a->name);
}

/* The t column of d as output times (*n of them), or NULL with a message: a csv
 * file's values are read at check time, a simulate's t is its own output times. */
static double *data_times(Sema *S, const SemaData *d, const Ast *e, int *n)
{
    if (d->ncols == 0) /* its directive failed, already reported */
        return NULL;
    if (d->t_col < 0) {
        diag_error(S->diag, e->loc, "data set '%s' has no column 't' to take the output times from",
                   d->name);
        return NULL;
    }
    if (strcmp(e->name, "t") != 0) {
        diag_error(S->diag, e->loc, "output times from a data set are its t column: write t = %s.t",
                   d->name);
        return NULL;
    }
    if (d->id_col >= 0) {
        diag_error(S->diag, e->loc,
                   "data set '%s' has an 'id' column, so its t column holds the times of several "
                   "series: give one solve's times as a list, like t = linspace(0, 1, 11)",
                   d->name);
        return NULL;
    }
    if (d->kind == SEMA_DATA_SIMULATE)
        return *n = d->sim.nt, d->sim.t;
    double *t = arena_alloc(S->arena, sizeof(double) * (size_t)(d->nrows + 1));
    for (int r = 0; r < d->nrows; r++)
        t[r] = d->values[(size_t)r * (size_t)d->ncols + (size_t)d->t_col];
    *n = d->nrows;
    return t;
}

void sema_solve_times(Sema *S, Scope *sc, const Ast *e, SemaSolve *out)
{
    out->t_loc = e->loc;
    const SemaData *d = times_data(S, sc, e);
    double *t = NULL;
    int n = 0;
    if (d) {
        if (!(t = data_times(S, d, e, &n)))
            return;
    } else {
        IrNode *c = sema_const(S, sc, e, "the output times");
        if (!c)
            return;
        n = c->shape.rank == 2 ? 0 : ir_shape_size(c->shape);
        t = c->value;
    }
    if (n < 2) {
        diag_error(S->diag, e->loc,
                   "the output times need a vector of at least 2 values (t0 and t1), like t = [0, 1]");
        return;
    }
    for (int i = 0; i < n; i++)
        if (!isfinite(t[i])) {
            diag_error(S->diag, e->loc, "the output times must be finite, but t[%d] is %g", i, t[i]);
            return;
        }
    double dir = t[1] - t[0];
    for (int i = 1; i < n; i++) {
        double step = t[i] - t[i - 1];
        if (step == 0 || (step > 0) != (dir > 0)) {
            diag_error(S->diag, e->loc,
                       "the output times must be strictly increasing or strictly decreasing, but "
                       "t[%d] = %g follows t[%d] = %g",
                       i, t[i], i - 1, t[i - 1]);
            return;
        }
    }
    out->nt = n;
    out->t = t;
}

/* ---- init ---- */

static int state_slot(const IrModel *m, const char *name)
{
    for (int i = 0; i < m->n_states; i++)
        if (strcmp(m->states[i].name, name) == 0)
            return i;
    return -1;
}

static void unknown_state(Sema *S, const IrModel *m, const Ast *entry)
{
    diag_error(S->diag, name_loc_of(entry), "'%s' is not a state of model '%s'", entry->name, m->name);
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(m->n_states + 1));
    for (int i = 0; i < m->n_states; i++)
        names[i] = m->states[i].name;
    sema_suggest_among(S, entry->name, name_loc_of(entry), m->n_states, names);
}

/* `x ~ normal(m, s)` or `x ~ uniform(a, b)` in a solve: drawn per sample. */
static void init_draw(Sema *S, ModelInfo *mi, const Ast *entry, int slot, SemaDraw *draw)
{
    const Ast *dist = entry->a;
    if (!dist || (dist->kind != AST_CALL && dist->kind != AST_NAME)) {
        diag_error(S->diag, entry->loc, "expected a distribution after '~', like %s ~ normal(0, 1)",
                   entry->name);
        return;
    }
    if (strcmp(dist->name, "glorot") == 0) {
        diag_error(S->diag, dist->loc,
                   "glorot initialises weights; draw a state with normal(mean, sd) or uniform(a, b)");
        return;
    }
    IrVar v = {.shape = mi->model->states[slot].shape};
    sema_dist(S, mi->scope, dist, &v);
    draw[slot] = (SemaDraw){v.init_kind, v.dist_a, v.dist_b};
}

/* Refuses `x ~ ...` where only values belong: in a train (solve and simulate draw). */
static int refuse_draw(Sema *S, const Ast *entry)
{
    diag_error(S->diag, entry->loc,
               "sampling an initial state (`%s ~ ...`) belongs in solve; train starts from "
               "values or data, like `%s = obs.%s`",
               entry->name, entry->name, entry->name);
    return 0;
}

/* draw: where `x ~ dist` goes (a solve), or NULL when sampling is refused. */
static void init_entry(Sema *S, ModelInfo *mi, const Ast *entry, const Ast **seen, IrNode **init,
                       SemaDraw *draw, int in_train)
{
    IrModel *m = mi->model;
    if (entry->op == '~' && !draw) {
        refuse_draw(S, entry);
        return;
    }
    int slot = state_slot(m, entry->name);
    if (slot < 0) {
        unknown_state(S, m, entry);
        return;
    }
    if (seen[slot]) {
        diag_error(S->diag, name_loc_of(entry), "duplicate initial value for '%s'", entry->name);
        diag_note(S->diag, name_loc_of(seen[slot]), "the first one is here");
        return;
    }
    seen[slot] = entry;
    if (entry->op == '~') {
        init_draw(S, mi, entry, slot, draw);
        return;
    }
    /* a solve may read one data set's fields (sema_solve_rows chose it) */
    unsigned allow = in_train || S->train_data ? ALLOW_PARAM | ALLOW_DATA : ALLOW_PARAM;
    Val v = sema_expr_in(S, mi->scope, entry->a, allow, "an initial value");
    if (!sema_initial_value(S, v, entry->a->loc, entry->name))
        return;
    IrShape want = m->states[slot].shape;
    if (!sema_fits_state(S, want, v.node, entry->a->loc, "the initial value of", entry->name,
                         "the value"))
        return;
    init[slot] = sema_fold(S, sema_fill(S, v.node, want));
}

static void init_record(Sema *S, ModelInfo *mi, const Ast *e, IrNode **init, SemaDraw *draw,
                        int in_train)
{
    if (e->kind != AST_RECORD) {
        diag_error(S->diag, e->loc, "init needs a record of initial states, like init = { x = 1 }");
        return;
    }
    if (!mi)
        return;
    const Ast **seen = arena_alloc(S->arena, sizeof(Ast *) * (size_t)(mi->model->n_states + 1));
    for (int i = 0; i < e->list.n; i++)
        init_entry(S, mi, e->list.items[i], seen, init, draw, in_train);
}

void sema_init_record(Sema *S, ModelInfo *mi, const Ast *e, IrNode **init, int in_train)
{
    init_record(S, mi, e, init, NULL, in_train);
}

void sema_init_draws(Sema *S, ModelInfo *mi, const Ast *e, IrNode **init, SemaDraw *draw)
{
    init_record(S, mi, e, init, draw, 0);
}

/* ---- solver ---- */

/* How the note after an unknown solver names each class of nd_methods.def. */
static const char *const class_labels[] = {
    [ND_CLASS_FIXED] = "fixed step, h",
    [ND_CLASS_ADAPTIVE] = "adaptive",
    [ND_CLASS_IMPLICIT] = "implicit",
};

/* Every method's name, in NdMethod's order (for suggestions). */
static const char *const method_names[ND_METHOD_COUNT] = {
#define ND_METHOD(name, ID, order, cls, keys, grad, engine) #name,
#include "nd_methods.def"
};

/* Every setting's name, in nd_methods.def's order (bit k is key k). */
static const char *const solver_keys[ND_SOLVER_KEY_COUNT] = {
#define ND_SOLVER_KEY(name, ID, type, def) #name,
#include "nd_methods.def"
};

int sema_names_in(unsigned set, int n, const char *const *all, const char **out)
{
    int m = 0;
    for (int k = 0; k < n; k++)
        if (set & (1u << k))
            out[m++] = all[k];
    return m;
}

static void set_value(SemaSolver *out, NdSolverKey k, double v)
{
    switch (k) {
#define ND_SOLVER_KEY(name, ID, type, def) case ND_SKEY_##ID: out->name = (type)v; break;
#include "nd_methods.def"
    case ND_SOLVER_KEY_COUNT: break;
    }
}

/* The method's settings at the solver's defaults, none given. */
static void solver_start(SemaSolver *out, const char *name, NdMethod method, SrcLoc at)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    out->method = method;
    out->loc = at;
#define ND_SOLVER_KEY(name, ID, type, def) out->name = def;
#include "nd_methods.def"
}

/* The most steps max_steps may allow: far more than any solve can take, and
 * every integer up to it is exact in a double and fits a long. */
#define SEMA_MAX_STEPS_LIMIT 1e15

/* NULL when v is a value the solver runs with for key, else what it must be:
 * the runtime's setters refuse the same values (and rtol >= 1 would accept
 * any error), so a checked program never fails to configure its solver. */
static const char *solver_range(int key, double v)
{
    switch ((NdSolverKey)key) {
    case ND_SKEY_H: return v > 0 && isfinite(v) ? NULL : "a positive finite number";
    case ND_SKEY_RTOL: return v > 0 && v < 1 ? NULL : "a number in (0, 1)";
    case ND_SKEY_ATOL: return v > 0 && isfinite(v) ? NULL : "a positive finite number";
    case ND_SKEY_H0:
        return v >= 0 && isfinite(v) ? NULL : "a finite number >= 0 (0 chooses the first step)";
    case ND_SKEY_MAX_STEPS:
        return v >= 1 && v <= SEMA_MAX_STEPS_LIMIT && v == floor(v)
                   ? NULL : "an integer from 1 to 1e15";
    case ND_SKEY_STEP_CONTROL: /* a name, read by solver_step_control */
    case ND_SOLVER_KEY_COUNT: break;
    }
    return NULL;
}

/* step_control's values, in NdStepControl's order. */
static const char *const step_controls[] = {"shared", "per_sample"};

/* `step_control = per_sample`: a bare name, not a number. Fixed-step methods
 * do not take it (every sample steps the same h already), and say why. */
static void solver_step_control(Sema *S, const Ast *arg, SemaSolver *out)
{
    if (nd_method_class(out->method) == ND_CLASS_FIXED) {
        diag_error(S->diag, arg->loc, "%s takes the same steps of h for every sample: "
                   "step_control does not apply to a fixed-step method", out->name);
        diag_note(S->diag, arg->loc, "per-sample step control is for the adaptive and implicit "
                  "solvers, like dopri5(step_control = per_sample)");
        return;
    }
    if (out->given & ND_SBIT_STEP_CONTROL) {
        diag_error(S->diag, arg->loc, "duplicate argument '%s'", arg->name);
        return;
    }
    const Ast *v = arg->a;
    int c = v->kind == AST_NAME ? sema_find_name(v->name, 2, step_controls) : -1;
    if (c < 0) {
        if (v->kind == AST_NAME) {
            diag_error(S->diag, v->loc, "unknown step control '%s' (expected shared or "
                       "per_sample)", v->name);
            sema_suggest_among(S, v->name, v->loc, 2, step_controls);
        } else {
            diag_error(S->diag, v->loc, "step_control must be a name: shared or per_sample");
        }
        return;
    }
    out->step_control = (NdStepControl)c;
    out->given |= ND_SBIT_STEP_CONTROL;
    out->arg_loc[ND_SKEY_STEP_CONTROL] = v->loc;
}

static void solver_arg(Sema *S, const Ast *arg, SemaSolver *out)
{
    const char *keys[ND_SOLVER_KEY_COUNT];
    unsigned allowed = nd_method_keys(out->method);
    int nkeys = sema_names_in(allowed, ND_SOLVER_KEY_COUNT, solver_keys, keys);
    int k = sema_find_name(arg->name, ND_SOLVER_KEY_COUNT, solver_keys);
    if (k == ND_SKEY_STEP_CONTROL) {
        solver_step_control(S, arg, out);
        return;
    }
    if (k < 0 || !(allowed & (1u << k))) {
        diag_error(S->diag, arg->loc, "unknown argument '%s' for solver '%s' (expected %s)", arg->name,
                   out->name, sema_join(S, nkeys, keys, " or "));
        sema_suggest_among(S, arg->name, arg->loc, nkeys, keys);
        return;
    }
    SemaSetting setting = {"a solver argument", "solver argument", "a number", solver_range};
    double v;
    if (!sema_call_setting(S, arg, arg->loc, out->given, k, &setting, &v))
        return;
    set_value(out, (NdSolverKey)k, v);
    out->given |= 1u << k;
    out->arg_loc[k] = arg->a->loc;
}

/* Without `solver =`, dopri5 with its default tolerances (rtol 1e-6, atol 1e-9), as
 * torchdiffeq and scipy default to an adaptive 5(4) pair; LANGUAGE.md §5.6's
 * sampling solve is written without one. */
void sema_default_solver(Sema *S, SrcLoc where, SemaSolver *out)
{
    solver_start(out, strtab_cstr(S->names, nd_method_name(ND_DOPRI5)), ND_DOPRI5, where);
}

/* "known solvers: euler, ... (fixed step, h); bosh3, ... (adaptive); ...", class
 * by class. */
static void note_known(Sema *S, SrcLoc at)
{
    const char *groups[ND_CLASS_IMPLICIT + 1], *names[ND_METHOD_COUNT];
    int n_sde = 0;
    const char *sde[ND_METHOD_COUNT];
    for (int m = 0; m < ND_METHOD_COUNT; m++)
        if (nd_method_is_sde((NdMethod)m))
            sde[n_sde++] = nd_method_name((NdMethod)m);
    for (int c = 0; c <= ND_CLASS_IMPLICIT; c++) {
        int n = 0;
        for (int m = 0; m < ND_METHOD_COUNT; m++) /* the stochastic ones apart */
            if (nd_method_class((NdMethod)m) == (NdMethodClass)c && !nd_method_is_sde((NdMethod)m))
                names[n++] = nd_method_name((NdMethod)m);
        const char *list = sema_join(S, n, names, ", ");
        char *g = arena_alloc(S->arena, strlen(list) + strlen(class_labels[c]) + 4);
        sprintf(g, "%s (%s)", list, class_labels[c]);
        groups[c] = g;
    }
    diag_note(S->diag, at, "known solvers: %s; %s; %s; %s (stochastic, h)", groups[ND_CLASS_FIXED],
              groups[ND_CLASS_ADAPTIVE], groups[ND_CLASS_IMPLICIT], sema_join(S, n_sde, sde, ", "));
}

void sema_solver_call(Sema *S, const Ast *e, SemaSolver *out)
{
    if (!sema_is_call(S, e, "solver needs a name like rk4, or a call like rk4(h = 0.25)"))
        return;
    SrcLoc at = name_loc_of(e);
    int method = nd_method_from_name(e->name);
    if (method < 0) {
        diag_error(S->diag, at, "unknown solver '%s'", e->name);
        sema_suggest_among(S, e->name, at, ND_METHOD_COUNT, method_names);
        note_known(S, at);
        return;
    }
    solver_start(out, e->name, (NdMethod)method, at);
    int before = S->diag->errors;
    for (int i = 0; e->kind == AST_CALL && i < e->list.n; i++) {
        const Ast *arg = e->list.items[i];
        if (arg->kind != AST_ARG) {
            const char *keys[ND_SOLVER_KEY_COUNT];
            sema_names_in(nd_method_keys(out->method), ND_SOLVER_KEY_COUNT, solver_keys, keys);
            diag_error(S->diag, arg->loc, "solver arguments must be named, like %s(%s = ...)", e->name,
                       keys[0]);
            continue;
        }
        solver_arg(S, arg, out);
    }
    /* fixed-step methods have no default step: any would be wrong for some model */
    if (nd_method_class(out->method) == ND_CLASS_FIXED && !(out->given & ND_SBIT_H) &&
        S->diag->errors == before)
        diag_error(S->diag, at, "%s needs a step size, like %s(h = 0.01)", e->name, e->name);
}

SemaSpan sema_widest_interval(const double *t, int nt)
{
    SemaSpan w = {0, 0};
    for (int j = 0; j + 1 < nt; j++)
        if (fabs(t[j + 1] - t[j]) > fabs(w.b - w.a))
            w = (SemaSpan){t[j], t[j + 1]};
    return w;
}

/* A fixed-step method takes about |b - a| / h steps from one output time to
 * the next (nd_fixed_steps' count); more than max_steps is refused here, as
 * nd_solve refuses it, rather than left to run for hours. */
void sema_check_steps(Sema *S, const SemaSolver *sv, SemaSpan widest)
{
    if (!sv->name || nd_method_class(sv->method) != ND_CLASS_FIXED || !(sv->given & ND_SBIT_H))
        return;
    double r = fabs(widest.b - widest.a) / sv->h, n = ceil(r - 1e-9 * r);
    if (n <= (double)sv->max_steps)
        return;
    SrcLoc at = sv->arg_loc[ND_SKEY_H];
    diag_error(S->diag, at,
               "%s would take %.3g steps of h = %g from t = %g to t = %g, more than max_steps = %ld",
               sv->name, n, sv->h, widest.a, widest.b, sv->max_steps);
    if (n > SEMA_MAX_STEPS_LIMIT)
        diag_note(S->diag, at, "use a larger h (max_steps allows at most 1e15)");
    else
        diag_note(S->diag, at, "use a larger h, or allow them with %s(h = %g, max_steps = %.0f)",
                  sv->name, sv->h, n);
}

/* ---- solve ---- */

void sema_solve_starts(Sema *S, const SemaSolve *s, SrcLoc where)
{
    const IrModel *m = s->model;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        if (v->init || (s->init && s->init[i]) ||
            params_state_draw(m, s->draw, i).kind != IR_INIT_NONE)
            continue;
        diag_error(S->diag, where,
                   "state '%s' of model '%s' has no initial value: give one with init = { %s = ... }",
                   v->name, m->name, v->name);
        diag_note(S->diag, v->loc, "'%s' is declared here without '= value'", v->name);
    }
}

enum { KEY_T, KEY_INIT, KEY_SOLVER, KEY_OUTPUT, KEY_SAMPLES, KEY_LOAD, KEY_EVENTS,
       KEY_MAX_EVENTS, KEY_BROWNIAN, KEY_PATH, N_SOLVE_KEYS };

/* The data set whose fields init reads (`z = moons.x`: NAME is a data set, not a
 * name of the model) into *found; reading two is an error (0). */
static int find_rows(Sema *S, ModelInfo *mi, const Ast *e, SemaData **found)
{
    if (!e)
        return 1;
    if (e->kind == AST_FIELD && e->a->kind == AST_NAME && !scope_lookup(mi->scope, e->a->name)) {
        SemaData *d = sema_find_data(S, e->a->name);
        if (d && *found && d != *found) {
            diag_error(S->diag, e->a->loc,
                       "a solve takes its initial states from one data set, but init reads '%s' "
                       "and '%s'",
                       (*found)->name, d->name);
            return 0;
        }
        *found = d ? d : *found;
        return 1;
    }
    if (!find_rows(S, mi, e->a, found) || !find_rows(S, mi, e->b, found))
        return 0;
    for (int i = 0; i < e->list.n; i++)
        if (!find_rows(S, mi, e->list.items[i], found))
            return 0;
    return 1;
}

/* `init = {...}` of a solve: values, draws (`z ~ normal(0, 1)`) and data fields
 * (`z = moons.x`, one sample per row of moons). */
static void solve_init(Sema *S, ModelInfo *mi, const Ast *v, SemaSolve *out)
{
    SemaData *rows = NULL;
    if (mi && !find_rows(S, mi, v, &rows))
        return;
    out->rows = rows;
    /* the train block's route for `NAME.field` (sema_data_field) serves a solve too */
    S->train_model = mi ? mi->model : NULL;
    S->train_data = rows;
    init_record(S, mi, v, out->init, out->draw, 0);
    S->train_model = NULL;
    S->train_data = NULL;
}

static void solve_entry(Sema *S, ModelInfo *mi, const Ast *entry, int key, SemaSolve *out)
{
    const Ast *v = entry->a;
    switch (key) {
    case KEY_T: sema_solve_times(S, mi ? mi->scope : S->global, v, out); break;
    case KEY_INIT: solve_init(S, mi, v, out); break;
    case KEY_SOLVER: sema_solver_call(S, v, &out->solver); break;
    case KEY_OUTPUT:
        if (v->kind != AST_STR)
            diag_error(S->diag, v->loc, "output needs a file name in quotes, like output = \"out.csv\"");
        out->output = v->kind == AST_STR ? v->str : NULL;
        out->output_loc = v->loc;
        break;
    case KEY_LOAD:
        out->load = sema_file_value(S, entry, &out->load_loc);
        break;
    case KEY_SAMPLES:
        out->samples_loc = v->loc;
        if (!sema_const_int(S, S->global, v, "the number of samples", 1, 10000000, &out->samples))
            out->samples = 0;
        break;
    case KEY_EVENTS:
        if (v->kind != AST_STR)
            diag_error(S->diag, v->loc, "events needs a file name in quotes, like events = \"events.csv\"");
        out->events = v->kind == AST_STR ? v->str : NULL;
        out->events_loc = v->loc;
        break;
    case KEY_MAX_EVENTS:
        if (!sema_const_int(S, S->global, v, "max_events", 1, 100000000, &out->max_events))
            out->max_events = 0;
        break;
    case KEY_BROWNIAN:
        if (v->kind != AST_STR)
            diag_error(S->diag, v->loc, "brownian needs a file name in quotes, like brownian = \"w.csv\"");
        out->brownian = v->kind == AST_STR ? v->str : NULL;
        out->brownian_loc = v->loc;
        break;
    case KEY_PATH:
        out->path_loc = v->loc;
        if (!sema_const_int(S, S->global, v, "the path number", 0, 1000000000, &out->path))
            out->path = -1;
        break;
    }
}

/* excused[k]: a misspelled key was meant for k, so k is not also "missing". */
static int check_key(Sema *S, const Ast *entry, const Ast **seen, char *excused)
{
    if (sema_named_entry_misplaced(S, entry, "solve"))
        return -1;
    int k = sema_find_name(entry->name, N_SOLVE_KEYS, solve_keys);
    if (k < 0) {
        diag_error(S->diag, name_loc_of(entry),
                   "unknown key '%s' in solve (valid keys: t, init, solver, output, samples, load, "
                   "events, max_events, brownian, path)",
                   entry->name);
        sema_suggest_among(S, entry->name, name_loc_of(entry), N_SOLVE_KEYS, solve_keys);
        int meant = sema_closest(entry->name, N_SOLVE_KEYS, solve_keys);
        if (meant >= 0)
            excused[meant] = 1;
        return -1;
    }
    if (seen[k]) {
        diag_error(S->diag, name_loc_of(entry), "duplicate key '%s' in solve", entry->name);
        diag_note(S->diag, name_loc_of(seen[k]), "the first '%s' is here", entry->name);
        return -1;
    }
    if (entry->op == '~' || !entry->a) {
        diag_error(S->diag, entry->loc, "expected '%s = value'", entry->name);
        return -1;
    }
    seen[k] = entry;
    return k;
}

int sema_solve_draws(const SemaSolve *out, int *first)
{
    const IrModel *m = out->model;
    int by_model = 0;
    *first = -1;
    for (int i = 0; i < m->n_states; i++) {
        if (out->draw[i].kind != IR_INIT_NONE && *first < 0)
            *first = i;
        by_model |= m->states[i].init_kind == IR_INIT_NORMAL ||
                    m->states[i].init_kind == IR_INIT_RADEMACHER;
    }
    return *first >= 0 || by_model;
}

void sema_draw_needs_samples(Sema *S, const Ast *init, const SemaSolve *out, int first)
{
    const char *x = out->model->states[first].name;
    for (int i = 0; init && i < init->list.n; i++)
        if (strcmp(init->list.items[i]->name, x) == 0)
            diag_error(S->diag, init->list.items[i]->loc,
                       "drawing an initial state (`%s ~ ...`) needs the number of samples, "
                       "like samples = 100",
                       x);
}

/* samples, draws and data rows: which combinations make a batch. */
static void solve_batch_rules(Sema *S, const Ast *init, const Ast **seen, SemaSolve *out)
{
    int first;
    int drawn = sema_solve_draws(out, &first);
    const Ast *samples = seen[KEY_SAMPLES];
    if (out->rows && samples) {
        diag_error(S->diag, name_loc_of(samples),
                   "'samples' sets the batch size, but init already gives one sample per row of "
                   "'%s' (%d rows): remove samples",
                   out->rows->name, out->rows->nrows);
    } else if (first >= 0 && !samples && !out->rows) {
        sema_draw_needs_samples(S, init, out, first);
    } else if (samples && !drawn && out->samples > 0 && !out->model->diffusion) {
        /* (a stochastic model's samples differ by their Brownian paths) */
        diag_error(S->diag, name_loc_of(samples),
                   "samples = %d would solve the same initial state %d times: draw one in init, "
                   "like init = { %s ~ normal(0, 1) }",
                   out->samples, out->samples, out->model->n_states ? out->model->states[0].name : "x");
    }
}

/* events and max_events need a model with `when` blocks; its solver must locate them. */
static void solve_event_keys(Sema *S, const Ast **seen, const SemaSolve *out)
{
    const Ast *key = seen[KEY_EVENTS] ? seen[KEY_EVENTS] : seen[KEY_MAX_EVENTS];
    if (key && out->model->n_events == 0)
        diag_error(S->diag, name_loc_of(key), "'%s' needs a model with events, but model '%s' "
                   "has no `when` block", key->name, out->model->name);
    sema_events_solver(S, out->model, &out->solver);
    sema_verlet_solver(S, out->model, &out->solver);
    sema_sde_solver(S, out->model, &out->solver);
    const Ast *w = seen[KEY_BROWNIAN];
    if (!w)
        w = seen[KEY_PATH];
    if (w && !nd_method_is_sde(out->solver.method))
        diag_error(S->diag, name_loc_of(w), "'%s' is about the Brownian path of a stochastic "
                   "solve: it needs euler_maruyama or milstein, not %s", w->name, out->solver.name);
}

static void solve_directive(Sema *S, const Ast *ast, SemaDirective *d)
{
    ModelInfo *mi = find_model(S, ast);
    SemaSolve *out = &d->solve;
    out->model = mi ? mi->model : NULL;
    out->path = -1;
    if (mi) {
        out->init = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(mi->model->n_states + 1));
        out->draw = arena_alloc(S->arena, sizeof(SemaDraw) * (size_t)(mi->model->n_states + 1));
    }
    const Ast *seen[N_SOLVE_KEYS] = {0};
    char excused[N_SOLVE_KEYS] = {0};
    int before = S->diag->errors;
    for (int i = 0; i < ast->list.n; i++) {
        const Ast *entry = ast->list.items[i];
        int k = check_key(S, entry, seen, excused);
        if (k >= 0)
            solve_entry(S, mi, entry, k, out);
    }
    if (!seen[KEY_T] && !excused[KEY_T])
        diag_error(S->diag, d->loc, "solve needs 't', the output times (like t = [0, 1])");
    if (!seen[KEY_SOLVER])
        sema_default_solver(S, d->loc, &out->solver);
    if (mi && S->diag->errors == before)
        solve_batch_rules(S, seen[KEY_INIT] ? seen[KEY_INIT]->a : NULL, seen, out);
    if (mi && S->diag->errors == before)
        sema_solve_starts(S, out, d->loc);
    if (mi && S->diag->errors == before)
        solve_event_keys(S, seen, out);
    if (S->diag->errors == before)
        sema_check_steps(S, &out->solver, sema_widest_interval(out->t, out->nt));
}

/* ---- option ---- */

/* `option shared_states = once | per_copy` (docs/language.md, "Shared states"). */
static void option_shared(Sema *S, const Ast *ast, SemaProgram *out)
{
    const char *v = ast->a && ast->a->kind == AST_NAME ? ast->a->name : NULL;
    if (v && (strcmp(v, "once") == 0 || strcmp(v, "per_copy") == 0)) {
        out->shared_per_copy = strcmp(v, "per_copy") == 0;
        return;
    }
    diag_error(S->diag, ast->a ? ast->a->loc : name_loc_of(ast),
               "option shared_states is 'once' (the default) or 'per_copy'");
}

/* `option precision = f64` (the default) or f32: the whole program's numbers in
 * one precision (docs/precision.md), so that a kernel never meets a solver of the other. */
static void option_precision(Sema *S, const Ast *ast, SemaProgram *out)
{
    const char *v = ast->a && ast->a->kind == AST_NAME ? ast->a->name : NULL;
    if (v && (strcmp(v, "f64") == 0 || strcmp(v, "f32") == 0)) {
        out->f32 = strcmp(v, "f32") == 0;
        return;
    }
    diag_error(S->diag, ast->a ? ast->a->loc : name_loc_of(ast),
               "option precision is 'f64' (the default) or 'f32'");
}

static void option_directive(Sema *S, const Ast *ast, SemaProgram *out)
{
    if (strcmp(ast->name, "shared_states") == 0) {
        option_shared(S, ast, out);
        return;
    }
    if (strcmp(ast->name, "precision") == 0) {
        option_precision(S, ast, out);
        return;
    }
    if (strcmp(ast->name, "seed") != 0) {
        diag_error(S->diag, name_loc_of(ast),
                   "unknown option '%s' (known options: seed, shared_states, precision)", ast->name);
        return;
    }
    IrNode *c = sema_const(S, S->global, ast->a, "the seed");
    if (!c)
        return;
    double v = c->value[0];
    if (c->shape.rank != 0 || v < 0 || v != floor(v)) {
        diag_error(S->diag, ast->a->loc, "the seed must be a non-negative integer");
        return;
    }
    if (v > 1.8e19) { /* past what a 64-bit seed holds */
        diag_error(S->diag, ast->a->loc, "the seed must be at most 1.8e19, but this is %g", v);
        return;
    }
    out->has_seed = true;
    out->seed = (uint64_t)v;
}

void sema_directives(Sema *S, const Ast *program, SemaProgram *out)
{
    int n = 0;
    for (int i = 0; i < program->list.n; i++) {
        AstKind k = program->list.items[i]->kind;
        n += k == AST_SOLVE || k == AST_TRAIN || k == AST_DATA || k == AST_EVALUATE ||
             k == AST_PLOT;
    }
    out->dirs = arena_alloc(S->arena, sizeof(SemaDirective) * (size_t)(n + 1));
    for (int i = 0; i < program->list.n; i++) {
        const Ast *it = program->list.items[i];
        if (it->kind == AST_OPTION) {
            option_directive(S, it, out);
            continue;
        }
        if (it->kind != AST_SOLVE && it->kind != AST_TRAIN && it->kind != AST_DATA &&
            it->kind != AST_EVALUATE && it->kind != AST_PLOT)
            continue;
        SemaDirective *d = &out->dirs[out->n_dirs++];
        d->ast = it;
        d->loc = it->name_loc.line > 0 ? loc_span(it->loc, it->name_loc) : it->loc;
        if (it->kind == AST_PLOT) {
            d->kind = SEMA_PLOT;
            sema_plot_directive(S, it, d, out, program);
            continue;
        }
        d->kind = it->kind == AST_SOLVE      ? SEMA_SOLVE
                  : it->kind == AST_TRAIN    ? SEMA_TRAIN
                  : it->kind == AST_EVALUATE ? SEMA_EVALUATE
                                             : SEMA_DATA;
        if (it->kind == AST_SOLVE)
            solve_directive(S, it, d);
        else if (it->kind == AST_TRAIN || it->kind == AST_EVALUATE)
            sema_train_directive(S, it, d);
        else
            sema_data_directive(S, it, d);
    }
}
