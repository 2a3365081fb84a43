/* Diagnostics: every error the compiler or the run reports to the user goes
 * through here, so they all look the same:
 *
 *   file.node:12:20: error: unknown name 'thetta'
 *      12 |   dz/dt = tanh(W1 @ thetta + b1)
 *         |                     ^~~~~~
 *   file.node:4:9: note: did you mean 'theta'?
 *
 * Errors are recorded and counting goes on (Wren, jq); after DIAG_MAX_ERRORS the
 * rest are dropped so a broken file does not bury the first, useful message. */
#ifndef NODEC_DIAG_H
#define NODEC_DIAG_H

#include <stdio.h>

enum { DIAG_MAX_ERRORS = 20 };

/* A source file held in memory for the whole compilation (for the caret line). */
typedef struct SrcFile {
    const char *path; /* as the user named it */
    const char *text; /* NUL-terminated contents */
    long len;
} SrcFile;

/* A range in a source file: 1-based line and column of the first character, and
 * of the last character (inclusive). file may be NULL for command-line input. */
typedef struct SrcLoc {
    const SrcFile *file;
    int line, col;
    int end_line, end_col;
} SrcLoc;

typedef struct Diag {
    FILE *out;    /* stderr in the tool, a memstream in tests */
    int errors;   /* errors reported (including dropped ones) */
    int dropped;  /* beyond DIAG_MAX_ERRORS */
} Diag;

void diag_init(Diag *d, FILE *out);
/* "error:" with the source line and an underline of loc. */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "note:" attached to the previous error (skipped when that error was dropped). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error with no source location (missing file on the command line, ...). */
void diag_plain(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "N errors; stopping after the first 20" when errors were dropped. */
void diag_finish(Diag *d);

/* A broken invariant inside the compiler (not the user's fault): prints
 * "nodec: internal error at compiler/ir/ir.c:123: ..." and aborts. */
_Noreturn void diag_internal_error(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define INTERNAL_ERROR(...) diag_internal_error(__FILE__, __LINE__, __VA_ARGS__)

/* Loc covering from a to b (a before b). */
SrcLoc loc_span(SrcLoc a, SrcLoc b);

/* Reads a whole file; NULL (errno set) when it cannot. The caller frees text. */
SrcFile *srcfile_read(const char *path);
SrcFile *srcfile_from_string(const char *path, const char *text);
void srcfile_free(SrcFile *f);

#endif
