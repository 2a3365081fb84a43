/* fuzz_file.h: one temporary file per process, rewritten for every input
 * (in /dev/shm when it exists, so the search is not bound by the disk). */
#include "fuzz_file.h"

#include <stdio.h>
#include <unistd.h>

const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/nodec_fuzz_%ld%s", dir, (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    size_t written = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || written != size)
        return NULL;
    return path;
}
