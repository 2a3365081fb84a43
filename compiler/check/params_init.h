/* Parameter values before any training: every model's parameters drawn or
 * evaluated in declaration order from the program's seed. One implementation
 * for `nodec run` (tools/run.c) and `nodec emit-c` (compiler/c/c_emit.c), so an
 * emitted program starts from the very numbers a run starts from. */
#ifndef NODEC_PARAMS_INIT_H
#define NODEC_PARAMS_INIT_H

#include <stdbool.h>

#include "nd_random.h"
#include "sema.h"

/* The program's seed: `option seed`, else 0. */
uint64_t params_seed(const SemaProgram *prog);

/* Fills params[i] (models[i]->np doubles, caller allocated) for every model in
 * declaration order, drawing from stream 0 of the program's seed: draws
 * (`~ normal`, `~ uniform`, `~ glorot`), expressions (`= expr`, which may read
 * the parameters before it) and zeros. */
void params_init(const SemaProgram *prog, double *const *params);

/* The random stream of directive dir_index (prog->dirs[dir_index]): its
 * batches, drawn states and div_est noise come from stream dir_index + 1 of
 * the seed, so they depend neither on the parameters' draws nor on how much
 * earlier directives drew (a longer train does not change a later solve's
 * samples, and emitted C can replay any solve's draws on their own). */
uint64_t params_directive_stream(int dir_index);
void params_directive_rng(const SemaProgram *prog, int dir_index, NdRandom *rng);

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
