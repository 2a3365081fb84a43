/* The checker suites' compilation helper (see sema_harness.h). */
#include "sema_harness.h"

#include <check.h>
#include <stdlib.h>

static Ast *parse_one(Compiled *c, SrcFile *f)
{
    c->files[c->nfiles++] = f;
    AstBuilder ab = {c->arena, c->names};
    Ast *a = parse_file(&ab, f, &c->diag);
    ck_assert_ptr_nonnull(a);
    return a;
}

static SrcFile *stdlib_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.node", NODEC_STDLIB_DIR, name);
    char why[128];
    SrcFile *f = srcfile_read(path, why, sizeof why);
    ck_assert_msg(f != NULL, "cannot read %s", path);
    return f;
}

Compiled *harness_compile(const char *path, const char *src, int with_nn)
{
    Compiled *c = calloc(1, sizeof *c);
    c->arena = arena_new();
    c->names = strtab_new(c->arena);
    c->ir = ir_builder_new(c->arena);
    c->out = open_memstream(&c->text, &c->len);
    diag_init(&c->diag, c->out);
    Ast *progs[3];
    int n = 0;
    progs[n++] = parse_one(c, stdlib_file("prelude"));
    if (with_nn)
        progs[n++] = parse_one(c, stdlib_file("nn"));
    progs[n++] = parse_one(c, srcfile_from_string(path, src));
    SemaInput in = {c->arena, c->names, c->ir, &c->diag, progs, n, NULL, NULL};
    c->prog = sema_check(&in);
    fflush(c->out);
    return c;
}

void harness_free(Compiled *c)
{
    if (!c)
        return;
    fclose(c->out);
    free(c->text);
    for (int i = 0; i < c->nfiles; i++)
        srcfile_free(c->files[i]);
    arena_free(c->arena);
    free(c);
}
