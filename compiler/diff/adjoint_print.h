/* `nodec adjoint FILE`: the adjoint system the compiler derives for a model,
 * printed as mathematics (da/dt = -a^T df/dx, and each parameter's gradient
 * integrand) so that users can read what the gradient will compute. */
#ifndef NODEC_ADJOINT_PRINT_H
#define NODEC_ADJOINT_PRINT_H

#include <stdio.h>

#include "ir.h"

/* Derives m's adjoint system (diff_model_adjoint) when not built yet, and
 * prints the model's states, its equations, their adjoints' equations and one
 * line per parameter. Returns 0, or -1 when m has a missing right-hand side. */
int adjoint_print(FILE *out, IrBuilder *b, IrModel *m);

#endif
