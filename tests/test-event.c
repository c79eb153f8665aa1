/* SPDX-License-Identifier: MIT */
/* Event: set wakes every waiter; clear, is_set, timeouts. */
#include <sched.h>

#include "test.h"

TEST(event_bad_input)
{
	ASSERT_ERR(mp_event_init(NULL), -EINVAL);
	ASSERT_ERR(mp_event_set(NULL), -EINVAL);
	ASSERT_ERR(mp_event_clear(NULL), -EINVAL);
	ASSERT_ERR(mp_event_wait(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_event_destroy(NULL), -EINVAL);
	ASSERT(!mp_event_is_set(NULL));
	mp_event_free(NULL);
	mp_event e;
	memset(&e, 0, sizeof(e));
	ASSERT_ERR(mp_event_set(&e), -EINVAL);
	ASSERT_ERR(mp_event_wait(&e, 0), -EINVAL);
	ASSERT_OK(mp_event_init(&e));
	ASSERT_OK(mp_event_destroy(&e));
	ASSERT_ERR(mp_event_set(&e), -EINVAL);
}

TEST(event_set_clear)
{
	mp_event *e = mp_event_new();
	ASSERT_NOT_NULL(e);
	ASSERT(!mp_event_is_set(e));
	ASSERT_ERR(mp_event_wait(e, 0), -ETIMEDOUT);
	ASSERT_OK(mp_event_set(e));
	ASSERT(mp_event_is_set(e));
	ASSERT_OK(mp_event_set(e));
	ASSERT_OK(mp_event_wait(e, 0));
	ASSERT_OK(mp_event_wait(e, MP_FOREVER));
	ASSERT_OK(mp_event_clear(e));
	ASSERT_OK(mp_event_clear(e));
	ASSERT(!mp_event_is_set(e));
	ASSERT_ERR(mp_event_wait(e, 0), -ETIMEDOUT);
	mp_event_free(e);
}

TEST(event_timeout)
{
	mp_event *e = mp_event_new();
	double t0 = test_now();
	ASSERT_ERR(mp_event_wait(e, 0.15), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.15);
	ASSERT(waited < 0.15 + 1.0 * test_timeout_mult());
	mp_event_free(e);
}

#define WAITERS 8

static int wait_event(void *arg)
{
	return mp_event_wait(arg, 20) == 0 ? 0 : 1;
}

/* More waiters than cores, all asleep; one set() wakes them all. */
TEST(event_set_wakes_all_waiters)
{
	mp_event *e = mp_event_new();
	pid_t pids[WAITERS];
	for (int i = 0; i < WAITERS; i++)
		pids[i] = test_fork(wait_event, e);
	for (int i = 0; i < WAITERS; i++)
		test_wait_asleep(pids[i]);
	ASSERT_OK(mp_event_set(e));
	for (int i = 0; i < WAITERS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	mp_event_free(e);
}

/* A set() cleared at once still releases everyone who was waiting. */
TEST(event_set_then_clear_wakes_all_waiters)
{
	mp_event *e = mp_event_new();
	pid_t pids[WAITERS];
	for (int i = 0; i < WAITERS; i++)
		pids[i] = test_fork(wait_event, e);
	for (int i = 0; i < WAITERS; i++)
		test_wait_asleep(pids[i]);
	ASSERT_OK(mp_event_set(e));
	ASSERT_OK(mp_event_clear(e));
	for (int i = 0; i < WAITERS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT(!mp_event_is_set(e));
	mp_event_free(e);
}

/* Two processes alternate through two events, clearing behind them, as
 * Python programs do: a lost wake-up hangs the test. */
struct pingpong {
	mp_event ping;
	mp_event pong;
	long count;
};

#define ROUNDS 10000

static int ponger(void *arg)
{
	struct pingpong *p = arg;
	for (int i = 0; i < ROUNDS; i++) {
		if (mp_event_wait(&p->ping, 10))
			return 1;
		mp_event_clear(&p->ping);
		p->count++;
		mp_event_set(&p->pong);
	}
	return 0;
}

TEST(event_ping_pong)
{
	struct pingpong *p = mp_shared_alloc(sizeof(*p));
	ASSERT_OK(mp_event_init(&p->ping));
	ASSERT_OK(mp_event_init(&p->pong));
	pid_t pid = test_fork(ponger, p);
	for (int i = 0; i < ROUNDS; i++) {
		ASSERT_OK(mp_event_set(&p->ping));
		ASSERT_OK(mp_event_wait(&p->pong, 10));
		ASSERT_OK(mp_event_clear(&p->pong));
		ASSERT_EQ(p->count, i + 1);
	}
	ASSERT_EQ(test_wait(pid), 0);
	mp_shared_free(p);
}

TEST_MAIN(T(event_bad_input), T(event_set_clear), T(event_timeout),
	  T(event_set_wakes_all_waiters),
	  T(event_set_then_clear_wakes_all_waiters),
	  T_TIMEOUT(event_ping_pong, 60))
