/* A train's encoder kernels (encoder_kernels.h), from the IR sema lowered
 * (compiler/check/sema_encoder.c) and its derivatives from compiler/diff. */
#include "encoder_kernels.h"

#include "diff.h"

void encoder_kernels_build(Arena *a, IrBuilder *b, const SemaDirective *d, bool grads,
                           EncoderKernels *out)
{
    const SemaTrain *tr = &d->train;
    const SemaEncoder *enc = tr->encoder;
    const IrModel *em = enc->model;
    int nd = tr->eps_col + tr->n_eps, nh = enc->nh, n = 0;
    for (int k = 0; k < ENC_K_COUNT; k++)
        out->slot[k] = -1;
    out->blocked = NULL;
    PlanOutput *o = arena_alloc(a, sizeof *o * 4);
    o[0] = (PlanOutput){enc->jump, 0, 0, nh, 0, false, false};
    out->slot[ENC_K_JUMP] = n;
    out->specs[n++] = (PlanKernelSpec){.name = "jump", .n_outputs = 1, .outputs = o, .nd = nd};
    if (grads) {
        int np = em->n_params;
        IrNode **wrt = arena_alloc(a, sizeof(IrNode *) * (size_t)(np + 1));
        IrNode **g = arena_alloc(a, sizeof(IrNode *) * (size_t)(np + 1));
        wrt[0] = ir_model_state(b, em, 0);
        for (int j = 0; j < np; j++)
            wrt[1 + j] = ir_param(b, j, em->params[j].offset, em->params[j].shape);
        IrNode *cot = ir_model_adjoint(b, em, 0), *jump = enc->jump;
        out->blocked = diff_vjp_blocked(b, 1, &jump, &cot, np + 1, wrt, g);
        PlanOutput *og = arena_alloc(a, sizeof *og * (size_t)(np + 1));
        og[0] = (PlanOutput){g[0], 0, 0, nh, 0, false, false};
        for (int j = 0; j < np; j++)
            og[1 + j] = (PlanOutput){g[1 + j], 1, em->params[j].offset, 0, 1, false, false};
        out->slot[ENC_K_JUMP_VJP] = n;
        out->specs[n++] = (PlanKernelSpec){.name = "jump_vjp", .n_outputs = np + 1,
                                           .outputs = og, .nd = nd};
    }
    if (enc->mask) {
        o[1] = (PlanOutput){enc->mask, 0, 0, 1, 0, false, false};
        out->slot[ENC_K_MASK] = n;
        out->specs[n++] = (PlanKernelSpec){.name = "mask", .n_outputs = 1, .outputs = o + 1,
                                           .nd = nd};
    }
    out->n = n;
}
