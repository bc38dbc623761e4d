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
 * Locations (for find-paths migration). Every inode but the root records
 * where it lives: (parent inode, name) as last looked up, created, linked
 * or renamed; STALE when that name was unlinked while other hard links
 * remain (collect re-derives a path); ORPHAN when the fs moved it into its
 * hidden orphan directory; NONE when it cannot be described. A child that
 * names a parent holds a "pin" on it: an inode stays in the table while
 * nlookup > 0 OR pins > 0, so a directory the guest forgot but whose child
 * it still holds stays (with nlookup 0). Open handles pin their inode too
 * (vfsd_inode_table_pin()). Location fields are guarded by the table lock;
 * a LOOKUP that finds the location unchanged stays on the read side.
 *
 * The migration layer goes through vfsd/fs_migration.h; the raw
 * vfsd_inode_table_foreach() / vfsd_inode_table_restore() remain for tests.
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

/* Where an inode lives (struct vfsd_inode.loc). */
enum vfsd_inode_loc {
	VFSD_LOC_NONE = 0, /* unknown / unlinked: cannot be described */
	VFSD_LOC_ROOT,	   /* the shared directory itself */
	VFSD_LOC_NAME,	   /* loc_parent + loc_name */
	VFSD_LOC_STALE,	   /* the recorded name went away, other hard links remain */
	VFSD_LOC_ORPHAN,   /* unlinked while open: orphan_dir + orphan_name */
};

/*
 * The fs instance's hidden orphan directory, shared (refcounted) by the
 * inodes that have a name in it; the last orphan inode to go unlinks its
 * own name through it.
 */
struct vfsd_orphan_dir {
	_Atomic uint64_t refcount;
	int fd; /* O_RDONLY|O_DIRECTORY, owned */
};

/** vfsd_orphan_dir_ref() - take a reference; accepts NULL. */
struct vfsd_orphan_dir *vfsd_orphan_dir_ref(struct vfsd_orphan_dir *d);

/** vfsd_orphan_dir_unref() - drop a reference; the last closes the fd. Accepts NULL. */
void vfsd_orphan_dir_unref(struct vfsd_orphan_dir *d);

/* A file handle from name_to_handle_at(), cached by vfsd_fs_prepare(). */
struct vfsd_inode_fh {
	int32_t type;
	uint32_t size;
	uint64_t mnt_id;
	uint8_t bytes[128]; /* MAX_HANDLE_SZ */
};

/*
 * One host inode. Outside the fs layer, treat every field as read-only; the
 * fields marked "lock" may only be read under the table lock, which is what
 * vfsd_inode_table_foreach() callbacks get.
 */
struct vfsd_inode {
	uint64_t nodeid; /* FUSE node id, immutable */
	/*
	 * O_PATH|O_NOFOLLOW|O_CLOEXEC, owned; or negative: not held (see "fd
	 * budget" below). Goes from negative to an fd at most once
	 * (vfsd_inode_install_fd()), and is closed only when the inode is freed.
	 */
	_Atomic int fd;
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
	struct vfsd_hlink by_key;	/* lock; unused for invalid inodes */
	struct vfsd_inode *unlink_next; /* scratch list used by reset, lock */

	/* A lenient-restore placeholder (no fd, not in by_key): every op -EIO. */
	bool invalid; /* immutable */

	/* Location, see the file comment. All "lock". */
	uint8_t loc;		       /* enum vfsd_inode_loc */
	struct vfsd_inode *loc_parent; /* LOC_NAME: the parent, pinned by us */
	char *loc_name;		       /* LOC_NAME: owned */
	char *stale_path;	       /* LOC_STALE: path resolved by prepare, owned, or NULL */
	uint64_t pins;		       /* children naming us + open handles */
	uint64_t mark;		       /* collect scratch (write side) */
	_Atomic bool orphaned;	       /* set once, with orphan_dir/orphan_name */
	struct vfsd_orphan_dir *orphan_dir; /* a reference; our name in it is unlinked at free */
	char *orphan_name;		    /* owned */
	_Atomic(struct vfsd_inode_fh *) fh_cache; /* set once by prepare, owned */
};

struct vfsd_inode_table;

/*
 * The fd budget. Every directory inode holds an O_PATH fd (it is the dirfd
 * of every *at() call below it). A non-directory inode holds one while the
 * process-wide count of inode fds is under the budget; past it, and after a
 * migration load, it is held by its location only (parent + name, or its
 * orphan name) and opened when an op needs it, with (st_dev, st_ino) checked
 * on every such open: a name that now leads elsewhere gives -ESTALE, as on
 * NFS. An fd-less inode is given an fd before it would lose its last usable
 * name (unlink of a hard link, rename over it). The budget is what keeps a
 * share with more inodes than RLIMIT_NOFILE alive instead of failing every
 * lookup with EMFILE.
 */

/** vfsd_inode_fd_budget_set() - cap non-directory inode fds process-wide (0: no cap). */
void vfsd_inode_fd_budget_set(size_t max);

/** vfsd_inode_fd_budget() - the cap (0: none). */
size_t vfsd_inode_fd_budget(void);

/** vfsd_inode_fds_held() - inode fds open in this process now. */
size_t vfsd_inode_fds_held(void);

/** vfsd_inode_fd_wanted() - whether a new inode of @type should hold an fd. */
bool vfsd_inode_fd_wanted(uint32_t type);

/**
 * vfsd_inode_install_fd() - give the fd-less @i the O_PATH @fd (taken).
 * Returns: the fd @i holds now (@fd, or one another thread installed first,
 * in which case @fd is closed).
 */
int vfsd_inode_install_fd(struct vfsd_inode *i, int fd);

/* Where an fd-less inode can be opened: @name in @dirfd, references held. */
struct vfsd_inode_where {
	struct vfsd_inode *parent;    /* a reference, or NULL */
	struct vfsd_orphan_dir *odir; /* a reference, or NULL */
	int dirfd;		      /* parent's or odir's fd, not owned */
	char name[256];
};

/**
 * vfsd_inode_table_where() - @i's current location as a directory and a
 * single name, for opening it outside the table lock.
 * Returns: 0, or -ESTALE when @i has no such location (root, stale, none).
 */
int vfsd_inode_table_where(struct vfsd_inode_table *t, const struct vfsd_inode *i,
			   struct vfsd_inode_where *ret);

/** vfsd_inode_where_done() - drop the references of a vfsd_inode_table_where(). */
void vfsd_inode_where_done(struct vfsd_inode_where *w);

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
 * vfsd_inode_table_lookup_or_insert_at() - vfsd_inode_table_lookup_or_insert()
 * that also records @name in @parent as the inode's location (unless it is
 * the root or an orphan). With @parent NULL no location changes.
 * Returns: as vfsd_inode_table_lookup_or_insert().
 */
int vfsd_inode_table_lookup_or_insert_at(struct vfsd_inode_table *t, struct vfsd_inode *parent,
					 const char *name, int fd, const struct stat *st,
					 struct vfsd_inode **ret);

/**
 * vfsd_inode_table_find_key() - the inode of host inode (@dev, @ino) if it is
 * in the table (invalid ones never are), with a reference; else NULL.
 */
struct vfsd_inode *vfsd_inode_table_find_key(struct vfsd_inode_table *t, uint64_t dev,
					     uint64_t ino);

/**
 * vfsd_inode_table_set_location() - record that @i is now reachable as @name
 * in @parent (RENAME, LINK). Ignored for the root, orphans, and inodes or
 * parents no longer in the table.
 * Returns: 0 or -ENOMEM (the location is then STALE).
 */
int vfsd_inode_table_set_location(struct vfsd_inode_table *t, struct vfsd_inode *i,
				  struct vfsd_inode *parent, const char *name);

/**
 * vfsd_inode_table_name_removed() - @name in @parent no longer names @i
 * (UNLINK, RMDIR, overwritten by RENAME). When that is @i's recorded
 * location it becomes STALE (@still_linked: other hard links remain) or NONE.
 */
void vfsd_inode_table_name_removed(struct vfsd_inode_table *t, struct vfsd_inode *i,
				   struct vfsd_inode *parent, const char *name, bool still_linked);

/**
 * vfsd_inode_table_set_orphan() - @i now lives as @name in orphan directory
 * @dir (takes a reference on @dir, copies @name): location ORPHAN, parent pin
 * dropped; the name is unlinked when the inode is freed.
 * Returns: 0, -EALREADY (already an orphan) or -ENOMEM.
 */
int vfsd_inode_table_set_orphan(struct vfsd_inode_table *t, struct vfsd_inode *i,
				struct vfsd_orphan_dir *dir, const char *name);

/**
 * vfsd_inode_table_pin() - keep @i in the table while an open handle uses it.
 * Returns: 0, or -ESTALE when @i already left the table.
 */
int vfsd_inode_table_pin(struct vfsd_inode_table *t, struct vfsd_inode *i);

/**
 * vfsd_inode_table_unpin() - undo one vfsd_inode_table_pin(); with no pins
 * and no guest lookups left the inode leaves the table.
 */
void vfsd_inode_table_unpin(struct vfsd_inode_table *t, struct vfsd_inode *i);

/**
 * vfsd_inode_table_set_stale_path() - cache a resolved path for a STALE
 * inode (copied; NULL clears). Ignored unless the location is still STALE.
 */
void vfsd_inode_table_set_stale_path(struct vfsd_inode_table *t, struct vfsd_inode *i,
				     const char *path);

/* A copy of an inode's location, taken under the lock. */
struct vfsd_inode_loc_snap {
	enum vfsd_inode_loc loc;
	uint64_t parent;	      /* LOC_NAME */
	char name[256];		      /* LOC_NAME: VFSD_NAME_MAX + 1 */
	char stale_path[4096];	      /* LOC_STALE: "" when none cached */
	char orphan_name[64];	      /* LOC_ORPHAN */
	struct vfsd_orphan_dir *odir; /* LOC_ORPHAN: not referenced, compare only */
	struct vfsd_inode
	    *parent_ptr; /* LOC_NAME: not referenced; the caller keeps the table still */
};

/** vfsd_inode_table_get_location() - copy @i's location into @ret under the read lock. */
void vfsd_inode_table_get_location(struct vfsd_inode_table *t, const struct vfsd_inode *i,
				   struct vfsd_inode_loc_snap *ret);

/**
 * vfsd_inode_table_snapshot() - every inode in the table, each with a
 * reference, root first, then by node id except that every parent
 * (loc_parent) comes before its children.
 * @ret:   a malloc()ed array; release with vfsd_inode_table_snapshot_free()
 * Returns: 0 or -ENOMEM.
 */
int vfsd_inode_table_snapshot(struct vfsd_inode_table *t, struct vfsd_inode ***ret, size_t *ret_n);

/** vfsd_inode_table_snapshot_free() - unref every entry and free the array. */
void vfsd_inode_table_snapshot_free(struct vfsd_inode **v, size_t n);

/**
 * vfsd_inode_table_restore_at() - as vfsd_inode_table_restore(), for the
 * migration LOAD: @nlookup may be 0 (kept for children or handles, see
 * vfsd_inode_table_sweep()), and the location is @parent + @name; with
 * @odir, the orphan name @name in @odir; with neither, STALE, @name (may be
 * NULL) being a path relative to the shared directory to try first.
 * Returns: 0; -EINVAL; -EEXIST (node id or host inode present); -ENFILE; -ENOMEM.
 */
int vfsd_inode_table_restore_at(struct vfsd_inode_table *t, uint64_t nodeid, int fd,
				const struct stat *st, uint64_t nlookup, struct vfsd_inode *parent,
				const char *name, struct vfsd_orphan_dir *odir);

/**
 * vfsd_inode_table_restore_invalid() - insert a placeholder for an inode that
 * could not be re-opened (lenient LOAD): every op on it fails with -EIO.
 * Returns: 0, -EINVAL, -EEXIST, -ENFILE or -ENOMEM.
 */
int vfsd_inode_table_restore_invalid(struct vfsd_inode_table *t, uint64_t nodeid, uint32_t type,
				     uint64_t nlookup);

/** vfsd_inode_table_sweep() - drop every inode (not the root) with no lookups and no pins. */
void vfsd_inode_table_sweep(struct vfsd_inode_table *t);

/**
 * vfsd_inode_table_sweep_ids() - vfsd_inode_table_sweep() for the inodes
 * @ids only (those restored with no lookups: the only ones it could drop),
 * without walking the whole table.
 */
void vfsd_inode_table_sweep_ids(struct vfsd_inode_table *t, const uint64_t *ids, size_t n);

/** vfsd_inode_table_pins() - @i's pin count (tests). */
uint64_t vfsd_inode_table_pins(struct vfsd_inode_table *t, const struct vfsd_inode *i);

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
