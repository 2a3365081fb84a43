/* The compiler pipeline as one recipe (QBE main.c): read -> parse (prelude,
 * imports, the file) -> check (sema, lowering to IR) -> kernel requests ->
 * differentiation -> the JIT back end. The command line, the tests and the
 * benchmarks all compile through here; the C back end (emit-c) translates the
 * kernel sets this pipeline derived. */
#ifndef NODEC_DRIVER_H
#define NODEC_DRIVER_H

#include <stdio.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "ir.h"
#include "kernel_sets.h"
#include "llvm_jit.h"
#include "sema.h"

/* Files one compilation reads (the prelude, the user's file, its imports): a
 * fixed table, so an import cycle through many files cannot grow without bound. */
enum { DRIVER_MAX_FILES = 64 };

/* How far compile() takes a file. */
typedef enum CompileStage {
    COMPILE_CHECK,   /* parse and check: `nodec check`, --dump=ast|ir, emit-llvm */
    COMPILE_DERIVE,  /* + kernel requests and their derivatives as IR: adjoint, emit-c */
    COMPILE_BACKEND, /* + the JIT for every TARGET_JIT kernel set: run, emit-c's trains */
} CompileStage;

typedef struct CompileOptions {
    const char *path;
    const char *text;   /* non-NULL: compile this text under the name path */
    FILE *diag_out;     /* where diagnostics go */
    CompileStage until;
    int targets;        /* TARGET_JIT | TARGET_C | TARGET_SYSTEM (kernel_sets.h) */
    bool dump_ast;      /* print the user's AST to stdout after parsing */
    bool dump_grad;     /* print every kernel set's derived IR to stdout (--dump=grad) */
    int precision;      /* 32 or 64: in place of the file's `option precision` (--precision);
                           0: the file's */
    bool jit_cache;     /* the JIT takes and files object code in the compile cache
                           (JitRequest.cache): nodec run and emit-c, unless --no-cache */
} CompileOptions;

/* The JIT's translation of one kernel set (sets[i] <-> compiled[i]). */
typedef struct CompiledSet {
    JitModel *jit;                  /* owned; NULL for a set the JIT does not translate */
    NdKernels kernels;
    NdKernelFn loss[TRAIN_K_COUNT]; /* a train set's loss kernels by slot */
    NdKernelFn metrics[SEMA_MAX_METRICS]; /* an evaluate's metric kernels */
    NdEvent *events;                /* owned: the model's events, kernels.events points here */
    NdKernelFn loss_d[TRAIN_KD_COUNT]; /* a train's gradients w.r.t. its encoder's columns */
    NdKernelFn enc[ENC_K_COUNT];    /* an encoder set's jump, jump_vjp and mask */
} CompiledSet;

typedef struct Compilation {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag diag;
    SrcFile *files[DRIVER_MAX_FILES]; /* owned: every file read, for caret lines */
    int n_files;
    bool files_full;                  /* "too many files" was reported (once) */
    Ast *programs[DRIVER_MAX_FILES];  /* prelude, imports, then the user's file */
    int n_programs;
    SemaProgram *program;             /* NULL when errors were reported */
    KernelSets sets;                  /* from COMPILE_DERIVE on */
    CompiledSet *compiled;            /* from COMPILE_BACKEND on: one per set */
    /* the names the stdlib modules declare, read on the first unknown name
     * (driver_module_of), for "add `import ...`" */
    const char **stdlib_names, **stdlib_modules;
    int n_stdlib_names;
    bool stdlib_read;
    /* where the time went (--stats): parse, check, plan and derive; the JIT of
     * every set, n_jit modules of which n_cached came from the compile cache */
    double front_ms, jit_ms;
    int n_jit, n_cached;
} Compilation;

/* Runs the pipeline up to o->until. Always returns a Compilation (free it);
 * c->program is NULL when any stage reported an error. */
Compilation *compile(const CompileOptions *o);
/* compile() up to COMPILE_CHECK: path, or text under the name path when text
 * is non-NULL; dump_ast prints the user's AST to stdout. */
Compilation *compile_file(const char *path, const char *text, FILE *diag_out, int dump_ast);
void compilation_free(Compilation *c);

/* The JIT's kernels for the solves of model m, or for train directive d;
 * NULL when the plan made no set for it. */
const CompiledSet *compilation_model_kernels(const Compilation *c, const IrModel *m);
const CompiledSet *compilation_train_kernels(const Compilation *c, const SemaDirective *d);
/* The JIT's kernels of the encoder of train or evaluate d (NULL: it has none). */
const CompiledSet *compilation_encoder_kernels(const Compilation *c, const SemaDirective *d);

/* compile()'s last stage (driver_jit.c): every TARGET_JIT set through the JIT,
 * sets compiled side by side on the machine's cores (NODEC_THREADS caps them),
 * their kernels handed out and their diagnostics printed in set order. */
bool driver_jit_sets(Compilation *c, bool cache);

/* Finds a stdlib module ("prelude", "nn") as NAME.node: next to the importing
 * file, in $NODEC_PATH (colon-separated), then in the built-in stdlib folders.
 * Returns a malloc'd path or NULL. */
char *driver_find_module(const char *name, const char *importer_path);

#endif
