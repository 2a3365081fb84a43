/* The on-disk cache of compiled kernels (docs/codegen.md, "The compile cache").
 * An entry is the object code LLVM made from one module, filed under a hash
 * of what decides that code: the cache format, LLVM's version, the target
 * (triple, CPU, features) and the unoptimised module's bitcode. The entry holds
 * that whole key, and a load compares it byte for byte, so a hash collision
 * or a stale entry is a miss, never wrong code. A file that is short, torn or
 * altered fails its length and checksum tests and is a miss too. Writes go to
 * a temporary file renamed into place, so concurrent runs never see half an
 * entry. Every failure (no home, a read-only disk) just means no cache. */
#include "llvm_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bumped whenever the entry layout or the way code is made changes in a way the
 * key does not show (the target machine's options, the pass pipeline). */
#define CACHE_FORMAT "nodec-jit-cache 1"
static const char CACHE_MAGIC[8] = {'N', 'D', 'J', 'I', 'T', 'C', '0', '1'};

/* magic, key length, object length, object checksum; then the key, the object */
enum { CACHE_HEADER = 8 + 3 * 8 };
/* A store that finds more entries than CACHE_MAX_ENTRIES removes the least
 * recently used down to CACHE_KEEP_ENTRIES (a hit refreshes an entry's time):
 * at tens of kilobytes an entry, the folder stays under ~100 MB. */
enum { CACHE_MAX_ENTRIES = 2000, CACHE_KEEP_ENTRIES = 1500 };

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t hash_bytes(const void *data, size_t n)
{
    return fnv1a(0xcbf29ce484222325ULL, data, n);
}

/* $NODEC_CACHE_DIR, else $XDG_CACHE_HOME/nodec, else $HOME/.cache/nodec;
 * created (with its parents) when missing. false: no usable folder, or
 * NODEC_CACHE=0|off. */
static bool cache_dir(char *dir, size_t n)
{
    const char *off = getenv("NODEC_CACHE");
    if (off && (strcmp(off, "0") == 0 || strcmp(off, "off") == 0 || strcmp(off, "no") == 0))
        return false;
    const char *env = getenv("NODEC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    int len;
    if (env && *env)
        len = snprintf(dir, n, "%s", env);
    else if (xdg && *xdg == '/')
        len = snprintf(dir, n, "%s/nodec", xdg);
    else if (home && *home)
        len = snprintf(dir, n, "%s/.cache/nodec", home);
    else
        return false;
    if (len <= 0 || (size_t)len >= n)
        return false;
    for (char *s = dir + 1; *s; s++) { /* mkdir -p */
        if (*s != '/')
            continue;
        *s = 0;
        bool ok = mkdir(dir, 0755) == 0 || errno == EEXIST;
        *s = '/';
        if (!ok)
            return false;
    }
    return mkdir(dir, 0755) == 0 || errno == EEXIST;
}

bool jit_cache_open(JitCacheEntry *e, const char *target, const void *module, size_t lm)
{
    memset(e, 0, sizeof *e);
    char dir[JIT_CACHE_PATH_MAX - 32];
    if (!cache_dir(dir, sizeof dir))
        return false;
    size_t lt = strlen(target), lf = strlen(CACHE_FORMAT);
    e->key_len = lf + 1 + lt + 1 + lm;
    e->key = malloc(e->key_len);
    if (!e->key)
        return false;
    char *k = e->key;
    memcpy(k, CACHE_FORMAT, lf);
    k[lf] = '\n';
    memcpy(k + lf + 1, target, lt);
    k[lf + 1 + lt] = '\n';
    memcpy(k + lf + 2 + lt, module, lm);
    snprintf(e->path, sizeof e->path, "%s/%016llx.o", dir,
             (unsigned long long)hash_bytes(e->key, e->key_len));
    return true;
}

void jit_cache_close(JitCacheEntry *e)
{
    free(e->key);
    e->key = NULL;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

/* The whole file, or NULL (missing, unreadable, or too large to be ours). */
static unsigned char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= CACHE_HEADER &&
        st.st_size < (off_t)1 << 31 && (buf = malloc((size_t)st.st_size))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

void *jit_cache_load(const JitCacheEntry *e, size_t *obj_len)
{
    utimensat(AT_FDCWD, e->path, NULL, 0); /* used now: the eviction's order */
    size_t len = 0;
    unsigned char *buf = read_file(e->path, &len);
    if (!buf)
        return NULL;
    uint64_t key_len = get_u64(buf + 8), n = get_u64(buf + 16), sum = get_u64(buf + 24);
    /* the lengths first (a damaged header can hold anything), then the bytes */
    size_t body = len - CACHE_HEADER;
    bool ok = memcmp(buf, CACHE_MAGIC, sizeof CACHE_MAGIC) == 0 && key_len == e->key_len &&
              key_len <= body && n > 0 && n == body - key_len;
    const unsigned char *key = buf + CACHE_HEADER, *obj = ok ? key + key_len : NULL;
    ok = ok && memcmp(key, e->key, key_len) == 0 && hash_bytes(obj, n) == sum;
    void *out = ok ? malloc(n) : NULL;
    if (out) {
        memcpy(out, obj, n);
        *obj_len = n;
    }
    free(buf);
    return out;
}

static bool write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

typedef struct CacheFile {
    char name[32];
    struct timespec used;
} CacheFile;

static int older_first(const void *a, const void *b)
{
    const struct timespec *x = &((const CacheFile *)a)->used, *y = &((const CacheFile *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? -1 : 1;
    return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* Whether name is an entry's: 16 hex digits and ".o". */
static bool entry_name(const char *name)
{
    size_t n = strlen(name);
    if (n != 18 || strcmp(name + 16, ".o") != 0)
        return false;
    for (int i = 0; i < 16; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

/* The least recently used entries of dir, past CACHE_MAX_ENTRIES, removed. */
static void cache_evict(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    CacheFile *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        struct stat st;
        if (!entry_name(ent->d_name) || fstatat(dirfd(d), ent->d_name, &st, 0) != 0)
            continue;
        if (n == cap) {
            CacheFile *more = realloc(files, sizeof *files * (cap = cap ? 2 * cap : 256));
            if (!more)
                break;
            files = more;
        }
        memcpy(files[n].name, ent->d_name, 19); /* entry_name: 18 characters */
        files[n++].used = st.st_mtim;
    }
    if (n > CACHE_MAX_ENTRIES) {
        qsort(files, n, sizeof *files, older_first);
        for (size_t i = 0; i < n - CACHE_KEEP_ENTRIES; i++)
            unlinkat(dirfd(d), files[i].name, 0);
    }
    free(files);
    closedir(d);
}

void jit_cache_store(const JitCacheEntry *e, const void *obj, size_t obj_len)
{
    char tmp[JIT_CACHE_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", e->path) >= (int)sizeof tmp)
        return;
    int fd = mkstemp(tmp);
    if (fd < 0)
        return;
    unsigned char head[CACHE_HEADER];
    memcpy(head, CACHE_MAGIC, sizeof CACHE_MAGIC);
    put_u64(head + 8, e->key_len);
    put_u64(head + 16, obj_len);
    put_u64(head + 24, hash_bytes(obj, obj_len));
    bool ok = write_all(fd, head, sizeof head) && write_all(fd, e->key, e->key_len) &&
              write_all(fd, obj, obj_len);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, e->path) != 0) {
        unlink(tmp);
        return;
    }
    char dir[JIT_CACHE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", e->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        cache_evict(dir);
    }
}
