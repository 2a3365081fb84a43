/* Symbolic reverse-mode differentiation on the IR (tinygrad's gradient.py: one
 * rule per op, in one place). Every result is IR again, so it is simplified,
 * shared with the forward expressions (hash-consing), compiled, printed and
 * differentiated again like any other expression: a model whose rhs uses div()
 * has a correct adjoint because div() is IR too.
 *
 * Cotangents are ordinary IR nodes, normally IR_ADJOINT leaves (the adjoint
 * state a, laid out like y). Gradients with respect to a batched quantity are
 * per sample; gradients with respect to parameters are per sample too, and the
 * kernel that computes them sums over the batch (PlanOutput.batch_sum). */
#ifndef NODEC_DIFF_H
#define NODEC_DIFF_H

#include "ir.h"

/* Vector-Jacobian product: grads[k] = sum_i cot[i]^T d(roots[i]) / d(wrt[k]),
 * shaped like wrt[k] (zeros when roots do not depend on it). wrt are leaves
 * (IR_STATE, IR_PARAM, IR_TIME, IR_DATA nodes as sema builds them: one per
 * variable); cot[i] is shaped like roots[i]. */
void diff_vjp(IrBuilder *b, int n_roots, IrNode *const *roots, IrNode *const *cot, int n_wrt,
              IrNode *const *wrt, IrNode **grads);

/* floor and argmax: piecewise constant, so their derivative is zero almost
 * everywhere and useless to a gradient (it silently drops what the jumps do).
 * diff_vjp treats it as zero; the _blocked forms also return the first such
 * node the cotangent had to pass through on its way to a wrt (NULL: none), so
 * the caller can refuse the gradient at the node's source (ir_origin). */
bool diff_has_no_derivative(IrOp op);
const IrNode *diff_vjp_blocked(IrBuilder *b, int n_roots, IrNode *const *roots,
                               IrNode *const *cot, int n_wrt, IrNode *const *wrt, IrNode **grads);

/* Reports blocked node n at its origin: `what` would need its derivative (as
 * "the gradient of this train"), with a note at `at` naming the consumer
 * ("the train"); at `at` alone when n has no origin. */
void diff_report_blocked(Diag *diag, const IrBuilder *b, const IrNode *n, const char *what,
                         SrcLoc at, const char *consumer);

/* Exact divergence trace(d f / d x) of f (shaped like the state leaf x). */
IrNode *diff_divergence(IrBuilder *b, IrNode *f, IrNode *x);
IrNode *diff_divergence_blocked(IrBuilder *b, IrNode *f, IrNode *x, const IrNode **blocked);

/* Builds, once, the model's derived systems (see IrModel's adjoint fields):
 * adj_state[i] = a^T df/dx_i and adj_param[j] = a^T df/dtheta_j, with a the
 * IR_ADJOINT leaves of every state, and jac = df/dy as an [ny, ny] matrix. */
void diff_model_adjoint(IrBuilder *b, IrModel *m);
void diff_model_jacobian(IrBuilder *b, IrModel *m);
/* diffusion_dx (an SDE model, IrModel.diffusion): per state, g * dg/dx on the
 * diagonal (element e of g by element e of its own state), Milstein's term;
 * zeros for a state without noise. */
void diff_model_diffusion_dx(IrBuilder *b, IrModel *m);
/* adj_init: how a parameter in a state's initial value (state W = W0) receives
 * that state's adjoint at t0, through the initial value's own derivative. */
void diff_model_init_adjoint(IrBuilder *b, IrModel *m);

#endif
