/* The loops llvm_codegen.c's kernels are made of: small builders (constants,
 * addresses, loads and stores tagged with their work block's alias scope),
 * counted loops with their unroll/vectorise metadata, elementwise ops (the inline
 * exp, tanh, log, sin, cos, erf and log1p of llvm_math.c, exact intrinsics,
 * libm for tan, atan, sinh, cosh, asinh, atan2 and pow) mapped over a
 * node's elements, and the shape-changing ops. Plain counted loops with no calls
 * but the op's own, so that O2's vectoriser does the widening. */
#include "llvm_codegen_internal.h"

#include <llvm-c/DebugInfo.h> /* temporary MD nodes, for self-referential loop IDs */

#include <stdio.h>
#include <string.h>

/* Loops with at most this many (constant) trips are left to LLVM's full
 * unroller, which turns small reductions and rows into straight-line code;
 * longer and batch-sized loops are marked not to unroll, which halves the JIT
 * compile time at no measured cost (docs/codegen.md). */
enum { CG_UNROLL_MAX_TRIPS = 16 };

/* ---- small emit helpers ---- */

LLVMValueRef cg_i64(Cg *cg, long v)
{
    return LLVMConstInt(cg->t_i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_i32(Cg *cg, long v)
{
    return LLVMConstInt(cg->t_i32, (unsigned long long)v, 1);
}

LLVMValueRef cg_real(Cg *cg, double v)
{
    return LLVMConstReal(cg->t_real, v);
}

LLVMValueRef cg_gep(Cg *cg, LLVMValueRef ptr, LLVMValueRef idx, const char *name)
{
    return LLVMBuildInBoundsGEP2(cg->bld, cg->t_real, ptr, &idx, 1, name);
}

LLVMValueRef cg_mul(Cg *cg, LLVMValueRef a, long c)
{
    if (c == 1)
        return a;
    return LLVMBuildNSWMul(cg->bld, a, cg_i64(cg, c), "");
}

LLVMValueRef cg_add(Cg *cg, LLVMValueRef a, LLVMValueRef b)
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

LLVMValueRef cg_load(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k)
{
    if (v->reg)
        return v->reg;
    if (v->inl)
        return cg_load_inline(cg, v->inl - 1, b, k);
    LLVMValueRef idx = v->bstride && b ? cg_add(cg, cg_mul(cg, b, v->bstride), k) : k;
    LLVMValueRef ld = LLVMBuildLoad2(cg->bld, cg->t_real, cg_gep(cg, v->ptr, idx, ""), "v_ld");
    LLVMSetAlignment(ld, cg->f32 ? 4 : 8);
    cg_set_scope(cg, ld, v);
    return ld;
}

void cg_store(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k, LLVMValueRef x)
{
    LLVMValueRef idx = v->bstride && b ? cg_add(cg, cg_mul(cg, b, v->bstride), k) : k;
    LLVMValueRef st = LLVMBuildStore(cg->bld, x, cg_gep(cg, v->ptr, idx, ""));
    LLVMSetAlignment(st, cg->f32 ? 4 : 8);
    cg_set_scope(cg, st, v);
}

LLVMBasicBlockRef cg_block(Cg *cg, const char *name)
{
    return LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, name);
}

/* Opens `for (i = 0; i < n; i++)` (tag names its blocks b_<tag>_*); acc_init,
 * when non-NULL, starts a t_real accumulator phi. The body follows. */
LLVMValueRef cg_loop_begin(Cg *cg, CgLoop *l, LLVMValueRef n, const char *tag,
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
        l->acc = LLVMBuildPhi(cg->bld, cg->t_real, "v_acc");
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
void cg_alias_scopes(Cg *cg)
{
    int n = cg->plan.fixed.n + cg->plan.sample.n;
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
void cg_loop_end(Cg *cg, CgLoop *l, LLVMValueRef acc_next)
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
LLVMValueRef cg_samples(Cg *cg, long bstride)
{
    return bstride ? cg->v_B : cg_i64(cg, 1);
}

static LLVMValueRef cg_intrinsic_of(Cg *cg, LLVMTypeRef t, const char *name, int nargs,
                                    LLVMValueRef *args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, &t, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, &t, 1);
    return LLVMBuildCall2(cg->bld, fty, fn, args, (unsigned)nargs, "");
}

/* An intrinsic overloaded on t_real (llvm.fabs.f64 or .f32): the exact ones
 * (fabs, sqrt, floor, maxnum), correctly rounded in either type. */
static LLVMValueRef cg_intrinsic(Cg *cg, const char *name, int nargs, LLVMValueRef *args)
{
    return cg_intrinsic_of(cg, cg->t_real, name, nargs, args);
}

/* The f32 route to libm: x widened to double, the double function, the result
 * rounded back. One rounding of a (nearly) correctly rounded double is as
 * good as logf's own, and no float twin (logf, sinf ...) has to be found by
 * the JIT or agree with its double. In f64 both are no-ops. */
static LLVMValueRef cg_widen(Cg *cg, LLVMValueRef x)
{
    return cg->f32 ? LLVMBuildFPExt(cg->bld, x, LLVMDoubleTypeInContext(cg->ctx), "") : x;
}

static LLVMValueRef cg_narrow(Cg *cg, LLVMValueRef x)
{
    return cg->f32 ? LLVMBuildFPTrunc(cg->bld, x, cg->t_real, "") : x;
}

/* An intrinsic that lowers to a libm call (llvm.log, llvm.sin, llvm.pow ...),
 * always in double (cg_widen). */
static LLVMValueRef cg_intrinsic_f64(Cg *cg, const char *name, int nargs, LLVMValueRef *args)
{
    LLVMValueRef wide[3];
    for (int a = 0; a < nargs && a < 3; a++)
        wide[a] = cg_widen(cg, args[a]);
    LLVMTypeRef t_f64 = LLVMDoubleTypeInContext(cg->ctx);
    return cg_narrow(cg, cg_intrinsic_of(cg, t_f64, name, nargs, wide));
}

/* A libm function double(double), resolved by the JIT in the process (in f32
 * through cg_widen). */
static LLVMValueRef cg_libm(Cg *cg, const char *name, LLVMValueRef x)
{
    LLVMTypeRef t_f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMTypeRef fty = LLVMFunctionType(t_f64, &t_f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn)
        fn = LLVMAddFunction(cg->mod, name, fty);
    LLVMValueRef arg = cg_widen(cg, x);
    return cg_narrow(cg, LLVMBuildCall2(cg->bld, fty, fn, &arg, 1, ""));
}

/* A libm function double(double, double): atan2. */
static LLVMValueRef cg_libm2(Cg *cg, const char *name, LLVMValueRef x, LLVMValueRef y)
{
    LLVMTypeRef t_f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMTypeRef params[2] = {t_f64, t_f64};
    LLVMTypeRef fty = LLVMFunctionType(t_f64, params, 2, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn)
        fn = LLVMAddFunction(cg->mod, name, fty);
    LLVMValueRef args[2] = {cg_widen(cg, x), cg_widen(cg, y)};
    return cg_narrow(cg, LLVMBuildCall2(cg->bld, fty, fn, args, 2, ""));
}

/* ---- elementwise ops ---- */

static LLVMValueRef cg_bool(Cg *cg, LLVMRealPredicate pred, LLVMValueRef x, LLVMValueRef y)
{
    return LLVMBuildUIToFP(cg->bld, LLVMBuildFCmp(cg->bld, pred, x, y, ""), cg->t_real, "");
}

static LLVMValueRef cg_select(Cg *cg, LLVMRealPredicate pred, LLVMValueRef x, LLVMValueRef y,
                              LLVMValueRef then, LLVMValueRef otherwise)
{
    return LLVMBuildSelect(cg->bld, LLVMBuildFCmp(cg->bld, pred, x, y, ""), then, otherwise, "");
}

static bool log_as_log1p; /* cg_set_log_as_log1p: a test's and a benchmark's switch */

void cg_set_log_as_log1p(bool on)
{
    log_as_log1p = on;
}

/* exp inline (llvm_math.c), not llvm.exp: that lowers to a libm call,
 * which would keep every loop holding it scalar. */
static LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x)
{
    return cg_math_call(cg->mod, cg->bld, CG_MATH_EXP, x);
}

/* The forms of ir_eval.c, so the two agree to rounding: sigmoid splits on the
 * sign (exp(-|x|) is exp(-x) for x >= 0 and exp(x) below), softplus is
 * max(x,0) + log1p(exp(-|x|)), both on the inline exp and log1p. */
static LLVMValueRef cg_sigmoid(Cg *cg, LLVMValueRef x)
{
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", 1, &x);
    LLVMValueRef nax = LLVMBuildFNeg(cg->bld, ax, "");
    LLVMValueRef e = cg_exp(cg, nax);
    LLVMValueRef d = LLVMBuildFAdd(cg->bld, cg_real(cg, 1), e, "");
    LLVMValueRef pos = LLVMBuildFDiv(cg->bld, cg_real(cg, 1), d, "");
    LLVMValueRef neg = LLVMBuildFDiv(cg->bld, e, d, "");
    return cg_select(cg, LLVMRealOGE, x, cg_real(cg, 0), pos, neg);
}

static LLVMValueRef cg_softplus(Cg *cg, LLVMValueRef x)
{
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", 1, &x);
    LLVMValueRef nax = LLVMBuildFNeg(cg->bld, ax, "");
    LLVMValueRef e = cg_exp(cg, nax);
    LLVMValueRef mx[2] = {x, cg_real(cg, 0)};
    LLVMValueRef hi = cg_intrinsic(cg, "llvm.maxnum", 2, mx);
    return LLVMBuildFAdd(cg->bld, hi, cg_math_call(cg->mod, cg->bld, CG_MATH_LOG1P, e), "");
}

static LLVMValueRef cg_unary(Cg *cg, IrOp op, LLVMValueRef x)
{
    LLVMValueRef zero = cg_real(cg, 0), one = cg_real(cg, 1);
    switch (op) {
    case IR_NEG: return LLVMBuildFNeg(cg->bld, x, "");
    case IR_EXP: return cg_exp(cg, x);
    case IR_LOG:
        return cg_math_call(cg->mod, cg->bld, log_as_log1p ? CG_MATH_LOG1P : CG_MATH_LOG, x);
    case IR_SQRT: return cg_intrinsic(cg, "llvm.sqrt", 1, &x);
    case IR_ABS: return cg_intrinsic(cg, "llvm.fabs", 1, &x);
    case IR_SIN: return cg_math_call(cg->mod, cg->bld, CG_MATH_SIN, x);
    case IR_COS: return cg_math_call(cg->mod, cg->bld, CG_MATH_COS, x);
    case IR_TAN: return cg_libm(cg, "tan", x);
    case IR_TANH: return cg_math_call(cg->mod, cg->bld, CG_MATH_TANH, x);
    case IR_SIGMOID: return cg_sigmoid(cg, x);
    case IR_RELU: return cg_select(cg, LLVMRealOGT, x, zero, x, zero);
    case IR_SOFTPLUS: return cg_softplus(cg, x);
    case IR_SIGN:
        return cg_select(cg, LLVMRealOGT, x, zero, one,
                         cg_select(cg, LLVMRealOLT, x, zero, cg_real(cg, -1), zero));
    case IR_STEP: return cg_select(cg, LLVMRealOGT, x, zero, one, zero);
    case IR_FLOOR: return cg_intrinsic(cg, "llvm.floor", 1, &x);
    case IR_ATAN: return cg_libm(cg, "atan", x);
    case IR_SINH: return cg_libm(cg, "sinh", x);
    case IR_COSH: return cg_libm(cg, "cosh", x);
    case IR_ASINH: return cg_libm(cg, "asinh", x);
    case IR_ERF: return cg_math_call(cg->mod, cg->bld, CG_MATH_ERF, x);
    default: return NULL;
    }
}

/* ir_eval.c's min and max: x when x is NaN or wins the comparison (a tie
 * too), else y (so a NaN y comes through as well). */
static LLVMValueRef cg_min_max(Cg *cg, LLVMRealPredicate wins, LLVMValueRef x, LLVMValueRef y)
{
    LLVMValueRef nan = LLVMBuildFCmp(cg->bld, LLVMRealUNO, x, x, "");
    LLVMValueRef keep = LLVMBuildOr(cg->bld, nan, LLVMBuildFCmp(cg->bld, wins, x, y, ""), "");
    return LLVMBuildSelect(cg->bld, keep, x, y, "");
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
    return cg_intrinsic_f64(cg, "llvm.pow", 2, args);
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
    case IR_MIN: return cg_min_max(cg, LLVMRealOLE, x, y);
    case IR_MAX: return cg_min_max(cg, LLVMRealOGE, x, y);
    case IR_ATAN2: return cg_libm2(cg, "atan2", x, y);
    default: return NULL;
    }
}

/* One element of n from its operands' elements; n == NULL is a plain copy. */
LLVMValueRef cg_element_op(Cg *cg, const IrNode *n, LLVMValueRef *x)
{
    if (!n)
        return x[0];
    if (n->op == IR_WHERE)
        return cg_select(cg, LLVMRealUNE, x[0], cg_real(cg, 0), x[1], x[2]);
    if (n->nargs == 1)
        return cg_unary(cg, n->op, x[0]);
    return cg_binary(cg, n, x[0], x[1]);
}

/* Element k of sample b of the inlined node i, computed from its operands'
 * (which may be inlined too). */
static LLVMValueRef cg_load_inline(Cg *cg, int i, LLVMValueRef b, LLVMValueRef k)
{
    const IrNode *n = cg->plan.order[i];
    LLVMValueRef x[3];
    for (int a = 0; a < n->nargs && a < 3; a++) {
        const CgVal *v = &cg->val[cg_topo(cg, n->args[a])];
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
            const IrNode *n = cg->plan.order[v->inl - 1];
            const CgVal *sub[3];
            for (int s = 0; s < n->nargs && s < 3; s++)
                sub[s] = &cg->val[cg_topo(cg, n->args[s])];
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
void cg_emit_map(Cg *cg, const IrNode *n, const CgVal *out, int nargs, const CgVal *const *args,
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

void cg_grid_begin(Cg *cg, CgGrid *g, long bstride, long rows, long cols, const char *tag)
{
    char name[64];
    snprintf(name, sizeof name, "%s_b", tag);
    g->b = cg_loop_begin(cg, &g->lb, cg_samples(cg, bstride), name, NULL);
    snprintf(name, sizeof name, "%s_i", tag);
    g->i = cg_loop_begin(cg, &g->li, cg_i64(cg, rows), name, NULL);
    snprintf(name, sizeof name, "%s_j", tag);
    g->j = cg_loop_begin(cg, &g->lj, cg_i64(cg, cols), name, NULL);
}

void cg_grid_end(Cg *cg, CgGrid *g)
{
    cg_loop_end(cg, &g->lj, NULL);
    cg_loop_end(cg, &g->li, NULL);
    cg_loop_end(cg, &g->lb, NULL);
}

/* The per-sample 2-D loop nest shared by TRANSPOSE, OUTER and SLICE copies:
 * out[b, i*cols + j] = f(b, i, j). */
void cg_emit_grid(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    int rows = n->shape.rows, cols = n->shape.cols;
    CgGrid g;
    cg_grid_begin(cg, &g, out->bstride, rows, cols, tag);
    LLVMValueRef b = g.b, i = g.i, j = g.j, v;
    if (n->op == IR_TRANSPOSE) {
        v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, j, rows), i));
    } else if (n->op == IR_OUTER) {
        const CgVal *y = &cg->val[cg_topo(cg, n->args[1])];
        v = LLVMBuildFMul(cg->bld, cg_load(cg, x, b, i), cg_load(cg, y, b, j), "");
    } else { /* IR_SLICE */
        int src_cols = n->args[0]->shape.cols;
        LLVMValueRef row = cg_add(cg, i, cg_i64(cg, n->attr[0]));
        LLVMValueRef col = cg_add(cg, j, cg_i64(cg, n->attr[1]));
        v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, row, src_cols), col));
    }
    cg_store(cg, out, b, cg_add(cg, cg_mul(cg, i, cols), j), v);
    cg_grid_end(cg, &g);
}

/* PAD (the transpose of SLICE): zeros, then the operand's rows copied into
 * place at (attr[0], attr[1]). */
void cg_emit_pad(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    CgVal zero = {.reg = cg_real(cg, 0), .size = 1};
    const CgVal *z = &zero, *x = &cg->val[cg_topo(cg, n->args[0])];
    cg_emit_map(cg, NULL, out, 1, &z, tag);
    int cols = n->args[0]->shape.cols;
    CgGrid g;
    cg_grid_begin(cg, &g, out->bstride, n->args[0]->shape.rows, cols, tag);
    LLVMValueRef v = cg_load(cg, x, g.b, cg_add(cg, cg_mul(cg, g.i, cols), g.j));
    LLVMValueRef row = cg_add(cg, g.i, cg_i64(cg, n->attr[0]));
    LLVMValueRef col = cg_add(cg, g.j, cg_i64(cg, n->attr[1]));
    cg_store(cg, out, g.b, cg_add(cg, cg_mul(cg, row, n->shape.cols), col), v);
    cg_grid_end(cg, &g);
}

void cg_emit_sum(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    char name[64];
    CgLoop lb, lk;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, x->size), name, cg_real(cg, 0));
    LLVMValueRef next = LLVMBuildFAdd(cg->bld, lk.acc, cg_load(cg, x, b, k), "");
    cg_loop_end(cg, &lk, next);
    cg_store(cg, out, b, cg_i64(cg, 0), lk.acc);
    cg_loop_end(cg, &lb, NULL);
}

/* MAXR and ARGMAX, per sample, in ir_eval.c's order: the accumulator is the
 * index of the first largest element so far (a double), replaced by k when
 * element k is larger or NaN, unless the element held is NaN already. */
void cg_emit_argmax(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    char name[64];
    CgLoop lb, lk;
    snprintf(name, sizeof name, "%s_b", tag);
    LLVMValueRef b = cg_loop_begin(cg, &lb, cg_samples(cg, out->bstride), name, NULL);
    snprintf(name, sizeof name, "%s_k", tag);
    LLVMValueRef k = cg_loop_begin(cg, &lk, cg_i64(cg, x->size), name, cg_real(cg, 0));
    LLVMValueRef held = cg_load(cg, x, b, LLVMBuildFPToSI(cg->bld, lk.acc, cg->t_i64, ""));
    LLVMValueRef xk = cg_load(cg, x, b, k);
    LLVMValueRef take = LLVMBuildAnd(cg->bld, LLVMBuildFCmp(cg->bld, LLVMRealORD, held, held, ""),
                                     LLVMBuildFCmp(cg->bld, LLVMRealULT, held, xk, ""), "");
    LLVMValueRef next = LLVMBuildSelect(cg->bld, take, LLVMBuildSIToFP(cg->bld, k, cg->t_real, ""),
                                        lk.acc, "");
    cg_loop_end(cg, &lk, next);
    LLVMValueRef v = lk.acc;
    if (n->op == IR_MAXR)
        v = cg_load(cg, x, b, LLVMBuildFPToSI(cg->bld, lk.acc, cg->t_i64, ""));
    cg_store(cg, out, b, cg_i64(cg, 0), v);
    cg_loop_end(cg, &lb, NULL);
}

/* CONCAT and STACK: each operand copied after the previous (row-major). */
void cg_emit_join(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    int at = 0;
    for (int a = 0; a < n->nargs; a++) {
        const CgVal *x = &cg->val[cg_topo(cg, n->args[a])];
        CgVal part = *out;
        part.ptr = cg_gep(cg, out->ptr, cg_i64(cg, at), "");
        part.size = x->size;
        cg_emit_map(cg, NULL, &part, 1, &x, tag);
        at += x->size;
    }
}
