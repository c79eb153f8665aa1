/* SPDX-License-Identifier: MIT */
/*
 * Event: a flag with a generation count, in one futex word.
 *
 *   bit 0      SET: the flag is up
 *   bit 1      WAITERS: someone may sleep on the word
 *   bits 2-31  generation: how many times the flag went up (mod 2^30)
 *
 * set() on a lowered flag bumps the generation, raises SET and clears
 * WAITERS in one CAS, and wakes everyone only if WAITERS was set; on a
 * raised flag it is a load.  clear() drops SET and keeps the rest.  A waiter
 * notes the generation, raises WAITERS and sleeps on the exact word it
 * saw; it returns once SET is up or the generation moved.  So a set()
 * followed at once by a clear() still releases every waiter that was there
 * (Python's waiters return True in that case too), and a waiter never
 * sleeps on a word that a set() already changed.  The generation would have
 * to wrap 2^30 times between two looks for a waiter to miss a set().
 *
 * A waiter holds nothing and set() wakes them all, so a waiter's death
 * costs nothing but the WAITERS bit it may leave behind: the next set()
 * makes a system call for nobody, and destroy asks the kernel whether
 * anyone really sleeps.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"
#include "spin.h"

#define EVENT_MAGIC 0x45564e54u /* "EVNT" */
#define SET 1u
#define WAITERS 2u
#define GEN_ONE 4u
#define FLAGS (SET | WAITERS)

struct event_shared {
	_Atomic uint32_t word;
	uint32_t magic;
	_Atomic uint32_t spin; /* spin budget hint, see spin.h */
	uint32_t reserved;
};

_Static_assert(sizeof(struct event_shared) == sizeof(mp_event), "ABI");
_Static_assert(_Alignof(struct event_shared) <= _Alignof(mp_event), "ABI");

static inline struct event_shared *shared(mp_event *e)
{
	return (struct event_shared *)e;
}

static inline bool valid(struct event_shared *s)
{
	return s && s->magic == EVENT_MAGIC;
}

int mp_event_init(mp_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_shared *s = shared(e);
	atomic_store_explicit(&s->word, 0, memory_order_relaxed);
	atomic_store_explicit(&s->spin, 0, memory_order_relaxed);
	s->reserved = 0;
	s->magic = EVENT_MAGIC;
	return 0;
}

int mp_event_destroy(mp_event *e)
{
	struct event_shared *s = shared(e);

	if (!valid(s))
		return -EINVAL;
	/* WAITERS may be a dead waiter's: ask the kernel whether anyone
	 * sleeps.  Those woken here see no set() and sleep again. */
	if ((atomic_load_explicit(&s->word, memory_order_relaxed) & WAITERS) &&
	    mp__futex_wake(&s->word, INT_MAX) > 0)
		return -EBUSY;
	s->magic = 0;
	return 0;
}

mp_event *mp_event_new(void)
{
	mp_event *e = mp_shared_alloc(sizeof(*e));
	if (e)
		mp_event_init(e);
	return e;
}

void mp_event_free(mp_event *e)
{
	if (!e)
		return;
	shared(e)->magic = 0;
	mp_shared_free(e);
}

int mp_event_set(mp_event *e)
{
	struct event_shared *s = shared(e);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	uint32_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	uint32_t next;
	do {
		if (w & SET)
			return 0;
		next = ((w & ~FLAGS) + GEN_ONE) | SET;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->word, &w, next, memory_order_release,
		memory_order_relaxed));
	if (w & WAITERS)
		mp__futex_wake(&s->word, INT_MAX);
	return 0;
}

int mp_event_clear(mp_event *e)
{
	struct event_shared *s = shared(e);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	atomic_fetch_and_explicit(&s->word, ~SET, memory_order_relaxed);
	return 0;
}

bool mp_event_is_set(mp_event *e)
{
	struct event_shared *s = shared(e);

	if (!valid(s))
		return false;
	return atomic_load_explicit(&s->word, memory_order_acquire) & SET;
}

/* Whether the word shows a set() since generation `gen` was current. */
static inline bool done(uint32_t w, uint32_t gen)
{
	return (w & SET) || (w & ~FLAGS) != gen;
}

int mp_event_wait(mp_event *e, double timeout_s)
{
	struct event_shared *s = shared(e);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	uint32_t w = atomic_load_explicit(&s->word, memory_order_acquire);
	if (w & SET)
		return 0;
	uint32_t gen = w & ~FLAGS;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		return -ETIMEDOUT;
	int spins = mp__spin_budget(&s->spin);
	for (int i = 0; i < spins; i++) {
		__builtin_ia32_pause();
		w = atomic_load_explicit(&s->word, memory_order_acquire);
		if (done(w, gen)) {
			mp__spin_result(&s->spin, true);
			return 0;
		}
	}
	if (spins)
		mp__spin_result(&s->spin, false);
	for (;;) {
		w = atomic_load_explicit(&s->word, memory_order_acquire);
		if (done(w, gen))
			return 0;
		if (!(w & WAITERS)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &s->word, &w, w | WAITERS,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			w |= WAITERS;
		}
		if (mp__futex_wait(&s->word, w, deadline) == -ETIMEDOUT) {
			w = atomic_load_explicit(&s->word,
						 memory_order_acquire);
			return done(w, gen) ? 0 : -ETIMEDOUT;
		}
	}
}
