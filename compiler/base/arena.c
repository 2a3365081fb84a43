/* Arena and interned names for one compilation (see arena.h). */
#include "arena.h"
#include "diag.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARENA_CHUNK = 64 * 1024 };

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
};

static void *checked_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        INTERNAL_ERROR("out of memory");
    return p;
}

Arena *arena_new(void)
{
    return checked_calloc(1, sizeof(Arena));
}

void arena_free(Arena *arena)
{
    if (!arena)
        return;
    for (Chunk *c = arena->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(arena);
}

void *arena_alloc(Arena *arena, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    Chunk *c = arena->head;
    if (!c || c->size - c->used < size) {
        size_t want = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = checked_calloc(1, sizeof(Chunk) + want);
        c->size = want;
        c->next = arena->head;
        arena->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

char *arena_strndup(Arena *arena, const char *s, size_t n)
{
    char *p = arena_alloc(arena, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Open addressing; the table doubles at half load. */
struct Strtab {
    Arena *arena;
    const char **slots;
    size_t cap, count;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

Strtab *strtab_new(Arena *arena)
{
    Strtab *tab = arena_alloc(arena, sizeof(Strtab));
    tab->arena = arena;
    tab->cap = 256;
    tab->slots = arena_alloc(arena, tab->cap * sizeof(char *));
    return tab;
}

static void strtab_grow(Strtab *tab)
{
    size_t cap = tab->cap * 2;
    const char **slots = arena_alloc(tab->arena, cap * sizeof(char *));
    for (size_t i = 0; i < tab->cap; i++) {
        const char *s = tab->slots[i];
        if (!s)
            continue;
        size_t j = hash_bytes(s, strlen(s)) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    tab->slots = slots;
    tab->cap = cap;
}

const char *strtab_intern(Strtab *tab, const char *s, size_t n)
{
    if (2 * (tab->count + 1) > tab->cap)
        strtab_grow(tab);
    size_t j = hash_bytes(s, n) & (tab->cap - 1);
    for (; tab->slots[j]; j = (j + 1) & (tab->cap - 1)) {
        const char *t = tab->slots[j];
        if (strncmp(t, s, n) == 0 && t[n] == 0)
            return t;
    }
    tab->count++;
    return tab->slots[j] = arena_strndup(tab->arena, s, n);
}

const char *strtab_cstr(Strtab *tab, const char *s)
{
    return strtab_intern(tab, s, strlen(s));
}

void *arena_grow(Arena *arena, void *items, int n, int *cap, size_t size)
{
    if (n < *cap)
        return items;
    int grown = *cap ? 2 * *cap : 8;
    void *bigger = arena_alloc(arena, (size_t)grown * size);
    if (n)
        memcpy(bigger, items, (size_t)n * size);
    *cap = grown;
    return bigger;
}

void ptrvec_push(Arena *arena, PtrVec *v, void *item)
{
    v->items = arena_grow(arena, v->items, v->n, &v->cap, sizeof(void *));
    v->items[v->n++] = item;
}
