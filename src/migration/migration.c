/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration: the FUSE session <-> state blob (vfsd/migration.h,
 * docs/migration.md).
 *
 * Choices:
 *  - The hint (dirty logging on) starts vfsd_fs_prepare() in a thread; the
 *    control thread never waits for it except to start a new one. Logging
 *    off only marks the result unwanted. The save joins it; a save without
 *    a hint prepares synchronously (longer downtime, logged).
 *  - The header must declare "orphans" / "file-handles" / "lost" before
 *    the first record, so the save makes a cheap first pass over the inodes
 *    (locations, and file handles when the blob carries them; prepare has
 *    cached the expensive paths and the handles) to learn which it will
 *    use, then streams the records in a second pass. Both passes decide
 *    each inode with the same place(). "file-handles" is declared when the
 *    blob carries handles and some inode has no other location (it is then
 *    written handle-only).
 *  - An inode with no location and no usable handle is written as a lost
 *    record (format 1.1, "lost" declared): "unlinked" when the guest removed
 *    its last name through us and no orphan was kept, "not-found" for
 *    everything else (a stale name not found again, an orphan without a
 *    name, an inode that was already a placeholder). The handles on it go
 *    as usual. A lost directory is nobody's parent in the blob: an inode
 *    recorded by a name in it has no location either.
 *  - Only the second pass runs the confirm check (it costs an fstatat per
 *    name): a name that fails it and is not found again has no location
 *    only then, after a header without "lost" may have gone out. Such an
 *    inode (and one whose file type is unknown) is left out with a warning,
 *    with the handles on it, as format 1.0 did for every lost inode.
 *  - Destination: a lost inode becomes a placeholder under its id with its
 *    lookup count (vfsd_fs_restore_placeholder(): requests give EIO, FORGET
 *    works). Under --migration-on-error=abort a "not-found" one, or a
 *    handle on any lost one, fails the load; an "unlinked" one without
 *    handles is accepted: the guest removed it itself and can no longer
 *    reach it by name (a shell whose working directory was removed).
 *  - Orphans: the fs names them "<instance>/<name>" below .vfsd-orphans, the
 *    blob's "orphan" holds one name. The record also carries
 *    "path": ".vfsd-orphans/<instance>/<name>" (where it really is), from
 *    which the destination gets the source's instance directory back.
 *  - The load streams: each inode is re-found off to the side as soon as
 *    the reader has validated its record (past 1,024 inodes on an applier
 *    thread), the handles are re-opened once the whole blob, checksum
 *    included, checked out, and the commit happens under the session's
 *    write lock together with the INIT options. Any error before the commit
 *    changes nothing.
 */
#include "vfsd/migration.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vfsd/fs_migration.h"
#include "vfsd/util.h"

/* The fs's hidden orphan directory in the root (reserved, see vfsd/passthrough.h). */
#define ORPHANS_DIR ".vfsd-orphans"

struct vfsd_migration {
	struct vfsd_migration_config cfg;
	struct vfsd_passthrough *fs;
	struct vfsd_fuse_session *session;

	/* the prepare thread */
	pthread_mutex_t join_lock; /* serialises starting and joining it */
	pthread_t prep_thread;
	bool prep_started; /* created and not joined (join_lock) */
	pthread_mutex_t lock;
	bool prep_running; /* in its loop (lock) */
	bool prep_again;   /* logging went on again while it ran: run once more (lock) */
	bool prep_wanted;  /* logging is on: its result is wanted (lock) */
	bool prep_valid;   /* a prepare finished while wanted (lock) */
	uint64_t prep_ns;  /* how long the last one took */

	char error[512];
	struct vfsd_migration_stats stats;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int set_error(struct vfsd_migration *m, int err, const char *fmt, ...) _printf_(3, 4);
static int set_error(struct vfsd_migration *m, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
	return err;
}

const char *vfsd_migration_last_error(const struct vfsd_migration *m)
{
	return m->error;
}

void vfsd_migration_last_stats(const struct vfsd_migration *m, struct vfsd_migration_stats *ret)
{
	*ret = m->stats;
}

static bool with_handles(const struct vfsd_migration *m)
{
	return m->cfg.mode == VFSD_STATE_MODE_FILE_HANDLES || m->cfg.verify_handles;
}

static unsigned int prepare_flags(const struct vfsd_migration *m)
{
	return with_handles(m) ? VFSD_FS_COLLECT_HANDLES : 0;
}

int vfsd_migration_new(const struct vfsd_migration_config *cfg, struct vfsd_passthrough *fs,
		       struct vfsd_fuse_session *session, struct vfsd_migration **ret)
{
	struct vfsd_migration *m;

	if (!fs || !session ||
	    (cfg && cfg->mode != VFSD_STATE_MODE_FIND_PATHS &&
	     cfg->mode != VFSD_STATE_MODE_FILE_HANDLES))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (cfg)
		m->cfg = *cfg;
	if (!m->cfg.limits.max_line || !m->cfg.limits.max_inodes || !m->cfg.limits.max_handles) {
		struct vfsd_state_limits d;

		vfsd_state_limits_default(&d);
		if (!m->cfg.limits.max_line)
			m->cfg.limits.max_line = d.max_line;
		if (!m->cfg.limits.max_inodes)
			m->cfg.limits.max_inodes = d.max_inodes;
		if (!m->cfg.limits.max_handles)
			m->cfg.limits.max_handles = d.max_handles;
	}
	m->fs = fs;
	m->session = session;
	pthread_mutex_init(&m->join_lock, NULL);
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

/* ---- prepare (the hint) ---------------------------------------------------------------- */

static void *prep_main(void *arg)
{
	struct vfsd_migration *m = arg;

	for (;;) {
		uint64_t t0 = now_ns();
		int r = vfsd_fs_prepare(m->fs, prepare_flags(m));
		uint64_t ns = now_ns() - t0;

		pthread_mutex_lock(&m->lock);
		m->prep_ns = ns;
		if (r < 0)
			log_warn("migration: preparing the state failed (%s); the save will do it",
				 strerror(-r));
		else
			log_debug("migration: state prepared in %" PRIu64 " us", ns / 1000);
		if (m->prep_again && m->prep_wanted) {
			m->prep_again = false;
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		m->prep_valid = r == 0 && m->prep_wanted;
		m->prep_running = false;
		pthread_mutex_unlock(&m->lock);
		return NULL;
	}
}

/* Wait for the prepare thread (if any); returns whether a wanted prepare completed. */
static bool prep_join(struct vfsd_migration *m)
{
	bool valid;

	pthread_mutex_lock(&m->join_lock);
	if (m->prep_started) {
		pthread_join(m->prep_thread, NULL);
		m->prep_started = false;
	}
	pthread_mutex_lock(&m->lock);
	valid = m->prep_valid;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&m->join_lock);
	return valid;
}

void vfsd_migration_logging_changed(struct vfsd_migration *m, bool on)
{
	sigset_t all, old;
	bool running;
	int r;

	pthread_mutex_lock(&m->join_lock);
	pthread_mutex_lock(&m->lock);
	m->prep_wanted = on;
	m->prep_valid = false;
	running = m->prep_running;
	if (on && running)
		m->prep_again = true; /* the names may have changed since it started */
	if (!on) {
		m->prep_again = false;
		log_info("migration: cancelled (dirty logging off); the source keeps serving");
	}
	pthread_mutex_unlock(&m->lock);
	if (!on || running)
		goto out;
	if (m->prep_started) { /* finished: reap it */
		pthread_join(m->prep_thread, NULL);
		m->prep_started = false;
	}
	pthread_mutex_lock(&m->lock);
	m->prep_running = true;
	m->prep_again = false;
	pthread_mutex_unlock(&m->lock);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&m->prep_thread, NULL, prep_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		log_warn("migration: cannot start the prepare thread (%s); the save will prepare",
			 strerror(-r));
		pthread_mutex_lock(&m->lock);
		m->prep_running = false;
		pthread_mutex_unlock(&m->lock);
		goto out;
	}
	m->prep_started = true;
	log_info("migration: starting (dirty logging on): preparing the state in the background");
out:
	pthread_mutex_unlock(&m->join_lock);
}

void vfsd_migration_free(struct vfsd_migration *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->prep_wanted = false;
	m->prep_again = false;
	pthread_mutex_unlock(&m->lock);
	prep_join(m);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->join_lock);
	free(m);
}

/* ---- save ------------------------------------------------------------------------------ */

static enum vfsd_state_type type_from_mode(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return VFSD_STATE_T_DIR;
	case S_IFREG:
		return VFSD_STATE_T_REG;
	case S_IFLNK:
		return VFSD_STATE_T_LNK;
	case S_IFCHR:
		return VFSD_STATE_T_CHR;
	case S_IFBLK:
		return VFSD_STATE_T_BLK;
	case S_IFIFO:
		return VFSD_STATE_T_FIFO;
	case S_IFSOCK:
		return VFSD_STATE_T_SOCK;
	}
	return VFSD_STATE_T_UNKNOWN;
}

static uint32_t mode_from_type(enum vfsd_state_type t)
{
	static const uint32_t modes[] = {
		[VFSD_STATE_T_DIR] = S_IFDIR,	[VFSD_STATE_T_REG] = S_IFREG,
		[VFSD_STATE_T_LNK] = S_IFLNK,	[VFSD_STATE_T_CHR] = S_IFCHR,
		[VFSD_STATE_T_BLK] = S_IFBLK,	[VFSD_STATE_T_FIFO] = S_IFIFO,
		[VFSD_STATE_T_SOCK] = S_IFSOCK,
	};

	return (size_t)t < ARRAY_SIZE(modes) ? modes[t] : 0;
}

/* A set of node ids (open addressing; 0 is never a node id). */
struct idset {
	uint64_t *slot;
	size_t mask, used; /* capacity - 1 (0: no table yet) */
};

static bool idset_has(const struct idset *s, uint64_t id)
{
	if (!s->slot)
		return false;
	for (size_t i = (id * 0x9e3779b97f4a7c15ull) >> 7 & s->mask;; i = (i + 1) & s->mask) {
		if (s->slot[i] == id)
			return true;
		if (s->slot[i] == 0)
			return false;
	}
}

static int idset_add(struct idset *s, uint64_t id)
{
	if (idset_has(s, id))
		return 0;
	if ((s->used + 1) * 2 > s->mask + 1) {
		struct idset n = { .mask = s->slot ? 2 * s->mask + 1 : 15 };

		n.slot = calloc(n.mask + 1, sizeof(*n.slot));
		if (!n.slot)
			return -ENOMEM;
		for (size_t i = 0; s->slot && i <= s->mask; i++)
			if (s->slot[i])
				(void)idset_add(&n, s->slot[i]);
		free(s->slot);
		*s = n;
	}
	for (size_t i = (id * 0x9e3779b97f4a7c15ull) >> 7 & s->mask;; i = (i + 1) & s->mask) {
		if (s->slot[i] == 0) {
			s->slot[i] = id;
			s->used++;
			return 0;
		}
	}
}

/*
 * How an inode goes into the blob; both passes decide it the same way, so
 * that the first one declares exactly the features the second one uses.
 */
struct placing {
	bool orphans;	   /* "orphans" is declared (the scan: will be, as it sees one) */
	bool handles;	   /* file handles go into the blob */
	struct idset gone; /* directories written without a location, or left out */
	char path[sizeof(ORPHANS_DIR) + 2 * VFSD_STATE_NAME_MAX + 2];
};

/*
 * Fill @in from @rec (strings borrowed from @rec and @p); returns whether
 * it has a location. A name in a directory that is itself written without
 * a location (or left out) is no location: a lost inode is nobody's parent.
 */
static bool place(struct placing *p, const struct vfsd_fs_inode_rec *rec,
		  struct vfsd_state_inode *in)
{
	bool located = true;
	const char *slash;

	*in = (struct vfsd_state_inode){
		.id = rec->nodeid,
		.nlookup = rec->nlookup,
		.type = type_from_mode(rec->type),
		.has_ino = rec->has_ino,
		.ino = rec->ino,
	};
	switch (rec->loc) {
	case VFSD_FS_LOC_ROOT:
		break;
	case VFSD_FS_LOC_NAME:
		if (idset_has(&p->gone, rec->parent)) {
			located = false;
			break;
		}
		in->parent = rec->parent;
		in->name = (char *)rec->name;
		break;
	case VFSD_FS_LOC_PATH:
		in->path = (char *)rec->path;
		break;
	case VFSD_FS_LOC_ORPHAN:
		slash = strchr(rec->orphan, '/');
		if (!p->orphans || !slash ||
		    snprintf(p->path, sizeof(p->path), "%s/%s", ORPHANS_DIR, rec->orphan) >=
			(int)sizeof(p->path)) {
			located = false;
			break;
		}
		in->orphan = (char *)(slash + 1);
		in->path = p->path;
		break;
	case VFSD_FS_LOC_NONE:
	default:
		located = rec->nodeid == FUSE_ROOT_ID;
		break;
	}
	if (p->handles && rec->has_fh) {
		in->has_file_handle = true;
		in->fh_type = rec->fh.type;
		in->fh_size = rec->fh.size;
		in->fh_bytes = (uint8_t *)rec->fh.bytes;
		in->mnt_id = rec->fh.mnt_id;
	}
	return located;
}

/* A directory that goes without a location: its children cannot name it. */
static int placed_nowhere(struct placing *p, const struct vfsd_state_inode *in)
{
	return in->type == VFSD_STATE_T_DIR ? idset_add(&p->gone, in->id) : 0;
}

struct scan {
	struct placing pl;
	uint64_t orphans, unlocated, lost;
};

static int scan_cb(void *userdata, const struct vfsd_fs_inode_rec *rec)
{
	struct scan *s = userdata;
	struct vfsd_state_inode in;
	bool located = place(&s->pl, rec, &in);

	if (in.type == VFSD_STATE_T_UNKNOWN)
		return 0; /* left out */
	if (rec->loc == VFSD_FS_LOC_ORPHAN)
		s->orphans++;
	if (located)
		return 0;
	s->unlocated++;
	/* Without another location the blob carries the handle ("file-handles"). */
	if (in.has_file_handle)
		return 0;
	s->lost++;
	return placed_nowhere(&s->pl, &in);
}

struct save {
	struct vfsd_migration *m;
	struct vfsd_state_writer *w;
	struct placing pl;
	bool handle_only, lost; /* "file-handles" and "lost" declared in the header */
	uint64_t *skipped;	/* node ids left out, in collect order then sorted */
	size_t n_skipped, cap_skipped;
};

static int skip_inode(struct save *s, const struct vfsd_state_inode *in)
{
	if (s->n_skipped == s->cap_skipped) {
		size_t cap = s->cap_skipped ? 2 * s->cap_skipped : 16;
		uint64_t *v = realloc(s->skipped, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->skipped = v;
		s->cap_skipped = cap;
	}
	s->skipped[s->n_skipped++] = in->id;
	return placed_nowhere(&s->pl, in);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int save_inode_cb(void *userdata, const struct vfsd_fs_inode_rec *rec)
{
	struct save *s = userdata;
	struct vfsd_state_inode in;
	bool located = place(&s->pl, rec, &in);
	int r;

	if (in.type == VFSD_STATE_T_UNKNOWN) {
		log_warn("migration: inode %" PRIu64 " has an unknown file type %#o: left out",
			 rec->nodeid, rec->type);
		return skip_inode(s, &in);
	}
	if (!located && !(in.has_file_handle && s->handle_only)) {
		if (!s->lost) {
			/*
			 * Located in the first pass, not now (a name that failed
			 * the confirm pass and was not found again, or the host
			 * changed in between): the header is out without "lost".
			 */
			log_warn("migration: inode %" PRIu64 " (%s) was found to have no location "
				 "only after the header was written: left out of the state with "
				 "its handles",
				 rec->nodeid, vfsd_fs_loc_name(rec->loc));
			return skip_inode(s, &in);
		}
		in.has_file_handle = false;
		in.lost = rec->unlinked ? VFSD_STATE_LOST_UNLINKED : VFSD_STATE_LOST_NOT_FOUND;
		log_warn("migration: inode %" PRIu64 " (%s, %s) has no location: saved as lost "
			 "(%s); the destination keeps its id, every request on it fails",
			 rec->nodeid, vfsd_state_type_name(in.type), vfsd_fs_loc_name(rec->loc),
			 vfsd_state_lost_name(in.lost));
		r = placed_nowhere(&s->pl, &in);
		if (r < 0)
			return r;
		s->m->stats.lost++;
	}
	s->m->stats.inodes++;
	return vfsd_state_writer_inode(s->w, &in);
}

static int save_handle_cb(void *userdata, const struct vfsd_fs_handle_rec *rec)
{
	struct save *s = userdata;
	struct vfsd_state_handle h = {
		.fh = rec->fh,
		.inode = rec->nodeid,
		.flags = rec->flags,
		.dir = rec->is_dir,
		.has_dir_offset = rec->is_dir && rec->has_dir_offset,
		.dir_offset = rec->dir_offset,
	};

	/* Handles on a lost inode go as usual; only those on a left-out one cannot. */
	if (s->n_skipped &&
	    bsearch(&rec->nodeid, s->skipped, s->n_skipped, sizeof(uint64_t), cmp_u64)) {
		log_warn("migration: handle %" PRIu64 " of inode %" PRIu64 " left out with it",
			 rec->fh, rec->nodeid);
		s->m->stats.skipped++;
		return 0;
	}
	s->m->stats.handles++;
	return vfsd_state_writer_handle(s->w, &h);
}

static void session_record(struct vfsd_migration *m, struct vfsd_state_session *ss)
{
	const struct vfsd_fuse_session *fs = m->session;

	memset(ss, 0, sizeof(*ss));
	ss->initialized = fs->initialized;
	if (fs->initialized) {
		ss->fuse_major = VFSD_FUSE_MAJOR;
		ss->fuse_minor = fs->conn.minor;
		ss->fuse_flags = fs->conn.flags;
		ss->max_write = fs->conn.max_write;
		ss->max_readahead = fs->conn.max_readahead;
	}
	vfsd_fs_counters(m->fs, &ss->next_nodeid, &ss->next_fh);
	ss->mode = m->cfg.mode;
}

/* Everything between the two passes and the trailer; the session's write lock is held. */
static int save_locked(struct vfsd_migration *m, struct save *s, vfsd_state_write_fn fn,
		       void *opaque)
{
	struct vfsd_state_header h;
	struct vfsd_state_session ss;
	struct scan scan = { .pl = { .orphans = true, .handles = with_handles(m) } };
	unsigned int handles = with_handles(m) ? VFSD_FS_COLLECT_HANDLES : 0;
	unsigned int flags = handles | (m->cfg.confirm_paths ? VFSD_FS_COLLECT_CONFIRM : 0);
	int r;

	/* Handles too (prepare cached them): an inode with one only is not lost. */
	r = vfsd_fs_collect_inodes(m->fs, handles, scan_cb, &scan);
	free(scan.pl.gone.slot);
	if (r < 0)
		return set_error(m, r, "scanning the inodes: %s", strerror(-r));
	s->pl.orphans = scan.orphans > 0;
	s->pl.handles = with_handles(m);
	s->handle_only = s->pl.handles && scan.unlocated > 0;
	s->lost = scan.lost > 0;

	vfsd_state_header_init(&h, NULL);
	if (s->pl.orphans)
		(void)vfsd_state_header_add_feature(&h, true, VFSD_STATE_FEATURE_ORPHANS);
	if (s->handle_only)
		(void)vfsd_state_header_add_feature(&h, true, VFSD_STATE_FEATURE_FILE_HANDLES);
	if (s->lost)
		(void)vfsd_state_header_add_feature(&h, true, VFSD_STATE_FEATURE_LOST);
	r = vfsd_state_writer_open_cb(fn, opaque, &h, &s->w);
	if (r < 0)
		return set_error(m, r, "header: %s", strerror(-r));
	session_record(m, &ss);
	r = vfsd_state_writer_session(s->w, &ss);
	if (r >= 0)
		r = vfsd_fs_collect_inodes(m->fs, flags, save_inode_cb, s);
	if (r >= 0 && s->n_skipped) {
		qsort(s->skipped, s->n_skipped, sizeof(uint64_t), cmp_u64);
		m->stats.skipped += s->n_skipped;
	}
	if (r >= 0)
		r = vfsd_fs_collect_handles(m->fs, save_handle_cb, s);
	m->stats.bytes = vfsd_state_writer_bytes(s->w);
	if (r < 0) {
		vfsd_state_writer_free(TAKE_PTR(s->w));
		return set_error(m, r, "writing the records: %s", strerror(-r));
	}
	r = vfsd_state_writer_close(TAKE_PTR(s->w));
	if (r < 0)
		return set_error(m, r, "writing the trailer: %s", strerror(-r));
	return 0;
}

int vfsd_migration_save_cb(struct vfsd_migration *m, vfsd_state_write_fn fn, void *opaque)
{
	struct save s = { .m = m };
	uint64_t t0 = now_ns(), t1;
	int r;

	m->error[0] = '\0';
	memset(&m->stats, 0, sizeof(m->stats));
	if (!prep_join(m)) {
		/* No hint (a snapshot, or logging never went on): prepare now, in the downtime. */
		log_info("migration: saving without a prepared state (no dirty-logging hint): "
			 "preparing now");
		r = vfsd_fs_prepare(m->fs, prepare_flags(m));
		if (r < 0)
			log_warn("migration: preparing the state: %s", strerror(-r));
	}
	t1 = now_ns();
	m->stats.prepare_ns = t1 - t0;

	/* The rings are stopped; the write lock also keeps INIT / resets out. */
	pthread_rwlock_wrlock(&m->session->lock);
	r = save_locked(m, &s, fn, opaque);
	pthread_rwlock_unlock(&m->session->lock);
	free(s.skipped);
	free(s.pl.gone.slot);
	m->stats.collect_ns = now_ns() - t1;

	if (r == -EPIPE) {
		log_error("migration: save abandoned: the reader closed the pipe (EPIPE; the "
			  "front-end gave up); nothing was changed, the session goes on");
		return r;
	}
	if (r < 0) {
		log_error("migration: save failed: %s; nothing was changed", m->error);
		return r;
	}
	log_info("migration: saved %" PRIu64 " inodes (%" PRIu64 " lost) and %" PRIu64
		 " handles (%" PRIu64 " bytes, %" PRIu64 " left out) in %" PRIu64 " us (+%" PRIu64
		 " us waiting for the prepare)",
		 m->stats.inodes, m->stats.lost, m->stats.handles, m->stats.bytes, m->stats.skipped,
		 m->stats.collect_ns / 1000, m->stats.prepare_ns / 1000);
	return 0;
}

static int fd_write(void *opaque, const void *buf, size_t len)
{
	return write_full(*(int *)opaque, buf, len);
}

int vfsd_migration_save(struct vfsd_migration *m, int fd)
{
	return vfsd_migration_save_cb(m, fd_write, &fd);
}

/* ---- load ------------------------------------------------------------------------------ */

/* The fs record for a model inode (strings borrowed from @in). */
static void inode_rec(const struct vfsd_state_inode *in, struct vfsd_fs_inode_rec *rec)
{
	static const char prefix[] = ORPHANS_DIR "/";

	memset(rec, 0, sizeof(*rec));
	rec->nodeid = in->id;
	rec->nlookup = in->nlookup;
	rec->type = mode_from_type(in->type);
	rec->has_ino = in->has_ino;
	rec->ino = in->ino;
	if (in->has_file_handle) {
		rec->has_fh = true;
		rec->fh.type = in->fh_type;
		rec->fh.size = in->fh_size;
		memcpy(rec->fh.bytes, in->fh_bytes, MIN(in->fh_size, sizeof(rec->fh.bytes)));
		rec->fh.mnt_id = in->mnt_id;
	}
	if (in->id == FUSE_ROOT_ID) {
		rec->loc = VFSD_FS_LOC_ROOT;
	} else if (in->orphan && in->path && strncmp(in->path, prefix, sizeof(prefix) - 1) == 0) {
		/* ".vfsd-orphans/<instance>/<name>": the fs wants "<instance>/<name>". */
		const char *o = in->path + sizeof(prefix) - 1, *slash = strchr(o, '/');

		if (slash && !strchr(slash + 1, '/') && strcmp(slash + 1, in->orphan) == 0) {
			rec->loc = VFSD_FS_LOC_ORPHAN;
			rec->orphan = o;
		} else {
			rec->loc = VFSD_FS_LOC_NONE;
		}
	} else if (in->parent && in->name) {
		rec->loc = VFSD_FS_LOC_NAME;
		rec->parent = in->parent;
		rec->name = in->name;
	} else if (in->path && strncmp(in->path, prefix, sizeof(prefix) - 1) != 0) {
		rec->loc = VFSD_FS_LOC_PATH;
		rec->path = in->path;
	} else {
		/* Handle only, or an orphan without the source's instance directory. */
		rec->loc = VFSD_FS_LOC_NONE;
	}
}

/* The session's INIT options must be ones this vfsd can serve. */
static int check_session(struct vfsd_migration *m, const struct vfsd_state_session *ss)
{
	if (!ss->initialized)
		return 0;
	if (ss->fuse_major != VFSD_FUSE_MAJOR || ss->fuse_minor < VFSD_FUSE_MIN_MINOR ||
	    ss->fuse_minor > FUSE_KERNEL_MINOR_VERSION)
		return set_error(m, -EPROTO,
				 "session: FUSE %" PRIu32 ".%" PRIu32
				 " is not a version this vfsd serves (7.%d to 7.%d)",
				 ss->fuse_major, ss->fuse_minor, VFSD_FUSE_MIN_MINOR,
				 FUSE_KERNEL_MINOR_VERSION);
	if (ss->max_write < 4096 || ss->max_write > VFSD_MAX_WRITE)
		return set_error(m, -EPROTO, "session: max_write %" PRIu32 " out of 4096..%u",
				 ss->max_write, VFSD_MAX_WRITE);
	return 0;
}

/*
 * Threads for re-opening @n handles: one per online CPU for a big batch. In
 * io_uring batches one thread re-opens about 1,000 files in 3 ms here, less
 * than a second thread and its ring cost to start and share the tables.
 */
static unsigned int restore_threads(size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2048 || cpus < 2)
		return 1;
	return (unsigned int)MIN(cpus, 64);
}

/*
 * Applying a state, in three steps so that a load can apply each inode as
 * the reader hands it over (streaming) and vfsd_migration_apply() can apply
 * a whole model: the session (checks, a restore begun off to the side),
 * each inode in blob order, then the handles, the counters and the commit.
 * Any failure before the commit throws the restore away: nothing changed.
 */
struct applier {
	struct vfsd_migration *m;
	struct vfsd_fs_restore *r; /* NULL until the session */
	unsigned int base;	   /* VFSD_FS_RESTORE_LENIENT under guest-error */
	bool by_handle;
	int err; /* streaming: the first step that failed (m->error says why), or 0 */
	uint64_t inodes, lost;
	uint64_t apply_ns;  /* time spent applying, on either thread */
	uint64_t inline_ns; /* of which on the reader's thread */
	struct vfsd_fs_inode_rec rec;
	struct pipeline *pipe; /* streaming: NULL while the reader applies inline */
};

static int apply_session(struct applier *a, const struct vfsd_state_session *ss)
{
	struct vfsd_migration *m = a->m;
	int err = check_session(m, ss);

	if (err < 0)
		return err;
	a->base = m->cfg.on_error_guest_error ? VFSD_FS_RESTORE_LENIENT : 0;
	a->by_handle = ss->mode == VFSD_STATE_MODE_FILE_HANDLES;
	err = vfsd_fs_restore_begin(m->fs, &a->r);
	if (err < 0)
		return set_error(m, err, "starting the restore: %s", strerror(-err));
	return 0;
}

static int apply_inode(struct applier *a, const struct vfsd_state_inode *in)
{
	struct vfsd_migration *m = a->m;
	struct vfsd_fs_inode_rec *rec = &a->rec;
	unsigned int flags = a->base;
	int err;

	inode_rec(in, rec);
	a->inodes++;
	if (in->lost) {
		/*
		 * The source could not locate it: a placeholder keeps the id and
		 * the lookups (FORGET works, requests fail). Under abort only for
		 * one the guest removed itself, unless a handle on it is still
		 * open (checked with the handles).
		 */
		if (!m->cfg.on_error_guest_error && in->lost != VFSD_STATE_LOST_UNLINKED)
			return set_error(m, -ENOENT, "inode %" PRIu64 ": lost on the source (%s)",
					 in->id, vfsd_state_lost_name(in->lost));
		err = vfsd_fs_restore_placeholder(a->r, rec);
		if (err < 0)
			return set_error(m, err, "%s", vfsd_fs_restore_error(a->r));
		a->lost++;
		return 0;
	}
	if (rec->has_fh && (a->by_handle || rec->loc == VFSD_FS_LOC_NONE))
		flags |= VFSD_FS_RESTORE_BY_HANDLE;
	else if (rec->has_fh) /* find-paths with handles: the source asked to verify */
		flags |= VFSD_FS_RESTORE_VERIFY_HANDLE;
	err = vfsd_fs_restore_inode(a->r, rec, flags);
	if (err < 0)
		return set_error(m, err, "%s", vfsd_fs_restore_error(a->r));
	return 0;
}

/* Handles, counters and the commit; @s has the session and the handles. */
static int apply_finish(struct applier *a, const struct vfsd_state *s)
{
	struct vfsd_migration *m = a->m;
	_cleanup_free_ struct vfsd_fs_handle_rec *hrecs = NULL;
	size_t old_inodes, old_handles;
	int err;

	hrecs = calloc(s->n_handles ? s->n_handles : 1, sizeof(*hrecs));
	if (!hrecs)
		return set_error(m, -ENOMEM, "out of memory");
	for (size_t k = 0; k < s->n_handles; k++) {
		const struct vfsd_state_handle *h = &s->handles[k];
		enum vfsd_state_lost lost;

		/* Open on a lost inode: the guest still uses it; lenient makes it EIO. */
		if (a->lost && !m->cfg.on_error_guest_error &&
		    (lost = vfsd_state_lost_of(s, h->inode)) != VFSD_STATE_LOST_NONE)
			return set_error(m, -ENOENT,
					 "handle %" PRIu64 ": its inode %" PRIu64 " is lost (%s)",
					 h->fh, h->inode, vfsd_state_lost_name(lost));
		hrecs[k] = (struct vfsd_fs_handle_rec){
			.fh = h->fh,
			.nodeid = h->inode,
			.flags = h->flags,
			.is_dir = h->dir,
			.has_dir_offset = h->has_dir_offset,
			.dir_offset = h->dir_offset,
		};
	}
	/* The device is stopped: every CPU can help re-open (the "in parallel" of the issue). */
	err = vfsd_fs_restore_handles(a->r, hrecs, s->n_handles, a->base,
				      restore_threads(s->n_handles));
	if (err < 0)
		return set_error(m, err, "%s", vfsd_fs_restore_error(a->r));
	err = vfsd_fs_restore_counters(a->r, s->session.next_nodeid, s->session.next_fh);
	if (err < 0)
		return set_error(m, err, "session: %s", vfsd_fs_restore_error(a->r));
	m->stats.invalid = vfsd_fs_restore_invalid_count(a->r);
	m->stats.lost = a->lost;
	m->stats.inodes = a->inodes;
	m->stats.handles = s->n_handles;

	/* The commit: no request runs (rings stopped); INIT and resets wait for the lock. */
	pthread_rwlock_wrlock(&m->session->lock);
	vfsd_passthrough_counts(m->fs, &old_inodes, &old_handles);
	vfsd_fs_restore_commit(TAKE_PTR(a->r));
	m->session->initialized = s->session.initialized;
	m->session->conn = (struct vfsd_fuse_conn){ 0 };
	if (s->session.initialized)
		m->session->conn = (struct vfsd_fuse_conn){
			.minor = s->session.fuse_minor,
			.flags = s->session.fuse_flags,
			.max_write = s->session.max_write,
			.max_readahead = s->session.max_readahead,
		};
	pthread_rwlock_unlock(&m->session->lock);
	if (old_inodes > 1 || old_handles > 0)
		log_info("migration: the loaded state replaced a session of %zu inodes besides the "
			 "root and %zu open handles",
			 old_inodes - 1, old_handles);
	return 0;
}

int vfsd_migration_apply(struct vfsd_migration *m, const struct vfsd_state *s)
{
	struct applier *a = calloc(1, sizeof(*a));
	uint64_t t0 = now_ns();
	int err;

	m->error[0] = '\0';
	if (!a)
		return set_error(m, -ENOMEM, "out of memory");
	a->m = m;
	if (!s->has_session)
		err = set_error(m, -EINVAL, "the state has no session");
	else
		err = apply_session(a, &s->session);
	for (size_t k = 0; err == 0 && k < s->n_inodes; k++)
		err = apply_inode(a, &s->inodes[k]);
	if (err == 0)
		err = apply_finish(a, s);
	vfsd_fs_restore_abort(a->r); /* NULL after a commit */
	free(a);
	m->stats.apply_ns = now_ns() - t0;
	return err;
}

/* Inodes between two heap prefaults (a power of two). */
#define PREFAULT_EVERY 1024

/* The streamed inode @in, with the applier's checks of what came before. */
static void apply_streamed(struct applier *a, const struct vfsd_state_inode *in)
{
	uint64_t t0 = now_ns();

	if (a->err < 0 || !a->r)
		return; /* failed already: the reason is kept, the blob still checked */
	/*
	 * About 400 bytes of heap an inode (its record, name, table slots, the
	 * reader's index): from the second batch on, fault in the next batch's
	 * share at once (small loads do not pay for a reserve they never use).
	 */
	if (a->inodes && (a->inodes & (PREFAULT_EVERY - 1)) == 0)
		vfsd_heap_prefault(PREFAULT_EVERY * 1024);
	a->err = apply_inode(a, in);
	a->apply_ns += now_ns() - t0;
}

/*
 * The pipeline. Reading and checking the blob and finding its inodes again
 * each take a large part of a big load, and the device is stopped: past the
 * first PIPE_AFTER inodes, the reader hands copies of the records to an
 * applier thread through a ring of PIPE_SLOTS, in blob order, so the two
 * run side by side on two CPUs. Memory stays bounded by the ring.
 */
#define PIPE_AFTER 1024
#define PIPE_SLOTS 1024
#define PIPE_BUF   640 /* a record's strings, inline; longer ones are malloc()ed */

struct pipe_slot {
	struct vfsd_state_inode in; /* its strings point into buf or heap */
	char *heap;
	char buf[PIPE_BUF];
};

struct pipeline {
	struct applier *a;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t head, tail; /* records put in, records applied (lock) */
	bool eof;	   /* no more records (lock) */
	bool waiting;	   /* a side sleeps on cond (lock) */
	struct pipe_slot slots[PIPE_SLOTS];
};

static void *pipe_main(void *arg)
{
	struct pipeline *p = arg;
	size_t tail = 0, head;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		p->tail = tail;
		if (p->waiting) {
			p->waiting = false;
			pthread_cond_broadcast(&p->cond);
		}
		while (p->head == tail && !p->eof) {
			p->waiting = true;
			pthread_cond_wait(&p->cond, &p->lock);
		}
		head = p->head;
		pthread_mutex_unlock(&p->lock);
		if (head == tail)
			break; /* eof and drained */
		for (; tail < head; tail++) {
			struct pipe_slot *sl = &p->slots[tail % PIPE_SLOTS];

			apply_streamed(p->a, &sl->in);
			free(TAKE_PTR(sl->heap));
		}
	}
	return NULL;
}

/* @len bytes of @s into the slot: its buffer from *@off, else its heap block. */
static char *slot_str(struct pipe_slot *sl, char **heap, size_t *off, const void *s, size_t len)
{
	char *d;

	if (!s)
		return NULL;
	if (*heap) {
		d = *heap;
		*heap += len;
	} else {
		d = sl->buf + *off;
		*off += len;
	}
	memcpy(d, s, len);
	return d;
}

/* Queue a copy of @in for the applier thread; false: out of memory. */
static bool pipe_put(struct pipeline *p, const struct vfsd_state_inode *in)
{
	size_t lens[4] = { in->name ? strlen(in->name) + 1 : 0, in->path ? strlen(in->path) + 1 : 0,
			   in->orphan ? strlen(in->orphan) + 1 : 0,
			   in->has_file_handle ? in->fh_size : 0 };
	size_t total = lens[0] + lens[1] + lens[2] + lens[3], off = 0;
	struct pipe_slot *sl;
	char *heap = NULL, *cur;

	if (total > PIPE_BUF && !(heap = malloc(total)))
		return false;
	pthread_mutex_lock(&p->lock);
	while (p->head - p->tail == PIPE_SLOTS) {
		p->waiting = true;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	/* The slot at head is ours until head moves past it. */
	sl = &p->slots[p->head % PIPE_SLOTS];
	sl->in = *in;
	sl->heap = cur = heap;
	sl->in.name = slot_str(sl, &cur, &off, in->name, lens[0]);
	sl->in.path = slot_str(sl, &cur, &off, in->path, lens[1]);
	sl->in.orphan = slot_str(sl, &cur, &off, in->orphan, lens[2]);
	sl->in.fh_bytes =
	    (uint8_t *)slot_str(sl, &cur, &off, in->has_file_handle ? in->fh_bytes : NULL, lens[3]);
	pthread_mutex_lock(&p->lock);
	p->head++;
	if (p->waiting) {
		p->waiting = false;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return true;
}

static void pipe_start(struct applier *a)
{
	struct pipeline *p = calloc(1, sizeof(*p));

	if (!p)
		return; /* the reader goes on applying inline */
	p->a = a;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, pipe_main, p) != 0) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p);
		return;
	}
	a->pipe = p;
}

/* No more records: let the applier drain the ring, and join it. */
static void pipe_stop(struct applier *a)
{
	struct pipeline *p = TAKE_PTR(a->pipe);

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->eof = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/*
 * Streaming callbacks. A failure to apply does not stop the read: the rest
 * of the blob is still checked, and a bad blob is reported as what it is
 * (a corrupted name is a checksum error, not a file that went missing).
 */
static int load_session_cb(void *sink, const struct vfsd_state_session *ss)
{
	struct applier *a = sink;
	uint64_t t0 = now_ns();

	a->err = apply_session(a, ss);
	a->apply_ns += now_ns() - t0;
	a->inline_ns += now_ns() - t0;
	return 0;
}

static int load_inode_cb(void *sink, const struct vfsd_state_inode *in)
{
	struct applier *a = sink;
	uint64_t t0;

	if (!a->pipe && a->inodes == PIPE_AFTER && a->err == 0 && a->r)
		pipe_start(a);
	if (a->pipe) {
		if (pipe_put(a->pipe, in))
			return 0;
		pipe_stop(a); /* out of memory: drain, then go on inline */
	}
	t0 = now_ns();
	apply_streamed(a, in);
	a->inline_ns += now_ns() - t0;
	return 0;
}

/*
 * The load streams: each inode is found again as soon as the reader has
 * validated its record, off to the side, so the blob is never held as a
 * model (memory is costly to touch in a VM) and finding overlaps reading.
 * The reader still checks the whole blob, trailer and checksum included,
 * before apply_finish() commits; a blob rejected on any later line, or an
 * inode not found, throws the restore away: nothing changed.
 */
int vfsd_migration_load_cb(struct vfsd_migration *m, vfsd_state_read_fn fn, void *opaque)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;
	_cleanup_free_ struct applier *a = calloc(1, sizeof(*a));
	struct vfsd_state_read_opts opts = {
		.limits = m->cfg.limits,
		.session_cb = load_session_cb,
		.inode_cb = load_inode_cb,
	};
	struct vfsd_state_error e = { 0 };
	char buf[512];
	uint64_t t0 = now_ns(), t1;
	int r;

	m->error[0] = '\0';
	memset(&m->stats, 0, sizeof(m->stats));
	if (!a)
		return set_error(m, -ENOMEM, "out of memory");
	a->m = m;
	opts.sink = a;
	/* A destination has no use for a prepare; make sure none runs under the commit. */
	pthread_mutex_lock(&m->lock);
	m->prep_wanted = false;
	m->prep_again = false;
	pthread_mutex_unlock(&m->lock);
	(void)prep_join(m);

	r = vfsd_state_read_ex(fn, opaque, &opts, &s, &e);
	/* Read and checked: the reader's own time, then wait for the applier. */
	m->stats.collect_ns = now_ns() - t0 - a->inline_ns;
	pipe_stop(a);
	t1 = now_ns();
	if (r < 0) {
		vfsd_fs_restore_abort(TAKE_PTR(a->r));
		if (r == -EBADMSG)
			set_error(m, r, "%s", vfsd_state_error_format(&e, buf, sizeof(buf)));
		else
			set_error(m, r, "reading the state: %s%s%s", strerror(-r),
				  e.reason[0] ? ": " : "", e.reason);
		log_error("migration: state rejected, nothing changed: %s", m->error);
		return r;
	}
	r = a->err < 0 ? a->err : apply_finish(a, s);
	vfsd_fs_restore_abort(TAKE_PTR(a->r)); /* NULL after a commit */
	m->stats.apply_ns = a->apply_ns + (now_ns() - t1);
	if (r < 0) {
		log_error("migration: state not applied (%s), nothing changed: %s",
			  m->cfg.on_error_guest_error ? "inconsistent records"
						      : "--migration-on-error=abort",
			  m->error);
		return r;
	}
	log_info("migration: loaded %" PRIu64 " inodes (%" PRIu64 " lost) and %" PRIu64
		 " handles (%s session%s); read+validate %" PRIu64 " us, re-open+commit %" PRIu64
		 " us",
		 m->stats.inodes, m->stats.lost, m->stats.handles,
		 s->session.initialized ? "initialised" : "uninitialised",
		 m->stats.invalid || m->stats.lost ? ", some inodes give EIO" : "",
		 m->stats.collect_ns / 1000, m->stats.apply_ns / 1000);
	if (m->stats.lost)
		log_warn("migration: %" PRIu64 " inodes were lost on the source (no location): "
			 "they keep their ids and lookup counts as placeholders that give EIO",
			 m->stats.lost);
	if (m->stats.invalid)
		log_warn("migration: %" PRIu64 " inodes or handles could not be found and give "
			 "EIO to the guest (--migration-on-error=guest-error)",
			 m->stats.invalid);
	return 0;
}

static ssize_t fd_read(void *opaque, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(*(int *)opaque, buf, len);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

int vfsd_migration_load(struct vfsd_migration *m, int fd)
{
	return vfsd_migration_load_cb(m, fd_read, &fd);
}
