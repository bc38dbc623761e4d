/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * handle_table: FUSE file handles (fh) -> open files and directories.
 *
 * fh numbers come from a counter that starts at 1 and are never reused while
 * the table lives, not even across a reset. A handle holds a reference on its
 * inode, an fd opened for I/O and the guest's open flags; directory handles
 * also carry the getdents64 position. Handles are reference counted (atomic)
 * so an op in flight keeps its handle alive across a concurrent RELEASE.
 *
 * Locking: one rwlock for the map; a per-handle mutex serialises directory
 * reads. The last reference is never dropped under the map lock.
 */
#ifndef VFSD_HANDLE_TABLE_H
#define VFSD_HANDLE_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfsd/inode_table.h"

/* Outside the fs layer every field is read-only. */
struct vfsd_handle {
	uint64_t fh;		  /* immutable */
	struct vfsd_inode *inode; /* a reference, immutable */
	int fd;			  /* opened for I/O, owned, immutable */
	uint32_t flags;		  /* the guest's open flags, immutable */
	bool is_dir;		  /* immutable */

	pthread_mutex_t dir_lock; /* serialises READDIR on this handle */
	uint64_t dir_pos;	  /* dir_lock: the d_off cookie fd is positioned at */
	bool dir_pos_valid;	  /* dir_lock: false after an error: lseek first */

	_Atomic uint64_t refcount; /* the table's one, plus one per op in flight */
	struct vfsd_hlink link;	   /* map lock */
};

struct vfsd_handle_table;

/* Default cap on open handles (beyond it opens fail with -ENFILE). */
#define VFSD_MAX_HANDLES (1u << 20)

/**
 * vfsd_handle_table_new() - create an empty table.
 * @max_handles: hard limit on open handles (0: VFSD_MAX_HANDLES)
 * Returns: 0 or -ENOMEM.
 */
int vfsd_handle_table_new(size_t max_handles, struct vfsd_handle_table **ret);

/** vfsd_handle_table_free() - drop every handle and free; accepts NULL. */
void vfsd_handle_table_free(struct vfsd_handle_table *t);

/**
 * vfsd_handle_table_add() - register an open file under a fresh fh.
 * @inode: the handle takes its own reference
 * @fd:    the I/O fd; taken on success only
 * @flags: the guest's open flags, kept for migration
 * Returns: 0 (and *@ret_fh), -ENFILE (too many handles) or -ENOMEM.
 */
int vfsd_handle_table_add(struct vfsd_handle_table *t, struct vfsd_inode *inode, int fd,
			  uint32_t flags, bool is_dir, uint64_t *ret_fh);

/**
 * vfsd_handle_table_restore() - as vfsd_handle_table_add() with a given @fh
 * (migration LOAD); bumps the fh counter past it.
 * Returns: 0; -EINVAL for fh 0; -EEXIST; -ENFILE; -ENOMEM.
 */
int vfsd_handle_table_restore(struct vfsd_handle_table *t, uint64_t fh, struct vfsd_inode *inode,
			      int fd, uint32_t flags, bool is_dir);

/**
 * vfsd_handle_table_get() - find by fh and take a reference.
 * Returns: the handle (vfsd_handle_unref() it) or NULL.
 */
struct vfsd_handle *vfsd_handle_table_get(struct vfsd_handle_table *t, uint64_t fh);

/** vfsd_handle_unref() - drop a reference; the last closes the fd and unrefs the inode. Accepts
 * NULL. */
void vfsd_handle_unref(struct vfsd_handle *h);

/** vfsd_handle_unrefp() - cleanup helper. */
static inline void vfsd_handle_unrefp(struct vfsd_handle **h)
{
	vfsd_handle_unref(*h);
}

/**
 * vfsd_handle_table_remove() - take @fh out of the table (RELEASE); the fd is
 * closed once no op in flight uses it any more.
 * Returns: 0 or -EBADF when @fh is unknown.
 */
int vfsd_handle_table_remove(struct vfsd_handle_table *t, uint64_t fh);

/** vfsd_handle_table_reset() - drop every handle; the fh counter keeps going. */
void vfsd_handle_table_reset(struct vfsd_handle_table *t);

/** vfsd_handle_table_count() - open handles. */
size_t vfsd_handle_table_count(struct vfsd_handle_table *t);

/** vfsd_handle_table_next_fh() - the fh the next handle will get. */
uint64_t vfsd_handle_table_next_fh(struct vfsd_handle_table *t);

/** vfsd_handle_table_set_next_fh() - move the counter forward; -EINVAL if it would go back. */
int vfsd_handle_table_set_next_fh(struct vfsd_handle_table *t, uint64_t next);

/**
 * vfsd_handle_table_foreach() - call @cb for every handle under the read
 * lock; @cb must not call into the table.
 * Returns: 0 or the first negative value from @cb.
 */
int vfsd_handle_table_foreach(struct vfsd_handle_table *t,
			      int (*cb)(const struct vfsd_handle *h, void *userdata),
			      void *userdata);

#endif
