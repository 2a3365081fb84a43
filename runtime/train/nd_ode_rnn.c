/* The ODE-RNN encoder (nd_ode_rnn.h): a forward pass that keeps the hidden state
 * before and after each observation's jump, and its reverse sweep. */
#include "nd_ode_rnn.h"

#include <stdlib.h>
#include <string.h>

struct NdOdeRnn {
    NdKernels k;
    NdOdeRnnKernels ek;
    int64_t B;
    int nh, max_nt;
    NdSolver *solver;  /* the forward intervals */
    NdGradient *g;     /* the backward intervals, or NULL without gradient */
    const char *msg;   /* an argument refused, or NULL */
    /* the last forward pass */
    int nt;
    const nd_real *ts, *d;
    const unsigned char *observed;
    nd_real *pre, *post; /* nt x B*nh: h before and after the jumps at ts[j] */
    int *first;          /* per sample: the index of its first jump (the latest time), or -1 */
    unsigned char *jumped; /* nt x B */
    /* scratch */
    nd_real *work, *yout, *vals, *a, *a_in, *a_out, *gp;
    nd_real seg[2];
    long fwd_evals, bwd_evals;
};

static nd_real *reals(size_t n)
{
    return (nd_real *)calloc(n ? n : 1, sizeof(nd_real));
}

NdOdeRnn *nd_ode_rnn_create(const NdKernels *k, const NdOdeRnnKernels *ek,
                            const NdSolver *tmpl, int with_gradient, NdGradMethod gm, int64_t B,
                            int max_nt)
{
    if (!k || !ek || !ek->jump || !tmpl || B < 1 || max_nt < 1 || k->ns != 0 ||
        (with_gradient && (!ek->jump_vjp || !k->vjp)))
        return NULL;
    NdOdeRnn *e = (NdOdeRnn *)calloc(1, sizeof *e);
    if (!e)
        return NULL;
    size_t n = (size_t)B * (size_t)k->ny, nt = (size_t)max_nt;
    e->k = *k;
    e->ek = *ek;
    e->B = B;
    e->nh = k->ny;
    e->max_nt = max_nt;
    e->solver = nd_solver_create_like(tmpl, k, B);
    e->g = with_gradient ? nd_gradient_create(k, tmpl, gm, B, 2) : NULL;
    e->pre = reals(nt * n);
    e->post = reals(nt * n);
    e->first = (int *)calloc((size_t)B, sizeof(int));
    e->jumped = (unsigned char *)calloc(nt * (size_t)B, 1);
    e->work = reals(nd_kernels_work_size(k, B));
    e->yout = reals(2 * n);
    e->vals = reals((size_t)B);
    e->a = reals(n);
    e->a_in = reals(n);
    e->a_out = reals(n);
    e->gp = reals((size_t)k->np);
    if (!e->solver || (with_gradient && !e->g) || !e->pre || !e->post || !e->first ||
        !e->jumped || !e->work || !e->yout || !e->vals || !e->a || !e->a_in || !e->a_out ||
        !e->gp) {
        nd_ode_rnn_free(e);
        return NULL;
    }
    return e;
}

void nd_ode_rnn_free(NdOdeRnn *e)
{
    if (!e)
        return;
    nd_solver_free(e->solver);
    nd_gradient_free(e->g);
    nd_real *bufs[] = {e->pre, e->post, e->work, e->yout, e->vals, e->a, e->a_in, e->a_out, e->gp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(e->first);
    free(e->jumped);
    free(e);
}

static const nd_real *rows_at(const NdOdeRnn *e, int j)
{
    return e->d + (size_t)j * (size_t)e->B * (size_t)e->ek.nd;
}

/* Which samples jump at ts[j]: observed there, with a mask that is not 0. */
static void jumps_at(NdOdeRnn *e, const nd_real *p, int j)
{
    unsigned char *out = e->jumped + (size_t)j * (size_t)e->B;
    if (e->ek.mask)
        e->ek.mask(e->ts[j], NULL, p, NULL, rows_at(e, j), e->vals, NULL, e->B, e->work);
    for (int64_t b = 0; b < e->B; b++)
        out[b] = (!e->observed || e->observed[(size_t)j * (size_t)e->B + (size_t)b]) &&
                 (!e->ek.mask || e->vals[b] != 0);
}

int nd_ode_rnn_forward(NdOdeRnn *e, const nd_real *p, int nt, const nd_real *ts,
                       const nd_real *d, const unsigned char *observed, nd_real *h0)
{
    e->msg = nt < 1 || nt > e->max_nt ? "more observation times than the encoder was created for"
             : !p || !ts || !d || !h0 ? "a NULL argument"
                                      : NULL;
    if (e->msg)
        return ND_ERR_ARG;
    e->nt = nt;
    e->ts = ts;
    e->d = d;
    e->observed = observed;
    e->fwd_evals = 0;
    size_t n = (size_t)e->B * (size_t)e->nh, nh = (size_t)e->nh;
    nd_real *h = e->yout + n; /* the hidden state, carried in the solve's last row */
    memset(h, 0, sizeof(nd_real) * n);
    for (int64_t b = 0; b < e->B; b++)
        e->first[b] = -1;
    for (int j = nt - 1; j >= 0; j--) {
        if (j < nt - 1) {
            e->seg[0] = ts[j + 1];
            e->seg[1] = ts[j];
            int status = nd_solve(e->solver, p, e->post + (size_t)(j + 1) * n, e->seg, 2, e->yout);
            e->fwd_evals += nd_solver_get_num_rhs_evals(e->solver);
            if (status != ND_OK)
                return status;
            for (int64_t b = 0; b < e->B; b++) /* not yet observed: still 0 */
                if (e->first[b] < 0)
                    memset(h + (size_t)b * nh, 0, sizeof(nd_real) * nh);
        }
        nd_real *pre = e->pre + (size_t)j * n, *post = e->post + (size_t)j * n;
        memcpy(pre, h, sizeof(nd_real) * n);
        e->ek.jump(ts[j], pre, p, NULL, rows_at(e, j), post, NULL, e->B, e->work);
        jumps_at(e, p, j);
        const unsigned char *jumped = e->jumped + (size_t)j * (size_t)e->B;
        for (int64_t b = 0; b < e->B; b++) {
            if (!jumped[b])
                memcpy(post + (size_t)b * nh, pre + (size_t)b * nh, sizeof(nd_real) * nh);
            else if (e->first[b] < 0)
                e->first[b] = j;
        }
        memcpy(h, post, sizeof(nd_real) * n);
    }
    memcpy(h0, h, sizeof(nd_real) * n);
    return ND_OK;
}

/* The interval's loss for nd_gradient: L = a . h(ts[j]) at its end, so the
 * gradient's grad_y0 is the adjoint carried back over the interval. */
static int carry(void *ctx, int j, nd_real t, const nd_real *y, const nd_real *p, nd_real *L,
                 nd_real *gy, nd_real *gp)
{
    (void)t, (void)p, (void)gp;
    NdOdeRnn *e = (NdOdeRnn *)ctx;
    size_t n = (size_t)e->B * (size_t)e->nh;
    if (j == 0) {
        memset(gy, 0, sizeof(nd_real) * n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        gy[i] = e->a_in[i];
        *L += e->a_in[i] * y[i];
    }
    return 0;
}

int nd_ode_rnn_backward(NdOdeRnn *e, const nd_real *p, const nd_real *a0, nd_real *grad_p)
{
    e->msg = !e->g ? "an encoder created without gradient" : !a0 || !grad_p ? "a NULL argument"
                                                                           : NULL;
    if (e->msg)
        return ND_ERR_ARG;
    size_t n = (size_t)e->B * (size_t)e->nh, nh = (size_t)e->nh;
    int np = e->k.np;
    e->bwd_evals = 0;
    memcpy(e->a, a0, sizeof(nd_real) * n);
    for (int j = 0; j < e->nt; j++) {
        const unsigned char *jumped = e->jumped + (size_t)j * (size_t)e->B;
        for (int64_t b = 0; b < e->B; b++) /* the samples that kept h pass a on unchanged */
            for (size_t i = 0; i < nh; i++)
                e->a_in[(size_t)b * nh + i] = jumped[b] ? e->a[(size_t)b * nh + i] : 0;
        e->ek.jump_vjp(e->ts[j], e->pre + (size_t)j * n, p, e->a_in, rows_at(e, j), e->a_out,
                       e->gp, e->B, e->work);
        for (int i = 0; i < np; i++)
            grad_p[i] += e->gp[i];
        for (int64_t b = 0; b < e->B; b++)
            if (jumped[b])
                memcpy(e->a + (size_t)b * nh, e->a_out + (size_t)b * nh, sizeof(nd_real) * nh);
        if (j == e->nt - 1)
            break;
        /* the interval from ts[j + 1] back to ts[j]: a sample not yet observed there
         * was reset to 0 after it, so nothing flows back through it */
        for (int64_t b = 0; b < e->B; b++)
            for (size_t i = 0; i < nh; i++)
                e->a_in[(size_t)b * nh + i] = e->first[b] > j ? e->a[(size_t)b * nh + i] : 0;
        e->seg[0] = e->ts[j + 1];
        e->seg[1] = e->ts[j];
        NdLoss loss = {2, e->seg, carry, e};
        nd_real L = 0;
        memset(e->gp, 0, sizeof(nd_real) * (size_t)np);
        int status = nd_gradient_compute(e->g, p, e->post + (size_t)(j + 1) * n, &loss, &L, e->gp,
                                         e->a);
        e->bwd_evals += nd_gradient_get_num_rhs_evals(e->g) + nd_gradient_get_num_vjp_evals(e->g);
        if (status != ND_OK)
            return status;
        for (int i = 0; i < np; i++)
            grad_p[i] += e->gp[i];
    }
    return ND_OK;
}

const char *nd_ode_rnn_get_message(const NdOdeRnn *e)
{
    if (e->msg)
        return e->msg;
    const char *s = nd_solver_get_message(e->solver);
    return s && *s ? s : e->g ? nd_gradient_get_message(e->g) : "";
}

long nd_ode_rnn_get_forward_evals(const NdOdeRnn *e)
{
    return e->fwd_evals;
}

long nd_ode_rnn_get_backward_evals(const NdOdeRnn *e)
{
    return e->bwd_evals;
}
