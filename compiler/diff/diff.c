/* Symbolic reverse mode on the IR (tinygrad's gradient.py): a reverse
 * topological sweep from the roots accumulates one cotangent per node, and
 * diff_rule holds the one derivative rule of every op. Rules build IR with the
 * simplifying constructors, so a derivative shares the forward nodes it reuses
 * (tanh' = 1 - tanh^2 reads the forward tanh) and zeros vanish as they appear.
 * The divergence, the model's adjoint system and its Jacobian are built on it. */
#include "diff.h"
#include "diag.h"

#include <stdlib.h>

/* ---- helpers ---- */

static IrNode *scalar(IrBuilder *b, double v)
{
    return ir_scalar(b, v);
}

/* The cotangent of an operand that was broadcast (a scalar against a tensor)
 * is the sum of the result's cotangent over the broadcast elements. */
static IrNode *unbroadcast(IrBuilder *b, IrNode *c, const IrNode *arg)
{
    if (arg->shape.rank == 0 && c->shape.rank != 0)
        return ir_sum(b, c);
    return c;
}

static IrNode *pow_node(IrBuilder *b, IrNode *x, IrNode *p)
{
    return ir_binary(b, IR_POW, x, p);
}

/* A row of a matrix as a vector: slices of a matrix are column segments, so
 * row i is column i of the transpose. */
static IrNode *matrix_row(IrBuilder *b, IrNode *m, int i)
{
    return ir_slice(b, ir_transpose(b, m), 0, i, ir_vector_shape(m->shape.cols));
}

/* ---- the rules: the cotangent of operand k of n, given n's cotangent g ---- */

static IrNode *rule_unary(IrBuilder *b, IrNode *n, IrNode *g)
{
    IrNode *x = n->args[0];
    switch (n->op) {
    case IR_NEG: return ir_neg(b, g);
    case IR_EXP: return ir_mul(b, g, n);
    case IR_LOG: return ir_div(b, g, x);
    case IR_SQRT: return ir_div(b, g, ir_mul(b, scalar(b, 2), n));
    case IR_ABS: return ir_mul(b, g, ir_unary(b, IR_SIGN, x));
    case IR_SIN: return ir_mul(b, g, ir_unary(b, IR_COS, x));
    case IR_COS: return ir_neg(b, ir_mul(b, g, ir_unary(b, IR_SIN, x)));
    case IR_TAN: return ir_mul(b, g, ir_add(b, scalar(b, 1), ir_mul(b, n, n)));
    case IR_TANH: return ir_mul(b, g, ir_sub(b, scalar(b, 1), ir_mul(b, n, n)));
    case IR_SIGMOID: return ir_mul(b, g, ir_mul(b, n, ir_sub(b, scalar(b, 1), n)));
    case IR_RELU: return ir_mul(b, g, ir_unary(b, IR_STEP, x));
    case IR_SOFTPLUS: return ir_mul(b, g, ir_unary(b, IR_SIGMOID, x));
    case IR_ATAN: return ir_div(b, g, ir_add(b, scalar(b, 1), ir_mul(b, x, x)));
    case IR_SINH: return ir_mul(b, g, ir_unary(b, IR_COSH, x));
    case IR_COSH: return ir_mul(b, g, ir_unary(b, IR_SINH, x));
    case IR_ASINH:
        return ir_div(b, g, ir_unary(b, IR_SQRT, ir_add(b, scalar(b, 1), ir_mul(b, x, x))));
    case IR_ERF: /* 2/sqrt(pi) exp(-x^2) */
        return ir_mul(b, g, ir_mul(b, scalar(b, 1.1283791670955126),
                                   ir_unary(b, IR_EXP, ir_neg(b, ir_mul(b, x, x)))));
    default: return NULL; /* SIGN, STEP: zero almost everywhere; FLOOR: see diff_has_no_derivative */
    }
}

/* min and max pass g to the operand they chose, the first one at a tie (the
 * same test as the forward pass, ir_eval.c). */
static IrNode *rule_min_max(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *first = ir_binary(b, n->op == IR_MAX ? IR_GE : IR_LE, n->args[0], n->args[1]);
    IrNode *zero = scalar(b, 0);
    return k == 0 ? ir_where(b, first, g, zero) : ir_where(b, first, zero, g);
}

/* atan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2). */
static IrNode *rule_atan2(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *y = n->args[0], *x = n->args[1];
    IrNode *r2 = ir_add(b, ir_mul(b, x, x), ir_mul(b, y, y));
    return k == 0 ? ir_div(b, ir_mul(b, g, x), r2) : ir_neg(b, ir_div(b, ir_mul(b, g, y), r2));
}

/* The derivative of max(x) goes to its first largest element: g times the
 * one-hot vector of argmax(x) (its derivative is never needed: it only feeds
 * a comparison in where's condition). */
static IrNode *rule_reduce_max(IrBuilder *b, IrNode *n, IrNode *g)
{
    IrNode *x = n->args[0];
    int size = ir_shape_size(x->shape);
    double *iota = malloc(sizeof *iota * (size_t)size);
    if (!iota)
        INTERNAL_ERROR("out of memory");
    for (int i = 0; i < size; i++)
        iota[i] = i;
    IrNode *index = ir_const(b, x->shape, iota);
    free(iota);
    IrNode *picked = ir_binary(b, IR_EQ, index, ir_argmax(b, x));
    return ir_where(b, picked, g, scalar(b, 0));
}

/* d(x^p)/dx = p x^(p-1); d(x^p)/dp = log(x) x^p. */
static IrNode *rule_pow(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *x = n->args[0], *p = n->args[1];
    if (k == 0)
        return ir_mul(b, g, ir_mul(b, p, pow_node(b, x, ir_sub(b, p, scalar(b, 1)))));
    return ir_mul(b, g, ir_mul(b, ir_unary(b, IR_LOG, x), n));
}

static IrNode *rule_binary(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *x = n->args[0], *y = n->args[1];
    switch (n->op) {
    case IR_ADD: return g;
    case IR_SUB: return k == 0 ? g : ir_neg(b, g);
    case IR_MUL: return ir_mul(b, g, k == 0 ? y : x);
    case IR_DIV: /* d(x/y)/dy = -x/y^2 = -(x/y)/y */
        return k == 0 ? ir_div(b, g, y) : ir_neg(b, ir_div(b, ir_mul(b, g, n), y));
    case IR_POW: return rule_pow(b, n, k, g);
    case IR_MIN: case IR_MAX: return rule_min_max(b, n, k, g);
    case IR_ATAN2: return rule_atan2(b, n, k, g);
    default: return NULL; /* comparisons: piecewise constant */
    }
}

static IrNode *rule_where(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *zero = scalar(b, 0), *c = n->args[0];
    if (k == 0)
        return NULL;
    return k == 1 ? ir_where(b, c, g, zero) : ir_where(b, c, zero, g);
}

/* C = X @ Y: dX = G @ Y^T, dY = X^T @ G, in each rank combination. */
static IrNode *rule_matmul(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *x = n->args[0], *y = n->args[1];
    int rx = x->shape.rank, ry = y->shape.rank;
    if (rx == 1 && ry == 1) /* dot: g is a scalar */
        return ir_mul(b, g, k == 0 ? y : x);
    if (rx == 2 && ry == 1) /* [m,n]@[n] */
        return k == 0 ? ir_outer(b, g, y) : ir_matmul(b, ir_transpose(b, x), g);
    if (rx == 1) /* [n]@[n,k] */
        return k == 0 ? ir_matmul(b, y, g) : ir_outer(b, x, g);
    return k == 0 ? ir_matmul(b, g, ir_transpose(b, y)) : ir_matmul(b, ir_transpose(b, x), g);
}

/* The operand k of a concatenation is the slice of g where it was placed. */
static IrNode *rule_concat(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    int at = 0;
    for (int i = 0; i < k; i++)
        at += n->args[i]->shape.rows;
    IrNode *x = n->args[k];
    return ir_slice(b, g, at, 0, x->shape);
}

/* The tensor ops (ir_tensor.c) are linear in the operand that carries values,
 * so each cotangent is the transpose op applied to g: reshape back, im2col <->
 * col2im, a pooling <-> its transpose, sum over an axis <-> broadcast along it.
 * max_pool's first operand only selects (piecewise constant, as a comparison is). */
static IrNode *rule_tensor(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *x = n->args[k];
    const int *a = n->attr;
    switch (n->op) {
    case IR_RESHAPE: return ir_reshape(b, g, x->shape);
    case IR_IM2COL: return ir_col2im(b, g, x->shape, a[0], a[1], a[2], a[3]);
    case IR_COL2IM: return ir_im2col(b, g, a[0], a[1], a[2], a[3]);
    case IR_AVGPOOL: return ir_avg_pool_t(b, g, x->shape, a[0], a[1], a[2]);
    case IR_AVGPOOL_T: return ir_avg_pool(b, g, a[0], a[1], a[2]);
    case IR_MAXPOOL: return k == 0 ? NULL : ir_max_pool_t(b, n->args[0], g, a[0], a[1], a[2]);
    case IR_MAXPOOL_T: return k == 0 ? NULL : ir_max_pool(b, n->args[0], g, a[0], a[1], a[2]);
    case IR_SUMAXIS: return ir_broadcast_axis(b, g, a[0], ir_shape_dim(x->shape, a[0]));
    case IR_BROADCAST: return ir_sum_axis(b, g, a[0]);
    default: return NULL;
    }
}

static IrNode *diff_rule(IrBuilder *b, IrNode *n, int k, IrNode *g)
{
    IrNode *x = n->args[k], *c;
    switch (ir_op_class(n->op)) {
    case IR_LEAF: return NULL;
    case IR_UNARY: return rule_unary(b, n, g);
    case IR_BINARY:
        c = rule_binary(b, n, k, g);
        return c ? unbroadcast(b, c, x) : NULL;
    case IR_OTHER: break;
    }
    switch (n->op) {
    case IR_WHERE:
        c = rule_where(b, n, k, g);
        return c ? unbroadcast(b, c, x) : NULL;
    case IR_MATMUL: return rule_matmul(b, n, k, g);
    case IR_TRANSPOSE: return ir_transpose(b, g);
    case IR_OUTER: /* [m] outer [n]: dx = G @ y, dy = x @ G */
        return k == 0 ? ir_matmul(b, g, n->args[1]) : ir_matmul(b, n->args[0], g);
    case IR_SUM: return ir_mul(b, g, ir_fill(b, x->shape, 1));
    case IR_MAXR: return rule_reduce_max(b, n, g);
    case IR_SLICE: return ir_pad(b, g, n->attr[0], n->attr[1], x->shape);
    case IR_PAD: return ir_slice(b, g, n->attr[0], n->attr[1], x->shape);
    case IR_CONCAT: return rule_concat(b, n, k, g);
    case IR_STACK: return matrix_row(b, g, k);
    default: return rule_tensor(b, n, k, g);
    }
}

/* ---- the sweep ---- */

typedef struct Sweep {
    IrBuilder *b;
    IrNode **order;
    int count;
    IrNode **grad; /* by node id: the accumulated cotangent, NULL for zero */
    bool *needed;  /* by node id: some wrt is reachable from the node */
    const IrNode *blocked; /* the first node without a useful derivative the cotangent met */
} Sweep;

bool diff_has_no_derivative(IrOp op)
{
    return op == IR_FLOOR || op == IR_ARGMAX;
}

static void accumulate(Sweep *s, IrNode *n, IrNode *c)
{
    if (!c || ir_is_const_value(c, 0))
        return;
    if (c->shape.rank == 0 && n->shape.rank != 0) /* a scalar seed of a tensor root */
        c = ir_mul(s->b, c, ir_fill(s->b, n->shape, 1));
    s->grad[n->id] = s->grad[n->id] ? ir_add(s->b, s->grad[n->id], c) : c;
}

/* Only operands that lead to a wrt are differentiated through: the rest of
 * the DAG (constants, unrelated branches) costs nothing. */
static void mark_needed(Sweep *s, int n_wrt, IrNode *const *wrt)
{
    for (int k = 0; k < n_wrt; k++)
        s->needed[wrt[k]->id] = true;
    for (int i = 0; i < s->count; i++) {
        IrNode *n = s->order[i];
        for (int a = 0; a < n->nargs && !s->needed[n->id]; a++)
            s->needed[n->id] = s->needed[n->args[a]->id];
    }
}

static void sweep_back(Sweep *s)
{
    for (int i = s->count - 1; i >= 0; i--) {
        IrNode *n = s->order[i], *g = s->grad[n->id];
        if (!g)
            continue;
        for (int k = 0; k < n->nargs; k++) {
            if (!s->needed[n->args[k]->id])
                continue;
            if (diff_has_no_derivative(n->op) && !s->blocked)
                s->blocked = n;
            accumulate(s, n->args[k], diff_rule(s->b, n, k, g));
        }
    }
}

void diff_vjp(IrBuilder *b, int n_roots, IrNode *const *roots, IrNode *const *cot, int n_wrt,
              IrNode *const *wrt, IrNode **grads)
{
    diff_vjp_blocked(b, n_roots, roots, cot, n_wrt, wrt, grads);
}

const IrNode *diff_vjp_blocked(IrBuilder *b, int n_roots, IrNode *const *roots,
                               IrNode *const *cot, int n_wrt, IrNode *const *wrt, IrNode **grads)
{
    Arena *scratch = arena_new();
    Sweep s = {.b = b};
    s.count = ir_topo_order(scratch, n_roots, roots, &s.order);
    int ids = 1;
    for (int i = 0; i < s.count; i++)
        ids = s.order[i]->id >= ids ? s.order[i]->id + 1 : ids;
    for (int k = 0; k < n_wrt; k++)
        ids = wrt[k]->id >= ids ? wrt[k]->id + 1 : ids;
    s.grad = arena_alloc(scratch, sizeof *s.grad * (size_t)ids);
    s.needed = arena_alloc(scratch, sizeof *s.needed * (size_t)ids);
    mark_needed(&s, n_wrt, wrt);
    for (int i = 0; i < n_roots; i++)
        if (s.needed[roots[i]->id])
            accumulate(&s, roots[i], cot[i]);
    sweep_back(&s);
    for (int k = 0; k < n_wrt; k++)
        grads[k] = s.grad[wrt[k]->id] ? s.grad[wrt[k]->id] : ir_fill(b, wrt[k]->shape, 0);
    arena_free(scratch);
    return s.blocked;
}

void diff_report_blocked(Diag *diag, const IrBuilder *b, const IrNode *n, const char *what,
                         SrcLoc at, const char *consumer)
{
    const SrcLoc *origin = ir_origin(b, n);
    diag_error(diag, origin ? *origin : at,
               "%s has no useful derivative (it is zero almost everywhere), and %s would need it",
               ir_op_name(n->op), what);
    if (origin)
        diag_note(diag, at, "%s is here", consumer);
}

/* ---- derived quantities ---- */

/* The one-hot constant of shape s with a 1 at flat (row-major) index i. */
static IrNode *unit(IrBuilder *b, IrShape s, int i)
{
    int size = ir_shape_size(s);
    double *v = calloc((size_t)size, sizeof *v);
    if (!v)
        INTERNAL_ERROR("out of memory");
    v[i] = 1;
    IrNode *n = ir_const(b, s, v);
    free(v);
    return n;
}

/* trace(df/dx) = sum_i e_i^T (df/dx) e_i: one reverse sweep per element of x
 * with the unit cotangent e_i, keeping element i. Exact, and states of flows
 * are small; constant cotangents let the builder fold much of each sweep. */
IrNode *diff_divergence(IrBuilder *b, IrNode *f, IrNode *x)
{
    return diff_divergence_blocked(b, f, x, NULL);
}

IrNode *diff_divergence_blocked(IrBuilder *b, IrNode *f, IrNode *x, const IrNode **blocked)
{
    if (!ir_shape_eq(f->shape, x->shape))
        INTERNAL_ERROR("divergence of a mis-shaped field");
    IrNode *tr = scalar(b, 0);
    int size = ir_shape_size(x->shape), cols = x->shape.cols;
    for (int i = 0; i < size; i++) {
        IrNode *e = unit(b, f->shape, i), *g;
        const IrNode *stop = diff_vjp_blocked(b, 1, &f, &e, 1, &x, &g);
        if (blocked && !*blocked)
            *blocked = stop;
        tr = ir_add(b, tr, x->shape.rank == 0 ? g : ir_element(b, g, i / cols, i % cols));
    }
    return tr;
}

static IrNode *state_leaf(IrBuilder *b, const IrModel *m, int i)
{
    return ir_model_state(b, m, i);
}

/* The shared rhs's own terms (IrModel.adj_once): the vjp of the shared states'
 * rhs alone, with the per-sample cotangents zero. */
static void adjoint_once(IrBuilder *b, IrModel *m, IrNode **cot, IrNode **wrt, int nw)
{
    Arena *arena = ir_builder_arena(b);
    int ns = m->n_states;
    IrNode **roots = arena_alloc(arena, sizeof *roots * (size_t)(ns + 1));
    IrNode **c = arena_alloc(arena, sizeof *c * (size_t)(ns + 1));
    int n = 0;
    for (int i = 0; i < ns; i++)
        if (m->states[i].shared) {
            roots[n] = m->rhs[i];
            c[n++] = cot[i];
        }
    m->adj_once = arena_alloc(arena, sizeof *m->adj_once * (size_t)(nw + 1));
    const IrNode *stop = diff_vjp_blocked(b, n, roots, c, nw, wrt, m->adj_once);
    if (!m->adj_blocked)
        m->adj_blocked = stop;
}

void diff_model_adjoint(IrBuilder *b, IrModel *m)
{
    if (m->adj_state && m->adj_param)
        return;
    Arena *arena = ir_builder_arena(b);
    int ns = m->n_states, nw = ns + m->n_params;
    IrNode **cot = arena_alloc(arena, sizeof *cot * (size_t)(ns + 1));
    IrNode **wrt = arena_alloc(arena, sizeof *wrt * (size_t)(nw + 1));
    IrNode **grads = arena_alloc(arena, sizeof *grads * (size_t)(nw + 1));
    for (int i = 0; i < ns; i++) {
        cot[i] = ir_model_adjoint(b, m, i);
        wrt[i] = state_leaf(b, m, i);
    }
    for (int j = 0; j < m->n_params; j++)
        wrt[ns + j] = ir_param(b, j, m->params[j].offset, m->params[j].shape);
    /* with shared states, the per-sample rhs's terms (batched, summed by the
     * kernel) apart from the shared rhs's (once): the shared cotangents are
     * zero in the first sweep */
    IrNode **c = cot;
    if (m->ns > 0) {
        c = arena_alloc(arena, sizeof *c * (size_t)(ns + 1));
        for (int i = 0; i < ns; i++)
            c[i] = m->states[i].shared ? ir_fill(b, m->states[i].shape, 0) : cot[i];
    }
    m->adj_blocked = diff_vjp_blocked(b, ns, m->rhs, c, nw, wrt, grads);
    m->adj_state = grads;
    m->adj_param = grads + ns; /* one allocation: params follow the states */
    if (m->ns > 0)
        adjoint_once(b, m, cot, wrt, nw);
}

static IrNode *init_adjoint_term(IrBuilder *b, const IrModel *m, int i, IrNode *param)
{
    const IrVar *v = &m->states[i];
    if (v->init_kind != IR_INIT_EXPR || !v->init)
        return NULL;
    IrNode *a = ir_model_adjoint(b, m, i), *g;
    diff_vjp(b, 1, &v->init, &a, 1, &param, &g);
    return ir_is_const_value(g, 0) ? NULL : g;
}

void diff_model_init_adjoint(IrBuilder *b, IrModel *m)
{
    if (m->adj_init)
        return;
    int ns = m->n_states;
    IrNode **terms = arena_alloc(ir_builder_arena(b), sizeof *terms * (size_t)(ns * m->n_params + 1));
    for (int j = 0; j < m->n_params; j++) {
        IrNode *leaf = ir_param(b, j, m->params[j].offset, m->params[j].shape);
        for (int i = 0; i < ns; i++)
            terms[j * ns + i] = init_adjoint_term(b, m, i, leaf);
    }
    m->adj_init = terms;
}

/* A gradient shaped like a state, as a vector of its row-major elements. */
static IrNode *flatten(IrBuilder *b, IrNode *g)
{
    if (g->shape.rank < 2)
        return g;
    IrNode **rows = malloc(sizeof *rows * (size_t)g->shape.rows);
    if (!rows)
        INTERNAL_ERROR("out of memory");
    for (int r = 0; r < g->shape.rows; r++)
        rows[r] = matrix_row(b, g, r);
    IrNode *v = ir_concat(b, g->shape.rows, rows);
    free(rows);
    return v;
}

/* Row `row` of the Jacobian: the gradient of element e of rhs[i] w.r.t. y. */
static IrNode *jacobian_row(IrBuilder *b, IrModel *m, int i, int e, IrNode **wrt, IrNode **grads)
{
    IrNode *cot = unit(b, m->rhs[i]->shape, e);
    diff_vjp(b, 1, &m->rhs[i], &cot, m->n_states, wrt, grads);
    for (int k = 0; k < m->n_states; k++)
        grads[k] = flatten(b, grads[k]);
    return ir_concat(b, m->n_states, grads);
}

/* grads[k] of the states with shared == sh, flattened, as one row. */
static IrNode *row_part(IrBuilder *b, const IrModel *m, IrNode **grads, bool sh, IrNode **tmp)
{
    int n = 0;
    for (int k = 0; k < m->n_states; k++)
        if (m->states[k].shared == sh)
            tmp[n++] = flatten(b, grads[k]);
    return ir_concat(b, n, tmp);
}

/* The bordered Jacobian of a model with shared states (IrModel.jac_border). */
static void jacobian_bordered(IrBuilder *b, IrModel *m, Arena *scratch, IrNode **wrt,
                              IrNode **grads)
{
    IrNode **tmp = arena_alloc(scratch, sizeof *tmp * (size_t)(m->n_states + 1));
    IrNode **ry = arena_alloc(scratch, sizeof *ry * (size_t)(m->ny + 1));
    IrNode **rc = arena_alloc(scratch, sizeof *rc * (size_t)(m->ny + 1));
    IrNode **rs = arena_alloc(scratch, sizeof *rs * (size_t)(m->ns + 1));
    int ny = 0, ns = 0;
    for (int i = 0; i < m->n_states; i++)
        for (int e = 0; e < ir_shape_size(m->states[i].shape); e++) {
            IrNode *cot = unit(b, m->rhs[i]->shape, e);
            diff_vjp(b, 1, &m->rhs[i], &cot, m->n_states, wrt, grads);
            if (m->states[i].shared) {
                rs[ns++] = row_part(b, m, grads, true, tmp);
            } else {
                ry[ny] = row_part(b, m, grads, false, tmp);
                rc[ny++] = row_part(b, m, grads, true, tmp);
            }
        }
    m->jac = ir_stack(b, ny, ry);
    m->jac_border = ir_stack(b, ny, rc);
    m->jac_shared = ir_stack(b, ns, rs);
}

void diff_model_jacobian(IrBuilder *b, IrModel *m)
{
    if (m->jac)
        return;
    Arena *scratch = arena_new();
    int ns = m->n_states;
    IrNode **wrt = arena_alloc(scratch, sizeof *wrt * (size_t)(ns + 1));
    IrNode **grads = arena_alloc(scratch, sizeof *grads * (size_t)(ns + 1));
    IrNode **rows = arena_alloc(scratch, sizeof *rows * (size_t)(m->ny + 1));
    for (int i = 0; i < ns; i++)
        wrt[i] = state_leaf(b, m, i);
    if (m->ns > 0) {
        jacobian_bordered(b, m, scratch, wrt, grads);
        arena_free(scratch);
        return;
    }
    int row = 0;
    for (int i = 0; i < ns; i++)
        for (int e = 0; e < ir_shape_size(m->states[i].shape); e++)
            rows[row++] = jacobian_row(b, m, i, e, wrt, grads);
    m->jac = ir_stack(b, row, rows);
    arena_free(scratch);
}

/* g * diag(dg/dx) of one state: one reverse sweep per element, as the
 * divergence takes (diagonal noise needs no other entry of the Jacobian). */
static IrNode *diffusion_dx_of(IrBuilder *b, IrNode *g, IrNode *x)
{
    int size = ir_shape_size(x->shape), cols = x->shape.cols;
    if (x->shape.rank == 0) {
        IrNode *one = scalar(b, 1), *d;
        diff_vjp(b, 1, &g, &one, 1, &x, &d);
        return ir_mul(b, g, d);
    }
    IrNode **el = malloc(sizeof *el * (size_t)size);
    if (!el)
        INTERNAL_ERROR("out of memory");
    for (int i = 0; i < size; i++) {
        IrNode *e = unit(b, g->shape, i), *d;
        diff_vjp(b, 1, &g, &e, 1, &x, &d);
        el[i] = ir_mul(b, ir_element(b, g, i / cols, i % cols), ir_element(b, d, i / cols, i % cols));
    }
    IrNode *v = ir_reshape(b, ir_concat(b, size, el), x->shape);
    free(el);
    return v;
}

void diff_model_diffusion_dx(IrBuilder *b, IrModel *m)
{
    if (m->diffusion_dx || !m->diffusion)
        return;
    Arena *arena = ir_builder_arena(b);
    m->diffusion_dx = arena_alloc(arena, sizeof(IrNode *) * (size_t)(m->n_states + 1));
    for (int i = 0; i < m->n_states; i++)
        if (m->diffusion[i])
            m->diffusion_dx[i] = diffusion_dx_of(b, m->diffusion[i], state_leaf(b, m, i));
}
