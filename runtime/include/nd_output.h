/* Output files: where a write to a path lands, and whether it can, asked
 * before any work starts (the runner checks every file a program will write
 * before its first directive, so a bad `save` does not lose a training run).
 * Like the rest of nd_io, nothing here prints: failures fill err. */
#ifndef ND_OUTPUT_H
#define ND_OUTPUT_H

#include <stddef.h>

/* The file a write to path reaches: path itself, or the end of its chain of
 * symbolic links (which need not exist yet). 0, or -1 with errno set (ELOOP
 * after 40 links, ENAMETOOLONG when it does not fit in len). */
int nd_output_target(const char *path, char *target, size_t len);

/* Whether path can be written: its folder exists and is writable, and what is
 * there (through symlinks) is not a folder. replace: the file is replaced as
 * a whole (an atomic save), so only a regular file may be there and the
 * folder must take a new file; else it is opened for writing in place (a CSV,
 * which may also be a pipe or /dev/stdout). 0, or -1 with "cannot write
 * 'path': ..." in err. */
int nd_output_check(const char *path, int replace, char *err, size_t errlen);

/* The folder part of path ("." when it has none) into dir; -1 when it does not fit. */
int nd_output_folder(const char *path, char *dir, size_t len);

#endif
