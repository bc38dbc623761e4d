/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: the migration state blob (docs/state-format.md).
 *
 * The blob is JSON Lines: a header line, a session line, inode lines (parents
 * before children), handle lines, then a trailer with counts and a CRC-32C of
 * every byte before it. It describes the problem (node ids, paths relative to
 * the shared directory and/or file handles, open flags, lookup counts, the
 * INIT negotiation), never fd numbers or pointers.
 *
 * Both sides stream: the writer formats one record at a time into a bounded
 * buffer; the reader holds one line at a time (bounded by the limits) plus the
 * model it builds, whose size the limits bound too. The reader validates the
 * whole blob before it hands out a model, so a caller that applies only a
 * model it got back never applies half a blob.
 *
 * This module is pure data: no fds besides the one it reads or writes, no
 * liburing, no libseccomp, no libcap-ng, so the vfsd-state tool can link it.
 */
#ifndef VFSD_STATE_H
#define VFSD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The version this code writes; it reads every 1.x. */
#define VFSD_STATE_FORMAT	 "vfsd-state"
#define VFSD_STATE_MAJOR	 1
#define VFSD_STATE_MINOR	 1
#define VFSD_STATE_MAX_FEATURES	 32 /* per list in the header */
#define VFSD_STATE_FEATURE_SIZE	 64 /* bytes per feature name, NUL included */
#define VFSD_STATE_PRODUCER_SIZE 256
#define VFSD_STATE_NAME_MAX	 255  /* bytes in a file name */
#define VFSD_STATE_PATH_MAX	 4095 /* bytes in a relative path (inode "path") */
#define VFSD_STATE_HANDLE_MAX	 128  /* MAX_HANDLE_SZ: bytes in a file handle */

/* Required features defined by 1.0 and 1.1; a reader refuses a blob naming any other. */
#define VFSD_STATE_FEATURE_ORPHANS	"orphans"
#define VFSD_STATE_FEATURE_FILE_HANDLES "file-handles"
#define VFSD_STATE_FEATURE_LOST		"lost" /* 1.1: some inode is a "lost" record */

/* Default limits (struct vfsd_state_limits). */
#define VFSD_STATE_DEFAULT_MAX_LINE    (64u * 1024)
#define VFSD_STATE_DEFAULT_MAX_INODES  10000000u
#define VFSD_STATE_DEFAULT_MAX_HANDLES 1000000u

enum vfsd_state_type {
	VFSD_STATE_T_UNKNOWN = 0, /* only in models the reader rejected */
	VFSD_STATE_T_DIR,
	VFSD_STATE_T_REG,
	VFSD_STATE_T_LNK,
	VFSD_STATE_T_CHR,
	VFSD_STATE_T_BLK,
	VFSD_STATE_T_FIFO,
	VFSD_STATE_T_SOCK,
};

/* Why an inode record carries no location ("lost", format 1.1). */
enum vfsd_state_lost {
	VFSD_STATE_LOST_NONE = 0,  /* not lost: the record has a location */
	VFSD_STATE_LOST_UNLINKED,  /* "unlinked": the guest removed its last name itself */
	VFSD_STATE_LOST_NOT_FOUND, /* "not-found": the source could not find it */
};

enum vfsd_state_mode {
	VFSD_STATE_MODE_FIND_PATHS = 0, /* inodes re-opened by parent + name */
	VFSD_STATE_MODE_FILE_HANDLES,	/* inodes re-opened by file handle */
};

/* Header line. Feature lists hold names of up to VFSD_STATE_FEATURE_SIZE - 1 bytes. */
struct vfsd_state_header {
	uint32_t major, minor;
	char producer[VFSD_STATE_PRODUCER_SIZE];
	size_t n_required;
	char required[VFSD_STATE_MAX_FEATURES][VFSD_STATE_FEATURE_SIZE];
	size_t n_optional;
	char optional[VFSD_STATE_MAX_FEATURES][VFSD_STATE_FEATURE_SIZE];
};

/* Session line: what FUSE_INIT negotiated and the id counters. */
struct vfsd_state_session {
	bool initialized; /* false: the guest never sent INIT; fuse_* are 0 */
	uint32_t fuse_major, fuse_minor;
	uint64_t fuse_flags; /* flags | flags2 << 32 */
	uint32_t max_write, max_readahead;
	uint64_t next_nodeid; /* every inode id is below it */
	uint64_t next_fh;     /* every handle fh is below it */
	enum vfsd_state_mode mode;
};

/*
 * One inode. Root: id 1, parent 0, name NULL, path NULL. Every other inode
 * has parent + name, a path, an orphan name or a file handle (any
 * combination), or is lost: no location at all, only id, nlookup, type and
 * maybe ino (1.1; needs VFSD_STATE_FEATURE_LOST; never the root, never a
 * parent). Strings are NUL-terminated byte strings (names: any bytes but '/'
 * and NUL; the codec hex-encodes strings that are not UTF-8).
 */
struct vfsd_state_inode {
	uint64_t id;
	uint64_t nlookup; /* the guest's lookup count; 0: kept for open handles only */
	enum vfsd_state_type type;
	uint64_t parent; /* 0: none */
	char *name;	 /* NULL: none */
	char *path;	 /* NULL, or a path relative to the shared directory (a stale name
			  * re-derived): no leading '/', no empty, "." or ".." components,
			  * 1..VFSD_STATE_PATH_MAX bytes */
	char *orphan;	 /* NULL, or its name in the hidden orphan directory */
	bool has_ino;
	uint64_t ino; /* host inode number, for identity checks */
	bool has_file_handle;
	int32_t fh_type;
	uint32_t fh_size;
	uint8_t *fh_bytes; /* fh_size bytes, 1..VFSD_STATE_HANDLE_MAX */
	uint64_t mnt_id;
	enum vfsd_state_lost lost; /* not NONE: none of the location fields above is set */
};

/* One open file or directory handle. */
struct vfsd_state_handle {
	uint64_t fh;
	uint64_t inode;
	uint32_t flags; /* the guest's open flags */
	bool dir;
	bool has_dir_offset;
	uint64_t dir_offset; /* the d_off cookie the directory stream is at */
};

struct vfsd_state_index;

/* A whole blob in memory. Pure data; strings and arrays owned by the model. */
struct vfsd_state {
	struct vfsd_state_header header;
	bool has_session;
	struct vfsd_state_session session;
	struct vfsd_state_inode *inodes; /* in blob order: parents before children */
	size_t n_inodes, cap_inodes;
	struct vfsd_state_handle *handles;
	size_t n_handles, cap_handles;
	size_t n_streamed; /* inodes handed to read_opts.inode_cb */
	uint8_t *brief;	   /* streamed: type | lost << 4, by index position */
	size_t cap_brief;
	struct vfsd_state_index *inode_index; /* id -> inodes[] (or brief[]) position */
	struct vfsd_state_index *handle_index;
};

/* Reader limits: the blob can make the reader allocate no more than these allow. */
struct vfsd_state_limits {
	size_t max_line;      /* bytes per line, newline included */
	uint64_t max_inodes;  /* inode records */
	uint64_t max_handles; /* handle records */
};

/* A problem found in a blob (or an I/O error: line 0, code not -EBADMSG). */
struct vfsd_state_error {
	int code;      /* -EBADMSG for a bad blob, else the -errno of the failure */
	uint64_t line; /* 1-based line number; 0: not tied to a line */
	char kind[32]; /* the record kind ("header", "inode", ...) or "" */
	char field[64];
	char reason[256];
};

/* Per-kind accounting the reader can fill in (vfsd-state stats). */
enum vfsd_state_kind {
	VFSD_STATE_K_HEADER = 0,
	VFSD_STATE_K_SESSION,
	VFSD_STATE_K_INODE,
	VFSD_STATE_K_HANDLE,
	VFSD_STATE_K_TRAILER,
	VFSD_STATE_K_OTHER, /* unknown kinds skipped as optional */
	VFSD_STATE_K_COUNT,
};

struct vfsd_state_stats {
	uint64_t records[VFSD_STATE_K_COUNT];
	uint64_t bytes[VFSD_STATE_K_COUNT]; /* newlines included */
	uint64_t total_bytes;
	uint64_t lost[3]; /* inode records by enum vfsd_state_lost ([0]: not lost) */
};

/* Read up to @len bytes; return the count, 0 at EOF, or -errno. */
typedef ssize_t (*vfsd_state_read_fn)(void *opaque, void *buf, size_t len);
/* Write all @len bytes; return 0 or -errno. */
typedef int (*vfsd_state_write_fn)(void *opaque, const void *buf, size_t len);
/* One problem found; return non-zero to stop looking for more. */
typedef int (*vfsd_state_problem_fn)(const struct vfsd_state_error *e, void *userdata);

/* How vfsd_state_read_ex() reads. Zeroed fields take the defaults. */
struct vfsd_state_read_opts {
	struct vfsd_state_limits limits;
	vfsd_state_problem_fn report; /* NULL: stop at the first problem */
	void *userdata;
	struct vfsd_state_stats *stats; /* optional */
	/*
	 * Optional streaming, for a consumer that applies records as they come
	 * (the migration load): while the blob has had no problem, the session
	 * record goes to @session_cb and each inode record to @inode_cb as soon
	 * as it is valid, and the model keeps only its id, type and lost state
	 * (s->inodes stays empty; s->n_streamed counts them). A callback's
	 * negative return ends the read with that code. The read can still fail
	 * after callbacks ran (a later record, the trailer, the checksum): the
	 * consumer must be able to throw away what it did.
	 */
	int (*session_cb)(void *sink, const struct vfsd_state_session *ss);
	int (*inode_cb)(void *sink, const struct vfsd_state_inode *in);
	void *sink;
};

/**
 * vfsd_crc32c() - CRC-32C (Castagnoli), as iSCSI and ext4 use it.
 * @crc: 0 to start, or the result of the previous call to continue
 * Returns: the CRC of everything fed so far.
 */
uint32_t vfsd_crc32c(uint32_t crc, const void *buf, size_t len);

/** vfsd_crc32c_portable() - the same without the CPU's crc32 instruction (tests). */
uint32_t vfsd_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/**
 * vfsd_state_limits_default() - fill @l with the VFSD_STATE_DEFAULT_* limits.
 */
void vfsd_state_limits_default(struct vfsd_state_limits *l);

/**
 * vfsd_state_header_init() - a header for the version this code writes, no features.
 * @producer: e.g. "vfsd 0.1.0" (NULL: "vfsd " VFSD_VERSION); cut to fit
 */
void vfsd_state_header_init(struct vfsd_state_header *h, const char *producer);

/**
 * vfsd_state_header_add_feature() - add a feature name to one of the lists
 * (no-op when already there).
 * Returns: 0; -EINVAL for a name that is not [a-z0-9-]{1,63}; -E2BIG when full.
 */
int vfsd_state_header_add_feature(struct vfsd_state_header *h, bool required, const char *name);

/**
 * vfsd_state_header_has_feature() - whether @name is in the required (or optional) list.
 */
bool vfsd_state_header_has_feature(const struct vfsd_state_header *h, bool required,
				   const char *name);

/**
 * vfsd_state_new() - an empty model: header for this version, no session, no records.
 * Returns: 0 or -ENOMEM.
 */
int vfsd_state_new(struct vfsd_state **ret);

/** vfsd_state_free() - free a model and everything it owns; accepts NULL. */
void vfsd_state_free(struct vfsd_state *s);

/** vfsd_state_freep() - cleanup helper for _cleanup_(vfsd_state_freep). */
static inline void vfsd_state_freep(struct vfsd_state **s)
{
	vfsd_state_free(*s);
}

/**
 * vfsd_state_add_inode() - append a deep copy of @in to the model. Checks only
 * what the model needs (id not 0, not a duplicate); vfsd_state_read() is the
 * validator.
 * Returns: 0, -EINVAL (id 0, bad file handle size), -EEXIST, or -ENOMEM.
 */
int vfsd_state_add_inode(struct vfsd_state *s, const struct vfsd_state_inode *in);

/**
 * vfsd_state_add_handle() - append a copy of @h to the model.
 * Returns: 0, -EEXIST (duplicate fh) or -ENOMEM.
 */
int vfsd_state_add_handle(struct vfsd_state *s, const struct vfsd_state_handle *h);

/**
 * vfsd_state_inode_by_id() - find an inode of the model by id.
 * Returns: the inode or NULL (also for every inode of a streamed read).
 */
const struct vfsd_state_inode *vfsd_state_inode_by_id(const struct vfsd_state *s, uint64_t id);

/**
 * vfsd_state_lost_of() - whether inode @id is lost, in a model or a streamed read.
 * Returns: its lost state; VFSD_STATE_LOST_NONE also when there is no such inode.
 */
enum vfsd_state_lost vfsd_state_lost_of(const struct vfsd_state *s, uint64_t id);

/**
 * vfsd_state_handle_by_fh() - find a handle of the model by fh.
 * Returns: the handle or NULL.
 */
const struct vfsd_state_handle *vfsd_state_handle_by_fh(const struct vfsd_state *s, uint64_t fh);

/**
 * vfsd_state_inode_path() - the inode's path relative to the shared directory
 * ("." for the root, "a/b" below it), following parent + name. An inode with
 * no name (file handle only) yields "<handle>" at that point of the path, a
 * lost inode "<lost>".
 * Returns: the length written (excluding the NUL), -ENAMETOOLONG when @size is
 * too small, or -ELOOP / -ENOENT for a model that is not a valid tree.
 */
int vfsd_state_inode_path(const struct vfsd_state *s, const struct vfsd_state_inode *in, char *buf,
			  size_t size);

/** vfsd_state_type_name() - "dir", "reg", ... ("?" for unknown). */
const char *vfsd_state_type_name(enum vfsd_state_type t);

/** vfsd_state_lost_name() - "unlinked", "not-found" ("none" for NONE, "?" for unknown). */
const char *vfsd_state_lost_name(enum vfsd_state_lost l);

/** vfsd_state_mode_name() - "find-paths" or "file-handles". */
const char *vfsd_state_mode_name(enum vfsd_state_mode m);

/* --- writer ---------------------------------------------------------------------------- */

struct vfsd_state_writer;

/**
 * vfsd_state_writer_open() - start a blob on @fd (not closed by the writer):
 * writes the header line. Records are buffered (64 KiB) and written with
 * write_full().
 * @h: the header; major.minor 0.0 means this code's version, anything else
 *     must be a version this code can write (1.0 or 1.1; 1.0 cannot declare
 *     VFSD_STATE_FEATURE_LOST, so it cannot carry lost inodes)
 * Returns: 0, -EINVAL (bad header), -EPROTONOSUPPORT (version), -ENOMEM.
 */
int vfsd_state_writer_open(int fd, const struct vfsd_state_header *h,
			   struct vfsd_state_writer **ret);

/**
 * vfsd_state_writer_open_cb() - like vfsd_state_writer_open(), writing
 * through @fn(@opaque, ...) instead of an fd.
 * Returns: 0 or -errno.
 */
int vfsd_state_writer_open_cb(vfsd_state_write_fn fn, void *opaque,
			      const struct vfsd_state_header *h, struct vfsd_state_writer **ret);

/**
 * vfsd_state_writer_session() - write the session line; must come first and once.
 * Returns: 0, -EINVAL (order, bad values) or the write error.
 */
int vfsd_state_writer_session(struct vfsd_state_writer *w, const struct vfsd_state_session *s);

/**
 * vfsd_state_writer_inode() - write one inode line. The caller writes parents
 * before their children; the writer checks each record on its own (names,
 * handle size, features declared in the header, a lost record has no
 * location and is not the root), not the tree.
 * Returns: 0, -EINVAL or the write error.
 */
int vfsd_state_writer_inode(struct vfsd_state_writer *w, const struct vfsd_state_inode *in);

/**
 * vfsd_state_writer_handle() - write one handle line (after its inode's line).
 * Returns: 0, -EINVAL or the write error.
 */
int vfsd_state_writer_handle(struct vfsd_state_writer *w, const struct vfsd_state_handle *h);

/**
 * vfsd_state_writer_close() - write the trailer (counts, checksum), flush, and
 * free the writer (also on error). Does not close the fd.
 * Returns: 0, or the first error any call on this writer met (-errno).
 */
int vfsd_state_writer_close(struct vfsd_state_writer *w);

/** vfsd_state_writer_free() - abandon a blob without a trailer; accepts NULL. */
void vfsd_state_writer_free(struct vfsd_state_writer *w);

/**
 * vfsd_state_writer_bytes() - bytes handed to the writer so far (buffered or
 * written), for progress reports.
 */
uint64_t vfsd_state_writer_bytes(const struct vfsd_state_writer *w);

/**
 * vfsd_state_write() - stream a whole model to @fd: header, session, inodes
 * and handles in model order, trailer.
 * Returns: 0 or -errno (-EINVAL for a model without a session).
 */
int vfsd_state_write(const struct vfsd_state *s, int fd);

/**
 * vfsd_state_write_cb() - like vfsd_state_write(), through a write callback.
 * Returns: 0 or -errno.
 */
int vfsd_state_write_cb(const struct vfsd_state *s, vfsd_state_write_fn fn, void *opaque);

/* --- reader ---------------------------------------------------------------------------- */

/**
 * vfsd_state_read_ex() - read and validate a whole blob through @fn.
 * @opts: limits, and optionally a problem callback (keep looking after a
 *        problem where that is safe) and stats; NULL for the defaults
 * @ret:  the model, only when the blob is valid (may be NULL to only validate)
 * @err:  the first problem (may be NULL)
 * Nothing is allocated beyond what @opts->limits allow, whatever the blob says.
 * Returns: 0; -EBADMSG for a bad blob; another -errno from @fn or allocation.
 */
int vfsd_state_read_ex(vfsd_state_read_fn fn, void *opaque, const struct vfsd_state_read_opts *opts,
		       struct vfsd_state **ret, struct vfsd_state_error *err);

/**
 * vfsd_state_read() - read and validate a blob from @fd until EOF, stopping at
 * the first problem.
 * @limits: NULL for the defaults
 * Returns: 0, -EBADMSG (see @err) or -errno.
 */
int vfsd_state_read(int fd, const struct vfsd_state_limits *limits, struct vfsd_state **ret,
		    struct vfsd_state_error *err);

/**
 * vfsd_state_read_mem() - read and validate a blob held in memory.
 * Returns: 0, -EBADMSG (see @err) or -errno.
 */
int vfsd_state_read_mem(const void *buf, size_t len, const struct vfsd_state_limits *limits,
			struct vfsd_state **ret, struct vfsd_state_error *err);

/**
 * vfsd_state_error_format() - "line N: kind: field: reason" (empty parts left out).
 * Returns: @buf.
 */
char *vfsd_state_error_format(const struct vfsd_state_error *e, char *buf, size_t size);

/* --- QEMU migration streams ------------------------------------------------------------ */

/* The subsection QEMU stores the blob in: 0x05, name length, name, be32 version. */
#define VFSD_STATE_MIGSTREAM_NAME      "vhost-user-fs-backend"
#define VFSD_STATE_MIGSTREAM_MAX_CHUNK (16u * 1024 * 1024)

/**
 * vfsd_state_migstream_find() - scan @fd (from its current offset, reading
 * sequentially) for the vhost-user-fs-backend subsection and return the
 * offset of its first chunk length. The LAST occurrence is the device's
 * (guest RAM, which the guest controls and which comes first in a precopy
 * stream, may hold the same bytes); it must be plausible, i.e. followed by a
 * chunk of 1..MAX_CHUNK bytes starting with '{', and an earlier plausible
 * copy is never used instead.
 * @ret_offset: on success the chunk offset; on -ENOENT the chunk offset of an
 *              implausible last occurrence, or -1 when there is none
 * @ret_count: how many plausible occurrences there were (may be NULL)
 * Returns: 0, -ENOENT, or -errno.
 */
int vfsd_state_migstream_find(int fd, off_t *ret_offset, unsigned int *ret_count);

/* A read callback state that reassembles chunk payloads from a seekable fd. */
struct vfsd_state_migstream {
	int fd;
	off_t pos;	     /* next byte to read */
	uint32_t left;	     /* bytes left in the current chunk */
	bool done;	     /* the 0-length chunk was seen */
	uint64_t chunks;     /* chunks seen */
	const char *problem; /* why reading stopped early, for messages */
};

/**
 * vfsd_state_migstream_init() - prepare to read the chunks at @offset of @fd.
 */
void vfsd_state_migstream_init(struct vfsd_state_migstream *m, int fd, off_t offset);

/**
 * vfsd_state_migstream_read() - a vfsd_state_read_fn over the chunk payloads
 * (@opaque is a struct vfsd_state_migstream). EOF after the 0-length chunk.
 * Returns: bytes, 0 at the end, -EBADMSG for bad framing (see ->problem), or -errno.
 */
ssize_t vfsd_state_migstream_read(void *opaque, void *buf, size_t len);

#endif
