/* Saving and loading parameters by name (see nd_data.h): one line per
 * parameter, `name v0 v1 ...` with %.17g, so a file reads back exactly and
 * survives declarations being re-ordered. */
#include "nd_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nd_params_save(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, const double *p)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# nodec parameters: name, then its values (row-major)\n");
    for (int i = 0; i < n; i++) {
        fputs(names[i], f);
        for (int k = 0; k < sizes[i]; k++)
            fprintf(f, " %.17g", p[offsets[i] + k]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return -1;
    return 0;
}

static int find_name(int n, const char *const *names, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* Parses one `name v0 v1 ...` line into p; -1 with a message on a mismatch. */
static int load_line(char *line, int lineno, const char *path, int n, const char *const *names,
                     const int *offsets, const int *sizes, double *p, int *seen, char *err,
                     size_t errlen)
{
    char *save = NULL, *name = strtok_r(line, " \t\r\n", &save);
    if (!name || name[0] == '#')
        return 0;
    int i = find_name(n, names, name);
    if (i < 0) {
        snprintf(err, errlen, "%s:%d: unknown parameter '%s'", path, lineno, name);
        return -1;
    }
    int k = 0;
    for (char *tok; (tok = strtok_r(NULL, " \t\r\n", &save)); k++) {
        char *end;
        double v = strtod(tok, &end);
        if (*end || k >= sizes[i]) {
            snprintf(err, errlen, "%s:%d: parameter '%s' has %s", path, lineno, name,
                     *end ? "a value that is not a number" : "too many values");
            return -1;
        }
        p[offsets[i] + k] = v;
    }
    if (k != sizes[i]) {
        snprintf(err, errlen, "%s:%d: parameter '%s' needs %d values, found %d", path, lineno,
                 name, sizes[i], k);
        return -1;
    }
    seen[i] = 1;
    return 0;
}

int nd_params_load(const char *path, int n, const char *const *names, const int *offsets,
                   const int *sizes, double *p, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    int *seen = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    char *line = NULL;
    size_t cap = 0;
    int rc = 0, lineno = 0;
    while (rc == 0 && getline(&line, &cap, f) > 0)
        rc = load_line(line, ++lineno, path, n, names, offsets, sizes, p, seen, err, errlen);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (!seen[i]) {
            snprintf(err, errlen, "%s: parameter '%s' is missing", path, names[i]);
            rc = -1;
        }
    }
    free(line);
    free(seen);
    fclose(f);
    return rc;
}
