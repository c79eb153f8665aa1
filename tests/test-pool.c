/* SPDX-License-Identifier: MIT */
/* Pool: every API with exact results, bad inputs, item errors, options. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

static int square(const void *in, void *out)
{
	int64_t v = *(const int32_t *)in;
	*(int64_t *)out = v * v + 1;
	return 0;
}

static void check_squares(const int64_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] != (int64_t)i * (int64_t)i + 1)
			FAIL("out[%zu] = %lld", i, (long long)out[i]);
}

static int32_t *iota(size_t n)
{
	int32_t *in = malloc(n * sizeof(*in) + 1);
	for (size_t i = 0; i < n; i++)
		in[i] = (int32_t)i;
	return in;
}

TEST(pool_map_chunksizes)
{
	size_t n = 10007;
	int32_t *in = iota(n);
	int64_t *out = malloc(n * sizeof(*out));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	ASSERT_EQ(mp_pool_processes(pool), 2);
	size_t sizes[] = {1, 0, 7, n, n + 100};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		memset(out, 0xff, n * sizeof(*out));
		ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
				      sizeof(*out), n, sizes[k]));
		check_squares(out, n);
	}
	/* n = 1 and n = 0 */
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
			      sizeof(*out), 1, 0));
	check_squares(out, 1);
	ASSERT_OK(mp_pool_map(pool, square, NULL, sizeof(*in), NULL,
			      sizeof(*out), 0, 0));
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
			      sizeof(*out), 0, 1));
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
}

struct big_in {
	int32_t a;
	char pad[20];
};

struct big_out {
	int64_t sum;
	char text[32];
};

static int big_fn(const void *in, void *out)
{
	const struct big_in *i = in;
	struct big_out *o = out;
	o->sum = (int64_t)i->a * 3;
	snprintf(o->text, sizeof(o->text), "item %d", (int)i->a);
	return 0;
}

static int no_output(const void *in, void *out)
{
	(void)out;
	return *(const int32_t *)in == 42 ? 7 : 0;
}

TEST(pool_map_sizes)
{
	size_t n = 333;
	struct big_in *in = calloc(n, sizeof(*in));
	struct big_out *out = calloc(n, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		in[i].a = (int32_t)i;
	mp_pool *pool = mp_pool_new(3);
	ASSERT_NOT_NULL(pool);
	ASSERT_OK(mp_pool_map(pool, big_fn, in, sizeof(*in), out,
			      sizeof(*out), n, 5));
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "item %d", (int)i);
		ASSERT_EQ(out[i].sum, 3 * (int64_t)i);
		ASSERT(strcmp(out[i].text, want) == 0);
	}
	/* No output at all: out_size 0, out NULL. */
	int32_t *ins = iota(100);
	ASSERT_EQ(mp_pool_map(pool, no_output, ins, sizeof(*ins), NULL, 0,
			      100, 0),
		  7);
	ASSERT_OK(mp_pool_map(pool, no_output, ins, sizeof(*ins), NULL, 0, 40,
			      0));
	mp_pool_free(pool);
	free(in);
	free(out);
	free(ins);
}

static int odd_fails(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	*(int32_t *)out = v * 2;
	if (v % 7 == 3)
		return -(1000 + v);
	return 0;
}

TEST(pool_map_item_errors)
{
	size_t n = 1000;
	int32_t *in = iota(n);
	int32_t *out = calloc(n, sizeof(*out));
	int *errs = calloc(n, sizeof(*errs));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	size_t sizes[] = {1, 0, 64, 5000};
	for (size_t k = 0; k < 4; k++) {
		memset(out, 0, n * sizeof(*out));
		ASSERT_EQ(mp_pool_map(pool, odd_fails, in, sizeof(*in), out,
				      sizeof(*out), n, sizes[k]),
			  -1003);
		for (size_t i = 0; i < n; i++)
			ASSERT_EQ(out[i], 2 * (int32_t)i);
		ASSERT_EQ(mp_pool_map_errors(pool, odd_fails, in, sizeof(*in),
					     out, sizeof(*out), errs, n,
					     sizes[k]),
			  -1003);
		for (size_t i = 0; i < n; i++)
			ASSERT_EQ(errs[i], i % 7 == 3 ? -(1000 + (int)i) : 0);
	}
	/* The first error is the lowest index even when later chunks fail
	 * first: start at item 4. */
	ASSERT_EQ(mp_pool_map(pool, odd_fails, in + 4, sizeof(*in), out,
			      sizeof(*out), n - 4, 1),
		  -1010);
	mp_pool_free(pool);
	free(in);
	free(out);
	free(errs);
}

static ssize_t echo_rev(const void *arg, size_t len, void *out, size_t cap)
{
	const char *a = arg;
	char *o = out;
	if (len > cap)
		return -E2BIG;
	for (size_t i = 0; i < len; i++)
		o[i] = a[len - 1 - i];
	return (ssize_t)len;
}

static ssize_t lies(const void *arg, size_t len, void *out, size_t cap)
{
	(void)arg;
	(void)len;
	(void)out;
	return (ssize_t)cap + 1;
}

TEST(pool_bad_inputs)
{
	int32_t in[4] = {0};
	int64_t out[4];
	errno = 0;
	ASSERT(mp_pool_new(-1) == NULL);
	ASSERT_EQ(errno, EINVAL);
	mp_pool_opts o = {.processes = 100000};
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_pool_map(NULL, square, in, 4, out, 8, 4, 0), -EINVAL);
	mp_pool *pool = mp_pool_new(1);
	ASSERT_NOT_NULL(pool);
	ASSERT_ERR(mp_pool_map(pool, NULL, in, 4, out, 8, 4, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, square, NULL, 4, out, 8, 4, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, square, in, 4, NULL, 8, 4, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, square, in, SIZE_MAX / 2, out, 8, 4, 0),
		   -EINVAL);
	ASSERT_ERR(mp_pool_map_errors(pool, square, in, 4, out, 8, NULL, 4,
				      0),
		   -EINVAL);
	ASSERT(mp_pool_imap(NULL, square, in, 4, 8, 4, 0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_pool_apply_async(pool, NULL, NULL, 0, 0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_pool_apply_async(pool, echo_rev, NULL, 3, 0) == NULL);
	ASSERT_ERR(mp_imap_next(NULL, NULL, NULL, 0), -EINVAL);
	ASSERT_ERR(mp_async_wait(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_async_get(NULL, NULL, 0, 0), -EINVAL);
	ASSERT(!mp_async_ready(NULL));
	ASSERT_ERR(mp_pool_join(pool), MP_ESTATE);
	ASSERT_ERR(mp_pool_close(NULL), -EINVAL);
	ASSERT_ERR(mp_pool_join(NULL), -EINVAL);
	ASSERT_ERR(mp_pool_terminate(NULL), -EINVAL);
	/* A result longer than its capacity fails the task. */
	char buf[8];
	ASSERT_ERR(mp_pool_apply(pool, lies, NULL, 0, buf, sizeof(buf)),
		   -EOVERFLOW);
	ASSERT_OK(mp_pool_close(pool));
	ASSERT_ERR(mp_pool_map(pool, square, in, 4, out, 8, 4, 0), MP_ESTATE);
	ASSERT(mp_pool_apply_async(pool, echo_rev, "x", 1, 1) == NULL);
	ASSERT_EQ(errno, -MP_ESTATE);
	ASSERT_OK(mp_pool_join(pool));
	ASSERT_OK(mp_pool_join(pool));
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	mp_pool_free(NULL);
	mp_async_free(NULL);
	mp_imap_free(NULL);
}

TEST(pool_imap_ordered)
{
	size_t n = 5003;
	int32_t *in = iota(n);
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	size_t sizes[] = {1, 0, 100, n * 2};
	for (size_t k = 0; k < 4; k++) {
		mp_imap *it = mp_pool_imap(pool, odd_fails, in, sizeof(*in),
					   sizeof(int32_t), n, sizes[k]);
		ASSERT_NOT_NULL(it);
		size_t idx, count = 0;
		int32_t v;
		int r;
		while ((r = mp_imap_next(it, &idx, &v, MP_FOREVER)) !=
		       MP_ECLOSED) {
			ASSERT_EQ(idx, count);
			ASSERT_EQ(v, 2 * (int32_t)idx);
			ASSERT_EQ(r, idx % 7 == 3 ? -(1000 + (int)idx) : 0);
			count++;
		}
		ASSERT_EQ(count, n);
		ASSERT_EQ(idx, SIZE_MAX);
		ASSERT_ERR(mp_imap_next(it, &idx, &v, 0), MP_ECLOSED);
		mp_imap_free(it);
	}
	/* Empty, and freed before it is drained. */
	mp_imap *it = mp_pool_imap(pool, odd_fails, in, 4, 4, 0, 0);
	ASSERT_NOT_NULL(it);
	ASSERT_ERR(mp_imap_next(it, NULL, NULL, MP_FOREVER), MP_ECLOSED);
	mp_imap_free(it);
	it = mp_pool_imap(pool, odd_fails, in, 4, 4, n, 1);
	ASSERT_NOT_NULL(it);
	ASSERT_OK(mp_imap_next(it, NULL, NULL, MP_FOREVER));
	mp_imap_free(it);
	int64_t *out = malloc(n * sizeof(*out));
	ASSERT_OK(mp_pool_map(pool, square, in, 4, out, 8, n, 0));
	check_squares(out, n);
	mp_pool_free(pool);
	free(in);
	free(out);
}

TEST(pool_imap_unordered)
{
	size_t n = 4099;
	int32_t *in = iota(n);
	uint8_t *seen = calloc(n, 1);
	mp_pool *pool = mp_pool_new(3);
	ASSERT_NOT_NULL(pool);
	size_t sizes[] = {1, 0, 17, n + 1};
	for (size_t k = 0; k < 4; k++) {
		memset(seen, 0, n);
		mp_imap *it = mp_pool_imap_unordered(pool, odd_fails, in,
						     sizeof(*in),
						     sizeof(int32_t), n,
						     sizes[k]);
		ASSERT_NOT_NULL(it);
		size_t idx, count = 0;
		int32_t v;
		int r;
		while ((r = mp_imap_next(it, &idx, &v, MP_FOREVER)) !=
		       MP_ECLOSED) {
			ASSERT_CMP(idx, <, n);
			ASSERT_EQ(seen[idx], 0);
			seen[idx] = 1;
			ASSERT_EQ(v, 2 * (int32_t)idx);
			ASSERT_EQ(r, idx % 7 == 3 ? -(1000 + (int)idx) : 0);
			count++;
		}
		ASSERT_EQ(count, n);
		mp_imap_free(it);
	}
	mp_pool_free(pool);
	free(in);
	free(seen);
}

/* A gate in shared memory: tasks wait until the test opens it. */
static _Atomic uint32_t *gate;
static _Atomic uint32_t *entered;

static void gate_setup(void)
{
	gate = mp_shared_alloc(64);
	entered = mp_shared_alloc(64);
	ASSERT_NOT_NULL(gate);
	ASSERT_NOT_NULL(entered);
}

static void gate_wait(void)
{
	atomic_fetch_add(entered, 1);
	while (!atomic_load(gate))
		sched_yield();
}

static ssize_t gated_echo(const void *arg, size_t len, void *out, size_t cap)
{
	gate_wait();
	return echo_rev(arg, len, out, cap);
}

static int gated_square(const void *in, void *out)
{
	gate_wait();
	return square(in, out);
}

TEST(pool_apply_async_sizes)
{
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	/* More than MP_POOL_MAX_JOBS in flight: the ring wraps. */
	enum { N = 3000 };
	mp_async **a = calloc(N, sizeof(*a));
	char arg[600], res[600];
	for (int i = 0; i < N; i++) {
		size_t len = (size_t)(i % 600);
		for (size_t k = 0; k < len; k++)
			arg[k] = (char)(i + (int)k);
		/* Every 10th gets too small a result buffer: -E2BIG. */
		size_t cap = i % 10 == 9 ? len / 2 : len;
		a[i] = mp_pool_apply_async(pool, echo_rev, arg, len, cap);
		ASSERT_NOT_NULL(a[i]);
	}
	for (int i = N - 1; i >= 0; i--) {
		size_t len = (size_t)(i % 600);
		ssize_t r = mp_async_get(a[i], res, sizeof(res), MP_FOREVER);
		if (i % 10 == 9 && len > 1) {
			ASSERT_ERR(r, -E2BIG);
			continue;
		}
		ASSERT_EQ(r, (ssize_t)len);
		for (size_t k = 0; k < len; k++)
			ASSERT_EQ(res[len - 1 - k], (char)(i + (int)k));
		ASSERT(mp_async_ready(a[i]));
		if (len > 1)
			ASSERT_ERR(mp_async_get(a[i], res, len - 1, 0),
				   -EMSGSIZE);
		ASSERT_EQ(mp_async_get(a[i], res, len, 0), (ssize_t)len);
	}
	for (int i = 0; i < N; i++)
		mp_async_free(a[i]);
	/* Free some before they finish. */
	for (int i = 0; i < 100; i++)
		mp_async_free(mp_pool_apply_async(pool, echo_rev, "abc", 3, 3));
	char out[8];
	ASSERT_EQ(mp_pool_apply(pool, echo_rev, "abc", 3, out, 8), 3);
	ASSERT(memcmp(out, "cba", 3) == 0);
	ASSERT_EQ(mp_pool_apply(pool, echo_rev, NULL, 0, NULL, 0), 0);
	ASSERT_OK(mp_pool_close(pool));
	ASSERT_OK(mp_pool_join(pool));
	mp_pool_free(pool);
	free(a);
}

TEST(pool_async_wait_timeout)
{
	gate_setup();
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	mp_async *a = mp_pool_apply_async(pool, gated_echo, "hello", 5, 5);
	ASSERT_NOT_NULL(a);
	double t0 = (double)clock() / CLOCKS_PER_SEC;
	(void)t0;
	ASSERT_ERR(mp_async_wait(a, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_async_wait(a, 0.05), -ETIMEDOUT);
	ASSERT(!mp_async_ready(a));
	char buf[8];
	ASSERT_ERR(mp_async_get(a, buf, sizeof(buf), 0.01), -ETIMEDOUT);
	/* imap with a timeout too. */
	int32_t in[3] = {1, 2, 3};
	mp_imap *it = mp_pool_imap(pool, gated_square, in, 4, 8, 3, 1);
	ASSERT_NOT_NULL(it);
	size_t idx = 7;
	ASSERT_ERR(mp_imap_next(it, &idx, NULL, 0.02), -ETIMEDOUT);
	ASSERT_EQ(idx, SIZE_MAX);
	atomic_store(gate, 1);
	ASSERT_OK(mp_async_wait(a, MP_FOREVER));
	ASSERT(mp_async_ready(a));
	ASSERT_EQ(mp_async_get(a, buf, sizeof(buf), 0), 5);
	ASSERT(memcmp(buf, "olleh", 5) == 0);
	int64_t v;
	for (size_t i = 0; i < 3; i++) {
		ASSERT_OK(mp_imap_next(it, &idx, &v, MP_FOREVER));
		ASSERT_EQ(idx, i);
		ASSERT_EQ(v, (int64_t)(i + 1) * (int64_t)(i + 1) + 1);
	}
	mp_imap_free(it);
	mp_async_free(a);
	mp_pool_free(pool);
}

TEST(pool_map_async)
{
	size_t n = 2000;
	int32_t *in = iota(n);
	int64_t *out1 = calloc(n, sizeof(int64_t));
	int32_t *out2 = calloc(n, sizeof(int32_t));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	mp_async *a = mp_pool_map_async(pool, square, in, 4, out1, 8, n, 0);
	mp_async *b = mp_pool_map_async(pool, odd_fails, in, 4, out2, 4, n, 3);
	mp_async *c = mp_pool_map_async(pool, square, in, 4, NULL, 8, 0, 0);
	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	ASSERT_NOT_NULL(c);
	ASSERT_ERR(mp_async_get(b, NULL, 0, MP_FOREVER), -1003);
	ASSERT_OK(mp_async_get(a, NULL, 0, MP_FOREVER));
	ASSERT_OK(mp_async_get(c, NULL, 0, 0));
	check_squares(out1, n);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(out2[i], 2 * (int32_t)i);
	mp_async_free(a);
	mp_async_free(b);
	mp_async_free(c);
	mp_pool_free(pool);
	free(in);
	free(out1);
	free(out2);
}

static _Atomic uint32_t *init_count;
static _Atomic int32_t *init_pids;

static void init_fn(void *arg)
{
	ASSERT_EQ((intptr_t)arg, 1234);
	uint32_t k = atomic_fetch_add(init_count, 1);
	if (k < 256)
		atomic_store(&init_pids[k], getpid());
}

static int whoami(const void *in, void *out)
{
	(void)in;
	*(int32_t *)out = getpid();
	return 0;
}

TEST(pool_initializer_once)
{
	init_count = mp_shared_alloc(64);
	init_pids = mp_shared_alloc(256 * sizeof(int32_t));
	mp_pool_opts o = {.processes = 3,
			  .initializer = init_fn,
			  .initargs = (void *)(intptr_t)1234};
	mp_pool *pool = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(pool);
	int32_t out[300];
	ASSERT_OK(mp_pool_map(pool, whoami, NULL, 0, out, 4, 300, 1));
	ASSERT_OK(mp_pool_close(pool));
	ASSERT_OK(mp_pool_join(pool));
	ASSERT_EQ(atomic_load(init_count), 3);
	mp_pool_free(pool);
	/* Every worker that ran a task ran the initializer first. */
	for (int i = 0; i < 300; i++) {
		bool found = false;
		for (int k = 0; k < 3; k++)
			found |= atomic_load(&init_pids[k]) == out[i];
		ASSERT(found);
	}
}

TEST(pool_maxtasksperchild)
{
	init_count = mp_shared_alloc(64);
	init_pids = mp_shared_alloc(256 * sizeof(int32_t));
	mp_pool_opts o = {.processes = 2,
			  .maxtasksperchild = 3,
			  .initializer = init_fn,
			  .initargs = (void *)(intptr_t)1234};
	mp_pool *pool = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(pool);
	pid_t before[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, before, 2), 2);
	enum { N = 60 };
	int32_t out[N];
	ASSERT_OK(mp_pool_map(pool, whoami, NULL, 0, out, 4, N, 1));
	/* Each pid ran at most 3 tasks, so at least N / 3 workers. */
	int distinct = 0;
	for (int i = 0; i < N; i++) {
		int same = 0;
		bool first = true;
		for (int k = 0; k < N; k++) {
			same += out[k] == out[i];
			if (k < i && out[k] == out[i])
				first = false;
		}
		ASSERT_CMP(same, <=, 3);
		distinct += first;
	}
	ASSERT_CMP(distinct, >=, N / 3);
	/* Every worker started ran the initializer once: none twice. */
	uint32_t inits = atomic_load(init_count);
	ASSERT_CMP(inits, >=, (uint32_t)distinct);
	for (uint32_t i = 0; i < inits && i < 256; i++)
		for (uint32_t k = 0; k < i; k++)
			ASSERT(init_pids[i] != init_pids[k]);
	/* Apply tasks count too; the pool goes on. */
	for (int i = 0; i < 10; i++) {
		char res[4];
		ASSERT_EQ(mp_pool_apply(pool, echo_rev, "ab", 2, res, 4), 2);
	}
	pid_t after[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, after, 2), 2);
	ASSERT(after[0] != before[0] || after[1] != before[1]);
	ASSERT_OK(mp_pool_close(pool));
	ASSERT_OK(mp_pool_join(pool));
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
}

TEST(pool_more_workers_than_cores)
{
	mp_pool *pool = mp_pool_new(8);
	ASSERT_NOT_NULL(pool);
	pid_t pids[8];
	ASSERT_EQ(mp_pool_worker_pids(pool, pids, 8), 8);
	for (int i = 0; i < 8; i++)
		for (int k = 0; k < i; k++)
			ASSERT(pids[i] != pids[k] && pids[i] > 0);
	size_t n = 20000;
	int32_t *in = iota(n);
	int64_t *out = malloc(n * sizeof(*out));
	for (int round = 0; round < 3; round++) {
		ASSERT_OK(mp_pool_map(pool, square, in, 4, out, 8, n,
				      round == 1 ? 1 : 0));
		check_squares(out, n);
	}
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
	/* processes 0 = the CPU count. */
	pool = mp_pool_new(0);
	ASSERT_NOT_NULL(pool);
	ASSERT_EQ(mp_pool_processes(pool), mp_cpu_count());
	mp_pool_free(pool);
}

TEST(pool_terminate_in_flight)
{
	gate_setup();
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	int32_t in[100];
	int64_t out[100];
	for (int i = 0; i < 100; i++)
		in[i] = i;
	mp_async *a = mp_pool_map_async(pool, gated_square, in, 4, out, 8, 100,
					1);
	mp_async *b = mp_pool_apply_async(pool, gated_echo, "xy", 2, 2);
	mp_imap *it = mp_pool_imap(pool, gated_square, in, 4, 8, 100, 1);
	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	ASSERT_NOT_NULL(it);
	while (atomic_load(entered) < 2)
		sched_yield();
	ASSERT_OK(mp_pool_terminate(pool));
	ASSERT_ERR(mp_async_get(a, NULL, 0, MP_FOREVER), MP_ECLOSED);
	ASSERT_ERR(mp_async_get(b, NULL, 0, 0), MP_ECLOSED);
	size_t idx;
	ASSERT_ERR(mp_imap_next(it, &idx, NULL, 0), MP_ECLOSED);
	ASSERT_EQ(idx, 0);
	ASSERT_EQ(test_count_zombies(), 0);
	ASSERT_OK(mp_pool_join(pool));
	ASSERT_OK(mp_pool_terminate(pool));
	ASSERT(mp_pool_apply_async(pool, echo_rev, "x", 1, 1) == NULL);
	mp_pool_free(pool);
	mp_async_free(a);
	mp_async_free(b);
	mp_imap_free(it);
}

TEST(pool_free_in_flight)
{
	gate_setup();
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	mp_async *a[5];
	for (int i = 0; i < 5; i++) {
		a[i] = mp_pool_apply_async(pool, gated_echo, "abc", 3, 3);
		ASSERT_NOT_NULL(a[i]);
	}
	mp_async_free(a[4]); /* dropped before the pool goes */
	while (atomic_load(entered) < 2)
		sched_yield();
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	for (int i = 0; i < 4; i++) {
		ASSERT(mp_async_ready(a[i]));
		ASSERT_ERR(mp_async_get(a[i], NULL, 0, MP_FOREVER), MP_ECLOSED);
		mp_async_free(a[i]);
	}
	/* Closed but not joined: free terminates as well. */
	pool = mp_pool_new(1);
	ASSERT_NOT_NULL(pool);
	mp_async *b = mp_pool_apply_async(pool, gated_echo, "abc", 3, 3);
	ASSERT_OK(mp_pool_close(pool));
	mp_pool_free(pool);
	ASSERT_ERR(mp_async_get(b, NULL, 0, 0), MP_ECLOSED);
	mp_async_free(b);
	ASSERT_EQ(test_count_zombies(), 0);
}

TEST_MAIN(T(pool_map_chunksizes), T(pool_map_sizes), T(pool_map_item_errors),
	  T(pool_bad_inputs), T(pool_imap_ordered), T(pool_imap_unordered),
	  T(pool_apply_async_sizes), T(pool_async_wait_timeout),
	  T(pool_map_async), T(pool_initializer_once),
	  T(pool_maxtasksperchild), T(pool_more_workers_than_cores),
	  T(pool_terminate_in_flight), T(pool_free_in_flight))
