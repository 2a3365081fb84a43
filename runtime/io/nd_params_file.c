/* Saving and loading parameters by name (see nd_params_file.h) for callers that know
 * each parameter's size but not its shape: a thin layer over the safetensors
 * files of nd_safetensors.c, with every parameter written as a vector. */
#include "nd_params_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "nd_safetensors.h"

/* Specs for n parameters of the given sizes: shape [size] on save, any shape of
 * that many elements on load. NULL when out of memory. */
static NdTensorSpec *flat_specs(int n, const char *const *names, const int *offsets,
                                const int *sizes, int rank)
{
    NdTensorSpec *s = calloc((size_t)(n > 0 ? n : 1), sizeof *s);
    for (int i = 0; s && i < n; i++)
        s[i] = (NdTensorSpec){.name = names[i], .offset = offsets[i], .size = sizes[i],
                              .rank = rank, .dims = {sizes[i]}};
    return s;
}

int nd_params_save(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, const nd_real *p)
{
    char err[256];
    NdTensorSpec *s = flat_specs(n, names, offsets, sizes, 1);
    static const char *const meta[] = {"format", "nodec"};
    int rc = s ? nd_safetensors_save(path, n, s, p, 1, meta, err, sizeof err) : -1;
    if (!s)
        errno = ENOMEM;
    free(s);
    return rc;
}

int nd_params_load(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, nd_real *p, char *err, size_t errlen)
{
    NdTensorSpec *s = flat_specs(n, names, offsets, sizes, -1);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = nd_safetensors_load(path, n, s, p, err, errlen);
    free(s);
    return rc;
}
