/* The on-disk cache of compiled kernels that lets a second run of an unchanged
 * file skip LLVM's optimiser and code generator (llvm_cache.c; docs/codegen.md,
 * "The compile cache"). Plain C: llvm_jit.c hands it bytes, not LLVM objects. */
#ifndef NODEC_LLVM_CACHE_H
#define NODEC_LLVM_CACHE_H

#include <stdbool.h>
#include <stddef.h>

enum { JIT_CACHE_PATH_MAX = 4096 };

/* One module's place in the cache: its file, and the key the file must hold. */
typedef struct JitCacheEntry {
    char path[JIT_CACHE_PATH_MAX];
    char *key; /* malloc'd: the format, the target, the module's bytes */
    size_t key_len;
} JitCacheEntry;

/* The entry for a module: its n bytes (the unoptimised bitcode) and target,
 * what decides its code besides them, as one line. false when there is no
 * cache (NODEC_CACHE=0, no folder). */
bool jit_cache_open(JitCacheEntry *e, const char *target, const void *module, size_t n);
void jit_cache_close(JitCacheEntry *e);
/* The cached object code (malloc'd, *obj_len bytes), or NULL: a miss. */
void *jit_cache_load(const JitCacheEntry *e, size_t *obj_len);
/* Files the object code under e; silently nothing when it cannot. */
void jit_cache_store(const JitCacheEntry *e, const void *obj, size_t obj_len);

#endif
