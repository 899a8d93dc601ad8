/* Remote folders over SSH (libssh): the file operations the [sftp] transport
 * and the EE client's sftp:// server need, by SFTP or, where a server offers
 * no SFTP subsystem, by SCP on exec channels with POSIX shell commands for
 * list, rename and remove (every path single-quoted). Blocking: run it on a
 * thread of its own or in the command line, never on the event loop.
 * The server's host key must verify against known_hosts. */
#ifndef CMPR_RFS_H
#define CMPR_RFS_H

#include <stddef.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "codec/dropname.h"

#define CMPR_RFS_PATH 1024              /* longest remote path */

enum { CMPR_RFS_AUTO, CMPR_RFS_SFTP, CMPR_RFS_SCP };

struct cmpr_rfs_opts {
    const char *host, *user, *identity, *known_hosts;
    int port;
    int proto;                          /* CMPR_RFS_* */
    long timeout;                       /* seconds, per network operation */
    unsigned mode;                      /* of files written */
};

struct cmpr_rfs {
    ssh_session ssh;
    sftp_session sftp;
    int can_fsync;
    int use_scp;                        /* this session: SCP and shell commands */
    int fell_back;                      /* auto found no SFTP subsystem */
    long timeout;
    unsigned mode;
};

/* Connects and authenticates by public key. 0, or -1 with why[] set (the
 * session is closed again). r must be zeroed or closed before. */
int cmpr_rfs_connect(struct cmpr_rfs *r, const struct cmpr_rfs_opts *o, char *why, size_t wlen);
void cmpr_rfs_close(struct cmpr_rfs *r);
/* 1 while the SSH connection is up and, over SFTP, its SFTP server still
 * talks (a server whose sftp-server ended needs a new session) */
int cmpr_rfs_alive(struct cmpr_rfs *r);
const char *cmpr_rfs_error(struct cmpr_rfs *r);
/* buf (CMPR_RFS_PATH bytes) = dir/prefixname; -1 if too long */
int cmpr_rfs_join(char *buf, const char *dir, const char *prefix, const char *name);
void cmpr_rfs_mkdirs(struct cmpr_rfs *r, const char *path);
int cmpr_rfs_exists(struct cmpr_rfs *r, const char *path);
/* never replaces an existing dst (OpenSSH renames by link+unlink) */
int cmpr_rfs_rename(struct cmpr_rfs *r, const char *src, const char *dst);
int cmpr_rfs_unlink(struct cmpr_rfs *r, const char *path);
/* src into dir under the first free name namer(name, n) gives (n = 1..1000) */
int cmpr_rfs_move_unique(struct cmpr_rfs *r, const char *src, const char *dir, const char *name,
                         int (*namer)(const char *, int, char *, size_t), char *out, size_t olen);
/* The whole remote file if it is a regular file of at most max bytes: 0;
 * -1 the file is unacceptable (why[]); -3 trouble reaching it (why[]). */
int cmpr_rfs_get(struct cmpr_rfs *r, const char *path, size_t max, unsigned char **data_r,
                 size_t *len_r, char *why, size_t wlen);
/* dir/tmp written (and synced where the server can), then renamed to dir/final */
int cmpr_rfs_put(struct cmpr_rfs *r, const char *dir, const char *tmp, const char *final,
                 const unsigned char *data, size_t len);
/* Entries of dir (at most 10000); directories left out when want_types. */
int cmpr_rfs_list(struct cmpr_rfs *r, const char *dir, struct cmpr_drop_entry **out,
                  size_t *n_out, int want_types);

#endif
