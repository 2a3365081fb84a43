/* Writing solutions: RFC 4180 CSV files whose numbers read back bit for bit
 * (%.17g for a double, %.9g for a float: ND_REAL_DIGITS), and an aligned table for the
 * terminal. Like the rest of the runtime it never prints on its own account: a
 * failed write returns -1 with errno set and the caller reports it. */
#include "nd_csv_write.h"

#include <errno.h>
#include <string.h>

/* The table shows 10 significant digits (7 in single precision, which holds
 * no more), enough to compare a run with a reference by eye; files carry all
 * ND_REAL_DIGITS. Columns are at least this wide so that "-1.234567891e-100"
 * fits, wider when the name is longer. */
enum { ND_TABLE_DIGITS = ND_REAL_TABLE_DIGITS, ND_TABLE_MIN_WIDTH = 17 };

void nd_csv_field(FILE *out, const char *text)
{
    if (!text)
        text = "";
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, out);
        return;
    }
    /* RFC 4180 2.6-2.7: enclose in quotes, nd_real every quote inside. */
    fputc('"', out);
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

static void csv_header(FILE *f, int ncols, const char *const *names)
{
    fputc('t', f);
    for (int c = 0; c < ncols; c++) {
        fputc(',', f);
        nd_csv_field(f, names[c]);
    }
    fputc('\n', f);
}

static void csv_rows(FILE *f, int ncols, int rows, const nd_real *t, const nd_real *data)
{
    for (int r = 0; r < rows; r++) {
        fprintf(f, "%.*g", ND_REAL_DIGITS, (double)t[r]);
        for (int c = 0; c < ncols; c++)
            fprintf(f, ",%.*g", ND_REAL_DIGITS, (double)data[(size_t)r * (size_t)ncols + (size_t)c]);
        fputc('\n', f);
    }
}

/* Lines end in "\n" as usual on Unix; RFC 4180 readers accept it. A full disk
 * often shows only at fclose, when the buffer is flushed, so its result counts
 * as much as every write's. */
int nd_write_csv(const char *path, int ncols, const char *const *names, int rows,
                 const nd_real *t, const nd_real *data)
{
    if (!path || ncols < 0 || rows < 0 || (ncols > 0 && !names) || (rows > 0 && !t) ||
        (rows > 0 && ncols > 0 && !data)) {
        errno = EINVAL;
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    errno = 0;
    csv_header(f, ncols, names);
    csv_rows(f, ncols, rows, t, data);
    int write_errno = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !write_errno)
        write_errno = errno ? errno : EIO;
    if (write_errno) {
        errno = write_errno;
        return -1;
    }
    return 0;
}

static const char *table_name(const char *const *names, int c)
{
    return names && names[c] ? names[c] : "";
}

static int table_width(const char *name)
{
    int len = (int)strlen(name);
    return len > ND_TABLE_MIN_WIDTH ? len : ND_TABLE_MIN_WIDTH;
}

void nd_print_table(FILE *out, int ncols, const char *const *names, int rows, const nd_real *t,
                    const nd_real *data)
{
    fprintf(out, "%*s", table_width("t"), "t");
    for (int c = 0; c < ncols; c++)
        fprintf(out, "  %*s", table_width(table_name(names, c)), table_name(names, c));
    fputc('\n', out);
    for (int r = 0; r < rows; r++) {
        fprintf(out, "%*.*g", table_width("t"), ND_TABLE_DIGITS, t[r]);
        for (int c = 0; c < ncols; c++)
            fprintf(out, "  %*.*g", table_width(table_name(names, c)), ND_TABLE_DIGITS,
                    data[(size_t)r * (size_t)ncols + (size_t)c]);
        fputc('\n', out);
    }
}
