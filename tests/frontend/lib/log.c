/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Dirty-page logging as QEMU drives it (SET_LOG_BASE, LOG_ALL, the ring log
 * flag), and the device-state transfer messages.
 */
#include <string.h>
#include <sys/mman.h>

#include "vfe.h"
#include "vfsd/util.h"

/* QEMU's VHOST_LOG_CHUNK: the guest-physical span of one u64 of the bitmap. */
#define LOG_CHUNK (VFE_LOG_PAGE * 64)

static bool reply_ack(struct vfe *fe)
{
	return fe->acked_protocol & BIT64(VHU_PROTOCOL_F_REPLY_ACK);
}

static void log_unmap(struct vfe_log *l)
{
	if (l->map)
		munmap(l->map, l->map_len);
	l->fd = safe_close(l->fd);
	l->map = NULL;
	l->size = 0;
	l->map_len = 0;
}

uint64_t vfe_log_size(struct vfe *fe)
{
	uint64_t chunks = 0;

	for (unsigned i = 0; i < fe->nregions; i++) {
		const struct vfe_region *g = &fe->regions[i];
		uint64_t last = g->gpa + g->size - 1;

		chunks = MAX(chunks, last / LOG_CHUNK + 1);
	}
	return chunks * sizeof(uint64_t);
}

int vfe_set_log_base(struct vfe *fe, uint64_t size)
{
	struct vfe_log l = { .fd = -EBADF };
	struct vhu_log msg = { .mmap_size = size, .mmap_offset = 0 };
	uint64_t v;
	size_t got = 0;
	int r;

	if (size == 0 || size > (1ULL << 40))
		return -EINVAL;
	l.size = size;
	l.map_len = (size_t)((size + VFE_LOG_PAGE - 1) & ~(VFE_LOG_PAGE - 1));
	l.fd = memfd_create("vfe-dirty-log", MFD_CLOEXEC);
	if (l.fd < 0)
		return -errno;
	/* The whole page exists, so a back-end writing past mmap_size shows up here. */
	if (ftruncate(l.fd, (off_t)l.map_len) < 0) {
		r = -errno;
		log_unmap(&l);
		return r;
	}
	l.map = mmap(NULL, l.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, l.fd, 0);
	if (l.map == MAP_FAILED) {
		r = -errno;
		l.map = NULL;
		log_unmap(&l);
		return r;
	}
	/* QEMU sets no NEED_REPLY: with LOG_SHMFD the back-end always replies. */
	r = vfe_send_msg(fe, VHU_SET_LOG_BASE, VHU_FLAG_VERSION, &msg, sizeof(msg), &l.fd, 1);
	if (r >= 0)
		r = vfe_recv_reply(fe, VHU_SET_LOG_BASE, &v, sizeof(v), &got, NULL, NULL);
	if (r < 0) {
		log_unmap(&l);
		return r;
	}
	log_unmap(&fe->prev_log);
	fe->prev_log = fe->log;
	fe->log = l;
	return 0;
}

int vfe_set_log_fd(struct vfe *fe, int fd)
{
	/* No payload, one fd; QEMU never sends it, so follow the usual ack rules. */
	return vfe_send_ack(fe, VHU_SET_LOG_FD, NULL, 0, &fd, 1, false);
}

bool vfe_log_test(struct vfe *fe, uint64_t gpa)
{
	uint64_t page = gpa / VFE_LOG_PAGE;

	if (!fe->log.map || page / 8 >= fe->log.size)
		return false;
	return __atomic_load_n(&fe->log.map[page / 8], __ATOMIC_ACQUIRE) & (1u << (page % 8));
}

void vfe_log_clear(struct vfe *fe)
{
	size_t words = fe->log.map_len / sizeof(uint64_t);
	uint64_t *w = (uint64_t *)fe->log.map;

	/* As QEMU's vhost_log_sync(): fetch-and-clear each word, never a plain memset. */
	for (size_t i = 0; w && i < words; i++)
		if (__atomic_load_n(&w[i], __ATOMIC_RELAXED))
			__atomic_exchange_n(&w[i], 0, __ATOMIC_ACQ_REL);
}

size_t vfe_log_dirty_pages(struct vfe *fe, uint64_t *pages, size_t max)
{
	size_t n = 0;

	for (uint64_t byte = 0; fe->log.map && byte < fe->log.size; byte++) {
		uint8_t b = __atomic_load_n(&fe->log.map[byte], __ATOMIC_ACQUIRE);

		for (unsigned bit = 0; b && bit < 8; bit++) {
			if (!(b & (1u << bit)))
				continue;
			if (pages && n < max)
				pages[n] = byte * 8 + bit;
			n++;
		}
	}
	return n;
}

int vfe_set_logging(struct vfe *fe, bool on)
{
	uint64_t f = fe->acked_features;
	int r;

	f = on ? f | BIT64(VHOST_F_LOG_ALL_BIT) : f & ~BIT64(VHOST_F_LOG_ALL_BIT);
	/* vfe_set_features() asks for the ack when LOG_ALL is set, as QEMU does. */
	r = vfe_set_features(fe, f);
	if (r >= 0 && on && !reply_ack(fe))
		r = vfe_sync(fe);
	for (unsigned i = 0; r >= 0 && i < fe->nqueues; i++) {
		struct vfe_queue *q = &fe->queues[i];

		if (!q->started)
			continue;
		r = vfe_set_vring_addr(
		    fe, i, vfe_gpa_to_qva(fe, q->desc_gpa), vfe_gpa_to_qva(fe, q->used_gpa),
		    vfe_gpa_to_qva(fe, q->avail_gpa), q->used_gpa, on ? VHU_VRING_F_LOG : 0);
		if (r >= 0 && on && !reply_ack(fe))
			r = vfe_sync(fe);
	}
	if (r < 0)
		return r;
	fe->logging = on;
	/* QEMU does not wait when switching off; tests need to know it took effect. */
	return vfe_sync(fe);
}

int vfe_set_device_state_fd(struct vfe *fe, uint32_t direction, uint32_t phase, int fd,
			    uint64_t *ret_reply)
{
	struct vhu_transfer_state ts = { .direction = direction, .phase = phase };
	int fds[1] = { -EBADF };
	size_t nfds = 1;
	uint64_t v;
	int r;

	r = vfe_send_msg(fe, VHU_SET_DEVICE_STATE_FD, VHU_FLAG_VERSION, &ts, sizeof(ts), &fd, 1);
	if (r < 0)
		return r;
	/* QEMU requires exactly 8 bytes (no ret_size: anything else is -EMSGSIZE). */
	r = vfe_recv_reply(fe, VHU_SET_DEVICE_STATE_FD, &v, sizeof(v), NULL, fds, &nfds);
	if (r < 0)
		return r;
	if (ret_reply)
		*ret_reply = v;
	if (nfds > 0 && ((v & 0xff) || (v & 0x100))) {
		/* An fd together with an error or with "no fd": QEMU refuses it. */
		safe_close(fds[0]);
		return -EPROTO;
	}
	if (!(v & 0xff) && !(v & 0x100)) {
		if (nfds == 0)
			return -EPROTO; /* "Failed to get back-end-provided transfer pipe FD" */
		safe_close(fe->device_state_fd);
		fe->device_state_fd = fds[0];
	}
	return 0;
}

int vfe_check_device_state(struct vfe *fe, uint64_t *ret)
{
	return vfe_request_u64(fe, VHU_CHECK_DEVICE_STATE, ret);
}
