/* A train's or an evaluate's encoder at run time (run_internal.h, TrainEncoder):
 * the compiled encoder's kernels (compiler/plan/encoder_kernels.h) driven by the
 * runtime's NdOdeRnn, between tools/train.c's rows and its loss. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "run_internal.h"

int train_encoder_create(Runner *r, const SemaDirective *d, int B, int rest, int max_nt,
                         int ncols, bool grad, TrainEncoder *te)
{
    const SemaTrain *tr = &d->train;
    *te = (TrainEncoder){.enc = tr->encoder, .B = B, .ncols = ncols};
    if (!te->enc)
        return 0;
    const CompiledSet *cs = compilation_encoder_kernels(r->c, d);
    if (!cs || !cs->jit)
        INTERNAL_ERROR("the encoder of model '%s' reached the runner uncompiled",
                       tr->model->name);
    NdOdeRnnKernels ek = {cs->enc[ENC_K_JUMP], cs->enc[ENC_K_JUMP_VJP], cs->enc[ENC_K_MASK],
                          ncols};
    NdSolver *tmpl = run_make_solver(r, &te->enc->solver, te->enc->name_loc, &cs->kernels, B);
    if (!tmpl)
        return -1;
    nd_solver_set_element_namer(tmpl, run_name_element, te->enc->model);
    NdGradMethod gm = run_grad_method(tr->gradient);
    te->rnn = nd_ode_rnn_create(&cs->kernels, &ek, tmpl, grad, gm, B, max_nt);
    if (rest != B)
        te->rnn_rest = nd_ode_rnn_create(&cs->kernels, &ek, tmpl, grad, gm, rest, max_nt);
    nd_solver_free(tmpl);
    te->h0 = calloc((size_t)B * (size_t)te->enc->nh, sizeof(nd_real));
    if (!te->rnn || (rest != B && !te->rnn_rest) || !te->h0) {
        diag_error(&r->c->diag, te->enc->name_loc, "out of memory for encoder '%s'",
                   te->enc->name);
        return -1;
    }
    return 0;
}

void train_encoder_free(TrainEncoder *te)
{
    nd_ode_rnn_free(te->rnn);
    nd_ode_rnn_free(te->rnn_rest);
    free(te->h0);
}

int train_encoder_forward(TrainEncoder *te, const nd_real *p, int B, int nt, const nd_real *ts,
                          nd_real *drows, const unsigned char *observed)
{
    te->failed[0] = '\0';
    if (!te->enc)
        return ND_OK;
    NdOdeRnn *rnn = B == te->B ? te->rnn : te->rnn_rest;
    int status = nd_ode_rnn_forward(rnn, p, nt, ts, drows, observed, te->h0);
    te->nfe_fwd = nd_ode_rnn_get_forward_evals(rnn);
    if (status != ND_OK) {
        snprintf(te->failed, sizeof te->failed, "encoder %s: %s", te->enc->name,
                 nd_ode_rnn_get_message(rnn));
        return status;
    }
    size_t nh = (size_t)te->enc->nh, w = (size_t)te->ncols;
    for (int j = 0; j < nt; j++) /* a sample's encoding is the same in all its rows */
        for (int b = 0; b < B; b++)
            memcpy(drows + ((size_t)j * (size_t)B + (size_t)b) * w + te->enc->col,
                   te->h0 + (size_t)b * nh, sizeof(nd_real) * nh);
    return ND_OK;
}

int train_encoder_backward(TrainEncoder *te, const nd_real *p, const nd_real *a0,
                           nd_real *grad_p)
{
    te->failed[0] = '\0';
    if (!te->enc)
        return ND_OK;
    int status = nd_ode_rnn_backward(te->rnn, p, a0, grad_p);
    te->nfe_bwd = nd_ode_rnn_get_backward_evals(te->rnn);
    if (status != ND_OK)
        snprintf(te->failed, sizeof te->failed, "encoder %s, backward: %s", te->enc->name,
                 nd_ode_rnn_get_message(te->rnn));
    return status;
}
