/* SPDX-License-Identifier: MIT */
/* Barrier: indices, rounds, breaking (timeout, abort, reset, death). */
#include <sched.h>
#include <stdatomic.h>

#include "test.h"

static void wait_n_waiting(mp_barrier *b, int n)
{
	while (mp_barrier_n_waiting(b) != n)
		sched_yield();
}

TEST(barrier_bad_input)
{
	ASSERT_ERR(mp_barrier_init(NULL, 2), -EINVAL);
	mp_barrier b;
	ASSERT_ERR(mp_barrier_init(&b, 0), -EINVAL);
	ASSERT_ERR(mp_barrier_init(&b, 0x80000000u), -EINVAL);
	errno = 0;
	ASSERT(mp_barrier_new(0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_barrier_wait(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_barrier_abort(NULL), -EINVAL);
	ASSERT_ERR(mp_barrier_reset(NULL), -EINVAL);
	ASSERT_ERR(mp_barrier_n_waiting(NULL), -EINVAL);
	ASSERT_ERR(mp_barrier_parties(NULL), -EINVAL);
	ASSERT_ERR(mp_barrier_destroy(NULL), -EINVAL);
	ASSERT(!mp_barrier_broken(NULL));
	mp_barrier_free(NULL);
	memset(&b, 0, sizeof(b));
	ASSERT_ERR(mp_barrier_wait(&b, 0), -EINVAL);
	ASSERT_OK(mp_barrier_init(&b, 3));
	ASSERT_EQ(mp_barrier_parties(&b), 3);
	ASSERT_EQ(mp_barrier_n_waiting(&b), 0);
	ASSERT(!mp_barrier_broken(&b));
	ASSERT_OK(mp_barrier_destroy(&b));
	ASSERT_ERR(mp_barrier_wait(&b, 0), -EINVAL);
}

TEST(barrier_one_party)
{
	mp_barrier *b = mp_barrier_new(1);
	ASSERT_NOT_NULL(b);
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(mp_barrier_wait(b, 0), 0);
	mp_barrier_free(b);
}

/* Every round, the indices are a permutation of 0..n-1, and nobody leaves
 * a round before everyone has entered it. */
#define PARTIES 5
#define ROUNDS 300

struct rounds {
	mp_barrier barrier;
	_Atomic int entered[PARTIES];
	_Atomic int index_seen[ROUNDS][PARTIES];
};

static int party(void *arg)
{
	struct rounds *r = (struct rounds *)((void **)arg)[0];
	int me = (int)(intptr_t)((void **)arg)[1];
	for (int round = 0; round < ROUNDS; round++) {
		atomic_store(&r->entered[me], round + 1);
		int idx = mp_barrier_wait(&r->barrier, 20);
		if (idx < 0 || idx >= PARTIES)
			return 1;
		for (int p = 0; p < PARTIES; p++)
			if (atomic_load(&r->entered[p]) < round + 1)
				return 2;
		atomic_fetch_add(&r->index_seen[round][idx], 1);
	}
	return 0;
}

TEST(barrier_indices_are_a_permutation)
{
	struct rounds *r = mp_shared_alloc(sizeof(*r));
	ASSERT_NOT_NULL(r);
	ASSERT_OK(mp_barrier_init(&r->barrier, PARTIES));
	pid_t pids[PARTIES];
	void *args[PARTIES][2];
	for (int i = 0; i < PARTIES; i++) {
		args[i][0] = r;
		args[i][1] = (void *)(intptr_t)i;
		pids[i] = test_fork(party, args[i]);
	}
	for (int i = 0; i < PARTIES; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	for (int round = 0; round < ROUNDS; round++)
		for (int idx = 0; idx < PARTIES; idx++)
			ASSERT_EQ(atomic_load(&r->index_seen[round][idx]), 1);
	ASSERT(!mp_barrier_broken(&r->barrier));
	ASSERT_EQ(mp_barrier_n_waiting(&r->barrier), 0);
	ASSERT_OK(mp_barrier_destroy(&r->barrier));
	mp_shared_free(r);
}

static int wait_expect_broken(void *arg)
{
	int r = mp_barrier_wait(arg, MP_FOREVER);
	return r == MP_EBROKEN ? 0 : 1;
}

static int wait_ok(void *arg)
{
	int r = mp_barrier_wait(arg, 20);
	return r >= 0 ? 0 : 1;
}

TEST(barrier_timeout_breaks_it)
{
	mp_barrier *b = mp_barrier_new(3);
	pid_t other = test_fork(wait_expect_broken, b);
	wait_n_waiting(b, 1);
	double t0 = test_now();
	ASSERT_ERR(mp_barrier_wait(b, 0.12), MP_EBROKEN);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.12);
	ASSERT(waited < 0.12 + 1.0 * test_timeout_mult());
	ASSERT_EQ(test_wait(other), 0);
	ASSERT(mp_barrier_broken(b));
	ASSERT_EQ(mp_barrier_n_waiting(b), 0);
	ASSERT_ERR(mp_barrier_wait(b, MP_FOREVER), MP_EBROKEN);
	ASSERT_ERR(mp_barrier_wait(b, 0), MP_EBROKEN);
	/* Reset: usable again for a full round. */
	ASSERT_OK(mp_barrier_reset(b));
	ASSERT(!mp_barrier_broken(b));
	pid_t p1 = test_fork(wait_ok, b);
	pid_t p2 = test_fork(wait_ok, b);
	ASSERT(mp_barrier_wait(b, 20) >= 0);
	ASSERT_EQ(test_wait(p1), 0);
	ASSERT_EQ(test_wait(p2), 0);
	/* A try (timeout 0) that is not the last arrival breaks it too. */
	ASSERT_ERR(mp_barrier_wait(b, 0), MP_EBROKEN);
	ASSERT(mp_barrier_broken(b));
	mp_barrier_free(b);
}

#define MANY 7

TEST(barrier_abort_wakes_everyone)
{
	mp_barrier *b = mp_barrier_new(MANY + 1);
	pid_t pids[MANY];
	for (int i = 0; i < MANY; i++)
		pids[i] = test_fork(wait_expect_broken, b);
	wait_n_waiting(b, MANY);
	ASSERT_OK(mp_barrier_abort(b));
	for (int i = 0; i < MANY; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT(mp_barrier_broken(b));
	ASSERT_OK(mp_barrier_abort(b));
	ASSERT_ERR(mp_barrier_wait(b, MP_FOREVER), MP_EBROKEN);
	mp_barrier_free(b);
}

TEST(barrier_reset_while_waiting_breaks_round)
{
	mp_barrier *b = mp_barrier_new(MANY + 1);
	pid_t pids[MANY];
	for (int i = 0; i < MANY; i++)
		pids[i] = test_fork(wait_expect_broken, b);
	wait_n_waiting(b, MANY);
	ASSERT_OK(mp_barrier_reset(b));
	for (int i = 0; i < MANY; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT(!mp_barrier_broken(b));
	ASSERT_EQ(mp_barrier_n_waiting(b), 0);
	mp_barrier_free(b);
}

/* A waiting party is SIGKILLed: the others get MP_EBROKEN soon, whichever
 * place in the arrival order the victim had. */
TEST(barrier_party_killed_while_others_wait)
{
	for (int victim = 0; victim < 4; victim++) {
		mp_barrier *b = mp_barrier_new(5);
		pid_t pids[4];
		for (int i = 0; i < 4; i++) {
			pids[i] = test_fork(wait_expect_broken, b);
			wait_n_waiting(b, i + 1);
		}
		double t0 = test_now();
		kill(pids[victim], SIGKILL);
		for (int i = 0; i < 4; i++)
			ASSERT_EQ(test_wait(pids[i]),
				  i == victim ? -SIGKILL : 0);
		double took = test_now() - t0;
		ASSERT(took < 2.0 * test_timeout_mult());
		ASSERT(mp_barrier_broken(b));
		ASSERT_OK(mp_barrier_reset(b));
		mp_barrier_free(b);
	}
}

/* The only other waiter dies: the last arrival watches the first, and the
 * first watches the latest. */
TEST(barrier_two_waiters_one_killed)
{
	mp_barrier *b = mp_barrier_new(3);
	pid_t a = test_fork(wait_expect_broken, b);
	wait_n_waiting(b, 1);
	pid_t c = test_fork(wait_expect_broken, b);
	wait_n_waiting(b, 2);
	kill(c, SIGKILL);
	ASSERT_EQ(test_wait(c), -SIGKILL);
	ASSERT_EQ(test_wait(a), 0);
	mp_barrier_free(b);
}

TEST_MAIN(T(barrier_bad_input), T(barrier_one_party),
	  T_TIMEOUT(barrier_indices_are_a_permutation, 60),
	  T(barrier_timeout_breaks_it), T(barrier_abort_wakes_everyone),
	  T(barrier_reset_while_waiting_breaks_round),
	  T(barrier_party_killed_while_others_wait),
	  T(barrier_two_waiters_one_killed))
