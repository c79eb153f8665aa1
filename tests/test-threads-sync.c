/* SPDX-License-Identifier: MIT */
/*
 * The synchronization primitives from threads over the same shared memory:
 * ThreadSanitizer (make tsan) checks these for data races, which it cannot
 * do across processes.  Exact results, more threads than cores.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define THREADS 4

typedef void *(*thread_fn)(void *);

static void run_threads(int n, thread_fn fn, void *arg)
{
	pthread_t t[16];
	for (int i = 0; i < n; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, fn, arg));
	for (int i = 0; i < n; i++) {
		void *r;
		ASSERT_OK(pthread_join(t[i], &r));
		ASSERT_EQ((intptr_t)r, 0);
	}
}

/* RLock, nested, and Value's lock: exact counts. */
#define ITERS 20000

struct counted {
	mp_rlock rlock;
	long value;
};

static void *rlock_adder(void *arg)
{
	struct counted *c = arg;
	for (int i = 0; i < ITERS; i++) {
		if (mp_rlock_acquire(&c->rlock, MP_FOREVER) ||
		    mp_rlock_acquire(&c->rlock, MP_FOREVER))
			return (void *)1;
		c->value++;
		mp_rlock_release(&c->rlock);
		mp_rlock_release(&c->rlock);
	}
	return NULL;
}

TEST(threads_rlock_exact_count)
{
	struct counted *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_rlock_init(&c->rlock));
	run_threads(THREADS, rlock_adder, c);
	ASSERT_EQ(c->value, (long)THREADS * ITERS);
	mp_shared_free(c);
}

static void *value_adder(void *arg)
{
	mp_value *v = arg;
	long *n = mp_value_ptr(v);
	for (int i = 0; i < ITERS; i++) {
		if (mp_lock_acquire(mp_value_get_lock(v), MP_FOREVER))
			return (void *)1;
		(*n)++;
		mp_lock_release(mp_value_get_lock(v));
	}
	return NULL;
}

TEST(threads_value_exact_count)
{
	mp_value *v = mp_value_new(sizeof(long));
	run_threads(THREADS, value_adder, v);
	ASSERT_EQ(*(long *)mp_value_ptr(v), (long)THREADS * ITERS);
	mp_value_free(v);
}

/* Semaphore: at most LIMIT inside; a binary one as a mutex. */
#define LIMIT 2

struct admit {
	mp_semaphore sem;
	mp_semaphore mutex;
	_Atomic int holders;
	_Atomic int max_holders;
	long total;
};

static void *admitter(void *arg)
{
	struct admit *a = arg;
	for (int i = 0; i < ITERS / 4; i++) {
		if (mp_semaphore_acquire(&a->sem, MP_FOREVER))
			return (void *)1;
		int h = atomic_fetch_add(&a->holders, 1) + 1;
		int m = atomic_load(&a->max_holders);
		while (h > m && !atomic_compare_exchange_weak(&a->max_holders,
							      &m, h))
			;
		atomic_fetch_sub(&a->holders, 1);
		mp_semaphore_acquire(&a->mutex, MP_FOREVER);
		a->total++;
		mp_semaphore_release(&a->mutex);
		if (mp_semaphore_release(&a->sem))
			return (void *)2;
	}
	return NULL;
}

TEST(threads_semaphore)
{
	struct admit *a = mp_shared_alloc(sizeof(*a));
	ASSERT_OK(mp_semaphore_init_bounded(&a->sem, LIMIT));
	ASSERT_OK(mp_semaphore_init(&a->mutex, 1));
	run_threads(THREADS + 2, admitter, a);
	ASSERT_EQ(a->total, (long)(THREADS + 2) * (ITERS / 4));
	ASSERT(atomic_load(&a->max_holders) <= LIMIT);
	ASSERT_EQ(mp_semaphore_get_value(&a->sem), LIMIT);
	mp_shared_free(a);
}

/* Condition: a one-slot buffer, producers and consumers, notify(1). */
#define ITEMS 3000

struct slot {
	mp_condition cond;
	long item; /* 0 = empty */
	long sum;
	long taken;
};

static void *produce(void *arg)
{
	struct slot *s = arg;
	for (long i = 1; i <= ITEMS; i++) {
		mp_condition_acquire(&s->cond, MP_FOREVER);
		while (s->item)
			mp_condition_wait(&s->cond, MP_FOREVER);
		s->item = i;
		mp_condition_notify_all(&s->cond);
		mp_condition_release(&s->cond);
	}
	return NULL;
}

static bool slot_full_or_done(void *arg)
{
	struct slot *s = arg;
	return s->item || s->taken == 2L * ITEMS;
}

static void *consume(void *arg)
{
	struct slot *s = arg;
	for (;;) {
		mp_condition_acquire(&s->cond, MP_FOREVER);
		if (mp_condition_wait_for(&s->cond, slot_full_or_done, s,
					  MP_FOREVER))
			return (void *)1;
		if (!s->item) {
			mp_condition_release(&s->cond);
			return NULL;
		}
		s->sum += s->item;
		s->item = 0;
		s->taken++;
		mp_condition_notify_all(&s->cond);
		mp_condition_release(&s->cond);
	}
}

static void *produce_or_consume(void *arg)
{
	static _Atomic int n;
	return atomic_fetch_add(&n, 1) % 2 ? produce(arg) : consume(arg);
}

TEST(threads_condition_producer_consumer)
{
	struct slot *s = mp_shared_alloc(sizeof(*s));
	ASSERT_OK(mp_condition_init(&s->cond, NULL));
	run_threads(4, produce_or_consume, s); /* 2 producers, 2 consumers */
	ASSERT_EQ(s->taken, 2L * ITEMS);
	ASSERT_EQ(s->sum, 2L * ITEMS * (ITEMS + 1) / 2);
	mp_shared_free(s);
}

/* Event: ping-pong with clears, and set() waking every waiter. */
#define ROUNDS 3000

struct pingpong {
	mp_event ping;
	mp_event pong;
	long count;
};

static void *ponger(void *arg)
{
	struct pingpong *p = arg;
	for (int i = 0; i < ROUNDS; i++) {
		if (mp_event_wait(&p->ping, 20))
			return (void *)1;
		mp_event_clear(&p->ping);
		p->count++;
		mp_event_set(&p->pong);
	}
	return NULL;
}

TEST(threads_event_ping_pong)
{
	struct pingpong *p = mp_shared_alloc(sizeof(*p));
	ASSERT_OK(mp_event_init(&p->ping));
	ASSERT_OK(mp_event_init(&p->pong));
	pthread_t t;
	ASSERT_OK(pthread_create(&t, NULL, ponger, p));
	for (int i = 0; i < ROUNDS; i++) {
		ASSERT_OK(mp_event_set(&p->ping));
		ASSERT_OK(mp_event_wait(&p->pong, 20));
		mp_event_clear(&p->pong);
		ASSERT_EQ(p->count, i + 1);
	}
	void *r;
	pthread_join(t, &r);
	ASSERT_EQ((intptr_t)r, 0);
	mp_shared_free(p);
}

struct broadcast {
	mp_event event;
	long data;
	_Atomic int woke;
};

static void *await_data(void *arg)
{
	struct broadcast *b = arg;
	if (mp_event_wait(&b->event, 20))
		return (void *)1;
	if (b->data != 42) /* written before set(): visible after wait() */
		return (void *)2;
	atomic_fetch_add(&b->woke, 1);
	return NULL;
}

static void *publish(void *arg)
{
	struct broadcast *b = arg;
	b->data = 42;
	mp_event_set(&b->event);
	return NULL;
}

TEST(threads_event_wakes_all)
{
	struct broadcast *b = mp_shared_alloc(sizeof(*b));
	ASSERT_OK(mp_event_init(&b->event));
	pthread_t t[THREADS + 1];
	for (int i = 0; i < THREADS; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, await_data, b));
	ASSERT_OK(pthread_create(&t[THREADS], NULL, publish, b));
	for (int i = 0; i <= THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		ASSERT_EQ((intptr_t)r, 0);
	}
	ASSERT_EQ(atomic_load(&b->woke), THREADS);
	mp_shared_free(b);
}

/* Barrier: a permutation of indices each round; data written before a
 * round is visible to all after it. */
#define BROUNDS 200

struct rounds {
	mp_barrier barrier;
	_Atomic int next_id;
	int written[THREADS];
	int index_seen[BROUNDS][THREADS];
	mp_lock lock;
};

static void *barrier_party(void *arg)
{
	struct rounds *r = arg;
	int me = atomic_fetch_add(&r->next_id, 1);
	for (int round = 0; round < BROUNDS; round++) {
		r->written[me] = round;
		int idx = mp_barrier_wait(&r->barrier, 20);
		if (idx < 0 || idx >= THREADS)
			return (void *)1;
		for (int p = 0; p < THREADS; p++)
			if (r->written[p] < round)
				return (void *)2;
		mp_lock_acquire(&r->lock, MP_FOREVER);
		r->index_seen[round][idx]++;
		mp_lock_release(&r->lock);
		/* Nobody writes `written` again before all have read it. */
		if (mp_barrier_wait(&r->barrier, 20) < 0)
			return (void *)3;
	}
	return NULL;
}

TEST(threads_barrier_rounds)
{
	struct rounds *r = mp_shared_alloc(sizeof(*r));
	ASSERT_OK(mp_barrier_init(&r->barrier, THREADS));
	ASSERT_OK(mp_lock_init(&r->lock));
	run_threads(THREADS, barrier_party, r);
	for (int round = 0; round < BROUNDS; round++)
		for (int i = 0; i < THREADS; i++)
			ASSERT_EQ(r->index_seen[round][i], 1);
	mp_shared_free(r);
}

static void *abort_waiter(void *arg)
{
	return (void *)(intptr_t)(mp_barrier_wait(arg, 20) != MP_EBROKEN);
}

TEST(threads_barrier_abort)
{
	mp_barrier *b = mp_barrier_new(THREADS + 1);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, abort_waiter, b));
	while (mp_barrier_n_waiting(b) != THREADS)
		sched_yield();
	ASSERT_OK(mp_barrier_abort(b));
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		ASSERT_EQ((intptr_t)r, 0);
	}
	mp_barrier_free(b);
}

TEST_MAIN(T_TIMEOUT(threads_rlock_exact_count, 60),
	  T_TIMEOUT(threads_value_exact_count, 60),
	  T_TIMEOUT(threads_semaphore, 60),
	  T_TIMEOUT(threads_condition_producer_consumer, 60),
	  T_TIMEOUT(threads_event_ping_pong, 60), T(threads_event_wakes_all),
	  T_TIMEOUT(threads_barrier_rounds, 60), T(threads_barrier_abort))
