/* libFuzzer target (a): a .node source through the whole front of the
 * pipeline: lex, parse, check, lowering, kernel requests and symbolic
 * differentiation (compile() up to COMPILE_DERIVE, for the JIT and for the
 * printed adjoint system), then the printers that walk the derived IR. No
 * LLVM: code generation translates IR this target has already produced.
 * Any crash, sanitizer report, leak or timeout is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adjoint_print.h"
#include "driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs past this size only slow the search down; the size limits of the
 * front end have their own tests. */
enum { FUZZ_MAX_INPUT = 1 << 16 };

static FILE *sink(void)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    return null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0; /* an embedded NUL ends the text, as for a file read */
    CompileOptions o = {.path = "fuzz.node", .text = text, .diag_out = sink(),
                        .until = COMPILE_DERIVE, .targets = TARGET_JIT | TARGET_SYSTEM};
    Compilation *c = compile(&o);
    if (c->program) {
        kernel_sets_dump(sink(), &c->sets);
        for (int i = 0; i < c->program->n_models; i++)
            adjoint_print(sink(), c->ir, c->program->models[i]);
    }
    diag_finish(&c->diag);
    compilation_free(c);
    free(text);
    return 0;
}
