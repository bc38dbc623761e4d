/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_migration: locations, orphans, collect and restore between two
 * passthrough objects (source and destination) on the same shared directory.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfsd/chain_io.h"
#include "vfsd/fs_migration.h"
#include "vfsd/inode_table.h"
#include "vfsd/passthrough.h"
#include "vfsd/util.h"

static char dir[64];
static int dirfd_ = -1;
static struct vfsd_passthrough *src, *dst;
static struct vfsd_fs_ctx ctx;
static const struct vfsd_fs_ops *ops = &vfsd_passthrough_ops;

static struct vfsd_passthrough *new_fs(void)
{
	struct vfsd_passthrough_config cfg = { .shared_dir = dir,
					       .entry_timeout = 1.0,
					       .attr_timeout = 1.0 };
	struct vfsd_passthrough *p = NULL;

	cr_assert_eq(vfsd_passthrough_new(&cfg, &p), 0);
	return p;
}

static void setup(void)
{
#ifdef VFSD_TEST_FD_BUDGET
	/* The same tests with every file held by its name (no fd): see inode_table.h. */
	vfsd_inode_fd_budget_set(VFSD_TEST_FD_BUDGET);
#endif
	strcpy(dir, "/tmp/vfsd-fsm-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dirfd_, 0);
	src = new_fs();
	ctx = (struct vfsd_fs_ctx){ .uid = 0, .gid = 0, .io = NULL };
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

static void teardown(void)
{
	vfsd_passthrough_free(src);
	vfsd_passthrough_free(dst);
	src = dst = NULL;
	if (dirfd_ >= 0)
		close(dirfd_);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(fsm, .init = setup, .fini = teardown, .timeout = 30.0);

/* ---- helpers ---- */

static uint64_t lookup_on(struct vfsd_passthrough *fs, uint64_t parent, const char *name)
{
	struct fuse_entry_out e;
	int r = ops->lookup(fs, &ctx, parent, name, &e);

	cr_assert_eq(r, 0, "lookup %s -> %d", name, r);
	return e.nodeid;
}

static uint64_t mkdir_on(struct vfsd_passthrough *fs, uint64_t parent, const char *name)
{
	struct fuse_mkdir_in in = { .mode = 0755 };
	struct fuse_entry_out e;

	cr_assert_eq(ops->mkdir(fs, &ctx, parent, name, &in, &e), 0, "mkdir %s", name);
	return e.nodeid;
}

static uint64_t create_on(struct vfsd_passthrough *fs, uint64_t parent, const char *name,
			  uint32_t flags, uint64_t *fh)
{
	struct fuse_create_in in = { .flags = flags, .mode = S_IFREG | 0644 };
	struct fuse_entry_out e;
	struct fuse_open_out o;

	cr_assert_eq(ops->create(fs, &ctx, parent, name, &in, &e, &o), 0, "create %s", name);
	if (fh)
		*fh = o.fh;
	else {
		struct fuse_release_in ri = { .fh = o.fh };
		cr_assert_eq(ops->release(fs, &ctx, e.nodeid, &ri), 0);
	}
	return e.nodeid;
}

static int write_on(struct vfsd_passthrough *fs, uint64_t nodeid, uint64_t fh, uint64_t off,
		    const char *data)
{
	size_t len = strlen(data);
	struct iovec v = { (void *)data, len };
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)len };
	struct vfsd_reader r;

	cr_assert_eq(vfsd_reader_init(&r, &v, 1), 0);
	return ops->write(fs, &ctx, nodeid, &in, &r);
}

static int read_on(struct vfsd_passthrough *fs, uint64_t nodeid, uint64_t fh, uint64_t off,
		   uint32_t size, char *out, size_t room)
{
	struct iovec v = { out, room - 1 };
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
	struct vfsd_writer w;
	int n;

	cr_assert_eq(vfsd_writer_init(&w, &v, 1), 0);
	n = ops->read(fs, &ctx, nodeid, &in, &w);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static void release_on(struct vfsd_passthrough *fs, uint64_t nodeid, uint64_t fh)
{
	struct fuse_release_in ri = { .fh = fh };
	cr_assert_eq(ops->release(fs, &ctx, nodeid, &ri), 0);
}

static void host_write(const char *name, const char *data)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "create %s", name);
	cr_assert_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static bool host_exists(const char *name)
{
	struct stat st;
	return fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static size_t dir_entries(const char *name)
{
	char p[256];
	size_t n = 0;
	struct dirent *e;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	d = opendir(p);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* A deep copy of the collected records. */
struct irec {
	struct vfsd_fs_inode_rec r;
	char name[256], path[4096], orphan[128];
};

struct recs {
	struct irec in[64];
	size_t n_in;
	struct vfsd_fs_handle_rec h[32];
	size_t n_h;
	uint64_t next_id, next_fh;
};

static int inode_cb(void *ud, const struct vfsd_fs_inode_rec *rec)
{
	struct recs *c = ud;
	struct irec *o;

	cr_assert_lt(c->n_in, 64);
	o = &c->in[c->n_in++];
	o->r = *rec;
	o->r.name = o->r.path = o->r.orphan = NULL;
	if (rec->name) {
		snprintf(o->name, sizeof(o->name), "%s", rec->name);
		o->r.name = o->name;
	}
	if (rec->path) {
		snprintf(o->path, sizeof(o->path), "%s", rec->path);
		o->r.path = o->path;
	}
	if (rec->orphan) {
		snprintf(o->orphan, sizeof(o->orphan), "%s", rec->orphan);
		o->r.orphan = o->orphan;
	}
	return 0;
}

static int handle_cb(void *ud, const struct vfsd_fs_handle_rec *rec)
{
	struct recs *c = ud;

	cr_assert_lt(c->n_h, 32);
	c->h[c->n_h++] = *rec;
	return 0;
}

static void collect(struct vfsd_passthrough *fs, unsigned int flags, struct recs *c)
{
	memset(c, 0, sizeof(*c));
	cr_assert_eq(vfsd_fs_collect_inodes(fs, flags, inode_cb, c), 0);
	cr_assert_eq(vfsd_fs_collect_handles(fs, handle_cb, c), 0);
	vfsd_fs_counters(fs, &c->next_id, &c->next_fh);
}

static const struct vfsd_fs_inode_rec *find(const struct recs *c, uint64_t id)
{
	for (size_t k = 0; k < c->n_in; k++)
		if (c->in[k].r.nodeid == id)
			return &c->in[k].r;
	return NULL;
}

static size_t pos_of(const struct recs *c, uint64_t id)
{
	for (size_t k = 0; k < c->n_in; k++)
		if (c->in[k].r.nodeid == id)
			return k;
	cr_assert_fail("node %lu not collected", (unsigned long)id);
	return 0;
}

static void assert_name(const struct recs *c, uint64_t id, uint64_t parent, const char *name)
{
	const struct vfsd_fs_inode_rec *r = find(c, id);

	cr_assert_not_null(r, "node %lu collected", (unsigned long)id);
	cr_assert_eq(r->loc, VFSD_FS_LOC_NAME, "node %lu: loc %s", (unsigned long)id,
		     vfsd_fs_loc_name(r->loc));
	cr_assert_eq(r->parent, parent);
	cr_assert_str_eq(r->name, name);
}

/* Parents first, root first, every node once. */
static void assert_order(const struct recs *c)
{
	cr_assert_eq(c->in[0].r.nodeid, FUSE_ROOT_ID);
	cr_assert_eq(c->in[0].r.loc, VFSD_FS_LOC_ROOT);
	for (size_t k = 0; k < c->n_in; k++) {
		if (c->in[k].r.loc == VFSD_FS_LOC_NAME)
			cr_assert_lt(pos_of(c, c->in[k].r.parent), k, "parent after child");
		for (size_t j = k + 1; j < c->n_in; j++)
			cr_assert_neq(c->in[k].r.nodeid, c->in[j].r.nodeid);
	}
}

/* Restore everything of @c into @fs; returns the first error (the restore is aborted then). */
static int restore_all(struct vfsd_passthrough *fs, const struct recs *c, unsigned int flags,
		       char *why, size_t whysize)
{
	struct vfsd_fs_restore *r = NULL;
	int err = 0;

	cr_assert_eq(vfsd_fs_restore_begin(fs, &r), 0);
	for (size_t k = 0; k < c->n_in && err == 0; k++)
		err = vfsd_fs_restore_inode(r, &c->in[k].r, flags);
	for (size_t k = 0; k < c->n_h && err == 0; k++)
		err = vfsd_fs_restore_handle(r, &c->h[k], flags);
	if (err == 0)
		err = vfsd_fs_restore_counters(r, c->next_id, c->next_fh);
	if (err < 0) {
		if (why)
			snprintf(why, whysize, "%s", vfsd_fs_restore_error(r));
		vfsd_fs_restore_abort(r);
		return err;
	}
	vfsd_fs_restore_commit(r);
	return 0;
}

/* ---- locations ---- */

Test(fsm, locations_follow_lookup_create_rename_exchange)
{
	struct recs c;
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	uint64_t f = create_on(src, d, "f", O_RDWR, NULL);
	uint64_t a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, NULL);
	uint64_t b = create_on(src, FUSE_ROOT_ID, "b", O_RDWR, NULL);
	uint64_t e = mkdir_on(src, FUSE_ROOT_ID, "e");

	collect(src, 0, &c);
	assert_order(&c);
	cr_assert_eq(c.n_in, 6);
	assert_name(&c, d, FUSE_ROOT_ID, "d");
	assert_name(&c, f, d, "f");

	/* A file moved to another directory, a directory renamed. */
	cr_assert_eq(ops->rename(src, &ctx, d, "f", e, "g", 0), 0);
	cr_assert_eq(ops->rename(src, &ctx, FUSE_ROOT_ID, "d", FUSE_ROOT_ID, "d2", 0), 0);
	collect(src, 0, &c);
	assert_name(&c, f, e, "g");
	assert_name(&c, d, FUSE_ROOT_ID, "d2");

	/* EXCHANGE swaps both. */
	cr_assert_eq(ops->rename(src, &ctx, FUSE_ROOT_ID, "a", FUSE_ROOT_ID, "b", RENAME_EXCHANGE),
		     0);
	collect(src, 0, &c);
	assert_name(&c, a, FUSE_ROOT_ID, "b");
	assert_name(&c, b, FUSE_ROOT_ID, "a");

	/* Renaming over an unused inode we hold a lookup on: it loses its name (NONE). */
	cr_assert_eq(ops->rename(src, &ctx, FUSE_ROOT_ID, "a", FUSE_ROOT_ID, "b", 0), 0);
	collect(src, 0, &c);
	assert_name(&c, b, FUSE_ROOT_ID, "b");
	/* a was in use (a lookup held) and had one link: it became an orphan. */
	cr_assert_eq(find(&c, a)->loc, VFSD_FS_LOC_ORPHAN);
	/* Renaming over an unused inode: nothing in the table, nothing kept. */
	host_write("cold", "x");
	cr_assert_eq(ops->rename(src, &ctx, e, "g", FUSE_ROOT_ID, "cold", 0), 0);
	collect(src, 0, &c);
	assert_name(&c, f, FUSE_ROOT_ID, "cold");
	assert_order(&c);
}

Test(fsm, stale_hard_link_becomes_path)
{
	struct recs c;
	uint64_t sub = mkdir_on(src, FUSE_ROOT_ID, "sub");
	uint64_t a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, NULL);
	struct fuse_entry_out e;
	const struct vfsd_fs_inode_rec *r;
	char why[512] = "";

	cr_assert_eq(ops->link(src, &ctx, a, sub, "b", &e), 0);
	cr_assert_eq(e.nodeid, a);
	/* The last name given was sub/b; look it up as "a" again so "a" is recorded. */
	cr_assert_eq(lookup_on(src, FUSE_ROOT_ID, "a"), a);
	collect(src, 0, &c);
	assert_name(&c, a, FUSE_ROOT_ID, "a");

	/* Remove the recorded name: another link remains, so no orphan, a plain unlink. */
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "a"), 0);
	cr_assert(!host_exists("a"));
	cr_assert(host_exists("sub/b"));
	collect(src, 0, &c);
	r = find(&c, a);
	cr_assert_eq(r->loc, VFSD_FS_LOC_PATH, "loc %s", vfsd_fs_loc_name(r->loc));
	cr_assert_str_eq(r->path, "sub/b");

	/* prepare caches it; collect re-checks it and still gives the same. */
	cr_assert_eq(vfsd_fs_prepare(src, 0), 0);
	collect(src, 0, &c);
	cr_assert_str_eq(find(&c, a)->path, "sub/b");
	/* ... and notices when a directory rename moved it. */
	cr_assert_eq(ops->rename(src, &ctx, FUSE_ROOT_ID, "sub", FUSE_ROOT_ID, "sub2", 0), 0);
	collect(src, 0, &c);
	cr_assert_str_eq(find(&c, a)->path, "sub2/b");

	/* The destination finds it by that path. */
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, VFSD_FS_RESTORE_VERIFY_INO, why, sizeof(why)), 0, "%s",
		     why);
	struct fuse_attr_out ao;
	cr_assert_eq(ops->getattr(dst, &ctx, a, NULL, &ao), 0);
	cr_assert_eq(ao.attr.ino, c.in[pos_of(&c, a)].r.ino);
}

Test(fsm, parents_stay_while_a_child_names_them)
{
	struct recs c;
	uint64_t d1 = mkdir_on(src, FUSE_ROOT_ID, "d1");
	uint64_t d2 = mkdir_on(src, d1, "d2");
	uint64_t f = create_on(src, d2, "f", O_RDWR, NULL);
	size_t ni;

	ops->forget(src, d1, 1);
	ops->forget(src, d2, 1);
	vfsd_passthrough_counts(src, &ni, NULL);
	cr_assert_eq(ni, 4, "forgotten parents stay while f names them");
	collect(src, 0, &c);
	assert_order(&c);
	cr_assert_eq(find(&c, d1)->nlookup, 0);
	cr_assert_eq(find(&c, d2)->nlookup, 0);
	cr_assert_eq(find(&c, f)->nlookup, 1);
	cr_assert_lt(pos_of(&c, d1), pos_of(&c, d2));
	cr_assert_lt(pos_of(&c, d2), pos_of(&c, f));

	/* The child goes: the whole chain goes with it. */
	ops->forget(src, f, 1);
	vfsd_passthrough_counts(src, &ni, NULL);
	cr_assert_eq(ni, 1);
}

/* ---- orphans ---- */

static char orphan_path[256];

static const char *orphan_of(struct vfsd_passthrough *fs, uint64_t id)
{
	snprintf(orphan_path, sizeof(orphan_path), ".vfsd-orphans/%s/%lu",
		 vfsd_passthrough_instance_id(fs), (unsigned long)id);
	return orphan_path;
}

Test(fsm, unlinked_while_open_becomes_an_orphan)
{
	uint64_t fh, f = create_on(src, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	struct fuse_attr_out ao;
	struct fuse_entry_out e;
	char buf[64];

	cr_assert_eq(write_on(src, f, fh, 0, "hello orphan"), 12);
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "f"), 0);
	cr_assert(!host_exists("f"));
	cr_assert(host_exists(orphan_of(src, f)), "%s", orphan_path);
	cr_assert_eq(ops->getattr(src, &ctx, f, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 0, "must look deleted");
	cr_assert_eq(ops->lookup(src, &ctx, FUSE_ROOT_ID, "f", &e), -ENOENT);
	cr_assert_eq(ops->link(src, &ctx, f, FUSE_ROOT_ID, "again", &e), -ENOENT);
	cr_assert_eq(read_on(src, f, fh, 6, 6, buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "orphan");
	cr_assert_eq(write_on(src, f, fh, 12, "!"), 1);
	cr_assert_eq(read_on(src, f, fh, 0, 64, buf, sizeof(buf)), 13);
	cr_assert_str_eq(buf, "hello orphan!");

	/* Release first: the lookup still holds it; then forget: the name goes. */
	release_on(src, f, fh);
	cr_assert(host_exists(orphan_path));
	ops->forget(src, f, 1);
	cr_assert(!host_exists(orphan_path));
}

Test(fsm, orphan_name_goes_at_last_release_after_forget_and_on_reset)
{
	uint64_t fh, f = create_on(src, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	uint64_t fh2, g = create_on(src, FUSE_ROOT_ID, "g", O_RDWR, &fh2);
	char gpath[256];
	size_t ni;

	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "f"), 0);
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "g"), 0);
	ops->forget(src, f, 1); /* the handle still pins it */
	vfsd_passthrough_counts(src, &ni, NULL);
	cr_assert_eq(ni, 3);
	cr_assert(host_exists(orphan_of(src, f)));
	release_on(src, f, fh);
	cr_assert(!host_exists(orphan_of(src, f)));

	snprintf(gpath, sizeof(gpath), "%s", orphan_of(src, g));
	cr_assert(host_exists(gpath));
	ops->reset(src);
	cr_assert(!host_exists(gpath), "reset drops orphans");
	(void)fh2;

	/* A file with another link is unlinked for real (no orphan). */
	uint64_t h = create_on(src, FUSE_ROOT_ID, "h", O_RDWR, NULL);
	struct fuse_entry_out e;
	cr_assert_eq(ops->link(src, &ctx, h, FUSE_ROOT_ID, "h2", &e), 0);
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "h2"), 0);
	cr_assert(!host_exists(orphan_of(src, h)));
	cr_assert(!host_exists("h2"));
	/* And one the guest does not use at all is unlinked for real too. */
	host_write("cold", "x");
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "cold"), 0);
	char inst[256];
	snprintf(inst, sizeof(inst), ".vfsd-orphans/%s", vfsd_passthrough_instance_id(src));
	cr_assert_eq(dir_entries(inst), 0, "neither h nor cold kept");
}

Test(fsm, free_removes_the_own_instance_dir)
{
	uint64_t fh, f = create_on(src, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	char inst[256];

	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "f"), 0);
	snprintf(inst, sizeof(inst), ".vfsd-orphans/%s", vfsd_passthrough_instance_id(src));
	cr_assert(host_exists(inst));
	cr_assert_eq(dir_entries(inst), 1);
	vfsd_passthrough_free(src);
	src = NULL;
	cr_assert(!host_exists(inst));
	(void)f;
}

Test(fsm, startup_removes_dead_instances_only)
{
	int live;

	cr_assert_eq(mkdirat(dirfd_, ".vfsd-orphans", 0700), 0);
	cr_assert_eq(mkdirat(dirfd_, ".vfsd-orphans/dead", 0700), 0);
	host_write(".vfsd-orphans/dead/7", "old data");
	cr_assert_eq(mkdirat(dirfd_, ".vfsd-orphans/live", 0700), 0);
	host_write(".vfsd-orphans/live/9", "needed");
	live = openat(dirfd_, ".vfsd-orphans/live", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(live, 0);
	cr_assert_eq(flock(live, LOCK_EX | LOCK_NB), 0);

	dst = new_fs(); /* startup: the cleanup runs here */
	cr_assert(!host_exists(".vfsd-orphans/dead"), "a dead instance's dir goes");
	cr_assert(host_exists(".vfsd-orphans/live/9"), "a locked one stays");

	/* Not at any other time: the lock is released, but nobody looks again. */
	close(live);
	uint64_t fh, f = create_on(dst, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	cr_assert_eq(ops->unlink(dst, &ctx, FUSE_ROOT_ID, "f"), 0);
	cr_assert(host_exists(".vfsd-orphans/live/9"));
	/* A running instance's dir is never taken by a newcomer. */
	struct vfsd_passthrough *third = new_fs();
	cr_assert(host_exists(orphan_of(dst, f)));
	cr_assert(!host_exists(".vfsd-orphans/live"));
	vfsd_passthrough_free(third);
}

/* ---- collect -> restore ---- */

Test(fsm, round_trip_to_a_second_instance)
{
	struct recs c;
	char buf[64], why[512] = "";
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	uint64_t fh_a, a = create_on(src, d, "a", O_RDWR, &fh_a);
	uint64_t fh_o, o = create_on(src, FUSE_ROOT_ID, "o", O_RDWR, &fh_o);
	uint64_t fh_p, p;
	struct fuse_open_out oo;
	size_t ni, nh, ni2, nh2;

	cr_assert_eq(write_on(src, a, fh_a, 0, "0123456789"), 10);
	cr_assert_eq(write_on(src, o, fh_o, 0, "orphan data"), 11);
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "o"), 0);
	host_write("app", "log:");
	p = lookup_on(src, FUSE_ROOT_ID, "app");
	cr_assert_eq(ops->open(src, &ctx, p, O_WRONLY | O_APPEND, &oo), 0);
	fh_p = oo.fh;
	for (int k = 0; k < 6; k++) {
		char n[8];
		snprintf(n, sizeof(n), "e%d", k);
		create_on(src, d, n, O_RDWR, NULL);
	}
	collect(src, VFSD_FS_COLLECT_HANDLES, &c);
	assert_order(&c);
	cr_assert_eq(find(&c, o)->loc, VFSD_FS_LOC_ORPHAN);
	cr_assert(find(&c, a)->has_fh);
	vfsd_passthrough_counts(src, &ni, &nh);

	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c,
				 VFSD_FS_RESTORE_VERIFY_INO | VFSD_FS_RESTORE_VERIFY_HANDLE, why,
				 sizeof(why)),
		     0, "%s", why);
	vfsd_passthrough_counts(dst, &ni2, &nh2);
	cr_assert_eq(ni2, ni);
	cr_assert_eq(nh2, nh);
	uint64_t nid, nfh;
	vfsd_fs_counters(dst, &nid, &nfh);
	cr_assert_eq(nid, c.next_id);
	cr_assert_eq(nfh, c.next_fh);

	/* Same node ids and fhs, right data at the right offsets. */
	cr_assert_eq(read_on(dst, a, fh_a, 3, 4, buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "3456");
	cr_assert_eq(read_on(dst, o, fh_o, 7, 4, buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "data");
	/* O_APPEND kept: the write lands at the end whatever the offset. */
	cr_assert_eq(write_on(dst, p, fh_p, 0, "x"), 1);
	int hfd = openat(dirfd_, "app", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(read(hfd, buf, sizeof(buf)), 5);
	close(hfd);
	cr_assert_eq(memcmp(buf, "log:x", 5), 0);
	/* The destination holds its own link to the orphan. */
	cr_assert(host_exists(orphan_of(dst, o)));
	struct fuse_attr_out ao;
	cr_assert_eq(ops->getattr(dst, &ctx, o, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 0);

	/* The source goes away: its name goes, the data stays reachable. */
	char srcname[256];
	snprintf(srcname, sizeof(srcname), "%s", orphan_of(src, o));
	cr_assert(host_exists(srcname));
	vfsd_passthrough_free(src);
	src = NULL;
	cr_assert(!host_exists(srcname));
	cr_assert(host_exists(orphan_of(dst, o)));
	cr_assert_eq(read_on(dst, o, fh_o, 0, 6, buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "orphan");

	/* New ids continue above the source's. */
	uint64_t n = create_on(dst, FUSE_ROOT_ID, "new", O_RDWR, NULL);
	cr_assert_geq(n, c.next_id);

	/* Back and forth: dst -> a third instance, ten times over. */
	for (int k = 0; k < 10; k++) {
		struct vfsd_passthrough *next = new_fs();
		collect(dst, 0, &c);
		cr_assert_eq(restore_all(next, &c, VFSD_FS_RESTORE_VERIFY_INO, why, sizeof(why)), 0,
			     "round %d: %s", k, why);
		vfsd_passthrough_free(dst);
		dst = next;
		cr_assert_eq(read_on(dst, o, fh_o, 7, 4, buf, sizeof(buf)), 4);
		cr_assert_str_eq(buf, "data");
	}
	cr_assert_eq(dir_entries(".vfsd-orphans"), 1, "one live instance dir, no leftovers");
}

Test(fsm, dir_handle_continues_where_it_stopped)
{
	static char mem[4096];
	struct vfsd_dirbuf b = { .buf = mem, .size = 80 };
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	struct fuse_open_out oo;
	struct recs c;
	char why[512] = "", seen[64][32];
	int nseen = 0;
	uint64_t last = 0;

	for (int k = 0; k < 12; k++) {
		char n[16];
		snprintf(n, sizeof(n), "entry-%02d", k);
		host_write("tmp", "");
		cr_assert_eq(renameat(dirfd_, "tmp", dirfd_, "d/x"), 0);
		cr_assert_eq(
		    renameat(dirfd_, "d/x", dirfd_, (snprintf(mem, sizeof(mem), "d/%s", n), mem)),
		    0);
	}
	cr_assert_eq(ops->opendir(src, &ctx, d, 0, &oo), 0);
	struct fuse_read_in in = { .fh = oo.fh, .offset = 0, .size = 80 };
	b.len = 0;
	cr_assert_eq(ops->readdir(src, &ctx, d, &in, false, &b), 0);
	for (size_t off = 0; off < b.len;) {
		const struct fuse_dirent *de = (const void *)(b.buf + off);
		memcpy(seen[nseen], de->name, de->namelen);
		seen[nseen++][de->namelen] = '\0';
		last = de->off;
		off += FUSE_DIRENT_SIZE(de);
	}
	cr_assert_gt(nseen, 0);
	cr_assert_lt(nseen, 14);

	collect(src, 0, &c);
	cr_assert_eq(c.n_h, 1);
	cr_assert(c.h[0].is_dir);
	cr_assert(c.h[0].has_dir_offset);
	cr_assert_eq(c.h[0].dir_offset, last);
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, 0, why, sizeof(why)), 0, "%s", why);
	/* The destination continues from the cookie: the rest, nothing twice. */
	static char big[65536];
	struct vfsd_dirbuf b2 = { .buf = big, .size = sizeof(big) };
	in = (struct fuse_read_in){ .fh = oo.fh, .offset = last, .size = sizeof(big) };
	cr_assert_eq(ops->readdir(dst, &ctx, d, &in, false, &b2), 0);
	for (size_t off = 0; off < b2.len;) {
		const struct fuse_dirent *de = (const void *)(b2.buf + off);
		char n[32];
		memcpy(n, de->name, de->namelen);
		n[de->namelen] = '\0';
		for (int k = 0; k < nseen; k++)
			cr_assert_str_neq(n, seen[k]);
		cr_assert_lt(nseen, 64);
		memcpy(seen[nseen++], n, sizeof(n));
		off += FUSE_DIRENT_SIZE(de);
	}
	cr_assert_eq(nseen, 14, "12 entries plus . and ..");
}

Test(fsm, failed_restore_changes_nothing)
{
	struct recs c;
	uint64_t fh_a, a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, &fh_a);
	uint64_t fh_o, o = create_on(src, FUSE_ROOT_ID, "o", O_RDWR, &fh_o);
	uint64_t b = create_on(src, FUSE_ROOT_ID, "b", O_RDWR, NULL);
	char why[512] = "";
	size_t ni, nh;

	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "o"), 0);
	collect(src, 0, &c);
	cr_assert_lt(pos_of(&c, o), c.n_in);
	cr_assert_eq(unlinkat(dirfd_, "b", 0), 0); /* gone behind our back */

	dst = new_fs();
	uint64_t mine = create_on(dst, FUSE_ROOT_ID, "mine", O_RDWR, NULL);
	vfsd_passthrough_counts(dst, &ni, &nh);
	cr_assert_eq(restore_all(dst, &c, 0, why, sizeof(why)), -ENOENT);
	cr_assert(strstr(why, "open b") != NULL, "reason: %s", why);
	size_t ni2, nh2;
	vfsd_passthrough_counts(dst, &ni2, &nh2);
	cr_assert_eq(ni2, ni);
	cr_assert_eq(nh2, nh);
	struct fuse_attr_out ao;
	cr_assert_eq(ops->getattr(dst, &ctx, mine, NULL, &ao), 0);
	cr_assert_eq(ops->getattr(dst, &ctx, a, NULL, &ao), mine == a ? 0 : -ENOENT);
	/* No hand-over link left behind (the orphan may sort before or after b). */
	char inst[256];
	snprintf(inst, sizeof(inst), ".vfsd-orphans/%s", vfsd_passthrough_instance_id(dst));
	cr_assert_eq(dir_entries(inst), 0);
	(void)b;
}

Test(fsm, lenient_restore_gives_eio_on_the_missing_inode_only)
{
	struct recs c;
	uint64_t fh_a, a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, &fh_a);
	uint64_t fh_b, b = create_on(src, FUSE_ROOT_ID, "b", O_RDWR, &fh_b);
	char why[512] = "", buf[16];
	struct fuse_attr_out ao;

	cr_assert_eq(write_on(src, a, fh_a, 0, "aaa"), 3);
	collect(src, 0, &c);
	cr_assert_eq(unlinkat(dirfd_, "b", 0), 0);
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, VFSD_FS_RESTORE_LENIENT, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ops->getattr(dst, &ctx, b, NULL, &ao), -EIO);
	cr_assert_eq(read_on(dst, b, fh_b, 0, 4, buf, sizeof(buf)), -EIO);
	cr_assert_eq(ops->getattr(dst, &ctx, a, NULL, &ao), 0);
	cr_assert_eq(read_on(dst, a, fh_a, 0, 4, buf, sizeof(buf)), 3);
	/* The guest can still release and forget it. */
	release_on(dst, b, fh_b);
	ops->forget(dst, b, 1);
	cr_assert_eq(ops->getattr(dst, &ctx, b, NULL, &ao), -ENOENT);
}

/*
 * A directory with many files to find is read once (getdents64) instead of
 * one fstatat per file: the listing must judge exactly as fstatat would.
 */
Test(fsm, many_files_in_one_directory_are_checked_by_listing)
{
	struct recs c;
	char name[32], why[512] = "";
	struct fuse_attr_out ao;
	uint64_t d, f[40];

	d = mkdir_on(src, FUSE_ROOT_ID, "d");
	for (int k = 0; k < 40; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		f[k] = create_on(src, d, name, O_RDWR, NULL);
	}
	collect(src, 0, &c);
	/* The host: f30 gone, a symlink in f31's place, another file in f32's. */
	cr_assert_eq(unlinkat(dirfd_, "d/f30", 0), 0);
	cr_assert_eq(unlinkat(dirfd_, "d/f31", 0), 0);
	cr_assert_eq(symlinkat("f0", dirfd_, "d/f31"), 0);
	host_write("d/other", "x");
	cr_assert_eq(renameat(dirfd_, "d/other", dirfd_, "d/f32"), 0);

	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, 0, why, sizeof(why)), -ENOENT);
	cr_assert(strstr(why, "open f30 in") != NULL, "reason: %s", why);
	vfsd_passthrough_free(dst);

	/* The one that went is put back: now the symlink is the first wrong one. */
	host_write("d/f30", "back");
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, 0, why, sizeof(why)), -ESTALE);
	cr_assert(strstr(why, "type 0120000") != NULL, "reason: %s", why);
	vfsd_passthrough_free(dst);

	cr_assert_eq(unlinkat(dirfd_, "d/f30", 0), 0);
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, VFSD_FS_RESTORE_LENIENT | VFSD_FS_RESTORE_VERIFY_INO, why,
				 sizeof(why)),
		     0, "%s", why);
	for (int k = 0; k < 40; k++) {
		int want = (k >= 30 && k <= 32) ? -EIO : 0;
		cr_assert_eq(ops->getattr(dst, &ctx, f[k], NULL, &ao), want, "f%d", k);
		if (want == 0) {
			snprintf(name, sizeof(name), "d/f%d", k);
			struct stat st;
			cr_assert_eq(fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW), 0);
			cr_assert_eq(ao.attr.ino, st.st_ino);
		}
	}
}

Test(fsm, file_handle_mode_round_trip)
{
	struct recs c;
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	uint64_t fh_a, a = create_on(src, d, "a", O_RDWR, &fh_a);
	char why[512] = "", buf[16];

	cr_assert_eq(write_on(src, a, fh_a, 0, "by handle"), 9);
	cr_assert_eq(vfsd_fs_prepare(src, VFSD_FS_COLLECT_HANDLES), 0);
	collect(src, VFSD_FS_COLLECT_HANDLES, &c);
	for (size_t k = 0; k < c.n_in; k++)
		cr_assert(c.in[k].r.has_fh, "node %lu has a handle",
			  (unsigned long)c.in[k].r.nodeid);
	/* Renamed on the host behind everyone's back: handles do not care, names do. */
	cr_assert_eq(renameat(dirfd_, "d/a", dirfd_, "moved"), 0);
	dst = new_fs();
	int r = restore_all(dst, &c, VFSD_FS_RESTORE_BY_HANDLE | VFSD_FS_RESTORE_VERIFY_INO, why,
			    sizeof(why));
	if (r == -EPERM) {
		cr_assert(strstr(why, "CAP_DAC_READ_SEARCH") != NULL, "%s", why);
		cr_skip_test("no CAP_DAC_READ_SEARCH");
	}
	cr_assert_eq(r, 0, "%s", why);
	cr_assert_eq(read_on(dst, a, fh_a, 3, 6, buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "handle");

	/* By name instead, the same records fail: the name is gone. */
	struct vfsd_passthrough *third = new_fs();
	cr_assert_eq(restore_all(third, &c, 0, why, sizeof(why)), -ENOENT);
	vfsd_passthrough_free(third);
}

Test(fsm, confirm_catches_a_host_rename)
{
	struct recs c;
	uint64_t a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, NULL);

	cr_assert_eq(renameat(dirfd_, "a", dirfd_, "z"), 0);
	collect(src, 0, &c);
	assert_name(&c, a, FUSE_ROOT_ID, "a"); /* invisible without confirm */
	collect(src, VFSD_FS_COLLECT_CONFIRM, &c);
	cr_assert_eq(find(&c, a)->loc, VFSD_FS_LOC_PATH);
	cr_assert_str_eq(find(&c, a)->path, "z");
}

Test(fsm, bad_records_are_refused_even_when_lenient)
{
	struct vfsd_fs_restore *r = NULL;
	struct vfsd_fs_inode_rec rec = { .nodeid = 5,
					 .nlookup = 1,
					 .type = S_IFREG,
					 .loc = VFSD_FS_LOC_NAME,
					 .parent = 4,
					 .name = "x" };
	struct vfsd_fs_handle_rec h = { .fh = 3, .nodeid = 77 };

	dst = new_fs();
	cr_assert_eq(vfsd_fs_restore_begin(dst, &r), 0);
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, VFSD_FS_RESTORE_LENIENT), -EINVAL,
		     "unknown parent");
	cr_assert(strstr(vfsd_fs_restore_error(r), "parents first") != NULL);
	rec.parent = FUSE_ROOT_ID;
	rec.name = "../etc";
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, VFSD_FS_RESTORE_LENIENT), -EINVAL);
	rec.name = ".vfsd-orphans";
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, 0), -EINVAL);
	rec.loc = VFSD_FS_LOC_PATH;
	rec.path = "a/../../etc";
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, VFSD_FS_RESTORE_LENIENT), -EINVAL);
	rec.loc = VFSD_FS_LOC_ORPHAN;
	rec.orphan = "../x";
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, VFSD_FS_RESTORE_LENIENT), -EINVAL);
	cr_assert_eq(vfsd_fs_restore_handle(r, &h, VFSD_FS_RESTORE_LENIENT), -EINVAL);
	/* A counter below a restored id is refused. */
	host_write("x", "");
	rec.loc = VFSD_FS_LOC_NAME;
	rec.name = "x";
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, 0), 0);
	rec.nodeid = 6;
	cr_assert_eq(vfsd_fs_restore_inode(r, &rec, 0), -EEXIST, "same host inode twice");
	cr_assert_eq(vfsd_fs_restore_counters(r, 5, 1), -EINVAL);
	cr_assert_eq(vfsd_fs_restore_counters(r, 6, 1), 0);
	vfsd_fs_restore_abort(r);
}

/* ---- handles restored in a batch, on several threads ---- */

#define MANY_HANDLES 300

struct many {
	struct vfsd_fs_handle_rec h[MANY_HANDLES + 8];
	size_t n;
};

static int many_cb(void *ud, const struct vfsd_fs_handle_rec *rec)
{
	struct many *m = ud;

	cr_assert_lt(m->n, MANY_HANDLES + 8);
	m->h[m->n++] = *rec;
	return 0;
}

static size_t open_fds(void)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Inodes restored, then @host_change, then the handles in one batch on 4 threads. */
static int restore_batch(const struct recs *c, const struct many *m, unsigned int flags,
			 void (*host_change)(void), char *why, size_t whysize)
{
	struct vfsd_fs_restore *r = NULL;
	int err = 0;

	dst = new_fs();
	cr_assert_eq(vfsd_fs_restore_begin(dst, &r), 0);
	for (size_t k = 0; k < c->n_in; k++)
		cr_assert_eq(vfsd_fs_restore_inode(r, &c->in[k].r, flags), 0, "%s",
			     vfsd_fs_restore_error(r));
	if (host_change)
		host_change();
	err = vfsd_fs_restore_handles(r, m->h, m->n, flags, 4);
	if (err == 0)
		err = vfsd_fs_restore_counters(r, c->next_id, c->next_fh);
	snprintf(why, whysize, "%s", vfsd_fs_restore_error(r));
	if (err < 0)
		vfsd_fs_restore_abort(r);
	else
		vfsd_fs_restore_commit(r);
	return err;
}

static void fifo_for_a(void)
{
	cr_assert_eq(unlinkat(dirfd_, "a", 0), 0);
	cr_assert_eq(mkfifoat(dirfd_, "a", 0644), 0);
}

static void replace_b(void)
{
	host_write("other", "not b");
	cr_assert_eq(renameat(dirfd_, "other", dirfd_, "b"), 0);
}

/*
 * The batch behaves as the records one by one: every handle works after it;
 * a failure is the first failing record's, in record order, with nothing
 * left open; lenient, only the handles of the changed file give EIO.
 */
Test(fsm, handles_reopen_in_parallel_as_one_by_one)
{
	static struct recs c;
	static struct many m;
	uint64_t fh_a, a = create_on(src, FUSE_ROOT_ID, "a", O_RDWR, &fh_a);
	uint64_t fh_b, b = create_on(src, FUSE_ROOT_ID, "b", O_RDWR, &fh_b);
	char why[512] = "", buf[16], want[128];
	size_t first_b = SIZE_MAX, fds, ni, nh;

	cr_assert_eq(write_on(src, a, fh_a, 0, "aaa"), 3);
	for (int k = 0; k < MANY_HANDLES / 2; k++) {
		struct fuse_open_out oo;

		cr_assert_eq(ops->open(src, &ctx, a, O_RDONLY, &oo), 0);
		cr_assert_eq(ops->open(src, &ctx, b, O_WRONLY | O_APPEND, &oo), 0);
	}
	memset(&c, 0, sizeof(c));
	cr_assert_eq(vfsd_fs_collect_inodes(src, 0, inode_cb, &c), 0);
	vfsd_fs_counters(src, &c.next_id, &c.next_fh);
	cr_assert_eq(vfsd_fs_collect_handles(src, many_cb, &m), 0);
	cr_assert_eq(m.n, MANY_HANDLES + 2);
	for (size_t k = 0; k < m.n && first_b == SIZE_MAX; k++)
		if (m.h[k].nodeid == b)
			first_b = k;

	/* All well: every handle is there and reads. */
	cr_assert_eq(restore_batch(&c, &m, 0, NULL, why, sizeof(why)), 0, "%s", why);
	vfsd_passthrough_counts(dst, &ni, &nh);
	cr_assert_eq(nh, m.n);
	for (size_t k = 0; k < m.n; k++)
		if (m.h[k].nodeid == a)
			cr_assert_eq(read_on(dst, a, m.h[k].fh, 0, 4, buf, sizeof(buf)), 3);
	vfsd_passthrough_free(dst);

	/* Another file renamed over b after the inodes: b's first handle is the reason. */
	fds = open_fds();
	cr_assert_eq(restore_batch(&c, &m, 0, replace_b, why, sizeof(why)), -ESTALE);
	snprintf(want, sizeof(want), "handle %lu: re-open", (unsigned long)m.h[first_b].fh);
	cr_assert(strstr(why, want) != NULL, "reason: %s, want %s", why, want);
	vfsd_passthrough_free(dst);
	dst = NULL;
	cr_assert_eq(open_fds(), fds, "the failed batch closed what it opened");

	/* A FIFO put in a's place: the re-opens (a batch on io_uring) must not block on it. */
	cr_assert_eq(restore_batch(&c, &m, 0, fifo_for_a, why, sizeof(why)), -ESTALE, "%s", why);
	vfsd_passthrough_free(dst);
	dst = NULL;
	cr_assert_eq(unlinkat(dirfd_, "a", 0), 0);
	host_write("a", "aaa");
	cr_assert_eq(restore_batch(&c, &m, 0, NULL, why, sizeof(why)), 0, "%s", why);
	vfsd_passthrough_free(dst);
	dst = NULL;

	/* Lenient: b's handles give EIO, a's work. */
	cr_assert_eq(restore_batch(&c, &m, VFSD_FS_RESTORE_LENIENT, replace_b, why, sizeof(why)), 0,
		     "%s", why);
	for (size_t k = 0; k < m.n; k++) {
		if (m.h[k].nodeid == b)
			cr_assert_eq(read_on(dst, b, m.h[k].fh, 0, 4, buf, sizeof(buf)), -EIO);
		else
			cr_assert_eq(read_on(dst, a, m.h[k].fh, 0, 4, buf, sizeof(buf)), 3);
	}
}

/* ---- lost inodes ---- */

Test(fsm, collect_tells_unlinked_from_not_found)
{
	struct recs c;
	const struct vfsd_fs_inode_rec *r;

	/* removed by the guest: NONE, unlinked */
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	cr_assert_eq(ops->rmdir(src, &ctx, FUSE_ROOT_ID, "d"), 0);
	cr_assert_eq(symlinkat("target", dirfd_, "l"), 0); /* only regular files become orphans */
	uint64_t f = lookup_on(src, FUSE_ROOT_ID, "l");
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "l"), 0);
	/* a stale name whose other link went behind our back: NONE, not unlinked */
	host_write("x", "x");
	cr_assert_eq(linkat(dirfd_, "x", dirfd_, "y", 0), 0);
	uint64_t x = lookup_on(src, FUSE_ROOT_ID, "x");
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "x"), 0);
	cr_assert_eq(unlinkat(dirfd_, "y", 0), 0);
	/* a stale name found again: PATH */
	host_write("p", "p");
	cr_assert_eq(linkat(dirfd_, "p", dirfd_, "q", 0), 0);
	uint64_t p = lookup_on(src, FUSE_ROOT_ID, "p");
	cr_assert_eq(ops->unlink(src, &ctx, FUSE_ROOT_ID, "p"), 0);

	collect(src, 0, &c);
	r = find(&c, d);
	cr_assert_eq(r->loc, VFSD_FS_LOC_NONE);
	cr_assert(r->unlinked);
	cr_assert(r->has_ino);
	r = find(&c, f);
	cr_assert_eq(r->loc, VFSD_FS_LOC_NONE);
	cr_assert(r->unlinked);
	r = find(&c, x);
	cr_assert_eq(r->loc, VFSD_FS_LOC_NONE);
	cr_assert_not(r->unlinked);
	r = find(&c, p);
	cr_assert_eq(r->loc, VFSD_FS_LOC_PATH);
	cr_assert_not(r->unlinked);
	cr_assert_not(find(&c, FUSE_ROOT_ID)->unlinked);
}

Test(fsm, placeholder_keeps_id_and_lookups)
{
	struct vfsd_fs_restore *r = NULL;
	struct vfsd_fs_inode_rec root = { .nodeid = FUSE_ROOT_ID,
					  .type = S_IFDIR,
					  .loc = VFSD_FS_LOC_ROOT };
	struct vfsd_fs_inode_rec lost = { .nodeid = 7, .nlookup = 3, .type = S_IFREG };
	struct vfsd_fs_handle_rec h = { .fh = 4, .nodeid = 7, .flags = O_RDWR };
	struct fuse_attr_out ao;
	char buf[8];
	size_t ni, nh;

	dst = new_fs();
	cr_assert_eq(vfsd_fs_restore_begin(dst, &r), 0);
	cr_assert_eq(vfsd_fs_restore_inode(r, &root, 0), 0);
	cr_assert_eq(vfsd_fs_restore_placeholder(r, &lost), 0, "%s", vfsd_fs_restore_error(r));
	/* bad records are refused */
	struct vfsd_fs_inode_rec bad = lost;
	bad.nodeid = FUSE_ROOT_ID;
	cr_assert_eq(vfsd_fs_restore_placeholder(r, &bad), -EINVAL);
	bad = lost;
	bad.type = 0;
	cr_assert_eq(vfsd_fs_restore_placeholder(r, &bad), -EINVAL);
	cr_assert_eq(vfsd_fs_restore_placeholder(r, &lost), -EEXIST);
	cr_assert(strstr(vfsd_fs_restore_error(r), "inode 7"), "%s", vfsd_fs_restore_error(r));
	/* a handle on it: refused unless lenient, then an EIO placeholder */
	cr_assert_eq(vfsd_fs_restore_handle(r, &h, 0), -EIO);
	cr_assert_eq(vfsd_fs_restore_handle(r, &h, VFSD_FS_RESTORE_LENIENT), 0);
	cr_assert_eq(vfsd_fs_restore_counters(r, 8, 5), 0);
	cr_assert_eq(vfsd_fs_restore_invalid_count(r), 1, "the handle, not the inode");
	vfsd_fs_restore_commit(r);

	cr_assert_eq(ops->getattr(dst, &ctx, 7, NULL, &ao), -EIO);
	cr_assert_eq(read_on(dst, 7, 4, 0, 4, buf, sizeof(buf)), -EIO);
	release_on(dst, 7, 4);
	ops->forget(dst, 7, 2);
	cr_assert_eq(ops->getattr(dst, &ctx, 7, NULL, &ao), -EIO, "one lookup left");
	ops->forget(dst, 7, 1);
	cr_assert_eq(ops->getattr(dst, &ctx, 7, NULL, &ao), -ENOENT);
	vfsd_passthrough_counts(dst, &ni, &nh);
	cr_assert_eq(ni, 1);
	cr_assert_eq(nh, 0);
}

/*
 * The commit drops what the blob kept for nothing: an inode with no lookups,
 * no children and no open handle; one kept for a child or a handle stays.
 */
Test(fsm, commit_drops_unlooked_inodes_kept_for_nothing)
{
	struct recs c;
	struct fuse_attr_out ao;
	char why[512] = "";
	uint64_t d = mkdir_on(src, FUSE_ROOT_ID, "d");
	uint64_t f = create_on(src, d, "f", O_RDWR, NULL);
	uint64_t g = create_on(src, FUSE_ROOT_ID, "g", O_RDWR, NULL);
	uint64_t fh_h, h = create_on(src, FUSE_ROOT_ID, "h", O_RDWR, &fh_h);
	size_t ni, nh;

	collect(src, 0, &c);
	for (size_t k = 0; k < c.n_in; k++)
		if (c.in[k].r.nodeid == d || c.in[k].r.nodeid == g || c.in[k].r.nodeid == h)
			c.in[k].r.nlookup = 0;
	dst = new_fs();
	cr_assert_eq(restore_all(dst, &c, 0, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ops->getattr(dst, &ctx, g, NULL, &ao), -ENOENT, "g was kept for nothing");
	cr_assert_eq(ops->getattr(dst, &ctx, d, NULL, &ao), 0, "d names f");
	cr_assert_eq(ops->getattr(dst, &ctx, f, NULL, &ao), 0);
	cr_assert_eq(ops->getattr(dst, &ctx, h, NULL, &ao), 0, "h has an open handle");
	vfsd_passthrough_counts(dst, &ni, &nh);
	cr_assert_eq(ni, 4); /* root, d, f, h */
	cr_assert_eq(nh, 1);
}
