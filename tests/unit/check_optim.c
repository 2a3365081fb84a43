/* Optimizers against their update rules computed by hand (PyTorch's
 * definitions), and parameter files: exact round trip and every load error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_data.h"
#include "nd_optim.h"

/* Two steps of each optimizer on p = [1, -2] with gradients g1 then g2. */
static void two_steps(NdOptimKind kind, double lr, double out[2])
{
    NdOptimConfig cfg = nd_optim_defaults(kind, lr);
    NdOptim *o = nd_optim_create(&cfg, 2);
    ck_assert_ptr_nonnull(o);
    out[0] = 1;
    out[1] = -2;
    const double g1[2] = {0.5, -1}, g2[2] = {0.25, 2};
    nd_optim_step(o, out, g1);
    nd_optim_step(o, out, g2);
    nd_optim_free(o);
}

START_TEST(test_sgd)
{
    double p[2];
    two_steps(ND_OPT_SGD, 0.1, p);
    ck_assert_double_eq_tol(p[0], 1 - 0.1 * 0.5 - 0.1 * 0.25, 1e-15);
    ck_assert_double_eq_tol(p[1], -2 + 0.1 - 0.2, 1e-15);
}
END_TEST

START_TEST(test_momentum)
{
    double p[2];
    two_steps(ND_OPT_MOMENTUM, 0.1, p);
    /* v1 = g1; v2 = 0.9 g1 + g2 */
    ck_assert_double_eq_tol(p[0], 1 - 0.1 * 0.5 - 0.1 * (0.45 + 0.25), 1e-15);
    ck_assert_double_eq_tol(p[1], -2 + 0.1 - 0.1 * (-0.9 + 2), 1e-15);
}
END_TEST

START_TEST(test_adam)
{
    double p[2];
    two_steps(ND_OPT_ADAM, 0.01, p);
    double want[2] = {1, -2};
    const double g[2][2] = {{0.5, -1}, {0.25, 2}};
    double m[2] = {0}, v[2] = {0};
    for (int t = 1; t <= 2; t++)
        for (int i = 0; i < 2; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[t - 1][i];
            v[i] = 0.999 * v[i] + 0.001 * g[t - 1][i] * g[t - 1][i];
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            want[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
        }
    ck_assert_double_eq_tol(p[0], want[0], 1e-15);
    ck_assert_double_eq_tol(p[1], want[1], 1e-15);
    /* by hand: step 1 moves by lr exactly; step 2 by lr (0.07/0.19) / sqrt(0.00031225/0.001999) */
    ck_assert_double_eq_tol(p[0], 1 - 0.01 - 0.01 * (0.07 / 0.19) / sqrt(0.00031225 / 0.001999),
                            1e-9);
}
END_TEST

START_TEST(test_rmsprop)
{
    double p[2];
    two_steps(ND_OPT_RMSPROP, 0.001, p);
    double v0 = 0.01 * 0.25, v1 = 0.99 * v0 + 0.01 * 0.0625;
    ck_assert_double_eq_tol(p[0], 1 - 0.001 * 0.5 / (sqrt(v0) + 1e-8) -
                                      0.001 * 0.25 / (sqrt(v1) + 1e-8), 1e-15);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_int_eq(nd_optim_kind_from_name("sgd"), ND_OPT_SGD);
    ck_assert_int_eq(nd_optim_kind_from_name("rmsprop"), ND_OPT_RMSPROP);
    ck_assert_int_eq(nd_optim_kind_from_name("adamw"), -1);
}
END_TEST

/* ---- parameter files ---- */

static const char *names[] = {"k", "f.l1.W"};
static const int offsets[] = {0, 1}, sizes[] = {1, 4};

static char *temp_path(void)
{
    static char path[64];
    strcpy(path, "/tmp/nodec_params_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return path;
}

START_TEST(test_params_round_trip)
{
    const double p[5] = {0.1, 1.0 / 3, -2e-300, 4.5, M_PI};
    char *path = temp_path();
    ck_assert_int_eq(nd_params_save(path, 2, names, offsets, sizes, p), 0);
    double q[5] = {0};
    char err[256];
    ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), 0);
    ck_assert_mem_eq(p, q, sizeof p);
    unlink(path);
}
END_TEST

static void expect_load_error(const char *text, const char *want)
{
    char *path = temp_path();
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    double q[5];
    char err[256];
    ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want), "got '%s', want '%s'", err, want);
    unlink(path);
}

START_TEST(test_params_errors)
{
    expect_load_error("k 1\nf.l1.W 1 2 3\n", "parameter 'f.l1.W' needs 4 values, found 3");
    expect_load_error("k 1\nf.l1.W 1 2 3 4 5\n", "too many values");
    expect_load_error("k 1\nf.l1.W 1 2 x 4\n", "not a number");
    expect_load_error("k 1\ng 1\n", ":2: unknown parameter 'g'");
    expect_load_error("k 1\n", "parameter 'f.l1.W' is missing");
    char err[256];
    double q[5];
    ck_assert_int_eq(nd_params_load("/nonexistent/p", 2, names, offsets, sizes, q, err, sizeof err),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

Suite *optim_suite(void);
Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optimizers");
    tcase_add_test(tc, test_sgd);
    tcase_add_test(tc, test_momentum);
    tcase_add_test(tc, test_adam);
    tcase_add_test(tc, test_rmsprop);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_params_round_trip);
    tcase_add_test(tc, test_params_errors);
    suite_add_tcase(s, tc);
    return s;
}
