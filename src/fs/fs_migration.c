/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs_migration: collect the passthrough's tables as plain records and
 * rebuild them from records (vfsd/fs_migration.h).
 *
 * Behaviours and choices:
 *  - Locations are kept current by the ops (passthrough.c, inode_table.c):
 *    (parent, name) from LOOKUP, CREATE, MKDIR, MKNOD, SYMLINK, LINK,
 *    READDIRPLUS, RENAME (incl. EXCHANGE); UNLINK / RMDIR / an overwriting
 *    RENAME of the recorded name makes it STALE (other hard links remain)
 *    or NONE (collected with "unlinked" set). A child pins its parent in the
 *    table, so every NAME's parent is collected too (with nlookup 0 when the
 *    guest forgot it). Open handles pin their inode as well.
 *  - STALE -> PATH: a path cached by vfsd_fs_prepare() is re-checked with
 *    one open + fstat (a directory rename may have moved it since); else
 *    readlink of /proc/self/fd/N, which must lie under the shared directory
 *    and not be "(deleted)" (it is, when the fd was opened through the very
 *    link that was removed); else one depth-first walk of the shared
 *    directory (not crossing mounts, skipping .vfsd-orphans) for all the
 *    remaining stale inodes at once, matching (st_dev, st_ino). Every path
 *    found is verified by opening it beneath the root. Not found: NONE
 *    (not "unlinked": the migration layer writes such an inode as lost,
 *    "not-found").
 *  - Third-party renames on the host are invisible until a confirm pass
 *    (VFSD_FS_COLLECT_CONFIRM): fstatat(parent, name) must give the
 *    recorded dev/ino, else the name is re-derived as a PATH (or NONE).
 *  - ORPHAN records name our own orphan: "<instance>/<name>". The
 *    destination opens it beneath <shared>/.vfsd-orphans (RESOLVE_BENEATH)
 *    and links it into its own instance directory through /proc/self/fd
 *    (linkat AT_SYMLINK_FOLLOW: no CAP_DAC_READ_SEARCH needed), named
 *    "<nodeid>" (or "<nodeid>.<n>" when taken). The source keeps its own
 *    name until its inode goes, so a failed migration changes nothing for
 *    it and each side only ever deletes its own names. Requires source and
 *    destination on the same filesystem (they share the directory).
 *  - File handles come from name_to_handle_at(fd, "", AT_EMPTY_PATH) and are
 *    cached on the inode by prepare (a handle is stable for an inode's
 *    life). open_by_handle_at() uses the shared directory's root fd as the
 *    mount fd, so it resolves only handles of that filesystem; it needs
 *    CAP_DAC_READ_SEARCH (EPERM is reported as such). Verification compares
 *    type, size and bytes, not the mount id (it differs between processes'
 *    views only if the mount tables differ).
 *  - Restore builds a complete new inode table + handle table; nothing is
 *    visible to the running session before commit, and abort frees it all
 *    (hand-over links are unlinked with their inodes). Commit drops
 *    inodes with neither lookups nor pins (possible after a lenient
 *    restore), swaps the tables in and frees the old ones.
 *  - Lenient (--migration-on-error=guest-error): an inode that cannot be
 *    found becomes a placeholder with the same node id whose every op is
 *    -EIO; its children (if any) fail the same way, and so do handles on it.
 *    A record the source already knew it could not locate (a "lost" one)
 *    goes in as such a placeholder directly (vfsd_fs_restore_placeholder()),
 *    whatever the mode: the migration layer decides whether to accept it.
 *    Inconsistent records (unknown parent id, duplicate ids, bad names) are
 *    errors in both modes: they mean a broken blob, not a changed disk.
 */
#include "vfsd/fs_migration.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hmap.h"
#include "passthrough-internal.h"
#include "vfsd/util.h"

/* How deep the stale-name search descends. */
#define SEARCH_MAX_DEPTH 64

const char *vfsd_fs_loc_name(enum vfsd_fs_loc_kind k)
{
	switch (k) {
	case VFSD_FS_LOC_NONE:
		return "none";
	case VFSD_FS_LOC_ROOT:
		return "root";
	case VFSD_FS_LOC_NAME:
		return "name";
	case VFSD_FS_LOC_PATH:
		return "path";
	case VFSD_FS_LOC_ORPHAN:
		return "orphan";
	}
	return "?";
}

/* ---- helpers ---------------------------------------------------------- */

/* The file handle of @name in @dirfd (not followed), or of @dirfd itself for "". */
static int name_handle(int dirfd, const char *name, struct vfsd_fs_file_handle *ret)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + VFSD_FS_HANDLE_MAX];
	} u;
	int mnt_id = 0;

	u.fh.handle_bytes = VFSD_FS_HANDLE_MAX;
	if (name_to_handle_at(dirfd, name, &u.fh, &mnt_id, name[0] ? 0 : AT_EMPTY_PATH) < 0)
		return -errno;
	if (u.fh.handle_bytes == 0 || u.fh.handle_bytes > VFSD_FS_HANDLE_MAX)
		return -EOVERFLOW;
	ret->type = u.fh.handle_type;
	ret->size = u.fh.handle_bytes;
	memcpy(ret->bytes, u.fh.f_handle, u.fh.handle_bytes);
	ret->mnt_id = (uint64_t)mnt_id;
	return 0;
}

static int fd_handle(int fd, struct vfsd_fs_file_handle *ret)
{
	return name_handle(fd, "", ret);
}

/* The inode's file handle: prepare's cached one, or computed now (and cached). */
static int inode_handle(struct vfsd_passthrough *fs, struct vfsd_inode *i,
			struct vfsd_fs_file_handle *ret)
{
	struct vfsd_inode_fh *c = atomic_load_explicit(&i->fh_cache, memory_order_acquire);
	struct vfsd_inode_fh *n, *expected = NULL;
	_cleanup_close_ int tmp = -EBADF;
	int fd, r;

	if (!c) {
		fd = pt_inode_fd(fs, i, &tmp);
		if (fd < 0)
			return fd;
		r = fd_handle(fd, ret);
		if (r < 0)
			return r;
		n = malloc(sizeof(*n));
		if (!n)
			return 0;
		n->type = ret->type;
		n->size = ret->size;
		n->mnt_id = ret->mnt_id;
		memcpy(n->bytes, ret->bytes, ret->size);
		if (!atomic_compare_exchange_strong(&i->fh_cache, &expected, n))
			free(n);
		return 0;
	}
	ret->type = c->type;
	ret->size = c->size;
	ret->mnt_id = c->mnt_id;
	memcpy(ret->bytes, c->bytes, c->size);
	return 0;
}

/* Whether @path (relative) beneath the root is host inode @dev/@ino. */
static bool path_is(struct vfsd_passthrough *fs, const char *path, uint64_t dev, uint64_t ino)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (!path[0] || path[0] == '/')
		return false;
	fd = pt_open_child(fs, fs->root_fd, path);
	if (fd < 0 || fstat(fd, &st) < 0)
		return false;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

/* The path /proc/self/fd gives for @i, relative to the shared dir, if it checks out. */
static char *path_from_proc(struct vfsd_passthrough *fs, const struct vfsd_inode *i)
{
	char name[16], link[VFSD_PATH_MAX + 16];
	size_t rootlen = strlen(fs->root_path);
	const char *rel;
	ssize_t n;

	if (i->fd < 0) /* fd-less inodes are given an fd before they go stale */
		return NULL;
	snprintf(name, sizeof(name), "%d", i->fd);
	n = readlinkat(fs->proc_self_fd, name, link, sizeof(link) - 1);
	if (n <= 0)
		return NULL;
	link[n] = '\0';
	if (n > 10 && strcmp(link + n - 10, " (deleted)") == 0)
		return NULL;
	/* "/" as the shared dir: every absolute path is below it. */
	if (strcmp(fs->root_path, "/") == 0)
		rel = link + 1;
	else if (strncmp(link, fs->root_path, rootlen) == 0 && link[rootlen] == '/')
		rel = link + rootlen + 1;
	else
		return NULL;
	if (!rel[0] || !path_is(fs, rel, i->dev, i->ino))
		return NULL;
	return strdup(rel);
}

/* One stale inode to find, for the search. */
struct target {
	const struct vfsd_inode *i;
	char *path; /* found: malloc()ed */
};

struct search {
	struct vfsd_passthrough *fs;
	struct target *t;
	size_t n, left;
	uint64_t dev; /* the root's: no crossing into other mounts */
	char path[VFSD_PATH_MAX];
};

static void search_dir(struct search *s, int dirfd, size_t plen, unsigned int depth)
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
	while (s->left > 0 && (e = readdir(d))) {
		size_t nlen = strlen(e->d_name);
		struct stat st;

		if (pt_is_dot_name(e->d_name))
			continue;
		if (depth == 0 && strcmp(e->d_name, VFSD_ORPHANS_DIR) == 0)
			continue;
		if (plen + nlen + 2 > sizeof(s->path))
			continue;
		for (size_t k = 0; k < s->n; k++) {
			if (s->t[k].path || s->t[k].i->ino != (uint64_t)e->d_ino)
				continue;
			if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    (uint64_t)st.st_dev != s->t[k].i->dev ||
			    (uint64_t)st.st_ino != s->t[k].i->ino)
				continue;
			memcpy(s->path + plen, e->d_name, nlen + 1);
			s->t[k].path = strdup(s->path);
			if (s->t[k].path)
				s->left--;
		}
		if (e->d_type == DT_DIR && depth + 1 < SEARCH_MAX_DEPTH) {
			_cleanup_close_ int sub = openat(
			    dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || fstat(sub, &st) < 0 || (uint64_t)st.st_dev != s->dev)
				continue;
			memcpy(s->path + plen, e->d_name, nlen);
			s->path[plen + nlen] = '/';
			s->path[plen + nlen + 1] = '\0';
			search_dir(s, sub, plen + nlen + 1, depth + 1);
		}
	}
	closedir(d);
}

/*
 * Paths for the STALE inodes of @v: cached (re-checked), from /proc, or by
 * one search of the whole tree. Returns a malloc()ed array parallel to @v
 * (NULL entries: not stale, or not found), or NULL on ENOMEM.
 */
static char **resolve_stale(struct vfsd_passthrough *fs, struct vfsd_inode **v, size_t n,
			    const bool *force)
{
	_cleanup_free_ struct target *t = NULL;
	_cleanup_free_ struct vfsd_inode_loc_snap *snap = NULL;
	_cleanup_free_ size_t *idx = NULL;
	char **paths = calloc(n ? n : 1, sizeof(*paths));
	size_t nt = 0;

	snap = malloc(sizeof(*snap));
	t = calloc(n ? n : 1, sizeof(*t));
	idx = calloc(n ? n : 1, sizeof(*idx));
	if (!paths || !snap || !t || !idx) {
		free(paths);
		return NULL;
	}
	for (size_t k = 0; k < n; k++) {
		struct vfsd_inode *i = v[k];

		if (i->invalid)
			continue;
		vfsd_inode_table_get_location(fs->inodes, i, snap);
		if (snap->loc != VFSD_LOC_STALE && !(force && force[k]))
			continue;
		if (snap->loc == VFSD_LOC_STALE && snap->stale_path[0] &&
		    path_is(fs, snap->stale_path, i->dev, i->ino)) {
			paths[k] = strdup(snap->stale_path);
			continue;
		}
		paths[k] = path_from_proc(fs, i);
		if (!paths[k]) {
			t[nt].i = i;
			idx[nt++] = k;
		}
	}
	if (nt > 0) {
		_cleanup_free_ struct search *s = calloc(1, sizeof(*s));
		struct stat st;

		if (s && fstat(fs->root_fd, &st) == 0) {
			_cleanup_close_ int rfd =
			    pt_reopen_fd(fs, fs->root_fd, O_RDONLY | O_DIRECTORY);
			s->fs = fs;
			s->t = t;
			s->n = s->left = nt;
			s->dev = (uint64_t)st.st_dev;
			if (rfd >= 0)
				search_dir(s, rfd, 0, 0);
		}
		for (size_t k = 0; k < nt; k++)
			paths[idx[k]] = t[k].path;
	}
	return paths;
}

static void free_paths(char **paths, size_t n)
{
	if (!paths)
		return;
	for (size_t k = 0; k < n; k++)
		free(paths[k]);
	free(paths);
}

/* ---- collect ---------------------------------------------------------- */

int vfsd_fs_prepare(struct vfsd_passthrough *fs, unsigned int flags)
{
	struct vfsd_inode **v = NULL;
	char **paths;
	size_t n = 0;
	int r;

	r = vfsd_inode_table_snapshot(fs->inodes, &v, &n);
	if (r < 0)
		return r;
	paths = resolve_stale(fs, v, n, NULL);
	if (!paths) {
		vfsd_inode_table_snapshot_free(v, n);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++) {
		struct vfsd_fs_file_handle fh;

		if (paths[k])
			vfsd_inode_table_set_stale_path(fs->inodes, v[k], paths[k]);
		if ((flags & VFSD_FS_COLLECT_HANDLES) && !v[k]->invalid)
			(void)inode_handle(fs, v[k], &fh);
	}
	free_paths(paths, n);
	vfsd_inode_table_snapshot_free(v, n);
	return 0;
}

/* Whether the recorded NAME still leads to @i. */
static bool name_confirmed(const struct vfsd_inode_loc_snap *snap, const struct vfsd_inode *i)
{
	struct stat st;

	if (!snap->parent_ptr || snap->parent_ptr->fd < 0)
		return false;
	return fstatat(snap->parent_ptr->fd, snap->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       (uint64_t)st.st_dev == i->dev && (uint64_t)st.st_ino == i->ino;
}

struct collect_buf {
	struct vfsd_fs_inode_rec rec;
	struct vfsd_inode_loc_snap snap;
	char orphan[128];
};

int vfsd_fs_collect_inodes(struct vfsd_passthrough *fs, unsigned int flags, vfsd_fs_inode_cb cb,
			   void *userdata)
{
	_cleanup_free_ struct collect_buf *b = NULL;
	_cleanup_free_ bool *force = NULL;
	struct vfsd_inode **v = NULL;
	char **paths = NULL;
	size_t n = 0;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = vfsd_inode_table_snapshot(fs->inodes, &v, &n);
	if (r < 0)
		return r;
	force = calloc(n ? n : 1, sizeof(*force));
	if (!force) {
		r = -ENOMEM;
		goto out;
	}
	/* Confirm pass first, so every name that fails joins the one search. */
	if (flags & VFSD_FS_COLLECT_CONFIRM) {
		for (size_t k = 0; k < n; k++) {
			if (v[k]->invalid)
				continue;
			vfsd_inode_table_get_location(fs->inodes, v[k], &b->snap);
			if (b->snap.loc == VFSD_LOC_NAME && !name_confirmed(&b->snap, v[k]))
				force[k] = true;
		}
	}
	paths = resolve_stale(fs, v, n, force);
	if (!paths) {
		r = -ENOMEM;
		goto out;
	}

	for (size_t k = 0; k < n; k++) {
		struct vfsd_inode *i = v[k];
		struct vfsd_fs_inode_rec *rec = &b->rec;

		memset(rec, 0, sizeof(*rec));
		rec->nodeid = i->nodeid;
		rec->nlookup = atomic_load_explicit(&i->nlookup, memory_order_relaxed);
		rec->type = i->type;
		rec->has_ino = !i->invalid;
		rec->ino = i->invalid ? 0 : i->ino;
		rec->loc = VFSD_FS_LOC_NONE;
		if (!i->invalid) {
			vfsd_inode_table_get_location(fs->inodes, i, &b->snap);
			/* NONE on a live inode: its last name went through UNLINK / RMDIR /
			 * RENAME here and no orphan was kept (vfsd_inode_table_name_removed). */
			rec->unlinked = b->snap.loc == VFSD_LOC_NONE && i->nodeid != FUSE_ROOT_ID;
			if (force[k] || b->snap.loc == VFSD_LOC_STALE) {
				if (paths[k]) {
					rec->loc = VFSD_FS_LOC_PATH;
					rec->path = paths[k];
				}
			} else if (b->snap.loc == VFSD_LOC_ROOT) {
				rec->loc = VFSD_FS_LOC_ROOT;
			} else if (b->snap.loc == VFSD_LOC_NAME) {
				rec->loc = VFSD_FS_LOC_NAME;
				rec->parent = b->snap.parent;
				rec->name = b->snap.name;
			} else if (b->snap.loc == VFSD_LOC_ORPHAN && b->snap.orphan_name[0]) {
				snprintf(b->orphan, sizeof(b->orphan), "%s/%s", fs->instance_id,
					 b->snap.orphan_name);
				rec->loc = VFSD_FS_LOC_ORPHAN;
				rec->orphan = b->orphan;
			}
			if (flags & VFSD_FS_COLLECT_HANDLES)
				rec->has_fh = inode_handle(fs, i, &rec->fh) == 0;
		}
		r = cb(userdata, rec);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	free_paths(paths, n);
	vfsd_inode_table_snapshot_free(v, n);
	return r;
}

struct handle_walk {
	vfsd_fs_handle_cb cb;
	void *userdata;
};

static int handle_cb(const struct vfsd_handle *h, void *userdata)
{
	struct handle_walk *w = userdata;
	struct vfsd_handle *mh = (struct vfsd_handle *)h; /* for the mutex only */
	struct vfsd_fs_handle_rec rec = {
		.fh = h->fh,
		.nodeid = h->inode->nodeid,
		.flags = h->flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC),
		.is_dir = h->is_dir,
	};

	if (h->is_dir) {
		pthread_mutex_lock(&mh->dir_lock);
		rec.has_dir_offset = h->dir_pos_valid;
		rec.dir_offset = h->dir_pos;
		pthread_mutex_unlock(&mh->dir_lock);
	}
	return w->cb(w->userdata, &rec);
}

int vfsd_fs_collect_handles(struct vfsd_passthrough *fs, vfsd_fs_handle_cb cb, void *userdata)
{
	struct handle_walk w = { .cb = cb, .userdata = userdata };

	return vfsd_handle_table_foreach(fs->handles, handle_cb, &w);
}

void vfsd_fs_counters(struct vfsd_passthrough *fs, uint64_t *ret_next_nodeid, uint64_t *ret_next_fh)
{
	if (ret_next_nodeid)
		*ret_next_nodeid = vfsd_inode_table_next_id(fs->inodes);
	if (ret_next_fh)
		*ret_next_fh = vfsd_handle_table_next_fh(fs->handles);
}

/* ---- restore ---------------------------------------------------------- */

struct vfsd_fs_restore {
	struct vfsd_passthrough *fs;
	struct vfsd_inode_table *inodes;
	struct vfsd_handle_table *handles;
	int mount_fd; /* the shared dir, O_RDONLY (open_by_handle_at refuses O_PATH), or -errno */
	size_t n_invalid;
	struct hmap dirs;      /* parent node id -> struct dirlist */
	size_t listed_entries; /* over every listing, capped by MAX_LISTED */
	uint64_t *unlooked;    /* ids restored with nlookup 0: the sweep's candidates */
	size_t n_unlooked, cap_unlooked;
	char *chunk; /* the listings' arena: the current chunk, each starting */
	size_t used; /* with a pointer to the previous one */
	char error[512];
};

/*
 * Directory listings. Finding 100,000 files again is 100,000 fstatat()s,
 * most of the destination's switch-over; a directory with many files to
 * find is cheaper to read once with getdents64 (name, d_ino, d_type for a
 * hundred entries per call). A directory is listed once the files asked of
 * it could have paid for reading it (ASK_RATIO files per estimated entry),
 * so a huge directory with one looked-up file is never read; d_type
 * DT_UNKNOWN, or no listing, falls back to fstatat.
 */
#define ASK_RATIO  64
#define ASK_MIN	   4
#define MAX_LISTED (2u << 20) /* entries over all listings */
#define DENTS_BUF  (64 * 1024)
#define LIST_CHUNK (64 * 1024)

struct dent {
	struct vfsd_hlink link;
	uint64_t ino;
	uint8_t type; /* DT_* */
	char name[];
};

struct dirlist {
	struct vfsd_hlink link; /* in r->dirs */
	uint64_t nodeid;
	uint64_t asked, est_entries;
	bool listed, failed;
	struct hmap names;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return hmap_mix(h);
}

/*
 * Listing entries come from one arena for all directories, in chunks that
 * fill up before the next is taken: a directory of a hundred files uses 5 KB
 * of it, and memory touched for the first time is costly in a VM.
 */
static void *list_alloc(struct vfsd_fs_restore *r, size_t size)
{
	void *p;

	size = (size + 7) & ~(size_t)7;
	if (size > LIST_CHUNK - sizeof(char *))
		return NULL;
	if (!r->chunk || r->used + size > LIST_CHUNK) {
		char *c = malloc(LIST_CHUNK);

		if (!c)
			return NULL;
		memcpy(c, &r->chunk, sizeof(char *));
		r->chunk = c;
		r->used = sizeof(char *);
	}
	p = r->chunk + r->used;
	r->used += size;
	return p;
}

static void list_arena_free(struct vfsd_fs_restore *r)
{
	while (r->chunk) {
		char *prev;

		memcpy(&prev, r->chunk, sizeof(char *));
		free(r->chunk);
		r->chunk = prev;
	}
}

static void dirlist_free(struct dirlist *d)
{
	hmap_done(&d->names);
	free(d);
}

/* Read @dirfd (O_PATH) whole into @d; false when it could not (d->failed). */
static bool dirlist_read(struct vfsd_fs_restore *r, struct dirlist *d, int dirfd)
{
	_cleanup_close_ int fd = RET_NERRNO(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	_cleanup_free_ char *buf = malloc(DENTS_BUF);
	long n;

	if (fd < 0 || !buf || hmap_init(&d->names) < 0)
		return false;
	while ((n = syscall(SYS_getdents64, fd, buf, DENTS_BUF)) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			size_t len = strlen(e->d_name);
			struct dent *de;

			off += e->d_reclen;
			if (pt_is_dot_name(e->d_name))
				continue;
			if (r->listed_entries >= MAX_LISTED)
				return false;
			de = list_alloc(r, sizeof(*de) + len + 1);
			if (!de)
				return false;
			de->ino = e->d_ino;
			de->type = e->d_type;
			memcpy(de->name, e->d_name, len + 1);
			hmap_insert(&d->names, &de->link, name_hash(de->name));
			r->listed_entries++;
		}
	}
	return n == 0;
}

/*
 * What the listing of @p says of @name: 1 (found, *@st has its type and
 * inode number, st_dev the parent's), 0 (not there), or -1 (no listing or
 * no d_type: ask fstatat).
 */
static int dirlist_find(struct vfsd_fs_restore *r, struct vfsd_inode *p, const char *name,
			struct stat *st)
{
	uint64_t h = hmap_mix(p->nodeid);
	struct dirlist *d = NULL;

	for (struct vfsd_hlink *l = hmap_bucket(&r->dirs, h); l; l = l->next) {
		struct dirlist *x = container_of(l, struct dirlist, link);
		if (l->hash == h && x->nodeid == p->nodeid) {
			d = x;
			break;
		}
	}
	if (!d) {
		struct stat ds;

		d = calloc(1, sizeof(*d));
		if (!d)
			return -1;
		d->nodeid = p->nodeid;
		d->est_entries = fstat(p->fd, &ds) == 0 ? (uint64_t)ds.st_size / 24 : UINT64_MAX;
		hmap_insert(&r->dirs, &d->link, h);
	}
	if (!d->listed && !d->failed) {
		d->asked++;
		if (d->asked < ASK_MIN || d->asked * ASK_RATIO < d->est_entries)
			return -1;
		d->listed = dirlist_read(r, d, p->fd);
		d->failed = !d->listed;
		if (d->failed)
			return -1;
	}
	if (!d->listed)
		return -1;
	h = name_hash(name);
	for (struct vfsd_hlink *l = hmap_bucket(&d->names, h); l; l = l->next) {
		struct dent *de = container_of(l, struct dent, link);
		if (l->hash != h || strcmp(de->name, name) != 0)
			continue;
		if (de->type == DT_UNKNOWN)
			return -1;
		memset(st, 0, sizeof(*st));
		st->st_dev = (dev_t)p->dev;
		st->st_ino = (ino_t)de->ino;
		st->st_mode = DTTOIF(de->type);
		return 1;
	}
	return 0;
}

static void dirs_free(struct vfsd_fs_restore *r)
{
	struct vfsd_hlink *pos, *tmp;

	list_arena_free(r);
	if (!r->dirs.buckets)
		return;
	hmap_for_each_link(&r->dirs, pos, tmp)
	{
		dirlist_free(container_of(pos, struct dirlist, link));
	}
	hmap_done(&r->dirs);
}

/* Find @name in @p: the listing, or fstatat. */
static int find_child(struct vfsd_fs_restore *r, struct vfsd_inode *p, const char *name,
		      struct stat *st)
{
	int k = dirlist_find(r, p, name, st);

	if (k == 1)
		return 0;
	if (k == 0)
		return -ENOENT;
	return RET_NERRNO(fstatat(p->fd, name, st, AT_SYMLINK_NOFOLLOW));
}

static int fail(struct vfsd_fs_restore *r, int err, const char *fmt, ...) _printf_(3, 4);
static int fail(struct vfsd_fs_restore *r, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(r->error) && err < 0)
		snprintf(r->error + n, sizeof(r->error) - (size_t)n, ": %s", strerror(-err));
	return err;
}

int vfsd_fs_restore_begin(struct vfsd_passthrough *fs, struct vfsd_fs_restore **ret)
{
	struct vfsd_fs_restore *r = calloc(1, sizeof(*r));
	int root_fd, err;
	struct stat st;

	if (!r)
		return -ENOMEM;
	r->fs = fs;
	r->mount_fd = -EBADF;
	if (hmap_init(&r->dirs) < 0) {
		free(r);
		return -ENOMEM;
	}
	err = vfsd_inode_table_new(0, &r->inodes);
	if (err < 0)
		goto fail;
	err = vfsd_handle_table_new(0, &r->handles);
	if (err < 0)
		goto fail;
	root_fd = RET_NERRNO(fcntl(fs->root_fd, F_DUPFD_CLOEXEC, 3));
	if (root_fd < 0) {
		err = root_fd;
		goto fail;
	}
	err = RET_NERRNO(fstat(root_fd, &st));
	if (err == 0)
		err = vfsd_inode_table_set_root(r->inodes, root_fd, &st);
	if (err < 0) {
		close(root_fd);
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	vfsd_fs_restore_abort(r);
	return err;
}

const char *vfsd_fs_restore_error(const struct vfsd_fs_restore *r)
{
	return r->error;
}

size_t vfsd_fs_restore_invalid_count(const struct vfsd_fs_restore *r)
{
	return r->n_invalid;
}

static bool name_ok(const char *name)
{
	size_t len = name ? strnlen(name, VFSD_NAME_MAX + 1) : 0;

	return len > 0 && len <= VFSD_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* A relative path without empty, "." or ".." components. */
static bool path_ok(const char *path, size_t max_components)
{
	size_t len = path ? strnlen(path, VFSD_PATH_MAX) : 0, comps = 0;
	const char *p = path;

	if (len == 0 || len >= VFSD_PATH_MAX || path[0] == '/')
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t c = slash ? (size_t)(slash - p) : strlen(p);

		if (c == 0 || c > VFSD_NAME_MAX || (c == 1 && p[0] == '.') ||
		    (c == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		comps++;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return false; /* trailing slash */
	}
	return comps <= max_components;
}

static bool same_handle(const struct vfsd_fs_file_handle *a, const struct vfsd_fs_file_handle *b)
{
	return a->type == b->type && a->size == b->size && memcmp(a->bytes, b->bytes, a->size) == 0;
}

static int open_by_fh(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + VFSD_FS_HANDLE_MAX];
	} u;
	int fd;

	if (rec->fh.size == 0 || rec->fh.size > VFSD_FS_HANDLE_MAX)
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad file handle size %u", rec->nodeid,
			    rec->fh.size);
	u.fh.handle_bytes = rec->fh.size;
	u.fh.handle_type = rec->fh.type;
	memcpy(u.fh.f_handle, rec->fh.bytes, rec->fh.size);
	if (r->mount_fd == -EBADF)
		r->mount_fd = pt_reopen_fd(r->fs, r->fs->root_fd, O_RDONLY | O_DIRECTORY);
	if (r->mount_fd < 0)
		return fail(r, r->mount_fd, "inode %" PRIu64 ": open the mount fd", rec->nodeid);
	fd = RET_NERRNO(open_by_handle_at(r->mount_fd, &u.fh, O_PATH | O_CLOEXEC));
	if (fd == -EPERM)
		return fail(r, fd, "inode %" PRIu64 ": open_by_handle_at needs CAP_DAC_READ_SEARCH",
			    rec->nodeid);
	if (fd < 0)
		return fail(r, fd, "inode %" PRIu64 ": open_by_handle_at", rec->nodeid);
	return fd;
}

/* Link the orphan open as @fd into our own instance directory. */
static int hand_over(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec, int fd,
		     struct vfsd_orphan_dir **ret_dir, char *ret_name, size_t size)
{
	struct vfsd_orphan_dir *d = NULL;
	char procname[16];
	int err;

	err = pt_orphan_dir(r->fs, &d);
	if (err < 0)
		return fail(r, err, "inode %" PRIu64 ": our orphan directory", rec->nodeid);
	snprintf(procname, sizeof(procname), "%d", fd);
	snprintf(ret_name, size, "%" PRIu64, rec->nodeid);
	err = RET_NERRNO(linkat(r->fs->proc_self_fd, procname, d->fd, ret_name, AT_SYMLINK_FOLLOW));
	if (err == -EEXIST) {
		snprintf(ret_name, size, "%" PRIu64 ".%" PRIu64, rec->nodeid,
			 atomic_fetch_add(&r->fs->orphan_seq, 1) + 1);
		err = RET_NERRNO(
		    linkat(r->fs->proc_self_fd, procname, d->fd, ret_name, AT_SYMLINK_FOLLOW));
	}
	if (err < 0) {
		vfsd_orphan_dir_unref(d);
		return fail(r, err, "inode %" PRIu64 ": hand-over link of orphan %s", rec->nodeid,
			    rec->orphan);
	}
	*ret_dir = d;
	return 0;
}

/* The restored parent directory of a NAME record (a reference), or -errno (r->error set). */
static int rec_parent(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
		      struct vfsd_inode **ret)
{
	struct vfsd_inode *p = vfsd_inode_table_get(r->inodes, rec->parent);

	if (!p)
		return fail(r, -EINVAL,
			    "inode %" PRIu64 ": parent %" PRIu64
			    " not restored before it (records must list parents first)",
			    rec->nodeid, rec->parent);
	if (p->invalid || p->type != S_IFDIR || p->fd < 0) {
		vfsd_inode_unref(p);
		return fail(r, -ENOENT, "inode %" PRIu64 ": parent %" PRIu64 " is %s", rec->nodeid,
			    rec->parent, p->invalid ? "invalid" : "not a directory");
	}
	if (p->nodeid == FUSE_ROOT_ID && strcmp(rec->name, VFSD_ORPHANS_DIR) == 0) {
		vfsd_inode_unref(p);
		return fail(r, -EINVAL, "inode %" PRIu64 ": reserved name", rec->nodeid);
	}
	*ret = p;
	return 0;
}

/* Open the inode a record describes; returns an O_PATH fd or -errno (r->error set). */
static int open_rec(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
		    unsigned int flags, struct vfsd_inode **ret_parent)
{
	struct vfsd_passthrough *fs = r->fs;
	struct vfsd_inode *p;
	int fd, top;

	if ((flags & VFSD_FS_RESTORE_BY_HANDLE) && rec->has_fh)
		return open_by_fh(r, rec);
	switch (rec->loc) {
	case VFSD_FS_LOC_NAME:
		fd = rec_parent(r, rec, &p);
		if (fd < 0)
			return fd;
		fd = pt_open_child(fs, p->fd, rec->name);
		if (fd < 0) {
			vfsd_inode_unref(p);
			return fail(r, fd, "inode %" PRIu64 ": open %s in %" PRIu64, rec->nodeid,
				    rec->name, rec->parent);
		}
		*ret_parent = p;
		return fd;
	case VFSD_FS_LOC_PATH:
		fd = pt_open_child(fs, fs->root_fd, rec->path);
		if (fd < 0)
			return fail(r, fd, "inode %" PRIu64 ": open path %s", rec->nodeid,
				    rec->path);
		return fd;
	case VFSD_FS_LOC_ORPHAN:
		pthread_mutex_lock(&fs->orphan_lock);
		top = pt_orphans_top(fs);
		pthread_mutex_unlock(&fs->orphan_lock);
		if (top < 0)
			return fail(r, top, "inode %" PRIu64 ": %s", rec->nodeid, VFSD_ORPHANS_DIR);
		fd = pt_open_child(fs, top, rec->orphan);
		if (fd < 0)
			return fail(r, fd, "inode %" PRIu64 ": open orphan %s", rec->nodeid,
				    rec->orphan);
		return fd;
	case VFSD_FS_LOC_NONE:
		return fail(r, -ENOENT,
			    "inode %" PRIu64 ": the source could not describe it (unlinked)",
			    rec->nodeid);
	default:
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad location %d", rec->nodeid,
			    (int)rec->loc);
	}
}

/* The record's own checks (a broken blob, not a changed disk: never lenient). */
static int check_rec(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec)
{
	if (rec->nodeid <= FUSE_ROOT_ID || rec->nodeid == UINT64_MAX)
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad node id", rec->nodeid);
	if (rec->type == 0 || (rec->type & ~(uint32_t)S_IFMT))
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad type %#o", rec->nodeid, rec->type);
	if (rec->has_fh && (rec->fh.size == 0 || rec->fh.size > VFSD_FS_HANDLE_MAX))
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad file handle", rec->nodeid);
	switch (rec->loc) {
	case VFSD_FS_LOC_NAME:
		if (!name_ok(rec->name))
			return fail(r, -EINVAL, "inode %" PRIu64 ": bad name", rec->nodeid);
		break;
	case VFSD_FS_LOC_PATH:
		if (!path_ok(rec->path, SIZE_MAX))
			return fail(r, -EINVAL, "inode %" PRIu64 ": bad path", rec->nodeid);
		break;
	case VFSD_FS_LOC_ORPHAN:
		if (!path_ok(rec->orphan, 2) || !strchr(rec->orphan, '/'))
			return fail(r, -EINVAL,
				    "inode %" PRIu64 ": bad orphan name (want <instance>/<name>)",
				    rec->nodeid);
		break;
	case VFSD_FS_LOC_NONE:
		break;
	case VFSD_FS_LOC_ROOT:
	default:
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad location %d", rec->nodeid,
			    (int)rec->loc);
	}
	return 0;
}

static int restore_root(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
			unsigned int flags)
{
	struct vfsd_fs_file_handle fh;

	if (rec->nodeid != FUSE_ROOT_ID)
		return fail(r, -EINVAL, "inode %" PRIu64 ": only node id 1 is the root",
			    rec->nodeid);
	if ((flags & (VFSD_FS_RESTORE_VERIFY_HANDLE | VFSD_FS_RESTORE_BY_HANDLE)) && rec->has_fh &&
	    (fd_handle(r->fs->root_fd, &fh) < 0 || !same_handle(&fh, &rec->fh)))
		return fail(r, -ESTALE, "root: the shared directory is not the source's");
	return 0;
}

static int restore_inode_one(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
			     unsigned int flags)
{
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *parent = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct vfsd_orphan_dir *odir = NULL;
	char oname[48];
	struct stat st;
	bool by_name;
	int err;

	r->error[0] = '\0';
	if (rec->loc == VFSD_FS_LOC_ROOT || rec->nodeid == FUSE_ROOT_ID)
		return restore_root(r, rec, flags);
	err = check_rec(r, rec);
	if (err < 0)
		return err;

	/*
	 * A file (not a directory: those are every child's dirfd) that has a
	 * name is found by that name and restored without an fd; its first
	 * use opens it (inode_table.h, "fd budget"). One fstatat instead of
	 * an open, an fstat and, for most, a close at the next reset.
	 */
	by_name = rec->loc == VFSD_FS_LOC_NAME && rec->type != S_IFDIR &&
		  !((flags & VFSD_FS_RESTORE_BY_HANDLE) && rec->has_fh);
	if (by_name) {
		err = rec_parent(r, rec, &parent);
		if (err < 0)
			goto failed;
		err = find_child(r, parent, rec->name, &st);
		if (err < 0) {
			fail(r, err, "inode %" PRIu64 ": open %s in %" PRIu64, rec->nodeid,
			     rec->name, rec->parent);
			goto failed;
		}
	} else {
		fd = open_rec(r, rec, flags, &parent);
		if (fd < 0) {
			err = fd;
			goto failed;
		}
		err = RET_NERRNO(fstat(fd, &st));
		if (err < 0) {
			fail(r, err, "inode %" PRIu64 ": fstat", rec->nodeid);
			goto failed;
		}
	}
	if ((st.st_mode & S_IFMT) != rec->type) {
		err = fail(r, -ESTALE, "inode %" PRIu64 ": type %#o, the record says %#o",
			   rec->nodeid, st.st_mode & S_IFMT, rec->type);
		goto failed;
	}
	if ((flags & VFSD_FS_RESTORE_VERIFY_INO) && rec->has_ino &&
	    (uint64_t)st.st_ino != rec->ino) {
		err =
		    fail(r, -ESTALE, "inode %" PRIu64 ": host inode %" PRIu64 ", expected %" PRIu64,
			 rec->nodeid, (uint64_t)st.st_ino, rec->ino);
		goto failed;
	}
	if ((flags & VFSD_FS_RESTORE_VERIFY_HANDLE) && rec->has_fh) {
		struct vfsd_fs_file_handle fh;
		if ((by_name ? name_handle(parent->fd, rec->name, &fh) : fd_handle(fd, &fh)) < 0 ||
		    !same_handle(&fh, &rec->fh)) {
			err =
			    fail(r, -ESTALE, "inode %" PRIu64 ": file handle differs", rec->nodeid);
			goto failed;
		}
	}
	if (rec->loc == VFSD_FS_LOC_ORPHAN) {
		err = hand_over(r, rec, fd, &odir, oname, sizeof(oname));
		if (err < 0)
			goto failed;
	}

	if (odir)
		err = vfsd_inode_table_restore_at(r->inodes, rec->nodeid, fd, &st, rec->nlookup,
						  NULL, oname, odir);
	else if (parent)
		err = vfsd_inode_table_restore_at(r->inodes, rec->nodeid, fd, &st, rec->nlookup,
						  parent, rec->name, NULL);
	else
		err = vfsd_inode_table_restore_at(
		    r->inodes, rec->nodeid, fd, &st, rec->nlookup, NULL,
		    rec->loc == VFSD_FS_LOC_PATH ? rec->path : NULL, NULL);
	if (err < 0) {
		if (odir)
			(void)unlinkat(odir->fd, oname, 0);
		vfsd_orphan_dir_unref(odir);
		/* Duplicates are a broken blob: not lenient. */
		return fail(r, err, "inode %" PRIu64 ": insert (duplicate node id or host inode?)",
			    rec->nodeid);
	}
	vfsd_orphan_dir_unref(odir);
	TAKE_FD(fd);
	return 0;

failed:
	if (!(flags & VFSD_FS_RESTORE_LENIENT) || err == -EINVAL)
		return err;
	log_warn("migration: %s; inode %" PRIu64 " gives EIO to the guest", r->error, rec->nodeid);
	err = vfsd_inode_table_restore_invalid(r->inodes, rec->nodeid, rec->type, rec->nlookup);
	if (err < 0)
		return fail(r, err, "inode %" PRIu64 ": insert placeholder", rec->nodeid);
	r->n_invalid++;
	return 0;
}

/* Remember an inode restored with no lookups: the commit's sweep looks at these only. */
static int note_unlooked(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec)
{
	if (rec->nlookup != 0 || rec->nodeid == FUSE_ROOT_ID)
		return 0;
	if (r->n_unlooked == r->cap_unlooked) {
		size_t cap = r->cap_unlooked ? 2 * r->cap_unlooked : 64;
		uint64_t *v = realloc(r->unlooked, cap * sizeof(*v));

		if (!v)
			return fail(r, -ENOMEM, "inode %" PRIu64 ": out of memory", rec->nodeid);
		r->unlooked = v;
		r->cap_unlooked = cap;
	}
	r->unlooked[r->n_unlooked++] = rec->nodeid;
	return 0;
}

int vfsd_fs_restore_inode(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec,
			  unsigned int flags)
{
	int err = restore_inode_one(r, rec, flags);

	return err < 0 ? err : note_unlooked(r, rec);
}

int vfsd_fs_restore_placeholder(struct vfsd_fs_restore *r, const struct vfsd_fs_inode_rec *rec)
{
	int err;

	r->error[0] = '\0';
	if (rec->nodeid <= FUSE_ROOT_ID || rec->nodeid == UINT64_MAX)
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad node id", rec->nodeid);
	if (rec->type == 0 || (rec->type & ~(uint32_t)S_IFMT))
		return fail(r, -EINVAL, "inode %" PRIu64 ": bad type %#o", rec->nodeid, rec->type);
	err = vfsd_inode_table_restore_invalid(r->inodes, rec->nodeid, rec->type, rec->nlookup);
	if (err < 0)
		return fail(r, err, "inode %" PRIu64 ": insert placeholder (duplicate node id?)",
			    rec->nodeid);
	return note_unlooked(r, rec);
}

/*
 * Handles. The re-open is most of a handle's cost (an open, an fstat and an
 * fcntl: three system calls) and each is independent of the others, so
 * vfsd_fs_restore_handles() does the re-opens of a batch on several threads
 * and then puts the handles in, one by one and in record order, which keeps
 * the first failure the one reported and the tables single-threaded.
 */
struct handle_job {
	const struct vfsd_fs_handle_rec *rec;
	int fd;	   /* the re-opened fd, or -errno; -EBADF: not re-opened */
	bool seek; /* fd < 0 came from the seek to the directory cookie */
};

/* The guest's open flags a handle is re-opened with: creating ones never apply again. */
static uint32_t handle_gflags(const struct vfsd_fs_handle_rec *rec)
{
	return rec->flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC);
}

/* Whether @rec's handle fits inode @i: its re-open may go ahead. */
static bool handle_fits(const struct vfsd_fs_handle_rec *rec, const struct vfsd_inode *i)
{
	return !i->invalid && rec->is_dir == (i->type == S_IFDIR) &&
	       (rec->is_dir || i->type == S_IFREG);
}

/* A directory handle goes back to its cookie; takes @fd, returns it or -errno. */
static int handle_seek(struct handle_job *j, int fd)
{
	const struct vfsd_fs_handle_rec *rec = j->rec;
	int err;

	if (fd < 0 || !rec->is_dir || !rec->has_dir_offset)
		return fd;
	if (rec->dir_offset <= INT64_MAX && lseek(fd, (off_t)rec->dir_offset, SEEK_SET) >= 0)
		return fd;
	err = rec->dir_offset > INT64_MAX ? -EINVAL : -errno;
	safe_close(fd);
	j->seek = true;
	return err;
}

#define HANDLE_CHUNK 64 /* jobs a worker takes at a time: one io_uring submission */

/*
 * The parallel part for @n jobs: find each inode and re-open it (no tables
 * changed, no error text). Inodes held by name (most files after a load)
 * are opened in one io_uring submission on @ring; *@ring goes NULL if the
 * ring breaks.
 */
static void handle_chunk_open(struct vfsd_fs_restore *r, struct handle_job *jobs, size_t n,
			      struct io_uring **ring)
{
	struct vfsd_inode *held[HANDLE_CHUNK];
	const struct vfsd_inode *named[HANDLE_CHUNK];
	int flags[HANDLE_CHUNK], fds[HANDLE_CHUNK];
	size_t idx[HANDLE_CHUNK], nn = 0;

	for (size_t k = 0; k < n; k++) {
		struct handle_job *j = &jobs[k];
		const struct vfsd_fs_handle_rec *rec = j->rec;
		struct vfsd_inode *i = NULL;
		int oflags = rec->is_dir ? O_RDONLY | O_DIRECTORY : (int)handle_gflags(rec);

		held[k] = NULL;
		j->fd = -EBADF;
		if (rec->fh == 0 || rec->fh == UINT64_MAX ||
		    !(i = vfsd_inode_table_get(r->inodes, rec->nodeid)))
			continue; /* judged, with its reason, in record order */
		held[k] = i;
		if (!handle_fits(rec, i))
			continue;
		if (i->fd >= 0) {
			j->fd = handle_seek(j, pt_reopen_fd(r->fs, i->fd, oflags));
			continue;
		}
		named[nn] = i;
		flags[nn] = oflags;
		idx[nn++] = k;
	}
	if (nn && pt_inode_open_batch(r->inodes, *ring, named, flags, nn, fds) < 0 && *ring) {
		io_uring_queue_exit(*ring);
		*ring = NULL;
	}
	for (size_t m = 0; m < nn; m++)
		jobs[idx[m]].fd = handle_seek(&jobs[idx[m]], fds[m]);
	for (size_t k = 0; k < n; k++)
		vfsd_inode_unref(held[k]);
}

/* The sequential part: judge and insert, as one record of the blob. Takes j->fd. */
static int handle_job_finish(struct vfsd_fs_restore *r, struct handle_job *j, unsigned int flags)
{
	const struct vfsd_fs_handle_rec *rec = j->rec;
	_cleanup_(vfsd_inode_unrefp) struct vfsd_inode *i = NULL;
	_cleanup_close_ int fd = TAKE_FD(j->fd);
	uint32_t gflags = handle_gflags(rec);
	struct vfsd_handle *h;
	int err;

	r->error[0] = '\0';
	if (rec->fh == 0 || rec->fh == UINT64_MAX)
		return fail(r, -EINVAL, "handle %" PRIu64 ": bad fh", rec->fh);
	i = vfsd_inode_table_get(r->inodes, rec->nodeid);
	if (!i)
		return fail(r, -EINVAL, "handle %" PRIu64 ": inode %" PRIu64 " not restored",
			    rec->fh, rec->nodeid);
	if (i->invalid)
		err = fail(r, -EIO, "handle %" PRIu64 ": inode %" PRIu64 " is invalid", rec->fh,
			   rec->nodeid);
	else if (!handle_fits(rec, i))
		return fail(r, -EINVAL, "handle %" PRIu64 ": inode %" PRIu64 " has type %#o",
			    rec->fh, rec->nodeid, i->type);
	else if (fd < 0 && j->seek)
		err = fail(r, fd, "handle %" PRIu64 ": seek to %" PRIu64, rec->fh, rec->dir_offset);
	else if (fd < 0)
		err = fail(r, fd, "handle %" PRIu64 ": re-open", rec->fh);
	else
		err = 0;
	if (err < 0) {
		if (!(flags & VFSD_FS_RESTORE_LENIENT) || err == -EINVAL)
			return err;
		log_warn("migration: %s; handle %" PRIu64 " gives EIO to the guest", r->error,
			 rec->fh);
		fd = safe_close(fd);
		r->n_invalid++;
	}
	err = vfsd_handle_table_restore(r->handles, rec->fh, i, fd, gflags, rec->is_dir);
	if (err < 0)
		return fail(r, err, "handle %" PRIu64 ": insert (duplicate fh?)", rec->fh);
	TAKE_FD(fd);
	(void)vfsd_inode_table_pin(r->inodes, i);
	if (rec->is_dir && rec->has_dir_offset) {
		h = vfsd_handle_table_get(r->handles, rec->fh);
		if (h) {
			pthread_mutex_lock(&h->dir_lock);
			h->dir_pos = rec->dir_offset;
			h->dir_pos_valid = h->fd >= 0;
			pthread_mutex_unlock(&h->dir_lock);
			vfsd_handle_unref(h);
		}
	}
	return 0;
}

#define MAX_HANDLE_THREADS 8
#define RING_MIN	   256 /* handles in a batch for the re-opens to use io_uring */

struct handle_pool {
	struct vfsd_fs_restore *r;
	struct handle_job *jobs;
	size_t n;
	_Atomic size_t next;
};

static void *handle_worker(void *arg)
{
	struct handle_pool *p = arg;
	struct io_uring ring_s, *ring = NULL;
	size_t k;

	/*
	 * A ring of its own, for a batch big enough to pay for it: setting up
	 * the first ring of a thread costs about 0.4 ms here, about what
	 * 160 re-opens save by going through it.
	 */
	if (p->n >= RING_MIN && io_uring_queue_init(HANDLE_CHUNK, &ring_s, 0) == 0)
		ring = &ring_s;
	while ((k = atomic_fetch_add(&p->next, HANDLE_CHUNK)) < p->n)
		handle_chunk_open(p->r, &p->jobs[k], MIN((size_t)HANDLE_CHUNK, p->n - k), &ring);
	if (ring)
		io_uring_queue_exit(ring);
	return NULL;
}

int vfsd_fs_restore_handles(struct vfsd_fs_restore *r, const struct vfsd_fs_handle_rec *recs,
			    size_t n, unsigned int flags, unsigned int threads)
{
	_cleanup_free_ struct handle_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	struct handle_pool pool = { .r = r, .n = n };
	pthread_t tid[MAX_HANDLE_THREADS];
	size_t started = 0;
	int err = 0;

	r->error[0] = '\0';
	if (!jobs)
		return fail(r, -ENOMEM, "handles: out of memory");
	for (size_t k = 0; k < n; k++)
		jobs[k] = (struct handle_job){ .rec = &recs[k], .fd = -EBADF };
	pool.jobs = jobs;
	threads = MIN(threads, MAX_HANDLE_THREADS);
	for (; started + 1 < threads && (started + 2) * HANDLE_CHUNK <= n; started++)
		if (pthread_create(&tid[started], NULL, handle_worker, &pool) != 0)
			break; /* fewer helpers; this thread does the rest */
	handle_worker(&pool);
	for (size_t t = 0; t < started; t++)
		pthread_join(tid[t], NULL);

	for (size_t k = 0; k < n; k++) {
		if (err < 0) {
			safe_close(jobs[k].fd);
			continue;
		}
		err = handle_job_finish(r, &jobs[k], flags);
	}
	return err;
}

int vfsd_fs_restore_handle(struct vfsd_fs_restore *r, const struct vfsd_fs_handle_rec *rec,
			   unsigned int flags)
{
	return vfsd_fs_restore_handles(r, rec, 1, flags, 1);
}

int vfsd_fs_restore_counters(struct vfsd_fs_restore *r, uint64_t next_nodeid, uint64_t next_fh)
{
	int err;

	err = vfsd_inode_table_set_next_id(r->inodes, next_nodeid);
	if (err < 0)
		return fail(r, err, "next node id %" PRIu64 " is not above every restored one",
			    next_nodeid);
	err = vfsd_handle_table_set_next_fh(r->handles, next_fh);
	if (err < 0)
		return fail(r, err, "next fh %" PRIu64 " is not above every restored one", next_fh);
	return 0;
}

void vfsd_fs_restore_commit(struct vfsd_fs_restore *r)
{
	struct vfsd_passthrough *fs = r->fs;
	struct vfsd_inode_table *old_inodes = fs->inodes;
	struct vfsd_handle_table *old_handles = fs->handles;

	vfsd_inode_table_sweep_ids(r->inodes, r->unlooked, r->n_unlooked);
	fs->inodes = r->inodes;
	fs->handles = r->handles;
	/* Handles first: they hold inode references. Old orphans' names go with them. */
	vfsd_handle_table_free(old_handles);
	vfsd_inode_table_free(old_inodes);
	if (r->mount_fd >= 0)
		close(r->mount_fd);
	dirs_free(r);
	free(r->unlooked);
	free(r);
}

void vfsd_fs_restore_abort(struct vfsd_fs_restore *r)
{
	if (!r)
		return;
	vfsd_handle_table_free(r->handles);
	vfsd_inode_table_free(r->inodes);
	if (r->mount_fd >= 0)
		close(r->mount_fd);
	dirs_free(r);
	free(r->unlooked);
	free(r);
}
