/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/vhost.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "vfsd/guest_mem.h"
#include "vfsd/util.h"
#include "vfsd/wire.h"

struct vfsd_queue {
	struct vfsd_vhost_dev *dev;
	unsigned int idx;
	struct vfsd_vring vr;
	int kick_fd;
	int call_fd;
	int err_fd;
	int ctl_fd;   /* eventfd: wakes the queue thread (stop, enable) */
	bool enabled; /* atomic: SET_VRING_ENABLE */
	bool stop;    /* atomic: the thread must exit */
	bool broken;  /* atomic: malformed ring seen, no more processing until restarted */
	bool running; /* control thread only: a thread exists */
	pthread_t thread;
	pthread_mutex_t call_lock; /* call_fd/err_fd swaps vs. signalling them */
};

struct vfsd_vhost_dev {
	const struct vfsd_vhost_backend_ops *ops;
	void *opaque;
	unsigned int max_queues;
	pthread_rwlock_t lock; /* memory table and ring addresses */
	struct vfsd_guest_mem mem;
	uint64_t features;	    /* acked by SET_FEATURES */
	uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
	uint8_t status;		    /* virtio device status (SET/GET_STATUS) */
	struct vfsd_dirty_log log;  /* SET_LOG_BASE; in use while LOG_ALL is acked */
	bool logging;		    /* rings point at log */

	/* the device-state transfer thread (SET_DEVICE_STATE_FD) */
	struct {
		bool started; /* a thread exists and has not been joined */
		bool done;    /* a transfer ran; result is valid */
		int result;
		uint32_t direction;
		int fd;
		pthread_t thread;
	} xfer;
	struct vfsd_queue q[VFSD_MAX_QUEUES];
};

static void xfer_reap(struct vfsd_vhost_dev *d);

struct vhu_msg {
	struct vhu_hdr hdr;
	union {
		uint8_t bytes[VHU_MAX_PAYLOAD];
		uint64_t u64;
	} p;
	int fds[VHU_MAX_FDS];
	unsigned int nfds;
};

struct vhu_reply {
	uint8_t buf[64];
	uint32_t size;
};

uint64_t vfsd_vhost_features(void)
{
	return BIT64(VIRTIO_F_VERSION_1_BIT) | BIT64(VIRTIO_RING_F_INDIRECT_DESC_BIT) |
	       BIT64(VIRTIO_RING_F_EVENT_IDX_BIT) | BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT) |
	       BIT64(VHOST_F_LOG_ALL_BIT);
}

uint64_t vfsd_vhost_protocol_features(const struct vfsd_vhost_dev *d)
{
	/* Only what is implemented: QEMU acks every bit we offer. */
	uint64_t f = BIT64(VHU_PROTOCOL_F_MQ) | BIT64(VHU_PROTOCOL_F_LOG_SHMFD) |
		     BIT64(VHU_PROTOCOL_F_REPLY_ACK) | BIT64(VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);

	if (d->ops->reset)
		f |= BIT64(VHU_PROTOCOL_F_STATUS) | BIT64(VHU_PROTOCOL_F_RESET_DEVICE);
	if (d->ops->save_state && d->ops->load_state)
		f |= BIT64(VHU_PROTOCOL_F_DEVICE_STATE);
	return f;
}

/* ---- queue threads ---- */

static void queue_notify(struct vfsd_queue *q)
{
	if (!vfsd_vring_need_notify(&q->vr))
		return;
	pthread_mutex_lock(&q->call_lock);
	if (eventfd_signal(q->call_fd) < 0)
		log_warn("queue %u: cannot signal the call eventfd: %m", q->idx);
	pthread_mutex_unlock(&q->call_lock);
}

static size_t chain_in_size(const struct vfsd_chain *c)
{
	size_t n = 0;

	for (unsigned int i = 0; i < c->n_in; i++)
		n += c->in[i].iov_len;
	return n;
}

/*
 * Serve what the ring holds. Each request is popped, handled and pushed under
 * the device's read lock, so the memory table cannot change under it; between
 * requests the control thread gets its chance.
 */
static void queue_process(struct vfsd_queue *q, struct vfsd_chain *chain, void *tdata)
{
	struct vfsd_vhost_dev *dev = q->dev;

	for (;;) {
		const char *why = NULL;
		int r;

		if (__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE) ||
		    !__atomic_load_n(&q->enabled, __ATOMIC_ACQUIRE))
			return;

		pthread_rwlock_rdlock(&dev->lock);
		if (!vfsd_vring_ready(&q->vr)) {
			pthread_rwlock_unlock(&dev->lock);
			return;
		}
		r = vfsd_vring_pop(&q->vr, &dev->mem, chain, &why);
		if (r < 0) {
			pthread_rwlock_unlock(&dev->lock);
			log_error("queue %u: %s (avail index %u); the queue is stopped until the "
				  "front-end restarts it",
				  q->idx, why ? why : strerror(-r), q->vr.last_avail_idx);
			__atomic_store_n(&q->broken, true, __ATOMIC_RELEASE);
			pthread_mutex_lock(&q->call_lock);
			eventfd_signal(q->err_fd);
			pthread_mutex_unlock(&q->call_lock);
			return;
		}
		if (r == 0) {
			bool more = vfsd_vring_enable_kicks(&q->vr);
			pthread_rwlock_unlock(&dev->lock);
			if (!more)
				return;
			continue;
		}

		r = dev->ops->handle(dev->opaque, q->idx, tdata, chain);
		if (r < 0)
			r = 0;
		if ((size_t)r > chain_in_size(chain)) {
			log_error("queue %u: handler claims %d bytes for a %zu-byte reply area",
				  q->idx, r, chain_in_size(chain));
			r = 0;
		}
		vfsd_vring_push(&q->vr, chain, chain->head, (uint32_t)r);
		queue_notify(q);
		pthread_rwlock_unlock(&dev->lock);
	}
}

static void *queue_thread(void *arg)
{
	struct vfsd_queue *q = arg;
	struct vfsd_vhost_dev *dev = q->dev;
	_cleanup_free_ struct vfsd_chain *chain = malloc(sizeof(*chain));
	void *tdata = NULL;
	int r;

	if (!chain) {
		log_error("queue %u: out of memory", q->idx);
		__atomic_store_n(&q->broken, true, __ATOMIC_RELEASE);
		return NULL;
	}
	r = dev->ops->thread_start ? dev->ops->thread_start(dev->opaque, q->idx, &tdata) : 0;
	if (r < 0) {
		log_error("queue %u: cannot start: %s", q->idx, strerror(-r));
		__atomic_store_n(&q->broken, true, __ATOMIC_RELEASE);
		return NULL;
	}
	log_debug("queue %u: thread started", q->idx);

	while (!__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE)) {
		bool active = __atomic_load_n(&q->enabled, __ATOMIC_ACQUIRE) &&
			      !__atomic_load_n(&q->broken, __ATOMIC_ACQUIRE);
		struct pollfd pfd[2] = {
			{ .fd = q->ctl_fd, .events = POLLIN },
			/* A disabled ring's kicks stay pending in the eventfd: none is lost. */
			{ .fd = active ? q->kick_fd : -1, .events = POLLIN },
		};

		if (active)
			queue_process(q, chain, tdata);
		if (__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE))
			break;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("queue %u: poll: %m", q->idx);
			break;
		}
		if (pfd[0].revents & POLLIN)
			eventfd_drain(q->ctl_fd);
		if (pfd[1].revents & POLLIN)
			eventfd_drain(q->kick_fd);
	}

	if (dev->ops->thread_stop)
		dev->ops->thread_stop(dev->opaque, q->idx, tdata);
	log_debug("queue %u: thread stopped", q->idx);
	return NULL;
}

static int queue_start(struct vfsd_queue *q)
{
	sigset_t all, old;
	int r;

	__atomic_store_n(&q->stop, false, __ATOMIC_RELEASE);
	__atomic_store_n(&q->broken, false, __ATOMIC_RELEASE);
	/* Signals belong to the control thread (signalfd): block them in queue threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&q->thread, NULL, queue_thread, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	q->running = true;
	return 0;
}

/* Stop the thread; every request it popped has completed when this returns. */
static void queue_stop(struct vfsd_queue *q)
{
	if (!q->running)
		return;
	__atomic_store_n(&q->stop, true, __ATOMIC_RELEASE);
	eventfd_signal(q->ctl_fd);
	pthread_join(q->thread, NULL);
	q->running = false;
	__atomic_store_n(&q->stop, false, __ATOMIC_RELEASE);
}

static void queue_wake(struct vfsd_queue *q)
{
	if (q->running)
		eventfd_signal(q->ctl_fd);
}

static void queue_set_enabled(struct vfsd_queue *q, bool enabled)
{
	__atomic_store_n(&q->enabled, enabled, __ATOMIC_RELEASE);
	/* Enabling rescans the ring: kicks that came while disabled are served. */
	queue_wake(q);
}

/* ---- message I/O ---- */

static void msg_close_fds(struct vhu_msg *m)
{
	for (unsigned int i = 0; i < m->nfds; i++)
		m->fds[i] = safe_close(m->fds[i]);
	m->nfds = 0;
}

/* Returns 1 with a message, 0 at EOF before a message, or -errno. */
static int recv_msg(int conn, struct vhu_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (VHU_MAX_FDS + 4))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	bool too_many = false;
	ssize_t n;

	m->nfds = 0;
	do {
		n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t cnt;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < VHU_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else {
				close(fd);
				too_many = true;
			}
		}
	}
	if ((mh.msg_flags & MSG_CTRUNC) || too_many) {
		log_error("vhost-user: more than %d fds on one message", VHU_MAX_FDS);
		msg_close_fds(m);
		return -EPROTO;
	}
	if ((size_t)n < sizeof(m->hdr)) {
		ssize_t rest = read_full(conn, (char *)&m->hdr + n, sizeof(m->hdr) - (size_t)n);
		if (rest < 0 || (size_t)rest != sizeof(m->hdr) - (size_t)n) {
			log_error("vhost-user: connection closed inside a message header");
			msg_close_fds(m);
			return -EPROTO;
		}
	}
	if ((m->hdr.flags & VHU_FLAG_VERSION_MASK) != VHU_FLAG_VERSION) {
		log_error("vhost-user: %s: bad version in flags 0x%x",
			  vhu_request_name(m->hdr.request), m->hdr.flags);
		msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.size > sizeof(m->p.bytes)) {
		log_error("vhost-user: %s: payload of %u bytes is larger than %zu",
			  vhu_request_name(m->hdr.request), m->hdr.size, sizeof(m->p.bytes));
		msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.size > 0) {
		n = read_full(conn, m->p.bytes, m->hdr.size);
		if (n < 0 || (size_t)n != m->hdr.size) {
			log_error("vhost-user: %s: connection closed inside the payload",
				  vhu_request_name(m->hdr.request));
			msg_close_fds(m);
			return -EPROTO;
		}
	}
	return 1;
}

static int send_reply(int conn, uint32_t request, const void *payload, uint32_t size)
{
	struct vhu_hdr hdr = { .request = request,
			       /* QEMU accepts exactly version 1 | REPLY, never NEED_REPLY. */
			       .flags = VHU_FLAG_VERSION | VHU_FLAG_REPLY,
			       .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	size_t total = sizeof(hdr) + size;
	ssize_t n;

	do {
		n = sendmsg(conn, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != total)
		return -EIO; /* a few dozen bytes on a UNIX stream socket: never short */
	return 0;
}

/* ---- request handlers ---- */

enum reply_kind {
	REPLY_ACK_ONLY, /* ack when NEED_REPLY is set */
	REPLY_OWN,	/* always answers with its own payload */
};

struct handler {
	int (*fn)(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r);
	uint32_t min_size;
	uint32_t max_size;
	uint8_t min_fds;
	uint8_t max_fds;
	enum reply_kind reply;
};

static void reply_u64(struct vhu_reply *r, uint64_t v)
{
	memcpy(r->buf, &v, sizeof(v));
	r->size = sizeof(v);
}

static uint64_t msg_u64(const struct vhu_msg *m)
{
	uint64_t v;
	memcpy(&v, m->p.bytes, sizeof(v));
	return v;
}

static int msg_queue(struct vfsd_vhost_dev *d, uint32_t index, struct vfsd_queue **ret)
{
	if (index >= d->max_queues) {
		log_error("vhost-user: virtqueue index %u out of range (we serve %u)", index,
			  d->max_queues);
		return -EPROTO;
	}
	*ret = &d->q[index];
	return 0;
}

static int h_get_features(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	reply_u64(r, vfsd_vhost_features());
	return 0;
}

/*
 * Point every ring at the dirty log while LOG_ALL is acked and a log is
 * mapped. Called with the write lock held. Both orders happen: a migration
 * starting while the device runs sends SET_LOG_BASE before LOG_ALL; a device
 * starting during a migration acks LOG_ALL first (its rings are disabled
 * until the log arrives).
 */
static void update_logging(struct vfsd_vhost_dev *d)
{
	bool on = (d->features & BIT64(VHOST_F_LOG_ALL_BIT)) && d->log.map;

	d->logging = on;
	for (unsigned int i = 0; i < d->max_queues; i++)
		d->q[i].vr.log = on ? &d->log : NULL;
}

static int h_set_features(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	uint64_t f = msg_u64(m);
	uint64_t unknown = f & ~vfsd_vhost_features();
	bool event_idx, was_logging;

	if (unknown) {
		log_error("vhost-user: SET_FEATURES acks features we never offered: 0x%llx",
			  (unsigned long long)unknown);
		return -EINVAL;
	}
	was_logging = d->features & BIT64(VHOST_F_LOG_ALL_BIT);
	d->features = f;
	event_idx = f & BIT64(VIRTIO_RING_F_EVENT_IDX_BIT);
	pthread_rwlock_wrlock(&d->lock);
	for (unsigned int i = 0; i < d->max_queues; i++)
		d->q[i].vr.event_idx = event_idx;
	/* LOG_ALL on -> off: the migration is over or cancelled; the log is not needed. */
	if (was_logging && !(f & BIT64(VHOST_F_LOG_ALL_BIT)))
		vfsd_dirty_log_unmap(&d->log);
	update_logging(d);
	pthread_rwlock_unlock(&d->lock);
	log_debug("vhost-user: features 0x%llx", (unsigned long long)f);

	if (was_logging != !!(f & BIT64(VHOST_F_LOG_ALL_BIT))) {
		log_info("dirty logging %s", was_logging ? "off" : "on");
		if (d->ops->logging_changed)
			d->ops->logging_changed(d->opaque, !was_logging);
	}

	/* Without PROTOCOL_FEATURES there is no SET_VRING_ENABLE: rings start enabled. */
	if (!(f & BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT)))
		for (unsigned int i = 0; i < d->max_queues; i++)
			queue_set_enabled(&d->q[i], true);
	return 0;
}

static int h_nop(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	return 0;
}

static int h_reset_owner(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	/* Deprecated; never a reason to drop the session (see docs/architecture.md). */
	log_info("vhost-user: RESET_OWNER ignored");
	return 0;
}

static int h_get_protocol_features(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	reply_u64(r, vfsd_vhost_protocol_features(d));
	return 0;
}

static int h_set_protocol_features(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	uint64_t f = msg_u64(m);
	uint64_t unknown = f & ~vfsd_vhost_protocol_features(d);

	if (unknown) {
		log_error(
		    "vhost-user: SET_PROTOCOL_FEATURES acks features we never offered: 0x%llx",
		    (unsigned long long)unknown);
		return -EINVAL;
	}
	d->protocol_features = f;
	return 0;
}

static int h_get_queue_num(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	reply_u64(r, d->max_queues);
	return 0;
}

static int h_get_max_mem_slots(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	reply_u64(r, VHU_MAX_MEM_SLOTS);
	return 0;
}

/* Called with the write lock held after the memory table changed. */
static void retranslate_rings(struct vfsd_vhost_dev *d)
{
	for (unsigned int i = 0; i < d->max_queues; i++) {
		struct vfsd_vring *vr = &d->q[i].vr;
		if (vr->addr_set && vfsd_vring_translate(vr, &d->mem) < 0)
			log_warn("queue %u: ring addresses are no longer in guest memory", i);
	}
}

static int h_set_mem_table(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vfsd_guest_mem fresh = { 0 };
	struct vhu_memory mem;
	int ret = 0;

	memcpy(&mem, m->p.bytes, MIN(sizeof(mem), (size_t)m->hdr.size));
	if (mem.nregions > VHU_MEM_TABLE_REGIONS || m->hdr.size != 8 + 32 * mem.nregions) {
		log_error("vhost-user: SET_MEM_TABLE: %u regions in a %u-byte payload",
			  mem.nregions, m->hdr.size);
		return -EPROTO;
	}
	if (m->nfds != mem.nregions) {
		log_error("vhost-user: SET_MEM_TABLE: %u regions but %u fds", mem.nregions,
			  m->nfds);
		return -EPROTO;
	}
	/* Build the whole new table first: a failure leaves the old one in place. */
	for (unsigned int i = 0; i < mem.nregions; i++) {
		struct vfsd_mem_region reg;
		ret = vfsd_mem_map_region(&mem.regions[i], m->fds[i], &reg);
		if (ret == 0) {
			ret = vfsd_mem_add(&fresh, &reg);
			if (ret < 0)
				vfsd_mem_unmap_region(&reg);
		}
		if (ret < 0) {
			log_error(
			    "vhost-user: SET_MEM_TABLE: region %u (gpa 0x%llx size 0x%llx): %s", i,
			    (unsigned long long)mem.regions[i].guest_phys_addr,
			    (unsigned long long)mem.regions[i].memory_size, strerror(-ret));
			vfsd_mem_clear(&fresh);
			return ret;
		}
	}
	pthread_rwlock_wrlock(&d->lock);
	vfsd_mem_move(&d->mem, &fresh);
	retranslate_rings(d);
	pthread_rwlock_unlock(&d->lock);
	log_debug("vhost-user: memory table with %u regions", mem.nregions);
	return 0;
}

static int h_add_mem_reg(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_mem_reg_msg msg;
	struct vfsd_mem_region reg;
	int ret;

	memcpy(&msg, m->p.bytes, sizeof(msg));
	ret = vfsd_mem_map_region(&msg.region, m->fds[0], &reg);
	if (ret < 0) {
		log_error("vhost-user: ADD_MEM_REG gpa 0x%llx size 0x%llx: cannot map: %s",
			  (unsigned long long)msg.region.guest_phys_addr,
			  (unsigned long long)msg.region.memory_size, strerror(-ret));
		return ret;
	}
	pthread_rwlock_wrlock(&d->lock);
	ret = vfsd_mem_add(&d->mem, &reg);
	if (ret == 0)
		retranslate_rings(d);
	pthread_rwlock_unlock(&d->lock);
	if (ret < 0) {
		vfsd_mem_unmap_region(&reg);
		log_error("vhost-user: ADD_MEM_REG gpa 0x%llx size 0x%llx: %s",
			  (unsigned long long)msg.region.guest_phys_addr,
			  (unsigned long long)msg.region.memory_size,
			  ret == -EEXIST ? "overlaps an existing region" : strerror(-ret));
	}
	return ret;
}

static int h_rem_mem_reg(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_mem_reg_msg msg;
	int ret;

	memcpy(&msg, m->p.bytes, sizeof(msg));
	pthread_rwlock_wrlock(&d->lock);
	ret = vfsd_mem_remove(&d->mem, msg.region.guest_phys_addr, msg.region.memory_size,
			      msg.region.userspace_addr);
	if (ret == 0)
		retranslate_rings(d);
	pthread_rwlock_unlock(&d->lock);
	if (ret < 0)
		log_error("vhost-user: REM_MEM_REG gpa 0x%llx size 0x%llx: no such region",
			  (unsigned long long)msg.region.guest_phys_addr,
			  (unsigned long long)msg.region.memory_size);
	return ret;
}

static int h_set_vring_num(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_vring_state st;
	struct vfsd_queue *q;
	int ret;

	memcpy(&st, m->p.bytes, sizeof(st));
	ret = msg_queue(d, st.index, &q);
	if (ret < 0)
		return ret;
	if (q->running) {
		log_error("queue %u: SET_VRING_NUM on a started ring", st.index);
		return -EBUSY;
	}
	pthread_rwlock_wrlock(&d->lock);
	ret = vfsd_vring_set_num(&q->vr, st.num);
	pthread_rwlock_unlock(&d->lock);
	if (ret < 0)
		log_error("queue %u: invalid queue size %u", st.index, st.num);
	return ret;
}

static int h_set_vring_addr(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_vring_addr a;
	struct vfsd_queue *q;
	int ret;

	memcpy(&a, m->p.bytes, sizeof(a));
	ret = msg_queue(d, a.index, &q);
	if (ret < 0)
		return ret;
	if (q->vr.num == 0) {
		log_error("queue %u: SET_VRING_ADDR before SET_VRING_NUM", a.index);
		return -EINVAL;
	}
	pthread_rwlock_wrlock(&d->lock);
	ret = vfsd_vring_set_addr(&q->vr, &d->mem, a.desc_user_addr, a.used_user_addr,
				  a.avail_user_addr, a.log_guest_addr, a.flags);
	pthread_rwlock_unlock(&d->lock);
	if (ret == -EFAULT)
		log_error("queue %u: ring addresses (desc 0x%llx avail 0x%llx used 0x%llx) are not "
			  "in the guest memory we were given; guest RAM must be shared with the "
			  "back-end (share=on)",
			  a.index, (unsigned long long)a.desc_user_addr,
			  (unsigned long long)a.avail_user_addr,
			  (unsigned long long)a.used_user_addr);
	else if (ret < 0)
		log_error("queue %u: misaligned ring addresses", a.index);
	queue_wake(q);
	return ret;
}

static int h_set_vring_base(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_vring_state st;
	struct vfsd_queue *q;
	int ret;

	memcpy(&st, m->p.bytes, sizeof(st));
	ret = msg_queue(d, st.index, &q);
	if (ret < 0)
		return ret;
	if (q->running) {
		log_error("queue %u: SET_VRING_BASE on a started ring", st.index);
		return -EBUSY;
	}
	pthread_rwlock_wrlock(&d->lock);
	vfsd_vring_set_base(&q->vr, (uint16_t)(st.num & 0xffff));
	pthread_rwlock_unlock(&d->lock);
	return 0;
}

static int h_get_vring_base(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_vring_state st;
	struct vfsd_queue *q;
	int ret;

	memcpy(&st, m->p.bytes, sizeof(st));
	ret = msg_queue(d, st.index, &q);
	if (ret < 0)
		return ret;
	/* Stop the ring and wait for every request it popped; reset nothing. */
	queue_stop(q);
	q->kick_fd = safe_close(q->kick_fd);
	st.num = q->vr.last_avail_idx;
	memcpy(r->buf, &st, sizeof(st));
	r->size = sizeof(st);
	log_debug("queue %u: stopped at avail index %u", st.index, st.num);
	return 0;
}

/* KICK / CALL / ERR: u64 with the index in bits 0-7 and NOFD in bit 8. */
static int vring_fd_msg(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vfsd_queue **ret_q,
			int *ret_fd)
{
	uint64_t v = msg_u64(m);
	bool nofd = v & VHU_VRING_NOFD_MASK;
	int ret;

	ret = msg_queue(d, (uint32_t)(v & VHU_VRING_IDX_MASK), ret_q);
	if (ret < 0)
		return ret;
	if (nofd != (m->nfds == 0)) {
		log_error("vhost-user: %s for queue %u: %s", vhu_request_name(m->hdr.request),
			  (unsigned)(v & VHU_VRING_IDX_MASK),
			  nofd ? "NOFD set but an fd came" : "no fd and no NOFD flag");
		return -EPROTO;
	}
	*ret_fd = nofd ? -EBADF : TAKE_FD(m->fds[0]);
	return 0;
}

static int h_set_vring_kick(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vfsd_queue *q;
	int fd, ret;

	ret = vring_fd_msg(d, m, &q, &fd);
	if (ret < 0)
		return ret;
	if (fd < 0) {
		/* Polling mode: QEMU never asks for it, and we do not offer to busy-poll. */
		log_error("queue %u: SET_VRING_KICK without an fd (polling) is not supported",
			  q->idx);
		return -ENOTSUP;
	}
	/* A device start means any state transfer is over, CHECK or not. */
	xfer_reap(d);
	queue_stop(q);
	safe_close(q->kick_fd);
	q->kick_fd = fd;
	/* The kick starts the ring; QEMU's eventfd arrives already signalled. */
	ret = queue_start(q);
	if (ret < 0)
		log_error("queue %u: cannot start its thread: %s", q->idx, strerror(-ret));
	else
		log_debug("queue %u: started", q->idx);
	return ret;
}

static int h_set_vring_call(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vfsd_queue *q;
	int fd, old, ret;

	ret = vring_fd_msg(d, m, &q, &fd);
	if (ret < 0)
		return ret;
	/* May arrive while the queue runs (interrupt masking): swap under the lock. */
	pthread_mutex_lock(&q->call_lock);
	old = q->call_fd;
	q->call_fd = fd;
	pthread_mutex_unlock(&q->call_lock);
	safe_close(old);
	return 0;
}

static int h_set_vring_err(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vfsd_queue *q;
	int fd, old, ret;

	ret = vring_fd_msg(d, m, &q, &fd);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&q->call_lock);
	old = q->err_fd;
	q->err_fd = fd;
	pthread_mutex_unlock(&q->call_lock);
	safe_close(old);
	return 0;
}

static int h_set_vring_enable(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_vring_state st;
	struct vfsd_queue *q;
	int ret;

	memcpy(&st, m->p.bytes, sizeof(st));
	ret = msg_queue(d, st.index, &q);
	if (ret < 0)
		return ret;
	if (st.num > 1) {
		log_error("queue %u: SET_VRING_ENABLE with %u", st.index, st.num);
		return -EINVAL;
	}
	queue_set_enabled(q, st.num == 1);
	log_debug("queue %u: %s", st.index, st.num ? "enabled" : "disabled");
	return 0;
}

static int h_set_log_base(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vfsd_dirty_log fresh, old;
	struct vhu_log l;
	int ret;

	memcpy(&l, m->p.bytes, sizeof(l));
	ret = vfsd_dirty_log_map(m->fds[0], l.mmap_size, l.mmap_offset, &fresh);
	if (ret < 0) {
		log_error("vhost-user: SET_LOG_BASE: cannot map %llu bytes at offset %llu: %s",
			  (unsigned long long)l.mmap_size, (unsigned long long)l.mmap_offset,
			  strerror(-ret));
		return -EPROTO; /* the reply has no error channel: end the session */
	}
	/* Switch to the new log first, then unmap the old one (nobody uses it then). */
	pthread_rwlock_wrlock(&d->lock);
	old = d->log;
	fresh.efd = old.efd;
	d->log = fresh;
	update_logging(d);
	pthread_rwlock_unlock(&d->lock);
	vfsd_dirty_log_unmap(&old);
	log_debug("vhost-user: dirty log of %llu bytes", (unsigned long long)l.mmap_size);
	/* With LOG_SHMFD the front-end waits for this reply; its value is not checked. */
	reply_u64(r, 0);
	return 0;
}

static int h_set_log_fd(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	int old;

	pthread_rwlock_wrlock(&d->lock);
	old = d->log.efd;
	d->log.efd = TAKE_FD(m->fds[0]);
	pthread_rwlock_unlock(&d->lock);
	safe_close(old);
	return 0;
}

/* Join the device-state transfer thread if one ran; keeps its result for CHECK. */
static void xfer_reap(struct vfsd_vhost_dev *d)
{
	if (!d->xfer.started)
		return;
	pthread_join(d->xfer.thread, NULL);
	d->xfer.started = false;
	d->xfer.done = true;
}

/*
 * Back to the state a fresh connection has after feature negotiation: every
 * queue stopped and disabled, rings forgotten, virtio features and status
 * cleared, and the backend told to drop its session. Ownership, protocol
 * features and the memory table stay (QEMU's shadow of the memory table is
 * not reset, so it would not send it again).
 */
static void device_reset(struct vfsd_vhost_dev *d, const char *why)
{
	xfer_reap(d);
	for (unsigned int i = 0; i < d->max_queues; i++) {
		struct vfsd_queue *q = &d->q[i];
		queue_stop(q);
		__atomic_store_n(&q->enabled, false, __ATOMIC_RELEASE);
		q->kick_fd = safe_close(q->kick_fd);
	}
	pthread_rwlock_wrlock(&d->lock);
	for (unsigned int i = 0; i < d->max_queues; i++)
		d->q[i].vr = (struct vfsd_vring){ 0 };
	d->features = 0;
	update_logging(d);
	pthread_rwlock_unlock(&d->lock);
	d->status = 0;
	if (d->ops->reset)
		d->ops->reset(d->opaque, why);
}

static int h_reset_device(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	if (!d->ops->reset)
		return -ENOTSUP;
	device_reset(d, "RESET_DEVICE");
	return 0;
}

static int h_set_status(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	uint64_t v = msg_u64(m);

	if (!d->ops->reset)
		return -ENOTSUP;
	if (v > 0xff) {
		log_error("vhost-user: SET_STATUS 0x%llx is not a status byte",
			  (unsigned long long)v);
		return -EINVAL;
	}
	/* Writing 0 is a device reset in virtio terms (docs/migration.md). */
	if (v == 0)
		device_reset(d, "SET_STATUS 0");
	d->status = (uint8_t)v;
	return 0;
}

static int h_get_status(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	reply_u64(r, d->status);
	return 0;
}

static void *xfer_thread(void *arg)
{
	struct vfsd_vhost_dev *d = arg;
	bool save = d->xfer.direction == VHU_TRANSFER_SAVE;
	int fd = d->xfer.fd;
	int ret;

	ret = save ? d->ops->save_state(d->opaque, fd) : d->ops->load_state(d->opaque, fd);
	/* Our only copy of the pipe: closing it is what gives the reader its EOF. */
	close(fd);
	d->xfer.result = ret;
	if (ret < 0)
		log_error("device state %s failed: %s", save ? "save" : "load", strerror(-ret));
	else
		log_info("device state %s done", save ? "save" : "load");
	return NULL;
}

static int h_set_device_state_fd(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	struct vhu_transfer_state ts;
	sigset_t all, old;
	int ret;

	memcpy(&ts, m->p.bytes, sizeof(ts));
	/* Bit 8 set: no fd of ours comes with the reply; bits 0-7: 0 success. */
	reply_u64(r, 0x101);
	if (!d->ops->save_state || !d->ops->load_state) {
		log_error("vhost-user: SET_DEVICE_STATE_FD: this back-end cannot transfer state");
		return 0;
	}
	if (ts.direction > VHU_TRANSFER_LOAD || ts.phase != VHU_TRANSFER_PHASE_STOPPED) {
		log_error("vhost-user: SET_DEVICE_STATE_FD: direction %u phase %u not supported",
			  ts.direction, ts.phase);
		return 0;
	}
	for (unsigned int i = 0; i < d->max_queues; i++) {
		if (d->q[i].running) {
			log_error("vhost-user: SET_DEVICE_STATE_FD while queue %u is started", i);
			return 0;
		}
	}
	xfer_reap(d);
	d->xfer.direction = ts.direction;
	d->xfer.fd = TAKE_FD(m->fds[0]);
	d->xfer.result = -EINPROGRESS;
	d->xfer.done = false;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = -pthread_create(&d->xfer.thread, NULL, xfer_thread, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0) {
		log_error("vhost-user: SET_DEVICE_STATE_FD: cannot start a thread: %s",
			  strerror(-ret));
		d->xfer.fd = safe_close(d->xfer.fd);
		return 0;
	}
	d->xfer.started = true;
	log_info("device state %s started", ts.direction == VHU_TRANSFER_SAVE ? "save" : "load");
	/* The reply goes out before the thread can fill the pipe: QEMU reads after it. */
	reply_u64(r, 0x100);
	return 0;
}

static int h_check_device_state(struct vfsd_vhost_dev *d, struct vhu_msg *m, struct vhu_reply *r)
{
	xfer_reap(d);
	if (!d->xfer.done) {
		log_error("vhost-user: CHECK_DEVICE_STATE without a state transfer");
		reply_u64(r, 1);
		return 0;
	}
	reply_u64(r, d->xfer.result == 0 ? 0 : 1);
	return 0;
}

static const struct handler handlers[VHU_REQUEST_MAX] = {
	[VHU_GET_FEATURES] = { h_get_features, 0, 0, 0, 0, REPLY_OWN },
	[VHU_SET_FEATURES] = { h_set_features, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_SET_OWNER] = { h_nop, 0, 0, 0, 0, REPLY_ACK_ONLY },
	[VHU_RESET_OWNER] = { h_reset_owner, 0, 0, 0, 0, REPLY_ACK_ONLY },
	[VHU_SET_MEM_TABLE] = { h_set_mem_table, 8, sizeof(struct vhu_memory), 0, VHU_MAX_FDS,
				REPLY_ACK_ONLY },
	[VHU_SET_VRING_NUM] = { h_set_vring_num, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_SET_VRING_ADDR] = { h_set_vring_addr, 40, 40, 0, 0, REPLY_ACK_ONLY },
	[VHU_SET_VRING_BASE] = { h_set_vring_base, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_GET_VRING_BASE] = { h_get_vring_base, 8, 8, 0, 0, REPLY_OWN },
	[VHU_SET_VRING_KICK] = { h_set_vring_kick, 8, 8, 0, 1, REPLY_ACK_ONLY },
	[VHU_SET_VRING_CALL] = { h_set_vring_call, 8, 8, 0, 1, REPLY_ACK_ONLY },
	[VHU_SET_VRING_ERR] = { h_set_vring_err, 8, 8, 0, 1, REPLY_ACK_ONLY },
	[VHU_GET_PROTOCOL_FEATURES] = { h_get_protocol_features, 0, 0, 0, 0, REPLY_OWN },
	[VHU_SET_PROTOCOL_FEATURES] = { h_set_protocol_features, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_GET_QUEUE_NUM] = { h_get_queue_num, 0, 0, 0, 0, REPLY_OWN },
	[VHU_SET_VRING_ENABLE] = { h_set_vring_enable, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_GET_MAX_MEM_SLOTS] = { h_get_max_mem_slots, 0, 0, 0, 0, REPLY_OWN },
	[VHU_ADD_MEM_REG] = { h_add_mem_reg, 40, 40, 1, 1, REPLY_ACK_ONLY },
	/* REM_MEM_REG should carry no fd, but some front-ends send a stray one: close it. */
	[VHU_REM_MEM_REG] = { h_rem_mem_reg, 40, 40, 0, 1, REPLY_ACK_ONLY },
	/* The spec calls the payload a u64, but QEMU sends {size, offset}: 16 bytes. */
	[VHU_SET_LOG_BASE] = { h_set_log_base, 16, 16, 1, 1, REPLY_OWN },
	[VHU_SET_LOG_FD] = { h_set_log_fd, 0, 8, 1, 1, REPLY_ACK_ONLY },
	[VHU_RESET_DEVICE] = { h_reset_device, 0, 0, 0, 0, REPLY_ACK_ONLY },
	[VHU_SET_STATUS] = { h_set_status, 8, 8, 0, 0, REPLY_ACK_ONLY },
	[VHU_GET_STATUS] = { h_get_status, 0, 0, 0, 0, REPLY_OWN },
	[VHU_SET_DEVICE_STATE_FD] = { h_set_device_state_fd, 8, 8, 1, 1, REPLY_OWN },
	[VHU_CHECK_DEVICE_STATE] = { h_check_device_state, 0, 0, 0, 0, REPLY_OWN },
};

/*
 * Apply one message. Returns 0 to go on, or -errno to close the connection
 * (a fatal protocol error, already logged).
 */
static int dispatch(struct vfsd_vhost_dev *d, int conn, struct vhu_msg *m)
{
	uint32_t req = m->hdr.request;
	const struct handler *h = req < ARRAY_SIZE(handlers) ? &handlers[req] : NULL;
	bool need_reply = m->hdr.flags & VHU_FLAG_NEED_REPLY;
	struct vhu_reply reply = { .size = 0 };
	int ret;

	log_trace("vhost-user: %s (%u) size %u fds %u%s", vhu_request_name(req), req, m->hdr.size,
		  m->nfds, need_reply ? " need-reply" : "");

	if (!h || !h->fn) {
		log_error("vhost-user: unsupported request %s (%u)", vhu_request_name(req), req);
		if (!need_reply)
			return -EPROTO; /* the front-end may be waiting for a reply we cannot give
					 */
		reply_u64(&reply, 1);
		return send_reply(conn, req, reply.buf, reply.size);
	}
	if (m->hdr.size < h->min_size || m->hdr.size > h->max_size) {
		log_error("vhost-user: %s: payload of %u bytes, expected %u..%u",
			  vhu_request_name(req), m->hdr.size, h->min_size, h->max_size);
		return -EPROTO;
	}
	if (m->nfds < h->min_fds || m->nfds > h->max_fds) {
		log_error("vhost-user: %s: %u fds, expected %u..%u", vhu_request_name(req), m->nfds,
			  h->min_fds, h->max_fds);
		return -EPROTO;
	}

	ret = h->fn(d, m, &reply);
	if (ret == -EPROTO)
		return ret;
	if (h->reply == REPLY_OWN) {
		if (ret < 0)
			return ret; /* cannot answer a GET with an error: end the session */
		ret = send_reply(conn, req, reply.buf, reply.size);
	} else if (need_reply) {
		reply_u64(&reply, ret < 0 ? 1 : 0);
		ret = send_reply(conn, req, reply.buf, reply.size);
	} else {
		ret = 0;
	}
	if (ret < 0)
		log_error("vhost-user: cannot reply to %s: %s", vhu_request_name(req),
			  strerror(-ret));
	return ret;
}

int vfsd_vhost_serve(struct vfsd_vhost_dev *d, int conn, int stop_fd)
{
	_cleanup_free_ struct vhu_msg *m = calloc(1, sizeof(*m));
	int ret = 0;

	if (!m)
		return -ENOMEM;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = conn, .events = POLLIN },
			{ .fd = stop_fd, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			log_info("stopping on request");
			break;
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ret = recv_msg(conn, m);
		if (ret == 0) {
			log_info("vhost-user: front-end disconnected");
			break;
		}
		if (ret < 0)
			break;
		ret = dispatch(d, conn, m);
		msg_close_fds(m);
		if (ret < 0)
			break;
	}
	for (unsigned int i = 0; i < d->max_queues; i++)
		queue_stop(&d->q[i]);
	xfer_reap(d);
	return ret;
}

int vfsd_vhost_new(const struct vfsd_vhost_backend_ops *ops, void *opaque, unsigned int max_queues,
		   struct vfsd_vhost_dev **ret)
{
	struct vfsd_vhost_dev *d;
	pthread_rwlockattr_t attr;

	if (max_queues < 2 || max_queues > VFSD_MAX_QUEUES)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ops = ops;
	d->opaque = opaque;
	d->max_queues = max_queues;
	d->log.efd = -EBADF;
	/* Memory-table changes must not starve behind a stream of requests. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	for (unsigned int i = 0; i < max_queues; i++) {
		struct vfsd_queue *q = &d->q[i];
		q->dev = d;
		q->idx = i;
		q->kick_fd = q->call_fd = q->err_fd = -EBADF;
		pthread_mutex_init(&q->call_lock, NULL);
		q->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->ctl_fd < 0) {
			int e = -errno;
			vfsd_vhost_free(d);
			return e;
		}
	}
	*ret = d;
	return 0;
}

void vfsd_vhost_free(struct vfsd_vhost_dev *d)
{
	if (!d)
		return;
	for (unsigned int i = 0; i < d->max_queues; i++) {
		struct vfsd_queue *q = &d->q[i];
		if (q->dev != d)
			continue; /* half-built by vfsd_vhost_new */
		queue_stop(q);
		safe_close(q->kick_fd);
		safe_close(q->call_fd);
		safe_close(q->err_fd);
		safe_close(q->ctl_fd);
		pthread_mutex_destroy(&q->call_lock);
	}
	xfer_reap(d);
	vfsd_dirty_log_unmap(&d->log);
	safe_close(d->log.efd);
	vfsd_mem_clear(&d->mem);
	pthread_rwlock_destroy(&d->lock);
	free(d);
}
