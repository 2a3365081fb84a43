/* Unit tests of the CSV reader (runtime/io/nd_csv_read.c): RFC 4180 quoting, CRLF and
 * LF line ends, a trailing blank line, numbers with spaces around them, and
 * every error with its exact message and line. Then the .npy reader
 * (runtime/io/nd_npy.c): every dtype, both header length widths, header spellings,
 * and the refusals, on bytes written here. Files are written to mkstemp
 * temporaries so the tests run in any folder. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_csv_read.h"
#include "nd_npy.h"

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

/* ---- .npy ---- */

/* A .npy file: magic, version, the header's length (2 bytes for 1.0, 4 after), the
 * header padded with spaces to a multiple of 64 and a newline, then n data bytes. */
static const char *write_npy(int major, const char *header, const void *data, size_t n)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/nd_npy_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    unsigned char buf[512];
    size_t width = major == 1 ? 2 : 4, h = strlen(header), at = 0;
    size_t pad = (64 - (8 + width + h + 1) % 64) % 64, hl = h + pad + 1;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    at = 8;
    for (size_t i = 0; i < width; i++)
        buf[at++] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + at, header, h);
    at += h;
    memset(buf + at, ' ', pad);
    at += pad;
    buf[at++] = '\n';
    ck_assert_uint_le(at + n, sizeof buf);
    memcpy(buf + at, data, n);
    at += n;
    ck_assert_int_eq((long)write(fd, buf, at), (long)at);
    close(fd);
    return tmp_path;
}

static NdNpy *npy_ok(int major, const char *header, const void *data, size_t n)
{
    char err[256];
    const char *path = write_npy(major, header, data, n);
    NdNpy *a = nd_npy_read(path, err, sizeof err);
    unlink(path);
    ck_assert_msg(a != NULL, "unexpected error: %s", err);
    return a;
}

/* Fails with "PATH: what". */
static void npy_fails(const char *header, const void *data, size_t n, const char *what)
{
    char err[256], want[256];
    const char *path = write_npy(1, header, data, n);
    NdNpy *a = nd_npy_read(path, err, sizeof err);
    unlink(path);
    ck_assert_ptr_null(a);
    snprintf(want, sizeof want, "%s: %s", path, what);
    ck_assert_str_eq(err, want);
}

#define HDR(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

START_TEST(test_npy_float)
{
    const double d[6] = {0, 0.0625, -1.5, 1e300, -2e-300, 7};
    NdNpy *a = npy_ok(1, HDR("<f8", "(2, 3)"), d, sizeof d); /* a little-endian host's bytes */
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_uint_eq(a->count, 6);
    ck_assert_str_eq(a->descr, "<f8");
    for (int i = 0; i < 6; i++)
        ck_assert(a->values[i] == d[i]);
    char shape[32];
    ck_assert_str_eq(nd_npy_shape_text(a, shape, sizeof shape), "(2, 3)");
    nd_npy_free(a);
    const float f[4] = {0.25f, -3.5f, 1e30f, 0.1f};
    a = npy_ok(2, HDR("<f4", "(4, 1, 1, 1)"), f, sizeof f); /* version 2.0: 4-byte length */
    ck_assert_int_eq(a->ndim, 4);
    for (int i = 0; i < 4; i++)
        ck_assert(a->values[i] == (double)f[i]);
    nd_npy_free(a);
}
END_TEST

START_TEST(test_npy_integers)
{
    const unsigned char i8[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 1, 0, 0, 0, 0, 0, 0};
    NdNpy *a = npy_ok(1, HDR("<i8", "(2,)"), i8, sizeof i8);
    ck_assert(a->values[0] == -1 && a->values[1] == 259);
    nd_npy_free(a);
    const unsigned char i4[8] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    a = npy_ok(1, HDR("<i4", "(2,)"), i4, sizeof i4);
    ck_assert(a->values[0] == -2 && a->values[1] == 2147483647.0);
    nd_npy_free(a);
    const unsigned char two[4] = {0x00, 0x80, 0xff, 0x7f};
    a = npy_ok(1, HDR("<i2", "(2,)"), two, sizeof two);
    ck_assert(a->values[0] == -32768 && a->values[1] == 32767);
    nd_npy_free(a);
    a = npy_ok(1, HDR("<u2", "(2,)"), two, sizeof two);
    ck_assert(a->values[0] == 32768 && a->values[1] == 32767);
    nd_npy_free(a);
    const unsigned char one[3] = {0x80, 0xff, 0x10};
    a = npy_ok(1, HDR("|i1", "(3,)"), one, sizeof one);
    ck_assert(a->values[0] == -128 && a->values[1] == -1 && a->values[2] == 16);
    nd_npy_free(a);
    a = npy_ok(1, HDR("|u1", "(3,)"), one, sizeof one);
    ck_assert(a->values[0] == 128 && a->values[1] == 255 && a->values[2] == 16);
    nd_npy_free(a);
    a = npy_ok(3, HDR("<u1", "(3,)"), one, sizeof one); /* a byte's order does not matter */
    ck_assert(a->values[1] == 255);
    nd_npy_free(a);
}
END_TEST

START_TEST(test_npy_header_spellings)
{
    const unsigned char b[2] = {1, 2};
    /* keys in another order, double quotes, no trailing comma, Python 2's long */
    NdNpy *a = npy_ok(1, "{\"shape\": (2L, 1), \"fortran_order\": False, \"descr\": \"|u1\"}", b, 2);
    ck_assert_int_eq(a->ndim, 2);
    ck_assert(a->values[1] == 2);
    nd_npy_free(a);
    const double x = 4;
    a = npy_ok(1, HDR("<f8", "()"), &x, sizeof x); /* a 0-d array: one value */
    ck_assert_int_eq(a->ndim, 0);
    ck_assert_uint_eq(a->count, 1);
    char shape[8];
    ck_assert_str_eq(nd_npy_shape_text(a, shape, sizeof shape), "()");
    nd_npy_free(a);
    a = npy_ok(1, HDR("<f8", "(0, 3)"), NULL, 0);
    ck_assert_uint_eq(a->count, 0);
    nd_npy_free(a);
}
END_TEST

START_TEST(test_npy_refused)
{
    const double d[2] = {1, 2};
    npy_fails("{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }", d, sizeof d,
              "the array is in Fortran (column-major) order; save it in C order (numpy.ascontiguousarray)");
    npy_fails(HDR(">f8", "(2,)"), d, sizeof d, "dtype '>f8' is big-endian; save it little-endian (array.astype('<f8'))");
    npy_fails(HDR("<f2", "(2,)"), d, 4,
              "dtype '<f2' is not supported (expected <f8, <f4, <i8, <i4, <i2, <u2, |i1 or |u1)");
    npy_fails(HDR("<f8", "(3,)"), d, sizeof d,
              "truncated: the shape (3,) of <f8 needs 24 bytes of data, but the file has 16");
    npy_fails("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", d, sizeof d,
              "the header is not a .npy dictionary: 'descr' is not a simple dtype string (a structured dtype?)");
    npy_fails("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}", d, sizeof d,
              "the header is not a .npy dictionary: it has a key other than 'descr', 'fortran_order' and 'shape'");
    npy_fails("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", d, sizeof d,
              "the header is not a .npy dictionary: 'shape' holds something other than whole numbers");
    npy_fails("{'descr': '<f8', 'fortran_order': 0, 'shape': (2,), }", d, sizeof d,
              "the header is not a .npy dictionary: 'fortran_order' is neither True nor False");
    const double inf[2] = {1, 1.0 / 0.0};
    npy_fails(HDR("<f8", "(2,)"), inf, sizeof inf,
              "element 1 (counting from 0, in C order) is infinity, not a finite number");
    npy_fails(HDR("|u1", "(65536, 65536)"), NULL, 0, "the shape (65536, 65536) has more than 2147483647 elements");
    char err[256];
    const char *path = write_tmp("t,x\n0,1\n");
    ck_assert_ptr_null(nd_npy_read(path, err, sizeof err));
    unlink(path);
    char want[256];
    snprintf(want, sizeof want, "%s: not a .npy file (it does not start with the bytes \\x93NUMPY)", path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(nd_npy_read("/nonexistent/x.npy", err, sizeof err));
    ck_assert_str_eq(err, "cannot open '/nonexistent/x.npy': No such file or directory");
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
    tc = tcase_create("npy");
    tcase_add_test(tc, test_npy_float);
    tcase_add_test(tc, test_npy_integers);
    tcase_add_test(tc, test_npy_header_spellings);
    tcase_add_test(tc, test_npy_refused);
    suite_add_tcase(s, tc);
    return s;
}
