/* Printing the IR: infix math for `nodec adjoint` and messages (ir_print_expr,
 * with the precedence of LANGUAGE.md §3 so that only needed parentheses
 * appear) and the numbered SSA listing of --dump=ir (ir_dump_model). */
#include "ir.h"
#include "diag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers and constants ---- */

/* The shortest %.Ng that reads back exactly (so 0.1 prints "0.1", not
 * "0.10000000000000001"), with the exponent's padding zeros dropped. */
static void format_number(char *buf, size_t size, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *nz = digits;
        while (*nz == '0' && nz[1])
            nz++;
        if (e[1] == '+')
            digits--; /* drop the '+' as well */
        memmove(digits, nz, strlen(nz) + 1);
    }
}

static void print_number(FILE *out, double v)
{
    char buf[64];
    format_number(buf, sizeof buf, v);
    fputs(buf, out);
}

enum { PRINT_MAX_VECTOR = 10, PRINT_MAX_MATRIX = 16 }; /* beyond: "const[50, 2]" */

static bool const_uniform(const IrNode *n)
{
    return ir_is_const_value(n, n->value[0]);
}

static void print_const(FILE *out, const IrNode *n)
{
    IrShape s = n->shape;
    int size = ir_shape_size(s);
    if (s.rank == 0) {
        print_number(out, n->value[0]);
    } else if (s.rank == 1 && size > PRINT_MAX_VECTOR && const_uniform(n) &&
               (n->value[0] == 0 || n->value[0] == 1)) {
        fprintf(out, "%s(%d)", n->value[0] == 0 ? "zeros" : "ones", s.rows);
    } else if ((s.rank == 1 && size > PRINT_MAX_VECTOR) || (s.rank == 2 && size > PRINT_MAX_MATRIX)) {
        char buf[32];
        fprintf(out, "const%s", ir_shape_str(s, buf));
    } else if (s.rank == 1) {
        fputc('[', out);
        for (int i = 0; i < s.rows; i++) {
            fputs(i ? ", " : "", out);
            print_number(out, n->value[i]);
        }
        fputc(']', out);
    } else {
        fputc('[', out);
        for (int i = 0; i < s.rows; i++) {
            fputs(i ? ", [" : "[", out);
            for (int j = 0; j < s.cols; j++) {
                fputs(j ? ", " : "", out);
                print_number(out, n->value[i * s.cols + j]);
            }
            fputc(']', out);
        }
        fputc(']', out);
    }
}

/* ---- infix expressions ---- */

static const char *const op_syms[IR_OP_COUNT] = {
#define X(name, arity, print, cls) print,
#include "ir_ops.def"
#undef X
};

/* Binding strength, lowest first (LANGUAGE.md §3); comparisons, which appear
 * only inside where(), bind loosest. */
enum { PREC_CMP, PREC_ADD, PREC_MUL, PREC_NEG, PREC_POW, PREC_ATOM };

static int node_prec(const IrNode *n)
{
    switch (n->op) {
    case IR_ADD: case IR_SUB: return PREC_ADD;
    case IR_MUL: case IR_DIV: case IR_MATMUL: return PREC_MUL;
    case IR_NEG: return PREC_NEG;
    case IR_POW: return PREC_POW;
    case IR_LT: case IR_LE: case IR_GT: case IR_GE: case IR_EQ: case IR_NE: return PREC_CMP;
    case IR_CONST: /* "-2" reads as a negation */
        return n->shape.rank == 0 && signbit(n->value[0]) ? PREC_NEG : PREC_ATOM;
    default: return PREC_ATOM;
    }
}

/* How an expression prints: the model that names leaves; with names (by node
 * id, 0 for none) a named node prints as prefix + number, except the one being
 * defined; depth bounds an unnamed printing's recursion. */
typedef struct Pr {
    const IrModel *m;
    const int *name;
    const char *prefix;
    const IrNode *defining;
    int depth;
} Pr;

/* Nesting a line may show: deeper nodes are named (IrNames), or printed as
 * "..." by ir_print_expr, whose single line has no room for names. A shared
 * node is named when it prints at least PRINT_NAME_WEIGHT operations. */
enum { PRINT_NAME_DEPTH = 24, PRINT_MAX_DEPTH = 200, PRINT_NAME_WEIGHT = 2 };

/* An adjoint leaf names its state's cotangent: a_x for the whole state,
 * a_y[0] or a_y[0:2] for a part of it (offsets count from the state's). */
static bool print_adjoint_name(FILE *out, const IrNode *n, const IrModel *m)
{
    if (!m || n->slot >= m->n_states || !m->states[n->slot].name)
        return false;
    const IrVar *v = &m->states[n->slot];
    int k = n->offset - v->offset, size = ir_shape_size(n->shape);
    if (k < 0 || k + size > ir_shape_size(v->shape))
        return false;
    fprintf(out, "a_%s", v->name);
    if (ir_shape_eq(n->shape, v->shape))
        return true;
    if (v->shape.rank == 2 && size == 1)
        fprintf(out, "[%d, %d]", k / v->shape.cols, k % v->shape.cols);
    else if (size == 1)
        fprintf(out, "[%d]", k);
    else
        fprintf(out, "[%d:%d]", k, k + size); /* row-major range */
    return true;
}

static void print_leaf(FILE *out, const IrNode *n, const IrModel *m)
{
    const IrVar *vars = NULL;
    int nvars = 0;
    if (m && n->op == IR_STATE) {
        vars = m->states;
        nvars = m->n_states;
    } else if (m && n->op == IR_PARAM) {
        vars = m->params;
        nvars = m->n_params;
    }
    if (n->op == IR_TIME)
        fputs("t", out);
    else if (n->op == IR_CONST)
        print_const(out, n);
    else if (n->op == IR_ADJOINT && print_adjoint_name(out, n, m))
        return;
    else if (n->op == IR_ADJOINT || n->op == IR_DATA)
        fprintf(out, "%s@%d", n->op == IR_ADJOINT ? "a" : "data", n->offset);
    else if (vars && n->slot < nvars && vars[n->slot].name)
        fputs(vars[n->slot].name, out);
    else
        fprintf(out, "%s@%d", n->op == IR_STATE ? "y" : "p", n->offset);
}

static void print_prec(FILE *out, const IrNode *n, const Pr *p, int min_prec);

/* pad(g, 1, [5]) and pad(g, 1, 2, [5, 3]): the operand, where it starts, and
 * the shape of zeros it sits in. */
static void print_pad(FILE *out, const IrNode *n, const Pr *p)
{
    char buf[32];
    fputs("pad(", out);
    print_prec(out, n->args[0], p, PREC_CMP);
    if (n->shape.rank == 2)
        fprintf(out, ", %d, %d, %s)", n->attr[0], n->attr[1], ir_shape_str(n->shape, buf));
    else
        fprintf(out, ", %d, %s)", n->attr[0], ir_shape_str(n->shape, buf));
}

/* "[1]", "[0:2]", "[1, 0]", "[0:2, 1]", "[0:2, 1:3]" after the sliced operand. */
static void print_slice_index(FILE *out, const IrNode *n)
{
    IrShape src = n->args[0]->shape, s = n->shape;
    int r = n->attr[0], c = n->attr[1];
    if (s.rank == 0)
        fprintf(out, "[%d", r);
    else
        fprintf(out, "[%d:%d", r, r + s.rows);
    if (src.rank == 2 && s.rank < 2)
        fprintf(out, ", %d", c);
    else if (src.rank == 2)
        fprintf(out, ", %d:%d", c, c + s.cols);
    fputc(']', out);
}


static void print_call(FILE *out, const char *name, const IrNode *n, const Pr *p)
{
    fprintf(out, "%s(", name);
    for (int i = 0; i < n->nargs; i++) {
        fputs(i ? ", " : "", out);
        print_prec(out, n->args[i], p, PREC_CMP);
    }
    fputc(')', out);
}

/* A tensor op's attributes after its operands, for the reader: the window
 * ("3x3, stride 1, pad 1"), the axis, or the shape a reshape gives. */
static void print_tensor_attrs(FILE *out, const IrNode *n)
{
    char buf[32];
    if (n->op == IR_RESHAPE)
        fprintf(out, ", %s", ir_shape_str(n->shape, buf));
    else if (n->op == IR_SUMAXIS || n->op == IR_BROADCAST)
        fprintf(out, ", axis %d", n->attr[0]);
    else
        fprintf(out, ", %dx%d, stride %d, pad %d", n->attr[0], n->attr[1], n->attr[2], n->attr[3]);
}

static bool is_tensor_op(IrOp op)
{
    return op >= IR_RESHAPE && op <= IR_BROADCAST;
}

static void print_tensor_call(FILE *out, const IrNode *n, const Pr *p)
{
    fprintf(out, "%s(", op_syms[n->op]);
    for (int i = 0; i < n->nargs; i++) {
        fputs(i ? ", " : "", out);
        print_prec(out, n->args[i], p, PREC_CMP);
    }
    print_tensor_attrs(out, n);
    fputc(')', out);
}

/* Whether n prints as a bracketed vector literal, so a stack of such rows
 * reads as the matrix literal [[a, b], [c, d]]. */
static bool prints_bracketed(const IrNode *n)
{
    if (n->op == IR_CONST)
        return n->shape.rank == 1 && n->shape.rows <= PRINT_MAX_VECTOR;
    if (n->op != IR_CONCAT)
        return false;
    for (int i = 0; i < n->nargs; i++)
        if (n->args[i]->shape.rank != 0)
            return false;
    return true;
}

static void print_list(FILE *out, const IrNode *n, const Pr *p)
{
    fputc('[', out);
    for (int i = 0; i < n->nargs; i++) {
        fputs(i ? ", " : "", out);
        print_prec(out, n->args[i], p, PREC_CMP);
    }
    fputc(']', out);
}

static bool all_rows_bracketed(const IrNode *n)
{
    for (int i = 0; i < n->nargs; i++)
        if (!prints_bracketed(n->args[i]))
            return false;
    return true;
}

/* Operands of a left-associative binary operator: the right one binds one
 * level tighter (a - (b - c)); ^ is right-associative ((a ^ b) ^ c). */
static void print_infix(FILE *out, const IrNode *n, const Pr *p, int prec)
{
    const char *sym = op_syms[n->op];
    int left = prec == PREC_POW ? PREC_ATOM : prec == PREC_CMP ? PREC_ADD : prec;
    int right = prec == PREC_POW ? PREC_POW : prec == PREC_CMP ? PREC_ADD : prec + 1;
    print_prec(out, n->args[0], p, left);
    fprintf(out, " %s ", sym);
    print_prec(out, n->args[1], p, right);
}

static void print_body(FILE *out, const IrNode *n, const Pr *p, int prec)
{
    switch (n->op) {
    case IR_CONST: case IR_TIME: case IR_STATE: case IR_PARAM: case IR_ADJOINT: case IR_DATA:
        print_leaf(out, n, p->m);
        break;
    case IR_PAD:
        print_pad(out, n, p);
        break;
    case IR_NEG: /* -(x ^ 2): parenthesised although ^ binds tighter, for the reader */
        fputc('-', out);
        print_prec(out, n->args[0], p, PREC_ATOM);
        break;
    case IR_SLICE:
        print_prec(out, n->args[0], p, PREC_ATOM);
        print_slice_index(out, n);
        break;
    case IR_CONCAT:
    case IR_STACK: /* [a, b] / [[...], [...]] when the parts print as lists, else a call */
        if (n->op == IR_CONCAT ? prints_bracketed(n) : all_rows_bracketed(n))
            print_list(out, n, p);
        else
            print_call(out, n->op == IR_CONCAT ? "concat" : "stack", n, p);
        break;
    case IR_MATMUL:
        print_infix(out, n, p, prec);
        break;
    default:
        if (is_tensor_op(n->op))
            print_tensor_call(out, n, p);
        else if (ir_op_class(n->op) == IR_BINARY && !ir_op_is_call(n->op))
            print_infix(out, n, p, prec);
        else
            print_call(out, op_syms[n->op], n, p); /* max(x) for MAXR */
        break;
    }
}

static void print_prec(FILE *out, const IrNode *n, const Pr *p, int min_prec)
{
    if (p->name && p->name[n->id] && n != p->defining) {
        fprintf(out, "%s%d", p->prefix, p->name[n->id]);
        return;
    }
    if (n->nargs && p->depth >= PRINT_MAX_DEPTH) { /* only an unnamed printing gets here */
        fputs("...", out);
        return;
    }
    ((Pr *)p)->depth++;
    int prec = node_prec(n);
    bool paren = prec < min_prec;
    if (paren)
        fputc('(', out);
    print_body(out, n, p, prec);
    if (paren)
        fputc(')', out);
    ((Pr *)p)->depth--;
}

void ir_print_expr(FILE *out, const IrNode *n, const IrModel *m)
{
    if (!n) {
        fputs("<null>", out);
        return;
    }
    Pr p = {.m = m};
    print_prec(out, n, &p, PREC_CMP);
}

/* ---- printing several roots with shared subexpressions named ---- */

struct IrNames {
    Pr pr;
    int *name;    /* by node id: 0, or the number in "s3" */
    IrNode **defs; /* the named nodes, operands first */
    int n_defs;
};

/* A prefix that no state or parameter of m spells with digits after it. */
static const char *names_prefix(const IrModel *m)
{
    static const char *const prefixes[] = {"s", "s_", "sub_", "_s"};
    for (int k = 0; k < 4; k++) {
        size_t len = strlen(prefixes[k]);
        bool clash = false;
        for (int i = 0; m && i < m->n_states + m->n_params && !clash; i++) {
            const char *v = i < m->n_states ? m->states[i].name : m->params[i - m->n_states].name;
            clash = v && strncmp(v, prefixes[k], len) == 0 && v[len] &&
                    strspn(v + len, "0123456789") == strlen(v + len);
        }
        if (!clash)
            return prefixes[k];
    }
    return "_s";
}

/* Operands first, each node's printed size and depth count its unnamed
 * operands only; a node is named when it is used twice and is more than an
 * operation on leaves and one more, or when it would nest deeper than a
 * reader (or the stack) can follow. */
IrNames *ir_names_new(Arena *arena, const IrModel *m, int n, IrNode *const *roots)
{
    IrNames *nm = arena_alloc(arena, sizeof *nm);
    IrNode **order;
    int count = ir_topo_order(arena, n, roots, &order), max_id = 0;
    for (int i = 0; i < count; i++)
        max_id = order[i]->id > max_id ? order[i]->id : max_id;
    size_t ids = (size_t)max_id + 1;
    int *uses = calloc(ids, sizeof *uses), *weight = calloc(ids, sizeof *weight);
    int *depth = calloc(ids, sizeof *depth);
    nm->name = arena_alloc(arena, sizeof *nm->name * ids);
    nm->defs = arena_alloc(arena, sizeof *nm->defs * (size_t)(count ? count : 1));
    if (!uses || !weight || !depth)
        INTERNAL_ERROR("out of memory");
    memset(nm->name, 0, sizeof *nm->name * ids);
    nm->n_defs = 0;
    for (int i = 0; i < n; i++)
        if (roots[i])
            uses[roots[i]->id]++;
    for (int i = 0; i < count; i++)
        for (int k = 0; k < order[i]->nargs; k++)
            uses[order[i]->args[k]->id]++;
    for (int i = 0; i < count; i++) {
        IrNode *x = order[i];
        if (x->nargs == 0)
            continue;
        int w = 1, d = 1;
        for (int k = 0; k < x->nargs; k++) {
            w += weight[x->args[k]->id];
            d = depth[x->args[k]->id] + 1 > d ? depth[x->args[k]->id] + 1 : d;
        }
        if ((uses[x->id] > 1 && w >= PRINT_NAME_WEIGHT) || d >= PRINT_NAME_DEPTH) {
            nm->defs[nm->n_defs++] = x;
            nm->name[x->id] = nm->n_defs;
            w = d = 0;
        }
        weight[x->id] = w;
        depth[x->id] = d;
    }
    free(uses);
    free(weight);
    free(depth);
    nm->pr = (Pr){.m = m, .name = nm->name, .prefix = names_prefix(m)};
    return nm;
}

void ir_names_print_defs(FILE *out, IrNames *nm, const char *indent)
{
    for (int i = 0; i < nm->n_defs; i++) {
        fprintf(out, "%swhere %s%d = ", indent, nm->pr.prefix, i + 1);
        nm->pr.defining = nm->defs[i];
        print_prec(out, nm->defs[i], &nm->pr, PREC_CMP);
        nm->pr.defining = NULL;
        fputc('\n', out);
    }
}

void ir_names_print(FILE *out, IrNames *nm, const IrNode *n)
{
    print_prec(out, n, &nm->pr, PREC_CMP);
}

bool ir_names_atom(const IrNames *nm, const IrNode *n)
{
    return n->nargs == 0 || nm->name[n->id] != 0;
}

/* ---- the SSA listing of --dump=ir ---- */

static void dump_init(FILE *out, const IrVar *v, const IrModel *m)
{
    switch (v->init_kind) {
    case IR_INIT_NONE: break;
    case IR_INIT_EXPR:
        fputs(" = ", out);
        ir_print_expr(out, v->init, m);
        break;
    case IR_INIT_NORMAL: fprintf(out, " ~ normal(%g, %g)", v->dist_a, v->dist_b); break;
    case IR_INIT_UNIFORM: fprintf(out, " ~ uniform(%g, %g)", v->dist_a, v->dist_b); break;
    case IR_INIT_GLOROT: fputs(" ~ glorot", out); break;
    case IR_INIT_RADEMACHER: fputs(" ~ rademacher", out); break;
    }
}

static void dump_header(FILE *out, const IrModel *m)
{
    char buf[32];
    fprintf(out, "model %s: %d state%s (ny = %d), %d param%s (np = %d)\n", m->name ? m->name : "?",
            m->n_states, m->n_states == 1 ? "" : "s", m->ny, m->n_params,
            m->n_params == 1 ? "" : "s", m->np);
    for (int i = 0; i < m->n_states; i++) {
        fprintf(out, "  state %s : %s @%d", m->states[i].name, ir_shape_str(m->states[i].shape, buf),
                m->states[i].offset);
        dump_init(out, &m->states[i], m);
        fputc('\n', out);
    }
    for (int i = 0; i < m->n_params; i++) {
        fprintf(out, "  param %s : %s @%d", m->params[i].name, ir_shape_str(m->params[i].shape, buf),
                m->params[i].offset);
        dump_init(out, &m->params[i], m);
        fputc('\n', out);
    }
}

static void dump_args(FILE *out, const IrNode *n, const char *sep)
{
    for (int i = 0; i < n->nargs; i++)
        fprintf(out, "%s%%%d", i ? sep : "", n->args[i]->id);
}

/* "%5 = tanh %4", "%6 = %3 @ %5", "%7 = %2[0:2]". */
static void dump_node(FILE *out, const IrNode *n, const IrModel *m)
{
    char buf[32];
    fprintf(out, "  %%%d = ", n->id);
    IrOpClass cls = ir_op_class(n->op);
    if (n->op == IR_CONST) {
        fputs("const ", out);
        print_const(out, n);
    } else if (n->op == IR_STATE || n->op == IR_PARAM) {
        fprintf(out, "%s ", ir_op_name(n->op));
        print_leaf(out, n, m);
    } else if (cls == IR_LEAF) {
        print_leaf(out, n, m);
    } else if ((cls == IR_BINARY && !ir_op_is_call(n->op)) || n->op == IR_MATMUL) {
        fprintf(out, "%%%d %s %%%d", n->args[0]->id, op_syms[n->op], n->args[1]->id);
    } else if (n->op == IR_SLICE) {
        fprintf(out, "%%%d", n->args[0]->id);
        print_slice_index(out, n);
    } else if (n->op == IR_PAD) {
        fprintf(out, "pad %%%d at (%d, %d)", n->args[0]->id, n->attr[0], n->attr[1]);
    } else {
        fprintf(out, "%s ", ir_op_name(n->op));
        dump_args(out, n, ", ");
        if (is_tensor_op(n->op))
            print_tensor_attrs(out, n);
    }
    fprintf(out, "  : %s\n", ir_shape_str(n->shape, buf));
}

void ir_dump_roots(FILE *out, const IrModel *m, int n, const char *const *labels,
                   IrNode *const *roots)
{
    int max_id = -1;
    for (int i = 0; i < n; i++)
        if (roots[i] && roots[i]->id > max_id)
            max_id = roots[i]->id;
    bool *printed = calloc((size_t)max_id + 2, sizeof *printed);
    Arena *scratch = arena_new();
    for (int i = 0; i < n; i++) {
        IrNode *root = roots[i], **order;
        int count = root ? ir_topo_order(scratch, 1, &root, &order) : 0;
        for (int j = 0; j < count; j++) {
            if (!printed[order[j]->id])
                dump_node(out, order[j], m);
            printed[order[j]->id] = true;
        }
        if (root)
            fprintf(out, "  %s = %%%d\n", labels[i], root->id);
        else
            fprintf(out, "  %s = <missing>\n", labels[i]);
    }
    arena_free(scratch);
    free(printed);
}

void ir_dump_model(FILE *out, const IrModel *m)
{
    dump_header(out, m);
    Arena *scratch = arena_new();
    int n = m->n_states;
    const char **labels = arena_alloc(scratch, sizeof *labels * (size_t)(n + 1));
    IrNode **roots = arena_alloc(scratch, sizeof *roots * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        size_t len = strlen(m->states[i].name) + 8;
        char *label = arena_alloc(scratch, len);
        const IrVar *v = &m->states[i];
        if (v->velocity_of) /* a second-order state's velocity: its rhs is the acceleration */
            snprintf(label, len, "d2%s/dt2", m->states[v->velocity_of - 1].name);
        else
            snprintf(label, len, "d%s/dt", v->name);
        labels[i] = label;
        roots[i] = m->rhs ? m->rhs[i] : NULL;
    }
    ir_dump_roots(out, m, n, labels, roots);
    arena_free(scratch);
}
