/* The printer of `nodec adjoint`: the model's equations and its derived
 * adjoint system in the notation of the adjoint method (Chen et al. 2018,
 * "Neural Ordinary Differential Equations", eq. 4-5):
 *     da/dt = -a^T df/dx          dL/dθ = -∫_{t1}^{t0} a^T df/dθ dt
 * plus, for a parameter in a state's initial value, that state's adjoint at t0
 * times the initial value's derivative.
 * Every expression is IR printed through IrNames (a subexpression shared by
 * several is named once, in "where s1 = ..." lines), so what is shown is what
 * is compiled. */
#include "adjoint_print.h"


static void print_shape_suffix(FILE *out, IrShape s)
{
    if (s.rank == 1)
        fprintf(out, "[%d]", s.rows);
    else if (s.rank == 2)
        fprintf(out, "[%d, %d]", s.rows, s.cols);
}

/* da_x/dt's printed expression: -e, or 0; ir_neg folds --e. */
static IrNode *negated(IrBuilder *b, IrNode *e)
{
    return ir_is_const_value(e, 0) ? e : ir_neg(b, e);
}

/* e, parenthesised unless it is a single name or number, then suffix. */
static void print_wrapped(FILE *out, IrNames *nm, IrNode *e, const char *prefix,
                          const char *suffix)
{
    bool atom = ir_names_atom(nm, e);
    fputs(prefix, out);
    fputs(atom ? "" : "(", out);
    ir_names_print(out, nm, e);
    fputs(atom ? "" : ")", out);
    fputs(suffix, out);
}

/* dL/dθ = -∫ (integrand) dt [+ (term)(t0) per initial value using θ]. */
static void print_param_gradient(FILE *out, IrNames *nm, const IrModel *m, int j)
{
    const IrVar *p = &m->params[j];
    IrNode *integrand = m->adj_param[j];
    int terms = 0;
    fprintf(out, "  dL/d%s = ", p->name);
    if (!ir_is_const_value(integrand, 0)) {
        print_wrapped(out, nm, integrand, "-∫ ", " dt");
        terms++;
    }
    for (int i = 0; i < m->n_states; i++) {
        IrNode *t0 = m->adj_init[j * m->n_states + i];
        if (t0)
            print_wrapped(out, nm, t0, terms++ ? " + " : "", "(t0)");
    }
    fputs(terms ? "\n" : "0\n", out);
}

/* Everything printed, so that a subexpression shared anywhere is named once:
 * the rhs, the negated adjoints, the parameter integrands and t0 terms. */
static IrNames *names_of(Arena *arena, IrBuilder *b, const IrModel *m, IrNode ***neg)
{
    int ns = m->n_states, np = m->n_params, n = 0;
    IrNode **roots = arena_alloc(arena, sizeof *roots * (size_t)(2 * ns + np + np * ns + 1));
    *neg = arena_alloc(arena, sizeof **neg * (size_t)(ns + 1));
    for (int i = 0; i < ns; i++)
        roots[n++] = m->rhs[i];
    for (int i = 0; i < ns; i++)
        roots[n++] = (*neg)[i] = negated(b, m->adj_state[i]);
    for (int j = 0; j < np; j++)
        roots[n++] = m->adj_param[j];
    for (int k = 0; k < np * ns; k++)
        if (m->adj_init[k])
            roots[n++] = m->adj_init[k];
    return ir_names_new(arena, m, n, roots);
}

int adjoint_print(FILE *out, IrBuilder *b, const IrModel *m)
{
    for (int i = 0; i < m->n_states; i++)
        if (!m->rhs || !m->rhs[i])
            return -1;
    if (!m->adj_state || !m->adj_init)
        INTERNAL_ERROR("model '%s' reached the adjoint printer underived", m->name);
    Arena *scratch = arena_new();
    IrNode **neg;
    IrNames *nm = names_of(scratch, b, m, &neg);
    fprintf(out, "model %s\n", m->name);
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, "  state %s", m->states[i].name);
        print_shape_suffix(out, m->states[i].shape);
        fprintf(out, ", adjoint a_%s\n", m->states[i].name);
    }
    ir_names_print_defs(out, nm, "  ");
    for (int i = 0; i < m->n_states; i++) {
        const IrVar *v = &m->states[i];
        if (v->velocity_of) /* the pair of d2x/dt2 = a: dx/dt = (the state dx/dt), d2x/dt2 = a */
            fprintf(out, "  d2%s/dt2 = ", m->states[v->velocity_of - 1].name);
        else
            fprintf(out, "  d%s/dt = ", v->name);
        ir_names_print(out, nm, m->rhs[i]);
        fputc('\n', out);
    }
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, m->states[i].velocity_of ? "  d(a_%s)/dt = " : "  da_%s/dt = ",
                m->states[i].name);
        ir_names_print(out, nm, neg[i]);
        fputc('\n', out);
    }
    for (int j = 0; j < m->n_params; j++)
        print_param_gradient(out, nm, m, j);
    if (m->n_events > 0) /* the system holds between events; their jumps are not derived */
        fprintf(out, "  # and %d event%s (when): the adjoint jumps at each event time, which this "
                "version does not derive (docs/gradients.md, Events)\n", m->n_events,
                m->n_events == 1 ? "" : "s");
    arena_free(scratch);
    return 0;
}
