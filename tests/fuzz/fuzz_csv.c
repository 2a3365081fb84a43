/* libFuzzer target (b): the CSV reader of `data = csv(...)`
 * (runtime/io/nd_csv_read.c) on arbitrary bytes: either a table whose every
 * value is a finite-or-not double and whose column lookups work, or a
 * located message; never a crash, a leak or an unterminated message. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_file.h"
#include "nd_csv_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".csv");
    if (!path)
        return 0;
    char err[512];
    int line = 0;
    NdTable *t = nd_table_read_csv(path, err, sizeof err, &line);
    if (!t) {
        if (!memchr(err, 0, sizeof err))
            __builtin_trap(); /* the message must be a C string */
        return 0;
    }
    volatile double sum = 0;
    for (long i = 0; i < (long)t->nrows * t->ncols; i++)
        sum += t->values[i]; /* every cell readable (ASan checks the bounds) */
    for (int c = 0; c < t->ncols; c++)
        if (nd_table_column(t, t->names[c]) < 0)
            __builtin_trap(); /* a header name must find its own column */
    nd_table_free(t);
    return 0;
}
