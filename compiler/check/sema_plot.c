/* `plot "fit.png" { ... }` (docs/plot.md): checks a picture's keys and layers
 * and resolves every column it names against its source, so that a misspelt
 * column is an error of `nodec check`, not of a run that already trained for
 * minutes. A source is a data set declared before the plot, or a CSV file an
 * earlier solve (`output`) or train (`history`) writes; their columns are known
 * here, except a history's val_loss, which only the file can tell. */
#include "sema.h"

#include <string.h>
#include <strings.h>

#include "sema_internal.h"

static const char *const plot_keys[] = {"line", "points", "title", "xlabel", "ylabel",
                                        "size", "yscale", "legend"};
enum { PK_LINE, PK_POINTS, PK_TITLE, PK_XLABEL, PK_YLABEL, PK_SIZE, PK_YSCALE, PK_LEGEND, N_PLOT_KEYS };

static const char *const layer_keys[] = {"from", "x", "y", "label"};
enum { LK_FROM, LK_X, LK_Y, LK_LABEL, N_LAYER_KEYS };

/* The columns a train's history file has (tools/train.c), val_loss when the
 * train validates; the file is read again when the plot is drawn. */
static const char *const history_columns[] = {"step", "loss", "val_loss", "nfe_forward",
                                              "nfe_backward", "seconds"};

static const char *const legend_names[] = {
    [SEMA_LEGEND_TOP_RIGHT] = "top_right", [SEMA_LEGEND_TOP_LEFT] = "top_left",
    [SEMA_LEGEND_BOTTOM_RIGHT] = "bottom_right", [SEMA_LEGEND_BOTTOM_LEFT] = "bottom_left",
    [SEMA_LEGEND_NONE] = "none",
};

enum { PLOT_MIN_SIZE = 64, PLOT_MAX_SIZE = 8192 }; /* past this a picture is a mistake */

/* The columns a source has, and which of them numbers trajectories. */
typedef struct Columns {
    int n;
    const char *const *names;
    const char *group;
} Columns;

static SrcLoc key_loc(const Ast *entry)
{
    return entry->name_loc.line > 0 ? entry->name_loc : entry->loc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

/* ---- sources ---- */

static Columns solve_columns(Sema *S, const SemaSolve *s)
{
    const IrModel *m = s->model;
    const char **all = sema_state_columns(S->arena, m);
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(m->ny + 2));
    Columns c = {0, names, NULL};
    if (s->samples > 0 || s->rows) /* batched: one trajectory per sample */
        names[c.n++] = c.group = "sample";
    names[c.n++] = "t";
    int k = 0;
    for (int i = 0; i < m->n_states; i++)
        for (int e = 0; e < ir_shape_size(m->states[i].shape); e++, k++)
            if (strncmp(m->states[i].name, "__", 2) != 0) /* hidden: not in the output */
                names[c.n++] = all[k];
    return c;
}

static Columns data_columns(const SemaData *d)
{
    return (Columns){d->ncols, d->colnames, d->id_col >= 0 ? d->colnames[d->id_col] : NULL};
}

/* The earlier directive that writes file (a solve's output, a train's history). */
static bool find_writer(const SemaProgram *earlier, const char *file, SemaPlotLayer *l, Sema *S,
                        Columns *cols)
{
    for (int i = earlier->n_dirs - 1; i >= 0; i--) {
        const SemaDirective *d = &earlier->dirs[i];
        if (d->kind == SEMA_SOLVE && d->solve.model && d->solve.output &&
            strcmp(d->solve.output, file) == 0) {
            *cols = solve_columns(S, &d->solve);
            return true;
        }
        if (d->kind == SEMA_TRAIN && d->train.history && strcmp(d->train.history, file) == 0) {
            *cols = (Columns){sizeof history_columns / sizeof history_columns[0], history_columns, NULL};
            l->history = true;
            return true;
        }
    }
    return false;
}

/* The line of a later solve or train that writes file, for the note; or NULL. */
static const Ast *later_writer(const Ast *program, const Ast *plot, const char *file)
{
    int i = 0;
    while (i < program->list.n && program->list.items[i] != plot)
        i++;
    for (i++; i < program->list.n; i++) {
        const Ast *it = program->list.items[i];
        if (it->kind != AST_SOLVE && it->kind != AST_TRAIN)
            continue;
        const char *key = it->kind == AST_SOLVE ? "output" : "history";
        for (int k = 0; k < it->list.n; k++) {
            const Ast *e = it->list.items[k];
            if (e && strcmp(e->name, key) == 0 && e->a && e->a->kind == AST_STR &&
                strcmp(e->a->str, file) == 0)
                return e;
        }
    }
    return NULL;
}

static bool layer_source(Sema *S, const Ast *v, SemaPlotLayer *l, const SemaProgram *earlier,
                         const Ast *program, const Ast *plot, Columns *cols)
{
    l->from_loc = v->loc;
    if (v->kind == AST_NAME) {
        SemaData *d = sema_find_data(S, v->name);
        if (!d) {
            diag_error(S->diag, v->loc, "unknown data set '%s'", v->name);
            const char *names[64];
            int n = 0;
            for (int i = 0; i < S->datasets.n && n < 64; i++)
                names[n++] = ((SemaData *)S->datasets.items[i])->name;
            sema_suggest_among(S, v->name, v->loc, n, names);
            return false;
        }
        l->data = d;
        l->source = d->name;
        *cols = data_columns(d);
        return true;
    }
    if (v->kind != AST_STR) {
        diag_error(S->diag, v->loc,
                   "a plot reads a data set (from = obs) or a CSV file an earlier solve or train "
                   "writes (from = \"fit.csv\")");
        return false;
    }
    l->file = l->source = v->str;
    if (find_writer(earlier, v->str, l, S, cols))
        return true;
    diag_error(S->diag, v->loc,
               "no solve or train before this plot writes '%s' (with output = or history =)", v->str);
    const Ast *later = later_writer(program, plot, v->str);
    if (later)
        diag_note(S->diag, later->a->loc, "it is written here, after the plot: move the plot below");
    else
        diag_note(S->diag, v->loc, "to plot a file that exists before the run, load it with "
                                   "data NAME = csv(\"%s\")", v->str);
    return false;
}

/* ---- columns ---- */

/* A column named name, or the elements of a vector or matrix called name
 * ("y": y[0], y[1]); appended to out. Returns how many (0 after reporting). */
static int expand_column(Sema *S, const Columns *cols, const char *name, SrcLoc at,
                         const SemaPlotLayer *l, const char **out)
{
    if (sema_find_name(name, cols->n, cols->names) >= 0) {
        out[0] = name;
        return 1;
    }
    size_t len = strlen(name);
    int n = 0;
    for (int i = 0; i < cols->n; i++)
        if (strncmp(cols->names[i], name, len) == 0 && cols->names[i][len] == '[')
            out[n++] = cols->names[i];
    if (n > 0)
        return n;
    diag_error(S->diag, at, "'%s' is not a column of '%s' (its columns: %s)", name, l->source,
               sema_join(S, cols->n, cols->names, ", "));
    sema_suggest_among(S, name, at, cols->n, cols->names);
    return 0;
}

static void layer_x(Sema *S, const Ast *v, const Columns *cols, SemaPlotLayer *l)
{
    if (v->kind != AST_STR) {
        diag_error(S->diag, v->loc, "x needs one column name in quotes, like x = \"t\"");
        return;
    }
    const char **found = arena_alloc(S->arena, sizeof(char *) * (size_t)(cols->n + 1));
    int n = expand_column(S, cols, v->str, v->loc, l, found);
    if (n > 1)
        diag_error(S->diag, v->loc, "x needs one column, but '%s' has %d: name one, like x = \"%s\"",
                   v->str, n, found[0]);
    if (n == 1) {
        l->x = found[0];
        l->x_loc = v->loc;
    }
}

static void layer_y(Sema *S, const Ast *v, const Columns *cols, SemaPlotLayer *l)
{
    int n = v->kind == AST_LIST ? v->list.n : 1;
    const Ast *const *items = v->kind == AST_LIST ? (const Ast *const *)v->list.items : &v;
    l->y = arena_alloc(S->arena, sizeof(char *) * (size_t)(cols->n * n + 1));
    l->y_loc = arena_alloc(S->arena, sizeof(SrcLoc) * (size_t)(cols->n * n + 1));
    for (int i = 0; i < n; i++) {
        const Ast *e = items[i];
        if (e->kind != AST_STR) {
            diag_error(S->diag, e->loc,
                       "y needs column names in quotes, like y = \"x\" or y = [\"y[0]\", \"y[1]\"]");
            continue;
        }
        int k = expand_column(S, cols, e->str, e->loc, l, l->y + l->ny);
        for (int j = 0; j < k; j++)
            l->y_loc[l->ny + j] = e->loc;
        l->ny += k;
    }
}

/* Without x: t (a solve, a time series) or step (a history); without y: every
 * other column but the trajectory number, or a history's loss (and val_loss). */
static void layer_defaults(Sema *S, const Columns *cols, SemaPlotLayer *l, bool gave_x, bool gave_y)
{
    if (!gave_x) {
        l->x = l->history ? "step" : "t";
        l->x_loc = l->from_loc;
        if (sema_find_name(l->x, cols->n, cols->names) < 0) {
            diag_error(S->diag, l->from_loc,
                       "'%s' has no 't' column: name the column to plot along, like x = \"%s\"",
                       l->source, cols->n ? cols->names[0] : "x");
            return;
        }
    }
    if (gave_y || !l->x)
        return;
    l->y = arena_alloc(S->arena, sizeof(char *) * (size_t)(cols->n + 1));
    l->y_loc = arena_alloc(S->arena, sizeof(SrcLoc) * (size_t)(cols->n + 1));
    if (l->history) {
        l->y[l->ny++] = "loss";
        l->val_loss = strcmp(l->x, "val_loss") != 0;
    }
    for (int i = 0; !l->history && i < cols->n; i++) {
        const char *c = cols->names[i];
        if (strcmp(c, l->x) != 0 && c != cols->group && strcmp(c, "t") != 0)
            l->y[l->ny++] = c;
    }
    for (int i = 0; i < l->ny; i++)
        l->y_loc[i] = l->from_loc;
    if (l->ny == 0)
        diag_error(S->diag, l->from_loc, "'%s' has no column to plot against '%s'", l->source, l->x);
}

/* ---- layers ---- */

static int find_key(Sema *S, const Ast *e, const char *where, int n, const char *const *keys,
                    const Ast **seen, bool repeatable_first_two)
{
    int k = sema_find_name(e->name, n, keys);
    if (k < 0) {
        diag_error(S->diag, key_loc(e), "unknown key '%s' in %s (valid keys: %s)", e->name, where,
                   sema_join(S, n, keys, ", "));
        sema_suggest_among(S, e->name, key_loc(e), n, keys);
        return -1;
    }
    if (seen[k] && !(repeatable_first_two && k < 2)) {
        diag_error(S->diag, key_loc(e), "duplicate key '%s' in %s", e->name, where);
        diag_note(S->diag, key_loc(seen[k]), "the first '%s' is here", e->name);
        return -1;
    }
    seen[k] = e;
    return k;
}

static const char *text_value(Sema *S, const Ast *e)
{
    if (e->a->kind == AST_STR)
        return e->a->str;
    diag_error(S->diag, e->a->loc, "%s needs text in quotes, like %s = \"...\"", e->name, e->name);
    return NULL;
}

/* `line = obs`, `line = "fit.csv"` or `line = { from = ..., x = ..., y = ..., label = ... }`. */
static void plot_layer(Sema *S, const Ast *entry, SemaPlotLayer *l, const SemaProgram *earlier,
                       const Ast *program, const Ast *plot)
{
    const Ast *v = entry->a;
    l->mark = strcmp(entry->name, "points") == 0 ? SEMA_MARK_POINTS : SEMA_MARK_LINE;
    l->loc = v->loc;
    const Ast *seen[N_LAYER_KEYS] = {0};
    const Ast *from = v;
    if (v->kind == AST_RECORD) {
        int before = S->diag->errors;
        for (int i = 0; i < v->list.n; i++) {
            const Ast *e = v->list.items[i];
            if (e->op == '~') {
                diag_error(S->diag, e->loc, "expected '%s = value' in a plot's %s", e->name, entry->name);
                continue;
            }
            find_key(S, e, entry->name, N_LAYER_KEYS, layer_keys, seen, false);
        }
        from = seen[LK_FROM] ? seen[LK_FROM]->a : NULL;
        if (!from && S->diag->errors == before)
            diag_error(S->diag, v->loc, "%s needs 'from', the data set or file to draw, like "
                                        "{ from = obs, y = \"x\" }", entry->name);
        if (!from)
            return;
    }
    Columns cols;
    if (!layer_source(S, from, l, earlier, program, plot, &cols))
        return;
    int before = S->diag->errors;
    if (seen[LK_X])
        layer_x(S, seen[LK_X]->a, &cols, l);
    if (seen[LK_Y])
        layer_y(S, seen[LK_Y]->a, &cols, l);
    if (seen[LK_LABEL])
        l->label = text_value(S, seen[LK_LABEL]);
    l->group = cols.group;
    if (S->diag->errors == before)
        layer_defaults(S, &cols, l, seen[LK_X] != NULL, seen[LK_Y] != NULL);
}

/* ---- the plot's own keys ---- */

static void plot_size(Sema *S, const Ast *v, SemaPlot *p)
{
    IrNode *c = sema_const(S, S->global, v, "the size");
    bool ok = c && c->shape.rank == 1 && ir_shape_size(c->shape) == 2;
    for (int i = 0; ok && i < 2; i++)
        ok = c->value[i] >= PLOT_MIN_SIZE && c->value[i] <= PLOT_MAX_SIZE &&
             c->value[i] == (int)c->value[i];
    if (c && !ok) {
        diag_error(S->diag, v->loc, "size needs [width, height], whole numbers from %d to %d, like "
                                    "size = [800, 600]", PLOT_MIN_SIZE, PLOT_MAX_SIZE);
        return;
    }
    if (ok) {
        p->width = (int)c->value[0];
        p->height = (int)c->value[1];
    }
}

/* A name among names (yscale, legend): its index, or -1 after reporting. */
static int choice(Sema *S, const Ast *e, int n, const char *const *names)
{
    int k = e->a->kind == AST_NAME ? sema_find_name(e->a->name, n, names) : -1;
    if (k >= 0)
        return k;
    diag_error(S->diag, e->a->loc, "%s must be %s", e->name, sema_join(S, n, names, " or "));
    if (e->a->kind == AST_NAME)
        sema_suggest_among(S, e->a->name, e->a->loc, n, names);
    return -1;
}

static void plot_setting(Sema *S, const Ast *e, int k, SemaPlot *p, bool *scale_given)
{
    static const char *const scales[] = {"linear", "log"};
    int c;
    switch (k) {
    case PK_TITLE: p->title = text_value(S, e); break;
    case PK_XLABEL: p->xlabel = text_value(S, e); break;
    case PK_YLABEL: p->ylabel = text_value(S, e); break;
    case PK_SIZE: plot_size(S, e->a, p); break;
    case PK_YSCALE:
        if ((c = choice(S, e, 2, scales)) >= 0) {
            p->logy = c == 1;
            *scale_given = true;
        }
        break;
    case PK_LEGEND:
        if ((c = choice(S, e, SEMA_LEGEND_NONE + 1, legend_names)) >= 0)
            p->legend = (SemaPlotLegend)c;
        break;
    }
}

static void plot_output(Sema *S, const Ast *ast, SemaPlot *p)
{
    p->output = ast->str;
    p->output_loc = ast->name_loc;
    p->svg = ends_with(ast->str, ".svg");
    if (!p->svg && !ends_with(ast->str, ".png"))
        diag_error(S->diag, ast->name_loc,
                   "a plot's file ends in .png or .svg (its format), like plot \"fit.png\"");
}

void sema_plot_directive(Sema *S, const Ast *ast, SemaDirective *d, const SemaProgram *earlier,
                         const Ast *program)
{
    SemaPlot *p = &d->plot;
    p->width = 800;
    p->height = 600;
    plot_output(S, ast, p);
    p->layers = arena_alloc(S->arena, sizeof(SemaPlotLayer) * (size_t)(ast->list.n + 1));
    const Ast *seen[N_PLOT_KEYS] = {0};
    bool scale_given = false;
    for (int i = 0; i < ast->list.n; i++) {
        const Ast *e = ast->list.items[i];
        int k = find_key(S, e, "plot", N_PLOT_KEYS, plot_keys, seen, true);
        if (k == PK_LINE || k == PK_POINTS)
            plot_layer(S, e, &p->layers[p->n_layers++], earlier, program, ast);
        else if (k >= 0)
            plot_setting(S, e, k, p, &scale_given);
    }
    if (!seen[PK_LINE] && !seen[PK_POINTS])
        diag_error(S->diag, d->loc, "a plot needs something to draw: a line or points, like "
                                    "line = \"fit.csv\" or points = obs");
    /* a training history spans decades of loss: log unless told otherwise */
    bool all_history = p->n_layers > 0;
    for (int i = 0; i < p->n_layers; i++)
        all_history &= p->layers[i].history;
    if (!scale_given)
        p->logy = all_history;
}
