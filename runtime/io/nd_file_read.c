/* A whole file in memory, for the data readers (CSV, .npy): data files are small next to
 * what training does with them. */
#include "nd_file_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

char *nd_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *text = malloc(cap);
    while (text) {
        n += fread(text + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *more = realloc(text, 2 * cap);
        if (!more) {
            free(text);
            text = NULL;
            errno = ENOMEM;
            break;
        }
        text = more;
        cap *= 2;
    }
    int failed = text && ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(text);
        errno = saved ? saved : EIO;
        return NULL;
    }
    *len = n;
    return text;
}
