/* SPDX-License-Identifier: MIT */
/* Pool retries: a task whose worker died runs again, up to opts.retries. */
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define N 1000
#define VICTIM 437

/* Shared with the workers: how many times the victim item ran, and how
 * many of those runs are to die. */
static _Atomic uint32_t *runs;
static _Atomic uint32_t *deaths_left;

static void shared_setup(uint32_t deaths)
{
	runs = mp_shared_alloc(64);
	deaths_left = mp_shared_alloc(64);
	ASSERT_NOT_NULL(runs);
	ASSERT_NOT_NULL(deaths_left);
	atomic_store(deaths_left, deaths);
}

static void die_if_asked(void)
{
	atomic_fetch_add(runs, 1);
	uint32_t left = atomic_load(deaths_left);
	while (left > 0)
		if (atomic_compare_exchange_weak(deaths_left, &left, left - 1))
			kill(getpid(), SIGKILL);
}

static int square(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;

	if (v == VICTIM)
		die_if_asked();
	*(int64_t *)out = (int64_t)v * v;
	return 0;
}

static mp_pool *pool_with_retries(unsigned retries)
{
	mp_pool_opts o = {.processes = 2, .retries = retries};
	mp_pool *p = mp_pool_new_opts(&o);

	ASSERT_NOT_NULL(p);
	return p;
}

/* Run the map with `deaths` deaths at the victim on a pool that retries
 * `retries` times; check every result that should be there. */
static void map_with_deaths(unsigned retries, uint32_t deaths,
			    size_t chunksize)
{
	shared_setup(deaths);
	int32_t *in = malloc(N * sizeof(*in));
	int64_t *out = calloc(N, sizeof(*out));
	int *errs = calloc(N, sizeof(*errs));
	for (int i = 0; i < N; i++)
		in[i] = i;
	mp_pool *pool = pool_with_retries(retries);
	bool lost = deaths > retries;

	ASSERT_ERR(mp_pool_map_errors(pool, square, in, sizeof(*in), out,
				      sizeof(*out), errs, N, chunksize),
		   lost ? MP_EWORKER : 0);
	size_t cs = chunksize ? chunksize : (N + 7) / 8;
	size_t lo = VICTIM / cs * cs, hi = lo + cs < N ? lo + cs : N;
	for (size_t i = 0; i < N; i++) {
		if (lost && i >= lo && i < hi) {
			ASSERT_EQ(errs[i], MP_EWORKER);
			continue;
		}
		ASSERT_EQ(errs[i], 0);
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	}
	/* The victim ran once per death it had to suffer, and once more to
	 * succeed, but never beyond 1 + retries. */
	uint32_t want = lost ? retries + 1 : deaths + 1;
	ASSERT_EQ(atomic_load(runs), want);
	/* The pool goes on with new workers. */
	atomic_store(deaths_left, 0);
	memset(out, 0, N * sizeof(*out));
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out, sizeof(*out),
			      N, chunksize));
	for (size_t i = 0; i < N; i++)
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
	free(errs);
}

TEST(pool_retry_one_death_recovered)
{
	map_with_deaths(1, 1, 0);
}

TEST(pool_retry_chunksize1)
{
	map_with_deaths(1, 1, 1);
}

TEST(pool_retry_two_deaths_two_retries)
{
	map_with_deaths(2, 2, 50);
}

TEST(pool_retry_exhausted)
{
	map_with_deaths(1, 5, 0);
}

TEST(pool_retry_off_by_default)
{
	map_with_deaths(0, 1, 0);
}

static ssize_t twice(const void *arg, size_t len, void *out, size_t cap)
{
	(void)cap;
	die_if_asked();
	const char *s = arg;
	char *o = out;
	for (size_t i = 0; i < len; i++)
		o[2 * i] = o[2 * i + 1] = s[i];
	return (ssize_t)(2 * len);
}

TEST(pool_retry_apply)
{
	shared_setup(1);
	mp_pool *pool = pool_with_retries(1);
	char buf[16];

	ASSERT_EQ(mp_pool_apply(pool, twice, "abc", 3, buf, sizeof(buf)), 6);
	ASSERT(memcmp(buf, "aabbcc", 6) == 0);
	ASSERT_EQ(atomic_load(runs), 2);
	/* Without tries left the apply fails and says why. */
	atomic_store(deaths_left, 2);
	ASSERT_ERR(mp_pool_apply(pool, twice, "abc", 3, buf, sizeof(buf)),
		   MP_EWORKER);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
}

TEST(pool_retry_imap_unordered)
{
	shared_setup(1);
	int32_t in[N];
	int64_t v;
	size_t i, seen = 0;
	int r;
	for (int k = 0; k < N; k++)
		in[k] = k;
	mp_pool *pool = pool_with_retries(1);
	mp_imap *it = mp_pool_imap_unordered(pool, square, in, sizeof(*in),
					     sizeof(v), N, 10);
	ASSERT_NOT_NULL(it);
	while ((r = mp_imap_next(it, &i, &v, MP_FOREVER)) != MP_ECLOSED) {
		ASSERT_EQ(r, 0);
		ASSERT_EQ(v, (int64_t)i * (int64_t)i);
		seen++;
	}
	ASSERT_EQ(seen, N);
	ASSERT_EQ(atomic_load(runs), 2);
	mp_imap_free(it);
	mp_pool_free(pool);
}

static int ident(const void *in, void *out)
{
	*(int64_t *)out = *(const int32_t *)in;
	return 0;
}

/* Kill workers at random moments of a fine-grained map, whatever window a
 * kill hits (claiming, running, recording, claiming a redo): with retries
 * to spare nothing is lost, and every item comes exactly once. */
TEST(pool_retry_kill_storm)
{
	size_t n = 200000;
	int32_t *in = malloc(n * sizeof(*in));
	bool *seen = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (int32_t)i;
	mp_pool *pool = pool_with_retries(100);
	for (int round = 0; round < 2; round++) {
		size_t cs = round == 0 ? 1 : 0;
		mp_imap *it = mp_pool_imap_unordered(pool, ident, in, 4, 8, n,
						     cs);
		ASSERT_NOT_NULL(it);
		memset(seen, 0, n);
		int kills = 0;
		size_t got = 0, idx;
		int64_t v;
		int r;
		while ((r = mp_imap_next(it, &idx, &v, MP_FOREVER)) !=
		       MP_ECLOSED) {
			ASSERT_OK(r);
			ASSERT_EQ(v, (int64_t)idx);
			ASSERT(!seen[idx]);
			seen[idx] = true;
			if (++got % 15000 == 0 && kills < 12) {
				pid_t pids[2];
				mp_pool_worker_pids(pool, pids, 2);
				kill(pids[kills % 2], SIGKILL);
				kills++;
			}
		}
		ASSERT_EQ(got, n);
		mp_imap_free(it);
	}
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(seen);
}

TEST(pool_retry_bad_option)
{
	mp_pool_opts o = {.processes = 1, .retries = 101};

	errno = 0;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
}

TEST_MAIN(T(pool_retry_one_death_recovered), T(pool_retry_chunksize1),
	  T(pool_retry_two_deaths_two_retries), T(pool_retry_exhausted),
	  T(pool_retry_off_by_default), T(pool_retry_apply),
	  T(pool_retry_imap_unordered), T(pool_retry_kill_storm),
	  T(pool_retry_bad_option))
