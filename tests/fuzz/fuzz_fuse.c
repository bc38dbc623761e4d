/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target for the FUSE decoder/dispatcher.
 *
 * Input: byte 0 selects the shape of the chain, the rest is one or more FUSE
 * requests back to back (each chain is as long as its header's len says,
 * when that is sane, else everything left):
 *   bits 0-3  iovec split: sizes cycle through k, 0, 2k+1, 1 with k = (bits & 15) + 1
 *   bits 4-6  writable room: 0, 8, 16, 40, 160, 4096, 64 KiB + 16, 1 MiB + 16
 *   bit 7     do NOT send our own INIT first (fuzz INIT and pre-INIT paths)
 *
 * The fake fs checks what the dispatcher promises (valid names, readers
 * fenced to the request, writers within the reply) and aborts otherwise.
 *
 * Built with -fsanitize=fuzzer (VFSD_LIBFUZZER) it is a libFuzzer target;
 * otherwise main() replays every file of the directories (or files) given.
 */
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

#define OUT_HDR	 sizeof(struct fuse_out_header)
#define MAX_ROOM (VFSD_MAX_READDIR + 16)

static uint8_t out_buf[MAX_ROOM];
static const size_t rooms[8] = { 0, 8, 16, 40, 160, 4096, 65536 + 16, MAX_ROOM };

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void check_name(const char *name)
{
	size_t len = strlen(name);

	CHECK(len > 0 && len <= VFSD_NAME_MAX);
	CHECK(!strchr(name, '/'));
	CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
}

static void entry(struct fuse_entry_out *e, uint64_t nodeid)
{
	e->nodeid = nodeid;
	e->attr.ino = nodeid;
	e->attr.mode = 0100644;
	e->attr.nlink = 1;
}

static void f_reset(void *fs)
{
}

static int f_lookup(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    struct fuse_entry_out *ret)
{
	check_name(name);
	if (name[0] == 'x')
		return -ENOENT;
	entry(ret, parent + 1);
	return 0;
}

static void f_forget(void *fs, uint64_t nodeid, uint64_t nlookup)
{
}

static int f_getattr(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_getattr_in *in, struct fuse_attr_out *ret)
{
	ret->attr.ino = nodeid;
	return nodeid == 0 ? -ESTALE : 0;
}

static int f_setattr(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_setattr_in *in, struct fuse_attr_out *ret)
{
	ret->attr.size = in->size;
	return 0;
}

static int f_mkdir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		   const struct fuse_mkdir_in *in, struct fuse_entry_out *ret)
{
	check_name(name);
	entry(ret, parent + 2);
	return 0;
}

static int f_remove(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	check_name(name);
	return parent == 1 ? 0 : -ENOENT;
}

static int f_rename(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, uint32_t flags)
{
	check_name(name);
	check_name(newname);
	return flags ? -EINVAL : 0;
}

static int f_open(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		  struct fuse_open_out *ret)
{
	ret->fh = nodeid;
	return 0;
}

static int f_create(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    const struct fuse_create_in *in, struct fuse_entry_out *ret_entry,
		    struct fuse_open_out *ret_open)
{
	check_name(name);
	entry(ret_entry, parent + 3);
	ret_open->fh = 7;
	return 0;
}

static int f_read(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		  const struct fuse_read_in *in, struct vfsd_writer *w)
{
	struct iovec iov[VFSD_CHAIN_MAX_IOV];
	size_t n = MIN((size_t)in->size, (size_t)(in->offset & 0xfffff));
	unsigned int cnt;

	CHECK(in->size <= vfsd_writer_available(w));
	if (vfsd_writer_iov(w, n, iov, VFSD_CHAIN_MAX_IOV, &cnt) < 0)
		return -EIO;
	for (unsigned int i = 0; i < cnt; i++)
		memset(iov[i].iov_base, 'r', iov[i].iov_len);
	if (in->fh & 1)
		CHECK(vfsd_writer_advance(w, n) == 0); /* both conventions are allowed */
	return (int)n;
}

static int f_write(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		   const struct fuse_write_in *in, struct vfsd_reader *r)
{
	struct iovec iov[VFSD_CHAIN_MAX_IOV];
	unsigned int cnt;
	uint8_t sum = 0;

	CHECK(vfsd_reader_available(r) == in->size);
	if (vfsd_reader_iov(r, in->size, iov, VFSD_CHAIN_MAX_IOV, &cnt) < 0)
		return -EIO;
	for (unsigned int i = 0; i < cnt; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++)
			sum += ((uint8_t *)iov[i].iov_base)[j];
	CHECK(vfsd_reader_available(r) == 0);
	return in->fh == 0 ? -EBADF : (int)in->size - (sum & 1);
}

static int f_simple(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, const void *in)
{
	return nodeid & 1 ? 0 : -EBADF;
}

static int f_flush(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		   const struct fuse_flush_in *in)
{
	return f_simple(fs, ctx, nodeid, in);
}

static int f_release(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_release_in *in)
{
	return f_simple(fs, ctx, nodeid, in);
}

static int f_fsync(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		   const struct fuse_fsync_in *in)
{
	return f_simple(fs, ctx, nodeid, in);
}

static int f_readdir(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_read_in *in, bool plus, struct vfsd_dirbuf *buf)
{
	static const char *names[] = { "a", "bb", "a-longer-name", "d", "eeeeeeeeeeeeeeeeeeeeee" };
	struct fuse_entry_out e = { 0 };

	CHECK(buf->size <= in->size && buf->size <= VFSD_MAX_READDIR);
	for (uint64_t i = in->offset; i < 64; i++) {
		const char *name = names[i % ARRAY_SIZE(names)];
		int ret;

		entry(&e, 10 + i);
		if (plus)
			ret = vfsd_dirbuf_add_plus(buf, name, strlen(name), &e, DT_REG, i + 1);
		else
			ret = vfsd_dirbuf_add(buf, name, strlen(name), 10 + i, DT_REG, i + 1);
		if (ret < 0)
			break;
	}
	return 0;
}

static int f_statfs(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    struct fuse_kstatfs *ret)
{
	ret->bsize = 4096;
	ret->namelen = 255;
	return 0;
}

static int f_readlink(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, char *buf,
		      size_t size)
{
	/* Every length up to the limit, so the fit checks are exercised. */
	size_t n = (nodeid * 37) % (size + 1);

	if (n >= size)
		return -ENAMETOOLONG;
	memset(buf, 'l', n);
	return (int)n;
}

static int f_symlink(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     const char *target, struct fuse_entry_out *ret)
{
	size_t len = strlen(target);

	check_name(name);
	if (len == 0 || len >= VFSD_PATH_MAX)
		abort(); /* the dispatcher promised 1..VFSD_PATH_MAX - 1 bytes */
	entry(ret, parent + 4);
	return 0;
}

static int f_mknod(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		   const struct fuse_mknod_in *in, struct fuse_entry_out *ret)
{
	check_name(name);
	entry(ret, parent + 5);
	return 0;
}

static int f_link(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t oldnodeid, uint64_t newparent,
		  const char *newname, struct fuse_entry_out *ret)
{
	check_name(newname);
	if (oldnodeid == 0)
		abort(); /* the dispatcher rejects node id 0 */
	entry(ret, oldnodeid);
	return 0;
}

static const struct vfsd_fs_ops fuzz_ops = {
	.readlink = f_readlink,
	.symlink = f_symlink,
	.mknod = f_mknod,
	.link = f_link,
	.reset = f_reset,
	.destroy = f_reset,
	.lookup = f_lookup,
	.forget = f_forget,
	.getattr = f_getattr,
	.setattr = f_setattr,
	.mkdir = f_mkdir,
	.unlink = f_remove,
	.rmdir = f_remove,
	.rename = f_rename,
	.open = f_open,
	.create = f_create,
	.read = f_read,
	.write = f_write,
	.flush = f_flush,
	.release = f_release,
	.fsync = f_fsync,
	.opendir = f_open,
	.readdir = f_readdir,
	.releasedir = f_release,
	.statfs = f_statfs,
};

static struct vfsd_fuse_session session;
static int fake_fs;

/* Split @len bytes at @base into iovecs of the sizes k, 0, 2k+1, 1, ... */
static unsigned int split(uint8_t *base, size_t len, size_t k, struct iovec *iov, unsigned int max)
{
	const size_t pat[4] = { k, 0, 2 * k + 1, 1 };
	size_t off = 0;
	unsigned int n = 0;

	for (unsigned int i = 0; off < len && n < max - 1; i++) {
		size_t piece = MIN(pat[i % 4], len - off);

		iov[n].iov_base = base + off;
		iov[n++].iov_len = piece;
		off += piece;
	}
	if (off < len) { /* the rest in one */
		iov[n].iov_base = base + off;
		iov[n++].iov_len = len - off;
	}
	return n;
}

static void run_one(uint8_t *req, size_t len, size_t k, size_t room)
{
	static struct iovec riov[VFSD_CHAIN_MAX_IOV], wiov[VFSD_CHAIN_MAX_IOV];
	struct vfsd_reader r;
	struct vfsd_writer w;
	unsigned int rn, wn;
	uint64_t unique = 0;
	int ret;

	rn = split(req, len, k, riov, 256);
	wn = split(out_buf, room, k + 3, wiov, 256);
	CHECK(vfsd_reader_init(&r, riov, rn) == 0);
	CHECK(vfsd_writer_init(&w, wiov, wn) == 0);
	if (len >= sizeof(struct fuse_in_header))
		memcpy(&unique, req + offsetof(struct fuse_in_header, unique), sizeof(unique));

	ret = vfsd_fuse_handle(&session, &r, &w, NULL);
	if (ret < 0) {
		CHECK(ret == -EIO || ret == -ENOSPC);
		return;
	}
	CHECK((size_t)ret <= room);
	CHECK(vfsd_writer_written(&w) == (size_t)ret);
	if (ret > 0) {
		struct fuse_out_header oh;

		CHECK((size_t)ret >= OUT_HDR);
		memcpy(&oh, out_buf, sizeof(oh));
		CHECK(oh.len == (uint32_t)ret);
		CHECK(oh.unique == unique);
		CHECK(oh.error <= 0 && oh.error > -512);
		CHECK(oh.error == 0 || oh.len == OUT_HDR);
	}
}

static void send_init(void)
{
	struct {
		struct fuse_in_header h;
		struct fuse_init_in in;
	} req = {
		.h = { .len = sizeof(req), .opcode = FUSE_INIT, .unique = 1 },
		.in = { .major = 7,
			.minor = FUSE_KERNEL_MINOR_VERSION,
			.max_readahead = 1 << 17,
			.flags = 0xffffffffu,
			.flags2 = 0xffffffffu },
	};

	run_one((uint8_t *)&req, sizeof(req), 1000, 4096);
	CHECK(session.initialized);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	uint8_t *copy;
	size_t k, room, off = 0;

	if (!ready) {
		const char *lvl = getenv("VFSD_FUZZ_LOG");

		vfsd_log_level = -1;
		if (lvl)
			vfsd_log_level_parse(lvl, &vfsd_log_level);
		CHECK(vfsd_fuse_session_init(&session, &fuzz_ops, &fake_fs) == 0);
		ready = true;
	}
	if (size < 1)
		return 0;
	k = (data[0] & 15) + 1;
	room = rooms[(data[0] >> 4) & 7];
	vfsd_fuse_session_reset(&session, "fuzz");
	if (!(data[0] & 0x80))
		send_init();

	/* an exact-size copy so that ASan catches any read past the input */
	size--;
	copy = malloc(size ? size : 1);
	CHECK(copy);
	memcpy(copy, data + 1, size);
	while (off < size) {
		size_t left = size - off, len = left;
		uint32_t hlen;

		if (left >= sizeof(struct fuse_in_header)) {
			memcpy(&hlen, copy + off, sizeof(hlen));
			if (hlen >= sizeof(struct fuse_in_header) && hlen < left)
				len = hlen;
		}
		run_one(copy + off, len, k, room);
		off += len;
	}
	free(copy);
	return 0;
}
