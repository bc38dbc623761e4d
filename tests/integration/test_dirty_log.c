/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integration, dirty-page logging (vhost-user-fs-protocol.md §5): with logging
 * on, every guest page the device changes must have its bit set, and no page
 * the device does not write may be marked. Checked byte by byte: each request
 * runs in its own window (settle, snapshot all guest RAM, clear the log,
 * submit, wait), then every 4 KiB page is compared.
 *
 * Pages the driver (this front-end) writes during a window are the descriptor
 * table, the avail ring and an indirect table; they are exempt from "changed
 * means logged" unless the device also writes there (the used ring may share a
 * page with the avail ring). Reply buffers are filled with a poison byte first,
 * so every byte the device writes shows up as a change.
 *
 * Our daemon only: skipped when VFSD_TEST_BACKEND is set.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "vfe.h"
#include "vfsd/util.h"

#define FEATURES  VFE_FEATURES_DEFAULT
#define LOG_ALL	  BIT64(VHOST_F_LOG_ALL_BIT)
#define RAM_SIZE  (16ULL << 20) /* two regions of 8 MiB */
#define NQ	  2
#define RQ	  1
#define QSIZE	  512
#define PAGE	  VFE_LOG_PAGE
#define DATA_SIZE (1u << 20)

static struct vfe_harness *H;
static struct vfe *FE;
static uint8_t *BEFORE;	   /* guest RAM at the start of a window */
static uint8_t *DATA;	   /* content of data.bin on the host */
static uint8_t POISON;	   /* reply buffer filler, changes per window */
static unsigned NWINDOWS;  /* windows checked in this test */
static uint64_t DATA_NODE; /* data.bin, looked up and opened by the workload */
static uint64_t DATA_FH;
/* Scratch space, static so a failed assertion (which leaves the test at once) leaks nothing. */
static uint8_t RBUF[DATA_SIZE];			    /* reply payloads */
static uint64_t DIRTY[4 * RAM_SIZE / VFE_LOG_PAGE]; /* logged page numbers */
static uint8_t LOG_COPY[64 * 1024];		    /* a log's bytes, see log_copy() */

struct range {
	uint64_t gpa, len;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void setup(void)
{
	char path[512];
	int r;

	if (getenv("VFSD_TEST_BACKEND") && *getenv("VFSD_TEST_BACKEND"))
		cr_skip_test("dirty-log tests read vfsd's log; run against vfsd only");
	r = vfe_harness_start(VFSD_BINARY, &H);
	cr_assert(r >= 0, "cannot start the back-end: %s", strerror(-r));
	FE = H->fe;
	FE->timeout_ms = 5000;
	cr_assert_eq(vfe_mem_setup(FE, 0, RAM_SIZE, 2), 0);
	BEFORE = malloc(RAM_SIZE);
	DATA = malloc(DATA_SIZE);
	cr_assert(BEFORE && DATA);
	for (size_t i = 0; i < DATA_SIZE; i++)
		DATA[i] = (uint8_t)(i * 31 + i / 4093 + 1);
	snprintf(path, sizeof(path), "%s/data.bin", H->share);
	{
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, DATA, DATA_SIZE), (ssize_t)DATA_SIZE);
	}
	NWINDOWS = 0;
	POISON = 0xa5;
	DATA_NODE = DATA_FH = 0;
}

static void teardown(void)
{
	if (H && vfe_backend_crashed(H->be))
		cr_log_error("back-end died from signal %d", WTERMSIG(H->be->status));
	if (H && getenv("VFE_SHOW_LOG")) {
		_cleanup_free_ char *log = NULL;

		if (vfe_backend_log(H->be, &log) >= 0)
			cr_log_info("back-end log:\n%s", log);
	}
	vfe_harness_free(H);
	H = NULL;
	FE = NULL;
	free(BEFORE);
	free(DATA);
	BEFORE = DATA = NULL;
}

static void start(uint64_t features)
{
	int r = vfe_start(FE, NQ, QSIZE, features);

	cr_assert(r >= 0, "start sequence: %s", strerror(-r));
	r = vfe_fuse_init(FE, NULL);
	cr_assert(r >= 0, "FUSE_INIT: %s", strerror(-r));
	if (features & LOG_ALL)
		cr_assert(FE->logging && FE->log.map, "vfe_start did not set up logging");
}

/* QEMU's migration start on a running device (§6.1 D.1): log, LOG_ALL, ring flags. */
static void logging_on(uint64_t log_size)
{
	int r = vfe_set_log_base(FE, log_size ? log_size : vfe_log_size(FE));

	cr_assert_eq(r, 0, "SET_LOG_BASE: %s", strerror(-r));
	r = vfe_set_logging(FE, true);
	cr_assert_eq(r, 0, "logging on: %s", strerror(-r));
}

static bool overlaps(uint64_t page, const struct range *r)
{
	uint64_t a = page * PAGE, b = a + PAGE;

	return r->len > 0 && r->gpa < b && a < r->gpa + r->len;
}

static struct range ring_range(int which)
{
	struct vfe_queue *q = &FE->queues[RQ];

	switch (which) {
	case 0:
		return (struct range){ q->desc_gpa, 16ULL * q->size };
	case 1:
		return (struct range){ q->avail_gpa, 6 + 2ULL * q->size };
	default:
		return (struct range){ q->used_gpa, 6 + 8ULL * q->size };
	}
}

struct window {
	struct range in;    /* device-readable request */
	struct range reply; /* what the device says it wrote: out buffer, used length */
	struct range out;   /* the whole device-writable buffer */
	struct range indir; /* indirect table written by the driver, if any */
	uint8_t *out_ptr;
	uint32_t used_len;
};

static void describe(uint64_t page, const struct window *w, char *buf, size_t size)
{
	struct range desc = ring_range(0), avail = ring_range(1), used = ring_range(2);
	size_t n = 0;

	buf[0] = 0;
#define ADD(cond, s)                                                                               \
	if ((cond) && n < size)                                                                    \
		n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " + " : "", s);
	ADD(overlaps(page, &w->reply), "reply (written part)");
	ADD(!overlaps(page, &w->reply) && overlaps(page, &w->out),
	    "reply buffer beyond the used length");
	ADD(overlaps(page, &used), "used ring");
	ADD(overlaps(page, &desc), "descriptor table");
	ADD(overlaps(page, &avail), "avail ring");
	ADD(overlaps(page, &w->indir), "indirect table");
	ADD(overlaps(page, &w->in), "device-readable request");
#undef ADD
	if (!buf[0])
		snprintf(buf, size, "nothing this window put there");
}

/* Wait until the request queue is idle: avail_event caught up (EVENT_IDX), then a breath. */
static void settle(void)
{
	struct vfe_queue *q = &FE->queues[RQ];

	if (FE->acked_features & BIT64(VIRTIO_RING_F_EVENT_IDX_BIT)) {
		for (int i = 0; i < 1000; i++) {
			uint16_t ev;

			memcpy(&ev, q->used + 4 + 8 * (size_t)q->size, 2);
			if (le16toh(ev) == q->avail_idx)
				break;
			sleep_ms(1);
		}
	}
	sleep_ms(2);
}

static bool page_changed(uint64_t p)
{
	return memcmp(BEFORE + p * PAGE, FE->mem + p * PAGE, PAGE) != 0;
}

/* Compare all of guest RAM with BEFORE against the log. */
static void check_window(const char *what, const struct window *w)
{
	struct range desc = ring_range(0), avail = ring_range(1), used = ring_range(2);
	uint64_t npages = FE->mem_size / PAGE, first_unlogged = UINT64_MAX, nunlogged = 0;
	uint64_t *dirty = DIRTY;
	size_t ndirty;
	char where[200];

	/* The device must not write past the length it reports: those pages would go unlogged. */
	for (uint64_t i = w->used_len; i < w->out.len; i++)
		cr_assert_eq(w->out_ptr[i], POISON,
			     "%s: the device wrote byte %llu of the reply buffer but reported a "
			     "used length of %u",
			     what, (unsigned long long)i, w->used_len);

	/* Changed => logged (bits may trail the data a little: retry for up to 1 s). */
	for (int tries = 0; tries < 100; tries++) {
		first_unlogged = UINT64_MAX;
		nunlogged = 0;
		for (uint64_t p = 0; p < npages; p++) {
			bool device =
			    overlaps(p, &w->reply) || overlaps(p, &w->out) || overlaps(p, &used);
			bool driver =
			    overlaps(p, &desc) || overlaps(p, &avail) || overlaps(p, &w->indir);

			if (!page_changed(p) || (driver && !device))
				continue;
			if (vfe_log_test(FE, FE->mem_gpa + p * PAGE))
				continue;
			if (first_unlogged == UINT64_MAX)
				first_unlogged = p;
			nunlogged++;
		}
		if (nunlogged == 0)
			break;
		sleep_ms(10);
	}
	if (nunlogged) {
		describe(first_unlogged, w, where, sizeof(where));
		cr_assert_fail(
		    "%s: %llu changed page(s) not logged; first: page %llu (gpa 0x%llx), "
		    "which holds: %s",
		    what, (unsigned long long)nunlogged, (unsigned long long)first_unlogged,
		    (unsigned long long)(FE->mem_gpa + first_unlogged * PAGE), where);
	}
	/* The used ring's index page in particular. */
	cr_assert(vfe_log_test(FE, used.gpa + 2), "%s: the used ring's page is not logged", what);

	/* Logged => the device wrote there (reply, used ring): anything else is wasted bandwidth.
	 */
	ndirty = MIN(vfe_log_dirty_pages(FE, dirty, ARRAY_SIZE(DIRTY)), ARRAY_SIZE(DIRTY));
	for (size_t i = 0; i < ndirty; i++) {
		uint64_t p = dirty[i] - FE->mem_gpa / PAGE;

		if (dirty[i] * PAGE < FE->mem_gpa || p >= npages) {
			cr_assert_fail(
			    "%s: page %llu (gpa 0x%llx) is logged but lies outside guest "
			    "RAM",
			    what, (unsigned long long)dirty[i],
			    (unsigned long long)(dirty[i] * PAGE));
		}
		if (overlaps(p, &w->reply) || overlaps(p, &used))
			continue;
		describe(p, w, where, sizeof(where));
		cr_assert_fail("%s: page %llu (gpa 0x%llx) is logged but the device did not write "
			       "it (%s; %s)",
			       what, (unsigned long long)p, (unsigned long long)(p * PAGE), where,
			       page_changed(p) ? "changed by the driver" : "unchanged");
	}
	/* Never a bit past mmap_size, even inside the last mapped page. */
	for (size_t i = FE->log.size; i < FE->log.map_len; i++)
		cr_assert_eq(FE->log.map[i], 0,
			     "%s: the device wrote log byte %zu past mmap_size %llu", what, i,
			     (unsigned long long)FE->log.size);
	NWINDOWS++;
}

/*
 * One FUSE request on the request queue in its own checked window. @place >= 0
 * puts its buffers at that offset of guest RAM. Returns the FUSE error; the
 * reply payload goes to @out (up to @reply_size) and its length to *ret_len.
 */
static int logged_req(const char *what, uint32_t opcode, uint64_t nodeid,
		      const struct vfe_buf *args, size_t nargs, size_t reply_size, int64_t place,
		      const struct vfe_req_opts *opts, void *out, size_t *ret_len)
{
	struct fuse_in_header ih = { .opcode = opcode,
				     .nodeid = nodeid,
				     .uid = (uint32_t)getuid(),
				     .gid = (uint32_t)getgid(),
				     .pid = (uint32_t)getpid() };
	struct fuse_out_header oh;
	struct window w = { 0 };
	struct vfe_used u;
	uint64_t mark, m1;
	size_t in_len = sizeof(ih), off;
	uint8_t *in;
	int head, r;

	settle();
	mark = vfe_alloc_mark(FE);
	if (place >= 0)
		FE->alloc_next = (uint64_t)place;
	for (size_t i = 0; i < nargs; i++)
		in_len += args[i].len;
	ih.len = (uint32_t)in_len;
	ih.unique = FE->next_unique++;
	in = vfe_alloc(FE, in_len, 8, &w.in.gpa);
	w.out_ptr = vfe_alloc(FE, sizeof(oh) + reply_size, 8, &w.out.gpa);
	cr_assert(in && w.out_ptr, "%s: guest RAM full", what);
	w.in.len = in_len;
	w.out.len = sizeof(oh) + reply_size;
	memcpy(in, &ih, sizeof(ih));
	off = sizeof(ih);
	for (size_t i = 0; i < nargs; i++) {
		memcpy(in + off, args[i].ptr, args[i].len);
		off += args[i].len;
	}
	POISON = (uint8_t)(POISON * 5 + 0x3b);
	if (POISON == 0)
		POISON = 0x5a;
	memset(w.out_ptr, POISON, w.out.len);

	memcpy(BEFORE, FE->mem, FE->mem_size);
	vfe_log_clear(FE);
	m1 = vfe_alloc_mark(FE);
	head = vfe_submit(FE, RQ, &(struct vfe_buf){ in, in_len }, 1,
			  &(struct vfe_buf){ w.out_ptr, w.out.len }, 1, opts);
	cr_assert_geq(head, 0, "%s: submit: %s", what, strerror(-head));
	w.indir = (struct range){ FE->mem_gpa + m1, vfe_alloc_mark(FE) - m1 };
	r = vfe_wait_used(FE, RQ, head, 0, &u);
	cr_assert_eq(r, 0, "%s: no reply: %s", what, strerror(-r));
	w.used_len = u.len;
	w.reply = (struct range){ w.out.gpa, u.len };
	check_window(what, &w);

	memcpy(&oh, w.out_ptr, sizeof(oh));
	cr_assert(u.len >= sizeof(oh) && oh.len == u.len && oh.unique == ih.unique,
		  "%s: bad reply header (used len %u, out.len %u)", what, u.len, oh.len);
	if (out)
		memcpy(out, w.out_ptr + sizeof(oh), oh.len - sizeof(oh));
	if (ret_len)
		*ret_len = oh.len - sizeof(oh);
	vfe_alloc_reset(FE, mark);
	return oh.error;
}

#define NAME(s) ((struct vfe_buf){ (void *)(s), strlen(s) + 1 })

/* A READ of data.bin checked against the host data. */
static void logged_read(const char *what, uint64_t offset, uint32_t size, int64_t place,
			const struct vfe_req_opts *opts)
{
	struct fuse_read_in ri = { .fh = DATA_FH, .offset = offset, .size = size };
	struct vfe_buf a = { &ri, sizeof(ri) };
	uint8_t *buf = RBUF;
	size_t n = 0, want = offset >= DATA_SIZE ? 0 : MIN((size_t)size, DATA_SIZE - offset);
	int r;

	cr_assert_leq(size, sizeof(RBUF));
	r = logged_req(what, FUSE_READ, DATA_NODE, &a, 1, size, place, opts, buf, &n);
	cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	cr_assert_eq(n, want, "%s: %zu bytes, want %zu", what, n, want);
	cr_assert(memcmp(buf, DATA + offset, n) == 0, "%s: wrong data", what);
}

/* Where region 1 starts in our RAM, so buffers can straddle the two regions. */
static int64_t boundary(int64_t delta)
{
	return (int64_t)FE->regions[1].mmap_offset + delta;
}

/* The mixed workload: every request in a checked window. */
static void workload(const char *tag)
{
	struct fuse_entry_out e;
	struct fuse_attr_out ao;
	struct fuse_getattr_in gi = { 0 };
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct fuse_open_out oo;
	struct vfe_req_opts split1000 = { .split = 1000 },
			    ind3000 = { .indirect = true, .split = 3000 };
	char name[64], what[128];
	size_t n;
	int r;

	snprintf(what, sizeof(what), "%s: LOOKUP", tag);
	r = logged_req(what, FUSE_LOOKUP, FUSE_ROOT_ID, &NAME("data.bin"), 1, sizeof(e), -1, NULL,
		       &e, &n);
	cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	DATA_NODE = e.nodeid;
	snprintf(what, sizeof(what), "%s: GETATTR", tag);
	r = logged_req(what, FUSE_GETATTR, DATA_NODE, &(struct vfe_buf){ &gi, sizeof(gi) }, 1,
		       sizeof(ao), -1, NULL, &ao, &n);
	cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	cr_assert_eq(ao.attr.size, DATA_SIZE);
	snprintf(what, sizeof(what), "%s: OPEN", tag);
	r = logged_req(what, FUSE_OPEN, DATA_NODE, &(struct vfe_buf){ &oi, sizeof(oi) }, 1,
		       sizeof(oo), -1, NULL, &oo, &n);
	cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	DATA_FH = oo.fh;

	/* 256 KiB in 1000-byte descriptors across the region boundary: pages split oddly. */
	snprintf(what, sizeof(what), "%s: READ 256 KiB, 1000-byte descriptors, two regions", tag);
	logged_read(what, 3 * 4096 + 100, 256 * 1024, boundary(-128 * 1024 - 77), &split1000);
	/* Indirect, 3000-byte descriptors, the reply header just before the boundary. */
	snprintf(what, sizeof(what), "%s: READ 512 KiB, indirect, two regions", tag);
	logged_read(what, 12345, 512 * 1024, boundary(-24), &ind3000);
	/* 1 MiB in one descriptor inside region 1. */
	snprintf(what, sizeof(what), "%s: READ 1 MiB in region 1", tag);
	logged_read(what, 0, DATA_SIZE, boundary(3 * 4096 + 8), NULL);
	/* Short read at EOF into a 192 KiB buffer: only the first page is written. */
	snprintf(what, sizeof(what), "%s: short READ at EOF", tag);
	logged_read(what, DATA_SIZE - 1000, 192 * 1024, boundary(-64 * 1024), NULL);

	/* CREATE + WRITE (a big device-readable buffer that must stay unlogged). */
	{
		struct fuse_create_in ci = { .flags = O_RDWR, .mode = S_IFREG | 0644 };
		struct {
			struct fuse_entry_out e;
			struct fuse_open_out o;
		} __attribute__((packed)) co;
		struct fuse_write_in wi = { .offset = 0, .size = 64 * 1024 };
		struct fuse_write_out wo;
		struct fuse_release_in rel = { 0 };

		snprintf(name, sizeof(name), "new-%s", tag);
		snprintf(what, sizeof(what), "%s: CREATE", tag);
		r = logged_req(what, FUSE_CREATE, FUSE_ROOT_ID,
			       (struct vfe_buf[]){ { &ci, sizeof(ci) }, NAME(name) }, 2, sizeof(co),
			       -1, NULL, &co, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
		wi.fh = co.o.fh;
		snprintf(what, sizeof(what), "%s: WRITE 64 KiB across the boundary", tag);
		r = logged_req(what, FUSE_WRITE, co.e.nodeid,
			       (struct vfe_buf[]){ { &wi, sizeof(wi) }, { DATA, 64 * 1024 } }, 2,
			       sizeof(wo), boundary(-30000), &split1000, &wo, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
		cr_assert_eq(wo.size, 64 * 1024);
		rel.fh = co.o.fh;
		snprintf(what, sizeof(what), "%s: RELEASE", tag);
		r = logged_req(what, FUSE_RELEASE, co.e.nodeid,
			       &(struct vfe_buf){ &rel, sizeof(rel) }, 1, 0, -1, NULL, NULL, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	}
	/* OPENDIR + READDIR into a 64 KiB buffer + RELEASEDIR. */
	{
		struct fuse_open_in di = { 0 };
		struct fuse_read_in ri = { .size = 64 * 1024 };
		struct fuse_release_in rel = { 0 };
		uint8_t *buf = RBUF;

		snprintf(what, sizeof(what), "%s: OPENDIR", tag);
		r = logged_req(what, FUSE_OPENDIR, FUSE_ROOT_ID,
			       &(struct vfe_buf){ &di, sizeof(di) }, 1, sizeof(oo), -1, NULL, &oo,
			       &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
		ri.fh = oo.fh;
		snprintf(what, sizeof(what), "%s: READDIR", tag);
		r = logged_req(what, FUSE_READDIR, FUSE_ROOT_ID,
			       &(struct vfe_buf){ &ri, sizeof(ri) }, 1, 64 * 1024, boundary(-1000),
			       NULL, buf, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
		cr_assert_gt(n, 0, "%s: empty directory listing", what);
		rel.fh = oo.fh;
		snprintf(what, sizeof(what), "%s: RELEASEDIR", tag);
		r = logged_req(what, FUSE_RELEASEDIR, FUSE_ROOT_ID,
			       &(struct vfe_buf){ &rel, sizeof(rel) }, 1, 0, -1, NULL, NULL, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	}
	/* An error reply is a device write too. */
	snprintf(what, sizeof(what), "%s: LOOKUP of a missing name", tag);
	r = logged_req(what, FUSE_LOOKUP, FUSE_ROOT_ID, &NAME("no-such-file"), 1, sizeof(e), -1,
		       NULL, &e, &n);
	cr_assert(r == -ENOENT || (r == 0 && e.nodeid == 0), "%s: %d", what, r);
	{
		struct fuse_release_in rel = { .fh = DATA_FH };

		snprintf(what, sizeof(what), "%s: RELEASE data.bin", tag);
		r = logged_req(what, FUSE_RELEASE, DATA_NODE,
			       &(struct vfe_buf){ &rel, sizeof(rel) }, 1, 0, -1, NULL, NULL, &n);
		cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	}
}

/* Unchecked traffic with the plain helpers, including reads that must return the right data. */
static void plain_traffic(const char *tag)
{
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	uint8_t *buf = RBUF;
	char name[64];
	size_t n = 0;
	uint64_t saved = FE->alloc_next;

	cr_assert_eq(vfe_fuse_lookup(FE, FUSE_ROOT_ID, "data.bin", &e), 0);
	cr_assert_eq(vfe_fuse_open(FE, e.nodeid, O_RDONLY, false, &oo), 0);
	FE->alloc_next = (uint64_t)boundary(-100000);
	cr_assert_eq(vfe_fuse_read(FE, e.nodeid, oo.fh, 4096, buf, 256 * 1024, &n), 0);
	FE->alloc_next = saved;
	cr_assert(n == 256 * 1024 && memcmp(buf, DATA + 4096, n) == 0, "%s: READ wrong data", tag);
	cr_assert_eq(vfe_fuse_release(FE, e.nodeid, oo.fh, false), 0);
	snprintf(name, sizeof(name), "plain-%s", tag);
	cr_assert_eq(vfe_fuse_create(FE, FUSE_ROOT_ID, name, O_RDWR, S_IFREG | 0644, &e, &oo), 0);
	cr_assert_eq(vfe_fuse_write(FE, e.nodeid, oo.fh, 0, DATA, 8192, &n), 0);
	cr_assert_eq(vfe_fuse_release(FE, e.nodeid, oo.fh, false), 0);
	cr_assert_eq(vfe_fuse_readdir_names(FE, FUSE_ROOT_ID, NULL, NULL), 0);
	cr_assert_eq(vfe_fuse_getattr(FE, FUSE_ROOT_ID, NULL), 0);
}

/* A copy of a log's bytes (one at a time), to show later that nobody wrote it. */
static const uint8_t *log_copy(const struct vfe_log *l)
{
	cr_assert(l->map && l->map_len <= sizeof(LOG_COPY));
	memcpy(LOG_COPY, l->map, l->map_len);
	return LOG_COPY;
}

static void assert_log_unchanged(const struct vfe_log *l, const uint8_t *copy, const char *what)
{
	for (size_t i = 0; i < l->map_len; i++)
		cr_assert_eq(l->map[i], copy[i],
			     "%s: log byte %zu changed 0x%02x -> 0x%02x (page %zu logged)", what, i,
			     copy[i], l->map[i], i * 8);
}

TestSuite(dirty_log, .init = setup, .fini = teardown, .timeout = 120);

Test(dirty_log, coverage_migration_start)
{
	/* The device runs; then QEMU's migration setup: SET_LOG_BASE, LOG_ALL, ring flags. */
	start(FEATURES);
	plain_traffic("before");
	logging_on(0);
	workload("migration start");
	cr_log_info("%u windows checked", NWINDOWS);
}

Test(dirty_log, coverage_started_with_logging)
{
	/* §6.1 B with logging on: LOG_ALL in SET_FEATURES, the log after the rings. */
	start(FEATURES | LOG_ALL);
	workload("started logging");
}

Test(dirty_log, coverage_without_reply_ack)
{
	/* QEMU's GET_FEATURES barriers instead of acks; logging on at start. */
	cr_assert_eq(vfe_init(FE, NQ, VFE_PROTOCOL_MASK & ~BIT64(VHU_PROTOCOL_F_REPLY_ACK)), 0);
	start(FEATURES | LOG_ALL);
	workload("no REPLY_ACK");
}

Test(dirty_log, logging_off_stops_writes)
{
	const uint8_t *copy;

	start(FEATURES | LOG_ALL);
	workload("on");
	cr_assert_eq(vfe_set_logging(FE, false), 0);
	vfe_log_clear(FE);
	copy = log_copy(&FE->log);
	plain_traffic("off");
	assert_log_unchanged(&FE->log, copy, "logging off");
	/* And the device serves normally: the same checks once more. */
	plain_traffic("off again");
	assert_log_unchanged(&FE->log, copy, "logging off");
}

Test(dirty_log, toggle_off_and_on)
{
	start(FEATURES | LOG_ALL);
	workload("first on");
	for (int i = 0; i < 3; i++) {
		const uint8_t *copy;
		char tag[32];

		cr_assert_eq(vfe_set_logging(FE, false), 0);
		copy = log_copy(&FE->log);
		snprintf(tag, sizeof(tag), "off %d", i);
		plain_traffic(tag);
		assert_log_unchanged(&FE->log, copy, tag);
		/* Migration retried: QEMU sends a new log, then LOG_ALL and the ring flags. */
		logging_on(0);
		snprintf(tag, sizeof(tag), "on %d", i);
		workload(tag);
	}
}

Test(dirty_log, new_log_base_mid_run)
{
	uint64_t size;

	start(FEATURES | LOG_ALL);
	size = FE->log.size;
	workload("first log");
	/* Bigger (memory hot-plugged, say), then smaller again: each used from then on. */
	for (int i = 0; i < 2; i++) {
		const uint8_t *old;
		uint64_t next = i == 0 ? 4 * size : 2 * size;
		int r = vfe_set_log_base(FE, next);

		cr_assert_eq(r, 0, "SET_LOG_BASE of %llu bytes: %s", (unsigned long long)next,
			     strerror(-r));
		cr_assert_eq(vfe_sync(FE), 0);
		old = log_copy(&FE->prev_log);
		workload(i == 0 ? "bigger log" : "smaller log");
		assert_log_unchanged(&FE->prev_log, old, "the replaced log");
	}
}

Test(dirty_log, log_too_small)
{
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	uint8_t *buf = RBUF;
	uint64_t covered;
	size_t n = 0;
	int r;

	start(FEATURES | LOG_ALL);
	/* 32 bytes cover 1 MiB of guest-physical space; RAM is 16 MiB. */
	r = vfe_set_log_base(FE, 32);
	cr_assert_eq(r, 0, "SET_LOG_BASE: %s", strerror(-r));
	covered = 32 * 8 * PAGE;
	cr_assert_lt(FE->queues[RQ].used_gpa + 8ULL * QSIZE + 6, covered,
		     "test layout: the used ring must lie inside the small log");
	vfe_log_clear(FE);
	cr_assert_eq(vfe_fuse_lookup(FE, FUSE_ROOT_ID, "data.bin", &e), 0);
	cr_assert_eq(vfe_fuse_open(FE, e.nodeid, O_RDONLY, false, &oo), 0);
	/* Replies far beyond the log, in region 1. */
	for (int i = 0; i < 4; i++) {
		FE->alloc_next = (uint64_t)boundary(4096 * (i + 1) + 8);
		r = vfe_fuse_read(FE, e.nodeid, oo.fh, 0, buf, 128 * 1024, &n);
		cr_assert_eq(r, 0, "READ with the reply beyond the log: %s", strerror(-r));
		cr_assert(n == 128 * 1024 && memcmp(buf, DATA, n) == 0, "READ: wrong data");
	}
	FE->alloc_next = 0x300000; /* back below region 1, above the rings */
	cr_assert(vfe_backend_alive(H->be), "the back-end died");
	cr_assert_eq(vfe_fuse_getattr(FE, FUSE_ROOT_ID, NULL), 0);
	cr_assert(vfe_log_test(FE, FE->queues[RQ].used_gpa + 2),
		  "the used ring (inside the log) is not logged");
	for (size_t i = FE->log.size; i < FE->log.map_len; i++)
		cr_assert_eq(FE->log.map[i], 0, "log byte %zu written, past mmap_size 32", i);
	cr_assert(vfe_backend_log_contains(H->be, "beyond the"),
		  "the daemon's log does not say a write lay beyond the dirty log");
}

Test(dirty_log, log_fd_signalled)
{
	_cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	cr_assert(efd >= 0);
	start(FEATURES | LOG_ALL);
	cr_assert_eq(vfe_set_log_fd(FE, efd), 0);
	cr_assert_eq(vfe_sync(FE), 0);
	cr_assert_eq(vfe_fuse_getattr(FE, FUSE_ROOT_ID, NULL), 0);
	cr_assert_eq(poll(&p, 1, 1000), 1, "SET_LOG_FD eventfd not signalled after a logged write");
	cr_assert_eq(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_gt(v, 0);
}
