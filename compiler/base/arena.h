/* Arena allocation for one compilation: tokens, AST, interned names and IR all
 * live in one arena and are released together (QBE's alloc/freeall). Nothing
 * allocated here is ever freed one by one, so passes never own memory. */
#ifndef NODEC_ARENA_H
#define NODEC_ARENA_H

#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *arena);
/* Zeroed, 16-byte aligned; aborts with an internal error on out-of-memory. */
void *arena_alloc(Arena *arena, size_t size);
char *arena_strndup(Arena *arena, const char *s, size_t n);
/* Room for one more of n items of the given size: items itself while n < *cap,
 * else a copy in twice the room (8 at first), *cap updated. The old storage is
 * abandoned to the arena. */
void *arena_grow(Arena *arena, void *items, int n, int *cap, size_t size);

/* Interned strings: equal names are the same pointer, so compare with ==. */
typedef struct Strtab Strtab;
Strtab *strtab_new(Arena *arena);
const char *strtab_intern(Strtab *tab, const char *s, size_t n);
const char *strtab_cstr(Strtab *tab, const char *s); /* strlen(s) */

/* Growable array of pointers in the arena (old storage is abandoned on growth,
 * which the arena reclaims at the end). */
typedef struct PtrVec {
    void **items;
    int n, cap;
} PtrVec;
void ptrvec_push(Arena *arena, PtrVec *v, void *item);

#endif
