/*
 * A VFS for the SQLite store: the default one, with a WAL commit's frames
 * written in one system call (sqlite_vfs.c says how and why).
 *
 * Copyright the cmprouter authors; licence in COPYING.
 */
#ifndef CMPR_CORE_SQLITE_VFS_H
#define CMPR_CORE_SQLITE_VFS_H

/* registers it once (not as the default); its name for sqlite3_open_v2,
 * or NULL if it could not be registered (then the default VFS serves) */
const char *cmpr_sqlite_vfs(void);

/* writes to WAL files so far: the system calls made, and the SQLite
 * writes they carried (for tests: gathering works if calls < writes) */
void cmpr_sqlite_vfs_counts(unsigned long *calls_r, unsigned long *writes_r);

#endif
