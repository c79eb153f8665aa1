/* SPDX-License-Identifier: MIT */
/*
 * Queue: a byte ring in shared memory (queue-layout.h), two robust side
 * locks (queue-lock.h, queue-lock.c), futex events; put and get here,
 * their waiting without sleeping in queue-wait.h, JoinableQueue in
 * queue-join.c.
 *
 * Waiting (issue 17: fast in the worst run).  1 -> 1 left to the scheduler
 * is bimodal, and counting instead of timing (perf stat's context-switch
 * and syscall tracepoints per message, bench-queue's "one CPU" and "two
 * CPUs" scenarios, MP_BENCH_VERBOSE's switches per run) shows why:
 *  - Both on one CPU, the ring fills and drains in turns, one
 *    sched_yield per turn (0.05 a message at 4 KiB, 0.001 at 64 B) and
 *    no futex call at all.  Each side publishes the CPU it ran on
 *    (side.cpu, in its own line, rseq-cheap), and a waiter whose peer
 *    last ran on its own CPU skips the spin and yields at once; one whose
 *    peer is on another CPU spins, yielding only between long stretches
 *    of it (spin_step in queue-wait.h).
 *    This mode is fast (64 B: 17 M msg/s, 4 KiB: 2.5 M msg/s).
 *  - One per CPU, futex calls are rare (0.0003 a message) and context
 *    switches too (10-300 a run of 1 M messages): no wake-up per message,
 *    so wake-ups are not batched.  The slow runs are this mode, and they
 *    are cache traffic: the machine has no PMU to count it (perf's
 *    hardware events are "not supported" in this VM), so we counted the
 *    consumer's looks at the tail that found it moved (each takes the
 *    tail's line from the producer, and the reads that follow take the
 *    lines it is writing).  With the slip of before (1 KiB, a look every
 *    4 pauses, 8 looks) that was 0.6-0.92 a message: the consumer stayed
 *    caught up and each message crossed the caches one by one, 8.3 M
 *    msg/s at 64 B, two CPUs, when quiet.
 *
 * What changed (2026-12-02):
 *  - slip() (queue-wait.h) waits for the producer to get 8 KiB ahead (64
 *    KiB since 2026-12-03, below),
 *    looking at the tail 4 pauses in, then every 32 pauses, at most 16
 *    times: 0.05-0.06 moved tails a message (15x fewer), 64 B two CPUs
 *    8.0-8.4 -> 17.6-19.0 M msg/s in interleaved quiet runs (the spinning
 *    SPSC ring there: 10.7-13.6; 4 KiB ahead and a look every 16 pauses:
 *    0.10 and 16.7-17.2).  A lone message waits at most 4 more pauses
 *    (~0.1 us: a 64 B round trip between two CPUs stays 0.6 us), the first
 *    of a slow stream at most 484 (~13 us); both bounds are tested
 *    (fault_lone_message_to_spinner, fault_slip_stream_bounded).
 *    Slipping also with the consumer lock held, when a reload of the tail
 *    finds a few records, bought little and would stall other consumers:
 *    not done.
 *  - A message of 1 KiB or more for a consumer that last ran on another
 *    CPU is written with non-temporal stores (queue-layout.h): 4 KiB two
 *    CPUs 0.84 -> 1.3 M msg/s; on one CPU they are not used (2.6 -> 1.1
 *    with them).
 *  - Tried and dropped: prefetchw of the lines 512 B past the tail (the
 *    producer's copy then does not wait for the consumer's copies to be
 *    invalidated): 8.3 -> 7.5 M msg/s at 64 B two CPUs; prefetching the
 *    published lines past the head on the consumer: no change.
 * Both 1 -> 1 modes are now about as fast at 64 B (quiet: 15-19 M msg/s
 * on two CPUs, 16-17 on one), and 2x2 and 4x4 went 10 -> 16 M msg/s with
 * the slip.  The 64 B round trip (bench-queue "round trip") is unchanged:
 * ~1.0 M/s before and after, unpinned.  The two-CPU mode has a slow
 * state of its own that is the host's, not ours (the spinning SPSC ring
 * itself: 3.8 M msg/s there against 10.7-13.6): in it, same run, 64 B
 * 2.9 -> 4.4 M msg/s (4.8 with the 8 KiB slip), 4 KiB 0.85 -> 1.45.
 * What is left is not the protocol's: against a pipe the ratio swings
 * with the pipe's own mode (0.6-2.8 M msg/s at 64 B, quiet or not, on
 * one CPU or two) more than with ours, and 4 KiB is the copies' cost
 * (two 4 KiB copies and 64 lines crossing per message).
 *
 * The host's states (2026-12-02, later): the same binary, pinned one side
 * per CPU, moved 4 KiB messages at 2.0-2.4 M msg/s in one set of runs and
 * at 0.82-0.84 in the next, minutes apart, every run of a set alike; the
 * pipe stayed at 0.39-0.41 in both, so the ratio went 5x -> 2.1x with
 * nothing of ours changed.  Unpinned followed the same state (0.83-0.91
 * and 1.8-2.2), with 1.97 CPUs busy and 4-5 migrations in 7 runs: not a
 * placement.  A/B of the non-temporal stores, interleaved in each state:
 * 2.14 vs 2.04 M msg/s (fast), 0.83 vs 0.82 (slow), so they stay.  In
 * one process, with no second CPU, a put and a get of 64 B cost 57 ns
 * together (375 instructions, four of them locked: the side locks' CAS
 * on take and give), which is the bound of both 1 -> 1 modes at 64 B
 * (17-18 M msg/s); 12x a pipe in its fast state (2.7 M msg/s) would need
 * 32 M.  Getting there needs puts and gets with one locked instruction
 * or none, i.e. a different protocol for the side locks and the sleeper
 * flags (e.g. asymmetric fences with membarrier(2)): not done.
 *
 * That bound is one CPU's; on two the sides run at once, and what held
 * them back was the lines (2026-12-03).  Sampling the fill of a 64 B run
 * every 0.5 ms showed two kinds of slow run on two CPUs:
 *  - the ring full in 80-87% of the samples (11-12 M msg/s; 0-15% in the
 *    runs at 25-30).  A producer that found it full wrote each record as
 *    soon as the consumer freed one, into the line the consumer had just
 *    read, and reloaded the head's line at every put, so both lines
 *    crossed per message and the consumer stayed slow enough for the ring
 *    to stay full.  room_slip() (queue-wait.h) waits for half the
 *    capacity to be free first: full 0-7%, 19-20 M msg/s in every run of a
 *    512 KiB ring;
 *  - the host's slow state (see above), 4.6-6 M msg/s: a 512 KiB ring fits
 *    in the consumer's L2, so each line a put writes is still there from
 *    the last lap and must be taken back first.  Rings of 8 MiB ran at
 *    20-30 M in the same minutes.  So the records cycle through a wider
 *    span than the capacity (SPAN_MAX in queue-layout.h), with the same
 *    capacity: 24-30 M msg/s in both states.  A wide lap costs the one-CPU
 *    mode of 4 KiB messages half its speed (the lines come from memory
 *    instead of the cache the two share), so the producer picks the lap at
 *    each reload of the head by where the consumer last ran (relap()).
 * bench-queue, interleaved A/B runs of the old and new code in one
 * minute: 1 -> 1 64 B unpinned 5.3-13.6 -> 23.5-24.0 M msg/s, two CPUs
 * 4.9-5.2 -> 20.7-25.6, 2x2 5.3-6.6 -> 20.8-23.3, 4x4 5.1-6.2 -> 19.0-20.1;
 * one CPU (64 B and 4 KiB) and 4 KiB on two CPUs unchanged.
 *
 * With the wide lap, streaming 4 KiB records past the caches became the
 * slow way (2026-12-03, with the streamed copy of then, see below): the
 * lines of a wide lap come round from the shared L3, not from the
 * consumer's L2, so ordinary stores are cheap and leave the lines in the
 * producer's cache for the consumer to take, where streamed ones send
 * both sides to memory.  Interleaved runs, 4 KiB, one
 * side per CPU: streamed 1.2-2.0 M msg/s, ordinary 1.0-6.7 (median 5);
 * compact laps still stream (NT_MIN in queue-layout.h).
 *
 * The slow runs that remained on two CPUs were of two kinds (2026-12-03,
 * later; a harness sampling each side's rate and CPU every 1/40 of a
 * run).  Some held one rate for the whole run with few sleeps, or changed
 * it in mid-run with no change of CPU or lap (4 KiB: 0.5-1.2, 2 or 6-8
 * M msg/s in phases of tens of ms): the host's.  The others slept, each
 * side once per lap of the ring: a convoy (learn_wait in queue-wait.h),
 * which the spin that learns from the last sleeps ends.  Interleaved
 * A/B, 25-30 runs each, the sleeps of a run (both sides): 4 KiB median
 * 57-66 -> 11-14, worst 394-1,256 -> 28-219; 64 B 19 -> 9, worst 343 ->
 * 26.  The rates of those sets moved with the host more than with the
 * change (medians alike, 64 B worst 16.9 -> 26.5 M msg/s).  The host's
 * slow spells at 4 KiB had the ring empty at every sample: the producer's
 * stores were slow, and the consumer, slipping only 8 KiB (two records),
 * read and prefetched the lines being written.  A 64 KiB slip took them
 * from 0.5-1 to about 2 M msg/s (SLIP_BYTES in queue-wait.h).
 *
 * The host's modes at 4 KiB, and the stores that follow them (2026-12-07).
 * A ring with our copies alone, interleaved runs, one side per CPU:
 * ordinary stores moved 9-10.7 M msg/s in some runs, 2.5-3 in others and
 * 0.65-1.6 in the worst, the mode changing from second to second; the
 * streamed copy of 2026-12-03 wrote 64-byte pieces from 16-aligned
 * addresses, which straddle lines (1.9-2.2), and streaming whole lines
 * held 2.6-3.6 in every mode (nt-copy.h).  So in a wide lap the producers
 * time each lap and write long records the way whose last laps were
 * faster, trying the other every 32 laps (queue-stores.h).  bench-queue,
 * 30 interleaved runs each: 4 KiB 1 -> 1 unpinned 3.28 (2.08-5.99) ->
 * 5.87 (3.79-6.36) M msg/s; pinned one per CPU 0.49 (0.47-3.95) -> 1.19
 * (1.14-6.57); one CPU and 64 B unchanged.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "queue-lock.h"
#include "queue-stores.h"
#include "queue-wait.h"
#include "spin.h"

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

/* The memory a ring of r bytes of capacity cycles through (see SPAN_MAX in
 * queue-layout.h): up to SPAN_RATIO times r, at most SPAN_MAX, and only
 * while the arena stays at most half full, so that queues never take the
 * room other objects need (a queue then keeps to r). */
static uint64_t span_for(uint64_t r)
{
	uint64_t span = r;

	while (span < SPAN_MAX && span < r * SPAN_RATIO)
		span <<= 1;
	if (span > r && mp_shared_used() + span > mp_shared_capacity() / 2)
		return r;
	return span;
}

static void setup(struct queue_shared *s, uint64_t ring_size, uint64_t limit,
		  int64_t off, bool joinable)
{
	memset(s, 0, sizeof(*s));
	s->layout = QUEUE_LAYOUT;
	s->flags = joinable ? F_JOINABLE : 0;
	s->ring_size = ring_size;
	s->limit = limit;
	s->lap = LAP_WIDE | LAP_WAS_WIDE;
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
	/* Not zeroed: a record is written before its tail is published. */
	uint64_t span = span_for(r);
	uint8_t *buf = span > r ? mp__shared_alloc_raw((size_t)span) : NULL;
	if (!buf)
		buf = mp__shared_alloc_raw((size_t)(span = r));
	if (!buf) {
		mp_shared_free(s);
		errno = ENOMEM;
		return NULL;
	}
	setup(s, span, r, (int64_t)((intptr_t)buf - (intptr_t)s), joinable);
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
	setup(mem, r, r, sizeof(struct queue_shared), joinable);
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

/* Under the producers' lock, when a put reloads the head (about once per
 * lap, or per turn when both sides share a CPU): choose the lap for the
 * records from `tail` on (see the lap word in queue-layout.h), wide for a
 * consumer that last ran on another CPU, compact for one that ran on ours.
 * Only once every record of the lap before last is gone, so that a
 * consumer tells each record's lap by its position alone.  Records of two
 * laps never meet: the bytes in flight lie within `limit` positions of
 * each other, and both laps put a position at an index congruent to it
 * modulo `limit` (both are multiples of it), so two bytes at the same
 * index would be a multiple of `limit` apart. */
static void relap(struct queue_shared *s, uint64_t tail, uint64_t head,
		  uint64_t here)
{
	uint64_t w = atomic_load_explicit(&s->lap, memory_order_relaxed);
	uint64_t there = atomic_load_explicit(&s->cons.cpu,
					      memory_order_relaxed);
	bool wide = w & LAP_WIDE;

	if (!here || !there || (there != here) == wide ||
	    (int64_t)(head - (w & ~(uint64_t)LAP_FLAGS)) < 0)
		return;
	atomic_store_explicit(&s->lap,
			      tail | (wide ? LAP_WAS_WIDE : LAP_WIDE),
			      memory_order_relaxed);
}

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
	if (MP__UNLIKELY(len > s->limit - HDR))
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
		if (tail - head + cost > s->limit) {
			head = atomic_load_explicit(&s->cons.pos,
						    memory_order_acquire);
			atomic_store_explicit(&s->prod.cache, head,
					      memory_order_relaxed);
			if (s->ring_size > s->limit)
				relap(s, tail, head, here);
		}
		if (MP__LIKELY(tail - head + cost <= s->limit)) {
			uint64_t mask = mask_at(s, tail);
			*hdr_at(s, mask, tail) = len;
			if (len) /* msg may be NULL then */
				copy_in(s, mask, tail + HDR, msg, len,
					stream_for(s, mask, len, here));
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
			count_window(s, tail, cost);
			unlock_side(&s->prod, &s->data_event);
			return 0;
		}
		unlock_side(&s->prod, &s->data_event);
		/* Full: spin while the consumers drain (for the producers'
		 * learnt budget), unless the consumer waits for our CPU. */
		bool near = peer_here(&s->cons, here);
		int spins = timeout_s == 0 || near ? 0 : spin_budget(&s->prod);
		for (int i = 0; i < spins; i++) {
			if (!spin_step(i, spins, &w))
				break;
			head = atomic_load_explicit(&s->cons.pos,
						    memory_order_relaxed);
			if (tail - head + cost <= s->limit) {
				head = room_slip(s, tail, head, cost);
				break;
			}
		}
		if (tail - head + cost <= s->limit)
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
		if (tail - head + cost <= s->limit)
			continue;
		if (closed(s))
			return MP_ECLOSED;
		r = mp__queue_wait_peer(&s->prod, &s->cons, &s->space_event,
					ev, &w);
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
			uint64_t mask = mask_at(s, head);
			uint64_t len = *hdr_at(s, mask, head);
			if (MP__UNLIKELY(len > cap)) {
				unlock_side(&s->cons, &s->space_event);
				return -EMSGSIZE;
			}
			if (len)
				copy_out(s, mask, head + HDR, buf, (size_t)len);
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
		/* Empty: spin while the producers fill it (for the
		 * consumers' learnt budget), unless the producer waits for
		 * our CPU. */
		bool near = peer_here(&s->prod, here);
		int spins = timeout_s == 0 || near ? 0 : spin_budget(&s->cons);
		if (spins)
			MP__FAULT("queue.get.spin");
		for (int i = 0; i < spins; i++) {
			if (!spin_step(i, spins, &w))
				break;
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
		r = mp__queue_wait_peer(&s->cons, &s->prod, &s->data_event,
					ev, &w);
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
	return valid(shared(q)) ? (size_t)(shared(q)->limit - HDR) : 0;
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
	return tail - head + HDR > s->limit;
}
