/* SPDX-License-Identifier: MIT */
/* RLock: recursion, mutual exclusion between processes, owner death. */
#include "test.h"

/* Children start together, so that they really contend. */
static mp_event *go;

TEST(rlock_bad_input)
{
	ASSERT_ERR(mp_rlock_init(NULL), -EINVAL);
	ASSERT_ERR(mp_rlock_acquire(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_rlock_release(NULL), -EINVAL);
	ASSERT_ERR(mp_rlock_destroy(NULL), -EINVAL);
	mp_rlock_free(NULL);
	mp_rlock zeroed;
	memset(&zeroed, 0, sizeof(zeroed));
	ASSERT_ERR(mp_rlock_acquire(&zeroed, 0), -EINVAL);
	ASSERT_ERR(mp_rlock_release(&zeroed), -EINVAL);
	mp_rlock r;
	ASSERT_OK(mp_rlock_init(&r));
	ASSERT_ERR(mp_rlock_release(&r), -EPERM);
	ASSERT_OK(mp_rlock_acquire(&r, 0));
	ASSERT_ERR(mp_rlock_destroy(&r), -EBUSY);
	ASSERT_OK(mp_rlock_release(&r));
	ASSERT_OK(mp_rlock_destroy(&r));
	ASSERT_ERR(mp_rlock_acquire(&r, 0), -EINVAL);
}

static int try_once(void *arg)
{
	int r = mp_rlock_acquire(arg, 0);
	if (r == 0)
		mp_rlock_release(arg);
	return r == 0 ? 0 : r == -ETIMEDOUT ? 1 : 2;
}

TEST(rlock_recursion)
{
	mp_rlock *r = mp_rlock_new();
	ASSERT_NOT_NULL(r);
	for (int i = 0; i < 3; i++)
		ASSERT_OK(mp_rlock_acquire(r, 0));
	ASSERT_OK(mp_rlock_acquire(r, MP_FOREVER));
	/* Held four times: another process cannot get it until the last
	 * release. */
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(test_wait(test_fork(try_once, r)), 1);
		ASSERT_OK(mp_rlock_release(r));
	}
	ASSERT_EQ(test_wait(test_fork(try_once, r)), 1);
	ASSERT_OK(mp_rlock_release(r));
	ASSERT_ERR(mp_rlock_release(r), -EPERM);
	ASSERT_EQ(test_wait(test_fork(try_once, r)), 0);
	mp_rlock_free(r);
}

struct counter {
	mp_rlock lock;
	long value;
};

#define PROCS 6
#define ITERS 30000

static int add_nested(void *arg)
{
	if (mp_event_wait(go, 20))
		return 99;
	struct counter *c = arg;
	for (int i = 0; i < ITERS; i++) {
		if (mp_rlock_acquire(&c->lock, MP_FOREVER) ||
		    mp_rlock_acquire(&c->lock, MP_FOREVER))
			return 1;
		c->value++;
		if (mp_rlock_release(&c->lock) || mp_rlock_release(&c->lock))
			return 2;
	}
	return 0;
}

TEST(rlock_exact_count_processes)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_NOT_NULL(c);
	ASSERT_OK(mp_rlock_init(&c->lock));
	go = mp_event_new();
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_nested, c);
	ASSERT_OK(mp_event_set(go));
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

/* Take the rlock three times, say so, hold it until killed. */
static int hold_forever(void *arg)
{
	void **a = arg;
	mp_rlock *r = a[0];
	int fd = *(int *)a[1];
	for (int i = 0; i < 3; i++)
		if (mp_rlock_acquire(r, MP_FOREVER))
			return 1;
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return 2;
	for (;;)
		pause();
}

static int wait_for_rlock(void *arg)
{
	mp_rlock *r = arg;
	int err = mp_rlock_acquire(r, 30);
	if (err != 0 && err != -EOWNERDEAD)
		return 100;
	/* One release frees it: the count restarted at 1 on recovery. */
	if (mp_rlock_release(r))
		return 101;
	return err == -EOWNERDEAD ? 1 : 0;
}

TEST(rlock_owner_killed_while_others_wait)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_rlock *r = mp_rlock_new();
	void *args[2] = {r, &fds[1]};
	pid_t holder = test_fork(hold_forever, args);
	char ch;
	ASSERT_EQ(read(fds[0], &ch, 1), 1);
	ASSERT_ERR(mp_rlock_acquire(r, 0.05), -ETIMEDOUT);
	pid_t waiters[4];
	for (int i = 0; i < 4; i++)
		waiters[i] = test_fork(wait_for_rlock, r);
	double t0 = test_now();
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	int recovered = 0;
	for (int i = 0; i < 4; i++) {
		int st = test_wait(waiters[i]);
		ASSERT(st == 0 || st == 1);
		recovered += st;
	}
	ASSERT_EQ(recovered, 1);
	ASSERT(test_now() - t0 < 2.0 * test_timeout_mult());
	ASSERT_OK(mp_rlock_acquire(r, 0));
	ASSERT_OK(mp_rlock_release(r));
	mp_rlock_free(r);
}

TEST(rlock_timeout)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_rlock *r = mp_rlock_new();
	void *args[2] = {r, &fds[1]};
	pid_t holder = test_fork(hold_forever, args);
	char ch;
	ASSERT_EQ(read(fds[0], &ch, 1), 1);
	ASSERT_ERR(mp_rlock_acquire(r, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_rlock_acquire(r, 0.12), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.12);
	ASSERT(waited < 2.0 * test_timeout_mult());
	ASSERT_ERR(mp_rlock_release(r), -EPERM);
	kill(holder, SIGKILL);
	test_wait(holder);
	mp_rlock_free(r);
}

TEST_MAIN(T(rlock_bad_input), T(rlock_recursion),
	  T_TIMEOUT(rlock_exact_count_processes, 60),
	  T(rlock_owner_killed_while_others_wait), T(rlock_timeout))
