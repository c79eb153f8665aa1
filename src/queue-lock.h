/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_LOCK_H
#define MP_QUEUE_LOCK_H
/*
 * The queue's two side locks: the fast paths, inline for put and get;
 * waiting for a lock or for the other side, and freeing a dead holder's
 * lock, in queue-lock.c.
 *
 * The side words (64 bits; the futex is the low half):
 *   bits 0-28  ID       with bits 32-63, the holder's owner id (tid and
 *                       start time, see internal.h), 0 when unlocked
 *   bit 29     CLOSED   (pword only) no more puts
 *   bit 30     LOCKWAIT someone may sleep on this word for the lock
 *   bit 31     PEER     someone of the OTHER side sleeps on its event:
 *                       consumers set it in pword (waiting for data),
 *                       producers in cword (waiting for room)
 * The unlock is a CAS on the word, so it reads PEER atomically with giving
 * up the lock: a waiter that sets PEER (an RMW) either comes before the
 * unlock, and the unlocker sees it and wakes, or after it, and then its RMW
 * synchronizes with the unlock and its re-check sees the new tail.  So no
 * fence on the fast path and no lost wake-up.  Waiters sleep on
 * data_event/space_event, read BEFORE they set PEER: an unlock in between
 * bumps the event and the futex wait returns at once (the ck_ec lesson).
 *
 * Faults: a holder's owner id names it, in the word itself; a waiter that
 * slept a slice (SLICE_NS) checks whether the holder of the word it saw
 * lives and, if not, clears the holder with a CAS from that exact word.
 * The snapshot may be a slice old, but it names one task, and a task found
 * dead stays dead: if the CAS matches, the word is still that dead
 * holder's, never a live one's that happens to look the same.  Every state inside a
 * critical section is consistent: a put publishes its record with a single
 * store of tail after writing it (a dead producer's half record is simply
 * overwritten), a get moves head with a single store after copying (a dead
 * consumer's message is still at head for the next one).  Waiters hold
 * nothing, so their death only costs a spurious wake-up.
 */
#include <limits.h>

#include "fault.h"
#include "futex.h"
#include "queue-layout.h"

/* A timeout turned into a deadline only when a call has to wait: the fast
 * path makes no clock_gettime. */
struct wait {
	double timeout_s;
	mp__deadline deadline;
	bool known;
};

static inline mp__deadline deadline_of(struct wait *w)
{
	if (!w->known) {
		w->deadline = mp__deadline_in(w->timeout_s);
		w->known = true;
	}
	return w->deadline;
}

static inline bool expired(struct wait *w)
{
	mp__deadline d = deadline_of(w);
	return d != MP__NEVER && mp__now_ns() >= d;
}

/* Take a side's lock the slow way (it was held, or is closed).  Return: 0,
 * -ETIMEDOUT, MP_ECLOSED (closed_fails and the word says CLOSED). */
int mp__queue_lock_slow(struct side *sd, uint64_t me, bool closed_fails,
			struct wait *w);

/* The word was `seen` after a slice of waiting: if its holder died, free
 * the lock (a dead holder left the queue consistent, see the top). */
void mp__queue_recover(struct side *sd, uint64_t seen);

/* Sleep on `event` until the other side (whose word is `other`) unlocks,
 * having set PEER there, and learn from how long that took (`me`'s spin
 * budget, queue-wait.h).  Return: 0 woken or slice over (retry),
 * -ETIMEDOUT. */
int mp__queue_wait_peer(struct side *me, struct side *other,
			_Atomic uint32_t *event, uint32_t ev, struct wait *w);

static inline int lock_side(struct side *sd, bool closed_fails,
			    struct wait *w)
{
	uint64_t me = mp__lock_id();
	uint64_t cur = atomic_load_explicit(&sd->word, memory_order_relaxed);

	if (MP__LIKELY(!(cur & (TID | CLOSED))) &&
	    MP__LIKELY(atomic_compare_exchange_weak_explicit(
		    &sd->word, &cur, cur | me, memory_order_acquire,
		    memory_order_relaxed))) {
		MP__FAULT("queue.lock.taken");
		return 0;
	}
	if (!closed_fails && !(cur & TID) &&
	    atomic_compare_exchange_strong_explicit(
		    &sd->word, &cur, cur | me, memory_order_acquire,
		    memory_order_relaxed))
		return 0;
	return mp__queue_lock_slow(sd, me, closed_fails, w);
}

/* Give up a side's lock; wake lock waiters and the other side's sleepers
 * (on `event`) if the word says they may sleep. */
static inline void unlock_side(struct side *sd, _Atomic uint32_t *event)
{
	uint64_t old = atomic_load_explicit(&sd->word, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
		&sd->word, &old, old & CLOSED, memory_order_release,
		memory_order_relaxed))
		;
	if (MP__UNLIKELY(old & LOCKWAIT))
		mp__futex_wake(futex_of(&sd->word), 1);
	if (MP__UNLIKELY(old & PEER)) {
		atomic_fetch_add_explicit(event, 1, memory_order_release);
		mp__futex_wake(event, INT_MAX);
	}
}

#endif
