/* Unit tests of the checker: small models lowered from source text, their
 * right-hand sides evaluated by the IR interpreter against values computed by
 * hand (or by independent C loops here), the layout of states and params, the
 * solve directives, and every kind of error with its message and line:col. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sema_harness.h"

/* ---- a compilation of one source text (with the prelude, and nn on request) ---- */

static Compiled *C; /* the test's compilation, freed by teardown */

static SemaProgram *compile_nn(const char *src, int with_nn)
{
    C = harness_compile("test.node", src, with_nn);
    return C->prog;
}

static SemaProgram *compile(const char *src)
{
    return compile_nn(src, 0);
}

static SemaProgram *compile_ok(const char *src)
{
    SemaProgram *p = compile(src);
    ck_assert_msg(p != NULL, "unexpected errors:\n%s", C->text);
    return p;
}

static void teardown(void)
{
    harness_free(C);
    C = NULL;
}

/* Evaluates every rhs of m at (t, y, p) into out (ny values, states in order). */
static void eval_rhs(const IrModel *m, double t, const double *y, const double *p, double *out)
{
    double *outs[16];
    ck_assert_int_le(m->n_states, 16);
    for (int i = 0; i < m->n_states; i++)
        outs[i] = out + m->states[i].offset;
    ir_eval(m->n_states, m->rhs, t, y, p, outs);
}

static void assert_values(const double *got, const double *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_double_eq_tol(got[i], want[i], 1e-12);
}

static const IrVar *param_named(const IrModel *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    ck_abort_msg("no param %s", name);
    return NULL;
}

/* ---- lowering and evaluation ---- */

START_TEST(test_fn_inlining_and_lets)
{
    SemaProgram *p = compile_ok("fn sq(a) = a * a\n"
                                "fn g(x, W) {\n"
                                "  let h = tanh(W @ x)\n"
                                "  h - x\n"
                                "}\n"
                                "model M {\n"
                                "  state x[2] = [1, 2]\n"
                                "  const A[2, 2] = [[0, 1], [-1, 0]]\n"
                                "  let s = sq(x)\n"
                                "  let u = s + 1\n"
                                "  dx/dt = g(x, A) + u\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "M");
    ck_assert_ptr_nonnull(m);
    double y[2] = {0.5, -1}, out[2];
    eval_rhs(m, 0, y, NULL, out);
    /* A @ y = [y1, -y0] = [-1, -0.5] */
    double want[2] = {tanh(-1) - 0.5 + 0.25 + 1, tanh(-0.5) + 1 + 1 + 1};
    assert_values(out, want, 2);
}
END_TEST

START_TEST(test_function_valued_arguments)
{
    SemaProgram *p = compile_ok("fn apply(f, x) = f(x) + f(2 * x)\n"
                                "fn twice(x) = 2 * x\n"
                                "model M {\n"
                                "  state x\n"
                                "  dx/dt = apply(tanh, x) + apply(twice, x)\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "M");
    double y = 0.3, out;
    eval_rhs(m, 0, &y, NULL, &out);
    ck_assert_double_eq_tol(out, tanh(0.3) + tanh(0.6) + 0.6 + 1.2, 1e-12);
}
END_TEST

/* Fills a param with v0, v0 + step, ... so every element differs. */
static void fill_param(double *p, const IrVar *v, double v0, double step)
{
    for (int i = 0; i < ir_shape_size(v->shape); i++)
        p[v->offset + i] = v0 + step * i;
}

START_TEST(test_mlp_net)
{
    SemaProgram *p = compile_ok("model N {\n"
                                "  state y[2]\n"
                                "  net f = MLP(2, 3, 2, tanh)\n"
                                "  dy/dt = f(y)\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "N");
    ck_assert_int_eq(m->n_params, 4);
    const char *names[4] = {"f.l1.W", "f.l1.b", "f.l2.W", "f.l2.b"};
    int offsets[4] = {0, 6, 9, 15}, rows[4] = {3, 3, 2, 2}, cols[4] = {2, 1, 3, 1};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(m->params[i].name, names[i]);
        ck_assert_int_eq(m->params[i].offset, offsets[i]);
        ck_assert_int_eq(m->params[i].shape.rows, rows[i]);
        ck_assert_int_eq(m->params[i].shape.cols, cols[i]);
    }
    ck_assert_int_eq(m->np, 17);
    ck_assert_int_eq(m->params[0].init_kind, IR_INIT_GLOROT);
    ck_assert_int_eq(m->params[1].init_kind, IR_INIT_EXPR);
    double par[17];
    for (int i = 0; i < 4; i++)
        fill_param(par, &m->params[i], 0.1 * (i + 1), -0.07);
    double y[2] = {0.4, -0.9}, out[2];
    eval_rhs(m, 0, y, par, out);
    /* the same network by loops */
    double h[3], want[2];
    for (int i = 0; i < 3; i++)
        h[i] = tanh(par[0 + 2 * i] * y[0] + par[0 + 2 * i + 1] * y[1] + par[6 + i]);
    for (int i = 0; i < 2; i++)
        want[i] = par[9 + 3 * i] * h[0] + par[9 + 3 * i + 1] * h[1] + par[9 + 3 * i + 2] * h[2] +
                  par[15 + i];
    assert_values(out, want, 2);
}
END_TEST

/* A net's params by their dotted path: f.l2.b is the output bias. */
START_TEST(test_net_field_access)
{
    SemaProgram *p = compile_ok("model N {\n"
                                "  state y[2]\n"
                                "  net f = MLP(2, 3, 2, relu)\n"
                                "  dy/dt = f.l2.b + sum(f.l1.W)\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "N");
    double par[17], y[2] = {0, 0}, out[2];
    for (int i = 0; i < 17; i++)
        par[i] = i;
    eval_rhs(m, 0, y, par, out);
    double want[2] = {15 + 15, 16 + 15}; /* f.l1.W holds 0..5 */
    assert_values(out, want, 2);
}
END_TEST

START_TEST(test_nn_module)
{
    SemaProgram *p = compile_nn("model N {\n"
                                "  state x[2]\n"
                                "  net g = MLP2(2, 4, 2, swish)\n"
                                "  param k = 2\n"
                                "  dx/dt = elu(x) + softsign(x) + 0 * g(x) + k * leaky_relu(x)\n"
                                "}\n",
                                1);
    ck_assert_msg(p != NULL, "errors:\n%s", C->text);
    IrModel *m = sema_find_model(p, "N");
    ck_assert_int_eq(m->n_params, 7);
    ck_assert_str_eq(m->params[4].name, "g.l3.W");
    ck_assert_str_eq(m->params[6].name, "k");
    double par[64] = {0}, y[2] = {0.5, -0.5}, out[2];
    par[param_named(m, "k")->offset] = 2;
    eval_rhs(m, 0, y, par, out);
    double want[2] = {0.5 + 0.5 / 1.5 + 2 * 0.5, (exp(-0.5) - 1) - 0.5 / 1.5 + 2 * -0.005};
    assert_values(out, want, 2);
}
END_TEST

START_TEST(test_indexing_and_literals)
{
    SemaProgram *p = compile_ok("model S {\n"
                                "  state y[4]\n"
                                "  state M[2, 3]\n"
                                "  state z[2]\n"
                                "  dy/dt = concat(y[2:], [y[1], -y[0]])\n"
                                "  dM/dt = [[M[1, 2], M[0, 0], sum(M[1])], M[0]]\n"
                                "  dz/dt = M[0:2, 1] + M[1, 0:2] + y[:2]\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "S");
    ck_assert_int_eq(m->ny, 12);
    ck_assert_int_eq(m->states[1].offset, 4);
    ck_assert_int_eq(m->states[2].offset, 10);
    double y[12] = {1, 2, 3, 4, /* M */ 10, 11, 12, 13, 14, 15, /* z */ 0, 0}, out[12];
    eval_rhs(m, 0, y, NULL, out);
    double want[12] = {3, 4, 2, -1, 15, 10, 13 + 14 + 15, 10, 11, 12, 11 + 13 + 1, 14 + 14 + 2};
    assert_values(out, want, 12);
}
END_TEST

START_TEST(test_matmul_and_linear_algebra)
{
    SemaProgram *p = compile_ok("model L {\n"
                                "  state v[2]\n"
                                "  state w[3]\n"
                                "  state s\n"
                                "  const B[2, 3] = [[1, 2, 3], [4, 5, 6]]\n"
                                "  dv/dt = B @ w\n"
                                "  dw/dt = v @ B + transpose(B) @ v\n"
                                "  ds/dt = v @ v + dot(v, v) + sum(outer(v, w)) + mean(w) + norm(v)\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "L");
    double y[6] = {1, 2, 3, 4, 5, 0}, out[6];
    eval_rhs(m, 0, y, NULL, out);
    double want[6] = {1 * 3 + 2 * 4 + 3 * 5, 4 * 3 + 5 * 4 + 6 * 5, 2 * 9, 2 * 12, 2 * 15,
                      5 + 5 + 3 * 12 + 4 + sqrt(5)};
    assert_values(out, want, 6);
}
END_TEST

START_TEST(test_builtins_where_linspace)
{
    SemaProgram *p = compile_ok("const c = 2\n"
                                "model B {\n"
                                "  state u[3]\n"
                                "  state x\n"
                                "  du/dt = where(u > 0, u, 0) + linspace(0, 1, 3) + c * ones(3) + eye(3) @ u + zeros(3)\n"
                                "  dx/dt = sin(pi * t) + relu(-x) + softplus(0) + sigmoid(0) + exp(log(3))\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "B");
    double y[4] = {-1, 0.5, 2, 0.25}, out[4];
    eval_rhs(m, 0.5, y, NULL, out);
    double want[4] = {0 + 0 + 2 - 1, 0.5 + 0.5 + 2 + 0.5, 2 + 1 + 2 + 2, 1 + 0 + log(2) + 0.5 + 3};
    assert_values(out, want, 4);
}
END_TEST

START_TEST(test_initial_values)
{
    SemaProgram *p = compile_ok("model I {\n"
                                "  state x[2] = k\n"
                                "  state W[2, 2] = W0\n"
                                "  state s = 2 * pi\n"
                                "  state n\n"
                                "  param k = 3\n"
                                "  param W0[2, 2] ~ normal(0, 0.5)\n"
                                "  param u[3] ~ uniform(-1, 1)\n"
                                "  dx/dt = x\n"
                                "  dW/dt = W\n"
                                "  ds/dt = 0\n"
                                "  dn/dt = n\n"
                                "}\n");
    IrModel *m = sema_find_model(p, "I");
    ck_assert_int_eq(m->states[0].init_kind, IR_INIT_EXPR);
    ck_assert_int_eq(m->states[3].init_kind, IR_INIT_NONE);
    ck_assert_int_eq(m->params[1].init_kind, IR_INIT_NORMAL);
    ck_assert_double_eq(m->params[1].dist_b, 0.5);
    ck_assert_int_eq(m->params[2].init_kind, IR_INIT_UNIFORM);
    ck_assert_double_eq(m->params[2].dist_a, -1);
    double par[8] = {3, 1, 2, 3, 4, 0, 0, 0}, x[2], W[4], s;
    IrNode *roots[3] = {m->states[0].init, m->states[1].init, m->states[2].init};
    double *outs[3] = {x, W, &s};
    ir_eval(3, roots, 0, NULL, par, outs);
    double wx[2] = {3, 3}, wW[4] = {1, 2, 3, 4};
    assert_values(x, wx, 2);
    assert_values(W, wW, 4);
    ck_assert_double_eq_tol(s, 2 * M_PI, 1e-15);
    /* a scalar rhs fills a tensor state */
    double y[8] = {0}, out[8];
    eval_rhs(m, 0, y, par, out);
    ck_assert_double_eq(out[6], 0);
}
END_TEST

START_TEST(test_two_models_own_names)
{
    SemaProgram *p = compile_ok("model A { state x = 1; param k = 2; dx/dt = -k * x }\n"
                                "model B { state x = 1; const k = 5; dx/dt = -k * x }\n");
    ck_assert_int_eq(p->n_models, 2);
    double y = 1, pa = 2, out;
    eval_rhs(sema_find_model(p, "A"), 0, &y, &pa, &out);
    ck_assert_double_eq_tol(out, -2, 1e-15);
    eval_rhs(sema_find_model(p, "B"), 0, &y, NULL, &out);
    ck_assert_double_eq_tol(out, -5, 1e-15);
    ck_assert_int_eq(sema_find_model(p, "B")->n_params, 0);
}
END_TEST

START_TEST(test_state_columns)
{
    SemaProgram *p = compile_ok("model C { state x; state y[2]; state W[2, 2]\n"
                                "  dx/dt = 0; dy/dt = y; dW/dt = W }\n");
    IrModel *m = sema_find_model(p, "C");
    const char **cols = sema_state_columns(C->arena, m);
    const char *want[7] = {"x", "y[0]", "y[1]", "W[0,0]", "W[0,1]", "W[1,0]", "W[1,1]"};
    ck_assert_int_eq(m->ny, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_str_eq(cols[i], want[i]);
}
END_TEST

START_TEST(test_solve_directives)
{
    SemaProgram *p = compile_ok("option seed = 42\n"
                                "model G { state x = 3; state v[2]; param k = 1; dx/dt = 2 * x * t; dv/dt = v }\n"
                                "solve G { t = [0, 2 * pi]; init = { v = 1 }; solver = euler(h = 0.25) }\n"
                                "solve G {\n"
                                "  t = linspace(1, 0, 11)\n"
                                "  init = { x = 2 * k, v = 1 }\n"
                                "  solver = dopri5(rtol = 1e-10, atol = 1e-12)\n"
                                "  output = \"growth.csv\"\n"
                                "}\n"
                                "solve G { t = [0, 1]; init = { v = 1 }; solver = rk4(max_steps = 8, h = 0.125) }\n"
                                "train G { t = [0, 1]; final_loss = x; init = { v = 1 }; optimizer = sgd(lr = 0.1); steps = 1 }\n");
    ck_assert(p->has_seed);
    ck_assert_uint_eq(p->seed, 42);
    ck_assert_int_eq(p->n_dirs, 4);
    SemaSolve *s = &p->dirs[0].solve;
    ck_assert_int_eq(p->dirs[0].kind, SEMA_SOLVE);
    ck_assert_int_eq(s->nt, 2);
    ck_assert_double_eq_tol(s->t[1], 2 * M_PI, 1e-15);
    ck_assert_str_eq(s->solver.name, "euler");
    ck_assert_uint_eq(s->solver.given, ND_SBIT_H);
    ck_assert_double_eq(s->solver.h, 0.25);
    ck_assert_ptr_null(s->output);
    ck_assert_ptr_null(s->init[0]);
    s = &p->dirs[1].solve;
    ck_assert_int_eq(s->nt, 11);
    ck_assert_double_eq_tol(s->t[3], 0.7, 1e-15);
    ck_assert_double_eq(s->t[10], 0);
    ck_assert_str_eq(s->output, "growth.csv");
    ck_assert_uint_eq(s->solver.given, ND_SBIT_RTOL | ND_SBIT_ATOL);
    ck_assert_double_eq(s->solver.atol, 1e-12);
    double kpar = 1.5, x0, v0[2];
    double *outs[2] = {&x0, v0};
    ir_eval(2, s->init, 0, NULL, &kpar, outs);
    ck_assert_double_eq_tol(x0, 3, 1e-15);
    ck_assert_double_eq_tol(v0[1], 1, 1e-15);
    ck_assert_str_eq(p->dirs[2].solve.solver.name, "rk4");
    ck_assert_uint_eq(p->dirs[2].solve.solver.given, ND_SBIT_H | ND_SBIT_MAX_STEPS);
    ck_assert_int_eq(p->dirs[2].solve.solver.max_steps, 8);
    ck_assert_int_eq(p->dirs[3].kind, SEMA_TRAIN);
    ck_assert_ptr_eq(p->dirs[2].solve.model, sema_find_model(p, "G"));
}
END_TEST

/* ---- errors: message text and line:col ---- */

typedef struct ErrCase {
    const char *src;
    const char *want;  /* "L:C: error: message" */
    const char *note;  /* a further text that must appear (a note), or NULL */
} ErrCase;

static const ErrCase errors[] = {
    {"model D {\n  state x = 1\n  dx/dt = -k * x\n}\n", "3:12: error: unknown name 'k'",
     "2:9: note: did you mean 'x'?"},
    {"model D {\n  state theta = 1\n  dtheta/dt = -thetta\n}\n", "3:16: error: unknown name 'thetta'",
     "2:9: note: did you mean 'theta'?"},
    {"model B {\n  state y[3]\n  const A[2, 2] = [[0, 1], [-1, 0]]\n  dy/dt = A @ y\n}\n",
     "4:11: error: shape mismatch in '@': [2, 2] @ [3] (inner dimensions 2 and 3 differ)", NULL},
    {"model B {\n  state y[3]\n  dy/dt = y + [1, 2]\n}\n",
     "3:11: error: shape mismatch in '+': [3] + [2] (elementwise operands need equal shapes, or one scalar)", NULL},
    {"model B {\n  state y[2]\n  dy/dt = y ^ y\n}\n",
     "3:11: error: shape mismatch in '^': the exponent must be a scalar, got [2]", NULL},
    {"model B {\n  state x = 1\n  state v = 0\n  dx/dt = v\n}\n",
     "3:9: error: state 'v' has no equation (expected dv/dt = ...)", NULL},
    {"model B {\n  state x = 1\n  dx/dt = 1\n  dx/dt = 2\n}\n", "4:3: error: duplicate equation for 'x'",
     "3:3: note: the first equation for 'x' is here"},
    {"model B {\n  state x = 1\n  param k\n  dx/dt = 1\n  dk/dt = 2\n}\n",
     "5:3: error: 'k' is a parameter, not a state: only states have equations", NULL},
    {"model B {\n  state x = 1\n  dx/dt = 1\n  dy/dt = 2\n}\n", "4:3: error: equation for unknown state 'y'",
     "note: did you mean 'x'?"},
    {"model B {\n  state x = 1\n  param x\n  dx/dt = 1\n}\n", "3:9: error: 'x' is already declared",
     "2:9: note: the first declaration of 'x' (a state) is here"},
    {"model B {\n  state y[3]\n  dy/dt = y * y[3]\n}\n",
     "3:17: error: index 3 is out of range for [3] (valid: 0 to 2)", NULL},
    {"model B {\n  state y[3]\n  dy/dt = y * y[y[0]]\n}\n",
     "3:17: error: index must be constant, but this depends on a state", NULL},
    {"model B {\n  state y[3]\n  dy/dt = y[2:1]\n}\n", "3:13: error: empty slice 2:1", NULL},
    {"model B {\n  state y[3]\n  dy/dt = y[0, 1]\n}\n",
     "3:11: error: a value of shape [3] takes one index, got 2", NULL},
    {"model B {\n  state x\n  dx/dt = x[0]\n}\n", "3:11: error: a scalar cannot be indexed", NULL},
    {"model B {\n  state M[2, 2]\n  dM/dt = M[0, 0, 1]\n}\n", NULL, NULL}, /* a syntax error */
    {"fn f(x) = g(x)\nfn g(x) = f(x) + 1\nmodel B {\n  state x\n  dx/dt = f(x)\n}\n",
     "2:11: error: recursive call to 'f': fns are inlined, so recursion cannot be compiled",
     "1:4: note: 'f' is declared here\ntest.node:1:11: note: in this call of 'g'"},
    {"fn f(x) = f(x)\nmodel B {\n  state x\n  dx/dt = f(x)\n}\n",
     "1:11: error: recursive call to 'f'", NULL},
    {"fn f(a, b) = a + b\nmodel B {\n  state x\n  dx/dt = f(x)\n}\n",
     "4:11: error: wrong number of arguments to fn 'f': expected 2, got 1", "1:4: note: 'f' is declared here"},
    {"model B {\n  state x\n  dx/dt = dot(x)\n}\n",
     "3:11: error: wrong number of arguments to 'dot': expected dot(a, b), got 1", NULL},
    {"model B {\n  state y[2]\n  dy/dt = transpose(y)\n}\n",
     "3:21: error: shape mismatch in 'transpose': it needs a matrix, got [2] (vectors have no orientation", NULL},
    {"model B {\n  state z[2]\n  dz/dt = -div(z)\n}\n",
     "3:12: error: div(z) is circular: the equation of 'z' depends on div(z)", NULL},
    {"model B {\n  state x\n  dx/dt = dx/dt\n}\n",
     "3:11: error: 'dx/dt' can only be used in train blocks", NULL},
    {"model B {\n  state x = y\n  state y = t\n  dx/dt = 1; dy/dt = 1\n}\n",
     "2:13: error: an initial value cannot use state 'y'", "3:13: error: an initial value cannot use the time 't'"},
    {"model B {\n  state x\n  param k = x\n  dx/dt = 1\n}\n",
     "3:13: error: a parameter's initial value cannot use state 'x'", NULL},
    {"model B {\n  state x\n  param k\n  const c = k\n  dx/dt = 1\n}\n",
     "4:13: error: a constant cannot use parameter 'k'", NULL},
    {"model B {\n  state x\n  param k ~ gauss(0, 1)\n  dx/dt = 1\n}\n",
     "3:13: error: unknown distribution 'gauss' (expected normal(mean, sd), uniform(a, b) or glorot)", NULL},
    {"model B {\n  state x\n  param k ~ normal(0)\n  dx/dt = 1\n}\n",
     "3:13: error: wrong number of arguments to 'normal': expected normal(mean, sd), got 1", NULL},
    {"model B {\n  state x[2]\n  net f = MLPP(2, 4, 2, tanh)\n  dx/dt = x\n}\n",
     "3:11: error: unknown net template 'MLPP'", "note: did you mean 'MLP'?"},
    {"model B {\n  state x[2]\n  net f = MLP(2, 4, 2)\n  dx/dt = x\n}\n",
     "3:11: error: wrong number of arguments to net 'MLP': expected 4, got 3", NULL},
    {"model B {\n  state x[2]\n  net f = MLP(2, 4, 3, tanh)\n  dx/dt = f(x)\n}\n",
     "4:11: error: shape mismatch in the equation for 'x': the state is [2] but the right-hand side is [3]", NULL},
    {"model B {\n  state x\n  let a = b\n  let b = 1\n  dx/dt = a\n}\n",
     "3:11: error: 'b' is used before its definition", NULL},
    {"model B {\n  state x\n  const A[2, 2] = [[1, 2], [3]]\n  dx/dt = 1\n}\n",
     "3:28: error: shape mismatch in list: element 1 is [1] but element 0 is [2]", NULL},
    {"model B {\n  state x\n  const A[2, 2] = [1, 2, 3]\n  dx/dt = 1\n}\n",
     "3:19: error: shape mismatch in the value of 'A': declared [2, 2] but the value is [3]", NULL},
    {"model B {\n  state x[2.5]\n  dx/dt = 1\n}\n", "2:11: error: a dimension must be an integer, got 2.5", NULL},
    {"model B {\n  state x\n  dx/dt = zeros(0)\n}\n", "3:17: error: a size must be at least 1, got 0", NULL},
    {"model B {\n  state x[3000000000]\n  dx/dt = 1\n}\n",
     "2:11: error: a dimension is too large: 3000000000 (the limit is 268435456)", NULL},
    {"model B {\n  param W[100000, 100000]\n  state x\n  dx/dt = 1\n}\n",
     "2:9: error: parameter 'W' has 10000000000 elements (100000 x 100000), more than the limit of 268435456", NULL},
    {"model B {\n  const c[2] = 1\n  const d[20000, 20000] = 0\n  state x\n  dx/dt = 1\n}\n",
     "3:9: error: constant 'd' has 400000000 elements (20000 x 20000), more than the limit of 268435456", NULL},
    {"model B {\n  state a[200000000]\n  state b[100000000]\n  dx/dt = 1\n}\n",
     "3:9: error: the states of model 'B' have 300000000 elements with 'b', more than the limit of 268435456", NULL},
    {"model B {\n  param a[200000000]\n  param b[100000000]\n  state x\n  dx/dt = 1\n}\n",
     "3:9: error: the parameters of model 'B' have 300000000 elements with 'b', more than the limit of 268435456", NULL},
    {"model B {\n  state x\n  dx/dt = sum(linspace(0, 1, 3e9))\n}\n",
     "3:30: error: linspace's count is too large: 3000000000 (the limit is 268435456)", NULL},
    {"model B {\n  state x\n  dx/dt = sum(zeros(20000, 20000))\n}\n",
     "3:15: error: the result of 'zeros' has 400000000 elements (20000 x 20000), more than the limit of 268435456", NULL},
    {"model B {\n  state x\n  dx/dt = sum(eye(20000))\n}\n",
     "3:15: error: the result of 'eye' has 400000000 elements (20000 x 20000), more than the limit of 268435456", NULL},
    {"model B {\n  state x\n  dx/dt = sum(outer(ones(20000), ones(20000)))\n}\n",
     "3:15: error: the result of 'outer' has 400000000 elements (20000 x 20000), more than the limit of 268435456", NULL},
    {"model B {\n  state x\n  dx/dt = sum(ones(20000, 1) @ ones(1, 20000))\n}\n",
     "3:15: error: the result of '@' has 400000000 elements (20000 x 20000), more than the limit of 268435456", NULL},
    {"model B {\n  state a[200000000]\n  da/dt = a + sum(concat(a, a))\n}\n",
     "3:19: error: the result of 'concat' has 400000000 elements, more than the limit of 268435456", NULL},
    {"model B {\n  const c = 1/0\n  state x\n  dx/dt = c\n}\n",
     "2:13: error: a constant must be a finite number, but this evaluates to inf", NULL},
    {"model B {\n  const c = [1, log(0)]\n  state x\n  dx/dt = 1\n}\n",
     "2:13: error: a constant must be finite, but its element 1 evaluates to -inf", NULL},
    {"model B {\n  state x[2]\n  dx/dt = x[5000000000] * x\n}\n",
     "3:13: error: index 5000000000 is out of range for [2] (valid: 0 to 1)", NULL},
    {"model B {\n  state x\n  dx/dt = foo(x)\n}\n", "3:11: error: unknown function 'foo'", NULL},
    {"model B {\n  state x\n  dx/dt = tanh\n}\n", "3:11: error: 'tanh' is a function: call it with arguments", NULL},
    {"model Decay { state x = 1; dx/dt = -x }\nsolve Dcay { t = [0, 1] }\n", "2:7: error: unknown model 'Dcay'",
     "2:7: note: did you mean 'Decay'?"},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { solver = rk4 }\n",
     "2:1: error: solve needs 't', the output times (like t = [0, 1])", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1, 1] }\n",
     "2:15: error: the output times must be strictly increasing or strictly decreasing, but t[2] = 1 follows t[1] = 1", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [1] }\n",
     "2:15: error: the output times need a vector of at least 2 values", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = rk45(rtol = 1e-6) }\n",
     "2:32: error: unknown solver 'rk45'", "note: known solvers: euler"},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = rk4(0.1) }\n",
     "2:36: error: solver arguments must be named, like rk4(h = ...)", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = rk4(rtol = 0.1) }\n",
     "2:36: error: unknown argument 'rtol' for solver 'rk4' (expected h or max_steps)", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = rk4 }\n",
     "2:32: error: rk4 needs a step size, like rk4(h = 0.01)", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = rk4(h = -0.5) }\n",
     "2:40: error: solver argument 'h' must be a positive finite number", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = dopri5(rtol = 1) }\n",
     "2:46: error: solver argument 'rtol' must be a number in (0, 1)", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = dopri5(atol = 0) }\n",
     "2:46: error: solver argument 'atol' must be a positive finite number", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = dopri5(h0 = -1) }\n",
     "2:44: error: solver argument 'h0' must be a finite number >= 0 (0 chooses the first step)", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = dopri5(max_steps = 3.5) }\n",
     "2:51: error: solver argument 'max_steps' must be an integer from 1 to 1e15", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; solver = dopri5(max_steps = 1e30) }\n",
     "2:51: error: solver argument 'max_steps' must be an integer from 1 to 1e15", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1, 3]; solver = euler(h = 0.01, max_steps = 150) }\n",
     "2:45: error: euler would take 200 steps of h = 0.01 from t = 1 to t = 3, more than max_steps = 150",
     "note: use a larger h, or allow them with euler(h = 0.01, max_steps = 200)"},
    {"model D { state x; dx/dt = -x }\nsolve D { t = [0, 1] }\n",
     "2:1: error: state 'x' of model 'D' has no initial value: give one with init = { x = ... }",
     "1:17: note: 'x' is declared here without '= value'"},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; slover = rk4 }\n",
     "2:23: error: unknown key 'slover' in solve (valid keys: t, init, solver, output, samples, load, "
     "events, max_events, brownian, path)",
     "note: did you mean 'solver'?"},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; init = { y = 2 } }\n",
     "2:32: error: 'y' is not a state of model 'D'", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; init = { x ~ normal(0, 1) } }\n",
     "2:32: error: drawing an initial state (`x ~ ...`) needs the number of samples, like samples = 100", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; samples = 10 }\n",
     "2:23: error: samples = 10 would solve the same initial state 10 times", NULL},
    {"model D { state x = 1; dx/dt = -x }\nsolve D { t = [0, 1]; init = { x = [1, 2] } }\n",
     "2:36: error: shape mismatch in the initial value of 'x': the state is scalar but the value is [2]", NULL},
    {"option seed = -1\n", "1:15: error: the seed must be a non-negative integer", NULL},
    {"option speed = 1\n", "1:8: error: unknown option 'speed' (known options: seed, shared_states, precision)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain E { steps = 1 }\n", "2:7: error: unknown model 'E'", NULL},
    {"fn f(x) = x + q\nmodel B {\n  state x\n  dx/dt = f(x) + f(2 * x)\n}\n", "1:15: error: unknown name 'q'",
     "4:11: note: in this call of 'f'"},
};

START_TEST(test_errors)
{
    const ErrCase *e = &errors[_i];
    SemaProgram *p = compile(e->src);
    ck_assert_msg(p == NULL, "case %d: no error reported", _i);
    ck_assert_int_gt(C->diag.errors, 0);
    if (e->want) {
        char want[512];
        snprintf(want, sizeof want, "test.node:%s", e->want);
        ck_assert_msg(strstr(C->text, want) != NULL, "case %d: want\n%s\ngot\n%s", _i, want, C->text);
    }
    if (e->note)
        ck_assert_msg(strstr(C->text, e->note) != NULL, "case %d: want\n%s\ngot\n%s", _i, e->note, C->text);
}
END_TEST

/* One mistake gives one message: a broken let used three times, a broken fn called twice. */
START_TEST(test_no_cascades)
{
    SemaProgram *p = compile("fn f(x) = x @ x @ x\n"
                             "model B {\n"
                             "  state y[2]\n"
                             "  let h = y + [1, 2, 3]\n"
                             "  dy/dt = h + h * h + f(y) + f(y)\n"
                             "}\n");
    ck_assert_ptr_null(p);
    ck_assert_int_eq(C->diag.errors, 2);
}
END_TEST

START_TEST(test_several_errors_reported)
{
    SemaProgram *p = compile("model B {\n"
                             "  state x\n"
                             "  state v\n"
                             "  dx/dt = k\n"
                             "}\n"
                             "solve B { t = [1, 0, 1]; solver = rk5 }\n");
    ck_assert_ptr_null(p);
    ck_assert_int_eq(C->diag.errors, 4);
}
END_TEST

/* Image builtins lowered by sema_conv.c, evaluated by ir_eval against direct
 * loops written here: a same-rank broadcast that stretches both operands, sum and
 * mean over axes, group_norm, and nn's Conv2d (stride 2, pad 1) with its bias. */
START_TEST(test_tensor_broadcast_and_axes)
{
    SemaProgram *p = compile("model M {\n"
                                "  state h[2, 4, 3]\n"
                                "  const A[2, 1, 3] = reshape([1, 2, 3, 4, 5, 6], [2, 1, 3])\n"
                                "  const C[1, 4, 1] = reshape([10, 20, 30, 40], [1, 4, 1])\n"
                                "  dh/dt = h * sum(h, 1) / 100 + A * C - mean(h, 2) / 10\n"
                                "}\n");
    ck_assert_ptr_null(p); /* sum(h, 1) is [2, 3] and mean(h, 2) [2, 4]: neither broadcasts */
    harness_free(C);
    C = NULL;
    p = compile_ok("model M {\n"
                   "  state h[2, 4, 3]\n"
                   "  const A[2, 1, 3] = reshape([1, 2, 3, 4, 5, 6], [2, 1, 3])\n"
                   "  const C[1, 4, 1] = reshape([10, 20, 30, 40], [1, 4, 1])\n"
                   "  dh/dt = h * reshape(sum(h, 1), [2, 1, 3]) + A * C - reshape(mean(h, 2), [2, 4, 1])\n"
                   "}\n");
    IrModel *m = sema_find_model(p, "M");
    ck_assert_ptr_nonnull(m);
    double y[24], out[24], want[24];
    for (int i = 0; i < 24; i++)
        y[i] = 0.1 * i - 1;
    eval_rhs(m, 0, y, NULL, out);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++) {
                double col = 0, row = 0;
                for (int k = 0; k < 4; k++)
                    col += y[(c * 4 + k) * 3 + j];
                for (int k = 0; k < 3; k++)
                    row += y[(c * 4 + i) * 3 + k];
                want[(c * 4 + i) * 3 + j] = y[(c * 4 + i) * 3 + j] * col +
                                            (1 + 3 * c + j) * 10.0 * (i + 1) - row / 3;
            }
    assert_values(out, want, 24);
}
END_TEST

START_TEST(test_tensor_conv_and_norm)
{
    SemaProgram *p = compile_nn("import \"nn\"\n"
                                "model M {\n"
                                "  state x[2, 5, 4]\n"
                                "  net c = Conv2d(2, 3, 3, 2, 1)\n"
                                "  dx/dt = x * 0 + reshape(concat(flatten(group_norm(c(x), 3)), zeros(22)), [2, 5, 4])\n"
                                "}\n", 1);
    ck_assert_ptr_nonnull(p);
    IrModel *m = sema_find_model(p, "M");
    const IrVar *K = param_named(m, "c.K"), *b = param_named(m, "c.b");
    double y[40], pv[64], out[40];
    for (int i = 0; i < 40; i++)
        y[i] = sin(0.7 * i);
    for (int i = 0; i < m->np; i++)
        pv[i] = cos(0.3 * i) * 0.5;
    eval_rhs(m, 0, y, pv, out);
    /* conv: [3, 2, 3, 3] filters over [2, 5, 4], stride 2, pad 1 -> [3, 3, 2] */
    double conv[18];
    for (int o = 0; o < 3; o++)
        for (int oi = 0; oi < 3; oi++)
            for (int oj = 0; oj < 2; oj++) {
                double acc = pv[b->offset + o];
                for (int ci = 0; ci < 2; ci++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int hh = oi * 2 + ki - 1, ww = oj * 2 + kj - 1;
                            if (hh >= 0 && hh < 5 && ww >= 0 && ww < 4)
                                acc += pv[K->offset + ((o * 2 + ci) * 3 + ki) * 3 + kj] *
                                       y[(ci * 5 + hh) * 4 + ww];
                        }
                conv[(o * 3 + oi) * 2 + oj] = acc;
            }
    for (int g = 0; g < 3; g++) { /* group_norm with 3 groups of one channel (6 values) */
        double mu = 0, var = 0;
        for (int k = 0; k < 6; k++)
            mu += conv[g * 6 + k] / 6;
        for (int k = 0; k < 6; k++)
            var += (conv[g * 6 + k] - mu) * (conv[g * 6 + k] - mu) / 6;
        for (int k = 0; k < 6; k++)
            ck_assert_double_eq_tol(out[g * 6 + k], (conv[g * 6 + k] - mu) / sqrt(var + 1e-5), 1e-12);
    }
    for (int k = 18; k < 40; k++)
        ck_assert_double_eq(out[k], 0);
}
END_TEST

Suite *sema_suite(void); /* registered in suites.def */

Suite *sema_suite(void)
{
    Suite *s = suite_create("sema");
    TCase *tc = tcase_create("lower");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_fn_inlining_and_lets);
    tcase_add_test(tc, test_function_valued_arguments);
    tcase_add_test(tc, test_mlp_net);
    tcase_add_test(tc, test_net_field_access);
    tcase_add_test(tc, test_nn_module);
    tcase_add_test(tc, test_indexing_and_literals);
    tcase_add_test(tc, test_matmul_and_linear_algebra);
    tcase_add_test(tc, test_builtins_where_linspace);
    tcase_add_test(tc, test_initial_values);
    tcase_add_test(tc, test_two_models_own_names);
    tcase_add_test(tc, test_state_columns);
    tcase_add_test(tc, test_solve_directives);
    tcase_add_test(tc, test_tensor_broadcast_and_axes);
    tcase_add_test(tc, test_tensor_conv_and_norm);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, NULL, teardown);
    tcase_add_loop_test(te, test_errors, 0, (int)(sizeof errors / sizeof errors[0]));
    tcase_add_test(te, test_no_cascades);
    tcase_add_test(te, test_several_errors_reported);
    suite_add_tcase(s, te);
    return s;
}
