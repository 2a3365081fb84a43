/* The compiler pipeline as one recipe (QBE main.c): read -> parse (prelude,
 * imports, the file) -> sema -> IR. The command line, the tests and the
 * benchmarks all compile through here. */
#ifndef NODEC_DRIVER_H
#define NODEC_DRIVER_H

#include <stdio.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "ir.h"
#include "sema.h"

enum { DRIVER_MAX_FILES = 64 };

typedef struct Compilation {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag diag;
    SrcFile *files[DRIVER_MAX_FILES]; /* owned: every file read, for caret lines */
    int n_files;
    Ast *programs[DRIVER_MAX_FILES];  /* prelude, imports, then the user's file */
    int n_programs;
    SemaProgram *program;             /* NULL when errors were reported */
} Compilation;

/* Compiles path (or, when text is non-NULL, that text under the name path).
 * Diagnostics go to diag_out. Always returns a Compilation (free it); check
 * c->diag.errors. When dump_ast is set, the user's AST is printed to stdout. */
Compilation *compile_file(const char *path, const char *text, FILE *diag_out, int dump_ast);
void compilation_free(Compilation *c);

/* Finds a stdlib module ("prelude", "nn") as NAME.node: next to the importing
 * file, in $NODEC_PATH (colon-separated), then in the built-in stdlib folders.
 * Returns a malloc'd path or NULL. */
char *driver_find_module(const char *name, const char *importer_path);

#endif
