/* SPDX-License-Identifier: MIT */
/*
 * Start+join of a trivial child under each start method: ours (fork,
 * forkserver, spawn) against Python's (fork, forkserver, spawn), in one
 * run, interleaved (bench.h): medians, min and max of the runs; ratios of
 * medians.  Python's spawn and forkserver cost tens of milliseconds a
 * start, so its contenders do fewer iterations per run than ours; each
 * sample is still a mean over a run.  Ours warm up first: the forkserver
 * is started and the arena made outside the timed loops, as Python's
 * contender starts its server in a warm-up.
 */
#include <multiproc.h>

#include "bench.h"

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

static int iters;

static double start_join(int method, int n)
{
	double t0 = bench_now();
	for (int i = 0; i < n; i++) {
		mp_process *p = mp_process_new_args(nothing, NULL, 0);
		mp_process_set_start_method(p, method);
		if (mp_process_start(p)) {
			mp_process_free(p);
			return -1;
		}
		mp_process_join(p, MP_FOREVER);
		mp_process_free(p);
	}
	return (bench_now() - t0) / n;
}

static double ours_fork(void *arg)
{
	(void)arg;
	return start_join(MP_START_FORK, iters);
}

static double ours_forkserver(void *arg)
{
	(void)arg;
	return start_join(MP_START_FORKSERVER, iters);
}

static double ours_spawn(void *arg)
{
	(void)arg;
	return start_join(MP_START_SPAWN, iters);
}

int main(void)
{
	/* The server now, while this program is small (as Python's
	 * forkserver is started by its warm-up). */
	if (mp_set_start_method(MP_START_FORKSERVER) ||
	    mp_set_start_method(MP_START_FORK))
		return 1;
	bench_header("start", "start+join latency by start method, lower is "
		     "better");
	struct bench_py py[3];
	struct bench_contender c[6] = {
	    {.name = "mp_process fork", .run = ours_fork},
	    {.name = "mp_process forkserver", .run = ours_forkserver},
	    {.name = "mp_process spawn", .run = ours_spawn},
	    {.name = "Python Process (fork)"},
	    {.name = "Python Process (forkserver)"},
	    {.name = "Python Process (spawn)"},
	};
	iters = (int)bench_size(200);
	int pyn = (int)bench_size(20);
	bench_py_contender(&c[3], &py[0], "process_start.py", "%d 0 fork",
			   pyn * 5);
	bench_py_contender(&c[4], &py[1], "process_start.py",
			   "%d 0 forkserver", pyn);
	bench_py_contender(&c[5], &py[2], "process_start.py", "%d 0 spawn",
			   pyn);
	/* Warm up: the arena, the page cache for our own exec. */
	start_join(MP_START_SPAWN, 3);
	start_join(MP_START_FORKSERVER, 3);
	bench_interleave(c, 6, bench_runs(7));
	const char *s = "trivial child";
	bench_rows("start", s, c, 6, 1e6, "us");
	bench_vs(s, "mp forkserver", &c[1].st, "Python forkserver", &c[4].st,
		 BENCH_LOWER | BENCH_HEADLINE);
	bench_vs(s, "mp spawn", &c[2].st, "Python spawn", &c[5].st,
		 BENCH_LOWER | BENCH_HEADLINE);
	bench_vs(s, "mp fork", &c[0].st, "Python fork", &c[3].st, BENCH_LOWER);
	bench_vs(s, "mp forkserver", &c[1].st, "mp fork", &c[0].st,
		 BENCH_LOWER);
	bench_vs(s, "mp spawn", &c[2].st, "mp fork", &c[0].st, BENCH_LOWER);
	return 0;
}
