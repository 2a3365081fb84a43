/* Semantic analysis: names, imports, net templates, fn inlining, shapes, and the
 * directives, turning the parsed programs into one IrModel per model (built
 * straight into the hash-consed IR) and a list of checked directives. Every
 * error is reported through diag with its location; nothing downstream runs
 * when any was reported. */
#ifndef NODEC_SEMA_H
#define NODEC_SEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "ast.h"
#include "ir.h"

/* `key = number` inside a named-argument call such as rk4(h = 0.25). */
typedef struct SemaArg {
    const char *key;
    SrcLoc loc;       /* of the value */
    double value;
} SemaArg;

/* A solver, optimizer ... given as `name` or `name(key = value, ...)`. */
typedef struct SemaCall {
    const char *name; /* interned; NULL when the directive did not give one */
    SrcLoc loc;       /* of the name */
    int nargs;
    SemaArg *args;
} SemaCall;

typedef struct SemaSolve {
    IrModel *model;
    int nt;
    double *t;        /* output times; t[0] is t0; strictly monotone, at least 2 */
    SrcLoc t_loc;
    IrNode **init;    /* per state of model: override from `init = {...}`, or NULL */
    SemaCall solver;
    const char *output; /* CSV path, or NULL for a table on stdout */
    SrcLoc output_loc;
} SemaSolve;

typedef enum SemaDirKind { SEMA_SOLVE, SEMA_TRAIN, SEMA_DATA } SemaDirKind;

typedef struct SemaDirective {
    SemaDirKind kind;
    SrcLoc loc;       /* of the keyword through the target name */
    const Ast *ast;   /* the directive as written (train and data: checked by later passes) */
    SemaSolve solve;  /* SEMA_SOLVE */
} SemaDirective;

typedef struct SemaProgram {
    IrModel **models;
    int n_models;
    SemaDirective *dirs;
    int n_dirs;
    bool has_seed;
    uint64_t seed;    /* option seed */
} SemaProgram;

typedef struct SemaInput {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag *diag;
    /* Programs in the order they are read: the prelude, imported modules (already
     * parsed by the driver), then the user's file. Only the last one's directives
     * run; declarations of all are visible. */
    Ast **programs;
    int n_programs;
} SemaInput;

/* NULL only when an error was reported (diag->errors > 0). */
SemaProgram *sema_check(const SemaInput *in);

IrModel *sema_find_model(const SemaProgram *p, const char *name);

/* The CSV column names of a model's state elements ("x", "y[0]", "W[0,1]"),
 * ny of them, arena-allocated. */
const char **sema_state_columns(Arena *arena, const IrModel *m);

#endif
