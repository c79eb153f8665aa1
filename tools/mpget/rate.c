/* SPDX-License-Identifier: MIT */
/*
 * --limit-rate: one limit for all the transfers of all the workers.
 *
 * The generic cell rate algorithm over one shared word: `tat` is the
 * theoretical arrival time, the moment at which the bytes let through so
 * far would have arrived at exactly the limit.  A chunk may pass while tat
 * is less than BURST ahead of now, and pushes tat on by its size over the
 * limit.  So over any interval the bytes let through are at most
 * limit * interval + limit * BURST + one chunk, whichever transfers and
 * workers took them, and a transfer that was idle does not save up credit
 * beyond BURST.  A chunk that may not pass is paused (libcurl keeps it and
 * hands it to us again), and the worker resumes its paused transfers when
 * rate_wait_ns() says the time has come.
 */
#include <time.h>

#include "mpget.h"

#define BURST_NS (250 * 1000000LL)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void rate_init(struct rate *r, int64_t limit)
{
	r->limit = limit;
	atomic_store_explicit(&r->tat, 0, memory_order_relaxed);
}

bool rate_take(struct rate *r, size_t n)
{
	int64_t now = now_ns();
	int64_t cost = (int64_t)((double)n * 1e9 / (double)r->limit);
	int64_t tat = atomic_load_explicit(&r->tat, memory_order_relaxed);

	do {
		if (tat - now >= BURST_NS)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
		&r->tat, &tat, (tat > now ? tat : now) + cost,
		memory_order_relaxed, memory_order_relaxed));
	return true;
}

int64_t rate_wait_ns(struct rate *r)
{
	int64_t wait = atomic_load_explicit(&r->tat, memory_order_relaxed) -
		       BURST_NS - now_ns();

	return wait >= 0 ? wait + 1 : 0;
}

size_t rate_chunk(int64_t limit, size_t max)
{
	/* A chunk is what one pass lets through: about a quarter second's
	 * worth, so that the rate is smooth, but not under 1 KiB. */
	int64_t c = limit / 4;

	if (c < 1024)
		c = 1024;
	return (size_t)c < max ? (size_t)c : max;
}
