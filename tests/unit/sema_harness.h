/* Test helper shared by the checker's suites: one source text compiled with the
 * prelude (and nn on request) straight through parse and sema, its diagnostics
 * captured in memory. The suites keep the compilation in a static and free it
 * in their teardown. */
#ifndef NODEC_SEMA_HARNESS_H
#define NODEC_SEMA_HARNESS_H

#include <stdio.h>

#include "sema.h"

typedef struct Compiled {
    Arena *arena;
    Strtab *names;
    IrBuilder *ir;
    Diag diag;
    FILE *out;
    char *text; /* every diagnostic printed so far */
    size_t len;
    SrcFile *files[3];
    int nfiles;
    SemaProgram *prog; /* NULL when errors were reported */
} Compiled;

/* Compiles src under the file name path (relative csv paths resolve beside it). */
Compiled *harness_compile(const char *path, const char *src, int with_nn);
void harness_free(Compiled *c);

#endif
