/* SPDX-License-Identifier: MIT */
/* Lock: mutual exclusion between processes and threads, owner death. */
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "internal.h"
#include "spin.h"
#include "test.h"

TEST(lock_bad_input)
{
	ASSERT_ERR(mp_lock_init(NULL), -EINVAL);
	ASSERT_ERR(mp_lock_acquire(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_lock_release(NULL), -EINVAL);
	ASSERT_ERR(mp_lock_destroy(NULL), -EINVAL);
	mp_lock zeroed;
	memset(&zeroed, 0, sizeof(zeroed));
	ASSERT_ERR(mp_lock_acquire(&zeroed, 0), -EINVAL); /* never init'ed */
	ASSERT_ERR(mp_lock_acquire(&zeroed, MP_FOREVER), -EINVAL);
	ASSERT_ERR(mp_lock_release(&zeroed), -EINVAL);
	/* The acquire's CAS comes before the check, and puts the 0 back. */
	mp_lock zero;
	memset(&zero, 0, sizeof(zero));
	ASSERT_EQ(memcmp(&zeroed, &zero, sizeof(zero)), 0);
	mp_lock l;
	ASSERT_OK(mp_lock_init(&l));
	ASSERT_ERR(mp_lock_release(&l), -EPERM);
	ASSERT_OK(mp_lock_acquire(&l, 0));
	ASSERT_ERR(mp_lock_acquire(&l, 0), -EDEADLK);
	ASSERT_ERR(mp_lock_acquire(&l, MP_FOREVER), -EDEADLK);
	ASSERT_ERR(mp_lock_destroy(&l), -EBUSY);
	ASSERT_OK(mp_lock_release(&l));
	ASSERT_ERR(mp_lock_release(&l), -EPERM);
	ASSERT_OK(mp_lock_destroy(&l));
	ASSERT_ERR(mp_lock_acquire(&l, 0), -EINVAL);
	ASSERT_ERR(mp_lock_release(&l), -EINVAL);
	ASSERT_EQ(mp__lock_test_state(&l, &(uint64_t){0}, &(uint32_t){0}),
		  -EINVAL);
	mp_lock_free(NULL);
}

struct counter {
	mp_lock lock;
	long value;
	_Atomic int started;
	int ncpu;
};

#define PROCS 4
#define ITERS 100000

static int add_many(void *arg)
{
	struct counter *c = arg;
	for (int i = 0; i < ITERS; i++) {
		if (mp_lock_acquire(&c->lock, MP_FOREVER))
			return 1;
		c->value++;
		if (mp_lock_release(&c->lock))
			return 2;
	}
	return 0;
}

TEST(lock_exact_count_processes)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_lock_init(&c->lock));
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_many, c);
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

/* Waiters that share the holder's CPU yield to it instead of spinning
 * (it cannot run while they do): the count stays exact with every
 * process on one CPU, and with two per CPU. */
static int add_many_on(void *arg)
{
	struct counter *c = arg;
	int cpu = (int)(atomic_fetch_add(&c->started, 1) % c->ncpu);
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return 3;
	return add_many(c);
}

static void count_placed(int ncpu)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_lock_init(&c->lock));
	c->ncpu = ncpu;
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_many_on, c);
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

TEST(lock_exact_count_pinned)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP("one CPU online");
	count_placed(1);
	count_placed(2);
}

static void *add_many_thread(void *arg)
{
	return (void *)(intptr_t)add_many(arg);
}

TEST(lock_exact_count_threads)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_OK(mp_lock_init(&c->lock));
	pthread_t t[PROCS];
	for (int i = 0; i < PROCS; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, add_many_thread, c));
	for (int i = 0; i < PROCS; i++) {
		void *r;
		pthread_join(t[i], &r);
		ASSERT_EQ((intptr_t)r, 0);
	}
	ASSERT_EQ(c->value, (long)PROCS * ITERS);
	mp_shared_free(c);
}

/* Take the lock, say so through the pipe, then hold it until killed. */
static int hold_forever(void *arg)
{
	void **a = arg;
	mp_lock *l = a[0];
	int fd = *(int *)a[1];
	if (mp_lock_acquire(l, MP_FOREVER))
		return 1;
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return 2;
	for (;;)
		pause();
}

static pid_t start_holder(mp_lock *l, int fds[2])
{
	void *args[2] = {l, &fds[1]};
	pid_t pid = test_fork(hold_forever, args);
	char c;
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	return pid;
}

TEST(lock_timeout)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	ASSERT_NOT_NULL(l);
	pid_t holder = start_holder(l, fds);
	ASSERT_ERR(mp_lock_acquire(l, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_lock_acquire(l, 0.15), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.15);
	ASSERT(waited < 5);
	/* It slept, and is no longer counted. */
	uint64_t w;
	uint32_t sleepers;
	ASSERT_OK(mp__lock_test_state(l, &w, &sleepers));
	ASSERT_EQ(sleepers, 0);
	ASSERT(w & MP__LOCK_WAIT);
	ASSERT_ERR(mp_lock_release(l), -EPERM);
	kill(holder, SIGKILL);
	test_wait(holder);
	mp_lock_free(l);
}

struct handover {
	mp_lock lock;
	int got[2]; /* a waiter says it holds the lock */
	int go[2];  /* and is told to release it */
};

static void *take_report_release(void *arg)
{
	struct handover *h = arg;
	char c = 'x';

	if (mp_lock_acquire(&h->lock, MP_FOREVER))
		return (void *)1;
	if (write(h->got[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		return (void *)2;
	return mp_lock_release(&h->lock) ? (void *)3 : NULL;
}

/* Two waiters asleep.  The release clears WAIT and wakes one, which must
 * take the lock with WAIT while the other sleeps, or the other would sleep
 * through the next release; at the end nobody is counted asleep and the
 * word is 0 (no stale WAIT to make releases wake nobody). */
TEST(lock_woken_waiter_wakes_the_next)
{
	struct handover h;
	uint64_t w;
	uint32_t n;
	pthread_t t[2];

	ASSERT_OK(mp_lock_init(&h.lock));
	ASSERT_OK(pipe(h.got));
	ASSERT_OK(pipe(h.go));
	ASSERT_OK(mp_lock_acquire(&h.lock, MP_FOREVER));
	for (int i = 0; i < 2; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, take_report_release, &h));
	do {
		sched_yield();
		ASSERT_OK(mp__lock_test_state(&h.lock, &w, &n));
	} while (n < 2);
	ASSERT(w & MP__LOCK_WAIT);
	ASSERT_OK(mp_lock_release(&h.lock));
	for (int i = 0; i < 2; i++) {
		char c = 'x';
		ASSERT_EQ(read(h.got[0], &c, 1), 1);
		/* Whenever the other is counted asleep, the word says so
		 * (it is counted only once WAIT is set). */
		ASSERT_OK(mp__lock_test_state(&h.lock, &w, &n));
		ASSERT(w & MP__ID_MASK);
		if (n > 0)
			ASSERT(w & MP__LOCK_WAIT);
		ASSERT_EQ(write(h.go[1], &c, 1), 1);
	}
	for (int i = 0; i < 2; i++) {
		void *r;
		ASSERT_OK(pthread_join(t[i], &r));
		ASSERT(r == NULL);
	}
	ASSERT_OK(mp__lock_test_state(&h.lock, &w, &n));
	ASSERT_EQ(w, 0);
	ASSERT_EQ(n, 0);
	ASSERT_OK(mp_lock_destroy(&h.lock));
	for (int i = 0; i < 2; i++) {
		close(h.got[i]);
		close(h.go[i]);
	}
}

static int wait_for_lock(void *arg)
{
	mp_lock *l = arg;
	int r = mp_lock_acquire(l, 30);
	if (r != 0 && r != -EOWNERDEAD)
		return 100;
	mp_lock_release(l);
	return r == -EOWNERDEAD ? 1 : 0;
}

/* The holder is SIGKILLed while others wait: exactly one waiter gets
 * -EOWNERDEAD, the others then get the lock as usual, and soon. */
TEST(lock_owner_killed_while_others_wait)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	pid_t holder = start_holder(l, fds);
	pid_t waiters[3];
	for (int i = 0; i < 3; i++)
		waiters[i] = test_fork(wait_for_lock, l);
	double t0 = test_now();
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	int recovered = 0;
	for (int i = 0; i < 3; i++) {
		int r = test_wait(waiters[i]);
		ASSERT(r == 0 || r == 1);
		recovered += r;
	}
	double took = test_now() - t0;
	ASSERT_EQ(recovered, 1);
	/* Detection is within one 40 ms sleep slice; leave room for load. */
	ASSERT(took < 2.0 * test_timeout_mult());
	/* And the lock is as good as new. */
	ASSERT_OK(mp_lock_acquire(l, 0));
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

TEST(lock_try_on_dead_owner_recovers)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_lock *l = mp_lock_new();
	pid_t holder = start_holder(l, fds);
	kill(holder, SIGKILL);
	ASSERT_EQ(test_wait(holder), -SIGKILL);
	ASSERT_ERR(mp_lock_acquire(l, 0), -EOWNERDEAD);
	ASSERT_ERR(mp_lock_acquire(l, 0), -EDEADLK);
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

static int exit_holding(void *arg)
{
	return mp_lock_acquire(arg, MP_FOREVER) ? 1 : 0;
}

TEST(lock_owner_exits_normally_while_holding)
{
	mp_lock *l = mp_lock_new();
	pid_t p = test_fork(exit_holding, l);
	ASSERT_EQ(test_wait(p), 0);
	ASSERT_ERR(mp_lock_acquire(l, MP_FOREVER), -EOWNERDEAD);
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

/* Lower the descriptor limit and fill it: the next open() says EMFILE. */
static int use_all_fds(void)
{
	struct rlimit rl = {32, 32};
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	while (open("/dev/null", O_RDONLY) >= 0)
		;
	if (errno != EMFILE)
		return -1;
	return open("/proc/self/stat", O_RDONLY) < 0 && errno == EMFILE ? 0
									 : -1;
}

struct fdless {
	mp_lock lock;
	mp_rlock rlock;
	int up[2], down[2];
};

/* Out of descriptors before its first lock, take both locks, say so (with
 * the start time it found for itself), hold them until told, then
 * release: exit 0 when every call said 0. */
static int hold_without_fds(void *arg)
{
	struct fdless *f = arg;
	char c;
	if (use_all_fds())
		return 10;
	if (mp_lock_acquire(&f->lock, MP_FOREVER))
		return 11;
	if (mp_rlock_acquire(&f->rlock, MP_FOREVER) ||
	    mp_rlock_acquire(&f->rlock, 0))
		return 12;
	uint64_t start = mp__self_start();
	if (write(f->up[1], &start, sizeof(start)) != sizeof(start) ||
	    read(f->down[0], &c, 1) != 1)
		return 13;
	if (mp_lock_release(&f->lock))
		return 14;
	if (mp_rlock_release(&f->rlock) || mp_rlock_release(&f->rlock))
		return 15;
	return 0;
}

/* A holder that took its first lock while out of file descriptors is alive
 * for everyone else: they time out, none recovers, its releases work. */
TEST(lock_holder_out_of_fds_is_alive)
{
	struct fdless *f = mp_shared_alloc(sizeof(*f));
	ASSERT_NOT_NULL(f);
	ASSERT_OK(mp_lock_init(&f->lock));
	ASSERT_OK(mp_rlock_init(&f->rlock));
	ASSERT_OK(pipe(f->up));
	ASSERT_OK(pipe(f->down));
	pid_t holder = test_fork(hold_without_fds, f);
	uint64_t start;
	char c = 'x';
	ASSERT_EQ(read(f->up[0], &start, sizeof(start)), sizeof(start));
	/* It read its start time all the same (the reserve descriptor). */
	ASSERT_EQ(start, mp__task_start(holder));
	/* Several sleep slices: each ends in a check of the holder. */
	ASSERT_ERR(mp_lock_acquire(&f->lock, 0.3), -ETIMEDOUT);
	ASSERT_ERR(mp_lock_acquire(&f->lock, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_rlock_acquire(&f->rlock, 0.3), -ETIMEDOUT);
	ASSERT_ERR(mp_rlock_acquire(&f->rlock, 0), -ETIMEDOUT);
	ASSERT_EQ(write(f->down[1], &c, 1), 1);
	ASSERT_EQ(test_wait(holder), 0);
	ASSERT_OK(mp_lock_acquire(&f->lock, 0));
	ASSERT_OK(mp_lock_release(&f->lock));
	ASSERT_OK(mp_rlock_acquire(&f->rlock, 0));
	ASSERT_OK(mp_rlock_release(&f->rlock));
	mp_shared_free(f);
}

/* The library's reserve descriptor: an O_PATH descriptor of "/". */
static int find_spare(void)
{
	struct stat root, st;
	if (stat("/", &root))
		return -1;
	for (int fd = 0; fd < 1024; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_PATH) && fstat(fd, &st) == 0 &&
		    st.st_dev == root.st_dev && st.st_ino == root.st_ino)
			return fd;
	}
	return -1;
}

/* As hold_without_fds, its reserve taken from it first (dup2 over it, as
 * a program that reuses descriptor numbers would): its start time stays
 * unknown while it has no descriptor; then it frees one and releases. */
static int hold_unknown(void *arg)
{
	struct fdless *f = arg;
	char c;
	int spare = find_spare();
	int nul = open("/dev/null", O_RDONLY);
	if (spare < 0 || nul < 0 || dup2(nul, spare) != spare || close(nul))
		return 10;
	if (use_all_fds())
		return 11;
	if (mp_lock_acquire(&f->lock, MP_FOREVER))
		return 12;
	uint64_t start = mp__self_start();
	if (write(f->up[1], &start, sizeof(start)) != sizeof(start) ||
	    read(f->down[0], &c, 1) != 1)
		return 13;
	/* Not ours: the library must not have closed it. */
	if (fcntl(spare, F_GETFL) < 0 || close(spare))
		return 14;
	if (mp__self_start() == MP__START_UNKNOWN)
		return 15;
	return mp_lock_release(&f->lock) ? 16 : 0;
}

/* A holder whose start time could not be read at all is alive while its
 * tid is; the id is not kept, and the release under the known id works. */
TEST(lock_holder_unknown_start_is_alive)
{
	struct fdless *f = mp_shared_alloc(sizeof(*f));
	ASSERT_NOT_NULL(f);
	ASSERT_OK(mp_lock_init(&f->lock));
	ASSERT_OK(pipe(f->up));
	ASSERT_OK(pipe(f->down));
	pid_t holder = test_fork(hold_unknown, f);
	uint64_t start;
	char c = 'x';
	ASSERT_EQ(read(f->up[0], &start, sizeof(start)), sizeof(start));
	ASSERT_EQ(start, MP__START_UNKNOWN);
	ASSERT_ERR(mp_lock_acquire(&f->lock, 0.3), -ETIMEDOUT);
	ASSERT_ERR(mp_lock_acquire(&f->lock, 0), -ETIMEDOUT);
	ASSERT_EQ(write(f->down[1], &c, 1), 1);
	ASSERT_EQ(test_wait(holder), 0);
	ASSERT_OK(mp_lock_acquire(&f->lock, 0));
	ASSERT_OK(mp_lock_release(&f->lock));
	mp_shared_free(f);
}

static int pause_until_killed(void *arg)
{
	int fd = *(int *)arg;
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return 1;
	for (;;)
		pause();
}

/* A lock held by a dead owner whose pid now names another process, with
 * the same low start-time bits (what the word used to keep) and another
 * full start time: that is not the owner, the lock is recovered, at once
 * by a try and within a slice by a waiter.  The true owner, alive, never
 * is. */
TEST(lock_recycled_pid_recovered)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	pid_t other = test_fork(pause_until_killed, &fds[1]);
	char c;
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	uint64_t start = mp__task_start(other);
	ASSERT_CMP(start, >, 0);
	/* The dead owner: same pid, same low 9 bits, started earlier or
	 * later by a multiple of 512 ticks. */
	uint64_t ghosts[2] = {start + 512, start > 512 ? start - 512 : 1024};
	mp_lock *l = mp_lock_new();
	ASSERT_NOT_NULL(l);
	for (int i = 0; i < 2; i++) {
		ASSERT_OK(mp__lock_test_set_owner(l, mp__id_make(other,
								  ghosts[i])));
		ASSERT_ERR(mp_lock_acquire(l, 0), -EOWNERDEAD);
		ASSERT_OK(mp_lock_release(l));
		ASSERT_OK(mp__lock_test_set_owner(l, mp__id_make(other,
								  ghosts[i])));
		double t0 = test_now();
		ASSERT_ERR(mp_lock_acquire(l, 5), -EOWNERDEAD);
		ASSERT(test_now() - t0 < 2.0 * test_timeout_mult());
		ASSERT_OK(mp_lock_release(l));
	}
	/* The live owner itself: never taken from it. */
	ASSERT_OK(mp__lock_test_set_owner(l, mp__id_make(other, start)));
	ASSERT_ERR(mp_lock_acquire(l, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_lock_acquire(l, 0.2), -ETIMEDOUT);
	ASSERT_ERR(mp_lock_release(l), -EPERM);
	kill(other, SIGKILL);
	ASSERT_EQ(test_wait(other), -SIGKILL);
	ASSERT_ERR(mp_lock_acquire(l, 5), -EOWNERDEAD);
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);
}

/* A waiter pinned to one CPU still spins while the holder may run on
 * another: spinning depends on the CPUs online, not on our affinity (the
 * pinned contended benchmark used to sleep on every wait). */
TEST(lock_pinned_waiter_spins)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_OK(sched_setaffinity(0, sizeof(one), &one));
	ASSERT_EQ(mp__multi_cpu(), online > 1);
	ASSERT_CMP(mp__spin_budget(&(_Atomic uint32_t){0}), >,
		   online > 1 ? 0 : -1);
}

TEST_MAIN(T(lock_pinned_waiter_spins),
	  T_TIMEOUT(lock_exact_count_pinned, 60), T(lock_bad_input), T_TIMEOUT(lock_exact_count_processes, 60),
	  T_TIMEOUT(lock_exact_count_threads, 60), T(lock_timeout),
	  T(lock_woken_waiter_wakes_the_next),
	  T(lock_owner_killed_while_others_wait),
	  T(lock_try_on_dead_owner_recovers),
	  T(lock_owner_exits_normally_while_holding),
	  T(lock_holder_out_of_fds_is_alive),
	  T(lock_holder_unknown_start_is_alive), T(lock_recycled_pid_recovered))
