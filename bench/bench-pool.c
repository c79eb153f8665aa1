/*
 * Pool: map throughput on a trivial function (tasks/s), CPU-bound speed-up
 * over serial, and apply_async round trips, against Python's
 * multiprocessing.Pool (fork) in the same run.  Two workers throughout
 * (the machines here have 2 cores).  Best of several runs for ours, since
 * other programs share the machine.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <multiproc.h>

#include "bench.h"

#define WORKERS 2

static int square(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	*(int32_t *)out = v * v;
	return 0;
}

static ssize_t apply_square(const void *arg, size_t len, void *out,
			    size_t cap)
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

/* Tasks per second of our map over n ints, best of `runs`. */
static double ours_map(mp_pool *pool, size_t n, size_t chunksize, int runs)
{
	int32_t *in = malloc(n * sizeof(*in));
	int32_t *out = malloc(n * sizeof(*out));
	double best = 0;
	for (size_t i = 0; i < n; i++)
		in[i] = (int32_t)i;
	for (int r = 0; r < runs; r++) {
		double t0 = bench_now();
		int e = mp_pool_map(pool, square, in, sizeof(*in), out,
				    sizeof(*out), n, chunksize);
		double rate = (double)n / (bench_now() - t0);
		if (e || out[n - 1] != (int32_t)((n - 1) * (n - 1)))
			fprintf(stderr, "map failed: %d\n", e);
		if (rate > best)
			best = rate;
	}
	free(in);
	free(out);
	return best;
}

static void bench_map(mp_pool *pool, bool py)
{
	const char *b = "bench-pool";
	size_t n = 400000;
	bench_header(b, "map of a trivial function over 400,000 ints, "
			"2 workers (tasks/s)");
	double auto_rate = ours_map(pool, n, 0, 7);
	bench_row(b, "map, chunksize auto", "multiproc", auto_rate, "tasks/s");
	double one_rate = ours_map(pool, n, 1, 3);
	bench_row(b, "map, chunksize 1", "multiproc", one_rate, "tasks/s");
	if (!py)
		return;
	double py_auto = bench_python("pool_map.py", "400000 0 2");
	bench_row(b, "map, chunksize auto", "Python Pool.map", py_auto,
		  "tasks/s");
	/* 400,000 single-item tasks take Python most of a minute: 20,000
	 * give its rate. */
	double py_one = bench_python("pool_map.py", "20000 1 2");
	bench_row(b, "map, chunksize 1", "Python Pool.map (n=20000)", py_one,
		  "tasks/s");
	bench_ratio("map, default chunksize", "multiproc", "Python",
		    auto_rate / py_auto);
	bench_ratio("map, chunksize 1", "multiproc", "Python",
		    one_rate / py_one);
	bench_ratio("map, our auto vs Python chunksize 1", "multiproc",
		    "Python", auto_rate / py_one);
}

static void bench_cpu(mp_pool *pool)
{
	const char *b = "bench-pool";
	enum { N = 200 };
	uint32_t in[N], serial_out[N], pool_out[N];
	bench_header(b, "CPU-bound: primes in 200 ranges of 2,000 numbers "
			"near 2e8 (seconds)");
	for (int i = 0; i < N; i++)
		in[i] = 200000000u + (uint32_t)i * SPAN;
	double best_serial = 1e9, best_pool = 1e9, best_one = 1e9;
	for (int r = 0; r < 3; r++) {
		double t0 = bench_now();
		for (int i = 0; i < N; i++)
			count_primes(&in[i], &serial_out[i]);
		double ts = bench_now() - t0;
		double tp[2];
		for (int k = 0; k < 2; k++) {
			t0 = bench_now();
			int e = mp_pool_map(pool, count_primes, in,
					    sizeof(*in), pool_out,
					    sizeof(*pool_out), N, k ? 1 : 0);
			tp[k] = bench_now() - t0;
			if (e || memcmp(serial_out, pool_out,
					sizeof(pool_out)))
				fprintf(stderr, "cpu map failed: %d\n", e);
		}
		if (ts < best_serial)
			best_serial = ts;
		if (tp[0] < best_pool)
			best_pool = tp[0];
		if (tp[1] < best_one)
			best_one = tp[1];
	}
	bench_row(b, "primes", "serial", best_serial, "s");
	bench_row(b, "primes", "pool, 2 workers, chunksize auto", best_pool,
		  "s");
	bench_row(b, "primes", "pool, 2 workers, chunksize 1", best_one, "s");
	bench_ratio("primes: speed-up, chunksize auto", "pool", "serial",
		    best_serial / best_pool);
	bench_ratio("primes: speed-up, chunksize 1", "pool", "serial",
		    best_serial / best_one);
}

static void bench_apply(mp_pool *pool, bool py)
{
	const char *b = "bench-pool";
	bench_header(b, "apply_async(f, x).get() round trip, one at a time "
			"(seconds per task)");
	int n = 50000;
	double best = 1e9;
	for (int r = 0; r < 3; r++) {
		double t0 = bench_now();
		for (int32_t i = 0; i < n; i++) {
			int32_t res;
			mp_async *a = mp_pool_apply_async(pool, apply_square,
							  &i, sizeof(i),
							  sizeof(res));
			ssize_t len = mp_async_get(a, &res, sizeof(res),
						   MP_FOREVER);
			if (len != sizeof(res) || res != i * i)
				fprintf(stderr, "apply failed: %zd\n", len);
			mp_async_free(a);
		}
		double t = (bench_now() - t0) / n;
		if (t < best)
			best = t;
	}
	bench_row(b, "apply round trip", "multiproc", best, "s");
	/* Throughput: 50,000 submitted, then collected. */
	mp_async **as = malloc((size_t)n * sizeof(*as));
	double t0 = bench_now();
	for (int32_t i = 0; i < n; i++)
		as[i] = mp_pool_apply_async(pool, apply_square, &i, sizeof(i),
					    sizeof(int32_t));
	for (int i = 0; i < n; i++) {
		int32_t res;
		mp_async_get(as[i], &res, sizeof(res), MP_FOREVER);
		mp_async_free(as[i]);
	}
	double batch = (bench_now() - t0) / n;
	free(as);
	bench_row(b, "apply, 50,000 in flight", "multiproc", batch,
		  "s per task");
	if (!py)
		return;
	double p = bench_python("pool_apply.py", "3000 2");
	bench_row(b, "apply round trip", "Python apply_async", p, "s");
	bench_ratio("apply round trip", "multiproc", "Python", p / best);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	mp_pool *pool = mp_pool_new(WORKERS);
	if (!pool) {
		perror("mp_pool_new");
		return 1;
	}
	bool py = bench_have_python();
	if (!py)
		printf("(python3 with multiprocessing not found: no peer)\n");
	bench_map(pool, py);
	bench_cpu(pool);
	bench_apply(pool, py);
	mp_pool_free(pool);
	return 0;
}
