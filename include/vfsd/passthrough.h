/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * passthrough: the filesystem that serves a host directory to the guest,
 * with its inode table (FUSE node ids -> host inodes) and handle table (FUSE
 * fh -> open files). Implements struct vfsd_fs_ops.
 *
 * It keeps every inode's location (parent + name) for find-paths migration
 * and keeps files unlinked while open as "orphans" in the hidden directory
 * <shared>/.vfsd-orphans/<instance-id>/ (see src/fs/passthrough.c); the
 * name .vfsd-orphans in the root is reserved (LOOKUP: ENOENT, hidden from
 * READDIR, EPERM for any op creating, removing or renaming it). Migration
 * collect / restore: vfsd/fs_migration.h.
 */
#ifndef VFSD_PASSTHROUGH_H
#define VFSD_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfsd/fuse.h"

struct vfsd_passthrough;

struct vfsd_passthrough_config {
	const char *shared_dir; /* must exist and be a directory */
	double entry_timeout;	/* seconds the guest may cache entries and attributes */
	double attr_timeout;
};

/** vfsd_passthrough_new() - open the shared directory as the root inode. Returns 0 or -errno. */
int vfsd_passthrough_new(const struct vfsd_passthrough_config *cfg, struct vfsd_passthrough **ret);

/** vfsd_passthrough_free() - close every fd and free; accepts NULL. */
void vfsd_passthrough_free(struct vfsd_passthrough *fs);

/** vfsd_passthrough_counts() - live inodes (root included) and open handles. */
void vfsd_passthrough_counts(struct vfsd_passthrough *fs, size_t *ret_inodes, size_t *ret_handles);

/**
 * vfsd_passthrough_instance_id() - this object's random 128-bit instance id
 * (32 hex digits): its orphan directory is <shared>/.vfsd-orphans/<id>.
 */
const char *vfsd_passthrough_instance_id(struct vfsd_passthrough *fs);

/* The ops table; the fs pointer is a struct vfsd_passthrough *. */
extern const struct vfsd_fs_ops vfsd_passthrough_ops;

#endif
