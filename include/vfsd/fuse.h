/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse: the FUSE decoder/dispatcher, INIT negotiation and the fs_ops seam.
 *
 * The dispatcher reads a request from a vfsd_reader, validates it, calls one
 * fs op and writes the reply to a vfsd_writer. An op returns 0 (or a count)
 * or -errno, which goes straight into fuse_out_header.error. A NULL op is
 * -ENOSYS. The dispatcher never touches guest memory or rings directly.
 */
#ifndef VFSD_FUSE_H
#define VFSD_FUSE_H

#include <linux/fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfsd/chain_io.h"

struct vfsd_io;

/* FUSE protocol we speak: the kernel header's 7.38, and at least 7.27 from the guest. */
#define VFSD_FUSE_MAJOR	    7
#define VFSD_FUSE_MIN_MINOR 27
#define VFSD_MAX_WRITE	    (1u << 20) /* 1 MiB, max_pages 256 */
#define VFSD_MAX_PAGES	    256
#define VFSD_NAME_MAX	    255
#define VFSD_PATH_MAX	    4096 /* symlink targets: at most VFSD_PATH_MAX - 1 bytes */
#define VFSD_MAX_REQUEST    (VFSD_MAX_WRITE + 4096)
#define VFSD_MAX_READDIR    (1u << 20)

/* Who asked, from fuse_in_header. */
struct vfsd_fs_ctx {
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	struct vfsd_io *io; /* the calling thread's io ring; NULL means plain syscalls */
};

/* What INIT negotiated; the fs may look at it (for example writeback). */
struct vfsd_fuse_conn {
	uint32_t minor; /* guest's minor, capped at ours */
	uint64_t flags; /* FUSE_* init flags in effect (flags | flags2 << 32) */
	uint32_t max_write;
	uint32_t max_readahead;
};

/*
 * A directory listing buffer the fs fills for READDIR / READDIRPLUS. The
 * dispatcher owns the memory; the fs adds entries with vfsd_dirbuf_add*().
 */
struct vfsd_dirbuf {
	char *buf;
	size_t size; /* capacity: the guest's requested size, capped */
	size_t len;  /* used */
};

/**
 * vfsd_dirbuf_add() - append a fuse_dirent (READDIR).
 * @off: the cookie the guest passes back to continue after this entry
 * Returns: 0, or -ENOSPC (nothing added) when it does not fit.
 */
int vfsd_dirbuf_add(struct vfsd_dirbuf *b, const char *name, size_t namelen, uint64_t ino,
		    uint32_t type, uint64_t off);

/** vfsd_dirbuf_fits_plus() - whether a READDIRPLUS entry with this name length still fits. */
bool vfsd_dirbuf_fits_plus(const struct vfsd_dirbuf *b, size_t namelen);

/**
 * vfsd_dirbuf_add_plus() - append a fuse_direntplus (READDIRPLUS). An entry
 * whose entry->nodeid is non-zero counts as one guest lookup.
 * Returns: 0, or -ENOSPC (nothing added).
 */
int vfsd_dirbuf_add_plus(struct vfsd_dirbuf *b, const char *name, size_t namelen,
			 const struct fuse_entry_out *entry, uint32_t type, uint64_t off);

/*
 * One function per FUSE op. @fs is the filesystem's private pointer. Names
 * arrive NUL-terminated, non-empty, at most VFSD_NAME_MAX bytes, without '/'.
 * Ops return 0 / a byte count, or -errno.
 */
struct vfsd_fs_ops {
	/* INIT on a fresh or used session: drop everything but the root. */
	void (*reset)(void *fs);
	/* DESTROY: the guest unmounted; same as reset. */
	void (*destroy)(void *fs);

	int (*lookup)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      struct fuse_entry_out *ret);
	void (*forget)(void *fs, uint64_t nodeid, uint64_t nlookup);
	int (*getattr)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		       const struct fuse_getattr_in *in, struct fuse_attr_out *ret);
	int (*setattr)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		       const struct fuse_setattr_in *in, struct fuse_attr_out *ret);
	int (*mkdir)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     const struct fuse_mkdir_in *in, struct fuse_entry_out *ret);
	int (*unlink)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name);
	int (*rmdir)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name);
	/* RENAME is RENAME2 with flags 0. */
	int (*rename)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      uint64_t newparent, const char *newname, uint32_t flags);
	int (*open)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		    struct fuse_open_out *ret);
	int (*create)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      const struct fuse_create_in *in, struct fuse_entry_out *ret_entry,
		      struct fuse_open_out *ret_open);
	/* READ: fill at most @size bytes into @w (zero-copy); returns bytes read. */
	int (*read)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    const struct fuse_read_in *in, struct vfsd_writer *w);
	/* WRITE: the data is the next in->size bytes of @r; returns bytes written. */
	int (*write)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_write_in *in, struct vfsd_reader *r);
	int (*flush)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_flush_in *in);
	int (*release)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		       const struct fuse_release_in *in);
	int (*fsync)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     const struct fuse_fsync_in *in);
	int (*opendir)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		       struct fuse_open_out *ret);
	/* READDIR / READDIRPLUS (@plus): entries after in->offset into @buf. */
	int (*readdir)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		       const struct fuse_read_in *in, bool plus, struct vfsd_dirbuf *buf);
	int (*releasedir)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			  const struct fuse_release_in *in);
	int (*statfs)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      struct fuse_kstatfs *ret);
	/*
	 * READLINK: copy the link target, without a NUL, to @buf (room for
	 * @size bytes) and return its length, which must be below @size: a
	 * target of @size bytes or more (readlink cannot tell it from a
	 * truncated one) is -ENAMETOOLONG. Not a symlink: -EINVAL.
	 */
	int (*readlink)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, char *buf,
			size_t size);
	/*
	 * SYMLINK: @name in @parent pointing to @target (NUL-terminated, 1 to
	 * VFSD_PATH_MAX - 1 bytes, may contain '/'). Like MKNOD, MKDIR and
	 * LINK, a successful reply counts as one guest lookup of the entry.
	 */
	int (*symlink)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		       const char *target, struct fuse_entry_out *ret);
	/* MKNOD: in->mode carries the file type; in->rdev is new_encode_dev() format. */
	int (*mknod)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     const struct fuse_mknod_in *in, struct fuse_entry_out *ret);
	/* LINK: a new name @newname in @newparent for the existing @oldnodeid (never 0). */
	int (*link)(void *fs, const struct vfsd_fs_ctx *ctx, uint64_t oldnodeid, uint64_t newparent,
		    const char *newname, struct fuse_entry_out *ret);
};

/*
 * The FUSE session: negotiated options plus the filesystem. Requests run
 * under the read side of @lock; INIT and DESTROY take the write side, so a
 * reset waits for every request in flight on every queue and none starts
 * while it runs.
 */
struct vfsd_fuse_session {
	pthread_rwlock_t lock;
	bool initialized;
	struct vfsd_fuse_conn conn;
	const struct vfsd_fs_ops *ops;
	void *fs;
	/*
	 * Optional: told before every session reset (INIT on a live session,
	 * DESTROY, vfsd_fuse_session_reset) with the reason, under the write
	 * lock; the daemon logs what is dropped, since it is lost for good.
	 */
	void (*on_reset)(void *arg, const char *why);
	void *on_reset_arg;
};

/** vfsd_fuse_session_init() - set up a session over @fs; not yet INIT-ed. Returns 0 or -errno. */
int vfsd_fuse_session_init(struct vfsd_fuse_session *s, const struct vfsd_fs_ops *ops, void *fs);

/** vfsd_fuse_session_done() - free the session's own resources (not the fs). */
void vfsd_fuse_session_done(struct vfsd_fuse_session *s);

/**
 * vfsd_fuse_session_reset() - drain in-flight requests, reset the fs and forget
 * the INIT negotiation (used for SET_STATUS 0 and RESET_DEVICE).
 */
void vfsd_fuse_session_reset(struct vfsd_fuse_session *s, const char *why);

/**
 * vfsd_fuse_handle() - decode one request from @r, run it, and write the reply to @w.
 * @io: the calling thread's io ring, passed to ops in ctx->io (may be NULL)
 * Returns: bytes written to @w (0 for requests without a reply, such as
 * FORGET), or -errno when the request is too broken to answer at all
 * (unreadable header, no room for a reply header); the caller then
 * completes the chain with length 0 and logs.
 */
int vfsd_fuse_handle(struct vfsd_fuse_session *s, struct vfsd_reader *r, struct vfsd_writer *w,
		     struct vfsd_io *io);

/** vfsd_fuse_opcode_name() - "LOOKUP", "READ", ... or "UNKNOWN". */
const char *vfsd_fuse_opcode_name(uint32_t opcode);

#endif
