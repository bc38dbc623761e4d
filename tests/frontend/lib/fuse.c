/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE requests through the virtqueues, the way the Linux virtio-fs driver
 * lays them out: device-readable in header + args, device-writable out header
 * + reply, one chain per request.
 */
#include <string.h>

#include "vfe.h"
#include "vfsd/util.h"

int vfe_fuse_request(struct vfe *fe, unsigned q, uint32_t opcode, uint64_t nodeid,
		     const struct vfe_buf *in, size_t nin, void *out, size_t out_size,
		     size_t *ret_len)
{
	bool no_reply = opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;
	uint64_t mark = vfe_alloc_mark(fe);
	struct fuse_in_header ih = { 0 };
	struct fuse_out_header oh;
	struct vfe_buf rd, wr = { 0 };
	struct vfe_used u;
	size_t in_len = sizeof(ih), off;
	uint8_t *gin, *gout = NULL;
	int head, r;

	for (size_t i = 0; i < nin; i++)
		in_len += in[i].len;
	if (in_len > UINT32_MAX || out_size > UINT32_MAX - sizeof(oh))
		return -E2BIG;
	gin = vfe_alloc(fe, in_len, 8, NULL);
	if (!gin)
		return -ENOMEM;
	ih.len = (uint32_t)in_len;
	ih.opcode = opcode;
	ih.unique = fe->next_unique++;
	ih.nodeid = nodeid;
	ih.uid = (uint32_t)getuid();
	ih.gid = (uint32_t)getgid();
	ih.pid = (uint32_t)getpid();
	memcpy(gin, &ih, sizeof(ih));
	off = sizeof(ih);
	for (size_t i = 0; i < nin; i++) {
		if (in[i].len)
			memcpy(gin + off, in[i].ptr, in[i].len);
		off += in[i].len;
	}
	rd = (struct vfe_buf){ gin, in_len };
	if (!no_reply) {
		gout = vfe_alloc(fe, sizeof(oh) + out_size, 8, NULL);
		if (!gout) {
			r = -ENOMEM;
			goto out;
		}
		wr = (struct vfe_buf){ gout, sizeof(oh) + out_size };
	}
	head = vfe_submit(fe, q, &rd, 1, &wr, no_reply ? 0 : 1, NULL);
	if (head < 0) {
		r = head;
		goto out;
	}
	r = vfe_wait_used(fe, q, head, 0, &u);
	if (r < 0 || no_reply)
		goto out;
	memcpy(&oh, gout, sizeof(oh));
	/* The used length, out.len and unique must agree; error is 0 or -errno. */
	if (u.len < sizeof(oh) || oh.len != u.len || oh.len > sizeof(oh) + out_size ||
	    oh.unique != ih.unique || oh.error > 0 || oh.error < -4095) {
		r = -EBADMSG;
		goto out;
	}
	if (out && oh.len > sizeof(oh))
		memcpy(out, gout + sizeof(oh), oh.len - sizeof(oh));
	if (ret_len)
		*ret_len = oh.len - sizeof(oh);
	r = oh.error;
out:
	vfe_alloc_reset(fe, mark);
	return r;
}

/* Call with a fixed-size reply that must be complete when there is no error. */
static int fuse_call(struct vfe *fe, uint32_t opcode, uint64_t nodeid, const struct vfe_buf *in,
		     size_t nin, void *out, size_t out_size)
{
	size_t len = 0;
	int r = vfe_fuse_request(fe, fe->fuse_queue, opcode, nodeid, in, nin, out, out_size, &len);

	if (r == 0 && len < out_size)
		return -EBADMSG;
	return r;
}

#define NAME_BUF(s) ((struct vfe_buf){ (void *)(s), strlen(s) + 1 })

int vfe_fuse_init(struct vfe *fe, struct fuse_init_out *ret)
{
	struct fuse_init_in in = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = 128 * 1024,
		.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_MAX_PAGES |
			 FUSE_PARALLEL_DIROPS | FUSE_AUTO_INVAL_DATA,
	};
	struct vfe_buf b = { &in, sizeof(in) };
	struct fuse_init_out o = { 0 };
	size_t len = 0;
	int r = vfe_fuse_request(fe, fe->fuse_queue, FUSE_INIT, 0, &b, 1, &o, sizeof(o), &len);

	if (r < 0)
		return r;
	/* Old servers answer with a shorter struct; 7.23+ sends all 64 bytes. */
	if (len < FUSE_COMPAT_22_INIT_OUT_SIZE)
		return -EBADMSG;
	fe->init_out = o;
	if (ret)
		*ret = o;
	return 0;
}

int vfe_fuse_lookup(struct vfe *fe, uint64_t parent, const char *name, struct fuse_entry_out *ret)
{
	struct vfe_buf b = NAME_BUF(name);
	struct fuse_entry_out o;
	int r = fuse_call(fe, FUSE_LOOKUP, parent, &b, 1, &o, sizeof(o));

	if (r == 0 && ret)
		*ret = o;
	return r;
}

int vfe_fuse_lookup_path(struct vfe *fe, const char *path, uint64_t *ret_nodeid,
			 struct fuse_attr *ret_attr)
{
	_cleanup_free_ char *copy = strdup(path);
	uint64_t node = FUSE_ROOT_ID;
	char *save = NULL;
	int r;

	if (!copy)
		return -ENOMEM;
	if (ret_attr) {
		struct fuse_attr_out a;

		r = vfe_fuse_getattr(fe, node, &a);
		if (r < 0)
			return r;
		*ret_attr = a.attr;
	}
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		struct fuse_entry_out e = { 0 };

		r = vfe_fuse_lookup(fe, node, c, &e);
		if (r < 0)
			return r;
		if (e.nodeid == 0)
			return -ENOENT; /* a negative entry */
		node = e.nodeid;
		if (ret_attr)
			*ret_attr = e.attr;
	}
	if (ret_nodeid)
		*ret_nodeid = node;
	return 0;
}

int vfe_fuse_getattr(struct vfe *fe, uint64_t nodeid, struct fuse_attr_out *ret)
{
	struct fuse_getattr_in in = { 0 };
	struct vfe_buf b = { &in, sizeof(in) };
	struct fuse_attr_out o;
	int r = fuse_call(fe, FUSE_GETATTR, nodeid, &b, 1, &o, sizeof(o));

	if (r == 0 && ret)
		*ret = o;
	return r;
}

int vfe_fuse_mkdir(struct vfe *fe, uint64_t parent, const char *name, uint32_t mode,
		   struct fuse_entry_out *ret)
{
	struct fuse_mkdir_in in = { .mode = mode, .umask = 0 };
	struct vfe_buf b[2] = { { &in, sizeof(in) }, NAME_BUF(name) };
	struct fuse_entry_out o;
	int r = fuse_call(fe, FUSE_MKDIR, parent, b, 2, &o, sizeof(o));

	if (r == 0 && ret)
		*ret = o;
	return r;
}

int vfe_fuse_create(struct vfe *fe, uint64_t parent, const char *name, uint32_t flags,
		    uint32_t mode, struct fuse_entry_out *ret_entry, struct fuse_open_out *ret_open)
{
	struct fuse_create_in in = { .flags = flags, .mode = mode, .umask = 0 };
	struct vfe_buf b[2] = { { &in, sizeof(in) }, NAME_BUF(name) };
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} __attribute__((packed)) o;
	int r = fuse_call(fe, FUSE_CREATE, parent, b, 2, &o, sizeof(o));

	if (r == 0 && ret_entry)
		*ret_entry = o.e;
	if (r == 0 && ret_open)
		*ret_open = o.o;
	return r;
}

int vfe_fuse_open(struct vfe *fe, uint64_t nodeid, uint32_t flags, bool dir,
		  struct fuse_open_out *ret)
{
	struct fuse_open_in in = { .flags = flags };
	struct vfe_buf b = { &in, sizeof(in) };
	struct fuse_open_out o;
	int r = fuse_call(fe, dir ? FUSE_OPENDIR : FUSE_OPEN, nodeid, &b, 1, &o, sizeof(o));

	if (r == 0 && ret)
		*ret = o;
	return r;
}

static int read_op(struct vfe *fe, uint32_t opcode, uint64_t nodeid, uint64_t fh, uint64_t offset,
		   void *buf, uint32_t size, size_t *ret_len)
{
	struct fuse_read_in in = { .fh = fh, .offset = offset, .size = size };
	struct vfe_buf b = { &in, sizeof(in) };
	size_t len = 0;
	int r = vfe_fuse_request(fe, fe->fuse_queue, opcode, nodeid, &b, 1, buf, size, &len);

	if (r == 0 && ret_len)
		*ret_len = len;
	return r;
}

int vfe_fuse_read(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, void *buf,
		  uint32_t size, size_t *ret_len)
{
	return read_op(fe, FUSE_READ, nodeid, fh, offset, buf, size, ret_len);
}

int vfe_fuse_readdir(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, void *buf,
		     uint32_t size, size_t *ret_len)
{
	return read_op(fe, FUSE_READDIR, nodeid, fh, offset, buf, size, ret_len);
}

int vfe_fuse_write(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, const void *buf,
		   uint32_t size, size_t *ret_len)
{
	struct fuse_write_in in = { .fh = fh, .offset = offset, .size = size };
	struct vfe_buf b[2] = { { &in, sizeof(in) }, { (void *)buf, size } };
	struct fuse_write_out o;
	int r = fuse_call(fe, FUSE_WRITE, nodeid, b, 2, &o, sizeof(o));

	if (r == 0 && ret_len)
		*ret_len = o.size;
	return r;
}

int vfe_fuse_release(struct vfe *fe, uint64_t nodeid, uint64_t fh, bool dir)
{
	struct fuse_release_in in = { .fh = fh };
	struct vfe_buf b = { &in, sizeof(in) };

	return fuse_call(fe, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, nodeid, &b, 1, NULL, 0);
}

int vfe_fuse_readdir_names(struct vfe *fe, uint64_t nodeid,
			   int (*cb)(const char *name, uint64_t ino, uint32_t type, void *ud),
			   void *ud)
{
	struct fuse_open_out oo = { 0 };
	uint64_t off = 0;
	_cleanup_free_ uint8_t *buf = malloc(4096);
	int r, r2;

	if (!buf)
		return -ENOMEM;
	r = vfe_fuse_open(fe, nodeid, 0, true, &oo);
	if (r < 0)
		return r;
	for (;;) {
		size_t len = 0, pos = 0;

		r = vfe_fuse_readdir(fe, nodeid, oo.fh, off, buf, 4096, &len);
		if (r < 0 || len == 0)
			break;
		while (pos + FUSE_NAME_OFFSET <= len) {
			struct fuse_dirent d;
			char name[256];

			memcpy(&d, buf + pos, FUSE_NAME_OFFSET);
			if (d.namelen > 255 || pos + FUSE_DIRENT_SIZE(&d) > len) {
				r = -EBADMSG;
				goto done;
			}
			memcpy(name, buf + pos + FUSE_NAME_OFFSET, d.namelen);
			name[d.namelen] = 0;
			off = d.off;
			pos += FUSE_DIRENT_SIZE(&d);
			r = cb ? cb(name, d.ino, d.type, ud) : 0;
			if (r != 0)
				goto done;
		}
		if (pos == 0) {
			r = -EBADMSG;
			break;
		}
	}
done:
	r2 = vfe_fuse_release(fe, nodeid, oo.fh, true);
	return r != 0 ? r : r2;
}

int vfe_fuse_unlink(struct vfe *fe, uint64_t parent, const char *name, bool dir)
{
	struct vfe_buf b = NAME_BUF(name);

	return fuse_call(fe, dir ? FUSE_RMDIR : FUSE_UNLINK, parent, &b, 1, NULL, 0);
}

int vfe_fuse_rename(struct vfe *fe, uint64_t olddir, const char *oldname, uint64_t newdir,
		    const char *newname)
{
	struct fuse_rename_in in = { .newdir = newdir };
	struct vfe_buf b[3] = { { &in, sizeof(in) }, NAME_BUF(oldname), NAME_BUF(newname) };

	return fuse_call(fe, FUSE_RENAME, olddir, b, 3, NULL, 0);
}

int vfe_fuse_forget(struct vfe *fe, uint64_t nodeid, uint64_t nlookup)
{
	struct fuse_forget_in in = { .nlookup = nlookup };
	struct vfe_buf b = { &in, sizeof(in) };

	return vfe_fuse_request(fe, VIRTIO_FS_HIPRIO_QUEUE, FUSE_FORGET, nodeid, &b, 1, NULL, 0,
				NULL);
}

int vfe_fuse_destroy(struct vfe *fe)
{
	/* The kernel sends it with node id 0 and no argument, and waits for the reply. */
	return fuse_call(fe, FUSE_DESTROY, 0, NULL, 0, NULL, 0);
}

int vfe_fuse_statfs(struct vfe *fe, struct fuse_statfs_out *ret)
{
	struct fuse_statfs_out o;
	int r = fuse_call(fe, FUSE_STATFS, FUSE_ROOT_ID, NULL, 0, &o, sizeof(o));

	if (r == 0 && ret)
		*ret = o;
	return r;
}
