/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: the validating reader.
 *
 * One line at a time: bytes come in 64 KiB reads, a line is assembled in a
 * buffer that may grow to limits.max_line and no further, and jsonline.c
 * parses that line alone (strict RFC 8259, UTF-8 validated, no duplicate
 * keys) into a flat token array; fields are looked up in it directly. Line
 * buffer, tokens and unescaped strings are reused from line to line, so
 * after the first few lines parsing allocates nothing. What stays is the
 * model, bounded by limits.max_inodes and limits.max_handles; nothing the
 * blob says (counts in the trailer, lengths) sizes an allocation.
 *
 * Every check reports a problem naming the line, the record kind, the field
 * and what was wrong. Without a report callback the first problem ends the
 * read; with one the reader keeps going wherever that is meaningful (a bad
 * record is skipped, or kept with what could be parsed so that later records
 * referring to it do not cascade into more reports) and stops only on what
 * makes the rest unreadable: an I/O error, an over-long line, a header it
 * cannot interpret, a limit. A model is handed out only when there was no
 * problem at all.
 */
#include "state-internal.h"

#include "jsonline.h"
#include "vfsd/util.h"

#include <stdio.h>
#include <string.h>

#define RBUF_SIZE (64 * 1024)

struct reader {
	vfsd_state_read_fn fn;
	void *opaque;
	struct vfsd_state_limits lim;
	vfsd_state_problem_fn report;
	void *userdata;
	struct vfsd_state_stats *stats;
	struct vfsd_state_error *err;

	unsigned int problems;
	int code;  /* of the first problem */
	bool stop; /* nothing more to look at (first problem, or fatal) */

	char *rbuf;
	size_t rlen, rpos;
	bool eof;
	char *line;
	size_t line_cap;
	uint64_t lineno;

	struct jl_parser jp; /* nesting: JL_MAX_DEPTH; records nest 2 deep, the rest is for later */
	struct vfsd_state *s;
	uint32_t crc;
	bool header_seen, session_seen, root_seen, trailer_seen;
	uint64_t records, inodes, handles;
	bool orphans, file_handles, lost; /* required features the header declared */
	/*
	 * Shortcuts past the id indexes: blobs list ids in ascending order
	 * and children next to each other, so a new id above every id so far
	 * cannot be a duplicate, and the parent is often the last one.
	 */
	uint64_t max_id;  /* the largest inode id in the model; 0: none */
	uint64_t fh_end;  /* the largest fh in the model + 1; 0: none */
	uint64_t last_id; /* the last inode inode_at() found ... */
	size_t last_pos;  /* ... and its position in s->inodes (s->brief when streaming) */

	/* Streaming (vfsd_state_read_opts.inode_cb): records go out, briefs stay. */
	int (*session_cb)(void *sink, const struct vfsd_state_session *ss);
	int (*inode_cb)(void *sink, const struct vfsd_state_inode *in);
	void *sink;
};

/* What later records need to know of an earlier inode. */
struct brief {
	enum vfsd_state_type type;
	enum vfsd_state_lost lost;
};

/* Record a problem; returns -EBADMSG so callers can "return problem(...)". */
_printf_(6, 7) static int problem(struct reader *rd, bool fatal, uint64_t line, const char *kind,
				  const char *field, const char *fmt, ...)
{
	struct vfsd_state_error e = { .code = -EBADMSG, .line = line };
	va_list ap;

	snprintf(e.kind, sizeof(e.kind), "%s", kind ? kind : "");
	snprintf(e.field, sizeof(e.field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(e.reason, sizeof(e.reason), fmt, ap);
	va_end(ap);
	if (rd->problems++ == 0) {
		rd->code = e.code;
		if (rd->err)
			*rd->err = e;
	}
	if (!rd->report || rd->report(&e, rd->userdata) || fatal)
		rd->stop = true;
	return -EBADMSG;
}

/* An I/O or allocation failure: not the blob's fault, always the end. */
static int failure(struct reader *rd, int code, const char *what)
{
	/* It wins over earlier blob problems: the caller must see it was not the blob. */
	rd->code = code;
	if (rd->problems++ == 0 && rd->err) {
		memset(rd->err, 0, sizeof(*rd->err));
		rd->err->code = code;
		snprintf(rd->err->reason, sizeof(rd->err->reason), "%s: %s", what, strerror(-code));
	}
	rd->stop = true;
	return code;
}

/*
 * Next line, without its newline; (*ret)[*ret_len] is that newline, so the
 * CRC takes line and newline in one go. A line that lies whole in the read
 * buffer is used in place; one that straddles reads is assembled in
 * rd->line. Returns 1 with a line, 0 at a clean EOF, -EBADMSG (truncated or
 * too long; reported) or -errno (I/O).
 */
static int next_line(struct reader *rd, const char **ret, size_t *ret_len)
{
	size_t len = 0;

	for (;;) {
		char *nl;
		size_t n, need;

		if (rd->rpos == rd->rlen) {
			ssize_t r;

			if (rd->eof)
				break;
			do
				r = rd->fn(rd->opaque, rd->rbuf, RBUF_SIZE);
			while (r == -EINTR);
			if (r < 0)
				return failure(rd, (int)r, "reading the blob");
			if (r == 0) {
				rd->eof = true;
				break;
			}
			rd->rlen = (size_t)r;
			rd->rpos = 0;
		}
		nl = memchr(rd->rbuf + rd->rpos, '\n', rd->rlen - rd->rpos);
		n = (nl ? (size_t)(nl - rd->rbuf) : rd->rlen) - rd->rpos;
		/* The limit counts the newline too. */
		if (len + n + 1 > rd->lim.max_line)
			return problem(rd, true, rd->lineno + 1, NULL, NULL,
				       "line longer than the limit of %zu bytes", rd->lim.max_line);
		if (nl && len == 0) {
			*ret = rd->rbuf + rd->rpos;
			*ret_len = n;
			rd->rpos += n + 1;
			rd->lineno++;
			return 1;
		}
		need = len + n + 1;
		if (need > rd->line_cap) {
			size_t cap = rd->line_cap ? rd->line_cap : 4096;
			char *p;

			while (cap < need)
				cap *= 2;
			cap = MIN(cap, rd->lim.max_line);
			p = realloc(rd->line, cap);
			if (!p)
				return failure(rd, -ENOMEM, "reading the blob");
			rd->line = p;
			rd->line_cap = cap;
		}
		memcpy(rd->line + len, rd->rbuf + rd->rpos, n);
		len += n;
		rd->rpos += n;
		if (nl) {
			rd->rpos++; /* the newline */
			rd->line[len] = '\n';
			rd->lineno++;
			*ret = rd->line;
			*ret_len = len;
			return 1;
		}
	}
	if (len > 0)
		return problem(rd, true, rd->lineno + 1, NULL, NULL,
			       "truncated: the blob ends inside this line (no newline)");
	return 0;
}

/* ---- typed field access ------------------------------------------------------------------ */

struct rec {
	struct reader *rd;
	const struct jl_tok *obj; /* a JL_OBJECT */
	const char *kind;
	const char *prefix; /* "fuse." for nested fields, else "" */
	bool bad;	    /* a problem was reported for this record */
};

static int rec_problem(struct rec *r, const char *key, const char *fmt, ...) _printf_(3, 4);

static int rec_problem(struct rec *r, const char *key, const char *fmt, ...)
{
	char field[64], reason[256];
	va_list ap;

	snprintf(field, sizeof(field), "%s%s", r->prefix, key ? key : "");
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	r->bad = true;
	return problem(r->rd, false, r->rd->lineno, r->kind, field, "%s", reason);
}

/* The value of @key in the record (or nested object), or NULL. */
static inline const struct jl_tok *member(const struct rec *r, const char *key)
{
	return jl_member(r->obj, key, strlen(key));
}

static bool has_key(const struct rec *r, const char *key)
{
	return member(r, key) != NULL;
}

/* Returns 1 present, 0 absent (reported when required), -EBADMSG wrong. */
static int get(struct rec *r, const char *key, bool required, enum jl_type type,
	       const struct jl_tok **ret)
{
	const struct jl_tok *v = member(r, key);

	if (!v) {
		if (required)
			return rec_problem(r, key, "missing");
		return 0;
	}
	if (v->type != type)
		return rec_problem(r, key, "must be %s, not %s",
				   type == JL_INT      ? "an integer"
				   : type == JL_STRING ? "a string"
				   : type == JL_BOOL   ? "true or false"
				   : type == JL_OBJECT ? "an object"
				   : type == JL_ARRAY  ? "an array"
						       : "something else",
				   jl_type_name(v->type));
	*ret = v;
	return 1;
}

/*
 * An unsigned integer up to @max. UINT64_MAX itself is out of range too:
 * the format has always said u64 fields take 0 .. 2^64-2 (json-c, which
 * read blobs before, turned any larger literal into 2^64-1), and the parser
 * saturates at it. "-0" is 0, as it was.
 */
static int get_uint(struct rec *r, const char *key, bool required, uint64_t max, uint64_t *ret)
{
	const struct jl_tok *v;
	int k = get(r, key, required, JL_INT, &v);

	if (k <= 0)
		return k;
	if (v->neg && v->u != 0)
		return rec_problem(r, key, "must not be negative");
	if (v->u > max || v->u == UINT64_MAX)
		return rec_problem(r, key, "out of range (at most %llu)",
				   (unsigned long long)(max == UINT64_MAX ? max - 1 : max));
	*ret = v->u;
	return 1;
}

static int get_bool(struct rec *r, const char *key, bool required, bool *ret)
{
	const struct jl_tok *v;
	int k = get(r, key, required, JL_BOOL, &v);

	if (k > 0)
		*ret = v->b;
	return k;
}

/* A string without NUL bytes (JSON allows "\u0000"); NUL-terminated. */
static int get_str(struct rec *r, const char *key, bool required, const char **ret, size_t *len)
{
	const struct jl_tok *v;
	int k = get(r, key, required, JL_STRING, &v);

	if (k <= 0)
		return k;
	*ret = v->s;
	*len = v->n;
	if (memchr(v->s, 0, v->n))
		return rec_problem(r, key, "contains a NUL character");
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case too: one spelling, so a flipped case bit cannot pass */
}

/* Lower-case hex of 1..@max bytes into @out (which has room for @max + 1). */
static int get_hex(struct rec *r, const char *key, bool required, size_t max, uint8_t *out,
		   size_t *ret_len)
{
	const char *s;
	size_t len;
	int k = get_str(r, key, required, &s, &len);

	if (k <= 0)
		return k;
	if (len == 0 || len % 2 || len / 2 > max)
		return rec_problem(r, key, "must be 2 to %zu lower-case hex digits, even, not %zu",
				   2 * max, len);
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return rec_problem(r, key, "not lower-case hex at offset %zu", i);
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	out[len / 2] = 0;
	*ret_len = len / 2;
	return 1;
}

/* A file name, as "<key>" (UTF-8) or "<hexkey>" (any bytes); one of them. */
static int get_name(struct rec *r, const char *key, const char *hexkey, char **ret)
{
	char buf[VFSD_STATE_NAME_MAX + 1];
	const char *s = NULL;
	size_t len = 0;
	int a, b;

	a = get_str(r, key, false, &s, &len);
	if (a < 0)
		return a;
	if (a > 0 && len > VFSD_STATE_NAME_MAX)
		return rec_problem(r, key, "%zu bytes long, more than %d", len,
				   VFSD_STATE_NAME_MAX);
	b = get_hex(r, hexkey, false, VFSD_STATE_NAME_MAX, (uint8_t *)buf, &len);
	if (b < 0)
		return b;
	if (a > 0 && b > 0)
		return rec_problem(r, hexkey, "both %s and %s given", key, hexkey);
	if (a == 0 && b == 0)
		return 0;
	if (b > 0)
		s = buf;
	if (!state_name_ok(s, len))
		return rec_problem(r, b > 0 ? hexkey : key,
				   "not a file name (empty, '.', '..', or contains '/' or NUL)");
	*ret = strndup(s, len);
	if (!*ret)
		return failure(r->rd, -ENOMEM, "reading the blob");
	return 1;
}

/* A relative path, as "path" (UTF-8) or "path_hex" (any bytes); one of them. */
static int get_path(struct rec *r, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	const char *s = NULL;
	size_t len = 0;
	int a, b;

	a = get_str(r, "path", false, &s, &len);
	if (a < 0)
		return a;
	if (a > 0 && len > VFSD_STATE_PATH_MAX)
		return rec_problem(r, "path", "%zu bytes long, more than %d", len,
				   VFSD_STATE_PATH_MAX);
	if (has_key(r, "path_hex")) {
		buf = malloc(VFSD_STATE_PATH_MAX + 1);
		if (!buf)
			return failure(r->rd, -ENOMEM, "reading the blob");
	}
	b = buf ? get_hex(r, "path_hex", false, VFSD_STATE_PATH_MAX, (uint8_t *)buf, &len) : 0;
	if (b < 0)
		return b;
	if (a > 0 && b > 0)
		return rec_problem(r, "path_hex", "both path and path_hex given");
	if (a == 0 && b == 0)
		return 0;
	if (b > 0)
		s = buf;
	if (!state_path_ok(s, len))
		return rec_problem(r, b > 0 ? "path_hex" : "path",
				   "not a relative path (leading '/', an empty, '.' or '..' "
				   "component, a component over %d bytes, or a NUL)",
				   VFSD_STATE_NAME_MAX);
	*ret = strndup(s, len);
	if (!*ret)
		return failure(r->rd, -ENOMEM, "reading the blob");
	return 1;
}

/* ---- records ----------------------------------------------------------------------------- */

static int features(struct rec *r, const char *key, bool required)
{
	struct vfsd_state_header *h = &r->rd->s->header;
	const struct jl_tok *arr, *v;
	size_t n;
	int k = get(r, key, true, JL_ARRAY, &arr);

	if (k <= 0)
		return k;
	n = arr->n;
	if (n > VFSD_STATE_MAX_FEATURES)
		return rec_problem(r, key, "%zu features, more than %d", n,
				   VFSD_STATE_MAX_FEATURES);
	v = arr + 1;
	for (size_t i = 0; i < n; i++, v = jl_next(v)) {
		const char *name = v->s;

		if (v->type != JL_STRING || !state_feature_ok(name, v->n))
			return rec_problem(r, key,
					   "entry %zu is not a feature name ([a-z0-9-]{1,63})", i);
		if (required && strcmp(name, VFSD_STATE_FEATURE_ORPHANS) != 0 &&
		    strcmp(name, VFSD_STATE_FEATURE_FILE_HANDLES) != 0 &&
		    strcmp(name, VFSD_STATE_FEATURE_LOST) != 0) {
			r->bad = true;
			return problem(r->rd, true, r->rd->lineno, r->kind, key,
				       "unknown required feature '%s': this reader cannot apply "
				       "the blob without understanding it",
				       name);
		}
		/* Defined by 1.1: a 1.0 blob cannot use it (1.0 writers left such inodes out). */
		if (required && h->minor < 1 && strcmp(name, VFSD_STATE_FEATURE_LOST) == 0)
			rec_problem(r, key,
				    "required feature '%s' is defined by version 1.1, the header "
				    "says %u.%u",
				    name, h->major, h->minor);
		vfsd_state_header_add_feature(h, required, name);
	}
	return 1;
}

static void do_header(struct rec *r)
{
	struct reader *rd = r->rd;
	struct vfsd_state_header *h = &rd->s->header;
	const char *s;
	size_t len;
	unsigned int major, minor;
	int n = 0;

	memset(h, 0, sizeof(*h));
	if (get_str(r, "format", true, &s, &len) > 0 && strcmp(s, VFSD_STATE_FORMAT) != 0) {
		problem(rd, true, rd->lineno, r->kind, "format",
			"not a vfsd-state blob (format is not \"" VFSD_STATE_FORMAT "\")");
		return;
	}
	if (rd->stop)
		return;
	if (get_str(r, "version", true, &s, &len) > 0) {
		if (sscanf(s, "%5u.%5u%n", &major, &minor, &n) != 2 || (size_t)n != len ||
		    s[0] < '0' || s[0] > '9') {
			problem(rd, true, rd->lineno, r->kind, "version",
				"\"%.32s\" is not MAJOR.MINOR", s);
			return;
		}
		if (major != VFSD_STATE_MAJOR) {
			problem(rd, true, rd->lineno, r->kind, "version",
				"unsupported major version %u (this reader reads %d.x)", major,
				VFSD_STATE_MAJOR);
			return;
		}
		h->major = major;
		h->minor = minor;
	}
	if (rd->stop)
		return;
	if (get_str(r, "producer", true, &s, &len) > 0) {
		if (len >= sizeof(h->producer))
			rec_problem(r, "producer", "longer than %zu bytes",
				    sizeof(h->producer) - 1);
		else
			memcpy(h->producer, s, len + 1);
	}
	if (!rd->stop)
		features(r, "required_features", true);
	if (!rd->stop)
		features(r, "optional_features", false);
	rd->orphans = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_ORPHANS);
	rd->file_handles = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_FILE_HANDLES);
	rd->lost = vfsd_state_header_has_feature(h, true, VFSD_STATE_FEATURE_LOST);
}

/* The first location field of an inode record, or NULL (a lost record has none). */
static const char *location_key(const struct rec *r)
{
	static const char *const keys[] = { "parent",	"name",	  "name_hex",	"path",
					    "path_hex", "orphan", "orphan_hex", "file_handle" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (has_key(r, keys[i]))
			return keys[i];
	return NULL;
}

static void do_session(struct rec *r)
{
	struct reader *rd = r->rd;
	struct vfsd_state_session ss = { 0 };
	const struct jl_tok *fuse;
	const char *mode;
	size_t len;
	uint64_t v;

	if (rd->session_seen) {
		rec_problem(r, NULL, "a second session record");
		return;
	}
	if (rd->records > 1) { /* this one is counted already */
		rec_problem(r, NULL, "the session must be the first record after the header");
		return;
	}
	rd->session_seen = true;
	get_bool(r, "initialized", true, &ss.initialized);
	if (get(r, "fuse", ss.initialized, JL_OBJECT, &fuse) > 0 && ss.initialized) {
		struct rec f = { .rd = rd, .obj = fuse, .kind = r->kind, .prefix = "fuse." };

		if (get_uint(&f, "major", true, UINT32_MAX, &v) > 0) {
			ss.fuse_major = (uint32_t)v;
			if (v != 7)
				rec_problem(&f, "major", "FUSE major version %llu, not 7",
					    (unsigned long long)v);
		}
		if (get_uint(&f, "minor", true, UINT32_MAX, &v) > 0)
			ss.fuse_minor = (uint32_t)v;
		get_uint(&f, "flags", true, UINT64_MAX, &ss.fuse_flags);
		if (get_uint(&f, "max_write", true, UINT32_MAX, &v) > 0)
			ss.max_write = (uint32_t)v;
		if (get_uint(&f, "max_readahead", true, UINT32_MAX, &v) > 0)
			ss.max_readahead = (uint32_t)v;
		r->bad |= f.bad;
	}
	if (get_uint(r, "next_nodeid", true, UINT64_MAX, &ss.next_nodeid) > 0 && ss.next_nodeid < 2)
		rec_problem(r, "next_nodeid", "must be at least 2 (1 is the root)");
	get_uint(r, "next_fh", true, UINT64_MAX, &ss.next_fh);
	if (get_str(r, "migration_mode", true, &mode, &len) > 0) {
		if (strcmp(mode, "find-paths") == 0)
			ss.mode = VFSD_STATE_MODE_FIND_PATHS;
		else if (strcmp(mode, "file-handles") == 0)
			ss.mode = VFSD_STATE_MODE_FILE_HANDLES;
		else
			rec_problem(r, "migration_mode",
				    "must be \"find-paths\" or \"file-handles\"");
	}
	rd->s->session = ss;
	rd->s->has_session = !r->bad;
	if (r->bad)
		rd->s->session.next_nodeid = rd->s->session.next_fh = 0; /* no range checks */
	else if (rd->session_cb && !rd->problems) {
		int e = rd->session_cb(rd->sink, &ss);

		if (e < 0)
			failure(rd, e, "applying the state");
	}
}

static struct brief brief_at(const struct reader *rd, size_t pos)
{
	if (rd->inode_cb)
		return (struct brief){ .type = rd->s->brief[pos] & 0xf,
				       .lost = rd->s->brief[pos] >> 4 };
	return (struct brief){ .type = rd->s->inodes[pos].type, .lost = rd->s->inodes[pos].lost };
}

/* The earlier inode @id into *@ret; false: there is none. */
static bool inode_at(struct reader *rd, uint64_t id, struct brief *ret)
{
	ssize_t i;

	/* the model only grows, so a position stays right (0 is never an id) */
	if (id == rd->last_id && id) {
		*ret = brief_at(rd, rd->last_pos);
		return true;
	}
	if (id > rd->max_id || (i = index_find(rd->s->inode_index, id)) < 0)
		return false;
	rd->last_id = id;
	rd->last_pos = (size_t)i;
	*ret = brief_at(rd, (size_t)i);
	return true;
}

/* Keep @in: in the model, or, streaming, hand it to the sink and keep its brief. */
static int keep_inode(struct reader *rd, struct vfsd_state_inode *in)
{
	struct vfsd_state *s = rd->s;
	int r;

	if (!rd->inode_cb)
		return state_take_inode(s, in);
	r = state_grow((void **)&s->brief, &s->cap_brief, s->n_streamed, 1);
	if (r == 0)
		r = index_put(&s->inode_index, in->id, s->n_streamed);
	if (r < 0)
		return r;
	s->brief[s->n_streamed++] = (uint8_t)(in->type | in->lost << 4);
	/* Only a blob with no problem so far is applied; the read fails anyway otherwise. */
	return rd->problems ? 0 : rd->inode_cb(rd->sink, in);
}

static void do_inode(struct rec *r)
{
	struct reader *rd = r->rd;
	const struct vfsd_state_session *ss = &rd->s->session;
	struct vfsd_state_inode in = { 0 };
	uint8_t fh[VFSD_STATE_HANDLE_MAX + 1];
	struct brief p;
	const struct jl_tok *fho;
	const char *type, *lost, *loc;
	size_t len;
	bool id_ok = false, lost_key;
	int k;

	if (rd->inodes++ >= rd->lim.max_inodes) {
		problem(rd, true, rd->lineno, r->kind, NULL, "more than %llu inodes (the limit)",
			(unsigned long long)rd->lim.max_inodes);
		return;
	}
	if (get_uint(r, "id", true, UINT64_MAX, &in.id) > 0) {
		if (in.id == 0)
			rec_problem(r, "id", "0 is not a node id");
		else if (in.id == 1 && rd->root_seen)
			rec_problem(r, "id", "duplicate id 1 (the root)");
		else if (in.id != 1 && !rd->root_seen)
			rec_problem(r, "id", "the first inode must be the root (id 1), not %llu",
				    (unsigned long long)in.id);
		else if (ss->next_nodeid && in.id >= ss->next_nodeid)
			rec_problem(r, "id", "%llu is not below the session's next_nodeid %llu",
				    (unsigned long long)in.id, (unsigned long long)ss->next_nodeid);
		else if (in.id <= rd->max_id && index_find(rd->s->inode_index, in.id) >= 0)
			rec_problem(r, "id", "duplicate id %llu", (unsigned long long)in.id);
		else
			id_ok = true;
		if (in.id == 1)
			rd->root_seen = true;
	}
	get_uint(r, "nlookup", true, UINT64_MAX, &in.nlookup);
	if (get_str(r, "type", true, &type, &len) > 0) {
		for (size_t t = 1; t < ARRAY_SIZE(state_type_names); t++)
			if (strcmp(type, state_type_names[t]) == 0)
				in.type = (enum vfsd_state_type)t;
		if (in.type == VFSD_STATE_T_UNKNOWN)
			rec_problem(r, "type",
				    "\"%.32s\" is not one of dir, reg, lnk, chr, blk, "
				    "fifo, sock",
				    type);
	}
	lost_key = has_key(r, "lost");
	if (get_str(r, "lost", false, &lost, &len) > 0) {
		if (strcmp(lost, "unlinked") == 0)
			in.lost = VFSD_STATE_LOST_UNLINKED;
		else if (strcmp(lost, "not-found") == 0)
			in.lost = VFSD_STATE_LOST_NOT_FOUND;
		else
			rec_problem(r, "lost", "\"%.32s\" is not one of unlinked, not-found", lost);
	}
	if (rd->stop)
		goto out;

	k = get_uint(r, "parent", false, UINT64_MAX, &in.parent);
	if (get_name(r, "name", "name_hex", &in.name) < 0 || rd->stop)
		goto out;
	if (in.id == 1) {
		if (in.parent || in.name || has_key(r, "parent"))
			rec_problem(r, in.name ? "name" : "parent",
				    "the root has no parent and no name");
		if (in.type != VFSD_STATE_T_DIR && in.type != VFSD_STATE_T_UNKNOWN)
			rec_problem(r, "type", "the root must be a directory");
	} else if (k > 0 && !in.name) {
		rec_problem(r, "name", "missing (parent is given)");
	} else if (k == 0 && in.name) {
		rec_problem(r, "parent", "missing (name is given)");
	} else if (k > 0) {
		if (in.parent == in.id) {
			rec_problem(r, "parent", "%llu is the inode itself",
				    (unsigned long long)in.parent);
		} else if (!inode_at(rd, in.parent, &p)) {
			rec_problem(
			    r, "parent",
			    "dangling parent %llu: no inode with that id earlier in the blob",
			    (unsigned long long)in.parent);
		} else if (p.lost) {
			rec_problem(r, "parent",
				    "parent %llu is lost: a lost inode has no children in the blob",
				    (unsigned long long)in.parent);
		} else if (p.type != VFSD_STATE_T_DIR && p.type != VFSD_STATE_T_UNKNOWN) {
			rec_problem(r, "parent", "parent %llu is a %s, not a directory",
				    (unsigned long long)in.parent, vfsd_state_type_name(p.type));
		}
	}
	if (get_path(r, &in.path) > 0 && in.id == 1)
		rec_problem(r, "path", "the root has no path");
	if (rd->stop)
		goto out;
	if (get_name(r, "orphan", "orphan_hex", &in.orphan) > 0 && !rd->orphans)
		rec_problem(r, "orphan", "used without \"orphans\" in required_features");
	if (rd->stop)
		goto out;
	if (get_uint(r, "ino", false, UINT64_MAX, &in.ino) > 0)
		in.has_ino = true;
	if (get(r, "file_handle", false, JL_OBJECT, &fho) > 0) {
		struct rec f = { .rd = rd, .obj = fho, .kind = r->kind, .prefix = "file_handle." };
		uint64_t v;
		size_t n;

		if (get_uint(&f, "type", true, INT32_MAX, &v) > 0)
			in.fh_type = (int32_t)v;
		if (get_hex(&f, "handle", true, VFSD_STATE_HANDLE_MAX, fh, &n) > 0) {
			in.fh_bytes = malloc(n);
			if (!in.fh_bytes) {
				failure(rd, -ENOMEM, "reading the blob");
				goto out;
			}
			memcpy(in.fh_bytes, fh, n);
			in.fh_size = (uint32_t)n;
		}
		get_uint(&f, "mnt_id", true, UINT64_MAX, &in.mnt_id);
		in.has_file_handle = !f.bad;
		r->bad |= f.bad;
	}
	if (lost_key) {
		/* Lost (1.1): kept under its id, with no location at all. */
		bool bad = true;

		if (!rd->lost)
			rec_problem(r, "lost", "used without \"lost\" in required_features");
		else if (in.id == 1)
			rec_problem(r, "lost", "the root cannot be lost");
		else if ((loc = location_key(r)))
			rec_problem(r, "lost",
				    "a lost inode has no location, but this record has \"%s\"",
				    loc);
		else
			bad = false;
		if (bad) /* reported: its children are not reported again for it */
			in.lost = VFSD_STATE_LOST_NONE;
	} else if (in.id != 1 && k == 0 && !in.name && !has_key(r, "orphan") &&
		   !has_key(r, "orphan_hex") && !has_key(r, "path") && !has_key(r, "path_hex")) {
		/* No parent + name, no path: the orphan name or the handle must locate it. */
		if (!has_key(r, "file_handle"))
			rec_problem(r, "parent",
				    "missing: an inode needs parent and name, a path, an orphan "
				    "name, or a file_handle");
		else if (!rd->file_handles)
			rec_problem(r, "file_handle",
				    "an inode located by file handle only needs \"file-handles\" "
				    "in required_features");
	}
out:
	if (rd->stats && (unsigned)in.lost < ARRAY_SIZE(rd->stats->lost))
		rd->stats->lost[in.lost]++;
	/*
	 * Keep an inode whose id is sound even when another field is not, so
	 * its children and handles are checked against it rather than each
	 * reported as dangling; the model is not handed out anyway.
	 */
	if (id_ok && !rd->stop) {
		uint64_t id = in.id;
		int e = keep_inode(rd, &in);

		if (e < 0)
			failure(rd, e, e == -ENOMEM ? "reading the blob" : "applying the state");
		else
			rd->max_id = MAX(rd->max_id, id);
	}
	state_inode_clear(&in);
}

static void do_handle(struct rec *r)
{
	struct reader *rd = r->rd;
	const struct vfsd_state_session *ss = &rd->s->session;
	struct vfsd_state_handle h = { 0 };
	struct brief in;
	bool fh_ok = false, in_ok = false;
	uint64_t v;

	if (rd->handles++ >= rd->lim.max_handles) {
		problem(rd, true, rd->lineno, r->kind, NULL, "more than %llu handles (the limit)",
			(unsigned long long)rd->lim.max_handles);
		return;
	}
	if (get_uint(r, "fh", true, UINT64_MAX, &h.fh) > 0) {
		if (ss->next_nodeid && h.fh >= ss->next_fh)
			rec_problem(r, "fh", "%llu is not below the session's next_fh %llu",
				    (unsigned long long)h.fh, (unsigned long long)ss->next_fh);
		else if (h.fh < rd->fh_end && index_find(rd->s->handle_index, h.fh) >= 0)
			rec_problem(r, "fh", "duplicate fh %llu", (unsigned long long)h.fh);
		else
			fh_ok = true;
	}
	if (get_uint(r, "inode", true, UINT64_MAX, &h.inode) > 0 &&
	    !(in_ok = inode_at(rd, h.inode, &in)))
		rec_problem(r, "inode", "no inode %llu earlier in the blob",
			    (unsigned long long)h.inode);
	if (get_uint(r, "flags", true, UINT32_MAX, &v) > 0)
		h.flags = (uint32_t)v;
	if (get_bool(r, "dir", true, &h.dir) > 0 && h.dir && in_ok && in.type != VFSD_STATE_T_DIR &&
	    in.type != VFSD_STATE_T_UNKNOWN)
		rec_problem(r, "dir", "a directory handle on inode %llu, which is a %s",
			    (unsigned long long)h.inode, vfsd_state_type_name(in.type));
	if (get_uint(r, "dir_offset", false, UINT64_MAX, &h.dir_offset) > 0) {
		h.has_dir_offset = true;
		if (!h.dir)
			rec_problem(r, "dir_offset", "only directory handles have one");
	}
	if (fh_ok && !rd->stop) {
		if (state_push_handle(rd->s, &h) < 0)
			failure(rd, -ENOMEM, "reading the blob");
		else
			rd->fh_end = MAX(rd->fh_end, h.fh + 1);
	}
}

static void do_trailer(struct rec *r)
{
	struct reader *rd = r->rd;
	const char *sum;
	size_t len;
	uint64_t v;
	char want[32];

	rd->trailer_seen = true;
	if (get_uint(r, "records", true, UINT64_MAX, &v) > 0 && v != rd->records)
		rec_problem(r, "records", "the trailer says %llu records, the blob has %llu",
			    (unsigned long long)v, (unsigned long long)rd->records);
	if (get_uint(r, "inodes", true, UINT64_MAX, &v) > 0 && v != rd->inodes)
		rec_problem(r, "inodes", "the trailer says %llu inodes, the blob has %llu",
			    (unsigned long long)v, (unsigned long long)rd->inodes);
	if (get_uint(r, "handles", true, UINT64_MAX, &v) > 0 && v != rd->handles)
		rec_problem(r, "handles", "the trailer says %llu handles, the blob has %llu",
			    (unsigned long long)v, (unsigned long long)rd->handles);
	snprintf(want, sizeof(want), "crc32c:%08x", rd->crc);
	if (get_str(r, "checksum", true, &sum, &len) > 0 && strcmp(sum, want) != 0)
		rec_problem(r, "checksum", "\"%.40s\" does not match the content (%s)", sum, want);
}

static void account(struct reader *rd, enum vfsd_state_kind k, size_t bytes)
{
	if (!rd->stats)
		return;
	rd->stats->records[k]++;
	rd->stats->bytes[k] += bytes;
}

static void do_line(struct reader *rd, const char *line, size_t len)
{
	struct rec r = { .rd = rd, .prefix = "" };
	enum vfsd_state_kind k = VFSD_STATE_K_OTHER;
	const struct jl_tok *kind;
	bool trailer = false;
	int e;

	bool is_header = !rd->header_seen;

	if (rd->trailer_seen) {
		problem(rd, true, rd->lineno, NULL, NULL, "data after the trailer");
		return;
	}
	rd->header_seen = true;
	if (is_header) {
		r.kind = "header";
		k = VFSD_STATE_K_HEADER;
	}
	if (len == 0) {
		problem(rd, false, rd->lineno, r.kind, NULL, "empty line");
		goto out;
	}
	e = jl_parse(&rd->jp, line, len);
	if (e == -ENOMEM) {
		failure(rd, e, "reading the blob");
		goto out;
	}
	if (e < 0 && rd->jp.dup) {
		/* Readers that keep the first or the last one would disagree about the blob. */
		problem(
		    rd, false, rd->lineno, r.kind, NULL,
		    "duplicate key \"%.*s\" (byte %zu): a key may appear only once in an object",
		    (int)MIN(rd->jp.dup_len, (size_t)64), rd->jp.dup, rd->jp.err_off);
		goto out;
	}
	if (e < 0) {
		problem(rd, false, rd->lineno, r.kind, NULL, "not one JSON object: %s (byte %zu)",
			rd->jp.why, rd->jp.err_off);
		goto out;
	}
	r.obj = &rd->jp.tok[0];
	if (r.obj->type != JL_OBJECT) {
		problem(rd, false, rd->lineno, r.kind, NULL, "a %s, not a JSON object",
			jl_type_name(r.obj->type));
		goto out;
	}
	if (is_header) {
		do_header(&r);
		goto out;
	}
	kind = member(&r, "kind");
	if (!kind || kind->type != JL_STRING) {
		problem(rd, false, rd->lineno, NULL, "kind", "missing or not a string");
		goto out;
	}
	if (memchr(kind->s, 0, kind->n)) {
		problem(rd, false, rd->lineno, NULL, "kind", "contains a NUL character");
		goto out;
	}
	r.kind = kind->s;
	if (strcmp(r.kind, "trailer") == 0) {
		trailer = true;
		k = VFSD_STATE_K_TRAILER;
		do_trailer(&r);
		goto out;
	}
	rd->records++;
	if (strcmp(r.kind, "session") == 0) {
		k = VFSD_STATE_K_SESSION;
		do_session(&r);
		goto out;
	}
	if (!rd->session_seen) {
		/* Reported once; later records are still checked, without id ranges. */
		rd->session_seen = true;
		problem(rd, false, rd->lineno, r.kind, NULL,
			"no session record before the first %s", r.kind);
	}
	if (strcmp(r.kind, "inode") == 0) {
		k = VFSD_STATE_K_INODE;
		do_inode(&r);
	} else if (strcmp(r.kind, "handle") == 0) {
		k = VFSD_STATE_K_HANDLE;
		do_handle(&r);
	} else if (!vfsd_state_header_has_feature(&rd->s->header, false, r.kind)) {
		problem(rd, false, rd->lineno, r.kind, "kind",
			"unknown record kind \"%.32s\" (not listed in optional_features)", r.kind);
	}
out:
	if (!trailer)
		rd->crc = vfsd_crc32c(rd->crc, line, len + 1); /* with its newline */
	account(rd, k, len + 1);
}

int vfsd_state_read_ex(vfsd_state_read_fn fn, void *opaque, const struct vfsd_state_read_opts *opts,
		       struct vfsd_state **ret, struct vfsd_state_error *err)
{
	struct reader rd = { .fn = fn, .opaque = opaque, .err = err };
	int r;

	if (err)
		memset(err, 0, sizeof(*err));
	vfsd_state_limits_default(&rd.lim);
	if (opts) {
		if (opts->limits.max_line)
			rd.lim.max_line = opts->limits.max_line;
		if (opts->limits.max_inodes)
			rd.lim.max_inodes = opts->limits.max_inodes;
		if (opts->limits.max_handles)
			rd.lim.max_handles = opts->limits.max_handles;
		rd.report = opts->report;
		rd.userdata = opts->userdata;
		rd.session_cb = opts->session_cb;
		rd.inode_cb = opts->inode_cb;
		rd.sink = opts->sink;
		rd.stats = opts->stats;
		if (rd.stats)
			memset(rd.stats, 0, sizeof(*rd.stats));
	}
	rd.lim.max_line = MAX(rd.lim.max_line, (size_t)2);
	rd.lim.max_line = MIN(rd.lim.max_line, (size_t)INT32_MAX); /* token offsets are 32-bit */
	jl_init(&rd.jp);
	rd.rbuf = malloc(RBUF_SIZE);
	r = vfsd_state_new(&rd.s);
	if (!rd.rbuf || r < 0) {
		failure(&rd, -ENOMEM, "reading the blob");
		goto out;
	}
	memset(&rd.s->header, 0, sizeof(rd.s->header));

	while (!rd.stop) {
		const char *line = NULL;
		size_t len = 0;

		r = next_line(&rd, &line, &len);
		if (r <= 0)
			break;
		if (rd.stats)
			rd.stats->total_bytes += len + 1;
		do_line(&rd, line, len);
	}
	if (!rd.stop && !rd.trailer_seen) {
		if (rd.lineno == 0)
			problem(&rd, true, 1, NULL, NULL, "empty: no header");
		else
			problem(&rd, true, rd.lineno + 1, NULL, NULL,
				"truncated: no trailer after line %llu",
				(unsigned long long)rd.lineno);
	}
	if (!rd.stop && !rd.session_seen)
		problem(&rd, false, rd.lineno, "session", NULL, "no session record");
out:
	free(rd.rbuf);
	free(rd.line);
	jl_free(&rd.jp);
	if (rd.problems) {
		vfsd_state_free(rd.s);
		return rd.code ? rd.code : -EBADMSG;
	}
	if (ret)
		*ret = rd.s;
	else
		vfsd_state_free(rd.s);
	return 0;
}

static ssize_t fd_read(void *opaque, void *buf, size_t len)
{
	return RET_NERRNO(read((int)(intptr_t)opaque, buf, len));
}

int vfsd_state_read(int fd, const struct vfsd_state_limits *limits, struct vfsd_state **ret,
		    struct vfsd_state_error *err)
{
	struct vfsd_state_read_opts o = { 0 };

	if (limits)
		o.limits = *limits;
	return vfsd_state_read_ex(fd_read, (void *)(intptr_t)fd, &o, ret, err);
}

struct memsrc {
	const uint8_t *p;
	size_t left;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct memsrc *m = opaque;
	size_t n = MIN(len, m->left);

	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (ssize_t)n;
}

int vfsd_state_read_mem(const void *buf, size_t len, const struct vfsd_state_limits *limits,
			struct vfsd_state **ret, struct vfsd_state_error *err)
{
	struct memsrc m = { buf, len };
	struct vfsd_state_read_opts o = { 0 };

	if (limits)
		o.limits = *limits;
	return vfsd_state_read_ex(mem_read, &m, &o, ret, err);
}

char *vfsd_state_error_format(const struct vfsd_state_error *e, char *buf, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return buf;
	buf[0] = 0;
#define APPEND(...)                                                                                \
	do {                                                                                       \
		int _m = snprintf(buf + n, size - n, __VA_ARGS__);                                 \
		if (_m > 0)                                                                        \
			n = MIN(size - 1, n + (size_t)_m);                                         \
	} while (0)
	if (e->line)
		APPEND("line %llu: ", (unsigned long long)e->line);
	if (e->kind[0])
		APPEND("%s: ", e->kind);
	if (e->field[0])
		APPEND("%s: ", e->field);
	APPEND("%s", e->reason);
#undef APPEND
	return buf;
}
