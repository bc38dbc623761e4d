/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>

#define HMAP_INITIAL 64

int hmap_init(struct hmap *m)
{
	m->buckets = calloc(HMAP_INITIAL, sizeof(*m->buckets));
	if (!m->buckets)
		return -ENOMEM;
	m->nbuckets = HMAP_INITIAL;
	m->count = 0;
	return 0;
}

void hmap_done(struct hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

static void hmap_grow(struct hmap *m)
{
	size_t n = m->nbuckets * 2;
	struct vfsd_hlink **b;

	if (n < m->nbuckets || n > SIZE_MAX / sizeof(*b))
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return; /* keep the old array: longer chains, still correct */
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct vfsd_hlink *l = m->buckets[i];
		while (l) {
			struct vfsd_hlink *next = l->next;
			size_t k = l->hash & (n - 1);
			l->next = b[k];
			b[k] = l;
			l = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

void hmap_insert(struct hmap *m, struct vfsd_hlink *l, uint64_t hash)
{
	size_t k;

	if (m->count >= m->nbuckets)
		hmap_grow(m);
	k = hash & (m->nbuckets - 1);
	l->hash = hash;
	l->next = m->buckets[k];
	m->buckets[k] = l;
	m->count++;
}

void hmap_remove(struct hmap *m, struct vfsd_hlink *l)
{
	struct vfsd_hlink **p = &m->buckets[l->hash & (m->nbuckets - 1)];

	while (*p && *p != l)
		p = &(*p)->next;
	if (*p) {
		*p = l->next;
		l->next = NULL;
		m->count--;
	}
}
