/* Data files: RFC 4180 CSV with a header row of column names and numeric fields,
 * read into one table. Errors name the file and line ("obs.csv:5: expected 3
 * fields, found 2") so the compiler can point at them. */
#ifndef ND_DATA_H
#define ND_DATA_H

#include <stddef.h>

typedef struct NdTable {
    int nrows, ncols;
    char **names;   /* ncols column names, as in the header (quotes removed) */
    double *values; /* nrows * ncols, row-major */
} NdTable;

/* NULL on failure: err receives the message (file:line: what), *err_line the
 * 1-based line (0 when the file cannot be opened). */
NdTable *nd_table_read_csv(const char *path, char *err, size_t errlen, int *err_line);
void nd_table_free(NdTable *t);
int nd_table_column(const NdTable *t, const char *name); /* -1 when absent */

/* Parameters by name (the dotted names of nets) in a safetensors file (see
 * nd_safetensors.h, which also takes shapes and metadata): each parameter is
 * written as a vector of sizes[i] F64 values, atomically. 0, or -1 with errno. */
int nd_params_save(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, const double *p);
/* Reads a safetensors file: every name must be there with sizes[i] elements (any
 * shape), F64 or F32, and every tensor of the file must be a name; else -1 with a
 * message naming the file and the tensor in err, and p untouched. */
int nd_params_load(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, double *p, char *err, size_t errlen);

#endif
