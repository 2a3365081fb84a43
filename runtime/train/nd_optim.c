/* First-order optimizers (see nd_optim.h). The update rules are PyTorch's
 * (torch.optim.SGD, Adam, AdamW, RMSprop), so the learning rates of torchdiffeq's
 * demos mean the same here:
 *   sgd       p -= lr g
 *   momentum  v = mu v + g;  p -= lr v
 *   adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   rmsprop   v = alpha v + (1-alpha) g^2;  p -= lr g / (sqrt(v) + eps)
 *   adamw     p -= lr wd p, then adam's update with g the gradient alone
 *             (decoupled weight decay: Loshchilov and Hutter, "Decoupled Weight
 *             Decay Regularization", ICLR 2019, as torch.optim.AdamW)
 * Otherwise weight_decay adds wd p to g first (L2, as PyTorch). lbfgs is
 * nd_lbfgs.c's. */
#include "nd_optim.h"

#include "nd_lbfgs.h"

#include "nd_real.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct NdOptim {
    NdOptimConfig cfg;
    int n;
    long t;    /* steps taken (adam's bias correction) */
    nd_real *m; /* momentum / adam first moment */
    nd_real *v; /* adam / rmsprop second moment */
    NdLbfgs *lb; /* lbfgs's history */
};

static const struct {
    const char *name;
    unsigned keys;
} optimizers[ND_OPTIM_COUNT] = {
#define ND_OPTIMIZER(name, ID, keys) {#name, keys},
#include "nd_optimizers.def"
};

int nd_optim_kind_from_name(const char *name)
{
    for (int i = 0; i < ND_OPTIM_COUNT; i++)
        if (name && strcmp(name, optimizers[i].name) == 0)
            return i;
    return -1;
}

const char *nd_optim_name(NdOptimKind kind)
{
    return (unsigned)kind < ND_OPTIM_COUNT ? optimizers[kind].name : "unknown";
}

unsigned nd_optim_keys(NdOptimKind kind)
{
    return (unsigned)kind < ND_OPTIM_COUNT ? optimizers[kind].keys : 0;
}

double *nd_optim_config_field(NdOptimConfig *cfg, NdOptimKey key)
{
    switch (key) {
#define ND_OPTIM_KEY(name, ID, def, range) case ND_OKEY_##ID: return &cfg->name;
#include "nd_optimizers.def"
    default: return NULL;
    }
}

NdOptimConfig nd_optim_defaults(NdOptimKind kind, double lr)
{
    NdOptimConfig c;
    c.kind = kind;
#define ND_OPTIM_KEY(name, ID, def, range) c.name = def;
#include "nd_optimizers.def"
#define ND_OPTIM_DEFAULT(ID, name, def) \
    if (kind == ND_OPT_##ID)            \
        c.name = def;
#include "nd_optimizers.def"
    c.lr = lr;
    return c;
}

NdOptim *nd_optim_create(const NdOptimConfig *cfg, int n)
{
    NdOptim *o = calloc(1, sizeof *o);
    size_t len = (size_t)(n > 0 ? n : 1);
    if (!o || !(o->m = calloc(len, sizeof(nd_real))) || !(o->v = calloc(len, sizeof(nd_real)))) {
        nd_optim_free(o);
        return NULL;
    }
    o->cfg = *cfg;
    o->n = n;
    if (cfg->kind == ND_OPT_LBFGS && !(o->lb = nd_lbfgs_create(n, (int)cfg->history))) {
        nd_optim_free(o);
        return NULL;
    }
    return o;
}

void nd_optim_free(NdOptim *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->v);
    nd_lbfgs_free(o->lb);
    free(o);
}

int nd_optim_step_search(NdOptim *o, nd_real *p, const nd_real *grad, nd_real L, NdLossAt loss_at,
                         void *ctx)
{
    if (o->cfg.kind != ND_OPT_LBFGS) {
        nd_optim_step(o, p, grad);
        return 0;
    }
    o->t++;
    return nd_lbfgs_step(o->lb, o->cfg.lr, p, grad, L, loss_at, ctx);
}

void nd_optim_step(NdOptim *o, nd_real *p, const nd_real *grad)
{
    const NdOptimConfig *c = &o->cfg;
    if (c->kind == ND_OPT_LBFGS) { /* without a loss to search on: PyTorch's fixed step */
        nd_optim_step_search(o, p, grad, 0, NULL, NULL);
        return;
    }
    o->t++;
    double bc1 = 1 - pow(c->beta1, (double)o->t), bc2 = 1 - pow(c->beta2, (double)o->t);
    for (int i = 0; i < o->n; i++) {
        nd_real g = grad[i] + (c->kind == ND_OPT_ADAMW ? 0 : c->weight_decay * p[i]);
        switch (c->kind) {
        case ND_OPT_SGD:
            p[i] -= c->lr * g;
            break;
        case ND_OPT_MOMENTUM:
            o->m[i] = c->momentum * o->m[i] + g;
            p[i] -= c->lr * o->m[i];
            break;
        case ND_OPT_ADAMW:
            p[i] *= 1 - c->lr * c->weight_decay; /* not through the moments: decoupled */
            /* fall through */
        case ND_OPT_ADAM:
            o->m[i] = c->beta1 * o->m[i] + (1 - c->beta1) * g;
            o->v[i] = c->beta2 * o->v[i] + (1 - c->beta2) * g * g;
            p[i] -= c->lr * (o->m[i] / bc1) / (sqrt(o->v[i] / bc2) + c->eps);
            break;
        case ND_OPT_RMSPROP:
            o->v[i] = c->alpha * o->v[i] + (1 - c->alpha) * g * g;
            p[i] -= c->lr * g / (sqrt(o->v[i]) + c->eps);
            break;
        case ND_OPT_LBFGS: break; /* above */
        }
    }
}

void nd_optim_set_lr(NdOptim *o, double lr)
{
    o->cfg.lr = lr;
}

double nd_optim_get_lr(const NdOptim *o)
{
    return o->cfg.lr;
}

NdOptimKind nd_optim_get_kind(const NdOptim *o)
{
    return o->cfg.kind;
}

long nd_optim_get_step(const NdOptim *o)
{
    return o->t;
}

void nd_optim_set_step(NdOptim *o, long t)
{
    o->t = t;
}

/* Which buffer each kind updates: nd_optim_step's cases. */
static bool uses_moment(NdOptimKind kind, NdOptimMoment which)
{
    switch (kind) {
    case ND_OPT_SGD: return false;
    case ND_OPT_MOMENTUM: return which == ND_MOMENT_M;
    case ND_OPT_RMSPROP: return which == ND_MOMENT_V;
    case ND_OPT_ADAM:
    case ND_OPT_ADAMW: return true;
    case ND_OPT_LBFGS: return false;
    }
    return false;
}

nd_real *nd_optim_get_moment(NdOptim *o, NdOptimMoment which)
{
    if (!uses_moment(o->cfg.kind, which))
        return NULL;
    return which == ND_MOMENT_M ? o->m : o->v;
}
