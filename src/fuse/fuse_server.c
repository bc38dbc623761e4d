/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE dispatcher: copy the request header out of the chain, validate
 * it, decode the op's fixed arguments and names, call one fs op and write
 * fuse_out_header + payload to the writable part of the chain.
 *
 * Everything in a request is guest-controlled and may change under us while
 * we look at it, so every field is copied out with vfsd_reader_read() before
 * it is checked, and ops get a reader fenced to fuse_in_header.len.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "vfsd/fuse.h"
#include "vfsd/util.h"

#define OUT_HDR_SIZE ((size_t)sizeof(struct fuse_out_header))
#define IN_HDR_SIZE  ((size_t)sizeof(struct fuse_in_header))

/* Our side of max_readahead: the guest's value, capped. */
#define VFSD_MAX_READAHEAD (1u << 20)
/* READ replies are capped like WRITE requests (1 MiB, 256 pages). */
#define VFSD_MAX_READ VFSD_MAX_WRITE

/* fuse_init_in grew flags2 and reserved words in 7.36 (FUSE_INIT_EXT). */
#define INIT_IN_COMPAT_SIZE offsetof(struct fuse_init_in, flags2)
#define INIT_EXT_MINOR	    36
/* fuse_read_in / fuse_write_in gained lock_owner and flags in 7.9. */
#define READ_IN_COMPAT_SIZE offsetof(struct fuse_read_in, lock_owner)
#define RW_FULL_MINOR	    9
/* fuse_init_out is 24 bytes before 7.23. */
#define INIT_OUT_FULL_MINOR 23

/* What we offer at INIT; the reply carries the intersection with the guest's flags. */
#define VFSD_INIT_OFFER                                                                            \
	((uint64_t)(FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_BIG_WRITES |                     \
		    FUSE_AUTO_INVAL_DATA | FUSE_ASYNC_DIO | FUSE_ATOMIC_O_TRUNC | FUSE_MAX_PAGES | \
		    FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_INIT_EXT))

/* One request in flight. */
struct req {
	struct vfsd_fuse_session *s;
	const struct fuse_op *op;
	struct fuse_in_header h;
	struct vfsd_fs_ctx ctx;
	struct vfsd_reader *r; /* fenced to the request body (len - header) */
	struct vfsd_writer *w; /* positioned at the reply header */
	bool replied;	       /* a reply was written to @w */
	size_t reply_len;      /* its total length */
	size_t in_size;	       /* bytes of @in copied out so far */
	union {
		struct fuse_init_in init;
		struct fuse_forget_in forget;
		struct fuse_batch_forget_in batch_forget;
		struct fuse_getattr_in getattr;
		struct fuse_setattr_in setattr;
		struct fuse_open_in open;
		struct fuse_create_in create;
		struct fuse_read_in read;
		struct fuse_write_in write;
		struct fuse_flush_in flush;
		struct fuse_release_in release;
		struct fuse_fsync_in fsync;
		struct fuse_mkdir_in mkdir;
		struct fuse_mknod_in mknod;
		struct fuse_link_in link;
		struct fuse_rename_in rename;
		struct fuse_rename2_in rename2;
		struct fuse_interrupt_in interrupt;
		uint8_t raw[96];
	} in;
};

/*
 * A handler returns 0 after writing its reply (or when the dispatcher should
 * send an empty success reply), or -errno for an error reply.
 */
typedef int (*fuse_handler_t)(struct req *q);

struct fuse_op {
	fuse_handler_t handler; /* NULL: -ENOSYS */
	const char *name;
	uint32_t min_in_size; /* fixed in-struct that must fit in len, copied to req->in */
	bool needs_reply;
};

#define OPS(q) ((q)->s->ops)

static int req_fail(const struct req *q, int err, const char *fmt, ...) _printf_(3, 4);

/* Log one line about a malformed (or unserviceable) request and return @err. */
static int req_fail(const struct req *q, int err, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (vfsd_log_level < VFSD_LOG_DEBUG)
		return err;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_debug("FUSE %s (opcode %u) unique %llu: %s", q->op->name, q->h.opcode,
		  (unsigned long long)q->h.unique, why);
	return err;
}

/* Copy the in-struct out up to @size bytes (for in-structs that grew with the minor). */
static int in_extend(struct req *q, size_t size)
{
	assert(size <= sizeof(q->in));
	if (size <= q->in_size)
		return 0;
	if (vfsd_reader_read(q->r, q->in.raw + q->in_size, size - q->in_size) < 0)
		return req_fail(q, -EIO, "body of %zu bytes is shorter than the %zu-byte in-struct",
				(size_t)q->h.len - IN_HDR_SIZE, size);
	q->in_size = size;
	return 0;
}

/*
 * Decode the next NUL-terminated name into @buf. Only VFSD_NAME_MAX + 1 bytes
 * are ever looked at, and never beyond the request.
 */
static int read_name(struct req *q, char buf[static VFSD_NAME_MAX + 1], const char *what)
{
	struct vfsd_reader peek = *q->r;
	size_t n = MIN(vfsd_reader_available(q->r), (size_t)VFSD_NAME_MAX + 1);
	const char *nul;
	size_t len;

	if (vfsd_reader_read(&peek, buf, n) < 0)
		return req_fail(q, -EIO, "%s: cannot read", what); /* cannot happen */
	nul = memchr(buf, '\0', n);
	if (!nul) {
		if (n > VFSD_NAME_MAX)
			return req_fail(q, -EINVAL, "%s longer than %u bytes", what, VFSD_NAME_MAX);
		return req_fail(q, -EINVAL, "%s not NUL-terminated within len", what);
	}
	len = (size_t)(nul - buf);
	if (len == 0)
		return req_fail(q, -EINVAL, "%s is empty", what);
	if (memchr(buf, '/', len))
		return req_fail(q, -EINVAL, "%s contains '/'", what);
	if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0)
		return req_fail(q, -EINVAL, "%s is \"%s\"", what, buf);
	return vfsd_reader_skip(q->r, len + 1);
}

/*
 * Decode a NUL-terminated symlink target into @buf: 1 to VFSD_PATH_MAX - 1
 * bytes, any of them but NUL ('/' included). Only VFSD_PATH_MAX bytes are
 * ever looked at, and never beyond the request. A target with no NUL in
 * its first VFSD_PATH_MAX bytes is -ENAMETOOLONG (what symlink(2) says);
 * every other malformation is -EINVAL.
 */
static int read_target(struct req *q, char buf[static VFSD_PATH_MAX], const char *what)
{
	struct vfsd_reader peek = *q->r;
	size_t n = MIN(vfsd_reader_available(q->r), (size_t)VFSD_PATH_MAX);
	const char *nul;
	size_t len;

	if (vfsd_reader_read(&peek, buf, n) < 0)
		return req_fail(q, -EIO, "%s: cannot read", what); /* cannot happen */
	nul = memchr(buf, '\0', n);
	if (!nul) {
		if (n >= VFSD_PATH_MAX)
			return req_fail(q, -ENAMETOOLONG, "%s longer than %u bytes", what,
					VFSD_PATH_MAX - 1);
		return req_fail(q, -EINVAL, "%s not NUL-terminated within len", what);
	}
	len = (size_t)(nul - buf);
	if (len == 0)
		return req_fail(q, -EINVAL, "%s is empty", what);
	return vfsd_reader_skip(q->r, len + 1);
}

/* Whether a payload of @size bytes fits after the reply header. */
static int reply_room(const struct req *q, size_t size)
{
	size_t room = vfsd_writer_available(q->w) - OUT_HDR_SIZE; /* >= 16 checked up front */

	if (size > room)
		return req_fail(q, -ENOSPC, "%zu-byte reply payload does not fit in %zu bytes",
				size, room);
	return 0;
}

/*
 * Write the header for a reply whose @size payload bytes are already in
 * place; @body (may be NULL when @size is 0) is the writer past the payload.
 */
static int reply_finish(struct req *q, const struct vfsd_writer *body, size_t size, int error)
{
	struct fuse_out_header oh = {
		.len = (uint32_t)(OUT_HDR_SIZE + size),
		.error = error,
		.unique = q->h.unique,
	};
	int ret;

	ret = vfsd_writer_write(q->w, &oh, sizeof(oh));
	assert(ret == 0); /* room checked before the handler ran */
	(void)ret;
	if (body)
		*q->w = *body;
	q->replied = true;
	q->reply_len = OUT_HDR_SIZE + size;
	return 0;
}

/* Reply with @size bytes of @payload, or -ENOSPC (header only) when they do not fit. */
static int reply_payload(struct req *q, const void *payload, size_t size)
{
	struct vfsd_writer body = *q->w;
	int ret;

	ret = reply_room(q, size);
	if (ret < 0)
		return ret;
	ret = vfsd_writer_advance(&body, OUT_HDR_SIZE);
	if (ret == 0)
		ret = vfsd_writer_write(&body, payload, size);
	assert(ret == 0);
	return reply_finish(q, &body, size, 0);
}

/* An op's result as a reply error: a negative errno the guest kernel accepts. */
static int sanitize_error(const struct req *q, int err)
{
	if (err < 0 && err > -512)
		return err;
	log_warn("FUSE %s unique %llu: bad result %d, replying EIO", q->op->name,
		 (unsigned long long)q->h.unique, err);
	return -EIO;
}

/* ---- handlers ---- */

static int do_init(struct req *q)
{
	struct vfsd_fuse_session *s = q->s;
	const struct fuse_init_in *in = &q->in.init;
	struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION };
	uint64_t flags;
	size_t out_size;
	uint32_t minor;
	int ret;

	if (in->major < FUSE_KERNEL_VERSION)
		return req_fail(q, -EPROTO, "unsupported protocol major %u", in->major);
	if (in->major > FUSE_KERNEL_VERSION) {
		/* Tell the guest our major; it retries with a 7.x INIT. */
		out.minor = FUSE_KERNEL_MINOR_VERSION;
		log_info("FUSE INIT: guest speaks %u.%u, answering %u.%u", in->major, in->minor,
			 FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION);
		return reply_payload(q, &out, sizeof(out));
	}
	if (in->minor < VFSD_FUSE_MIN_MINOR)
		return req_fail(q, -EPROTO, "protocol 7.%u is older than 7.%u", in->minor,
				VFSD_FUSE_MIN_MINOR);

	flags = in->flags;
	if (in->minor >= INIT_EXT_MINOR) {
		ret = in_extend(q, sizeof(struct fuse_init_in));
		if (ret < 0)
			return ret;
		if (flags & FUSE_INIT_EXT)
			flags |= (uint64_t)in->flags2 << 32;
	} else {
		flags &= ~(uint64_t)FUSE_INIT_EXT; /* no flags2 before 7.36 */
	}
	flags &= VFSD_INIT_OFFER;
	minor = MIN(in->minor, (uint32_t)FUSE_KERNEL_MINOR_VERSION);
	out_size = minor < INIT_OUT_FULL_MINOR ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out);
	ret = reply_room(q, out_size);
	if (ret < 0)
		return ret;

	/* The guest (re)mounted: state from an earlier mount must go. */
	if (s->initialized) {
		if (s->on_reset)
			s->on_reset(s->on_reset_arg, "FUSE INIT on a live session");
		if (s->ops->reset)
			s->ops->reset(s->fs);
	}
	s->conn = (struct vfsd_fuse_conn){
		.minor = minor,
		.flags = flags,
		.max_write = VFSD_MAX_WRITE,
		.max_readahead = MIN(in->max_readahead, VFSD_MAX_READAHEAD),
	};
	s->initialized = true;

	out.minor = minor;
	out.max_readahead = s->conn.max_readahead;
	out.flags = (uint32_t)flags;
	out.flags2 = (uint32_t)(flags >> 32);
	out.max_write = s->conn.max_write;
	out.time_gran = 1;
	out.max_pages = VFSD_MAX_PAGES;
	log_info("FUSE INIT: protocol 7.%u, flags 0x%llx, max_readahead %u", minor,
		 (unsigned long long)flags, out.max_readahead);
	return reply_payload(q, &out, out_size);
}

static int do_destroy(struct req *q)
{
	struct vfsd_fuse_session *s = q->s;

	if (s->on_reset)
		s->on_reset(s->on_reset_arg, "FUSE DESTROY");
	if (s->ops->destroy)
		s->ops->destroy(s->fs);
	s->initialized = false;
	s->conn = (struct vfsd_fuse_conn){ 0 };
	return 0;
}

static int do_forget(struct req *q)
{
	if (OPS(q)->forget)
		OPS(q)->forget(q->s->fs, q->h.nodeid, q->in.forget.nlookup);
	return 0;
}

static int do_batch_forget(struct req *q)
{
	uint32_t count = q->in.batch_forget.count;
	size_t need;

	/* All or nothing: check the whole array fits before forgetting any. */
	if (MUL_OVERFLOW((size_t)count, sizeof(struct fuse_forget_one), &need) ||
	    need > vfsd_reader_available(q->r))
		return req_fail(q, -EINVAL, "count %u does not fit in %zu bytes", count,
				vfsd_reader_available(q->r));
	for (uint32_t i = 0; i < count; i++) {
		struct fuse_forget_one one;

		if (vfsd_reader_read(q->r, &one, sizeof(one)) < 0)
			return -EIO; /* cannot happen: checked above */
		if (OPS(q)->forget)
			OPS(q)->forget(q->s->fs, one.nodeid, one.nlookup);
	}
	return 0;
}

static int do_interrupt(struct req *q)
{
	/* Requests run to completion; nothing to interrupt. */
	return 0;
}

static int do_lookup(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	struct fuse_entry_out out = { 0 };
	int ret;

	if (!OPS(q)->lookup)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->lookup(q->s->fs, &q->ctx, q->h.nodeid, name, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_getattr(struct req *q)
{
	struct fuse_attr_out out = { 0 };
	int ret;

	if (!OPS(q)->getattr)
		return -ENOSYS;
	ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->getattr(q->s->fs, &q->ctx, q->h.nodeid, &q->in.getattr, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_setattr(struct req *q)
{
	struct fuse_attr_out out = { 0 };
	int ret;

	if (!OPS(q)->setattr)
		return -ENOSYS;
	ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->setattr(q->s->fs, &q->ctx, q->h.nodeid, &q->in.setattr, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_open_common(struct req *q, bool dir)
{
	int (*op)(void *, const struct vfsd_fs_ctx *, uint64_t, uint32_t, struct fuse_open_out *) =
	    dir ? OPS(q)->opendir : OPS(q)->open;
	struct fuse_open_out out = { 0 };
	int ret;

	if (!op)
		return -ENOSYS;
	ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = op(q->s->fs, &q->ctx, q->h.nodeid, q->in.open.flags, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_open(struct req *q)
{
	return do_open_common(q, false);
}

static int do_opendir(struct req *q)
{
	return do_open_common(q, true);
}

static int do_release(struct req *q)
{
	if (!OPS(q)->release)
		return -ENOSYS;
	return OPS(q)->release(q->s->fs, &q->ctx, q->h.nodeid, &q->in.release);
}

static int do_releasedir(struct req *q)
{
	if (!OPS(q)->releasedir)
		return -ENOSYS;
	return OPS(q)->releasedir(q->s->fs, &q->ctx, q->h.nodeid, &q->in.release);
}

static int do_flush(struct req *q)
{
	if (!OPS(q)->flush)
		return -ENOSYS;
	return OPS(q)->flush(q->s->fs, &q->ctx, q->h.nodeid, &q->in.flush);
}

static int do_fsync(struct req *q)
{
	if (!OPS(q)->fsync)
		return -ENOSYS;
	return OPS(q)->fsync(q->s->fs, &q->ctx, q->h.nodeid, &q->in.fsync);
}

static int do_create(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	struct {
		struct fuse_entry_out entry;
		struct fuse_open_out open;
	} out = { 0 };
	int ret;

	_Static_assert(sizeof(out) == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out),
		       "CREATE reply is entry_out then open_out, unpadded");
	if (!OPS(q)->create)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->create(q->s->fs, &q->ctx, q->h.nodeid, name, &q->in.create,
				     &out.entry, &out.open);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_mkdir(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	struct fuse_entry_out out = { 0 };
	int ret;

	if (!OPS(q)->mkdir)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->mkdir(q->s->fs, &q->ctx, q->h.nodeid, name, &q->in.mkdir, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

/*
 * READLINK: no arguments; the reply payload is the target's bytes without a
 * NUL. The guest kernel offers a page less one byte for it, which is
 * VFSD_PATH_MAX - 1, the longest target there is, on 4 KiB pages. A target
 * that does not fit the reply room is -ENAMETOOLONG, never truncated: a
 * truncated target is a different, valid-looking path.
 */
static int do_readlink(struct req *q)
{
	char buf[VFSD_PATH_MAX];
	size_t room = vfsd_writer_available(q->w) - OUT_HDR_SIZE; /* >= 16 checked up front */
	int ret;

	if (!OPS(q)->readlink)
		return -ENOSYS;
	ret = OPS(q)->readlink(q->s->fs, &q->ctx, q->h.nodeid, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	if ((size_t)ret >= sizeof(buf))
		return req_fail(q, -EIO, "readlink op returned %d for a %zu-byte buffer", ret,
				sizeof(buf));
	if ((size_t)ret > room)
		return req_fail(q, -ENAMETOOLONG, "%d-byte target does not fit in %zu bytes", ret,
				room);
	return reply_payload(q, buf, (size_t)ret);
}

/* SYMLINK: "name\0target\0" (the kernel's order: the new entry first). */
static int do_symlink(struct req *q)
{
	char name[VFSD_NAME_MAX + 1], target[VFSD_PATH_MAX];
	struct fuse_entry_out out = { 0 };
	int ret;

	if (!OPS(q)->symlink)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret == 0)
		ret = read_target(q, target, "target");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->symlink(q->s->fs, &q->ctx, q->h.nodeid, name, target, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

/*
 * MKNOD: fuse_mknod_in, then the name. Before 7.12 the in-struct was 8
 * bytes (FUSE_COMPAT_MKNOD_IN_SIZE), but INIT refuses anything below
 * VFSD_FUSE_MIN_MINOR, so the full struct is always there.
 */
static int do_mknod(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	struct fuse_entry_out out = { 0 };
	int ret;

	_Static_assert(VFSD_FUSE_MIN_MINOR >= 12, "MKNOD would need FUSE_COMPAT_MKNOD_IN_SIZE");
	if (!OPS(q)->mknod)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->mknod(q->s->fs, &q->ctx, q->h.nodeid, name, &q->in.mknod, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

/* LINK: fuse_link_in (the existing node), then the new name; nodeid is the new parent. */
static int do_link(struct req *q)
{
	char newname[VFSD_NAME_MAX + 1];
	struct fuse_entry_out out = { 0 };
	uint64_t oldnodeid = q->in.link.oldnodeid;
	int ret;

	if (!OPS(q)->link)
		return -ENOSYS;
	if (oldnodeid == 0)
		return req_fail(q, -EINVAL, "oldnodeid is 0");
	ret = read_name(q, newname, "new name");
	if (ret == 0)
		ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->link(q->s->fs, &q->ctx, oldnodeid, q->h.nodeid, newname, &out);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

static int do_unlink(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	int ret;

	if (!OPS(q)->unlink)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret < 0)
		return ret;
	return OPS(q)->unlink(q->s->fs, &q->ctx, q->h.nodeid, name);
}

static int do_rmdir(struct req *q)
{
	char name[VFSD_NAME_MAX + 1];
	int ret;

	if (!OPS(q)->rmdir)
		return -ENOSYS;
	ret = read_name(q, name, "name");
	if (ret < 0)
		return ret;
	return OPS(q)->rmdir(q->s->fs, &q->ctx, q->h.nodeid, name);
}

/* RENAME and RENAME2: the in-struct, then "oldname\0newname\0". */
static int rename_common(struct req *q, uint64_t newdir, uint32_t flags)
{
	char oldname[VFSD_NAME_MAX + 1], newname[VFSD_NAME_MAX + 1];
	int ret;

	if (!OPS(q)->rename)
		return -ENOSYS;
	ret = read_name(q, oldname, "old name");
	if (ret == 0)
		ret = read_name(q, newname, "new name");
	if (ret < 0)
		return ret;
	return OPS(q)->rename(q->s->fs, &q->ctx, q->h.nodeid, oldname, newdir, newname, flags);
}

static int do_rename(struct req *q)
{
	return rename_common(q, q->in.rename.newdir, 0);
}

static int do_rename2(struct req *q)
{
	return rename_common(q, q->in.rename2.newdir, q->in.rename2.flags);
}

static int do_read(struct req *q)
{
	struct fuse_read_in in;
	struct vfsd_writer body = *q->w;
	size_t cap, before, advanced;
	int ret;

	if (!OPS(q)->read)
		return -ENOSYS;
	if (q->s->conn.minor >= RW_FULL_MINOR) {
		ret = in_extend(q, sizeof(struct fuse_read_in));
		if (ret < 0)
			return ret;
	}
	in = q->in.read;
	/* The op fills the guest's buffers directly, after the reply header. */
	cap = MIN((size_t)in.size, (size_t)VFSD_MAX_READ);
	cap = MIN(cap, vfsd_writer_available(q->w) - OUT_HDR_SIZE);
	in.size = (uint32_t)cap;
	ret = vfsd_writer_advance(&body, OUT_HDR_SIZE);
	assert(ret == 0);
	vfsd_writer_limit(&body, cap);
	before = vfsd_writer_written(&body);

	ret = OPS(q)->read(q->s->fs, &q->ctx, q->h.nodeid, &in, &body);
	if (ret < 0)
		return ret;
	if ((size_t)ret > cap)
		return req_fail(q, -EIO, "read op returned %d bytes for a %zu-byte request", ret,
				cap);
	/*
	 * The op either advanced the writer itself or filled through
	 * vfsd_writer_iov() and left that to us; anything else is a bug.
	 */
	advanced = vfsd_writer_written(&body) - before;
	if (advanced == 0 && ret > 0)
		ret = vfsd_writer_advance(&body, (size_t)ret) == 0 ? ret : -EIO;
	else if (advanced != (size_t)ret)
		ret = -EIO;
	if (ret < 0)
		return req_fail(q, -EIO, "read op advanced the writer by %zu bytes", advanced);
	return reply_finish(q, &body, (size_t)ret, 0);
}

static int do_write(struct req *q)
{
	struct fuse_write_out out = { 0 };
	struct vfsd_reader data;
	uint32_t size;
	int ret;

	if (!OPS(q)->write)
		return -ENOSYS;
	if (q->s->conn.minor >= RW_FULL_MINOR) {
		ret = in_extend(q, sizeof(struct fuse_write_in));
		if (ret < 0)
			return ret;
	}
	size = q->in.write.size;
	if (size > vfsd_reader_available(q->r))
		return req_fail(q, -EINVAL, "size %u exceeds the %zu data bytes in the request",
				size, vfsd_reader_available(q->r));
	if (size > q->s->conn.max_write)
		return req_fail(q, -EINVAL, "size %u exceeds max_write %u", size,
				q->s->conn.max_write);
	ret = reply_room(q, sizeof(out));
	if (ret < 0)
		return ret;
	data = *q->r;
	ret = vfsd_reader_limit(&data, size);
	assert(ret == 0);

	ret = OPS(q)->write(q->s->fs, &q->ctx, q->h.nodeid, &q->in.write, &data);
	if (ret < 0)
		return ret;
	if ((uint32_t)ret > size)
		return req_fail(q, -EIO, "write op returned %d for %u bytes", ret, size);
	out.size = (uint32_t)ret;
	return reply_payload(q, &out, sizeof(out));
}

static int readdir_common(struct req *q, bool plus)
{
	_cleanup_free_ char *mem = NULL;
	struct vfsd_dirbuf buf = { 0 };
	struct fuse_read_in in;
	int ret;

	if (!OPS(q)->readdir)
		return -ENOSYS;
	if (plus && !(q->s->conn.flags & FUSE_DO_READDIRPLUS))
		return req_fail(q, -ENOSYS, "READDIRPLUS was not negotiated");
	if (q->s->conn.minor >= RW_FULL_MINOR) {
		ret = in_extend(q, sizeof(struct fuse_read_in));
		if (ret < 0)
			return ret;
	}
	in = q->in.read;
	/*
	 * Never list more than fits the reply: READDIRPLUS entries count as
	 * lookups, so an entry built but not delivered would leak one.
	 */
	buf.size = MIN((size_t)in.size, (size_t)VFSD_MAX_READDIR);
	buf.size = MIN(buf.size, vfsd_writer_available(q->w) - OUT_HDR_SIZE);
	mem = malloc(buf.size ? buf.size : 1);
	if (!mem)
		return -ENOMEM;
	buf.buf = mem;

	ret = OPS(q)->readdir(q->s->fs, &q->ctx, q->h.nodeid, &in, plus, &buf);
	if (ret < 0)
		return ret;
	if (buf.len > buf.size)
		return req_fail(q, -EIO, "readdir op overfilled its buffer");
	return reply_payload(q, buf.buf, buf.len);
}

static int do_readdir(struct req *q)
{
	return readdir_common(q, false);
}

static int do_readdirplus(struct req *q)
{
	return readdir_common(q, true);
}

static int do_statfs(struct req *q)
{
	struct fuse_statfs_out out = { 0 };
	int ret;

	if (!OPS(q)->statfs)
		return -ENOSYS;
	ret = reply_room(q, sizeof(out));
	if (ret == 0)
		ret = OPS(q)->statfs(q->s->fs, &q->ctx, q->h.nodeid, &out.st);
	if (ret < 0)
		return ret;
	return reply_payload(q, &out, sizeof(out));
}

/* ---- the opcode table ---- */

/* .name is the opcode without its "FUSE_" prefix. */
#define OP(opc, fn, in, reply)                                                                     \
	[opc] = { .handler = (fn), .name = &(#opc)[5], .min_in_size = (in), .needs_reply = (reply) }
/* Known to the protocol but not served: -ENOSYS, with a name for the logs. */
#define NOP(opc)                                                                                   \
	[opc] = { .handler = NULL, .name = &(#opc)[5], .min_in_size = 0, .needs_reply = true }

static const struct fuse_op fuse_ops[] = {
	OP(FUSE_LOOKUP, do_lookup, 0, true),
	OP(FUSE_FORGET, do_forget, sizeof(struct fuse_forget_in), false),
	OP(FUSE_GETATTR, do_getattr, sizeof(struct fuse_getattr_in), true),
	OP(FUSE_SETATTR, do_setattr, sizeof(struct fuse_setattr_in), true),
	OP(FUSE_READLINK, do_readlink, 0, true),
	OP(FUSE_SYMLINK, do_symlink, 0, true),
	OP(FUSE_MKNOD, do_mknod, sizeof(struct fuse_mknod_in), true),
	OP(FUSE_MKDIR, do_mkdir, sizeof(struct fuse_mkdir_in), true),
	OP(FUSE_UNLINK, do_unlink, 0, true),
	OP(FUSE_RMDIR, do_rmdir, 0, true),
	OP(FUSE_RENAME, do_rename, sizeof(struct fuse_rename_in), true),
	OP(FUSE_LINK, do_link, sizeof(struct fuse_link_in), true),
	OP(FUSE_OPEN, do_open, sizeof(struct fuse_open_in), true),
	OP(FUSE_READ, do_read, READ_IN_COMPAT_SIZE, true),
	OP(FUSE_WRITE, do_write, FUSE_COMPAT_WRITE_IN_SIZE, true),
	OP(FUSE_STATFS, do_statfs, 0, true),
	OP(FUSE_RELEASE, do_release, sizeof(struct fuse_release_in), true),
	OP(FUSE_FSYNC, do_fsync, sizeof(struct fuse_fsync_in), true),
	NOP(FUSE_SETXATTR),
	NOP(FUSE_GETXATTR),
	NOP(FUSE_LISTXATTR),
	NOP(FUSE_REMOVEXATTR),
	OP(FUSE_FLUSH, do_flush, sizeof(struct fuse_flush_in), true),
	OP(FUSE_INIT, do_init, INIT_IN_COMPAT_SIZE, true),
	OP(FUSE_OPENDIR, do_opendir, sizeof(struct fuse_open_in), true),
	OP(FUSE_READDIR, do_readdir, READ_IN_COMPAT_SIZE, true),
	OP(FUSE_RELEASEDIR, do_releasedir, sizeof(struct fuse_release_in), true),
	NOP(FUSE_FSYNCDIR),
	NOP(FUSE_GETLK),
	NOP(FUSE_SETLK),
	NOP(FUSE_SETLKW),
	NOP(FUSE_ACCESS),
	OP(FUSE_CREATE, do_create, sizeof(struct fuse_create_in), true),
	OP(FUSE_INTERRUPT, do_interrupt, sizeof(struct fuse_interrupt_in), false),
	NOP(FUSE_BMAP),
	OP(FUSE_DESTROY, do_destroy, 0, true),
	NOP(FUSE_IOCTL),
	NOP(FUSE_POLL),
	NOP(FUSE_NOTIFY_REPLY),
	OP(FUSE_BATCH_FORGET, do_batch_forget, sizeof(struct fuse_batch_forget_in), false),
	NOP(FUSE_FALLOCATE),
	OP(FUSE_READDIRPLUS, do_readdirplus, READ_IN_COMPAT_SIZE, true),
	OP(FUSE_RENAME2, do_rename2, sizeof(struct fuse_rename2_in), true),
	NOP(FUSE_LSEEK),
	NOP(FUSE_COPY_FILE_RANGE),
	NOP(FUSE_SETUPMAPPING),
	NOP(FUSE_REMOVEMAPPING),
	NOP(FUSE_SYNCFS),
	NOP(FUSE_TMPFILE),
};

static const struct fuse_op unknown_op = { .name = "UNKNOWN", .needs_reply = true };

static const struct fuse_op *op_lookup(uint32_t opcode)
{
	if (opcode < ARRAY_SIZE(fuse_ops) && fuse_ops[opcode].name)
		return &fuse_ops[opcode];
	return &unknown_op;
}

const char *vfsd_fuse_opcode_name(uint32_t opcode)
{
	return op_lookup(opcode)->name;
}

/* ---- session ---- */

int vfsd_fuse_session_init(struct vfsd_fuse_session *s, const struct vfsd_fs_ops *ops, void *fs)
{
	pthread_rwlockattr_t attr;
	int ret;

	if (!s || !ops)
		return -EINVAL;
	*s = (struct vfsd_fuse_session){ .ops = ops, .fs = fs };
	ret = pthread_rwlockattr_init(&attr);
	if (ret)
		return -ret;
	/*
	 * Prefer writers: with a busy guest, readers on other queues would
	 * otherwise keep INIT / reset waiting for as long as they keep coming.
	 */
	ret = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (ret == 0)
		ret = pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return -ret;
}

void vfsd_fuse_session_done(struct vfsd_fuse_session *s)
{
	if (!s)
		return;
	pthread_rwlock_destroy(&s->lock);
}

void vfsd_fuse_session_reset(struct vfsd_fuse_session *s, const char *why)
{
	pthread_rwlock_wrlock(&s->lock);
	if (s->on_reset)
		s->on_reset(s->on_reset_arg, why);
	if (s->ops->reset)
		s->ops->reset(s->fs);
	s->initialized = false;
	s->conn = (struct vfsd_fuse_conn){ 0 };
	pthread_rwlock_unlock(&s->lock);
}

/* Validate the header against the chain, copy the fixed in-struct out and run the handler. */
static int dispatch(struct req *q)
{
	size_t body;

	if (q->h.len < IN_HDR_SIZE)
		return req_fail(q, -EINVAL, "len %u is shorter than fuse_in_header", q->h.len);
	body = q->h.len - IN_HDR_SIZE;
	if (q->h.len > VFSD_MAX_REQUEST)
		return req_fail(q, -EINVAL, "len %u exceeds the %u-byte limit", q->h.len,
				VFSD_MAX_REQUEST);
	if (vfsd_reader_limit(q->r, body) < 0)
		return req_fail(q, -EINVAL, "len %u exceeds the %zu readable bytes", q->h.len,
				IN_HDR_SIZE + vfsd_reader_available(q->r));
	if (!q->op->handler)
		return req_fail(q, -ENOSYS, "not implemented");
	if (q->h.opcode != FUSE_INIT && !q->s->initialized)
		return req_fail(q, -EIO, "request before INIT");
	if (body < q->op->min_in_size)
		return req_fail(q, -EIO, "body of %zu bytes is shorter than the %u-byte in-struct",
				body, q->op->min_in_size);
	assert(q->op->min_in_size <= sizeof(q->in));
	if (vfsd_reader_read(q->r, q->in.raw, q->op->min_in_size) < 0)
		return -EIO; /* cannot happen: body checked above */
	q->in_size = q->op->min_in_size;
	return q->op->handler(q);
}

int vfsd_fuse_handle(struct vfsd_fuse_session *s, struct vfsd_reader *r, struct vfsd_writer *w,
		     struct vfsd_io *io)
{
	struct vfsd_reader rd = *r;
	struct vfsd_writer wr = *w;
	struct req q = { .s = s, .r = &rd, .w = &wr };
	bool exclusive;
	int ret;

	if (vfsd_reader_read(&rd, &q.h, sizeof(q.h)) < 0) {
		log_debug("FUSE request of %zu bytes is shorter than fuse_in_header",
			  vfsd_reader_available(&rd));
		return -EIO;
	}
	q.op = op_lookup(q.h.opcode);
	q.ctx = (struct vfsd_fs_ctx){
		.unique = q.h.unique,
		.nodeid = q.h.nodeid,
		.uid = q.h.uid,
		.gid = q.h.gid,
		.pid = q.h.pid,
		.io = io,
	};
	log_trace("FUSE %s unique %llu nodeid %llu len %u uid %u gid %u pid %u", q.op->name,
		  (unsigned long long)q.h.unique, (unsigned long long)q.h.nodeid, q.h.len, q.h.uid,
		  q.h.gid, q.h.pid);
	if (q.op->needs_reply && vfsd_writer_available(&wr) < OUT_HDR_SIZE) {
		req_fail(&q, -ENOSPC, "no room for a reply header (%zu bytes writable)",
			 vfsd_writer_available(&wr));
		return -ENOSPC;
	}

	/* INIT and DESTROY change the session: wait for every request in flight. */
	exclusive = q.h.opcode == FUSE_INIT || q.h.opcode == FUSE_DESTROY;
	if (exclusive)
		pthread_rwlock_wrlock(&s->lock);
	else
		pthread_rwlock_rdlock(&s->lock);
	ret = dispatch(&q);
	pthread_rwlock_unlock(&s->lock);

	if (!q.op->needs_reply)
		return 0; /* FORGET, BATCH_FORGET, INTERRUPT: the guest expects nothing */
	/* No reply yet: an op's 0 (or count) is an empty success, -errno an error reply. */
	if (!q.replied)
		reply_finish(&q, NULL, 0, ret >= 0 ? 0 : sanitize_error(&q, ret));
	*w = wr;
	return (int)q.reply_len;
}
