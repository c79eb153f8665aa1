/* SPDX-License-Identifier: MIT */
/*
 * Barrier: rounds of `parties` arrivals, under a small internal mp_lock.
 *
 * gen      the futex word: the number of the current round.  A round ends
 *          by release (all arrived) or by breaking; either way gen moves
 *          on and every sleeper of the round is woken.
 * history  bit (r mod 64) says whether round r ended broken.  A woken
 *          waiter reads its round's bit instead of taking the lock, so the
 *          outcome cannot be confused by what happens after: another break,
 *          a reset, more rounds.  (It would take 64 further rounds before
 *          a woken waiter runs for a bit to be overwritten.)
 * count    parties arrived in the current round; 0 while broken.
 * broken   the barrier is broken: waits fail at once until reset.
 * last_*   tid and start time of the latest arrival of the current round.
 *
 * Everything but the sleep happens with the lock held.  A process that
 * dies holding it may leave the fields half-updated, so whoever gets
 * -EOWNERDEAD breaks the current round: the survivors see MP_EBROKEN, as
 * they would for any other party's death.
 *
 * Deaths of waiting parties: the waiters of a round form a ring in which
 * each watches the party that arrived just before it, and the first one
 * watches the latest arrival.  A sleeper wakes every SLICE_NS to check that
 * the party it watches still lives (lock.c's owner check: tid plus start
 * time); if not, it breaks the round.  The first death in a round is always
 * watched by a live party, so the survivors learn of it within a slice.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>

#include "fault.h"
#include "futex.h"
#include "internal.h"

#define BARRIER_MAGIC 0x42415252u /* "BARR" */
#define PARTIES_MAX 0x7fffffffu
#define SLICE_NS (50 * 1000000)

struct barrier_shared {
	mp_lock lock;
	_Atomic uint32_t gen;
	_Atomic uint32_t count;
	uint32_t parties;
	_Atomic uint32_t broken;
	_Atomic uint64_t history;
	uint32_t last_tid;
	uint32_t magic;
	uint64_t last_start;
	uint64_t reserved;
};

_Static_assert(sizeof(struct barrier_shared) == sizeof(mp_barrier), "ABI");
_Static_assert(_Alignof(struct barrier_shared) <= _Alignof(mp_barrier),
	       "ABI");

static inline struct barrier_shared *shared(mp_barrier *b)
{
	return (struct barrier_shared *)b;
}

static inline bool valid(struct barrier_shared *s)
{
	return s && s->magic == BARRIER_MAGIC;
}

static inline uint64_t round_bit(uint32_t round)
{
	return (uint64_t)1 << (round & 63);
}

/* End the current round (lock held) and wake its sleepers. */
static void end_round(struct barrier_shared *s, bool broken)
{
	uint32_t r = atomic_load_explicit(&s->gen, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&s->history, memory_order_relaxed);

	h = broken ? h | round_bit(r) : h & ~round_bit(r);
	atomic_store_explicit(&s->history, h, memory_order_relaxed);
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	if (broken)
		atomic_store_explicit(&s->broken, 1, memory_order_relaxed);
	atomic_store_explicit(&s->gen, r + 1, memory_order_release);
	mp__futex_wake(&s->gen, INT_MAX);
}

/* Take the internal lock; after a holder's death, break the round.
 * Return: 0, -EINVAL (the barrier was destroyed under us). */
static int lock_state(struct barrier_shared *s)
{
	int err = mp_lock_acquire(&s->lock, MP_FOREVER);

	if (err == -EOWNERDEAD) {
		end_round(s, true);
		return 0;
	}
	return err ? -EINVAL : 0;
}

static void unlock_state(struct barrier_shared *s)
{
	mp_lock_release(&s->lock);
}

int mp_barrier_init(mp_barrier *b, unsigned parties)
{
	if (!b || parties == 0 || parties > PARTIES_MAX)
		return -EINVAL;
	struct barrier_shared *s = shared(b);
	mp_lock_init(&s->lock);
	atomic_store_explicit(&s->gen, 0, memory_order_relaxed);
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	atomic_store_explicit(&s->broken, 0, memory_order_relaxed);
	atomic_store_explicit(&s->history, 0, memory_order_relaxed);
	s->parties = parties;
	s->last_tid = 0;
	s->last_start = 0;
	s->reserved = 0;
	s->magic = BARRIER_MAGIC;
	return 0;
}

int mp_barrier_destroy(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	if (!valid(s))
		return -EINVAL;
	/* Through lock_state, so that the lock of a party that died holding
	 * it is recovered, not reported busy forever.  A count left by
	 * parties that died waiting is not trusted either: the kernel knows
	 * whether anyone sleeps (those woken here sleep again). */
	if (lock_state(s))
		return -EINVAL;
	bool busy = atomic_load_explicit(&s->count, memory_order_relaxed) &&
		    mp__futex_wake(&s->gen, INT_MAX) > 0;
	unlock_state(s);
	if (busy)
		return -EBUSY;
	int err = mp_lock_destroy(&s->lock);
	if (err)
		return err;
	s->magic = 0;
	return 0;
}

mp_barrier *mp_barrier_new(unsigned parties)
{
	if (parties == 0 || parties > PARTIES_MAX) {
		errno = EINVAL;
		return NULL;
	}
	mp_barrier *b = mp_shared_alloc(sizeof(*b));
	if (b)
		mp_barrier_init(b, parties);
	return b;
}

void mp_barrier_free(mp_barrier *b)
{
	if (!b)
		return;
	shared(b)->magic = 0;
	mp_shared_free(b);
}

/* Break round r if it is still the current one. */
static int break_if_current(struct barrier_shared *s, uint32_t r)
{
	int err = lock_state(s);
	if (err)
		return err;
	if (atomic_load_explicit(&s->gen, memory_order_relaxed) == r)
		end_round(s, true);
	unlock_state(s);
	return 0;
}

/* Sleep until round r ends; return our index or MP_EBROKEN. */
static int sleep_round(struct barrier_shared *s, uint32_t r, int index,
		       pid_t watch_tid, uint64_t watch_start,
		       mp__deadline deadline)
{
	pid_t me = mp__tid();

	for (;;) {
		if (atomic_load_explicit(&s->gen, memory_order_acquire) != r)
			break;
		mp__deadline until = mp__deadline_min_slice(deadline, SLICE_NS);
		if (mp__futex_wait(&s->gen, r, until) == 0)
			continue;
		if (atomic_load_explicit(&s->gen, memory_order_acquire) != r)
			break;
		if (deadline != MP__NEVER && mp__now_ns() >= deadline) {
			/* Our timeout breaks the round, as in Python. */
			if (break_if_current(s, r))
				return -EINVAL;
			continue;
		}
		if (index == 0) {
			/* The first arrival watches the latest one. */
			if (lock_state(s))
				return -EINVAL;
			watch_tid = (pid_t)s->last_tid;
			watch_start = s->last_start;
			unlock_state(s);
		}
		if (watch_tid == me || watch_tid == 0)
			continue;
		if (!mp__task_alive(watch_tid, watch_start) &&
		    break_if_current(s, r))
			return -EINVAL;
	}
	uint64_t h = atomic_load_explicit(&s->history, memory_order_relaxed);
	return (h & round_bit(r)) ? MP_EBROKEN : index;
}

int mp_barrier_wait(mp_barrier *b, double timeout_s)
{
	struct barrier_shared *s = shared(b);

	if (!valid(s))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	if (lock_state(s))
		return -EINVAL;
	MP__FAULT("barrier.wait.locked");
	if (atomic_load_explicit(&s->broken, memory_order_relaxed)) {
		unlock_state(s);
		return MP_EBROKEN;
	}
	uint32_t index = atomic_load_explicit(&s->count, memory_order_relaxed);
	if (index + 1 == s->parties) {
		end_round(s, false);
		unlock_state(s);
		return (int)index;
	}
	atomic_store_explicit(&s->count, index + 1, memory_order_relaxed);
	uint32_t r = atomic_load_explicit(&s->gen, memory_order_relaxed);
	pid_t watch_tid = index ? (pid_t)s->last_tid : 0;
	uint64_t watch_start = index ? s->last_start : 0;
	s->last_tid = (uint32_t)mp__tid();
	s->last_start = mp__self_start();
	unlock_state(s);
	return sleep_round(s, r, (int)index, watch_tid, watch_start, deadline);
}

int mp_barrier_abort(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	if (!valid(s) || lock_state(s))
		return -EINVAL;
	if (!atomic_load_explicit(&s->broken, memory_order_relaxed))
		end_round(s, true);
	unlock_state(s);
	return 0;
}

int mp_barrier_reset(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	if (!valid(s) || lock_state(s))
		return -EINVAL;
	if (atomic_load_explicit(&s->count, memory_order_relaxed))
		end_round(s, true);
	atomic_store_explicit(&s->broken, 0, memory_order_relaxed);
	unlock_state(s);
	return 0;
}

int mp_barrier_n_waiting(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	if (!valid(s))
		return -EINVAL;
	return (int)atomic_load_explicit(&s->count, memory_order_relaxed);
}

bool mp_barrier_broken(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	return valid(s) &&
	       atomic_load_explicit(&s->broken, memory_order_relaxed);
}

int mp_barrier_parties(mp_barrier *b)
{
	struct barrier_shared *s = shared(b);

	return valid(s) ? (int)s->parties : -EINVAL;
}
