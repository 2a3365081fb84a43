/* Shared by the parts of `nodec emit-c`: c_emit.c (the whole-file writer:
 * prelude, models, parameters, files), c_emit_runtime.c (the embedded
 * runtime), c_emit_train.c (train directives: kernels and the gradient
 * through the solve) and c_emit_main.c (main: the solve directives). */
#ifndef NODEC_EMIT_C_INTERNAL_H
#define NODEC_EMIT_C_INTERNAL_H

#include "c_codegen.h"

typedef struct Emit {
    Compilation *c;
    FILE *out, *hdr;
    double **params;   /* per model: what M_params writes */
    double **at_solve; /* per solve directive, in order: the parameters it solves with */
    bool trained;      /* params come from running the file's trains */
    CcWork *work;      /* per model: its kernels' scratch */
    bool f32;          /* option precision = f32: the program's nd_real is float */
} Emit;

/* Text: a C string literal (NULL as NULL), doubles as an initialiser body of
 * nd_real (float literals with f32). */
void emit_put_cstring(FILE *f, const char *s);
void emit_put_reals(FILE *f, const double *v, int n, bool f32);
/* Declarations in the header, and a kernel set's work size function. */
void emit_declare_kernel(FILE *h, const char *name, bool rhs);
void emit_work_size(Emit *e, const char *name, const CcWork *w);
int emit_model_index(const Emit *e, const IrModel *m); /* in c->program->models */
/* <prefix>_rhs, _vjp (and _jac) with their declarations. */
int emit_model_kernels(Emit *e, IrModel *m, const char *prefix, CcWork *work);

/* Writes runtime file files[index] (an embedded runtime/ file), renaming the
 * static functions it shares a name with another .c of files[0..n_files). */
int emit_c_put_runtime(FILE *f, const char *const *files, int n_files, int index, Diag *diag);

/* A directive's `solver = ...`: checked as tools/run.c checks it (the method's
 * index, or -1 after reporting), and written as a NodecSolverSpec initialiser. */
int emit_check_solver(Compilation *c, const SemaSolver *sv, SrcLoc where, const IrModel *m);
void emit_solver_spec(FILE *f, const SemaSolver *sv);
/* The NodecSolverSpec type and nodec_solver_make (into the program, once). */
void emit_solver_support(FILE *f);

/* Whether emit-c can write directive d (a solve or a train); reports why not. */
int emit_check_solve(Compilation *c, const SemaDirective *d);
int emit_check_train(Compilation *c, const SemaDirective *d);

/* Train directive d (the index-th train): its kernels, its gradient through
 * the solve (prefix <model>_train<index>), declared in the header. */
int emit_train(Emit *e, const SemaDirective *d, int index);

/* main (under #ifndef NODEC_NO_MAIN): the solve directives in order. */
int emit_main(Emit *e);

#endif
