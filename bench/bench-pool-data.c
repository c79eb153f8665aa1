/* SPDX-License-Identifier: MIT */
/*
 * bench-pool-data: the pool on the data a first program sends it (issue
 * 11), against Python's multiprocessing.Pool (fork) in the same run, two
 * workers throughout:
 *   - a cold map: a new pool, fresh arrays, one mp_pool_map of 400,000
 *     int32 -> int64, what a script that maps once sees.  Timed in two
 *     parts: the pool's start (mp_pool_new / Pool(2)) and the map (the
 *     call to its results, the first-touch faults of the fresh output
 *     included).  The inputs are made before the clock starts on both
 *     sides (a malloc()ed array filled in / list(range(n))), and freeing
 *     the pool is not timed;
 *   - mp_pool_map_bufs over 100,000 byte strings of 10-100 bytes (each
 *     upper-cased: a result as long as its item) against Pool.map over the
 *     same list of bytes, on a warm pool, default chunksizes;
 *   - a stream of 2,000,000 small items (8-byte integers made by a source
 *     callback / a generator, squared) through mp_pool_imap_source against
 *     Pool.imap, both with chunksize 1000 (a good one for Python; ours
 *     with its default, adaptive from 64 to 1024, is ~10% slower), on a
 *     warm pool, with the peak resident size
 *     of the parent process of each (every run in a fresh child process
 *     for us, so that the figure is that run's own).
 * Both variable-size rows also show a floor, in the same run: what the
 * contract alone costs the parent (each result is malloc()ed, which the
 * caller frees), done in one process with no pool at all.  No map or
 * stream can beat it; its ratio to Python bounds ours.
 * Every contender runs interleaved with its peers (bench.h): medians, min
 * and max of the runs; ratios of medians.
 */
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

#define WORKERS 2
#define B "bench-pool-data"

/* Run python3 bench/python/pool_data.py ARGS and read up to nv numbers. */
static int py_numbers(const char *args, double *v, int nv)
{
	char cmd[256];
	int got = 0;

	snprintf(cmd, sizeof(cmd),
		 "python3 bench/python/pool_data.py %s 2>/dev/null", args);
	FILE *f = popen(cmd, "r");
	if (!f)
		return 0;
	while (got < nv && fscanf(f, "%lf", &v[got]) == 1)
		got++;
	return pclose(f) ? 0 : got;
}

/* ---- cold map ---- */

static int square64(const void *in, void *out)
{
	int64_t v = *(const int32_t *)in;
	*(int64_t *)out = v * v;
	return 0;
}

/* A contender's runs, each split in two parts besides the total. */
struct cold {
	size_t n;
	int r;
	double start[BENCH_MAX_RUNS], map[BENCH_MAX_RUNS];
};

static double cold_ours(void *arg)
{
	struct cold *c = arg;
	int32_t *in = malloc(c->n * sizeof(*in));
	int64_t *out = malloc(c->n * sizeof(*out));
	double t = -1;

	if (!in || !out)
		goto out;
	for (size_t i = 0; i < c->n; i++)
		in[i] = (int32_t)i;
	double t0 = bench_now();
	mp_pool *p = mp_pool_new(WORKERS);
	if (!p)
		goto out;
	double t1 = bench_now();
	int e = mp_pool_map(p, square64, in, sizeof(*in), out, sizeof(*out),
			    c->n, 0);
	double t2 = bench_now();
	mp_pool_free(p);
	int64_t last = (int64_t)(c->n - 1);
	if (e || out[c->n - 1] != last * last) {
		fprintf(stderr, "cold map failed: %d\n", e);
		goto out;
	}
	c->start[c->r] = t1 - t0;
	c->map[c->r] = t2 - t1;
	t = t2 - t0;
out:
	c->r++;
	free(in);
	free(out);
	return t;
}

static double cold_py(void *arg)
{
	struct cold *c = arg;
	char args[64];
	double v[2];

	snprintf(args, sizeof(args), "cold %zu %d", c->n, WORKERS);
	int r = c->r++;
	if (py_numbers(args, v, 2) != 2)
		return -1;
	c->start[r] = v[0];
	c->map[r] = v[1];
	return v[0] + v[1];
}

static void bench_cold(int runs)
{
	size_t n = (size_t)bench_size(400000);
	char what[160];
	struct cold co = {.n = n}, cp = {.n = n};

	snprintf(what, sizeof(what),
		 "cold map: a new pool of 2, one map of %zu fresh int32 -> "
		 "int64 (ms)",
		 n);
	bench_header(B, what);
	struct bench_contender c[2] = {
	    {.name = "multiproc", .run = cold_ours, .arg = &co},
	    {.name = "Python Pool(2).map",
	     .run = bench_have_python() ? cold_py : NULL,
	     .arg = &cp},
	};
	bench_interleave(c, 2, runs);
	struct bench_stat s[2][2] = {
	    {bench_stat_of(co.start, co.r), bench_stat_of(co.map, co.r)},
	    {bench_stat_of(cp.start, cp.r), bench_stat_of(cp.map, cp.r)},
	};
	for (int k = 0; k < 2; k++) {
		if (!c[k].run)
			continue;
		bench_row(B, "cold: pool start", c[k].name, &s[k][0], 1e3,
			  "ms");
		bench_row(B, "cold: the map", c[k].name, &s[k][1], 1e3, "ms");
		bench_row(B, "cold: start + map", c[k].name, &c[k].st, 1e3,
			  "ms");
	}
	if (!c[1].run)
		return;
	bench_vs("cold: pool start", "multiproc", &s[0][0], "Python",
		 &s[1][0], BENCH_LOWER);
	bench_vs("cold: the map", "multiproc", &s[0][1], "Python", &s[1][1],
		 BENCH_LOWER);
	bench_vs("cold map (start + map)", "multiproc", &c[0].st, "Python",
		 &c[1].st, BENCH_LOWER | BENCH_HEADLINE);
}

/* ---- variable-size items ---- */

/* The i-th string: 10-100 bytes of letters, the same on both sides
 * (pool_data.py makes them alike). */
static size_t item_len(size_t i)
{
	return 10 + (i * 2654435761u >> 7) % 91;
}

static void item_fill(char *dst, size_t i, size_t len)
{
	for (size_t k = 0; k < len; k++)
		dst[k] = (char)('a' + (i + k) % 26);
}

static int upper(const void *in, size_t len, mp_out *out)
{
	char buf[128];
	const char *s = in;

	if (len > sizeof(buf))
		return -EINVAL;
	for (size_t k = 0; k < len; k++)
		buf[k] = s[k] >= 'a' && s[k] <= 'z' ? (char)(s[k] - 32) : s[k];
	return mp_out_write(out, buf, len);
}

struct bufs_job {
	mp_pool *pool;
	size_t n;
	mp_buf *in, *out;
};

static double bufs_ours(void *arg)
{
	struct bufs_job *j = arg;
	double t0 = bench_now();
	int e = mp_pool_map_bufs(j->pool, upper, j->in, j->n, j->out, NULL, 0);
	double t = bench_now() - t0;
	bool ok = !e;

	for (size_t i = 0; ok && i < j->n; i++)
		ok = j->out[i].len == j->in[i].len &&
		     ((char *)j->out[i].data)[0] ==
			 ((char *)j->in[i].data)[0] - 32;
	mp_bufs_free(j->out, j->n);
	if (!ok)
		fprintf(stderr, "map_bufs failed: %d\n", e);
	return ok ? (double)j->n / t : -1;
}

/* The floor that the contract sets: out[i].data is malloc()ed, so the
 * parent makes n buffers of the results' lengths and copies n results
 * into them (from one block, as from the arena), one thread, no pool.  A
 * map can be no faster than this, whatever it does in parallel. */
static double bufs_floor(void *arg)
{
	struct bufs_job *j = arg;
	size_t total = 0;

	for (size_t i = 0; i < j->n; i++)
		total += j->in[i].len;
	char *blk = malloc(total ? total : 1);
	if (!blk)
		return -1;
	for (size_t i = 0, off = 0; i < j->n; off += j->in[i++].len)
		memcpy(blk + off, j->in[i].data, j->in[i].len);
	double t0 = bench_now();
	for (size_t i = 0, off = 0; i < j->n; off += j->in[i++].len) {
		j->out[i].len = j->in[i].len;
		j->out[i].data = malloc(j->out[i].len);
		if (!j->out[i].data)
			return -1;
		memcpy(j->out[i].data, blk + off, j->out[i].len);
	}
	double t = bench_now() - t0;
	mp_bufs_free(j->out, j->n);
	free(blk);
	return (double)j->n / t;
}

static double py_one(void *arg)
{
	double v;
	return py_numbers(arg, &v, 1) == 1 ? v : -1;
}

static void bench_bufs(mp_pool *pool, int runs)
{
	size_t n = (size_t)bench_size(100000);
	char what[160], pyargs[64];
	struct bufs_job j = {pool, n, calloc(n, sizeof(mp_buf)),
			     calloc(n, sizeof(mp_buf))};

	if (!j.in || !j.out) {
		perror("calloc");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		j.in[i].len = item_len(i);
		j.in[i].data = malloc(j.in[i].len);
		if (!j.in[i].data) {
			perror("malloc");
			exit(1);
		}
		item_fill(j.in[i].data, i, j.in[i].len);
	}
	snprintf(what, sizeof(what),
		 "map over %zu byte strings of 10-100 bytes, upper-cased, "
		 "warm pool of 2 (items/s)",
		 n);
	bench_header(B, what);
	snprintf(pyargs, sizeof(pyargs), "bufs %zu %d", n, WORKERS);
	struct bench_contender c[3] = {
	    {.name = "mp_pool_map_bufs", .run = bufs_ours, .arg = &j},
	    {.name = "Python Pool.map over bytes",
	     .run = bench_have_python() ? py_one : NULL,
	     .arg = pyargs},
	    {.name = "floor: the parent's malloc + copy of each result, alone",
	     .run = bufs_floor, .arg = &j},
	};
	bench_interleave(c, 3, runs);
	bench_rows(B, "strings", c, 3, 1, "items/s");
	bench_vs("strings", "mp_pool_map_bufs", &c[0].st, "Python Pool.map",
		 &c[1].st, BENCH_HEADLINE);
	bench_vs("strings", "floor", &c[2].st, "Python Pool.map", &c[1].st,
		 0);
	mp_bufs_free(j.in, n);
	free(j.in);
	free(j.out);
}

/* ---- a stream ---- */

struct src {
	uint64_t i, n;
	uint64_t v;
};

static int next_int(void *ctx, mp_buf *item)
{
	struct src *s = ctx;

	if (s->i == s->n)
		return 0;
	s->v = s->i++;
	item->data = &s->v;
	item->len = sizeof(s->v);
	return 1;
}

static int square_u64(const void *in, size_t len, mp_out *out)
{
	uint64_t v;

	if (len != sizeof(v))
		return -EINVAL;
	memcpy(&v, in, sizeof(v));
	v *= v;
	return mp_out_write(out, &v, sizeof(v));
}

/* The same chunksize on both sides: 1000 is a good one for Python; ours
 * runs ~10% slower with its default (adaptive, 64 growing to 1024). */
#define STREAM_CHUNK 1000

/* Peak resident size of this process, bytes. */
static double max_rss(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? 0 : (double)ru.ru_maxrss * 1024;
}

/* In a child: a warm pool, the timed stream; writes items/s and the peak
 * RSS of the process to fd. */
static void stream_child(size_t n, int fd)
{
	double res[2] = {-1, 0};
	mp_pool *p = mp_pool_new(WORKERS);
	uint64_t sum = 0, want = 0;

	if (!p)
		goto out;
	struct src warm = {0, 1000, 0};
	mp_imap *it = mp_pool_imap_source(p, square_u64, next_int, &warm, 0,
					  true);
	mp_buf b;
	while (it && mp_imap_next_buf(it, NULL, &b, MP_FOREVER) != MP_ECLOSED)
		free(b.data);
	mp_imap_free(it);

	struct src s = {0, n, 0};
	double t0 = bench_now();
	it = mp_pool_imap_source(p, square_u64, next_int, &s, STREAM_CHUNK,
				 true);
	size_t i, got = 0;
	int r;
	while (it && (r = mp_imap_next_buf(it, &i, &b, MP_FOREVER)) !=
			 MP_ECLOSED) {
		if (!r && b.len == sizeof(uint64_t) && i == got) {
			uint64_t v;
			memcpy(&v, b.data, sizeof(v));
			sum += v;
			got++;
		}
		free(b.data);
	}
	double t = bench_now() - t0;
	mp_imap_free(it);
	mp_pool_free(p);
	for (uint64_t k = 0; k < n; k++)
		want += k * k;
	if (got == n && sum == want)
		res[0] = (double)n / t;
	else
		fprintf(stderr, "stream failed: %zu of %zu\n", got, n);
	res[1] = max_rss();
out:
	if (write(fd, res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

struct stream {
	size_t n;
	int r;
	double rss[BENCH_MAX_RUNS];
};

static double stream_ours(void *arg)
{
	struct stream *st = arg;
	double res[2] = {-1, 0};
	int fds[2];
	int r = st->r++;

	fflush(NULL);
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		stream_child(st->n, fds[1]);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], res, sizeof(res)) != sizeof(res))
		res[0] = -1;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	st->rss[r] = res[0] > 0 ? res[1] : 0;
	return res[0];
}

static double stream_py(void *arg)
{
	struct stream *st = arg;
	char args[64];
	double v[2];
	int r = st->r++;

	snprintf(args, sizeof(args), "stream %zu %d %d", st->n, WORKERS,
		 STREAM_CHUNK);
	if (py_numbers(args, v, 2) != 2)
		return -1;
	st->rss[r] = v[1];
	return v[0];
}

/* The floor that the contract sets: per item, the source's call, a copy
 * of the item, and a malloc()ed result that the caller reads and frees,
 * in one process, no pool.  A stream can be no faster than this. */
static double stream_floor(void *arg)
{
	struct stream *st = arg;
	struct src s = {0, st->n, 0};
	uint64_t batch[1000], sum = 0;
	mp_buf it;
	size_t k;

	st->r++;
	double t0 = bench_now();
	do {
		for (k = 0; k < 1000 && next_int(&s, &it) > 0; k++)
			memcpy(&batch[k], it.data, sizeof(batch[k]));
		for (size_t i = 0; i < k; i++) {
			uint64_t *d = malloc(sizeof(*d));
			if (!d)
				return -1;
			*d = batch[i] * batch[i];
			/* as a caller would: the result leaves our hands */
			uint64_t *volatile out = d;
			sum += *out;
			free(out);
		}
	} while (k == 1000);
	double t = bench_now() - t0;
	return sum || st->n < 2 ? (double)st->n / t : -1;
}

static void bench_stream(int runs)
{
	size_t n = (size_t)bench_size(2000000);
	char what[160];
	struct stream so = {.n = n}, sp = {.n = n}, sf = {.n = n};

	snprintf(what, sizeof(what),
		 "a stream of %zu 8-byte items from a source / a generator, "
		 "squared, warm pool of 2",
		 n);
	bench_header(B, what);
	struct bench_contender c[3] = {
	    {.name = "mp_pool_imap_source, chunksize 1000",
	     .run = stream_ours,
	     .arg = &so},
	    {.name = "Python Pool.imap, chunksize 1000",
	     .run = bench_have_python() ? stream_py : NULL,
	     .arg = &sp},
	    {.name = "floor: source, copy, malloc, free per item, alone",
	     .run = stream_floor,
	     .arg = &sf},
	};
	bench_interleave(c, 3, runs);
	bench_rows(B, "stream", c, 3, 1e-6, "M items/s");
	struct bench_stat rss[2] = {bench_stat_of(so.rss, so.r),
				    bench_stat_of(sp.rss, sp.r)};
	for (int k = 0; k < 2; k++)
		if (c[k].run)
			bench_row(B, "stream: peak RSS of the parent",
				  c[k].name, &rss[k], 1.0 / (1 << 20), "MiB");
	bench_vs("stream", "mp_pool_imap_source", &c[0].st, "Python Pool.imap",
		 &c[1].st, BENCH_HEADLINE);
	bench_vs("stream", "floor", &c[2].st, "Python Pool.imap", &c[1].st, 0);
}

/* usage: bench-pool-data [cold|bufs|stream]: all three, or one. */
int main(int argc, char **argv)
{
	int runs = bench_runs(7);
	const char *only = argc > 1 ? argv[1] : NULL;

	if (!bench_have_python())
		printf("(python3 with multiprocessing not found: no peer)\n");
	if (!only || !strcmp(only, "cold"))
		bench_cold(runs);
	if (!only || !strcmp(only, "bufs")) {
		mp_pool *pool = mp_pool_new(WORKERS);
		if (!pool) {
			perror("mp_pool_new");
			return 1;
		}
		bench_bufs(pool, runs);
		mp_pool_free(pool);
	}
	if (!only || !strcmp(only, "stream"))
		bench_stream(runs);
	return 0;
}
