/* SPDX-License-Identifier: MIT */
/* 9. Beyond Python: a pool worker dies mid-task; the map says so, the pool goes on. */
/*
 * Python's Pool.map hangs forever when a worker is killed (the OOM killer,
 * a segfault in native code).  Our map returns MP_EWORKER, every item that
 * did run has its result, the dead worker is replaced, and the next map
 * works.
 */
#include <signal.h>
#include <stdio.h>

#include <multiproc.h>

#define N 12

static int square_or_crash(const void *in, void *out)
{
	int x = *(const int *)in;

	if (x == 7)
		raise(SIGKILL); /* a crash in the middle of item 7 */
	*(int *)out = x * x;
	return 0;
}

static int square(const void *in, void *out)
{
	int x = *(const int *)in;

	*(int *)out = x * x;
	return 0;
}

int main(void)
{
	int in[N], out[N] = {0}, errs[N];

	for (int i = 0; i < N; i++)
		in[i] = i;
	mp_pool *pool = mp_pool_new(2);
	if (!pool)
		return 1;

	/* chunksize 1: a death costs only the item the worker was running. */
	int r = mp_pool_map_errors(pool, square_or_crash, in, sizeof(int), out,
				   sizeof(int), errs, N, 1);
	printf("first map: %s\n", mp_err_name(r));
	for (int i = 0; i < N; i++) {
		if (errs[i])
			printf("  item %d: %s\n", i, mp_strerror(errs[i]));
		else
			printf("  item %d: %d\n", i, out[i]);
	}

	r = mp_pool_map(pool, square, in, sizeof(int), out, sizeof(int), N, 0);
	printf("second map: %s, item 7 = %d\n", mp_err_name(r), out[7]);
	mp_pool_free(pool);
	return 0;
}
