/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost: the vhost-user back-end device. One control thread (the caller of
 * vfsd_vhost_serve) reads front-end messages in order and applies them; one
 * thread per started virtqueue pops chains and hands each to the backend's
 * handle() callback. vhost knows nothing of FUSE.
 *
 * Locking: the device rwlock protects the memory table and ring addresses.
 * Queue threads hold it for reading while they pop, handle and push a batch;
 * the control thread takes it for writing to change either. A queue's stop
 * (GET_VRING_BASE) joins its thread, so every request popped from it has
 * completed before the reply goes out.
 */
#ifndef VFSD_VHOST_H
#define VFSD_VHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "vfsd/vring.h"

struct vfsd_vhost_dev;

struct vfsd_vhost_backend_ops {
	/* A queue thread starts: set up its per-thread data (io ring). */
	int (*thread_start)(void *opaque, unsigned int qidx, void **ret_tdata);
	/* A queue thread ends: free what thread_start made. */
	void (*thread_stop)(void *opaque, unsigned int qidx, void *tdata);
	/*
	 * Serve one request. Returns the bytes written into the chain's
	 * device-writable buffers (the used length), or -errno when nothing
	 * could be answered (the chain is then completed with length 0).
	 */
	int (*handle)(void *opaque, unsigned int qidx, void *tdata, struct vfsd_chain *chain);

	/*
	 * Optional. A device reset (SET_STATUS 0, RESET_DEVICE): every queue is
	 * already stopped; drop the session. Offering STATUS and RESET_DEVICE
	 * depends on it.
	 */
	void (*reset)(void *opaque, const char *why);
	/*
	 * Optional. Dirty logging was switched on (a migration is starting: a
	 * hint to prepare the state while the guest still runs) or off (the
	 * migration was cancelled).
	 */
	void (*logging_changed)(void *opaque, bool on);
	/*
	 * Optional, both or neither (DEVICE_STATE is offered with them). Run in
	 * the transfer thread while every queue is stopped: write the whole state
	 * to @fd (save) or read it to EOF and apply it (load). The device closes
	 * @fd when the callback returns. Return 0 or -errno; the result is what
	 * CHECK_DEVICE_STATE reports.
	 */
	int (*save_state)(void *opaque, int fd);
	int (*load_state)(void *opaque, int fd);
};

/**
 * vfsd_vhost_new() - create a device with up to @max_queues virtqueues
 * (hiprio plus request queues), none started.
 * Returns: 0 or -errno.
 */
int vfsd_vhost_new(const struct vfsd_vhost_backend_ops *ops, void *opaque, unsigned int max_queues,
		   struct vfsd_vhost_dev **ret);

/**
 * vfsd_vhost_serve() - run the message loop on the connected socket @conn.
 * @stop_fd: when readable (a signalfd, an eventfd), the loop ends
 * Returns: 0 when the front-end disconnected or @stop_fd fired, -EPROTO (or
 * another -errno) after a fatal protocol error, which is logged; the
 * connection is then closed by the caller. Queue threads are stopped on return.
 */
int vfsd_vhost_serve(struct vfsd_vhost_dev *dev, int conn, int stop_fd);

/** vfsd_vhost_free() - stop all queue threads, unmap guest memory, free; accepts NULL. */
void vfsd_vhost_free(struct vfsd_vhost_dev *dev);

/** The virtio feature bits this device offers (GET_FEATURES). */
uint64_t vfsd_vhost_features(void);

/**
 * vfsd_vhost_protocol_features() - the vhost-user protocol feature bits @dev
 * offers: only what is implemented, since QEMU acks every bit offered.
 */
uint64_t vfsd_vhost_protocol_features(const struct vfsd_vhost_dev *dev);

#endif
