/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * chain_io: a reader over the device-readable part of a descriptor chain and a
 * writer over its device-writable part, both plain iovec cursors.
 *
 * The FUSE layer sees only these, never guest memory or rings, so it can be
 * unit-tested and fuzzed over ordinary buffers. The iovecs point into guest
 * memory that the guest may change concurrently: callers copy what they need
 * out with vfsd_reader_read() before they check it.
 */
#ifndef VFSD_CHAIN_IO_H
#define VFSD_CHAIN_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* A chain has at most this many buffers (the largest queue size we accept). */
#define VFSD_CHAIN_MAX_IOV 1024

struct vfsd_iov_cursor {
	const struct iovec *iov; /* not owned */
	unsigned int cnt;
	unsigned int idx; /* current iovec */
	size_t off;	  /* offset inside iov[idx] */
	size_t remaining; /* bytes left from the cursor to the end */
	size_t consumed;  /* bytes moved past so far */
};

struct vfsd_reader {
	struct vfsd_iov_cursor c;
};

struct vfsd_writer {
	struct vfsd_iov_cursor c;
};

/**
 * vfsd_reader_init() - start a reader over @cnt iovecs.
 * Returns: 0, or -EOVERFLOW when the total length does not fit a size_t.
 */
int vfsd_reader_init(struct vfsd_reader *r, const struct iovec *iov, unsigned int cnt);

/** vfsd_writer_init() - start a writer over @cnt iovecs; as vfsd_reader_init(). */
int vfsd_writer_init(struct vfsd_writer *w, const struct iovec *iov, unsigned int cnt);

/** vfsd_reader_available() - bytes left to read. */
size_t vfsd_reader_available(const struct vfsd_reader *r);

/** vfsd_reader_consumed() - bytes read (or skipped) so far. */
size_t vfsd_reader_consumed(const struct vfsd_reader *r);

/**
 * vfsd_reader_read() - copy exactly @len bytes out and advance.
 * Returns: 0, or -EINVAL (nothing consumed) when fewer than @len bytes are left.
 */
int vfsd_reader_read(struct vfsd_reader *r, void *buf, size_t len);

/** vfsd_reader_skip() - advance by @len bytes; -EINVAL if fewer are left. */
int vfsd_reader_skip(struct vfsd_reader *r, size_t len);

/**
 * vfsd_reader_iov() - describe the next @len bytes as iovecs without copying
 * (for zero-copy WRITE) and advance past them.
 * @out:     up to @max iovecs
 * @ret_cnt: how many were used
 * Returns: 0; -EINVAL when fewer than @len bytes are left; -E2BIG when @max is
 * too small. Nothing is consumed on error.
 */
int vfsd_reader_iov(struct vfsd_reader *r, size_t len, struct iovec *out, unsigned int max,
		    unsigned int *ret_cnt);

/**
 * vfsd_reader_limit() - fence @r to its next @len bytes: afterwards it reads,
 * skips and describes nothing beyond them (the FUSE dispatcher hands ops a
 * reader limited to the request, so they cannot read past fuse_in_header.len).
 * Returns: 0, or -EINVAL (nothing changed) when fewer than @len bytes are left.
 */
int vfsd_reader_limit(struct vfsd_reader *r, size_t len);

/** vfsd_writer_available() - room left to write. */
size_t vfsd_writer_available(const struct vfsd_writer *w);

/** vfsd_writer_written() - bytes written (or skipped) so far. */
size_t vfsd_writer_written(const struct vfsd_writer *w);

/**
 * vfsd_writer_write() - copy @len bytes in and advance.
 * Returns: 0, or -ENOSPC (nothing written) when there is less room than @len.
 */
int vfsd_writer_write(struct vfsd_writer *w, const void *buf, size_t len);

/**
 * vfsd_writer_iov() - describe up to @len bytes of the room left as iovecs
 * (for zero-copy READ) WITHOUT advancing; call vfsd_writer_advance() with what
 * was actually filled. Describes min(@len, available) bytes.
 * Returns: 0 or -E2BIG when @max iovecs are not enough.
 */
int vfsd_writer_iov(const struct vfsd_writer *w, size_t len, struct iovec *out, unsigned int max,
		    unsigned int *ret_cnt);

/** vfsd_writer_advance() - move past @len bytes filled through vfsd_writer_iov(); -ENOSPC if too
 * many. */
int vfsd_writer_advance(struct vfsd_writer *w, size_t len);

/**
 * vfsd_writer_limit() - cap the room left in @w at @len bytes (no change when
 * less is left), so an op handed @w cannot write more than its reply allows.
 */
void vfsd_writer_limit(struct vfsd_writer *w, size_t len);

#endif
