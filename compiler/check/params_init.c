/* Parameter initialisation (params_init.h): the order of the draws is part of
 * the contract (a seed gives the same parameters in every version, in `nodec
 * run` and in emitted C), so it lives in one place. */
#include "params_init.h"

#include <math.h>
#include <stdlib.h>

void params_eval_init(IrNode *init, double t, const double *p, double *out, int size)
{
    int n = ir_shape_size(init->shape);
    double *tmp = malloc(sizeof(double) * (size_t)(n > size ? n : size));
    ir_eval(1, &init, t, NULL, p, &tmp);
    for (int i = 0; i < size; i++)
        out[i] = tmp[n == 1 ? 0 : i];
    free(tmp);
}

double params_draw(NdRandom *rng, IrInitKind kind, double a, double b)
{
    switch (kind) {
    case IR_INIT_NORMAL: return nd_random_normal(rng, a, b);
    case IR_INIT_UNIFORM: return nd_random_uniform(rng, a, b);
    case IR_INIT_RADEMACHER: return nd_random_u64(rng) >> 63 ? 1.0 : -1.0;
    default: return 0;
    }
}

/* Glorot/Xavier uniform: fan-in is a matrix's columns, fan-out its rows (a vector
 * counts as one column); a filter bank [Cout, Cin, kh, kw] has fan-in Cin kh kw and
 * fan-out Cout kh kw (PyTorch's xavier_uniform_). */
static double glorot_limit(IrShape s)
{
    double fan_out = s.rows, fan_in = s.rank >= 2 ? s.cols : 1;
    if (s.rank == 4)
        fan_out *= (double)s.dim[2] * s.dim[3];
    return sqrt(6.0 / (fan_in + fan_out));
}

static void init_param(NdRandom *rng, const IrVar *v, double *p)
{
    int size = ir_shape_size(v->shape);
    double *x = p + v->offset;
    for (int i = 0; i < size; i++) {
        switch (v->init_kind) {
        case IR_INIT_NONE: x[i] = 0; break;
        case IR_INIT_EXPR: break;
        case IR_INIT_NORMAL:
        case IR_INIT_UNIFORM:
        case IR_INIT_RADEMACHER: x[i] = params_draw(rng, v->init_kind, v->dist_a, v->dist_b); break;
        case IR_INIT_GLOROT: {
            double lim = glorot_limit(v->shape);
            x[i] = nd_random_uniform(rng, -lim, lim);
            break;
        }
        }
    }
    if (v->init_kind == IR_INIT_EXPR)
        params_eval_init(v->init, 0, p, x, size);
}

uint64_t params_seed(const SemaProgram *prog)
{
    return prog->has_seed ? prog->seed : 0;
}

void params_init(const SemaProgram *prog, double *const *params)
{
    NdRandom rng;
    nd_random_seed_stream(&rng, params_seed(prog), 0);
    for (int i = 0; i < prog->n_models; i++)
        for (int j = 0; j < prog->models[i]->n_params; j++)
            init_param(&rng, &prog->models[i]->params[j], params[i]);
}

uint64_t params_directive_stream(int dir_index)
{
    return 1 + (uint64_t)dir_index;
}

void params_directive_rng(const SemaProgram *prog, int dir_index, NdRandom *rng)
{
    nd_random_seed_stream(rng, params_seed(prog), params_directive_stream(dir_index));
}

bool params_is_drawn(IrInitKind kind)
{
    return kind == IR_INIT_NORMAL || kind == IR_INIT_UNIFORM || kind == IR_INIT_RADEMACHER;
}

SemaDraw params_state_draw(const IrModel *m, const SemaDraw *draw, int i)
{
    if (draw && draw[i].kind != IR_INIT_NONE)
        return draw[i];
    const IrVar *v = &m->states[i];
    return (SemaDraw){params_is_drawn(v->init_kind) ? v->init_kind : IR_INIT_NONE, v->dist_a, v->dist_b};
}
