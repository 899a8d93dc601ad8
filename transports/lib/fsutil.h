/* Durable local file operations shared by the folder and mail transports:
 * write to a temporary name, fsync, rename, fsync the directory. Blocking;
 * worker threads and the command line only. */
#ifndef CMPR_FSUTIL_H
#define CMPR_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* dir/prefixname into buf; -1 if it does not fit */
int cmpr_fs_join(char *buf, size_t len, const char *dir, const char *prefix, const char *name);
int cmpr_fs_fsync_dir(const char *dir);
/* data into dir/final by way of dir/tmp: written, fsynced, renamed (replacing
 * final), directory fsynced. 0 or -1 (errno set). */
int cmpr_fs_write_durable(const char *dir, const char *tmp, const char *final,
                          const unsigned char *data, size_t len, mode_t mode);
/* The same without the directory's fsync: the data is on disk, the name
 * only once the caller fsyncs dir (one fsync for a batch of files). */
int cmpr_fs_write_synced(const char *dir, const char *tmp, const char *final,
                         const unsigned char *data, size_t len, mode_t mode);
/* mkdir -p (mode 0750); -1 with *err_r "WHAT folder DIR: reason" */
int cmpr_fs_mkdirs(const char *path, char **err_r, const char *what);
/* the file if it is a regular file (links not followed) of at most max
 * bytes; when larger: its first max bytes if truncate, else -1 with EFBIG */
int cmpr_fs_read(const char *path, size_t max, int truncate, unsigned char **data_r, size_t *len_r);
/* An exclusive flock on DIR/.lock, held while the returned descriptor is
 * open: one process per folder (a predecessor killed a moment ago may
 * still hold it: waits up to 3 s). The descriptor, or -1. */
int cmpr_fs_lock_dir(const char *dir);

#endif
