/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vfsd/chain_io.h"
#include "vfsd/io.h"
#include "vfsd/inode_table.h"
#include "vfsd/passthrough.h"
#include "vfsd/util.h"

static char dir[64];
static int dirfd_ = -1;
static struct vfsd_passthrough *fs;
static struct vfsd_io *io;
static struct vfsd_fs_ctx ctx;
static const struct vfsd_fs_ops *ops = &vfsd_passthrough_ops;
static int fds_before;

/* Open fds of this process: every test checks that the fs closes all it opened. */
static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void setup(void)
{
#ifdef VFSD_TEST_FD_BUDGET
	/* The same tests with every file held by its name (no fd): see inode_table.h. */
	vfsd_inode_fd_budget_set(VFSD_TEST_FD_BUDGET);
#endif
	struct vfsd_passthrough_config cfg = { .entry_timeout = 1.0, .attr_timeout = 1.5 };

	fds_before = count_fds();
	strcpy(dir, "/tmp/vfsd-pt-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0777), 0);
	dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dirfd_, 0);
	cfg.shared_dir = dir;
	cr_assert_eq(vfsd_passthrough_new(&cfg, &fs), 0);
	cr_assert_eq(vfsd_io_new(32, true, &io), 0);
	ctx = (struct vfsd_fs_ctx){ .uid = 0, .gid = 0, .io = io };
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

/* Free everything the test made and check that no fd outlived it. */
static void finish(void)
{
	int after;

	vfsd_passthrough_free(fs);
	fs = NULL;
	vfsd_io_free(io);
	io = NULL;
	if (dirfd_ >= 0)
		close(dirfd_);
	dirfd_ = -1;
	after = count_fds();
	cr_assert_eq(after, fds_before, "fd leak: %d open before the test, %d after", fds_before,
		     after);
}

static void teardown(void)
{
	vfsd_passthrough_free(fs);
	vfsd_io_free(io);
	if (dirfd_ >= 0)
		close(dirfd_);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(pt, .init = setup, .fini = teardown, .timeout = 30.0);

/*
 * Criterion 2.4 does not report failures raised in .fini, so every test
 * body runs through this wrapper, which checks for leaked fds at the end.
 */
#define PT_TEST(name)                                                                              \
	static void name##_body(void);                                                             \
	Test(pt, name)                                                                             \
	{                                                                                          \
		name##_body();                                                                     \
		finish();                                                                          \
	}                                                                                          \
	static void name##_body(void)

/* ---- helpers ---- */

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

static struct stat host_stat(const char *name)
{
	struct stat st;
	cr_assert_eq(fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW), 0, "stat %s", name);
	return st;
}

static uint64_t lookup_ok(uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	struct fuse_entry_out tmp;
	if (!e)
		e = &tmp;
	int r = ops->lookup(fs, &ctx, parent, name, e);
	cr_assert_eq(r, 0, "lookup %s -> %d", name, r);
	cr_assert_gt(e->nodeid, FUSE_ROOT_ID);
	return e->nodeid;
}

static uint64_t create_ok(uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
			  struct fuse_entry_out *e, uint64_t *fh)
{
	struct fuse_create_in in = { .flags = flags, .mode = S_IFREG | mode };
	struct fuse_entry_out tmp;
	struct fuse_open_out o;
	if (!e)
		e = &tmp;
	int r = ops->create(fs, &ctx, parent, name, &in, e, &o);
	cr_assert_eq(r, 0, "create %s -> %d", name, r);
	if (fh)
		*fh = o.fh;
	return e->nodeid;
}

/* WRITE @data split over two iovecs (a real chain is rarely one buffer). */
static int pt_write_data(uint64_t nodeid, uint64_t fh, uint64_t off, const char *data)
{
	size_t len = strlen(data), half = len / 2;
	struct iovec v[2] = { { (void *)data, half }, { (void *)(data + half), len - half } };
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)len };
	struct vfsd_reader r;

	cr_assert_eq(vfsd_reader_init(&r, v, 2), 0);
	int n = ops->write(fs, &ctx, nodeid, &in, &r);
	if (n >= 0)
		cr_assert_eq(vfsd_reader_consumed(&r), len);
	return n;
}

/* READ into three iovecs of 3, 5 and @room - 8 bytes; returns bytes read, NUL-terminates. */
static int pt_read_data(uint64_t nodeid, uint64_t fh, uint64_t off, uint32_t size, char *out,
			size_t room)
{
	char a[3], b[5];
	static char c[8192];
	struct iovec v[3] = { { a, 3 }, { b, 5 }, { c, room - 8 } };
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
	struct vfsd_writer w;
	int n;

	cr_assert(room > 8 && room - 8 <= sizeof(c));
	cr_assert_eq(vfsd_writer_init(&w, v, 3), 0);
	n = ops->read(fs, &ctx, nodeid, &in, &w);
	if (n < 0)
		return n;
	cr_assert_eq(vfsd_writer_written(&w), (size_t)n);
	size_t k = 0;
	for (int i = 0; i < 3 && k < (size_t)n; i++) {
		size_t m = MIN(v[i].iov_len, (size_t)n - k);
		memcpy(out + k, v[i].iov_base, m);
		k += m;
	}
	out[n] = '\0';
	return n;
}

static void counts(size_t *inodes, size_t *handles)
{
	vfsd_passthrough_counts(fs, inodes, handles);
}

/* ---- lookup ---- */

PT_TEST(lookup_existing_and_missing)
{
	struct fuse_entry_out e;
	struct stat st;
	size_t ni;

	host_write("file", "abc");
	st = host_stat("file");
	lookup_ok(FUSE_ROOT_ID, "file", &e);
	cr_assert_eq(e.attr.ino, st.st_ino);
	cr_assert_eq(e.attr.size, 3);
	cr_assert(S_ISREG(e.attr.mode));
	cr_assert_eq(e.attr.mtime, (uint64_t)st.st_mtim.tv_sec);
	cr_assert_eq(e.attr.mtimensec, (uint32_t)st.st_mtim.tv_nsec);
	cr_assert_eq(e.attr.nlink, 1);
	cr_assert_eq(e.entry_valid, 1);
	cr_assert_eq(e.attr_valid, 1);
	cr_assert_eq(e.attr_valid_nsec, 500000000u);

	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "missing", &e), -ENOENT);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, ".", &e), -EINVAL);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "..", &e), -EINVAL);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "a/b", &e), -EINVAL);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "", &e), -EINVAL);
	cr_assert_eq(ops->lookup(fs, &ctx, 12345, "file", &e), -ENOENT, "unknown parent");
	/* A file is no parent. */
	uint64_t f = lookup_ok(FUSE_ROOT_ID, "file", NULL);
	cr_assert_eq(ops->lookup(fs, &ctx, f, "x", &e), -ENOTDIR);
	counts(&ni, NULL);
	cr_assert_eq(ni, 2);
}

PT_TEST(hard_links_and_repeated_lookups_share_an_id)
{
	struct fuse_attr_out ao;
	uint64_t a, b, c, again;
	size_t ni;

	host_write("f", "x");
	cr_assert_eq(linkat(dirfd_, "f", dirfd_, "g", 0), 0);
	a = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	b = lookup_ok(FUSE_ROOT_ID, "g", NULL);
	c = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	cr_assert_eq(a, b);
	cr_assert_eq(a, c);
	counts(&ni, NULL);
	cr_assert_eq(ni, 2);

	/* nlookup is 3: two forgets keep it, the third drops it. */
	ops->forget(fs, a, 2);
	cr_assert_eq(ops->getattr(fs, &ctx, a, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 2);
	ops->forget(fs, a, 1);
	cr_assert_eq(ops->getattr(fs, &ctx, a, NULL, &ao), -ENOENT);
	counts(&ni, NULL);
	cr_assert_eq(ni, 1);

	/* Ids are never reused. */
	again = lookup_ok(FUSE_ROOT_ID, "g", NULL);
	cr_assert_gt(again, a);
}

PT_TEST(symlink_not_followed)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	struct stat st;

	cr_assert_eq(symlinkat("/etc/passwd", dirfd_, "abs"), 0);
	cr_assert_eq(symlinkat("../..", dirfd_, "up"), 0);
	st = host_stat("abs");
	lookup_ok(FUSE_ROOT_ID, "abs", &e);
	cr_assert(S_ISLNK(e.attr.mode), "mode %o", e.attr.mode);
	cr_assert_eq(e.attr.ino, st.st_ino);
	cr_assert_eq(e.attr.size, strlen("/etc/passwd"));
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDONLY, &o), -ENXIO);

	uint64_t up = lookup_ok(FUSE_ROOT_ID, "up", &e);
	cr_assert(S_ISLNK(e.attr.mode));
	cr_assert_eq(ops->lookup(fs, &ctx, up, "etc", &e), -ENOTDIR);
}

PT_TEST(fifo_is_never_opened)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	struct fuse_create_in in = { .flags = O_RDWR, .mode = S_IFREG | 0644 };
	size_t nh;

	cr_assert_eq(mkfifoat(dirfd_, "fifo", 0666), 0);
	lookup_ok(FUSE_ROOT_ID, "fifo", &e);
	cr_assert(S_ISFIFO(e.attr.mode));
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDONLY, &o), -ENXIO);
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_WRONLY, &o), -ENXIO);
	cr_assert_eq(ops->opendir(fs, &ctx, e.nodeid, 0, &o), -ENOTDIR);
	/* CREATE without O_EXCL on an existing FIFO must not block either. */
	cr_assert_eq(ops->create(fs, &ctx, FUSE_ROOT_ID, "fifo", &in, &e, &o), -ENXIO);
	counts(NULL, &nh);
	cr_assert_eq(nh, 0);
}

/* ---- namespace ops ---- */

PT_TEST(mkdir_create_unlink_rmdir)
{
	struct fuse_mkdir_in mi = { .mode = 0750, .umask = 022 };
	struct fuse_entry_out e, e2;
	struct fuse_create_in ci = { .flags = O_RDWR | O_EXCL, .mode = S_IFREG | 0640 };
	struct fuse_open_out o;
	struct stat st;
	uint64_t d, f, fh;
	size_t ni, nh;

	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "d", &mi, &e), 0);
	d = e.nodeid;
	cr_assert(S_ISDIR(e.attr.mode));
	cr_assert_eq(e.attr.mode & 07777, 0750, "mode as sent, process umask is 0");
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "d", &mi, &e2), -EEXIST);
	cr_assert_eq(lookup_ok(FUSE_ROOT_ID, "d", NULL), d);

	f = create_ok(d, "f", O_RDWR | O_EXCL, 0640, &e, &fh);
	cr_assert(S_ISREG(e.attr.mode));
	cr_assert_eq(e.attr.mode & 07777, 0640);
	st = host_stat("d/f");
	cr_assert_eq(st.st_ino, e.attr.ino);
	cr_assert_eq(ops->create(fs, &ctx, d, "f", &ci, &e2, &o), -EEXIST);
	cr_assert_eq(lookup_ok(d, "f", NULL), f);
	counts(&ni, &nh);
	cr_assert_eq(ni, 3);
	cr_assert_eq(nh, 1);

	cr_assert_eq(ops->rmdir(fs, &ctx, FUSE_ROOT_ID, "d"), -ENOTEMPTY);
	cr_assert_eq(ops->unlink(fs, &ctx, d, "f"), 0);
	cr_assert_eq(ops->unlink(fs, &ctx, d, "f"), -ENOENT);
	cr_assert_eq(ops->lookup(fs, &ctx, d, "f", &e2), -ENOENT);
	/* The open handle still works on the unlinked file. */
	cr_assert_eq(pt_write_data(f, fh, 0, "still here"), 10);
	struct fuse_release_in ri = { .fh = fh };
	cr_assert_eq(ops->release(fs, &ctx, f, &ri), 0);
	cr_assert_eq(ops->unlink(fs, &ctx, FUSE_ROOT_ID, "d"), -EISDIR);
	cr_assert_eq(ops->rmdir(fs, &ctx, FUSE_ROOT_ID, "d"), 0);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "d", &e2), -ENOENT);
	cr_assert_eq(ops->rmdir(fs, &ctx, FUSE_ROOT_ID, ".."), -EINVAL);
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "a/b", &mi, &e2), -EINVAL);
}

PT_TEST(create_runs_as_the_caller)
{
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out e;
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	ctx.uid = 1000;
	ctx.gid = 1001;
	create_ok(FUSE_ROOT_ID, "mine", O_WRONLY, 0600, &e, NULL);
	cr_assert_eq(e.attr.uid, 1000);
	cr_assert_eq(e.attr.gid, 1001);
	st = host_stat("mine");
	cr_assert_eq(st.st_uid, 1000);
	cr_assert_eq(st.st_gid, 1001);
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "mydir", &mi, &e), 0);
	cr_assert_eq(e.attr.uid, 1000);
	cr_assert_eq(e.attr.gid, 1001);

	/* The credentials were restored: root creates as root again. */
	ctx.uid = 0;
	ctx.gid = 0;
	create_ok(FUSE_ROOT_ID, "rootfile", O_WRONLY, 0600, &e, NULL);
	cr_assert_eq(e.attr.uid, 0);
	cr_assert_eq(e.attr.gid, 0);
	/* ...and the thread still has its capabilities (it can chown). */
	cr_assert_eq(fchownat(dirfd_, "rootfile", 1234, 1234, 0), 0);

	/* DAC checks run as the caller: uid 1000 cannot create in a root 0755 dir. */
	cr_assert_eq(mkdirat(dirfd_, "rootonly", 0755), 0);
	uint64_t ro = lookup_ok(FUSE_ROOT_ID, "rootonly", NULL);
	ctx.uid = 1000;
	ctx.gid = 1000;
	struct fuse_create_in ci = { .flags = O_WRONLY, .mode = S_IFREG | 0644 };
	struct fuse_open_out o;
	cr_assert_eq(ops->create(fs, &ctx, ro, "x", &ci, &e, &o), -EACCES);
}

PT_TEST(rename_and_rename2)
{
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out e;
	char buf[64];
	uint64_t sub, a;

	host_write("a", "AAA");
	host_write("b", "BBB");
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "sub", &mi, &e), 0);
	sub = e.nodeid;
	a = lookup_ok(FUSE_ROOT_ID, "a", NULL);

	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "a", sub, "a2", 0), 0);
	host_read("sub/a2", buf, sizeof(buf));
	cr_assert_str_eq(buf, "AAA");
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, "a", &e), -ENOENT);
	cr_assert_eq(lookup_ok(sub, "a2", NULL), a, "the node id follows the inode");

	cr_assert_eq(ops->rename(fs, &ctx, sub, "a2", FUSE_ROOT_ID, "b", RENAME_NOREPLACE),
		     -EEXIST);
	cr_assert_eq(ops->rename(fs, &ctx, sub, "a2", FUSE_ROOT_ID, "b", RENAME_EXCHANGE), 0);
	host_read("b", buf, sizeof(buf));
	cr_assert_str_eq(buf, "AAA");
	host_read("sub/a2", buf, sizeof(buf));
	cr_assert_str_eq(buf, "BBB");
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "b", FUSE_ROOT_ID, "c", RENAME_NOREPLACE),
		     0);
	host_read("c", buf, sizeof(buf));
	cr_assert_str_eq(buf, "AAA");
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "d", RENAME_WHITEOUT),
		     -EINVAL);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "d", 0x100), -EINVAL);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "c", 999, "d", 0), -ENOENT);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "nope", FUSE_ROOT_ID, "d", 0), -ENOENT);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "x/y", 0), -EINVAL);
}

/* ---- symlinks, device nodes, hard links ---- */

static uint64_t symlink_ok(uint64_t parent, const char *name, const char *target,
			   struct fuse_entry_out *e)
{
	struct fuse_entry_out tmp;
	if (!e)
		e = &tmp;
	int r = ops->symlink(fs, &ctx, parent, name, target, e);
	cr_assert_eq(r, 0, "symlink %s -> %d", name, r);
	return e->nodeid;
}

/* READLINK into a buffer of @size; NUL-terminates on success. */
static int readlink_into(uint64_t nodeid, char *buf, size_t size)
{
	int n = ops->readlink(fs, &ctx, nodeid, buf, size);
	if (n >= 0) {
		cr_assert_lt((size_t)n, size);
		buf[n] = '\0';
	}
	return n;
}

static int mknod_as(uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
		    struct fuse_entry_out *e)
{
	struct fuse_mknod_in in = { .mode = mode, .rdev = rdev, .umask = 022 };

	return ops->mknod(fs, &ctx, parent, name, &in, e);
}

PT_TEST(symlink_then_readlink)
{
	static const char target[] = "../elsewhere/with space/file";
	struct fuse_entry_out e, e2;
	char buf[VFSD_PATH_MAX], host[VFSD_PATH_MAX];
	struct stat st;
	uint64_t l;
	ssize_t n;

	l = symlink_ok(FUSE_ROOT_ID, "lnk", target, &e);
	cr_assert(S_ISLNK(e.attr.mode), "mode %o", e.attr.mode);
	cr_assert_eq(e.attr.size, strlen(target));
	st = host_stat("lnk");
	cr_assert(S_ISLNK(st.st_mode));
	cr_assert_eq(e.attr.ino, st.st_ino);
	n = readlinkat(dirfd_, "lnk", host, sizeof(host));
	cr_assert_eq(n, (ssize_t)strlen(target));
	cr_assert_eq(memcmp(host, target, (size_t)n), 0);

	cr_assert_eq(readlink_into(l, buf, sizeof(buf)), (int)strlen(target));
	cr_assert_str_eq(buf, target);
	/* LOOKUP finds the same node, a symlink; it is never followed */
	cr_assert_eq(lookup_ok(FUSE_ROOT_ID, "lnk", &e2), l);
	cr_assert(S_ISLNK(e2.attr.mode));

	/* a buffer the target fills exactly cannot tell it from a truncated one */
	cr_assert_eq(readlink_into(l, buf, strlen(target) + 1), (int)strlen(target));
	cr_assert_eq(ops->readlink(fs, &ctx, l, buf, strlen(target)), -ENAMETOOLONG);

	/* absolute targets, and the longest there is */
	l = symlink_ok(FUSE_ROOT_ID, "abs", "/etc/passwd", NULL);
	cr_assert_eq(readlink_into(l, buf, sizeof(buf)), 11);
	cr_assert_str_eq(buf, "/etc/passwd");
	char *longest = malloc(VFSD_PATH_MAX);
	cr_assert_not_null(longest);
	memset(longest, 'x', VFSD_PATH_MAX - 1);
	for (size_t i = 100; i < VFSD_PATH_MAX - 1; i += 101)
		longest[i] = '/';
	longest[VFSD_PATH_MAX - 1] = '\0';
	l = symlink_ok(FUSE_ROOT_ID, "long", longest, NULL);
	cr_assert_eq(readlink_into(l, buf, sizeof(buf)), VFSD_PATH_MAX - 1);
	cr_assert_str_eq(buf, longest);
	free(longest);

	cr_assert_eq(ops->symlink(fs, &ctx, FUSE_ROOT_ID, "lnk", "x", &e2), -EEXIST);
	cr_assert_eq(ops->symlink(fs, &ctx, FUSE_ROOT_ID, "a/b", "x", &e2), -EINVAL);
	cr_assert_eq(ops->symlink(fs, &ctx, FUSE_ROOT_ID, "e", "", &e2), -EINVAL);
	cr_assert_eq(ops->symlink(fs, &ctx, 999, "x", "y", &e2), -ENOENT);
	cr_assert_eq(ops->readlink(fs, &ctx, 999, buf, sizeof(buf)), -ENOENT);
}

PT_TEST(readlink_of_non_symlinks)
{
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out e;
	char buf[64];
	uint64_t f;

	f = create_ok(FUSE_ROOT_ID, "reg", O_WRONLY, 0644, NULL, NULL);
	cr_assert_eq(ops->readlink(fs, &ctx, f, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "dir", &mi, &e), 0);
	cr_assert_eq(ops->readlink(fs, &ctx, e.nodeid, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(ops->readlink(fs, &ctx, FUSE_ROOT_ID, buf, sizeof(buf)), -EINVAL);
}

PT_TEST(symlink_runs_as_the_caller)
{
	struct fuse_entry_out e;
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	ctx.uid = 1000;
	ctx.gid = 1001;
	symlink_ok(FUSE_ROOT_ID, "mine", "target", &e);
	cr_assert_eq(e.attr.uid, 1000);
	cr_assert_eq(e.attr.gid, 1001);
	st = host_stat("mine");
	cr_assert_eq(st.st_uid, 1000);
	cr_assert_eq(st.st_gid, 1001);
	/* MKNOD too */
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "myfifo", S_IFIFO | 0600, 0, &e), 0);
	cr_assert_eq(host_stat("myfifo").st_uid, 1000);
	cr_assert_eq(host_stat("myfifo").st_gid, 1001);
	/* with another fsuid there is no CAP_MKNOD: device nodes are refused */
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "null", S_IFCHR | 0666, makedev(1, 3), &e), -EPERM);
	/* DAC checks as the caller: uid 1000 cannot add to a root 0755 dir */
	cr_assert_eq(mkdirat(dirfd_, "rootonly", 0755), 0);
	uint64_t ro = lookup_ok(FUSE_ROOT_ID, "rootonly", NULL);
	cr_assert_eq(ops->symlink(fs, &ctx, ro, "x", "y", &e), -EACCES);
	cr_assert_eq(mknod_as(ro, "x", S_IFREG | 0644, 0, &e), -EACCES);

	/* the credentials were restored */
	ctx.uid = 0;
	ctx.gid = 0;
	symlink_ok(FUSE_ROOT_ID, "rootlink", "target", &e);
	cr_assert_eq(e.attr.uid, 0);
	cr_assert_eq(e.attr.gid, 0);
}

PT_TEST(mknod_fifo_is_never_opened)
{
	struct fuse_entry_out e, e2;
	struct fuse_open_out o;
	struct stat st;
	size_t nh;

	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "fifo", S_IFIFO | 0640, 0, &e), 0);
	cr_assert(S_ISFIFO(e.attr.mode), "mode %o", e.attr.mode);
	cr_assert_eq(e.attr.mode & 07777, 0640, "mode as sent, umask is the guest's business");
	st = host_stat("fifo");
	cr_assert(S_ISFIFO(st.st_mode));
	cr_assert_eq(st.st_ino, e.attr.ino);
	cr_assert_eq(lookup_ok(FUSE_ROOT_ID, "fifo", &e2), e.nodeid);
	/* OPEN refuses it, without blocking for a writer */
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDONLY, &o), -ENXIO);
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_WRONLY, &o), -ENXIO);
	counts(NULL, &nh);
	cr_assert_eq(nh, 0);
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "fifo", S_IFIFO | 0640, 0, &e2), -EEXIST);
}

PT_TEST(mknod_regular_socket_and_bad_types)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	struct fuse_release_in ri;
	char out[64];

	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "reg", S_IFREG | 0600, 0x1234, &e), 0);
	cr_assert(S_ISREG(e.attr.mode));
	cr_assert_eq(e.attr.mode & 07777, 0600);
	cr_assert_eq(e.attr.size, 0);
	cr_assert_eq(e.attr.rdev, 0, "rdev is ignored for regular files");
	cr_assert(S_ISREG(host_stat("reg").st_mode));
	/* an ordinary file: OPEN, WRITE, READ work */
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDWR, &o), 0);
	cr_assert_eq(pt_write_data(e.nodeid, o.fh, 0, "mknod"), 5);
	cr_assert_eq(pt_read_data(e.nodeid, o.fh, 0, 64, out, 64), 5);
	cr_assert_str_eq(out, "mknod");
	ri = (struct fuse_release_in){ .fh = o.fh };
	cr_assert_eq(ops->release(fs, &ctx, e.nodeid, &ri), 0);

	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "sock", S_IFSOCK | 0755, 0, &e), 0);
	cr_assert(S_ISSOCK(e.attr.mode));
	cr_assert(S_ISSOCK(host_stat("sock").st_mode));
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDONLY, &o), -ENXIO);

	/* directories, symlinks, type 0 and garbage types have no business here */
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "d", S_IFDIR | 0755, 0, &e), -EINVAL);
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "l", S_IFLNK | 0777, 0, &e), -EINVAL);
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "z", 0644, 0, &e), -EINVAL);
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "g", 0170000 | 0644, 0, &e), -EINVAL);
	cr_assert_eq(fstatat(dirfd_, "d", &(struct stat){ 0 }, AT_SYMLINK_NOFOLLOW), -1);
	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "a/b", S_IFIFO | 0644, 0, &e), -EINVAL);
	cr_assert_eq(mknod_as(4242, "x", S_IFIFO | 0644, 0, &e), -ENOENT);
}

PT_TEST(mknod_device_node)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	struct stat st;
	/* the kernel's new_encode_dev(MKDEV(1, 3)) */
	uint32_t rdev = (3 & 0xff) | (1 << 8) | ((3 & ~0xffu) << 12);
	int r;

	r = mknod_as(FUSE_ROOT_ID, "null", S_IFCHR | 0666, rdev, &e);
	if (r == -EPERM)
		cr_skip_test("no CAP_MKNOD here (EPERM passed through)");
	cr_assert_eq(r, 0);
	cr_assert(S_ISCHR(e.attr.mode));
	cr_assert_eq(e.attr.rdev, rdev);
	st = host_stat("null");
	cr_assert(S_ISCHR(st.st_mode));
	cr_assert_eq(major(st.st_rdev), 1);
	cr_assert_eq(minor(st.st_rdev), 3);
	/* device nodes are never opened either */
	cr_assert_eq(ops->open(fs, &ctx, e.nodeid, O_RDWR, &o), -ENXIO);
}

PT_TEST(hard_link_shares_the_node_id)
{
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out e, de;
	struct fuse_attr_out ao;
	uint64_t f;
	size_t ni;

	host_write("f", "data");
	f = lookup_ok(FUSE_ROOT_ID, "f", &e);
	cr_assert_eq(e.attr.nlink, 1);
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "sub", &mi, &de), 0);

	cr_assert_eq(ops->link(fs, &ctx, f, de.nodeid, "g", &e), 0);
	cr_assert_eq(e.nodeid, f, "same node id");
	cr_assert_eq(e.attr.nlink, 2);
	cr_assert(S_ISREG(e.attr.mode));
	cr_assert_eq(host_stat("sub/g").st_ino, host_stat("f").st_ino);
	cr_assert_eq(host_stat("f").st_nlink, 2);
	cr_assert_eq(lookup_ok(de.nodeid, "g", NULL), f);
	counts(&ni, NULL);
	cr_assert_eq(ni, 3);

	/* nlookup is 3 (LOOKUP, LINK, LOOKUP): the LINK counted one */
	ops->forget(fs, f, 2);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 2);
	ops->forget(fs, f, 1);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), -ENOENT);

	/* errors */
	f = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	cr_assert_eq(ops->link(fs, &ctx, f, FUSE_ROOT_ID, "f", &e), -EEXIST);
	cr_assert_eq(ops->link(fs, &ctx, f, FUSE_ROOT_ID, "x/y", &e), -EINVAL);
	cr_assert_eq(ops->link(fs, &ctx, f, f, "x", &e), -ENOTDIR);
	cr_assert_eq(ops->link(fs, &ctx, 777, FUSE_ROOT_ID, "x", &e), -ENOENT);
	cr_assert_eq(ops->link(fs, &ctx, f, 777, "x", &e), -ENOENT);
	/* an unlinked file cannot get a name back */
	cr_assert_eq(unlinkat(dirfd_, "f", 0), 0);
	cr_assert_eq(unlinkat(dirfd_, "sub/g", 0), 0);
	cr_assert_eq(ops->link(fs, &ctx, f, FUSE_ROOT_ID, "back", &e), -ENOENT);
}

PT_TEST(link_of_a_directory_is_eperm)
{
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_entry_out e, e2;

	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "d", &mi, &e), 0);
	cr_assert_eq(ops->link(fs, &ctx, e.nodeid, FUSE_ROOT_ID, "d2", &e2), -EPERM);
	cr_assert_eq(ops->link(fs, &ctx, FUSE_ROOT_ID, e.nodeid, "root", &e2), -EPERM);
	cr_assert_eq(fstatat(dirfd_, "d2", &(struct stat){ 0 }, AT_SYMLINK_NOFOLLOW), -1);
}

PT_TEST(link_of_a_symlink_and_a_fifo)
{
	struct fuse_entry_out e;
	char buf[64];
	uint64_t l;

	l = symlink_ok(FUSE_ROOT_ID, "l", "/nowhere", NULL);
	cr_assert_eq(ops->link(fs, &ctx, l, FUSE_ROOT_ID, "l2", &e), 0);
	cr_assert_eq(e.nodeid, l);
	cr_assert(S_ISLNK(e.attr.mode), "the link itself, not what it points to");
	cr_assert_eq(e.attr.nlink, 2);
	cr_assert(S_ISLNK(host_stat("l2").st_mode));
	cr_assert_eq(readlink_into(l, buf, sizeof(buf)), 8);
	cr_assert_str_eq(buf, "/nowhere");

	cr_assert_eq(mknod_as(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, &e), 0);
	uint64_t p = e.nodeid;
	cr_assert_eq(ops->link(fs, &ctx, p, FUSE_ROOT_ID, "p2", &e), 0);
	cr_assert_eq(e.nodeid, p);
	cr_assert(S_ISFIFO(host_stat("p2").st_mode));
}

/* Without CAP_DAC_READ_SEARCH linkat(AT_EMPTY_PATH) fails: /proc/self/fd takes over. */
PT_TEST(link_without_dac_read_search)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	struct fuse_entry_out e;
	uint64_t f, l;
	int fd;

	host_write("f", "x");
	f = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	l = symlink_ok(FUSE_ROOT_ID, "l", "f", NULL);
	/* an fd opened before the drop, like the fs's inode fds */
	fd = openat(dirfd_, "f", O_PATH | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	/* criterion runs each test in its own process: dropping a capability is fine */
	cr_assert_eq(syscall(SYS_capget, &h, d), 0);
	d[0].effective &= ~(1u << CAP_DAC_READ_SEARCH);
	d[0].permitted &= ~(1u << CAP_DAC_READ_SEARCH);
	cr_assert_eq(syscall(SYS_capset, &h, d), 0);
	/* the fallback is exercised where the kernel refuses this (ENOENT) */
	if (linkat(fd, "", dirfd_, "probe", AT_EMPTY_PATH) == 0) {
		cr_log_info("this kernel allows AT_EMPTY_PATH without the capability");
		cr_assert_eq(unlinkat(dirfd_, "probe", 0), 0);
	} else {
		cr_assert(errno == ENOENT || errno == EPERM, "errno %d", errno);
	}
	close(fd);

	cr_assert_eq(ops->link(fs, &ctx, f, FUSE_ROOT_ID, "g", &e), 0);
	cr_assert_eq(e.nodeid, f);
	cr_assert_eq(e.attr.nlink, host_stat("f").st_nlink);
	cr_assert_eq(host_stat("g").st_ino, host_stat("f").st_ino);
	/* a symlink through /proc/self/fd: the link itself, not its target */
	cr_assert_eq(ops->link(fs, &ctx, l, FUSE_ROOT_ID, "l2", &e), 0);
	cr_assert_eq(e.nodeid, l);
	cr_assert(S_ISLNK(host_stat("l2").st_mode));
}

/* ---- data ---- */

static void data_roundtrip(void)
{
	struct fuse_open_out o;
	struct fuse_release_in ri;
	struct fuse_fsync_in fi;
	struct fuse_flush_in fl;
	char out[4096], buf[64];
	uint64_t f, fh;
	size_t nh;

	f = create_ok(FUSE_ROOT_ID, "data", O_RDWR, 0644, NULL, &fh);
	cr_assert_eq(pt_write_data(f, fh, 0, "hello vectored world"), 20);
	cr_assert_eq(pt_write_data(f, fh, 6, "VECTORED"), 8);
	fi = (struct fuse_fsync_in){ .fh = fh, .fsync_flags = 0 };
	cr_assert_eq(ops->fsync(fs, &ctx, f, &fi), 0);
	fi.fsync_flags = FUSE_FSYNC_FDATASYNC;
	cr_assert_eq(ops->fsync(fs, &ctx, f, &fi), 0);
	fl = (struct fuse_flush_in){ .fh = fh };
	cr_assert_eq(ops->flush(fs, &ctx, f, &fl), 0);
	host_read("data", buf, sizeof(buf));
	cr_assert_str_eq(buf, "hello VECTORED world");

	/* Read across the three iovecs; size beyond EOF gives what there is. */
	cr_assert_eq(pt_read_data(f, fh, 0, 4096, out, 4096), 20);
	cr_assert_str_eq(out, "hello VECTORED world");
	cr_assert_eq(pt_read_data(f, fh, 6, 5, out, 4096), 5);
	cr_assert_str_eq(out, "VECTO");
	/* The writer has less room than asked for: min(size, room). */
	cr_assert_eq(pt_read_data(f, fh, 0, 4096, out, 12), 12);
	cr_assert_str_eq(out, "hello VECTOR");
	cr_assert_eq(pt_read_data(f, fh, 100, 10, out, 4096), 0);

	/* A second, read-only open: writes fail, reads work. */
	cr_assert_eq(ops->open(fs, &ctx, f, O_RDONLY, &o), 0);
	cr_assert_neq(o.fh, fh);
	cr_assert_eq(pt_write_data(f, o.fh, 0, "nope"), -EBADF);
	cr_assert_eq(pt_read_data(f, o.fh, 0, 5, out, 4096), 5);
	ri = (struct fuse_release_in){ .fh = o.fh };
	cr_assert_eq(ops->release(fs, &ctx, f, &ri), 0);
	cr_assert_eq(ops->release(fs, &ctx, f, &ri), -EBADF);
	cr_assert_eq(pt_read_data(f, o.fh, 0, 5, out, 4096), -EBADF, "released fh is gone");

	/* O_TRUNC is honoured, O_APPEND too. */
	cr_assert_eq(ops->open(fs, &ctx, f, O_WRONLY | O_TRUNC | O_APPEND, &o), 0);
	host_read("data", buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
	cr_assert_eq(pt_write_data(f, o.fh, 0, "one"), 3);
	cr_assert_eq(pt_write_data(f, o.fh, 0, "two"), 3);
	host_read("data", buf, sizeof(buf));
	cr_assert_str_eq(buf, "onetwo");
	ri.fh = o.fh;
	cr_assert_eq(ops->release(fs, &ctx, f, &ri), 0);

	/* A fh used with the wrong node id is refused. */
	uint64_t other = create_ok(FUSE_ROOT_ID, "other", O_RDWR, 0644, NULL, NULL);
	cr_assert_eq(pt_read_data(other, fh, 0, 5, out, 4096), -EBADF);

	ri.fh = fh;
	cr_assert_eq(ops->release(fs, &ctx, f, &ri), 0);
	counts(NULL, &nh);
	cr_assert_eq(nh, 1); /* "other" */
}

PT_TEST(data_via_uring)
{
	data_roundtrip();
}

PT_TEST(data_via_syscalls)
{
	ctx.io = NULL;
	data_roundtrip();
}

PT_TEST(write_shorter_payload_than_size)
{
	uint64_t fh, f = create_ok(FUSE_ROOT_ID, "w", O_RDWR, 0644, NULL, &fh);
	char data[4] = "abcd";
	struct iovec v = { data, 4 };
	struct fuse_write_in in = { .fh = fh, .offset = 0, .size = 10 };
	struct vfsd_reader r;

	cr_assert_eq(vfsd_reader_init(&r, &v, 1), 0);
	cr_assert_lt(ops->write(fs, &ctx, f, &in, &r), 0);
}

/* ---- directories ---- */

#define NFILES 20

struct listing {
	char names[64][32];
	uint64_t offs[64];
	uint64_t ids[64];
	uint64_t inos[64];
	int n;
};

/* Parse a READDIR or READDIRPLUS reply into @l (appending). */
static void parse(const struct vfsd_dirbuf *b, bool plus, struct listing *l)
{
	size_t off = 0;

	while (off < b->len) {
		const struct fuse_dirent *d;
		uint64_t id = 0;
		if (plus) {
			const struct fuse_direntplus *dp = (const void *)(b->buf + off);
			d = &dp->dirent;
			id = dp->entry_out.nodeid;
			cr_assert_eq(dp->entry_out.attr.ino, d->ino);
			off += FUSE_DIRENTPLUS_SIZE(dp);
		} else {
			d = (const void *)(b->buf + off);
			off += FUSE_DIRENT_SIZE(d);
		}
		cr_assert_lt(l->n, 64);
		cr_assert_lt(d->namelen, 32);
		memcpy(l->names[l->n], d->name, d->namelen);
		l->names[l->n][d->namelen] = '\0';
		l->offs[l->n] = d->off;
		l->ids[l->n] = id;
		l->inos[l->n] = d->ino;
		l->n++;
	}
	cr_assert_eq(off, b->len);
}

static int readdir_into(uint64_t nodeid, uint64_t fh, uint64_t offset, size_t size, bool plus,
			struct listing *l)
{
	static char mem[65536];
	struct vfsd_dirbuf b = { .buf = mem, .size = size, .len = 0 };
	struct fuse_read_in in = { .fh = fh, .offset = offset, .size = (uint32_t)size };
	int r;

	r = ops->readdir(fs, &ctx, nodeid, &in, plus, &b);
	if (r < 0)
		return r;
	int before = l->n;
	parse(&b, plus, l);
	return l->n - before;
}

static uint64_t make_tree(void)
{
	char name[32];

	cr_assert_eq(mkdirat(dirfd_, "dir", 0755), 0);
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "dir/file-%02d", i);
		host_write(name, "x");
	}
	return lookup_ok(FUSE_ROOT_ID, "dir", NULL);
}

static bool has(const struct listing *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return true;
	return false;
}

static void check_complete(const struct listing *l)
{
	char name[32];

	cr_assert_eq(l->n, NFILES + 2, "got %d entries", l->n);
	cr_assert(has(l, "."));
	cr_assert(has(l, ".."));
	for (int i = 0; i < NFILES; i++) {
		snprintf(name, sizeof(name), "file-%02d", i);
		cr_assert(has(l, name), "missing %s", name);
	}
}

PT_TEST(readdir_full_tiny_and_continuation)
{
	uint64_t d = make_tree();
	struct fuse_open_out o;
	struct fuse_release_in ri;
	struct listing all = { 0 }, tiny = { 0 }, rest = { 0 };
	uint64_t off = 0;
	int n;

	cr_assert_eq(ops->opendir(fs, &ctx, d, 0, &o), 0);
	cr_assert_gt(readdir_into(d, o.fh, 0, 65536, false, &all), 0);
	cr_assert_eq(readdir_into(d, o.fh, all.offs[all.n - 1], 65536, false, &all), 0, "EOF");
	check_complete(&all);

	/* A buffer for exactly one entry: continue from each cookie. */
	size_t one = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + strlen("file-00"));
	while ((n = readdir_into(d, o.fh, off, one, false, &tiny)) > 0) {
		cr_assert_eq(n, 1);
		off = tiny.offs[tiny.n - 1];
	}
	cr_assert_eq(n, 0);
	check_complete(&tiny);

	/* Continue from an arbitrary cookie on a fresh handle: the rest, in order. */
	struct fuse_open_out o2;
	cr_assert_eq(ops->opendir(fs, &ctx, d, 0, &o2), 0);
	cr_assert_eq(readdir_into(d, o2.fh, all.offs[4], 65536, false, &rest), all.n - 5);
	for (int i = 0; i < rest.n; i++)
		cr_assert_str_eq(rest.names[i], all.names[i + 5]);
	/* And back to the start on the same handle. */
	struct listing again = { 0 };
	readdir_into(d, o2.fh, 0, 65536, false, &again);
	check_complete(&again);

	ri = (struct fuse_release_in){ .fh = o.fh };
	cr_assert_eq(ops->releasedir(fs, &ctx, d, &ri), 0);
	ri.fh = o2.fh;
	cr_assert_eq(ops->releasedir(fs, &ctx, d, &ri), 0);
	cr_assert_eq(ops->releasedir(fs, &ctx, d, &ri), -EBADF);
}

PT_TEST(readdirplus_lookup_accounting)
{
	uint64_t d = make_tree();
	struct fuse_open_out o;
	struct listing big = { 0 }, tiny = { 0 };
	uint64_t off = 0;
	size_t ni;
	int n;

	cr_assert_eq(ops->opendir(fs, &ctx, d, 0, &o), 0);
	cr_assert_eq(readdir_into(d, o.fh, 0, 65536, true, &big), NFILES + 2);
	check_complete(&big);
	for (int i = 0; i < big.n; i++) {
		bool dot = strcmp(big.names[i], ".") == 0 || strcmp(big.names[i], "..") == 0;
		if (dot)
			cr_assert_eq(big.ids[i], 0, "%s has no node id", big.names[i]);
		else
			cr_assert_gt(big.ids[i], d, "%s", big.names[i]);
	}
	counts(&ni, NULL);
	cr_assert_eq(ni, 2 + NFILES);
	/* The same node ids as LOOKUP. */
	for (int i = 0; i < big.n; i++)
		if (strcmp(big.names[i], "file-07") == 0)
			cr_assert_eq(lookup_ok(d, "file-07", NULL), big.ids[i]);
	ops->forget(fs, lookup_ok(d, "file-07", NULL), 2); /* the two LOOKUPs just done */

	/*
	 * One entry at a time: every entry sent counts exactly one lookup, and
	 * the entries that did not fit count none. After forgetting one lookup
	 * per entry received (the guest would), the first pass's lookups remain.
	 */
	size_t one = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + strlen("file-00"));
	while ((n = readdir_into(d, o.fh, off, one, true, &tiny)) > 0) {
		cr_assert_eq(n, 1);
		off = tiny.offs[tiny.n - 1];
	}
	cr_assert_eq(n, 0);
	check_complete(&tiny);
	for (int i = 0; i < tiny.n; i++)
		if (tiny.ids[i])
			ops->forget(fs, tiny.ids[i], 1);
	counts(&ni, NULL);
	cr_assert_eq(ni, 2 + NFILES, "first pass still accounted");
	for (int i = 0; i < big.n; i++)
		if (big.ids[i])
			ops->forget(fs, big.ids[i], 1);
	counts(&ni, NULL);
	cr_assert_eq(ni, 2, "only root and dir left: no lookup leaked");

	/* A buffer too small for the first entry returns nothing and leaks nothing. */
	struct listing none = { 0 };
	cr_assert_eq(readdir_into(d, o.fh, big.offs[1], 40, true, &none), 0);
	counts(&ni, NULL);
	cr_assert_eq(ni, 2);
}

PT_TEST(readdir_errors)
{
	uint64_t d = make_tree();
	uint64_t f = lookup_ok(d, "file-01", NULL);
	struct fuse_open_out o, fo;
	struct listing l = { 0 };

	cr_assert_eq(ops->opendir(fs, &ctx, f, 0, &o), -ENOTDIR);
	cr_assert_eq(ops->open(fs, &ctx, f, O_RDONLY, &fo), 0);
	cr_assert_eq(readdir_into(f, fo.fh, 0, 4096, false, &l), -ENOTDIR);
	cr_assert_eq(readdir_into(d, 999, 0, 4096, false, &l), -EBADF);
	cr_assert_eq(ops->opendir(fs, &ctx, 4242, 0, &o), -ENOENT);
}

/* ---- attributes ---- */

PT_TEST(setattr_mode_owner_size_times)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out ao;
	struct stat st;
	uint64_t f, fh;

	f = create_ok(FUSE_ROOT_ID, "s", O_RDWR, 0644, NULL, &fh);
	cr_assert_eq(pt_write_data(f, fh, 0, "0123456789"), 10);

	in = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = S_IFREG | 0600 };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.mode & 07777, 0600);
	cr_assert_eq(host_stat("s").st_mode & 07777, 0600);

	in = (struct fuse_setattr_in){ .valid = FATTR_UID | FATTR_GID, .uid = 1000, .gid = 1001 };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.uid, 1000);
	cr_assert_eq(ao.attr.gid, 1001);
	in = (struct fuse_setattr_in){ .valid = FATTR_GID, .gid = 7 };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.uid, 1000, "uid untouched");
	cr_assert_eq(ao.attr.gid, 7);

	in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 3 };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.size, 3);
	in = (struct fuse_setattr_in){ .valid = FATTR_SIZE | FATTR_FH, .size = 1, .fh = fh };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.size, 1);
	cr_assert_eq(host_stat("s").st_size, 1);
	in.fh = 999;
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), -EBADF);

	in = (struct fuse_setattr_in){ .valid = FATTR_ATIME | FATTR_MTIME,
				       .atime = 1000000000,
				       .atimensec = 123,
				       .mtime = 1200000000,
				       .mtimensec = 456789 };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_eq(ao.attr.atime, 1000000000);
	cr_assert_eq(ao.attr.atimensec, 123);
	cr_assert_eq(ao.attr.mtime, 1200000000);
	cr_assert_eq(ao.attr.mtimensec, 456789);
	st = host_stat("s");
	cr_assert_eq(st.st_mtim.tv_sec, 1200000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 456789);

	/* MTIME_NOW moves mtime to now and leaves atime alone. */
	in = (struct fuse_setattr_in){ .valid = FATTR_MTIME | FATTR_MTIME_NOW };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), 0);
	cr_assert_gt(ao.attr.mtime, 1200000000);
	cr_assert_eq(ao.attr.atime, 1000000000);
	in = (struct fuse_setattr_in){ .valid = FATTR_ATIME, .atime = 5, .atimensec = 2000000000u };
	cr_assert_eq(ops->setattr(fs, &ctx, f, &in, &ao), -EINVAL);

	/* Directories: truncate is refused, chmod works without a handle. */
	uint64_t root = FUSE_ROOT_ID;
	in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 0 };
	cr_assert_eq(ops->setattr(fs, &ctx, root, &in, &ao), -EISDIR);
	in = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = S_IFDIR | 0711 };
	cr_assert_eq(ops->setattr(fs, &ctx, root, &in, &ao), 0);
	cr_assert_eq(ao.attr.mode, S_IFDIR | 0711);
	cr_assert_eq(ops->setattr(fs, &ctx, 31337, &in, &ao), -ENOENT);
}

PT_TEST(getattr_by_inode_and_handle)
{
	struct fuse_getattr_in gi = { 0 };
	struct fuse_attr_out ao;
	uint64_t f, fh;

	cr_assert_eq(ops->getattr(fs, &ctx, FUSE_ROOT_ID, NULL, &ao), 0);
	cr_assert(S_ISDIR(ao.attr.mode));
	cr_assert_eq(ao.attr.ino, host_stat(".").st_ino);
	cr_assert_eq(ao.attr_valid, 1);
	cr_assert_eq(ao.attr_valid_nsec, 500000000u);

	f = create_ok(FUSE_ROOT_ID, "g", O_RDWR, 0644, NULL, &fh);
	cr_assert_eq(pt_write_data(f, fh, 0, "12345"), 5);
	gi.getattr_flags = FUSE_GETATTR_FH;
	gi.fh = fh;
	cr_assert_eq(ops->getattr(fs, &ctx, f, &gi, &ao), 0);
	cr_assert_eq(ao.attr.size, 5);
	cr_assert_eq(ao.attr.blksize, (uint32_t)host_stat("g").st_blksize);
	/* The file is unlinked on the host: the inode fd still answers. */
	cr_assert_eq(unlinkat(dirfd_, "g", 0), 0);
	gi.getattr_flags = 0;
#ifdef VFSD_TEST_FD_BUDGET
	/* Held by its name only, it is gone like an NFS file; the handle still answers. */
	cr_assert_eq(ops->getattr(fs, &ctx, f, &gi, &ao), -ESTALE);
	gi.getattr_flags = FUSE_GETATTR_FH;
#endif
	cr_assert_eq(ops->getattr(fs, &ctx, f, &gi, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 0);
	cr_assert_eq(ops->getattr(fs, &ctx, 777, &gi, &ao), -ENOENT);
}

/* ---- the fd budget: files held by their name (inode_table.h) ---- */

PT_TEST(fdless_files_hold_no_fd_and_work)
{
	struct fuse_open_out o;
	struct fuse_release_in ri = { 0 };
	struct fuse_attr_out ao;
	struct fuse_setattr_in si = { .valid = FATTR_MODE, .mode = S_IFREG | 0600 };
	char name[32], buf[64];
	size_t held;
	uint64_t id[20], sl;

	vfsd_inode_fd_budget_set(1);
	cr_assert_eq(mkdirat(dirfd_, "d", 0755), 0);
	uint64_t d = lookup_ok(FUSE_ROOT_ID, "d", NULL);
	held = vfsd_inode_fds_held();
	for (int k = 0; k < 20; k++) {
		snprintf(name, sizeof(name), "d/f%d", k);
		host_write(name, "hello");
		snprintf(name, sizeof(name), "f%d", k);
		id[k] = lookup_ok(d, name, NULL);
	}
	cr_assert_eq(vfsd_inode_fds_held(), held, "files past the budget hold no fd");
	for (int k = 0; k < 20; k++) {
		cr_assert_eq(ops->getattr(fs, &ctx, id[k], NULL, &ao), 0);
		cr_assert_eq(ao.attr.size, 5);
		cr_assert_eq(ops->open(fs, &ctx, id[k], O_RDONLY, &o), 0);
		cr_assert_eq(pt_read_data(id[k], o.fh, 0, 5, buf, sizeof(buf)), 5);
		cr_assert_str_eq(buf, "hello");
		ri.fh = o.fh;
		cr_assert_eq(ops->release(fs, &ctx, id[k], &ri), 0);
	}
	cr_assert_eq(ops->setattr(fs, &ctx, id[0], &si, &ao), 0);
	cr_assert_eq(host_stat("d/f0").st_mode & 07777, 0600);
	cr_assert_eq(symlinkat("target", dirfd_, "d/sl"), 0);
	sl = lookup_ok(d, "sl", NULL);
	cr_assert_eq(ops->readlink(fs, &ctx, sl, buf, sizeof(buf)), 6);
	cr_assert_eq(memcmp(buf, "target", 6), 0);
	/* Renamed by the guest: the location follows. */
	cr_assert_eq(ops->rename(fs, &ctx, d, "f1", FUSE_ROOT_ID, "moved", 0), 0);
	cr_assert_eq(ops->getattr(fs, &ctx, id[1], NULL, &ao), 0);
	cr_assert_eq(ao.attr.ino, host_stat("moved").st_ino);
	cr_assert_eq(vfsd_inode_fds_held(), held);
	vfsd_inode_fd_budget_set(0);
}

PT_TEST(fdless_host_side_swap_is_estale_and_never_blocks)
{
	struct fuse_attr_out ao;
	struct fuse_open_out o;
	uint64_t f;

	vfsd_inode_fd_budget_set(1);
	host_write("f", "x");
	f = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	/* The host renames our file away and puts a FIFO at its name. */
	cr_assert_eq(renameat(dirfd_, "f", dirfd_, "elsewhere"), 0);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), -ESTALE);
	cr_assert_eq(mkfifoat(dirfd_, "f", 0644), 0);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), -ESTALE);
	cr_assert_eq(ops->open(fs, &ctx, f, O_RDONLY, &o), -ESTALE, "must not block on the FIFO");
	/* A symlink in its place is not followed. */
	cr_assert_eq(unlinkat(dirfd_, "f", 0), 0);
	cr_assert_eq(symlinkat("elsewhere", dirfd_, "f"), 0);
	cr_assert_eq(ops->open(fs, &ctx, f, O_RDONLY, &o), -ESTALE);
	/* Put back, it is found again. */
	cr_assert_eq(unlinkat(dirfd_, "f", 0), 0);
	cr_assert_eq(renameat(dirfd_, "elsewhere", dirfd_, "f"), 0);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), 0);
	vfsd_inode_fd_budget_set(0);
}

PT_TEST(fdless_inode_gets_an_fd_before_it_loses_a_name)
{
	struct fuse_attr_out ao;
	size_t held;
	uint64_t f, v;

	vfsd_inode_fd_budget_set(1);
	host_write("f", "x");
	cr_assert_eq(linkat(dirfd_, "f", dirfd_, "g", 0), 0);
	f = lookup_ok(FUSE_ROOT_ID, "f", NULL);
	held = vfsd_inode_fds_held();
	/* Unlinking the name it is known by: it keeps working through an fd. */
	cr_assert_eq(ops->unlink(fs, &ctx, FUSE_ROOT_ID, "f"), 0);
	cr_assert_eq(vfsd_inode_fds_held(), held + 1);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 1);
	/* Renamed over (no other lookup keeps it as an orphan: it has two links). */
	host_write("victim", "y");
	cr_assert_eq(linkat(dirfd_, "victim", dirfd_, "victim2", 0), 0);
	v = lookup_ok(FUSE_ROOT_ID, "victim", NULL);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "g", FUSE_ROOT_ID, "victim", 0), 0);
	cr_assert_eq(ops->getattr(fs, &ctx, v, NULL, &ao), 0);
	cr_assert_eq(ao.attr.nlink, 1);
	cr_assert_eq(ao.attr.ino, host_stat("victim2").st_ino);
	vfsd_inode_fd_budget_set(0);
}

PT_TEST(statfs)
{
	struct fuse_kstatfs k;
	struct statfs sf;

	cr_assert_eq(ops->statfs(fs, &ctx, FUSE_ROOT_ID, &k), 0);
	cr_assert_eq(statfs(dir, &sf), 0);
	cr_assert_eq(k.bsize, (uint32_t)sf.f_bsize);
	cr_assert_eq(k.blocks, sf.f_blocks);
	cr_assert_eq(k.namelen, (uint32_t)sf.f_namelen);
	cr_assert_eq(k.files, sf.f_files);
	cr_assert_eq(ops->statfs(fs, &ctx, 4321, &k), -ENOENT);
}

/* ---- session ---- */

PT_TEST(reset_drops_everything_but_root)
{
	uint64_t d = make_tree(), f, fh, later;
	struct fuse_open_out o;
	struct fuse_attr_out ao;
	struct fuse_entry_out e;
	size_t ni, nh;

	f = lookup_ok(d, "file-03", NULL);
	cr_assert_eq(ops->open(fs, &ctx, f, O_RDWR, &o), 0);
	fh = o.fh;
	cr_assert_eq(ops->opendir(fs, &ctx, d, 0, &o), 0);
	counts(&ni, &nh);
	cr_assert_eq(ni, 3);
	cr_assert_eq(nh, 2);

	ops->reset(fs);
	counts(&ni, &nh);
	cr_assert_eq(ni, 1);
	cr_assert_eq(nh, 0);
	cr_assert_eq(ops->getattr(fs, &ctx, f, NULL, &ao), -ENOENT);
	cr_assert_eq(ops->getattr(fs, &ctx, FUSE_ROOT_ID, NULL, &ao), 0);
	char out[64];
	cr_assert_eq(pt_read_data(f, fh, 0, 1, out, 64), -EBADF);

	/* Ids and fhs keep counting up. */
	later = lookup_ok(FUSE_ROOT_ID, "dir", &e);
	cr_assert_gt(later, f);
	cr_assert_eq(ops->opendir(fs, &ctx, later, 0, &o), 0);
	cr_assert_gt(o.fh, fh);

	ops->destroy(fs);
	counts(&ni, &nh);
	cr_assert_eq(ni, 1);
	cr_assert_eq(nh, 0);
}

PT_TEST(new_rejects_bad_dirs)
{
	struct vfsd_passthrough_config cfg = { .shared_dir = "/nonexistent/vfsd" };
	struct vfsd_passthrough *p = NULL;

	cr_assert_eq(vfsd_passthrough_new(&cfg, &p), -ENOENT);
	cfg.shared_dir = "/etc/passwd";
	cr_assert_eq(vfsd_passthrough_new(&cfg, &p), -ENOTDIR);
	vfsd_passthrough_free(NULL);
}

/* .vfsd-orphans in the root is ours: invisible and untouchable from the guest. */
PT_TEST(orphans_dir_is_reserved_in_the_root)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	struct fuse_mkdir_in mi = { .mode = 0755 };
	struct fuse_mknod_in ni = { .mode = S_IFREG | 0644 };
	struct fuse_create_in ci = { .flags = O_RDWR, .mode = S_IFREG | 0644 };
	struct listing l = { 0 };
	uint64_t f, sub;

	cr_assert_eq(mkdirat(dirfd_, ".vfsd-orphans", 0700), 0);
	host_write("plain", "x");
	f = lookup_ok(FUSE_ROOT_ID, "plain", NULL);
	cr_assert_eq(ops->lookup(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", &e), -ENOENT);
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", &mi, &e), -EPERM);
	cr_assert_eq(ops->mknod(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", &ni, &e), -EPERM);
	cr_assert_eq(ops->create(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", &ci, &e, &o), -EPERM);
	cr_assert_eq(ops->symlink(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", "x", &e), -EPERM);
	cr_assert_eq(ops->link(fs, &ctx, f, FUSE_ROOT_ID, ".vfsd-orphans", &e), -EPERM);
	cr_assert_eq(ops->unlink(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans"), -EPERM);
	cr_assert_eq(ops->rmdir(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans"), -EPERM);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, ".vfsd-orphans", FUSE_ROOT_ID, "y", 0),
		     -EPERM);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "plain", FUSE_ROOT_ID, ".vfsd-orphans", 0),
		     -EPERM);
	cr_assert_eq(ops->rename(fs, &ctx, FUSE_ROOT_ID, "plain", FUSE_ROOT_ID, ".vfsd-orphans",
				 RENAME_EXCHANGE),
		     -EPERM);
	cr_assert(host_stat(".vfsd-orphans").st_mode & S_IFDIR);
	cr_assert(host_stat("plain").st_ino > 0);

	/* READDIR and READDIRPLUS of the root skip it. */
	cr_assert_eq(ops->opendir(fs, &ctx, FUSE_ROOT_ID, 0, &o), 0);
	cr_assert_gt(readdir_into(FUSE_ROOT_ID, o.fh, 0, 65536, false, &l), 0);
	cr_assert(has(&l, "plain"));
	cr_assert_not(has(&l, ".vfsd-orphans"));
	l.n = 0;
	cr_assert_gt(readdir_into(FUSE_ROOT_ID, o.fh, 0, 65536, true, &l), 0);
	cr_assert(has(&l, "plain"));
	cr_assert_not(has(&l, ".vfsd-orphans"));
	for (int k = 0; k < l.n; k++)
		if (l.ids[k])
			ops->forget(fs, l.ids[k], 1);
	struct fuse_release_in ri = { .fh = o.fh };
	cr_assert_eq(ops->releasedir(fs, &ctx, FUSE_ROOT_ID, &ri), 0);

	/* Only at the top level: below the root the name is an ordinary one. */
	cr_assert_eq(ops->mkdir(fs, &ctx, FUSE_ROOT_ID, "sub", &mi, &e), 0);
	sub = e.nodeid;
	cr_assert_eq(ops->mkdir(fs, &ctx, sub, ".vfsd-orphans", &mi, &e), 0);
	cr_assert_eq(ops->lookup(fs, &ctx, sub, ".vfsd-orphans", &e), 0);
	cr_assert_eq(ops->rmdir(fs, &ctx, sub, ".vfsd-orphans"), 0);
}
