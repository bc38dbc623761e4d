/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the state blob: round trips, the bad-blob catalogue, golden
 * blobs from tests/data/, limits and migration-stream extraction.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vfsd/state.h"
#include "vfsd/util.h"

/* ---- helpers ------------------------------------------------------------------------------- */

struct membuf {
	char *p;
	size_t len, cap;
};

static int mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len + 1 > m->cap) {
		m->cap = (m->len + len + 1) * 2;
		m->p = realloc(m->p, m->cap);
		cr_assert_not_null(m->p);
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	m->p[m->len] = 0;
	return 0;
}

static const uint8_t fh8[8] = { 1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd };

/* A model with every kind of inode and handle the format knows. */
static struct vfsd_state *build_model(void)
{
	struct vfsd_state *s;
	const struct vfsd_state_inode inodes[] = {
		{ .id = 1, .nlookup = 1, .type = VFSD_STATE_T_DIR, .has_ino = true, .ino = 2 },
		{ .id = 2, .nlookup = 3, .type = VFSD_STATE_T_DIR, .parent = 1, .name = "a" },
		{ .id = 3,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_REG,
		  .parent = 2,
		  .name = "f.txt",
		  .has_ino = true,
		  .ino = 1234 },
		{ .id = 4, .nlookup = 1, .type = VFSD_STATE_T_DIR, .parent = 1, .name = "b c" },
		{ .id = 5, .nlookup = 2, .type = VFSD_STATE_T_LNK, .parent = 4, .name = "link" },
		{ .id = 6, .nlookup = 0, .type = VFSD_STATE_T_REG, .orphan = "6" },
		{ .id = 7,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_REG,
		  .has_file_handle = true,
		  .fh_type = 1,
		  .fh_size = 8,
		  .fh_bytes = (uint8_t *)fh8,
		  .mnt_id = 42 },
		{ .id = 8,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_FIFO,
		  .parent = 4,
		  .name = "\xff\xfe" },
		{ .id = 9,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_SOCK,
		  .parent = 2,
		  .name = "we\"ird\\\n\t\x01",
		  .orphan = "9",
		  .has_file_handle = true,
		  .fh_type = 0x4d,
		  .fh_size = 1,
		  .fh_bytes = (uint8_t *)fh8 },
		{ .id = 12,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_CHR,
		  .parent = 1,
		  .name = "\xc3\xa9t\xc3\xa9" },
		{ .id = 13,
		  .nlookup = 1,
		  .type = VFSD_STATE_T_DIR,
		  .lost = VFSD_STATE_LOST_UNLINKED,
		  .has_ino = true,
		  .ino = 77 },
		{ .id = 14,
		  .nlookup = 3,
		  .type = VFSD_STATE_T_REG,
		  .lost = VFSD_STATE_LOST_NOT_FOUND },
	};
	const struct vfsd_state_handle handles[] = {
		{ .fh = 0, .inode = 3, .flags = O_RDWR | O_APPEND },
		{ .fh = 1,
		  .inode = 2,
		  .flags = O_RDONLY | O_DIRECTORY,
		  .dir = true,
		  .has_dir_offset = true,
		  .dir_offset = 0x7fffffffffffffffull },
		{ .fh = 5, .inode = 6, .flags = O_WRONLY },
		{ .fh = 6, .inode = 7, .flags = O_RDONLY },
		{ .fh = 7, .inode = 1, .dir = true },
		{ .fh = 8, .inode = 14, .flags = O_RDWR },
		{ .fh = 9, .inode = 13, .dir = true, .has_dir_offset = true, .dir_offset = 5 },
	};

	cr_assert_eq(vfsd_state_new(&s), 0);
	vfsd_state_header_init(&s->header, "test 1");
	cr_assert_eq(vfsd_state_header_add_feature(&s->header, true, "orphans"), 0);
	cr_assert_eq(vfsd_state_header_add_feature(&s->header, true, "file-handles"), 0);
	cr_assert_eq(vfsd_state_header_add_feature(&s->header, true, "lost"), 0);
	s->has_session = true;
	s->session = (struct vfsd_state_session){ .initialized = true,
						  .fuse_major = 7,
						  .fuse_minor = 38,
						  .fuse_flags = 0x1234567890ull,
						  .max_write = 1 << 20,
						  .max_readahead = 128 << 10,
						  .next_nodeid = 15,
						  .next_fh = 10,
						  .mode = VFSD_STATE_MODE_FIND_PATHS };
	for (size_t i = 0; i < ARRAY_SIZE(inodes); i++)
		cr_assert_eq(vfsd_state_add_inode(s, &inodes[i]), 0);
	for (size_t i = 0; i < ARRAY_SIZE(handles); i++)
		cr_assert_eq(vfsd_state_add_handle(s, &handles[i]), 0);
	return s;
}

static char *encode(const struct vfsd_state *s, size_t *len)
{
	struct membuf m = { 0 };

	cr_assert_eq(vfsd_state_write_cb(s, mem_write, &m), 0);
	*len = m.len;
	return m.p;
}

static bool streq0(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void assert_same(const struct vfsd_state *a, const struct vfsd_state *b)
{
	cr_assert_eq(a->header.major, b->header.major);
	cr_assert_eq(a->header.minor, b->header.minor);
	cr_assert_str_eq(a->header.producer, b->header.producer);
	cr_assert_eq(a->header.n_required, b->header.n_required);
	for (size_t i = 0; i < a->header.n_required; i++)
		cr_assert_str_eq(a->header.required[i], b->header.required[i]);
	cr_assert_eq(a->header.n_optional, b->header.n_optional);
	cr_assert_eq(memcmp(&a->session, &b->session, sizeof(a->session)), 0);
	cr_assert_eq(a->n_inodes, b->n_inodes);
	for (size_t i = 0; i < a->n_inodes; i++) {
		const struct vfsd_state_inode *x = &a->inodes[i], *y = &b->inodes[i];

		cr_assert_eq(x->id, y->id);
		cr_assert_eq(x->nlookup, y->nlookup);
		cr_assert_eq(x->type, y->type);
		cr_assert_eq(x->parent, y->parent);
		cr_assert(streq0(x->name, y->name), "inode %llu name", (unsigned long long)x->id);
		cr_assert(streq0(x->orphan, y->orphan));
		cr_assert(streq0(x->path, y->path), "inode %llu path", (unsigned long long)x->id);
		cr_assert_eq(x->lost, y->lost, "inode %llu lost", (unsigned long long)x->id);
		cr_assert_eq(x->has_ino, y->has_ino);
		cr_assert_eq(x->ino, y->ino);
		cr_assert_eq(x->has_file_handle, y->has_file_handle);
		if (x->has_file_handle) {
			cr_assert_eq(x->fh_type, y->fh_type);
			cr_assert_eq(x->fh_size, y->fh_size);
			cr_assert_eq(memcmp(x->fh_bytes, y->fh_bytes, x->fh_size), 0);
			cr_assert_eq(x->mnt_id, y->mnt_id);
		}
	}
	cr_assert_eq(a->n_handles, b->n_handles);
	for (size_t i = 0; i < a->n_handles; i++)
		cr_assert_eq(memcmp(&a->handles[i], &b->handles[i], sizeof(a->handles[i])), 0);
}

static uint32_t crc_of(const char *s, size_t n)
{
	return vfsd_crc32c(0, s, n);
}

/*
 * Seal a body (header + records, each ending in '\n') with a correct trailer;
 * counts of -1 are computed from the body.
 */
static char *seal_with(const char *body, long long records, long long inodes, long long handles)
{
	long long nr = 0, ni = 0, nh = 0;
	char *out;
	const char *p = strchr(body, '\n');

	for (p = p ? p + 1 : body; *p;) {
		const char *e = strchr(p, '\n');

		nr++;
		if (strstr(p, "\"kind\":\"inode\"") && strstr(p, "\"kind\":\"inode\"") < e)
			ni++;
		if (strstr(p, "\"kind\":\"handle\"") && strstr(p, "\"kind\":\"handle\"") < e)
			nh++;
		p = e ? e + 1 : p + strlen(p);
	}
	cr_assert(asprintf(&out,
			   "%s{\"kind\":\"trailer\",\"records\":%lld,\"inodes\":%lld,"
			   "\"handles\":%lld,\"checksum\":\"crc32c:%08x\"}\n",
			   body, records < 0 ? nr : records, inodes < 0 ? ni : inodes,
			   handles < 0 ? nh : handles, crc_of(body, strlen(body))) > 0);
	return out;
}

static char *seal(const char *body)
{
	return seal_with(body, -1, -1, -1);
}

#define H                                                                                          \
	"{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"producer\":\"t\","                       \
	"\"required_features\":[],\"optional_features\":[]}\n"
#define S                                                                                          \
	"{\"kind\":\"session\",\"initialized\":true,\"fuse\":{\"major\":7,\"minor\":38,"           \
	"\"flags\":0,\"max_write\":131072,\"max_readahead\":131072},\"next_nodeid\":100,"          \
	"\"next_fh\":100,\"migration_mode\":\"find-paths\"}\n"
#define ROOT "{\"kind\":\"inode\",\"id\":1,\"nlookup\":1,\"type\":\"dir\"}\n"
#define INODE(id, parent, name, type)                                                              \
	"{\"kind\":\"inode\",\"id\":" #id ",\"nlookup\":1,\"type\":\"" type                        \
	"\",\"parent\":" #parent ",\"name\":\"" name "\"}\n"

static int read_str(const char *blob, struct vfsd_state **ret, struct vfsd_state_error *err)
{
	return vfsd_state_read_mem(blob, strlen(blob), NULL, ret, err);
}

/* Seal @body, read it, and check the first problem. */
static void expect_bad_blob(const char *blob, uint64_t line, const char *kind, const char *field,
			    const char *reason)
{
	struct vfsd_state *s = (struct vfsd_state *)0x1;
	struct vfsd_state_error err;
	char msg[512];
	int r = read_str(blob, &s, &err);

	vfsd_state_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(r, -EBADMSG, "accepted: expected \"%s\"", reason);
	cr_assert_eq(s, (struct vfsd_state *)0x1, "a rejected blob must not hand out a model");
	cr_assert_eq(err.code, -EBADMSG);
	cr_assert_eq(err.line, line, "line %llu, not %llu: %s", (unsigned long long)err.line,
		     (unsigned long long)line, msg);
	cr_assert_str_eq(err.kind, kind, "%s", msg);
	cr_assert_str_eq(err.field, field, "%s", msg);
	cr_assert(strstr(err.reason, reason), "reason \"%s\" lacks \"%s\"", err.reason, reason);
}

static void expect_bad(const char *body, uint64_t line, const char *kind, const char *field,
		       const char *reason)
{
	_cleanup_free_ char *blob = seal(body);

	expect_bad_blob(blob, line, kind, field, reason);
}

static void expect_good(const char *blob, struct vfsd_state **ret)
{
	struct vfsd_state_error err;
	char msg[512];
	int r = read_str(blob, ret, &err);

	cr_assert_eq(r, 0, "rejected: %s", vfsd_state_error_format(&err, msg, sizeof(msg)));
}

/* ---- basics -------------------------------------------------------------------------------- */

Test(state, crc32c_known_answer)
{
	cr_assert_eq(vfsd_crc32c(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(vfsd_crc32c(0, "", 0), 0);
	/* incremental == one shot, across the 8-byte fast path */
	const char *t = "The quick brown fox jumps over the lazy dog, twice over.";
	uint32_t c = 0;

	for (size_t i = 0; t[i]; i++)
		c = vfsd_crc32c(c, t + i, 1);
	cr_assert_eq(c, vfsd_crc32c(0, t, strlen(t)));
}

/* The crc32-instruction path and the table path agree on every length and alignment. */
Test(state, crc32c_paths_agree)
{
	uint8_t buf[300];
	uint32_t seed = 0x9e3779b9u;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 24);
	}
	cr_assert_eq(vfsd_crc32c_portable(0, "123456789", 9), 0xe3069283u);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 7)
			cr_assert_eq(vfsd_crc32c(0x1234u, buf + off, len),
				     vfsd_crc32c_portable(0x1234u, buf + off, len),
				     "off %zu len %zu", off, len);
}

Test(state, round_trip)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model(), *b = NULL;
	_cleanup_free_ char *blob = NULL, *again = NULL;
	size_t len, len2;

	blob = encode(a, &len);
	cr_assert_eq(blob[len - 1], '\n');
	/* names that are not UTF-8 go as hex; weird ones are escaped */
	cr_assert(strstr(blob, "\"name_hex\":\"fffe\""));
	cr_assert(strstr(blob, "\"name\":\"we\\\"ird\\\\\\u000a\\u0009\\u0001\""));
	cr_assert(strstr(blob, "\"name\":\"\xc3\xa9t\xc3\xa9\""));
	cr_assert(strstr(blob, "{\"kind\":\"inode\",\"id\":13,\"nlookup\":1,\"type\":\"dir\","
			       "\"lost\":\"unlinked\",\"ino\":77}\n"));
	cr_assert(strstr(blob, "{\"kind\":\"inode\",\"id\":14,\"nlookup\":3,\"type\":\"reg\","
			       "\"lost\":\"not-found\"}\n"));
	cr_assert(strstr(blob, "\"version\":\"1.1\""));
	cr_assert(strstr(blob, "\"required_features\":[\"orphans\",\"file-handles\",\"lost\"]"));
	expect_good(blob, &b);
	assert_same(a, b);
	again = encode(b, &len2);
	cr_assert_eq(len, len2);
	cr_assert_eq(memcmp(blob, again, len), 0, "re-encoding is byte-identical");
}

Test(state, round_trip_fd)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model(), *b = NULL;
	struct vfsd_state_error err;
	char path[] = "/tmp/vfsd-state-test-XXXXXX";
	_cleanup_close_ int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(vfsd_state_write(a, fd), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(vfsd_state_read(fd, NULL, &b, &err), 0, "%s", err.reason);
	assert_same(a, b);
}

Test(state, paths_and_lookups)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = build_model();
	char buf[256];

	cr_assert_eq(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 1), buf, sizeof(buf)), 1);
	cr_assert_str_eq(buf, ".");
	cr_assert_gt(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 3), buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "a/f.txt");
	cr_assert_gt(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 5), buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "b c/link");
	cr_assert_gt(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 7), buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "<handle>");
	cr_assert_gt(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 14), buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "<lost>");
	cr_assert_eq(vfsd_state_inode_path(s, vfsd_state_inode_by_id(s, 3), buf, 4), -ENAMETOOLONG);
	cr_assert_null(vfsd_state_inode_by_id(s, 10));
	cr_assert_eq(vfsd_state_handle_by_fh(s, 5)->inode, 6);
	cr_assert_null(vfsd_state_handle_by_fh(s, 4));
}

Test(state, writer_refuses_bad_records)
{
	struct membuf m = { 0 };
	struct vfsd_state_header h;
	struct vfsd_state_writer *w;
	struct vfsd_state_session ss = { .next_nodeid = 10, .next_fh = 1 };
	struct vfsd_state_inode root = { .id = 1, .type = VFSD_STATE_T_DIR };
	struct vfsd_state_inode bad_name = {
		.id = 2, .type = VFSD_STATE_T_REG, .parent = 1, .name = "a/b"
	};
	struct vfsd_state_inode orphan = { .id = 2, .type = VFSD_STATE_T_REG, .orphan = "2" };

	vfsd_state_header_init(&h, NULL);
	cr_assert_eq(h.minor, 1);
	h.minor = 2;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), -EPROTONOSUPPORT);
	h.major = 2;
	h.minor = 0;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), -EPROTONOSUPPORT);
	vfsd_state_header_init(&h, NULL);
	cr_assert_eq(vfsd_state_header_add_feature(&h, true, "Bad Name"), -EINVAL);
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &root), -EINVAL, "inode before session");
	vfsd_state_writer_free(w);

	m.len = 0;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), -EINVAL, "second session");
	vfsd_state_writer_free(w);

	m.len = 0;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &root), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &bad_name), -EINVAL);
	cr_assert_eq(vfsd_state_writer_close(w), -EINVAL, "errors are sticky");

	m.len = 0;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &orphan), -EINVAL, "orphans not declared");
	vfsd_state_writer_free(w);
	free(m.p);
}

/* The writer refuses what the reader would refuse about lost records (1.1). */
Test(state, writer_refuses_bad_lost_records)
{
	struct membuf m = { 0 };
	struct vfsd_state_header h;
	struct vfsd_state_writer *w;
	struct vfsd_state_session ss = { .next_nodeid = 10, .next_fh = 1 };
	struct vfsd_state_inode root = { .id = 1, .type = VFSD_STATE_T_DIR };
	struct vfsd_state_inode lost = {
		.id = 2, .nlookup = 1, .type = VFSD_STATE_T_REG, .lost = VFSD_STATE_LOST_NOT_FOUND
	};
	struct vfsd_state_inode bad;

	/* 1.0 cannot declare it; without the declaration no lost record goes out */
	vfsd_state_header_init(&h, NULL);
	cr_assert_eq(vfsd_state_header_add_feature(&h, true, "lost"), 0);
	h.minor = 0;
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), -EINVAL);
	vfsd_state_header_init(&h, NULL);
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &root), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &lost), -EINVAL, "lost not declared");
	vfsd_state_writer_free(w);

	cr_assert_eq(vfsd_state_header_add_feature(&h, true, "lost"), 0);
	cr_assert_eq(vfsd_state_header_add_feature(&h, true, "orphans"), 0);
	cr_assert_eq(vfsd_state_header_add_feature(&h, true, "file-handles"), 0);
	for (int k = 0; k < 7; k++) {
		m.len = 0;
		cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
		cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
		cr_assert_eq(vfsd_state_writer_inode(w, &root), 0);
		cr_assert_eq(vfsd_state_writer_inode(w, &lost), 0);
		bad = lost;
		bad.id = 3;
		switch (k) {
		case 0:
			bad.parent = 1;
			bad.name = "x";
			break;
		case 1:
			bad.path = "x";
			break;
		case 2:
			bad.orphan = "3";
			break;
		case 3:
			bad.has_file_handle = true;
			bad.fh_type = 1;
			bad.fh_size = 1;
			bad.fh_bytes = (uint8_t *)"x";
			break;
		case 4:
			bad.lost = (enum vfsd_state_lost)3;
			break;
		case 5:
			bad = root;
			bad.lost = VFSD_STATE_LOST_UNLINKED;
			break;
		case 6:
			bad.lost = VFSD_STATE_LOST_UNLINKED; /* a sound one: written */
			break;
		}
		cr_assert_eq(vfsd_state_writer_inode(w, &bad), k == 6 ? 0 : -EINVAL, "case %d", k);
		cr_assert_eq(vfsd_state_writer_close(w), k == 6 ? 0 : -EINVAL);
	}
	cr_assert(strstr(m.p, "\"id\":3,\"nlookup\":1,\"type\":\"reg\",\"lost\":\"unlinked\"}"),
		  "%s", m.p);
	expect_good(m.p, NULL);
	free(m.p);
}

static int fail_write(void *opaque, const void *buf, size_t len)
{
	return -EPIPE;
}

Test(state, writer_reports_write_errors)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = build_model();

	cr_assert_eq(vfsd_state_write_cb(s, fail_write, NULL), -EPIPE);
}

/* ---- truncation, bit flips ----------------------------------------------------------------- */

Test(state, every_proper_prefix_is_rejected)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model();
	_cleanup_free_ char *blob = NULL;
	size_t len;

	blob = encode(a, &len);
	for (size_t n = 0; n < len; n++) {
		struct vfsd_state *s = NULL;
		struct vfsd_state_error err;
		int r = vfsd_state_read_mem(blob, n, NULL, &s, &err);

		cr_assert_eq(r, -EBADMSG, "prefix of %zu bytes accepted", n);
		cr_assert_null(s);
		if (n == 0)
			cr_assert(strstr(err.reason, "empty"), "%s", err.reason);
		else
			cr_assert(strstr(err.reason, "truncated"), "prefix %zu: %s", n, err.reason);
		cr_assert_gt(err.line, 0);
	}
}

struct memsrc {
	const char *p;
	size_t left;
	size_t consumed;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct memsrc *m = opaque;
	size_t n = MIN(len, m->left);

	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	m->consumed += n;
	return (ssize_t)n;
}

static int count_problem(const struct vfsd_state_error *e, void *userdata)
{
	(*(unsigned int *)userdata)++;
	cr_assert_neq(e->reason[0], 0);
	cr_assert_eq(e->code, -EBADMSG);
	return 0;
}

/* Read in report-everything mode; returns the number of problems. */
static unsigned int read_all(const char *blob, size_t len, int *ret)
{
	unsigned int problems = 0;
	struct memsrc m = { blob, len, 0 };
	struct vfsd_state_read_opts o = { .report = count_problem, .userdata = &problems };
	struct vfsd_state *s = NULL;
	int r = vfsd_state_read_ex(mem_read, &m, &o, &s, NULL);

	cr_assert_eq(!!r, !!problems);
	cr_assert(r == 0 || !s);
	vfsd_state_free(s);
	if (ret)
		*ret = r;
	return problems;
}

Test(state, every_single_bit_flip_is_rejected)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model();
	_cleanup_free_ char *blob = NULL;
	size_t len, accepted = 0, accepted_all = 0;

	blob = encode(a, &len);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct vfsd_state *s = NULL;
			int r;

			blob[i] ^= (char)(1 << bit);
			r = vfsd_state_read_mem(blob, len, NULL, &s, NULL);
			if (r == 0) {
				accepted++;
				vfsd_state_free(s);
			} else {
				cr_assert_null(s);
			}
			read_all(blob, len, &r);
			accepted_all += r == 0;
			blob[i] ^= (char)(1 << bit);
		}
	}
	cr_assert_eq(accepted, 0, "%zu of %zu bit flips went unnoticed", accepted, len * 8);
	cr_assert_eq(accepted_all, 0);
}

Test(state, prefixes_in_report_all_mode)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model();
	_cleanup_free_ char *blob = NULL;
	size_t len;

	blob = encode(a, &len);
	for (size_t n = 0; n < len; n++) {
		int r;

		cr_assert_geq(read_all(blob, n, &r), 1);
		cr_assert_eq(r, -EBADMSG);
	}
	cr_assert_eq(read_all(blob, len, NULL), 0);
}

/* ---- the catalogue ------------------------------------------------------------------------- */

Test(state, minimal_blob)
{
	_cleanup_free_ char *blob = seal(H S ROOT);
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;

	expect_good(blob, &s);
	cr_assert_eq(s->n_inodes, 1);
	cr_assert_eq(s->session.max_write, 131072);
	cr_assert_str_eq(s->header.producer, "t");
}

Test(state, header_problems)
{
	expect_bad("{\"format\":\"other\",\"version\":\"1.0\"}\n" S ROOT, 1, "header", "format",
		   "not a vfsd-state blob");
	expect_bad("{\"format\":\"vfsd-state\",\"version\":\"2.0\",\"producer\":\"t\","
		   "\"required_features\":[],\"optional_features\":[]}\n" S ROOT,
		   1, "header", "version", "unsupported major version 2");
	expect_bad("{\"format\":\"vfsd-state\",\"version\":\"1\",\"producer\":\"t\","
		   "\"required_features\":[],\"optional_features\":[]}\n" S ROOT,
		   1, "header", "version", "not MAJOR.MINOR");
	expect_bad(
	    "{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"producer\":\"t\","
	    "\"required_features\":[\"orphans\",\"locks\"],\"optional_features\":[]}\n" S ROOT,
	    1, "header", "required_features", "unknown required feature 'locks'");
	expect_bad("{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"producer\":\"t\","
		   "\"required_features\":[],\"optional_features\":[\"Not OK\"]}\n" S ROOT,
		   1, "header", "optional_features", "not a feature name");
	expect_bad("{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"producer\":7,"
		   "\"required_features\":[],\"optional_features\":[]}\n" S ROOT,
		   1, "header", "producer", "must be a string, not int");
	expect_bad("[1,2]\n" S ROOT, 1, "header", "", "not a JSON object");
	expect_bad("{\"format\":\"vfsd-state\",\n" S ROOT, 1, "header", "", "not one JSON object");
}

Test(state, newer_minor_with_unknown_fields_and_optional_kinds)
{
	_cleanup_free_ char *blob = seal(
	    "{\"format\":\"vfsd-state\",\"version\":\"1.7\",\"producer\":\"vfsd 9\","
	    "\"required_features\":[\"orphans\"],\"optional_features\":[\"lock\",\"xattr-cache\"],"
	    "\"future\":{\"a\":[1,2,{\"b\":null}]}}\n"
	    "{\"kind\":\"session\",\"initialized\":false,\"next_nodeid\":5,\"next_fh\":1,"
	    "\"migration_mode\":\"file-handles\",\"new_counter\":12}\n"
	    "{\"kind\":\"inode\",\"id\":1,\"nlookup\":1,\"type\":\"dir\",\"color\":\"blue\"}\n"
	    "{\"kind\":\"lock\",\"inode\":1,\"whatever\":true}\n"
	    "{\"kind\":\"handle\",\"fh\":0,\"inode\":1,\"flags\":0,\"dir\":true,\"extra\":1.5}\n");
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;
	struct vfsd_state_stats st;
	struct memsrc m = { blob, strlen(blob), 0 };
	struct vfsd_state_read_opts o = { .stats = &st };

	expect_good(blob, &s);
	cr_assert_eq(s->header.minor, 7);
	cr_assert_eq(s->session.mode, VFSD_STATE_MODE_FILE_HANDLES);
	cr_assert_not(s->session.initialized);
	cr_assert_eq(s->n_inodes, 1);
	cr_assert_eq(s->n_handles, 1);
	cr_assert(vfsd_state_header_has_feature(&s->header, false, "xattr-cache"));
	cr_assert_eq(vfsd_state_read_ex(mem_read, &m, &o, NULL, NULL), 0);
	cr_assert_eq(st.records[VFSD_STATE_K_OTHER], 1);
	cr_assert_eq(st.records[VFSD_STATE_K_INODE], 1);
	cr_assert_eq(st.records[VFSD_STATE_K_TRAILER], 1);
	cr_assert_eq(st.total_bytes, strlen(blob));
}

Test(state, unknown_kind_not_optional)
{
	expect_bad(H S ROOT "{\"kind\":\"lock\",\"inode\":1}\n", 4, "lock", "kind",
		   "unknown record kind \"lock\"");
	expect_bad(H S ROOT "{\"id\":2}\n", 4, "", "kind", "missing");
}

Test(state, session_problems)
{
	expect_bad(H ROOT, 2, "inode", "", "no session record before the first inode");
	expect_bad(H, 2, "session", "", "no session record");
	expect_bad(H S ROOT S, 4, "session", "", "a second session record");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":true,\"next_nodeid\":2,\"next_fh\":0,"
		     "\"migration_mode\":\"find-paths\"}\n" ROOT,
		   2, "session", "fuse", "missing");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":true,\"fuse\":{\"major\":8,\"minor\":1,"
		     "\"flags\":0,\"max_write\":1,\"max_readahead\":1},\"next_nodeid\":2,"
		     "\"next_fh\":0,\"migration_mode\":\"find-paths\"}\n" ROOT,
		   2, "session", "fuse.major", "not 7");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":true,\"fuse\":{\"major\":7,\"minor\":1,"
		     "\"flags\":0,\"max_write\":4294967296,\"max_readahead\":1},\"next_nodeid\":2,"
		     "\"next_fh\":0,\"migration_mode\":\"find-paths\"}\n" ROOT,
		   2, "session", "fuse.max_write", "out of range");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":false,\"next_nodeid\":1,\"next_fh\":0,"
		     "\"migration_mode\":\"find-paths\"}\n" ROOT,
		   2, "session", "next_nodeid", "at least 2");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":\"yes\",\"next_nodeid\":3,"
		     "\"next_fh\":0,\"migration_mode\":\"find-paths\"}\n" ROOT,
		   2, "session", "initialized", "must be true or false, not string");
	expect_bad(H "{\"kind\":\"session\",\"initialized\":false,\"next_nodeid\":3,"
		     "\"next_fh\":0,\"migration_mode\":\"by-magic\"}\n" ROOT,
		   2, "session", "migration_mode", "find-paths");
}

Test(state, inode_ids)
{
	expect_bad(H S INODE(2, 1, "a", "dir"), 3, "inode", "id",
		   "the first inode must be the root");
	expect_bad(H S ROOT ROOT, 4, "inode", "id", "duplicate id 1");
	expect_bad(H S ROOT INODE(2, 1, "a", "dir") INODE(2, 1, "b", "dir"), 5, "inode", "id",
		   "duplicate id 2");
	expect_bad(H S ROOT INODE(100, 1, "a", "dir"), 4, "inode", "id",
		   "not below the session's next_nodeid 100");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":0,\"nlookup\":1,\"type\":\"dir\"}\n", 4,
		   "inode", "id", "0 is not a node id");
}

Test(state, inode_tree)
{
	expect_bad(H S ROOT INODE(3, 2, "a", "reg") INODE(2, 1, "d", "dir"), 4, "inode", "parent",
		   "dangling parent 2");
	expect_bad(H S ROOT INODE(2, 2, "a", "dir"), 4, "inode", "parent", "the inode itself");
	expect_bad(H S ROOT INODE(2, 1, "f", "reg") INODE(3, 2, "g", "reg"), 5, "inode", "parent",
		   "parent 2 is a reg, not a directory");
	expect_bad(H S "{\"kind\":\"inode\",\"id\":1,\"nlookup\":1,\"type\":\"dir\",\"parent\":1,"
		       "\"name\":\"x\"}\n",
		   3, "inode", "name", "the root has no parent and no name");
	expect_bad(H S "{\"kind\":\"inode\",\"id\":1,\"nlookup\":1,\"type\":\"reg\"}\n", 3, "inode",
		   "type", "the root must be a directory");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\"}\n", 4,
		   "inode", "parent", "an inode needs parent and name");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1}\n",
		   4, "inode", "name", "missing (parent is given)");
	expect_bad(H S ROOT INODE(2, 1, "a", "door"), 4, "inode", "type", "is not one of");
}

Test(state, names)
{
	expect_bad(H S ROOT INODE(2, 1, "a/b", "reg"), 4, "inode", "name", "not a file name");
	expect_bad(H S ROOT INODE(2, 1, "..", "reg"), 4, "inode", "name", "not a file name");
	expect_bad(H S ROOT INODE(2, 1, "", "reg"), 4, "inode", "name", "not a file name");
	expect_bad(H S ROOT INODE(2, 1, "a\\u0000b", "reg"), 4, "inode", "name", "NUL");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name_hex\":\"2f\"}\n",
		   4, "inode", "name_hex", "not a file name");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name_hex\":\"FF\"}\n",
		   4, "inode", "name_hex", "not lower-case hex");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name_hex\":\"fff\"}\n",
		   4, "inode", "name_hex", "even");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name\":\"x\",\"name_hex\":\"78\"}\n",
		   4, "inode", "name_hex", "both");

	char body[2048];
	char name[301];

	memset(name, 'n', 300);
	name[300] = 0;
	snprintf(body, sizeof(body), H S ROOT INODE(2, 1, "%s", "reg"), name);
	expect_bad(body, 4, "inode", "name", "300 bytes long, more than 255");
	/* invalid UTF-8 inside a JSON string is a parse error (names like that go as hex) */
	expect_bad(H S ROOT INODE(2, 1, "\xff", "reg"), 4, "", "", "invalid utf-8");
}

#define PATHED(id, path)                                                                           \
	"{\"kind\":\"inode\",\"id\":" #id ",\"nlookup\":1,\"type\":\"reg\","                       \
	"\"path\":\"" path "\"}\n"

/* The optional "path" (1.0): a fourth way to locate an inode, relative to the shared dir. */
Test(state, paths_round_trip)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL, *back = NULL;
	_cleanup_free_ char *blob = NULL, *long_path = NULL;
	struct vfsd_state_error err;
	struct vfsd_state_inode in = { .nlookup = 1, .type = VFSD_STATE_T_REG };
	char buf[8192];
	size_t len;

	cr_assert_eq(vfsd_state_new(&s), 0);
	s->has_session = true;
	s->session.next_nodeid = 10;
	s->session.next_fh = 1;
	in.id = 1;
	in.type = VFSD_STATE_T_DIR;
	cr_assert_eq(vfsd_state_add_inode(s, &in), 0);
	in.type = VFSD_STATE_T_REG;
	in.id = 2;
	in.path = "a/b/c.txt";
	cr_assert_eq(vfsd_state_add_inode(s, &in), 0);
	in.id = 3;
	in.path = "dir/\xff\xfe-not-utf8"; /* goes as path_hex */
	cr_assert_eq(vfsd_state_add_inode(s, &in), 0);
	in.id = 4; /* the longest path: 4095 bytes in components of at most 255 */
	long_path = malloc(VFSD_STATE_PATH_MAX + 1);
	for (size_t i = 0; i < VFSD_STATE_PATH_MAX; i++)
		long_path[i] = (i % 200 == 199) ? '/' : 'p';
	long_path[VFSD_STATE_PATH_MAX] = 0;
	in.path = long_path;
	cr_assert_eq(vfsd_state_add_inode(s, &in), 0);
	in.id = 5; /* a path and a name together: both kept */
	in.path = "x/y";
	in.parent = 1;
	in.name = "z";
	cr_assert_eq(vfsd_state_add_inode(s, &in), 0);

	blob = encode(s, &len);
	cr_assert(strstr(blob, "\"path\":\"a/b/c.txt\""));
	cr_assert(strstr(blob, "\"path_hex\":\"6469722ffffe2d6e6f742d75746638\""));
	cr_assert_eq(vfsd_state_read_mem(blob, len, NULL, &back, &err), 0, "%s",
		     vfsd_state_error_format(&err, buf, sizeof(buf)));
	assert_same(s, back);
	cr_assert_eq(vfsd_state_inode_path(back, vfsd_state_inode_by_id(back, 2), buf, sizeof(buf)),
		     9);
	cr_assert_str_eq(buf, "a/b/c.txt");
}

Test(state, bad_paths)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;
	_cleanup_free_ char *body = NULL;
	struct vfsd_state_inode in = { .nlookup = 1, .type = VFSD_STATE_T_DIR, .id = 1 };
	struct membuf m = { 0 };
	struct vfsd_state_writer *w;
	struct vfsd_state_header h;
	struct vfsd_state_session ss = { .next_nodeid = 10 };
	static const char *const bad[] = { "/abs", "a//b", "a/", "./a", "a/./b", "a/..", "..", "" };

	expect_bad(H S ROOT PATHED(2, "/etc/passwd"), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, "a//b"), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, "a/b/"), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, "a/../b"), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, "./b"), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, ""), 4, "inode", "path", "not a relative path");
	expect_bad(H S ROOT PATHED(2, "a\\u0000b"), 4, "inode", "path", "NUL");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"path_hex\":\"2f61\"}\n",
		   4, "inode", "path_hex", "not a relative path");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"path\":\"a\",\"path_hex\":\"61\"}\n",
		   4, "inode", "path_hex", "both");
	expect_bad(H S "{\"kind\":\"inode\",\"id\":1,\"nlookup\":1,\"type\":\"dir\","
		       "\"path\":\"a\"}\n",
		   3, "inode", "path", "the root has no path");

	/* Too long: 4096 bytes. */
	char *longp = malloc(VFSD_STATE_PATH_MAX + 2);
	for (size_t i = 0; i <= VFSD_STATE_PATH_MAX; i++)
		longp[i] = (i % 100 == 99) ? '/' : 'q';
	longp[VFSD_STATE_PATH_MAX + 1] = 0;
	cr_assert(asprintf(&body, H S ROOT PATHED(2, "%s"), longp) > 0);
	expect_bad(body, 4, "inode", "path", "4096 bytes long, more than 4095");
	/* A component over 255 bytes. */
	memset(longp, 'c', 300);
	longp[300] = 0;
	free(body);
	cr_assert(asprintf(&body, H S ROOT PATHED(2, "d/%s"), longp) > 0);
	expect_bad(body, 4, "inode", "path", "not a relative path");

	/* The writer refuses the same. */
	vfsd_state_header_init(&h, "t");
	cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
	cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
	cr_assert_eq(vfsd_state_writer_inode(w, &in), 0);
	in.type = VFSD_STATE_T_REG;
	in.id = 2;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		in.path = (char *)bad[i];
		cr_assert_eq(vfsd_state_writer_inode(w, &in), -EINVAL, "path \"%s\"", bad[i]);
		vfsd_state_writer_free(w);
		free(m.p);
		m = (struct membuf){ 0 };
		cr_assert_eq(vfsd_state_writer_open_cb(mem_write, &m, &h, &w), 0);
		cr_assert_eq(vfsd_state_writer_session(w, &ss), 0);
		in.type = VFSD_STATE_T_DIR;
		in.id = 1;
		in.path = NULL;
		cr_assert_eq(vfsd_state_writer_inode(w, &in), 0);
		in.type = VFSD_STATE_T_REG;
		in.id = 2;
	}
	in.path = longp; /* 300-byte component */
	cr_assert_eq(vfsd_state_writer_inode(w, &in), -EINVAL);
	vfsd_state_writer_free(w);
	free(m.p);
	free(longp);
	(void)s;
}

Test(state, features_must_be_declared)
{
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":0,\"type\":\"reg\","
			    "\"orphan\":\"2\"}\n",
		   4, "inode", "orphan", "without \"orphans\"");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"file_handle\":{\"type\":1,\"handle\":\"0102\",\"mnt_id\":3}}\n",
		   4, "inode", "file_handle", "\"file-handles\"");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name\":\"x\","
			    "\"file_handle\":{\"type\":1,\"handle\":\"\",\"mnt_id\":3}}\n",
		   4, "inode", "file_handle.handle", "hex digits");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			    "\"parent\":1,\"name\":\"x\","
			    "\"file_handle\":{\"type\":-1,\"handle\":\"00\",\"mnt_id\":3}}\n",
		   4, "inode", "file_handle.type", "negative");
	char body[2048], hex[300];

	memset(hex, 'a', 258);
	hex[258] = 0;
	snprintf(body, sizeof(body),
		 H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
			  "\"parent\":1,\"name\":\"x\","
			  "\"file_handle\":{\"type\":1,\"handle\":\"%s\",\"mnt_id\":3}}\n",
		 hex);
	expect_bad(body, 4, "inode", "file_handle.handle", "not 258");
}

/* ---- lost records (1.1) ---- */

#define H11(features)                                                                              \
	"{\"format\":\"vfsd-state\",\"version\":\"1.1\",\"producer\":\"t\","                       \
	"\"required_features\":[" features "],\"optional_features\":[]}\n"
#define LOST(id, type, why)                                                                        \
	"{\"kind\":\"inode\",\"id\":" #id ",\"nlookup\":1,\"type\":\"" type "\",\"lost\":\"" why   \
	"\"}\n"

Test(state, lost_records_accepted_with_the_feature)
{
	_cleanup_free_ char *blob = seal(H11("\"lost\"") S ROOT LOST(
	    2, "dir", "unlinked") "{\"kind\":\"inode\",\"id\":3,\"nlookup\":0,\"type\":\"reg\","
				  "\"lost\":\"not-found\","
				  "\"ino\":99}\n" INODE(
				      4, 1, "ok", "dir") "{\"kind\":\"handle\",\"fh\":1,\"inode\":"
							 "3,\"flags\":2,\"dir\":false}\n"
							 "{\"kind\":\"handle\",\"fh\":2,\"inode\":"
							 "2,\"flags\":0,\"dir\":true,"
							 "\"dir_offset\":7}\n");
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;
	const struct vfsd_state_inode *in;

	expect_good(blob, &s);
	cr_assert(vfsd_state_header_has_feature(&s->header, true, "lost"));
	in = vfsd_state_inode_by_id(s, 2);
	cr_assert_eq(in->lost, VFSD_STATE_LOST_UNLINKED);
	cr_assert_eq(in->type, VFSD_STATE_T_DIR);
	cr_assert_eq(in->nlookup, 1);
	cr_assert_not(in->has_ino);
	in = vfsd_state_inode_by_id(s, 3);
	cr_assert_eq(in->lost, VFSD_STATE_LOST_NOT_FOUND);
	cr_assert_eq(in->nlookup, 0);
	cr_assert(in->has_ino);
	cr_assert_eq(in->ino, 99);
	cr_assert_null(in->name);
	cr_assert_eq(vfsd_state_inode_by_id(s, 4)->lost, VFSD_STATE_LOST_NONE);
	cr_assert_eq(vfsd_state_handle_by_fh(s, 1)->inode, 3, "handles on lost inodes are carried");
	cr_assert_eq(vfsd_state_handle_by_fh(s, 2)->inode, 2);
	cr_assert_str_eq(vfsd_state_lost_name(VFSD_STATE_LOST_UNLINKED), "unlinked");
	cr_assert_str_eq(vfsd_state_lost_name(VFSD_STATE_LOST_NOT_FOUND), "not-found");
	cr_assert_str_eq(vfsd_state_lost_name((enum vfsd_state_lost)9), "?");
}

Test(state, lost_records_rejected)
{
	/* not declared: neither in a 1.0 blob nor in a 1.1 one */
	expect_bad(H S ROOT LOST(2, "reg", "unlinked"), 4, "inode", "lost",
		   "used without \"lost\" in required_features");
	expect_bad(H11("\"orphans\"") S ROOT LOST(2, "reg", "not-found"), 4, "inode", "lost",
		   "used without \"lost\" in required_features");
	/* 1.0 does not define the feature */
	expect_bad("{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"producer\":\"t\","
		   "\"required_features\":[\"lost\"],\"optional_features\":[]}\n" S ROOT,
		   1, "header", "required_features",
		   "required feature 'lost' is defined by version 1.1, the header says 1.0");
	/* a location as well */
	expect_bad(
	    H11("\"lost\"") S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"lost\":\"unlinked\","
	    "\"parent\":1,\"name\":\"x\"}\n",
	    4, "inode", "lost", "a lost inode has no location, but this record has \"parent\"");
	expect_bad(
	    H11("\"lost\"") S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"lost\":\"unlinked\","
	    "\"path_hex\":\"ff\"}\n",
	    4, "inode", "lost", "this record has \"path_hex\"");
	expect_bad(
	    H11("\"lost\",\"orphans\"") S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"lost\":\"not-found\","
	    "\"orphan\":\"2\"}\n",
	    4, "inode", "lost", "this record has \"orphan\"");
	expect_bad(
	    H11("\"lost\",\"file-handles\"") S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"lost\":\"not-found\","
	    "\"file_handle\":{\"type\":1,\"handle\":\"0102\",\"mnt_id\":3}}\n",
	    4, "inode", "lost", "this record has \"file_handle\"");
	/* reasons */
	expect_bad(H11("\"lost\"") S ROOT LOST(2, "reg", "stolen"), 4, "inode", "lost",
		   "\"stolen\" is not one of unlinked, not-found");
	expect_bad(H11("\"lost\"") S ROOT LOST(2, "reg", ""), 4, "inode", "lost",
		   "is not one of unlinked, not-found");
	expect_bad(H11("\"lost\"") S ROOT
		   "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"lost\":true}\n",
		   4, "inode", "lost", "must be a string, not bool");
	/* the root */
	expect_bad(H11("\"lost\"") S LOST(1, "dir", "not-found"), 3, "inode", "lost",
		   "the root cannot be lost");
	/* a child of a lost directory */
	expect_bad(H11("\"lost\"") S ROOT LOST(2, "dir", "unlinked") INODE(3, 2, "x", "reg"), 5,
		   "inode", "parent", "parent 2 is lost");
}

Test(state, handles)
{
	expect_bad(H S ROOT
		   "{\"kind\":\"handle\",\"fh\":1,\"inode\":42,\"flags\":0,\"dir\":false}\n",
		   4, "handle", "inode", "no inode 42");
	expect_bad(H S ROOT "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":0,\"dir\":true}\n"
			    "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":0,\"dir\":true}\n",
		   5, "handle", "fh", "duplicate fh 1");
	expect_bad(H S ROOT
		   "{\"kind\":\"handle\",\"fh\":100,\"inode\":1,\"flags\":0,\"dir\":true}\n",
		   4, "handle", "fh", "next_fh 100");
	expect_bad(
	    H S ROOT INODE(
		2, 1, "f",
		"reg") "{\"kind\":\"handle\",\"fh\":1,\"inode\":2,\"flags\":0,\"dir\":true}\n",
	    5, "handle", "dir", "a directory handle on inode 2, which is a reg");
	expect_bad(H S ROOT INODE(2, 1, "f", "reg") "{\"kind\":\"handle\",\"fh\":1,\"inode\":2,"
						    "\"flags\":0,\"dir\":false,\"dir_offset\":3}\n",
		   5, "handle", "dir_offset", "only directory handles");
	expect_bad(H S ROOT "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":4294967296,"
			    "\"dir\":true}\n",
		   4, "handle", "flags", "out of range");
	expect_bad(H S ROOT "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":0,\"dir\":1}\n", 4,
		   "handle", "dir", "must be true or false, not int");
	expect_bad(H S ROOT "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":0}\n", 4, "handle",
		   "dir", "missing");
}

Test(state, number_types)
{
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":\"2\",\"nlookup\":1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "id", "must be an integer, not string");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2.0,\"nlookup\":1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "id", "must be an integer, not double");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2e0,\"nlookup\":1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "id", "must be an integer, not double");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":-1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "nlookup", "must not be negative");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":-99999999999999999999,"
			    "\"type\":\"dir\",\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "nlookup", "must not be negative");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\",\"ino\":18446744073709551616}\n",
		   4, "inode", "ino", "out of range");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\",\"ino\":18446744073709551615}\n",
		   4, "inode", "ino", "out of range");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":null,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "inode", "nlookup", "not null");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":01,\"type\":\"dir\","
			    "\"parent\":1,\"name\":\"a\"}\n",
		   4, "", "", "not one JSON object");

	_cleanup_free_ char *big = seal(H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":"
						 "18446744073709551614,\"type\":\"dir\","
						 "\"parent\":1,\"name\":\"a\"}\n");
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;

	expect_good(big, &s);
	cr_assert_eq(s->inodes[1].nlookup, UINT64_MAX - 1);
}

Test(state, trailer_problems)
{
	_cleanup_free_ char *absurd = seal_with(H S ROOT, -1, 1ll << 60, -1);
	_cleanup_free_ char *few = seal_with(H S ROOT, 1, 1, 5);
	_cleanup_free_ char *good = seal(H S ROOT);
	_cleanup_free_ char *after = NULL, *upper = NULL, *flipped = NULL, *notrail = NULL;
	char *p;

	expect_bad_blob(absurd, 4, "trailer", "inodes",
			"the trailer says 1152921504606846976 inodes, the blob has 1");
	expect_bad_blob(few, 4, "trailer", "records", "the trailer says 1 records, the blob has 2");

	cr_assert(asprintf(&after, "%s{}\n", good) > 0);
	expect_bad_blob(after, 5, "", "", "data after the trailer");
	free(after);
	cr_assert(asprintf(&after, "%s\n", good) > 0);
	expect_bad_blob(after, 5, "", "", "data after the trailer");

	upper = strdup(good);
	for (p = strstr(upper, "crc32c:") + 7; *p != '"'; p++)
		*p = (char)toupper(*p);
	if (strcmp(upper, good) != 0)
		expect_bad_blob(upper, 4, "trailer", "checksum", "does not match");

	flipped = strdup(good);
	p = strstr(flipped, "\"t\"");
	p[1] = 'u'; /* the producer, in the header */
	expect_bad_blob(flipped, 4, "trailer", "checksum", "does not match");

	notrail = strndup(good, (size_t)(strstr(good, "{\"kind\":\"trailer\"") - good));
	expect_bad_blob(notrail, 4, "", "", "truncated: no trailer after line 3");
}

Test(state, empty_lines_and_garbage)
{
	expect_bad(H S "\n" ROOT, 3, "", "", "empty line");
	expect_bad(H S ROOT "  {\"kind\":\"inode\"} x\n", 4, "", "", "not one JSON object");
	expect_bad(H S ROOT "7\n", 4, "", "", "not a JSON object");
}

#define REC2(extra)                                                                                \
	"{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\",\"parent\":1,\"name\":"       \
	"\"a\"" extra "}\n"

/* The reader's own parser (src/state/jsonline.c): RFC 8259 and nothing more, no key twice. */
Test(state, strict_json)
{
	/* the same key twice: readers keeping the first and the last would disagree */
	expect_bad(H S ROOT REC2(",\"name\":\"b\""), 4, "", "", "duplicate key \"name\" (byte 70)");
	expect_bad(H S ROOT REC2(",\"kind\":\"handle\""), 4, "", "", "duplicate key \"kind\"");
	expect_bad(H S ROOT REC2(",\"n\\u0061me\":\"b\""), 4, "", "", "duplicate key \"name\"");
	expect_bad(H S ROOT REC2(",\"file_handle\":{\"type\":1,\"type\":2}"), 4, "", "",
		   "duplicate key \"type\"");
	expect_bad(
	    "{\"format\":\"vfsd-state\",\"version\":\"1.0\",\"version\":\"2.0\",\"producer\":"
	    "\"t\",\"required_features\":[],\"optional_features\":[]}\n" S ROOT,
	    1, "header", "", "duplicate key \"version\"");
	/* a key with NUL in it would be cut short by C-string readers (json-c was one) */
	expect_bad(H S ROOT REC2(",\"dir\\u0000x\":1"), 4, "", "", "a key with \\u0000 in it");
	/* NUL in a value that must not have one */
	expect_bad(H S ROOT INODE(2, 1, "a\\u0000b", "reg"), 4, "inode", "name",
		   "contains a NUL character");
	expect_bad(H S ROOT INODE(2, 1, "\\u0000", "reg"), 4, "inode", "name",
		   "contains a NUL character");
	expect_bad(H S ROOT "{\"kind\":\"inode\\u0000x\",\"id\":2}\n", 4, "", "kind",
		   "contains a NUL character");
	/* what json-c let through */
	expect_bad(H S ROOT REC2(",\"ino\":00"), 4, "", "", "leading zero in a number");
	expect_bad(H S ROOT REC2(",\"ino\":-01"), 4, "", "", "leading zero in a number");
	expect_bad(H S ROOT REC2(",\"ino\":1."), 4, "", "", "no digit after the '.'");
	expect_bad(H S ROOT REC2(",\"future\":NaN"), 4, "", "", "unexpected character");
	expect_bad(H S ROOT REC2(",'future':1"), 4, "", "", "expected a key in double quotes");
	expect_bad(H S ROOT INODE(2, 1, "tab\there", "reg"), 4, "", "", "control character");
	expect_bad(H S ROOT INODE(2, 1, "\\ud800", "reg"), 4, "", "", "unpaired surrogate");
	expect_bad(H S ROOT INODE(2, 1, "\\udc00\\ud800", "reg"), 4, "", "", "unpaired surrogate");
	expect_bad(H S ROOT INODE(2, 1, "\xc0\xaf", "reg"), 4, "", "", "invalid utf-8"); /* '/' */
	expect_bad(H S ROOT INODE(2, 1, "\xed\xa0\x80", "reg"), 4, "", "", "invalid utf-8");
	expect_bad(H S ROOT INODE(2, 1, "\xf4\x90\x80\x80", "reg"), 4, "", "", "invalid utf-8");
	expect_bad(H S ROOT "{\"kind\":\"inode\",\"id\":2}x\n", 4, "", "", "more after the value");
	/* nesting: 16 levels in an unknown field are fine, 17 are not */
	expect_bad(H S ROOT REC2(",\"x\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]"), 4, "", "",
		   "nesting too deep");

	/* still fine: whitespace, escapes, surrogate pairs, -0, 16 levels, huge unknowns */
	_cleanup_free_ char *blob =
	    seal(H S ROOT " \t{\"kind\":\"inode\", \"id\" : 2 ,\"nlookup\":-0,\"type\":\"dir\",\t"
			  "\"parent\":1,\"name\":\"\\u00e9\\ud83d\\ude00\\\\\\\"\", \"x\":"
			  "[[[[[[[[[[[[[[1]]]]]]]]]]]]]], \"y\":123456789012345678901234567890, "
			  "\"z\":-1.5e300, \"\":\"\"}\r\n");
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;

	expect_good(blob, &s);
	cr_assert_eq(s->n_inodes, 2);
	cr_assert_eq(s->inodes[1].nlookup, 0);
	cr_assert_str_eq(s->inodes[1].name, "\xc3\xa9\xf0\x9f\x98\x80\\\"");
}

/* Blobs list ids in order and children together; the reader's shortcuts must not change verdicts.
 */
Test(state, ids_out_of_order)
{
	_cleanup_free_ char *blob = seal(
	    H S ROOT INODE(50, 1, "d", "dir") INODE(7, 50, "a", "reg") INODE(9, 1, "e", "dir")
		INODE(8, 50, "b", "reg") INODE(3, 9, "c", "lnk") INODE(
		    60, 50, "f",
		    "reg") "{\"kind\":\"handle\",\"fh\":9,\"inode\":8,\"flags\":0,\"dir\":false}\n"
			   "{\"kind\":\"handle\",\"fh\":2,\"inode\":50,\"flags\":0,\"dir\":true}\n"
			   "{\"kind\":\"handle\",\"fh\":5,\"inode\":9,\"flags\":0,\"dir\":true}\n");
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = NULL;

	expect_good(blob, &s);
	cr_assert_eq(s->n_inodes, 7);
	cr_assert_eq(s->n_handles, 3);
	expect_bad(H S ROOT INODE(50, 1, "d", "dir") INODE(7, 50, "a", "reg")
		       INODE(7, 50, "b", "reg"),
		   6, "inode", "id", "duplicate id 7");
	expect_bad(H S ROOT INODE(50, 1, "d", "dir") INODE(7, 50, "a", "reg")
		       INODE(8, 7, "b", "reg"),
		   6, "inode", "parent", "parent 7 is a reg");
	expect_bad(H S ROOT INODE(50, 1, "d", "dir") INODE(7, 50, "a", "reg")
		       INODE(8, 50, "b", "reg") INODE(9, 51, "c", "reg"),
		   7, "inode", "parent", "dangling parent 51");
	expect_bad(H S ROOT INODE(50, 1, "d", "dir") INODE(7, 50, "a", "reg")
		       INODE(8, 9, "b", "reg"),
		   6, "inode", "parent", "dangling parent 9");
	expect_bad(
	    H S ROOT INODE(
		50, 1, "d",
		"dir") "{\"kind\":\"handle\",\"fh\":9,\"inode\":50,\"flags\":0,\"dir\":true}\n"
		       "{\"kind\":\"handle\",\"fh\":2,\"inode\":50,\"flags\":0,\"dir\":true}\n"
		       "{\"kind\":\"handle\",\"fh\":9,\"inode\":1,\"flags\":0,\"dir\":true}\n",
	    7, "handle", "fh", "duplicate fh 9");
}

/* An endless line: the reader must give up at the limit, not buffer it all. */
struct gen {
	const char *prefix;
	size_t prefix_left;
	size_t fill_left;
	size_t consumed;
};

static ssize_t gen_read(void *opaque, void *buf, size_t len)
{
	struct gen *g = opaque;
	size_t n;

	if (g->prefix_left) {
		n = MIN(len, g->prefix_left);
		memcpy(buf, g->prefix, n);
		g->prefix += n;
		g->prefix_left -= n;
	} else {
		n = MIN(len, g->fill_left);
		memset(buf, 'a', n);
		g->fill_left -= n;
	}
	g->consumed += n;
	return (ssize_t)n;
}

Test(state, huge_line_hits_the_limit)
{
	const char *prefix = H S ROOT "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"reg\","
				      "\"parent\":1,\"name\":\"";
	struct gen g = { prefix, strlen(prefix), 10u << 20, 0 };
	struct vfsd_state_error err;
	struct vfsd_state *s = NULL;
	int r = vfsd_state_read_ex(gen_read, &g, NULL, &s, &err);

	cr_assert_eq(r, -EBADMSG);
	cr_assert_null(s);
	cr_assert_eq(err.line, 4);
	cr_assert(strstr(err.reason, "longer than the limit of 65536 bytes"), "%s", err.reason);
	/* it stopped reading within one read buffer of the limit */
	cr_assert_lt(g.consumed, strlen(prefix) + 2 * 65536 + 1);

	/* a custom limit applies too */
	struct vfsd_state_read_opts o = { .limits = { .max_line = 100 } };
	struct gen g2 = { prefix, strlen(prefix), 1000, 0 };

	cr_assert_eq(vfsd_state_read_ex(gen_read, &g2, &o, NULL, &err), -EBADMSG);
	cr_assert(strstr(err.reason, "longer than the limit of 100 bytes"), "%s", err.reason);
	cr_assert_eq(err.line, 1);
}

Test(state, record_limits)
{
	_cleanup_free_ char *blob = seal(H S ROOT INODE(2, 1, "a", "dir") INODE(
	    3, 1, "b",
	    "dir") "{\"kind\":\"handle\",\"fh\":1,\"inode\":1,\"flags\":0,\"dir\":true}\n"
		   "{\"kind\":\"handle\",\"fh\":2,\"inode\":1,\"flags\":0,\"dir\":true}\n");
	struct vfsd_state_limits l = { .max_inodes = 2 };
	struct vfsd_state_error err;

	cr_assert_eq(vfsd_state_read_mem(blob, strlen(blob), &l, NULL, &err), -EBADMSG);
	cr_assert_eq(err.line, 5);
	cr_assert(strstr(err.reason, "more than 2 inodes"));
	l = (struct vfsd_state_limits){ .max_handles = 1 };
	cr_assert_eq(vfsd_state_read_mem(blob, strlen(blob), &l, NULL, &err), -EBADMSG);
	cr_assert_eq(err.line, 7);
	cr_assert(strstr(err.reason, "more than 1 handles"));
	cr_assert_eq(vfsd_state_read_mem(blob, strlen(blob), NULL, NULL, &err), 0);
}

struct collected {
	unsigned int n;
	uint64_t lines[16];
	char fields[16][64];
};

static int collect(const struct vfsd_state_error *e, void *userdata)
{
	struct collected *c = userdata;

	if (c->n < 16) {
		c->lines[c->n] = e->line;
		snprintf(c->fields[c->n], sizeof(c->fields[0]), "%s", e->field);
	}
	c->n++;
	return 0;
}

Test(state, report_all_finds_every_problem_without_cascades)
{
	/* inode 2 has a bad nlookup but a sound id: its child and handle must not cascade */
	_cleanup_free_ char *blob = seal(
	    H S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":-1,\"type\":\"dir\","
	    "\"parent\":1,\"name\":\"d\"}\n" INODE(3, 2, "f", "reg") INODE(4, 9, "g", "reg") INODE(
		3, 1, "h",
		"reg") "{\"kind\":\"handle\",\"fh\":1,\"inode\":2,\"flags\":0,\"dir\":true}\n"
		       "{\"kind\":\"handle\",\"fh\":2,\"inode\":77,\"flags\":0,\"dir\":false}\n");
	struct collected c = { 0 };
	struct memsrc m = { blob, strlen(blob), 0 };
	struct vfsd_state_read_opts o = { .report = collect, .userdata = &c };
	struct vfsd_state_error err;
	struct vfsd_state *s = NULL;

	cr_assert_eq(vfsd_state_read_ex(mem_read, &m, &o, &s, &err), -EBADMSG);
	cr_assert_null(s);
	cr_assert_eq(c.n, 4, "%u problems", c.n);
	cr_assert_eq(c.lines[0], 4);
	cr_assert_str_eq(c.fields[0], "nlookup");
	cr_assert_eq(c.lines[1], 6);
	cr_assert_str_eq(c.fields[1], "parent");
	cr_assert_eq(c.lines[2], 7);
	cr_assert_str_eq(c.fields[2], "id");
	cr_assert_eq(c.lines[3], 9);
	cr_assert_str_eq(c.fields[3], "inode");
	cr_assert_eq(err.line, 4, "err is the first problem");
}

/* A refused lost record is not "lost" for its children: one report, not one per child. */
static void expect_one_lost_problem(const char *body)
{
	_cleanup_free_ char *blob = seal(body);
	struct collected c = { 0 };
	struct memsrc m = { blob, strlen(blob), 0 };
	struct vfsd_state_read_opts o = { .report = collect, .userdata = &c };

	cr_assert_eq(vfsd_state_read_ex(mem_read, &m, &o, NULL, NULL), -EBADMSG);
	cr_assert_eq(c.n, 1, "%u problems", c.n);
	cr_assert_str_eq(c.fields[0], "lost");
}

Test(state, refused_lost_records_do_not_cascade)
{
	expect_one_lost_problem(
	    H11("\"lost\"") S ROOT
	    "{\"kind\":\"inode\",\"id\":2,\"nlookup\":1,\"type\":\"dir\","
	    "\"lost\":\"unlinked\",\"parent\":1,\"name\":\"d\"}\n" INODE(3, 2, "f", "reg"));
	expect_one_lost_problem(H11("\"lost\"") S LOST(1, "dir", "unlinked") INODE(2, 1, "d", "dir")
				    INODE(3, 2, "f", "reg"));
	expect_one_lost_problem(H S ROOT LOST(2, "dir", "unlinked") INODE(3, 2, "f", "reg"));
}

Test(state, error_format)
{
	struct vfsd_state_error e = { .code = -EBADMSG, .line = 7 };
	char buf[128];

	strcpy(e.kind, "inode");
	strcpy(e.field, "parent");
	strcpy(e.reason, "dangling parent 9");
	cr_assert_str_eq(vfsd_state_error_format(&e, buf, sizeof(buf)),
			 "line 7: inode: parent: dangling parent 9");
	e.line = 0;
	e.kind[0] = e.field[0] = 0;
	cr_assert_str_eq(vfsd_state_error_format(&e, buf, sizeof(buf)), "dangling parent 9");
	cr_assert_str_eq(vfsd_state_error_format(&e, buf, 5), "dang");
}

static ssize_t eio_read(void *opaque, void *buf, size_t len)
{
	return -EIO;
}

Test(state, io_errors_are_not_blob_errors)
{
	struct vfsd_state_error err;

	cr_assert_eq(vfsd_state_read_ex(eio_read, NULL, NULL, NULL, &err), -EIO);
	cr_assert_eq(err.code, -EIO);
	cr_assert_eq(err.line, 0);
}

/* ---- golden blobs -------------------------------------------------------------------------- */

static char *data_path(const char *name)
{
	char *p;
	const char *slash = strrchr(__FILE__, '/');

	/* __FILE__ is .../tests/unit/test_state.c */
	cr_assert(asprintf(&p, "%.*s/../data/%s", (int)(slash - __FILE__), __FILE__, name) > 0);
	return p;
}

static struct vfsd_state *load_golden(const char *name)
{
	_cleanup_free_ char *path = data_path(name);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct vfsd_state_error err;
	struct vfsd_state *s = NULL;
	char msg[512];

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(vfsd_state_read(fd, NULL, &s, &err), 0, "%s: %s", name,
		     vfsd_state_error_format(&err, msg, sizeof(msg)));
	return s;
}

Test(state, golden_v1_0_basic)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = load_golden("state-v1.0-basic.jsonl");
	const struct vfsd_state_inode *in;
	const struct vfsd_state_handle *h;
	char path[256];

	cr_assert_eq(s->header.major, 1);
	cr_assert_eq(s->header.minor, 0);
	cr_assert_str_eq(s->header.producer, "vfsd 0.1.0");
	cr_assert_eq(s->header.n_required, 0);
	cr_assert_eq(s->header.n_optional, 0);
	cr_assert(s->session.initialized);
	cr_assert_eq(s->session.fuse_major, 7);
	cr_assert_eq(s->session.fuse_minor, 38);
	cr_assert_eq(s->session.fuse_flags, 0x40ad3ffbull);
	cr_assert_eq(s->session.max_write, 1048576);
	cr_assert_eq(s->session.max_readahead, 131072);
	cr_assert_eq(s->session.next_nodeid, 6);
	cr_assert_eq(s->session.next_fh, 3);
	cr_assert_eq(s->session.mode, VFSD_STATE_MODE_FIND_PATHS);
	cr_assert_eq(s->n_inodes, 5);
	cr_assert_eq(s->n_handles, 3);

	in = &s->inodes[0];
	cr_assert_eq(in->id, 1);
	cr_assert_eq(in->nlookup, 2);
	cr_assert_eq(in->type, VFSD_STATE_T_DIR);
	cr_assert_null(in->name);
	cr_assert_eq(in->ino, 128);
	in = vfsd_state_inode_by_id(s, 2);
	cr_assert_eq(in->type, VFSD_STATE_T_DIR);
	cr_assert_eq(in->parent, 1);
	cr_assert_str_eq(in->name, "docs");
	cr_assert_eq(in->nlookup, 3);
	cr_assert_eq(in->ino, 131);
	in = vfsd_state_inode_by_id(s, 3);
	cr_assert_eq(in->type, VFSD_STATE_T_REG);
	cr_assert_eq(in->parent, 2);
	cr_assert_str_eq(in->name, "readme.txt");
	cr_assert_eq(in->nlookup, 1);
	vfsd_state_inode_path(s, in, path, sizeof(path));
	cr_assert_str_eq(path, "docs/readme.txt");
	in = vfsd_state_inode_by_id(s, 4);
	cr_assert_eq(in->type, VFSD_STATE_T_LNK);
	cr_assert_str_eq(in->name, "latest");
	cr_assert_eq(in->parent, 2);
	in = vfsd_state_inode_by_id(s, 5);
	cr_assert_eq(in->type, VFSD_STATE_T_REG);
	cr_assert_str_eq(in->name, "caf\xc3\xa9 menu.md");
	cr_assert_eq(in->parent, 1);
	cr_assert_not(in->has_file_handle);

	h = vfsd_state_handle_by_fh(s, 0);
	cr_assert_eq(h->inode, 2);
	cr_assert(h->dir);
	cr_assert(h->has_dir_offset);
	cr_assert_eq(h->dir_offset, 3);
	cr_assert_eq(h->flags, 0200000); /* O_RDONLY | O_DIRECTORY on x86 */
	h = vfsd_state_handle_by_fh(s, 1);
	cr_assert_eq(h->inode, 3);
	cr_assert_not(h->dir);
	cr_assert_eq(h->flags, 02002); /* O_RDWR | O_APPEND */
	h = vfsd_state_handle_by_fh(s, 2);
	cr_assert_eq(h->inode, 5);
	cr_assert_eq(h->flags, 1);
}

Test(state, golden_v1_0_orphans_handles)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s =
	    load_golden("state-v1.0-orphans-handles.jsonl");
	const struct vfsd_state_inode *in;
	static const uint8_t want_fh[8] = { 0x83, 0x00, 0x00, 0x00, 0x2a, 0x1b, 0x3c, 0x4d };

	cr_assert(vfsd_state_header_has_feature(&s->header, true, "orphans"));
	cr_assert(vfsd_state_header_has_feature(&s->header, true, "file-handles"));
	cr_assert_eq(s->session.mode, VFSD_STATE_MODE_FILE_HANDLES);
	cr_assert_eq(s->session.next_nodeid, 9);
	cr_assert_eq(s->session.next_fh, 12);
	cr_assert_eq(s->n_inodes, 5);
	cr_assert_eq(s->n_handles, 3);

	in = vfsd_state_inode_by_id(s, 1);
	cr_assert(in->has_file_handle);
	cr_assert_eq(in->fh_type, 1);
	cr_assert_eq(in->fh_size, 8);
	in = vfsd_state_inode_by_id(s, 3);
	cr_assert_eq(in->parent, 1);
	cr_assert_str_eq(in->name, "data");
	cr_assert(in->has_file_handle);
	in = vfsd_state_inode_by_id(s, 5);
	cr_assert_eq(in->parent, 0);
	cr_assert_null(in->name);
	cr_assert_str_eq(in->orphan, "5");
	cr_assert_eq(in->nlookup, 0);
	cr_assert(in->has_file_handle);
	in = vfsd_state_inode_by_id(s, 7);
	cr_assert_null(in->name);
	cr_assert_null(in->orphan);
	cr_assert(in->has_file_handle);
	cr_assert_eq(in->fh_type, 1);
	cr_assert_eq(in->fh_size, 8);
	cr_assert_eq(memcmp(in->fh_bytes, want_fh, 8), 0);
	cr_assert_eq(in->mnt_id, 29);
	in = vfsd_state_inode_by_id(s, 8);
	cr_assert_eq(in->parent, 3);
	cr_assert_str_eq(in->name, "\xff\x01raw");
	cr_assert_str_eq(in->orphan, "8");

	cr_assert_eq(vfsd_state_handle_by_fh(s, 9)->inode, 5);
	cr_assert_eq(vfsd_state_handle_by_fh(s, 10)->inode, 7);
	cr_assert_eq(vfsd_state_handle_by_fh(s, 11)->inode, 8);
	cr_assert_eq(vfsd_state_handle_by_fh(s, 11)->flags, 2);
}

Test(state, golden_v1_1_lost)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *s = load_golden("state-v1.1-lost.jsonl");
	_cleanup_free_ char *path = data_path("state-v1.1-lost.jsonl");
	_cleanup_free_ char *orig = NULL, *again = NULL;
	const struct vfsd_state_inode *in;
	const struct vfsd_state_handle *h;
	struct stat st;
	size_t len;
	char p[256];
	int fd;

	cr_assert_eq(s->header.major, 1);
	cr_assert_eq(s->header.minor, 1);
	cr_assert_eq(s->header.n_required, 1);
	cr_assert(vfsd_state_header_has_feature(&s->header, true, "lost"));
	cr_assert_eq(s->session.mode, VFSD_STATE_MODE_FIND_PATHS);
	cr_assert_eq(s->session.next_nodeid, 8);
	cr_assert_eq(s->session.next_fh, 4);
	cr_assert_eq(s->n_inodes, 6);
	cr_assert_eq(s->n_handles, 3);

	in = vfsd_state_inode_by_id(s, 3);
	cr_assert_eq(in->lost, VFSD_STATE_LOST_NONE);
	vfsd_state_inode_path(s, in, p, sizeof(p));
	cr_assert_str_eq(p, "work/notes.txt");
	/* a directory the guest removed itself while still using it */
	in = vfsd_state_inode_by_id(s, 4);
	cr_assert_eq(in->lost, VFSD_STATE_LOST_UNLINKED);
	cr_assert_eq(in->type, VFSD_STATE_T_DIR);
	cr_assert_eq(in->nlookup, 1);
	cr_assert(in->has_ino);
	cr_assert_eq(in->ino, 140);
	cr_assert_eq(in->parent, 0);
	cr_assert_null(in->name);
	cr_assert_null(in->path);
	cr_assert_null(in->orphan);
	cr_assert_not(in->has_file_handle);
	/* a file the source could not find, open */
	in = vfsd_state_inode_by_id(s, 6);
	cr_assert_eq(in->lost, VFSD_STATE_LOST_NOT_FOUND);
	cr_assert_eq(in->type, VFSD_STATE_T_REG);
	cr_assert_eq(in->nlookup, 2);
	cr_assert_not(in->has_ino);
	vfsd_state_inode_path(s, in, p, sizeof(p));
	cr_assert_str_eq(p, "<lost>");
	in = vfsd_state_inode_by_id(s, 7);
	cr_assert_eq(in->type, VFSD_STATE_T_LNK);
	cr_assert_eq(in->parent, 2);
	h = vfsd_state_handle_by_fh(s, 3);
	cr_assert_eq(h->inode, 6);
	cr_assert_eq(h->flags, 02001); /* O_WRONLY | O_APPEND */
	cr_assert_eq(vfsd_state_handle_by_fh(s, 0)->dir_offset, 2);

	/* read -> write gives the very same bytes */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	orig = malloc((size_t)st.st_size + 1);
	cr_assert_eq(read(fd, orig, (size_t)st.st_size), st.st_size);
	close(fd);
	again = encode(s, &len);
	cr_assert_eq(len, (size_t)st.st_size);
	cr_assert_eq(memcmp(orig, again, len), 0, "re-encoding the 1.1 golden blob differs");
}

/* 1.0 blobs (no lost records) still load and re-encode as 1.0, byte for byte. */
Test(state, golden_v1_0_round_trip_as_1_0)
{
	static const char *const names[] = { "state-v1.0-basic.jsonl",
					     "state-v1.0-orphans-handles.jsonl" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_(vfsd_state_freep) struct vfsd_state *s = load_golden(names[i]);
		_cleanup_free_ char *path = data_path(names[i]), *orig = NULL, *again = NULL;
		struct stat st;
		size_t len;
		int fd;

		cr_assert_eq(s->header.minor, 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_geq(fd, 0);
		cr_assert_eq(fstat(fd, &st), 0);
		orig = malloc((size_t)st.st_size + 1);
		cr_assert_eq(read(fd, orig, (size_t)st.st_size), st.st_size);
		close(fd);
		again = encode(s, &len);
		cr_assert_eq(len, (size_t)st.st_size, "%s", names[i]);
		cr_assert_eq(memcmp(orig, again, len), 0, "%s", names[i]);
	}
}

/* ---- migration streams --------------------------------------------------------------------- */

static void put_be32(int fd, uint32_t v)
{
	uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };

	cr_assert_eq(write_full(fd, b, 4), 0);
}

Test(state, migration_stream_extraction)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model(), *b = NULL;
	_cleanup_free_ char *blob = NULL;
	char path[] = "/tmp/vfsd-state-mig-XXXXXX";
	_cleanup_close_ int fd = mkstemp(path);
	const char marker[] = "\x05\x15vhost-user-fs-backend";
	static const size_t sizes[] = { 1, 7, 300, 3, 64, 13 };
	struct vfsd_state_migstream m;
	struct vfsd_state_error err;
	uint8_t junk[5000];
	size_t len, off = 0;
	unsigned int count;
	off_t at;

	cr_assert_geq(fd, 0);
	unlink(path);
	blob = encode(a, &len);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 2654435761u >> 13);
	/* "guest RAM": noise and two decoys, one implausible and one plausible */
	cr_assert_eq(write_full(fd, junk, sizeof(junk)), 0);
	cr_assert_eq(write_full(fd, marker, sizeof(marker) - 1), 0);
	put_be32(fd, 0);
	put_be32(fd, 0x7fffffff);
	cr_assert_eq(write_full(fd, junk, 100), 0);
	cr_assert_eq(write_full(fd, marker, sizeof(marker) - 1), 0);
	put_be32(fd, 0);
	put_be32(fd, 2);
	cr_assert_eq(write_full(fd, "{}", 2), 0);
	put_be32(fd, 0);
	cr_assert_eq(write_full(fd, junk, 777), 0);
	/* the real subsection, the blob in odd chunk sizes */
	cr_assert_eq(write_full(fd, marker, sizeof(marker) - 1), 0);
	put_be32(fd, 0);
	for (size_t i = 0; off < len; i++) {
		size_t n = MIN(sizes[i % ARRAY_SIZE(sizes)], len - off);

		put_be32(fd, (uint32_t)n);
		cr_assert_eq(write_full(fd, blob + off, n), 0);
		off += n;
	}
	put_be32(fd, 0);
	cr_assert_eq(write_full(fd, "\x04\x00\x00\x00\x07", 5), 0); /* more sections follow */

	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(vfsd_state_migstream_find(fd, &at, &count), 0);
	cr_assert_eq(count, 2);
	vfsd_state_migstream_init(&m, fd, at);
	cr_assert_eq(vfsd_state_read_ex(vfsd_state_migstream_read, &m, NULL, &b, &err), 0, "%s",
		     err.reason);
	cr_assert(m.done);
	cr_assert_gt(m.chunks, 6);
	assert_same(a, b);

	/*
	 * The real subsection damaged at its start (its first chunk no longer
	 * begins with '{'): the plausible decoy in "guest RAM" must not be used.
	 */
	{
		off_t real = at;
		char bad = 'x';
		off_t decoy_at;

		cr_assert_eq(pwrite(fd, &bad, 1, real + 4), 1);
		cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
		cr_assert_eq(vfsd_state_migstream_find(fd, &decoy_at, &count), -ENOENT);
		cr_assert_eq(decoy_at, real, "reported where the damaged subsection is");
		cr_assert_eq(count, 1, "the decoy still counts as a plausible candidate");
		bad = '{';
		cr_assert_eq(pwrite(fd, &bad, 1, real + 4), 1);
	}

	/* a stream cut inside the chunks */
	cr_assert_eq(ftruncate(fd, at + 200), 0);
	vfsd_state_migstream_init(&m, fd, at);
	cr_assert_eq(vfsd_state_read_ex(vfsd_state_migstream_read, &m, NULL, NULL, &err), -EBADMSG);
	cr_assert_not_null(m.problem);
	cr_assert_eq(err.line, 0);

	/* nothing there at all */
	cr_assert_eq(ftruncate(fd, 100), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(vfsd_state_migstream_find(fd, &at, &count), -ENOENT);
	cr_assert_eq(count, 0);
}

/* ---- streaming (read_opts.session_cb / inode_cb) ------------------------------------------- */

struct sink {
	int sessions;
	struct vfsd_state *got; /* the inodes handed out, copied */
	int fail_at;		/* 1-based inode callback that returns -ESTALE; 0: none */
	size_t calls;
};

static int sink_session(void *ud, const struct vfsd_state_session *ss)
{
	struct sink *k = ud;

	cr_assert_eq(k->calls, 0, "the session comes before every inode");
	k->sessions++;
	k->got->session = *ss;
	k->got->has_session = true;
	return 0;
}

static int sink_inode(void *ud, const struct vfsd_state_inode *in)
{
	struct sink *k = ud;

	cr_assert_eq(k->sessions, 1);
	if (++k->calls == (size_t)k->fail_at)
		return -ESTALE;
	cr_assert_eq(vfsd_state_add_inode(k->got, in), 0);
	return 0;
}

static int read_streamed(const char *blob, size_t len, struct sink *k, struct vfsd_state **ret,
			 struct vfsd_state_error *err)
{
	struct memsrc m = { blob, len, 0 };
	struct vfsd_state_read_opts o = { .session_cb = sink_session,
					  .inode_cb = sink_inode,
					  .sink = k };

	cr_assert_eq(vfsd_state_new(&k->got), 0);
	return vfsd_state_read_ex(mem_read, &m, &o, ret, err);
}

/* Streamed, every inode comes out once, in blob order, as the model would hold it. */
Test(state, streaming_hands_out_every_inode_in_order)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model(), *model = NULL, *b = NULL;
	_cleanup_free_ char *blob = NULL;
	struct vfsd_state_error err;
	struct sink k = { 0 };
	size_t len;

	blob = encode(a, &len);
	cr_assert_eq(vfsd_state_read_mem(blob, len, NULL, &model, NULL), 0);
	cr_assert_eq(read_streamed(blob, len, &k, &b, &err), 0, "%s", err.reason);
	cr_assert_eq(k.sessions, 1);
	cr_assert_eq(b->n_inodes, 0, "streamed inodes are not kept");
	cr_assert_eq(b->n_streamed, model->n_inodes);
	k.got->header = model->header;
	k.got->n_handles = 0;
	for (size_t i = 0; i < b->n_handles; i++)
		cr_assert_eq(vfsd_state_add_handle(k.got, &b->handles[i]), 0);
	assert_same(model, k.got);
	vfsd_state_free(k.got);
}

/* Problems: no inode after the first problem goes out; late ones fail the read all the same. */
Test(state, streaming_stops_at_problems_and_sink_errors)
{
	_cleanup_(vfsd_state_freep) struct vfsd_state *a = build_model();
	_cleanup_free_ char *blob = NULL, *bad = NULL;
	struct vfsd_state *b = (struct vfsd_state *)0x1;
	struct vfsd_state_error err;
	struct sink k = { 0 };
	size_t len;

	/* A dangling parent on line 5: the inodes of lines 3-4 went out, none after. */
	bad =
	    seal(H S ROOT INODE(2, 1, "d", "dir") INODE(3, 9, "x", "reg") INODE(4, 2, "y", "reg"));
	cr_assert_eq(read_streamed(bad, strlen(bad), &k, &b, &err), -EBADMSG);
	cr_assert_eq(err.line, 5);
	cr_assert_eq(k.calls, 2);
	cr_assert_eq(b, (struct vfsd_state *)0x1);
	vfsd_state_free(k.got);

	/* A wrong checksum: every inode went out, and the read still fails. */
	blob = encode(a, &len);
	char *sum = strstr(blob, "crc32c:");
	cr_assert_not_null(sum);
	sum[7] = sum[7] == '0' ? '1' : '0';
	k = (struct sink){ 0 };
	cr_assert_eq(read_streamed(blob, len, &k, &b, &err), -EBADMSG);
	cr_assert_eq(k.calls, a->n_inodes);
	cr_assert_str_eq(err.field, "checksum");
	cr_assert_eq(b, (struct vfsd_state *)0x1);
	vfsd_state_free(k.got);

	/* The sink says no at the third inode: that code, no more callbacks. */
	sum[7] = sum[7] == '0' ? '1' : '0';
	k = (struct sink){ .fail_at = 3 };
	cr_assert_eq(read_streamed(blob, len, &k, &b, &err), -ESTALE);
	cr_assert_eq(k.calls, 3);
	cr_assert(strstr(err.reason, "applying the state"), "%s", err.reason);
	cr_assert_eq(b, (struct vfsd_state *)0x1);
	vfsd_state_free(k.got);
}
