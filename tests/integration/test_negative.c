/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integration, negative: broken descriptor chains, broken FUSE requests and
 * broken vhost-user messages. Each must end in an error reply, a stopped queue
 * (the back-end alive, other queues and the control channel still working) or
 * a closed connection with a clean exit; never a crash or a hang.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "vfe.h"
#include "vfsd/util.h"

#define FEATURES VFE_FEATURES_DEFAULT
#define QSIZE	 16
#define RQ	 1 /* the request queue under attack */
#define REQ_LEN	 (sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in))

static struct vfe_harness *H;
static struct vfe *FE;
static uint8_t *LAST_OUT;	  /* reply buffer of the last bad request */
static struct vfe_used LAST_USED; /* its used entry, when there was one */

static void setup(void)
{
	int r = vfe_harness_start(VFSD_BINARY, &H);

	cr_assert(r >= 0, "cannot start the back-end: %s", strerror(-r));
	FE = H->fe;
	FE->timeout_ms = 5000;
	LAST_OUT = NULL;
	LAST_USED = (struct vfe_used){ 0 };
}

static void teardown(void)
{
	/* VFE_SHOW_LOG=1: print the back-end's output (it is removed with the harness). */
	if (H && getenv("VFE_SHOW_LOG")) {
		_cleanup_free_ char *log = NULL;

		if (vfe_backend_log(H->be, &log) >= 0)
			cr_log_info("back-end log:\n%s", log);
	}
	vfe_harness_free(H);
	H = NULL;
	FE = NULL;
}

static void start(void)
{
	int r = vfe_start(FE, 2, QSIZE, FEATURES);

	cr_assert(r >= 0, "start sequence: %s", strerror(-r));
	r = vfe_fuse_init(FE, NULL);
	cr_assert(r >= 0, "FUSE_INIT: %s", strerror(-r));
}

enum outcome { OUT_USED, OUT_STOPPED, OUT_CLOSED };
static const char *const outcome_names[] = { "used entry", "stopped queue", "closed connection" };

/* The back-end must not have died from a signal; if it exited, it exited normally. */
static void assert_no_crash(void)
{
	cr_assert(!vfe_backend_crashed(H->be), "back-end killed by signal %d",
		  WTERMSIG(H->be->status));
}

static enum outcome closed_outcome(void)
{
	int st;

	/* A back-end that closes the connection then exits: it must do so cleanly. */
	cr_assert_eq(vfe_backend_wait(H->be, 10000, &st), 0, "connection closed, still running");
	cr_assert(WIFEXITED(st), "back-end killed by signal %d", WTERMSIG(st));
	return OUT_CLOSED;
}

/* Is the control channel alive? Returns false when the connection is closed. */
static bool control_alive(void)
{
	int r = vfe_sync(FE);

	if (r == -ECONNRESET || r == -EPIPE)
		return false;
	cr_assert_eq(r, 0, "control channel broken but open: %s", strerror(-r));
	return true;
}

/*
 * What happened to chain @head on queue @q? Checks, for a stopped queue, that
 * the back-end is alive and that the control channel and the hiprio queue still
 * work.
 */
static enum outcome outcome(unsigned q, int head, struct vfe_used *ret)
{
	struct vfe_used u;
	int r = vfe_wait_used(FE, q, head, 1500, &u);

	assert_no_crash();
	if (r == 0) {
		LAST_USED = u;
		if (ret)
			*ret = u;
		if (!control_alive())
			return closed_outcome();
		return OUT_USED;
	}
	cr_assert(r == -ETIMEDOUT || r == -EPROTO, "waiting for the used ring: %s", strerror(-r));
	if (!control_alive() || !vfe_backend_alive(H->be))
		return closed_outcome();
	/* Stopped: no more used entries from that queue, but hiprio keeps working. */
	r = vfe_fuse_forget(FE, FUSE_ROOT_ID, 0);
	cr_assert_eq(r, 0, "hiprio queue stopped too: %s", strerror(-r));
	cr_assert_eq(vfe_wait_used(FE, q, head, 300, &u), -ETIMEDOUT);
	assert_no_crash();
	return OUT_STOPPED;
}

/*
 * Log the outcome; a used entry must carry an error reply (or nothing at all):
 * a malformed request answered with success means the back-end served garbage.
 */
static void report(const char *what, enum outcome o)
{
	cr_log_info("%s: %s (used len %u)", what, outcome_names[o],
		    o == OUT_USED ? LAST_USED.len : 0);
	if (o == OUT_USED && LAST_OUT && LAST_USED.len >= sizeof(struct fuse_out_header)) {
		struct fuse_out_header oh;

		memcpy(&oh, LAST_OUT, sizeof(oh));
		cr_expect(oh.error < 0, "%s: answered with success (len %u)", what, oh.len);
	}
	if (!H->external && o != OUT_USED)
		cr_expect(vfe_backend_log_contains(H->be, "warn") ||
			      vfe_backend_log_contains(H->be, "error"),
			  "%s: the log does not say what was wrong", what);
}

/* A valid GETATTR request in guest RAM: in (64 bytes) and out (256 bytes). */
static void getattr_bufs(uint64_t *in_gpa, uint64_t *out_gpa, uint64_t unique)
{
	struct fuse_getattr_in gin = { 0 };
	struct fuse_in_header ih = { .len = sizeof(ih) + sizeof(gin),
				     .opcode = FUSE_GETATTR,
				     .unique = unique,
				     .nodeid = FUSE_ROOT_ID };
	uint8_t *in = vfe_alloc(FE, REQ_LEN, 8, in_gpa);

	LAST_OUT = vfe_alloc(FE, 256, 8, out_gpa);
	cr_assert(in && LAST_OUT);
	memcpy(in, &ih, sizeof(ih));
	memcpy(in + sizeof(ih), &gin, sizeof(gin));
}

static uint64_t ram_end(void)
{
	return FE->mem_gpa + FE->mem_size;
}

/* A two-descriptor chain: readable (@addr, @len) then the writable out buffer. */
static int push_two(uint64_t addr, uint32_t len, uint64_t out_gpa, uint32_t out_len)
{
	int d0 = vfe_desc_alloc(FE, RQ), d1 = vfe_desc_alloc(FE, RQ);

	cr_assert(d0 >= 0 && d1 >= 0);
	vfe_desc_set(FE, RQ, (unsigned)d0, addr, len, VRING_DESC_F_NEXT, (uint16_t)d1);
	vfe_desc_set(FE, RQ, (unsigned)d1, out_gpa, out_len, VRING_DESC_F_WRITE, 0);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)d0, false), 0);
	return d0;
}

TestSuite(negative, .init = setup, .fini = teardown, .timeout = 90);

Test(negative, descriptor_address_out_of_range)
{
	uint64_t in, out;
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 9);
	o = outcome(RQ, push_two(ram_end() + 0x10000, REQ_LEN, out, 256), NULL);
	report("readable descriptor beyond guest RAM", o);
}

Test(negative, descriptor_crossing_end_of_ram)
{
	uint64_t in, out;
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 9);
	/* Starts inside RAM, ends past it: the out buffer. */
	o = outcome(RQ, push_two(in, REQ_LEN, ram_end() - 8, 256), NULL);
	report("writable descriptor crossing the end of guest RAM", o);
}

Test(negative, descriptor_huge_length)
{
	uint64_t in, out;
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 9);
	o = outcome(RQ, push_two(in, 0xffffffffu, out, 256), NULL);
	report("descriptor of length 4 GiB - 1", o);
}

Test(negative, descriptor_loop)
{
	uint64_t in, out;
	int d0, d1;
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 9);
	d0 = vfe_desc_alloc(FE, RQ);
	d1 = vfe_desc_alloc(FE, RQ);
	/* readable header, then a writable descriptor that points back at the head */
	vfe_desc_set(FE, RQ, (unsigned)d0, in, REQ_LEN, VRING_DESC_F_NEXT, (uint16_t)d1);
	vfe_desc_set(FE, RQ, (unsigned)d1, out, 256, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
		     (uint16_t)d0);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)d0, false), 0);
	o = outcome(RQ, d0, NULL);
	report("descriptor loop", o);
}

Test(negative, descriptor_next_out_of_range)
{
	uint64_t in, out;
	int d0;
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 9);
	d0 = vfe_desc_alloc(FE, RQ);
	vfe_desc_set(FE, RQ, (unsigned)d0, in, REQ_LEN, VRING_DESC_F_NEXT, QSIZE + 5);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)d0, false), 0);
	o = outcome(RQ, d0, NULL);
	report("next index beyond the queue size", o);
}

Test(negative, avail_head_out_of_range)
{
	struct vfe_queue *q;
	enum outcome o;

	start();
	q = &FE->queues[RQ];
	/* Bypass the helpers: head index QSIZE + 3 in the avail ring. */
	q->avail[2 + q->avail_idx % q->size] = QSIZE + 3;
	q->avail_idx++;
	__atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
	cr_assert_eq(vfe_kick(FE, RQ), 0);
	o = outcome(RQ, -1, NULL);
	report("avail ring head beyond the queue size", o);
}

/*
 * An indirect table of @n entries: n-1 readable ones carrying a valid GETATTR
 * (one byte each, the last takes the rest), then the writable out buffer.
 * @len < 0: the table's real length. @nested: entry 1 is itself indirect.
 */
static int push_indirect(unsigned n, bool nested, int64_t len)
{
	uint64_t in, out, tgpa;
	struct vring_desc_le *t;
	unsigned nr = n - 1, used = 0;
	int head;

	cr_assert(n >= 3 && nr <= REQ_LEN);
	getattr_bufs(&in, &out, 11);
	t = vfe_alloc(FE, 16 * (size_t)n, 16, &tgpa);
	cr_assert(t);
	for (unsigned i = 0; i < nr; i++) {
		uint32_t l = i + 1 < nr ? 1 : REQ_LEN - used;

		t[i] = (struct vring_desc_le){ in + used, l, VRING_DESC_F_NEXT, (uint16_t)(i + 1) };
		used += l;
	}
	t[nr] = (struct vring_desc_le){ out, 256, VRING_DESC_F_WRITE, 0 };
	if (nested)
		t[1] = (struct vring_desc_le){ tgpa, 16 * n,
					       VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 2 };
	head = vfe_desc_alloc(FE, RQ);
	cr_assert_geq(head, 0);
	vfe_desc_set(FE, RQ, (unsigned)head, tgpa, len < 0 ? 16 * n : (uint32_t)len,
		     VRING_DESC_F_INDIRECT, 0);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)head, false), 0);
	return head;
}

Test(negative, indirect_valid_control)
{
	struct vfe_used u;

	/* The same construction, legal: must be served (checks the test itself). */
	start();
	cr_assert_eq(outcome(RQ, push_indirect(8, false, -1), &u), OUT_USED);
	cr_assert_geq(u.len, sizeof(struct fuse_out_header));
}

Test(negative, indirect_longer_than_queue_is_served)
{
	struct vfe_used u;

	/*
	 * Not an error: Linux builds indirect tables longer than the queue (it only
	 * warns for direct chains), so a table is bounded by its own size.
	 */
	start();
	cr_assert_eq(outcome(RQ, push_indirect(QSIZE * 2, false, -1), &u), OUT_USED);
	cr_assert_eq(((struct fuse_out_header *)LAST_OUT)->error, 0);
}

Test(negative, chain_longer_than_queue)
{
	uint64_t in, out;
	int d[QSIZE];
	enum outcome o;

	start();
	getattr_bufs(&in, &out, 12);
	for (int i = 0; i < QSIZE; i++)
		d[i] = vfe_desc_alloc(FE, RQ);
	cr_assert_geq(d[QSIZE - 1], 0);
	/* The readable request, then writable descriptors cycling for ever (no
	 * readable-after-writable): a walk that is not bounded by the queue size never
	 * ends, one that silently stops there answers a request it should refuse. */
	vfe_desc_set(FE, RQ, (unsigned)d[0], in, REQ_LEN, VRING_DESC_F_NEXT, (uint16_t)d[1]);
	for (int i = 1; i < QSIZE; i++)
		vfe_desc_set(FE, RQ, (unsigned)d[i], out + 16 * (uint64_t)(i - 1), 16,
			     VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			     (uint16_t)d[i + 1 < QSIZE ? i + 1 : 1]);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)d[0], false), 0);
	o = outcome(RQ, d[0], NULL);
	report("direct chain longer than the queue size (cycle)", o);
}

Test(negative, nested_indirect)
{
	enum outcome o;

	start();
	o = outcome(RQ, push_indirect(8, true, -1), NULL);
	report("indirect descriptor inside an indirect table", o);
}

Test(negative, indirect_bad_length)
{
	enum outcome o;

	start();
	o = outcome(RQ, push_indirect(8, false, 16 * 8 - 8), NULL);
	report("indirect table length not a multiple of 16", o);
}

Test(negative, indirect_zero_length)
{
	enum outcome o;

	start();
	o = outcome(RQ, push_indirect(8, false, 0), NULL);
	report("indirect table of length 0", o);
}

Test(negative, indirect_table_out_of_range)
{
	int head;
	enum outcome o;

	start();
	head = vfe_desc_alloc(FE, RQ);
	vfe_desc_set(FE, RQ, (unsigned)head, ram_end() + 4096, 64, VRING_DESC_F_INDIRECT, 0);
	cr_assert_eq(vfe_avail_push(FE, RQ, (uint16_t)head, false), 0);
	o = outcome(RQ, head, NULL);
	report("indirect table beyond guest RAM", o);
}

/* Send raw bytes as the device-readable part; returns the outcome and the reply. */
static enum outcome raw_request(const void *req, size_t len, struct fuse_out_header *oh,
				struct vfe_used *u)
{
	uint8_t *in = vfe_alloc(FE, len ? len : 1, 8, NULL), *out = vfe_alloc(FE, 4096, 8, NULL);
	struct vfe_buf rd = { in, len }, wr = { out, 4096 };
	enum outcome o;
	int head;

	if (len)
		memcpy(in, req, len);
	LAST_OUT = out;
	head = len ? vfe_submit(FE, RQ, &rd, 1, &wr, 1, NULL)
		   : vfe_submit(FE, RQ, NULL, 0, &wr, 1, NULL);
	cr_assert_geq(head, 0);
	o = outcome(RQ, head, u);
	memcpy(oh, out, sizeof(*oh));
	return o;
}

Test(negative, unknown_fuse_opcode_is_enosys)
{
	struct fuse_in_header ih = {
		.len = sizeof(ih), .opcode = 9999, .unique = 4242, .nodeid = FUSE_ROOT_ID
	};
	struct fuse_out_header oh;
	struct vfe_used u;

	start();
	cr_assert_eq(raw_request(&ih, sizeof(ih), &oh, &u), OUT_USED);
	cr_assert_eq(u.len, sizeof(oh));
	cr_assert_eq(oh.len, sizeof(oh));
	cr_assert_eq(oh.unique, 4242);
	cr_assert_eq(oh.error, -ENOSYS, "error %d", oh.error);
	/* and the queue goes on */
	cr_assert_eq(vfe_fuse_getattr(FE, FUSE_ROOT_ID, NULL), 0);
}

Test(negative, short_fuse_header)
{
	struct fuse_in_header ih = { .len = sizeof(ih), .opcode = FUSE_GETATTR, .unique = 5 };
	struct fuse_out_header oh;
	struct vfe_used u;
	enum outcome o;

	start();
	o = raw_request(&ih, 20, &oh, &u);
	report("FUSE header of 20 bytes", o);
	if (o == OUT_USED && u.len >= sizeof(oh))
		cr_expect(oh.error < 0, "a short header answered with success");
}

Test(negative, fuse_len_larger_than_chain)
{
	struct fuse_in_header ih = {
		.len = 4096, .opcode = FUSE_GETATTR, .unique = 6, .nodeid = FUSE_ROOT_ID
	};
	uint8_t req[sizeof(ih) + sizeof(struct fuse_getattr_in)] = { 0 };
	struct fuse_out_header oh;
	struct vfe_used u;
	enum outcome o;

	memcpy(req, &ih, sizeof(ih));
	start();
	o = raw_request(req, sizeof(req), &oh, &u);
	report("in.len larger than the readable part", o);
	if (o == OUT_USED && u.len >= sizeof(oh))
		cr_expect(oh.error < 0, "in.len > chain answered with success");
}

Test(negative, no_readable_part)
{
	struct fuse_out_header oh;
	struct vfe_used u;
	enum outcome o;

	start();
	o = raw_request(NULL, 0, &oh, &u);
	report("chain with only writable descriptors", o);
}

Test(negative, reply_buffer_too_small)
{
	struct fuse_in_header ih = { .len = sizeof(ih) + sizeof(struct fuse_getattr_in),
				     .opcode = FUSE_GETATTR,
				     .unique = 8,
				     .nodeid = FUSE_ROOT_ID };
	uint8_t req[sizeof(ih) + sizeof(struct fuse_getattr_in)] = { 0 };
	uint8_t *in, *out;
	enum outcome o;
	int head;

	memcpy(req, &ih, sizeof(ih));
	start();
	in = vfe_alloc(FE, sizeof(req), 8, NULL);
	out = vfe_alloc(FE, 8, 8, NULL);
	LAST_OUT = NULL; /* too small for a header anyway */
	memcpy(in, req, sizeof(req));
	head = vfe_submit(FE, RQ, &(struct vfe_buf){ in, sizeof(req) }, 1,
			  &(struct vfe_buf){ out, 8 }, 1, NULL);
	o = outcome(RQ, head, NULL);
	report("8-byte reply buffer", o);
}

/* ---------------------------------------------------------------- vhost-user messages */

/*
 * After a bad message sent with NEED_REPLY: an ack with a non-zero value, or a
 * closed connection with a clean exit. Returns true if the connection is open.
 */
static bool expect_rejected(const char *what, uint32_t request)
{
	uint64_t ack = 0;
	int r = vfe_recv_reply(FE, request, &ack, sizeof(ack), NULL, NULL, NULL);

	assert_no_crash();
	if (r == -ECONNRESET || vfe_closed(FE, 0)) {
		closed_outcome();
		cr_log_info("%s: closed connection", what);
		return false;
	}
	cr_assert_eq(r, 0, "%s: no reply and no close: %s", what, strerror(-r));
	cr_expect_neq(ack, 0, "%s: acked as success", what);
	cr_log_info("%s: error reply %llu", what, (unsigned long long)ack);
	/* An error reply, then closing the connection, is fine too. */
	if (!control_alive()) {
		closed_outcome();
		cr_log_info("%s: ... then closed connection", what);
		return false;
	}
	return true;
}

static void setup_acked(void)
{
	/* REPLY_ACK so that every bad message can be answered. */
	cr_assert_eq(vfe_init(FE, 2, VFE_PROTOCOL_MASK), 0);
	cr_assert(FE->acked_protocol & BIT64(VHU_PROTOCOL_F_REPLY_ACK), "needs REPLY_ACK");
}

#define NEED (VHU_FLAG_VERSION | VHU_FLAG_NEED_REPLY)

Test(negative, unknown_vhost_request)
{
	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, 200, NEED, NULL, 0, NULL, 0), 0);
	expect_rejected("unknown request 200", 200);
}

Test(negative, unknown_vhost_request_no_reply)
{
	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_REQUEST_MAX + 50, VHU_FLAG_VERSION, NULL, 0, NULL, 0), 0);
	if (!control_alive())
		closed_outcome();
	assert_no_crash();
}

Test(negative, wrong_payload_size_vring_num)
{
	uint32_t four = 1;

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_NUM, NEED, &four, sizeof(four), NULL, 0), 0);
	expect_rejected("SET_VRING_NUM with 4 bytes", VHU_SET_VRING_NUM);
}

Test(negative, wrong_payload_size_features)
{
	uint8_t b[12] = { 0 };

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_FEATURES, NEED, b, sizeof(b), NULL, 0), 0);
	expect_rejected("SET_FEATURES with 12 bytes", VHU_SET_FEATURES);
}

Test(negative, mem_table_size_mismatch)
{
	struct vhu_memory m = { .nregions = 2 };

	setup_acked();
	cr_assert_eq(vfe_mem_setup(FE, 0, 16u << 20, 1), 0);
	m.regions[0] = (struct vhu_mem_region){ 0, 16u << 20, VFE_QVA_BASE, 0 };
	/* says two regions, carries one (and one fd) */
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_MEM_TABLE, NEED, &m, 8 + 32, &FE->mem_fd, 1), 0);
	expect_rejected("SET_MEM_TABLE nregions 2 with one region", VHU_SET_MEM_TABLE);
}

Test(negative, mem_table_missing_fd)
{
	struct vhu_memory m = { .nregions = 1 };

	setup_acked();
	m.regions[0] = (struct vhu_mem_region){ 0, 16u << 20, VFE_QVA_BASE, 0 };
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_MEM_TABLE, NEED, &m, 8 + 32, NULL, 0), 0);
	expect_rejected("SET_MEM_TABLE without its fd", VHU_SET_MEM_TABLE);
}

Test(negative, vring_kick_missing_fd)
{
	uint64_t u = RQ; /* no NOFD bit, no fd */

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_KICK, NEED, &u, sizeof(u), NULL, 0), 0);
	expect_rejected("SET_VRING_KICK without fd or NOFD", VHU_SET_VRING_KICK);
}

Test(negative, vring_index_out_of_range)
{
	struct vhu_vring_state s = { .index = 200, .num = 128 };

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_NUM, NEED, &s, sizeof(s), NULL, 0), 0);
	expect_rejected("SET_VRING_NUM for queue 200", VHU_SET_VRING_NUM);
}

Test(negative, vring_num_not_power_of_two)
{
	struct vhu_vring_state s = { .index = RQ, .num = 100 };

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_NUM, NEED, &s, sizeof(s), NULL, 0), 0);
	expect_rejected("SET_VRING_NUM 100", VHU_SET_VRING_NUM);
}

Test(negative, vring_addr_untranslatable)
{
	setup_acked();
	cr_assert_eq(vfe_mem_setup(FE, 0, 16u << 20, 1), 0);
	cr_assert_eq(vfe_set_mem_table(FE), 0);
	cr_assert_eq(vfe_set_vring_num(FE, RQ, 16), 0);
	/* GPAs where QVAs belong: a back-end must refuse, not map garbage. */
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_ADDR, NEED,
				  &(struct vhu_vring_addr){ .index = RQ,
							    .desc_user_addr = 0x1000,
							    .used_user_addr = 0x3000,
							    .avail_user_addr = 0x2000 },
				  sizeof(struct vhu_vring_addr), NULL, 0),
		     0);
	expect_rejected("SET_VRING_ADDR with untranslatable addresses", VHU_SET_VRING_ADDR);
}

Test(negative, extra_fds_are_tolerated)
{
	struct vhu_vring_state s = { .index = RQ, .num = 16 };
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	uint64_t ack;
	int r;

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_SET_VRING_NUM, NEED, &s, sizeof(s), fds, 2), 0);
	close(fds[0]);
	close(fds[1]);
	r = vfe_recv_reply(FE, VHU_SET_VRING_NUM, &ack, sizeof(ack), NULL, NULL, NULL);
	assert_no_crash();
	if (r < 0)
		cr_assert(vfe_closed(FE, 1000), "no reply, not closed: %s", strerror(-r));
}

Test(negative, oversized_message)
{
	struct vhu_hdr h = { VHU_SET_FEATURES, VHU_FLAG_VERSION, 1u << 24 };
	static uint8_t junk[65536];

	setup_acked();
	cr_assert_eq(vfe_send_raw(FE, &h, sizeof(h), NULL, 0), 0);
	/* It may close before reading all of this. */
	(void)vfe_send_raw(FE, junk, sizeof(junk), NULL, 0);
	cr_assert(vfe_closed(FE, 5000), "16 MiB payload accepted");
	closed_outcome();
}

Test(negative, bad_version_flags)
{
	uint64_t f = 0;

	setup_acked();
	cr_assert_eq(vfe_send_msg(FE, VHU_GET_FEATURES, 0x2, NULL, 0, NULL, 0), 0);
	{
		int r = vfe_recv_reply(FE, VHU_GET_FEATURES, &f, sizeof(f), NULL, NULL, NULL);

		assert_no_crash();
		cr_log_info("GET_FEATURES with version 2: %s", r == 0 ? "answered" : strerror(-r));
	}
}

Test(negative, truncated_header_then_close)
{
	uint8_t half[6] = { 1, 0, 0, 0, 1, 0 };

	setup_acked();
	cr_assert_eq(vfe_send_raw(FE, half, sizeof(half), NULL, 0), 0);
	shutdown(FE->sock, SHUT_WR);
	cr_assert(vfe_closed(FE, 5000));
	closed_outcome();
}
