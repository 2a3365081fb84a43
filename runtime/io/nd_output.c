/* Output paths (see nd_output.h): symlinks resolved by hand, so that a link
 * to a file not yet written still names where the file will be, and the
 * checks an atomic save and an in-place write each need. */
#include "nd_output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linux's own bound on a chain of links (MAXSYMLINKS). */
enum { ND_MAX_LINKS = 40 };

int nd_output_folder(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    int n = !slash ? snprintf(dir, len, ".")
                   : snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* A link's text, relative to the folder that holds the link. */
static int follow(const char *at, const char *link, char *out, size_t len)
{
    char dir[PATH_MAX];
    int n = link[0] == '/' || nd_output_folder(at, dir, sizeof dir) != 0
                ? snprintf(out, len, "%s", link)
                : snprintf(out, len, "%s/%s", dir, link);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int nd_output_target(const char *path, char *target, size_t len)
{
    char cur[PATH_MAX], link[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur)
        return errno = ENAMETOOLONG, -1;
    for (int hops = 0; hops <= ND_MAX_LINKS; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
            if (snprintf(target, len, "%s", cur) >= (int)len)
                return errno = ENAMETOOLONG, -1;
            return 0;
        }
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0)
            return -1;
        link[n] = '\0';
        char next[PATH_MAX];
        if (follow(cur, link, next, sizeof next) != 0)
            return errno = ENAMETOOLONG, -1;
        memcpy(cur, next, sizeof cur);
    }
    return errno = ELOOP, -1;
}

static int fail(char *err, size_t errlen, const char *path, const char *why, const char *arg)
{
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, why, arg);
    snprintf(err, errlen, "cannot write '%s': %s", path, what);
    return -1;
}

/* What is at target (st) may be written in place or replaced. */
static int check_existing(const char *path, const char *target, const struct stat *st,
                          int replace, char *err, size_t errlen)
{
    if (S_ISDIR(st->st_mode))
        return fail(err, errlen, path, "it is a folder%s", "");
    if (replace && !S_ISREG(st->st_mode))
        return fail(err, errlen, path,
                    "it is not a regular file%s (a save replaces the file at its path)",
                    strcmp(path, target) ? ", where its link points" : "");
    if (!replace && access(target, W_OK) != 0)
        return fail(err, errlen, path, "%s", strerror(errno));
    return 0;
}

int nd_output_check(const char *path, int replace, char *err, size_t errlen)
{
    char target[PATH_MAX], dir[PATH_MAX];
    if (!path || !*path)
        return fail(err, errlen, path ? path : "", "the file name is empty%s", "");
    if (nd_output_target(path, target, sizeof target) != 0 ||
        nd_output_folder(target, dir, sizeof dir) != 0)
        return fail(err, errlen, path, "%s", strerror(errno ? errno : ENAMETOOLONG));
    struct stat st;
    int exists = stat(target, &st) == 0;
    if (exists && check_existing(path, target, &st, replace, err, errlen))
        return -1;
    if (exists && !replace)
        return 0;
    if (stat(dir, &st) != 0)
        return fail(err, errlen, path,
                    errno == ENOENT ? "folder '%s' does not exist" : "%s",
                    errno == ENOENT ? dir : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, path, "'%s' is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fail(err, errlen, path, "folder '%s' is not writable", dir);
    /* access() lets root through where no one may create a file (sysfs, procfs):
     * creating the file, then removing it, is the only sure answer */
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0)
        return errno == EACCES || errno == EPERM || errno == EROFS
                   ? fail(err, errlen, path, "folder '%s' is not writable", dir)
                   : fail(err, errlen, path, "%s", strerror(errno));
    close(fd);
    unlink(target);
    return 0;
}
