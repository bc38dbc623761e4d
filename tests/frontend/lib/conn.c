/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user connection: message framing with fds, QEMU's reply checks,
 * REPLY_ACK handling and one typed helper per request.
 */
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "vfe.h"
#include "vfsd/util.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vfe_from_fd(int fd, struct vfe **ret)
{
	struct vfe *fe = calloc(1, sizeof(*fe));

	if (!fe) {
		safe_close(fd);
		return -ENOMEM;
	}
	fe->sock = fd;
	fe->timeout_ms = VFE_DEFAULT_TIMEOUT_MS;
	fe->mem_fd = -EBADF;
	fe->kick_presignalled = true;
	fe->fuse_queue = 1;
	fe->next_unique = 1;
	fe->log.fd = -EBADF;
	fe->prev_log.fd = -EBADF;
	fe->device_state_fd = -EBADF;
	for (unsigned i = 0; i < VFE_MAX_QUEUES; i++) {
		fe->queues[i].kick_fd = -EBADF;
		fe->queues[i].call_fd = -EBADF;
		fe->queues[i].err_fd = -EBADF;
	}
	*ret = fe;
	return 0;
}

int vfe_connect(const char *path, int timeout_ms, struct vfe **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t end = now_ms() + (timeout_ms > 0 ? timeout_ms : VFE_DEFAULT_TIMEOUT_MS);

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return vfe_from_fd(fd, ret);
		int r = -errno;
		close(fd);
		/* The back-end may not have called bind() or listen() yet. */
		if ((r != -ECONNREFUSED && r != -ENOENT && r != -EAGAIN) || now_ms() > end)
			return r;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int vfe_swap_socket(struct vfe *fe, int sock)
{
	int old = fe->sock;

	fe->sock = sock;
	fe->features = fe->protocol_features = 0;
	fe->acked_features = fe->acked_protocol = 0;
	fe->logging = false;
	for (unsigned i = 0; i < VFE_MAX_QUEUES; i++)
		fe->queues[i].started = false;
	return old;
}

void vfe_free(struct vfe *fe)
{
	if (!fe)
		return;
	safe_close(fe->sock);
	for (unsigned i = 0; i < VFE_MAX_QUEUES; i++) {
		struct vfe_queue *q = &fe->queues[i];

		safe_close(q->kick_fd);
		safe_close(q->call_fd);
		safe_close(q->err_fd);
		if (q->owned)
			for (unsigned h = 0; h < q->size; h++)
				free(q->owned[h]);
		free(q->owned);
		free(q->nowned);
		free(q->free_stack);
		free(q->pending);
		free(q->done);
		free(q->done_len);
		free(q->inflight);
	}
	if (fe->mem)
		munmap(fe->mem, fe->mem_size);
	safe_close(fe->mem_fd);
	if (fe->log.map)
		munmap(fe->log.map, fe->log.map_len);
	safe_close(fe->log.fd);
	if (fe->prev_log.map)
		munmap(fe->prev_log.map, fe->prev_log.map_len);
	safe_close(fe->prev_log.fd);
	safe_close(fe->device_state_fd);
	free(fe);
}

int vfe_send_raw(struct vfe *fe, const void *buf, size_t len, const int *fds, size_t nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 64)] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 64)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fe->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The rest without fds; MSG_NOSIGNAL again: a closed peer is EPIPE, not SIGPIPE. */
	for (size_t done = (size_t)n; done < len;) {
		n = send(fe->sock, (const char *)buf + done, len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int vfe_send_msg(struct vfe *fe, uint32_t request, uint32_t flags, const void *payload, size_t size,
		 const int *fds, size_t nfds)
{
	uint8_t buf[sizeof(struct vhu_hdr) + VHU_MAX_PAYLOAD];
	struct vhu_hdr h = { .request = request, .flags = flags, .size = (uint32_t)size };

	if (size > VHU_MAX_PAYLOAD)
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	if (size)
		memcpy(buf + sizeof(h), payload, size);
	return vfe_send_raw(fe, buf, sizeof(h) + size, fds, nfds);
}

static int wait_readable(struct vfe *fe, int64_t end)
{
	for (;;) {
		struct pollfd p = { .fd = fe->sock, .events = POLLIN };
		int64_t left = end - now_ms();
		int r;

		if (left < 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

/* Read exactly @len bytes before @end: -ECONNRESET on EOF. */
static int recv_exact(struct vfe *fe, void *buf, size_t len, int64_t end)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int r = wait_readable(fe, end);

		if (r < 0)
			return r;
		n = recv(fe->sock, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int vfe_recv_reply(struct vfe *fe, uint32_t request, void *payload, size_t size, size_t *ret_size,
		   int *fds, size_t *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VHU_MAX_FDS)];
	struct vhu_hdr h;
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	int64_t end = now_ms() + fe->timeout_ms;
	uint8_t scratch[VHU_MAX_PAYLOAD];
	size_t got_fds = 0;
	ssize_t n;
	int r;

	r = wait_readable(fe, end);
	if (r < 0)
		return r;
	do
		n = recvmsg(fe->sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -ECONNRESET : -errno;
	if (n == 0)
		return -ECONNRESET;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int tmp[VHU_MAX_FDS];

		memcpy(tmp, CMSG_DATA(c), k * sizeof(int));
		for (size_t i = 0; i < k; i++) {
			if (fds && nfds && got_fds < *nfds)
				fds[got_fds++] = tmp[i];
			else
				close(tmp[i]);
		}
	}
	if (nfds)
		*nfds = got_fds;
	if ((size_t)n < sizeof(h)) {
		r = recv_exact(fe, (char *)&h + n, sizeof(h) - (size_t)n, end);
		if (r < 0)
			return r;
	}
	if (h.size > VHU_MAX_PAYLOAD)
		return -EMSGSIZE;
	r = recv_exact(fe, scratch, h.size, end);
	if (r < 0)
		return r;
	/* QEMU's vhost_user_read_header(): exactly VERSION|REPLY, and the same request. */
	if (h.flags != (VHU_FLAG_VERSION | VHU_FLAG_REPLY) || h.request != request)
		return -EPROTO;
	if (h.size > size || (!ret_size && h.size != size))
		return -EMSGSIZE;
	if (h.size)
		memcpy(payload, scratch, h.size);
	if (ret_size)
		*ret_size = h.size;
	return 0;
}

int vfe_request_u64(struct vfe *fe, uint32_t request, uint64_t *ret)
{
	uint64_t v;
	int r = vfe_send_msg(fe, request, VHU_FLAG_VERSION, NULL, 0, NULL, 0);

	if (r < 0)
		return r;
	r = vfe_recv_reply(fe, request, &v, sizeof(v), NULL, NULL, NULL);
	if (r < 0)
		return r;
	if (ret)
		*ret = v;
	return 0;
}

static bool reply_ack(struct vfe *fe)
{
	return fe->acked_protocol & BIT64(VHU_PROTOCOL_F_REPLY_ACK);
}

int vfe_send_ack(struct vfe *fe, uint32_t request, const void *payload, size_t size, const int *fds,
		 size_t nfds, bool qemu_needs_reply)
{
	bool need = reply_ack(fe) && (qemu_needs_reply || fe->ack_all);
	uint64_t ack;
	int r;

	r = vfe_send_msg(fe, request, VHU_FLAG_VERSION | (need ? VHU_FLAG_NEED_REPLY : 0), payload,
			 size, fds, nfds);
	if (r < 0 || !need)
		return r;
	r = vfe_recv_reply(fe, request, &ack, sizeof(ack), NULL, NULL, NULL);
	if (r < 0)
		return r;
	return ack ? -EIO : 0;
}

int vfe_sync(struct vfe *fe)
{
	return vfe_request_u64(fe, VHU_GET_FEATURES, NULL);
}

bool vfe_closed(struct vfe *fe, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	char buf[4096];

	for (;;) {
		ssize_t n;
		int r = wait_readable(fe, end);

		if (r < 0)
			return false;
		n = recv(fe->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

/* ---------------------------------------------------------------- typed requests */

int vfe_get_features(struct vfe *fe, uint64_t *ret)
{
	int r = vfe_request_u64(fe, VHU_GET_FEATURES, &fe->features);

	if (r >= 0 && ret)
		*ret = fe->features;
	return r;
}

int vfe_set_features(struct vfe *fe, uint64_t features)
{
	bool log_all = features & BIT64(VHOST_F_LOG_ALL_BIT);
	int r = vfe_send_ack(fe, VHU_SET_FEATURES, &features, sizeof(features), NULL, 0, log_all);

	if (r >= 0)
		fe->acked_features = features;
	return r;
}

int vfe_get_protocol_features(struct vfe *fe, uint64_t *ret)
{
	int r = vfe_request_u64(fe, VHU_GET_PROTOCOL_FEATURES, &fe->protocol_features);

	if (r >= 0 && ret)
		*ret = fe->protocol_features;
	return r;
}

int vfe_set_protocol_features(struct vfe *fe, uint64_t features)
{
	/* The ack rules start applying with the next message, not this one. */
	int r = vfe_send_msg(fe, VHU_SET_PROTOCOL_FEATURES, VHU_FLAG_VERSION, &features,
			     sizeof(features), NULL, 0);

	if (r >= 0)
		fe->acked_protocol = features;
	return r;
}

int vfe_set_owner(struct vfe *fe)
{
	return vfe_send_ack(fe, VHU_SET_OWNER, NULL, 0, NULL, 0, false);
}

int vfe_get_queue_num(struct vfe *fe, uint64_t *ret)
{
	int r = vfe_request_u64(fe, VHU_GET_QUEUE_NUM, &fe->queue_num);

	if (r >= 0 && ret)
		*ret = fe->queue_num;
	return r;
}

int vfe_get_max_mem_slots(struct vfe *fe, uint64_t *ret)
{
	int r = vfe_request_u64(fe, VHU_GET_MAX_MEM_SLOTS, &fe->max_mem_slots);

	if (r >= 0 && ret)
		*ret = fe->max_mem_slots;
	return r;
}

static struct vhu_mem_region region_wire(const struct vfe_region *g)
{
	return (struct vhu_mem_region){ .guest_phys_addr = g->gpa,
					.memory_size = g->size,
					.userspace_addr = g->qva,
					.mmap_offset = g->mmap_offset };
}

int vfe_set_mem_table(struct vfe *fe)
{
	struct vhu_memory m = { .nregions = fe->nregions };
	int fds[VHU_MEM_TABLE_REGIONS];

	if (fe->nregions == 0 || fe->nregions > VHU_MEM_TABLE_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < fe->nregions; i++) {
		m.regions[i] = region_wire(&fe->regions[i]);
		fds[i] = fe->mem_fd;
	}
	/* QEMU sends 8 + 32 * n bytes, not the full table. */
	return vfe_send_ack(fe, VHU_SET_MEM_TABLE, &m, 8 + 32 * (size_t)fe->nregions, fds,
			    fe->nregions, true);
}

int vfe_add_mem_reg(struct vfe *fe, unsigned i)
{
	struct vhu_mem_reg_msg m = { 0 };
	int r;

	if (i >= fe->nregions)
		return -EINVAL;
	m.region = region_wire(&fe->regions[i]);
	r = vfe_send_ack(fe, VHU_ADD_MEM_REG, &m, sizeof(m), &fe->mem_fd, 1, true);
	if (r >= 0)
		fe->regions[i].added = true;
	return r;
}

int vfe_rem_mem_reg(struct vfe *fe, unsigned i)
{
	struct vhu_mem_reg_msg m = { 0 };
	int r;

	if (i >= fe->nregions)
		return -EINVAL;
	m.region = region_wire(&fe->regions[i]);
	r = vfe_send_ack(fe, VHU_REM_MEM_REG, &m, sizeof(m), NULL, 0, true);
	if (r >= 0)
		fe->regions[i].added = false;
	return r;
}

static int vring_state(struct vfe *fe, uint32_t req, unsigned idx, unsigned num, bool need)
{
	struct vhu_vring_state s = { .index = idx, .num = num };

	return vfe_send_ack(fe, req, &s, sizeof(s), NULL, 0, need);
}

int vfe_set_vring_num(struct vfe *fe, unsigned idx, unsigned num)
{
	return vring_state(fe, VHU_SET_VRING_NUM, idx, num, false);
}

int vfe_set_vring_addr(struct vfe *fe, unsigned idx, uint64_t desc_qva, uint64_t used_qva,
		       uint64_t avail_qva, uint64_t log_gpa, uint32_t flags)
{
	struct vhu_vring_addr a = { .index = idx,
				    .flags = flags,
				    .desc_user_addr = desc_qva,
				    .used_user_addr = used_qva,
				    .avail_user_addr = avail_qva,
				    .log_guest_addr = log_gpa };

	return vfe_send_ack(fe, VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0,
			    flags & VHU_VRING_F_LOG);
}

int vfe_set_vring_base(struct vfe *fe, unsigned idx, unsigned base)
{
	return vring_state(fe, VHU_SET_VRING_BASE, idx, base, false);
}

int vfe_get_vring_base(struct vfe *fe, unsigned idx, unsigned *ret)
{
	struct vhu_vring_state s = { .index = idx, .num = 0 };
	int r = vfe_send_msg(fe, VHU_GET_VRING_BASE, VHU_FLAG_VERSION, &s, sizeof(s), NULL, 0);

	if (r < 0)
		return r;
	r = vfe_recv_reply(fe, VHU_GET_VRING_BASE, &s, sizeof(s), NULL, NULL, NULL);
	if (r < 0)
		return r;
	if (s.index != idx)
		return -EPROTO;
	if (ret)
		*ret = s.num;
	return 0;
}

static int vring_fd(struct vfe *fe, uint32_t req, unsigned idx, int fd)
{
	uint64_t u = (idx & VHU_VRING_IDX_MASK) | (fd < 0 ? VHU_VRING_NOFD_MASK : 0);

	return vfe_send_ack(fe, req, &u, sizeof(u), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1, false);
}

int vfe_set_vring_kick(struct vfe *fe, unsigned idx, int fd)
{
	return vring_fd(fe, VHU_SET_VRING_KICK, idx, fd);
}

int vfe_set_vring_call(struct vfe *fe, unsigned idx, int fd)
{
	return vring_fd(fe, VHU_SET_VRING_CALL, idx, fd);
}

int vfe_set_vring_err(struct vfe *fe, unsigned idx, int fd)
{
	return vring_fd(fe, VHU_SET_VRING_ERR, idx, fd);
}

int vfe_set_vring_enable(struct vfe *fe, unsigned idx, bool enable)
{
	int r = vring_state(fe, VHU_SET_VRING_ENABLE, idx, enable, true);

	/* Without REPLY_ACK, QEMU synchronises with a GET_FEATURES round trip. */
	if (r >= 0 && !reply_ack(fe))
		r = vfe_sync(fe);
	return r;
}

int vfe_reset_device(struct vfe *fe)
{
	return vfe_send_ack(fe, VHU_RESET_DEVICE, NULL, 0, NULL, 0, false);
}

int vfe_reset_owner(struct vfe *fe)
{
	int r = vfe_send_ack(fe, VHU_RESET_OWNER, NULL, 0, NULL, 0, true);

	if (r >= 0 && !reply_ack(fe))
		r = vfe_sync(fe);
	return r;
}

int vfe_set_status(struct vfe *fe, uint8_t status)
{
	uint64_t v = status;

	return vfe_send_ack(fe, VHU_SET_STATUS, &v, sizeof(v), NULL, 0, false);
}

int vfe_get_status(struct vfe *fe, uint8_t *ret)
{
	uint64_t v;
	int r = vfe_request_u64(fe, VHU_GET_STATUS, &v);

	if (r >= 0 && ret)
		*ret = (uint8_t)v;
	return r;
}
