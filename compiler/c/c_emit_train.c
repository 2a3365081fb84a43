/* emit-c's train directives: for the index-th train on model M, with prefix
 * P = M_train<index>, the loss kernels of compiler/plan/train_kernels.h as C, the
 * kernel tables of the (augmented) model and the loss, and P_create /
 * P_gradient: the loss of a batch and its gradient through the ODE solve,
 * with the train's solver and gradient path, through the runtime's own
 * nd_train_loss (the numbers of one step of nodec's training loop). */
#include "c_emit_internal.h"

#include <string.h>

#include "train_kernels.h"

static const char *const slot_names[TRAIN_K_COUNT] = {"loss", "loss_grad", "final",
                                                      "final_grad", "init", "init_vjp"};

int emit_check_train(Compilation *c, const SemaDirective *d)
{
    const SemaTrain *tr = &d->train;
    const IrModel *m = tr->augmented;
    if (emit_check_solver(c, &tr->solver, d->loc, m) < 0)
        return -1;
    if (tr->n_samples > 0) { /* the emitted loop has no noise columns to fill */
        diag_error(&c->diag, tr->sample_locs[0], "emit-c does not handle sample (a draw at "
                                                 "every training step) yet: nodec run trains it");
        return -1;
    }
    if (tr->encoder) { /* the emitted loop has no encoder to run */
        diag_error(&c->diag, tr->encoder->name_loc, "emit-c does not handle encoders yet: "
                                                    "nodec run trains and evaluates them");
        return -1;
    }
    if (m->n_events > 0) { /* the emitted train's kernel table has no event kernels */
        diag_error(&c->diag, d->loc, "emit-c does not handle trains of models with events "
                                     "('%s') yet: nodec run trains it", m->name);
        return -1;
    }
    for (int i = 0; i < m->n_states; i++) {
        IrInitKind k = m->states[i].init_kind;
        if (k == IR_INIT_NORMAL || k == IR_INIT_UNIFORM || k == IR_INIT_RADEMACHER) {
            diag_error(&c->diag, d->loc, "emit-c does not handle states drawn at every solve "
                                         "('%s' of model '%s', e.g. div_est's noise) yet",
                       m->states[i].name, m->name);
            return -1;
        }
    }
    return 0;
}

static const char *grad_method(const SemaTrain *tr)
{
    if (tr->gradient && strcmp(tr->gradient, "backprop") == 0)
        return "ND_GRAD_BACKPROP";
    if (tr->gradient && strcmp(tr->gradient, "checkpoint") == 0)
        return "ND_GRAD_CHECKPOINT";
    return "ND_GRAD_ADJOINT";
}

/* P_kernels: the table the gradient's solver takes, its work covering the
 * loss kernels too (they share the scratch). */
static void write_kernel_table(Emit *e, const char *prefix, const char *kprefix,
                               const IrModel *m, const CcWork *w)
{
    bool jac = cc_model_has_jacobian(m);
    fprintf(e->out,
            "void %s_kernels(NdKernels *k)\n{\n    memset(k, 0, sizeof *k);\n"
            "    k->ny = %d;\n    k->np = %d;\n    k->work_fixed = %zu;\n"
            "    k->work_per_sample = %zu;\n    k->rhs = %s_rhs;\n    k->vjp = %s_vjp;\n"
            "    k->jac = %s%s;\n}\n\n",
            prefix, m->ny, m->np, w->work_fixed, w->work_per_sample, kprefix, kprefix,
            jac ? kprefix : "NULL", jac ? "_jac" : "");
    fprintf(e->hdr, "void %s_kernels(NdKernels *k); /* for the gradient's solver: %s_NY "
                    "states */\n", prefix, prefix);
}

static void write_loss_table(Emit *e, const char *prefix, const SemaTrain *tr,
                             const TrainKernels *tk)
{
    FILE *f = e->out;
    static const char *const fields[TRAIN_K_COUNT] = {"loss", "loss_grad", "final",
                                                      "final_grad", "init", "init_vjp"};
    fprintf(f, "void %s_loss_kernels(NdLossKernels *lk)\n{\n    memset(lk, 0, sizeof *lk);\n",
            prefix);
    for (int i = 0; i < TRAIN_K_COUNT; i++)
        fprintf(f, "    lk->%s = %s%s%s;\n", fields[i], tk->slot[i] >= 0 ? prefix : "NULL",
                tk->slot[i] >= 0 ? "_" : "", tk->slot[i] >= 0 ? slot_names[i] : "");
    fprintf(f, "    lk->nd = %d;\n    lk->cost_offset = %d;\n"
               "    lk->prepare = NULL;\n    lk->prepare_ctx = NULL;\n}\n\n",
            tr->data ? tr->data->ncols : 0,
            tr->cost_state >= 0 ? tr->augmented->states[tr->cost_state].offset : -1);
    fprintf(e->hdr, "void %s_loss_kernels(NdLossKernels *lk);\n", prefix);
}

/* P_create and P_gradient: the train's solver, gradient path and weights. */
static void write_gradient(Emit *e, const char *prefix, const SemaTrain *tr)
{
    FILE *f = e->out;
    fprintf(f, "NdTrainLoss *%s_create(int64_t B, int max_nt)\n{\n"
               "    static const NodecSolverSpec spec = ", prefix);
    emit_solver_spec(f, &tr->solver);
    fprintf(f, ";\n    NdKernels k;\n    NdLossKernels lk;\n    %s_kernels(&k);\n"
               "    %s_loss_kernels(&lk);\n"
               "    NdSolver *tmpl = nd_solver_create(&k, spec.method, B);\n"
               "    NdTrainLoss *g = NULL;\n"
               "    if (tmpl && nodec_solver_configure(tmpl, &spec) == 0)\n"
               "        g = nd_train_loss_create(&k, &lk, tmpl, %s, B, max_nt);\n"
               "    nd_solver_free(tmpl);\n",
            prefix, prefix, grad_method(tr));
    if (tr->seminorm)
        fputs("    if (g)\n        nd_gradient_set_seminorm(nd_train_loss_get_gradient(g), 1);\n",
              f);
    fprintf(f, "    return g;\n}\n\n"
               "int %s_gradient(NdTrainLoss *g, const nd_real *p, int nt, const nd_real *ts,\n"
               "    const nd_real *d, nd_real *L, nd_real *grad_p)\n{\n"
               "    int64_t B = nd_train_loss_get_batch(g);\n"
               "    return nd_train_loss_compute(g, p, nt, ts, d, (nd_real)1 / ((nd_real)B * "
               "(nd_real)nt),\n        (nd_real)1 / (nd_real)B, L, grad_p);\n}\n\n",
            prefix);
    fprintf(e->hdr, "NdTrainLoss *%s_create(int64_t B, int max_nt); /* NULL: no memory, bad "
                    "settings */\n", prefix);
    fprintf(e->hdr, "int %s_gradient(NdTrainLoss *g, const nd_real *p, int nt, const nd_real *ts,\n"
                    "    const nd_real *d, nd_real *L, nd_real *grad_p); /* ND_OK or a status */\n",
            prefix);
}

static void describe(Emit *e, const SemaTrain *tr, const char *prefix, int index)
{
    FILE *h = e->hdr;
    fprintf(e->out, "/* ---- train directive %d (model %s): its loss and gradient ---- */\n\n",
            index, tr->model->name);
    fprintf(h, "\n/* train directive %d on model %s: %s, gradient = %s%s. %s_gradient(g, p, nt, "
               "ts, d, &L, grad_p)\n * gives the batch's loss (mean over its B*nt observations; "
               "final terms: mean over B)\n * and dL/dp through the solve; d: nt*B data rows "
               "(row of sample b at observation j at\n * d + (j*B + b)*%s_ND), each ",
            index, tr->model->name, tr->solver.name ? tr->solver.name : "?",
            tr->gradient ? tr->gradient : "adjoint", tr->seminorm ? "(seminorm)" : "", prefix,
            prefix);
    int nd = tr->data ? tr->data->ncols : 0;
    for (int i = 0; i < nd; i++)
        fprintf(h, "%s%s", i ? ", " : "", tr->data->colnames[i]);
    fprintf(h, "%s. See docs/emit-c.md. */\n#define %s_ND %d\n#define %s_NY %d\n",
            nd ? "" : "(none)", prefix, nd, prefix, tr->augmented->ny);
}

int emit_train(Emit *e, const SemaDirective *d, int index)
{
    const SemaTrain *tr = &d->train;
    IrModel *m = tr->augmented;
    char prefix[280], name[300];
    snprintf(prefix, sizeof prefix, "%s_train%d", tr->model->name, index);
    describe(e, tr, prefix, index);
    CcWork work = {0};
    if (m != tr->model && emit_model_kernels(e, m, prefix, &work)) /* the model and __cost */
        return -1;
    if (m == tr->model) /* the loss kernels share the model's scratch */
        work = e->work[emit_model_index(e, m)];
    const KernelSet *set = kernel_sets_train(&e->c->sets, d);
    if (!set) { /* kernel_sets_plan makes one for every train emit-c writes */
        DIAG_INTERNAL(&e->c->diag, "train of model '%s' reached the C back end unplanned",
                      tr->model->name);
        return -1;
    }
    const TrainKernels tk = set->loss;
    for (int k = 0; k < tk.n; k++) {
        snprintf(name, sizeof name, "%s_%s", prefix, tk.specs[k].name);
        if (cc_emit_kernel(e->out, m, name, false, e->f32, &tk.specs[k], &work, &e->c->diag))
            return -1;
        emit_declare_kernel(e->hdr, name, false);
    }
    emit_work_size(e, prefix, &work);
    write_kernel_table(e, prefix, m != tr->model ? prefix : m->name, m, &work);
    write_loss_table(e, prefix, tr, &tk);
    write_gradient(e, prefix, tr);
    return 0;
}
