/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io: file data I/O for one thread. Each queue thread owns one io_uring and
 * submits readv/writev whose iovecs point straight into guest memory, so the
 * kernel copies between the file and guest RAM with no bounce buffer. When
 * io_uring is unavailable (kernel, seccomp profile, io_uring_disabled) the
 * same calls fall back to preadv2/pwritev2.
 *
 * A vfsd_io is not thread-safe: create it on, and use it only from, the
 * thread that owns it.
 */
#ifndef VFSD_IO_H
#define VFSD_IO_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

struct vfsd_io;

/**
 * vfsd_io_new() - create the calling thread's io context.
 * @entries: submission queue size
 * @use_uring: false forces the syscall fallback
 * Returns: 0 or -errno (-ENOMEM). An unavailable io_uring is not an error.
 */
int vfsd_io_new(unsigned int entries, bool use_uring, struct vfsd_io **ret);

/** vfsd_io_free() - tear down; accepts NULL. */
void vfsd_io_free(struct vfsd_io *io);

/** vfsd_io_uses_uring() - whether @io submits to an io_uring. */
bool vfsd_io_uses_uring(const struct vfsd_io *io);

/**
 * vfsd_io_preadv() - read at @off into @iov; @io may be NULL (plain syscall).
 * Returns: bytes read or -errno.
 */
ssize_t vfsd_io_preadv(struct vfsd_io *io, int fd, const struct iovec *iov, unsigned int cnt,
		       off_t off);

/**
 * vfsd_io_pwritev() - write @iov at @off with RWF_* @rwf flags; @io may be NULL.
 * Returns: bytes written or -errno.
 */
ssize_t vfsd_io_pwritev(struct vfsd_io *io, int fd, const struct iovec *iov, unsigned int cnt,
			off_t off, int rwf);

/** vfsd_io_fsync() - fsync or fdatasync @fd; @io may be NULL. Returns 0 or -errno. */
int vfsd_io_fsync(struct vfsd_io *io, int fd, bool datasync);

#endif
