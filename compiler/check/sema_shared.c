/* Shared states (docs/language.md, "Shared states"): after the program is
 * checked (compiler/driver.c, for the JIT), each train, evaluate and batched
 * solve that integrates a state whose initial value reads no per-sample
 * quantity and whose right-hand side reads only such states (and parameters,
 * constants, t) gets its own copy of the model with those states in the
 * kernel ABI's shared block (nd_kernels.h): integrated once per batch, not
 * once per sample. The copy's IR is the model's rebuilt with shared leaves
 * (ir_rebuild); its states keep their order, names and shapes, and their
 * offsets count per-sample and shared elements apart. `option shared_states
 * = per_copy` keeps every state per sample. */
#include "sema.h"

#include "params_init.h"

#include <string.h>

/* Marks in reads[] the states (by slot) that root reads. */
static void states_read(IrNode *root, bool *reads, int n_states)
{
    Arena *scratch = arena_new();
    IrNode **order;
    int n = ir_topo_order(scratch, 1, &root, &order);
    for (int i = 0; i < n; i++)
        if (order[i]->op == IR_STATE && order[i]->slot < n_states)
            reads[order[i]->slot] = true;
    arena_free(scratch);
}

/* A state is per sample when its initial value is (it reads data, it is
 * drawn, or it is observed), or when its rhs reads a per-sample state. */
static void close_per_sample(const IrModel *m, bool *per_sample, Arena *a)
{
    bool *reads = arena_alloc(a, sizeof *reads * (size_t)(m->n_states + 1));
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < m->n_states; i++) {
            if (per_sample[i])
                continue;
            memset(reads, 0, sizeof *reads * (size_t)m->n_states);
            states_read(m->rhs[i], reads, m->n_states);
            for (int j = 0; j < m->n_states && !per_sample[i]; j++)
                if (reads[j] && per_sample[j])
                    per_sample[i] = changed = true;
        }
    }
}

static bool is_drawn(IrInitKind k)
{
    return k == IR_INIT_NORMAL || k == IR_INIT_UNIFORM || k == IR_INIT_RADEMACHER ||
           k == IR_INIT_GLOROT;
}

/* The initial values a train starts its states from: per sample when they
 * read data, when the state is drawn, when a time series observes it (no
 * init), and for the running cost (one per sample by definition). */
static void train_per_sample(const SemaTrain *tr, bool *per_sample)
{
    const IrModel *m = tr->augmented;
    bool series = tr->data && tr->data->t_col >= 0;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = i < tr->model->n_states && tr->init ? tr->init[i] : NULL;
        if (i >= tr->model->n_states || is_drawn(v->init_kind))
            per_sample[i] = true;
        else if (init)
            per_sample[i] = (init->flags & IR_BATCHED) != 0;
        else
            per_sample[i] = series || !v->init || (v->init->flags & IR_BATCHED) != 0;
    }
}

typedef struct Remap {
    const IrModel *from, *to;
} Remap;

/* A per-sample state leaf of the model becomes the copy's leaf of that state. */
static IrNode *remap_leaf(void *ctx, IrBuilder *b, const IrNode *leaf)
{
    const Remap *r = ctx;
    if (leaf->op != IR_STATE || ir_is_shared(leaf) || leaf->slot >= r->from->n_states ||
        leaf->offset != r->from->states[leaf->slot].offset)
        return NULL;
    return ir_model_state(b, r->to, leaf->slot);
}

/* m's copy with the states not marked per sample in the shared block. */
typedef struct Share {
    Arena *arena;
    IrBuilder *ir;
} Share;

static IrModel *shared_copy(Share *S, const IrModel *m, const IrModel *origin,
                            const bool *per_sample)
{
    IrModel *c = arena_alloc(S->arena, sizeof *c);
    *c = *m; /* name, params (same offsets), np */
    c->states = arena_alloc(S->arena, sizeof(IrVar) * (size_t)(m->n_states + 1));
    c->rhs = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(m->n_states + 1));
    memcpy(c->states, m->states, sizeof(IrVar) * (size_t)m->n_states);
    c->ny = c->ns = 0;
    for (int i = 0; i < m->n_states; i++) {
        IrVar *v = &c->states[i];
        v->shared = !per_sample[i];
        int *at = v->shared ? &c->ns : &c->ny;
        v->offset = *at;
        *at += ir_shape_size(v->shape);
    }
    c->origin = origin;
    c->adj_state = c->adj_param = c->adj_once = c->adj_init = NULL;
    c->adj_blocked = NULL;
    c->jac = c->jac_border = c->jac_shared = NULL;
    Remap r = {m, c};
    ir_rebuild(S->ir, m->n_states, m->rhs, remap_leaf, &r, c->rhs);
    return c;
}

static void remap_exprs(Share *S, const Remap *r, int n, IrNode **exprs)
{
    if (n > 0)
        ir_rebuild(S->ir, n, exprs, remap_leaf, (void *)r, exprs);
}

/* A train's or an evaluate's copy (every solver and gradient path takes the
 * shared block: the implicit ones solve its bordered matrix). */
static void share_train(Share *S, SemaTrain *tr)
{
    const IrModel *m = tr->augmented;
    /* samples stepped apart each integrate their own copy (their solo solves) */
    /* events reset samples in the model's own layout (nd_events.c); an SDE's
     * every sample has its own Brownian path (nd_sde.c) */
    if (!m || tr->solver.step_control == ND_STEP_PER_SAMPLE || m->n_events > 0 || m->diffusion)
        return;
    bool *per_sample = arena_alloc(S->arena, sizeof(bool) * (size_t)(m->n_states + 1));
    train_per_sample(tr, per_sample);
    close_per_sample(m, per_sample, S->arena);
    int shared = 0, each = 0;
    for (int i = 0; i < m->n_states; i++)
        *(per_sample[i] ? &each : &shared) += 1;
    if (!shared || !each) /* nothing to share, or nothing per sample: one layout */
        return;
    IrModel *c = shared_copy(S, m, tr->model, per_sample);
    Remap r = {m, c};
    IrNode *one[3] = {tr->loss, tr->final_loss, NULL};
    remap_exprs(S, &r, 2, one);
    tr->loss = one[0];
    tr->final_loss = one[1];
    remap_exprs(S, &r, tr->n_metrics, tr->metrics);
    tr->augmented = c;
}

/* A batched solve's states: per sample when drawn or started from a data row
 * (or without an initial value, which the checker refused). */
static void share_solve(Share *S, SemaSolve *s)
{
    const IrModel *m = s->model;
    /* events reset and freeze samples in the model's own layout (nd_events.c);
     * an SDE's every sample has its own Brownian path (nd_sde.c) */
    if (!m || (s->samples <= 0 && !s->rows) || s->solver.step_control == ND_STEP_PER_SAMPLE ||
        m->n_events > 0 || m->diffusion)
        return;
    bool *per_sample = arena_alloc(S->arena, sizeof(bool) * (size_t)(m->n_states + 1));
    int shared = 0, each = 0;
    for (int i = 0; i < m->n_states; i++) {
        IrNode *init = s->init && s->init[i] ? s->init[i] : m->states[i].init;
        per_sample[i] = params_state_draw(m, s->draw, i).kind != IR_INIT_NONE || !init ||
                        (init->flags & IR_BATCHED) != 0;
    }
    close_per_sample(m, per_sample, S->arena);
    for (int i = 0; i < m->n_states; i++)
        *(per_sample[i] ? &each : &shared) += 1;
    if (shared && each)
        s->integrated = shared_copy(S, m, m, per_sample);
}

void sema_share_states(SemaProgram *prog, Arena *arena, IrBuilder *ir)
{
    Share S = {arena, ir};
    if (prog->shared_per_copy)
        return;
    for (int i = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_TRAIN || prog->dirs[i].kind == SEMA_EVALUATE)
            share_train(&S, &prog->dirs[i].train);
        else if (prog->dirs[i].kind == SEMA_SOLVE)
            share_solve(&S, &prog->dirs[i].solve);
}
