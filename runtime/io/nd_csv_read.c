/* Reading data files: RFC 4180 CSV (a header row of column names, quoted fields
 * with "" for a quote, CRLF or LF line ends) into one NdTable of doubles. The
 * compiler reads a `data` file when it checks the program, so every mistake in
 * the file is reported as "file:line: what" before anything runs. Parameter
 * files (nd_params_save/load) are written elsewhere. */
#include "nd_csv_read.h"
#include "nd_file_read.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reader's position in the file's bytes. line is the physical line of p,
 * counted through quoted fields that hold newlines, so errors point where an
 * editor would. */
typedef struct CsvCursor {
    const char *p, *end;
    int line;
    const char *path;
    char *err;
    size_t errlen;
    int *err_line;
} CsvCursor;

/* A growable buffer for one field's text (quotes removed). */
typedef struct FieldBuf {
    char *s;
    size_t n, cap;
} FieldBuf;

/* How a field ended: followed by another field, by the end of its record, or
 * by an error already reported. */
typedef enum FieldEnd { FIELD_COMMA, FIELD_EOL, FIELD_ERROR } FieldEnd;

static void csv_error(CsvCursor *c, int line, const char *fmt, ...)
{
    int k = snprintf(c->err, c->errlen, "%s:%d: ", c->path, line);
    if (k >= 0 && (size_t)k < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    *c->err_line = line;
}

static int buf_push(FieldBuf *b, char ch)
{
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        char *s = realloc(b->s, cap);
        if (!s)
            return -1;
        b->s = s;
        b->cap = cap;
    }
    b->s[b->n++] = ch;
    b->s[b->n] = '\0';
    return 0;
}

/* Consumes a line end (LF, CRLF or a lone CR) at c->p, if there is one. */
static int eat_eol(CsvCursor *c)
{
    if (c->p < c->end && *c->p == '\r') {
        c->p++;
        if (c->p < c->end && *c->p == '\n')
            c->p++;
        c->line++;
        return 1;
    }
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
        return 1;
    }
    return 0;
}

/* A quoted field: from after the opening quote through the closing one; a
 * doubled quote inside is one quote (RFC 4180 2.7). */
static FieldEnd field_quoted(CsvCursor *c, FieldBuf *b)
{
    int start = c->line;
    for (;;) {
        if (c->p >= c->end) {
            csv_error(c, start, "unterminated quoted field (the quote opened on this line never closes)");
            return FIELD_ERROR;
        }
        char ch = *c->p;
        if (ch == '"' && c->p + 1 < c->end && c->p[1] == '"') {
            c->p += 2;
        } else if (ch == '"') {
            c->p++;
            break;
        } else if (ch == '\r' || ch == '\n') {
            eat_eol(c); /* a newline inside quotes belongs to the field */
            ch = '\n';
        } else {
            c->p++;
        }
        if (buf_push(b, ch) < 0) {
            csv_error(c, c->line, "out of memory");
            return FIELD_ERROR;
        }
    }
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return FIELD_COMMA;
    }
    if (c->p >= c->end || eat_eol(c))
        return FIELD_EOL;
    csv_error(c, c->line, "unexpected '%c' after a closing quote (a quoted field ends at its quote)", *c->p);
    return FIELD_ERROR;
}

/* One field into b (cleared first). Spaces around an unquoted field are kept
 * here and trimmed by the caller, which knows whether it wants a name or a
 * number. */
static FieldEnd csv_field(CsvCursor *c, FieldBuf *b)
{
    b->n = 0;
    if (buf_push(b, 'x') < 0) { /* make b->s a valid empty string */
        csv_error(c, c->line, "out of memory");
        return FIELD_ERROR;
    }
    b->n = 0;
    b->s[0] = '\0';
    const char *q = c->p;
    while (q < c->end && (*q == ' ' || *q == '\t'))
        q++;
    if (q < c->end && *q == '"') {
        c->p = q + 1;
        return field_quoted(c, b);
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '\r' && *c->p != '\n') {
        if (buf_push(b, *c->p++) < 0) {
            csv_error(c, c->line, "out of memory");
            return FIELD_ERROR;
        }
    }
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return FIELD_COMMA;
    }
    eat_eol(c);
    return FIELD_EOL;
}

/* True when nothing but line ends and spaces remains: a trailing blank line. */
static int only_blank_left(const CsvCursor *c)
{
    for (const char *q = c->p; q < c->end; q++)
        if (*q != '\r' && *q != '\n' && *q != ' ' && *q != '\t')
            return 0;
    return 1;
}

static int line_is_blank(const CsvCursor *c)
{
    const char *q = c->p;
    while (q < c->end && (*q == ' ' || *q == '\t'))
        q++;
    return q >= c->end || *q == '\r' || *q == '\n';
}

static char *trimmed_copy(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static int add_name(CsvCursor *c, NdTable *t, int *cap, const char *text)
{
    if (t->ncols == *cap) {
        int ncap = *cap ? 2 * *cap : 8;
        char **names = realloc(t->names, sizeof *names * (size_t)ncap);
        if (!names)
            return -1;
        t->names = names;
        *cap = ncap;
    }
    char *name = trimmed_copy(text);
    if (!name)
        return -1;
    t->names[t->ncols++] = name;
    if (!*name) {
        csv_error(c, 1, "column %d has an empty name in the header", t->ncols);
        return -2;
    }
    for (int i = 0; i < t->ncols - 1; i++)
        if (strcmp(t->names[i], name) == 0) {
            csv_error(c, 1, "duplicate column name '%s' in the header", name);
            return -2;
        }
    return 0;
}

static int read_header(CsvCursor *c, NdTable *t, FieldBuf *b)
{
    if (only_blank_left(c)) {
        csv_error(c, 1, "empty file (expected a header row of column names, then rows of numbers)");
        return -1;
    }
    int cap = 0;
    for (;;) {
        FieldEnd end = csv_field(c, b);
        if (end == FIELD_ERROR)
            return -1;
        if (memchr(b->s, '\0', b->n)) {
            csv_error(c, 1, "column %d: the name holds a NUL byte", t->ncols + 1);
            return -1;
        }
        int r = add_name(c, t, &cap, b->s);
        if (r == -1)
            csv_error(c, 1, "out of memory");
        if (r < 0)
            return -1;
        if (end == FIELD_EOL)
            return 0;
    }
}

/* The whole field, less surrounding spaces, must be a finite number. */
static int parse_number(CsvCursor *c, const NdTable *t, int col, int line, const char *text,
                        double *out)
{
    char *s = trimmed_copy(text);
    if (!s) {
        csv_error(c, line, "out of memory");
        return -1;
    }
    char *stop = NULL;
    errno = 0;
    double v = strtod(s, &stop);
    int ok = *s && stop && *stop == '\0';
    if (!ok)
        csv_error(c, line, "column '%s': %s%s%s is not a number", t->names[col], *s ? "'" : "",
                  *s ? s : "an empty field", *s ? "'" : "");
    else if (!isfinite(v))
        csv_error(c, line, "column '%s': '%s' is not a finite number", t->names[col], s);
    free(s);
    if (!ok || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int grow_rows(NdTable *t, int *cap)
{
    if (t->nrows < *cap)
        return 0;
    int ncap = *cap ? 2 * *cap : 64;
    double *v = realloc(t->values, sizeof *v * (size_t)ncap * (size_t)t->ncols);
    if (!v)
        return -1;
    t->values = v;
    *cap = ncap;
    return 0;
}

/* One data record: exactly ncols numeric fields. */
static int read_row(CsvCursor *c, NdTable *t, FieldBuf *b, int *cap)
{
    int line = c->line;
    if (grow_rows(t, cap) < 0) {
        csv_error(c, line, "out of memory");
        return -1;
    }
    double *row = t->values + (size_t)t->nrows * (size_t)t->ncols;
    int n = 0;
    for (;;) {
        FieldEnd end = csv_field(c, b);
        if (end == FIELD_ERROR)
            return -1;
        if (n < t->ncols && memchr(b->s, '\0', b->n)) { /* strtod would stop there */
            csv_error(c, line, "column '%s': the field holds a NUL byte, so it is not a number",
                      t->names[n]);
            return -1;
        }
        if (n < t->ncols && parse_number(c, t, n, line, b->s, &row[n]) < 0)
            return -1;
        n++;
        if (end == FIELD_EOL)
            break;
    }
    if (n != t->ncols) {
        csv_error(c, line, "expected %d field%s, found %d", t->ncols, t->ncols == 1 ? "" : "s", n);
        return -1;
    }
    t->nrows++;
    return 0;
}

static int read_rows(CsvCursor *c, NdTable *t, FieldBuf *b)
{
    int cap = 0;
    while (!only_blank_left(c)) {
        if (line_is_blank(c)) {
            csv_error(c, c->line, "blank line among the data rows (expected %d fields)", t->ncols);
            return -1;
        }
        if (read_row(c, t, b, &cap) < 0)
            return -1;
    }
    if (t->nrows == 0) {
        csv_error(c, 2, "no data rows after the header");
        return -1;
    }
    return 0;
}

NdTable *nd_table_read_csv(const char *path, char *err, size_t errlen, int *err_line)
{
    int dummy_line;
    char dummy_err[1];
    if (!err || errlen == 0) {
        err = dummy_err;
        errlen = sizeof dummy_err;
    }
    if (!err_line)
        err_line = &dummy_line;
    err[0] = '\0';
    *err_line = 0;
    size_t len = 0;
    char *text = nd_read_file(path, &len);
    if (!text) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    CsvCursor c = {text, text + len, 1, path, err, errlen, err_line};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        c.p += 3; /* a UTF-8 byte order mark, as spreadsheets write */
    NdTable *t = calloc(1, sizeof *t);
    FieldBuf b = {0};
    int ok = t && read_header(&c, t, &b) == 0 && read_rows(&c, t, &b) == 0;
    if (!t)
        csv_error(&c, 1, "out of memory");
    free(b.s);
    free(text);
    if (!ok) {
        nd_table_free(t);
        return NULL;
    }
    return t;
}

void nd_table_free(NdTable *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncols; i++)
        free(t->names[i]);
    free(t->names);
    free(t->values);
    free(t);
}

int nd_table_column(const NdTable *t, const char *name)
{
    if (!t || !name)
        return -1;
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->names[i], name) == 0)
            return i;
    return -1;
}
