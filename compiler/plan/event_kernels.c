/* Event kernel specs (event_kernels.h): the IR sema lowered for each `when`
 * block, as PlanKernelSpec outputs that either back end compiles. */
#include "event_kernels.h"

#include <stdio.h>

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

void event_kernels_build(Arena *a, IrBuilder *b, const IrModel *m, EventKernels *out)
{
    out->n = 0;
    out->specs = arena_alloc(a, sizeof *out->specs * (size_t)(2 * m->n_events + 1));
    for (int e = 0; e < m->n_events; e++) {
        const IrEvent *ev = &m->events[e];
        out->specs[out->n++] = cond_spec(a, ev, e);
        if (!ev->terminate)
            out->specs[out->n++] = reset_spec(a, b, m, ev, e);
    }
}

void event_kernels_assign(const IrModel *m, NdKernelFn *const compiled, NdEvent *out)
{
    int k = 0;
    for (int e = 0; e < m->n_events; e++) {
        const IrEvent *ev = &m->events[e];
        out[e].cond = compiled[k++];
        out[e].reset = ev->terminate ? NULL : compiled[k++];
        out[e].direction = ev->direction;
        out[e].terminate = ev->terminate;
    }
}
