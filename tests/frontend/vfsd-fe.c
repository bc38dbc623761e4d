/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfsd-fe: drive a virtio-fs vhost-user back-end from the command line, playing
 * QEMU's and the guest's parts (no VM): inspect features, list, read and write
 * files, and measure read and write throughput and metadata operation rates.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vfe.h"
#include "vfsd/util.h"

struct cli {
	const char *socket;
	unsigned queues;
	unsigned queue_size;
	unsigned regions;
	uint64_t mem_mib;
	int timeout_ms;
	bool indirect, no_event_idx, mem_slots, always_kick;
	uint32_t split;
	uint64_t bench_size, bench_count, file_size, files;
	unsigned jobs;
	double duration;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vfsd-fe --socket PATH [OPTIONS] COMMAND [ARGS...]\n"
	    "\n"
	    "Plays QEMU's vhost-user front-end and the guest's FUSE client against a\n"
	    "virtio-fs back-end (vfsd, virtiofsd...) listening on PATH.\n"
	    "\n"
	    "Commands:\n"
	    "  features                 print features, protocol features, queue and slot counts\n"
	    "  ls PATH                  list a directory of the share (INIT, LOOKUP, READDIR)\n"
	    "  stat PATH                print the attributes of PATH\n"
	    "  cat PATH                 copy a file of the share to stdout\n"
	    "  put LOCALFILE PATH       create PATH in the share with LOCALFILE's contents\n"
	    "  mkdir PATH               create a directory\n"
	    "  rm PATH                  remove a file (or an empty directory)\n"
	    "  statfs                   print the share's file system statistics\n"
	    "  bench-read PATH          read PATH repeatedly; prints MB/s and ops/s\n"
	    "      --size N             bytes per READ (default 131072; k/m suffixes)\n"
	    "      --count N            number of READs (default 1000; all jobs together)\n"
	    "      --duration S         run for S seconds instead of --count requests\n"
	    "      --jobs N             N threads, each on its own request queue (raises -q)\n"
	    "  bench-write PATH         create PATH, write it sequentially; prints MB/s, ops/s\n"
	    "      --size, --count, --duration, --jobs as for bench-read\n"
	    "      --file-size N        wrap around after N bytes (default 32m)\n"
	    "  bench-meta DIR           in DIR: LOOKUP+GETATTR of --files files (made first),\n"
	    "                           then CREATE+RELEASE+UNLINK+FORGET; prints ops/s of each\n"
	    "      --files N            files for the lookup loop (default 256)\n"
	    "      --count N, --duration S  per phase (default 1000 iterations)\n"
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH        the back-end's vhost-user socket (required)\n"
	    "  -q, --queues N           request queues to set up (default 1; requests use the "
	    "first)\n"
	    "      --queue-size N       virtqueue size (default 128)\n"
	    "      --mem MIB            guest RAM size (default 64)\n"
	    "      --regions N          split guest RAM into N memory regions (default 1)\n"
	    "      --mem-slots          announce memory with ADD_MEM_REG, not SET_MEM_TABLE\n"
	    "      --indirect           send requests as indirect descriptor tables\n"
	    "      --split N            split buffers into descriptors of at most N bytes\n"
	    "      --no-event-idx       do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
	    "      --always-kick        kick on every request, whatever avail_event says\n"
	    "  -t, --timeout MS         per-reply timeout (default 10000)\n"
	    "  -h, --help               this text\n");
}

static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	}
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static const char *const feature_names[64] = {
	[VIRTIO_F_NOTIFY_ON_EMPTY_BIT] = "NOTIFY_ON_EMPTY",
	[VHOST_F_LOG_ALL_BIT] = "LOG_ALL",
	[27] = "ANY_LAYOUT",
	[VIRTIO_RING_F_INDIRECT_DESC_BIT] = "INDIRECT_DESC",
	[VIRTIO_RING_F_EVENT_IDX_BIT] = "EVENT_IDX",
	[VHOST_USER_F_PROTOCOL_FEATURES_BIT] = "PROTOCOL_FEATURES",
	[VIRTIO_F_VERSION_1_BIT] = "VERSION_1",
	[VIRTIO_F_ACCESS_PLATFORM_BIT] = "ACCESS_PLATFORM",
	[VIRTIO_F_RING_PACKED_BIT] = "RING_PACKED",
	[35] = "IN_ORDER",
	[38] = "NOTIFICATION_DATA",
	[40] = "RING_RESET",
};

static const char *const protocol_names[64] = {
	[0] = "MQ",
	[1] = "LOG_SHMFD",
	[2] = "RARP",
	[3] = "REPLY_ACK",
	[4] = "NET_MTU",
	[5] = "BACKEND_REQ",
	[6] = "CROSS_ENDIAN",
	[7] = "CRYPTO_SESSION",
	[8] = "PAGEFAULT",
	[9] = "CONFIG",
	[10] = "BACKEND_SEND_FD",
	[11] = "HOST_NOTIFIER",
	[12] = "INFLIGHT_SHMFD",
	[13] = "RESET_DEVICE",
	[14] = "INBAND_NOTIFICATIONS",
	[15] = "CONFIGURE_MEM_SLOTS",
	[16] = "STATUS",
	[17] = "XEN_MMAP",
	[18] = "SHARED_OBJECT",
	[19] = "DEVICE_STATE",
};

static void print_bits(const char *what, uint64_t v, const char *const names[64])
{
	printf("%-18s 0x%016" PRIx64 " ", what, v);
	for (unsigned b = 0; b < 64; b++)
		if (v & BIT64(b)) {
			if (names[b])
				printf(" %s", names[b]);
			else
				printf(" bit%u", b);
		}
	printf("\n");
}

static int cmd_features(struct vfe *fe)
{
	int r;

	/* QEMU's realize sequence. */
	r = vfe_init(fe, 1, VFE_PROTOCOL_MASK);
	if (r < 0)
		return r;
	print_bits("features:", fe->features, feature_names);
	print_bits("protocol features:", fe->protocol_features, protocol_names);
	if (fe->acked_protocol & BIT64(VHU_PROTOCOL_F_MQ))
		printf("%-18s %" PRIu64 "\n", "queue num:", fe->queue_num);
	if (fe->acked_protocol & BIT64(VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
		printf("%-18s %" PRIu64 "\n", "max mem slots:", fe->max_mem_slots);
	return 0;
}

static int start(struct vfe *fe, const struct cli *c)
{
	uint64_t features = VFE_FEATURES_DEFAULT;
	int r;

	if (c->no_event_idx)
		features &= ~BIT64(VIRTIO_RING_F_EVENT_IDX_BIT);
	r = vfe_mem_setup(fe, 0, c->mem_mib << 20, c->regions);
	if (r < 0) {
		fprintf(stderr, "vfsd-fe: guest RAM: %s\n", strerror(-r));
		return r;
	}
	fe->use_mem_slots = c->mem_slots;
	fe->req_opts.indirect = c->indirect;
	fe->req_opts.split = c->split;
	fe->req_opts.always_kick = c->always_kick;
	r = vfe_start(fe, 1 + c->queues, c->queue_size, features);
	if (r < 0) {
		fprintf(stderr, "vfsd-fe: vhost-user start: %s\n", strerror(-r));
		return r;
	}
	r = vfe_fuse_init(fe, NULL);
	if (r < 0)
		fprintf(stderr, "vfsd-fe: FUSE_INIT: %s\n", strerror(-r));
	return r;
}

static int print_name(const char *name, uint64_t ino, uint32_t type, void *ud)
{
	static const char types[16] = {
		[1] = 'p', [2] = 'c', [4] = 'd', [6] = 'b', [8] = '-', [10] = 'l', [12] = 's'
	};

	printf("%c %10" PRIu64 " %s\n", types[type & 15] ? types[type & 15] : '?', ino, name);
	return 0;
}

static int cmd_ls(struct vfe *fe, const char *path)
{
	uint64_t node;
	int r = vfe_fuse_lookup_path(fe, path, &node, NULL);

	if (r < 0)
		return r;
	return vfe_fuse_readdir_names(fe, node, print_name, NULL);
}

static int cmd_stat(struct vfe *fe, const char *path)
{
	struct fuse_attr a;
	uint64_t node;
	int r = vfe_fuse_lookup_path(fe, path, &node, &a);

	if (r < 0)
		return r;
	printf("nodeid %" PRIu64 " ino %" PRIu64 " mode 0%o nlink %u uid %u gid %u size %" PRIu64
	       " blocks %" PRIu64 " mtime %" PRIu64 "\n",
	       node, (uint64_t)a.ino, a.mode, a.nlink, a.uid, a.gid, (uint64_t)a.size,
	       (uint64_t)a.blocks, (uint64_t)a.mtime);
	return 0;
}

static uint32_t io_chunk(struct vfe *fe)
{
	uint32_t n = fe->init_out.max_write ? fe->init_out.max_write : 128 * 1024;

	return MIN(n, 1024u * 1024);
}

static int cmd_cat(struct vfe *fe, const char *path)
{
	struct fuse_open_out oo;
	uint64_t node, off = 0;
	uint32_t chunk = io_chunk(fe);
	_cleanup_free_ char *buf = malloc(chunk);
	int r, r2;

	if (!buf)
		return -ENOMEM;
	r = vfe_fuse_lookup_path(fe, path, &node, NULL);
	if (r < 0)
		return r;
	r = vfe_fuse_open(fe, node, O_RDONLY, false, &oo);
	if (r < 0)
		return r;
	for (;;) {
		size_t n = 0;

		r = vfe_fuse_read(fe, node, oo.fh, off, buf, chunk, &n);
		if (r < 0 || n == 0)
			break;
		r = write_full(STDOUT_FILENO, buf, n);
		if (r < 0)
			break;
		off += n;
	}
	r2 = vfe_fuse_release(fe, node, oo.fh, false);
	return r < 0 ? r : r2;
}

/* Split "a/b/c" into the parent's node id and "c". */
static int lookup_parent(struct vfe *fe, const char *path, uint64_t *parent, const char **name)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;

	if (!dir)
		return -ENOMEM;
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = 0;
	slash = strrchr(dir, '/');
	if (!slash) {
		*parent = FUSE_ROOT_ID;
		*name = path;
		return 0;
	}
	*name = path + (slash - dir) + 1;
	*slash = 0;
	if (!**name)
		return -EINVAL;
	return vfe_fuse_lookup_path(fe, dir, parent, NULL);
}

static int cmd_put(struct vfe *fe, const char *local, const char *path)
{
	_cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC);
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	const char *name;
	uint64_t parent, off = 0;
	uint32_t chunk = io_chunk(fe);
	_cleanup_free_ char *buf = malloc(chunk);
	int r, r2;

	if (fd < 0)
		return -errno;
	if (!buf)
		return -ENOMEM;
	r = lookup_parent(fe, path, &parent, &name);
	if (r < 0)
		return r;
	r = vfe_fuse_create(fe, parent, name, O_WRONLY | O_TRUNC, S_IFREG | 0644, &e, &oo);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = read_full(fd, buf, chunk);
		size_t w = 0;

		if (n <= 0) {
			r = (int)n;
			break;
		}
		r = vfe_fuse_write(fe, e.nodeid, oo.fh, off, buf, (uint32_t)n, &w);
		if (r < 0)
			break;
		if (w != (size_t)n) {
			r = -EIO;
			break;
		}
		off += w;
	}
	r2 = vfe_fuse_release(fe, e.nodeid, oo.fh, false);
	if (r >= 0)
		fprintf(stderr, "vfsd-fe: wrote %" PRIu64 " bytes to %s\n", off, path);
	return r < 0 ? r : r2;
}

static int cmd_mkdir(struct vfe *fe, const char *path)
{
	const char *name;
	uint64_t parent;
	int r = lookup_parent(fe, path, &parent, &name);

	return r < 0 ? r : vfe_fuse_mkdir(fe, parent, name, 0755, NULL);
}

static int cmd_rm(struct vfe *fe, const char *path)
{
	const char *name;
	uint64_t parent;
	struct fuse_attr a;
	int r = vfe_fuse_lookup_path(fe, path, NULL, &a);

	if (r < 0)
		return r;
	r = lookup_parent(fe, path, &parent, &name);
	return r < 0 ? r : vfe_fuse_unlink(fe, parent, name, S_ISDIR(a.mode));
}

static int cmd_statfs(struct vfe *fe)
{
	struct fuse_statfs_out s;
	int r = vfe_fuse_statfs(fe, &s);

	if (r < 0)
		return r;
	printf("bsize %u frsize %u blocks %" PRIu64 " bfree %" PRIu64 " bavail %" PRIu64
	       " files %" PRIu64 " ffree %" PRIu64 " namelen %u\n",
	       s.st.bsize, s.st.frsize, (uint64_t)s.st.blocks, (uint64_t)s.st.bfree,
	       (uint64_t)s.st.bavail, (uint64_t)s.st.files, (uint64_t)s.st.ffree, s.st.namelen);
	return 0;
}

/*
 * The benchmarks. Each job has its own request queue and its own guest buffers,
 * allocated once, so the loop costs what a guest driver's would: a header
 * written, a chain published, a kick, a wait for the used entry. Read data
 * stays in guest RAM (as it would in the guest's page cache) and write data is
 * put there once, not copied per request.
 */
enum bench_kind { BENCH_READ, BENCH_WRITE };

struct bench_job {
	struct vfe *fe;
	pthread_barrier_t *barrier;
	unsigned q;	     /* request queue */
	uint8_t *gin, *gout; /* guest buffers: request (header, args, data), reply */
	size_t in_cap, out_cap;
	uint64_t unique;
	enum bench_kind kind;
	uint64_t node, fh;
	uint64_t start, span; /* this job's offsets: start + (i * bsize) % span */
	uint64_t bsize, count;
	double duration;
	uint64_t ops, bytes; /* results */
	int err;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request whose @arglen argument bytes are already in j->gin after the header. */
static int bench_call(struct bench_job *j, uint32_t opcode, uint64_t nodeid, size_t arglen,
		      size_t out_size, size_t *ret_len)
{
	struct fuse_in_header ih = { 0 };
	struct fuse_out_header oh;
	struct vfe_buf rd = { j->gin, sizeof(ih) + arglen };
	struct vfe_buf wr = { j->gout, sizeof(oh) + out_size };
	struct vfe_used u;
	int head, r;

	ih.len = (uint32_t)rd.len;
	ih.opcode = opcode;
	ih.unique = j->unique;
	j->unique += 2;
	ih.nodeid = nodeid;
	memcpy(j->gin, &ih, sizeof(ih));
	head = vfe_submit(j->fe, j->q, &rd, 1, &wr, 1, NULL);
	if (head < 0)
		return head;
	r = vfe_wait_used(j->fe, j->q, head, 0, &u);
	if (r < 0)
		return r;
	memcpy(&oh, j->gout, sizeof(oh));
	if (u.len < sizeof(oh) || oh.len != u.len || oh.len > wr.len || oh.unique != ih.unique ||
	    oh.error > 0 || oh.error < -4095)
		return -EBADMSG;
	if (ret_len)
		*ret_len = oh.len - sizeof(oh);
	return oh.error;
}

static void *bench_thread(void *arg)
{
	struct bench_job *j = arg;
	uint8_t *argp = j->gin + sizeof(struct fuse_in_header);
	double t0, stop;
	int r = 0;

	pthread_barrier_wait(j->barrier);
	t0 = now_s();
	stop = t0 + j->duration;
	for (uint64_t i = 0;; i++) {
		uint64_t off = j->start + (j->span ? (i * j->bsize) % j->span : 0);
		size_t n = 0;

		if (j->duration > 0 ? (i > 0 && now_s() >= stop) : i >= j->count)
			break;
		if (j->kind == BENCH_READ) {
			struct fuse_read_in in = { .fh = j->fh,
						   .offset = off,
						   .size = (uint32_t)j->bsize };

			memcpy(argp, &in, sizeof(in));
			r = bench_call(j, FUSE_READ, j->node, sizeof(in), j->bsize, &n);
		} else {
			struct fuse_write_in in = { .fh = j->fh,
						    .offset = off,
						    .size = (uint32_t)j->bsize };
			struct fuse_write_out o;

			memcpy(argp, &in, sizeof(in));
			r = bench_call(j, FUSE_WRITE, j->node, sizeof(in) + j->bsize, sizeof(o),
				       &n);
			if (r == 0) {
				memcpy(&o, j->gout + sizeof(struct fuse_out_header), sizeof(o));
				n = n == sizeof(o) ? o.size : 0;
				if (n != j->bsize)
					r = -EIO;
			}
		}
		if (r < 0)
			break;
		j->ops++;
		j->bytes += n;
	}
	j->err = r;
	return NULL;
}

/* Make sure there are request queues for @jobs threads (call before start()). */
static void bench_queues(struct cli *c)
{
	if (c->jobs > c->queues)
		c->queues = c->jobs;
}

static int bench_io(struct vfe *fe, const char *path, const struct cli *c, enum bench_kind kind)
{
	struct bench_job jobs[VFE_MAX_QUEUES] = { 0 };
	pthread_t tids[VFE_MAX_QUEUES];
	pthread_barrier_t barrier;
	struct fuse_attr a;
	uint64_t node, fsize, total_ops = 0, total_bytes = 0;
	unsigned njobs = c->jobs, started = 0;
	double t0, dt;
	int r = 0, r2;

	if (c->bench_size == 0 || c->bench_size > 16u << 20 || njobs == 0 || njobs > c->queues ||
	    njobs >= VFE_MAX_QUEUES)
		return -EINVAL;
	if (kind == BENCH_READ) {
		r = vfe_fuse_lookup_path(fe, path, &node, &a);
		if (r < 0)
			return r;
		fsize = a.size;
	} else {
		struct fuse_entry_out e;
		const char *name;
		uint64_t parent;

		r = lookup_parent(fe, path, &parent, &name);
		if (r < 0)
			return r;
		r = vfe_fuse_create(fe, parent, name, O_WRONLY | O_TRUNC, S_IFREG | 0644, &e, NULL);
		if (r < 0)
			return r;
		node = e.nodeid;
		/* The create's handle is not needed: each job opens its own. */
		fsize = c->file_size;
	}
	for (unsigned i = 0; i < njobs; i++) {
		struct bench_job *j = &jobs[i];
		struct fuse_open_out oo;
		uint64_t share = fsize / njobs;

		j->fe = fe;
		j->barrier = &barrier;
		j->q = 1 + i;
		j->kind = kind;
		j->node = node;
		j->bsize = c->bench_size;
		j->count = c->bench_count / njobs + (i < c->bench_count % njobs);
		j->duration = c->duration;
		j->unique = ((uint64_t)(i + 1) << 48) | 2;
		/* Job i goes through its own slice of the file, sequentially, wrapping. */
		j->start = share >= j->bsize ? (share * i) / j->bsize * j->bsize : 0;
		j->span = share >= j->bsize ? share / j->bsize * j->bsize : 0;
		j->in_cap = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in) +
			    (kind == BENCH_WRITE ? j->bsize : 0);
		j->out_cap =
		    sizeof(struct fuse_out_header) + j->bsize + sizeof(struct fuse_write_out);
		j->gin = vfe_alloc(fe, j->in_cap, 64, NULL);
		j->gout = vfe_alloc(fe, j->out_cap, 4096, NULL);
		if (!j->gin || !j->gout)
			return -ENOMEM; /* guest RAM too small: raise --mem */
		if (kind == BENCH_WRITE)
			memset(j->gin + sizeof(struct fuse_in_header) +
				   sizeof(struct fuse_write_in),
			       0x5a + (int)i, j->bsize);
		r = vfe_fuse_open(fe, node, kind == BENCH_READ ? O_RDONLY : O_WRONLY, false, &oo);
		if (r < 0)
			goto out;
		j->fh = oo.fh;
		started = i + 1;
	}
	r = -pthread_barrier_init(&barrier, NULL, njobs + 1);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < njobs; i++) {
		r = -pthread_create(&tids[i], NULL, bench_thread, &jobs[i]);
		if (r < 0) {
			/* Cannot release the barrier with fewer threads: give up. */
			fprintf(stderr, "vfsd-fe: pthread_create: %s\n", strerror(-r));
			exit(1);
		}
	}
	pthread_barrier_wait(&barrier);
	t0 = now_s();
	for (unsigned i = 0; i < njobs; i++) {
		pthread_join(tids[i], NULL);
		total_ops += jobs[i].ops;
		total_bytes += jobs[i].bytes;
		if (jobs[i].err < 0 && r == 0)
			r = jobs[i].err;
	}
	dt = now_s() - t0;
	pthread_barrier_destroy(&barrier);
	if (dt <= 0)
		dt = 1e-9;
	if (r == 0)
		printf("%s %" PRIu64 " ops, %" PRIu64 " bytes in %.3f s: %.1f MB/s, %.0f ops/s"
		       " (%u job%s, %" PRIu64 " bytes each)\n",
		       kind == BENCH_READ ? "read" : "write", total_ops, total_bytes, dt,
		       (double)total_bytes / dt / 1e6, (double)total_ops / dt, njobs,
		       njobs == 1 ? "" : "s", c->bench_size);
out:
	for (unsigned i = 0; i < started; i++) {
		r2 = vfe_fuse_release(fe, node, jobs[i].fh, false);
		if (r == 0 && r2 < 0)
			r = r2;
	}
	return r;
}

static bool phase_done(const struct cli *c, uint64_t i, double stop)
{
	return c->duration > 0 ? i > 0 && now_s() >= stop : i >= c->bench_count;
}

static void print_rate(const char *what, uint64_t n, double dt)
{
	if (dt <= 0)
		dt = 1e-9;
	printf("%s %" PRIu64 " ops in %.3f s: %.0f ops/s\n", what, n, dt, (double)n / dt);
}

static int cmd_bench_meta(struct vfe *fe, const char *dir, const struct cli *c)
{
	uint64_t dnode, nfiles = c->files, i, made = 0;
	char name[64];
	double t0, stop;
	int r, r2;

	if (nfiles == 0 || nfiles > 1000000)
		return -EINVAL;
	r = vfe_fuse_lookup_path(fe, dir, &dnode, NULL);
	if (r < 0)
		return r;
	for (i = 0; i < nfiles; i++) {
		struct fuse_entry_out e;
		struct fuse_open_out oo;

		snprintf(name, sizeof(name), "m%" PRIu64, i);
		r = vfe_fuse_create(fe, dnode, name, O_WRONLY | O_TRUNC, S_IFREG | 0644, &e, &oo);
		if (r < 0)
			goto cleanup;
		made++;
		r = vfe_fuse_release(fe, e.nodeid, oo.fh, false);
		if (r < 0)
			goto cleanup;
	}

	/* A guest's stat() of a name not in its dentry cache: LOOKUP, then GETATTR. */
	t0 = now_s();
	stop = t0 + c->duration;
	for (i = 0; !phase_done(c, i, stop); i++) {
		struct fuse_entry_out e;
		struct fuse_attr_out ao;

		snprintf(name, sizeof(name), "m%" PRIu64, i % nfiles);
		r = vfe_fuse_lookup(fe, dnode, name, &e);
		if (r < 0)
			goto cleanup;
		r = vfe_fuse_getattr(fe, e.nodeid, &ao);
		if (r < 0)
			goto cleanup;
	}
	print_rate("lookup+getattr", i, now_s() - t0);

	/* open(O_CREAT|O_EXCL), close(), unlink(), and the FORGET the guest sends later. */
	t0 = now_s();
	stop = t0 + c->duration;
	for (i = 0; !phase_done(c, i, stop); i++) {
		struct fuse_entry_out e;
		struct fuse_open_out oo;

		snprintf(name, sizeof(name), "c%" PRIu64, i);
		r = vfe_fuse_create(fe, dnode, name, O_WRONLY | O_EXCL, S_IFREG | 0644, &e, &oo);
		if (r < 0)
			goto cleanup;
		r = vfe_fuse_release(fe, e.nodeid, oo.fh, false);
		if (r >= 0)
			r = vfe_fuse_unlink(fe, dnode, name, false);
		if (r >= 0)
			r = vfe_fuse_forget(fe, e.nodeid, 1);
		if (r < 0)
			goto cleanup;
	}
	print_rate("create+release+unlink", i, now_s() - t0);
cleanup:
	for (uint64_t k = 0; k < made; k++) {
		snprintf(name, sizeof(name), "m%" PRIu64, k);
		r2 = vfe_fuse_unlink(fe, dnode, name, false);
		if (r == 0 && r2 < 0)
			r = r2;
	}
	return r;
}

int main(int argc, char **argv)
{
	enum {
		OPT_QUEUE_SIZE = 256,
		OPT_MEM,
		OPT_REGIONS,
		OPT_MEM_SLOTS,
		OPT_INDIRECT,
		OPT_SPLIT,
		OPT_NO_EVENT_IDX,
		OPT_ALWAYS_KICK,
		OPT_SIZE,
		OPT_COUNT,
		OPT_DURATION,
		OPT_JOBS,
		OPT_FILE_SIZE,
		OPT_FILES,
	};
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "queues", required_argument, NULL, 'q' },
		{ "queue-size", required_argument, NULL, OPT_QUEUE_SIZE },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "regions", required_argument, NULL, OPT_REGIONS },
		{ "mem-slots", no_argument, NULL, OPT_MEM_SLOTS },
		{ "indirect", no_argument, NULL, OPT_INDIRECT },
		{ "split", required_argument, NULL, OPT_SPLIT },
		{ "no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX },
		{ "always-kick", no_argument, NULL, OPT_ALWAYS_KICK },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "file-size", required_argument, NULL, OPT_FILE_SIZE },
		{ "files", required_argument, NULL, OPT_FILES },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct cli c = { .queues = 1,
			 .queue_size = 128,
			 .regions = 1,
			 .mem_mib = 64,
			 .timeout_ms = VFE_DEFAULT_TIMEOUT_MS,
			 .bench_size = 128 * 1024,
			 .bench_count = 1000,
			 .file_size = 32u << 20,
			 .files = 256,
			 .jobs = 1 };
	struct vfe *fe = NULL;
	const char *cmd;
	uint64_t v;
	int o, r;

	while ((o = getopt_long(argc, argv, "s:q:t:h", opts, NULL)) >= 0) {
		r = 0;
		switch (o) {
		case 's':
			c.socket = optarg;
			break;
		case 'q':
			r = parse_size(optarg, &v);
			if (r >= 0 && (v == 0 || v >= VFE_MAX_QUEUES))
				r = -ERANGE;
			c.queues = (unsigned)v;
			break;
		case OPT_QUEUE_SIZE:
			r = parse_size(optarg, &v);
			if (r >= 0 && (v == 0 || v > VRING_MAX_SIZE || (v & (v - 1))))
				r = -ERANGE;
			c.queue_size = (unsigned)v;
			break;
		case OPT_MEM:
			r = parse_size(optarg, &c.mem_mib);
			if (r >= 0 && (c.mem_mib == 0 || c.mem_mib > 65536))
				r = -ERANGE;
			break;
		case OPT_REGIONS:
			r = parse_size(optarg, &v);
			if (r >= 0 && (v == 0 || v > VFE_MAX_REGIONS))
				r = -ERANGE;
			c.regions = (unsigned)v;
			break;
		case OPT_MEM_SLOTS:
			c.mem_slots = true;
			break;
		case OPT_INDIRECT:
			c.indirect = true;
			break;
		case OPT_SPLIT:
			r = parse_size(optarg, &v);
			if (r >= 0 && v > UINT32_MAX)
				r = -ERANGE;
			c.split = (uint32_t)v;
			break;
		case OPT_NO_EVENT_IDX:
			c.no_event_idx = true;
			break;
		case OPT_ALWAYS_KICK:
			c.always_kick = true;
			break;
		case OPT_SIZE:
			r = parse_size(optarg, &c.bench_size);
			break;
		case OPT_COUNT:
			r = parse_size(optarg, &c.bench_count);
			break;
		case OPT_DURATION: {
			char *end;

			errno = 0;
			c.duration = strtod(optarg, &end);
			if (errno || end == optarg || *end || c.duration < 0 || c.duration > 3600)
				r = -EINVAL;
			break;
		}
		case OPT_JOBS:
			r = parse_size(optarg, &v);
			if (r >= 0 && (v == 0 || v >= VFE_MAX_QUEUES))
				r = -ERANGE;
			c.jobs = (unsigned)v;
			break;
		case OPT_FILE_SIZE:
			r = parse_size(optarg, &c.file_size);
			break;
		case OPT_FILES:
			r = parse_size(optarg, &c.files);
			break;
		case 't':
			r = parse_size(optarg, &v);
			if (r >= 0 && (v == 0 || v > 3600000))
				r = -ERANGE;
			c.timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "vfsd-fe: bad value for option: %s\n", optarg);
			return 2;
		}
	}
	if (!c.socket || optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* GNU getopt permutes: options may also follow the command (bench-read --size). */
	cmd = argv[optind++];
	r = vfe_connect(c.socket, c.timeout_ms, &fe);
	if (r < 0) {
		fprintf(stderr, "vfsd-fe: connect %s: %s\n", c.socket, strerror(-r));
		return 1;
	}
	fe->timeout_ms = c.timeout_ms;

	if (strcmp(cmd, "features") == 0) {
		r = cmd_features(fe);
		goto out;
	}
	bench_queues(&c);
	r = start(fe, &c);
	if (r < 0)
		goto out_quiet;
#define NEED_ARGS(n)                                                                               \
	if (argc - optind < (n)) {                                                                 \
		fprintf(stderr, "vfsd-fe: %s needs %d argument(s)\n", cmd, (n));                   \
		vfe_free(fe);                                                                      \
		return 2;                                                                          \
	}
	if (strcmp(cmd, "ls") == 0) {
		r = cmd_ls(fe, argc > optind ? argv[optind] : "/");
	} else if (strcmp(cmd, "stat") == 0) {
		NEED_ARGS(1);
		r = cmd_stat(fe, argv[optind]);
	} else if (strcmp(cmd, "cat") == 0) {
		NEED_ARGS(1);
		r = cmd_cat(fe, argv[optind]);
	} else if (strcmp(cmd, "put") == 0) {
		NEED_ARGS(2);
		r = cmd_put(fe, argv[optind], argv[optind + 1]);
	} else if (strcmp(cmd, "mkdir") == 0) {
		NEED_ARGS(1);
		r = cmd_mkdir(fe, argv[optind]);
	} else if (strcmp(cmd, "rm") == 0) {
		NEED_ARGS(1);
		r = cmd_rm(fe, argv[optind]);
	} else if (strcmp(cmd, "statfs") == 0) {
		r = cmd_statfs(fe);
	} else if (strcmp(cmd, "bench-read") == 0) {
		NEED_ARGS(1);
		r = bench_io(fe, argv[optind], &c, BENCH_READ);
	} else if (strcmp(cmd, "bench-write") == 0) {
		NEED_ARGS(1);
		r = bench_io(fe, argv[optind], &c, BENCH_WRITE);
	} else if (strcmp(cmd, "bench-meta") == 0) {
		NEED_ARGS(1);
		r = cmd_bench_meta(fe, argv[optind], &c);
	} else {
		fprintf(stderr, "vfsd-fe: unknown command '%s' (see --help)\n", cmd);
		vfe_free(fe);
		return 2;
	}
out:
	if (r < 0)
		fprintf(stderr, "vfsd-fe: %s: %s\n", cmd, strerror(-r));
out_quiet:
	vfe_free(fe);
	return r < 0 ? 1 : 0;
}
