/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target for the state-blob reader.
 *
 * Input: a blob, byte for byte. It is read three ways: stopping at the first
 * problem, reporting every problem, and with tight limits (short lines, few
 * inodes and handles). Whatever the reader accepts must survive a round
 * trip: written back and read again it gives the same counts and the same
 * bytes a second time. Built with -fsanitize=fuzzer (VFSD_LIBFUZZER) it is a
 * libFuzzer target; otherwise main() replays every file of the directories
 * (or files) given.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vfsd/state.h"
#include "vfsd/util.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > m->cap) {
		size_t cap = MAX(m->cap * 2, m->len + len);
		uint8_t *p = realloc(m->p, cap);

		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

struct src {
	const uint8_t *p;
	size_t left;
};

/* Odd read sizes, so line assembly across reads is exercised too. */
static ssize_t src_read(void *opaque, void *buf, size_t len)
{
	struct src *s = opaque;
	size_t n = MIN(MIN(len, s->left), (size_t)1 + (s->left % 97));

	memcpy(buf, s->p, n);
	s->p += n;
	s->left -= n;
	return (ssize_t)n;
}

static int count(const struct vfsd_state_error *e, void *userdata)
{
	CHECK(e->code == -EBADMSG);
	CHECK(memchr(e->reason, 0, sizeof(e->reason)));
	(*(unsigned int *)userdata)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfsd_state *s = NULL, *s2 = NULL;
	struct vfsd_state_error err;
	struct membuf a = { 0 }, b = { 0 };
	unsigned int problems = 0;
	struct src src = { data, size };
	struct vfsd_state_read_opts all = { .report = count, .userdata = &problems };
	struct vfsd_state_read_opts tight = { .limits = { 256, 4, 4 } };
	int r, r_all;

	r = vfsd_state_read_mem(data, size, NULL, &s, &err);
	CHECK(r == 0 || r == -EBADMSG);
	CHECK(r == 0 ? s != NULL : s == NULL);
	CHECK(r == 0 || err.code == -EBADMSG);

	r_all = vfsd_state_read_ex(src_read, &src, &all, NULL, NULL);
	CHECK((r_all == 0) == (r == 0));
	CHECK((problems == 0) == (r == 0));

	src = (struct src){ data, size };
	(void)vfsd_state_read_ex(src_read, &src, &tight, NULL, NULL);

	if (r == 0) {
		/* 1.x blobs of another minor come back as ours, without the extras */
		s->header.minor = VFSD_STATE_MINOR;
		s->header.n_optional = 0;
		CHECK(vfsd_state_write_cb(s, mem_write, &a) == 0);
		CHECK(vfsd_state_read_mem(a.p, a.len, NULL, &s2, &err) == 0);
		CHECK(s2->n_inodes == s->n_inodes && s2->n_handles == s->n_handles);
		CHECK(vfsd_state_write_cb(s2, mem_write, &b) == 0);
		CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
	}
	vfsd_state_free(s);
	vfsd_state_free(s2);
	free(a.p);
	free(b.p);
	return 0;
}
