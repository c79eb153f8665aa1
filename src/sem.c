/*
 * Semaphore and BoundedSemaphore.
 *
 * value    the count of units, 0..bound; the futex word.  Sleepers wait
 *          on it while it reads 0.
 * waiters  how many acquirers are (about to be) asleep.
 * bound    the largest value a release may produce: the initial value for
 *          a bounded semaphore, INT32_MAX otherwise.
 *
 * Uncontended acquire and release are one CAS each and make no system call.
 * A release wakes one sleeper only when waiters is non-zero.  No wake-up
 * is lost because the two sides use sequentially consistent operations in
 * opposite orders: an acquirer increments waiters, then reads value; a
 * releaser increments value, then reads waiters.  In the single total order
 * of those four operations either the releaser sees the waiter (and wakes
 * it) or the waiter sees the unit (and takes it, or the kernel's compare in
 * FUTEX_WAIT sees value != 0 and does not sleep).
 *
 * A woken acquirer may find its unit taken by one that never slept (no
 * hand-off, as in glibc and musl): it just sleeps again.  One that times out
 * tries once more before giving up, so a unit released to it at that
 * moment is not left behind while others sleep.
 */
#include <errno.h>
#include <stdatomic.h>

#include "futex.h"
#include "internal.h"
#include "spin.h"

#define SEM_MAGIC 0x53454d41u /* "SEMA" */
#define SEM_MAX 0x7fffffffu

struct sem_shared {
	_Atomic uint32_t value;
	_Atomic uint32_t waiters;
	uint32_t bound;
	uint32_t magic;
	_Atomic uint32_t spin; /* spin budget hint, see spin.h */
	uint32_t reserved[3];
};

_Static_assert(sizeof(struct sem_shared) == sizeof(mp_semaphore), "ABI");
_Static_assert(_Alignof(struct sem_shared) <= _Alignof(mp_semaphore), "ABI");

static inline struct sem_shared *shared(mp_semaphore *s)
{
	return (struct sem_shared *)s;
}

static inline bool valid(struct sem_shared *s)
{
	return s && s->magic == SEM_MAGIC;
}

static int init(mp_semaphore *sem, unsigned value, uint32_t bound)
{
	if (!sem || value > SEM_MAX)
		return -EINVAL;
	struct sem_shared *s = shared(sem);
	atomic_store_explicit(&s->value, value, memory_order_relaxed);
	atomic_store_explicit(&s->waiters, 0, memory_order_relaxed);
	s->bound = bound;
	atomic_store_explicit(&s->spin, 0, memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		s->reserved[i] = 0;
	s->magic = SEM_MAGIC;
	return 0;
}

int mp_semaphore_init(mp_semaphore *s, unsigned value)
{
	return init(s, value, SEM_MAX);
}

int mp_semaphore_init_bounded(mp_semaphore *s, unsigned value)
{
	return init(s, value, value);
}

int mp_semaphore_destroy(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (!valid(s))
		return -EINVAL;
	if (atomic_load_explicit(&s->waiters, memory_order_relaxed))
		return -EBUSY;
	s->magic = 0;
	return 0;
}

static mp_semaphore *make(unsigned value, bool bounded)
{
	if (value > SEM_MAX) {
		errno = EINVAL;
		return NULL;
	}
	mp_semaphore *s = mp_shared_alloc(sizeof(*s));
	if (s)
		init(s, value, bounded ? value : SEM_MAX);
	return s;
}

mp_semaphore *mp_semaphore_new(unsigned value)
{
	return make(value, false);
}

mp_semaphore *mp_bounded_semaphore_new(unsigned value)
{
	return make(value, true);
}

void mp_semaphore_free(mp_semaphore *s)
{
	if (!s)
		return;
	shared(s)->magic = 0;
	mp_shared_free(s);
}

/* Take a unit if there is one.  `order` is the load's: seq_cst once we
 * count among the waiters (see the file comment). */
static inline bool try_take(struct sem_shared *s, memory_order order)
{
	uint32_t v = atomic_load_explicit(&s->value, order);

	while (v > 0)
		if (atomic_compare_exchange_weak_explicit(
			    &s->value, &v, v - 1, memory_order_acquire,
			    memory_order_relaxed))
			return true;
	return false;
}

static int acquire_slow(struct sem_shared *s, mp__deadline deadline)
{
	if (deadline != MP__NEVER && mp__now_ns() >= deadline)
		return try_take(s, memory_order_relaxed) ? 0 : -ETIMEDOUT;
	int spins = mp__spin_budget(&s->spin);
	for (int i = 0; i < spins; i++) {
		__builtin_ia32_pause();
		if (atomic_load_explicit(&s->value, memory_order_relaxed) &&
		    try_take(s, memory_order_relaxed)) {
			mp__spin_result(&s->spin, true);
			return 0;
		}
	}
	if (spins)
		mp__spin_result(&s->spin, false);
	int err = 0;
	atomic_fetch_add_explicit(&s->waiters, 1, memory_order_seq_cst);
	while (!try_take(s, memory_order_seq_cst)) {
		if (mp__futex_wait(&s->value, 0, deadline) == -ETIMEDOUT) {
			if (!try_take(s, memory_order_seq_cst))
				err = -ETIMEDOUT;
			break;
		}
	}
	atomic_fetch_sub_explicit(&s->waiters, 1, memory_order_relaxed);
	return err;
}

int mp_semaphore_acquire(mp_semaphore *sem, double timeout_s)
{
	struct sem_shared *s = shared(sem);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
	if (MP__LIKELY(v > 0) &&
	    atomic_compare_exchange_strong_explicit(&s->value, &v, v - 1,
						    memory_order_acquire,
						    memory_order_relaxed))
		return 0;
	return acquire_slow(s, mp__deadline_in(timeout_s));
}

int mp_semaphore_release(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (MP__UNLIKELY(!valid(s)))
		return -EINVAL;
	uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
	do {
		if (v >= s->bound)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak_explicit(
		&s->value, &v, v + 1, memory_order_seq_cst,
		memory_order_relaxed));
	if (atomic_load_explicit(&s->waiters, memory_order_seq_cst))
		mp__futex_wake(&s->value, 1);
	return 0;
}

int mp_semaphore_get_value(mp_semaphore *sem)
{
	struct sem_shared *s = shared(sem);

	if (!valid(s))
		return -EINVAL;
	return (int)atomic_load_explicit(&s->value, memory_order_relaxed);
}
