/* `encoder h[n] { dh/dt = f(h); h = cell(obs.x, h); mask = m; solver = ... }` in a
 * train or evaluate block (sema.h, SemaEncoder): the ODE-RNN encoder of latent ODEs
 * (Rubanova et al. 2019), run backwards in time over each sample's observations.
 *
 * Inside the block `h` is the hidden state. It is lowered first as a placeholder
 * (DATA slot 1, which nothing else uses) so that the model's states stay out of reach
 * (the block's expressions may read the parameters and, in the jump and the mask, the
 * observation's row, nothing else), then replaced by the state leaf of a model of its
 * own whose one state is h and whose parameters are the train model's: the pipeline
 * compiles that model's rhs and vjp like any other (compiler/plan/kernel_sets.c).
 * Outside the block, the encoder's name reads its value at the sample's first
 * observation: DATA columns the runner fills before every loss (tools/train.c), so
 * `sample`, `init` and the losses differentiate it like any data, and the runner
 * carries that gradient back through the encoder (runtime/train/nd_ode_rnn.c). */
#include "sema.h"

#include <string.h>

#include "sema_internal.h"

enum { EK_RHS, EK_JUMP, EK_MASK, EK_SOLVER, EK_COUNT };

static SrcLoc name_loc_of(const Ast *a)
{
    return a->name_loc.line ? a->name_loc : a->loc;
}

/* The encoder's size from `h[n]` (a vector; `h` alone is a scalar); 0 after an error. */
static int encoder_size(Sema *S, Scope *sc, const Ast *e, IrShape *shape)
{
    *shape = ir_scalar_shape();
    if (e->list.n > 1) {
        diag_error(S->diag, e->list.items[1]->loc, "encoder '%s' is a vector: give it one "
                   "size, like encoder %s[16] { ... }", e->name, e->name);
        return 0;
    }
    int n = 1;
    if (e->list.n == 1) {
        if (!sema_const_int(S, sc, e->list.items[0], "an encoder's size", 1, 1 << 16, &n))
            return 0;
        *shape = ir_vector_shape(n);
    }
    return n;
}

/* The record's entries by key: `dh/dt = ...` (the key the parser spells "dh/dt" for
 * an encoder named h), `h = ...`, `mask = ...`, `solver = ...`. */
static bool encoder_entries(Sema *S, const Ast *e, const Ast *seen[EK_COUNT])
{
    char rhs_key[300];
    snprintf(rhs_key, sizeof rhs_key, "d%s/dt", e->name);
    const char *keys[EK_COUNT] = {rhs_key, e->name, "mask", "solver"};
    bool ok = true;
    for (int i = 0; i < e->a->list.n; i++) {
        const Ast *en = e->a->list.items[i];
        int k = sema_find_name(en->name, EK_COUNT, keys);
        if (k < 0) {
            diag_error(S->diag, name_loc_of(en), "unknown entry '%s' in encoder '%s' (it takes "
                       "%s = ..., the hidden state's equation between observations; %s = ..., "
                       "its value after an observation; and optionally mask and solver)",
                       en->name, e->name, rhs_key, e->name);
            sema_suggest_among(S, en->name, name_loc_of(en), EK_COUNT, keys);
            ok = false;
        } else if (seen[k]) {
            diag_error(S->diag, name_loc_of(en), "duplicate entry '%s' in encoder '%s'", en->name,
                       e->name);
            diag_note(S->diag, name_loc_of(seen[k]), "the first '%s' is here", en->name);
            ok = false;
        } else if (en->op != '=') {
            diag_error(S->diag, en->loc, "expected '%s = value' in encoder '%s'", en->name,
                       e->name);
            ok = false;
        } else {
            seen[k] = en;
        }
    }
    for (int k = EK_RHS; ok && k <= EK_JUMP; k++)
        if (!seen[k]) {
            diag_error(S->diag, e->name_loc, "encoder '%s' needs %s = ..., %s", e->name, keys[k],
                       k == EK_RHS ? "how the hidden state evolves between observations, like "
                                     "dh/dt = f(h)"
                                   : "its value after each observation, like h = cell(obs.x, h)");
            ok = false;
        }
    return ok;
}

/* One of the block's expressions, of the shape `shape` (or a scalar for the mask);
 * NULL after an error. */
static IrNode *encoder_expr(Sema *S, Scope *sc, const Ast *en, unsigned allow, IrShape shape,
                            const char *what)
{
    Val v = sema_expr_in(S, sc, en->a, allow, what);
    if (v.kind == V_ERR)
        return NULL;
    if (v.kind != V_NODE) {
        diag_error(S->diag, en->a->loc, "%s must be a value, not a function", what);
        return NULL;
    }
    if (!ir_shape_eq(v.node->shape, shape)) {
        char got[32], want[32];
        diag_error(S->diag, en->a->loc, "%s is %s; it must be %s", what,
                   sema_shape(v.node->shape, got), sema_shape(shape, want));
        return NULL;
    }
    return v.node;
}

/* The encoder's own model: h as its one state, the train model's parameters. */
static IrModel *encoder_model(Sema *S, const IrModel *m, const Ast *e, IrShape shape, IrNode *rhs)
{
    IrModel *em = arena_alloc(S->arena, sizeof *em);
    char name[300];
    snprintf(name, sizeof name, "%s's encoder %s", m->name, e->name);
    *em = (IrModel){.name = strtab_cstr(S->names, name), .loc = e->loc, .n_states = 1,
                    .ny = ir_shape_size(shape), .n_params = m->n_params, .np = m->np};
    em->states = arena_alloc(S->arena, sizeof(IrVar));
    em->states[0] = (IrVar){.name = e->name, .loc = e->name_loc, .shape = shape, .offset = 0,
                            .init_kind = IR_INIT_NONE};
    em->params = arena_alloc(S->arena, sizeof(IrVar) * (size_t)(m->n_params ? m->n_params : 1));
    memcpy(em->params, m->params, sizeof(IrVar) * (size_t)m->n_params);
    em->rhs = arena_alloc(S->arena, sizeof(IrNode *));
    em->rhs[0] = rhs;
    return em;
}

/* Whether the block may be used where it is; reports why not. */
static bool encoder_placed(Sema *S, const SemaTrain *tr, const Ast *e)
{
    if (tr->encoder) {
        diag_error(S->diag, e->name_loc, "one encoder per %s in this version",
                   tr->evaluate ? "evaluate" : "train");
        diag_note(S->diag, tr->encoder->name_loc, "the first is '%s'", tr->encoder->name);
        return false;
    }
    if (!tr->data || tr->data->t_col < 0) {
        diag_error(S->diag, e->name_loc, "encoder '%s' reads a time series: its %s needs data = "
                   "a data set with a t column (each sample's observations)", e->name,
                   tr->evaluate ? "evaluate" : "train");
        return false;
    }
    return true;
}

static void lower_encoder(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *e)
{
    const Ast *seen[EK_COUNT] = {0};
    IrShape shape;
    int nh = encoder_size(S, mi->scope, e, &shape);
    if (!nh || !encoder_placed(S, tr, e) ||
        !sema_block_name_free(S, mi, tr, e->name, e->name_loc, "encoder") ||
        !encoder_entries(S, e, seen))
        return;
    Scope *sc = scope_new(S, mi->scope);
    Binding *h = scope_declare(S, sc, e->name, B_LET, e->name_loc, e);
    IrNode *placeholder = ir_data(S->ir, 1, 0, shape);
    h->val = val_node(placeholder);
    char what[300];
    snprintf(what, sizeof what, "the encoder's d%s/dt", e->name);
    IrNode *rhs = encoder_expr(S, sc, seen[EK_RHS], ALLOW_PARAM | ALLOW_DATA, shape, what);
    snprintf(what, sizeof what, "the encoder's jump %s = ...", e->name);
    IrNode *jump = encoder_expr(S, sc, seen[EK_JUMP], ALLOW_PARAM | ALLOW_DATA, shape, what);
    IrNode *mask = seen[EK_MASK] ? encoder_expr(S, sc, seen[EK_MASK], ALLOW_DATA,
                                                ir_scalar_shape(), "the encoder's mask")
                                 : NULL;
    if (!rhs || !jump || (seen[EK_MASK] && !mask))
        return;
    IrNode *state = ir_state(S->ir, 0, 0, shape);
    IrNode *roots[2] = {rhs, jump};
    ir_replace(S->ir, 2, roots, placeholder, state);
    if (sema_deps(S, roots[0]) & ALLOW_DATA) {
        diag_error(S->diag, seen[EK_RHS]->a->loc, "the encoder's d%s/dt reads the data row: "
                   "observations enter through the jump %s = ..., between them the hidden "
                   "state follows its own equation", e->name, e->name);
        return;
    }
    SemaEncoder *enc = arena_alloc(S->arena, sizeof *enc);
    *enc = (SemaEncoder){.name = e->name, .loc = e->loc, .name_loc = e->name_loc,
                         .jump = roots[1], .mask = mask, .col = tr->data->ncols, .nh = nh};
    enc->model = encoder_model(S, mi->model, e, shape, roots[0]);
    if (seen[EK_SOLVER]) {
        sema_solver_call(S, seen[EK_SOLVER]->a, &enc->solver);
        const SemaSolver *sv = &enc->solver;
        if (sv->name && (nd_method_is_implicit(sv->method) || nd_method_is_sde(sv->method) ||
                         sv->method == ND_VERLET))
            diag_error(S->diag, sv->loc, "an encoder steps with an explicit Runge-Kutta method "
                       "(rk4, dopri5, ...), not %s", sv->name);
    } else {
        enc->solver = tr->solver;
    }
    tr->encoder = enc;
}

void sema_train_encoders(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *const *entries, int n)
{
    for (int i = 0; i < n; i++) {
        int before = S->diag->errors;
        lower_encoder(S, mi, tr, entries[i]);
        if (S->diag->errors != before && !tr->encoder_failed)
            tr->encoder_failed = entries[i]->name;
    }
}

bool sema_encoder_lookup(const SemaTrain *tr, IrBuilder *b, const char *name, IrNode **value)
{
    if (tr && tr->encoder_failed && strcmp(tr->encoder_failed, name) == 0) {
        *value = NULL; /* reported where it failed */
        return true;
    }
    const SemaEncoder *enc = tr ? tr->encoder : NULL;
    if (!enc || strcmp(enc->name, name) != 0)
        return false;
    *value = ir_data(b, 0, enc->col, enc->model->states[0].shape);
    return true;
}

/* The encoder's solver when its block gives none: the train's (an evaluate's), when
 * that is an explicit method, else dopri5 with its defaults. */
void sema_encoder_solver(Sema *S, SemaTrain *tr)
{
    SemaEncoder *enc = tr->encoder;
    if (!enc || enc->solver.name)
        return;
    const SemaSolver *sv = &tr->solver;
    if (sv->name && !nd_method_is_implicit(sv->method) && !nd_method_is_sde(sv->method) &&
        sv->method != ND_VERLET)
        enc->solver = *sv;
    else
        sema_default_solver(S, enc->name_loc, &enc->solver);
}

/* ir_rebuild as a visitor: notes a DATA leaf of slot 0 before column ncols. */
typedef struct RowRead {
    int ncols;
    bool reads;
} RowRead;

static IrNode *note_row_leaf(void *ctx, IrBuilder *b, const IrNode *leaf)
{
    (void)b;
    RowRead *r = ctx;
    if (leaf->op == IR_DATA && leaf->slot == 0 && leaf->offset < r->ncols)
        r->reads = true;
    return NULL;
}

bool sema_reads_row(Sema *S, IrNode *n, int ncols)
{
    RowRead r = {ncols, false};
    IrNode *out;
    if (n)
        ir_rebuild(S->ir, 1, &n, note_row_leaf, &r, &out);
    return r.reads;
}
