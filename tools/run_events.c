/* A solve's `events = "FILE.csv"` (docs/language.md "Events"): one row per event
 * the solver logged, in time order: `sample` (for a batch), `event` (the `when`
 * block's 0-based index in its model), `t`, then the visible state elements
 * just after the event, named as the solve's own columns. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nd_csv_write.h"
#include "run_internal.h"

static void write_header(FILE *f, bool batch, const IrModel *m, const char *const *names)
{
    fputs(batch ? "sample,event,t" : "event,t", f);
    for (int i = 0; i < m->n_states; i++)
        for (int k = 0; strncmp(m->states[i].name, "__", 2) != 0 &&
                        k < ir_shape_size(m->states[i].shape); k++) {
            fputc(',', f);
            nd_csv_field(f, names[m->states[i].offset + k]);
        }
    fputc('\n', f);
}

static void write_row(FILE *f, bool batch, const IrModel *m, int64_t b, int e, nd_real t,
                      const nd_real *y)
{
    if (batch)
        fprintf(f, "%lld,", (long long)b);
    fprintf(f, "%d,%.*g", e, ND_REAL_DIGITS, (double)t);
    for (int i = 0; i < m->n_states; i++)
        for (int k = 0; strncmp(m->states[i].name, "__", 2) != 0 &&
                        k < ir_shape_size(m->states[i].shape); k++)
            fprintf(f, ",%.*g", ND_REAL_DIGITS, (double)y[m->states[i].offset + k]);
    fputc('\n', f);
}

/* write_events' arguments, for run_write_file. */
typedef struct EventLog {
    const IrModel *m;
    const char *const *names;
    const NdSolver *solver;
    bool batch;
} EventLog;

static void write_events(FILE *f, const void *ctx)
{
    const EventLog *log = ctx;
    write_header(f, log->batch, log->m, log->names);
    for (long i = 0; i < nd_solver_get_num_events(log->solver); i++) {
        int64_t b;
        int e;
        nd_real t;
        const nd_real *after;
        nd_solver_get_event(log->solver, i, &b, &e, &t, NULL, &after);
        write_row(f, log->batch, log->m, b, e, t, after);
    }
}

int run_write_events(Runner *r, const SemaSolve *s, const NdSolver *solver, bool batch)
{
    EventLog log = {s->model, sema_state_columns(r->c->arena, s->model), solver, batch};
    if (run_write_file(s->events, write_events, &log) == 0)
        return 0;
    diag_error(&r->c->diag, s->events_loc, "cannot write '%s': %s", s->events, strerror(errno));
    return -1;
}
