/* Diagnostics with a caret line (see diag.h); formats follow cproc and jq. */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void diag_init(Diag *d, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->out = out;
}

static void free_records(Diag *d, int from)
{
    for (int i = from; i < d->n_recs; i++)
        free(d->recs[i].msg);
    d->n_recs = from;
    if (from == 0) { /* a Diag keeps nothing between marks: no diag_free needed then */
        free(d->recs);
        d->recs = NULL;
        d->cap_recs = 0;
    }
}

void diag_free(Diag *d)
{
    free_records(d, 0);
    d->open_marks = 0;
}

/* Output built in a buffer flushed a chunk at a time: stderr is unbuffered,
 * and a character per write made a 1 MB line cost thousands of writes. A fixed
 * buffer keeps diagnostics off the heap. */
typedef struct LineBuf {
    FILE *out;
    int n;
    char text[4096];
} LineBuf;

static void line_flush(LineBuf *lb)
{
    fwrite(lb->text, 1, (size_t)lb->n, lb->out);
    lb->n = 0;
}

static void line_put(LineBuf *lb, char c)
{
    if (lb->n == (int)sizeof lb->text)
        line_flush(lb);
    lb->text[lb->n++] = c;
}

/* Control bytes and broken UTF-8 (a binary file's, NUL among them) reach the
 * terminal as \xNN, never raw. raw_run: how many bytes from s (n left) print as
 * they are: 1 for printable ASCII or a tab, a whole valid UTF-8 sequence, or 0
 * for a byte printed escaped. */
static int raw_run(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return s[0] == '\t' || (s[0] >= 0x20 && s[0] != 0x7f);
    int k = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
            : s[0] >= 0xf0 && s[0] <= 0xf4                                ? 4
                                                                           : 0;
    if (k == 0 || (size_t)k > n || (s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    for (int i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return k;
}

static void put_escaped(FILE *out, const char *s, size_t n, bool keep_newlines)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    LineBuf lb = {.out = out};
    for (size_t i = 0; i < n;) {
        int k = keep_newlines && u[i] == '\n' ? 1 : raw_run(u + i, n - i);
        for (int j = 0; j < k; j++)
            line_put(&lb, (char)u[i + j]);
        if (!k) {
            const char esc[4] = {'\\', 'x', hex[u[i] >> 4], hex[u[i] & 15]};
            for (int j = 0; j < 4; j++)
                line_put(&lb, esc[j]);
        }
        i += k ? (size_t)k : 1;
    }
    line_flush(&lb);
}

/* A long source line is shown as a window around the error, so an error on
 * a megabyte line prints a line, not the megabyte: CARET_WINDOW bytes, from
 * CARET_LEAD before the column, with "..." where bytes are left out. */
enum { CARET_WINDOW = 160, CARET_LEAD = 60 };

/* Prints the source line of loc and an underline from its first column to its
 * last (the first line only, for a range spanning lines); the underline stays
 * under its bytes when some are printed escaped. */
static void print_caret(FILE *out, SrcLoc loc)
{
    if (!loc.file || !loc.file->text || loc.line <= 0)
        return;
    const char *p = loc.file->text, *text_end = p + loc.file->len;
    for (int line = 1; line < loc.line && p < text_end; p++)
        if (*p == '\n')
            line++;
    const char *end = memchr(p, '\n', (size_t)(text_end - p));
    long len = (long)((end ? end : text_end) - p);
    long from = 0, to = len; /* the window shown: bytes from..to-1 of the line */
    if (len > CARET_WINDOW) {
        from = loc.col - 1 > CARET_LEAD ? loc.col - 1 - CARET_LEAD : 0;
        if (from + CARET_WINDOW > len)
            from = len - CARET_WINDOW;
        while (from > 0 && ((unsigned char)p[from] & 0xc0) == 0x80) /* not inside a UTF-8 sequence */
            from--;
        to = from + CARET_WINDOW;
        while (to < len && ((unsigned char)p[to] & 0xc0) == 0x80)
            to++;
    }
    const char *gap = "...";
    int digits = fprintf(out, "%5d", loc.line);
    fprintf(out, " | %s", from > 0 ? gap : "");
    put_escaped(out, p + from, (size_t)(to - from), false);
    fprintf(out, "%s\n%*s | ", to < len ? gap : "", digits, "");
    long last = loc.end_line == loc.line && loc.end_col >= loc.col ? loc.end_col : loc.col;
    if (last > to)
        last = to > loc.col ? to : loc.col;
    const unsigned char *u = (const unsigned char *)p;
    LineBuf lb = {.out = out};
    for (int k = 0; from > 0 && gap[k]; k++)
        line_put(&lb, ' ');
    for (long c = from + 1, run = 0; c <= last; c++) { /* run: raw bytes left of a UTF-8 sequence */
        int width = 1; /* terminal columns of byte c: a UTF-8 sequence is one */
        if (c - 1 < len && run > 0)
            run--, width = 0;
        else if (c - 1 < len && (run = raw_run(u + c - 1, (size_t)(len - c + 1))) > 0)
            run--;
        else if (c - 1 < len)
            width = 4; /* \xNN */
        bool tab = c - 1 < len && p[c - 1] == '\t';
        for (int k = 0; k < width; k++)
            line_put(&lb, c < loc.col ? (tab ? '\t' : ' ') : c == loc.col && k == 0 ? '^' : '~');
    }
    line_put(&lb, '\n');
    line_flush(&lb);
}

/* A message, escaped as the source lines are (into a stack buffer: printing
 * allocates nothing; a longer message is printed as it is). */
static void print_message(FILE *out, const char *fmt, va_list ap)
{
    char buf[4096];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n >= 0 && (size_t)n < sizeof buf)
        put_escaped(out, buf, (size_t)n, true);
    else
        vfprintf(out, fmt, again);
    va_end(again);
}

static void print_where(FILE *out, SrcLoc loc)
{
    if (loc.file)
        fprintf(out, "%s:%d:%d: ", loc.file->path, loc.line, loc.col);
    else
        fputs("nodec: ", out);
}

/* A diagnostic's first line up to its message, and what follows the message. */
static void print_head(FILE *out, DiagKind kind, SrcLoc loc)
{
    print_where(out, kind == DK_ERROR || kind == DK_NOTE || kind == DK_WARNING ? loc : (SrcLoc){0});
    fputs(kind == DK_NOTE ? "note: " : kind == DK_WARNING ? "warning: " : "error: ", out);
}

static void print_tail(FILE *out, DiagKind kind, SrcLoc loc)
{
    fputc('\n', out);
    if (kind == DK_ERROR || kind == DK_WARNING)
        print_caret(out, loc);
}

/* Prints and forgets the records once no mark holds them back. */
static void flush_records(Diag *d)
{
    if (d->open_marks > 0)
        return;
    for (int i = 0; i < d->n_recs; i++) {
        const DiagRecord *r = &d->recs[i];
        print_head(d->out, r->kind, r->loc);
        put_escaped(d->out, r->msg, strlen(r->msg), true);
        print_tail(d->out, r->kind, r->loc);
    }
    free_records(d, 0);
}

static char *format_message(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!msg)
        INTERNAL_ERROR("out of memory for a diagnostic");
    vsnprintf(msg, (size_t)n + 1, fmt, again);
    va_end(again);
    return msg;
}

/* Every diagnostic goes through here. Inside a mark it is recorded; with none
 * open it is printed at once without touching the heap, as it always was (the
 * unit runner's no-allocation test reads mallinfo2, whose count shifts with
 * the small-block history that earlier suites' diagnostics leave). */
static void report(Diag *d, DiagKind kind, SrcLoc loc, const char *fmt, va_list ap)
{
    if (d->open_marks == 0) {
        print_head(d->out, kind, loc);
        print_message(d->out, fmt, ap);
        print_tail(d->out, kind, loc);
        return;
    }
    if (d->n_recs == d->cap_recs) {
        int cap = d->cap_recs ? 2 * d->cap_recs : 16;
        DiagRecord *recs = realloc(d->recs, sizeof *recs * (size_t)cap);
        if (!recs)
            INTERNAL_ERROR("out of memory for a diagnostic");
        d->recs = recs;
        d->cap_recs = cap;
    }
    d->recs[d->n_recs++] = (DiagRecord){kind, loc, format_message(fmt, ap)};
}

static void reportf(Diag *d, DiagKind kind, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reportf(Diag *d, DiagKind kind, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, kind, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, DK_WARNING, loc, fmt, ap);
    va_end(ap);
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    if (++d->errors > DIAG_MAX_ERRORS) {
        d->dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    report(d, DK_ERROR, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    if (d->dropped)
        return;
    va_list ap;
    va_start(ap, fmt);
    report(d, DK_NOTE, loc, fmt, ap);
    va_end(ap);
}

/* Unlike located errors, these are never dropped: there are few of them, and
 * each says why the compilation could not start or finish. */
void diag_plain(Diag *d, const char *fmt, ...)
{
    d->errors++;
    va_list ap;
    va_start(ap, fmt);
    report(d, DK_PLAIN, (SrcLoc){0}, fmt, ap);
    va_end(ap);
}

void diag_finish(Diag *d)
{
    if (d->dropped)
        fprintf(d->out, "nodec: %d errors; stopped reporting after the first %d\n", d->errors,
                DIAG_MAX_ERRORS);
    fflush(d->out);
}

DiagMark diag_mark(Diag *d)
{
    d->open_marks++;
    return (DiagMark){d->n_recs, d->errors, d->dropped};
}

void diag_commit(Diag *d, DiagMark m)
{
    (void)m; /* its records stay, in order, after those before the mark */
    d->open_marks--;
    flush_records(d);
}

void diag_rollback(Diag *d, DiagMark m)
{
    free_records(d, m.n_recs);
    d->errors = m.errors;
    d->dropped = m.dropped;
    d->open_marks--;
}

int diag_errors_since(const Diag *d, DiagMark m)
{
    return d->errors - m.errors;
}

const char *diag_first_error(const Diag *d, DiagMark m)
{
    for (int i = m.n_recs; i < d->n_recs; i++)
        if (d->recs[i].kind != DK_NOTE)
            return d->recs[i].msg;
    return NULL;
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

/* Counted and printed like diag_plain's errors ("nodec: error: internal error
 * at ..."), the form the back ends' reports have always had. */
void diag_internal(Diag *d, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = format_message(fmt, ap);
    va_end(ap);
    d->errors++;
    reportf(d, DK_INTERNAL, (SrcLoc){0}, "internal error at %s:%d: %s", project_path(file), line,
            what);
    free(what);
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

SrcFile *srcfile_read(const char *path, char *why, size_t why_len)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, why_len, "%s", strerror(EISDIR));
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(why, why_len, "%s", strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long len = 0;
    snprintf(why, why_len, "%s", "cannot tell its size");
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        if (len > SRC_MAX_BYTES)
            snprintf(why, why_len, "it has %ld bytes, more than the limit of %ld (%ld MiB)", len,
                     SRC_MAX_BYTES, SRC_MAX_BYTES >> 20);
        else if (!(buf = malloc((size_t)len + 1)))
            snprintf(why, why_len, "out of memory for its %ld bytes", len);
        else if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
            snprintf(why, why_len, "%s", ferror(fp) ? strerror(errno) : "it changed while read");
            free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    if (!buf)
        return NULL;
    buf[len] = 0;
    SrcFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        snprintf(why, why_len, "out of memory");
        free(f);
        free(buf);
        return NULL;
    }
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
