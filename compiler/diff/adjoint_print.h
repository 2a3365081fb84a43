/* `nodec adjoint FILE`: the adjoint system the compiler derives for a model,
 * printed as mathematics (da/dt = -a^T df/dx, and each parameter's gradient
 * integrand) so that users can read what the gradient will compute. */
#ifndef NODEC_ADJOINT_PRINT_H
#define NODEC_ADJOINT_PRINT_H

#include <stdio.h>

#include "ir.h"

/* Prints the model's states, its equations, their adjoints' equations and one
 * line per parameter, from the adjoint system the pipeline derived
 * (m->adj_state, adj_param, adj_init: kernel_sets_derive). b builds only the
 * printed negations. Returns 0, or -1 when m has a missing right-hand side. */
int adjoint_print(FILE *out, IrBuilder *b, const IrModel *m);

#endif
