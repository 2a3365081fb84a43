/* The kernel planner (plan.h): for the nodes of one kernel's outputs, in
 * topological order, which are registers, which read an input, a parameter or
 * a constant where it is, which slices are views, which node is computed
 * straight into its output, which outer products are only a batch sum, which
 * elementwise nodes are computed inside their reader's loop, and where in work
 * the rest live. The JIT and the C back end both plan here (one set of rules);
 * what differs between them is in PlanOptions. */
#include "plan.h"

/* ---- a model's kernels ---- */

static PlanKernelSpec spec_of(const char *name, int n_outputs, PlanOutput *outputs)
{
    return (PlanKernelSpec){.name = name, .n_outputs = n_outputs, .outputs = outputs, .nd = 0};
}

PlanKernelSpec plan_spec_rhs(Arena *arena, const IrModel *m)
{
    PlanOutput *o = arena_alloc(arena, sizeof *o * (size_t)(m->n_states + 1));
    for (int s = 0; s < m->n_states; s++)
        o[s] = (PlanOutput){m->rhs[s], 0, m->states[s].offset, m->ny, 0,
                            .shared = m->states[s].shared};
    return spec_of("rhs", m->n_states, o);
}

/* With shared states, each shared state's and each parameter's gradient is
 * the per-sample terms summed over the batch, then the shared rhs's own term
 * added (IrModel.adj_once) where it is not zero. */
PlanKernelSpec plan_spec_vjp(Arena *arena, const IrModel *m)
{
    int nw = m->n_states + m->n_params, n = 0;
    PlanOutput *o = arena_alloc(arena, sizeof *o * (size_t)(2 * nw + 1));
    for (int s = 0; s < m->n_states; s++) {
        bool sh = m->states[s].shared;
        o[n++] = (PlanOutput){m->adj_state[s], 0, m->states[s].offset, m->ny, sh, .shared = sh};
    }
    for (int j = 0; j < m->n_params; j++)
        o[n++] = (PlanOutput){m->adj_param[j], 1, m->params[j].offset, m->np, 1, false, false};
    for (int k = 0; m->adj_once && k < nw; k++) {
        if (ir_is_const_value(m->adj_once[k], 0))
            continue;
        bool state = k < m->n_states;
        const IrVar *v = state ? &m->states[k] : &m->params[k - m->n_states];
        o[n++] = (PlanOutput){m->adj_once[k], state ? 0 : 1, v->offset, state ? m->ny : m->np, 0,
                              .shared = state, .add = true};
    }
    return spec_of("vjp", n, o);
}

/* With shared states, the bordered layout of nd_kernels.h: the blocks, then
 * (dst 3) each sample's columns of the shared states, then (dst 4, once) the
 * shared states' own block. */
PlanKernelSpec plan_spec_jac(Arena *arena, const IrModel *m)
{
    PlanOutput *o = arena_alloc(arena, sizeof *o * 3);
    *o = (PlanOutput){m->jac, 0, 0, m->ny * m->ny, 0, false, false};
    if (m->ns == 0)
        return spec_of("jac", 1, o);
    o[1] = (PlanOutput){m->jac_border, 3, 0, m->ny * m->ns, 0, false, false};
    o[2] = (PlanOutput){m->jac_shared, 4, 0, 0, 0, false, false};
    return spec_of("jac", 3, o);
}

/* ---- node classes ---- */

bool plan_is_elementwise(IrOp op)
{
    IrOpClass c = ir_op_class(op);
    return c == IR_UNARY || c == IR_BINARY || op == IR_WHERE;
}

bool plan_is_batched(const IrNode *n)
{
    return (n->flags & IR_BATCHED) != 0;
}

int plan_index(const Plan *p, const IrNode *n)
{
    return p->index[n->id];
}

PlanMatDims plan_mat_dims(const IrNode *n)
{
    IrShape xs = n->args[0]->shape, ys = n->args[1]->shape;
    return (PlanMatDims){xs.rank == 2 ? xs.rows : 1, xs.rank == 2 ? xs.cols : xs.rows,
                         ys.rank == 2 ? ys.cols : 1};
}

bool plan_blas_pays(const PlanBlasRule *r, PlanMatDims d)
{
    return d.inner >= r->min_inner && (double)d.m * d.inner * d.k >= r->min_flops;
}

/* A slice is a view when its extent is contiguous in the source: whole rows,
 * or part of a single row (eval_slice's indexing in ir_eval.c). */
static bool slice_is_view(const IrNode *n)
{
    return n->shape.rows == 1 || n->shape.cols == n->args[0]->shape.cols;
}

/* An op whose elements cost tens of instructions (llvm_math.c's tanh and
 * exp, libm calls). */
static bool is_costly(IrOp op)
{
    if (op == IR_ATAN2)
        return true;
    return ir_op_class(op) == IR_UNARY && op != IR_NEG && op != IR_ABS && op != IR_SQRT &&
           op != IR_RELU && op != IR_SIGN && op != IR_STEP && op != IR_FLOOR;
}

/* ---- order and checks ---- */

void plan_order(Plan *p, Arena *arena, int n_outputs, const PlanOutput *outputs)
{
    *p = (Plan){.n_outputs = n_outputs, .outputs = outputs};
    IrNode **roots = arena_alloc(arena, sizeof *roots * (size_t)(n_outputs + 1));
    for (int o = 0; o < n_outputs; o++)
        roots[o] = outputs[o].node;
    p->count = n_outputs > 0 ? ir_topo_order(arena, n_outputs, roots, &p->order) : 0;
    int max_id = 0;
    for (int i = 0; i < p->count; i++)
        max_id = p->order[i]->id > max_id ? p->order[i]->id : max_id;
    p->index = arena_alloc(arena, sizeof *p->index * (size_t)(max_id + 1));
    p->uses = arena_alloc(arena, sizeof *p->uses * (size_t)(p->count + 1));
    p->user = arena_alloc(arena, sizeof *p->user * (size_t)(p->count + 1));
    for (int i = 0; i < p->count; i++) {
        p->index[p->order[i]->id] = i;
        p->user[i] = -1;
    }
    for (int i = 0; i < p->count; i++)
        for (int a = 0; a < p->order[i]->nargs; a++) {
            p->uses[plan_index(p, p->order[i]->args[a])]++;
            p->user[plan_index(p, p->order[i]->args[a])] = i;
        }
    for (int o = 0; o < n_outputs; o++)
        if (outputs[o].node)
            p->uses[plan_index(p, outputs[o].node)]++;
}

const char *plan_check(const Plan *p, bool rhs, int max_dst, int nd, int *nd_out)
{
    for (int o = 0; o < p->n_outputs; o++)
        if (!p->outputs[o].node)
            return "an output without a node";
    for (int o = 0; o < p->n_outputs; o++) {
        const PlanOutput *out = &p->outputs[o];
        int size = ir_shape_size(out->node->shape);
        if (out->dst < 0 || out->dst > (rhs ? 0 : max_dst) || out->offset < 0 ||
            (!out->batch_sum && !out->shared && !out->add &&
             (out->stride > 0 || plan_is_batched(out->node)) && out->offset + size > out->stride))
            return "an output outside its destination";
        if ((out->shared || out->add) && !out->batch_sum && plan_is_batched(out->node))
            return "a per-sample node in a shared or added output";
        if (out->add && (out->batch_sum || (!out->shared && out->dst != 1)))
            return "an added output that is not unbatched into the shared block or out1";
    }
    int need = 0;
    for (int i = 0; i < p->count; i++) {
        const IrNode *n = p->order[i];
        if (rhs && (n->op == IR_ADJOINT || n->op == IR_DATA))
            return "the rhs reads a cotangent or data leaf";
        if (n->op == IR_DATA && n->offset + ir_shape_size(n->shape) > need)
            need = n->offset + ir_shape_size(n->shape);
    }
    if (nd && need > nd)
        return "a data leaf beyond the spec's nd";
    *nd_out = nd ? nd : need;
    return NULL;
}

/* ---- homes ---- */

static void plan_leaf_or_view(Plan *p, int i)
{
    IrNode *n = p->order[i];
    PlanNode *pl = &p->node[i];
    pl->owner = i;
    pl->out = -1;
    switch (n->op) {
    case IR_CONST: pl->kind = ir_shape_size(n->shape) == 1 ? PLAN_REG : PLAN_CONST; return;
    case IR_TIME: pl->kind = PLAN_REG; return;
    case IR_STATE: case IR_ADJOINT: case IR_DATA: pl->kind = PLAN_INPUT; return;
    case IR_PARAM: pl->kind = PLAN_PARAM; return;
    case IR_SLICE:
    case IR_RESHAPE: { /* a reshape is the same elements in the same order: a view at 0 */
        const PlanNode *src = &p->node[plan_index(p, n->args[0])];
        if ((p->opt.expr_locals || src->kind != PLAN_REG) &&
            (n->op == IR_RESHAPE || slice_is_view(n))) {
            pl->kind = PLAN_VIEW;
            pl->owner = src->owner;
            pl->off = n->op == IR_RESHAPE ? 0 : (long)n->attr[0] * n->args[0]->shape.cols + n->attr[1];
            return;
        }
        break;
    }
    default: break;
    }
    bool reg = p->opt.sample_locals
                   ? ir_shape_size(n->shape) == 1
                   : n->shape.rank == 0 && !plan_is_batched(n) && plan_is_elementwise(n->op);
    pl->kind = reg ? PLAN_REG : PLAN_PENDING;
}

/* An outer product of two batched vectors whose only reader is a batch sum
 * (a parameter gradient such as outer(dh, x) for W in W @ x) is that sum,
 * U^T V: one product over the batch instead of B outer products stored and
 * then summed. */
static bool plan_is_fused(const Plan *p, const PlanOutput *out)
{
    const IrNode *n = out->node;
    return out->batch_sum && n->op == IR_OUTER && plan_is_batched(n->args[0]) &&
           plan_is_batched(n->args[1]) && p->uses[plan_index(p, n)] == 1;
}

/* Batched nodes of per-sample outputs are computed straight into the output
 * (no copy), once each: a node two outputs share is copied for the second. */
static void plan_outputs(Plan *p)
{
    for (int o = 0; o < p->n_outputs; o++) {
        const PlanOutput *out = &p->outputs[o];
        PlanNode *pl = &p->node[plan_index(p, out->node)];
        if (pl->kind == PLAN_PENDING && plan_is_fused(p, out)) {
            pl->kind = PLAN_FUSED;
            pl->out = o;
        } else if (pl->kind == PLAN_PENDING && plan_is_batched(out->node) && !out->batch_sum) {
            pl->kind = PLAN_OUT;
            pl->out = o;
            pl->off = out->offset;
        }
    }
}

/* A batched node reading an unbatched vector (the bias in W @ x + b) loops
 * sample by sample (map_is_flat in llvm_emit.c), leaving each sample's
 * size % width elements to scalar code. Inlined into a costly reader, that is
 * where the reader's elements are computed too; kept apart, the costly loop is one flat
 * loop over the batch: tanh(W1 @ x + b1) at B = 20, H = 50 went from 2 scalar
 * tanh in every 50 to none (docs/gradients.md). */
static bool inline_breaks_flat(const IrNode *n, const IrNode *r)
{
    if (!plan_is_batched(r) || !is_costly(r->op))
        return false;
    for (int a = 0; a < n->nargs; a++)
        if (!plan_is_batched(n->args[a]) && ir_shape_size(n->args[a]->shape) > 1)
            return true;
    return false;
}

/* Elementwise chains are fused: a node whose single reader is an elementwise
 * op of the same size and batching is computed inside that reader's loop, so
 * the chain is one loop with no buffers between its links (fewer loops also
 * mean less for O2 and the code generator: compile time tracks loop count).
 * With flat_costly, not into a costly reader whose loop it would make
 * per-sample (above). */
static void plan_inline(Plan *p)
{
    const PlanOptions *opt = &p->opt;
    for (int i = 0; i < p->count; i++) {
        IrNode *n = p->order[i];
        int u = p->user[i];
        PlanKind k = p->node[i].kind;
        bool movable = k == PLAN_PENDING || (opt->expr_locals && k == PLAN_REG);
        if (!movable || !plan_is_elementwise(n->op) || p->uses[i] != 1 || u < 0)
            continue;
        IrNode *r = p->order[u];
        if (plan_is_elementwise(r->op) && (opt->expr_locals || p->node[u].kind != PLAN_REG) &&
            ir_shape_size(r->shape) == ir_shape_size(n->shape) &&
            plan_is_batched(r) == plan_is_batched(n) &&
            !(opt->flat_costly && inline_breaks_flat(n, r)))
            p->node[i].kind = PLAN_INLINE;
    }
}

/* Node j is read at time i: an inlined node is computed there, so its own
 * operands are what is read. */
static void plan_read(Plan *p, int j, int i)
{
    if (p->node[j].kind == PLAN_INLINE) {
        for (int a = 0; a < p->order[j]->nargs; a++)
            plan_read(p, plan_index(p, p->order[j]->args[a]), i);
    } else if (p->node[j].last_use < i) {
        p->node[j].last_use = i;
    }
}

/* last_use of every owner: its readers' and its views' readers' last. */
static void plan_liveness(Plan *p)
{
    for (int i = 0; i < p->count; i++)
        p->node[i].last_use = i;
    for (int i = 0; i < p->count; i++)
        for (int a = 0; p->node[i].kind != PLAN_INLINE && a < p->order[i]->nargs; a++)
            plan_read(p, plan_index(p, p->order[i]->args[a]), i);
    for (int o = 0; o < p->n_outputs; o++) /* read by the final copies and sums */
        p->node[plan_index(p, p->outputs[o].node)].last_use = p->count;
    for (int i = 0; i < p->count; i++) /* a fused node's operands: by its final sum */
        for (int a = 0; p->node[i].kind == PLAN_FUSED && a < p->order[i]->nargs; a++)
            p->node[plan_index(p, p->order[i]->args[a])].last_use = p->count;
    for (int i = p->count - 1; i >= 0; i--) {
        PlanNode *pl = &p->node[i];
        PlanNode *owner = &p->node[pl->owner];
        if (owner->last_use < pl->last_use)
            owner->last_use = pl->last_use;
    }
}

/* First fit among free blocks; with nothing ever freed (no reuse_work) every
 * block is new, so the buffers lie in node order. */
static int pool_alloc(PlanPool *pool, long size)
{
    int best = -1;
    for (int b = 0; b < pool->n; b++) {
        PlanBlock *k = &pool->blk[b];
        if (!k->busy && k->size >= size && (best < 0 || k->size < pool->blk[best].size))
            best = b;
    }
    if (best < 0 && pool->n > 0 && !pool->blk[pool->n - 1].busy) {
        best = pool->n - 1; /* grow the free block at the end */
        pool->total += size - pool->blk[best].size;
        pool->blk[best].size = size;
    }
    if (best < 0) {
        best = pool->n++;
        pool->blk[best] = (PlanBlock){pool->total, size, false};
        pool->total += size;
    }
    pool->blk[best].busy = true;
    return best;
}

/* Frees the storage node j's reading at time i was the last use of
 * (through inlined nodes, their operands'). */
static void plan_release(Plan *p, int j, int i)
{
    if (p->node[j].kind == PLAN_INLINE) {
        for (int a = 0; a < p->order[j]->nargs; a++)
            plan_release(p, plan_index(p, p->order[j]->args[a]), i);
        return;
    }
    PlanNode *owner = &p->node[p->node[j].owner];
    if (owner->last_use != i)
        return;
    if (owner->kind == PLAN_FIXED)
        p->fixed.blk[owner->block].busy = false;
    else if (owner->kind == PLAN_SAMPLE)
        p->sample.blk[owner->block].busy = false;
}

static void plan_buffers(Plan *p)
{
    for (int i = 0; i < p->count; i++) {
        IrNode *n = p->order[i];
        PlanNode *pl = &p->node[i];
        if (pl->kind == PLAN_PENDING) {
            PlanPool *pool = plan_is_batched(n) ? &p->sample : &p->fixed;
            pl->kind = plan_is_batched(n) ? PLAN_SAMPLE : PLAN_FIXED;
            pl->block = pool_alloc(pool, ir_shape_size(n->shape));
            pl->off = pool->blk[pl->block].off;
        }
        for (int a = 0; p->opt.reuse_work && pl->kind != PLAN_INLINE && a < n->nargs; a++)
            plan_release(p, plan_index(p, n->args[a]), i);
    }
}

void plan_nodes(Plan *p, Arena *arena, const PlanOptions *opt)
{
    p->opt = *opt;
    p->node = arena_alloc(arena, sizeof *p->node * (size_t)(p->count + 1));
    p->fixed = (PlanPool){.blk = arena_alloc(arena, sizeof(PlanBlock) * (size_t)(p->count + 1))};
    p->sample = (PlanPool){.blk = arena_alloc(arena, sizeof(PlanBlock) * (size_t)(p->count + 1))};
    for (int i = 0; i < p->count; i++)
        plan_leaf_or_view(p, i);
    plan_outputs(p);
    plan_inline(p);
    if (opt->reuse_work)
        plan_liveness(p);
    plan_buffers(p);
}
