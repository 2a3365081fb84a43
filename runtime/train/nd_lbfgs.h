/* L-BFGS for small full-batch fits (nd_optim's lbfgs): PyTorch's torch.optim.LBFGS
 * iteration (two-loop recursion, first step min(1, 1/|g|_1) lr, then lr), one
 * iteration per optimizer step, with an optional backtracking Armijo line search
 * on the caller's loss. Its history is allocated at create. Private to nd_optim. */
#ifndef ND_LBFGS_H
#define ND_LBFGS_H

#include "nd_optim.h"

typedef struct NdLbfgs NdLbfgs;

NdLbfgs *nd_lbfgs_create(int n, int history);
void nd_lbfgs_free(NdLbfgs *o);
/* One iteration from p (loss L, gradient grad) with learning rate lr; with
 * loss_at, the step is halved until the loss decreases enough (Armijo). The
 * number of loss evaluations it made. */
int nd_lbfgs_step(NdLbfgs *o, nd_real lr, nd_real *p, const nd_real *grad, nd_real L,
                  NdLossAt loss_at, void *ctx);

#endif
