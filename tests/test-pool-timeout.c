/* SPDX-License-Identifier: MIT */
/* Pool task timeouts: a task running past opts.task_timeout has its worker
 * killed and replaced; the task fails with -ETIMEDOUT or runs again. */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "test.h"

#define N 64
#define VICTIM 37

/* Shared with the workers: runs of the victim, and how many of them are
 * to hang (forever: only the timeout ends them). */
static _Atomic uint32_t *runs;
static _Atomic uint32_t *hangs_left;

static void shared_setup(uint32_t hangs)
{
	runs = mp_shared_alloc(64);
	hangs_left = mp_shared_alloc(64);
	ASSERT_NOT_NULL(runs);
	ASSERT_NOT_NULL(hangs_left);
	atomic_store(hangs_left, hangs);
}

static void hang_if_asked(void)
{
	atomic_fetch_add(runs, 1);
	uint32_t left = atomic_load(hangs_left);
	while (left > 0)
		if (atomic_compare_exchange_weak(hangs_left, &left, left - 1))
			for (;;)
				pause();
}

static int square(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;

	if (v == VICTIM)
		hang_if_asked();
	*(int64_t *)out = (int64_t)v * v;
	return 0;
}

static mp_pool *timed_pool(double timeout, unsigned retries,
			   unsigned maxtasks)
{
	mp_pool_opts o = {.processes = 2,
			  .retries = retries,
			  .maxtasksperchild = maxtasks,
			  .task_timeout = timeout};
	mp_pool *p = mp_pool_new_opts(&o);

	ASSERT_NOT_NULL(p);
	return p;
}

/* Map N items one per chunk; return the map's result, errs filled. */
static int map_squares(mp_pool *p, int64_t *out, int *errs)
{
	int32_t in[N];

	for (int i = 0; i < N; i++)
		in[i] = i;
	memset(out, 0, N * sizeof(*out));
	return mp_pool_map_errors(p, square, in, sizeof(*in), out,
				  sizeof(*out), errs, N, 1);
}

static void check_all_but(const int64_t *out, const int *errs, int skip)
{
	for (int i = 0; i < N; i++) {
		if (i == skip)
			continue;
		ASSERT_EQ(errs[i], 0);
		ASSERT_EQ(out[i], (int64_t)i * i);
	}
}

TEST(pool_timeout_hung_task_fails_and_pool_goes_on)
{
	int64_t out[N];
	int errs[N];

	shared_setup(1);
	mp_pool *p = timed_pool(0.2, 0, 0);
	double t0 = test_now();
	ASSERT_ERR(map_squares(p, out, errs), -ETIMEDOUT);
	double took = test_now() - t0;
	ASSERT_EQ(errs[VICTIM], -ETIMEDOUT);
	ASSERT_EQ(atomic_load(runs), 1u);
	check_all_but(out, errs, VICTIM);
	ASSERT_CMP(took, >=, 0.2);
	ASSERT_CMP(took, <, 5.0 * test_timeout_mult());
	/* The worker was replaced: the next map runs on two workers. */
	ASSERT_OK(map_squares(p, out, errs));
	check_all_but(out, errs, -1);
	ASSERT_EQ(atomic_load(runs), 2u);
	pid_t pids[2];
	ASSERT_EQ(mp_pool_worker_pids(p, pids, 2), 2);
	ASSERT(pids[0] > 0 && pids[1] > 0);
	mp_pool_free(p);
	ASSERT_EQ(test_count_zombies(), 0);
}

TEST(pool_timeout_hang_once_succeeds_under_retries)
{
	int64_t out[N];
	int errs[N];

	shared_setup(1);
	mp_pool *p = timed_pool(0.2, 1, 0);
	ASSERT_OK(map_squares(p, out, errs));
	check_all_but(out, errs, -1);
	ASSERT_EQ(atomic_load(runs), 2u);
	mp_pool_free(p);
}

TEST(pool_timeout_retries_exhausted)
{
	int64_t out[N];
	int errs[N];

	shared_setup(100);
	mp_pool *p = timed_pool(0.1, 2, 0);
	ASSERT_ERR(map_squares(p, out, errs), -ETIMEDOUT);
	ASSERT_EQ(errs[VICTIM], -ETIMEDOUT);
	ASSERT_EQ(atomic_load(runs), 3u); /* 1 + retries */
	check_all_but(out, errs, VICTIM);
	mp_pool_free(p);
}

TEST(pool_timeout_with_maxtasksperchild)
{
	int64_t out[N];
	int errs[N];

	shared_setup(1);
	mp_pool *p = timed_pool(0.2, 0, 3);
	ASSERT_ERR(map_squares(p, out, errs), -ETIMEDOUT);
	check_all_but(out, errs, VICTIM);
	ASSERT_OK(map_squares(p, out, errs));
	check_all_but(out, errs, -1);
	mp_pool_free(p);
}

static ssize_t sleep_ms(const void *arg, size_t len, void *out, size_t cap)
{
	(void)len;
	(void)cap;
	int32_t ms = *(const int32_t *)arg;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	if (ms < 0) {
		for (;;)
			pause();
	}
	while (nanosleep(&ts, &ts) != 0)
		;
	memcpy(out, &ms, sizeof(ms));
	return sizeof(ms);
}

/* A task the length of the test's point (1 s) under a 5 s limit. */
TEST(pool_timeout_long_task_under_limit_is_not_killed)
{
	shared_setup(0);
	mp_pool *p = timed_pool(5.0, 0, 0);
	pid_t before[2], after[2];
	ASSERT_EQ(mp_pool_worker_pids(p, before, 2), 2);
	int32_t ms = 1000, got = 0;
	ASSERT_EQ(mp_pool_apply(p, sleep_ms, &ms, sizeof(ms), &got,
				sizeof(got)),
		  (ssize_t)sizeof(ms));
	ASSERT_EQ(got, 1000);
	/* Many short tasks too: the stamps of old tasks never count. */
	int64_t out[N];
	int errs[N];
	ASSERT_OK(map_squares(p, out, errs));
	check_all_but(out, errs, -1);
	ASSERT_EQ(mp_pool_worker_pids(p, after, 2), 2);
	ASSERT_EQ(before[0], after[0]);
	ASSERT_EQ(before[1], after[1]);
	mp_pool_free(p);
}

TEST(pool_timeout_apply_async_and_terminate)
{
	mp_pool *p = timed_pool(0.2, 0, 0);
	int32_t forever = -1, ms = 1;
	mp_async *a = mp_pool_apply_async(p, sleep_ms, &forever,
					  sizeof(forever), 4);
	mp_async *b = mp_pool_apply_async(p, sleep_ms, &ms, sizeof(ms), 4);
	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	int32_t got = 0;
	ASSERT_ERR(mp_async_get(a, &got, sizeof(got), MP_FOREVER), -ETIMEDOUT);
	ASSERT_EQ(mp_async_get(b, &got, sizeof(got), MP_FOREVER),
		  (ssize_t)sizeof(got));
	/* A hung task at terminate: it fails as closed, not timed out. */
	mp_async *c = mp_pool_apply_async(p, sleep_ms, &forever,
					  sizeof(forever), 4);
	ASSERT_NOT_NULL(c);
	ASSERT_ERR(mp_async_wait(c, 0.01), -ETIMEDOUT); /* the wait's own */
	ASSERT_OK(mp_pool_terminate(p));
	ASSERT_ERR(mp_async_get(c, &got, sizeof(got), 0), MP_ECLOSED);
	mp_async_free(a);
	mp_async_free(b);
	mp_async_free(c);
	mp_pool_free(p);
	ASSERT_EQ(test_count_zombies(), 0);
}

/* A caller that only polls mp_async_ready still sees the task time out
 * (the kill and the reaping happen in the poll). */
TEST(pool_timeout_seen_by_ready_polling)
{
	mp_pool *p = timed_pool(0.05, 0, 0);
	int32_t forever = -1, got;
	mp_async *a = mp_pool_apply_async(p, sleep_ms, &forever,
					  sizeof(forever), 4);
	ASSERT_NOT_NULL(a);
	while (!mp_async_ready(a))
		sched_yield();
	ASSERT_ERR(mp_async_get(a, &got, sizeof(got), 0), -ETIMEDOUT);
	mp_async_free(a);
	mp_pool_free(p);
}

TEST(pool_timeout_bad_values)
{
	mp_pool_opts o = {.processes = 1, .task_timeout = -1};
	errno = 0;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
	o.task_timeout = NAN;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
	o.task_timeout = 2e9;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
}

TEST_MAIN(T(pool_timeout_hung_task_fails_and_pool_goes_on),
	  T(pool_timeout_hang_once_succeeds_under_retries),
	  T(pool_timeout_retries_exhausted),
	  T(pool_timeout_with_maxtasksperchild),
	  T(pool_timeout_long_task_under_limit_is_not_killed),
	  T(pool_timeout_apply_async_and_terminate),
	  T(pool_timeout_seen_by_ready_polling),
	  T(pool_timeout_bad_values))
