/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmap: a minimal intrusive chained hash map keyed by a 64-bit hash. The
 * caller embeds a struct vfsd_hlink, walks a bucket with hmap_bucket() and
 * compares its own keys. Not thread-safe: the tables lock around it.
 */
#ifndef VFSD_FS_HMAP_H
#define VFSD_FS_HMAP_H

#include <stddef.h>
#include <stdint.h>

#include "vfsd/inode_table.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct hmap {
	struct vfsd_hlink **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

/** hmap_init() - allocate the initial buckets. Returns 0 or -ENOMEM. */
int hmap_init(struct hmap *m);

/** hmap_done() - free the buckets (not the entries). */
void hmap_done(struct hmap *m);

/** hmap_bucket() - first link of the chain that @hash falls in. */
static inline struct vfsd_hlink *hmap_bucket(const struct hmap *m, uint64_t hash)
{
	return m->buckets[hash & (m->nbuckets - 1)];
}

/**
 * hmap_insert() - add @l under @hash. Cannot fail: when growing the bucket
 * array fails, chains just get longer.
 */
void hmap_insert(struct hmap *m, struct vfsd_hlink *l, uint64_t hash);

/** hmap_remove() - unlink @l, which must be in @m. */
void hmap_remove(struct hmap *m, struct vfsd_hlink *l);

/** hmap_mix() - a 64-bit finaliser (splitmix64) so sequential keys spread. */
static inline uint64_t hmap_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

#define hmap_for_each_link(m, pos, tmp)                                                            \
	for (size_t _b = 0; _b < (m)->nbuckets; _b++)                                              \
		for ((pos) = (m)->buckets[_b], (tmp) = (pos) ? (pos)->next : NULL; (pos);          \
		     (pos) = (tmp), (tmp) = (pos) ? (pos)->next : NULL)

#endif
