/* Matrix products for llvm_codegen.c, read as C[m,k] = A[m,n] B[n,k]: inline
 * loops summing in ir_eval's order, or OpenBLAS (dgemv/dgemm, sgemv/sgemm in
 * f32: one call for the whole batch when the operands stack, else one per
 * sample) by the measured crossover rule (plan.h; the kernel's PlanOptions.blas); and a fused outer
 * product's batch sum, U^T V, as one dgemm whose reduction is the batch. */
#include "llvm_codegen_internal.h"

#include <stdio.h>

/* CBLAS enum values (cblas.h), passed as i32. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

/* The measured rule (plan.h), or the path a test or benchmark forces. */
static PlanBlasRule blas_rule = {PLAN_BLAS_MIN_FLOPS, PLAN_BLAS_MIN_INNER};

void cg_set_blas_min_flops(double flops)
{
    blas_rule.min_flops = flops < 0 ? PLAN_BLAS_MIN_FLOPS : flops;
    blas_rule.min_inner = flops < 0 ? PLAN_BLAS_MIN_INNER : 0;
}

double cg_blas_min_flops(void)
{
    return blas_rule.min_flops;
}

PlanBlasRule cg_blas_rule(void)
{
    return blas_rule;
}

/* Loop nest over nb samples, summing in ir_eval's order (so the inline path
 * matches the interpreter bit for bit). */
static void emit_matmul_inline(Cg *cg, PlanMatDims d, const CgVal *a, const CgVal *bm, const CgVal *c,
                               const char *tag)
{
    char name[64];
    CgGrid g;
    CgLoop ll;
    cg_grid_begin(cg, &g, c->bstride, d.m, d.k, tag);
    LLVMValueRef b = g.b, i = g.i, j = g.j;
    snprintf(name, sizeof name, "%s_l", tag);
    LLVMValueRef l = cg_loop_begin(cg, &ll, cg_i64(cg, d.inner), name, cg_real(cg, 0));
    LLVMValueRef xa = cg_load(cg, a, b, cg_add(cg, cg_mul(cg, i, d.inner), l));
    LLVMValueRef xb = cg_load(cg, bm, b, cg_add(cg, cg_mul(cg, l, d.k), j));
    LLVMValueRef next = LLVMBuildFAdd(cg->bld, ll.acc, LLVMBuildFMul(cg->bld, xa, xb, ""), "");
    cg_loop_end(cg, &ll, next);
    cg_store(cg, c, b, cg_add(cg, cg_mul(cg, i, d.k), j), ll.acc);
    cg_grid_end(cg, &g);
}

static LLVMValueRef cg_blas_fn(Cg *cg, const char *name, LLVMTypeRef fty)
{
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    return fn ? fn : LLVMAddFunction(cg->mod, name, fty);
}

/* C = alpha op(A) op(B) + beta C in the kernel's precision (JitRequest.f32). */
static void cg_call_gemm(Cg *cg, LLVMValueRef *args)
{
    const char *name = cg->f32 ? "cblas_sgemm" : "cblas_dgemm";
    LLVMBuildCall2(cg->bld, cg->t_gemm, cg_blas_fn(cg, name, cg->t_gemm), args, 14, "");
}

static void cg_dgemm(Cg *cg, int trans_b, LLVMValueRef M, long N, long K, LLVMValueRef A, long lda,
                     LLVMValueRef Bp, long ldb, LLVMValueRef C, long ldc)
{
    LLVMValueRef args[14] = {
        cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, CBLAS_NO_TRANS), cg_i32(cg, trans_b),
        LLVMBuildTrunc(cg->bld, M, cg->t_i32, ""), cg_i32(cg, N), cg_i32(cg, K),
        cg_real(cg, 1), A, cg_i32(cg, lda), Bp, cg_i32(cg, ldb), cg_real(cg, 0), C, cg_i32(cg, ldc)};
    cg_call_gemm(cg, args);
}

static void cg_dgemv(Cg *cg, int trans, long M, long N, LLVMValueRef A, long lda, LLVMValueRef x,
                     LLVMValueRef y)
{
    LLVMValueRef args[12] = {cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, trans), cg_i32(cg, M),
                             cg_i32(cg, N), cg_real(cg, 1), A, cg_i32(cg, lda), x, cg_i32(cg, 1),
                             cg_real(cg, 0), y, cg_i32(cg, 1)};
    const char *name = cg->f32 ? "cblas_sgemv" : "cblas_dgemv";
    LLVMBuildCall2(cg->bld, cg->t_gemv, cg_blas_fn(cg, name, cg->t_gemv), args, 12, "");
}

/* One product C = A B on contiguous operands: dgemv for matrix-vector and
 * vector-matrix, dgemm otherwise. */
static void cg_blas_single(Cg *cg, PlanMatDims d, LLVMValueRef A, LLVMValueRef Bp, LLVMValueRef C)
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
static bool mat_stackable(PlanMatDims d, const CgVal *a, const CgVal *bm, const CgVal *c)
{
    if (!a->bstride && bm->bstride)
        return d.k == 1;
    if (a->bstride && !bm->bstride)
        return d.m == 1 || (a->bstride == (long)d.m * d.inner && c->bstride == (long)d.m * d.k);
    return false;
}

/* if (big) BLAS else inline, B being known only at run time: the blocks
 * b_<tag>_blas, _inline and _join, the builder left in the first. */
typedef struct MatBranch {
    LLVMBasicBlockRef inl, join;
} MatBranch;

static MatBranch mat_branch(Cg *cg, LLVMValueRef big, const char *tag)
{
    char name[64];
    MatBranch br;
    snprintf(name, sizeof name, "b_%s_blas", tag);
    LLVMBasicBlockRef b_blas = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_inline", tag);
    br.inl = cg_block(cg, name);
    snprintf(name, sizeof name, "b_%s_join", tag);
    br.join = cg_block(cg, name);
    LLVMBuildCondBr(cg->bld, big, b_blas, br.inl);
    LLVMPositionBuilderAtEnd(cg->bld, b_blas);
    return br;
}

/* Ends the current arm (a jump to join) and goes on in next. */
static void mat_branch_next(Cg *cg, LLVMBasicBlockRef join, LLVMBasicBlockRef next)
{
    LLVMBuildBr(cg->bld, join);
    LLVMPositionBuilderAtEnd(cg->bld, next);
}

static void cg_blas_stacked(Cg *cg, PlanMatDims d, const CgVal *a, const CgVal *bm, const CgVal *c)
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

/* if (B * flops >= min_flops) blas else inline: the batch size is known only
 * at run time. */
static void emit_matmul_stacked(Cg *cg, PlanMatDims d, const CgVal *a, const CgVal *bm, const CgVal *c,
                                const char *tag, double min_flops)
{
    long flops = (long)d.m * d.inner * d.k;
    LLVMValueRef work = cg_mul(cg, cg->v_B, flops);
    double limit = min_flops < 1e18 ? min_flops : 1e18;
    LLVMValueRef big = LLVMBuildICmp(cg->bld, LLVMIntSGE, work, cg_i64(cg, (long)limit),
                                     "v_use_blas");
    MatBranch br = mat_branch(cg, big, tag);
    cg_blas_stacked(cg, d, a, bm, c);
    mat_branch_next(cg, br.join, br.inl);
    emit_matmul_inline(cg, d, a, bm, c, tag);
    mat_branch_next(cg, br.join, br.join);
}

/* Both operands batched (or a shared matrix times batched matrices): one
 * BLAS call per sample. */
static void emit_matmul_per_sample(Cg *cg, PlanMatDims d, const CgVal *a, const CgVal *bm,
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

void cg_emit_matmul(Cg *cg, const IrNode *n, const CgVal *c, const char *tag)
{
    const CgVal *a = &cg->val[cg_topo(cg, n->args[0])];
    const CgVal *bm = &cg->val[cg_topo(cg, n->args[1])];
    const PlanBlasRule *r = &cg->plan.opt.blas;
    PlanMatDims d = plan_mat_dims(n);
    /* the measured rule (not a test's forced path) lets short stacked products use BLAS */
    bool short_stacked = r->min_inner == PLAN_BLAS_MIN_INNER &&
                         d.inner >= PLAN_BLAS_STACKED_SHORT_INNER && d.inner < r->min_inner &&
                         c->bstride && a->ptr && bm->ptr && mat_stackable(d, a, bm, c);
    if (short_stacked)
        emit_matmul_stacked(cg, d, a, bm, c, tag, PLAN_BLAS_STACKED_SHORT_FLOPS);
    else if (d.inner < r->min_inner || !a->ptr || !bm->ptr) /* BLAS needs memory */
        emit_matmul_inline(cg, d, a, bm, c, tag);
    else if (!c->bstride && plan_blas_pays(r, d))
        cg_blas_single(cg, d, a->ptr, bm->ptr, c->ptr);
    else if (!c->bstride)
        emit_matmul_inline(cg, d, a, bm, c, tag);
    else if (mat_stackable(d, a, bm, c))
        emit_matmul_stacked(cg, d, a, bm, c, tag, r->min_flops);
    else if (plan_blas_pays(r, d))
        emit_matmul_per_sample(cg, d, a, bm, c, tag);
    else
        emit_matmul_inline(cg, d, a, bm, c, tag);
}

/* out[i, j] = sum_b u[b, i] v[b, j] for a fused OUTER: C = U^T V, one dgemm
 * whose reduction is the batch when the measured rule allows (B known only at
 * run time), else loops in sample order (as emit_batch_sum sums). */
void cg_emit_outer_sum(Cg *cg, const PlanOutput *o, const char *tag)
{
    const IrNode *n = o->node;
    const CgVal *u = &cg->val[cg_topo(cg, n->args[0])], *v = &cg->val[cg_topo(cg, n->args[1])];
    long m = u->size, k = v->size;
    CgVal dst = {.ptr = cg_out_ptr(cg, o, "v_sum"), .size = (int)(m * k)};
    const PlanBlasRule *r = &cg->plan.opt.blas;
    double limit = r->min_flops < 1e18 ? r->min_flops : 1e18;
    LLVMValueRef big = LLVMBuildAnd(
        cg->bld, LLVMBuildICmp(cg->bld, LLVMIntSGE, cg_mul(cg, cg->v_B, m * k), cg_i64(cg, (long)limit), ""),
        LLVMBuildICmp(cg->bld, LLVMIntSGE, cg->v_B, cg_i64(cg, r->min_inner), ""), "v_use_blas");
    char name[64];
    MatBranch br = mat_branch(cg, big, tag);
    LLVMValueRef args[14] = {
        cg_i32(cg, CBLAS_ROW_MAJOR), cg_i32(cg, CBLAS_TRANS), cg_i32(cg, CBLAS_NO_TRANS),
        cg_i32(cg, m), cg_i32(cg, k), LLVMBuildTrunc(cg->bld, cg->v_B, cg->t_i32, ""),
        cg_real(cg, 1), u->ptr, cg_i32(cg, u->bstride), v->ptr, cg_i32(cg, v->bstride),
        cg_real(cg, 0), dst.ptr, cg_i32(cg, k)};
    cg_call_gemm(cg, args);
    mat_branch_next(cg, br.join, br.inl);
    CgVal zero = {.reg = cg_real(cg, 0), .size = 1};
    const CgVal *z = &zero;
    cg_emit_map(cg, NULL, &dst, 1, &z, tag);
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
    mat_branch_next(cg, br.join, br.join);
}
