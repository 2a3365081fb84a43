/* `nodec emit-c FILE -o OUT.c`: the whole-file writer. OUT.c holds, in one
 * translation unit that needs only libc and libm: the runtime's solver and
 * gradient sources (embedded into nodec at build time: one implementation),
 * each model's kernels from c_codegen.c, its parameters (as `nodec run` has
 * them after the file's trains), each train directive's loss and gradient
 * through the solve (c_emit_train.c), and a main that replays the solve
 * directives as `nodec run` does (c_emit_main.c; left out under
 * -DNODEC_NO_MAIN). OUT.h declares the API; docs/emit-c.md documents it. */
#include "c_emit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nd_random.h"
#include "params_init.h"

/* The runtime the generated program holds, headers before sources in
 * dependency order; the public part is repeated in the generated header.
 * nd_lapack.c is compiled with NODEC_NO_LAPACK: its plain C LU. */
static const char *const runtime_files[] = {
    "nd_real.h",      "nd_kernels.h",   "nd_solver.h",    "nd_tableaus.h",   "nd_adaptive.h",   "nd_events.h",
    "nd_lapack.h",    "nd_bdf.h",       "nd_onestep.h",    "nd_verlet.h",     "nd_sde.h",
    "nd_gradient.h",  "nd_grad_internal.h", "nd_train_loss.h", "nd_csv_write.h", "nd_random.h",
    "nd_tableaus.c",  "nd_dense.c",     "nd_solver.c",     "nd_adaptive.c",   "nd_events.c",
    "nd_lapack.c",    "nd_bdf.c",       "nd_onestep.c",    "nd_verlet.c",     "nd_sde.c",
    "nd_gradient.c",  "nd_adjoint.c",   "nd_backprop.c",   "nd_backprop_verlet.c", "nd_backprop_sde.c",   "nd_train_loss.c",
    "nd_csv_write.c",        "nd_random.c",
};
static const char *const public_files[] = {"nd_real.h", "nd_kernels.h", "nd_solver.h", "nd_gradient.h",
                                           "nd_train_loss.h"};

/* ---- text helpers ---- */

void emit_put_cstring(FILE *f, const char *s)
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

void emit_put_reals(FILE *f, const double *v, int n, bool f32)
{
    for (int i = 0; i < n; i++) {
        fputs(i ? (i % 4 ? ", " : ",\n    ") : "    ", f);
        cc_print_real(f, v[i], f32);
    }
    fputc('\n', f);
}

int emit_model_index(const Emit *e, const IrModel *m)
{
    for (int i = 0; i < e->c->program->n_models; i++)
        if (e->c->program->models[i] == m)
            return i;
    return -1;
}

/* ---- the prelude ---- */

/* Elementwise helpers: the forms of compiler/ir/ir_eval.c and of the JIT. exp and
 * tanh are compiler/llvm/llvm_math.c's inline algorithms written in C (the JIT's
 * results, not libm's; derivation in docs/codegen.md): the same operations in
 * the same order, llvm.fma as fma() (exactness needed), llvm.fmuladd as
 * NODEC_MULADD (fused only where the C compiler has a fast fma, as the JIT
 * fuses where the target has one). */
static const char helpers_head[] =
    "/* ---- elementwise helpers: the forms of nodec's JIT (compiler/llvm/llvm_emit.c,\n"
    " * llvm_math.c) and interpreter (ir_eval.c) ---- */\n"
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
    "static inline double nodec_min(double x, double y) { return x != x || x <= y ? x : y; }\n"
    "static inline double nodec_max(double x, double y) { return x != x || x >= y ? x : y; }\n"
    "static inline double nodec_square(double x) { return x * x; }\n"
    "static inline double nodec_cube(double x) { return x * x * x; }\n\n";

/* The helpers of a float program: libm's float exp and tanh (the JIT's
 * double algorithms above are exact to a double's last bits, which a float
 * has not; the f32 program agrees with the f64 one to float rounding, not
 * bit for bit with any other build), the rest the same forms in float. */
static const char helpers_f32[] =
    "/* ---- elementwise helpers in float (option precision = f32): the forms of\n"
    " * nodec's interpreter (ir_eval.c), exp and tanh from libm ---- */\n"
    "static inline float nodec_exp(float x) { return expf(x); }\n"
    "static inline float nodec_tanh(float x) { return tanhf(x); }\n"
    "static inline float nodec_sigmoid(float x)\n"
    "{\n"
    "    float e = nodec_exp(-fabsf(x)), d = 1.0f + e;\n"
    "    return x >= 0 ? 1.0f / d : e / d;\n"
    "}\n"
    "static inline float nodec_softplus(float x) { return fmaxf(x, 0.0f) + log1pf(nodec_exp(-fabsf(x))); }\n"
    "static inline float nodec_relu(float x) { return x > 0 ? x : 0.0f; }\n"
    "static inline float nodec_sign(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : 0.0f; }\n"
    "static inline float nodec_step(float x) { return x > 0 ? 1.0f : 0.0f; }\n"
    "static inline float nodec_min(float x, float y) { return x != x || x <= y ? x : y; }\n"
    "static inline float nodec_max(float x, float y) { return x != x || x >= y ? x : y; }\n"
    "static inline float nodec_square(float x) { return x * x; }\n"
    "static inline float nodec_cube(float x) { return x * x * x; }\n\n";

/* P(r) = sum_{n=2..13} r^(n-2) / n! by Estrin's scheme, its coefficients
 * computed as llvm_math.c computes them. */
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
    if (e->f32)
        fputs(" * Single precision (option precision = f32): nd_real is float throughout.\n", f);
    if (e->trained)
        fputs(" * The parameters are the trained ones: emit-c ran the file's train directives\n"
              " * (through nodec's JIT, as `nodec run` does) before writing them.\n", f);
    fputs(" * Build: cc -std=c99 -O2 out.c -lm (a C++ compiler works too); -DNODEC_NO_MAIN\n"
          " * leaves out main (a library); -DNODEC_USE_CBLAS sends large matrix products to\n"
          " * cblas (link a BLAS). The calling convention is in nodec's docs/emit-c.md. */\n",
          f);
}

enum { N_RUNTIME = sizeof runtime_files / sizeof runtime_files[0] };

/* Before the runtime's nd_real.h: which real the whole program computes in. */
static void put_precision(FILE *f, bool f32)
{
    if (f32)
        fputs("#ifndef ND_REAL_F32\n#define ND_REAL_F32 1 /* nd_real is float: option precision "
              "= f32 */\n#endif\n", f);
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
          "#ifdef NODEC_USE_CBLAS\n#include <cblas.h>\n#endif\n"
          "#define NODEC_NO_LAPACK 1 /* runtime/solve/nd_lapack.c: its plain C LU, no LAPACK */\n",
          f);
    put_precision(f, e->f32);
    fputs("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", f);
    for (int i = 0; i < N_RUNTIME; i++)
        if (emit_c_put_runtime(f, runtime_files, N_RUNTIME, i, &e->c->diag))
            return -1;
    if (e->f32) {
        fputs(helpers_f32, f);
    } else {
        fputs(helpers_head, f);
        write_expm1_poly(f);
        fputs(helpers_tail, f);
    }
    emit_solver_support(f);
    return 0;
}

static int write_header_prelude(Emit *e, const char *guard)
{
    FILE *h = e->hdr;
    int n = sizeof public_files / sizeof public_files[0];
    write_banner(h, e, "API");
    fprintf(h, "#ifndef %s\n#define %s\n\n#include <stddef.h>\n#include <stdint.h>\n", guard,
            guard);
    put_precision(h, e->f32);
    fputc('\n', h);
    fputs("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", h);
    for (int i = 0; i < n; i++)
        if (emit_c_put_runtime(h, public_files, n, i, &e->c->diag))
            return -1;
    return 0;
}

/* ---- models ---- */

void emit_declare_kernel(FILE *h, const char *name, bool rhs)
{
    if (rhs)
        fprintf(h, "void %s(nd_real t, const nd_real *y, const nd_real *p, nd_real *dydt, int64_t B,\n"
                   "    nd_real *work);\n", name);
    else
        fprintf(h, "void %s(nd_real t, const nd_real *y, const nd_real *p, const nd_real *a,\n"
                   "    const nd_real *d, nd_real *out0, nd_real *out1, int64_t B, nd_real *work);\n",
                name);
}

void emit_work_size(Emit *e, const char *name, const CcWork *w)
{
    fprintf(e->out, "size_t %s_work_size(int64_t B)\n{\n    return %zu + %zu * (size_t)B;\n}\n\n",
            name, w->work_fixed, w->work_per_sample);
    fprintf(e->hdr, "size_t %s_work_size(int64_t B);\n", name);
}

int emit_model_kernels(Emit *e, IrModel *m, const char *prefix, CcWork *work)
{
    if (cc_emit_model_kernels(e->out, e->c->arena, m, prefix, e->f32, work, &e->c->diag))
        return -1;
    const char *kinds[3] = {"rhs", "vjp", "jac"};
    for (int k = 0; k < (cc_model_has_jacobian(m) ? 3 : 2); k++) {
        char name[300];
        snprintf(name, sizeof name, "%s_%s", prefix, kinds[k]);
        emit_declare_kernel(e->hdr, name, k == 0);
    }
    return 0;
}

static void write_params(Emit *e, const IrModel *m, const double *p)
{
    FILE *f = e->out;
    fprintf(f, "void %s_params(nd_real *p)\n{\n", m->name);
    if (m->np == 0) {
        fputs("    (void)p;\n}\n\n", f);
    } else {
        fprintf(f, "    static const nd_real p0[%d] = {\n", m->np);
        emit_put_reals(f, p, m->np, e->f32);
        fputs("    };\n    memcpy(p, p0, sizeof p0);\n}\n\n", f);
    }
    fprintf(e->hdr, "void %s_params(nd_real *p); /* p[%s_NP]: as nodec run %s */\n", m->name,
            m->name, e->trained ? "has them after the file's trains" : "initialises them");
}

static void write_columns(Emit *e, const IrModel *m)
{
    const char **names = sema_state_columns(e->c->arena, m);
    fprintf(e->out, "const char *const *%s_state_names(void)\n{\n", m->name);
    fprintf(e->out, "    static const char *const names[%d] = {", m->ny);
    for (int i = 0; i < m->ny; i++) {
        fputs(i ? ", " : "", e->out);
        emit_put_cstring(e->out, names[i]);
    }
    fputs("};\n    return names;\n}\n\n", e->out);
    fprintf(e->hdr, "const char *const *%s_state_names(void); /* %s_NY column names */\n", m->name,
            m->name);
}

/* The model's events (event_kernels.h): their kernels, and the table k->events points at. */
static int write_events(Emit *e, IrModel *m, CcWork *w)
{
    const KernelSet *set = kernel_sets_model(&e->c->sets, m);
    if (!set || m->n_events == 0)
        return 0;
    for (int k = 0; k < set->events.n; k++) {
        char name[300];
        snprintf(name, sizeof name, "%s_%s", m->name, set->events.specs[k].name);
        if (cc_emit_kernel(e->out, m, name, false, e->f32, &set->events.specs[k], w, &e->c->diag))
            return -1;
        emit_declare_kernel(e->hdr, name, false);
    }
    fprintf(e->out, "static const NdEvent %s_event_table[%d] = {\n", m->name, m->n_events);
    for (int k = 0; k < m->n_events; k++) {
        const IrEvent *ev = &m->events[k];
        fprintf(e->out, "    {%s_event%d_cond, ", m->name, k);
        if (ev->terminate)
            fputs("NULL", e->out);
        else
            fprintf(e->out, "%s_event%d_reset", m->name, k);
        fprintf(e->out, ", %d, %d, NULL, NULL},\n", ev->direction, ev->terminate);
    }
    fputs("};\n\n", e->out);
    return 0;
}

static void write_kernel_table(Emit *e, const IrModel *m, const CcWork *w)
{
    fprintf(e->out,
            "void %s_kernels(NdKernels *k)\n{\n    memset(k, 0, sizeof *k);\n"
            "    k->ny = %d;\n    k->np = %d;\n    k->work_fixed = %zu;\n"
            "    k->work_per_sample = %zu;\n    k->rhs = %s_rhs;\n    k->vjp = %s_vjp;\n"
            "    k->jac = %s%s;\n    k->autonomous = %d;\n    k->second_order = %d;\n",
            m->name, m->ny, m->np, w->work_fixed, w->work_per_sample, m->name, m->name,
            cc_model_has_jacobian(m) ? m->name : "NULL", cc_model_has_jacobian(m) ? "_jac" : "",
            ir_model_autonomous(m), ir_model_second_order(m));
    if (m->n_events > 0)
        fprintf(e->out, "    k->n_events = %d;\n    k->events = %s_event_table;\n", m->n_events,
                m->name);
    fputs("}\n\n", e->out);
    fprintf(e->hdr, "void %s_kernels(NdKernels *k); /* the table nd_solver_create takes */\n",
            m->name);
}

static int write_model(Emit *e, int i)
{
    IrModel *m = e->c->program->models[i];
    if (m->diffusion) { /* its table would lack the diffusion kernels: a silent g = 0 */
        diag_error(&e->c->diag, m->loc, "emit-c does not handle stochastic models ('%s' has "
                   "noise, dW) yet: nodec run solves it", m->name);
        return -1;
    }
    fprintf(e->out, "/* ---- model %s: %d state elements per sample, %d parameters ---- */\n\n",
            m->name, m->ny, m->np);
    fprintf(e->hdr, "\n/* model %s */\n#define %s_NY %d\n#define %s_NP %d\n", m->name, m->name,
            m->ny, m->name, m->np);
    if (emit_model_kernels(e, m, m->name, &e->work[i]) || write_events(e, m, &e->work[i]))
        return -1;
    emit_work_size(e, m->name, &e->work[i]);
    write_params(e, m, e->params[i]);
    write_columns(e, m);
    write_kernel_table(e, m, &e->work[i]);
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
    for (int i = 0; i < prog->n_models; i++)
        if (write_model(e, i))
            return -1;
    for (int i = 0, t = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_TRAIN && emit_train(e, &prog->dirs[i], t++))
            return -1;
    fputs("#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n", e->out);
    fprintf(e->hdr, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
    return emit_main(e);
}

static int close_file(FILE *f, const char *path, Diag *diag)
{
    if (f && fclose(f) != 0) {
        diag_plain(diag, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int emit_c_check(Compilation *c)
{
    const SemaProgram *prog = c->program;
    for (int i = 0; i < prog->n_dirs; i++) {
        const SemaDirective *d = &prog->dirs[i];
        if ((d->kind == SEMA_SOLVE && emit_check_solve(c, d)) ||
            (d->kind == SEMA_TRAIN && emit_check_train(c, d)))
            return 1;
    }
    return 0;
}

/* The parameters to write: the caller's, else as nodec run initialises them
 * (for every solve too: without trains nothing changes them). */
static void set_params(Emit *e, const EmitCParams *given)
{
    const SemaProgram *prog = e->c->program;
    int n = prog->n_models, n_solves = 0;
    for (int i = 0; i < prog->n_dirs; i++)
        n_solves += prog->dirs[i].kind == SEMA_SOLVE;
    e->at_solve = arena_alloc(e->c->arena, sizeof *e->at_solve * (size_t)(n_solves + 1));
    e->params = arena_alloc(e->c->arena, sizeof *e->params * (size_t)(n + 1));
    if (given) {
        memcpy(e->params, given->final, sizeof *e->params * (size_t)n);
        memcpy(e->at_solve, given->at_solve, sizeof *e->at_solve * (size_t)n_solves);
        e->trained = given->trained;
        return;
    }
    for (int i = 0; i < n; i++)
        e->params[i] =
            arena_alloc(e->c->arena, sizeof(double) * (size_t)(prog->models[i]->np + 1));
    params_init(prog, e->params);
    for (int i = 0, k = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_SOLVE)
            e->at_solve[k++] = e->params[emit_model_index(e, prog->dirs[i].solve.model)];
}

int emit_c_program(Compilation *c, const char *c_path)
{
    return emit_c_program_with(c, c_path, NULL);
}

int emit_c_program_with(Compilation *c, const char *c_path, const EmitCParams *params)
{
    if (emit_c_check(c))
        return 1;
    char *h_path = header_path(c_path);
    Emit e = {.c = c, .f32 = c->program->f32};
    set_params(&e, params);
    e.work = arena_alloc(c->arena, sizeof *e.work * (size_t)(c->program->n_models + 1));
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
