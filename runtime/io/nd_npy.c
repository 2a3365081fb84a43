/* Reading NumPy .npy files: the magic "\x93NUMPY", a version (1.0: a 2-byte header
 * length; 2.0 and 3.0: 4 bytes), then a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (1797, 1, 8, 8), } padded with
 * spaces and a newline, then the array's bytes in C order. Every number is converted to
 * a double. What numpy can write but a data set cannot use is refused by name: Fortran
 * order, big-endian or other dtypes, a file shorter or longer than its shape, NaN or
 * infinity. The bytes are decoded explicitly as little-endian, so the reader works on any
 * host. */
#include "nd_npy.h"
#include "nd_file_read.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct NpyReader {
    const char *path;
    char *err;
    size_t errlen;
} NpyReader;

static void npy_error(NpyReader *r, const char *fmt, ...)
{
    int k = snprintf(r->err, r->errlen, "%s: ", r->path);
    if (k >= 0 && (size_t)k < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + k, r->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
}

/* ---- the header's dict ---- */

typedef struct Cursor {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(Cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes into buf; 0 when there is none. */
static int read_string(Cursor *c, char *buf, size_t len)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= len)
            return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    buf[n] = '\0';
    return 1;
}

static int read_word(Cursor *c, const char *word)
{
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A tuple of non-negative integers: (), (3,), (3, 4). */
static const char *read_shape(Cursor *c, NdNpy *a)
{
    if (!eat(c, '('))
        return "'shape' is not a tuple";
    a->ndim = 0;
    for (;;) {
        if (eat(c, ')'))
            return NULL;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return "'shape' holds something other than whole numbers";
        long long v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (LLONG_MAX - 9) / 10)
                return "a dimension of 'shape' is too large";
            v = 10 * v + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L')
            c->p++; /* Python 2's long */
        if (a->ndim == ND_NPY_MAX_DIMS)
            return "'shape' has more than 32 dimensions";
        a->shape[a->ndim++] = v;
        if (!eat(c, ',')) {
            if (eat(c, ')'))
                return NULL;
            return "'shape' is not a tuple";
        }
    }
}

/* NULL, or what is wrong with the dict. */
static const char *parse_header(Cursor *c, NdNpy *a, int *fortran)
{
    int seen[3] = {0};
    if (!eat(c, '{'))
        return "it does not start with '{'";
    for (;;) {
        if (eat(c, '}'))
            break;
        char key[32];
        if (!read_string(c, key, sizeof key) || !eat(c, ':'))
            return "a key is not a quoted name followed by ':'";
        if (strcmp(key, "descr") == 0) {
            if (!read_string(c, a->descr, sizeof a->descr))
                return "'descr' is not a simple dtype string (a structured dtype?)";
            seen[0] = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (read_word(c, "True"))
                *fortran = 1;
            else if (read_word(c, "False"))
                *fortran = 0;
            else
                return "'fortran_order' is neither True nor False";
            seen[1] = 1;
        } else if (strcmp(key, "shape") == 0) {
            const char *why = read_shape(c, a);
            if (why)
                return why;
            seen[2] = 1;
        } else {
            return "it has a key other than 'descr', 'fortran_order' and 'shape'";
        }
        if (!eat(c, ',')) {
            if (eat(c, '}'))
                break;
            return "a value is not followed by ',' or '}'";
        }
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return "it lacks one of 'descr', 'fortran_order' and 'shape'";
    return NULL;
}

/* ---- the dtypes ---- */

typedef enum Kind { KIND_FLOAT, KIND_INT, KIND_UINT } Kind;

typedef struct Dtype {
    const char *name;
    Kind kind;
    int size;
} Dtype;

static const Dtype dtypes[] = {
    {"<f8", KIND_FLOAT, 8}, {"<f4", KIND_FLOAT, 4}, {"<i8", KIND_INT, 8}, {"<i4", KIND_INT, 4},
    {"<i2", KIND_INT, 2},   {"<u2", KIND_UINT, 2},  {"|i1", KIND_INT, 1}, {"|u1", KIND_UINT, 1},
};

static const Dtype *find_dtype(const char *descr)
{
    char name[16];
    snprintf(name, sizeof name, "%s", descr);
    if ((name[0] == '<' || name[0] == '=') && name[1] && strcmp(name + 2, "1") == 0)
        name[0] = '|'; /* a byte has no byte order: <u1 is |u1 */
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(name, dtypes[i].name) == 0)
            return &dtypes[i];
    return NULL;
}

static uint64_t little(const unsigned char *b, int size)
{
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static double decode(const Dtype *t, const unsigned char *b)
{
    uint64_t u = little(b, t->size);
    if (t->kind == KIND_FLOAT) {
        if (t->size == 8) {
            double d;
            memcpy(&d, &u, sizeof d);
            return d;
        }
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, sizeof f);
        return (double)f;
    }
    if (t->kind == KIND_UINT)
        return (double)u;
    int bits = 8 * t->size; /* sign-extend */
    if (bits < 64 && (u >> (bits - 1)) & 1)
        u |= ~UINT64_C(0) << bits;
    return (double)(int64_t)u;
}

/* ---- the file ---- */

/* The header's length and where the dict starts, or 0 with the error reported. */
static int read_preamble(NpyReader *r, const unsigned char *b, size_t len, size_t *start, size_t *hlen)
{
    if (len < 8 || memcmp(b, "\x93NUMPY", 6) != 0) {
        npy_error(r, "not a .npy file (it does not start with the bytes \\x93NUMPY)");
        return 0;
    }
    int major = b[6], minor = b[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        npy_error(r, ".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", major, minor);
        return 0;
    }
    int width = major == 1 ? 2 : 4;
    if (len < 8 + (size_t)width) {
        npy_error(r, "the file ends inside its header");
        return 0;
    }
    *hlen = (size_t)little(b + 8, width);
    *start = 8 + (size_t)width;
    if (*hlen > len - *start) {
        npy_error(r, "the file ends inside its header");
        return 0;
    }
    return 1;
}

/* The header's promises against what a data set can read. */
static const Dtype *check_header(NpyReader *r, NdNpy *a, int fortran)
{
    if (fortran) {
        npy_error(r, "the array is in Fortran (column-major) order; save it in C order "
                     "(numpy.ascontiguousarray)");
        return NULL;
    }
    const Dtype *t = find_dtype(a->descr);
    if (!t && a->descr[0] == '>') {
        npy_error(r, "dtype '%s' is big-endian; save it little-endian (array.astype('<%s'))", a->descr,
                  a->descr + 1);
        return NULL;
    }
    if (!t) {
        npy_error(r, "dtype '%s' is not supported (expected <f8, <f4, <i8, <i4, <i2, <u2, |i1 or |u1)",
                  a->descr);
        return NULL;
    }
    a->count = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] > INT_MAX || (a->shape[i] && a->count > (size_t)INT_MAX / (size_t)a->shape[i])) {
            char shape[256];
            npy_error(r, "the shape %s has more than %d elements", nd_npy_shape_text(a, shape, sizeof shape),
                      INT_MAX);
            return NULL;
        }
        a->count *= (size_t)a->shape[i];
    }
    return t;
}

static int read_values(NpyReader *r, NdNpy *a, const Dtype *t, const unsigned char *data, size_t have)
{
    size_t need = a->count * (size_t)t->size;
    char shape[256];
    if (have != need) {
        npy_error(r, "%s: the shape %s of %s needs %zu bytes of data, but the file has %zu",
                  have < need ? "truncated" : "too long", nd_npy_shape_text(a, shape, sizeof shape),
                  a->descr, need, have);
        return 0;
    }
    a->values = malloc(sizeof(double) * (a->count ? a->count : 1));
    if (!a->values) {
        npy_error(r, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < a->count; i++) {
        a->values[i] = decode(t, data + i * (size_t)t->size);
        if (!isfinite(a->values[i])) {
            double v = a->values[i];
            npy_error(r, "element %zu (counting from 0, in C order) is %s, not a finite number", i,
                      isnan(v) ? "NaN" : v > 0 ? "infinity" : "-infinity");
            return 0;
        }
    }
    return 1;
}

NdNpy *nd_npy_read(const char *path, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    NpyReader r = {path, err, errlen};
    size_t len = 0;
    unsigned char *bytes = (unsigned char *)nd_read_file(path, &len);
    if (!bytes) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    NdNpy *a = calloc(1, sizeof *a);
    size_t start = 0, hlen = 0;
    int fortran = 0, ok = 0;
    if (!a) {
        npy_error(&r, "out of memory");
    } else if (read_preamble(&r, bytes, len, &start, &hlen)) {
        Cursor c = {(const char *)bytes + start, (const char *)bytes + start + hlen};
        const char *why = parse_header(&c, a, &fortran);
        const Dtype *t = NULL;
        if (why)
            npy_error(&r, "the header is not a .npy dictionary: %s", why);
        else if ((t = check_header(&r, a, fortran)))
            ok = read_values(&r, a, t, bytes + start + hlen, len - start - hlen);
    }
    free(bytes);
    if (!ok) {
        nd_npy_free(a);
        return NULL;
    }
    return a;
}

void nd_npy_free(NdNpy *a)
{
    if (!a)
        return;
    free(a->values);
    free(a);
}

const char *nd_npy_shape_text(const NdNpy *a, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", a->shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "%s", a->ndim == 1 ? ",)" : ")");
    return buf;
}
