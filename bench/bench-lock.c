/* SPDX-License-Identifier: MIT */
/*
 * Lock: uncontended acquire+release of mp_lock against a process-shared
 * robust pthread mutex, a plain process-shared pthread mutex, a minimal
 * futex mutex (no owner, no death detection: the floor), sem_t and
 * Python's multiprocessing.Lock; then 2 and 4 processes incrementing one
 * shared counter under mp_lock, the robust pthread mutex and the futex
 * mutex, left to the scheduler and (labelled) pinned one per CPU.
 * Each contender runs interleaved with the others (bench.h): medians,
 * min and max of the runs; the ratios compare medians within this run.
 *
 * Usage: bench-lock [impl [scenario]]: only the contenders whose name
 * starts with `impl` and the scenarios whose name starts with
 * `scenario` (to count one contender's system calls with perf stat);
 * a `scenario` ending in '$' names one scenario exactly.
 * MP_BENCH_LOCK_MOVES=1 also counts, inside the lock, how often the
 * counter's CPU changes (each time, the lock's line and the counter's
 * moved between caches), and prints the median per 1000 increments
 * after each contended scenario; the count costs a few ns an increment.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

/*
 * The floor: a three-state futex mutex (0 free, 1 locked, 2 locked with
 * sleepers), the classic design from Drepper's "Futexes Are Tricky".  A
 * peer, so it issues its own system calls rather than the library's.
 */
struct fmutex {
	_Atomic uint32_t word;
};

static void fmutex_lock(struct fmutex *m)
{
	uint32_t c = 0;
	if (atomic_compare_exchange_strong_explicit(
		&m->word, &c, 1, memory_order_acquire, memory_order_relaxed))
		return;
	for (int i = 0; i < 100; i++) {
		c = 0;
		if (atomic_compare_exchange_weak_explicit(&m->word, &c, 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return;
		__builtin_ia32_pause();
	}
	if (c != 2)
		c = atomic_exchange_explicit(&m->word, 2, memory_order_acquire);
	while (c != 0) {
		syscall(SYS_futex, &m->word, FUTEX_WAIT, 2, NULL, NULL, 0);
		c = atomic_exchange_explicit(&m->word, 2, memory_order_acquire);
	}
}

static void fmutex_unlock(struct fmutex *m)
{
	if (atomic_fetch_sub_explicit(&m->word, 1, memory_order_release) != 1) {
		atomic_store_explicit(&m->word, 0, memory_order_release);
		syscall(SYS_futex, &m->word, FUTEX_WAKE, 1, NULL, NULL, 0);
	}
}

enum kind { MP_LOCK, ROBUST, PTHREAD, FUTEX, SEM, KINDS };

static const char *names[KINDS] = {"mp_lock", "pthread_mutex robust pshared",
				   "pthread_mutex pshared",
				   "futex mutex (no owner)", "sem_t pshared"};

struct shared {
	mp_lock lock;
	char pad1[64 - sizeof(mp_lock)];
	pthread_mutex_t robust;
	char pad2[64];
	pthread_mutex_t plain;
	char pad3[64];
	struct fmutex fm;
	char pad4[64];
	sem_t sem;
	char pad5[64];
	volatile long counter;
	volatile long moves; /* MP_BENCH_LOCK_MOVES: CPU changes */
	volatile int last_cpu;
	_Atomic int ready;
};

static struct shared *sh;
static bool count_moves;

/* The increment, under the lock. */
static inline void bump(void)
{
	sh->counter++;
	if (count_moves) {
		int cpu = sched_getcpu();
		if (cpu != sh->last_cpu) {
			sh->moves++;
			sh->last_cpu = cpu;
		}
	}
}

static void init_mutex(pthread_mutex_t *m, bool robust)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (robust)
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

/* One locked increment with the given kind.  noinline keeps each loop
 * body comparable: a call per operation, as a library call costs. */
static inline void locked_inc(enum kind k)
{
	switch (k) {
	case MP_LOCK:
		mp_lock_acquire(&sh->lock, MP_FOREVER);
		bump();
		mp_lock_release(&sh->lock);
		break;
	case ROBUST:
		if (pthread_mutex_lock(&sh->robust) == EOWNERDEAD)
			pthread_mutex_consistent(&sh->robust);
		bump();
		pthread_mutex_unlock(&sh->robust);
		break;
	case PTHREAD:
		pthread_mutex_lock(&sh->plain);
		bump();
		pthread_mutex_unlock(&sh->plain);
		break;
	case FUTEX:
		fmutex_lock(&sh->fm);
		bump();
		fmutex_unlock(&sh->fm);
		break;
	case SEM:
		while (sem_wait(&sh->sem))
			;
		bump();
		sem_post(&sh->sem);
		break;
	default:
		break;
	}
}

struct job {
	enum kind k;
	int procs; /* 0: uncontended, in this process */
	bool pin;  /* one process per CPU */
	long n;
	int runs;  /* contended runs so far, and their moves per 1000 */
	double moves[BENCH_MAX_RUNS];
};

static __attribute__((noinline)) double uncontended(enum kind k, long n)
{
	double t0 = bench_now();
	for (long i = 0; i < n; i++)
		locked_inc(k);
	return (bench_now() - t0) / (double)n;
}

/* procs processes, n increments each, started together.  Returns the
 * wall time per increment, or -1 if the count came out wrong. */
static double contended(struct job *j)
{
	enum kind k = j->k;
	int procs = j->procs;
	bool pin = j->pin;
	long n = j->n;
	pid_t pids[8];
	int ncpu = mp_cpu_count();
	sh->counter = 0;
	sh->moves = 0;
	sh->last_cpu = -1;
	atomic_store(&sh->ready, 0);
	for (int p = 0; p < procs; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			/* The pinned variant spreads the processes over
			 * the CPUs: left to the scheduler, two of them
			 * may share one CPU and hardly contend, as they
			 * do for users. */
			if (pin) {
				cpu_set_t one;
				CPU_ZERO(&one);
				CPU_SET(p % ncpu, &one);
				sched_setaffinity(0, sizeof(one), &one);
			}
			atomic_fetch_add(&sh->ready, 1);
			while (atomic_load(&sh->ready) <= procs)
				sched_yield();
			for (long i = 0; i < n; i++)
				locked_inc(k);
			_exit(0);
		}
	}
	while (atomic_load(&sh->ready) < procs)
		sched_yield();
	double t0 = bench_now();
	atomic_fetch_add(&sh->ready, 1);
	for (int p = 0; p < procs; p++)
		waitpid(pids[p], NULL, 0);
	double t = bench_now() - t0;
	if (j->runs < BENCH_MAX_RUNS)
		j->moves[j->runs++] = 1000.0 * (double)sh->moves /
				      (double)(procs * n);
	return sh->counter == procs * n ? t / (double)(procs * n) : -1;
}

static double run_job(void *arg)
{
	struct job *j = arg;
	return j->procs ? contended(j) : uncontended(j->k, j->n);
}

static const char *only_impl, *only_scen;

/* Drop the contenders and scenarios the command line leaves out. */
static bool keep(const char *scen, struct bench_contender *c, int n)
{
	if (only_scen) {
		size_t len = strlen(only_scen);
		bool exact = len && only_scen[len - 1] == '$';
		if (strncmp(scen, only_scen, exact ? len - 1 : len) ||
		    (exact && scen[len - 1]))
			return false;
	}
	for (int i = 0; i < n; i++)
		if (only_impl && strncmp(c[i].name, only_impl,
					 strlen(only_impl)))
			c[i].run = NULL;
	return true;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("usage: %s [impl [scenario]]\n", argv[0]);
		return 0;
	}
	only_impl = argc > 1 ? argv[1] : NULL;
	only_scen = argc > 2 ? argv[2] : NULL;
	const char *m = getenv("MP_BENCH_LOCK_MOVES");
	count_moves = m && *m && strcmp(m, "0");
	sh = mp_shared_alloc(sizeof(*sh));
	if (!sh)
		return 1;
	mp_lock_init(&sh->lock);
	init_mutex(&sh->robust, true);
	init_mutex(&sh->plain, false);
	sem_init(&sh->sem, 1, 1);

	int runs = bench_runs(7);
	bench_header("lock", "uncontended acquire+release, lower is better");
	struct job jobs[KINDS];
	struct bench_py py;
	struct bench_contender c[KINDS + 1] = {{0}};
	for (int k = 0; k < KINDS; k++) {
		jobs[k] =
		    (struct job){(enum kind)k, 0, false, bench_size(5000000)};
		c[k] = (struct bench_contender){
		    .name = names[k], .run = run_job, .arg = &jobs[k]};
	}
	c[KINDS].name = "Python multiprocessing.Lock";
	bench_py_contender(&c[KINDS], &py, "sync_lock.py", "%ld",
			   bench_size(1000000));
	if (keep("uncontended", c, KINDS + 1)) {
		bench_interleave(c, KINDS + 1, runs);
		bench_rows("lock", "uncontended", c, KINDS + 1, 1e9, "ns");
		bench_vs("uncontended", "mp_lock", &c[MP_LOCK].st,
			 names[ROBUST], &c[ROBUST].st,
			 BENCH_LOWER | BENCH_HEADLINE);
		bench_vs("uncontended", "mp_lock", &c[MP_LOCK].st,
			 names[FUTEX], &c[FUTEX].st, BENCH_LOWER);
		bench_vs("uncontended", "mp_lock", &c[MP_LOCK].st, names[SEM],
			 &c[SEM].st, BENCH_LOWER);
		bench_vs("uncontended", "mp_lock", &c[MP_LOCK].st,
			 "Python Lock", &c[KINDS].st,
			 BENCH_LOWER | BENCH_HEADLINE);
	}

	bench_header("lock", "contended shared counter, wall time per "
			     "increment, lower is better");
	const enum kind cont[3] = {MP_LOCK, ROBUST, FUTEX};
	for (int procs = 2; procs <= 4; procs += 2) {
		for (int pin = 0; pin < 2; pin++) {
			char scen[64];
			snprintf(scen, sizeof(scen), "%d processes%s", procs,
				 pin ? ", pinned one per CPU" : "");
			for (int i = 0; i < 3; i++) {
				jobs[i] = (struct job){cont[i], procs, pin,
						       bench_size(1000000)};
				c[i] = (struct bench_contender){
				    .name = names[cont[i]],
				    .run = run_job,
				    .arg = &jobs[i]};
			}
			if (!keep(scen, c, 3))
				continue;
			bench_interleave(c, 3, runs);
			bench_rows("lock", scen, c, 3, 1e9, "ns");
			for (int i = 0; i < 3 && count_moves; i++) {
				struct bench_stat st =
				    bench_stat_of(jobs[i].moves, jobs[i].runs);
				if (c[i].run && st.n)
					printf("| %s | %s: lock moves between "
					       "CPUs | %.4g | %.4g | %.4g | per "
					       "1000 increments | %d |\n",
					       scen, c[i].name, st.med, st.min,
					       st.max, st.n);
			}
			bench_vs(scen, "mp_lock", &c[0].st, names[ROBUST],
				 &c[1].st,
				 BENCH_LOWER |
				     (procs == 2 && !pin ? BENCH_HEADLINE : 0));
			bench_vs(scen, "mp_lock", &c[0].st, names[FUTEX],
				 &c[2].st, BENCH_LOWER);
		}
	}
	return 0;
}
