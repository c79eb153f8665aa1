/* SPDX-License-Identifier: MIT */
/* Pool: the first map does not pay a page fault per page of new shared
 * memory (the pool's staging block, pre-faulted as the pool starts). */
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>

#include "test.h"

/* Under ASan the parent's own allocations fault in shadow memory: its
 * count says nothing about the pool there, only the workers' does. */
#ifdef __SANITIZE_ADDRESS__
#define PARENT_BOUND 100000
#else
#define PARENT_BOUND 10
#endif

static long parent_faults(void)
{
	struct rusage ru;

	ASSERT_OK(getrusage(RUSAGE_SELF, &ru));
	return ru.ru_minflt;
}

/* Minor faults of the pool's workers so far (/proc/PID/stat field 10). */
static long worker_faults(mp_pool *p)
{
	pid_t pids[2];
	long sum = 0;

	ASSERT_EQ(mp_pool_worker_pids(p, pids, 2), 2);
	for (int i = 0; i < 2; i++) {
		char path[64], buf[1024];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
		FILE *f = fopen(path, "r");
		ASSERT_NOT_NULL(f);
		size_t got = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[got] = '\0';
		char *q = strrchr(buf, ')');
		ASSERT_NOT_NULL(q);
		unsigned long v = 0;
		ASSERT_EQ(sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %lu", &v),
			  1);
		sum += (long)v;
	}
	return sum;
}

static _Atomic uint32_t *started;

/* Both items wait for each other: both workers are up once it returns. */
static int meet(const void *in, void *out)
{
	(void)in;
	(void)out;
	atomic_fetch_add(started, 1);
	while (atomic_load(started) < 2)
		;
	return 0;
}

static int square(const void *in, void *out)
{
	int64_t v = *(const int32_t *)in;
	*(int64_t *)out = v * v;
	return 0;
}

#define N 20000 /* 80 KB in, 160 KB out: 60 pages */

TEST(pool_first_map_takes_no_page_faults)
{
	started = mp_shared_alloc(64);
	ASSERT_NOT_NULL(started);
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	/* Made after the fork, and touched: no copy-on-write faults. */
	int32_t *in = malloc(N * sizeof(*in));
	int64_t *out = malloc(N * sizeof(*out));
	ASSERT(in && out);
	for (int i = 0; i < N; i++) {
		in[i] = i;
		out[i] = -1;
	}
	ASSERT_OK(mp_pool_map(p, meet, NULL, 0, NULL, 0, 2, 1));
	long pf = parent_faults(), wf = worker_faults(p);
	ASSERT_OK(mp_pool_map(p, square, in, sizeof(*in), out, sizeof(*out),
			      N, 0));
	long dpf = parent_faults() - pf, dwf = worker_faults(p) - wf;
	for (int i = 0; i < N; i++)
		ASSERT_EQ(out[i], (int64_t)i * i);
	fprintf(stderr, "# faults in the first map: parent %ld, workers %ld\n",
		dpf, dwf);
	ASSERT_CMP(dpf, <, PARENT_BOUND);
	ASSERT_CMP(dwf, <, 10);
	/* A bigger map allocates; the next one of its size reuses it. */
	int32_t *in2 = malloc(10 * N * sizeof(*in2));
	int64_t *out2 = malloc(10 * N * sizeof(*out2));
	ASSERT(in2 && out2);
	for (int i = 0; i < 10 * N; i++) {
		in2[i] = i;
		out2[i] = -1;
	}
	size_t used = mp_shared_used();
	ASSERT_OK(mp_pool_map(p, square, in2, sizeof(*in2), out2,
			      sizeof(*out2), 10 * N, 0));
	pf = parent_faults();
	ASSERT_OK(mp_pool_map(p, square, in2, sizeof(*in2), out2,
			      sizeof(*out2), 10 * N, 0));
	ASSERT_CMP(parent_faults() - pf, <, PARENT_BOUND);
	for (int i = 0; i < 10 * N; i++)
		ASSERT_EQ(out2[i], (int64_t)i * i);
	/* The small stage went back for the big one. */
	ASSERT_CMP(mp_shared_used(), >, used);
	mp_pool_free(p);
	free(in);
	free(out);
	free(in2);
	free(out2);
}

/* A reused stage is zeroed where it must be: a map whose function writes
 * nothing gets zero results and no stale errors. */
static int fail_odd(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;

	if (v % 2)
		return -EDOM;
	*(int64_t *)out = v;
	return 0;
}

static int nothing(const void *in, void *out)
{
	(void)in;
	(void)out;
	return 0;
}

TEST(pool_reused_stage_is_clean)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	int32_t in[1000];
	int64_t out[1000];
	int errs[1000];
	for (int i = 0; i < 1000; i++)
		in[i] = i;
	ASSERT_ERR(mp_pool_map_errors(p, fail_odd, in, sizeof(*in), out,
				      sizeof(*out), errs, 1000, 3),
		   -EDOM);
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(errs[i], i % 2 ? -EDOM : 0);
	memset(out, 0x55, sizeof(out));
	ASSERT_OK(mp_pool_map_errors(p, nothing, in, sizeof(*in), out,
				     sizeof(*out), errs, 1000, 3));
	for (int i = 0; i < 1000; i++) {
		ASSERT_EQ(errs[i], 0);
		ASSERT_EQ(out[i], 0);
	}
	mp_pool_free(p);
}

static int square64(const void *in, void *out)
{
	int64_t v = *(const int32_t *)in;
	*(int64_t *)out = v * v;
	return 0;
}

/* The results land in an array touched before the pool forked (its pages
 * shared with the workers, copy-on-write): the map gives those pages back
 * and maps them anew rather than copying each (cow.c).  Exact results
 * and the bytes around the array (in its first and last pages)
 * untouched; the same into shared memory, whose pages are never
 * dropped. */
TEST(pool_map_into_pages_shared_with_workers)
{
	const size_t n = 300000, pad = 104, total = n * 8 + 2 * pad + 8192;
	int32_t *in = malloc(n * sizeof(*in));
	uint8_t *buf = malloc(total);
	ASSERT(in && buf);
	for (size_t i = 0; i < n; i++)
		in[i] = (int32_t)i;
	memset(buf, 0xab, total); /* every page populated before the fork */
	int64_t *out = (int64_t *)(void *)(buf + pad);
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	ASSERT_OK(mp_pool_map(p, square64, in, sizeof(*in), out, sizeof(*out),
			      n, 0));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	for (size_t k = 0; k < pad; k++)
		ASSERT_EQ(buf[k], 0xab);
	for (size_t k = pad + n * 8; k < total; k++)
		ASSERT_EQ(buf[k], 0xab);

	int64_t *sh = mp_shared_alloc(n * sizeof(*sh));
	ASSERT_NOT_NULL(sh);
	memset(sh, 0xab, n * sizeof(*sh));
	ASSERT_OK(mp_pool_map(p, square64, in, sizeof(*in), sh, sizeof(*sh),
			      n, 0));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(sh[i], (int64_t)i * (int64_t)i);
	mp_shared_free(sh);
	mp_pool_free(p);
	free(buf);
	free(in);
}

TEST_MAIN(T(pool_first_map_takes_no_page_faults),
	  T(pool_reused_stage_is_clean),
	  T(pool_map_into_pages_shared_with_workers))
