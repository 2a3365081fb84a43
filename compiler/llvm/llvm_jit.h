/* Code generation: IR -> LLVM IR through the LLVM C API -> O2 -> ORC LLJIT, giving
 * the runtime its kernel table. <llvm-c/...> is included only by the code
 * generator's own files (codegen_llvm*.c, llvm_emit.c, llvm_matmul.c,
 * llvm_math.c) and llvm_jit.c. */
#ifndef NODEC_CODEGEN_H
#define NODEC_CODEGEN_H

#include <stdio.h>

#include "diag.h"
#include "ir.h"
#include "nd_kernels.h"

typedef struct JitModel JitModel;

/* A kernel beyond the rhs (signature NdKernelFn): each output writes a node's
 * values into out0 or out1 at `offset` within each sample's `stride` doubles
 * (out[b * stride + offset + k]), or, with batch_sum, the sum over the batch
 * into out[offset + k]. dst 2 is out0 + B*ny (ny the model's): a second block
 * laid out like y after a first one, as the fused rhs_vjp kernel writes. */
typedef struct CgOutput {
    IrNode *node;
    int dst;        /* 0: out0, 1: out1, 2: out0 + B*ny */
    int offset;
    int stride;
    int batch_sum;
} CgOutput;

typedef struct CgKernelSpec {
    const char *name; /* symbol suffix: "<model>_<name>" */
    int n_outputs;
    CgOutput *outputs;
    int nd; /* doubles per sample in d; 0: the largest offset + size of the DATA leaves read */
} CgKernelSpec;

/* What to compile besides the rhs. */
typedef struct JitRequest {
    int vjp;              /* fill kernels->vjp from m->adj_state / adj_param (diff_model_adjoint first) */
    int jac;              /* fill kernels->jac from m->jac */
    int n_extra;          /* further kernels, e.g. a train directive's loss and its gradient */
    const CgKernelSpec *extra;
    NdKernelFn *extra_fns; /* out: n_extra function pointers */
    int rhs_vjp;          /* fill kernels->rhs_vjp: the rhs and the vjp in one kernel that
                             computes the forward values they share once (the adjoint's
                             backward stage); needs diff_model_adjoint too. With vjp also
                             asked, the vjp is a call of rhs_vjp (one derivative kernel to
                             compile): the same numbers, dydt's cost on top */
} JitRequest;

/* Like jit_compile, with the kernels req asks for (req may be NULL: rhs only). */
JitModel *jit_compile_request(const IrModel *m, const JitRequest *req, NdKernels *kernels,
                              Diag *diag);

/* Compiles m and fills *kernels (whose pointers stay valid until jit_free).
 * Returns NULL after reporting through diag when LLVM fails. */
JitModel *jit_compile(const IrModel *m, NdKernels *kernels, Diag *diag);
void jit_free(JitModel *jit);
/* Milliseconds the last jit_compile of this model took (IR to callable code). */
double jit_compile_ms(const JitModel *jit);

/* Prints the optimised LLVM module (`nodec emit-llvm`): the rhs, and the vjp
 * and jac kernels when m has them (m->adj_state, m->jac). */
int cg_print_llvm(FILE *out, const IrModel *m, Diag *diag);

#endif
