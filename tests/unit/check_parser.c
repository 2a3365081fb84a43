/* Parser tests: every construct of LANGUAGE.md, precedence checked on the tree's
 * shape (printed as an s-expression), locations, every conformance file and
 * every example of LANGUAGE.md, syntax error messages and recovery, and no crash
 * on garbage (random bytes, truncated files, deep nesting). */
#include <check.h>
#include <stdbool.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"

static Arena *arena;
static AstBuilder builder;
static Diag diag;
static char *messages;
static size_t messages_size;
static FILE *messages_out;
static SrcFile **files; /* every file parsed in a test, freed at teardown */
static int n_files;

static void setup(void)
{
    arena = arena_new();
    builder = (AstBuilder){arena, strtab_new(arena)};
    messages = NULL;
    messages_out = open_memstream(&messages, &messages_size);
    diag_init(&diag, messages_out);
    n_files = 0;
}

static void teardown(void)
{
    fclose(messages_out);
    free(messages);
    for (int i = 0; i < n_files; i++)
        srcfile_free(files[i]);
    free(files);
    files = NULL;
    arena_free(arena);
}

/* The diagnostics printed so far. */
static const char *diags(void)
{
    fflush(messages_out);
    return messages ? messages : "";
}

static Ast *parse_named(const char *path, const char *src)
{
    SrcFile *f = srcfile_from_string(path, src);
    files = realloc(files, (size_t)(n_files + 1) * sizeof *files);
    files[n_files++] = f;
    return parse_file(&builder, f, &diag);
}

static Ast *parse(const char *src)
{
    return parse_named("t.node", src);
}

/* Parses src and insists on no errors. */
static Ast *parse_ok(const char *src)
{
    Ast *prog = parse(src);
    ck_assert_msg(diag.errors == 0, "unexpected errors for:\n%s\n%s", src, diags());
    ck_assert_ptr_nonnull(prog);
    ck_assert_int_eq(prog->kind, AST_PROGRAM);
    return prog;
}

/* ---- the tree as an s-expression, to check shapes in one line ---- */

static void sx(char *buf, size_t size, const Ast *n);

static void sx_cat(char *buf, size_t size, const char *fmt, const char *s)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, fmt, s);
}

static void sx_list(char *buf, size_t size, const AstList *l)
{
    for (int i = 0; i < l->n; i++) {
        sx_cat(buf, size, "%s", " ");
        sx(buf, size, l->items[i]);
    }
}

static void sx(char *buf, size_t size, const Ast *n)
{
    char num[32];
    if (!n) {
        sx_cat(buf, size, "%s", "_");
        return;
    }
    switch (n->kind) {
    case AST_NUM: snprintf(num, sizeof num, "%g", n->num); sx_cat(buf, size, "%s", num); return;
    case AST_STR: sx_cat(buf, size, "\"%s\"", n->str); return;
    case AST_NAME: sx_cat(buf, size, "%s", n->name); return;
    case AST_DERIV: sx_cat(buf, size, "(d %s)", n->name); return;
    case AST_BINARY: sx_cat(buf, size, "(%s ", ast_op_text(n->op)); break;
    case AST_NEG: sx_cat(buf, size, "%s", "(neg "); break;
    case AST_CALL: sx_cat(buf, size, "(%s", n->name); sx_list(buf, size, &n->list); sx_cat(buf, size, "%s", ")"); return;
    case AST_ARG: sx_cat(buf, size, "(%s= ", n->name); sx(buf, size, n->a); sx_cat(buf, size, "%s", ")"); return;
    case AST_INDEX: sx_cat(buf, size, "%s", "(index "); sx(buf, size, n->a); sx_list(buf, size, &n->list); sx_cat(buf, size, "%s", ")"); return;
    case AST_SLICE: sx_cat(buf, size, "%s", "(: "); break;
    case AST_LIST: sx_cat(buf, size, "%s", "["); sx_list(buf, size, &n->list); sx_cat(buf, size, "%s", " ]"); return;
    case AST_FIELD: sx_cat(buf, size, "%s", "(. "); sx(buf, size, n->a); sx_cat(buf, size, " %s)", n->name); return;
    case AST_RECORD: sx_cat(buf, size, "%s", "{"); sx_list(buf, size, &n->list); sx_cat(buf, size, "%s", " }"); return;
    case AST_ENTRY: sx_cat(buf, size, "(%s", n->name); sx_cat(buf, size, " %s ", ast_op_text(n->op)); sx(buf, size, n->a); sx_cat(buf, size, "%s", ")"); return;
    default: sx_cat(buf, size, "<%s>", ast_kind_name(n->kind)); return;
    }
    sx(buf, size, n->a);
    if (n->kind != AST_NEG) {
        sx_cat(buf, size, "%s", " ");
        sx(buf, size, n->b);
    }
    sx_cat(buf, size, "%s", ")");
}

static char sx_buf[4096];

static const char *shape(const Ast *n)
{
    sx_buf[0] = 0;
    sx(sx_buf, sizeof sx_buf, n);
    return sx_buf;
}

/* The tree of one expression, written as `const c = EXPR`. */
static const char *expr_shape(const char *expr)
{
    char src[512];
    snprintf(src, sizeof src, "const c = %s\n", expr);
    Ast *prog = parse_ok(src);
    ck_assert_int_eq(prog->list.n, 1);
    return shape(prog->list.items[0]->a);
}

static void assert_loc(SrcLoc loc, int line, int col, int end_line, int end_col)
{
    ck_assert_int_eq(loc.line, line);
    ck_assert_int_eq(loc.col, col);
    ck_assert_int_eq(loc.end_line, end_line);
    ck_assert_int_eq(loc.end_col, end_col);
}

/* ---- expressions ---- */

static const struct {
    const char *src, *tree;
} SHAPES[] = {
    {"-x^2", "(neg (^ x 2))"},
    {"W @ y^3", "(@ W (^ y 3))"},
    {"a - b - c", "(- (- a b) c)"},
    {"a / b / c", "(/ (/ a b) c)"},
    {"a ^ b ^ c", "(^ a (^ b c))"},
    {"x ^ -2", "(^ x (neg 2))"},
    {"a ^ -b * c", "(* (^ a (neg b)) c)"},
    {"a + b * c", "(+ a (* b c))"},
    {"a * b + c", "(+ (* a b) c)"},
    {"(a + b) * c", "(* (+ a b) c)"},
    {"-a * b", "(* (neg a) b)"},
    {"- -a", "(neg (neg a))"},
    {"+x", "x"},
    {"a @ b * c", "(* (@ a b) c)"},
    {"transpose(A) @ y^3", "(@ (transpose A) (^ y 3))"},
    {"a < b + 1", "(< a (+ b 1))"},
    {"a <= b", "(<= a b)"},
    {"a > b", "(> a b)"},
    {"a >= b", "(>= a b)"},
    {"a == b", "(== a b)"},
    {"a != b", "(!= a b)"},
    {"where(2 > 1, 7, 8)", "(where (> 2 1) 7 8)"},
    {"2 * dx/dt", "(* 2 (d x))"},
    {"0.01 * sum((dy/dt)^2)", "(* 0.01 (sum (^ (d y) 2)))"},
    {"a/b", "(/ a b)"},
    {"y[1]", "(index y 1)"},
    {"M[0, 1]", "(index M 0 1)"},
    {"y[0:2]", "(index y (: 0 2))"},
    {"y[:2]", "(index y (: _ 2))"},
    {"y[1:]", "(index y (: 1 _))"},
    {"M[0:1, 1]", "(index M (: 0 1) 1)"},
    {"obs.y", "(. obs y)"},
    {"obs.y[0]", "(index (. obs y) 0)"},
    {"rings.data", "(. rings data)"},
    {"-y[0]^2", "(neg (^ (index y 0) 2))"},
    {"[1, 2]", "[ 1 2 ]"},
    {"[[1, 2], [3, 4]]", "[ [ 1 2 ] [ 3 4 ] ]"},
    {"[y[1], -y[0]]", "[ (index y 1) (neg (index y 0)) ]"},
    {"[]", "[ ]"},
    {"f()", "(f)"},
    {"dopri5(rtol = 1e-7, atol = 1e-9)", "(dopri5 (rtol= 1e-07) (atol= 1e-09))"},
    {"simulate(M, t = linspace(0, 25, 1000))", "(simulate M (t= (linspace 0 25 1000)))"},
    {"f(data = x)", "(f (data= x))"},
    {"{ x = 3, v = 0 }", "{ (x = 3) (v = 0) }"},
    {"{ z ~ normal(0, 1), logp = 0 }", "{ (z ~ (normal 0 1)) (logp = 0) }"},
    {"{ x = 1; y = 2 }", "{ (x = 1) (y = 2) }"},
    {"{\n  x = 1\n\n  y = 2,\n}", "{ (x = 1) (y = 2) }"},
    {"{}", "{ }"},
    {"f(\n  1,\n  2\n)", "(f 1 2)"},
    {"\"out.csv\"", "\"out.csv\""},
    {"2 * pi", "(* 2 pi)"},
};

START_TEST(test_expression_shapes)
{
    ck_assert_str_eq(expr_shape(SHAPES[_i].src), SHAPES[_i].tree);
}
END_TEST

START_TEST(test_expression_locations)
{
    Ast *prog = parse_ok("const c = a + b * cc\nconst d = f(x, k = 2)\n");
    Ast *sum = prog->list.items[0]->a;
    assert_loc(sum->loc, 1, 11, 1, 20);
    assert_loc(sum->b->loc, 1, 15, 1, 20);
    assert_loc(sum->b->b->loc, 1, 19, 1, 20);
    Ast *call = prog->list.items[1]->a;
    ck_assert_int_eq(call->kind, AST_CALL);
    assert_loc(call->loc, 2, 11, 2, 21);
    Ast *arg = call->list.items[1];
    ck_assert_int_eq(arg->kind, AST_ARG);
    ck_assert_str_eq(arg->name, "k");
    assert_loc(arg->loc, 2, 16, 2, 20);
    ck_assert_ptr_eq(arg->name, strtab_cstr(builder.names, "k")); /* interned */
}
END_TEST

/* ---- declarations ---- */

START_TEST(test_model_items)
{
    Ast *prog = parse_ok("model Flow {\n"
                         "  state z[2]\n"
                         "  state logp = 0\n"
                         "  state W[2, 2] = W0\n"
                         "  param W0[2, 2] ~ normal(0, 0.5)\n"
                         "  param w ~ glorot\n"
                         "  param b = 0\n"
                         "  param c\n"
                         "  const A[2, 2] = [[0, 1], [-1, 0]]\n"
                         "  const k = 0.5\n"
                         "  let h = tanh(W @ z)\n"
                         "  net f = MLP(2, 64, 2, tanh)\n"
                         "  dz/dt = f(z)\n"
                         "  dlogp/dt = -div(z)\n"
                         "}\n");
    ck_assert_int_eq(prog->list.n, 1);
    Ast *m = prog->list.items[0];
    ck_assert_int_eq(m->kind, AST_MODEL);
    ck_assert_str_eq(m->name, "Flow");
    assert_loc(m->name_loc, 1, 7, 1, 10);
    assert_loc(m->loc, 1, 1, 15, 1);
    ck_assert_int_eq(m->list.n, 13);
    Ast **it = m->list.items;

    ck_assert_int_eq(it[0]->kind, AST_STATE);
    ck_assert_int_eq(it[0]->list.n, 1);
    ck_assert_ptr_null(it[0]->a);
    assert_loc(it[0]->loc, 2, 3, 2, 12);
    assert_loc(it[0]->name_loc, 2, 9, 2, 9);
    ck_assert_int_eq(it[1]->list.n, 0);
    ck_assert_str_eq(shape(it[1]->a), "0");
    ck_assert_str_eq(shape(it[2]->list.items[1]), "2");
    ck_assert_str_eq(shape(it[2]->a), "W0");

    ck_assert_int_eq(it[3]->kind, AST_PARAM);
    ck_assert_ptr_null(it[3]->a);
    ck_assert_str_eq(shape(it[3]->b), "(normal 0 0.5)");
    ck_assert_int_eq(it[4]->b->kind, AST_NAME);
    ck_assert_str_eq(it[4]->b->name, "glorot");
    ck_assert_str_eq(shape(it[5]->a), "0");
    ck_assert_ptr_null(it[5]->b);
    ck_assert_ptr_null(it[6]->a);
    ck_assert_ptr_null(it[6]->b);

    ck_assert_int_eq(it[7]->kind, AST_CONST);
    ck_assert_int_eq(it[7]->list.n, 2);
    ck_assert_str_eq(shape(it[7]->a), "[ [ 0 1 ] [ (neg 1) 0 ] ]");
    ck_assert_int_eq(it[8]->list.n, 0);

    ck_assert_int_eq(it[9]->kind, AST_LET);
    ck_assert_str_eq(it[9]->name, "h");
    ck_assert_str_eq(shape(it[9]->a), "(tanh (@ W z))");

    ck_assert_int_eq(it[10]->kind, AST_NETUSE);
    ck_assert_str_eq(it[10]->name, "f");
    ck_assert_str_eq(shape(it[10]->a), "(MLP 2 64 2 tanh)");

    ck_assert_int_eq(it[11]->kind, AST_EQUATION);
    ck_assert_str_eq(it[11]->name, "z");
    ck_assert_int_eq(it[12]->kind, AST_EQUATION);
    ck_assert_ptr_eq(it[12]->name, strtab_cstr(builder.names, "logp"));
    assert_loc(it[12]->loc, 14, 3, 14, 10); /* covers `dlogp/dt` */
    ck_assert_str_eq(shape(it[12]->a), "(neg (div z))");
}
END_TEST

START_TEST(test_separators)
{
    /* `;` and newlines, blank lines and comments anywhere, one-line blocks */
    Ast *prog = parse_ok("\n\n# intro\nmodel DecayA { state x = 2; param k = 0.5; dx/dt = -k * x }\n\n"
                         "model B {\n\n  state x = 1;\n\n  # c\n  dx/dt = 0;\n}\n"
                         "model Empty {}\nmodel E2 {\n}\n"
                         "solve B { t = [0, 1]; solver = euler(h = 0.25); output = \"a.csv\" }   # tail\n");
    ck_assert_int_eq(prog->list.n, 5);
    ck_assert_int_eq(prog->list.items[0]->list.n, 3);
    ck_assert_int_eq(prog->list.items[1]->list.n, 2);
    ck_assert_int_eq(prog->list.items[2]->list.n, 0);
    ck_assert_int_eq(prog->list.items[3]->list.n, 0);
    ck_assert_int_eq(prog->list.items[4]->list.n, 3);
}
END_TEST

START_TEST(test_top_level)
{
    Ast *prog = parse_ok("import \"nn\"\n"
                         "option seed = 42\n"
                         "const g = 9.81\n"
                         "const B[2] = [1, 2]\n"
                         "fn softsign(x) = x / (1 + abs(x))\n"
                         "fn rhs(x, W) {\n  let h = tanh(W @ x)\n  let g = h\n  h - x\n}\n"
                         "fn one() { 1 }\n"
                         "data obs = csv(\"spiral.csv\")\n");
    ck_assert_int_eq(prog->list.n, 8);
    Ast **it = prog->list.items;
    ck_assert_int_eq(it[0]->kind, AST_IMPORT);
    ck_assert_str_eq(it[0]->str, "nn");
    ck_assert_int_eq(it[1]->kind, AST_OPTION);
    ck_assert_str_eq(it[1]->name, "seed");
    ck_assert_double_eq(it[1]->a->num, 42);
    ck_assert_int_eq(it[2]->kind, AST_CONST);
    ck_assert_double_eq_tol(it[2]->a->num, 9.81, 1e-15);
    ck_assert_int_eq(it[3]->list.n, 1);
    ck_assert_int_eq(it[4]->kind, AST_FN);
    ck_assert_int_eq(it[4]->params.n, 1);
    ck_assert_int_eq(it[4]->params.items[0]->kind, AST_NAME);
    ck_assert_str_eq(it[4]->params.items[0]->name, "x");
    ck_assert_int_eq(it[4]->list.n, 0);
    ck_assert_str_eq(shape(it[4]->a), "(/ x (+ 1 (abs x)))");
    ck_assert_int_eq(it[5]->params.n, 2);
    ck_assert_int_eq(it[5]->list.n, 2);
    ck_assert_int_eq(it[5]->list.items[0]->kind, AST_LET);
    ck_assert_str_eq(it[5]->list.items[1]->name, "g");
    ck_assert_str_eq(shape(it[5]->a), "(- h x)");
    ck_assert_int_eq(it[6]->params.n, 0);
    ck_assert_str_eq(shape(it[6]->a), "1");
    ck_assert_int_eq(it[7]->kind, AST_DATA);
    ck_assert_str_eq(it[7]->name, "obs");
    ck_assert_str_eq(shape(it[7]->a), "(csv \"spiral.csv\")");
}
END_TEST

START_TEST(test_nets)
{
    Ast *prog = parse_ok("net MLP(n_in, n_hidden, n_out, act) {\n"
                         "  net l1 = Dense(n_in, n_hidden)\n"
                         "  param W[n_out, n_in] ~ glorot\n"
                         "  forward(x) = l2(act(l1(x)))\n"
                         "}\n"
                         "net Res(n) {\n  forward(x, y) {\n    let h = x\n    h + y\n  }\n}\n");
    Ast *net = prog->list.items[0];
    ck_assert_int_eq(net->kind, AST_NET);
    ck_assert_int_eq(net->params.n, 4);
    ck_assert_str_eq(net->params.items[3]->name, "act");
    ck_assert_int_eq(net->list.n, 3);
    ck_assert_str_eq(shape(net->list.items[1]->list.items[0]), "n_out");
    Ast *fwd = net->list.items[2];
    ck_assert_int_eq(fwd->kind, AST_FORWARD);
    ck_assert_int_eq(fwd->params.n, 1);
    ck_assert_str_eq(shape(fwd->a), "(l2 (act (l1 x)))");
    Ast *fwd2 = prog->list.items[1]->list.items[0];
    ck_assert_int_eq(fwd2->params.n, 2);
    ck_assert_int_eq(fwd2->list.n, 1);
    ck_assert_str_eq(shape(fwd2->a), "(+ h y)");
}
END_TEST

START_TEST(test_directives)
{
    Ast *prog = parse_ok("train Spiral {\n"
                         "  data      = obs\n"
                         "  loss      = mean(abs(y - obs.y))\n"
                         "  batch     = windows(length = 10, count = 20)\n"
                         "  regularize = 0.01 * sum((dy/dt)^2)\n"
                         "  init = { z = moons.x, logp = 0 }\n"
                         "}\n"
                         "solve Flow { t = [1, 0]; init = { z ~ normal(0, 1), logp = 0 }; samples = 2000 }\n");
    Ast *train = prog->list.items[0];
    ck_assert_int_eq(train->kind, AST_TRAIN);
    ck_assert_str_eq(train->name, "Spiral");
    ck_assert_int_eq(train->list.n, 5);
    Ast *data = train->list.items[0];
    ck_assert_int_eq(data->kind, AST_ENTRY);
    ck_assert_int_eq(data->op, '=');
    ck_assert_ptr_eq(data->name, strtab_cstr(builder.names, "data"));
    assert_loc(data->loc, 2, 3, 2, 17);
    ck_assert_str_eq(shape(train->list.items[1]->a), "(mean (abs (- y (. obs y))))");
    ck_assert_str_eq(shape(train->list.items[3]->a), "(* 0.01 (sum (^ (d y) 2)))");
    Ast *solve = prog->list.items[1];
    ck_assert_int_eq(solve->kind, AST_SOLVE);
    ck_assert_int_eq(solve->list.n, 3);
    Ast *rec = solve->list.items[1]->a;
    ck_assert_int_eq(rec->kind, AST_RECORD);
    ck_assert_int_eq(rec->list.items[0]->op, '~');
    ck_assert_int_eq(rec->list.items[1]->op, '=');
}
END_TEST

START_TEST(test_dump)
{
    Ast *prog = parse_ok("model M {\n  state x[2] = [1, 0]\n  param k ~ normal(0, 1)\n  dx/dt = -k * x\n}\n");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    ast_dump(out, prog);
    fclose(out);
    ck_assert_str_eq(text, "1:1 PROGRAM\n"
                           "  1:1 MODEL M\n"
                           "    2:3 STATE x\n"
                           "      dim: 2:11 NUM 2\n"
                           "      2:16 LIST\n"
                           "        2:17 NUM 1\n"
                           "        2:20 NUM 0\n"
                           "    3:3 PARAM k\n"
                           "      ~: 3:13 CALL normal\n"
                           "        3:20 NUM 0\n"
                           "        3:23 NUM 1\n"
                           "    4:3 EQUATION x\n"
                           "      4:11 BINARY *\n"
                           "        4:11 NEG\n"
                           "          4:12 NAME k\n"
                           "        4:16 NAME x\n");
    free(text);
}
END_TEST

/* ---- whole files: the conformance suite and LANGUAGE.md ---- */

static char *read_text(const char *path)
{
    char why[128];
    SrcFile *f = srcfile_read(path, why, sizeof why);
    if (!f)
        return NULL;
    char *text = strdup(f->text);
    srcfile_free(f);
    return text;
}

/* The project's shared folder (beside the checkout; CMake passes its path), or
 * where $NODEC_SHARED_DIR points. A plain clone has no shared folder: then these
 * two tests say so and pass, since the conformance run in CI covers the same. */
static const char *shared_dir(void)
{
    const char *dir = getenv("NODEC_SHARED_DIR");
    return dir ? dir : NODEC_SHARED_DIR_DEFAULT;
}

static bool shared_missing(const char *path)
{
    if (access(path, R_OK) == 0)
        return false;
    fprintf(stderr, "check_parser: %s not found; skipping this test\n", path);
    return true;
}

START_TEST(test_conformance_files)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/conformance", shared_dir());
    if (shared_missing(dir))
        return;
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no conformance folder at %s (set NODEC_SHARED_DIR)", dir);
    int parsed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".node") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = read_text(path);
        ck_assert_ptr_nonnull(text);
        int before = diag.errors;
        Ast *prog = parse_named(e->d_name, text);
        free(text);
        ck_assert_ptr_nonnull(prog);
        if (strncmp(e->d_name, "22-", 3) == 0) {
            ck_assert_int_eq(diag.errors - before, 1);
            ck_assert_ptr_nonnull(strstr(diags(), "22-error-syntax.node:4:15: error: unexpected '*', "
                                                  "expected an expression\n"));
        } else {
            ck_assert_msg(diag.errors == before, "%s: %s", e->d_name, diags());
            ck_assert_int_gt(prog->list.n, 0);
        }
        parsed++;
    }
    closedir(d);
    ck_assert_int_ge(parsed, 16);
}
END_TEST

START_TEST(test_language_examples)
{
    char path[512];
    snprintf(path, sizeof path, "%s/LANGUAGE.md", shared_dir());
    if (shared_missing(path))
        return;
    char *md = read_text(path);
    ck_assert_msg(md != NULL, "no %s (set NODEC_SHARED_DIR)", path);
    int blocks = 0;
    for (char *p = md; (p = strstr(p, "```\n"));) {
        char *start = p + 4, *end = strstr(start, "```");
        ck_assert_ptr_nonnull(end);
        char *block = strndup(start, (size_t)(end - start));
        /* the model template writes `dx/dt = ...` as a placeholder */
        for (char *dots; (dots = strstr(block, "= ..."));)
            memcpy(dots, "= 0  ", 5);
        Ast *prog = parse_named("LANGUAGE.md", block);
        ck_assert_msg(diag.errors == 0, "example %d:\n%s\n%s", blocks + 1, block, diags());
        ck_assert_int_gt(prog->list.n, 0);
        free(block);
        blocks++;
        p = end + 3;
    }
    free(md);
    ck_assert_int_ge(blocks, 9);
}
END_TEST

/* ---- syntax errors ---- */

START_TEST(test_error_exact_message)
{
    parse_named("bad.node", "# comment\nmodel Bad {\n  state x = 1\n  dx/dt = 2 * * x\n}\n");
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_str_eq(diags(), "bad.node:4:15: error: unexpected '*', expected an expression\n"
                              "    4 |   dx/dt = 2 * * x\n"
                              "      |               ^\n");
}
END_TEST

static const struct {
    const char *src, *message;
} ERRORS[] = {
    {"model M {\n  state x = 1\n  dx/dt = x +\n}\n",
     "t.node:3:14: error: unexpected end of line, expected an expression\n"},
    {"model M { state x = 1 }}\n", "t.node:1:24: error: unexpected '}', expected end of line\n"},
    {"model M { state = 3 }\n", "t.node:1:17: error: unexpected '=', expected a name or derivative\n"},
    {"model M { x = 3 }\n",
     "t.node:1:11: error: expected an equation of the form dx/dt = ...\n"},
    {"model M { dx/ds = 3 }\n",
     "t.node:1:11: error: expected an equation of the form dx/dt = ...\n"
     "    1 | model M { dx/ds = 3 }\n"
     "      |           ^~~~~\n"},
    {"x = 1\n", "t.node:1:1: error: unexpected name 'x', expected a declaration such as 'model' or 'solve'\n"},
    {"model A {} model B {}\n", "t.node:1:12: error: unexpected 'model', expected end of line\n"},
    {"const c = a < b < c\n", "t.node:1:17: error: unexpected '<': comparisons do not chain (write "
                              "a < b < c as (a < b) * (b < c))\n"},
    {"const c = f(a b)\n", "t.node:1:15: error: unexpected name 'b', expected an operator, '=', ')' or ','\n"},
    {"solve M { t = [0, 1] solver = rk4 }\n",
     "t.node:1:22: error: unexpected name 'solver', expected an operator or end of line\n"},
    {"const c = 1 +\n", "t.node:1:14: error: unexpected end of line, expected an expression\n"},
    {"const c = (1 +", "t.node:1:15: error: unexpected end of file, expected an expression\n"},
    {"model M {\n  state x = 1\n", "t.node:2:14: error: unexpected end of file, expected '}'\n"
                                   "    2 |   state x = 1\n"
                                   "      |              ^\n"
                                   "t.node:1:9: note: to close '{' at 1:9\n"},
    {"solve M {\n  t = [0,\n  1\n", "t.node:3:4: error: unexpected end of file, expected ']'\n"},
    {"const c = f(1,\n  [2, 3)\n}\n", "t.node:2:8: error: unexpected ')', expected an operator, ',' or ']'\n"
                                     "    2 |   [2, 3)\n"
                                     "      |        ^\n"
                                     "t.node:2:3: note: to close '[' at 2:3\n"},
    {"import nn\n", "t.node:1:8: error: unexpected name 'nn', expected a string\n"},
    {"model M { net f = 3 }\n", "t.node:1:19: error: unexpected number '3', expected a name\n"},
    {"const c = y[]\n", "t.node:1:13: error: unexpected ']', expected an expression or ':'\n"},
    {"fn f(x) {\n  let y = 2\n}\n", "t.node:3:1: error: unexpected '}', expected an expression, end of line or 'let'\n"},
};

START_TEST(test_error_messages)
{
    parse(ERRORS[_i].src);
    ck_assert_msg(diag.errors >= 1, "no error for %s", ERRORS[_i].src);
    ck_assert_msg(strncmp(diags(), ERRORS[_i].message, strlen(ERRORS[_i].message)) == 0,
                  "for:\n%s\ngot:\n%s\nwant:\n%s", ERRORS[_i].src, diags(), ERRORS[_i].message);
}
END_TEST

START_TEST(test_error_recovery)
{
    /* four independent mistakes: each reported once, the good items kept */
    Ast *prog = parse("model A {\n"
                      "  state x = 1\n"
                      "  dx/dt = 2 * * x\n"
                      "  state y = (1 + 2\n"
                      "  dy/dt = y\n"
                      "}\n"
                      "solve A { t = [0, 1]; solver = ; output = \"a.csv\" }\n"
                      "model B { state z = 1 $ 2; dz/dt = z }\n"
                      "solve B { t = [0, 1]; init = { z = 1 2 } }\n"
                      "model {\n  state x = 1\n  dx/dt = x\n}\n"
                      "model C { state c = 1 }\n");
    ck_assert_msg(diag.errors == 6, "%s", diags());
    const char *want[] = {
        "t.node:3:15: error: unexpected '*', expected an expression\n",
        "t.node:5:3: error: unexpected 'dy/dt', expected an operator or ')'\n",
        "t.node:4:13: note: to close '(' at 4:13\n",
        "t.node:7:32: error: unexpected ';', expected an expression\n",
        "t.node:8:23: error: unexpected character '$'\n",
        "t.node:9:38: error: unexpected number '2', expected an operator, end of line or ','\n",
        "t.node:10:7: error: unexpected '{', expected a name\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(diags(), want[i]), "missing %s in:\n%s", want[i], diags());
    ck_assert_int_eq(prog->list.n, 5);
    ck_assert_int_eq(prog->list.items[0]->list.n, 1); /* state x; the broken lines are dropped */
    ck_assert_int_eq(prog->list.items[1]->list.n, 2);
    ck_assert_int_eq(prog->list.items[2]->list.n, 1);
    ck_assert_int_eq(prog->list.items[3]->list.n, 1);
    ck_assert_str_eq(prog->list.items[4]->name, "C");
}
END_TEST

START_TEST(test_error_limit)
{
    /* 30 bad lines: reported up to DIAG_MAX_ERRORS, all counted */
    char src[2048] = "model M {\n";
    for (int i = 0; i < 30; i++)
        strcat(src, "  state = 1\n");
    strcat(src, "}\n");
    parse(src);
    ck_assert_int_eq(diag.errors, 30);
    ck_assert_int_eq(diag.dropped, 10);
}
END_TEST

/* ---- garbage in, errors out, no crash ---- */

START_TEST(test_deep_nesting)
{
    enum { DEPTH = 10000 };
    char *src = malloc(2 * DEPTH + 32);
    strcpy(src, "const c = ");
    size_t n = strlen(src);
    memset(src + n, '(', DEPTH);
    strcpy(src + n + DEPTH, "1\n");
    parse(src);
    free(src);
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_ptr_nonnull(strstr(diags(), "error: nesting too deep: more than 10000"));
    ck_assert_ptr_nonnull(strstr(diags(), "t.node:1:"));
}
END_TEST

/* A line past LEX_MAX_LINE bytes (a comment here) is one error at the byte
 * that crosses the limit, and the file ends there. */
START_TEST(test_line_limit)
{
    size_t n = (1u << 20) + 100;
    char *src = malloc(n + 64);
    strcpy(src, "const c = 1 # ");
    size_t at = strlen(src);
    memset(src + at, 'x', n - at);
    strcpy(src + n, "\nconst d = nope\n");
    parse(src);
    free(src);
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_ptr_nonnull(strstr(diags(), "t.node:1:1048577: error: line 1 is longer than the "
                                          "limit of 1048576 bytes"));
    ck_assert_int_lt((int)strlen(diags()), 600); /* the caret line is a window, not the line */
}
END_TEST

/* Past LEX_MAX_TOKENS tokens: one error at the token, none for the statement
 * the limit cuts short. */
START_TEST(test_token_limit)
{
    size_t pairs = (1u << 22) + 10; /* ";\n": two tokens each */
    char *src = malloc(2 * pairs + 16);
    for (size_t i = 0; i < pairs; i++)
        memcpy(src + 2 * i, ";\n", 2);
    strcpy(src + 2 * pairs - 8, "const ");
    parse(src);
    free(src);
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_ptr_nonnull(strstr(diags(), "t.node:4194305:1: error: the file has more than "
                                          "8388608 tokens"));
}
END_TEST

START_TEST(test_moderate_nesting_parses)
{
    char src[8192] = "const c = ";
    for (int i = 0; i < 2000; i++)
        strcat(src, "(");
    strcat(src, "-x");
    for (int i = 0; i < 2000; i++)
        strcat(src, ")");
    Ast *prog = parse_ok(src);
    ck_assert_str_eq(shape(prog->list.items[0]->a), "(neg x)");
}
END_TEST

/* A long left-associative chain grows the tree, not the parser's stack: the
 * parser caps the depth so that later recursive passes are safe. */
START_TEST(test_long_chain)
{
    enum { TERMS = 50000 };
    char *src = malloc(4 * TERMS + 64);
    strcpy(src, "const c = 1");
    for (int i = 1; i < TERMS; i++)
        strcat(src + 4 * i, " + 1");
    strcat(src, "\nconst d = 2\n");
    Ast *prog = parse(src);
    free(src);
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_ptr_nonnull(strstr(diags(), "t.node:1:11: error: expression too long: more than 1001 "
                                          "terms joined by '+' and '-' (split it into lets)"));
    ck_assert_int_eq(prog->list.n, 1); /* the next statement is kept */
    ck_assert_str_eq(prog->list.items[0]->name, "d");
}
END_TEST

/* Depth from nesting (not a flat chain) is called nesting. */
START_TEST(test_nested_too_deeply)
{
    char src[4096] = "const c = ";
    for (int i = 0; i < 1100; i++)
        strcat(src, "-");
    strcat(src, "x\n");
    parse(src);
    ck_assert_int_eq(diag.errors, 1);
    ck_assert_ptr_nonnull(strstr(diags(), "error: expression nested too deeply (more than 1000 levels)"));
}
END_TEST

START_TEST(test_chain_at_limit)
{
    char src[8192] = "const c = x";
    for (int i = 1; i < AST_MAX_DEPTH; i++)
        strcat(src + 2 * i, "+x");
    Ast *prog = parse_ok(src);
    ck_assert_int_eq(prog->list.items[0]->a->depth, AST_MAX_DEPTH - 1);
}
END_TEST

START_TEST(test_random_bytes)
{
    srand(1234 + (unsigned)_i);
    char src[2048];
    int len = 1 + rand() % (int)(sizeof src - 1);
    for (int i = 0; i < len - 1; i++) {
        /* half the time draw from the language's own characters, to get deeper */
        static const char alphabet[] = "model state dx/dt = ()[]{},;:.+-*/^@<>=~#\"\n 0123.5e x y";
        src[i] = rand() % 2 ? (char)(1 + rand() % 255) : alphabet[rand() % (int)(sizeof alphabet - 1)];
    }
    src[len - 1] = 0;
    Ast *prog = parse(src);
    ck_assert_ptr_nonnull(prog);
    ck_assert_int_ge(diag.errors, 0);
}
END_TEST

START_TEST(test_truncated_files)
{
    static const char *program =
        "option seed = 0\n"
        "model TrueSpiral {\n"
        "  state y[2] = [2, 0]\n"
        "  const A[2, 2] = [[-0.1, 2.0], [-2.0, -0.1]]\n"
        "  dy/dt = transpose(A) @ y^3\n"
        "}\n"
        "data obs = simulate(TrueSpiral, t = linspace(0, 25, 1000), solver = dopri5(rtol = 1e-7))\n"
        "train Spiral { data = obs; loss = mean(abs(y - obs.y)); init = { y ~ normal(0, 1) } }\n"
        "fn f(x) {\n  let h = \"s\\n\"\n  h\n}\n";
    size_t len = strlen(program);
    for (size_t cut = 0; cut <= len; cut++) {
        char *prefix = strndup(program, cut);
        Ast *prog = parse(prefix);
        ck_assert_ptr_nonnull(prog);
        free(prefix);
    }
    /* the whole file is fine */
    int before = diag.errors;
    parse(program);
    ck_assert_int_eq(diag.errors, before);
}
END_TEST

Suite *parser_suite(void);
Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *exprs = tcase_create("expressions");
    tcase_add_checked_fixture(exprs, setup, teardown);
    tcase_add_loop_test(exprs, test_expression_shapes, 0, (int)(sizeof SHAPES / sizeof SHAPES[0]));
    tcase_add_test(exprs, test_expression_locations);
    suite_add_tcase(s, exprs);

    TCase *decls = tcase_create("declarations");
    tcase_add_checked_fixture(decls, setup, teardown);
    tcase_add_test(decls, test_model_items);
    tcase_add_test(decls, test_separators);
    tcase_add_test(decls, test_top_level);
    tcase_add_test(decls, test_nets);
    tcase_add_test(decls, test_directives);
    tcase_add_test(decls, test_dump);
    tcase_add_test(decls, test_conformance_files);
    tcase_add_test(decls, test_language_examples);
    suite_add_tcase(s, decls);

    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_error_exact_message);
    tcase_add_loop_test(errors, test_error_messages, 0, (int)(sizeof ERRORS / sizeof ERRORS[0]));
    tcase_add_test(errors, test_error_recovery);
    tcase_add_test(errors, test_error_limit);
    suite_add_tcase(s, errors);

    TCase *garbage = tcase_create("garbage");
    tcase_add_checked_fixture(garbage, setup, teardown);
    tcase_set_timeout(garbage, 60);
    tcase_add_test(garbage, test_deep_nesting);
    tcase_add_test(garbage, test_line_limit);
    tcase_add_test(garbage, test_token_limit);
    tcase_add_test(garbage, test_moderate_nesting_parses);
    tcase_add_test(garbage, test_long_chain);
    tcase_add_test(garbage, test_nested_too_deeply);
    tcase_add_test(garbage, test_chain_at_limit);
    tcase_add_loop_test(garbage, test_random_bytes, 0, 50);
    tcase_add_test(garbage, test_truncated_files);
    suite_add_tcase(s, garbage);
    return s;
}
