/* The image builtins of docs/language.md, "Tensors": conv2d, avg_pool, max_pool,
 * group_norm, instance_norm, reshape and flatten, lowered onto the IR's tensor ops
 * (ir_tensor.c), and the size-1 broadcasting of same-rank tensors that binary
 * operators use. A convolution is im2col followed by one matrix product, so the
 * back ends' matmul (OpenBLAS past the measured crossover) does its flops and
 * compiler/diff's matmul, reshape and im2col rules give its derivatives. */
#include "sema_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const conv_builtins[] = {
    "conv2d", "avg_pool", "max_pool", "group_norm", "instance_norm", "reshape", "flatten",
};
enum { N_CONV_BUILTINS = sizeof conv_builtins / sizeof conv_builtins[0] };

int sema_is_conv_builtin(const char *name)
{
    for (int i = 0; i < N_CONV_BUILTINS; i++)
        if (strcmp(conv_builtins[i], name) == 0)
            return 1;
    return 0;
}

/* ---- arguments ---- */

/* A positional constant integer argument in [lo, hi]; what names it in the error. */
static int arg_int(Sema *S, const ConvArgs *a, int i, const char *what, int lo, int hi, int *out)
{
    IrNode *c = sema_const_val(S, val_node(a->x[i]), a->loc[i], what);
    if (!c)
        return 0;
    double v = c->shape.rank == 0 ? c->value[0] : NAN;
    if (!(v == floor(v)) || v < lo || v > hi) {
        diag_error(S->diag, a->loc[i], "%s of '%s' must be an integer from %d to %d", what,
                   a->name, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* The named argument key's value as a constant integer in [lo, hi] (def when the
 * call does not name it); 0 after reporting. */
static int key_int(Sema *S, const ConvArgs *a, const char *key, int lo, int hi, int def, int *out)
{
    char what[64];
    snprintf(what, sizeof what, "'%s'", key);
    *out = def;
    for (int i = 0; i < a->n; i++)
        if (a->key[i] && strcmp(a->key[i], key) == 0 && !arg_int(S, a, i, what, lo, hi, out))
            return 0;
    return 1;
}

static double key_number(Sema *S, const ConvArgs *a, const char *key, double def, int *ok)
{
    for (int i = 0; i < a->n; i++) {
        if (!a->key[i] || strcmp(a->key[i], key) != 0)
            continue;
        IrNode *c = sema_const_val(S, val_node(a->x[i]), a->loc[i], key);
        if (!c || c->shape.rank != 0 || !(c->value[0] > 0)) {
            if (c)
                diag_error(S->diag, a->loc[i], "'%s' of '%s' must be a positive number", key,
                           a->name);
            *ok = 0;
            return def;
        }
        return c->value[0];
    }
    return def;
}

/* Positional arguments first, then the named ones, each named at most once and
 * only from keys (NULL-terminated); the positional count within [lo, hi]. */
static int check_args(Sema *S, const ConvArgs *a, int lo, int hi, const char *sig,
                      const char *const *keys)
{
    int positional = 0;
    for (int i = 0; i < a->n; i++) {
        if (!a->key[i]) {
            if (positional < i) {
                diag_error(S->diag, a->loc[i], "a positional argument after a named one in '%s'",
                           a->name);
                return 0;
            }
            positional++;
            continue;
        }
        int known = 0;
        for (int k = 0; keys[k]; k++)
            known |= strcmp(keys[k], a->key[i]) == 0;
        for (int j = 0; j < i; j++)
            if (a->key[j] && strcmp(a->key[j], a->key[i]) == 0) {
                diag_error(S->diag, a->loc[i], "'%s' is given twice in '%s'", a->key[i], a->name);
                return 0;
            }
        if (!known) {
            diag_error(S->diag, a->loc[i], "unknown argument '%s' of '%s' (expected %s)",
                       a->key[i], a->name, sig);
            return 0;
        }
    }
    if (positional < lo || positional > hi) {
        diag_error(S->diag, a->whole, "wrong number of arguments to '%s': expected %s, got %d",
                   a->name, sig, positional);
        return 0;
    }
    return 1;
}

static int need_rank(Sema *S, const ConvArgs *a, int i, int rank, const char *what)
{
    IrShape s = a->x[i]->shape;
    if (s.rank == rank)
        return 1;
    char bs[32];
    diag_error(S->diag, a->loc[i], "shape mismatch in '%s': argument %d must be %s, got %s",
               a->name, i + 1, what, sema_shape(s, bs));
    return 0;
}

/* The window plane of an image for a kh x kw window: Ho, Wo, or an error naming
 * the image, the window and what does not fit. */
static int window_fits(Sema *S, const ConvArgs *a, IrShape image, int kh, int kw, int stride,
                       int pad, int *ho, int *wo)
{
    *ho = ir_window_count(image.dim[1], kh, stride, pad);
    *wo = ir_window_count(image.dim[2], kw, stride, pad);
    if (*ho >= 1 && *wo >= 1)
        return 1;
    char bs[32];
    diag_error(S->diag, a->whole,
               "shape mismatch in '%s': a %dx%d window does not fit in the image %s padded by %d",
               a->name, kh, kw, sema_shape(image, bs), pad);
    return 0;
}

/* ---- the builtins ---- */

/* conv2d(K, x, stride = s, pad = p): K [Cout, Cin, kh, kw], x [Cin, H, W] ->
 * [Cout, Ho, Wo], as reshape(reshape(K, [Cout, Cin kh kw]) @ im2col(x), ...). */
static Val conv2d(Sema *S, const ConvArgs *a)
{
    static const char *const keys[] = {"stride", "pad", NULL};
    const char *sig = "conv2d(K, x, stride = s, pad = p)";
    int stride, pad, ho, wo;
    if (!check_args(S, a, 2, 2, sig, keys) ||
        !need_rank(S, a, 0, 4, "a filter bank [Cout, Cin, kh, kw]") ||
        !need_rank(S, a, 1, 3, "an image [C, H, W]") ||
        !key_int(S, a, "stride", 1, 1 << 16, 1, &stride) || !key_int(S, a, "pad", 0, 1 << 16, 0, &pad))
        return val_err();
    IrShape k = a->x[0]->shape, x = a->x[1]->shape;
    if (k.dim[1] != x.dim[0]) {
        char bk[32], bx[32];
        diag_error(S->diag, a->whole,
                   "shape mismatch in 'conv2d': filters %s take %d input channels, the image %s has %d",
                   sema_shape(k, bk), k.dim[1], sema_shape(x, bx), x.dim[0]);
        return val_err();
    }
    if (!window_fits(S, a, x, k.dim[2], k.dim[3], stride, pad, &ho, &wo))
        return val_err();
    int64_t cols = (int64_t)x.dim[0] * k.dim[2] * k.dim[3] * ho * wo;
    if (cols > IR_MAX_ELEMENTS) {
        diag_error(S->diag, a->whole, "the columns of 'conv2d' have %lld elements, more than the limit of %d",
                   (long long)cols, IR_MAX_ELEMENTS);
        return val_err();
    }
    IrBuilder *b = S->ir;
    IrNode *km = ir_reshape(b, a->x[0], ir_matrix_shape(k.dim[0], k.cols));
    IrNode *y = ir_matmul(b, km, ir_im2col(b, a->x[1], k.dim[2], k.dim[3], stride, pad));
    int dims[3] = {k.dim[0], ho, wo};
    return val_node(ir_reshape(b, y, ir_tensor_shape(3, dims)));
}

/* avg_pool(x, k, stride = k), max_pool(x, k, stride = k): k x k windows, no padding. */
static Val pool(Sema *S, const ConvArgs *a, int is_max)
{
    static const char *const keys[] = {"stride", NULL};
    const char *sig = is_max ? "max_pool(x, k, stride = s)" : "avg_pool(x, k, stride = s)";
    int k, stride, ho, wo;
    if (!check_args(S, a, 2, 2, sig, keys) || !need_rank(S, a, 0, 3, "an image [C, H, W]") ||
        !arg_int(S, a, 1, "the window size", 1, 1 << 16, &k) ||
        !key_int(S, a, "stride", 1, 1 << 16, k, &stride))
        return val_err();
    IrNode *x = a->x[0];
    if (!window_fits(S, a, x->shape, k, k, stride, 0, &ho, &wo))
        return val_err();
    if (is_max)
        return val_node(ir_max_pool(S->ir, x, x, k, k, stride));
    return val_node(ir_avg_pool(S->ir, x, k, k, stride));
}

/* x [C, H, W] normalised over each of G groups of C/G channels: mean 0 and
 * (biased) variance 1 within a group, with eps added to the variance (PyTorch's
 * GroupNorm without its affine part: scale and shift are the user's params). */
static IrNode *group_normalise(IrBuilder *b, IrNode *x, int groups, double eps)
{
    int n = ir_shape_size(x->shape) / groups;
    IrNode *inv_n = ir_scalar(b, 1.0 / n);
    IrNode *xg = ir_reshape(b, x, ir_matrix_shape(groups, n));
    IrNode *mu = ir_mul(b, ir_sum_axis(b, xg, 1), inv_n);
    IrNode *d = ir_sub(b, xg, ir_broadcast_axis(b, mu, 1, n));
    IrNode *var = ir_mul(b, ir_sum_axis(b, ir_mul(b, d, d), 1), inv_n);
    IrNode *sd = ir_unary(b, IR_SQRT, ir_add(b, var, ir_scalar(b, eps)));
    return ir_reshape(b, ir_div(b, d, ir_broadcast_axis(b, sd, 1, n)), x->shape);
}

static Val norm(Sema *S, const ConvArgs *a, int instance)
{
    static const char *const keys[] = {"eps", NULL};
    int groups, ok = 1;
    if (!check_args(S, a, instance ? 1 : 2, instance ? 1 : 2,
                    instance ? "instance_norm(x, eps = e)" : "group_norm(x, G, eps = e)", keys) ||
        !need_rank(S, a, 0, 3, "an image [C, H, W]"))
        return val_err();
    int channels = a->x[0]->shape.dim[0];
    if (instance)
        groups = channels;
    else if (!arg_int(S, a, 1, "the number of groups", 1, channels, &groups))
        return val_err();
    if (channels % groups != 0) {
        diag_error(S->diag, a->loc[1], "'group_norm' needs the %d channels in equal groups: %d does not divide them",
                   channels, groups);
        return val_err();
    }
    double eps = key_number(S, a, "eps", 1e-5, &ok);
    return ok ? val_node(group_normalise(S->ir, a->x[0], groups, eps)) : val_err();
}

/* reshape(x, [d0, d1, ...]): the dimensions a constant list of positive integers
 * whose product is x's size. */
static Val reshape(Sema *S, const ConvArgs *a)
{
    static const char *const keys[] = {NULL};
    if (!check_args(S, a, 2, 2, "reshape(x, [d0, d1, ...])", keys))
        return val_err();
    IrNode *c = sema_const_val(S, val_node(a->x[1]), a->loc[1], "the shape");
    if (!c)
        return val_err();
    int n = c->shape.rank == 1 ? c->shape.rows : 0, dims[IR_MAX_RANK];
    int64_t size = 1;
    for (int i = 0; i < n && i < IR_MAX_RANK; i++) {
        double v = c->value[i];
        if (!(v == floor(v)) || v < 1 || v > IR_MAX_ELEMENTS)
            n = 0;
        else
            size *= (int64_t)(dims[i] = (int)v);
    }
    if (n < 1 || n > IR_MAX_RANK) {
        diag_error(S->diag, a->loc[1], "the shape of 'reshape' must be a list of 1 to %d positive integers, like [16, 4, 4]",
                   IR_MAX_RANK);
        return val_err();
    }
    if (size != ir_shape_size(a->x[0]->shape)) {
        char bs[32];
        diag_error(S->diag, a->whole, "'reshape' of %s (%d elements) to %lld elements",
                   sema_shape(a->x[0]->shape, bs), ir_shape_size(a->x[0]->shape), (long long)size);
        return val_err();
    }
    return val_node(ir_reshape(S->ir, a->x[0], ir_tensor_shape(n, dims)));
}

static Val flatten(Sema *S, const ConvArgs *a)
{
    static const char *const keys[] = {NULL};
    if (!check_args(S, a, 1, 1, "flatten(x)", keys))
        return val_err();
    IrNode *x = a->x[0];
    if (x->shape.rank == 0)
        return val_node(ir_reshape(S->ir, x, ir_vector_shape(1)));
    return val_node(ir_reshape(S->ir, x, ir_vector_shape(ir_shape_size(x->shape))));
}

Val sema_conv_builtin(Sema *S, const ConvArgs *a)
{
    const char *f = a->name;
    if (strcmp(f, "conv2d") == 0)
        return conv2d(S, a);
    if (strcmp(f, "avg_pool") == 0 || strcmp(f, "max_pool") == 0)
        return pool(S, a, f[1] == 'a');
    if (strcmp(f, "group_norm") == 0 || strcmp(f, "instance_norm") == 0)
        return norm(S, a, f[0] == 'i');
    if (strcmp(f, "reshape") == 0)
        return reshape(S, a);
    return flatten(S, a);
}

/* sum(x, axis), mean(x, axis): x without that axis, summed or averaged over it. */
Val sema_reduce_axis(Sema *S, const char *name, int mean, IrNode *x, Val axis, SrcLoc at)
{
    IrNode *c = sema_const_val(S, axis, at, "the axis");
    if (!c)
        return val_err();
    double v = c->shape.rank == 0 ? c->value[0] : -1;
    if (x->shape.rank == 0 || !(v == floor(v)) || v < 0 || v >= x->shape.rank) {
        char bs[32];
        diag_error(S->diag, at, "the axis of '%s' must be an integer from 0 to %d for a value of shape %s",
                   name, x->shape.rank - 1, sema_shape(x->shape, bs));
        return val_err();
    }
    IrNode *r = ir_sum_axis(S->ir, x, (int)v);
    if (mean)
        r = ir_div(S->ir, r, ir_scalar(S->ir, ir_shape_dim(x->shape, (int)v)));
    return val_node(r);
}

/* ---- broadcasting ---- */

int sema_broadcast_shape(IrShape a, IrShape b, IrShape *out)
{
    if (a.rank != b.rank || a.rank < 3)
        return 0;
    int dims[IR_MAX_RANK];
    for (int i = 0; i < a.rank; i++) {
        int x = ir_shape_dim(a, i), y = ir_shape_dim(b, i);
        if (x != y && x != 1 && y != 1)
            return 0;
        dims[i] = x > y ? x : y;
    }
    *out = ir_tensor_shape(a.rank, dims);
    return 1;
}

/* x stretched to shape to along its size-1 dimensions: the kept dimensions as
 * one tensor, then one broadcast per stretched axis, in increasing order (so each
 * inserted axis lands at its place). */
IrNode *sema_broadcast_to(Sema *S, IrNode *x, IrShape to)
{
    if (ir_shape_eq(x->shape, to))
        return x;
    int kept[IR_MAX_RANK], n = 0;
    for (int i = 0; i < to.rank; i++)
        if (ir_shape_dim(x->shape, i) == ir_shape_dim(to, i))
            kept[n++] = ir_shape_dim(to, i);
    IrNode *r = ir_reshape(S->ir, x, n ? ir_tensor_shape(n, kept) : ir_scalar_shape());
    for (int i = 0; i < to.rank; i++)
        if (ir_shape_dim(x->shape, i) != ir_shape_dim(to, i))
            r = ir_broadcast_axis(S->ir, r, i, ir_shape_dim(to, i));
    return r;
}
