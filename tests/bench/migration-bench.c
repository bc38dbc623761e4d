/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration-bench: what a live migration of the FUSE session costs the back-end
 * (docs/performance.md, "Migration"). Prints numbers; asserts nothing about speed.
 *
 * For each size N it makes a tree of N files (100 per directory) in a temporary
 * directory (default /var/tmp), then, per run:
 *  - source (a child process): a vfsd_passthrough on the tree, every directory and
 *    file looked up (as after a guest `find`), OPEN of the files to keep open
 *    (default N/10, O_RDONLY, never released); prepare (the work the
 *    dirty-logging hint starts, timed by calling vfsd_fs_prepare() once), then the
 *    hint itself and a pause for its thread; then SAVE: vfsd_migration_save() into
 *    a pipe (pipe2(), default size, as QEMU makes it) drained by a reader thread in
 *    64 KiB reads (as QEMU reads it), timed from the call until the reader sees EOF
 *    after the fd is closed (the end of the stream; "save() returned" is shown too);
 *  - destination (another child, started after the source exited, so each side has
 *    the whole fd limit): a second vfsd_passthrough on the same directory; LOAD:
 *    vfsd_migration_load() from a pipe a writer thread fills with the blob, timed
 *    from the call to its return (when CHECK_DEVICE_STATE could answer), with the
 *    read+validate / re-open+commit split from vfsd_migration_last_stats().
 * Every figure is the median of the runs. The page and dentry caches are warm (the
 * same host serves both sides).
 *
 *   migration-bench [-d DIR] [-r RUNS] [-b FDS] [-k] [N[:OPEN]...]   default: 10000 100000
 *
 * Both sides run with the daemon's fd budget (-b, default half of RLIMIT_NOFILE as
 * vfsd sets it; inode_table.h): directories and open files hold fds, files past the
 * budget are held by name. A size whose directories and open files alone do not fit
 * under RLIMIT_NOFILE is reported as skipped.
 *
 * Build from a fresh clone (after `cmake -B build && cmake --build build`):
 *   cc -O2 -g -Wall -Wextra -Werror -Wshadow -D_GNU_SOURCE -Iinclude \
 *      -o build/migration-bench tests/bench/migration-bench.c \
 *      build/libvfsd_migration.a build/libvfsd_state.a build/libvfsd_fs.a \
 *      build/libvfsd_fuse.a build/libvfsd_io.a build/libvfsd_wire.a build/libvfsd_util.a \
 *      /usr/lib/x86_64-linux-gnu/liburing.a $(pkg-config --libs json-c) -lpthread
 * (or tests/bench/CMakeLists.txt, when tests/CMakeLists.txt adds it).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vfsd/fs_migration.h"
#include "vfsd/inode_table.h"
#include "vfsd/migration.h"
#include "vfsd/passthrough.h"
#include "vfsd/util.h"

#define PER_DIR	 100
#define MAX_RUNS 15

static char root[256];
static const struct vfsd_fs_ops *ops = &vfsd_passthrough_ops;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Minor page faults of the whole process so far: fresh memory, costly in a VM. */
static uint64_t minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_minflt;
}

/* CPU time of the calling thread, user + system: what the work costs without the
 * waits for other tasks on a busy host. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "migration-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static void dir_name(char *buf, size_t size, size_t d)
{
	snprintf(buf, size, "d%04zu", d);
}

static void file_name(char *buf, size_t size, size_t f)
{
	snprintf(buf, size, "file-%07zu", f);
}

/* The tree for @n files; files already there (a larger size made them) are kept. */
static void make_tree(size_t n)
{
	char path[512], dn[32], fname[32];

	for (size_t f = 0; f < n; f++) {
		dir_name(dn, sizeof(dn), f / PER_DIR);
		if (f % PER_DIR == 0) {
			snprintf(path, sizeof(path), "%s/%s", root, dn);
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				die(path, errno);
		}
		file_name(fname, sizeof(fname), f);
		snprintf(path, sizeof(path), "%s/%s/%s", root, dn, fname);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			die(path, errno);
		close(fd);
	}
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return remove(p);
}

/* ---- pipes and the threads at their other ends ---------------------------------------- */

struct membuf {
	char *p;
	size_t len, cap;
};

static void mem_append(struct membuf *m, const void *buf, size_t len)
{
	if (m->len + len > m->cap) {
		m->cap = MAX(m->cap * 2, m->len + len);
		m->p = realloc(m->p, m->cap);
		if (!m->p)
			die("realloc", ENOMEM);
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
}

struct pipe_end {
	int fd;
	struct membuf *buf;
	uint64_t eof_ns; /* reader: when read() gave EOF */
};

/* QEMU's side of a SAVE: read the pipe to EOF. */
static void *reader_main(void *arg)
{
	struct pipe_end *e = arg;
	static char chunk[65536];

	for (;;) {
		ssize_t n = read(e->fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("reading the save pipe", errno);
		if (n == 0) {
			e->eof_ns = now_ns();
			return NULL;
		}
		mem_append(e->buf, chunk, (size_t)n);
	}
}

/* QEMU's side of a LOAD: write the blob, close. */
static void *writer_main(void *arg)
{
	struct pipe_end *e = arg;
	int r = write_full(e->fd, e->buf->p, e->buf->len);

	if (r < 0)
		die("writing the load pipe", -r);
	close(e->fd);
	return NULL;
}

static void read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("reading from a child", n < 0 ? errno : EPIPE);
		p += n;
		len -= (size_t)n;
	}
}

static void write_all(int fd, const void *buf, size_t len)
{
	int r = write_full(fd, buf, len);

	if (r < 0)
		die("writing to the parent", -r);
}

/* ---- one side ---------------------------------------------------------------------------- */

struct side {
	struct vfsd_passthrough *fs;
	struct vfsd_fuse_session s;
	struct vfsd_migration *m;
};

static void side_new(struct side *d)
{
	struct vfsd_passthrough_config pc = { .shared_dir = root,
					      .entry_timeout = 1.0,
					      .attr_timeout = 1.0 };
	int r;

	r = vfsd_passthrough_new(&pc, &d->fs);
	if (r < 0)
		die("vfsd_passthrough_new", -r);
	r = vfsd_fuse_session_init(&d->s, ops, d->fs);
	if (r < 0)
		die("vfsd_fuse_session_init", -r);
	r = vfsd_migration_new(NULL, d->fs, &d->s, &d->m);
	if (r < 0)
		die("vfsd_migration_new", -r);
}

static void side_free(struct side *d)
{
	vfsd_migration_free(d->m);
	vfsd_fuse_session_done(&d->s);
	vfsd_passthrough_free(d->fs);
}

struct src_result {
	uint64_t lookup_ns, open_ns, prepare_ns, prepare_wait_ns, save_ns, save_eof_ns, save_cpu_ns;
	uint64_t inodes, handles, bytes;
};

struct dst_result {
	uint64_t load_ns, load_cpu_ns, read_ns, apply_ns;
	uint64_t load_faults; /* minor page faults of the process during LOAD */
	uint64_t inodes, handles;
	int err;
};

/* The source child: @out gets a struct src_result, the blob length and the blob. */
static void source_main(size_t n, size_t n_open, int out)
{
	struct vfsd_fs_ctx ctx = { 0 };
	struct src_result res = { 0 };
	struct vfsd_migration_stats st;
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	struct membuf blob = { 0 };
	struct side src;
	char dn[32], fname[32];
	uint64_t dnode = 0, t0, every = n_open ? n / n_open : 0;
	size_t opened = 0;
	pthread_t th;
	int p[2], r;

	side_new(&src);
	src.s.initialized = true;
	src.s.conn = (struct vfsd_fuse_conn){ .minor = 38,
					      .flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS,
					      .max_write = 1u << 20,
					      .max_readahead = 131072 };
	uint64_t *nodes = calloc(n ? n : 1, sizeof(*nodes));
	if (!nodes)
		die("calloc", ENOMEM);

	t0 = now_ns();
	for (size_t f = 0; f < n; f++) {
		if (f % PER_DIR == 0) {
			dir_name(dn, sizeof(dn), f / PER_DIR);
			r = ops->lookup(src.fs, &ctx, FUSE_ROOT_ID, dn, &e);
			if (r < 0)
				die("lookup of a directory", -r);
			dnode = e.nodeid;
		}
		file_name(fname, sizeof(fname), f);
		r = ops->lookup(src.fs, &ctx, dnode, fname, &e);
		if (r < 0)
			die("lookup of a file", -r);
		nodes[f] = e.nodeid;
	}
	res.lookup_ns = now_ns() - t0;

	t0 = now_ns();
	for (size_t f = 0; every && f < n && opened < n_open; f += every, opened++) {
		r = ops->open(src.fs, &ctx, nodes[f], O_RDONLY, &oo);
		if (r < 0)
			die("open", -r);
	}
	res.open_ns = now_ns() - t0;
	free(nodes);

	/* The hint's work, timed on its own; then the hint, as QEMU gives it. */
	t0 = now_ns();
	r = vfsd_fs_prepare(src.fs, 0);
	res.prepare_ns = now_ns() - t0;
	if (r < 0)
		die("vfsd_fs_prepare", -r);
	vfsd_migration_logging_changed(src.m, true);
	usleep((useconds_t)MAX(20000u, 3 * res.prepare_ns / 1000));

	/* SAVE: SET_DEVICE_STATE_FD(SAVE) to the end of the stream. */
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe", errno);
	struct pipe_end re = { .fd = p[0], .buf = &blob };
	if (pthread_create(&th, NULL, reader_main, &re) != 0)
		die("pthread_create", EAGAIN);
	uint64_t c0 = cpu_ns();
	t0 = now_ns();
	r = vfsd_migration_save(src.m, p[1]);
	res.save_ns = now_ns() - t0;
	res.save_cpu_ns = cpu_ns() - c0;
	if (r < 0)
		die(vfsd_migration_last_error(src.m), -r);
	close(p[1]); /* as the daemon's transfer thread does */
	pthread_join(th, NULL);
	res.save_eof_ns = re.eof_ns - t0;
	close(p[0]);
	vfsd_migration_last_stats(src.m, &st);
	res.prepare_wait_ns = st.prepare_ns;
	res.inodes = st.inodes;
	res.handles = st.handles;
	res.bytes = blob.len;

	write_all(out, &res, sizeof(res));
	uint64_t len = blob.len;
	write_all(out, &len, sizeof(len));
	write_all(out, blob.p, blob.len);
	/* What a source does after a successful migration: exits (no teardown timed). */
	side_free(&src);
	free(blob.p);
}

/* The destination child: @in gives the blob, @out gets a struct dst_result. */
static void dest_main(int in, int out)
{
	struct dst_result res = { 0 };
	struct vfsd_migration_stats st;
	struct membuf blob = { 0 };
	struct side dst;
	uint64_t len, t0;
	pthread_t th;
	int p[2];

	read_all(in, &len, sizeof(len));
	blob.p = malloc(len ? len : 1);
	if (!blob.p)
		die("malloc", ENOMEM);
	blob.len = blob.cap = len;
	read_all(in, blob.p, len);

	side_new(&dst);
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe", errno);
	struct pipe_end we = { .fd = p[1], .buf = &blob };
	if (pthread_create(&th, NULL, writer_main, &we) != 0)
		die("pthread_create", EAGAIN);
	/* LOAD: SET_DEVICE_STATE_FD(LOAD) until CHECK_DEVICE_STATE could answer. */
	uint64_t c0 = cpu_ns(), f0 = minor_faults();
	t0 = now_ns();
	res.err = vfsd_migration_load(dst.m, p[0]);
	res.load_ns = now_ns() - t0;
	res.load_cpu_ns = cpu_ns() - c0;
	res.load_faults = minor_faults() - f0;
	pthread_join(th, NULL);
	close(p[0]);
	if (res.err < 0)
		fprintf(stderr, "migration-bench: load: %s\n", vfsd_migration_last_error(dst.m));
	vfsd_migration_last_stats(dst.m, &st);
	res.read_ns = st.collect_ns;
	res.apply_ns = st.apply_ns;
	res.inodes = st.inodes;
	res.handles = st.handles;
	write_all(out, &res, sizeof(res));
	side_free(&dst);
	free(blob.p);
}

/* Fork a child that keeps only fds 0-2 and @keep (renumbered 3 and 4). */
static pid_t child(int keep0, int keep1)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork", errno);
	if (pid > 0)
		return pid;
	if (dup2(keep0, 3) < 0 || (keep1 >= 0 && dup2(keep1, 4) < 0))
		die("dup2", errno);
	close_range(keep1 >= 0 ? 5 : 4, ~0u, 0);
	return 0;
}

static void reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "migration-bench: a child failed\n");
		exit(1);
	}
}

struct run {
	struct src_result s;
	struct dst_result d;
};

static void one_run(size_t n, size_t n_open, struct run *ret)
{
	int sp[2], dp_in[2], dp_out[2];
	struct membuf blob = { 0 };
	uint64_t len;
	pid_t pid;

	if (pipe2(sp, O_CLOEXEC) < 0)
		die("pipe", errno);
	pid = child(sp[1], -1);
	if (pid == 0) {
		source_main(n, n_open, 3);
		_exit(0);
	}
	close(sp[1]);
	read_all(sp[0], &ret->s, sizeof(ret->s));
	read_all(sp[0], &len, sizeof(len));
	blob.p = malloc(len ? len : 1);
	if (!blob.p)
		die("malloc", ENOMEM);
	blob.len = len;
	read_all(sp[0], blob.p, len);
	close(sp[0]);
	reap(pid);

	if (pipe2(dp_in, O_CLOEXEC) < 0 || pipe2(dp_out, O_CLOEXEC) < 0)
		die("pipe", errno);
	pid = child(dp_in[0], dp_out[1]);
	if (pid == 0) {
		dest_main(3, 4);
		_exit(0);
	}
	close(dp_in[0]);
	close(dp_out[1]);
	write_all(dp_in[1], &len, sizeof(len));
	write_all(dp_in[1], blob.p, blob.len);
	close(dp_in[1]);
	read_all(dp_out[0], &ret->d, sizeof(ret->d));
	close(dp_out[0]);
	reap(pid);
	free(blob.p);
	if (ret->d.err < 0)
		die("load", -ret->d.err);
	if (ret->d.inodes != ret->s.inodes || ret->d.handles != ret->s.handles) {
		fprintf(stderr,
			"migration-bench: loaded %" PRIu64 "/%" PRIu64 " of %" PRIu64 "/%" PRIu64
			"\n",
			ret->d.inodes, ret->d.handles, ret->s.inodes, ret->s.handles);
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median over @runs of the uint64_t at @off in struct run. */
static double median_ms(const struct run *runs, int nr, size_t off)
{
	uint64_t v[MAX_RUNS];

	for (int k = 0; k < nr; k++)
		memcpy(&v[k], (const char *)&runs[k] + off, sizeof(uint64_t));
	qsort(v, (size_t)nr, sizeof(v[0]), cmp_u64);
	return (nr % 2 ? (double)v[nr / 2] : (v[nr / 2 - 1] + v[nr / 2]) / 2.0) / 1e6;
}

#define MED(field) median_ms(runs, nr, offsetof(struct run, field))

static void print_load(const char *when)
{
	double l[3];

	if (getloadavg(l, 3) == 3)
		printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(int argc, char **argv)
{
	const char *base = "/var/tmp";
	size_t sizes[16], opens[16], n_sizes = 0, max_n = 0;
	struct run runs[MAX_RUNS];
	struct rlimit rl;
	struct utsname u;
	struct sw {
		size_t n;
		double save, load, save_cpu, load_cpu;
	} sw[16];
	size_t n_sw = 0, n_notes = 0;
	char notes[16][160];
	bool keep = false, budget_set = false;
	size_t budget = 0;
	int nr = 3, opt;

	while ((opt = getopt(argc, argv, "d:r:b:k")) != -1) {
		switch (opt) {
		case 'd':
			base = optarg;
			break;
		case 'b':
			budget = strtoul(optarg, NULL, 10);
			budget_set = true;
			break;
		case 'r':
			nr = atoi(optarg);
			break;
		case 'k':
			keep = true;
			break;
		default:
			fprintf(stderr, "usage: migration-bench [-d DIR] [-r RUNS] [-b FDS] [-k] "
					"[N[:OPEN]...]\n");
			return 2;
		}
	}
	if (nr < 1 || nr > MAX_RUNS) {
		fprintf(stderr, "migration-bench: 1 to %d runs\n", MAX_RUNS);
		return 2;
	}
	for (int k = optind; k < argc && n_sizes < ARRAY_SIZE(sizes); k++) {
		char *end;

		sizes[n_sizes] = strtoul(argv[k], &end, 10);
		opens[n_sizes] = *end == ':' ? strtoul(end + 1, NULL, 10) : sizes[n_sizes] / 10;
		if (sizes[n_sizes] == 0 || opens[n_sizes] > sizes[n_sizes]) {
			fprintf(stderr, "migration-bench: bad size '%s'\n", argv[k]);
			return 2;
		}
		n_sizes++;
	}
	if (n_sizes == 0) {
		sizes[0] = 10000, opens[0] = 1000;
		sizes[1] = 100000, opens[1] = 10000;
		n_sizes = 2;
	}

	vfsd_log_level = VFSD_LOG_WARN;
	signal(SIGPIPE, SIG_IGN);
	/* Take the whole limit and give files half of it, as the daemon does. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	(void)getrlimit(RLIMIT_NOFILE, &rl);
	if (!budget_set && rl.rlim_cur != RLIM_INFINITY)
		budget = (size_t)(rl.rlim_cur / 2);
	vfsd_inode_fd_budget_set(budget); /* the children inherit it */

	snprintf(root, sizeof(root), "%s/migration-bench-XXXXXX", base);
	if (!mkdtemp(root))
		die(root, errno);
	for (size_t k = 0; k < n_sizes; k++)
		max_n = MAX(max_n, sizes[k]);

	uname(&u);
	printf("migration-bench: %s %s, %ld CPUs, RLIMIT_NOFILE %llu, inode fd budget %zu, tree "
	       "in %s, median of %d runs\n",
	       u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), (unsigned long long)rl.rlim_cur,
	       budget, root, nr);
	print_load("at start");
	uint64_t t0 = now_ns();
	make_tree(max_n);
	printf("tree of %zu files in %zu directories made in %.1f s\n\n", max_n,
	       (max_n + PER_DIR - 1) / PER_DIR, (now_ns() - t0) / 1e9);

	printf("| files | open | inodes in blob | blob bytes | bytes/inode | prepare (hint) ms | "
	       "SAVE ms | save() returned ms | SAVE CPU ms | LOAD ms | read+validate ms | "
	       "re-open+commit ms | LOAD CPU ms |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t k = 0; k < n_sizes; k++) {
		size_t n = sizes[k], files = budget ? MIN(n, budget) : n;
		size_t need = files + n / PER_DIR + opens[k] + 64;

		if (need > rl.rlim_cur) {
			printf("| %zu | %zu | skipped: one side needs about %zu fds, RLIMIT_NOFILE "
			       "is %llu | | | | | | | | | | |\n",
			       n, opens[k], need, (unsigned long long)rl.rlim_cur);
			fflush(stdout);
			continue;
		}
		for (int j = 0; j < nr; j++)
			one_run(n, opens[k], &runs[j]);
		printf("| %zu | %" PRIu64 " | %" PRIu64 " | %" PRIu64
		       " | %.1f | %.1f | %.1f | %.1f | "
		       "%.1f | %.1f | %.1f | %.1f | %.1f |\n",
		       n, runs[0].s.handles, runs[0].s.inodes, runs[0].s.bytes,
		       (double)runs[0].s.bytes / (double)runs[0].s.inodes, MED(s.prepare_ns),
		       MED(s.save_eof_ns), MED(s.save_ns), MED(s.save_cpu_ns), MED(d.load_ns),
		       MED(d.read_ns), MED(d.apply_ns), MED(d.load_cpu_ns));
		fflush(stdout);
		snprintf(
		    notes[n_notes++], sizeof(notes[0]),
		    "%zu files: lookups %.1f ms, opens %.1f ms; the save waited %.2f ms for the "
		    "prepare thread; LOAD took %.0f page faults",
		    n, MED(s.lookup_ns), MED(s.open_ns), MED(s.prepare_wait_ns),
		    MED(d.load_faults) * 1e6);
		if (opens[k] == 1000)
			sw[n_sw++] = (struct sw){ n, MED(s.save_eof_ns), MED(d.load_ns),
						  MED(s.save_cpu_ns), MED(d.load_cpu_ns) };
	}
	printf("\n");
	for (size_t k = 0; k < n_notes; k++)
		printf("%s (medians)\n", notes[k]);
	for (size_t k = 0; k < n_sw; k++)
		printf("back-end's share of the switch-over, %zu files looked up, 1000 open: "
		       "SAVE %.1f ms (source) + LOAD %.1f ms (destination) = %.1f ms wall; "
		       "CPU %.1f + %.1f = %.1f ms\n",
		       sw[k].n, sw[k].save, sw[k].load, sw[k].save + sw[k].load, sw[k].save_cpu,
		       sw[k].load_cpu, sw[k].save_cpu + sw[k].load_cpu);
	print_load("at end");
	if (!keep)
		nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("tree kept in %s\n", root);
	return 0;
}
