/* Remote folders over SSH (libssh): the file operations the [sftp] transport
 * and the EE client's sftp:// server need, by SFTP or, where a server offers
 * no SFTP subsystem, by SCP on exec channels with POSIX shell commands for
 * list, rename and remove (every path single-quoted). Blocking: run it on a
 * thread of its own or in the command line, never on the event loop.
 * The server's host key must verify against known_hosts. */
#ifndef CMPR_RFS_H
#define CMPR_RFS_H

#include <pthread.h>
#include <stddef.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "codec/dropname.h"

#define CMPR_RFS_PATH 1024              /* longest remote path */

enum { CMPR_RFS_AUTO, CMPR_RFS_SFTP, CMPR_RFS_SCP };

/* Ends a session's blocking work from another thread (a daemon stopping):
 * cmpr_rfs_cut() shuts the connected session's socket down, so whatever
 * waits on it fails at once, and refuses connections after it. */
struct cmpr_rfs_cut {
    pthread_mutex_t mu;
    int fd;                             /* the connected session's socket, or -1 */
    int cut;
};
void cmpr_rfs_cut_init(struct cmpr_rfs_cut *c);
void cmpr_rfs_cut_free(struct cmpr_rfs_cut *c);
void cmpr_rfs_cut(struct cmpr_rfs_cut *c);

struct cmpr_rfs_opts {
    const char *host, *user, *identity, *known_hosts;
    int port;
    int proto;                          /* CMPR_RFS_* */
    long timeout;                       /* seconds, per network operation */
    unsigned mode;                      /* of files written */
    struct cmpr_rfs_cut *cut;           /* NULL, or how another thread ends the session */
};

struct cmpr_rfs {
    ssh_session ssh;
    sftp_session sftp;
    int can_fsync;
    int use_scp;                        /* this session: SCP and shell commands */
    int fell_back;                      /* auto found no SFTP subsystem */
    long timeout;
    unsigned mode;
    char why[160];                      /* the last command's failure, when not libssh's */
    struct cmpr_rfs_cut *cut;
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

/* ---- batches: the same step for many files in one exchange ----
 * Over SFTP they run one after another on the session; over SCP each batch
 * is one shell script (fed on stdin, so no command-line limit) or one scp
 * transfer, instead of a command per file. */
/* SKIP: a place in the batch that does nothing (ok stays 0) */
enum { CMPR_RFS_OP_SKIP, CMPR_RFS_OP_RENAME, CMPR_RFS_OP_UNLINK, CMPR_RFS_OP_MOVE_UNIQUE };
/* names a MOVE_UNIQUE tries in one batch; one that finds all of them taken
 * fails (cmpr_rfs_move_unique goes on to 1000) */
#define CMPR_RFS_BATCH_NAMES 8
struct cmpr_rfs_op {
    int kind;
    long after;                         /* an earlier op that must have succeeded, or -1 */
    char src[CMPR_RFS_PATH];            /* RENAME, MOVE_UNIQUE: from; UNLINK: the path */
    char dst[CMPR_RFS_PATH];            /* RENAME: to (never replaced); MOVE_UNIQUE: the folder */
    const char *name;                   /* MOVE_UNIQUE: into dst as namer(name, 1, 2, ...) */
    int (*namer)(const char *, int, char *, size_t);
    int stat_dst;                       /* RENAME: say what dst is once there (type; size 0) */
    /* the outcome */
    int ok;
    char type;                          /* stat_dst over SCP: 'f', 'l', 'd', 'o'; else 0 (not known) */
    char used[300];                     /* MOVE_UNIQUE: the name it got */
};
/* Runs ops in order, each only if its `after` succeeded; sets every ok.
 * -1 when the connection failed on the way (the ops not run have ok 0). */
int cmpr_rfs_run(struct cmpr_rfs *r, struct cmpr_rfs_op *ops, size_t n);

struct cmpr_rfs_file {
    const char *path;
    char kind;                          /* 'f' regular, 'l' link, 'd', 'o' other, 'n' none; 0 unknown */
    long long size;                     /* of a regular file, when kind is known */
    /* the outcome, as cmpr_rfs_get: 0 (data, len), -1 unacceptable (why), -3 trouble (why) */
    int r;
    unsigned char *data;
    size_t len;
    char why[256];
};
/* Fetches every file (over SCP one look at their kinds and sizes, then one
 * scp transfer for the regular ones within max). */
void cmpr_rfs_get_many(struct cmpr_rfs *r, struct cmpr_rfs_file *f, size_t n, size_t max);

struct cmpr_rfs_put {
    const char *tmp;                    /* a plain name: no '/', no newline */
    const char *final;
    const unsigned char *data;
    size_t len;
    int ok;                             /* the outcome */
};
/* dir/tmp written (synced where the server can) and renamed to dir/final,
 * for each (over SCP one scp transfer, then one script for the renames). */
void cmpr_rfs_put_many(struct cmpr_rfs *r, const char *dir, struct cmpr_rfs_put *p, size_t n);

#endif
