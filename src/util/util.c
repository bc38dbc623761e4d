/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/util.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <time.h>

int vfsd_log_level = VFSD_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

int vfsd_log_level_parse(const char *s, int *ret_level)
{
	if (strcmp(s, "off") == 0) {
		*ret_level = -1;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret_level = (int)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*ret_level = VFSD_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

void vfsd_log(int level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	va_list ap;
	int saved = errno;
	int n, m;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (level < 0 || level >= (int)ARRAY_SIZE(level_names))
		level = VFSD_LOG_ERROR;
	n = snprintf(line, sizeof(line), "[%5ld.%06ld vfsd %ld] %s: ", (long)ts.tv_sec,
		     ts.tv_nsec / 1000, (long)syscall(SYS_gettid), level_names[level]);
	if (n < 0)
		n = 0;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
	errno = saved;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = read(fd, (char *)buf + done, len - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = write(fd, (const char *)buf + done, len - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

int eventfd_signal(int fd)
{
	uint64_t one = 1;

	if (fd < 0)
		return 0;
	for (;;) {
		if (write(fd, &one, sizeof(one)) == sizeof(one))
			return 0;
		if (errno == EINTR)
			continue;
		/* EAGAIN means the counter is saturated: the reader is woken anyway. */
		return errno == EAGAIN ? 0 : -errno;
	}
}

int eventfd_drain(int fd)
{
	uint64_t v;

	for (;;) {
		if (read(fd, &v, sizeof(v)) == sizeof(v))
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Heap prefaulting. Allocations up to 32 MiB come from the heap and up to
 * 64 MiB of free heap stay mapped, so that a block malloc()ed, populated and
 * freed again is what the next allocations are carved from.
 */
static void heap_tune(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

void vfsd_heap_prefault(size_t bytes)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a, e;
	void *p;

	pthread_once(&once, heap_tune);
	bytes = bytes > (16u << 20) ? 16u << 20 : bytes;
	p = malloc(bytes);
	if (!p)
		return;
	a = ((uintptr_t)p + page - 1) & ~(page - 1);
	e = ((uintptr_t)p + bytes) & ~(page - 1);
	if (e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE); /* best effort (Linux 5.14) */
	free(p);
}
