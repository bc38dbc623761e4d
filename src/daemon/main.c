/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfsd: the daemon. Parses the command line, creates or inherits the
 * vhost-user socket, opens the shared directory, and serves one front-end
 * connection until it goes away (then exits 0, as virtiofsd does: libvirt and
 * QEMU start a new back-end for a new connection).
 */
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "vfsd/chain_io.h"
#include "vfsd/fuse.h"
#include "vfsd/io.h"
#include "vfsd/migration.h"
#include "vfsd/inode_table.h"
#include "vfsd/passthrough.h"
#include "vfsd/util.h"
#include "vfsd/vhost.h"

struct config {
	const char *socket_path;
	int fd;
	const char *shared_dir;
	unsigned int request_queues;
	bool io_uring;
	bool print_capabilities;
	bool inode_fds_set;
	unsigned long inode_fds; /* 0: no budget */
	struct vfsd_migration_config mig;
};

struct daemon {
	struct vfsd_fuse_session session;
	struct vfsd_passthrough *fs;
	struct vfsd_migration *mig;
	bool io_uring;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vfsd --socket-path=PATH --shared-dir=DIR [OPTION]...\n"
		"       vfsd --fd=N --shared-dir=DIR [OPTION]...\n"
		"\n"
		"Serve DIR to a virtual machine as a virtio-fs device over the vhost-user\n"
		"protocol (QEMU: -device vhost-user-fs-pci,chardev=...,tag=...).\n"
		"\n"
		"  --socket-path=PATH        listen on a new UNIX socket at PATH\n"
		"  --fd=N                    use inherited socket N (listening or connected)\n"
		"  --shared-dir=DIR          the directory the guest sees\n"
		"  --request-queues=N        request queues we accept (default %u, max %u)\n"
		"  --no-io-uring             do file I/O with plain syscalls\n"
		"  --inode-fds=N             O_PATH fds files may hold (default: half of\n"
		"                            RLIMIT_NOFILE; 0: no limit); past it a file the\n"
		"                            guest looked up is held by its name\n"
		"  --log-level=LEVEL         error, warn, info (default), debug, trace or off\n"
		"  --migration-mode=MODE     how the source describes inodes to the destination:\n"
		"                            find-paths (default: parent + name, paths) or\n"
		"                            file-handles (needs CAP_DAC_READ_SEARCH there)\n"
		"  --migration-on-error=WHAT what the destination does with an inode or handle it\n"
		"                            cannot find again: abort (default: the migration\n"
		"                            fails) or guest-error (the guest gets EIO on it)\n"
		"  --migration-verify-handles\n"
		"                            find-paths: add file handles to the state so the\n"
		"                            destination checks each inode is the same file\n"
		"  --migration-confirm-paths re-check every name while saving (slower downtime)\n"
		"  --print-capabilities      print the vhost-user back-end capabilities (JSON)\n"
		"  -h, --help                show this help\n"
		"  -V, --version             show the version\n",
		VFSD_MAX_REQUEST_QUEUES, VFSD_MAX_REQUEST_QUEUES);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct config *c)
{
	enum {
		OPT_SOCKET = 256,
		OPT_FD,
		OPT_SHARED,
		OPT_LOG,
		OPT_CAPS,
		OPT_QUEUES,
		OPT_NOURING,
		OPT_MIG_MODE,
		OPT_MIG_ON_ERROR,
		OPT_MIG_VERIFY,
		OPT_MIG_CONFIRM,
		OPT_INODE_FDS,
	};
	static const struct option opts[] = {
		{ "socket-path", required_argument, NULL, OPT_SOCKET },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "shared-dir", required_argument, NULL, OPT_SHARED },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "print-capabilities", no_argument, NULL, OPT_CAPS },
		{ "request-queues", required_argument, NULL, OPT_QUEUES },
		{ "no-io-uring", no_argument, NULL, OPT_NOURING },
		{ "migration-mode", required_argument, NULL, OPT_MIG_MODE },
		{ "migration-on-error", required_argument, NULL, OPT_MIG_ON_ERROR },
		{ "migration-verify-handles", no_argument, NULL, OPT_MIG_VERIFY },
		{ "migration-confirm-paths", no_argument, NULL, OPT_MIG_CONFIRM },
		{ "inode-fds", required_argument, NULL, OPT_INODE_FDS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	unsigned long v;
	int o;

	while ((o = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_SOCKET:
			c->socket_path = optarg;
			break;
		case OPT_FD:
			if (parse_uint(optarg, INT_MAX, &v) < 0) {
				fprintf(stderr, "vfsd: --fd: not a file descriptor number: %s\n",
					optarg);
				return -EINVAL;
			}
			c->fd = (int)v;
			break;
		case OPT_SHARED:
			c->shared_dir = optarg;
			break;
		case OPT_LOG:
			if (vfsd_log_level_parse(optarg, &vfsd_log_level) < 0) {
				fprintf(stderr, "vfsd: --log-level: unknown level '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_CAPS:
			c->print_capabilities = true;
			break;
		case OPT_QUEUES:
			if (parse_uint(optarg, VFSD_MAX_REQUEST_QUEUES, &v) < 0 || v == 0) {
				fprintf(stderr, "vfsd: --request-queues: expected 1..%u\n",
					VFSD_MAX_REQUEST_QUEUES);
				return -EINVAL;
			}
			c->request_queues = (unsigned int)v;
			break;
		case OPT_NOURING:
			c->io_uring = false;
			break;
		case OPT_INODE_FDS:
			if (parse_uint(optarg, ULONG_MAX, &v) < 0) {
				fprintf(stderr, "vfsd: --inode-fds: not a number: %s\n", optarg);
				return -EINVAL;
			}
			c->inode_fds = v;
			c->inode_fds_set = true;
			break;
		case OPT_MIG_MODE:
			if (strcmp(optarg, "find-paths") == 0) {
				c->mig.mode = VFSD_STATE_MODE_FIND_PATHS;
			} else if (strcmp(optarg, "file-handles") == 0) {
				c->mig.mode = VFSD_STATE_MODE_FILE_HANDLES;
			} else {
				fprintf(stderr,
					"vfsd: --migration-mode: expected find-paths or "
					"file-handles, not '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_MIG_ON_ERROR:
			if (strcmp(optarg, "abort") == 0) {
				c->mig.on_error_guest_error = false;
			} else if (strcmp(optarg, "guest-error") == 0) {
				c->mig.on_error_guest_error = true;
			} else {
				fprintf(stderr,
					"vfsd: --migration-on-error: expected abort or "
					"guest-error, not '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_MIG_VERIFY:
			c->mig.verify_handles = true;
			break;
		case OPT_MIG_CONFIRM:
			c->mig.confirm_paths = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_SUCCESS);
		case 'V':
			printf("vfsd %s\n", VFSD_VERSION);
			exit(EXIT_SUCCESS);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfsd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (c->print_capabilities)
		return 0;
	if (!c->socket_path == (c->fd < 0)) {
		fprintf(stderr, "vfsd: give exactly one of --socket-path and --fd (see --help)\n");
		return -EINVAL;
	}
	if (!c->shared_dir) {
		fprintf(stderr, "vfsd: --shared-dir is required (see --help)\n");
		return -EINVAL;
	}
	if (c->mig.verify_handles && c->mig.mode == VFSD_STATE_MODE_FILE_HANDLES)
		fprintf(stderr, "vfsd: --migration-verify-handles has no effect with "
				"--migration-mode=file-handles\n");
	return 0;
}

/* The vhost-user back-end description, docs/interop/vhost-user.json. */
static void print_capabilities(void)
{
	printf("{\n  \"type\": \"fs\",\n  \"features\": [\n    \"migrate-precopy\",\n    "
	       "\"separate-options\"\n  ]\n}\n");
}

/* ---- the glue between the vhost device and the FUSE session ---- */

static int backend_thread_start(void *opaque, unsigned int qidx, void **ret)
{
	struct daemon *dm = opaque;
	struct vfsd_io *io = NULL;
	int r;

	/* The ring belongs to the thread that submits to it: create it here. */
	r = vfsd_io_new(64, dm->io_uring, &io);
	if (r < 0)
		return r;
	log_debug("queue %u: file I/O through %s", qidx,
		  vfsd_io_uses_uring(io) ? "io_uring" : "plain syscalls");
	*ret = io;
	return 0;
}

static void backend_thread_stop(void *opaque, unsigned int qidx, void *tdata)
{
	vfsd_io_free(tdata);
}

static int backend_handle(void *opaque, unsigned int qidx, void *tdata, struct vfsd_chain *chain)
{
	struct daemon *dm = opaque;
	struct vfsd_reader r;
	struct vfsd_writer w;
	int ret;

	if (vfsd_reader_init(&r, chain->out, chain->n_out) < 0 ||
	    vfsd_writer_init(&w, chain->in, chain->n_in) < 0) {
		log_warn("queue %u: request buffers overflow a size_t", qidx);
		return -EINVAL;
	}
	ret = vfsd_fuse_handle(&dm->session, &r, &w, tdata);
	if (ret < 0)
		log_warn("queue %u: request could not be answered: %s", qidx, strerror(-ret));
	return ret;
}

/* Every session reset says what went: that state is lost for good. */
static void session_on_reset(void *arg, const char *why)
{
	struct daemon *dm = arg;
	size_t inodes, handles;

	vfsd_passthrough_counts(dm->fs, &inodes, &handles);
	log_info("%s: resetting the FUSE session (dropping %zu inodes besides the root and %zu "
		 "open handles)",
		 why, inodes > 0 ? inodes - 1 : 0, handles);
}

/* SET_STATUS 0 and RESET_DEVICE: a device reset drops the FUSE session. */
static void backend_reset(void *opaque, const char *why)
{
	struct daemon *dm = opaque;

	vfsd_fuse_session_reset(&dm->session, why);
}

/* Dirty logging on: a migration is starting (prepare now); off: cancelled. */
static void backend_logging_changed(void *opaque, bool on)
{
	struct daemon *dm = opaque;

	vfsd_migration_logging_changed(dm->mig, on);
}

/* SAVE: every queue is stopped; serialise, change nothing. */
static int backend_save_state(void *opaque, int fd)
{
	struct daemon *dm = opaque;

	return vfsd_migration_save(dm->mig, fd);
}

/* LOAD: before the rings start; validate all, re-open all, then replace the session. */
static int backend_load_state(void *opaque, int fd)
{
	struct daemon *dm = opaque;

	return vfsd_migration_load(dm->mig, fd);
}

static const struct vfsd_vhost_backend_ops backend_ops = {
	.thread_start = backend_thread_start,
	.thread_stop = backend_thread_stop,
	.handle = backend_handle,
	.reset = backend_reset,
	.logging_changed = backend_logging_changed,
	.save_state = backend_save_state,
	.load_state = backend_load_state,
};

/* ---- socket setup ---- */

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	/* A stale socket from an earlier run would make bind fail: remove sockets only. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		log_error("cannot bind %s: %s", path, strerror(-e));
		return e;
	}
	if (listen(fd, 1) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* Wait for the front-end; SIGTERM/SIGINT while waiting ends the daemon. */
static int accept_conn(int lfd, int sfd)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN },
					 { .fd = sfd, .events = POLLIN } };
		int c;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[1].revents & POLLIN)
			return -EINTR;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			return c;
		if (errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
}

/*
 * Take all the fds we are allowed, and give files half of them as O_PATH
 * fds: the other half is for the guest's open files, directories (which
 * always hold one) and our own.
 */
static void raise_nofile(const struct config *c)
{
	struct rlimit rl;
	size_t budget = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				log_warn("cannot raise RLIMIT_NOFILE: %m");
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY)
			budget = (size_t)(rl.rlim_cur / 2);
	}
	if (c->inode_fds_set)
		budget = (size_t)c->inode_fds;
	vfsd_inode_fd_budget_set(budget);
	if (budget)
		log_info("files hold up to %zu O_PATH fds, then their names", budget);
	else
		log_info("files hold an O_PATH fd each, without limit");
}

int main(int argc, char **argv)
{
	struct config cfg = { .fd = -1,
			      .request_queues = VFSD_MAX_REQUEST_QUEUES,
			      .io_uring = true };
	struct vfsd_passthrough_config pcfg = { .entry_timeout = 1.0, .attr_timeout = 1.0 };
	struct vfsd_passthrough *fs = NULL;
	struct vfsd_vhost_dev *dev = NULL;
	_cleanup_close_ int sfd = -EBADF, lfd = -EBADF, conn = -EBADF;
	struct daemon dm = { 0 };
	sigset_t mask;
	int r, opt = 0;
	socklen_t len = sizeof(opt);

	if (parse_args(argc, argv, &cfg) < 0)
		return 2;
	if (cfg.print_capabilities) {
		print_capabilities();
		return 0;
	}

	/* The state pipe and the socket must never kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %m");
		return 1;
	}

	if (cfg.socket_path) {
		lfd = listen_on(cfg.socket_path);
		if (lfd < 0)
			return 1;
	} else if (getsockopt(cfg.fd, SOL_SOCKET, SO_ACCEPTCONN, &opt, &len) < 0) {
		log_error("--fd=%d is not a socket: %m", cfg.fd);
		return 1;
	} else if (opt) {
		lfd = cfg.fd; /* libvirt passes a listening socket */
	} else {
		conn = cfg.fd; /* the spec's wording: an already connected one */
	}

	raise_nofile(&cfg);
	pcfg.shared_dir = cfg.shared_dir;
	r = vfsd_passthrough_new(&pcfg, &fs);
	if (r < 0) {
		log_error("cannot serve %s: %s", cfg.shared_dir, strerror(-r));
		goto out;
	}
	dm.io_uring = cfg.io_uring;
	dm.fs = fs;
	r = vfsd_fuse_session_init(&dm.session, &vfsd_passthrough_ops, fs);
	if (r < 0)
		goto out;
	dm.session.on_reset = session_on_reset;
	dm.session.on_reset_arg = &dm;
	r = vfsd_migration_new(&cfg.mig, fs, &dm.session, &dm.mig);
	if (r < 0) {
		log_error("cannot set up migration: %s", strerror(-r));
		goto out_session;
	}
	r = vfsd_vhost_new(&backend_ops, &dm, 1 + cfg.request_queues, &dev);
	if (r < 0) {
		log_error("cannot create the device: %s", strerror(-r));
		goto out_session;
	}

	log_info("vfsd %s serving %s on %s", VFSD_VERSION, cfg.shared_dir,
		 cfg.socket_path ? cfg.socket_path : "an inherited socket");
	if (conn < 0) {
		conn = accept_conn(lfd, sfd);
		if (conn == -EINTR) {
			log_info("stopping before a front-end connected");
			r = 0;
			goto out_dev;
		}
		if (conn < 0) {
			r = conn;
			log_error("accept: %s", strerror(-r));
			goto out_dev;
		}
	}
	/* One connection per process: no one else may connect while we serve. */
	if (lfd >= 0 && cfg.socket_path)
		unlink(cfg.socket_path);
	lfd = safe_close(lfd);

	r = vfsd_vhost_serve(dev, conn, sfd);
	if (r < 0)
		log_error("closing the connection after a protocol error: %s", strerror(-r));

out_dev:
	vfsd_vhost_free(dev);
out_session:
	vfsd_migration_free(dm.mig);
	vfsd_fuse_session_done(&dm.session);
out:
	vfsd_passthrough_free(fs);
	if (lfd >= 0 && cfg.socket_path)
		unlink(cfg.socket_path);
	return r < 0 ? 1 : 0;
}
