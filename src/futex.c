/* SPDX-License-Identifier: MIT */
/*
 * The only file that issues SYS_futex.
 *
 * Every futex here is shared between processes, so FUTEX_PRIVATE_FLAG is
 * never set: with it the kernel would key the futex on this process's
 * address space and a waiter in another process would never be woken.
 * Deadlines are absolute CLOCK_MONOTONIC times (FUTEX_WAIT_BITSET), so a
 * retry after EINTR does not extend the wait.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex.h"

int mp__futex_wait(_Atomic uint32_t *word, uint32_t expected,
		   mp__deadline deadline)
{
	struct timespec ts;
	struct timespec *tsp = NULL;

	if (deadline != MP__NEVER) {
		if (mp__now_ns() >= deadline)
			return -ETIMEDOUT;
		ts.tv_sec = (time_t)(deadline / 1000000000);
		ts.tv_nsec = (long)(deadline % 1000000000);
		tsp = &ts;
	}
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp,
			 NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == -1 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

int mp__futex_wake(_Atomic uint32_t *word, int n)
{
	long r = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
	return r < 0 ? 0 : (int)r;
}
