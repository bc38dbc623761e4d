/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest RAM: one memfd mapped here contiguously and shown to the back-end as
 * one or more regions, plus a bump allocator for rings and request buffers.
 */
#include <string.h>
#include <sys/mman.h>

#include "vfe.h"
#include "vfsd/util.h"

#define PAGE 4096ULL

int vfe_mem_setup(struct vfe *fe, uint64_t gpa, uint64_t size, unsigned nregions)
{
	uint64_t per, off = 0;
	void *p;
	int fd;

	if (fe->mem || nregions == 0 || nregions > VFE_MAX_REGIONS || size < nregions * PAGE ||
	    gpa % PAGE)
		return -EINVAL;
	size = (size + PAGE - 1) & ~(PAGE - 1);
	fd = memfd_create("vfe-guest-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int r = -errno;

		close(fd);
		return r;
	}
	fe->mem_fd = fd;
	fe->mem = p;
	fe->mem_size = size;
	fe->mem_gpa = gpa;
	fe->nregions = nregions;
	per = (size / nregions) & ~(PAGE - 1);
	for (unsigned i = 0; i < nregions; i++) {
		struct vfe_region *g = &fe->regions[i];

		g->gpa = gpa + off;
		g->size = i + 1 == nregions ? size - off : per;
		g->mmap_offset = off;
		/* Not our mapping address, and not contiguous across regions: a back-end
		 * that confuses GPAs and QVAs, or assumes one region, will notice. */
		g->qva = VFE_QVA_BASE + g->gpa + ((uint64_t)i << 36);
		g->added = false;
		off += g->size;
	}
	fe->alloc_next = 0;
	return 0;
}

void *vfe_alloc(struct vfe *fe, size_t size, size_t align, uint64_t *gpa)
{
	uint64_t off;

	if (!fe->mem || align == 0 || (align & (align - 1)))
		return NULL;
	off = (fe->alloc_next + align - 1) & ~((uint64_t)align - 1);
	if (off > fe->mem_size || size > fe->mem_size - off)
		return NULL;
	fe->alloc_next = off + size;
	memset(fe->mem + off, 0, size);
	if (gpa)
		*gpa = fe->mem_gpa + off;
	return fe->mem + off;
}

uint64_t vfe_alloc_mark(struct vfe *fe)
{
	return fe->alloc_next;
}

void vfe_alloc_reset(struct vfe *fe, uint64_t mark)
{
	if (mark <= fe->alloc_next)
		fe->alloc_next = mark;
}

void *vfe_gpa_to_ptr(struct vfe *fe, uint64_t gpa, uint64_t len)
{
	if (!fe->mem || gpa < fe->mem_gpa || gpa - fe->mem_gpa > fe->mem_size ||
	    len > fe->mem_size - (gpa - fe->mem_gpa))
		return NULL;
	return fe->mem + (gpa - fe->mem_gpa);
}

uint64_t vfe_ptr_to_gpa(struct vfe *fe, const void *ptr)
{
	const uint8_t *p = ptr;

	if (!fe->mem || p < fe->mem || p >= fe->mem + fe->mem_size)
		return UINT64_MAX;
	return fe->mem_gpa + (uint64_t)(p - fe->mem);
}

uint64_t vfe_gpa_to_qva(struct vfe *fe, uint64_t gpa)
{
	for (unsigned i = 0; i < fe->nregions; i++) {
		const struct vfe_region *g = &fe->regions[i];

		if (gpa >= g->gpa && gpa - g->gpa < g->size)
			return g->qva + (gpa - g->gpa);
	}
	return UINT64_MAX;
}
