/* What the verlet method asks of a model (docs/language.md, "Second-order
 * equations"): sema.c lowers `d2x/dt2 = a` to the pair dx/dt = v, dv/dt = a;
 * velocity Verlet steps such pairs only, and is symplectic (and second order
 * as written, evaluating a once per step) only when a reads no velocity. The
 * directives that name verlet are checked here, at the solver's name. */
#include <stdio.h>
#include <string.h>

#include "sema_internal.h"

const char *sema_velocity_name(Sema *S, const char *x)
{
    char buf[300];
    int n = snprintf(buf, sizeof buf, "d%s/dt", x);
    return n < (int)sizeof buf ? strtab_intern(S->names, buf, (size_t)n) : NULL;
}

/* Whether root reads any velocity state of m. */
static int reads_velocity(const IrModel *m, IrNode *root)
{
    Arena *scratch = arena_new();
    IrNode **order;
    int n = ir_topo_order(scratch, 1, &root, &order), found = 0;
    for (int i = 0; i < n && !found; i++)
        found = order[i]->op == IR_STATE && order[i]->slot < m->n_states &&
                m->states[order[i]->slot].velocity_of != 0;
    arena_free(scratch);
    return found;
}

static int has_velocity(const IrModel *m, int slot)
{
    for (int i = 0; i < m->n_states; i++)
        if (m->states[i].velocity_of == slot + 1)
            return 1;
    return 0;
}

void sema_verlet_solver(Sema *S, const IrModel *m, const SemaSolver *sv)
{
    if (!m || !sv->name || sv->method != ND_VERLET)
        return;
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        if (v->velocity_of || has_velocity(m, i))
            continue;
        diag_error(S->diag, sv->loc, "verlet integrates second-order equations only, and state "
                   "'%s' of model '%s' is first order: use rk4, or write its equation as "
                   "d2%s/dt2 = ...", v->name, m->name, v->name);
        diag_note(S->diag, v->loc, "'%s' is declared here", v->name);
        return;
    }
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        if (!v->velocity_of || !m->rhs[i] || !reads_velocity(m, m->rhs[i]))
            continue;
        const char *x = m->states[v->velocity_of - 1].name;
        diag_error(S->diag, sv->loc, "velocity Verlet is symplectic only for accelerations f(x, t), "
                   "and the equation for '%s' reads a velocity: use rk4 (or an adaptive solver "
                   "such as dopri5)", x);
        diag_note(S->diag, m->states[v->velocity_of - 1].loc, "'%s' is declared here", x);
        return;
    }
    if (m->n_events > 0) {
        diag_error(S->diag, sv->loc, "verlet does not locate events (not in this version), and "
                   "model '%s' has them: use rk4", m->name);
        diag_note(S->diag, m->events[0].loc, "the model's first event is here");
    }
}

/* A train whose solver has backprop only (verlet, the SDE methods:
 * docs/gradients.md, "Verlet and the SDE methods"): any other gradient is
 * refused at its key, or at the solver when the adjoint is the default. */
void sema_backprop_only(Sema *S, const SemaTrain *tr, SrcLoc where, bool checkpoint_ok,
                        const char *why)
{
    const SemaSolver *sv = &tr->solver;
    if (!tr->gradient || strcmp(tr->gradient, "backprop") == 0 ||
        (checkpoint_ok && strcmp(tr->gradient, "checkpoint") == 0))
        return;
    /* without a gradient key, sema_train.c puts the default's loc at the directive */
    int by_default = tr->gradient_loc.line == where.line && tr->gradient_loc.col == where.col;
    diag_error(S->diag, by_default ? sv->loc : tr->gradient_loc,
               "train cannot take gradient = %s through %s (%s): use gradient = backprop",
               tr->gradient, nd_method_name(sv->method), why);
    if (by_default)
        diag_note(S->diag, where, "without a gradient key train takes the adjoint");
}

/* A train through verlet: what the solve needs of the model, and a discrete
 * gradient (backprop or checkpoint): the adjoint would integrate the
 * first-order [y; a; g] system backwards, which verlet does not step. */
void sema_verlet_train(Sema *S, const SemaTrain *tr, SrcLoc where)
{
    const SemaSolver *sv = &tr->solver;
    if (!tr->model || !sv->name || sv->method != ND_VERLET || tr->evaluate)
        return;
    sema_verlet_solver(S, tr->model, sv);
    sema_backprop_only(S, tr, where, true, "its backward solve would be first order");
}
