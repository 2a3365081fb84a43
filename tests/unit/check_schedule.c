/* Learning-rate schedules against PyTorch's schedulers: each table below is the
 * lr that torch.optim.lr_scheduler gave (torch 1.13, float64, /usr/bin/python3)
 * for the same settings, step by step: SequentialLR([LinearLR(start_factor = 1/W,
 * total_iters = W - 1), D], milestones = [W]) for a warm-up of W steps, D alone
 * without one. A few values are also worked out by hand. */
#include <check.h>
#include <math.h>

#include "nd_schedule.h"

static void expect_lrs(NdSchedule s, const double *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(nd_schedule_lr(&s, i + 1) - want[i]) <= 1e-15 * fabs(want[i]),
                      "%s step %d: got %.17g, want %.17g", nd_schedule_name(s.kind), i + 1,
                      nd_schedule_lr(&s, i + 1), want[i]);
}

static NdSchedule make(NdScheduleKind kind, double lr, long steps, double warmup)
{
    NdSchedule s = nd_schedule_defaults(kind, lr, steps);
    s.warmup = warmup;
    return s;
}

START_TEST(test_cosine)
{
    /* CosineAnnealingLR(T_max = 7, eta_min = 0.1) after 3 steps of warm-up */
    static const double warm[10] = {0.3333333333333333, 0.6666666666666666, 1.0, 1.0,
                                    0.9554359905560885, 0.83057041083643, 0.6501344202803414,
                                    0.44986557971965857, 0.26942958916356996,
                                    0.14456400944391146};
    NdSchedule s = make(ND_SCHED_COSINE, 1.0, 10, 3);
    s.min_lr = 0.1;
    expect_lrs(s, warm, 10);
    /* CosineAnnealingLR(T_max = 6) from 0.01; step 4 by hand: 0.01 (1 + cos(pi/2)) / 2 */
    static const double plain[6] = {0.01, 0.009330127018922194, 0.007500000000000001, 0.005,
                                    0.0025000000000000014, 0.0006698729810778065};
    expect_lrs(make(ND_SCHED_COSINE, 0.01, 6, 0), plain, 6);
    ck_assert_double_eq_tol(plain[3], 0.005, 1e-18);
}
END_TEST

START_TEST(test_step)
{
    static const double warm[10] = {0.3333333333333333, 0.6666666666666666, 1.0, 1.0, 1.0, 0.5,
                                    0.5, 0.25, 0.25, 0.125};
    NdSchedule s = make(ND_SCHED_STEP, 1.0, 10, 3);
    s.every = 2;
    s.gamma = 0.5;
    expect_lrs(s, warm, 10);
    static const double plain[7] = {0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001};
    s = make(ND_SCHED_STEP, 0.01, 7, 0);
    s.every = 3; /* gamma: StepLR's default 0.1 */
    expect_lrs(s, plain, 7);
}
END_TEST

START_TEST(test_exponential)
{
    static const double warm[10] = {0.3333333333333333, 0.6666666666666666, 1.0, 1.0, 0.9,
                                    0.81, 0.7290000000000001, 0.6561000000000001,
                                    0.5904900000000002, 0.5314410000000002};
    NdSchedule s = make(ND_SCHED_EXPONENTIAL, 1.0, 10, 3);
    s.gamma = 0.9;
    expect_lrs(s, warm, 10);
    static const double plain[5] = {0.001, 0.000999, 0.000998001, 0.000997002999,
                                    0.000996005996001};
    s = make(ND_SCHED_EXPONENTIAL, 0.001, 5, 0);
    s.gamma = 0.999;
    expect_lrs(s, plain, 5);
}
END_TEST

/* constant with a warm-up is the ramp then lr; a warm-up of 1 is no warm-up. */
START_TEST(test_constant_and_names)
{
    static const double want[6] = {0.25, 0.5, 0.75, 1, 1, 1};
    expect_lrs(make(ND_SCHED_CONSTANT, 1.0, 6, 4), want, 6);
    ck_assert_double_eq(nd_schedule_lr(&(NdSchedule){.kind = ND_SCHED_EXPONENTIAL, .lr = 2,
                                                     .warmup = 1, .gamma = 0.5}, 1), 2);
    ck_assert_int_eq(nd_schedule_kind_from_name("cosine"), ND_SCHED_COSINE);
    ck_assert_int_eq(nd_schedule_kind_from_name("linear"), -1);
    ck_assert_uint_eq(nd_schedule_required(ND_SCHED_STEP), ND_SBIT_EVERY);
    ck_assert_uint_eq(nd_schedule_required(ND_SCHED_EXPONENTIAL), ND_SBIT_GAMMA);
}
END_TEST

Suite *schedule_suite(void);
Suite *schedule_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("schedules");
    tcase_add_test(tc, test_cosine);
    tcase_add_test(tc, test_step);
    tcase_add_test(tc, test_exponential);
    tcase_add_test(tc, test_constant_and_names);
    suite_add_tcase(s, tc);
    return s;
}
