/* SPDX-License-Identifier: GPL-2.0-or-later */
/* state: helpers shared by the model, the writer and the reader. */
#ifndef VFSD_STATE_INTERNAL_H
#define VFSD_STATE_INTERNAL_H

#include "vfsd/state.h"

/* An open-addressing map u64 -> position in an array (load factor <= 1/2). */
struct vfsd_state_index {
	struct vfsd_state_slot {
		uint64_t key;
		uint32_t pos1; /* position + 1; 0: empty */
	} * slots;
	size_t mask; /* capacity - 1 */
	size_t used;
};

/* index_find() - position of @key, or -1. */
ssize_t index_find(const struct vfsd_state_index *ix, uint64_t key);

/* index_put() - add @key (not present yet) at @pos. Returns 0 or -ENOMEM. */
int index_put(struct vfsd_state_index **ixp, uint64_t key, size_t pos);

/* state_grow() - make room for element @n of *@arr (doubling). Returns 0 or -ENOMEM. */
int state_grow(void **arr, size_t *cap, size_t n, size_t elem);

/* index_free() - accepts NULL. */
void index_free(struct vfsd_state_index *ix);

/* state_inode_clear() - free what an inode owns and zero it. */
void state_inode_clear(struct vfsd_state_inode *in);

/*
 * state_take_inode() - append @in, taking its strings (cleared in @in on
 * success only). The caller checked the id is not a duplicate.
 */
int state_take_inode(struct vfsd_state *s, struct vfsd_state_inode *in);

/* state_push_handle() - append @h; the caller checked the fh is not a duplicate. */
int state_push_handle(struct vfsd_state *s, const struct vfsd_state_handle *h);

/* state_name_ok() - a file name: 1..255 bytes, no '/', not "." or "..". */
bool state_name_ok(const char *name, size_t len);

/*
 * state_path_ok() - a relative path: 1..VFSD_STATE_PATH_MAX bytes, no leading
 * '/', every component a file name (none empty, ".", "..").
 */
bool state_path_ok(const char *path, size_t len);

/* state_feature_ok() - [a-z0-9-]{1,63}, also used for record kinds. */
bool state_feature_ok(const char *name, size_t len);

/* state_utf8_ok() - whether @len bytes are valid UTF-8 (no overlongs, no surrogates). */
bool state_utf8_ok(const char *s, size_t len);

/* The names in records, indexed by enum vfsd_state_type. */
extern const char *const state_type_names[8];

#endif
