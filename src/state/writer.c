/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: the streaming writer.
 *
 * Records are formatted by hand straight into a 64 KiB buffer (no json-c
 * objects, no snprintf on the hot path) and the CRC-32C is updated per
 * record, so the cost per inode is a few hundred nanoseconds and memory does
 * not grow with the blob. Every record fits in RECORD_MAX bytes, so one is
 * never split between the buffer and a flush.
 */
#include "state-internal.h"

#include "vfsd/util.h"

#include <string.h>

#define WBUF_SIZE (64 * 1024)
/* header: producer + 64 features escaped; inode: 2 names and a path at 6 bytes each */
#define RECORD_MAX (32 * 1024)

struct vfsd_state_writer {
	vfsd_state_write_fn fn;
	void *opaque;
	int fd;
	int error; /* sticky: the first error */
	bool session_done;
	bool orphans, file_handles, lost; /* features the header declared */
	uint32_t crc;
	uint64_t records, inodes, handles;
	uint64_t bytes;
	size_t len;
	char buf[WBUF_SIZE];
};

static int fd_write(void *opaque, const void *buf, size_t len)
{
	struct vfsd_state_writer *w = opaque;

	return write_full(w->fd, buf, len);
}

static int flush(struct vfsd_state_writer *w)
{
	int r;

	if (w->error)
		return w->error;
	if (w->len == 0)
		return 0;
	r = w->fn(w->opaque, w->buf, w->len);
	w->len = 0;
	if (r < 0)
		w->error = r;
	return r;
}

static void put(struct vfsd_state_writer *w, const char *s, size_t n)
{
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_u64(struct vfsd_state_writer *w, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		w->buf[w->len++] = tmp[--n];
}

static void put_hex(struct vfsd_state_writer *w, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		w->buf[w->len++] = hex[p[i] >> 4];
		w->buf[w->len++] = hex[p[i] & 15];
	}
}

/* A JSON string; @s must be valid UTF-8. Control characters use \u00XX. */
static void put_str(struct vfsd_state_writer *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	w->buf[w->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			w->buf[w->len++] = '\\';
			w->buf[w->len++] = (char)c;
		} else if (c < 0x20) {
			put(w, "\\u00", 4);
			w->buf[w->len++] = hex[c >> 4];
			w->buf[w->len++] = hex[c & 15];
		} else {
			w->buf[w->len++] = (char)c;
		}
	}
	w->buf[w->len++] = '"';
}

/* A file name: as a string when it is UTF-8, else as "<key>_hex". */
static void put_name(struct vfsd_state_writer *w, const char *key, const char *name)
{
	size_t n = strlen(name);

	w->buf[w->len++] = ',';
	w->buf[w->len++] = '"';
	put(w, key, strlen(key));
	if (state_utf8_ok(name, n)) {
		PUT_LIT(w, "\":");
		put_str(w, name, n);
	} else {
		PUT_LIT(w, "_hex\":\"");
		put_hex(w, (const uint8_t *)name, n);
		w->buf[w->len++] = '"';
	}
}

/* Make room for one record; remember where it starts for the CRC. */
static int begin(struct vfsd_state_writer *w, size_t *start)
{
	if (w->error)
		return w->error;
	if (WBUF_SIZE - w->len < RECORD_MAX) {
		int r = flush(w);

		if (r < 0)
			return r;
	}
	*start = w->len;
	return 0;
}

static void end(struct vfsd_state_writer *w, size_t start, bool counted)
{
	w->buf[w->len++] = '\n';
	w->crc = vfsd_crc32c(w->crc, w->buf + start, w->len - start);
	w->bytes += w->len - start;
	if (counted)
		w->records++;
}

static int fail(struct vfsd_state_writer *w, int r)
{
	if (!w->error)
		w->error = r;
	return r;
}

static void put_features(struct vfsd_state_writer *w, size_t n,
			 const char (*names)[VFSD_STATE_FEATURE_SIZE])
{
	w->buf[w->len++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			w->buf[w->len++] = ',';
		put_str(w, names[i], strlen(names[i]));
	}
	w->buf[w->len++] = ']';
}

static bool features_ok(size_t n, const char (*names)[VFSD_STATE_FEATURE_SIZE])
{
	if (n > VFSD_STATE_MAX_FEATURES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!state_feature_ok(names[i], strnlen(names[i], VFSD_STATE_FEATURE_SIZE)))
			return false;
	return true;
}

int vfsd_state_writer_open_cb(vfsd_state_write_fn fn, void *opaque,
			      const struct vfsd_state_header *h, struct vfsd_state_writer **ret)
{
	struct vfsd_state_writer *w;
	size_t plen = strnlen(h->producer, sizeof(h->producer));
	uint32_t major = h->major, minor = h->minor;
	size_t start;
	int r;

	if (major == 0 && minor == 0) {
		major = VFSD_STATE_MAJOR;
		minor = VFSD_STATE_MINOR;
	}
	/* Every 1.x up to ours: 1.0 is 1.1 without lost records (vfsd-state convert). */
	if (major != VFSD_STATE_MAJOR || minor > VFSD_STATE_MINOR)
		return -EPROTONOSUPPORT;
	if (plen == sizeof(h->producer) || !state_utf8_ok(h->producer, plen) ||
	    !features_ok(h->n_required, h->required) || !features_ok(h->n_optional, h->optional))
		return -EINVAL;
	if (minor < 1 && vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_LOST))
		return -EINVAL;
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	memset(w, 0, offsetof(struct vfsd_state_writer, buf));
	w->fn = fn ? fn : fd_write;
	w->opaque = fn ? opaque : w;
	w->fd = -EBADF;
	w->orphans = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_ORPHANS);
	w->file_handles = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_FILE_HANDLES);
	w->lost = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_LOST);

	r = begin(w, &start);
	if (r < 0) {
		free(w);
		return r;
	}
	PUT_LIT(w, "{\"format\":\"" VFSD_STATE_FORMAT "\",\"version\":\"");
	put_u64(w, major);
	w->buf[w->len++] = '.';
	put_u64(w, minor);
	PUT_LIT(w, "\",\"producer\":");
	put_str(w, h->producer, plen);
	PUT_LIT(w, ",\"required_features\":");
	put_features(w, h->n_required, h->required);
	PUT_LIT(w, ",\"optional_features\":");
	put_features(w, h->n_optional, h->optional);
	w->buf[w->len++] = '}';
	end(w, start, false);
	*ret = w;
	return 0;
}

int vfsd_state_writer_open(int fd, const struct vfsd_state_header *h,
			   struct vfsd_state_writer **ret)
{
	int r = vfsd_state_writer_open_cb(NULL, NULL, h, ret);

	if (r == 0)
		(*ret)->fd = fd;
	return r;
}

int vfsd_state_writer_session(struct vfsd_state_writer *w, const struct vfsd_state_session *s)
{
	size_t start;
	int r;

	if (w->session_done || (s->initialized && s->fuse_major == 0) || s->next_nodeid < 2 ||
	    (s->mode != VFSD_STATE_MODE_FIND_PATHS && s->mode != VFSD_STATE_MODE_FILE_HANDLES))
		return fail(w, -EINVAL);
	r = begin(w, &start);
	if (r < 0)
		return r;
	PUT_LIT(w, "{\"kind\":\"session\",\"initialized\":");
	if (s->initialized) {
		PUT_LIT(w, "true,\"fuse\":{\"major\":");
		put_u64(w, s->fuse_major);
		PUT_LIT(w, ",\"minor\":");
		put_u64(w, s->fuse_minor);
		PUT_LIT(w, ",\"flags\":");
		put_u64(w, s->fuse_flags);
		PUT_LIT(w, ",\"max_write\":");
		put_u64(w, s->max_write);
		PUT_LIT(w, ",\"max_readahead\":");
		put_u64(w, s->max_readahead);
		w->buf[w->len++] = '}';
	} else {
		PUT_LIT(w, "false");
	}
	PUT_LIT(w, ",\"next_nodeid\":");
	put_u64(w, s->next_nodeid);
	PUT_LIT(w, ",\"next_fh\":");
	put_u64(w, s->next_fh);
	PUT_LIT(w, ",\"migration_mode\":\"");
	put(w, vfsd_state_mode_name(s->mode), strlen(vfsd_state_mode_name(s->mode)));
	PUT_LIT(w, "\"}");
	end(w, start, true);
	w->session_done = true;
	return 0;
}

int vfsd_state_writer_inode(struct vfsd_state_writer *w, const struct vfsd_state_inode *in)
{
	bool root = in->id == 1;
	bool located = in->parent && in->name;
	size_t start;
	int r;

	if (!w->session_done || in->id == 0 || in->type <= VFSD_STATE_T_UNKNOWN ||
	    in->type > VFSD_STATE_T_SOCK)
		return fail(w, -EINVAL);
	if (in->lost != VFSD_STATE_LOST_NONE) {
		/* Lost (1.1): declared, not the root, no location at all (as the reader checks). */
		if ((in->lost != VFSD_STATE_LOST_UNLINKED &&
		     in->lost != VFSD_STATE_LOST_NOT_FOUND) ||
		    !w->lost || root || in->parent || in->name || in->path || in->orphan ||
		    in->has_file_handle)
			return fail(w, -EINVAL);
	} else {
		if (root ? (in->parent || in->name || in->type != VFSD_STATE_T_DIR || in->path)
			 : (!!in->parent != !!in->name || in->parent == in->id ||
			    (!located && !in->has_file_handle && !in->orphan && !in->path)))
			return fail(w, -EINVAL);
		if (!root && !located && !in->orphan && !in->path && !w->file_handles)
			return fail(w, -EINVAL);
	}
	if (in->name && !state_name_ok(in->name, strlen(in->name)))
		return fail(w, -EINVAL);
	if (in->path && !state_path_ok(in->path, strlen(in->path)))
		return fail(w, -EINVAL);
	if (in->orphan && (!state_name_ok(in->orphan, strlen(in->orphan)) || !w->orphans))
		return fail(w, -EINVAL);
	if (in->has_file_handle && (in->fh_size == 0 || in->fh_size > VFSD_STATE_HANDLE_MAX ||
				    in->fh_type < 0 || !in->fh_bytes))
		return fail(w, -EINVAL);
	r = begin(w, &start);
	if (r < 0)
		return r;
	PUT_LIT(w, "{\"kind\":\"inode\",\"id\":");
	put_u64(w, in->id);
	PUT_LIT(w, ",\"nlookup\":");
	put_u64(w, in->nlookup);
	PUT_LIT(w, ",\"type\":\"");
	put(w, state_type_names[in->type], strlen(state_type_names[in->type]));
	w->buf[w->len++] = '"';
	if (in->lost) {
		const char *why = vfsd_state_lost_name(in->lost);

		PUT_LIT(w, ",\"lost\":\"");
		put(w, why, strlen(why));
		w->buf[w->len++] = '"';
	}
	if (in->parent) {
		PUT_LIT(w, ",\"parent\":");
		put_u64(w, in->parent);
		put_name(w, "name", in->name);
	}
	if (in->path)
		put_name(w, "path", in->path);
	if (in->orphan)
		put_name(w, "orphan", in->orphan);
	if (in->has_ino) {
		PUT_LIT(w, ",\"ino\":");
		put_u64(w, in->ino);
	}
	if (in->has_file_handle) {
		PUT_LIT(w, ",\"file_handle\":{\"type\":");
		put_u64(w, (uint64_t)in->fh_type);
		PUT_LIT(w, ",\"handle\":\"");
		put_hex(w, in->fh_bytes, in->fh_size);
		PUT_LIT(w, "\",\"mnt_id\":");
		put_u64(w, in->mnt_id);
		w->buf[w->len++] = '}';
	}
	w->buf[w->len++] = '}';
	end(w, start, true);
	w->inodes++;
	return 0;
}

int vfsd_state_writer_handle(struct vfsd_state_writer *w, const struct vfsd_state_handle *h)
{
	size_t start;
	int r;

	if (!w->session_done || h->inode == 0 || (h->has_dir_offset && !h->dir))
		return fail(w, -EINVAL);
	r = begin(w, &start);
	if (r < 0)
		return r;
	PUT_LIT(w, "{\"kind\":\"handle\",\"fh\":");
	put_u64(w, h->fh);
	PUT_LIT(w, ",\"inode\":");
	put_u64(w, h->inode);
	PUT_LIT(w, ",\"flags\":");
	put_u64(w, h->flags);
	if (h->dir) {
		PUT_LIT(w, ",\"dir\":true");
		if (h->has_dir_offset) {
			PUT_LIT(w, ",\"dir_offset\":");
			put_u64(w, h->dir_offset);
		}
	} else {
		PUT_LIT(w, ",\"dir\":false");
	}
	w->buf[w->len++] = '}';
	end(w, start, true);
	w->handles++;
	return 0;
}

uint64_t vfsd_state_writer_bytes(const struct vfsd_state_writer *w)
{
	return w->bytes;
}

void vfsd_state_writer_free(struct vfsd_state_writer *w)
{
	free(w);
}

int vfsd_state_writer_close(struct vfsd_state_writer *w)
{
	static const char hex[] = "0123456789abcdef";
	size_t start;
	int r;

	if (!w->session_done)
		fail(w, -EINVAL);
	r = begin(w, &start);
	if (r == 0) {
		PUT_LIT(w, "{\"kind\":\"trailer\",\"records\":");
		put_u64(w, w->records);
		PUT_LIT(w, ",\"inodes\":");
		put_u64(w, w->inodes);
		PUT_LIT(w, ",\"handles\":");
		put_u64(w, w->handles);
		PUT_LIT(w, ",\"checksum\":\"crc32c:");
		for (int shift = 28; shift >= 0; shift -= 4)
			w->buf[w->len++] = hex[(w->crc >> shift) & 15];
		PUT_LIT(w, "\"}\n");
		r = flush(w);
	}
	free(w);
	return r;
}

int vfsd_state_write_cb(const struct vfsd_state *s, vfsd_state_write_fn fn, void *opaque)
{
	struct vfsd_state_writer *w;
	int r;

	if (!s->has_session)
		return -EINVAL;
	r = fn ? vfsd_state_writer_open_cb(fn, opaque, &s->header, &w)
	       : vfsd_state_writer_open((int)(intptr_t)opaque, &s->header, &w);
	if (r < 0)
		return r;
	r = vfsd_state_writer_session(w, &s->session);
	for (size_t i = 0; r == 0 && i < s->n_inodes; i++)
		r = vfsd_state_writer_inode(w, &s->inodes[i]);
	for (size_t i = 0; r == 0 && i < s->n_handles; i++)
		r = vfsd_state_writer_handle(w, &s->handles[i]);
	if (r < 0) {
		vfsd_state_writer_free(w);
		return r;
	}
	return vfsd_state_writer_close(w);
}

int vfsd_state_write(const struct vfsd_state *s, int fd)
{
	return vfsd_state_write_cb(s, NULL, (void *)(intptr_t)fd);
}
