/* SPDX-License-Identifier: MIT */
/* 2. A shared counter without a lock: the race, shown honestly. */
/*
 * The tutorial's "wrong example":
 *
 *     def increase_count():
 *         global count
 *         count += 1
 *     ...
 *     print(count)  # 可能得到的结果并不是 0
 *
 * As written it cannot show the race: a global is not shared between
 * processes, each child changes its own copy, and the parent prints 0
 * whatever happens.  Here the counter lives in shared memory
 * (mp_shared_alloc), so both processes really change the same integer, and
 * each does it many times.  `count += 1` is a load, an add and a store;
 * when the two processes interleave them, one update overwrites the other
 * and the result drifts from 0.  (Whether it shows depends on the machine
 * and the moment: on one core the two may never interleave.)
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>

#include <multiproc.h>

#define TIMES 10000000

struct shared {
	/* volatile: the compiler must load and store on every update, as
	 * the Python interpreter does, not add TIMES in one go. */
	volatile long count;
	/* A start line: starting a process takes longer than a short loop,
	 * so without it the first child could finish before the second
	 * begins, and there would be nothing to race with. */
	_Atomic int ready;
};

static struct shared *s;

static void start_together(void)
{
	atomic_fetch_add_explicit(&s->ready, 1, memory_order_relaxed);
	while (atomic_load_explicit(&s->ready, memory_order_relaxed) < 2)
		sched_yield();
}

static int increase_count(void *arg)
{
	(void)arg;
	start_together();
	for (int i = 0; i < TIMES; i++)
		s->count += 1;
	return 0;
}

static int decrease_count(void *arg)
{
	(void)arg;
	start_together();
	for (int i = 0; i < TIMES; i++)
		s->count -= 1;
	return 0;
}

int main(void)
{
	s = mp_shared_alloc(sizeof(*s));
	if (!s) {
		perror("mp_shared_alloc");
		return 1;
	}
	mp_process *process1 = mp_process_new(increase_count, NULL);
	mp_process *process2 = mp_process_new(decrease_count, NULL);
	if (!process1 || !process2 || mp_process_start(process1) ||
	    mp_process_start(process2)) {
		perror("start");
		return 1;
	}
	mp_process_join(process1, MP_FOREVER);
	mp_process_join(process2, MP_FOREVER);
	long got = s->count;
	printf("预期 0, 实际 %ld (expected 0, got %ld: %d increments and "
	       "%d decrements without a lock)\n",
	       got, got, TIMES, TIMES);
	if (got != 0)
		printf("可能得到的结果并不是 0 (the result is not 0: updates "
		       "were lost to the race)\n");
	else
		printf("这次碰巧是 0 (0 this time, by luck: the race did not "
		       "show)\n");
	mp_process_free(process1);
	mp_process_free(process2);
	mp_shared_free(s);
	return 0;
}
