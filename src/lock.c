/* SPDX-License-Identifier: MIT */
/*
 * Lock: a futex mutex that survives the death of its holder.
 *
 * The word (64 bits):  0               unlocked
 *                      id              locked by the thread with that
 *                                      owner id, nobody sleeps
 *                      id | WAIT       locked, and someone may sleep
 * where id is the holder's owner id (internal.h, self.c): its tid and 39
 * bits of its start time, which name one task for good.  The futex is the
 * word's low half (tid, 7 bits of start time, WAIT): that is where WAIT
 * is set, and the only part a sleeper needs to see change.
 *
 * So the whole identity of the holder is the one value a CAS takes and a
 * waiter loads: a snapshot names exactly one task, never the tid of one
 * and the start time of another.  A recycled pid cannot pass for the dead
 * holder (it has a later start time), and a stale snapshot cannot match
 * the word of another holder: only the same task, which the check found
 * alive, has that id.
 *
 * Uncontended acquire and release are one CAS each and make no system
 * call (the id is one cached per-thread value).  Each CAS is the first
 * touch of the lock's line (the magic is checked after it: a load first
 * would fetch the line shared, the CAS fetch it again, and a waiter could
 * take it in between), and a release's CAS from our exact id is also the
 * check that we hold the lock.  An acquire also stores, in the line its
 * CAS took, the CPU it ran on (one rseq load), so that waiters can tell a
 * holder that cannot run.
 *
 * A waiter spins while the holder may run (spin_acquire: seldom looks,
 * yield to a holder on our CPU, ~10 us at most), then sets WAIT, counts
 * itself in `sleepers` and sleeps on the word in slices.  A release that
 * finds WAIT wakes one sleeper if the count says one sleeps: a waiter that
 * set WAIT often finds the word moved when its futex call looks, and does
 * not sleep (before the count, 1984 wakes in a contended run woke 2).  The
 * woken one takes the lock with WAIT while others are counted asleep.
 * When a slice ends with the same owner, the waiter checks whether that
 * owner still lives, and if not, takes the lock over with a CAS from the
 * exact word it saw (so two waiters cannot both recover it, and a waiter
 * whose view is stale fails the CAS) and reports -EOWNERDEAD.  An owner
 * whose start time was unknown (self.c) counts as alive until its tid is
 * gone or a zombie.  A waiter killed asleep stays counted: releases with
 * WAIT then call futex_wake for nobody, which costs time, not correctness.
 *
 * The contended slow mode (issue 17: 4 processes on 2 CPUs at 0.83x a
 * plain futex mutex, 2 processes at 0.67x).  The waiters used to CAS the
 * word at every pause: each CAS took the line from the holder in the
 * middle of its hold, its release had to fetch it back, and the waiter's
 * next CAS, already queued, won the lock at that release.  The lock then
 * moved between the CPUs at almost every increment, a transfer each:
 * 280-410 moves per 1000 increments (900 in the worst runs, a strict
 * alternation) where the futex mutex, whose waiters give up after 100
 * tries and sleep, made 30-60.  Now a waiter looks (a load) at gaps of
 * 16, 32, then 64 pauses and CASes only a word it saw free, so a holder
 * that takes the lock again at once keeps it for a gap.  Same run,
 * interleaved, bench-lock's rows, 1M increments a process, median of 7
 * (2 processes under SCHED_FIFO one per CPU, as on an idle machine; 4 at
 * nice -20 against the other work):
 *
 *                      before        after         futex mutex   robust
 *   2 procs  ns/inc    82.8          32.1          67.5          87.3
 *            moves/1k  92            11.7          56.5          128
 *            futex/1k  10.9          0.87          2.5           170
 *   4 procs  ns/inc    76.5          28.1          65.4          87.5
 *            moves/1k  280           10.6          32.9          153
 *            futex/1k  3.3           0.77          30.0          226
 *
 * (moves: MP_BENCH_LOCK_MOVES=1; futex calls: perf stat -e
 * syscalls:sys_enter_futex.)  The longest single wait, 4 processes, fell
 * from 12-22 ms to about 1 ms (a scheduler slice).  A waiter now sees a
 * release up to one gap late (0.4-1.7 us), less than a futex wake-up
 * costs; the uncontended release went from 23 to 13 instructions.
 */
#include <errno.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"
#include "spin.h"

#define LOCK_MAGIC 0x4c4f434bu /* "LOCK" */
#define WAIT MP__LOCK_WAIT
#define SLICE_NS (40 * 1000000)

struct lock_shared {
	_Atomic uint64_t word;
	uint32_t magic;
	_Atomic uint16_t cpu;	   /* 1 + the CPU its holder took it on; 0: not
				      known */
	_Atomic uint16_t sleepers; /* in futex_wait, or about to be (65536
				      would read as none: they would wake
				      at the end of their slice) */
};

_Static_assert(sizeof(struct lock_shared) == sizeof(mp_lock), "ABI");
_Static_assert(_Alignof(struct lock_shared) <= _Alignof(mp_lock), "ABI");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "address-free 64-bit atomics");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the futex is the low half of the word");
_Static_assert((WAIT & MP__ID_FLAGS) == WAIT, "WAIT is a free id bit");

static inline struct lock_shared *shared(mp_lock *l)
{
	return (struct lock_shared *)l;
}

static inline _Atomic uint32_t *futex_of(struct lock_shared *s)
{
	return (_Atomic uint32_t *)(void *)&s->word;
}

int mp_lock_init(mp_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_shared *s = shared(l);
	atomic_store_explicit(&s->cpu, 0, memory_order_relaxed);
	atomic_store_explicit(&s->sleepers, 0, memory_order_relaxed);
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

/* Taken: say where (a plain store to the line the CAS just took). */
static inline void took(struct lock_shared *s)
{
	uint32_t cpu = mp__cpu_here();
	atomic_store_explicit(&s->cpu, cpu <= UINT16_MAX ? (uint16_t)cpu : 0,
			      memory_order_relaxed);
}

/* The flags for a waiter that takes the lock: WAIT when it has slept and
 * others still sleep, since the release that woke it cleared WAIT and
 * only our release can wake them now.  A sleeper that comes later sets
 * WAIT itself. */
static inline uint64_t wait_if_sleepers(struct lock_shared *s, bool slept)
{
	return slept && atomic_load_explicit(&s->sleepers,
					     memory_order_relaxed)
		   ? WAIT
		   : 0;
}

/* The word was `seen`; if its owner is dead, take the lock over. */
static bool recover(struct lock_shared *s, uint64_t seen, uint64_t me)
{
	if (mp__id_alive(seen))
		return false;
	if (!atomic_compare_exchange_strong_explicit(
		    &s->word, &seen, me | WAIT, memory_order_acquire,
		    memory_order_relaxed))
		return false;
	took(s);
	return true;
}

/*
 * Wait for the lock without sleeping while that can pay.  The one rule:
 * never take the lock's line from a holder that runs.  Each look at the
 * word moves the line to us, and the holder, whose next release and
 * acquire need it back, stalls for the transfer; a waiter that looks at
 * every pause takes the line away during each hold and wins it at each
 * release, so the lock moves between CPUs at every increment (CASing at
 * every pause, as this lock used to, or loading at every pause and
 * CASing a free word: 730 moves per 1000 increments, 2 processes on 2
 * CPUs; at these gaps, 12).  So we look seldom, at gaps
 * that double from GAP_FIRST to GAP_MAX pauses (a pause is ~27 ns here:
 * 0.4 to 1.7 us), and CAS only a word we saw free: a holder that takes
 * the lock again at once keeps it for a whole gap, and we win it when
 * it is really given up.
 *
 * A holder that took the lock on our CPU does not run (we do): there we
 * yield to it, up to SAME_YIELDS times, then sleep.  After SPIN_PAUSES
 * pauses (~10 us, about what a futex sleep and wake cost) the holder is
 * most likely preempted or in a long hold, and we sleep.
 */
#define GAP_FIRST 16
#define GAP_MAX 64
#define SPIN_PAUSES 384
#define SAME_YIELDS 4

static bool spin_acquire(struct lock_shared *s, uint64_t me, bool slept)
{
	uint32_t here = mp__cpu_here();
	int gap = GAP_FIRST, yields = 0;

	if (!mp__multi_cpu())
		return false;
	for (int spent = 0; spent < SPIN_PAUSES; spent += gap) {
		uint64_t cur = atomic_load_explicit(&s->word,
						    memory_order_relaxed);
		if (cur == 0) {
			if (atomic_compare_exchange_strong_explicit(
				    &s->word, &cur,
				    me | wait_if_sleepers(s, slept),
				    memory_order_acquire,
				    memory_order_relaxed)) {
				took(s);
				return true;
			}
		} else if (here && atomic_load_explicit(&s->cpu,
						memory_order_relaxed) == here) {
			if (yields++ >= SAME_YIELDS)
				return false;
			sched_yield();
			continue;
		}
		for (int i = 0; i < gap; i++)
			__builtin_ia32_pause();
		if (gap < GAP_MAX)
			gap *= 2;
	}
	return false;
}

/* Out of line, so the fast path saves no registers. */
static __attribute__((noinline)) int acquire_slow(struct lock_shared *s,
						  uint64_t me,
						  double timeout_s)
{
	mp__deadline deadline = mp__deadline_in(timeout_s);
	bool slept = false;
	uint64_t cur;

	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		goto out_timeout;
	if (mp__id_is_mine(atomic_load_explicit(&s->word,
						memory_order_relaxed)))
		return -EDEADLK;
	if (spin_acquire(s, me, slept))
		return 0;
	for (;;) {
		cur = atomic_load_explicit(&s->word, memory_order_relaxed);
		if (cur == 0) {
			if (atomic_compare_exchange_weak_explicit(
				    &s->word, &cur,
				    me | wait_if_sleepers(s, slept),
				    memory_order_acquire, memory_order_relaxed)) {
				took(s);
				return 0;
			}
			continue;
		}
		if (mp__id_is_mine(cur))
			return -EDEADLK;
		if (!(cur & WAIT)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &s->word, &cur, cur | WAIT,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			cur |= WAIT;
		}
		mp__deadline slice = mp__deadline_min_slice(deadline, SLICE_NS);
		/* Counted before the futex reads the word (a full barrier
		 * between), and the release reads the count after its
		 * exchange: so either it sees us and wakes, or the word we
		 * sleep on has moved and we do not sleep. */
		atomic_fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst);
		int r = mp__futex_wait(futex_of(s), (uint32_t)cur, slice);
		atomic_fetch_sub_explicit(&s->sleepers, 1, memory_order_relaxed);
		slept = true;
		if (r == 0) {
			/* Woken, or the word moved before we slept (the
			 * holder runs): spin again. */
			if (spin_acquire(s, me, slept))
				return 0;
			continue;
		}
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
				memory_order_relaxed)) {
		took(s);
		return 0;
	}
	if (cur != 0 && !mp__id_is_mine(cur) && recover(s, cur, me))
		return -EOWNERDEAD;
	return cur != 0 && mp__id_is_mine(cur) ? -EDEADLK : -ETIMEDOUT;
}

/* The CAS is the first touch of the lock's line: a load before it (the
 * magic) would fetch the line shared and the CAS fetch it again, and
 * between the two a waiter can take it.  A CAS that took a word that is
 * no lock puts the 0 back. */
int mp_lock_acquire(mp_lock *l, double timeout_s)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s || !mp__timeout_ok(timeout_s)))
		return -EINVAL;
	uint64_t me = mp__lock_id();
	uint64_t zero = 0;
	if (MP__LIKELY(atomic_compare_exchange_strong_explicit(
		    &s->word, &zero, me, memory_order_acquire,
		    memory_order_relaxed))) {
		if (MP__UNLIKELY(s->magic != LOCK_MAGIC)) {
			atomic_store_explicit(&s->word, 0,
					      memory_order_relaxed);
			return -EINVAL;
		}
		took(s);
		return 0;
	}
	if (MP__UNLIKELY(s->magic != LOCK_MAGIC))
		return -EINVAL;
	return acquire_slow(s, me, timeout_s);
}

/* The word was not just our id: sleepers to wake, an id taken before our
 * start time was known, or not ours at all. */
static __attribute__((noinline)) int release_slow(struct lock_shared *s,
						  uint64_t cur)
{
	if (s->magic != LOCK_MAGIC)
		return -EINVAL;
	if (!mp__id_is_mine(cur))
		return -EPERM;
	uint64_t old = atomic_exchange_explicit(&s->word, 0,
						memory_order_seq_cst);
	/* WAIT says someone may sleep, the count whether anyone does: a
	 * waiter that set WAIT often finds the word moved when its futex
	 * call looks, and does not sleep. */
	if ((old & WAIT) &&
	    atomic_load_explicit(&s->sleepers, memory_order_seq_cst))
		mp__futex_wake(futex_of(s), 1);
	return 0;
}

/* One CAS from our id: the check that we hold the lock and the release
 * in one touch of the line. */
int mp_lock_release(mp_lock *l)
{
	struct lock_shared *s = shared(l);

	if (MP__UNLIKELY(!s))
		return -EINVAL;
	uint64_t cur = mp__lock_id();
	if (MP__LIKELY(atomic_compare_exchange_strong_explicit(
		    &s->word, &cur, 0, memory_order_release,
		    memory_order_relaxed)))
		return 0;
	return release_slow(s, cur);
}

bool mp__lock_is_valid(mp_lock *l)
{
	return l && shared(l)->magic == LOCK_MAGIC;
}

bool mp__lock_is_mine(mp_lock *l)
{
	if (!mp__lock_is_valid(l))
		return false;
	return mp__id_is_mine(atomic_load_explicit(&shared(l)->word,
						   memory_order_relaxed));
}

int mp__lock_test_set_owner(mp_lock *l, uint64_t id)
{
	if (!mp__lock_is_valid(l) || !mp__id_tid(id))
		return -EINVAL;
	atomic_store_explicit(&shared(l)->word, id & MP__ID_MASK,
			      memory_order_release);
	return 0;
}

int mp__lock_test_state(mp_lock *l, uint64_t *word, uint32_t *sleepers)
{
	if (!mp__lock_is_valid(l) || !word || !sleepers)
		return -EINVAL;
	*word = atomic_load_explicit(&shared(l)->word, memory_order_acquire);
	*sleepers = atomic_load_explicit(&shared(l)->sleepers,
					 memory_order_acquire);
	return 0;
}
