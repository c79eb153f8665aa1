/* SPDX-License-Identifier: MIT */
/* Pool under worker death: SIGKILL, segfaults, dying initializers, and
 * replacements that cannot be forked (fault point "process.fork", armed
 * to fail: MP_TEST_FAULTS links the library with its points live). */
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "fault.h"
#include "test.h"

static _Atomic int32_t *victim_pid;  /* the worker running the victim */
static _Atomic uint32_t *died_once;  /* the victim dies only once */

static void shared_setup(void)
{
	victim_pid = mp_shared_alloc(64);
	died_once = mp_shared_alloc(64);
	ASSERT_NOT_NULL(victim_pid);
	ASSERT_NOT_NULL(died_once);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int square_or_die(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	/* died_once is the test's phase: 0 kill at 500, 2 segfault at 700,
	 * then (1, 3) nobody dies. */
	if (v == 500 && atomic_compare_exchange_strong(died_once, &(uint32_t){0},
						       1))
		kill(getpid(), SIGKILL);
	if (v == 700 && atomic_compare_exchange_strong(died_once, &(uint32_t){2},
						       3)) {
		volatile int *null = NULL;
		*null = 1; /* segfault (ASan turns it into exit 1) */
	}
	*(int64_t *)out = (int64_t)v * v;
	return 0;
}

static void check_rest(const int64_t *out, const int *errs, size_t n,
		       size_t *lost)
{
	*lost = 0;
	for (size_t i = 0; i < n; i++) {
		if (errs[i] == MP_EWORKER) {
			(*lost)++;
			continue;
		}
		ASSERT_EQ(errs[i], 0);
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	}
}

static int32_t *iota(size_t n)
{
	int32_t *in = malloc(n * sizeof(*in));
	for (size_t i = 0; i < n; i++)
		in[i] = (int32_t)i;
	return in;
}

static void death_during_map(size_t chunksize)
{
	shared_setup();
	size_t n = 2000;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	int *errs = calloc(n, sizeof(*errs));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	pid_t before[2];
	mp_pool_worker_pids(pool, before, 2);

	double t0 = now();
	ASSERT_ERR(mp_pool_map_errors(pool, square_or_die, in, 4, out, 8,
				      errs, n, chunksize),
		   MP_EWORKER);
	ASSERT_CMP((now() - t0) * 1000, <, 5000 * test_timeout_mult());
	size_t lost;
	check_rest(out, errs, n, &lost);
	/* Exactly the dead worker's chunk is lost. */
	size_t cs = chunksize ? chunksize : (n + 7) / 8;
	ASSERT_EQ(lost, cs);
	ASSERT_EQ(errs[500], MP_EWORKER);

	/* Segfault next: the plain map says so too. */
	atomic_store(died_once, 2);
	ASSERT_ERR(mp_pool_map(pool, square_or_die, in, 4, out, 8, n,
			       chunksize),
		   MP_EWORKER);
	/* The pool replaced its workers and works. */
	pid_t after[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, after, 2), 2);
	ASSERT(after[0] > 0 && after[1] > 0);
	ASSERT(after[0] != before[0] || after[1] != before[1]);
	memset(out, 0, n * sizeof(*out));
	ASSERT_OK(mp_pool_map_errors(pool, square_or_die, in, 4, out, 8, errs,
				     n, chunksize));
	check_rest(out, errs, n, &lost);
	ASSERT_EQ(lost, 0);
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
	free(errs);
}

TEST(pool_fault_map_chunksize1)
{
	death_during_map(1);
}

TEST(pool_fault_map_auto)
{
	death_during_map(0);
}

TEST(pool_fault_map_big_chunks)
{
	death_during_map(300);
}

/* Without pidfds (valgrind 3.19, kernels before 5.3: pidfd_open fails
 * with ENOSYS) the pool watches its workers by polling: deaths are still
 * seen, with the same results. */
TEST(pool_fault_map_without_pidfds)
{
	mp__fault_arm("pool.no_pidfd", MP__FAULT_FAIL, 0);
	death_during_map(0);
	mp__fault_arm("pool.no_pidfd", MP__FAULT_OFF, 0);
}

/* The victim publishes its pid and blocks until killed from outside. */
static int block_on_600(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	if (v == 600 && !atomic_exchange(died_once, 1)) {
		atomic_store(victim_pid, getpid());
		for (;;)
			pause();
	}
	*(int64_t *)out = (int64_t)v * v;
	return 0;
}

static ssize_t apply_block(const void *arg, size_t len, void *out, size_t cap)
{
	(void)out;
	(void)cap;
	(void)len;
	if (*(const int *)arg == 1) {
		atomic_store(victim_pid, getpid());
		for (;;)
			pause();
	}
	return 0;
}

TEST(pool_fault_external_sigkill)
{
	shared_setup();
	size_t n = 1000;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	mp_async *a = mp_pool_map_async(pool, block_on_600, in, 4, out, 8, n,
					10);
	ASSERT_NOT_NULL(a);
	while (!atomic_load(victim_pid))
		sched_yield();
	ASSERT_ERR(mp_async_wait(a, 0.01), -ETIMEDOUT);
	double t0 = now();
	kill(atomic_load(victim_pid), SIGKILL);
	ASSERT_ERR(mp_async_get(a, NULL, 0, MP_FOREVER), MP_EWORKER);
	ASSERT_CMP((now() - t0) * 1000, <, 2000 * test_timeout_mult());
	for (size_t i = 0; i < n; i++)
		if (i < 600 || i >= 610)
			ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	mp_async_free(a);

	/* An apply task's worker killed: the handle gets MP_EWORKER. */
	atomic_store(victim_pid, 0);
	int one = 1, zero = 0;
	mp_async *b = mp_pool_apply_async(pool, apply_block, &one, sizeof(one),
					  0);
	mp_async *c = mp_pool_apply_async(pool, apply_block, &zero,
					  sizeof(zero), 0);
	while (!atomic_load(victim_pid))
		sched_yield();
	ASSERT_OK(mp_async_wait(c, MP_FOREVER));
	ASSERT_EQ(mp_async_get(c, NULL, 0, 0), 0);
	kill(atomic_load(victim_pid), SIGKILL);
	ASSERT_ERR(mp_async_get(b, NULL, 0, MP_FOREVER), MP_EWORKER);
	mp_async_free(b);
	mp_async_free(c);
	/* Still usable. */
	ASSERT_OK(mp_pool_map(pool, block_on_600, in, 4, out, 8, n, 0));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	free(in);
	free(out);
}

/* Kill idle workers from outside: they are replaced at the next call. */
TEST(pool_fault_idle_workers_killed)
{
	shared_setup();
	atomic_store(died_once, 3); /* nobody dies by itself here */
	mp_pool *pool = mp_pool_new(3);
	ASSERT_NOT_NULL(pool);
	size_t n = 3000;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	for (int round = 0; round < 5; round++) {
		pid_t pids[3];
		ASSERT_EQ(mp_pool_worker_pids(pool, pids, 3), 3);
		/* Each one really dead (a zombie answers kill(pid, 0), so
		 * wait on its pidfd) before the map looks for deaths. */
		for (int i = 0; i <= round % 3; i++) {
			int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
			ASSERT(fd >= 0);
			kill(pids[i], SIGKILL);
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			ASSERT_EQ(poll(&pfd, 1, -1), 1);
			close(fd);
		}
		int r = mp_pool_map(pool, square_or_die, in, 4, out, 8, n, 0);
		/* The kills hit idle workers: nothing is lost. */
		ASSERT_OK(r);
		for (size_t i = 0; i < n; i++)
			ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
	}
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	free(in);
	free(out);
}

static void init_dies(void *arg)
{
	(void)arg;
	kill(getpid(), SIGKILL);
}

TEST(pool_fault_initializer_dies)
{
	shared_setup();
	mp_pool_opts o = {.processes = 2, .initializer = init_dies};
	mp_pool *pool = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(pool);
	int32_t in[10] = {0};
	int64_t out[10];
	ASSERT_ERR(mp_pool_map(pool, square_or_die, in, 4, out, 8, 10, 0),
		   MP_EWORKER);
	ASSERT_ERR(mp_pool_map(pool, square_or_die, in, 4, out, 8, 10, 0),
		   MP_EBROKEN);
	ASSERT(mp_pool_apply_async(pool, NULL, NULL, 0, 0) == NULL);
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
}

/* Many deaths in a row, every one mid-task: each loses one chunk only. */
static int die_on_multiple_of_50(const void *in, void *out)
{
	int32_t v = *(const int32_t *)in;
	if (v % 50 == 0 && v > 0)
		kill(getpid(), SIGKILL);
	*(int64_t *)out = v;
	return 0;
}

TEST(pool_fault_many_deaths)
{
	size_t n = 1000;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	int *errs = calloc(n, sizeof(*errs));
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	ASSERT_ERR(mp_pool_map_errors(pool, die_on_multiple_of_50, in, 4, out,
				      8, errs, n, 1),
		   MP_EWORKER);
	for (size_t i = 0; i < n; i++) {
		if (i % 50 == 0 && i > 0) {
			ASSERT_EQ(errs[i], MP_EWORKER);
		} else {
			ASSERT_EQ(errs[i], 0);
			ASSERT_EQ(out[i], (int64_t)i);
		}
	}
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	free(in);
	free(out);
	free(errs);
}

static int ident(const void *in, void *out)
{
	*(int64_t *)out = *(const int32_t *)in;
	return 0;
}

/* Kill workers at random moments of a fine-grained map: whatever window a
 * kill hits, the map ends, loses at most one chunk per kill, and every
 * other result is right. */
TEST(pool_fault_kill_storm)
{
	size_t n = 300000;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	mp_pool *pool = mp_pool_new(3);
	ASSERT_NOT_NULL(pool);
	pid_t killed[3 * 12];
	int nkilled = 0;
	for (int round = 0; round < 3; round++) {
		size_t cs = round == 0 ? 1 : round == 1 ? 3 : 0;
		memset(out, 0xff, n * sizeof(*out));
		mp_imap *it = mp_pool_imap_unordered(pool, ident, in, 4, 8, n,
						     cs);
		ASSERT_NOT_NULL(it);
		int kills = 0;
		double t0 = now();
		size_t got = 0, lost = 0, idx;
		int64_t v;
		int r;
		while ((r = mp_imap_next(it, &idx, &v, MP_FOREVER)) !=
		       MP_ECLOSED) {
			got++;
			if (r == MP_EWORKER) {
				lost++;
				continue;
			}
			ASSERT_OK(r);
			ASSERT_EQ(v, (int64_t)idx);
			if (got % 20000 == 0 && kills < 12) {
				pid_t pids[3];
				mp_pool_worker_pids(pool, pids, 3);
				kill(pids[kills % 3], SIGKILL);
				killed[nkilled++] = pids[kills % 3];
				kills++;
			}
		}
		ASSERT_EQ(got, n);
		if (getenv("POOL_DEBUG"))
			fprintf(stderr, "round %d: %.3f s, %d kills, %zu lost\n",
				round, now() - t0, kills, lost);
		size_t chunk = cs ? cs : (n + 11) / 12;
		ASSERT_CMP(lost, <=, (size_t)kills * chunk);
		mp_imap_free(it);
	}
	/* A SIGKILL takes effect a moment after kill() returns: wait until
	 * every victim has ended (not reaping it; ECHILD if the pool already
	 * did), so that the map's look at the workers finds them all. */
	for (int k = 0; k < nkilled; k++) {
		siginfo_t info;
		int w = waitid(P_PID, (id_t)killed[k], &info,
			       WEXITED | WNOWAIT);
		ASSERT(w == 0 || errno == ECHILD);
	}
	ASSERT_OK(mp_pool_map(pool, ident, in, 4, out, 8, n, 0));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(out[i], (int64_t)i);
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	free(in);
	free(out);
}

/* Kill the first k workers and wait until each is really dead. */
static void kill_workers(mp_pool *pool, int k)
{
	pid_t pids[8];
	ASSERT_CMP(mp_pool_worker_pids(pool, pids, 8), >=, k);
	for (int i = 0; i < k; i++) {
		int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		ASSERT(fd >= 0);
		kill(pids[i], SIGKILL);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ASSERT_EQ(poll(&pfd, 1, -1), 1);
		close(fd);
	}
}

static void check_squares(const int64_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(out[i], (int64_t)i * (int64_t)i);
}

/* Every worker dead and the first three forks of their replacements fail
 * (EAGAIN, as under RLIMIT_NPROC): the waits retry, and the map completes
 * once fork works again.  It used to poll forever with no worker. */
TEST(pool_fault_fork_fails_then_works)
{
	shared_setup();
	atomic_store(died_once, 3); /* nobody dies by itself here */
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	pid_t before[2], after[2];
	mp_pool_worker_pids(pool, before, 2);
	kill_workers(pool, 2);
	mp__fault_arm("process.fork", MP__FAULT_FAIL, 3);
	size_t n = 500;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	double t0 = now();
	ASSERT_OK(mp_pool_map(pool, square_or_die, in, 4, out, 8, n, 0));
	double took = now() - t0;
	check_squares(out, n);
	ASSERT_EQ(atomic_load(&mp__fault_armed), 0); /* all 3 failed */
	/* Retries 10, 20 and 40 ms apart; the fourth fork works. */
	ASSERT(took >= 0.070);
	ASSERT(took < 5.0 * test_timeout_mult());
	ASSERT_EQ(mp_pool_worker_pids(pool, after, 2), 2);
	ASSERT(after[0] > 0 && after[1] > 0);
	ASSERT(after[0] != before[0] && after[1] != before[1]);
	ASSERT_OK(mp_pool_map(pool, square_or_die, in, 4, out, 8, n, 0));
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
}

/* Fork never works again: the pool gives up after its retry schedule
 * (about 3.3 s) with MP_EBROKEN for the map and for the task waiting
 * before it, and every later call says MP_EBROKEN at once. */
TEST(pool_fault_fork_always_fails_breaks)
{
	shared_setup();
	atomic_store(died_once, 3);
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	kill_workers(pool, 2);
	mp__fault_arm("process.fork", MP__FAULT_FAIL, 0);
	int32_t in[10];
	int64_t out[10];
	for (int i = 0; i < 10; i++)
		in[i] = i;
	mp_async *pending = mp_pool_map_async(pool, square_or_die, in, 4, out,
					      8, 10, 0);
	ASSERT_NOT_NULL(pending);
	double t0 = now();
	ASSERT_ERR(mp_pool_map(pool, square_or_die, in, 4, out, 8, 10, 0),
		   MP_EBROKEN);
	double took = now() - t0;
	/* 10 failed forks, 10 ms .. 1 s apart: 3.27 s at least. */
	ASSERT(took >= 3.2);
	ASSERT(took < 15.0 * test_timeout_mult());
	ASSERT(mp_async_ready(pending));
	ASSERT_ERR(mp_async_get(pending, NULL, 0, 0), MP_EBROKEN);
	mp_async_free(pending);
	t0 = now();
	ASSERT_ERR(mp_pool_map(pool, square_or_die, in, 4, out, 8, 10, 0),
		   MP_EBROKEN);
	errno = 0;
	ASSERT(mp_pool_map_async(pool, square_or_die, in, 4, out, 8, 10, 0) ==
	       NULL);
	ASSERT_EQ(errno, -MP_EBROKEN);
	ASSERT(now() - t0 < 1.0);
	ASSERT_EQ(test_count_zombies(), 0);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
}

/* One worker left and fork failing: the pool works short-handed rather
 * than break. */
TEST(pool_fault_fork_fails_one_worker_left)
{
	shared_setup();
	atomic_store(died_once, 3);
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	kill_workers(pool, 1);
	mp__fault_arm("process.fork", MP__FAULT_FAIL, 0);
	size_t n = 300;
	int32_t *in = iota(n);
	int64_t *out = calloc(n, sizeof(*out));
	for (int round = 0; round < 3; round++) {
		memset(out, 0, n * sizeof(*out));
		ASSERT_OK(mp_pool_map(pool, square_or_die, in, 4, out, 8, n,
				      0));
		check_squares(out, n);
	}
	pid_t pids[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, pids, 2), 2);
	ASSERT_EQ(pids[0], 0); /* still empty */
	ASSERT(pids[1] > 0);
	mp_pool_free(pool);
	ASSERT_EQ(test_count_zombies(), 0);
	free(in);
	free(out);
}

TEST_MAIN(T(pool_fault_kill_storm), T(pool_fault_map_chunksize1), T(pool_fault_map_auto),
	  T(pool_fault_map_big_chunks), T(pool_fault_map_without_pidfds),
	  T(pool_fault_external_sigkill),
	  T(pool_fault_idle_workers_killed), T(pool_fault_initializer_dies),
	  T(pool_fault_many_deaths), T(pool_fault_fork_fails_then_works),
	  T(pool_fault_fork_always_fails_breaks),
	  T(pool_fault_fork_fails_one_worker_left))
