/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The driver side of split virtqueues in guest RAM, and QEMU's start/stop
 * message sequences (vhost-user-fs-protocol.md §6.1 A, B, C).
 */
#include <endian.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "vfe.h"
#include "vfsd/util.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct vfe_queue *queue(struct vfe *fe, unsigned idx)
{
	return idx < VFE_MAX_QUEUES ? &fe->queues[idx] : NULL;
}

/* Ring field accessors: all little-endian, shared with the back-end. */
static uint16_t *avail_idx_p(struct vfe_queue *q)
{
	return &q->avail[1];
}
static uint16_t *used_event_p(struct vfe_queue *q)
{
	return &q->avail[2 + q->size];
}
static uint16_t *used_flags_p(struct vfe_queue *q)
{
	return (uint16_t *)q->used;
}
static uint16_t *used_idx_p(struct vfe_queue *q)
{
	return (uint16_t *)(q->used + 2);
}
static struct vring_used_elem_le *used_elem_p(struct vfe_queue *q, uint16_t i)
{
	return (struct vring_used_elem_le *)(q->used + 4 + 8 * (size_t)(i % q->size));
}
static uint16_t *avail_event_p(struct vfe_queue *q)
{
	return (uint16_t *)(q->used + 4 + 8 * (size_t)q->size);
}

static bool event_idx(struct vfe *fe)
{
	return fe->acked_features & BIT64(VIRTIO_RING_F_EVENT_IDX_BIT);
}

/* virtio's vring_need_event(): did [old, new) pass event? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static int ensure_eventfds(struct vfe_queue *q, bool kick_too)
{
	if (q->call_fd < 0 && (q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	if (q->err_fd < 0 && (q->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	if (kick_too && q->kick_fd < 0 && (q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	return 0;
}

int vfe_queue_alloc(struct vfe *fe, unsigned idx, unsigned size)
{
	struct vfe_queue *q = queue(fe, idx);
	int r;

	if (!q || size == 0 || size > VRING_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if (q->allocated)
		return q->size == size ? 0 : -EBUSY;
	if (!fe->mem)
		return -ENOMEM;
	r = ensure_eventfds(q, true);
	if (r < 0)
		return r;
	/* Minimum alignments of the split ring, so a back-end that assumes more fails. */
	q->desc = vfe_alloc(fe, 16 * (size_t)size, 16, &q->desc_gpa);
	q->avail = vfe_alloc(fe, 6 + 2 * (size_t)size, 2, &q->avail_gpa);
	q->used = vfe_alloc(fe, 6 + 8 * (size_t)size, 4, &q->used_gpa);
	q->free_stack = calloc(size, sizeof(uint16_t));
	q->pending = calloc(size, sizeof(uint16_t));
	q->owned = calloc(size, sizeof(uint16_t *));
	q->nowned = calloc(size, sizeof(uint16_t));
	q->done = calloc(size, sizeof(bool));
	q->done_len = calloc(size, sizeof(uint32_t));
	q->inflight = calloc(size, sizeof(bool));
	if (!q->desc || !q->avail || !q->used || !q->free_stack || !q->pending || !q->owned ||
	    !q->nowned || !q->done || !q->done_len || !q->inflight)
		return -ENOMEM;
	q->size = (uint16_t)size;
	for (unsigned i = 0; i < size; i++)
		q->free_stack[i] = (uint16_t)(size - 1 - i);
	q->nfree = (uint16_t)size;
	q->allocated = true;
	if (idx >= fe->nqueues)
		fe->nqueues = idx + 1;
	return 0;
}

int vfe_queue_start(struct vfe *fe, unsigned idx)
{
	struct vfe_queue *q = queue(fe, idx);
	int r;

	if (!q || !q->allocated)
		return -EINVAL;
	/* QEMU's host notifier is a fresh eventfd created with value 1 on every start. */
	if (fe->kick_presignalled) {
		r = eventfd_signal(q->kick_fd);
		if (r < 0)
			return r;
	}
	r = vfe_set_vring_num(fe, idx, q->size);
	if (r >= 0)
		r = vfe_set_vring_base(fe, idx, q->base);
	if (r >= 0)
		r = vfe_set_vring_addr(fe, idx, vfe_gpa_to_qva(fe, q->desc_gpa),
				       vfe_gpa_to_qva(fe, q->used_gpa),
				       vfe_gpa_to_qva(fe, q->avail_gpa), q->used_gpa,
				       fe->logging ? VHU_VRING_F_LOG : 0);
	if (r >= 0)
		r = vfe_set_vring_kick(fe, idx, q->kick_fd);
	if (r >= 0)
		r = vfe_set_vring_call(fe, idx, q->call_fd);
	if (r >= 0)
		q->started = true;
	return r;
}

int vfe_queue_setup(struct vfe *fe, unsigned idx, unsigned size)
{
	int r = vfe_queue_alloc(fe, idx, size);

	if (r >= 0)
		r = vfe_queue_start(fe, idx);
	if (r >= 0)
		r = vfe_set_vring_enable(fe, idx, true);
	return r;
}

int vfe_init(struct vfe *fe, unsigned nqueues, uint64_t protocol_mask)
{
	uint64_t f;
	int r;

	if (nqueues == 0 || nqueues > VFE_MAX_QUEUES)
		return -EINVAL;
	r = vfe_get_features(fe, &f);
	if (r < 0)
		return r;
	if (f & BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT)) {
		uint64_t pf;

		r = vfe_get_protocol_features(fe, &pf);
		if (r >= 0)
			r = vfe_set_protocol_features(fe, pf & protocol_mask);
		if (r < 0)
			return r;
		if (fe->acked_protocol & BIT64(VHU_PROTOCOL_F_MQ) &&
		    (r = vfe_get_queue_num(fe, NULL)) < 0)
			return r;
		if (fe->acked_protocol & BIT64(VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
		    (r = vfe_get_max_mem_slots(fe, NULL)) < 0)
			return r;
	}
	r = vfe_set_owner(fe);
	if (r >= 0)
		r = vfe_get_features(fe, NULL);
	for (unsigned i = 0; r >= 0 && i < nqueues; i++) {
		struct vfe_queue *q = &fe->queues[i];

		r = ensure_eventfds(q, false);
		if (r >= 0)
			r = vfe_set_vring_call(fe, i, q->call_fd);
		if (r >= 0)
			r = vfe_set_vring_err(fe, i, q->err_fd);
	}
	if (r >= 0 && fe->nqueues < nqueues)
		fe->nqueues = nqueues;
	return r;
}

int vfe_start(struct vfe *fe, unsigned nqueues, unsigned queue_size, uint64_t features)
{
	int r;

	if (!fe->features) {
		r = vfe_init(fe, nqueues, VFE_PROTOCOL_MASK);
		if (r < 0)
			return r;
	}
	if (!fe->mem) {
		r = vfe_mem_setup(fe, 0, 64ULL << 20, 1);
		if (r < 0)
			return r;
	}
	features &= fe->features;
	if (fe->features & BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT))
		features |= BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT);
	r = vfe_set_features(fe, features);
	if (r < 0)
		return r;
	/* QEMU without REPLY_ACK: a GET_FEATURES barrier after SET_FEATURES with LOG_ALL. */
	if (features & BIT64(VHOST_F_LOG_ALL_BIT) &&
	    !(fe->acked_protocol & BIT64(VHU_PROTOCOL_F_REPLY_ACK)) && (r = vfe_sync(fe)) < 0)
		return r;
	fe->logging = features & BIT64(VHOST_F_LOG_ALL_BIT);
	if (fe->acked_protocol & BIT64(VHU_PROTOCOL_F_STATUS)) {
		uint8_t st;

		r = vfe_get_status(fe, &st);
		if (r >= 0 && !(st & VIRTIO_STATUS_FEATURES_OK))
			r = vfe_set_status(fe, st | VIRTIO_STATUS_FEATURES_OK);
		if (r < 0)
			return r;
	}
	if (fe->use_mem_slots && fe->acked_protocol & BIT64(VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		for (unsigned i = 0; i < fe->nregions && r >= 0; i++)
			if (!fe->regions[i].added)
				r = vfe_add_mem_reg(fe, i);
	} else {
		r = vfe_set_mem_table(fe);
	}
	if (r < 0)
		return r;
	for (unsigned i = 0; i < nqueues; i++) {
		r = vfe_queue_alloc(fe, i, queue_size);
		if (r >= 0)
			r = vfe_queue_start(fe, i);
		if (r < 0)
			return r;
	}
	/* Logging already on at start: the log comes after the rings, before ENABLE. */
	if (fe->logging) {
		r = vfe_set_log_base(fe, fe->log.map ? fe->log.size : vfe_log_size(fe));
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < nqueues; i++) {
		r = vfe_set_vring_enable(fe, i, true);
		if (r < 0)
			return r;
	}
	return 0;
}

int vfe_stop(struct vfe *fe, unsigned *bases)
{
	int r;

	for (unsigned i = 0; i < fe->nqueues; i++) {
		if (!fe->queues[i].started)
			continue;
		r = vfe_set_vring_enable(fe, i, false);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < fe->nqueues; i++) {
		struct vfe_queue *q = &fe->queues[i];
		unsigned b;

		if (!q->started)
			continue;
		r = vfe_get_vring_base(fe, i, &b);
		if (r < 0)
			return r;
		q->base = (uint16_t)b;
		q->started = false;
		if (bases)
			bases[i] = b;
	}
	return 0;
}

int vfe_restart(struct vfe *fe)
{
	int r;

	for (unsigned i = 0; i < fe->nqueues; i++) {
		if (!fe->queues[i].allocated)
			continue;
		r = vfe_queue_start(fe, i);
		if (r < 0)
			return r;
	}
	if (fe->logging) {
		r = vfe_set_log_base(fe, fe->log.map ? fe->log.size : vfe_log_size(fe));
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < fe->nqueues; i++) {
		if (!fe->queues[i].allocated)
			continue;
		r = vfe_set_vring_enable(fe, i, true);
		if (r < 0)
			return r;
	}
	return 0;
}

void vfe_queues_reset(struct vfe *fe)
{
	for (unsigned i = 0; i < VFE_MAX_QUEUES; i++) {
		struct vfe_queue *q = &fe->queues[i];

		if (!q->allocated)
			continue;
		memset(q->desc, 0, 16 * (size_t)q->size);
		memset(q->avail, 0, 6 + 2 * (size_t)q->size);
		memset(q->used, 0, 6 + 8 * (size_t)q->size);
		for (unsigned h = 0; h < q->size; h++) {
			free(q->owned[h]);
			q->owned[h] = NULL;
			q->nowned[h] = 0;
			q->done[h] = false;
			q->inflight[h] = false;
			q->free_stack[h] = (uint16_t)(q->size - 1 - h);
		}
		q->nfree = q->size;
		q->npending = 0;
		q->avail_idx = q->used_seen = q->kicked_idx = q->base = 0;
		q->started = false;
	}
}

/* ---------------------------------------------------------------- requests */

int vfe_kick(struct vfe *fe, unsigned idx)
{
	struct vfe_queue *q = queue(fe, idx);

	if (!q || !q->allocated)
		return -EINVAL;
	q->nkicks++;
	return eventfd_signal(q->kick_fd);
}

uint16_t vfe_used_idx(struct vfe *fe, unsigned idx)
{
	struct vfe_queue *q = queue(fe, idx);

	if (!q || !q->allocated)
		return 0;
	return le16toh(__atomic_load_n(used_idx_p(q), __ATOMIC_ACQUIRE));
}

int vfe_desc_alloc(struct vfe *fe, unsigned idx)
{
	struct vfe_queue *q = queue(fe, idx);
	uint16_t d;

	if (!q || !q->allocated)
		return -EINVAL;
	if (q->nfree == 0 || q->npending >= q->size)
		return -ENOSPC;
	d = q->free_stack[--q->nfree];
	q->pending[q->npending++] = d;
	return d;
}

void vfe_desc_set(struct vfe *fe, unsigned idx, unsigned i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	struct vfe_queue *q = queue(fe, idx);

	if (!q || !q->allocated || i >= q->size)
		return;
	q->desc[i] = (struct vring_desc_le){ .addr = htole64(addr),
					     .len = htole32(len),
					     .flags = htole16(flags),
					     .next = htole16(next) };
}

static void release_chain(struct vfe_queue *q, uint16_t head)
{
	for (uint16_t i = 0; i < q->nowned[head]; i++)
		q->free_stack[q->nfree++] = q->owned[head][i];
	free(q->owned[head]);
	q->owned[head] = NULL;
	q->nowned[head] = 0;
}

static int publish(struct vfe *fe, struct vfe_queue *q, uint16_t head, bool no_kick,
		   bool always_kick)
{
	uint16_t new_idx;
	bool kick;

	if (head >= q->size)
		return -EINVAL;
	/* The pending descriptors become this chain's; a reused head frees its old ones. */
	if (q->owned[head])
		release_chain(q, head);
	if (q->npending) {
		q->owned[head] = malloc(q->npending * sizeof(uint16_t));
		if (!q->owned[head])
			return -ENOMEM;
		memcpy(q->owned[head], q->pending, q->npending * sizeof(uint16_t));
		q->nowned[head] = q->npending;
		q->npending = 0;
	}
	q->done[head] = false;
	q->inflight[head] = true;
	q->avail[2 + q->avail_idx % q->size] = htole16(head);
	new_idx = ++q->avail_idx;
	/* The ring entry (and the descriptors) before the index: release. */
	__atomic_store_n(avail_idx_p(q), htole16(new_idx), __ATOMIC_RELEASE);
	if (no_kick)
		return 0;
	/* Full barrier between publishing avail->idx and reading avail_event/used flags. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (event_idx(fe)) {
		uint16_t ev = le16toh(__atomic_load_n(avail_event_p(q), __ATOMIC_RELAXED));

		kick = need_event(ev, new_idx, q->kicked_idx);
	} else {
		kick = !(le16toh(__atomic_load_n(used_flags_p(q), __ATOMIC_RELAXED)) &
			 VRING_USED_F_NO_NOTIFY);
	}
	q->kicked_idx = new_idx;
	if (kick || always_kick)
		return vfe_kick(fe, (unsigned)(q - fe->queues));
	return 0;
}

int vfe_avail_push(struct vfe *fe, unsigned idx, uint16_t head, bool no_kick)
{
	struct vfe_queue *q = queue(fe, idx);

	if (!q || !q->allocated)
		return -EINVAL;
	return publish(fe, q, head, no_kick, false);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

static int add_segs(struct vfe *fe, const struct vfe_buf *b, size_t n, uint32_t split,
		    uint16_t flags, struct seg *segs, size_t *nsegs, size_t max)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t gpa = vfe_ptr_to_gpa(fe, b[i].ptr);
		size_t left = b[i].len;

		if (left == 0)
			continue;
		if (gpa == UINT64_MAX || !vfe_gpa_to_ptr(fe, gpa, left) || left > UINT32_MAX)
			return -EFAULT;
		while (left > 0) {
			uint32_t len = split && left > split ? split : (uint32_t)left;

			if (*nsegs >= max)
				return -E2BIG;
			segs[(*nsegs)++] = (struct seg){ gpa, len, flags };
			gpa += len;
			left -= len;
		}
	}
	return 0;
}

int vfe_submit(struct vfe *fe, unsigned idx, const struct vfe_buf *rd, size_t nrd,
	       const struct vfe_buf *wr, size_t nwr, const struct vfe_req_opts *opts)
{
	struct vfe_queue *q = queue(fe, idx);
	_cleanup_free_ struct seg *segs = NULL;
	size_t nsegs = 0, max;
	int r, head = -1, prev = -1;

	if (!q || !q->allocated)
		return -EINVAL;
	if (!opts)
		opts = &fe->req_opts;
	/* An indirect table may hold more than the ring; cap it at the ring size anyway. */
	max = q->size;
	segs = calloc(max, sizeof(*segs));
	if (!segs)
		return -ENOMEM;
	r = add_segs(fe, rd, nrd, opts->split, 0, segs, &nsegs, max);
	if (r >= 0)
		r = add_segs(fe, wr, nwr, opts->split, VRING_DESC_F_WRITE, segs, &nsegs, max);
	if (r < 0)
		return r;
	if (nsegs == 0)
		return -EINVAL;

	if (opts->indirect) {
		uint64_t tgpa;
		struct vring_desc_le *t = vfe_alloc(fe, 16 * nsegs, 16, &tgpa);

		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < nsegs; i++) {
			bool last = i + 1 == nsegs;

			t[i] = (struct vring_desc_le){
				.addr = htole64(segs[i].gpa),
				.len = htole32(segs[i].len),
				.flags = htole16(segs[i].flags | (last ? 0 : VRING_DESC_F_NEXT)),
				.next = htole16(last ? 0 : (uint16_t)(i + 1)),
			};
		}
		head = vfe_desc_alloc(fe, idx);
		if (head < 0)
			return head;
		vfe_desc_set(fe, idx, (unsigned)head, tgpa, (uint32_t)(16 * nsegs),
			     VRING_DESC_F_INDIRECT, 0);
	} else {
		if (nsegs > q->nfree)
			return -ENOSPC;
		/* Build back to front so each descriptor can point at the next. */
		for (size_t i = nsegs; i-- > 0;) {
			int d = vfe_desc_alloc(fe, idx);

			if (d < 0)
				return d;
			vfe_desc_set(fe, idx, (unsigned)d, segs[i].gpa, segs[i].len,
				     segs[i].flags | (prev >= 0 ? VRING_DESC_F_NEXT : 0),
				     prev >= 0 ? (uint16_t)prev : 0);
			prev = d;
		}
		head = prev;
	}
	r = publish(fe, q, (uint16_t)head, opts->no_kick, opts->always_kick);
	return r < 0 ? r : head;
}

/* Move every new used entry into done[]. */
static int reap_used(struct vfe_queue *q)
{
	uint16_t idx = le16toh(__atomic_load_n(used_idx_p(q), __ATOMIC_ACQUIRE));

	while (q->used_seen != idx) {
		struct vring_used_elem_le e = *used_elem_p(q, q->used_seen);
		uint32_t id = le32toh(e.id);

		if (id >= q->size || !q->inflight[id])
			return -EPROTO;
		q->inflight[id] = false;
		q->used_seen++;
		q->done[id] = true;
		q->done_len[id] = le32toh(e.len);
		release_chain(q, (uint16_t)id);
	}
	return 0;
}

int vfe_wait_used(struct vfe *fe, unsigned idx, int head, int timeout_ms, struct vfe_used *ret)
{
	struct vfe_queue *q = queue(fe, idx);
	int64_t end = now_ms() + (timeout_ms > 0 ? timeout_ms : fe->timeout_ms);

	if (!q || !q->allocated || head >= (int)q->size)
		return -EINVAL;
	for (;;) {
		struct pollfd p = { .fd = q->call_fd, .events = POLLIN };
		uint64_t v;
		int64_t left;
		int r;

		/* Ask for an interrupt at the next completion (EVENT_IDX). */
		if (event_idx(fe))
			__atomic_store_n(used_event_p(q), htole16(q->used_seen), __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		r = reap_used(q);
		if (r < 0)
			return r;
		for (unsigned h = 0; h < q->size; h++) {
			if (!q->done[h] || (head >= 0 && h != (unsigned)head))
				continue;
			q->done[h] = false;
			if (ret)
				*ret =
				    (struct vfe_used){ .head = (uint16_t)h, .len = q->done_len[h] };
			return 0;
		}
		left = end - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		/* Poll the call fd, but look at used->idx at least every 100 ms too. */
		r = poll(&p, q->call_fd >= 0 ? 1 : 0, (int)MIN(left, 100));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && read(q->call_fd, &v, sizeof(v)) == sizeof(v))
			q->ncalls += v;
	}
}
