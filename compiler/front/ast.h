/* The abstract syntax tree the parser builds and sema reads. One node type with a
 * kind tag keeps the parser's actions short; the table below says which fields
 * each kind uses. All nodes live in the compilation's arena. */
#ifndef NODEC_AST_H
#define NODEC_AST_H

#include "arena.h"
#include "diag.h"

typedef enum AstKind {
    /* ---- expressions ---- */
    AST_NUM,     /* num */
    AST_STR,     /* str (unquoted, escapes resolved) */
    AST_NAME,    /* name */
    AST_BINARY,  /* op (AstOp), a, b */
    AST_NEG,     /* a  (unary minus; unary plus is dropped by the parser) */
    AST_CALL,    /* name (callee), list = args; an arg is an expr, or AST_ARG for `key = value` */
    AST_ARG,     /* name = key, a = value   (named argument inside a call) */
    AST_INDEX,   /* a = base, list = one or two index items: exprs or AST_SLICE */
    AST_SLICE,   /* a = lo, b = hi (either may be NULL: `y[:2]`, `y[1:]`) */
    AST_LIST,    /* list = elements: `[1, 2]`, `[[1, 2], [3, 4]]` (rows are AST_LIST) */
    AST_FIELD,   /* a = base, name = member: `obs.y`, `rings.label` */
    AST_DERIV,   /* name = state: `dx/dt` written inside an expression (train blocks) */
    AST_RECORD,  /* list = AST_ENTRY: `{ x = 3, z ~ normal(0, 1) }` */
    AST_ENTRY,   /* name = key, op = '=' or '~', a = value; also a directive's `key = value` line
                    (str = "metric" or "sample" on `metric m = e` and `sample z ~ normal(..)`;
                    op = '{' on `encoder h[16] { ... }`: list = the dimensions, a = the record) */

    /* ---- declarations (inside models, nets, fns) ---- */
    AST_STATE,   /* name, list = dims (exprs, empty for a scalar), a = initial value or NULL;
                  * op = 1 for `state dx/dt = ...`, a second-order state's initial velocity:
                  * name = "dx/dt", str = the position "x", no dims (x's shape) */
    AST_PARAM,   /* name, list = dims, a = `= expr` or NULL, b = `~ dist` (AST_CALL or AST_NAME) or NULL */
    AST_CONST,   /* name, list = dims (may be empty even for a tensor value), a = value */
    AST_LET,     /* name, a = value */
    AST_NETUSE,  /* name = instance, a = AST_CALL of the template: `net f = MLP(2, 50, 2, tanh)` */
    AST_EQUATION,/* name = state (the x of dx/dt), a = right-hand side; loc covers `dx/dt`;
                  * op = 2 for a second-order equation `d2x/dt2 = ...` (else 0);
                  * b = the diffusion g of `dx = f dt + g dW` (NULL for dx/dt = ...) */
    AST_FORWARD, /* params = argument names, list = AST_LET body lines, a = result */
    AST_WHEN,    /* a = condition (`h < 0`), list = actions: AST_ENTRY `x = expr` (name = the
                  * state, a = its new value) or AST_NAME (`terminate`) */

    /* ---- top level ---- */
    AST_IMPORT,  /* str = module ("nn") */
    AST_OPTION,  /* name, a = value */
    AST_FN,      /* name, params, list = AST_LET lines (block form), a = result */
    AST_NET,     /* name, params = template parameters, list = items */
    AST_MODEL,   /* name, list = items */
    AST_SOLVE,   /* name = model, list = AST_ENTRY lines */
    AST_TRAIN,   /* name = model, list = AST_ENTRY lines */
    AST_EVALUATE,/* name = model, list = AST_ENTRY lines (str = "metric" on a metric's) */
    AST_DATA,    /* name, a = value (a call: csv("f.csv") or simulate(...)) */
    AST_PLOT,    /* str = the picture's file, name_loc = its string, list = AST_ENTRY lines */
    AST_PROGRAM, /* list = top-level items, in source order */
} AstKind;

/* Binary operators; comparisons yield 0 or 1. */
typedef enum AstOp {
    OP_ADD = '+', OP_SUB = '-', OP_MUL = '*', OP_DIV = '/', OP_POW = '^', OP_MATMUL = '@',
    OP_LT = '<', OP_GT = '>', OP_LE = 256, OP_GE, OP_EQ, OP_NE,
} AstOp;

typedef struct AstList {
    struct Ast **items;
    int n;
} AstList;

typedef struct Ast {
    AstKind kind;
    SrcLoc loc;        /* the whole construct; for declarations, loc of the name is name_loc */
    SrcLoc name_loc;
    const char *name;  /* interned */
    const char *str;
    double num;
    int op;
    struct Ast *a, *b;
    AstList list;
    AstList params;    /* AST_NAME nodes */
    int depth;         /* expressions: height of the subtree; the parser caps it at
                        * AST_MAX_DEPTH so recursive passes cannot overflow the stack */
} Ast;

enum { AST_MAX_DEPTH = 1000 };

typedef struct AstBuilder {
    Arena *arena;
    Strtab *names;
} AstBuilder;

Ast *ast_new(AstBuilder *b, AstKind kind, SrcLoc loc);
void ast_append(AstBuilder *b, AstList *list, Ast *item);
const char *ast_kind_name(AstKind kind);
const char *ast_op_text(int op); /* "+", "<=", ... */

/* Readable dump (`--dump=ast`): one node per line, indented, with line:col. */
void ast_dump(FILE *out, const Ast *node);

/* Parses a whole source file into an AST_PROGRAM; syntax errors go to diag.
 * Returns NULL only when nothing could be parsed at all. */
Ast *parse_file(AstBuilder *b, const SrcFile *file, Diag *diag);

/* `--dump=tokens`: one token per line as `line:col kind text`; lexical errors
 * go to diag. */
void lex_dump_tokens(FILE *out, const SrcFile *file, Diag *diag);

#endif
