/* The runtime's real type: double, or float under `option precision = f32`
 * (docs/precision.md). The runtime's sources are written once against nd_real
 * and compiled twice: as they are (the f64 library) and with ND_REAL_F32
 * defined, where every exported name gains the suffix _f32 (CMakeLists.txt,
 * cmake/suffix_symbols.cmake) so both live in one nodec. Kernels, states,
 * parameters, optimiser moments and tolerances are all nd_real; settings
 * (learning rates, schedules), timings and counters stay double. Math calls
 * stay the double functions (sqrt, exp, fabs): on a float they compute in
 * double and round once, and <tgmath.h> would bring <complex.h>'s `I` into
 * every file that includes this. */
#ifndef ND_REAL_H
#define ND_REAL_H

#include <float.h>
#include <math.h>

#ifdef ND_REAL_F32
typedef float nd_real;
#define ND_REAL_EPSILON FLT_EPSILON
#define ND_REAL_MAX FLT_MAX
#define ND_REAL_MIN FLT_MIN
#define ND_REAL_DIGITS 9 /* significant digits that read back to the same float */
#define ND_REAL_TABLE_DIGITS 7 /* on the terminal: what a float holds */
#define ND_REAL_NAME "f32"
#else
typedef double nd_real;
#define ND_REAL_EPSILON DBL_EPSILON
#define ND_REAL_MAX DBL_MAX
#define ND_REAL_MIN DBL_MIN
#define ND_REAL_DIGITS 17
#define ND_REAL_TABLE_DIGITS 10 /* on the terminal: enough to compare by eye */
#define ND_REAL_NAME "f64"
#endif

#endif
