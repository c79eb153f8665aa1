/* SPDX-License-Identifier: MIT */
/*
 * RLock: a recursive lock built on mp_lock.
 *
 * Layout: an mp_lock (the owner id and waiters bit: all of lock.c's
 * owner-death machinery) plus a recursion count.  Invariants:
 * count is 0 while the inner lock is free and the number of unreleased
 * acquires while it is held; only the holder reads or writes it, and the
 * inner lock's acquire/release order those accesses between holders.  A
 * new holder that recovers the lock from a dead one (-EOWNERDEAD) starts
 * again at 1, whatever count the dead one left.
 */
#include <errno.h>
#include <stdatomic.h>

#include "clock.h"
#include "internal.h"

#define RLOCK_MAGIC 0x524c434bu /* "RLCK" */

struct rlock_shared {
	mp_lock lock;
	_Atomic uint32_t count; /* relaxed: only the holder touches it */
	uint32_t magic;
	uint64_t reserved;
};

_Static_assert(sizeof(struct rlock_shared) == sizeof(mp_rlock), "ABI");
_Static_assert(_Alignof(struct rlock_shared) <= _Alignof(mp_rlock), "ABI");

static inline struct rlock_shared *shared(mp_rlock *r)
{
	return (struct rlock_shared *)r;
}

static inline bool valid(struct rlock_shared *s)
{
	return s && s->magic == RLOCK_MAGIC;
}

int mp_rlock_init(mp_rlock *r)
{
	if (!r)
		return -EINVAL;
	struct rlock_shared *s = shared(r);
	mp_lock_init(&s->lock);
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	s->reserved = 0;
	s->magic = RLOCK_MAGIC;
	return 0;
}

int mp_rlock_destroy(mp_rlock *r)
{
	struct rlock_shared *s = shared(r);

	if (!valid(s))
		return -EINVAL;
	int err = mp_lock_destroy(&s->lock);
	if (err)
		return err;
	s->magic = 0;
	return 0;
}

mp_rlock *mp_rlock_new(void)
{
	mp_rlock *r = mp_shared_alloc(sizeof(*r));
	if (r)
		mp_rlock_init(r);
	return r;
}

void mp_rlock_free(mp_rlock *r)
{
	if (!r)
		return;
	shared(r)->magic = 0;
	mp_shared_free(r);
}

int mp_rlock_acquire(mp_rlock *r, double timeout_s)
{
	struct rlock_shared *s = shared(r);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (mp__lock_is_mine(&s->lock)) {
		uint32_t n = atomic_load_explicit(&s->count,
						  memory_order_relaxed);
		if (n == UINT32_MAX)
			return -EAGAIN;
		atomic_store_explicit(&s->count, n + 1, memory_order_relaxed);
		return 0;
	}
	int err = mp_lock_acquire(&s->lock, timeout_s);
	if (err == 0 || err == -EOWNERDEAD)
		atomic_store_explicit(&s->count, 1, memory_order_relaxed);
	return err;
}

int mp_rlock_release(mp_rlock *r)
{
	struct rlock_shared *s = shared(r);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	if (!mp__lock_is_mine(&s->lock))
		return -EPERM;
	uint32_t n = atomic_load_explicit(&s->count, memory_order_relaxed);
	if (n > 1) {
		atomic_store_explicit(&s->count, n - 1, memory_order_relaxed);
		return 0;
	}
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	return mp_lock_release(&s->lock);
}
