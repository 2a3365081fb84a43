/* Unit tests of the CSV reader (runtime/io/nd_csv_read.c): RFC 4180 quoting, CRLF and
 * LF line ends, a trailing blank line, numbers with spaces around them, and
 * every error with its exact message and line. Files are written to mkstemp
 * temporaries so the tests run in any folder. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_csv_read.h"

static char tmp_path[64];

/* Writes text (bytes as given, so CRLF stays CRLF) to a fresh temporary file. */
static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/nd_data_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq((long)write(fd, text, n), (long)n);
    close(fd);
    return tmp_path;
}

static NdTable *read_ok(const char *text)
{
    char err[256];
    int line = -1;
    const char *path = write_tmp(text);
    NdTable *t = nd_table_read_csv(path, err, sizeof err, &line);
    unlink(path);
    ck_assert_msg(t != NULL, "unexpected error: %s", err);
    return t;
}

/* Reads text expecting failure at line with the message "PATH:LINE: what". */
static void read_fails(const char *text, int want_line, const char *what)
{
    char err[256], want[256];
    int line = -1;
    const char *path = write_tmp(text);
    NdTable *t = nd_table_read_csv(path, err, sizeof err, &line);
    unlink(path);
    ck_assert_ptr_null(t);
    snprintf(want, sizeof want, "%s:%d: %s", path, want_line, what);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(line, want_line);
}

START_TEST(test_plain_lf)
{
    NdTable *t = read_ok("t,x\n0,2\n0.5,1\n1,0.5\n");
    ck_assert_int_eq(t->ncols, 2);
    ck_assert_int_eq(t->nrows, 3);
    ck_assert_str_eq(t->names[0], "t");
    ck_assert_str_eq(t->names[1], "x");
    double want[] = {0, 2, 0.5, 1, 1, 0.5};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(t->values[i], want[i], 1e-12);
    ck_assert_int_eq(nd_table_column(t, "x"), 1);
    ck_assert_int_eq(nd_table_column(t, "t"), 0);
    ck_assert_int_eq(nd_table_column(t, "y"), -1);
    nd_table_free(t);
}
END_TEST

START_TEST(test_quoted_header_crlf)
{
    NdTable *t = read_ok("\"W[0,0]\",\"W[0,1]\",label\r\n1.5,-2e-3,1\r\n  3 , 4,0\r\n\r\n");
    ck_assert_int_eq(t->ncols, 3);
    ck_assert_int_eq(t->nrows, 2);
    ck_assert_str_eq(t->names[0], "W[0,0]");
    ck_assert_str_eq(t->names[1], "W[0,1]");
    ck_assert_str_eq(t->names[2], "label");
    ck_assert_int_eq(nd_table_column(t, "W[0,1]"), 1);
    double want[] = {1.5, -2e-3, 1, 3, 4, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(t->values[i], want[i], 1e-12);
    nd_table_free(t);
}
END_TEST

START_TEST(test_quotes_inside_and_numbers_quoted)
{
    /* a doubled quote is one quote; a quoted number is still a number; no final newline */
    NdTable *t = read_ok("\"a \"\"b\"\"\",c\n\"7.25\",8");
    ck_assert_str_eq(t->names[0], "a \"b\"");
    ck_assert_int_eq(t->nrows, 1);
    ck_assert_double_eq_tol(t->values[0], 7.25, 1e-12);
    ck_assert_double_eq_tol(t->values[1], 8, 1e-12);
    nd_table_free(t);
}
END_TEST

START_TEST(test_many_rows)
{
    /* enough rows to grow the value array several times */
    size_t cap = 64 + 2000 * 24;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, "i,sq\n");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%d,%d\n", i, i * i);
    NdTable *t = read_ok(text);
    free(text);
    ck_assert_int_eq(t->nrows, 2000);
    ck_assert_double_eq_tol(t->values[2 * 1999 + 1], 1999.0 * 1999.0, 1e-12);
    ck_assert_double_eq_tol(t->values[2 * 1234], 1234, 1e-12);
    nd_table_free(t);
}
END_TEST

START_TEST(test_field_count)
{
    read_fails("t,x,y\n0,1,2\n1,2,3\n2,3,4\n3,4\n", 5, "expected 3 fields, found 2");
    read_fails("t,x\n0,1,2\n", 2, "expected 2 fields, found 3");
}
END_TEST

START_TEST(test_not_a_number)
{
    read_fails("t,x\n0,1\n1,abc\n", 3, "column 'x': 'abc' is not a number");
    read_fails("t,x\n0,1\n1,2.5q\n", 3, "column 'x': '2.5q' is not a number");
    read_fails("t,x\n0,\n", 2, "column 'x': an empty field is not a number");
    read_fails("t,x\n0,nan\n", 2, "column 'x': 'nan' is not a finite number");
}
END_TEST

START_TEST(test_nul_byte)
{
    /* "1\0" + "5": strtod would read 1 and stop at the NUL */
    static const char text[] = "t,x\n0,1\0" "5\n";
    char err[256], want[256];
    int line = -1;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/nd_data_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((long)write(fd, text, sizeof text - 1), (long)(sizeof text - 1));
    close(fd);
    NdTable *t = nd_table_read_csv(tmp_path, err, sizeof err, &line);
    unlink(tmp_path);
    ck_assert_ptr_null(t);
    snprintf(want, sizeof want, "%s:2: column 'x': the field holds a NUL byte, so it is not a number",
             tmp_path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_cannot_open)
{
    char err[256];
    int line = -1;
    NdTable *t = nd_table_read_csv("no_such_file.csv", err, sizeof err, &line);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(err, "cannot open 'no_such_file.csv': No such file or directory");
    ck_assert_int_eq(line, 0);
}
END_TEST

START_TEST(test_empty_and_header_only)
{
    read_fails("", 1, "empty file (expected a header row of column names, then rows of numbers)");
    read_fails("\n\n", 1, "empty file (expected a header row of column names, then rows of numbers)");
    read_fails("t,x\n", 2, "no data rows after the header");
    read_fails("t,x\r\n\r\n", 2, "no data rows after the header");
}
END_TEST

START_TEST(test_header_errors)
{
    read_fails("t,,x\n0,1,2\n", 1, "column 2 has an empty name in the header");
    read_fails("t,x,x\n0,1,2\n", 1, "duplicate column name 'x' in the header");
}
END_TEST

START_TEST(test_quote_errors)
{
    read_fails("t,x\n0,\"1\n", 2, "unterminated quoted field (the quote opened on this line never closes)");
    read_fails("t,x\n0,\"1\"z\n", 2, "unexpected 'z' after a closing quote (a quoted field ends at its quote)");
}
END_TEST

START_TEST(test_blank_line_inside)
{
    read_fails("t,x\n0,1\n\n1,2\n", 3, "blank line among the data rows (expected 2 fields)");
}
END_TEST

START_TEST(test_newline_in_quotes_counts_lines)
{
    /* the quoted header name spans two lines, so the bad row is on line 4 */
    read_fails("\"a\nb\",c\n1,2\n3\n", 4, "expected 2 fields, found 1");
}
END_TEST

Suite *data_suite(void);
Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("csv");
    tcase_add_test(tc, test_plain_lf);
    tcase_add_test(tc, test_quoted_header_crlf);
    tcase_add_test(tc, test_quotes_inside_and_numbers_quoted);
    tcase_add_test(tc, test_many_rows);
    tcase_add_test(tc, test_field_count);
    tcase_add_test(tc, test_not_a_number);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_cannot_open);
    tcase_add_test(tc, test_empty_and_header_only);
    tcase_add_test(tc, test_header_errors);
    tcase_add_test(tc, test_quote_errors);
    tcase_add_test(tc, test_blank_line_inside);
    tcase_add_test(tc, test_newline_in_quotes_counts_lines);
    suite_add_tcase(s, tc);
    return s;
}
