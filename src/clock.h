/* SPDX-License-Identifier: MIT */
#ifndef MP_CLOCK_H
#define MP_CLOCK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "multiproc/common.h"

/* An absolute CLOCK_MONOTONIC time in nanoseconds, or MP__NEVER. */
typedef int64_t mp__deadline;
#define MP__NEVER INT64_MAX

static inline int64_t mp__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether a call may take timeout_s: not NaN, and not a finite number
 * above MP_TIMEOUT_MAX (a deadline that far would overflow the clock's
 * nanoseconds).  Every public call that takes a timeout checks this first,
 * before any fast path, and returns -EINVAL when it fails: a NaN from a
 * bad computation must not silently block forever. */
static inline bool mp__timeout_ok(double timeout_s)
{
	return timeout_s <= MP_TIMEOUT_MAX || timeout_s == (double)INFINITY;
}

/* The deadline for a timeout in seconds that passed mp__timeout_ok:
 * negative (MP_FOREVER) and +inf never pass, 0 has already passed (try
 * once).  MP_TIMEOUT_MAX seconds from any uptime fit in an int64_t. */
static inline mp__deadline mp__deadline_in(double timeout_s)
{
	if (!(timeout_s >= 0) || timeout_s > MP_TIMEOUT_MAX)
		return MP__NEVER;
	return mp__now_ns() + (int64_t)(timeout_s * 1e9);
}

/* Nanoseconds left, 0 once passed, INT64_MAX for never. */
static inline int64_t mp__remaining_ns(mp__deadline d)
{
	if (d == MP__NEVER)
		return INT64_MAX;
	int64_t left = d - mp__now_ns();
	return left > 0 ? left : 0;
}

/* The earlier of a deadline and now + slice_ns. */
static inline mp__deadline mp__deadline_min_slice(mp__deadline d,
						  int64_t slice_ns)
{
	int64_t s = mp__now_ns() + slice_ns;
	return s < d ? s : d;
}

/* Milliseconds left for poll(2), rounded up; -1 for never. */
static inline int mp__remaining_ms(mp__deadline d)
{
	int64_t ns = mp__remaining_ns(d);
	if (ns == INT64_MAX)
		return -1;
	int64_t ms = (ns + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

#endif
