/* A model's events (`when A < B { v = -e * v }`, `when h > 12 { terminate }`;
 * docs/language.md "Events"): each condition lowered to g = A - B with its
 * direction, each block to the states' values after the event (IrEvent), and
 * the directives that cannot run them refused at their location. */
#include <string.h>

#include "sema_internal.h"

/* The directive's wording of what a `when` may compare. */
static const char cond_shape[] = "a when condition compares two scalars with < or > (such as "
                                 "`h < 0`: it fires where h falls through 0)";

static bool event_condition(Sema *S, Scope *sc, const Ast *w, IrEvent *ev)
{
    const Ast *c = w->a;
    if (c->kind != AST_BINARY || (c->op != OP_LT && c->op != OP_GT)) {
        bool eq = c->kind == AST_BINARY && (c->op == OP_LE || c->op == OP_GE);
        diag_error(S->diag, c->loc, "%s%s", cond_shape,
                   eq ? "; write < or >: the event is the crossing, where the two sides meet" : "");
        return false;
    }
    Val a = sema_tensor(S, sc, c->a), b = sema_tensor(S, sc, c->b);
    if (a.kind == V_ERR || b.kind == V_ERR)
        return false;
    const Ast *side = ir_shape_size(a.node->shape) != 1 ? c->a : c->b;
    IrNode *n = side == c->a ? a.node : b.node;
    if (ir_shape_size(n->shape) != 1) {
        char buf[32];
        diag_error(S->diag, side->loc, "%s, but this side has shape %s (take an element, like "
                   "y[0], or a reduction)", cond_shape, sema_shape(n->shape, buf));
        return false;
    }
    ev->cond = sema_fold(S, ir_sub(S->ir, a.node, b.node));
    if (!(sema_deps(S, ev->cond) & (ALLOW_STATE | ALLOW_TIME))) {
        diag_error(S->diag, c->loc, "this when condition depends on neither a state nor t, so it "
                   "can never cross zero");
        return false;
    }
    ev->direction = c->op == OP_LT ? -1 : 1;
    return true;
}

/* The slot of the state `name` names in the model, or -1 after reporting. */
static int assigned_state(Sema *S, Scope *sc, const Ast *act)
{
    Binding *b = scope_find_local(sc, act->name);
    if (!b) {
        diag_error(S->diag, act->name_loc, "unknown state '%s' in a when block", act->name);
        sema_suggest(S, sc, act->name, act->name_loc, 0);
        return -1;
    }
    if (b->kind != B_STATE) {
        diag_error(S->diag, act->name_loc, "'%s' is not a state: a when block assigns new values "
                   "to states only", act->name);
        diag_note(S->diag, b->loc, "'%s' is declared here", act->name);
        return -1;
    }
    const IrNode *leaf = b->val.kind == V_NODE ? b->val.node : NULL;
    return leaf && leaf->op == IR_STATE ? leaf->slot : -1; /* else its declaration was reported */
}

static void event_assign(Sema *S, Scope *sc, const Ast *act, IrEvent *ev, const Ast **by)
{
    int slot = assigned_state(S, sc, act);
    if (slot < 0)
        return;
    if (by[slot]) {
        diag_error(S->diag, act->name_loc, "state '%s' is assigned twice in this when block",
                   act->name);
        diag_note(S->diag, by[slot]->name_loc, "the first assignment to '%s' is here", act->name);
        return;
    }
    by[slot] = act;
    Val v = sema_tensor(S, sc, act->a);
    IrShape want = S->model->states[slot].shape;
    if (v.kind == V_ERR || !sema_fits_state(S, want, v.node, act->a->loc, "the assignment to",
                                            act->name, "the new value"))
        return;
    ev->reset[slot] = sema_fold(S, sema_fill(S, v.node, want));
}

/* The block's actions: assignments to states, or `terminate` alone. */
static void event_actions(Sema *S, Scope *sc, const Ast *w, IrEvent *ev)
{
    const IrModel *m = S->model;
    const Ast **by = arena_alloc(S->arena, sizeof(Ast *) * (size_t)(m->n_states + 1));
    ev->reset = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)(m->n_states + 1));
    const Ast *term = NULL, *assign = NULL;
    for (int i = 0; i < w->list.n; i++) {
        const Ast *act = w->list.items[i];
        if (act->kind == AST_ENTRY) {
            assign = assign ? assign : act;
            event_assign(S, sc, act, ev, by);
        } else if (strcmp(act->name, "terminate") == 0) {
            term = term ? term : act;
        } else {
            diag_error(S->diag, act->loc, "expected `terminate` or an assignment such as `v = -v` "
                       "in a when block, found '%s'", act->name);
            return;
        }
    }
    if (term && assign) {
        diag_error(S->diag, term->loc, "`terminate` cannot be combined with assignments in one "
                   "when block: the sample stops there, so its new values would never be used");
        diag_note(S->diag, assign->loc, "the assignment is here");
    } else if (!term && !assign) {
        diag_error(S->diag, w->loc, "this when block does nothing: give it an assignment to a "
                   "state, such as `v = -v`, or `terminate`");
    }
    ev->terminate = term != NULL;
}

void sema_model_events(Sema *S, Scope *sc, const Ast *model)
{
    IrModel *m = S->model;
    int n = 0;
    for (int i = 0; i < model->list.n; i++)
        n += model->list.items[i]->kind == AST_WHEN;
    if (n == 0)
        return;
    m->events = arena_alloc(S->arena, sizeof(IrEvent) * (size_t)n);
    for (int i = 0; i < model->list.n; i++) {
        const Ast *w = model->list.items[i];
        if (w->kind != AST_WHEN)
            continue;
        IrEvent *ev = &m->events[m->n_events++];
        memset(ev, 0, sizeof *ev);
        ev->loc = w->loc;
        if (event_condition(S, sc, w, ev))
            event_actions(S, sc, w, ev);
    }
}

void sema_events_solver(Sema *S, const IrModel *m, const SemaSolver *sv)
{
    if (!m || m->n_events == 0 || !sv->name)
        return;
    if (nd_method_is_implicit(sv->method) && sv->method != ND_BDF)
        diag_error(S->diag, sv->loc, "%s does not locate events (not in this version), and model "
                   "'%s' has them: use bdf, or an explicit solver (dopri5, tsit5, dop853, bosh3, "
                   "or a fixed-step one such as rk4)", sv->name, m->name);
    else if (sv->step_control == ND_STEP_PER_SAMPLE)
        /* the per-sample driver solves each sample with a solver of one, whose event
         * log the batch's events file does not read yet */
        diag_error(S->diag, sv->loc, "step_control = per_sample does not locate events (not in "
                   "this version), and model '%s' has them: leave the step shared (the default)",
                   m->name);
    else
        return;
    diag_note(S->diag, m->events[0].loc, "the model's first event is here");
}

void sema_sde_solver(Sema *S, const IrModel *m, const SemaSolver *sv)
{
    if (!m || !m->diffusion || !sv->name || nd_method_is_sde(sv->method))
        return;
    if (nd_method_is_implicit(sv->method))
        diag_error(S->diag, sv->loc, "%s is a solver for stiff ODEs and does not integrate noise "
                   "(no stiff SDE solver in this version): model '%s' has noise (dW); solve it "
                   "with euler_maruyama or milstein", sv->name, m->name);
    else
        diag_error(S->diag, sv->loc, "model '%s' has noise (dW), which %s does not integrate: "
                   "solve it with euler_maruyama or milstein", m->name, sv->name);
}

void sema_sde_train(Sema *S, const SemaTrain *tr, SrcLoc where)
{
    if (!tr->model || !tr->model->diffusion)
        return;
    sema_sde_solver(S, tr->model, &tr->solver);
    if (!tr->evaluate && nd_method_is_sde(tr->solver.method))
        sema_backprop_only(S, tr, where, false,
                           tr->gradient && strcmp(tr->gradient, "checkpoint") == 0
                               ? "a checkpoint does not keep the Brownian path's state"
                               : "its backward solve would need the Brownian path in reverse");
}

void sema_events_evaluate(Sema *S, const IrModel *m, SrcLoc where)
{
    if (!m || m->n_events == 0)
        return;
    diag_error(S->diag, where, "evaluate cannot use model '%s' yet: it has events, and an "
               "evaluate's loss does not run them (solve and simulate run it)", m->name);
    diag_note(S->diag, m->events[0].loc, "the model's first event is here");
}

/* What a train of a model with events needs that gradients through the event
 * times (docs/gradients.md, "Events") do not cover yet, or NULL. *at is the
 * event it concerns, when one does. */
static const char *train_unsupported(Sema *S, const SemaTrain *tr, const IrEvent **at)
{
    const IrModel *m = tr->model;
    *at = &m->events[0];
    for (int e = 0; e < m->n_events; e++) {
        *at = &m->events[e];
        if (m->events[e].cond && (sema_deps(S, m->events[e].cond) & ALLOW_TIME))
            return "a when condition that reads t (its dg/dt is not derived)";
        if (m->events[e].terminate)
            return "a when block that terminates (the adjoint of a stopped sample)";
    }
    *at = &m->events[0];
    if (tr->regularize)
        return "regularize (a running cost through the event times)";
    if (tr->clock_state >= 0)
        return "a time series whose model or loss reads t (its clock state)";
    if (tr->solver.step_control == ND_STEP_PER_SAMPLE)
        return "step_control = per_sample";
    if (nd_method_is_implicit(tr->solver.method))
        return "an implicit solver (use an explicit one such as dopri5)";
    if (tr->gradient && strcmp(tr->gradient, "checkpoint") == 0)
        return "gradient = checkpoint (use adjoint or backprop)";
    return NULL;
}

void sema_events_train(Sema *S, const SemaTrain *tr, SrcLoc where)
{
    const IrModel *m = tr->model;
    if (!m || m->n_events == 0)
        return;
    const IrEvent *at = NULL;
    const char *why = train_unsupported(S, tr, &at);
    if (!why)
        return;
    diag_error(S->diag, where, "train cannot use model '%s' with %s: gradients through event "
               "times do not cover it in this version (docs/gradients.md, Events)", m->name, why);
    diag_note(S->diag, at->loc, at == &m->events[0] ? "the model's first event is here"
                                                    : "the event is here");
}
