/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The passthrough filesystem: every FUSE op as syscalls on O_PATH fds held by
 * the inode table, data through the io layer.
 *
 * The process umask is set to 0 in vfsd_passthrough_new(): we do not
 * negotiate FUSE_DONT_MASK, so the guest kernel has already applied the
 * caller's umask to the modes it sends, and applying ours on top would be
 * wrong. umask is process-wide, which is why it is set once there.
 */
#include "vfsd/passthrough.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "vfsd/handle_table.h"
#include "vfsd/inode_table.h"
#include "vfsd/io.h"
#include "vfsd/util.h"

struct vfsd_passthrough {
	struct vfsd_inode_table *inodes;
	struct vfsd_handle_table *handles;
	int proc_self_fd; /* O_PATH on /proc/self/fd: reopen inodes through it */
	double entry_timeout;
	double attr_timeout;
	atomic_bool no_openat2; /* set once openat2 said ENOSYS */
};

/* Open flags the guest may not pass through to a re-open of an existing inode. */
#define REOPEN_STRIP_FLAGS                                                                         \
	(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NOFOLLOW | O_PATH | (O_TMPFILE & ~O_DIRECTORY))

/* ---- helpers ---------------------------------------------------------- */

static struct vfsd_passthrough *PT(void *fs)
{
	return fs;
}

/* The dispatcher validated names already; check again, cheaply. */
static int check_name(const char *name)
{
	size_t len;

	if (!name)
		return -EINVAL;
	len = strnlen(name, VFSD_NAME_MAX + 1);
	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	if (len > VFSD_NAME_MAX)
		return -ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	return 0;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

static void split_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	if (!(t > 0)) { /* also catches NaN */
		*sec = 0;
		*nsec = 0;
		return;
	}
	if (t >= 1e18) {
		*sec = (uint64_t)1e18;
		*nsec = 0;
		return;
	}
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
	if (*nsec >= 1000000000u)
		*nsec = 999999999u;
}

static int stat_inode(const struct vfsd_inode *i, struct stat *st)
{
	return RET_NERRNO(fstatat(i->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

static void fill_entry(struct vfsd_passthrough *fs, struct fuse_entry_out *e, uint64_t nodeid,
		       const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->nodeid = nodeid;
	e->generation = 0;
	split_timeout(fs->entry_timeout, &e->entry_valid, &e->entry_valid_nsec);
	split_timeout(fs->attr_timeout, &e->attr_valid, &e->attr_valid_nsec);
	fill_attr(&e->attr, st);
}

static void fill_attr_out(struct vfsd_passthrough *fs, struct fuse_attr_out *o,
			  const struct stat *st)
{
	memset(o, 0, sizeof(*o));
	split_timeout(fs->attr_timeout, &o->attr_valid, &o->attr_valid_nsec);
	fill_attr(&o->attr, st);
}

/* Open one name below @dirfd as O_PATH without following anything out of it. */
static int open_child(struct vfsd_passthrough *fs, int dirfd, const char *name)
{
	if (!atomic_load_explicit(&fs->no_openat2, memory_order_relaxed)) {
		struct open_how how = {
			.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store_explicit(&fs->no_openat2, true, memory_order_relaxed);
	}
	return RET_NERRNO(openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
}

/* Re-open an inode's O_PATH fd for I/O through /proc/self/fd. */
static int reopen_inode(struct vfsd_passthrough *fs, const struct vfsd_inode *i, int flags)
{
	char name[16];

	snprintf(name, sizeof(name), "%d", i->fd);
	return RET_NERRNO(
	    openat(fs->proc_self_fd, name, (flags & ~REOPEN_STRIP_FLAGS) | O_CLOEXEC));
}

static struct vfsd_inode *get_inode(struct vfsd_passthrough *fs, uint64_t nodeid)
{
	return vfsd_inode_table_get(fs->inodes, nodeid);
}

/*
 * The handle named by @fh, checked to belong to @nodeid (hard links share a
 * node id, so this never rejects a legitimate request).
 */
static struct vfsd_handle *get_handle(struct vfsd_passthrough *fs, uint64_t nodeid, uint64_t fh)
{
	struct vfsd_handle *h = vfsd_handle_table_get(fs->handles, fh);

	if (h && h->inode->nodeid != nodeid) {
		vfsd_handle_unref(h);
		return NULL;
	}
	return h;
}

/*
 * Credentials for inode-creating syscalls. setfsuid/setfsgid are per thread
 * in Linux (glibc does not broadcast them the way it does setresuid), never
 * fail loudly, and keep the permitted capabilities, so switching back to 0
 * restores the effective file capabilities.
 */
struct creds_guard {
	bool active;
	uint32_t old_uid, old_gid;
};

static int creds_switch(uint32_t uid, uint32_t gid, struct creds_guard *g)
{
	long prev_gid, prev_uid;

	g->active = false;
	prev_gid = syscall(SYS_setfsgid, (gid_t)gid);
	if ((uint32_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
		syscall(SYS_setfsgid, (gid_t)prev_gid);
		return -EPERM;
	}
	prev_uid = syscall(SYS_setfsuid, (uid_t)uid);
	if ((uint32_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) {
		syscall(SYS_setfsuid, (uid_t)prev_uid);
		syscall(SYS_setfsgid, (gid_t)prev_gid);
		return -EPERM;
	}
	g->old_uid = (uint32_t)prev_uid;
	g->old_gid = (uint32_t)prev_gid;
	g->active = true;
	return 0;
}

static void creds_restorep(struct creds_guard *g)
{
	if (!g->active)
		return;
	int saved = errno;
	/* uid first: with fsuid back at 0 the gid switch cannot be refused. */
	syscall(SYS_setfsuid, (uid_t)g->old_uid);
	syscall(SYS_setfsgid, (gid_t)g->old_gid);
	g->active = false;
	errno = saved;
}
#define _cleanup_creds_ _cleanup_(creds_restorep)

/*
 * LOOKUP proper: open @name below @parent, stat it, and account one guest
 * lookup in the table.
 */
static int do_lookup(struct vfsd_passthrough *fs, struct vfsd_inode *parent, const char *name,
		     struct fuse_entry_out *ret)
{
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int r;

	r = check_name(name);
	if (r < 0)
		return r;
	if (parent->type != S_IFDIR)
		return -ENOTDIR;
	fd = open_child(fs, parent->fd, name);
	if (fd < 0)
		return fd;
	r = RET_NERRNO(fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
	if (r < 0)
		return r;
	r = vfsd_inode_table_lookup_or_insert(fs->inodes, TAKE_FD(fd), &st, &i);
	if (r < 0)
		return r;
	fill_entry(fs, ret, i->nodeid, &st);
	return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

int vfsd_passthrough_new(const struct vfsd_passthrough_config *cfg, struct vfsd_passthrough **ret)
{
	_cleanup_close_ int root_fd = -EBADF;
	struct vfsd_passthrough *fs;
	struct stat st;
	int r;

	if (!cfg || !cfg->shared_dir)
		return -EINVAL;
	root_fd = RET_NERRNO(open(cfg->shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (root_fd < 0)
		return root_fd;
	r = RET_NERRNO(fstat(root_fd, &st));
	if (r < 0)
		return r;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->proc_self_fd = -EBADF;
	fs->entry_timeout = cfg->entry_timeout;
	fs->attr_timeout = cfg->attr_timeout;
	atomic_init(&fs->no_openat2, false);

	r = vfsd_inode_table_new(0, &fs->inodes);
	if (r < 0)
		goto fail;
	r = vfsd_handle_table_new(0, &fs->handles);
	if (r < 0)
		goto fail;
	fs->proc_self_fd = RET_NERRNO(open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (fs->proc_self_fd < 0) {
		r = fs->proc_self_fd;
		goto fail;
	}
	r = vfsd_inode_table_set_root(fs->inodes, root_fd, &st);
	if (r < 0)
		goto fail;
	TAKE_FD(root_fd);

	umask(0); /* see the file comment */
	*ret = fs;
	return 0;
fail:
	vfsd_passthrough_free(fs);
	return r;
}

void vfsd_passthrough_free(struct vfsd_passthrough *fs)
{
	if (!fs)
		return;
	/* Handles first: they hold inode references. */
	vfsd_handle_table_free(fs->handles);
	vfsd_inode_table_free(fs->inodes);
	safe_close(fs->proc_self_fd);
	free(fs);
}

void vfsd_passthrough_counts(struct vfsd_passthrough *fs, size_t *ret_inodes, size_t *ret_handles)
{
	if (ret_inodes)
		*ret_inodes = vfsd_inode_table_count(fs->inodes);
	if (ret_handles)
		*ret_handles = vfsd_handle_table_count(fs->handles);
}

static void pt_reset(void *fsp)
{
	struct vfsd_passthrough *fs = PT(fsp);

	vfsd_handle_table_reset(fs->handles);
	vfsd_inode_table_reset(fs->inodes);
}

/* ---- metadata --------------------------------------------------------- */

static int pt_lookup(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);

	if (!p)
		return -ENOENT;
	return do_lookup(fs, p, name, ret);
}

static void pt_forget(void *fsp, uint64_t nodeid, uint64_t nlookup)
{
	vfsd_inode_table_forget(PT(fsp)->inodes, nodeid, nlookup);
}

static int pt_getattr(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_getattr_in *in, struct fuse_attr_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	struct stat st;
	int r;

	if (!i)
		return -ENOENT;
	if (in && (in->getattr_flags & FUSE_GETATTR_FH)) {
		_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h =
		    get_handle(fs, nodeid, in->fh);
		if (h)
			r = RET_NERRNO(fstat(h->fd, &st));
		else
			r = stat_inode(i, &st);
	} else {
		r = stat_inode(i, &st);
	}
	if (r < 0)
		return r;
	fill_attr_out(fs, ret, &st);
	return 0;
}

static int truncate_inode(struct vfsd_passthrough *fs, struct vfsd_inode *i, struct vfsd_handle *h,
			  uint64_t size)
{
	_cleanup_close_ int fd = -EBADF;

	if (size > INT64_MAX)
		return -EFBIG;
	if (h)
		return RET_NERRNO(ftruncate(h->fd, (off_t)size));
	if (i->type == S_IFDIR)
		return -EISDIR;
	if (i->type != S_IFREG)
		return -EINVAL;
	fd = reopen_inode(fs, i, O_WRONLY);
	if (fd < 0)
		return fd;
	return RET_NERRNO(ftruncate(fd, (off_t)size));
}

static int pt_setattr(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_setattr_in *in, struct fuse_attr_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = NULL;
	uint32_t valid = in->valid;
	char procname[16];
	struct stat st;
	int r;

	if (!i)
		return -ENOENT;
	snprintf(procname, sizeof(procname), "%d", i->fd);
	if (valid & FATTR_FH) {
		h = get_handle(fs, nodeid, in->fh);
		if (!h)
			return -EBADF;
	}

	if (valid & FATTR_MODE) {
		if (h)
			r = RET_NERRNO(fchmod(h->fd, in->mode));
		else
			/* /proc/self/fd/N reaches the inode itself, not a path. */
			r = RET_NERRNO(fchmodat(fs->proc_self_fd, procname, in->mode, 0));
		if (r < 0)
			return r;
	}
	if (valid & (FATTR_UID | FATTR_GID)) {
		uid_t uid = (valid & FATTR_UID) ? in->uid : (uid_t)-1;
		gid_t gid = (valid & FATTR_GID) ? in->gid : (gid_t)-1;
		r = RET_NERRNO(fchownat(i->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
		if (r < 0)
			return r;
	}
	if (valid & FATTR_SIZE) {
		r = truncate_inode(fs, i, h, in->size);
		if (r < 0)
			return r;
	}
	if (valid & (FATTR_ATIME | FATTR_MTIME)) {
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_OMIT },
			{ .tv_nsec = UTIME_OMIT },
		};
		if (valid & FATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (valid & FATTR_ATIME) {
			if (in->atimensec >= 1000000000u || in->atime > INT64_MAX)
				return -EINVAL;
			ts[0].tv_sec = (time_t)in->atime;
			ts[0].tv_nsec = in->atimensec;
		}
		if (valid & FATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (valid & FATTR_MTIME) {
			if (in->mtimensec >= 1000000000u || in->mtime > INT64_MAX)
				return -EINVAL;
			ts[1].tv_sec = (time_t)in->mtime;
			ts[1].tv_nsec = in->mtimensec;
		}
		if (h)
			r = RET_NERRNO(futimens(h->fd, ts));
		else
			r = RET_NERRNO(utimensat(fs->proc_self_fd, procname, ts, 0));
		if (r < 0)
			return r;
	}

	r = h ? RET_NERRNO(fstat(h->fd, &st)) : stat_inode(i, &st);
	if (r < 0)
		return r;
	fill_attr_out(fs, ret, &st);
	return 0;
}

static int pt_mkdir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    const struct fuse_mkdir_in *in, struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	int r;

	if (!p)
		return -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	{
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(ctx->uid, ctx->gid, &g);
		if (r < 0)
			return r;
		r = RET_NERRNO(mkdirat(p->fd, name, in->mode & 07777));
	}
	if (r < 0)
		return r;
	return do_lookup(fs, p, name, ret);
}

static int pt_symlink(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		      const char *target, struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	size_t len;
	int r;

	if (!p)
		return -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	/* The dispatcher checked the target too; again, cheaply. */
	len = target ? strnlen(target, VFSD_PATH_MAX) : 0;
	if (len == 0)
		return -EINVAL;
	if (len >= VFSD_PATH_MAX)
		return -ENAMETOOLONG;
	{
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(ctx->uid, ctx->gid, &g);
		if (r < 0)
			return r;
		r = RET_NERRNO(symlinkat(target, p->fd, name));
	}
	if (r < 0)
		return r;
	return do_lookup(fs, p, name, ret);
}

static int pt_mknod(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    const struct fuse_mknod_in *in, struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	mode_t type = in->mode & S_IFMT;
	dev_t rdev = 0;
	int r;

	if (!p)
		return -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	switch (type) {
	case S_IFCHR:
	case S_IFBLK:
		/*
		 * new_encode_dev() format; for the 12-bit major, 20-bit minor
		 * it can hold, that is also glibc's dev_t encoding.
		 */
		rdev = (dev_t)in->rdev;
		break;
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		return -EINVAL; /* directories, symlinks and type 0 have their own ops */
	}
	{
		/* No CAP_MKNOD under another fsuid: device nodes then fail with EPERM. */
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(ctx->uid, ctx->gid, &g);
		if (r < 0)
			return r;
		r = RET_NERRNO(mknodat(p->fd, name, type | (in->mode & 07777), rdev));
	}
	if (r < 0)
		return r;
	return do_lookup(fs, p, name, ret);
}

/*
 * LINK: a new name for an inode we hold. The reply is for that inode (not a
 * fresh lookup of the new name, which may have been replaced meanwhile):
 * the same node id, one more guest lookup. Like UNLINK and RENAME it runs
 * with our own credentials: no inode is created.
 */
static int pt_link(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t oldnodeid, uint64_t newparent,
		   const char *newname, struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL, *p = NULL, *li = NULL;
	char procname[16];
	struct stat st;
	int fd, r;

	r = check_name(newname);
	if (r < 0)
		return r;
	i = get_inode(fs, oldnodeid);
	p = get_inode(fs, newparent);
	if (!i || !p)
		return -ENOENT;
	if (i->type == S_IFDIR)
		return -EPERM;
	if (p->type != S_IFDIR)
		return -ENOTDIR;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, ENOENT (or EPERM). */
	r = RET_NERRNO(linkat(i->fd, "", p->fd, newname, AT_EMPTY_PATH));
	if (r == -ENOENT || r == -EPERM) {
		/* /proc/self/fd/N of an O_PATH fd reaches the inode itself, symlinks too. */
		snprintf(procname, sizeof(procname), "%d", i->fd);
		r = RET_NERRNO(
		    linkat(fs->proc_self_fd, procname, p->fd, newname, AT_SYMLINK_FOLLOW));
	}
	if (r < 0)
		return r;

	r = stat_inode(i, &st);
	if (r < 0)
		return r;
	fd = RET_NERRNO(fcntl(i->fd, F_DUPFD_CLOEXEC, 3));
	if (fd < 0)
		return fd;
	r = vfsd_inode_table_lookup_or_insert(fs->inodes, fd, &st, &li); /* takes fd */
	if (r < 0)
		return r;
	fill_entry(fs, ret, li->nodeid, &st);
	return 0;
}

static int pt_unlink_common(void *fsp, uint64_t parent, const char *name, int flags)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	int r;

	if (!p)
		return -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	return RET_NERRNO(unlinkat(p->fd, name, flags));
}

static int pt_unlink(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	return pt_unlink_common(fsp, parent, name, 0);
}

static int pt_rmdir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	return pt_unlink_common(fsp, parent, name, AT_REMOVEDIR);
}

static int pt_rename(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname, uint32_t flags)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL, *np = NULL;
	int r;

	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	r = check_name(name);
	if (r < 0)
		return r;
	r = check_name(newname);
	if (r < 0)
		return r;
	p = get_inode(fs, parent);
	np = get_inode(fs, newparent);
	if (!p || !np)
		return -ENOENT;
	return RET_NERRNO(renameat2(p->fd, name, np->fd, newname, flags));
}

static int pt_readlink(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, char *buf,
		       size_t size)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	ssize_t n;

	if (!i)
		return -ENOENT;
	/* readlinkat(fd, "") on anything else says ENOENT; readlink(2) says EINVAL. */
	if (i->type != S_IFLNK)
		return -EINVAL;
	if (size == 0)
		return -ENAMETOOLONG;
	n = readlinkat(i->fd, "", buf, MIN(size, (size_t)INT32_MAX));
	if (n < 0)
		return -errno;
	if ((size_t)n >= size)
		return -ENAMETOOLONG; /* may be truncated */
	return (int)n;
}

static int pt_statfs(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		     struct fuse_kstatfs *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	struct statfs sf;
	int r;

	if (!i)
		return -ENOENT;
	r = RET_NERRNO(fstatfs(i->fd, &sf));
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->blocks = sf.f_blocks;
	ret->bfree = sf.f_bfree;
	ret->bavail = sf.f_bavail;
	ret->files = sf.f_files;
	ret->ffree = sf.f_ffree;
	ret->bsize = (uint32_t)sf.f_bsize;
	ret->namelen = (uint32_t)sf.f_namelen;
	ret->frsize = (uint32_t)sf.f_frsize;
	return 0;
}

/* ---- files ------------------------------------------------------------ */

static int pt_open(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		   struct fuse_open_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	_cleanup_close_ int fd = -EBADF;
	uint64_t fh;
	int r;

	if (!i)
		return -ENOENT;
	/*
	 * Only regular files and directories: opening a FIFO or a device node
	 * could block a worker forever or have side effects on the host.
	 */
	if (i->type != S_IFREG && i->type != S_IFDIR)
		return -ENXIO;
	fd = reopen_inode(fs, i, (int)flags);
	if (fd < 0)
		return fd;
	r = vfsd_handle_table_add(fs->handles, i, fd, flags, i->type == S_IFDIR, &fh);
	if (r < 0)
		return r;
	TAKE_FD(fd);
	memset(ret, 0, sizeof(*ret));
	ret->fh = fh;
	return 0;
}

static int pt_create(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     const struct fuse_create_in *in, struct fuse_entry_out *ret_entry,
		     struct fuse_open_out *ret_open)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct fuse_entry_out e;
	int oflags = ((int)in->flags & ~REOPEN_STRIP_FLAGS) | (int)(in->flags & O_EXCL);
	struct stat st;
	uint64_t fh;
	int r;

	if (!p)
		return -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	{
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(ctx->uid, ctx->gid, &g);
		if (r < 0)
			return r;
		/*
		 * O_NONBLOCK: if the name exists and is a FIFO (no O_EXCL), the
		 * open must not block; we refuse anything non-regular below.
		 */
		fd = RET_NERRNO(openat(p->fd, name,
				       oflags | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
				       in->mode & 07777));
	}
	if (fd < 0)
		return fd;
	r = RET_NERRNO(fstat(fd, &st));
	if (r < 0)
		return r;
	if (!S_ISREG(st.st_mode))
		return -ENXIO;
	if (!(oflags & O_NONBLOCK)) {
		r = RET_NERRNO(fcntl(fd, F_SETFL, oflags & ~O_NONBLOCK & ~O_ACCMODE));
		if (r < 0)
			return r;
	}

	/*
	 * Make the inode from the file we opened, not by looking the name up
	 * again: the name may have been replaced in between.
	 */
	{
		char procname[16];
		int pfd;

		snprintf(procname, sizeof(procname), "%d", fd);
		pfd = RET_NERRNO(openat(fs->proc_self_fd, procname, O_PATH | O_CLOEXEC));
		if (pfd < 0)
			return pfd;
		r = vfsd_inode_table_lookup_or_insert(fs->inodes, pfd, &st, &i);
		if (r < 0)
			return r;
	}
	fill_entry(fs, &e, i->nodeid, &st);
	r = vfsd_handle_table_add(fs->handles, i, fd, in->flags, false, &fh);
	if (r < 0) {
		vfsd_inode_table_forget(fs->inodes, e.nodeid, 1);
		return r;
	}
	TAKE_FD(fd);
	*ret_entry = e;
	memset(ret_open, 0, sizeof(*ret_open));
	ret_open->fh = fh;
	return 0;
}

static int pt_read(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		   const struct fuse_read_in *in, struct vfsd_writer *w)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);
	struct iovec iov[VFSD_CHAIN_MAX_IOV];
	unsigned int cnt = 0;
	size_t size = MIN((size_t)in->size, (size_t)VFSD_MAX_WRITE);
	ssize_t n;
	int r;

	if (!h)
		return -EBADF;
	if (in->offset > INT64_MAX)
		return -EINVAL;
	r = vfsd_writer_iov(w, size, iov, ARRAY_SIZE(iov), &cnt);
	if (r < 0)
		return r;
	if (cnt == 0)
		return 0;
	n = vfsd_io_preadv(ctx->io, h->fd, iov, cnt, (off_t)in->offset);
	if (n < 0)
		return (int)n;
	r = vfsd_writer_advance(w, (size_t)n);
	if (r < 0)
		return r;
	return (int)n;
}

static int pt_write(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    const struct fuse_write_in *in, struct vfsd_reader *r)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);
	struct iovec iov[VFSD_CHAIN_MAX_IOV];
	unsigned int cnt = 0;
	ssize_t n;
	int ret;

	if (!h)
		return -EBADF;
	if (in->offset > INT64_MAX || in->size > VFSD_MAX_WRITE)
		return -EINVAL;
	/* FUSE_WRITE_KILL_SUIDGID: the kernel clears suid/sgid itself for root writes; ignored. */
	ret = vfsd_reader_iov(r, in->size, iov, ARRAY_SIZE(iov), &cnt);
	if (ret < 0)
		return ret;
	if (cnt == 0)
		return 0;
	n = vfsd_io_pwritev(ctx->io, h->fd, iov, cnt, (off_t)in->offset, 0);
	return (int)n;
}

static int pt_flush(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    const struct fuse_flush_in *in)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);
	int fd;

	if (!h)
		return -EBADF;
	/*
	 * The guest closed one of its file descriptors. Close a duplicate of
	 * ours so the host filesystem sees a close (NFS flushes on close,
	 * POSIX locks drop), while the handle stays open until RELEASE.
	 */
	fd = RET_NERRNO(fcntl(h->fd, F_DUPFD_CLOEXEC, 0));
	if (fd < 0)
		return fd;
	return RET_NERRNO(close(fd));
}

static int pt_release(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_release_in *in)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);

	if (!h)
		return -EBADF;
	return vfsd_handle_table_remove(fs->handles, in->fh);
}

static int pt_fsync(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    const struct fuse_fsync_in *in)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);

	if (!h)
		return -EBADF;
	return vfsd_io_fsync(ctx->io, h->fd, in->fsync_flags & FUSE_FSYNC_FDATASYNC);
}

/* ---- directories ------------------------------------------------------ */

static int pt_opendir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, uint32_t flags,
		      struct fuse_open_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	_cleanup_close_ int fd = -EBADF;
	uint64_t fh;
	int r;

	if (!i)
		return -ENOENT;
	if (i->type != S_IFDIR)
		return -ENOTDIR;
	fd = reopen_inode(fs, i, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	r = vfsd_handle_table_add(fs->handles, i, fd, flags, true, &fh);
	if (r < 0)
		return r;
	TAKE_FD(fd);
	memset(ret, 0, sizeof(*ret));
	ret->fh = fh;
	return 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* A getdents64 buffer: enough for dozens of entries; refilled as needed. */
#define GETDENTS_BUF 32768

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/*
 * Add one entry. Returns 1 when it was added, 0 when it was skipped (it
 * vanished before we could look it up), -ENOSPC when it does not fit, or
 * another -errno.
 */
static int readdir_add(struct vfsd_passthrough *fs, struct vfsd_inode *dir, bool plus,
		       struct vfsd_dirbuf *buf, const struct linux_dirent64 *d)
{
	size_t namelen = strlen(d->d_name);
	struct fuse_entry_out e;
	int r;

	if (!plus)
		return vfsd_dirbuf_add(buf, d->d_name, namelen, d->d_ino, d->d_type,
				       (uint64_t)d->d_off) < 0
			   ? -ENOSPC
			   : 1;

	if (!vfsd_dirbuf_fits_plus(buf, namelen))
		return -ENOSPC;
	if (is_dot_or_dotdot(d->d_name)) {
		/* No lookup for these: node id 0 tells the guest not to count one. */
		memset(&e, 0, sizeof(e));
		e.attr.ino = d->d_ino;
		e.attr.mode = DTTOIF(d->d_type);
	} else {
		r = do_lookup(fs, dir, d->d_name, &e);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
	}
	r = vfsd_dirbuf_add_plus(buf, d->d_name, namelen, &e, d->d_type, (uint64_t)d->d_off);
	if (r < 0) {
		if (e.nodeid)
			vfsd_inode_table_forget(fs->inodes, e.nodeid, 1);
		return -ENOSPC;
	}
	return 1;
}

static int pt_readdir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		      const struct fuse_read_in *in, bool plus, struct vfsd_dirbuf *buf)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);
	_cleanup_free_ char *dents = NULL;
	uint64_t pos = in->offset;
	bool full = false;
	int r = 0;

	if (!h)
		return -EBADF;
	if (!h->is_dir)
		return -ENOTDIR;
	dents = malloc(GETDENTS_BUF);
	if (!dents)
		return -ENOMEM;

	pthread_mutex_lock(&h->dir_lock);
	/* The guest continues from the cookie (a host d_off) of the last entry it got. */
	if (!h->dir_pos_valid || h->dir_pos != in->offset) {
		h->dir_pos_valid = false;
		if (lseek(h->fd, (off_t)in->offset, SEEK_SET) < 0) {
			r = -errno;
			goto out;
		}
		h->dir_pos = in->offset;
		h->dir_pos_valid = true;
	}

	while (!full) {
		long n = syscall(SYS_getdents64, h->fd, dents, GETDENTS_BUF);
		if (n < 0) {
			/* Entries already in the buffer go out; the error comes next time. */
			r = buf->len > 0 ? 0 : -errno;
			break;
		}
		if (n == 0)
			break; /* end of directory */
		for (long off = 0; off < n;) {
			const struct linux_dirent64 *d = (const void *)(dents + off);
			int a = readdir_add(fs, h->inode, plus, buf, d);
			if (a == -ENOSPC || (a < 0 && buf->len > 0)) {
				/* Stop here; the next READDIR starts at this entry. */
				full = true;
				break;
			}
			if (a < 0) {
				r = a;
				full = true;
				break;
			}
			pos = (uint64_t)d->d_off;
			off += d->d_reclen;
		}
	}

	/* Leave the fd where the guest will continue, or mark it unknown. */
	if (lseek(h->fd, (off_t)pos, SEEK_SET) < 0) {
		h->dir_pos_valid = false;
	} else {
		h->dir_pos = pos;
		h->dir_pos_valid = true;
	}
out:
	pthread_mutex_unlock(&h->dir_lock);
	return r;
}

static int pt_releasedir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
			 const struct fuse_release_in *in)
{
	return pt_release(fsp, ctx, nodeid, in);
}

const struct vfsd_fs_ops vfsd_passthrough_ops = {
	.reset = pt_reset,
	.destroy = pt_reset,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.statfs = pt_statfs,
	.readlink = pt_readlink,
	.symlink = pt_symlink,
	.mknod = pt_mknod,
	.link = pt_link,
};
