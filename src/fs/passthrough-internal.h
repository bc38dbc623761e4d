/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * passthrough-internal: what passthrough.c shares with fs_migration.c (same
 * layer, not for anyone else).
 */
#ifndef VFSD_FS_PASSTHROUGH_INTERNAL_H
#define VFSD_FS_PASSTHROUGH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfsd/handle_table.h"
#include "vfsd/inode_table.h"
#include "vfsd/passthrough.h"

/* The hidden directory in the shared directory's root that holds orphans. */
#define VFSD_ORPHANS_DIR ".vfsd-orphans"

struct vfsd_passthrough {
	struct vfsd_inode_table *inodes;
	struct vfsd_handle_table *handles;
	int proc_self_fd; /* O_PATH on /proc/self/fd: reopen inodes through it */
	int root_fd;	  /* O_PATH on the shared directory (a dup, owned) */
	char *root_path;  /* the shared directory as /proc/self/fd reports it */
	double entry_timeout;
	double attr_timeout;
	atomic_bool no_openat2; /* set once openat2 said ENOSYS */
	uid_t own_fsuid;	/* our file-system ids when no guard is active */
	gid_t own_fsgid;

	char instance_id[33];	      /* 128 random bits in hex */
	pthread_mutex_t orphan_lock;  /* guards the two below */
	int orphans_top_fd;	      /* <shared>/.vfsd-orphans, O_DIRECTORY, or -EBADF */
	struct vfsd_orphan_dir *odir; /* our locked instance dir, or NULL (made on demand) */
	_Atomic uint64_t orphan_seq;  /* disambiguates orphan / hand-over names */
};

/** pt_is_dot_name() - whether @name is "." or "..". */
static inline bool pt_is_dot_name(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/** pt_open_child() - O_PATH|O_NOFOLLOW open of @name (may hold '/') beneath @dirfd. */
int pt_open_child(struct vfsd_passthrough *fs, int dirfd, const char *name);

/** pt_reopen_fd() - re-open the O_PATH @fd through /proc/self/fd with @flags. */
int pt_reopen_fd(struct vfsd_passthrough *fs, int fd, int flags);

/**
 * pt_inode_open_loc() - open @i (of table @t) by its location with @flags
 * (O_PATH: an O_PATH fd) and check it still is @i.
 * Returns: a new fd, -ESTALE when the name leads elsewhere or nowhere, or -errno.
 */
int pt_inode_open_loc(struct vfsd_inode_table *t, const struct vfsd_inode *i, int flags);

struct io_uring;

/**
 * pt_inode_open_batch() - pt_inode_open_loc() for @n inodes at once: the
 * opens go to the kernel as one io_uring submission on @ring (NULL: one by
 * one), the same checks follow each. An open that would wait for the disk,
 * or that the ring refuses, is done one by one. @n must fit the ring's
 * submission queue.
 * @fds: out: a new fd or -errno for each inode
 * Returns: 0; or -errno: the ring is in an unknown state (the caller must
 * io_uring_queue_exit() it); *@fds are right either way.
 */
int pt_inode_open_batch(struct vfsd_inode_table *t, struct io_uring *ring,
			const struct vfsd_inode *const *inodes, const int *flags, size_t n,
			int *fds);

/**
 * pt_inode_fd() - an O_PATH fd for @i: its own, or opened now by location
 * (kept by @i when the fd budget allows, else returned in *@tmp, which the
 * caller closes).
 */
int pt_inode_fd(struct vfsd_passthrough *fs, struct vfsd_inode *i, int *tmp);

/** pt_orphan_dir() - our instance's orphan directory (created and locked on demand), referenced. */
int pt_orphan_dir(struct vfsd_passthrough *fs, struct vfsd_orphan_dir **ret);

/** pt_orphans_top() - an fd on <shared>/.vfsd-orphans (not owned by the caller), or -errno. */
int pt_orphans_top(struct vfsd_passthrough *fs);

#endif
