/* SPDX-License-Identifier: MIT */
/*
 * Semaphore and Event: ping-pong round trip between two processes, each
 * waking the other in turn.  mp_semaphore and mp_event against a pair of
 * process-shared sem_t (the reference) and Python's Semaphore and
 * Event, in the same run.  Each contender runs interleaved with the
 * others (bench.h): medians, min and max; ratios of medians.
 */
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

enum kind { MP_SEM, MP_EVENT, SEM_T, KINDS };

static const char *names[KINDS] = {"mp_semaphore", "mp_event", "sem_t pshared"};

struct shared {
	mp_semaphore ping_s;
	char pad1[64 - sizeof(mp_semaphore)];
	mp_semaphore pong_s;
	char pad2[64 - sizeof(mp_semaphore)];
	mp_event ping_e;
	char pad3[64 - sizeof(mp_event)];
	mp_event pong_e;
	char pad4[64 - sizeof(mp_event)];
	sem_t ping_t;
	char pad5[64];
	sem_t pong_t;
};

static struct shared *sh;

static void pong(enum kind k, int n)
{
	for (int i = 0; i < n; i++) {
		switch (k) {
		case MP_SEM:
			mp_semaphore_acquire(&sh->ping_s, MP_FOREVER);
			mp_semaphore_release(&sh->pong_s);
			break;
		case MP_EVENT:
			mp_event_wait(&sh->ping_e, MP_FOREVER);
			mp_event_clear(&sh->ping_e);
			mp_event_set(&sh->pong_e);
			break;
		default:
			while (sem_wait(&sh->ping_t))
				;
			sem_post(&sh->pong_t);
			break;
		}
	}
}

static void ping(enum kind k)
{
	switch (k) {
	case MP_SEM:
		mp_semaphore_release(&sh->ping_s);
		mp_semaphore_acquire(&sh->pong_s, MP_FOREVER);
		break;
	case MP_EVENT:
		mp_event_set(&sh->ping_e);
		mp_event_wait(&sh->pong_e, MP_FOREVER);
		mp_event_clear(&sh->pong_e);
		break;
	default:
		sem_post(&sh->ping_t);
		while (sem_wait(&sh->pong_t))
			;
		break;
	}
}

static int rounds;

/* Seconds per round trip; arg is the kind. */
static double round_trip(void *arg)
{
	enum kind k = (enum kind)(long)arg;
	int n = rounds;
	pid_t pid = fork();
	if (pid == 0) {
		pong(k, n + 100);
		_exit(0);
	}
	for (int i = 0; i < 100; i++) /* warm up */
		ping(k);
	double t0 = bench_now();
	for (int i = 0; i < n; i++)
		ping(k);
	double t = bench_now() - t0;
	waitpid(pid, NULL, 0);
	return t / n;
}

int main(void)
{
	sh = mp_shared_alloc(sizeof(*sh));
	if (!sh)
		return 1;
	mp_semaphore_init(&sh->ping_s, 0);
	mp_semaphore_init(&sh->pong_s, 0);
	mp_event_init(&sh->ping_e);
	mp_event_init(&sh->pong_e);
	sem_init(&sh->ping_t, 1, 0);
	sem_init(&sh->pong_t, 1, 0);

	bench_header("sync", "ping-pong round trip between two processes, "
			     "lower is better");
	rounds = (int)bench_size(20000);
	struct bench_py pys, pye;
	struct bench_contender c[KINDS + 2] = {{0}};
	for (int k = 0; k < KINDS; k++)
		c[k] = (struct bench_contender){.name = names[k],
						.run = round_trip,
						.arg = (void *)(long)k};
	c[KINDS].name = "Python Semaphore";
	bench_py_contender(&c[KINDS], &pys, "sync_pingpong.py", "sem %ld",
			   bench_size(5000));
	c[KINDS + 1].name = "Python Event";
	bench_py_contender(&c[KINDS + 1], &pye, "sync_pingpong.py", "event %ld",
			   bench_size(5000));
	bench_interleave(c, KINDS + 2, bench_runs(7));
	bench_rows("sync", "ping-pong", c, KINDS + 2, 1e6, "us");
	bench_vs("ping-pong", "mp_semaphore", &c[MP_SEM].st, "sem_t",
		 &c[SEM_T].st, BENCH_LOWER | BENCH_HEADLINE);
	bench_vs("ping-pong", "mp_event", &c[MP_EVENT].st, "sem_t",
		 &c[SEM_T].st, BENCH_LOWER);
	bench_vs("ping-pong", "mp_semaphore", &c[MP_SEM].st, "Python Semaphore",
		 &c[KINDS].st, BENCH_LOWER | BENCH_HEADLINE);
	bench_vs("ping-pong", "mp_event", &c[MP_EVENT].st, "Python Event",
		 &c[KINDS + 1].st, BENCH_LOWER);
	return 0;
}
