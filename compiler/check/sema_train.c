/* `train M { ... }`: every key checked and lowered into a SemaTrain for the
 * runner's training loop. Expressions (loss, final_loss, regularize, init) are
 * lowered in model M's scope plus the train's data set (`obs.y` becomes DATA
 * leaves) and `dx/dt` (the right-hand side of state x), so they are IR like the
 * model itself and can be differentiated and compiled the same way. */
#include "sema.h"

#include <math.h>
#include <string.h>

#include "sema_internal.h"

typedef enum TrainKey {
    K_DATA, K_INIT, K_T, K_LOSS, K_FINAL, K_REG, K_BATCH, K_SOLVER, K_GRADIENT, K_OPTIMIZER,
    K_STEPS, K_LOG, K_HISTORY, K_SAVE, K_LOAD, K_OUTPUT, K_VALIDATION, K_PATIENCE, K_SCHEDULE,
    K_CLIP, K_IWAE, N_KEYS
} TrainKey;

static const char *const train_keys[N_KEYS] = {
    "data", "init", "t", "loss", "final_loss", "regularize", "batch", "solver", "gradient",
    "optimizer", "steps", "log_every", "history", "save", "load", "output", "validation",
    "patience", "schedule", "clip", "iwae",
};

/* The keys evaluate takes: train's that define a loss, and its output. */
static const unsigned EVALUATE_KEYS = 1u << K_DATA | 1u << K_INIT | 1u << K_T | 1u << K_LOSS |
                                      1u << K_FINAL | 1u << K_BATCH | 1u << K_SOLVER |
                                      1u << K_LOAD | 1u << K_OUTPUT | 1u << K_IWAE;


static const char *const gradient_names[] = {"adjoint", "backprop", "checkpoint"};

/* The state of checking one train directive. */
typedef struct TrainCheck {
    SemaDirective *dir;
    SemaTrain *out;
    ModelInfo *mi;           /* NULL when the model is unknown (already reported) */
    const Ast *seen[N_KEYS]; /* the entry of each key, or NULL */
    const Ast *metric[SEMA_MAX_METRICS]; /* evaluate's `metric NAME = expr` entries */
    int n_metrics;
    const Ast *sample[SEMA_MAX_SAMPLES]; /* `sample z ~ normal(mu, sigma)` entries */
    int n_sample;
    const Ast *encoder[2];   /* `encoder h[n] { ... }` entries (a second is an error) */
    int n_encoder;
    char excused[N_KEYS];    /* a misspelled key was meant for it: not also "missing" */
    int data_broken;         /* `data = obs` names a data set that failed to load */
} TrainCheck;

static SrcLoc name_loc_of(const Ast *a)
{
    return a->name_loc.line > 0 ? a->name_loc : a->loc;
}

static const Ast *value_of(const TrainCheck *tc, TrainKey k)
{
    return tc->seen[k] ? tc->seen[k]->a : NULL;
}

/* ---- keys ---- */

bool sema_named_entry_misplaced(Sema *S, const Ast *entry, const char *directive)
{
    if (!entry->str)
        return false;
    bool block = strcmp(directive, "train") == 0 || strcmp(directive, "evaluate") == 0;
    if (entry->op == '{') {
        if (strcmp(entry->str, "encoder") != 0)
            diag_error(S->diag, entry->loc, "'%s %s { ... }' is not a statement: train and "
                       "evaluate blocks take encoder NAME[n] { ... }", entry->str, entry->name);
        else if (!block)
            diag_error(S->diag, entry->loc, "encoder is a statement of train and evaluate "
                       "blocks, not of %s", directive);
        else
            return false;
        return true;
    }
    if (strcmp(entry->str, "encoder") == 0) {
        diag_error(S->diag, entry->loc, "an encoder is a block: encoder %s[n] { d%s/dt = ...; "
                   "%s = ... }", entry->name, entry->name, entry->name);
        return true;
    }
    if (strcmp(entry->str, "sample") == 0) {
        if (!block)
            diag_error(S->diag, entry->loc, "sample is a statement of train and evaluate blocks, "
                       "not of %s", directive);
        else if (entry->op != '~')
            diag_error(S->diag, entry->loc, "a sample is drawn with '~': sample %s ~ normal(mu, "
                       "sigma)", entry->name);
        else
            return false;
        return true;
    }
    if (entry->op == '~')
        diag_error(S->diag, entry->loc, "'%s %s ~ ...' is not a statement: train and evaluate "
                   "blocks draw with sample NAME ~ normal(mu, sigma)", entry->str, entry->name);
    else if (strcmp(entry->str, "metric") != 0)
        diag_error(S->diag, entry->loc, "'%s %s = ...' is not a key: a key is one name (key = "
                   "value); evaluate also takes metric NAME = expr", entry->str, entry->name);
    else if (strcmp(directive, "evaluate") != 0)
        diag_error(S->diag, entry->loc, "metrics belong in evaluate, not in %s", directive);
    else
        return false;
    return true;
}

/* evaluate's `metric NAME = expr`: distinct names, at most SEMA_MAX_METRICS. */
static void collect_metric(Sema *S, TrainCheck *tc, const Ast *entry)
{
    for (int j = 0; j < tc->n_metrics; j++)
        if (strcmp(tc->metric[j]->name, entry->name) == 0) {
            diag_error(S->diag, name_loc_of(entry), "duplicate metric '%s'", entry->name);
            diag_note(S->diag, name_loc_of(tc->metric[j]), "the first '%s' is here", entry->name);
            return;
        }
    if (strcmp(entry->name, "loss") == 0)
        diag_error(S->diag, name_loc_of(entry), "a metric cannot be named 'loss': evaluate "
                   "reports the loss under that name");
    else if (tc->n_metrics == SEMA_MAX_METRICS)
        diag_error(S->diag, entry->loc, "more than %d metrics in one evaluate", SEMA_MAX_METRICS);
    else
        tc->metric[tc->n_metrics++] = entry;
}

static void collect_keys(Sema *S, const Ast *ast, TrainCheck *tc)
{
    bool eval = tc->out->evaluate;
    for (int i = 0; i < ast->list.n; i++) {
        const Ast *entry = ast->list.items[i];
        SrcLoc at = name_loc_of(entry);
        if (sema_named_entry_misplaced(S, entry, eval ? "evaluate" : "train"))
            continue;
        if (entry->op == '{') {
            if (tc->n_encoder < 2)
                tc->encoder[tc->n_encoder++] = entry;
            continue;
        }
        if (entry->str && strcmp(entry->str, "sample") == 0) {
            if (tc->n_sample == SEMA_MAX_SAMPLES)
                diag_error(S->diag, entry->loc, "more than %d samples in one %s", SEMA_MAX_SAMPLES,
                           eval ? "evaluate" : "train");
            else
                tc->sample[tc->n_sample++] = entry;
            continue;
        }
        if (entry->str) {
            collect_metric(S, tc, entry);
            continue;
        }
        int k = sema_find_name(entry->name, N_KEYS, train_keys);
        if (k == K_IWAE && !eval) {
            diag_error(S->diag, at, "'iwae' is a key of evaluate, not of train (a train's loss "
                       "is the one-draw estimate; evaluate's iwae = K weighs K draws)");
            continue;
        }
        if (k >= 0 && (eval ? !(EVALUATE_KEYS >> k & 1) : k == K_OUTPUT)) {
            diag_error(S->diag, at,
                       eval ? "'%s' is a key of train, not of evaluate (evaluate takes data, "
                              "init, t, loss, final_loss, batch, solver, load, output, iwae "
                              "and metric NAME = expr)"
                            : "'%s' is a key of evaluate, not of train (a train writes its "
                              "losses to history = \"...\")",
                       entry->name);
            continue;
        }
        if (k < 0 && eval) {
            diag_error(S->diag, at,
                       "unknown key '%s' in evaluate (valid keys: data, init, t, loss, "
                       "final_loss, batch, solver, load, output, iwae; and metric NAME = "
                       "expr)",
                       entry->name);
            sema_suggest_among(S, entry->name, at, N_KEYS, train_keys);
            continue;
        }
        if (k < 0) {
            const char *keys[N_KEYS]; /* train's: every key but evaluate's output and iwae */
            int n_keys = 0;
            for (int j = 0; j < N_KEYS; j++)
                if (j != K_OUTPUT && j != K_IWAE)
                    keys[n_keys++] = train_keys[j];
            diag_error(S->diag, at, "unknown key '%s' in train (valid keys: %s)", entry->name,
                       sema_join(S, n_keys, keys, ", "));
            sema_suggest_among(S, entry->name, at, N_KEYS, train_keys);
            int meant = sema_closest(entry->name, N_KEYS, train_keys);
            if (meant >= 0)
                tc->excused[meant] = 1;
        } else if (tc->seen[k]) {
            diag_error(S->diag, at, "duplicate key '%s' in train", entry->name);
            diag_note(S->diag, name_loc_of(tc->seen[k]), "the first '%s' is here", entry->name);
        } else if (entry->op == '~' || !entry->a) {
            diag_error(S->diag, entry->loc, "expected '%s = value'", entry->name);
        } else {
            tc->seen[k] = entry;
        }
    }
}

/* ---- data ---- */

static void train_data(Sema *S, TrainCheck *tc)
{
    const Ast *v = value_of(tc, K_DATA);
    if (!v)
        return;
    tc->data_broken = 1; /* until it names a good data set: no errors about what it lacks */
    if (v->kind != AST_NAME) {
        diag_error(S->diag, v->loc, "data needs the name of a data set, like data = obs");
        return;
    }
    SemaData *d = sema_find_data(S, v->name);
    if (!d) {
        diag_error(S->diag, v->loc, "unknown data set '%s' (declare it before the train with `data "
                   "%s = csv(\"file.csv\")`)", v->name, v->name);
        const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(S->datasets.n + 1));
        for (int i = 0; i < S->datasets.n; i++)
            names[i] = ((SemaData *)S->datasets.items[i])->name;
        sema_suggest_among(S, v->name, v->loc, S->datasets.n, names);
        return;
    }
    tc->out->data = d;
    tc->data_broken = d->ncols == 0;
}

/* Whether data sets a and b have the same columns in the same places: the
 * loss kernels read a row by column offset. */
static bool same_columns(const SemaData *a, const SemaData *b)
{
    if (a->ncols != b->ncols || a->t_col != b->t_col || a->id_col != b->id_col ||
        a->n_fields != b->n_fields)
        return false;
    for (int i = 0; i < a->n_fields; i++) {
        const SemaField *f = &a->fields[i], *g = &b->fields[i];
        if (f->name != g->name || !ir_shape_eq(f->shape, g->shape) ||
            memcmp(f->cols, g->cols, sizeof(int) * (size_t)ir_shape_size(f->shape)) != 0)
            return false;
    }
    return true;
}

static int const_count(Sema *S, const Ast *e, const char *what, long lo, long hi, long *out);

/* `validation = D`: a data set laid out like the train's, scored every
 * log_every steps; `patience = N` stops after N scores without a better one. */
static void train_validation(Sema *S, TrainCheck *tc)
{
    const Ast *v = value_of(tc, K_VALIDATION), *pat = value_of(tc, K_PATIENCE);
    SemaTrain *out = tc->out;
    if (pat && !v)
        diag_error(S->diag, pat->loc, "patience counts validation scores: it needs validation = "
                   "D (a data set laid out like the training data)");
    else if (pat)
        const_count(S, pat, "patience", 1, 0, &out->patience);
    if (!v || tc->data_broken)
        return;
    if (v->kind != AST_NAME) {
        diag_error(S->diag, v->loc, "validation needs the name of a data set, like validation = test");
        return;
    }
    SemaData *d = sema_find_data(S, v->name);
    if (!d) {
        diag_error(S->diag, v->loc, "unknown data set '%s'", v->name);
        return;
    }
    if (!out->data) {
        diag_error(S->diag, v->loc, "validation scores the loss on another data set: it needs "
                   "data = ... to train on");
        return;
    }
    if (!same_columns(out->data, d)) {
        diag_error(S->diag, v->loc, "the validation set '%s' must have the columns of '%s', in "
                   "the same order: the loss reads %s's rows by column", d->name, out->data->name,
                   out->data->name);
        return;
    }
    out->validation = d;
}

/* ---- expressions ---- */

/* A scalar expression of the model's scope; NULL after an error. */
static IrNode *scalar_expr(Sema *S, TrainCheck *tc, const Ast *e, unsigned allow, const char *what)
{
    if (!e || !tc->mi)
        return NULL;
    Val v = sema_expr_in(S, tc->mi->scope, e, allow, what);
    if (v.kind == V_ERR)
        return NULL;
    if (v.kind != V_NODE) {
        diag_error(S->diag, e->loc, "%s must be a value, not a function", what);
        return NULL;
    }
    if (v.node->shape.rank != 0) {
        char b[32];
        diag_error(S->diag, e->loc,
                   "%s must be a scalar, but this is %s (reduce it with sum(...) or mean(...))",
                   what, sema_shape(v.node->shape, b));
        return NULL;
    }
    return v.node;
}

static IrNode *train_scalar(Sema *S, TrainCheck *tc, TrainKey k, unsigned allow, const char *what)
{
    return scalar_expr(S, tc, value_of(tc, k), allow, what);
}

/* evaluate's metrics, lowered like the loss they are averaged with. */
static void evaluate_metrics(Sema *S, TrainCheck *tc)
{
    SemaTrain *out = tc->out;
    out->metric_names = arena_alloc(S->arena, sizeof(char *) * (size_t)(tc->n_metrics + 1));
    out->metrics = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(tc->n_metrics + 1));
    for (int j = 0; j < tc->n_metrics; j++) {
        char what[96];
        snprintf(what, sizeof what, "the metric '%s'", tc->metric[j]->name);
        IrNode *v = scalar_expr(S, tc, tc->metric[j]->a, ALLOW_ALL | ALLOW_DATA, what);
        if (!v)
            continue;
        out->metric_names[out->n_metrics] = tc->metric[j]->name;
        out->metrics[out->n_metrics++] = v;
    }
}

Val sema_train_deriv(Sema *S, const Ast *e)
{
    const IrModel *m = S->train_model;
    int slot = -1;
    for (int i = 0; i < m->n_states; i++)
        if (strcmp(m->states[i].name, e->name) == 0)
            slot = i;
    if (slot < 0) {
        diag_error(S->diag, e->loc, "'d%s/dt': '%s' is not a state of model '%s'", e->name, e->name, m->name);
        const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(m->n_states + 1));
        for (int i = 0; i < m->n_states; i++)
            names[i] = m->states[i].name;
        sema_suggest_among(S, e->name, e->loc, m->n_states, names);
        return val_err();
    }
    if (!(S->allow & ALLOW_STATE)) {
        diag_error(S->diag, e->loc, "%s cannot use 'd%s/dt'", S->context, e->name);
        return val_err();
    }
    return m->rhs[slot] ? val_node(m->rhs[slot]) : val_err();
}

static void train_times(Sema *S, TrainCheck *tc)
{
    const Ast *v = value_of(tc, K_T);
    if (!v)
        return;
    SemaSolve span = {0};
    sema_solve_times(S, tc->mi ? tc->mi->scope : S->global, v, &span);
    tc->out->nt = span.nt;
    tc->out->t = span.t;
}

static void train_exprs(Sema *S, TrainCheck *tc)
{
    SemaTrain *out = tc->out;
    if (value_of(tc, K_INIT) && tc->mi)
        sema_init_record(S, tc->mi, value_of(tc, K_INIT), out->init, 1);
    out->loss = train_scalar(S, tc, K_LOSS, ALLOW_ALL | ALLOW_DATA, "the loss");
    out->final_loss = train_scalar(S, tc, K_FINAL, ALLOW_ALL | ALLOW_DATA, "the final loss");
    out->regularize = train_scalar(S, tc, K_REG, ALLOW_ALL, "the running cost (regularize)");
    if (out->evaluate)
        evaluate_metrics(S, tc);
}

/* ---- what each kind of data needs ---- */

/* Initial value of state i when init does not give one: the data field of the
 * same name, else the model's default; an error when there is neither. */
static void default_init(Sema *S, TrainCheck *tc, int i)
{
    const IrModel *m = tc->mi->model;
    const IrVar *v = &m->states[i];
    const SemaData *d = tc->out->data;
    const SemaField *f = d ? sema_data_find_field(d, v->name) : NULL;
    char bs[32], bf[32];
    if (f && ir_shape_eq(f->shape, v->shape)) {
        tc->out->init[i] = sema_data_field_ir(S, f);
    } else if (f) {
        diag_error(S->diag, tc->dir->loc,
                   "the data field '%s.%s' is %s but state '%s' is %s: give the initial state with "
                   "init = { %s = ... }",
                   d->name, f->name, sema_shape(f->shape, bf), v->name, sema_shape(v->shape, bs), v->name);
    } else if (!v->init) {
        if (d)
            diag_error(S->diag, tc->dir->loc,
                       "no initial value for state '%s': data set '%s' has no field '%s' and the state "
                       "has no default; give one with init = { %s = ... }",
                       v->name, d->name, v->name, v->name);
        else
            diag_error(S->diag, tc->dir->loc,
                       "state '%s' of model '%s' has no initial value: give one with init = { %s = ... }",
                       v->name, m->name, v->name);
        diag_note(S->diag, v->loc, "'%s' is declared here without '= value'", v->name);
    }
}

static void need_key(Sema *S, TrainCheck *tc, TrainKey k, const char *why)
{
    if (!tc->seen[k] && !tc->excused[k])
        diag_error(S->diag, tc->dir->loc, "%s", why);
}

static void refuse_key(Sema *S, TrainCheck *tc, TrainKey k, const char *why)
{
    if (tc->seen[k])
        diag_error(S->diag, name_loc_of(tc->seen[k]), "%s", why);
}

static void train_rules(Sema *S, TrainCheck *tc)
{
    const SemaData *d = tc->out->data;
    if (!d) {
        need_key(S, tc, K_T, "train without data needs 't', the time span, like t = [0, 1]");
        need_key(S, tc, K_FINAL, "train without data needs 'final_loss', the loss at the last time");
        refuse_key(S, tc, K_LOSS, "'loss' is evaluated at each observation and needs time-series data "
                   "(data = ...); without data use final_loss");
    } else if (d->t_col >= 0) {
        refuse_key(S, tc, K_T, "train on time-series data integrates over the data's times; remove 't'");
        if (!tc->seen[K_LOSS] && !tc->seen[K_FINAL] && !tc->excused[K_LOSS] && !tc->excused[K_FINAL])
            diag_error(S->diag, tc->dir->loc,
                       "train needs 'loss' (at each observation) or 'final_loss' (at the last time)");
    } else {
        need_key(S, tc, K_T,
                 "train on sample data (no 't' column) needs 't', the time span, like t = [0, 1]");
        need_key(S, tc, K_FINAL, "train on sample data (no 't' column) needs 'final_loss', the loss at "
                 "the last time");
        refuse_key(S, tc, K_LOSS, "'loss' is evaluated at each observation time, but this data has no "
                   "'t' column; use final_loss");
    }
    for (int i = 0; i < tc->mi->model->n_states; i++)
        if (!tc->out->init[i])
            default_init(S, tc, i);
}

/* ---- batch ---- */

/* A constant integer count >= lo (and <= hi when hi > 0); 0 after an error. */
static int const_count(Sema *S, const Ast *e, const char *what, long lo, long hi, long *out)
{
    IrNode *c = sema_const(S, S->global, e, what);
    if (!c)
        return 0;
    double v = c->value[0];
    if (c->shape.rank != 0 || v != floor(v) || v < (double)lo || v > 1e15 || (hi > 0 && v > (double)hi)) {
        if (hi > 0)
            diag_error(S->diag, e->loc, "%s must be an integer from %ld to %ld", what, lo, hi);
        else if (c->shape.rank == 0 && v == floor(v) && v > 1e15)
            diag_error(S->diag, e->loc, "%s must be at most 1e15, but this is %g", what, v);
        else
            diag_error(S->diag, e->loc, "%s must be a positive integer", what);
        return 0;
    }
    *out = (long)v;
    return 1;
}

/* Rows of the longest trajectory of a time series: runs of one `id` (a csv
 * was read when checked; a simulation is one trajectory). */
static int longest_trajectory(const SemaData *d)
{
    if (d->id_col < 0 || !d->values)
        return d->nrows;
    int longest = 0, run = 0;
    for (int i = 0; i < d->nrows; i++) {
        const double *row = d->values + (size_t)i * d->ncols;
        run = i > 0 && row[d->id_col] == row[d->id_col - d->ncols] ? run + 1 : 1;
        longest = run > longest ? run : longest;
    }
    return longest;
}

/* The widest gap between consecutive observations of one trajectory: what a
 * fixed-step solver must cover between two output times. */
static SemaSpan widest_observation_gap(const SemaData *d)
{
    SemaSpan w = {0, 0};
    for (int i = 1; d->values && i < d->nrows; i++) {
        const double *row = d->values + (size_t)i * d->ncols, *prev = row - d->ncols;
        if (d->id_col >= 0 && row[d->id_col] != prev[d->id_col])
            continue;
        if (fabs(row[d->t_col] - prev[d->t_col]) > fabs(w.b - w.a))
            w = (SemaSpan){prev[d->t_col], row[d->t_col]};
    }
    return w;
}

static void batch_windows(Sema *S, TrainCheck *tc, const Ast *e)
{
    const SemaData *d = tc->out->data;
    if (d->t_col < 0) {
        diag_error(S->diag, e->loc, "windows(...) cuts a time series, but this data has no 't' column; "
                   "use batch = N for a minibatch of N samples");
        return;
    }
    const Ast *length = NULL, *count = NULL;
    for (int i = 0; e->kind == AST_CALL && i < e->list.n; i++) {
        const Ast *arg = e->list.items[i];
        const Ast **slot = arg->kind != AST_ARG ? NULL
                           : strcmp(arg->name, "length") == 0 ? &length
                           : strcmp(arg->name, "count") == 0 ? &count : NULL;
        if (!slot || *slot) {
            diag_error(S->diag, arg->loc,
                       "windows takes two named arguments: windows(length = L, count = C)");
            return;
        }
        *slot = arg->a;
    }
    if (!length || !count) {
        diag_error(S->diag, e->loc, "windows needs both arguments: windows(length = L, count = C)");
        return;
    }
    long L = 0, C = 0;
    int longest = longest_trajectory(d);
    if (longest < 2) {
        diag_error(S->diag, e->loc, "windows need trajectories of at least 2 observations, but "
                   "every trajectory of '%s' has 1", d->name);
        return;
    }
    if (const_count(S, length, "the window length", 2, longest, &L) &&
        const_count(S, count, "the window count", 1, 0, &C)) {
        tc->out->batch = SEMA_BATCH_WINDOWS;
        tc->out->batch_length = (int)L;
        tc->out->batch_count = C > 1000000000 ? 1000000000 : (int)C;
    }
}

static void train_batch(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_BATCH);
    const SemaData *d = tc->out->data;
    tc->out->batch = SEMA_BATCH_ALL;
    if (!e || tc->data_broken)
        return;
    if (!d) {
        diag_error(S->diag, e->loc, "batch needs data (data = ...) to draw from");
        return;
    }
    if ((e->kind == AST_CALL || e->kind == AST_NAME) && strcmp(e->name, "windows") == 0) {
        batch_windows(S, tc, e);
        return;
    }
    if (d->t_col >= 0) {
        diag_error(S->diag, e->loc, "a time series is batched with windows(length = L, count = C)");
        return;
    }
    long n = 0;
    if (const_count(S, e, "the batch size", 1, d->nrows, &n)) {
        tc->out->batch = SEMA_BATCH_MINIBATCH;
        tc->out->batch_count = (int)n;
    }
}

/* ---- solver, gradient, optimizer ---- */

/* A fixed-step solver's steps between two output times: over `t`, or between
 * observations (a simulation's times are its t). */
static void train_steps(Sema *S, TrainCheck *tc)
{
    const SemaTrain *out = tc->out;
    const SemaData *d = out->data;
    if (d && d->t_col >= 0 && !tc->data_broken)
        sema_check_steps(S, &out->solver, d->kind == SEMA_DATA_SIMULATE
                                              ? sema_widest_interval(d->sim.t, d->sim.nt)
                                              : widest_observation_gap(d));
    else if (out->t)
        sema_check_steps(S, &out->solver, sema_widest_interval(out->t, out->nt));
}

static void train_solver(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_SOLVER);
    if (e) {
        sema_solver_call(S, e, &tc->out->solver);
        /* the implicit gradients (adjoint, backprop, checkpoint) follow bdf's steps */
        const SemaSolver *sv = &tc->out->solver;
        if (sv->name && !nd_method_has_gradient(sv->method) && !tc->out->evaluate) {
            diag_error(S->diag, sv->loc, "train cannot differentiate through %s", sv->name);
            diag_note(S->diag, sv->loc, "train a stiff model with bdf (every gradient "
                                        "works with it); %s serves solve and simulate",
                      sv->name);
        }
        train_steps(S, tc);
        return;
    }
    /* the default: dopri5 with the runner's default tolerances (rtol 1e-6, atol 1e-9) */
    sema_default_solver(S, tc->dir->loc, &tc->out->solver);
}

/* `adjoint(seminorm = 0 | 1)`: the adjoint's one option. */
static void gradient_args(Sema *S, TrainCheck *tc, const Ast *e)
{
    for (int i = 0; i < e->list.n; i++) {
        const Ast *arg = e->list.items[i];
        if (strcmp(e->name, "adjoint") != 0) {
            diag_error(S->diag, arg->loc, "gradient method '%s' takes no arguments", e->name);
            return;
        }
        if (arg->kind != AST_ARG) {
            diag_error(S->diag, arg->loc, "adjoint's argument must be named, like adjoint(seminorm = 1)");
            return;
        }
        if (strcmp(arg->name, "seminorm") != 0) {
            static const char *const keys[] = {"seminorm"};
            diag_error(S->diag, name_loc_of(arg), "unknown argument '%s' for adjoint (expected seminorm)",
                       arg->name);
            sema_suggest_among(S, arg->name, name_loc_of(arg), 1, keys);
            return;
        }
        if (i > 0) {
            diag_error(S->diag, name_loc_of(arg), "duplicate argument 'seminorm'");
            return;
        }
        IrNode *c = sema_const(S, S->global, arg->a, "seminorm");
        if (!c)
            return;
        if (c->shape.rank != 0 || (c->value[0] != 0 && c->value[0] != 1)) {
            diag_error(S->diag, arg->a->loc, "seminorm must be 0 or 1");
            return;
        }
        tc->out->seminorm = c->value[0] == 1;
    }
}

static void train_gradient(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_GRADIENT);
    tc->out->gradient = strtab_cstr(S->names, "adjoint");
    tc->out->gradient_loc = tc->dir->loc;
    if (!e)
        return;
    if (!sema_is_call(S, e, "gradient needs a method name: adjoint, backprop or checkpoint"))
        return;
    SrcLoc at = name_loc_of(e);
    if (sema_find_name(e->name, 3, gradient_names) < 0) {
        diag_error(S->diag, at, "unknown gradient method '%s' (expected adjoint, backprop or checkpoint)",
                   e->name);
        sema_suggest_among(S, e->name, at, 3, gradient_names);
        return;
    }
    tc->out->gradient = e->name;
    tc->out->gradient_loc = at;
    if (e->kind == AST_CALL)
        gradient_args(S, tc, e);
}

/* The ranges of nd_optimizers.def's range column. */
typedef enum OptimRange { RANGE_POSITIVE, RANGE_NONNEG, RANGE_UNIT, RANGE_COUNT } OptimRange;

static const OptimRange optim_ranges[ND_OPTIM_KEY_COUNT] = {
#define ND_OPTIM_KEY(name, ID, def, range) [ND_OKEY_##ID] = RANGE_##range,
#include "nd_optimizers.def"
};

/* NULL when v is in key's range, else what the range is. */
static const char *optim_range(int key, double v)
{
    switch (optim_ranges[key]) {
    case RANGE_POSITIVE: return v > 0 ? NULL : "a positive number";
    case RANGE_NONNEG: return v >= 0 ? NULL : "a number >= 0";
    case RANGE_UNIT: return v >= 0 && v < 1 ? NULL : "a number in [0, 1)";
    case RANGE_COUNT: return v >= 1 && v == floor(v) && v <= 1e6 ? NULL : "a whole number from 1 to 1e6";
    }
    return NULL;
}

/* Every optimizer's name, in NdOptimKind's order (for messages). */
static const char *const optim_names[ND_OPTIM_COUNT] = {
#define ND_OPTIMIZER(name, ID, keys) #name,
#include "nd_optimizers.def"
};

/* Every argument's name, in nd_optimizers.def's order (bit k is key k). */
static const char *const optim_keys[ND_OPTIM_KEY_COUNT] = {
#define ND_OPTIM_KEY(name, ID, def, range) #name,
#include "nd_optimizers.def"
};

static void optim_arg(Sema *S, const Ast *arg, SemaOptimizer *out)
{
    if (arg->kind != AST_ARG) {
        diag_error(S->diag, arg->loc, "optimizer arguments must be named, like %s(lr = 0.001)",
                   out->name);
        return;
    }
    const char *keys[ND_OPTIM_KEY_COUNT];
    unsigned allowed = nd_optim_keys(out->cfg.kind);
    int nkeys = sema_names_in(allowed, ND_OPTIM_KEY_COUNT, optim_keys, keys);
    int k = sema_find_name(arg->name, ND_OPTIM_KEY_COUNT, optim_keys);
    if (k < 0 || !(allowed & (1u << k))) {
        diag_error(S->diag, name_loc_of(arg), "unknown argument '%s' for optimizer '%s' (expected %s)",
                   arg->name, out->name, sema_join(S, nkeys, keys, ", "));
        sema_suggest_among(S, arg->name, name_loc_of(arg), nkeys, keys);
        return;
    }
    SemaSetting setting = {"an optimizer argument", "optimizer argument", "a scalar", optim_range};
    double v;
    if (!sema_call_setting(S, arg, name_loc_of(arg), out->given, k, &setting, &v))
        return;
    *nd_optim_config_field(&out->cfg, (NdOptimKey)k) = v;
    out->given |= 1u << k;
    out->arg_loc[k] = arg->a->loc;
}

static void train_optimizer(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_OPTIMIZER);
    if (!e) {
        if (tc->mi && !tc->excused[K_OPTIMIZER])
            diag_error(S->diag, tc->dir->loc, "train needs 'optimizer', like optimizer = adam(lr = 1e-3)");
        return;
    }
    if (!sema_is_call(S, e, "optimizer needs a call like adam(lr = 1e-3)"))
        return;
    SrcLoc at = name_loc_of(e);
    int kind = nd_optim_kind_from_name(e->name);
    if (kind < 0) {
        diag_error(S->diag, at, "unknown optimizer '%s' (expected %s)", e->name,
                   sema_join(S, ND_OPTIM_COUNT, optim_names, " or "));
        sema_suggest_among(S, e->name, at, ND_OPTIM_COUNT, optim_names);
        return;
    }
    SemaOptimizer *out = &tc->out->optimizer;
    /* lr 0 until given: it has no default, and its absence is an error below */
    *out = (SemaOptimizer){.name = e->name, .loc = at,
                           .cfg = nd_optim_defaults((NdOptimKind)kind, 0)};
    int n = e->kind == AST_CALL ? e->list.n : 0;
    int before = S->diag->errors;
    for (int i = 0; i < n; i++)
        optim_arg(S, e->list.items[i], out);
    if (!(out->given & ND_OBIT_LR) && S->diag->errors == before)
        diag_error(S->diag, e->loc, "optimizer '%s' needs a learning rate, like %s(lr = 1e-3)", e->name,
                   e->name);
    if (out->cfg.kind == ND_OPT_LBFGS && tc->out->batch != SEMA_BATCH_ALL)
        diag_error(S->diag, at, "lbfgs needs the whole data set at every step: its line search "
                   "and curvature pairs compare losses of one batch, but batch draws a new one "
                   "each step; remove batch, or use adam");
    if (out->cfg.kind == ND_OPT_RMSPROP && (out->given & ND_OBIT_MOMENTUM) && out->cfg.momentum > 0)
        diag_error(S->diag, out->arg_loc[ND_OKEY_MOMENTUM],
                   "rmsprop with momentum is not supported yet; remove momentum, or use adam");
}

/* ---- the learning-rate schedule and gradient clipping ---- */

/* The ranges of nd_schedules.def's range column. */
typedef enum ScheduleRange {
    SRANGE_COUNT, SRANGE_POSITIVE_COUNT, SRANGE_NONNEG, SRANGE_POSITIVE
} ScheduleRange;

static const ScheduleRange schedule_ranges[ND_SCHEDULE_KEY_COUNT] = {
#define ND_SCHED_KEY(name, ID, def, range) [ND_SKEY_##ID] = SRANGE_##range,
#include "nd_schedules.def"
};

static const char *schedule_range(int key, double v)
{
    switch (schedule_ranges[key]) {
    case SRANGE_COUNT: return v >= 0 && v == floor(v) && v <= 1e15 ? NULL : "a whole number >= 0";
    case SRANGE_POSITIVE_COUNT:
        return v >= 1 && v == floor(v) && v <= 1e15 ? NULL : "a whole number >= 1";
    case SRANGE_NONNEG: return v >= 0 ? NULL : "a number >= 0";
    case SRANGE_POSITIVE: return v > 0 ? NULL : "a positive number";
    }
    return NULL;
}

static const char *const schedule_names[ND_SCHEDULE_COUNT] = {
#define ND_SCHEDULE(name, ID, keys, required) #name,
#include "nd_schedules.def"
};

static const char *const schedule_keys[ND_SCHEDULE_KEY_COUNT] = {
#define ND_SCHED_KEY(name, ID, def, range) #name,
#include "nd_schedules.def"
};

static void schedule_arg(Sema *S, const Ast *arg, SemaSchedule *out)
{
    const char *keys[ND_SCHEDULE_KEY_COUNT];
    unsigned allowed = nd_schedule_keys(out->cfg.kind);
    int nkeys = sema_names_in(allowed, ND_SCHEDULE_KEY_COUNT, schedule_keys, keys);
    if (arg->kind != AST_ARG) {
        diag_error(S->diag, arg->loc, "schedule arguments must be named, like %s(%s = ...)",
                   out->name, keys[nkeys - 1]); /* the decay's own argument, not warmup */
        return;
    }
    int k = sema_find_name(arg->name, ND_SCHEDULE_KEY_COUNT, schedule_keys);
    if (k < 0 || !(allowed & (1u << k))) {
        diag_error(S->diag, name_loc_of(arg), "unknown argument '%s' for schedule '%s' (expected %s)",
                   arg->name, out->name, sema_join(S, nkeys, keys, ", "));
        sema_suggest_among(S, arg->name, name_loc_of(arg), nkeys, keys);
        return;
    }
    SemaSetting setting = {"a schedule argument", "schedule argument", "a scalar", schedule_range};
    double v;
    if (!sema_call_setting(S, arg, name_loc_of(arg), out->given, k, &setting, &v))
        return;
    *nd_schedule_field(&out->cfg, (NdScheduleKey)k) = v;
    out->given |= 1u << k;
    out->arg_loc[k] = arg->a->loc;
}

static void train_schedule(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_SCHEDULE);
    if (!e || !sema_is_call(S, e, "schedule needs a call like cosine(warmup = 100)"))
        return;
    SrcLoc at = name_loc_of(e);
    int kind = nd_schedule_kind_from_name(e->name);
    if (kind < 0) {
        diag_error(S->diag, at, "unknown schedule '%s' (expected %s)", e->name,
                   sema_join(S, ND_SCHEDULE_COUNT, schedule_names, " or "));
        sema_suggest_among(S, e->name, at, ND_SCHEDULE_COUNT, schedule_names);
        return;
    }
    SemaSchedule *out = &tc->out->schedule;
    *out = (SemaSchedule){.name = e->name, .loc = at,
                          .cfg = nd_schedule_defaults((NdScheduleKind)kind, 0, 0)};
    int before = S->diag->errors;
    for (int i = 0; e->kind == AST_CALL && i < e->list.n; i++)
        schedule_arg(S, e->list.items[i], out);
    unsigned missing = nd_schedule_required(out->cfg.kind) & ~out->given;
    for (int k = 0; missing && k < ND_SCHEDULE_KEY_COUNT && S->diag->errors == before; k++)
        if (missing & (1u << k))
            diag_error(S->diag, e->loc, "schedule '%s' needs '%s', like %s(%s = %s)", e->name,
                       schedule_keys[k], e->name, schedule_keys[k], k == ND_SKEY_EVERY ? "500" : "0.999");
}

/* The schedule's peak and span: the optimizer's lr over the train's steps. A cosine
 * needs a step after its warm-up to decay over. */
static void schedule_span(Sema *S, TrainCheck *tc)
{
    SemaSchedule *sc = &tc->out->schedule;
    if (!sc->name)
        return;
    sc->cfg.lr = tc->out->optimizer.cfg.lr;
    sc->cfg.steps = tc->out->steps;
    long W = (long)sc->cfg.warmup, steps = tc->out->steps;
    if (sc->cfg.kind == ND_SCHED_COSINE && steps > 0 && W >= steps)
        diag_error(S->diag, sc->arg_loc[ND_SKEY_WARMUP], "cosine's warmup of %ld steps leaves none "
                   "of the %ld steps to decay over: make it less than steps", W, steps);
}

/* `clip = C`: the largest 2-norm of the summed gradient (torch.nn.utils.clip_grad_norm_). */
static void train_clip(Sema *S, TrainCheck *tc)
{
    const Ast *e = value_of(tc, K_CLIP);
    if (!e)
        return;
    IrNode *c = sema_const(S, S->global, e, "clip");
    if (!c)
        return;
    if (c->shape.rank != 0 || !(c->value[0] > 0) || !isfinite(c->value[0])) {
        diag_error(S->diag, e->loc, "clip must be a positive number, the largest 2-norm the "
                   "gradient may have, like clip = 1");
        return;
    }
    tc->out->clip = c->value[0];
}

/* ---- steps, log_every, files ---- */

/* `steps`: a whole number from 0 (a train that only loads and saves: issue 14) to
 * 1e15, past which a long no longer counts every step exactly as a double. */
static void train_step_count(Sema *S, const Ast *e, long *out)
{
    IrNode *c = sema_const(S, S->global, e, "steps");
    if (!c)
        return;
    double v = c->value[0];
    bool whole = c->shape.rank == 0 && v == floor(v);
    if (whole && v >= 0 && v <= 1e15)
        *out = (long)v;
    else if (whole && v > 1e15)
        diag_error(S->diag, e->loc, "steps must be at most 1e15, but this is %g", v);
    else
        diag_error(S->diag, e->loc, "steps must be a whole number, 0 or more (0: load and save "
                   "without training)");
}

static void train_counts(Sema *S, TrainCheck *tc)
{
    SemaTrain *out = tc->out;
    const Ast *steps = value_of(tc, K_STEPS), *log = value_of(tc, K_LOG);
    if (!steps && tc->mi && !tc->excused[K_STEPS])
        diag_error(S->diag, tc->dir->loc,
                   "train needs 'steps', the number of optimizer steps, like steps = 1000");
    else if (steps)
        train_step_count(S, steps, &out->steps);
    out->log_every = out->steps >= 10 ? out->steps / 10 : 1;
    if (log)
        const_count(S, log, "log_every", 1, 0, &out->log_every);
}

const char *sema_file_value(Sema *S, const Ast *entry, SrcLoc *loc)
{
    if (!entry)
        return NULL;
    *loc = entry->a->loc;
    if (entry->a->kind != AST_STR) {
        diag_error(S->diag, entry->a->loc, "%s needs a file name in quotes, like %s = \"%s\"", entry->name,
                   entry->name,
                   strcmp(entry->name, "history") == 0  ? "history.csv"
                   : strcmp(entry->name, "output") == 0 ? "out.csv"
                                                        : "model.params");
        return NULL;
    }
    return entry->a->str;
}

/* ---- the augmented model: a running cost and a clock as more states ---- */

/* m's states plus one scalar state `name` at the end, d/dt = rhs, starting at init. */
static IrModel *model_plus_state(Sema *S, const IrModel *m, const char *name, IrNode *rhs,
                                 IrNode *init)
{
    IrModel *a = arena_alloc(S->arena, sizeof *a);
    *a = *m; /* name, params (shared: same offsets), np */
    int n = m->n_states;
    a->states = arena_alloc(S->arena, sizeof(IrVar) * (size_t)(n + 1));
    a->rhs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(n + 1));
    memcpy(a->states, m->states, sizeof(IrVar) * (size_t)n);
    memcpy(a->rhs, m->rhs, sizeof(IrNode *) * (size_t)n);
    a->states[n] = (IrVar){.name = strtab_cstr(S->names, name), .loc = m->loc,
                           .shape = ir_scalar_shape(), .offset = m->ny,
                           .init_kind = IR_INIT_EXPR, .init = init};
    a->rhs[n] = rhs;
    a->n_states = n + 1;
    a->ny = m->ny + 1;
    a->adj_state = a->adj_param = NULL;
    a->jac = NULL;
    return a;
}

/* Whether the model's equations or the directive's expressions read t. */
static bool train_reads_time(const SemaTrain *tr)
{
    for (int i = 0; i < tr->model->n_states; i++)
        if (tr->model->rhs[i]->flags & IR_TIMED)
            return true;
    const IrNode *exprs[] = {tr->loss, tr->final_loss, tr->regularize};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++)
        if (exprs[i] && (exprs[i]->flags & IR_TIMED))
            return true;
    for (int k = 0; k < tr->n_metrics; k++)
        if (tr->metrics[k]->flags & IR_TIMED)
            return true;
    return false;
}

/* A time series read by t-dependent expressions gets the clock: every t in the
 * equations, the losses and the metrics becomes the state __clock, and t in an
 * init entry the sample's first observation time. The solve then runs on times
 * relative to each sample's start, which are the same for all windows of a
 * uniform grid, so windows (and trajectories) of a forced model are solved as
 * one batch. The clock integrates 1 exactly (every method's weights sum to 1),
 * and its error estimate is 0. */
static void train_clock(Sema *S, SemaTrain *out)
{
    if (!out->data || out->data->t_col < 0 || !train_reads_time(out))
        return;
    IrModel *a = out->augmented;
    IrNode *t = ir_time(S->ir), *start = ir_data(S->ir, 0, out->data->t_col, ir_scalar_shape());
    a = out->augmented = model_plus_state(S, a, "__clock", ir_scalar(S->ir, 1), start);
    out->clock_state = a->n_states - 1;
    IrNode *clock = ir_state(S->ir, out->clock_state, a->ny - 1, ir_scalar_shape());
    IrNode **rhs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)a->n_states);
    memcpy(rhs, a->rhs, sizeof(IrNode *) * (size_t)a->n_states);
    ir_replace(S->ir, a->n_states, rhs, t, clock);
    a->rhs = rhs;
    IrNode *exprs[] = {out->loss, out->final_loss, out->regularize};
    ir_replace(S->ir, 3, exprs, t, clock);
    out->loss = exprs[0];
    out->final_loss = exprs[1];
    out->regularize = exprs[2];
    ir_replace(S->ir, out->n_metrics, out->metrics, t, clock);
    if (out->init)
        ir_replace(S->ir, out->model->n_states, out->init, t, start);
}

/* ---- the directive ---- */

static void train_model_parts(Sema *S, TrainCheck *tc)
{
    SemaTrain *out = tc->out;
    train_data(S, tc);
    train_times(S, tc);
    if (!tc->mi)
        return;
    out->init = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(tc->mi->model->n_states + 1));
    /* a `data =` that failed stands for every data set, so uses of it stay quiet */
    static const SemaData broken = {.t_col = -1, .id_col = -1};
    S->train_model = tc->mi->model;
    S->train_data = tc->data_broken ? (out->data ? out->data : &broken) : out->data;
    int before = S->diag->errors;
    sema_train_encoders(S, tc->mi, out, tc->encoder, tc->n_encoder);
    sema_train_samples(S, tc->mi, out, tc->sample, tc->n_sample);
    train_exprs(S, tc);
    S->train_model = NULL;
    S->train_data = NULL;
    S->sample_scope = NULL;
    S->sample_train = NULL;
    /* What is missing, once the model, the data and the expressions are good:
     * `loss = (x - obs.x)^2` without `data = obs` is one mistake, not four. */
    if (!tc->data_broken && S->diag->errors == before)
        train_rules(S, tc);
    out->augmented = out->model;
    out->cost_state = out->clock_state = -1;
    /* a model with errors may lack equations (rhs NULL): nothing is built on it */
    if (S->diag->errors != before || tc->mi->broken)
        return;
    if (out->regularize) {
        out->augmented = model_plus_state(S, out->model, "__cost", out->regularize,
                                          ir_scalar(S->ir, 0));
        out->cost_state = out->model->n_states;
    }
    train_clock(S, out);
}

/* The windows trap (issue 14): a window starts at its first observation, so a
 * state with no data field of its name and no `init` would restart from its
 * model's initial value at every window (a SIR fit on I alone then fits
 * beta and gamma to S and R reset to t = 0 over and over). One error naming
 * every such state and the two ways out. */
static void windows_unobserved(Sema *S, TrainCheck *tc)
{
    const IrModel *m = tc->mi->model;
    char names[256] = "";
    int n = 0, first = -1;
    size_t used = 0, last_sep = 0;
    for (int i = 0; i < m->n_states; i++) {
        if (tc->out->init[i] || strncmp(m->states[i].name, "__", 2) == 0)
            continue;
        if (first < 0)
            first = i;
        if (used < sizeof names - 40) {
            last_sep = used;
            used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s'",
                                     n ? ", " : "", m->states[i].name);
        }
        n++;
    }
    if (n == 0)
        return;
    if (n > 1) { /* 'S', 'E', 'R' -> 'S', 'E' and 'R' */
        char tail[sizeof names];
        snprintf(tail, sizeof tail, " and%s", names + last_sep + 1);
        snprintf(names + last_sep, sizeof names - last_sep, "%s", tail);
    }
    const char *name = m->states[first].name;
    diag_error(S->diag, tc->dir->loc,
               "windows start at their first observation, but data set '%s' has no field for %s %s, "
               "and init gives %s: %s would restart from the model's initial value at every window. "
               "Observe %s (a column in the data), or say where each window starts: "
               "init = { %s = ... }",
               tc->out->data->name, n > 1 ? "states" : "state", names, n > 1 ? "none of them" : "none",
               n > 1 ? "they" : "it", n > 1 ? "them" : "it", name);
    diag_note(S->diag, m->states[first].loc, "'%s' is declared here", name);
}

/* What evaluate checks beyond the loss it shares with train: a minibatch size
 * only (every sample is scored; windows would score a random part), the
 * solver, the files. */
static void evaluate_rules(Sema *S, TrainCheck *tc)
{
    SemaTrain *out = tc->out;
    if (out->batch == SEMA_BATCH_WINDOWS)
        diag_error(S->diag, value_of(tc, K_BATCH)->loc,
                   "evaluate scores every trajectory whole: windows(...) would score a random "
                   "part; remove batch");
    train_solver(S, tc);
    out->gradient = strtab_cstr(S->names, "adjoint"); /* unused: no gradient */
    out->load = sema_file_value(S, tc->seen[K_LOAD], &out->load_loc);
    out->output = sema_file_value(S, tc->seen[K_OUTPUT], &out->output_loc);
    const Ast *iw = value_of(tc, K_IWAE);
    if (iw && const_count(S, iw, "iwae", 1, 1000000, &out->iwae) && out->n_samples == 0)
        diag_error(S->diag, iw->loc, "iwae = %ld weighs draws of a sample: the evaluate needs "
                   "sample NAME ~ normal(mu, sigma)", out->iwae);
}

void sema_train_directive(Sema *S, const Ast *ast, SemaDirective *d)
{
    TrainCheck tc = {.dir = d, .out = &d->train};
    bool eval = d->kind == SEMA_EVALUATE;
    d->train.evaluate = eval;
    tc.mi = sema_directive_model(S, ast->name, name_loc_of(ast));
    d->train.model = tc.mi ? tc.mi->model : NULL;
    if (eval)
        sema_events_evaluate(S, d->train.model, d->loc);
    int before = S->diag->errors;
    collect_keys(S, ast, &tc);
    train_model_parts(S, &tc);
    train_batch(S, &tc);
    if (eval) {
        evaluate_rules(S, &tc);
        sema_encoder_solver(S, &d->train);
        return;
    }
    if (tc.mi && d->train.init && d->train.data && d->train.batch == SEMA_BATCH_WINDOWS &&
        S->diag->errors == before)
        windows_unobserved(S, &tc);
    train_solver(S, &tc);
    sema_encoder_solver(S, &d->train);
    train_gradient(S, &tc);
    sema_events_train(S, &d->train, d->loc);
    sema_verlet_train(S, &d->train, d->loc);
    sema_sde_train(S, &d->train, d->loc);
    train_optimizer(S, &tc);
    train_counts(S, &tc);
    train_schedule(S, &tc);
    schedule_span(S, &tc);
    train_clip(S, &tc);
    train_validation(S, &tc);
    d->train.history = sema_file_value(S, tc.seen[K_HISTORY], &d->train.history_loc);
    d->train.save = sema_file_value(S, tc.seen[K_SAVE], &d->train.save_loc);
    d->train.load = sema_file_value(S, tc.seen[K_LOAD], &d->train.load_loc);
    /* last, so a directive with other mistakes reports those */
    if (tc.mi && tc.mi->model->np == 0 && S->diag->errors == before)
        diag_error(S->diag, d->loc, "model '%s' has no parameters to train", tc.mi->model->name);
}
