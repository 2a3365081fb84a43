/* Parameter files: parameters saved and loaded by name, for callers that know
 * each parameter's size but not its shape (a thin layer over nd_safetensors.h). */
#ifndef ND_PARAMS_FILE_H
#define ND_PARAMS_FILE_H

#include "nd_real.h"

#include <stddef.h>

/* Parameters by name (the dotted names of nets) in a safetensors file (see
 * nd_safetensors.h, which also takes shapes and metadata): each parameter is
 * written as a vector of sizes[i] F64 values, atomically. 0, or -1 with errno. */
int nd_params_save(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, const nd_real *p);
/* Reads a safetensors file: every name must be there with sizes[i] elements (any
 * shape), F64 or F32, and every tensor of the file must be a name; else -1 with a
 * message naming the file and the tensor in err, and p untouched. */
int nd_params_load(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, nd_real *p, char *err, size_t errlen);

#endif
