/* What llvm_codegen.c (IR -> LLVM module) hands llvm_jit.c (O2, LLJIT, kernel table).
 * LLVM's types appear only as the opaque structs behind LLVMContextRef and
 * LLVMModuleRef, so this header needs no <llvm-c/...> include (STYLE.md: those stay
 * in the codegen and jit .c files and codegen's private llvm_codegen_internal.h). */
#ifndef NODEC_CODEGEN_INTERNAL_H
#define NODEC_CODEGEN_INTERNAL_H

#include <stdbool.h>
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

/* LLVMGetHostCPUFeatures, read once per process (llvm_jit.c), for codegen's
 * vector width and the JIT's target machine. */
const char *cg_host_features(void);

/* The inline transcendental functions (llvm_math.c): straight-line IR that
 * the loop vectoriser can widen, where a libm call would keep the loop scalar.
 * Measured over each whole domain: within 1 ulp of glibc (tanh 2 ulp) and
 * within 1.02 ulp of the long-double truth; NaN, infinities and signed zeros
 * as libm, except that sin and cos are NaN from |x| = 2^50 on (no Payne-Hanek
 * reduction). */
typedef enum CgMathFn {
    CG_MATH_EXP,
    CG_MATH_TANH,
    CG_MATH_LOG,
    CG_MATH_LOG1P,
    CG_MATH_SIN,
    CG_MATH_COS,
    CG_MATH_ERF
} CgMathFn;

/* Tests and benchmarks: IR_LOG compiled as log1p when on (no IR op reaches
 * log1p's whole domain: softplus feeds it (0, 1] only). Read at codegen time. */
void cg_set_log_as_log1p(bool on);

/* Emits, at bld's position, a call of which(x) on the f64 (or f32: widened
 * to double and the result rounded back) value x; the function (private,
 * always inlined, in double) is added to mod on first use. */
struct LLVMOpaqueValue *cg_math_call(struct LLVMOpaqueModule *mod, struct LLVMOpaqueBuilder *bld,
                                     CgMathFn which, struct LLVMOpaqueValue *x);

#endif
