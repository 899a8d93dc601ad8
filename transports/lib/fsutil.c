/* Durable local file operations (see fsutil.h). */
#define _GNU_SOURCE 1
#include "transports/lib/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int
cmpr_fs_join(char *buf, size_t len, const char *dir, const char *prefix, const char *name)
{
    int n = snprintf(buf, len, "%s/%s%s", dir, prefix, name);

    return n > 0 && (size_t)n < len ? 0 : -1;
}

int
cmpr_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

    if (fd < 0)
        return -1;
    r = fsync(fd);
    close(fd);
    return r;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
cmpr_fs_write_durable(const char *dir, const char *tmp, const char *final, const unsigned char *data,
                      size_t len, mode_t mode)
{
    if (cmpr_fs_write_synced(dir, tmp, final, data, len, mode) != 0)
        return -1;
    return cmpr_fs_fsync_dir(dir);
}

int
cmpr_fs_write_synced(const char *dir, const char *tmp, const char *final, const unsigned char *data,
                     size_t len, mode_t mode)
{
    char tp[PATH_MAX], fp[PATH_MAX];
    int fd;

    if (cmpr_fs_join(tp, sizeof(tp), dir, "", tmp) != 0 || cmpr_fs_join(fp, sizeof(fp), dir, "", final) != 0)
        return -1;
    (void)unlink(tp);
    fd = open(tp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        close(fd);
        (void)unlink(tp);
        return -1;
    }
    if (close(fd) != 0 || rename(tp, fp) != 0) {
        (void)unlink(tp);
        return -1;
    }
    return 0;
}

int
cmpr_fs_mkdirs(const char *path, char **err_r, const char *what)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                if (asprintf(err_r, "%s folder %s: %s", what, buf, strerror(errno)) < 0)
                    *err_r = NULL;
                return -1;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

int
cmpr_fs_read(const char *path, size_t max, int truncate, unsigned char **data_r, size_t *len_r)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    unsigned char *buf;
    size_t off = 0, want;

    *data_r = NULL;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || ((size_t)st.st_size > max && !truncate)) {
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        return -1;
    }
    want = (size_t)st.st_size > max ? max : (size_t)st.st_size;
    if ((buf = malloc(want + 1)) == NULL) {
        close(fd);
        return -1;
    }
    while (off < want) {
        ssize_t n = read(fd, buf + off, want - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    *data_r = buf;
    *len_r = off;
    return 0;
}

int
cmpr_fs_lock_dir(const char *dir)
{
    char lp[PATH_MAX];
    int fd, locked = -1;

    if (cmpr_fs_join(lp, sizeof(lp), dir, "", ".lock") != 0
            || (fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return -1;
    for (int i = 0; i < 30 && (locked = flock(fd, LOCK_EX | LOCK_NB)) != 0; i++)
        usleep(100000);
    if (locked != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
