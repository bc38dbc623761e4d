/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/guest_mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vfsd/util.h"

int vfsd_mem_map_region(const struct vhu_mem_region *in, int fd, struct vfsd_mem_region *ret)
{
	uint64_t map_size, end;
	void *p;

	if (in->memory_size == 0 || fd < 0)
		return -EINVAL;
	if (ADD_OVERFLOW(in->memory_size, in->mmap_offset, &map_size) || map_size > SIZE_MAX ||
	    ADD_OVERFLOW(in->guest_phys_addr, in->memory_size - 1, &end) ||
	    ADD_OVERFLOW(in->userspace_addr, in->memory_size - 1, &end))
		return -EINVAL;

	/* Map from offset 0 so any mmap_offset works, even a non-page-aligned one. */
	p = mmap(NULL, (size_t)map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Guest RAM has no place in a core dump of the back-end. */
	(void)madvise(p, (size_t)map_size, MADV_DONTDUMP);

	*ret = (struct vfsd_mem_region){
		.gpa = in->guest_phys_addr,
		.size = in->memory_size,
		.qva = in->userspace_addr,
		.mmap_offset = in->mmap_offset,
		.map = p,
		.map_size = (size_t)map_size,
		.host = (uint8_t *)p + in->mmap_offset,
	};
	return 0;
}

void vfsd_mem_unmap_region(struct vfsd_mem_region *r)
{
	if (r->map)
		munmap(r->map, r->map_size);
	r->map = NULL;
	r->host = NULL;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Both ranges are non-empty and do not wrap (checked at map time). */
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

int vfsd_mem_add(struct vfsd_guest_mem *m, struct vfsd_mem_region *r)
{
	for (unsigned int i = 0; i < m->nregions; i++)
		if (overlaps(m->regions[i].gpa, m->regions[i].size, r->gpa, r->size))
			return -EEXIST;
	if (m->nregions >= VHU_MAX_MEM_SLOTS)
		return -ENOSPC;
	if (m->nregions == m->cap) {
		unsigned int cap = m->cap ? m->cap * 2 : 8;
		struct vfsd_mem_region *n = reallocarray(m->regions, cap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		m->regions = n;
		m->cap = cap;
	}
	m->regions[m->nregions++] = *r;
	*r = (struct vfsd_mem_region){ 0 };
	return 0;
}

int vfsd_mem_remove(struct vfsd_guest_mem *m, uint64_t gpa, uint64_t size, uint64_t qva)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		struct vfsd_mem_region *r = &m->regions[i];
		if (r->gpa == gpa && r->size == size && r->qva == qva) {
			vfsd_mem_unmap_region(r);
			m->regions[i] = m->regions[--m->nregions];
			return 0;
		}
	}
	return -ENOENT;
}

void vfsd_mem_clear(struct vfsd_guest_mem *m)
{
	for (unsigned int i = 0; i < m->nregions; i++)
		vfsd_mem_unmap_region(&m->regions[i]);
	free(m->regions);
	*m = (struct vfsd_guest_mem){ 0 };
}

void vfsd_mem_move(struct vfsd_guest_mem *dst, struct vfsd_guest_mem *src)
{
	vfsd_mem_clear(dst);
	*dst = *src;
	*src = (struct vfsd_guest_mem){ 0 };
}

void *vfsd_mem_gpa(const struct vfsd_guest_mem *m, uint64_t gpa, uint64_t *ret_len)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vfsd_mem_region *r = &m->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			*ret_len = r->size - (gpa - r->gpa);
			return r->host + (gpa - r->gpa);
		}
	}
	return NULL;
}

void *vfsd_mem_gpa_range(const struct vfsd_guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t avail;
	void *p = vfsd_mem_gpa(m, gpa, &avail);

	if (!p || len > avail)
		return NULL;
	return p;
}

void *vfsd_mem_qva_range(const struct vfsd_guest_mem *m, uint64_t qva, uint64_t len)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vfsd_mem_region *r = &m->regions[i];
		if (qva >= r->qva && qva - r->qva < r->size) {
			if (len > r->size - (qva - r->qva))
				return NULL;
			return r->host + (qva - r->qva);
		}
	}
	return NULL;
}

int vfsd_dirty_log_map(int fd, uint64_t size, uint64_t offset, struct vfsd_dirty_log *ret)
{
	uint64_t end;
	void *p;

	if (size == 0 || size > SIZE_MAX || ADD_OVERFLOW(size, offset, &end) ||
	    offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	*ret = (struct vfsd_dirty_log){ .map = p, .size = (size_t)size, .efd = -1 };
	return 0;
}

void vfsd_dirty_log_unmap(struct vfsd_dirty_log *log)
{
	if (log->map)
		munmap(log->map, log->size);
	log->map = NULL;
	log->size = 0;
}

void vfsd_dirty_log_mark(struct vfsd_dirty_log *log, uint64_t gpa, uint64_t len)
{
	uint64_t first, last;

	if (!log || !log->map || len == 0)
		return;
	first = gpa / VFSD_LOG_PAGE;
	last = (gpa + (len - 1)) / VFSD_LOG_PAGE;
	if (gpa + (len - 1) < gpa)
		last = UINT64_MAX / VFSD_LOG_PAGE;
	/* The data must be visible before QEMU can see the bit and copy the page. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (uint64_t page = first; page <= last; page++) {
		uint64_t byte = page / 8;
		if (byte >= log->size) {
			if (!__atomic_exchange_n(&log->warned_overflow, true, __ATOMIC_RELAXED)) {
				log_warn(
				    "dirty log: guest address 0x%llx is beyond the %zu-byte log",
				    (unsigned long long)(page * VFSD_LOG_PAGE), log->size);
			}
			break;
		}
		__atomic_fetch_or(&log->map[byte], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
	}
	if (log->efd >= 0)
		eventfd_signal(log->efd);
}
