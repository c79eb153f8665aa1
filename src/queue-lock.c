/* SPDX-License-Identifier: MIT */
/*
 * The side locks' slow paths (see queue-lock.h): spinning with backoff,
 * yielding, then sleeping on the word for the lock; sleeping on an event
 * for the other side; and, after a slice of either, freeing the lock of a
 * holder that died.  Apart from put and get because none of it runs on
 * their fast path.
 */
#include <errno.h>
#include <sched.h>

#include "queue-lock.h"
#include "queue-wait.h"

void mp__queue_recover(struct side *sd, uint64_t seen)
{
	MP__FAULT("queue.recover.snapshot");
	if (!(seen & TID) || mp__id_alive(seen))
		return;
	MP__FAULT("queue.recover.verdict");
	if (atomic_load_explicit(&sd->word, memory_order_relaxed) != seen)
		return;
	uint64_t want = seen & (CLOSED | PEER);
	if (atomic_compare_exchange_strong_explicit(&sd->word, &seen, want,
						    memory_order_acq_rel,
						    memory_order_relaxed))
		mp__futex_wake(futex_of(&sd->word), INT_MAX);
}

int mp__queue_lock_slow(struct side *sd, uint64_t me, bool closed_fails,
			struct wait *w)
{
	uint64_t extra = 0;
	int spun = 0;
	int backoff = 1;
	int yields = 0;

	for (;;) {
		uint64_t cur = atomic_load_explicit(&sd->word,
						    memory_order_relaxed);
		if (closed_fails && (cur & CLOSED))
			return MP_ECLOSED;
		if (!(cur & TID)) {
			if (atomic_compare_exchange_weak_explicit(
				    &sd->word, &cur, cur | me | extra,
				    memory_order_acquire, memory_order_relaxed))
				return 0;
			continue;
		}
		/* Exponential backoff: each read of the word takes its line
		 * from the holder, whose unlock then has to take it back. */
		if (spun < LOCK_SPINS) {
			for (int k = 0; k < backoff; k++)
				__builtin_ia32_pause();
			spun += backoff;
			if (backoff < 32)
				backoff <<= 1;
			continue;
		}
		if (expired(w)) {
			mp__queue_recover(sd, cur);
			return -ETIMEDOUT;
		}
		if (yields < 4) {
			yields++;
			/* Oversubscribed: the holder may be preempted. */
			sched_yield();
			continue;
		}
		if (!(cur & LOCKWAIT)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &sd->word, &cur, cur | LOCKWAIT,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			cur |= LOCKWAIT;
		}
		/* We may have slept: others may sleep too, so keep LOCKWAIT
		 * when we take it and let our unlock wake the next. */
		extra = LOCKWAIT;
		mp__deadline slice = mp__deadline_min_slice(deadline_of(w),
							    SLICE_NS);
		if (mp__futex_wait(futex_of(&sd->word), (uint32_t)cur,
				   slice) == -ETIMEDOUT)
			mp__queue_recover(sd, cur);
	}
}

int mp__queue_wait_peer(struct side *me, struct side *other,
			_Atomic uint32_t *event, uint32_t ev, struct wait *w)
{
	mp__deadline slice = mp__deadline_min_slice(deadline_of(w), SLICE_NS);
	int64_t t0 = mp__now_ns();
	int r = mp__futex_wait(event, ev, slice);

	learn_wait(me, mp__now_ns() - t0, r == -ETIMEDOUT);
	if (r != -ETIMEDOUT)
		return 0;
	if (expired(w))
		return -ETIMEDOUT;
	/* A slice passed with nothing: maybe the other side's holder died
	 * (nobody else may come to notice). */
	mp__queue_recover(other, atomic_load_explicit(&other->word, memory_order_relaxed));
	return 0;
}
