/* IR -> LLVM IR: one module per model holding its kernels, the rhs
 *   void <model>_rhs(double t, const double *y, const double *p, double *dydt,
 *                    int64_t B, double *work)
 * and the derived ones (vjp, jac, a loss and its gradient ...) as NdKernelFn
 *   void <model>_<name>(double t, const double *y, const double *p, const double *a,
 *                       const double *d, double *out0, double *out1, int64_t B, double *work)
 * each a list of outputs (CgOutput) emitted in IR topological order. A plan pass
 * first decides where every node's values live (a register, straight in an input
 * or an output, a constant global, a view into another node, or a buffer in work
 * reused once its last reader is done); the emit pass then writes simple counted
 * loops that O2 vectorises, and calls OpenBLAS for matrix products large enough
 * to pay for the call. */
#include "codegen.h"
#include "codegen_internal.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h> /* temporary MD nodes, for self-referential loop IDs */
#include <llvm-c/TargetMachine.h> /* the host's features */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Measured crossover (bench_rhs, docs/codegen.md): a cblas call costs
 * 35-70 ns, and inline loops whose reduction is shorter than 16 are fully
 * unrolled and vectorised across rows, beating dgemm at every batch size
 * measured; from a reduction of 16 on, BLAS wins once a call has ~512
 * multiply-adds. */
#define CG_BLAS_MIN_FLOPS 512.0
#define CG_BLAS_MIN_INNER 16

/* CBLAS enum values (cblas.h), passed as i32. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static double blas_min_flops = CG_BLAS_MIN_FLOPS;
static int blas_min_inner = CG_BLAS_MIN_INNER;

void cg_set_blas_min_flops(double flops)
{
    blas_min_flops = flops < 0 ? CG_BLAS_MIN_FLOPS : flops;
    blas_min_inner = flops < 0 ? CG_BLAS_MIN_INNER : 0;
}

double cg_blas_min_flops(void)
{
    return blas_min_flops;
}

/* Where a node's values live. */
typedef enum PlanKind {
    PK_PENDING, /* a computed node not yet given storage */
    PK_REG,     /* an unbatched scalar in an SSA register */
    PK_INPUT,   /* STATE: y + offset, ADJOINT: a + offset (stride ny); DATA: d + offset (stride nd) */
    PK_PARAM,   /* p + offset */
    PK_CONST,   /* a private constant global */
    PK_VIEW,    /* a contiguous slice: elements of its owner's storage */
    PK_FIXED,   /* work + off: computed once per call */
    PK_SAMPLE,  /* work + work_fixed + B*off: sample-major, stride = size */
    PK_OUT,     /* an output's node written straight into out<dst> + off, the output's stride */
    PK_FUSED,   /* an OUTER only summed over the batch: never stored, its sum is one product */
    PK_INLINE,  /* an elementwise node with one elementwise reader: computed in that reader's loop */
} PlanKind;

typedef struct Plan {
    PlanKind kind;
    long off;     /* FIXED/SAMPLE: buffer offset; VIEW: element offset; OUT: output offset */
    int out;      /* OUT: index of the output written in place */
    int owner;    /* topo index of the node whose storage holds this one */
    int last_use; /* topo index of the last reader of the owner's storage */
    int block;    /* FIXED/SAMPLE: pool block index */
} Plan;

/* A node's values as the emitter reads them: element k of sample b is
 * ptr[b*bstride + k], or reg when every element equals it. */
typedef struct CgVal {
    LLVMValueRef ptr;
    LLVMValueRef reg;
    long bstride; /* 0: unbatched (the same for every sample) */
    int size;     /* elements per sample */
    int inl;      /* PK_INLINE: 1 + the node's topo index (its elements are computed on load) */
    int scope;    /* 1 + the work block holding it (fixed blocks, then per-sample ones), or 0 */
} CgVal;

/* A first-fit pool of work buffers (fixed or per-sample region). */
typedef struct PoolBlock {
    long off, size;
    bool busy;
} PoolBlock;

typedef struct Pool {
    PoolBlock *blk;
    int n;
    long total;
} Pool;

/* One function to emit: the rhs (NdRhsFn, its outputs the states' rhs into
 * dydt) or a general kernel (NdKernelFn). */
typedef struct CgKernel {
    const char *name; /* the symbol */
    bool rhs;         /* NdRhsFn signature: reads y, p only; out0 is dydt */
    int nd;           /* doubles per sample in d */
    int n_outputs;
    const CgOutput *outputs;
    const struct CgKernel *wraps; /* the vjp as a call of the fused rhs_vjp (no outputs) */
    long work_fixed, work_sample; /* set once emitted: the work the kernel itself needs */
} CgKernel;

typedef struct Cg {
    const IrModel *m;
    const CgKernel *k;
    Arena *arena;
    int count;
    IrNode **order;
    int *index; /* topo index by node id */
    int *uses;  /* readers of each node: operand slots and outputs */
    int *user;  /* the last node reading each node, -1 for none */
    Plan *plan;
    CgVal *val;
    Pool fixed, sample;
    /* per work block: !alias.scope {its scope} and !noalias {every other block's}.
     * Blocks never overlap, so a loop that reads one buffer of work and writes
     * another needs no run-time overlap check to vectorise */
    LLVMValueRef *md_scope, *md_noalias;
    unsigned kind_scope, kind_noalias;

    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef bld;
    LLVMValueRef fn;
    LLVMTypeRef t_f64, t_i64, t_i32, t_ptr, t_dgemm, t_dgemv, t_kernel; /* t_kernel: NdKernelFn */
    LLVMValueRef v_t, v_y, v_p, v_a, v_d, v_out[3], v_B, v_work, v_sample; /* v_out[2]: out0 + B*ny */
    int nd; /* the kernel's d stride */
    bool wide; /* the host has AVX-512: let the vectoriser use it (cg_host_is_wide) */
} Cg;

/* A counted loop i = 0 .. n-1, optionally carrying one double accumulator. */
typedef struct CgLoop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef i, acc, n;
    bool scalar; /* set after cg_loop_begin: tell the loop vectoriser to leave it */
} CgLoop;

/* Loops with at most this many (constant) trips are left to LLVM's full
 * unroller, which turns small reductions and rows into straight-line code;
 * longer and batch-sized loops are marked not to unroll, which halves the JIT
 * compile time at no measured cost (docs/codegen.md). */
enum { CG_UNROLL_MAX_TRIPS = 16 };

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

static int topo(const Cg *cg, const IrNode *n)
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
        const Plan *src = &cg->plan[topo(cg, n->args[0])];
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
           is_batched(n->args[1]) && cg->uses[topo(cg, n)] == 1;
}

/* Batched nodes of per-sample outputs are computed straight into the output
 * (no copy), once each: a node two outputs share is copied for the second. */
static void plan_outputs(Cg *cg)
{
    for (int o = 0; o < cg->k->n_outputs; o++) {
        const CgOutput *out = &cg->k->outputs[o];
        Plan *pl = &cg->plan[topo(cg, out->node)];
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

/* An op whose elements cost tens of instructions (codegen_math.c's tanh and
 * exp, libm calls). */
static bool is_costly(IrOp op)
{
    return ir_op_class(op) == IR_UNARY && op != IR_NEG && op != IR_ABS && op != IR_SQRT &&
           op != IR_RELU && op != IR_SIGN && op != IR_STEP;
}

/* A batched node reading an unbatched vector (the bias in W @ x + b) loops
 * sample by sample (map_is_flat), leaving each sample's size % width
 * elements to scalar code. Inlined into a costly reader, that is where the
 * reader's elements are computed too; kept apart, the costly loop is one flat
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
            plan_read(cg, topo(cg, cg->order[j]->args[a]), i);
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
            plan_read(cg, topo(cg, cg->order[i]->args[a]), i);
    for (int o = 0; o < cg->k->n_outputs; o++) /* read by the final copies and sums */
        cg->plan[topo(cg, cg->k->outputs[o].node)].last_use = cg->count;
    for (int i = 0; i < cg->count; i++) /* a fused node's operands: by its final sum */
        for (int a = 0; cg->plan[i].kind == PK_FUSED && a < cg->order[i]->nargs; a++)
            cg->plan[topo(cg, cg->order[i]->args[a])].last_use = cg->count;
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
            plan_release(cg, topo(cg, cg->order[j]->args[a]), i);
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
            plan_release(cg, topo(cg, n->args[a]), i);
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
            cg->uses[topo(cg, cg->order[i]->args[a])]++;
            cg->user[topo(cg, cg->order[i]->args[a])] = i;
        }
    for (int o = 0; o < cg->k->n_outputs; o++)
        cg->uses[topo(cg, cg->k->outputs[o].node)]++;
    for (int i = 0; i < cg->count; i++)
        plan_leaf_or_view(cg, i);
    plan_outputs(cg);
    plan_inline(cg);
    plan_liveness(cg);
    plan_buffers(cg);
}

/* ---- small emit helpers ---- */

static LLVMValueRef cg_i64(Cg *cg, long v)
{
    return LLVMConstInt(cg->t_i64, (unsigned long long)v, 1);
}

static LLVMValueRef cg_i32(Cg *cg, long v)
{
    return LLVMConstInt(cg->t_i32, (unsigned long long)v, 1);
}

static LLVMValueRef cg_f64(Cg *cg, double v)
{
    return LLVMConstReal(cg->t_f64, v);
}

static LLVMValueRef cg_gep(Cg *cg, LLVMValueRef ptr, LLVMValueRef idx, const char *name)
{
    return LLVMBuildInBoundsGEP2(cg->bld, cg->t_f64, ptr, &idx, 1, name);
}

static LLVMValueRef cg_mul(Cg *cg, LLVMValueRef a, long c)
{
    if (c == 1)
        return a;
    return LLVMBuildNSWMul(cg->bld, a, cg_i64(cg, c), "");
}

static LLVMValueRef cg_add(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildNSWAdd(cg->bld, a, b, "");
}

/* Element k (i64) of sample b (i64, or NULL for sample 0) of v. */
static LLVMValueRef cg_load_inline(Cg *cg, int i, LLVMValueRef b, LLVMValueRef k);

static void cg_set_scope(Cg *cg, LLVMValueRef access, const CgVal *v)
{
    if (v->scope <= 0)
        return;
    LLVMSetMetadata(access, cg->kind_scope, cg->md_scope[v->scope - 1]);
    LLVMSetMetadata(access, cg->kind_noalias, cg->md_noalias[v->scope - 1]);
}

static LLVMValueRef cg_load(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k)
{
    if (v->reg)
        return v->reg;
    if (v->inl)
        return cg_load_inline(cg, v->inl - 1, b, k);
    LLVMValueRef idx = v->bstride && b ? cg_add(cg, cg_mul(cg, b, v->bstride), k) : k;
    LLVMValueRef ld = LLVMBuildLoad2(cg->bld, cg->t_f64, cg_gep(cg, v->ptr, idx, ""), "v_ld");
    LLVMSetAlignment(ld, 8);
    cg_set_scope(cg, ld, v);
    return ld;
}

static void cg_store(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k, LLVMValueRef x)
{
    LLVMValueRef idx = v->bstride && b ? cg_add(cg, cg_mul(cg, b, v->bstride), k) : k;
    LLVMValueRef st = LLVMBuildStore(cg->bld, x, cg_gep(cg, v->ptr, idx, ""));
    LLVMSetAlignment(st, 8);
    cg_set_scope(cg, st, v);
}

static LLVMBasicBlockRef cg_block(Cg *cg, const char *name)
{
    return LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, name);
}

/* Opens `for (i = 0; i < n; i++)` (tag names its blocks b_<tag>_*); acc_init,
 * when non-NULL, starts a double accumulator phi. The body follows. */
static LLVMValueRef cg_loop_begin(Cg *cg, CgLoop *l, LLVMValueRef n, const char *tag,
                                  LLVMValueRef acc_init)
{
    char name[64];
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->bld);
    snprintf(name, sizeof name, "b_%s_head", tag);
    l->head = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_body", tag);
    LLVMBasicBlockRef body = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_done", tag);
    l->exit = cg_block(cg, name);
    LLVMBuildBr(cg->bld, l->head);
    LLVMPositionBuilderAtEnd(cg->bld, l->head);
    snprintf(name, sizeof name, "v_%s", tag);
    l->i = LLVMBuildPhi(cg->bld, cg->t_i64, name);
    LLVMValueRef zero = cg_i64(cg, 0);
    LLVMAddIncoming(l->i, &zero, &pre, 1);
    l->acc = NULL;
    l->n = n;
    l->scalar = false;
    if (acc_init) {
        l->acc = LLVMBuildPhi(cg->bld, cg->t_f64, "v_acc");
        LLVMAddIncoming(l->acc, &acc_init, &pre, 1);
    }
    LLVMValueRef more = LLVMBuildICmp(cg->bld, LLVMIntSLT, l->i, n, "");
    LLVMBuildCondBr(cg->bld, more, body, l->exit);
    LLVMPositionBuilderAtEnd(cg->bld, body);
    return l->i;
}

/* A distinct, self-referential loop ID: !{!self, !{"llvm.loop.unroll.disable"},
 * !{"llvm.loop.vectorize.enable", i1 false}}, with the properties asked for. */
static LLVMValueRef cg_md_loop(Cg *cg, bool no_unroll, bool no_vec)
{
    static const char unroll[] = "llvm.loop.unroll.disable", vec[] = "llvm.loop.vectorize.enable";
    LLVMMetadataRef ops[3] = {LLVMTemporaryMDNode(cg->ctx, NULL, 0)};
    unsigned n = 1;
    if (no_unroll) {
        LLVMMetadataRef str = LLVMMDStringInContext2(cg->ctx, unroll, sizeof unroll - 1);
        ops[n++] = LLVMMDNodeInContext2(cg->ctx, &str, 1);
    }
    if (no_vec) {
        LLVMMetadataRef kv[2] = {
            LLVMMDStringInContext2(cg->ctx, vec, sizeof vec - 1),
            LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 0, 0))};
        ops[n++] = LLVMMDNodeInContext2(cg->ctx, kv, 2);
    }
    LLVMMetadataRef id = LLVMMDNodeInContext2(cg->ctx, ops, n);
    LLVMMetadataReplaceAllUsesWith(ops[0], id); /* also deletes the temporary */
    return LLVMMetadataAsValue(cg->ctx, id);
}

/* A distinct node !{!self, ops...} (an alias domain, or a scope in one). */
static LLVMMetadataRef cg_md_self(Cg *cg, LLVMMetadataRef op)
{
    LLVMMetadataRef ops[2] = {LLVMTemporaryMDNode(cg->ctx, NULL, 0), op};
    LLVMMetadataRef node = LLVMMDNodeInContext2(cg->ctx, ops, op ? 2 : 1);
    LLVMMetadataReplaceAllUsesWith(ops[0], node);
    return node;
}

/* One alias scope per work block of the kernel (its plan is made). */
static void cg_alias_scopes(Cg *cg)
{
    int n = cg->fixed.n + cg->sample.n;
    LLVMMetadataRef domain = cg_md_self(cg, NULL);
    LLVMMetadataRef *scopes = arena_alloc(cg->arena, sizeof *scopes * (size_t)(n + 1));
    LLVMMetadataRef *others = arena_alloc(cg->arena, sizeof *others * (size_t)(n + 1));
    cg->md_scope = arena_alloc(cg->arena, sizeof *cg->md_scope * (size_t)(n + 1));
    cg->md_noalias = arena_alloc(cg->arena, sizeof *cg->md_noalias * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        scopes[i] = cg_md_self(cg, domain);
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                others[m++] = scopes[j];
        cg->md_scope[i] = LLVMMetadataAsValue(cg->ctx, LLVMMDNodeInContext2(cg->ctx, &scopes[i], 1));
        cg->md_noalias[i] = LLVMMetadataAsValue(cg->ctx, LLVMMDNodeInContext2(cg->ctx, others, (size_t)m));
    }
    cg->kind_scope = LLVMGetMDKindIDInContext(cg->ctx, "alias.scope", 11);
    cg->kind_noalias = LLVMGetMDKindIDInContext(cg->ctx, "noalias", 7);
}

/* Closes the loop; acc_next feeds the accumulator (l->acc is its final value
 * after the loop). */
static void cg_loop_end(Cg *cg, CgLoop *l, LLVMValueRef acc_next)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->bld);
    LLVMValueRef next = LLVMBuildNUWAdd(cg->bld, l->i, cg_i64(cg, 1), "");
    LLVMAddIncoming(l->i, &next, &latch, 1);
    if (l->acc)
        LLVMAddIncoming(l->acc, &acc_next, &latch, 1);
    LLVMValueRef br = LLVMBuildBr(cg->bld, l->head);
    bool small = LLVMIsAConstantInt(l->n) && LLVMConstIntGetSExtValue(l->n) <= CG_UNROLL_MAX_TRIPS;
    if (!small || l->scalar)
        LLVMSetMetadata(br, LLVMGetMDKindIDInContext(cg->ctx, "llvm.loop", 9),
                        cg_md_loop(cg, !small, l->scalar));
    LLVMPositionBuilderAtEnd(cg->bld, l->exit);
}

/* Samples to loop over for a value with this stride. */
static LLVMValueRef cg_samples(Cg *cg, long bstride)
{
    return bstride ? cg->v_B : cg_i64(cg, 1);
}

static LLVMValueRef cg_intrinsic(Cg *cg, const char *name, int nargs, LLVMValueRef *args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, &cg->t_f64, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, &cg->t_f64, 1);
    return LLVMBuildCall2(cg->bld, fty, fn, args, (unsigned)nargs, "");
}

/* A libm function double(double), resolved by the JIT in the process. */
static LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x)
{
    LLVMTypeRef fty = LLVMFunctionType(cg->t_f64, &cg->t_f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn)
        fn = LLVMAddFunction(cg->mod, name, fty);
    return LLVMBuildCall2(cg->bld, fty, fn, &x, 1, "");
}

/* ---- elementwise ops ---- */

static LLVMValueRef cg_bool(Cg *cg, LLVMRealPredicate pred, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildUIToFP(cg->bld, LLVMBuildFCmp(cg->bld, pred, x, y, ""), cg->t_f64, "");
}

static LLVMValueRef cg_select(Cg *cg, LLVMRealPredicate pred, LLVMValueRef x, LLVMValueRef y,
                              LLVMValueRef then, LLVMValueRef otherwise)
{
    return LLVMBuildSelect(cg->bld, LLVMBuildFCmp(cg->bld, pred, x, y, ""), then, otherwise, "");
}

/* exp inline (codegen_math.c), not llvm.exp: that lowers to a libm call,
 * which would keep every loop holding it scalar. */
static LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x)
{
    return cg_math_call(cg->mod, cg->bld, CG_MATH_EXP, x);
}

/* The forms of ir_eval.c, so the two agree to rounding: sigmoid splits on the
 * sign (exp(-|x|) is exp(-x) for x >= 0 and exp(x) below), softplus is
 * max(x,0) + log1p(exp(-|x|)). */
static LLVMValueRef cg_sigmoid(Cg *cg, LLVMValueRef x)
{
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", 1, &x);
    LLVMValueRef nax = LLVMBuildFNeg(cg->bld, ax, "");
    LLVMValueRef e = cg_exp(cg, nax);
    LLVMValueRef d = LLVMBuildFAdd(cg->bld, cg_f64(cg, 1), e, "");
    LLVMValueRef pos = LLVMBuildFDiv(cg->bld, cg_f64(cg, 1), d, "");
    LLVMValueRef neg = LLVMBuildFDiv(cg->bld, e, d, "");
    return cg_select(cg, LLVMRealOGE, x, cg_f64(cg, 0), pos, neg);
}

static LLVMValueRef cg_softplus(Cg *cg, LLVMValueRef x)
{
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", 1, &x);
    LLVMValueRef nax = LLVMBuildFNeg(cg->bld, ax, "");
    LLVMValueRef e = cg_exp(cg, nax);
    LLVMValueRef mx[2] = {x, cg_f64(cg, 0)};
    LLVMValueRef hi = cg_intrinsic(cg, "llvm.maxnum", 2, mx);
    return LLVMBuildFAdd(cg->bld, hi, cg_libm(cg, "log1p", e), "");
}

static LLVMValueRef cg_unary(Cg *cg, IrOp op, LLVMValueRef x)
{
    LLVMValueRef zero = cg_f64(cg, 0), one = cg_f64(cg, 1);
    switch (op) {
    case IR_NEG: return LLVMBuildFNeg(cg->bld, x, "");
    case IR_EXP: return cg_exp(cg, x);
    case IR_LOG: return cg_intrinsic(cg, "llvm.log", 1, &x);
    case IR_SQRT: return cg_intrinsic(cg, "llvm.sqrt", 1, &x);
    case IR_ABS: return cg_intrinsic(cg, "llvm.fabs", 1, &x);
    case IR_SIN: return cg_intrinsic(cg, "llvm.sin", 1, &x);
    case IR_COS: return cg_intrinsic(cg, "llvm.cos", 1, &x);
    case IR_TAN: return cg_libm(cg, "tan", x);
    case IR_TANH: return cg_math_call(cg->mod, cg->bld, CG_MATH_TANH, x);
    case IR_SIGMOID: return cg_sigmoid(cg, x);
    case IR_RELU: return cg_select(cg, LLVMRealOGT, x, zero, x, zero);
    case IR_SOFTPLUS: return cg_softplus(cg, x);
    case IR_SIGN:
        return cg_select(cg, LLVMRealOGT, x, zero, one,
                         cg_select(cg, LLVMRealOLT, x, zero, cg_f64(cg, -1), zero));
    case IR_STEP: return cg_select(cg, LLVMRealOGT, x, zero, one, zero);
    default: return NULL;
    }
}

/* x^2 and x^3 by multiplication (a cube is the MLP's y^3); other exponents
 * through llvm.pow. */
static LLVMValueRef cg_pow(Cg *cg, const IrNode *n, LLVMValueRef x, LLVMValueRef e)
{
    const IrNode *ex = n->args[1];
    if (ir_shape_size(ex->shape) == 1 && ir_is_const_value(ex, 2))
        return LLVMBuildFMul(cg->bld, x, x, "");
    if (ir_shape_size(ex->shape) == 1 && ir_is_const_value(ex, 3))
        return LLVMBuildFMul(cg->bld, LLVMBuildFMul(cg->bld, x, x, ""), x, "");
    LLVMValueRef args[2] = {x, e};
    return cg_intrinsic(cg, "llvm.pow", 2, args);
}

static LLVMValueRef cg_binary(Cg *cg, const IrNode *n, LLVMValueRef x, LLVMValueRef y)
{
    switch (n->op) {
    case IR_ADD: return LLVMBuildFAdd(cg->bld, x, y, "");
    case IR_SUB: return LLVMBuildFSub(cg->bld, x, y, "");
    case IR_MUL: return LLVMBuildFMul(cg->bld, x, y, "");
    case IR_DIV: return LLVMBuildFDiv(cg->bld, x, y, "");
    case IR_POW: return cg_pow(cg, n, x, y);
    case IR_LT: return cg_bool(cg, LLVMRealOLT, x, y);
    case IR_LE: return cg_bool(cg, LLVMRealOLE, x, y);
    case IR_GT: return cg_bool(cg, LLVMRealOGT, x, y);
    case IR_GE: return cg_bool(cg, LLVMRealOGE, x, y);
    case IR_EQ: return cg_bool(cg, LLVMRealOEQ, x, y);
    case IR_NE: return cg_bool(cg, LLVMRealUNE, x, y); /* C's !=: true for NaN */
    default: return NULL;
    }
}

/* One element of n from its operands' elements; n == NULL is a plain copy. */
static LLVMValueRef cg_element_op(Cg *cg, const IrNode *n, LLVMValueRef *x)
{
    if (!n)
        return x[0];
    if (n->op == IR_WHERE)
        return cg_select(cg, LLVMRealUNE, x[0], cg_f64(cg, 0), x[1], x[2]);
    if (n->nargs == 1)
        return cg_unary(cg, n->op, x[0]);
    return cg_binary(cg, n, x[0], x[1]);
}

/* Element k of sample b of the inlined node i, computed from its operands'
 * (which may be inlined too). */
static LLVMValueRef cg_load_inline(Cg *cg, int i, LLVMValueRef b, LLVMValueRef k)
{
    const IrNode *n = cg->order[i];
    LLVMValueRef x[3];
    for (int a = 0; a < n->nargs && a < 3; a++) {
        const CgVal *v = &cg->val[topo(cg, n->args[a])];
        bool bcast = v->size == 1 && ir_shape_size(n->shape) > 1;
        x[a] = cg_load(cg, v, b, bcast ? cg_i64(cg, 0) : k);
    }
    return cg_element_op(cg, n, x);
}

/* True when one flat loop over B*size covers out and every operand (and the
 * operands of inlined ones): each is either laid out sample-major with
 * stride size, or a broadcast unbatched scalar (a register or element 0). */
static bool map_is_flat(const Cg *cg, const CgVal *out, int nargs, const CgVal *const *args)
{
    if (out->bstride == 0)
        return true;
    if (out->bstride != out->size)
        return false;
    for (int a = 0; a < nargs; a++) {
        const CgVal *v = args[a];
        bool bcast = v->size == 1 && out->size > 1;
        if (v->reg)
            continue;
        if (v->inl) {
            const IrNode *n = cg->order[v->inl - 1];
            const CgVal *sub[3];
            for (int s = 0; s < n->nargs && s < 3; s++)
                sub[s] = &cg->val[topo(cg, n->args[s])];
            if (!map_is_flat(cg, out, n->nargs, sub))
                return false;
            continue;
        }
        if (v->bstride == 0 ? !bcast : (bcast || v->bstride != out->size))
            return false;
    }
    return true;
}

/* out[b, k] = op(args[.][b, k]) for every sample and element, scalars
 * broadcasting (stride 0). The loop body has no calls but the op's own, so the
 * vectoriser sees a plain streaming loop. */
static void emit_map(Cg *cg, const IrNode *n, const CgVal *out, int nargs, const CgVal *const *args,
                     const char *tag)
{
    LLVMValueRef x[3];
    char name[64];
    if (map_is_flat(cg, out, nargs, args)) {
        CgLoop l;
        snprintf(name, sizeof name, "%s_i", tag);
        LLVMValueRef total = out->bstride ? cg_mul(cg, cg->v_B, out->size) : cg_i64(cg, out->size);
        LLVMValueRef i = cg_loop_begin(cg, &l, total, name, NULL);
        for (int a = 0; a < nargs; a++) {
            bool bcast = args[a]->size == 1 && out->size > 1;
            x[a] = cg_load(cg, args[a], NULL, bcast ? cg_i64(cg, 0) : i);
        }
        cg_store(cg, out, NULL, i, cg_element_op(cg, n, x));
        cg_loop_end(cg, &l, NULL);
        return;
    }
    CgLoop lb, lk;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, out->size), name, NULL);
    for (int a = 0; a < nargs; a++) {
        bool bcast = args[a]->size == 1 && out->size > 1;
        x[a] = cg_load(cg, args[a], b, bcast ? cg_i64(cg, 0) : k);
    }
    cg_store(cg, out, b, k, cg_element_op(cg, n, x));
    cg_loop_end(cg, &lk, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* ---- shape-changing ops ---- */

/* The per-sample 2-D loop nest shared by TRANSPOSE, OUTER and SLICE copies:
 * out[b, i*cols + j] = f(b, i, j). */
static void emit_grid(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[topo(cg, n->args[0])];
    int rows = n->shape.rows, cols = n->shape.cols;
    char name[64];
    CgLoop lb, li, lj;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_i", tag);
    LLVMValueRef i = cg_loop_begin(cg, &li, cg_i64(cg, rows), name, NULL);
    snprintf(name, sizeof name, "%s_j", tag);
    LLVMValueRef j = cg_loop_begin(cg, &lj, cg_i64(cg, cols), name, NULL);
    LLVMValueRef v;
    if (n->op == IR_TRANSPOSE) {
        v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, j, rows), i));
    } else if (n->op == IR_OUTER) {
        const CgVal *y = &cg->val[topo(cg, n->args[1])];
        v = LLVMBuildFMul(cg->bld, cg_load(cg, x, b, i), cg_load(cg, y, b, j), "");
    } else { /* IR_SLICE */
        int src_cols = n->args[0]->shape.cols;
        LLVMValueRef row = cg_add(cg, i, cg_i64(cg, n->attr[0]));
        LLVMValueRef col = cg_add(cg, j, cg_i64(cg, n->attr[1]));
        v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, row, src_cols), col));
    }
    cg_store(cg, out, b, cg_add(cg, cg_mul(cg, i, cols), j), v);
    cg_loop_end(cg, &lj, NULL);
    cg_loop_end(cg, &li, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* PAD (the transpose of SLICE): zeros, then the operand's rows copied into
 * place at (attr[0], attr[1]). */
static void emit_pad(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    CgVal zero = {.reg = cg_f64(cg, 0), .size = 1};
    const CgVal *z = &zero, *x = &cg->val[topo(cg, n->args[0])];
    emit_map(cg, NULL, out, 1, &z, tag);
    int rows = n->args[0]->shape.rows, cols = n->args[0]->shape.cols;
    char name[64];
    CgLoop lb, li, lj;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_i", tag);
    LLVMValueRef i = cg_loop_begin(cg, &li, cg_i64(cg, rows), name, NULL);
    snprintf(name, sizeof name, "%s_j", tag);
    LLVMValueRef j = cg_loop_begin(cg, &lj, cg_i64(cg, cols), name, NULL);
    LLVMValueRef v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, i, cols), j));
    LLVMValueRef row = cg_add(cg, i, cg_i64(cg, n->attr[0]));
    LLVMValueRef col = cg_add(cg, j, cg_i64(cg, n->attr[1]));
    cg_store(cg, out, b, cg_add(cg, cg_mul(cg, row, n->shape.cols), col), v);
    cg_loop_end(cg, &lj, NULL);
    cg_loop_end(cg, &li, NULL);
    cg_loop_end(cg, &lb, NULL);
}

static void emit_sum(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[topo(cg, n->args[0])];
    char name[64];
    CgLoop lb, lk;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, x->size), name, cg_f64(cg, 0));
    LLVMValueRef next = LLVMBuildFAdd(cg->bld, lk.acc, cg_load(cg, x, b, k), "");
    cg_loop_end(cg, &lk, next);
    cg_store(cg, out, b, cg_i64(cg, 0), lk.acc);
    cg_loop_end(cg, &lb, NULL);
}

/* CONCAT and STACK: each operand copied after the previous (row-major). */
static void emit_join(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    int at = 0;
    for (int a = 0; a < n->nargs; a++) {
        const CgVal *x = &cg->val[topo(cg, n->args[a])];
        CgVal part = *out;
        part.ptr = cg_gep(cg, out->ptr, cg_i64(cg, at), "");
        part.size = x->size;
        emit_map(cg, NULL, &part, 1, &x, tag);
        at += x->size;
    }
}

/* ---- matrix products ---- */

/* A matmul as C[m,k] = A[m,inner] B[inner,k]: a vector on the left is [1,n],
 * on the right [n,1] (ir_eval.c's reading). */
typedef struct MatDims {
    int m, inner, k;
} MatDims;

static MatDims mat_dims(const IrNode *n)
{
    IrShape xs = n->args[0]->shape, ys = n->args[1]->shape;
    return (MatDims){xs.rank == 2 ? xs.rows : 1, xs.rank == 2 ? xs.cols : xs.rows,
                     ys.rank == 2 ? ys.cols : 1};
}

/* Loop nest over nb samples, summing in ir_eval's order (so the inline path
 * matches the interpreter bit for bit). */
static void emit_matmul_inline(Cg *cg, MatDims d, const CgVal *a, const CgVal *bm, const CgVal *c,
                               const char *tag)
{
    char name[64];
    CgLoop lb, li, lj, ll;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, c->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_i", tag);
    LLVMValueRef i = cg_loop_begin(cg, &li, cg_i64(cg, d.m), name, NULL);
    snprintf(name, sizeof name, "%s_j", tag);
    LLVMValueRef j = cg_loop_begin(cg, &lj, cg_i64(cg, d.k), name, NULL);
    snprintf(name, sizeof name, "%s_l", tag);
    LLVMValueRef l = cg_loop_begin(cg, &ll, cg_i64(cg, d.inner), name, cg_f64(cg, 0));
    LLVMValueRef xa = cg_load(cg, a, b, cg_add(cg, cg_mul(cg, i, d.inner), l));
    LLVMValueRef xb = cg_load(cg, bm, b, cg_add(cg, cg_mul(cg, l, d.k), j));
    LLVMValueRef next = LLVMBuildFAdd(cg->bld, ll.acc, LLVMBuildFMul(cg->bld, xa, xb, ""), "");
    cg_loop_end(cg, &ll, next);
    cg_store(cg, c, b, cg_add(cg, cg_mul(cg, i, d.k), j), ll.acc);
    cg_loop_end(cg, &lj, NULL);
    cg_loop_end(cg, &li, NULL);
    cg_loop_end(cg, &lb, NULL);
}

static LLVMValueRef cg_blas_fn(Cg *cg, const char *name, LLVMTypeRef fty)
{
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    return fn ? fn : LLVMAddFunction(cg->mod, name, fty);
}

static void cg_dgemm(Cg *cg, int trans_b, LLVMValueRef M, long N, long K, LLVMValueRef A, long lda,
                     LLVMValueRef Bp, long ldb, LLVMValueRef C, long ldc)
{
    LLVMValueRef args[14] = {
        cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, CBLAS_NO_TRANS), cg_i32(cg, trans_b),
        LLVMBuildTrunc(cg->bld, M, cg->t_i32, ""), cg_i32(cg, N), cg_i32(cg, K),
        cg_f64(cg, 1), A, cg_i32(cg, lda), Bp, cg_i32(cg, ldb), cg_f64(cg, 0), C, cg_i32(cg, ldc)};
    LLVMBuildCall2(cg->bld, cg->t_dgemm, cg_blas_fn(cg, "cblas_dgemm", cg->t_dgemm), args, 14, "");
}

static void cg_dgemv(Cg *cg, int trans, long M, long N, LLVMValueRef A, long lda, LLVMValueRef x,
                     LLVMValueRef y)
{
    LLVMValueRef args[12] = {cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, trans), cg_i32(cg, M),
                             cg_i32(cg, N), cg_f64(cg, 1), A, cg_i32(cg, lda), x, cg_i32(cg, 1),
                             cg_f64(cg, 0), y, cg_i32(cg, 1)};
    LLVMBuildCall2(cg->bld, cg->t_dgemv, cg_blas_fn(cg, "cblas_dgemv", cg->t_dgemv), args, 12, "");
}

/* One product C = A B on contiguous operands: dgemv for matrix-vector and
 * vector-matrix, dgemm otherwise. */
static void cg_blas_single(Cg *cg, MatDims d, LLVMValueRef A, LLVMValueRef Bp, LLVMValueRef C)
{
    if (d.k == 1 && d.m > 1)
        cg_dgemv(cg, CBLAS_NO_TRANS, d.m, d.inner, A, d.inner, Bp, C);
    else if (d.m == 1 && d.k > 1)
        cg_dgemv(cg, CBLAS_TRANS, d.inner, d.k, Bp, d.k, A, C);
    else
        cg_dgemm(cg, CBLAS_NO_TRANS, cg_i64(cg, d.m), d.k, d.inner, A, d.inner, Bp, d.k, C, d.k);
}

/* Whether one dgemm covers the whole batch: a shared matrix times batched
 * vectors is Out(B x m) = X(B x n) W^T; batched rows times a shared matrix
 * stack into one (B*m x n) operand. */
static bool mat_stackable(MatDims d, const CgVal *a, const CgVal *bm, const CgVal *c)
{
    if (!a->bstride && bm->bstride)
        return d.k == 1;
    if (a->bstride && !bm->bstride)
        return d.m == 1 || (a->bstride == (long)d.m * d.inner && c->bstride == (long)d.m * d.k);
    return false;
}

static void cg_blas_stacked(Cg *cg, MatDims d, const CgVal *a, const CgVal *bm, const CgVal *c)
{
    if (!a->bstride) /* X(B x inner) A^T, ldx = the operand's sample stride */
        cg_dgemm(cg, CBLAS_TRANS, cg->v_B, d.m, d.inner, bm->ptr, bm->bstride, a->ptr, d.inner,
                 c->ptr, c->bstride);
    else if (d.m == 1)
        cg_dgemm(cg, CBLAS_NO_TRANS, cg->v_B, d.k, d.inner, a->ptr, a->bstride, bm->ptr, d.k, c->ptr,
                 c->bstride);
    else
        cg_dgemm(cg, CBLAS_NO_TRANS, cg_mul(cg, cg->v_B, d.m), d.k, d.inner, a->ptr, d.inner, bm->ptr,
                 d.k, c->ptr, d.k);
}

/* if (B * flops >= threshold) blas else inline: the batch size is known only
 * at run time. */
static void emit_matmul_stacked(Cg *cg, MatDims d, const CgVal *a, const CgVal *bm, const CgVal *c,
                                const char *tag)
{
    char name[64];
    long flops = (long)d.m * d.inner * d.k;
    LLVMValueRef work = cg_mul(cg, cg->v_B, flops);
    double limit = blas_min_flops < 1e18 ? blas_min_flops : 1e18;
    LLVMValueRef big = LLVMBuildICmp(cg->bld, LLVMIntSGE, work, cg_i64(cg, (long)limit),
                                     "v_use_blas");
    snprintf(name, sizeof name, "b_%s_blas", tag);
    LLVMBasicBlockRef b_blas = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_inline", tag);
    LLVMBasicBlockRef b_inline = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_join", tag);
    LLVMBasicBlockRef b_join = cg_block(cg, name);
    LLVMBuildCondBr(cg->bld, big, b_blas, b_inline);
    LLVMPositionBuilderAtEnd(cg->bld, b_blas);
    cg_blas_stacked(cg, d, a, bm, c);
    LLVMBuildBr(cg->bld, b_join);
    LLVMPositionBuilderAtEnd(cg->bld, b_inline);
    emit_matmul_inline(cg, d, a, bm, c, tag);
    LLVMBuildBr(cg->bld, b_join);
    LLVMPositionBuilderAtEnd(cg->bld, b_join);
}

/* Both operands batched (or a shared matrix times batched matrices): one
 * BLAS call per sample. */
static void emit_matmul_per_sample(Cg *cg, MatDims d, const CgVal *a, const CgVal *bm,
                                   const CgVal *c, const char *tag)
{
    char name[64];
    CgLoop lb;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, name, NULL);
    LLVMValueRef pa = a->bstride ? cg_gep(cg, a->ptr, cg_mul(cg, b, a->bstride), "") : a->ptr;
    LLVMValueRef pb = bm->bstride ? cg_gep(cg, bm->ptr, cg_mul(cg, b, bm->bstride), "") : bm->ptr;
    cg_blas_single(cg, d, pa, pb, cg_gep(cg, c->ptr, cg_mul(cg, b, c->bstride), ""));
    cg_loop_end(cg, &lb, NULL);
}

static void emit_matmul(Cg *cg, const IrNode *n, const CgVal *c, const char *tag)
{
    const CgVal *a = &cg->val[topo(cg, n->args[0])];
    const CgVal *bm = &cg->val[topo(cg, n->args[1])];
    MatDims d = mat_dims(n);
    double flops = (double)d.m * d.inner * d.k;
    if (d.inner < blas_min_inner || !a->ptr || !bm->ptr) /* BLAS needs memory */
        emit_matmul_inline(cg, d, a, bm, c, tag);
    else if (!c->bstride && flops >= blas_min_flops)
        cg_blas_single(cg, d, a->ptr, bm->ptr, c->ptr);
    else if (!c->bstride)
        emit_matmul_inline(cg, d, a, bm, c, tag);
    else if (mat_stackable(d, a, bm, c))
        emit_matmul_stacked(cg, d, a, bm, c, tag);
    else if (flops >= blas_min_flops)
        emit_matmul_per_sample(cg, d, a, bm, c, tag);
    else
        emit_matmul_inline(cg, d, a, bm, c, tag);
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
        const CgVal *src = &cg->val[topo(cg, n->args[0])];
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
        x[a] = cg_load(cg, &cg->val[topo(cg, n->args[a])], NULL, cg_i64(cg, 0));
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
    case IR_MATMUL: emit_matmul(cg, n, out, tag); return;
    case IR_TRANSPOSE: case IR_OUTER: emit_grid(cg, n, out, tag); return;
    case IR_SLICE:
        if (cg->plan[i].kind != PK_VIEW)
            emit_grid(cg, n, out, tag);
        return;
    case IR_SUM: emit_sum(cg, n, out, tag); return;
    case IR_PAD: emit_pad(cg, n, out, tag); return;
    case IR_CONCAT: case IR_STACK: emit_join(cg, n, out, tag); return;
    default:
        for (int a = 0; a < n->nargs && a < 3; a++)
            args[a] = &cg->val[topo(cg, n->args[a])];
        emit_map(cg, n, out, n->nargs, args, tag);
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
    emit_map(cg, NULL, &dst, 1, &z, tag);
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, src->size), name, NULL);
    LLVMValueRef acc = LLVMBuildFAdd(cg->bld, cg_load(cg, &dst, NULL, k), cg_load(cg, src, b, k), "");
    cg_store(cg, &dst, NULL, k, acc);
    cg_loop_end(cg, &lk, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* out[i, j] = sum_b u[b, i] v[b, j] for a fused OUTER: C = U^T V, one dgemm
 * whose reduction is the batch when the measured rule allows (B known only at
 * run time), else loops in sample order (as emit_batch_sum sums). */
static void emit_outer_sum(Cg *cg, const CgOutput *o, const char *tag)
{
    const IrNode *n = o->node;
    const CgVal *u = &cg->val[topo(cg, n->args[0])], *v = &cg->val[topo(cg, n->args[1])];
    long m = u->size, k = v->size;
    CgVal dst = {.ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, o->offset), "v_sum"),
                 .size = (int)(m * k)};
    double limit = blas_min_flops < 1e18 ? blas_min_flops : 1e18;
    LLVMValueRef big = LLVMBuildAnd(
        cg->bld, LLVMBuildICmp(cg->bld, LLVMIntSGE, cg_mul(cg, cg->v_B, m * k), cg_i64(cg, (long)limit), ""),
        LLVMBuildICmp(cg->bld, LLVMIntSGE, cg->v_B, cg_i64(cg, blas_min_inner), ""), "v_use_blas");
    char name[64];
    snprintf(name, sizeof name, "b_%s_blas", tag);
    LLVMBasicBlockRef b_blas = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_inline", tag);
    LLVMBasicBlockRef b_inline = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_join", tag);
    LLVMBasicBlockRef b_join = cg_block(cg, name);
    LLVMBuildCondBr(cg->bld, big, b_blas, b_inline);
    LLVMPositionBuilderAtEnd(cg->bld, b_blas);
    LLVMValueRef args[14] = {
        cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, CBLAS_TRANS), cg_i32(cg, CBLAS_NO_TRANS),
        cg_i32(cg, m), cg_i32(cg, k), LLVMBuildTrunc(cg->bld, cg->v_B, cg->t_i32, ""),
        cg_f64(cg, 1), u->ptr, cg_i32(cg, u->bstride), v->ptr, cg_i32(cg, v->bstride),
        cg_f64(cg, 0), dst.ptr, cg_i32(cg, k)};
    LLVMBuildCall2(cg->bld, cg->t_dgemm, cg_blas_fn(cg, "cblas_dgemm", cg->t_dgemm), args, 14, "");
    LLVMBuildBr(cg->bld, b_join);
    LLVMPositionBuilderAtEnd(cg->bld, b_inline);
    CgVal zero = {.reg = cg_f64(cg, 0), .size = 1};
    const CgVal *z = &zero;
    emit_map(cg, NULL, &dst, 1, &z, tag);
    CgLoop lb, li, lj;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg->v_B, name, NULL);
    snprintf(name, sizeof name, "%s_i", tag);
    LLVMValueRef i = cg_loop_begin(cg, &li, cg_i64(cg, m), name, NULL);
    LLVMValueRef ui = cg_load(cg, u, b, i);
    snprintf(name, sizeof name, "%s_j", tag);
    LLVMValueRef j = cg_loop_begin(cg, &lj, cg_i64(cg, k), name, NULL);
    lj.scalar = true; /* small batches only: run-time alias checks would cost more */
    LLVMValueRef at = cg_add(cg, cg_mul(cg, i, k), j);
    LLVMValueRef prod = LLVMBuildFMul(cg->bld, ui, cg_load(cg, v, b, j), "");
    cg_store(cg, &dst, NULL, at, LLVMBuildFAdd(cg->bld, cg_load(cg, &dst, NULL, at), prod, ""));
    cg_loop_end(cg, &lj, NULL);
    cg_loop_end(cg, &li, NULL);
    cg_loop_end(cg, &lb, NULL);
    LLVMBuildBr(cg->bld, b_join);
    LLVMPositionBuilderAtEnd(cg->bld, b_join);
}

/* Outputs not computed in place are copied (broadcast when unbatched) or
 * summed over the batch. */
static void emit_outputs(Cg *cg)
{
    for (int i = 0; i < cg->k->n_outputs; i++) {
        const CgOutput *o = &cg->k->outputs[i];
        int r = topo(cg, o->node);
        const CgVal *src = &cg->val[r];
        char tag[32];
        snprintf(tag, sizeof tag, "out%d", i);
        if (cg->plan[r].kind == PK_FUSED)
            emit_outer_sum(cg, o, tag);
        else if (o->batch_sum)
            emit_batch_sum(cg, o, src, tag);
        if (o->batch_sum || (cg->plan[r].kind == PK_OUT && cg->plan[r].out == i))
            continue;
        CgVal out = {.ptr = cg_gep(cg, cg->v_out[o->dst], cg_i64(cg, o->offset), "v_out"),
                     .bstride = o->stride, .size = src->size};
        emit_map(cg, NULL, &out, 1, &src, tag);
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
    diag_plain(diag, "internal error at compiler/codegen_llvm.c:%d: kernel '%s' of model '%s': %s",
               line, cg->k->name, cg->m->name, what);
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
    emit_map(cg, NULL, &dst, 1, &from, "copy");
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
        diag_plain(diag, "internal error at compiler/codegen_llvm.c:%d: invalid LLVM module for "
                         "model '%s': %s", __LINE__, cg->m->name, msg ? msg : "");
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
                diag_plain(diag, "internal error at compiler/codegen_llvm.c:%d: two kernels "
                                 "named '%s'", __LINE__, layout->names[i]);
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
        diag_plain(diag, "internal error at compiler/codegen_llvm.c:%d: model '%s': asked for %s",
                   __LINE__, m->name, missing);
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
