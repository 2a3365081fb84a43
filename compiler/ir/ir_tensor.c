/* The IR's tensor ops: reshape, the window ops a convolution and pooling are
 * built from (im2col and its transpose col2im, average and max pooling and their
 * transposes), and sums and broadcasts along one axis. Each constructor checks
 * shapes (a violation is an internal error: sema reports the user's) and
 * simplifies as ir.c's do; ir_eval_tensor_op is their reference semantics, the
 * one the back ends are tested against. A convolution is not an op: sema writes
 * conv2d(K, x) as reshape(reshape(K, [Cout, Cin*kh*kw]) @ im2col(x), [Cout, Ho, Wo]),
 * so the product is the one matmul the back ends already turn into dgemm, and
 * the derivative rules are those of matmul, reshape and im2col (compiler/diff). */
#include "ir.h"
#include "ir_internal.h"

#include <string.h>

int ir_window_count(int size, int k, int stride, int pad)
{
    int span = size + 2 * pad - k;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
}

void ir_axis_split(IrShape s, int axis, int *outer, int *n, int *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < s.rank; i++) {
        if (i < axis)
            *outer *= ir_shape_dim(s, i);
        else if (i > axis)
            *inner *= ir_shape_dim(s, i);
    }
    *n = ir_shape_dim(s, axis);
}

/* ---- construction ---- */

static void check_image(const IrNode *x, const char *what)
{
    char buf[32];
    if (!x || x->shape.rank != 3)
        IR_FAIL("%s of shape %s (an image [C, H, W] expected)", what,
                x ? ir_shape_str(x->shape, buf) : "NULL");
}

/* The window plane [C, Ho, Wo] of an image with these window attributes. */
static IrShape window_plane(IrShape image, int kh, int kw, int stride, int pad, const char *what)
{
    int ho = ir_window_count(image.dim[1], kh, stride, pad);
    int wo = ir_window_count(image.dim[2], kw, stride, pad);
    if (kh < 1 || kw < 1 || pad < 0 || ho < 1 || wo < 1)
        IR_FAIL("%s: %dx%d windows at stride %d, pad %d over [%d, %d]", what, kh, kw, stride, pad,
                image.dim[1], image.dim[2]);
    int dims[3] = {image.dim[0], ho, wo};
    return ir_tensor_shape(3, dims);
}

static IrNode *window_node(IrBuilder *b, IrOp op, IrShape shape, int nargs, IrNode **args, int kh,
                           int kw, int stride, int pad)
{
    IrNode k = ir_node_template(op, shape, nargs, args);
    k.attr[0] = kh;
    k.attr[1] = kw;
    k.attr[2] = stride;
    k.attr[3] = pad;
    return ir_finish(b, &k);
}

/* A linear op of zeros is zeros; of a negation, the negation of the op (negations
 * move outwards, where sums absorb them, as ir_pad's do). NULL: build the node. */
static IrNode *linear_shortcut(IrBuilder *b, IrNode *x, IrShape shape, IrNode **inner)
{
    *inner = x;
    if (ir_is_const_value(x, 0))
        return ir_fill(b, shape, 0);
    if (x->op == IR_NEG)
        *inner = x->args[0];
    return NULL;
}

static IrNode *negate_if(IrBuilder *b, IrNode *r, const IrNode *x)
{
    return x->op == IR_NEG ? ir_neg(b, r) : r;
}

IrNode *ir_reshape(IrBuilder *b, IrNode *x, IrShape shape)
{
    char b1[32], b2[32];
    if (!x || ir_shape_size(x->shape) != ir_shape_size(shape))
        IR_FAIL("reshape of %s to %s", x ? ir_shape_str(x->shape, b1) : "NULL",
                ir_shape_str(shape, b2));
    if (ir_shape_eq(x->shape, shape))
        return x;
    if (x->op == IR_RESHAPE)
        return ir_reshape(b, x->args[0], shape);
    IrNode *in, *z = linear_shortcut(b, x, shape, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    IrNode k = ir_node_template(IR_RESHAPE, shape, 1, args);
    return negate_if(b, ir_finish(b, &k), x);
}

IrNode *ir_im2col(IrBuilder *b, IrNode *x, int kh, int kw, int stride, int pad)
{
    check_image(x, "im2col");
    IrShape plane = window_plane(x->shape, kh, kw, stride, pad, "im2col");
    IrShape shape = ir_matrix_shape(x->shape.dim[0] * kh * kw, plane.dim[1] * plane.dim[2]);
    IrNode *in, *z = linear_shortcut(b, x, shape, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    return negate_if(b, window_node(b, IR_IM2COL, shape, 1, args, kh, kw, stride, pad), x);
}

IrNode *ir_col2im(IrBuilder *b, IrNode *cols, IrShape image, int kh, int kw, int stride, int pad)
{
    char b1[32], b2[32];
    IrNode frame = ir_node_template(IR_COL2IM, image, 0, NULL);
    check_image(&frame, "col2im");
    IrShape plane = window_plane(image, kh, kw, stride, pad, "col2im");
    IrShape want = ir_matrix_shape(image.dim[0] * kh * kw, plane.dim[1] * plane.dim[2]);
    if (!cols || !ir_shape_eq(cols->shape, want))
        IR_FAIL("col2im of %s to %s", cols ? ir_shape_str(cols->shape, b1) : "NULL",
                ir_shape_str(image, b2));
    IrNode *in, *z = linear_shortcut(b, cols, image, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    return negate_if(b, window_node(b, IR_COL2IM, image, 1, args, kh, kw, stride, pad), cols);
}

IrNode *ir_avg_pool(IrBuilder *b, IrNode *x, int kh, int kw, int stride)
{
    check_image(x, "avg_pool");
    IrShape shape = window_plane(x->shape, kh, kw, stride, 0, "avg_pool");
    IrNode *in, *z = linear_shortcut(b, x, shape, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    return negate_if(b, window_node(b, IR_AVGPOOL, shape, 1, args, kh, kw, stride, 0), x);
}

IrNode *ir_avg_pool_t(IrBuilder *b, IrNode *g, IrShape image, int kh, int kw, int stride)
{
    char b1[32], b2[32];
    IrNode frame = ir_node_template(IR_AVGPOOL_T, image, 0, NULL);
    check_image(&frame, "avg_pool_t");
    IrShape plane = window_plane(image, kh, kw, stride, 0, "avg_pool_t");
    if (!g || !ir_shape_eq(g->shape, plane))
        IR_FAIL("avg_pool_t of %s to %s", g ? ir_shape_str(g->shape, b1) : "NULL",
                ir_shape_str(image, b2));
    IrNode *in, *z = linear_shortcut(b, g, image, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    return negate_if(b, window_node(b, IR_AVGPOOL_T, image, 1, args, kh, kw, stride, 0), g);
}

IrNode *ir_max_pool(IrBuilder *b, IrNode *x, IrNode *u, int kh, int kw, int stride)
{
    char b1[32], b2[32];
    check_image(x, "max_pool");
    if (!u || !ir_shape_eq(u->shape, x->shape))
        IR_FAIL("max_pool selecting %s by %s", u ? ir_shape_str(u->shape, b1) : "NULL",
                ir_shape_str(x->shape, b2));
    IrShape shape = window_plane(x->shape, kh, kw, stride, 0, "max_pool");
    IrNode *in, *z = linear_shortcut(b, u, shape, &in);
    if (z)
        return z;
    IrNode *args[2] = {x, in};
    return negate_if(b, window_node(b, IR_MAXPOOL, shape, 2, args, kh, kw, stride, 0), u);
}

IrNode *ir_max_pool_t(IrBuilder *b, IrNode *x, IrNode *v, int kh, int kw, int stride)
{
    char b1[32], b2[32];
    check_image(x, "max_pool_t");
    IrShape plane = window_plane(x->shape, kh, kw, stride, 0, "max_pool_t");
    if (!v || !ir_shape_eq(v->shape, plane))
        IR_FAIL("max_pool_t of %s into %s", v ? ir_shape_str(v->shape, b1) : "NULL",
                ir_shape_str(x->shape, b2));
    IrNode *in, *z = linear_shortcut(b, v, x->shape, &in);
    if (z)
        return z;
    IrNode *args[2] = {x, in};
    return negate_if(b, window_node(b, IR_MAXPOOL_T, x->shape, 2, args, kh, kw, stride, 0), v);
}

IrNode *ir_sum_axis(IrBuilder *b, IrNode *x, int axis)
{
    char buf[32];
    if (!x || axis < 0 || axis >= x->shape.rank)
        IR_FAIL("sum over axis %d of %s", axis, x ? ir_shape_str(x->shape, buf) : "NULL");
    if (x->shape.rank == 1)
        return ir_sum(b, x);
    int dims[IR_MAX_RANK], r = 0;
    for (int i = 0; i < x->shape.rank; i++)
        if (i != axis)
            dims[r++] = ir_shape_dim(x->shape, i);
    IrShape shape = ir_tensor_shape(r, dims);
    if (ir_shape_dim(x->shape, axis) == 1)
        return ir_reshape(b, x, shape);
    IrNode *in, *z = linear_shortcut(b, x, shape, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    IrNode k = ir_node_template(IR_SUMAXIS, shape, 1, args);
    k.attr[0] = axis;
    return negate_if(b, ir_finish(b, &k), x);
}

IrNode *ir_broadcast_axis(IrBuilder *b, IrNode *x, int axis, int n)
{
    char buf[32];
    if (!x || axis < 0 || axis > x->shape.rank || x->shape.rank >= IR_MAX_RANK || n < 1 ||
        (int64_t)ir_shape_size(x->shape) * n > IR_MAX_ELEMENTS)
        IR_FAIL("broadcast of %s to %d along axis %d", x ? ir_shape_str(x->shape, buf) : "NULL",
                n, axis);
    int dims[IR_MAX_RANK], r = 0;
    for (int i = 0; i <= x->shape.rank; i++) {
        if (i == axis)
            dims[r++] = n;
        if (i < x->shape.rank)
            dims[r++] = ir_shape_dim(x->shape, i);
    }
    IrShape shape = ir_tensor_shape(r, dims);
    if (n == 1)
        return ir_reshape(b, x, shape);
    IrNode *in, *z = linear_shortcut(b, x, shape, &in);
    if (z)
        return z;
    IrNode *args[1] = {in};
    IrNode k = ir_node_template(IR_BROADCAST, shape, 1, args);
    k.attr[0] = axis;
    return negate_if(b, ir_finish(b, &k), x);
}

/* ---- evaluation ---- */

IrWindow ir_window_of(const IrNode *n)
{
    IrShape image = n->op == IR_COL2IM || n->op == IR_AVGPOOL_T ? n->shape : n->args[0]->shape;
    IrWindow w = {image.dim[0], image.dim[1], image.dim[2], n->attr[0], n->attr[1], n->attr[2],
                  n->attr[3], 0, 0};
    w.Ho = ir_window_count(w.H, w.kh, w.s, w.p);
    w.Wo = ir_window_count(w.W, w.kw, w.s, w.p);
    return w;
}

/* The image index read at (c, oi, oj, ki, kj), or -1 in the padding. */
static int window_at(const IrWindow *w, int c, int oi, int oj, int ki, int kj)
{
    int h = oi * w->s + ki - w->p, x = oj * w->s + kj - w->p;
    if (h < 0 || h >= w->H || x < 0 || x >= w->W)
        return -1;
    return (c * w->H + h) * w->W + x;
}

static void eval_im2col(const IrWindow *w, const double *x, double *cols, bool back)
{
    int P = w->Ho * w->Wo;
    if (back)
        memset(cols, 0, sizeof *cols * (size_t)(w->C * w->H * w->W));
    for (int c = 0; c < w->C; c++)
        for (int ki = 0; ki < w->kh; ki++)
            for (int kj = 0; kj < w->kw; kj++) {
                int row = (c * w->kh + ki) * w->kw + kj;
                for (int oi = 0; oi < w->Ho; oi++)
                    for (int oj = 0; oj < w->Wo; oj++) {
                        int at = window_at(w, c, oi, oj, ki, kj), k = row * P + oi * w->Wo + oj;
                        if (!back)
                            cols[k] = at < 0 ? 0 : x[at];
                        else if (at >= 0)
                            cols[at] += x[k]; /* here x is the columns, cols the image */
                    }
            }
}

/* The first largest x in the window (a NaN counts as the largest), as an image index. */
static int window_argmax(const IrWindow *w, const double *x, int c, int oi, int oj)
{
    int best = window_at(w, c, oi, oj, 0, 0);
    for (int ki = 0; ki < w->kh; ki++)
        for (int kj = 0; kj < w->kw; kj++) {
            int at = window_at(w, c, oi, oj, ki, kj);
            if (x[best] == x[best] && (x[at] > x[best] || x[at] != x[at]))
                best = at;
        }
    return best;
}

static void eval_pool(const IrNode *n, const IrWindow *w, const double *const *a, double *out)
{
    double inv = 1.0 / (w->kh * w->kw);
    bool back = n->op == IR_AVGPOOL_T || n->op == IR_MAXPOOL_T;
    if (back)
        memset(out, 0, sizeof *out * (size_t)(w->C * w->H * w->W));
    for (int c = 0; c < w->C; c++)
        for (int oi = 0; oi < w->Ho; oi++)
            for (int oj = 0; oj < w->Wo; oj++) {
                int o = (c * w->Ho + oi) * w->Wo + oj;
                if (n->op == IR_MAXPOOL) {
                    out[o] = a[1][window_argmax(w, a[0], c, oi, oj)];
                } else if (n->op == IR_MAXPOOL_T) {
                    out[window_argmax(w, a[0], c, oi, oj)] += a[1][o];
                } else if (n->op == IR_AVGPOOL) {
                    double acc = 0;
                    for (int ki = 0; ki < w->kh; ki++)
                        for (int kj = 0; kj < w->kw; kj++)
                            acc += a[0][window_at(w, c, oi, oj, ki, kj)];
                    out[o] = acc * inv;
                } else {
                    for (int ki = 0; ki < w->kh; ki++)
                        for (int kj = 0; kj < w->kw; kj++)
                            out[window_at(w, c, oi, oj, ki, kj)] += a[0][o] * inv;
                }
            }
}

static void eval_axis(const IrNode *n, const double *x, double *out)
{
    int outer, len, inner;
    if (n->op == IR_SUMAXIS) {
        ir_axis_split(n->args[0]->shape, n->attr[0], &outer, &len, &inner);
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++) {
                double acc = 0;
                for (int j = 0; j < len; j++)
                    acc += x[(o * len + j) * inner + i];
                out[o * inner + i] = acc;
            }
    } else {
        ir_axis_split(n->shape, n->attr[0], &outer, &len, &inner);
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < len; j++)
                memcpy(out + (o * len + j) * inner, x + o * inner, sizeof *out * (size_t)inner);
    }
}

void ir_eval_tensor_op(const IrNode *n, const double *const *a, double *out)
{
    switch (n->op) {
    case IR_RESHAPE:
        memcpy(out, a[0], sizeof *out * (size_t)ir_shape_size(n->shape));
        break;
    case IR_IM2COL: {
        IrWindow w = ir_window_of(n);
        eval_im2col(&w, a[0], out, false);
        break;
    }
    case IR_COL2IM: {
        IrWindow w = ir_window_of(n);
        eval_im2col(&w, a[0], out, true);
        break;
    }
    case IR_AVGPOOL:
    case IR_MAXPOOL:
    case IR_MAXPOOL_T: {
        IrWindow w = ir_window_of(n);
        eval_pool(n, &w, a, out);
        break;
    }
    case IR_AVGPOOL_T: {
        IrWindow w = ir_window_of(n);
        eval_pool(n, &w, a, out);
        break;
    }
    case IR_SUMAXIS:
    case IR_BROADCAST:
        eval_axis(n, a[0], out);
        break;
    default:
        IR_FAIL("ir_eval_tensor_op on %s", ir_op_name(n->op));
    }
}
