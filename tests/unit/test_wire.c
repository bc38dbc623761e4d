/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Wire layouts: the offsets QEMU and the virtio spec fix, and request names for logs. */
#include <criterion/criterion.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>

#include "vfsd/vhost.h"
#include "vfsd/wire.h"

Test(wire, vhost_user_payload_offsets)
{
	cr_expect_eq(offsetof(struct vhu_vring_addr, desc_user_addr), 8);
	cr_expect_eq(offsetof(struct vhu_vring_addr, used_user_addr), 16,
		     "order is desc, used, avail");
	cr_expect_eq(offsetof(struct vhu_vring_addr, avail_user_addr), 24);
	cr_expect_eq(offsetof(struct vhu_vring_addr, log_guest_addr), 32);
	cr_expect_eq(offsetof(struct vhu_memory, regions), 8);
	cr_expect_eq(offsetof(struct vhu_mem_reg_msg, region), 8);
	cr_expect_eq(offsetof(struct vhu_mem_region, mmap_offset), 24);
}

Test(wire, request_names)
{
	cr_expect_str_eq(vhu_request_name(VHU_GET_VRING_BASE), "GET_VRING_BASE");
	cr_expect_str_eq(vhu_request_name(VHU_CHECK_DEVICE_STATE), "CHECK_DEVICE_STATE");
	cr_expect_str_eq(vhu_request_name(0xffff), "UNKNOWN");
	cr_expect_str_eq(vhu_request_name(VHU_REQUEST_MAX), "UNKNOWN");
}

Test(wire, offered_features_are_exactly_the_implemented_ones)
{
	uint64_t f = vfsd_vhost_features(), pf = vfsd_vhost_protocol_features();

	cr_expect_eq(f, (1ULL << 32) | (1ULL << 28) | (1ULL << 29) | (1ULL << 30));
	cr_expect(pf & (1ULL << VHU_PROTOCOL_F_MQ));
	cr_expect(pf & (1ULL << VHU_PROTOCOL_F_REPLY_ACK));
	cr_expect(pf & (1ULL << VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
	/* Never: CONFIG (QEMU strips it for fs), INBAND_NOTIFICATIONS (QEMU lacks it). */
	cr_expect_not(pf & (1ULL << VHU_PROTOCOL_F_CONFIG));
	cr_expect_not(pf & (1ULL << 14));
	/* Not before the migration issue implements them. */
	cr_expect_not(f & (1ULL << VHOST_F_LOG_ALL_BIT));
	cr_expect_not(pf & (1ULL << VHU_PROTOCOL_F_DEVICE_STATE));
}

Test(wire, fuse_layout)
{
	cr_expect_eq(offsetof(struct fuse_in_header, unique), 8);
	cr_expect_eq(offsetof(struct fuse_in_header, nodeid), 16);
	cr_expect_eq(offsetof(struct fuse_out_header, unique), 8);
	cr_expect_eq(FUSE_NAME_OFFSET, 24);
	cr_expect_eq(FUSE_NAME_OFFSET_DIRENTPLUS, 152);
}
