/* The everyday functions of issue 14 that are not one elementwise op: checked
 * here and lowered to IR. min and max are elementwise ops with two arguments
 * and reductions with one; clamp, softmax, log_softmax, logsumexp and
 * cross_entropy are compositions (the max-shifted forms, so exp never
 * overflows), so compiler/diff differentiates them with the rules it has. */
#include "sema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sema_internal.h"

/* Equal shapes, or scalars (as where() takes them): the common shape in *out. */
int sema_common_shape(Sema *S, const char *name, const FnArgs *a, IrShape *out)
{
    IrShape common = ir_scalar_shape();
    for (int i = 0; i < a->n; i++) {
        IrShape s = a->x[i]->shape;
        if (s.rank == 0)
            continue;
        if (common.rank != 0 && !ir_shape_eq(common, s)) {
            char b0[32], b1[32];
            diag_error(S->diag, a->whole,
                       "shape mismatch in '%s': %s and %s (arguments need equal shapes, or scalars)",
                       name, sema_shape(common, b0), sema_shape(s, b1));
            return 0;
        }
        common = s;
    }
    *out = common;
    return 1;
}

static int need_vector(Sema *S, const char *name, const FnArgs *a, int i)
{
    IrShape s = a->x[i]->shape;
    if (s.rank == 1)
        return 1;
    char bs[32];
    diag_error(S->diag, a->loc[i], "shape mismatch in '%s': argument %d must be a vector, got %s",
               name, i + 1, sema_shape(s, bs));
    return 0;
}

/* max(x) is the MAXR reduction; min(x) = -max(-x), whose first largest
 * element is x's first smallest, so its derivative goes there too. */
static IrNode *reduce_min(IrBuilder *b, IrNode *x)
{
    return ir_neg(b, ir_reduce_max(b, ir_neg(b, x)));
}

/* log(sum(exp(x))) = m + log(sum(exp(x - m))) with m = max(x): every exp is
 * at most 1, and one of them is 1, so the sum is in [1, n]. */
static IrNode *logsumexp(IrBuilder *b, IrNode *x)
{
    IrNode *m = ir_reduce_max(b, x);
    IrNode *s = ir_sum(b, ir_unary(b, IR_EXP, ir_sub(b, x, m)));
    return ir_add(b, m, ir_unary(b, IR_LOG, s));
}

static IrNode *softmax(IrBuilder *b, IrNode *x)
{
    IrNode *e = ir_unary(b, IR_EXP, ir_sub(b, x, ir_reduce_max(b, x)));
    return ir_div(b, e, ir_sum(b, e));
}

/* [0, 1, ..., n-1] shaped like x. */
static IrNode *indices(IrBuilder *b, IrShape s)
{
    int n = ir_shape_size(s);
    double *v = malloc(sizeof *v * (size_t)n);
    if (!v)
        INTERNAL_ERROR("out of memory");
    for (int i = 0; i < n; i++)
        v[i] = i;
    IrNode *c = ir_const(b, s, v);
    free(v);
    return c;
}

/* z[k] for a class index k computed at run time (a data field): the sum of
 * z where the index equals k, divided by how many do, so that an index that
 * is not an integer in range gives NaN (0/0) instead of a silent wrong loss. */
static IrNode *pick_class(IrBuilder *b, IrNode *z, IrNode *k)
{
    IrNode *hit = ir_binary(b, IR_EQ, indices(b, z->shape), k);
    IrNode *picked = ir_sum(b, ir_where(b, hit, z, ir_scalar(b, 0)));
    return ir_div(b, picked, ir_sum(b, hit));
}

/* cross_entropy(logits, target) = -log(softmax(logits)[target]) for a class
 * index (a scalar), -sum(target * log_softmax(logits)) for probabilities
 * (a vector shaped like the logits), as PyTorch's F.cross_entropy. */
static Val cross_entropy(Sema *S, const FnArgs *a)
{
    IrBuilder *b = S->ir;
    IrNode *z = a->x[0], *k = a->x[1];
    if (!need_vector(S, "cross_entropy", a, 0))
        return val_err();
    char bz[32], bk[32];
    if (k->shape.rank == 1 && ir_shape_eq(k->shape, z->shape))
        return val_node(ir_neg(b, ir_sum(b, ir_mul(b, k, ir_sub(b, z, logsumexp(b, z))))));
    if (k->shape.rank != 0) {
        diag_error(S->diag, a->loc[1],
                   "shape mismatch in 'cross_entropy': the target is a class index (a scalar) "
                   "or probabilities shaped like the logits (%s), got %s",
                   sema_shape(z->shape, bz), sema_shape(k->shape, bk));
        return val_err();
    }
    if (!ir_is_const(k))
        return val_node(ir_sub(b, logsumexp(b, z), pick_class(b, z, k)));
    double c = k->value[0];
    if (!(c >= 0 && c < z->shape.rows && c == floor(c))) {
        diag_error(S->diag, a->loc[1],
                   "the class index of 'cross_entropy' must be an integer from 0 to %d (the logits "
                   "have %d elements), got %.17g",
                   z->shape.rows - 1, z->shape.rows, c);
        return val_err();
    }
    return val_node(ir_sub(b, logsumexp(b, z), ir_element(b, z, (int)c, 0)));
}

/* clamp(x, lo, hi) = min(max(x, lo), hi): x itself at either bound, so its
 * derivative there is 1 (PyTorch's clamp does the same). Constant bounds must
 * be ordered. */
static Val clamp(Sema *S, const FnArgs *a)
{
    IrShape s;
    if (!sema_common_shape(S, "clamp", a, &s))
        return val_err();
    IrNode *x = a->x[0], *lo = a->x[1], *hi = a->x[2];
    if (ir_is_const(lo) && ir_is_const(hi)) {
        int nl = ir_shape_size(lo->shape), nh = ir_shape_size(hi->shape);
        int n = nl > nh ? nl : nh;
        for (int i = 0; i < n; i++) {
            double l = lo->value[nl == 1 ? 0 : i], h = hi->value[nh == 1 ? 0 : i];
            if (l > h) {
                diag_error(S->diag, a->whole,
                           "clamp needs lo <= hi, got lo = %.17g and hi = %.17g%s", l, h,
                           n > 1 ? " (in one element)" : "");
                return val_err();
            }
        }
    }
    IrBuilder *b = S->ir;
    return val_node(ir_binary(b, IR_MIN, ir_binary(b, IR_MAX, x, lo), hi));
}

static Val min_max(Sema *S, const char *name, const FnArgs *a)
{
    bool is_max = strcmp(name, "max") == 0;
    if (a->n == 1)
        return val_node(is_max ? ir_reduce_max(S->ir, a->x[0]) : reduce_min(S->ir, a->x[0]));
    IrShape s;
    if (!sema_common_shape(S, name, a, &s))
        return val_err();
    return val_node(ir_binary(S->ir, is_max ? IR_MAX : IR_MIN, a->x[0], a->x[1]));
}

Val sema_function(Sema *S, const char *name, const FnArgs *a)
{
    IrBuilder *b = S->ir;
    IrShape s;
    if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0)
        return min_max(S, name, a);
    if (strcmp(name, "clamp") == 0)
        return clamp(S, a);
    if (strcmp(name, "atan2") == 0)
        return sema_common_shape(S, name, a, &s) ? val_node(ir_binary(b, IR_ATAN2, a->x[0], a->x[1]))
                                                 : val_err();
    if (strcmp(name, "argmax") == 0) {
        IrNode *n = ir_argmax(b, a->x[0]);
        if (n->op == IR_ARGMAX)
            ir_set_origin(b, n, a->whole);
        return val_node(n);
    }
    if (strcmp(name, "logsumexp") == 0)
        return val_node(logsumexp(b, a->x[0]));
    if (strcmp(name, "cross_entropy") == 0)
        return cross_entropy(S, a);
    if (!need_vector(S, name, a, 0)) /* softmax, log_softmax */
        return val_err();
    if (strcmp(name, "softmax") == 0)
        return val_node(softmax(b, a->x[0]));
    return val_node(ir_sub(b, a->x[0], logsumexp(b, a->x[0])));
}
