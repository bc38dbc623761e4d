/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest_mem: the guest's RAM as mapped from the front-end's fds, and the two
 * translations a back-end needs: guest-physical addresses (descriptor
 * buffers) and front-end virtual addresses (SET_VRING_ADDR ring pointers).
 *
 * Every translation is bounds-checked against one region; a buffer crossing
 * regions is translated piecewise by the caller. The table itself is not
 * locked here: the vhost device changes it only under its write lock while
 * queue threads translate under the read lock.
 */
#ifndef VFSD_GUEST_MEM_H
#define VFSD_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfsd/wire.h"

struct vfsd_mem_region {
	uint64_t gpa;  /* guest-physical start */
	uint64_t size; /* bytes */
	uint64_t qva;  /* where the front-end maps it (userspace_addr) */
	uint64_t mmap_offset;
	void *map;	 /* our mmap of the fd, from offset 0 */
	size_t map_size; /* size + mmap_offset */
	uint8_t *host;	 /* map + mmap_offset: host address of gpa */
};

struct vfsd_guest_mem {
	struct vfsd_mem_region *regions;
	unsigned int nregions;
	unsigned int cap;
};

/**
 * vfsd_mem_map_region() - mmap one front-end region from @fd (not closed here).
 * Returns: 0, -EINVAL for an empty or overflowing region, or mmap's -errno.
 */
int vfsd_mem_map_region(const struct vhu_mem_region *in, int fd, struct vfsd_mem_region *ret);

/** vfsd_mem_unmap_region() - undo vfsd_mem_map_region(); accepts an unmapped region. */
void vfsd_mem_unmap_region(struct vfsd_mem_region *r);

/**
 * vfsd_mem_add() - add a mapped region to the table (ownership moves in).
 * Returns: 0; -EEXIST when its guest-physical range overlaps another region's;
 * -ENOSPC beyond VHU_MAX_MEM_SLOTS; -ENOMEM.
 */
int vfsd_mem_add(struct vfsd_guest_mem *m, struct vfsd_mem_region *r);

/**
 * vfsd_mem_remove() - unmap and drop the region matching @gpa, @size and @qva
 * (REM_MEM_REG ignores mmap_offset). Returns: 0 or -ENOENT.
 */
int vfsd_mem_remove(struct vfsd_guest_mem *m, uint64_t gpa, uint64_t size, uint64_t qva);

/** vfsd_mem_clear() - unmap every region and free the table. */
void vfsd_mem_clear(struct vfsd_guest_mem *m);

/** vfsd_mem_move() - move all regions from @src into an emptied @dst. */
void vfsd_mem_move(struct vfsd_guest_mem *dst, struct vfsd_guest_mem *src);

/**
 * vfsd_mem_gpa() - translate guest-physical @gpa.
 * @ret_len: bytes available contiguously from there, within the region
 * Returns: the host pointer, or NULL when @gpa is in no region.
 */
void *vfsd_mem_gpa(const struct vfsd_guest_mem *m, uint64_t gpa, uint64_t *ret_len);

/**
 * vfsd_mem_qva_range() - translate front-end virtual [@qva, @qva + @len) that
 * must lie in one region. Returns: the host pointer or NULL.
 */
void *vfsd_mem_qva_range(const struct vfsd_guest_mem *m, uint64_t qva, uint64_t len);

/**
 * vfsd_mem_gpa_range() - translate guest-physical [@gpa, @gpa + @len) that
 * must lie in one region. Returns: the host pointer or NULL.
 */
void *vfsd_mem_gpa_range(const struct vfsd_guest_mem *m, uint64_t gpa, uint64_t len);

/*
 * The dirty-page log QEMU gives us for live migration (SET_LOG_BASE): one bit
 * per 4 KiB page of guest-physical address space from GPA 0. Every byte we
 * write into guest memory while logging is on is marked, atomically, after
 * the write.
 */
#define VFSD_LOG_PAGE 4096u

struct vfsd_dirty_log {
	uint8_t *map;
	size_t size;
	int efd;	      /* SET_LOG_FD eventfd, or -1 */
	bool warned_overflow; /* logged once that a write lay beyond the log */
};

/**
 * vfsd_dirty_log_map() - map @size bytes of the log memfd @fd from @offset.
 * Returns: 0, -EINVAL for an empty or overflowing size, or mmap's -errno.
 */
int vfsd_dirty_log_map(int fd, uint64_t size, uint64_t offset, struct vfsd_dirty_log *ret);

/** vfsd_dirty_log_unmap() - unmap; accepts an unmapped log. */
void vfsd_dirty_log_unmap(struct vfsd_dirty_log *log);

/**
 * vfsd_dirty_log_mark() - mark the pages of guest-physical [@gpa, @gpa + @len)
 * dirty. Call after the write. Pages past the end of the log are skipped
 * (and reported once). Safe against QEMU clearing bits concurrently.
 */
void vfsd_dirty_log_mark(struct vfsd_dirty_log *log, uint64_t gpa, uint64_t len);

#endif
