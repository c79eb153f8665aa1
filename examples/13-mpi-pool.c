/* SPDX-License-Identifier: MIT */
/* 13. The pool of example 7 on MPI ranks: one machine or many. */
/*
 * examples/07-pool.c with one change: the pool comes from
 * mp_mpi_pool_new(&argc, &argv) (libmultiproc-mpi), so its workers are
 * the other ranks of an MPI job, on this machine or on others:
 *
 *     mpirun -np 4 ./build/examples/13-mpi-pool
 *     mpirun --hostfile hosts -np 16 ./build/examples/13-mpi-pool
 *
 * Every rank runs this program; rank 0 goes on past mp_mpi_pool_new and
 * does the work below, the others serve its tasks inside that call and
 * exit when rank 0 frees the pool.  The rest is the same source: the
 * same map, imap_unordered, close, join and free.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <multiproc.h>
#include <multiproc/mpi.h>

#define SPAN 2000 /* numbers per item */
#define ITEMS 160

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The task: how many primes in [start, start + SPAN).  Plain C, no
 * knowledge of the pool: it reads one item and writes one result. */
static int count_primes(const void *in, void *out)
{
	uint32_t start = *(const uint32_t *)in;
	uint32_t count = 0;

	for (uint32_t x = start; x < start + SPAN; x++) {
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
	return 0; /* a negative error (-errno) would fail this item */
}

int main(int argc, char **argv)
{
	uint32_t starts[ITEMS], serial[ITEMS], parallel[ITEMS];
	for (int i = 0; i < ITEMS; i++)
		starts[i] = 100000000u + (uint32_t)i * SPAN;

	/* The workers are the other ranks (mpirun -np N: N - 1 workers). */
	mp_pool *pool = mp_mpi_pool_new(&argc, &argv);
	if (!pool) {
		perror("mp_mpi_pool_new");
		return 1;
	}
	printf("%d CPUs, %d worker processes\n", mp_cpu_count(),
	       mp_pool_processes(pool));

	double t0 = now();
	for (int i = 0; i < ITEMS; i++)
		count_primes(&starts[i], &serial[i]);
	double t_serial = now() - t0;

	t0 = now();
	int err = mp_pool_map(pool, count_primes, starts, sizeof(starts[0]),
			      parallel, sizeof(parallel[0]), ITEMS, 0);
	double t_pool = now() - t0;
	if (err) {
		fprintf(stderr, "map: %s\n", mp_strerror(err));
		return 1;
	}

	uint64_t total = 0;
	for (int i = 0; i < ITEMS; i++) {
		if (serial[i] != parallel[i]) {
			fprintf(stderr, "item %d differs\n", i);
			return 1;
		}
		total += parallel[i];
	}
	printf("%llu primes in [%u, %u)\n", (unsigned long long)total,
	       starts[0], starts[ITEMS - 1] + SPAN);
	printf("serial: %.3f s   pool: %.3f s   speed-up: %.2fx\n", t_serial,
	       t_pool, t_serial / t_pool);

	/* imap_unordered: an iterator that hands out each result as soon as
	 * a worker has it (chunksize 1: item by item). */
	printf("imap_unordered, first 8 items in completion order:");
	mp_imap *it = mp_pool_imap_unordered(pool, count_primes, starts,
					     sizeof(starts[0]),
					     sizeof(uint32_t), 8, 1);
	size_t index;
	uint32_t count;
	int r;
	while ((r = mp_imap_next(it, &index, &count, MP_FOREVER)) !=
	       MP_ECLOSED) {
		if (r)
			printf(" [%zu failed: %s]", index, mp_strerror(r));
		else
			printf(" %zu:%u", index, count);
	}
	printf("\n");
	mp_imap_free(it);

	/* No more tasks; wait for the workers to finish and exit: Python's
	 * pool.close() and pool.join().  (Python's "with Pool() as pool:"
	 * calls pool.terminate() on exit instead, which kills the workers
	 * whatever they are doing: that is mp_pool_terminate().) */
	mp_pool_close(pool);
	mp_pool_join(pool);
	mp_pool_free(pool);
	return 0;
}
