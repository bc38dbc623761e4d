/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * chain_io: reader/writer cursors over iovec arrays.
 *
 * Invariants of struct vfsd_iov_cursor:
 *  - @remaining is the hard bound: no function ever moves, copies or
 *    describes more than @remaining bytes, even when the iovecs hold more.
 *    That is what lets vfsd_reader_limit()/vfsd_writer_limit() fence an op
 *    into part of a chain by lowering @remaining alone.
 *  - When @remaining > 0, iov[idx] has bytes left at @off (the cursor is
 *    "normalized": exhausted and zero-length iovecs are skipped eagerly).
 */
#include <string.h>

#include "vfsd/chain_io.h"
#include "vfsd/util.h"

/* Skip exhausted and zero-length iovecs so iov[idx] has data at @off (when any is left). */
static void cursor_normalize(struct vfsd_iov_cursor *c)
{
	while (c->idx < c->cnt && c->off >= c->iov[c->idx].iov_len) {
		c->idx++;
		c->off = 0;
	}
}

static int cursor_init(struct vfsd_iov_cursor *c, const struct iovec *iov, unsigned int cnt)
{
	size_t total = 0;

	*c = (struct vfsd_iov_cursor){ .iov = iov, .cnt = cnt };
	if (cnt > 0 && !iov)
		return -EINVAL;
	for (unsigned int i = 0; i < cnt; i++)
		if (ADD_OVERFLOW(total, iov[i].iov_len, &total))
			return -EOVERFLOW;
	c->remaining = total;
	cursor_normalize(c);
	return 0;
}

/* Move past @len bytes; the caller checked len <= remaining. */
static void cursor_advance(struct vfsd_iov_cursor *c, size_t len)
{
	c->remaining -= len;
	c->consumed += len;
	while (len > 0) {
		size_t piece = MIN(len, c->iov[c->idx].iov_len - c->off);

		c->off += piece;
		len -= piece;
		cursor_normalize(c);
	}
	cursor_normalize(c);
}

/* Copy @len bytes between @buf and the iovecs from the cursor on, without advancing. */
static void cursor_copy(const struct vfsd_iov_cursor *c, void *buf, size_t len, bool to_iov)
{
	unsigned int idx = c->idx;
	size_t off = c->off;
	char *p = buf;

	while (len > 0) {
		size_t avail = c->iov[idx].iov_len - off;
		size_t piece = MIN(len, avail);
		char *base = (char *)c->iov[idx].iov_base + off;

		if (piece > 0) {
			if (to_iov)
				memcpy(base, p, piece);
			else
				memcpy(p, base, piece);
		}
		p += piece;
		len -= piece;
		idx++;
		off = 0;
	}
}

/*
 * Describe the next @len bytes (len <= remaining) as at most @max iovecs.
 * Returns: 0 or -E2BIG. Writes @out only up to @max entries.
 */
static int cursor_describe(const struct vfsd_iov_cursor *c, size_t len, struct iovec *out,
			   unsigned int max, unsigned int *ret_cnt)
{
	unsigned int idx = c->idx, n = 0;
	size_t off = c->off;

	while (len > 0) {
		size_t piece = MIN(len, c->iov[idx].iov_len - off);

		if (piece > 0) {
			if (n >= max)
				return -E2BIG;
			out[n].iov_base = (char *)c->iov[idx].iov_base + off;
			out[n].iov_len = piece;
			n++;
			len -= piece;
		}
		idx++;
		off = 0;
	}
	*ret_cnt = n;
	return 0;
}

int vfsd_reader_init(struct vfsd_reader *r, const struct iovec *iov, unsigned int cnt)
{
	return cursor_init(&r->c, iov, cnt);
}

int vfsd_writer_init(struct vfsd_writer *w, const struct iovec *iov, unsigned int cnt)
{
	return cursor_init(&w->c, iov, cnt);
}

size_t vfsd_reader_available(const struct vfsd_reader *r)
{
	return r->c.remaining;
}

size_t vfsd_reader_consumed(const struct vfsd_reader *r)
{
	return r->c.consumed;
}

int vfsd_reader_read(struct vfsd_reader *r, void *buf, size_t len)
{
	if (len > r->c.remaining)
		return -EINVAL;
	cursor_copy(&r->c, buf, len, false);
	cursor_advance(&r->c, len);
	return 0;
}

int vfsd_reader_skip(struct vfsd_reader *r, size_t len)
{
	if (len > r->c.remaining)
		return -EINVAL;
	cursor_advance(&r->c, len);
	return 0;
}

int vfsd_reader_iov(struct vfsd_reader *r, size_t len, struct iovec *out, unsigned int max,
		    unsigned int *ret_cnt)
{
	unsigned int n;
	int ret;

	if (len > r->c.remaining)
		return -EINVAL;
	ret = cursor_describe(&r->c, len, out, max, &n);
	if (ret < 0)
		return ret;
	cursor_advance(&r->c, len);
	*ret_cnt = n;
	return 0;
}

int vfsd_reader_limit(struct vfsd_reader *r, size_t len)
{
	if (len > r->c.remaining)
		return -EINVAL;
	r->c.remaining = len;
	return 0;
}

size_t vfsd_writer_available(const struct vfsd_writer *w)
{
	return w->c.remaining;
}

size_t vfsd_writer_written(const struct vfsd_writer *w)
{
	return w->c.consumed;
}

int vfsd_writer_write(struct vfsd_writer *w, const void *buf, size_t len)
{
	if (len > w->c.remaining)
		return -ENOSPC;
	cursor_copy(&w->c, (void *)buf, len, true);
	cursor_advance(&w->c, len);
	return 0;
}

int vfsd_writer_iov(const struct vfsd_writer *w, size_t len, struct iovec *out, unsigned int max,
		    unsigned int *ret_cnt)
{
	return cursor_describe(&w->c, MIN(len, w->c.remaining), out, max, ret_cnt);
}

int vfsd_writer_advance(struct vfsd_writer *w, size_t len)
{
	if (len > w->c.remaining)
		return -ENOSPC;
	cursor_advance(&w->c, len);
	return 0;
}

void vfsd_writer_limit(struct vfsd_writer *w, size_t len)
{
	w->c.remaining = MIN(w->c.remaining, len);
}
