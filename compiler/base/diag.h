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

typedef enum DiagKind {
    DK_ERROR,    /* at a source location, with its caret line */
    DK_NOTE,     /* belongs to the error before it */
    DK_WARNING,  /* at a source location, with its caret line; not an error */
    DK_PLAIN,    /* an error with no source location */
    DK_INTERNAL, /* a broken invariant the caller recovers from */
} DiagKind;

/* One diagnostic as reported. msg is the text after "error: " / "note: "
 * (owned by the Diag; an internal error's starts "internal error at ..."). */
typedef struct DiagRecord {
    DiagKind kind;
    SrcLoc loc; /* DK_ERROR, DK_WARNING and DK_NOTE */
    char *msg;
} DiagRecord;

typedef struct Diag {
    FILE *out;    /* stderr in the tool, a memstream in tests */
    int errors;   /* errors reported (including dropped ones) */
    int dropped;  /* beyond DIAG_MAX_ERRORS */
    /* Diagnostics reported while a mark is open wait here, unprinted, until
     * the outermost mark is committed (printed then) or rolled back (gone);
     * with no mark open each one is printed at once and nothing is kept. */
    DiagRecord *recs;
    int n_recs, cap_recs;
    int open_marks;
} Diag;

/* The state of a Diag at diag_mark, for diag_commit or diag_rollback. */
typedef struct DiagMark {
    int n_recs, errors, dropped;
} DiagMark;

void diag_init(Diag *d, FILE *out);
/* Releases what an unbalanced mark left recorded (nothing otherwise). */
void diag_free(Diag *d);
/* "error:" with the source line and an underline of loc. */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "warning:" with the source line: the program runs on, differently from how it
 * reads (a tolerance raised to what single precision resolves). Not counted. */
void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "note:" attached to the previous error (skipped when that error was dropped). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error with no source location (missing file on the command line, ...). */
void diag_plain(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "nodec: N errors; stopped reporting after the first 20" when errors
 * were dropped. */
void diag_finish(Diag *d);

/* Opens a region whose diagnostics can be taken back: a trial lowering
 * (sema's div() of a state whose equation comes later) must not report its
 * errors, which are reported again where that equation is checked. Marks
 * nest and close in reverse order, each by one commit or one rollback. */
DiagMark diag_mark(Diag *d);
/* Keeps what was reported since m (printed once no mark is open). */
void diag_commit(Diag *d, DiagMark m);
/* Discards what was reported since m, and its error and drop counts. */
void diag_rollback(Diag *d, DiagMark m);
/* Errors reported since m, dropped ones included. */
int diag_errors_since(const Diag *d, DiagMark m);
/* The message of the first error recorded since m (NULL when none was, or all
 * were dropped); valid until that region is committed or rolled back. */
const char *diag_first_error(const Diag *d, DiagMark m);

/* A broken invariant the caller can recover from (it returns failure and no
 * code is generated): an error "internal error at compiler/x/y.c:N: ...".
 * file and line are the C source's, as DIAG_INTERNAL passes them. */
void diag_internal(Diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define DIAG_INTERNAL(d, ...) diag_internal((d), __FILE__, __LINE__, __VA_ARGS__)

/* A broken invariant inside the compiler (not the user's fault) where going on
 * is impossible (no Diag at hand, or out of memory): prints
 * "nodec: internal error at compiler/ir/ir.c:123: ..." and aborts. */
_Noreturn void diag_internal_error(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define INTERNAL_ERROR(...) diag_internal_error(__FILE__, __LINE__, __VA_ARGS__)

/* Loc covering from a to b (a before b). */
SrcLoc loc_span(SrcLoc a, SrcLoc b);

/* The largest source file read (docs/language.md, "Limits"): the front end
 * holds about 40 bytes per source byte, so 32 MiB is about 1.3 GB of memory. */
#define SRC_MAX_BYTES (32L << 20)

/* Reads a whole file; NULL when it cannot, with why it cannot in why[why_len]
 * (strerror's text, or the size past SRC_MAX_BYTES). The caller frees it. */
SrcFile *srcfile_read(const char *path, char *why, size_t why_len);
SrcFile *srcfile_from_string(const char *path, const char *text);
void srcfile_free(SrcFile *f);

#endif
