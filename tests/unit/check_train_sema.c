/* Unit tests of the checker's `data` and `train` directives: the conformance
 * train blocks lowered from source (their data files written to a temporary
 * folder), their loss and initial-value IR evaluated by the interpreter on a
 * made-up state and data row against values computed by hand, the data fields
 * a csv file or a simulation gives, and every error with its message and
 * line:col. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sema_harness.h"

/* ---- data files in a temporary folder, written once per test case ---- */

static char dir[64];

static const char *const data_files[][2] = {
    {"decay_obs.csv", "t,x\n0,2\n0.5,1\n1,0.5\n"},
    {"rings.csv", "x[0],x[1],label\n-0.5,0.25,0\n0.75,-1,1\n"},
    {"obs.csv", "t,x,y[0],y[1]\n0,1,2,3\n1,2,3,4\n2,3,4,5\n3,4,5,6\n"},
    {"shuffled.csv", "y[1],t,y[0],\"W[1,0]\",\"W[0,0]\",\"W[0,1]\",\"W[1,1]\"\n5,0,6,1,2,3,4\n"},
    {"bad_fields.csv", "t,x,y\n0,1,2\n1,2\n"},
    {"bad_num.csv", "t,x\n0,1\n1,abc\n"},
    {"gap.csv", "t,y[0],y[2]\n0,1,2\n"},
    {"nonmono.csv", "t,x\n0,1\n1,2\n0.5,3\n"},
    {"mixed.csv", "t,y,y[0]\n0,1,2\n"},
    {"badname.csv", "t,my x\n0,1\n"},
    {"ids.csv", "id,t,x\n0,0,1\n0,1,2\n1,0,3\n1,1,4\n1,2,5\n"},
    {"singles.csv", "id,t,x\n0,0,1\n1,0,2\n"},
    {"holes.csv", "t,\"W[0,2]\",\"W[2,0]\"\n0,1,2\n"},
    {"tensor.csv", "\"x[0,1,1]\",label,\"x[0,0,0]\",\"x[0,0,1]\",\"x[0,1,0]\",\"w[0,0,0,0]\",\"w[0,0,0,1]\"\n"
                   "4,7,1,2,3,5,6\n"},
    {"flat.csv", "y[5],label,y[0],y[1],y[2],y[3],y[4]\n6,9,1,2,3,4,5\n"},
    {"wide.csv", NULL}, /* written by wide_csv */
};
enum { N_FILES = sizeof data_files / sizeof data_files[0] };

/* A header naming the diagonal of a 16385 x 16385 matrix: a field one past the
 * limit of 2^28 elements (too large to spell out in the table above). */
static void wide_csv(FILE *f)
{
    enum { N = 16385 };
    fputs("t", f);
    for (int k = 0; k < N; k++)
        fprintf(f, ",\"W[%d,%d]\"", k, k);
    fputs("\n0", f);
    for (int k = 0; k < N; k++)
        fputs(",0", f);
    fputs("\n", f);
}

static void files_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/nodec_train_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int i = 0; i < N_FILES; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, data_files[i][0]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        if (data_files[i][1])
            fputs(data_files[i][1], f);
        else
            wide_csv(f);
        fclose(f);
    }
}

static void files_teardown(void)
{
    for (int i = 0; i < N_FILES; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, data_files[i][0]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- a compilation of one source text in that folder (with the prelude) ---- */

static Compiled *C;

static SemaProgram *compile(const char *src)
{
    char path[256];
    snprintf(path, sizeof path, "%s/test.node", dir);
    C = harness_compile(path, src, 0);
    return C->prog;
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

/* The n-th directive, which must be a train. */
static const SemaTrain *train_at(const SemaProgram *p, int n)
{
    ck_assert_int_gt(p->n_dirs, n);
    ck_assert_int_eq(p->dirs[n].kind, SEMA_TRAIN);
    return &p->dirs[n].train;
}

static double eval1(IrNode *n, const double *y, const double *p, const double *d, double t)
{
    ck_assert_ptr_nonnull(n);
    double v[16];
    double *outs[1] = {v};
    ck_assert_int_le(ir_shape_size(n->shape), 16);
    IrEnv env = {.t = t, .y = y, .p = p, .d = d};
    ir_eval_env(1, &n, &env, outs);
    return v[0];
}

static void evalv(IrNode *n, const double *y, const double *p, const double *d, double *out)
{
    ck_assert_ptr_nonnull(n);
    double *outs[1] = {out};
    IrEnv env = {.y = y, .p = p, .d = d};
    ir_eval_env(1, &n, &env, outs);
}

static const IrVar *param_named(const IrModel *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    ck_abort_msg("no param %s", name);
    return NULL;
}

/* ---- the conformance trains ---- */

START_TEST(test_final_loss_no_data)
{
    /* conformance 10 */
    SemaProgram *p = compile_ok(
        "model DecayA { state x = 2; param k = 0.5; dx/dt = -k * x }\n"
        "model DecayB { state x = 2; param k = 0.5; dx/dt = -k * x }\n"
        "model DecayX0 { state x = x0; param x0 = 2; param k = 0.5; dx/dt = -k * x }\n"
        "train DecayA { t = [0, 1]; final_loss = x^2; solver = dopri5(rtol = 1e-10, atol = 1e-12); "
        "gradient = adjoint;    optimizer = sgd(lr = 0.1); steps = 1 }\n"
        "train DecayB { t = [0, 1]; final_loss = x^2; solver = dopri5(rtol = 1e-10, atol = 1e-12); "
        "gradient = checkpoint; optimizer = sgd(lr = 0.1); steps = 1 }\n"
        "train DecayX0 { t = [0, 1]; final_loss = x^2; solver = rk4(h = 0.001); gradient = backprop; "
        "optimizer = sgd(lr = 0.1); steps = 1 }\n");
    const SemaTrain *a = train_at(p, 0), *b = train_at(p, 1), *c = train_at(p, 2);
    ck_assert_ptr_eq(a->model, sema_find_model(p, "DecayA"));
    ck_assert_ptr_eq(a->augmented, a->model);
    ck_assert_ptr_null(a->data);
    ck_assert_int_eq(a->nt, 2);
    ck_assert_double_eq_tol(a->t[0], 0, 1e-15);
    ck_assert_double_eq_tol(a->t[1], 1, 1e-15);
    double y = 3;
    ck_assert_double_eq_tol(eval1(a->final_loss, &y, NULL, NULL, 1), 9, 1e-12);
    ck_assert_ptr_null(a->loss);
    ck_assert_ptr_null(a->regularize);
    ck_assert_ptr_null(a->init[0]); /* the model's default */
    ck_assert_str_eq(a->solver.name, "dopri5");
    ck_assert_double_eq_tol(a->solver.rtol, 1e-10, 1e-25);
    ck_assert_double_eq_tol(a->solver.atol, 1e-12, 1e-27);
    ck_assert_str_eq(a->gradient, "adjoint");
    ck_assert_str_eq(b->gradient, "checkpoint");
    ck_assert_str_eq(c->gradient, "backprop");
    ck_assert_str_eq(c->solver.name, "rk4");
    ck_assert_double_eq_tol(c->solver.h, 0.001, 1e-18);
    ck_assert_str_eq(a->optimizer.name, "sgd");
    ck_assert_uint_eq(a->optimizer.given, ND_OBIT_LR);
    ck_assert_double_eq_tol(a->optimizer.cfg.lr, 0.1, 1e-16);
    ck_assert_int_eq(a->steps, 1);
    ck_assert_int_eq(a->log_every, 1);
    ck_assert_int_eq(a->batch, SEMA_BATCH_ALL);
    ck_assert_ptr_null(a->history);
    ck_assert_ptr_null(a->save);
    ck_assert_ptr_null(a->load);
}
END_TEST

START_TEST(test_observations_csv)
{
    /* conformance 11: the default init is the observed x, the loss reads obs.x */
    SemaProgram *p = compile_ok(
        "data obs = csv(\"decay_obs.csv\")\n"
        "model Decay { state x; param k = 0.5; dx/dt = -k * x }\n"
        "train Decay  { data = obs; loss = (x - obs.x)^2; solver = dopri5(rtol = 1e-10, atol = 1e-12); "
        "gradient = adjoint;  optimizer = sgd(lr = 0.1); steps = 1 }\n");
    ck_assert_int_eq(p->n_dirs, 2);
    ck_assert_int_eq(p->dirs[0].kind, SEMA_DATA);
    const SemaData *d = p->dirs[0].data;
    ck_assert_int_eq(d->kind, SEMA_DATA_CSV);
    ck_assert_str_eq(d->name, "obs");
    ck_assert_int_eq(d->ncols, 2);
    ck_assert_int_eq(d->nrows, 3);
    ck_assert_int_eq(d->t_col, 0);
    ck_assert_int_eq(d->id_col, -1);
    ck_assert_str_eq(d->colnames[1], "x");
    double want[] = {0, 2, 0.5, 1, 1, 0.5};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(d->values[i], want[i], 1e-15);
    ck_assert_int_eq(d->n_fields, 1);
    ck_assert_str_eq(d->fields[0].name, "x");
    ck_assert_int_eq(d->fields[0].shape.rank, 0);
    ck_assert_int_eq(d->fields[0].cols[0], 1);
    const SemaTrain *tr = train_at(p, 1);
    ck_assert_ptr_eq(tr->data, d);
    ck_assert_ptr_null(tr->t);
    double y = 1.5, row[2] = {0.5, 1};
    ck_assert_double_eq_tol(eval1(tr->loss, &y, NULL, row, 0.5), 0.25, 1e-12);
    ck_assert_ptr_nonnull(tr->init[0]);
    ck_assert_int_eq(tr->init[0]->op, IR_DATA);
    ck_assert_double_eq_tol(eval1(tr->init[0], NULL, NULL, row, 0), 1, 1e-15);
}
END_TEST

START_TEST(test_spiral_simulate)
{
    /* conformance 12: simulate, windows, rmsprop, history, save */
    SemaProgram *p = compile_ok(
        "option seed = 0\n"
        "model TrueSpiral {\n"
        "  state y[2] = [2, 0]\n"
        "  const A[2, 2] = [[-0.1, 2.0], [-2.0, -0.1]]\n"
        "  dy/dt = transpose(A) @ y^3\n"
        "}\n"
        "data obs = simulate(TrueSpiral, t = linspace(0, 25, 1000), solver = dopri5(rtol = 1e-7, atol = 1e-9))\n"
        "model Spiral {\n"
        "  state y[2]\n"
        "  net f = MLP(2, 50, 2, tanh)\n"
        "  dy/dt = f(y^3)\n"
        "}\n"
        "train Spiral {\n"
        "  data      = obs\n"
        "  loss      = mean(abs(y - obs.y))\n"
        "  batch     = windows(length = 10, count = 20)\n"
        "  solver    = dopri5(rtol = 1e-7, atol = 1e-9)\n"
        "  gradient  = adjoint\n"
        "  optimizer = rmsprop(lr = 1e-3)\n"
        "  steps     = 2000\n"
        "  log_every = 100\n"
        "  history   = \"history.csv\"\n"
        "  save      = \"spiral.params\"\n"
        "}\n");
    const SemaData *d = p->dirs[0].data;
    ck_assert_int_eq(d->kind, SEMA_DATA_SIMULATE);
    ck_assert_ptr_eq(d->sim.model, sema_find_model(p, "TrueSpiral"));
    ck_assert_int_eq(d->sim.nt, 1000);
    ck_assert_double_eq_tol(d->sim.t[999], 25, 1e-15);
    ck_assert_str_eq(d->sim.solver.name, "dopri5");
    ck_assert_int_eq(d->ncols, 3);
    ck_assert_str_eq(d->colnames[0], "t");
    ck_assert_str_eq(d->colnames[1], "y[0]");
    ck_assert_str_eq(d->colnames[2], "y[1]");
    ck_assert_int_eq(d->nrows, 1000);
    ck_assert(isnan(d->values[0]) && isnan(d->values[999 * 3 + 2])); /* filled when it runs */
    ck_assert_int_eq(d->t_col, 0);
    ck_assert_int_eq(d->id_col, -1);
    ck_assert_int_eq(d->n_fields, 1);
    ck_assert_int_eq(d->fields[0].cols[0], 1);
    ck_assert_int_eq(d->fields[0].cols[1], 2);
    const SemaTrain *tr = train_at(p, 1);
    double y[2] = {1, 2}, row[3] = {0, 0.5, 3};
    ck_assert_double_eq_tol(eval1(tr->loss, y, NULL, row, 0), 0.75, 1e-12);
    ck_assert_int_eq(tr->init[0]->op, IR_DATA);
    ck_assert_int_eq(tr->init[0]->offset, 1);
    ck_assert_int_eq(tr->init[0]->shape.rows, 2);
    ck_assert_int_eq(tr->batch, SEMA_BATCH_WINDOWS);
    ck_assert_int_eq(tr->batch_length, 10);
    ck_assert_int_eq(tr->batch_count, 20);
    ck_assert_str_eq(tr->optimizer.name, "rmsprop");
    ck_assert_double_eq_tol(tr->optimizer.cfg.lr, 1e-3, 1e-18);
    ck_assert_int_eq(tr->steps, 2000);
    ck_assert_int_eq(tr->log_every, 100);
    ck_assert_str_eq(tr->history, "history.csv");
    ck_assert_str_eq(tr->save, "spiral.params");
    ck_assert_ptr_null(tr->load);
    ck_assert_int_eq(tr->history_loc.line, 22);
}
END_TEST

/* simulate(samples = N, keep = K): an id column first, N x K rows, the ids known
 * when checked (a train's windows are checked against K). */
START_TEST(test_simulate_samples)
{
    SemaProgram *p = compile_ok(
        "model M { state x[2]; state v = 1; dx/dt = -x; dv/dt = 0 }\n"
        "data obs = simulate(M, t = linspace(0, 1, 11), samples = 4, keep = 3, noise = 0.5,\n"
        "                    init = { x ~ uniform(1, 2), v = 2 })\n");
    const SemaData *d = p->dirs[0].data;
    ck_assert_int_eq(d->ncols, 5);
    ck_assert_str_eq(d->colnames[0], "id");
    ck_assert_str_eq(d->colnames[1], "t");
    ck_assert_str_eq(d->colnames[2], "x[0]");
    ck_assert_str_eq(d->colnames[4], "v");
    ck_assert_int_eq(d->id_col, 0);
    ck_assert_int_eq(d->t_col, 1);
    ck_assert_int_eq(d->nrows, 12);
    ck_assert_int_eq(d->keep, 3);
    ck_assert_int_eq(d->sim.samples, 4);
    ck_assert(d->noisy && d->noise == 0.5);
    for (int r = 0; r < 12; r++)
        ck_assert_double_eq(d->values[r * 5], r / 3);
    ck_assert_int_eq(d->sim.draw[0].kind, IR_INIT_UNIFORM);
    ck_assert_int_eq(d->sim.draw[1].kind, IR_INIT_NONE);
    ck_assert_int_eq(d->fields[0].cols[0], 2);
    ck_assert_int_eq(d->fields[1].cols[0], 4);
}
END_TEST

START_TEST(test_anode_rings)
{
    /* conformance 13: sample data, init from a data field, final_loss with the label */
    SemaProgram *p = compile_ok(
        "option seed = 1\n"
        "data rings = csv(\"rings.csv\")\n"
        "model Classifier {\n"
        "  state h[4]\n"
        "  net f = MLP(4, 32, 4, relu)\n"
        "  param w[4] ~ normal(0, 0.1)\n"
        "  param b = 0\n"
        "  dh/dt = f(h)\n"
        "}\n"
        "train Classifier {\n"
        "  data       = rings\n"
        "  init       = { h = concat(rings.x, zeros(2)) }\n"
        "  t          = [0, 1]\n"
        "  final_loss = softplus(dot(w, h) + b) - rings.label * (dot(w, h) + b)    # cross-entropy\n"
        "  solver     = rk4(h = 0.05)\n"
        "  optimizer  = adam(lr = 1e-2)\n"
        "  steps      = 300\n"
        "  log_every  = 10\n"
        "  history    = \"loss.csv\"\n"
        "}\n");
    const SemaData *d = p->dirs[0].data;
    ck_assert_int_eq(d->t_col, -1);
    ck_assert_int_eq(d->nrows, 2);
    ck_assert_int_eq(d->n_fields, 2);
    const SemaTrain *tr = train_at(p, 1);
    const IrModel *m = tr->model;
    double row[3] = {-0.5, 0.25, 1}, h0[4];
    evalv(tr->init[0], NULL, NULL, row, h0);
    double want_h0[4] = {-0.5, 0.25, 0, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(h0[i], want_h0[i], 1e-15);
    double *params = calloc((size_t)m->np, sizeof *params);
    const IrVar *w = param_named(m, "w"), *b = param_named(m, "b");
    double wv[4] = {0.5, -1, 2, 0.25}, hv[4] = {1, 2, 3, 4};
    memcpy(params + w->offset, wv, sizeof wv);
    params[b->offset] = 0.125;
    double z = 0.5 - 2 + 6 + 1 + 0.125; /* dot(w, h) + b */
    double want1 = log1p(exp(z)) - z, want0 = log1p(exp(z));
    ck_assert_double_eq_tol(eval1(tr->final_loss, hv, params, row, 1), want1, 1e-12);
    row[2] = 0;
    ck_assert_double_eq_tol(eval1(tr->final_loss, hv, params, row, 1), want0, 1e-12);
    free(params);
    ck_assert_int_eq(tr->nt, 2);
    ck_assert_int_eq(tr->batch, SEMA_BATCH_ALL);
    ck_assert_str_eq(tr->solver.name, "rk4");
    ck_assert_str_eq(tr->optimizer.name, "adam");
    ck_assert_double_eq_tol(tr->optimizer.cfg.lr, 1e-2, 1e-17);
    ck_assert_int_eq(tr->steps, 300);
    ck_assert_int_eq(tr->log_every, 10);
    ck_assert_str_eq(tr->gradient, "adjoint");
}
END_TEST

START_TEST(test_regularize_uses_rhs)
{
    SemaProgram *p = compile_ok(
        "model R {\n"
        "  state y[2] = [1, 0]\n"
        "  param k = 0.5\n"
        "  const A[2, 2] = [[0, 1], [-1, 0]]\n"
        "  dy/dt = k * (A @ y)\n"
        "}\n"
        "train R { t = [0, 2]; final_loss = sum(y); regularize = 0.01 * sum((dy/dt)^2) + dy/dt[0]; "
        "optimizer = momentum(lr = 0.1, momentum = 0.9); steps = 25 }\n");
    const SemaTrain *tr = train_at(p, 0);
    const IrModel *m = tr->model, *a = tr->augmented;
    ck_assert_ptr_ne(a, m);
    ck_assert_int_eq(a->n_states, 2);
    ck_assert_int_eq(a->ny, 3);
    ck_assert_str_eq(a->states[1].name, "__cost");
    ck_assert_int_eq(a->states[1].offset, 2);
    ck_assert_ptr_eq(a->rhs[0], m->rhs[0]);
    ck_assert_ptr_eq(a->rhs[1], tr->regularize);
    ck_assert_ptr_eq(a->params, m->params);
    ck_assert_int_eq(a->np, m->np);
    ck_assert_int_eq(m->n_states, 1); /* the model itself is untouched */
    ck_assert_int_eq(m->ny, 2);
    /* dy/dt = k [y1, -y0] = 0.5 [-4, -3] at y = [3, -4] */
    double y[2] = {3, -4}, k = 0.5;
    double want = 0.01 * (4 + 2.25) + (-2);
    ck_assert_double_eq_tol(eval1(tr->regularize, y, &k, NULL, 0), want, 1e-12);
    ck_assert_double_eq_tol(eval1(a->states[1].init, NULL, NULL, NULL, 0), 0, 1e-15);
    ck_assert_int_eq(tr->log_every, 2);
    ck_assert_str_eq(tr->optimizer.name, "momentum");
    ck_assert_double_eq_tol(tr->optimizer.cfg.momentum, 0.9, 1e-15);
    ck_assert_str_eq(tr->solver.name, "dopri5"); /* the default */
    ck_assert_uint_eq(tr->solver.given, 0);
}
END_TEST

START_TEST(test_fields_shuffled_and_matrix)
{
    /* columns out of order gather scalar leaves; in order, one DATA leaf */
    SemaProgram *p = compile_ok(
        "data s = csv(\"shuffled.csv\")\n"
        "data o = csv(\"obs.csv\")\n"
        "model M { state y[2]; state W[2, 2]; param k = 1; dy/dt = -k * y; dW/dt = -W }\n"
        "model N { state x; state y[2]; param k = 1; dx/dt = -k * x; dy/dt = -y }\n"
        "train M { data = s; loss = sum(y * s.y) + sum(W * s.W) + s.t; optimizer = adam(lr = 0.1); steps = 3 }\n"
        "train N { data = o; final_loss = x + obs_t(o.t); batch = windows(length = 4, count = 1); "
        "optimizer = sgd(lr = 1); steps = 5 }\n"
        "fn obs_t(a) = 2 * a\n");
    const SemaData *s = p->dirs[0].data;
    ck_assert_int_eq(s->n_fields, 2);
    const SemaTrain *tr = train_at(p, 2);
    /* row: y[1]=5, t=0, y[0]=6, W[1,0]=1, W[0,0]=2, W[0,1]=3, W[1,1]=4 */
    double row[7] = {5, 0.5, 6, 1, 2, 3, 4};
    double y0[2], W0[4];
    evalv(tr->init[0], NULL, NULL, row, y0);
    evalv(tr->init[1], NULL, NULL, row, W0);
    ck_assert_double_eq_tol(y0[0], 6, 1e-15);
    ck_assert_double_eq_tol(y0[1], 5, 1e-15);
    double want_W[4] = {2, 3, 1, 4};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(W0[i], want_W[i], 1e-15);
    double y[6] = {1, 10, 1, 0, 0, 1}; /* y, then W = identity */
    ck_assert_double_eq_tol(eval1(tr->loss, y, NULL, row, 0), 6 + 50 + 2 + 4 + 0.5, 1e-12);
    const SemaTrain *tn = train_at(p, 3);
    ck_assert_int_eq(tn->init[1]->op, IR_DATA); /* y[0], y[1] are columns 2, 3 in order */
    ck_assert_int_eq(tn->init[1]->offset, 2);
    double orow[4] = {3, 4, 5, 6}, x = 1;
    ck_assert_double_eq_tol(eval1(tn->final_loss, &x, NULL, orow, 0), 7, 1e-12);
    ck_assert_int_eq(tn->batch_length, 4);
}
END_TEST

static const SemaField *field_of(const SemaData *d, const char *name)
{
    for (int i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].name, name) == 0)
            return &d->fields[i];
    ck_abort_msg("no field %s", name);
    return NULL;
}

/* Tensor columns: x[c,i,j] gives a rank-3 field (its columns, out of order in the file,
 * are put in order in the table), w[a,b,c,d] a rank-4 one; npy(...) gives the same
 * fields from arrays. */
START_TEST(test_tensor_fields)
{
    char npy[300];
    snprintf(npy, sizeof npy, "%s/img.npy", dir);
    FILE *f = fopen(npy, "wb");
    ck_assert_ptr_nonnull(f);
    const char header[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 3), }";
    char pad[128];
    int n = snprintf(pad, sizeof pad, "%-117s\n", header); /* 10 + 118 = 128 */
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(n & 0xff, f);
    fputc(n >> 8, f);
    fwrite(pad, 1, (size_t)n, f);
    for (int v = 0; v < 12; v++)
        fputc(v, f);
    fclose(f);
    SemaProgram *p = compile_ok("data d = csv(\"tensor.csv\")\n"
                                "data g = npy(x = \"img.npy\", label = \"img.npy\")\n"
                                "data h = csv(\"flat.csv\", y = [1, 2, 3])\n");
    unlink(npy);
    const SemaData *d = p->dirs[0].data, *g = p->dirs[1].data;
    /* d: label, then w (in order, kept), then x moved behind in row-major order */
    ck_assert_int_eq(d->ncols, 7);
    const char *names[7] = {"label", "w[0,0,0,0]", "w[0,0,0,1]", "x[0,0,0]", "x[0,0,1]", "x[0,1,0]", "x[0,1,1]"};
    const double row[7] = {7, 5, 6, 1, 2, 3, 4};
    for (int c = 0; c < 7; c++) {
        ck_assert_str_eq(d->colnames[c], names[c]);
        ck_assert(d->values[c] == row[c]);
    }
    const SemaField *x = field_of(d, "x"), *w = field_of(d, "w");
    ck_assert_int_eq(x->shape.rank, 3);
    const int xd[3] = {1, 2, 2}, wd[4] = {1, 1, 1, 2};
    for (int a = 0; a < 3; a++)
        ck_assert_int_eq(ir_shape_dim(x->shape, a), xd[a]);
    ck_assert_int_eq(x->shape.rows, 1);
    ck_assert_int_eq(x->shape.cols, 4);
    ck_assert_int_eq(w->shape.rank, 4);
    for (int a = 0; a < 4; a++)
        ck_assert_int_eq(ir_shape_dim(w->shape, a), wd[a]);
    for (int e = 0; e < 4; e++) /* one block: a single DATA leaf */
        ck_assert_int_eq(x->cols[e], 3 + e);
    ck_assert_int_eq(field_of(d, "label")->shape.rank, 0);
    /* g: the arrays' columns, as a CSV would name them */
    ck_assert_int_eq(g->nrows, 2);
    ck_assert_int_eq(g->ncols, 12);
    ck_assert_str_eq(g->colnames[0], "x[0,0,0]");
    ck_assert_str_eq(g->colnames[5], "x[0,1,2]");
    ck_assert_str_eq(g->colnames[11], "label[0,1,2]");
    for (int c = 0; c < 12; c++)
        ck_assert(g->values[12 + c] == 6 + c % 6);
    const SemaField *gx = field_of(g, "x");
    ck_assert_int_eq(gx->shape.rank, 3);
    ck_assert_int_eq(ir_shape_dim(gx->shape, 2), 3);
    ck_assert_int_eq(gx->cols[0], 0);
    ck_assert_int_eq(field_of(g, "label")->cols[0], 6);
    /* h: the flat form, y[0] ... y[5] as [1, 2, 3], put in order behind label */
    const SemaData *h = p->dirs[2].data;
    const SemaField *hy = field_of(h, "y");
    ck_assert_int_eq(hy->shape.rank, 3);
    ck_assert_int_eq(ir_shape_dim(hy->shape, 1), 2);
    ck_assert_int_eq(ir_shape_dim(hy->shape, 2), 3);
    for (int e = 0; e < 6; e++) {
        ck_assert_int_eq(hy->cols[e], 1 + e);
        ck_assert(h->values[1 + e] == 1 + e);
    }
    ck_assert_str_eq(h->colnames[0], "label");
    ck_assert_str_eq(h->colnames[6], "y[5]");
}
END_TEST

START_TEST(test_minibatch_and_defaults)
{
    SemaProgram *p = compile_ok(
        "data rings = csv(\"rings.csv\")\n"
        "model F { state x[2]; state logp = 0; param k = 1; dx/dt = -k * x; dlogp/dt = 1 }\n"
        "train F { data = rings; t = [1, 0]; final_loss = logp + sum(x^2); batch = 2; "
        "optimizer = adam(lr = 1e-3, beta1 = 0.8, beta2 = 0.99, eps = 1e-7, weight_decay = 0); steps = 5 }\n");
    const SemaTrain *tr = train_at(p, 1);
    ck_assert_int_eq(tr->batch, SEMA_BATCH_MINIBATCH);
    ck_assert_int_eq(tr->batch_count, 2);
    ck_assert_int_eq(tr->init[0]->op, IR_DATA); /* x from rings.x */
    ck_assert_ptr_null(tr->init[1]);           /* logp from its default */
    ck_assert_double_eq_tol(tr->t[0], 1, 1e-15);
    ck_assert_uint_eq(tr->optimizer.given, ND_OBIT_LR | ND_OBIT_BETA1 | ND_OBIT_BETA2 |
                                               ND_OBIT_EPS | ND_OBIT_WEIGHT_DECAY);
    ck_assert_double_eq_tol(tr->optimizer.cfg.beta1, 0.8, 1e-15);
    ck_assert_double_eq_tol(tr->optimizer.cfg.eps, 1e-7, 1e-20);
    ck_assert_int_eq(tr->log_every, 1);
}
END_TEST

/* ---- errors: message text and line:col ---- */

typedef struct ErrCase {
    const char *src;
    const char *want; /* "L:C: error: message" (after "test.node:") */
    const char *note; /* further text that must appear, or NULL */
} ErrCase;

#define DECAY "model D { state x; param k = 0.5; dx/dt = -k * x }\n"
#define OBS "data obs = csv(\"obs.csv\")\n"
#define OPT "optimizer = sgd(lr = 0.1); steps = 1"

static const ErrCase errors[] = {
    {"data obs = csv(\"missing.csv\")\n", "1:16: error: cannot open '", "missing.csv': No such file or directory"},
    {"data obs = csv(\"bad_fields.csv\")\n", "1:16: error: ", "bad_fields.csv:3: expected 3 fields, found 2"},
    {"data obs = csv(\"bad_num.csv\")\n", "1:16: error: ", "bad_num.csv:3: column 'x': 'abc' is not a number"},
    {"data obs = csv(\"gap.csv\")\n", "1:16: error: ",
     "gap.csv:1: column 'y[1]' is missing: the columns of 'y' must be numbered from 0 without gaps, up to y[2]"},
    {"data obs = csv(\"nonmono.csv\")\n", "1:16: error: ",
     "nonmono.csv:4: the times must be strictly increasing, but t = 0.5 follows t = 1"},
    {"data obs = csv(\"mixed.csv\")\n", "1:16: error: ",
     "mixed.csv:1: column 'y[0]' does not fit with column 'y'"},
    {"data obs = csv(\"badname.csv\")\n", "1:16: error: ",
     "badname.csv:1: column 'my x' is not a usable name (expected a name like x, y[0], W[0,1] or x[0,1,2])"},
    {"data obs = csv(\"holes.csv\")\n", "1:16: error: ",
     "holes.csv:1: field 'W' is 3 x 3, but the file has 3 columns: the columns of 'W' must be numbered from 0 without gaps"},
    {"data obs = csv(\"wide.csv\")\n", "1:16: error: ",
     "wide.csv:1: field 'W' has 268468225 elements (16385 x 16385), more than the limit of 268435456"},
    {"data obs = csv(3)\n", "1:12: error: csv needs one file name in quotes, like csv(\"obs.csv\")", NULL},
    {"data obs = load(\"obs.csv\")\n", "1:12: error: data needs csv(\"file.csv\"), npy(x = \"file.npy\", ...) or simulate(Model, t = ..., solver = ...)", NULL},
    {OBS OBS, "2:6: error: data set 'obs' is already declared", "1:6: note: the first 'obs' is here"},
    {DECAY "data s = simulate(D, t = [0, 1])\n",
     "2:10: error: state 'x' of model 'D' has no initial value: give one with init = { x = ... }",
     "1:17: note: 'x' is declared here without '= value'"},
    {DECAY "data s = simulate(D, init = { x = 1 })\n",
     "2:10: error: simulate needs 't', the observation times, like t = linspace(0, 10, 101)", NULL},
    {DECAY "data s = simulate(D, t = [0, 1], tol = 1)\n",
     "2:34: error: unknown argument 'tol' for simulate (expected t, init, solver, samples, keep, "
     "noise or output)", NULL},
    {DECAY "data s = simulate(E, t = [0, 1])\n", "2:19: error: unknown model 'E'", NULL},
    {DECAY "data s = simulate(t = [0, 1])\n", "2:19: error: simulate needs a model first", NULL},
    {DECAY OBS "train D { data = obs; loss = (x - obs.x)^2; " OPT "; slover = rk4 }\n",
     "3:83: error: unknown key 'slover' in train (valid keys: data, init, t, loss, final_loss, regularize, "
     "batch, solver, gradient, optimizer, steps, log_every, history, save, load, validation, "
     "patience, schedule, clip)",
     "3:83: note: did you mean 'solver'?"},
    {DECAY OBS "train D { data = obs; loss = (x - obs.x)^2; " OPT "; steps = 2 }\n",
     "3:83: error: duplicate key 'steps' in train", "3:72: note: the first 'steps' is here"},
    {DECAY OBS "train D { data = obs; loss = x - obs.y; " OPT " }\n",
     "3:30: error: the loss must be a scalar, but this is [2] (reduce it with sum(...) or mean(...))", NULL},
    {DECAY OBS "train D { data = obs; loss = (x - obs.z)^2; " OPT " }\n",
     "3:39: error: data set 'obs' has no field 'z' (its fields: t, x, y)", NULL},
    {DECAY OBS "train D { data = obs; loss = (x - obs.xx)^2; " OPT " }\n",
     "3:39: error: data set 'obs' has no field 'xx'", "3:39: note: did you mean 'x'?"},
    {DECAY OBS "data o2 = csv(\"obs.csv\")\ntrain D { data = obs; loss = (x - o2.x)^2; " OPT " }\n",
     "4:35: error: 'o2' is not the data of this train, which uses 'obs'", NULL},
    {DECAY OBS "train D { loss = (x - obs.x)^2; " OPT " }\n",
     "3:23: error: 'obs' is a data set, but this train has no `data = obs`", NULL},
    {DECAY OBS "train D { data = ob; loss = (x - obs.x)^2; " OPT " }\n",
     "3:18: error: unknown data set 'ob'", "3:18: note: did you mean 'obs'?"},
    {DECAY "train D { final_loss = x^2; " OPT " }\n",
     "2:1: error: train without data needs 't', the time span, like t = [0, 1]", NULL},
    {DECAY "train D { t = [0, 1]; " OPT " }\n",
     "2:1: error: train without data needs 'final_loss', the loss at the last time", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; loss = x; " OPT " }\n",
     "2:39: error: 'loss' is evaluated at each observation and needs time-series data", NULL},
    {DECAY "train D { t = [0, 1]; final_loss = x^2; " OPT " }\n",
     "2:1: error: state 'x' of model 'D' has no initial value: give one with init = { x = ... }", NULL},
    {DECAY OBS "train D { data = obs; t = [0, 1]; loss = (x - obs.x)^2; " OPT " }\n",
     "3:23: error: train on time-series data integrates over the data's times; remove 't'", NULL},
    {DECAY OBS "train D { data = obs; " OPT " }\n",
     "3:1: error: train needs 'loss' (at each observation) or 'final_loss' (at the last time)", NULL},
    {"model Q { state q; dq/dt = -q }\n" OBS "train Q { data = obs; loss = q^2; " OPT " }\n",
     "3:1: error: no initial value for state 'q': data set 'obs' has no field 'q' and the state has no "
     "default; give one with init = { q = ... }", NULL},
    {"model Q { state x[2]; dx/dt = -x }\n" OBS "train Q { data = obs; loss = sum(x); " OPT " }\n",
     "3:1: error: the data field 'obs.x' is scalar but state 'x' is [2]: give the initial state with init = { x = ... }",
     NULL},
    {"model S { state x[2]; dx/dt = -x }\ndata r = csv(\"rings.csv\")\n"
     "train S { data = r; final_loss = sum(x); " OPT " }\n",
     "3:1: error: train on sample data (no 't' column) needs 't', the time span, like t = [0, 1]", NULL},
    {"model S { state x[2]; dx/dt = -x }\ndata r = csv(\"rings.csv\")\n"
     "train S { data = r; t = [0, 1]; loss = sum(x); final_loss = 1; " OPT " }\n",
     "3:33: error: 'loss' is evaluated at each observation time, but this data has no 't' column; use final_loss", NULL},
    {"model S { state x[2]; dx/dt = -x }\ndata r = csv(\"rings.csv\")\n"
     "train S { data = r; t = [0, 1]; final_loss = sum(x); batch = windows(length = 2, count = 1); " OPT " }\n",
     "3:62: error: windows(...) cuts a time series, but this data has no 't' column", NULL},
    {"model S { state x[2]; dx/dt = -x }\ndata r = csv(\"rings.csv\")\n"
     "train S { data = r; t = [0, 1]; final_loss = sum(x); batch = 3; " OPT " }\n",
     "3:62: error: the batch size must be an integer from 1 to 2", NULL},
    {DECAY OBS "train D { data = obs; loss = x; batch = 3; " OPT " }\n",
     "3:41: error: a time series is batched with windows(length = L, count = C)", NULL},
    {DECAY OBS "train D { data = obs; loss = x; batch = windows(length = 5, count = 2); " OPT " }\n",
     "3:58: error: the window length must be an integer from 2 to 4", NULL},
    {DECAY "data obs = csv(\"ids.csv\")\n"
     "train D { data = obs; loss = x; batch = windows(length = 4, count = 2); " OPT " }\n",
     "3:58: error: the window length must be an integer from 2 to 3", NULL},
    {DECAY "data obs = csv(\"singles.csv\")\n"
     "train D { data = obs; loss = x; batch = windows(length = 2, count = 2); " OPT " }\n",
     "3:41: error: windows need trajectories of at least 2 observations, but every trajectory "
     "of 'obs' has 1", NULL},
    {DECAY OBS "train D { data = obs; loss = x; batch = windows(length = 2); " OPT " }\n",
     "3:41: error: windows needs both arguments: windows(length = L, count = C)", NULL},
    {DECAY OBS "train D { data = obs; loss = x; batch = windows(length = 2, size = 3); " OPT " }\n",
     "3:61: error: windows takes two named arguments: windows(length = L, count = C)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; batch = 2; " OPT " }\n",
     "2:47: error: batch needs data (data = ...) to draw from", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; gradient = adjiont; " OPT " }\n",
     "2:50: error: unknown gradient method 'adjiont' (expected adjoint, backprop or checkpoint)",
     "2:50: note: did you mean 'adjoint'?"},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = adamm(lr = 1); steps = 1 }\n",
     "2:51: error: unknown optimizer 'adamm' (expected sgd, momentum, adam, rmsprop, adamw or lbfgs)", "2:51: note: did you mean 'adam'?"},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = adam(beta1 = 0.9); steps = 1 }\n",
     "2:51: error: optimizer 'adam' needs a learning rate, like adam(lr = 1e-3)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = adam; steps = 1 }\n",
     "2:51: error: optimizer 'adam' needs a learning rate, like adam(lr = 1e-3)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(lr = 0.1, beta1 = 0.9); steps = 1 }\n",
     "2:65: error: unknown argument 'beta1' for optimizer 'sgd' (expected lr, momentum, weight_decay)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(lr = 0); steps = 1 }\n",
     "2:60: error: optimizer argument 'lr' must be a positive number", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = rmsprop(lr = 1, alpha = 1); steps = 1 }\n",
     "2:75: error: optimizer argument 'alpha' must be a number in [0, 1)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(0.1); steps = 1 }\n",
     "2:55: error: optimizer arguments must be named, like sgd(lr = 0.001)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; steps = 1 }\n",
     "2:1: error: train needs 'optimizer', like optimizer = adam(lr = 1e-3)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(lr = 1) }\n",
     "2:1: error: train needs 'steps', the number of optimizer steps, like steps = 1000", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(lr = 1); steps = -1 }\n",
     "2:72: error: steps must be a whole number, 0 or more (0: load and save without training)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; optimizer = sgd(lr = 1); steps = 2.5 }\n",
     "2:72: error: steps must be a whole number, 0 or more (0: load and save without training)", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; " OPT "; log_every = -1 }\n",
     "2:89: error: log_every must be a positive integer", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; " OPT "; history = 3 }\n",
     "2:87: error: history needs a file name in quotes, like history = \"history.csv\"", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; " OPT "; save = out }\n",
     "2:84: error: save needs a file name in quotes, like save = \"model.params\"", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; solver = rk45; " OPT " }\n",
     "2:48: error: unknown solver 'rk45'", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; init = { x ~ normal(0, 1) }; final_loss = x; " OPT " }\n",
     "2:32: error: sampling an initial state (`x ~ ...`) belongs in solve; train starts from values or data, "
     "like `x = obs.x`", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; init = { x = dx/dt }; final_loss = x; " OPT " }\n",
     "2:36: error: an initial value cannot use 'dx/dt'", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; init = { x = x }; final_loss = x; " OPT " }\n",
     "2:36: error: an initial value cannot use state 'x'", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = x; regularize = dz/dt; " OPT " }\n",
     "2:52: error: 'dz/dt': 'z' is not a state of model 'D'", NULL},
    {DECAY OBS "train D { data = obs; loss = x; regularize = obs.x; " OPT " }\n",
     "3:46: error: the running cost (regularize) cannot use data ('obs.x')", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = [x, x]; " OPT " }\n",
     "2:36: error: the final loss must be a scalar, but this is [2]", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = tanh; " OPT " }\n",
     "2:36: error: the final loss must be a value, not a function", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain E { t = [0, 1]; final_loss = x; " OPT " }\n",
     "2:7: error: unknown model 'E'", NULL},
    {"model D { state x = 1; dx/dt = dx/dt }\n", "1:32: error: 'dx/dt' can only be used in train blocks", NULL},
    {"model D { state x = 1; dx/dt = -x }\ntrain D { t = [0, 1]; final_loss = obs.x; " OPT " }\n",
     "2:36: error: unknown name 'obs'", NULL},
};
enum { N_ERRORS = sizeof errors / sizeof errors[0] };

START_TEST(test_errors)
{
    const ErrCase *e = &errors[_i];
    SemaProgram *p = compile(e->src);
    ck_assert_msg(p == NULL, "case %d: no error reported", _i);
    char want[512];
    snprintf(want, sizeof want, "test.node:%s", e->want);
    ck_assert_msg(strstr(C->text, want) != NULL, "case %d: want\n%s\ngot\n%s", _i, want, C->text);
    if (e->note)
        ck_assert_msg(strstr(C->text, e->note) != NULL, "case %d: want\n%s\ngot\n%s", _i, e->note, C->text);
}
END_TEST

/* A data set that failed to load is reported once, not again at each use. */
START_TEST(test_no_cascade_after_bad_data)
{
    SemaProgram *p = compile(DECAY "data obs = csv(\"missing.csv\")\n"
                             "train D { data = obs; loss = (x - obs.x)^2; batch = windows(length = 2, count = 1); "
                             OPT " }\n");
    ck_assert_ptr_null(p);
    ck_assert_int_eq(C->diag.errors, 1);
}
END_TEST

/* An unknown data set, or a misspelled key, is one error: not also "missing". */
START_TEST(test_no_cascade_after_bad_key)
{
    const char *srcs[] = {
        DECAY OBS "train D { data = ob; loss = (x - obs.x)^2; " OPT " }\n",
        DECAY OBS "train D { data = obs; loss = (x - obs.x)^2; optimiser = sgd(lr = 0.1); steps = 1 }\n",
        DECAY OBS "train D { data = obs; los = (x - obs.x)^2; " OPT " }\n",
        "model D { state x = 1; param k = 1; dx/dt = -k * x }\ntrain D { t = [0, 1]; final_loss = x; " OPT "; step = 3 }\n",
    };
    for (int i = 0; i < 4; i++) {
        SemaProgram *p = compile(srcs[i]);
        ck_assert_ptr_null(p);
        ck_assert_msg(C->diag.errors == 1, "case %d: %d errors:\n%s", i, C->diag.errors, C->text);
        teardown();
    }
}
END_TEST

Suite *train_sema_suite(void);
Suite *train_sema_suite(void)
{
    Suite *s = suite_create("train_sema");
    TCase *tc = tcase_create("train");
    tcase_add_unchecked_fixture(tc, files_setup, files_teardown);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_final_loss_no_data);
    tcase_add_test(tc, test_observations_csv);
    tcase_add_test(tc, test_spiral_simulate);
    tcase_add_test(tc, test_simulate_samples);
    tcase_add_test(tc, test_anode_rings);
    tcase_add_test(tc, test_regularize_uses_rhs);
    tcase_add_test(tc, test_fields_shuffled_and_matrix);
    tcase_add_test(tc, test_tensor_fields);
    tcase_add_test(tc, test_minibatch_and_defaults);
    tcase_add_loop_test(tc, test_errors, 0, N_ERRORS);
    tcase_add_test(tc, test_no_cascade_after_bad_data);
    tcase_add_test(tc, test_no_cascade_after_bad_key);
    suite_add_tcase(s, tc);
    return s;
}
