/* SPDX-License-Identifier: MIT */
/*
 * Semaphore and BoundedSemaphore.
 *
 * word     the futex word: bits 0-30 the count of units (0..bound), bit 31
 *          SLEEPERS: someone may sleep on the word.  Sleepers wait on it
 *          while it reads exactly SLEEPERS (no unit).
 * bound    the largest count a release may produce: the initial value for
 *          a bounded semaphore, INT32_MAX otherwise.
 *
 * Uncontended acquire and release are one CAS each and make no system call:
 * a release wakes one sleeper only when SLEEPERS is set, and clears it in
 * the same CAS.  Every change of the word is an RMW on it and a sleeper
 * sleeps on the exact word it saw, so no release can slip between a
 * sleeper's look and its sleep.  The woken one (or any that saw the word
 * change while going to sleep) owns that wake-up: it sets SLEEPERS again
 * when it takes its unit, and if units are left it wakes the next sleeper,
 * so releases that came while SLEEPERS was clear are not left behind.
 *
 * Deaths: a waiter holds nothing, but a woken one that dies before it
 * takes its unit swallows the wake-up, and the other sleepers would sleep
 * on beside a unit.  So sleepers sleep in slices (SLICE_NS) and look at the
 * count after each: a lost wake-up costs at most one slice.  A woken
 * acquirer may find its unit taken by one that never slept (no hand-off,
 * as in glibc and musl): it just sleeps again.
 *
 * No count of waiters is kept (a dead one would never leave it), so
 * destroy asks the kernel: it wakes every sleeper and fails only if some
 * were asleep.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>

#include "fault.h"
#include "futex.h"
#include "internal.h"
#include "spin.h"

#define SEM_MAGIC 0x53454d41u /* "SEMA" */
#define SEM_MAX 0x7fffffffu
#define COUNT 0x7fffffffu
#define SLEEPERS 0x80000000u
#define SLICE_NS (40 * 1000000)

struct sem_shared {
	_Atomic uint32_t word;
	uint32_t reserved0;
	uint32_t bound;
	uint32_t magic;
	_Atomic uint32_t spin; /* spin budget hint, see spin.h */
	uint32_t reserved[3];
};
_Static_assert(sizeof(struct sem_shared) == sizeof(mp_semaphore), "ABI");
_Static_assert(_Alignof(struct sem_shared) <= _Alignof(mp_semaphore), "ABI");

static inline struct sem_shared *shared(mp_semaphore *s)
{
	return (struct sem_shared *)s;
}

static inline bool valid(struct sem_shared *s)
{
	return s && s->magic == SEM_MAGIC;
}

static int init(mp_semaphore *sem, unsigned value, uint32_t bound)
{
	if (!sem || value > SEM_MAX)
		return -EINVAL;
	struct sem_shared *s = shared(sem);
	atomic_store_explicit(&s->word, value, memory_order_relaxed);
	s->reserved0 = 0;
	s->bound = bound;
	atomic_store_explicit(&s->spin, 0, memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		s->reserved[i] = 0;
	s->magic = SEM_MAGIC;
	return 0;
}

int mp_semaphore_init(mp_semaphore *s, unsigned value)
{
	return init(s, value, SEM_MAX);
}

int mp_semaphore_init_bounded(mp_semaphore *s, unsigned value)
{
	return init(s, value, value);
}

int mp_semaphore_destroy(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (!valid(s))
		return -EINVAL;
	/* SLEEPERS may be a dead waiter's, and live sleepers may sleep with
	 * it clear: the kernel knows who sleeps.  Those woken here just look
	 * at the word and sleep again. */
	if (mp__futex_wake(&s->word, INT_MAX) > 0)
		return -EBUSY;
	s->magic = 0;
	return 0;
}

static mp_semaphore *make(unsigned value, bool bounded)
{
	if (value > SEM_MAX) {
		errno = EINVAL;
		return NULL;
	}
	mp_semaphore *s = mp_shared_alloc(sizeof(*s));
	if (s)
		init(s, value, bounded ? value : SEM_MAX);
	return s;
}

mp_semaphore *mp_semaphore_new(unsigned value)
{
	return make(value, false);
}

mp_semaphore *mp_bounded_semaphore_new(unsigned value)
{
	return make(value, true);
}

void mp_semaphore_free(mp_semaphore *s)
{
	if (!s)
		return;
	shared(s)->magic = 0;
	mp_shared_free(s);
}

/* Take a unit if there is one, leaving SLEEPERS as it is. */
static inline bool try_take(struct sem_shared *s)
{
	uint32_t w = atomic_load_explicit(&s->word, memory_order_relaxed);

	while (w & COUNT)
		if (atomic_compare_exchange_weak_explicit(
			    &s->word, &w, w - 1, memory_order_acquire,
			    memory_order_relaxed))
			return true;
	return false;
}

static int acquire_slow(struct sem_shared *s, mp__deadline deadline)
{
	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		return try_take(s) ? 0 : -ETIMEDOUT;
	int spins = mp__spin_budget(&s->spin);
	for (int i = 0; i < spins; i++) {
		__builtin_ia32_pause();
		if ((atomic_load_explicit(&s->word, memory_order_relaxed) &
		     COUNT) &&
		    try_take(s)) {
			mp__spin_result(&s->spin, true);
			return 0;
		}
	}
	if (spins)
		mp__spin_result(&s->spin, false);
	/* SLEEPERS once we have slept: we may own a release's wake-up, and
	 * the sleepers it did not wake count on us to set the bit again. */
	uint32_t mark = 0;
	uint32_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	for (;;) {
		if (w & COUNT) {
			uint32_t next = (w - 1) | mark;
			if (!atomic_compare_exchange_weak_explicit(
				    &s->word, &w, next, memory_order_acquire,
				    memory_order_relaxed))
				continue;
			/* Units released while SLEEPERS was clear woke
			 * nobody: pass one on. */
			if (mark && (next & COUNT))
				mp__futex_wake(&s->word, 1);
			return 0;
		}
		if (!(w & SLEEPERS)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &s->word, &w, w | SLEEPERS,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			w |= SLEEPERS;
		}
		/* Past the deadline, after one more look at the count; the
		 * bit stays set for the wake-up we may have had. */
		if (deadline != MP__NEVER && mp__now_ns() >= deadline)
			return -ETIMEDOUT;
		mp__deadline until = mp__deadline_min_slice(deadline, SLICE_NS);
		if (mp__futex_wait(&s->word, w, until) == 0)
			MP__FAULT("sem.acquire.woken");
		mark = SLEEPERS;
		if (MP__UNLIKELY(!valid(s)))
			return -EINVAL;
		w = atomic_load_explicit(&s->word, memory_order_relaxed);
	}
}

int mp_semaphore_acquire(mp_semaphore *sem, double timeout_s)
{
	struct sem_shared *s = shared(sem);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	uint32_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	if (MP__LIKELY(w & COUNT) &&
	    atomic_compare_exchange_strong_explicit(&s->word, &w, w - 1,
						    memory_order_acquire,
						    memory_order_relaxed))
		return 0;
	return acquire_slow(s, mp__deadline_in(timeout_s));
}

int mp_semaphore_release(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	uint32_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	do {
		if ((w & COUNT) >= s->bound)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->word, &w, (w & COUNT) + 1, memory_order_release,
		memory_order_relaxed));
	if (w & SLEEPERS)
		mp__futex_wake(&s->word, 1);
	return 0;
}

int mp_semaphore_get_value(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (!valid(s))
		return -EINVAL;
	return (int)(atomic_load_explicit(&s->word, memory_order_relaxed) &
		     COUNT);
}
