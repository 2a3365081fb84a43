/* Executing a checked program: the directives of the user's file, in order,
 * with each model JIT-compiled on first use. */
#ifndef NODEC_RUN_H
#define NODEC_RUN_H

#include <stdbool.h>

#include "driver.h"

typedef struct RunOptions {
    bool stats; /* steps and right-hand-side evaluations after each solve */
    bool quiet; /* no progress lines on stderr */
} RunOptions;

/* 0 when every directive ran, 1 after reporting the first failure. */
int run_program(Compilation *c, const RunOptions *opts);

#endif
