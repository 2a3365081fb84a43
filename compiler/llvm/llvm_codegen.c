/* IR -> LLVM IR, the driver: one module per model holding its kernels, the rhs
 * (NdRhsFn) and the derived ones (NdKernelFn: vjp, jac, rhs_vjp, a loss ...),
 * each a list of outputs (PlanOutput) emitted in IR topological order. The
 * planner (compiler/plan/plan.c) first decides where each node's values live (a
 * register, an input or output in place, a constant global, a view, a work
 * buffer reused after its last reader); this file binds those homes to LLVM
 * values, and the loops are written by llvm_emit.c and llvm_matmul.c. */
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

/* ---- planning (compiler/plan) ---- */

/* The JIT's loops run over the whole batch, its scalar registers are SSA
 * values computed once before them, and its work blocks are pooled (plan.h). */
static PlanOptions cg_plan_options(void)
{
    return (PlanOptions){.sample_locals = false, .expr_locals = false, .flat_costly = true,
                         .reuse_work = true, .blas = cg_blas_rule()};
}

int cg_topo(const Cg *cg, const IrNode *n)
{
    return plan_index(&cg->plan, n);
}

/* ---- nodes ---- */

/* A constant's global, shared by the module's kernels (named by node id: one
 * builder per model, so one id is one node). */
static LLVMValueRef cg_const_global(Cg *cg, const IrNode *n)
{
    int size = ir_shape_size(n->shape);
    char name[32];
    snprintf(name, sizeof name, "v_const_n%d", n->id);
    LLVMTypeRef t_arr = LLVMArrayType(cg->t_real, (unsigned)size);
    LLVMValueRef zero[2] = {cg_i64(cg, 0), cg_i64(cg, 0)};
    LLVMValueRef g = LLVMGetNamedGlobal(cg->mod, name);
    if (g)
        return LLVMBuildInBoundsGEP2(cg->bld, t_arr, g, zero, 2, name);
    LLVMValueRef *elts = arena_alloc(cg->arena, sizeof *elts * (size_t)size);
    for (int k = 0; k < size; k++)
        elts[k] = cg_real(cg, n->value[k]);
    g = LLVMAddGlobal(cg->mod, t_arr, name);
    LLVMSetInitializer(g, LLVMConstArray(cg->t_real, elts, (unsigned)size));
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
    return cg_real(cg, n->value[0]);
}

/* Storage of node i per its plan (at the top level, so it dominates readers). */
static void cg_bind(Cg *cg, int i, const char *name)
{
    IrNode *n = cg->plan.order[i];
    const PlanNode *pl = &cg->plan.node[i];
    CgVal *v = &cg->val[i];
    v->size = ir_shape_size(n->shape);
    switch (pl->kind) {
    case PLAN_INPUT: {
        LLVMValueRef base = n->op == IR_STATE ? cg->v_y : n->op == IR_ADJOINT ? cg->v_a : cg->v_d;
        if (ir_is_shared(n)) { /* the shared block, read as p is */
            v->ptr = cg_gep(cg, base, cg_add(cg, cg_mul(cg, cg->v_B, cg->m->ny),
                                             cg_i64(cg, n->offset)), name);
            break;
        }
        v->ptr = cg_gep(cg, base, cg_i64(cg, n->offset), name);
        v->bstride = n->op == IR_DATA ? cg->nd : cg->m->ny;
        break;
    }
    case PLAN_PARAM: v->ptr = cg_gep(cg, cg->v_p, cg_i64(cg, n->offset), name); break;
    case PLAN_CONST:
        v->ptr = cg_const_global(cg, n);
        v->reg = cg_const_splat(cg, n);
        break;
    case PLAN_VIEW: {
        const CgVal *src = &cg->val[cg_topo(cg, n->args[0])];
        v->ptr = cg_gep(cg, src->ptr, cg_i64(cg, pl->off), name);
        v->bstride = src->bstride;
        v->reg = src->reg;
        v->scope = src->scope;
        break;
    }
    case PLAN_FIXED:
        v->ptr = cg_gep(cg, cg->v_work, cg_i64(cg, pl->off), name);
        v->scope = 1 + pl->block;
        break;
    case PLAN_SAMPLE:
        v->ptr = cg_gep(cg, cg->v_sample, cg_mul(cg, cg->v_B, pl->off), name);
        v->bstride = v->size;
        v->scope = 1 + cg->plan.fixed.n + pl->block;
        break;
    case PLAN_OUT: {
        const PlanOutput *o = &cg->k->outputs[pl->out];
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
    IrNode *n = cg->plan.order[i];
    CgVal *v = &cg->val[i];
    if (n->op == IR_CONST) {
        v->reg = cg_real(cg, n->value[0]);
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
    IrNode *n = cg->plan.order[i];
    char name[64], tag[40];
    snprintf(tag, sizeof tag, "n%d_%s", n->id, ir_op_name(n->op));
    for (char *s = tag; *s; s++) /* "@", "+": keep names identifier-like */
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            *s = 'x';
    snprintf(name, sizeof name, "v_%s", tag);
    cg->val[i].size = ir_shape_size(n->shape);
    if (cg->plan.node[i].kind == PLAN_FUSED) /* emitted as its output's sum */
        return;
    if (cg->plan.node[i].kind == PLAN_INLINE) { /* emitted in its reader's loop */
        cg->val[i].inl = i + 1;
        cg->val[i].bstride = plan_is_batched(n) ? cg->val[i].size : 0;
        return;
    }
    if (cg->plan.node[i].kind == PLAN_REG) {
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
        if (cg->plan.node[i].kind != PLAN_VIEW)
            cg_emit_grid(cg, n, out, tag);
        return;
    case IR_SUM: cg_emit_sum(cg, n, out, tag); return;
    case IR_MAXR: case IR_ARGMAX: cg_emit_argmax(cg, n, out, tag); return;
    case IR_PAD: cg_emit_pad(cg, n, out, tag); return;
    case IR_CONCAT: case IR_STACK: cg_emit_join(cg, n, out, tag); return;
    case IR_RESHAPE:
        if (cg->plan.node[i].kind != PLAN_VIEW)
            cg_emit_tensor(cg, n, out, tag);
        return;
    case IR_IM2COL: case IR_COL2IM: case IR_AVGPOOL: case IR_AVGPOOL_T: case IR_MAXPOOL:
    case IR_MAXPOOL_T: case IR_SUMAXIS: case IR_BROADCAST:
        cg_emit_tensor(cg, n, out, tag);
        return;
    default:
        for (int a = 0; a < n->nargs && a < 3; a++)
            args[a] = &cg->val[cg_topo(cg, n->args[a])];
        cg_emit_map(cg, n, out, n->nargs, args, tag);
        return;
    }
}

/* ---- many scalars: one loop over the samples ---- */

/* A kernel with this many batched one-element nodes in a row (a model of many
 * scalar states) computes them in one loop over the samples, each node one
 * load-op-store in its body, instead of one loop per node: 10 000 loops of one
 * element each (each vectorised, with its remainder) cost LLVM minutes and
 * gigabytes, one loop of 10 000 statements a second or two (bench_check.py's
 * run table). Below it every node keeps its own vectorised loop. */
enum { CG_SAMPLE_LOOP_MIN = 64, CG_SAMPLE_LOOP_MAX = 128 };

/* A batched one-element elementwise node with its own storage: per sample one
 * value that reads its operands' values of the same sample only. */
static bool cg_is_sample_scalar(const Cg *cg, int i)
{
    const IrNode *n = cg->plan.order[i];
    PlanKind kind = cg->plan.node[i].kind;
    return (kind == PLAN_OUT || kind == PLAN_SAMPLE) && plan_is_batched(n) &&
           plan_is_elementwise(n->op) && ir_shape_size(n->shape) == 1;
}

/* A node that emits no loop at the top level: a leaf, a register, a view, one
 * computed in its reader's loop or as its output's sum. */
static bool cg_is_loop_free(const Cg *cg, int i)
{
    switch (cg->plan.node[i].kind) {
    case PLAN_REG: case PLAN_INLINE: case PLAN_FUSED: case PLAN_INPUT: case PLAN_PARAM:
    case PLAN_CONST: case PLAN_VIEW:
        return true;
    default:
        return false;
    }
}

/* The end of the run of sample scalars (and loop-free nodes between them) from
 * node `from`, or `from` itself when the run is too short to share a loop. */
static int cg_sample_run_end(const Cg *cg, int from)
{
    int end = from, scalars = 0;
    while (end < cg->plan.count && (cg_is_sample_scalar(cg, end) || cg_is_loop_free(cg, end)))
        scalars += cg_is_sample_scalar(cg, end++);
    return scalars >= CG_SAMPLE_LOOP_MIN ? end : from;
}

/* The end of the chunk of a run that starts at `from`: at most
 * CG_SAMPLE_LOOP_MAX scalars, as LLVM's loop passes compare every pair of
 * memory accesses in a loop body. */
static int cg_sample_chunk_end(const Cg *cg, int from, int run_end)
{
    int end = from, scalars = 0;
    while (end < run_end && (scalars < CG_SAMPLE_LOOP_MAX || !cg_is_sample_scalar(cg, end)))
        scalars += cg_is_sample_scalar(cg, end++);
    return end;
}

/* Nodes from..end-1 in one loop over the samples: first every node's storage
 * bound, registers computed and inlined nodes marked (at the top level, so
 * they dominate later readers), then per sample each scalar from its operands'
 * values of that sample, in topological order. A work block reused by a later
 * scalar of the run is reused per sample, after the readers of that sample's
 * value, so the values equal the node-by-node loops' exactly. The loop is not
 * vectorised: the samples of one node are ny apart. */
static void emit_sample_run(Cg *cg, int from, int end)
{
    char name[64];
    for (int i = from; i < end; i++) {
        if (!cg_is_sample_scalar(cg, i)) {
            emit_node(cg, i);
            continue;
        }
        const IrNode *n = cg->plan.order[i];
        snprintf(name, sizeof name, "v_n%d", n->id);
        cg_bind(cg, i, name);
    }
    CgLoop lb;
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, "samples", NULL);
    LLVMValueRef zero = cg_i64(cg, 0), x[3];
    for (int i = from; i < end; i++) {
        if (!cg_is_sample_scalar(cg, i))
            continue;
        const IrNode *n = cg->plan.order[i];
        for (int a = 0; a < n->nargs && a < 3; a++)
            x[a] = cg_load(cg, &cg->val[cg_topo(cg, n->args[a])], b, zero);
        cg_store(cg, &cg->val[i], b, zero, cg_element_op(cg, n, x));
    }
    lb.scalar = true;
    cg_loop_end(cg, &lb, NULL);
}

static void emit_nodes(Cg *cg)
{
    for (int i = 0; i < cg->plan.count;) {
        int end = cg_sample_run_end(cg, i);
        if (end > i) {
            while (i < end) {
                int chunk = cg_sample_chunk_end(cg, i, end);
                emit_sample_run(cg, i, chunk);
                i = chunk;
            }
        } else {
            emit_node(cg, i++);
        }
    }
}

LLVMValueRef cg_out_ptr(Cg *cg, const PlanOutput *o, const char *name)
{
    LLVMValueRef at = cg_i64(cg, o->offset);
    if (o->shared)
        at = cg_add(cg, cg_mul(cg, cg->v_B, cg->m->ny), at);
    return cg_gep(cg, cg->v_out[o->dst], at, name);
}

/* out[offset + k] += src[k] (an `add` output, unbatched). */
static void emit_add(Cg *cg, const PlanOutput *o, const CgVal *src, const char *tag)
{
    CgVal dst = {.ptr = cg_out_ptr(cg, o, "v_add"), .size = src->size};
    char name[64];
    CgLoop lk;
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, src->size), name, NULL);
    LLVMValueRef acc = LLVMBuildFAdd(cg->bld, cg_load(cg, &dst, NULL, k), cg_load(cg, src, NULL, k), "");
    cg_store(cg, &dst, NULL, k, acc);
    cg_loop_end(cg, &lk, NULL);
}

/* out[offset + k] = sum over the batch of src's element k: zeros, then one
 * pass per sample in sample order (the loop over k vectorises); an unbatched
 * node is the same in every sample, so its sum is B times its value. */
static void emit_batch_sum(Cg *cg, const PlanOutput *o, const CgVal *src, const char *tag)
{
    CgVal dst = {.ptr = cg_out_ptr(cg, o, "v_sum"), .size = src->size};
    char name[64];
    CgLoop lb, lk;
    if (!src->bstride) {
        LLVMValueRef nb = LLVMBuildSIToFP(cg->bld, cg->v_B, cg->t_real, "v_nb");
        snprintf(name, sizeof name, "%s_k", tag);
        LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, src->size), name, NULL);
        cg_store(cg, &dst, NULL, k, LLVMBuildFMul(cg->bld, cg_load(cg, src, NULL, k), nb, ""));
        cg_loop_end(cg, &lk, NULL);
        return;
    }
    CgVal zero = {.reg = cg_real(cg, 0), .size = 1};
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

/* Whether output i is a copy of a batched one-element node (not in place). */
static bool cg_is_scalar_copy(const Cg *cg, int i)
{
    const PlanOutput *o = &cg->k->outputs[i];
    int r = cg_topo(cg, o->node);
    const PlanNode *pl = &cg->plan.node[r];
    return !o->batch_sum && pl->kind != PLAN_FUSED && !(pl->kind == PLAN_OUT && pl->out == i) &&
           cg->val[r].size == 1 && cg->val[r].bstride != 0;
}

/* Copies of scalar outputs from output `from` on, CG_SAMPLE_LOOP_MAX in one
 * loop over the samples; returns the output after the last one copied. */
static int emit_scalar_copies(Cg *cg, int from)
{
    CgLoop lb;
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, "copies", NULL), zero = cg_i64(cg, 0);
    int i = from;
    for (int copied = 0; i < cg->k->n_outputs && copied < CG_SAMPLE_LOOP_MAX; i++) {
        if (!cg_is_scalar_copy(cg, i))
            continue;
        const PlanOutput *o = &cg->k->outputs[i];
        CgVal out = {.ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, o->offset), "v_out"),
                     .bstride = o->stride, .size = 1};
        cg_store(cg, &out, b, zero, cg_load(cg, &cg->val[cg_topo(cg, o->node)], b, zero));
        copied++;
    }
    lb.scalar = true;
    cg_loop_end(cg, &lb, NULL);
    return i;
}

/* Outputs not computed in place are copied (broadcast when unbatched) or
 * summed over the batch; many one-element copies share one loop over the
 * samples, as many scalar nodes do (emit_sample_run). */
static void emit_outputs(Cg *cg)
{
    int copies = 0;
    for (int i = 0; i < cg->k->n_outputs; i++)
        copies += cg_is_scalar_copy(cg, i);
    bool shared = copies >= CG_SAMPLE_LOOP_MIN;
    for (int i = 0; i < cg->k->n_outputs; i++) {
        const PlanOutput *o = &cg->k->outputs[i];
        int r = cg_topo(cg, o->node);
        const CgVal *src = &cg->val[r];
        char tag[32];
        snprintf(tag, sizeof tag, "out%d", i);
        if (cg->plan.node[r].kind == PLAN_FUSED)
            cg_emit_outer_sum(cg, o, tag);
        else if (o->batch_sum)
            emit_batch_sum(cg, o, src, tag);
        else if (o->add)
            emit_add(cg, o, src, tag);
        if (o->batch_sum || o->add ||
            (cg->plan.node[r].kind == PLAN_OUT && cg->plan.node[r].out == i) ||
            (shared && cg_is_scalar_copy(cg, i)))
            continue;
        CgVal out = {.ptr = cg_out_ptr(cg, o, "v_out"), .bstride = o->shared ? 0 : o->stride,
                     .size = src->size};
        cg_emit_map(cg, NULL, &out, 1, &src, tag);
    }
    for (int i = 0; shared && i < cg->k->n_outputs;)
        i = emit_scalar_copies(cg, i);
}

/* ---- the function ---- */

static void cg_types(Cg *cg)
{
    cg->t_real = cg->f32 ? LLVMFloatTypeInContext(cg->ctx) : LLVMDoubleTypeInContext(cg->ctx);
    cg->t_i64 = LLVMInt64TypeInContext(cg->ctx);
    cg->t_i32 = LLVMInt32TypeInContext(cg->ctx);
    cg->t_ptr = LLVMPointerType(cg->t_real, 0);
    LLVMTypeRef i = cg->t_i32, d = cg->t_real, p = cg->t_ptr;
    LLVMTypeRef gemm[14] = {i, i, i, i, i, i, d, p, i, p, i, d, p, i};
    LLVMTypeRef gemv[12] = {i, i, i, i, d, p, i, p, i, d, p, i};
    cg->t_gemm = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), gemm, 14, 0);
    cg->t_gemv = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), gemv, 12, 0);
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
    LLVMTypeRef f = cg->t_real, p = cg->t_ptr, i = cg->t_i64;
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
    cg->v_a = cg->v_d = cg->v_out[1] = cg->v_out[2] = cg->v_out[3] = cg->v_out[4] = NULL;
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
    cg->v_sample = cg_gep(cg, cg->v_work, cg_i64(cg, cg->plan.fixed.total), "v_work_sample");
    if (!r)
        cg->v_out[2] = cg_gep(cg, cg->v_out[0],
                              cg_add(cg, cg_mul(cg, cg->v_B, cg->m->ny), cg_i64(cg, cg->m->ns)),
                              "v_out0_block2");
    if (!r && cg->m->ns > 0) { /* the bordered jac's coupling and shared blocks */
        LLVMValueRef bny = cg_mul(cg, cg->v_B, cg->m->ny);
        cg->v_out[3] = cg_gep(cg, cg->v_out[0], cg_mul(cg, bny, cg->m->ny), "v_out0_border");
        cg->v_out[4] = cg_gep(cg, cg->v_out[0], cg_mul(cg, bny, cg->m->ny + cg->m->ns),
                              "v_out0_shared");
    }
}

static bool cg_internal(Cg *cg, Diag *diag, int line, const char *what)
{
    diag_internal(diag, __FILE__, line, "kernel '%s' of model '%s': %s", cg->k->name,
                  cg->m->name, what);
    return false;
}

/* What the plan relies on (plan_check), and d's stride. */
static bool cg_check_kernel(Cg *cg, Diag *diag)
{
    const char *why = plan_check(&cg->plan, cg->k->rhs, cg->m->ns > 0 ? 4 : 2, cg->k->nd, &cg->nd);
    return !why || cg_internal(cg, diag, __LINE__, why);
}

/* The vjp when the fused rhs_vjp is compiled too: a call of it, with dydt
 * and a^T df/dy in a scratch block at the start of work, then a^T df/dy
 * copied out. A second derivative kernel would double the module's compile
 * time, and rhs_vjp costs about what the vjp does (the forward values are
 * the bulk of both). work: [2*B*ny scratch][the fused kernel's work]. */
static void cg_emit_wrapper(Cg *cg, CgKernel *k, CgLayout *layout)
{
    const CgKernel *f = k->wraps;
    long ny = cg->m->ny, ns = cg->m->ns;
    k->work_fixed = f->work_fixed + 2 * ns;
    k->work_sample = f->work_sample + 2 * ny;
    if ((size_t)k->work_fixed > layout->work_fixed)
        layout->work_fixed = (size_t)k->work_fixed;
    if ((size_t)k->work_sample > layout->work_per_sample)
        layout->work_per_sample = (size_t)k->work_sample;
    cg_function(cg);
    LLVMValueRef callee = LLVMGetNamedFunction(cg->mod, f->name);
    LLVMValueRef scratch = cg->v_work, bny = cg_mul(cg, cg->v_B, ny);
    LLVMValueRef n = cg_add(cg, bny, cg_i64(cg, ns)); /* a state-sized block */
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
    if (ns > 0) { /* the shared block's, once */
        CgVal ssrc = {.ptr = cg_gep(cg, scratch, cg_add(cg, n, bny), "v_aty_shared"),
                      .size = (int)ns};
        CgVal sdst = {.ptr = cg_gep(cg, cg->v_out[0], bny, "v_out_shared"), .size = (int)ns};
        const CgVal *sfrom = &ssrc;
        cg_emit_map(cg, NULL, &sdst, 1, &sfrom, "copy_shared");
    }
    LLVMBuildRetVoid(cg->bld);
}

/* ---- the batch in chunks ---- */

/* Samples per call of a chunked kernel's body. Each node's loop runs over the
 * whole batch before the next node's starts, so at batch 4096 a hidden layer of
 * 512 is 16 MB per value, streamed from memory by every pass; in chunks the
 * passes stay in cache. Measured (bench_large_batch, MLP D -> 512 -> D at batch
 * 4096, one core, against dgemm on the same products): unchunked 26-53% of
 * dgemm's throughput; chunks of 1024 57-70%, of 256 68-84%, of 64 62-100%. */
enum { CG_CHUNK = 64 };

/* Whether k's samples can go through its body CG_CHUNK at a time: the rhs (its
 * output per sample) and the plain vjp (a^T df/dy per sample into out0, a^T
 * df/dp summed over the batch into out1), of a model without shared states
 * (their block follows the batch). Other kernels keep one call. */
static bool cg_chunkable(const Cg *cg, const CgKernel *k)
{
    if (cg->m->ns > 0 || k->wraps || !k->chunk)
        return false;
    for (int i = 0; i < k->n_outputs; i++) {
        const PlanOutput *o = &k->outputs[i];
        bool per_sample = o->dst == 0 && o->stride == cg->m->ny && !o->batch_sum && !o->add;
        bool summed = !k->rhs && o->dst == 1 && o->batch_sum && !o->add;
        if (!per_sample && !summed)
            return false;
    }
    return true;
}

/* k as a loop over chunks of its samples, each a call of body (the kernel as
 * planned, now "<name>.chunk"): y, a, d and out0 advance by the chunk's rows;
 * out1's batch sums (the vjp's) are the first chunk's written in place plus
 * each later chunk's, summed in chunk order from np zeroed elements at the start
 * of work (the body's work after them). */
static void cg_emit_chunked(Cg *cg, CgKernel *k, LLVMValueRef body, CgLayout *layout)
{
    long ny = cg->m->ny, np = k->rhs ? 0 : cg->m->np;
    k->work_fixed += np;
    if ((size_t)k->work_fixed > layout->work_fixed)
        layout->work_fixed = (size_t)k->work_fixed;
    cg_function(cg);
    LLVMTypeRef fty = LLVMGlobalGetValueType(body);
    LLVMValueRef scratch = cg->v_work, work = cg_gep(cg, cg->v_work, cg_i64(cg, np), "v_work_body");
    CgLoop lc;
    LLVMValueRef n_chunks = LLVMBuildUDiv(cg->bld, cg_add(cg, cg->v_B, cg_i64(cg, CG_CHUNK - 1)),
                                          cg_i64(cg, CG_CHUNK), "v_chunks");
    LLVMValueRef c = cg_loop_begin(cg, &lc, n_chunks, "chunk", NULL);
    LLVMValueRef b0 = cg_mul(cg, c, CG_CHUNK), left = LLVMBuildSub(cg->bld, cg->v_B, b0, "");
    LLVMValueRef full = LLVMBuildICmp(cg->bld, LLVMIntSLT, left, cg_i64(cg, CG_CHUNK), "");
    LLVMValueRef n = LLVMBuildSelect(cg->bld, full, left, cg_i64(cg, CG_CHUNK), "v_chunk_n");
    LLVMValueRef rows = cg_mul(cg, b0, ny);
    LLVMValueRef y = cg_gep(cg, cg->v_y, rows, "v_y_chunk");
    LLVMValueRef out0 = cg_gep(cg, cg->v_out[0], rows, "v_out0_chunk");
    LLVMValueRef call;
    if (k->rhs) {
        LLVMValueRef args[6] = {cg->v_t, y, cg->v_p, out0, n, work};
        call = LLVMBuildCall2(cg->bld, fty, body, args, 6, "");
    } else {
        LLVMValueRef first = LLVMBuildICmp(cg->bld, LLVMIntEQ, c, cg_i64(cg, 0), "");
        LLVMValueRef out1 = LLVMBuildSelect(cg->bld, first, cg->v_out[1], scratch, "v_out1_chunk");
        LLVMValueRef a = cg_gep(cg, cg->v_a, rows, "v_a_chunk");
        /* d (the kernel's data rows, stride nd) only when the body reads it */
        LLVMValueRef d = cg->nd > 0 ? cg_gep(cg, cg->v_d, cg_mul(cg, b0, cg->nd), "v_d_chunk")
                                    : cg->v_d;
        CgVal zero = {.reg = cg_real(cg, 0), .size = 1}, dst = {.ptr = scratch, .size = (int)np};
        const CgVal *z = &zero;
        cg_emit_map(cg, NULL, &dst, 1, &z, "chunk_zero");
        LLVMValueRef args[9] = {cg->v_t, y, cg->v_p, a, d, out0, out1, n, work};
        call = LLVMBuildCall2(cg->bld, fty, body, args, 9, "");
        LLVMValueRef later = LLVMBuildICmp(cg->bld, LLVMIntNE, c, cg_i64(cg, 0), "");
        LLVMBasicBlockRef add = cg_block(cg, "b_chunk_add"), next = cg_block(cg, "b_chunk_next");
        LLVMBuildCondBr(cg->bld, later, add, next);
        LLVMPositionBuilderAtEnd(cg->bld, add);
        CgVal sum = {.ptr = cg->v_out[1], .size = (int)np}, part = {.ptr = scratch, .size = (int)np};
        CgLoop li;
        LLVMValueRef i = cg_loop_begin(cg, &li, cg_i64(cg, np), "chunk_add", NULL);
        cg_store(cg, &sum, NULL, i, LLVMBuildFAdd(cg->bld, cg_load(cg, &sum, NULL, i),
                                                  cg_load(cg, &part, NULL, i), ""));
        cg_loop_end(cg, &li, NULL);
        LLVMBuildBr(cg->bld, next);
        LLVMPositionBuilderAtEnd(cg->bld, next);
    }
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex,
                             LLVMCreateEnumAttribute(cg->ctx, noinline, 0));
    cg_loop_end(cg, &lc, NULL);
    LLVMBuildRetVoid(cg->bld);
}

/* Plans and emits one kernel into cg->mod; its work needs raise the layout's. */
static bool cg_emit_kernel(Cg *cg, CgKernel *k, CgLayout *layout, Diag *diag)
{
    cg->k = k;
    cg->plan = (Plan){0};
    if (k->wraps) {
        cg_emit_wrapper(cg, k, layout);
        return true;
    }
    plan_order(&cg->plan, cg->arena, k->n_outputs, k->outputs);
    if (!cg_check_kernel(cg, diag))
        return false;
    PlanOptions opt = cg_plan_options();
    plan_nodes(&cg->plan, cg->arena, &opt);
    cg->val = arena_alloc(cg->arena, sizeof *cg->val * (size_t)(cg->plan.count + 1));
    if ((size_t)cg->plan.fixed.total > layout->work_fixed)
        layout->work_fixed = (size_t)cg->plan.fixed.total;
    if ((size_t)cg->plan.sample.total > layout->work_per_sample)
        layout->work_per_sample = (size_t)cg->plan.sample.total;
    k->work_fixed = cg->plan.fixed.total;
    k->work_sample = cg->plan.sample.total;
    cg_alias_scopes(cg);
    cg_function(cg);
    emit_nodes(cg);
    emit_outputs(cg);
    LLVMBuildRetVoid(cg->bld);
    if (cg_chunkable(cg, k)) {
        LLVMValueRef body = cg->fn;
        char name[CG_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s.chunk", k->name);
        LLVMSetValueName2(body, name, strlen(name));
        LLVMSetLinkage(body, LLVMPrivateLinkage);
        cg_emit_chunked(cg, k, body, layout);
    }
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

/* The rhs and the vjp in one kernel: dydt into out0, a^T df/dy into the block
 * after it (dst 2), a^T df/dp into out1. Their IR shares the forward values
 * (hash-consing), so one topological order computes each once. */
static PlanKernelSpec spec_rhs_vjp(Arena *arena, const IrModel *m)
{
    PlanKernelSpec rhs = plan_spec_rhs(arena, m), vjp = plan_spec_vjp(arena, m);
    int n = rhs.n_outputs + vjp.n_outputs;
    PlanOutput *o = arena_alloc(arena, sizeof *o * (size_t)(n + 1));
    memcpy(o, rhs.outputs, sizeof *o * (size_t)rhs.n_outputs);
    memcpy(o + rhs.n_outputs, vjp.outputs, sizeof *o * (size_t)vjp.n_outputs);
    for (int s = 0; s < vjp.n_outputs; s++)
        if (o[rhs.n_outputs + s].dst == 0)
            o[rhs.n_outputs + s].dst = 2;
    return (PlanKernelSpec){.name = "rhs_vjp", .n_outputs = n, .outputs = o};
}

static CgKernel kernel_of(const char *name, bool rhs, PlanKernelSpec spec)
{
    return (CgKernel){.name = name, .rhs = rhs, .nd = spec.nd, .n_outputs = spec.n_outputs,
                      .outputs = spec.outputs};
}

/* Fills names and kernels (n_kernels entries) for req; false after a report. */
static bool cg_kernel_list(Arena *arena, const IrModel *m, const JitRequest *req,
                           CgLayout *layout, CgKernel *k, Diag *diag)
{
    int n = 0;
    snprintf(layout->names[n], CG_NAME_MAX, "%s_rhs", m->name);
    k[n] = kernel_of(layout->names[0], true, plan_spec_rhs(arena, m));
    k[n++].chunk = true;
    if (req && req->vjp) {
        snprintf(layout->names[n], CG_NAME_MAX, "%s_vjp", m->name);
        k[n] = kernel_of(layout->names[n], false, plan_spec_vjp(arena, m));
        k[n++].chunk = true;
    }
    if (req && req->jac) {
        snprintf(layout->names[n], CG_NAME_MAX, "%s_jac", m->name);
        k[n] = kernel_of(layout->names[n], false, plan_spec_jac(arena, m));
        n++;
    }
    if (req && req->rhs_vjp) {
        snprintf(layout->names[n], CG_NAME_MAX, "%s_rhs_vjp", m->name);
        k[n] = kernel_of(layout->names[n], false, spec_rhs_vjp(arena, m));
        if (req->vjp) /* the vjp calls it (cg_emit_wrapper) */
            k[1] = (CgKernel){.name = layout->names[1], .wraps = &k[n]};
        n++;
    }
    for (int e = 0; req && e < req->n_extra; e++, n++) { /* n_extra <= 0: none */
        const PlanKernelSpec *spec = &req->extra[e];
        snprintf(layout->names[n], CG_NAME_MAX, "%s_%s", m->name, spec->name ? spec->name : "");
        k[n] = kernel_of(layout->names[n], false, *spec);
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
    const char *features = cg_host_features();
    return features && strstr(features, "+avx512f") != NULL;
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
    Cg cg = {.m = m, .ctx = ctx, .wide = cg_host_is_wide(), .f32 = req && req->f32};
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
