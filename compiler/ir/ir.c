/* The IR builder: hash-consed construction of expression nodes, simplifying
 * as it builds (QBE fold.c, tinygrad's symbolic rewrites). Every constructor
 * checks shapes (a violation is an internal error: sema has already reported the
 * user's), folds all-constant operands through the interpreter's own kernel
 * (ir_eval_op) so that folding and evaluation cannot disagree, applies the
 * algebraic identities, and only then looks the node up in the hash table.
 * Also the operands-first node order (ir_topo_order) that the planner, eval,
 * diff and the dump walk in. */
#include "ir.h"
#include "ir_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct IrBuilder {
    Arena *arena;
    IrNode **buckets;
    int nbuckets; /* a power of two */
    int count;    /* nodes created so far: the next node's id */
    /* Where sema built the nodes that have no useful derivative (floor, argmax),
     * so a derivative that needs one can be reported at its source. */
    struct IrOrigin {
        const IrNode *node;
        SrcLoc loc;
    } *origins;
    int n_origins, cap_origins;
};

enum { IR_FIRST_BUCKETS = 256 };

/* ---- op tables (from ir_ops.def) ---- */

static const IrOpClass op_classes[IR_OP_COUNT] = {
#define X(name, arity, print, cls) IR_##cls,
#include "ir_ops.def"
#undef X
};

static const char *const op_upper_names[IR_OP_COUNT] = {
#define X(name, arity, print, cls) #name,
#include "ir_ops.def"
#undef X
};

/* Lower-case names ("add", "tanh", "matmul"), derived once from the X-macro
 * names so the table cannot fall out of step with ir_ops.def. */
const char *ir_op_name(IrOp op)
{
    static char names[IR_OP_COUNT][16];
    if ((unsigned)op >= IR_OP_COUNT)
        return "?";
    if (!names[op][0]) {
        const char *s = op_upper_names[op];
        size_t i = 0;
        for (; s[i] && i + 1 < sizeof names[op]; i++)
            names[op][i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        names[op][i] = 0;
    }
    return names[op];
}

IrOpClass ir_op_class(IrOp op)
{
    if ((unsigned)op >= IR_OP_COUNT)
        IR_FAIL("bad op %d", (int)op);
    return op_classes[op];
}

bool ir_op_is_call(IrOp op)
{
    return op == IR_MIN || op == IR_MAX || op == IR_ATAN2;
}

/* ---- shapes ---- */

IrShape ir_scalar_shape(void)
{
    return (IrShape){.rank = 0, .rows = 1, .cols = 1};
}

IrShape ir_vector_shape(int n)
{
    if (n < 1 || n > IR_MAX_ELEMENTS)
        IR_FAIL("vector of length %d", n);
    return (IrShape){.rank = 1, .rows = n, .cols = 1};
}

IrShape ir_matrix_shape(int m, int n)
{
    if (m < 1 || n < 1 || (int64_t)m * n > IR_MAX_ELEMENTS)
        IR_FAIL("matrix of shape [%d, %d]", m, n);
    return (IrShape){.rank = 2, .rows = m, .cols = n};
}

IrShape ir_tensor_shape(int rank, const int *dims)
{
    if (rank == 0)
        return ir_scalar_shape();
    if (rank == 1)
        return ir_vector_shape(dims[0]);
    if (rank == 2)
        return ir_matrix_shape(dims[0], dims[1]);
    if (rank > IR_MAX_RANK)
        IR_FAIL("a shape of rank %d", rank);
    IrShape s = {.rank = rank, .rows = dims[0], .cols = 1};
    int64_t size = dims[0];
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 1)
            IR_FAIL("dimension %d of a rank-%d shape is %d", i, rank, dims[i]);
        s.dim[i] = dims[i];
        if (i > 0)
            size *= dims[i];
        if (size > IR_MAX_ELEMENTS)
            IR_FAIL("a rank-%d shape of more than %d elements", rank, IR_MAX_ELEMENTS);
        if (i > 0)
            s.cols *= dims[i];
    }
    return s;
}

int ir_shape_dim(IrShape s, int i)
{
    if (i < 0 || i >= s.rank)
        IR_FAIL("dimension %d of a rank-%d shape", i, s.rank);
    if (s.rank >= 3)
        return s.dim[i];
    return i == 0 ? s.rows : s.cols;
}

int ir_shape_size(IrShape s)
{
    return s.rows * s.cols;
}

bool ir_shape_eq(IrShape a, IrShape b)
{
    if (a.rank != b.rank || a.rows != b.rows || a.cols != b.cols)
        return false;
    for (int i = 1; a.rank >= 3 && i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

const char *ir_shape_str(IrShape s, char *buf)
{
    if (s.rank == 0) {
        snprintf(buf, 32, "scalar");
        return buf;
    }
    int at = snprintf(buf, 32, "[%d", ir_shape_dim(s, 0));
    for (int i = 1; i < s.rank && at < 32; i++)
        at += snprintf(buf + at, 32 - (size_t)at, ", %d", ir_shape_dim(s, i));
    if (at < 31)
        snprintf(buf + at, 32 - (size_t)at, "]");
    return buf;
}

/* ---- hash-consing ---- */

IrBuilder *ir_builder_new(Arena *arena)
{
    IrBuilder *b = arena_alloc(arena, sizeof *b);
    b->arena = arena;
    b->nbuckets = IR_FIRST_BUCKETS;
    b->buckets = arena_alloc(arena, sizeof *b->buckets * (size_t)b->nbuckets);
    return b;
}

void ir_set_origin(IrBuilder *b, const IrNode *n, SrcLoc loc)
{
    if (ir_origin(b, n))
        return; /* a hash-consed node keeps the first place it was written */
    if (b->n_origins == b->cap_origins) {
        int cap = b->cap_origins ? 2 * b->cap_origins : 16;
        struct IrOrigin *grown = arena_alloc(b->arena, sizeof *grown * (size_t)cap);
        if (b->n_origins)
            memcpy(grown, b->origins, sizeof *grown * (size_t)b->n_origins);
        b->origins = grown;
        b->cap_origins = cap;
    }
    b->origins[b->n_origins++] = (struct IrOrigin){n, loc};
}

const SrcLoc *ir_origin(const IrBuilder *b, const IrNode *n)
{
    for (int i = 0; i < b->n_origins; i++)
        if (b->origins[i].node == n)
            return &b->origins[i].loc;
    return NULL;
}

int ir_node_count(const IrBuilder *b)
{
    return b->count;
}

Arena *ir_builder_arena(const IrBuilder *b)
{
    return b->arena;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0x100000001b3ull;
}

/* mix's multiply moves bits only upwards, so inputs that differ in their high
 * bits alone (round doubles: 1.0, 2.0, 3.0 differ in exponent and leading
 * mantissa bits) would share the low bits that pick a bucket. MurmurHash3's
 * 64-bit finaliser brings every bit down. */
static uint64_t finalise(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Operands hash by id, not address, so tables behave the same on every run. */
static uint64_t node_hash(const IrNode *k)
{
    uint64_t h = mix(1469598103934665603ull, (uint64_t)k->op);
    h = mix(h, (uint64_t)k->shape.rank << 40 ^ (uint64_t)k->shape.rows << 20 ^ (uint64_t)k->shape.cols);
    h = mix(h, (uint64_t)(unsigned)k->slot << 32 ^ (uint64_t)(unsigned)k->offset);
    h = mix(h, (uint64_t)(unsigned)k->attr[0] << 32 ^ (uint64_t)(unsigned)k->attr[1]);
    h = mix(h, (uint64_t)(unsigned)k->attr[2] << 32 ^ (uint64_t)(unsigned)k->attr[3]);
    for (int i = 1; k->shape.rank >= 3 && i < k->shape.rank; i++)
        h = mix(h, (uint64_t)(unsigned)k->shape.dim[i]);
    for (int i = 0; i < k->nargs; i++)
        h = mix(h, (uint64_t)k->args[i]->id);
    if (k->op == IR_CONST) {
        int size = ir_shape_size(k->shape);
        for (int i = 0; i < size; i++) {
            uint64_t bits;
            memcpy(&bits, &k->value[i], sizeof bits);
            h = mix(h, bits);
        }
    }
    return finalise(h);
}

/* Constants compare by bit pattern: -0 and 0 stay distinct (1/x differs), and
 * a NaN constant equals itself. */
static bool node_eq(const IrNode *a, const IrNode *k)
{
    if (a->hash != k->hash || a->op != k->op || !ir_shape_eq(a->shape, k->shape) ||
        a->slot != k->slot || a->offset != k->offset ||
        memcmp(a->attr, k->attr, sizeof k->attr) != 0 || a->nargs != k->nargs)
        return false;
    if (k->nargs && memcmp(a->args, k->args, sizeof *k->args * (size_t)k->nargs) != 0)
        return false;
    if (k->op == IR_CONST)
        return memcmp(a->value, k->value, sizeof *k->value * (size_t)ir_shape_size(k->shape)) == 0;
    return true;
}

static void table_grow(IrBuilder *b)
{
    int n = b->nbuckets * 2;
    IrNode **buckets = arena_alloc(b->arena, sizeof *buckets * (size_t)n);
    for (int i = 0; i < b->nbuckets; i++) {
        for (IrNode *e = b->buckets[i], *next; e; e = next) {
            next = e->next_in_bucket;
            IrNode **slot = &buckets[e->hash & (uint64_t)(n - 1)];
            e->next_in_bucket = *slot;
            *slot = e;
        }
    }
    b->buckets = buckets; /* the old array is abandoned to the arena */
    b->nbuckets = n;
}

static unsigned node_flags(const IrNode *k)
{
    bool batched = (k->op == IR_STATE || k->op == IR_ADJOINT || k->op == IR_DATA) && !k->attr[0];
    unsigned flags = batched ? IR_BATCHED : k->op == IR_TIME ? IR_TIMED : 0;
    for (int i = 0; i < k->nargs; i++)
        flags |= k->args[i]->flags;
    return flags;
}

/* Returns the node equal to the template k, creating it (with arena copies of
 * k's operand and value arrays) when it does not exist yet. */
static IrNode *intern(IrBuilder *b, IrNode *k)
{
    k->hash = node_hash(k);
    IrNode **bucket = &b->buckets[k->hash & (uint64_t)(b->nbuckets - 1)];
    for (IrNode *e = *bucket; e; e = e->next_in_bucket)
        if (node_eq(e, k))
            return e;
    IrNode *n = arena_alloc(b->arena, sizeof *n);
    *n = *k;
    if (k->nargs) {
        n->args = arena_alloc(b->arena, sizeof *n->args * (size_t)k->nargs);
        memcpy(n->args, k->args, sizeof *n->args * (size_t)k->nargs);
    }
    if (k->op == IR_CONST) {
        size_t bytes = sizeof *n->value * (size_t)ir_shape_size(k->shape);
        n->value = arena_alloc(b->arena, bytes);
        memcpy(n->value, k->value, bytes);
    }
    n->flags = node_flags(k);
    n->id = b->count++;
    n->next_in_bucket = *bucket;
    *bucket = n;
    if (b->count > b->nbuckets)
        table_grow(b);
    return n;
}

IrNode ir_node_template(IrOp op, IrShape shape, int nargs, IrNode **args)
{
    return (IrNode){.op = op, .shape = shape, .nargs = nargs, .args = args};
}

/* ---- leaves ---- */

IrNode *ir_const(IrBuilder *b, IrShape shape, const double *values)
{
    IrNode k = ir_node_template(IR_CONST, shape, 0, NULL);
    k.value = (double *)values; /* only read: intern copies it */
    return intern(b, &k);
}

IrNode *ir_scalar(IrBuilder *b, double v)
{
    return ir_const(b, ir_scalar_shape(), &v);
}

IrNode *ir_fill(IrBuilder *b, IrShape shape, double v)
{
    int size = ir_shape_size(shape);
    double *values = malloc(sizeof *values * (size_t)size);
    if (!values)
        IR_FAIL("out of memory");
    for (int i = 0; i < size; i++)
        values[i] = v;
    IrNode *n = ir_const(b, shape, values);
    free(values);
    return n;
}

IrNode *ir_time(IrBuilder *b)
{
    IrNode k = ir_node_template(IR_TIME, ir_scalar_shape(), 0, NULL);
    return intern(b, &k);
}

/* A variable's leaf; shared (attr[0] = 1): a shared state's or its cotangent's. */
static IrNode *leaf_of(IrBuilder *b, IrOp op, int slot, int offset, IrShape shape, int shared)
{
    if (slot < 0 || offset < 0)
        IR_FAIL("%s%s leaf with slot %d, offset %d", shared ? "shared " : "", ir_op_name(op),
                slot, offset);
    IrNode k = ir_node_template(op, shape, 0, NULL);
    k.slot = slot;
    k.offset = offset;
    k.attr[0] = shared;
    return intern(b, &k);
}

static IrNode *variable(IrBuilder *b, IrOp op, int slot, int offset, IrShape shape)
{
    return leaf_of(b, op, slot, offset, shape, 0);
}

IrNode *ir_state(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return variable(b, IR_STATE, slot, offset, shape);
}

IrNode *ir_param(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return variable(b, IR_PARAM, slot, offset, shape);
}

IrNode *ir_adjoint(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return variable(b, IR_ADJOINT, slot, offset, shape);
}

IrNode *ir_data(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return variable(b, IR_DATA, slot, offset, shape);
}

/* A shared leaf: offset into the shared block, not batched (node_flags). */
IrNode *ir_shared_state(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return leaf_of(b, IR_STATE, slot, offset, shape, 1);
}

IrNode *ir_shared_adjoint(IrBuilder *b, int slot, int offset, IrShape shape)
{
    return leaf_of(b, IR_ADJOINT, slot, offset, shape, 1);
}

bool ir_is_shared(const IrNode *n)
{
    return (n->op == IR_STATE || n->op == IR_ADJOINT) && n->attr[0] == 1;
}

IrNode *ir_model_state(IrBuilder *b, const IrModel *m, int i)
{
    const IrVar *v = &m->states[i];
    return v->shared ? ir_shared_state(b, i, v->offset, v->shape)
                     : ir_state(b, i, v->offset, v->shape);
}

IrNode *ir_model_adjoint(IrBuilder *b, const IrModel *m, int i)
{
    const IrVar *v = &m->states[i];
    return v->shared ? ir_shared_adjoint(b, i, v->offset, v->shape)
                     : ir_adjoint(b, i, v->offset, v->shape);
}

bool ir_model_autonomous(const IrModel *m)
{
    for (int i = 0; i < m->n_states; i++)
        if (m->rhs[i]->flags & IR_TIMED)
            return false;
    return true;
}

int ir_model_second_order(const IrModel *m)
{
    int half = m->n_states / 2;
    if (m->ns != 0 || m->n_states % 2 != 0 || m->n_states == 0)
        return 0;
    for (int i = 0; i < half; i++)
        if (m->states[i].velocity_of != 0 || m->states[half + i].velocity_of != i + 1)
            return 0;
    return 1;
}

bool ir_is_const(const IrNode *n)
{
    return n && n->op == IR_CONST;
}

bool ir_is_const_value(const IrNode *n, double v)
{
    if (!ir_is_const(n))
        return false;
    int size = ir_shape_size(n->shape);
    for (int i = 0; i < size; i++)
        if (n->value[i] != v)
            return false;
    return true;
}

/* ---- folding and finishing ---- */

/* Evaluates the template k on its constant operands with the interpreter's
 * kernel and returns the resulting constant. */
static IrNode *fold(IrBuilder *b, const IrNode *k)
{
    int size = ir_shape_size(k->shape);
    double *out = malloc(sizeof *out * (size_t)size);
    const double **vals = malloc(sizeof *vals * (size_t)k->nargs);
    if (!out || !vals)
        IR_FAIL("out of memory");
    for (int i = 0; i < k->nargs; i++)
        vals[i] = k->args[i]->value;
    ir_eval_op(k, vals, out);
    IrNode *n = ir_const(b, k->shape, out);
    free(vals);
    free(out);
    return n;
}

IrNode *ir_finish(IrBuilder *b, IrNode *k)
{
    bool all_const = k->nargs > 0;
    for (int i = 0; i < k->nargs && all_const; i++)
        all_const = ir_is_const(k->args[i]);
    return all_const ? fold(b, k) : intern(b, k);
}

static bool all_const(int n, IrNode *const *args)
{
    for (int i = 0; i < n; i++)
        if (!ir_is_const(args[i]))
            return false;
    return true;
}

/* x stands for a result of shape s only when it already has that shape (a
 * scalar x cannot replace `x + zeros(3)`: there is no implicit broadcast node). */
static IrNode *keep(IrNode *x, IrShape s)
{
    return ir_shape_eq(x->shape, s) ? x : NULL;
}

static void check_arg(const IrNode *x, const char *what)
{
    if (!x)
        IR_FAIL("NULL operand of %s", what);
}

/* ---- elementwise ---- */

IrNode *ir_unary(IrBuilder *b, IrOp op, IrNode *x)
{
    if (ir_op_class(op) != IR_UNARY)
        IR_FAIL("ir_unary with %s", ir_op_name(op));
    check_arg(x, ir_op_name(op));
    if (op == IR_NEG && x->op == IR_NEG)
        return x->args[0];
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(op, x->shape, 1, args);
    return ir_finish(b, &k);
}

/* Equal shapes, or scalars that broadcast to the other operands' shape. */
static IrShape broadcast(int n, IrNode *const *args, IrOp op)
{
    IrShape s = ir_scalar_shape();
    for (int i = 0; i < n; i++) {
        check_arg(args[i], ir_op_name(op));
        IrShape a = args[i]->shape;
        if (a.rank == 0)
            continue;
        if (s.rank != 0 && !ir_shape_eq(s, a)) {
            char b1[32], b2[32];
            IR_FAIL("%s of shapes %s and %s", ir_op_name(op), ir_shape_str(s, b1),
                    ir_shape_str(a, b2));
        }
        s = a;
    }
    return s;
}

static bool is_commutative(IrOp op)
{
    return op == IR_ADD || op == IR_MUL || op == IR_EQ || op == IR_NE;
}

/* The canonical operand order of a commutative op, a function of the unordered
 * pair so that x*y and y*x share. It also decides how the sum prints, so it
 * follows how people write: a constant factor first (2 * x), a constant term
 * last (x + 1), an expression before a variable (W @ x + b, 2 * x * t), and
 * otherwise creation order (x + y). */
static bool swap_operands(IrOp op, const IrNode *x, const IrNode *y)
{
    bool cx = ir_is_const(x), cy = ir_is_const(y);
    if (cx != cy)
        return op == IR_MUL ? cy : cx;
    bool lx = x->nargs == 0, ly = y->nargs == 0;
    if (lx != ly)
        return lx;
    return x->id > y->id;
}

/* A vector read as pieces [start, start + len), each an operand or zeros
 * (node NULL): a pad, a concatenation, or anything else as one piece. */
typedef struct Piece {
    int start, len;
    IrNode *node;
} Piece;

static int vector_pieces(IrNode *v, Piece *out)
{
    int n = 0, at = 0;
    if (v->op == IR_PAD) {
        IrNode *in = v->args[0];
        if (v->attr[0] > 0)
            out[n++] = (Piece){0, v->attr[0], NULL};
        out[n++] = (Piece){v->attr[0], in->shape.rows, in};
        at = v->attr[0] + in->shape.rows;
        if (at < v->shape.rows)
            out[n++] = (Piece){at, v->shape.rows - at, NULL};
        return n;
    }
    if (v->op != IR_CONCAT) {
        out[0] = (Piece){0, v->shape.rows, ir_is_const_value(v, 0) ? NULL : v};
        return 1;
    }
    for (int i = 0; i < v->nargs; at += v->args[i]->shape.rows, i++)
        out[n++] = (Piece){at, v->args[i]->shape.rows, ir_is_const_value(v->args[i], 0) ? NULL : v->args[i]};
    return n;
}

/* The part [pos, pos + len) of piece p, as a concatenation operand. */
static IrNode *piece_part(IrBuilder *b, Piece p, int pos, int len)
{
    if (!p.node)
        return ir_fill(b, ir_vector_shape(len), 0);
    if (p.node->shape.rank == 0)
        return p.node;
    return ir_slice(b, p.node, pos - p.start, 0, ir_vector_shape(len));
}

/* Walks the pieces of x and y together; NULL when both are nonzero somewhere. */
static IrNode *merge_pieces(IrBuilder *b, Piece *px, int nx, Piece *py, int ny, IrNode **parts)
{
    int i = 0, j = 0, n = 0;
    for (int pos = 0; i < nx && j < ny;) {
        int end_x = px[i].start + px[i].len, end_y = py[j].start + py[j].len;
        int end = end_x < end_y ? end_x : end_y;
        if (px[i].node && py[j].node)
            return NULL;
        parts[n++] = piece_part(b, px[i].node ? px[i] : py[j], pos, end - pos);
        pos = end;
        i += end == end_x;
        j += end == end_y;
    }
    return ir_concat(b, n, parts);
}

/* Cotangents of slices are pads, and pads of disjoint parts add up to a
 * concatenation: pad(a, 0, [2]) + pad(b, 1, [2]) is [a, b]. Cheaper to run and
 * to read than sums of mostly-zero vectors. */
static IrNode *add_disjoint(IrBuilder *b, IrNode *x, IrNode *y)
{
    bool px = x->op == IR_PAD || x->op == IR_CONCAT, py = y->op == IR_PAD || y->op == IR_CONCAT;
    if (x->shape.rank != 1 || !ir_shape_eq(x->shape, y->shape) || !(px && py))
        return NULL;
    if ((x->op == IR_PAD && x->args[0]->shape.rank > 1) || (y->op == IR_PAD && y->args[0]->shape.rank > 1))
        return NULL;
    int cap = (x->op == IR_CONCAT ? x->nargs : 3) + (y->op == IR_CONCAT ? y->nargs : 3);
    Piece *pieces = malloc(sizeof *pieces * (size_t)cap);
    IrNode **parts = malloc(sizeof *parts * (size_t)cap);
    if (!pieces || !parts)
        IR_FAIL("out of memory");
    int nx = vector_pieces(x, pieces);
    int ny = vector_pieces(y, pieces + nx);
    IrNode *r = merge_pieces(b, pieces, nx, pieces + nx, ny, parts);
    free(pieces);
    free(parts);
    return r;
}

static IrNode *simplify_add(IrBuilder *b, IrNode *x, IrNode *y, IrShape s)
{
    if (ir_is_const_value(y, 0) && keep(x, s))
        return x;
    if (ir_is_const_value(x, 0) && keep(y, s))
        return y;
    IrNode *joined = add_disjoint(b, x, y);
    if (joined)
        return joined;
    /* (u + pad) + pad: join the pads, as cotangents accumulate one by one */
    for (int side = 0; side < 2; side++) {
        IrNode *sum = side ? y : x, *other = side ? x : y;
        for (int i = 0; i < 2 && sum->op == IR_ADD; i++) {
            joined = add_disjoint(b, sum->args[i], other);
            if (joined)
                return ir_add(b, sum->args[1 - i], joined);
        }
    }
    if (y->op == IR_NEG) /* x + -y -> x - y */
        return ir_sub(b, x, y->args[0]);
    if (x->op == IR_NEG) /* -x + y -> y - x */
        return ir_sub(b, y, x->args[0]);
    return NULL;
}

static IrNode *simplify_sub(IrBuilder *b, IrNode *x, IrNode *y, IrShape s)
{
    if (ir_is_const_value(y, 0) && keep(x, s))
        return x;
    if (ir_is_const_value(x, 0) && keep(y, s))
        return ir_neg(b, y);
    if (x == y)
        return ir_fill(b, s, 0);
    if (y->op == IR_NEG) /* x - -y -> x + y */
        return ir_add(b, x, y->args[0]);
    return NULL;
}

/* x * 0 -> 0 takes x to be finite, as tinygrad and computer algebra systems
 * do: the derivatives this IR carries are full of such products. */
static IrNode *simplify_mul(IrBuilder *b, IrNode *x, IrNode *y, IrShape s)
{
    if (ir_is_const_value(x, 0) || ir_is_const_value(y, 0))
        return ir_fill(b, s, 0);
    if (ir_is_const_value(y, 1) && keep(x, s))
        return x;
    if (ir_is_const_value(x, 1) && keep(y, s))
        return y;
    if (ir_is_const_value(y, -1) && keep(x, s))
        return ir_neg(b, x);
    if (ir_is_const_value(x, -1) && keep(y, s))
        return ir_neg(b, y);
    /* negations move out of products (c * -x -> -c * x, x * -y -> -(x * y)),
     * where additions absorb them: a - b rather than a + x * -y */
    if (ir_is_const(x) && y->op == IR_NEG)
        return ir_mul(b, ir_neg(b, x), y->args[0]);
    if (y->op == IR_NEG)
        return ir_neg(b, ir_mul(b, x, y->args[0]));
    if (x->op == IR_NEG)
        return ir_neg(b, ir_mul(b, x->args[0], y));
    return NULL;
}

static IrNode *simplify_binary(IrBuilder *b, IrOp op, IrNode *x, IrNode *y, IrShape s)
{
    switch (op) {
    case IR_ADD: return simplify_add(b, x, y, s);
    case IR_SUB: return simplify_sub(b, x, y, s);
    case IR_MUL: return simplify_mul(b, x, y, s);
    case IR_DIV: return ir_is_const_value(y, 1) ? keep(x, s) : NULL;
    case IR_POW:
        if (ir_is_const_value(y, 0))
            return ir_fill(b, s, 1);
        return ir_is_const_value(y, 1) ? keep(x, s) : NULL;
    default: return NULL;
    }
}

IrNode *ir_binary(IrBuilder *b, IrOp op, IrNode *x, IrNode *y)
{
    if (ir_op_class(op) != IR_BINARY)
        IR_FAIL("ir_binary with %s", ir_op_name(op));
    IrNode *args[2] = {x, y};
    IrShape s = broadcast(2, args, op);
    if (is_commutative(op) && swap_operands(op, x, y)) {
        args[0] = y;
        args[1] = x;
    }
    IrNode k = ir_node_template(op, s, 2, args);
    if (all_const(2, args))
        return fold(b, &k);
    IrNode *r = simplify_binary(b, op, args[0], args[1], s);
    return r ? r : intern(b, &k);
}

IrNode *ir_add(IrBuilder *b, IrNode *x, IrNode *y) { return ir_binary(b, IR_ADD, x, y); }
IrNode *ir_sub(IrBuilder *b, IrNode *x, IrNode *y) { return ir_binary(b, IR_SUB, x, y); }
IrNode *ir_mul(IrBuilder *b, IrNode *x, IrNode *y) { return ir_binary(b, IR_MUL, x, y); }
IrNode *ir_div(IrBuilder *b, IrNode *x, IrNode *y) { return ir_binary(b, IR_DIV, x, y); }
IrNode *ir_neg(IrBuilder *b, IrNode *x) { return ir_unary(b, IR_NEG, x); }

static bool all_nonzero(const IrNode *c)
{
    int size = ir_shape_size(c->shape);
    for (int i = 0; i < size; i++)
        if (c->value[i] == 0)
            return false;
    return true;
}

/* A constant condition whose elements all agree picks its branch outright
 * (as the interpreter does: nonzero, NaN included, selects x). */
IrNode *ir_where(IrBuilder *b, IrNode *c, IrNode *x, IrNode *y)
{
    IrNode *args[3] = {c, x, y};
    IrShape s = broadcast(3, args, IR_WHERE);
    IrNode k = ir_node_template(IR_WHERE, s, 3, args);
    if (all_const(3, args))
        return fold(b, &k);
    IrNode *r = NULL;
    if (x == y)
        r = keep(x, s);
    else if (ir_is_const(c) && all_nonzero(c))
        r = keep(x, s);
    else if (ir_is_const_value(c, 0))
        r = keep(y, s);
    return r ? r : intern(b, &k);
}

/* ---- linear algebra and reductions ---- */

static IrShape matmul_shape(IrShape x, IrShape y)
{
    char b1[32], b2[32];
    int inner_x = x.rank == 2 ? x.cols : x.rows; /* [m,n] or [n] */
    if (x.rank == 0 || y.rank == 0 || inner_x != y.rows)
        IR_FAIL("matmul of shapes %s and %s", ir_shape_str(x, b1), ir_shape_str(y, b2));
    if (x.rank == 2 && y.rank == 2)
        return ir_matrix_shape(x.rows, y.cols);
    if (x.rank == 2)
        return ir_vector_shape(x.rows);
    if (y.rank == 2)
        return ir_vector_shape(y.cols);
    return ir_scalar_shape();
}

/* A vector s * e_i (a pad of a scalar, or a constant with one nonzero element):
 * returns s and sets *i, or NULL. Derivatives are full of these: the unit
 * cotangents of divergences and Jacobians, and the cotangents of elements. */
static IrNode *one_hot(IrBuilder *b, IrNode *v, int *i)
{
    if (v->shape.rank != 1)
        return NULL;
    if (v->op == IR_PAD && v->args[0]->shape.rank == 0) {
        *i = v->attr[0];
        return v->args[0];
    }
    if (!ir_is_const(v))
        return NULL;
    int nz = -1;
    for (int k = 0; k < v->shape.rows; k++) {
        if (v->value[k] != 0 && nz >= 0)
            return NULL;
        nz = v->value[k] != 0 ? k : nz;
    }
    if (nz < 0)
        return NULL;
    *i = nz;
    return ir_scalar(b, v->value[nz]);
}

/* Row i of a matrix as a vector: slices of a matrix are column segments, so
 * it is column i of the transpose (the source itself for a transpose). */
static IrNode *row_of(IrBuilder *b, IrNode *m, int i)
{
    return ir_slice(b, ir_transpose(b, m), 0, i, ir_vector_shape(m->shape.cols));
}

static IrNode *column_of(IrBuilder *b, IrNode *m, int j)
{
    return ir_slice(b, m, 0, j, ir_vector_shape(m->shape.rows));
}

/* A product with a one-hot vector picks a column, a row or an element. */
static IrNode *matmul_one_hot(IrBuilder *b, IrNode *x, IrNode *y)
{
    int i;
    IrNode *s = one_hot(b, y, &i);
    if (s)
        return ir_mul(b, s, x->shape.rank == 2 ? column_of(b, x, i) : ir_element(b, x, i, 0));
    s = one_hot(b, x, &i);
    if (s)
        return ir_mul(b, s, y->shape.rank == 2 ? row_of(b, y, i) : ir_element(b, y, i, 0));
    return NULL;
}

IrNode *ir_matmul(IrBuilder *b, IrNode *x, IrNode *y)
{
    check_arg(x, "matmul");
    check_arg(y, "matmul");
    IrNode *args[2] = {x, y};
    IrNode k = ir_node_template(IR_MATMUL, matmul_shape(x->shape, y->shape), 2, args);
    if (all_const(2, args))
        return fold(b, &k);
    if (ir_is_const_value(x, 0) || ir_is_const_value(y, 0))
        return ir_fill(b, k.shape, 0);
    IrNode *r = matmul_one_hot(b, x, y);
    return r ? r : intern(b, &k);
}

/* A scalar or vector is its own transpose (as in NumPy): a vector is a column
 * here, and there is no row-vector shape to turn it into. */
IrNode *ir_transpose(IrBuilder *b, IrNode *x)
{
    check_arg(x, "transpose");
    if (x->shape.rank < 2)
        return x;
    if (x->op == IR_TRANSPOSE)
        return x->args[0];
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_TRANSPOSE, ir_matrix_shape(x->shape.cols, x->shape.rows), 1, args);
    return ir_finish(b, &k);
}

IrNode *ir_outer(IrBuilder *b, IrNode *x, IrNode *y)
{
    check_arg(x, "outer");
    check_arg(y, "outer");
    if (x->shape.rank != 1 || y->shape.rank != 1) {
        char b1[32], b2[32];
        IR_FAIL("outer of shapes %s and %s", ir_shape_str(x->shape, b1), ir_shape_str(y->shape, b2));
    }
    IrNode *args[2] = {x, y};
    IrNode k = ir_node_template(IR_OUTER, ir_matrix_shape(x->shape.rows, y->shape.rows), 2, args);
    if (all_const(2, args))
        return fold(b, &k);
    if (ir_is_const_value(x, 0) || ir_is_const_value(y, 0))
        return ir_fill(b, k.shape, 0);
    return intern(b, &k);
}

IrNode *ir_sum(IrBuilder *b, IrNode *x)
{
    check_arg(x, "sum");
    if (x->shape.rank == 0)
        return x;
    if (x->op == IR_NEG)
        return ir_neg(b, ir_sum(b, x->args[0]));
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_SUM, ir_scalar_shape(), 1, args);
    return ir_finish(b, &k);
}

/* The largest element and its index: a scalar is its own maximum, at 0. */
IrNode *ir_reduce_max(IrBuilder *b, IrNode *x)
{
    check_arg(x, "max");
    if (x->shape.rank == 0)
        return x;
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_MAXR, ir_scalar_shape(), 1, args);
    return ir_finish(b, &k);
}

IrNode *ir_argmax(IrBuilder *b, IrNode *x)
{
    check_arg(x, "argmax");
    if (x->shape.rank == 0)
        return ir_scalar(b, 0);
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_ARGMAX, ir_scalar_shape(), 1, args);
    return ir_finish(b, &k);
}

/* ---- slices, concatenation, stacking ---- */

static void check_slice(const IrNode *x, int row0, int col0, IrShape s)
{
    char b1[32], b2[32];
    if (s.rank > x->shape.rank || row0 < 0 || col0 < 0 || row0 + s.rows > x->shape.rows ||
        col0 + s.cols > x->shape.cols || (x->shape.rank < 2 && col0 != 0) ||
        (s.rank < 2 && s.cols != 1))
        IR_FAIL("slice %s at (%d, %d) of shape %s", ir_shape_str(s, b1), row0, col0,
                ir_shape_str(x->shape, b2));
}

/* A slice of a concatenation takes the pieces it overlaps: y[0:2] of
 * concat(a, b, c) with scalars a, b, c is concat(a, b), y[1] is b. */
static IrNode *slice_concat(IrBuilder *b, IrNode *x, int row0, IrShape s)
{
    int end = row0 + s.rows, n = 0;
    IrNode **parts = malloc(sizeof *parts * (size_t)x->nargs);
    if (!parts)
        IR_FAIL("out of memory");
    for (int i = 0, at = 0; i < x->nargs; at += x->args[i]->shape.rows, i++) {
        IrNode *piece = x->args[i];
        int lo = row0 > at ? row0 : at, hi = end < at + piece->shape.rows ? end : at + piece->shape.rows;
        if (lo >= hi)
            continue;
        if (piece->shape.rank == 0)
            parts[n++] = piece;
        else
            parts[n++] = ir_slice(b, piece, lo - at, 0,
                                  s.rank == 0 ? ir_scalar_shape() : ir_vector_shape(hi - lo));
    }
    IrNode *r = s.rank == 0 ? parts[0] : ir_concat(b, n, parts);
    free(parts);
    return r;
}

/* A slice of stacked rows: an element is an element of one row, a submatrix is
 * a stack of row slices. A column segment (vector from a matrix) is left alone. */
static IrNode *slice_stack(IrBuilder *b, IrNode *x, int row0, int col0, IrShape s)
{
    if (s.rank == 0)
        return ir_element(b, x->args[row0], col0, 0);
    if (s.rank == 1)
        return NULL;
    IrNode **rows = malloc(sizeof *rows * (size_t)s.rows);
    if (!rows)
        IR_FAIL("out of memory");
    for (int i = 0; i < s.rows; i++)
        rows[i] = ir_slice(b, x->args[row0 + i], col0, 0, ir_vector_shape(s.cols));
    IrNode *r = ir_stack(b, s.rows, rows);
    free(rows);
    return r;
}

/* A slice of a padded operand: inside the operand it is a slice of the
 * operand, wholly in the zeros it is zeros; a window straddling the border is
 * left as it is. The transposes of slices meet here (the adjoint of y[0:2] of
 * concat(...)), so this keeps derivatives small. */
static IrNode *slice_pad(IrBuilder *b, IrNode *x, int row0, int col0, IrShape s)
{
    IrNode *in = x->args[0];
    int r = row0 - x->attr[0], c = col0 - x->attr[1];
    if (r >= 0 && c >= 0 && r + s.rows <= in->shape.rows && c + s.cols <= in->shape.cols &&
        s.rank <= in->shape.rank)
        return ir_slice(b, in, r, c, s);
    if (r + s.rows <= 0 || r >= in->shape.rows || c + s.cols <= 0 || c >= in->shape.cols)
        return ir_fill(b, s, 0);
    return NULL;
}

/* One element of a product is one dot product: (A @ v)[i] = A[i, :] . v. */
static IrNode *slice_matmul(IrBuilder *b, IrNode *x, int row0, int col0)
{
    IrNode *l = x->args[0], *r = x->args[1];
    if (l->shape.rank == 2 && r->shape.rank == 1)
        return ir_matmul(b, row_of(b, l, row0), r);
    if (l->shape.rank == 1 && r->shape.rank == 2)
        return ir_matmul(b, l, column_of(b, r, row0));
    if (l->shape.rank == 2 && r->shape.rank == 2)
        return ir_matmul(b, row_of(b, l, row0), column_of(b, r, col0));
    return NULL;
}

static IrNode *simplify_slice(IrBuilder *b, IrNode *x, int row0, int col0, IrShape s)
{
    if (row0 == 0 && col0 == 0 && ir_shape_eq(x->shape, s))
        return x;
    if (x->op == IR_SLICE) /* a slice of a slice is one slice of the source */
        return ir_slice(b, x->args[0], x->attr[0] + row0, x->attr[1] + col0, s);
    if (x->op == IR_CONCAT)
        return slice_concat(b, x, row0, s);
    if (x->op == IR_STACK)
        return slice_stack(b, x, row0, col0, s);
    if (x->op == IR_PAD)
        return slice_pad(b, x, row0, col0, s);
    if (x->op == IR_MATMUL && s.rank == 0)
        return slice_matmul(b, x, row0, col0);
    return NULL;
}

IrNode *ir_slice(IrBuilder *b, IrNode *x, int row0, int col0, IrShape shape)
{
    check_arg(x, "slice");
    check_slice(x, row0, col0, shape);
    IrNode *r = simplify_slice(b, x, row0, col0, shape);
    if (r)
        return r;
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_SLICE, shape, 1, args);
    k.attr[0] = row0;
    k.attr[1] = col0;
    return ir_finish(b, &k);
}

/* The operand must fit inside `shape` at (row0, col0) exactly as a slice of
 * that shape would: pad is the slice's transpose. A pad of a pad is one pad. */
IrNode *ir_pad(IrBuilder *b, IrNode *x, int row0, int col0, IrShape shape)
{
    check_arg(x, "pad");
    IrNode frame = ir_node_template(IR_PAD, shape, 0, NULL);
    check_slice(&frame, row0, col0, x->shape);
    if (row0 == 0 && col0 == 0 && ir_shape_eq(x->shape, shape))
        return x;
    if (ir_is_const_value(x, 0))
        return ir_fill(b, shape, 0);
    if (x->op == IR_PAD)
        return ir_pad(b, x->args[0], row0 + x->attr[0], col0 + x->attr[1], shape);
    if (x->op == IR_NEG) /* negations move outwards, where sums absorb them */
        return ir_neg(b, ir_pad(b, x->args[0], row0, col0, shape));
    IrNode *args[1] = {x};
    IrNode k = ir_node_template(IR_PAD, shape, 1, args);
    k.attr[0] = row0;
    k.attr[1] = col0;
    return ir_finish(b, &k);
}

IrNode *ir_element(IrBuilder *b, IrNode *x, int row, int col)
{
    return ir_slice(b, x, row, col, ir_scalar_shape());
}

/* Nested concatenations are flattened so that slices see every piece. */
static int concat_flatten(int n, IrNode **args, IrNode **flat)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        check_arg(args[i], "concat");
        if (args[i]->shape.rank > 1) {
            char buf[32];
            IR_FAIL("concat of a %s matrix", ir_shape_str(args[i]->shape, buf));
        }
        if (args[i]->op == IR_CONCAT) {
            memcpy(flat + m, args[i]->args, sizeof *flat * (size_t)args[i]->nargs);
            m += args[i]->nargs;
        } else {
            flat[m++] = args[i];
        }
    }
    return m;
}

static int count_flat(int n, IrNode **args)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        m += args[i] && args[i]->op == IR_CONCAT ? args[i]->nargs : 1;
    return m;
}

/* The vector p is a view of, or NULL; *lo is where the view starts. */
static IrNode *vector_view(IrNode *p, int *lo)
{
    *lo = 0;
    if (p->op == IR_SLICE && p->args[0]->shape.rank == 1) {
        *lo = p->attr[0];
        return p->args[0];
    }
    return p->shape.rank == 1 ? p : NULL;
}

/* Adjacent pieces of one vector join into one slice: [y[0], y[1]] is y[0:2],
 * which is y itself when y has two elements. Returns the new piece count. */
static int concat_merge(IrBuilder *b, int m, IrNode **flat)
{
    int out = 0;
    for (int i = 0; i < m;) {
        int lo, next_lo;
        IrNode *src = vector_view(flat[i], &lo);
        int j = i + 1, end = lo + flat[i]->shape.rows;
        while (src && j < m && vector_view(flat[j], &next_lo) == src && next_lo == end)
            end += flat[j++]->shape.rows;
        flat[out++] = j - i > 1 ? ir_slice(b, src, lo, 0, ir_vector_shape(end - lo)) : flat[i];
        i = j;
    }
    return out;
}

IrNode *ir_concat(IrBuilder *b, int n, IrNode **args)
{
    if (n < 1 || !args)
        IR_FAIL("concat of %d operands", n);
    if (n == 1 && args[0] && args[0]->shape.rank == 1)
        return args[0];
    IrNode **flat = malloc(sizeof *flat * (size_t)count_flat(n, args));
    if (!flat)
        IR_FAIL("out of memory");
    int m = concat_merge(b, concat_flatten(n, args, flat), flat), len = 0;
    if (m == 1 && flat[0]->shape.rank == 1) {
        IrNode *only = flat[0];
        free(flat);
        return only;
    }
    for (int i = 0; i < m; i++)
        len += flat[i]->shape.rows;
    IrNode k = ir_node_template(IR_CONCAT, ir_vector_shape(len), m, flat);
    IrNode *r = ir_finish(b, &k);
    free(flat);
    return r;
}

/* Stacked scalars are a concatenation, built as one so the two forms share. */
IrNode *ir_stack(IrBuilder *b, int n, IrNode **args)
{
    if (n < 1 || !args)
        IR_FAIL("stack of %d operands", n);
    for (int i = 0; i < n; i++) {
        check_arg(args[i], "stack");
        if (args[i]->shape.rank > 1 || !ir_shape_eq(args[i]->shape, args[0]->shape)) {
            char b1[32], b2[32];
            IR_FAIL("stack of shapes %s and %s", ir_shape_str(args[0]->shape, b1),
                    ir_shape_str(args[i]->shape, b2));
        }
    }
    if (args[0]->shape.rank == 0)
        return ir_concat(b, n, args);
    IrNode k = ir_node_template(IR_STACK, ir_matrix_shape(n, args[0]->shape.rows), n, args);
    return ir_finish(b, &k);
}

/* ---- topological order ---- */

/* Iterative depth-first search: derived expressions (adjoints of long chains)
 * can be deeper than a comfortable C stack. Each node's operands have smaller
 * ids, so the largest root id bounds every id reached. */
int ir_topo_order(Arena *arena, int n, IrNode *const *roots, IrNode ***order)
{
    int max_id = -1;
    for (int i = 0; i < n; i++)
        if (roots[i] && roots[i]->id > max_id)
            max_id = roots[i]->id;
    int cap = max_id + 1, count = 0, depth = 0;
    IrNode **out = arena_alloc(arena, sizeof *out * (size_t)(cap > 0 ? cap : 1));
    bool *seen = calloc((size_t)(cap > 0 ? cap : 1), sizeof *seen);
    IrNode **stack = malloc(sizeof *stack * (size_t)(cap > 0 ? cap : 1));
    int *next = malloc(sizeof *next * (size_t)(cap > 0 ? cap : 1));
    if (!seen || !stack || !next)
        INTERNAL_ERROR("out of memory");
    for (int r = 0; r < n; r++) {
        if (!roots[r] || seen[roots[r]->id])
            continue;
        seen[roots[r]->id] = true;
        stack[depth] = roots[r];
        next[depth++] = 0;
        while (depth > 0) {
            IrNode *top = stack[depth - 1];
            if (next[depth - 1] < top->nargs) {
                IrNode *arg = top->args[next[depth - 1]++];
                if (!seen[arg->id]) {
                    seen[arg->id] = true;
                    stack[depth] = arg;
                    next[depth++] = 0;
                }
            } else {
                out[count++] = top;
                depth--;
            }
        }
    }
    free(seen);
    free(stack);
    free(next);
    *order = out;
    return count;
}

/* ---- rebuilding with other leaves ---- */

/* n again from new operands x, through its constructor. */
static IrNode *rebuild_node(IrBuilder *b, const IrNode *n, IrNode **x)
{
    switch (n->op) {
    case IR_WHERE: return ir_where(b, x[0], x[1], x[2]);
    case IR_MATMUL: return ir_matmul(b, x[0], x[1]);
    case IR_TRANSPOSE: return ir_transpose(b, x[0]);
    case IR_OUTER: return ir_outer(b, x[0], x[1]);
    case IR_SUM: return ir_sum(b, x[0]);
    case IR_MAXR: return ir_reduce_max(b, x[0]);
    case IR_ARGMAX: return ir_argmax(b, x[0]);
    case IR_SLICE: return ir_slice(b, x[0], n->attr[0], n->attr[1], n->shape);
    case IR_PAD: return ir_pad(b, x[0], n->attr[0], n->attr[1], n->shape);
    case IR_CONCAT: return ir_concat(b, n->nargs, x);
    case IR_STACK: return ir_stack(b, n->nargs, x);
    case IR_RESHAPE: return ir_reshape(b, x[0], n->shape);
    case IR_IM2COL: return ir_im2col(b, x[0], n->attr[0], n->attr[1], n->attr[2], n->attr[3]);
    case IR_COL2IM:
        return ir_col2im(b, x[0], n->shape, n->attr[0], n->attr[1], n->attr[2], n->attr[3]);
    case IR_AVGPOOL: return ir_avg_pool(b, x[0], n->attr[0], n->attr[1], n->attr[2]);
    case IR_AVGPOOL_T: return ir_avg_pool_t(b, x[0], n->shape, n->attr[0], n->attr[1], n->attr[2]);
    case IR_MAXPOOL: return ir_max_pool(b, x[0], x[1], n->attr[0], n->attr[1], n->attr[2]);
    case IR_MAXPOOL_T: return ir_max_pool_t(b, x[0], x[1], n->attr[0], n->attr[1], n->attr[2]);
    case IR_SUMAXIS: return ir_sum_axis(b, x[0], n->attr[0]);
    case IR_BROADCAST: return ir_broadcast_axis(b, x[0], n->attr[0], ir_shape_dim(n->shape, n->attr[0]));
    default: break;
    }
    switch (ir_op_class(n->op)) {
    case IR_UNARY: return ir_unary(b, n->op, x[0]);
    case IR_BINARY: return ir_binary(b, n->op, x[0], x[1]);
    default: IR_FAIL("rebuilding a %s node", ir_op_name(n->op));
    }
}

void ir_rebuild(IrBuilder *b, int n, IrNode *const *roots, IrLeafMap leaf, void *ctx,
                IrNode **out)
{
    Arena *scratch = arena_new();
    IrNode **order;
    int count = ir_topo_order(scratch, n, roots, &order), max_id = 0;
    for (int i = 0; i < count; i++)
        max_id = order[i]->id > max_id ? order[i]->id : max_id;
    IrNode **memo = arena_alloc(scratch, sizeof *memo * (size_t)(max_id + 1));
    IrNode **x = NULL;
    int x_cap = 0;
    for (int i = 0; i < count; i++) {
        IrNode *o = order[i], *r = NULL;
        if (o->nargs == 0) {
            r = leaf(ctx, b, o);
            memo[o->id] = r ? r : o;
            continue;
        }
        if (o->nargs > x_cap) {
            x_cap = 2 * o->nargs;
            x = arena_alloc(scratch, sizeof *x * (size_t)x_cap);
        }
        bool same = true;
        for (int a = 0; a < o->nargs; a++) {
            x[a] = memo[o->args[a]->id];
            same = same && x[a] == o->args[a];
        }
        r = same ? o : rebuild_node(b, o, x);
        const SrcLoc *at = ir_origin(b, o);
        if (at && r != o)
            ir_set_origin(b, r, *at);
        memo[o->id] = r;
    }
    for (int i = 0; i < n; i++)
        out[i] = roots[i] ? memo[roots[i]->id] : NULL;
    arena_free(scratch);
}

/* ---- substitution: one leaf for another ---- */

typedef struct LeafSwap {
    const IrNode *from;
    IrNode *to;
} LeafSwap;

static IrNode *swap_leaf(void *ctx, IrBuilder *b, const IrNode *leaf)
{
    (void)b;
    const LeafSwap *s = ctx;
    return leaf == s->from ? s->to : NULL;
}

void ir_replace(IrBuilder *b, int n, IrNode **roots, const IrNode *from, IrNode *to)
{
    if (from->nargs != 0 || !ir_shape_eq(from->shape, to->shape))
        IR_FAIL("replacing a %s node by a %d-element one", ir_op_name(from->op),
                ir_shape_size(to->shape));
    LeafSwap swap = {from, to};
    ir_rebuild(b, n, roots, swap_leaf, &swap, roots);
}
