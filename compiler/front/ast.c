/* AST construction, names and the readable dump (`--dump=ast`), and the entry
 * point that runs the flex lexer and bison parser over one source file. The
 * nodes and their arrays live in the compilation's arena. */
#include "ast.h"

#include <stdlib.h>
#include <string.h>

#include "parser.h"

Ast *ast_new(AstBuilder *b, AstKind kind, SrcLoc loc)
{
    Ast *n = arena_alloc(b->arena, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    n->name_loc = loc;
    return n;
}

/* The capacity is implied by n (4, then powers of two), so AstList needs no
 * cap field; a grown array abandons the old one to the arena. */
void ast_append(AstBuilder *b, AstList *list, Ast *item)
{
    int n = list->n;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        int cap = n == 0 ? 4 : 2 * n;
        Ast **items = arena_alloc(b->arena, (size_t)cap * sizeof *items);
        if (n)
            memcpy(items, list->items, (size_t)n * sizeof *items);
        list->items = items;
    }
    list->items[list->n++] = item;
}

const char *ast_kind_name(AstKind kind)
{
    static const char *const names[] = {
        [AST_NUM] = "NUM",         [AST_STR] = "STR",         [AST_NAME] = "NAME",
        [AST_BINARY] = "BINARY",   [AST_NEG] = "NEG",         [AST_CALL] = "CALL",
        [AST_ARG] = "ARG",         [AST_INDEX] = "INDEX",     [AST_SLICE] = "SLICE",
        [AST_LIST] = "LIST",       [AST_FIELD] = "FIELD",     [AST_DERIV] = "DERIV",
        [AST_RECORD] = "RECORD",   [AST_ENTRY] = "ENTRY",     [AST_STATE] = "STATE",
        [AST_PARAM] = "PARAM",     [AST_CONST] = "CONST",     [AST_LET] = "LET",
        [AST_NETUSE] = "NETUSE",   [AST_EQUATION] = "EQUATION", [AST_FORWARD] = "FORWARD", [AST_WHEN] = "WHEN",
        [AST_IMPORT] = "IMPORT",   [AST_OPTION] = "OPTION",   [AST_FN] = "FN",
        [AST_NET] = "NET",         [AST_MODEL] = "MODEL",     [AST_SOLVE] = "SOLVE",
        [AST_TRAIN] = "TRAIN",     [AST_EVALUATE] = "EVALUATE", [AST_DATA] = "DATA",
        [AST_PROGRAM] = "PROGRAM", [AST_PLOT] = "PLOT",
    };
    if ((unsigned)kind < sizeof names / sizeof names[0] && names[kind])
        return names[kind];
    return "?";
}

const char *ast_op_text(int op)
{
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_POW: return "^";
    case OP_MATMUL: return "@";
    case OP_LT: return "<";
    case OP_GT: return ">";
    case OP_LE: return "<=";
    case OP_GE: return ">=";
    case OP_EQ: return "==";
    case OP_NE: return "!=";
    case '=': return "=";
    case '~': return "~";
    default: return "?";
    }
}

static void dump_node(FILE *out, const Ast *n, int depth, const char *role);

static void dump_list(FILE *out, const AstList *l, int depth, const char *role)
{
    for (int i = 0; i < l->n; i++)
        dump_node(out, l->items[i], depth, role);
}

/* The shortest of %.15g and %.17g that reads back exactly. */
static void dump_number(FILE *out, double x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", x);
    if (strtod(buf, NULL) != x)
        snprintf(buf, sizeof buf, "%.17g", x);
    fprintf(out, " %s", buf);
}

/* The words after the kind: name, operator, value or parameter list. */
static void dump_head(FILE *out, const Ast *n)
{
    switch (n->kind) {
    case AST_NUM: dump_number(out, n->num); break;
    case AST_STR:
    case AST_PLOT:
    case AST_IMPORT: fprintf(out, " \"%s\"", n->str ? n->str : ""); break;
    case AST_BINARY: fprintf(out, " %s", ast_op_text(n->op)); break;
    case AST_ENTRY: fprintf(out, " %s %s", n->name, ast_op_text(n->op)); break;
    default:
        if (n->name)
            fprintf(out, " %s", n->name);
        break;
    }
    if (n->kind == AST_FN || n->kind == AST_NET || n->kind == AST_FORWARD) {
        fputc('(', out);
        for (int i = 0; i < n->params.n; i++)
            fprintf(out, "%s%s", i ? ", " : "", n->params.items[i]->name);
        fputc(')', out);
    }
}

/* Which list holds dimensions, so the dump can tell `x[2]` from `x = [2]`. */
static const char *list_role(AstKind kind)
{
    switch (kind) {
    case AST_STATE:
    case AST_PARAM:
    case AST_CONST: return "dim";
    case AST_FN:
    case AST_FORWARD: return "let";
    default: return NULL;
    }
}

static void dump_node(FILE *out, const Ast *n, int depth, const char *role)
{
    fprintf(out, "%*s", 2 * depth, "");
    if (!n) {
        fprintf(out, "%s%s(null)\n", role ? role : "", role ? ": " : "");
        return;
    }
    if (role)
        fprintf(out, "%s: ", role);
    fprintf(out, "%d:%d %s", n->loc.line, n->loc.col, ast_kind_name(n->kind));
    dump_head(out, n);
    fputc('\n', out);
    dump_list(out, &n->list, depth + 1, list_role(n->kind));
    if (n->kind == AST_SLICE) {
        if (n->a)
            dump_node(out, n->a, depth + 1, "lo");
        if (n->b)
            dump_node(out, n->b, depth + 1, "hi");
        return;
    }
    if (n->a)
        dump_node(out, n->a, depth + 1, n->kind == AST_PARAM ? "=" : n->kind == AST_WHEN ? "if" : NULL);
    if (n->b)
        dump_node(out, n->b, depth + 1, n->kind == AST_PARAM ? "~" : NULL);
}

void ast_dump(FILE *out, const Ast *node)
{
    dump_node(out, node, 0, NULL);
}

Ast *parse_file(AstBuilder *b, const SrcFile *file, Diag *diag)
{
    SrcLoc start = {file, 1, 1, 1, 1};
    Parser p = {.b = b, .diag = diag, .file = file};
    p.program = ast_new(b, AST_PROGRAM, start);
    lex_begin(&p);
    yyparse(p.scanner, &p); /* errors are in diag; the items parsed so far stay */
    lex_end(&p);
    return p.program;
}
