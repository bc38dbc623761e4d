/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integration, lifecycle: what resets the FUSE session and what must not.
 * DESIGN.md: the session (INIT options, inodes, handles, fds) is reset on FUSE
 * INIT, on SET_STATUS 0 and on RESET_DEVICE; never by GET_VRING_BASE, ring
 * disable, RESET_OWNER or dirty logging. A front-end disconnect or SIGTERM ends
 * the process with exit status 0. Our daemon only (the log lines are ours).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vfe.h"
#include "vfsd/util.h"

#define FEATURES  VFE_FEATURES_DEFAULT
#define NQ	  2
#define QSIZE	  64
#define DATA_SIZE 8192
#define RESET_LOG "resetting the FUSE session"

static struct vfe_harness *H;
static struct vfe *FE;
static uint8_t DATA[DATA_SIZE];

/* What the guest holds: a node id from LOOKUP and a file handle from OPEN. */
struct held {
	uint64_t node;
	uint64_t fh;
};

static void setup(void)
{
	char path[512];
	int r;

	if (getenv("VFSD_TEST_BACKEND") && *getenv("VFSD_TEST_BACKEND"))
		cr_skip_test("lifecycle tests check vfsd's own log and reset rules");
	r = vfe_harness_start(VFSD_BINARY, &H);
	cr_assert(r >= 0, "cannot start the back-end: %s", strerror(-r));
	FE = H->fe;
	FE->timeout_ms = 5000;
	for (size_t i = 0; i < sizeof(DATA); i++)
		DATA[i] = (uint8_t)(i * 13 + 7);
	snprintf(path, sizeof(path), "%s/f", H->share);
	{
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, DATA, sizeof(DATA)), (ssize_t)sizeof(DATA));
	}
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
}

static void start(void)
{
	int r = vfe_start(FE, NQ, QSIZE, FEATURES);

	cr_assert(r >= 0, "start sequence: %s", strerror(-r));
	r = vfe_fuse_init(FE, NULL);
	cr_assert(r >= 0, "FUSE_INIT: %s", strerror(-r));
}

/* LOOKUP + OPEN "f", and one READ to show the handle works. */
static struct held hold_file(void)
{
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	uint8_t buf[DATA_SIZE];
	size_t n = 0;
	int r;

	r = vfe_fuse_lookup(FE, FUSE_ROOT_ID, "f", &e);
	cr_assert_eq(r, 0, "LOOKUP f: %s", strerror(-r));
	cr_assert_gt(e.nodeid, FUSE_ROOT_ID);
	r = vfe_fuse_open(FE, e.nodeid, O_RDONLY, false, &oo);
	cr_assert_eq(r, 0, "OPEN f: %s", strerror(-r));
	r = vfe_fuse_read(FE, e.nodeid, oo.fh, 0, buf, sizeof(buf), &n);
	cr_assert_eq(r, 0, "READ f: %s", strerror(-r));
	cr_assert(n == sizeof(buf) && memcmp(buf, DATA, n) == 0, "READ f: wrong data");
	cr_assert(!vfe_backend_log_contains(H->be, RESET_LOG),
		  "the log reports a session reset before any reset happened");
	return (struct held){ .node = e.nodeid, .fh = oo.fh };
}

/* The session survived @what: the same node id and handle still work, no INIT needed. */
static void assert_kept(const struct held *h, const char *what)
{
	struct fuse_attr_out ao;
	struct fuse_entry_out e;
	uint8_t buf[DATA_SIZE];
	size_t n = 0;
	int r;

	r = vfe_fuse_getattr(FE, h->node, &ao);
	cr_assert_eq(r, 0, "after %s: GETATTR of node %llu: %s (the session was dropped)", what,
		     (unsigned long long)h->node, strerror(-r));
	cr_assert_eq(ao.attr.size, DATA_SIZE, "after %s: GETATTR size %llu", what,
		     (unsigned long long)ao.attr.size);
	memset(buf, 0, sizeof(buf));
	r = vfe_fuse_read(FE, h->node, h->fh, 0, buf, sizeof(buf), &n);
	cr_assert_eq(r, 0, "after %s: READ on handle %llu: %s (the handle was dropped)", what,
		     (unsigned long long)h->fh, strerror(-r));
	cr_assert(n == sizeof(buf) && memcmp(buf, DATA, n) == 0, "after %s: READ: wrong data",
		  what);
	/* A reset back-end would hand out a fresh id for the same file. */
	r = vfe_fuse_lookup(FE, FUSE_ROOT_ID, "f", &e);
	cr_assert_eq(r, 0, "after %s: LOOKUP: %s", what, strerror(-r));
	cr_assert_eq(e.nodeid, h->node, "after %s: LOOKUP gives node %llu, was %llu", what,
		     (unsigned long long)e.nodeid, (unsigned long long)h->node);
	cr_assert(!vfe_backend_log_contains(H->be, RESET_LOG), "after %s: the log reports a reset",
		  what);
}

/* The session was reset by @what (and the guest sent INIT again). */
static void assert_reset(const struct held *h, const char *what)
{
	struct fuse_attr_out ao;
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	uint8_t buf[64];
	size_t n = 0;
	int r;

	/* An unknown node id is -ENOENT in the passthrough (get_inode() fails). */
	r = vfe_fuse_getattr(FE, h->node, &ao);
	cr_assert_eq(r, -ENOENT,
		     "after %s: GETATTR of the old node %llu gave %d (%s), want -ENOENT", what,
		     (unsigned long long)h->node, r, strerror(-r));
	r = vfe_fuse_read(FE, h->node, h->fh, 0, buf, sizeof(buf), &n);
	cr_assert_eq(r, -EBADF, "after %s: READ on the old handle %llu gave %d (%s), want -EBADF",
		     what, (unsigned long long)h->fh, r, strerror(-r));
	r = vfe_fuse_lookup(FE, FUSE_ROOT_ID, "f", &e);
	cr_assert_eq(r, 0, "after %s: fresh LOOKUP: %s", what, strerror(-r));
	cr_assert_gt(e.nodeid, h->node,
		     "after %s: LOOKUP gave node %llu, not above the old %llu "
		     "(ids must never be reused)",
		     what, (unsigned long long)e.nodeid, (unsigned long long)h->node);
	r = vfe_fuse_open(FE, e.nodeid, O_RDONLY, false, &oo);
	cr_assert_eq(r, 0, "after %s: OPEN: %s", what, strerror(-r));
	cr_expect_neq(oo.fh, h->fh,
		      "after %s: the old file handle number %llu was handed out again", what,
		      (unsigned long long)h->fh);
	r = vfe_fuse_read(FE, e.nodeid, oo.fh, 0, buf, sizeof(buf), &n);
	cr_assert(r == 0 && n == sizeof(buf) && memcmp(buf, DATA, n) == 0,
		  "after %s: READ through the new handle failed", what);
	cr_expect(vfe_backend_log_contains(H->be, RESET_LOG),
		  "after %s: the log has no '" RESET_LOG "' line", what);
	cr_expect(vfe_backend_log_contains(H->be, "dropping 1 inodes besides the root and 1 open "
						  "handles"),
		  "after %s: the reset line does not count 1 inode and 1 handle", what);
}

/* QEMU's stop (ENABLE 0, GET_VRING_BASE), then @reset, then the guest re-probes. */
static void reset_and_reprobe(int (*reset)(struct vfe *), const char *what)
{
	int r;

	cr_assert_eq(vfe_stop(FE, NULL), 0);
	r = reset(FE);
	cr_assert_eq(r, 0, "%s: %s", what, strerror(-r));
	cr_assert_eq(vfe_sync(FE), 0, "control channel after %s", what);
	vfe_queues_reset(FE);
	start();
}

static int set_status_0(struct vfe *fe)
{
	return vfe_set_status(fe, 0);
}

TestSuite(lifecycle, .init = setup, .fini = teardown, .timeout = 60);

Test(lifecycle, features_for_the_reset_rule)
{
	cr_assert_eq(vfe_init(FE, NQ, VFE_PROTOCOL_MASK), 0);
	cr_assert(FE->acked_protocol & BIT64(VHU_PROTOCOL_F_STATUS), "STATUS not offered");
	cr_assert(FE->acked_protocol & BIT64(VHU_PROTOCOL_F_RESET_DEVICE),
		  "RESET_DEVICE not offered");
	cr_assert(FE->acked_protocol & BIT64(VHU_PROTOCOL_F_LOG_SHMFD), "LOG_SHMFD not offered");
	cr_assert(FE->features & BIT64(VHOST_F_LOG_ALL_BIT), "LOG_ALL not offered");
}

/* ---- what resets the session ---- */

Test(lifecycle, reset_by_second_init)
{
	struct held h;

	start();
	h = hold_file();
	cr_assert_eq(vfe_fuse_init(FE, NULL), 0, "second FUSE_INIT");
	assert_reset(&h, "a second FUSE_INIT");
}

Test(lifecycle, reset_by_set_status_0)
{
	struct held h;

	start();
	h = hold_file();
	reset_and_reprobe(set_status_0, "SET_STATUS 0");
	assert_reset(&h, "SET_STATUS 0");
}

Test(lifecycle, reset_by_reset_device)
{
	struct held h;

	start();
	h = hold_file();
	reset_and_reprobe(vfe_reset_device, "RESET_DEVICE");
	assert_reset(&h, "RESET_DEVICE");
}

Test(lifecycle, reset_device_while_rings_run)
{
	struct held h;

	/* No stop first: the device must stop its rings itself, then drop the session. */
	start();
	h = hold_file();
	FE->ack_all = true; /* wait for it to be applied */
	cr_assert_eq(vfe_reset_device(FE), 0);
	FE->ack_all = false;
	vfe_queues_reset(FE);
	start();
	assert_reset(&h, "RESET_DEVICE on running rings");
}

Test(lifecycle, reset_by_destroy_then_init)
{
	struct held h;

	start();
	h = hold_file();
	cr_assert_eq(vfe_fuse_destroy(FE), 0, "FUSE_DESTROY");
	cr_assert_eq(vfe_fuse_init(FE, NULL), 0, "FUSE_INIT after DESTROY");
	assert_reset(&h, "FUSE_DESTROY + FUSE_INIT");
}

/* ---- what must not ---- */

Test(lifecycle, kept_across_stop_and_restart)
{
	struct held h;
	unsigned bases[NQ];

	start();
	h = hold_file();
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(vfe_stop(FE, bases), 0);
		/* A second GET_VRING_BASE on the stopped ring, as a retrying front-end might. */
		cr_assert_eq(vfe_get_vring_base(FE, 1, NULL), 0);
		cr_assert_eq(vfe_restart(FE), 0);
		assert_kept(&h, "GET_VRING_BASE + restart");
	}
}

Test(lifecycle, kept_across_ring_disable)
{
	struct held h;

	start();
	h = hold_file();
	for (unsigned i = 0; i < NQ; i++)
		cr_assert_eq(vfe_set_vring_enable(FE, i, false), 0);
	for (unsigned i = 0; i < NQ; i++)
		cr_assert_eq(vfe_set_vring_enable(FE, i, true), 0);
	assert_kept(&h, "SET_VRING_ENABLE 0/1");
}

Test(lifecycle, kept_across_reset_owner)
{
	struct held h;

	start();
	h = hold_file();
	cr_assert_eq(vfe_reset_owner(FE), 0, "RESET_OWNER");
	assert_kept(&h, "RESET_OWNER");
}

Test(lifecycle, kept_across_log_all_toggles)
{
	struct held h;
	uint64_t f;

	start();
	h = hold_file();
	f = FE->acked_features;
	/* LOG_ALL alone (QEMU's window before the log arrives), then off. */
	cr_assert_eq(vfe_set_features(FE, f | BIT64(VHOST_F_LOG_ALL_BIT)), 0);
	cr_assert_eq(vfe_sync(FE), 0);
	assert_kept(&h, "SET_FEATURES with LOG_ALL");
	cr_assert_eq(vfe_set_features(FE, f), 0);
	cr_assert_eq(vfe_sync(FE), 0);
	assert_kept(&h, "SET_FEATURES without LOG_ALL");
	/* A whole migration start and cancel: log, LOG_ALL, ring log flags, and off. */
	cr_assert_eq(vfe_set_log_base(FE, vfe_log_size(FE)), 0);
	cr_assert_eq(vfe_set_logging(FE, true), 0);
	assert_kept(&h, "dirty logging on");
	cr_assert_eq(vfe_set_logging(FE, false), 0);
	assert_kept(&h, "dirty logging off");
}

Test(lifecycle, kept_across_nonzero_status)
{
	struct held h;

	start();
	h = hold_file();
	cr_assert_eq(vfe_set_status(FE, 0xf), 0);
	cr_assert_eq(vfe_sync(FE), 0);
	assert_kept(&h, "SET_STATUS 0xf");
}

/* ---- status ---- */

Test(lifecycle, status_roundtrip)
{
	uint8_t st = 0xaa;

	start();
	cr_assert_eq(vfe_get_status(FE, &st), 0);
	cr_assert(st & VIRTIO_STATUS_FEATURES_OK, "status 0x%x after start lacks FEATURES_OK", st);
	cr_assert_eq(vfe_set_status(FE, 0xf), 0);
	cr_assert_eq(vfe_get_status(FE, &st), 0);
	cr_assert_eq(st, 0xf, "GET_STATUS 0x%x after SET_STATUS 0xf", st);
	cr_assert_eq(vfe_set_status(FE, 0x7), 0);
	cr_assert_eq(vfe_get_status(FE, &st), 0);
	cr_assert_eq(st, 0x7, "GET_STATUS 0x%x after SET_STATUS 0x7", st);
	cr_assert_eq(vfe_stop(FE, NULL), 0);
	cr_assert_eq(vfe_reset_device(FE), 0);
	cr_assert_eq(vfe_get_status(FE, &st), 0);
	cr_assert_eq(st, 0, "GET_STATUS 0x%x after RESET_DEVICE", st);
	/* And the device comes back. */
	vfe_queues_reset(FE);
	start();
	cr_assert_eq(vfe_get_status(FE, &st), 0);
	cr_assert(st & VIRTIO_STATUS_FEATURES_OK);
	cr_assert_eq(vfe_fuse_getattr(FE, FUSE_ROOT_ID, NULL), 0);
}

/* ---- the end of the process ---- */

static void assert_exit_0(int st, const char *what)
{
	cr_assert(WIFEXITED(st), "%s: killed by signal %d", what,
		  WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	cr_assert_eq(WEXITSTATUS(st), 0, "%s: exit status %d", what, WEXITSTATUS(st));
}

Test(lifecycle, disconnect_with_open_file_exits_0)
{
	struct held h;
	int st, r;

	start();
	h = hold_file();
	(void)h;
	/* A directory handle too, and a file created and held open for writing. */
	{
		struct fuse_open_out oo;
		struct fuse_entry_out e;

		cr_assert_eq(vfe_fuse_open(FE, FUSE_ROOT_ID, 0, true, &oo), 0);
		cr_assert_eq(
		    vfe_fuse_create(FE, FUSE_ROOT_ID, "w", O_RDWR, S_IFREG | 0644, &e, &oo), 0);
	}
	vfe_free(FE);
	H->fe = FE = NULL;
	r = vfe_backend_wait(H->be, 5000, &st);
	cr_assert_eq(r, 0, "still running 5 s after the front-end disconnected");
	assert_exit_0(st, "disconnect");
	cr_expect(vfe_backend_log_contains(H->be, "disconnected"),
		  "the log does not say the front-end disconnected");
}

Test(lifecycle, sigterm_while_serving_exits_0)
{
	struct fuse_getattr_in gin = { 0 };
	int st, r;

	start();
	(void)hold_file();
	/* Requests published, not awaited: SIGTERM must still drain and exit cleanly. */
	for (int i = 0; i < 8; i++) {
		struct fuse_in_header ih = { .len = sizeof(ih) + sizeof(gin),
					     .opcode = FUSE_GETATTR,
					     .unique = 9000 + (uint64_t)i,
					     .nodeid = FUSE_ROOT_ID };
		uint8_t *in = vfe_alloc(FE, ih.len, 8, NULL);
		uint8_t *out = vfe_alloc(FE, 256, 8, NULL);

		cr_assert(in && out);
		memcpy(in, &ih, sizeof(ih));
		cr_assert_geq(vfe_submit(FE, 1, &(struct vfe_buf){ in, ih.len }, 1,
					 &(struct vfe_buf){ out, 256 }, 1, NULL),
			      0);
	}
	cr_assert_eq(kill(H->be->pid, SIGTERM), 0);
	r = vfe_backend_wait(H->be, 5000, &st);
	cr_assert_eq(r, 0, "still running 5 s after SIGTERM");
	assert_exit_0(st, "SIGTERM");
}

Test(lifecycle, sigterm_on_idle_connection_exits_0)
{
	int st, r;

	/* The harness connected but sent nothing: the daemon is in its message loop. */
	cr_assert_eq(kill(H->be->pid, SIGTERM), 0);
	r = vfe_backend_wait(H->be, 5000, &st);
	cr_assert_eq(r, 0, "still running 5 s after SIGTERM");
	assert_exit_0(st, "SIGTERM on an idle connection");
}
