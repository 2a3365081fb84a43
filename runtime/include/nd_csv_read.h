/* Data files: RFC 4180 CSV with a header row of column names and numeric fields,
 * read into one table. Errors name the file and line ("obs.csv:5: expected 3
 * fields, found 2") so the compiler can point at them. */
#ifndef ND_CSV_READ_H
#define ND_CSV_READ_H

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

#endif
