/* The pipeline's kernel requests (compiler/driver.c runs them after checking):
 * which kernels each back end must translate for a checked program, and the
 * differentiation that builds their IR. A kernel set is one back-end module:
 * a model with the derived kernels its directives need (vjp, jac, the fused
 * rhs_vjp), or a train directive's augmented model with its loss and
 * initial-state kernels. After kernel_sets_derive every IR node a set names
 * exists, so a back end only translates what it is handed. */
#ifndef NODEC_KERNEL_SETS_H
#define NODEC_KERNEL_SETS_H

#include <stdbool.h>

#include "arena.h"
#include "diag.h"
#include "sema.h"
#include "encoder_kernels.h"
#include "event_kernels.h"
#include "train_kernels.h"

/* What a compilation is planned for (a bit set): the JIT (`nodec run`), the C
 * back end (`nodec emit-c`), the printed adjoint system (`nodec adjoint`). */
enum { TARGET_JIT = 1, TARGET_C = 2, TARGET_SYSTEM = 4 };

/* The C back end writes a model's dense Jacobian kernel only up to this many
 * state elements: the kernel is a dense [ny, ny] matrix of expressions, and
 * past this size its IR alone is too big to build for a file that uses no
 * implicit solver (div_est's 2000 x 2 state would be 16 million entries);
 * emit-c refuses implicit solvers for larger models. */
enum { KERNEL_SETS_C_JACOBIAN_MAX_NY = 64 };
bool kernel_sets_c_has_jacobian(const IrModel *m);

typedef struct KernelSet {
    IrModel *model;             /* a program model, or a train's augmented copy */
    const SemaDirective *train; /* the train whose loss kernels this set holds, or NULL */
    int targets;                /* TARGET_*: who translates (or prints) this set */
    /* What the JIT compiles besides the rhs (the C back end always writes the
     * rhs, the vjp and, within KERNEL_SETS_C_JACOBIAN_MAX_NY, the jac): */
    bool vjp;                   /* a^T df/dy, a^T df/dp (model->adj_state, adj_param) */
    bool jac;                   /* df/dy (model->jac), for an implicit solver */
    bool rhs_vjp;               /* the fused rhs + vjp of the adjoint's backward stages */
    bool init_adjoint;          /* the initial values' parameter terms (model->adj_init) */
    TrainKernels loss;          /* train sets: loss, final loss and init kernels with gradients */
    EventKernels events;        /* the model's event kernels (a train's with their gradients) */
    /* An SDE model's (IrModel.diffusion): "diffusion" (g per sample, laid out
     * like y) and "diffusion_dx" (g * dg/dx on the diagonal, likewise), the
     * kernels nd_kernels.h's diffusion and diffusion_dx; a train's then
     * "diffusion_vjp" and "diffusion_dx_vjp" (their vector-Jacobian
     * products, nd_kernels.h); n_sde 0, 2 or 4. */
    PlanKernelSpec sde[4];
    int n_sde;
    const IrNode *sde_blocked; /* the first floor/argmax the vjps pass, or NULL */
    /* The encoder of train (or evaluate) encoder_of (SemaTrain.encoder): model is
     * the encoder's own (its hidden state, the train model's parameters), with its
     * jump and mask kernels in enc; NULL and n = 0 for other sets. */
    const SemaDirective *encoder_of;
    EncoderKernels enc;
} KernelSet;

typedef struct KernelSets {
    KernelSet *sets; /* arena-allocated */
    int n;
} KernelSets;

/* Decides the sets for the given targets: for the JIT, one set per model that a
 * solve or simulate integrates (jac when one of them uses an implicit solver)
 * and one per train; for C, every model and every train; for the printed
 * system, every model's vjp and initial-value terms.
 * With TARGET_C, the JIT gets only what emit-c runs before it writes: in a
 * file that trains, its simulations and trains. */
KernelSets kernel_sets_plan(Arena *arena, const SemaProgram *prog, int targets);

/* Builds the IR of every derived kernel the sets ask for (compiler/diff).
 * Returns 0, or -1 after reporting through diag (a train state that has no
 * initial value). */
int kernel_sets_derive(KernelSets *ks, Arena *arena, IrBuilder *b, Diag *diag);

/* The set of a model (its solves' kernels) or of a train directive; NULL when
 * the plan made none. */
const KernelSet *kernel_sets_model(const KernelSets *ks, const IrModel *m);
const KernelSet *kernel_sets_train(const KernelSets *ks, const SemaDirective *d);
/* The set of the encoder of train or evaluate d; NULL when it has none. */
const KernelSet *kernel_sets_encoder(const KernelSets *ks, const SemaDirective *d);

/* Prints every set's derived IR (`--dump=grad`): per set, the SSA listing of
 * each kernel's outputs, shared subexpressions numbered once. */
void kernel_sets_dump(FILE *out, const KernelSets *ks);

#endif
