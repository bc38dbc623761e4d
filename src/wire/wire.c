/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vfsd/wire.h"

#include <linux/fuse.h>

#include "vfsd/util.h"

/* The FUSE structs we decode have the sizes the kernel ABI fixes. */
_Static_assert(sizeof(struct fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct fuse_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct fuse_init_in) == 64, "fuse_init_in");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out");
_Static_assert(sizeof(struct fuse_attr) == 88, "fuse_attr");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "fuse_entry_out");
_Static_assert(sizeof(struct fuse_attr_out) == 104, "fuse_attr_out");
_Static_assert(sizeof(struct fuse_open_out) == 16, "fuse_open_out");
_Static_assert(sizeof(struct fuse_read_in) == 40, "fuse_read_in");
_Static_assert(sizeof(struct fuse_write_in) == 40, "fuse_write_in");
_Static_assert(sizeof(struct fuse_write_out) == 8, "fuse_write_out");
_Static_assert(sizeof(struct fuse_setattr_in) == 88, "fuse_setattr_in");
_Static_assert(sizeof(struct fuse_forget_in) == 8, "fuse_forget_in");
_Static_assert(sizeof(struct fuse_batch_forget_in) == 8, "fuse_batch_forget_in");
_Static_assert(sizeof(struct fuse_forget_one) == 16, "fuse_forget_one");
_Static_assert(sizeof(struct fuse_dirent) == 24, "fuse_dirent");
_Static_assert(sizeof(struct fuse_direntplus) == 152, "fuse_direntplus");
_Static_assert(sizeof(struct fuse_kstatfs) == 80, "fuse_kstatfs");
_Static_assert(sizeof(struct fuse_rename2_in) == 16, "fuse_rename2_in");
_Static_assert(sizeof(struct fuse_create_in) == 16, "fuse_create_in");
_Static_assert(sizeof(struct fuse_mkdir_in) == 8, "fuse_mkdir_in");

static const char *const names[VHU_REQUEST_MAX] = {
	[VHU_NONE] = "NONE",
	[VHU_GET_FEATURES] = "GET_FEATURES",
	[VHU_SET_FEATURES] = "SET_FEATURES",
	[VHU_SET_OWNER] = "SET_OWNER",
	[VHU_RESET_OWNER] = "RESET_OWNER",
	[VHU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VHU_SET_LOG_BASE] = "SET_LOG_BASE",
	[VHU_SET_LOG_FD] = "SET_LOG_FD",
	[VHU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VHU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VHU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VHU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VHU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VHU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VHU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VHU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VHU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VHU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VHU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VHU_SEND_RARP] = "SEND_RARP",
	[VHU_NET_SET_MTU] = "NET_SET_MTU",
	[VHU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VHU_IOTLB_MSG] = "IOTLB_MSG",
	[VHU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VHU_GET_CONFIG] = "GET_CONFIG",
	[VHU_SET_CONFIG] = "SET_CONFIG",
	[VHU_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
	[VHU_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
	[VHU_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[VHU_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[VHU_POSTCOPY_END] = "POSTCOPY_END",
	[VHU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VHU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VHU_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
	[VHU_RESET_DEVICE] = "RESET_DEVICE",
	[VHU_VRING_KICK] = "VRING_KICK",
	[VHU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VHU_ADD_MEM_REG] = "ADD_MEM_REG",
	[VHU_REM_MEM_REG] = "REM_MEM_REG",
	[VHU_SET_STATUS] = "SET_STATUS",
	[VHU_GET_STATUS] = "GET_STATUS",
	[VHU_GET_SHARED_OBJECT] = "GET_SHARED_OBJECT",
	[VHU_SET_DEVICE_STATE_FD] = "SET_DEVICE_STATE_FD",
	[VHU_CHECK_DEVICE_STATE] = "CHECK_DEVICE_STATE",
};

const char *vhu_request_name(uint32_t request)
{
	if (request < ARRAY_SIZE(names) && names[request])
		return names[request];
	return "UNKNOWN";
}
