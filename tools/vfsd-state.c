/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfsd-state: inspect, validate, compare and convert vfsd migration state
 * blobs, also when they sit inside a QEMU migration stream saved to a file.
 *
 * It reuses the daemon's reader (src/state), needs no privilege and links
 * neither liburing nor libseccomp nor libcap-ng. Memory stays bounded by the
 * reader's limits: blobs and migration streams are read sequentially, never
 * whole (a pipe on stdin is first copied to an unlinked temporary file, as
 * finding the blob in a migration stream needs two passes).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vfsd/state.h"
#include "vfsd/util.h"

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_TROUBLE = 2 };

static bool json_out;
static bool force_migstream;

struct input {
	const char *name;
	int fd;
	bool migstream;
	off_t offset; /* of the first chunk, in a migration stream */
	unsigned int candidates;
	struct vfsd_state_migstream m;
};

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: vfsd-state [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "Inspect vfsd migration state blobs (docs/state-format.md).\n"
	       "\n"
	       "Commands:\n"
	       "  validate [FILE|-]        check everything; print every problem found\n"
	       "  show [FILE|-]            header, session, counts, inode tree, handles\n"
	       "  stats [FILE|-]           records and bytes per record kind\n"
	       "  diff A B                 inodes and handles added, removed, changed (by id)\n"
	       "  convert --to=VER IN OUT  re-encode IN as format version VER (1.0, 1.1); OUT may\n"
	       "                           be - (1.0 drops lost inodes and the handles on them)\n"
	       "\n"
	       "FILE is a blob (starts with '{') or a QEMU migration stream saved with\n"
	       "'migrate file:...', searched for the vhost-user-fs-backend subsection.\n"
	       "Without FILE, or with -, standard input is read.\n"
	       "\n"
	       "Options:\n"
	       "      --json                   machine-readable JSON output\n"
	       "      --from-migration-stream  treat every input as a migration stream\n"
	       "      --to=VERSION             (convert) the format version to write\n"
	       "  -h, --help                   this help\n"
	       "      --version                print the version\n"
	       "\n"
	       "Exit status: 0 valid (diff: equal), 1 invalid blob (diff: different),\n"
	       "2 usage or I/O error.\n");
}

/* ---- output helpers ------------------------------------------------------------------------- */

static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = *p < 0x80	      ? 0
			: (*p & 0xe0) == 0xc0 ? 1
			: (*p & 0xf0) == 0xe0 ? 2
			: (*p & 0xf8) == 0xf0 ? 3
					      : -1;
		if (n < 0 || (n == 1 && *p < 0xc2))
			return false;
		p++;
		while (n--)
			if ((*p++ & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/* A JSON string; bytes of a string that is not UTF-8 become U+FFFD. */
static void jstr(const char *s)
{
	bool raw = utf8_ok(s);

	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else if (*p >= 0x80 && !raw)
			fputs("\\ufffd", stdout);
		else
			putchar(*p);
	}
	putchar('"');
}

/*
 * Text output: control characters and backslashes escaped as \xNN, and bytes
 * above 0x7f too when the string is not UTF-8 (it would garble the terminal).
 */
static void tstr(const char *s)
{
	bool raw = utf8_ok(s);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\' || (*p >= 0x80 && !raw))
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

static void hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

/*
 * glibc defines O_LARGEFILE as 0 on 64-bit hosts, but 64-bit kernels set it on
 * every open, and FUSE passes the guest's flags on: use the kernel's value.
 * (The flags are the guest kernel's; same architecture as the host assumed.)
 */
#if defined(__aarch64__) || defined(__arm__)
#define KERNEL_O_LARGEFILE 0400000
#elif defined(__powerpc__) || defined(__sparc__) || defined(__mips__)
#define KERNEL_O_LARGEFILE (O_LARGEFILE ? O_LARGEFILE : 0)
#else
#define KERNEL_O_LARGEFILE 0100000
#endif

/* Open flags as O_RDWR|O_APPEND|...; what is left over as a hex number. */
static void flags_text(uint32_t f, char *buf, size_t size)
{
	static const struct {
		uint32_t bits;
		const char *name;
	} names[] = {
		{ O_TMPFILE, "O_TMPFILE" },
		{ O_CREAT, "O_CREAT" },
		{ O_EXCL, "O_EXCL" },
		{ O_NOCTTY, "O_NOCTTY" },
		{ O_TRUNC, "O_TRUNC" },
		{ O_APPEND, "O_APPEND" },
		{ O_NONBLOCK, "O_NONBLOCK" },
		{ O_SYNC, "O_SYNC" },
		{ O_DSYNC, "O_DSYNC" },
		{ O_DIRECT, "O_DIRECT" },
		{ KERNEL_O_LARGEFILE, "O_LARGEFILE" },
		{ O_DIRECTORY, "O_DIRECTORY" },
		{ O_NOFOLLOW, "O_NOFOLLOW" },
		{ O_NOATIME, "O_NOATIME" },
		{ O_CLOEXEC, "O_CLOEXEC" },
		{ O_PATH, "O_PATH" },
		{ FASYNC, "O_ASYNC" },
	};
	const char *acc[] = { "O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE" };
	size_t n = (size_t)snprintf(buf, size, "%s", acc[f & O_ACCMODE]);

	f &= ~(uint32_t)O_ACCMODE;
	for (size_t i = 0; i < ARRAY_SIZE(names) && n < size; i++) {
		if (names[i].bits && (f & names[i].bits) == names[i].bits) {
			n += (size_t)snprintf(buf + n, size - n, "|%s", names[i].name);
			f &= ~names[i].bits;
		}
	}
	if (f && n < size)
		snprintf(buf + n, size - n, "|0x%x", f);
}

/* ---- input ---------------------------------------------------------------------------------- */

/* Make @fd seekable: a pipe is copied to an unlinked temporary file. */
static int seekable(int fd)
{
	char buf[65536];
	int tmp;

	if (lseek(fd, 0, SEEK_CUR) >= 0)
		return fd;
	tmp = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (tmp < 0) {
		char path[] = "/tmp/vfsd-state-XXXXXX";

		tmp = mkostemp(path, O_CLOEXEC);
		if (tmp < 0)
			return -errno;
		unlink(path);
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			close(tmp);
			return r;
		}
		if (n == 0)
			break;
		r = write_full(tmp, buf, (size_t)n);
		if (r < 0) {
			close(tmp);
			return r;
		}
	}
	if (lseek(tmp, 0, SEEK_SET) < 0) {
		close(tmp);
		return -errno;
	}
	return tmp;
}

static int input_open(struct input *in, const char *path)
{
	char c = 0;
	int fd, r;

	memset(in, 0, sizeof(*in));
	in->name = path && strcmp(path, "-") != 0 ? path : "-";
	if (strcmp(in->name, "-") == 0) {
		fd = seekable(STDIN_FILENO);
	} else {
		fd = RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
		if (fd >= 0) {
			int s = seekable(fd);

			if (s != fd)
				close(fd);
			fd = s;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "vfsd-state: %s: %s\n", in->name, strerror(-fd));
		return fd;
	}
	in->fd = fd;
	r = (int)RET_NERRNO(pread(fd, &c, 1, 0));
	if (r < 0) {
		fprintf(stderr, "vfsd-state: %s: %s\n", in->name, strerror(-r));
		return r;
	}
	if (c == '{' && !force_migstream)
		return 0;
	in->migstream = true;
	in->offset = -1;
	r = vfsd_state_migstream_find(fd, &in->offset, &in->candidates);
	if (r == -ENOENT && in->offset >= 0) {
		/* the subsection is there, but what it holds is not a vfsd blob */
		uint8_t h[5] = { 0 };
		ssize_t n = pread(fd, h, sizeof(h), in->offset);

		fprintf(stderr,
			"vfsd-state: %s: the " VFSD_STATE_MIGSTREAM_NAME
			" subsection (chunks at offset %lld) does not hold a vfsd state blob: ",
			in->name, (long long)in->offset);
		if (n < (ssize_t)sizeof(h))
			fprintf(stderr, "the stream ends there\n");
		else
			fprintf(
			    stderr,
			    "its first chunk is %u bytes long and starts with 0x%02x (a vfsd "
			    "blob starts with '{' in a chunk of 1..%u bytes; another back-end's "
			    "state?)\n",
			    (unsigned int)h[0] << 24 | (unsigned int)h[1] << 16 |
				(unsigned int)h[2] << 8 | h[3],
			    h[4], VFSD_STATE_MIGSTREAM_MAX_CHUNK);
		return -EBADMSG;
	}
	if (r == -ENOENT) {
		fprintf(stderr,
			"vfsd-state: %s: neither a state blob (it does not start with '{') nor a "
			"migration stream with a " VFSD_STATE_MIGSTREAM_NAME " subsection\n",
			in->name);
		return -EBADMSG;
	}
	if (r < 0) {
		fprintf(stderr, "vfsd-state: %s: %s\n", in->name, strerror(-r));
		return r;
	}
	if (in->candidates > 1 && !json_out)
		fprintf(stderr,
			"vfsd-state: %s: %u plausible " VFSD_STATE_MIGSTREAM_NAME
			" subsections, using the last (offset %lld)\n",
			in->name, in->candidates, (long long)in->offset);
	return 0;
}

static void input_close(struct input *in)
{
	if (in->fd > STDIN_FILENO)
		close(in->fd);
}

static ssize_t fd_read(void *opaque, void *buf, size_t len)
{
	struct input *in = opaque;

	return RET_NERRNO(read(in->fd, buf, len));
}

/* Read @in through the reader; prints I/O trouble. Returns the reader's result. */
static int input_read(struct input *in, struct vfsd_state_read_opts *o, struct vfsd_state **ret,
		      struct vfsd_state_error *err)
{
	int r;

	if (in->migstream) {
		vfsd_state_migstream_init(&in->m, in->fd, in->offset);
		r = vfsd_state_read_ex(vfsd_state_migstream_read, &in->m, o, ret, err);
		if (r == -EBADMSG && in->m.problem && err->line == 0) {
			snprintf(err->reason, sizeof(err->reason), "%s (offset %lld)",
				 in->m.problem, (long long)in->m.pos);
			if (o && o->report)
				o->report(err, o->userdata);
		}
		return r;
	}
	if (lseek(in->fd, 0, SEEK_SET) < 0)
		return -errno;
	return vfsd_state_read_ex(fd_read, in, o, ret, err);
}

static void print_source_json(const struct input *in)
{
	printf("\"source\":{\"file\":");
	jstr(in->name);
	printf(",\"migration_stream\":%s", in->migstream ? "true" : "false");
	if (in->migstream)
		printf(",\"offset\":%lld,\"candidates\":%u", (long long)in->offset, in->candidates);
	printf("}");
}

/* An error that is not about the blob's content: exit 2. */
static bool trouble(int r)
{
	return r < 0 && r != -EBADMSG;
}

static void print_error_text(const struct input *in, const struct vfsd_state_error *e)
{
	char msg[512];

	printf("%s: %s\n", in->name, vfsd_state_error_format(e, msg, sizeof(msg)));
}

static void print_error_json(const struct vfsd_state_error *e)
{
	printf("{\"line\":%llu,\"kind\":", (unsigned long long)e->line);
	jstr(e->kind);
	printf(",\"field\":");
	jstr(e->field);
	printf(",\"reason\":");
	jstr(e->reason);
	printf("}");
}

/* Lost inode records in a model. */
static size_t count_lost(const struct vfsd_state *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_inodes; i++)
		n += s->inodes[i].lost != VFSD_STATE_LOST_NONE;
	return n;
}

/* ---- validate ------------------------------------------------------------------------------- */

struct vstate {
	struct input *in;
	unsigned int n;
};

static int report_problem(const struct vfsd_state_error *e, void *userdata)
{
	struct vstate *v = userdata;

	if (e->code != -EBADMSG && e->line == 0 && v->n > 0)
		return 1;
	if (json_out) {
		printf("%s", v->n ? "," : "");
		print_error_json(e);
	} else {
		print_error_text(v->in, e);
	}
	v->n++;
	return 0;
}

static int cmd_validate(const char *path)
{
	struct input in;
	struct vstate v = { .in = &in };
	struct vfsd_state_read_opts o = { .report = report_problem, .userdata = &v };
	struct vfsd_state_error err;
	struct vfsd_state *s = NULL;
	int r = input_open(&in, path);

	if (r < 0)
		return r == -EBADMSG ? EXIT_INVALID : EXIT_TROUBLE;
	if (json_out) {
		printf("{");
		print_source_json(&in);
		printf(",\"problems\":[");
	}
	r = input_read(&in, &o, &s, &err);
	if (trouble(r) && !json_out)
		fprintf(stderr, "vfsd-state: %s: %s\n", in.name, err.reason);
	if (json_out) {
		printf("],\"valid\":%s", r == 0 ? "true" : "false");
		if (s)
			printf(",\"inodes\":%zu,\"lost_inodes\":%zu,\"handles\":%zu", s->n_inodes,
			       count_lost(s), s->n_handles);
		if (trouble(r)) {
			printf(",\"error\":");
			jstr(err.reason);
		}
		printf("}\n");
	} else if (r == 0) {
		char lost[48] = "";

		if (count_lost(s))
			snprintf(lost, sizeof(lost), " (%zu lost)", count_lost(s));
		printf("%s: valid: version %u.%u, %zu inodes%s, %zu handles\n", in.name,
		       s->header.major, s->header.minor, s->n_inodes, lost, s->n_handles);
	} else if (!trouble(r)) {
		printf("%s: invalid: %u problem%s\n", in.name, v.n, v.n == 1 ? "" : "s");
	}
	vfsd_state_free(s);
	input_close(&in);
	return r == 0 ? EXIT_VALID : trouble(r) ? EXIT_TROUBLE : EXIT_INVALID;
}

/* Read a whole blob, stopping at the first problem, which is printed. */
static int load(const char *path, struct input *in, struct vfsd_state **ret)
{
	struct vfsd_state_error err;
	int r = input_open(in, path);

	if (r < 0)
		return r == -EBADMSG ? EXIT_INVALID : EXIT_TROUBLE;
	r = input_read(in, NULL, ret, &err);
	if (r == 0)
		return EXIT_VALID;
	if (json_out) {
		printf("{");
		print_source_json(in);
		printf(",\"valid\":false,\"problems\":[");
		print_error_json(&err);
		printf("]}\n");
	} else if (trouble(r)) {
		fprintf(stderr, "vfsd-state: %s: %s\n", in->name, err.reason);
	} else {
		print_error_text(in, &err);
	}
	input_close(in);
	return trouble(r) ? EXIT_TROUBLE : EXIT_INVALID;
}

/* ---- show ----------------------------------------------------------------------------------- */

static void features_text(const char *label, size_t n, const char (*f)[VFSD_STATE_FEATURE_SIZE])
{
	printf("%s:", label);
	for (size_t i = 0; i < n; i++)
		printf("%s %s", i ? "," : "", f[i]);
	printf("%s\n", n ? "" : " none");
}

static void features_json(const char *key, size_t n, const char (*f)[VFSD_STATE_FEATURE_SIZE])
{
	printf("\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		printf("%s", i ? "," : "");
		jstr(f[i]);
	}
	printf("]");
}

static void path_of(const struct vfsd_state *s, uint64_t id, char *buf, size_t size)
{
	const struct vfsd_state_inode *in = vfsd_state_inode_by_id(s, id);

	if (!in || vfsd_state_inode_path(s, in, buf, size) < 0)
		snprintf(buf, size, "?");
}

static void show_json(const struct input *src, const struct vfsd_state *s)
{
	const struct vfsd_state_header *h = &s->header;
	const struct vfsd_state_session *ss = &s->session;
	char path[8192];

	printf("{");
	print_source_json(src);
	printf(",\"header\":{\"format\":\"" VFSD_STATE_FORMAT "\",\"version\":\"%u.%u\","
	       "\"producer\":",
	       h->major, h->minor);
	jstr(h->producer);
	printf(",");
	features_json("required_features", h->n_required, h->required);
	printf(",");
	features_json("optional_features", h->n_optional, h->optional);
	printf("},\"session\":{\"initialized\":%s", ss->initialized ? "true" : "false");
	if (ss->initialized)
		printf(",\"fuse\":{\"major\":%u,\"minor\":%u,\"flags\":%llu,\"max_write\":%u,"
		       "\"max_readahead\":%u}",
		       ss->fuse_major, ss->fuse_minor, (unsigned long long)ss->fuse_flags,
		       ss->max_write, ss->max_readahead);
	printf(",\"next_nodeid\":%llu,\"next_fh\":%llu,\"migration_mode\":\"%s\"}",
	       (unsigned long long)ss->next_nodeid, (unsigned long long)ss->next_fh,
	       vfsd_state_mode_name(ss->mode));
	printf(",\"counts\":{\"inodes\":%zu,\"lost_inodes\":%zu,\"handles\":%zu},\"inodes\":[",
	       s->n_inodes, count_lost(s), s->n_handles);
	for (size_t i = 0; i < s->n_inodes; i++) {
		const struct vfsd_state_inode *in = &s->inodes[i];

		path_of(s, in->id, path, sizeof(path));
		printf("%s{\"id\":%llu,\"type\":\"%s\",\"nlookup\":%llu,\"path\":", i ? "," : "",
		       (unsigned long long)in->id, vfsd_state_type_name(in->type),
		       (unsigned long long)in->nlookup);
		jstr(path);
		if (in->parent) {
			printf(",\"parent\":%llu,\"name\":", (unsigned long long)in->parent);
			jstr(in->name);
		}
		if (in->orphan) {
			printf(",\"orphan\":");
			jstr(in->orphan);
		}
		if (in->lost)
			printf(",\"lost\":\"%s\"", vfsd_state_lost_name(in->lost));
		if (in->has_ino)
			printf(",\"ino\":%llu", (unsigned long long)in->ino);
		if (in->has_file_handle) {
			printf(",\"file_handle\":{\"type\":%d,\"handle\":\"", in->fh_type);
			hex(in->fh_bytes, in->fh_size);
			printf("\",\"mnt_id\":%llu}", (unsigned long long)in->mnt_id);
		}
		printf("}");
	}
	printf("],\"handles\":[");
	for (size_t i = 0; i < s->n_handles; i++) {
		const struct vfsd_state_handle *hd = &s->handles[i];
		char ft[256];

		path_of(s, hd->inode, path, sizeof(path));
		flags_text(hd->flags, ft, sizeof(ft));
		printf("%s{\"fh\":%llu,\"inode\":%llu,\"path\":", i ? "," : "",
		       (unsigned long long)hd->fh, (unsigned long long)hd->inode);
		jstr(path);
		printf(",\"flags\":%u,\"flags_text\":\"%s\",\"dir\":%s", hd->flags, ft,
		       hd->dir ? "true" : "false");
		if (hd->has_dir_offset)
			printf(",\"dir_offset\":%llu", (unsigned long long)hd->dir_offset);
		printf("}");
	}
	printf("]}\n");
}

static void show_text(const struct input *src, const struct vfsd_state *s)
{
	const struct vfsd_state_header *h = &s->header;
	const struct vfsd_state_session *ss = &s->session;
	char path[8192];

	printf("source: %s", src->name);
	if (src->migstream)
		printf(" (migration stream, blob chunks at offset %lld)", (long long)src->offset);
	printf("\nformat: " VFSD_STATE_FORMAT " %u.%u, producer \"", h->major, h->minor);
	tstr(h->producer);
	printf("\"\n");
	features_text("required features", h->n_required, h->required);
	features_text("optional features", h->n_optional, h->optional);
	if (ss->initialized)
		printf("session: FUSE %u.%u, flags 0x%llx, max_write %u, max_readahead %u\n",
		       ss->fuse_major, ss->fuse_minor, (unsigned long long)ss->fuse_flags,
		       ss->max_write, ss->max_readahead);
	else
		printf("session: not initialized (the guest never sent FUSE_INIT)\n");
	printf("next_nodeid %llu, next_fh %llu, migration mode %s\n",
	       (unsigned long long)ss->next_nodeid, (unsigned long long)ss->next_fh,
	       vfsd_state_mode_name(ss->mode));
	printf("counts: %zu inodes (%zu lost), %zu handles\n\ninodes:\n", s->n_inodes,
	       count_lost(s), s->n_handles);
	printf("  %10s %-4s %8s  %s\n", "ID", "TYPE", "NLOOKUP", "PATH");
	for (size_t i = 0; i < s->n_inodes; i++) {
		const struct vfsd_state_inode *in = &s->inodes[i];

		path_of(s, in->id, path, sizeof(path));
		printf("  %10llu %-4s %8llu  ", (unsigned long long)in->id,
		       vfsd_state_type_name(in->type), (unsigned long long)in->nlookup);
		tstr(path);
		if (in->type == VFSD_STATE_T_DIR && in->id != 1 && !in->lost)
			putchar('/');
		if (in->orphan) {
			printf("  [orphan: unlinked, kept as \"");
			tstr(in->orphan);
			printf("\"]");
		}
		if (in->lost)
			printf("  [lost: %s]", vfsd_state_lost_name(in->lost));
		if (in->has_file_handle) {
			printf("  [handle %d:", in->fh_type);
			hex(in->fh_bytes, in->fh_size);
			printf(" mnt %llu]", (unsigned long long)in->mnt_id);
		}
		if (in->has_ino)
			printf("  [ino %llu]", (unsigned long long)in->ino);
		putchar('\n');
	}
	printf("\nhandles:\n  %10s %10s %-4s %-28s %s\n", "FH", "INODE", "KIND", "FLAGS", "PATH");
	for (size_t i = 0; i < s->n_handles; i++) {
		const struct vfsd_state_handle *hd = &s->handles[i];
		char ft[256];

		path_of(s, hd->inode, path, sizeof(path));
		flags_text(hd->flags, ft, sizeof(ft));
		printf("  %10llu %10llu %-4s %-28s ", (unsigned long long)hd->fh,
		       (unsigned long long)hd->inode, hd->dir ? "dir" : "file", ft);
		tstr(path);
		if (hd->has_dir_offset)
			printf("  [dir offset %llu]", (unsigned long long)hd->dir_offset);
		putchar('\n');
	}
}

static int cmd_show(const char *path)
{
	struct input in;
	struct vfsd_state *s = NULL;
	int r = load(path, &in, &s);

	if (r != EXIT_VALID)
		return r;
	if (json_out)
		show_json(&in, s);
	else
		show_text(&in, s);
	vfsd_state_free(s);
	input_close(&in);
	return EXIT_VALID;
}

/* ---- stats ---------------------------------------------------------------------------------- */

static int count_only(const struct vfsd_state_error *e, void *userdata)
{
	(*(unsigned int *)userdata)++;
	return 0;
}

static int cmd_stats(const char *path)
{
	static const char *const names[VFSD_STATE_K_COUNT] = { "header", "session", "inode",
							       "handle", "trailer", "other" };
	struct input in;
	struct vfsd_state_stats st;
	unsigned int problems = 0;
	struct vfsd_state_read_opts o = { .report = count_only,
					  .userdata = &problems,
					  .stats = &st };
	struct vfsd_state_error err;
	int r = input_open(&in, path);

	if (r < 0)
		return r == -EBADMSG ? EXIT_INVALID : EXIT_TROUBLE;
	r = input_read(&in, &o, NULL, &err);
	if (trouble(r)) {
		fprintf(stderr, "vfsd-state: %s: %s\n", in.name, err.reason);
		input_close(&in);
		return EXIT_TROUBLE;
	}
	if (json_out) {
		printf("{");
		print_source_json(&in);
		printf(",\"valid\":%s,\"problems\":%u,\"total_bytes\":%llu,\"kinds\":{",
		       r == 0 ? "true" : "false", problems, (unsigned long long)st.total_bytes);
		for (int k = 0; k < VFSD_STATE_K_COUNT; k++)
			printf("%s\"%s\":{\"records\":%llu,\"bytes\":%llu}", k ? "," : "", names[k],
			       (unsigned long long)st.records[k], (unsigned long long)st.bytes[k]);
		printf("},\"lost_inodes\":{\"unlinked\":%llu,\"not_found\":%llu}}\n",
		       (unsigned long long)st.lost[VFSD_STATE_LOST_UNLINKED],
		       (unsigned long long)st.lost[VFSD_STATE_LOST_NOT_FOUND]);
	} else {
		printf("%-8s %12s %14s %10s\n", "KIND", "RECORDS", "BYTES", "AVG");
		for (int k = 0; k < VFSD_STATE_K_COUNT; k++)
			printf("%-8s %12llu %14llu %10.1f\n", names[k],
			       (unsigned long long)st.records[k], (unsigned long long)st.bytes[k],
			       st.records[k] ? (double)st.bytes[k] / (double)st.records[k] : 0.0);
		printf("%-8s %12s %14llu\n", "total", "", (unsigned long long)st.total_bytes);
		printf("lost inodes: %llu unlinked, %llu not-found\n",
		       (unsigned long long)st.lost[VFSD_STATE_LOST_UNLINKED],
		       (unsigned long long)st.lost[VFSD_STATE_LOST_NOT_FOUND]);
		if (r != 0)
			printf("%s: invalid: %u problem%s (run validate)\n", in.name, problems,
			       problems == 1 ? "" : "s");
	}
	input_close(&in);
	return r == 0 ? EXIT_VALID : EXIT_INVALID;
}

/* ---- diff ----------------------------------------------------------------------------------- */

struct differ {
	unsigned int n;
	bool first_in_list;
};

static void change(struct differ *d, const char *what, uint64_t id, const char *field,
		   const char *a, const char *b)
{
	if (json_out) {
		printf("%s{\"what\":\"%s\",\"id\":%llu,\"field\":\"%s\",\"a\":", d->n ? "," : "",
		       what, (unsigned long long)id, field);
		if (a)
			jstr(a);
		else
			printf("null");
		printf(",\"b\":");
		if (b)
			jstr(b);
		else
			printf("null");
		printf("}");
	} else {
		if (strcmp(what, "session") == 0 || strcmp(what, "header") == 0)
			printf("~ %s: %s: ", what, field);
		else
			printf("~ %s %llu: %s: ", what, (unsigned long long)id, field);
		tstr(a ? a : "(none)");
		printf(" -> ");
		tstr(b ? b : "(none)");
		putchar('\n');
	}
	d->n++;
}

static void presence(struct differ *d, bool added, const char *what, uint64_t id, const char *path)
{
	if (json_out) {
		printf("%s{\"what\":\"%s\",\"id\":%llu,\"change\":\"%s\",\"path\":",
		       d->n ? "," : "", what, (unsigned long long)id, added ? "added" : "removed");
		jstr(path);
		printf("}");
	} else {
		printf("%c %s %llu ", added ? '+' : '-', what, (unsigned long long)id);
		tstr(path);
		putchar('\n');
	}
	d->n++;
}

#define DIFF_U64(d, what, id, field, x, y)                                                         \
	do {                                                                                       \
		if ((x) != (y)) {                                                                  \
			char _a[32], _b[32];                                                       \
			snprintf(_a, sizeof(_a), "%llu", (unsigned long long)(x));                 \
			snprintf(_b, sizeof(_b), "%llu", (unsigned long long)(y));                 \
			change((d), (what), (id), (field), _a, _b);                                \
		}                                                                                  \
	} while (0)

static void fh_text(const struct vfsd_state_inode *in, char *buf, size_t size)
{
	size_t n;

	if (!in->has_file_handle) {
		buf[0] = 0;
		return;
	}
	n = (size_t)snprintf(buf, size, "%d:", in->fh_type);
	for (size_t i = 0; i < in->fh_size && n + 3 < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%02x", in->fh_bytes[i]);
	snprintf(buf + n, size - n, "@%llu", (unsigned long long)in->mnt_id);
}

static void diff_inode(struct differ *d, const struct vfsd_state *sa,
		       const struct vfsd_state_inode *a, const struct vfsd_state *sb,
		       const struct vfsd_state_inode *b)
{
	char pa[8192], pb[8192];
	char fa[300], fb[300];

	if (a->type != b->type)
		change(d, "inode", a->id, "type", vfsd_state_type_name(a->type),
		       vfsd_state_type_name(b->type));
	DIFF_U64(d, "inode", a->id, "nlookup", a->nlookup, b->nlookup);
	DIFF_U64(d, "inode", a->id, "parent", a->parent, b->parent);
	path_of(sa, a->id, pa, sizeof(pa));
	path_of(sb, b->id, pb, sizeof(pb));
	if (strcmp(pa, pb) != 0)
		change(d, "inode", a->id, "path", pa, pb);
	if (!!a->orphan != !!b->orphan || (a->orphan && strcmp(a->orphan, b->orphan) != 0))
		change(d, "inode", a->id, "orphan", a->orphan, b->orphan);
	if (a->lost != b->lost)
		change(d, "inode", a->id, "lost", a->lost ? vfsd_state_lost_name(a->lost) : NULL,
		       b->lost ? vfsd_state_lost_name(b->lost) : NULL);
	if (a->has_ino != b->has_ino || a->ino != b->ino) {
		snprintf(fa, sizeof(fa), "%llu", (unsigned long long)a->ino);
		snprintf(fb, sizeof(fb), "%llu", (unsigned long long)b->ino);
		change(d, "inode", a->id, "ino", a->has_ino ? fa : NULL, b->has_ino ? fb : NULL);
	}
	fh_text(a, fa, sizeof(fa));
	fh_text(b, fb, sizeof(fb));
	if (strcmp(fa, fb) != 0)
		change(d, "inode", a->id, "file_handle", fa[0] ? fa : NULL, fb[0] ? fb : NULL);
}

static void diff_handle(struct differ *d, const struct vfsd_state_handle *a,
			const struct vfsd_state_handle *b)
{
	DIFF_U64(d, "handle", a->fh, "inode", a->inode, b->inode);
	if (a->flags != b->flags) {
		char fa[256], fb[256];

		flags_text(a->flags, fa, sizeof(fa));
		flags_text(b->flags, fb, sizeof(fb));
		change(d, "handle", a->fh, "flags", fa, fb);
	}
	DIFF_U64(d, "handle", a->fh, "dir", a->dir, b->dir);
	if (a->has_dir_offset != b->has_dir_offset || a->dir_offset != b->dir_offset) {
		char fa[32], fb[32];

		snprintf(fa, sizeof(fa), "%llu", (unsigned long long)a->dir_offset);
		snprintf(fb, sizeof(fb), "%llu", (unsigned long long)b->dir_offset);
		change(d, "handle", a->fh, "dir_offset", a->has_dir_offset ? fa : NULL,
		       b->has_dir_offset ? fb : NULL);
	}
}

static int cmd_diff(const char *pa, const char *pb)
{
	struct input ia, ib;
	struct vfsd_state *a = NULL, *b = NULL;
	struct differ d = { 0 };
	char path[8192];
	int r;

	if (strcmp(pa, "-") == 0 && strcmp(pb, "-") == 0) {
		fprintf(stderr, "vfsd-state: diff: only one input can be standard input\n");
		return EXIT_TROUBLE;
	}
	r = load(pa, &ia, &a);
	if (r != EXIT_VALID)
		return EXIT_TROUBLE;
	r = load(pb, &ib, &b);
	if (r != EXIT_VALID) {
		vfsd_state_free(a);
		input_close(&ia);
		return EXIT_TROUBLE;
	}
	if (json_out) {
		printf("{\"a\":");
		jstr(ia.name);
		printf(",\"b\":");
		jstr(ib.name);
		printf(",\"changes\":[");
	}
	{
		const struct vfsd_state_session *x = &a->session, *y = &b->session;
		char va[16], vb[16];

		snprintf(va, sizeof(va), "%u.%u", a->header.major, a->header.minor);
		snprintf(vb, sizeof(vb), "%u.%u", b->header.major, b->header.minor);
		if (strcmp(va, vb) != 0)
			change(&d, "header", 0, "version", va, vb);
		if (strcmp(a->header.producer, b->header.producer) != 0)
			change(&d, "header", 0, "producer", a->header.producer, b->header.producer);
		DIFF_U64(&d, "session", 0, "initialized", x->initialized, y->initialized);
		DIFF_U64(&d, "session", 0, "fuse.major", x->fuse_major, y->fuse_major);
		DIFF_U64(&d, "session", 0, "fuse.minor", x->fuse_minor, y->fuse_minor);
		DIFF_U64(&d, "session", 0, "fuse.flags", x->fuse_flags, y->fuse_flags);
		DIFF_U64(&d, "session", 0, "fuse.max_write", x->max_write, y->max_write);
		DIFF_U64(&d, "session", 0, "fuse.max_readahead", x->max_readahead,
			 y->max_readahead);
		DIFF_U64(&d, "session", 0, "next_nodeid", x->next_nodeid, y->next_nodeid);
		DIFF_U64(&d, "session", 0, "next_fh", x->next_fh, y->next_fh);
		if (x->mode != y->mode)
			change(&d, "session", 0, "migration_mode", vfsd_state_mode_name(x->mode),
			       vfsd_state_mode_name(y->mode));
	}
	for (size_t i = 0; i < a->n_inodes; i++) {
		const struct vfsd_state_inode *x = &a->inodes[i];
		const struct vfsd_state_inode *y = vfsd_state_inode_by_id(b, x->id);

		if (!y) {
			path_of(a, x->id, path, sizeof(path));
			presence(&d, false, "inode", x->id, path);
		} else {
			diff_inode(&d, a, x, b, y);
		}
	}
	for (size_t i = 0; i < b->n_inodes; i++) {
		if (!vfsd_state_inode_by_id(a, b->inodes[i].id)) {
			path_of(b, b->inodes[i].id, path, sizeof(path));
			presence(&d, true, "inode", b->inodes[i].id, path);
		}
	}
	for (size_t i = 0; i < a->n_handles; i++) {
		const struct vfsd_state_handle *x = &a->handles[i];
		const struct vfsd_state_handle *y = vfsd_state_handle_by_fh(b, x->fh);

		if (!y) {
			path_of(a, x->inode, path, sizeof(path));
			presence(&d, false, "handle", x->fh, path);
		} else {
			diff_handle(&d, x, y);
		}
	}
	for (size_t i = 0; i < b->n_handles; i++) {
		if (!vfsd_state_handle_by_fh(a, b->handles[i].fh)) {
			path_of(b, b->handles[i].inode, path, sizeof(path));
			presence(&d, true, "handle", b->handles[i].fh, path);
		}
	}
	if (json_out)
		printf("],\"equal\":%s}\n", d.n ? "false" : "true");
	else if (d.n == 0)
		printf("no differences\n");
	vfsd_state_free(a);
	vfsd_state_free(b);
	input_close(&ia);
	input_close(&ib);
	return d.n ? 1 : 0;
}

/* ---- convert -------------------------------------------------------------------------------- */

/* Remove a required feature from the header (no-op when absent). */
static void drop_required(struct vfsd_state_header *h, const char *name)
{
	for (size_t i = 0; i < h->n_required; i++) {
		if (strcmp(h->required[i], name) != 0)
			continue;
		memmove(h->required[i], h->required[i + 1],
			(h->n_required - i - 1) * sizeof(h->required[0]));
		h->n_required--;
		return;
	}
}

/*
 * Write @s with header @h to @fd. With @drop_lost (a version before 1.1),
 * lost inodes and the handles on them are left out and counted: that
 * version cannot carry them, and nothing else refers to them (a lost inode
 * is nobody's parent).
 */
static int write_converted(const struct vfsd_state *s, const struct vfsd_state_header *h, int fd,
			   bool drop_lost, uint64_t *ret_inodes, uint64_t *ret_handles)
{
	struct vfsd_state_writer *w;
	int r = vfsd_state_writer_open(fd, h, &w);

	*ret_inodes = *ret_handles = 0;
	if (r < 0)
		return r;
	r = vfsd_state_writer_session(w, &s->session);
	for (size_t i = 0; r == 0 && i < s->n_inodes; i++) {
		if (drop_lost && s->inodes[i].lost) {
			(*ret_inodes)++;
			continue;
		}
		r = vfsd_state_writer_inode(w, &s->inodes[i]);
	}
	for (size_t i = 0; r == 0 && i < s->n_handles; i++) {
		const struct vfsd_state_inode *in = vfsd_state_inode_by_id(s, s->handles[i].inode);

		if (drop_lost && in && in->lost) {
			(*ret_handles)++;
			continue;
		}
		r = vfsd_state_writer_handle(w, &s->handles[i]);
	}
	if (r < 0) {
		vfsd_state_writer_free(w);
		return r;
	}
	return vfsd_state_writer_close(w);
}

static int cmd_convert(const char *to, const char *pin, const char *pout)
{
	struct input in;
	struct vfsd_state *s = NULL;
	struct vfsd_state_header h;
	unsigned int major, minor;
	uint64_t lost_inodes, lost_handles;
	int n = 0, r, fd;

	if (!to || sscanf(to, "%u.%u%n", &major, &minor, &n) != 2 || (size_t)n != strlen(to)) {
		fprintf(stderr, "vfsd-state: convert needs --to=MAJOR.MINOR\n");
		return EXIT_TROUBLE;
	}
	if (major != VFSD_STATE_MAJOR || minor > VFSD_STATE_MINOR) {
		fprintf(
		    stderr,
		    "vfsd-state: cannot write version %u.%u (this build writes %d.0 to %d.%d)\n",
		    major, minor, VFSD_STATE_MAJOR, VFSD_STATE_MAJOR, VFSD_STATE_MINOR);
		return EXIT_TROUBLE;
	}
	r = load(pin, &in, &s);
	if (r != EXIT_VALID)
		return r;
	input_close(&in);
	/*
	 * The reader dropped records and fields it does not know (the optional
	 * ones of a newer minor); the optional features announcing them go too.
	 * 1.0 and 1.1 define no optional features. 1.0 has no lost records.
	 */
	h = s->header;
	h.major = major;
	h.minor = minor;
	h.n_optional = 0;
	if (minor < 1)
		drop_required(&h, VFSD_STATE_FEATURE_LOST);
	if (strcmp(pout, "-") == 0)
		fd = STDOUT_FILENO;
	else
		fd = open(pout, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "vfsd-state: %s: %m\n", pout);
		vfsd_state_free(s);
		return EXIT_TROUBLE;
	}
	r = write_converted(s, &h, fd, minor < 1, &lost_inodes, &lost_handles);
	if (fd != STDOUT_FILENO && close(fd) < 0 && r == 0)
		r = -errno;
	vfsd_state_free(s);
	if (r < 0) {
		fprintf(stderr, "vfsd-state: writing %s: %s\n", pout, strerror(-r));
		if (fd != STDOUT_FILENO)
			unlink(pout);
		return EXIT_TROUBLE;
	}
	if (lost_inodes || lost_handles)
		fprintf(stderr,
			"vfsd-state: version %u.%u cannot carry lost inodes: dropped %llu lost "
			"inode%s and %llu handle%s on them\n",
			major, minor, (unsigned long long)lost_inodes, lost_inodes == 1 ? "" : "s",
			(unsigned long long)lost_handles, lost_handles == 1 ? "" : "s");
	if (json_out)
		printf(
		    "{\"converted\":true,\"version\":\"%u.%u\",\"dropped\":{\"lost_inodes\":%llu,"
		    "\"handles\":%llu}}\n",
		    major, minor, (unsigned long long)lost_inodes,
		    (unsigned long long)lost_handles);
	return EXIT_VALID;
}

int main(int argc, char **argv)
{
	enum { OPT_JSON = 0x100, OPT_MIG, OPT_TO, OPT_VERSION };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "from-migration-stream", no_argument, NULL, OPT_MIG },
		{ "to", required_argument, NULL, OPT_TO },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{},
	};
	const char *to = NULL, *cmd;
	int c, nargs;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case OPT_JSON:
			json_out = true;
			break;
		case OPT_MIG:
			force_migstream = true;
			break;
		case OPT_TO:
			to = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("vfsd-state " VFSD_VERSION " (state format %d.%d)\n",
			       VFSD_STATE_MAJOR, VFSD_STATE_MINOR);
			return 0;
		default:
			usage(stderr);
			return EXIT_TROUBLE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_TROUBLE;
	}
	cmd = argv[optind++];
	nargs = argc - optind;
	if (strcmp(cmd, "convert") != 0 && to) {
		fprintf(stderr, "vfsd-state: --to is for convert\n");
		return EXIT_TROUBLE;
	}
	if (strcmp(cmd, "validate") == 0 && nargs <= 1)
		return cmd_validate(nargs ? argv[optind] : "-");
	if (strcmp(cmd, "show") == 0 && nargs <= 1)
		return cmd_show(nargs ? argv[optind] : "-");
	if (strcmp(cmd, "stats") == 0 && nargs <= 1)
		return cmd_stats(nargs ? argv[optind] : "-");
	if (strcmp(cmd, "diff") == 0 && nargs == 2)
		return cmd_diff(argv[optind], argv[optind + 1]);
	if (strcmp(cmd, "convert") == 0 && nargs == 2)
		return cmd_convert(to, argv[optind], argv[optind + 1]);
	fprintf(stderr, "vfsd-state: bad command line (see vfsd-state --help)\n");
	return EXIT_TROUBLE;
}
