/* SPDX-License-Identifier: MIT */
/*
 * Pool: map throughput on a trivial function (tasks/s) on a warm pool,
 * CPU-bound speed-up over serial, and apply_async round trips (the cold
 * map, variable-size items and streams: bench-pool-data.c), against Python's multiprocessing.Pool (fork) in the same run.
 * Two workers throughout (the machines here have 2 cores).  Every
 * contender runs interleaved with its peers (bench.h): medians, min and
 * max of the runs; ratios of medians, and only of like chunkings.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <multiproc.h>

#include "bench.h"

#define WORKERS 2

static mp_pool *pool;

static int square(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	*(int32_t *)out = v * v;
	return 0;
}

static ssize_t apply_square(const void *arg, size_t len, void *out, size_t cap)
{
	(void)len;
	(void)cap;
	int32_t v = *(const int32_t *)arg;
	*(int32_t *)out = v * v;
	return sizeof(int32_t);
}

/* CPU-bound: primes in [lo, lo + SPAN) by trial division. */
#define SPAN 2000

static int count_primes(const void *in, void *out)
{
	uint32_t lo = *(const uint32_t *)in;
	uint32_t count = 0;
	for (uint32_t x = lo; x < lo + SPAN; x++) {
		bool prime = x >= 2;
		for (uint32_t d = 2; d * d <= x; d++) {
			if (x % d == 0) {
				prime = false;
				break;
			}
		}
		count += prime;
	}
	*(uint32_t *)out = count;
	return 0;
}

struct map_job {
	size_t n, chunksize;
	int32_t *in, *out;
};

static bool map_ok(int e, const int32_t *out, size_t n)
{
	if (e || out[n - 1] != (int32_t)((n - 1) * (n - 1))) {
		fprintf(stderr, "map failed: %d\n", e);
		return false;
	}
	return true;
}

/* Tasks per second of one map on the warm pool, over arrays made once. */
static double map_warm(void *arg)
{
	struct map_job *j = arg;
	double t0 = bench_now();
	int e = mp_pool_map(pool, square, j->in, sizeof(*j->in), j->out,
			    sizeof(*j->out), j->n, j->chunksize);
	double t = bench_now() - t0;
	return map_ok(e, j->out, j->n) ? (double)j->n / t : -1;
}

static void bench_map(int runs)
{
	const char *b = "bench-pool";
	size_t n = (size_t)bench_size(400000);
	long py_n1 = bench_size(20000);
	char what[128], py1[64];
	struct map_job jauto = {n, 0, malloc(n * sizeof(int32_t)),
				malloc(n * sizeof(int32_t))};
	struct map_job jone = {n, 1, jauto.in, jauto.out};
	struct bench_py pa, p1;

	if (!jauto.in || !jauto.out) {
		perror("malloc");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		jauto.in[i] = (int32_t)i;
	snprintf(what, sizeof(what),
		 "map of a trivial function over %zu ints, 2 workers, warm "
		 "pool (tasks/s)",
		 n);
	bench_header(b, what);
	/* n single-item tasks take Python most of a minute: fewer give its
	 * rate. */
	snprintf(py1, sizeof(py1), "Python Pool.map (n=%ld)", py_n1);
	struct bench_contender c[4] = {
	    {.name = "multiproc", .run = map_warm, .arg = &jauto},
	    {.name = "multiproc", .run = map_warm, .arg = &jone},
	    {.name = "Python Pool.map"},
	    {.name = py1},
	};
	bench_py_contender(&c[2], &pa, "pool_map.py", "%zu 0 2", n);
	bench_py_contender(&c[3], &p1, "pool_map.py", "%ld 1 2", py_n1);
	bench_interleave(c, 4, runs);
	bench_row(b, "map, chunksize auto", c[0].name, &c[0].st, 1, "tasks/s");
	if (c[2].run)
		bench_row(b, "map, chunksize auto", c[2].name, &c[2].st, 1,
			  "tasks/s");
	bench_row(b, "map, chunksize 1", c[1].name, &c[1].st, 1, "tasks/s");
	if (c[3].run)
		bench_row(b, "map, chunksize 1", c[3].name, &c[3].st, 1,
			  "tasks/s");
	/* Each ratio compares one chunking on both sides: our auto against
	 * Python's single-item tasks would measure the chunking, not us. */
	bench_vs("map, chunksize auto", "multiproc", &c[0].st, "Python",
		 &c[2].st, BENCH_HEADLINE);
	bench_vs("map, chunksize 1", "multiproc", &c[1].st, "Python", &c[3].st,
		 0);
	free(jauto.in);
	free(jauto.out);

}

struct cpu_job {
	int n;
	int mode; /* 0 serial, else pool with chunksize mode - 1 */
	const uint32_t *in;
	const uint32_t *want; /* serial results, to check the pool's */
	uint32_t *out;
};

static double cpu_run(void *arg)
{
	struct cpu_job *j = arg;
	double t0 = bench_now();

	if (!j->mode) {
		for (int i = 0; i < j->n; i++)
			count_primes(&j->in[i], &j->out[i]);
		return bench_now() - t0;
	}
	int e =
	    mp_pool_map(pool, count_primes, j->in, sizeof(*j->in), j->out,
			sizeof(*j->out), (size_t)j->n, (size_t)(j->mode - 1));
	double t = bench_now() - t0;
	if (e || memcmp(j->want, j->out, (size_t)j->n * sizeof(*j->out))) {
		fprintf(stderr, "cpu map failed: %d\n", e);
		return -1;
	}
	return t;
}

static void bench_cpu(int runs)
{
	const char *b = "bench-pool";
	enum { N = 200 };
	uint32_t in[N], serial_out[N], pool_out[N];
	int n = (int)bench_size(N);
	char what[128];

	snprintf(what, sizeof(what),
		 "CPU-bound: primes in %d ranges of 2,000 numbers near 2e8 "
		 "(seconds)",
		 n);
	bench_header(b, what);
	for (int i = 0; i < n; i++) {
		in[i] = 200000000u + (uint32_t)i * SPAN;
		count_primes(&in[i], &serial_out[i]);
	}
	struct cpu_job j[3] = {
	    {n, 0, in, serial_out, serial_out},
	    {n, 1, in, serial_out, pool_out},
	    {n, 2, in, serial_out, pool_out},
	};
	struct bench_contender c[3] = {
	    {.name = "serial", .run = cpu_run, .arg = &j[0]},
	    {.name = "pool, 2 workers, chunksize auto",
	     .run = cpu_run,
	     .arg = &j[1]},
	    {.name = "pool, 2 workers, chunksize 1",
	     .run = cpu_run,
	     .arg = &j[2]},
	};
	bench_interleave(c, 3, runs);
	bench_rows(b, "primes", c, 3, 1, "s");
	bench_vs("primes: speed-up, chunksize auto", "pool", &c[1].st, "serial",
		 &c[0].st, BENCH_LOWER);
	bench_vs("primes: speed-up, chunksize 1", "pool", &c[2].st, "serial",
		 &c[0].st, BENCH_LOWER);
}

static int apply_n;

/* Seconds per apply_async(f, x).get(), one at a time. */
static double apply_one(void *arg)
{
	(void)arg;
	double t0 = bench_now();
	for (int32_t i = 0; i < apply_n; i++) {
		int32_t res;
		mp_async *a = mp_pool_apply_async(pool, apply_square, &i,
						  sizeof(i), sizeof(res));
		ssize_t len = mp_async_get(a, &res, sizeof(res), MP_FOREVER);
		mp_async_free(a);
		if (len != sizeof(res) || res != i * i) {
			fprintf(stderr, "apply failed: %zd\n", len);
			return -1;
		}
	}
	return (bench_now() - t0) / apply_n;
}

/* Seconds per task with apply_n submitted, then collected. */
static double apply_batch(void *arg)
{
	(void)arg;
	mp_async **as = malloc((size_t)apply_n * sizeof(*as));
	bool ok = as != NULL;
	double t0 = bench_now();

	for (int32_t i = 0; ok && i < apply_n; i++)
		as[i] = mp_pool_apply_async(pool, apply_square, &i, sizeof(i),
					    sizeof(int32_t));
	for (int32_t i = 0; ok && i < apply_n; i++) {
		int32_t res;
		ssize_t len =
		    mp_async_get(as[i], &res, sizeof(res), MP_FOREVER);
		mp_async_free(as[i]);
		ok = len == sizeof(res) && res == i * i;
	}
	double t = (bench_now() - t0) / apply_n;
	free(as);
	return ok ? t : -1;
}

static void bench_apply(int runs)
{
	const char *b = "bench-pool";
	char batch[64];
	struct bench_py py;

	apply_n = (int)bench_size(50000);
	bench_header(b, "apply_async(f, x).get() round trip, one at a time "
			"(seconds per task)");
	snprintf(batch, sizeof(batch), "apply, %d in flight", apply_n);
	struct bench_contender c[3] = {
	    {.name = "multiproc", .run = apply_one},
	    {.name = "multiproc", .run = apply_batch},
	    {.name = "Python apply_async"},
	};
	bench_py_contender(&c[2], &py, "pool_apply.py", "%ld 2",
			   bench_size(3000));
	bench_interleave(c, 3, runs);
	bench_row(b, "apply round trip", c[0].name, &c[0].st, 1, "s");
	bench_row(b, batch, c[1].name, &c[1].st, 1, "s per task");
	if (c[2].run)
		bench_row(b, "apply round trip", c[2].name, &c[2].st, 1, "s");
	bench_vs("apply round trip", "multiproc", &c[0].st, "Python", &c[2].st,
		 BENCH_LOWER | BENCH_HEADLINE);
}

int main(void)
{
	int runs = bench_runs(7);

	pool = mp_pool_new(WORKERS);
	if (!pool) {
		perror("mp_pool_new");
		return 1;
	}
	if (!bench_have_python())
		printf("(python3 with multiprocessing not found: no peer)\n");
	bench_map(runs);
	bench_cpu(runs);
	bench_apply(runs);
	mp_pool_free(pool);
	return 0;
}
