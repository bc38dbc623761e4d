/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/inode_table.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "vfsd/util.h"

struct vfsd_inode_table {
	pthread_rwlock_t lock;
	struct hmap by_id;  /* nodeid -> inode */
	struct hmap by_key; /* (dev, ino) -> inode */
	uint64_t next_id;   /* lock */
	size_t max_inodes;
	struct vfsd_inode *root;
	uint64_t mark_gen; /* lock (write side): snapshot generations */
};

/* The fd budget (see inode_table.h): process-wide, like RLIMIT_NOFILE. */
static _Atomic size_t fd_budget;
static _Atomic size_t fds_held;

void vfsd_inode_fd_budget_set(size_t max)
{
	atomic_store_explicit(&fd_budget, max, memory_order_relaxed);
}

size_t vfsd_inode_fd_budget(void)
{
	return atomic_load_explicit(&fd_budget, memory_order_relaxed);
}

size_t vfsd_inode_fds_held(void)
{
	return atomic_load_explicit(&fds_held, memory_order_relaxed);
}

bool vfsd_inode_fd_wanted(uint32_t type)
{
	size_t max = vfsd_inode_fd_budget();

	return type == S_IFDIR || max == 0 || vfsd_inode_fds_held() < max;
}

int vfsd_inode_install_fd(struct vfsd_inode *i, int fd)
{
	int expected = atomic_load_explicit(&i->fd, memory_order_acquire);

	while (expected < 0) {
		if (atomic_compare_exchange_weak_explicit(
			&i->fd, &expected, fd, memory_order_acq_rel, memory_order_acquire)) {
			atomic_fetch_add_explicit(&fds_held, 1, memory_order_relaxed);
			return fd;
		}
	}
	safe_close(fd);
	return expected;
}

/* Deepest parent chain we follow (cycle guard; only host-side renames make cycles). */
#define MAX_CHAIN 1000000

static uint64_t id_hash(uint64_t nodeid)
{
	return hmap_mix(nodeid);
}

static uint64_t key_hash(uint64_t dev, uint64_t ino)
{
	return hmap_mix(ino ^ hmap_mix(dev));
}

int vfsd_inode_table_new(size_t max_inodes, struct vfsd_inode_table **ret)
{
	struct vfsd_inode_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (hmap_init(&t->by_id) < 0 || hmap_init(&t->by_key) < 0) {
		hmap_done(&t->by_id);
		free(t);
		return -ENOMEM;
	}
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		hmap_done(&t->by_id);
		hmap_done(&t->by_key);
		free(t);
		return -ENOMEM;
	}
	t->next_id = FUSE_ROOT_ID + 1;
	t->max_inodes = max_inodes ? max_inodes : VFSD_MAX_INODES;
	*ret = t;
	return 0;
}

struct vfsd_inode *vfsd_inode_ref(struct vfsd_inode *i)
{
	if (i)
		atomic_fetch_add_explicit(&i->refcount, 1, memory_order_relaxed);
	return i;
}

struct vfsd_orphan_dir *vfsd_orphan_dir_ref(struct vfsd_orphan_dir *d)
{
	if (d)
		atomic_fetch_add_explicit(&d->refcount, 1, memory_order_relaxed);
	return d;
}

void vfsd_orphan_dir_unref(struct vfsd_orphan_dir *d)
{
	if (!d)
		return;
	if (atomic_fetch_sub_explicit(&d->refcount, 1, memory_order_acq_rel) != 1)
		return;
	safe_close(d->fd);
	free(d);
}

/*
 * An orphan's name goes with the inode: by now the guest has forgotten it
 * and no handle is open. Only a name that still is this inode is removed.
 */
static void orphan_name_remove(struct vfsd_inode *i)
{
	struct stat st;

	if (!i->orphan_dir || !i->orphan_name)
		return;
	if (fstatat(i->orphan_dir->fd, i->orphan_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (uint64_t)st.st_dev == i->dev && (uint64_t)st.st_ino == i->ino)
		(void)unlinkat(i->orphan_dir->fd, i->orphan_name, 0);
}

void vfsd_inode_unref(struct vfsd_inode *i)
{
	if (!i)
		return;
	/* acq_rel: the thread that frees must see every other user's writes. */
	if (atomic_fetch_sub_explicit(&i->refcount, 1, memory_order_acq_rel) != 1)
		return;
	orphan_name_remove(i);
	vfsd_orphan_dir_unref(i->orphan_dir);
	free(i->orphan_name);
	free(i->loc_name);
	free(i->stale_path);
	free(atomic_load_explicit(&i->fh_cache, memory_order_acquire));
	if (i->fd >= 0) {
		atomic_fetch_sub_explicit(&fds_held, 1, memory_order_relaxed);
		safe_close(i->fd);
	}
	free(i);
}

static struct vfsd_inode *inode_alloc(uint64_t nodeid, int fd, const struct stat *st,
				      uint64_t nlookup)
{
	struct vfsd_inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->nodeid = nodeid;
	atomic_init(&i->fd, fd < 0 ? -EBADF : fd);
	if (fd >= 0)
		atomic_fetch_add_explicit(&fds_held, 1, memory_order_relaxed);
	i->dev = (uint64_t)st->st_dev;
	i->ino = (uint64_t)st->st_ino;
	i->type = st->st_mode & S_IFMT;
	atomic_init(&i->nlookup, nlookup);
	i->in_table = true;
	atomic_init(&i->refcount, 1); /* the table's */
	atomic_init(&i->orphaned, false);
	atomic_init(&i->fh_cache, NULL);
	i->loc = VFSD_LOC_NONE;
	return i;
}

/* Caller holds the lock (either side). */
static struct vfsd_inode *find_by_id(struct vfsd_inode_table *t, uint64_t nodeid)
{
	uint64_t h = id_hash(nodeid);

	for (struct vfsd_hlink *l = hmap_bucket(&t->by_id, h); l; l = l->next) {
		struct vfsd_inode *i = container_of(l, struct vfsd_inode, by_id);
		if (l->hash == h && i->nodeid == nodeid)
			return i;
	}
	return NULL;
}

static struct vfsd_inode *find_by_key(struct vfsd_inode_table *t, uint64_t dev, uint64_t ino)
{
	uint64_t h = key_hash(dev, ino);

	for (struct vfsd_hlink *l = hmap_bucket(&t->by_key, h); l; l = l->next) {
		struct vfsd_inode *i = container_of(l, struct vfsd_inode, by_key);
		if (l->hash == h && i->dev == dev && i->ino == ino)
			return i;
	}
	return NULL;
}

static void insert_locked(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	hmap_insert(&t->by_id, &i->by_id, id_hash(i->nodeid));
	if (!i->invalid)
		hmap_insert(&t->by_key, &i->by_key, key_hash(i->dev, i->ino));
}

/* Take @i out of both maps, without touching its location (reset, free). */
static void detach_locked(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	hmap_remove(&t->by_id, &i->by_id);
	if (!i->invalid)
		hmap_remove(&t->by_key, &i->by_key);
	i->in_table = false;
}

static bool removable_locked(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	return i != t->root && i->in_table && i->pins == 0 &&
	       atomic_load_explicit(&i->nlookup, memory_order_relaxed) == 0;
}

/*
 * Forget @i's location; the parent it pinned may leave the table in turn, and
 * so on up the chain (iteratively: chains can be deep). Whatever leaves goes
 * onto *@drop, whose table references the caller drops after unlocking.
 */
static void clear_loc_locked(struct vfsd_inode_table *t, struct vfsd_inode *i,
			     struct vfsd_inode **drop)
{
	struct vfsd_inode *p = i->loc == VFSD_LOC_NAME ? i->loc_parent : NULL;

	i->loc_parent = NULL;
	free(i->loc_name);
	i->loc_name = NULL;
	free(i->stale_path);
	i->stale_path = NULL;
	i->loc = VFSD_LOC_NONE;
	while (p) {
		struct vfsd_inode *next;

		p->pins--;
		if (!removable_locked(t, p))
			break;
		detach_locked(t, p);
		p->unlink_next = *drop;
		*drop = p;
		next = p->loc == VFSD_LOC_NAME ? p->loc_parent : NULL;
		p->loc_parent = NULL;
		free(p->loc_name);
		p->loc_name = NULL;
		p->loc = VFSD_LOC_NONE;
		p = next;
	}
}

/* @i leaves the table (no lookups, no pins): its location goes too. */
static void remove_locked(struct vfsd_inode_table *t, struct vfsd_inode *i,
			  struct vfsd_inode **drop)
{
	detach_locked(t, i);
	i->unlink_next = *drop;
	*drop = i;
	clear_loc_locked(t, i, drop);
}

static void unref_list(struct vfsd_inode *list);

/* Whether @p is @i or below it (following recorded parents). */
static bool is_below_locked(const struct vfsd_inode *p, const struct vfsd_inode *i)
{
	size_t n = 0;

	for (; p && n < MAX_CHAIN; p = p->loc == VFSD_LOC_NAME ? p->loc_parent : NULL, n++)
		if (p == i)
			return true;
	return n >= MAX_CHAIN;
}

/*
 * Record @name in @parent as @i's location. Nothing changes for the root,
 * orphans, or inodes out of the table; a name that would make a cycle
 * (host-side renames only) makes the location STALE.
 */
static int set_loc_locked(struct vfsd_inode_table *t, struct vfsd_inode *i,
			  struct vfsd_inode *parent, const char *name, struct vfsd_inode **drop)
{
	char *n;

	if (!parent || i == t->root || !i->in_table ||
	    atomic_load_explicit(&i->orphaned, memory_order_relaxed))
		return 0;
	if (i->loc == VFSD_LOC_NAME && i->loc_parent == parent && strcmp(i->loc_name, name) == 0)
		return 0;
	if (!parent->in_table || is_below_locked(parent, i)) {
		clear_loc_locked(t, i, drop);
		i->loc = VFSD_LOC_STALE;
		return 0;
	}
	n = strdup(name);
	if (!n) {
		clear_loc_locked(t, i, drop);
		i->loc = VFSD_LOC_STALE;
		return -ENOMEM;
	}
	parent->pins++; /* first: clearing the old one must not drop the same parent */
	clear_loc_locked(t, i, drop);
	i->loc = VFSD_LOC_NAME;
	i->loc_parent = parent;
	i->loc_name = n;
	return 0;
}

static bool loc_matches(const struct vfsd_inode *i, const struct vfsd_inode *parent,
			const char *name)
{
	return i->loc == VFSD_LOC_NAME && i->loc_parent == parent && strcmp(i->loc_name, name) == 0;
}

int vfsd_inode_table_set_root(struct vfsd_inode_table *t, int fd, const struct stat *st)
{
	struct vfsd_inode *i;

	pthread_rwlock_wrlock(&t->lock);
	if (t->root) {
		pthread_rwlock_unlock(&t->lock);
		return -EEXIST;
	}
	/* The kernel holds one implicit lookup on the root and never forgets it. */
	i = inode_alloc(FUSE_ROOT_ID, fd, st, 1);
	if (!i) {
		pthread_rwlock_unlock(&t->lock);
		return -ENOMEM;
	}
	i->loc = VFSD_LOC_ROOT;
	insert_locked(t, i);
	t->root = i;
	pthread_rwlock_unlock(&t->lock);
	return 0;
}

int vfsd_inode_table_lookup_or_insert(struct vfsd_inode_table *t, int fd, const struct stat *st,
				      struct vfsd_inode **ret)
{
	return vfsd_inode_table_lookup_or_insert_at(t, NULL, NULL, fd, st, ret);
}

int vfsd_inode_table_lookup_or_insert_at(struct vfsd_inode_table *t, struct vfsd_inode *parent,
					 const char *name, int fd, const struct stat *st,
					 struct vfsd_inode **ret)
{
	_cleanup_close_ int owned = fd;
	uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino;
	struct vfsd_inode *i, *drop = NULL;

	/*
	 * Fast path under the read side: nlookup is only ever lowered under the
	 * write side, so an atomic increment here cannot race with FORGET. A
	 * location that is already right (the common repeated lookup) needs no
	 * write either.
	 */
	pthread_rwlock_rdlock(&t->lock);
	i = find_by_key(t, dev, ino);
	if (i && (!parent || i == t->root || loc_matches(i, parent, name) ||
		  atomic_load_explicit(&i->orphaned, memory_order_relaxed))) {
		atomic_fetch_add_explicit(&i->nlookup, 1, memory_order_relaxed);
		vfsd_inode_ref(i);
		pthread_rwlock_unlock(&t->lock);
		if (owned >= 0 && i->fd < 0)
			(void)vfsd_inode_install_fd(i, TAKE_FD(owned)); /* a free promotion */
		*ret = i;
		return 0;
	}
	pthread_rwlock_unlock(&t->lock);

	pthread_rwlock_wrlock(&t->lock);
	i = find_by_key(t, dev, ino);
	if (i) {
		i->nlookup++;
		vfsd_inode_ref(i);
	} else {
		if (t->by_id.count >= t->max_inodes) {
			pthread_rwlock_unlock(&t->lock);
			return -ENFILE;
		}
		i = inode_alloc(t->next_id, owned, st, 1);
		if (!i) {
			pthread_rwlock_unlock(&t->lock);
			return -ENOMEM;
		}
		owned = -EBADF;
		t->next_id++;
		insert_locked(t, i);
		vfsd_inode_ref(i);
	}
	/*
	 * A failed strdup leaves the location STALE; the lookup itself
	 * succeeded (an fd-less inode then gives -ESTALE until looked up again).
	 */
	(void)set_loc_locked(t, i, parent, name, &drop);
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
	if (owned >= 0 && i->fd < 0)
		(void)vfsd_inode_install_fd(i, TAKE_FD(owned));
	*ret = i;
	return 0;
}

struct vfsd_inode *vfsd_inode_table_find_key(struct vfsd_inode_table *t, uint64_t dev, uint64_t ino)
{
	struct vfsd_inode *i;

	pthread_rwlock_rdlock(&t->lock);
	i = vfsd_inode_ref(find_by_key(t, dev, ino));
	pthread_rwlock_unlock(&t->lock);
	return i;
}

int vfsd_inode_table_set_location(struct vfsd_inode_table *t, struct vfsd_inode *i,
				  struct vfsd_inode *parent, const char *name)
{
	struct vfsd_inode *drop = NULL;
	int r;

	pthread_rwlock_wrlock(&t->lock);
	r = set_loc_locked(t, i, parent, name, &drop);
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
	return r;
}

void vfsd_inode_table_name_removed(struct vfsd_inode_table *t, struct vfsd_inode *i,
				   struct vfsd_inode *parent, const char *name, bool still_linked)
{
	struct vfsd_inode *drop = NULL;

	pthread_rwlock_wrlock(&t->lock);
	if (i->in_table && loc_matches(i, parent, name)) {
		clear_loc_locked(t, i, &drop);
		i->loc = still_linked ? VFSD_LOC_STALE : VFSD_LOC_NONE;
	}
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
}

int vfsd_inode_table_set_orphan(struct vfsd_inode_table *t, struct vfsd_inode *i,
				struct vfsd_orphan_dir *dir, const char *name)
{
	struct vfsd_inode *drop = NULL;
	char *n = strdup(name);

	if (!n)
		return -ENOMEM;
	pthread_rwlock_wrlock(&t->lock);
	if (atomic_load_explicit(&i->orphaned, memory_order_relaxed)) {
		pthread_rwlock_unlock(&t->lock);
		free(n);
		return -EALREADY;
	}
	if (i->in_table)
		clear_loc_locked(t, i, &drop);
	i->loc = VFSD_LOC_ORPHAN;
	i->orphan_dir = vfsd_orphan_dir_ref(dir);
	i->orphan_name = n;
	atomic_store_explicit(&i->orphaned, true, memory_order_release);
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
	return 0;
}

int vfsd_inode_table_pin(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	int r = 0;

	pthread_rwlock_wrlock(&t->lock);
	if (i->in_table)
		i->pins++;
	else
		r = -ESTALE;
	pthread_rwlock_unlock(&t->lock);
	return r;
}

void vfsd_inode_table_unpin(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	struct vfsd_inode *drop = NULL;

	pthread_rwlock_wrlock(&t->lock);
	if (i->in_table && i->pins > 0) {
		i->pins--;
		if (removable_locked(t, i))
			remove_locked(t, i, &drop);
	}
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
}

void vfsd_inode_table_set_stale_path(struct vfsd_inode_table *t, struct vfsd_inode *i,
				     const char *path)
{
	char *p = path ? strdup(path) : NULL;

	pthread_rwlock_wrlock(&t->lock);
	if (i->loc == VFSD_LOC_STALE) {
		free(i->stale_path);
		i->stale_path = p;
		p = NULL;
	}
	pthread_rwlock_unlock(&t->lock);
	free(p);
}

int vfsd_inode_table_where(struct vfsd_inode_table *t, const struct vfsd_inode *i,
			   struct vfsd_inode_where *ret)
{
	const char *name = NULL;
	int r = -ESTALE;

	ret->parent = NULL;
	ret->odir = NULL;
	ret->dirfd = -EBADF;
	ret->name[0] = '\0';
	pthread_rwlock_rdlock(&t->lock);
	if (i->loc == VFSD_LOC_NAME && i->loc_parent->fd >= 0) {
		ret->parent = vfsd_inode_ref(i->loc_parent);
		ret->dirfd = i->loc_parent->fd;
		name = i->loc_name;
	} else if (i->loc == VFSD_LOC_ORPHAN && i->orphan_dir && i->orphan_name) {
		ret->odir = vfsd_orphan_dir_ref(i->orphan_dir);
		ret->dirfd = i->orphan_dir->fd;
		name = i->orphan_name;
	}
	if (name && strlen(name) < sizeof(ret->name) && !strchr(name, '/')) {
		memcpy(ret->name, name, strlen(name) + 1);
		r = 0;
	}
	pthread_rwlock_unlock(&t->lock);
	if (r < 0)
		vfsd_inode_where_done(ret);
	return r;
}

void vfsd_inode_where_done(struct vfsd_inode_where *w)
{
	vfsd_inode_unref(w->parent);
	vfsd_orphan_dir_unref(w->odir);
	w->parent = NULL;
	w->odir = NULL;
	w->dirfd = -EBADF;
}

void vfsd_inode_table_get_location(struct vfsd_inode_table *t, const struct vfsd_inode *i,
				   struct vfsd_inode_loc_snap *ret)
{
	pthread_rwlock_rdlock(&t->lock);
	ret->loc = (enum vfsd_inode_loc)i->loc;
	ret->parent = 0;
	ret->name[0] = ret->stale_path[0] = ret->orphan_name[0] = '\0';
	ret->odir = i->orphan_dir;
	ret->parent_ptr = NULL;
	if (i->loc == VFSD_LOC_NAME) {
		ret->parent = i->loc_parent->nodeid;
		ret->parent_ptr = i->loc_parent;
		snprintf(ret->name, sizeof(ret->name), "%s", i->loc_name);
	} else if (i->loc == VFSD_LOC_STALE && i->stale_path) {
		snprintf(ret->stale_path, sizeof(ret->stale_path), "%s", i->stale_path);
	} else if (i->loc == VFSD_LOC_ORPHAN && i->orphan_name) {
		snprintf(ret->orphan_name, sizeof(ret->orphan_name), "%s", i->orphan_name);
	}
	pthread_rwlock_unlock(&t->lock);
}

/* An inode and its node id, so that sorting reads no inode. */
struct by_nodeid {
	uint64_t nodeid;
	struct vfsd_inode *i;
};

/*
 * LSD radix sort of @a by node id, 11 bits a pass, only as many passes as
 * the largest id needs (2 below 4 million ids). @tmp has room for @n.
 */
static void sort_by_nodeid(struct by_nodeid *a, struct by_nodeid *tmp, size_t n)
{
	enum { BITS = 11, RADIX = 1 << BITS };
	uint64_t max = 0;

	for (size_t k = 0; k < n; k++)
		max = a[k].nodeid > max ? a[k].nodeid : max;
	for (unsigned int shift = 0; shift < 64 && (max >> shift) != 0; shift += BITS) {
		size_t count[RADIX] = { 0 };
		size_t sum = 0;

		for (size_t k = 0; k < n; k++)
			count[(a[k].nodeid >> shift) & (RADIX - 1)]++;
		for (size_t d = 0; d < RADIX; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t k = 0; k < n; k++)
			tmp[count[(a[k].nodeid >> shift) & (RADIX - 1)]++] = a[k];
		memcpy(a, tmp, n * sizeof(*a));
	}
}

/*
 * Node-id order, i.e. about the order the guest looked things up in (the
 * files of one directory together), except that a parent with a higher id
 * (a rename into a newer directory) is moved up before its first child.
 * The destination re-finds inodes in blob order, so this order keeps its
 * directory listings and tables hot in cache instead of hopping across the
 * whole table per record (random order cost it about 1 us an inode at
 * 100,000 inodes).
 */
int vfsd_inode_table_snapshot(struct vfsd_inode_table *t, struct vfsd_inode ***ret, size_t *ret_n)
{
	_cleanup_free_ struct by_nodeid *all = NULL, *tmp = NULL;
	_cleanup_free_ struct vfsd_inode **stack = NULL;
	struct vfsd_inode **v;
	struct vfsd_hlink *pos, *tmp_link;
	uint64_t visiting, done;
	size_t n = 0, n_all = 0, cap;

	pthread_rwlock_wrlock(&t->lock);
	cap = t->by_id.count;
	v = calloc(cap ? cap : 1, sizeof(*v));
	stack = calloc(cap ? cap : 1, sizeof(*stack));
	all = calloc(cap ? cap : 1, sizeof(*all));
	tmp = calloc(cap ? cap : 1, sizeof(*tmp));
	if (!v || !stack || !all || !tmp) {
		pthread_rwlock_unlock(&t->lock);
		free(v);
		return -ENOMEM;
	}
	hmap_for_each_link(&t->by_id, pos, tmp_link)
	{
		struct vfsd_inode *i = container_of(pos, struct vfsd_inode, by_id);

		if (n_all < cap)
			all[n_all++] = (struct by_nodeid){ .nodeid = i->nodeid, .i = i };
	}
	sort_by_nodeid(all, tmp, n_all);

	t->mark_gen++;
	visiting = t->mark_gen * 2;
	done = visiting + 1;
	if (t->root) {
		t->root->mark = done;
		v[n++] = vfsd_inode_ref(t->root);
	}
	for (size_t k = 0; k < n_all; k++) {
		struct vfsd_inode *i = all[k].i;
		size_t sp = 0;

		/* Walk up to the first ancestor already emitted, then emit downwards. */
		while (i && i->in_table && i->mark != done && i->mark != visiting && sp < cap) {
			i->mark = visiting;
			stack[sp++] = i;
			i = i->loc == VFSD_LOC_NAME ? i->loc_parent : NULL;
		}
		while (sp > 0) {
			struct vfsd_inode *e = stack[--sp];
			e->mark = done;
			v[n++] = vfsd_inode_ref(e);
		}
	}
	pthread_rwlock_unlock(&t->lock);
	*ret = v;
	*ret_n = n;
	return 0;
}

void vfsd_inode_table_snapshot_free(struct vfsd_inode **v, size_t n)
{
	if (!v)
		return;
	for (size_t k = 0; k < n; k++)
		vfsd_inode_unref(v[k]);
	free(v);
}

int vfsd_inode_table_restore_at(struct vfsd_inode_table *t, uint64_t nodeid, int fd,
				const struct stat *st, uint64_t nlookup, struct vfsd_inode *parent,
				const char *name, struct vfsd_orphan_dir *odir)
{
	struct vfsd_inode *i = NULL, *drop = NULL;
	char *oname = NULL;
	int r = 0;

	if (nodeid <= FUSE_ROOT_ID || nodeid == UINT64_MAX)
		return -EINVAL;
	if (odir && (!name || !(oname = strdup(name))))
		return -ENOMEM;
	pthread_rwlock_wrlock(&t->lock);
	if (find_by_id(t, nodeid) || find_by_key(t, (uint64_t)st->st_dev, (uint64_t)st->st_ino))
		r = -EEXIST;
	else if (t->by_id.count >= t->max_inodes)
		r = -ENFILE;
	else if (!(i = inode_alloc(nodeid, fd, st, nlookup)))
		r = -ENOMEM;
	else {
		insert_locked(t, i);
		if (t->next_id <= nodeid)
			t->next_id = nodeid + 1;
		if (odir) {
			i->loc = VFSD_LOC_ORPHAN;
			i->orphan_dir = vfsd_orphan_dir_ref(odir);
			i->orphan_name = TAKE_PTR(oname);
			atomic_store_explicit(&i->orphaned, true, memory_order_release);
		} else if (!parent) {
			/* A path (or nothing): STALE, re-derived (or re-checked) by the next
			 * collect. */
			i->loc = VFSD_LOC_STALE;
			i->stale_path = name ? strdup(name) : NULL;
		} else if (name) {
			r = set_loc_locked(t, i, parent, name, &drop);
			if (r < 0) {
				/* Out again: the caller keeps its fd. */
				if (i->fd >= 0)
					atomic_fetch_sub_explicit(&fds_held, 1,
								  memory_order_relaxed);
				i->fd = -EBADF;
				detach_locked(t, i);
				i->unlink_next = drop;
				drop = i;
				clear_loc_locked(t, i, &drop);
			}
		}
	}
	pthread_rwlock_unlock(&t->lock);
	free(oname);
	unref_list(drop);
	return r;
}

int vfsd_inode_table_restore_invalid(struct vfsd_inode_table *t, uint64_t nodeid, uint32_t type,
				     uint64_t nlookup)
{
	struct stat st = { .st_mode = type & S_IFMT };
	struct vfsd_inode *i;
	int r = 0;

	if (nodeid <= FUSE_ROOT_ID || nodeid == UINT64_MAX)
		return -EINVAL;
	pthread_rwlock_wrlock(&t->lock);
	if (find_by_id(t, nodeid))
		r = -EEXIST;
	else if (t->by_id.count >= t->max_inodes)
		r = -ENFILE;
	else if (!(i = inode_alloc(nodeid, -EBADF, &st, nlookup)))
		r = -ENOMEM;
	else {
		i->invalid = true;
		insert_locked(t, i);
		if (t->next_id <= nodeid)
			t->next_id = nodeid + 1;
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}

void vfsd_inode_table_sweep(struct vfsd_inode_table *t)
{
	struct vfsd_inode **cand, *drop = NULL;
	struct vfsd_hlink *pos, *tmp;
	size_t n = 0;

	pthread_rwlock_wrlock(&t->lock);
	cand = calloc(t->by_id.count ? t->by_id.count : 1, sizeof(*cand));
	if (cand) {
		hmap_for_each_link(&t->by_id, pos, tmp)
		{
			struct vfsd_inode *i = container_of(pos, struct vfsd_inode, by_id);
			if (removable_locked(t, i))
				cand[n++] = i;
		}
		/* Candidates have no pins, so no cascade reaches another candidate. */
		for (size_t k = 0; k < n; k++)
			remove_locked(t, cand[k], &drop);
	}
	pthread_rwlock_unlock(&t->lock);
	free(cand);
	unref_list(drop);
}

void vfsd_inode_table_sweep_ids(struct vfsd_inode_table *t, const uint64_t *ids, size_t n)
{
	struct vfsd_inode *drop = NULL;

	pthread_rwlock_wrlock(&t->lock);
	for (size_t k = 0; k < n; k++) {
		struct vfsd_inode *i = find_by_id(t, ids[k]);

		/* One an earlier removal took along is gone already. */
		if (i && removable_locked(t, i))
			remove_locked(t, i, &drop);
	}
	pthread_rwlock_unlock(&t->lock);
	unref_list(drop);
}

uint64_t vfsd_inode_table_pins(struct vfsd_inode_table *t, const struct vfsd_inode *i)
{
	uint64_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = i->pins;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

int vfsd_inode_table_restore(struct vfsd_inode_table *t, uint64_t nodeid, int fd,
			     const struct stat *st, uint64_t nlookup)
{
	struct vfsd_inode *i;
	int r = 0;

	if (nodeid <= FUSE_ROOT_ID || nodeid == UINT64_MAX || nlookup == 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&t->lock);
	if (find_by_id(t, nodeid) || find_by_key(t, (uint64_t)st->st_dev, (uint64_t)st->st_ino))
		r = -EEXIST;
	else if (t->by_id.count >= t->max_inodes)
		r = -ENFILE;
	else if (!(i = inode_alloc(nodeid, fd, st, nlookup)))
		r = -ENOMEM;
	else {
		insert_locked(t, i);
		if (t->next_id <= nodeid)
			t->next_id = nodeid + 1;
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}

struct vfsd_inode *vfsd_inode_table_get(struct vfsd_inode_table *t, uint64_t nodeid)
{
	struct vfsd_inode *i;

	pthread_rwlock_rdlock(&t->lock);
	i = vfsd_inode_ref(find_by_id(t, nodeid));
	pthread_rwlock_unlock(&t->lock);
	return i;
}

void vfsd_inode_table_forget(struct vfsd_inode_table *t, uint64_t nodeid, uint64_t n)
{
	struct vfsd_inode *drop = NULL, *i;

	pthread_rwlock_wrlock(&t->lock);
	i = find_by_id(t, nodeid);
	if (i && i != t->root) {
		uint64_t cur = atomic_load_explicit(&i->nlookup, memory_order_relaxed);
		cur -= MIN(n, cur);
		atomic_store_explicit(&i->nlookup, cur, memory_order_relaxed);
		if (removable_locked(t, i))
			remove_locked(t, i, &drop);
	}
	pthread_rwlock_unlock(&t->lock);
	/* The table's references go outside the lock: they may close fds. */
	unref_list(drop);
}

/* Detach every inode (or every one but the root) and return them as a list. */
static struct vfsd_inode *detach_all_locked(struct vfsd_inode_table *t, bool keep_root)
{
	struct vfsd_inode *list = NULL;
	struct vfsd_hlink *pos, *tmp;

	hmap_for_each_link(&t->by_id, pos, tmp)
	{
		struct vfsd_inode *i = container_of(pos, struct vfsd_inode, by_id);
		if (keep_root && i == t->root)
			continue;
		detach_locked(t, i);
		/* Everything goes: no cascade, just forget the location. */
		i->loc_parent = NULL;
		free(i->loc_name);
		i->loc_name = NULL;
		if (i->loc == VFSD_LOC_NAME)
			i->loc = VFSD_LOC_NONE;
		i->pins = 0;
		i->unlink_next = list;
		list = i;
	}
	if (t->root)
		t->root->pins = 0;
	return list;
}

static void unref_list(struct vfsd_inode *list)
{
	while (list) {
		struct vfsd_inode *next = list->unlink_next;
		vfsd_inode_unref(list);
		list = next;
	}
}

void vfsd_inode_table_reset(struct vfsd_inode_table *t)
{
	struct vfsd_inode *list;

	pthread_rwlock_wrlock(&t->lock);
	list = detach_all_locked(t, true);
	if (t->root)
		t->root->nlookup = 1;
	pthread_rwlock_unlock(&t->lock);
	unref_list(list);
}

void vfsd_inode_table_free(struct vfsd_inode_table *t)
{
	struct vfsd_inode *list;

	if (!t)
		return;
	pthread_rwlock_wrlock(&t->lock);
	list = detach_all_locked(t, false);
	t->root = NULL;
	pthread_rwlock_unlock(&t->lock);
	unref_list(list);
	hmap_done(&t->by_id);
	hmap_done(&t->by_key);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

size_t vfsd_inode_table_count(struct vfsd_inode_table *t)
{
	size_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->by_id.count;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

uint64_t vfsd_inode_table_next_id(struct vfsd_inode_table *t)
{
	uint64_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->next_id;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

int vfsd_inode_table_set_next_id(struct vfsd_inode_table *t, uint64_t next)
{
	int r = 0;

	pthread_rwlock_wrlock(&t->lock);
	if (next < t->next_id)
		r = -EINVAL;
	else
		t->next_id = next;
	pthread_rwlock_unlock(&t->lock);
	return r;
}

int vfsd_inode_table_foreach(struct vfsd_inode_table *t,
			     int (*cb)(const struct vfsd_inode *i, void *userdata), void *userdata)
{
	struct vfsd_hlink *pos, *tmp;
	int r = 0;

	pthread_rwlock_rdlock(&t->lock);
	hmap_for_each_link(&t->by_id, pos, tmp)
	{
		r = cb(container_of(pos, struct vfsd_inode, by_id), userdata);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}
