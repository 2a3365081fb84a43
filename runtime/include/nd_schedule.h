/* Learning-rate schedules for training: the lr of each optimizer step, from the
 * optimizer's lr, a linear warm-up and one of the decays of nd_schedules.def
 * (PyTorch's torch.optim.lr_scheduler definitions: SequentialLR of LinearLR and
 * CosineAnnealingLR, StepLR or ExponentialLR). A pure function of the step, so
 * a training loop sets the lr before each step and allocates nothing. */
#ifndef ND_SCHEDULE_H
#define ND_SCHEDULE_H

typedef enum NdScheduleKind {
#define ND_SCHEDULE(name, ID, keys, required) ND_SCHED_##ID,
#include "nd_schedules.def"
} NdScheduleKind;

enum {
    ND_SCHEDULE_COUNT = 0
#define ND_SCHEDULE(name, ID, keys, required) + 1
#include "nd_schedules.def"
};

typedef enum NdScheduleKey {
#define ND_SCHED_KEY(name, ID, def, range) ND_SKEY_##ID,
#include "nd_schedules.def"
    ND_SCHEDULE_KEY_COUNT
} NdScheduleKey;

enum {
#define ND_SCHED_KEY(name, ID, def, range) ND_SBIT_##ID = 1u << ND_SKEY_##ID,
#include "nd_schedules.def"
};

/* A schedule over a train of `steps` steps from the peak rate lr; one field per
 * argument (warmup, min_lr, every, gamma), as doubles because the checker reads
 * every argument as one (warmup and every are whole numbers). */
typedef struct NdSchedule {
    NdScheduleKind kind;
    double lr;
    long steps;
#define ND_SCHED_KEY(name, ID, def, range) double name;
#include "nd_schedules.def"
} NdSchedule;

/* Defaults for kind; lr and steps are the caller's. */
NdSchedule nd_schedule_defaults(NdScheduleKind kind, double lr, long steps);
/* -1 when unknown. */
int nd_schedule_kind_from_name(const char *name);
const char *nd_schedule_name(NdScheduleKind kind);
/* The ND_SBIT_ sets of the arguments kind takes, and of those it needs. */
unsigned nd_schedule_keys(NdScheduleKind kind);
unsigned nd_schedule_required(NdScheduleKind kind);
double *nd_schedule_field(NdSchedule *s, NdScheduleKey key);
/* The learning rate of step `step`, counted from 1. */
double nd_schedule_lr(const NdSchedule *s, long step);

#endif
