/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/io.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vfsd/util.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define IO_DEFAULT_ENTRIES 64

struct vfsd_io {
	bool uring;
	bool uring_writes; /* writes and fsync on the ring too (see vfsd_io_pwritev) */
	struct io_uring ring;
};

int vfsd_io_new(unsigned int entries, bool use_uring, struct vfsd_io **ret)
{
	struct vfsd_io *io = calloc(1, sizeof(*io));
	int r;

	if (!io)
		return -ENOMEM;
	if (use_uring) {
		if (entries == 0)
			entries = IO_DEFAULT_ENTRIES;
		/*
		 * SINGLE_ISSUER (6.0) and COOP_TASKRUN (5.19) save work in the
		 * kernel because one thread submits and reaps; older kernels
		 * reject unknown setup flags with -EINVAL, so retry without.
		 */
		r = io_uring_queue_init(entries, &io->ring,
					IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN);
		if (r == -EINVAL)
			r = io_uring_queue_init(entries, &io->ring, 0);
		if (r == 0)
			io->uring = true;
		else
			/*
			 * -ENOSYS (old kernel), -EPERM (io_uring_disabled, seccomp),
			 * -EOPNOTSUPP, -ENOMEM (memlock): all mean "no ring here";
			 * the syscall path does the same job.
			 */
			log_debug("io_uring unavailable (%d), using preadv2/pwritev2", r);
	}
	*ret = io;
	return 0;
}

void vfsd_io_free(struct vfsd_io *io)
{
	if (!io)
		return;
	if (io->uring)
		io_uring_queue_exit(&io->ring);
	free(io);
}

bool vfsd_io_uses_uring(const struct vfsd_io *io)
{
	return io && io->uring;
}

static struct io_uring_sqe *get_sqe(struct vfsd_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe) {
		/* Only one op is ever in flight, but be safe: flush and retry. */
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	return sqe;
}

/*
 * Submit the one prepared SQE and wait for its completion. If the ring
 * misbehaves (submit fails for good), stop using it: an SQE left in the
 * queue would otherwise be submitted later with dangling iovecs.
 */
static ssize_t submit_and_reap(struct vfsd_io *io)
{
	struct io_uring_cqe *cqe;
	ssize_t res;
	int r;

	for (;;) {
		r = io_uring_submit(&io->ring);
		if (r >= 1)
			break;
		if (r == -EINTR || r == -EAGAIN || r == -EBUSY)
			continue;
		/* 0 submitted or a hard error: the ring is unusable. */
		io_uring_queue_exit(&io->ring);
		io->uring = false;
		return r < 0 ? r : -EIO;
	}
	for (;;) {
		r = io_uring_wait_cqe(&io->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0) {
			/* The op is in flight and we cannot reap it: give the ring up. */
			io_uring_queue_exit(&io->ring);
			io->uring = false;
			return r;
		}
		break;
	}
	res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	return res;
}

static int check_args(unsigned int cnt, off_t off)
{
	if (cnt > IOV_MAX || off < 0)
		return -EINVAL;
	return 0;
}

ssize_t vfsd_io_preadv(struct vfsd_io *io, int fd, const struct iovec *iov, unsigned int cnt,
		       off_t off)
{
	struct io_uring_sqe *sqe;
	int r = check_args(cnt, off);

	if (r < 0)
		return r;
	if (io && io->uring && (sqe = get_sqe(io))) {
		io_uring_prep_readv2(sqe, fd, iov, cnt, (__u64)off, 0);
		return submit_and_reap(io);
	}
	for (;;) {
		ssize_t n = preadv2(fd, iov, (int)cnt, off, 0);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t vfsd_io_pwritev(struct vfsd_io *io, int fd, const struct iovec *iov, unsigned int cnt,
			off_t off, int rwf)
{
	struct io_uring_sqe *sqe;
	int r = check_args(cnt, off);

	if (r < 0)
		return r;
	/*
	 * Buffered writes go straight to pwritev2: measured on this kernel and
	 * ext4, io_uring hands every buffered write to an io-wq worker (a wake-up
	 * and a thread switch per request), which with one request in flight per
	 * queue thread made writes 1.4-2x slower (docs/performance.md). The ring
	 * is used for writes only when a caller asks for it (O_DIRECT, batching).
	 */
	if (io && io->uring && io->uring_writes && (sqe = get_sqe(io))) {
		io_uring_prep_writev2(sqe, fd, iov, cnt, (__u64)off, rwf);
		return submit_and_reap(io);
	}
	for (;;) {
		ssize_t n = pwritev2(fd, iov, (int)cnt, off, rwf);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

int vfsd_io_fsync(struct vfsd_io *io, int fd, bool datasync)
{
	struct io_uring_sqe *sqe;

	/* fsync blocks: io_uring would punt it to a worker thread as well (see above). */
	if (io && io->uring && io->uring_writes && (sqe = get_sqe(io))) {
		io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
		return (int)submit_and_reap(io);
	}
	for (;;) {
		int r = datasync ? fdatasync(fd) : fsync(fd);
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}
