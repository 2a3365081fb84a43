/* Train directives' kernel specs (train_kernels.h): the IR sema lowered
 * (loss, final_loss, init) and its derivatives from compiler/diff, described
 * as PlanKernelSpec outputs that either back end compiles. */
#include "train_kernels.h"

#include <stdio.h>

#include "diff.h"

static IrNode *state_leaf(IrBuilder *b, const IrModel *m, int i)
{
    return ir_model_state(b, m, i);
}

static IrNode *param_leaf(IrBuilder *b, const IrModel *m, int j)
{
    return ir_param(b, j, m->params[j].offset, m->params[j].shape);
}

/* Spec writing a scalar per sample into out0. */
static PlanKernelSpec value_spec(const char *name, IrNode *value, int nd, Arena *a)
{
    PlanOutput *o = arena_alloc(a, sizeof *o);
    *o = (PlanOutput){.node = value, .dst = 0, .offset = 0, .stride = 1, .batch_sum = 0};
    return (PlanKernelSpec){.name = name, .n_outputs = 1, .outputs = o, .nd = nd};
}

/* Spec of the gradient of the scalar `value` (per sample): d/dy into out0 with the
 * model's layout, d/dp summed over the batch into out1. */
static PlanKernelSpec grad_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                              IrNode *value, int nd, const IrNode **blocked)
{
    int n = m->n_states + m->n_params;
    IrNode **wrt = arena_alloc(a, sizeof(IrNode *) * (size_t)(n ? n : 1));
    IrNode **grads = arena_alloc(a, sizeof(IrNode *) * (size_t)(n ? n : 1));
    for (int i = 0; i < m->n_states; i++)
        wrt[i] = state_leaf(b, m, i);
    for (int j = 0; j < m->n_params; j++)
        wrt[m->n_states + j] = param_leaf(b, m, j);
    IrNode *one = ir_scalar(b, 1);
    const IrNode *stop = diff_vjp_blocked(b, 1, &value, &one, n, wrt, grads);
    if (!*blocked)
        *blocked = stop;
    PlanOutput *o = arena_alloc(a, sizeof *o * (size_t)(n ? n : 1));
    for (int i = 0; i < m->n_states; i++) { /* a shared state's: summed over the batch */
        bool sh = m->states[i].shared;
        o[i] = (PlanOutput){grads[i], 0, m->states[i].offset, m->ny, sh, sh, false};
    }
    for (int j = 0; j < m->n_params; j++)
        o[m->n_states + j] =
            (PlanOutput){grads[m->n_states + j], 1, m->params[j].offset, 0, 1, false, false};
    return (PlanKernelSpec){.name = name, .n_outputs = n, .outputs = o, .nd = nd};
}

/* The initial state of every state of the augmented model: the train block's
 * init, else the model's default; __cost starts at 0. NULL roots are reported. */
/* Spec of d(value)/d(columns) per sample into out0 [B*nh] (value a scalar per
 * sample, or with cot the initial states' a^T d(init)/d(columns)), the encoder's
 * columns being the DATA leaf cols. */
static PlanKernelSpec data_grad_spec(Arena *a, IrBuilder *b, const char *name, int n_roots,
                                     IrNode *const *roots, IrNode *const *cot, IrNode *cols,
                                     int nd, const IrNode **blocked)
{
    IrNode *grad;
    const IrNode *stop = diff_vjp_blocked(b, n_roots, roots, cot, 1, &cols, &grad);
    if (!*blocked)
        *blocked = stop;
    PlanOutput *o = arena_alloc(a, sizeof *o);
    *o = (PlanOutput){grad, 0, 0, ir_shape_size(cols->shape), 0, false, false};
    return (PlanKernelSpec){.name = name, .n_outputs = 1, .outputs = o, .nd = nd};
}

static int init_roots(IrBuilder *b, Diag *diag, const SemaDirective *d, IrNode **roots)
{
    const SemaTrain *tr = &d->train;
    const IrModel *m = tr->augmented;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *init = i < tr->model->n_states && tr->init ? tr->init[i] : NULL;
        if (!init && v->init) /* a drawn state's zeros are replaced by run_draw_states */
            init = v->init;
        if (!init && i == tr->cost_state)
            init = ir_scalar(b, 0);
        if (!init) {
            diag_error(diag, d->loc,
                       "state '%s' of model '%s' has no initial value for training: give one "
                       "with init = { %s = ... }",
                       v->name, m->name, v->name);
            return -1;
        }
        if (ir_shape_size(init->shape) != ir_shape_size(v->shape))
            init = ir_mul(b, init, ir_fill(b, v->shape, 1));
        roots[i] = init;
    }
    return 0;
}

static int init_specs(Arena *a, IrBuilder *b, Diag *diag, const SemaDirective *d, int nd,
                      bool with_vjp, TrainKernels *tk, int *n)
{
    PlanKernelSpec *specs = tk->specs;
    const IrNode **blocked = &tk->blocked;
    const IrModel *m = d->train.augmented;
    IrNode **roots = arena_alloc(a, sizeof(IrNode *) * (size_t)m->n_states);
    if (init_roots(b, diag, d, roots))
        return -1;
    PlanOutput *o = arena_alloc(a, sizeof *o * (size_t)m->n_states);
    IrNode **cot = arena_alloc(a, sizeof(IrNode *) * (size_t)m->n_states);
    for (int i = 0; i < m->n_states; i++) { /* a shared state's, once */
        bool sh = m->states[i].shared;
        o[i] = (PlanOutput){roots[i], 0, m->states[i].offset, m->ny, 0, sh, false};
        cot[i] = ir_model_adjoint(b, m, i);
    }
    specs[(*n)++] = (PlanKernelSpec){.name = "init", .n_outputs = m->n_states, .outputs = o,
                                   .nd = nd};
    if (!with_vjp)
        return 0;
    /* d(init)/dp^T a: how the initial states' gradients reach the parameters;
     * a shared state's initial value is one for the batch, so its term (the
     * shared adjoint at t0) counts once, not summed over the batch */
    int np = m->n_params, n_out = 0;
    IrNode **wrt = arena_alloc(a, sizeof(IrNode *) * (size_t)(np ? np : 1));
    IrNode **grads = arena_alloc(a, sizeof(IrNode *) * (size_t)(np ? np : 1));
    IrNode **once = arena_alloc(a, sizeof(IrNode *) * (size_t)(np ? np : 1));
    IrNode **c1 = arena_alloc(a, sizeof(IrNode *) * (size_t)m->n_states);
    IrNode **c2 = arena_alloc(a, sizeof(IrNode *) * (size_t)m->n_states);
    for (int i = 0; i < m->n_states; i++) {
        IrNode *zero = ir_fill(b, m->states[i].shape, 0);
        c1[i] = m->states[i].shared ? zero : cot[i];
        c2[i] = m->states[i].shared ? cot[i] : zero;
    }
    for (int j = 0; j < np; j++)
        wrt[j] = param_leaf(b, m, j);
    const IrNode *stop = diff_vjp_blocked(b, m->n_states, roots, c1, np, wrt, grads);
    if (!*blocked)
        *blocked = stop;
    if (m->ns > 0) {
        stop = diff_vjp_blocked(b, m->n_states, roots, c2, np, wrt, once);
        if (!*blocked)
            *blocked = stop;
    }
    PlanOutput *og = arena_alloc(a, sizeof *og * (size_t)(2 * np + 1));
    for (int j = 0; j < np; j++)
        og[n_out++] = (PlanOutput){grads[j], 1, m->params[j].offset, 0, 1, false, false};
    for (int j = 0; m->ns > 0 && j < np; j++)
        if (!ir_is_const_value(once[j], 0))
            og[n_out++] = (PlanOutput){once[j], 1, m->params[j].offset, 0, 0, false, true};
    specs[(*n)++] = (PlanKernelSpec){.name = "init_vjp", .n_outputs = n_out, .outputs = og,
                                   .nd = nd};
    const SemaEncoder *enc = d->train.encoder;
    if (enc) {
        IrNode *cols = ir_data(b, 0, enc->col, enc->model->states[0].shape);
        tk->slot_d[TRAIN_KD_INIT] = *n;
        specs[(*n)++] = data_grad_spec(a, b, "init_vjp_d", m->n_states, roots, cot, cols, nd,
                                       blocked);
    }
    return 0;
}

int train_kernels_build(Arena *a, IrBuilder *b, Diag *diag, const SemaDirective *d,
                        TrainKernels *out)
{
    const SemaTrain *tr = &d->train;
    IrModel *m = tr->augmented;
    int nd = tr->eps_col + tr->n_eps, n = 0; /* the data row, then sample's noise */
    for (int i = 0; i < TRAIN_K_COUNT; i++)
        out->slot[i] = -1;
    for (int i = 0; i < TRAIN_KD_COUNT; i++)
        out->slot_d[i] = -1;
    out->blocked = NULL;
    IrNode *one = ir_scalar(b, 1);
    IrNode *cols = tr->encoder ? ir_data(b, 0, tr->encoder->col,
                                         tr->encoder->model->states[0].shape)
                               : NULL;
    PlanKernelSpec *specs = out->specs;
    bool grads = !tr->evaluate;
    if (tr->loss) {
        out->slot[TRAIN_K_LOSS] = n;
        specs[n++] = value_spec("loss", tr->loss, nd, a);
        if (grads) {
            out->slot[TRAIN_K_LOSS_GRAD] = n;
            specs[n++] = grad_spec(a, b, m, "loss_grad", tr->loss, nd, &out->blocked);
            if (cols) {
                out->slot_d[TRAIN_KD_LOSS] = n;
                specs[n++] = data_grad_spec(a, b, "loss_grad_d", 1, &tr->loss, &one, cols, nd,
                                            &out->blocked);
            }
        }
    }
    if (tr->final_loss) {
        out->slot[TRAIN_K_FINAL] = n;
        specs[n++] = value_spec("final", tr->final_loss, nd, a);
        if (grads) {
            out->slot[TRAIN_K_FINAL_GRAD] = n;
            specs[n++] = grad_spec(a, b, m, "final_grad", tr->final_loss, nd, &out->blocked);
            if (cols) {
                out->slot_d[TRAIN_KD_FINAL] = n;
                specs[n++] = data_grad_spec(a, b, "final_grad_d", 1, &tr->final_loss, &one, cols,
                                            nd, &out->blocked);
            }
        }
    }
    out->slot[TRAIN_K_INIT] = n;
    if (grads)
        out->slot[TRAIN_K_INIT_VJP] = n + 1;
    if (init_specs(a, b, diag, d, nd, grads, out, &n))
        return -1;
    out->n_metrics = tr->n_metrics;
    for (int k = 0; k < tr->n_metrics; k++) {
        char *name = arena_alloc(a, 24);
        snprintf(name, 24, "metric%d", k);
        out->metric_slot[k] = n;
        specs[n++] = value_spec(name, tr->metrics[k], nd, a);
    }
    out->n = n;
    return 0;
}

void train_kernels_assign(const TrainKernels *tk, NdKernelFn *const compiled,
                          NdKernelFn out[TRAIN_K_COUNT], NdKernelFn metrics[SEMA_MAX_METRICS],
                          NdKernelFn data_grads[TRAIN_KD_COUNT])
{
    for (int i = 0; i < TRAIN_K_COUNT; i++)
        out[i] = tk->slot[i] >= 0 ? compiled[tk->slot[i]] : NULL;
    for (int i = 0; i < TRAIN_KD_COUNT; i++)
        data_grads[i] = tk->slot_d[i] >= 0 ? compiled[tk->slot_d[i]] : NULL;
    for (int k = 0; k < SEMA_MAX_METRICS; k++)
        metrics[k] = k < tk->n_metrics ? compiled[tk->metric_slot[k]] : NULL;
}
