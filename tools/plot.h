/* Draws a checked `plot` directive (docs/plot.md) with PLplot's cairo devices
 * (pngcairo, svgcairo); run.c calls it when the directive is reached, after the
 * directives that write its sources. Built without PLplot (NODEC_HAVE_PLPLOT
 * undefined), the same call reports that it cannot draw. */
#ifndef NODEC_PLOT_H
#define NODEC_PLOT_H

#include <stdbool.h>

#include "diag.h"
#include "sema.h"

/* 0 when the picture was written (with a line on stderr unless quiet); -1
 * after reporting through diag. */
int plot_draw(Diag *diag, const SemaDirective *d, bool quiet);

/* Whether this nodec can draw plots (built with PLplot). */
int plot_available(void);

#endif
