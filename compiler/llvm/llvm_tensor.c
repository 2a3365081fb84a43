/* The tensor ops for llvm_codegen.c (ir_ops.def; their reference semantics is
 * ir_tensor.c's ir_eval_tensor_op, which these loops equal bit for bit): a
 * RESHAPE is a view (compiler/plan) or a copy. IM2COL and COL2IM loop over each
 * kernel element (ki, kj) with the window ranges that read inside the image
 * computed here (constants: no bounds tests), copying pixels into columns
 * (after zeros where there is padding) or adding columns back onto pixels
 * (after zeros: the reference's own scatter order). The pools are gathers
 * through a constant index table, one per node, over one channel's plane:
 *   out[b, c*OP + e] = post * sum_t pre * src[b, c*SP + T[e*K + t]]
 * with T = -1 for "nothing" (a pixel read by fewer windows than the most),
 * where a zero is taken instead. AVGPOOL sums its window ki-major, then scales;
 * AVGPOOL_T is the transpose's gather, each pixel's list in the order the
 * reference's scatter adds to it (so the sums are the same sums: starting
 * from +0, adding +0 for a -1 changes nothing). MAXPOOL walks the window table
 * keeping the first largest (a NaN counts as largest) and reads u there;
 * MAXPOOL_T zeroes its output and adds v at each window's pick in window
 * order, as the reference does. SUMAXIS and BROADCAST are loops over
 * [outer, n, inner]. All trip counts are constants, so LLVM unrolls the short
 * ones and vectorises. */
#include "llvm_codegen_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cg_loop_begin with its blocks named <tag>_<what>. */
static LLVMValueRef loop_open(Cg *cg, CgLoop *l, LLVMValueRef n, const char *tag, const char *what,
                              LLVMValueRef acc_init)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%s", tag, what);
    return cg_loop_begin(cg, l, n, name, acc_init);
}

/* A gather table: OP output elements per channel, K source indices each (into
 * the source's channel plane, or -1). */
typedef struct Gather {
    int OP, SP, K;
    int *t; /* OP * K, in the arena */
} Gather;

/* The pooling windows': window o = oi*Wo + oj reads (oi*s + ki)*W + oj*s + kj,
 * ki-major (K = kh*kw; pooling has no padding). */
static Gather gather_windows(Arena *a, const IrWindow *w)
{
    Gather g = {w->Ho * w->Wo, w->H * w->W, w->kh * w->kw, NULL};
    g.t = arena_alloc(a, sizeof *g.t * (size_t)g.OP * (size_t)g.K);
    for (int oi = 0; oi < w->Ho; oi++)
        for (int oj = 0; oj < w->Wo; oj++)
            for (int ki = 0; ki < w->kh; ki++)
                for (int kj = 0; kj < w->kw; kj++)
                    g.t[(oi * w->Wo + oj) * g.K + ki * w->kw + kj] =
                        (oi * w->s + ki) * w->W + oj * w->s + kj;
    return g;
}

/* The transpose of f: for each of f's sources, the outputs that read it, in
 * f's (e, t) order, which is the order the reference's scatter adds them in;
 * padded with -1 to the longest list. */
static Gather gather_transpose(Arena *a, const Gather *f)
{
    int *count = calloc((size_t)f->SP, sizeof *count);
    int K = 0;
    for (int e = 0; e < f->OP * f->K; e++)
        if (f->t[e] >= 0 && ++count[f->t[e]] > K)
            K = count[f->t[e]];
    K = K ? K : 1;
    Gather g = {f->SP, f->OP, K, NULL};
    g.t = arena_alloc(a, sizeof *g.t * (size_t)g.OP * (size_t)K);
    for (int i = 0; i < g.OP * K; i++)
        g.t[i] = -1;
    memset(count, 0, sizeof *count * (size_t)f->SP);
    for (int e = 0; e < f->OP; e++)
        for (int t = 0; t < f->K; t++) {
            int src = f->t[e * f->K + t];
            if (src >= 0)
                g.t[src * K + count[src]++] = e;
        }
    free(count);
    return g;
}

/* The table as a private constant i32 global, named by node id. */
static LLVMValueRef table_global(Cg *cg, const IrNode *n, const Gather *g)
{
    char name[48];
    snprintf(name, sizeof name, "v_table_n%d", n->id);
    unsigned size = (unsigned)(g->OP * g->K);
    LLVMTypeRef t_arr = LLVMArrayType(cg->t_i32, size);
    LLVMValueRef gl = LLVMGetNamedGlobal(cg->mod, name);
    if (!gl) {
        LLVMValueRef *elts = arena_alloc(cg->arena, sizeof *elts * (size_t)size);
        for (unsigned k = 0; k < size; k++)
            elts[k] = cg_i32(cg, g->t[k]);
        gl = LLVMAddGlobal(cg->mod, t_arr, name);
        LLVMSetInitializer(gl, LLVMConstArray(cg->t_i32, elts, size));
        LLVMSetGlobalConstant(gl, 1);
        LLVMSetLinkage(gl, LLVMPrivateLinkage);
        LLVMSetUnnamedAddress(gl, LLVMGlobalUnnamedAddr);
        LLVMSetAlignment(gl, 16);
    }
    return gl;
}

/* Entry k (i64) of the table, as i64. */
static LLVMValueRef table_load(Cg *cg, LLVMValueRef table, LLVMValueRef k)
{
    LLVMValueRef p = LLVMBuildInBoundsGEP2(cg->bld, cg->t_i32, table, &k, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(cg->bld, cg->t_i32, p, "v_tab");
    LLVMSetAlignment(v, 4);
    return LLVMBuildSExt(cg->bld, v, cg->t_i64, "");
}

/* Element c*SP + idx of sample b of src, or 0 where idx is -1 (the load reads
 * element c*SP then, so every address is inside the operand). */
static LLVMValueRef gather_load(Cg *cg, const CgVal *src, LLVMValueRef b, LLVMValueRef base,
                                LLVMValueRef idx, double scale)
{
    LLVMValueRef none = LLVMBuildICmp(cg->bld, LLVMIntSLT, idx, cg_i64(cg, 0), "");
    LLVMValueRef at = LLVMBuildSelect(cg->bld, none, cg_i64(cg, 0), idx, "");
    LLVMValueRef v = cg_load(cg, src, b, cg_add(cg, base, at));
    if (scale != 1)
        v = LLVMBuildFMul(cg->bld, v, cg_real(cg, scale), "");
    return LLVMBuildSelect(cg->bld, none, cg_real(cg, 0), v, "");
}

/* out[b, c*OP + e] = post * sum_t pre * src[b, c*SP + T[e*K + t]], the sum from
 * +0 in t order; pre and post of 1 are left out. */
static void emit_gather(Cg *cg, const IrNode *n, const CgVal *out, const CgVal *src, int C,
                        const Gather *g, double pre, double post, const char *tag)
{
    LLVMValueRef table = table_global(cg, n, g);
    CgLoop lb, lc, le, lt;
    LLVMValueRef b = loop_open(cg, &lb, cg_samples(cg, out->bstride), tag, "b", NULL);
    LLVMValueRef c = loop_open(cg, &lc, cg_i64(cg, C), tag, "c", NULL);
    LLVMValueRef base = cg_mul(cg, c, g->SP);
    LLVMValueRef e = loop_open(cg, &le, cg_i64(cg, g->OP), tag, "e", NULL);
    LLVMValueRef t = loop_open(cg, &lt, cg_i64(cg, g->K), tag, "t", cg_real(cg, 0));
    LLVMValueRef idx = table_load(cg, table, cg_add(cg, cg_mul(cg, e, g->K), t));
    LLVMValueRef x = gather_load(cg, src, b, base, idx, pre);
    cg_loop_end(cg, &lt, LLVMBuildFAdd(cg->bld, lt.acc, x, ""));
    LLVMValueRef v = lt.acc;
    if (post != 1)
        v = LLVMBuildFMul(cg->bld, v, cg_real(cg, post), "");
    cg_store(cg, out, b, cg_add(cg, cg_mul(cg, c, g->OP), e), v);
    cg_loop_end(cg, &le, NULL);
    cg_loop_end(cg, &lc, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* The plane index (i64) of window o's first largest x of sample b, channel
 * base: ir_tensor.c's window_argmax (the index held as a double accumulator,
 * as cg_emit_argmax holds it). */
static LLVMValueRef window_pick(Cg *cg, LLVMValueRef table, const Gather *g, const CgVal *x,
                                LLVMValueRef b, LLVMValueRef base, LLVMValueRef o, const char *tag)
{
    CgLoop lt;
    LLVMValueRef first = table_load(cg, table, cg_mul(cg, o, g->K));
    LLVMValueRef init = LLVMBuildSIToFP(cg->bld, first, cg->t_real, "");
    LLVMValueRef t = loop_open(cg, &lt, cg_i64(cg, g->K), tag, "t", init);
    LLVMValueRef at = table_load(cg, table, cg_add(cg, cg_mul(cg, o, g->K), t));
    LLVMValueRef best = LLVMBuildFPToSI(cg->bld, lt.acc, cg->t_i64, "");
    LLVMValueRef held = cg_load(cg, x, b, cg_add(cg, base, best));
    LLVMValueRef xa = cg_load(cg, x, b, cg_add(cg, base, at));
    LLVMValueRef take = LLVMBuildAnd(cg->bld, LLVMBuildFCmp(cg->bld, LLVMRealORD, held, held, ""),
                                     LLVMBuildFCmp(cg->bld, LLVMRealULT, held, xa, ""), "");
    LLVMValueRef next = LLVMBuildSelect(cg->bld, take, LLVMBuildSIToFP(cg->bld, at, cg->t_real, ""),
                                        lt.acc, "");
    cg_loop_end(cg, &lt, next);
    return LLVMBuildFPToSI(cg->bld, lt.acc, cg->t_i64, "v_pick");
}

/* MAXPOOL: out[b, c*P + o] = u at window o's pick; MAXPOOL_T: zeros, then
 * out[b, c*HW + pick] += v[b, c*P + o] in window order. */
static void emit_max_pool(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    IrWindow w = ir_window_of(n);
    Gather g = gather_windows(cg->arena, &w);
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])], *u = &cg->val[cg_topo(cg, n->args[1])];
    bool back = n->op == IR_MAXPOOL_T;
    if (back) {
        CgVal zero = {.reg = cg_real(cg, 0), .size = 1};
        const CgVal *z = &zero;
        cg_emit_map(cg, NULL, out, 1, &z, tag);
    }
    LLVMValueRef table = table_global(cg, n, &g);
    CgLoop lb, lc, lo;
    LLVMValueRef b = loop_open(cg, &lb, cg_samples(cg, out->bstride), tag, "b", NULL);
    LLVMValueRef c = loop_open(cg, &lc, cg_i64(cg, w.C), tag, "c", NULL);
    LLVMValueRef base = cg_mul(cg, c, g.SP), pbase = cg_mul(cg, c, g.OP);
    LLVMValueRef o = loop_open(cg, &lo, cg_i64(cg, g.OP), tag, "o", NULL);
    if (back) /* each window's add depends on the last: no vectorising */
        lo.scalar = true;
    LLVMValueRef pick = window_pick(cg, table, &g, x, b, base, o, tag);
    if (!back) {
        cg_store(cg, out, b, cg_add(cg, pbase, o), cg_load(cg, u, b, cg_add(cg, base, pick)));
    } else {
        LLVMValueRef at = cg_add(cg, base, pick);
        LLVMValueRef sum = LLVMBuildFAdd(cg->bld, cg_load(cg, out, b, at),
                                         cg_load(cg, u, b, cg_add(cg, pbase, o)), "");
        cg_store(cg, out, b, at, sum);
    }
    cg_loop_end(cg, &lo, NULL);
    cg_loop_end(cg, &lc, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* The windows (oi or oj) whose element k of the kernel reads inside an image
 * side of n pixels: [*lo, *hi). */
static void window_range(int k, int n, int count, int s, int p, int *lo, int *hi)
{
    *lo = p - k > 0 ? (p - k + s - 1) / s : 0;
    *hi = n - 1 + p - k < 0 ? 0 : (n - 1 + p - k) / s + 1;
    *hi = *hi < count ? *hi : count;
}

/* IM2COL and COL2IM by kernel element: for each channel and each (ki, kj), in
 * that order, the windows that read inside the image (constant ranges, so no
 * bounds tests) copy their pixel into the column element (IM2COL, after zeros
 * where there is padding) or add the column element to their pixel (COL2IM,
 * after zeros: the reference's scatter; no pixel twice per (ki, kj), so the
 * inner loop vectorises, and each pixel's sum is in (ki, kj) order). */
static void emit_im2col(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    IrWindow w = ir_window_of(n);
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    bool back = n->op == IR_COL2IM;
    if (back || w.p > 0) {
        CgVal zero = {.reg = cg_real(cg, 0), .size = 1};
        const CgVal *z = &zero;
        cg_emit_map(cg, NULL, out, 1, &z, tag);
    }
    long P = (long)w.Ho * w.Wo;
    CgLoop lb, lc;
    LLVMValueRef b = loop_open(cg, &lb, cg_samples(cg, out->bstride), tag, "b", NULL);
    LLVMValueRef c = loop_open(cg, &lc, cg_i64(cg, w.C), tag, "c", NULL);
    LLVMValueRef img = cg_mul(cg, c, (long)w.H * w.W), cols = cg_mul(cg, c, w.kh * w.kw * P);
    for (int ki = 0; ki < w.kh; ki++)
        for (int kj = 0; kj < w.kw; kj++) {
            int i0, i1, j0, j1;
            window_range(ki, w.H, w.Ho, w.s, w.p, &i0, &i1);
            window_range(kj, w.W, w.Wo, w.s, w.p, &j0, &j1);
            if (i0 >= i1 || j0 >= j1)
                continue;
            CgLoop li, lj;
            LLVMValueRef oi = cg_add(cg, loop_open(cg, &li, cg_i64(cg, i1 - i0), tag, "oi", NULL),
                                     cg_i64(cg, i0));
            LLVMValueRef oj = cg_add(cg, loop_open(cg, &lj, cg_i64(cg, j1 - j0), tag, "oj", NULL),
                                     cg_i64(cg, j0));
            LLVMValueRef h = cg_add(cg, cg_mul(cg, oi, w.s), cg_i64(cg, ki - w.p));
            LLVMValueRef v = cg_add(cg, cg_mul(cg, oj, w.s), cg_i64(cg, kj - w.p));
            LLVMValueRef pix = cg_add(cg, img, cg_add(cg, cg_mul(cg, h, w.W), v));
            LLVMValueRef col = cg_add(cg, cols, cg_add(cg, cg_i64(cg, (ki * w.kw + kj) * P),
                                                       cg_add(cg, cg_mul(cg, oi, w.Wo), oj)));
            if (back)
                cg_store(cg, out, b, pix,
                         LLVMBuildFAdd(cg->bld, cg_load(cg, out, b, pix), cg_load(cg, x, b, col), ""));
            else
                cg_store(cg, out, b, col, cg_load(cg, x, b, pix));
            cg_loop_end(cg, &lj, NULL);
            cg_loop_end(cg, &li, NULL);
        }
    cg_loop_end(cg, &lc, NULL);
    cg_loop_end(cg, &lb, NULL);
}

/* SUMAXIS: out[o*inner + i] = sum_j x[(o*n + j)*inner + i], j ascending;
 * BROADCAST: out[(o*n + j)*inner + i] = x[o*inner + i]. */
static void emit_axis(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    bool sum = n->op == IR_SUMAXIS;
    int outer, len, inner;
    ir_axis_split(sum ? n->args[0]->shape : n->shape, n->attr[0], &outer, &len, &inner);
    CgLoop lb, lo, l2, l3;
    LLVMValueRef b = loop_open(cg, &lb, cg_samples(cg, out->bstride), tag, "b", NULL);
    LLVMValueRef o = loop_open(cg, &lo, cg_i64(cg, outer), tag, "o", NULL);
    if (sum) {
        LLVMValueRef i = loop_open(cg, &l2, cg_i64(cg, inner), tag, "i", NULL);
        LLVMValueRef j = loop_open(cg, &l3, cg_i64(cg, len), tag, "j", cg_real(cg, 0));
        LLVMValueRef at = cg_add(cg, cg_mul(cg, cg_add(cg, cg_mul(cg, o, len), j), inner), i);
        cg_loop_end(cg, &l3, LLVMBuildFAdd(cg->bld, l3.acc, cg_load(cg, x, b, at), ""));
        cg_store(cg, out, b, cg_add(cg, cg_mul(cg, o, inner), i), l3.acc);
    } else {
        LLVMValueRef j = loop_open(cg, &l2, cg_i64(cg, len), tag, "j", NULL);
        LLVMValueRef i = loop_open(cg, &l3, cg_i64(cg, inner), tag, "i", NULL);
        LLVMValueRef v = cg_load(cg, x, b, cg_add(cg, cg_mul(cg, o, inner), i));
        cg_store(cg, out, b, cg_add(cg, cg_mul(cg, cg_add(cg, cg_mul(cg, o, len), j), inner), i), v);
        cg_loop_end(cg, &l3, NULL);
    }
    cg_loop_end(cg, &l2, NULL);
    cg_loop_end(cg, &lo, NULL);
    cg_loop_end(cg, &lb, NULL);
}

void cg_emit_tensor(Cg *cg, const IrNode *n, const CgVal *out, const char *tag)
{
    const CgVal *x = &cg->val[cg_topo(cg, n->args[0])];
    switch (n->op) {
    case IR_RESHAPE: /* not a view (plan.c): a copy */
        cg_emit_map(cg, NULL, out, 1, &x, tag);
        return;
    case IR_IM2COL: case IR_COL2IM: emit_im2col(cg, n, out, tag); return;
    case IR_AVGPOOL: {
        IrWindow w = ir_window_of(n);
        Gather g = gather_windows(cg->arena, &w);
        emit_gather(cg, n, out, x, w.C, &g, 1, 1.0 / (w.kh * w.kw), tag);
        return;
    }
    case IR_AVGPOOL_T: {
        IrWindow w = ir_window_of(n);
        Gather f = gather_windows(cg->arena, &w), g = gather_transpose(cg->arena, &f);
        emit_gather(cg, n, out, x, w.C, &g, 1.0 / (w.kh * w.kw), 1, tag);
        return;
    }
    case IR_MAXPOOL: case IR_MAXPOOL_T: emit_max_pool(cg, n, out, tag); return;
    case IR_SUMAXIS: case IR_BROADCAST: emit_axis(cg, n, out, tag); return;
    default: return;
    }
}
