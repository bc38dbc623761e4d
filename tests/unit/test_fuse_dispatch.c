/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the FUSE dispatcher (src/fuse/fuse_server.c): requests are
 * built in plain buffers and fed through iovecs split at odd boundaries
 * (zero-length ones included) into a session over a fake fs that records
 * every call.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vfsd/chain_io.h"
#include "vfsd/fuse.h"
#include "vfsd/util.h"

#define OUT_HDR sizeof(struct fuse_out_header)
#define IN_HDR	sizeof(struct fuse_in_header)

/* ---- the fake filesystem ---- */

struct fake {
	int resets, destroys;
	int calls;	  /* ops called, any kind (except reset/destroy/forget) */
	const char *last; /* name of the last op called */
	struct vfsd_fs_ctx ctx;
	uint64_t nodeid, newparent;
	char name[512], newname[512];
	uint32_t flags;
	union {
		struct fuse_getattr_in getattr;
		struct fuse_setattr_in setattr;
		struct fuse_mkdir_in mkdir;
		struct fuse_create_in create;
		struct fuse_read_in read;
		struct fuse_write_in write;
		struct fuse_flush_in flush;
		struct fuse_release_in release;
		struct fuse_fsync_in fsync;
		struct fuse_mknod_in mknod;
	} in;
	/* SYMLINK: the target the op got; READLINK: what the op returns */
	char target[VFSD_PATH_MAX + 1];
	int readlink_len; /* READLINK: the length the op claims (0: strlen(target)) */
	size_t readlink_size;
	uint64_t oldnodeid; /* LINK */
	bool plus;
	size_t dirbuf_size;
	/* forgets */
	int nforgets;
	uint64_t forget_ids[8], forget_n[8];
	/* WRITE: what the op could read */
	uint8_t wdata[4096];
	size_t wlen;
	bool overread_refused;
	/* READ: how the op fills */
	bool read_advances;
	int read_extra; /* return this many bytes more than filled */
	/* result of every op that returns int (0 means the op's natural success) */
	int ret;
};

static struct fake F;
static struct vfsd_fuse_session S;

static void record(const char *op, const struct vfsd_fs_ctx *ctx, uint64_t nodeid)
{
	F.calls++;
	F.last = op;
	F.ctx = *ctx;
	F.nodeid = nodeid;
}

static void fake_reset(void *fs)
{
	cr_assert_eq(fs, &F);
	F.resets++;
}

static void fake_destroy(void *fs)
{
	F.destroys++;
}

static void fill_entry(struct fuse_entry_out *e, uint64_t nodeid)
{
	e->nodeid = nodeid;
	e->generation = 7;
	e->attr.ino = nodeid + 1000;
	e->attr.mode = 040755;
}

static int fake_lookup(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		       struct fuse_entry_out *ret)
{
	record("lookup", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	fill_entry(ret, 42);
	return F.ret;
}

static void fake_forget(void *fs, uint64_t nodeid, uint64_t nlookup)
{
	if (F.nforgets < 8) {
		F.forget_ids[F.nforgets] = nodeid;
		F.forget_n[F.nforgets] = nlookup;
	}
	F.nforgets++;
}

static int fake_getattr(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			const struct fuse_getattr_in *in, struct fuse_attr_out *ret)
{
	record("getattr", ctx, nodeid);
	F.in.getattr = *in;
	ret->attr_valid = 5;
	ret->attr.ino = nodeid;
	ret->attr.size = 12345;
	return F.ret;
}

static int fake_setattr(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			const struct fuse_setattr_in *in, struct fuse_attr_out *ret)
{
	record("setattr", ctx, nodeid);
	F.in.setattr = *in;
	ret->attr.size = in->size;
	return F.ret;
}

static int fake_mkdir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      const struct fuse_mkdir_in *in, struct fuse_entry_out *ret)
{
	record("mkdir", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	F.in.mkdir = *in;
	fill_entry(ret, 43);
	return F.ret;
}

static int fake_unlink(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	record("unlink", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	return F.ret;
}

static int fake_rmdir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	record("rmdir", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	return F.ret;
}

static int fake_rename(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		       uint64_t newparent, const char *newname, uint32_t flags)
{
	record("rename", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	snprintf(F.newname, sizeof(F.newname), "%s", newname);
	F.newparent = newparent;
	F.flags = flags;
	return F.ret;
}

static int fake_open(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		     struct fuse_open_out *ret)
{
	record("open", ctx, nodeid);
	F.flags = flags;
	ret->fh = 0x1234;
	ret->open_flags = FOPEN_KEEP_CACHE;
	return F.ret;
}

static int fake_opendir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
			struct fuse_open_out *ret)
{
	record("opendir", ctx, nodeid);
	F.flags = flags;
	ret->fh = 0x5678;
	return F.ret;
}

static int fake_create(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		       const struct fuse_create_in *in, struct fuse_entry_out *ret_entry,
		       struct fuse_open_out *ret_open)
{
	record("create", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	F.in.create = *in;
	fill_entry(ret_entry, 44);
	ret_open->fh = 0x9abc;
	return F.ret;
}

static int fake_read(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_read_in *in, struct vfsd_writer *w)
{
	struct iovec iov[VFSD_CHAIN_MAX_IOV];
	unsigned int n;
	size_t done = 0;
	int ret;

	record("read", ctx, nodeid);
	F.in.read = *in;
	if (F.ret)
		return F.ret;
	/* zero-copy: fill the guest's buffers in place with a position pattern */
	ret = vfsd_writer_iov(w, in->size, iov, VFSD_CHAIN_MAX_IOV, &n);
	cr_assert_eq(ret, 0);
	for (unsigned int i = 0; i < n; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++, done++)
			((uint8_t *)iov[i].iov_base)[j] = (uint8_t)(in->offset + done);
	cr_assert_eq(done, MIN((size_t)in->size, vfsd_writer_available(w)));
	if (F.read_advances)
		cr_assert_eq(vfsd_writer_advance(w, done), 0);
	return (int)done + F.read_extra;
}

static int fake_write(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_write_in *in, struct vfsd_reader *r)
{
	uint8_t extra;

	record("write", ctx, nodeid);
	F.in.write = *in;
	F.wlen = MIN((size_t)in->size, sizeof(F.wdata));
	cr_assert_eq(vfsd_reader_available(r), in->size);
	cr_assert_eq(vfsd_reader_read(r, F.wdata, F.wlen), 0);
	cr_assert_eq(vfsd_reader_skip(r, in->size - F.wlen), 0);
	F.overread_refused = vfsd_reader_read(r, &extra, 1) == -EINVAL;
	return F.ret ? F.ret : (int)in->size;
}

static int fake_flush(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_flush_in *in)
{
	record("flush", ctx, nodeid);
	F.in.flush = *in;
	return F.ret;
}

static int fake_release(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			const struct fuse_release_in *in)
{
	record("release", ctx, nodeid);
	F.in.release = *in;
	return F.ret;
}

static int fake_releasedir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			   const struct fuse_release_in *in)
{
	record("releasedir", ctx, nodeid);
	F.in.release = *in;
	return F.ret;
}

static int fake_fsync(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_fsync_in *in)
{
	record("fsync", ctx, nodeid);
	F.in.fsync = *in;
	return F.ret;
}

static int fake_readdir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			const struct fuse_read_in *in, bool plus, struct vfsd_dirbuf *buf)
{
	static const char *names[] = { "alpha", "b", "a-much-longer-name.txt" };
	struct fuse_entry_out e = { 0 };

	record("readdir", ctx, nodeid);
	F.in.read = *in;
	F.plus = plus;
	F.dirbuf_size = buf->size;
	if (F.ret)
		return F.ret;
	for (unsigned int i = (unsigned int)in->offset; i < ARRAY_SIZE(names); i++) {
		int ret;

		fill_entry(&e, 100 + i);
		if (plus)
			ret = vfsd_dirbuf_add_plus(buf, names[i], strlen(names[i]), &e, DT_REG,
						   i + 1);
		else
			ret = vfsd_dirbuf_add(buf, names[i], strlen(names[i]), 100 + i, DT_REG,
					      i + 1);
		if (ret < 0)
			break;
	}
	return 0;
}

static int fake_statfs(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		       struct fuse_kstatfs *ret)
{
	record("statfs", ctx, nodeid);
	ret->blocks = 1000;
	ret->bsize = 4096;
	ret->namelen = 255;
	return F.ret;
}

static int fake_readlink(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, char *buf,
			 size_t size)
{
	size_t len = strlen(F.target);

	record("readlink", ctx, nodeid);
	F.readlink_size = size;
	if (F.ret)
		return F.ret;
	memcpy(buf, F.target, MIN(len, size));
	return F.readlink_len ? F.readlink_len : (int)len;
}

static int fake_symlink(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
			const char *target, struct fuse_entry_out *ret)
{
	record("symlink", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	snprintf(F.target, sizeof(F.target), "%s", target);
	fill_entry(ret, 45);
	ret->attr.mode = S_IFLNK | 0777;
	return F.ret;
}

static int fake_mknod(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      const struct fuse_mknod_in *in, struct fuse_entry_out *ret)
{
	record("mknod", ctx, parent);
	snprintf(F.name, sizeof(F.name), "%s", name);
	F.in.mknod = *in;
	fill_entry(ret, 46);
	ret->attr.mode = in->mode;
	return F.ret;
}

static int fake_link(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t oldnodeid,
		     uint64_t newparent, const char *newname, struct fuse_entry_out *ret)
{
	record("link", ctx, newparent);
	F.oldnodeid = oldnodeid;
	snprintf(F.newname, sizeof(F.newname), "%s", newname);
	fill_entry(ret, oldnodeid);
	return F.ret;
}

static const struct vfsd_fs_ops fake_ops = {
	.reset = fake_reset,
	.destroy = fake_destroy,
	.lookup = fake_lookup,
	.forget = fake_forget,
	.getattr = fake_getattr,
	.setattr = fake_setattr,
	.mkdir = fake_mkdir,
	.unlink = fake_unlink,
	.rmdir = fake_rmdir,
	.rename = fake_rename,
	.open = fake_open,
	.create = fake_create,
	.read = fake_read,
	.write = fake_write,
	.flush = fake_flush,
	.release = fake_release,
	.fsync = fake_fsync,
	.opendir = fake_opendir,
	.readdir = fake_readdir,
	.releasedir = fake_releasedir,
	.statfs = fake_statfs,
	.readlink = fake_readlink,
	.symlink = fake_symlink,
	.mknod = fake_mknod,
	.link = fake_link,
};

/* Only the bare minimum: everything else must be -ENOSYS. */
static const struct vfsd_fs_ops sparse_ops = {
	.lookup = fake_lookup,
};

/* ---- building requests and running them over split iovecs ---- */

struct rb {
	uint8_t *b;
	size_t len, cap;
};

static uint64_t next_unique = 0x100;

static void rb_put(struct rb *q, const void *p, size_t n)
{
	cr_assert_leq(q->len + n, q->cap);
	memcpy(q->b + q->len, p, n);
	q->len += n;
}

static void rb_begin(struct rb *q, uint32_t opcode, uint64_t nodeid)
{
	struct fuse_in_header h = {
		.opcode = opcode,
		.unique = next_unique++,
		.nodeid = nodeid,
		.uid = 1000,
		.gid = 1001,
		.pid = 4242,
	};

	if (!q->b) {
		q->cap = 8192;
		q->b = calloc(1, q->cap);
		cr_assert_not_null(q->b);
	}
	q->len = 0;
	rb_put(q, &h, sizeof(h));
}

static void rb_str(struct rb *q, const char *s)
{
	rb_put(q, s, strlen(s) + 1);
}

/* Set fuse_in_header.len to @len (the real length when 0). */
static void rb_len(struct rb *q, uint32_t len)
{
	uint32_t l = len ? len : (uint32_t)q->len;

	memcpy(q->b + offsetof(struct fuse_in_header, len), &l, sizeof(l));
}

static uint64_t rb_unique(const struct rb *q)
{
	uint64_t u;

	memcpy(&u, q->b + offsetof(struct fuse_in_header, unique), sizeof(u));
	return u;
}

static void rb_free(struct rb *q)
{
	free(q->b);
	*q = (struct rb){ 0 };
}

/*
 * Cover @len bytes of @base with iovecs of the odd sizes in @pat (x @scale),
 * empties included, up to @odd bytes; the rest is one iovec.
 */
static unsigned int split(uint8_t *base, size_t len, const unsigned int *pat, size_t npat,
			  size_t scale, size_t odd, struct iovec **ret)
{
	size_t max = MIN(len, odd) + 2 * npat + 4, off = 0;
	struct iovec *iov = calloc(max, sizeof(*iov));
	unsigned int n = 0;

	cr_assert_not_null(iov);
	for (size_t i = 0; off < len; i++) {
		size_t piece = off >= odd ? len - off : MIN(pat[i % npat] * scale, len - off);

		cr_assert_lt(n, max);
		iov[n].iov_base = piece ? base + off : NULL;
		iov[n++].iov_len = piece;
		off += piece;
	}
	iov[n].iov_base = NULL; /* a trailing empty one */
	iov[n++].iov_len = 0;
	*ret = iov;
	return n;
}

static const unsigned int in_pat[] = { 3, 0, 1, 11, 0, 7, 5, 13, 2, 17, 0, 41 };
static const unsigned int out_pat[] = { 5, 0, 1, 9, 0, 3, 23, 7, 0, 2 };

#define OUT_CAP (VFSD_MAX_READDIR + 4096)
/* The io ring handed to vfsd_fuse_handle(): only compared, never used. */
#define FAKE_IO ((struct vfsd_io *)&next_unique)
static uint8_t out[OUT_CAP];

/*
 * Run one request: the chain's readable part is @chain_len bytes of @req,
 * the writable part the first @room bytes of out[] (pre-filled with 0xAA).
 */
static int run_raw(const uint8_t *req, size_t chain_len, size_t room, size_t scale)
{
	_cleanup_free_ struct iovec *riov = NULL, *wiov = NULL;
	_cleanup_free_ uint8_t *copy = malloc(chain_len ? chain_len : 1);
	struct vfsd_reader r;
	struct vfsd_writer w;
	unsigned int rn, wn;
	int ret;

	cr_assert_not_null(copy);
	cr_assert_leq(room, OUT_CAP);
	/* an exact-size heap copy, so ASan sees any read past the chain */
	memcpy(copy, req, chain_len);
	memset(out, 0xAA, sizeof(out));
	rn = split(copy, chain_len, in_pat, ARRAY_SIZE(in_pat), scale, SIZE_MAX, &riov);
	wn = split(out, room, out_pat, ARRAY_SIZE(out_pat), 1, 1024, &wiov);
	cr_assert_eq(vfsd_reader_init(&r, riov, rn), 0);
	cr_assert_eq(vfsd_writer_init(&w, wiov, wn), 0);
	ret = vfsd_fuse_handle(&S, &r, &w, FAKE_IO);
	if (ret >= 0)
		cr_assert_eq(vfsd_writer_written(&w), (size_t)ret,
			     "the writer must end after the reply");
	return ret;
}

static int run(const struct rb *q)
{
	return run_raw(q->b, q->len, OUT_CAP, 1);
}

static struct fuse_out_header out_hdr(void)
{
	struct fuse_out_header oh;

	memcpy(&oh, out, sizeof(oh));
	return oh;
}

static bool check_tail = true;

/* Assert a reply of @payload bytes with @error for @q, as returned by run(). */
static void assert_reply(const struct rb *q, int ret, int error, size_t payload)
{
	struct fuse_out_header oh = out_hdr();

	cr_assert_eq(ret, (int)(OUT_HDR + payload), "handle returned %d, want %zu", ret,
		     OUT_HDR + payload);
	cr_assert_eq(oh.len, OUT_HDR + payload, "reply len %u", oh.len);
	cr_assert_eq(oh.error, error, "reply error %d, want %d", oh.error, error);
	cr_assert_eq(oh.unique, rb_unique(q));
	if (check_tail)
		cr_assert_eq(out[ret], 0xAA, "nothing written past the reply");
}

static void assert_error(const struct rb *q, int ret, int error)
{
	assert_reply(q, ret, error, 0);
}

/* INIT with a full-size (minor >= 36) or compat fuse_init_in. */
static int send_init(struct rb *q, uint32_t major, uint32_t minor, uint32_t flags, uint32_t flags2,
		     size_t in_size)
{
	struct fuse_init_in in = {
		.major = major,
		.minor = minor,
		.max_readahead = 128 * 1024,
		.flags = flags,
		.flags2 = flags2,
	};

	rb_begin(q, FUSE_INIT, 0);
	rb_put(q, &in, in_size);
	rb_len(q, 0);
	return run(q);
}

static struct fuse_init_out init_out(void)
{
	struct fuse_init_out o = { 0 };

	memcpy(&o, out + OUT_HDR, sizeof(o));
	return o;
}

#define ALL_OFFERED                                                                                \
	(FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_BIG_WRITES | FUSE_AUTO_INVAL_DATA |         \
	 FUSE_ASYNC_DIO | FUSE_ATOMIC_O_TRUNC | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS |             \
	 FUSE_READDIRPLUS_AUTO | FUSE_INIT_EXT)

/* A Linux 6.x guest's INIT: everything it knows plus flags we do not offer. */
static void init_session(void)
{
	struct rb q = { 0 };
	int ret = send_init(&q, 7, 38, ALL_OFFERED | FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE, 0,
			    sizeof(struct fuse_init_in));

	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	cr_assert(S.initialized);
	rb_free(&q);
}

static void setup_common(const struct vfsd_fs_ops *ops)
{
	memset(&F, 0, sizeof(F));
	cr_assert_eq(vfsd_fuse_session_init(&S, ops, &F), 0);
}

static void setup(void)
{
	setup_common(&fake_ops);
}

static void setup_inited(void)
{
	setup_common(&fake_ops);
	init_session();
}

static void setup_sparse(void)
{
	setup_common(&sparse_ops);
	init_session();
}

static void teardown(void)
{
	vfsd_fuse_session_done(&S);
}

TestSuite(init, .init = setup, .fini = teardown);
TestSuite(ops, .init = setup_inited, .fini = teardown);
TestSuite(malformed, .init = setup_inited, .fini = teardown);
TestSuite(sparse, .init = setup_sparse, .fini = teardown);

/* ---- INIT ---- */

Test(init, negotiates_flags_and_limits)
{
	struct rb q = { 0 };
	struct fuse_init_out o;
	int ret;

	ret = send_init(&q, 7, 38, ALL_OFFERED | FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE,
			0xffffffffu, sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	o = init_out();
	cr_assert_eq(o.major, 7);
	cr_assert_eq(o.minor, 38);
	cr_assert_eq(o.flags, ALL_OFFERED, "flags 0x%x", o.flags);
	cr_assert_eq(o.flags2, 0, "we offer no flags2 bits");
	cr_assert_eq(o.max_write, VFSD_MAX_WRITE);
	cr_assert_eq(o.max_pages, VFSD_MAX_PAGES);
	cr_assert_eq(o.max_readahead, 128 * 1024);
	cr_assert_eq(o.time_gran, 1);
	cr_assert(S.initialized);
	cr_assert_eq(S.conn.minor, 38);
	cr_assert_eq(S.conn.flags, (uint64_t)ALL_OFFERED);
	cr_assert_eq(S.conn.max_write, VFSD_MAX_WRITE);
	cr_assert_eq(F.resets, 0, "a first INIT has nothing to reset");
	rb_free(&q);
}

Test(init, intersection_with_few_guest_flags)
{
	struct rb q = { 0 };
	int ret;

	ret = send_init(&q, 7, 38, FUSE_ASYNC_READ | FUSE_POSIX_LOCKS, 0,
			sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	cr_assert_eq(init_out().flags, FUSE_ASYNC_READ);
	rb_free(&q);
}

Test(init, newer_minor_is_capped)
{
	struct rb q = { 0 };
	int ret;

	ret = send_init(&q, 7, 40, FUSE_ASYNC_READ, 0, sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	cr_assert_eq(init_out().minor, FUSE_KERNEL_MINOR_VERSION);
	cr_assert_eq(S.conn.minor, FUSE_KERNEL_MINOR_VERSION);
	rb_free(&q);
}

Test(init, old_minor_with_compat_in_struct)
{
	struct rb q = { 0 };
	struct fuse_init_out o;
	int ret;

	/* 7.31 sends the 16-byte fuse_init_in; INIT_EXT means nothing before 7.36 */
	ret = send_init(&q, 7, 31, FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_INIT_EXT, 0, 16);
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	o = init_out();
	cr_assert_eq(o.minor, 31);
	cr_assert_eq(o.flags, FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS);
	cr_assert_eq(S.conn.minor, 31);
	rb_free(&q);
}

Test(init, minimum_minor_accepted)
{
	struct rb q = { 0 };
	int ret;

	ret = send_init(&q, 7, VFSD_FUSE_MIN_MINOR, 0, 0, 16);
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	cr_assert_eq(init_out().minor, VFSD_FUSE_MIN_MINOR);
	cr_assert(S.initialized);
	rb_free(&q);
}

Test(init, old_minor_rejected)
{
	struct rb q = { 0 };
	int ret;

	ret = send_init(&q, 7, VFSD_FUSE_MIN_MINOR - 1, FUSE_ASYNC_READ, 0, 16);
	assert_error(&q, ret, -EPROTO);
	cr_assert_not(S.initialized);
	ret = send_init(&q, 6, 38, 0, 0, 16);
	assert_error(&q, ret, -EPROTO);
	cr_assert_not(S.initialized);
	rb_free(&q);
}

Test(init, newer_major_gets_our_version)
{
	struct rb q = { 0 };
	struct fuse_init_out o;
	int ret;

	ret = send_init(&q, 8, 2, FUSE_ASYNC_READ, 0, sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	o = init_out();
	cr_assert_eq(o.major, 7);
	cr_assert_eq(o.minor, FUSE_KERNEL_MINOR_VERSION);
	cr_assert_not(S.initialized, "the guest has to retry with 7.x");
	rb_free(&q);
}

Test(init, ext_minor_needs_full_in_struct)
{
	struct rb q = { 0 };
	int ret;

	/* 7.36+ sends 64 bytes; 16 is a truncated request */
	ret = send_init(&q, 7, 36, FUSE_ASYNC_READ | FUSE_INIT_EXT, 0, 16);
	assert_error(&q, ret, -EIO);
	cr_assert_not(S.initialized);
	ret = send_init(&q, 7, 36, FUSE_ASYNC_READ | FUSE_INIT_EXT, 0, 8);
	assert_error(&q, ret, -EIO);
	rb_free(&q);
}

Test(init, request_before_init_is_eio)
{
	struct rb q = { 0 };
	struct fuse_getattr_in in = { 0 };
	int ret;

	rb_begin(&q, FUSE_GETATTR, 1);
	rb_put(&q, &in, sizeof(in));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	cr_assert_eq(F.calls, 0);
	/* also DESTROY */
	rb_begin(&q, FUSE_DESTROY, 0);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	cr_assert_eq(F.destroys, 0);
	rb_free(&q);
}

static const char *last_reset_why;
static int reset_notes;

static void note_reset(void *arg, const char *why)
{
	cr_assert_eq(arg, &S);
	last_reset_why = why;
	reset_notes++;
}

Test(init, second_init_resets)
{
	struct rb q = { 0 };
	int ret;

	init_session();
	S.on_reset = note_reset;
	S.on_reset_arg = &S;
	reset_notes = 0;
	cr_assert_eq(F.resets, 0);
	ret = send_init(&q, 7, 38, FUSE_ASYNC_READ, 0, sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	cr_assert_eq(F.resets, 1);
	cr_assert_eq(reset_notes, 1);
	cr_assert_str_eq(last_reset_why, "FUSE INIT on a live session");
	cr_assert_eq(S.conn.flags, FUSE_ASYNC_READ, "renegotiated");
	/* a rejected INIT on a live session changes nothing */
	ret = send_init(&q, 7, 20, FUSE_ASYNC_READ, 0, 16);
	assert_error(&q, ret, -EPROTO);
	cr_assert_eq(F.resets, 1);
	cr_assert(S.initialized);
	rb_free(&q);
}

Test(init, destroy_uninitializes)
{
	struct rb q = { 0 };
	struct fuse_getattr_in in = { 0 };
	int ret;

	init_session();
	rb_begin(&q, FUSE_DESTROY, 0);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_eq(F.destroys, 1);
	cr_assert_not(S.initialized);
	rb_begin(&q, FUSE_GETATTR, 1);
	rb_put(&q, &in, sizeof(in));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(init, session_reset)
{
	init_session();
	S.on_reset = note_reset;
	S.on_reset_arg = &S;
	reset_notes = 0;
	vfsd_fuse_session_reset(&S, "test");
	cr_assert_eq(F.resets, 1);
	cr_assert_not(S.initialized);
	cr_assert_eq(S.conn.flags, 0);
	cr_assert_eq(reset_notes, 1, "every reset is announced, with its reason");
	cr_assert_str_eq(last_reset_why, "test");
}

Test(init, reply_too_small_for_init_out)
{
	struct rb q = { 0 };
	struct fuse_init_in in = { .major = 7, .minor = 38 };
	int ret;

	rb_begin(&q, FUSE_INIT, 0);
	rb_put(&q, &in, sizeof(in));
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, OUT_HDR + 63, 1);
	assert_error(&q, ret, -ENOSPC);
	cr_assert_not(S.initialized, "INIT not applied when the reply cannot be sent");
	rb_free(&q);
}

/* ---- each op's decoding ---- */

static void assert_ctx(const struct rb *q, uint64_t nodeid)
{
	cr_assert_eq(F.ctx.unique, rb_unique(q));
	cr_assert_eq(F.ctx.nodeid, nodeid);
	cr_assert_eq(F.ctx.uid, 1000);
	cr_assert_eq(F.ctx.gid, 1001);
	cr_assert_eq(F.ctx.pid, 4242);
	cr_assert_eq(F.ctx.io, FAKE_IO);
	cr_assert_eq(F.nodeid, nodeid);
}

Test(ops, lookup)
{
	struct rb q = { 0 };
	struct fuse_entry_out e;
	int ret;

	rb_begin(&q, FUSE_LOOKUP, 5);
	rb_str(&q, "hello.txt");
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(e));
	cr_assert_str_eq(F.last, "lookup");
	cr_assert_str_eq(F.name, "hello.txt");
	assert_ctx(&q, 5);
	memcpy(&e, out + OUT_HDR, sizeof(e));
	cr_assert_eq(e.nodeid, 42);
	cr_assert_eq(e.attr.ino, 1042);
	rb_free(&q);
}

Test(ops, lookup_error_passes_through)
{
	struct rb q = { 0 };
	int ret;

	F.ret = -ENOENT;
	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_str(&q, "missing");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOENT);
	cr_assert_eq(F.calls, 1);
	/* an out-of-range result becomes EIO */
	F.ret = -1000;
	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_str(&q, "missing");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	rb_free(&q);
}

Test(ops, name_of_max_length)
{
	struct rb q = { 0 };
	char name[VFSD_NAME_MAX + 1];
	int ret;

	memset(name, 'n', VFSD_NAME_MAX);
	name[VFSD_NAME_MAX] = 0;
	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_str(&q, name);
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_str_eq(F.name, name);
	rb_free(&q);
}

Test(ops, getattr_setattr)
{
	struct rb q = { 0 };
	struct fuse_getattr_in gi = { .getattr_flags = FUSE_GETATTR_FH, .fh = 99 };
	struct fuse_setattr_in si = { .valid = FATTR_SIZE, .size = 777, .fh = 5 };
	struct fuse_attr_out ao;
	int ret;

	rb_begin(&q, FUSE_GETATTR, 3);
	rb_put(&q, &gi, sizeof(gi));
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(ao));
	cr_assert_str_eq(F.last, "getattr");
	assert_ctx(&q, 3);
	cr_assert_eq(F.in.getattr.fh, 99);
	cr_assert_eq(F.in.getattr.getattr_flags, FUSE_GETATTR_FH);
	memcpy(&ao, out + OUT_HDR, sizeof(ao));
	cr_assert_eq(ao.attr.size, 12345);
	cr_assert_eq(ao.attr_valid, 5);

	rb_begin(&q, FUSE_SETATTR, 4);
	rb_put(&q, &si, sizeof(si));
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(ao));
	cr_assert_str_eq(F.last, "setattr");
	cr_assert_eq(F.in.setattr.valid, FATTR_SIZE);
	cr_assert_eq(F.in.setattr.size, 777);
	memcpy(&ao, out + OUT_HDR, sizeof(ao));
	cr_assert_eq(ao.attr.size, 777);
	rb_free(&q);
}

Test(ops, mkdir_and_create)
{
	struct rb q = { 0 };
	struct fuse_mkdir_in mi = { .mode = 0750, .umask = 022 };
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = 0640, .umask = 077 };
	struct fuse_entry_out e;
	struct fuse_open_out o;
	int ret;

	rb_begin(&q, FUSE_MKDIR, 2);
	rb_put(&q, &mi, sizeof(mi));
	rb_str(&q, "newdir");
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(e));
	cr_assert_str_eq(F.last, "mkdir");
	cr_assert_str_eq(F.name, "newdir");
	cr_assert_eq(F.in.mkdir.mode, 0750);
	cr_assert_eq(F.in.mkdir.umask, 022);
	assert_ctx(&q, 2);

	rb_begin(&q, FUSE_CREATE, 2);
	rb_put(&q, &ci, sizeof(ci));
	rb_str(&q, "file");
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(e) + sizeof(o));
	cr_assert_str_eq(F.last, "create");
	cr_assert_str_eq(F.name, "file");
	cr_assert_eq(F.in.create.flags, O_RDWR | O_CREAT);
	cr_assert_eq(F.in.create.mode, 0640);
	memcpy(&e, out + OUT_HDR, sizeof(e));
	memcpy(&o, out + OUT_HDR + sizeof(e), sizeof(o));
	cr_assert_eq(e.nodeid, 44);
	cr_assert_eq(o.fh, 0x9abc);
	rb_free(&q);
}

Test(ops, unlink_rmdir)
{
	struct rb q = { 0 };
	int ret;

	rb_begin(&q, FUSE_UNLINK, 8);
	rb_str(&q, "victim");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "unlink");
	cr_assert_str_eq(F.name, "victim");
	assert_ctx(&q, 8);

	F.ret = -ENOTEMPTY;
	rb_begin(&q, FUSE_RMDIR, 9);
	rb_str(&q, "full");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOTEMPTY);
	cr_assert_str_eq(F.last, "rmdir");
	cr_assert_str_eq(F.name, "full");
	rb_free(&q);
}

Test(ops, rename_and_rename2)
{
	struct rb q = { 0 };
	struct fuse_rename_in ri = { .newdir = 77 };
	struct fuse_rename2_in r2 = { .newdir = 78, .flags = RENAME_NOREPLACE };
	int ret;

	rb_begin(&q, FUSE_RENAME, 6);
	rb_put(&q, &ri, sizeof(ri));
	rb_str(&q, "old");
	rb_str(&q, "brand-new");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "rename");
	cr_assert_str_eq(F.name, "old");
	cr_assert_str_eq(F.newname, "brand-new");
	cr_assert_eq(F.newparent, 77);
	cr_assert_eq(F.flags, 0);
	assert_ctx(&q, 6);

	rb_begin(&q, FUSE_RENAME2, 6);
	rb_put(&q, &r2, sizeof(r2));
	rb_str(&q, "a");
	rb_str(&q, "b");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.name, "a");
	cr_assert_str_eq(F.newname, "b");
	cr_assert_eq(F.newparent, 78);
	cr_assert_eq(F.flags, RENAME_NOREPLACE);
	rb_free(&q);
}

Test(ops, open_release_flush_fsync)
{
	struct rb q = { 0 };
	struct fuse_open_in oi = { .flags = O_RDONLY | O_NOATIME };
	struct fuse_release_in rl = { .fh = 0x1234, .flags = O_RDONLY, .lock_owner = 3 };
	struct fuse_flush_in fl = { .fh = 0x1234, .lock_owner = 9 };
	struct fuse_fsync_in fs = { .fh = 0x1234, .fsync_flags = 1 };
	struct fuse_open_out o;
	int ret;

	rb_begin(&q, FUSE_OPEN, 10);
	rb_put(&q, &oi, sizeof(oi));
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(o));
	cr_assert_str_eq(F.last, "open");
	cr_assert_eq(F.flags, O_RDONLY | O_NOATIME);
	memcpy(&o, out + OUT_HDR, sizeof(o));
	cr_assert_eq(o.fh, 0x1234);
	cr_assert_eq(o.open_flags, FOPEN_KEEP_CACHE);

	rb_begin(&q, FUSE_FLUSH, 10);
	rb_put(&q, &fl, sizeof(fl));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "flush");
	cr_assert_eq(F.in.flush.lock_owner, 9);

	rb_begin(&q, FUSE_FSYNC, 10);
	rb_put(&q, &fs, sizeof(fs));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "fsync");
	cr_assert_eq(F.in.fsync.fsync_flags, 1);

	rb_begin(&q, FUSE_RELEASE, 10);
	rb_put(&q, &rl, sizeof(rl));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "release");
	cr_assert_eq(F.in.release.fh, 0x1234);
	cr_assert_eq(F.in.release.lock_owner, 3);
	rb_free(&q);
}

Test(ops, opendir_releasedir)
{
	struct rb q = { 0 };
	struct fuse_open_in oi = { .flags = O_RDONLY | O_DIRECTORY };
	struct fuse_release_in rl = { .fh = 0x5678 };
	struct fuse_open_out o;
	int ret;

	rb_begin(&q, FUSE_OPENDIR, 1);
	rb_put(&q, &oi, sizeof(oi));
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(o));
	cr_assert_str_eq(F.last, "opendir");
	cr_assert_eq(F.flags, O_RDONLY | O_DIRECTORY);
	memcpy(&o, out + OUT_HDR, sizeof(o));
	cr_assert_eq(o.fh, 0x5678);

	rb_begin(&q, FUSE_RELEASEDIR, 1);
	rb_put(&q, &rl, sizeof(rl));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, 0);
	cr_assert_str_eq(F.last, "releasedir");
	cr_assert_eq(F.in.release.fh, 0x5678);
	rb_free(&q);
}

Test(ops, statfs)
{
	struct rb q = { 0 };
	struct fuse_statfs_out so;
	int ret;

	rb_begin(&q, FUSE_STATFS, 1);
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(so));
	cr_assert_str_eq(F.last, "statfs");
	memcpy(&so, out + OUT_HDR, sizeof(so));
	cr_assert_eq(so.st.blocks, 1000);
	cr_assert_eq(so.st.bsize, 4096);
	rb_free(&q);
}

/* READLINK with @room writable bytes in the chain (header included). */
static int send_readlink(struct rb *q, uint64_t nodeid, size_t room)
{
	rb_begin(q, FUSE_READLINK, nodeid);
	rb_len(q, 0);
	return run_raw(q->b, q->len, room, 1);
}

Test(ops, readlink)
{
	struct rb q = { 0 };
	int ret;

	strcpy(F.target, "../some dir/target");
	ret = send_readlink(&q, 12, OUT_CAP);
	assert_reply(&q, ret, 0, strlen(F.target));
	cr_assert_str_eq(F.last, "readlink");
	assert_ctx(&q, 12);
	cr_assert_eq(F.readlink_size, VFSD_PATH_MAX, "the op gets a PATH_MAX buffer");
	cr_assert_eq(memcmp(out + OUT_HDR, F.target, strlen(F.target)), 0);
	/* the target's bytes only: no NUL after them */
	cr_assert_eq(out[OUT_HDR + strlen(F.target)], 0xAA);

	/* the op's error passes through */
	F.ret = -EINVAL;
	ret = send_readlink(&q, 12, OUT_CAP);
	assert_error(&q, ret, -EINVAL);
	rb_free(&q);
}

Test(ops, readlink_longest_target_and_room)
{
	struct rb q = { 0 };
	int ret;

	/* the longest target there is, in the room a 4 KiB-page guest offers */
	memset(F.target, 't', VFSD_PATH_MAX - 1);
	F.target[VFSD_PATH_MAX - 1] = '\0';
	ret = send_readlink(&q, 3, OUT_HDR + VFSD_PATH_MAX - 1);
	assert_reply(&q, ret, 0, VFSD_PATH_MAX - 1);
	cr_assert_eq(out[OUT_HDR], 't');
	cr_assert_eq(out[OUT_HDR + VFSD_PATH_MAX - 2], 't');

	/*
	 * A target that does not fit the reply room is -ENAMETOOLONG, never
	 * truncated (a truncated target is another path); header only.
	 */
	ret = send_readlink(&q, 3, OUT_HDR + VFSD_PATH_MAX - 2);
	assert_error(&q, ret, -ENAMETOOLONG);
	strcpy(F.target, "abcde");
	ret = send_readlink(&q, 3, OUT_HDR + 4);
	assert_error(&q, ret, -ENAMETOOLONG);
	ret = send_readlink(&q, 3, OUT_HDR + 5);
	assert_reply(&q, ret, 0, 5);
	ret = send_readlink(&q, 3, OUT_HDR);
	assert_error(&q, ret, -ENAMETOOLONG);
	rb_free(&q);
}

Test(ops, readlink_op_overclaims)
{
	struct rb q = { 0 };
	int ret;

	/* an op that claims more than its buffer is a bug: EIO, nothing sent */
	strcpy(F.target, "x");
	F.readlink_len = VFSD_PATH_MAX;
	ret = send_readlink(&q, 3, OUT_CAP);
	assert_error(&q, ret, -EIO);
	F.readlink_len = 0x7fffffff;
	ret = send_readlink(&q, 3, OUT_CAP);
	assert_error(&q, ret, -EIO);
	rb_free(&q);
}

static int send_symlink_raw(struct rb *q, uint64_t parent, const void *body, size_t n, size_t scale)
{
	rb_begin(q, FUSE_SYMLINK, parent);
	rb_put(q, body, n);
	rb_len(q, 0);
	return run_raw(q->b, q->len, OUT_CAP, scale);
}

/* "name\0target\0" as the kernel sends it. */
static int send_symlink(struct rb *q, uint64_t parent, const char *name, const char *target,
			size_t scale)
{
	rb_begin(q, FUSE_SYMLINK, parent);
	rb_str(q, name);
	rb_str(q, target);
	rb_len(q, 0);
	return run_raw(q->b, q->len, OUT_CAP, scale);
}

Test(ops, symlink)
{
	struct rb q = { 0 };
	struct fuse_entry_out e;
	int ret;

	/* the same request over differently split chains */
	for (size_t scale = 1; scale <= 5; scale++) {
		F.calls = 0;
		ret = send_symlink(&q, 9, "the-link", "/abs/dir with space/../file", scale);
		assert_reply(&q, ret, 0, sizeof(e));
		cr_assert_eq(F.calls, 1);
		cr_assert_str_eq(F.last, "symlink");
		cr_assert_str_eq(F.name, "the-link", "the name comes first");
		cr_assert_str_eq(F.target, "/abs/dir with space/../file");
		assert_ctx(&q, 9);
		memcpy(&e, out + OUT_HDR, sizeof(e));
		cr_assert_eq(e.nodeid, 45);
		cr_assert(S_ISLNK(e.attr.mode));
	}
	/* targets may be "..", "/" or a single byte; data after the target is ignored */
	ret = send_symlink(&q, 1, "a", "..", 1);
	assert_reply(&q, ret, 0, sizeof(e));
	cr_assert_str_eq(F.target, "..");
	ret = send_symlink_raw(&q, 1, "b\0/\0junk", 9, 1);
	assert_reply(&q, ret, 0, sizeof(e));
	cr_assert_str_eq(F.name, "b");
	cr_assert_str_eq(F.target, "/");
	/* the op's error passes through */
	F.ret = -EEXIST;
	ret = send_symlink(&q, 1, "a", "x", 1);
	assert_error(&q, ret, -EEXIST);
	rb_free(&q);
}

Test(ops, symlink_longest_target)
{
	struct rb q = { 0 };
	char *target = malloc(VFSD_PATH_MAX + 1);
	int ret;

	cr_assert_not_null(target);
	memset(target, 'p', VFSD_PATH_MAX);
	for (size_t i = 7; i < VFSD_PATH_MAX; i += 8)
		target[i] = '/';
	target[VFSD_PATH_MAX - 1] = '\0'; /* 4095 bytes */
	ret = send_symlink(&q, 1, "long", target, 64);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_eq(strlen(F.target), VFSD_PATH_MAX - 1);
	cr_assert_str_eq(F.target, target);
	free(target);
	rb_free(&q);
}

Test(malformed, symlink)
{
	struct rb q = { 0 };
	char *body = malloc(VFSD_PATH_MAX + 8);
	int ret;

	cr_assert_not_null(body);
	/* target without its NUL */
	ret = send_symlink_raw(&q, 1, "name\0target", 11, 1);
	assert_error(&q, ret, -EINVAL);
	/* the NUL is in the chain, but past len */
	rb_begin(&q, FUSE_SYMLINK, 1);
	rb_put(&q, "name\0target", 11);
	rb_len(&q, 0);
	rb_put(&q, "", 1);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* empty target, target missing */
	ret = send_symlink_raw(&q, 1, "name\0\0", 6, 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_symlink_raw(&q, 1, "name\0", 5, 1);
	assert_error(&q, ret, -EINVAL);
	/* bad names: '/', "..", empty, none at all */
	ret = send_symlink(&q, 1, "a/b", "target", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_symlink(&q, 1, "..", "target", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_symlink(&q, 1, "", "target", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_symlink_raw(&q, 1, "", 0, 1);
	assert_error(&q, ret, -EINVAL);
	/* target of 4096 bytes: too long, with or without a NUL after it */
	memcpy(body, "n", 2);
	memset(body + 2, 't', VFSD_PATH_MAX);
	ret = send_symlink_raw(&q, 1, body, 2 + VFSD_PATH_MAX, 1);
	assert_error(&q, ret, -ENAMETOOLONG);
	body[2 + VFSD_PATH_MAX] = '\0';
	ret = send_symlink_raw(&q, 1, body, 3 + VFSD_PATH_MAX, 1);
	assert_error(&q, ret, -ENAMETOOLONG);
	/* ...and 4095 then NUL is fine */
	body[1 + VFSD_PATH_MAX] = '\0';
	cr_assert_eq(F.calls, 0);
	ret = send_symlink_raw(&q, 1, body, 2 + VFSD_PATH_MAX, 1);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_eq(F.calls, 1);
	free(body);
	rb_free(&q);
}

Test(malformed, symlink_every_truncation)
{
	struct rb q = { 0 };
	size_t full;

	rb_begin(&q, FUSE_SYMLINK, 1);
	rb_str(&q, "entry");
	rb_str(&q, "../tar/get");
	rb_len(&q, 0);
	full = q.len;
	for (size_t n = IN_HDR; n < full; n++) {
		int ret;

		rb_len(&q, (uint32_t)n);
		ret = run_raw(q.b, n, OUT_CAP, 1);
		assert_error(&q, ret, -EINVAL);
		/* len says n, the chain has it all */
		ret = run_raw(q.b, full, OUT_CAP, 1);
		assert_error(&q, ret, -EINVAL);
	}
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(ops, mknod)
{
	struct rb q = { 0 };
	struct fuse_mknod_in ni = { .mode = S_IFCHR | 0620, .rdev = 0x10305, .umask = 022 };
	struct fuse_entry_out e;
	int ret;

	for (size_t scale = 1; scale <= 3; scale++) {
		rb_begin(&q, FUSE_MKNOD, 2);
		rb_put(&q, &ni, sizeof(ni));
		rb_str(&q, "dev-node");
		rb_len(&q, 0);
		ret = run_raw(q.b, q.len, OUT_CAP, scale);
		assert_reply(&q, ret, 0, sizeof(e));
		cr_assert_str_eq(F.last, "mknod");
		cr_assert_str_eq(F.name, "dev-node");
		cr_assert_eq(F.in.mknod.mode, S_IFCHR | 0620);
		cr_assert_eq(F.in.mknod.rdev, 0x10305);
		cr_assert_eq(F.in.mknod.umask, 022);
		assert_ctx(&q, 2);
		memcpy(&e, out + OUT_HDR, sizeof(e));
		cr_assert_eq(e.nodeid, 46);
		cr_assert_eq(e.attr.mode, S_IFCHR | 0620);
	}
	F.ret = -EPERM;
	rb_begin(&q, FUSE_MKNOD, 2);
	rb_put(&q, &ni, sizeof(ni));
	rb_str(&q, "x");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EPERM);
	rb_free(&q);
}

Test(malformed, mknod)
{
	struct rb q = { 0 };
	struct fuse_mknod_in ni = { .mode = S_IFIFO | 0644 };
	int ret;

	/* the 8-byte pre-7.12 struct is a truncated request on a 7.38 session */
	rb_begin(&q, FUSE_MKNOD, 1);
	rb_put(&q, &ni, FUSE_COMPAT_MKNOD_IN_SIZE);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	rb_begin(&q, FUSE_MKNOD, 1);
	rb_put(&q, &ni, sizeof(ni));
	rb_str(&q, "a/b");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_begin(&q, FUSE_MKNOD, 1);
	rb_put(&q, &ni, sizeof(ni));
	rb_put(&q, "fifo", 4); /* no NUL */
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_begin(&q, FUSE_MKNOD, 1);
	rb_put(&q, &ni, sizeof(ni));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

static int send_link(struct rb *q, uint64_t oldnodeid, uint64_t newparent, const char *newname,
		     size_t scale)
{
	struct fuse_link_in li = { .oldnodeid = oldnodeid };

	rb_begin(q, FUSE_LINK, newparent);
	rb_put(q, &li, sizeof(li));
	rb_str(q, newname);
	rb_len(q, 0);
	return run_raw(q->b, q->len, OUT_CAP, scale);
}

Test(ops, link)
{
	struct rb q = { 0 };
	struct fuse_entry_out e;
	int ret;

	for (size_t scale = 1; scale <= 3; scale++) {
		ret = send_link(&q, 33, 7, "hard-link", scale);
		assert_reply(&q, ret, 0, sizeof(e));
		cr_assert_str_eq(F.last, "link");
		cr_assert_eq(F.oldnodeid, 33);
		cr_assert_str_eq(F.newname, "hard-link");
		assert_ctx(&q, 7); /* the header's node id is the new parent */
		memcpy(&e, out + OUT_HDR, sizeof(e));
		cr_assert_eq(e.nodeid, 33, "the entry of the existing inode");
	}
	F.ret = -EPERM;
	ret = send_link(&q, 33, 7, "x", 1);
	assert_error(&q, ret, -EPERM);
	rb_free(&q);
}

Test(malformed, link)
{
	struct rb q = { 0 };
	struct fuse_link_in li = { .oldnodeid = 33 };
	int ret;

	/* no node has id 0 */
	ret = send_link(&q, 0, 7, "x", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_link(&q, 33, 7, "x/y", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_link(&q, 33, 7, ".", 1);
	assert_error(&q, ret, -EINVAL);
	/* new name missing */
	rb_begin(&q, FUSE_LINK, 7);
	rb_put(&q, &li, sizeof(li));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* fuse_link_in truncated */
	rb_begin(&q, FUSE_LINK, 7);
	rb_put(&q, &li, 4);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

/* Entry-making ops check the reply room before they run: no inode made, no lookup leaked. */
Test(malformed, entry_ops_reply_too_small)
{
	struct rb q = { 0 };
	struct fuse_mknod_in ni = { .mode = S_IFREG | 0644 };
	struct fuse_link_in li = { .oldnodeid = 33 };
	size_t small = OUT_HDR + sizeof(struct fuse_entry_out) - 1;
	int ret;

	rb_begin(&q, FUSE_SYMLINK, 1);
	rb_str(&q, "l");
	rb_str(&q, "t");
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, small, 1);
	assert_error(&q, ret, -ENOSPC);
	rb_begin(&q, FUSE_MKNOD, 1);
	rb_put(&q, &ni, sizeof(ni));
	rb_str(&q, "f");
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, small, 1);
	assert_error(&q, ret, -ENOSPC);
	rb_begin(&q, FUSE_LINK, 1);
	rb_put(&q, &li, sizeof(li));
	rb_str(&q, "h");
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, small, 1);
	assert_error(&q, ret, -ENOSPC);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

static int send_read(struct rb *q, uint32_t opcode, uint64_t offset, uint32_t size, size_t room)
{
	struct fuse_read_in ri = { .fh = 0x1234, .offset = offset, .size = size };

	rb_begin(q, opcode, 10);
	rb_put(q, &ri, sizeof(ri));
	rb_len(q, 0);
	return run_raw(q->b, q->len, room, 1);
}

static void assert_read_data(size_t n, uint64_t offset)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(out[OUT_HDR + i], (uint8_t)(offset + i), "byte %zu", i);
}

Test(ops, read_zero_copy)
{
	struct rb q = { 0 };
	int ret;

	/* the op fills through vfsd_writer_iov() and leaves advancing to us */
	ret = send_read(&q, FUSE_READ, 3, 1000, OUT_CAP);
	assert_reply(&q, ret, 0, 1000);
	cr_assert_str_eq(F.last, "read");
	cr_assert_eq(F.in.read.size, 1000);
	cr_assert_eq(F.in.read.offset, 3);
	cr_assert_eq(F.in.read.fh, 0x1234);
	assert_read_data(1000, 3);

	/* the op advances the writer itself */
	F.read_advances = true;
	ret = send_read(&q, FUSE_READ, 7, 333, OUT_CAP);
	assert_reply(&q, ret, 0, 333);
	assert_read_data(333, 7);
	rb_free(&q);
}

Test(ops, read_capped_at_room)
{
	struct rb q = { 0 };
	int ret;

	ret = send_read(&q, FUSE_READ, 0, 4096, OUT_HDR + 100);
	assert_reply(&q, ret, 0, 100);
	cr_assert_eq(F.in.read.size, 100, "the op is told what fits");
	assert_read_data(100, 0);
	rb_free(&q);
}

Test(ops, read_short_and_errors)
{
	struct rb q = { 0 };
	int ret;

	/* the op filled the buffers before failing: they are not part of the reply */
	check_tail = false;
	/* an op that claims more than it was allowed is a bug: EIO */
	F.read_extra = 1;
	ret = send_read(&q, FUSE_READ, 0, 50, OUT_CAP);
	assert_error(&q, ret, -EIO);
	/* the advance it did not do vs the count it returned disagree */
	F.read_extra = -1;
	F.read_advances = true;
	ret = send_read(&q, FUSE_READ, 0, 50, OUT_CAP);
	assert_error(&q, ret, -EIO);
	F.read_extra = 0;
	F.ret = -EBADF;
	ret = send_read(&q, FUSE_READ, 0, 50, OUT_CAP);
	assert_error(&q, ret, -EBADF);
	rb_free(&q);
}

Test(ops, write)
{
	struct rb q = { 0 };
	struct fuse_write_in wi = { .fh = 0x1234, .offset = 4096, .size = 300 };
	struct fuse_write_out wo;
	uint8_t data[301];
	int ret;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	rb_begin(&q, FUSE_WRITE, 10);
	rb_put(&q, &wi, sizeof(wi));
	rb_put(&q, data, 300);
	rb_len(&q, 0);
	rb_put(&q, data + 300, 1); /* one byte in the chain past len */
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(wo));
	cr_assert_str_eq(F.last, "write");
	cr_assert_eq(F.in.write.offset, 4096);
	cr_assert_eq(F.wlen, 300);
	cr_assert_eq(memcmp(F.wdata, data, 300), 0);
	cr_assert(F.overread_refused, "the op must not read past in->size");
	memcpy(&wo, out + OUT_HDR, sizeof(wo));
	cr_assert_eq(wo.size, 300);
	rb_free(&q);
}

Test(ops, readdir)
{
	struct rb q = { 0 };
	struct fuse_dirent d;
	size_t off = OUT_HDR;
	int ret;

	ret = send_read(&q, FUSE_READDIR, 0, 4096, OUT_CAP);
	cr_assert_gt(ret, (int)OUT_HDR);
	assert_reply(&q, ret, 0, (size_t)ret - OUT_HDR);
	cr_assert_not(F.plus);
	cr_assert_eq(F.dirbuf_size, 4096);
	/* three entries, in order, each 8-byte aligned */
	for (int i = 0; i < 3; i++) {
		memcpy(&d, out + off, sizeof(d));
		cr_assert_eq(d.ino, 100 + (uint64_t)i);
		cr_assert_eq(d.off, (uint64_t)i + 1);
		off += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
	}
	cr_assert_eq(off, (size_t)ret);
	cr_assert_eq(memcmp(out + OUT_HDR + FUSE_NAME_OFFSET, "alpha", 5), 0);

	/* continue after the second entry */
	ret = send_read(&q, FUSE_READDIR, 2, 4096, OUT_CAP);
	memcpy(&d, out + OUT_HDR, sizeof(d));
	cr_assert_eq(d.ino, 102);
	cr_assert_eq(ret, (int)(OUT_HDR + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen)));
	rb_free(&q);
}

Test(ops, readdir_buffer_capped)
{
	struct rb q = { 0 };
	int ret;

	/* room for 16 + 40 bytes: only "alpha" (24 + 5 -> 32) fits */
	ret = send_read(&q, FUSE_READDIR, 0, 100000, OUT_HDR + 40);
	assert_reply(&q, ret, 0, 32);
	cr_assert_eq(F.dirbuf_size, 40);
	ret = send_read(&q, FUSE_READDIR, 0, 33, OUT_CAP);
	assert_reply(&q, ret, 0, 32);
	cr_assert_eq(F.dirbuf_size, 33);
	ret = send_read(&q, FUSE_READDIR, 0, 0xffffffffu, OUT_CAP);
	cr_assert_eq(F.dirbuf_size, VFSD_MAX_READDIR);
	rb_free(&q);
}

Test(ops, readdirplus)
{
	struct rb q = { 0 };
	struct fuse_direntplus d;
	int ret;

	ret = send_read(&q, FUSE_READDIRPLUS, 0, 4096, OUT_CAP);
	cr_assert_gt(ret, (int)OUT_HDR);
	assert_reply(&q, ret, 0, (size_t)ret - OUT_HDR);
	cr_assert(F.plus);
	memcpy(&d, out + OUT_HDR, sizeof(d));
	cr_assert_eq(d.entry_out.nodeid, 100);
	cr_assert_eq(d.dirent.namelen, 5);
	rb_free(&q);
}

Test(init, readdirplus_needs_negotiation)
{
	struct rb q = { 0 };
	int ret;

	ret = send_init(&q, 7, 38, FUSE_ASYNC_READ, 0, sizeof(struct fuse_init_in));
	assert_reply(&q, ret, 0, sizeof(struct fuse_init_out));
	ret = send_read(&q, FUSE_READDIRPLUS, 0, 4096, OUT_CAP);
	assert_error(&q, ret, -ENOSYS);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(ops, forget_has_no_reply)
{
	struct rb q = { 0 };
	struct fuse_forget_in fi = { .nlookup = 3 };
	int ret;

	rb_begin(&q, FUSE_FORGET, 55);
	rb_put(&q, &fi, sizeof(fi));
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, 0, 1); /* hiprio chains have no writable part */
	cr_assert_eq(ret, 0);
	cr_assert_eq(F.nforgets, 1);
	cr_assert_eq(F.forget_ids[0], 55);
	cr_assert_eq(F.forget_n[0], 3);
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(out[0], 0xAA, "no bytes written");
	rb_free(&q);
}

static void put_batch(struct rb *q, uint32_t count, unsigned int present)
{
	struct fuse_batch_forget_in bi = { .count = count };

	rb_begin(q, FUSE_BATCH_FORGET, 0);
	rb_put(q, &bi, sizeof(bi));
	for (unsigned int i = 0; i < present; i++) {
		struct fuse_forget_one one = { .nodeid = 10 + i, .nlookup = i + 1 };

		rb_put(q, &one, sizeof(one));
	}
	rb_len(q, 0);
}

Test(ops, batch_forget)
{
	struct rb q = { 0 };
	int ret;

	put_batch(&q, 3, 3);
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(out[0], 0xAA);
	cr_assert_eq(F.nforgets, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(F.forget_ids[i], 10 + (uint64_t)i);
		cr_assert_eq(F.forget_n[i], (uint64_t)i + 1);
	}
	rb_free(&q);
}

Test(malformed, batch_forget_count_lies)
{
	struct rb q = { 0 };
	int ret;

	put_batch(&q, 4, 3); /* one short: nothing is forgotten */
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(F.nforgets, 0);
	put_batch(&q, 0xffffffffu, 3); /* count * 16 is huge */
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(F.nforgets, 0);
	put_batch(&q, 0x10000001u, 1); /* wraps to 16 in 32-bit arithmetic */
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(F.nforgets, 0);
	cr_assert_eq(out[0], 0xAA);
	rb_free(&q);
}

Test(ops, interrupt_ignored)
{
	struct rb q = { 0 };
	struct fuse_interrupt_in ii = { .unique = 5 };
	int ret;

	rb_begin(&q, FUSE_INTERRUPT, 0);
	rb_put(&q, &ii, sizeof(ii));
	rb_len(&q, 0);
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(out[0], 0xAA);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(ops, unknown_and_unserved_opcodes)
{
	static const uint32_t opcodes[] = {
		7,	    19, FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING,	     FUSE_SETXATTR,
		FUSE_IOCTL, 99, CUSE_INIT,	   FUSE_INIT_BSWAP_RESERVED, 0xffffffffu,
		0,
	};
	struct rb q = { 0 };
	uint8_t pad[64] = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(opcodes); i++) {
		int ret;

		rb_begin(&q, opcodes[i], 1);
		rb_put(&q, pad, sizeof(pad));
		rb_len(&q, 0);
		ret = run(&q);
		assert_error(&q, ret, -ENOSYS);
	}
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(sparse, missing_ops_are_enosys)
{
	struct rb q = { 0 };
	struct fuse_mkdir_in mi = { 0 };
	struct fuse_forget_in fi = { .nlookup = 1 };
	int ret;

	rb_begin(&q, FUSE_MKDIR, 1);
	rb_put(&q, &mi, sizeof(mi));
	rb_str(&q, "d");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOSYS);
	ret = send_read(&q, FUSE_READDIR, 0, 4096, OUT_CAP);
	assert_error(&q, ret, -ENOSYS);
	rb_begin(&q, FUSE_STATFS, 1);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOSYS);
	rb_begin(&q, FUSE_READLINK, 1);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOSYS);
	rb_begin(&q, FUSE_SYMLINK, 1);
	rb_str(&q, "l");
	rb_str(&q, "t");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -ENOSYS);
	{
		struct fuse_mknod_in ni = { .mode = S_IFIFO | 0644 };
		struct fuse_link_in li = { .oldnodeid = 5 };

		rb_begin(&q, FUSE_MKNOD, 1);
		rb_put(&q, &ni, sizeof(ni));
		rb_str(&q, "p");
		rb_len(&q, 0);
		ret = run(&q);
		assert_error(&q, ret, -ENOSYS);
		rb_begin(&q, FUSE_LINK, 1);
		rb_put(&q, &li, sizeof(li));
		rb_str(&q, "h");
		rb_len(&q, 0);
		ret = run(&q);
		assert_error(&q, ret, -ENOSYS);
	}
	rb_begin(&q, FUSE_FORGET, 1);
	rb_put(&q, &fi, sizeof(fi));
	rb_len(&q, 0);
	cr_assert_eq(run(&q), 0);
	/* the one op present still works */
	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_str(&q, "x");
	rb_len(&q, 0);
	ret = run(&q);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_eq(F.calls, 1);
	rb_free(&q);
}

Test(ops, opcode_names)
{
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_LOOKUP), "LOOKUP");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_BATCH_FORGET), "BATCH_FORGET");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_READDIRPLUS), "READDIRPLUS");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_SETUPMAPPING), "SETUPMAPPING");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_READLINK), "READLINK");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_SYMLINK), "SYMLINK");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_MKNOD), "MKNOD");
	cr_assert_str_eq(vfsd_fuse_opcode_name(FUSE_LINK), "LINK");
	cr_assert_str_eq(vfsd_fuse_opcode_name(7), "UNKNOWN");
	cr_assert_str_eq(vfsd_fuse_opcode_name(0), "UNKNOWN");
	cr_assert_str_eq(vfsd_fuse_opcode_name(100000), "UNKNOWN");
}

/* ---- malformed requests ---- */

Test(malformed, chain_shorter_than_header)
{
	struct rb q = { 0 };
	int ret;

	rb_begin(&q, FUSE_GETATTR, 1);
	rb_len(&q, 0);
	ret = run_raw(q.b, IN_HDR - 1, OUT_CAP, 1);
	cr_assert_eq(ret, -EIO);
	cr_assert_eq(out[0], 0xAA, "nothing to reply to");
	ret = run_raw(q.b, 0, OUT_CAP, 1);
	cr_assert_eq(ret, -EIO);
	rb_free(&q);
}

Test(malformed, len_lies)
{
	struct rb q = { 0 };
	struct fuse_getattr_in gi = { 0 };
	int ret;

	rb_begin(&q, FUSE_GETATTR, 1);
	rb_put(&q, &gi, sizeof(gi));
	rb_len(&q, (uint32_t)q.len + 1); /* larger than the chain */
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_len(&q, IN_HDR - 1); /* smaller than the header */
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_len(&q, 0xffffffffu);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

/* A valid name followed by padding: only the size is wrong. */
static int send_padded_lookup(struct rb *q, size_t total)
{
	rb_begin(q, FUSE_LOOKUP, 1);
	rb_str(q, "a");
	memset(q->b + q->len, 'x', total - q->len);
	q->len = total;
	rb_len(q, 0);
	return run_raw(q->b, q->len, OUT_CAP, 4096);
}

Test(malformed, len_over_max_request)
{
	struct rb q = { 0 };
	int ret;

	q.cap = VFSD_MAX_REQUEST + 64;
	q.b = calloc(1, q.cap);
	cr_assert_not_null(q.b);
	ret = send_padded_lookup(&q, VFSD_MAX_REQUEST + 1);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	ret = send_padded_lookup(&q, VFSD_MAX_REQUEST);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_eq(F.calls, 1);
	rb_free(&q);
}

Test(malformed, fixed_struct_truncated)
{
	struct rb q = { 0 };
	struct fuse_setattr_in si = { 0 };
	struct fuse_rename_in ri = { .newdir = 1 };
	int ret;

	rb_begin(&q, FUSE_SETATTR, 1);
	rb_put(&q, &si, sizeof(si) - 1);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	/* the chain has the bytes, len says they are not part of the request */
	rb_begin(&q, FUSE_SETATTR, 1);
	rb_put(&q, &si, sizeof(si));
	rb_len(&q, (uint32_t)(IN_HDR + 8));
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	/* READ/WRITE need the full 7.9+ struct on a 7.38 session */
	rb_begin(&q, FUSE_READ, 1);
	rb_put(&q, &si, 24);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	rb_begin(&q, FUSE_RENAME, 1);
	rb_put(&q, &ri, 4);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EIO);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

static int send_lookup_raw(struct rb *q, const void *name, size_t n)
{
	rb_begin(q, FUSE_LOOKUP, 1);
	rb_put(q, name, n);
	rb_len(q, 0);
	return run(q);
}

Test(malformed, bad_names)
{
	struct rb q = { 0 };
	char longname[VFSD_NAME_MAX + 2];
	int ret;

	/* no NUL at all */
	ret = send_lookup_raw(&q, "abc", 3);
	assert_error(&q, ret, -EINVAL);
	/* the NUL is in the chain but past len */
	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_put(&q, "abc", 3);
	rb_len(&q, 0);
	rb_put(&q, "", 1);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* empty, '/', ".", ".." */
	ret = send_lookup_raw(&q, "", 1);
	assert_error(&q, ret, -EINVAL);
	ret = send_lookup_raw(&q, "a/b", 4);
	assert_error(&q, ret, -EINVAL);
	ret = send_lookup_raw(&q, "/", 2);
	assert_error(&q, ret, -EINVAL);
	ret = send_lookup_raw(&q, ".", 2);
	assert_error(&q, ret, -EINVAL);
	ret = send_lookup_raw(&q, "..", 3);
	assert_error(&q, ret, -EINVAL);
	/* too long: 256 bytes then NUL */
	memset(longname, 'x', sizeof(longname));
	longname[VFSD_NAME_MAX + 1] = 0;
	ret = send_lookup_raw(&q, longname, sizeof(longname));
	assert_error(&q, ret, -EINVAL);
	/* no body at all */
	ret = send_lookup_raw(&q, "", 0);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	/* "..." and ".x" are ordinary names */
	ret = send_lookup_raw(&q, "...", 4);
	assert_reply(&q, ret, 0, sizeof(struct fuse_entry_out));
	cr_assert_str_eq(F.name, "...");
	rb_free(&q);
}

Test(malformed, bad_names_in_create_type_ops)
{
	struct rb q = { 0 };
	struct fuse_mkdir_in mi = { 0 };
	struct fuse_create_in ci = { 0 };
	int ret;

	rb_begin(&q, FUSE_MKDIR, 1);
	rb_put(&q, &mi, sizeof(mi));
	rb_str(&q, "..");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_begin(&q, FUSE_CREATE, 1);
	rb_put(&q, &ci, sizeof(ci));
	rb_str(&q, "a/b");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_begin(&q, FUSE_UNLINK, 1);
	rb_str(&q, ".");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	rb_begin(&q, FUSE_RMDIR, 1);
	rb_put(&q, "dir", 3);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(malformed, rename_second_name)
{
	struct rb q = { 0 };
	struct fuse_rename_in ri = { .newdir = 1 };
	int ret;

	/* second name missing its NUL */
	rb_begin(&q, FUSE_RENAME, 1);
	rb_put(&q, &ri, sizeof(ri));
	rb_str(&q, "old");
	rb_put(&q, "new", 3);
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* second name absent */
	rb_begin(&q, FUSE_RENAME, 1);
	rb_put(&q, &ri, sizeof(ri));
	rb_str(&q, "old");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* second name ".." */
	rb_begin(&q, FUSE_RENAME, 1);
	rb_put(&q, &ri, sizeof(ri));
	rb_str(&q, "old");
	rb_str(&q, "..");
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(malformed, write_size_lies)
{
	struct rb q = { 0 };
	struct fuse_write_in wi = { .fh = 1, .size = 101 };
	uint8_t data[100] = { 0 };
	int ret;

	rb_begin(&q, FUSE_WRITE, 1);
	rb_put(&q, &wi, sizeof(wi));
	rb_put(&q, data, sizeof(data));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	/* the chain holds the 101st byte, but past len */
	rb_put(&q, data, 1);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	wi.size = 0xffffffffu;
	rb_begin(&q, FUSE_WRITE, 1);
	rb_put(&q, &wi, sizeof(wi));
	rb_len(&q, 0);
	ret = run(&q);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}

Test(malformed, write_over_max_write)
{
	struct rb q = { 0 };
	struct fuse_write_in wi = { .fh = 1, .size = VFSD_MAX_WRITE + 1 };
	int ret;

	q.cap = VFSD_MAX_REQUEST;
	q.b = calloc(1, q.cap);
	cr_assert_not_null(q.b);
	rb_begin(&q, FUSE_WRITE, 1);
	rb_put(&q, &wi, sizeof(wi));
	q.len += wi.size; /* zeroes */
	rb_len(&q, 0);
	cr_assert_leq(q.len, VFSD_MAX_REQUEST);
	ret = run_raw(q.b, q.len, OUT_CAP, 4096);
	assert_error(&q, ret, -EINVAL);
	cr_assert_eq(F.calls, 0);
	/* exactly max_write is fine */
	wi.size = VFSD_MAX_WRITE;
	rb_begin(&q, FUSE_WRITE, 1);
	rb_put(&q, &wi, sizeof(wi));
	q.len += wi.size;
	rb_len(&q, 0);
	ret = run_raw(q.b, q.len, OUT_CAP, 4096);
	assert_reply(&q, ret, 0, sizeof(struct fuse_write_out));
	cr_assert_eq(F.calls, 1);
	rb_free(&q);
}

Test(malformed, reply_buffer_too_small)
{
	struct rb q = { 0 };
	int ret;

	rb_begin(&q, FUSE_LOOKUP, 1);
	rb_str(&q, "name");
	rb_len(&q, 0);
	/* not even a header fits: no reply at all */
	ret = run_raw(q.b, q.len, OUT_HDR - 1, 1);
	cr_assert_eq(ret, -ENOSPC);
	cr_assert_eq(out[0], 0xAA);
	ret = run_raw(q.b, q.len, 0, 1);
	cr_assert_eq(ret, -ENOSPC);
	/* a header fits, the entry does not: header-only ENOSPC, op not run */
	ret = run_raw(q.b, q.len, OUT_HDR + sizeof(struct fuse_entry_out) - 1, 1);
	assert_error(&q, ret, -ENOSPC);
	cr_assert_eq(F.calls, 0);
	/* exactly enough */
	ret = run_raw(q.b, q.len, OUT_HDR + sizeof(struct fuse_entry_out), 1);
	cr_assert_eq(ret, (int)(OUT_HDR + sizeof(struct fuse_entry_out)));
	cr_assert_eq(F.calls, 1);
	rb_free(&q);
}

Test(malformed, forget_malformed_is_dropped)
{
	struct rb q = { 0 };
	int ret;

	rb_begin(&q, FUSE_FORGET, 1);
	rb_put(&q, "1234", 4); /* half a fuse_forget_in */
	rb_len(&q, 0);
	ret = run(&q);
	cr_assert_eq(ret, 0);
	cr_assert_eq(out[0], 0xAA);
	cr_assert_eq(F.nforgets, 0);
	rb_free(&q);
}

/* Every prefix of a valid request, with len still claiming the full size, is rejected cleanly. */
Test(malformed, every_truncation)
{
	struct rb q = { 0 };
	struct fuse_rename2_in r2 = { .newdir = 2 };
	size_t full;

	rb_begin(&q, FUSE_RENAME2, 1);
	rb_put(&q, &r2, sizeof(r2));
	rb_str(&q, "source");
	rb_str(&q, "target");
	rb_len(&q, 0);
	full = q.len;
	for (size_t n = 0; n < full; n++) {
		int ret = run_raw(q.b, n, OUT_CAP, 1);

		if (n < IN_HDR)
			cr_assert_eq(ret, -EIO, "chain of %zu", n);
		else
			assert_error(&q, ret, -EINVAL);
	}
	/* and with len matching the truncation */
	for (size_t n = IN_HDR; n < full; n++) {
		int ret;

		rb_len(&q, (uint32_t)n);
		ret = run_raw(q.b, n, OUT_CAP, 1);
		assert_error(&q, ret, n < IN_HDR + sizeof(r2) ? -EIO : -EINVAL);
	}
	cr_assert_eq(F.calls, 0);
	rb_free(&q);
}
