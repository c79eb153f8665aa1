/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_SYNC_H
#define MULTIPROC_SYNC_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Synchronization between processes.  Each type X can be made two ways:
 *
 *   mp_X_new() / mp_X_free()       in the shared arena, visible to every
 *                                  process forked after the call;
 *   mp_X_init(&x) / mp_X_destroy() in memory the caller shares (a struct
 *                                  from mp_shared_alloc, a named mp_shm
 *                                  segment for unrelated processes).
 *
 * The types are complete so they can be embedded, but their fields are
 * private.  Any thread of any process that maps an object may use it.  Free
 * or destroy an object only once no process uses it any more.
 */

/*
 * Lock: a mutex between processes, with owner-death recovery.
 *
 * When the holder dies (SIGKILL included) the next acquirer gets
 * -EOWNERDEAD and holds the lock: the lock stays usable, and the caller
 * decides whether the data it guards is consistent.  A waiter notices the
 * death within about 50 ms.  The lock word names the owner by its thread
 * id and its start time, one value: a new process that was given the dead
 * owner's pid started later and does not pass for it, and a live owner
 * is never taken for dead (even one that took its first lock while out of
 * file descriptors).  Limits: all users must be in the same pid
 * namespace, and /proc must be mounted for zombies and recycled pids to
 * be told apart (without it, kill(2) decides).
 */
typedef struct mp_lock {
	uint64_t mp__opaque[2];
} mp_lock;

/* Return: 0, -EINVAL (NULL). */
MP_EXTERN int mp_lock_init(mp_lock *l);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (held). */
MP_EXTERN int mp_lock_destroy(mp_lock *l);
/* Return: a lock in the shared arena, or NULL with errno ENOMEM. */
MP_EXTERN mp_lock *mp_lock_new(void);
MP_EXTERN void mp_lock_free(mp_lock *l);

/* Return: 0; -ETIMEDOUT; -EOWNERDEAD (the holder died: you hold the lock
 * now); -EDEADLK (this thread holds it already); -EINVAL.
 * Safety: any thread of any process; blocks (bounded spin, then futex). */
MP_EXTERN int mp_lock_acquire(mp_lock *l, double timeout_s);

/* Return: 0, -EPERM (this thread does not hold it), -EINVAL. */
MP_EXTERN int mp_lock_release(mp_lock *l);

/*
 * RLock: a recursive lock.  The thread that holds it may acquire it again;
 * it is free once released as many times as acquired.  The owner is a
 * thread (of some process), as for mp_lock, and the same owner-death rule
 * holds: when the holder dies, the next acquirer gets -EOWNERDEAD, holds
 * the lock once (its count starts at 1 again) and the lock stays usable.
 */
typedef struct mp_rlock {
	uint64_t mp__opaque[4];
} mp_rlock;

/* Return: 0, -EINVAL (NULL). */
MP_EXTERN int mp_rlock_init(mp_rlock *r);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (held). */
MP_EXTERN int mp_rlock_destroy(mp_rlock *r);
/* Return: an rlock in the shared arena, or NULL with errno ENOMEM. */
MP_EXTERN mp_rlock *mp_rlock_new(void);
MP_EXTERN void mp_rlock_free(mp_rlock *r);

/* Return: 0 (acquired, or acquired once more by its holder); -ETIMEDOUT;
 * -EOWNERDEAD (the holder died: you hold it now, count 1); -EAGAIN (the
 * holder's count would pass UINT32_MAX); -EINVAL.
 * Safety: any thread of any process; blocks (bounded spin, then futex);
 * a recursive acquire never blocks. */
MP_EXTERN int mp_rlock_acquire(mp_rlock *r, double timeout_s);

/* Undo one acquire; the last one frees the lock and wakes a waiter.
 * Return: 0, -EPERM (this thread does not hold it), -EINVAL. */
MP_EXTERN int mp_rlock_release(mp_rlock *r);

/*
 * Semaphore and BoundedSemaphore: a counter that acquire decrements,
 * waiting while it is 0, and release increments.  A bounded semaphore
 * refuses a release that would take it above its initial value
 * (-EOVERFLOW, where Python raises ValueError); an unbounded one refuses to
 * pass INT32_MAX the same way.  Acquire and release make no system call
 * unless someone sleeps.  A process that dies after an acquire does not
 * give its unit back: a semaphore has no owner (as in Python).  One that
 * dies while it waits never leaves the others asleep: waiters sleep in
 * 40 ms slices, so a unit whose wake-up a dead waiter swallowed is found
 * by another within a slice.
 */
typedef struct mp_semaphore {
	uint64_t mp__opaque[4];
} mp_semaphore;

/* Return: 0, -EINVAL (NULL, or value above INT32_MAX). */
MP_EXTERN int mp_semaphore_init(mp_semaphore *s, unsigned value);
/* A bounded semaphore: release may not take it above `value`.
 * Return: 0, -EINVAL (NULL, or value above INT32_MAX). */
MP_EXTERN int mp_semaphore_init_bounded(mp_semaphore *s, unsigned value);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (a live process
 * sleeps in acquire: the kernel is asked, so dead waiters do not count;
 * a waiter it cannot see, between two sleeps or stopped, later gets
 * -EINVAL from acquire). */
MP_EXTERN int mp_semaphore_destroy(mp_semaphore *s);
/* Return: a semaphore in the shared arena, or NULL with errno ENOMEM or
 * EINVAL (value above INT32_MAX). */
MP_EXTERN mp_semaphore *mp_semaphore_new(unsigned value);
MP_EXTERN mp_semaphore *mp_bounded_semaphore_new(unsigned value);
/* Frees either kind. */
MP_EXTERN void mp_semaphore_free(mp_semaphore *s);

/* Take one unit, waiting while there is none.
 * Return: 0, -ETIMEDOUT, -EINVAL (also: destroyed while we waited).
 * Safety: any thread of any process; blocks (bounded spin, then futex). */
MP_EXTERN int mp_semaphore_acquire(mp_semaphore *s, double timeout_s);

/* Give one unit back and wake one sleeper, if any.
 * Return: 0, -EOVERFLOW (bounded and already at its bound, or at
 * INT32_MAX), -EINVAL.
 * Safety: any thread of any process, whether or not it acquired; never
 * blocks; not async-signal-safe. */
MP_EXTERN int mp_semaphore_release(mp_semaphore *s);

/* Return: the current value (>= 0, a snapshot), -EINVAL. */
MP_EXTERN int mp_semaphore_get_value(mp_semaphore *s);

/*
 * Event: a flag that processes wait for.  set() wakes every process and
 * thread waiting at that moment, even if the flag is cleared again before
 * they run; set() makes no system call when nobody waits.
 */
typedef struct mp_event {
	uint64_t mp__opaque[2];
} mp_event;

/* Return: 0, -EINVAL (NULL).  The flag starts clear. */
MP_EXTERN int mp_event_init(mp_event *e);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (a live process
 * sleeps in wait: the kernel is asked, so dead waiters do not count). */
MP_EXTERN int mp_event_destroy(mp_event *e);
/* Return: an event in the shared arena, or NULL with errno ENOMEM. */
MP_EXTERN mp_event *mp_event_new(void);
MP_EXTERN void mp_event_free(mp_event *e);

/* Raise the flag and wake all waiters.  Return: 0, -EINVAL.
 * Safety: any thread of any process; never blocks. */
MP_EXTERN int mp_event_set(mp_event *e);
/* Lower the flag.  Return: 0, -EINVAL.  Safety: as mp_event_set. */
MP_EXTERN int mp_event_clear(mp_event *e);
/* Return: whether the flag is up (false for NULL).  Never blocks. */
MP_EXTERN bool mp_event_is_set(mp_event *e);

/* Wait until the flag is up, or until a set() that happens while we wait.
 * Return: 0, -ETIMEDOUT, -EINVAL.
 * Safety: any thread of any process; blocks (bounded spin, then futex). */
MP_EXTERN int mp_event_wait(mp_event *e, double timeout_s);

/*
 * Condition: a condition variable bound to an mp_lock, as Python's
 * Condition (whose default lock is recursive; ours is an mp_lock).  wait()
 * releases the lock, sleeps until notified, and takes the lock back; no
 * notify that happens after the waiter released the lock is lost.  notify(n)
 * releases min(n, waiters) of the waiters that came before it.  A waiter
 * that dies while it waits never leaves the others asleep: a notification
 * it was given and did not take goes to another waiter within one 40 ms
 * sleep slice.  But a waiter killed while it waits stays counted, so a
 * later notify may release one more than asked: wait in a loop on your
 * predicate, or use mp_condition_wait_for().
 *
 * The lock is found by its distance from the condition, so both must live
 * in the same shared mapping (both in the arena, or both in one mp_shm
 * segment): then the pair works wherever that mapping is mapped.
 */
typedef struct mp_condition {
	uint64_t mp__opaque[6];
} mp_condition;

/* `lock` is an initialized mp_lock in the same mapping, or NULL for the
 * condition's own.  Return: 0, -EINVAL (NULL c, or lock not initialized). */
MP_EXTERN int mp_condition_init(mp_condition *c, mp_lock *lock);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (a live process
 * sleeps in a wait: the kernel is asked, so dead waiters do not count; a
 * waiter it cannot see, between two sleeps or stopped, later gets -EINVAL
 * from its wait, without the lock). */
MP_EXTERN int mp_condition_destroy(mp_condition *c);
/* A condition in the shared arena.  Return: NULL with errno ENOMEM, or
 * EINVAL (lock not initialized). */
MP_EXTERN mp_condition *mp_condition_new(mp_lock *lock);
/* Frees the condition, never the lock that was given to it. */
MP_EXTERN void mp_condition_free(mp_condition *c);

/* Return: the lock the condition uses (its own or the one given), NULL
 * for NULL or an uninitialized condition. */
MP_EXTERN mp_lock *mp_condition_get_lock(mp_condition *c);

/* The lock's acquire and release (see mp_lock_acquire, mp_lock_release). */
MP_EXTERN int mp_condition_acquire(mp_condition *c, double timeout_s);
MP_EXTERN int mp_condition_release(mp_condition *c);

/* With the lock held: release it, wait for a notify or the timeout, take
 * the lock back (waiting for it without limit, as Python does).
 * Return: 0 (notified: check your predicate), -ETIMEDOUT, -EPERM (this
 * thread does not hold the lock), -EINVAL (also: the condition was
 * destroyed while we waited); -EOWNERDEAD when the lock's
 * holder died while we waited for it: we hold it, the data it guards may
 * be half-updated.  In every case but -EPERM and -EINVAL the lock is held
 * on return.
 * Safety: any thread of any process; blocks. */
MP_EXTERN int mp_condition_wait(mp_condition *c, double timeout_s);

/* With the lock held: wait until pred(arg) is true, evaluating it with the
 * lock held, first before any wait.
 * Return: 0 (pred is true), -ETIMEDOUT (it was still false at the
 * deadline), -EPERM, -EOWNERDEAD (as mp_condition_wait; pred not checked),
 * -EINVAL (NULL pred).
 * Safety: as mp_condition_wait. */
MP_EXTERN int mp_condition_wait_for(mp_condition *c, bool (*pred)(void *),
				    void *arg, double timeout_s);

/* Wake up to n waiters (n >= 0).  Call it with the lock held: without it,
 * a waiter that has not yet released the lock may miss the notify.
 * Return: 0, -EINVAL (NULL, n < 0).
 * Safety: any thread of any process; never blocks; a system call only
 * when someone waits. */
MP_EXTERN int mp_condition_notify(mp_condition *c, int n);
/* Wake every waiter.  Return and Safety: as mp_condition_notify. */
MP_EXTERN int mp_condition_notify_all(mp_condition *c);

/*
 * Barrier: `parties` processes (or threads) meet; each wait() returns once
 * all have called it, with a distinct index 0..parties-1 (the arrival
 * order: the last to arrive gets parties-1).  Then the barrier is ready
 * for the next round.
 *
 * Broken, as in Python: a wait that times out, abort(), or reset() while
 * some wait breaks the round: every waiter of the round returns MP_EBROKEN,
 * and so does every later wait() until reset().  A party that dies while
 * it waits breaks the round too: the waiters watch each other in a ring
 * (each the party that arrived before it, the first one the latest
 * arrival) and check the watched one's liveness every 50 ms of sleep, as
 * mp_lock does with its owner, so the others get MP_EBROKEN within about
 * that time.  A party that dies before it arrives cannot be told from a
 * slow one: use a timeout, or abort() from a process that notices the
 * death (the parent that joins it).
 */
typedef struct mp_barrier {
	uint64_t mp__opaque[8];
} mp_barrier;

/* Return: 0, -EINVAL (NULL, parties 0 or above INT32_MAX). */
MP_EXTERN int mp_barrier_init(mp_barrier *b, unsigned parties);
/* Return: 0, -EINVAL (NULL or not initialized), -EBUSY (a live process
 * sleeps in wait: the kernel is asked, so parties that died waiting do
 * not count, nor does one that died holding the internal lock). */
MP_EXTERN int mp_barrier_destroy(mp_barrier *b);
/* Return: a barrier in the shared arena, NULL with errno ENOMEM or EINVAL. */
MP_EXTERN mp_barrier *mp_barrier_new(unsigned parties);
MP_EXTERN void mp_barrier_free(mp_barrier *b);

/* Return: this party's index 0..parties-1; MP_EBROKEN (broken before or
 * while we waited, including by our own timeout); -EINVAL.
 * Safety: any thread of any process; blocks (futex, in 50 ms slices). */
MP_EXTERN int mp_barrier_wait(mp_barrier *b, double timeout_s);

/* Break the barrier: waiters and later waits get MP_EBROKEN until reset.
 * Return: 0, -EINVAL.  Safety: any thread of any process; never blocks
 * long (an internal lock). */
MP_EXTERN int mp_barrier_abort(mp_barrier *b);

/* Back to the initial state; a round in progress is broken first (its
 * waiters get MP_EBROKEN).  Return: 0, -EINVAL.  Safety: as abort. */
MP_EXTERN int mp_barrier_reset(mp_barrier *b);

/* Return: how many parties wait in the current round (a snapshot),
 * -EINVAL. */
MP_EXTERN int mp_barrier_n_waiting(mp_barrier *b);
/* Return: whether the barrier is broken (false for NULL). */
MP_EXTERN bool mp_barrier_broken(mp_barrier *b);
/* Return: the number of parties, -EINVAL. */
MP_EXTERN int mp_barrier_parties(mp_barrier *b);

/*
 * Value and Array: shared memory with a lock, as Python's Value('i', 0) and
 * Array('d', n) with lock=True.  The bytes start zeroed and 64-byte
 * aligned; the caller gives them a type:
 *
 *     mp_value *v = mp_value_new(sizeof(int));
 *     int *n = mp_value_ptr(v);
 *     mp_lock_acquire(mp_value_get_lock(v), MP_FOREVER);
 *     (*n)++;
 *     mp_lock_release(mp_value_get_lock(v));
 *
 * The lock is only a convenience: nothing checks that it is held.  Both
 * live in the shared arena (processes forked after the call see them).
 * Raw variants, Python's lock=False, are plain arena blocks.  For memory
 * you share yourself (an mp_shm segment), embed an mp_lock beside the data.
 */
typedef struct mp_value mp_value;
typedef struct mp_array mp_array;

/* `size` zeroed bytes with a lock.  Return: NULL with errno EINVAL (size
 * 0) or ENOMEM. */
MP_EXTERN mp_value *mp_value_new(size_t size);
MP_EXTERN void mp_value_free(mp_value *v);
/* Return: the bytes; NULL for NULL. */
MP_EXTERN void *mp_value_ptr(mp_value *v);
/* Return: the size given to new; 0 for NULL. */
MP_EXTERN size_t mp_value_size(const mp_value *v);
/* Return: the value's lock; NULL for NULL. */
MP_EXTERN mp_lock *mp_value_get_lock(mp_value *v);

/* n zeroed elements of elem_size bytes with a lock (n may be 0).
 * Return: NULL with errno EINVAL (elem_size 0) or ENOMEM (also when the
 * size overflows). */
MP_EXTERN mp_array *mp_array_new(size_t elem_size, size_t n);
MP_EXTERN void mp_array_free(mp_array *a);
MP_EXTERN void *mp_array_ptr(mp_array *a);
/* Return: the number of elements; 0 for NULL. */
MP_EXTERN size_t mp_array_len(const mp_array *a);
MP_EXTERN size_t mp_array_elem_size(const mp_array *a);
MP_EXTERN mp_lock *mp_array_get_lock(mp_array *a);

/* Lock-free variants: `size` zeroed shared bytes, or n elements of
 * elem_size (checked for overflow), from mp_shared_alloc; free them with
 * mp_shared_free.  Return: NULL with errno EINVAL (a zero size) or ENOMEM.
 * Safety: as mp_shared_alloc; access to the bytes is the caller's to
 * synchronize. */
MP_EXTERN void *mp_raw_value_new(size_t size);
MP_EXTERN void *mp_raw_array_new(size_t elem_size, size_t n);

MP_END_DECLS

#endif
