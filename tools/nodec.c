/* The nodec command line: run, check, emit-llvm (and the commands later issues
 * bring). Each command is the pipeline recipe of compiler/driver.c followed by
 * what the command does with the checked program. Exit status: 0 success,
 * 1 a reported error in the input or the run, 2 a usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adjoint_print.h"
#include "c_codegen.h"
#include "driver.h"
#include "llvm_jit.h"
#include "plot.h"
#include "params.h"
#include "run.h"

#define NODEC_VERSION "0.1.0"
#ifndef NODEC_LLVM_VERSION
#define NODEC_LLVM_VERSION "unknown"
#endif

typedef struct Options {
    const char *command;
    const char *file;
    const char *model;  /* --model M: restrict dumps and emit-llvm to one model */
    const char *output; /* -o FILE */
    const char *dump;   /* --dump=tokens|ast|ir|grad|llvm */
    bool has_seed;      /* --seed N: in place of the file's `option seed` */
    int precision;      /* --precision f32|f64: 32 or 64 in place of the file's option; 0 */
    uint64_t seed;
    bool no_cache;      /* --no-cache: compile every module, file nothing */
    RunOptions run;
} Options;

static const char usage_text[] =
    "nodec " NODEC_VERSION " - a compiler and runtime for neural ordinary differential equations\n"
    "\n"
    "usage: nodec COMMAND FILE.node [options]\n"
    "\n"
    "commands:\n"
    "  run FILE        execute the file's directives (solve, ...) in order\n"
    "  check FILE      parse and check; report every error with file:line:col\n"
    "  adjoint FILE    print the adjoint system the compiler derives, as mathematics\n"
    "  emit-llvm FILE  print the optimised LLVM IR the JIT compiles\n"
    "  emit-c FILE -o OUT.c  write standalone C99 (and OUT.h): models, solvers, main\n"
    "  params FILE.params    print a parameter file `save` wrote: metadata, tensors\n"
    "\n"
    "options:\n"
    "  --dump=STAGE    print a pipeline stage to stdout: tokens, ast, ir, grad, llvm\n"
    "  --model M       with adjoint, --dump=ir|llvm and emit-llvm: only model M\n"
    "  --stats         (run) compile times, and steps and right-hand-side evaluations\n"
    "                  of each solve\n"
    "  --no-cache      (run, emit-c) compile every model afresh: no object code from the\n"
    "                  compile cache ($NODEC_CACHE_DIR, ~/.cache/nodec), none filed\n"
    "  --quiet, -q     (run) no progress lines on stderr\n"
    "  --check-gradient  (run) each train's first gradient against central differences,\n"
    "                  per parameter\n"
    "  --seed N        (run, emit-c) use seed N in place of the file's `option seed`\n"
    "  --precision P   (run, emit-c, emit-llvm) f32 or f64 in place of the file's\n"
    "                  `option precision`\n"
    "  -o, --output FILE  (emit-llvm) write to FILE instead of stdout; (emit-c) the .c to write\n"
    "  -h, --help      this help; `nodec COMMAND --help` for one command\n"
    "  --version       print the version (and the LLVM and PLplot it was built with)\n"
    "\n"
    "Options may come anywhere; a value follows as `--seed 3` or `--seed=3`.\n";

static const char *command_help(const char *cmd)
{
    if (strcmp(cmd, "run") == 0)
        return "usage: nodec run FILE.node [--stats] [--quiet] [--seed N] [--check-gradient]\n"
               "                 [--precision f32|f64] [--no-cache] [--dump=tokens|ast|ir|grad|llvm]\n"
               "\n"
               "Checks FILE, JIT-compiles each model it uses and executes the directives in\n"
               "order. A solve writes CSV to its `output` file, or prints a table on stdout.\n"
               "Progress goes to stderr; errors name file:line:col and exit with status 1.\n"
               "--seed N replaces the file's `option seed` (initial parameters, batches, draws);\n"
               "--precision f32|f64 its `option precision` (docs/precision.md).\n"
               "Compiled kernels are cached on disk (~/.cache/nodec, or $NODEC_CACHE_DIR;\n"
               "NODEC_CACHE=0 or --no-cache turns that off), so a second run of an unchanged\n"
               "file skips LLVM's optimiser and code generator; --stats prints the times.\n";
    if (strcmp(cmd, "check") == 0)
        return "usage: nodec check FILE.node [--dump=tokens|ast|ir|grad]\n"
               "\n"
               "Parses and checks FILE (names, shapes, equations, directives). Silent with\n"
               "exit status 0 on a good file; otherwise every error (up to 20) with its\n"
               "location, the source line and an underline, and exit status 1.\n";
    if (strcmp(cmd, "adjoint") == 0)
        return "usage: nodec adjoint FILE.node [--model M]\n"
               "\n"
               "Prints, for each model (or model M), the adjoint system the compiler derives\n"
               "symbolically: each state's adjoint equation da/dt = -a^T df/dx and, for each\n"
               "parameter, the integrand of its gradient dL/dtheta = -integral a^T df/dtheta dt.\n";
    if (strcmp(cmd, "emit-c") == 0)
        return "usage: nodec emit-c FILE.node -o OUT.c [--seed N]\n"
               "\n"
               "Writes OUT.c, one C99 file needing only libc and libm, and OUT.h, its API: each\n"
               "model's rhs, vjp and jac kernels and parameters, the runtime's solvers and\n"
               "gradient drivers, for each train its loss and gradient through the solve, and\n"
               "a main that runs the solve directives as `nodec run` does (-DNODEC_NO_MAIN: a\n"
               "library). The file's trains run first (through the JIT, as `nodec run` runs\n"
               "them, --quiet applies), so the parameters written are the trained ones.\n"
               "See docs/emit-c.md.\n";
    if (strcmp(cmd, "params") == 0)
        return "usage: nodec params FILE.params\n"
               "\n"
               "Prints a parameter file that a train's `save` wrote (safetensors): its metadata\n"
               "(the model, the step), then each tensor's name, shape and dtype, with its values\n"
               "when it has at most 8 elements, otherwise min, max, mean, std (of the finite\n"
               "values) and the count of non-finite ones. A file that `load` would refuse as\n"
               "broken (missing, truncated, a bad header) is reported, with exit status 1.\n"
               "See docs/training.md.\n";
    if (strcmp(cmd, "emit-llvm") == 0)
        return "usage: nodec emit-llvm FILE.node [--model M] [-o OUT.ll]\n"
               "\n"
               "Prints the optimised LLVM IR of each model's right-hand-side kernel: the\n"
               "code `nodec run` JIT-compiles.\n";
    return NULL;
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("nodec: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run `nodec --help` for usage)\n", stderr);
    return 2;
}

static bool is_command(const char *s)
{
    return strcmp(s, "run") == 0 || strcmp(s, "check") == 0 || strcmp(s, "emit-llvm") == 0 ||
           strcmp(s, "emit-c") == 0 || strcmp(s, "params") == 0 ||
           strcmp(s, "adjoint") == 0;
}

enum { OPT_DUMP = 256, OPT_MODEL, OPT_SEED, OPT_STATS, OPT_VERSION, OPT_CHECK_GRADIENT,
       OPT_PRECISION, OPT_NO_CACHE };

/* getopt_long's table: `--seed 3` and `--seed=3` alike, options anywhere. */
static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, OPT_VERSION},
    {"dump", required_argument, NULL, OPT_DUMP}, {"model", required_argument, NULL, OPT_MODEL},
    {"seed", required_argument, NULL, OPT_SEED}, {"stats", no_argument, NULL, OPT_STATS},
    {"quiet", no_argument, NULL, 'q'},         {"output", required_argument, NULL, 'o'},
    {"check-gradient", no_argument, NULL, OPT_CHECK_GRADIENT},
    {"precision", required_argument, NULL, OPT_PRECISION},
    {"no-cache", no_argument, NULL, OPT_NO_CACHE},
    {NULL, 0, NULL, 0},
};

static int set_dump(Options *o, const char *stage)
{
    static const char *const stages[] = {"tokens", "ast", "ir", "grad", "llvm"};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        if (strcmp(stage, stages[i]) == 0) {
            o->dump = stages[i];
            return -1;
        }
    return usage_error("unknown stage '%s' for --dump (tokens, ast, ir, grad, llvm)", stage);
}

static int set_seed(Options *o, const char *v)
{
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || errno == ERANGE)
        return usage_error("--seed needs a whole number from 0 to 2^64 - 1, not '%s'", v);
    o->has_seed = true;
    o->seed = seed;
    return -1;
}

static int set_precision(Options *o, const char *v)
{
    if (strcmp(v, "f32") != 0 && strcmp(v, "f64") != 0)
        return usage_error("--precision is f32 or f64, not '%s'", v);
    o->precision = strcmp(v, "f32") == 0 ? 32 : 64;
    return -1;
}

static int unknown_option(const char *arg, int letter)
{
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    for (const struct option *lo = long_options; eq && lo->name; lo++)
        if (strlen(lo->name) == (size_t)(eq - arg - 2) && strncmp(lo->name, arg + 2, eq - arg - 2) == 0)
            return usage_error("'%s': that option takes no value", arg);
    if (arg[0] == '-' && arg[1] != '-' && letter > 0 && letter < 128) {
        char text[3] = {'-', (char)letter, 0};
        return usage_error("unknown option '%s'", text);
    }
    return usage_error("unknown option '%s'", arg);
}

/* One option getopt_long returned: -1 to go on, or an exit status. */
static int take_option(Options *o, int opt, char **argv, bool *help, bool *version)
{
    switch (opt) {
    case 'h': *help = true; return -1;
    case OPT_VERSION: *version = true; return -1;
    case OPT_DUMP: return set_dump(o, optarg);
    case OPT_MODEL: o->model = optarg; return -1;
    case 'o': o->output = optarg; return -1;
    case OPT_SEED: return set_seed(o, optarg);
    case OPT_PRECISION: return set_precision(o, optarg);
    case OPT_STATS: o->run.stats = true; return -1;
    case OPT_NO_CACHE: o->no_cache = true; return -1;
    case 'q': o->run.quiet = true; return -1;
    case OPT_CHECK_GRADIENT: o->run.check_gradient = true; return -1;
    case ':': return usage_error("%s needs a value", argv[optind - 1]);
    default: /* '?': an option getopt_long does not know, or a value it does not take */
        return unknown_option(argv[optind - 1], optopt);
    }
}

/* The command and its file, after the options (getopt_long moved them last). */
static int take_operands(Options *o, int argc, char **argv)
{
    for (int i = optind; i < argc; i++) {
        const char *a = argv[i];
        if (!o->command) {
            if (!is_command(a))
                return usage_error("unknown command '%s' (run, check, adjoint, emit-llvm, emit-c, params)", a);
            o->command = a;
        } else if (!o->file) {
            o->file = a;
        } else {
            return usage_error("unexpected argument '%s' (one file at a time)", a);
        }
    }
    return -1;
}

/* Returns -1 to go on, or an exit status (help printed, usage error). */
static int parse_args(int argc, char **argv, Options *o)
{
    memset(o, 0, sizeof *o);
    bool help = false, version = false;
    opterr = 0; /* our messages, in our format */
    int opt, rc;
    while ((opt = getopt_long(argc, argv, ":hqo:", long_options, NULL)) != -1)
        if ((rc = take_option(o, opt, argv, &help, &version)) >= 0)
            return rc;
    if (version) {
        printf("nodec %s (LLVM %s, %s)\n", NODEC_VERSION, NODEC_LLVM_VERSION,
               plot_available() ? "plots with PLplot" : "without PLplot: no plots");
        return 0;
    }
    if (!help && (rc = take_operands(o, argc, argv)) >= 0)
        return rc;
    if (help) {
        const char *cmd = optind < argc && is_command(argv[optind]) ? argv[optind] : NULL;
        const char *h = cmd ? command_help(cmd) : NULL;
        fputs(h ? h : usage_text, stdout);
        return 0;
    }
    if (!o->command) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!o->file && strcmp(o->command, "params") == 0)
        return usage_error("%s needs a parameter file (what a train's `save` wrote)", o->command);
    if (!o->file)
        return usage_error("%s needs a .node file", o->command);
    if (o->dump && strcmp(o->command, "params") == 0)
        return usage_error("--dump=%s is for .node files; params reads a parameter file", o->dump);
    if (o->output && strcmp(o->command, "emit-llvm") != 0 && strcmp(o->command, "emit-c") != 0)
        return usage_error("-o is for emit-llvm and emit-c; %s", strcmp(o->command, "params") == 0
                               ? "params prints on stdout (redirect it: > FILE)"
                               : "a directive writes its own `output` (or stdout)");
    return -1;
}

static bool wanted(const Options *o, const IrModel *m)
{
    return !o->model || strcmp(o->model, m->name) == 0;
}

static int check_model_option(const Options *o, const SemaProgram *p)
{
    if (o->model && !sema_find_model(p, o->model)) {
        fprintf(stderr, "nodec: error: no model named '%s' in %s\n", o->model, o->file);
        return 1;
    }
    return 0;
}

static int emit_llvm(const Options *o, Compilation *c)
{
    FILE *out = o->output ? fopen(o->output, "w") : stdout;
    if (!out) {
        perror(o->output);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < c->program->n_models && rc == 0; i++)
        if (wanted(o, c->program->models[i]))
            rc = cg_print_llvm(out, c->program->models[i], c->program->f32, &c->diag) ? 1 : 0;
    if (out != stdout && fclose(out) != 0) {
        perror(o->output);
        rc = 1;
    }
    return rc;
}

static int print_adjoints(const Options *o, Compilation *c)
{
    int rc = 0;
    for (int i = 0; i < c->program->n_models && rc == 0; i++)
        if (wanted(o, c->program->models[i]))
            rc = adjoint_print(stdout, c->ir, c->program->models[i]) ? 1 : 0;
    return rc;
}

static int dump_stage(const Options *o, Compilation *c)
{
    for (int i = 0; i < c->program->n_models; i++) {
        const IrModel *m = c->program->models[i];
        if (!wanted(o, m))
            continue;
        if (strcmp(o->dump, "ir") == 0)
            ir_dump_model(stdout, m);
        else if (cg_print_llvm(stdout, m, c->program->f32, &c->diag))
            return 1;
    }
    return 0;
}

/* emit-c: the file's trains run first (as `nodec run` runs them), so the
 * emitted parameters are the trained ones; what emit-c cannot write is
 * reported before any training. */
/* The folder of emit-c's -o must be writable: known before the trains run
 * (which can take long), and named by the option that gave it. */
static int emit_c_output_ok(const Options *o, Compilation *c)
{
    const char *slash = strrchr(o->output, '/');
    char dir[4096] = ".";
    if (slash && (size_t)(slash - o->output) < sizeof dir) {
        size_t n = slash == o->output ? 1 : (size_t)(slash - o->output);
        memcpy(dir, o->output, n);
        dir[n] = 0;
    }
    if (access(dir, W_OK) == 0)
        return 1;
    diag_plain(&c->diag, "emit-c -o %s: cannot write into '%s': %s", o->output, dir, strerror(errno));
    return 0;
}

static int emit_c(const Options *o, Compilation *c)
{
    const SemaProgram *prog = c->program;
    int n_solves = 0, n_trains = 0;
    for (int i = 0; i < prog->n_dirs; i++) {
        n_solves += prog->dirs[i].kind == SEMA_SOLVE;
        n_trains += prog->dirs[i].kind == SEMA_TRAIN;
    }
    if (emit_c_check(c) || !emit_c_output_ok(o, c))
        return 1;
    if (n_trains == 0)
        return emit_c_program(c, o->output);
    double **final = arena_alloc(c->arena, sizeof(double *) * (size_t)(prog->n_models + 1));
    double **at_solve = arena_alloc(c->arena, sizeof(double *) * (size_t)(n_solves + 1));
    for (int i = 0; i < prog->n_models; i++)
        final[i] = arena_alloc(c->arena, sizeof(double) * (size_t)(prog->models[i]->np + 1));
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE)
            at_solve[k++] = arena_alloc(c->arena, sizeof(double) *
                                                      (size_t)(prog->dirs[i].solve.model->np + 1));
    int rc = prog->f32 ? run_trains_f32(c, &o->run, final, at_solve)
                       : run_trains(c, &o->run, final, at_solve);
    EmitCParams params = {final, at_solve, true};
    return rc ? rc : emit_c_program_with(c, o->output, &params);
}

static int dump_tokens(const char *path)
{
    char why[128];
    SrcFile *f = srcfile_read(path, why, sizeof why);
    if (!f) {
        fprintf(stderr, "nodec: cannot read '%s': %s\n", path, why);
        return 1;
    }
    Diag d;
    diag_init(&d, stderr);
    lex_dump_tokens(stdout, f, &d);
    srcfile_free(f);
    return d.errors ? 1 : 0;
}

/* How far the command takes the pipeline, and for which back ends. A dump
 * replaces the command: it stops at its stage. */
static CompileOptions compile_options(const Options *o)
{
    CompileOptions c = {.path = o->file, .diag_out = stderr, .until = COMPILE_CHECK,
                        .dump_ast = o->dump && strcmp(o->dump, "ast") == 0,
                        .precision = o->precision, .jit_cache = !o->no_cache};
    if (o->dump) {
        c.dump_grad = strcmp(o->dump, "grad") == 0;
        c.until = c.dump_grad ? COMPILE_DERIVE : COMPILE_CHECK;
        c.targets = strcmp(o->command, "emit-c") == 0 ? TARGET_C | TARGET_JIT
                    : strcmp(o->command, "adjoint") == 0 ? TARGET_SYSTEM
                                                         : TARGET_JIT;
    } else if (strcmp(o->command, "run") == 0) {
        c.until = COMPILE_BACKEND;
        c.targets = TARGET_JIT;
    } else if (strcmp(o->command, "emit-c") == 0 && o->output) {
        c.until = COMPILE_BACKEND; /* the JIT runs the file's trains first */
        c.targets = TARGET_C | TARGET_JIT;
    } else if (strcmp(o->command, "adjoint") == 0) {
        c.until = COMPILE_DERIVE;
        c.targets = TARGET_SYSTEM;
    }
    return c;
}

/* --stats: the front end's time, then the JIT's, with how many modules the
 * compile cache supplied, then each module's (a train's kernels, an encoder's,
 * a model's solves). */
static void print_compile_stats(const Compilation *c)
{
    fprintf(stderr, "compile: front end %.1f ms, JIT %.1f ms (%d module%s", c->front_ms, c->jit_ms,
            c->n_jit, c->n_jit == 1 ? "" : "s");
    if (c->n_cached > 0)
        fprintf(stderr, ", %d from the cache", c->n_cached);
    fputs(")\n", stderr);
    for (int i = 0; c->compiled && i < c->sets.n; i++) {
        const KernelSet *s = &c->sets.sets[i];
        const JitModel *jit = c->compiled[i].jit;
        if (!jit)
            continue;
        const char *what = s->encoder_of ? "encoder of" : s->train ? "train" : "solve";
        const SemaDirective *d = s->encoder_of ? s->encoder_of : s->train;
        fprintf(stderr, "  JIT %s %s: %.1f ms", what,
                d && d->train.model ? d->train.model->name : s->model->name, jit_compile_ms(jit));
        if (jit_from_cache(jit))
            fputs(" (cached)\n", stderr);
        else
            fprintf(stderr, " (O2 %.1f ms, code generation %.1f ms)\n", jit_optimise_ms(jit),
                    jit_codegen_ms(jit));
    }
}

int main(int argc, char **argv)
{
    Options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (strcmp(o.command, "params") == 0)
        return params_print(stdout, stderr, o.file);
    if (o.dump && strcmp(o.dump, "tokens") == 0)
        return dump_tokens(o.file);

    CompileOptions copts = compile_options(&o);
    Compilation *c = compile(&copts);
    if (c->program && o.run.stats && copts.until == COMPILE_BACKEND)
        print_compile_stats(c);
    if (c->program && o.has_seed) {
        c->program->has_seed = true;
        c->program->seed = o.seed;
    }
    if (c->program && check_model_option(&o, c->program))
        rc = 1;
    else if (!c->program)
        rc = 1;
    else if (o.dump && (strcmp(o.dump, "ast") == 0 || strcmp(o.dump, "grad") == 0))
        rc = 0; /* printed by compile; a dump replaces the command */
    else if (o.dump)
        rc = dump_stage(&o, c);
    else if (strcmp(o.command, "emit-llvm") == 0)
        rc = emit_llvm(&o, c);
    else if (strcmp(o.command, "emit-c") == 0 && !o.output)
        rc = usage_error("%s needs -o OUT.c", o.command);
    else if (strcmp(o.command, "emit-c") == 0)
        rc = emit_c(&o, c);
    else if (strcmp(o.command, "adjoint") == 0)
        rc = print_adjoints(&o, c);
    else if (strcmp(o.command, "run") == 0)
        rc = c->program->f32 ? run_program_f32(c, &o.run) : run_program(c, &o.run);
    else
        rc = 0; /* check: silent on a good file */
    diag_finish(&c->diag);
    if (c->diag.errors)
        rc = 1;
    compilation_free(c);
    return rc;
}
