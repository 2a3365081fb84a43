/* Diagnostics tests: the printed form of errors and notes, regions opened by
 * diag_mark that print nothing until committed and leave nothing when rolled
 * back (what sema's div() relies on), the DIAG_MAX_ERRORS cut-off and its
 * summary line, and recoverable internal errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static FILE *out;
static char *text; /* everything printed so far */
static size_t len;
static Diag d;
static SrcFile *file;

static void setup(void)
{
    out = open_memstream(&text, &len);
    diag_init(&d, out);
    file = srcfile_from_string("t.node", "model m {\n  dx/dt = y\n}\n");
}

static void teardown(void)
{
    diag_free(&d);
    fclose(out);
    free(text);
    srcfile_free(file);
}

static const char *printed(void)
{
    fflush(out);
    return text;
}

/* line 2, columns col..end_col of file */
static SrcLoc at(int col, int end_col)
{
    return (SrcLoc){file, 2, col, 2, end_col};
}

START_TEST(test_error_and_note)
{
    diag_error(&d, at(11, 11), "unknown name '%s'", "y");
    diag_note(&d, at(3, 4), "in the equation of '%s'", "x");
    diag_plain(&d, "cannot read '%s'", "u.node");
    ck_assert_str_eq(printed(), "t.node:2:11: error: unknown name 'y'\n"
                                "    2 |   dx/dt = y\n"
                                "      |           ^\n"
                                "t.node:2:3: note: in the equation of 'x'\n"
                                "nodec: error: cannot read 'u.node'\n");
    ck_assert_int_eq(d.errors, 2);
}
END_TEST

START_TEST(test_rollback)
{
    diag_error(&d, at(11, 11), "before");
    DiagMark m = diag_mark(&d);
    ck_assert_ptr_null(diag_first_error(&d, m));
    diag_note(&d, at(3, 4), "a note first is not an error");
    diag_error(&d, at(3, 4), "first %d", 1);
    diag_error(&d, at(3, 4), "second");
    ck_assert_int_eq(diag_errors_since(&d, m), 2);
    ck_assert_str_eq(diag_first_error(&d, m), "first 1");
    size_t before = strlen(printed());
    diag_rollback(&d, m);
    ck_assert_uint_eq(strlen(printed()), before); /* nothing of the region printed */
    ck_assert_int_eq(d.errors, 1);
    ck_assert_int_eq(d.n_recs, 0);
    diag_error(&d, at(11, 11), "after");
    ck_assert_ptr_nonnull(strstr(printed(), "error: after\n"));
    ck_assert_ptr_null(strstr(printed(), "first"));
}
END_TEST

/* Committed regions print in order once the outermost mark closes; an inner
 * rollback takes back only its own part. */
START_TEST(test_nested_commit)
{
    DiagMark outer = diag_mark(&d);
    diag_plain(&d, "one");
    DiagMark inner = diag_mark(&d);
    diag_plain(&d, "gone");
    ck_assert_str_eq(diag_first_error(&d, inner), "gone");
    diag_rollback(&d, inner);
    inner = diag_mark(&d);
    diag_plain(&d, "two");
    diag_commit(&d, inner);
    ck_assert_str_eq(printed(), "");
    ck_assert_str_eq(diag_first_error(&d, outer), "one");
    diag_commit(&d, outer);
    ck_assert_str_eq(printed(), "nodec: error: one\nnodec: error: two\n");
    ck_assert_int_eq(d.errors, 2);
    ck_assert_int_eq(d.open_marks, 0);
}
END_TEST

START_TEST(test_drop_counting)
{
    for (int i = 0; i < DIAG_MAX_ERRORS; i++)
        diag_error(&d, (SrcLoc){0}, "e%d", i);
    diag_note(&d, (SrcLoc){0}, "kept: the last error was printed");
    DiagMark m = diag_mark(&d);
    diag_error(&d, (SrcLoc){0}, "dropped in the region");
    ck_assert_int_eq(d.dropped, 1);
    ck_assert_ptr_null(diag_first_error(&d, m)); /* dropped errors are not recorded */
    diag_rollback(&d, m);
    ck_assert_int_eq(d.dropped, 0);
    for (int i = 0; i < 5; i++)
        diag_error(&d, (SrcLoc){0}, "late%d", i);
    diag_note(&d, (SrcLoc){0}, "skipped");
    diag_plain(&d, "never dropped");
    diag_finish(&d);
    const char *s = printed();
    ck_assert_ptr_nonnull(strstr(s, "nodec: error: e19\nnodec: note: kept"));
    ck_assert_ptr_null(strstr(s, "late"));
    ck_assert_ptr_null(strstr(s, "skipped"));
    ck_assert_ptr_nonnull(strstr(s, "nodec: error: never dropped\n"
                                    "nodec: 26 errors; stopped reporting after the first 20\n"));
    ck_assert_int_eq(d.dropped, 5);
}
END_TEST

/* Recoverable internal errors name the C source from the project's top folder
 * and count as errors, in order with the others. */
START_TEST(test_internal)
{
    diag_internal(&d, "/src/nodec/compiler/ir/ir.c", 12, "bad %s", "shape");
    DiagMark m = diag_mark(&d);
    DIAG_INTERNAL(&d, "in a region");
    ck_assert_ptr_nonnull(strstr(diag_first_error(&d, m), "check_diag.c:"));
    diag_commit(&d, m);
    ck_assert_int_eq(d.errors, 2);
    const char *s = printed();
    ck_assert_ptr_eq(strstr(s, "nodec: error: internal error at compiler/ir/ir.c:12: bad shape\n"),
                     s);
    ck_assert_ptr_nonnull(strstr(s, ": in a region\n"));
}
END_TEST

/* A mark left open (an early return) keeps its records for diag_free. */
START_TEST(test_free_open_mark)
{
    diag_mark(&d);
    diag_error(&d, at(3, 4), "held");
    diag_note(&d, at(3, 4), "and its note");
    ck_assert_int_eq(d.n_recs, 2);
    diag_free(&d);
    ck_assert_int_eq(d.n_recs, 0);
    ck_assert_str_eq(printed(), "");
}
END_TEST

Suite *diag_suite(void);
Suite *diag_suite(void)
{
    Suite *s = suite_create("diag");
    TCase *tc = tcase_create("diag");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_error_and_note);
    tcase_add_test(tc, test_rollback);
    tcase_add_test(tc, test_nested_commit);
    tcase_add_test(tc, test_drop_counting);
    tcase_add_test(tc, test_internal);
    tcase_add_test(tc, test_free_open_mark);
    suite_add_tcase(s, tc);
    return s;
}
