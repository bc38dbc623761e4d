/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integration, migration: two real vfsd processes (source and destination, one
 * shared directory) driven through QEMU's whole sequence (reference §6.1):
 * realize, start, logging on, stop, SET_DEVICE_STATE_FD(SAVE) + CHECK on the
 * source; realize, SET_DEVICE_STATE_FD(LOAD) + CHECK, start with the source's
 * ring bases and the same guest RAM on the destination, and no FUSE_INIT.
 * One struct vfe plays the guest: vfe_swap_socket() moves it between back-ends.
 * Our daemon only (the log lines are ours).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vfe.h"
#include "vfsd/util.h"

#define FEATURES  VFE_FEATURES_DEFAULT
#define NQ	  2
#define QSIZE	  64
#define DATA_SIZE 8192

static struct vfe_harness *H; /* the source */
static struct vfe *FE;	      /* the guest */
static struct vfe_backend *DST;
static int SRC_SOCK = -1, DST_SOCK = -1; /* whichever FE is not using */
static uint8_t DATA[DATA_SIZE];

static void setup(void)
{
	char path[512];
	int r;

	if (getenv("VFSD_TEST_BACKEND") && *getenv("VFSD_TEST_BACKEND"))
		cr_skip_test("migration tests check vfsd's own logs");
	r = vfe_harness_start(VFSD_BINARY, &H);
	cr_assert(r >= 0, "cannot start the back-end: %s", strerror(-r));
	FE = H->fe;
	FE->timeout_ms = 5000;
	for (size_t i = 0; i < sizeof(DATA); i++)
		DATA[i] = (uint8_t)(i * 13 + 7);
	snprintf(path, sizeof(path), "%s/f", H->share);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, DATA, sizeof(DATA)), (ssize_t)sizeof(DATA));
}

static void show_log(const char *who, struct vfe_backend *be)
{
	_cleanup_free_ char *log = NULL;

	if (be && vfe_backend_log(be, &log) >= 0)
		cr_log_info("%s log:\n%s", who, log);
}

static void teardown(void)
{
	if (H && vfe_backend_crashed(H->be))
		cr_log_error("source died from signal %d", WTERMSIG(H->be->status));
	if (DST && vfe_backend_crashed(DST))
		cr_log_error("destination died from signal %d", WTERMSIG(DST->status));
	if (getenv("VFE_SHOW_LOG")) {
		show_log("source", H ? H->be : NULL);
		show_log("destination", DST);
	}
	SRC_SOCK = safe_close(SRC_SOCK);
	DST_SOCK = safe_close(DST_SOCK);
	vfe_backend_free(DST);
	DST = NULL;
	vfe_harness_free(H);
	H = NULL;
	FE = NULL;
}

TestSuite(migration, .init = setup, .fini = teardown, .timeout = 120.0);

/* ---- helpers ---- */

static void start_source(void)
{
	int r = vfe_start(FE, NQ, QSIZE, FEATURES);

	cr_assert(r >= 0, "start sequence: %s", strerror(-r));
	r = vfe_fuse_init(FE, NULL);
	cr_assert(r >= 0, "FUSE_INIT: %s", strerror(-r));
}

/* A second vfsd on the same shared directory; its connected socket in DST_SOCK. */
static void spawn_destination(void)
{
	const char *argv[] = { VFSD_BINARY, NULL };
	char shareopt[300];
	const char *extra[] = { shareopt, NULL };
	struct vfe_spawn_opts o = { .argv = argv, .mode = VFE_SOCKET_PATH, .extra = extra };
	struct vfe *tmp = NULL;
	int r;

	snprintf(shareopt, sizeof(shareopt), "--shared-dir=%s", H->share);
	r = vfe_backend_spawn(&o, &DST);
	cr_assert(r >= 0, "cannot start the destination: %s", strerror(-r));
	r = vfe_connect(DST->socket_path, 5000, &tmp);
	cr_assert(r >= 0, "connect to the destination: %s", strerror(-r));
	DST_SOCK = tmp->sock;
	tmp->sock = -EBADF;
	vfe_free(tmp);
}

/* The guest now talks to the destination; the source's socket stays open. */
static void switch_to_destination(void)
{
	SRC_SOCK = vfe_swap_socket(FE, TAKE_FD(DST_SOCK));
}

static void switch_back_to_source(void)
{
	DST_SOCK = vfe_swap_socket(FE, TAKE_FD(SRC_SOCK));
}

/* QEMU's realize sequence (§6.1 A) on the current connection. */
static void realize(void)
{
	int r = vfe_init(FE, NQ, VFE_PROTOCOL_MASK);

	cr_assert(r >= 0, "realize: %s", strerror(-r));
	cr_assert(FE->acked_protocol & BIT64(VHU_PROTOCOL_F_DEVICE_STATE),
		  "DEVICE_STATE is not offered");
}

/* §6.1 B with the saved ring bases: features, memory, per-queue start, enable. */
static void resume(void)
{
	uint64_t f = (FEATURES & FE->features) | BIT64(VHOST_USER_F_PROTOCOL_FEATURES_BIT);
	int r;

	FE->logging = false;
	r = vfe_set_features(FE, f);
	cr_assert(r >= 0, "SET_FEATURES: %s", strerror(-r));
	r = vfe_set_mem_table(FE);
	cr_assert(r >= 0, "SET_MEM_TABLE: %s", strerror(-r));
	r = vfe_restart(FE);
	cr_assert(r >= 0, "restart: %s", strerror(-r));
}

/* QEMU's "migration starts" on a running device (§6.1 D.1). */
static void logging(bool on)
{
	int r;

	if (on) {
		r = vfe_set_log_base(FE, vfe_log_size(FE));
		cr_assert(r >= 0, "SET_LOG_BASE: %s", strerror(-r));
	}
	r = vfe_set_logging(FE, on);
	cr_assert(r >= 0, "logging %d: %s", on, strerror(-r));
}

struct blob {
	uint8_t *p;
	size_t len;
};

/* SET_DEVICE_STATE_FD(SAVE) -> 0x100, read the pipe to EOF, CHECK. Returns CHECK's u64. */
static uint64_t save_state(struct blob *b)
{
	int p[2];
	uint64_t reply = 0, check = 7;
	size_t cap = 0;
	int r;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	r = vfe_set_device_state_fd(FE, 0, 0, p[1], &reply);
	cr_assert(r >= 0, "SET_DEVICE_STATE_FD: %s", strerror(-r));
	cr_assert_eq(reply, 0x100, "reply 0x%llx", (unsigned long long)reply);
	close(p[1]); /* as QEMU: our copy goes right after sending */
	*b = (struct blob){ 0 };
	for (;;) {
		if (b->len == cap) {
			cap = cap ? 2 * cap : 65536;
			b->p = realloc(b->p, cap);
			cr_assert_not_null(b->p);
		}
		ssize_t n = read(p[0], b->p + b->len, cap - b->len);
		cr_assert(n >= 0);
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	close(p[0]);
	r = vfe_check_device_state(FE, &check);
	cr_assert(r >= 0, "CHECK_DEVICE_STATE: %s", strerror(-r));
	return check;
}

/* SET_DEVICE_STATE_FD(LOAD) -> 0x100, write the blob, close, CHECK. Returns CHECK's u64. */
static uint64_t load_state(const struct blob *b)
{
	int p[2];
	uint64_t reply = 0, check = 7;
	int r;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	r = vfe_set_device_state_fd(FE, 1, 0, p[0], &reply);
	cr_assert(r >= 0, "SET_DEVICE_STATE_FD: %s", strerror(-r));
	cr_assert_eq(reply, 0x100, "reply 0x%llx", (unsigned long long)reply);
	close(p[0]);
	/* A destination that rejects early closes its end: EPIPE is then fine (QEMU skips CHECK).
	 */
	signal(SIGPIPE, SIG_IGN);
	(void)write_full(p[1], b->p, b->len);
	close(p[1]);
	r = vfe_check_device_state(FE, &check);
	cr_assert(r >= 0, "CHECK_DEVICE_STATE: %s", strerror(-r));
	return check;
}

struct held {
	uint64_t f, f_fh;      /* "f" opened read-only */
	uint64_t g, g_fh;      /* "g" created read-write, with data */
	uint64_t dir, sub;     /* "dir" and "dir/sub" */
	struct fuse_attr attr; /* f's */
};

static void use_source(struct held *h)
{
	struct fuse_entry_out e;
	struct fuse_open_out o;
	size_t n;
	int r;

	r = vfe_fuse_lookup_path(FE, "/f", &h->f, &h->attr);
	cr_assert_eq(r, 0, "LOOKUP f: %s", strerror(-r));
	cr_assert_eq(vfe_fuse_open(FE, h->f, O_RDONLY, false, &o), 0);
	h->f_fh = o.fh;
	cr_assert_eq(vfe_fuse_mkdir(FE, FUSE_ROOT_ID, "dir", 0755, &e), 0);
	h->dir = e.nodeid;
	cr_assert_eq(vfe_fuse_mkdir(FE, h->dir, "sub", 0755, &e), 0);
	h->sub = e.nodeid;
	cr_assert_eq(vfe_fuse_create(FE, h->sub, "g", O_RDWR, 0644, &e, &o), 0);
	h->g = e.nodeid;
	h->g_fh = o.fh;
	cr_assert_eq(vfe_fuse_write(FE, h->g, h->g_fh, 0, "written before", 14, &n), 0);
	cr_assert_eq(n, 14);
}

/* The guest's ids still work (on whichever back-end FE talks to), without a new INIT. */
static void check_held(const struct held *h)
{
	static uint8_t buf[DATA_SIZE];
	struct fuse_attr_out ao;
	size_t n;
	int r;

	r = vfe_fuse_getattr(FE, h->f, &ao);
	cr_assert_eq(r, 0, "GETATTR f: %s", strerror(-r));
	cr_assert_eq(ao.attr.ino, h->attr.ino);
	r = vfe_fuse_read(FE, h->f, h->f_fh, 0, buf, DATA_SIZE, &n);
	cr_assert_eq(r, 0, "READ f: %s", strerror(-r));
	cr_assert_eq(n, DATA_SIZE);
	cr_assert_eq(memcmp(buf, DATA, DATA_SIZE), 0);
	r = vfe_fuse_read(FE, h->g, h->g_fh, 0, buf, 64, &n);
	cr_assert_eq(r, 0, "READ g: %s", strerror(-r));
	cr_assert_eq(n, 14);
	cr_assert_eq(memcmp(buf, "written before", 14), 0);
	cr_assert_eq(vfe_fuse_getattr(FE, h->sub, &ao), 0);
	cr_assert(S_ISDIR(ao.attr.mode));
}

/* GETATTR of @nodeid published on the request queue but not kicked. */
struct queued {
	int head;
	uint8_t *out;
	uint64_t unique;
};

static void queue_getattr(uint64_t nodeid, struct queued *q)
{
	struct {
		struct fuse_in_header h;
		struct fuse_getattr_in a;
	} req = { .h = { .len = sizeof(req),
			 .opcode = FUSE_GETATTR,
			 .unique = 0xabcdef,
			 .nodeid = nodeid,
			 .uid = (uint32_t)getuid(),
			 .gid = (uint32_t)getgid() } };
	size_t outlen = sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out);
	uint8_t *in = vfe_alloc(FE, sizeof(req), 8, NULL);
	struct vfe_req_opts o = FE->req_opts;

	q->out = vfe_alloc(FE, outlen, 8, NULL);
	cr_assert(in && q->out);
	memcpy(in, &req, sizeof(req));
	o.no_kick = true;
	struct vfe_buf rd = { in, sizeof(req) }, wr = { q->out, outlen };
	q->head = vfe_submit(FE, FE->fuse_queue, &rd, 1, &wr, 1, &o);
	cr_assert_geq(q->head, 0);
	q->unique = req.h.unique;
}

static bool dst_log_has(const char *s)
{
	return vfe_backend_log_contains(DST, s);
}

static bool src_log_has(const char *s)
{
	return vfe_backend_log_contains(H->be, s);
}

/* ---- tests ---- */

Test(migration, full_sequence_source_to_destination)
{
	struct held h;
	struct blob b;
	struct queued q;
	struct vfe_used u;
	unsigned bases[NQ];
	uint64_t nodes_before;
	int r;

	start_source();
	use_source(&h);
	logging(true); /* SET_LOG_BASE, SET_FEATURES + LOG_ALL, ring log flags */
	cr_assert_eq(vfe_stop(FE, bases), 0);
	/* Published but not kicked, after the stop: left in avail for the destination. */
	queue_getattr(h.g, &q);
	cr_assert_eq(save_state(&b), 0, "source CHECK");
	cr_assert_gt(b.len, 100);
	cr_assert(src_log_has("preparing the state in the background"));
	cr_assert(src_log_has("migration: saved"));
	cr_assert_eq(memcmp(b.p, "{\"format\":\"vfsd-state\"", 22), 0);
	cr_assert(memmem(b.p, b.len, "\"initialized\":true", 18));
	nodes_before = h.g;

	spawn_destination();
	switch_to_destination();
	realize();
	cr_assert_eq(load_state(&b), 0, "destination CHECK");
	cr_assert(dst_log_has("migration: loaded"));
	resume(); /* the same guest RAM, the source's bases, no FUSE_INIT */
	for (unsigned i = 0; i < NQ; i++)
		cr_assert_eq(FE->queues[i].base, bases[i]);

	/* The queued request is served as soon as the ring starts, without a kick. */
	r = vfe_wait_used(FE, FE->fuse_queue, q.head, 5000, &u);
	cr_assert_eq(r, 0, "the queued GETATTR was not served: %s", strerror(-r));
	struct fuse_out_header oh;
	struct fuse_attr_out ao;
	memcpy(&oh, q.out, sizeof(oh));
	memcpy(&ao, q.out + sizeof(oh), sizeof(ao));
	cr_assert_eq(oh.unique, q.unique);
	cr_assert_eq(oh.error, 0, "queued GETATTR: %d", oh.error);
	cr_assert(S_ISREG(ao.attr.mode));

	check_held(&h);
	/* Writes through the old fh land in the shared file. */
	size_t n;
	cr_assert_eq(vfe_fuse_write(FE, h.g, h.g_fh, 14, " and after", 10, &n), 0);
	char path[512], buf[64] = "";
	snprintf(path, sizeof(path), "%s/dir/sub/g", H->share);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(read(fd, buf, sizeof(buf)), 24);
	cr_assert_eq(memcmp(buf, "written before and after", 24), 0);
	/* New ids continue above the source's; a new lookup works. */
	struct fuse_entry_out e;
	cr_assert_eq(vfe_fuse_create(FE, h.dir, "new", O_RDWR, 0644, &e, NULL), 0);
	cr_assert_gt(e.nodeid, nodes_before);
	cr_assert(!dst_log_has("resetting the FUSE session"));
	free(b.p);
}

Test(migration, cancel_before_switchover)
{
	struct held h;

	start_source();
	use_source(&h);
	logging(true);
	logging(false); /* QEMU cancels: SET_FEATURES without LOG_ALL, ring flags 0 */
	check_held(&h); /* the source keeps serving */
	cr_assert(src_log_has("migration: cancelled"));
	cr_assert(!src_log_has("resetting the FUSE session"));
	/* And a later migration still works. */
	logging(true);
	cr_assert_eq(vfe_stop(FE, NULL), 0);
	struct blob b;
	cr_assert_eq(save_state(&b), 0);
	free(b.p);
}

Test(migration, rejected_blob_source_resumes)
{
	struct held h;
	struct blob b;
	uint8_t *p;

	start_source();
	use_source(&h);
	logging(true);
	cr_assert_eq(vfe_stop(FE, NULL), 0);
	cr_assert_eq(save_state(&b), 0);
	/* Corrupt one byte of a name: the checksum catches it. */
	p = memmem(b.p, b.len, "\"name\":\"sub\"", 12);
	cr_assert_not_null(p);
	p[8] = 'S';

	spawn_destination();
	switch_to_destination();
	realize();
	cr_assert_neq(load_state(&b), 0, "a corrupt blob must fail CHECK");
	cr_assert(dst_log_has("state rejected"));
	cr_assert(dst_log_has("checksum"));

	/* The source resumes with its ring bases: the old ids still work. */
	switch_back_to_source();
	resume();
	check_held(&h);

	/* The destination stayed empty and healthy: a fresh guest can mount it. */
	struct vfe *fe2 = NULL;
	uint64_t node;
	cr_assert_eq(vfe_from_fd(TAKE_FD(DST_SOCK), &fe2), 0);
	fe2->timeout_ms = 5000;
	cr_assert_eq(vfe_start(fe2, NQ, QSIZE, FEATURES), 0);
	cr_assert_eq(vfe_fuse_init(fe2, NULL), 0);
	cr_assert_eq(vfe_fuse_lookup_path(fe2, "/dir/sub/g", &node, NULL), 0);
	cr_assert(vfe_backend_alive(DST));
	vfe_free(fe2);
	free(b.p);
}

Test(migration, never_started_device)
{
	struct blob b;
	uint64_t node;

	realize(); /* only the realize sequence: no memory, no features, no rings */
	cr_assert_eq(save_state(&b), 0);
	cr_assert(memmem(b.p, b.len, "\"initialized\":false", 19));
	spawn_destination();
	switch_to_destination();
	realize();
	cr_assert_eq(load_state(&b), 0);
	/* The guest driver then starts from scratch, with an INIT of its own. */
	cr_assert_eq(vfe_start(FE, NQ, QSIZE, FEATURES), 0);
	cr_assert_eq(vfe_fuse_init(FE, NULL), 0);
	cr_assert_eq(vfe_fuse_lookup_path(FE, "/f", &node, NULL), 0);
	free(b.p);
}

Test(migration, check_without_transfer_fails)
{
	uint64_t check = 0;

	realize();
	cr_assert_eq(vfe_check_device_state(FE, &check), 0);
	cr_assert_neq(check, 0);
}

Test(migration, save_reader_closes_early)
{
	struct held h;
	char path[512];
	uint64_t reply = 0, check = 0;
	int p[2];
	char buf[16];

	/* Enough inodes that the blob does not fit in the pipe (64 KiB). */
	for (int k = 0; k < 1500; k++) {
		snprintf(path, sizeof(path), "%s/file-with-a-longish-name-%04d", H->share, k);
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		cr_assert(fd >= 0);
	}
	start_source();
	use_source(&h);
	for (int k = 0; k < 1500; k++) {
		struct fuse_entry_out e;
		snprintf(path, sizeof(path), "file-with-a-longish-name-%04d", k);
		cr_assert_eq(vfe_fuse_lookup(FE, FUSE_ROOT_ID, path, &e), 0);
	}
	logging(true);
	cr_assert_eq(vfe_stop(FE, NULL), 0);

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(vfe_set_device_state_fd(FE, 0, 0, p[1], &reply), 0);
	cr_assert_eq(reply, 0x100);
	close(p[1]);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(p[0]); /* QEMU gave up */
	cr_assert_eq(vfe_check_device_state(FE, &check), 0);
	cr_assert_neq(check, 0, "a save whose reader went away must fail CHECK");
	cr_assert(vfe_backend_alive(H->be), "no SIGPIPE death");
	cr_assert(src_log_has("EPIPE"));

	/* The source resumes with all its state. */
	resume();
	check_held(&h);
}

/*
 * A directory the guest removed while still holding it (a shell's working
 * directory) travels as a lost record: under abort (the default) the
 * destination keeps its id as a placeholder that answers EIO, and the
 * guest's FORGET of it works.
 */
Test(migration, removed_directory_still_held_travels_as_lost)
{
	struct held h;
	struct blob b;
	struct fuse_entry_out e;
	struct fuse_attr_out ao;
	unsigned bases[NQ];

	start_source();
	use_source(&h);
	cr_assert_eq(vfe_fuse_mkdir(FE, FUSE_ROOT_ID, "cwd", 0755, &e), 0);
	uint64_t cwd = e.nodeid;
	cr_assert_eq(vfe_fuse_unlink(FE, FUSE_ROOT_ID, "cwd", true), 0);
	logging(true);
	cr_assert_eq(vfe_stop(FE, bases), 0);
	cr_assert_eq(save_state(&b), 0, "source CHECK");
	cr_assert(memmem(b.p, b.len, "\"lost\":\"unlinked\"", 17));
	cr_assert(memmem(b.p, b.len, "\"required_features\":[\"lost\"]", 28));
	cr_assert(src_log_has("(1 lost)"));

	spawn_destination();
	switch_to_destination();
	realize();
	cr_assert_eq(load_state(&b), 0, "destination CHECK");
	cr_assert(dst_log_has("(1 lost)"));
	resume();
	check_held(&h);
	cr_assert_eq(vfe_fuse_getattr(FE, cwd, &ao), -EIO);
	cr_assert_eq(vfe_fuse_forget(FE, cwd, 1), 0);
	cr_assert_eq(vfe_fuse_getattr(FE, cwd, &ao), -ENOENT, "forgotten");
	cr_assert(vfe_backend_alive(DST));
	free(b.p);
}

/* An open handle on such a directory: abort refuses the state, the source resumes. */
Test(migration, handle_on_a_lost_directory_fails_abort)
{
	struct held h;
	struct blob b;
	struct fuse_entry_out e;
	struct fuse_open_out o;

	start_source();
	use_source(&h);
	cr_assert_eq(vfe_fuse_mkdir(FE, FUSE_ROOT_ID, "cwd", 0755, &e), 0);
	cr_assert_eq(vfe_fuse_open(FE, e.nodeid, O_RDONLY, true, &o), 0);
	cr_assert_eq(vfe_fuse_unlink(FE, FUSE_ROOT_ID, "cwd", true), 0);
	logging(true);
	cr_assert_eq(vfe_stop(FE, NULL), 0);
	cr_assert_eq(save_state(&b), 0, "source CHECK");

	spawn_destination();
	switch_to_destination();
	realize();
	cr_assert_neq(load_state(&b), 0, "abort must refuse a handle on a lost inode");
	cr_assert(dst_log_has("is lost"));
	cr_assert(dst_log_has("nothing changed"));

	switch_back_to_source();
	resume();
	check_held(&h);
	free(b.p);
}
