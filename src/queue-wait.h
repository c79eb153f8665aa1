/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_WAIT_H
#define MP_QUEUE_WAIT_H
/*
 * How put and get wait without sleeping: where the other side runs (to
 * spin only for a peer on another CPU, yield only for one on ours, stream
 * long messages to one on another CPU), and the consumer's slip.  See the
 * analysis at the top of queue.c.
 */
#include "fault.h"
#include "queue-layout.h"

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
 * tested (fault_lone_message_to_spinner, fault_slip_stream_bounded). */
#define SLIP_BYTES 8192u
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

#endif
