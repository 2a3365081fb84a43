/* Optimizers against their update rules computed by hand (PyTorch's
 * definitions), and safetensors parameter files: exact round trip, a byte-exact
 * golden, other writers' files, atomic replacement and every load error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_params_file.h"
#include "nd_optim.h"
#include "nd_safetensors.h"

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

/* PyTorch's AdamW (default weight_decay 0.01): p *= 1 - lr wd, then Adam's step
 * on the bare gradient. Step 1 by hand: p0 = 1 (1 - 1e-4) - 0.01 (0.05 / 0.1) /
 * (sqrt(0.00025 / 0.001) + 1e-8) = 0.9999 - 0.01 * 0.5 / 0.50000001; both steps'
 * values from the formula in /usr/bin/python3 (torch.optim.AdamW's float64
 * run gives the same to 1e-16). */
START_TEST(test_adamw)
{
    NdOptimConfig cfg = nd_optim_defaults(ND_OPT_ADAMW, 0.01);
    ck_assert_double_eq(cfg.weight_decay, 0.01);
    ck_assert_double_eq(nd_optim_defaults(ND_OPT_ADAM, 0.01).weight_decay, 0);
    NdOptim *o = nd_optim_create(&cfg, 2);
    double p[2] = {1, -2};
    const double g1[2] = {0.5, -1}, g2[2] = {0.25, 2};
    nd_optim_step(o, p, g1);
    ck_assert_double_eq_tol(p[0], 0.9999 - 0.01 * 0.5 / 0.50000001, 1e-15);
    nd_optim_step(o, p, g2);
    ck_assert_double_eq_tol(p[0], 0.9804792140477262, 1e-15);
    ck_assert_double_eq_tol(p[1], -1.9932620553471976, 1e-15);
    nd_optim_free(o);
    /* the decay is not in the moments: with a zero gradient only it moves p */
    cfg.weight_decay = 0.5;
    o = nd_optim_create(&cfg, 1);
    double q = 2, zero = 0;
    nd_optim_step(o, &q, &zero);
    ck_assert_double_eq_tol(q, 2 * (1 - 0.01 * 0.5), 1e-15);
    ck_assert_double_eq(nd_optim_get_moment(o, ND_MOMENT_M)[0], 0);
    nd_optim_free(o);
}
END_TEST

/* A learning rate set between steps is the one the next step uses. */
START_TEST(test_set_lr)
{
    NdOptimConfig cfg = nd_optim_defaults(ND_OPT_SGD, 0.1);
    NdOptim *o = nd_optim_create(&cfg, 1);
    double p = 1, g = 2;
    nd_optim_set_lr(o, 0.25);
    ck_assert_double_eq(nd_optim_get_lr(o), 0.25);
    nd_optim_step(o, &p, &g);
    ck_assert_double_eq(p, 0.5);
    nd_optim_free(o);
}
END_TEST

/* f(x, y) = (x - 1)^2 + 10 (y + 0.5)^2 + x^2 y^2 and its gradient. */
static double lbfgs_f(const double *p, double *g)
{
    double x = p[0], y = p[1];
    if (g) {
        g[0] = 2 * (x - 1) + 2 * x * y * y;
        g[1] = 20 * (y + 0.5) + 2 * x * x * y;
    }
    return (x - 1) * (x - 1) + 10 * (y + 0.5) * (y + 0.5) + x * x * y * y;
}

/* Without a line search, lbfgs is torch.optim.LBFGS(lr = 0.5, max_iter = 1,
 * history_size = 3) step for step: its iterates from (-1, 1.5) (torch 1.13,
 * float64), eight steps so that the history fills and drops its oldest pair. The
 * first by hand: g = (-4 - 4.5, 40 + 3) = (-8.5, 43), t = min(1, 1/51.5) 0.5, p -= t g. */
START_TEST(test_lbfgs_pytorch)
{
    static const double want[8][2] = {
        {-0.9174757281553398, 1.0825242718446602}, {-0.832475287901307, 0.34564632469943535},
        {-0.7511270211814886, -0.05231151762482994}, {-0.6304875380074364, -0.2723066543507375},
        {-0.4600443014638484, -0.4157126522158064}, {-0.21702994675025708, -0.5231325936743232},
        {0.09052633212519243, -0.5829049364951848}, {0.40442412394314453, -0.5575825286558757}};
    NdOptimConfig cfg = nd_optim_defaults(ND_OPT_LBFGS, 0.5);
    ck_assert_double_eq(cfg.history, 10);
    cfg.history = 3;
    NdOptim *o = nd_optim_create(&cfg, 2);
    double p[2] = {-1, 1.5}, g[2];
    for (int k = 0; k < 8; k++) {
        lbfgs_f(p, g);
        nd_optim_step(o, p, g);
        if (k == 0)
            ck_assert_double_eq_tol(p[0], -1 + 0.5 / 51.5 * 8.5, 1e-15);
        ck_assert_double_eq_tol(p[0], want[k][0], 1e-13);
        ck_assert_double_eq_tol(p[1], want[k][1], 1e-13);
    }
    nd_optim_free(o);
}
END_TEST

static int quartic(void *ctx, const double *p, double *L)
{
    ++*(int *)ctx;
    *L = p[0] * p[0] * p[0] * p[0];
    return 0;
}

/* The Armijo backtracking by hand on f = x^4 from x = 1 with lr = 2: g = 4, the
 * first step t = min(1, 1/4) 2 = 0.5 along d = -4 lands at -1, where f = 1 is not
 * below 1 + 1e-4 (0.5)(-16); halved, t = 0.25 lands at 0: accepted, two
 * evaluations. */
START_TEST(test_lbfgs_armijo)
{
    NdOptimConfig cfg = nd_optim_defaults(ND_OPT_LBFGS, 2);
    NdOptim *o = nd_optim_create(&cfg, 1);
    double p = 1, g = 4;
    int calls = 0;
    ck_assert_int_eq(nd_optim_step_search(o, &p, &g, 1.0, quartic, &calls), 2);
    ck_assert_int_eq(calls, 2);
    ck_assert_double_eq(p, 0);
    /* at a zero gradient it stays (PyTorch's tolerance_grad) */
    g = 0;
    ck_assert_int_eq(nd_optim_step_search(o, &p, &g, 0.0, quartic, &calls), 0);
    ck_assert_double_eq(p, 0);
    nd_optim_free(o);
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
    ck_assert_int_eq(nd_optim_kind_from_name("adamw"), ND_OPT_ADAMW);
    ck_assert_int_eq(nd_optim_kind_from_name("adagrad"), -1);
}
END_TEST

/* ---- parameter files (safetensors) ---- */

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

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char buf[4096];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* The folder of path holds no leftover temporary file of it. */
static void assert_no_temp(const char *path)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls %s.tmp-* >/dev/null 2>&1", path);
    ck_assert_int_ne(system(cmd), 0);
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
    assert_no_temp(path);
    unlink(path);
}
END_TEST

/* The exact bytes of a tiny file, worked out by hand: the header length 144 (143
 * bytes of JSON and one space of padding), the JSON, then 0.5, 1, -2 as
 * little-endian IEEE doubles. */
START_TEST(test_safetensors_golden)
{
    static const char json[] =
        "{\"__metadata__\":{\"format\":\"nodec\"},"
        "\"k\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"W\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[8,24]}} ";
    static const unsigned char len[8] = {144, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char data[24] = {0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0, 0, 0, 0, 0, 0, 0xf0,
                                           0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0};
    const NdTensorSpec specs[2] = {{"k", 0, 1, 0, {0}}, {"W", 1, 2, 2, {1, 2}}};
    const double p[3] = {0.5, 1, -2};
    static const char *const meta[] = {"format", "nodec"};
    char *path = temp_path(), err[256];
    ck_assert_int_eq(nd_safetensors_save(path, 2, specs, p, 1, meta, err, sizeof err), 0);
    size_t n;
    unsigned char *got = slurp(path, &n);
    ck_assert_uint_eq(sizeof json - 1, 144);
    ck_assert_uint_eq(n, 8 + 144 + 24);
    ck_assert_mem_eq(got, len, 8);
    ck_assert_mem_eq(got + 8, json, 144);
    ck_assert_mem_eq(got + 152, data, 24);
    double q[3] = {0};
    ck_assert_int_eq(nd_safetensors_load(path, 2, specs, q, err, sizeof err), 0);
    ck_assert_mem_eq(p, q, sizeof p);
    unlink(path);
}
END_TEST

/* Writes a safetensors file from a JSON header (padded here) and raw data. */
static char *write_raw(const char *json, const void *data, size_t dlen)
{
    char *path = temp_path();
    size_t h = strlen(json), pad = (8 - h % 8) % 8;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((h + pad) >> (8 * i));
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, 8, f);
    fputs(json, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fwrite(data, 1, dlen, f);
    fclose(f);
    return path;
}

#define TENSOR(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void expect_load_error(const char *json, size_t dlen, const char *want)
{
    static const double data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char *path = write_raw(json, data, dlen);
    double q[5] = {-1, -1, -1, -1, -1};
    char err[256];
    ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want), "got '%s', want '%s'", err, want);
    ck_assert_msg(strstr(err, path), "'%s' does not name the file", err);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(q[i], -1); /* untouched */
    unlink(path);
}

START_TEST(test_params_errors)
{
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "}", 8, "tensor 'f.l1.W' is missing");
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("f.l1.W", "F64", "[3]", 8, 32)
                      "}", 32, "tensor 'f.l1.W' has shape [3], the model's parameter has shape [4]");
    expect_load_error("{" TENSOR("k", "I64", "[]", 0, 8) "," TENSOR("f.l1.W", "F64", "[4]", 8, 40)
                      "}", 40, "tensor 'k' has dtype I64; nodec reads F64 and F32");
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("g", "F64", "[4]", 8, 40) "}",
                      40, "tensor 'g' is not a parameter of this model");
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("k", "F64", "[]", 0, 8) "}",
                      8, "tensor 'k' appears twice");
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("f.l1.W", "F64", "[2,2]", 8,
                      40) "}", 32, "tensor 'f.l1.W' has data_offsets [8, 40]");
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 4) "}", 8, "tensor 'k' has data_offsets");
    expect_load_error("{\"k\":{\"dtype\":\"F64\",\"shape\":[]}}", 8,
                      "a tensor needs dtype, shape and data_offsets");
    expect_load_error("{\"k\" {}}", 8, "bad safetensors header: not valid JSON at byte 13");
    expect_load_error("{\"k\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}", 8,
                      "bad safetensors header: not valid JSON");
    expect_load_error("{\"k\":{\"dtype\":\"F64\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8,
                      "tensor 'k': shape must be a list of at most 8 whole numbers");
    expect_load_error("{\"k\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8.5]}}", 8,
                      "tensor 'k': data_offsets needs 2 numbers");
    expect_load_error("{\"k\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,8]}}", 8,
                      "tensor 'k': dtype must be a short string");
    expect_load_error("[1, 2]", 8, "not a safetensors file");
    /* the old text format, and a missing file */
    char *path = temp_path();
    FILE *f = fopen(path, "w");
    fputs("k 1\nf.l1.W 1 2 3 4\n", f);
    fclose(f);
    double q[5];
    char err[256];
    ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not a safetensors file"), "%s", err);
    unlink(path);
    ck_assert_int_eq(nd_params_load("/nonexistent/p", 2, names, offsets, sizes, q, err, sizeof err),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

/* What other writers produce: F32 data, metadata anywhere, any tensor order,
 * escapes in strings, unknown keys, a shape of any rank with the right count. */
START_TEST(test_params_foreign_files)
{
    const float data[5] = {4, 0.25f, -1.5f, 3, 1e-3f};
    char *path = write_raw("{ \"f.l1.W\" : {\"shape\":[2,2],\"dtype\":\"F32\",\"data_offsets\":[4,20],"
                           "\"extra\":[1,{\"a\":null}]},\n \"__metadata__\":{\"format\":\"np\"},"
                           "\"\\u006b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                           data, sizeof data);
    double q[5] = {0};
    char err[256];
    ck_assert_msg(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(q[i], (double)data[i]);
    unlink(path);
}
END_TEST

/* A training's optimizer state (`__optim.` tensors) is not a parameter: any load
 * that does not ask for it skips it, and the metadata naming the optimizer reads
 * back; a name outside the reserved prefix is still an error. */
START_TEST(test_params_optimizer_state)
{
    static const double data[7] = {1, 2, 3, 4, 5, 6, 7};
    char *path = write_raw("{\"__metadata__\":{\"optimizer\":\"adam\",\"step\":\"12\"},"
                           TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("f.l1.W", "F64", "[4]", 8, 40)
                           "," TENSOR("__optim.m.k", "F64", "[]", 40, 48) ","
                           TENSOR("__optim.v.k", "F64", "[]", 48, 56) "}", data, sizeof data);
    double q[5] = {0};
    char err[256], value[16];
    ck_assert_msg(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(q, data, sizeof q);
    ck_assert_int_eq(nd_safetensors_get_meta(path, "optimizer", value, sizeof value, err, sizeof err), 1);
    ck_assert_str_eq(value, "adam");
    ck_assert_int_eq(nd_safetensors_get_meta(path, "step", value, sizeof value, err, sizeof err), 1);
    ck_assert_str_eq(value, "12");
    ck_assert_int_eq(nd_safetensors_get_meta(path, "model", value, sizeof value, err, sizeof err), 0);
    /* asked for, the state loads like any tensor */
    const NdTensorSpec specs[2] = {{"k", 0, 1, 0, {0}}, {"__optim.v.k", 1, 1, 0, {0}}};
    double kv[2] = {0};
    const NdTensorSpec all[4] = {{"k", 0, 1, 0, {0}}, {"f.l1.W", 1, 4, 1, {4}},
                                 {"__optim.m.k", 5, 1, 0, {0}}, {"__optim.v.k", 6, 1, 0, {0}}};
    double every[7] = {0};
    ck_assert_msg(nd_safetensors_load(path, 4, all, every, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(every, data, sizeof every);
    ck_assert_int_eq(nd_safetensors_load(path, 2, specs, kv, err, sizeof err), -1); /* f.l1.W */
    unlink(path);
    expect_load_error("{" TENSOR("k", "F64", "[]", 0, 8) "," TENSOR("f.l1.W", "F64", "[4]", 8, 40)
                      "," TENSOR("__optimm", "F64", "[]", 40, 48) "}", 48,
                      "tensor '__optimm' is not a parameter of this model");
    ck_assert_int_eq(nd_safetensors_get_meta("/nonexistent/p", "step", value, sizeof value, err,
                                             sizeof err), -1);
}
END_TEST

/* Every truncation of a good file is an error with a message, and corrupting any
 * header byte never crashes the reader (ASan runs this) nor half-loads. */
START_TEST(test_params_corrupt)
{
    const double p[5] = {1, 2, 3, 4, 5};
    char *path = temp_path(), err[256];
    ck_assert_int_eq(nd_params_save(path, 2, names, offsets, sizes, p), 0);
    size_t n;
    unsigned char good[4096];
    memcpy(good, slurp(path, &n), sizeof good);
    for (size_t len = 0; len < n; len++) {
        FILE *f = fopen(path, "wb");
        fwrite(good, 1, len, f);
        fclose(f);
        double q[5] = {0};
        err[0] = '\0';
        ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), -1);
        ck_assert_msg(err[0] != '\0', "no message at length %zu", len);
    }
    static const char bytes[] = {'"', '{', '}', '[', ']', ',', ':', '9', ' ', '\\', 'x', 0, -1};
    size_t hlen = good[0];
    for (size_t i = 8; i < 8 + hlen; i++)
        for (size_t b = 0; b < sizeof bytes; b++) {
            unsigned char bad[4096];
            memcpy(bad, good, n);
            bad[i] = (unsigned char)bytes[b];
            FILE *f = fopen(path, "wb");
            fwrite(bad, 1, n, f);
            fclose(f);
            double q[5] = {0};
            if (nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err) == 0)
                ck_assert_mem_eq(q, p, sizeof q); /* a harmless change (in padding, say) */
            else
                ck_assert_mem_eq(q, (double[5]){0}, sizeof q);
        }
    unlink(path);
}
END_TEST

/* Saving replaces a file in one step, and a failed save leaves nothing behind. */
START_TEST(test_params_atomic)
{
    char *path = temp_path();
    const double p[5] = {1, 2, 3, 4, 5}, p2[5] = {6, 7, 8, 9, 10};
    ck_assert_int_eq(nd_params_save(path, 2, names, offsets, sizes, p), 0);
    ck_assert_int_eq(nd_params_save(path, 2, names, offsets, sizes, p2), 0);
    double q[5];
    char err[256];
    ck_assert_int_eq(nd_params_load(path, 2, names, offsets, sizes, q, err, sizeof err), 0);
    ck_assert_mem_eq(q, p2, sizeof q);
    assert_no_temp(path);
    unlink(path);
    const NdTensorSpec s[1] = {{"k", 0, 1, 0, {0}}};
    ck_assert_int_eq(nd_safetensors_save("/nonexistent/dir/p.safetensors", 1, s, p, 0, NULL, err,
                                         sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot write '/nonexistent/dir/p.safetensors'"), "%s", err);
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
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_set_lr);
    tcase_add_test(tc, test_lbfgs_pytorch);
    tcase_add_test(tc, test_lbfgs_armijo);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_params_round_trip);
    tcase_add_test(tc, test_params_errors);
    tcase_add_test(tc, test_safetensors_golden);
    tcase_add_test(tc, test_params_foreign_files);
    tcase_add_test(tc, test_params_atomic);
    tcase_add_test(tc, test_params_corrupt);
    tcase_add_test(tc, test_params_optimizer_state);
    suite_add_tcase(s, tc);
    return s;
}
