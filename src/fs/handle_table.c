/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/handle_table.h"

#include <pthread.h>
#include <stdlib.h>

#include "hmap.h"
#include "vfsd/util.h"

struct vfsd_handle_table {
	pthread_rwlock_t lock;
	struct hmap map;  /* fh -> handle */
	uint64_t next_fh; /* lock */
	size_t max_handles;
};

int vfsd_handle_table_new(size_t max_handles, struct vfsd_handle_table **ret)
{
	struct vfsd_handle_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (hmap_init(&t->map) < 0) {
		free(t);
		return -ENOMEM;
	}
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		hmap_done(&t->map);
		free(t);
		return -ENOMEM;
	}
	t->next_fh = 1;
	t->max_handles = max_handles ? max_handles : VFSD_MAX_HANDLES;
	*ret = t;
	return 0;
}

void vfsd_handle_unref(struct vfsd_handle *h)
{
	if (!h)
		return;
	if (atomic_fetch_sub_explicit(&h->refcount, 1, memory_order_acq_rel) != 1)
		return;
	safe_close(h->fd);
	vfsd_inode_unref(h->inode);
	pthread_mutex_destroy(&h->dir_lock);
	free(h);
}

static struct vfsd_handle *find_locked(struct vfsd_handle_table *t, uint64_t fh)
{
	uint64_t hash = hmap_mix(fh);

	for (struct vfsd_hlink *l = hmap_bucket(&t->map, hash); l; l = l->next) {
		struct vfsd_handle *h = container_of(l, struct vfsd_handle, link);
		if (l->hash == hash && h->fh == fh)
			return h;
	}
	return NULL;
}

static struct vfsd_handle *handle_alloc(struct vfsd_inode *inode, int fd, uint32_t flags,
					bool is_dir)
{
	struct vfsd_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->dir_lock, NULL) != 0) {
		free(h);
		return NULL;
	}
	h->inode = vfsd_inode_ref(inode);
	h->fd = fd;
	h->flags = flags;
	h->is_dir = is_dir;
	h->dir_pos = 0; /* a fresh directory fd is at the start */
	h->dir_pos_valid = true;
	atomic_init(&h->refcount, 1); /* the table's */
	return h;
}

/* Frees a handle that never made it into the table, without closing @fd. */
static void handle_discard(struct vfsd_handle *h)
{
	h->fd = -EBADF;
	vfsd_handle_unref(h);
}

static int add_common(struct vfsd_handle_table *t, uint64_t fh, struct vfsd_inode *inode, int fd,
		      uint32_t flags, bool is_dir, uint64_t *ret_fh)
{
	struct vfsd_handle *h = handle_alloc(inode, fd, flags, is_dir);
	int r = 0;

	if (!h)
		return -ENOMEM;
	pthread_rwlock_wrlock(&t->lock);
	if (t->map.count >= t->max_handles) {
		r = -ENFILE;
	} else if (fh == 0) {
		h->fh = t->next_fh++;
	} else if (find_locked(t, fh)) {
		r = -EEXIST;
	} else {
		h->fh = fh;
		if (t->next_fh <= fh)
			t->next_fh = fh + 1;
	}
	if (r == 0)
		hmap_insert(&t->map, &h->link, hmap_mix(h->fh));
	pthread_rwlock_unlock(&t->lock);

	if (r < 0) {
		handle_discard(h);
		return r;
	}
	if (ret_fh)
		*ret_fh = h->fh;
	return 0;
}

int vfsd_handle_table_add(struct vfsd_handle_table *t, struct vfsd_inode *inode, int fd,
			  uint32_t flags, bool is_dir, uint64_t *ret_fh)
{
	return add_common(t, 0, inode, fd, flags, is_dir, ret_fh);
}

int vfsd_handle_table_restore(struct vfsd_handle_table *t, uint64_t fh, struct vfsd_inode *inode,
			      int fd, uint32_t flags, bool is_dir)
{
	if (fh == 0 || fh == UINT64_MAX)
		return -EINVAL;
	return add_common(t, fh, inode, fd, flags, is_dir, NULL);
}

struct vfsd_handle *vfsd_handle_table_get(struct vfsd_handle_table *t, uint64_t fh)
{
	struct vfsd_handle *h;

	pthread_rwlock_rdlock(&t->lock);
	h = find_locked(t, fh);
	if (h)
		atomic_fetch_add_explicit(&h->refcount, 1, memory_order_relaxed);
	pthread_rwlock_unlock(&t->lock);
	return h;
}

int vfsd_handle_table_remove(struct vfsd_handle_table *t, uint64_t fh)
{
	struct vfsd_handle *h;

	pthread_rwlock_wrlock(&t->lock);
	h = find_locked(t, fh);
	if (h)
		hmap_remove(&t->map, &h->link);
	pthread_rwlock_unlock(&t->lock);
	if (!h)
		return -EBADF;
	vfsd_handle_unref(h);
	return 0;
}

void vfsd_handle_table_reset(struct vfsd_handle_table *t)
{
	struct vfsd_hlink *pos, *tmp, *list = NULL;

	pthread_rwlock_wrlock(&t->lock);
	hmap_for_each_link(&t->map, pos, tmp)
	{
		hmap_remove(&t->map, pos);
		pos->next = list; /* reuse the detached link as a list */
		list = pos;
	}
	pthread_rwlock_unlock(&t->lock);
	while (list) {
		struct vfsd_hlink *next = list->next;
		vfsd_handle_unref(container_of(list, struct vfsd_handle, link));
		list = next;
	}
}

void vfsd_handle_table_free(struct vfsd_handle_table *t)
{
	if (!t)
		return;
	vfsd_handle_table_reset(t);
	hmap_done(&t->map);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

size_t vfsd_handle_table_count(struct vfsd_handle_table *t)
{
	size_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->map.count;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

uint64_t vfsd_handle_table_next_fh(struct vfsd_handle_table *t)
{
	uint64_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->next_fh;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

int vfsd_handle_table_set_next_fh(struct vfsd_handle_table *t, uint64_t next)
{
	int r = 0;

	pthread_rwlock_wrlock(&t->lock);
	if (next < t->next_fh)
		r = -EINVAL;
	else
		t->next_fh = next;
	pthread_rwlock_unlock(&t->lock);
	return r;
}

int vfsd_handle_table_foreach(struct vfsd_handle_table *t,
			      int (*cb)(const struct vfsd_handle *h, void *userdata),
			      void *userdata)
{
	struct vfsd_hlink *pos, *tmp;
	int r = 0;

	pthread_rwlock_rdlock(&t->lock);
	hmap_for_each_link(&t->map, pos, tmp)
	{
		r = cb(container_of(pos, struct vfsd_handle, link), userdata);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}
