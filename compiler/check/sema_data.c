/* `data` directives: `data obs = csv("obs.csv")` and `data img = npy(x = "x.npy", ...)`
 * read the files while the program is checked (so the columns give the fields'
 * shapes and every mistake in them is reported before anything runs), and
 * `data obs = simulate(M, t = ..., ...)` is checked like a solve whose table the
 * runner fills later. Either way the columns are grouped into fields (`y[0]`,
 * `y[1]` -> obs.y; `x[0,7,7]` -> a rank-3 obs.x) that train blocks read as DATA
 * leaves of the IR. */
#include "sema.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_csv_read.h"
#include "nd_npy.h"
#include "sema_internal.h"

static SrcLoc name_loc_of(const Ast *a)
{
    return a->name_loc.line > 0 ? a->name_loc : a->loc;
}

SemaData *sema_find_data(Sema *S, const char *name)
{
    for (int i = S->datasets.n - 1; i >= 0; i--) {
        SemaData *d = S->datasets.items[i];
        if (d->name == name)
            return d;
    }
    return NULL;
}

const SemaField *sema_data_find_field(const SemaData *d, const char *name)
{
    for (int i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].name, name) == 0)
            return &d->fields[i];
    return NULL;
}

/* ---- column names: x, y[0], W[0,1], x[c,i,j], x[a,b,c,d] ---- */

typedef struct ColName {
    const char *base;      /* interned */
    int rank;              /* 0: x, 1: y[i], 2: W[i,j], 3: x[c,i,j], 4: x[a,b,c,d] */
    int idx[IR_MAX_RANK];  /* the indices, 0 past rank */
} ColName;

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static const char *read_index(const char *p, int *out)
{
    p = skip_spaces(p);
    if (!isdigit((unsigned char)*p))
        return NULL;
    long v = 0;
    while (isdigit((unsigned char)*p) && v < 100000000)
        v = 10 * v + (*p++ - '0');
    *out = (int)v;
    return skip_spaces(p);
}

/* 1 when name is an identifier, optionally followed by one to four indices in
 * brackets: [i], [i,j], [c,i,j] or [a,b,c,d]. */
static int parse_colname(Sema *S, const char *name, ColName *out)
{
    const char *p = name;
    if (!isalpha((unsigned char)*p) && *p != '_')
        return 0;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    out->base = strtab_intern(S->names, name, (size_t)(p - name));
    *out = (ColName){.base = out->base};
    if (*p == '\0')
        return 1;
    if (*p++ != '[')
        return 0;
    for (;;) {
        if (out->rank == IR_MAX_RANK || !(p = read_index(p, &out->idx[out->rank])))
            return 0;
        out->rank++;
        if (*p != ',')
            break;
        p++;
    }
    return p[0] == ']' && p[1] == '\0';
}

/* ---- grouping columns into fields ---- */

/* Where the data came from, for errors about its contents: "obs.csv:1: ..." at
 * the file name in the source. */
typedef struct DataSrc {
    SrcLoc at;
    const char *path;
} DataSrc;

typedef struct Group {
    const char *base;
    int rank;
    int dim[IR_MAX_RANK]; /* the extent of each index (1 past rank) */
    int size;             /* elements, once group_sizes has checked them */
    int first;            /* column that started the group */
    int *col;             /* size column indices, row-major, -1 where missing */
} Group;

static Group *find_group(Group *groups, int n, const char *base)
{
    for (int i = 0; i < n; i++)
        if (groups[i].base == base)
            return &groups[i];
    return NULL;
}

static void extent(const ColName *cn, Group *g)
{
    for (int a = 0; a < cn->rank; a++)
        if (cn->idx[a] + 1 > g->dim[a])
            g->dim[a] = cn->idx[a] + 1;
}

/* "3 x 3", "1 x 8 x 8": a group's extents, for messages. */
static const char *dims_text(const Group *g, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int a = 0; a < g->rank && n < len; a++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", a ? " x " : "", g->dim[a]);
    return buf;
}

/* A field with more elements than the file has columns must have gaps (and is
 * refused before its table of columns is allocated); one past the limit of a
 * value is refused by name. The shapes of rank 3 and 4 are counted against the
 * columns first, as their product could overflow the shape's rows x cols. */
static int group_sizes(Sema *S, const SemaData *d, const DataSrc *src, Group *groups, int n)
{
    for (int k = 0; k < n; k++) {
        Group *g = &groups[k];
        int64_t size = 1;
        for (int a = 0; a < g->rank; a++)
            size *= size <= d->ncols ? g->dim[a] : 1;
        char what[300], dims[64];
        snprintf(what, sizeof what, "%s:1: field '%s'", src->path, g->base);
        int cols = g->rank <= 1 ? 1 : g->rank == 2 ? g->dim[1] : (int)(size / g->dim[0]);
        if ((g->rank <= 2 || size <= d->ncols) &&
            !sema_size_ok(S, src->at, what, (IrShape){.rank = g->rank, .rows = g->dim[0], .cols = cols}))
            return 0;
        if (size > d->ncols) {
            diag_error(S->diag, src->at,
                       "%s:1: field '%s' is %s, but the file has %d columns: the columns "
                       "of '%s' must be numbered from 0 without gaps",
                       src->path, g->base, dims_text(g, dims, sizeof dims), d->ncols, g->base);
            return 0;
        }
        g->size = (int)size;
    }
    return 1;
}

/* First pass: every column's group, rank and extent (mixing ranks is an error). */
static int group_extents(Sema *S, const SemaData *d, const DataSrc *src, ColName *cn, Group *groups,
                         int *ngroups)
{
    for (int c = 0; c < d->ncols; c++) {
        if (c == d->t_col || c == d->id_col)
            continue;
        if (!parse_colname(S, d->colnames[c], &cn[c])) {
            diag_error(S->diag, src->at,
                       "%s:1: column '%s' is not a usable name (expected a name like x, y[0], W[0,1] or "
                       "x[0,1,2])",
                       src->path, d->colnames[c]);
            return 0;
        }
        /* t[0] beside a t column (or id[0] beside id) would be a field obs.t cannot reach */
        int taken = strcmp(cn[c].base, "t") == 0 ? d->t_col : strcmp(cn[c].base, "id") == 0 ? d->id_col : -1;
        if (taken >= 0) {
            diag_error(S->diag, src->at, "%s:1: column '%s' would make a field '%s', but '%s' is the %s "
                       "column; rename it", src->path, d->colnames[c], cn[c].base, cn[c].base,
                       taken == d->t_col ? "time" : "trajectory id");
            return 0;
        }
        int past = 0; /* an index past the columns: more elements than columns */
        for (int a = 0; a < cn[c].rank; a++)
            past |= cn[c].idx[a] >= d->ncols;
        if (past) {
            diag_error(S->diag, src->at, "%s:1: column '%s': the columns of '%s' must be numbered "
                       "from 0 without gaps", src->path, d->colnames[c], cn[c].base);
            return 0;
        }
        Group *g = find_group(groups, *ngroups, cn[c].base);
        if (!g) {
            g = &groups[(*ngroups)++];
            *g = (Group){.base = cn[c].base, .rank = cn[c].rank, .dim = {1, 1, 1, 1}, .first = c};
        } else if (g->rank != cn[c].rank) {
            diag_error(S->diag, src->at, "%s:1: column '%s' does not fit with column '%s' (a field is "
                       "one scalar column, or vector columns %s[i], or matrix columns %s[i,j], or "
                       "tensor columns %s[c,i,j] or %s[a,b,c,d])",
                       src->path, d->colnames[c], d->colnames[g->first], g->base, g->base, g->base,
                       g->base);
            return 0;
        }
        extent(&cn[c], g);
    }
    return group_sizes(S, d, src, groups, *ngroups);
}

/* The row-major position of an element in its group. */
static int element_index(const Group *g, const int *idx)
{
    int e = 0;
    for (int a = 0; a < g->rank; a++)
        e = e * g->dim[a] + idx[a];
    return e;
}

/* "y[2]", "x[0,7,7]": the column name of element e of g. */
static const char *element_name(const Group *g, int e, char *buf, size_t len)
{
    int idx[IR_MAX_RANK];
    for (int a = g->rank - 1; a >= 0; a--) {
        idx[a] = e % g->dim[a];
        e /= g->dim[a];
    }
    size_t n = (size_t)snprintf(buf, len, "%s[", g->base);
    for (int a = 0; a < g->rank && n < len; a++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", a ? "," : "", idx[a]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
    return buf;
}

/* Second pass: each element of each group names exactly one column. */
static int group_fill(Sema *S, const SemaData *d, const DataSrc *src, const ColName *cn, Group *groups,
                      int ngroups)
{
    for (int k = 0; k < ngroups; k++) {
        Group *g = &groups[k];
        g->col = arena_alloc(S->arena, sizeof(int) * (size_t)g->size);
        for (int e = 0; e < g->size; e++)
            g->col[e] = -1;
    }
    for (int c = 0; c < d->ncols; c++) {
        if (c == d->t_col || c == d->id_col)
            continue;
        Group *g = find_group(groups, ngroups, cn[c].base);
        int *slot = &g->col[element_index(g, cn[c].idx)];
        if (*slot >= 0) {
            diag_error(S->diag, src->at, "%s:1: columns '%s' and '%s' name the same element", src->path,
                       d->colnames[*slot], d->colnames[c]);
            return 0;
        }
        *slot = c;
    }
    for (int k = 0; k < ngroups; k++) {
        const Group *g = &groups[k];
        for (int e = 0; e < g->size; e++) {
            if (g->col[e] >= 0)
                continue;
            char miss[128], last[128];
            diag_error(S->diag, src->at,
                       "%s:1: column '%s' is missing: the columns of '%s' must be numbered from 0 "
                       "without gaps, up to %s",
                       src->path, element_name(g, e, miss, sizeof miss), g->base,
                       element_name(g, g->size - 1, last, sizeof last));
            return 0;
        }
    }
    return 1;
}

static IrShape group_shape(const Group *g)
{
    return ir_tensor_shape(g->rank, g->dim);
}

static int scattered(const Group *g)
{
    for (int e = 1; e < g->size; e++)
        if (g->col[e] != g->col[0] + e)
            return 1;
    return 0;
}

/* A tensor field (rank 3 or 4) is one block of a row: when its columns are out of
 * order in the file, the table's columns are put in order, the other columns first
 * as they were, then each scattered tensor's, row-major. (A vector's or matrix's
 * scattered columns are gathered in the IR instead.) */
static void tensors_in_order(Sema *S, SemaData *d, Group *groups, int ngroups)
{
    char *moved = arena_alloc(S->arena, (size_t)d->ncols + 1);
    memset(moved, 0, (size_t)d->ncols + 1);
    int any = 0;
    for (int k = 0; k < ngroups; k++)
        if (groups[k].rank > 2 && scattered(&groups[k])) {
            any = 1;
            for (int e = 0; e < groups[k].size; e++)
                moved[groups[k].col[e]] = 1;
        }
    if (!any)
        return;
    int *order = arena_alloc(S->arena, sizeof(int) * (size_t)d->ncols); /* new column -> old */
    int *where = arena_alloc(S->arena, sizeof(int) * (size_t)d->ncols); /* old column -> new */
    int n = 0;
    for (int c = 0; c < d->ncols; c++)
        if (!moved[c])
            order[n++] = c;
    for (int k = 0; k < ngroups; k++)
        if (groups[k].rank > 2 && scattered(&groups[k]))
            for (int e = 0; e < groups[k].size; e++)
                order[n++] = groups[k].col[e];
    for (int c = 0; c < d->ncols; c++)
        where[order[c]] = c;
    size_t nv = (size_t)d->nrows * (size_t)d->ncols;
    double *values = arena_alloc(S->arena, sizeof(double) * (nv ? nv : 1));
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(d->ncols + 1));
    for (int c = 0; c < d->ncols; c++) {
        names[c] = d->colnames[order[c]];
        for (int r = 0; r < d->nrows; r++)
            values[(size_t)r * (size_t)d->ncols + (size_t)c] = d->values[(size_t)r * (size_t)d->ncols + (size_t)order[c]];
    }
    d->values = values;
    d->colnames = names;
    if (d->t_col >= 0)
        d->t_col = where[d->t_col];
    if (d->id_col >= 0)
        d->id_col = where[d->id_col];
    for (int k = 0; k < ngroups; k++)
        for (int e = 0; e < groups[k].size; e++)
            groups[k].col[e] = where[groups[k].col[e]];
}

/* The flat form: csv("f.csv", x = [1, 8, 8]) gives the vector field x[0] ... x[63] the
 * shape [1, 8, 8], its elements row-major in the order of their indices. */
static int group_reshape(Sema *S, const DataSrc *src, const Ast *arg, Group *groups, int ngroups)
{
    Group *g = NULL;
    for (int k = 0; k < ngroups && !g; k++)
        if (strcmp(groups[k].base, arg->name) == 0)
            g = &groups[k];
    if (!g || g->rank != 1) {
        char why[64];
        snprintf(why, sizeof why, !g ? "there are none" : g->rank == 0 ? "it is one scalar column"
                                                      : "its columns have %d indices", g ? g->rank : 0);
        diag_error(S->diag, name_loc_of(arg), "%s:1: a shape for '%s' needs vector columns %s[0], %s[1], "
                   "... in the file, but %s", src->path, arg->name, arg->name, arg->name, why);
        return 0;
    }
    const Ast *dims = arg->a;
    int dim[IR_MAX_RANK] = {1, 1, 1, 1};
    int64_t size = 1;
    for (int a = 0; a < dims->list.n; a++) {
        dim[a] = (int)dims->list.items[a]->num;
        size *= dim[a];
    }
    if (size != g->size) {
        diag_error(S->diag, arg->a->loc, "%s:1: a shape of %lld elements for '%s', whose columns %s[0] "
                   "... %s[%d] hold %d", src->path, (long long)size, arg->name, arg->name, arg->name,
                   g->size - 1, g->size);
        return 0;
    }
    g->rank = dims->list.n;
    memcpy(g->dim, dim, sizeof dim);
    return 1;
}

/* Groups the columns into fields; shapes (csv's named arguments, or NULL) reshape
 * vector fields. */
static int data_fields(Sema *S, SemaData *d, const DataSrc *src, const Ast *shapes)
{
    ColName *cn = arena_alloc(S->arena, sizeof(ColName) * (size_t)(d->ncols + 1));
    Group *groups = arena_alloc(S->arena, sizeof(Group) * (size_t)(d->ncols + 1));
    int ngroups = 0;
    if (!group_extents(S, d, src, cn, groups, &ngroups) || !group_fill(S, d, src, cn, groups, ngroups))
        return 0;
    for (int i = 1; shapes && i < shapes->list.n; i++)
        if (!group_reshape(S, src, shapes->list.items[i], groups, ngroups))
            return 0;
    if (d->values)
        tensors_in_order(S, d, groups, ngroups);
    d->n_fields = ngroups;
    d->fields = arena_alloc(S->arena, sizeof(SemaField) * (size_t)(ngroups + 1));
    for (int k = 0; k < ngroups; k++)
        d->fields[k] = (SemaField){.name = groups[k].base, .shape = group_shape(&groups[k]),
                                   .cols = groups[k].col};
    return 1;
}

/* ---- the field's IR ---- */

IrNode *sema_data_field_ir(Sema *S, const SemaField *f)
{
    int n = ir_shape_size(f->shape);
    int contiguous = 1;
    for (int e = 1; e < n; e++)
        contiguous &= f->cols[e] == f->cols[0] + e;
    if (contiguous)
        return ir_data(S->ir, 0, f->cols[0], f->shape);
    /* columns out of order in the file: gather scalar leaves (a tensor's are in
       order: tensors_in_order) */
    IrShape one = ir_scalar_shape();
    int rows = f->shape.rank == 2 ? f->shape.rows : 1, cols = f->shape.rank == 2 ? f->shape.cols : n;
    IrNode **row = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)cols);
    IrNode **stack = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            row[c] = ir_data(S->ir, 0, f->cols[r * cols + c], one);
        stack[r] = ir_concat(S->ir, cols, row);
    }
    return f->shape.rank == 2 ? ir_stack(S->ir, rows, stack) : stack[0];
}

static const char *fields_list(Sema *S, const SemaData *d)
{
    size_t cap = 16;
    for (int i = 0; i < d->n_fields; i++)
        cap += strlen(d->fields[i].name) + 2;
    char *buf = arena_alloc(S->arena, cap);
    size_t n = 0;
    if (d->t_col >= 0)
        n += (size_t)snprintf(buf + n, cap - n, "t");
    for (int i = 0; i < d->n_fields; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", d->fields[i].name);
    return buf;
}

static Val unknown_field(Sema *S, const SemaData *d, const Ast *e)
{
    SrcLoc at = name_loc_of(e);
    diag_error(S->diag, at, "data set '%s' has no field '%s' (its fields: %s)", d->name, e->name,
               fields_list(S, d));
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(d->n_fields + 1));
    for (int i = 0; i < d->n_fields; i++)
        names[i] = d->fields[i].name;
    sema_suggest_among(S, e->name, at, d->n_fields, names);
    return val_err();
}

/* The base of e is not in scope: it should be this train's data set. */
static const SemaData *field_base(Sema *S, const Ast *e)
{
    const char *base = e->a->name;
    const SemaData *d = S->train_data;
    if (d && (d->name == base || d->ncols == 0)) /* ncols 0: it failed, already reported */
        return d;
    if (sema_find_data(S, base)) {
        if (d)
            diag_error(S->diag, e->a->loc, "'%s' is not the data of this train, which uses '%s'", base,
                       d->name);
        else
            diag_error(S->diag, e->a->loc, "'%s' is a data set, but this train has no `data = %s`", base,
                       base);
    } else {
        diag_error(S->diag, e->a->loc, "unknown name '%s'", base);
    }
    return NULL;
}

Val sema_data_field(Sema *S, const Ast *e)
{
    const SemaData *d = field_base(S, e);
    if (!d)
        return val_err();
    if (d->ncols == 0) /* the data directive already reported its error */
        return val_err();
    if (!(S->allow & ALLOW_DATA)) {
        diag_error(S->diag, e->loc, "%s cannot use data ('%s.%s')", S->context, d->name, e->name);
        return val_err();
    }
    if (strcmp(e->name, "t") == 0 && d->t_col >= 0)
        return val_node(ir_data(S->ir, 0, d->t_col, ir_scalar_shape()));
    if (strcmp(e->name, "id") == 0 && d->id_col >= 0)
        return val_node(ir_data(S->ir, 0, d->id_col, ir_scalar_shape()));
    const SemaField *f = sema_data_find_field(d, e->name);
    if (!f)
        return unknown_field(S, d, e);
    return val_node(sema_data_field_ir(S, f));
}

/* ---- csv("file.csv") ---- */

/* The file named relative to the folder of the .node file that names it. */
static const char *data_path(Sema *S, const Ast *str)
{
    const char *file = str->loc.file ? str->loc.file->path : NULL;
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (str->str[0] == '/' || !slash)
        return str->str;
    size_t dir = (size_t)(slash - file) + 1, len = strlen(str->str);
    char *path = arena_alloc(S->arena, dir + len + 1);
    memcpy(path, file, dir);
    memcpy(path + dir, str->str, len + 1);
    return path;
}

/* A trajectory's id and the row its run of rows starts at. */
typedef struct IdRun {
    double id;
    int row;
} IdRun;

static int idrun_cmp(const void *pa, const void *pb)
{
    const IdRun *a = pa, *b = pb;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* The first row (0-based) that starts a run of an id seen in an earlier run,
 * or -1: the runs sorted by (id, row), so the check costs runs log runs, not
 * rows times ids. Ids are the reader's finite numbers. */
static int repeated_run(Sema *S, const SemaData *d)
{
    IdRun *runs = arena_alloc(S->arena, sizeof *runs * (size_t)(d->nrows + 1));
    int n = 0;
    for (int r = 0; r < d->nrows; r++) {
        double id = d->values[(size_t)r * (size_t)d->ncols + (size_t)d->id_col];
        if (r == 0 || id != runs[n - 1].id)
            runs[n++] = (IdRun){id, r};
    }
    qsort(runs, (size_t)n, sizeof *runs, idrun_cmp);
    int first = -1;
    for (int i = 1; i < n; i++)
        if (runs[i].id == runs[i - 1].id && (first < 0 || runs[i].row < first))
            first = runs[i].row;
    return first;
}

/* Times strictly increase along each trajectory (rows of one id are contiguous). */
static int check_times(Sema *S, const SemaData *d, const DataSrc *src)
{
    int again = d->id_col >= 0 ? repeated_run(S, d) : -1;
    for (int r = 1; r < d->nrows; r++) {
        const double *prev = d->values + (size_t)(r - 1) * (size_t)d->ncols;
        const double *row = prev + d->ncols;
        if (r == again) {
            diag_error(S->diag, src->at,
                       "%s:%d: the rows of trajectory id %g must be together, but it appeared "
                       "before another trajectory",
                       src->path, r + 2, row[d->id_col]);
            return 0;
        }
        if (d->id_col >= 0 && row[d->id_col] != prev[d->id_col])
            continue;
        if (!(row[d->t_col] > prev[d->t_col])) {
            diag_error(S->diag, src->at,
                       "%s:%d: the times must be strictly increasing, but t = %g follows t = %g",
                       src->path, r + 2, row[d->t_col], prev[d->t_col]);
            return 0;
        }
    }
    return 1;
}

/* Copies the reader's table into the arena (the compilation owns it from here). */
static void data_copy(Sema *S, SemaData *d, const NdTable *t)
{
    d->ncols = t->ncols;
    d->nrows = t->nrows;
    d->colnames = arena_alloc(S->arena, sizeof(char *) * (size_t)(t->ncols + 1));
    for (int c = 0; c < t->ncols; c++)
        d->colnames[c] = arena_strndup(S->arena, t->names[c], strlen(t->names[c]));
    size_t n = (size_t)t->nrows * (size_t)t->ncols;
    d->values = arena_alloc(S->arena, sizeof(double) * (n ? n : 1));
    memcpy(d->values, t->values, sizeof(double) * n);
    d->t_col = nd_table_column(t, "t");
    d->id_col = nd_table_column(t, "id");
}

/* csv's arguments after the file: shapes of whole numbers, x = [1, 8, 8], each key once. */
static int csv_shapes(Sema *S, const Ast *call)
{
    for (int i = 1; i < call->list.n; i++) {
        const Ast *arg = call->list.items[i], *v = arg->kind == AST_ARG ? arg->a : NULL;
        int ok = v && v->kind == AST_LIST && v->list.n >= 1 && v->list.n <= IR_MAX_RANK;
        for (int a = 0; ok && a < v->list.n; a++) {
            const Ast *e = v->list.items[a];
            ok = e->kind == AST_NUM && e->num >= 1 && e->num <= IR_MAX_ELEMENTS && e->num == (int)e->num;
        }
        if (!ok) {
            diag_error(S->diag, arg->loc, "after the file, csv takes shapes for vector fields: one to %d "
                       "whole numbers, like csv(\"digits.csv\", x = [1, 8, 8])", IR_MAX_RANK);
            return 0;
        }
        for (int k = 1; k < i; k++)
            if (strcmp(call->list.items[k]->name, arg->name) == 0) {
                diag_error(S->diag, name_loc_of(arg), "duplicate argument '%s'", arg->name);
                return 0;
            }
    }
    return 1;
}

static int data_csv(Sema *S, const Ast *call, SemaData *d)
{
    if (call->list.n < 1 || call->list.items[0]->kind != AST_STR) {
        diag_error(S->diag, call->loc, "csv needs one file name in quotes, like csv(\"obs.csv\")");
        return 0;
    }
    if (!csv_shapes(S, call))
        return 0;
    const Ast *str = call->list.items[0];
    DataSrc src = {.at = str->loc, .path = data_path(S, str)};
    char err[512];
    int line = 0;
    NdTable *t = nd_table_read_csv(src.path, err, sizeof err, &line);
    if (!t) {
        diag_error(S->diag, str->loc, "%s", err);
        return 0;
    }
    data_copy(S, d, t);
    nd_table_free(t);
    if (d->id_col >= 0 && d->t_col < 0) {
        diag_error(S->diag, str->loc, "%s:1: an 'id' column numbers the trajectories of a time series, "
                   "but there is no 't' column", src.path);
        return 0;
    }
    if (d->t_col >= 0 && !check_times(S, d, &src))
        return 0;
    return data_fields(S, d, &src, call);
}

/* ---- npy(x = "images.npy", label = "labels.npy") ---- */

/* One key's array, read; its first axis is the sample. */
typedef struct NpyKey {
    const Ast *arg;
    DataSrc src;
    NdNpy *a;
    int per;     /* values per sample */
    int first;   /* its first column in the table */
} NpyKey;

static const char npy_usage[] = "npy takes named files, like npy(x = \"images.npy\", label = \"labels.npy\")";

/* The named arguments, each a file name in quotes, each key once. */
static int npy_args(Sema *S, const Ast *call, NpyKey *keys)
{
    if (call->list.n == 0) {
        diag_error(S->diag, call->loc, "%s", npy_usage);
        return 0;
    }
    for (int i = 0; i < call->list.n; i++) {
        const Ast *arg = call->list.items[i];
        if (arg->kind != AST_ARG || !arg->a || arg->a->kind != AST_STR) {
            diag_error(S->diag, arg->loc, "%s", npy_usage);
            return 0;
        }
        if (strcmp(arg->name, "t") == 0 || strcmp(arg->name, "id") == 0) {
            diag_error(S->diag, name_loc_of(arg), "npy(...) reads samples, not time series: '%s' would "
                       "be the %s column of one; give time series as csv(...)", arg->name,
                       arg->name[0] == 't' ? "time" : "trajectory id");
            return 0;
        }
        for (int k = 0; k < i; k++)
            if (keys[k].arg->name == arg->name) {
                diag_error(S->diag, name_loc_of(arg), "duplicate argument '%s'", arg->name);
                return 0;
            }
        keys[i] = (NpyKey){.arg = arg, .src = {.at = arg->a->loc, .path = data_path(S, arg->a)}};
    }
    return 1;
}

/* Reads key k's file: an array of at least one axis, none of them empty, whose first
 * axis has as many samples as the first file's. */
static int npy_key(Sema *S, NpyKey *keys, int k)
{
    NpyKey *key = &keys[k];
    char err[512], shape[256];
    key->a = nd_npy_read(key->src.path, err, sizeof err);
    if (!key->a) {
        diag_error(S->diag, key->src.at, "%s", err);
        return 0;
    }
    const NdNpy *a = key->a;
    if (a->ndim == 0) {
        diag_error(S->diag, key->src.at, "%s: the array is a single value (shape ()), but npy data needs "
                   "one whose first axis is the sample", key->src.path);
        return 0;
    }
    if (a->count == 0) {
        diag_error(S->diag, key->src.at, "%s: the array is empty (shape %s)", key->src.path,
                   nd_npy_shape_text(a, shape, sizeof shape));
        return 0;
    }
    if (a->ndim - 1 > IR_MAX_RANK) {
        diag_error(S->diag, key->src.at, "%s: the samples of shape %s have %d axes, but a field has "
                   "at most %d", key->src.path, nd_npy_shape_text(a, shape, sizeof shape), a->ndim - 1,
                   IR_MAX_RANK);
        return 0;
    }
    if (k > 0 && a->shape[0] != keys[0].a->shape[0]) {
        diag_error(S->diag, key->src.at, "%s: %lld samples, but %s has %lld: the files of npy(...) "
                   "hold the same samples, one per index of their first axis", key->src.path,
                   a->shape[0], keys[0].src.path, keys[0].a->shape[0]);
        return 0;
    }
    key->per = (int)(a->count / (size_t)a->shape[0]);
    return 1;
}

/* The column names a CSV would have: label, or y[3], or x[0,7,7]. */
static const char *npy_colname(Sema *S, const NpyKey *key, int e)
{
    const NdNpy *a = key->a;
    int idx[IR_MAX_RANK], rank = a->ndim - 1;
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = e % (int)a->shape[d + 1];
        e /= (int)a->shape[d + 1];
    }
    size_t cap = strlen(key->arg->name) + IR_MAX_RANK * 12 + 4;
    char *buf = arena_alloc(S->arena, cap);
    size_t n = (size_t)snprintf(buf, cap, "%s", key->arg->name);
    for (int d = 0; d < rank; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%d", d ? "," : "[", idx[d]);
    if (rank > 0)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* The table a CSV with those columns would give: the keys in order, each sample's
 * values row-major. */
static void npy_table(Sema *S, SemaData *d, const NpyKey *keys, int nkeys)
{
    d->nrows = (int)keys[0].a->shape[0];
    d->ncols = 0;
    for (int k = 0; k < nkeys; k++)
        d->ncols += keys[k].per;
    d->colnames = arena_alloc(S->arena, sizeof(char *) * (size_t)(d->ncols + 1));
    size_t n = (size_t)d->nrows * (size_t)d->ncols;
    d->values = arena_alloc(S->arena, sizeof(double) * (n ? n : 1));
    for (int k = 0, first = 0; k < nkeys; first += keys[k++].per) {
        for (int e = 0; e < keys[k].per; e++)
            d->colnames[first + e] = npy_colname(S, &keys[k], e);
        for (int r = 0; r < d->nrows; r++)
            memcpy(d->values + (size_t)r * (size_t)d->ncols + (size_t)first,
                   keys[k].a->values + (size_t)r * (size_t)keys[k].per, sizeof(double) * (size_t)keys[k].per);
    }
    d->t_col = d->id_col = -1; /* npy_args refuses keys t and id */
}

static int data_npy(Sema *S, const Ast *call, SemaData *d)
{
    NpyKey *keys = arena_alloc(S->arena, sizeof(NpyKey) * (size_t)(call->list.n + 1));
    int ok = npy_args(S, call, keys), nkeys = 0;
    int64_t ncols = 0;
    for (; ok && nkeys < call->list.n; nkeys++) {
        ok = npy_key(S, keys, nkeys);
        ncols += ok ? keys[nkeys].per : 0;
    }
    if (ok && ncols > IR_MAX_ELEMENTS) {
        diag_error(S->diag, call->loc, "the files of npy(...) hold %lld values per sample, more than "
                   "the limit of %d", (long long)ncols, IR_MAX_ELEMENTS);
        ok = 0;
    }
    if (ok)
        npy_table(S, d, keys, nkeys);
    for (int k = 0; k < nkeys; k++)
        nd_npy_free(keys[k].a);
    if (!ok)
        return 0;
    DataSrc src = {.at = call->loc, .path = "npy"};
    return data_fields(S, d, &src, NULL);
}

/* ---- simulate(Model, t = ..., init = {...}, solver = ..., samples = N, ...) ---- */

enum { SIM_T, SIM_INIT, SIM_SOLVER, SIM_SAMPLES, SIM_KEEP, SIM_NOISE, SIM_OUTPUT, N_SIM_KEYS };
static const char *const simulate_keys[N_SIM_KEYS] = {"t", "init", "solver", "samples", "keep",
                                                      "noise", "output"};

/* The most values of a simulation's solve (trajectories x times x columns): the
 * runner's batch limit (RUN_MAX_BATCH_ELEMENTS, 16 GiB of doubles), refused here
 * so that the table's rows fit an int and check never allocates past it. */
#define SIM_MAX_VALUES (1ll << 31)

/* `noise = s`: one finite number >= 0. */
static void simulate_noise(Sema *S, const Ast *e, SemaData *d)
{
    IrNode *c = sema_const(S, S->global, e, "the noise");
    if (!c)
        return;
    if (c->shape.rank != 0 || !isfinite(c->value[0]) || c->value[0] < 0) {
        diag_error(S->diag, e->loc, "noise is the standard deviation of the noise added to each "
                   "state value: one finite number >= 0, like noise = 0.01");
        return;
    }
    d->noisy = true;
    d->noise = c->value[0];
}

static void simulate_value(Sema *S, ModelInfo *mi, int k, const Ast *arg, SemaData *d)
{
    SemaSolve *sim = &d->sim;
    switch (k) {
    case SIM_T: sema_solve_times(S, mi->scope, arg->a, sim); break;
    case SIM_INIT: sema_init_draws(S, mi, arg->a, sim->init, sim->draw); break;
    case SIM_SOLVER: sema_solver_call(S, arg->a, &sim->solver); break;
    case SIM_SAMPLES:
        sim->samples_loc = arg->a->loc;
        if (!sema_const_int(S, S->global, arg->a, "the number of samples", 1, 10000000, &sim->samples))
            sim->samples = 0;
        break;
    case SIM_KEEP:
        if (!sema_const_int(S, S->global, arg->a, "keep", 1, 100000000, &d->keep))
            d->keep = 0;
        break;
    case SIM_NOISE: simulate_noise(S, arg->a, d); break;
    case SIM_OUTPUT: sim->output = sema_file_value(S, arg, &sim->output_loc); break;
    }
}

/* excused[k]: a misspelled or unnamed argument may have meant k, so k is not
 * also "missing" (an unnamed one is most likely the times). */
static int simulate_arg(Sema *S, ModelInfo *mi, const Ast *arg, const Ast **seen, char *excused,
                        SemaData *d)
{
    const char *keys = sema_join(S, N_SIM_KEYS, simulate_keys, " and ");
    if (arg->kind != AST_ARG) {
        diag_error(S->diag, arg->loc, "simulate takes the model, then named arguments %s", keys);
        excused[SIM_T] = 1;
        return 0;
    }
    int k = sema_find_name(arg->name, N_SIM_KEYS, simulate_keys);
    if (k < 0) {
        diag_error(S->diag, name_loc_of(arg), "unknown argument '%s' for simulate (expected %s)",
                   arg->name, sema_join(S, N_SIM_KEYS, simulate_keys, " or "));
        sema_suggest_among(S, arg->name, name_loc_of(arg), N_SIM_KEYS, simulate_keys);
        int meant = sema_closest(arg->name, N_SIM_KEYS, simulate_keys);
        if (meant >= 0)
            excused[meant] = 1;
        return 0;
    }
    if (seen[k]) {
        diag_error(S->diag, name_loc_of(arg), "duplicate argument '%s'", arg->name);
        return 0;
    }
    seen[k] = arg;
    simulate_value(S, mi, k, arg, d);
    return 1;
}

/* samples, draws, keep and noise: which combinations make a data set. N
 * trajectories must differ: by a draw, a Brownian path, their kept times or
 * their noise. */
static void simulate_rules(Sema *S, const Ast *const *seen, SemaData *d)
{
    const SemaSolve *sim = &d->sim;
    int first, drawn = sema_solve_draws(sim, &first);
    const Ast *samples = seen[SIM_SAMPLES], *keep = seen[SIM_KEEP];
    if (first >= 0 && !samples)
        sema_draw_needs_samples(S, seen[SIM_INIT]->a, sim, first);
    if (keep && !samples)
        diag_error(S->diag, name_loc_of(keep), "keep chooses each trajectory's times, so it needs "
                   "samples = N (samples = 1 for one trajectory)");
    if (keep && d->keep > sim->nt)
        diag_error(S->diag, keep->a->loc, "keep = %d is more than the %d times of t (each "
                   "trajectory keeps K of them, 1 <= K <= %d)", d->keep, sim->nt, sim->nt);
    if (samples && sim->samples > 1 && !drawn && !keep && !d->noisy && !sim->model->diffusion)
        diag_error(S->diag, name_loc_of(samples),
                   "samples = %d would simulate the same trajectory %d times: draw an initial "
                   "state in init (like init = { %s ~ uniform(-1, 1) }), or add keep or noise",
                   sim->samples, sim->samples,
                   sim->model->n_states ? sim->model->states[0].name : "x");
}

/* The table the runner fills: [id,] t, then the model's state columns; the ids
 * (trajectory b's K rows) are known now, the rest is NaN until the directive
 * runs. */
static int simulate_table(Sema *S, const Ast *call, SemaData *d)
{
    const IrModel *m = d->sim.model;
    int N = d->sim.samples, K = d->keep ? d->keep : d->sim.nt, first = N > 0 ? 2 : 1;
    double values = (double)(N > 0 ? N : 1) * d->sim.nt * (first + m->ny);
    if (values > (double)SIM_MAX_VALUES) {
        diag_error(S->diag, call->loc, "this simulation would hold %.0f values (%d trajectories x "
                   "%d times x %d columns), more than the limit of %lld", values, N > 0 ? N : 1,
                   d->sim.nt, first + m->ny, SIM_MAX_VALUES);
        return 0;
    }
    d->ncols = first + m->ny;
    d->nrows = (N > 0 ? N : 1) * K;
    d->colnames = arena_alloc(S->arena, sizeof(char *) * (size_t)(d->ncols + 1));
    d->id_col = N > 0 ? 0 : -1;
    d->t_col = first - 1;
    if (N > 0)
        d->colnames[0] = strtab_cstr(S->names, "id");
    d->colnames[d->t_col] = strtab_cstr(S->names, "t");
    const char **cols = sema_state_columns(S->arena, m);
    for (int c = 0; c < m->ny; c++)
        d->colnames[first + c] = cols[c];
    d->values = arena_alloc(S->arena, sizeof(double) * (size_t)d->nrows * (size_t)d->ncols);
    for (int r = 0; r < d->nrows; r++)
        for (int c = 0; c < d->ncols; c++)
            d->values[(size_t)r * (size_t)d->ncols + (size_t)c] = c == d->id_col ? r / K : NAN;
    d->n_fields = m->n_states;
    d->fields = arena_alloc(S->arena, sizeof(SemaField) * (size_t)(m->n_states + 1));
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        int size = ir_shape_size(v->shape);
        int *c = arena_alloc(S->arena, sizeof(int) * (size_t)size);
        for (int e = 0; e < size; e++)
            c[e] = first + v->offset + e;
        d->fields[i] = (SemaField){.name = v->name, .shape = v->shape, .cols = c};
    }
    return 1;
}

static int data_simulate(Sema *S, const Ast *call, SemaData *d)
{
    const Ast *first = call->list.n ? call->list.items[0] : NULL;
    if (!first || first->kind != AST_NAME) {
        diag_error(S->diag, first ? first->loc : call->loc,
                   "simulate needs a model first, like "
                   "simulate(M, t = linspace(0, 1, 11), solver = rk4(h = 0.01))");
        return 0;
    }
    ModelInfo *mi = sema_directive_model(S, first->name, first->loc);
    if (!mi)
        return 0;
    SemaSolve *sim = &d->sim;
    int ns = mi->model->n_states;
    sim->model = mi->model;
    sim->path = -1; /* the directive's own Brownian path */
    sim->init = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(ns + 1));
    sim->draw = arena_alloc(S->arena, sizeof(SemaDraw) * (size_t)(ns + 1));
    const Ast *seen[N_SIM_KEYS] = {0};
    char excused[N_SIM_KEYS] = {0};
    int before = S->diag->errors;
    for (int i = 1; i < call->list.n; i++)
        simulate_arg(S, mi, call->list.items[i], seen, excused, d);
    if (!seen[SIM_T] && !excused[SIM_T])
        diag_error(S->diag, call->loc,
                   "simulate needs 't', the observation times, like t = linspace(0, 10, 101)");
    if (!seen[SIM_SOLVER])
        sema_default_solver(S, call->loc, &sim->solver);
    if (S->diag->errors == before)
        simulate_rules(S, seen, d);
    if (S->diag->errors == before)
        sema_solve_starts(S, sim, call->loc);
    if (S->diag->errors > before)
        return 0;
    sema_check_steps(S, &sim->solver, sema_widest_interval(sim->t, sim->nt));
    sema_events_solver(S, sim->model, &sim->solver);
    sema_verlet_solver(S, sim->model, &sim->solver);
    sema_sde_solver(S, sim->model, &sim->solver);
    if (S->diag->errors > before)
        return 0;
    return simulate_table(S, call, d);
}

/* ---- the directive ---- */

void sema_data_directive(Sema *S, const Ast *ast, SemaDirective *d)
{
    SemaData *data = arena_alloc(S->arena, sizeof *data);
    data->name = ast->name;
    data->loc = name_loc_of(ast);
    data->t_col = data->id_col = -1;
    d->data = data;
    SemaData *old = sema_find_data(S, ast->name);
    if (old) {
        diag_error(S->diag, data->loc, "data set '%s' is already declared", ast->name);
        diag_note(S->diag, old->loc, "the first '%s' is here", ast->name);
        return;
    }
    const Ast *call = ast->a;
    int ok = 0;
    if (call && call->kind == AST_CALL && strcmp(call->name, "csv") == 0) {
        data->kind = SEMA_DATA_CSV;
        ok = data_csv(S, call, data);
    } else if (call && call->kind == AST_CALL && strcmp(call->name, "npy") == 0) {
        data->kind = SEMA_DATA_CSV; /* a table read when the program is checked, as a CSV's */
        ok = data_npy(S, call, data);
    } else if (call && call->kind == AST_CALL && strcmp(call->name, "simulate") == 0) {
        data->kind = SEMA_DATA_SIMULATE;
        ok = data_simulate(S, call, data);
    } else {
        diag_error(S->diag, call ? call->loc : ast->loc,
                   "data needs csv(\"file.csv\"), npy(x = \"file.npy\", ...) or "
                   "simulate(Model, t = ..., solver = ...)");
    }
    if (!ok) { /* registered empty, so a train that uses it reports nothing more */
        data->ncols = 0;
        data->n_fields = 0;
    }
    ptrvec_push(S->arena, &S->datasets, data);
}
