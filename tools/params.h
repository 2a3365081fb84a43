/* `nodec params FILE.params`: what a parameter file holds, read without a model. */
#ifndef NODEC_PARAMS_H
#define NODEC_PARAMS_H

#include <stdio.h>

/* Prints path's metadata and tensors to out; 0, or 1 after one message on err. */
int params_print(FILE *out, FILE *err, const char *path);

#endif
