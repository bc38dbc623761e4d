/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The split virtqueue over fake guest memory: a memfd mapped twice, once as
 * "the guest" (this test, playing the driver) and once by guest_mem as the
 * back-end sees it, with a front-end virtual address that differs from both
 * the guest-physical address and our mapping.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>

#include "vfsd/guest_mem.h"
#include "vfsd/vring.h"

#define MEM_SIZE  (1u << 20)
#define GPA_BASE  0x100000ull
#define QVA_BASE  0x7f0000000000ull
#define QSIZE	  8
#define DESC_GPA  (GPA_BASE + 0x0)
#define AVAIL_GPA (GPA_BASE + 0x1000)
#define USED_GPA  (GPA_BASE + 0x2000)
#define BUF_GPA	  (GPA_BASE + 0x10000)

static int memfd = -1;
static uint8_t *guest; /* the driver's view, index 0 = GPA_BASE */
static struct vfsd_guest_mem mem;
static struct vfsd_vring vr;
static struct vfsd_chain chain;

static void *g(uint64_t gpa)
{
	return guest + (gpa - GPA_BASE);
}

static void put_desc(unsigned int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next,
		     uint64_t table)
{
	struct vring_desc_le d = { htole64(addr), htole32(len), htole16(flags), htole16(next) };
	memcpy((uint8_t *)g(table) + 16 * i, &d, sizeof(d));
}

static uint16_t avail_idx;

static void make_avail(uint16_t head)
{
	uint16_t v = htole16(head), idx;
	memcpy((uint8_t *)g(AVAIL_GPA) + 4 + 2 * (avail_idx % QSIZE), &v, 2);
	avail_idx++;
	idx = htole16(avail_idx);
	memcpy((uint8_t *)g(AVAIL_GPA) + 2, &idx, 2);
}

static uint16_t used_idx_in_guest(void)
{
	uint16_t v;
	memcpy(&v, (uint8_t *)g(USED_GPA) + 2, 2);
	return le16toh(v);
}

static void setup(void)
{
	struct vhu_mem_region r = { GPA_BASE, MEM_SIZE, QVA_BASE, 0 };
	struct vfsd_mem_region reg;

	memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(memfd >= 0);
	cr_assert(ftruncate(memfd, MEM_SIZE) == 0);
	guest = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	cr_assert(guest != MAP_FAILED);
	memset(&mem, 0, sizeof(mem));
	cr_assert(vfsd_mem_map_region(&r, memfd, &reg) == 0);
	cr_assert(vfsd_mem_add(&mem, &reg) == 0);
	memset(&vr, 0, sizeof(vr));
	avail_idx = 0;
	cr_assert(vfsd_vring_set_num(&vr, QSIZE) == 0);
	cr_assert(vfsd_vring_set_addr(&vr, &mem, QVA_BASE + (DESC_GPA - GPA_BASE),
				      QVA_BASE + (USED_GPA - GPA_BASE),
				      QVA_BASE + (AVAIL_GPA - GPA_BASE), USED_GPA, 0) == 0);
}

static void teardown(void)
{
	vfsd_mem_clear(&mem);
	munmap(guest, MEM_SIZE);
	close(memfd);
}

TestSuite(vring, .init = setup, .fini = teardown);

Test(vring, set_num_rejects_bad_sizes)
{
	struct vfsd_vring v = { 0 };
	cr_expect_eq(vfsd_vring_set_num(&v, 0), -EINVAL);
	cr_expect_eq(vfsd_vring_set_num(&v, 3), -EINVAL);
	cr_expect_eq(vfsd_vring_set_num(&v, 65536), -EINVAL);
	cr_expect_eq(vfsd_vring_set_num(&v, 1024), 0);
}

Test(vring, addresses_outside_memory_are_refused)
{
	struct vfsd_vring v = { 0 };
	cr_assert(vfsd_vring_set_num(&v, QSIZE) == 0);
	/* GPAs passed where front-end virtual addresses belong must not translate. */
	cr_expect_eq(vfsd_vring_set_addr(&v, &mem, DESC_GPA, USED_GPA, AVAIL_GPA, 0, 0), -EFAULT);
	cr_expect_not(vfsd_vring_ready(&v));
	cr_expect_eq(
	    vfsd_vring_set_addr(&v, &mem, QVA_BASE + 8, QVA_BASE + 0x2000, QVA_BASE + 0x1000, 0, 0),
	    -EINVAL, "misaligned descriptor table");
}

Test(vring, empty_ring_pops_nothing)
{
	const char *why;
	cr_expect_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 0);
}

Test(vring, pop_readable_then_writable_and_push)
{
	const char *why;

	memcpy(g(BUF_GPA), "hello", 5);
	put_desc(0, BUF_GPA, 5, VRING_DESC_F_NEXT, 1, DESC_GPA);
	put_desc(1, BUF_GPA + 0x100, 64, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);

	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	cr_expect_eq(chain.head, 0);
	cr_assert_eq(chain.n_out, 1);
	cr_assert_eq(chain.n_in, 1);
	cr_expect_eq(chain.out[0].iov_len, 5);
	cr_expect_eq(memcmp(chain.out[0].iov_base, "hello", 5), 0);
	cr_expect_eq(chain.in[0].iov_len, 64);
	cr_expect_eq(chain.in_gpa[0], BUF_GPA + 0x100);
	cr_expect_eq(vr.last_avail_idx, 1);

	memcpy(chain.in[0].iov_base, "reply", 5);
	vfsd_vring_push(&vr, &chain, chain.head, 5);
	cr_expect_eq(used_idx_in_guest(), 1);
	cr_expect_eq(memcmp(g(BUF_GPA + 0x100), "reply", 5), 0, "writes land in guest memory");
	cr_expect_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 0);
}

Test(vring, indirect_table)
{
	const char *why;
	uint64_t table = GPA_BASE + 0x3000;

	put_desc(0, BUF_GPA, 40, 0 | VRING_DESC_F_NEXT, 1, table);
	put_desc(1, BUF_GPA + 0x40, 16, VRING_DESC_F_NEXT, 2, table);
	put_desc(2, BUF_GPA + 0x80, 128, VRING_DESC_F_WRITE, 0, table);
	put_desc(3, table, 3 * 16, VRING_DESC_F_INDIRECT, 0, DESC_GPA);
	make_avail(3);

	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1, "%s", why ? why : "");
	cr_expect_eq(chain.head, 3);
	cr_expect_eq(chain.n_out, 2);
	cr_expect_eq(chain.n_in, 1);
	cr_expect_eq(chain.in[0].iov_len, 128);
}

static void expect_broken(const char *what)
{
	const char *why = NULL;
	int r = vfsd_vring_pop(&vr, &mem, &chain, &why);
	cr_expect_lt(r, 0, "%s must be rejected", what);
	cr_expect_not_null(why, "%s must say why", what);
}

Test(vring, descriptor_loop_is_rejected)
{
	put_desc(0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1, DESC_GPA);
	put_desc(1, BUF_GPA, 8, VRING_DESC_F_NEXT, 0, DESC_GPA);
	make_avail(0);
	expect_broken("a loop");
}

Test(vring, address_outside_guest_memory_is_rejected)
{
	put_desc(0, GPA_BASE + MEM_SIZE - 4, 8, 0, 0, DESC_GPA);
	make_avail(0);
	expect_broken("a buffer running past the end of guest memory");
}

Test(vring, address_overflow_is_rejected)
{
	put_desc(0, UINT64_MAX - 2, 8, 0, 0, DESC_GPA);
	make_avail(0);
	expect_broken("an address that wraps");
}

Test(vring, nested_indirect_is_rejected)
{
	uint64_t table = GPA_BASE + 0x3000;
	put_desc(0, table, 16, VRING_DESC_F_INDIRECT, 0, table);
	put_desc(0, table, 16, VRING_DESC_F_INDIRECT, 0, DESC_GPA);
	make_avail(0);
	expect_broken("a nested indirect table");
}

Test(vring, bad_indirect_length_is_rejected)
{
	put_desc(0, GPA_BASE + 0x3000, 20, VRING_DESC_F_INDIRECT, 0, DESC_GPA);
	make_avail(0);
	expect_broken("an indirect table whose length is not a multiple of 16");
}

Test(vring, next_out_of_range_is_rejected)
{
	put_desc(0, BUF_GPA, 8, VRING_DESC_F_NEXT, QSIZE, DESC_GPA);
	make_avail(0);
	expect_broken("a next index past the table");
}

Test(vring, head_out_of_range_is_rejected)
{
	make_avail(QSIZE + 1);
	expect_broken("an avail entry that is no descriptor");
}

Test(vring, readable_after_writable_is_rejected)
{
	put_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1, DESC_GPA);
	put_desc(1, BUF_GPA, 8, 0, 0, DESC_GPA);
	make_avail(0);
	expect_broken("a readable buffer after a writable one");
}

Test(vring, avail_index_jump_is_rejected)
{
	uint16_t idx = htole16(QSIZE + 1);
	memcpy((uint8_t *)g(AVAIL_GPA) + 2, &idx, 2);
	expect_broken("an avail index more than a queue ahead");
}

Test(vring, buffer_crossing_regions_is_split)
{
	/* A second region right after the first, mapped from the same memfd. */
	struct vhu_mem_region r2 = { GPA_BASE + MEM_SIZE, 4096, QVA_BASE + MEM_SIZE, 0 };
	struct vfsd_mem_region reg;
	const char *why;

	cr_assert(vfsd_mem_map_region(&r2, memfd, &reg) == 0);
	cr_assert(vfsd_mem_add(&mem, &reg) == 0);
	put_desc(0, GPA_BASE + MEM_SIZE - 16, 32, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1, "%s", why ? why : "");
	cr_assert_eq(chain.n_in, 2);
	cr_expect_eq(chain.in[0].iov_len, 16);
	cr_expect_eq(chain.in[1].iov_len, 16);
	cr_expect_eq(chain.in_gpa[1], GPA_BASE + MEM_SIZE);
}

Test(vring, overlapping_regions_are_refused)
{
	struct vhu_mem_region r2 = { GPA_BASE + 4096, 4096, QVA_BASE + 2 * MEM_SIZE, 0 };
	struct vfsd_mem_region reg;

	cr_assert(vfsd_mem_map_region(&r2, memfd, &reg) == 0);
	cr_expect_eq(vfsd_mem_add(&mem, &reg), -EEXIST);
	vfsd_mem_unmap_region(&reg);
}

Test(vring, event_idx_publishes_avail_event_and_suppresses_notifications)
{
	const char *why;
	uint16_t ev, used_event;

	vr.event_idx = true;
	put_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	memcpy(&ev, (uint8_t *)g(USED_GPA) + 4 + 8 * QSIZE, 2);
	cr_expect_eq(le16toh(ev), 1, "avail_event follows last_avail_idx");

	vfsd_vring_push(&vr, &chain, chain.head, 0);
	cr_expect(vfsd_vring_need_notify(&vr), "the first completion always notifies");

	/* The driver asks to be told only once used idx passes 5. */
	used_event = htole16(5);
	memcpy((uint8_t *)g(AVAIL_GPA) + 4 + 2 * QSIZE, &used_event, 2);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 0);
	cr_expect_not(vfsd_vring_need_notify(&vr), "used_event 5 not reached at used idx 2");

	/* Now it wants to hear when the entry at index 2 is used: 2 -> 3 crosses it. */
	used_event = htole16(2);
	memcpy((uint8_t *)g(AVAIL_GPA) + 4 + 2 * QSIZE, &used_event, 2);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 0);
	cr_expect(vfsd_vring_need_notify(&vr), "used idx moved past used_event 2 -> notify");
}

Test(vring, no_interrupt_flag_without_event_idx)
{
	const char *why;
	uint16_t flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);

	put_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 0);
	memcpy(g(AVAIL_GPA), &flags, 2);
	cr_expect_not(vfsd_vring_need_notify(&vr));
	flags = 0;
	memcpy(g(AVAIL_GPA), &flags, 2);
	cr_expect(vfsd_vring_need_notify(&vr));
}

Test(vring, enable_kicks_sees_late_buffers)
{
	vr.event_idx = true;
	cr_expect_not(vfsd_vring_enable_kicks(&vr));
	put_desc(0, BUF_GPA, 8, 0, 0, DESC_GPA);
	make_avail(0);
	cr_expect(vfsd_vring_enable_kicks(&vr), "a buffer that arrived before sleeping is seen");
}

Test(vring, set_base_resumes_and_reads_used_idx_from_memory)
{
	const char *why;
	uint16_t used = htole16(3);

	memcpy((uint8_t *)g(USED_GPA) + 2, &used, 2);
	avail_idx = 3;
	vfsd_vring_set_base(&vr, 3);
	cr_expect_eq(vr.used_idx, 3);
	put_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 8);
	cr_expect_eq(used_idx_in_guest(), 4);
}

Test(vring, overlong_chain_in_indirect_table_is_rejected)
{
	uint64_t table = GPA_BASE + 0x4000;
	/* 4 entries all chained in a cycle 0->1->2->3->0 */
	for (unsigned int i = 0; i < 4; i++)
		put_desc(i, BUF_GPA, 8, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % 4), table);
	put_desc(0, table, 64, VRING_DESC_F_INDIRECT, 0, DESC_GPA);
	make_avail(0);
	expect_broken("a cycle inside an indirect table");
}

static bool page_dirty(const struct vfsd_dirty_log *log, uint64_t gpa)
{
	uint64_t page = gpa / VFSD_LOG_PAGE;
	return log->map[page / 8] & (1u << (page % 8));
}

static int log_memfd(size_t size, struct vfsd_dirty_log *log)
{
	int fd = memfd_create("log", MFD_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(ftruncate(fd, (off_t)size) == 0);
	cr_assert_eq(vfsd_dirty_log_map(fd, size, 0, log), 0);
	return fd;
}

Test(vring, dirty_log_marks_reply_data_and_used_ring)
{
	/* Enough bits for GPA 0 .. GPA_BASE + MEM_SIZE. */
	struct vfsd_dirty_log log;
	int fd = log_memfd((GPA_BASE + MEM_SIZE) / VFSD_LOG_PAGE / 8, &log);
	const char *why;

	vr.log = &log;
	vr.addr_flags = VHU_VRING_F_LOG;
	vr.event_idx = true;
	/* A reply area spanning two pages, of which the reply fills 5000 bytes. */
	put_desc(0, BUF_GPA + 0x3000, 0x2000, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	cr_expect(page_dirty(&log, USED_GPA), "avail_event write is in the used ring's page");
	vfsd_vring_push(&vr, &chain, chain.head, 5000);

	cr_expect(page_dirty(&log, BUF_GPA + 0x3000));
	cr_expect(page_dirty(&log, BUF_GPA + 0x4000), "the reply's second page");
	cr_expect_not(page_dirty(&log, BUF_GPA + 0x5000), "beyond the reply length");
	cr_expect(page_dirty(&log, USED_GPA), "used element and used idx");
	cr_expect_not(page_dirty(&log, DESC_GPA), "the device never writes descriptors");
	cr_expect_not(page_dirty(&log, AVAIL_GPA), "nor the avail ring");
	vfsd_dirty_log_unmap(&log);
	close(fd);
}

Test(vring, used_ring_is_logged_at_log_guest_addr_only_with_the_flag)
{
	struct vfsd_dirty_log log;
	int fd = log_memfd((GPA_BASE + MEM_SIZE) / VFSD_LOG_PAGE / 8, &log);
	const char *why;

	vr.log = &log;
	vr.addr_flags = 0; /* QEMU did not ask for used-ring logging */
	put_desc(0, BUF_GPA, 16, VRING_DESC_F_WRITE, 0, DESC_GPA);
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 16);
	cr_expect(page_dirty(&log, BUF_GPA));
	cr_expect_not(page_dirty(&log, USED_GPA));

	/* With the flag, the position comes from log_gpa, not from where the ring is. */
	vr.addr_flags = VHU_VRING_F_LOG;
	vr.log_gpa = GPA_BASE + 0x8000;
	make_avail(0);
	cr_assert_eq(vfsd_vring_pop(&vr, &mem, &chain, &why), 1);
	vfsd_vring_push(&vr, &chain, chain.head, 0);
	cr_expect(page_dirty(&log, GPA_BASE + 0x8000));
	cr_expect_not(page_dirty(&log, USED_GPA));
	vfsd_dirty_log_unmap(&log);
	close(fd);
}

Test(vring, dirty_log_never_writes_past_its_end)
{
	struct vfsd_dirty_log log;
	int fd = log_memfd(4096, &log); /* covers 128 MiB of guest-physical space */

	vfsd_dirty_log_mark(&log, 4096ull * 8 * 4096 - 1, 2); /* last bit, then past the end */
	cr_expect(log.map[4095] & 0x80);
	vfsd_dirty_log_mark(&log, 1ull << 40, 4096);
	vfsd_dirty_log_mark(&log, UINT64_MAX - 10, 100); /* wraps: must not loop or crash */
	vfsd_dirty_log_unmap(&log);
	close(fd);
}
