/* IR -> LLVM IR, the driver: one module per model holding its kernels, the rhs
 * (NdRhsFn) and the derived ones (NdKernelFn: vjp, jac, rhs_vjp, a loss ...),
 * each a list of outputs (CgOutput) emitted in IR topological order. A plan pass
 * first decides where each node's values live (a register, an input or output in
 * place, a constant global, a view, a work buffer reused after its last reader);
 * the loops are then written by llvm_emit.c and llvm_matmul.c. */
#include "llvm_jit.h"
#include "llvm_jit_internal.h"
#include "llvm_codegen_internal.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h> /* the host's features */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- planning ---- */

static bool is_elementwise(IrOp op)
{
    IrOpClass c = ir_op_class(op);
    return c == IR_UNARY || c == IR_BINARY || op == IR_WHERE;
}

static bool is_batched(const IrNode *n)
{
    return (n->flags & IR_BATCHED) != 0;
}

int cg_topo(const Cg *cg, const IrNode *n)
{
    return cg->index[n->id];
}

/* A slice is a view when its extent is contiguous in the source: whole rows,
 * or part of a single row (eval_slice's indexing in ir_eval.c). */
static bool slice_is_view(const IrNode *n)
{
    return n->shape.rows == 1 || n->shape.cols == n->args[0]->shape.cols;
}

static void plan_leaf_or_view(Cg *cg, int i)
{
    IrNode *n = cg->order[i];
    Plan *pl = &cg->plan[i];
    pl->owner = i;
    switch (n->op) {
    case IR_CONST: pl->kind = ir_shape_size(n->shape) == 1 ? PK_REG : PK_CONST; return;
    case IR_TIME: pl->kind = PK_REG; return;
    case IR_STATE: case IR_ADJOINT: case IR_DATA: pl->kind = PK_INPUT; return;
    case IR_PARAM: pl->kind = PK_PARAM; return;
    case IR_SLICE: {
        const Plan *src = &cg->plan[cg_topo(cg, n->args[0])];
        if (src->kind != PK_REG && slice_is_view(n)) {
            pl->kind = PK_VIEW;
            pl->owner = src->owner;
            pl->off = (long)n->attr[0] * n->args[0]->shape.cols + n->attr[1];
            return;
        }
        break;
    }
    default: break;
    }
    bool scalar = n->shape.rank == 0 && !is_batched(n);
    pl->kind = scalar && is_elementwise(n->op) ? PK_REG : PK_PENDING;
}

/* An outer product of two batched vectors whose only reader is a batch sum
 * (a parameter gradient such as outer(dh, x) for W in W @ x) is that sum,
 * U^T V: one product over the batch instead of B outer products stored and
 * then summed. */
static bool plan_is_fused(const Cg *cg, const CgOutput *out)
{
    const IrNode *n = out->node;
    return out->batch_sum && n->op == IR_OUTER && is_batched(n->args[0]) &&
           is_batched(n->args[1]) && cg->uses[cg_topo(cg, n)] == 1;
}

/* Batched nodes of per-sample outputs are computed straight into the output
 * (no copy), once each: a node two outputs share is copied for the second. */
static void plan_outputs(Cg *cg)
{
    for (int o = 0; o < cg->k->n_outputs; o++) {
        const CgOutput *out = &cg->k->outputs[o];
        Plan *pl = &cg->plan[cg_topo(cg, out->node)];
        if (pl->kind == PK_PENDING && plan_is_fused(cg, out)) {
            pl->kind = PK_FUSED;
            pl->out = o;
        } else if (pl->kind == PK_PENDING && is_batched(out->node) && !out->batch_sum) {
            pl->kind = PK_OUT;
            pl->out = o;
            pl->off = out->offset;
        }
    }
}

/* An op whose elements cost tens of instructions (llvm_math.c's tanh and
 * exp, libm calls). */
static bool is_costly(IrOp op)
{
    return ir_op_class(op) == IR_UNARY && op != IR_NEG && op != IR_ABS && op != IR_SQRT &&
           op != IR_RELU && op != IR_SIGN && op != IR_STEP;
}

/* A batched node reading an unbatched vector (the bias in W @ x + b) loops
 * sample by sample (map_is_flat in llvm_emit.c), leaving each sample's
 * size % width elements to scalar code. Inlined into a costly reader, that is
 * where the reader's elements are computed too; kept apart, the costly loop is one flat
 * loop over the batch: tanh(W1 @ x + b1) at B = 20, H = 50 went from 2 scalar
 * tanh in every 50 to none (docs/gradients.md). */
static bool inline_breaks_flat(const IrNode *n, const IrNode *r)
{
    if (!is_batched(r) || !is_costly(r->op))
        return false;
    for (int a = 0; a < n->nargs; a++)
        if (!is_batched(n->args[a]) && ir_shape_size(n->args[a]->shape) > 1)
            return true;
    return false;
}

/* Elementwise chains are fused: a node whose single reader is an elementwise
 * op of the same size and batching is computed inside that reader's loop, so
 * the chain is one loop with no buffers between its links (fewer loops also
 * mean less for O2 and the code generator: compile time tracks loop count).
 * Not into a costly reader whose loop it would make per-sample (above). */
static void plan_inline(Cg *cg)
{
    for (int i = 0; i < cg->count; i++) {
        IrNode *n = cg->order[i];
        int u = cg->user[i];
        if (cg->plan[i].kind != PK_PENDING || !is_elementwise(n->op) || cg->uses[i] != 1 || u < 0)
            continue;
        IrNode *r = cg->order[u];
        if (is_elementwise(r->op) && cg->plan[u].kind != PK_REG &&
            ir_shape_size(r->shape) == ir_shape_size(n->shape) && is_batched(r) == is_batched(n) &&
            !inline_breaks_flat(n, r))
            cg->plan[i].kind = PK_INLINE;
    }
}

/* Node j is read at time i: an inlined node is computed there, so its own
 * operands are what is read. */
static void plan_read(Cg *cg, int j, int i)
{
    if (cg->plan[j].kind == PK_INLINE) {
        for (int a = 0; a < cg->order[j]->nargs; a++)
            plan_read(cg, cg_topo(cg, cg->order[j]->args[a]), i);
    } else if (cg->plan[j].last_use < i) {
        cg->plan[j].last_use = i;
    }
}

/* last_use of every owner: its readers' and its views' readers' last. */
static void plan_liveness(Cg *cg)
{
    for (int i = 0; i < cg->count; i++)
        cg->plan[i].last_use = i;
    for (int i = 0; i < cg->count; i++)
        for (int a = 0; cg->plan[i].kind != PK_INLINE && a < cg->order[i]->nargs; a++)
            plan_read(cg, cg_topo(cg, cg->order[i]->args[a]), i);
    for (int o = 0; o < cg->k->n_outputs; o++) /* read by the final copies and sums */
        cg->plan[cg_topo(cg, cg->k->outputs[o].node)].last_use = cg->count;
    for (int i = 0; i < cg->count; i++) /* a fused node's operands: by its final sum */
        for (int a = 0; cg->plan[i].kind == PK_FUSED && a < cg->order[i]->nargs; a++)
            cg->plan[cg_topo(cg, cg->order[i]->args[a])].last_use = cg->count;
    for (int i = cg->count - 1; i >= 0; i--) {
        Plan *pl = &cg->plan[i];
        Plan *owner = &cg->plan[pl->owner];
        if (owner->last_use < pl->last_use)
            owner->last_use = pl->last_use;
    }
}

static int pool_alloc(Pool *pool, long size)
{
    int best = -1;
    for (int b = 0; b < pool->n; b++) {
        PoolBlock *k = &pool->blk[b];
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
        pool->blk[best] = (PoolBlock){pool->total, size, false};
        pool->total += size;
    }
    pool->blk[best].busy = true;
    return best;
}

/* Frees the storage node j's reading at time i was the last use of
 * (through inlined nodes, their operands'). */
static void plan_release(Cg *cg, int j, int i)
{
    if (cg->plan[j].kind == PK_INLINE) {
        for (int a = 0; a < cg->order[j]->nargs; a++)
            plan_release(cg, cg_topo(cg, cg->order[j]->args[a]), i);
        return;
    }
    Plan *owner = &cg->plan[cg->plan[j].owner];
    if (owner->last_use != i)
        return;
    if (owner->kind == PK_FIXED)
        cg->fixed.blk[owner->block].busy = false;
    else if (owner->kind == PK_SAMPLE)
        cg->sample.blk[owner->block].busy = false;
}

static void plan_buffers(Cg *cg)
{
    for (int i = 0; i < cg->count; i++) {
        IrNode *n = cg->order[i];
        Plan *pl = &cg->plan[i];
        if (pl->kind == PK_PENDING) {
            Pool *pool = is_batched(n) ? &cg->sample : &cg->fixed;
            pl->kind = is_batched(n) ? PK_SAMPLE : PK_FIXED;
            pl->block = pool_alloc(pool, ir_shape_size(n->shape));
            pl->off = pool->blk[pl->block].off;
        }
        for (int a = 0; pl->kind != PK_INLINE && a < n->nargs; a++)
            plan_release(cg, cg_topo(cg, n->args[a]), i);
    }
}

static void cg_plan(Cg *cg)
{
    int max_id = 0;
    for (int i = 0; i < cg->count; i++)
        max_id = cg->order[i]->id > max_id ? cg->order[i]->id : max_id;
    cg->index = arena_alloc(cg->arena, sizeof *cg->index * (size_t)(max_id + 1));
    cg->plan = arena_alloc(cg->arena, sizeof *cg->plan * (size_t)cg->count);
    cg->val = arena_alloc(cg->arena, sizeof *cg->val * (size_t)cg->count);
    cg->fixed.blk = arena_alloc(cg->arena, sizeof(PoolBlock) * (size_t)cg->count);
    cg->sample.blk = arena_alloc(cg->arena, sizeof(PoolBlock) * (size_t)cg->count);
    cg->uses = arena_alloc(cg->arena, sizeof *cg->uses * (size_t)cg->count);
    cg->user = arena_alloc(cg->arena, sizeof *cg->user * (size_t)cg->count);
    for (int i = 0; i < cg->count; i++) {
        cg->index[cg->order[i]->id] = i;
        cg->uses[i] = 0;
        cg->user[i] = -1;
    }
    for (int i = 0; i < cg->count; i++)
        for (int a = 0; a < cg->order[i]->nargs; a++) {
            cg->uses[cg_topo(cg, cg->order[i]->args[a])]++;
            cg->user[cg_topo(cg, cg->order[i]->args[a])] = i;
        }
    for (int o = 0; o < cg->k->n_outputs; o++)
        cg->uses[cg_topo(cg, cg->k->outputs[o].node)]++;
    for (int i = 0; i < cg->count; i++)
        plan_leaf_or_view(cg, i);
    plan_outputs(cg);
    plan_inline(cg);
    plan_liveness(cg);
    plan_buffers(cg);
}

/* ---- nodes ---- */

/* A constant's global, shared by the module's kernels (named by node id: one
 * builder per model, so one id is one node). */
static LLVMValueRef cg_const_global(Cg *cg, const IrNode *n)
{
    int size = ir_shape_size(n->shape);
    char name[32];
    snprintf(name, sizeof name, "v_const_n%d", n->id);
    LLVMTypeRef t_arr = LLVMArrayType(cg->t_f64, (unsigned)size);
    LLVMValueRef zero[2] = {cg_i64(cg, 0), cg_i64(cg, 0)};
    LLVMValueRef g = LLVMGetNamedGlobal(cg->mod, name);
    if (g)
        return LLVMBuildInBoundsGEP2(cg->bld, t_arr, g, zero, 2, name);
    LLVMValueRef *elts = arena_alloc(cg->arena, sizeof *elts * (size_t)size);
    for (int k = 0; k < size; k++)
        elts[k] = cg_f64(cg, n->value[k]);
    g = LLVMAddGlobal(cg->mod, t_arr, name);
    LLVMSetInitializer(g, LLVMConstArray(cg->t_f64, elts, (unsigned)size));
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    LLVMSetAlignment(g, 16);
    return LLVMBuildInBoundsGEP2(cg->bld, t_arr, g, zero, 2, name);
}

/* Every element equal: elementwise readers use an immediate. */
static LLVMValueRef cg_const_splat(Cg *cg, const IrNode *n)
{
    int size = ir_shape_size(n->shape);
    for (int k = 1; k < size; k++)
        if (memcmp(&n->value[k], &n->value[0], sizeof(double)) != 0)
            return NULL;
    return cg_f64(cg, n->value[0]);
}

/* Storage of node i per its plan (at the top level, so it dominates readers). */
static void cg_bind(Cg *cg, int i, const char *name)
{
    IrNode *n = cg->order[i];
    const Plan *pl = &cg->plan[i];
    CgVal *v = &cg->val[i];
    v->size = ir_shape_size(n->shape);
    switch (pl->kind) {
    case PK_INPUT: {
        LLVMValueRef base = n->op == IR_STATE ? cg->v_y : n->op == IR_ADJOINT ? cg->v_a : cg->v_d;
        v->ptr = cg_gep(cg, base, cg_i64(cg, n->offset), name);
        v->bstride = n->op == IR_DATA ? cg->nd : cg->m->ny;
        break;
    }
    case PK_PARAM: v->ptr = cg_gep(cg, cg->v_p, cg_i64(cg, n->offset), name); break;
    case PK_CONST:
        v->ptr = cg_const_global(cg, n);
        v->reg = cg_const_splat(cg, n);
        break;
    case PK_VIEW: {
        const CgVal *src = &cg->val[cg_topo(cg, n->args[0])];
        v->ptr = cg_gep(cg, src->ptr, cg_i64(cg, pl->off), name);
        v->bstride = src->bstride;
        v->reg = src->reg;
        v->scope = src->scope;
        break;
    }
    case PK_FIXED:
        v->ptr = cg_gep(cg, cg->v_work, cg_i64(cg, pl->off), name);
        v->scope = 1 + pl->block;
        break;
    case PK_SAMPLE:
        v->ptr = cg_gep(cg, cg->v_sample, cg_mul(cg, cg->v_B, pl->off), name);
        v->bstride = v->size;
        v->scope = 1 + cg->fixed.n + pl->block;
        break;
    case PK_OUT: {
        const CgOutput *o = &cg->k->outputs[pl->out];
        v->ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, pl->off), name);
        v->bstride = o->stride;
        break;
    }
    default: break;
    }
}

/* An unbatched scalar computed in registers (no loop). */
static void emit_reg(Cg *cg, int i, const char *name)
{
    IrNode *n = cg->order[i];
    CgVal *v = &cg->val[i];
    if (n->op == IR_CONST) {
        v->reg = cg_f64(cg, n->value[0]);
        return;
    }
    if (n->op == IR_TIME) {
        v->reg = cg->v_t;
        return;
    }
    LLVMValueRef x[3];
    for (int a = 0; a < n->nargs; a++)
        x[a] = cg_load(cg, &cg->val[cg_topo(cg, n->args[a])], NULL, cg_i64(cg, 0));
    v->reg = cg_element_op(cg, n, x);
    size_t len;
    /* only a fresh instruction: the builder may have folded to an argument */
    if (LLVMIsAInstruction(v->reg) && (LLVMGetValueName2(v->reg, &len), len == 0))
        LLVMSetValueName2(v->reg, name, strlen(name));
}

static void emit_node(Cg *cg, int i)
{
    IrNode *n = cg->order[i];
    char name[64], tag[40];
    snprintf(tag, sizeof tag, "n%d_%s", n->id, ir_op_name(n->op));
    for (char *s = tag; *s; s++) /* "@", "+": keep names identifier-like */
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            *s = 'x';
    snprintf(name, sizeof name, "v_%s", tag);
    cg->val[i].size = ir_shape_size(n->shape);
    if (cg->plan[i].kind == PK_FUSED) /* emitted as its output's sum */
        return;
    if (cg->plan[i].kind == PK_INLINE) { /* emitted in its reader's loop */
        cg->val[i].inl = i + 1;
        cg->val[i].bstride = is_batched(n) ? cg->val[i].size : 0;
        return;
    }
    if (cg->plan[i].kind == PK_REG) {
        emit_reg(cg, i, name);
        return;
    }
    cg_bind(cg, i, name);
    const CgVal *out = &cg->val[i];
    const CgVal *args[3];
    switch (n->op) {
    case IR_CONST: case IR_TIME: case IR_STATE: case IR_PARAM: case IR_ADJOINT: case IR_DATA:
        return;
    case IR_MATMUL: cg_emit_matmul(cg, n, out, tag); return;
    case IR_TRANSPOSE: case IR_OUTER: cg_emit_grid(cg, n, out, tag); return;
    case IR_SLICE:
        if (cg->plan[i].kind != PK_VIEW)
            cg_emit_grid(cg, n, out, tag);
        return;
    case IR_SUM: cg_emit_sum(cg, n, out, tag); return;
    case IR_PAD: cg_emit_pad(cg, n, out, tag); return;
    case IR_CONCAT: case IR_STACK: cg_emit_join(cg, n, out, tag); return;
    default:
        for (int a = 0; a < n->nargs && a < 3; a++)
            args[a] = &cg->val[cg_topo(cg, n->args[a])];
        cg_emit_map(cg, n, out, n->nargs, args, tag);
        return;
    }
}

/* out[offset + k] = sum over the batch of src's element k: zeros, then one
 * pass per sample in sample order (the loop over k vectorises); an unbatched
 * node is the same in every sample, so its sum is B times its value. */
static void emit_batch_sum(Cg *cg, const CgOutput *o, const CgVal *src, const char *tag)
{
    CgVal dst = {.ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, o->offset), "v_sum"),
                 .size = src->size};
    char name[64];
    CgLoop lb, lk;
    if (!src->bstride) {
        LLVMValueRef nb = LLVMBuildSIToFP(cg->bld, cg->v_B, cg->t_f64, "v_nb");
        snprintf(name, sizeof name, "%s_k", tag);
        LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, src->size), name, NULL);
        cg_store(cg, &dst, NULL, k, LLVMBuildFMul(cg->bld, cg_load(cg, src, NULL, k), nb, ""));
        cg_loop_end(cg, &lk, NULL);
        return;
    }
    CgVal zero = {.reg = cg_f64(cg, 0), .size = 1};
    const CgVal *z = &zero;
    cg_emit_map(cg, NULL, &dst, 1, &z, tag);
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, src->size), name, NULL);
    LLVMValueRef acc = LLVMBuildFAdd(cg->bld, cg_load(cg, &dst, NULL, k), cg_load(cg, src, b, k), "");
    cg_store(cg, &dst, NULL, k, acc);
    cg_loop_end(cg, &lk, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* Outputs not computed in place are copied (broadcast when unbatched) or
 * summed over the batch. */
static void emit_outputs(Cg *cg)
{
    for (int i = 0; i < cg->k->n_outputs; i++) {
        const CgOutput *o = &cg->k->outputs[i];
        int r = cg_topo(cg, o->node);
        const CgVal *src = &cg->val[r];
        char tag[32];
        snprintf(tag, sizeof tag, "out%d", i);
        if (cg->plan[r].kind == PK_FUSED)
            cg_emit_outer_sum(cg, o, tag);
        else if (o->batch_sum)
            emit_batch_sum(cg, o, src, tag);
        if (o->batch_sum || (cg->plan[r].kind == PK_OUT && cg->plan[r].out == i))
            continue;
        CgVal out = {.ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, o->offset), "v_out"),
                     .bstride = o->stride, .size = src->size};
        cg_emit_map(cg, NULL, &out, 1, &src, tag);
    }
}

/* ---- the function ---- */

static void cg_types(Cg *cg)
{
    cg->t_f64 = LLVMDoubleTypeInContext(cg->ctx);
    cg->t_i64 = LLVMInt64TypeInContext(cg->ctx);
    cg->t_i32 = LLVMInt32TypeInContext(cg->ctx);
    cg->t_ptr = LLVMPointerType(cg->t_f64, 0);
    LLVMTypeRef i = cg->t_i32, d = cg->t_f64, p = cg->t_ptr;
    LLVMTypeRef gemm[14] = {i, i, i, i, i, i, d, p, i, p, i, d, p, i};
    LLVMTypeRef gemv[12] = {i, i, i, i, d, p, i, p, i, d, p, i};
    cg->t_dgemm = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), gemm, 14, 0);
    cg->t_dgemv = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), gemv, 12, 0);
}

static void cg_add_attr(Cg *cg, unsigned idx, const char *attr)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(attr, strlen(attr));
    LLVMAddAttributeAtIndex(cg->fn, idx, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* The signature of NdRhsFn or NdKernelFn. The pointers are noalias: the
 * runtime never passes outputs or work overlapping anything else, and saying
 * so lets loops vectorise without run-time overlap checks (inputs, only read,
 * may alias each other). */
static void cg_function(Cg *cg)
{
    LLVMTypeRef f = cg->t_f64, p = cg->t_ptr, i = cg->t_i64;
    LLVMTypeRef rhs[6] = {f, p, p, p, i, p}, gen[9] = {f, p, p, p, p, p, p, i, p};
    const char *rhs_names[6] = {"v_t", "v_y", "v_p", "v_dydt", "v_B", "v_work"};
    const char *gen_names[9] = {"v_t", "v_y", "v_p", "v_a", "v_d", "v_out0", "v_out1", "v_B",
                                "v_work"};
    LLVMValueRef *rhs_slots[6] = {&cg->v_t, &cg->v_y, &cg->v_p, &cg->v_out[0], &cg->v_B, &cg->v_work};
    LLVMValueRef *gen_slots[9] = {&cg->v_t, &cg->v_y, &cg->v_p, &cg->v_a, &cg->v_d, &cg->v_out[0],
                                  &cg->v_out[1], &cg->v_B, &cg->v_work};
    bool r = cg->k->rhs;
    unsigned n = r ? 6 : 9;
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), r ? rhs : gen, n, 0);
    cg->fn = LLVMAddFunction(cg->mod, cg->k->name, fty);
    cg->t_kernel = r ? cg->t_kernel : fty;
    cg->v_a = cg->v_d = cg->v_out[1] = cg->v_out[2] = NULL;
    for (unsigned k = 0; k < n; k++) {
        const char *name = r ? rhs_names[k] : gen_names[k];
        LLVMValueRef *slot = r ? rhs_slots[k] : gen_slots[k];
        *slot = LLVMGetParam(cg->fn, k);
        LLVMSetValueName2(*slot, name, strlen(name));
        if ((r ? rhs : gen)[k] == p) /* attribute index = parameter index + 1 */
            cg_add_attr(cg, k + 1, "noalias");
    }
    cg_add_attr(cg, LLVMAttributeFunctionIndex, "nounwind");
    if (cg->wide) {
        LLVMAttributeRef w = LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, "512", 3);
        LLVMAddAttributeAtIndex(cg->fn, LLVMAttributeFunctionIndex, w);
    }
    LLVMBasicBlockRef entry = cg_block(cg, "b_entry");
    LLVMPositionBuilderAtEnd(cg->bld, entry);
    cg->v_sample = cg_gep(cg, cg->v_work, cg_i64(cg, cg->fixed.total), "v_work_sample");
    if (!r)
        cg->v_out[2] = cg_gep(cg, cg->v_out[0], cg_mul(cg, cg->v_B, cg->m->ny), "v_out0_block2");
}

static bool cg_internal(Cg *cg, Diag *diag, int line, const char *what)
{
    diag_internal(diag, __FILE__, line, "kernel '%s' of model '%s': %s", cg->k->name,
                  cg->m->name, what);
    return false;
}

/* What the plan relies on: outputs inside their destination, leaves the
 * signature can read, and d's stride (taken from the DATA leaves when the
 * spec leaves it 0). */
static bool cg_check_kernel(Cg *cg, Diag *diag)
{
    const CgKernel *k = cg->k;
    for (int o = 0; o < k->n_outputs; o++) {
        const CgOutput *out = &k->outputs[o];
        if (!out->node)
            return cg_internal(cg, diag, __LINE__, "an output without a node");
        int size = ir_shape_size(out->node->shape);
        if (out->dst < 0 || out->dst > (k->rhs ? 0 : 2) || out->offset < 0 ||
            (!out->batch_sum && out->offset + size > out->stride))
            return cg_internal(cg, diag, __LINE__, "an output outside its destination");
    }
    int need = 0;
    for (int i = 0; i < cg->count; i++) {
        const IrNode *n = cg->order[i];
        if (k->rhs && (n->op == IR_ADJOINT || n->op == IR_DATA))
            return cg_internal(cg, diag, __LINE__, "the rhs reads a cotangent or data leaf");
        if (n->op == IR_DATA && n->offset + ir_shape_size(n->shape) > need)
            need = n->offset + ir_shape_size(n->shape);
    }
    if (k->nd && need > k->nd)
        return cg_internal(cg, diag, __LINE__, "a data leaf beyond the spec's nd");
    cg->nd = k->nd ? k->nd : need;
    return true;
}

/* The vjp when the fused rhs_vjp is compiled too: a call of it, with dydt
 * and a^T df/dy in a scratch block at the start of work, then a^T df/dy
 * copied out. A second derivative kernel would double the module's compile
 * time, and rhs_vjp costs about what the vjp does (the forward values are
 * the bulk of both). work: [2*B*ny scratch][the fused kernel's work]. */
static void cg_emit_wrapper(Cg *cg, CgKernel *k, CgLayout *layout)
{
    const CgKernel *f = k->wraps;
    long ny = cg->m->ny;
    k->work_fixed = f->work_fixed;
    k->work_sample = f->work_sample + 2 * ny;
    if ((size_t)k->work_fixed > layout->work_fixed)
        layout->work_fixed = (size_t)k->work_fixed;
    if ((size_t)k->work_sample > layout->work_per_sample)
        layout->work_per_sample = (size_t)k->work_sample;
    cg_function(cg);
    LLVMValueRef callee = LLVMGetNamedFunction(cg->mod, f->name);
    LLVMValueRef scratch = cg->v_work, n = cg_mul(cg, cg->v_B, ny);
    LLVMValueRef args[9] = {cg->v_t, cg->v_y, cg->v_p, cg->v_a, cg->v_d, scratch, cg->v_out[1],
                            cg->v_B, cg_gep(cg, cg->v_work, cg_add(cg, n, n), "v_work_fused")};
    LLVMValueRef call = LLVMBuildCall2(cg->bld, cg->t_kernel, callee, args, 9, "");
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex,
                             LLVMCreateEnumAttribute(cg->ctx, noinline, 0));
    CgVal src = {.ptr = cg_gep(cg, scratch, n, "v_aty"), .bstride = ny, .size = (int)ny};
    CgVal dst = {.ptr = cg->v_out[0], .bstride = ny, .size = (int)ny};
    const CgVal *from = &src;
    cg_emit_map(cg, NULL, &dst, 1, &from, "copy");
    LLVMBuildRetVoid(cg->bld);
}

/* Plans and emits one kernel into cg->mod; its work needs raise the layout's. */
static bool cg_emit_kernel(Cg *cg, CgKernel *k, CgLayout *layout, Diag *diag)
{
    cg->k = k;
    cg->fixed = (Pool){0};
    cg->sample = (Pool){0};
    if (k->wraps) {
        cg_emit_wrapper(cg, k, layout);
        return true;
    }
    IrNode **roots = arena_alloc(cg->arena, sizeof *roots * (size_t)(k->n_outputs + 1));
    for (int o = 0; o < k->n_outputs; o++)
        roots[o] = k->outputs[o].node;
    cg->count = k->n_outputs > 0 ? ir_topo_order(cg->arena, k->n_outputs, roots, &cg->order) : 0;
    if (!cg_check_kernel(cg, diag))
        return false;
    cg_plan(cg);
    if ((size_t)cg->fixed.total > layout->work_fixed)
        layout->work_fixed = (size_t)cg->fixed.total;
    if ((size_t)cg->sample.total > layout->work_per_sample)
        layout->work_per_sample = (size_t)cg->sample.total;
    k->work_fixed = cg->fixed.total;
    k->work_sample = cg->sample.total;
    cg_alias_scopes(cg);
    cg_function(cg);
    for (int i = 0; i < cg->count; i++)
        emit_node(cg, i);
    emit_outputs(cg);
    LLVMBuildRetVoid(cg->bld);
    return true;
}

static bool cg_verify(Cg *cg, Diag *diag)
{
    char *msg = NULL;
    bool bad = LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &msg);
    if (bad)
        DIAG_INTERNAL(diag, "invalid LLVM module for model '%s': %s", cg->m->name,
                      msg ? msg : "");
    LLVMDisposeMessage(msg);
    return !bad;
}

/* ---- the kernels of a request ---- */

static CgOutput *outputs_rhs(Arena *arena, const IrModel *m)
{
    CgOutput *o = arena_alloc(arena, sizeof *o * (size_t)(m->n_states + 1));
    for (int s = 0; s < m->n_states; s++)
        o[s] = (CgOutput){m->rhs[s], 0, m->states[s].offset, m->ny, 0};
    return o;
}

/* a^T df/dy per sample into out0 (laid out like y); a^T df/dp summed over
 * the batch into out1 (laid out like p). */
static CgOutput *outputs_vjp(Arena *arena, const IrModel *m)
{
    CgOutput *o = arena_alloc(arena, sizeof *o * (size_t)(m->n_states + m->n_params + 1));
    for (int s = 0; s < m->n_states; s++)
        o[s] = (CgOutput){m->adj_state[s], 0, m->states[s].offset, m->ny, 0};
    for (int j = 0; j < m->n_params; j++)
        o[m->n_states + j] = (CgOutput){m->adj_param[j], 1, m->params[j].offset, m->np, 1};
    return o;
}

/* The rhs and the vjp in one kernel: dydt into out0, a^T df/dy into the block
 * after it (dst 2), a^T df/dp into out1. Their IR shares the forward values
 * (hash-consing), so one topological order computes each once. */
static CgOutput *outputs_rhs_vjp(Arena *arena, const IrModel *m)
{
    int ns = m->n_states, n = 2 * ns + m->n_params;
    CgOutput *o = arena_alloc(arena, sizeof *o * (size_t)(n + 1));
    memcpy(o, outputs_rhs(arena, m), sizeof *o * (size_t)ns);
    memcpy(o + ns, outputs_vjp(arena, m), sizeof *o * (size_t)(ns + m->n_params));
    for (int s = 0; s < ns; s++)
        o[ns + s].dst = 2;
    return o;
}

static CgKernel kernel_of(const char *name, bool rhs, int nd, int n_outputs, const CgOutput *outputs)
{
    return (CgKernel){.name = name, .rhs = rhs, .nd = nd, .n_outputs = n_outputs, .outputs = outputs};
}

/* Fills names and kernels (n_kernels entries) for req; false after a report. */
static bool cg_kernel_list(Arena *arena, const IrModel *m, const JitRequest *req,
                           CgLayout *layout, CgKernel *k, Diag *diag)
{
    int n = 0;
    snprintf(layout->names[n], CG_NAME_MAX, "%s_rhs", m->name);
    k[n++] = kernel_of(layout->names[0], true, 0, m->n_states, outputs_rhs(arena, m));
    if (req && req->vjp) {
        snprintf(layout->names[n], CG_NAME_MAX, "%s_vjp", m->name);
        k[n] = kernel_of(layout->names[n], false, 0, m->n_states + m->n_params,
                         outputs_vjp(arena, m));
        n++;
    }
    if (req && req->jac) {
        CgOutput *o = arena_alloc(arena, sizeof *o);
        *o = (CgOutput){m->jac, 0, 0, m->ny * m->ny, 0};
        snprintf(layout->names[n], CG_NAME_MAX, "%s_jac", m->name);
        k[n] = kernel_of(layout->names[n], false, 0, 1, o);
        n++;
    }
    if (req && req->rhs_vjp) {
        snprintf(layout->names[n], CG_NAME_MAX, "%s_rhs_vjp", m->name);
        k[n] = kernel_of(layout->names[n], false, 0, 2 * m->n_states + m->n_params,
                         outputs_rhs_vjp(arena, m));
        if (req->vjp) /* the vjp calls it (cg_emit_wrapper) */
            k[1] = (CgKernel){.name = layout->names[1], .wraps = &k[n]};
        n++;
    }
    for (int e = 0; req && e < req->n_extra; e++, n++) { /* n_extra <= 0: none */
        const CgKernelSpec *spec = &req->extra[e];
        snprintf(layout->names[n], CG_NAME_MAX, "%s_%s", m->name, spec->name ? spec->name : "");
        k[n] = kernel_of(layout->names[n], false, spec->nd, spec->n_outputs, spec->outputs);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(layout->names[i], layout->names[j]) == 0) {
                DIAG_INTERNAL(diag, "two kernels named '%s'", layout->names[i]);
                return false;
            }
    return true;
}

/* The derived systems the request needs must have been built (compiler/diff). */
static bool cg_check_request(const IrModel *m, const JitRequest *req, Diag *diag)
{
    const char *missing = NULL;
    if (req && (req->vjp || req->rhs_vjp) && (!m->adj_state || (m->n_params > 0 && !m->adj_param)))
        missing = "a vjp before diff_model_adjoint";
    else if (req && req->jac && !m->jac)
        missing = "a jacobian before diff_model_jacobian";
    else if (req && req->n_extra > 0 && !req->extra)
        missing = "extra kernels without their specs";
    if (missing)
        DIAG_INTERNAL(diag, "model '%s': asked for %s", m->name, missing);
    return !missing;
}

/* LLVM's x86 tuning keeps loops at 256 bits on CPUs with AVX-512 (for the
 * clock drop of older ones); the kernels' loops are short and dominated by
 * tanh and exp, and 512 bits measured 19% faster on the batch-20 spiral
 * adjoint, 20% on its rhs (docs/gradients.md), with the same numbers (no
 * reassociation: each lane does what the scalar code does). */
static bool cg_host_is_wide(void)
{
    char *features = LLVMGetHostCPUFeatures();
    bool wide = features && strstr(features, "+avx512f") != NULL;
    LLVMDisposeMessage(features);
    return wide;
}

void cg_layout_free(CgLayout *layout)
{
    free(layout->names);
    *layout = (CgLayout){0};
}

LLVMModuleRef cg_build_module(LLVMContextRef ctx, const IrModel *m, const JitRequest *req,
                              CgLayout *layout, Diag *diag)
{
    *layout = (CgLayout){0};
    if (!cg_check_request(m, req, diag))
        return NULL;
    int n_extra = req && req->n_extra > 0 ? req->n_extra : 0;
    int max = 4 + n_extra;
    layout->names = calloc((size_t)max, sizeof *layout->names);
    Cg cg = {.m = m, .ctx = ctx, .wide = cg_host_is_wide()};
    cg.arena = arena_new();
    CgKernel *kernels = arena_alloc(cg.arena, sizeof *kernels * (size_t)max);
    layout->n_kernels = 1 + (req && req->vjp) + (req && req->jac) + (req && req->rhs_vjp) + n_extra;
    if (!layout->names)
        diag_plain(diag, "out of memory compiling model '%s'", m->name);
    bool ok = layout->names && cg_kernel_list(cg.arena, m, req, layout, kernels, diag);

    char modname[CG_NAME_MAX];
    snprintf(modname, sizeof modname, "nodec.%s", m->name);
    cg.mod = LLVMModuleCreateWithNameInContext(modname, ctx);
    cg.bld = LLVMCreateBuilderInContext(ctx);
    cg_types(&cg);
    for (int i = 0; ok && i < layout->n_kernels; i++) /* a wrapper after what it calls */
        ok = kernels[i].wraps || cg_emit_kernel(&cg, &kernels[i], layout, diag);
    for (int i = 0; ok && i < layout->n_kernels; i++)
        ok = !kernels[i].wraps || cg_emit_kernel(&cg, &kernels[i], layout, diag);
    LLVMDisposeBuilder(cg.bld);
    arena_free(cg.arena);
    if (!ok || !cg_verify(&cg, diag)) {
        LLVMDisposeModule(cg.mod);
        cg_layout_free(layout);
        return NULL;
    }
    return cg.mod;
}
