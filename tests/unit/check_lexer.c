/* Lexer tests: token kinds, values and locations for every lexical form of
 * LANGUAGE.md §1, the newline rules (ignored inside ( ) and [ ], inserted
 * before '}' and at end of file), and each lexical error with its location. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "parser.h"

enum { MAX_TOKS = 64 };

typedef struct Lexed {
    int n;
    int tok[MAX_TOKS];
    YYSTYPE val[MAX_TOKS];
    SrcLoc loc[MAX_TOKS];
    int virt[MAX_TOKS];
    int errors;
    char *messages; /* diagnostics as printed */
} Lexed;

static Arena *arena;
static Strtab *names;

static void setup(void)
{
    arena = arena_new();
    names = strtab_new(arena);
}

static void teardown(void)
{
    arena_free(arena);
}

/* Lexes src to the end (YYerror tokens included) into a fresh Lexed. */
static Lexed *lex(const char *src)
{
    static Lexed out;
    memset(&out, 0, sizeof out);
    SrcFile *file = srcfile_from_string("t.node", src);
    size_t size = 0;
    FILE *mem = open_memstream(&out.messages, &size);
    Diag diag;
    diag_init(&diag, mem);
    AstBuilder b = {arena, names};
    Parser p = {.b = &b, .diag = &diag, .file = file};
    lex_begin(&p);
    for (int tok; out.n < MAX_TOKS;) {
        tok = yylex(&out.val[out.n], &out.loc[out.n], p.scanner);
        if (tok == YYEOF)
            break;
        out.virt[out.n] = p.tok_virtual;
        out.tok[out.n++] = tok;
    }
    lex_end(&p);
    fclose(mem);
    out.errors = diag.errors;
    /* the messages outlive the file: keep a copy in the arena, drop the rest */
    char *copy = arena_strndup(arena, out.messages, size);
    free(out.messages);
    out.messages = copy;
    srcfile_free(file);
    for (int i = 0; i < out.n; i++)
        out.loc[i].file = NULL;
    return &out;
}

static void assert_tokens(const Lexed *l, const int *want, int n)
{
    ck_assert_int_eq(l->n, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(l->tok[i] == want[i], "token %d: got %s, want %s", i,
                      parse_token_name(l->tok[i]), parse_token_name(want[i]));
}

static void assert_loc(SrcLoc loc, int line, int col, int end_line, int end_col)
{
    ck_assert_int_eq(loc.line, line);
    ck_assert_int_eq(loc.col, col);
    ck_assert_int_eq(loc.end_line, end_line);
    ck_assert_int_eq(loc.end_col, end_col);
}

START_TEST(test_numbers)
{
    Lexed *l = lex("2 0.25 .5 1e-7 3.0E+2 1. 12e3 007");
    static const double want[] = {2, 0.25, 0.5, 1e-7, 300, 1, 12000, 7};
    ck_assert_int_eq(l->errors, 0);
    ck_assert_int_eq(l->n, 9); /* 8 numbers and the inserted newline */
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(l->tok[i], TK_NUM);
        ck_assert_double_eq(l->val[i].num, want[i]); /* exact: strtod rounds correctly */
    }
    assert_loc(l->loc[0], 1, 1, 1, 1);
    assert_loc(l->loc[1], 1, 3, 1, 6);
    assert_loc(l->loc[4], 1, 16, 1, 21);
    ck_assert_int_eq(l->tok[8], TK_NEWLINE);
    ck_assert_int_eq(l->virt[8], 1);
}
END_TEST

START_TEST(test_number_then_field)
{
    /* `.5` is a number but `obs.y` is a field access */
    Lexed *l = lex("obs.y .5");
    assert_tokens(l, (const int[]){TK_IDENT, '.', TK_IDENT, TK_NUM, TK_NEWLINE}, 5);
    ck_assert_double_eq(l->val[3].num, 0.5);
}
END_TEST

START_TEST(test_strings)
{
    Lexed *l = lex("\"path/to/file.csv\" \"a\\\"b\\\\c\\nd\" \"\"");
    ck_assert_int_eq(l->errors, 0);
    assert_tokens(l, (const int[]){TK_STR, TK_STR, TK_STR, TK_NEWLINE}, 4);
    ck_assert_str_eq(l->val[0].str, "path/to/file.csv");
    ck_assert_str_eq(l->val[1].str, "a\"b\\c\nd");
    ck_assert_str_eq(l->val[2].str, "");
    assert_loc(l->loc[0], 1, 1, 1, 18);
    assert_loc(l->loc[1], 1, 20, 1, 31);
}
END_TEST

START_TEST(test_comments_and_blank_lines)
{
    Lexed *l = lex("# leading comment\n\nx # trailing\n\n  # indented\n\ny\n");
    assert_tokens(l, (const int[]){TK_IDENT, TK_NEWLINE, TK_IDENT, TK_NEWLINE}, 4);
    ck_assert_str_eq(l->val[0].name, "x");
    assert_loc(l->loc[0], 3, 1, 3, 1);
    assert_loc(l->loc[1], 3, 13, 3, 13); /* the newline after the comment */
    assert_loc(l->loc[2], 7, 1, 7, 1);
    ck_assert_int_eq(l->virt[3], 0);
}
END_TEST

START_TEST(test_newlines_in_brackets)
{
    Lexed *l = lex("f(1,\n2)\n[3,\n\n4]\n");
    assert_tokens(l, (const int[]){TK_IDENT, '(', TK_NUM, ',', TK_NUM, ')', TK_NEWLINE,
                                   '[', TK_NUM, ',', TK_NUM, ']', TK_NEWLINE}, 13);
    assert_loc(l->loc[10], 5, 1, 5, 1);
}
END_TEST

START_TEST(test_newlines_in_braces)
{
    /* inside { } newlines separate entries, also in a record inside a call */
    Lexed *l = lex("model M {\n  a\n}\nf({ x = 1\n y = 2 })");
    assert_tokens(l, (const int[]){TK_MODEL, TK_IDENT, '{', TK_NEWLINE, TK_IDENT, TK_NEWLINE, '}',
                                   TK_NEWLINE, TK_IDENT, '(', '{', TK_IDENT, '=', TK_NUM,
                                   TK_NEWLINE, TK_IDENT, '=', TK_NUM, TK_NEWLINE, '}', ')',
                                   TK_NEWLINE}, 22);
    ck_assert_int_eq(l->virt[14], 0);
    ck_assert_int_eq(l->virt[18], 1); /* inserted before '}' ... */
    assert_loc(l->loc[18], 5, 8, 5, 8);  /* ... at the brace */
    ck_assert_int_eq(l->virt[21], 1); /* and at end of file */
    assert_loc(l->loc[21], 5, 10, 5, 10);
}
END_TEST

START_TEST(test_keywords)
{
    Lexed *l = lex("model state param const let net fn import option solve train data forward "
                   "models dt d plot");
    assert_tokens(l, (const int[]){TK_MODEL, TK_STATE, TK_PARAM, TK_CONST, TK_LET, TK_NET, TK_FN,
                                   TK_IMPORT, TK_OPTION, TK_SOLVE, TK_TRAIN, TK_DATA, TK_FORWARD,
                                   TK_IDENT, TK_IDENT, TK_IDENT, TK_PLOT, TK_NEWLINE}, 18);
    ck_assert_str_eq(l->val[11].name, "data"); /* keywords carry their name, for keys */
    ck_assert_str_eq(l->val[13].name, "models");
    ck_assert_ptr_eq(l->val[13].name, strtab_cstr(names, "models")); /* interned */
}
END_TEST

START_TEST(test_operators)
{
    Lexed *l = lex("+ - * / ^ @ < <= > >= == != = ~ : , . ; ( ) [ ] { }");
    assert_tokens(l, (const int[]){'+', '-', '*', '/', '^', '@', '<', TK_LE, '>', TK_GE, TK_EQ,
                                   TK_NE, '=', '~', ':', ',', '.', ';', '(', ')', '[', ']', '{',
                                   TK_NEWLINE, '}', TK_NEWLINE}, 26);
    assert_loc(l->loc[7], 1, 15, 1, 16);
}
END_TEST

START_TEST(test_derivatives)
{
    Lexed *l = lex("dx/dt dlogp / dt dist/dtau d/dt x/dt");
    assert_tokens(l, (const int[]){TK_DERIV, TK_DERIV, TK_IDENT, '/', TK_IDENT, TK_IDENT, '/',
                                   TK_IDENT, TK_IDENT, '/', TK_IDENT, TK_NEWLINE}, 12);
    ck_assert_str_eq(l->val[0].name, "x");
    ck_assert_str_eq(l->val[1].name, "logp");
    assert_loc(l->loc[0], 1, 1, 1, 5);
    assert_loc(l->loc[1], 1, 7, 1, 16);
    ck_assert_str_eq(l->val[2].name, "dist");
    assert_loc(l->loc[2], 1, 18, 1, 21);
    assert_loc(l->loc[3], 1, 22, 1, 22);
    ck_assert_str_eq(l->val[4].name, "dtau");
    ck_assert_str_eq(l->val[5].name, "d");
}
END_TEST

START_TEST(test_error_bad_char)
{
    Lexed *l = lex("x = 1\ny = $ 2");
    ck_assert_int_eq(l->errors, 1);
    ck_assert_int_eq(l->tok[6], YYerror);
    ck_assert_str_eq(l->messages, "t.node:2:5: error: unexpected character '$'\n"
                                  "    2 | y = $ 2\n"
                                  "      |     ^\n");
}
END_TEST

START_TEST(test_error_utf8_and_control)
{
    Lexed *l = lex("a θ\x01");
    ck_assert_int_eq(l->errors, 2);
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:3: error: unexpected character 'θ' (U+03B8)\n"));
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:5: error: unexpected character '\\x01'\n"));
}
END_TEST

START_TEST(test_error_unterminated_string)
{
    Lexed *l = lex("data d = csv(\"a.csv)\nmodel");
    ck_assert_int_eq(l->errors, 1);
    ck_assert_str_eq(l->messages, "t.node:1:14: error: unterminated string\n"
                                  "    1 | data d = csv(\"a.csv)\n"
                                  "      |              ^~~~~~~\n");
    /* lexing goes on after it, and the newline inside ( ) is still ignored */
    ck_assert_int_eq(l->tok[l->n - 2], TK_MODEL);
}
END_TEST

START_TEST(test_error_string_escape)
{
    Lexed *l = lex("\"a\\qb\"");
    ck_assert_int_eq(l->errors, 1);
    ck_assert_int_eq(l->tok[0], TK_STR);
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:3: error: unknown escape sequence '\\q'"));
}
END_TEST

START_TEST(test_error_numbers)
{
    Lexed *l = lex("2x 1e999 1e");
    ck_assert_int_eq(l->errors, 3);
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:1: error: malformed number '2x'"));
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:4: error: number '1e999' is out of range"));
    ck_assert_ptr_nonnull(strstr(l->messages, "t.node:1:10: error: malformed number '1e'"));
}
END_TEST

START_TEST(test_dump_tokens)
{
    SrcFile *file = srcfile_from_string("t.node", "model M {\n  dx/dt = -x\n}");
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    Diag diag;
    diag_init(&diag, mem);
    lex_dump_tokens(mem, file, &diag);
    fclose(mem);
    ck_assert_str_eq(text, "1:1 'model' model\n"
                           "1:7 name M\n"
                           "1:9 '{' {\n"
                           "1:10 end of line\n"
                           "2:3 derivative dx/dt\n"
                           "2:9 '=' =\n"
                           "2:11 '-' -\n"
                           "2:12 name x\n"
                           "2:13 end of line\n"
                           "3:1 '}' }\n"
                           "3:2 end of line (inserted)\n");
    free(text);
    srcfile_free(file);
}
END_TEST

Suite *lexer_suite(void);
Suite *lexer_suite(void)
{
    Suite *s = suite_create("lexer");
    TCase *tc = tcase_create("tokens");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_number_then_field);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_comments_and_blank_lines);
    tcase_add_test(tc, test_newlines_in_brackets);
    tcase_add_test(tc, test_newlines_in_braces);
    tcase_add_test(tc, test_keywords);
    tcase_add_test(tc, test_operators);
    tcase_add_test(tc, test_derivatives);
    tcase_add_test(tc, test_dump_tokens);
    suite_add_tcase(s, tc);
    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_error_bad_char);
    tcase_add_test(errors, test_error_utf8_and_control);
    tcase_add_test(errors, test_error_unterminated_string);
    tcase_add_test(errors, test_error_string_escape);
    tcase_add_test(errors, test_error_numbers);
    suite_add_tcase(s, errors);
    return s;
}
