/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: digging a blob out of a QEMU migration stream saved to a file.
 *
 * QEMU stores the back-end's state in the subsection "vhost-user-fs-backend"
 * of the vhost-user-fs device section: the byte 0x05 (QEMU_VM_SUBSECTION), a
 * name-length byte, the name, a be32 version id, then chunks each prefixed by
 * a be32 length, ending with a 0-length chunk. The chunk boundaries are
 * whatever one pipe read() returned, so they cut records anywhere.
 *
 * A saved stream holds guest RAM too, possibly gigabytes of it, so both the
 * search and the reassembly read the file sequentially in bounded blocks.
 */
#include "vfsd/state.h"

#include "vfsd/util.h"

#include <string.h>

#define SCAN_BLOCK (1024 * 1024)

static const char marker[] = "\x05\x15" VFSD_STATE_MIGSTREAM_NAME;
#define MARKER_LEN (sizeof(marker) - 1)
/* marker, be32 version id, be32 first chunk length, first payload byte */
#define PROBE_LEN (MARKER_LEN + 4 + 4 + 1)

_Static_assert(sizeof(VFSD_STATE_MIGSTREAM_NAME) - 1 == 0x15, "name length byte");

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool plausible(const uint8_t *p)
{
	uint32_t len = be32(p + MARKER_LEN + 4);

	return len > 0 && len <= VFSD_STATE_MIGSTREAM_MAX_CHUNK && p[MARKER_LEN + 8] == '{';
}

/*
 * The LAST marker in the stream is the device's subsection: QEMU writes the
 * device state after the final RAM pass, so any earlier occurrence is guest
 * RAM, which the guest controls. An earlier plausible copy is therefore never
 * used in place of a damaged last one (a guest could plant a valid-looking
 * blob there). On -ENOENT, *ret_offset is the chunk offset of that last,
 * implausible marker (so a caller can say "the subsection is there, but it
 * does not hold a vfsd blob", e.g. another back-end's state), or -1 when the
 * stream holds no marker at all.
 */
int vfsd_state_migstream_find(int fd, off_t *ret_offset, unsigned int *ret_count)
{
	_cleanup_free_ uint8_t *buf = malloc(SCAN_BLOCK + PROBE_LEN);
	off_t base = lseek(fd, 0, SEEK_CUR); /* file offset of buf[0] */
	off_t last = -1;
	bool last_plausible = false;
	unsigned int count = 0;
	size_t have = 0;
	bool eof = false;

	if (!buf)
		return -ENOMEM;
	if (base < 0)
		return -errno;
	while (!eof) {
		ssize_t n = read_full(fd, buf + have, SCAN_BLOCK + PROBE_LEN - have);
		size_t scan_end, pos = 0;

		if (n < 0)
			return (int)n;
		have += (size_t)n;
		eof = have < SCAN_BLOCK + PROBE_LEN;
		/* A match needs PROBE_LEN bytes; later starts are looked at next round. */
		scan_end = have >= PROBE_LEN ? have - PROBE_LEN + 1 : 0;
		while (pos < scan_end) {
			uint8_t *m =
			    memmem(buf + pos, scan_end - pos + MARKER_LEN - 1, marker, MARKER_LEN);

			if (!m || (size_t)(m - buf) >= scan_end)
				break;
			last = base + (m - buf) + (off_t)MARKER_LEN + 4;
			last_plausible = plausible(m);
			count += last_plausible;
			pos = (size_t)(m - buf) + 1;
		}
		if (scan_end > 0) {
			memmove(buf, buf + scan_end, have - scan_end);
			base += (off_t)scan_end;
			have -= scan_end;
		}
	}
	if (ret_count)
		*ret_count = count;
	if (last < 0 || !last_plausible) {
		if (ret_offset)
			*ret_offset = last;
		return -ENOENT;
	}
	*ret_offset = last;
	return 0;
}

void vfsd_state_migstream_init(struct vfsd_state_migstream *m, int fd, off_t offset)
{
	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->pos = offset;
}

ssize_t vfsd_state_migstream_read(void *opaque, void *buf, size_t len)
{
	struct vfsd_state_migstream *m = opaque;
	ssize_t n;

	if (m->done)
		return 0;
	if (m->left == 0) {
		uint8_t hdr[4];

		n = RET_NERRNO(pread(m->fd, hdr, sizeof(hdr), m->pos));
		if (n < 0)
			return n;
		if (n < (ssize_t)sizeof(hdr)) {
			m->problem = "the migration stream ends inside a chunk length";
			return -EBADMSG;
		}
		m->pos += 4;
		m->left = be32(hdr);
		if (m->left == 0) {
			m->done = true;
			return 0;
		}
		if (m->left > VFSD_STATE_MIGSTREAM_MAX_CHUNK) {
			m->problem = "implausible chunk length in the migration stream";
			return -EBADMSG;
		}
		m->chunks++;
	}
	n = RET_NERRNO(pread(m->fd, buf, MIN(len, (size_t)m->left), m->pos));
	if (n < 0)
		return n;
	if (n == 0) {
		m->problem = "the migration stream ends inside a chunk";
		return -EBADMSG;
	}
	m->pos += n;
	m->left -= (uint32_t)n;
	return n;
}
