/* SPDX-License-Identifier: MIT */
#ifndef MP_QUEUE_LAYOUT_H
#define MP_QUEUE_LAYOUT_H
/*
 * The queue's shared memory: its layout, the record format and the copies
 * in and out of the ring (queue.c says how put and get use them,
 * queue-lock.h how the side words lock).
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
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "nt-copy.h"

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

static inline bool valid(struct queue_shared *s)
{
	return s && s->magic == QUEUE_MAGIC;
}

/* A long message for a consumer on another CPU is written with
 * non-temporal stores: its lines go to memory and leave every cache, so
 * the producer does not first fetch each line back from the consumer's
 * cache (where the last ring round left it) to write it, and the
 * consumer's reads stream from memory.  4 KiB, one side per CPU: 0.84 ->
 * 1.3 M msg/s.  Not when both run on one CPU: there the lines are best
 * left in the cache they share (2.6 -> 1.1 M msg/s with streaming). */
#define NT_MIN 1024u

static inline void copy_piece(uint8_t *dst, const void *src, size_t len,
			      bool stream)
{
	if (stream)
		mp__nt_copy(dst, src, len);
	else
		memcpy(dst, src, len);
}

/* stream: see NT_MIN; the caller's release store of the tail then
 * needs the sfence here (streaming stores are not ordered by it). */
static inline void copy_in(struct queue_shared *s, uint64_t pos,
			   const void *src, size_t len, bool stream)
{
	uint64_t mask = s->ring_size - 1;
	uint64_t i = pos & mask;
	uint64_t first = s->ring_size - i;
	uint8_t *r = ring(s);

	size_t part = len <= first ? len : first;

	copy_piece(r + i, src, part, stream);
	if (part < len) /* wraps around the end of the ring */
		copy_piece(r, (const uint8_t *)src + part, len - part, stream);
	if (stream)
		mp__nt_fence();
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

#endif
