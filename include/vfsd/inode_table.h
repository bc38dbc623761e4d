/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * inode_table: FUSE node ids -> host inodes.
 *
 * Node ids are allocated from a counter that starts at 2 (1 is the root,
 * FUSE_ROOT_ID) and are never reused while the table lives, not even across
 * a reset. A host inode (st_dev, st_ino) maps to at most one node id at a
 * time, so hard links and repeated lookups get the same id.
 *
 * Two counts per inode, kept apart on purpose:
 *  - nlookup: the guest's lookup count (LOOKUP, MKDIR, CREATE, READDIRPLUS
 *    entries add one, FORGET subtracts). Protected by the table lock. When it
 *    reaches 0 the inode leaves the table (the root never does).
 *  - refcount: ours (atomic). Being in the table holds one reference; every
 *    open handle and every op in flight holds another. The O_PATH fd is
 *    closed and the memory freed when it reaches 0.
 *
 * Locking: one rwlock for both maps. The last reference is never dropped
 * while the lock is held, so closing an fd never happens under it.
 *
 * The migration layer uses vfsd_inode_table_foreach() to collect, and
 * vfsd_inode_table_restore() / vfsd_inode_table_set_next_id() to rebuild a
 * table with the node ids the guest already holds.
 */
#ifndef VFSD_INODE_TABLE_H
#define VFSD_INODE_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Intrusive hash-chain link, shared by the inode and handle tables. */
struct vfsd_hlink {
	struct vfsd_hlink *next;
	uint64_t hash;
};

/*
 * One host inode. Outside the fs layer, treat every field as read-only; the
 * fields marked "lock" may only be read under the table lock, which is what
 * vfsd_inode_table_foreach() callbacks get.
 */
struct vfsd_inode {
	uint64_t nodeid; /* FUSE node id, immutable */
	int fd;		 /* O_PATH|O_NOFOLLOW|O_CLOEXEC, owned, immutable */
	uint64_t dev;	 /* st_dev */
	uint64_t ino;	 /* st_ino */
	uint64_t mnt_id; /* 0: not collected yet */
	uint32_t type;	 /* st_mode & S_IFMT at lookup time */

	/*
	 * The guest's lookup count: raised with the table lock held on either
	 * side (atomically), lowered only under the write side.
	 */
	_Atomic uint64_t nlookup;
	bool in_table; /* lock: still reachable by node id */

	_Atomic uint64_t refcount; /* ours; see the file comment */

	struct vfsd_hlink by_id;	/* lock */
	struct vfsd_hlink by_key;	/* lock */
	struct vfsd_inode *unlink_next; /* scratch list used by reset, lock */
};

struct vfsd_inode_table;

/* Default cap on inodes in a table (beyond it lookups fail with -ENFILE). */
#define VFSD_MAX_INODES (1u << 20)

/**
 * vfsd_inode_table_new() - create an empty table (no root yet).
 * @max_inodes: hard limit on inodes in the table, root included (0: VFSD_MAX_INODES)
 * Returns: 0 or -ENOMEM.
 */
int vfsd_inode_table_new(size_t max_inodes, struct vfsd_inode_table **ret);

/**
 * vfsd_inode_table_free() - drop every inode (root included) and free the
 * table; accepts NULL. Inodes still referenced elsewhere (handles) stay alive
 * until those references go, so free the handle table first.
 */
void vfsd_inode_table_free(struct vfsd_inode_table *t);

/**
 * vfsd_inode_table_set_root() - install the root inode (node id 1).
 * @fd: an O_PATH directory fd; taken on success only
 * @st: its stat
 * Returns: 0, -EEXIST if there already is a root, or -ENOMEM.
 */
int vfsd_inode_table_set_root(struct vfsd_inode_table *t, int fd, const struct stat *st);

/**
 * vfsd_inode_table_lookup_or_insert() - account one guest lookup of the host
 * inode behind @fd: if (st_dev, st_ino) is already in the table, its nlookup
 * grows by one and @fd is closed; else a new inode with a fresh node id and
 * nlookup 1 takes @fd.
 * @fd:  O_PATH|O_NOFOLLOW fd; ALWAYS taken (closed on error too)
 * @ret: the inode with a reference for the caller (vfsd_inode_unref())
 * Returns: 0, -ENFILE (table full) or -ENOMEM.
 */
int vfsd_inode_table_lookup_or_insert(struct vfsd_inode_table *t, int fd, const struct stat *st,
				      struct vfsd_inode **ret);

/**
 * vfsd_inode_table_restore() - insert an inode with a given node id (for
 * migration LOAD). Bumps the id counter past @nodeid.
 * @fd: O_PATH fd; taken on success only
 * Returns: 0; -EINVAL for node id 0 or 1 or nlookup 0; -EEXIST when the node
 * id or the host inode is already present; -ENFILE; -ENOMEM.
 */
int vfsd_inode_table_restore(struct vfsd_inode_table *t, uint64_t nodeid, int fd,
			     const struct stat *st, uint64_t nlookup);

/**
 * vfsd_inode_table_get() - find by node id and take a reference.
 * Returns: the inode (vfsd_inode_unref() it) or NULL when unknown.
 */
struct vfsd_inode *vfsd_inode_table_get(struct vfsd_inode_table *t, uint64_t nodeid);

/** vfsd_inode_ref() - take another reference on an inode the caller already holds. */
struct vfsd_inode *vfsd_inode_ref(struct vfsd_inode *i);

/**
 * vfsd_inode_unref() - drop a reference; the last one closes the fd and frees.
 * Accepts NULL. Never call it with the table lock held.
 */
void vfsd_inode_unref(struct vfsd_inode *i);

/** vfsd_inode_unrefp() - cleanup helper for _cleanup_(vfsd_inode_unrefp). */
static inline void vfsd_inode_unrefp(struct vfsd_inode **i)
{
	vfsd_inode_unref(*i);
}

/**
 * vfsd_inode_table_forget() - subtract @n from the guest's lookup count
 * (clamped at 0); at 0 the inode leaves the table. Unknown ids and the root
 * are ignored.
 */
void vfsd_inode_table_forget(struct vfsd_inode_table *t, uint64_t nodeid, uint64_t n);

/**
 * vfsd_inode_table_reset() - drop every inode but the root, whose nlookup
 * goes back to 1. The id counter keeps going.
 */
void vfsd_inode_table_reset(struct vfsd_inode_table *t);

/** vfsd_inode_table_count() - inodes in the table, root included. */
size_t vfsd_inode_table_count(struct vfsd_inode_table *t);

/** vfsd_inode_table_next_id() - the node id the next new inode will get. */
uint64_t vfsd_inode_table_next_id(struct vfsd_inode_table *t);

/**
 * vfsd_inode_table_set_next_id() - move the id counter forward (migration).
 * Returns: 0, or -EINVAL when @next is below the current counter (ids would be reused).
 */
int vfsd_inode_table_set_next_id(struct vfsd_inode_table *t, uint64_t next);

/**
 * vfsd_inode_table_foreach() - call @cb for every inode in the table (root
 * included), in no particular order, under the read lock. @cb must not call
 * into the table; it may read every field and use the fd.
 * Returns: 0, or the first negative value @cb returned (iteration stops).
 */
int vfsd_inode_table_foreach(struct vfsd_inode_table *t,
			     int (*cb)(const struct vfsd_inode *i, void *userdata), void *userdata);

#endif
