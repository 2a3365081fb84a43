/* The checker's driver: registers the declarations of every program (prelude,
 * imports, the user's file), then builds one IrModel per model: states and
 * params with their offsets (nets add dotted params), consts, lets in order, one
 * equation per state. Expressions are lowered in sema_expr.c, directives in
 * sema_directive.c. */
#include "sema.h"

#include <stdio.h>
#include <string.h>

#include "sema_internal.h"

/* ---- scopes ---- */

Scope *scope_new(Sema *S, Scope *parent)
{
    Scope *sc = arena_alloc(S->arena, sizeof *sc);
    sc->parent = parent;
    return sc;
}

enum { SCOPE_LINEAR = 16 }; /* names searched one by one before a scope gets an index */

static size_t scope_slot(const char *name, int cap)
{
    uint64_t h = (uint64_t)(uintptr_t)name;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)(h & (uint64_t)(cap - 1));
}

static void scope_index_add(Scope *sc, int i)
{
    size_t k = scope_slot(sc->items[i].name, sc->index_cap);
    while (sc->index[k])
        k = (k + 1) & (size_t)(sc->index_cap - 1);
    sc->index[k] = i + 1;
}

/* Indexes the scope's names once it outgrows a linear search, rebuilding the
 * table at twice the size whenever it is half full. */
static void scope_index(Sema *S, Scope *sc)
{
    if (sc->n <= SCOPE_LINEAR)
        return;
    if (sc->index && 2 * sc->n <= sc->index_cap) {
        scope_index_add(sc, sc->n - 1);
        return;
    }
    int cap = 64;
    while (cap < 4 * sc->n)
        cap *= 2;
    sc->index = arena_alloc(S->arena, sizeof *sc->index * (size_t)cap);
    memset(sc->index, 0, sizeof *sc->index * (size_t)cap);
    sc->index_cap = cap;
    for (int i = 0; i < sc->n; i++)
        scope_index_add(sc, i);
}

Binding *scope_find_local(Scope *sc, const char *name)
{
    if (sc->index) {
        for (size_t k = scope_slot(name, sc->index_cap); sc->index[k];
             k = (k + 1) & (size_t)(sc->index_cap - 1))
            if (sc->items[sc->index[k] - 1].name == name)
                return &sc->items[sc->index[k] - 1];
        return NULL;
    }
    for (int i = 0; i < sc->n; i++)
        if (sc->items[i].name == name)
            return &sc->items[i];
    return NULL;
}

Binding *scope_lookup(Scope *sc, const char *name)
{
    for (; sc; sc = sc->parent) {
        Binding *b = scope_find_local(sc, name);
        if (b)
            return b;
    }
    return NULL;
}

static const char *bind_kind_text(BindKind k)
{
    switch (k) {
    case B_STATE: return "state";
    case B_PARAM: return "parameter";
    case B_CONST: return "constant";
    case B_LET: case B_LET_PENDING: return "let";
    case B_ARG: return "argument";
    case B_NET: return "net";
    case B_FN: return "fn";
    case B_TEMPLATE: return "net template";
    case B_MODEL: return "model";
    }
    return "name";
}

Binding *scope_declare(Sema *S, Scope *sc, const char *name, BindKind kind, SrcLoc loc,
                       const Ast *ast)
{
    Binding *old = scope_find_local(sc, name);
    if (old) {
        diag_error(S->diag, loc, "'%s' is already declared", name);
        diag_note(S->diag, old->loc, "the first declaration of '%s' (a %s) is here", name,
                  bind_kind_text(old->kind));
        return NULL;
    }
    sc->items = arena_grow(S->arena, sc->items, sc->n, &sc->cap, sizeof(Binding));
    Binding *b = &sc->items[sc->n++];
    *b = (Binding){.name = name, .kind = kind, .home = sc, .loc = loc, .ast = ast,
                   .val = {.kind = V_ERR}};
    scope_index(S, sc);
    return b;
}

static void bind(Sema *S, Scope *sc, const Ast *decl, BindKind kind, Val v)
{
    Binding *b = scope_declare(S, sc, decl->name, kind, decl->name_loc, decl);
    if (b)
        b->val = v;
}

/* ---- did you mean ---- */

int sema_edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1; /* a transposition: MPL for MLP */
        }
    return d[la][lb];
}

/* Short names tolerate one typo, longer ones two. */
static int suggest_limit(const char *name)
{
    int len = (int)strlen(name);
    return len >= 4 ? 2 : 1;
}

void sema_suggest(Sema *S, Scope *sc, const char *name, SrcLoc use, int with_builtins)
{
    int best = suggest_limit(name) + 1;
    const char *cand = NULL;
    SrcLoc at = use;
    for (; sc; sc = sc->parent)
        for (int i = 0; i < sc->n; i++) {
            int d = sema_edit_distance(name, sc->items[i].name);
            if (d > 0 && d < best) {
                best = d;
                cand = sc->items[i].name;
                at = sc->items[i].loc;
            }
        }
    for (int i = 0; i < sema_n_builtins; i++) {
        const char *bn = sema_builtin_names[i];
        int is_value = strcmp(bn, "t") == 0 || strcmp(bn, "pi") == 0;
        if (!with_builtins && !is_value)
            continue;
        int d = sema_edit_distance(name, bn);
        if (d > 0 && d < best) {
            best = d;
            cand = bn;
            at = use;
        }
    }
    /* a candidate from the stdlib is named at the use: its path is the installation's */
    if (at.file != use.file)
        at = use;
    if (cand)
        diag_note(S->diag, at, "did you mean '%s'?", cand);
}

const char *sema_module_of(Sema *S, const char *name)
{
    return S->module_of ? S->module_of(S->module_ctx, name) : NULL;
}

int sema_closest(const char *name, int n, const char *const *cands)
{
    int best = suggest_limit(name) + 1, found = -1;
    for (int i = 0; i < n; i++) {
        int d = sema_edit_distance(name, cands[i]);
        if (d > 0 && d < best) {
            best = d;
            found = i;
        }
    }
    return found;
}

void sema_suggest_among(Sema *S, const char *name, SrcLoc use, int n, const char *const *cands)
{
    int i = sema_closest(name, n, cands);
    if (i >= 0)
        diag_note(S->diag, use, "did you mean '%s'?", cands[i]);
}

/* ---- declarations shared by models and nets ---- */

static const char *decl_kind(const Ast *decl)
{
    return decl->kind == AST_STATE ? "state" : decl->kind == AST_PARAM ? "parameter" : "constant";
}

/* decl's dimensions into shape; name is how errors call it (dotted inside a net). */
static int sema_dims(Sema *S, Scope *sc, const Ast *decl, const char *name, IrShape *shape)
{
    const AstList *dims = &decl->list;
    *shape = ir_scalar_shape();
    if (dims->n > IR_MAX_RANK) {
        diag_error(S->diag, dims->items[IR_MAX_RANK]->loc,
                   "'%s' has %d dimensions; values have at most %d (an image [C, H, W], a filter "
                   "bank [Cout, Cin, kh, kw])",
                   decl->name, dims->n, IR_MAX_RANK);
        return 0;
    }
    int d[IR_MAX_RANK] = {1, 1, 1, 1};
    for (int i = 0; i < dims->n; i++)
        if (!sema_const_int(S, sc, dims->items[i], "a dimension", 1, IR_MAX_ELEMENTS, &d[i]))
            return 0;
    char what[300];
    snprintf(what, sizeof what, "%s '%s'", decl_kind(decl), name);
    int64_t size = (int64_t)d[0] * d[1] * d[2] * d[3];
    if (dims->n <= 2 && !sema_size_ok(S, decl->name_loc, what,
                                      (IrShape){.rank = dims->n, .rows = d[0], .cols = d[1]}))
        return 0;
    if (dims->n > 2 && size > IR_MAX_ELEMENTS) {
        diag_error(S->diag, decl->name_loc, "%s has %lld elements, more than the limit of %d", what,
                   (long long)size, IR_MAX_ELEMENTS);
        return 0;
    }
    if (dims->n > 0)
        *shape = ir_tensor_shape(dims->n, d);
    return 1;
}

/* value checked against a declared shape (a scalar fills it); NULL after an error. */
static IrNode *shape_to_decl(Sema *S, const Ast *decl, IrNode *value, IrShape shape, SrcLoc loc,
                             const char *what)
{
    if (ir_shape_eq(value->shape, shape))
        return value;
    if (value->shape.rank == 0)
        return sema_fill(S, value, shape);
    char bd[32], bv[32];
    diag_error(S->diag, loc, "shape mismatch in %s of '%s': declared %s but the value is %s", what,
               decl->name, sema_shape(shape, bd), sema_shape(value->shape, bv));
    return NULL;
}

static const char *dotted(Sema *S, const char *prefix, const char *name)
{
    if (!prefix || !*prefix)
        return name;
    size_t a = strlen(prefix), b = strlen(name); /* names are as long as a line */
    char *buf = arena_alloc(S->arena, a + b + 1);
    memcpy(buf, prefix, a);
    memcpy(buf + a, name, b + 1);
    return strtab_cstr(S->names, buf);
}

/* A model's states (and its parameters) are one array each in the runtime: they
 * share the limit of one value. */
static int model_total_ok(Sema *S, const Ast *decl, const char *name, int before, IrShape s,
                          const char *what)
{
    int64_t n = (int64_t)before + ir_shape_size(s);
    if (n <= IR_MAX_ELEMENTS)
        return 1;
    diag_error(S->diag, decl->name_loc,
               "the %s of model '%s' have %lld elements with '%s', more than the limit of %d", what,
               S->model->name, (long long)n, name, IR_MAX_ELEMENTS);
    return 0;
}

static int model_add_param(Sema *S, IrVar v)
{
    IrModel *m = S->model;
    m->params = arena_grow(S->arena, m->params, m->n_params, &S->params_cap, sizeof(IrVar));
    m->params[m->n_params] = v;
    m->np += ir_shape_size(v.shape);
    return m->n_params++;
}

bool sema_initial_value(Sema *S, Val v, SrcLoc loc, const char *state)
{
    if (v.kind == V_NODE)
        return true;
    if (v.kind != V_ERR)
        diag_error(S->diag, loc, "the initial value of '%s' must be a value, not a function", state);
    return false;
}

bool sema_fits_state(Sema *S, IrShape want, const IrNode *n, SrcLoc loc, const char *where,
                     const char *state, const char *what)
{
    if (ir_shape_eq(n->shape, want) || n->shape.rank == 0)
        return true;
    char bw[32], bg[32];
    diag_error(S->diag, loc, "shape mismatch in %s '%s': the state is %s but %s is %s", where,
               state, sema_shape(want, bw), what, sema_shape(n->shape, bg));
    return false;
}

bool sema_call_setting(Sema *S, const Ast *arg, SrcLoc at, unsigned given, int k,
                       const SemaSetting *setting, double *value)
{
    if (given & (1u << k)) {
        diag_error(S->diag, at, "duplicate argument '%s'", arg->name);
        return false;
    }
    IrNode *c = sema_const(S, S->global, arg->a, setting->what);
    if (!c)
        return false;
    const char *want = c->shape.rank == 0 ? setting->range(k, c->value[0]) : setting->not_scalar;
    if (want) {
        diag_error(S->diag, arg->a->loc, "%s '%s' must be %s", setting->kind, arg->name, want);
        return false;
    }
    *value = c->value[0];
    return true;
}

bool sema_is_call(Sema *S, const Ast *e, const char *expected)
{
    if (e->kind == AST_NAME || e->kind == AST_CALL)
        return true;
    diag_error(S->diag, e->loc, "%s", expected);
    return false;
}

static double dist_arg(Sema *S, Scope *sc, const Ast *dist, int i, int *ok)
{
    IrNode *c = sema_const(S, sc, dist->list.items[i], "a distribution argument");
    if (!c || c->shape.rank != 0) {
        if (c)
            diag_error(S->diag, dist->list.items[i]->loc, "a distribution argument must be a scalar");
        *ok = 0;
        return 0;
    }
    return c->value[0];
}

/* `~ normal(m, s)`, `~ uniform(a, b)`, `~ glorot` into v. */
static void param_dist(Sema *S, Scope *sc, const Ast *dist, IrVar *v)
{
    const char *name = dist->name;
    int nargs = dist->kind == AST_CALL ? dist->list.n : 0;
    int two = strcmp(name, "normal") == 0 || strcmp(name, "uniform") == 0;
    if (!two && strcmp(name, "glorot") != 0) {
        static const char *const known[] = {"normal", "uniform", "glorot"};
        diag_error(S->diag, dist->loc,
                   "unknown distribution '%s' (expected normal(mean, sd), uniform(a, b) or glorot)", name);
        sema_suggest_among(S, name, dist->loc, 3, known);
        return;
    }
    if (nargs != (two ? 2 : 0)) {
        diag_error(S->diag, dist->loc, "wrong number of arguments to '%s': expected %s, got %d", name,
                   two ? (name[0] == 'n' ? "normal(mean, sd)" : "uniform(a, b)") : "glorot", nargs);
        return;
    }
    if (!two) {
        if (v->shape.rank != 2 && v->shape.rank != 4)
            diag_error(S->diag, dist->loc,
                       "glorot needs a matrix parameter [fan_out, fan_in] or a filter bank [Cout, "
                       "Cin, kh, kw]; use normal or uniform here");
        v->init_kind = IR_INIT_GLOROT;
        return;
    }
    int ok = 1;
    v->dist_a = dist_arg(S, sc, dist, 0, &ok);
    v->dist_b = dist_arg(S, sc, dist, 1, &ok);
    v->init_kind = name[0] == 'n' ? IR_INIT_NORMAL : IR_INIT_UNIFORM;
    if (ok && name[0] == 'n' && v->dist_b < 0)
        diag_error(S->diag, dist->list.items[1]->loc, "the standard deviation must be >= 0, got %g",
                   v->dist_b);
    if (ok && name[0] == 'u' && v->dist_b < v->dist_a)
        diag_error(S->diag, dist->loc, "uniform(a, b) needs a <= b, got %g > %g", v->dist_a, v->dist_b);
}

void sema_dist(Sema *S, Scope *sc, const Ast *dist, IrVar *v)
{
    param_dist(S, sc, dist, v);
}

static void declare_param(Sema *S, Scope *sc, const Ast *decl, const char *prefix)
{
    IrVar v = {.name = dotted(S, prefix, decl->name), .loc = decl->name_loc};
    if (!sema_dims(S, sc, decl, v.name, &v.shape) ||
        !model_total_ok(S, decl, v.name, S->model->np, v.shape, "parameters")) {
        bind(S, sc, decl, B_PARAM, val_err());
        return;
    }
    if (decl->a && decl->b)
        diag_error(S->diag, decl->b->loc, "parameter '%s' has both `= value` and `~ distribution`",
                   decl->name);
    if (decl->a) {
        IrNode *c = sema_const(S, sc, decl->a, "a parameter's initial value");
        if (c && (c = shape_to_decl(S, decl, c, v.shape, decl->a->loc, "the initial value"))) {
            v.init_kind = IR_INIT_EXPR;
            v.init = sema_fold(S, c);
        }
    } else if (decl->b) {
        param_dist(S, sc, decl->b, &v);
    }
    v.offset = S->model->np;
    int slot = model_add_param(S, v);
    bind(S, sc, decl, B_PARAM, val_node(ir_param(S->ir, slot, v.offset, v.shape)));
}

static void declare_const(Sema *S, Scope *sc, const Ast *decl)
{
    IrNode *c = sema_const(S, sc, decl->a, "a constant");
    IrShape shape;
    if (c && decl->list.n) {
        if (!sema_dims(S, sc, decl, decl->name, &shape))
            c = NULL;
        else
            c = shape_to_decl(S, decl, c, shape, decl->a->loc, "the value");
    }
    bind(S, sc, decl, B_CONST, c ? val_node(sema_fold(S, c)) : val_err());
}

static void declare_net(Sema *S, Scope *sc, const Ast *decl, const char *prefix)
{
    NetInst *inst = sema_instantiate(S, sc, decl, prefix);
    bind(S, sc, decl, B_NET, inst ? (Val){.kind = V_NET, .net = inst} : val_err());
}

/* ---- net instances ---- */

static int net_args(Sema *S, Scope *sc, const Ast *call, const Ast *tmpl, Scope *inst)
{
    if (call->list.n != tmpl->params.n) {
        diag_error(S->diag, call->loc, "wrong number of arguments to net '%s': expected %d, got %d",
                   tmpl->name, tmpl->params.n, call->list.n);
        diag_note(S->diag, tmpl->name_loc, "'%s' is declared here", tmpl->name);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < call->list.n; i++) {
        const Ast *arg = call->list.items[i], *p = tmpl->params.items[i];
        Val v = val_err();
        if (arg->kind == AST_ARG)
            diag_error(S->diag, arg->loc, "net arguments are positional: write %s(...) without '%s ='",
                       tmpl->name, arg->name);
        else
            v = sema_expr_in(S, sc, arg, 0, "a net argument");
        if (v.kind == V_NODE) {
            IrNode *c = sema_const_val(S, v, arg->loc, "a net argument");
            v = c ? val_node(c) : val_err();
        }
        ok &= v.kind != V_ERR;
        Binding *b = scope_declare(S, inst, p->name, B_ARG, p->loc, p);
        if (b)
            b->val = v;
    }
    return ok;
}

static void net_items(Sema *S, NetInst *inst)
{
    for (int i = 0; i < inst->tmpl->list.n; i++) {
        const Ast *it = inst->tmpl->list.items[i];
        switch (it->kind) {
        case AST_PARAM: declare_param(S, inst->scope, it, inst->prefix); break;
        case AST_NETUSE: declare_net(S, inst->scope, it, inst->prefix); break;
        case AST_CONST: declare_const(S, inst->scope, it); break;
        case AST_LET: bind(S, inst->scope, it, B_LET, sema_expr(S, inst->scope, it->a)); break;
        default: break; /* forward: at each call; others reported at registration */
        }
    }
}

/* The template a `net f = T(...)` names, looked up from where it is written
 * (a model, or the template that nests it, whose file's names it sees). */
static Binding *find_template(Sema *S, Scope *sc, const Ast *call)
{
    Binding *b = scope_lookup(sc, call->name);
    if (b && b->kind == B_TEMPLATE)
        return b;
    SrcLoc at = call->name_loc.line > 0 ? call->name_loc : call->loc;
    if (b)
        diag_error(S->diag, at, "'%s' is a %s, not a net template", call->name, bind_kind_text(b->kind));
    else if (sema_module_of(S, call->name)) {
        const char *mod = sema_module_of(S, call->name);
        diag_error(S->diag, at, "unknown net template '%s': it is defined in module '%s': add "
                   "`import \"%s\"`", call->name, mod, mod);
    } else {
        diag_error(S->diag, at, "unknown net template '%s'", call->name);
        sema_suggest(S, sc, call->name, at, 0);
    }
    return NULL;
}

NetInst *sema_instantiate(Sema *S, Scope *sc, const Ast *netuse, const char *prefix)
{
    const Ast *call = netuse->a;
    if (!call || (call->kind != AST_CALL && call->kind != AST_NAME)) {
        diag_error(S->diag, netuse->loc, "expected a net template call, like net f = MLP(2, 50, 2, tanh)");
        return NULL;
    }
    Binding *tb = find_template(S, sc, call);
    if (!tb)
        return NULL;
    const Ast *tmpl = tb->ast;
    for (int i = 0; i < S->depth; i++)
        if (S->stack[i] == tmpl) {
            diag_error(S->diag, netuse->loc, "net '%s' contains itself: nets cannot be recursive",
                       tmpl->name);
            return NULL;
        }
    if (S->depth >= SEMA_MAX_DEPTH) {
        diag_error(S->diag, netuse->loc, "nets nested too deeply (more than %d)", SEMA_MAX_DEPTH);
        return NULL;
    }
    NetInst *inst = arena_alloc(S->arena, sizeof *inst);
    inst->tmpl = tmpl;
    inst->scope = scope_new(S, tb->home);
    inst->prefix = dotted(S, dotted(S, prefix, netuse->name), ".");
    AstList noargs = {0};
    Ast bare = *call; /* `net f = T` without parentheses: no arguments */
    if (call->kind == AST_NAME)
        bare.list = noargs;
    if (!net_args(S, sc, &bare, tmpl, inst->scope))
        return NULL;
    int before = S->diag->errors;
    S->stack[S->depth++] = tmpl;
    net_items(S, inst);
    S->depth--;
    if (S->diag->errors > before)
        diag_note(S->diag, netuse->name_loc, "in the instance '%s' of net '%s'", netuse->name, tmpl->name);
    return inst;
}

/* ---- models ---- */

typedef struct ModelBuild {
    const Ast **state_decl; /* per state */
    const Ast **equation;   /* per state, or NULL */
    char *excused;          /* per state: a misspelled equation was meant for it */
} ModelBuild;

static void declare_state(Sema *S, Scope *sc, const Ast *decl, ModelBuild *mb)
{
    IrModel *m = S->model;
    IrVar v = {.name = decl->name, .loc = decl->name_loc};
    int ok = sema_dims(S, sc, decl, decl->name, &v.shape) &&
             model_total_ok(S, decl, decl->name, m->ny, v.shape, "states");
    if (!ok)
        v.shape = ir_scalar_shape();
    v.offset = m->ny;
    int slot = m->n_states++;
    m->states[slot] = v;
    m->ny += ir_shape_size(v.shape);
    mb->state_decl[slot] = decl;
    bind(S, sc, decl, B_STATE, ok ? val_node(ir_state(S->ir, slot, v.offset, v.shape)) : val_err());
}

/* An item of a model or net body as its messages name it (ast_kind_name is the
 * syntax tree's dump name, such as STATE). */
static const char *item_text(AstKind kind)
{
    switch (kind) {
    case AST_STATE: return "a state";
    case AST_EQUATION: return "an equation";
    case AST_WHEN: return "a when block";
    default: return ast_kind_name(kind);
    }
}

static void model_declarations(Sema *S, Scope *sc, const Ast *model, ModelBuild *mb)
{
    for (int i = 0; i < model->list.n; i++) {
        const Ast *it = model->list.items[i];
        switch (it->kind) {
        case AST_STATE:
            if (it->op != 1)
                declare_state(S, sc, it, mb);
            break;
        case AST_PARAM: declare_param(S, sc, it, NULL); break;
        case AST_CONST: declare_const(S, sc, it); break;
        case AST_NETUSE: declare_net(S, sc, it, NULL); break;
        case AST_LET: scope_declare(S, sc, it->name, B_LET_PENDING, it->name_loc, it); break;
        case AST_EQUATION:
        case AST_WHEN: break;
        case AST_FORWARD:
            diag_error(S->diag, it->loc, "forward(...) belongs in a net, not in a model");
            break;
        default:
            diag_error(S->diag, it->loc, "%s cannot appear inside a model", item_text(it->kind));
            break;
        }
    }
}

/* Second-order states (docs/language.md, "Second-order equations"): each
 * `state dx/dt = ...` is the velocity of the position x, a state of x's shape.
 * The velocities are laid out after every other state, in their positions'
 * order, so a model of pairs only is [x; dx/dt] per sample (what verlet reads:
 * NdKernels.second_order). */
static void declare_velocity(Sema *S, Scope *sc, const Ast *decl, ModelBuild *mb, int pos)
{
    IrModel *m = S->model;
    IrVar v = {.name = decl->name, .loc = decl->name_loc, .shape = m->states[pos].shape,
               .velocity_of = pos + 1};
    v.offset = m->ny;
    int slot = m->n_states++;
    m->states[slot] = v;
    m->ny += ir_shape_size(v.shape);
    mb->state_decl[slot] = decl;
    bind(S, sc, decl, B_STATE, val_node(ir_state(S->ir, slot, v.offset, v.shape)));
}

static void model_velocities(Sema *S, Scope *sc, const Ast *model, ModelBuild *mb)
{
    int n_pos = S->model->n_states;
    for (int i = 0; i < n_pos; i++)
        for (int j = 0; j < model->list.n; j++) {
            const Ast *it = model->list.items[j];
            if (it->kind == AST_STATE && it->op == 1 && it->str == S->model->states[i].name &&
                !scope_find_local(sc, it->name)) /* a second one is a duplicate, below */
                declare_velocity(S, sc, it, mb, i);
        }
    for (int j = 0; j < model->list.n; j++) {
        const Ast *it = model->list.items[j];
        if (it->kind != AST_STATE || it->op != 1)
            continue;
        Binding *b = scope_find_local(sc, it->name);
        if (b && b->ast == it)
            continue;
        if (b) {
            diag_error(S->diag, it->name_loc, "duplicate initial velocity '%s'", it->name);
            diag_note(S->diag, b->loc, "the first '%s' is here", it->name);
            continue;
        }
        Binding *pb = scope_find_local(sc, it->str);
        if (pb)
            diag_error(S->diag, it->name_loc, "'%s' is the velocity of '%s', but '%s' is a %s, "
                       "not a state", it->name, it->str, it->str, bind_kind_text(pb->kind));
        else
            diag_error(S->diag, it->name_loc, "initial velocity '%s' of unknown state '%s' "
                       "(declare the position first: state %s = ...)", it->name, it->str, it->str);
    }
}

static void model_lets(Sema *S, Scope *sc, const Ast *model)
{
    for (int i = 0; i < model->list.n; i++) {
        const Ast *it = model->list.items[i];
        if (it->kind != AST_LET)
            continue;
        Val v = sema_expr(S, sc, it->a);
        Binding *b = scope_find_local(sc, it->name);
        if (b && b->ast == it) { /* not a duplicate */
            b->kind = B_LET;
            b->val = v;
        }
    }
}

static void model_inits(Sema *S, Scope *sc, ModelBuild *mb)
{
    IrModel *m = S->model;
    for (int i = 0; i < m->n_states; i++) {
        const Ast *decl = mb->state_decl[i];
        if (!decl->a)
            continue;
        const Binding *b = scope_find_local(sc, decl->name);
        if (b && b->ast == decl && b->val.kind == V_ERR)
            continue; /* its dimensions were reported: its shape is unknown */
        Val v = sema_expr_in(S, sc, decl->a, ALLOW_PARAM, "an initial value");
        if (!sema_initial_value(S, v, decl->a->loc, decl->name))
            continue;
        if (decl->op == 1 && v.node->shape.rank > 0 && !ir_shape_eq(v.node->shape, m->states[i].shape)) {
            char bx[32], bv[32];
            diag_error(S->diag, decl->a->loc, "shape mismatch in the initial velocity '%s': state "
                       "'%s' is %s but the value is %s", decl->name, decl->str,
                       sema_shape(m->states[i].shape, bx), sema_shape(v.node->shape, bv));
            diag_note(S->diag, mb->state_decl[m->states[i].velocity_of - 1]->name_loc,
                      "'%s' is declared here", decl->str);
            continue;
        }
        IrNode *n = shape_to_decl(S, decl, v.node, m->states[i].shape, decl->a->loc, "the initial value");
        if (n) {
            m->states[i].init_kind = IR_INIT_EXPR;
            m->states[i].init = sema_fold(S, n);
        }
    }
}

static void equation_target_error(Sema *S, Scope *sc, const Ast *eq, ModelBuild *mb)
{
    Binding *b = scope_find_local(sc, eq->name);
    if (b) {
        diag_error(S->diag, eq->loc, "'%s' is a %s, not a state: only states have equations", eq->name,
                   bind_kind_text(b->kind));
        diag_note(S->diag, b->loc, "'%s' is declared here", eq->name);
        return;
    }
    diag_error(S->diag, eq->loc, "equation for unknown state '%s'", eq->name);
    const char **names = arena_alloc(S->arena, sizeof(char *) * (size_t)(S->model->n_states + 1));
    for (int i = 0; i < S->model->n_states; i++)
        names[i] = S->model->states[i].name;
    int i = sema_closest(eq->name, S->model->n_states, names);
    if (i >= 0) { /* so the meant state is not also reported as missing its equation */
        diag_note(S->diag, mb->state_decl[i]->name_loc, "did you mean '%s'?", names[i]);
        mb->excused[i] = 1;
    }
}

/* The slot of x's velocity dx/dt, or -1. */
static int velocity_slot(const IrModel *m, int pos)
{
    for (int i = 0; i < m->n_states; i++)
        if (m->states[i].velocity_of == pos + 1)
            return i;
    return -1;
}

/* `d2x/dt2 = a` lowers to the pair dx/dt = v (the velocity state's leaf) and
 * d(v)/dt = a; both slots then count as having their equation. */
static void second_order_equation(Sema *S, Scope *sc, const Ast *eq, ModelBuild *mb, int slot)
{
    IrModel *m = S->model;
    int vs = velocity_slot(m, slot);
    if (vs < 0) {
        diag_error(S->diag, eq->loc, "state '%s' has a second-order equation but no initial "
                   "velocity: declare `state d%s/dt = ...`", eq->name, eq->name);
        diag_note(S->diag, mb->state_decl[slot]->name_loc, "'%s' is declared here", eq->name);
        mb->excused[slot] = 1; /* not also "has no equation" */
        return;
    }
    mb->equation[slot] = mb->equation[vs] = eq;
    m->rhs[slot] = ir_model_state(S->ir, m, vs);
    Val v = sema_tensor(S, sc, eq->a);
    if (v.kind == V_ERR)
        return;
    if (!sema_fits_state(S, m->states[vs].shape, v.node, eq->a->loc, "the equation for",
                         eq->name, "the right-hand side"))
        return;
    m->rhs[vs] = sema_fill(S, v.node, m->states[vs].shape);
}

/* The g of `dx = f dt + g dW`: shaped like the state or a scalar (diagonal
 * noise, each element driven by its own Brownian motion). */
static void model_diffusion(Sema *S, Scope *sc, const Ast *eq, int slot)
{
    IrModel *m = S->model;
    if (!m->diffusion)
        m->diffusion = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(m->n_states + 1));
    Val g = sema_tensor(S, sc, eq->b);
    if (g.kind == V_ERR)
        return;
    IrShape want = m->states[slot].shape;
    if (!sema_fits_state(S, want, g.node, eq->b->loc, "the noise of", eq->name,
                         "the coefficient of dW"))
        return;
    m->diffusion[slot] = sema_fill(S, g.node, want);
}

static void model_equation(Sema *S, Scope *sc, const Ast *eq, ModelBuild *mb)
{
    Binding *b = scope_find_local(sc, eq->name);
    if (!b || b->kind != B_STATE) {
        equation_target_error(S, sc, eq, mb);
        return;
    }
    /* the state's leaf knows its slot; a state whose declaration failed is searched */
    int slot = -1;
    const IrNode *leaf = b->val.kind == V_NODE ? b->val.node : NULL;
    if (leaf && leaf->op == IR_STATE && leaf->slot < S->model->n_states &&
        mb->state_decl[leaf->slot] == b->ast)
        slot = leaf->slot;
    for (int i = 0; slot < 0 && i < S->model->n_states; i++)
        if (mb->state_decl[i] == b->ast)
            slot = i;
    if (mb->equation[slot] && mb->equation[slot]->op != eq->op) {
        diag_error(S->diag, eq->loc, "'%s' has both a first-order equation (d%s/dt = ...) and a "
                   "second-order one (d2%s/dt2 = ...): keep one", eq->name, eq->name, eq->name);
        diag_note(S->diag, mb->equation[slot]->loc, "the other equation for '%s' is here", eq->name);
        if (velocity_slot(S->model, slot) >= 0) /* not also "has no second-order equation" */
            mb->excused[velocity_slot(S->model, slot)] = 1;
        return;
    }
    if (mb->equation[slot]) {
        diag_error(S->diag, eq->loc, "duplicate equation for '%s'", eq->name);
        diag_note(S->diag, mb->equation[slot]->loc, "the first equation for '%s' is here", eq->name);
        return;
    }
    if (eq->op == 2) {
        second_order_equation(S, sc, eq, mb, slot);
        return;
    }
    mb->equation[slot] = eq;
    Val v = sema_tensor(S, sc, eq->a);
    if (v.kind == V_ERR || b->val.kind == V_ERR)
        return;
    IrShape want = S->model->states[slot].shape;
    if (!sema_fits_state(S, want, v.node, eq->a->loc, "the equation for", eq->name,
                         "the right-hand side"))
        return;
    S->model->rhs[slot] = sema_fill(S, v.node, want);
    if (eq->b)
        model_diffusion(S, sc, eq, slot);
}

static void model_equations(Sema *S, Scope *sc, const Ast *model, ModelBuild *mb)
{
    for (int i = 0; i < model->list.n; i++)
        if (model->list.items[i]->kind == AST_EQUATION)
            model_equation(S, sc, model->list.items[i], mb);
    for (int i = 0; i < S->model->n_states; i++) {
        if (mb->equation[i] || mb->excused[i])
            continue;
        const Ast *d = mb->state_decl[i];
        if (d->op == 1) {
            const Ast *first = mb->equation[S->model->states[i].velocity_of - 1];
            diag_error(S->diag, d->name_loc, "'%s' is an initial velocity, but '%s' has no "
                       "second-order equation (expected d2%s/dt2 = ...)", d->name, d->str, d->str);
            if (first)
                diag_note(S->diag, first->loc, "'%s' has a first-order equation here: write "
                          "d2%s/dt2 for its acceleration instead", d->str, d->str);
            continue;
        }
        diag_error(S->diag, d->name_loc.line > 0 ? d->name_loc : d->loc,
                   "state '%s' has no equation (expected d%s/dt = ...)", d->name, d->name);
    }
}

static void model_build(Sema *S, ModelInfo *mi)
{
    const Ast *ast = mi->ast;
    int n = 0;
    for (int i = 0; i < ast->list.n; i++)
        n += ast->list.items[i]->kind == AST_STATE;
    IrModel *m = arena_alloc(S->arena, sizeof *m);
    m->name = ast->name;
    m->loc = ast->name_loc;
    m->states = arena_alloc(S->arena, sizeof(IrVar) * (size_t)(n + 1));
    m->rhs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(n + 1));
    ModelBuild mb = {
        .state_decl = arena_alloc(S->arena, sizeof(Ast *) * (size_t)(n + 1)),
        .equation = arena_alloc(S->arena, sizeof(Ast *) * (size_t)(n + 1)),
        .excused = arena_alloc(S->arena, (size_t)(n + 1)),
    };
    S->model = m;
    S->params_cap = 0;
    mi->model = m;
    int before = S->diag->errors;
    mi->scope = scope_new(S, S->global);
    model_declarations(S, mi->scope, ast, &mb);
    model_velocities(S, mi->scope, ast, &mb);
    if (m->n_states == 0) /* nothing to integrate: every solver would refuse it later, less clearly */
        diag_error(S->diag, ast->name_loc, "model '%s' has no states (declare one: state y = 1, "
                   "and its equation dy/dt = ...)", ast->name);
    model_lets(S, mi->scope, ast);
    model_inits(S, mi->scope, &mb);
    model_equations(S, mi->scope, ast, &mb);
    sema_hidden_states(S);
    sema_model_events(S, mi->scope, ast);
    if (m->diffusion && m->n_events > 0)
        diag_error(S->diag, m->events[0].loc, "a model with noise (dW) cannot have events (not "
                   "in this version): model '%s' has both", m->name);
    mi->broken = S->diag->errors != before;
    S->model = NULL;
}

/* ---- the programs' top level ---- */

static void check_template(Sema *S, const Ast *net)
{
    const Ast *fwd = NULL;
    for (int i = 0; i < net->list.n; i++) {
        const Ast *it = net->list.items[i];
        if (it->kind == AST_FORWARD) {
            if (fwd) {
                diag_error(S->diag, it->loc, "net '%s' has more than one forward", net->name);
                diag_note(S->diag, fwd->loc, "the first forward is here");
            }
            fwd = it;
        } else if (it->kind != AST_PARAM && it->kind != AST_NETUSE && it->kind != AST_CONST &&
                   it->kind != AST_LET) {
            diag_error(S->diag, it->loc, "%s cannot appear inside a net (nets hold params, nets, "
                       "consts, lets and forward)", item_text(it->kind));
        }
    }
    if (!fwd)
        diag_error(S->diag, net->name_loc, "net '%s' has no forward (expected forward(x) = ...)",
                   net->name);
}

static void register_decls(Sema *S, const Ast *prog, PtrVec *models)
{
    for (int i = 0; i < prog->list.n; i++) {
        const Ast *it = prog->list.items[i];
        switch (it->kind) {
        case AST_FN: scope_declare(S, S->global, it->name, B_FN, it->name_loc, it); break;
        case AST_NET:
            if (scope_declare(S, S->global, it->name, B_TEMPLATE, it->name_loc, it))
                check_template(S, it);
            break;
        case AST_MODEL:
            if (scope_declare(S, S->global, it->name, B_MODEL, it->name_loc, it))
                ptrvec_push(S->arena, models, (void *)it);
            break;
        default: break;
        }
    }
}

static void global_consts(Sema *S, const Ast *prog)
{
    for (int i = 0; i < prog->list.n; i++)
        if (prog->list.items[i]->kind == AST_CONST)
            declare_const(S, S->global, prog->list.items[i]);
}

ModelInfo *sema_find_model_info(Sema *S, const char *name)
{
    for (int i = 0; i < S->n_models; i++)
        if (S->models[i].model && strcmp(S->models[i].model->name, name) == 0)
            return &S->models[i];
    return NULL;
}

SemaProgram *sema_check(const SemaInput *in)
{
    Sema S = {.arena = in->arena, .names = in->names, .ir = in->ir, .diag = in->diag,
              .allow = ALLOW_ALL, .context = "this expression"};
    /* One scope per file, each inside the previous: a file sees its own names
     * and those of the files read before it (the prelude, its imports), and a
     * name it declares again shadows theirs for its own code only. */
    Scope **file_scopes = arena_alloc(S.arena, sizeof(Scope *) * (size_t)(in->n_programs + 1));
    PtrVec models = {0};
    for (int i = 0; i < in->n_programs; i++) {
        S.global = file_scopes[i] = scope_new(&S, i ? file_scopes[i - 1] : NULL);
        register_decls(&S, in->programs[i], &models);
    }
    for (int i = 0; i < in->n_programs; i++) {
        S.global = file_scopes[i];
        global_consts(&S, in->programs[i]);
    }
    if (in->n_programs == 0)
        S.global = scope_new(&S, NULL);
    S.program = in->n_programs ? in->programs[in->n_programs - 1] : NULL;
    S.module_of = in->module_of;
    S.module_ctx = in->module_ctx;
    S.models = arena_alloc(S.arena, sizeof(ModelInfo) * (size_t)(models.n + 1));
    SemaProgram *out = arena_alloc(S.arena, sizeof *out);
    out->models = arena_alloc(S.arena, sizeof(IrModel *) * (size_t)(models.n + 1));
    for (int i = 0; i < models.n; i++) {
        S.models[i].ast = models.items[i];
        model_build(&S, &S.models[i]);
        out->models[S.n_models++] = S.models[i].model;
    }
    out->n_models = S.n_models;
    if (in->n_programs > 0)
        sema_directives(&S, in->programs[in->n_programs - 1], out);
    return in->diag->errors > 0 ? NULL : out;
}

IrModel *sema_find_model(const SemaProgram *p, const char *name)
{
    for (int i = 0; i < p->n_models; i++)
        if (strcmp(p->models[i]->name, name) == 0)
            return p->models[i];
    return NULL;
}

void sema_element_name(char *buf, size_t len, const char *name, IrShape s, int k)
{
    int idx[IR_MAX_RANK];
    for (int i = s.rank - 1; i >= 0; i--) {
        idx[i] = k % ir_shape_dim(s, i);
        k /= ir_shape_dim(s, i);
    }
    int at = snprintf(buf, len, "%s", name);
    for (int i = 0; i < s.rank && at >= 0 && (size_t)at < len; i++)
        at += snprintf(buf + at, len - (size_t)at, "%s%d%s", i ? "," : "[", idx[i],
                       i == s.rank - 1 ? "]" : "");
}

const char **sema_state_columns(Arena *arena, const IrModel *m)
{
    const char **cols = arena_alloc(arena, sizeof(char *) * (size_t)(m->ny + 1));
    char buf[256];
    int k = 0;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        for (int e = 0; e < ir_shape_size(v->shape); e++) {
            sema_element_name(buf, sizeof buf, v->name, v->shape, e);
            cols[k++] = arena_strndup(arena, buf, strlen(buf));
        }
    }
    return cols;
}
