/* SPDX-License-Identifier: MIT */
#ifndef MP_SPIN_H
#define MP_SPIN_H

/*
 * How long to spin before a futex sleep.  Spinning pays only when the
 * thread that will wake us runs while we spin: then a hand-off takes well
 * under a microsecond and nobody sleeps.  When it shares our CPU, every
 * spin is lost time (a ping-pong on one CPU took 2.2x sem_t's time with a
 * fixed 100-pause spin, a pause being about 22 ns here).
 *
 * So each object keeps a budget hint, shared by its users: a spin that
 * succeeds doubles it, a wait that ends up sleeping halves it, between
 * SPIN_MIN and SPIN_MAX.  Every 16th wait of a thread spins the full
 * SPIN_MAX, so a budget that has shrunk learns when spinning pays again.
 * With one CPU online (read once per process) we never spin.  Not our
 * affinity mask: a process pinned to one CPU still waits for threads
 * that run on the others (the pinned benchmarks spun not at all).  The
 * hint is only a hint: races on it cost nothing but precision.
 */
#include <sched.h>
#include <stdatomic.h>
#include <sys/rseq.h>
#include <unistd.h>

#include "internal.h"

#define MP__SPIN_MIN 2
#define MP__SPIN_MAX 64

static inline bool mp__multi_cpu(void)
{
	static _Atomic int ncpu; /* 0 until first asked */
	int n = atomic_load_explicit(&ncpu, memory_order_relaxed);

	if (MP__UNLIKELY(n == 0)) {
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		atomic_store_explicit(&ncpu, n, memory_order_relaxed);
	}
	return n > 1;
}

/* How many pauses to spin for this wait. */
static inline int mp__spin_budget(_Atomic uint32_t *hint)
{
	static __thread unsigned waits;

	if (!mp__multi_cpu())
		return 0;
	if (++waits % 16 == 0)
		return MP__SPIN_MAX;
	uint32_t h = atomic_load_explicit(hint, memory_order_relaxed);
	return h ? (int)h : MP__SPIN_MAX;
}

/* Record how the wait went: won = the spin got it without sleeping. */
static inline void mp__spin_result(_Atomic uint32_t *hint, bool won)
{
	uint32_t h = atomic_load_explicit(hint, memory_order_relaxed);

	if (h == 0)
		h = MP__SPIN_MAX;
	h = won ? h * 2 : h / 2;
	if (h < MP__SPIN_MIN)
		h = MP__SPIN_MIN;
	if (h > MP__SPIN_MAX)
		h = MP__SPIN_MAX;
	atomic_store_explicit(hint, h, memory_order_relaxed);
}

/* The CPU we run on, + 1 (0: unknown): one load from the rseq area glibc
 * registers for each thread (sched_getcpu reads it too, but as a call:
 * 3 ns here, a tenth of a 64-byte put). */
static inline uint32_t mp__cpu_here(void)
{
#ifdef RSEQ_SIG
	if (MP__LIKELY(__rseq_size >= 8)) {
		const struct rseq *rs =
			(const struct rseq *)(void *)((char *)
			__builtin_thread_pointer() + __rseq_offset);
		int32_t c = (int32_t)__atomic_load_n(&rs->cpu_id,
						     __ATOMIC_RELAXED);
		if (c >= 0)
			return (uint32_t)c + 1;
	}
#endif
	int c = sched_getcpu();
	return c < 0 ? 0 : (uint32_t)c + 1;
}

#endif
