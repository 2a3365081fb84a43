/* `nodec emit-c FILE -o OUT.c`: the whole-file writer. OUT.c holds, in one
 * translation unit that needs only libc and libm: the runtime's solver
 * sources (embedded into nodec at build time: one implementation), each
 * model's kernels from codegen_c.c, its parameters as `nodec run` initialises
 * them (same RNG, seed and order, computed here), the kernels of each train
 * directive's loss and its gradient, and a main that replays the solve
 * directives as `nodec run` does (left out under -DNODEC_NO_MAIN). OUT.h
 * declares the API; docs/emit-c.md documents the calling convention. */
#include "codegen_c.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "nd_random.h"
#include "nd_solver.h"

/* The runtime the generated program holds, headers before sources in
 * dependency order; the public part is repeated in the generated header. */
static const char *const runtime_files[] = {
    "nd_kernels.h", "nd_solver.h", "nd_tableaus.h", "nd_adaptive.h", "nd_io.h",
    "nd_tableaus.c", "nd_dense.c", "nd_solver.c", "nd_adaptive.c", "nd_io.c",
};
static const char *const public_files[] = {"nd_kernels.h", "nd_solver.h"};

typedef struct Emit {
    Compilation *c;
    FILE *out, *hdr;
    double **params; /* per model: as nodec run initialises them */
    CcWork *work;    /* per model: its kernels' scratch */
} Emit;

/* ---- text helpers ---- */

static void put_cstring(FILE *f, const char *s)
{
    if (!s) {
        fputs("NULL", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 32)
            fprintf(f, "\\%03o", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void put_doubles(FILE *f, const double *v, int n)
{
    for (int i = 0; i < n; i++) {
        fputs(i ? (i % 4 ? ", " : ",\n    ") : "    ", f);
        cc_print_double(f, v[i]);
    }
    fputc('\n', f);
}

/* A runtime file as embedded, without its `#include "nd_..."` lines (the
 * files it includes come before it in the same translation unit). */
static int put_runtime_file(FILE *f, const char *name)
{
    for (int i = 0; i < cc_runtime_file_count; i++) {
        if (strcmp(cc_runtime_files[i].name, name) != 0)
            continue;
        fprintf(f, "/* ---- runtime/%s ---- */\n", name);
        for (const char *s = cc_runtime_files[i].text; *s;) {
            const char *end = strchr(s, '\n');
            size_t len = end ? (size_t)(end - s) + 1 : strlen(s);
            if (strncmp(s, "#include \"", 10) != 0)
                fwrite(s, 1, len, f);
            s += len;
        }
        fputc('\n', f);
        return 0;
    }
    return -1;
}

/* ---- parameters, as tools/run.c initialises them ---- */

/* Glorot/Xavier uniform: fan-in is a matrix's columns, fan-out its rows. */
static double glorot_limit(IrShape s)
{
    double fan_out = s.rows, fan_in = s.rank == 2 ? s.cols : 1;
    return sqrt(6.0 / (fan_in + fan_out));
}

static void eval_into(IrNode *init, double t, const double *p, double *out, int size)
{
    int n = ir_shape_size(init->shape);
    double *tmp = malloc(sizeof(double) * (size_t)(n > size ? n : size));
    ir_eval(1, &init, t, NULL, p, &tmp);
    for (int i = 0; i < size; i++)
        out[i] = tmp[n == 1 ? 0 : i]; /* a scalar fills a tensor */
    free(tmp);
}

/* One draw, as tools/run.c's run_draw. */
static double draw(NdRandom *rng, IrInitKind kind, double a, double b)
{
    switch (kind) {
    case IR_INIT_NORMAL: return nd_random_normal(rng, a, b);
    case IR_INIT_UNIFORM: return nd_random_uniform(rng, a, b);
    case IR_INIT_RADEMACHER: return nd_random_u64(rng) >> 63 ? 1.0 : -1.0;
    default: return 0;
    }
}

static void init_param(NdRandom *rng, const IrVar *v, double *p)
{
    int size = ir_shape_size(v->shape);
    double *x = p + v->offset;
    double lim = glorot_limit(v->shape);
    for (int i = 0; i < size; i++) {
        if (v->init_kind == IR_INIT_GLOROT)
            x[i] = nd_random_uniform(rng, -lim, lim);
        else if (v->init_kind != IR_INIT_EXPR)
            x[i] = draw(rng, v->init_kind, v->dist_a, v->dist_b);
    }
    if (v->init_kind == IR_INIT_EXPR)
        eval_into(v->init, 0, p, x, size);
}

/* Every model's parameters in declaration order from the program's seed. */
static void init_params(Emit *e)
{
    SemaProgram *prog = e->c->program;
    NdRandom rng;
    nd_random_seed(&rng, prog->has_seed ? prog->seed : 0);
    for (int i = 0; i < prog->n_models; i++) {
        IrModel *m = prog->models[i];
        e->params[i] = arena_alloc(e->c->arena, sizeof(double) * (size_t)(m->np + 1));
        for (int j = 0; j < m->n_params; j++)
            init_param(&rng, &m->params[j], e->params[i]);
    }
}

static int model_index(const Emit *e, const IrModel *m)
{
    for (int i = 0; i < e->c->program->n_models; i++)
        if (e->c->program->models[i] == m)
            return i;
    return -1;
}

/* ---- the prelude ---- */

/* Elementwise helpers: the forms of compiler/ir_eval.c and of the JIT. exp and
 * tanh are compiler/codegen_math.c's inline algorithms written in C (the JIT's
 * results, not libm's; derivation in docs/codegen.md): the same operations in
 * the same order, llvm.fma as fma() (exactness needed), llvm.fmuladd as
 * NODEC_MULADD (fused only where the C compiler has a fast fma, as the JIT
 * fuses where the target has one). */
static const char helpers_head[] =
    "/* ---- elementwise helpers: the forms of nodec's JIT (compiler/codegen_llvm.c,\n"
    " * codegen_math.c) and interpreter (ir_eval.c) ---- */\n"
    "#ifdef FP_FAST_FMA\n#define NODEC_MULADD(a, b, c) fma(a, b, c)\n#else\n"
    "#define NODEC_MULADD(a, b, c) ((a) * (b) + (c))\n#endif\n"
    "static inline double nodec_pow2(int64_t k) /* 2^k, k in [-1022, 1023] */\n"
    "{\n"
    "    uint64_t bits = (uint64_t)(k + 1023) << 52;\n"
    "    double d;\n"
    "    memcpy(&d, &bits, sizeof d);\n"
    "    return d;\n"
    "}\n"
    "static inline double nodec_two_sum(double a, double b, double *lo)\n"
    "{\n"
    "    double hi = a + b, bb = hi - a;\n"
    "    *lo = (a - (hi - bb)) + (b - bb);\n"
    "    return hi;\n"
    "}\n";

static const char helpers_tail[] =
    "/* y = k ln2 + r (Cody-Waite, SHIFT rounding); returns r^2 P(r), expm1(r) = r + that */\n"
    "static inline double nodec_reduce(double y, int64_t *k, double *r)\n"
    "{\n"
    "    const double shift = 6755399441055744.0;\n"
    "    double shifted = y * 1.4426950408889634 + shift, kf = shifted - shift;\n"
    "    uint64_t bits, shift_bits;\n"
    "    memcpy(&bits, &shifted, sizeof bits);\n"
    "    memcpy(&shift_bits, &shift, sizeof shift_bits);\n"
    "    *k = (int64_t)(bits - shift_bits);\n"
    "    double hi = y - kf * 6.93147180369123816490e-01;\n"
    "    *r = hi - kf * 1.90821492927058770002e-10;\n"
    "    double r2 = *r * *r;\n"
    "    return r2 * nodec_expm1_poly(*r, r2);\n"
    "}\n"
    "static inline double nodec_exp(double x)\n"
    "{\n"
    "    int isn = x != x;\n"
    "    double y = isn ? 0.0 : x, r;\n"
    "    int64_t k;\n"
    "    y = y < -746.0 ? -746.0 : y;\n"
    "    y = y > 710.0 ? 710.0 : y;\n"
    "    double r2p = nodec_reduce(y, &k, &r);\n"
    "    double er = 1.0 + (r + r2p);\n"
    "    int64_t k1 = k >> 1, k2 = k - k1;\n"
    "    double e = er * nodec_pow2(k1) * nodec_pow2(k2);\n"
    "    return isn ? x : e;\n"
    "}\n"
    "static inline double nodec_tanh(double x)\n"
    "{\n"
    "    int isn = x != x;\n"
    "    double a = fabs(isn ? 0.0 : x), r, lo, ql;\n"
    "    int64_t k;\n"
    "    a = a < 0.0 ? 0.0 : a;\n"
    "    a = a > 20.0 ? 20.0 : a;\n"
    "    double r2p = nodec_reduce(a + a, &k, &r);\n"
    "    double s = nodec_pow2(k);\n"
    "    double hi = nodec_two_sum(s - 1.0, s * r, &lo);\n"
    "    lo = lo + s * r2p;\n"
    "    double uh = hi + lo, ul = lo - (uh - hi);\n"
    "    double q = nodec_two_sum(uh, 2.0, &ql);\n"
    "    ql = ql + ul;\n"
    "    double rq = 1.0 / q, t0 = uh * rq;\n"
    "    double rem = fma(-t0, q, uh);\n"
    "    rem = (rem + ul) - t0 * ql;\n"
    "    double t = copysign(fma(rem, rq, t0), x);\n"
    "    return isn ? x : t;\n"
    "}\n"
    "static inline double nodec_sigmoid(double x)\n"
    "{\n"
    "    double e = nodec_exp(-fabs(x)), d = 1.0 + e;\n"
    "    return x >= 0 ? 1.0 / d : e / d;\n"
    "}\n"
    "static inline double nodec_softplus(double x) { return fmax(x, 0.0) + log1p(nodec_exp(-fabs(x))); }\n"
    "static inline double nodec_relu(double x) { return x > 0 ? x : 0.0; }\n"
    "static inline double nodec_sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }\n"
    "static inline double nodec_step(double x) { return x > 0 ? 1.0 : 0.0; }\n"
    "static inline double nodec_square(double x) { return x * x; }\n"
    "static inline double nodec_cube(double x) { return x * x * x; }\n\n";

/* P(r) = sum_{n=2..13} r^(n-2) / n! by Estrin's scheme, its coefficients
 * computed as codegen_math.c computes them. */
static void write_expm1_poly(FILE *f)
{
    double c[14], fact = 1;
    for (int n = 1; n <= 13; n++) {
        fact *= n;
        c[n] = 1 / fact;
    }
    fputs("static inline double nodec_expm1_poly(double r, double r2)\n{\n", f);
    for (int i = 0; i < 6; i++) {
        fprintf(f, "    double p%d = NODEC_MULADD(", i);
        cc_print_double(f, c[3 + 2 * i]);
        fputs(", r, ", f);
        cc_print_double(f, c[2 + 2 * i]);
        fputs(");\n", f);
    }
    fputs("    double r4 = r2 * r2, r8 = r4 * r4;\n"
          "    double q0 = NODEC_MULADD(p1, r2, p0), q1 = NODEC_MULADD(p3, r2, p2);\n"
          "    double q2 = NODEC_MULADD(p5, r2, p4);\n"
          "    return NODEC_MULADD(q2, r8, NODEC_MULADD(q1, r4, q0));\n}\n", f);
}

static void write_banner(FILE *f, const Emit *e, const char *what)
{
    const char *src = e->c->n_files > 0 ? e->c->files[e->c->n_files - 1]->path : "?";
    fprintf(f, "/* %s generated by `nodec emit-c` from %s: do not edit.\n", what, src);
    fputs(" * Build: cc -std=c99 -O2 out.c -lm (a C++ compiler works too); -DNODEC_NO_MAIN\n"
          " * leaves out main (a library); -DNODEC_USE_CBLAS sends large matrix products to\n"
          " * cblas (link a BLAS). The calling convention is in nodec's docs/emit-c.md. */\n",
          f);
}

static int write_prelude(Emit *e)
{
    FILE *f = e->out;
    write_banner(f, e, "Standalone C99");
    fputs("#if defined(__cplusplus) && defined(__GNUC__)\n"
          "#pragma GCC diagnostic ignored \"-Wmissing-field-initializers\" /* C99 designators */\n"
          "#endif\n"
          "#include <errno.h>\n#include <float.h>\n#include <math.h>\n#include <stdarg.h>\n"
          "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
          "#include <string.h>\n"
          "#ifdef NODEC_USE_CBLAS\n#include <cblas.h>\n#endif\n\n"
          "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
          f);
    for (size_t i = 0; i < sizeof runtime_files / sizeof runtime_files[0]; i++)
        if (put_runtime_file(f, runtime_files[i])) {
            diag_plain(&e->c->diag, "internal error at compiler/emit_c.c:%d: runtime file '%s' "
                                    "is not embedded in this nodec", __LINE__, runtime_files[i]);
            return -1;
        }
    fputs(helpers_head, f);
    write_expm1_poly(f);
    fputs(helpers_tail, f);
    return 0;
}

static int write_header_prelude(Emit *e, const char *guard)
{
    FILE *h = e->hdr;
    write_banner(h, e, "API");
    fprintf(h, "#ifndef %s\n#define %s\n\n#include <stddef.h>\n#include <stdint.h>\n\n", guard,
            guard);
    fputs("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", h);
    for (size_t i = 0; i < sizeof public_files / sizeof public_files[0]; i++)
        if (put_runtime_file(h, public_files[i]))
            return -1;
    return 0;
}

/* ---- models ---- */

static void declare_kernel(FILE *h, const char *name, bool rhs)
{
    if (rhs)
        fprintf(h, "void %s(double t, const double *y, const double *p, double *dydt, int64_t B,\n"
                   "    double *work);\n", name);
    else
        fprintf(h, "void %s(double t, const double *y, const double *p, const double *a,\n"
                   "    const double *d, double *out0, double *out1, int64_t B, double *work);\n",
                name);
}

static void write_work_size(Emit *e, const char *name, const CcWork *w)
{
    fprintf(e->out, "size_t %s_work_size(int64_t B)\n{\n    return %zu + %zu * (size_t)B;\n}\n\n",
            name, w->work_fixed, w->work_per_sample);
    fprintf(e->hdr, "size_t %s_work_size(int64_t B);\n", name);
}

static void write_params(Emit *e, const IrModel *m, const double *p)
{
    FILE *f = e->out;
    fprintf(f, "void %s_params(double *p)\n{\n", m->name);
    if (m->np == 0) {
        fputs("    (void)p;\n}\n\n", f);
    } else {
        fprintf(f, "    static const double p0[%d] = {\n", m->np);
        put_doubles(f, p, m->np);
        fputs("    };\n    memcpy(p, p0, sizeof p0);\n}\n\n", f);
    }
    fprintf(e->hdr, "void %s_params(double *p); /* p[%s_NP]: as nodec run initialises them */\n",
            m->name, m->name);
}

static void write_columns(Emit *e, const IrModel *m)
{
    const char **names = sema_state_columns(e->c->arena, m);
    fprintf(e->out, "const char *const *%s_state_names(void)\n{\n", m->name);
    fprintf(e->out, "    static const char *const names[%d] = {", m->ny);
    for (int i = 0; i < m->ny; i++) {
        fputs(i ? ", " : "", e->out);
        put_cstring(e->out, names[i]);
    }
    fputs("};\n    return names;\n}\n\n", e->out);
    fprintf(e->hdr, "const char *const *%s_state_names(void); /* %s_NY column names */\n", m->name,
            m->name);
}

static void write_kernel_table(Emit *e, const IrModel *m, const CcWork *w)
{
    fprintf(e->out,
            "void %s_kernels(NdKernels *k)\n{\n    memset(k, 0, sizeof *k);\n"
            "    k->ny = %d;\n    k->np = %d;\n    k->work_fixed = %zu;\n"
            "    k->work_per_sample = %zu;\n    k->rhs = %s_rhs;\n    k->vjp = %s_vjp;\n"
            "    k->jac = %s%s;\n}\n\n",
            m->name, m->ny, m->np, w->work_fixed, w->work_per_sample, m->name, m->name,
            cc_model_has_jacobian(m) ? m->name : "NULL", cc_model_has_jacobian(m) ? "_jac" : "");
    fprintf(e->hdr, "void %s_kernels(NdKernels *k); /* the table nd_solver_create takes */\n",
            m->name);
}

static int write_model(Emit *e, int i)
{
    IrModel *m = e->c->program->models[i];
    fprintf(e->out, "/* ---- model %s: %d state elements per sample, %d parameters ---- */\n\n",
            m->name, m->ny, m->np);
    fprintf(e->hdr, "\n/* model %s */\n#define %s_NY %d\n#define %s_NP %d\n", m->name, m->name,
            m->ny, m->name, m->np);
    if (cc_emit_model_kernels(e->out, e->c->ir, m, m->name, &e->work[i], &e->c->diag))
        return -1;
    const char *kinds[3] = {"rhs", "vjp", "jac"};
    for (int k = 0; k < (cc_model_has_jacobian(m) ? 3 : 2); k++) {
        char name[300];
        snprintf(name, sizeof name, "%s_%s", m->name, kinds[k]);
        declare_kernel(e->hdr, name, k == 0);
    }
    write_work_size(e, m->name, &e->work[i]);
    write_params(e, m, e->params[i]);
    write_columns(e, m);
    write_kernel_table(e, m, &e->work[i]);
    return 0;
}

/* ---- train directives: the loss and its gradient ---- */

/* Spec of a scalar per sample into out0[b]. */
static CgKernelSpec value_spec(Arena *a, const char *name, IrNode *value, int nd)
{
    CgOutput *o = arena_alloc(a, sizeof *o);
    *o = (CgOutput){value, 0, 0, 1, 0};
    return (CgKernelSpec){name, 1, o, nd};
}

/* Spec of the gradient of a scalar per sample: d/dy into out0 laid out like
 * y, d/dp summed over the batch into out1 (as tools/train.c compiles it). */
static CgKernelSpec grad_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                              IrNode *value, int nd)
{
    int n = m->n_states + m->n_params;
    IrNode **wrt = arena_alloc(a, sizeof(IrNode *) * (size_t)(n + 1));
    IrNode **grads = arena_alloc(a, sizeof(IrNode *) * (size_t)(n + 1));
    for (int i = 0; i < m->n_states; i++)
        wrt[i] = ir_state(b, i, m->states[i].offset, m->states[i].shape);
    for (int j = 0; j < m->n_params; j++)
        wrt[m->n_states + j] = ir_param(b, j, m->params[j].offset, m->params[j].shape);
    IrNode *one = ir_scalar(b, 1);
    diff_vjp(b, 1, &value, &one, n, wrt, grads);
    CgOutput *o = arena_alloc(a, sizeof *o * (size_t)(n + 1));
    for (int i = 0; i < m->n_states; i++)
        o[i] = (CgOutput){grads[i], 0, m->states[i].offset, m->ny, 0};
    for (int j = 0; j < m->n_params; j++)
        o[m->n_states + j] = (CgOutput){grads[m->n_states + j], 1, m->params[j].offset, 0, 1};
    return (CgKernelSpec){name, n, o, nd};
}

int emit_c_train_specs(Arena *a, IrBuilder *b, const SemaTrain *tr, CgKernelSpec *specs)
{
    int n = 0, nd = tr->data ? tr->data->ncols : 0;
    if (tr->loss) {
        specs[n++] = value_spec(a, "loss", tr->loss, nd);
        specs[n++] = grad_spec(a, b, tr->augmented, "loss_grad", tr->loss, nd);
    }
    if (tr->final_loss) {
        specs[n++] = value_spec(a, "final", tr->final_loss, nd);
        specs[n++] = grad_spec(a, b, tr->augmented, "final_grad", tr->final_loss, nd);
    }
    return n;
}

static int write_train(Emit *e, const SemaTrain *tr, int index)
{
    IrModel *m = tr->augmented;
    char prefix[280], name[300];
    snprintf(prefix, sizeof prefix, "%s_train%d", tr->model->name, index);
    fprintf(e->out, "/* ---- train directive %d (model %s): the loss and its gradient ---- */\n\n",
            index, tr->model->name);
    fprintf(e->hdr, "\n/* train directive %d: per-sample loss (out0[b]) and its gradient (d/dy "
                    "into out0 like y,\n * d/dp summed over the batch into out1); d holds each "
                    "sample's data row */\n", index);
    CcWork work = {0};
    if (m != tr->model) { /* a running cost: the model plus its __cost state */
        if (cc_emit_model_kernels(e->out, e->c->ir, m, prefix, &work, &e->c->diag))
            return -1;
        fprintf(e->hdr, "#define %s_NY %d /* the model's states plus __cost */\n", prefix, m->ny);
        const char *kinds[3] = {"rhs", "vjp", "jac"};
        for (int k = 0; k < (cc_model_has_jacobian(m) ? 3 : 2); k++) {
            snprintf(name, sizeof name, "%s_%s", prefix, kinds[k]);
            declare_kernel(e->hdr, name, k == 0);
        }
    }
    CgKernelSpec specs[4];
    int n = emit_c_train_specs(e->c->arena, e->c->ir, tr, specs);
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "%s_%s", prefix, specs[k].name);
        if (cc_emit_kernel(e->out, m, name, false, &specs[k], &work, &e->c->diag))
            return -1;
        declare_kernel(e->hdr, name, false);
    }
    write_work_size(e, prefix, &work);
    return 0;
}

/* ---- main: the solve directives ---- */

static const char runner[] =
    "#ifndef NODEC_NO_MAIN\n"
    "/* One solve directive, executed as `nodec run` executes it (tools/run.c). */\n"
    "typedef struct NodecSolve {\n"
    "    const char *model, *solver, *output;\n"
    "    void (*kernels)(NdKernels *k);\n"
    "    void (*params)(double *p);\n"
    "    const char *const *names;   /* the visible columns' names */\n"
    "    NdMethod method;\n"
    "    int has_h, has_tol, has_h0, has_max_steps;\n"
    "    double h, rtol, atol, h0, max_steps;\n"
    "    int nt, nv;                 /* output times; visible state columns */\n"
    "    const double *ts, *y0;\n"
    "    const int *cols;            /* the visible columns' positions in y */\n"
    "} NodecSolve;\n\n"
    "static int nodec_configure(NdSolver *s, const NodecSolve *v)\n"
    "{\n"
    "    if (v->has_h && nd_solver_set_step(s, v->h))\n"
    "        return -1;\n"
    "    if (v->has_tol && nd_solver_set_tolerances(s, v->rtol, v->atol))\n"
    "        return -1;\n"
    "    if (v->has_h0 && nd_solver_set_initial_step(s, v->h0))\n"
    "        return -1;\n"
    "    if (v->has_max_steps && nd_solver_set_max_steps(s, (long)v->max_steps))\n"
    "        return -1;\n"
    "    return 0;\n"
    "}\n\n"
    "/* The visible columns (compiler-named states such as __eps_z are hidden). */\n"
    "static int nodec_write(const NodecSolve *v, int ny, double *yout)\n"
    "{\n"
    "    for (int j = 0; j < v->nt; j++) /* packed in place: cols are increasing */\n"
    "        for (int c = 0; c < v->nv; c++)\n"
    "            yout[(size_t)j * (size_t)v->nv + (size_t)c] = yout[(size_t)j * (size_t)ny + (size_t)v->cols[c]];\n"
    "    if (!v->output) {\n"
    "        nd_print_table(stdout, v->nv, v->names, v->nt, v->ts, yout);\n"
    "        return 0;\n"
    "    }\n"
    "    if (nd_write_csv(v->output, v->nv, v->names, v->nt, v->ts, yout) == 0)\n"
    "        return 0;\n"
    "    fprintf(stderr, \"error: cannot write '%s': %s\\n\", v->output, strerror(errno));\n"
    "    return 1;\n"
    "}\n\n"
    "static int nodec_run_solve(const NodecSolve *v)\n"
    "{\n"
    "    NdKernels k;\n"
    "    v->kernels(&k);\n"
    "    double *p = (double *)calloc((size_t)k.np + 1, sizeof(double));\n"
    "    double *yout = (double *)calloc((size_t)v->nt * (size_t)k.ny, sizeof(double));\n"
    "    NdSolver *s = nd_solver_create(&k, v->method, 1);\n"
    "    int rc = 1;\n"
    "    if (!p || !yout || !s) {\n"
    "        fprintf(stderr, \"error: out of memory for solve %s\\n\", v->model);\n"
    "    } else if (nodec_configure(s, v)) {\n"
    "        fprintf(stderr, \"error: invalid settings for %s: %s\\n\", v->solver,\n"
    "                nd_solver_get_message(s));\n"
    "    } else {\n"
    "        v->params(p);\n"
    "        int st = nd_solve(s, p, v->y0, v->ts, v->nt, yout);\n"
    "        if (st != ND_OK)\n"
    "            fprintf(stderr, \"error: solve %s failed (%s): %s\\n\", v->model, nd_status_name(st),\n"
    "                    nd_solver_get_message(s));\n"
    "        else\n"
    "            fprintf(stderr, \"solve %s: %s over [%g, %g], %d output times -> %s\\n\", v->model,\n"
    "                    v->solver, v->ts[0], v->ts[v->nt - 1], v->nt, v->output ? v->output : \"stdout\");\n"
    "        rc = st == ND_OK ? nodec_write(v, k.ny, yout) : 1;\n"
    "    }\n"
    "    nd_solver_free(s);\n"
    "    free(yout);\n"
    "    free(p);\n"
    "    return rc;\n"
    "}\n\n";

static const SemaArg *find_arg(const SemaCall *call, const char *key)
{
    for (int i = 0; i < call->nargs; i++)
        if (strcmp(call->args[i].key, key) == 0)
            return &call->args[i];
    return NULL;
}

/* The solver a directive names, checked as tools/run.c checks it. */
static int check_solver(Emit *e, const SemaDirective *d)
{
    const SemaCall *call = &d->solve.solver;
    Diag *diag = &e->c->diag;
    if (!call->name) {
        diag_error(diag, d->loc, "a solver is needed here, e.g. solver = dopri5(rtol = 1e-6)");
        return -1;
    }
    int m = nd_method_from_name(call->name);
    if (m < 0) {
        diag_error(diag, call->loc, "solver '%s' is not available to emit-c in this version",
                   call->name);
        return -1;
    }
    if (!nd_method_is_adaptive((NdMethod)m) && !find_arg(call, "h")) {
        diag_error(diag, call->loc, "%s needs a step size: %s(h = 0.01)", call->name, call->name);
        return -1;
    }
    return m;
}

/* y0 of one sample: the directive's init overrides, else the defaults,
 * evaluated with the parameters as initialised. */
static int initial_state(Emit *e, const SemaDirective *d, const double *p, double *y0)
{
    const SemaSolve *s = &d->solve;
    const IrModel *m = s->model;
    bool drawn = s->samples > 0 || s->rows;
    for (int i = 0; i < m->n_states; i++)
        drawn |= (s->draw && s->draw[i].kind != IR_INIT_NONE) ||
                 (m->states[i].init_kind != IR_INIT_EXPR && m->states[i].init_kind != IR_INIT_NONE);
    if (drawn) {
        diag_error(&e->c->diag, d->loc, "emit-c does not handle batched or drawn initial states "
                                        "(samples, data rows, ~ distributions) yet");
        return -1;
    }
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = s->init && s->init[i] ? s->init[i] : v->init;
        if (!init) {
            diag_error(&e->c->diag, d->loc,
                       "state '%s' of model '%s' has no initial value: give one with "
                       "init = { %s = ... }", v->name, m->name, v->name);
            return -1;
        }
        eval_into(init, s->t[0], p, y0 + v->offset, ir_shape_size(v->shape));
    }
    return 0;
}

static void put_arg(FILE *f, const SemaCall *call, const char *key, double def)
{
    const SemaArg *a = find_arg(call, key);
    cc_print_double(f, a ? a->value : def);
}

/* Visible state columns: all but the compiler's hidden states ("__..."). */
static int visible_count(const IrModel *m)
{
    int n = 0;
    for (int i = 0; i < m->n_states; i++)
        if (strncmp(m->states[i].name, "__", 2) != 0)
            n += ir_shape_size(m->states[i].shape);
    return n;
}

static int write_solve_data(Emit *e, const SemaDirective *d, int k)
{
    const SemaSolve *s = &d->solve;
    int mi = model_index(e, s->model);
    double *y0 = arena_alloc(e->c->arena, sizeof(double) * (size_t)(s->model->ny + 1));
    if (check_solver(e, d) < 0 || initial_state(e, d, e->params[mi], y0))
        return -1;
    fprintf(e->out, "static const double nodec_ts%d[%d] = {\n", k, s->nt);
    put_doubles(e->out, s->t, s->nt);
    fprintf(e->out, "};\nstatic const double nodec_y0_%d[%d] = {\n", k, s->model->ny);
    put_doubles(e->out, y0, s->model->ny);
    fputs("};\n", e->out);
    const char **names = sema_state_columns(e->c->arena, s->model);
    fprintf(e->out, "static const int nodec_cols%d[%d] = {", k, s->model->ny);
    for (int i = 0, c = 0; i < s->model->n_states; i++) {
        const IrVar *v = &s->model->states[i];
        for (int j = 0; strncmp(v->name, "__", 2) != 0 && j < ir_shape_size(v->shape); j++)
            fprintf(e->out, "%s%d", c++ ? ", " : "", v->offset + j);
    }
    fputs(visible_count(s->model) ? "" : "0", e->out); /* C has no empty initialiser */
    fprintf(e->out, "};\nstatic const char *const nodec_names%d[%d] = {", k, s->model->ny);
    for (int i = 0, c = 0; i < s->model->n_states; i++) {
        const IrVar *v = &s->model->states[i];
        for (int j = 0; strncmp(v->name, "__", 2) != 0 && j < ir_shape_size(v->shape); j++) {
            fputs(c++ ? ", " : "", e->out);
            put_cstring(e->out, names[v->offset + j]);
        }
    }
    fputs(visible_count(s->model) ? "};\n" : "NULL};\n", e->out);
    return 0;
}

static void write_solve_entry(Emit *e, const SemaDirective *d, int k)
{
    const SemaSolve *s = &d->solve;
    const SemaCall *call = &s->solver;
    const char *name = s->model->name;
    FILE *f = e->out;
    fputs("    {", f);
    put_cstring(f, name);
    fputs(", ", f);
    put_cstring(f, call->name);
    fputs(", ", f);
    put_cstring(f, s->output);
    fprintf(f, ", %s_kernels, %s_params, nodec_names%d,\n     (NdMethod)%d", name, name, k,
            nd_method_from_name(call->name));
    bool tol = find_arg(call, "rtol") || find_arg(call, "atol");
    fprintf(f, ", %d, %d, %d, %d, ", find_arg(call, "h") != NULL, tol, find_arg(call, "h0") != NULL,
            find_arg(call, "max_steps") != NULL);
    put_arg(f, call, "h", 0);
    fputs(", ", f);
    put_arg(f, call, "rtol", ND_DEFAULT_RTOL);
    fputs(", ", f);
    put_arg(f, call, "atol", ND_DEFAULT_ATOL);
    fputs(", ", f);
    put_arg(f, call, "h0", 0);
    fputs(", ", f);
    put_arg(f, call, "max_steps", 0);
    fprintf(f, ", %d, %d, nodec_ts%d, nodec_y0_%d, nodec_cols%d},\n", s->nt,
            visible_count(s->model), k, k, k);
}

static int write_main(Emit *e)
{
    const SemaProgram *prog = e->c->program;
    fputs(runner, e->out);
    int n = 0;
    bool trained = false;
    for (int i = 0; i < prog->n_dirs; i++) {
        const SemaDirective *d = &prog->dirs[i];
        trained |= d->kind == SEMA_TRAIN;
        if (d->kind != SEMA_SOLVE)
            continue;
        if (trained)
            fprintf(stderr, "nodec: warning: solve %s follows a train directive: the emitted main "
                            "solves with the parameters as initialised (see docs/emit-c.md)\n",
                    d->solve.model->name);
        if (write_solve_data(e, d, n++))
            return -1;
    }
    fprintf(e->out, "\nstatic const NodecSolve nodec_solves[%d] = {\n", n ? n : 1);
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE)
            write_solve_entry(e, &prog->dirs[i], k++);
    if (n == 0)
        fputs("    {NULL, NULL, NULL, NULL, NULL, NULL, ND_EULER, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, "
              "0.0, 0, 0, NULL, NULL, NULL},\n", e->out);
    fprintf(e->out, "};\n\nint main(void)\n{\n    for (int i = 0; i < %d; i++)\n"
                    "        if (nodec_run_solve(&nodec_solves[i]))\n            return 1;\n"
                    "    return 0;\n}\n#endif /* NODEC_NO_MAIN */\n", n);
    return 0;
}

/* ---- the files ---- */

static char *header_path(const char *c_path)
{
    size_t len = strlen(c_path);
    char *h = malloc(len + 3);
    if (!h)
        return NULL;
    memcpy(h, c_path, len + 1);
    if (len > 2 && strcmp(c_path + len - 2, ".c") == 0)
        h[len - 1] = 'h';
    else
        strcat(h, ".h");
    return h;
}

/* NODEC_<NAME>_H from the header's file name. */
static void header_guard(const char *h_path, char *guard, size_t size)
{
    const char *base = strrchr(h_path, '/');
    base = base ? base + 1 : h_path;
    size_t n = (size_t)snprintf(guard, size, "NODEC_EMIT_%s", base);
    for (size_t i = 0; i < n && i < size; i++)
        guard[i] = (guard[i] >= 'a' && guard[i] <= 'z') ? (char)(guard[i] - 'a' + 'A')
                   : ((guard[i] >= 'A' && guard[i] <= 'Z') || (guard[i] >= '0' && guard[i] <= '9'))
                       ? guard[i]
                       : '_';
}

static int write_all(Emit *e, const char *guard)
{
    const SemaProgram *prog = e->c->program;
    if (write_prelude(e) || write_header_prelude(e, guard))
        return -1;
    init_params(e);
    for (int i = 0; i < prog->n_models; i++)
        if (write_model(e, i))
            return -1;
    for (int i = 0, t = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_TRAIN && write_train(e, &prog->dirs[i].train, t++))
            return -1;
    fputs("#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n", e->out);
    fprintf(e->hdr, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
    return write_main(e);
}

static int close_file(FILE *f, const char *path, Diag *diag)
{
    if (f && fclose(f) != 0) {
        diag_plain(diag, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int emit_c_program(Compilation *c, const char *c_path)
{
    char *h_path = header_path(c_path);
    Emit e = {.c = c};
    int n = c->program->n_models;
    e.params = arena_alloc(c->arena, sizeof *e.params * (size_t)(n + 1));
    e.work = arena_alloc(c->arena, sizeof *e.work * (size_t)(n + 1));
    e.out = fopen(c_path, "w");
    e.hdr = h_path ? fopen(h_path, "w") : NULL;
    int rc = 0;
    if (!e.out || !e.hdr) {
        diag_plain(&c->diag, "cannot write '%s': %s", !e.out ? c_path : h_path, strerror(errno));
        rc = -1;
    } else {
        char guard[256];
        header_guard(h_path, guard, sizeof guard);
        rc = write_all(&e, guard);
    }
    if (close_file(e.out, c_path, &c->diag) || close_file(e.hdr, h_path, &c->diag))
        rc = -1;
    if (rc) { /* no half-written program is left to compile */
        remove(c_path);
        if (h_path)
            remove(h_path);
    }
    free(h_path);
    return rc ? 1 : 0;
}
