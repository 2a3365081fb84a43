/* Learning-rate schedules (see nd_schedule.h). With W = warmup, steps counted
 * from s = 1 and k = s - W - 1 the decay's own count from 0:
 *   warm-up      lr s / W for s <= W (a linear ramp that reaches lr at s = W)
 *   constant     lr
 *   cosine       min_lr + (lr - min_lr) (1 + cos(pi k / T)) / 2,  T = steps - W
 *   step         lr gamma^floor(k / every)
 *   exponential  lr gamma^k
 * These are PyTorch's SequentialLR([LinearLR(start_factor = 1/W, total_iters = W - 1),
 * D], milestones = [W]) with D CosineAnnealingLR(T_max = T, eta_min = min_lr)
 * (Loshchilov and Hutter, "SGDR", ICLR 2017, without restarts), StepLR(every,
 * gamma) or ExponentialLR(gamma): the decay starts at lr on the first step after
 * the warm-up. tests/unit/check_schedule.c holds PyTorch's values. */
#include "nd_schedule.h"

#include <math.h>
#include <string.h>

/* M_PI is POSIX, not C99: the emitted programs that carry this file may be strict. */
#define ND_PI 3.14159265358979323846

static const struct {
    const char *name;
    unsigned keys, required;
} schedules[ND_SCHEDULE_COUNT] = {
#define ND_SCHEDULE(name, ID, keys, required) {#name, keys, required},
#include "nd_schedules.def"
};

int nd_schedule_kind_from_name(const char *name)
{
    for (int i = 0; i < ND_SCHEDULE_COUNT; i++)
        if (name && strcmp(name, schedules[i].name) == 0)
            return i;
    return -1;
}

const char *nd_schedule_name(NdScheduleKind kind)
{
    return (unsigned)kind < ND_SCHEDULE_COUNT ? schedules[kind].name : "unknown";
}

unsigned nd_schedule_keys(NdScheduleKind kind)
{
    return (unsigned)kind < ND_SCHEDULE_COUNT ? schedules[kind].keys : 0;
}

unsigned nd_schedule_required(NdScheduleKind kind)
{
    return (unsigned)kind < ND_SCHEDULE_COUNT ? schedules[kind].required : 0;
}

double *nd_schedule_field(NdSchedule *s, NdScheduleKey key)
{
    switch (key) {
#define ND_SCHED_KEY(name, ID, def, range) case ND_SKEY_##ID: return &s->name;
#include "nd_schedules.def"
    default: return NULL;
    }
}

NdSchedule nd_schedule_defaults(NdScheduleKind kind, double lr, long steps)
{
    NdSchedule s = {.kind = kind, .lr = lr, .steps = steps};
#define ND_SCHED_KEY(name, ID, def, range) s.name = def;
#include "nd_schedules.def"
    return s;
}

double nd_schedule_lr(const NdSchedule *s, long step)
{
    long W = (long)s->warmup;
    if (step <= W)
        return s->lr * (double)step / (double)W;
    double k = (double)(step - W - 1);
    switch (s->kind) {
    case ND_SCHED_CONSTANT: break;
    case ND_SCHED_COSINE: {
        double T = (double)(s->steps - W);
        if (T < 1) /* no step after the warm-up: never asked (the checker refuses it) */
            break;
        return s->min_lr + (s->lr - s->min_lr) * (1 + cos(ND_PI * k / T)) / 2;
    }
    case ND_SCHED_STEP: return s->lr * pow(s->gamma, floor(k / s->every));
    case ND_SCHED_EXPONENTIAL: return s->lr * pow(s->gamma, k);
    }
    return s->lr;
}
