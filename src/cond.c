/* SPDX-License-Identifier: MIT */
/*
 * Condition: a condition variable over an mp_lock, with notifications
 * counted so that a dead waiter cannot swallow one.
 *
 * seq      the futex word: bumped by every notify that finds a waiter.
 * state    waiters << 32 | pending.  waiters: how many threads are
 *          between "read seq" (lock held) and leaving the wait; pending:
 *          notifications granted and not yet taken, never above waiters.
 * lock_off the lock's address minus the condition's: the lock is found the
 *          same way in every process, wherever the mapping sits.  It points
 *          at `own` when the condition uses its own lock.
 *
 * A waiter reads seq and counts itself in while it still holds the lock,
 * then releases the lock and sleeps while seq still has that value.
 * notify(n), which holds the lock, sees every such waiter: it raises
 * pending by up to n (never past waiters), then bumps seq and wakes n.  A
 * waiter returns only by taking one pending notification, and only once
 * seq moved since it counted itself in (so a notification granted before
 * it came is not for it); taking it and leaving the count are one CAS.
 * So notify(n) releases min(n, waiters) waiters, not more, whether they
 * were asleep or still on their way to sleep.
 *
 * Deaths: a woken waiter that dies before taking its notification leaves
 * it pending.  Sleepers sleep in slices (SLICE_NS) and look for a pending
 * notification after each, so another waiter takes it within a slice.  A
 * waiter killed while it waits stays counted in waiters for good (nothing
 * tells it from a slow one): later notifies may grant it a notification,
 * which another waiter then takes, a spurious return that callers looping
 * on their predicate absorb.  destroy therefore asks the kernel whether
 * anyone sleeps on seq instead of trusting the count.
 * notify_all does not requeue sleepers onto the lock: they wake together
 * and queue on the lock's own futex.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdatomic.h>

#include "fault.h"
#include "futex.h"
#include "internal.h"

#define COND_MAGIC 0x434f4e44u /* "COND" */
#define SLICE_NS (40 * 1000000)
#define ONE_WAITER ((uint64_t)1 << 32)

struct cond_shared {
	mp_lock own;
	int64_t lock_off;
	_Atomic uint32_t seq;
	uint32_t magic;
	_Atomic uint64_t state; /* waiters << 32 | pending */
	uint64_t reserved;
};

_Static_assert(sizeof(struct cond_shared) == sizeof(mp_condition), "ABI");
_Static_assert(_Alignof(struct cond_shared) <= _Alignof(mp_condition),
	       "ABI");

static inline struct cond_shared *shared(mp_condition *c)
{
	return (struct cond_shared *)c;
}

static inline bool valid(struct cond_shared *s)
{
	return s && s->magic == COND_MAGIC;
}

static inline mp_lock *lock_of(struct cond_shared *s)
{
	return (mp_lock *)((char *)s + s->lock_off);
}

int mp_condition_init(mp_condition *c, mp_lock *lock)
{
	if (!c)
		return -EINVAL;
	struct cond_shared *s = shared(c);
	if (lock) {
		if (!mp__lock_is_valid(lock))
			return -EINVAL;
		s->lock_off = (int64_t)((char *)lock - (char *)s);
	} else {
		mp_lock_init(&s->own);
		s->lock_off = (int64_t)offsetof(struct cond_shared, own);
	}
	atomic_store_explicit(&s->seq, 0, memory_order_relaxed);
	atomic_store_explicit(&s->state, 0, memory_order_relaxed);
	s->reserved = 0;
	s->magic = COND_MAGIC;
	return 0;
}

int mp_condition_destroy(mp_condition *c)
{
	struct cond_shared *s = shared(c);

	if (!valid(s))
		return -EINVAL;
	/* Waiters killed while waiting stay counted: ask the kernel whether
	 * anyone sleeps.  Those woken here find nothing pending and sleep
	 * again. */
	if (atomic_load_explicit(&s->state, memory_order_relaxed) >> 32 &&
	    mp__futex_wake(&s->seq, INT_MAX) > 0)
		return -EBUSY;
	s->magic = 0;
	return 0;
}

mp_condition *mp_condition_new(mp_lock *lock)
{
	if (lock && !mp__lock_is_valid(lock)) {
		errno = EINVAL;
		return NULL;
	}
	mp_condition *c = mp_shared_alloc(sizeof(*c));
	if (c)
		mp_condition_init(c, lock);
	return c;
}

void mp_condition_free(mp_condition *c)
{
	if (!c)
		return;
	shared(c)->magic = 0;
	mp_shared_free(c);
}

mp_lock *mp_condition_get_lock(mp_condition *c)
{
	struct cond_shared *s = shared(c);

	return valid(s) ? lock_of(s) : NULL;
}

int mp_condition_acquire(mp_condition *c, double timeout_s)
{
	struct cond_shared *s = shared(c);

	if (!valid(s))
		return -EINVAL;
	return mp_lock_acquire(lock_of(s), timeout_s);
}

int mp_condition_release(mp_condition *c)
{
	struct cond_shared *s = shared(c);

	if (!valid(s))
		return -EINVAL;
	return mp_lock_release(lock_of(s));
}

/* Take a pending notification and leave the count of waiters. */
static bool take_pending(struct cond_shared *s)
{
	uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);

	while ((uint32_t)st)
		if (atomic_compare_exchange_weak_explicit(
			    &s->state, &st, st - ONE_WAITER - 1,
			    memory_order_relaxed, memory_order_relaxed))
			return true;
	return false;
}

/* Leave the count of waiters without a notification; drop the pending
 * ones that no waiter left could take. */
static void leave(struct cond_shared *s)
{
	uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	uint64_t next;

	do {
		uint64_t w = (st >> 32) - 1, p = (uint32_t)st;
		next = w << 32 | (p < w ? p : w);
	} while (!atomic_compare_exchange_weak_explicit(
		&s->state, &st, next, memory_order_relaxed,
		memory_order_relaxed));
}

/* The lock is held and ours.  Release it, sleep, take it back.
 * Return: 0, -ETIMEDOUT, -EOWNERDEAD, -EINVAL (destroyed under us, the
 * lock not taken back). */
static int wait_until(struct cond_shared *s, mp_lock *lock,
		      mp__deadline deadline)
{
	uint32_t seq0 = atomic_load_explicit(&s->seq, memory_order_relaxed);
	uint32_t cur = seq0;
	int err;

	atomic_fetch_add_explicit(&s->state, ONE_WAITER, memory_order_relaxed);
	mp_lock_release(lock);
	for (;;) {
		mp__deadline until = mp__deadline_min_slice(deadline, SLICE_NS);
		if (mp__futex_wait(&s->seq, cur, until) == 0)
			MP__FAULT("cond.wait.woken");
		if (MP__UNLIKELY(!valid(s)))
			return -EINVAL;
		/* Acquire: pairs with notify's release, so a new seq shows
		 * the notification it granted. */
		cur = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (cur != seq0 && take_pending(s)) {
			err = 0;
			break;
		}
		if (deadline != MP__NEVER && mp__now_ns() >= deadline) {
			leave(s);
			err = -ETIMEDOUT;
			break;
		}
	}
	/* -EOWNERDEAD (we hold it) or -EINVAL (someone destroyed it) win
	 * over a timeout. */
	int lerr = mp_lock_acquire(lock, MP_FOREVER);
	return lerr ? lerr : err;
}

int mp_condition_wait(mp_condition *c, double timeout_s)
{
	struct cond_shared *s = shared(c);

	if (!valid(s))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	mp_lock *lock = lock_of(s);
	if (!mp__lock_is_mine(lock))
		return -EPERM;
	return wait_until(s, lock, mp__deadline_in(timeout_s));
}

int mp_condition_wait_for(mp_condition *c, bool (*pred)(void *), void *arg,
			  double timeout_s)
{
	struct cond_shared *s = shared(c);

	if (!valid(s) || !pred)
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	mp_lock *lock = lock_of(s);
	if (!mp__lock_is_mine(lock))
		return -EPERM;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	while (!pred(arg)) {
		int err = wait_until(s, lock, deadline);
		if (err == -ETIMEDOUT)
			return pred(arg) ? 0 : -ETIMEDOUT;
		if (err)
			return err;
	}
	return 0;
}

int mp_condition_notify(mp_condition *c, int n)
{
	struct cond_shared *s = shared(c);

	if (!valid(s) || n < 0)
		return -EINVAL;
	uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	uint64_t next;
	do {
		uint64_t w = st >> 32, p = (uint32_t)st;
		if (n == 0 || w == 0)
			return 0;
		p = p + (uint64_t)n < w ? p + (uint64_t)n : w;
		next = w << 32 | p;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->state, &st, next, memory_order_relaxed,
		memory_order_relaxed));
	atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
	mp__futex_wake(&s->seq, n);
	return 0;
}

int mp_condition_notify_all(mp_condition *c)
{
	return mp_condition_notify(c, INT_MAX);
}
