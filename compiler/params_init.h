/* Parameter values before any training: every model's parameters drawn or
 * evaluated in declaration order from the program's seed. One implementation
 * for `nodec run` (tools/run.c) and `nodec emit-c` (compiler/emit_c.c), so an
 * emitted program starts from the very numbers a run starts from. */
#ifndef NODEC_PARAMS_INIT_H
#define NODEC_PARAMS_INIT_H

#include <stdbool.h>

#include "nd_random.h"
#include "sema.h"

/* Seeds rng with the program's seed (0 without `option seed`) and fills
 * params[i] (models[i]->np doubles, caller allocated) for every model in
 * declaration order: draws (`~ normal`, `~ uniform`, `~ glorot`), expressions
 * (`= expr`, which may read the parameters before it) and zeros. The caller
 * goes on drawing from rng (batches, drawn states). */
void params_init(const SemaProgram *prog, NdRandom *rng, double *const *params);

/* Evaluates an initial-value expression (constants and parameters) at time t
 * into out[size]; a scalar fills a tensor. */
void params_eval_init(IrNode *init, double t, const double *p, double *out, int size);

/* A kind drawn from the random generator: NORMAL, UNIFORM or RADEMACHER. */
bool params_is_drawn(IrInitKind kind);

/* How state i of m starts when it is drawn at each solve: the solve's `x ~ dist`
 * (draw may be NULL), else the model's own draw (div_est's noise); kind
 * IR_INIT_NONE when the state is not drawn. */
SemaDraw params_state_draw(const IrModel *m, const SemaDraw *draw, int i);

/* One draw of kind: NORMAL (mean a, sd b), UNIFORM [a, b), RADEMACHER (+-1); else 0. */
double params_draw(NdRandom *rng, IrInitKind kind, double a, double b);

#endif
