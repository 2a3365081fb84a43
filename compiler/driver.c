/* The compiler pipeline as one recipe (compile() at the bottom): read the
 * prelude, the user's file and every module it imports, parse them all, check
 * them together (lowering to IR), decide the kernels each directive needs,
 * differentiate, and hand the IR to the JIT. What the run does with the
 * compiled program lives in tools/. */
#include "driver.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static char *join_path(const char *dir, size_t dirlen, const char *name)
{
    size_t n = dirlen + strlen(name) + 8;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%.*s%s%s.node", (int)dirlen, dir, dirlen ? "/" : "", name);
    return path;
}

static char *try_module(const char *dir, size_t dirlen, const char *name)
{
    char *path = join_path(dir, dirlen, name);
    if (path && access(path, R_OK) == 0)
        return path;
    free(path);
    return NULL;
}

/* The folder of the running executable's ../share/nodec/stdlib and ../stdlib, so an
 * installed or moved build still finds its stdlib. */
static char *try_beside_executable(const char *name)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    static const char *const rel[] = {"/../share/nodec/stdlib", "/../stdlib"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char dir[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s%s", exe, rel[i]);
        char *path = try_module(dir, strlen(dir), name);
        if (path)
            return path;
    }
    return NULL;
}

char *driver_find_module(const char *name, const char *importer_path)
{
    char *path = NULL;
    if (importer_path) {
        const char *slash = strrchr(importer_path, '/');
        path = try_module(importer_path, slash ? (size_t)(slash - importer_path) : 0, name);
        if (path)
            return path;
    }
    const char *env = getenv("NODEC_PATH");
    while (env && *env) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        if (len && (path = try_module(env, len, name)))
            return path;
        env = colon ? colon + 1 : NULL;
    }
    if ((path = try_module(NODEC_STDLIB_DIR, strlen(NODEC_STDLIB_DIR), name)))
        return path;
    if ((path = try_beside_executable(name)))
        return path;
    return try_module(NODEC_INSTALL_STDLIB_DIR, strlen(NODEC_INSTALL_STDLIB_DIR), name);
}

/* Reads and parses one file; NULL after reporting when it cannot. */
static Ast *parse_one(Compilation *c, AstBuilder *ab, SrcFile *file)
{
    if (c->n_files == DRIVER_MAX_FILES) { /* load_imports stops before this */
        diag_plain(&c->diag, "too many files (more than %d)", DRIVER_MAX_FILES);
        srcfile_free(file);
        return NULL;
    }
    c->files[c->n_files++] = file;
    return parse_file(ab, file, &c->diag);
}

static bool already_loaded(const Compilation *c, const char *path)
{
    for (int i = 0; i < c->n_files; i++)
        if (strcmp(c->files[i]->path, path) == 0)
            return true;
    return false;
}

/* Loads the modules `prog` imports (depth first, each once) into c->programs,
 * ahead of the importer, so declarations come before their users. */
static void load_imports(Compilation *c, AstBuilder *ab, const Ast *prog, const char *importer)
{
    for (int i = 0; prog && i < prog->list.n; i++) {
        const Ast *item = prog->list.items[i];
        if (item->kind != AST_IMPORT)
            continue;
        char *path = driver_find_module(item->str, importer);
        if (!path) {
            diag_error(&c->diag, item->loc,
                       "cannot find module '%s' (looked for %s.node beside the file, in "
                       "NODEC_PATH and in the stdlib)",
                       item->str, item->str);
            continue;
        }
        if (already_loaded(c, path)) {
            free(path);
            continue;
        }
        if (c->n_files == DRIVER_MAX_FILES) { /* reported once, at the first import refused */
            if (!c->files_full)
                diag_error(&c->diag, item->loc,
                           "too many files: importing '%s' would read more than %d files "
                           "(the prelude, the file and its imports)",
                           item->str, DRIVER_MAX_FILES);
            c->files_full = true;
            free(path);
            return;
        }
        char why[128];
        SrcFile *file = srcfile_read(path, why, sizeof why);
        if (!file) {
            diag_error(&c->diag, item->loc, "cannot read module '%s': %s", path, why);
            free(path);
            continue;
        }
        free(path);
        Ast *mod = parse_one(c, ab, file);
        load_imports(c, ab, mod, file->path);
        if (mod && c->n_programs < DRIVER_MAX_FILES)
            c->programs[c->n_programs++] = mod;
    }
}

static void load_prelude(Compilation *c, AstBuilder *ab)
{
    char *path = driver_find_module("prelude", NULL);
    char why[128];
    SrcFile *file = path ? srcfile_read(path, why, sizeof why) : NULL;
    if (!file) {
        diag_plain(&c->diag, "cannot find the stdlib prelude (prelude.node); set NODEC_PATH to "
                             "nodec's stdlib folder");
        free(path);
        return;
    }
    free(path);
    Ast *prog = parse_one(c, ab, file);
    if (prog)
        c->programs[c->n_programs++] = prog;
}

/* Reading and parsing: the prelude, the user's file, then its imports. */
static bool parse_program(Compilation *c, const CompileOptions *o)
{
    AstBuilder ab = {c->arena, c->names};
    char why[128] = "out of memory";
    SrcFile *file = o->text ? srcfile_from_string(o->path, o->text)
                            : srcfile_read(o->path, why, sizeof why);
    if (!file) {
        diag_plain(&c->diag, "cannot read '%s': %s", o->path, why);
        return false;
    }
    load_prelude(c, &ab);
    Ast *user = parse_one(c, &ab, file);
    if (user && o->dump_ast)
        ast_dump(stdout, user);
    load_imports(c, &ab, user, file->path);
    if (user)
        c->programs[c->n_programs++] = user;
    return c->diag.errors == 0;
}

/* ---- which stdlib module declares a name: "add `import ...`" ---- */

static int is_module_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 5 && strcmp(e->d_name + n - 5, ".node") == 0 && strcmp(e->d_name, "prelude.node");
}

static void stdlib_add(Compilation *c, const char *name, const char *module)
{
    int n = c->n_stdlib_names;
    if ((n & (n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to twice */
        size_t cap = sizeof(char *) * (size_t)(n ? 2 * n : 1);
        const char **names = arena_alloc(c->arena, cap), **mods = arena_alloc(c->arena, cap);
        if (n) { /* memcpy from the NULL of an empty table is undefined */
            memcpy(names, c->stdlib_names, sizeof(char *) * (size_t)n);
            memcpy(mods, c->stdlib_modules, sizeof(char *) * (size_t)n);
        }
        c->stdlib_names = names;
        c->stdlib_modules = mods;
    }
    c->stdlib_names[n] = name;
    c->stdlib_modules[c->n_stdlib_names++] = module;
}

/* The top-level fns, nets, models and constants of one module; its parse
 * errors are not the user's and are taken back. */
static void stdlib_module_names(Compilation *c, const char *dir, const char *file)
{
    size_t stem = strlen(file) - 5;
    const char *module = strtab_intern(c->names, file, stem);
    char *path = join_path(dir, strlen(dir), module), why[128];
    SrcFile *f = path ? srcfile_read(path, why, sizeof why) : NULL;
    free(path);
    if (!f)
        return;
    AstBuilder ab = {c->arena, c->names};
    DiagMark m = diag_mark(&c->diag);
    Ast *prog = parse_file(&ab, f, &c->diag);
    diag_rollback(&c->diag, m);
    for (int i = 0; prog && i < prog->list.n; i++) {
        const Ast *it = prog->list.items[i];
        if (it->kind == AST_FN || it->kind == AST_NET || it->kind == AST_MODEL ||
            it->kind == AST_CONST)
            stdlib_add(c, it->name, module);
    }
    srcfile_free(f); /* the names are interned; the tree is not kept */
}

/* Read once, on the first unknown name: a good file never pays for it. The
 * modules are those beside the prelude, in name order. */
static void stdlib_read(Compilation *c)
{
    c->stdlib_read = true;
    char *prelude = driver_find_module("prelude", NULL);
    const char *slash = prelude ? strrchr(prelude, '/') : NULL;
    char dir[PATH_MAX];
    if (!prelude || snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - prelude) : 1,
                             slash ? prelude : ".") >= (int)sizeof dir) {
        free(prelude);
        return;
    }
    free(prelude);
    struct dirent **entries;
    int n = scandir(dir, &entries, is_module_file, alphasort);
    for (int i = 0; i < n; i++) {
        stdlib_module_names(c, dir, entries[i]->d_name);
        free(entries[i]);
    }
    if (n >= 0)
        free(entries);
}

static const char *driver_module_of(void *ctx, const char *name)
{
    Compilation *c = ctx;
    if (!c->stdlib_read)
        stdlib_read(c);
    for (int i = 0; i < c->n_stdlib_names; i++)
        if (strcmp(c->stdlib_names[i], name) == 0)
            return c->stdlib_modules[i];
    return NULL;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

Compilation *compile(const CompileOptions *o)
{
    double t0 = now_ms();
    Compilation *c = calloc(1, sizeof *c);
    c->arena = arena_new();
    c->names = strtab_new(c->arena);
    c->ir = ir_builder_new(c->arena);
    diag_init(&c->diag, o->diag_out);
    if (!parse_program(c, o))
        return c;
    SemaInput in = {c->arena, c->names, c->ir, &c->diag, c->programs, c->n_programs,
                    driver_module_of, c};
    c->program = sema_check(&in);
    if (c->program && o->precision)
        c->program->f32 = o->precision == 32;
    if (!c->program || o->until == COMPILE_CHECK)
        return c;
    if (!(o->targets & TARGET_C)) /* emit-c writes every state per copy (docs/emit-c.md) */
        sema_share_states(c->program, c->arena, c->ir);
    c->sets = kernel_sets_plan(c->arena, c->program, o->targets);
    bool ok = kernel_sets_derive(&c->sets, c->arena, c->ir, &c->diag) == 0;
    if (ok && o->dump_grad)
        kernel_sets_dump(stdout, &c->sets);
    c->front_ms = now_ms() - t0;
    if (ok && o->until == COMPILE_BACKEND) {
        double t1 = now_ms();
        ok = driver_jit_sets(c, o->jit_cache);
        c->jit_ms = now_ms() - t1;
    }
    if (!ok)
        c->program = NULL;
    return c;
}

Compilation *compile_file(const char *path, const char *text, FILE *diag_out, int dump_ast)
{
    CompileOptions o = {.path = path, .text = text, .diag_out = diag_out,
                        .until = COMPILE_CHECK, .dump_ast = dump_ast};
    return compile(&o);
}

static const CompiledSet *compiled_of(const Compilation *c, const KernelSet *s)
{
    return s && c->compiled ? &c->compiled[s - c->sets.sets] : NULL;
}

const CompiledSet *compilation_model_kernels(const Compilation *c, const IrModel *m)
{
    return compiled_of(c, kernel_sets_model(&c->sets, m));
}

const CompiledSet *compilation_train_kernels(const Compilation *c, const SemaDirective *d)
{
    return compiled_of(c, kernel_sets_train(&c->sets, d));
}

const CompiledSet *compilation_encoder_kernels(const Compilation *c, const SemaDirective *d)
{
    return compiled_of(c, kernel_sets_encoder(&c->sets, d));
}

void compilation_free(Compilation *c)
{
    if (!c)
        return;
    for (int i = 0; c->compiled && i < c->sets.n; i++) {
        jit_free(c->compiled[i].jit);
        free(c->compiled[i].events);
    }
    free(c->compiled);
    for (int i = 0; i < c->n_files; i++)
        srcfile_free(c->files[i]);
    diag_free(&c->diag);
    arena_free(c->arena);
    free(c);
}
