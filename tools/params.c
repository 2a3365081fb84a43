/* `nodec params FILE.params`: prints a parameter file that `save` wrote (or any
 * safetensors file of F64/F32 tensors): its metadata, then each tensor's name,
 * shape and dtype with its values when it is small, else summary statistics.
 * The file is read by the runtime's reader (nd_safetensors_read), so the checks
 * are those of `load`. */
#include "params.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "nd_safetensors.h"

/* A tensor this small is printed whole: a scalar, a bias of a few units, a 2x2
 * matrix; anything larger would bury the listing. */
enum { SMALL_TENSOR = 8 };

/* Names and metadata come from the file: control bytes are shown as \xNN, so a
 * hostile file cannot drive the terminal. */
static void print_text(FILE *out, const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            fprintf(out, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, out);
}

static int shape_text(char *out, size_t len, const NdTensorData *t)
{
    size_t k = (size_t)snprintf(out, len, "[");
    for (int d = 0; d < t->rank && k < len; d++)
        k += (size_t)snprintf(out + k, len - k, d ? ", %ld" : "%ld", t->dims[d]);
    if (k < len)
        k += (size_t)snprintf(out + k, len - k, "]");
    return (int)k;
}

/* The values of dimension d onwards from *at, nested as the shape nests them. */
static void print_values(FILE *out, const NdTensorData *t, int d, long *at)
{
    if (d == t->rank) {
        fprintf(out, "%.9g", t->values[(*at)++]);
        return;
    }
    fputc('[', out);
    for (long i = 0; i < t->dims[d]; i++) {
        if (i)
            fputs(", ", out);
        print_values(out, t, d + 1, at);
    }
    fputc(']', out);
}

/* min, max, mean and (population) standard deviation of the finite values; the
 * non-finite ones are counted, not summed, so one NaN does not hide the rest. */
static void print_summary(FILE *out, const NdTensorData *t)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0, sum2 = 0;
    long finite = 0;
    for (long k = 0; k < t->size; k++)
        if (isfinite(t->values[k])) {
            double v = t->values[k];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            sum += v;
            finite++;
        }
    double mean = finite ? sum / (double)finite : NAN;
    for (long k = 0; k < t->size; k++)
        if (isfinite(t->values[k]))
            sum2 += (t->values[k] - mean) * (t->values[k] - mean);
    if (finite)
        fprintf(out, "min %.6g  max %.6g  mean %.6g  std %.6g", lo, hi, mean,
                sqrt(sum2 / (double)finite));
    else
        fputs("no finite values", out);
    fprintf(out, "  non-finite %ld\n", t->size - finite);
}

static void print_tensors(FILE *out, const NdSafetensorsFile *f)
{
    int name_w = 0, shape_w = 0;
    char shape[160];
    for (int k = 0; k < f->n; k++) {
        int n = (int)strlen(f->tensors[k].name), s = shape_text(shape, sizeof shape, &f->tensors[k]);
        name_w = n > name_w ? n : name_w;
        shape_w = s > shape_w ? s : shape_w;
    }
    fprintf(out, "tensors:\n");
    for (int k = 0; k < f->n; k++) {
        const NdTensorData *t = &f->tensors[k];
        shape_text(shape, sizeof shape, t);
        fputs("  ", out);
        print_text(out, t->name);
        fprintf(out, "%*s  %-*s  %s  ", name_w - (int)strlen(t->name), "", shape_w, shape, t->dtype);
        if (t->size <= SMALL_TENSOR) {
            long at = 0;
            print_values(out, t, 0, &at);
            fputc('\n', out);
        } else {
            print_summary(out, t);
        }
    }
}

int params_print(FILE *out, FILE *err, const char *path)
{
    char why[1024];
    NdSafetensorsFile *f = nd_safetensors_read(path, why, sizeof why);
    if (!f) {
        fprintf(err, "nodec: error: %s\n", why);
        return 1;
    }
    long values = 0;
    for (int k = 0; k < f->n; k++)
        values += f->tensors[k].size;
    fprintf(out, "%s: %d tensor%s, %ld value%s\n", path, f->n, f->n == 1 ? "" : "s", values,
            values == 1 ? "" : "s");
    if (f->n_meta)
        fprintf(out, "metadata:\n");
    for (int i = 0; i < f->n_meta; i++) {
        fputs("  ", out);
        print_text(out, f->meta[2 * i]);
        fputs(" = ", out);
        print_text(out, f->meta[2 * i + 1]);
        fputc('\n', out);
    }
    print_tensors(out, f);
    nd_safetensors_file_free(f);
    if (fflush(out) != 0 || ferror(out)) { /* a listing that did not arrive is a failure */
        fprintf(err, "nodec: error: cannot write the listing of '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}
