/* What the file-reading fuzz targets share: the input written to a file the
 * reader under test opens by path, as a user's file would be. */
#ifndef NODEC_FUZZ_FILE_H
#define NODEC_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Writes data to a per-process temporary file; its path, or NULL. */
const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix);

#endif
