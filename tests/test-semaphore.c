/* SPDX-License-Identifier: MIT */
/* Semaphore and BoundedSemaphore between processes. */
#include <sched.h>
#include <stdatomic.h>

#include "test.h"

/* Children start together, so that they really contend. */
static mp_event *go;

TEST(semaphore_bad_input)
{
	ASSERT_ERR(mp_semaphore_init(NULL, 1), -EINVAL);
	ASSERT_ERR(mp_semaphore_init_bounded(NULL, 1), -EINVAL);
	ASSERT_ERR(mp_semaphore_acquire(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_semaphore_release(NULL), -EINVAL);
	ASSERT_ERR(mp_semaphore_get_value(NULL), -EINVAL);
	ASSERT_ERR(mp_semaphore_destroy(NULL), -EINVAL);
	mp_semaphore_free(NULL);
	mp_semaphore s;
	memset(&s, 0, sizeof(s));
	ASSERT_ERR(mp_semaphore_acquire(&s, 0), -EINVAL);
	ASSERT_ERR(mp_semaphore_init(&s, 0x80000000u), -EINVAL);
	errno = 0;
	ASSERT(mp_semaphore_new(0x80000000u) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_bounded_semaphore_new(0xffffffffu) == NULL);
	ASSERT_OK(mp_semaphore_init(&s, 1));
	ASSERT_OK(mp_semaphore_destroy(&s));
	ASSERT_ERR(mp_semaphore_release(&s), -EINVAL);
}

TEST(semaphore_counts)
{
	mp_semaphore *s = mp_semaphore_new(2);
	ASSERT_NOT_NULL(s);
	ASSERT_EQ(mp_semaphore_get_value(s), 2);
	ASSERT_OK(mp_semaphore_acquire(s, 0));
	ASSERT_OK(mp_semaphore_acquire(s, MP_FOREVER));
	ASSERT_EQ(mp_semaphore_get_value(s), 0);
	ASSERT_ERR(mp_semaphore_acquire(s, 0), -ETIMEDOUT);
	/* Unbounded: release past the initial value is fine. */
	for (int i = 0; i < 5; i++)
		ASSERT_OK(mp_semaphore_release(s));
	ASSERT_EQ(mp_semaphore_get_value(s), 5);
	mp_semaphore_free(s);

	mp_semaphore big;
	ASSERT_OK(mp_semaphore_init(&big, 0x7fffffffu));
	ASSERT_ERR(mp_semaphore_release(&big), -EOVERFLOW);
	ASSERT_OK(mp_semaphore_acquire(&big, 0));
	ASSERT_OK(mp_semaphore_release(&big));
}

TEST(semaphore_bounded_overflow)
{
	mp_semaphore *s = mp_bounded_semaphore_new(2);
	ASSERT_NOT_NULL(s);
	ASSERT_ERR(mp_semaphore_release(s), -EOVERFLOW);
	ASSERT_OK(mp_semaphore_acquire(s, 0));
	ASSERT_OK(mp_semaphore_acquire(s, 0));
	ASSERT_OK(mp_semaphore_release(s));
	ASSERT_OK(mp_semaphore_release(s));
	ASSERT_ERR(mp_semaphore_release(s), -EOVERFLOW);
	ASSERT_EQ(mp_semaphore_get_value(s), 2);
	mp_semaphore_free(s);

	mp_semaphore z;
	ASSERT_OK(mp_semaphore_init_bounded(&z, 0));
	ASSERT_ERR(mp_semaphore_release(&z), -EOVERFLOW);
	ASSERT_ERR(mp_semaphore_acquire(&z, 0), -ETIMEDOUT);
}

TEST(semaphore_timeout)
{
	mp_semaphore *s = mp_semaphore_new(0);
	double t0 = test_now();
	ASSERT_ERR(mp_semaphore_acquire(s, 0.15), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.15);
	ASSERT(waited < 0.15 + 1.0 * test_timeout_mult());
	ASSERT_EQ(mp_semaphore_get_value(s), 0);
	mp_semaphore_free(s);
}

/* Never more holders than the value; every holder counted exactly. */
struct admit {
	mp_semaphore sem;
	_Atomic int holders;
	_Atomic int max_holders;
	long total; /* guarded by `mutex` */
	mp_semaphore mutex;
};

#define LIMIT 3
#define PROCS 8
#define ITERS 4000

static int admit_many(void *arg)
{
	if (mp_event_wait(go, 20))
		return 99;
	struct admit *a = arg;
	for (int i = 0; i < ITERS; i++) {
		if (mp_semaphore_acquire(&a->sem, MP_FOREVER))
			return 1;
		int h = atomic_fetch_add(&a->holders, 1) + 1;
		int m = atomic_load(&a->max_holders);
		while (h > m && !atomic_compare_exchange_weak(&a->max_holders,
							      &m, h))
			;
		if (i % 16 == 0)
			sched_yield();
		atomic_fetch_sub(&a->holders, 1);
		if (mp_semaphore_acquire(&a->mutex, MP_FOREVER))
			return 3;
		a->total++;
		if (mp_semaphore_release(&a->mutex))
			return 4;
		if (mp_semaphore_release(&a->sem))
			return 2;
	}
	return 0;
}

TEST(semaphore_admits_at_most_value)
{
	struct admit *a = mp_shared_alloc(sizeof(*a));
	ASSERT_NOT_NULL(a);
	ASSERT_OK(mp_semaphore_init_bounded(&a->sem, LIMIT));
	ASSERT_OK(mp_semaphore_init(&a->mutex, 1));
	go = mp_event_new();
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(admit_many, a);
	ASSERT_OK(mp_event_set(go));
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(a->total, (long)PROCS * ITERS);
	ASSERT(atomic_load(&a->max_holders) <= LIMIT);
	ASSERT(atomic_load(&a->max_holders) >= 1);
	ASSERT_EQ(mp_semaphore_get_value(&a->sem), LIMIT);
	ASSERT_EQ(mp_semaphore_get_value(&a->mutex), 1);
	mp_shared_free(a);
}

/* Two processes hand a token back and forth: every release must wake the
 * other side, or the test hangs. */
struct pingpong {
	mp_semaphore ping;
	mp_semaphore pong;
};

#define ROUNDS 20000

static int ponger(void *arg)
{
	struct pingpong *p = arg;
	for (int i = 0; i < ROUNDS; i++) {
		if (mp_semaphore_acquire(&p->ping, 10))
			return 1;
		if (mp_semaphore_release(&p->pong))
			return 2;
	}
	return 0;
}

TEST(semaphore_ping_pong)
{
	struct pingpong *p = mp_shared_alloc(sizeof(*p));
	ASSERT_OK(mp_semaphore_init(&p->ping, 0));
	ASSERT_OK(mp_semaphore_init(&p->pong, 0));
	pid_t pid = test_fork(ponger, p);
	for (int i = 0; i < ROUNDS; i++) {
		ASSERT_OK(mp_semaphore_release(&p->ping));
		ASSERT_OK(mp_semaphore_acquire(&p->pong, 10));
	}
	ASSERT_EQ(test_wait(pid), 0);
	mp_shared_free(p);
}

/* Many sleepers, releases from another process: each release admits one. */
static int take_one(void *arg)
{
	return mp_semaphore_acquire(arg, 20) == 0 ? 0 : 1;
}

TEST(semaphore_wakes_sleepers)
{
	mp_semaphore *s = mp_semaphore_new(0);
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(take_one, s);
	for (int i = 0; i < PROCS; i++)
		ASSERT_OK(mp_semaphore_release(s));
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(mp_semaphore_get_value(s), 0);
	mp_semaphore_free(s);
}

TEST_MAIN(T(semaphore_bad_input), T(semaphore_counts),
	  T(semaphore_bounded_overflow), T(semaphore_timeout),
	  T_TIMEOUT(semaphore_admits_at_most_value, 60),
	  T_TIMEOUT(semaphore_ping_pong, 60), T(semaphore_wakes_sleepers))
