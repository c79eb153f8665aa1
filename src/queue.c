/* SPDX-License-Identifier: MIT */
/*
 * Queue: a byte ring in shared memory, two robust side locks, futex events.
 *
 * Layout (struct queue_shared, then the ring):
 *   line 0  constants: magic, ring size R (a power of two), ring offset
 *   line 1  producer side: pword, head_cache, nput
 *   line 2  tail (alone: consumers poll it)
 *   line 3  consumer side: cword, tail_cache, nget
 *   line 4  head (alone: producers poll it)
 *   line 5  data_event, space_event, unfinished (joinable)
 *   ring    R bytes; head and tail are byte counts that only grow, the
 *           index is pos & (R - 1).  A record is an 8-byte header (the
 *           length) and the message, padded to 8, wrapping around the end
 *           of the ring if need be (a header never straddles it).
 *
 * Producers serialize on pword, consumers on cword: the queue is an SPSC
 * ring between "the producer holding pword" and "the consumer holding
 * cword", so in the 1:1 case neither lock is ever contended and each stays
 * in its own core's cache; head_cache/tail_cache spare most reads of the
 * other side's line.  Per operation: one CAS to lock, the copy, a release
 * store of tail (or head), one CAS to unlock.
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
 *
 * Waiting (issue 17: fast in the worst run).  1 -> 1 left to the scheduler
 * is bimodal, and counting instead of timing (perf stat's context-switch
 * and syscall tracepoints per message, bench-queue's "one CPU" and "two
 * CPUs" scenarios) shows why:
 *  - Both on one CPU, the ring fills and drains in turns, one
 *    sched_yield per turn (0.05 a message at 4 KiB, 0.001 at 64 B) and
 *    no futex call at all.  But each turn began with the waiter spinning
 *    SPINS pauses (~6 us) for a peer that could not run: ~40% of the time
 *    at 4 KiB.  Now each side publishes the CPU it ran on (side.cpu, in
 *    its own line, rseq-cheap), and a waiter whose peer last ran on its
 *    own CPU skips the spin and yields at once; one whose peer is on
 *    another CPU spins and does not yield (that helps nobody).  One CPU,
 *    4 KiB: 3.0-3.4 -> 3.8-5.4 M msg/s, same yields and switches.
 *  - One per CPU, futex calls are rare (one per 300-5000 messages): a
 *    wake-up per message is not what makes the slow runs, so wake-ups are
 *    not batched (no latency is added to a lone message for it).  What
 *    changes is whether the consumer is behind (it reads records from its
 *    tail cache, in batches) or caught up (it reloads the tail for each
 *    record, 0.16-0.51 reloads a message measured, and every record's
 *    lines cross between the caches twice).  slip() below keeps a
 *    spinning consumer from catching up too closely: 0.03-0.13 reloads a
 *    message.  Its latency bound is documented there and tested
 *    (fault_lone_message_to_spinner).
 * The wake-up protocol (PEER, events read before raising it) is unchanged:
 * only how long a waiter spins or yields before it.
 *
 * Measured again (2026-12-02, bench-queue 0.5 ours "1x1, 64 B", 7 runs of
 * 2,000,000 messages each under perf stat, the machine shared with other
 * builds): 1,200-4,600 futex calls and 54,000-69,000 sched_yields for 14 M
 * messages (0.0003 and 0.005 a message), 23,000-26,000 context switches:
 * still no wake-up per message, so batching wake-ups would buy nothing.
 * Side by side in one run (bench-queue 1 all "1x1"), mp_queue's median is
 * 0.80x the spinning SPSC ring at 64 B and 0.93x at 4 KiB, with the same
 * slow runs as the ring (the two-CPU mode, where each record's lines
 * cross between the caches; the ring has no lock, no wake-up and no
 * yields at all): the slow mode left is the hardware's and the load's,
 * not the protocol's.  Against a pipe the ratio swings with the load far
 * more than with us (3.3x busy, 5.4x-12x quiet): the pipe sleeps, so a
 * busy machine costs it less than any spinning ring.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "futex.h"
#include "internal.h"
#include "spin.h"

#define QUEUE_MAGIC 0x51554555u /* "QUEU" */
#define QUEUE_LAYOUT 3
#define F_JOINABLE 1u

#define TID ((uint64_t)MP__ID_TID) /* nonzero in every held word */
#define CLOSED 0x20000000u
#define LOCKWAIT 0x40000000u
#define PEER 0x80000000u

#define JOINWAIT 0x80000000u
#define HDR 8u
#define MIN_RING 64u
#define MAX_RING ((uint64_t)1 << 30)
#define SPINS 200
#define LOCK_SPINS 100
#define YIELDS 2
#define SLICE_NS (40 * 1000000)

struct side {
	_Atomic uint64_t word;
	_Atomic uint64_t cpu; /* 1 + the CPU of the last holder; 0 unknown */
	_Atomic uint64_t cache; /* the other side's pos, as last read */
	_Atomic uint64_t count; /* messages put / got */
	char pad2[MP__CACHELINE - 32];
	/* tail for producers, head for consumers: the one field the other
	 * side reads, on its own line so that its polling does not steal
	 * the lock word's line between our lock and unlock. */
	_Atomic uint64_t pos;
	char pad3[MP__CACHELINE - 8];
};

struct queue_shared {
	uint32_t magic;
	uint32_t layout;
	uint32_t flags;
	uint32_t pad;
	uint64_t ring_size;
	int64_t ring_off; /* from this struct; negative when allocated apart */
	char pad0[MP__CACHELINE - 32];
	struct side prod;
	struct side cons;
	_Atomic uint32_t data_event;
	_Atomic uint32_t space_event;
	_Atomic uint32_t unfinished; /* JOINWAIT | count */
	char pad3[MP__CACHELINE - 12];
};

_Static_assert(sizeof(struct side) == 2 * MP__CACHELINE, "two lines a side");
_Static_assert(sizeof(struct queue_shared) == 6 * MP__CACHELINE, "layout");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "address-free 64-bit atomics");
_Static_assert(((CLOSED | LOCKWAIT | PEER) & MP__ID_FLAGS) ==
		       (CLOSED | LOCKWAIT | PEER),
	       "flags in the id's free bits");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the futex is the low half of a side word");

static inline _Atomic uint32_t *futex_of(_Atomic uint64_t *word)
{
	return (_Atomic uint32_t *)(void *)word;
}

static inline struct queue_shared *shared(mp_queue *q)
{
	return (struct queue_shared *)q;
}

static inline uint8_t *ring(struct queue_shared *s)
{
	return (uint8_t *)s + s->ring_off;
}

static inline uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

static uint64_t ring_for(size_t capacity)
{
	uint64_t want = align8(capacity) + HDR;
	uint64_t r = MIN_RING;

	if (capacity > MAX_RING)
		return 0;
	while (r < want)
		r <<= 1;
	return r > MAX_RING ? 0 : r;
}

static bool valid(struct queue_shared *s)
{
	return s && s->magic == QUEUE_MAGIC;
}

static void setup(struct queue_shared *s, uint64_t ring_size, int64_t off,
		  bool joinable)
{
	memset(s, 0, sizeof(*s));
	s->layout = QUEUE_LAYOUT;
	s->flags = joinable ? F_JOINABLE : 0;
	s->ring_size = ring_size;
	s->ring_off = off;
	/* Publish: whoever sees the magic sees the fields. */
	__atomic_store_n(&s->magic, QUEUE_MAGIC, __ATOMIC_RELEASE);
}

static mp_queue *queue_new(size_t capacity, bool joinable)
{
	uint64_t r = ring_for(capacity ? capacity : MP_QUEUE_DEFAULT_BYTES - HDR);

	if (!r) {
		errno = EINVAL;
		return NULL;
	}
	/* Apart, so that a power-of-two ring is not doubled by the buddy
	 * allocator for the sake of a 256-byte header. */
	struct queue_shared *s = mp_shared_alloc(sizeof(*s));
	if (!s)
		return NULL;
	uint8_t *buf = mp_shared_alloc((size_t)r);
	if (!buf) {
		mp_shared_free(s);
		errno = ENOMEM;
		return NULL;
	}
	setup(s, r, (int64_t)((intptr_t)buf - (intptr_t)s), joinable);
	return (mp_queue *)s;
}

mp_queue *mp_queue_new(size_t capacity_bytes)
{
	return queue_new(capacity_bytes, false);
}

mp_queue *mp_joinable_queue_new(size_t capacity_bytes)
{
	return queue_new(capacity_bytes, true);
}

size_t mp_queue_size_for(size_t capacity_bytes)
{
	uint64_t r = ring_for(capacity_bytes ? capacity_bytes
					     : MP_QUEUE_DEFAULT_BYTES - HDR);
	return r ? sizeof(struct queue_shared) + (size_t)r : 0;
}

mp_queue *mp_queue_init(void *mem, size_t mem_size, bool joinable)
{
	if (!mem || ((uintptr_t)mem & 7) ||
	    mem_size < sizeof(struct queue_shared) + MIN_RING) {
		errno = EINVAL;
		return NULL;
	}
	uint64_t r = MIN_RING;
	while (r * 2 <= mem_size - sizeof(struct queue_shared) &&
	       r * 2 <= MAX_RING)
		r <<= 1;
	setup(mem, r, sizeof(struct queue_shared), joinable);
	return mem;
}

mp_queue *mp_queue_attach(void *mem)
{
	struct queue_shared *s = mem;

	if (!s || ((uintptr_t)mem & 7) ||
	    __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) != QUEUE_MAGIC ||
	    s->layout != QUEUE_LAYOUT) {
		errno = EINVAL;
		return NULL;
	}
	return mem;
}

int mp_queue_destroy(mp_queue *q)
{
	if (!valid(shared(q)))
		return -EINVAL;
	shared(q)->magic = 0;
	return 0;
}

void mp_queue_free(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return;
	s->magic = 0;
	if (s->ring_off != sizeof(*s))
		mp_shared_free(ring(s));
	mp_shared_free(s);
}

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

/* ---- side locks ---- */

/* The word was `seen` after a slice of waiting: if its holder died, free
 * the lock (a dead holder left the queue consistent, see the top). */
static void recover(struct side *sd, uint64_t seen)
{
	MP__FAULT("queue.recover.snapshot");
	if (!(seen & TID) || mp__id_alive(seen))
		return;
	MP__FAULT("queue.recover.verdict");
	if (atomic_load_explicit(&sd->word, memory_order_relaxed) != seen)
		return;
	uint64_t want = seen & (CLOSED | PEER);
	if (atomic_compare_exchange_strong_explicit(&sd->word, &seen, want,
						    memory_order_acq_rel,
						    memory_order_relaxed))
		mp__futex_wake(futex_of(&sd->word), INT_MAX);
}

/* Take a side's lock.  Return: 0, -ETIMEDOUT, MP_ECLOSED (closed_fails and
 * the word says CLOSED). */
static int lock_slow(struct side *sd, uint64_t me, bool closed_fails,
		     struct wait *w)
{
	uint64_t extra = 0;
	int spun = 0;
	int backoff = 1;
	int yields = 0;

	for (;;) {
		uint64_t cur = atomic_load_explicit(&sd->word,
						    memory_order_relaxed);
		if (closed_fails && (cur & CLOSED))
			return MP_ECLOSED;
		if (!(cur & TID)) {
			if (atomic_compare_exchange_weak_explicit(
				    &sd->word, &cur, cur | me | extra,
				    memory_order_acquire, memory_order_relaxed))
				return 0;
			continue;
		}
		/* Exponential backoff: each read of the word takes its line
		 * from the holder, whose unlock then has to take it back. */
		if (spun < LOCK_SPINS) {
			for (int k = 0; k < backoff; k++)
				__builtin_ia32_pause();
			spun += backoff;
			if (backoff < 32)
				backoff <<= 1;
			continue;
		}
		if (expired(w)) {
			recover(sd, cur);
			return -ETIMEDOUT;
		}
		if (yields < 4) {
			yields++;
			/* Oversubscribed: the holder may be preempted. */
			sched_yield();
			continue;
		}
		if (!(cur & LOCKWAIT)) {
			if (!atomic_compare_exchange_weak_explicit(
				    &sd->word, &cur, cur | LOCKWAIT,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			cur |= LOCKWAIT;
		}
		/* We may have slept: others may sleep too, so keep LOCKWAIT
		 * when we take it and let our unlock wake the next. */
		extra = LOCKWAIT;
		mp__deadline slice = mp__deadline_min_slice(deadline_of(w),
							    SLICE_NS);
		if (mp__futex_wait(futex_of(&sd->word), (uint32_t)cur,
				   slice) == -ETIMEDOUT)
			recover(sd, cur);
	}
}

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
	return lock_slow(sd, me, closed_fails, w);
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

/* Sleep on `event` until the other side (whose word is `other`) unlocks,
 * having set PEER there; `ready` re-checks the condition after PEER is
 * set.  Return: 1 ready (retry), 0 woken or slice over (retry),
 * -ETIMEDOUT. */
static int wait_peer(struct side *other, _Atomic uint32_t *event,
		     uint32_t ev, struct wait *w)
{
	mp__deadline slice = mp__deadline_min_slice(deadline_of(w), SLICE_NS);
	int r = mp__futex_wait(event, ev, slice);

	if (r != -ETIMEDOUT)
		return 0;
	if (expired(w))
		return -ETIMEDOUT;
	/* A slice passed with nothing: maybe the other side's holder died
	 * (nobody else may come to notice). */
	recover(other, atomic_load_explicit(&other->word, memory_order_relaxed));
	return 0;
}

/* ---- ring copies ---- */

static inline void copy_in(struct queue_shared *s, uint64_t pos,
			   const void *src, size_t len)
{
	uint64_t mask = s->ring_size - 1;
	uint64_t i = pos & mask;
	uint64_t first = s->ring_size - i;
	uint8_t *r = ring(s);

	if (len <= first) {
		memcpy(r + i, src, len);
	} else {
		memcpy(r + i, src, first);
		memcpy(r, (const uint8_t *)src + first, len - first);
	}
}

static inline void copy_out(struct queue_shared *s, uint64_t pos, void *dst,
			    size_t len)
{
	uint64_t mask = s->ring_size - 1;
	uint64_t i = pos & mask;
	uint64_t first = s->ring_size - i;
	uint8_t *r = ring(s);

	if (len <= first) {
		memcpy(dst, r + i, len);
	} else {
		memcpy(dst, r + i, first);
		memcpy((uint8_t *)dst + first, r, len - first);
	}
}

static inline uint64_t *hdr_at(struct queue_shared *s, uint64_t pos)
{
	return (uint64_t *)(ring(s) + (pos & (s->ring_size - 1)));
}

/* ---- where the other side runs ---- */

/* Publish where this side's holder runs (in its own lock word's line,
 * which it owns anyway). */
static inline void note_cpu(struct side *sd, uint64_t here)
{
	if (atomic_load_explicit(&sd->cpu, memory_order_relaxed) != here)
		atomic_store_explicit(&sd->cpu, here, memory_order_relaxed);
}

/* Did the other side's last holder run on OUR CPU?  Then it does not run
 * now (we do): spinning for it only burns the slice it needs, and
 * sched_yield is what lets it run.  Otherwise it probably runs, on the
 * other CPU: spinning pays and yielding helps nobody. */
static inline bool peer_here(struct side *other, uint64_t here)
{
	return here && atomic_load_explicit(&other->cpu,
					    memory_order_relaxed) == here;
}

/* A consumer that caught up with a streaming producer on another CPU
 * reads each record as soon as it is written: every message then moves
 * the tail's line and the record's lines between the two caches twice
 * (the producer takes them back for the next record, and the consumer's
 * own hardware prefetcher takes lines past the tail that the producer is
 * about to write), which made 1 -> 1 on two CPUs bimodal (consumer
 * behind: batches, fast; caught up: a bounce per message, 2-3x slower).
 * So when a spinning consumer sees the first record appear, it lets the
 * producer get SLIP_BYTES (at most half the ring) ahead before reading,
 * as long as the tail keeps moving (FastForward's "temporal slipping"),
 * looking at the tail only every SLIP_PAUSES pauses: each look at a tail
 * that moved takes its line from the producer.  A producer that stopped
 * is seen at the next look, so a lone message waits at most SLIP_PAUSES
 * more pauses (~0.45 us here, a pause is ~27 ns); the first message of a
 * slow stream (tail moving at every look, never SLIP_BYTES ahead) at most
 * SLIP_ROUNDS * SLIP_PAUSES (~7 us).  Only a consumer that had to spin
 * slips: one that finds records, or sleeps, never waits for more.  Both
 * bounds are tested (fault_lone_message_to_spinner,
 * fault_slip_stream_bounded). */
#define SLIP_BYTES 4096u
#define SLIP_PAUSES 16
#define SLIP_ROUNDS 16

static inline void slip(struct queue_shared *s, uint64_t head, uint64_t tail)
{
	uint64_t ahead = s->ring_size / 2 < SLIP_BYTES ? s->ring_size / 2
						       : SLIP_BYTES;

	for (int k = 0; k < SLIP_ROUNDS && tail - head < ahead; k++) {
		for (int p = 0; p < SLIP_PAUSES; p++)
			__builtin_ia32_pause();
		uint64_t t = atomic_load_explicit(&s->prod.pos,
						  memory_order_relaxed);
		/* The test build can make the tail look as if it always
		 * moved: the round bound alone must end the slip. */
		if (t == tail && !MP__FAULT_FAILS("queue.slip.moving"))
			return;
		tail = t;
	}
}

/* ---- put / get ---- */

static inline bool closed(struct queue_shared *s)
{
	return atomic_load_explicit(&s->prod.word, memory_order_acquire) &
	       CLOSED;
}

int mp_queue_put(mp_queue *q, const void *msg, size_t len, double timeout_s)
{
	struct queue_shared *s = shared(q);

	if (MP__UNLIKELY(!valid(s) || (!msg && len)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (MP__UNLIKELY(len > s->ring_size - HDR))
		return -EMSGSIZE;
	uint64_t cost = HDR + align8(len);
	struct wait w = {timeout_s, MP__NEVER, false};
	uint64_t here = mp__cpu_here();
	int yields = 0;

	for (;;) {
		int r = lock_side(&s->prod, true, &w);
		if (r)
			return r;
		uint64_t tail = atomic_load_explicit(&s->prod.pos,
						     memory_order_relaxed);
		uint64_t head = atomic_load_explicit(&s->prod.cache,
						     memory_order_relaxed);
		if (tail - head + cost > s->ring_size) {
			head = atomic_load_explicit(&s->cons.pos,
						    memory_order_acquire);
			atomic_store_explicit(&s->prod.cache, head,
					      memory_order_relaxed);
		}
		if (MP__LIKELY(tail - head + cost <= s->ring_size)) {
			*hdr_at(s, tail) = len;
			if (len) /* msg may be NULL then */
				copy_in(s, tail + HDR, msg, len);
			if (s->flags & F_JOINABLE)
				atomic_fetch_add_explicit(&s->unfinished, 1,
							  memory_order_relaxed);
			atomic_store_explicit(&s->prod.pos, tail + cost,
					      memory_order_release);
			uint64_t n = atomic_load_explicit(
				&s->prod.count, memory_order_relaxed);
			atomic_store_explicit(&s->prod.count, n + 1,
					      memory_order_relaxed);
			note_cpu(&s->prod, here);
			unlock_side(&s->prod, &s->data_event);
			return 0;
		}
		unlock_side(&s->prod, &s->data_event);
		/* Full: spin a little while the consumers drain, unless
		 * the consumer waits for our CPU. */
		bool near = peer_here(&s->cons, here);
		int spins = timeout_s == 0 || near ? 0 : SPINS;
		for (int i = 0; i < spins; i++) {
			__builtin_ia32_pause();
			head = atomic_load_explicit(&s->cons.pos,
						    memory_order_relaxed);
			if (tail - head + cost <= s->ring_size)
				break;
		}
		if (tail - head + cost <= s->ring_size)
			continue;
		if (expired(&w))
			return -ETIMEDOUT;
		/* The consumer waits for our CPU: let it run before paying
		 * for a sleep and its wake-up. */
		if (near && yields < YIELDS) {
			yields++;
			sched_yield();
			here = mp__cpu_here();
			continue;
		}
		uint32_t ev = atomic_load_explicit(&s->space_event,
						   memory_order_acquire);
		atomic_fetch_or_explicit(&s->cons.word, PEER,
					 memory_order_acq_rel);
		tail = atomic_load_explicit(&s->prod.pos, memory_order_acquire);
		head = atomic_load_explicit(&s->cons.pos, memory_order_acquire);
		if (tail - head + cost <= s->ring_size)
			continue;
		if (closed(s))
			return MP_ECLOSED;
		r = wait_peer(&s->cons, &s->space_event, ev, &w);
		if (r < 0)
			return r;
	}
}

ssize_t mp_queue_get(mp_queue *q, void *buf, size_t cap, double timeout_s)
{
	struct queue_shared *s = shared(q);

	if (MP__UNLIKELY(!valid(s) || (!buf && cap)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct wait w = {timeout_s, MP__NEVER, false};
	uint64_t here = mp__cpu_here();
	int yields = 0;

	for (;;) {
		int r = lock_side(&s->cons, false, &w);
		if (r)
			return r;
		uint64_t head = atomic_load_explicit(&s->cons.pos,
						     memory_order_relaxed);
		uint64_t tail = atomic_load_explicit(&s->cons.cache,
						     memory_order_relaxed);
		if (head == tail) {
			tail = atomic_load_explicit(&s->prod.pos,
						    memory_order_acquire);
			atomic_store_explicit(&s->cons.cache, tail,
					      memory_order_relaxed);
		}
		if (MP__LIKELY(head != tail)) {
			uint64_t len = *hdr_at(s, head);
			if (MP__UNLIKELY(len > cap)) {
				unlock_side(&s->cons, &s->space_event);
				return -EMSGSIZE;
			}
			if (len)
				copy_out(s, head + HDR, buf, (size_t)len);
			atomic_store_explicit(&s->cons.pos,
					      head + HDR + align8(len),
					      memory_order_release);
			uint64_t n = atomic_load_explicit(
				&s->cons.count, memory_order_relaxed);
			atomic_store_explicit(&s->cons.count, n + 1,
					      memory_order_relaxed);
			note_cpu(&s->cons, here);
			unlock_side(&s->cons, &s->space_event);
			return (ssize_t)len;
		}
		unlock_side(&s->cons, &s->space_event);
		/* Empty: spin a little while the producers fill it, unless
		 * the producer waits for our CPU. */
		bool near = peer_here(&s->prod, here);
		int spins = timeout_s == 0 || near ? 0 : SPINS;
		if (spins)
			MP__FAULT("queue.get.spin");
		for (int i = 0; i < spins; i++) {
			__builtin_ia32_pause();
			tail = atomic_load_explicit(&s->prod.pos,
						    memory_order_relaxed);
			if (tail != head) {
				slip(s, head, tail);
				break;
			}
		}
		if (atomic_load_explicit(&s->prod.pos, memory_order_relaxed) !=
		    atomic_load_explicit(&s->cons.pos, memory_order_relaxed))
			continue;
		if (near && yields < YIELDS && timeout_s != 0) {
			yields++;
			sched_yield();
			here = mp__cpu_here();
			continue;
		}
		uint32_t ev = atomic_load_explicit(&s->data_event,
						   memory_order_acquire);
		uint64_t pw = atomic_fetch_or_explicit(
			&s->prod.word, PEER, memory_order_acq_rel);
		tail = atomic_load_explicit(&s->prod.pos, memory_order_acquire);
		head = atomic_load_explicit(&s->cons.pos, memory_order_acquire);
		if (tail != head)
			continue;
		/* Closed, and no put in progress (our RMW saw the last
		 * unlock): nothing more will come. */
		if ((pw & CLOSED) && !(pw & TID))
			return MP_ECLOSED;
		if (expired(&w))
			return -ETIMEDOUT;
		r = wait_peer(&s->prod, &s->data_event, ev, &w);
		if (r < 0)
			return r;
	}
}

/* The message's length is known only under the consumers' lock, so try a
 * buffer that fits most messages and, when the head is longer, one of the
 * queue's capacity (mapped lazily by malloc: only the pages the copy
 * touches are used), then give back the rest.  The message stays queued
 * between the tries: -EMSGSIZE takes nothing. */
ssize_t mp_queue_get_alloc(mp_queue *q, void **msg, double timeout_s)
{
	if (!msg || !valid(shared(q)) || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	*msg = NULL;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	size_t cap = mp_queue_capacity(q) < 4096 ? mp_queue_capacity(q) : 4096;
	for (;;) {
		void *buf = malloc(cap ? cap : 1);
		if (!buf)
			return -ENOMEM;
		int64_t left = mp__remaining_ns(deadline);
		ssize_t n = mp_queue_get(q, buf, cap, left == INT64_MAX ?
					 MP_FOREVER : (double)left / 1e9);
		if (n >= 0) {
			void *fit = realloc(buf, n ? (size_t)n : 1);
			*msg = fit ? fit : buf;
			return n;
		}
		free(buf);
		if (n != -EMSGSIZE)
			return n;
		cap = mp_queue_capacity(q);
	}
}

int mp_queue_close(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	uint64_t old = atomic_fetch_or_explicit(&s->prod.word, CLOSED,
						memory_order_acq_rel);
	if (old & CLOSED)
		return 0;
	atomic_fetch_add_explicit(&s->data_event, 1, memory_order_release);
	mp__futex_wake(&s->data_event, INT_MAX);
	atomic_fetch_add_explicit(&s->space_event, 1, memory_order_release);
	mp__futex_wake(&s->space_event, INT_MAX);
	/* Puts waiting for the producer lock must see CLOSED too. */
	mp__futex_wake(futex_of(&s->prod.word), INT_MAX);
	return 0;
}

bool mp_queue_is_closed(mp_queue *q)
{
	return valid(shared(q)) && closed(shared(q));
}

size_t mp_queue_capacity(mp_queue *q)
{
	return valid(shared(q)) ? (size_t)(shared(q)->ring_size - HDR) : 0;
}

ssize_t mp_queue_qsize(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	uint64_t got = atomic_load_explicit(&s->cons.count,
					    memory_order_relaxed);
	uint64_t put = atomic_load_explicit(&s->prod.count,
					    memory_order_relaxed);
	return put > got ? (ssize_t)(put - got) : 0;
}

bool mp_queue_empty(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return true;
	return atomic_load_explicit(&s->prod.pos, memory_order_acquire) ==
	       atomic_load_explicit(&s->cons.pos, memory_order_acquire);
}

bool mp_queue_full(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return false;
	uint64_t head = atomic_load_explicit(&s->cons.pos,
					     memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&s->prod.pos,
					     memory_order_acquire);
	return tail - head + HDR > s->ring_size;
}

/* ---- JoinableQueue ---- */

int mp_queue_task_done(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	uint32_t old = atomic_load_explicit(&s->unfinished,
					    memory_order_relaxed);
	uint32_t want;
	do {
		if (!(old & ~JOINWAIT))
			return -EINVAL;
		want = old - 1;
		if (!(want & ~JOINWAIT))
			want = 0;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->unfinished, &old, want, memory_order_acq_rel,
		memory_order_relaxed));
	if (want == 0 && (old & JOINWAIT))
		mp__futex_wake(&s->unfinished, INT_MAX);
	return 0;
}

int mp_queue_join(mp_queue *q, double timeout_s)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	for (;;) {
		uint32_t cur = atomic_load_explicit(&s->unfinished,
						    memory_order_acquire);
		if (!(cur & ~JOINWAIT))
			return 0;
		if (!(cur & JOINWAIT) &&
		    !atomic_compare_exchange_weak_explicit(
			    &s->unfinished, &cur, cur | JOINWAIT,
			    memory_order_acquire, memory_order_relaxed))
			continue;
		if (mp__futex_wait(&s->unfinished, cur | JOINWAIT, deadline) ==
		    -ETIMEDOUT)
			return -ETIMEDOUT;
	}
}

ssize_t mp_queue_unfinished(mp_queue *q)
{
	struct queue_shared *s = shared(q);

	if (!valid(s))
		return -EINVAL;
	if (!(s->flags & F_JOINABLE))
		return MP_ESTATE;
	return (ssize_t)(atomic_load_explicit(&s->unfinished,
					      memory_order_relaxed) &
			 ~JOINWAIT);
}

/* For tests only (declared in internal.h). */
int mp__queue_test_hold(mp_queue *q, int side)
{
	struct queue_shared *s = shared(q);
	struct wait w = {MP_FOREVER, MP__NEVER, false};

	if (!valid(s) || side < 0 || side > 1)
		return -EINVAL;
	int r = lock_side(side ? &s->cons : &s->prod, false, &w);
	if (r || side)
		return r;
	uint64_t tail = atomic_load_explicit(&s->prod.pos,
					     memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&s->cons.pos,
					     memory_order_acquire);
	if (tail - head + 2 * HDR <= s->ring_size) {
		*hdr_at(s, tail) = 5;
		memcpy(ring(s) + ((tail + HDR) & (s->ring_size - 1)), "torn",
		       4);
	}
	return 0;
}

/* For tests only (declared in internal.h). */
int mp__queue_test_unlock(mp_queue *q, int side)
{
	struct queue_shared *s = shared(q);

	if (!valid(s) || side < 0 || side > 1)
		return -EINVAL;
	if (side)
		unlock_side(&s->cons, &s->space_event);
	else
		unlock_side(&s->prod, &s->data_event);
	return 0;
}
