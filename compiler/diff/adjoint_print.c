/* The printer of `nodec adjoint`: the model's equations and its derived
 * adjoint system in the notation of the adjoint method (Chen et al. 2018,
 * "Neural Ordinary Differential Equations", eq. 4-5):
 *     da/dt = -a^T df/dx          dL/dθ = -∫_{t1}^{t0} a^T df/dθ dt
 * plus, for a parameter in a state's initial value, that state's adjoint at t0
 * times the initial value's derivative.
 * Every expression is IR printed by ir_print_expr, so what is shown is what is
 * compiled. */
#include "adjoint_print.h"


static void print_shape_suffix(FILE *out, IrShape s)
{
    if (s.rank == 1)
        fprintf(out, "[%d]", s.rows);
    else if (s.rank == 2)
        fprintf(out, "[%d, %d]", s.rows, s.cols);
}

/* -e, written -(e) unless e is a single name or number; zero stays 0. */
static void print_negated(FILE *out, IrBuilder *b, IrNode *e, const IrModel *m)
{
    if (ir_is_const_value(e, 0))
        fputs("0", out);
    else
        ir_print_expr(out, ir_neg(b, e), m);
}

/* e, parenthesised unless it is a single name or number, then suffix. */
static void print_wrapped(FILE *out, IrNode *e, const IrModel *m, const char *prefix,
                          const char *suffix)
{
    bool atom = e->nargs == 0;
    fputs(prefix, out);
    fputs(atom ? "" : "(", out);
    ir_print_expr(out, e, m);
    fputs(atom ? "" : ")", out);
    fputs(suffix, out);
}

/* dL/dθ = -∫ (integrand) dt [+ (term)(t0) per initial value using θ]. */
static void print_param_gradient(FILE *out, const IrModel *m, int j)
{
    const IrVar *p = &m->params[j];
    IrNode *integrand = m->adj_param[j];
    int terms = 0;
    fprintf(out, "  dL/d%s = ", p->name);
    if (!ir_is_const_value(integrand, 0)) {
        print_wrapped(out, integrand, m, "-∫ ", " dt");
        terms++;
    }
    for (int i = 0; i < m->n_states; i++) {
        IrNode *t0 = m->adj_init[j * m->n_states + i];
        if (t0)
            print_wrapped(out, t0, m, terms++ ? " + " : "", "(t0)");
    }
    fputs(terms ? "\n" : "0\n", out);
}

int adjoint_print(FILE *out, IrBuilder *b, const IrModel *m)
{
    for (int i = 0; i < m->n_states; i++)
        if (!m->rhs || !m->rhs[i])
            return -1;
    if (!m->adj_state || !m->adj_init)
        INTERNAL_ERROR("model '%s' reached the adjoint printer underived", m->name);
    fprintf(out, "model %s\n", m->name);
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, "  state %s", m->states[i].name);
        print_shape_suffix(out, m->states[i].shape);
        fprintf(out, ", adjoint a_%s\n", m->states[i].name);
    }
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, "  d%s/dt = ", m->states[i].name);
        ir_print_expr(out, m->rhs[i], m);
        fputc('\n', out);
    }
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, "  da_%s/dt = ", m->states[i].name);
        print_negated(out, b, m->adj_state[i], m);
        fputc('\n', out);
    }
    for (int j = 0; j < m->n_params; j++)
        print_param_gradient(out, m, j);
    return 0;
}
