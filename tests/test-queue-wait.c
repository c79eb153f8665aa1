/* SPDX-License-Identifier: MIT */
/* The queue's learnt spin (src/queue-wait.h): short sleeps lengthen it up
 * to a bound, long ones shorten it back to the floor, and a queue whose
 * budget grew still times out and still wakes for a message. */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "queue-wait.h"
#include "test.h"

TEST(short_sleeps_double_to_bound)
{
	struct side sd = {0};

	ASSERT_EQ(spin_budget(&sd), SPINS);
	int want = SPINS;
	while (want < SPINS_MAX) {
		learn_wait(&sd, 50 * 1000);
		want *= 2;
		ASSERT_EQ(spin_budget(&sd), want);
	}
	learn_wait(&sd, 0);
	ASSERT_EQ(spin_budget(&sd), SPINS_MAX);
}

TEST(long_sleeps_halve_to_floor)
{
	struct side sd = {0};

	atomic_store(&sd.spins, SPINS_MAX);
	/* Between the two bounds: no change. */
	learn_wait(&sd, (SPIN_SHORT_NS + SPIN_LONG_NS) / 2);
	ASSERT_EQ(spin_budget(&sd), SPINS_MAX);
	int want = SPINS_MAX;
	while (want > SPINS) {
		learn_wait(&sd, 10 * SPIN_LONG_NS);
		want /= 2;
		ASSERT_EQ(spin_budget(&sd), want);
	}
	learn_wait(&sd, 10 * SPIN_LONG_NS);
	ASSERT_EQ(spin_budget(&sd), SPINS);
}

/* A consumer at the longest spin: an empty get times out, its one sleep
 * (30 ms, shorter than a slice) halves the budget, and a message put
 * while a child waits with that budget reaches it. */
TEST(grown_budget_times_out_and_wakes)
{
	mp_queue *q = mp_queue_new(4096);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	char buf[16];

	atomic_store(&s->cons.spins, SPINS_MAX);
	int64_t t0 = mp__now_ns();
	ASSERT_ERR(mp_queue_get(q, buf, sizeof(buf), 0.03), -ETIMEDOUT);
	ASSERT_CMP(mp__now_ns() - t0, >=, 30 * 1000 * 1000);
	ASSERT_EQ(spin_budget(&s->cons), SPINS_MAX / 2);

	atomic_store(&s->cons.spins, SPINS_MAX);
	pid_t pid = fork();
	ASSERT_CMP(pid, >=, 0);
	if (pid == 0) {
		ssize_t n = mp_queue_get(q, buf, sizeof(buf), MP_FOREVER);
		_exit(n == 4 && !memcmp(buf, "ping", 4) ? 0 : 1);
	}
	ASSERT_OK(mp_queue_put(q, "ping", 4, MP_FOREVER));
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mp_queue_free(q);
}

TEST_MAIN(T(short_sleeps_double_to_bound), T(long_sleeps_halve_to_floor),
	  T(grown_budget_times_out_and_wakes))
