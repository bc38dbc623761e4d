/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration: session -> blob -> session between two passthrough instances on
 * one shared directory, through the migration API (no sockets).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vfsd/chain_io.h"
#include "vfsd/migration.h"
#include "vfsd/inode_table.h"
#include "vfsd/passthrough.h"
#include "vfsd/util.h"

static char dir[64];
static int dirfd_ = -1;
static const struct vfsd_fs_ops *ops = &vfsd_passthrough_ops;
static struct vfsd_fs_ctx ctx;

/* One side: fs + FUSE session + migration. */
struct side {
	struct vfsd_passthrough *fs;
	struct vfsd_fuse_session s;
	struct vfsd_migration *m;
};
static struct side src, dst;

static void side_new(struct side *d, const struct vfsd_migration_config *cfg)
{
	struct vfsd_passthrough_config pc = { .shared_dir = dir,
					      .entry_timeout = 1.0,
					      .attr_timeout = 1.0 };

	cr_assert_eq(vfsd_passthrough_new(&pc, &d->fs), 0);
	cr_assert_eq(vfsd_fuse_session_init(&d->s, ops, d->fs), 0);
	cr_assert_eq(vfsd_migration_new(cfg, d->fs, &d->s, &d->m), 0);
}

static void side_free(struct side *d)
{
	if (!d->fs)
		return;
	vfsd_migration_free(d->m);
	vfsd_fuse_session_done(&d->s);
	vfsd_passthrough_free(d->fs);
	memset(d, 0, sizeof(*d));
}

/* What FUSE_INIT would have negotiated. */
static void side_init(struct side *d)
{
	d->s.initialized = true;
	d->s.conn = (struct vfsd_fuse_conn){ .minor = 38,
					     .flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS,
					     .max_write = 1u << 20,
					     .max_readahead = 131072 };
}

static void setup(void)
{
#ifdef VFSD_TEST_FD_BUDGET
	/* The same tests with every file held by its name (no fd): see inode_table.h. */
	vfsd_inode_fd_budget_set(VFSD_TEST_FD_BUDGET);
#endif
	struct rlimit rl;

	/* Every inode holds an O_PATH fd, on both sides: as the daemon does, take them all. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	strcpy(dir, "/tmp/vfsd-mig-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dirfd_, 0);
	ctx = (struct vfsd_fs_ctx){ .uid = 0, .gid = 0, .io = NULL };
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

static void teardown(void)
{
	side_free(&dst);
	side_free(&src);
	if (dirfd_ >= 0)
		close(dirfd_);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(mig, .init = setup, .fini = teardown, .timeout = 60.0);

/* ---- helpers ---- */

struct membuf {
	char *p;
	size_t len, cap, pos;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->p = realloc(m->p, m->cap + 1);
		cr_assert_not_null(m->p);
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	m->p[m->len] = '\0';
	return 0;
}

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct membuf *m = opaque;
	size_t n = MIN(len, m->len - m->pos);

	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static void save(struct side *d, struct membuf *b)
{
	*b = (struct membuf){ 0 };
	cr_assert_eq(vfsd_migration_save_cb(d->m, mem_write, b), 0, "%s",
		     vfsd_migration_last_error(d->m));
}

static int load(struct side *d, struct membuf *b)
{
	b->pos = 0;
	return vfsd_migration_load_cb(d->m, mem_read, b);
}

static uint64_t lookup_on(struct side *d, uint64_t parent, const char *name)
{
	struct fuse_entry_out e;
	int r = ops->lookup(d->fs, &ctx, parent, name, &e);

	cr_assert_eq(r, 0, "lookup %s -> %d", name, r);
	return e.nodeid;
}

static uint64_t mkdir_on(struct side *d, uint64_t parent, const char *name)
{
	struct fuse_mkdir_in in = { .mode = 0755 };
	struct fuse_entry_out e;

	cr_assert_eq(ops->mkdir(d->fs, &ctx, parent, name, &in, &e), 0, "mkdir %s", name);
	return e.nodeid;
}

static uint64_t create_on(struct side *d, uint64_t parent, const char *name, uint32_t flags,
			  uint64_t *fh)
{
	struct fuse_create_in in = { .flags = flags, .mode = S_IFREG | 0644 };
	struct fuse_entry_out e;
	struct fuse_open_out o;

	cr_assert_eq(ops->create(d->fs, &ctx, parent, name, &in, &e, &o), 0, "create %s", name);
	if (fh) {
		*fh = o.fh;
	} else {
		struct fuse_release_in ri = { .fh = o.fh };
		cr_assert_eq(ops->release(d->fs, &ctx, e.nodeid, &ri), 0);
	}
	return e.nodeid;
}

static uint64_t open_on(struct side *d, uint64_t nodeid, uint32_t flags)
{
	struct fuse_open_out o;

	cr_assert_eq(ops->open(d->fs, &ctx, nodeid, flags, &o), 0);
	return o.fh;
}

static int write_on(struct side *d, uint64_t nodeid, uint64_t fh, uint64_t off, const char *data)
{
	size_t len = strlen(data);
	struct iovec v = { (void *)data, len };
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)len };
	struct vfsd_reader r;

	cr_assert_eq(vfsd_reader_init(&r, &v, 1), 0);
	return ops->write(d->fs, &ctx, nodeid, &in, &r);
}

static int read_on(struct side *d, uint64_t nodeid, uint64_t fh, uint64_t off, char *out,
		   size_t room)
{
	struct iovec v = { out, room - 1 };
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = (uint32_t)(room - 1) };
	struct vfsd_writer w;
	int n;

	cr_assert_eq(vfsd_writer_init(&w, &v, 1), 0);
	n = ops->read(d->fs, &ctx, nodeid, &in, &w);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static int getattr_on(struct side *d, uint64_t nodeid, struct fuse_attr_out *ao)
{
	struct fuse_attr_out tmp;

	return ops->getattr(d->fs, &ctx, nodeid, NULL, ao ? ao : &tmp);
}

static void host_write(const char *name, const char *data)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "create %s", name);
	cr_assert_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void host_read(const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	cr_assert_geq(fd, 0, "open %s", name);
	n = read(fd, buf, size - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
}

static void counts(struct side *d, size_t *inodes, size_t *handles)
{
	vfsd_passthrough_counts(d->fs, inodes, handles);
}

/* ---- tests ---- */

Test(mig, round_trip_everything)
{
	struct vfsd_migration_stats st;
	struct membuf b;
	char buf[256];
	size_t si, sh, di, dh;

	side_new(&src, NULL);
	side_init(&src);
	/* a file with data, open read-write */
	uint64_t d = mkdir_on(&src, FUSE_ROOT_ID, "d");
	uint64_t fh_f;
	uint64_t f = create_on(&src, d, "f", O_RDWR, &fh_f);
	cr_assert_eq(write_on(&src, f, fh_f, 0, "hello world"), 11);
	/* the same file through an O_APPEND handle */
	uint64_t fh_app = open_on(&src, f, O_WRONLY | O_APPEND);
	/* a hard link with the recorded name removed: travels as a path */
	uint64_t sub = mkdir_on(&src, FUSE_ROOT_ID, "sub");
	uint64_t a = create_on(&src, FUSE_ROOT_ID, "a", O_RDWR, NULL);
	struct fuse_entry_out e;
	cr_assert_eq(ops->link(src.fs, &ctx, a, sub, "b", &e), 0);
	cr_assert_eq(lookup_on(&src, FUSE_ROOT_ID, "a"), a);
	cr_assert_eq(ops->unlink(src.fs, &ctx, FUSE_ROOT_ID, "a"), 0);
	/* an orphan: unlinked while open */
	uint64_t fh_o;
	uint64_t o = create_on(&src, FUSE_ROOT_ID, "orphan", O_RDWR, &fh_o);
	cr_assert_eq(write_on(&src, o, fh_o, 0, "still here"), 10);
	cr_assert_eq(ops->unlink(src.fs, &ctx, FUSE_ROOT_ID, "orphan"), 0);
	/* a renamed directory: its children follow */
	cr_assert_eq(ops->rename(src.fs, &ctx, FUSE_ROOT_ID, "d", FUSE_ROOT_ID, "d2", 0), 0);
	/* a directory handle in the middle of a listing */
	uint64_t ld = mkdir_on(&src, FUSE_ROOT_ID, "list");
	for (int k = 0; k < 10; k++) {
		snprintf(buf, sizeof(buf), "list/e%02d", k);
		host_write(buf, "");
	}
	struct fuse_open_out oo;
	static char dmem[4096];
	struct vfsd_dirbuf db = { .buf = dmem, .size = 96 };
	cr_assert_eq(ops->opendir(src.fs, &ctx, ld, 0, &oo), 0);
	struct fuse_read_in ri = { .fh = oo.fh, .offset = 0, .size = 96 };
	cr_assert_eq(ops->readdir(src.fs, &ctx, ld, &ri, false, &db), 0);
	uint64_t cookie = 0;
	int seen = 0;
	for (size_t off = 0; off < db.len; seen++) {
		const struct fuse_dirent *de = (const void *)(db.buf + off);
		cookie = de->off;
		off += FUSE_DIRENT_SIZE(de);
	}
	cr_assert_gt(seen, 0);
	cr_assert_lt(seen, 12);

	counts(&src, &si, &sh);
	save(&src, &b);
	cr_assert(strstr(b.p, "\"required_features\":[\"orphans\"]"), "%s", b.p);
	cr_assert(strstr(b.p, "\"path\":\"sub/b\""), "%s", b.p);
	cr_assert(strstr(b.p, "\"orphan\":"), "%s", b.p);
	cr_assert(strstr(b.p, "\"path\":\".vfsd-orphans/"), "%s", b.p);

	/* Saving destroyed nothing: the source still serves everything. */
	counts(&src, &di, &dh);
	cr_assert_eq(di, si);
	cr_assert_eq(dh, sh);
	cr_assert_eq(read_on(&src, o, fh_o, 0, buf, sizeof(buf)), 10);
	cr_assert(src.s.initialized);

	side_new(&dst, NULL);
	cr_assert(!dst.s.initialized);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	vfsd_migration_last_stats(dst.m, &st);
	cr_assert_eq(st.invalid, 0);

	/* The session: INIT options, tables, counters. */
	cr_assert(dst.s.initialized);
	cr_assert_eq(memcmp(&dst.s.conn, &src.s.conn, sizeof(dst.s.conn)), 0);
	counts(&dst, &di, &dh);
	cr_assert_eq(dh, sh);
	cr_assert_eq(read_on(&dst, f, fh_f, 0, buf, sizeof(buf)), 11);
	cr_assert_str_eq(buf, "hello world");
	cr_assert_eq(read_on(&dst, o, fh_o, 0, buf, sizeof(buf)), 10, "the orphan's data");
	cr_assert_str_eq(buf, "still here");
	struct fuse_attr_out ao;
	cr_assert_eq(getattr_on(&dst, a, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 1);
	cr_assert_eq(getattr_on(&dst, d, NULL), 0);
	cr_assert_eq(lookup_on(&dst, d, "f"), f, "the child of the renamed dir, same id");
	/* O_APPEND survives: a write at offset 0 lands at the end. */
	cr_assert_eq(write_on(&dst, f, fh_app, 0, "!"), 1);
	host_read("d2/f", buf, sizeof(buf));
	cr_assert_str_eq(buf, "hello world!");
	/* The directory handle continues after its cookie. */
	static char big[65536];
	struct vfsd_dirbuf db2 = { .buf = big, .size = sizeof(big) };
	ri = (struct fuse_read_in){ .fh = oo.fh, .offset = cookie, .size = sizeof(big) };
	cr_assert_eq(ops->readdir(dst.fs, &ctx, ld, &ri, false, &db2), 0);
	int rest = 0;
	for (size_t off = 0; off < db2.len; rest++)
		off += FUSE_DIRENT_SIZE((const struct fuse_dirent *)(db2.buf + off));
	cr_assert_eq(seen + rest, 12, "10 entries plus . and ..: %d + %d", seen, rest);
	/* New ids continue above the source's. */
	uint64_t n = create_on(&dst, FUSE_ROOT_ID, "new", O_RDWR, NULL);
	cr_assert_gt(n, ld);
	free(b.p);
}

Test(mig, never_initialised_session)
{
	struct membuf b;

	side_new(&src, NULL);
	save(&src, &b);
	cr_assert(strstr(b.p, "\"initialized\":false"));
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert(!dst.s.initialized);
	free(b.p);
}

Test(mig, file_handles_mode)
{
	struct vfsd_migration_config cfg = { .mode = VFSD_STATE_MODE_FILE_HANDLES };
	struct membuf b;
	char buf[64];

	side_new(&src, &cfg);
	side_init(&src);
	uint64_t d = mkdir_on(&src, FUSE_ROOT_ID, "d");
	uint64_t fh;
	uint64_t f = create_on(&src, d, "f", O_RDWR, &fh);
	cr_assert_eq(write_on(&src, f, fh, 0, "fh data"), 7);
	vfsd_migration_logging_changed(src.m, true); /* prepare computes the handles */
	save(&src, &b);
	cr_assert(strstr(b.p, "\"migration_mode\":\"file-handles\""));
	cr_assert(strstr(b.p, "\"file_handle\":"));
	/* Renamed on the host after the save: a handle does not care. */
	cr_assert_eq(renameat(dirfd_, "d", dirfd_, "moved"), 0);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(read_on(&dst, f, fh, 0, buf, sizeof(buf)), 7);
	cr_assert_eq(getattr_on(&dst, d, NULL), 0);
	free(b.p);
}

Test(mig, verify_handles_catches_a_replaced_file)
{
	struct vfsd_migration_config cfg = { .verify_handles = true };
	struct membuf b;

	side_new(&src, &cfg);
	side_init(&src);
	host_write("x", "one");
	lookup_on(&src, FUSE_ROOT_ID, "x");
	save(&src, &b);
	cr_assert(strstr(b.p, "\"migration_mode\":\"find-paths\""));
	cr_assert(strstr(b.p, "\"file_handle\":"));
	/* Replaced under the same name by another file: refused, not silently opened. */
	cr_assert_eq(unlinkat(dirfd_, "x", 0), 0);
	host_write("x", "two");
	side_new(&dst, NULL);
	cr_assert_lt(load(&dst, &b), 0);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "differs"), "%s",
		  vfsd_migration_last_error(dst.m));
	cr_assert(!dst.s.initialized);
	free(b.p);
}

Test(mig, confirm_paths_follows_a_host_rename)
{
	struct vfsd_migration_config confirm = { .confirm_paths = true };
	struct membuf b;

	/* Without confirm: the stale name goes out and the destination (abort) fails. */
	side_new(&src, NULL);
	side_init(&src);
	host_write("x", "data");
	uint64_t x = lookup_on(&src, FUSE_ROOT_ID, "x");
	cr_assert_eq(renameat(dirfd_, "x", dirfd_, "y"), 0); /* behind vfsd's back */
	save(&src, &b);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), -ENOENT, "%s", vfsd_migration_last_error(dst.m));
	free(b.p);
	side_free(&dst);
	side_free(&src);

	/* With confirm: the name is re-checked at save time and re-derived as a path. */
	side_new(&src, &confirm);
	side_init(&src);
	x = lookup_on(&src, FUSE_ROOT_ID, "y");
	cr_assert_eq(renameat(dirfd_, "y", dirfd_, "z"), 0);
	save(&src, &b);
	cr_assert(strstr(b.p, "\"path\":\"z\""), "%s", b.p);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, x, NULL), 0);
	free(b.p);
}

Test(mig, corrupted_blob_changes_nothing)
{
	struct membuf b;
	size_t di, dh;
	char *p;

	side_new(&src, NULL);
	side_init(&src);
	uint64_t fh;
	create_on(&src, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	save(&src, &b);

	side_new(&dst, NULL);
	uint64_t mine = create_on(&dst, FUSE_ROOT_ID, "mine", O_RDWR, NULL);
	p = strstr(b.p, "\"name\":\"f\"");
	cr_assert_not_null(p);
	p[8] = 'g'; /* the checksum no longer matches */
	cr_assert_eq(load(&dst, &b), -EBADMSG);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "line "), "%s",
		  vfsd_migration_last_error(dst.m));
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "checksum"), "%s",
		  vfsd_migration_last_error(dst.m));
	/* Nothing applied: the destination's own session is as it was. */
	cr_assert(!dst.s.initialized);
	counts(&dst, &di, &dh);
	cr_assert_eq(di, 2);
	cr_assert_eq(dh, 0);
	cr_assert_eq(getattr_on(&dst, mine, NULL), 0);
	/* Truncated: refused too. */
	p[8] = 'f';
	b.len -= 10;
	cr_assert_eq(load(&dst, &b), -EBADMSG);
	cr_assert(!dst.s.initialized);
	/* And the intact blob then loads (replacing the destination's session). */
	b.len += 10;
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert(dst.s.initialized);
	counts(&dst, &di, &dh); /* replaced by the source's: root, f and its handle */
	cr_assert_eq(di, 2);
	cr_assert_eq(dh, 1);
	free(b.p);
}

Test(mig, missing_file_abort_vs_guest_error)
{
	struct vfsd_migration_config lenient = { .on_error_guest_error = true };
	struct membuf b;
	char buf[64];

	side_new(&src, NULL);
	side_init(&src);
	host_write("gone", "x");
	host_write("kept", "kept");
	uint64_t g = lookup_on(&src, FUSE_ROOT_ID, "gone");
	uint64_t k = lookup_on(&src, FUSE_ROOT_ID, "kept");
	uint64_t gfh = open_on(&src, g, O_RDONLY);
	uint64_t kfh = open_on(&src, k, O_RDONLY);
	save(&src, &b);
	cr_assert_eq(unlinkat(dirfd_, "gone", 0), 0);

	/* abort: the load fails and changes nothing */
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), -ENOENT);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "gone"), "%s",
		  vfsd_migration_last_error(dst.m));
	cr_assert(!dst.s.initialized);
	side_free(&dst);

	/* guest-error: it loads; only the missing inode (and its handle) give EIO */
	side_new(&dst, &lenient);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, g, NULL), -EIO);
	cr_assert_eq(read_on(&dst, g, gfh, 0, buf, sizeof(buf)), -EIO);
	cr_assert_eq(read_on(&dst, k, kfh, 0, buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "kept");
	free(b.p);
}

static int epipe_after(void *opaque, const void *buf, size_t len)
{
	size_t *left = opaque;

	if (*left < len)
		return -EPIPE;
	*left -= len;
	return 0;
}

Test(mig, save_epipe_changes_nothing)
{
	size_t left = 100, si, sh, ai, ah;
	char buf[32];

	side_new(&src, NULL);
	side_init(&src);
	uint64_t fh;
	uint64_t f = create_on(&src, FUSE_ROOT_ID, "f", O_RDWR, &fh);
	cr_assert_eq(write_on(&src, f, fh, 0, "abc"), 3);
	for (int k = 0; k < 2000; k++) {
		snprintf(buf, sizeof(buf), "n%04d", k);
		host_write(buf, "");
		lookup_on(&src, FUSE_ROOT_ID, buf);
	}
	counts(&src, &si, &sh);
	cr_assert_eq(vfsd_migration_save_cb(src.m, epipe_after, &left), -EPIPE);
	counts(&src, &ai, &ah);
	cr_assert_eq(ai, si);
	cr_assert_eq(ah, sh);
	cr_assert(src.s.initialized);
	cr_assert_eq(read_on(&src, f, fh, 0, buf, sizeof(buf)), 3);
}

Test(mig, logging_on_off_on_then_save)
{
	struct membuf b;

	side_new(&src, NULL);
	side_init(&src);
	host_write("x", "");
	lookup_on(&src, FUSE_ROOT_ID, "x");
	vfsd_migration_logging_changed(src.m, true);
	vfsd_migration_logging_changed(src.m, false); /* cancelled: never blocks */
	vfsd_migration_logging_changed(src.m, true);
	vfsd_migration_logging_changed(src.m, true);
	save(&src, &b);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	free(b.p);
}

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Not a timed assertion: prints what 10,000 inodes cost (docs/migration.md). */
Test(mig, ten_thousand_inodes)
{
	struct vfsd_migration_stats st;
	struct membuf b;
	char name[32];
	uint64_t t0, t_save, t_load;
	const int n = 10000;

	side_new(&src, NULL);
	side_init(&src);
	for (int k = 0; k < n / 100; k++) {
		snprintf(name, sizeof(name), "dir%03d", k);
		uint64_t dd = mkdir_on(&src, FUSE_ROOT_ID, name);
		for (int j = 0; j < 99; j++) {
			snprintf(name, sizeof(name), "file-%03d-%02d", k, j);
			create_on(&src, dd, name, O_RDWR, NULL);
		}
	}
	vfsd_migration_logging_changed(src.m, true);
	t0 = ns_now();
	save(&src, &b);
	t_save = ns_now() - t0;
	side_free(&src); /* fds: the source's O_PATH fds are not needed any more */
	side_new(&dst, NULL);
	t0 = ns_now();
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	t_load = ns_now() - t0;
	vfsd_migration_last_stats(dst.m, &st);
	cr_assert_eq(st.inodes, (uint64_t)n + 1);
	fprintf(stderr,
		"migration of %d inodes: save %.1f ms (%zu bytes), load %.1f ms "
		"(read+validate %.1f ms, re-open+commit %.1f ms)\n",
		n + 1, t_save / 1e6, b.len, t_load / 1e6, st.collect_ns / 1e6, st.apply_ns / 1e6);
	free(b.p);
}

static int count_dirents(const struct vfsd_dirbuf *db, bool plus)
{
	int n = 0;

	for (size_t off = 0; off < db->len; n++) {
		if (plus) {
			const struct fuse_direntplus *dp = (const void *)(db->buf + off);
			off += FUSE_DIRENTPLUS_SIZE(dp);
		} else {
			off += FUSE_DIRENT_SIZE((const struct fuse_dirent *)(db->buf + off));
		}
	}
	return n;
}

/* A listing read to its end on the source, then rewound on the destination. */
Test(mig, directory_rewind_after_eof_across_a_migration)
{
	struct membuf b = { 0 };
	struct fuse_open_out oo;
	static char big[65536];
	char name[64];

	side_new(&src, NULL);
	uint64_t ld = mkdir_on(&src, FUSE_ROOT_ID, "list");
	/* 200 entries: ext4 hashes the directory, where a rewind after EOF used to fail */
	for (int k = 0; k < 200; k++) {
		snprintf(name, sizeof(name), "list/entry-with-a-longer-name-%03d", k);
		host_write(name, "");
	}
	cr_assert_eq(ops->opendir(src.fs, &ctx, ld, 0, &oo), 0);
	struct vfsd_dirbuf db = { .buf = big, .size = sizeof(big) };
	struct fuse_read_in ri = { .fh = oo.fh, .offset = 0, .size = sizeof(big) };
	cr_assert_eq(ops->readdir(src.fs, &ctx, ld, &ri, false, &db), 0);
	cr_assert_eq(count_dirents(&db, false), 202);
	uint64_t eof = 0;
	for (size_t off = 0; off < db.len;) {
		const struct fuse_dirent *de = (const void *)(db.buf + off);
		eof = de->off;
		off += FUSE_DIRENT_SIZE(de);
	}
	/* the guest asks once more at the end and gets nothing */
	db.len = 0;
	ri.offset = eof;
	cr_assert_eq(ops->readdir(src.fs, &ctx, ld, &ri, false, &db), 0);
	cr_assert_eq(db.len, 0);

	save(&src, &b);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));

	/* the guest reads at the end once more on this side (nothing), then rewinds */
	db = (struct vfsd_dirbuf){ .buf = big, .size = sizeof(big) };
	ri = (struct fuse_read_in){ .fh = oo.fh, .offset = eof, .size = sizeof(big) };
	cr_assert_eq(ops->readdir(dst.fs, &ctx, ld, &ri, false, &db), 0);
	cr_assert_eq(db.len, 0);
	db = (struct vfsd_dirbuf){ .buf = big, .size = sizeof(big) };
	ri = (struct fuse_read_in){ .fh = oo.fh, .offset = 0, .size = sizeof(big) };
	cr_assert_eq(ops->readdir(dst.fs, &ctx, ld, &ri, false, &db), 0);
	cr_assert_eq(count_dirents(&db, false), 202, "after the rewind");
	free(b.p);
}

/* ---- lost inodes (state format 1.1) ---- */

/* The blob's inode record for @id, or NULL. */
static const char *record_of(const struct membuf *b, uint64_t id)
{
	char key[64];

	snprintf(key, sizeof(key), "{\"kind\":\"inode\",\"id\":%llu,", (unsigned long long)id);
	return strstr(b->p, key);
}

/* Whether the record of @id (up to its end of line) contains @what. */
static bool record_has(const struct membuf *b, uint64_t id, const char *what)
{
	const char *r = record_of(b, id), *nl, *hit;

	if (!r)
		return false;
	nl = strchr(r, '\n');
	hit = strstr(r, what);
	return hit && nl && hit < nl;
}

Test(mig, rmdir_while_looked_up_travels_as_lost_unlinked)
{
	struct vfsd_migration_stats st;
	struct membuf b;
	size_t di, dh, n;

	side_new(&src, NULL);
	side_init(&src);
	/* a shell's working directory, removed from another shell of the guest */
	uint64_t cwd = mkdir_on(&src, FUSE_ROOT_ID, "cwd");
	cr_assert_eq(lookup_on(&src, FUSE_ROOT_ID, "cwd"), cwd); /* nlookup 2 */
	cr_assert_eq(ops->rmdir(src.fs, &ctx, FUSE_ROOT_ID, "cwd"), 0);
	host_write("kept", "kept");
	uint64_t k = lookup_on(&src, FUSE_ROOT_ID, "kept");
	save(&src, &b);
	vfsd_migration_last_stats(src.m, &st);
	cr_assert_eq(st.lost, 1);
	cr_assert_eq(st.skipped, 0);
	cr_assert(strstr(b.p, "\"version\":\"1.1\""), "%s", b.p);
	cr_assert(strstr(b.p, "\"required_features\":[\"lost\"]"), "%s", b.p);
	cr_assert(record_has(&b, cwd, "\"nlookup\":2,\"type\":\"dir\",\"lost\":\"unlinked\""), "%s",
		  b.p);
	cr_assert_not(record_has(&b, cwd, "\"parent\""), "%s", b.p);

	/* abort accepts it: the guest removed it itself and has no name for it */
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	vfsd_migration_last_stats(dst.m, &st);
	cr_assert_eq(st.lost, 1);
	cr_assert_eq(st.invalid, 0);
	cr_assert_eq(getattr_on(&dst, cwd, NULL), -EIO, "a placeholder");
	cr_assert_eq(getattr_on(&dst, k, NULL), 0);
	counts(&dst, &di, &dh);
	cr_assert_eq(di, 3, "root, kept and the placeholder");
	/* its lookup count is the source's: two FORGETs of one make it go */
	ops->forget(dst.fs, cwd, 1);
	cr_assert_eq(getattr_on(&dst, cwd, NULL), -EIO, "one lookup left");
	ops->forget(dst.fs, cwd, 1);
	counts(&dst, &n, NULL);
	cr_assert_eq(n, 2, "forgotten");
	cr_assert_neq(getattr_on(&dst, cwd, NULL), 0);
	/* new ids do not reuse its id */
	cr_assert_gt(create_on(&dst, FUSE_ROOT_ID, "new", O_RDWR, NULL), cwd);
	free(b.p);
}

/*
 * A hard link whose other name the host removes: the stale name cannot be
 * found again, so the inode is lost "not-found".
 */
static uint64_t make_not_found(struct side *d)
{
	uint64_t x;

	host_write("x", "data");
	cr_assert_eq(linkat(dirfd_, "x", dirfd_, "y", 0), 0);
	x = lookup_on(d, FUSE_ROOT_ID, "x");
	cr_assert_eq(ops->unlink(d->fs, &ctx, FUSE_ROOT_ID, "x"), 0); /* y remains: stale */
	cr_assert_eq(unlinkat(dirfd_, "y", 0), 0);		      /* behind vfsd's back */
	return x;
}

Test(mig, lost_not_found_fails_abort_and_loads_as_guest_error)
{
	struct vfsd_migration_config lenient = { .on_error_guest_error = true };
	struct vfsd_migration_stats st;
	struct membuf b, b2;
	size_t di, dh;

	side_new(&src, NULL);
	side_init(&src);
	uint64_t x = make_not_found(&src);
	host_write("kept", "kept");
	uint64_t k = lookup_on(&src, FUSE_ROOT_ID, "kept");
	save(&src, &b);
	cr_assert(record_has(&b, x, "\"lost\":\"not-found\""), "%s", b.p);
	cr_assert(strstr(b.p, "\"required_features\":[\"lost\"]"), "%s", b.p);

	/* abort: refused with the reason, and nothing changed */
	side_new(&dst, NULL);
	uint64_t mine = create_on(&dst, FUSE_ROOT_ID, "mine", O_RDWR, NULL);
	cr_assert_eq(load(&dst, &b), -ENOENT);
	char want[64];
	snprintf(want, sizeof(want), "inode %llu: lost on the source (not-found)",
		 (unsigned long long)x);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), want), "%s",
		  vfsd_migration_last_error(dst.m));
	cr_assert(!dst.s.initialized);
	counts(&dst, &di, &dh);
	cr_assert_eq(di, 2);
	cr_assert_eq(getattr_on(&dst, mine, NULL), 0);
	side_free(&dst);

	/* guest-error: loads; the lost inode gives EIO, the rest works */
	side_new(&dst, &lenient);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	vfsd_migration_last_stats(dst.m, &st);
	cr_assert_eq(st.lost, 1);
	cr_assert(dst.s.initialized);
	cr_assert_eq(getattr_on(&dst, x, NULL), -EIO);
	cr_assert_eq(getattr_on(&dst, k, NULL), 0);

	/* migrated on once more, the placeholder is lost "not-found" again */
	save(&dst, &b2);
	cr_assert(record_has(&b2, x, "\"lost\":\"not-found\""), "%s", b2.p);
	cr_assert_not(record_has(&b2, x, "\"ino\""), "%s", b2.p);
	free(b.p);
	free(b2.p);
}

Test(mig, handle_on_a_lost_inode_fails_abort)
{
	struct vfsd_migration_config lenient = { .on_error_guest_error = true };
	struct membuf b;
	struct fuse_open_out oo;
	static char dmem[4096];
	struct vfsd_dirbuf db = { .buf = dmem, .size = sizeof(dmem) };

	side_new(&src, NULL);
	side_init(&src);
	/* a directory still open (a listing in progress) when the guest removes it */
	uint64_t d = mkdir_on(&src, FUSE_ROOT_ID, "d");
	cr_assert_eq(ops->opendir(src.fs, &ctx, d, 0, &oo), 0);
	cr_assert_eq(ops->rmdir(src.fs, &ctx, FUSE_ROOT_ID, "d"), 0);
	save(&src, &b);
	cr_assert(record_has(&b, d, "\"lost\":\"unlinked\""), "%s", b.p);
	char h[64];
	snprintf(h, sizeof(h), "{\"kind\":\"handle\",\"fh\":%llu,\"inode\":%llu,",
		 (unsigned long long)oo.fh, (unsigned long long)d);
	cr_assert(strstr(b.p, h), "the handle is carried: %s", b.p);

	/* abort: unlinked is fine, but not with a handle still open on it */
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), -ENOENT);
	char want[64];
	snprintf(want, sizeof(want), "handle %llu: its inode %llu is lost",
		 (unsigned long long)oo.fh, (unsigned long long)d);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), want), "%s",
		  vfsd_migration_last_error(dst.m));
	cr_assert(!dst.s.initialized);
	side_free(&dst);

	/* guest-error: the handle is there and gives EIO */
	side_new(&dst, &lenient);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	struct fuse_read_in ri = { .fh = oo.fh, .offset = 0, .size = sizeof(dmem) };
	cr_assert_eq(ops->readdir(dst.fs, &ctx, d, &ri, false, &db), -EIO);
	struct fuse_release_in rel = { .fh = oo.fh };
	cr_assert_eq(ops->releasedir(dst.fs, &ctx, d, &rel), 0);
	free(b.p);
}

Test(mig, a_name_in_a_lost_directory_is_no_location)
{
	struct vfsd_migration_config lenient = { .on_error_guest_error = true };
	struct vfsd_migration_config confirm = { .confirm_paths = true };
	struct membuf b;

	/* vfsd knows d/f; the host moves f out, then the guest removes the empty d */
	side_new(&src, NULL);
	side_init(&src);
	uint64_t d = mkdir_on(&src, FUSE_ROOT_ID, "d");
	uint64_t f = create_on(&src, d, "f", O_RDWR, NULL);
	cr_assert_eq(renameat(dirfd_, "d/f", dirfd_, "f2"), 0);
	cr_assert_eq(ops->rmdir(src.fs, &ctx, FUSE_ROOT_ID, "d"), 0);
	save(&src, &b);
	cr_assert(record_has(&b, d, "\"lost\":\"unlinked\""), "%s", b.p);
	/* not "parent":d (a reader refuses a child of a lost inode) but lost itself */
	cr_assert(record_has(&b, f, "\"lost\":\"not-found\""), "%s", b.p);
	side_new(&dst, &lenient);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, f, NULL), -EIO);
	free(b.p);
	side_free(&dst);
	side_free(&src);

	/* with confirm, the name is checked, fails, and f is found again by its path */
	cr_assert_eq(renameat(dirfd_, "f2", dirfd_, "f3"), 0);
	cr_assert_eq(mkdirat(dirfd_, "e", 0755), 0);
	side_new(&src, &confirm);
	side_init(&src);
	d = lookup_on(&src, FUSE_ROOT_ID, "e");
	host_write("e/g", "g");
	f = lookup_on(&src, d, "g");
	cr_assert_eq(renameat(dirfd_, "e/g", dirfd_, "g2"), 0);
	cr_assert_eq(ops->rmdir(src.fs, &ctx, FUSE_ROOT_ID, "e"), 0);
	save(&src, &b);
	cr_assert(record_has(&b, d, "\"lost\":\"unlinked\""), "%s", b.p);
	cr_assert(record_has(&b, f, "\"path\":\"g2\""), "%s", b.p);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, f, NULL), 0);
	free(b.p);
}

Test(mig, unlocated_with_a_file_handle_is_not_lost)
{
	struct vfsd_migration_config cfg = { .mode = VFSD_STATE_MODE_FILE_HANDLES };
	struct membuf b;

	side_new(&src, &cfg);
	side_init(&src);
	uint64_t d = mkdir_on(&src, FUSE_ROOT_ID, "d");
	cr_assert_eq(ops->rmdir(src.fs, &ctx, FUSE_ROOT_ID, "d"), 0);
	vfsd_migration_logging_changed(src.m, true); /* prepare computes the handles */
	save(&src, &b);
	/* its file handle still describes it: handle-only, and "lost" is not declared */
	cr_assert(record_has(&b, d, "\"file_handle\":"), "%s", b.p);
	cr_assert_not(record_has(&b, d, "\"lost\""), "%s", b.p);
	cr_assert(strstr(b.p, "\"required_features\":[\"file-handles\"]"), "%s", b.p);
	free(b.p);
}

/*
 * Only the second pass confirms names: one that fails there and cannot be
 * found again is known to have no location only after a header without
 * "lost" went out. It is left out (as format 1.0 did); the save succeeds.
 */
Test(mig, confirm_failure_after_the_header_is_left_out)
{
	struct vfsd_migration_config confirm = { .confirm_paths = true };
	struct vfsd_migration_stats st;
	struct membuf b;

	side_new(&src, &confirm);
	side_init(&src);
	host_write("x", "data");
	uint64_t x = lookup_on(&src, FUSE_ROOT_ID, "x");
	host_write("kept", "kept");
	uint64_t k = lookup_on(&src, FUSE_ROOT_ID, "kept");
	cr_assert_eq(unlinkat(dirfd_, "x", 0), 0); /* behind vfsd's back */
	save(&src, &b);
	vfsd_migration_last_stats(src.m, &st);
	cr_assert_eq(st.skipped, 1);
	cr_assert_eq(st.lost, 0);
	cr_assert_null(record_of(&b, x), "%s", b.p);
	cr_assert(strstr(b.p, "\"required_features\":[]"), "%s", b.p);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, k, NULL), 0);
	free(b.p);
}

/*
 * A load past PIPE_AFTER inodes applies them on a second thread through a
 * ring (migration.c, "The pipeline"); 3,000 inodes go round that ring more
 * than once. Every inode must come back as itself, and a failure past the
 * ring's start must still be the first failing record's, with nothing
 * applied, or a placeholder under guest-error.
 */
Test(mig, big_load_through_the_pipeline)
{
	struct vfsd_migration_config lenient = { .on_error_guest_error = true };
	static uint64_t ids[3000];
	struct fuse_attr_out ao;
	struct membuf b;
	char name[32];
	size_t di, dh;
	const int n = 3000;
	struct stat st;

	side_new(&src, NULL);
	side_init(&src);
	for (int k = 0; k < n / 100; k++) {
		snprintf(name, sizeof(name), "d%02d", k);
		uint64_t dd = mkdir_on(&src, FUSE_ROOT_ID, name);
		for (int j = 0; j < 100; j++) {
			snprintf(name, sizeof(name), "f%02d-%02d", k, j);
			ids[k * 100 + j] = create_on(&src, dd, name, O_RDWR, NULL);
		}
	}
	save(&src, &b);
	side_free(&src);

	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	counts(&dst, &di, &dh);
	cr_assert_eq(di, (size_t)n + n / 100 + 1);
	for (int k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "d%02d/f%02d-%02d", k / 100, k / 100, k % 100);
		cr_assert_eq(fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW), 0);
		cr_assert_eq(getattr_on(&dst, ids[k], &ao), 0, "%s", name);
		cr_assert_eq(ao.attr.ino, st.st_ino, "%s came back as another file", name);
	}
	side_free(&dst);

	/* One file gone on the host, far past the ring's start: abort fails with it. */
	cr_assert_eq(unlinkat(dirfd_, "d25/f25-50", 0), 0);
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), -ENOENT);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "f25-50"), "%s",
		  vfsd_migration_last_error(dst.m));
	counts(&dst, &di, &dh);
	cr_assert_eq(di, 1, "nothing applied");
	side_free(&dst);

	/* guest-error: it loads; that one inode alone gives EIO. */
	side_new(&dst, &lenient);
	cr_assert_eq(load(&dst, &b), 0, "%s", vfsd_migration_last_error(dst.m));
	cr_assert_eq(getattr_on(&dst, ids[2550], NULL), -EIO);
	cr_assert_eq(getattr_on(&dst, ids[2549], NULL), 0);
	cr_assert_eq(getattr_on(&dst, ids[2551], NULL), 0);
	side_free(&dst);

	/* A corrupted name past the ring's start is the checksum error it is. */
	char *p = strstr(b.p, "\"name\":\"f28-00\"");
	cr_assert_not_null(p);
	p[9] = 'g';
	side_new(&dst, NULL);
	cr_assert_eq(load(&dst, &b), -EBADMSG);
	cr_assert(strstr(vfsd_migration_last_error(dst.m), "checksum"), "%s",
		  vfsd_migration_last_error(dst.m));
	free(b.p);
}
