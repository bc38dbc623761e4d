/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the iovec reader/writer cursors (src/fuse/chain_io.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "vfsd/chain_io.h"
#include "vfsd/util.h"

/* A source buffer "0123456789abcdefghij" split into iovecs with empty ones in between. */
static char src[21] = "0123456789abcdefghij";
static struct iovec rd_iov[] = {
	{ .iov_base = NULL, .iov_len = 0 },    { .iov_base = src, .iov_len = 3 },
	{ .iov_base = NULL, .iov_len = 0 },    { .iov_base = NULL, .iov_len = 0 },
	{ .iov_base = src + 3, .iov_len = 1 }, { .iov_base = src + 4, .iov_len = 9 },
	{ .iov_base = NULL, .iov_len = 0 },    { .iov_base = src + 13, .iov_len = 7 },
	{ .iov_base = NULL, .iov_len = 0 },
};

Test(chain_io, reader_init_totals)
{
	struct vfsd_reader r;

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	cr_assert_eq(vfsd_reader_available(&r), 20);
	cr_assert_eq(vfsd_reader_consumed(&r), 0);
}

Test(chain_io, reader_init_overflow)
{
	struct iovec iov[2] = {
		{ .iov_base = src, .iov_len = SIZE_MAX },
		{ .iov_base = src, .iov_len = 2 },
	};
	struct vfsd_reader r;
	struct vfsd_writer w;

	cr_assert_eq(vfsd_reader_init(&r, iov, 2), -EOVERFLOW);
	cr_assert_eq(vfsd_writer_init(&w, iov, 2), -EOVERFLOW);
	/* SIZE_MAX alone still fits */
	cr_assert_eq(vfsd_reader_init(&r, iov, 1), 0);
	cr_assert_eq(vfsd_reader_available(&r), SIZE_MAX);
}

Test(chain_io, reader_empty_chain)
{
	struct iovec iov[3] = { { 0 } };
	struct vfsd_reader r;
	char c = 'x';

	cr_assert_eq(vfsd_reader_init(&r, NULL, 0), 0);
	cr_assert_eq(vfsd_reader_available(&r), 0);
	cr_assert_eq(vfsd_reader_read(&r, &c, 1), -EINVAL);
	cr_assert_eq(vfsd_reader_read(&r, &c, 0), 0);
	cr_assert_eq(vfsd_reader_init(&r, iov, 3), 0); /* only zero-length iovecs */
	cr_assert_eq(vfsd_reader_available(&r), 0);
	cr_assert_eq(vfsd_reader_read(&r, &c, 1), -EINVAL);
	cr_assert_eq(c, 'x');
}

Test(chain_io, reader_reads_across_iovecs)
{
	struct vfsd_reader r;
	char buf[21] = { 0 };

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	/* 2 bytes inside the first iovec, then 5 bytes spanning 3 (with empties between) */
	cr_assert_eq(vfsd_reader_read(&r, buf, 2), 0);
	cr_assert_str_eq(buf, "01");
	cr_assert_eq(vfsd_reader_read(&r, buf, 5), 0);
	buf[5] = 0;
	cr_assert_str_eq(buf, "23456");
	cr_assert_eq(vfsd_reader_consumed(&r), 7);
	cr_assert_eq(vfsd_reader_available(&r), 13);
	/* up to the exact end of an iovec (ends at src+13), then the rest */
	cr_assert_eq(vfsd_reader_read(&r, buf, 6), 0);
	buf[6] = 0;
	cr_assert_str_eq(buf, "789abc");
	cr_assert_eq(vfsd_reader_read(&r, buf, 7), 0);
	buf[7] = 0;
	cr_assert_str_eq(buf, "defghij");
	cr_assert_eq(vfsd_reader_available(&r), 0);
	cr_assert_eq(vfsd_reader_consumed(&r), 20);
}

Test(chain_io, reader_all_or_nothing)
{
	struct vfsd_reader r;
	char buf[32];

	memset(buf, 'Z', sizeof(buf));
	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	cr_assert_eq(vfsd_reader_skip(&r, 15), 0);
	cr_assert_eq(vfsd_reader_read(&r, buf, 6), -EINVAL);
	cr_assert_eq(buf[0], 'Z', "a failed read must not copy anything");
	cr_assert_eq(vfsd_reader_available(&r), 5);
	cr_assert_eq(vfsd_reader_consumed(&r), 15);
	cr_assert_eq(vfsd_reader_skip(&r, 6), -EINVAL);
	cr_assert_eq(vfsd_reader_available(&r), 5);
	cr_assert_eq(vfsd_reader_read(&r, buf, 5), 0);
	cr_assert_eq(memcmp(buf, "fghij", 5), 0);
}

Test(chain_io, reader_skip_then_read)
{
	struct vfsd_reader r;
	char c;

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	cr_assert_eq(vfsd_reader_skip(&r, 3), 0); /* exactly the first iovec */
	cr_assert_eq(vfsd_reader_read(&r, &c, 1), 0);
	cr_assert_eq(c, '3');
	cr_assert_eq(vfsd_reader_skip(&r, 0), 0);
	cr_assert_eq(vfsd_reader_skip(&r, 9), 0);
	cr_assert_eq(vfsd_reader_read(&r, &c, 1), 0);
	cr_assert_eq(c, 'd');
}

Test(chain_io, reader_iov_extraction)
{
	struct vfsd_reader r;
	struct iovec out[4];
	unsigned int n = 99;

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	cr_assert_eq(vfsd_reader_skip(&r, 1), 0);
	/* 1..14: src[1..3) + src[3] + src[4..13) + src[13..15) = 4 pieces, no empty ones */
	cr_assert_eq(vfsd_reader_iov(&r, 14, out, 4, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(out[0].iov_base, src + 1);
	cr_assert_eq(out[0].iov_len, 2);
	cr_assert_eq(out[1].iov_base, src + 3);
	cr_assert_eq(out[1].iov_len, 1);
	cr_assert_eq(out[2].iov_base, src + 4);
	cr_assert_eq(out[2].iov_len, 9);
	cr_assert_eq(out[3].iov_base, src + 13);
	cr_assert_eq(out[3].iov_len, 2);
	cr_assert_eq(vfsd_reader_consumed(&r), 15);
	cr_assert_eq(vfsd_reader_available(&r), 5);
	/* zero bytes: zero iovecs */
	cr_assert_eq(vfsd_reader_iov(&r, 0, out, 0, &n), 0);
	cr_assert_eq(n, 0);
}

Test(chain_io, reader_iov_too_small_max)
{
	struct vfsd_reader r;
	struct iovec out[3];
	unsigned int n = 77;

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	/* the whole chain is 4 non-empty pieces */
	cr_assert_eq(vfsd_reader_iov(&r, 20, out, 3, &n), -E2BIG);
	cr_assert_eq(n, 77, "ret_cnt untouched on error");
	cr_assert_eq(vfsd_reader_consumed(&r), 0, "nothing consumed on error");
	cr_assert_eq(vfsd_reader_available(&r), 20);
	cr_assert_eq(vfsd_reader_iov(&r, 21, out, 3, &n), -EINVAL);
	cr_assert_eq(vfsd_reader_consumed(&r), 0);
	/* 13 bytes need exactly 3 */
	cr_assert_eq(vfsd_reader_iov(&r, 13, out, 3, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(vfsd_reader_consumed(&r), 13);
}

Test(chain_io, reader_limit_fences)
{
	struct vfsd_reader r, copy;
	struct iovec out[8];
	unsigned int n;
	char buf[8];

	cr_assert_eq(vfsd_reader_init(&r, rd_iov, ARRAY_SIZE(rd_iov)), 0);
	cr_assert_eq(vfsd_reader_skip(&r, 2), 0);
	copy = r;
	cr_assert_eq(vfsd_reader_limit(&copy, 19), -EINVAL);
	cr_assert_eq(vfsd_reader_available(&copy), 18, "failed limit changes nothing");
	cr_assert_eq(vfsd_reader_limit(&copy, 4), 0);
	cr_assert_eq(vfsd_reader_available(&copy), 4);
	cr_assert_eq(vfsd_reader_read(&copy, buf, 5), -EINVAL);
	cr_assert_eq(vfsd_reader_skip(&copy, 5), -EINVAL);
	cr_assert_eq(vfsd_reader_iov(&copy, 5, out, 8, &n), -EINVAL);
	cr_assert_eq(vfsd_reader_iov(&copy, 4, out, 8, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(out[2].iov_base, src + 4);
	cr_assert_eq(out[2].iov_len, 2, "iov extraction must stop at the fence");
	cr_assert_eq(vfsd_reader_available(&copy), 0);
	/* the original is not affected */
	cr_assert_eq(vfsd_reader_available(&r), 18);
}

Test(chain_io, writer_writes_across_iovecs)
{
	char a[3], b[1], c[5];
	struct iovec iov[] = {
		{ .iov_base = NULL, .iov_len = 0 },	 { .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = NULL, .iov_len = 0 },	 { .iov_base = b, .iov_len = sizeof(b) },
		{ .iov_base = c, .iov_len = sizeof(c) },
	};
	struct vfsd_writer w;

	memset(a, '.', 3);
	memset(b, '.', 1);
	memset(c, '.', 5);
	cr_assert_eq(vfsd_writer_init(&w, iov, ARRAY_SIZE(iov)), 0);
	cr_assert_eq(vfsd_writer_available(&w), 9);
	cr_assert_eq(vfsd_writer_write(&w, "AB", 2), 0);
	cr_assert_eq(vfsd_writer_write(&w, "CDE", 3), 0);
	cr_assert_eq(vfsd_writer_written(&w), 5);
	cr_assert_eq(vfsd_writer_available(&w), 4);
	cr_assert_eq(memcmp(a, "ABC", 3), 0);
	cr_assert_eq(b[0], 'D');
	cr_assert_eq(memcmp(c, "E....", 5), 0);
	/* too much: nothing written */
	cr_assert_eq(vfsd_writer_write(&w, "12345", 5), -ENOSPC);
	cr_assert_eq(memcmp(c, "E....", 5), 0);
	cr_assert_eq(vfsd_writer_written(&w), 5);
	cr_assert_eq(vfsd_writer_write(&w, "1234", 4), 0);
	cr_assert_eq(memcmp(c, "E1234", 5), 0);
	cr_assert_eq(vfsd_writer_available(&w), 0);
	cr_assert_eq(vfsd_writer_write(&w, "", 0), 0);
	cr_assert_eq(vfsd_writer_write(&w, "x", 1), -ENOSPC);
}

Test(chain_io, writer_iov_and_advance)
{
	char a[4], b[6];
	struct iovec iov[] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = NULL, .iov_len = 0 },
		{ .iov_base = b, .iov_len = sizeof(b) },
	};
	struct iovec out[4];
	struct vfsd_writer w;
	unsigned int n = 0;

	cr_assert_eq(vfsd_writer_init(&w, iov, ARRAY_SIZE(iov)), 0);
	cr_assert_eq(vfsd_writer_advance(&w, 3), 0);
	/* describes min(len, available) and does not advance */
	cr_assert_eq(vfsd_writer_iov(&w, 100, out, 4, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0].iov_base, a + 3);
	cr_assert_eq(out[0].iov_len, 1);
	cr_assert_eq(out[1].iov_base, b);
	cr_assert_eq(out[1].iov_len, 6);
	cr_assert_eq(vfsd_writer_written(&w), 3);
	cr_assert_eq(vfsd_writer_iov(&w, 1, out, 4, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0].iov_len, 1);
	cr_assert_eq(vfsd_writer_iov(&w, 2, out, 1, &n), -E2BIG);
	cr_assert_eq(vfsd_writer_advance(&w, 8), -ENOSPC);
	cr_assert_eq(vfsd_writer_written(&w), 3);
	cr_assert_eq(vfsd_writer_advance(&w, 7), 0);
	cr_assert_eq(vfsd_writer_available(&w), 0);
	cr_assert_eq(vfsd_writer_iov(&w, 5, out, 0, &n), 0);
	cr_assert_eq(n, 0);
}

Test(chain_io, writer_limit)
{
	char a[4], b[6];
	struct iovec iov[] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = b, .iov_len = sizeof(b) },
	};
	struct iovec out[4];
	struct vfsd_writer w;
	unsigned int n = 0;

	memset(b, '.', sizeof(b));
	cr_assert_eq(vfsd_writer_init(&w, iov, ARRAY_SIZE(iov)), 0);
	vfsd_writer_limit(&w, 100);
	cr_assert_eq(vfsd_writer_available(&w), 10, "a larger limit changes nothing");
	vfsd_writer_limit(&w, 5);
	cr_assert_eq(vfsd_writer_available(&w), 5);
	cr_assert_eq(vfsd_writer_iov(&w, 100, out, 4, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[1].iov_len, 1);
	cr_assert_eq(vfsd_writer_write(&w, "123456", 6), -ENOSPC);
	cr_assert_eq(vfsd_writer_write(&w, "12345", 5), 0);
	cr_assert_eq(memcmp(b, "5.....", 6), 0);
}

/* Byte-by-byte iovecs: every read of every size at every offset returns the right bytes. */
Test(chain_io, reader_single_byte_iovecs)
{
	struct iovec iov[40];
	struct vfsd_reader r;
	char buf[21];

	for (unsigned int i = 0; i < 40; i++) {
		iov[i].iov_base = i % 2 ? src + i / 2 : NULL;
		iov[i].iov_len = i % 2;
	}
	for (size_t start = 0; start <= 20; start++) {
		for (size_t len = 0; start + len <= 20; len++) {
			cr_assert_eq(vfsd_reader_init(&r, iov, 40), 0);
			cr_assert_eq(vfsd_reader_skip(&r, start), 0);
			cr_assert_eq(vfsd_reader_read(&r, buf, len), 0);
			cr_assert_eq(memcmp(buf, src + start, len), 0, "start %zu len %zu", start,
				     len);
			cr_assert_eq(vfsd_reader_available(&r), 20 - start - len);
		}
	}
}
