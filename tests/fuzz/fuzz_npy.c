/* libFuzzer target (c): the .npy reader behind `data ... = npy(...)`
 * (runtime/io/nd_npy.c) on arbitrary bytes: either an array whose count is the
 * product of its shape, with every value finite, or a message naming the file;
 * never a crash or a leak. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_file.h"
#include "nd_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".npy");
    if (!path)
        return 0;
    char err[512];
    NdNpy *a = nd_npy_read(path, err, sizeof err);
    if (!a) {
        if (strncmp(err, path, strlen(path)) != 0 && strncmp(err, "cannot open", 11) != 0)
            __builtin_trap(); /* every message names the file */
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < a->ndim; i++)
        count *= (size_t)a->shape[i];
    if (count != a->count)
        __builtin_trap();
    for (size_t i = 0; i < a->count; i++)
        if (!isfinite(a->values[i]))
            __builtin_trap();
    char shape[64];
    nd_npy_shape_text(a, shape, sizeof shape); /* truncates a long shape, never overruns */
    nd_npy_free(a);
    return 0;
}
