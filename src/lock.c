/*
 * Lock: a futex mutex that survives the death of its holder.
 *
 * The word:  0           unlocked
 *            tid         locked by thread tid, nobody sleeps
 *            tid | WAIT  locked, and someone may sleep on the word
 * owner_start holds the owner's start time while it holds the lock, 0
 * otherwise; with the tid it names the owner for good (see self.c).
 *
 * Uncontended acquire and release are one atomic instruction each and make
 * no system call.  A waiter spins briefly, sets WAIT and sleeps on the word
 * in slices: when a slice ends with the same owner, it checks whether that
 * owner still lives, and if not, takes the lock over with a CAS from the
 * exact word it saw (so two waiters cannot both recover it, and a waiter
 * whose view is stale fails the CAS) and reports -EOWNERDEAD.
 */
#include <errno.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"

#define LOCK_MAGIC 0x4c4f434bu /* "LOCK" */
#define WAIT 0x80000000u
#define TID_MASK 0x3fffffffu
#define SPINS 100
#define SLICE_NS (40 * 1000000)

struct lock_shared {
	_Atomic uint32_t word;
	uint32_t magic;
	_Atomic uint64_t owner_start;
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
	atomic_store_explicit(&s->owner_start, 0, memory_order_relaxed);
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

static void took(struct lock_shared *s)
{
	atomic_store_explicit(&s->owner_start, mp__self_start(),
			      memory_order_relaxed);
}

/* The word was `seen`; if its owner is dead, take the lock over. */
static bool recover(struct lock_shared *s, uint32_t seen, uint32_t me)
{
	uint64_t start = atomic_load_explicit(&s->owner_start,
					      memory_order_relaxed);
	if (mp__task_alive((pid_t)(seen & TID_MASK), start))
		return false;
	if (!atomic_compare_exchange_strong_explicit(
		    &s->word, &seen, me | WAIT, memory_order_acquire,
		    memory_order_relaxed))
		return false;
	took(s);
	return true;
}

static int acquire_slow(struct lock_shared *s, uint32_t me,
			mp__deadline deadline)
{
	uint32_t cur;

	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		goto out_timeout;
	for (int i = 0; i < SPINS; i++) {
		cur = atomic_load_explicit(&s->word, memory_order_relaxed);
		if (cur == 0 && atomic_compare_exchange_weak_explicit(
					&s->word, &cur, me,
					memory_order_acquire,
					memory_order_relaxed))
			goto out_took;
		__builtin_ia32_pause();
	}
	for (;;) {
		cur = atomic_load_explicit(&s->word, memory_order_relaxed);
		if (cur == 0) {
			/* We may have slept: others may sleep too, so keep
			 * WAIT set and let our release wake them. */
			if (atomic_compare_exchange_weak_explicit(
				    &s->word, &cur, me | WAIT,
				    memory_order_acquire, memory_order_relaxed))
				goto out_took;
			continue;
		}
		if ((cur & TID_MASK) == me)
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
		goto out_took;
	if (cur != 0 && (cur & TID_MASK) != me && recover(s, cur, me))
		return -EOWNERDEAD;
	return (cur & TID_MASK) == me ? -EDEADLK : -ETIMEDOUT;
out_took:
	took(s);
	return 0;
}

int mp_lock_acquire(mp_lock *l, double timeout_s)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s || s->magic != LOCK_MAGIC))
		return -EINVAL;
	uint32_t me = (uint32_t)mp__tid();
	uint32_t zero = 0;
	if (MP__LIKELY(atomic_compare_exchange_strong_explicit(
		    &s->word, &zero, me, memory_order_acquire,
		    memory_order_relaxed))) {
		took(s);
		return 0;
	}
	return acquire_slow(s, me, mp__deadline_in(timeout_s));
}

int mp_lock_release(mp_lock *l)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s || s->magic != LOCK_MAGIC))
		return -EINVAL;
	uint32_t me = (uint32_t)mp__tid();
	if ((atomic_load_explicit(&s->word, memory_order_relaxed) &
	     TID_MASK) != me)
		return -EPERM;
	atomic_store_explicit(&s->owner_start, 0, memory_order_relaxed);
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
	return (w & TID_MASK) == (uint32_t)mp__tid();
}
