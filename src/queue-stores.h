/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_STORES_H
#define MP_QUEUE_STORES_H
/*
 * How a put writes a long record (NT_MIN bytes or more) for a consumer on
 * another CPU: with ordinary stores or streamed past the caches
 * (nt-copy.h).  In a compact lap it always streams (see NT_MIN).  In a
 * wide lap the faster way depends on where the host runs our two CPUs,
 * which changes from one second to the next, so the producers measure it.
 *
 * WHY.  4 KiB records, one side per CPU, interleaved runs of a ring with
 * our copies (2026-12-07): ordinary stores moved 9-10.7 M msg/s in some
 * runs, 2.5-3 in others and 0.65-1.6 in the worst, the modes minutes or
 * seconds apart; streamed whole lines held 2.6-3.6 in all of them.  In the
 * fast mode the lines an ordinary store takes come from a cache the two
 * CPUs share, and the consumer reads them from the producer's; in the slow
 * ones each line crosses between the caches twice, where a streamed one
 * goes to memory once and is read from there.  Neither way is right
 * always: choosing by the rate of the last windows each way gave median
 * 3.56 M msg/s (2.35-9.24) against ordinary stores' 2.83 (0.65-10.71), 40
 * interleaved runs each, and followed the host into either mode.
 *
 * The rule.  A window is one lap of the span (its bytes of records): the
 * producer that ends one times it (window_end: a clock read every 0.3-3
 * ms at 4 KiB) and keeps a rate for each way.  It writes the faster way
 * and, every STORES_TRIAL windows, tries the other for two windows, of
 * which only the second counts: a window's stores find the lines where
 * the lap before left them (streamed ones in memory, ordinary ones in the
 * caches), so the first window after a change measures the change and not
 * the way.  For the same reason the window after a trial that lost is not
 * counted either.  The steady way's rate is a running mean (each window
 * weighs half); a trial's is its one window, measured now.  A trial costs
 * 2 windows of STORES_TRIAL + 3 the other way, about 6% where that way is
 * much slower.  Only windows with a long record for a consumer elsewhere
 * count (STORES_SEEN; a queue of short messages reads no clock), in a
 * wide lap, and no longer than STORES_IDLE_NS (a producer that paused):
 * the others change nothing.
 *
 * Only the producer holding the producers' lock reads or writes these
 * fields.  A stale or foreign value (a producer that died mid-window)
 * costs at most wrong choices until the next trial has ended: the steady
 * rate halves towards the truth at each of the STORES_TRIAL windows
 * before it (from UINT32_MAX in 32), the trial's is replaced, and every
 * other value is masked to a phase.
 */
#include <stdint.h>

#include "clock.h"
#include "queue-layout.h"
#include "queue-wait.h"

#define STORES_STREAM 1u /* the way of the steady windows: streamed */
#define STORES_PHASE 6u /* the bits of the phase (0: steady), below */
#define STORES_TRY_FIRST 2u /* the other way, not counted */
#define STORES_TRY 4u /* the other way, counted, then decided */
#define STORES_BACK 6u /* back from a trial that lost, not counted */
#define STORES_SEEN 8u /* the window had a long record for elsewhere */
#define STORES_COUNT 16u /* the counted windows, above the flags */
#define STORES_TRIAL 32
#define STORES_IDLE_NS (100 * 1000000)

/* Whether the windows now stream (the steady way, or the other in a
 * trial). */
static inline bool stores_stream(uint32_t st)
{
	bool trying = (st & STORES_PHASE) == STORES_TRY_FIRST ||
		      (st & STORES_PHASE) == STORES_TRY;
	return ((st & STORES_STREAM) != 0) != trying;
}

/* The state after a counted window that moved r MB/s: rate[] is
 * updated in place.  Pure, for the tests. */
static inline uint32_t stores_next(uint32_t st, uint32_t rate[2],
				   uint32_t r)
{
	uint32_t phase = st & STORES_PHASE;
	uint32_t way = stores_stream(st);

	if (phase == STORES_TRY_FIRST)
		return (st & ~STORES_PHASE) | STORES_TRY;
	if (phase == STORES_BACK)
		return st & ~STORES_PHASE;
	if (phase == STORES_TRY) {
		rate[way] = r;
		st &= ~STORES_PHASE;
		/* The trial won: its way is steady from here, and the next
		 * window finds its lines where it wants them. */
		if (rate[way] > rate[!way])
			return (st & ~STORES_STREAM) | way;
		return st | STORES_BACK;
	}
	rate[way] = rate[way] ? (uint32_t)(((uint64_t)rate[way] + r) / 2) : r;
	st += STORES_COUNT;
	if ((st / STORES_COUNT) % STORES_TRIAL == 0)
		st |= STORES_TRY_FIRST;
	return st;
}

/* At the put whose record crosses a multiple of the span: end the window
 * that began at the last one.  Once a lap, so out of line. */
__attribute__((noinline, cold, unused)) static void
window_end(struct queue_shared *s)
{
	struct side *p = &s->prod;
	uint32_t st = atomic_load_explicit(&p->stores, memory_order_relaxed);

	if (!(st & STORES_SEEN)) { /* the next window with one only starts */
		atomic_store_explicit(&p->stores_ns, 0, memory_order_relaxed);
		return;
	}
	st &= ~STORES_SEEN;
	atomic_store_explicit(&p->stores, st, memory_order_relaxed);
	uint64_t now = (uint64_t)mp__now_ns();
	uint64_t began = atomic_exchange_explicit(&p->stores_ns, now,
						  memory_order_relaxed);
	uint64_t lap = atomic_load_explicit(&s->lap, memory_order_relaxed);

	if (!began || now <= began || now - began > STORES_IDLE_NS ||
	    !(lap & LAP_WIDE))
		return;
	uint64_t mbs = s->ring_size * 1000 / (now - began);
	uint32_t rate[2] = {
		atomic_load_explicit(&p->stores_rate[0], memory_order_relaxed),
		atomic_load_explicit(&p->stores_rate[1], memory_order_relaxed),
	};

	st = stores_next(st, rate, mbs > UINT32_MAX ? UINT32_MAX
						    : (uint32_t)mbs);
	atomic_store_explicit(&p->stores_rate[0], rate[0],
			      memory_order_relaxed);
	atomic_store_explicit(&p->stores_rate[1], rate[1],
			      memory_order_relaxed);
	atomic_store_explicit(&p->stores, st, memory_order_relaxed);
}

/* Whether a put of len bytes at a lap of mask + 1 bytes streams; one of a
 * long record for elsewhere in a wide lap marks its window as seen. */
static inline bool stream_for(struct queue_shared *s, uint64_t mask,
			      size_t len, uint64_t here)
{
	if (len < NT_MIN || !peer_far(&s->cons, here))
		return false;
	if (mask + 1 == s->limit)
		return true;
	uint32_t st = atomic_load_explicit(&s->prod.stores,
					   memory_order_relaxed);
	if (!(st & STORES_SEEN))
		atomic_store_explicit(&s->prod.stores, st | STORES_SEEN,
				      memory_order_relaxed);
	return stores_stream(st);
}

/* After a put of the record [tail, tail + cost): a window ends where a
 * record crosses a multiple of the span (a power of two). */
static inline void count_window(struct queue_shared *s, uint64_t tail,
				uint64_t cost)
{
	if (s->ring_size > s->limit && ((tail + cost) ^ tail) >= s->ring_size)
		window_end(s);
}

#endif
