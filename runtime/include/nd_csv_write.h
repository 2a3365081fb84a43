/* Writing results: RFC 4180 CSV with numbers that read back exactly (%.17g),
 * and a readable table for the terminal. Column names come from the caller
 * (the compiler knows the states: "x", "y[0]", "W[0,1]"). */
#ifndef ND_CSV_WRITE_H
#define ND_CSV_WRITE_H

#include "nd_real.h"

#include <stdio.h>

/* rows x (1 + ncols) values: the first column is t. data[r * ncols + c].
 * Returns 0, or -1 with errno set when the file cannot be written. */
int nd_write_csv(const char *path, int ncols, const char *const *names, int rows,
                 const nd_real *t, const nd_real *data);
void nd_print_table(FILE *out, int ncols, const char *const *names, int rows, const nd_real *t,
                    const nd_real *data);
/* Writes one CSV field, quoting it when it holds a comma, quote or newline. */
void nd_csv_field(FILE *out, const char *text);

#endif
