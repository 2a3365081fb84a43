/* Tests of the runtime's output and random numbers (runtime/io/nd_csv_write.c,
 * runtime/train/nd_random.c): CSV quoting and exact read-back, write failures,
 * the terminal table, and the seeded generator against reference values. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_csv_write.h"
#include "nd_output.h"
#include "nd_random.h"

Suite *runtime_io_suite(void);

/* A fresh path in the temporary directory; the caller unlinks it. */
static void temp_path(char *buf, size_t size)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, size, "%s/nd_io_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(buf);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

/* The whole file as a malloc'd string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* ---- CSV ---- */

START_TEST(test_csv_header_quoting)
{
    const char *names[4] = {"x", "W[0,1]", "say \"hi\"", "two\nlines"};
    double t[2] = {0.0, 0.5}, data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char path[256];
    temp_path(path, sizeof path);
    ck_assert_int_eq(nd_write_csv(path, 4, names, 2, t, data), 0);
    char *text = slurp(path);
    ck_assert_str_eq(text, "t,x,\"W[0,1]\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
                           "0,1,2,3,4\n"
                           "0.5,5,6,7,8\n");
    free(text);
    unlink(path);
}
END_TEST

START_TEST(test_csv_field)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    nd_csv_field(f, "plain");
    fputc('|', f);
    nd_csv_field(f, "a,b");
    fputc('|', f);
    nd_csv_field(f, "\"");
    fputc('|', f);
    nd_csv_field(f, "");
    fputc('|', f);
    nd_csv_field(f, "cr\r");
    fclose(f);
    ck_assert_str_eq(buf, "plain|\"a,b\"|\"\"\"\"||\"cr\r\"");
    free(buf);
}
END_TEST

/* Reads the numbers of a CSV (no quoted fields in the body) back with strtod. */
static int read_numbers(const char *text, double *out, int max)
{
    const char *c = strchr(text, '\n') + 1; /* skip the header */
    int n = 0;
    while (*c && n < max) {
        char *end;
        out[n++] = strtod(c, &end);
        ck_assert_ptr_ne(end, c);
        ck_assert(*end == ',' || *end == '\n');
        c = end + 1;
    }
    return n;
}

START_TEST(test_csv_round_trip)
{
    enum { ROWS = 6 };
    const char *names[2] = {"y[0]", "y[1]"};
    double t[ROWS] = {0.0, 0.1, 1.0 / 3.0, M_PI, 1e-300, -2.5e300};
    double data[ROWS * 2] = {
        0.1 + 0.2, -1.0 / 7.0, DBL_MIN, DBL_MAX, 4.9406564584124654e-324 /* denormal */,
        -0.0, exp(1.0), nextafter(1.0, 2.0), 123456789.123456789, -1e-5,
        8.153615386705436, 2.0 / 3.0};
    char path[256];
    temp_path(path, sizeof path);
    ck_assert_int_eq(nd_write_csv(path, 2, names, ROWS, t, data), 0);
    char *text = slurp(path);
    double back[ROWS * 3];
    ck_assert_int_eq(read_numbers(text, back, ROWS * 3), ROWS * 3);
    for (int r = 0; r < ROWS; r++) {
        ck_assert(memcmp(&back[r * 3], &t[r], sizeof(double)) == 0);
        ck_assert(memcmp(&back[r * 3 + 1], &data[r * 2], 2 * sizeof(double)) == 0);
    }
    free(text);
    unlink(path);
}
END_TEST

START_TEST(test_csv_write_failures)
{
    const char *names[1] = {"x"};
    double t[1] = {0.0}, data[1] = {1.0};
    errno = 0;
    ck_assert_int_eq(nd_write_csv("/nonexistent-dir/out.csv", 1, names, 1, t, data), -1);
    ck_assert_int_ne(errno, 0);
    errno = 0;
    ck_assert_int_eq(nd_write_csv(NULL, 1, names, 1, t, data), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* a full disk shows only when the buffer is flushed at fclose */
    if (access("/dev/full", W_OK) == 0) {
        errno = 0;
        ck_assert_int_eq(nd_write_csv("/dev/full", 1, names, 1, t, data), -1);
        ck_assert_int_eq(errno, ENOSPC);
    }
}
END_TEST

/* nd_output: symlinks followed to where a write lands; what cannot be written
 * is named before anything is. */
START_TEST(test_output_paths)
{
    char dir[] = "/tmp/nd_output_XXXXXX", path[256], link[256], target[512], err[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.csv", dir);
    snprintf(link, sizeof link, "%s/l.csv", dir);
    ck_assert_int_eq(symlink("sub/x.csv", link), 0); /* relative, dangling */
    ck_assert_int_eq(nd_output_target(link, target, sizeof target), 0);
    char want[512];
    snprintf(want, sizeof want, "%s/sub/x.csv", dir);
    ck_assert_str_eq(target, want);
    ck_assert_int_eq(nd_output_check(path, 0, err, sizeof err), 0); /* not there yet */
    ck_assert_int_eq(nd_output_check(link, 0, err, sizeof err), -1);
    snprintf(want, sizeof want, "cannot write '%s': folder '%s/sub' does not exist", link, dir);
    ck_assert_str_eq(err, want);
    snprintf(want, sizeof want, "%s/sub", dir);
    ck_assert_int_eq(mkdir(want, 0777), 0);
    ck_assert_int_eq(nd_output_check(link, 1, err, sizeof err), 0);
    ck_assert_int_eq(nd_output_check(want, 0, err, sizeof err), -1); /* a folder */
    ck_assert_ptr_nonnull(strstr(err, "it is a folder"));
    ck_assert_int_eq(nd_output_check("/dev/null", 0, err, sizeof err), 0); /* in place: fine */
    ck_assert_int_eq(nd_output_check("/dev/null", 1, err, sizeof err), -1); /* replaced: no */
    ck_assert_str_eq(err, "cannot write '/dev/null': it is not a regular file (a save replaces "
                          "the file at its path)");
    snprintf(path, sizeof path, "%s/loop", dir);
    ck_assert_int_eq(symlink("loop", path), 0);
    ck_assert_int_eq(nd_output_target(path, target, sizeof target), -1);
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_int_eq(nd_output_check("", 0, err, sizeof err), -1);
    unlink(path);
    unlink(link);
    rmdir(want);
    rmdir(dir);
}
END_TEST

START_TEST(test_print_table)
{
    const char *names[2] = {"x", "a_rather_long_state_name"};
    double t[2] = {0.0, 1.0}, data[4] = {2.0, -1.5, 2.75, 8.153615386705436};
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    nd_print_table(f, 2, names, 2, t, data);
    fclose(f);
    /* columns right-aligned, at least 17 wide, wider for a long name; 10 digits */
    ck_assert_str_eq(buf, "                t                  x  a_rather_long_state_name\n"
                          "                0                  2                      -1.5\n"
                          "                1               2.75               8.153615387\n");
    free(buf);
}
END_TEST

/* ---- random numbers ---- */

START_TEST(test_random_reference_values)
{
    /* xoshiro256** seeded by splitmix64: values from an independent Python
     * transcription of the reference C code (prng.di.unimi.it) */
    NdRandom r;
    nd_random_seed(&r, 42);
    ck_assert_uint_eq(nd_random_u64(&r), 0x15780b2e0c2ec716u);
    ck_assert_uint_eq(nd_random_u64(&r), 0x6104d9866d113a7eu);
    ck_assert_uint_eq(nd_random_u64(&r), 0xae17533239e499a1u);
    nd_random_seed(&r, 0);
    ck_assert_uint_eq(nd_random_u64(&r), 0x99ec5f36cb75f2b4u);
    ck_assert_uint_eq(nd_random_u64(&r), 0xbf6e1f784956452au);
}
END_TEST

START_TEST(test_random_same_seed_same_stream)
{
    NdRandom a, b, c;
    nd_random_seed(&a, 12345);
    nd_random_seed(&b, 12345);
    nd_random_seed(&c, 12346);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = nd_random_u64(&a), y = nd_random_u64(&b), z = nd_random_u64(&c);
        ck_assert_uint_eq(x, y);
        differ += x != z;
    }
    ck_assert_int_ge(differ, 999);
    /* the cached Box–Muller spare is part of the state too */
    nd_random_seed(&a, 7);
    nd_random_seed(&b, 7);
    for (int i = 0; i < 11; i++)
        ck_assert(nd_random_normal(&a, 0, 1) == nd_random_normal(&b, 0, 1));
    nd_random_seed(&a, 7); /* reseeding drops the spare */
    nd_random_seed(&c, 7);
    ck_assert(nd_random_normal(&a, 0, 1) == nd_random_normal(&c, 0, 1));
}
END_TEST

/* Streams of one seed: stream 0 is the plain seed; other streams share no
 * words with it or with each other (not shifted copies), and a stream's
 * words depend on the seed too. */
START_TEST(test_random_streams)
{
    enum { N = 256, STREAMS = 4 };
    static uint64_t words[STREAMS + 1][N];
    NdRandom r, plain;
    nd_random_seed(&plain, 99);
    nd_random_seed_stream(&r, 99, 0);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(nd_random_u64(&r), nd_random_u64(&plain));
    for (int s = 0; s < STREAMS; s++) {
        nd_random_seed_stream(&r, 99, (uint64_t)s);
        for (int i = 0; i < N; i++)
            words[s][i] = nd_random_u64(&r);
    }
    nd_random_seed_stream(&r, 100, 1);
    for (int i = 0; i < N; i++)
        words[STREAMS][i] = nd_random_u64(&r);
    for (int s = 0; s <= STREAMS; s++)
        for (int t = s + 1; t <= STREAMS; t++)
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++)
                    ck_assert_msg(words[s][i] != words[t][j], "streams %d and %d share a word", s, t);
    nd_random_seed_stream(&r, 99, 3); /* reproducible */
    ck_assert_uint_eq(nd_random_u64(&r), words[3][0]);
}
END_TEST

enum { N_DRAWS = 100000 };

static void mean_var(const double *x, int n, double *mean, double *var)
{
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *var = ss / (n - 1);
}

START_TEST(test_random_uniform_moments)
{
    /* U[a, b): mean (a+b)/2, variance (b-a)^2/12; the standard error of the mean
     * is sqrt(var/n) ~ 0.0027 here, so the tolerances are > 5 sigma */
    static double x[N_DRAWS];
    NdRandom r;
    nd_random_seed(&r, 2024);
    double a = -1.0, b = 2.0, lo = b, hi = a;
    for (int i = 0; i < N_DRAWS; i++) {
        x[i] = nd_random_uniform(&r, a, b);
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    double mean, var;
    mean_var(x, N_DRAWS, &mean, &var);
    ck_assert_double_ge(lo, a);
    ck_assert_double_lt(hi, b);
    ck_assert_double_eq_tol(mean, 0.5, 0.015);
    ck_assert_double_eq_tol(var, 0.75, 0.015);
}
END_TEST

START_TEST(test_random_normal_moments)
{
    /* N(3, 2^2): standard errors 0.0063 for the mean and ~0.018 for the variance */
    static double x[N_DRAWS];
    NdRandom r;
    nd_random_seed(&r, 99);
    for (int i = 0; i < N_DRAWS; i++)
        x[i] = nd_random_normal(&r, 3.0, 2.0);
    double mean, var, within1 = 0.0;
    mean_var(x, N_DRAWS, &mean, &var);
    for (int i = 0; i < N_DRAWS; i++)
        within1 += fabs(x[i] - 3.0) < 2.0;
    ck_assert_double_eq_tol(mean, 3.0, 0.035);
    ck_assert_double_eq_tol(var, 4.0, 0.1);
    ck_assert_double_eq_tol(within1 / N_DRAWS, 0.682689492, 0.008); /* P(|Z| < 1) */
}
END_TEST

Suite *runtime_io_suite(void)
{
    Suite *s = suite_create("runtime_io");
    TCase *tc = tcase_create("csv");
    tcase_add_test(tc, test_csv_header_quoting);
    tcase_add_test(tc, test_csv_field);
    tcase_add_test(tc, test_csv_round_trip);
    tcase_add_test(tc, test_csv_write_failures);
    tcase_add_test(tc, test_print_table);
    tcase_add_test(tc, test_output_paths);
    suite_add_tcase(s, tc);
    tc = tcase_create("random");
    tcase_add_test(tc, test_random_reference_values);
    tcase_add_test(tc, test_random_same_seed_same_stream);
    tcase_add_test(tc, test_random_streams);
    tcase_add_test(tc, test_random_uniform_moments);
    tcase_add_test(tc, test_random_normal_moments);
    suite_add_tcase(s, tc);
    return s;
}
