/* Inline exp and tanh for the JIT: libm's are opaque calls that keep every
 * loop holding one scalar, and the MLP right-hand side spent most of its time in
 * them. These are straight-line IR (no branches, no calls but llvm.fma), built
 * once per module as private always-inline functions, so after inlining O2's
 * loop vectoriser turns a map of tanh into <4 x double> code. Accuracy and the
 * derivation: docs/codegen.md ("Transcendental functions"). */
#include "llvm_jit_internal.h"

#include <llvm-c/Core.h>

#include <stdbool.h>
#include <string.h>

/* Cody–Waite reduction y = k ln2 + r, |r| <= ln2/2: ln2 split as fdlibm's
 * e_exp.c does (LN2_HI has 11 trailing zero bits, so k * LN2_HI is exact for
 * |k| < 2^11; LN2_HI + LN2_LO = ln 2 to 1e-26). SHIFT = 1.5 * 2^52: adding it
 * rounds y / ln2 to the nearest integer k, which is then the low bits of the
 * sum (no float-to-int conversion, which x86 cannot vectorise before AVX-512). */
#define M_LOG2E_ 1.4426950408889634
#define M_LN2_HI 6.93147180369123816490e-01
#define M_LN2_LO 1.90821492927058770002e-10
#define M_SHIFT 6755399441055744.0
/* expm1(r) = r + r^2 P(r), P its Taylor series to degree 13 in all: on
 * |r| <= ln2/2 the truncation is below 1.2e-17 of the value (0.05 ulp). */
enum { EXPM1_DEGREE = 13 };
/* exp(x) is +inf above 709.79 and 0 below -745.14: clamping to these keeps k
 * inside the two-step scaling's range with the same results. */
#define EXP_CLAMP_HI 710.0
#define EXP_CLAMP_LO (-746.0)
/* tanh(x) rounds to +-1 from |x| = 19.06 on; the clamp keeps exp(2|x|) finite. */
#define TANH_CLAMP 20.0

typedef struct Mb {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef bld;
    LLVMTypeRef f64, i64;
} Mb;

static LLVMValueRef mb_f(Mb *m, double v)
{
    return LLVMConstReal(m->f64, v);
}

static LLVMValueRef mb_i(Mb *m, long v)
{
    return LLVMConstInt(m->i64, (unsigned long long)v, 1);
}

static LLVMValueRef mb_add(Mb *m, LLVMValueRef a, LLVMValueRef b, const char *name)
{
    return LLVMBuildFAdd(m->bld, a, b, name);
}

static LLVMValueRef mb_sub(Mb *m, LLVMValueRef a, LLVMValueRef b, const char *name)
{
    return LLVMBuildFSub(m->bld, a, b, name);
}

static LLVMValueRef mb_mul(Mb *m, LLVMValueRef a, LLVMValueRef b, const char *name)
{
    return LLVMBuildFMul(m->bld, a, b, name);
}

/* An overloaded f64 intrinsic (llvm.fma, llvm.fmuladd, llvm.fabs, ...). */
static LLVMValueRef mb_intrinsic(Mb *m, const char *name, int nargs, LLVMValueRef *args)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m->mod, id, &m->f64, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(m->ctx, id, &m->f64, 1);
    return LLVMBuildCall2(m->bld, fty, fn, args, (unsigned)nargs, "");
}

/* a*b + c rounded once: where the exactness of the product is the point. */
static LLVMValueRef mb_fma(Mb *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = {a, b, c};
    return mb_intrinsic(m, "llvm.fma", 3, args);
}

/* a*b + c, fused where the target has FMA (polynomials: either is accurate). */
static LLVMValueRef mb_muladd(Mb *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = {a, b, c};
    return mb_intrinsic(m, "llvm.fmuladd", 3, args);
}

/* x < lo ? lo : x, then x > hi ? hi : x; a NaN compares false and stays. */
static LLVMValueRef mb_clamp(Mb *m, LLVMValueRef x, double lo, double hi)
{
    LLVMValueRef below = LLVMBuildFCmp(m->bld, LLVMRealOLT, x, mb_f(m, lo), "");
    x = LLVMBuildSelect(m->bld, below, mb_f(m, lo), x, "");
    LLVMValueRef above = LLVMBuildFCmp(m->bld, LLVMRealOGT, x, mb_f(m, hi), "");
    return LLVMBuildSelect(m->bld, above, mb_f(m, hi), x, "");
}

/* 2^k for an i64 k in [-1022, 1023]: the biased exponent put in place. */
static LLVMValueRef mb_pow2(Mb *m, LLVMValueRef k)
{
    LLVMValueRef e = LLVMBuildShl(m->bld, LLVMBuildAdd(m->bld, k, mb_i(m, 1023), ""), mb_i(m, 52), "");
    return LLVMBuildBitCast(m->bld, e, m->f64, "v_pow2");
}

/* P(r) = sum_{n=2..13} r^(n-2) / n! by Estrin's scheme: pairs c_n + c_{n+1} r,
 * combined with r^2, r^4, r^8, so the dependency chain is 5 operations deep
 * instead of Horner's 11 (the loop is latency-bound otherwise). */
static LLVMValueRef mb_expm1_poly(Mb *m, LLVMValueRef r, LLVMValueRef r2)
{
    double c[EXPM1_DEGREE + 1], fact = 1;
    for (int n = 1; n <= EXPM1_DEGREE; n++) {
        fact *= n;
        c[n] = 1 / fact;
    }
    LLVMValueRef pair[6];
    for (int i = 0; i < 6; i++) /* c_{2+2i} + c_{3+2i} r */
        pair[i] = mb_muladd(m, mb_f(m, c[3 + 2 * i]), r, mb_f(m, c[2 + 2 * i]));
    LLVMValueRef r4 = mb_mul(m, r2, r2, ""), r8 = mb_mul(m, r4, r4, "");
    LLVMValueRef q0 = mb_muladd(m, pair[1], r2, pair[0]), q1 = mb_muladd(m, pair[3], r2, pair[2]);
    LLVMValueRef q2 = mb_muladd(m, pair[5], r2, pair[4]);
    return mb_muladd(m, q2, r8, mb_muladd(m, q1, r4, q0));
}

/* The reduction of y (|y| < 2^50, not NaN): *k = round(y / ln2) as i64, *r,
 * and the return value r^2 P(r), so that expm1(r) = r + (that) with the sum
 * left to the caller (tanh keeps the two parts apart). */
static LLVMValueRef mb_reduce(Mb *m, LLVMValueRef y, LLVMValueRef *k, LLVMValueRef *r)
{
    LLVMValueRef shifted = mb_add(m, mb_mul(m, y, mb_f(m, M_LOG2E_), ""), mb_f(m, M_SHIFT), "");
    LLVMValueRef kf = mb_sub(m, shifted, mb_f(m, M_SHIFT), "v_kf");
    LLVMValueRef bits = LLVMBuildBitCast(m->bld, shifted, m->i64, "");
    LLVMValueRef shift_bits = LLVMBuildBitCast(m->bld, mb_f(m, M_SHIFT), m->i64, "");
    *k = LLVMBuildSub(m->bld, bits, shift_bits, "v_k");
    LLVMValueRef hi = mb_sub(m, y, mb_mul(m, kf, mb_f(m, M_LN2_HI), ""), "");
    *r = mb_sub(m, hi, mb_mul(m, kf, mb_f(m, M_LN2_LO), ""), "v_r");
    LLVMValueRef r2 = mb_mul(m, *r, *r, "v_r2");
    return mb_mul(m, r2, mb_expm1_poly(m, *r, r2), "v_r2p");
}

/* NaN in, NaN out: the arithmetic runs on 0 instead (a NaN must not reach the
 * integer ops, whose result would be meaningless), then the NaN is put back. */
static LLVMValueRef mb_unnan(Mb *m, LLVMValueRef x, LLVMValueRef *isnan)
{
    *isnan = LLVMBuildFCmp(m->bld, LLVMRealUNO, x, x, "v_isnan");
    return LLVMBuildSelect(m->bld, *isnan, mb_f(m, 0), x, "");
}

/* exp(x) = 2^k (1 + expm1(r)), the power of two applied in two halves
 * 2^(k - k/2) 2^(k/2) so that results near the overflow and in the subnormal
 * range come out right (each half is a normal number). */
static LLVMValueRef mb_exp(Mb *m, LLVMValueRef x)
{
    LLVMValueRef isnan, k, r;
    LLVMValueRef y = mb_clamp(m, mb_unnan(m, x, &isnan), EXP_CLAMP_LO, EXP_CLAMP_HI);
    LLVMValueRef r2p = mb_reduce(m, y, &k, &r);
    LLVMValueRef er = mb_add(m, mb_f(m, 1), mb_add(m, r, r2p, ""), "v_er");
    LLVMValueRef k1 = LLVMBuildAShr(m->bld, k, mb_i(m, 1), "");
    LLVMValueRef k2 = LLVMBuildSub(m->bld, k, k1, "");
    LLVMValueRef e = mb_mul(m, mb_mul(m, er, mb_pow2(m, k1), ""), mb_pow2(m, k2), "v_exp");
    return LLVMBuildSelect(m->bld, isnan, x, e, "");
}

/* hi + lo = a + b exactly (Knuth's TwoSum: no ordering of |a|, |b| needed). */
static LLVMValueRef mb_two_sum(Mb *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef *lo)
{
    LLVMValueRef hi = mb_add(m, a, b, "");
    LLVMValueRef bb = mb_sub(m, hi, a, "");
    LLVMValueRef ea = mb_sub(m, a, mb_sub(m, hi, bb, ""), "");
    *lo = mb_add(m, ea, mb_sub(m, b, bb, ""), "");
    return hi;
}

/* u = expm1(2a) = (2^k - 1) + 2^k r + 2^k r^2 P(r) as uh + *ul (|ul| below
 * half an ulp of uh): keeping the low part is what makes the quotient below
 * correctly rounded for small a, where libm is off by an ulp. */
static LLVMValueRef mb_expm1_2(Mb *m, LLVMValueRef y, LLVMValueRef *ul)
{
    LLVMValueRef k, r;
    LLVMValueRef r2p = mb_reduce(m, y, &k, &r);
    LLVMValueRef s = mb_pow2(m, k);
    LLVMValueRef lo;
    LLVMValueRef hi = mb_two_sum(m, mb_sub(m, s, mb_f(m, 1), ""), mb_mul(m, s, r, ""), &lo);
    lo = mb_add(m, lo, mb_mul(m, s, r2p, ""), "");
    LLVMValueRef uh = mb_add(m, hi, lo, "v_uh"); /* Fast2Sum: |hi| >= |lo| */
    *ul = mb_sub(m, lo, mb_sub(m, uh, hi, ""), "v_ul");
    return uh;
}

/* tanh(a) = u / (u + 2), u = expm1(2a), a = |x| clamped: a quotient of two
 * positive numbers, so no cancellation anywhere. t0 = uh * (1/q) is refined
 * once with the exact residual (uh + ul) - t0 (q + ql) (the fma makes t0 q
 * exact), giving under an ulp from the true value. */
static LLVMValueRef mb_tanh(Mb *m, LLVMValueRef x)
{
    LLVMValueRef isnan, ul, ql;
    LLVMValueRef a = mb_intrinsic(m, "llvm.fabs", 1, (LLVMValueRef[]){mb_unnan(m, x, &isnan)});
    a = mb_clamp(m, a, 0, TANH_CLAMP);
    LLVMValueRef uh = mb_expm1_2(m, mb_add(m, a, a, ""), &ul);
    LLVMValueRef q = mb_two_sum(m, uh, mb_f(m, 2), &ql);
    ql = mb_add(m, ql, ul, "v_ql");
    LLVMValueRef rq = LLVMBuildFDiv(m->bld, mb_f(m, 1), q, "v_rq");
    LLVMValueRef t0 = mb_mul(m, uh, rq, "v_t0");
    LLVMValueRef rem = mb_fma(m, LLVMBuildFNeg(m->bld, t0, ""), q, uh);
    rem = mb_sub(m, mb_add(m, rem, ul, ""), mb_mul(m, t0, ql, ""), "v_rem");
    LLVMValueRef t = mb_fma(m, rem, rq, t0);
    LLVMValueRef signed_t = mb_intrinsic(m, "llvm.copysign", 2, (LLVMValueRef[]){t, x});
    return LLVMBuildSelect(m->bld, isnan, x, signed_t, "");
}

static void mb_attr(Mb *m, LLVMValueRef fn, const char *attr)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(attr, strlen(attr));
    if (kind) /* readnone is spelled memory(none) from LLVM 16 on: skip what is gone */
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(m->ctx, kind, 0));
}

/* double name(double), private and always inlined, its body from build. */
static LLVMValueRef mb_define(Mb *m, const char *name, LLVMValueRef (*build)(Mb *, LLVMValueRef))
{
    LLVMTypeRef fty = LLVMFunctionType(m->f64, &m->f64, 1, 0);
    LLVMValueRef fn = LLVMAddFunction(m->mod, name, fty);
    LLVMSetLinkage(fn, LLVMPrivateLinkage);
    mb_attr(m, fn, "alwaysinline");
    mb_attr(m, fn, "nounwind");
    mb_attr(m, fn, "readnone");
    mb_attr(m, fn, "willreturn");
    LLVMValueRef x = LLVMGetParam(fn, 0);
    LLVMSetValueName2(x, "v_x", 3);
    LLVMPositionBuilderAtEnd(m->bld, LLVMAppendBasicBlockInContext(m->ctx, fn, "b_entry"));
    LLVMBuildRet(m->bld, build(m, x));
    return fn;
}

LLVMValueRef cg_math_call(LLVMModuleRef mod, LLVMBuilderRef bld, CgMathFn which, LLVMValueRef x)
{
    static const char *const names[] = {"nodec.exp", "nodec.tanh"};
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    Mb m = {ctx, mod, NULL, LLVMDoubleTypeInContext(ctx), LLVMInt64TypeInContext(ctx)};
    LLVMValueRef fn = LLVMGetNamedFunction(mod, names[which]);
    if (!fn) {
        m.bld = LLVMCreateBuilderInContext(ctx);
        fn = mb_define(&m, names[which], which == CG_MATH_EXP ? mb_exp : mb_tanh);
        LLVMDisposeBuilder(m.bld);
    }
    LLVMTypeRef fty = LLVMFunctionType(m.f64, &m.f64, 1, 0);
    /* a float x (JitRequest.f32): widened, the double function, rounded back,
     * which is correctly rounded but for double rounding's rare half-ulp */
    LLVMTypeRef t_x = LLVMTypeOf(x);
    bool narrow = t_x != m.f64;
    LLVMValueRef arg = narrow ? LLVMBuildFPExt(bld, x, m.f64, "") : x;
    LLVMValueRef v = LLVMBuildCall2(bld, fty, fn, &arg, 1, "");
    return narrow ? LLVMBuildFPTrunc(bld, v, t_x, "") : v;
}
