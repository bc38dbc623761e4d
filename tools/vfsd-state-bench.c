/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfsd-state-bench: how long encoding and decoding a state blob takes, and
 * how big it is, for N inodes (default 10,000 and 100,000). Prints numbers;
 * no assertions. The tree is what a real share looks like to the codec:
 * directories of 50 entries, names of 12-20 bytes, one handle per 10 inodes.
 *
 *   vfsd-state-bench [N...]
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vfsd/state.h"
#include "vfsd/util.h"

struct membuf {
	char *p;
	size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > m->cap) {
		size_t cap = MAX(m->cap * 2, m->len + len);
		char *p = realloc(m->p, cap);

		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(uint64_t n)
{
	struct membuf m = { 0 };
	struct vfsd_state_header h;
	struct vfsd_state_writer *w;
	struct vfsd_state_session ss = { .initialized = true,
					 .fuse_major = 7,
					 .fuse_minor = 38,
					 .fuse_flags = 0x40ad3ffb,
					 .max_write = 1 << 20,
					 .max_readahead = 128 << 10,
					 .next_nodeid = n + 2,
					 .next_fh = n / 10 + 1 };
	struct vfsd_state_error err;
	struct vfsd_state *s = NULL;
	double t0, t1, t2, best_enc = 1e9, best_dec = 1e9;
	uint64_t handles = 0;
	int r;

	for (int round = 0; round < 3; round++) {
		m.len = 0;
		handles = 0;
		vfsd_state_header_init(&h, NULL);
		t0 = now();
		r = vfsd_state_writer_open_cb(mem_write, &m, &h, &w);
		if (r == 0)
			r = vfsd_state_writer_session(w, &ss);
		for (uint64_t id = 1; r == 0 && id <= n; id++) {
			char name[32];
			bool dir = id == 1 || id % 50 == 2;
			struct vfsd_state_inode in = {
				.id = id,
				.nlookup = 1 + id % 3,
				.type = dir ? VFSD_STATE_T_DIR : VFSD_STATE_T_REG,
				.has_ino = true,
				.ino = 1000000 + id * 7,
			};

			if (id > 1) {
				/* the directory of this block of 50, or the root for directories */
				in.parent = dir ? 1 : ((id - 2) / 50) * 50 + 2;
				if (in.parent == id)
					in.parent = 1;
				snprintf(name, sizeof(name), "%s-%07llu.dat", dir ? "dir" : "file",
					 (unsigned long long)id);
				in.name = name;
			}
			r = vfsd_state_writer_inode(w, &in);
		}
		for (uint64_t id = 3; r == 0 && id <= n; id += 10) {
			struct vfsd_state_handle hd = { .fh = handles++, .inode = id, .flags = 2 };

			r = vfsd_state_writer_handle(w, &hd);
		}
		if (r == 0)
			r = vfsd_state_writer_close(w);
		else
			vfsd_state_writer_free(w);
		t1 = now();
		if (r < 0) {
			fprintf(stderr, "encode: %s\n", strerror(-r));
			return 1;
		}
		r = vfsd_state_read_mem(m.p, m.len, NULL, &s, &err);
		t2 = now();
		if (r < 0) {
			fprintf(stderr, "decode: line %llu: %s\n", (unsigned long long)err.line,
				err.reason);
			return 1;
		}
		vfsd_state_free(s);
		best_enc = MIN(best_enc, t1 - t0);
		best_dec = MIN(best_dec, t2 - t1);
	}
	printf("%9llu inodes %8llu handles: %10zu bytes (%.1f bytes/inode), "
	       "encode %7.2f ms (%.0f ns/inode), decode %7.2f ms (%.0f ns/inode)\n",
	       (unsigned long long)n, (unsigned long long)handles, m.len, (double)m.len / (double)n,
	       best_enc * 1e3, best_enc * 1e9 / (double)n, best_dec * 1e3,
	       best_dec * 1e9 / (double)n);
	free(m.p);
	return 0;
}

int main(int argc, char **argv)
{
	int r = 0;

	if (argc < 2)
		return bench(10000) | bench(100000);
	for (int i = 1; i < argc; i++)
		r |= bench(strtoull(argv[i], NULL, 10));
	return r;
}
