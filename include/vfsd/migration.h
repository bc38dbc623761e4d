/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration: the FUSE session <-> state blob (docs/migration.md).
 *
 * Source: vfsd_migration_logging_changed(on) starts vfsd_fs_prepare() in a
 * background thread while the guest still runs; vfsd_migration_save(), with
 * every queue stopped, joins it and only serialises: the fs's records stream
 * through the state writer straight into the pipe, one at a time. Saving
 * changes nothing.
 *
 * Destination: vfsd_migration_load() re-finds each inode off to the side
 * (vfsd_fs_restore_*) as soon as the reader has validated its record,
 * re-opens every handle once the whole blob has been checked, and only
 * then, under the session's write lock, installs
 * the new tables and the INIT-negotiated options (the guest will not send
 * FUSE_INIT again). A rejected blob, or an inode that cannot be found under
 * --migration-on-error=abort, changes nothing.
 *
 * This layer knows the fs, the FUSE session and the state codec; it does not
 * know vhost (the daemon wires the backend ops to it).
 */
#ifndef VFSD_MIGRATION_H
#define VFSD_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfsd/fuse.h"
#include "vfsd/passthrough.h"
#include "vfsd/state.h"

/* --migration-* options. Zeroed = the defaults (find-paths, abort). */
struct vfsd_migration_config {
	enum vfsd_state_mode mode; /* source: how inodes are described */
	bool on_error_guest_error; /* destination: lenient restore, -EIO on what is missing */
	bool verify_handles; /* source, find-paths: add file handles; the destination checks */
	bool confirm_paths;  /* source: re-check every name at save time */
	struct vfsd_state_limits limits; /* destination reader; zeroed = defaults */
};

/* What the last save or load did, for logs and benchmarks. */
struct vfsd_migration_stats {
	uint64_t inodes, handles; /* records written or applied */
	uint64_t lost;		  /* source: inodes saved as lost records; destination:
				   * lost records kept as placeholders (every op EIO) */
	uint64_t skipped;	  /* source: inodes left out (unknown type; and handles on them) */
	uint64_t invalid;	  /* destination: placeholders put in by a lenient restore */
	uint64_t bytes;		  /* blob size */
	uint64_t prepare_ns;	  /* save: waiting for / running prepare */
	uint64_t collect_ns;	  /* save: collecting + writing; load: reading + validating */
	uint64_t apply_ns;	  /* load: re-opening + commit */
};

struct vfsd_migration;

/**
 * vfsd_migration_new() - the migration state of one daemon: @fs served
 * through @session (both outlive it).
 * Returns: 0, -EINVAL (bad config) or -ENOMEM.
 */
int vfsd_migration_new(const struct vfsd_migration_config *cfg, struct vfsd_passthrough *fs,
		       struct vfsd_fuse_session *session, struct vfsd_migration **ret);

/** vfsd_migration_free() - wait for a running prepare and free; accepts NULL. */
void vfsd_migration_free(struct vfsd_migration *m);

/**
 * vfsd_migration_logging_changed() - dirty logging went on (a migration is
 * starting: start preparing in the background) or off (cancelled: the
 * prepare result is simply not needed). Never blocks on the prepare thread
 * unless a new one must start while an old one still runs.
 */
void vfsd_migration_logging_changed(struct vfsd_migration *m, bool on);

/**
 * vfsd_migration_save() - write the whole state to @fd (not closed). The
 * device must be stopped. Nothing is changed, whatever happens.
 * Returns: 0, -EPIPE (the reader went away), or another -errno (logged).
 */
int vfsd_migration_save(struct vfsd_migration *m, int fd);

/**
 * vfsd_migration_save_cb() - vfsd_migration_save() through a write callback.
 * Returns: 0 or -errno.
 */
int vfsd_migration_save_cb(struct vfsd_migration *m, vfsd_state_write_fn fn, void *opaque);

/**
 * vfsd_migration_load() - read @fd to EOF, validate, re-open, and replace the
 * session. The device must be stopped. On any error nothing changed; the
 * reason is logged and kept (vfsd_migration_last_error()).
 * Returns: 0, -EBADMSG (bad blob), or the -errno of the restore step.
 */
int vfsd_migration_load(struct vfsd_migration *m, int fd);

/**
 * vfsd_migration_load_cb() - vfsd_migration_load() through a read callback.
 * Returns: 0 or -errno.
 */
int vfsd_migration_load_cb(struct vfsd_migration *m, vfsd_state_read_fn fn, void *opaque);

/**
 * vfsd_migration_apply() - apply an already validated model (the second half
 * of a load).
 * Returns: 0 or -errno; nothing changed on error.
 */
int vfsd_migration_apply(struct vfsd_migration *m, const struct vfsd_state *s);

/** vfsd_migration_last_error() - why the last save or load failed ("" if it did not). */
const char *vfsd_migration_last_error(const struct vfsd_migration *m);

/** vfsd_migration_last_stats() - counts and timings of the last save or load. */
void vfsd_migration_last_stats(const struct vfsd_migration *m, struct vfsd_migration_stats *ret);

#endif
