/* Rules shared by the folder transports (local file drop, remote SFTP/SCP
 * folders): which names are requests, what the answer is called, whether
 * the bytes are a CMP message at all. Pure: no I/O. RFC 9483 6.4: one DER
 * PKIMessage per file, no header or trailer, extension ".pki". */
#ifndef CMPR_DROPNAME_H
#define CMPR_DROPNAME_H

#include <stddef.h>
#include <stdint.h>

/* longest request name accepted (room is left for suffixes within NAME_MAX) */
#define CMPR_DROP_MAX_NAME 200

/* A file still being written or not meant for us: dot-files, *.tmp, *.part, *~. */
int cmpr_drop_ignored(const char *name);
/* 1 if name matches one of the space-separated fnmatch patterns */
int cmpr_drop_matches(const char *patterns, const char *name);
/* name without its .pki/.der extension, plus ".rsp.pki"; with n > 1 the
 * n-th free alternative "<base>.<n>.rsp.pki". -1 if it does not fit. */
int cmpr_drop_answer_name(const char *name, int n, char *buf, size_t len);
/* name for another file of the same name already present: "<name>" for
 * n == 1, else "<stem>.<n><ext>" (keeps the extension) */
int cmpr_drop_alt_name(const char *name, int n, char *buf, size_t len);
/* name safe to print in logs and reason files (control and non-ASCII bytes as '?') */
void cmpr_drop_printable(const char *name, char *buf, size_t len);
/* 0 when data is one DER PKIMessage within max bytes; else -1 and why */
int cmpr_drop_check(const unsigned char *data, size_t len, size_t max, char *why, size_t wlen);

/* One inbox entry as last seen, for telling finished files from files still
 * being written (local folders and remote ones alike). */
struct cmpr_drop_entry {
    char *name;
    int64_t size;
    int64_t mtime_ns;
    uint64_t ino;                       /* 0 where the medium has none (SFTP) */
    uint64_t since;                     /* ms when these attributes were first seen */
};

/* Sorts now[] by name and carries `since` over from prev[] (sorted by an
 * earlier call) for entries whose size, mtime and inode did not change;
 * copies into ready[] (room for n_now) the entries unchanged for settle_ms,
 * oldest first (then by name: the order the site dropped them). Returns the
 * ms until the next entry settles, or -1 if none is waiting. */
long cmpr_drop_settle(const struct cmpr_drop_entry *prev, size_t n_prev,
                      struct cmpr_drop_entry *now, size_t n_now, long settle_ms, uint64_t now_ms,
                      struct cmpr_drop_entry *ready, size_t *n_ready);
void cmpr_drop_entries_free(struct cmpr_drop_entry *e, size_t n);

/* A remote folder listed by the SCP fallback's shell loop: records
 * "TYPE SIZE NAME\0" (TYPE f regular, d directory, l link, o other), from an
 * untrusted server. Directories are left out when skip_dirs; at most max
 * entries; malformed records are skipped. 0, or -1 when out of memory. */
int cmpr_drop_parse_listing(const unsigned char *buf, size_t len, int skip_dirs, size_t max,
                            struct cmpr_drop_entry **out, size_t *n_out);
/* The SCP source's file header "C0644 SIZE NAME" (no newline): 0 and *size,
 * or -1 (an error line starting with 1 or 2, or anything malformed). */
int cmpr_drop_parse_scp_header(const char *line, size_t *size);
/* What a batch script of the SCP fallback printed, from an untrusted
 * server: lines "INDEX WORD NUMBER" (INDEX below n; WORD one printable
 * character or a decimal status; NUMBER decimal, at most 2^53). For each
 * INDEX seen, word[INDEX] (the character, or '0' + status for 0..9) and
 * num[INDEX]; seen[INDEX] = 1. Malformed lines are skipped. Returns how many
 * lines were taken. */
size_t cmpr_drop_parse_results(const unsigned char *buf, size_t len, size_t n, char *word,
                               long long *num, unsigned char *seen);

#endif
