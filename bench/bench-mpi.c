/* SPDX-License-Identifier: MIT */
/*
 * bench-mpi: the pool on MPI ranks against mpi4py.futures
 * (MPIPoolExecutor) and against our own local pool, all under the same
 * `mpirun --oversubscribe -np 4` (3 workers).
 *
 * Run plainly (build/bench/bench-mpi, as scripts/bench.sh does), it is
 * the driver: round after round, it runs `mpirun -np 4` on itself and on
 * bench/python/mpi4py_pool.py (`python3 -m mpi4py.futures`), alternating
 * which goes first, and prints the median, min and max of the rounds and
 * the ratios of medians.  Under mpirun (OMPI_COMM_WORLD_SIZE set) it is
 * one round: rank 0 makes a local pool of ranks - 1 workers before MPI
 * starts (forked while the process is small), then the MPI pool, and
 * measures each scenario once on each: a chunksize-1 map of N1 trivial
 * tasks (tasks/s), apply_async + get round trips (seconds each, N2 of
 * them), an auto-chunked map of N3 items (tasks/s), printing "sample
 * SCENARIO IMPL VALUE" lines, as the Python peer does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <multiproc.h>
#include <multiproc/mpi.h>

#include "bench.h"

static int square(const void *in, void *out)
{
	int64_t x = *(const int64_t *)in;
	*(int64_t *)out = x * x;
	return 0;
}

static ssize_t square_apply(const void *arg, size_t len, void *out,
			    size_t cap)
{
	int64_t x;
	(void)len, (void)cap;
	memcpy(&x, arg, sizeof(x));
	x *= x;
	memcpy(out, &x, sizeof(x));
	return sizeof(x);
}

static double map_rate(mp_pool *pool, int64_t *in, int64_t *out, size_t n,
		       size_t chunksize)
{
	double t0 = bench_now();
	if (mp_pool_map(pool, square, in, 8, out, 8, n, chunksize) ||
	    out[n - 1] != (int64_t)((n - 1) * (n - 1)))
		return -1;
	return (double)n / (bench_now() - t0);
}

static double apply_rtt(mp_pool *pool, long n)
{
	double t0 = bench_now();
	for (int64_t i = 0; i < n; i++) {
		int64_t y = 0;
		if (mp_pool_apply(pool, square_apply, &i, 8, &y, 8) != 8 ||
		    y != i * i)
			return -1;
	}
	return (bench_now() - t0) / (double)n;
}

#define NSCEN 3
#define NIMPL 3
static const char *scen[NSCEN] = {"map-cs1", "apply-rtt", "map-auto"};
static const char *impl[NIMPL] = {"ours-mpi", "mpi4py.futures",
				  "ours-local"};

/* Run one job; file its samples in v[scenario][impl][round]. */
static void job(const char *cmd, double v[NSCEN][NIMPL][BENCH_MAX_RUNS],
		int round)
{
	char line[256], sc[64], im[64];
	double x;
	FILE *f = popen(cmd, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "sample %63s %63s %lf", sc, im, &x) == 3)
			for (int a = 0; a < NSCEN; a++)
				for (int b = 0; b < NIMPL; b++)
					if (!strcmp(sc, scen[a]) &&
					    !strcmp(im, impl[b]))
						v[a][b][round] = x;
	if (pclose(f))
		fprintf(stderr, "bench-mpi: failed: %s\n", cmd);
}

static int drive(const char *self)
{
	static double v[NSCEN][NIMPL][BENCH_MAX_RUNS];
	long n1 = bench_size(20000), n2 = bench_size(2000);
	long n3 = bench_size(400000);
	int runs = bench_runs(5);
	const char *env = "OMPI_ALLOW_RUN_AS_ROOT=1 "
			  "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
			  "mpirun --oversubscribe -np 4";
	char ours[4096 + 256], peer[512];

	if (system("command -v mpirun >/dev/null 2>&1")) {
		printf("(mpirun not found: no bench-mpi)\n");
		return 0;
	}
	snprintf(ours, sizeof(ours), "%s '%s' %ld %ld %ld 2>/dev/null", env,
		 self, n1, n2, n3);
	snprintf(peer, sizeof(peer),
		 "%s /usr/bin/python3 -m mpi4py.futures "
		 "bench/python/mpi4py_pool.py %ld %ld %ld 2>/dev/null",
		 env, n1, n2, n3);
	bool have_peer = system("/usr/bin/python3 -c 'import mpi4py.futures' "
				">/dev/null 2>&1") == 0;
	for (int r = 0; r < runs; r++) {
		if (r % 2 == 0 || !have_peer)
			job(ours, v, r);
		if (have_peer)
			job(peer, v, r);
		if (r % 2 == 1 && have_peer)
			job(ours, v, r);
	}
	bench_header("bench-mpi",
		     "the pool on MPI ranks vs mpi4py.futures and the local "
		     "pool (mpirun --oversubscribe -np 4: 3 workers)");
	char label[3][96];
	snprintf(label[0], sizeof(label[0]),
		 "map of %ld trivial tasks, chunksize 1", n1);
	snprintf(label[1], sizeof(label[1]),
		 "apply round trip (submit().result())");
	snprintf(label[2], sizeof(label[2]),
		 "map of %ld items, automatic chunks", n3);
	for (int a = 0; a < NSCEN; a++) {
		struct bench_stat st[NIMPL];
		double scale = a == 1 ? 1e6 : 1;
		const char *unit = a == 1 ? "us" : "tasks/s";
		for (int b = 0; b < NIMPL; b++) {
			st[b] = bench_stat_of(v[a][b], runs);
			if (b == 1 && !have_peer)
				continue;
			bench_row("bench-mpi", label[a], impl[b], &st[b], scale,
				  unit);
		}
		int flags = a == 1 ? BENCH_LOWER : 0;
		bench_vs(label[a], "ours-mpi", &st[0], "mpi4py.futures", &st[1],
			 flags | BENCH_HEADLINE);
		bench_vs(label[a], "ours-mpi", &st[0], "ours-local", &st[2],
			 flags);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (!getenv("OMPI_COMM_WORLD_SIZE")) {
		char self[4096];
		ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (len < 0)
			return 1;
		self[len] = 0;
		return drive(self);
	}
	long n1 = argc > 1 ? atol(argv[1]) : 20000;
	long n2 = argc > 2 ? atol(argv[2]) : 2000;
	long n3 = argc > 3 ? atol(argv[3]) : 400000;
	const char *rank = getenv("OMPI_COMM_WORLD_RANK");
	const char *size = getenv("OMPI_COMM_WORLD_SIZE");
	mp_pool *local = NULL;

	if (n1 < 1 || n2 < 1 || n3 < 1)
		return 2;
	if (rank && atoi(rank) == 0 && size && atoi(size) > 1) {
		local = mp_pool_new(atoi(size) - 1);
		if (!local) {
			perror("mp_pool_new");
			return 1;
		}
	}
	mp_pool *mpi = mp_mpi_pool_new(&argc, &argv);
	if (!mpi) {
		perror("mp_mpi_pool_new");
		return 1;
	}
	size_t nmax = (size_t)(n1 > n3 ? n1 : n3);
	int64_t *in = malloc(nmax * 8), *out = malloc(nmax * 8);
	if (!in || !out || !local)
		return 1;
	for (size_t i = 0; i < nmax; i++)
		in[i] = (int64_t)i;
	mp_pool *pools[2] = {mpi, local};
	const char *names[2] = {"ours-mpi", "ours-local"};
	/* Warm up both: page faults, first messages. */
	for (int k = 0; k < 2; k++) {
		map_rate(pools[k], in, out, 1000, 1);
		apply_rtt(pools[k], 100);
	}
	for (int k = 0; k < 2; k++)
		printf("sample map-cs1 %s %.6g\n", names[k],
		       map_rate(pools[k], in, out, (size_t)n1, 1));
	for (int k = 0; k < 2; k++)
		printf("sample apply-rtt %s %.6g\n", names[k],
		       apply_rtt(pools[k], n2));
	for (int k = 0; k < 2; k++)
		printf("sample map-auto %s %.6g\n", names[k],
		       map_rate(pools[k], in, out, (size_t)n3, 0));
	fflush(stdout);
	free(in);
	free(out);
	mp_pool_free(local);
	mp_pool_free(mpi);
	return 0;
}
