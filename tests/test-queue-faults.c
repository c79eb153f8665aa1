/* SPDX-License-Identifier: MIT */
/* Queue faults: processes that die waiting, inside a put or get, or at
 * random points under load must not wedge, duplicate or tear anything;
 * and a live holder's side lock is never taken from it.  Arms fault
 * points (src/fault.h): MP_TEST_FAULTS. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fault.h"
#include "internal.h"
#include "test.h"

static mp_queue *g_q;

static int wait_get(void *arg)
{
	(void)arg;
	char buf[64];
	mp_queue_get(g_q, buf, sizeof(buf), MP_FOREVER);
	return 0;
}

static int wait_put(void *arg)
{
	(void)arg;
	char buf[64] = {0};
	for (;;)
		mp_queue_put(g_q, buf, 48, MP_FOREVER);
	return 0;
}

/* Waiters killed while asleep (empty, full) change nothing. */
TEST(fault_waiters_killed)
{
	g_q = mp_queue_new(100);
	pid_t g[3];
	for (int i = 0; i < 3; i++)
		g[i] = test_fork(wait_get, NULL);
	usleep(20000); /* let them sleep; any order passes */
	for (int i = 0; i < 3; i++) {
		kill(g[i], SIGKILL);
		ASSERT_EQ(test_wait(g[i]), -SIGKILL);
	}
	char buf[64];
	ASSERT_OK(mp_queue_put(g_q, "x", 1, 0));
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 1), 1);

	pid_t p = test_fork(wait_put, NULL);
	while (mp_queue_qsize(g_q) < 2)
		sched_yield();
	usleep(20000);
	kill(p, SIGKILL);
	ASSERT_EQ(test_wait(p), -SIGKILL);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 1), 48);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 1), 48);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	ASSERT_OK(mp_queue_put(g_q, "y", 1, 0));
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 1), 1);
	mp_queue_free(g_q);
}

static int die_holding(void *arg)
{
	_exit(mp__queue_test_hold(g_q, (int)(intptr_t)arg) ? 9 : 0);
}

/* A producer that died between reserving and publishing: its half record
 * never shows; the queue goes on. */
TEST(fault_dead_in_put)
{
	char buf[64];
	g_q = mp_queue_new(100);
	ASSERT_OK(mp_queue_put(g_q, "before", 6, 0));
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)0)), 0);
	ASSERT_OK(mp_queue_put(g_q, "after", 5, 5));
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 5), 6);
	ASSERT(memcmp(buf, "before", 6) == 0);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 5), 5);
	ASSERT(memcmp(buf, "after", 5) == 0);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	mp_queue_free(g_q);

	/* With nobody putting again, close still ends the getters. */
	g_q = mp_queue_new(100);
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)0)), 0);
	ASSERT_OK(mp_queue_close(g_q));
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 5), MP_ECLOSED);
	mp_queue_free(g_q);
}

/* A consumer that died before taking its message: the next one gets it. */
TEST(fault_dead_in_get)
{
	char buf[64];
	g_q = mp_queue_new(100);
	ASSERT_OK(mp_queue_put(g_q, "one", 3, 0));
	ASSERT_OK(mp_queue_put(g_q, "two", 3, 0));
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)1)), 0);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 5), 3);
	ASSERT(memcmp(buf, "one", 3) == 0);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 5), 3);
	ASSERT(memcmp(buf, "two", 3) == 0);
	/* And a producer waiting for room recovers it too. */
	while (mp_queue_put(g_q, buf, 40, 0) == 0)
		;
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)1)), 0);
	pid_t c = test_fork(wait_get, NULL); /* frees room, if it can */
	ASSERT_OK(mp_queue_put(g_q, buf, 40, 5));
	kill(c, SIGKILL);
	test_wait(c);
	mp_queue_free(g_q);
}

/* ---- a live holder's lock is never freed ---- */

/* Wait until pid stops at its fault point. */
static void wait_stopped(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, WUNTRACED) < 0)
		ASSERT_EQ(errno, EINTR);
	ASSERT(WIFSTOPPED(st));
}

static const char *g_point;

/* Put `arg` (a string) with the point g_point armed to stop. */
static int put_stopping(void *arg)
{
	mp__fault_arm(g_point, MP__FAULT_STOP, 1);
	return mp_queue_put(g_q, arg, strlen(arg), MP_FOREVER) ? 1 : 0;
}

/* A holder stopped right after its CAS took the producer lock, after a
 * dead producer's lock was freed by a consumer (the dead one's start time
 * was left beside the word): a producer waiting for it must time out, not
 * call it dead and take its lock. */
TEST(fault_live_holder_after_dead_one)
{
	char buf[64];
	g_q = mp_queue_new(100);
	ASSERT_NOT_NULL(g_q);
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)0)), 0);
	/* A get sleeps a slice, finds the producer dead, frees its lock. */
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0.15), -ETIMEDOUT);
	g_point = "queue.lock.taken";
	pid_t h = test_fork(put_stopping, (void *)"held");
	wait_stopped(h);
	/* Several slices, each ending in a check of the holder. */
	ASSERT_ERR(mp_queue_put(g_q, "waiter", 6, 0.3), -ETIMEDOUT);
	ASSERT_ERR(mp_queue_put(g_q, "try", 3, 0), -ETIMEDOUT);
	ASSERT_EQ(mp_queue_qsize(g_q), 0);
	kill(h, SIGCONT);
	ASSERT_EQ(test_wait(h), 0);
	ASSERT_EQ(mp_queue_qsize(g_q), 1);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 0), 4);
	ASSERT(memcmp(buf, "held", 4) == 0);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	mp_queue_free(g_q);
}

static int g_cmd[2], g_ack[2];

/* Put "first" stopping inside it, then on a word from the test take the
 * producer lock again and hold it; on a second word, die holding it. */
static int put_then_hold(void *arg)
{
	(void)arg;
	char c;
	if (put_stopping((void *)"first"))
		return 1;
	if (read(g_cmd[0], &c, 1) != 1 || mp__queue_test_hold(g_q, 0) ||
	    write(g_ack[1], &c, 1) != 1)
		return 2;
	if (read(g_cmd[0], &c, 1) != 1)
		return 3;
	_exit(0);
}

/* A recoverer that slept a slice stops between its snapshot of the word
 * and its verdict, while the holder puts and takes the lock again: the
 * word reads as it did.  Continued, it must not free it; once the holder
 * dies, it must.  Every put that returned 0 is queued, exactly once. */
TEST(fault_recoverer_waits_out_live_holder)
{
	char buf[64];
	g_q = mp_queue_new(256);
	ASSERT_NOT_NULL(g_q);
	ASSERT_OK(pipe(g_cmd));
	ASSERT_OK(pipe(g_ack));
	g_point = "queue.lock.taken";
	pid_t h = test_fork(put_then_hold, NULL);
	wait_stopped(h);
	g_point = "queue.recover.snapshot";
	pid_t r = test_fork(put_stopping, (void *)"recoverer");
	wait_stopped(r); /* slept a slice, snapshot of h's word taken */
	kill(h, SIGCONT);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 5), 5);
	ASSERT(memcmp(buf, "first", 5) == 0);
	char c = 'x';
	ASSERT_EQ(write(g_cmd[1], &c, 1), 1); /* h takes the lock again */
	ASSERT_EQ(read(g_ack[0], &c, 1), 1);
	/* Our own put waits too, and sets the waiter bit again: the word is
	 * h's id | LOCKWAIT, what the recoverer saw. */
	ASSERT_ERR(mp_queue_put(g_q, "mine", 4, 0.2), -ETIMEDOUT);
	kill(r, SIGCONT);
	ASSERT_ERR(mp_queue_put(g_q, "mine", 4, 0.2), -ETIMEDOUT);
	ASSERT_EQ(mp_queue_qsize(g_q), 0);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	/* Now h dies holding: the recoverer frees the lock and puts. */
	ASSERT_EQ(write(g_cmd[1], &c, 1), 1);
	ASSERT_EQ(test_wait(h), 0);
	ASSERT_EQ(test_wait(r), 0);
	ASSERT_OK(mp_queue_put(g_q, "last", 4, 5));
	ASSERT_EQ(mp_queue_qsize(g_q), 2);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 0), 9);
	ASSERT(memcmp(buf, "recoverer", 9) == 0);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 0), 4);
	ASSERT(memcmp(buf, "last", 4) == 0);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	mp_queue_free(g_q);
}

static int g_ack2[2];

/* Wait until the clock is past the tick pid started in: a child forked
 * then has another start time (processes forked within one 10 ms tick
 * share it). */
static void later_tick_than(pid_t pid)
{
	uint64_t start = mp__task_start(pid);
	long hz = sysconf(_SC_CLK_TCK);
	ASSERT_CMP(start, >, 0);
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_BOOTTIME, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * (uint64_t)hz +
			       (uint64_t)ts.tv_nsec / (1000000000u / (uint64_t)hz);
		if (now > start)
			return;
		sched_yield();
	}
}

/* Hold the producer lock; on a word from the test, give it up; on the
 * next, put "again", stopping right after the CAS that takes the lock. */
static int hold_release_put(void *arg)
{
	(void)arg;
	char c = 'x';
	mp__fault_arm("queue.lock.taken", MP__FAULT_STOP, 2);
	if (mp__queue_test_hold(g_q, 0) || write(g_ack2[1], &c, 1) != 1)
		return 1;
	if (read(g_cmd[0], &c, 1) != 1 || mp__queue_test_unlock(g_q, 0) ||
	    write(g_ack2[1], &c, 1) != 1)
		return 2;
	if (read(g_cmd[0], &c, 1) != 1)
		return 3;
	return mp_queue_put(g_q, "again", 5, MP_FOREVER) ? 4 : 0;
}

/* A try (timeout 0) that finds the lock held looks at the holder once. */
static int try_put_stopping(void *arg)
{
	mp__fault_arm("queue.recover.snapshot", MP__FAULT_STOP, 1);
	int r = mp_queue_put(g_q, arg, strlen(arg), 0);
	return r == -ETIMEDOUT ? 0 : 1;
}

/* The ABA of issue 18: the recoverer takes its snapshot of the word (h
 * holds) and stops before its verdict; h releases, another producer dies
 * holding and is cleared, h takes the lock again, so the word reads as in
 * the snapshot, and only then does the recoverer judge.  It must find h
 * alive and leave its lock alone: a put of ours still times out, and the
 * queue holds exactly h's message. */
TEST(fault_stale_snapshot_cannot_free)
{
	char buf[64], c = 'x';
	g_q = mp_queue_new(256);
	ASSERT_NOT_NULL(g_q);
	ASSERT_OK(pipe(g_cmd));
	ASSERT_OK(pipe(g_ack2));
	pid_t h = test_fork(hold_release_put, NULL);
	ASSERT_EQ(read(g_ack2[0], &c, 1), 1); /* h holds */
	pid_t r = test_fork(try_put_stopping, (void *)"recoverer");
	wait_stopped(r); /* its snapshot names h */
	ASSERT_EQ(write(g_cmd[1], &c, 1), 1);
	ASSERT_EQ(read(g_ack2[0], &c, 1), 1); /* h released */
	/* Someone else (started in a later clock tick than h, as nearly
	 * always) holds the lock and dies; a try of ours clears it. */
	later_tick_than(h);
	ASSERT_EQ(test_wait(test_fork(die_holding, (void *)0)), 0);
	ASSERT_ERR(mp_queue_put(g_q, "try", 3, 0), -ETIMEDOUT);
	ASSERT_EQ(write(g_cmd[1], &c, 1), 1);
	wait_stopped(h); /* h holds again: the word is as r saw it */
	kill(r, SIGCONT);
	ASSERT_EQ(test_wait(r), 0);
	/* h still holds its lock. */
	ASSERT_ERR(mp_queue_put(g_q, "mine", 4, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_queue_put(g_q, "mine", 4, 0.1), -ETIMEDOUT);
	ASSERT_EQ(mp_queue_qsize(g_q), 0);
	kill(h, SIGCONT);
	ASSERT_EQ(test_wait(h), 0);
	ASSERT_EQ(mp_queue_qsize(g_q), 1);
	ASSERT_EQ(mp_queue_get(g_q, buf, sizeof(buf), 0), 5);
	ASSERT(memcmp(buf, "again", 5) == 0);
	ASSERT_ERR(mp_queue_get(g_q, buf, sizeof(buf), 0), -ETIMEDOUT);
	mp_queue_free(g_q);
}

/* ---- random SIGKILL under load ---- */

#define NP 3
#define NC 3
#define PER 40000
#define MAXLEN 120

struct kshared {
	mp_queue *q;
	_Atomic uint32_t done[NP]; /* puts returned 0 */
	_Atomic uint8_t seen[NP * PER];
	_Atomic int bad;
};

static struct kshared *K;

struct khdr {
	uint32_t p, seq, len, sum;
};

static int kproducer(void *arg)
{
	uint32_t p = (uint32_t)(uintptr_t)arg;
	uint8_t buf[MAXLEN];
	uint32_t st = p * 7919u + 17u;
	for (uint32_t seq = 0; seq < PER; seq++) {
		st = st * 1103515245u + 12345u;
		size_t len = sizeof(struct khdr) + (st >> 16) %
			     (MAXLEN - sizeof(struct khdr) + 1);
		struct khdr h = {p, seq, (uint32_t)len, 0};
		for (size_t i = sizeof(h); i < len; i++) {
			buf[i] = (uint8_t)(p + seq * 3 + i);
			h.sum += buf[i];
		}
		memcpy(buf, &h, sizeof(h));
		if (mp_queue_put(K->q, buf, len, MP_FOREVER))
			return 20;
		atomic_store(&K->done[p], seq + 1);
	}
	return 0;
}

static int kconsumer(void *arg)
{
	(void)arg;
	uint8_t buf[MAXLEN];
	int64_t last[NP] = {-1, -1, -1};
	for (;;) {
		ssize_t n = mp_queue_get(K->q, buf, sizeof(buf), MP_FOREVER);
		if (n == MP_ECLOSED)
			return 0;
		struct khdr h;
		if (n < (ssize_t)sizeof(h))
			goto bad;
		memcpy(&h, buf, sizeof(h));
		if (h.p >= NP || h.seq >= PER || h.len != (uint32_t)n)
			goto bad;
		uint32_t sum = 0;
		for (ssize_t i = sizeof(h); i < n; i++) {
			if (buf[i] != (uint8_t)(h.p + h.seq * 3 + (size_t)i))
				goto bad;
			sum += buf[i];
		}
		if (sum != h.sum || (int64_t)h.seq <= last[h.p])
			goto bad;
		last[h.p] = h.seq;
		if (atomic_exchange(&K->seen[h.p * PER + h.seq], 1))
			goto bad;
	}
bad:
	atomic_store(&K->bad, 1);
	return 40;
}

static int kills_p, kills_c;

static void kill_round(uint32_t *st)
{
	memset((void *)K, 0, sizeof(*K));
	K->q = mp_queue_new(256);
	ASSERT_NOT_NULL(K->q);
	pid_t pp[NP], cc[NC + 1];
	for (int i = 0; i < NC; i++)
		cc[i] = test_fork(kconsumer, NULL);
	for (int i = 0; i < NP; i++)
		pp[i] = test_fork(kproducer, (void *)(uintptr_t)i);
	/* Kill one producer and one consumer at random moments. */
	*st = *st * 1103515245u + 12345u;
	int kp = (int)((*st >> 16) % NP);
	int kc = (int)((*st >> 8) % NC);
	usleep(200 + (*st >> 4) % 15000);
	kill(pp[kp], SIGKILL);
	*st = *st * 1103515245u + 12345u;
	usleep(200 + (*st >> 4) % 15000);
	kill(cc[kc], SIGKILL);
	cc[NC] = test_fork(kconsumer, NULL);
	int killed_c = 0, killed_p = 0;
	for (int i = 0; i < NP; i++) {
		int r = test_wait(pp[i]);
		if (r == -SIGKILL)
			killed_p++;
		else
			ASSERT_EQ(r, 0);
	}
	ASSERT_OK(mp_queue_close(K->q));
	for (int i = 0; i <= NC; i++) {
		int r = test_wait(cc[i]);
		if (r == -SIGKILL)
			killed_c++;
		else
			ASSERT_EQ(r, 0);
	}
	ASSERT_EQ(atomic_load(&K->bad), 0);
	/* Every put that returned was delivered, except at most one per
	 * killed consumer (taken, then the taker died); a killed producer's
	 * put in flight may show (it completed) or not. */
	int lost = 0;
	for (int p = 0; p < NP; p++) {
		uint32_t done = atomic_load(&K->done[p]);
		for (uint32_t s = 0; s < done; s++)
			lost += !atomic_load(&K->seen[p * PER + s]);
		for (uint32_t s = done + 1; s < PER; s++)
			ASSERT(!atomic_load(&K->seen[p * PER + s]));
	}
	ASSERT_CMP(lost, <=, killed_c);
	kills_p += killed_p;
	kills_c += killed_c;
	mp_queue_free(K->q);
}

TEST(fault_random_sigkill)
{
	K = mp_shared_alloc(sizeof(*K));
	ASSERT_NOT_NULL(K);
	uint32_t st = (uint32_t)getpid() * 2654435761u;
	fprintf(stderr, "# seed %u\n", st);
	for (int round = 0; round < 12; round++)
		kill_round(&st);
	fprintf(stderr, "# killed %d producers, %d consumers mid-run\n",
		kills_p, kills_c);
	ASSERT_CMP(kills_p + kills_c, >, 0);
}

/* Get `alone`, stopping where an empty queue's get starts to spin. */
static int get_spinning(void *arg)
{
	(void)arg;
	char buf[64];
	mp__fault_arm("queue.get.spin", MP__FAULT_STOP, 1);
	ssize_t n = mp_queue_get(g_q, buf, sizeof(buf), MP_FOREVER);
	return n == 5 && !memcmp(buf, "alone", 5) ? 0 : 1;
}

/* The spinning consumer's slip waits for the producer to get ahead only
 * while the tail moves: a lone message put while it spins, and nothing
 * after it, is delivered at its next look (an unbounded slip hangs). */
/* A consumer stopped inside its spin (fn), one message put, the consumer
 * let go: it must get that message. */
static void lone_message(size_t ring, int (*fn)(void *))
{
	g_q = mp_queue_new(ring);
	ASSERT_NOT_NULL(g_q);
	pid_t g = test_fork(fn, NULL);
	wait_stopped(g);
	ASSERT_OK(mp_queue_put(g_q, "alone", 5, 0));
	kill(g, SIGCONT);
	ASSERT_EQ(test_wait(g), 0);
	ASSERT(mp_queue_empty(g_q));
	mp_queue_free(g_q);
}

TEST(fault_lone_message_to_spinner) { lone_message(4096, get_spinning); }

/* The slip is bounded in rounds, not only by the tail stopping: with the
 * tail made to look as if it moved at every look (a producer that keeps
 * trickling records, never SLIP_BYTES ahead), the lone message is still
 * delivered (an unbounded slip hangs, and the watchdog fails the case). */
static int get_spinning_stream(void *arg)
{
	(void)arg;
	char buf[64];
	mp__fault_arm("queue.slip.moving", MP__FAULT_FAIL, 0);
	mp__fault_arm("queue.get.spin", MP__FAULT_STOP, 1);
	ssize_t n = mp_queue_get(g_q, buf, sizeof(buf), MP_FOREVER);
	return n == 5 && !memcmp(buf, "alone", 5) ? 0 : 1;
}

TEST(fault_slip_stream_bounded)
{
	lone_message(1 << 16, get_spinning_stream);
}

TEST_MAIN(T(fault_waiters_killed), T(fault_dead_in_put),
	  T(fault_dead_in_get), T(fault_live_holder_after_dead_one),
	  T(fault_recoverer_waits_out_live_holder),
	  T(fault_stale_snapshot_cannot_free), T_TIMEOUT(fault_random_sigkill, 90),
	  T(fault_lone_message_to_spinner), T(fault_slip_stream_bounded))
