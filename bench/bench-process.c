/* SPDX-License-Identifier: MIT */
/*
 * Process start+join latency: mp_process against raw fork+waitpid, vfork,
 * posix_spawn of /bin/true and Python's multiprocessing.Process (fork), in
 * one run; then again with a 1 GiB touched heap in the parent, since fork
 * copies page tables.  The contenders run interleaved (bench.h): medians,
 * min and max of the runs; ratios of medians.  The heap scenario runs 5
 * times, not 7: each Python run touches its own 1 GiB.
 */
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

extern char **environ;

static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

static int iters;

static double per_op(double t0, int n)
{
	return (bench_now() - t0) / n;
}

static double raw_fork(void *arg)
{
	(void)arg;
	int n = iters;
	double t0 = bench_now();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
	}
	return per_op(t0, n);
}

/* Its own frame: the child only calls _exit, so nothing is clobbered. */
static __attribute__((noinline)) pid_t vfork_exit(void)
{
	pid_t pid = vfork();
	if (pid == 0)
		_exit(0);
	return pid;
}

static double raw_vfork(void *arg)
{
	(void)arg;
	int n = iters;
	double t0 = bench_now();
	for (int i = 0; i < n; i++)
		waitpid(vfork_exit(), NULL, 0);
	return per_op(t0, n);
}

static double spawn_true(void *arg)
{
	int n = iters;
	char arg0[] = "true";
	char *argv[] = {arg0, NULL};
	(void)arg;
	double t0 = bench_now();
	for (int i = 0; i < n; i++) {
		pid_t pid;
		if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ))
			return -1;
		waitpid(pid, NULL, 0);
	}
	return per_op(t0, n);
}

static double ours(void *arg)
{
	(void)arg;
	int n = iters;
	double t0 = bench_now();
	for (int i = 0; i < n; i++) {
		mp_process *p = mp_process_new(nothing, NULL);
		mp_process_start(p);
		mp_process_join(p, MP_FOREVER);
		mp_process_free(p);
	}
	return per_op(t0, n);
}

static void run(const char *scenario, int n, int heap_mib, int runs)
{
	struct bench_py py;
	struct bench_contender c[5] = {
	    {.name = "mp_process start+join", .run = ours},
	    {.name = "fork+_exit+waitpid", .run = raw_fork},
	    {.name = "vfork+_exit+waitpid", .run = raw_vfork},
	    {.name = "posix_spawn /bin/true", .run = spawn_true},
	    {.name = "Python Process (fork)"},
	};
	iters = n;
	bench_py_contender(&c[4], &py, "process_start.py", "%d %d", n,
			   heap_mib);
	bench_interleave(c, 5, runs);
	bench_rows("process", scenario, c, 5, 1e6, "us");
	/* Time of raw fork over ours: 1.0 is as fast as a bare fork. */
	bench_vs(scenario, "mp_process", &c[0].st, "bare fork+waitpid",
		 &c[1].st, BENCH_LOWER | (heap_mib ? 0 : BENCH_HEADLINE));
	bench_vs(scenario, "mp_process", &c[0].st, "Python Process", &c[4].st,
		 BENCH_LOWER | (heap_mib ? 0 : BENCH_HEADLINE));
}

int main(void)
{
	bench_header("process", "start+join latency, lower is better");
	run("small parent", (int)bench_size(300), 0, bench_runs(7));
	/* 4 KiB pages, as a fragmented heap has: fork copies a page table
	 * entry for each (huge pages would hide the cost). */
	int heap_mib = bench_quick() ? 64 : 1024;
	size_t heap = (size_t)heap_mib << 20;
	char *ballast = mmap(NULL, heap, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ballast == MAP_FAILED)
		return 1;
	madvise(ballast, heap, MADV_NOHUGEPAGE);
	memset(ballast, 1, heap);
	char scen[64];
	if (heap_mib % 1024)
		snprintf(scen, sizeof(scen),
			 "%d MiB touched heap (4 KiB pages)", heap_mib);
	else
		snprintf(scen, sizeof(scen),
			 "%d GiB touched heap (4 KiB pages)", heap_mib / 1024);
	run(scen, bench_quick() ? 5 : 20, heap_mib, bench_runs(5));
	munmap(ballast, heap);
	return 0;
}
