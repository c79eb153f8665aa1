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
 * death within about 50 ms.  The owner is named by its thread id and start
 * time, so a recycled pid is not mistaken for the dead owner.  Limits: all
 * users must be in the same pid namespace, and /proc must be mounted for
 * zombies and recycled pids to be told apart (without it, kill(2) decides).
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

MP_END_DECLS

#endif
