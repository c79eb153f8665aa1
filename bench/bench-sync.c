/*
 * Semaphore and Event: ping-pong round trip between two processes, each
 * waking the other in turn.  mp_semaphore and mp_event against a pair of
 * process-shared sem_t (the reference) and Python's Semaphore and
 * Event, in the same run.  Each contender runs interleaved with the
 * others, best of several rounds.
 */
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

enum kind { MP_SEM, MP_EVENT, SEM_T, KINDS };

static const char *names[KINDS] = {"mp_semaphore", "mp_event",
				   "sem_t pshared"};

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

/* Seconds per round trip. */
static double round_trip(enum kind k, int n)
{
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
	const int n = 20000;
	double best[KINDS] = {1e9, 1e9, 1e9};
	for (int round = 0; round < 5; round++)
		for (int k = 0; k < KINDS; k++) {
			double v = round_trip((enum kind)k, n);
			if (v < best[k])
				best[k] = v;
		}
	for (int k = 0; k < KINDS; k++)
		bench_row("sync", "ping-pong", names[k], best[k] * 1e6, "us");
	bool py = bench_have_python();
	double pys = py ? bench_python("sync_pingpong.py", "sem %d", 5000) : -1;
	double pye = py ? bench_python("sync_pingpong.py", "event %d", 5000) : -1;
	if (pys > 0)
		bench_row("sync", "ping-pong", "Python Semaphore", pys * 1e6,
			  "us");
	if (pye > 0)
		bench_row("sync", "ping-pong", "Python Event", pye * 1e6, "us");
	bench_ratio("ping-pong", "mp_semaphore", "sem_t",
		    best[SEM_T] / best[MP_SEM]);
	bench_ratio("ping-pong", "mp_event", "sem_t",
		    best[SEM_T] / best[MP_EVENT]);
	if (pys > 0)
		bench_ratio("ping-pong", "mp_semaphore", "Python Semaphore",
			    pys / best[MP_SEM]);
	if (pye > 0)
		bench_ratio("ping-pong", "mp_event", "Python Event",
			    pye / best[MP_EVENT]);
	return 0;
}
