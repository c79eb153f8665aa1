/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_QUEUE_H
#define MULTIPROC_QUEUE_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Queue: Python's multiprocessing.Queue for bytes.
 *
 * A ring of bytes in shared memory, bounded by bytes, for any number of
 * producers and consumers in any processes (and threads) that map it.  A
 * message is any run of 0 up to mp_queue_capacity() bytes; it is copied in
 * by put and out by get, whole: never torn, never delivered twice.  Order is
 * FIFO across the whole queue (so also per producer).  There is no feeder
 * thread: a put that returned 0 has its message in the queue, and it stays
 * there whatever happens to the process that put it.
 *
 * Ring cost: each message takes 8 bytes of header plus its length rounded
 * up to 8 bytes.  The ring size is a power of two; mp_queue_capacity() is
 * the largest message, and a message of that size always fits into an empty
 * queue.
 *
 * Memory: mp_queue_new() lets the records of a ring cycle through up to
 * 16 times its size, at most 8 MiB, of the arena, while the arena stays at
 * most half full (otherwise through the ring alone), and mp_queue_init()
 * through the memory it is given.  The capacity stays the same; a wider
 * lap means that a line a put writes has left the consumer's caches since
 * it read it, which makes one producer and one consumer on two CPUs 1.5-5x
 * faster with small messages.  Pages are touched only as the records go
 * round: a queue that moved less than its span holds less.  When both
 * sides last ran on one CPU, puts keep to the first ring's worth of it,
 * where the lines are still in that CPU's cache.
 *
 * Faults: a producer or consumer killed while it waits (empty or full)
 * changes nothing for the others.  A process killed inside a put loses that
 * one message (the put never returned, so it was never in the queue).  A
 * process killed inside a get before it took the message leaves it queued
 * for the next consumer; killed after it took it, that message went to the
 * process that died.  The others notice the dead process within about
 * 50 ms and carry on; nothing wedges.
 *
 * Blocking: a bounded spin (5 to about 170 microseconds, learnt from the
 * side's last sleeps), two yields of the CPU (the process waited for may
 * share it), then a futex sleep; a put or get wakes the other side only
 * when someone sleeps.  Timeouts follow common.h; one may end up to a
 * sched_yield late, and start up to about 5 microseconds late.
 *
 * Lifetime: mp_queue_new() allocates in the shared arena: the queue is
 * valid in every process forked afterwards.  mp_queue_init() places one in
 * memory the caller shares (for example a named mp_shm segment, where an
 * unrelated process uses mp_queue_attach()).  Free or destroy a queue only
 * once no process uses it.
 */
typedef struct mp_queue mp_queue;

/* Default capacity for mp_queue_new(0): 256 KiB of ring. */
#define MP_QUEUE_DEFAULT_BYTES ((size_t)256 << 10)

/* A queue in the shared arena whose largest message is at least
 * capacity_bytes (0: MP_QUEUE_DEFAULT_BYTES).
 * Return: the queue, or NULL with errno ENOMEM (arena full) or EINVAL
 * (capacity over 1 GiB).  The caller frees it with mp_queue_free().
 * Safety: any thread; takes the arena's lock briefly. */
MP_EXTERN mp_queue *mp_queue_new(size_t capacity_bytes);

/* Like mp_queue_new(), plus the JoinableQueue counters: every put counts an
 * unfinished task, mp_queue_task_done() finishes one, mp_queue_join()
 * waits for none to be left. */
MP_EXTERN mp_queue *mp_joinable_queue_new(size_t capacity_bytes);

/* Bytes of shared memory mp_queue_init() needs for a queue whose largest
 * message is at least capacity_bytes.  Return: 0 when it is over 1 GiB. */
MP_EXTERN size_t mp_queue_size_for(size_t capacity_bytes);

/* Make a queue in mem[0..mem_size) (8-byte aligned, shared by the processes
 * that will use it; 64-byte alignment is best).  The ring takes the largest
 * power of two that fits.  joinable: as mp_joinable_queue_new().
 * Return: the queue (== mem), or NULL with errno EINVAL (NULL, misaligned,
 * or too small: see mp_queue_size_for(0) for the least).
 * Safety: before any other process uses that memory as a queue. */
MP_EXTERN mp_queue *mp_queue_init(void *mem, size_t mem_size, bool joinable);

/* The queue another process made with mp_queue_init() at mem (for example
 * after mp_shm_attach()).  Return: the queue, or NULL with errno EINVAL
 * when mem holds no queue. */
MP_EXTERN mp_queue *mp_queue_attach(void *mem);

/* Undo mp_queue_init(): the memory is the caller's again.
 * Return: 0, -EINVAL (not a queue). */
MP_EXTERN int mp_queue_destroy(mp_queue *q);

/* Free a queue from mp_queue_new(); NULL is ignored.
 * Safety: once no process uses the queue any more. */
MP_EXTERN void mp_queue_free(mp_queue *q);

/* Append a copy of msg[0..len).  Waits while the queue has no room.
 * Return: 0; -ETIMEDOUT (no room in time; 0 = do not wait); MP_ECLOSED
 * (the queue was closed, before or while waiting); -EMSGSIZE (len is over
 * mp_queue_capacity(): it can never fit); -EINVAL (NULL q, or NULL msg
 * with len > 0).
 * Safety: any thread of any process; blocks (bounded spin, then futex);
 * not async-signal-safe. */
MP_EXTERN int mp_queue_put(mp_queue *q, const void *msg, size_t len,
			   double timeout_s);

/* Take the oldest message, copying it into buf[0..cap).  Waits while the
 * queue is empty.
 * Return: the message's length (0 is a valid, empty message); -EMSGSIZE
 * when it is longer than cap: the message stays queued, untouched (a buffer
 * of mp_queue_capacity() bytes always suffices); MP_ECLOSED once the queue
 * is closed and empty; -ETIMEDOUT (empty in time; 0 = do not wait);
 * -EINVAL (NULL q, or NULL buf with cap > 0).
 * Safety: any thread of any process; blocks (bounded spin, then futex);
 * not async-signal-safe. */
MP_EXTERN ssize_t mp_queue_get(mp_queue *q, void *buf, size_t cap,
			       double timeout_s);

/* The oldest message, of any length, in a buffer from malloc() (the
 * caller frees it; a 0-byte message still gets a non-NULL buffer).
 * Return: its length, with *msg set; the errors of mp_queue_get() but
 * -EMSGSIZE, and -ENOMEM (*msg is then NULL and the message stays queued).
 * Safety: as mp_queue_get(). */
MP_EXTERN ssize_t mp_queue_get_alloc(mp_queue *q, void **msg,
				     double timeout_s);

/* No more puts: later and waiting puts return MP_ECLOSED, gets drain what
 * is queued and then return MP_ECLOSED.  Wakes every waiter.  Idempotent.
 * Return: 0, -EINVAL.  (Python's close() only closes this process's end;
 * ours closes the queue for everyone, which is what a sentinel would do.)
 * Safety: any thread of any process; does not block. */
MP_EXTERN int mp_queue_close(mp_queue *q);

/* Whether mp_queue_close() was called. */
MP_EXTERN bool mp_queue_is_closed(mp_queue *q);

/* The largest message the queue takes, in bytes; 0 for NULL. */
MP_EXTERN size_t mp_queue_capacity(mp_queue *q);

/* Messages in the queue.  Approximate, as Python's: other processes change
 * it at any moment, so it is stale when it returns (and after a process
 * died inside a put or get it may be one off).  Return: the count, or
 * -EINVAL. */
MP_EXTERN ssize_t mp_queue_qsize(mp_queue *q);

/* Whether the queue holds no message (approximate, see qsize; true for
 * NULL). */
MP_EXTERN bool mp_queue_empty(mp_queue *q);

/* Whether the queue has no room even for an empty message (approximate,
 * see qsize; a long message may not fit while this is false). */
MP_EXTERN bool mp_queue_full(mp_queue *q);

/*
 * JoinableQueue: a queue from mp_joinable_queue_new() (or
 * mp_queue_init(..., true)) counts unfinished tasks: a put adds one, a
 * consumer calls mp_queue_task_done() when it has finished with a message
 * it got, and mp_queue_join() waits until every message put was done.
 * Limit: a producer killed in the last instructions of a put (after it
 * counted the task, before the message became visible) leaves one task that
 * nobody can finish; join then times out.
 */

/* Return: 0; -EINVAL when called more times than there were puts (Python's
 * ValueError), or for NULL; MP_ESTATE for a queue that is not joinable.
 * Safety: any thread of any process; wakes joiners; never blocks. */
MP_EXTERN int mp_queue_task_done(mp_queue *q);

/* Wait until every put message was task_done'd.
 * Return: 0; -ETIMEDOUT; MP_ESTATE (not joinable); -EINVAL.
 * Safety: any thread of any process; blocks on a futex. */
MP_EXTERN int mp_queue_join(mp_queue *q, double timeout_s);

/* Tasks put and not yet done (approximate); -EINVAL, MP_ESTATE. */
MP_EXTERN ssize_t mp_queue_unfinished(mp_queue *q);

/*
 * SimpleQueue: Python's SimpleQueue exists because its Queue carries a
 * feeder thread, a buffer and a size semaphore; SimpleQueue is just a
 * locked pipe.  Ours has none of that weight (no thread, no extra
 * syscalls), so SimpleQueue is the same object under Python's names: a
 * default-capacity mp_queue without timeouts.
 */
typedef mp_queue mp_simple_queue;

static inline mp_simple_queue *mp_simple_queue_new(void)
{
	return mp_queue_new(0);
}

static inline int mp_simple_queue_put(mp_simple_queue *q, const void *msg,
				      size_t len)
{
	return mp_queue_put(q, msg, len, MP_FOREVER);
}

static inline ssize_t mp_simple_queue_get(mp_simple_queue *q, void *buf,
					  size_t cap)
{
	return mp_queue_get(q, buf, cap, MP_FOREVER);
}

static inline bool mp_simple_queue_empty(mp_simple_queue *q)
{
	return mp_queue_empty(q);
}

static inline int mp_simple_queue_close(mp_simple_queue *q)
{
	return mp_queue_close(q);
}

static inline void mp_simple_queue_free(mp_simple_queue *q)
{
	mp_queue_free(q);
}

MP_END_DECLS

#endif
