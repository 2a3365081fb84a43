/* libFuzzer target (c): the safetensors reader behind `load`
 * (runtime/io/nd_safetensors.c) on arbitrary bytes, asked for the tensors a
 * small model has (a matrix, a vector, a scalar): either every value loaded
 * or a message with p untouched; never a crash or a leak. The same bytes go
 * through nd_safetensors_read (`nodec params`). */
#include <stdint.h>
#include <string.h>

#include "fuzz_file.h"
#include "nd_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".params");
    if (!path)
        return 0;
    static const NdTensorSpec specs[] = {
        {.name = "f.W", .offset = 0, .size = 6, .rank = 2, .dims = {2, 3}},
        {.name = "f.b", .offset = 6, .size = 2, .rank = 1, .dims = {2}},
        {.name = "k", .offset = 8, .size = 1, .rank = -1},
    };
    double p[9], before[9];
    for (int i = 0; i < 9; i++)
        p[i] = before[i] = -1.5 - i;
    char err[512];
    if (nd_safetensors_load(path, 3, specs, p, err, sizeof err) != 0 &&
        memcmp(p, before, sizeof p) != 0)
        __builtin_trap(); /* a refused file leaves the parameters untouched */
    /* the model-free reader of `nodec params`, same bytes: a file or a message */
    NdSafetensorsFile *f = nd_safetensors_read(path, err, sizeof err);
    if (f && f->n > 0 && !f->tensors[0].values)
        __builtin_trap();
    nd_safetensors_file_free(f);
    return 0;
}
