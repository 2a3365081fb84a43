/* Code generation: IR -> LLVM IR through the LLVM C API -> O2 -> ORC LLJIT, giving
 * the runtime its kernel table. <llvm-c/...> is included only by the code
 * generator's own files (llvm_codegen.c, llvm_emit.c, llvm_matmul.c,
 * llvm_math.c) and llvm_jit.c. The kernels themselves are described
 * back-end-neutrally in compiler/plan/plan.h (PlanOutput, PlanKernelSpec). */
#ifndef NODEC_CODEGEN_H
#define NODEC_CODEGEN_H

#include <stdbool.h>
#include <stdio.h>

#include "diag.h"
#include "ir.h"
#include "nd_kernels.h"
#include "plan.h" /* PlanKernelSpec: the kernels JitRequest.extra asks for */

typedef struct JitModel JitModel;

/* What to compile besides the rhs. */
typedef struct JitRequest {
    int vjp;              /* fill kernels->vjp from m->adj_state / adj_param (diff_model_adjoint first) */
    int jac;              /* fill kernels->jac from m->jac */
    int n_extra;          /* further kernels, e.g. a train directive's loss and its gradient */
    const PlanKernelSpec *extra;
    NdKernelFn *extra_fns; /* out: n_extra function pointers */
    int rhs_vjp;          /* fill kernels->rhs_vjp: the rhs and the vjp in one kernel that
                             computes the forward values they share once (the adjoint's
                             backward stage); needs diff_model_adjoint too. With vjp also
                             asked, the vjp is a call of rhs_vjp (one derivative kernel to
                             compile): the same numbers, dydt's cost on top */
    bool f32;             /* every kernel of this request in single precision: float
                             arguments, float arithmetic, sgemm/sgemv. The table's
                             pointer types stay the double ones (this compiler's
                             nd_real): an f32 runtime reads the slots with its float
                             types. Work sizes count elements either way */
    bool cache;           /* take the object code from the compile cache when this
                             module was compiled before, and file it otherwise
                             (llvm_cache.h; NODEC_CACHE_DIR, NODEC_CACHE=0) */
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
/* Whether that compile took its object code from the cache (JitRequest.cache). */
bool jit_from_cache(const JitModel *jit);
/* Of jit_compile_ms: LLVM's O2 pipeline, and its code generator (both 0 from the cache). */
double jit_optimise_ms(const JitModel *jit);
double jit_codegen_ms(const JitModel *jit);

/* Prints the optimised LLVM module (`nodec emit-llvm`): the rhs, and the vjp
 * and jac kernels when m has them (m->adj_state, m->jac), in single precision
 * when f32 (JitRequest.f32). */
int cg_print_llvm(FILE *out, const IrModel *m, bool f32, Diag *diag);

#endif
