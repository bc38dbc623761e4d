/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Spawning, watching and killing a back-end process for tests.
 */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "vfe.h"
#include "vfsd/util.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A path as the back-end sees it when it runs chrooted at @root. */
static const char *strip_root(const char *path, const char *root)
{
	size_t n;

	if (!root || !*root)
		return path;
	n = strlen(root);
	while (n > 0 && root[n - 1] == '/')
		n--;
	if (strncmp(path, root, n) == 0 && path[n] == '/')
		return path + n;
	return path;
}

static int reap(struct vfe_backend *be, bool block)
{
	int st;
	pid_t r;

	if (be->reaped)
		return 0;
	do
		r = waitpid(be->pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -EAGAIN;
	be->reaped = true;
	be->status = st;
	return 0;
}

int vfe_backend_spawn(const struct vfe_spawn_opts *opts, struct vfe_backend **ret)
{
	struct vfe_backend *be;
	_cleanup_close_ int log_fd = -EBADF, child_fd = -EBADF;
	char sockopt[160], tmpl[] = "/tmp/vfe-XXXXXX";
	const char *tmp_base;
	const char **argv = NULL;
	size_t n = 0, i, nextra = 0;
	int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : VFE_DEFAULT_TIMEOUT_MS;
	int r;

	if (!opts->argv || !opts->argv[0])
		return -EINVAL;
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->pid = -1;
	be->conn_fd = -EBADF;

	/* The temp dir must be visible to a chrooted back-end: put it under its root. */
	tmp_base = opts->path_root && *opts->path_root ? opts->path_root : NULL;
	if (tmp_base) {
		r = snprintf(be->tmpdir, sizeof(be->tmpdir), "%s/tmp/vfe-XXXXXX", tmp_base);
		if (r < 0 || (size_t)r >= sizeof(be->tmpdir)) {
			r = -ENAMETOOLONG;
			goto fail;
		}
	} else {
		memcpy(be->tmpdir, tmpl, sizeof(tmpl));
	}
	if (!mkdtemp(be->tmpdir)) {
		r = -errno;
		be->tmpdir[0] = 0;
		goto fail;
	}

	if (opts->log_path)
		snprintf(be->log_path, sizeof(be->log_path), "%s", opts->log_path);
	else
		snprintf(be->log_path, sizeof(be->log_path), "%s/backend.log", be->tmpdir);
	log_fd = open(be->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		r = -errno;
		goto fail;
	}

	switch (opts->mode) {
	case VFE_SOCKET_PATH:
		if (opts->socket_path)
			r = snprintf(be->socket_path, sizeof(be->socket_path), "%s",
				     opts->socket_path);
		else
			r = snprintf(be->socket_path, sizeof(be->socket_path), "%s/vhost.sock",
				     be->tmpdir);
		if (r < 0 || (size_t)r >= sizeof(be->socket_path)) {
			r = -ENAMETOOLONG;
			goto fail;
		}
		snprintf(sockopt, sizeof(sockopt), "--socket-path=%s",
			 strip_root(be->socket_path, opts->path_root));
		break;
	case VFE_SOCKET_FD_LISTEN: {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		r = snprintf(be->socket_path, sizeof(be->socket_path), "%s/vhost.sock", be->tmpdir);
		if (r < 0 || (size_t)r >= sizeof(be->socket_path)) {
			r = -ENAMETOOLONG;
			goto fail;
		}
		memcpy(sa.sun_path, be->socket_path, sizeof(sa.sun_path));
		child_fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (child_fd < 0 || bind(child_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(child_fd, 1) < 0) {
			r = -errno;
			goto fail;
		}
		snprintf(sockopt, sizeof(sockopt), "--fd=%d", child_fd);
		break;
	}
	case VFE_SOCKET_FD_CONN: {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			r = -errno;
			goto fail;
		}
		be->conn_fd = sv[0];
		child_fd = sv[1];
		/* The child's end must survive exec. */
		fcntl(child_fd, F_SETFD, 0);
		snprintf(sockopt, sizeof(sockopt), "--fd=%d", child_fd);
		break;
	}
	default:
		r = -EINVAL;
		goto fail;
	}

	while (opts->argv[n])
		n++;
	while (opts->extra && opts->extra[nextra])
		nextra++;
	argv = calloc(n + nextra + 2, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++)
		argv[i] = opts->argv[i];
	argv[n] = sockopt;
	for (i = 0; i < nextra; i++)
		argv[n + 1 + i] = opts->extra[i];

	be->pid = fork();
	if (be->pid < 0) {
		r = -errno;
		goto fail;
	}
	if (be->pid == 0) {
		sigset_t none;

		/* Never outlive a test process that died on a failed assertion. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		execvp(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "vfe: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(argv);
	argv = NULL;

	if (opts->mode == VFE_SOCKET_FD_CONN) {
		*ret = be;
		return 0;
	}
	if (opts->mode == VFE_SOCKET_FD_LISTEN) {
		/* Our copy of the listening socket: connect() through the path still works. */
		*ret = be;
		return 0;
	}
	/* Wait for the socket file; connecting here would use up the back-end's one accept. */
	for (int64_t end = now_ms() + timeout;;) {
		struct stat st;

		if (stat(be->socket_path, &st) == 0 && S_ISSOCK(st.st_mode))
			break;
		if (reap(be, false) == 0) {
			r = -ECHILD;
			goto fail;
		}
		if (now_ms() > end) {
			r = -ETIMEDOUT;
			goto fail;
		}
		sleep_ms(5);
	}
	*ret = be;
	return 0;
fail:
	free(argv);
	vfe_backend_free(be);
	return r;
}

int vfe_backend_wait(struct vfe_backend *be, int timeout_ms, int *status)
{
	int64_t end = now_ms() + timeout_ms;
	int r;

	for (;;) {
		r = reap(be, timeout_ms < 0);
		if (r == 0)
			break;
		if (r != -EAGAIN)
			return r;
		if (now_ms() >= end)
			return -ETIMEDOUT;
		sleep_ms(5);
	}
	if (status)
		*status = be->status;
	return 0;
}

int vfe_backend_kill(struct vfe_backend *be, int timeout_ms, int *status)
{
	int r;

	if (!be->reaped) {
		be->killed = true;
		kill(be->pid, SIGTERM);
		r = vfe_backend_wait(be, timeout_ms, status);
		if (r != -ETIMEDOUT)
			return r;
		kill(be->pid, SIGKILL);
	}
	return vfe_backend_wait(be, -1, status);
}

bool vfe_backend_alive(struct vfe_backend *be)
{
	return reap(be, false) == -EAGAIN;
}

bool vfe_backend_crashed(struct vfe_backend *be)
{
	if (vfe_backend_alive(be))
		return false;
	return WIFSIGNALED(be->status) && !be->killed;
}

int vfe_backend_log(struct vfe_backend *be, char **ret)
{
	_cleanup_close_ int fd = open(be->log_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	n = read_full(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	buf[n] = 0;
	*ret = buf;
	return 0;
}

bool vfe_backend_log_contains(struct vfe_backend *be, const char *needle)
{
	_cleanup_free_ char *log = NULL;

	if (vfe_backend_log(be, &log) < 0)
		return false;
	return strstr(log, needle) != NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void vfe_backend_free(struct vfe_backend *be)
{
	if (!be)
		return;
	if (be->pid > 0 && !be->reaped)
		vfe_backend_kill(be, 2000, NULL);
	safe_close(be->conn_fd);
	if (be->tmpdir[0])
		nftw(be->tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(be);
}
