/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_migration: the filesystem side of live migration, as plain records.
 *
 * Source: vfsd_fs_prepare() when dirty logging turns on (expensive work
 * early, while the guest runs), then, with the device stopped (no request
 * running, e.g. under the FUSE session's write lock): vfsd_fs_counters(),
 * vfsd_fs_collect_inodes() (parents before children, root first) and
 * vfsd_fs_collect_handles(), each streaming one record at a time to a
 * callback.
 *
 * Destination: vfsd_fs_restore_begin(), one vfsd_fs_restore_inode() per
 * decoded inode record (parents first, as collected), one
 * vfsd_fs_restore_handle() per handle record, vfsd_fs_restore_counters(),
 * then vfsd_fs_restore_commit() (installs the new tables, cannot fail) or
 * vfsd_fs_restore_abort() (nothing changed). Everything is built off to the
 * side; the running session is untouched until the commit.
 *
 * Record strings are borrowed: valid during the callback (collect) or the
 * call (restore). No JSON, no vhost here. See src/fs/fs_migration.c for the
 * behaviours and choices.
 */
#ifndef VFSD_FS_MIGRATION_H
#define VFSD_FS_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfsd/passthrough.h"

/* How an inode is found again on the destination. */
enum vfsd_fs_loc_kind {
	VFSD_FS_LOC_NONE = 0, /* cannot be described (unlinked, not kept as an orphan) */
	VFSD_FS_LOC_ROOT,     /* the shared directory itself (node id 1) */
	VFSD_FS_LOC_NAME,     /* @name in the directory inode @parent */
	VFSD_FS_LOC_PATH,     /* @path relative to the shared directory (a stale name re-derived) */
	VFSD_FS_LOC_ORPHAN,   /* @orphan ("<instance-id>/<name>") relative to <shared>/.vfsd-orphans
			       */
};

/* A file handle as name_to_handle_at() gives it. */
#define VFSD_FS_HANDLE_MAX 128 /* MAX_HANDLE_SZ */
struct vfsd_fs_file_handle {
	int32_t type;
	uint32_t size; /* 1..VFSD_FS_HANDLE_MAX */
	uint8_t bytes[VFSD_FS_HANDLE_MAX];
	uint64_t mnt_id; /* the source's mount id: informative only */
};

/* One inode. */
struct vfsd_fs_inode_rec {
	uint64_t nodeid;
	uint64_t nlookup; /* the guest's lookups; 0: kept for children or open handles */
	uint32_t type;	  /* st_mode & S_IFMT */
	bool has_ino;
	uint64_t ino; /* host inode number */
	enum vfsd_fs_loc_kind loc;
	uint64_t parent;    /* LOC_NAME */
	const char *name;   /* LOC_NAME: one component */
	const char *path;   /* LOC_PATH: relative, no leading '/' */
	const char *orphan; /* LOC_ORPHAN: "<instance-id>/<name>" */
	bool unlinked;	    /* collect, LOC_NONE: the guest removed its last name through us (no
			     * orphan kept); false: not found (stale name not found again, orphan
			     * without a name, already a placeholder) */
	bool has_fh;
	struct vfsd_fs_file_handle fh;
};

/* One open file or directory. */
struct vfsd_fs_handle_rec {
	uint64_t fh;
	uint64_t nodeid;
	uint32_t flags; /* the guest's open flags minus O_CREAT|O_EXCL|O_TRUNC */
	bool is_dir;
	bool has_dir_offset;
	uint64_t dir_offset; /* the READDIR cookie the directory stream is at */
};

/* vfsd_fs_collect_inodes() / vfsd_fs_prepare() flags. */
#define VFSD_FS_COLLECT_HANDLES 0x1u /* add file handles (file-handles mode, or verify) */
#define VFSD_FS_COLLECT_CONFIRM 0x2u /* re-check every NAME with fstatat; PATH on mismatch */

/* Called once per record; a negative return stops the walk and is returned. */
typedef int (*vfsd_fs_inode_cb)(void *userdata, const struct vfsd_fs_inode_rec *rec);
typedef int (*vfsd_fs_handle_cb)(void *userdata, const struct vfsd_fs_handle_rec *rec);

/**
 * vfsd_fs_prepare() - the "migration is starting" hint (dirty logging on):
 * resolves stale names to paths and, with VFSD_FS_COLLECT_HANDLES, computes
 * file handles, caching both on the inodes so the save only serialises.
 * Safe while requests run; the caller must have it finished before it
 * collects. Cheap to call again.
 * @flags: VFSD_FS_COLLECT_*
 * Returns: 0 or -ENOMEM.
 */
int vfsd_fs_prepare(struct vfsd_passthrough *fs, unsigned int flags);

/**
 * vfsd_fs_collect_inodes() - one record per inode of the session, root
 * first, every parent before its children. The device must be stopped.
 * @flags: VFSD_FS_COLLECT_*
 * Returns: 0, -ENOMEM, or the first negative value of @cb.
 */
int vfsd_fs_collect_inodes(struct vfsd_passthrough *fs, unsigned int flags, vfsd_fs_inode_cb cb,
			   void *userdata);

/**
 * vfsd_fs_collect_handles() - one record per open handle, in no order. The
 * device must be stopped (@cb runs under the handle table's read lock).
 * Returns: 0 or the first negative value of @cb.
 */
int vfsd_fs_collect_handles(struct vfsd_passthrough *fs, vfsd_fs_handle_cb cb, void *userdata);

/** vfsd_fs_counters() - the next node id and the next fh the session would give out. */
void vfsd_fs_counters(struct vfsd_passthrough *fs, uint64_t *ret_next_nodeid,
		      uint64_t *ret_next_fh);

/** vfsd_fs_loc_name() - "none", "root", "name", "path" or "orphan". */
const char *vfsd_fs_loc_name(enum vfsd_fs_loc_kind k);

/* ---- restore ------------------------------------------------------------------------- */

struct vfsd_fs_restore;

/* vfsd_fs_restore_inode() / vfsd_fs_restore_handle() flags. */
#define VFSD_FS_RESTORE_LENIENT	      0x1u /* failure -> invalid placeholder (every op -EIO) */
#define VFSD_FS_RESTORE_BY_HANDLE     0x2u /* open by file handle when the record has one */
#define VFSD_FS_RESTORE_VERIFY_INO    0x4u /* the host inode number must match the record's */
#define VFSD_FS_RESTORE_VERIFY_HANDLE 0x8u /* the file handle must match (mnt_id ignored) */

/**
 * vfsd_fs_restore_begin() - start building a new session for @fs, off to
 * the side (only the root so far).
 * Returns: 0 or -errno.
 */
int vfsd_fs_restore_begin(struct vfsd_passthrough *fs, struct vfsd_fs_restore **ret);

/**
 * vfsd_fs_restore_inode() - find one inode again and add it under the same
 * node id: ROOT is our root; NAME opens below the already restored parent,
 * PATH below the root (openat2 RESOLVE_BENEATH, O_PATH|O_NOFOLLOW), ORPHAN
 * inside <shared>/.vfsd-orphans/ and then hard-links it into our own orphan
 * directory (the hand-over: the source keeps its name); with
 * VFSD_FS_RESTORE_BY_HANDLE and a handle, open_by_handle_at() instead. The
 * file type is always checked.
 * Returns: 0; with VFSD_FS_RESTORE_LENIENT also 0 after a placeholder went
 * in for an inode that could not be found (vfsd_fs_restore_error() says
 * why); else -errno with the reason in vfsd_fs_restore_error():
 * -EINVAL (bad record), -ENOENT (gone or parent unknown), -ESTALE (another
 * file is there now), -EPERM (open_by_handle_at without
 * CAP_DAC_READ_SEARCH), -EEXIST (duplicate node id or host inode), ...
 */
int vfsd_fs_restore_inode(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
			  unsigned int flags);

/**
 * vfsd_fs_restore_placeholder() - add an inode the source could not locate
 * (a "lost" record) under its node id, without looking for it: an invalid
 * placeholder with the recorded lookup count and type, whose every op gives
 * -EIO and which FORGET and the handles on it (restored leniently: -EIO
 * placeholders too) work on as usual. Only @rec's nodeid, nlookup and type
 * are used.
 * Returns: 0 or -errno (reason in vfsd_fs_restore_error()): -EINVAL (bad
 * node id or type), -EEXIST (duplicate node id), -ENFILE, -ENOMEM.
 */
int vfsd_fs_restore_placeholder(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec);

/**
 * vfsd_fs_restore_handle() - re-open one handle under the same fh from its
 * (restored) inode with the recorded flags (O_CREAT, O_EXCL and O_TRUNC are
 * dropped; O_APPEND is kept); a directory handle is positioned at its
 * cookie. With VFSD_FS_RESTORE_LENIENT a handle of an invalid inode, or one
 * that cannot be re-opened, becomes a placeholder whose ops give -EIO.
 * Returns: 0 or -errno (reason in vfsd_fs_restore_error()); an unknown
 * inode or a duplicate fh is an error even when lenient.
 */
int vfsd_fs_restore_handle(struct vfsd_fs_restore *r, const struct vfsd_fs_handle_rec *rec,
			   unsigned int flags);

/**
 * vfsd_fs_restore_handles() - vfsd_fs_restore_handle() for @n records, the
 * re-opens spread over up to @threads threads (this one included; no more
 * than one per 64 records), the handles then put in in record order: the result, the
 * error and the reason are those of the first record that fails, as if the
 * records had been restored one by one.
 * Returns: 0 or -errno (reason in vfsd_fs_restore_error()).
 */
int vfsd_fs_restore_handles(struct vfsd_fs_restore *r, const struct vfsd_fs_handle_rec *recs,
			    size_t n, unsigned int flags, unsigned int threads);

/**
 * vfsd_fs_restore_counters() - the source's counters; they must lie above
 * every restored node id and fh.
 * Returns: 0 or -EINVAL.
 */
int vfsd_fs_restore_counters(struct vfsd_fs_restore *r, uint64_t next_nodeid, uint64_t next_fh);

/** vfsd_fs_restore_error() - why the last failing call failed ("" if none did). */
const char *vfsd_fs_restore_error(const struct vfsd_fs_restore *r);

/** vfsd_fs_restore_invalid_count() - placeholders put in by lenient calls so far. */
size_t vfsd_fs_restore_invalid_count(const struct vfsd_fs_restore *r);

/**
 * vfsd_fs_restore_commit() - drop @fs's current session (every handle and
 * inode; normally empty on a destination) and install the restored one.
 * Never fails. No request may run. Frees @r.
 */
void vfsd_fs_restore_commit(struct vfsd_fs_restore *r);

/**
 * vfsd_fs_restore_abort() - throw the restored tables away: closes every fd
 * opened and removes every hand-over link made. @fs is unchanged. Frees @r;
 * accepts NULL.
 */
void vfsd_fs_restore_abort(struct vfsd_fs_restore *r);

#endif
