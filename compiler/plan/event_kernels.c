/* Event kernel specs (event_kernels.h): the IR sema lowered for each `when`
 * block, as PlanKernelSpec outputs that either back end compiles. */
#include "event_kernels.h"

#include <stdio.h>

#include "diff.h"

static PlanKernelSpec cond_spec(Arena *a, const IrEvent *ev, int e)
{
    PlanOutput *o = arena_alloc(a, sizeof *o);
    *o = (PlanOutput){.node = ev->cond, .dst = 0, .offset = 0, .stride = 1, .batch_sum = 0};
    char *name = arena_alloc(a, 32);
    snprintf(name, 32, "event%d_cond", e);
    return (PlanKernelSpec){.name = name, .n_outputs = 1, .outputs = o};
}

/* Every state after the event: its new value, or itself. */
static PlanKernelSpec reset_spec(Arena *a, IrBuilder *b, const IrModel *m, const IrEvent *ev,
                                 int e)
{
    PlanOutput *o = arena_alloc(a, sizeof *o * (size_t)(m->n_states + 1));
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        IrNode *value = ev->reset[i] ? ev->reset[i] : ir_state(b, i, v->offset, v->shape);
        o[i] = (PlanOutput){.node = value, .dst = 0, .offset = v->offset, .stride = m->ny};
    }
    char *name = arena_alloc(a, 32);
    snprintf(name, 32, "event%d_reset", e);
    return (PlanKernelSpec){.name = name, .n_outputs = m->n_states, .outputs = o};
}

PlanKernelSpec plan_vjp_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *name,
                             int n_roots, IrNode **roots, IrNode **cot, const IrNode **blocked)
{
    int n = m->n_states + m->n_params;
    IrNode **wrt = arena_alloc(a, sizeof(IrNode *) * (size_t)(n ? n : 1));
    IrNode **grads = arena_alloc(a, sizeof(IrNode *) * (size_t)(n ? n : 1));
    for (int i = 0; i < m->n_states; i++)
        wrt[i] = ir_model_state(b, m, i);
    for (int j = 0; j < m->n_params; j++)
        wrt[m->n_states + j] = ir_param(b, j, m->params[j].offset, m->params[j].shape);
    const IrNode *stop = diff_vjp_blocked(b, n_roots, roots, cot, n, wrt, grads);
    if (!*blocked)
        *blocked = stop;
    PlanOutput *o = arena_alloc(a, sizeof *o * (size_t)(n ? n : 1));
    for (int i = 0; i < m->n_states; i++)
        o[i] = (PlanOutput){.node = grads[i], .dst = 0, .offset = m->states[i].offset,
                            .stride = m->ny};
    for (int j = 0; j < m->n_params; j++)
        o[m->n_states + j] = (PlanOutput){.node = grads[m->n_states + j], .dst = 1,
                                          .offset = m->params[j].offset, .stride = 0,
                                          .batch_sum = 1};
    return (PlanKernelSpec){.name = name, .n_outputs = n, .outputs = o};
}

/* An event's gradient kernel, named "event<e>_<what>". */
static PlanKernelSpec vjp_spec(Arena *a, IrBuilder *b, const IrModel *m, const char *what,
                               int e, int n_roots, IrNode **roots, IrNode **cot,
                               const IrNode **blocked)
{
    char *name = arena_alloc(a, 32);
    snprintf(name, 32, "event%d_%s", e, what);
    return plan_vjp_spec(a, b, m, name, n_roots, roots, cot, blocked);
}

/* dg/dy and dg/dp. */
static PlanKernelSpec cond_grad_spec(Arena *a, IrBuilder *b, const IrModel *m,
                                     const IrEvent *ev, int e, const IrNode **blocked)
{
    IrNode **roots = arena_alloc(a, sizeof(IrNode *));
    IrNode **cot = arena_alloc(a, sizeof(IrNode *));
    roots[0] = ev->cond;
    cot[0] = ir_scalar(b, 1);
    return vjp_spec(a, b, m, "cond_grad", e, 1, roots, cot, blocked);
}

/* a^T dr/dy and a^T dr/dp, a the adjoint leaves: an unassigned state's r is
 * itself, so its a passes through. */
static PlanKernelSpec reset_vjp_spec(Arena *a, IrBuilder *b, const IrModel *m,
                                     const IrEvent *ev, int e, const IrNode **blocked)
{
    int ns = m->n_states;
    IrNode **roots = arena_alloc(a, sizeof(IrNode *) * (size_t)(ns ? ns : 1));
    IrNode **cot = arena_alloc(a, sizeof(IrNode *) * (size_t)(ns ? ns : 1));
    for (int i = 0; i < ns; i++) {
        roots[i] = ev->reset[i] ? ev->reset[i] : ir_model_state(b, m, i);
        cot[i] = ir_model_adjoint(b, m, i);
    }
    return vjp_spec(a, b, m, "reset_vjp", e, ns, roots, cot, blocked);
}

void event_kernels_build(Arena *a, IrBuilder *b, const IrModel *m, bool grads,
                         EventKernels *out)
{
    out->n = 0;
    out->grads = grads;
    out->blocked = NULL;
    out->specs = arena_alloc(a, sizeof *out->specs * (size_t)(4 * m->n_events + 1));
    for (int e = 0; e < m->n_events; e++) {
        const IrEvent *ev = &m->events[e];
        out->specs[out->n++] = cond_spec(a, ev, e);
        if (!ev->terminate)
            out->specs[out->n++] = reset_spec(a, b, m, ev, e);
        if (!grads)
            continue;
        out->specs[out->n++] = cond_grad_spec(a, b, m, ev, e, &out->blocked);
        if (!ev->terminate)
            out->specs[out->n++] = reset_vjp_spec(a, b, m, ev, e, &out->blocked);
    }
}

void event_kernels_assign(const IrModel *m, bool grads, NdKernelFn *const compiled,
                          NdEvent *out)
{
    int k = 0;
    for (int e = 0; e < m->n_events; e++) {
        const IrEvent *ev = &m->events[e];
        out[e].cond = compiled[k++];
        out[e].reset = ev->terminate ? NULL : compiled[k++];
        out[e].cond_grad = grads ? compiled[k++] : NULL;
        out[e].reset_vjp = grads && !ev->terminate ? compiled[k++] : NULL;
        out[e].direction = ev->direction;
        out[e].terminate = ev->terminate;
    }
}
