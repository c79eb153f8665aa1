/* SPDX-License-Identifier: MIT */
/*
 * The pool's staging block: the shared memory a synchronous map
 * (mp_pool_map, mp_pool_map_errors) uses for its records, inputs and
 * results, kept from one map to the next instead of freed.
 *
 * WHY: a fresh arena block costs a page fault per 4 KiB page in the
 * parent (which zeroes it) and again in every worker that touches it;
 * for a first map that is most of its time (a map of 10^6 items took
 * 25 ms cold, 2.5 ms warm).  So the pool keeps the block of its largest
 * map so far (up to STAGE_MAX), and a reused stage is zeroed only where
 * the workers do not write (records, errors), not whole: a map's workers
 * zero each chunk's results themselves (JOB_ZERO_OUT).  One of
 * STAGE_INIT bytes is made with the pool, and each worker maps its pages
 * into its page tables in one system call (MADV_POPULATE_WRITE) as it
 * starts, so a first map that fits takes no page fault in the pool.
 * Only at the start: populating a stage adopted later in every worker
 * maps all its pages in each, where faults map only those a worker
 * touches, and measured slower (a 3.6 MB map: 1.36 against 0.83 ms).
 * A map that does not fit, or runs while the stage is in use, allocates
 * as before.
 */
#include <errno.h>
#include <sys/mman.h>

#include "pool-internal.h"

#define STAGE_INIT ((size_t)1 << 20)
#define STAGE_MAX ((size_t)16 << 20) /* the arena is shared by all */
#define POPULATE_MAX ((size_t)4 << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* What a worker populates as it starts: the stage, its first
 * POPULATE_MAX bytes (a respawned worker must not wait long). */
static void stage_publish(struct mp_pool *p)
{
	struct pool_shared *s = p->s;

	atomic_store_explicit(&s->stage_off, off_of(s, p->stage),
			      memory_order_relaxed);
	atomic_store_explicit(&s->stage_size, p->stage_size,
			      memory_order_release);
}

void mp__stage_init(struct mp_pool *p)
{
	p->stage = mp_shared_alloc(STAGE_INIT); /* none: maps allocate */
	p->stage_size = p->stage ? STAGE_INIT : 0;
	stage_publish(p);
}

void *mp__stage_take(struct mp_pool *p, size_t total)
{
	if (!p->stage || p->stage_busy || total > p->stage_size)
		return NULL;
	p->stage_busy = true;
	return p->stage;
}

void mp__stage_give(struct mp_pool *p, struct req *r, size_t total)
{
	if (r->block == p->stage) {
		p->stage_busy = false;
		r->block = NULL;
		return;
	}
	if (!r->block || p->stage_busy || total <= p->stage_size ||
	    total > STAGE_MAX)
		return;
	mp_shared_free(p->stage);
	p->stage = r->block;
	p->stage_size = total;
	r->block = NULL;
	stage_publish(p);
}

bool mp__stage_drop_idle(struct mp_pool *p)
{
	if (!p->stage || p->stage_busy)
		return false;
	mp__stage_free(p);
	return true;
}

void mp__stage_free(struct mp_pool *p)
{
	mp_shared_free(p->stage);
	p->stage = NULL;
	p->stage_size = 0;
}

void mp__stage_worker(struct pool_shared *s)
{
	size_t len = atomic_load_explicit(&s->stage_size,
					  memory_order_acquire);
	char *b = at(s, atomic_load_explicit(&s->stage_off,
					     memory_order_relaxed));
	if (!b || !len)
		return;
	if (len > POPULATE_MAX)
		len = POPULATE_MAX;
	/* Page aligned outward: the arena's blocks of a page or more are
	 * page aligned, smaller ones share their page with neighbours, which
	 * POPULATE leaves as they are (it never writes). */
	uintptr_t lo = (uintptr_t)b & ~(uintptr_t)4095;
	uintptr_t hi = ((uintptr_t)b + len + 4095) & ~(uintptr_t)4095;
	(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	/* An old kernel says EINVAL: the pages fault in one by one. */
}
