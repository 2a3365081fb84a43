/* The grammar of the .node language (LANGUAGE.md): a pure bison parser with
 * locations that builds the AST of ast.h in the compilation's arena. Statements
 * end at a NEWLINE or ';' (the lexer inserts one before '}' and at end of file),
 * which gives every list an `error term` recovery point: one mistake costs one
 * statement, and several errors in one file are all reported. */

%code requires {
#include "ast.h"

#include <stdbool.h>

/* One open bracket, remembered so an unclosed one can be named (Lua's check_match). */
typedef struct LexBracket {
    char c;
    SrcLoc loc;
} LexBracket;

/* The parser's and the lexer's shared state for one file. */
typedef struct Parser {
    AstBuilder *b;
    Diag *diag;
    const SrcFile *file;
    void *scanner;          /* yyscan_t */
    Ast *program;           /* top-level items are appended as they are parsed */
    /* lexer position */
    int line, col;
    long off;
    /* the last token returned, for messages and newline rules */
    int last_tok;
    long tok_off;
    int tok_len;
    int tok_virtual;        /* the last NEWLINE was inserted, not written */
    SrcLoc last_end;        /* the last token that was not a NEWLINE */
    /* open brackets: newlines count only at top level and directly inside { } */
    LexBracket *brackets;
    int depth, cap;
    LexBracket last_popped; /* by the last closing bracket */
    LexBracket unclosed;    /* a ( or [ that a '}' closed implicitly */
    long n_tokens;          /* returned so far, against LEX_MAX_TOKENS */
    bool stopped;           /* past a limit of the lexer (reported): the rest is end of file */
} Parser;

/* A file's bounds (docs/language.md, "Limits"), each refused with its own
 * message: the bytes of one line (a caret line, the columns of a location)
 * and the tokens of one file (what the parser's values and the AST hold). */
#define LEX_MAX_LINE (1L << 20)
#define LEX_MAX_TOKENS (1L << 23)
}

%code provides {
/* lexer.l */
int yylex(YYSTYPE *lval, SrcLoc *lloc, void *scanner);
void lex_begin(Parser *p);
void lex_end(Parser *p);
/* parser.y: the name of a token kind, as messages and --dump=tokens show it */
const char *parse_token_name(int token);
}

%code {
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void yyerror(SrcLoc *loc, void *scanner, Parser *p, const char *msg);

/* The parser's stack, in states (bison's default, said here so its message
 * can name it). */
#define YYMAXDEPTH 10000

/* Spans first..last of the right-hand side and keeps the file; an empty rule
 * gets an empty location just after the previous symbol. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                    \
    do {                                                               \
        if (N) {                                                       \
            (Cur) = YYRHSLOC(Rhs, 1);                                  \
            (Cur).end_line = YYRHSLOC(Rhs, N).end_line;                \
            (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                  \
        } else {                                                       \
            (Cur) = YYRHSLOC(Rhs, 0);                                  \
            (Cur).line = (Cur).end_line;                               \
            (Cur).col = (Cur).end_col + 1;                             \
            (Cur).end_col = (Cur).col;                                 \
        }                                                              \
    } while (0)

static Ast *node(Parser *p, AstKind kind, SrcLoc loc)
{
    return ast_new(p->b, kind, loc);
}

static Ast *named(Parser *p, AstKind kind, SrcLoc loc, const char *name, SrcLoc name_loc)
{
    Ast *n = ast_new(p->b, kind, loc);
    n->name = name;
    n->name_loc = name_loc;
    return n;
}

static Ast *binary(Parser *p, int op, Ast *a, Ast *b, SrcLoc loc)
{
    Ast *n = ast_new(p->b, AST_BINARY, loc);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

/* The source text of an operand, for a message that quotes the user's own
 * expression: in parentheses when it is itself an operation; "x" when it spans
 * lines or is long. */
static const char *operand_text(Parser *p, const Ast *e)
{
    SrcLoc at = e->loc;
    const char *s = at.file ? at.file->text : NULL;
    for (int line = 1; s && line < at.line; line++)
        if ((s = strchr(s, '\n')))
            s++;
    int n = at.end_col - at.col + 1;
    if (!s || at.line != at.end_line || n <= 0 || n > 40)
        return "x";
    const char *text = strtab_intern(p->b->names, s + at.col - 1, (size_t)n);
    if (e->kind != AST_BINARY && e->kind != AST_NEG)
        return text;
    char *wrapped = arena_alloc(p->b->arena, (size_t)n + 3);
    snprintf(wrapped, (size_t)n + 3, "(%s)", text);
    return wrapped;
}

/* `a ** b`: Python's power operator. Reported at the '**', then read as a ^ b
 * so that the rest of the file is checked as meant. */
static Ast *power_misspelled(Parser *p, Ast *a, Ast *b, SrcLoc op, SrcLoc loc)
{
    diag_error(p->diag, op, "'**' is not an operator in nodec: write %s^%s", operand_text(p, a),
               operand_text(p, b));
    return binary(p, OP_POW, a, b, loc);
}

static Ast *unary(Parser *p, AstKind kind, Ast *a, SrcLoc loc)
{
    Ast *n = ast_new(p->b, kind, loc);
    n->a = a;
    return n;
}

static AstList list1(Parser *p, Ast *item)
{
    AstList l = {0};
    ast_append(p->b, &l, item);
    return l;
}

static AstList list_add(Parser *p, AstList l, Ast *item)
{
    if (item)
        ast_append(p->b, &l, item);
    return l;
}

/* The operators of a flat chain like `a + b - c + ...` (left-associative, so the
 * tree is as deep as the chain is long, which is what the depth limit protects),
 * or NULL when n's depth comes from nesting. */
static const char *op_family(const Ast *n)
{
    if (n->kind != AST_BINARY)
        return NULL;
    switch (n->op) {
    case OP_ADD: case OP_SUB: return "'+' and '-'";
    case OP_MUL: case OP_DIV: case OP_MATMUL: return "'*', '/' and '@'";
    default: return NULL;
    }
}

static const char *flat_chain(const Ast *n)
{
    const char *family = op_family(n);
    int len = 0;
    for (const Ast *k = n; k && op_family(k) == family && family; k = k->a)
        len++;
    return len > AST_MAX_DEPTH / 2 ? family : NULL;
}

/* Height of a new expression node from its children; deeper than
 * AST_MAX_DEPTH is an error (a long `1 + 1 + ...` chain grows the tree, not
 * the parser's stack, and later passes recurse over the tree). */
static bool too_deep(Parser *p, Ast *n)
{
    int d = 0;
    if (n->a && n->a->depth > d)
        d = n->a->depth;
    if (n->b && n->b->depth > d)
        d = n->b->depth;
    for (int i = 0; i < n->list.n; i++)
        if (n->list.items[i]->depth > d)
            d = n->list.items[i]->depth;
    n->depth = d + 1;
    if (n->depth <= AST_MAX_DEPTH)
        return false;
    const char *chain = flat_chain(n);
    if (chain)
        diag_error(p->diag, n->loc, "expression too long: more than %d terms joined by %s (split it "
                   "into lets)", AST_MAX_DEPTH + 1, chain); /* n operators join n + 1 terms */
    else
        diag_error(p->diag, n->loc, "expression nested too deeply (more than %d levels)",
                   AST_MAX_DEPTH);
    return true;
}

#define CHECK_DEPTH(n)           \
    do {                         \
        if (too_deep(p, (n)))    \
            YYERROR;             \
    } while (0)

/* Error recovery skips to the end of a statement at the list's own nesting
 * level (0 at top level, 1 inside a model, net, solve or train block): a
 * newline inside a record or a fn body must not restart the list, or one
 * mistake would be reported again and again. The term was just lexed, so the
 * lexer's depth is the term's. */
static bool resync(const Parser *p, int depth)
{
    return p->depth == depth;
}

/* The two words of a TK_DERIV2 token's text `dNx / dtM` (blanks optional). */
static void deriv2_words(Parser *p, const char *text, const char **num, const char **den)
{
    size_t a = strcspn(text, " \t/");
    const char *d = strrchr(text, '/') + 1;
    d += strspn(d, " \t");
    *num = strtab_intern(p->b->names, text, a);
    *den = strtab_intern(p->b->names, d, strlen(d));
}

/* `d2x/dt2 = ...`: x's second-order equation (op = 2). Another order is said, and
 * the equation is read as a second-order one so that checking goes on. */
static Ast *deriv2_equation(Parser *p, SrcLoc loc, const char *text)
{
    const char *num, *den;
    deriv2_words(p, text, &num, &den);
    char *end;
    long order = strtol(num + 1, &end, 10);
    if (order != 2 || strcmp(den, "dt2") != 0)
        diag_error(p->diag, loc, "'%s' is not a derivative nodec knows: equations are first "
                   "order (dx/dt) or second order (d2x/dt2)", text);
    Ast *eq = named(p, AST_EQUATION, loc, strtab_intern(p->b->names, end, strlen(end)), loc);
    eq->op = 2;
    return eq;
}

/* `d2x/dt2` inside an expression: the division of the names d2x and dt2, as
 * the contract's identifiers read it (a second derivative is not a value). */
static Ast *deriv2_division(Parser *p, SrcLoc loc, const char *text)
{
    const char *num, *den;
    deriv2_words(p, text, &num, &den);
    Ast *d = binary(p, OP_DIV, named(p, AST_NAME, loc, num, loc), named(p, AST_NAME, loc, den, loc), loc);
    d->depth = d->a->depth + 1;
    return d;
}

static const char *velocity_name(Parser *p, const char *pos)
{
    size_t n = strlen(pos) + 4;
    char *name = arena_alloc(p->b->arena, n + 1);
    snprintf(name, n + 1, "d%s/dt", pos);
    return strtab_intern(p->b->names, name, n);
}

/* `sample z ~ ...` or `encoder h { ... }` (or another word before a name) in a model
 * or a net: what the word is, or what a model line may be. */
static void block_statement_misplaced(Parser *p, const char *word, SrcLoc word_loc, SrcLoc all)
{
    if (strcmp(word, "sample") == 0 || strcmp(word, "encoder") == 0)
        diag_error(p->diag, all, "%s is a statement of train and evaluate blocks, not of a "
                   "model%s", word,
                   strcmp(word, "sample") == 0
                       ? " (a solve draws initial states with init = { z ~ normal(0, 1) })"
                       : "");
    else
        diag_error(p->diag, word_loc, "unexpected name '%s': a model line declares (state, "
                   "param, const, let, net), gives an equation (dx/dt = ...) or an event (when)",
                   word);
}

/* `state dx/dt = ...`: the initial velocity of the second-order state x. The
 * state is named "dx/dt" (what its CSV columns and messages say); str keeps x. */
static Ast *velocity_state(Parser *p, SrcLoc loc, const char *pos, SrcLoc name_loc)
{
    Ast *s = named(p, AST_STATE, loc, velocity_name(p, pos), name_loc);
    s->str = pos;
    s->op = 1;
    return s;
}

/* `dx = f dt + g dW` (or `g dW + f dt`): a stochastic differential equation
 * (docs/language.md, "Stochastic differential equations"), an AST_EQUATION
 * whose b is the diffusion g. `dt` and `dW` are words only here, so no name
 * is reserved; the whole expression before each is its coefficient. */
static Ast *sde_equation(Parser *p, const char *lhs, SrcLoc lhs_loc, Ast *e1, const char *w1,
                         SrcLoc w1_loc, Ast *e2, const char *w2, SrcLoc w2_loc)
{
    bool dt_first = strcmp(w1, "dt") == 0 && strcmp(w2, "dW") == 0;
    bool dw_first = strcmp(w1, "dW") == 0 && strcmp(w2, "dt") == 0;
    if (!dt_first && !dw_first) {
        bool bad1 = strcmp(w1, "dt") != 0 && strcmp(w1, "dW") != 0;
        bool bad2 = strcmp(w2, "dt") != 0 && strcmp(w2, "dW") != 0;
        if (bad1 || bad2)
            diag_error(p->diag, bad1 ? w1_loc : w2_loc,
                       "expected 'dt' or 'dW' in an equation of the form dx = f dt + g dW");
        else
            diag_error(p->diag, w2_loc, "expected one 'dt' term and one 'dW' term, as in "
                       "dx = f dt + g dW");
        return NULL;
    }
    if (lhs[0] != 'd' || lhs[1] == 0) {
        diag_error(p->diag, lhs_loc, "expected a stochastic equation of the form dx = f dt + g dW");
        return NULL;
    }
    Ast *n = named(p, AST_EQUATION, lhs_loc, strtab_intern(p->b->names, lhs + 1, strlen(lhs) - 1),
                   lhs_loc);
    n->a = dt_first ? e1 : e2;
    n->b = dt_first ? e2 : e1;
    return n;
}

/* `x = ...` or `dx/ds = ...` where an equation dx/dt = ... was meant. */
static Ast *bad_equation(Parser *p, SrcLoc loc)
{
    diag_error(p->diag, loc, "expected an equation of the form dx/dt = ...");
    return NULL;
}
}

%define api.pure full
%define parse.error custom
%define parse.lac full
%define api.location.type {SrcLoc}
%locations
%param {void *scanner}
%parse-param {Parser *p}
%expect 0

%union {
    double num;
    const char *name;
    const char *str;
    Ast *node;
    AstList list;
}

%token <num> TK_NUM "number"
%token <str> TK_STR "string"
%token <name> TK_IDENT "name"
%token <name> TK_DERIV "derivative"
%token <name> TK_DERIV2 "second derivative"
%token TK_NEWLINE "end of line"
%token TK_LE "'<='" TK_GE "'>='" TK_EQ "'=='" TK_NE "'!='"
%token <name> TK_MODEL "'model'" TK_STATE "'state'" TK_PARAM "'param'" TK_CONST "'const'"
%token <name> TK_LET "'let'" TK_NET "'net'" TK_FN "'fn'" TK_IMPORT "'import'"
%token <name> TK_OPTION "'option'" TK_SOLVE "'solve'" TK_TRAIN "'train'" TK_DATA "'data'"
%token <name> TK_EVALUATE "'evaluate'"
%token <name> TK_FORWARD "'forward'"
%token <name> TK_PLOT "'plot'"
%token <name> TK_WHEN "'when'"
%token TK_STARSTAR "'**'"   /* not an operator: parsed as '^' to say so (see power_misspelled) */

%nonassoc '<' '>' TK_LE TK_GE TK_EQ TK_NE
%left '+' '-'
%left '*' '/' '@'
%precedence UNARY
%right '^' TK_STARSTAR

%type <node> top_item item const_decl entry rentry arg expr postfix primary call dist index_item
%type <node> record fn_def forward_def top_elem block_elem entry_elem action action_elem
%type <list> dims_opt block_list actions entries rlist args args_opt exprs names names_opt index_items lets
%type <name> key keyword

%%

program
    : top_list
    ;

/* Each list element ends with its term; the error element stands alone so that
 * YYERROR in it pops only `error term` and recovery resumes in the same list. */
top_list
    : %empty
    | top_list top_elem           { if ($2) ast_append(p->b, &p->program->list, $2); }
    ;

top_elem
    : term                        { $$ = NULL; }
    | top_item term
    | error term                  { if (!resync(p, 0)) YYERROR; yyerrok; $$ = NULL; }
    ;

term: TK_NEWLINE | ';' ;

terms: term | terms term ;

top_item
    : TK_IMPORT TK_STR            { $$ = node(p, AST_IMPORT, @$); $$->str = $2; }
    | TK_OPTION key '=' expr      { $$ = named(p, AST_OPTION, @$, $2, @2); $$->a = $4; }
    | const_decl
    | fn_def
    | TK_NET TK_IDENT '(' names_opt ')' '{' block_list '}'
        { $$ = named(p, AST_NET, @$, $2, @2); $$->params = $4; $$->list = $7; }
    | TK_MODEL TK_IDENT '{' block_list '}'
        { $$ = named(p, AST_MODEL, @$, $2, @2); $$->list = $4; }
    | TK_SOLVE TK_IDENT '{' entries '}'
        { $$ = named(p, AST_SOLVE, @$, $2, @2); $$->list = $4; }
    | TK_TRAIN TK_IDENT '{' entries '}'
        { $$ = named(p, AST_TRAIN, @$, $2, @2); $$->list = $4; }
    | TK_EVALUATE TK_IDENT '{' entries '}'
        { $$ = named(p, AST_EVALUATE, @$, $2, @2); $$->list = $4; }
    | TK_DATA TK_IDENT '=' expr   { $$ = named(p, AST_DATA, @$, $2, @2); $$->a = $4; }
    | TK_PLOT TK_STR '{' entries '}'
        { $$ = named(p, AST_PLOT, @$, NULL, @2); $$->str = $2; $$->list = $4; }
    ;

const_decl
    : TK_CONST TK_IDENT dims_opt '=' expr
        { $$ = named(p, AST_CONST, @$, $2, @2); $$->list = $3; $$->a = $5; }
    ;

fn_def
    : TK_FN TK_IDENT '(' names_opt ')' '=' expr
        { $$ = named(p, AST_FN, @$, $2, @2); $$->params = $4; $$->a = $7; }
    | TK_FN TK_IDENT '(' names_opt ')' '{' lets expr terms '}'
        { $$ = named(p, AST_FN, @$, $2, @2); $$->params = $4; $$->list = $7; $$->a = $8; }
    ;

/* The let lines of a block-form fn or forward, before its result expression. */
lets
    : %empty                            { $$ = (AstList){0}; }
    | lets term                         { $$ = $1; }
    | lets TK_LET TK_IDENT '=' expr term
        { Ast *l = named(p, AST_LET, loc_span(@2, @5), $3, @3); l->a = $5; $$ = list_add(p, $1, l); }
    ;

names_opt
    : %empty                      { $$ = (AstList){0}; }
    | names
    ;

names
    : TK_IDENT                    { $$ = list1(p, named(p, AST_NAME, @1, $1, @1)); }
    | names ',' TK_IDENT          { $$ = list_add(p, $1, named(p, AST_NAME, @3, $3, @3)); }
    ;

dims_opt
    : %empty                      { $$ = (AstList){0}; }
    | '[' exprs ']'               { $$ = $2; } /* sema checks the rank (at most 4) */
    ;

/* ---- model and net bodies ---- */

block_list
    : %empty                      { $$ = (AstList){0}; }
    | block_list block_elem       { $$ = list_add(p, $1, $2); }
    ;

block_elem
    : term                        { $$ = NULL; }
    | item term
    | error term                  { if (!resync(p, 1)) YYERROR; yyerrok; $$ = NULL; }
    ;

item
    : TK_STATE TK_IDENT dims_opt
        { $$ = named(p, AST_STATE, @$, $2, @2); $$->list = $3; }
    | TK_STATE TK_IDENT dims_opt '=' expr
        { $$ = named(p, AST_STATE, @$, $2, @2); $$->list = $3; $$->a = $5; }
    | TK_STATE TK_DERIV
        { $$ = velocity_state(p, @$, $2, @2); }
    | TK_STATE TK_DERIV '=' expr
        { $$ = velocity_state(p, @$, $2, @2); $$->a = $4; }
    | TK_PARAM TK_IDENT dims_opt
        { $$ = named(p, AST_PARAM, @$, $2, @2); $$->list = $3; }
    | TK_PARAM TK_IDENT dims_opt '=' expr
        { $$ = named(p, AST_PARAM, @$, $2, @2); $$->list = $3; $$->a = $5; }
    | TK_PARAM TK_IDENT dims_opt '~' dist
        { $$ = named(p, AST_PARAM, @$, $2, @2); $$->list = $3; $$->b = $5; }
    | const_decl
    | TK_LET TK_IDENT '=' expr    { $$ = named(p, AST_LET, @$, $2, @2); $$->a = $4; }
    | TK_NET TK_IDENT '=' call    { $$ = named(p, AST_NETUSE, @$, $2, @2); $$->a = $4; }
    | TK_DERIV '=' expr
        { $$ = named(p, AST_EQUATION, @1, $1, @1); $$->a = $3; }
    | TK_DERIV2 '=' expr
        { $$ = deriv2_equation(p, @1, $1); $$->a = $3; }
    | TK_IDENT '/' TK_IDENT '=' expr  { $$ = bad_equation(p, loc_span(@1, @3)); }
    | TK_IDENT '=' expr               { $$ = bad_equation(p, @1); }
    /* `sample z ~ ...` and `encoder h { ... }` are statements of train and evaluate blocks */
    | TK_IDENT TK_IDENT '~' expr  { $$ = NULL; block_statement_misplaced(p, $1, @1, @$); }
    | TK_IDENT TK_IDENT dims_opt record
        { $$ = NULL; block_statement_misplaced(p, $1, @1, @$); }
    | TK_IDENT '=' expr TK_IDENT
        { diag_error(p->diag, @4, "a stochastic equation needs both terms, dx = f dt + g dW "
                     "(an ordinary one is dx/dt = f)"); $$ = NULL; }
    | TK_IDENT '=' expr TK_IDENT '+' expr TK_IDENT
        { $$ = sde_equation(p, $1, @1, $3, $4, @4, $6, $7, @7); }
    | forward_def
    | TK_WHEN expr '{' actions '}'
        { $$ = node(p, AST_WHEN, @$); $$->a = $2; $$->list = $4; }
    ;

/* The body of a `when` block: assignments to states, or `terminate`. */
actions
    : %empty                      { $$ = (AstList){0}; }
    | actions action_elem         { $$ = list_add(p, $1, $2); }
    ;

action_elem
    : term                        { $$ = NULL; }
    | action term
    | error term                  { if (!resync(p, 2)) YYERROR; yyerrok; $$ = NULL; }
    ;

action
    : TK_IDENT '=' expr   { $$ = named(p, AST_ENTRY, @$, $1, @1); $$->op = '='; $$->a = $3; }
    | TK_DERIV '=' expr   /* a second-order state's velocity, the state "dx/dt" */
        { $$ = named(p, AST_ENTRY, @$, velocity_name(p, $1), @1); $$->op = '='; $$->a = $3; }
    | TK_IDENT            { $$ = named(p, AST_NAME, @$, $1, @1); }
    ;

forward_def
    : TK_FORWARD '(' names_opt ')' '=' expr
        { $$ = node(p, AST_FORWARD, @$); $$->params = $3; $$->a = $6; }
    | TK_FORWARD '(' names_opt ')' '{' lets expr terms '}'
        { $$ = node(p, AST_FORWARD, @$); $$->params = $3; $$->list = $6; $$->a = $7; }
    ;

dist
    : TK_IDENT                    { $$ = named(p, AST_NAME, @1, $1, @1); }
    | call
    ;

/* ---- directive blocks and records ---- */

entries
    : %empty                      { $$ = (AstList){0}; }
    | entries entry_elem          { $$ = list_add(p, $1, $2); }
    ;

entry_elem
    : term                        { $$ = NULL; }
    | entry term
    | error term                  { if (!resync(p, 1)) YYERROR; yyerrok; $$ = NULL; }
    ;

/* `metric acc = expr` (evaluate) and `sample z ~ normal(mu, sigma)` (train, evaluate):
   a named entry, its kind (`metric`, `sample`) in str */
entry
    : key '=' expr   { $$ = named(p, AST_ENTRY, @$, $1, @1); $$->op = '='; $$->a = $3; }
    | key TK_IDENT '=' expr
        { $$ = named(p, AST_ENTRY, @$, $2, @2); $$->op = '='; $$->a = $4; $$->str = $1; }
    | key TK_IDENT '~' expr
        { $$ = named(p, AST_ENTRY, @$, $2, @2); $$->op = '~'; $$->a = $4; $$->str = $1; }
    /* `encoder h[16] { dh/dt = ...; h = ... }` (train, evaluate): op '{', list = the
       dimensions, a = the record */
    | key TK_IDENT dims_opt record
        { $$ = named(p, AST_ENTRY, @$, $2, @2); $$->op = '{'; $$->list = $3; $$->a = $4; $$->str = $1; }
    ;

record
    : '{' rlist '}'               { $$ = node(p, AST_RECORD, @$); $$->list = $2; CHECK_DEPTH($$); }
    ;

rlist
    : %empty                      { $$ = (AstList){0}; }
    | rlist rsep                  { $$ = $1; }
    | rlist rentry rsep           { $$ = list_add(p, $1, $2); }
    ;

rsep: ',' | ';' | TK_NEWLINE ;

rentry
    : key '=' expr   { $$ = named(p, AST_ENTRY, @$, $1, @1); $$->op = '='; $$->a = $3; CHECK_DEPTH($$); }
    | key '~' expr   { $$ = named(p, AST_ENTRY, @$, $1, @1); $$->op = '~'; $$->a = $3; CHECK_DEPTH($$); }
    /* `init = { dx/dt = ... }`: a second-order state's velocity, the state "dx/dt" */
    | TK_DERIV '=' expr
        { $$ = named(p, AST_ENTRY, @$, velocity_name(p, $1), @1); $$->op = '='; $$->a = $3; CHECK_DEPTH($$); }
    | TK_DERIV '~' expr
        { $$ = named(p, AST_ENTRY, @$, velocity_name(p, $1), @1); $$->op = '~'; $$->a = $3; CHECK_DEPTH($$); }
    ;

/* Directive keys such as `data` are keywords elsewhere, so keys accept both. */
key: TK_IDENT | keyword ;

keyword
    : TK_MODEL | TK_STATE | TK_PARAM | TK_CONST | TK_LET | TK_NET | TK_FN | TK_IMPORT
    | TK_OPTION | TK_SOLVE | TK_TRAIN | TK_DATA | TK_FORWARD | TK_EVALUATE | TK_PLOT | TK_WHEN
    ;

/* ---- expressions ---- */

expr
    : expr '<' expr               { $$ = binary(p, OP_LT, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '>' expr               { $$ = binary(p, OP_GT, $1, $3, @$); CHECK_DEPTH($$); }
    | expr TK_LE expr             { $$ = binary(p, OP_LE, $1, $3, @$); CHECK_DEPTH($$); }
    | expr TK_GE expr             { $$ = binary(p, OP_GE, $1, $3, @$); CHECK_DEPTH($$); }
    | expr TK_EQ expr             { $$ = binary(p, OP_EQ, $1, $3, @$); CHECK_DEPTH($$); }
    | expr TK_NE expr             { $$ = binary(p, OP_NE, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '+' expr               { $$ = binary(p, OP_ADD, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '-' expr               { $$ = binary(p, OP_SUB, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '*' expr               { $$ = binary(p, OP_MUL, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '/' expr               { $$ = binary(p, OP_DIV, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '@' expr               { $$ = binary(p, OP_MATMUL, $1, $3, @$); CHECK_DEPTH($$); }
    | expr '^' expr               { $$ = binary(p, OP_POW, $1, $3, @$); CHECK_DEPTH($$); }
    | expr TK_STARSTAR expr       { $$ = power_misspelled(p, $1, $3, @2, @$); CHECK_DEPTH($$); }
    | '-' expr %prec UNARY        { $$ = unary(p, AST_NEG, $2, @$); CHECK_DEPTH($$); }
    | '+' expr %prec UNARY        { $$ = $2; }
    | postfix
    ;

postfix
    : primary
    | postfix '[' index_items ']' { $$ = unary(p, AST_INDEX, $1, @$); $$->list = $3; CHECK_DEPTH($$); }
    | postfix '.' key             { $$ = unary(p, AST_FIELD, $1, @$); $$->name = $3; $$->name_loc = @3; CHECK_DEPTH($$); }
    ;

index_items
    : index_item                  { $$ = list1(p, $1); }
    | index_item ',' index_item   { $$ = list_add(p, list1(p, $1), $3); }
    ;

index_item
    : expr
    | expr ':' expr               { $$ = node(p, AST_SLICE, @$); $$->a = $1; $$->b = $3; CHECK_DEPTH($$); }
    | ':' expr                    { $$ = node(p, AST_SLICE, @$); $$->b = $2; CHECK_DEPTH($$); }
    | expr ':'                    { $$ = node(p, AST_SLICE, @$); $$->a = $1; CHECK_DEPTH($$); }
    ;

primary
    : TK_NUM                      { $$ = node(p, AST_NUM, @$); $$->num = $1; }
    | TK_STR                      { $$ = node(p, AST_STR, @$); $$->str = $1; }
    | TK_IDENT                    { $$ = named(p, AST_NAME, @$, $1, @1); }
    | TK_DERIV                    { $$ = named(p, AST_DERIV, @$, $1, @1); }
    | TK_DERIV2                   { $$ = deriv2_division(p, @$, $1); }
    | call
    | '(' expr ')'                { $$ = $2; }
    | '[' exprs ']'               { $$ = node(p, AST_LIST, @$); $$->list = $2; CHECK_DEPTH($$); }
    | '[' ']'                     { $$ = node(p, AST_LIST, @$); CHECK_DEPTH($$); }
    | record
    ;

exprs
    : expr                        { $$ = list1(p, $1); }
    | exprs ',' expr              { $$ = list_add(p, $1, $3); }
    ;

call
    : TK_IDENT '(' args_opt ')'   { $$ = named(p, AST_CALL, @$, $1, @1); $$->list = $3; CHECK_DEPTH($$); }
    ;

args_opt
    : %empty                      { $$ = (AstList){0}; }
    | args
    ;

args
    : arg                         { $$ = list1(p, $1); }
    | args ',' arg                { $$ = list_add(p, $1, $3); }
    ;

arg
    : expr
    | key '=' expr                { $$ = named(p, AST_ARG, @$, $1, @1); $$->a = $3; CHECK_DEPTH($$); }
    ;

%%

const char *parse_token_name(int token)
{
    if (token == 0)
        return "end of file";
    return yysymbol_name(YYTRANSLATE(token));
}

/* ---- syntax error messages: say what was found and what was expected ---- */

typedef struct Expected {
    bool has[YYNTOKENS];
} Expected;

static bool exp_has(const Expected *e, int token)
{
    return e->has[YYTRANSLATE(token)];
}

static void exp_drop(Expected *e, const int *tokens, int n)
{
    for (int i = 0; i < n; i++)
        e->has[YYTRANSLATE(tokens[i])] = false;
}

static const int EXPR_START[] = {TK_NUM, TK_STR, TK_IDENT, TK_DERIV, TK_DERIV2, '(', '[', '{', '-', '+'};
static const int OPERATORS[] = {'+', '-', '*', '/', '@', '^', '<', '>', TK_LE, TK_GE,
                                TK_EQ, TK_NE, '[', '.', '(', TK_STARSTAR};
static const int KEYWORDS[] = {TK_MODEL, TK_STATE, TK_PARAM, TK_CONST, TK_LET, TK_NET, TK_FN,
                               TK_IMPORT, TK_OPTION, TK_SOLVE, TK_TRAIN, TK_DATA, TK_FORWARD,
                               TK_EVALUATE, TK_PLOT, TK_WHEN};
static const int ITEM_START[] = {TK_STATE, TK_PARAM, TK_CONST, TK_LET, TK_NET, TK_FORWARD, TK_WHEN,
                                 TK_DERIV, TK_DERIV2, TK_IDENT};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Appends one alternative to buf; the caller joins them with ", " and " or ". */
static void alt_add(const char **alts, int *n, const char *text)
{
    if (*n < 8)
        alts[(*n)++] = text;
}

/* Turns the parser's set of acceptable tokens into a short phrase: whole
 * categories ("an expression", "an operator") instead of long token lists. */
static void describe_expected(Expected *e, char *buf, size_t size)
{
    const char *alts[8];
    int n = 0;
    if (exp_has(e, TK_MODEL)) {
        alt_add(alts, &n, "a declaration such as 'model' or 'solve'");
        exp_drop(e, KEYWORDS, COUNT(KEYWORDS));
        exp_drop(e, (const int[]){TK_NEWLINE, ';', 0}, 3);
    }
    if (exp_has(e, TK_STATE)) {
        alt_add(alts, &n, "a declaration or an equation dx/dt = ...");
        exp_drop(e, ITEM_START, COUNT(ITEM_START));
    }
    bool expr = exp_has(e, TK_NUM), op = exp_has(e, '*');
    if (op) {
        alt_add(alts, &n, "an operator");
        exp_drop(e, OPERATORS, COUNT(OPERATORS));
    }
    if (expr) {
        alt_add(alts, &n, "an expression");
        exp_drop(e, EXPR_START, COUNT(EXPR_START));
    }
    if (exp_has(e, TK_IDENT))
        exp_drop(e, KEYWORDS, COUNT(KEYWORDS)); /* a key: any name will do */
    if (exp_has(e, TK_NEWLINE))
        exp_drop(e, (const int[]){';'}, 1);
    for (int s = 0; s < YYNTOKENS; s++)
        if (e->has[s])
            alt_add(alts, &n, s == YYSYMBOL_TK_IDENT ? "a name"
                              : s == YYSYMBOL_TK_STR ? "a string"
                              : s == YYSYMBOL_TK_NUM ? "a number"
                                                     : yysymbol_name((yysymbol_kind_t)s));
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", sep, alts[i]);
    }
}

/* The lookahead as the user wrote it: "'*'", "name 'foo'", "end of file". */
static void describe_found(const Parser *p, yysymbol_kind_t tok, char *buf, size_t size)
{
    const char *text = p->file->text + p->tok_off;
    int len = p->tok_len > 24 ? 24 : p->tok_len;
    const char *more = p->tok_len > 24 ? "..." : "";
    if (tok == YYSYMBOL_YYEOF)
        snprintf(buf, size, "end of file");
    else if (tok == YYSYMBOL_TK_NEWLINE && p->tok_virtual)
        snprintf(buf, size, text[0] == '}' ? "'}'" : "end of file");
    else if (tok == YYSYMBOL_TK_IDENT || tok == YYSYMBOL_TK_NUM || tok == YYSYMBOL_TK_STR)
        snprintf(buf, size, "%s '%.*s%s'", yysymbol_name(tok), len, text, more);
    else if (tok == YYSYMBOL_TK_DERIV || tok == YYSYMBOL_TK_DERIV2)
        snprintf(buf, size, "'%.*s%s'", len, text, more);
    else
        snprintf(buf, size, "%s", yysymbol_name(tok));
}

static char closer_of(char c)
{
    return c == '(' ? ')' : c == '[' ? ']' : '}';
}

static bool at_eof(const Parser *p, yysymbol_kind_t tok)
{
    return tok == YYSYMBOL_YYEOF ||
           (tok == YYSYMBOL_TK_NEWLINE && p->tok_virtual && p->file->text[p->tok_off] != '}');
}

/* The bracket a syntax error may be about (Lua's check_match): the innermost
 * open one at end of file or when it opened on an earlier line, the one a
 * wrong closing bracket just closed, or the one a '}' closed implicitly. */
static const LexBracket *open_bracket(const Parser *p, yysymbol_kind_t tok, const SrcLoc *at)
{
    const char *text = p->file->text + p->tok_off;
    if (p->tok_virtual && p->unclosed.c)
        return &p->unclosed;
    if (!p->tok_virtual && p->tok_len == 1 && strchr(")]}", text[0]))
        return p->last_popped.c && closer_of(p->last_popped.c) != text[0] ? &p->last_popped : NULL;
    if (p->depth == 0)
        return NULL;
    const LexBracket *top = &p->brackets[p->depth - 1];
    return at_eof(p, tok) || top->loc.line != at->line ? top : NULL;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, Parser *p)
{
    if (p->stopped) /* the lexer's limit said why the file ends here */
        return 0;
    (void)scanner;
    yysymbol_kind_t list[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, list, YYNTOKENS);
    Expected e = {{0}};
    for (int i = 0; i < n; i++)
        e.has[list[i]] = true;
    yysymbol_kind_t tok = yypcontext_token(ctx);
    const SrcLoc *at = yypcontext_location(ctx);
    const LexBracket *open = open_bracket(p, tok, at);
    bool closable = open && exp_has(&e, closer_of(open->c));
    char found[96], want[320];
    describe_found(p, tok, found, sizeof found);
    /* `a < b < c`: the second comparison is an operator where operators are
     * expected, only not this one; "expected an operator" would mislead */
    const char *t = p->file->text + p->tok_off;
    if (!p->tok_virtual && (t[0] == '<' || t[0] == '>' || ((t[0] == '=' || t[0] == '!') && t[1] == '=')) &&
        exp_has(&e, '*') && !exp_has(&e, '<')) {
        diag_error(p->diag, *at, "unexpected %s: comparisons do not chain (write a < b < c as "
                   "(a < b) * (b < c))", found);
        return 0;
    }
    if (closable && at_eof(p, tok))
        snprintf(want, sizeof want, "'%c'", closer_of(open->c));
    else
        describe_expected(&e, want, sizeof want);
    if (want[0])
        diag_error(p->diag, *at, "unexpected %s, expected %s", found, want);
    else
        diag_error(p->diag, *at, "unexpected %s", found);
    /* Lua's "to close '{' at 3:12" */
    if (closable)
        diag_note(p->diag, open->loc, "to close '%c' at %d:%d", open->c, open->loc.line,
                  open->loc.col);
    return 0;
}

/* Only bison's own failures come here ("memory exhausted" from nesting that
 * outgrows YYMAXDEPTH, the parser's stack); syntax errors go through
 * yyreport_syntax_error. */
static void yyerror(SrcLoc *loc, void *scanner, Parser *p, const char *msg)
{
    (void)scanner;
    (void)msg;
    diag_error(p->diag, *loc,
               "nesting too deep: more than %d brackets, blocks and operators open at once "
               "(an expression may nest at most %d levels)",
               YYMAXDEPTH, AST_MAX_DEPTH);
}
