/* First-order optimizers for training: sgd, momentum, adam, rmsprop (PyTorch's
 * definitions and defaults, so torchdiffeq's demos carry over), listed with
 * their arguments in nd_optimizers.def. State is allocated at create; a step
 * allocates nothing. */
#ifndef ND_OPTIM_H
#define ND_OPTIM_H

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
#define ND_OPTIM_KEY(name, ID, def, range) double name;
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
void nd_optim_step(NdOptim *o, double *p, const double *grad);

#endif
