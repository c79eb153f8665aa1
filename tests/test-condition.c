/* SPDX-License-Identifier: MIT */
/* Condition: wait/notify between processes, no lost wake-ups, owner death. */
#include <sched.h>

#include "test.h"

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static bool always(void *arg)
{
	(void)arg;
	return true;
}

TEST(condition_bad_input)
{
	ASSERT_ERR(mp_condition_init(NULL, NULL), -EINVAL);
	ASSERT_ERR(mp_condition_wait(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_condition_wait_for(NULL, always, NULL, 0), -EINVAL);
	ASSERT_ERR(mp_condition_notify(NULL, 1), -EINVAL);
	ASSERT_ERR(mp_condition_notify_all(NULL), -EINVAL);
	ASSERT_ERR(mp_condition_acquire(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_condition_release(NULL), -EINVAL);
	ASSERT_ERR(mp_condition_destroy(NULL), -EINVAL);
	ASSERT(mp_condition_get_lock(NULL) == NULL);
	mp_condition_free(NULL);

	mp_lock bad;
	memset(&bad, 0, sizeof(bad));
	mp_condition c;
	ASSERT_ERR(mp_condition_init(&c, &bad), -EINVAL);
	errno = 0;
	ASSERT(mp_condition_new(&bad) == NULL);
	ASSERT_EQ(errno, EINVAL);

	mp_condition *cv = mp_condition_new(NULL);
	ASSERT_NOT_NULL(cv);
	ASSERT_NOT_NULL(mp_condition_get_lock(cv));
	/* Not holding the lock. */
	ASSERT_ERR(mp_condition_wait(cv, 0), -EPERM);
	ASSERT_ERR(mp_condition_wait_for(cv, always, NULL, 0), -EPERM);
	ASSERT_ERR(mp_condition_release(cv), -EPERM);
	ASSERT_ERR(mp_condition_notify(cv, -1), -EINVAL);
	ASSERT_OK(mp_condition_notify(cv, 0));
	ASSERT_OK(mp_condition_notify(cv, 1));
	ASSERT_OK(mp_condition_notify_all(cv));
	ASSERT_OK(mp_condition_acquire(cv, 0));
	ASSERT_ERR(mp_condition_wait_for(cv, NULL, NULL, 0), -EINVAL);
	ASSERT_OK(mp_condition_wait_for(cv, always, NULL, 0));
	ASSERT_OK(mp_condition_release(cv));
	ASSERT_OK(mp_condition_destroy(cv));
	ASSERT_ERR(mp_condition_wait(cv, 0), -EINVAL);
	mp_shared_free(cv);
}

TEST(condition_timeouts)
{
	mp_lock *l = mp_lock_new();
	mp_condition *c = mp_condition_new(l);
	ASSERT(mp_condition_get_lock(c) == l);
	ASSERT_OK(mp_lock_acquire(l, 0));
	ASSERT_ERR(mp_condition_wait(c, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_condition_wait(c, 0.12), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.12);
	ASSERT(waited < 0.12 + 1.0 * test_timeout_mult());
	t0 = test_now();
	ASSERT_ERR(mp_condition_wait_for(c, never, NULL, 0.12), -ETIMEDOUT);
	waited = test_now() - t0;
	ASSERT(waited >= 0.12);
	ASSERT(waited < 0.12 + 1.0 * test_timeout_mult());
	/* The lock is held again after a timeout. */
	ASSERT_OK(mp_lock_release(l));
	ASSERT_ERR(mp_lock_release(l), -EPERM);
	mp_condition_free(c);
	mp_lock_free(l);
}

/*
 * A bounded buffer of 2 slots, two conditions over one lock, more
 * producers and consumers than cores, notify(1) only: a lost wake-up
 * leaves someone asleep for good and the watchdog fails the case.
 */
#define SLOTS 2
#define PRODUCERS 3
#define CONSUMERS 3
#define ITEMS 5000
#define DONE (-1L)

struct buffer {
	mp_lock lock;
	mp_condition not_empty;
	mp_condition not_full;
	long slot[SLOTS];
	unsigned head, count;
	long sum;      /* of every item consumed */
	long consumed;
};

static void put(struct buffer *b, long item)
{
	mp_lock_acquire(&b->lock, MP_FOREVER);
	while (b->count == SLOTS)
		mp_condition_wait(&b->not_full, MP_FOREVER);
	b->slot[(b->head + b->count) % SLOTS] = item;
	b->count++;
	mp_condition_notify(&b->not_empty, 1);
	mp_lock_release(&b->lock);
}

static long get(struct buffer *b)
{
	mp_lock_acquire(&b->lock, MP_FOREVER);
	while (b->count == 0)
		mp_condition_wait(&b->not_empty, MP_FOREVER);
	long item = b->slot[b->head];
	b->head = (b->head + 1) % SLOTS;
	b->count--;
	if (item != DONE) {
		b->sum += item;
		b->consumed++;
	}
	mp_condition_notify(&b->not_full, 1);
	mp_lock_release(&b->lock);
	return item;
}

static int producer(void *arg)
{
	for (long i = 1; i <= ITEMS; i++)
		put(arg, i);
	return 0;
}

static int consumer(void *arg)
{
	while (get(arg) != DONE)
		;
	return 0;
}

TEST(condition_producer_consumer_no_lost_wakeups)
{
	struct buffer *b = mp_shared_alloc(sizeof(*b));
	ASSERT_OK(mp_lock_init(&b->lock));
	ASSERT_OK(mp_condition_init(&b->not_empty, &b->lock));
	ASSERT_OK(mp_condition_init(&b->not_full, &b->lock));
	pid_t prod[PRODUCERS], cons[CONSUMERS];
	for (int i = 0; i < CONSUMERS; i++)
		cons[i] = test_fork(consumer, b);
	for (int i = 0; i < PRODUCERS; i++)
		prod[i] = test_fork(producer, b);
	for (int i = 0; i < PRODUCERS; i++)
		ASSERT_EQ(test_wait(prod[i]), 0);
	for (int i = 0; i < CONSUMERS; i++)
		put(b, DONE);
	for (int i = 0; i < CONSUMERS; i++)
		ASSERT_EQ(test_wait(cons[i]), 0);
	ASSERT_EQ(b->consumed, (long)PRODUCERS * ITEMS);
	ASSERT_EQ(b->sum, (long)PRODUCERS * ITEMS * (ITEMS + 1) / 2);
	ASSERT_EQ(b->count, 0);
	ASSERT_OK(mp_condition_destroy(&b->not_empty));
	ASSERT_OK(mp_condition_destroy(&b->not_full));
	mp_shared_free(b);
}

/* notify_all releases every waiter of a wait_for. */
struct gate {
	mp_condition cond;
	int open;
	int waiting;
};

static bool gate_open(void *arg)
{
	return ((struct gate *)arg)->open;
}

static int wait_gate(void *arg)
{
	struct gate *g = arg;
	if (mp_condition_acquire(&g->cond, MP_FOREVER))
		return 1;
	g->waiting++;
	int err = mp_condition_wait_for(&g->cond, gate_open, g, 20);
	if (mp_condition_release(&g->cond))
		return 2;
	return err ? 3 : 0;
}

#define GATE_WAITERS 8

TEST(condition_notify_all_wakes_all)
{
	struct gate *g = mp_shared_alloc(sizeof(*g));
	ASSERT_OK(mp_condition_init(&g->cond, NULL));
	pid_t pids[GATE_WAITERS];
	for (int i = 0; i < GATE_WAITERS; i++)
		pids[i] = test_fork(wait_gate, g);
	for (;;) {
		ASSERT_OK(mp_condition_acquire(&g->cond, MP_FOREVER));
		if (g->waiting == GATE_WAITERS)
			break;
		ASSERT_OK(mp_condition_release(&g->cond));
		sched_yield();
	}
	/* Everyone has released the lock in wait_for: they sleep. */
	g->open = 1;
	ASSERT_OK(mp_condition_notify_all(&g->cond));
	ASSERT_OK(mp_condition_release(&g->cond));
	for (int i = 0; i < GATE_WAITERS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	mp_shared_free(g);
}

/* notify(n) wakes at least n sleepers: release them in batches. */
TEST(condition_notify_n)
{
	struct gate *g = mp_shared_alloc(sizeof(*g));
	ASSERT_OK(mp_condition_init(&g->cond, NULL));
	pid_t pids[GATE_WAITERS];
	for (int i = 0; i < GATE_WAITERS; i++)
		pids[i] = test_fork(wait_gate, g);
	int released = 0;
	while (released < GATE_WAITERS) {
		ASSERT_OK(mp_condition_acquire(&g->cond, MP_FOREVER));
		if (g->waiting == GATE_WAITERS) {
			g->open = 1;
			ASSERT_OK(mp_condition_notify(&g->cond, 3));
			released += 3;
		}
		ASSERT_OK(mp_condition_release(&g->cond));
		sched_yield();
	}
	for (int i = 0; i < GATE_WAITERS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	mp_shared_free(g);
}

/* The lock's holder dies while a waiter wants the lock back. */
struct dead {
	mp_condition cond;
	int ready;
};

static int wait_then_report(void *arg)
{
	struct dead *d = arg;
	if (mp_condition_acquire(&d->cond, MP_FOREVER))
		return 1;
	d->ready = 1;
	int err = mp_condition_wait(&d->cond, 20);
	if (err != -EOWNERDEAD)
		return 2;
	/* We hold the lock after -EOWNERDEAD. */
	return mp_condition_release(&d->cond) ? 3 : 0;
}

static int notify_and_hold(void *arg)
{
	void **a = arg;
	struct dead *d = a[0];
	int fd = *(int *)a[1];
	if (mp_condition_acquire(&d->cond, MP_FOREVER))
		return 1;
	mp_condition_notify_all(&d->cond);
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return 2;
	for (;;)
		pause();
}

TEST(condition_lock_owner_dies_during_wait)
{
	struct dead *d = mp_shared_alloc(sizeof(*d));
	ASSERT_OK(mp_condition_init(&d->cond, NULL));
	pid_t waiter = test_fork(wait_then_report, d);
	for (;;) {
		ASSERT_OK(mp_condition_acquire(&d->cond, MP_FOREVER));
		int ready = d->ready;
		ASSERT_OK(mp_condition_release(&d->cond));
		if (ready)
			break;
		sched_yield();
	}
	int fds[2];
	ASSERT_OK(pipe(fds));
	void *args[2] = {d, &fds[1]};
	pid_t holder = test_fork(notify_and_hold, args);
	char c;
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	ASSERT_EQ(test_wait(waiter), 0);
	mp_shared_free(d);
}

TEST_MAIN(T(condition_bad_input), T(condition_timeouts),
	  T_TIMEOUT(condition_producer_consumer_no_lost_wakeups, 60),
	  T(condition_notify_all_wakes_all), T(condition_notify_n),
	  T(condition_lock_owner_dies_during_wait))
