/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * util: cleanup helpers, logging, -errno conventions and checked arithmetic.
 *
 * Every function in vfsd returns 0 (or a count) on success and -errno on
 * failure; raw -1/errno is converted right at the syscall, with RET_NERRNO.
 */
#ifndef VFSD_UTIL_H
#define VFSD_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

/** freep() - cleanup helper: free(*p). */
static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/** closep() - cleanup helper: close(*fd) when it is >= 0, keeping errno. */
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/** safe_close() - close @fd if valid and return -EBADF, for "fd = safe_close(fd)". */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

/* Hand ownership on: returns the value and clears the variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -EBADF;                                                                     \
		_tf;                                                                               \
	})

/* Convert a libc "-1 and errno" return into -errno. */
#define RET_NERRNO(expr)                                                                           \
	({                                                                                         \
		__typeof__(expr) _r = (expr);                                                      \
		_r < 0 ? -errno : _r;                                                              \
	})

/* Checked arithmetic for anything that came from outside; true means overflow. */
#define ADD_OVERFLOW(a, b, res) __builtin_add_overflow((a), (b), (res))
#define MUL_OVERFLOW(a, b, res) __builtin_mul_overflow((a), (b), (res))

enum vfsd_log_level {
	VFSD_LOG_ERROR = 0,
	VFSD_LOG_WARN = 1,
	VFSD_LOG_INFO = 2,
	VFSD_LOG_DEBUG = 3,
	VFSD_LOG_TRACE = 4,
};

/* The log level is one of the two allowed mutable globals (with the config). */
extern int vfsd_log_level;

/**
 * vfsd_log_level_parse() - parse "error", "warn", "info", "debug", "trace" or "off".
 * Returns: the level (off is -1), or -EINVAL.
 */
int vfsd_log_level_parse(const char *s, int *ret_level);

/**
 * vfsd_log() - write one log line to stderr: "vfsd[tid] LEVEL: message".
 * Thread-safe (one write(2) per line).
 */
void vfsd_log(int level, const char *fmt, ...) _printf_(2, 3);

#define log_at(lvl, ...)                                                                           \
	do {                                                                                       \
		if (vfsd_log_level >= (lvl))                                                       \
			vfsd_log((lvl), __VA_ARGS__);                                              \
	} while (0)
#define log_error(...) log_at(VFSD_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(VFSD_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(VFSD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(VFSD_LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) log_at(VFSD_LOG_TRACE, __VA_ARGS__)

/**
 * read_full() - read exactly @len bytes unless EOF comes first.
 * Returns: bytes read (short only at EOF) or -errno.
 */
ssize_t read_full(int fd, void *buf, size_t len);

/**
 * write_full() - write all @len bytes, retrying on EINTR and short writes.
 * Returns: 0 or -errno.
 */
int write_full(int fd, const void *buf, size_t len);

/** eventfd_signal() - add 1 to an eventfd; ignores fd < 0. Returns 0 or -errno. */
int eventfd_signal(int fd);

/**
 * vfsd_heap_prefault() - fault in, with one madvise(MADV_POPULATE_WRITE),
 * the @bytes (at most 16 MiB) of heap the next allocations will be carved
 * from, instead of one page fault per 4 KiB page as they touch it. For code
 * about to allocate a lot at once (a migration load): in a VM a page fault
 * costs several microseconds. The first call makes malloc keep up to 64 MiB
 * of freed heap mapped (M_TRIM_THRESHOLD) and serve blocks of up to 32 MiB
 * from the heap (M_MMAP_THRESHOLD), for the whole process. Best effort.
 */
void vfsd_heap_prefault(size_t bytes);

/** eventfd_drain() - read (and so reset) an eventfd counter. Returns 0 or -errno. */
int eventfd_drain(int fd);

#endif
