/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_LAYOUT_H
#define MP_QUEUE_LAYOUT_H
/*
 * The queue's shared memory: its layout, the record format and the copies
 * in and out of the ring (queue.c says how put and get use them,
 * queue-lock.h how the side words lock).
 *
 * Layout (struct queue_shared, then the ring):
 *   line 0  constants: magic, ring size R (a power of two), ring offset,
 *           limit; the lap word, which changes rarely
 *   line 1  producer side (struct side): its lock word, its CPU, the
 *           head as last read, the puts, its spin; the stores' chooser
 *   line 2  tail (alone: consumers poll it)
 *   line 3  consumer side: the same, the tail as last read, the gets
 *   line 4  head (alone: producers poll it)
 *   line 5  data_event, space_event, unfinished (joinable)
 *   ring    R bytes (the span); head and tail are byte counts that only
 *           grow, the index is pos & (R - 1) or pos & (limit - 1) (the
 *           record's lap, see below), and tail - head is at most the limit
 *           (the capacity and a header, R or less).  A record is an 8-byte header (the
 *           length) and the message, padded to 8, wrapping around the end
 *           of the ring if need be (a header never straddles it).
 *
 * Producers serialize on pword, consumers on cword: the queue is an SPSC
 * ring between "the producer holding pword" and "the consumer holding
 * cword", so in the 1:1 case neither lock is ever contended and each stays
 * in its own core's cache; head_cache/tail_cache spare most reads of the
 * other side's line.  Per operation: one CAS to lock, the copy, a release
 * store of tail (or head), one CAS to unlock.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "nt-copy.h"

#define QUEUE_MAGIC 0x51554555u /* "QUEU" */
#define QUEUE_LAYOUT 6
#define F_JOINABLE 1u

#define TID ((uint64_t)MP__ID_TID) /* nonzero in every held word */
#define CLOSED 0x20000000u
#define LOCKWAIT 0x40000000u
#define PEER 0x80000000u

#define JOINWAIT 0x80000000u
#define HDR 8u
#define MIN_RING 64u
#define MAX_RING ((uint64_t)1 << 30)
/* A ring's span (R): the memory its records cycle through, which may
 * exceed its capacity (limit, the bytes of records it may hold, a power of
 * two too).  Two laps, chosen by the producer:
 *  - wide, the records cycle through all R bytes.  One producer and one
 *    consumer on two CPUs move 64 B messages 1.5-5x faster when the line a
 *    put writes has left the consumer's caches since it read it a lap ago:
 *    otherwise each put first waits for the line to be taken back from the
 *    other CPU (64 B, 256 KiB of capacity, interleaved runs, two CPUs: a
 *    512 KiB span 5-20 M msg/s with the host's state, 8 MiB 24-30);
 *  - compact, the records cycle through the first `limit` bytes: the two
 *    sides on one CPU take turns at filling and draining the ring, and the
 *    lines they share are best left hot in that CPU's cache (4 KiB on one
 *    CPU: 2.1-2.6 M msg/s compact, 1.2-1.3 wide).
 * The lap word (line 0) says from which position on the producer's lap
 * holds (LAP_WIDE) and which lap the records before it were written in
 * (LAP_WAS_WIDE); a producer changes it (relap in queue.c) only when the
 * records of the lap before last are all gone, and before it publishes a
 * record of the new lap, so a consumer that sees a record sees its lap.  A lap is at least
 * SPAN_MAX where that costs at most SPAN_RATIO times the capacity.  The
 * pages are touched only as the ring goes round: a queue that moved less
 * than its span holds less. */
#define SPAN_MAX ((uint64_t)8 << 20)
#define SPAN_RATIO 16
#define LAP_WIDE 1u
#define LAP_WAS_WIDE 2u
#define LAP_FLAGS 7u
#define SPINS 200
#define LOCK_SPINS 100
#define YIELDS 2
#define SLICE_NS (40 * 1000000)

struct side {
	_Atomic uint64_t word;
	_Atomic uint64_t cpu; /* 1 + the CPU of the last holder; 0 unknown */
	_Atomic uint64_t cache; /* the other side's pos, as last read */
	_Atomic uint64_t count; /* messages put / got */
	_Atomic uint32_t spins; /* this side's spin before a sleep (SPINS+) */
	/* Producers only: the wide laps' stores (queue-stores.h). */
	_Atomic uint32_t stores; /* STREAM, the phase, windows counted */
	_Atomic uint64_t stores_ns; /* when the window began; 0 none */
	_Atomic uint32_t stores_rate[2]; /* MB/s: ordinary, streamed */
	char pad2[MP__CACHELINE - 56];
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
	uint64_t limit; /* bytes of records at most in the ring */
	_Atomic uint64_t lap; /* position | LAP_WIDE | LAP_WAS_WIDE */
	char pad0[MP__CACHELINE - 48];
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

static inline bool valid(struct queue_shared *s)
{
	return s && s->magic == QUEUE_MAGIC;
}

/* A long message for a consumer on another CPU, in a compact lap, is
 * written with non-temporal stores: its lines go to memory and leave
 * every cache, so the producer does not first fetch each line back from
 * the consumer's cache to write it (a compact ring fits in the consumer's
 * L2, where the last lap left every line), and the consumer's reads
 * stream from memory: 4 KiB, one side per CPU, 0.84 -> 1.3 M msg/s.
 *  - Not when both run on one CPU: there the lines are best left in the
 *    cache they share (2.6 -> 1.1 M msg/s with streaming).
 *  - In a wide lap, its lines have left the consumer's L2 by the time
 *    they come round, and which way is faster depends on the host: the
 *    producers measure it (queue-stores.h). */
#define NT_MIN 1024u

static inline void copy_piece(uint8_t *dst, const void *src, size_t len,
			      bool stream)
{
	if (stream)
		mp__nt_copy(dst, src, len);
	else
		memcpy(dst, src, len);
}

/* The index mask of the record at pos (see the lap word).  Read after the
 * tail that published the record: no producer changes the lap of a record
 * in flight. */
static inline uint64_t mask_at(struct queue_shared *s, uint64_t pos)
{
	uint64_t w = atomic_load_explicit(&s->lap, memory_order_relaxed);
	bool wide = (int64_t)(pos - (w & ~(uint64_t)LAP_FLAGS)) >= 0
			    ? w & LAP_WIDE
			    : w & LAP_WAS_WIDE;
	return (wide ? s->ring_size : s->limit) - 1;
}

/* stream: see NT_MIN; the caller's release store of the tail then
 * needs the sfence here (streaming stores are not ordered by it). */
static inline void copy_in(struct queue_shared *s, uint64_t mask,
			   uint64_t pos, const void *src, size_t len,
			   bool stream)
{
	uint64_t i = pos & mask;
	uint64_t first = mask + 1 - i;
	uint8_t *r = ring(s);

	size_t part = len <= first ? len : first;

	copy_piece(r + i, src, part, stream);
	if (part < len) /* wraps around the end of the lap */
		copy_piece(r, (const uint8_t *)src + part, len - part, stream);
	if (stream)
		mp__nt_fence();
}

static inline void copy_out(struct queue_shared *s, uint64_t mask,
			    uint64_t pos, void *dst, size_t len)
{
	uint64_t i = pos & mask;
	uint64_t first = mask + 1 - i;
	uint8_t *r = ring(s);

	if (len <= first) {
		memcpy(dst, r + i, len);
	} else {
		memcpy(dst, r + i, first);
		memcpy((uint8_t *)dst + first, r, len - first);
	}
}

static inline uint64_t *hdr_at(struct queue_shared *s, uint64_t mask,
			       uint64_t pos)
{
	return (uint64_t *)(ring(s) + (pos & mask));
}

#endif
