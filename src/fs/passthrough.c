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
#include <liburing.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/random.h>
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

#include "passthrough-internal.h"
#include "vfsd/handle_table.h"
#include "vfsd/inode_table.h"
#include "vfsd/io.h"
#include "vfsd/util.h"

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

static bool same_inode(const struct vfsd_inode *i, const struct stat *st)
{
	return (uint64_t)st->st_dev == i->dev && (uint64_t)st->st_ino == i->ino;
}

/* The open(2) flags for opening an inode by its name (see pt_inode_open_loc()). */
static int loc_open_flags(int flags)
{
	/*
	 * One name in a directory we hold: O_NOFOLLOW is all the confinement it
	 * needs. O_NONBLOCK until the identity is checked: a FIFO put in our
	 * file's place on the host must not block this worker.
	 */
	if (flags & O_PATH)
		return O_PATH | O_NOFOLLOW | O_CLOEXEC;
	return (flags & ~REOPEN_STRIP_FLAGS) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
}

/*
 * The checks after an open by name: @fd (or -errno) must be @i itself; the
 * O_NONBLOCK the open used is dropped unless @nonblock_gone (io_uring's
 * inline open drops it itself). Takes @fd.
 */
static int loc_open_check(const struct vfsd_inode *i, int flags, int fd, bool nonblock_gone)
{
	_cleanup_close_ int f = fd;
	struct stat st;
	int r;

	if (f < 0)
		return f == -ELOOP ? -ESTALE : f; /* a symlink where our file was */
	r = RET_NERRNO(fstat(f, &st));
	if (r < 0)
		return r;
	if (!same_inode(i, &st))
		return -ESTALE;
	/* io_uring would answer -EAGAIN instead of waiting on an O_NONBLOCK file. */
	if (!nonblock_gone && !(flags & (O_PATH | O_NONBLOCK))) {
		r = RET_NERRNO(
		    fcntl(f, F_SETFL, (flags & ~REOPEN_STRIP_FLAGS) & ~O_NONBLOCK & ~O_ACCMODE));
		if (r < 0)
			return r;
	}
	return TAKE_FD(f);
}

int pt_inode_open_loc(struct vfsd_inode_table *t, const struct vfsd_inode *i, int flags)
{
	struct vfsd_inode_where w;
	int fd, r;

	if (i->invalid)
		return -EIO;
	r = vfsd_inode_table_where(t, i, &w);
	if (r < 0)
		return r;
	fd = RET_NERRNO(openat(w.dirfd, w.name, loc_open_flags(flags)));
	vfsd_inode_where_done(&w);
	return loc_open_check(i, flags, fd, false);
}

int pt_inode_open_batch(struct vfsd_inode_table *t, struct io_uring *ring,
			const struct vfsd_inode *const *inodes, const int *flags, size_t n,
			int *fds)
{
	struct vfsd_inode_where *w = NULL;
	struct open_how *how = NULL;
	size_t queued = 0, reaped = 0;
	int ret = 0, sub = 0;

	for (size_t k = 0; k < n; k++)
		fds[k] = -ECANCELED; /* not tried: the one-by-one path below */
	if (ring) {
		w = calloc(n, sizeof(*w));
		how = calloc(n, sizeof(*how));
	}
	for (size_t k = 0; w && how && k < n; k++) {
		struct io_uring_sqe *sqe;

		w[k].dirfd = -1;
		if (inodes[k]->invalid || (flags[k] & O_PATH) ||
		    vfsd_inode_table_where(t, inodes[k], &w[k]) < 0)
			continue; /* the one-by-one path gives the error */
		sqe = io_uring_get_sqe(ring);
		if (!sqe) { /* the caller's batch fits the ring; if not, one by one */
			vfsd_inode_where_done(&w[k]);
			w[k].dirfd = -1;
			continue;
		}
		/*
		 * Without O_NONBLOCK: io_uring's inline open adds it itself and
		 * drops it from the file afterwards, so a FIFO in our file's place
		 * cannot block; RESOLVE_CACHED hands back (-EAGAIN) what would
		 * have to wait for the disk, for the one-by-one path.
		 */
		how[k].flags = (uint64_t)(loc_open_flags(flags[k]) & ~O_NONBLOCK);
		how[k].resolve = RESOLVE_CACHED;
		io_uring_prep_openat2(sqe, w[k].dirfd, w[k].name, &how[k]);
		io_uring_sqe_set_data64(sqe, k);
		queued++;
	}
	if (queued) {
		do
			sub = io_uring_submit(ring);
		while (sub == -EINTR);
		if (sub < 0)
			sub = 0;
		/* What the kernel did not take stays in the ring: the caller must drop it. */
		if ((size_t)sub < queued)
			ret = -EIO;
	}
	while (reaped < (size_t)sub) {
		struct io_uring_cqe *cqe;
		uint64_t k;
		int r = io_uring_wait_cqe(ring, &cqe);

		if (r == -EINTR)
			continue;
		if (r < 0) {
			ret = r; /* the rest are lost to us: the caller drops the ring */
			break;
		}
		k = io_uring_cqe_get_data64(cqe);
		if (k < n)
			/*
			 * A failed open is retried one by one, which gives the
			 * error the guest would get: the ring may have failed for
			 * its own reasons (-EAGAIN: not cached; -EINVAL: a kernel
			 * before 5.12 without RESOLVE_CACHED, or without openat2).
			 */
			fds[k] = cqe->res >= 0 ? loc_open_check(inodes[k], flags[k], cqe->res, true)
					       : -ECANCELED;
		io_uring_cqe_seen(ring, cqe);
		reaped++;
	}
	for (size_t k = 0; w && k < n; k++)
		if (w[k].dirfd >= 0)
			vfsd_inode_where_done(&w[k]);
	free(w);
	free(how);
	for (size_t k = 0; k < n; k++)
		if (fds[k] == -ECANCELED)
			fds[k] = pt_inode_open_loc(t, inodes[k], flags[k]);
	return ret;
}

int pt_inode_fd(struct vfsd_passthrough *fs, struct vfsd_inode *i, int *tmp)
{
	int fd = i->fd;

	if (fd >= 0)
		return fd;
	fd = pt_inode_open_loc(fs->inodes, i, O_PATH);
	if (fd < 0)
		return fd;
	if (vfsd_inode_fd_wanted(i->type))
		return vfsd_inode_install_fd(i, fd);
	*tmp = fd;
	return fd;
}

/* The inode's attributes, by its fd or (fd-less, over the budget) by its location. */
static int stat_inode(struct vfsd_passthrough *fs, struct vfsd_inode *i, struct stat *st)
{
	_cleanup_close_ int tmp = -EBADF;
	struct vfsd_inode_where w;
	int fd = i->fd, r;

	if (fd < 0 && !vfsd_inode_fd_wanted(i->type) && !i->invalid &&
	    vfsd_inode_table_where(fs->inodes, i, &w) == 0) {
		r = RET_NERRNO(fstatat(w.dirfd, w.name, st, AT_SYMLINK_NOFOLLOW));
		vfsd_inode_where_done(&w);
		if (r < 0)
			return r == -ENOENT ? -ESTALE : r;
		return same_inode(i, st) ? 0 : -ESTALE;
	}
	fd = pt_inode_fd(fs, i, &tmp);
	if (fd < 0)
		return fd;
	return RET_NERRNO(fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
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
int pt_open_child(struct vfsd_passthrough *fs, int dirfd, const char *name)
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

int pt_reopen_fd(struct vfsd_passthrough *fs, int fd, int flags)
{
	char name[16];

	if (fd < 0)
		return -EIO;
	snprintf(name, sizeof(name), "%d", fd);
	return RET_NERRNO(
	    openat(fs->proc_self_fd, name, (flags & ~REOPEN_STRIP_FLAGS) | O_CLOEXEC));
}

/*
 * Re-open an inode for I/O: its O_PATH fd through /proc/self/fd, or an
 * fd-less inode straight by its location (one open, no O_PATH fd first).
 */
static int reopen_inode(struct vfsd_passthrough *fs, const struct vfsd_inode *i, int flags)
{
	int fd = i->fd;

	if (fd >= 0)
		return pt_reopen_fd(fs, fd, flags);
	/* A FIFO or device would block or act on open: only O_PATH-checked types get here. */
	return pt_inode_open_loc(fs->inodes, i, flags);
}

/* The reserved name: .vfsd-orphans in the root directory only. */
static bool is_reserved(const struct vfsd_inode *parent, const char *name)
{
	return parent->nodeid == FUSE_ROOT_ID && strcmp(name, VFSD_ORPHANS_DIR) == 0;
}

static bool is_orphan(const struct vfsd_inode *i)
{
	return atomic_load_explicit(&i->orphaned, memory_order_acquire);
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
 * A new handle pins its inode in the table (so a handle's inode is always
 * there to collect, even after the guest's FORGET). @fd is taken on success.
 */
static int add_handle(struct vfsd_passthrough *fs, struct vfsd_inode *i, int fd, uint32_t flags,
		      bool is_dir, uint64_t *ret_fh)
{
	int r = vfsd_inode_table_pin(fs->inodes, i);

	if (r < 0)
		return r;
	r = vfsd_handle_table_add(fs->handles, i, fd, flags, is_dir, ret_fh);
	if (r < 0)
		vfsd_inode_table_unpin(fs->inodes, i);
	return r;
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

static int creds_switch(const struct vfsd_passthrough *fs, uint32_t uid, uint32_t gid,
			struct creds_guard *g)
{
	long prev_gid, prev_uid;

	g->active = false;
	/* The caller is who we are already (root in a root guest, most often): 6 syscalls saved. */
	if (uid == fs->own_fsuid && gid == fs->own_fsgid)
		return 0;
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
	bool by_name;
	int r;

	r = check_name(name);
	if (r < 0)
		return r;
	if (parent->type != S_IFDIR)
		return -ENOTDIR;
	if (is_reserved(parent, name))
		return -ENOENT;
	by_name = !vfsd_inode_fd_wanted(0);
	if (by_name) {
		/* Over the fd budget: a file is held by its name (a directory still gets an fd). */
		r = RET_NERRNO(fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW));
		if (r < 0)
			return r;
	}
	if (!by_name || S_ISDIR(st.st_mode)) {
		fd = pt_open_child(fs, parent->fd, name);
		if (fd < 0)
			return fd;
		r = RET_NERRNO(fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
		if (r < 0)
			return r;
	}
	r = vfsd_inode_table_lookup_or_insert_at(fs->inodes, parent, name, TAKE_FD(fd), &st, &i);
	if (r < 0)
		return r;
	fill_entry(fs, ret, i->nodeid, &st);
	return 0;
}

/* ---- orphan directory --------------------------------------------------- */

int pt_orphans_top(struct vfsd_passthrough *fs)
{
	int fd, r;

	/* Called with orphan_lock held. */
	if (fs->orphans_top_fd >= 0)
		return fs->orphans_top_fd;
	r = RET_NERRNO(mkdirat(fs->root_fd, VFSD_ORPHANS_DIR, 0700));
	if (r < 0 && r != -EEXIST)
		return r;
	fd = RET_NERRNO(
	    openat(fs->root_fd, VFSD_ORPHANS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0)
		return fd;
	fs->orphans_top_fd = fd;
	return fd;
}

/* Whether @name in @dirfd still is the directory @fd is open on. */
static bool same_dir(int dirfd, const char *name, int fd)
{
	struct stat a, b;

	return fstatat(dirfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstat(fd, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int pt_orphan_dir(struct vfsd_passthrough *fs, struct vfsd_orphan_dir **ret)
{
	_cleanup_close_ int fd = -EBADF;
	struct vfsd_orphan_dir *d;
	int top, r;

	pthread_mutex_lock(&fs->orphan_lock);
	if (fs->odir) {
		*ret = vfsd_orphan_dir_ref(fs->odir);
		pthread_mutex_unlock(&fs->orphan_lock);
		return 0;
	}
	top = pt_orphans_top(fs);
	if (top < 0) {
		r = top;
		goto out;
	}
	r = RET_NERRNO(mkdirat(top, fs->instance_id, 0700));
	if (r < 0)
		goto out;
	fd = RET_NERRNO(
	    openat(top, fs->instance_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0) {
		r = fd;
		goto out;
	}
	/*
	 * Between mkdir and flock another vfsd starting up may have taken the
	 * unlocked directory for a dead one and removed it: once we hold the
	 * lock, check that the name still is our directory.
	 */
	r = RET_NERRNO(flock(fd, LOCK_EX | LOCK_NB));
	if (r < 0)
		goto out;
	if (!same_dir(top, fs->instance_id, fd)) {
		r = -ESTALE;
		goto out;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		r = -ENOMEM;
		goto out;
	}
	atomic_init(&d->refcount, 1); /* fs->odir's */
	d->fd = TAKE_FD(fd);
	fs->odir = d;
	*ret = vfsd_orphan_dir_ref(d);
	r = 0;
out:
	pthread_mutex_unlock(&fs->orphan_lock);
	if (r < 0)
		log_warn("orphan directory %s/%s: %s", VFSD_ORPHANS_DIR, fs->instance_id,
			 strerror(-r));
	return r;
}

/* Unlink every non-directory entry of @dirfd. */
static void empty_dir(int dirfd)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (!pt_is_dot_name(e->d_name))
			(void)unlinkat(dirfd, e->d_name, 0);
	closedir(d);
}

/*
 * Startup only: remove the instance directories of dead vfsd processes,
 * those whose flock we can take. A live owner holds its lock for its whole
 * life, so a directory we can lock has no owner that could still need it.
 */
static void orphans_cleanup_dead(struct vfsd_passthrough *fs)
{
	int top, fd;
	struct dirent *e;
	DIR *d;

	top = RET_NERRNO(
	    openat(fs->root_fd, VFSD_ORPHANS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (top < 0)
		return;
	fs->orphans_top_fd = top;
	fd = fcntl(top, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d))) {
		_cleanup_close_ int dfd = -EBADF;

		if (pt_is_dot_name(e->d_name) || strcmp(e->d_name, fs->instance_id) == 0)
			continue;
		dfd = openat(top, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			continue;
		if (flock(dfd, LOCK_EX | LOCK_NB) < 0)
			continue; /* alive */
		if (!same_dir(top, e->d_name, dfd))
			continue;
		empty_dir(dfd);
		if (unlinkat(top, e->d_name, AT_REMOVEDIR) == 0)
			log_info("removed the orphan directory of a dead vfsd: %s", e->d_name);
		else
			log_warn("cannot remove %s/%s: %m", VFSD_ORPHANS_DIR, e->d_name);
		/* closing dfd drops the lock */
	}
	closedir(d);
}

/* A clean exit: our orphans are gone with their inodes; remove the rest and the dir. */
static void orphans_remove_own(struct vfsd_passthrough *fs)
{
	if (!fs->odir)
		return;
	empty_dir(fs->odir->fd);
	if (fs->orphans_top_fd >= 0)
		(void)unlinkat(fs->orphans_top_fd, fs->instance_id, AT_REMOVEDIR);
	vfsd_orphan_dir_unref(fs->odir); /* closes the fd (and the lock) with the last inode */
	fs->odir = NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

int vfsd_passthrough_new(const struct vfsd_passthrough_config *cfg, struct vfsd_passthrough **ret)
{
	_cleanup_close_ int root_fd = -EBADF;
	struct vfsd_passthrough *fs;
	uint8_t rnd[16];
	char path[32], link[VFSD_PATH_MAX];
	struct stat st;
	ssize_t n;
	int r;

	if (!cfg || !cfg->shared_dir)
		return -EINVAL;
	root_fd = RET_NERRNO(open(cfg->shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (root_fd < 0)
		return root_fd;
	r = RET_NERRNO(fstat(root_fd, &st));
	if (r < 0)
		return r;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errno ? -errno : -EIO;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->proc_self_fd = -EBADF;
	fs->root_fd = -EBADF;
	fs->orphans_top_fd = -EBADF;
	fs->entry_timeout = cfg->entry_timeout;
	fs->attr_timeout = cfg->attr_timeout;
	atomic_init(&fs->no_openat2, false);
	atomic_init(&fs->orphan_seq, 0);
	for (size_t k = 0; k < sizeof(rnd); k++)
		snprintf(fs->instance_id + 2 * k, 3, "%02x", rnd[k]);
	if (pthread_mutex_init(&fs->orphan_lock, NULL) != 0) {
		free(fs);
		return -ENOMEM;
	}

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
	fs->root_fd = RET_NERRNO(fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
	if (fs->root_fd < 0) {
		r = fs->root_fd;
		goto fail;
	}
	snprintf(path, sizeof(path), "%d", root_fd);
	n = readlinkat(fs->proc_self_fd, path, link, sizeof(link) - 1);
	if (n <= 0 || link[0] != '/') {
		r = n < 0 ? -errno : -EINVAL;
		goto fail;
	}
	link[n] = '\0';
	fs->root_path = strdup(link);
	if (!fs->root_path) {
		r = -ENOMEM;
		goto fail;
	}
	r = vfsd_inode_table_set_root(fs->inodes, root_fd, &st);
	if (r < 0)
		goto fail;
	TAKE_FD(root_fd);

	umask(0); /* see the file comment */
	/* setfsuid(-1) only reports: the ids every creds_switch starts from. */
	fs->own_fsuid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
	fs->own_fsgid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);
	orphans_cleanup_dead(fs);
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
	/* Handles first: they hold inode references. Orphan names go with their inodes. */
	vfsd_handle_table_free(fs->handles);
	vfsd_inode_table_free(fs->inodes);
	orphans_remove_own(fs);
	safe_close(fs->orphans_top_fd);
	safe_close(fs->root_fd);
	safe_close(fs->proc_self_fd);
	free(fs->root_path);
	pthread_mutex_destroy(&fs->orphan_lock);
	free(fs);
}

const char *vfsd_passthrough_instance_id(struct vfsd_passthrough *fs)
{
	return fs->instance_id;
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

	if (!p || p->invalid)
		return p ? -EIO : -ENOENT;
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

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	if (in && (in->getattr_flags & FUSE_GETATTR_FH)) {
		_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h =
		    get_handle(fs, nodeid, in->fh);
		if (h)
			r = RET_NERRNO(fstat(h->fd, &st));
		else
			r = stat_inode(fs, i, &st);
	} else {
		r = stat_inode(fs, i, &st);
	}
	if (r < 0)
		return r;
	fill_attr_out(fs, ret, &st);
	if (is_orphan(i))
		ret->attr.nlink = 0; /* it must look deleted: the hidden name is ours */
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
	_cleanup_close_ int tmp = -EBADF;
	char procname[16];
	struct stat st;
	int ifd, r;

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	ifd = pt_inode_fd(fs, i, &tmp);
	if (ifd < 0)
		return ifd;
	snprintf(procname, sizeof(procname), "%d", ifd);
	if (valid & FATTR_FH) {
		h = get_handle(fs, nodeid, in->fh);
		if (!h || h->fd < 0)
			return h ? -EIO : -EBADF;
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
		r = RET_NERRNO(fchownat(ifd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
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

	r = h ? RET_NERRNO(fstat(h->fd, &st)) : stat_inode(fs, i, &st);
	if (r < 0)
		return r;
	fill_attr_out(fs, ret, &st);
	if (is_orphan(i))
		ret->attr.nlink = 0; /* it must look deleted: the hidden name is ours */
	return 0;
}

/*
 * The parent directory of a name the guest creates, removes or renames:
 * a known, valid inode, and a name the guest may use there (not the hidden
 * orphan directory). Returns a reference in @ret, or -errno.
 */
static int parent_for_name(struct vfsd_passthrough *fs, uint64_t parent, const char *name,
			   struct vfsd_inode **ret)
{
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = get_inode(fs, parent);
	int r;

	if (!p || p->invalid)
		return p ? -EIO : -ENOENT;
	r = check_name(name);
	if (r < 0)
		return r;
	if (is_reserved(p, name))
		return -EPERM;
	*ret = TAKE_PTR(p);
	return 0;
}

static int pt_mkdir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		    const struct fuse_mkdir_in *in, struct fuse_entry_out *ret)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL;
	int r;

	r = parent_for_name(fs, parent, name, &p);
	if (r < 0)
		return r;
	{
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(fs, ctx->uid, ctx->gid, &g);
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
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL;
	size_t len;
	int r;

	r = parent_for_name(fs, parent, name, &p);
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
		r = creds_switch(fs, ctx->uid, ctx->gid, &g);
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
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL;
	mode_t type = in->mode & S_IFMT;
	dev_t rdev = 0;
	int r;

	r = parent_for_name(fs, parent, name, &p);
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
		r = creds_switch(fs, ctx->uid, ctx->gid, &g);
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
	_cleanup_close_ int tmp = -EBADF;
	char procname[16];
	struct stat st;
	int fd, ifd, r;

	r = check_name(newname);
	if (r < 0)
		return r;
	i = get_inode(fs, oldnodeid);
	p = get_inode(fs, newparent);
	if (!i || !p)
		return -ENOENT;
	if (i->invalid || p->invalid)
		return -EIO;
	if (i->type == S_IFDIR)
		return -EPERM;
	if (p->type != S_IFDIR)
		return -ENOTDIR;
	if (is_reserved(p, newname))
		return -EPERM;
	/* Like the kernel for an unlinked inode: no new name for an orphan. */
	if (is_orphan(i))
		return -ENOENT;
	ifd = pt_inode_fd(fs, i, &tmp);
	if (ifd < 0)
		return ifd;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, ENOENT (or EPERM). */
	r = RET_NERRNO(linkat(ifd, "", p->fd, newname, AT_EMPTY_PATH));
	if (r == -ENOENT || r == -EPERM) {
		/* /proc/self/fd/N of an O_PATH fd reaches the inode itself, symlinks too. */
		snprintf(procname, sizeof(procname), "%d", ifd);
		r = RET_NERRNO(
		    linkat(fs->proc_self_fd, procname, p->fd, newname, AT_SYMLINK_FOLLOW));
	}
	if (r < 0)
		return r;

	r = stat_inode(fs, i, &st);
	if (r < 0)
		return r;
	fd = tmp >= 0 ? TAKE_FD(tmp) : RET_NERRNO(fcntl(ifd, F_DUPFD_CLOEXEC, 3));
	if (fd < 0)
		return fd;
	r = vfsd_inode_table_lookup_or_insert_at(fs->inodes, p, newname, fd, &st,
						 &li); /* takes fd */
	if (r < 0)
		return r;
	fill_entry(fs, ret, li->nodeid, &st);
	return 0;
}

/*
 * Move @name in @p (the file of inode @i) into our orphan directory. On
 * success *@ret_name holds its name there (the caller marks the inode).
 */
static int orphan_move(struct vfsd_passthrough *fs, struct vfsd_inode *p, const char *name,
		       struct vfsd_inode *i, struct vfsd_orphan_dir **ret_dir, char *ret_name,
		       size_t size)
{
	struct vfsd_orphan_dir *d = NULL;
	int r;

	r = pt_orphan_dir(fs, &d);
	if (r < 0)
		return r;
	snprintf(ret_name, size, "%" PRIu64, i->nodeid);
	r = RET_NERRNO(renameat2(p->fd, name, d->fd, ret_name, RENAME_NOREPLACE));
	if (r == -EEXIST) {
		/* A hand-over link or an earlier session's orphan of this node id. */
		snprintf(ret_name, size, "%" PRIu64 ".%" PRIu64, i->nodeid,
			 atomic_fetch_add(&fs->orphan_seq, 1) + 1);
		r = RET_NERRNO(renameat2(p->fd, name, d->fd, ret_name, RENAME_NOREPLACE));
	}
	if (r < 0) {
		vfsd_orphan_dir_unref(d);
		return r;
	}
	*ret_dir = d;
	return 0;
}

/*
 * The inode @name in @p names, when the guest still uses it (it is in the
 * table) and it would die with that name: a regular file with st_nlink 1.
 */
static struct vfsd_inode *orphan_candidate(struct vfsd_passthrough *fs, const struct stat *st)
{
	struct vfsd_inode *i;

	if (!S_ISREG(st->st_mode) || st->st_nlink != 1)
		return NULL;
	i = vfsd_inode_table_find_key(fs->inodes, (uint64_t)st->st_dev, (uint64_t)st->st_ino);
	if (i && is_orphan(i)) {
		vfsd_inode_unref(i);
		return NULL;
	}
	return i;
}

/*
 * Before @i loses a name it may be known by: an fd-less inode gets its fd
 * now, whatever the budget, or it could not be reached again.
 */
static void hold_fd(struct vfsd_passthrough *fs, struct vfsd_inode *i)
{
	int fd;

	if (!i || i->invalid || i->fd >= 0)
		return;
	fd = pt_inode_open_loc(fs->inodes, i, O_PATH);
	if (fd >= 0)
		(void)vfsd_inode_install_fd(i, fd);
}

static int pt_unlink_common(void *fsp, uint64_t parent, const char *name, int flags)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL;
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL;
	struct stat st;
	int r;

	r = parent_for_name(fs, parent, name, &p);
	if (r < 0)
		return r;
	/* Which inode goes: for its location, and whether it must become an orphan. */
	r = RET_NERRNO(fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW));
	if (r < 0)
		return r;
	if (!(flags & AT_REMOVEDIR)) {
		i = orphan_candidate(fs, &st);
		if (i) {
			struct vfsd_orphan_dir *d = NULL;
			char oname[48];

			r = orphan_move(fs, p, name, i, &d, oname, sizeof(oname));
			if (r == 0) {
				r = vfsd_inode_table_set_orphan(fs->inodes, i, d, oname);
				if (r < 0) /* cannot track it: it must not outlive us */
					(void)unlinkat(d->fd, oname, 0);
				vfsd_orphan_dir_unref(d);
				return 0;
			}
			log_debug("unlink %s: cannot keep it as an orphan (%s); plain unlink", name,
				  strerror(-r));
		}
	}
	if (!i)
		i = vfsd_inode_table_find_key(fs->inodes, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
	hold_fd(fs, i);
	r = RET_NERRNO(unlinkat(p->fd, name, flags));
	if (r < 0)
		return r;
	if (i)
		vfsd_inode_table_name_removed(fs->inodes, i, p, name,
					      !(flags & AT_REMOVEDIR) && st.st_nlink > 1);
	return 0;
}

static int pt_unlink(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	return pt_unlink_common(fsp, parent, name, 0);
}

static int pt_rmdir(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name)
{
	return pt_unlink_common(fsp, parent, name, AT_REMOVEDIR);
}

/*
 * RENAME / RENAME2 and the locations: the moved inode now lives at the new
 * name; with EXCHANGE the other one at the old name; an inode overwritten
 * at the new name loses that name (STALE or NONE), and when the guest still
 * uses it and it had no other link, it first becomes an orphan, so an open
 * file replaced by rename survives a migration as an unlinked one does.
 */
static int pt_rename(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname, uint32_t flags)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL, *np = NULL, *src = NULL,
						       *dst = NULL;
	struct vfsd_orphan_dir *d = NULL;
	struct stat sst, dst_st;
	bool have_dst;
	char oname[48];
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
	if (p->invalid || np->invalid)
		return -EIO;
	if (is_reserved(p, name) || is_reserved(np, newname))
		return -EPERM;
	r = RET_NERRNO(fstatat(p->fd, name, &sst, AT_SYMLINK_NOFOLLOW));
	if (r < 0)
		return r;
	have_dst = fstatat(np->fd, newname, &dst_st, AT_SYMLINK_NOFOLLOW) == 0;
	src = vfsd_inode_table_find_key(fs->inodes, (uint64_t)sst.st_dev, (uint64_t)sst.st_ino);
	if (have_dst && (dst_st.st_dev != sst.st_dev || dst_st.st_ino != sst.st_ino)) {
		if (flags == 0)
			dst = orphan_candidate(fs, &dst_st);
		if (dst && orphan_move(fs, np, newname, dst, &d, oname, sizeof(oname)) == 0) {
			/* The target is out of the way: the rename must not overwrite anything now.
			 */
			r = RET_NERRNO(renameat2(p->fd, name, np->fd, newname, RENAME_NOREPLACE));
			if (r < 0) {
				if (renameat2(d->fd, oname, np->fd, newname, RENAME_NOREPLACE) ==
				    0) {
					vfsd_orphan_dir_unref(d);
					return r;
				}
				/* Cannot put it back: it is gone for the guest either way. */
			}
			if (vfsd_inode_table_set_orphan(fs->inodes, dst, d, oname) < 0)
				(void)unlinkat(d->fd, oname, 0);
			vfsd_orphan_dir_unref(d);
			if (r < 0)
				return r;
			if (src)
				(void)vfsd_inode_table_set_location(fs->inodes, src, np, newname);
			return 0;
		}
		if (!dst)
			dst = vfsd_inode_table_find_key(fs->inodes, (uint64_t)dst_st.st_dev,
							(uint64_t)dst_st.st_ino);
		if (!(flags & RENAME_EXCHANGE))
			hold_fd(fs, dst);
	}
	r = RET_NERRNO(renameat2(p->fd, name, np->fd, newname, flags));
	if (r < 0)
		return r;
	if (dst) {
		if (flags & RENAME_EXCHANGE)
			(void)vfsd_inode_table_set_location(fs->inodes, dst, p, name);
		else
			vfsd_inode_table_name_removed(fs->inodes, dst, np, newname,
						      !S_ISDIR(dst_st.st_mode) &&
							  dst_st.st_nlink > 1);
	}
	if (src)
		(void)vfsd_inode_table_set_location(fs->inodes, src, np, newname);
	return 0;
}

static int pt_readlink(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid, char *buf,
		       size_t size)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = get_inode(fs, nodeid);
	_cleanup_close_ int tmp = -EBADF;
	ssize_t n;
	int fd;

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	/* readlinkat(fd, "") on anything else says ENOENT; readlink(2) says EINVAL. */
	if (i->type != S_IFLNK)
		return -EINVAL;
	if (size == 0)
		return -ENAMETOOLONG;
	fd = pt_inode_fd(fs, i, &tmp);
	if (fd < 0)
		return fd;
	n = readlinkat(fd, "", buf, MIN(size, (size_t)INT32_MAX));
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
	_cleanup_close_ int tmp = -EBADF;
	struct statfs sf;
	int fd, r;

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	fd = pt_inode_fd(fs, i, &tmp);
	if (fd < 0)
		return fd;
	r = RET_NERRNO(fstatfs(fd, &sf));
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

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	/*
	 * Only regular files and directories: opening a FIFO or a device node
	 * could block a worker forever or have side effects on the host.
	 */
	if (i->type != S_IFREG && i->type != S_IFDIR)
		return -ENXIO;
	fd = reopen_inode(fs, i, (int)flags);
	if (fd < 0)
		return fd;
	r = add_handle(fs, i, fd, flags, i->type == S_IFDIR, &fh);
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
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *p = NULL;
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct fuse_entry_out e;
	int oflags = ((int)in->flags & ~REOPEN_STRIP_FLAGS) | (int)(in->flags & O_EXCL);
	struct stat st;
	uint64_t fh;
	int r;

	r = parent_for_name(fs, parent, name, &p);
	if (r < 0)
		return r;
	{
		_cleanup_creds_ struct creds_guard g = { 0 };
		r = creds_switch(fs, ctx->uid, ctx->gid, &g);
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

		pfd = -EBADF; /* over the fd budget: held by its name */
		if (vfsd_inode_fd_wanted(S_IFREG)) {
			snprintf(procname, sizeof(procname), "%d", fd);
			pfd = RET_NERRNO(openat(fs->proc_self_fd, procname, O_PATH | O_CLOEXEC));
			if (pfd < 0)
				return pfd;
		}
		r = vfsd_inode_table_lookup_or_insert_at(fs->inodes, p, name, pfd, &st, &i);
		if (r < 0)
			return r;
	}
	fill_entry(fs, &e, i->nodeid, &st);
	r = add_handle(fs, i, fd, in->flags, false, &fh);
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

	if (!h || h->fd < 0)
		return h ? -EIO : -EBADF;
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

	if (!h || h->fd < 0)
		return h ? -EIO : -EBADF;
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

	if (!h || h->fd < 0)
		return h ? -EIO : -EBADF;
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

	int r;

	if (!h)
		return -EBADF;
	r = vfsd_handle_table_remove(fs->handles, in->fh);
	if (r == 0)
		vfsd_inode_table_unpin(fs->inodes, h->inode);
	return r;
}

static int pt_fsync(void *fsp, const struct vfsd_fs_ctx *ctx, uint64_t nodeid,
		    const struct fuse_fsync_in *in)
{
	struct vfsd_passthrough *fs = PT(fsp);
	_cleanup_(vfsd_handle_unrefp) struct vfsd_handle *h = get_handle(fs, nodeid, in->fh);

	if (!h || h->fd < 0)
		return h ? -EIO : -EBADF;
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

	if (!i || i->invalid)
		return i ? -EIO : -ENOENT;
	if (i->type != S_IFDIR)
		return -ENOTDIR;
	fd = reopen_inode(fs, i, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	r = add_handle(fs, i, fd, flags, true, &fh);
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

	if (is_reserved(dir, d->d_name))
		return 0; /* invisible to the guest */
	if (!plus)
		return vfsd_dirbuf_add(buf, d->d_name, namelen, d->d_ino, d->d_type,
				       (uint64_t)d->d_off) < 0
			   ? -ENOSPC
			   : 1;

	if (!vfsd_dirbuf_fits_plus(buf, namelen))
		return -ENOSPC;
	if (pt_is_dot_name(d->d_name)) {
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

/*
 * Rewind a directory fd by giving it a fresh open file description (same fd
 * number, so nothing else holding it sees a change). lseek(fd, 0) is not
 * enough on ext4 with hashed directories: an fd whose first getdents ran at
 * the end-of-directory cookie (a restored handle that the guest had read to
 * the end) keeps returning nothing after a seek to 0, because the kernel's
 * per-file hash position is only reset when the position it remembers
 * differs from the new one, and it remembers 0. Measured on 6.18; the e2e
 * migration test found it (virtiofsd 1.13 shows the same symptom).
 */
static int dir_rewind(int fd)
{
	_cleanup_close_ int nfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (nfd < 0)
		return -errno;
	if (dup3(nfd, fd, O_CLOEXEC) < 0)
		return -errno;
	return 0;
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

	if (!h || h->fd < 0)
		return h ? -EIO : -EBADF;
	if (!h->is_dir)
		return -ENOTDIR;
	dents = malloc(GETDENTS_BUF);
	if (!dents)
		return -ENOMEM;

	pthread_mutex_lock(&h->dir_lock);
	/* The guest continues from the cookie (a host d_off) of the last entry it got. */
	if (!h->dir_pos_valid || h->dir_pos != in->offset) {
		h->dir_pos_valid = false;
		if (in->offset == 0)
			r = dir_rewind(h->fd);
		else if (lseek(h->fd, (off_t)in->offset, SEEK_SET) < 0)
			r = -errno;
		if (r < 0)
			goto out;
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
