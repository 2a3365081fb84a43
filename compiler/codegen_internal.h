/* What codegen_llvm.c (IR -> LLVM module) hands jit.c (O2, LLJIT, kernel table).
 * LLVM's types appear only as the opaque structs behind LLVMContextRef and
 * LLVMModuleRef, so this header needs no <llvm-c/...> include (STYLE.md: those stay
 * in the two .c files). */
#ifndef NODEC_CODEGEN_INTERNAL_H
#define NODEC_CODEGEN_INTERNAL_H

#include <stddef.h>

#include "codegen.h"

struct LLVMOpaqueContext;
struct LLVMOpaqueModule;

enum { CG_NAME_MAX = 256 };

/* The layout of the emitted function: its symbol and its scratch needs. */
typedef struct CgLayout {
    char rhs_name[CG_NAME_MAX]; /* "<model>_rhs" */
    size_t work_fixed;          /* doubles for nodes computed once per call */
    size_t work_per_sample;     /* doubles per sample for batched nodes */
} CgLayout;

/* Builds and verifies the (unoptimised) module for m in ctx; the caller owns the
 * module. Returns NULL after reporting an internal error through diag. */
struct LLVMOpaqueModule *cg_build_module(struct LLVMOpaqueContext *ctx, const IrModel *m,
                                         CgLayout *layout, Diag *diag);

/* The measured rule (docs/codegen.md): a matrix product whose reduction is at
 * least 16 long and that has at least 512 multiply-adds per call (m*n*k, times
 * B when one dgemm covers the whole batch) goes to OpenBLAS; the rest are
 * inline loops. Tests and benchmarks force a path: flops >= 0 makes the rule
 * "at least flops multiply-adds, any reduction length" (0: always BLAS, 1e30:
 * never); a negative value restores the measured rule. Read at codegen time. */
void cg_set_blas_min_flops(double flops);
double cg_blas_min_flops(void);

#endif
