/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * syscall-bench: the plain-syscall baseline for tests/bench/run-bench.sh. The same
 * loops vfsd-fe's bench-read, bench-write and bench-meta drive through a back-end,
 * done directly on the host: what a program on the host would pay for the same
 * work. Output lines have the same shape as vfsd-fe's.
 *
 *   syscall-bench read FILE BSIZE SECONDS            pread FILE sequentially, wrapping
 *   syscall-bench write FILE BSIZE FILESIZE SECONDS  create FILE, pwrite it, wrapping
 *   syscall-bench meta DIR NFILES SECONDS            stat of NFILES names; create+close+unlink
 *
 * Build: cc -O2 -o syscall-bench syscall-bench.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "syscall-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int usage(void)
{
	fprintf(stderr, "usage: syscall-bench read FILE BSIZE SECONDS\n"
			"       syscall-bench write FILE BSIZE FILESIZE SECONDS\n"
			"       syscall-bench meta DIR NFILES SECONDS\n");
	return 2;
}

static int bench_io(const char *path, bool write, uint64_t bsize, uint64_t fsize, double secs)
{
	int fd = write ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
		       : open(path, O_RDONLY | O_CLOEXEC);
	uint64_t ops = 0, bytes = 0, span;
	char *buf;
	double t0, stop, dt;
	struct stat st;

	if (fd < 0)
		die(path);
	if (!write) {
		if (fstat(fd, &st) < 0)
			die("fstat");
		fsize = (uint64_t)st.st_size;
	}
	span = fsize >= bsize ? fsize / bsize * bsize : 0;
	if (posix_memalign((void **)&buf, 4096, bsize))
		die("posix_memalign");
	memset(buf, 0x5a, bsize);
	t0 = now_s();
	stop = t0 + secs;
	for (uint64_t i = 0; i == 0 || now_s() < stop; i++) {
		off_t off = (off_t)(span ? (i * bsize) % span : 0);
		ssize_t n = write ? pwrite(fd, buf, bsize, off) : pread(fd, buf, bsize, off);

		if (n < 0)
			die(write ? "pwrite" : "pread");
		ops++;
		bytes += (uint64_t)n;
	}
	dt = now_s() - t0;
	printf("%s %" PRIu64 " ops, %" PRIu64 " bytes in %.3f s: %.1f MB/s, %.0f ops/s"
	       " (1 job, %" PRIu64 " bytes each)\n",
	       write ? "write" : "read", ops, bytes, dt, (double)bytes / dt / 1e6, (double)ops / dt,
	       bsize);
	free(buf);
	close(fd);
	return 0;
}

static int bench_meta(const char *dir, uint64_t nfiles, double secs)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char name[64];
	double t0, stop, dt;
	uint64_t i;
	struct stat st;

	if (dfd < 0)
		die(dir);
	for (i = 0; i < nfiles; i++) {
		int fd;

		snprintf(name, sizeof(name), "m%" PRIu64, i);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create");
		close(fd);
	}
	/* What the guest's LOOKUP+GETATTR stand for: a stat() of a name. */
	t0 = now_s();
	stop = t0 + secs;
	for (i = 0; i == 0 || now_s() < stop; i++) {
		snprintf(name, sizeof(name), "m%" PRIu64, i % nfiles);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			die("fstatat");
	}
	dt = now_s() - t0;
	printf("lookup+getattr %" PRIu64 " ops in %.3f s: %.0f ops/s\n", i, dt, (double)i / dt);
	/* CREATE+RELEASE+UNLINK: open(O_CREAT|O_EXCL), close, unlink. */
	t0 = now_s();
	stop = t0 + secs;
	for (i = 0; i == 0 || now_s() < stop; i++) {
		int fd;

		snprintf(name, sizeof(name), "c%" PRIu64, i);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create");
		close(fd);
		if (unlinkat(dfd, name, 0) < 0)
			die("unlink");
	}
	dt = now_s() - t0;
	printf("create+release+unlink %" PRIu64 " ops in %.3f s: %.0f ops/s\n", i, dt,
	       (double)i / dt);
	for (i = 0; i < nfiles; i++) {
		snprintf(name, sizeof(name), "m%" PRIu64, i);
		unlinkat(dfd, name, 0);
	}
	close(dfd);
	return 0;
}

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end || v == 0) {
		fprintf(stderr, "syscall-bench: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "read") == 0)
		return bench_io(argv[2], false, num(argv[3]), 0, atof(argv[4]));
	if (argc == 6 && strcmp(argv[1], "write") == 0)
		return bench_io(argv[2], true, num(argv[3]), num(argv[4]), atof(argv[5]));
	if (argc == 5 && strcmp(argv[1], "meta") == 0)
		return bench_meta(argv[2], num(argv[3]), atof(argv[4]));
	return usage();
}
