/* A whole file in memory, for the data readers (nd_csv_read.c, nd_npy.c). */
#ifndef ND_FILE_READ_H
#define ND_FILE_READ_H

#include <stddef.h>

/* The bytes of the file (malloc'd, len of them), or NULL with errno set. */
char *nd_read_file(const char *path, size_t *len);

#endif
