/* Code generation: IR -> LLVM IR through the LLVM C API -> O2 -> ORC LLJIT, giving
 * the runtime its kernel table. <llvm-c/...> is included only in codegen_llvm.c and
 * jit.c. */
#ifndef NODEC_CODEGEN_H
#define NODEC_CODEGEN_H

#include <stdio.h>

#include "diag.h"
#include "ir.h"
#include "nd_kernels.h"

typedef struct JitModel JitModel;

/* Compiles m and fills *kernels (whose pointers stay valid until jit_free).
 * Returns NULL after reporting through diag when LLVM fails. */
JitModel *jit_compile(const IrModel *m, NdKernels *kernels, Diag *diag);
void jit_free(JitModel *jit);
/* Milliseconds the last jit_compile of this model took (IR to callable code). */
double jit_compile_ms(const JitModel *jit);

/* Prints the optimised LLVM module that jit_compile would run (`nodec emit-llvm`). */
int cg_print_llvm(FILE *out, const IrModel *m, Diag *diag);

#endif
