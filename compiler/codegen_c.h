/* The C back end (`nodec emit-c`): the same IR the JIT compiles, printed as
 * C99 functions with the kernel table's signatures (nd_kernels.h), and the
 * whole-file writer that puts a program's models, parameters, solvers (the
 * runtime's own sources, embedded into nodec at build time) and solve
 * directives into one standalone .c file plus its .h. The calling convention
 * of the generated code is documented in docs/emit-c.md. */
#ifndef NODEC_CODEGEN_C_H
#define NODEC_CODEGEN_C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "codegen.h"
#include "diag.h"
#include "driver.h"
#include "ir.h"

/* Scratch one generated kernel needs: work_fixed doubles whatever the batch
 * (the generated kernels loop over samples outermost, so one sample's
 * temporaries are reused by the next) and work_per_sample doubles per sample
 * (0 for every kernel this back end writes today). */
typedef struct CcWork {
    size_t work_fixed;
    size_t work_per_sample;
} CcWork;

/* Writes one kernel as an external C function named `name`: with rhs set, the
 * NdRhsFn signature and spec's outputs written into dydt (dst 0); otherwise
 * the NdKernelFn signature, outputs as CgOutput describes. One temporary per
 * DAG node (hash-consing shares subexpressions), elementwise chains fused into
 * one loop, matrix products as plain loops (cblas under -DNODEC_USE_CBLAS).
 * Raises *work to what this kernel needs. Returns 0, or -1 after reporting an
 * internal error through diag. */
int cc_emit_kernel(FILE *out, const IrModel *m, const char *name, bool rhs,
                   const CgKernelSpec *spec, CcWork *work, Diag *diag);

/* <prefix>_rhs, <prefix>_vjp and, when cc_model_has_jacobian, <prefix>_jac of m
 * (building the model's adjoint and Jacobian IR through compiler/diff when not
 * built yet), with the kernel table's layouts (nd_kernels.h); raises *work. */
bool cc_model_has_jacobian(const IrModel *m); /* ny <= 64: see codegen_c.c */
int cc_emit_model_kernels(FILE *out, IrBuilder *b, IrModel *m, const char *prefix, CcWork *work,
                          Diag *diag);

/* The kernels emit-c writes for a train directive, in this order, those its
 * keys ask for: "loss" (a scalar per sample into out0[b]), "loss_grad" (its
 * gradient: d/dy into out0 laid out like the augmented model's y, d/dp summed
 * over the batch into out1), then "final" and "final_grad" likewise. The
 * specs live in arena a; returns how many (at most 4). */
int emit_c_train_specs(Arena *a, IrBuilder *b, const SemaTrain *tr, CgKernelSpec *specs);

/* Writes a double as a C literal that reads back to the same value. */
void cc_print_double(FILE *out, double v);

/* `nodec emit-c`: writes c_path and its header (c_path with .c replaced by .h,
 * or .h appended). The program must have been checked without errors. Returns
 * 0, or 1 after reporting through c->diag. */
int emit_c_program(Compilation *c, const char *c_path);

/* The runtime's sources, embedded at build time (cmake/embed_runtime.cmake
 * writes the generated nd_embedded.c): name is the file name in runtime/. */
typedef struct CcEmbeddedFile {
    const char *name;
    const char *text;
} CcEmbeddedFile;
extern const CcEmbeddedFile cc_runtime_files[];
extern const int cc_runtime_file_count;

#endif
