/* Executing a checked program: the directives of the user's file, in order,
 * with each model JIT-compiled on first use. */
#ifndef NODEC_RUN_H
#define NODEC_RUN_H

#include <stdbool.h>

#include "driver.h"

typedef struct RunOptions {
    bool stats; /* steps and right-hand-side evaluations after each solve */
    bool quiet; /* no progress lines on stderr */
    bool check_gradient; /* each train's first gradient against central differences */
} RunOptions;

/* 0 when every directive ran, 1 after reporting the first failure. */
int run_program(Compilation *c, const RunOptions *opts);

/* For `nodec emit-c`: executes the data and train directives as run_program
 * does (through the JIT; a train writes its save and history files), but no
 * solve. Records the parameters each solve directive would use (at_solve[k]
 * for the k-th solve: its model's np doubles) and every model's parameters
 * after the last directive (final[i] for models[i]); the buffers are the
 * caller's. Status as run_program's. */
int run_trains(Compilation *c, const RunOptions *opts, double *const *final,
               double *const *at_solve);

/* run_program and run_trains in single precision, for a program with `option
 * precision = f32`: this runner and the runtime compiled with ND_REAL_F32, their
 * names suffixed (CMakeLists.txt, cmake/suffix_symbols.cmake). The same
 * arguments, the parameters still handed over as doubles. */
int run_program_f32(Compilation *c, const RunOptions *opts);
int run_trains_f32(Compilation *c, const RunOptions *opts, double *const *final,
                   double *const *at_solve);

#endif
