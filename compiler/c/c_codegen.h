/* The C back end (`nodec emit-c`): the same IR the JIT compiles, printed as
 * C99 functions with the kernel table's signatures (nd_kernels.h), and the
 * whole-file writer that puts a program's models, parameters, solvers and
 * gradient drivers (the runtime's own sources, embedded into nodec at build
 * time), train gradients and solve directives into one standalone .c file
 * plus its .h. The calling convention
 * of the generated code is documented in docs/emit-c.md. */
#ifndef NODEC_CODEGEN_C_H
#define NODEC_CODEGEN_C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "diag.h"
#include "driver.h"
#include "ir.h"
#include "plan.h"

/* Scratch one generated kernel needs: work_fixed reals whatever the batch
 * (the generated kernels loop over samples outermost, so one sample's
 * temporaries are reused by the next) and work_per_sample reals per sample
 * (0 for every kernel this back end writes today). */
typedef struct CcWork {
    size_t work_fixed;
    size_t work_per_sample;
} CcWork;

/* Writes one kernel as an external C function named `name`, in nd_real (with
 * f32, for `option precision = f32`: float literals and libm's float
 * functions, so that the arithmetic stays in float): with rhs set, the
 * NdRhsFn signature and spec's outputs written into dydt (dst 0); otherwise
 * the NdKernelFn signature, outputs as PlanOutput describes. One temporary per
 * DAG node (hash-consing shares subexpressions), elementwise chains fused into
 * one loop, matrix products as plain loops (cblas under -DNODEC_USE_CBLAS).
 * Raises *work to what this kernel needs. Returns 0, or -1 after reporting an
 * internal error through diag. */
int cc_emit_kernel(FILE *out, const IrModel *m, const char *name, bool rhs, bool f32,
                   const PlanKernelSpec *spec, CcWork *work, Diag *diag);

/* <prefix>_rhs, <prefix>_vjp and, when cc_model_has_jacobian, <prefix>_jac of m
 * (whose adjoint and Jacobian IR the pipeline derived: kernel_sets_derive),
 * with the kernel table's layouts (nd_kernels.h); raises *work. a holds the
 * output descriptions. */
bool cc_model_has_jacobian(const IrModel *m); /* kernel_sets.h's size limit */
int cc_emit_model_kernels(FILE *out, Arena *a, const IrModel *m, const char *prefix, bool f32,
                          CcWork *work, Diag *diag);

/* Writes a double as a C literal that reads back to the same value; with f32,
 * cc_print_real writes it rounded to float, as a float literal (1.5f). */
void cc_print_double(FILE *out, double v);
void cc_print_real(FILE *out, double v, bool f32);

/* `nodec emit-c`: writes c_path and its header (c_path with .c replaced by .h,
 * or .h appended). The program must have been checked without errors. The
 * parameters written are as `nodec run` initialises them. Returns 0, or 1
 * after reporting through c->diag. */
int emit_c_program(Compilation *c, const char *c_path);

/* Parameter values for emit_c_program_with, usually from running the file's
 * trains (tools/run.c's run_trains): final[i] for models[i] is what
 * <model>_params writes; at_solve[k] is what the k-th solve directive solves
 * with (differing from final only for a solve before a train). */
typedef struct EmitCParams {
    double *const *final;
    double *const *at_solve;
    bool trained; /* said in the generated files' banners */
} EmitCParams;
int emit_c_program_with(Compilation *c, const char *c_path, const EmitCParams *params);

/* What emit-c cannot write (a solver it lacks, drawn initial states, ...),
 * reported before anything runs: 0, or 1 after reporting. emit_c_program
 * checks too. */
int emit_c_check(Compilation *c);

/* The runtime's sources, embedded at build time (cmake/embed_runtime.cmake
 * writes the generated nd_embedded.c): name is the file name in runtime/. */
typedef struct CcEmbeddedFile {
    const char *name;
    const char *text;
} CcEmbeddedFile;
extern const CcEmbeddedFile cc_runtime_files[];
extern const int cc_runtime_file_count;

#endif
