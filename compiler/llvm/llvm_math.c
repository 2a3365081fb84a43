/* Inline exp, tanh, log, log1p, sin, cos and erf for the JIT: libm's are opaque
 * calls (and llvm.log, llvm.sin, llvm.cos lower to them) that keep every loop
 * holding one scalar; the MLP right-hand side spent most of its time in tanh.
 * These are straight-line IR (no branches, special cases as selects, no calls
 * but llvm.fma/fmuladd/fabs/copysign), built once per module as private
 * always-inline functions, so after inlining O2's loop vectoriser turns a map
 * of any of them into <4 x double> or <8 x double> code. Measured against
 * glibc over each whole domain: within 1 ulp (tanh 2), and within 1.02 ulp of
 * the long-double truth; sin and cos are NaN from |x| = 2^50 on. The
 * derivations and figures: docs/codegen.md ("Transcendental functions"). */
#include "llvm_jit_internal.h"

#include <llvm-c/Core.h>

#include <float.h>
#include <math.h>
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


/* ---- log and log1p ---- */

/* fdlibm's e_log.c and s_log1p.c, without their branches: u = 2^k (1 + f),
 * sqrt(2)/2 <= 1 + f < sqrt(2), s = f / (2 + f), and
 * log(1 + f) = f - hfsq + s (hfsq + R(s^2)), hfsq = f^2/2, R the minimax
 * polynomial Lp1 z + ... + Lp7 z^7 (|error| < 2^-58.45 on the reduced range). */
static const double LOG_LP[7] = {
    6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
    2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
    1.479819860511658591e-01};
/* The bits of sqrt(2)/2 (rounded up): subtracting them from u's bits puts k in
 * the exponent field and keeps the mantissa's 1 + f in [sqrt(2)/2, sqrt(2)). */
#define LOG_SQRT1_2_BITS 0x3fe6a09e667f3bcdL
#define LOG_EXP_MASK (-(1L << 52)) /* 0xfff0...0: sign and exponent bits */
#define TWO54 18014398509481984.0

static LLVMValueRef mb_and(Mb *m, LLVMValueRef a, long mask)
{
    return LLVMBuildAnd(m->bld, a, mb_i(m, mask), "");
}

/* sum_{i<n} c[i] x^i by Estrin's scheme (pairs c_i + c_{i+1} x, then pairs of
 * pairs with x^2, x^4, ...): the dependency chain is log2(n) multiply-adds
 * deep instead of Horner's n - 1, and these loops are latency-bound. */
static LLVMValueRef mb_poly(Mb *m, LLVMValueRef x, const LLVMValueRef *c, int n)
{
    LLVMValueRef cur[16];
    for (int i = 0; i < n; i++)
        cur[i] = c[i];
    for (LLVMValueRef xp = x; n > 1;) {
        int h = 0;
        for (int i = 0; i + 1 < n; i += 2)
            cur[h++] = mb_muladd(m, cur[i + 1], xp, cur[i]);
        if (n % 2)
            cur[h++] = cur[n - 1];
        n = h;
        if (n > 1)
            xp = mb_mul(m, xp, xp, "");
    }
    return cur[0];
}

/* mb_poly with constant coefficients. */
static LLVMValueRef mb_poly_c(Mb *m, LLVMValueRef x, const double *c, int n)
{
    LLVMValueRef v[16];
    for (int i = 0; i < n; i++)
        v[i] = mb_f(m, c[i]);
    return mb_poly(m, x, v, n);
}

/* An i64 of small magnitude (|k| < 2^51) as a double, exactly: k added to the
 * bits of 1.5 * 2^52 (whose ulp is 1) is 1.5 * 2^52 + k (x86 has no vector
 * i64 -> double conversion before AVX-512DQ). */
static LLVMValueRef mb_i2f(Mb *m, LLVMValueRef k)
{
    LLVMValueRef shift_bits = LLVMBuildBitCast(m->bld, mb_f(m, M_SHIFT), m->i64, "");
    LLVMValueRef sum_bits = LLVMBuildAdd(m->bld, k, shift_bits, "");
    LLVMValueRef sum = LLVMBuildBitCast(m->bld, sum_bits, m->f64, "");
    return mb_sub(m, sum, mb_f(m, M_SHIFT), "v_kf");
}

/* log(u) + c for a positive normal u, whose exponent is taken as k_extra more
 * than its bits say (the subnormals' scaling); c is a correction below an ulp
 * of the result (log1p's rounding of 1 + x). Other u give garbage, which the
 * callers replace. fdlibm's ordering of the final sum, which keeps the error
 * under 1 ulp: k ln2_hi - ((hfsq - (s (hfsq + R) + (k ln2_lo + c))) - f). */
static LLVMValueRef mb_log_reduced(Mb *m, LLVMValueRef u, LLVMValueRef k_extra, LLVMValueRef c)
{
    LLVMValueRef bits = LLVMBuildBitCast(m->bld, u, m->i64, "");
    LLVMValueRef tmp = LLVMBuildSub(m->bld, bits, mb_i(m, LOG_SQRT1_2_BITS), "");
    LLVMValueRef k = LLVMBuildAShr(m->bld, tmp, mb_i(m, 52), "");
    k = LLVMBuildAdd(m->bld, k, k_extra, "v_k");
    LLVMValueRef mant = LLVMBuildSub(m->bld, bits, mb_and(m, tmp, LOG_EXP_MASK), "");
    LLVMValueRef f = mb_sub(m, LLVMBuildBitCast(m->bld, mant, m->f64, ""), mb_f(m, 1), "v_f");
    LLVMValueRef kf = mb_i2f(m, k);
    LLVMValueRef hfsq = mb_mul(m, mb_mul(m, mb_f(m, 0.5), f, ""), f, "v_hfsq");
    LLVMValueRef s = LLVMBuildFDiv(m->bld, f, mb_add(m, mb_f(m, 2), f, ""), "v_s");
    LLVMValueRef z = mb_mul(m, s, s, "v_z");
    LLVMValueRef R = mb_mul(m, z, mb_poly_c(m, z, LOG_LP, 7), "v_R");
    LLVMValueRef lo = mb_add(m, mb_mul(m, kf, mb_f(m, M_LN2_LO), ""), c, "");
    lo = mb_add(m, mb_mul(m, s, mb_add(m, hfsq, R, ""), ""), lo, "");
    LLVMValueRef t = mb_sub(m, mb_sub(m, hfsq, lo, ""), f, "");
    return mb_sub(m, mb_mul(m, kf, mb_f(m, M_LN2_HI), ""), t, "v_log");
}

static LLVMValueRef mb_fcmp(Mb *m, LLVMRealPredicate p, LLVMValueRef x, double v)
{
    return LLVMBuildFCmp(m->bld, p, x, mb_f(m, v), "");
}

/* where x p v, then; else otherwise */
static LLVMValueRef mb_when(Mb *m, LLVMRealPredicate p, LLVMValueRef x, double v, LLVMValueRef then,
                            LLVMValueRef otherwise)
{
    return LLVMBuildSelect(m->bld, mb_fcmp(m, p, x, v), then, otherwise, "");
}

/* log(x): a subnormal x is scaled by 2^54 first (its exponent then 54 less);
 * log(+inf) = +inf, log(+-0) = -inf, log(x < 0) = NaN, NaN in, NaN out. */
static LLVMValueRef mb_log(Mb *m, LLVMValueRef x)
{
    LLVMValueRef sub = mb_fcmp(m, LLVMRealOLT, x, DBL_MIN);
    LLVMValueRef u = LLVMBuildSelect(m->bld, sub, mb_mul(m, x, mb_f(m, TWO54), ""), x, "");
    LLVMValueRef k_extra = LLVMBuildSelect(m->bld, sub, mb_i(m, -54), mb_i(m, 0), "");
    LLVMValueRef v = mb_log_reduced(m, u, k_extra, mb_f(m, 0));
    v = mb_when(m, LLVMRealOEQ, x, INFINITY, x, v);
    v = mb_when(m, LLVMRealOEQ, x, 0, mb_f(m, -INFINITY), v);
    v = mb_when(m, LLVMRealOLT, x, 0, mb_f(m, NAN), v);
    return mb_when(m, LLVMRealUNO, x, 0, x, v);
}

/* log1p(x) = log(u) + c/u, u = 1 + x rounded and c = (1 + x) - u its rounding
 * error, exact: x - (u - 1) for u < 2 (u - 1 is exact there), 1 - (u - x) from
 * u = 2 on (u - x is). With c the tiny x come out right too (u = 1, c = x).
 * u >= 2^-53 is never subnormal. log1p(-1) = -inf, x < -1 NaN, +-0 kept. */
static LLVMValueRef mb_log1p(Mb *m, LLVMValueRef x)
{
    LLVMValueRef u = mb_add(m, mb_f(m, 1), x, "v_u");
    LLVMValueRef c_lo = mb_sub(m, x, mb_sub(m, u, mb_f(m, 1), ""), "");
    LLVMValueRef c_hi = mb_sub(m, mb_f(m, 1), mb_sub(m, u, x, ""), "");
    LLVMValueRef c = mb_when(m, LLVMRealOGE, u, 2, c_hi, c_lo);
    c = LLVMBuildFDiv(m->bld, c, u, "v_c");
    LLVMValueRef v = mb_log_reduced(m, u, mb_i(m, 0), c);
    v = mb_when(m, LLVMRealOEQ, x, INFINITY, x, v);
    v = mb_when(m, LLVMRealOEQ, x, -1, mb_f(m, -INFINITY), v);
    v = mb_when(m, LLVMRealOLT, x, -1, mb_f(m, NAN), v);
    v = mb_when(m, LLVMRealOEQ, x, 0, x, v);
    return mb_when(m, LLVMRealUNO, x, 0, x, v);
}

/* ---- sin and cos ---- */

/* pi/2 = PIO2_1 + PIO2_2 + PIO2_3 to 5.6e-50 (2^-164): the three doubles
 * nearest the successive remainders. 2/pi as a pair too: the error of 2/pi
 * rounded would move j off the nearest integer by up to 0.04 at |x| = 2^50,
 * taking |r| past pi/4, where the polynomials lose accuracy. */
#define PIO2_1 1.5707963267948966
#define PIO2_2 6.123233995736766e-17
#define PIO2_3 (-1.4973849048591698e-33)
#define M_2_PI_HI 0.6366197723675814
#define M_2_PI_LO (-3.935735335036497e-17)
/* The reduction's error is below j * 2^-158 (j the count of pi/2), a small
 * fraction of an ulp of any |r| that a double reaches while j < 2^40 (no
 * double comes closer to a multiple of pi/2 than about 2^-61: the worst cases
 * of argument reduction in Muller's "Elementary Functions"); measured, the
 * error stays within 1 ulp up to 2^50, and j is exact below 2^51 (SHIFT).
 * From |x| = SIN_COS_LIMIT on the result is NaN: libm's Payne-Hanek reduction
 * of such arguments (a table of 2/pi's 1,200 bits) is not reproduced, and a
 * NaN says so where a wrong number would not. docs/codegen.md. */
#define SIN_COS_LIMIT 1125899906842624.0 /* 2^50 */
/* fdlibm's k_sin.c and k_cos.c minimax polynomials on [-pi/4, pi/4]
 * (|error| < 2^-58 relative): sin r = r + S1 r^3 + ... + S6 r^13,
 * cos r = 1 - r^2/2 + C1 r^4 + ... + C6 r^14. */
static const double SIN_S[6] = {-1.66666666666666324348e-01, 8.33333333332248946124e-03,
                                -1.98412698298579493134e-04, 2.75573137070700676789e-06,
                                -2.50507602534068634195e-08, 1.58969099521155010221e-10};
static const double COS_C[6] = {4.16666666666666019037e-02, -1.38888888888741095749e-03,
                                2.48015872894767294178e-05, -2.75573143513906633035e-07,
                                2.08757232129817482790e-09, -1.13596475577881948265e-11};
/* sin x rounds to x below 2^-26 (and keeps -0 this way). */
#define SIN_TINY 1.4901161193847656e-08

/* j = round(x / (pi/2)) as a double and as an i64 (*q). The 1.5 * 2^52 shift
 * rounds xq = x (2/pi)_hi, which is itself rounded (to 1/8 at 2^50): j moves
 * by one where the exact pair xq + xq_err says that x / (pi/2) rounds the
 * other way (frac = (xq - j) + xq_err, xq - j exact). */
static LLVMValueRef mb_quadrant(Mb *m, LLVMValueRef x, LLVMValueRef *q)
{
    LLVMValueRef xq = mb_mul(m, x, mb_f(m, M_2_PI_HI), "v_xq");
    LLVMValueRef xq_err = mb_fma(m, x, mb_f(m, M_2_PI_HI), LLVMBuildFNeg(m->bld, xq, ""));
    xq_err = mb_fma(m, x, mb_f(m, M_2_PI_LO), xq_err);
    LLVMValueRef shifted = mb_add(m, xq, mb_f(m, M_SHIFT), "");
    LLVMValueRef j = mb_sub(m, shifted, mb_f(m, M_SHIFT), "v_j0");
    LLVMValueRef shift_bits = LLVMBuildBitCast(m->bld, mb_f(m, M_SHIFT), m->i64, "");
    *q = LLVMBuildSub(m->bld, LLVMBuildBitCast(m->bld, shifted, m->i64, ""), shift_bits, "");
    LLVMValueRef frac = mb_add(m, mb_sub(m, xq, j, ""), xq_err, "v_frac");
    LLVMValueRef up = mb_fcmp(m, LLVMRealOGT, frac, 0.5);
    LLVMValueRef down = mb_fcmp(m, LLVMRealOLT, frac, -0.5);
    LLVMValueRef dj = LLVMBuildSelect(m->bld, down, mb_f(m, -1), mb_f(m, 0), "");
    dj = LLVMBuildSelect(m->bld, up, mb_f(m, 1), dj, "");
    LLVMValueRef dq = LLVMBuildSelect(m->bld, down, mb_i(m, -1), mb_i(m, 0), "");
    dq = LLVMBuildSelect(m->bld, up, mb_i(m, 1), dq, "");
    *q = LLVMBuildAdd(m->bld, *q, dq, "v_q");
    return mb_add(m, j, dj, "v_j");
}

/* Cody–Waite in three parts: x = j pi/2 + (r + *rr), |r| <= pi/4 (to
 * rounding), *q = j as an i64 (its low two bits are the quadrant).
 * x - j PIO2_1 is exact (an fma; the result is a multiple of x's or PIO2_1's
 * ulp below 2 in magnitude), j PIO2_2 is kept exact as a pair through fma,
 * and the sum is a double-double. */
static LLVMValueRef mb_reduce_pio2(Mb *m, LLVMValueRef x, LLVMValueRef *rr, LLVMValueRef *q)
{
    LLVMValueRef j = mb_quadrant(m, x, q);
    LLVMValueRef nj = LLVMBuildFNeg(m->bld, j, "");
    LLVMValueRef a = mb_fma(m, nj, mb_f(m, PIO2_1), x);
    LLVMValueRef t = mb_mul(m, j, mb_f(m, PIO2_2), "");
    LLVMValueRef t_err = mb_fma(m, j, mb_f(m, PIO2_2), LLVMBuildFNeg(m->bld, t, ""));
    LLVMValueRef e1;
    LLVMValueRef hi = mb_two_sum(m, a, LLVMBuildFNeg(m->bld, t, ""), &e1);
    LLVMValueRef lo = mb_fma(m, nj, mb_f(m, PIO2_3), mb_sub(m, e1, t_err, ""));
    LLVMValueRef r = mb_add(m, hi, lo, "v_r"); /* Fast2Sum: |hi| >= |lo| */
    *rr = mb_sub(m, lo, mb_sub(m, r, hi, ""), "v_rr");
    return r;
}

/* sin(r + rr) = r + (S1 r^3 + (r^2 (r^3 P - rr/2) + rr)), P = S2 + ... r^8 S6
 * (k_sin.c's ordering). */
static LLVMValueRef mb_sin_kernel(Mb *m, LLVMValueRef r, LLVMValueRef rr, LLVMValueRef z)
{
    LLVMValueRef v = mb_mul(m, z, r, "");
    LLVMValueRef p = mb_poly_c(m, z, SIN_S + 1, 5);
    LLVMValueRef w = mb_sub(m, mb_mul(m, mb_f(m, 0.5), rr, ""), mb_mul(m, v, p, ""), "");
    w = mb_sub(m, mb_sub(m, mb_mul(m, z, w, ""), rr, ""), mb_mul(m, v, mb_f(m, SIN_S[0]), ""), "");
    return mb_sub(m, r, w, "v_sin");
}

/* cos(r + rr) = (1 - qx) - ((r^2/2 - qx) - (r^4 P - r rr)), P = C1 + ... r^10 C6,
 * qx = 0 for |r| < 0.3, else |r|/4 with the low 32 bits cleared (0.28125 above
 * 0.78125): 1 - qx and r^2/2 - qx are then exact (k_cos.c). */
static LLVMValueRef mb_cos_kernel(Mb *m, LLVMValueRef r, LLVMValueRef rr, LLVMValueRef z)
{
    LLVMValueRef p = mb_poly_c(m, z, COS_C, 6);
    LLVMValueRef ar = mb_intrinsic(m, "llvm.fabs", 1, (LLVMValueRef[]){r});
    LLVMValueRef quarter_bits = LLVMBuildSub(m->bld, LLVMBuildBitCast(m->bld, ar, m->i64, ""),
                                             mb_i(m, 2L << 52), "");
    LLVMValueRef qx = LLVMBuildBitCast(m->bld, mb_and(m, quarter_bits, ~0xffffffffL), m->f64, "");
    qx = mb_when(m, LLVMRealOGT, ar, 0.78125, mb_f(m, 0.28125), qx);
    qx = mb_when(m, LLVMRealOLT, ar, 0.3, mb_f(m, 0), qx);
    LLVMValueRef hz = mb_sub(m, mb_mul(m, mb_f(m, 0.5), z, ""), qx, "");
    LLVMValueRef tail = mb_sub(m, mb_mul(m, mb_mul(m, z, z, ""), p, ""), mb_mul(m, r, rr, ""), "");
    return mb_sub(m, mb_sub(m, mb_f(m, 1), qx, ""), mb_sub(m, hz, tail, ""), "v_cos");
}

/* sin(x) for quadrant offset 0, cos(x) for 1: with n = j + offset, the value is
 * +-sin r for even n, +-cos r for odd, negated when n & 2. Both kernels run
 * (no branch); inf and NaN come out NaN through the arithmetic. */
static LLVMValueRef mb_sincos(Mb *m, LLVMValueRef x, long offset)
{
    LLVMValueRef rr, q;
    LLVMValueRef r = mb_reduce_pio2(m, x, &rr, &q);
    LLVMValueRef z = mb_mul(m, r, r, "v_z");
    LLVMValueRef s = mb_sin_kernel(m, r, rr, z), c = mb_cos_kernel(m, r, rr, z);
    LLVMValueRef n = LLVMBuildAdd(m->bld, q, mb_i(m, offset), "");
    LLVMValueRef odd = LLVMBuildICmp(m->bld, LLVMIntNE, mb_and(m, n, 1), mb_i(m, 0), "");
    LLVMValueRef v = LLVMBuildSelect(m->bld, odd, c, s, "");
    LLVMValueRef sign = LLVMBuildShl(m->bld, mb_and(m, n, 2), mb_i(m, 62), "");
    LLVMValueRef vb = LLVMBuildXor(m->bld, LLVMBuildBitCast(m->bld, v, m->i64, ""), sign, "");
    return LLVMBuildBitCast(m->bld, vb, m->f64, "v_sincos");
}

/* NaN from SIN_COS_LIMIT on (and for inf, NaN: "not below"). */
static LLVMValueRef mb_in_range(Mb *m, LLVMValueRef x, LLVMValueRef v)
{
    LLVMValueRef ax = mb_intrinsic(m, "llvm.fabs", 1, (LLVMValueRef[]){x});
    return mb_when(m, LLVMRealULT, ax, SIN_COS_LIMIT, v, mb_f(m, NAN));
}

static LLVMValueRef mb_sin(Mb *m, LLVMValueRef x)
{
    LLVMValueRef ax = mb_intrinsic(m, "llvm.fabs", 1, (LLVMValueRef[]){x});
    return mb_in_range(m, x, mb_when(m, LLVMRealOLT, ax, SIN_TINY, x, mb_sincos(m, x, 0)));
}

static LLVMValueRef mb_cos(Mb *m, LLVMValueRef x)
{
    return mb_in_range(m, x, mb_sincos(m, x, 1));
}

/* ---- erf ---- */

/* fdlibm's s_erf.c, its four pieces in |x| evaluated as one rational function
 * P(t)/Q(t) whose coefficients are selected per piece (zero-padded to
 * degrees 7 and 8), then combined by the piece's formula:
 *   |x| < 0.84375:  t = x^2,       erf = x + x P/Q
 *   |x| < 1.25:     t = |x| - 1,   erf = sign(x) (ERX + P/Q)
 *   |x| < 1/0.35:   t = 1/x^2,     erf = sign(x) (1 - exp(-x^2 - 0.5625 + P/Q) / |x|)
 *   above (|x| clamped at 6, where erf rounds to +-1): the same with other P, Q.
 * Each approximation is within 2^-57.9 of its target; the exp argument is one
 * rounded sum (fdlibm splits x^2 exactly), which costs under 0.1 ulp of erf
 * because erfc <= 0.08 there. */
enum { ERF_NP = 8, ERF_NQ = 9, ERF_PIECES = 4 };
#define ERF_ERX 8.45062911510467529297e-01
static const double ERF_BOUND[ERF_PIECES - 1] = {0.84375, 1.25, 2.857142857142857};
static const double ERF_P[ERF_PIECES][ERF_NP] = {
    {1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
     -5.77027029648944159157e-03, -2.37630166566501626084e-05},
    {-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
     3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
     -2.16637559486879084300e-03},
    {-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
     -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
     -8.12874355063065934246e+01, -9.81432934416914548592e+00},
    {-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
     -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
     -4.83519191608651397019e+02},
};
static const double ERF_Q[ERF_PIECES][ERF_NQ] = {
    {1, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
     1.32494738004321644526e-04, -3.96022827877536812320e-06},
    {1, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
     1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02},
    {1, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
     6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
     6.57024977031928170135e+00, -6.04244152148580987438e-02},
    {1, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
     3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
     -2.24409524465858183362e+01},
};
#define ERF_CLAMP 6.0

/* The piece's value of a per-piece constant: in[piece] for the first piece
 * whose bound a is below (the last piece above them all). */
static LLVMValueRef mb_erf_pick(Mb *m, LLVMValueRef *below, const LLVMValueRef *in)
{
    LLVMValueRef v = in[ERF_PIECES - 1];
    for (int p = ERF_PIECES - 2; p >= 0; p--)
        if (in[p] != v)
            v = LLVMBuildSelect(m->bld, below[p], in[p], v, "");
    return v;
}

/* P/Q with the piece's coefficients at t. */
static LLVMValueRef mb_erf_ratio(Mb *m, LLVMValueRef *below, LLVMValueRef t)
{
    LLVMValueRef pc[ERF_NP], qc[ERF_NQ], in[ERF_PIECES];
    for (int i = 0; i < ERF_NP; i++) {
        for (int p = 0; p < ERF_PIECES; p++)
            in[p] = mb_f(m, ERF_P[p][i]);
        pc[i] = mb_erf_pick(m, below, in);
    }
    for (int i = 0; i < ERF_NQ; i++) {
        for (int p = 0; p < ERF_PIECES; p++)
            in[p] = mb_f(m, ERF_Q[p][i]);
        qc[i] = mb_erf_pick(m, below, in);
    }
    return LLVMBuildFDiv(m->bld, mb_poly(m, t, pc, ERF_NP), mb_poly(m, t, qc, ERF_NQ), "v_pq");
}

static LLVMValueRef mb_erf(Mb *m, LLVMValueRef x)
{
    LLVMValueRef a = mb_intrinsic(m, "llvm.fabs", 1, (LLVMValueRef[]){x});
    a = mb_clamp(m, a, 0, ERF_CLAMP); /* NaN stays NaN */
    LLVMValueRef below[ERF_PIECES - 1];
    for (int p = 0; p < ERF_PIECES - 1; p++)
        below[p] = mb_fcmp(m, LLVMRealOLT, a, ERF_BOUND[p]);
    LLVMValueRef a2 = mb_mul(m, a, a, "v_a2");
    LLVMValueRef t_in[ERF_PIECES] = {a2, mb_sub(m, a, mb_f(m, 1), ""), NULL, NULL};
    t_in[2] = t_in[3] = LLVMBuildFDiv(m->bld, mb_f(m, 1), a2, "");
    LLVMValueRef y = mb_erf_ratio(m, below, mb_erf_pick(m, below, t_in));
    LLVMValueRef near0 = mb_fma(m, x, y, x);
    LLVMValueRef mid = mb_add(m, mb_f(m, ERF_ERX), y, "");
    LLVMValueRef na = LLVMBuildFNeg(m->bld, a, "");
    LLVMValueRef arg = mb_add(m, mb_fma(m, na, a, mb_f(m, -0.5625)), y, "v_arg");
    LLVMValueRef erfc = LLVMBuildFDiv(m->bld, mb_exp(m, arg), a, "v_erfc");
    LLVMValueRef far = mb_sub(m, mb_f(m, 1), erfc, "");
    LLVMValueRef v = LLVMBuildSelect(m->bld, below[1], mid, far, "");
    v = mb_intrinsic(m, "llvm.copysign", 2, (LLVMValueRef[]){v, x});
    return LLVMBuildSelect(m->bld, below[0], near0, v, "v_erf");
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
    static const struct {
        const char *name;
        LLVMValueRef (*build)(Mb *, LLVMValueRef);
    } fns[] = {
        [CG_MATH_EXP] = {"nodec.exp", mb_exp},     [CG_MATH_TANH] = {"nodec.tanh", mb_tanh},
        [CG_MATH_LOG] = {"nodec.log", mb_log},     [CG_MATH_LOG1P] = {"nodec.log1p", mb_log1p},
        [CG_MATH_SIN] = {"nodec.sin", mb_sin},     [CG_MATH_COS] = {"nodec.cos", mb_cos},
        [CG_MATH_ERF] = {"nodec.erf", mb_erf},
    };
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    Mb m = {ctx, mod, NULL, LLVMDoubleTypeInContext(ctx), LLVMInt64TypeInContext(ctx)};
    LLVMValueRef fn = LLVMGetNamedFunction(mod, fns[which].name);
    if (!fn) {
        m.bld = LLVMCreateBuilderInContext(ctx);
        fn = mb_define(&m, fns[which].name, fns[which].build);
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
