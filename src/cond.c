/*
 * Condition: a sequence-count condition variable over an mp_lock.
 *
 * seq      the futex word: bumped by every notify that finds a waiter.
 * waiters  how many threads are between "read seq" and "back from sleep";
 *          changed only with the lock held on the way in, so a notifier
 *          that holds the lock sees every waiter that released it.
 * lock_off the lock's address minus the condition's: the lock is found the
 *          same way in every process, wherever the mapping sits.  It points
 *          at `own` when the condition uses its own lock.
 *
 * A waiter reads seq while it still holds the lock, then releases the lock
 * and sleeps while seq still has that value.  A notify that comes after
 * the release (it needs the lock to come after it, or the caller gave up
 * that guarantee) changes seq first, so the waiter either sees the new
 * value or is asleep and woken: no lost wake-up.  The price is that every
 * waiter still on its way to sleep returns too, so notify(n) may release
 * more than n; callers loop on their predicate, as with any condition.
 * notify_all does not requeue sleepers onto the lock: they wake together
 * and queue on the lock's own futex.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"

#define COND_MAGIC 0x434f4e44u /* "COND" */

struct cond_shared {
	mp_lock own;
	int64_t lock_off;
	_Atomic uint32_t seq;
	_Atomic uint32_t waiters;
	uint32_t magic;
	uint32_t reserved[3];
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
	atomic_store_explicit(&s->waiters, 0, memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		s->reserved[i] = 0;
	s->magic = COND_MAGIC;
	return 0;
}

int mp_condition_destroy(mp_condition *c)
{
	struct cond_shared *s = shared(c);

	if (!valid(s))
		return -EINVAL;
	if (atomic_load_explicit(&s->waiters, memory_order_relaxed))
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

/* The lock is held and ours.  Release it, sleep, take it back. */
static int wait_until(struct cond_shared *s, mp_lock *lock,
		      mp__deadline deadline)
{
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
	int err = 0;

	atomic_fetch_add_explicit(&s->waiters, 1, memory_order_relaxed);
	mp_lock_release(lock);
	while (atomic_load_explicit(&s->seq, memory_order_acquire) == seq) {
		if (mp__futex_wait(&s->seq, seq, deadline) == -ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	}
	atomic_fetch_sub_explicit(&s->waiters, 1, memory_order_relaxed);
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
		if (err == -EOWNERDEAD)
			return err;
		if (err == -ETIMEDOUT)
			return pred(arg) ? 0 : -ETIMEDOUT;
	}
	return 0;
}

int mp_condition_notify(mp_condition *c, int n)
{
	struct cond_shared *s = shared(c);

	if (!valid(s) || n < 0)
		return -EINVAL;
	if (n == 0 || !atomic_load_explicit(&s->waiters, memory_order_relaxed))
		return 0;
	atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
	mp__futex_wake(&s->seq, n);
	return 0;
}

int mp_condition_notify_all(mp_condition *c)
{
	return mp_condition_notify(c, INT_MAX);
}
