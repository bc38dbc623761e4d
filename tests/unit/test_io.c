/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfsd/io.h"
#include "vfsd/util.h"

static char path[64];
static int fd = -1;

static void setup(void)
{
	strcpy(path, "/tmp/vfsd-io-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
}

static void teardown(void)
{
	if (fd >= 0)
		close(fd);
	unlink(path);
}

TestSuite(io, .init = setup, .fini = teardown, .timeout = 20.0);

/* Write "hello, " + "vectored " + "world" at @off, read it back into 3 other buffers. */
static void roundtrip(struct vfsd_io *io, off_t off)
{
	const char *a = "hello, ", *b = "vectored ", *c = "world";
	struct iovec wv[3] = {
		{ (void *)a, strlen(a) },
		{ (void *)b, strlen(b) },
		{ (void *)c, strlen(c) },
	};
	size_t total = strlen(a) + strlen(b) + strlen(c);
	char r1[4] = { 0 }, r2[10] = { 0 }, r3[64] = { 0 };
	struct iovec rv[3] = { { r1, 3 }, { r2, 9 }, { r3, sizeof(r3) } };
	char all[64] = { 0 };
	ssize_t n;

	n = vfsd_io_pwritev(io, fd, wv, 3, off, 0);
	cr_assert_eq(n, (ssize_t)total, "pwritev -> %zd", n);
	cr_assert_eq(vfsd_io_fsync(io, fd, false), 0);
	cr_assert_eq(vfsd_io_fsync(io, fd, true), 0);

	n = vfsd_io_preadv(io, fd, rv, 3, off);
	cr_assert_eq(n, (ssize_t)total, "preadv -> %zd", n);
	cr_assert_str_eq(r1, "hel");
	cr_assert_str_eq(r2, "lo, vecto");
	cr_assert_str_eq(r3, "red world");

	/* And the file really holds it, at the right place. */
	cr_assert_eq(pread(fd, all, total, off), (ssize_t)total);
	cr_assert_str_eq(all, "hello, vectored world");

	/* Reading past EOF gives 0, a short read gives the rest. */
	n = vfsd_io_preadv(io, fd, rv, 3, off + (off_t)total);
	cr_assert_eq(n, 0);
	memset(r3, 0, sizeof(r3));
	struct iovec one = { r3, sizeof(r3) };
	n = vfsd_io_preadv(io, fd, &one, 1, off + 16);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(r3, "world");
}

Test(io, uring_roundtrip)
{
	struct vfsd_io *io = NULL;

	cr_assert_eq(vfsd_io_new(32, true, &io), 0);
	cr_assert_not_null(io);
	if (!vfsd_io_uses_uring(io)) {
		vfsd_io_free(io);
		cr_skip_test("io_uring unavailable here");
	}
	roundtrip(io, 0);
	roundtrip(io, 8192);
	vfsd_io_free(io);
}

Test(io, forced_fallback_roundtrip)
{
	struct vfsd_io *io = NULL;

	cr_assert_eq(vfsd_io_new(32, false, &io), 0);
	cr_assert_not(vfsd_io_uses_uring(io));
	roundtrip(io, 100);
	vfsd_io_free(io);
}

Test(io, null_io_roundtrip)
{
	cr_assert_not(vfsd_io_uses_uring(NULL));
	roundtrip(NULL, 4096);
}

Test(io, rwf_append)
{
	struct vfsd_io *io = NULL;
	struct iovec v = { (void *)"xyz", 3 };
	struct stat st;

	cr_assert_eq(vfsd_io_new(8, true, &io), 0);
	cr_assert_eq(vfsd_io_pwritev(io, fd, &v, 1, 10, 0), 3);
	/* RWF_APPEND ignores the offset and writes at EOF. */
	cr_assert_eq(vfsd_io_pwritev(io, fd, &v, 1, 0, RWF_APPEND), 3);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 16);
	vfsd_io_free(io);
}

static void check_errors(struct vfsd_io *io)
{
	static struct iovec many[IOV_MAX + 1];
	char c;
	struct iovec v = { &c, 1 };

	for (size_t i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = (struct iovec){ &c, 1 };
	cr_assert_eq(vfsd_io_preadv(io, fd, many, IOV_MAX + 1, 0), -EINVAL);
	cr_assert_eq(vfsd_io_pwritev(io, fd, many, IOV_MAX + 1, 0, 0), -EINVAL);
	cr_assert_eq(vfsd_io_preadv(io, fd, &v, 1, -1), -EINVAL);
	cr_assert_eq(vfsd_io_preadv(io, -1, &v, 1, 0), -EBADF);
	cr_assert_eq(vfsd_io_pwritev(io, -1, &v, 1, 0, 0), -EBADF);
	cr_assert_eq(vfsd_io_fsync(io, -1, false), -EBADF);
	/* IOV_MAX itself is fine. */
	cr_assert_eq(vfsd_io_pwritev(io, fd, many, IOV_MAX, 0, 0), IOV_MAX);
	cr_assert_eq(vfsd_io_preadv(io, fd, many, IOV_MAX, 0), IOV_MAX);
}

Test(io, errors_uring)
{
	struct vfsd_io *io = NULL;

	cr_assert_eq(vfsd_io_new(8, true, &io), 0);
	check_errors(io);
	vfsd_io_free(io);
}

Test(io, errors_null)
{
	check_errors(NULL);
}

Test(io, free_null)
{
	vfsd_io_free(NULL);
}
