/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/vring.h"

#include <endian.h>
#include <string.h>

#include "vfsd/util.h"

/*
 * Guest memory is shared with a concurrently running driver: every field is
 * read once, with an atomic load, into a local before it is used.
 */
static uint16_t load16(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static void store16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

/* Log a write of @len bytes at @p inside the used ring, by its guest-physical address. */
static void log_used(const struct vfsd_vring *vr, const void *p, uint64_t len)
{
	if (vr->log && (vr->addr_flags & VHU_VRING_F_LOG))
		vfsd_dirty_log_mark(vr->log,
				    vr->log_gpa + (uint64_t)((const uint8_t *)p - vr->used), len);
}

/* avail: le16 flags, le16 idx, le16 ring[num], le16 used_event */
static uint8_t *avail_flags(const struct vfsd_vring *vr)
{
	return vr->avail;
}
static uint8_t *avail_idx(const struct vfsd_vring *vr)
{
	return vr->avail + 2;
}
static uint8_t *avail_ring(const struct vfsd_vring *vr, unsigned int i)
{
	return vr->avail + 4 + 2 * (size_t)i;
}
static uint8_t *used_event(const struct vfsd_vring *vr)
{
	return vr->avail + 4 + 2 * (size_t)vr->num;
}
/* used: le16 flags, le16 idx, {le32 id, le32 len} ring[num], le16 avail_event */
static uint8_t *used_idx(const struct vfsd_vring *vr)
{
	return vr->used + 2;
}
static uint8_t *used_ring(const struct vfsd_vring *vr, unsigned int i)
{
	return vr->used + 4 + 8 * (size_t)i;
}
static uint8_t *avail_event(const struct vfsd_vring *vr)
{
	return vr->used + 4 + 8 * (size_t)vr->num;
}

int vfsd_vring_set_num(struct vfsd_vring *vr, unsigned int num)
{
	if (num == 0 || num > VRING_MAX_SIZE || (num & (num - 1)) != 0)
		return -EINVAL;
	if (vr->addr_set && num != vr->num) {
		/* The translated sizes depend on num: translate again at next set_addr. */
		vr->desc = NULL;
		vr->avail = NULL;
		vr->used = NULL;
	}
	vr->num = num;
	return 0;
}

int vfsd_vring_translate(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem)
{
	uint64_t desc_len = 16ULL * vr->num;
	uint64_t avail_len = 6 + 2ULL * vr->num; /* with used_event */
	uint64_t used_len = 6 + 8ULL * vr->num;	 /* with avail_event */

	vr->desc = NULL;
	vr->avail = NULL;
	vr->used = NULL;
	if (!vr->addr_set || vr->num == 0)
		return -EFAULT;
	vr->desc = vfsd_mem_qva_range(mem, vr->desc_qva, desc_len);
	vr->avail = vfsd_mem_qva_range(mem, vr->avail_qva, avail_len);
	vr->used = vfsd_mem_qva_range(mem, vr->used_qva, used_len);
	if (!vr->desc || !vr->avail || !vr->used) {
		vr->desc = NULL;
		vr->avail = NULL;
		vr->used = NULL;
		return -EFAULT;
	}
	return 0;
}

int vfsd_vring_set_addr(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem, uint64_t desc,
			uint64_t used, uint64_t avail, uint64_t log_gpa, uint32_t flags)
{
	bool was_ready = vfsd_vring_ready(vr);
	int r;

	/* Alignments from the virtio spec (split virtqueue). */
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	vr->desc_qva = desc;
	vr->used_qva = used;
	vr->avail_qva = avail;
	vr->log_gpa = log_gpa;
	vr->addr_flags = flags;
	vr->addr_set = true;
	r = vfsd_vring_translate(vr, mem);
	if (r < 0)
		return r;
	/*
	 * The used index is not part of SET_VRING_BASE: it lives in guest memory.
	 * QEMU re-sends SET_VRING_ADDR on a running ring to toggle logging; the
	 * index in memory then equals ours, so re-reading is harmless either way.
	 */
	if (!was_ready)
		vr->used_idx = load16(used_idx(vr));
	return 0;
}

bool vfsd_vring_ready(const struct vfsd_vring *vr)
{
	return vr->desc && vr->avail && vr->used;
}

void vfsd_vring_set_base(struct vfsd_vring *vr, uint16_t last_avail_idx)
{
	vr->last_avail_idx = last_avail_idx;
	vr->signalled_used_valid = false;
	if (vfsd_vring_ready(vr))
		vr->used_idx = load16(used_idx(vr));
}

bool vfsd_vring_has_avail(const struct vfsd_vring *vr)
{
	return load16(avail_idx(vr)) != vr->last_avail_idx;
}

/* Append guest-physical [gpa, gpa+len) to iov[], split at region boundaries. */
static int map_buffer(const struct vfsd_guest_mem *mem, uint64_t gpa, uint32_t len,
		      struct iovec *iov, uint64_t *iov_gpa, unsigned int *n, const char **why)
{
	uint64_t end;

	if (ADD_OVERFLOW(gpa, (uint64_t)len, &end)) {
		*why = "descriptor address + length overflows";
		return -EFAULT;
	}
	while (len > 0) {
		uint64_t avail;
		void *p = vfsd_mem_gpa(mem, gpa, &avail);
		uint32_t chunk;

		if (!p) {
			*why = "descriptor address is outside guest memory";
			return -EFAULT;
		}
		if (*n >= VFSD_CHAIN_MAX_IOV) {
			*why = "descriptor chain has too many buffers";
			return -E2BIG;
		}
		chunk = avail < len ? (uint32_t)avail : len;
		iov[*n] = (struct iovec){ .iov_base = p, .iov_len = chunk };
		if (iov_gpa)
			iov_gpa[*n] = gpa;
		(*n)++;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int vfsd_vring_pop(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem,
		   struct vfsd_chain *chain, const char **why)
{
	const struct vring_desc_le *table;
	unsigned int table_size, i, count = 0;
	bool indirect = false;
	uint16_t aidx, head;
	int r;

	*why = NULL;
	if (!vfsd_vring_ready(vr)) {
		*why = "ring is not set up";
		return -EFAULT;
	}
	aidx = load16(avail_idx(vr));
	if ((uint16_t)(aidx - vr->last_avail_idx) > vr->num) {
		*why = "avail index moved by more than the queue size";
		return -EINVAL;
	}
	if (aidx == vr->last_avail_idx)
		return 0;
	/* Read the ring entry only after seeing the index that covers it. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);

	head = load16(avail_ring(vr, vr->last_avail_idx % vr->num));
	if (head >= vr->num) {
		*why = "avail ring entry is not a descriptor index";
		return -EINVAL;
	}
	chain->head = head;
	chain->n_out = 0;
	chain->n_in = 0;

	table = vr->desc;
	table_size = vr->num;
	i = head;
	for (;;) {
		struct vring_desc_le d;
		uint16_t flags;
		uint64_t addr;
		uint32_t len;

		/* Every descriptor is visited at most once: more means a loop. */
		if (++count > table_size) {
			*why = "descriptor chain loops or is longer than its table";
			return -ELOOP;
		}
		memcpy(&d, (const void *)&table[i], sizeof(d));
		flags = le16toh(d.flags);
		addr = le64toh(d.addr);
		len = le32toh(d.len);

		if (flags & VRING_DESC_F_INDIRECT) {
			if (indirect) {
				*why = "nested indirect descriptor table";
				return -EINVAL;
			}
			if (count != 1 || (flags & VRING_DESC_F_NEXT)) {
				*why = "indirect descriptor inside a chain";
				return -EINVAL;
			}
			if (len == 0 || len % sizeof(struct vring_desc_le) != 0 ||
			    len / sizeof(struct vring_desc_le) > VFSD_CHAIN_MAX_IOV) {
				*why = "indirect table length is not a multiple of 16 or too long";
				return -EINVAL;
			}
			table = vfsd_mem_gpa_range(mem, addr, len);
			if (!table || ((uintptr_t)table & 15) != 0) {
				*why = "indirect table is outside guest memory or misaligned";
				return -EFAULT;
			}
			table_size = len / sizeof(struct vring_desc_le);
			indirect = true;
			count = 0;
			i = 0;
			continue;
		}

		if (flags & VRING_DESC_F_WRITE) {
			r = map_buffer(mem, addr, len, chain->in, chain->in_gpa, &chain->n_in, why);
		} else {
			if (chain->n_in > 0) {
				*why = "device-readable descriptor after a device-writable one";
				return -EINVAL;
			}
			r = map_buffer(mem, addr, len, chain->out, NULL, &chain->n_out, why);
		}
		if (r < 0)
			return r;

		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= table_size) {
			*why = "descriptor next index is out of range";
			return -EINVAL;
		}
	}

	vr->last_avail_idx++;
	if (vr->event_idx) {
		store16(avail_event(vr), vr->last_avail_idx);
		log_used(vr, avail_event(vr), 2);
	}
	return 1;
}

static void log_chain(const struct vfsd_vring *vr, const struct vfsd_chain *chain, uint32_t len)
{
	for (unsigned int i = 0; i < chain->n_in && len > 0; i++) {
		uint32_t n = chain->in[i].iov_len < len ? (uint32_t)chain->in[i].iov_len : len;
		vfsd_dirty_log_mark(vr->log, chain->in_gpa[i], n);
		len -= n;
	}
}

void vfsd_vring_push(struct vfsd_vring *vr, const struct vfsd_chain *chain, uint16_t head,
		     uint32_t len)
{
	uint8_t *e = used_ring(vr, vr->used_idx % vr->num);
	uint32_t id_le = htole32(head), len_le = htole32(len);

	/* The reply data is written; mark it before the guest can see the element. */
	if (vr->log && chain)
		log_chain(vr, chain, len);
	memcpy(e, &id_le, 4);
	memcpy(e + 4, &len_le, 4);
	log_used(vr, e, 8);
	/* The element must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vr->used_idx++;
	store16(used_idx(vr), vr->used_idx);
	log_used(vr, used_idx(vr), 2);
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vfsd_vring_need_notify(struct vfsd_vring *vr)
{
	uint16_t old = vr->signalled_used, now = vr->used_idx;
	bool valid = vr->signalled_used_valid;

	/* Publishing used->idx must be ordered before reading the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	if (!vr->event_idx)
		return !(load16(avail_flags(vr)) & VRING_AVAIL_F_NO_INTERRUPT);

	vr->signalled_used = now;
	vr->signalled_used_valid = true;
	if (!valid)
		return true; /* first completion after start: always notify */
	return need_event(load16(used_event(vr)), now, old);
}

bool vfsd_vring_enable_kicks(struct vfsd_vring *vr)
{
	/* Without EVENT_IDX we never set VRING_USED_F_NO_NOTIFY, so kicks stay on. */
	if (vr->event_idx) {
		store16(avail_event(vr), vr->last_avail_idx);
		log_used(vr, avail_event(vr), 2);
	}
	/* Our write must be visible before we look at avail->idx again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vfsd_vring_has_avail(vr);
}
