/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wire: vhost-user messages, split virtqueue layout and virtio-fs constants.
 *
 * vhost-user header and payload integers are host byte order and the payload
 * starts at offset 12, so u64 payload fields are unaligned: the structs are
 * packed and are only ever memcpy'd in and out of the message buffer.
 * Virtqueue fields are little-endian (virtio 1.0), converted on every access.
 * FUSE structs come from <linux/fuse.h>.
 */
#ifndef VFSD_WIRE_H
#define VFSD_WIRE_H

#include <stdint.h>

/* vhost-user front-end -> back-end requests */
enum vhu_request {
	VHU_NONE = 0,
	VHU_GET_FEATURES = 1,
	VHU_SET_FEATURES = 2,
	VHU_SET_OWNER = 3,
	VHU_RESET_OWNER = 4,
	VHU_SET_MEM_TABLE = 5,
	VHU_SET_LOG_BASE = 6,
	VHU_SET_LOG_FD = 7,
	VHU_SET_VRING_NUM = 8,
	VHU_SET_VRING_ADDR = 9,
	VHU_SET_VRING_BASE = 10,
	VHU_GET_VRING_BASE = 11,
	VHU_SET_VRING_KICK = 12,
	VHU_SET_VRING_CALL = 13,
	VHU_SET_VRING_ERR = 14,
	VHU_GET_PROTOCOL_FEATURES = 15,
	VHU_SET_PROTOCOL_FEATURES = 16,
	VHU_GET_QUEUE_NUM = 17,
	VHU_SET_VRING_ENABLE = 18,
	VHU_SEND_RARP = 19,
	VHU_NET_SET_MTU = 20,
	VHU_SET_BACKEND_REQ_FD = 21,
	VHU_IOTLB_MSG = 22,
	VHU_SET_VRING_ENDIAN = 23,
	VHU_GET_CONFIG = 24,
	VHU_SET_CONFIG = 25,
	VHU_CREATE_CRYPTO_SESSION = 26,
	VHU_CLOSE_CRYPTO_SESSION = 27,
	VHU_POSTCOPY_ADVISE = 28,
	VHU_POSTCOPY_LISTEN = 29,
	VHU_POSTCOPY_END = 30,
	VHU_GET_INFLIGHT_FD = 31,
	VHU_SET_INFLIGHT_FD = 32,
	VHU_GPU_SET_SOCKET = 33,
	VHU_RESET_DEVICE = 34,
	VHU_VRING_KICK = 35,
	VHU_GET_MAX_MEM_SLOTS = 36,
	VHU_ADD_MEM_REG = 37,
	VHU_REM_MEM_REG = 38,
	VHU_SET_STATUS = 39,
	VHU_GET_STATUS = 40,
	VHU_GET_SHARED_OBJECT = 41,
	VHU_SET_DEVICE_STATE_FD = 42,
	VHU_CHECK_DEVICE_STATE = 43,
	VHU_REQUEST_MAX = 44,
};

#define VHU_FLAG_VERSION      0x1u
#define VHU_FLAG_VERSION_MASK 0x3u
#define VHU_FLAG_REPLY	      0x4u
#define VHU_FLAG_NEED_REPLY   0x8u

#define VHU_VRING_IDX_MASK  0xffu
#define VHU_VRING_NOFD_MASK (1u << 8)
#define VHU_VRING_F_LOG	    0x1u

#define VHU_MAX_FDS	      8
#define VHU_MAX_PAYLOAD	      4096
#define VHU_MEM_TABLE_REGIONS 8
#define VHU_MAX_MEM_SLOTS     509

/* virtio / vhost feature bits (GET_FEATURES) */
#define VIRTIO_F_NOTIFY_ON_EMPTY_BIT	   24
#define VHOST_F_LOG_ALL_BIT		   26
#define VIRTIO_RING_F_INDIRECT_DESC_BIT	   28
#define VIRTIO_RING_F_EVENT_IDX_BIT	   29
#define VHOST_USER_F_PROTOCOL_FEATURES_BIT 30
#define VIRTIO_F_VERSION_1_BIT		   32
#define VIRTIO_F_ACCESS_PLATFORM_BIT	   33
#define VIRTIO_F_RING_PACKED_BIT	   34

/* protocol feature bits (GET_PROTOCOL_FEATURES) */
#define VHU_PROTOCOL_F_MQ		   0
#define VHU_PROTOCOL_F_LOG_SHMFD	   1
#define VHU_PROTOCOL_F_REPLY_ACK	   3
#define VHU_PROTOCOL_F_BACKEND_REQ	   5
#define VHU_PROTOCOL_F_CONFIG		   9
#define VHU_PROTOCOL_F_RESET_DEVICE	   13
#define VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHU_PROTOCOL_F_STATUS		   16
#define VHU_PROTOCOL_F_DEVICE_STATE	   19

#define BIT64(n) (1ULL << (n))

struct vhu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_hdr) == 12, "vhost-user header is 12 bytes");

struct vhu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_vring_state) == 8, "vring state");

struct vhu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_vring_addr) == 40, "vring addr");

struct vhu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_mem_region) == 32, "memory region");

struct vhu_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhu_mem_region regions[VHU_MEM_TABLE_REGIONS];
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_memory) == 8 + 32 * 8, "memory table");

struct vhu_mem_reg_msg {
	uint64_t padding;
	struct vhu_mem_region region;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_mem_reg_msg) == 40, "single memory region message");

struct vhu_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_log) == 16, "log base");

struct vhu_transfer_state {
	uint32_t direction;
	uint32_t phase;
} __attribute__((packed));
_Static_assert(sizeof(struct vhu_transfer_state) == 8, "transfer state");

#define VHU_TRANSFER_SAVE	   0
#define VHU_TRANSFER_LOAD	   1
#define VHU_TRANSFER_PHASE_STOPPED 0

/* Split virtqueue, little-endian in guest memory */
#define VRING_DESC_F_NEXT	   1
#define VRING_DESC_F_WRITE	   2
#define VRING_DESC_F_INDIRECT	   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1

struct vring_desc_le {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vring_desc_le) == 16, "vring descriptor");

struct vring_used_elem_le {
	uint32_t id;
	uint32_t len;
};
_Static_assert(sizeof(struct vring_used_elem_le) == 8, "used element");

#define VRING_MAX_SIZE 32768

/* virtio device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x1
#define VIRTIO_STATUS_DRIVER	  0x2
#define VIRTIO_STATUS_DRIVER_OK	  0x4
#define VIRTIO_STATUS_FEATURES_OK 0x8

/* virtio-fs queue layout with QEMU and Linux: 0 = hiprio, 1.. = request queues */
#define VIRTIO_FS_HIPRIO_QUEUE	0
#define VFSD_MAX_REQUEST_QUEUES 64
#define VFSD_MAX_QUEUES		(1 + VFSD_MAX_REQUEST_QUEUES)

/**
 * vhu_request_name() - the spec's name for a vhost-user request, for logs.
 * Returns: a static string ("UNKNOWN" for ids we do not know).
 */
const char *vhu_request_name(uint32_t request);

#endif
