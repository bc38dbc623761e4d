/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>

#include "vfsd/fuse.h"
#include "vfsd/util.h"

static size_t dirent_size(size_t namelen)
{
	return FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
}

static size_t direntplus_size(size_t namelen)
{
	return FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + namelen);
}

int vfsd_dirbuf_add(struct vfsd_dirbuf *b, const char *name, size_t namelen, uint64_t ino,
		    uint32_t type, uint64_t off)
{
	size_t need = dirent_size(namelen);
	struct fuse_dirent d = {
		.ino = ino,
		.off = off,
		.namelen = (uint32_t)namelen,
		.type = type,
	};

	if (namelen == 0 || namelen > VFSD_NAME_MAX || b->len > b->size || need > b->size - b->len)
		return -ENOSPC;
	memcpy(b->buf + b->len, &d, FUSE_NAME_OFFSET);
	memcpy(b->buf + b->len + FUSE_NAME_OFFSET, name, namelen);
	/* Zero the alignment padding: it goes to the guest. */
	memset(b->buf + b->len + FUSE_NAME_OFFSET + namelen, 0, need - FUSE_NAME_OFFSET - namelen);
	b->len += need;
	return 0;
}

bool vfsd_dirbuf_fits_plus(const struct vfsd_dirbuf *b, size_t namelen)
{
	return namelen > 0 && namelen <= VFSD_NAME_MAX && b->len <= b->size &&
	       direntplus_size(namelen) <= b->size - b->len;
}

int vfsd_dirbuf_add_plus(struct vfsd_dirbuf *b, const char *name, size_t namelen,
			 const struct fuse_entry_out *entry, uint32_t type, uint64_t off)
{
	size_t need = direntplus_size(namelen);
	struct fuse_direntplus d = {
		.entry_out = *entry,
		.dirent = {
			.ino = entry->attr.ino,
			.off = off,
			.namelen = (uint32_t)namelen,
			.type = type,
		},
	};

	if (!vfsd_dirbuf_fits_plus(b, namelen))
		return -ENOSPC;
	memcpy(b->buf + b->len, &d, FUSE_NAME_OFFSET_DIRENTPLUS);
	memcpy(b->buf + b->len + FUSE_NAME_OFFSET_DIRENTPLUS, name, namelen);
	memset(b->buf + b->len + FUSE_NAME_OFFSET_DIRENTPLUS + namelen, 0,
	       need - FUSE_NAME_OFFSET_DIRENTPLUS - namelen);
	b->len += need;
	return 0;
}
