/* Safetensors parameter files (see nd_safetensors.h): a strict writer (what the
 * reference implementation writes: __metadata__ first, contiguous offsets from 0,
 * space padding to 8 bytes) and a reader that checks every number of the header
 * before it trusts it. The header's JSON is read by cJSON (Debian's
 * libcjson-dev): the format's attack surface is a parser someone else keeps
 * fuzzed; this file checks what the values mean. */
#include "nd_safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cJSON.h>

#include "nd_output.h"

enum { ST_ALIGN = 8 };
#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

/* ---- bytes, little-endian whatever the host ---- */

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* One element in the file's dtype (ST_DTYPE): its bits, little-endian. */
static void put_real(unsigned char *b, nd_real x)
{
#ifdef ND_REAL_F32
    uint32_t u;
#else
    uint64_t u;
#endif
    memcpy(&u, &x, sizeof u);
    for (size_t i = 0; i < sizeof u; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

static uint64_t get_uint(const unsigned char *b, int nbytes)
{
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static double get_f64(const unsigned char *b)
{
    uint64_t u = get_uint(b, 8);
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static double get_f32(const unsigned char *b)
{
    uint32_t u = (uint32_t)get_uint(b, 4);
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- writing ---- */

static void json_string(FILE *h, const char *s)
{
    fputc('"', h);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(h, "\\%c", c);
        else if (c < 0x20)
            fprintf(h, "\\u%04x", c);
        else
            fputc(c, h);
    }
    fputc('"', h);
}

/* The dtype the save writes: the runtime's own precision (nd_real.h), so a
 * single-precision run's file holds exactly the floats it computed with. */
#ifdef ND_REAL_F32
#define ST_DTYPE "F32"
#else
#define ST_DTYPE "F64"
#endif

static void json_tensor(FILE *h, const NdTensorSpec *t, long begin)
{
    json_string(h, t->name);
    fputs(":{\"dtype\":\"" ST_DTYPE "\",\"shape\":[", h);
    if (t->rank < 0)
        fprintf(h, "%ld", t->size);
    for (int d = 0; d < t->rank; d++)
        fprintf(h, d ? ",%ld" : "%ld", t->dims[d]);
    fprintf(h, "],\"data_offsets\":[%ld,%ld]}", begin, begin + (long)sizeof(nd_real) * t->size);
}

/* The JSON header, padded with spaces to a multiple of 8 bytes; malloc'ed. */
static char *build_header(int n, const NdTensorSpec *specs, int n_meta, const char *const *meta,
                          size_t *len)
{
    char *buf = NULL;
    FILE *h = open_memstream(&buf, len);
    if (!h)
        return NULL;
    fputc('{', h);
    if (n_meta > 0) {
        fputs("\"__metadata__\":{", h);
        for (int i = 0; i < n_meta; i++) {
            if (i)
                fputc(',', h);
            json_string(h, meta[2 * i]);
            fputc(':', h);
            json_string(h, meta[2 * i + 1]);
        }
        fputs(n ? "}," : "}", h);
    }
    long begin = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', h);
        json_tensor(h, &specs[i], begin);
        begin += (long)sizeof(nd_real) * specs[i].size;
    }
    fputc('}', h);
    fflush(h);
    while (*len % ST_ALIGN)
        fputc(' ', h), fflush(h);
    if (fclose(h) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Writes the whole file through fd, then fsync: the data is on disk before the
 * rename makes it visible. Keeps errno on failure. */
static int write_file(int fd, const char *header, size_t hlen, int n, const NdTensorSpec *specs,
                      const nd_real *p)
{
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask); /* mkstemp made it 0600; give the user's usual mode */
    FILE *f = fdopen(fd, "wb");
    if (!f)
        return close(fd), -1;
    unsigned char b[8];
    put_u64(b, hlen);
    fwrite(b, 1, 8, f);
    fwrite(header, 1, hlen, f);
    for (int i = 0; i < n; i++)
        for (long k = 0; k < specs[i].size; k++) {
            put_real(b, p[specs[i].offset + k]);
            fwrite(b, 1, sizeof(nd_real), f);
        }
    int rc = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0 ? -1 : 0;
    int saved = errno;
    if (fclose(f) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

/* fsync of the folder makes the rename itself durable; best effort. */
static void sync_folder(const char *path)
{
    char dir[PATH_MAX];
    if (nd_output_folder(path, dir, sizeof dir) != 0)
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The pid in a temporary file's name "NAME.tmp-PID-XXXXXX" after prefix, or 0. */
static long tmp_owner(const char *entry, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(entry, prefix, n) != 0)
        return 0;
    char *end;
    long pid = strtol(entry + n, &end, 10);
    return pid > 0 && *end == '-' && strlen(end + 1) == 6 ? pid : 0;
}

/* Removes what a killed save of target left: "target.tmp-PID-XXXXXX" files
 * whose process is gone (or is this one, which saves one file at a time). A
 * save running in another live process keeps its file. */
static void remove_stale(const char *target)
{
    char dir[PATH_MAX], prefix[PATH_MAX], stale[2 * PATH_MAX];
    const char *slash = strrchr(target, '/');
    if (nd_output_folder(target, dir, sizeof dir) != 0 ||
        snprintf(prefix, sizeof prefix, "%s.tmp-", slash ? slash + 1 : target) >= (int)sizeof prefix)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = tmp_owner(e->d_name, prefix);
        if (pid && (pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) &&
            snprintf(stale, sizeof stale, "%s/%s", dir, e->d_name) < (int)sizeof stale)
            unlink(stale);
    }
    closedir(d);
}

/* The file to write for path (through symlinks), refused unless it is a
 * regular file or not there yet: renaming over a device node or a link would
 * replace it rather than write where it leads. */
static int save_target(const char *path, char *target, size_t len, char *err, size_t errlen)
{
    if (nd_output_target(path, target, len) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(target, &st) == 0 && !S_ISREG(st.st_mode))
        return nd_output_check(path, 1, err, errlen);
    return 0;
}

int nd_safetensors_save(const char *path, int n, const NdTensorSpec *specs, const nd_real *p,
                        int n_meta, const char *const *meta, char *err, size_t errlen)
{
    char target[PATH_MAX], tmp[PATH_MAX + 32];
    if (save_target(path, target, sizeof target, err, errlen) != 0)
        return -1;
    remove_stale(target);
    size_t hlen = 0;
    char *header = build_header(n, specs, n_meta, meta, &hlen);
    if (!header) {
        snprintf(err, errlen, "cannot write '%s': out of memory", path);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-XXXXXX", target, (long)getpid());
    int fd = mkstemp(tmp);
    int rc = fd < 0 ? -1 : write_file(fd, header, hlen, n, specs, p);
    if (rc == 0 && rename(tmp, target) != 0)
        rc = -1;
    if (rc != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    } else {
        sync_folder(target);
    }
    free(header);
    return rc;
}

/* ---- the header's JSON (cJSON: a well-kept parser, not ours) ---- */

typedef struct StEntry {
    char *name;
    char dtype[16];
    int rank;
    uint64_t dims[ND_TENSOR_MAX_RANK];
    uint64_t begin, end;
} StEntry;

/* Where the header is being read, for messages: "file: bad safetensors header: ...". */
typedef struct StHeader {
    const char *path;
    char *err;
    size_t errlen;
} StHeader;

static int header_fail(const StHeader *h, const char *tensor, const char *what)
{
    if (tensor)
        snprintf(h->err, h->errlen, "%s: bad safetensors header: tensor '%s': %s", h->path, tensor,
                 what);
    else
        snprintf(h->err, h->errlen, "%s: bad safetensors header: %s", h->path, what);
    return -1;
}

/* A JSON number that is a whole number a double holds exactly (offsets and
 * dimensions; past 2^53 a double no longer counts bytes one by one). */
static int json_uint(const cJSON *v, uint64_t *out)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 0 && d <= 9007199254740992.0 && d == (double)(uint64_t)d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

/* [u, u, ...] into v (at most max); *count receives the length. */
static int json_uints(const cJSON *array, uint64_t *v, int max, int *count)
{
    *count = 0;
    if (!cJSON_IsArray(array))
        return -1;
    const cJSON *item;
    cJSON_ArrayForEach(item, array)
    {
        if (*count == max || json_uint(item, &v[*count]))
            return -1;
        ++*count;
    }
    return 0;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, other keys ignored. */
static int read_tensor(const StHeader *h, const cJSON *t, StEntry *e)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsObject(t) || !dtype || !shape || !offsets)
        return header_fail(h, e->name, "a tensor needs dtype, shape and data_offsets");
    if (!cJSON_IsString(dtype) || strlen(dtype->valuestring) >= sizeof e->dtype)
        return header_fail(h, e->name, "dtype must be a short string such as \"F64\"");
    snprintf(e->dtype, sizeof e->dtype, "%s", dtype->valuestring);
    if (json_uints(shape, e->dims, ND_TENSOR_MAX_RANK, &e->rank))
        return header_fail(h, e->name, "shape must be a list of at most 8 whole numbers");
    uint64_t off[2];
    int n;
    if (json_uints(offsets, off, 2, &n) || n != 2)
        return header_fail(h, e->name, "data_offsets needs 2 numbers");
    e->begin = off[0];
    e->end = off[1];
    return 0;
}

/* The metadata's key, value pairs (malloc'ed) for a reader that shows them; a
 * value that is not a string (the format says it is) is kept as its JSON text. */
typedef struct StMeta {
    int n;
    char **pairs;
} StMeta;

/* Takes key and value (either may be NULL: out of memory, both freed). */
static int add_meta(StMeta *meta, char *key, char *value)
{
    char **grown = key && value ? realloc(meta->pairs, sizeof(char *) * (size_t)(2 * meta->n + 2))
                                : NULL;
    if (!grown) {
        free(key);
        free(value);
        return -1;
    }
    meta->pairs = grown;
    grown[2 * meta->n] = key;
    grown[2 * meta->n + 1] = value;
    meta->n++;
    return 0;
}

static int read_meta(const StHeader *h, const cJSON *object, StMeta *meta)
{
    if (!cJSON_IsObject(object)) /* the format says an object of strings: show what is there */
        return add_meta(meta, strdup("__metadata__"), cJSON_PrintUnformatted(object))
                   ? header_fail(h, NULL, "out of memory")
                   : 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, object)
    {
        char *value = cJSON_IsString(item) ? strdup(item->valuestring) : cJSON_PrintUnformatted(item);
        if (add_meta(meta, strdup(item->string), value))
            return header_fail(h, NULL, "out of memory");
    }
    return 0;
}

/* The header's tensors into *entries (malloc'ed, names malloc'ed);
 * __metadata__ into *meta when it is wanted, skipped otherwise. */
static int read_tensors(const StHeader *h, const cJSON *root, StEntry **entries, int *count,
                        StMeta *meta)
{
    if (!cJSON_IsObject(root))
        return header_fail(h, NULL, "the header is not a JSON object");
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta && read_meta(h, item, meta))
                return -1;
            continue;
        }
        StEntry *grown = realloc(*entries, sizeof(StEntry) * (size_t)(*count + 1));
        char *name = strdup(item->string);
        if (!grown || !name) {
            free(name);
            if (grown)
                *entries = grown;
            return header_fail(h, NULL, "out of memory");
        }
        *entries = grown;
        grown[*count] = (StEntry){.name = name};
        if (read_tensor(h, item, &grown[(*count)++]))
            return -1;
    }
    return 0;
}

/* The JSON text of the header (hlen bytes, space padded) parsed by cJSON. */
static int parse_header(const StHeader *h, const char *json, size_t hlen, StEntry **entries,
                        int *count, StMeta *meta)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, hlen, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        char what[96];
        snprintf(what, sizeof what, "not valid JSON at byte %ld",
                 at && at >= json && at <= json + hlen ? (long)(at - json) + 8 : 8L);
        return header_fail(h, NULL, what);
    }
    while (end && end < json + hlen && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    int rc = end && end != json + hlen ? header_fail(h, NULL, "text after the header's object")
                                       : read_tensors(h, root, entries, count, meta);
    cJSON_Delete(root);
    return rc;
}

/* ---- reading ---- */

/* The whole file, malloc'ed; NULL with a message. */
static unsigned char *read_file(const char *path, size_t *size, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        /* a folder opens, and its "size" is whatever the file system says */
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(EISDIR));
        fclose(f);
        return NULL;
    }
    unsigned char *buf = NULL;
    errno = 0;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (!buf)
        snprintf(err, errlen, "cannot read '%s': %s", path, errno ? strerror(errno) : "short read");
    fclose(f);
    *size = len > 0 ? (size_t)len : 0;
    return buf;
}

static void shape_text(char *out, size_t len, int rank, const long *ldims, const uint64_t *udims)
{
    size_t k = (size_t)snprintf(out, len, "[");
    for (int d = 0; d < rank && k < len; d++)
        k += (size_t)snprintf(out + k, len - k, "%s%llu", d ? ", " : "",
                              ldims ? (unsigned long long)ldims[d] : (unsigned long long)udims[d]);
    if (k < len)
        snprintf(out + k, len - k, "]");
}

static int same_shape(const NdTensorSpec *t, const StEntry *e)
{
    if (t->rank < 0) {
        uint64_t n = 1;
        for (int d = 0; d < e->rank; d++)
            n *= e->dims[d];
        return n == (uint64_t)t->size;
    }
    if (t->rank != e->rank)
        return 0;
    for (int d = 0; d < t->rank; d++)
        if ((uint64_t)t->dims[d] != e->dims[d])
            return 0;
    return 1;
}

/* The size of one element of e's dtype: 8 or 4, or -1 with a message. */
static int element_size(const char *path, const StEntry *e, char *err, size_t errlen)
{
    if (strcmp(e->dtype, "F64") == 0 || strcmp(e->dtype, "F32") == 0)
        return e->dtype[1] == '6' ? 8 : 4;
    snprintf(err, errlen, "%s: tensor '%s' has dtype %s; nodec reads F64 and F32", path, e->name,
             e->dtype);
    return -1;
}

/* e's data_offsets hold count elements of its dtype inside the data part
 * (data_len bytes). */
static int check_data(const char *path, const StEntry *e, uint64_t count, int elsize,
                      size_t data_len, char *err, size_t errlen)
{
    uint64_t bytes = count * (uint64_t)elsize;
    if (e->end < e->begin || e->end - e->begin != bytes || e->end > data_len) {
        snprintf(err, errlen,
                 "%s: tensor '%s' has data_offsets [%llu, %llu], which do not hold %llu %s "
                 "elements inside the file",
                 path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                 (unsigned long long)count, e->dtype);
        return -1;
    }
    return 0;
}

/* One tensor of the file against the parameter it names; data_len is the size
 * of the data part. */
static int check_entry(const char *path, const NdTensorSpec *t, const StEntry *e, size_t data_len,
                       char *err, size_t errlen)
{
    int elsize = element_size(path, e, err, errlen);
    if (elsize < 0)
        return -1;
    if (!same_shape(t, e)) {
        char have[128], want[128];
        shape_text(have, sizeof have, e->rank, NULL, e->dims);
        shape_text(want, sizeof want, t->rank < 0 ? 1 : t->rank, t->rank < 0 ? &t->size : t->dims,
                   NULL);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, the model's parameter has shape %s",
                 path, e->name, have, want);
        return -1;
    }
    return check_data(path, e, (uint64_t)t->size, elsize, data_len, err, errlen);
}

static int find_spec(int n, const NdTensorSpec *specs, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i].name, name) == 0)
            return i;
    return -1;
}

/* Pairs every spec with its entry (which[i]); -1 with a message naming the tensor. */
static int match_entries(const char *path, int n, const NdTensorSpec *specs, const StEntry *e,
                         int count, size_t data_len, int *which, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        which[i] = -1;
    for (int k = 0; k < count; k++) {
        int i = find_spec(n, specs, e[k].name);
        if (i < 0 && strncmp(e[k].name, ND_SAFETENSORS_RESERVED, strlen(ND_SAFETENSORS_RESERVED)) == 0)
            continue; /* a training's optimizer state: read only by a caller that asks */
        if (i < 0 || which[i] >= 0) {
            snprintf(err, errlen, i < 0 ? "%s: tensor '%s' is not a parameter of this model"
                                        : "%s: tensor '%s' appears twice",
                     path, e[k].name);
            return -1;
        }
        if (check_entry(path, &specs[i], &e[k], data_len, err, errlen))
            return -1;
        which[i] = k;
    }
    for (int i = 0; i < n; i++)
        if (which[i] < 0) {
            snprintf(err, errlen, "%s: tensor '%s' is missing", path, specs[i].name);
            return -1;
        }
    return 0;
}

static void copy_values(int n, const NdTensorSpec *specs, const StEntry *e, const int *which,
                        const unsigned char *data, nd_real *p)
{
    for (int i = 0; i < n; i++) {
        const StEntry *t = &e[which[i]];
        int f32 = strcmp(t->dtype, "F32") == 0;
        for (long k = 0; k < specs[i].size; k++) {
            const unsigned char *b = data + t->begin + (size_t)k * (f32 ? 4 : 8);
            p[specs[i].offset + k] = f32 ? get_f32(b) : get_f64(b);
        }
    }
}

/* The header's length and JSON; the data part follows them. */
static int parse_file(const char *path, const unsigned char *bytes, size_t size,
                      StEntry **entries, int *count, StMeta *meta, size_t *data_start, char *err,
                      size_t errlen)
{
    uint64_t hlen = size >= 8 ? get_uint(bytes, 8) : 0;
    if (size < 8 || hlen > ST_MAX_HEADER || hlen > size - 8 || hlen < 2 || bytes[8] != '{') {
        snprintf(err, errlen, "%s: not a safetensors file (no header of a plausible length)",
                 path);
        return -1;
    }
    StHeader h = {path, err, errlen};
    *data_start = 8 + (size_t)hlen;
    return parse_header(&h, (const char *)bytes + 8, (size_t)hlen, entries, count, meta);
}

int nd_safetensors_load(const char *path, int n, const NdTensorSpec *specs, nd_real *p, char *err,
                        size_t errlen)
{
    size_t size, data_start = 0;
    unsigned char *bytes = read_file(path, &size, err, errlen);
    if (!bytes)
        return -1;
    StEntry *entries = NULL;
    int count = 0;
    int *which = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int rc = which ? parse_file(path, bytes, size, &entries, &count, NULL, &data_start, err, errlen)
               : -1;
    if (!which)
        snprintf(err, errlen, "%s: out of memory", path);
    if (rc == 0)
        rc = match_entries(path, n, specs, entries, count, size - data_start, which, err, errlen);
    if (rc == 0)
        copy_values(n, specs, entries, which, bytes + data_start, p);
    for (int k = 0; k < count; k++)
        free(entries[k].name);
    free(entries);
    free(which);
    free(bytes);
    return rc;
}

/* ---- reading a file without a model (`nodec params`): the same checks ---- */

/* The product of e's shape into *count; -1 when it is more than limit (the
 * data part's bytes: such a tensor cannot be in the file, and the product may
 * not fit 64 bits). */
static int shape_count(const StEntry *e, uint64_t limit, uint64_t *count)
{
    *count = 1;
    for (int d = 0; d < e->rank; d++)
        if (e->dims[d] == 0)
            return *count = 0, 0;
    for (int d = 0; d < e->rank; d++) {
        if (*count > limit / e->dims[d])
            return -1;
        *count *= e->dims[d];
    }
    return 0;
}

/* One tensor of the file into t (its name moves from e to t). */
static int read_entry(const char *path, StEntry *e, const unsigned char *data, size_t data_len,
                      NdTensorData *t, char *err, size_t errlen)
{
    int elsize = element_size(path, e, err, errlen);
    uint64_t count;
    if (elsize < 0)
        return -1;
    if (shape_count(e, data_len, &count)) {
        char have[128];
        shape_text(have, sizeof have, e->rank, NULL, e->dims);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, more elements than the file holds",
                 path, e->name, have);
        return -1;
    }
    if (check_data(path, e, count, elsize, data_len, err, errlen))
        return -1;
    if (!(t->values = malloc(sizeof(double) * (size_t)(count ? count : 1)))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    t->name = e->name;
    e->name = NULL;
    snprintf(t->dtype, sizeof t->dtype, "%s", e->dtype);
    t->rank = e->rank;
    for (int d = 0; d < e->rank; d++)
        t->dims[d] = (long)e->dims[d];
    t->size = (long)count;
    for (uint64_t k = 0; k < count; k++) {
        const unsigned char *b = data + e->begin + (size_t)k * (size_t)elsize;
        t->values[k] = elsize == 4 ? get_f32(b) : get_f64(b);
    }
    return 0;
}

static int read_entries(const char *path, StEntry *e, int count, const unsigned char *data,
                        size_t data_len, NdSafetensorsFile *f, char *err, size_t errlen)
{
    if (!(f->tensors = calloc((size_t)(count ? count : 1), sizeof *f->tensors))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int k = 0; k < count; k++) {
        for (int j = 0; j < k; j++)
            if (strcmp(f->tensors[j].name, e[k].name) == 0) {
                snprintf(err, errlen, "%s: tensor '%s' appears twice", path, e[k].name);
                return -1;
            }
        if (read_entry(path, &e[k], data, data_len, &f->tensors[k], err, errlen))
            return -1;
        f->n = k + 1;
    }
    return 0;
}

NdSafetensorsFile *nd_safetensors_read(const char *path, char *err, size_t errlen)
{
    size_t size, data_start = 0;
    unsigned char *bytes = read_file(path, &size, err, errlen);
    if (!bytes)
        return NULL;
    StEntry *entries = NULL;
    int count = 0;
    StMeta meta = {0, NULL};
    NdSafetensorsFile *f = calloc(1, sizeof *f);
    int rc = f ? parse_file(path, bytes, size, &entries, &count, &meta, &data_start, err, errlen)
               : -1;
    if (!f)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        f->n_meta = meta.n, f->meta = meta.pairs;
    if (rc == 0)
        rc = read_entries(path, entries, count, bytes + data_start, size - data_start, f, err,
                          errlen);
    for (int k = 0; k < count; k++)
        free(entries[k].name);
    free(entries);
    free(bytes);
    if (rc != 0) {
        nd_safetensors_file_free(f);
        return NULL;
    }
    return f;
}

void nd_safetensors_file_free(NdSafetensorsFile *f)
{
    if (!f)
        return;
    for (int i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    for (int k = 0; k < f->n; k++) {
        free(f->tensors[k].name);
        free(f->tensors[k].values);
    }
    free(f->meta);
    free(f->tensors);
    free(f);
}

int nd_safetensors_get_meta(const char *path, const char *key, char *out, size_t len, char *err,
                            size_t errlen)
{
    size_t size;
    unsigned char *bytes = read_file(path, &size, err, errlen);
    if (!bytes)
        return -1;
    uint64_t hlen = size >= 8 ? get_uint(bytes, 8) : 0;
    cJSON *root = NULL;
    if (size >= 8 && hlen <= ST_MAX_HEADER && hlen <= size - 8)
        root = cJSON_ParseWithLengthOpts((const char *)bytes + 8, (size_t)hlen, NULL, 0);
    if (!root)
        snprintf(err, errlen, "%s: not a safetensors file (no header that parses)", path);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(meta, key);
    int found = cJSON_IsString(value);
    if (found)
        snprintf(out, len, "%s", value->valuestring);
    cJSON_Delete(root);
    free(bytes);
    return root ? found : -1;
}
