/* Rules shared by the folder transports (local file drop, remote SFTP/SCP
 * folders): which names are requests, what the answer is called, whether
 * the bytes are a CMP message at all. No I/O. RFC 9483 6.4: one DER
 * PKIMessage per file, no header or trailer, extension ".pki". */
#ifndef CMPR_DROPNAME_H
#define CMPR_DROPNAME_H

#include <stddef.h>

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

#endif
