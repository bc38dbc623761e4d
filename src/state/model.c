/* SPDX-License-Identifier: GPL-2.0-or-later */
/* state: the in-memory model of a blob, its id indexes and path reconstruction. */
#include "state-internal.h"

#include "vfsd/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

const char *const state_type_names[8] = { "?", "dir", "reg", "lnk", "chr", "blk", "fifo", "sock" };

static uint64_t hash64(uint64_t x)
{
	/* splitmix64's finalizer: ids are dense counters, spread them. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/*
 * A per-process secret mixed into the hash: the ids come from an untrusted
 * blob, and with a fixed, invertible hash a blob could pick ids that all
 * land in one slot and make the reader's work quadratic.
 */
static uint64_t index_seed;

static void seed_init(void)
{
	uint64_t s = 0;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = hash64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts ^ (uint64_t)getpid());
	}
	index_seed = s;
}

/*
 * Where @key's probe starts: ids in one aligned group of CLUSTER share a
 * run of CLUSTER slots (the hash spreads the groups), so the ascending,
 * mostly dense ids of a blob in node-id order fill and find slots that sit
 * side by side in memory instead of one cache miss an id.
 */
#define CLUSTER_BITS 4
static size_t slot_of(const struct vfsd_state_index *ix, uint64_t key)
{
	uint64_t group = hash64((key >> CLUSTER_BITS) ^ index_seed);

	return (size_t)((group << CLUSTER_BITS) | (key & ((1u << CLUSTER_BITS) - 1))) & ix->mask;
}

ssize_t index_find(const struct vfsd_state_index *ix, uint64_t key)
{
	if (!ix)
		return -1;
	for (size_t i = slot_of(ix, key);; i = (i + 1) & ix->mask) {
		if (!ix->slots[i].pos1)
			return -1;
		if (ix->slots[i].key == key)
			return (ssize_t)ix->slots[i].pos1 - 1;
	}
}

static void index_insert(struct vfsd_state_index *ix, uint64_t key, uint32_t pos1)
{
	size_t i = slot_of(ix, key);

	while (ix->slots[i].pos1)
		i = (i + 1) & ix->mask;
	ix->slots[i].key = key;
	ix->slots[i].pos1 = pos1;
	ix->used++;
}

int index_put(struct vfsd_state_index **ixp, uint64_t key, size_t pos)
{
	struct vfsd_state_index *ix = *ixp;

	if (pos >= UINT32_MAX)
		return -E2BIG;
	if (!ix) {
		static pthread_once_t once = PTHREAD_ONCE_INIT;

		pthread_once(&once, seed_init);
		ix = calloc(1, sizeof(*ix));
		if (!ix)
			return -ENOMEM;
		ix->slots = calloc(64, sizeof(*ix->slots));
		if (!ix->slots) {
			free(ix);
			return -ENOMEM;
		}
		ix->mask = 63;
		*ixp = ix;
	}
	if ((ix->used + 1) * 2 > ix->mask + 1) {
		size_t cap = (ix->mask + 1) * 2;
		struct vfsd_state_index n = { .mask = cap - 1 };

		n.slots = calloc(cap, sizeof(*n.slots));
		if (!n.slots)
			return -ENOMEM;
		for (size_t i = 0; i <= ix->mask; i++)
			if (ix->slots[i].pos1)
				index_insert(&n, ix->slots[i].key, ix->slots[i].pos1);
		free(ix->slots);
		*ix = n;
	}
	index_insert(ix, key, (uint32_t)pos + 1);
	return 0;
}

void index_free(struct vfsd_state_index *ix)
{
	if (!ix)
		return;
	free(ix->slots);
	free(ix);
}

void state_inode_clear(struct vfsd_state_inode *in)
{
	free(in->name);
	free(in->path);
	free(in->orphan);
	free(in->fh_bytes);
	memset(in, 0, sizeof(*in));
}

bool state_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > VFSD_STATE_NAME_MAX || memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

bool state_path_ok(const char *path, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > VFSD_STATE_PATH_MAX || path[0] == '/' || memchr(path, 0, len))
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (!state_name_ok(path + start, i - start))
			return false; /* empty (// or trailing /), ".", "..", too long */
		start = i + 1;
	}
	return true;
}

bool state_feature_ok(const char *name, size_t len)
{
	if (len == 0 || len >= VFSD_STATE_FEATURE_SIZE)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

bool state_utf8_ok(const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

const char *vfsd_state_type_name(enum vfsd_state_type t)
{
	return (unsigned)t < ARRAY_SIZE(state_type_names) ? state_type_names[t] : "?";
}

const char *vfsd_state_lost_name(enum vfsd_state_lost l)
{
	switch (l) {
	case VFSD_STATE_LOST_NONE:
		return "none";
	case VFSD_STATE_LOST_UNLINKED:
		return "unlinked";
	case VFSD_STATE_LOST_NOT_FOUND:
		return "not-found";
	}
	return "?";
}

const char *vfsd_state_mode_name(enum vfsd_state_mode m)
{
	return m == VFSD_STATE_MODE_FILE_HANDLES ? "file-handles" : "find-paths";
}

void vfsd_state_limits_default(struct vfsd_state_limits *l)
{
	l->max_line = VFSD_STATE_DEFAULT_MAX_LINE;
	l->max_inodes = VFSD_STATE_DEFAULT_MAX_INODES;
	l->max_handles = VFSD_STATE_DEFAULT_MAX_HANDLES;
}

void vfsd_state_header_init(struct vfsd_state_header *h, const char *producer)
{
	memset(h, 0, sizeof(*h));
	h->major = VFSD_STATE_MAJOR;
	h->minor = VFSD_STATE_MINOR;
	snprintf(h->producer, sizeof(h->producer), "%s",
		 producer ? producer : "vfsd " VFSD_VERSION);
}

bool vfsd_state_header_has_feature(const struct vfsd_state_header *h, bool required,
				   const char *name)
{
	size_t n = required ? h->n_required : h->n_optional;

	for (size_t i = 0; i < n && i < VFSD_STATE_MAX_FEATURES; i++)
		if (strcmp(required ? h->required[i] : h->optional[i], name) == 0)
			return true;
	return false;
}

int vfsd_state_header_add_feature(struct vfsd_state_header *h, bool required, const char *name)
{
	size_t *n = required ? &h->n_required : &h->n_optional;

	if (!state_feature_ok(name, strlen(name)))
		return -EINVAL;
	if (vfsd_state_header_has_feature(h, required, name))
		return 0;
	if (*n >= VFSD_STATE_MAX_FEATURES)
		return -E2BIG;
	strcpy(required ? h->required[*n] : h->optional[*n], name);
	(*n)++;
	return 0;
}

int vfsd_state_new(struct vfsd_state **ret)
{
	struct vfsd_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	vfsd_state_header_init(&s->header, NULL);
	*ret = s;
	return 0;
}

void vfsd_state_free(struct vfsd_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_inodes; i++)
		state_inode_clear(&s->inodes[i]);
	free(s->inodes);
	free(s->handles);
	free(s->brief);
	index_free(s->inode_index);
	index_free(s->handle_index);
	free(s);
}

/* Grow an array to hold one more element; doubling keeps appends O(1). */
int state_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	if (MUL_OVERFLOW(ncap, elem, &(size_t){ 0 }))
		return -ENOMEM;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

int state_take_inode(struct vfsd_state *s, struct vfsd_state_inode *in)
{
	int r = state_grow((void **)&s->inodes, &s->cap_inodes, s->n_inodes, sizeof(*s->inodes));

	if (r < 0)
		return r;
	r = index_put(&s->inode_index, in->id, s->n_inodes);
	if (r < 0)
		return r;
	s->inodes[s->n_inodes++] = *in;
	memset(in, 0, sizeof(*in));
	return 0;
}

int state_push_handle(struct vfsd_state *s, const struct vfsd_state_handle *h)
{
	int r =
	    state_grow((void **)&s->handles, &s->cap_handles, s->n_handles, sizeof(*s->handles));

	if (r < 0)
		return r;
	r = index_put(&s->handle_index, h->fh, s->n_handles);
	if (r < 0)
		return r;
	s->handles[s->n_handles++] = *h;
	return 0;
}

int vfsd_state_add_inode(struct vfsd_state *s, const struct vfsd_state_inode *in)
{
	struct vfsd_state_inode c = *in;
	int r;

	if (in->id == 0 ||
	    (in->has_file_handle && (in->fh_size == 0 || in->fh_size > VFSD_STATE_HANDLE_MAX)))
		return -EINVAL;
	if (index_find(s->inode_index, in->id) >= 0)
		return -EEXIST;
	c.name = NULL;
	c.path = NULL;
	c.orphan = NULL;
	c.fh_bytes = NULL;
	if ((in->name && !(c.name = strdup(in->name))) ||
	    (in->path && !(c.path = strdup(in->path))) ||
	    (in->orphan && !(c.orphan = strdup(in->orphan))) ||
	    (in->has_file_handle && !(c.fh_bytes = malloc(in->fh_size)))) {
		state_inode_clear(&c);
		return -ENOMEM;
	}
	if (in->has_file_handle)
		memcpy(c.fh_bytes, in->fh_bytes, in->fh_size);
	r = state_take_inode(s, &c);
	if (r < 0)
		state_inode_clear(&c);
	return r;
}

int vfsd_state_add_handle(struct vfsd_state *s, const struct vfsd_state_handle *h)
{
	if (index_find(s->handle_index, h->fh) >= 0)
		return -EEXIST;
	return state_push_handle(s, h);
}

const struct vfsd_state_inode *vfsd_state_inode_by_id(const struct vfsd_state *s, uint64_t id)
{
	ssize_t i = index_find(s->inode_index, id);

	/* A streamed model indexes its briefs, not records. */
	return i < 0 || (size_t)i >= s->n_inodes ? NULL : &s->inodes[i];
}

enum vfsd_state_lost vfsd_state_lost_of(const struct vfsd_state *s, uint64_t id)
{
	ssize_t i = index_find(s->inode_index, id);

	if (i < 0)
		return VFSD_STATE_LOST_NONE;
	if ((size_t)i < s->n_inodes)
		return s->inodes[i].lost;
	return (size_t)i < s->n_streamed ? (enum vfsd_state_lost)(s->brief[i] >> 4)
					 : VFSD_STATE_LOST_NONE;
}

const struct vfsd_state_handle *vfsd_state_handle_by_fh(const struct vfsd_state *s, uint64_t fh)
{
	ssize_t i = index_find(s->handle_index, fh);

	return i < 0 ? NULL : &s->handles[i];
}

int vfsd_state_inode_path(const struct vfsd_state *s, const struct vfsd_state_inode *in, char *buf,
			  size_t size)
{
	const struct vfsd_state_inode *chain[4096];
	size_t depth = 0, len = 0;

	if (size == 0)
		return -ENAMETOOLONG;
	if (in->id == 1) {
		if (size < 2)
			return -ENAMETOOLONG;
		strcpy(buf, ".");
		return 1;
	}
	/* Walk up to the root (or to a nameless inode), then print top-down. */
	for (const struct vfsd_state_inode *p = in; p && p->id != 1;) {
		if (depth == ARRAY_SIZE(chain))
			return -ELOOP;
		chain[depth++] = p;
		if (!p->name || !p->parent)
			break; /* located by path, orphan name or handle, or lost: printed as is */
		if (p->parent == p->id)
			return -ELOOP;
		p = vfsd_state_inode_by_id(s, p->parent);
		if (!p)
			return -ENOENT;
	}
	while (depth--) {
		const struct vfsd_state_inode *c = chain[depth];
		const char *part = "<handle>";
		size_t plen;

		if (c->lost)
			part = "<lost>";
		else if (c->name && c->parent)
			part = c->name;
		else if (c->path)
			part = c->path;
		plen = strlen(part);

		if (len + (len > 0) + plen + 1 > size)
			return -ENAMETOOLONG;
		if (len > 0)
			buf[len++] = '/';
		memcpy(buf + len, part, plen);
		len += plen;
	}
	buf[len] = 0;
	return (int)len;
}
