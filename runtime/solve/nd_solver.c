/* The initial value problem solver behind `solve`, `simulate` and training:
 * explicit Runge–Kutta engines driven by the Butcher tableaus of nd_tableaus.c,
 * the methods' facts (name, order, class, engine) read from nd_methods.def,
 * stepping a whole batch of B samples through the kernel table. This file holds
 * the object (create / set / get / free), the argument checks and the
 * fixed-step engine; nd_adaptive.c holds the error-controlled one. All
 * workspace is allocated in nd_solver_create (GSL rk4_alloc); nd_solve and the
 * steps allocate nothing. Failures return a status and keep a message; the
 * runtime never prints and never exits. */
#include "nd_solver.h"

#include "nd_real.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_adaptive.h"
#include "nd_events.h"
#include "nd_tableaus.h"
/* The implicit engine is compiled in wherever its header is read (ND_BDF_H):
 * nodec and the programs `nodec emit-c` writes both embed it; the latter with
 * NODEC_NO_LAPACK, so nd_lapack.c's plain C LU stands in for LAPACK. */
#include "nd_bdf.h"
#include "nd_onestep.h"
#include "nd_verlet.h"
#include "nd_sde.h"

/* An interval needing more steps than this is a mistake (h far too small for
 * the times given), and the count must stay well inside a long. */
#define ND_MAX_STEPS_PER_INTERVAL 1e15

/* Step counts within this relative distance of an integer round down, so that
 * h = 0.1 on [0, 1] takes 10 steps, not 10 and a sliver of 1e-16. In single
 * precision h itself is off by up to 6e-8 relative (0.7 is 0.699999988), so
 * the slack is a hundred of those. */
#ifdef ND_REAL_F32
#define ND_STEP_COUNT_SLACK 1e-5
#else
#define ND_STEP_COUNT_SLACK 1e-9
#endif


/* ---- methods and status codes ---- */

/* What steps a method (nd_methods.def's engine column). */
typedef enum NdEngine {
    ND_ENGINE_RK, ND_ENGINE_BDF, ND_ENGINE_ONESTEP, ND_ENGINE_VERLET, ND_ENGINE_SDE
} NdEngine;

typedef struct NdMethodInfo {
    const char *name;
    int order;
    NdMethodClass cls;
    unsigned keys;
    int grad;
    NdEngine engine;
} NdMethodInfo;

/* In NdMethod order, without array designators (emit-c compiles this file as
 * C++ too, which has none). */
static const NdMethodInfo method_info[ND_METHOD_COUNT] = {
#define ND_METHOD(name, ID, order, cls, keys, grad, engine)                           \
    {#name, order, ND_CLASS_##cls, ND_KEYS_##keys, grad, ND_ENGINE_##engine},
#include "nd_methods.def"
};

static const char *const solver_key_names[ND_SOLVER_KEY_COUNT] = {
#define ND_SOLVER_KEY(name, ID, type, def) #name,
#include "nd_methods.def"
};

/* The row of m, or NULL for a value outside NdMethod. */
static const NdMethodInfo *method_row(NdMethod m)
{
    return (int)m >= 0 && m < ND_METHOD_COUNT ? &method_info[m] : NULL;
}

int nd_method_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int m = 0; m < ND_METHOD_COUNT; m++)
        if (strcmp(method_info[m].name, name) == 0)
            return m;
    if (strcmp(name, "em") == 0) /* the usual abbreviation */
        return ND_EULER_MARUYAMA;
    return -1;
}

int nd_method_is_sde(NdMethod m)
{
    return method_row(m) && method_row(m)->engine == ND_ENGINE_SDE;
}

int nd_solver_set_brownian(NdSolver *s, uint64_t seed)
{
    if (!s)
        return ND_ERR_ARG;
    if (!nd_method_is_sde(s->method))
        return nd_solver_fail(s, ND_ERR_ARG, "%s draws no Brownian path (euler_maruyama and "
                              "milstein do)", nd_method_name(s->method));
    s->brownian_seed = seed;
    return ND_OK;
}

const char *nd_method_name(NdMethod m)
{
    return method_row(m) ? method_row(m)->name : "unknown";
}

int nd_method_order(NdMethod m)
{
    return method_row(m) ? method_row(m)->order : 0;
}

NdMethodClass nd_method_class(NdMethod m)
{
    return method_row(m) ? method_row(m)->cls : ND_CLASS_FIXED;
}

int nd_method_is_adaptive(NdMethod m)
{
    return method_row(m) && method_row(m)->cls != ND_CLASS_FIXED;
}

int nd_method_is_implicit(NdMethod m)
{
    return method_row(m) && method_row(m)->cls == ND_CLASS_IMPLICIT;
}

unsigned nd_method_keys(NdMethod m)
{
    return method_row(m) ? method_row(m)->keys : 0;
}

int nd_method_has_gradient(NdMethod m)
{
    return method_row(m) && method_row(m)->grad;
}

const char *nd_solver_key_name(NdSolverKey key)
{
    return (int)key >= 0 && key < ND_SOLVER_KEY_COUNT ? solver_key_names[key] : "unknown";
}

/* m's engine; ND_ENGINE_RK for no method (it then has no tableau either). */
static NdEngine method_engine(NdMethod m)
{
    return method_row(m) ? method_row(m)->engine : ND_ENGINE_RK;
}

const char *nd_status_name(int status)
{
    switch (status) {
    case ND_OK: return "ok";
    case ND_ERR_ARG: return "invalid argument";
    case ND_ERR_NONFINITE: return "non-finite state";
    case ND_ERR_MEMORY: return "out of memory";
    case ND_ERR_UNSUPPORTED: return "unsupported method";
    case ND_ERR_STEP_UNDERFLOW: return "step size underflow";
    case ND_ERR_MAX_STEPS: return "too many steps";
    case ND_ERR_CONVERGENCE: return "newton iteration failed";
    case ND_ERR_MAX_EVENTS: return "too many events";
    default: return "unknown status";
    }
}

int nd_solver_fail(NdSolver *s, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof s->message, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- create / set / get / free ---- */

/* State-sized vectors a method needs: its stages and ytmp; adaptive methods
 * add the dense output stages, y, y_new and the dense output's coefficient
 * vectors. The implicit engine keeps its own (nd_bdf_attach). */
static size_t solver_vectors(const NdTableau *tab, NdMethod method)
{
    if (method_engine(method) == ND_ENGINE_VERLET)
        return 2; /* the acceleration's K[0], and ytmp */
    if (!tab)
        return 1; /* unused; keeps the block non-empty */
    if (tab->embedded_order > 0)
        return (size_t)tab->dense_stages + 3 + (size_t)nd_dense_count(tab);
    return (size_t)tab->stages + 1;
}

/* Doubles needed for the state vectors and the kernel scratch, or 0 when the
 * count would overflow a size_t (an absurd B). */
static size_t solver_block_size(const NdKernels *k, size_t vectors, int64_t B, size_t *n_out)
{
    const size_t limit = SIZE_MAX / sizeof(nd_real) / 4;
    size_t ny = (size_t)k->ny, nb = (size_t)B;
    if (nb > limit / ny / vectors || k->work_fixed > limit || k->ns < 0 ||
        (size_t)k->ns > limit / vectors - nb * ny)
        return 0;
    if (k->work_per_sample && nb > limit / k->work_per_sample)
        return 0;
    *n_out = nd_kernels_state_size(k, B);
    return *n_out * vectors + nd_kernels_work_size(k, B);
}

static void solver_carve(NdSolver *s)
{
    const NdTableau *tab = s->tab;
    if (method_engine(s->method) == ND_ENGINE_VERLET) {
        s->K[0] = s->block;
        s->ytmp = s->block + s->n;
        s->work = s->block + 2 * s->n;
        return;
    }
    if (!tab) { /* implicit: only the kernel scratch lives here */
        s->work = s->block;
        return;
    }
    int adaptive = tab->embedded_order > 0;
    int vectors = adaptive ? tab->dense_stages : tab->stages;
    nd_real *p = s->block;
    for (int i = 0; i < vectors; i++, p += s->n)
        s->K[i] = p;
    s->ytmp = p;
    p += s->n;
    if (adaptive) {
        s->y = p;
        s->ynew = p + s->n;
        p += 2 * s->n;
        for (int i = 0; i < nd_dense_count(tab); i++, p += s->n)
            s->dense[i] = p;
    }
    s->work = p;
}

/* The rows the engines combine stages with, as their nonzero terms. */
static void solver_combos(NdSolver *s)
{
    const NdTableau *tab = s->tab;
    if (!tab)
        return;
    int rows = tab->embedded_order > 0 ? tab->dense_stages : tab->stages;
    for (int i = 0; i < rows; i++)
        nd_combo_build(&s->row[i], tab->a[i], i);
    nd_combo_build(&s->b, tab->b, tab->stages);
    nd_combo_build(&s->e, tab->e, tab->stages);
    nd_combo_build(&s->e3, tab->e3, tab->stages);
    nd_dense_setup(s);
}

static void solver_defaults(NdSolver *s)
{
    s->rtol = ND_DEFAULT_RTOL;
    s->atol = ND_DEFAULT_ATOL;
    s->max_steps = ND_DEFAULT_MAX_STEPS;
    for (int i = 0; s->tab && i < ND_RK_MAX_STAGES; i++)
        if (s->tab->e3[i] != 0.0)
            s->use_e3 = 1;
}

/* The object and its block for n-element vectors; k is the model's table (or
 * a stand-in naming one sample of n elements, for a system). */
static NdSolver *solver_alloc(const NdKernels *k, NdMethod method, int64_t B, size_t n,
                              size_t total)
{
    NdSolver *s = (NdSolver *)calloc(1, sizeof *s); /* casts: emit-c compiles this as C++ too */
    if (!s)
        return NULL;
    s->block = (nd_real *)calloc(total, sizeof(nd_real));
    if (!s->block) {
        free(s);
        return NULL;
    }
    s->block_doubles = total;
    s->k = *k;
    s->method = method;
    s->tab = nd_tableau_get(method);
    s->B = B;
    s->n = n;
    s->norm_parts = 1;
    s->norm[0].off = 0; /* field by field: C++ has no compound literals */
    s->norm[0].len = n - (size_t)k->ns;
    s->norm[0].group = (size_t)k->ny;
    s->out_row = n;
    s->sample = -1;
    s->norm[0].tail = (size_t)k->ns;
    s->norm[0].tail_weight = 1.0;
    solver_carve(s);
    solver_combos(s);
    solver_defaults(s);
    return s;
}

/* A method the solver can run: a tableau, or an implicit engine when built.
 * rodas4 and kvaerno5 solve models only: a system (no kernel table) has no
 * Jacobian for them. */
static int method_known(NdMethod method, int system)
{
#ifdef ND_BDF_H
    if (method_engine(method) == ND_ENGINE_BDF)
        return 1;
#endif
#ifdef ND_ONESTEP_H
    if (method_engine(method) == ND_ENGINE_ONESTEP)
        return !system;
#endif
    if (method_engine(method) == ND_ENGINE_VERLET)
        return !system;
    return nd_tableau_get(method) != NULL;
}

/* An implicit engine's workspace: nblocks Jacobian blocks of m (nd_bdf.h,
 * nd_onestep.h). A model without its Jacobian kernel gets a solver that
 * says so. */
static NdSolver *attach_implicit(NdSolver *s, size_t nblocks, int m)
{
    if (!s || !nd_method_is_implicit(s->method))
        return s;
    int st = ND_OK;
#ifdef ND_BDF_H
    if (method_engine(s->method) == ND_ENGINE_BDF)
        st = nd_bdf_attach(s, nblocks, m);
#endif
#ifdef ND_ONESTEP_H
    if (method_engine(s->method) == ND_ENGINE_ONESTEP)
        st = nd_onestep_attach(s, nblocks, m);
#endif
    if (st) {
        nd_solver_free(s);
        return NULL;
    }
    if (nblocks && !s->k.jac)
        nd_solver_fail(s, ND_ERR_UNSUPPORTED, "%s needs the model's Jacobian: compile the "
                       "model with its jac kernel", nd_method_name(s->method));

    return s;
}

NdSolver *nd_solver_create(const NdKernels *k, NdMethod method, int64_t B)
{
    const NdTableau *tab = nd_tableau_get(method);
    if (!k || !k->rhs || k->ny < 1 || k->np < 0 || B < 1 || !method_known(method, 0))
        return NULL;
    size_t n = 0, total = solver_block_size(k, solver_vectors(tab, method), B, &n);
    if (total == 0)
        return NULL;
    NdSolver *s = attach_implicit(solver_alloc(k, method, B, n, total), (size_t)B, k->ny);
    if (s && k->n_events > 0 && nd_events_attach(s)) {
        nd_solver_free(s);
        return NULL;
    }
    return s;
}

NdSolver *nd_solver_create_like(const NdSolver *tmpl, const NdKernels *k, int64_t B)
{
    NdSolver *s = tmpl ? nd_solver_create(k, tmpl->method, B) : NULL;
    if (!s)
        return NULL;
    s->h = tmpl->h;
    s->rtol = tmpl->rtol;
    s->atol = tmpl->atol;
    s->h0 = tmpl->h0;
    s->max_steps = tmpl->max_steps;
    s->namer = tmpl->namer;
    s->namer_ctx = tmpl->namer_ctx;
    s->brownian_seed = tmpl->brownian_seed;
    if (nd_solver_set_step_control(s, tmpl->step_control)) {
        nd_solver_free(s);
        return NULL;
    }
    return s;
}

NdSolver *nd_solver_create_system(NdMethod method, size_t n, NdSystemFn F, void *ctx)
{
    const NdTableau *tab = nd_tableau_get(method);
    if (!method_known(method, 1) || !F || n < 1 || n > (size_t)INT32_MAX)
        return NULL;
    NdKernels k;
    memset(&k, 0, sizeof k);
    k.ny = (int)n;
    size_t nn = 0, total = solver_block_size(&k, solver_vectors(tab, method), 1, &nn);
    NdSolver *s = total ? solver_alloc(&k, method, 1, n, total) : NULL;
    if (s) {
        s->sys = F;
        s->sys_ctx = ctx;
    }
    return attach_implicit(s, 0, 1);
}

void nd_solver_free(NdSolver *s)
{
    if (!s)
        return;
#ifdef ND_BDF_H
    nd_bdf_detach(s);
#endif
#ifdef ND_ONESTEP_H
    nd_onestep_detach(s);
#endif
    nd_solver_free(s->one);
    nd_events_detach(s);
    free(s->block);
    free(s);
}

int nd_solver_set_step(NdSolver *s, nd_real h)
{
    if (!s)
        return ND_ERR_ARG;
    if (nd_method_is_adaptive(s->method))
        return nd_solver_fail(s, ND_ERR_ARG,
                              "%s is adaptive: it takes rtol, atol and h0, not a fixed step h",
                              nd_method_name(s->method));
    if (!(h > 0) || !isfinite(h))
        return nd_solver_fail(s, ND_ERR_ARG, "step h must be positive and finite, got %g", h);
    s->h = h;
    return ND_OK;
}

/* The adaptive settings refuse a fixed-step method rather than ignore it. */
static int need_adaptive(NdSolver *s, const char *what)
{
    if (!s)
        return ND_ERR_ARG;
    if (nd_method_is_adaptive(s->method))
        return ND_OK;
    return nd_solver_fail(s, ND_ERR_ARG, "%s is a fixed-step method: it takes h, not %s",
                          nd_method_name(s->method), what);
}

int nd_solver_set_tolerances(NdSolver *s, nd_real rtol, nd_real atol)
{
    int st = need_adaptive(s, "rtol and atol");
    if (st)
        return st;
    /* atol > 0 keeps the error weights finite where y = 0 (as dopri5.f asks) */
    if (!(rtol >= 0) || !isfinite(rtol) || !(atol > 0) || !isfinite(atol))
        return nd_solver_fail(s, ND_ERR_ARG,
                              "tolerances need rtol >= 0 and atol > 0, finite; got rtol = %g, "
                              "atol = %g",
                              rtol, atol);
    s->rtol = rtol < ND_MIN_RTOL ? (nd_real)ND_MIN_RTOL : rtol;
    s->atol = atol;
    return ND_OK;
}

int nd_solver_set_initial_step(NdSolver *s, nd_real h0)
{
    int st = need_adaptive(s, "h0");
    if (st)
        return st;
    if (!(h0 >= 0) || !isfinite(h0))
        return nd_solver_fail(s, ND_ERR_ARG,
                              "initial step h0 must be positive (or 0 for automatic), got %g", h0);
    s->h0 = h0;
    return ND_OK;
}

int nd_solver_set_max_steps(NdSolver *s, long max_steps)
{
    if (!s)
        return ND_ERR_ARG;
    if (max_steps < 1)
        return nd_solver_fail(s, ND_ERR_ARG, "max_steps must be at least 1, got %ld", max_steps);
    s->max_steps = max_steps;
    return ND_OK;
}

/* The counters and the last message (SUNDIALS' Get functions): 0 or a fixed
 * text for a NULL solver, one line each. */
const char *nd_solver_get_message(const NdSolver *s) { return s ? s->message : "no solver"; }
long nd_solver_get_num_steps(const NdSolver *s) { return s ? s->num_steps : 0; }
long nd_solver_get_num_rejected(const NdSolver *s) { return s ? s->num_rejected : 0; }
nd_real nd_solver_get_next_step(const NdSolver *s) { return s ? s->h_next : 0; }
long nd_solver_get_num_rhs_evals(const NdSolver *s) { return s ? s->num_rhs_evals : 0; }

/* ---- argument checks ---- */

static int check_times(NdSolver *s, const nd_real *ts, int nt)
{
    if (nt < 2)
        return nd_solver_fail(s, ND_ERR_ARG, "need at least 2 output times, got %d", nt);
    for (int j = 0; j < nt; j++)
        if (!isfinite(ts[j]))
            return nd_solver_fail(s, ND_ERR_ARG, "output time %d is %g", j, ts[j]);
    nd_real dir = ts[1] > ts[0] ? 1.0 : -1.0;
    for (int j = 0; j + 1 < nt; j++)
        if (!((ts[j + 1] - ts[j]) * dir > 0))
            return nd_solver_fail(s, ND_ERR_ARG,
                                  "output times must be strictly increasing or strictly "
                                  "decreasing: t[%d] = %g, t[%d] = %g",
                                  j, ts[j], j + 1, ts[j + 1]);
    return ND_OK;
}

long nd_first_nonfinite(const nd_real *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return (long)i;
    return -1;
}

const char *nd_nonfinite_word(nd_real v)
{
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

int nd_solver_set_element_namer(NdSolver *s, NdElementNamer name, void *ctx)
{
    if (!s)
        return ND_ERR_ARG;
    s->namer = name;
    s->namer_ctx = ctx;
    return ND_OK;
}

/* The sample's solver (s->one) whose settings nd_solve copies from s at each
 * solve, so the setters need not know of it. A batch of one is its own. */
int nd_solver_set_step_control(NdSolver *s, NdStepControl control)
{
    if (!s)
        return ND_ERR_ARG;
    if (control != ND_STEP_SHARED && control != ND_STEP_PER_SAMPLE)
        return nd_solver_fail(s, ND_ERR_ARG, "step control must be ND_STEP_SHARED or "
                              "ND_STEP_PER_SAMPLE, got %d", (int)control);
    if (control == ND_STEP_PER_SAMPLE && !nd_method_is_adaptive(s->method))
        return nd_solver_fail(s, ND_ERR_ARG, "%s is a fixed-step method: every sample takes "
                              "the same steps of h, so per-sample step control would change "
                              "nothing", nd_method_name(s->method));
    if (control == ND_STEP_PER_SAMPLE && s->sys)
        return nd_solver_fail(s, ND_ERR_ARG, "a system solver has no samples to step apart");
    if (control == ND_STEP_PER_SAMPLE && s->k.n_events > 0 && s->B > 1)
        return nd_solver_fail(s, ND_ERR_ARG, "a batch with events cannot be stepped apart per "
                              "sample (not in this version)");
    if (control == ND_STEP_PER_SAMPLE && s->k.ns > 0 && s->B > 1)
        return nd_solver_fail(s, ND_ERR_ARG, "a batch with a shared block cannot be stepped "
                              "apart per sample (each sample would need its own copy of it)");
    if (control == ND_STEP_PER_SAMPLE && s->B > 1 && !s->one) {
        s->one = nd_solver_create(&s->k, s->method, 1);
        if (!s->one)
            return nd_solver_fail(s, ND_ERR_MEMORY, "out of memory for the solver of one sample");
    }
    if (control == ND_STEP_SHARED) {
        nd_solver_free(s->one);
        s->one = NULL;
    }
    s->step_control = control;
    return ND_OK;
}

NdStepControl nd_solver_get_step_control(const NdSolver *s)
{
    return s ? s->step_control : ND_STEP_SHARED;
}

const char *nd_solver_element(const NdSolver *s, long flat, char *buf, size_t len)
{
    if (s->sys && s->namer) { /* a system's namer names its flat elements, samples and all */
        s->namer(s->namer_ctx, flat, buf, len);
        return buf;
    }
    long ny = s->k.ny > 0 ? s->k.ny : 1, i = flat % ny, b = flat / ny;
    char name[64];
    long per_sample = (long)s->n - s->k.ns;
    if (flat >= per_sample && flat < (long)s->n) { /* the shared block: no sample */
        i = ny + flat - per_sample;
        if (s->namer)
            s->namer(s->namer_ctx, i, name, sizeof name);
        else
            snprintf(name, sizeof name, "state element %ld", i);
        snprintf(buf, len, "%s (shared by the batch)", name);
        return buf;
    }
    if (s->namer && flat < (long)s->n)
        s->namer(s->namer_ctx, i, name, sizeof name);
    else
        snprintf(name, sizeof name, "state element %ld", i);
    if (s->sample >= 0) /* the solver of one sample: its message's prefix names it */
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%s of sample %ld", name, b);
    return buf;
}

static int check_initial(NdSolver *s, const nd_real *y0)
{
    long i = nd_first_nonfinite(y0, s->n);
    if (i < 0)
        return ND_OK;
    char at[ND_ELEMENT_TEXT];
    return nd_solver_fail(s, ND_ERR_NONFINITE, "the initial value of %s is %s",
                          nd_solver_element(s, i, at, sizeof at), nd_nonfinite_word(y0[i]));
}

static int check_args(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
                      const nd_real *yout)
{
    if (!y0 || !ts || !yout)
        return nd_solver_fail(s, ND_ERR_ARG, "y0, times and output must not be NULL");
    if (!p && s->k.np > 0)
        return nd_solver_fail(s, ND_ERR_ARG, "the model has %d parameters but p is NULL",
                              s->k.np);
    if (!nd_method_is_adaptive(s->method) && !(s->h > 0))
        return nd_solver_fail(s, ND_ERR_ARG, "fixed-step solver needs h (nd_solver_set_step)");
    int st = check_times(s, ts, nt);
    if (!st && !nd_method_is_adaptive(s->method))
        st = nd_fixed_check_steps(s, ts, nt);
    return st ? st : check_initial(s, y0);
}

/* ---- the explicit Runge–Kutta engine ---- */

/* Rows of up to this many terms run an unrolled loop (every row of the
 * 5th-order pairs); longer ones (dop853's late stages) the plain one. */
enum { ND_COMBO_UNROLL = 8 };

/* The terms' vectors and coefficients as locals the compiler keeps in
 * registers, padded to the unrolled count (the padding is never read). */
static void combo_load(const NdCombo *c, nd_real *const *K, const nd_real **k, nd_real *a)
{
    for (int q = 0; q < ND_COMBO_UNROLL; q++) {
        int used = q < c->m;
        k[q] = K[used ? c->idx[q] : 0];
        a[q] = used ? c->coef[q] : 0.0;
    }
}

static nd_real combo_sum_at(const NdCombo *c, nd_real *const *K, size_t e)
{
    nd_real acc = c->coef[0] * K[c->idx[0]][e];
    for (int q = 1; q < c->m; q++)
        acc += c->coef[q] * K[c->idx[q]][e];
    return acc;
}

/* The sum of the first m terms at element e, added left to right. */
#define ND_T(q) (a[q] * k[q][e])
#define ND_S1 ND_T(0)
#define ND_S2 (ND_S1 + ND_T(1))
#define ND_S3 (ND_S2 + ND_T(2))
#define ND_S4 (ND_S3 + ND_T(3))
#define ND_S5 (ND_S4 + ND_T(4))
#define ND_S6 (ND_S5 + ND_T(5))
#define ND_S7 (ND_S6 + ND_T(6))
#define ND_S8 (ND_S7 + ND_T(7))
#define ND_COMBO_LOOPS(STORE)                                          \
    switch (c->m) {                                                    \
    case 1: for (size_t e = 0; e < n; e++) STORE(ND_S1); break;        \
    case 2: for (size_t e = 0; e < n; e++) STORE(ND_S2); break;        \
    case 3: for (size_t e = 0; e < n; e++) STORE(ND_S3); break;        \
    case 4: for (size_t e = 0; e < n; e++) STORE(ND_S4); break;        \
    case 5: for (size_t e = 0; e < n; e++) STORE(ND_S5); break;        \
    case 6: for (size_t e = 0; e < n; e++) STORE(ND_S6); break;        \
    case 7: for (size_t e = 0; e < n; e++) STORE(ND_S7); break;        \
    case 8: for (size_t e = 0; e < n; e++) STORE(ND_S8); break;        \
    default: for (size_t e = 0; e < n; e++) STORE(combo_sum_at(c, K, e)); \
    }
#define ND_STORE_AXPY(S) out[e] = y[e] + h * (S)
#define ND_STORE_SCALE(S) out[e] = h * (S)

void nd_combo_axpy(const NdCombo *c, nd_real *const *K, const nd_real *y, nd_real h, nd_real *out,
                   size_t n)
{
    const nd_real *k[ND_COMBO_UNROLL];
    nd_real a[ND_COMBO_UNROLL];
    if (c->m == 0) { /* y + h * 0 */
        if (out != y)
            memcpy(out, y, n * sizeof *out);
        return;
    }
    combo_load(c, K, k, a);
    ND_COMBO_LOOPS(ND_STORE_AXPY)
}

void nd_combo_scale(const NdCombo *c, nd_real *const *K, nd_real h, nd_real *out, size_t n)
{
    const nd_real *k[ND_COMBO_UNROLL];
    nd_real a[ND_COMBO_UNROLL];
    if (c->m == 0) {
        memset(out, 0, n * sizeof *out);
        return;
    }
    combo_load(c, K, k, a);
    ND_COMBO_LOOPS(ND_STORE_SCALE)
}
#undef ND_T
#undef ND_S1
#undef ND_S2
#undef ND_S3
#undef ND_S4
#undef ND_S5
#undef ND_S6
#undef ND_S7
#undef ND_S8
#undef ND_COMBO_LOOPS
#undef ND_STORE_AXPY
#undef ND_STORE_SCALE

void nd_rk_stage_arg(NdSolver *s, int i, nd_real h, const nd_real *y, nd_real *out)
{
    nd_combo_axpy(&s->row[i], s->K, y, h, out, s->n);
}

/* One step from (t, y) to t_new = t + h, in place: every stage evaluates the
 * right-hand side over the whole batch, then y += h * sum_i b[i] k_i. */
void nd_rk_step(NdSolver *s, const nd_real *p, nd_real t, nd_real t_new, nd_real *y)
{
    const NdTableau *tab = s->tab;
    nd_real h = t_new - t;
    for (int i = 0; i < tab->stages; i++) {
        const nd_real *arg = y;
        if (i > 0) {
            nd_rk_stage_arg(s, i, h, y, s->ytmp);
            arg = s->ytmp;
        }
        nd_solver_rhs(s, p, nd_stage_time(tab, i, t, h, t_new), arg, s->K[i]);
    }
    if (s->on_step)
        s->on_step(s->hook_ctx, s, t, h, t_new, y);
    nd_combo_axpy(&s->b, s->K, y, h, y, s->n);
    s->num_steps++;
}

static int check_step(NdSolver *s, const nd_real *y, nd_real t, nd_real t_prev)
{
    long i = nd_first_nonfinite(y, s->n);
    if (i < 0)
        return ND_OK;
    char at[ND_ELEMENT_TEXT];
    return nd_solver_fail(s, ND_ERR_NONFINITE, "%s became %s at t = %.10g (last finite at t = %.10g)",
                          nd_solver_element(s, i, at, sizeof at), nd_nonfinite_word(y[i]), t,
                          t_prev);
}

int nd_fixed_check_step(NdSolver *s, const nd_real *y, nd_real t, nd_real t_prev)
{
    return check_step(s, y, t, t_prev);
}

/* Steps to cover |t1 - t0| with steps of at most h (up to the slack). */
long nd_fixed_steps(nd_real span, nd_real h)
{
    nd_real r = span / h;
    nd_real n = ceil(r - ND_STEP_COUNT_SLACK * r);
    return n < 1 ? 1 : (long)n;
}

/* Every interval of ts within max_steps steps of h, before the first step:
 * h = 1e-12 over [0, 1] would otherwise run for hours. */
int nd_fixed_check_steps(NdSolver *s, const nd_real *ts, int nt)
{
    for (int j = 0; j + 1 < nt; j++) {
        nd_real r = fabs(ts[j + 1] - ts[j]) / s->h, n = ceil(r - ND_STEP_COUNT_SLACK * r);
        if (n > (nd_real)s->max_steps)
            return nd_solver_fail(s, ND_ERR_MAX_STEPS,
                                  "%s would take %.3g steps of h = %g from t = %.10g to t = "
                                  "%.10g, more than max_steps = %ld (raise h or max_steps)",
                                  nd_method_name(s->method), n, s->h, ts[j], ts[j + 1],
                                  s->max_steps);
    }
    return ND_OK;
}

/* Integrates y in place from t0 to t1 with fixed steps of h, the last one
 * shortened to land exactly on t1. Step times are t0 + k h (times the
 * direction), never accumulated, so rounding cannot drift or add a step. */
static int fixed_solve_interval(NdSolver *s, const nd_real *p, nd_real t0, nd_real t1, nd_real *y)
{
    nd_real span = fabs(t1 - t0), hd = t1 > t0 ? s->h : -s->h;
    if (span / s->h > ND_MAX_STEPS_PER_INTERVAL)
        return nd_solver_fail(s, ND_ERR_ARG,
                              "step h = %g is too small for the interval [%g, %g]", s->h, t0, t1);
    long n = nd_fixed_steps(span, s->h);
    nd_real t = t0;
    for (long k = 1; k <= n; k++) {
        nd_real t_next = k == n ? t1 : t0 + (nd_real)k * hd;
        if (method_engine(s->method) == ND_ENGINE_VERLET)
            nd_verlet_step(s, p, t, t_next, y);
        else if (method_engine(s->method) == ND_ENGINE_SDE)
            nd_sde_step(s, p, t, t_next, y);
        else
            nd_rk_step(s, p, t, t_next, y);
        int st = check_step(s, y, t_next, t);
        if (st)
            return st;
        t = t_next;
    }
    return ND_OK;
}

/* ---- per-sample step control ---- */

/* Each sample's solve by s->one over its slice of y0, writing sample b's
 * column of yout (rows B * ny apart); the counters add up. */
static int per_sample_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts,
                            int nt, nd_real *yout)
{
    NdSolver *one = s->one;
    size_t ny = (size_t)s->k.ny;
    one->h = s->h, one->rtol = s->rtol, one->atol = s->atol, one->h0 = s->h0;
    one->max_steps = s->max_steps;
    one->namer = s->namer, one->namer_ctx = s->namer_ctx;
    one->out_row = s->n;
    for (int64_t b = 0; b < s->B; b++) {
        one->sample = (long)b;
        int st = nd_solve(one, p, y0 + (size_t)b * ny, ts, nt, yout + (size_t)b * ny);
        s->num_steps += one->num_steps;
        s->num_rejected += one->num_rejected;
        s->num_rhs_evals += one->num_rhs_evals;
        if (st)
            return nd_solver_fail(s, st, "sample %ld: %s", (long)b, one->message);
    }
    return ND_OK;
}

/* On failure, the rows of yout before the failing interval hold the solution;
 * the row after it holds the state that stopped the solve. */
int nd_solve(NdSolver *s, const nd_real *p, const nd_real *y0, const nd_real *ts, int nt,
             nd_real *yout)
{
    if (!s)
        return ND_ERR_ARG;
    s->message[0] = '\0';
    s->num_steps = 0;
    s->num_rejected = 0;
    s->num_rhs_evals = 0;
    s->h_next = 0;
    s->fsal_ok = 0;
    int st = check_args(s, p, y0, ts, nt, yout);
    if (!st && method_engine(s->method) == ND_ENGINE_VERLET)
        st = nd_verlet_check(s);
    if (!st && method_engine(s->method) == ND_ENGINE_SDE)
        st = nd_sde_begin(s, ts, nt);
    /* the explicit adaptive engine begins them itself; the implicit ones refuse */
    if (!st && s->ev && (!nd_method_is_adaptive(s->method) || nd_method_is_implicit(s->method)))
        st = nd_events_begin(s, p, ts[0], y0);
    if (st)
        return st;
    /* (an implicit method without its Jacobian fails below, as in one batch) */
    if (s->one && (s->k.jac || !nd_method_is_implicit(s->method)))
        return per_sample_solve(s, p, y0, ts, nt, yout);
#ifdef ND_BDF_H
    if (method_engine(s->method) == ND_ENGINE_BDF)
        return nd_bdf_solve(s, p, y0, ts, nt, yout);
#endif
#ifdef ND_ONESTEP_H
    if (method_engine(s->method) == ND_ENGINE_ONESTEP)
        return nd_onestep_solve(s, p, y0, ts, nt, yout);
#endif
    if (nd_method_is_adaptive(s->method))
        return nd_adaptive_solve(s, p, y0, ts, nt, yout);
    size_t n = s->n;
    memmove(yout, y0, n * sizeof *yout);
    for (int j = 0; j + 1 < nt; j++) {
        nd_real *y = yout + (size_t)(j + 1) * n;
        memcpy(y, y - n, n * sizeof *y);
        st = s->ev ? nd_events_fixed_interval(s, p, ts[j], ts[j + 1], y)
                   : fixed_solve_interval(s, p, ts[j], ts[j + 1], y);
        if (st)
            return st;
    }
    return ND_OK;
}
