/*
 * Lock: a futex mutex that survives the death of its holder.
 *
 * The word:  0               unlocked
 *            id              locked by the thread with that id, nobody
 *                            sleeps
 *            id | WAIT       locked, and someone may sleep on the word
 * where id = tid | tag << 22: a tid fits in 22 bits (the kernel's
 * PID_MAX_LIMIT is 2^22) and the tag is the low 9 bits of the thread's
 * start time (see self.c).  The tag tells a recycled tid from the dead
 * owner (a new task has the same tag one time in 512, and only if the tid
 * came back while the lock was held), and costs nothing: the whole id is
 * one cached per-thread value, so the lock word is all there is.
 *
 * Uncontended acquire and release are one atomic instruction each and make
 * no system call.  A waiter spins for an adaptive budget (spin.h), then
 * sets WAIT and sleeps on the word in slices.  When a slice ends with the
 * same owner, it checks whether that owner still lives, and if not, takes
 * the lock over with a CAS from the exact word it saw (so two waiters
 * cannot both recover it, and a waiter whose view is stale fails the CAS)
 * and reports -EOWNERDEAD.
 */
#include <errno.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"
#include "spin.h"

#define LOCK_MAGIC 0x4c4f434bu /* "LOCK" */
#define WAIT 0x80000000u
#define ID_MASK (~WAIT)
#define TID_MASK 0x003fffffu
#define TAG_SHIFT 22
#define SLICE_NS (40 * 1000000)

struct lock_shared {
	_Atomic uint32_t word;
	uint32_t magic;
	_Atomic uint32_t spin; /* spin budget hint, see spin.h */
	uint32_t reserved;     /* room for the future, ABI */
};

_Static_assert(sizeof(struct lock_shared) == sizeof(mp_lock), "ABI");
_Static_assert(_Alignof(struct lock_shared) <= _Alignof(mp_lock), "ABI");

static inline struct lock_shared *shared(mp_lock *l)
{
	return (struct lock_shared *)l;
}

int mp_lock_init(mp_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_shared *s = shared(l);
	s->reserved = 0;
	atomic_store_explicit(&s->spin, 0, memory_order_relaxed);
	atomic_store_explicit(&s->word, 0, memory_order_relaxed);
	s->magic = LOCK_MAGIC;
	return 0;
}

int mp_lock_destroy(mp_lock *l)
{
	if (!l || shared(l)->magic != LOCK_MAGIC)
		return -EINVAL;
	if (atomic_load_explicit(&shared(l)->word, memory_order_relaxed))
		return -EBUSY;
	shared(l)->magic = 0;
	return 0;
}

mp_lock *mp_lock_new(void)
{
	mp_lock *l = mp_shared_alloc(sizeof(*l));
	if (l)
		mp_lock_init(l);
	return l;
}

void mp_lock_free(mp_lock *l)
{
	if (!l)
		return;
	shared(l)->magic = 0;
	mp_shared_free(l);
}

/* The word was `seen`; if its owner is dead, take the lock over. */
static bool recover(struct lock_shared *s, uint32_t seen, uint32_t me)
{
	if (mp__task_alive_tag((pid_t)(seen & TID_MASK),
			       (seen & ID_MASK) >> TAG_SHIFT))
		return false;
	return atomic_compare_exchange_strong_explicit(
		&s->word, &seen, me | WAIT, memory_order_acquire,
		memory_order_relaxed);
}

/* Out of line, so the fast path saves no registers. */
static __attribute__((noinline)) int acquire_slow(struct lock_shared *s,
						  uint32_t me,
						  double timeout_s)
{
	mp__deadline deadline = mp__deadline_in(timeout_s);
	uint32_t cur;

	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		goto out_timeout;
	int spins = mp__spin_budget(&s->spin);
	for (int i = 0; i < spins; i++) {
		cur = atomic_load_explicit(&s->word, memory_order_relaxed);
		if (cur == 0 && atomic_compare_exchange_weak_explicit(
					&s->word, &cur, me,
					memory_order_acquire,
					memory_order_relaxed)) {
			mp__spin_result(&s->spin, true);
			return 0;
		}
		__builtin_ia32_pause();
	}
	if (spins)
		mp__spin_result(&s->spin, false);
	for (;;) {
		cur = atomic_load_explicit(&s->word, memory_order_relaxed);
		if (cur == 0) {
			/* We may have slept: others may sleep too, so keep
			 * WAIT set and let our release wake them.  (Clearing
			 * it when no one sleeps measured slower: the stale bit
			 * is a backoff that lets a holder keep the line.) */
			if (atomic_compare_exchange_weak_explicit(
				    &s->word, &cur, me | WAIT,
				    memory_order_acquire, memory_order_relaxed))
				return 0;
			continue;
		}
		if ((cur & ID_MASK) == me)
			return -EDEADLK;
		if (!(cur & WAIT)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &s->word, &cur, cur | WAIT,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			cur |= WAIT;
		}
		mp__deadline slice = mp__deadline_min_slice(deadline, SLICE_NS);
		if (mp__futex_wait(&s->word, cur, slice) == 0)
			continue;
		if (atomic_load_explicit(&s->word, memory_order_relaxed) ==
			    cur &&
		    recover(s, cur, me))
			return -EOWNERDEAD;
		if (deadline != MP__NEVER && mp__now_ns() >= deadline)
			return -ETIMEDOUT;
	}
out_timeout:
	/* A try, or a deadline already past: one look at the owner, so that
	 * a loop of tries on a dead owner's lock still gets it. */
	cur = atomic_load_explicit(&s->word, memory_order_relaxed);
	if (cur == 0 && atomic_compare_exchange_strong_explicit(
				&s->word, &cur, me, memory_order_acquire,
				memory_order_relaxed))
		return 0;
	if (cur != 0 && (cur & ID_MASK) != me && recover(s, cur, me))
		return -EOWNERDEAD;
	return (cur & ID_MASK) == me ? -EDEADLK : -ETIMEDOUT;
}

int mp_lock_acquire(mp_lock *l, double timeout_s)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s || s->magic != LOCK_MAGIC))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	uint32_t me = mp__lock_id();
	uint32_t zero = 0;
	if (MP__LIKELY(atomic_compare_exchange_strong_explicit(
		    &s->word, &zero, me, memory_order_acquire,
		    memory_order_relaxed)))
		return 0;
	return acquire_slow(s, me, timeout_s);
}

int mp_lock_release(mp_lock *l)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s || s->magic != LOCK_MAGIC))
		return -EINVAL;
	if ((atomic_load_explicit(&s->word, memory_order_relaxed) &
	     ID_MASK) != mp__lock_id())
		return -EPERM;
	uint32_t old = atomic_exchange_explicit(&s->word, 0,
						memory_order_release);
	if (old & WAIT)
		mp__futex_wake(&s->word, 1);
	return 0;
}

bool mp__lock_is_valid(mp_lock *l)
{
	return l && shared(l)->magic == LOCK_MAGIC;
}

bool mp__lock_is_mine(mp_lock *l)
{
	if (!mp__lock_is_valid(l))
		return false;
	uint32_t w = atomic_load_explicit(&shared(l)->word,
					  memory_order_relaxed);
	return (w & ID_MASK) == mp__lock_id();
}
