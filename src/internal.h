/* SPDX-License-Identifier: MIT */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

/* Declarations shared inside the library (mp__ prefix); never installed. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "multiproc.h"

#define MP__HIDDEN __attribute__((visibility("hidden")))
#define MP__LIKELY(x) __builtin_expect(!!(x), 1)
#define MP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MP__CACHELINE 64

/* Only impossible states come here: it prints file:line and aborts. */
_Noreturn void mp__fatal(const char *file, int line, const char *what);
#define MP__FATAL(what) mp__fatal(__FILE__, __LINE__, (what))

/* Identity of the calling thread, cached (gettid is a system call, and
 * system calls cost a microsecond on the VMs we run on).  The cache is reset
 * in the child of every fork().  Inline: a lock's fast path reads it. */
#define MP__TLS __attribute__((tls_model("initial-exec"))) __thread
extern MP__TLS pid_t mp__self_tid MP__HIDDEN;
extern MP__TLS uint64_t mp__self_lock_id MP__HIDDEN;
pid_t mp__tid_slow(void);
uint64_t mp__lock_id_slow(void);

static inline pid_t mp__tid(void)
{
	pid_t t = mp__self_tid;
	return MP__LIKELY(t != 0) ? t : mp__tid_slow();
}

/*
 * Owner ids (see self.c): a thread named for good in 64 bits, its tid and
 * its start time (clock ticks since boot, /proc stat field 22):
 *	bits  0-21  tid (the kernel's PID_MAX_LIMIT is 2^22)
 *	bits 22-28  start time, bits 0-6
 *	bits 29-31  0: free for the user's flags
 *	bits 32-63  start time, bits 7-38
 * A lock word is an id | flags, and its low half is the futex.  A start
 * time that could not be read is MP__START_UNKNOWN (all 39 bits set: 174
 * years of uptime); such an owner counts as alive while its tid lives.
 */
#define MP__ID_TID 0x003fffffu
#define MP__ID_FLAGS 0xe0000000u
#define MP__ID_MASK (~(uint64_t)MP__ID_FLAGS)
#define MP__START_BITS 39
#define MP__START_UNKNOWN (((uint64_t)1 << MP__START_BITS) - 1)

static inline uint64_t mp__id_make(pid_t tid, uint64_t start)
{
	start &= MP__START_UNKNOWN;
	return ((uint64_t)(uint32_t)tid & MP__ID_TID) | (start & 0x7f) << 22 |
	       (start >> 7) << 32;
}

static inline pid_t mp__id_tid(uint64_t id)
{
	return (pid_t)(id & MP__ID_TID);
}

static inline uint64_t mp__id_start(uint64_t id)
{
	return (id >> 22 & 0x7f) | (id >> 32) << 7;
}

/* The calling thread as an owner id.  Cached once its start time is
 * known; until then every call tries /proc again. */
static inline uint64_t mp__lock_id(void)
{
	uint64_t id = mp__self_lock_id;
	return MP__LIKELY(id != 0) ? id : mp__lock_id_slow();
}

/* The calling thread's own start time, or MP__START_UNKNOWN. */
static inline uint64_t mp__self_start(void)
{
	return mp__id_start(mp__lock_id());
}

/* Whether the owner id in `word` (flags ignored) is the calling thread.
 * An id taken while our start time was unknown is still ours once it is
 * known: no other live task has our tid. */
static inline bool mp__id_is_mine(uint64_t word)
{
	uint64_t id = word & MP__ID_MASK;
	if (MP__LIKELY(id == mp__lock_id()))
		return true;
	return mp__id_start(id) == MP__START_UNKNOWN &&
	       mp__id_tid(id) == mp__tid();
}

/* The start time of task `tid` or 0 when it is gone (or /proc cannot
 * tell).  Together with the tid it names a task for good: a recycled tid
 * has a later start time. */
uint64_t mp__task_start(pid_t tid);

/* Whether task `tid` still runs: false when it is gone, a zombie, or its
 * tid now names another task than the one that started at `start`.  With
 * start 0 or MP__START_UNKNOWN, only gone or a zombie is dead.  When /proc
 * cannot be read, kill(2) decides: never calls a live task dead. */
bool mp__task_alive(pid_t tid, uint64_t start);

/* Whether the owner named by id (flags ignored) may still run. */
static inline bool mp__id_alive(uint64_t id)
{
	return mp__task_alive(mp__id_tid(id), mp__id_start(id));
}

/* The shared arena exists once this returns 0; process.c calls it before
 * every fork so that children share it. */
int mp__arena_ensure(void);
/* mp_shared_alloc without zeroing the block (the caller writes or zeroes
 * every byte it reads). */
void *mp__shared_alloc_raw(size_t size);

/* The arena's memfd, for a spawn child: returns it (>= 0) with the
 * mapping's address and length, or -ENOTSUP (no memfd), or ensure's error. */
int mp__arena_share(void **base, size_t *len);

/* In a spawn child, before anything else touches the arena: map the
 * parent's memfd at the parent's address.  Return: 0, -EEXIST (the address
 * is taken in this image), -EBUSY (an arena exists), -EPROTO (not an
 * arena), or mmap's error. */
int mp__arena_adopt(int fd, void *base, size_t len);

/* For tests: the arena's lock, and how often its free lists were rebuilt
 * after a process died holding it. */
mp_lock *mp__arena_lock(void);
uint64_t mp__arena_rebuilds(void);

/* Every byte of [p, p + len) is about to be overwritten: give back the
 * pages wholly inside it that fork children still share, so that the
 * writes do not copy them first (cow.c). */
void mp__cow_prepare_overwrite(void *p, size_t len);
void mp__cow_atfork_child(void); /* reopen pagemap in the child */

/* Hooks run in the child after fork() (registered once by self.c). */
void mp__process_atfork_child(void);

/* Whether l is an initialized lock. */
bool mp__lock_is_valid(mp_lock *l);

/* Whether the calling thread holds l (false when l is not valid).  Only
 * the answer "true" is stable: the holder alone can change it. */
bool mp__lock_is_mine(mp_lock *l);

/* For tests: make l look held by the owner `id` (mp__id_make), as if
 * that task had taken it.  Return: 0, -EINVAL. */
int mp__lock_test_set_owner(mp_lock *l, uint64_t id);

/* For tests: l's word (owner id and flags; WAIT is MP__LOCK_WAIT) and
 * how many waiters are counted as sleeping.  Return: 0, -EINVAL. */
#define MP__LOCK_WAIT 0x80000000u
int mp__lock_test_state(mp_lock *l, uint64_t *word, uint32_t *sleepers);

/* For tests of queue.c: take the producer (side 0) or consumer (side 1)
 * lock of a queue and return holding it, as a process killed inside a put
 * or get would; with side 0 also scribble a half record past the tail. */
int mp__queue_test_hold(mp_queue *q, int side);

/* For tests of queue.c: give up the side lock that mp__queue_test_hold
 * took, as a put or get does at its end. */
int mp__queue_test_unlock(mp_queue *q, int side);

/* For tests of queue.c: make the consumer look as if it last ran on our
 * CPU (peer 0) or another (peer 1), or leave it (-1); and read the lap
 * word (see queue-layout.h) and the span into *lap and *span.  Return: 0,
 * -EINVAL. */
int mp__queue_test_lap(mp_queue *q, int peer, uint64_t *lap, uint64_t *span);

#endif
