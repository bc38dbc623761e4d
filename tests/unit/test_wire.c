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

static int fake_handle(void *o, unsigned int q, void *t, struct vfsd_chain *c)
{
	return 0;
}
static void fake_reset(void *o, const char *why)
{
}
static int fake_state(void *o, int fd)
{
	return 0;
}

static uint64_t protocol_features_with(const struct vfsd_vhost_backend_ops *ops)
{
	struct vfsd_vhost_dev *d = NULL;
	uint64_t f;

	cr_assert_eq(vfsd_vhost_new(ops, NULL, 2, &d), 0);
	f = vfsd_vhost_protocol_features(d);
	vfsd_vhost_free(d);
	return f;
}

Test(wire, offered_features_are_exactly_the_implemented_ones)
{
	const struct vfsd_vhost_backend_ops plain = { .handle = fake_handle };
	const struct vfsd_vhost_backend_ops full = { .handle = fake_handle,
						     .reset = fake_reset,
						     .save_state = fake_state,
						     .load_state = fake_state };
	uint64_t f = vfsd_vhost_features();
	uint64_t pf = protocol_features_with(&plain), all = protocol_features_with(&full);

	cr_expect_eq(f, (1ULL << 32) | (1ULL << 28) | (1ULL << 29) | (1ULL << 30) | (1ULL << 26));
	cr_expect_eq(pf, (1ULL << VHU_PROTOCOL_F_MQ) | (1ULL << VHU_PROTOCOL_F_LOG_SHMFD) |
			     (1ULL << VHU_PROTOCOL_F_REPLY_ACK) |
			     (1ULL << VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
	/* Reset and state transfer are offered only when the backend implements them. */
	cr_expect_eq(all, pf | (1ULL << VHU_PROTOCOL_F_STATUS) |
			      (1ULL << VHU_PROTOCOL_F_RESET_DEVICE) |
			      (1ULL << VHU_PROTOCOL_F_DEVICE_STATE));
	/* Never: CONFIG (QEMU strips it for fs), INBAND_NOTIFICATIONS (QEMU lacks it). */
	cr_expect_not(all & (1ULL << VHU_PROTOCOL_F_CONFIG));
	cr_expect_not(all & (1ULL << 14));
	cr_expect_eq(all >> 20, 0, "no bit from 20 up: their meaning moved between releases");
}

Test(wire, fuse_layout)
{
	cr_expect_eq(offsetof(struct fuse_in_header, unique), 8);
	cr_expect_eq(offsetof(struct fuse_in_header, nodeid), 16);
	cr_expect_eq(offsetof(struct fuse_out_header, unique), 8);
	cr_expect_eq(FUSE_NAME_OFFSET, 24);
	cr_expect_eq(FUSE_NAME_OFFSET_DIRENTPLUS, 152);
}
