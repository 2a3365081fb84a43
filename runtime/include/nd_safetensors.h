/* Parameter files in the safetensors format (Hugging Face), so that trained
 * parameters open in Python with `safetensors.numpy.load_file`:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   JSON: {"__metadata__": {"k": "v", ...},
 *                    "f.l1.W": {"dtype": "F64", "shape": [50, 2], "data_offsets": [b, e]}, ...}
 *             padded with spaces so that the data starts 8-byte aligned
 *   the data  each tensor's elements, row-major, little-endian, at [b, e) of this part
 *
 * Writing is atomic (a temporary file in the same folder, fsync, rename), so an
 * interrupted run leaves either the old file or the new one, never half of one.
 * A symlink is written through (the file it points to is replaced, the link
 * stays); anything but a regular file at the path is refused, not replaced. The
 * temporary file is "PATH.tmp-PID-XXXXXX"; one left by a killed save is removed
 * by the next save of that path. */
#ifndef ND_SAFETENSORS_H
#define ND_SAFETENSORS_H

#include <stddef.h>

#include "nd_real.h"

/* The rank of nodec's values is at most 4 (IR_MAX_RANK); the format allows any, and so does
 * the reader up to this bound. */
#define ND_TENSOR_MAX_RANK 8

/* One named tensor inside a flat parameter vector p: p[offset .. offset + size). */
typedef struct NdTensorSpec {
    const char *name;
    long offset;
    long size;                      /* the number of elements */
    int rank;                       /* 0 for a scalar (shape []); -1 on load: any shape of `size` elements */
    long dims[ND_TENSOR_MAX_RANK];
} NdTensorSpec;

/* Writes the n tensors (dtype F64, or F32 in the single-precision runtime: nd_real.h) and string metadata (n_meta key, value pairs in
 * meta[2 * i], meta[2 * i + 1]; may be 0) to path, atomically. 0, or -1 with a
 * message in err. */
int nd_safetensors_save(const char *path, int n, const NdTensorSpec *specs, const nd_real *p,
                        int n_meta, const char *const *meta, char *err, size_t errlen);

/* Tensors whose names start with this are a training's optimizer state
 * (`__optim.m.f.l1.W`, tools/train.c), not parameters: a load skips them unless
 * a spec names them, so parameter files with a saved optimizer load everywhere. */
#define ND_SAFETENSORS_RESERVED "__optim."

/* Reads path into p: every spec's name must be in the file with its shape and
 * dtype F64 or F32 (converted), and every tensor of the file must be a spec (or
 * reserved, ND_SAFETENSORS_RESERVED). On any error p is left untouched and err
 * names the file and the tensor. */
int nd_safetensors_load(const char *path, int n, const NdTensorSpec *specs, nd_real *p, char *err,
                        size_t errlen);

/* One tensor as a file holds it (nd_safetensors_read). */
typedef struct NdTensorData {
    char *name;
    char dtype[16];                 /* "F64" or "F32" */
    int rank;
    long dims[ND_TENSOR_MAX_RANK];
    long size;                      /* the number of elements */
    double *values;                 /* size of them, converted to double */
} NdTensorData;

/* A parameter file read without a model (`nodec params`). */
typedef struct NdSafetensorsFile {
    int n_meta;
    char **meta;                    /* key, value pairs: meta[2 * i], meta[2 * i + 1] */
    int n;
    NdTensorData *tensors;          /* in the header's order */
} NdSafetensorsFile;

/* Reads every tensor of path with the checks of nd_safetensors_load that need
 * no model (the header, dtype F64 or F32, data_offsets that hold the shape's
 * elements inside the file, no name twice). NULL with a message in err naming
 * the file and the tensor. Free with nd_safetensors_file_free. */
NdSafetensorsFile *nd_safetensors_read(const char *path, char *err, size_t errlen);
void nd_safetensors_file_free(NdSafetensorsFile *f);

/* The string value of metadata key into out (truncated to len): 1, or 0 when the
 * header has no such string, or -1 with a message when path is not a safetensors
 * file that can be read. */
int nd_safetensors_get_meta(const char *path, const char *key, char *out, size_t len, char *err,
                            size_t errlen);

#endif
