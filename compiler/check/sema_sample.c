/* `sample z ~ normal(mu, sigma)` in a train or evaluate block: the reparameterised
 * draw z = mu + sigma * eps with eps ~ N(0, I), one per sample of the batch and per
 * element (Kingma and Welling 2014). eps is data to the kernels: hidden columns after
 * the data set's (SemaTrain.eps_col on), which the runner fills with fresh draws at
 * every step and holds through the step's forward and backward passes and
 * --check-gradient's differences (tools/train.c), so z is IR in mu and sigma, and the
 * loss, init and their derivatives treat it like any expression of the data row and
 * the parameters. */
#include "sema.h"

#include <string.h>

#include "sema_internal.h"

bool sema_block_name_free(Sema *S, ModelInfo *mi, const SemaTrain *tr, const char *name,
                          SrcLoc loc, const char *what)
{
    const char *taken = NULL;
    if (scope_lookup(mi->scope, name))
        taken = "a name of the model";
    else if (sema_find_data(S, name))
        taken = "a data set";
    else if (strcmp(name, "t") == 0 || strcmp(name, "pi") == 0 || sema_is_builtin(name))
        taken = "a builtin";
    if (taken) {
        diag_error(S->diag, loc, "%s '%s' would hide %s '%s': give the %s a name of its own",
                   what, name, taken, name, what);
        return false;
    }
    const SemaEncoder *enc = tr->encoder;
    if (enc && strcmp(enc->name, name) == 0) {
        diag_error(S->diag, loc, "%s '%s' has the name of the encoder", what, name);
        diag_note(S->diag, enc->name_loc, "the encoder '%s' is here", name);
        return false;
    }
    for (int j = 0; j < tr->n_samples; j++)
        if (strcmp(tr->sample_names[j], name) == 0) {
            diag_error(S->diag, loc, "duplicate sample '%s'", name);
            diag_note(S->diag, tr->sample_locs[j], "the first '%s' is here", name);
            return false;
        }
    return true;
}

/* The distribution: normal(mu, sigma), two values; NULL after an error. */
static const Ast *normal_call(Sema *S, const Ast *e)
{
    const Ast *d = e->a;
    if (d->kind != AST_CALL && d->kind != AST_NAME) {
        diag_error(S->diag, d->loc, "expected a distribution: sample %s ~ normal(mu, sigma)",
                   e->name);
        return NULL;
    }
    if (strcmp(d->name, "normal") != 0) {
        diag_error(S->diag, d->loc, "sample draws from normal(mu, sigma) only (a reparameterised "
                   "Gaussian), not from '%s'", d->name);
        return NULL;
    }
    bool named = false;
    for (int i = 0; d->kind == AST_CALL && i < d->list.n; i++)
        named |= d->list.items[i]->kind == AST_ARG;
    if (d->kind != AST_CALL || d->list.n != 2 || named) {
        diag_error(S->diag, d->loc, "normal takes two values here, the mean and the standard "
                   "deviation: sample %s ~ normal(mu, sigma)", e->name);
        return NULL;
    }
    return d;
}

static IrNode *sample_arg(Sema *S, ModelInfo *mi, const Ast *e, const char *what)
{
    Val v = sema_expr_in(S, mi->scope, e, ALLOW_PARAM | ALLOW_DATA, what);
    if (v.kind == V_ERR)
        return NULL;
    if (v.kind != V_NODE) {
        diag_error(S->diag, e->loc, "%s must be a value, not a function", what);
        return NULL;
    }
    return v.node;
}

/* mu and sigma of a time series' row would be each observation's in the loss (a loss
 * reads its observation's row) but the first's in init: refused rather than mixed. */
static bool sample_reads_series(Sema *S, const SemaTrain *tr, const Ast *e, IrNode *mu,
                                IrNode *sigma)
{
    if (!tr->data || tr->data->t_col < 0 ||
        !(sema_reads_row(S, mu, tr->data->ncols) || sema_reads_row(S, sigma, tr->data->ncols)))
        return false;
    diag_error(S->diag, e->a->loc, "sample '%s' reads the time series '%s': a sample's mean and "
               "standard deviation may read a data set of samples (no t column), an encoder of "
               "the series and the parameters, not a time series' rows", e->name,
               tr->data->name);
    return true;
}

/* The value of sample e, or NULL after an error. */
static IrNode *sample_value(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *e)
{
    const Ast *d = normal_call(S, e);
    if (!d)
        return NULL;
    IrNode *mu = sample_arg(S, mi, d->list.items[0], "a sample's mean");
    IrNode *sigma = sample_arg(S, mi, d->list.items[1], "a sample's standard deviation");
    if (!mu || !sigma || sample_reads_series(S, tr, e, mu, sigma))
        return NULL;
    if (sigma->shape.rank != 0 && !ir_shape_eq(sigma->shape, mu->shape)) {
        char bm[32], bs[32];
        diag_error(S->diag, d->list.items[1]->loc, "the standard deviation of sample '%s' is %s "
                   "but its mean is %s: give them one shape, or a scalar standard deviation",
                   e->name, sema_shape(sigma->shape, bs), sema_shape(mu->shape, bm));
        return NULL;
    }
    IrNode *eps = ir_data(S->ir, 0, tr->eps_col + tr->n_eps, mu->shape);
    tr->n_eps += ir_shape_size(mu->shape);
    return ir_add(S->ir, mu, ir_mul(S->ir, sigma, eps));
}

/* A sample that failed keeps its name (value NULL), so its uses stay quiet. */
static void lower_sample(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *e)
{
    if (!sema_block_name_free(S, mi, tr, e->name, e->name_loc, "sample"))
        return;
    int k = tr->n_samples++;
    tr->sample_names[k] = e->name;
    tr->sample_locs[k] = e->name_loc;
    tr->samples[k] = sample_value(S, mi, tr, e);
}

void sema_train_samples(Sema *S, ModelInfo *mi, SemaTrain *tr, const Ast *const *entries, int n)
{
    tr->eps_col = (tr->data ? tr->data->ncols : 0) + (tr->encoder ? tr->encoder->nh : 0);
    S->sample_scope = mi->scope;
    S->sample_train = tr;
    if (n == 0)
        return;
    tr->sample_names = arena_alloc(S->arena, sizeof(const char *) * (size_t)n);
    tr->sample_locs = arena_alloc(S->arena, sizeof(SrcLoc) * (size_t)n);
    tr->samples = arena_alloc(S->arena, sizeof(IrNode *) * (size_t)n);
    for (int i = 0; i < n; i++)
        lower_sample(S, mi, tr, entries[i]);
}

bool sema_sample_lookup(Sema *S, Scope *sc, const char *name, IrNode **value)
{
    const SemaTrain *tr = S->sample_train;
    if (tr && sc == S->sample_scope && sema_encoder_lookup(tr, S->ir, name, value))
        return true;
    for (int i = 0; tr && sc == S->sample_scope && i < tr->n_samples; i++)
        if (strcmp(tr->sample_names[i], name) == 0) {
            *value = tr->samples[i];
            return true;
        }
    return false;
}
