/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vring: the split virtqueue, device side.
 *
 * Pops descriptor chains into iovecs (every address translated and
 * bounds-checked, every length overflow-checked, loops, over-long chains and
 * nested indirect tables rejected), pushes used elements, and decides when to
 * notify the driver (EVENT_IDX aware). Ring fields are little-endian and are
 * copied out of guest memory before they are checked.
 *
 * A vring is used by one queue thread at a time; the vhost device holds its
 * read lock around pop/push so that the memory table cannot change under it.
 */
#ifndef VFSD_VRING_H
#define VFSD_VRING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vfsd/chain_io.h"
#include "vfsd/guest_mem.h"

/* One popped request: device-readable buffers in out[], device-writable in in[]. */
struct vfsd_chain {
	uint16_t head;
	unsigned int n_out;
	unsigned int n_in;
	struct iovec out[VFSD_CHAIN_MAX_IOV];
	struct iovec in[VFSD_CHAIN_MAX_IOV];
	/* guest-physical address of each in[] buffer, for dirty logging */
	uint64_t in_gpa[VFSD_CHAIN_MAX_IOV];
};

struct vfsd_vring {
	/* set by the front-end */
	unsigned int num;
	uint64_t desc_qva, avail_qva, used_qva, log_gpa;
	uint32_t addr_flags;
	bool addr_set;
	bool event_idx;

	/* translated from the current memory table; NULL when not translatable */
	struct vring_desc_le *desc;
	uint8_t *avail; /* flags, idx, ring[num], used_event */
	uint8_t *used;	/* flags, idx, ring[num], avail_event */

	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t signalled_used;
	bool signalled_used_valid;

	/*
	 * The dirty log while logging is on, else NULL. Writes to the used ring
	 * are logged at log_gpa when addr_flags has VHU_VRING_F_LOG.
	 */
	struct vfsd_dirty_log *log;
};

/**
 * vfsd_vring_set_num() - set the queue size.
 * Returns: 0, or -EINVAL unless 1 <= @num <= VRING_MAX_SIZE and a power of 2.
 */
int vfsd_vring_set_num(struct vfsd_vring *vr, unsigned int num);

/**
 * vfsd_vring_set_addr() - record the ring addresses (front-end virtual) and
 * translate them. Does not touch the indices but re-reads used->idx when the
 * ring was not translated before (the used index comes from guest memory).
 * Returns: 0, -EINVAL (misaligned) or -EFAULT (not in guest memory).
 */
int vfsd_vring_set_addr(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem, uint64_t desc,
			uint64_t used, uint64_t avail, uint64_t log_gpa, uint32_t flags);

/**
 * vfsd_vring_translate() - re-translate the ring pointers after a memory
 * table change. Returns: 0, or -EFAULT (pointers cleared: the ring is not ready).
 */
int vfsd_vring_translate(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem);

/** vfsd_vring_ready() - addresses set and translated. */
bool vfsd_vring_ready(const struct vfsd_vring *vr);

/** vfsd_vring_set_base() - SET_VRING_BASE: next avail index to process. */
void vfsd_vring_set_base(struct vfsd_vring *vr, uint16_t last_avail_idx);

/**
 * vfsd_vring_pop() - take the next available chain.
 * Returns: 1 with @chain filled, 0 when the ring is empty, or -errno when the
 * ring is malformed (the caller stops the queue); @why then says what was wrong.
 */
int vfsd_vring_pop(struct vfsd_vring *vr, const struct vfsd_guest_mem *mem,
		   struct vfsd_chain *chain, const char **why);

/**
 * vfsd_vring_push() - publish a used element {@head, @len} (write barrier
 * before idx). With logging on, first marks the first @len bytes of the
 * chain's device-writable buffers dirty (@chain may be NULL when @len is 0),
 * then the used-ring writes.
 */
void vfsd_vring_push(struct vfsd_vring *vr, const struct vfsd_chain *chain, uint16_t head,
		     uint32_t len);

/**
 * vfsd_vring_need_notify() - whether the driver wants an interrupt for what
 * was pushed since the last notification (full barrier first). Records the
 * notification as done when it returns true.
 */
bool vfsd_vring_need_notify(struct vfsd_vring *vr);

/**
 * vfsd_vring_enable_kicks() - before sleeping: publish avail_event (EVENT_IDX)
 * or clear NO_NOTIFY, full barrier, and report whether buffers arrived
 * meanwhile (then process them instead of sleeping).
 */
bool vfsd_vring_enable_kicks(struct vfsd_vring *vr);

/** vfsd_vring_has_avail() - whether the driver has made buffers available. */
bool vfsd_vring_has_avail(const struct vfsd_vring *vr);

#endif
