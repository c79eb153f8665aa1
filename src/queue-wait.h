/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_WAIT_H
#define MP_QUEUE_WAIT_H
/*
 * How put and get wait without sleeping: where the other side runs (to
 * spin only for a peer on another CPU, yield only for one on ours, stream
 * long messages to one on another CPU), and the consumer's slip.  See the
 * analysis at the top of queue.c.
 */
#include <sched.h>

#include "fault.h"
#include "queue-layout.h"
#include "queue-lock.h"

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

/* Did the other side's last holder run on another CPU than ours (both
 * known)? */
static inline bool peer_far(struct side *other, uint64_t here)
{
	uint64_t there = atomic_load_explicit(&other->cpu,
					      memory_order_relaxed);
	return here && there && there != here;
}

/* A consumer that caught up with a streaming producer on another CPU
 * reads each record as soon as it is written: every message then moves
 * the tail's line and the record's lines between the two caches twice
 * (the producer takes them back for the next record, and the consumer's
 * own hardware prefetcher takes lines past the tail that the producer is
 * about to write), which made 1 -> 1 on two CPUs bimodal (consumer
 * behind: batches, fast; caught up: a bounce per message, 2-3x slower).
 * So when a spinning consumer sees the first record appear, it lets the
 * producer get SLIP_BYTES (at most half the capacity) ahead before reading,
 * as long as the tail keeps moving (FastForward's "temporal slipping").
 * Each look at a tail that moved takes its line from the producer, so
 * after a first look SLIP_FIRST pauses in, which tells a lone message
 * from a stream, it looks only every SLIP_PAUSES pauses.  A producer that
 * stopped is seen at the next look: a lone message waits at most
 * SLIP_FIRST more pauses (~0.1 us here, a pause is ~27 ns; a 64-byte
 * round trip between two CPUs stays 0.6 us, where a first look 16 pauses
 * in made it 1.3 us), the first message of a slow stream (tail moving at
 * every look, never SLIP_BYTES ahead) at most SLIP_FIRST + (SLIP_ROUNDS -
 * 1) * SLIP_PAUSES (~13 us).  Only a consumer that had to spin slips: one
 * that finds records, or sleeps, never waits for more.  Both bounds are
 * tested (fault_lone_message_to_spinner, fault_slip_stream_bounded).
 * SLIP_BYTES was 8 KiB, two records of 4 KiB: in the host's slow spells
 * (one side per CPU, the ring empty at every sample, the producer's
 * stores the bottleneck) the consumer then read, and prefetched, right
 * where the producer was writing, and 4 KiB ran at 0.5-1 M msg/s; with
 * 64 KiB, 2 M.  Interleaved sets, 4 KiB: medians 2.85-3.0 -> 3.25-4.5 M
 * msg/s, tenth percentiles 0.8-1.8 -> 2.1-2.5; 64 B 43.8-45.4 ->
 * 48.0-50.4.  The bounds in time above are the rounds', unchanged. */
#define SLIP_BYTES 65536u
#define SLIP_PAUSES 32
#define SLIP_ROUNDS 16
#define SLIP_FIRST 4

static inline void slip(struct queue_shared *s, uint64_t head, uint64_t tail)
{
	uint64_t ahead = SLIP_BYTES;
	if (ahead > s->limit / 2)
		ahead = s->limit / 2;

	for (int k = 0; k < SLIP_ROUNDS && tail - head < ahead; k++) {
		for (int p = 0; p < (k ? SLIP_PAUSES : SLIP_FIRST); p++)
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

/* The producer's side: one that found the ring full and then wrote each
 * record as soon as the consumer freed one would write into the lines the
 * consumer has just read and reload the head's line the consumer has just
 * written, a bounce of both per message.  A full ring then stays full, the
 * consumer slowed by the bounces (64 B, 2 CPUs: full 80-87% of a run's
 * samples in the runs at 11-12 M msg/s, 0-15% in those at 25-30).  So it
 * waits for half the capacity to be free first, as long as the head keeps
 * moving: the consumer still has the other half to read, so it never
 * waits for us, and the writes that follow go to lines it read half a lap
 * ago.  A head that stops (the consumer sleeps or died) ends the wait at
 * the next look (ROOM_PAUSES); at most ROOM_LOOKS looks (~0.2 ms).
 * Returns the head last seen. */
#define ROOM_PAUSES 32
#define ROOM_LOOKS 256

static inline uint64_t room_slip(struct queue_shared *s, uint64_t tail,
				 uint64_t head, uint64_t cost)
{
	uint64_t want = s->limit / 2 > cost ? s->limit / 2 : cost;

	for (int k = 0; k < ROOM_LOOKS && s->limit - (tail - head) < want;
	     k++) {
		for (int p = 0; p < ROOM_PAUSES; p++)
			__builtin_ia32_pause();
		uint64_t h = atomic_load_explicit(&s->cons.pos,
						  memory_order_relaxed);
		if (h == head && !MP__FAULT_FAILS("queue.slip.moving"))
			break;
		head = h;
	}
	return head;
}

/* How long a side spins for the other before it sleeps, learnt from its
 * last sleeps.  A sleep and its wake-up cost 25 us to several hundred
 * here (a vCPU left idle is descheduled by the host, and waking it is
 * the host's business), so a fixed spin of SPINS pauses (~5 us) let
 * 1 -> 1 on two CPUs fall into a convoy: the consumer emptied the ring
 * while the producer it had woken was still on its way, and slept; the
 * producer filled the ring while the consumer it had woken was on its
 * way, and slept; and so on, a sleep on each side per lap of the ring for
 * the rest of the run (64 B: 18.8 M msg/s with 877 + 462 sleeps against
 * 50-60 with a handful; 4 KiB: 0.5-0.7 M msg/s with 4,000-8,700 against
 * 5-6).  So a side woken sooner than SPIN_SHORT_NS after it went to
 * sleep doubles its budget (to SPINS_MAX, ~170 us at this host's ~27 ns
 * a pause): the peer came within what a spin of that length would have
 * waited.  A sleep that lasted longer than SPIN_LONG_NS, or that timed
 * out (the caller's deadline, or a slice with nothing), waited for a peer
 * that had nothing to give, and halves it (to SPINS): a consumer of a
 * slow producer is back at ~5 us after five such waits.  Spinning for at
 * most what a sleep costs wastes at most that much CPU per wait (the
 * classic bound of spin-then-block); a peer that keeps coming just
 * inside the budget keeps its waiter spinning, as it should.  Shared by
 * the side's processes, written only on the way to or from a sleep; any
 * value read is clamped, so a torn or foreign one costs nothing but a
 * wait's precision.  (spin.h's rule, for the locks, learns from whether a
 * spin won instead: here the spins that matter are the ones too short to
 * win.)  (Tried instead: not sleeping while the side we woke had not run
 * yet, spinning for it up to 2 ms.  It left 2-3x more sleeps.) */
#define SPINS_MAX (SPINS * 32)
#define SPIN_SHORT_NS (200 * 1000)
#define SPIN_LONG_NS (1000 * 1000)

static inline int spin_budget(struct side *sd)
{
	uint32_t b = atomic_load_explicit(&sd->spins, memory_order_relaxed);

	return b < SPINS ? SPINS : b > SPINS_MAX ? SPINS_MAX : (int)b;
}

static inline void learn_wait(struct side *sd, int64_t slept_ns,
			      bool timed_out)
{
	int b = spin_budget(sd);

	if (!timed_out && slept_ns < SPIN_SHORT_NS && b < SPINS_MAX)
		b = b * 2 < SPINS_MAX ? b * 2 : SPINS_MAX;
	else if ((timed_out || slept_ns > SPIN_LONG_NS) && b > SPINS)
		b = b / 2 > SPINS ? b / 2 : SPINS;
	else
		return;
	atomic_store_explicit(&sd->spins, (uint32_t)b, memory_order_relaxed);
}

/* One step of a spin of `spins`: a pause, and between every SPINS of them
 * a look at the caller's deadline (false: it passed, stop spinning) and a
 * sched_yield.  The other side's CPU as published may be stale (the
 * scheduler moved it to our CPU, where it waits to run): a long spin would
 * then burn the slice it needs, and a yield lets it run, where with
 * nothing else to run here it costs a system call per ~5 us of spinning.
 * A timeout thus starts counting at most SPINS pauses late, and ends at
 * most one yield late. */
static inline bool spin_step(int i, int spins, struct wait *w)
{
	__builtin_ia32_pause();
	if (i % SPINS != SPINS - 1 || i + 1 >= spins)
		return true;
	if (expired(w))
		return false;
	sched_yield();
	return true;
}

#endif
