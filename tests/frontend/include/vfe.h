/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfe: a vhost-user front-end that plays QEMU's part against a virtio-fs
 * back-end process, with no VM. Guest RAM is a memfd mapped here and handed to
 * the back-end; split virtqueues live in it; FUSE requests go through them.
 *
 * Everything returns 0 (or a count) on success and -errno on failure; nothing
 * asserts on back-end input, and every wait has a timeout (fe->timeout_ms,
 * default 10 s), so a silent or broken back-end fails a test instead of
 * hanging it. Used by the integration tests, fuzzing and the vfsd-fe CLI.
 */
#ifndef VFE_H
#define VFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/fuse.h>

#include "vfsd/wire.h"

#define VFE_DEFAULT_TIMEOUT_MS 10000
#define VFE_MAX_REGIONS	       8
#define VFE_MAX_QUEUES	       16
/* The virtio features a Linux guest acks for virtio-fs (vfe_start() adds PROTOCOL_FEATURES). */
#define VFE_FEATURES_DEFAULT                                                                       \
	(BIT64(VIRTIO_F_VERSION_1_BIT) | BIT64(VIRTIO_RING_F_INDIRECT_DESC_BIT) |                  \
	 BIT64(VIRTIO_RING_F_EVENT_IDX_BIT))
/* Protocol features vfe_start() negotiates when offered (all that need no extra set-up). */
#define VFE_PROTOCOL_MASK                                                                          \
	(BIT64(VHU_PROTOCOL_F_MQ) | BIT64(VHU_PROTOCOL_F_LOG_SHMFD) |                              \
	 BIT64(VHU_PROTOCOL_F_REPLY_ACK) | BIT64(VHU_PROTOCOL_F_RESET_DEVICE) |                    \
	 BIT64(VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | BIT64(VHU_PROTOCOL_F_STATUS) |                \
	 BIT64(VHU_PROTOCOL_F_DEVICE_STATE))
/* The fake "QEMU virtual address" of guest-physical address 0 (region i adds i << 36). */
#define VFE_QVA_BASE 0x7f0000000000ULL

/* ---------------------------------------------------------------- back-end process */

/** How vfe_backend_spawn() hands the back-end its socket. */
enum vfe_socket_mode {
	VFE_SOCKET_PATH = 0,  /* --socket-path=<tmp path>; vfe_connect() to backend->socket_path */
	VFE_SOCKET_FD_LISTEN, /* --fd=N, N a listening socket (libvirt style) */
	VFE_SOCKET_FD_CONN,   /* --fd=N, N one end of a socketpair; the other is backend->conn_fd */
};

struct vfe_spawn_opts {
	const char *const *argv; /* command (NULL-terminated); socket option appended */
	enum vfe_socket_mode mode;
	const char *socket_path;  /* for VFE_SOCKET_PATH: NULL = <tmpdir>/vhost.sock */
	const char *path_root;	  /* back-end runs chrooted here: strip it from passed paths */
	const char *const *extra; /* more arguments appended after the socket option */
	const char *log_path;	  /* stdout+stderr go here; NULL = <tmpdir>/backend.log */
	int timeout_ms;		  /* for the socket to appear; 0 = default */
};

struct vfe_backend {
	pid_t pid;
	char tmpdir[256];      /* private temp directory, removed by vfe_backend_free() */
	char socket_path[108]; /* host path of the socket (VFE_SOCKET_PATH) */
	char log_path[512];    /* captured stdout/stderr */
	int conn_fd;	       /* VFE_SOCKET_FD_CONN: our end of the socketpair, else -1 */
	bool reaped;	       /* the status below is valid */
	bool killed;	       /* we sent it SIGTERM/SIGKILL */
	int status;	       /* waitpid() status */
};

/**
 * vfe_backend_spawn() - fork/exec a back-end and wait until its socket exists.
 * Stdout and stderr go to the log file. Fails early if the process exits first.
 * Returns: 0 and *ret, or -errno (-ECHILD when the back-end died during startup).
 */
int vfe_backend_spawn(const struct vfe_spawn_opts *opts, struct vfe_backend **ret);

/**
 * vfe_backend_wait() - wait up to @timeout_ms (<0: forever) for the back-end to exit.
 * Returns: 0 with the waitpid status in *status (may be NULL), -ETIMEDOUT, or -errno.
 */
int vfe_backend_wait(struct vfe_backend *be, int timeout_ms, int *status);

/**
 * vfe_backend_kill() - SIGTERM, wait up to @timeout_ms, then SIGKILL, and reap.
 * Returns: 0 with the status in *status (may be NULL), or -errno.
 */
int vfe_backend_kill(struct vfe_backend *be, int timeout_ms, int *status);

/** vfe_backend_alive() - true while the process has not exited (reaps it if it has). */
bool vfe_backend_alive(struct vfe_backend *be);

/**
 * vfe_backend_crashed() - true if the back-end died from a signal we did not send
 * (SIGSEGV, SIGABRT...): the one outcome a negative test never accepts.
 */
bool vfe_backend_crashed(struct vfe_backend *be);

/**
 * vfe_backend_log() - the captured output so far, NUL-terminated, malloc'd.
 * Returns: 0 and *ret, or -errno.
 */
int vfe_backend_log(struct vfe_backend *be, char **ret);

/** vfe_backend_log_contains() - true if the captured output contains @needle. */
bool vfe_backend_log_contains(struct vfe_backend *be, const char *needle);

/** vfe_backend_free() - kill (if still running), reap, remove the temp dir, free. NULL ok. */
void vfe_backend_free(struct vfe_backend *be);

/* ---------------------------------------------------------------- connection */

struct vfe_region {
	uint64_t gpa;	      /* guest-physical base */
	uint64_t size;	      /* bytes */
	uint64_t qva;	      /* fake QEMU virtual address: never our mapping address */
	uint64_t mmap_offset; /* offset into the memfd */
	bool added;	      /* announced with ADD_MEM_REG */
};

struct vfe_used {
	uint16_t head; /* used id (chain head) */
	uint32_t len;  /* bytes the device says it wrote */
};

/** A guest buffer for a request: @ptr must lie in guest RAM (see vfe_alloc()). */
struct vfe_buf {
	void *ptr;
	size_t len;
};

/** How vfe_submit() lays out a descriptor chain. */
struct vfe_req_opts {
	bool indirect;	  /* put the whole chain in one indirect table */
	uint32_t split;	  /* max bytes per descriptor (scatter-gather), 0 = one per buffer */
	bool always_kick; /* kick even when avail_event / NO_NOTIFY says not to */
	bool no_kick;	  /* publish only; the caller kicks (vfe_kick) */
};

struct vfe_queue {
	bool allocated, started;
	uint16_t size;
	struct vring_desc_le *desc;
	uint16_t *avail; /* flags, idx, ring[size], used_event */
	uint8_t *used;	 /* flags, idx, ring[size] (8 bytes each), avail_event */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd, err_fd;
	bool kick_presignalled;
	uint16_t avail_idx;   /* driver's next avail index (shadow of avail->idx) */
	uint16_t used_seen;   /* next used index we have not consumed */
	uint16_t kicked_idx;  /* avail idx at the last kick decision (event idx) */
	uint16_t base;	      /* last GET_VRING_BASE answer, sent back by vfe_queue_start() */
	uint64_t ncalls;      /* call-eventfd notifications seen */
	uint64_t nkicks;      /* kicks sent */
	uint16_t *free_stack; /* free descriptor indices */
	uint16_t nfree;
	uint16_t *pending; /* descriptors allocated for the chain being built */
	uint16_t npending;
	uint16_t **owned; /* owned[head]: descriptors of that in-flight chain */
	uint16_t *nowned;
	bool *done; /* done[head]: completed but not yet claimed */
	uint32_t *done_len;
	bool *inflight; /* inflight[head]: published, not yet in the used ring */
};

/** A dirty-page bitmap shared with the back-end (SET_LOG_BASE): 1 bit per 4 KiB from GPA 0. */
struct vfe_log {
	int fd;		/* the memfd, -EBADF when there is no log */
	uint8_t *map;	/* our mapping, map_len bytes */
	uint64_t size;	/* mmap_size told to the back-end */
	size_t map_len; /* size rounded up to a page: bytes in [size, map_len) must stay 0 */
};

struct vfe {
	int sock;
	int timeout_ms;
	uint64_t features;	    /* from GET_FEATURES */
	uint64_t protocol_features; /* from GET_PROTOCOL_FEATURES */
	uint64_t acked_features;    /* sent with SET_FEATURES */
	uint64_t acked_protocol;    /* sent with SET_PROTOCOL_FEATURES */
	bool ack_all;		    /* set NEED_REPLY on every ack-able message (REPLY_ACK) */
	bool use_mem_slots;	    /* vfe_start(): ADD_MEM_REG instead of SET_MEM_TABLE */
	bool kick_presignalled;	    /* create kick eventfds with value 1, as QEMU does */
	uint64_t queue_num;	    /* GET_QUEUE_NUM, 0 if not asked */
	uint64_t max_mem_slots;	    /* GET_MAX_MEM_SLOTS, 0 if not asked */
	/* guest RAM: one memfd, one contiguous local mapping, split into regions */
	int mem_fd;
	uint8_t *mem;
	uint64_t mem_size;
	uint64_t mem_gpa; /* GPA of mem[0] */
	struct vfe_region regions[VFE_MAX_REGIONS];
	unsigned nregions;
	uint64_t alloc_next; /* bump allocator: offset into mem */
	/* queues */
	unsigned nqueues;
	struct vfe_queue queues[VFE_MAX_QUEUES];
	struct vfe_req_opts req_opts; /* defaults for the FUSE helpers */
	unsigned fuse_queue;	      /* request queue the FUSE helpers use (default 1) */
	uint64_t next_unique;
	struct fuse_init_out init_out; /* from vfe_fuse_init() */
	/* dirty logging */
	struct vfe_log log;	 /* the log the back-end was last given */
	struct vfe_log prev_log; /* the one it replaced, kept mapped so tests can watch it */
	bool logging;		 /* LOG_ALL sent, rings started with VHU_VRING_F_LOG */
	/* device state */
	int device_state_fd; /* fd a SET_DEVICE_STATE_FD reply carried, else -EBADF */
};

/**
 * vfe_connect() - connect to a back-end's socket, retrying ECONNREFUSED/ENOENT
 * until @timeout_ms (0 = default) passes, and allocate the front-end state.
 * Returns: 0 and *ret, or -errno.
 */
int vfe_connect(const char *path, int timeout_ms, struct vfe **ret);

/** vfe_from_fd() - like vfe_connect() on an already connected socket (taken over). */
int vfe_from_fd(int fd, struct vfe **ret);

/**
 * vfe_swap_socket() - talk to another back-end through the same guest (RAM, rings, ring
 * bases, eventfds): @sock (a connected socket, taken over) replaces fe->sock, whose old
 * value is returned (not closed: the caller may swap it back, e.g. to resume a migration
 * source). What belongs to the connection is forgotten: features (so vfe_start() runs
 * the realize sequence again), logging, queues marked not started.
 */
int vfe_swap_socket(struct vfe *fe, int sock);

/** vfe_free() - close the socket and every fd, unmap guest RAM, free. NULL ok. */
void vfe_free(struct vfe *fe);

/* ---------------------------------------------------------------- raw vhost-user messages */

/**
 * vfe_send_msg() - send one message: header {request, flags, size} + payload + fds,
 * exactly as given (no checks, so negative tests can send anything).
 * Returns: 0 or -errno (-EPIPE when the back-end closed the connection).
 */
int vfe_send_msg(struct vfe *fe, uint32_t request, uint32_t flags, const void *payload, size_t size,
		 const int *fds, size_t nfds);

/** vfe_send_raw() - write arbitrary bytes (plus fds) to the socket. Returns: 0 or -errno. */
int vfe_send_raw(struct vfe *fe, const void *buf, size_t len, const int *fds, size_t nfds);

/**
 * vfe_recv_reply() - read one reply with a timeout, checking it like QEMU does:
 * flags must be exactly 0x5 and request must equal @request (-EPROTO otherwise).
 * The payload must fit @size (-EMSGSIZE); its length goes to *ret_size (may be
 * NULL: then it must be exactly @size). Received fds are closed unless @fds is given.
 * Returns: 0, -ETIMEDOUT, -ECONNRESET (closed), -EPROTO, or -errno.
 */
int vfe_recv_reply(struct vfe *fe, uint32_t request, void *payload, size_t size, size_t *ret_size,
		   int *fds, size_t *nfds);

/**
 * vfe_request_u64() - send @request (flags 0x1) and read its u64 reply.
 * Returns: 0 or -errno.
 */
int vfe_request_u64(struct vfe *fe, uint32_t request, uint64_t *ret);

/**
 * vfe_send_ack() - send a message that has no reply of its own; when REPLY_ACK is
 * negotiated and (@qemu_needs_reply or fe->ack_all), set NEED_REPLY and read the
 * u64 ack. Returns: 0, -EIO if the ack was non-zero, or -errno.
 */
int vfe_send_ack(struct vfe *fe, uint32_t request, const void *payload, size_t size, const int *fds,
		 size_t nfds, bool qemu_needs_reply);

/**
 * vfe_sync() - GET_FEATURES round trip: QEMU's barrier when REPLY_ACK is off; every
 * message sent before it has been applied once it returns. Returns: 0 or -errno.
 */
int vfe_sync(struct vfe *fe);

/**
 * vfe_closed() - wait up to @timeout_ms for the back-end to close the connection.
 * Unread replies are discarded. Returns: true if it is closed.
 */
bool vfe_closed(struct vfe *fe, int timeout_ms);

/* ---------------------------------------------------------------- typed requests */

/** vfe_get_features() - GET_FEATURES; also stored in fe->features. */
int vfe_get_features(struct vfe *fe, uint64_t *ret);
/** vfe_set_features() - SET_FEATURES (ack requested when LOG_ALL is set, like QEMU). */
int vfe_set_features(struct vfe *fe, uint64_t features);
/** vfe_get_protocol_features() - GET_PROTOCOL_FEATURES; stored in fe->protocol_features. */
int vfe_get_protocol_features(struct vfe *fe, uint64_t *ret);
/** vfe_set_protocol_features() - SET_PROTOCOL_FEATURES; enables REPLY_ACK handling. */
int vfe_set_protocol_features(struct vfe *fe, uint64_t features);
/** vfe_set_owner() - SET_OWNER. */
int vfe_set_owner(struct vfe *fe);
/** vfe_get_queue_num() - GET_QUEUE_NUM (needs MQ). */
int vfe_get_queue_num(struct vfe *fe, uint64_t *ret);
/** vfe_get_max_mem_slots() - GET_MAX_MEM_SLOTS (needs CONFIGURE_MEM_SLOTS). */
int vfe_get_max_mem_slots(struct vfe *fe, uint64_t *ret);
/** vfe_set_mem_table() - SET_MEM_TABLE with every region of guest RAM (one fd each). */
int vfe_set_mem_table(struct vfe *fe);
/** vfe_add_mem_reg() - ADD_MEM_REG for region @i (with NEED_REPLY under REPLY_ACK). */
int vfe_add_mem_reg(struct vfe *fe, unsigned i);
/** vfe_rem_mem_reg() - REM_MEM_REG for region @i (no fd). */
int vfe_rem_mem_reg(struct vfe *fe, unsigned i);
/** vfe_set_vring_num() - SET_VRING_NUM. */
int vfe_set_vring_num(struct vfe *fe, unsigned idx, unsigned num);
/** vfe_set_vring_addr() - SET_VRING_ADDR with QVAs (desc, used, avail) and flags. */
int vfe_set_vring_addr(struct vfe *fe, unsigned idx, uint64_t desc_qva, uint64_t used_qva,
		       uint64_t avail_qva, uint64_t log_gpa, uint32_t flags);
/** vfe_set_vring_base() - SET_VRING_BASE (next avail index to process). */
int vfe_set_vring_base(struct vfe *fe, unsigned idx, unsigned base);
/** vfe_get_vring_base() - GET_VRING_BASE: stops the ring; *ret = next avail index. */
int vfe_get_vring_base(struct vfe *fe, unsigned idx, unsigned *ret);
/** vfe_set_vring_kick() - SET_VRING_KICK with @fd, or NOFD when @fd < 0. */
int vfe_set_vring_kick(struct vfe *fe, unsigned idx, int fd);
/** vfe_set_vring_call() - SET_VRING_CALL with @fd, or NOFD when @fd < 0. */
int vfe_set_vring_call(struct vfe *fe, unsigned idx, int fd);
/** vfe_set_vring_err() - SET_VRING_ERR with @fd, or NOFD when @fd < 0. */
int vfe_set_vring_err(struct vfe *fe, unsigned idx, int fd);
/** vfe_set_vring_enable() - SET_VRING_ENABLE (NEED_REPLY under REPLY_ACK, else a sync). */
int vfe_set_vring_enable(struct vfe *fe, unsigned idx, bool enable);
/** vfe_reset_device() - RESET_DEVICE (needs the RESET_DEVICE protocol feature). */
int vfe_reset_device(struct vfe *fe);
/** vfe_set_status() - SET_STATUS (needs STATUS). */
int vfe_set_status(struct vfe *fe, uint8_t status);
/** vfe_get_status() - GET_STATUS (needs STATUS). */
int vfe_get_status(struct vfe *fe, uint8_t *ret);

/** vfe_reset_owner() - RESET_OWNER (deprecated; acked under REPLY_ACK, then a sync). */
int vfe_reset_owner(struct vfe *fe);

/* ---------------------------------------------------------------- dirty log, device state */

#define VFE_LOG_PAGE 4096ULL

/**
 * vfe_log_size() - the log size QEMU uses for the current guest RAM: one u64 of
 * bits per 256 KiB up to the highest region's last byte (vhost_get_log_size()).
 */
uint64_t vfe_log_size(struct vfe *fe);

/**
 * vfe_set_log_base() - create a zeroed memfd bitmap of @size bytes, send SET_LOG_BASE
 * {mmap_size @size, mmap_offset 0} with it and read the u64 reply (flags 0x5 and the
 * request id checked, as QEMU does). The new log becomes fe->log; the one it replaces
 * moves to fe->prev_log (the one before that is unmapped). Returns: 0 or -errno.
 */
int vfe_set_log_base(struct vfe *fe, uint64_t size);

/** vfe_set_log_fd() - SET_LOG_FD with eventfd @fd (sent, not taken over). Returns: 0 or -errno. */
int vfe_set_log_fd(struct vfe *fe, int fd);

/** vfe_log_test() - is the bit of the page holding @gpa set in fe->log? */
bool vfe_log_test(struct vfe *fe, uint64_t gpa);

/** vfe_log_clear() - clear fe->log as QEMU does (atomic exchange of each 64-bit word). */
void vfe_log_clear(struct vfe *fe);

/**
 * vfe_log_dirty_pages() - the page numbers (GPA / 4096) whose bit is set in fe->log,
 * up to @max of them into @pages (may be NULL). Returns: how many bits are set.
 */
size_t vfe_log_dirty_pages(struct vfe *fe, uint64_t *pages, size_t max);

/**
 * vfe_set_logging() - QEMU's vhost_dev_set_log(): SET_FEATURES with (@on) or without
 * VHOST_F_LOG_ALL, then SET_VRING_ADDR for each started queue with flags
 * VHU_VRING_F_LOG (or 0) and log_guest_addr = the used ring's GPA; turning it on is
 * synchronised as QEMU does (NEED_REPLY, or GET_FEATURES without REPLY_ACK). Ends with
 * a GET_FEATURES round trip either way, so the change has taken effect on return.
 * Does not send SET_LOG_BASE: QEMU sends that first (vfe_set_log_base()).
 * Returns: 0 or -errno.
 */
int vfe_set_logging(struct vfe *fe, bool on);

/**
 * vfe_set_device_state_fd() - SET_DEVICE_STATE_FD {@direction, @phase} with @fd (a
 * pipe's write end for SAVE (0), its read end for LOAD (1)); @fd is sent, not closed:
 * close your copy afterwards as QEMU does. The u64 reply goes to *ret_reply: 0x100 =
 * accepted, no fd back; bits 0-7 non-zero = refused. An fd in the reply (bit 8 clear)
 * is kept in fe->device_state_fd. Returns: 0, -EPROTO for a reply QEMU would reject
 * (fd and error together, fd with bit 8, or success with neither), or -errno.
 */
int vfe_set_device_state_fd(struct vfe *fe, uint32_t direction, uint32_t phase, int fd,
			    uint64_t *ret_reply);

/** vfe_check_device_state() - CHECK_DEVICE_STATE; *ret = the u64 (0 = success). */
int vfe_check_device_state(struct vfe *fe, uint64_t *ret);

/* ---------------------------------------------------------------- guest RAM */

/**
 * vfe_mem_setup() - create guest RAM: a memfd of @size bytes at guest-physical
 * @gpa, mapped here once, presented to the back-end as @nregions adjacent
 * regions (equal, page-aligned) with distinct mmap offsets and non-contiguous fake
 * QVAs. Does not send anything. Returns: 0 or -errno.
 */
int vfe_mem_setup(struct vfe *fe, uint64_t gpa, uint64_t size, unsigned nregions);

/**
 * vfe_alloc() - bump-allocate @size bytes (aligned to @align, a power of two) of
 * zeroed guest RAM. Returns: the pointer (and its GPA in *gpa), or NULL when full.
 */
void *vfe_alloc(struct vfe *fe, size_t size, size_t align, uint64_t *gpa);

/** vfe_alloc_mark() - the allocator position, for vfe_alloc_reset(). */
uint64_t vfe_alloc_mark(struct vfe *fe);

/** vfe_alloc_reset() - free everything allocated since @mark. */
void vfe_alloc_reset(struct vfe *fe, uint64_t mark);

/** vfe_gpa_to_ptr() - local pointer for [@gpa, @gpa+@len) in guest RAM, or NULL. */
void *vfe_gpa_to_ptr(struct vfe *fe, uint64_t gpa, uint64_t len);

/** vfe_ptr_to_gpa() - GPA of a local pointer into guest RAM, or UINT64_MAX. */
uint64_t vfe_ptr_to_gpa(struct vfe *fe, const void *ptr);

/** vfe_gpa_to_qva() - the fake QEMU virtual address of @gpa, or UINT64_MAX. */
uint64_t vfe_gpa_to_qva(struct vfe *fe, uint64_t gpa);

/* ---------------------------------------------------------------- virtqueues */

/**
 * vfe_queue_alloc() - allocate queue @idx's split ring (size a power of two) in
 * guest RAM with the minimum alignments (desc 16, avail 2, used 4) and its kick,
 * call and err eventfds (kick with value 1 when fe->kick_presignalled). Idempotent.
 * Returns: 0 or -errno.
 */
int vfe_queue_alloc(struct vfe *fe, unsigned idx, unsigned size);

/**
 * vfe_queue_start() - QEMU's per-queue start (§6.1 B.3): SET_VRING_NUM, SET_VRING_BASE
 * (q->base), SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL. Does not enable.
 * Returns: 0 or -errno.
 */
int vfe_queue_start(struct vfe *fe, unsigned idx);

/** vfe_queue_setup() - vfe_queue_alloc() + vfe_queue_start() + SET_VRING_ENABLE(1). */
int vfe_queue_setup(struct vfe *fe, unsigned idx, unsigned size);

/**
 * vfe_init() - QEMU's realize sequence (§6.1 A): GET_FEATURES, GET/SET_PROTOCOL_FEATURES
 * (@protocol_mask & offered), GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER, GET_FEATURES,
 * SET_VRING_CALL/ERR for @nqueues queues. Returns: 0 or -errno.
 */
int vfe_init(struct vfe *fe, unsigned nqueues, uint64_t protocol_mask);

/**
 * vfe_start() - vfe_init() (protocol features: VFE_PROTOCOL_MASK & offered)
 * unless already done, then QEMU's start (§6.1 B):
 * SET_FEATURES (@features & offered, | PROTOCOL_FEATURES), memory (SET_MEM_TABLE,
 * or ADD_MEM_REG per region when fe->use_mem_slots), per-queue start, ENABLE(1) for
 * each. Guest RAM must be set up (vfe_mem_setup()), else 64 MiB in 1 region is made.
 * With VHOST_F_LOG_ALL in @features the device starts with logging on, as QEMU does
 * mid-migration: rings get VHU_VRING_F_LOG and SET_LOG_BASE (fe->log's size, else
 * vfe_log_size()) goes out after the queues are set up, before ENABLE(1).
 * Returns: 0 or -errno.
 */
int vfe_start(struct vfe *fe, unsigned nqueues, unsigned queue_size, uint64_t features);

/**
 * vfe_stop() - QEMU's stop (§6.1 C): SET_VRING_ENABLE(0) for every queue, then
 * GET_VRING_BASE for each; the bases go to q->base (and @bases, may be NULL).
 * Returns: 0 or -errno.
 */
int vfe_stop(struct vfe *fe, unsigned *bases);

/**
 * vfe_restart() - after vfe_stop(): per-queue start with the saved bases (ring log flag
 * set while fe->logging, and then a fresh SET_LOG_BASE as QEMU sends), ENABLE(1).
 */
int vfe_restart(struct vfe *fe);

/**
 * vfe_queues_reset() - the driver's side of a virtio device reset: every allocated
 * queue's rings zeroed, indices back to 0, every descriptor free, base 0, not started.
 * Call it only while the back-end cannot touch the rings (stopped or reset); then
 * vfe_start() sets the device up again as a re-probing guest driver would.
 */
void vfe_queues_reset(struct vfe *fe);

/**
 * vfe_submit() - build a chain from device-readable @rd and device-writable @wr
 * buffers (laid out per @opts, NULL = fe->req_opts), add it to the avail ring,
 * publish it (release barrier) and kick if EVENT_IDX's avail_event (or, without it,
 * used->flags NO_NOTIFY) asks for it. Returns: the head index (>= 0) or -errno
 * (-ENOSPC: not enough free descriptors).
 */
int vfe_submit(struct vfe *fe, unsigned idx, const struct vfe_buf *rd, size_t nrd,
	       const struct vfe_buf *wr, size_t nwr, const struct vfe_req_opts *opts);

/**
 * vfe_wait_used() - wait for chain @head (or any chain when @head < 0) to appear in
 * the used ring: polls the call eventfd and checks used->idx, up to @timeout_ms
 * (0 = fe->timeout_ms). Frees the chain's descriptors.
 * Returns: 0 with *ret filled, -ETIMEDOUT, -EPROTO (bad used id), or -errno.
 */
int vfe_wait_used(struct vfe *fe, unsigned idx, int head, int timeout_ms, struct vfe_used *ret);

/** vfe_kick() - signal the kick eventfd of queue @idx. Returns: 0 or -errno. */
int vfe_kick(struct vfe *fe, unsigned idx);

/** vfe_used_idx() - the device's used->idx of queue @idx, read now. */
uint16_t vfe_used_idx(struct vfe *fe, unsigned idx);

/* raw ring access for negative tests */

/** vfe_desc_alloc() - take a free descriptor for the chain being built. Returns: index or -ENOSPC.
 */
int vfe_desc_alloc(struct vfe *fe, unsigned idx);

/** vfe_desc_set() - write descriptor @i of queue @idx with arbitrary values. */
void vfe_desc_set(struct vfe *fe, unsigned idx, unsigned i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next);

/**
 * vfe_avail_push() - put @head in the avail ring (the descriptors taken with
 * vfe_desc_alloc() since the last push become its chain), publish, and kick
 * unless @no_kick. Returns: 0 or -errno.
 */
int vfe_avail_push(struct vfe *fe, unsigned idx, uint16_t head, bool no_kick);

/* ---------------------------------------------------------------- FUSE */

/**
 * vfe_fuse_request() - one FUSE request on queue @q (0 = hiprio: no reply buffer is
 * given and nothing is awaited beyond the used entry): fuse_in_header + the @nin
 * argument buffers, reply into @out (up to @out_size bytes after the out header;
 * @out may be NULL). Checks the reply's unique, and that out.len matches the used
 * length. Returns: the FUSE error (0 or -errno from fuse_out_header) and *ret_len
 * = reply bytes after the header, or a transport error (-ETIMEDOUT, -EBADMSG...).
 */
int vfe_fuse_request(struct vfe *fe, unsigned q, uint32_t opcode, uint64_t nodeid,
		     const struct vfe_buf *in, size_t nin, void *out, size_t out_size,
		     size_t *ret_len);

/** vfe_fuse_init() - FUSE_INIT 7.31+; the reply goes to fe->init_out and *ret (may be NULL). */
int vfe_fuse_init(struct vfe *fe, struct fuse_init_out *ret);
/** vfe_fuse_lookup() - FUSE_LOOKUP of @name in @parent. */
int vfe_fuse_lookup(struct vfe *fe, uint64_t parent, const char *name, struct fuse_entry_out *ret);
/** vfe_fuse_lookup_path() - LOOKUP every component of @path ("/" = root). *ret_nodeid. */
int vfe_fuse_lookup_path(struct vfe *fe, const char *path, uint64_t *ret_nodeid,
			 struct fuse_attr *ret_attr);
/** vfe_fuse_getattr() - FUSE_GETATTR. */
int vfe_fuse_getattr(struct vfe *fe, uint64_t nodeid, struct fuse_attr_out *ret);
/** vfe_fuse_mkdir() - FUSE_MKDIR. */
int vfe_fuse_mkdir(struct vfe *fe, uint64_t parent, const char *name, uint32_t mode,
		   struct fuse_entry_out *ret);
/** vfe_fuse_create() - FUSE_CREATE (open flags, mode); entry and open replies. */
int vfe_fuse_create(struct vfe *fe, uint64_t parent, const char *name, uint32_t flags,
		    uint32_t mode, struct fuse_entry_out *ret_entry,
		    struct fuse_open_out *ret_open);
/** vfe_fuse_open() - FUSE_OPEN, or FUSE_OPENDIR when @dir. */
int vfe_fuse_open(struct vfe *fe, uint64_t nodeid, uint32_t flags, bool dir,
		  struct fuse_open_out *ret);
/** vfe_fuse_read() - FUSE_READ of up to @size bytes; *ret_len = bytes read. */
int vfe_fuse_read(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, void *buf,
		  uint32_t size, size_t *ret_len);
/** vfe_fuse_write() - FUSE_WRITE; *ret_len = bytes written (may be NULL). */
int vfe_fuse_write(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, const void *buf,
		   uint32_t size, size_t *ret_len);
/** vfe_fuse_release() - FUSE_RELEASE, or FUSE_RELEASEDIR when @dir. */
int vfe_fuse_release(struct vfe *fe, uint64_t nodeid, uint64_t fh, bool dir);
/** vfe_fuse_readdir() - FUSE_READDIR into @buf (raw fuse_dirent records); *ret_len. */
int vfe_fuse_readdir(struct vfe *fe, uint64_t nodeid, uint64_t fh, uint64_t offset, void *buf,
		     uint32_t size, size_t *ret_len);
/**
 * vfe_fuse_readdir_names() - OPENDIR + READDIR until empty + RELEASEDIR; calls @cb
 * for each entry (return non-zero to stop). Returns: 0 when every entry was seen,
 * the callback's value if it stopped the walk, or -errno.
 */
int vfe_fuse_readdir_names(struct vfe *fe, uint64_t nodeid,
			   int (*cb)(const char *name, uint64_t ino, uint32_t type, void *ud),
			   void *ud);
/** vfe_fuse_unlink() - FUSE_UNLINK, or FUSE_RMDIR when @dir. */
int vfe_fuse_unlink(struct vfe *fe, uint64_t parent, const char *name, bool dir);
/** vfe_fuse_rename() - FUSE_RENAME. */
int vfe_fuse_rename(struct vfe *fe, uint64_t olddir, const char *oldname, uint64_t newdir,
		    const char *newname);
/** vfe_fuse_forget() - FUSE_FORGET on the hiprio queue (0): no reply, waits for the used entry. */
int vfe_fuse_forget(struct vfe *fe, uint64_t nodeid, uint64_t nlookup);
/** vfe_fuse_destroy() - FUSE_DESTROY (what the guest sends at unmount). */
int vfe_fuse_destroy(struct vfe *fe);
/** vfe_fuse_statfs() - FUSE_STATFS. */
int vfe_fuse_statfs(struct vfe *fe, struct fuse_statfs_out *ret);

/* ---------------------------------------------------------------- test harness */

/** A back-end under test with its own shared directory, and a connected front-end. */
struct vfe_harness {
	struct vfe_backend *be;
	struct vfe *fe;
	char share[256]; /* host path of the shared directory (empty, removed afterwards) */
	bool external;	 /* VFSD_TEST_BACKEND is set: not our daemon */
};

/**
 * vfe_harness_start() - create a shared dir and spawn the back-end under test:
 * $VFSD_TEST_BACKEND (a command prefix split on blanks, e.g. virtiofsd with its
 * options) or else @default_binary, with --socket-path=S --shared-dir=D appended;
 * $VFSD_TEST_ROOT names the root the back-end is chrooted to, if any (paths are
 * created under it and passed without it). Then connects.
 * Returns: 0 and *ret, or -errno.
 */
int vfe_harness_start(const char *default_binary, struct vfe_harness **ret);

/** vfe_harness_free() - disconnect, kill and reap the back-end, remove the share. NULL ok. */
void vfe_harness_free(struct vfe_harness *h);

#endif
