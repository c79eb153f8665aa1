/* SPDX-License-Identifier: MIT */
/* Pool completion callbacks, mp_pool_poll and mp_async_wait_any.  Tasks
 * block on pipes made before the pool (the workers inherit them), so the
 * test decides when each one finishes. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define NPIPES 4

static int gates[NPIPES][2];

static void gates_open(void)
{
	for (int i = 0; i < NPIPES; i++)
		ASSERT_OK(pipe(gates[i]));
}

static void release(int i)
{
	ASSERT_EQ(write(gates[i][1], "g", 1), 1);
}

/* Wait for its gate (arg[0]), then return arg[1] as its result, or die
 * when arg[1] < 0. */
static ssize_t gated(const void *arg, size_t len, void *out, size_t cap)
{
	int32_t a[2];
	char c;

	(void)len;
	(void)cap;
	memcpy(a, arg, sizeof(a));
	if (read(gates[a[0]][0], &c, 1) != 1)
		return -EIO;
	if (a[1] < 0)
		kill(getpid(), SIGKILL);
	memcpy(out, &a[1], sizeof(a[1]));
	return sizeof(a[1]);
}

static mp_async *submit(mp_pool *p, int gate, int32_t value)
{
	int32_t a[2] = {gate, value};
	mp_async *h = mp_pool_apply_async(p, gated, a, sizeof(a), 4);

	ASSERT_NOT_NULL(h);
	return h;
}

struct seen {
	int calls;
	mp_async *last;
	ssize_t result;
};

static void note(mp_async *a, void *ctx)
{
	struct seen *s = ctx;
	int32_t v = 0;

	s->calls++;
	s->last = a;
	/* Ready: get does not wait (timeout 0). */
	s->result = mp_async_get(a, &v, sizeof(v), 0);
	if (s->result == (ssize_t)sizeof(v))
		s->result = v;
}

TEST(pool_callback_runs_once_in_a_wait)
{
	gates_open();
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct seen s = {0};
	mp_async *a = submit(p, 0, 41);
	ASSERT_OK(mp_async_set_callback(a, note, &s));
	ASSERT_EQ(s.calls, 0);
	ASSERT_ERR(mp_async_wait(a, 0), -ETIMEDOUT);
	ASSERT_EQ(s.calls, 0);
	release(0);
	ASSERT_OK(mp_async_wait(a, MP_FOREVER));
	ASSERT_EQ(s.calls, 1);
	ASSERT(s.last == a);
	ASSERT_EQ(s.result, 41);
	ASSERT_OK(mp_async_wait(a, MP_FOREVER));
	ASSERT_EQ(mp_pool_poll(p, 0), 0);
	ASSERT_EQ(s.calls, 1);
	/* Already ready: at once. */
	struct seen t = {0};
	ASSERT_OK(mp_async_set_callback(a, note, &t));
	ASSERT_EQ(t.calls, 1);
	ASSERT_EQ(t.result, 41);
	ASSERT_ERR(mp_async_set_callback(NULL, note, &t), -EINVAL);
	mp_async_free(a);
	mp_pool_free(p);
}

TEST(pool_poll_runs_callbacks_as_tasks_finish)
{
	gates_open();
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct seen s = {0};
	mp_async *a = submit(p, 0, 1), *b = submit(p, 1, 2);
	ASSERT_OK(mp_async_set_callback(a, note, &s));
	ASSERT_OK(mp_async_set_callback(b, note, &s));
	ASSERT_EQ(mp_pool_poll(p, 0), 0);
	ASSERT_EQ(mp_pool_poll(p, 0.02), 0); /* nothing ready in time */
	release(1);
	ASSERT_EQ(mp_pool_poll(p, MP_FOREVER), 1);
	ASSERT_EQ(s.calls, 1);
	ASSERT(s.last == b);
	ASSERT_EQ(s.result, 2);
	release(0);
	ASSERT_EQ(mp_pool_poll(p, MP_FOREVER), 1);
	ASSERT_EQ(s.calls, 2);
	ASSERT(s.last == a);
	/* No callback pending: returns at once. */
	ASSERT_EQ(mp_pool_poll(p, MP_FOREVER), 0);
	ASSERT_ERR(mp_pool_poll(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_pool_poll(p, NAN), -EINVAL);
	mp_async_free(a);
	mp_async_free(b);
	mp_pool_free(p);
}

TEST(pool_wait_any_returns_the_ready_one)
{
	gates_open();
	mp_pool *p = mp_pool_new(3);
	ASSERT_NOT_NULL(p);
	mp_async *as[3] = {submit(p, 0, 10), submit(p, 1, 11),
			   submit(p, 2, 12)};
	ASSERT_ERR(mp_async_wait_any(as, 3, 0.02), -ETIMEDOUT);
	release(2);
	ASSERT_EQ(mp_async_wait_any(as, 3, MP_FOREVER), 2);
	ASSERT_EQ(mp_async_wait_any(as, 3, 0), 2);
	release(0);
	ASSERT_EQ(mp_async_wait_any(as, 2, MP_FOREVER), 0);
	ASSERT_ERR(mp_async_wait_any(as + 1, 1, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_async_wait_any(NULL, 3, 0), -EINVAL);
	ASSERT_ERR(mp_async_wait_any(as, 0, 0), -EINVAL);
	mp_async *holes[2] = {as[1], NULL};
	ASSERT_ERR(mp_async_wait_any(holes, 2, 0), -EINVAL);
	/* Handles of two pools cannot be waited for together. */
	mp_pool *q = mp_pool_new(1);
	ASSERT_NOT_NULL(q);
	mp_async *mixed[2] = {as[1], submit(q, 3, 13)};
	ASSERT_ERR(mp_async_wait_any(mixed, 2, 0), -EINVAL);
	release(3);
	ASSERT_EQ(mp_async_wait_any(mixed + 1, 1, MP_FOREVER), 0);
	mp_async_free(mixed[1]);
	mp_pool_free(q);
	release(1);
	ASSERT_EQ(mp_async_wait_any(as + 1, 1, MP_FOREVER), 0);
	for (int i = 0; i < 3; i++)
		mp_async_free(as[i]);
	mp_pool_free(p);
}

TEST(pool_callback_once_under_kills_and_terminate)
{
	gates_open();
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct seen dead = {0}, closed = {0};
	mp_async *a = submit(p, 0, -1); /* its worker dies */
	ASSERT_OK(mp_async_set_callback(a, note, &dead));
	release(0);
	ASSERT_OK(mp_async_wait(a, MP_FOREVER));
	ASSERT_EQ(dead.calls, 1);
	ASSERT_EQ(dead.result, MP_EWORKER);
	mp_async *b = submit(p, 1, 5); /* never released */
	mp_async *c = submit(p, 1, 6);
	ASSERT_OK(mp_async_set_callback(b, note, &closed));
	ASSERT_OK(mp_async_set_callback(c, note, &closed));
	ASSERT_OK(mp_pool_terminate(p));
	ASSERT_EQ(closed.calls, 2);
	ASSERT_EQ(closed.result, MP_ECLOSED);
	ASSERT_OK(mp_pool_join(p));
	mp_pool_free(p);
	ASSERT_EQ(dead.calls, 1);
	ASSERT_EQ(closed.calls, 2);
	mp_async_free(a);
	mp_async_free(b);
	mp_async_free(c);
}

static ssize_t twice(const void *arg, size_t len, void *out, size_t cap)
{
	(void)len;
	(void)cap;
	int32_t v;
	memcpy(&v, arg, sizeof(v));
	v *= 2;
	memcpy(out, &v, sizeof(v));
	return sizeof(v);
}

struct chain {
	mp_pool *p;
	int32_t got;
	int calls;
};

/* Calls back into the pool: runs a task and waits for it, then frees its
 * own handle. */
static void reenter(mp_async *a, void *ctx)
{
	struct chain *ch = ctx;
	int32_t v = 21;

	ch->calls++;
	ASSERT_EQ(mp_pool_apply(ch->p, twice, &v, sizeof(v), &ch->got,
				sizeof(ch->got)),
		  (ssize_t)sizeof(v));
	mp_async_free(a);
}

TEST(pool_callback_may_call_the_pool)
{
	gates_open();
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct chain ch = {.p = p};
	mp_async *a = submit(p, 0, 1);
	ASSERT_OK(mp_async_set_callback(a, reenter, &ch));
	struct seen s = {0};
	mp_async *b = submit(p, 1, 2);
	ASSERT_OK(mp_async_set_callback(b, note, &s));
	release(0);
	release(1);
	int ran = 0;
	while (ran < 2) {
		int r = mp_pool_poll(p, MP_FOREVER);
		ASSERT_CMP(r, >, 0);
		ran += r;
	}
	ASSERT_EQ(ran, 2);
	ASSERT_EQ(ch.calls, 1);
	ASSERT_EQ(ch.got, 42);
	ASSERT_EQ(s.calls, 1);
	ASSERT_EQ(s.result, 2);
	/* A freed handle's callback never runs. */
	struct seen never = {0};
	mp_async *c = submit(p, 2, 3);
	ASSERT_OK(mp_async_set_callback(c, note, &never));
	mp_async_free(c);
	release(2);
	int32_t v = 1, got;
	ASSERT_EQ(mp_pool_apply(p, twice, &v, sizeof(v), &got, sizeof(got)),
		  (ssize_t)sizeof(v));
	ASSERT_OK(mp_pool_close(p));
	ASSERT_OK(mp_pool_join(p));
	ASSERT_EQ(never.calls, 0);
	mp_async_free(b);
	mp_pool_free(p);
}

static int inc(const void *in, void *out)
{
	*(int32_t *)out = *(const int32_t *)in + 1;
	return 0;
}

TEST(pool_callback_on_map_async)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	int32_t in[100], out[100];
	for (int i = 0; i < 100; i++)
		in[i] = i;
	struct seen s = {0};
	mp_async *a = mp_pool_map_async(p, inc, in, sizeof(*in), out,
					sizeof(*out), 100, 0);
	ASSERT_NOT_NULL(a);
	ASSERT_OK(mp_async_set_callback(a, note, &s));
	while (s.calls == 0)
		ASSERT_CMP(mp_pool_poll(p, MP_FOREVER), >=, 0);
	ASSERT_EQ(s.calls, 1);
	ASSERT_EQ(s.result, 0);
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(out[i], i + 1);
	mp_async_free(a);
	mp_pool_free(p);
}

static _Atomic int *deaths_left;

/* Item 3 of each map kills its worker while deaths_left lasts. */
static int inc_or_die(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;

	if (v == 3 && atomic_fetch_sub(deaths_left, 1) > 0)
		kill(getpid(), SIGKILL);
	*(int32_t *)out = v + 1;
	return 0;
}

/* Under retries a killed chunk runs again: the callback still runs once,
 * with the map's success. */
TEST(pool_callback_once_under_retried_kills)
{
	deaths_left = mp_shared_alloc(64);
	ASSERT_NOT_NULL(deaths_left);
	atomic_store(deaths_left, 2);
	mp_pool_opts o = {.processes = 2, .retries = 2};
	mp_pool *p = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(p);
	int32_t in[8], out[8];
	for (int i = 0; i < 8; i++)
		in[i] = i;
	struct seen s[4] = {{0}};
	mp_async *a[4];
	for (int k = 0; k < 4; k++) {
		a[k] = mp_pool_map_async(p, inc_or_die, in, sizeof(*in), out,
					 sizeof(*out), 8, 1);
		ASSERT_NOT_NULL(a[k]);
		ASSERT_OK(mp_async_set_callback(a[k], note, &s[k]));
	}
	int ran = 0;
	while (ran < 4) {
		int r = mp_pool_poll(p, MP_FOREVER);
		ASSERT_CMP(r, >, 0);
		ran += r;
	}
	ASSERT_EQ(ran, 4);
	ASSERT_EQ(mp_pool_poll(p, 0), 0);
	for (int k = 0; k < 4; k++) {
		ASSERT_EQ(s[k].calls, 1);
		ASSERT_EQ(s[k].result, 0);
		mp_async_free(a[k]);
	}
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(out[i], i + 1);
	ASSERT_CMP(atomic_load(deaths_left), <=, 0);
	mp_pool_free(p);
}

TEST_MAIN(T(pool_callback_runs_once_in_a_wait),
	  T(pool_callback_once_under_retried_kills),
	  T(pool_poll_runs_callbacks_as_tasks_finish),
	  T(pool_wait_any_returns_the_ready_one),
	  T(pool_callback_once_under_kills_and_terminate),
	  T(pool_callback_may_call_the_pool), T(pool_callback_on_map_async))
