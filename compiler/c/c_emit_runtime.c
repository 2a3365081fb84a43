/* emit-c's copy of the runtime: the sources embedded into nodec at build time
 * (cmake/embed_runtime.cmake), written into one translation unit. Each file is
 * verbatim but for its `#include "nd_..."` lines (X-macro tables are pasted
 * where they are included); a static function that two runtime files both
 * define (each file is its own translation unit in the runtime library) is
 * renamed for the file that holds it by a function-like macro around it, so
 * the runtime needs no unique static names. */
#include "c_emit_internal.h"

#include <ctype.h>
#include <string.h>

static const char *embedded_text(const char *name)
{
    for (int i = 0; i < cc_runtime_file_count; i++)
        if (strcmp(cc_runtime_files[i].name, name) == 0)
            return cc_runtime_files[i].text;
    return NULL;
}

static bool is_ident(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

/* The static function a line starts to define or declare ("static int
 * start(NdRun *r)" gives "start"): its length, 0 for any other line. */
static size_t static_function(const char *line, const char **name)
{
    const char *paren = strchr(line, '('), *eol = strchr(line, '\n');
    if (strncmp(line, "static ", 7) != 0 || !paren || (eol && paren > eol) || paren[1] == '*' ||
        memchr(line, '=', (size_t)(paren - line)))
        return 0;
    const char *end = paren, *start;
    while (end > line && end[-1] == ' ')
        end--;
    for (start = end; start > line && is_ident(start[-1]);)
        start--;
    *name = start;
    return (size_t)(end - start);
}

/* Whether file text defines static function `name`. */
static bool defines(const char *text, const char *name)
{
    for (const char *s = text; s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        const char *n;
        size_t len = static_function(s, &n);
        if (len == strlen(name) && strncmp(n, name, len) == 0)
            return true;
    }
    return false;
}

/* Whether every use of `name` outside comments and literals is a call (the
 * function-like macro renames exactly those). */
static bool only_called(const char *s, const char *name)
{
    size_t len = strlen(name);
    while (*s) {
        if (s[0] == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            s = end ? end + 2 : s + strlen(s);
        } else if (s[0] == '/' && s[1] == '/') {
            s += strcspn(s, "\n");
        } else if (*s == '"' || *s == '\'') {
            char q = *s++;
            while (*s && *s != q)
                s += s[0] == '\\' && s[1] ? 2 : 1;
            s += *s ? 1 : 0;
        } else if (is_ident(*s)) {
            size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
            const char *after = s + n;
            while (*after == ' ' || *after == '\n')
                after++;
            if (n == len && strncmp(s, name, len) == 0 && *after != '(')
                return false;
            s += n;
        } else {
            s++;
        }
    }
    return true;
}

/* The static functions file `name` shares a name with another embedded .c
 * file, into clash[] (at most max); returns how many. */
static int clashes(const char *const *files, int n_files, const char *name, char clash[][64],
                   int max)
{
    const char *text = embedded_text(name);
    int n = 0;
    for (const char *s = text; s && n < max; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        const char *fn;
        size_t len = static_function(s, &fn);
        if (len == 0 || len >= 64)
            continue;
        char cand[64];
        memcpy(cand, fn, len);
        cand[len] = '\0';
        bool seen = false, other = false;
        for (int k = 0; k < n; k++)
            seen |= strcmp(clash[k], cand) == 0;
        for (int i = 0; i < n_files && !seen && !other; i++) {
            size_t nl = strlen(files[i]);
            other = strcmp(files[i], name) != 0 && files[i][nl - 1] == 'c' &&
                    defines(embedded_text(files[i]), cand);
        }
        if (other)
            memcpy(clash[n++], cand, len + 1);
    }
    return n;
}

/* The X-macro table file that an `#include "name.def"` line names into name
 * (64 bytes), and whether it is one; false for any other include. */
static bool included_table(const char *line, char *name)
{
    const char *start = line + 10, *quote = strchr(start, '"');
    size_t n = quote ? (size_t)(quote - start) : 0;
    if (n < 5 || n >= 64 || strncmp(quote - 4, ".def", 4) != 0)
        return false;
    memcpy(name, start, n);
    name[n] = '\0';
    return embedded_text(name) != NULL;
}

/* The text without its `#include "nd_..."` lines (the files it includes come
 * before it in the same translation unit), but with each X-macro table pasted
 * where it is included: a table is read several times, under other macros.
 * A pasted table leaves out its opening comment, which the reader of the
 * program finds in the runtime's copy. */
static void put_text(FILE *f, const char *s)
{
    while (*s) {
        const char *end = strchr(s, '\n');
        size_t len = end ? (size_t)(end - s) + 1 : strlen(s);
        char name[64];
        if (strncmp(s, "#include \"", 10) != 0) {
            fwrite(s, 1, len, f);
        } else if (included_table(s, name)) {
            const char *table = embedded_text(name), *rows = strstr(table, "*/\n");
            fprintf(f, "/* runtime/include/%s: */\n", name);
            put_text(f, strncmp(table, "/*", 2) == 0 && rows ? rows + 3 : table);
        }
        s += len;
    }
}

int emit_c_put_runtime(FILE *f, const char *const *files, int n_files, int index, Diag *diag)
{
    const char *name = files[index], *text = embedded_text(name);
    char clash[32][64], base[64];
    if (!text) {
        DIAG_INTERNAL(diag, "runtime file '%s' is not embedded in this nodec", name);
        return -1;
    }
    int n = name[strlen(name) - 1] == 'c' ? clashes(files, n_files, name, clash, 32) : 0;
    snprintf(base, sizeof base, "%.*s", (int)strcspn(name + 3, "."), name + 3);
    fprintf(f, "/* ---- runtime/%s ---- */\n", name);
    for (int i = 0; i < n; i++) {
        if (!only_called(text, clash[i])) {
            DIAG_INTERNAL(diag, "the static function '%s' of runtime/%s shares its name with "
                                "another runtime file and is not only called: give it a "
                                "unique name", clash[i], name);
            return -1;
        }
        fprintf(f, "#define %s(...) ndx_%s_%s(__VA_ARGS__) /* also in another file */\n",
                clash[i], base, clash[i]);
    }
    put_text(f, text);
    for (int i = 0; i < n; i++)
        fprintf(f, "#undef %s\n", clash[i]);
    fputc('\n', f);
    return 0;
}
