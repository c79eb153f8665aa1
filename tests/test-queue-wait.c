/* SPDX-License-Identifier: MIT */
/* The queue's learnt spin (src/queue-wait.h): short sleeps lengthen it up
 * to a bound, long or timed-out ones shorten it back to the floor, every
 * value is clamped, each side learns for itself, and a queue whose budget
 * grew still wakes its sleeper. */
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
		learn_wait(&sd, 50 * 1000, false);
		want *= 2;
		ASSERT_EQ(spin_budget(&sd), want);
	}
	learn_wait(&sd, 0, false);
	ASSERT_EQ(spin_budget(&sd), SPINS_MAX);
}

TEST(long_or_timed_out_sleeps_halve_to_floor)
{
	struct side sd = {0};

	atomic_store(&sd.spins, SPINS_MAX);
	/* Between the two bounds: no change. */
	learn_wait(&sd, (SPIN_SHORT_NS + SPIN_LONG_NS) / 2, false);
	ASSERT_EQ(spin_budget(&sd), SPINS_MAX);
	/* A wait that timed out says nothing came, however short. */
	learn_wait(&sd, 0, true);
	ASSERT_EQ(spin_budget(&sd), SPINS_MAX / 2);
	int want = SPINS_MAX / 2;
	while (want > SPINS) {
		learn_wait(&sd, 10 * SPIN_LONG_NS, false);
		want /= 2;
		ASSERT_EQ(spin_budget(&sd), want);
	}
	learn_wait(&sd, 10 * SPIN_LONG_NS, false);
	ASSERT_EQ(spin_budget(&sd), SPINS);
}

/* Any value in the shared word is clamped: no unbounded spin, no negative
 * one, no overflow when it doubles. */
TEST(foreign_budgets_are_clamped)
{
	struct side sd = {0};
	const uint32_t odd[] = {1, SPINS + 1, SPINS_MAX - 1, SPINS_MAX + 1,
				0x7fffffffu, 0x80000000u, 0xffffffffu};

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		atomic_store(&sd.spins, odd[i]);
		int b = spin_budget(&sd);
		ASSERT(b >= SPINS && b <= SPINS_MAX);
		learn_wait(&sd, 0, false);
		b = spin_budget(&sd);
		ASSERT(b >= SPINS && b <= SPINS_MAX);
	}
}

/* Each side learns for itself: an empty get that times out shortens the
 * consumers' budget, a put into a full queue the producers', and neither
 * touches the other's.  0.2 s: room for the spin's yields on a loaded
 * machine (a spin cut short by the deadline sleeps not, and learns
 * nothing); its sleeps (slices of 40 ms) each time out, so the budget
 * halves at least once. */
TEST(each_side_learns_its_own)
{
	mp_queue *q = mp_queue_new(4096);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	char buf[64] = {0};

	atomic_store(&s->cons.spins, SPINS_MAX);
	atomic_store(&s->prod.spins, SPINS_MAX);
	int64_t t0 = mp__now_ns();
	ASSERT_ERR(mp_queue_get(q, buf, sizeof(buf), 0.2), -ETIMEDOUT);
	ASSERT_CMP(mp__now_ns() - t0, >=, 200 * 1000 * 1000);
	ASSERT_CMP(spin_budget(&s->cons), <=, SPINS_MAX / 2);
	ASSERT_EQ(spin_budget(&s->prod), SPINS_MAX);

	atomic_store(&s->cons.spins, SPINS_MAX);
	while (mp_queue_put(q, buf, sizeof(buf), 0) == 0)
		;
	ASSERT_ERR(mp_queue_put(q, buf, sizeof(buf), 0.2), -ETIMEDOUT);
	ASSERT_CMP(spin_budget(&s->prod), <=, SPINS_MAX / 2);
	ASSERT_EQ(spin_budget(&s->cons), SPINS_MAX);
	mp_queue_free(q);
}

/* A consumer at the longest spin that went on to sleep is woken by a
 * put: the longer spin does not change the hand-off to a sleeper. */
TEST(grown_budget_still_wakes)
{
	mp_queue *q = mp_queue_new(4096);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	char buf[16];

	atomic_store(&s->cons.spins, SPINS_MAX);
	pid_t pid = fork();
	ASSERT_CMP(pid, >=, 0);
	if (pid == 0) {
		ssize_t n = mp_queue_get(q, buf, sizeof(buf), MP_FOREVER);
		_exit(n == 4 && !memcmp(buf, "ping", 4) ? 0 : 1);
	}
	/* Asleep in the kernel: past its spin and yields (a yield is 'R'). */
	test_wait_asleep(pid);
	ASSERT_OK(mp_queue_put(q, "ping", 4, MP_FOREVER));
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mp_queue_free(q);
}

TEST_MAIN(T(short_sleeps_double_to_bound),
	  T(long_or_timed_out_sleeps_halve_to_floor),
	  T(foreign_budgets_are_clamped), T(each_side_learns_its_own),
	  T(grown_budget_still_wakes))
