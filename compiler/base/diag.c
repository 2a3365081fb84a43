/* Diagnostics with a caret line (see diag.h); formats follow cproc and jq. */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void diag_init(Diag *d, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->out = out;
}

/* Prints the source line of loc and an underline from its first column to its
 * last (the first line only, for a range spanning lines). */
static void print_caret(FILE *out, SrcLoc loc)
{
    if (!loc.file || !loc.file->text || loc.line <= 0)
        return;
    const char *p = loc.file->text;
    for (int line = 1; line < loc.line && *p; p++)
        if (*p == '\n')
            line++;
    const char *end = strchr(p, '\n');
    int len = end ? (int)(end - p) : (int)strlen(p);
    fprintf(out, "%5d | %.*s\n      | ", loc.line, len, p);
    int last = loc.end_line == loc.line && loc.end_col >= loc.col ? loc.end_col : loc.col;
    for (int c = 1; c < loc.col; c++)
        fputc(c - 1 < len && p[c - 1] == '\t' ? '\t' : ' ', out);
    fputc('^', out);
    for (int c = loc.col + 1; c <= last; c++)
        fputc('~', out);
    fputc('\n', out);
}

static void print_where(FILE *out, SrcLoc loc)
{
    if (loc.file)
        fprintf(out, "%s:%d:%d: ", loc.file->path, loc.line, loc.col);
    else
        fputs("nodec: ", out);
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    if (++d->errors > DIAG_MAX_ERRORS) {
        d->dropped++;
        return;
    }
    print_where(d->out, loc);
    fputs("error: ", d->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
    print_caret(d->out, loc);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    if (d->dropped)
        return;
    print_where(d->out, loc);
    fputs("note: ", d->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}

void diag_plain(Diag *d, const char *fmt, ...)
{
    d->errors++;
    fputs("nodec: error: ", d->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}

void diag_finish(Diag *d)
{
    if (d->dropped)
        fprintf(d->out, "nodec: %d errors; stopped reporting after the first %d\n", d->errors,
                DIAG_MAX_ERRORS);
    fflush(d->out);
}

/* __FILE__ is the path the build used; the message names it from the
 * project's top folder (compiler/ir/ir.c). */
static const char *project_path(const char *file)
{
    static const char *const tops[] = {"compiler/", "runtime/", "tools/"};
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        const char *top = strstr(file, tops[i]);
        if (top)
            return top;
    }
    return file;
}

_Noreturn void diag_internal_error(const char *file, int line, const char *fmt, ...)
{
    fflush(stdout);
    fprintf(stderr, "nodec: internal error at %s:%d: ", project_path(file), line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

SrcLoc loc_span(SrcLoc a, SrcLoc b)
{
    SrcLoc r = a;
    r.end_line = b.end_line;
    r.end_col = b.end_col;
    return r;
}

SrcFile *srcfile_from_string(const char *path, const char *text)
{
    SrcFile *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = strdup(path);
    f->text = strdup(text);
    f->len = (long)strlen(text);
    return f;
}

SrcFile *srcfile_read(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    long len = 0;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    if (!buf)
        return NULL;
    buf[len] = 0;
    SrcFile *f = calloc(1, sizeof *f);
    f->path = strdup(path);
    f->text = buf;
    f->len = len;
    return f;
}

void srcfile_free(SrcFile *f)
{
    if (!f)
        return;
    free((char *)f->path);
    free((char *)f->text);
    free(f);
}
