/* What llvm_codegen.c (IR -> LLVM module) hands llvm_jit.c (O2, LLJIT, kernel table).
 * LLVM's types appear only as the opaque structs behind LLVMContextRef and
 * LLVMModuleRef, so this header needs no <llvm-c/...> include (STYLE.md: those stay
 * in the codegen and jit .c files and codegen's private llvm_codegen_internal.h). */
#ifndef NODEC_CODEGEN_INTERNAL_H
#define NODEC_CODEGEN_INTERNAL_H

#include <stddef.h>

#include "llvm_jit.h"

struct LLVMOpaqueContext;
struct LLVMOpaqueModule;
struct LLVMOpaqueBuilder;
struct LLVMOpaqueValue;

enum { CG_NAME_MAX = 256 };

/* The kernels of one module, in this order: the rhs ("<model>_rhs", NdRhsFn),
 * then "<model>_vjp", "<model>_jac" and "<model>_rhs_vjp" when the request asks
 * for them, then the request's extra kernels ("<model>_<name>"), all NdKernelFn. */
typedef struct CgLayout {
    int n_kernels;
    char (*names)[CG_NAME_MAX]; /* malloc'd symbol names; released by cg_layout_free */
    size_t work_fixed;          /* elements (nd_real): the most any kernel needs once per call */
    size_t work_per_sample;     /* elements per sample: the most any kernel needs */
} CgLayout;

/* Builds and verifies the (unoptimised) module for m and the kernels req asks
 * for (req may be NULL: the rhs only) in ctx; the caller owns the module and
 * releases the layout. Returns NULL (and an empty layout) after reporting an
 * internal error through diag. */
struct LLVMOpaqueModule *cg_build_module(struct LLVMOpaqueContext *ctx, const IrModel *m,
                                         const JitRequest *req, CgLayout *layout, Diag *diag);
void cg_layout_free(CgLayout *layout);

/* The measured rule (docs/codegen.md, plan.h): a matrix product whose reduction is at
 * least 16 long and that has at least 512 multiply-adds per call (m*n*k, times
 * B when one dgemm covers the whole batch) goes to OpenBLAS; the rest are
 * inline loops. Tests and benchmarks force a path: flops >= 0 makes the rule
 * "at least flops multiply-adds, any reduction length" (0: always BLAS, 1e30:
 * never); a negative value restores the measured rule. Read at codegen time. */
void cg_set_blas_min_flops(double flops);
double cg_blas_min_flops(void);
PlanBlasRule cg_blas_rule(void); /* what cg_build_module plans with (PlanOptions.blas) */

/* The inline transcendental functions (llvm_math.c): straight-line IR that
 * the loop vectoriser can widen, where a libm call would keep the loop scalar.
 * Relative error against the true value under 2e-16 (tanh) and 2.3e-16 (exp)
 * over the whole double range; NaN, infinities and signed zeros as libm. */
typedef enum CgMathFn { CG_MATH_EXP, CG_MATH_TANH } CgMathFn;

/* Emits, at bld's position, a call of which(x) on the f64 (or f32: widened
 * to double and the result rounded back) value x; the function (private,
 * always inlined, in double) is added to mod on first use. */
struct LLVMOpaqueValue *cg_math_call(struct LLVMOpaqueModule *mod, struct LLVMOpaqueBuilder *bld,
                                     CgMathFn which, struct LLVMOpaqueValue *x);

#endif
