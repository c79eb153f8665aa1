/* SPDX-License-Identifier: MIT */
/*
 * JoinableQueue (task_done, join: a count of unfinished tasks beside the
 * ring, bumped by put) and the queue's test hooks.  Apart from queue.c,
 * which is about moving messages.
 */
#include <errno.h>
#include <limits.h>

#include "queue-lock.h"
#include "spin.h"

int mp_queue_task_done(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	uint32_t old = atomic_load_explicit(&s->unfinished,
					    memory_order_relaxed);
	uint32_t want;
	do {
		if (!(old & ~JOINWAIT))
			return -EINVAL;
		want = old - 1;
		if (!(want & ~JOINWAIT))
			want = 0;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->unfinished, &old, want, memory_order_acq_rel,
		memory_order_relaxed));
	if (want == 0 && (old & JOINWAIT))
		mp__futex_wake(&s->unfinished, INT_MAX);
	return 0;
}

int mp_queue_join(mp_queue *q, double timeout_s)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	for (;;) {
		uint32_t cur = atomic_load_explicit(&s->unfinished,
						    memory_order_acquire);
		if (!(cur & ~JOINWAIT))
			return 0;
		if (!(cur & JOINWAIT) &&
		    !atomic_compare_exchange_weak_explicit(
			    &s->unfinished, &cur, cur | JOINWAIT,
			    memory_order_acquire, memory_order_relaxed))
			continue;
		if (mp__futex_wait(&s->unfinished, cur | JOINWAIT, deadline) ==
		    -ETIMEDOUT)
			return -ETIMEDOUT;
	}
}

ssize_t mp_queue_unfinished(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	return (ssize_t)(atomic_load_explicit(&s->unfinished,
					      memory_order_relaxed) &
			 ~JOINWAIT);
}

/* For tests only (declared in internal.h). */
int mp__queue_test_hold(mp_queue *q, int side)
{
	struct queue_shared *s = shared(q);
	struct wait w = {MP_FOREVER, MP__NEVER, false};

	if (!valid(s) || side < 0 || side > 1)
		return -EINVAL;
	int r = lock_side(side ? &s->cons : &s->prod, false, &w);
	if (r || side)
		return r;
	uint64_t tail = atomic_load_explicit(&s->prod.pos,
					     memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&s->cons.pos,
					     memory_order_acquire);
	if (tail - head + 2 * HDR <= s->limit) {
		uint64_t mask = mask_at(s, tail);
		*hdr_at(s, mask, tail) = 5;
		memcpy(ring(s) + ((tail + HDR) & mask), "torn", 4);
	}
	return 0;
}

/* For tests only (declared in internal.h). */
int mp__queue_test_unlock(mp_queue *q, int side)
{
	struct queue_shared *s = shared(q);

	if (!valid(s) || side < 0 || side > 1)
		return -EINVAL;
	if (side)
		unlock_side(&s->cons, &s->space_event);
	else
		unlock_side(&s->prod, &s->data_event);
	return 0;
}

/* For tests only (declared in internal.h). */
int mp__queue_test_lap(mp_queue *q, int peer, uint64_t *lap, uint64_t *span)
{
	struct queue_shared *s = shared(q);

	if (!valid(s) || peer < -1 || peer > 1)
		return -EINVAL;
	if (peer >= 0)
		atomic_store_explicit(&s->cons.cpu,
				      peer ? UINT64_MAX : mp__cpu_here(),
				      memory_order_relaxed);
	*lap = atomic_load_explicit(&s->lap, memory_order_relaxed);
	*span = s->ring_size;
	return 0;
}
