/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/inode_table.h"

#include <linux/fuse.h>
#include <pthread.h>
#include <stdlib.h>

#include "hmap.h"
#include "vfsd/util.h"

struct vfsd_inode_table {
	pthread_rwlock_t lock;
	struct hmap by_id;  /* nodeid -> inode */
	struct hmap by_key; /* (dev, ino) -> inode */
	uint64_t next_id;   /* lock */
	size_t max_inodes;
	struct vfsd_inode *root;
};

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

void vfsd_inode_unref(struct vfsd_inode *i)
{
	if (!i)
		return;
	/* acq_rel: the thread that frees must see every other user's writes. */
	if (atomic_fetch_sub_explicit(&i->refcount, 1, memory_order_acq_rel) != 1)
		return;
	safe_close(i->fd);
	free(i);
}

static struct vfsd_inode *inode_alloc(uint64_t nodeid, int fd, const struct stat *st,
				      uint64_t nlookup)
{
	struct vfsd_inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->nodeid = nodeid;
	i->fd = fd;
	i->dev = (uint64_t)st->st_dev;
	i->ino = (uint64_t)st->st_ino;
	i->type = st->st_mode & S_IFMT;
	atomic_init(&i->nlookup, nlookup);
	i->in_table = true;
	atomic_init(&i->refcount, 1); /* the table's */
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
	hmap_insert(&t->by_key, &i->by_key, key_hash(i->dev, i->ino));
}

static void remove_locked(struct vfsd_inode_table *t, struct vfsd_inode *i)
{
	hmap_remove(&t->by_id, &i->by_id);
	hmap_remove(&t->by_key, &i->by_key);
	i->in_table = false;
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
	insert_locked(t, i);
	t->root = i;
	pthread_rwlock_unlock(&t->lock);
	return 0;
}

int vfsd_inode_table_lookup_or_insert(struct vfsd_inode_table *t, int fd, const struct stat *st,
				      struct vfsd_inode **ret)
{
	_cleanup_close_ int owned = fd;
	uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino;
	struct vfsd_inode *i;

	/*
	 * Fast path under the read side: nlookup is only ever lowered under the
	 * write side, so an atomic increment here cannot race with FORGET.
	 */
	pthread_rwlock_rdlock(&t->lock);
	i = find_by_key(t, dev, ino);
	if (i) {
		atomic_fetch_add_explicit(&i->nlookup, 1, memory_order_relaxed);
		vfsd_inode_ref(i);
		pthread_rwlock_unlock(&t->lock);
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
	pthread_rwlock_unlock(&t->lock);
	*ret = i;
	return 0;
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
		if (cur == 0) {
			remove_locked(t, i);
			drop = i;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	/* The table's reference goes outside the lock: it may close the fd. */
	vfsd_inode_unref(drop);
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
		remove_locked(t, i);
		i->unlink_next = list;
		list = i;
	}
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
