/* Draws a plot directive: reads each layer's source (a data set's table, or
 * the CSV file a solve or a train wrote), gathers one curve per y column, and
 * hands them to PLplot (PNG through pngcairo, SVG through svgcairo). The checker
 * resolved every column it could; what only the file can tell (a history's
 * val_loss, a file that went missing) is checked here, at the layer's value. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nd_csv_read.h"

#ifndef NODEC_HAVE_PLPLOT

int plot_available(void)
{
    return 0;
}

int plot_draw(Diag *diag, const SemaDirective *d, bool quiet)
{
    (void)quiet;
    diag_error(diag, d->loc,
               "this nodec was built without PLplot, so it cannot draw '%s': install "
               "libplplot-dev plplot-driver-cairo and rebuild",
               d->plot.output);
    return -1;
}

#else

#include <plplot.h>

int plot_available(void)
{
    return 1;
}

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer's hook for a program's own suppressions. PLplot loads its
 * cairo driver with libltdl, and cairo finds fonts through fontconfig: both
 * keep what they load (the module list, the font cache) until the process
 * ends, by design, so a run that drew a plot would otherwise "leak" ~70 kB in
 * libraries nodec does not own. nodec's own allocations stay checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\nleak:libltdl.so\n";
}

/* and without the table of them on stderr, which error goldens compare */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}
#endif

/* A layer's table: borrowed from a data set, or read from its file (owned). */
typedef struct Source {
    int nrows, ncols;
    const char *const *names;
    const double *values;
    NdTable *owned;
} Source;

/* One y column against the layer's x, with the trajectory number when the
 * source has one (a line breaks where it changes). */
typedef struct Curve {
    const SemaPlotLayer *layer;
    const char *column;
    int n;
    double *x, *y, *group; /* group NULL: one trajectory */
    char label[160];
} Curve;

typedef struct Picture {
    Curve *curves;
    int n, cap;
    Source *sources; /* one per layer */
    double xmin, xmax, ymin, ymax;
} Picture;

/* Curve colours after white (0, the background) and black (1, the axes): a
 * palette that stays apart for the colour-blind (Okabe and Ito, 2008). */
static const int palette[][3] = {
    {255, 255, 255}, {0, 0, 0}, {0, 114, 178}, {213, 94, 0}, {0, 158, 115},
    {204, 121, 167}, {230, 159, 0}, {86, 180, 233}, {240, 228, 66}, {100, 100, 100},
};
enum { N_PALETTE = sizeof palette / sizeof palette[0], FIRST_CURVE_COLOR = 2 };

static int source_open(Diag *diag, const SemaPlotLayer *l, Source *s)
{
    memset(s, 0, sizeof *s);
    if (l->data) {
        *s = (Source){l->data->nrows, l->data->ncols, l->data->colnames, l->data->values, NULL};
        return 0;
    }
    /* a solve may write to a device or a pipe (/dev/stdout): reading one back
     * would wait for input or find nothing, so only a file is read */
    struct stat st;
    if (stat(l->file, &st) == 0 && !S_ISREG(st.st_mode)) {
        diag_error(diag, l->from_loc, "cannot read '%s' for this plot: %s", l->file,
                   "it is not a regular file (a device or a pipe cannot be read back)");
        return -1;
    }
    char err[512];
    int line;
    s->owned = nd_table_read_csv(l->file, err, sizeof err, &line);
    if (!s->owned) {
        diag_error(diag, l->from_loc, "cannot read '%s' for this plot: %s", l->file, err);
        return -1;
    }
    *s = (Source){s->owned->nrows, s->owned->ncols, (const char *const *)s->owned->names,
                  s->owned->values, s->owned};
    return 0;
}

static int source_column(const Source *s, const char *name)
{
    for (int i = 0; i < s->ncols; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    return -1;
}

/* The column's index in s, or -1 after reporting at loc. */
static int need_column(Diag *diag, const Source *s, const SemaPlotLayer *l, const char *name,
                       SrcLoc loc)
{
    int c = source_column(s, name);
    if (c >= 0)
        return c;
    size_t len = 1;
    for (int i = 0; i < s->ncols; i++)
        len += strlen(s->names[i]) + 2;
    char *list = malloc(len);
    if (!list)
        return -1;
    list[0] = '\0';
    for (int i = 0; i < s->ncols; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, s->names[i]);
    }
    diag_error(diag, loc, "'%s' is not a column of '%s' (its columns: %s)", name, l->source, list);
    free(list);
    return -1;
}

static Curve *curve_add(Picture *pic)
{
    if (pic->n == pic->cap) {
        int cap = pic->cap ? 2 * pic->cap : 8;
        Curve *c = realloc(pic->curves, sizeof *c * (size_t)cap);
        if (!c)
            return NULL;
        pic->curves = c;
        pic->cap = cap;
    }
    Curve *c = &pic->curves[pic->n++];
    memset(c, 0, sizeof *c);
    return c;
}

static void curve_label(Curve *c, const SemaPlotLayer *l, int n_layers)
{
    if (l->label && l->ny + l->val_loss > 1)
        snprintf(c->label, sizeof c->label, "%s %s", l->label, c->column);
    else if (l->label)
        snprintf(c->label, sizeof c->label, "%s", l->label);
    else if (n_layers > 1)
        snprintf(c->label, sizeof c->label, "%s %s", l->source, c->column);
    else
        snprintf(c->label, sizeof c->label, "%s", c->column);
}

static int curve_fill(Diag *diag, Picture *pic, const SemaPlotLayer *l, const Source *s, int xc,
                      int gc, const char *column, SrcLoc loc, int n_layers)
{
    int yc = need_column(diag, s, l, column, loc);
    if (yc < 0)
        return -1;
    Curve *c = curve_add(pic);
    size_t n = (size_t)(s->nrows ? s->nrows : 1);
    double *buf = c ? malloc(sizeof(double) * n * 3) : NULL;
    if (!buf) {
        diag_error(diag, l->loc, "out of memory for this plot");
        return -1;
    }
    c->layer = l;
    c->column = column;
    c->n = s->nrows;
    c->x = buf;
    c->y = buf + n;
    c->group = gc >= 0 ? buf + 2 * n : NULL;
    for (int i = 0; i < s->nrows; i++) {
        const double *row = s->values + (size_t)i * (size_t)s->ncols;
        c->x[i] = row[xc];
        c->y[i] = row[yc];
        if (c->group)
            c->group[i] = row[gc];
    }
    curve_label(c, l, n_layers);
    return 0;
}

static int layer_curves(Diag *diag, Picture *pic, const SemaPlot *p, int k)
{
    const SemaPlotLayer *l = &p->layers[k];
    Source *s = &pic->sources[k];
    if (source_open(diag, l, s) != 0)
        return -1;
    int xc = need_column(diag, s, l, l->x, l->x_loc);
    if (xc < 0)
        return -1;
    int gc = l->group ? source_column(s, l->group) : -1;
    for (int i = 0; i < l->ny; i++)
        if (curve_fill(diag, pic, l, s, xc, gc, l->y[i], l->y_loc[i], p->n_layers) != 0)
            return -1;
    if (l->val_loss && source_column(s, "val_loss") >= 0)
        return curve_fill(diag, pic, l, s, xc, gc, "val_loss", l->from_loc, p->n_layers);
    return 0;
}

/* Whether point i of c is drawn: finite, and positive on a log axis. */
static int drawable(const Curve *c, int i, bool logy)
{
    return isfinite(c->x[i]) && isfinite(c->y[i]) && (!logy || c->y[i] > 0);
}

static double axis_y(double y, bool logy)
{
    return logy ? log10(y) : y;
}

/* The range every drawable point spans, with a margin; 0 when there is none. */
static int picture_range(Picture *pic, bool logy)
{
    int any = 0;
    for (int k = 0; k < pic->n; k++) {
        const Curve *c = &pic->curves[k];
        for (int i = 0; i < c->n; i++) {
            if (!drawable(c, i, logy))
                continue;
            double y = axis_y(c->y[i], logy);
            if (!any) {
                pic->xmin = pic->xmax = c->x[i];
                pic->ymin = pic->ymax = y;
                any = 1;
            }
            pic->xmin = fmin(pic->xmin, c->x[i]);
            pic->xmax = fmax(pic->xmax, c->x[i]);
            pic->ymin = fmin(pic->ymin, y);
            pic->ymax = fmax(pic->ymax, y);
        }
    }
    /* a flat curve still needs an axis with some height (and width) */
    double dx = pic->xmax - pic->xmin, dy = pic->ymax - pic->ymin;
    double px = dx > 0 ? 0.02 * dx : fmax(fabs(pic->xmin) * 0.1, 1);
    double py = dy > 0 ? 0.05 * dy : fmax(fabs(pic->ymin) * 0.1, 1);
    pic->xmin -= dx > 0 ? 0 : px;
    pic->xmax += dx > 0 ? 0 : px;
    pic->ymin -= py;
    pic->ymax += py;
    return any;
}

static void picture_free(Picture *pic, int n_layers)
{
    for (int k = 0; k < pic->n; k++)
        free(pic->curves[k].x);
    free(pic->curves);
    for (int k = 0; k < n_layers; k++)
        nd_table_free(pic->sources[k].owned);
    free(pic->sources);
}

/* ---- drawing ---- */

static int device_present(const char *name)
{
    const char **menu, **names;
    int n = 64;
    menu = malloc(sizeof(char *) * (size_t)n);
    names = malloc(sizeof(char *) * (size_t)n);
    int found = 0;
    if (menu && names) {
        plgFileDevs(&menu, &names, &n);
        for (int i = 0; i < n; i++)
            found |= strcmp(names[i], name) == 0;
    }
    free(menu);
    free(names);
    return found;
}

/* The runs of drawable points of one trajectory: a line breaks at a gap. */
static void draw_line(const Curve *c, bool logy, double *ys)
{
    int start = 0;
    while (start < c->n) {
        while (start < c->n && !drawable(c, start, logy))
            start++;
        int end = start;
        while (end < c->n && drawable(c, end, logy) &&
               (!c->group || c->group[end] == c->group[start]))
            end++;
        for (int i = start; i < end; i++)
            ys[i] = axis_y(c->y[i], logy);
        if (end - start >= 2)
            plline(end - start, c->x + start, ys + start);
        else if (end - start == 1)
            plstring(1, c->x + start, ys + start, "•");
        start = end;
    }
}

static void draw_points(const Curve *c, bool logy, double *xs, double *ys)
{
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (drawable(c, i, logy)) {
            xs[n] = c->x[i];
            ys[n++] = axis_y(c->y[i], logy);
        }
    plssym(0, 0.6);
    plstring(n, xs, ys, "•");
}

static void draw_legend(const SemaPlot *p, const Picture *pic)
{
    static const int corners[] = {
        [SEMA_LEGEND_TOP_RIGHT] = PL_POSITION_TOP | PL_POSITION_RIGHT,
        [SEMA_LEGEND_TOP_LEFT] = PL_POSITION_TOP | PL_POSITION_LEFT,
        [SEMA_LEGEND_BOTTOM_RIGHT] = PL_POSITION_BOTTOM | PL_POSITION_RIGHT,
        [SEMA_LEGEND_BOTTOM_LEFT] = PL_POSITION_BOTTOM | PL_POSITION_LEFT,
    };
    int n = pic->n;
    PLINT *ints = calloc((size_t)n * 5, sizeof(PLINT));
    PLFLT *flts = calloc((size_t)n * 2, sizeof(PLFLT));
    const char **texts = calloc((size_t)n * 2, sizeof(char *));
    if (ints && flts && texts) {
        PLINT *opts = ints, *colors = ints + n, *styles = ints + 2 * n, *numbers = ints + 3 * n;
        PLFLT *widths = flts, *scales = flts + n;
        const char **symbols = texts + n;
        for (int k = 0; k < n; k++) {
            bool points = pic->curves[k].layer->mark == SEMA_MARK_POINTS;
            opts[k] = points ? PL_LEGEND_SYMBOL : PL_LEGEND_LINE;
            colors[k] = FIRST_CURVE_COLOR + k % (N_PALETTE - FIRST_CURVE_COLOR);
            styles[k] = 1;
            numbers[k] = 3;
            widths[k] = 2;
            scales[k] = 0.6;
            texts[k] = pic->curves[k].label;
            symbols[k] = "•";
        }
        PLFLT w, h;
        plcol0(1);
        pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
                 corners[p->legend] | PL_POSITION_INSIDE | PL_POSITION_VIEWPORT, 0.02, 0.02, 0.08, 0,
                 1, 1, 0, 0, n, opts, 1.0, 0.8, 2.0, 0, colors, texts, NULL, NULL, NULL, NULL, colors,
                 styles, widths, colors, scales, numbers, symbols);
    }
    free(ints);
    free(flts);
    free(texts);
}

/* The y axis's label without ylabel: "loss" for histories (loss and val_loss
 * are both losses), the column's name when every curve draws the same one. */
static void default_ylabel(const SemaPlot *p, const Picture *pic, char *buf, size_t len)
{
    bool history = true, same = pic->n > 0;
    for (int k = 0; k < p->n_layers; k++)
        history &= p->layers[k].history;
    for (int k = 0; k < pic->n; k++)
        same &= strcmp(pic->curves[k].column, pic->curves[0].column) == 0;
    snprintf(buf, len, "%s", history ? "loss" : same ? pic->curves[0].column : "");
}

static void draw(const SemaPlot *p, Picture *pic, double *xs, double *ys)
{
    int r[N_PALETTE], g[N_PALETTE], b[N_PALETTE];
    for (int i = 0; i < N_PALETTE; i++) {
        r[i] = palette[i][0];
        g[i] = palette[i][1];
        b[i] = palette[i][2];
    }
    plsdev(p->svg ? "svgcairo" : "pngcairo");
    plsfnam(p->output);
    plspage(0, 0, p->width, p->height, 0, 0);
    plscmap0(r, g, b, N_PALETTE);
    plinit();
    plcol0(1);
    plenv(pic->xmin, pic->xmax, pic->ymin, pic->ymax, 0, p->logy ? 20 : 0);
    char ylabel[160];
    default_ylabel(p, pic, ylabel, sizeof ylabel);
    pllab(p->xlabel ? p->xlabel : p->layers[0].x, p->ylabel ? p->ylabel : ylabel,
          p->title ? p->title : "");
    plwidth(2);
    for (int k = 0; k < pic->n; k++) {
        plcol0(FIRST_CURVE_COLOR + k % (N_PALETTE - FIRST_CURVE_COLOR));
        if (pic->curves[k].layer->mark == SEMA_MARK_POINTS)
            draw_points(&pic->curves[k], p->logy, xs, ys);
        else
            draw_line(&pic->curves[k], p->logy, ys);
    }
    plwidth(1);
    if (p->legend != SEMA_LEGEND_NONE && pic->n > 1)
        draw_legend(p, pic);
    plend();
}

/* "plot: 3 curves (obs, truth.csv, fit.csv) -> spiral.png", as a solve reports. */
static void report(const SemaPlot *p, const Picture *pic)
{
    fprintf(stderr, "plot: %d curve%s from ", pic->n, pic->n == 1 ? "" : "s");
    for (int k = 0; k < p->n_layers; k++)
        fprintf(stderr, "%s%s", k ? ", " : "", p->layers[k].source);
    fprintf(stderr, "%s -> %s\n", p->logy ? " (log y)" : "", p->output);
}

int plot_draw(Diag *diag, const SemaDirective *d, bool quiet)
{
    const SemaPlot *p = &d->plot;
    const char *device = p->svg ? "svgcairo" : "pngcairo";
    if (!device_present(device)) {
        diag_error(diag, d->loc, "PLplot has no '%s' device to draw '%s': install plplot-driver-cairo",
                   device, p->output);
        return -1;
    }
    Picture pic = {0};
    pic.sources = calloc((size_t)p->n_layers, sizeof(Source));
    int rc = pic.sources ? 0 : -1;
    if (rc)
        diag_error(diag, d->loc, "out of memory for this plot");
    for (int k = 0; rc == 0 && k < p->n_layers; k++)
        rc = layer_curves(diag, &pic, p, k);
    if (rc == 0 && !picture_range(&pic, p->logy)) {
        diag_error(diag, d->loc, "nothing to draw in '%s': no point has finite values%s", p->output,
                   p->logy ? " and a positive y (the y axis is logarithmic)" : "");
        rc = -1;
    }
    int most = 1;
    for (int k = 0; k < pic.n; k++)
        most = pic.curves[k].n > most ? pic.curves[k].n : most;
    double *xs = rc == 0 ? malloc(sizeof(double) * (size_t)most * 2) : NULL;
    if (rc == 0 && !xs) {
        diag_error(diag, d->loc, "out of memory for this plot");
        rc = -1;
    }
    if (rc == 0)
        draw(p, &pic, xs, xs + most);
    if (rc == 0 && !quiet)
        report(p, &pic);
    free(xs);
    picture_free(&pic, p->n_layers);
    return rc;
}

#endif
