/* Lock: mutual exclusion between processes and threads, owner death. */
#include <pthread.h>

#include "test.h"

TEST(lock_bad_input)
{
	ASSERT_ERR(mp_lock_init(NULL), -EINVAL);
	ASSERT_ERR(mp_lock_acquire(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_lock_release(NULL), -EINVAL);
	ASSERT_ERR(mp_lock_destroy(NULL), -EINVAL);
	mp_lock zeroed;
	memset(&zeroed, 0, sizeof(zeroed));
	ASSERT_ERR(mp_lock_acquire(&zeroed, 0), -EINVAL); /* never init'ed */
	mp_lock l;
	ASSERT_OK(mp_lock_init(&l));
	ASSERT_ERR(mp_lock_release(&l), -EPERM);
	ASSERT_OK(mp_lock_acquire(&l, 0));
	ASSERT_ERR(mp_lock_acquire(&l, 0), -EDEADLK);
	ASSERT_ERR(mp_lock_acquire(&l, MP_FOREVER), -EDEADLK);
	ASSERT_ERR(mp_lock_destroy(&l), -EBUSY);
	ASSERT_OK(mp_lock_release(&l));
	ASSERT_ERR(mp_lock_release(&l), -EPERM);
	ASSERT_OK(mp_lock_destroy(&l));
	ASSERT_ERR(mp_lock_acquire(&l, 0), -EINVAL);
	mp_lock_free(NULL);
}

struct counter {
	mp_lock lock;
	long value;
};

#define PROCS 4
#define ITERS 100000

static int add_many(void *arg)
{
	struct counter *c = arg;
	for (int i = 0; i < ITERS; i++) {
		if (mp_lock_acquire(&c->lock, MP_FOREVER))
			return 1;
		c->value++;
		if (mp_lock_release(&c->lock))
			return 2;
	}
	return 0;
}

TEST(lock_exact_count_processes)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_lock_init(&c->lock));
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_many, c);
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

static void *add_many_thread(void *arg)
{
	return (void *)(intptr_t)add_many(arg);
}

TEST(lock_exact_count_threads)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_lock_init(&c->lock));
	pthread_t t[PROCS];
	for (int i = 0; i < PROCS; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, add_many_thread, c));
	for (int i = 0; i < PROCS; i++) {
		void *r;
		pthread_join(t[i], &r);
		ASSERT_EQ((intptr_t)r, 0);
	}
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

/* Take the lock, say so through the pipe, then hold it until killed. */
static int hold_forever(void *arg)
{
	void **a = arg;
	mp_lock *l = a[0];
	int fd = *(int *)a[1];
	if (mp_lock_acquire(l, MP_FOREVER))
		return 1;
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return 2;
	for (;;)
		pause();
}

static pid_t start_holder(mp_lock *l, int fds[2])
{
	void *args[2] = {l, &fds[1]};
	pid_t pid = test_fork(hold_forever, args);
	char c;
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	return pid;
}

TEST(lock_timeout)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	ASSERT_NOT_NULL(l);
	pid_t holder = start_holder(l, fds);
	ASSERT_ERR(mp_lock_acquire(l, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_lock_acquire(l, 0.15), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.15);
	ASSERT(waited < 5);
	ASSERT_ERR(mp_lock_release(l), -EPERM);
	kill(holder, SIGKILL);
	test_wait(holder);
	mp_lock_free(l);
}

static int wait_for_lock(void *arg)
{
	mp_lock *l = arg;
	int r = mp_lock_acquire(l, 30);
	if (r != 0 && r != -EOWNERDEAD)
		return 100;
	mp_lock_release(l);
	return r == -EOWNERDEAD ? 1 : 0;
}

/* The holder is SIGKILLed while others wait: exactly one waiter gets
 * -EOWNERDEAD, the others then get the lock as usual, and soon. */
TEST(lock_owner_killed_while_others_wait)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	pid_t holder = start_holder(l, fds);
	pid_t waiters[3];
	for (int i = 0; i < 3; i++)
		waiters[i] = test_fork(wait_for_lock, l);
	double t0 = test_now();
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	int recovered = 0;
	for (int i = 0; i < 3; i++) {
		int r = test_wait(waiters[i]);
		ASSERT(r == 0 || r == 1);
		recovered += r;
	}
	double took = test_now() - t0;
	ASSERT_EQ(recovered, 1);
	/* Detection is within one 40 ms sleep slice; leave room for load. */
	ASSERT(took < 2.0 * test_timeout_mult());
	/* And the lock is as good as new. */
	ASSERT_OK(mp_lock_acquire(l, 0));
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

TEST(lock_try_on_dead_owner_recovers)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	pid_t holder = start_holder(l, fds);
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	ASSERT_ERR(mp_lock_acquire(l, 0), -EOWNERDEAD);
	ASSERT_ERR(mp_lock_acquire(l, 0), -EDEADLK);
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

static int exit_holding(void *arg)
{
	return mp_lock_acquire(arg, MP_FOREVER) ? 1 : 0;
}

TEST(lock_owner_exits_normally_while_holding)
{
	mp_lock *l = mp_lock_new();
	pid_t p = test_fork(exit_holding, l);
	ASSERT_EQ(test_wait(p), 0);
	ASSERT_ERR(mp_lock_acquire(l, MP_FOREVER), -EOWNERDEAD);
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

TEST_MAIN(T(lock_bad_input), T_TIMEOUT(lock_exact_count_processes, 60),
	  T_TIMEOUT(lock_exact_count_threads, 60), T(lock_timeout),
	  T(lock_owner_killed_while_others_wait),
	  T(lock_try_on_dead_owner_recovers),
	  T(lock_owner_exits_normally_while_holding))
