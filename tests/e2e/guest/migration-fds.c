/* migration-fds: the guest side of tests/e2e/test-migration.sh that busybox cannot do.
 *
 * It opens and HOLDS descriptors across live migrations and checks after every hop that each one
 * still works exactly where it was: a file written but not flushed, a read-only file part-way
 * through, an O_APPEND file, a directory fd part-way through a listing, a file opened through a
 * hard link whose other name was removed, a renamed file, a renamed directory and (mode "unlinked")
 * a file unlinked while open.
 *
 *   migration-fds main DIR HOPS       the main scenario, HOPS migrations
 *   migration-fds unlinked DIR HOPS   only the unlinked-while-open file
 *   migration-fds mkfiles DIR         (host) create the files below
 *   migration-fds verify DIR HOPS     (host) check every named file's bytes after HOPS hops of
 *                                     "main"; prints HOST-PASS/HOST-FAIL lines, exit 1 on a failure
 *
 * Protocol with the host (console lines, one write(2) each so they never interleave):
 *   MIG-READY k          descriptors are set up / hop k was checked: the host may migrate again
 *   E2E-PASS|FAIL mig.hopK.NAME[: reason]
 *   MIG-HELPER-DONE fails=N
 * After migrating, the host creates DIR/hop-K; the helper polls for it (stat every 100 ms).
 *
 * DIR must already hold (the host makes them): ro.bin (RO_SIZE bytes of pattern(i, 'r')),
 * list/ (LIST_N empty files e000..), app.log ("host\n"), hl-orig (pattern 'h', 8192 bytes),
 * ren-0 (pattern 'n', 8192 bytes), rdir-0/inner (pattern 'd', 8192 bytes).
 *
 * Build: gcc -static -O2 -Wall -o migration-fds migration-fds.c (no libraries in the initramfs).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RO_SIZE	 (256 * 1024)
#define RO_STEP	 4000 /* odd-sized reads, so offsets never sit on page boundaries */
#define LIST_N	 200
#define CHUNK	 8192
#define WR_CHUNK 65536

static int fails, passes, hop, hops_total;
static char dir[512];

static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0) { /* nothing to do */
	}
}

static void pass(const char *name)
{
	passes++;
	say("E2E-PASS mig.hop%d.%s", hop, name);
}

static void failf(const char *name, const char *fmt, ...)
{
	char why[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	fails++;
	say("E2E-FAIL mig.hop%d.%s: %s", hop, name, why);
}

#define CHECK(name, cond, ...)                                                                     \
	do {                                                                                       \
		if (cond)                                                                          \
			pass(name);                                                                \
		else                                                                               \
			failf(name, __VA_ARGS__);                                                  \
	} while (0)

static unsigned char pattern(uint64_t i, int seed)
{
	return (unsigned char)((i * 131 + i / 509 + (uint64_t)seed * 7) & 0xff);
}

static void fill(unsigned char *b, size_t n, uint64_t off, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pattern(off + i, seed);
}

/* bad_at: index of the first byte that differs from the pattern, or -1. */
static long bad_at(const unsigned char *b, size_t n, uint64_t off, int seed)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(off + i, seed))
			return (long)i;
	return -1;
}

static char *p(const char *name)
{
	static char buf[4][1024];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

static int xopen(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);
	if (fd < 0) {
		say("E2E-FAIL mig.setup: open %s: %s", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static void setup_fail(const char *what)
{
	say("E2E-FAIL mig.setup: %s: %s", what, strerror(errno));
	exit(1);
}

/* read exactly n bytes from fd (read(2), using the file offset) */
static ssize_t read_full(int fd, unsigned char *b, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static ssize_t pread_full(int fd, unsigned char *b, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, b + got, n - got, off + (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int write_full(int fd, const void *b, size_t n)
{
	const unsigned char *c = b;
	while (n) {
		ssize_t r = write(fd, c, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static void wait_marker(int k)
{
	char name[64];
	struct stat st;
	snprintf(name, sizeof name, "hop-%d", k);
	for (int i = 0;; i++) {
		if (stat(p(name), &st) == 0)
			return;
		if (i == 6000)
			say("E2E-INFO migration-fds: still waiting for %s after 600 s", name);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* ---- directory listing through a held fd, a few entries at a time ---------------------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int seen[LIST_N];
static int list_dots, list_repeats, list_strays, list_eof;

/* read_dir_some: one getdents64 with a small buffer (a handful of entries); returns entries or
 * -errno */
static int read_dir_some(int dfd)
{
	char buf[256]; /* ~8 entries of "eNNN" */
	long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
	if (n < 0)
		return -errno;
	if (n == 0) {
		list_eof = 1;
		return 0;
	}
	int cnt = 0;
	for (long off = 0; off < n;) {
		struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
		off += d->d_reclen;
		cnt++;
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) {
			list_dots++;
			continue;
		}
		int idx;
		char extra;
		if (sscanf(d->d_name, "e%d%c", &idx, &extra) == 1 && idx >= 0 && idx < LIST_N) {
			if (seen[idx]++)
				list_repeats++;
		} else {
			list_strays++;
		}
	}
	return cnt;
}

/* ---- the descriptors ------------------------------------------------------------------------ */

static int fd_ro, fd_wr, fd_app, fd_dir, fd_hl, fd_ren, fd_rdir, fd_inner, fd_unl;
static off_t ro_pos, wr_len;
static off_t hl_len = CHUNK, ren_len = CHUNK, inner_len = CHUNK, unl_len;
static int ren_gen; /* the renamed file is ren-<ren_gen>; renamed again at every hop */
static char app_expect[8192];

static void setup_main(void)
{
	unsigned char b[WR_CHUNK];

	/* a read-only file, part-way through */
	fd_ro = xopen(p("ro.bin"), O_RDONLY, 0);
	if (read_full(fd_ro, b, 1000) != 1000 || bad_at(b, 1000, 0, 'r') >= 0)
		setup_fail("ro.bin first 1000 bytes");
	ro_pos = 1000;

	/* written, not flushed or fsynced; writes continue after every hop */
	fd_wr = xopen(p("wr.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	fill(b, WR_CHUNK, 0, 'w');
	if (write_full(fd_wr, b, WR_CHUNK))
		setup_fail("wr.bin write");
	wr_len = WR_CHUNK;

	/* O_APPEND */
	fd_app = xopen(p("app.log"), O_WRONLY | O_APPEND, 0);
	if (write_full(fd_app, "A hop 0\n", 8))
		setup_fail("app.log append");
	snprintf(app_expect, sizeof app_expect, "host\nA hop 0\n");

	/* a directory part-way through its listing */
	fd_dir = xopen(p("list"), O_RDONLY | O_DIRECTORY, 0);
	for (int i = 0; i < 3; i++)
		if (read_dir_some(fd_dir) <= 0)
			setup_fail("list getdents");

	/* opened through a hard link whose other name is then removed */
	if (link(p("hl-orig"), p("hl-link")))
		setup_fail("link hl-orig hl-link");
	fd_hl = xopen(p("hl-link"), O_RDWR, 0);
	if (unlink(p("hl-orig")))
		setup_fail("unlink hl-orig");

	/* renamed after open; the directory after a lookup inside it and an open of it */
	fd_ren = xopen(p("ren-0"), O_RDWR, 0);
	if (rename(p("ren-0"), p("ren-1")))
		setup_fail("rename ren-0 ren-1");
	ren_gen = 1;
	fd_inner = xopen(p("rdir-0/inner"), O_RDWR, 0);
	fd_rdir = xopen(p("rdir-0"), O_RDONLY | O_DIRECTORY, 0);
	if (rename(p("rdir-0"), p("rdir-1")))
		setup_fail("rename rdir-0 rdir-1");
}

static void setup_unlinked(void)
{
	unsigned char b[CHUNK];
	fd_unl = xopen(p("unl.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	fill(b, CHUNK, 0, 'u');
	if (write_full(fd_unl, b, CHUNK))
		setup_fail("unl.bin write");
	if (fsync(fd_unl))
		setup_fail("unl.bin fsync");
	if (unlink(p("unl.bin")))
		setup_fail("unlink unl.bin");
	unl_len = CHUNK;
}

/* a file held through fd: its whole content must match pattern(seed) for len bytes; then append
 * CHUNK more with pwrite and read it back */
static void check_grow(const char *name, int fd, off_t *len, int seed, int want_nlink)
{
	static unsigned char b[1 << 20];
	char n[128];
	struct stat st;

	snprintf(n, sizeof n, "%s.fstat", name);
	if (fstat(fd, &st))
		failf(n, "fstat: %s", strerror(errno));
	else
		CHECK(n, st.st_size == *len && (want_nlink < 0 || (int)st.st_nlink == want_nlink),
		      "size %lld nlink %d, expected %lld %d", (long long)st.st_size,
		      (int)st.st_nlink, (long long)*len, want_nlink);

	snprintf(n, sizeof n, "%s.pread", name);
	ssize_t r = pread_full(fd, b, (size_t)*len, 0);
	long bad = r == *len ? bad_at(b, (size_t)r, 0, seed) : -2;
	CHECK(n, r == *len && bad < 0, "read %zd of %lld bytes (%s), first bad byte %ld", r,
	      (long long)*len, r < 0 ? strerror(errno) : "ok", bad);

	snprintf(n, sizeof n, "%s.pwrite", name);
	fill(b, CHUNK, (uint64_t)*len, seed);
	ssize_t w = pwrite(fd, b, CHUNK, *len);
	CHECK(n, w == CHUNK, "pwrite at %lld: %zd (%s)", (long long)*len, w,
	      w < 0 ? strerror(errno) : "short");
	if (w == CHUNK)
		*len += CHUNK;

	snprintf(n, sizeof n, "%s.readback", name);
	memset(b, 0, CHUNK);
	r = pread_full(fd, b, CHUNK, *len - CHUNK);
	CHECK(n, r == CHUNK && bad_at(b, CHUNK, (uint64_t)(*len - CHUNK), seed) < 0,
	      "read back %zd", r);
}

static void check_main(int last)
{
	unsigned char b[WR_CHUNK];
	char name[64], cur[64];
	struct stat st;

	/* read-only file: read(2) continues at the fd's offset; pread at an odd offset */
	if (ro_pos + RO_STEP <= RO_SIZE) {
		ssize_t r = read_full(fd_ro, b, RO_STEP);
		CHECK("ro.read-continues",
		      r == RO_STEP && bad_at(b, RO_STEP, (uint64_t)ro_pos, 'r') < 0,
		      "read %zd at %lld (%s)", r, (long long)ro_pos,
		      r < 0 ? strerror(errno) : "content or length");
		ro_pos += RO_STEP;
	}
	off_t cur_off = lseek(fd_ro, 0, SEEK_CUR);
	CHECK("ro.offset", cur_off == ro_pos, "lseek(SEEK_CUR) %lld, expected %lld",
	      (long long)cur_off, (long long)ro_pos);
	off_t odd = 12345 + hop * 777;
	ssize_t r = pread_full(fd_ro, b, 999, odd);
	CHECK("ro.pread", r == 999 && bad_at(b, 999, (uint64_t)odd, 'r') < 0, "pread %zd at %lld",
	      r, (long long)odd);
	if (last) {
		off_t end = lseek(fd_ro, -100, SEEK_END);
		r = read_full(fd_ro, b, 200);
		CHECK("ro.seek-end",
		      end == RO_SIZE - 100 && r == 100 && bad_at(b, 100, RO_SIZE - 100, 'r') < 0,
		      "lseek %lld read %zd", (long long)end, r);
	}

	/* unflushed file: all earlier bytes read back through the same fd, more writes go on */
	{
		static unsigned char all[2 << 20];
		r = pread_full(fd_wr, all, (size_t)wr_len, 0);
		CHECK("wr.earlier-bytes", r == wr_len && bad_at(all, (size_t)r, 0, 'w') < 0,
		      "read %zd of %lld", r, (long long)wr_len);
		fill(b, WR_CHUNK, (uint64_t)wr_len, 'w');
		CHECK("wr.write-continues", write_full(fd_wr, b, WR_CHUNK) == 0, "write: %s",
		      strerror(errno));
		wr_len += WR_CHUNK;
		CHECK("wr.offset", lseek(fd_wr, 0, SEEK_CUR) == wr_len, "offset is not %lld",
		      (long long)wr_len);
		if (last) {
			CHECK("wr.fsync", fsync(fd_wr) == 0, "fsync: %s", strerror(errno));
			CHECK("wr.fstat", fstat(fd_wr, &st) == 0 && st.st_size == wr_len,
			      "size %lld", (long long)st.st_size);
		}
	}

	/* O_APPEND: a second writer appends through a fresh open, then the held fd must land after
	 * it */
	{
		char line[64];
		int fd2 = open(p("app.log"), O_WRONLY | O_APPEND);
		int l = snprintf(line, sizeof line, "B hop %d\n", hop);
		CHECK("app.fresh-open", fd2 >= 0 && write_full(fd2, line, (size_t)l) == 0, "%s",
		      strerror(errno));
		if (fd2 >= 0)
			close(fd2);
		strncat(app_expect, line, sizeof app_expect - strlen(app_expect) - 1);
		l = snprintf(line, sizeof line, "A hop %d\n", hop);
		CHECK("app.held-fd", write_full(fd_app, line, (size_t)l) == 0, "%s",
		      strerror(errno));
		strncat(app_expect, line, sizeof app_expect - strlen(app_expect) - 1);
		int fd3 = open(p("app.log"), O_RDONLY);
		char got[8192] = "";
		if (fd3 >= 0) {
			r = read_full(fd3, (unsigned char *)got, sizeof got - 1);
			got[r > 0 ? r : 0] = 0;
			close(fd3);
		}
		CHECK("app.content", strcmp(got, app_expect) == 0,
		      "content '%.200s' expected '%.200s'", got, app_expect);
	}

	/* directory listing continues: a few more entries per hop; the rest one hop before the last
	 * (so that EOF is reached on one side and the rewind happens on the next), then a rewind */
	{
		int before = list_repeats + list_strays;
		int got = read_dir_some(fd_dir);
		CHECK("dir.getdents-continues", got > 0 || list_eof, "getdents: %s",
		      got < 0 ? strerror(-got) : "eof too early");
		if (hop == hops_total - 1 || (last && !list_eof)) {
			int guard = 0;
			while (!list_eof && guard++ < 1000) {
				got = read_dir_some(fd_dir);
				if (got < 0) {
					failf("dir.getdents-rest", "%s", strerror(-got));
					break;
				}
			}
			int missing = 0;
			for (int i = 0; i < LIST_N; i++)
				missing += seen[i] == 0;
			CHECK("dir.listing-complete",
			      missing == 0 && list_repeats == 0 && list_strays == 0 &&
				  list_dots == 2,
			      "%d missing, %d repeated, %d unexpected, %d dot entries", missing,
			      list_repeats, list_strays, list_dots);
		}
		if (last) {
			/* a rewind (after EOF was reached, on the previous side when there was one)
			 * lists everything again */
			int guard = 0, err = 0, calls = 0;
			off_t lr = lseek(fd_dir, 0, SEEK_SET);
			memset(seen, 0, sizeof seen);
			list_eof = list_repeats = list_strays = list_dots = 0;
			while (!list_eof && guard++ < 2000) {
				calls++;
				if ((err = read_dir_some(fd_dir)) < 0)
					break;
			}
			int missing = 0;
			for (int i = 0; i < LIST_N; i++)
				missing += seen[i] == 0;
			if (lr == 0 && missing == 0 && list_repeats == 0)
				pass("dir.rewind");
			else if (getenv("VFSD_REWIND_XFAIL") &&
				 !strcmp(getenv("VFSD_REWIND_XFAIL"), "1"))
				/* a known failure of virtiofsd 1.13.2 (both migration modes): see
				 * test-migration.sh */
				say("E2E-INFO XFAIL mig.hop%d.dir.rewind: lseek %lld, %d getdents "
				    "calls, %d missing after rewind",
				    hop, (long long)lr, calls, missing);
			else
				failf("dir.rewind",
				      "lseek %lld, %d getdents calls (last: %s), %d missing, %d "
				      "repeated after rewind",
				      (long long)lr, calls, err < 0 ? strerror(-err) : "ok",
				      missing, list_repeats);
		} else if (hop != hops_total - 1) {
			CHECK("dir.no-repeats", list_repeats + list_strays == before,
			      "%d repeats, %d strays", list_repeats, list_strays);
		}
	}

	/* the hard-link file: nlink 1 now, data both ways */
	check_grow("hardlink", fd_hl, &hl_len, 'h', 1);
	CHECK("hardlink.name", stat(p("hl-link"), &st) == 0 && st.st_size == hl_len,
	      "stat hl-link: %s", strerror(errno));

	/* the renamed file: works through the fd, then gets renamed once more on this side */
	check_grow("renamed-file", fd_ren, &ren_len, 'n', 1);
	snprintf(cur, sizeof cur, "ren-%d", ren_gen);
	snprintf(name, sizeof name, "ren-%d", ren_gen + 1);
	CHECK("renamed-file.rename-again", rename(p(cur), p(name)) == 0, "rename %s %s: %s", cur,
	      name, strerror(errno));
	ren_gen++;
	CHECK("renamed-file.new-name", stat(p(name), &st) == 0 && st.st_size == ren_len,
	      "stat %s: %s", name, strerror(errno));

	/* the renamed directory: the file inside and the directory fd (openat, fstatat) */
	check_grow("renamed-dir.inner", fd_inner, &inner_len, 'd', 1);
	snprintf(name, sizeof name, "created-hop%d", hop);
	int fc = openat(fd_rdir, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK("renamed-dir.openat-create", fc >= 0 && write_full(fc, name, strlen(name)) == 0,
	      "openat %s: %s", name, strerror(errno));
	if (fc >= 0)
		close(fc);
	CHECK("renamed-dir.fstatat",
	      fstatat(fd_rdir, "inner", &st, 0) == 0 && st.st_size == inner_len,
	      "fstatat inner: %s size %lld", strerror(errno), (long long)st.st_size);
	/* the directory keeps its name rdir-1 from setup */
	snprintf(cur, sizeof cur, "rdir-1/%s", name);
	CHECK("renamed-dir.by-name", stat(p(cur), &st) == 0, "stat %s: %s", cur, strerror(errno));
}

static void check_unlinked(void)
{
	check_grow("unlinked", fd_unl, &unl_len, 'u', 0);
	struct stat st;
	CHECK("unlinked.no-name", stat(p("unl.bin"), &st) != 0 && errno == ENOENT,
	      "unl.bin has a name again");
}

static void mkfile(const char *name, size_t n, int seed)
{
	static unsigned char b[RO_SIZE];
	fill(b, n, 0, seed);
	int fd = xopen(p(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write_full(fd, b, n) || close(fd))
		setup_fail(name);
}

static int mkfiles(void)
{
	char name[64];
	if (mkdir(p("list"), 0755) || mkdir(p("rdir-0"), 0755))
		setup_fail("mkdir");
	for (int i = 0; i < LIST_N; i++) {
		snprintf(name, sizeof name, "list/e%03d", i);
		close(xopen(p(name), O_WRONLY | O_CREAT, 0644));
	}
	mkfile("ro.bin", RO_SIZE, 'r');
	mkfile("hl-orig", CHUNK, 'h');
	mkfile("ren-0", CHUNK, 'n');
	mkfile("rdir-0/inner", CHUNK, 'd');
	int fd = xopen(p("app.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write_full(fd, "host\n", 5) || close(fd))
		setup_fail("app.log");
	return 0;
}

static int verify_file(const char *name, off_t len, int seed)
{
	static unsigned char b[4 << 20];
	int fd = open(p(name), O_RDONLY);
	ssize_t r = fd < 0 ? -1 : pread_full(fd, b, sizeof b, 0);
	if (fd >= 0)
		close(fd);
	long bad = r >= 0 ? bad_at(b, (size_t)r, 0, seed) : -2;
	if (r == len && bad < 0) {
		printf("HOST-PASS mig.%s\n", name);
		return 0;
	}
	printf("HOST-FAIL mig.%s: %zd bytes (expected %lld), first bad byte %ld\n", name, r,
	       (long long)len, bad);
	return 1;
}

static int verify(int hops)
{
	int bad = 0;
	char name[64], want[8192], got[8192] = "";
	struct stat st;
	bad += verify_file("wr.bin", (off_t)WR_CHUNK * (hops + 1), 'w');
	bad += verify_file("hl-link", (off_t)CHUNK * (hops + 1), 'h');
	snprintf(name, sizeof name, "ren-%d", hops + 1);
	bad += verify_file(name, (off_t)CHUNK * (hops + 1), 'n');
	bad += verify_file("rdir-1/inner", (off_t)CHUNK * (hops + 1), 'd');
	bad += verify_file("ro.bin", RO_SIZE, 'r');
	for (int k = 1; k <= hops; k++) {
		snprintf(name, sizeof name, "rdir-1/created-hop%d", k);
		if (stat(p(name), &st) == 0)
			printf("HOST-PASS mig.%s\n", name);
		else {
			printf("HOST-FAIL mig.%s: %s\n", name, strerror(errno));
			bad++;
		}
	}
	const char *gone[] = { "hl-orig", "ren-0", "ren-1", "rdir-0" };
	for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
		if (lstat(p(gone[i]), &st) != 0 && errno == ENOENT)
			printf("HOST-PASS mig.gone.%s\n", gone[i]);
		else {
			printf("HOST-FAIL mig.gone.%s: still there\n", gone[i]);
			bad++;
		}
	}
	snprintf(want, sizeof want, "host\nA hop 0\n");
	for (int k = 1; k <= hops; k++) {
		size_t l = strlen(want);
		snprintf(want + l, sizeof want - l, "B hop %d\nA hop %d\n", k, k);
	}
	int fd = open(p("app.log"), O_RDONLY);
	ssize_t r = fd < 0 ? -1 : read_full(fd, (unsigned char *)got, sizeof got - 1);
	if (fd >= 0)
		close(fd);
	got[r > 0 ? r : 0] = 0;
	if (!strcmp(got, want))
		printf("HOST-PASS mig.app.log\n");
	else {
		printf("HOST-FAIL mig.app.log: '%.300s'\n", got);
		bad++;
	}
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "mkfiles")) {
		snprintf(dir, sizeof dir, "%s", argv[2]);
		return mkfiles();
	}
	if (argc == 4 && !strcmp(argv[1], "verify")) {
		snprintf(dir, sizeof dir, "%s", argv[2]);
		return verify(atoi(argv[3]));
	}
	if (argc != 4) {
		fprintf(stderr, "usage: %s main|unlinked DIR HOPS\n", argv[0]);
		return 2;
	}
	int unl = !strcmp(argv[1], "unlinked");
	snprintf(dir, sizeof dir, "%s", argv[2]);
	int hops = atoi(argv[3]);
	hops_total = hops;

	if (unl)
		setup_unlinked();
	else
		setup_main();
	say("MIG-READY 0");
	for (hop = 1; hop <= hops; hop++) {
		wait_marker(hop);
		say("E2E-INFO migration-fds: hop %d marker seen", hop);
		if (unl)
			check_unlinked();
		else
			check_main(hop == hops);
		say("MIG-READY %d", hop);
	}
	if (!unl) {
		/* final sizes for the shell to print and the host to compare */
		say("E2E-VALUE size.wr.bin=%lld", (long long)wr_len);
		say("E2E-VALUE size.hl-link=%lld", (long long)hl_len);
		say("E2E-VALUE size.inner=%lld", (long long)inner_len);
		say("E2E-VALUE name.ren=ren-%d", ren_gen);
	}
	say("MIG-HELPER-DONE fails=%d passes=%d", fails, passes);
	return fails ? 1 : 0;
}
