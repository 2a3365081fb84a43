/* First-order optimizers for training: sgd, momentum, adam, rmsprop (PyTorch's
 * definitions and defaults, so torchdiffeq's demos carry over). State is
 * allocated at create; a step allocates nothing. */
#ifndef ND_OPTIM_H
#define ND_OPTIM_H

typedef enum NdOptimKind { ND_OPT_SGD, ND_OPT_MOMENTUM, ND_OPT_ADAM, ND_OPT_RMSPROP } NdOptimKind;

typedef struct NdOptimConfig {
    NdOptimKind kind;
    double lr;
    double momentum;     /* momentum: 0.9 */
    double beta1, beta2; /* adam: 0.9, 0.999 */
    double alpha;        /* rmsprop smoothing: 0.99 */
    double eps;          /* adam 1e-8, rmsprop 1e-8 */
    double weight_decay; /* 0 */
} NdOptimConfig;

typedef struct NdOptim NdOptim;

/* Defaults for kind with learning rate lr. -1 from nd_optim_kind_from_name when unknown. */
NdOptimConfig nd_optim_defaults(NdOptimKind kind, double lr);
int nd_optim_kind_from_name(const char *name);
NdOptim *nd_optim_create(const NdOptimConfig *cfg, int n);
void nd_optim_free(NdOptim *o);
/* p -= update(grad), in place. */
void nd_optim_step(NdOptim *o, double *p, const double *grad);

#endif
