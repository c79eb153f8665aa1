/* SPDX-License-Identifier: MIT */
/*
 * Writing over memory that fork children still share.
 *
 * WHY: a pool's workers are forked children, so every page of the caller
 * populated before mp_pool_new is shared copy-on-write with each of them
 * (the kernel cannot know they will never read it).  A map copies its
 * results into the caller's out array; when that array was touched
 * before the pool started, as a script's arrays usually are, each of its
 * pages then takes a copy-on-write fault: a new page, a memcg charge and
 * a 4 KiB copy of bytes about to be overwritten.  bench-pool-data's cold
 * map, 400,000 int64 results (782 pages): 2 ms of the map's 4 ms.
 *
 * The copy overwrites every byte of the array, so its old bytes are not
 * needed: the pages wholly inside it that are still shared, or not yet
 * mapped, are given back (MADV_DONTNEED, our mapping only) and mapped
 * anew in one call (MADV_POPULATE_WRITE, Linux 5.14; before that they
 * fault in as the copy writes them).  Same harness, interleaved runs:
 * 3.8 -> 3.2 ms.  Pages we map alone (the same array mapped into again)
 * are left alone: discarding them would cost a fresh page each time
 * instead of nothing.  /proc/self/pagemap says which (Linux 4.2): 8 bytes
 * a page, read in one pread per 512 pages, after a look at three pages
 * that spares the scan when they are ours alone (a repeated map into one
 * array: 1 -> 3 us, 0.1% of its time).  Shared memory and file pages
 * are never touched (their bytes are not ours to drop).
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PM_PRESENT ((uint64_t)1 << 63)
#define PM_FILE_OR_SHARED ((uint64_t)1 << 61)
#define PM_EXCLUSIVE ((uint64_t)1 << 56)
#define MIN_PAGES 16 /* below, two system calls cost more than they save */
#define BATCH 512

/* /proc/self/pagemap, opened at the first use in each process (a fork
 * child reopens it: the parent's describes the parent): -2 not yet, -1
 * not readable here. */
static _Atomic int pagemap_fd = -2;

static int pagemap(void)
{
	int fd = atomic_load_explicit(&pagemap_fd, memory_order_acquire);
	if (fd != -2)
		return fd;
	int nfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int want = nfd >= 0 ? nfd : -1, seen = -2;
	if (atomic_compare_exchange_strong(&pagemap_fd, &seen, want))
		return want;
	if (nfd >= 0) /* another thread opened it first */
		close(nfd);
	return seen;
}

void mp__cow_atfork_child(void)
{
	int fd = atomic_exchange(&pagemap_fd, -2);
	if (fd >= 0)
		close(fd);
}

/* Pages [lo, hi) are ours to replace: drop and map them in one go. */
static void renew(uintptr_t lo, uintptr_t hi)
{
	if (hi > lo && !madvise((void *)lo, hi - lo, MADV_DONTNEED))
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

/* Whether a page may be dropped: private anonymous memory, not mapped
 * (or swapped out), or mapped but still shared with a fork child. */
static bool replaceable(uint64_t e)
{
	if (e & PM_FILE_OR_SHARED)
		return false;
	if (!(e & PM_PRESENT))
		return true; /* its bytes (zeros, or swapped out) are not read */
	return !(e & PM_EXCLUSIVE);
}

void mp__cow_prepare_overwrite(void *p, size_t len)
{
	int fd = p ? pagemap() : -1;
	long ps = sysconf(_SC_PAGESIZE);
	if (fd < 0 || ps <= 0)
		return;
	uintptr_t page_size = (uintptr_t)ps;
	uintptr_t lo = ((uintptr_t)p + page_size - 1) & ~(page_size - 1);
	uintptr_t hi = ((uintptr_t)p + len) & ~(page_size - 1);
	if ((uintptr_t)p + len < (uintptr_t)p || hi <= lo ||
	    (hi - lo) / page_size < MIN_PAGES)
		return;

	/* The common repeat (an array mapped into again, owned by now) is
	 * told from three pages, in 3 small reads instead of a full scan. */
	bool owned = true;
	uintptr_t probe[3] = {lo, lo + (hi - lo) / 2 / page_size * page_size,
			      hi - page_size};
	for (int i = 0; i < 3 && owned; i++) {
		uint64_t e = 0;
		owned = pread(fd, &e, sizeof(e),
			      (off_t)(probe[i] / page_size * sizeof(e))) ==
				(ssize_t)sizeof(e) &&
			!replaceable(e);
	}
	if (owned)
		return;

	uint64_t ent[BATCH];
	uintptr_t run = 0; /* start of the current replaceable run, or 0 */
	for (uintptr_t a = lo; a < hi;) {
		size_t k = (hi - a) / page_size;
		if (k > BATCH)
			k = BATCH;
		ssize_t got = pread(fd, ent, k * sizeof(ent[0]),
				    (off_t)(a / page_size * sizeof(ent[0])));
		if (got <= 0) { /* no more to learn: keep what we know */
			hi = a;
			break;
		}
		k = (size_t)got / sizeof(ent[0]);
		for (size_t i = 0; i < k; i++, a += page_size) {
			bool r = replaceable(ent[i]);
			if (r && !run)
				run = a;
			else if (!r && run) {
				renew(run, a);
				run = 0;
			}
		}
	}
	if (run)
		renew(run, hi);
}
