/* Kernel requests and their derivation (kernel_sets.h): the stage between
 * checking and the back ends. Which kernels a directive needs is decided here
 * from the checked program alone, so `nodec run` and `nodec emit-c` translate
 * IR that already exists and neither back end calls compiler/diff. */
#include "kernel_sets.h"

#include <stdio.h>
#include <string.h>

#include "diff.h"
#include "nd_solver.h"

bool kernel_sets_c_has_jacobian(const IrModel *m)
{
    return m->ny <= KERNEL_SETS_C_JACOBIAN_MAX_NY;
}

/* Implicit solvers step with the model's Jacobian. */
static bool needs_jacobian(const SemaSolver *solver)
{
    return solver->name && nd_method_is_implicit(solver->method);
}

/* The set of model m's solves, made on first use. */
static KernelSet *model_set(KernelSets *ks, IrModel *m)
{
    KernelSet *s = (KernelSet *)kernel_sets_model(ks, m);
    if (s)
        return s;
    s = &ks->sets[ks->n++];
    *s = (KernelSet){.model = m};
    return s;
}

/* A solve or a simulate: the JIT compiles its model's rhs, and jac for an
 * implicit solver. */
static void plan_integration(KernelSets *ks, const SemaSolve *s)
{
    KernelSet *set = model_set(ks, s->integrated ? s->integrated : s->model);
    set->targets |= TARGET_JIT;
    set->jac |= needs_jacobian(&s->solver);
}

/* A train: its augmented model's rhs and vjp, jac for an implicit solver (the
 * JIT otherwise fuses rhs and vjp for the adjoint's backward stages), and the
 * directive's loss kernels. (The checker refuses a model without parameters.) */
static void plan_train(KernelSets *ks, const SemaDirective *d, int targets)
{
    const SemaTrain *tr = &d->train;
    KernelSet *set = &ks->sets[ks->n++];
    bool jac = needs_jacobian(&tr->solver);
    *set = (KernelSet){.model = tr->augmented, .train = d, .targets = targets, .vjp = true,
                       .jac = jac,
                       .rhs_vjp = !jac && (!tr->gradient || strcmp(tr->gradient, "adjoint") == 0)};
}

/* A train's or an evaluate's encoder: its own model's rhs (and vjp for a train's
 * gradient) with its jump and mask kernels; for the JIT only (emit-c refuses an
 * encoder). */
static void plan_encoder(KernelSets *ks, const SemaDirective *d)
{
    if (!d->train.encoder)
        return;
    KernelSet *set = &ks->sets[ks->n++];
    *set = (KernelSet){.model = d->train.encoder->model, .encoder_of = d,
                       .targets = TARGET_JIT, .vjp = !d->train.evaluate};
}

/* emit-c writes every model, and `nodec adjoint` prints every model. */
static void plan_every_model(KernelSets *ks, const SemaProgram *prog, int targets)
{
    for (int i = 0; i < prog->n_models; i++) {
        KernelSet *set = model_set(ks, prog->models[i]);
        set->targets |= targets;
        if (targets & TARGET_SYSTEM)
            set->vjp = set->init_adjoint = true;
    }
}

static bool has_train(const SemaProgram *prog)
{
    for (int i = 0; i < prog->n_dirs; i++)
        if (prog->dirs[i].kind == SEMA_TRAIN)
            return true;
    return false;
}

/* An evaluate: its model's rhs (jac for an implicit solver) and the values of
 * its loss, initial states and metrics; no gradient. JIT only: the program
 * emit-c writes does solves (docs/emit-c.md). */
static void plan_evaluate(KernelSets *ks, const SemaDirective *d)
{
    KernelSet *set = &ks->sets[ks->n++];
    *set = (KernelSet){.model = d->train.augmented, .train = d, .targets = TARGET_JIT,
                       .jac = needs_jacobian(&d->train.solver)};
}

KernelSets kernel_sets_plan(Arena *arena, const SemaProgram *prog, int targets)
{
    KernelSets ks = {0};
    /* emit-c runs through the JIT only a training file's data and trains (so
     * that it writes trained parameters); it never runs a solve. */
    bool jit_solves = (targets & TARGET_JIT) && !(targets & TARGET_C);
    if ((targets & TARGET_C) && !has_train(prog))
        targets &= ~TARGET_JIT;
    size_t cap = (size_t)prog->n_models + 2 * (size_t)prog->n_dirs + 1; /* + encoders */
    ks.sets = arena_alloc(arena, sizeof *ks.sets * cap);
    if (targets & (TARGET_C | TARGET_SYSTEM))
        plan_every_model(&ks, prog, targets & (TARGET_C | TARGET_SYSTEM));
    for (int i = 0; i < prog->n_dirs; i++) {
        const SemaDirective *d = &prog->dirs[i];
        if (jit_solves && d->kind == SEMA_SOLVE)
            plan_integration(&ks, &d->solve);
        else if ((targets & TARGET_JIT) && d->kind == SEMA_DATA &&
                 d->data->kind == SEMA_DATA_SIMULATE)
            plan_integration(&ks, &d->data->sim);
        else if (d->kind == SEMA_TRAIN && (targets & (TARGET_JIT | TARGET_C)))
            plan_train(&ks, d, targets & (TARGET_JIT | TARGET_C));
        else if (d->kind == SEMA_EVALUATE && (targets & TARGET_JIT))
            plan_evaluate(&ks, d);
        if ((d->kind == SEMA_TRAIN || d->kind == SEMA_EVALUATE) && (targets & TARGET_JIT))
            plan_encoder(&ks, d);
    }
    return ks;
}

/* The derived systems a set's kernels read, whichever back end translates it. */
static bool wants_adjoint(const KernelSet *s)
{
    return s->vjp || s->rhs_vjp || (s->targets & TARGET_C);
}

static bool wants_jacobian(const KernelSet *s)
{
    return s->jac || ((s->targets & TARGET_C) && kernel_sets_c_has_jacobian(s->model));
}

/* An implicit solver's Jacobian is one [ny, ny] value: past the limit of a
 * value it is refused before its ny rows are derived. */
static bool jacobian_fits(const KernelSet *s, Diag *diag)
{
    int64_t ny = s->model->ny, n = ny * ny;
    if (!s->jac || n <= IR_MAX_ELEMENTS)
        return true;
    diag_error(diag, s->train ? s->train->loc : s->model->loc,
               "an implicit solver needs the Jacobian of model '%s', which has %lld elements "
               "(%lld x %lld), more than the limit of %d (use an explicit solver)",
               s->model->name, (long long)n, (long long)ny, (long long)ny, IR_MAX_ELEMENTS);
    return false;
}

/* A train's gradient, and the adjoint system `nodec adjoint` prints, must not
 * pass through floor or argmax (diff.h): their zero derivative would be a
 * silently wrong gradient. (emit-c's vjp kernels and an implicit solver's
 * Jacobian take it as zero, which is what it is almost everywhere.) */
static bool gradient_usable(const KernelSet *s, IrBuilder *b, Diag *diag)
{
    const IrModel *m = s->model;
    const IrNode *blocked = m->adj_blocked;
    if (s->encoder_of && s->vjp) {
        if (!blocked)
            blocked = s->enc.blocked;
        if (blocked)
            diff_report_blocked(diag, b, blocked, "the gradient of this train's encoder",
                                s->encoder_of->loc, "the train");
        return !blocked;
    }
    if (s->train) {
        if (!blocked)
            blocked = s->loss.blocked;
        if (!blocked)
            blocked = s->events.blocked;
        if (!blocked)
            blocked = s->sde_blocked;
        if (blocked)
            diff_report_blocked(diag, b, blocked, "the gradient of this train", s->train->loc,
                                "the train");
        return !blocked;
    }
    if (!(s->targets & TARGET_SYSTEM) || !blocked)
        return true;
    char what[300];
    snprintf(what, sizeof what, "the adjoint system of model '%s'", m->name);
    diff_report_blocked(diag, b, blocked, what, m->loc, "the model");
    return false;
}

/* One state-shaped output per state, laid out like y: roots[i], or zeros for
 * a state without noise. */
static PlanKernelSpec sde_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                               IrNode **roots)
{
    PlanOutput *o = arena_alloc(a, sizeof *o * (size_t)(m->n_states + 1));
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *n = roots[i] ? roots[i] : ir_fill(b, v->shape, 0);
        o[i] = (PlanOutput){.node = n, .dst = 0, .offset = v->offset, .stride = m->ny};
    }
    return (PlanKernelSpec){.name = name, .n_outputs = m->n_states, .outputs = o};
}

/* a^T d(roots)/dy and a^T d(roots)/dp, a the adjoint leaves (roots one per
 * state, NULL for a state without noise): backprop's reverse of the noise
 * terms g dW and Milstein's 1/2 g g' (dW^2 - h) (nd_backprop_sde.c). */
static PlanKernelSpec sde_vjp_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                                   IrNode **roots, const IrNode **blocked)
{
    int ns = m->n_states, n = 0;
    IrNode **r = arena_alloc(a, sizeof(IrNode *) * (size_t)(ns ? ns : 1));
    IrNode **cot = arena_alloc(a, sizeof(IrNode *) * (size_t)(ns ? ns : 1));
    for (int i = 0; i < ns; i++)
        if (roots[i]) {
            r[n] = roots[i];
            cot[n++] = ir_model_adjoint(b, m, i);
        }
    return plan_vjp_spec(a, b, m, name, n, r, cot, blocked);
}

/* An SDE model's diffusion kernels (KernelSet.sde), and a train's their vjps. */
static void sde_kernels(KernelSet *s, Arena *a, IrBuilder *b)
{
    IrModel *m = s->model;
    s->n_sde = 0;
    if (!m->diffusion)
        return;
    diff_model_diffusion_dx(b, m);
    s->sde[0] = sde_spec(a, b, m, "diffusion", m->diffusion);
    s->sde[1] = sde_spec(a, b, m, "diffusion_dx", m->diffusion_dx);
    s->n_sde = 2;
    if (!s->train || s->train->train.evaluate)
        return;
    s->sde[2] = sde_vjp_spec(a, b, m, "diffusion_vjp", m->diffusion, &s->sde_blocked);
    s->sde[3] = sde_vjp_spec(a, b, m, "diffusion_dx_vjp", m->diffusion_dx, &s->sde_blocked);
    s->n_sde = 4;
}

int kernel_sets_derive(KernelSets *ks, Arena *arena, IrBuilder *b, Diag *diag)
{
    for (int i = 0; i < ks->n; i++) {
        KernelSet *s = &ks->sets[i];
        if (!jacobian_fits(s, diag))
            return -1;
        if (wants_adjoint(s))
            diff_model_adjoint(b, s->model);
        if (wants_jacobian(s))
            diff_model_jacobian(b, s->model);
        if (s->init_adjoint)
            diff_model_init_adjoint(b, s->model);
        if (s->train && train_kernels_build(arena, b, diag, s->train, &s->loss))
            return -1;
        /* a train's with the kernels of gradients through the event times (sema
         * refuses the trains of models with events that these do not cover) */
        event_kernels_build(arena, b, s->model, s->train && !s->train->train.evaluate,
                            &s->events);
        sde_kernels(s, arena, b);
        if (s->encoder_of)
            encoder_kernels_build(arena, b, s->encoder_of, s->vjp, &s->enc);
        if (!gradient_usable(s, b, diag))
            return -1;
    }
    return 0;
}

const KernelSet *kernel_sets_model(const KernelSets *ks, const IrModel *m)
{
    for (int i = 0; i < ks->n; i++)
        if (ks->sets[i].model == m && !ks->sets[i].train)
            return &ks->sets[i];
    return NULL;
}

const KernelSet *kernel_sets_train(const KernelSets *ks, const SemaDirective *d)
{
    for (int i = 0; i < ks->n; i++)
        if (ks->sets[i].train == d)
            return &ks->sets[i];
    return NULL;
}

const KernelSet *kernel_sets_encoder(const KernelSets *ks, const SemaDirective *d)
{
    for (int i = 0; i < ks->n; i++)
        if (ks->sets[i].encoder_of == d)
            return &ks->sets[i];
    return NULL;
}

/* ---- --dump=grad ---- */

/* "dx/dt" for a state's rhs; "init W0 via W" for an initial value's term. */
static const char *derivative_label(Arena *a, const char *name, const char *via)
{
    size_t len = strlen(name) + strlen(via) + 16;
    char *label = arena_alloc(a, len);
    if (*via)
        snprintf(label, len, "init %s via %s", name, via);
    else
        snprintf(label, len, "d%s/dt", name);
    return label;
}

/* A name for a kernel output: the state or parameter whose slot it fills. */
static const char *output_label(Arena *a, const IrModel *m, const char *kernel,
                                const PlanOutput *o, int k)
{
    const char *var = NULL;
    for (int i = 0; !var && o->dst != 1 && i < m->n_states; i++)
        if (m->states[i].offset == o->offset && m->states[i].shared == o->shared &&
            (o->shared || o->stride == m->ny))
            var = m->states[i].name;
    for (int j = 0; !var && o->dst == 1 && (o->batch_sum || o->add) && j < m->n_params; j++)
        if (m->params[j].offset == o->offset)
            var = m->params[j].name;
    /* a shared state's slot, and the shared rhs's term added to one */
    const char *how = o->add ? " (+ once)" : o->shared ? " (shared)" : "";
    size_t len = strlen(kernel) + (var ? strlen(var) : 12) + strlen(how) + 4;
    char *label = arena_alloc(a, len);
    if (var)
        snprintf(label, len, "%s %s%s", kernel, var, how);
    else if (o->dst == 0 && o->stride == 1 && k == 0)
        snprintf(label, len, "%s", kernel);
    else
        snprintf(label, len, "%s out%d", kernel, k);
    return label;
}

/* The roots of every kernel the set names, with labels, into arena arrays. */
static int collect_roots(Arena *a, const KernelSet *s, const char ***labels, IrNode ***roots)
{
    const IrModel *m = s->model;
    PlanKernelSpec *specs =
        arena_alloc(a, sizeof *specs *
                           (size_t)(3 + s->loss.n + s->events.n + s->n_sde + s->enc.n));
    int n_specs = 0, n = m->n_states * m->n_params + 1;
    specs[n_specs++] = plan_spec_rhs(a, m);
    if (wants_adjoint(s))
        specs[n_specs++] = plan_spec_vjp(a, m);
    if (wants_jacobian(s))
        specs[n_specs++] = plan_spec_jac(a, m);
    for (int k = 0; k < s->loss.n; k++)
        specs[n_specs++] = s->loss.specs[k];
    for (int k = 0; k < s->events.n; k++)
        specs[n_specs++] = s->events.specs[k];
    for (int k = 0; k < s->n_sde; k++)
        specs[n_specs++] = s->sde[k];
    for (int k = 0; k < s->enc.n; k++)
        specs[n_specs++] = s->enc.specs[k];
    for (int k = 0; k < n_specs; k++)
        n += specs[k].n_outputs;
    *labels = arena_alloc(a, sizeof **labels * (size_t)n);
    *roots = arena_alloc(a, sizeof **roots * (size_t)n);
    int c = 0;
    for (int k = 0; k < n_specs; k++)
        for (int o = 0; o < specs[k].n_outputs; o++) {
            const PlanOutput *out = &specs[k].outputs[o];
            (*labels)[c] = k == 0 ? derivative_label(a, m->states[o].name, "")
                                  : output_label(a, m, specs[k].name, out, o);
            (*roots)[c++] = out->node;
        }
    for (int j = 0; s->init_adjoint && j < m->n_params; j++)
        for (int i = 0; i < m->n_states; i++)
            if (m->adj_init[j * m->n_states + i]) {
                (*labels)[c] = derivative_label(a, m->params[j].name, m->states[i].name);
                (*roots)[c++] = m->adj_init[j * m->n_states + i];
            }
    return c;
}

static void dump_title(FILE *out, const KernelSet *s)
{
    static const char *const target_names[] = {"jit", "c", "adjoint"};
    fprintf(out, "kernels of %s",
            s->encoder_of                        ? "encoder"
            : !s->train                          ? "model"
            : s->train->kind == SEMA_EVALUATE    ? "evaluate"
                                                 : "train");
    if (s->train && s->train->loc.file)
        fprintf(out, " at %s:%d", s->train->loc.file->path, s->train->loc.line);
    fprintf(out, " %s:", s->model->name);
    fputs(" rhs", out);
    if (wants_adjoint(s))
        fputs(", vjp", out);
    if (s->rhs_vjp)
        fputs(", rhs_vjp", out);
    if (wants_jacobian(s))
        fputs(", jac", out);
    for (int k = 0; k < s->loss.n; k++)
        fprintf(out, ", %s", s->loss.specs[k].name);
    for (int k = 0; k < s->events.n; k++)
        fprintf(out, ", %s", s->events.specs[k].name);
    for (int k = 0; k < s->n_sde; k++)
        fprintf(out, ", %s", s->sde[k].name);
    for (int k = 0; k < s->enc.n; k++)
        fprintf(out, ", %s", s->enc.specs[k].name);
    fputs(" (for", out);
    for (int t = 0; t < 3; t++)
        if (s->targets & (1 << t))
            fprintf(out, " %s", target_names[t]);
    fputs(")", out);
    const char *sep = "; shared once:";
    for (int i = 0; i < s->model->n_states; i++)
        if (s->model->states[i].shared) {
            fprintf(out, "%s %s", sep, s->model->states[i].name);
            sep = ",";
        }
    fputs("\n", out);
}

void kernel_sets_dump(FILE *out, const KernelSets *ks)
{
    for (int i = 0; i < ks->n; i++) {
        Arena *scratch = arena_new();
        const char **labels;
        IrNode **roots;
        int n = collect_roots(scratch, &ks->sets[i], &labels, &roots);
        dump_title(out, &ks->sets[i]);
        ir_dump_roots(out, ks->sets[i].model, n, labels, roots);
        arena_free(scratch);
    }
}
