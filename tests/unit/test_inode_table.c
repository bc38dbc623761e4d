/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfsd/handle_table.h"
#include "vfsd/inode_table.h"
#include "vfsd/util.h"

TestSuite(inode_table, .timeout = 20.0);
TestSuite(handle_table, .timeout = 20.0);

static struct stat fake_stat(uint64_t dev, uint64_t ino, mode_t type)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_dev = (dev_t)dev;
	st.st_ino = (ino_t)ino;
	st.st_mode = type | 0644;
	return st;
}

static int new_fd(void)
{
	int fd = open("/", O_PATH | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static struct vfsd_inode_table *table_with_root(size_t max)
{
	struct vfsd_inode_table *t = NULL;
	struct stat st = fake_stat(1, 1, S_IFDIR);

	cr_assert_eq(vfsd_inode_table_new(max, &t), 0);
	cr_assert_eq(vfsd_inode_table_set_root(t, new_fd(), &st), 0);
	return t;
}

Test(inode_table, root_and_ids)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct stat st = fake_stat(1, 1, S_IFDIR);
	struct vfsd_inode *root, *a, *b;
	int fd = new_fd();

	cr_assert_eq(vfsd_inode_table_set_root(t, fd, &st), -EEXIST);
	close(fd);
	root = vfsd_inode_table_get(t, FUSE_ROOT_ID);
	cr_assert_not_null(root);
	cr_assert_eq(root->nodeid, FUSE_ROOT_ID);
	cr_assert_eq(root->type, S_IFDIR);
	vfsd_inode_unref(root);
	cr_assert_eq(vfsd_inode_table_next_id(t), 2);
	cr_assert_eq(vfsd_inode_table_count(t), 1);

	st = fake_stat(1, 100, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	st = fake_stat(1, 101, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &b), 0);
	cr_assert_eq(a->nodeid, 2);
	cr_assert_eq(b->nodeid, 3);
	cr_assert_eq(a->nlookup, 1);
	cr_assert_eq(a->type, S_IFREG);
	cr_assert_eq(vfsd_inode_table_count(t), 3);
	cr_assert_null(vfsd_inode_table_get(t, 4));
	cr_assert_null(vfsd_inode_table_get(t, 0));
	vfsd_inode_unref(a);
	vfsd_inode_unref(b);
	vfsd_inode_table_free(t);
}

Test(inode_table, same_host_inode_same_id)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct stat st = fake_stat(7, 42, S_IFREG);
	struct vfsd_inode *a, *b, *c;
	int fd2 = new_fd();

	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, fd2, &st, &b), 0);
	cr_assert_eq(a, b);
	cr_assert_eq(a->nlookup, 2);
	cr_assert_not(fd_is_open(fd2), "the duplicate fd must be closed");
	/* Same ino on another device is another inode. */
	st = fake_stat(8, 42, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &c), 0);
	cr_assert_neq(c->nodeid, a->nodeid);
	vfsd_inode_unref(a);
	vfsd_inode_unref(b);
	vfsd_inode_unref(c);
	vfsd_inode_table_free(t);
}

Test(inode_table, forget_and_no_reuse)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct stat st = fake_stat(1, 5, S_IFREG);
	struct vfsd_inode *a, *b;
	uint64_t id;
	int fd;

	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &b), 0);
	vfsd_inode_unref(b);
	id = a->nodeid;
	fd = a->fd;

	vfsd_inode_table_forget(t, id, 1);
	cr_assert_eq(a->nlookup, 1);
	b = vfsd_inode_table_get(t, id);
	cr_assert_eq(b, a);
	vfsd_inode_unref(b);

	vfsd_inode_table_forget(t, id, 1);
	cr_assert_null(vfsd_inode_table_get(t, id), "gone from the table at nlookup 0");
	cr_assert_eq(vfsd_inode_table_count(t), 1);
	/* ...but our reference keeps the fd open. */
	cr_assert(fd_is_open(fd));
	cr_assert_not(a->in_table);
	vfsd_inode_unref(a);
	cr_assert_not(fd_is_open(fd), "closed with the last reference");

	/* The same host inode comes back under a NEW id. */
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	cr_assert_gt(a->nodeid, id);
	/* Forgetting more than was looked up clamps; unknown ids and the root are ignored. */
	vfsd_inode_table_forget(t, 999, 1);
	vfsd_inode_table_forget(t, FUSE_ROOT_ID, 100);
	cr_assert_eq(vfsd_inode_table_count(t), 2);
	id = a->nodeid;
	vfsd_inode_unref(a);
	vfsd_inode_table_forget(t, id, 1000);
	cr_assert_eq(vfsd_inode_table_count(t), 1);
	vfsd_inode_table_free(t);
}

Test(inode_table, limit_enfile)
{
	struct vfsd_inode_table *t = table_with_root(3);
	struct vfsd_inode *a;
	int fd;

	for (uint64_t ino = 10; ino < 12; ino++) {
		struct stat st = fake_stat(1, ino, S_IFREG);
		cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
		vfsd_inode_unref(a);
	}
	struct stat st = fake_stat(1, 12, S_IFREG);
	fd = new_fd();
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, fd, &st, &a), -ENFILE);
	cr_assert_not(fd_is_open(fd), "fd taken even on error");
	/* An existing inode is still found when the table is full. */
	st = fake_stat(1, 10, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	vfsd_inode_unref(a);
	vfsd_inode_table_free(t);
}

Test(inode_table, many_inodes_grow)
{
	struct vfsd_inode_table *t = table_with_root(0);
	enum { N = 3000 };
	struct vfsd_inode *a;

	for (uint64_t k = 0; k < N; k++) {
		struct stat st = fake_stat(1, 1000 + k, S_IFREG);
		cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
		cr_assert_eq(a->nodeid, 2 + k);
		vfsd_inode_unref(a);
	}
	cr_assert_eq(vfsd_inode_table_count(t), N + 1);
	for (uint64_t k = 0; k < N; k++) {
		a = vfsd_inode_table_get(t, 2 + k);
		cr_assert_not_null(a);
		cr_assert_eq(a->ino, 1000 + k);
		vfsd_inode_unref(a);
	}
	for (uint64_t k = 0; k < N; k += 2)
		vfsd_inode_table_forget(t, 2 + k, 1);
	cr_assert_eq(vfsd_inode_table_count(t), N / 2 + 1);
	vfsd_inode_table_free(t);
}

struct collect {
	uint64_t ids_sum;
	uint64_t nlookup_sum;
	size_t n;
	int stop_after;
};

static int collect_cb(const struct vfsd_inode *i, void *ud)
{
	struct collect *c = ud;

	c->ids_sum += i->nodeid;
	c->nlookup_sum += i->nlookup;
	c->n++;
	if (c->stop_after && (int)c->n == c->stop_after)
		return -ECANCELED;
	return 0;
}

Test(inode_table, foreach_reset_restore)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct collect c = { 0 };
	struct vfsd_inode *a;
	struct stat st;
	int fd;

	for (uint64_t ino = 10; ino < 13; ino++) {
		st = fake_stat(1, ino, S_IFREG);
		cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
		vfsd_inode_unref(a);
	}
	cr_assert_eq(vfsd_inode_table_foreach(t, collect_cb, &c), 0);
	cr_assert_eq(c.n, 4);
	cr_assert_eq(c.ids_sum, 1 + 2 + 3 + 4);
	cr_assert_eq(c.nlookup_sum, 4);
	c = (struct collect){ .stop_after = 2 };
	cr_assert_eq(vfsd_inode_table_foreach(t, collect_cb, &c), -ECANCELED);
	cr_assert_eq(c.n, 2);

	/* Keep one inode referenced across the reset: it survives, out of the table. */
	a = vfsd_inode_table_get(t, 2);
	fd = a->fd;
	vfsd_inode_table_reset(t);
	cr_assert_eq(vfsd_inode_table_count(t), 1);
	cr_assert_null(vfsd_inode_table_get(t, 2));
	cr_assert(fd_is_open(fd));
	vfsd_inode_unref(a);
	cr_assert_not(fd_is_open(fd));
	cr_assert_eq(vfsd_inode_table_next_id(t), 5, "ids keep going after reset");

	/* Migration restore: explicit ids, duplicates refused, counter bumped. */
	st = fake_stat(1, 50, S_IFREG);
	cr_assert_eq(vfsd_inode_table_restore(t, 100, new_fd(), &st, 3), 0);
	fd = new_fd();
	cr_assert_eq(vfsd_inode_table_restore(t, 100, fd, &st, 1), -EEXIST);
	st = fake_stat(1, 51, S_IFREG);
	cr_assert_eq(vfsd_inode_table_restore(t, FUSE_ROOT_ID, fd, &st, 1), -EINVAL);
	cr_assert_eq(vfsd_inode_table_restore(t, 7, fd, &st, 0), -EINVAL);
	st = fake_stat(1, 50, S_IFREG);
	cr_assert_eq(vfsd_inode_table_restore(t, 101, fd, &st, 1), -EEXIST, "same host inode");
	close(fd);
	cr_assert_eq(vfsd_inode_table_next_id(t), 101);
	a = vfsd_inode_table_get(t, 100);
	cr_assert_not_null(a);
	cr_assert_eq(a->nlookup, 3);
	vfsd_inode_unref(a);
	cr_assert_eq(vfsd_inode_table_set_next_id(t, 50), -EINVAL);
	cr_assert_eq(vfsd_inode_table_set_next_id(t, 500), 0);
	st = fake_stat(1, 60, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(t, new_fd(), &st, &a), 0);
	cr_assert_eq(a->nodeid, 500);
	vfsd_inode_unref(a);
	vfsd_inode_table_free(t);
}

Test(inode_table, free_null)
{
	vfsd_inode_table_free(NULL);
	vfsd_inode_unref(NULL);
	vfsd_handle_table_free(NULL);
	vfsd_handle_unref(NULL);
}

static int count_cb(const struct vfsd_handle *h, void *ud)
{
	(*(size_t *)ud)++;
	return 0;
}

Test(handle_table, add_get_remove)
{
	struct vfsd_inode_table *it = table_with_root(0);
	struct vfsd_handle_table *t = NULL;
	struct stat st = fake_stat(1, 9, S_IFREG);
	struct vfsd_inode *i;
	struct vfsd_handle *h;
	uint64_t fh1, fh2, fh3;
	int fd1 = new_fd(), fd2 = new_fd(), ifd;
	size_t n = 0;

	cr_assert_eq(vfsd_handle_table_new(0, &t), 0);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert(it, new_fd(), &st, &i), 0);
	ifd = i->fd;
	cr_assert_eq(vfsd_handle_table_add(t, i, fd1, O_RDWR, false, &fh1), 0);
	cr_assert_eq(vfsd_handle_table_add(t, i, fd2, O_RDONLY, false, &fh2), 0);
	cr_assert_eq(fh1, 1);
	cr_assert_eq(fh2, 2);
	cr_assert_eq(vfsd_handle_table_count(t), 2);
	cr_assert_eq(vfsd_handle_table_foreach(t, count_cb, &n), 0);
	cr_assert_eq(n, 2);

	h = vfsd_handle_table_get(t, fh1);
	cr_assert_not_null(h);
	cr_assert_eq(h->inode, i);
	cr_assert_eq(h->fd, fd1);
	cr_assert_eq(h->flags, (uint32_t)O_RDWR);

	/* RELEASE while an op holds the handle: fd closed only at the op's unref. */
	cr_assert_eq(vfsd_handle_table_remove(t, fh1), 0);
	cr_assert_eq(vfsd_handle_table_remove(t, fh1), -EBADF);
	cr_assert_null(vfsd_handle_table_get(t, fh1));
	cr_assert(fd_is_open(fd1));
	vfsd_handle_unref(h);
	cr_assert_not(fd_is_open(fd1));

	/* The handle keeps the inode alive after the guest forgets it. */
	vfsd_inode_unref(i);
	vfsd_inode_table_forget(it, 2, 1);
	cr_assert(fd_is_open(ifd));
	int fd3 = new_fd();
	h = vfsd_handle_table_get(t, fh2);
	cr_assert_eq(vfsd_handle_table_add(t, h->inode, fd3, O_RDONLY, false, &fh3), 0);
	vfsd_handle_unref(h);
	cr_assert_eq(fh3, 3, "fh never reused");
	vfsd_handle_table_reset(t);
	cr_assert_eq(vfsd_handle_table_count(t), 0);
	cr_assert_not(fd_is_open(fd2));
	cr_assert_not(fd_is_open(fd3));
	cr_assert_not(fd_is_open(ifd), "inode closed with its last handle");
	cr_assert_eq(vfsd_handle_table_next_fh(t), 4);

	vfsd_handle_table_free(t);
	vfsd_inode_table_free(it);
}

Test(handle_table, limit_and_restore)
{
	struct vfsd_inode_table *it = table_with_root(0);
	struct vfsd_handle_table *t = NULL;
	struct vfsd_inode *root = vfsd_inode_table_get(it, FUSE_ROOT_ID);
	uint64_t fh;
	int fd = new_fd();

	cr_assert_eq(vfsd_handle_table_new(2, &t), 0);
	cr_assert_eq(vfsd_handle_table_add(t, root, new_fd(), 0, true, &fh), 0);
	cr_assert_eq(vfsd_handle_table_restore(t, 10, root, new_fd(), 0, true), 0);
	cr_assert_eq(vfsd_handle_table_add(t, root, fd, 0, true, &fh), -ENFILE);
	cr_assert(fd_is_open(fd), "fd not taken on error");
	cr_assert_eq(vfsd_handle_table_remove(t, 1), 0);
	cr_assert_eq(vfsd_handle_table_restore(t, 10, root, fd, 0, true), -EEXIST);
	cr_assert_eq(vfsd_handle_table_restore(t, 0, root, fd, 0, true), -EINVAL);
	cr_assert_eq(vfsd_handle_table_add(t, root, fd, 0, true, &fh), 0);
	cr_assert_eq(fh, 11, "counter bumped past restored fh");
	cr_assert_eq(vfsd_handle_table_set_next_fh(t, 5), -EINVAL);
	cr_assert_eq(vfsd_handle_table_set_next_fh(t, 50), 0);
	cr_assert_eq(vfsd_handle_table_next_fh(t), 50);
	vfsd_inode_unref(root);
	vfsd_handle_table_free(t);
	vfsd_inode_table_free(it);
}

/* Locations: parents pinned by children, cascades, snapshot order, sweep, placeholders. */
Test(inode_table, locations_pins_and_snapshot_order)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct vfsd_inode *root = vfsd_inode_table_get(t, FUSE_ROOT_ID);
	struct vfsd_inode *d1, *d2, *f, **v = NULL;
	struct vfsd_inode_loc_snap *snap = malloc(sizeof(*snap));
	struct stat st;
	size_t n = 0;

	cr_assert_not_null(snap);
	st = fake_stat(1, 10, S_IFDIR);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert_at(t, root, "d1", new_fd(), &st, &d1), 0);
	st = fake_stat(1, 11, S_IFDIR);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert_at(t, d1, "d2", new_fd(), &st, &d2), 0);
	st = fake_stat(1, 12, S_IFREG);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert_at(t, d2, "f", new_fd(), &st, &f), 0);
	cr_assert_eq(vfsd_inode_table_pins(t, d1), 1);
	cr_assert_eq(vfsd_inode_table_pins(t, d2), 1);
	vfsd_inode_table_get_location(t, f, snap);
	cr_assert_eq(snap->loc, VFSD_LOC_NAME);
	cr_assert_eq(snap->parent, d2->nodeid);
	cr_assert_str_eq(snap->name, "f");

	/* Forgotten parents stay while f names them. */
	vfsd_inode_table_forget(t, d1->nodeid, 1);
	vfsd_inode_table_forget(t, d2->nodeid, 1);
	cr_assert_eq(vfsd_inode_table_count(t), 4);

	/* Snapshot: root first, parents before children, whatever the hash order. */
	cr_assert_eq(vfsd_inode_table_snapshot(t, &v, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(v[0], root);
	size_t p1 = 0, p2 = 0, pf = 0;
	for (size_t k = 0; k < n; k++) {
		if (v[k] == d1)
			p1 = k;
		if (v[k] == d2)
			p2 = k;
		if (v[k] == f)
			pf = k;
	}
	cr_assert(p1 < p2 && p2 < pf);
	vfsd_inode_table_snapshot_free(v, n);

	/* Moving f to the root releases d2, which releases d1: the chain goes. */
	cr_assert_eq(vfsd_inode_table_set_location(t, f, root, "f2"), 0);
	cr_assert_eq(vfsd_inode_table_count(t), 2);
	cr_assert_not(d1->in_table);
	cr_assert_not(d2->in_table);

	/* Removing the recorded name: STALE with other links, NONE without. */
	vfsd_inode_table_name_removed(t, f, root, "other", true);
	vfsd_inode_table_get_location(t, f, snap);
	cr_assert_eq(snap->loc, VFSD_LOC_NAME, "another name: nothing changes");
	vfsd_inode_table_name_removed(t, f, root, "f2", true);
	vfsd_inode_table_get_location(t, f, snap);
	cr_assert_eq(snap->loc, VFSD_LOC_STALE);

	/* A handle pin keeps an inode with no lookups; unpin lets it go. */
	cr_assert_eq(vfsd_inode_table_pin(t, f), 0);
	vfsd_inode_table_forget(t, f->nodeid, 1);
	cr_assert(f->in_table);
	vfsd_inode_table_unpin(t, f);
	cr_assert_not(f->in_table);
	cr_assert_eq(vfsd_inode_table_pin(t, f), -ESTALE);

	/* Placeholders (lenient restore): by id only; sweep drops the unreferenced. */
	cr_assert_eq(vfsd_inode_table_restore_invalid(t, 40, S_IFREG, 1), 0);
	cr_assert_eq(vfsd_inode_table_restore_invalid(t, 40, S_IFREG, 1), -EEXIST);
	cr_assert_eq(vfsd_inode_table_restore_invalid(t, 41, S_IFREG, 0), 0);
	struct vfsd_inode *x = vfsd_inode_table_get(t, 40);
	cr_assert_not_null(x);
	cr_assert(x->invalid);
	vfsd_inode_unref(x);
	vfsd_inode_table_sweep(t);
	cr_assert_not_null(x = vfsd_inode_table_get(t, 40));
	vfsd_inode_unref(x);
	cr_assert_null(vfsd_inode_table_get(t, 41), "no lookups, no pins: swept");

	vfsd_inode_unref(d1);
	vfsd_inode_unref(d2);
	vfsd_inode_unref(f);
	vfsd_inode_unref(root);
	free(snap);
	vfsd_inode_table_free(t);
}

/*
 * Snapshot order is node-id order (the destination re-finds inodes in it, so
 * the files of one directory stay together) except that a parent with a
 * higher id than its child, as after a rename into a newer directory, is
 * moved up to just before the child.
 */
Test(inode_table, snapshot_nodeid_order)
{
	struct vfsd_inode_table *t = table_with_root(0);
	struct vfsd_inode *root = vfsd_inode_table_get(t, FUSE_ROOT_ID);
	struct vfsd_inode *files[300], *late, **v = NULL;
	struct stat st;
	size_t n = 0, p_late = 0, p_moved = 0;

	for (size_t k = 0; k < 300; k++) {
		char name[16];

		snprintf(name, sizeof(name), "f%zu", k);
		st = fake_stat(1, 100 + k, S_IFREG);
		cr_assert_eq(
		    vfsd_inode_table_lookup_or_insert_at(t, root, name, new_fd(), &st, &files[k]),
		    0);
	}
	st = fake_stat(1, 99, S_IFDIR);
	cr_assert_eq(vfsd_inode_table_lookup_or_insert_at(t, root, "late", new_fd(), &st, &late),
		     0);
	cr_assert_gt(late->nodeid, files[7]->nodeid);
	cr_assert_eq(vfsd_inode_table_set_location(t, files[7], late, "moved"), 0);

	cr_assert_eq(vfsd_inode_table_snapshot(t, &v, &n), 0);
	cr_assert_eq(n, 302);
	cr_assert_eq(v[0], root);
	for (size_t k = 0; k < n; k++) {
		if (v[k] == late)
			p_late = k;
		if (v[k] == files[7])
			p_moved = k;
	}
	cr_assert_eq(p_late + 1, p_moved, "the newer parent comes just before its child");
	for (size_t k = 2; k < n; k++) {
		if (v[k] == late || v[k] == files[7] || v[k - 1] == late || v[k - 1] == files[7])
			continue;
		cr_assert_lt(v[k - 1]->nodeid, v[k]->nodeid, "position %zu", k);
	}
	vfsd_inode_table_snapshot_free(v, n);
	for (size_t k = 0; k < 300; k++)
		vfsd_inode_unref(files[k]);
	vfsd_inode_unref(late);
	vfsd_inode_unref(root);
	vfsd_inode_table_free(t);
}
