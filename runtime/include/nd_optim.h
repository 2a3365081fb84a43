/* Optimizers for training: sgd, momentum, adam, rmsprop, adamw and lbfgs (PyTorch's
 * definitions and defaults, so torchdiffeq's demos carry over), listed with
 * their arguments in nd_optimizers.def. State is allocated at create; a step
 * allocates nothing. */
#ifndef ND_OPTIM_H
#define ND_OPTIM_H

#include "nd_real.h"

typedef enum NdOptimKind {
#define ND_OPTIMIZER(name, ID, keys) ND_OPT_##ID,
#include "nd_optimizers.def"
} NdOptimKind;

/* Outside NdOptimKind, so that a switch over the kinds needs no case for it. */
enum {
    ND_OPTIM_COUNT = 0
#define ND_OPTIMIZER(name, ID, keys) + 1
#include "nd_optimizers.def"
};

/* The optimizers' arguments, and each one's bit in a set of them. */
typedef enum NdOptimKey {
#define ND_OPTIM_KEY(name, ID, def, range) ND_OKEY_##ID,
#include "nd_optimizers.def"
    ND_OPTIM_KEY_COUNT
} NdOptimKey;

enum {
#define ND_OPTIM_KEY(name, ID, def, range) ND_OBIT_##ID = 1u << ND_OKEY_##ID,
#include "nd_optimizers.def"
};

/* The kind and one field per argument (lr, beta1, ..., weight_decay). */
typedef struct NdOptimConfig {
    NdOptimKind kind;
#define ND_OPTIM_KEY(name, ID, def, range) double name; /* a setting: double in both precisions */
#include "nd_optimizers.def"
} NdOptimConfig;

typedef struct NdOptim NdOptim;

/* Defaults for kind with learning rate lr. -1 from nd_optim_kind_from_name when unknown. */
NdOptimConfig nd_optim_defaults(NdOptimKind kind, double lr);
int nd_optim_kind_from_name(const char *name);
const char *nd_optim_name(NdOptimKind kind);
/* The ND_OBIT_ set of the arguments kind takes. */
unsigned nd_optim_keys(NdOptimKind kind);
/* The field of cfg that holds key. */
double *nd_optim_config_field(NdOptimConfig *cfg, NdOptimKey key);
NdOptim *nd_optim_create(const NdOptimConfig *cfg, int n);
void nd_optim_free(NdOptim *o);
/* p -= update(grad), in place. */
void nd_optim_step(NdOptim *o, nd_real *p, const nd_real *grad);
/* The batch loss at parameters p (lbfgs's line search): 0, or nonzero when it
 * cannot be computed there (a failed solve), which rejects the trial point. */
typedef int (*NdLossAt)(void *ctx, const nd_real *p, nd_real *L);
/* nd_optim_step with the loss L at p and a way to evaluate it elsewhere: lbfgs
 * backtracks along its direction until the Armijo condition holds; the
 * first-order optimizers ignore them. The number of loss evaluations made. */
int nd_optim_step_search(NdOptim *o, nd_real *p, const nd_real *grad, nd_real L, NdLossAt loss_at,
                         void *ctx);
/* The learning rate of the next steps: a schedule sets it before each one
 * (adamw's decay, lr wd p, follows it, as in PyTorch). */
void nd_optim_set_lr(NdOptim *o, double lr);
double nd_optim_get_lr(const NdOptim *o);
NdOptimKind nd_optim_get_kind(const NdOptim *o);

/* The state a resumed run needs to continue exactly: the steps taken (adam's
 * bias correction) and the moment buffers, n doubles each. */
typedef enum NdOptimMoment {
    ND_MOMENT_M, /* momentum's velocity, adam's first moment */
    ND_MOMENT_V  /* adam's and rmsprop's second moment */
} NdOptimMoment;
long nd_optim_get_step(const NdOptim *o);
void nd_optim_set_step(NdOptim *o, long t);
/* The buffer, writable (a load fills it), or NULL when o's kind keeps no such
 * moment (sgd none, momentum m, rmsprop v, adam and adamw both; lbfgs's history
 * is not saved). */
nd_real *nd_optim_get_moment(NdOptim *o, NdOptimMoment which);

#endif
