/* SPDX-License-Identifier: MIT */
/* Sync faults (MP_TEST_FAULTS): processes that die at any point inside a
 * semaphore, condition, event or barrier wait never leave the others
 * asleep, never lose a unit or a notify, and never make destroy fail. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fault.h"
#include "test.h"

/* The first child to stop (at an armed fault point). */
static pid_t wait_stopped(void)
{
	int st;
	pid_t pid = waitpid(-1, &st, WUNTRACED);
	if (pid < 0 || !WIFSTOPPED(st))
		FAIL("expected a child stopped at its fault point");
	return pid;
}

/* Wait for pid to end, continuing it whenever it stops at its fault
 * point; return its exit code or -signal. */
static int wait_cont(pid_t pid)
{
	int st;
	for (;;) {
		if (waitpid(pid, &st, WUNTRACED) < 0) {
			if (errno == EINTR)
				continue;
			return -1000;
		}
		if (!WIFSTOPPED(st))
			break;
		kill(pid, SIGCONT);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	ASSERT_EQ(test_wait(pid), -SIGKILL);
}

/* ---- semaphore ---- */

static mp_semaphore *g_sem;

static int sem_take(void *arg)
{
	if (arg)
		mp__fault_arm("sem.acquire.woken", MP__FAULT_STOP, 1);
	return mp_semaphore_acquire(g_sem, MP_FOREVER) ? 1 : 0;
}

/* Issue 18 #8: the waiter a release woke dies before it takes the unit:
 * the other waiter still gets it. */
TEST(sem_woken_waiter_killed)
{
	g_sem = mp_semaphore_new(0);
	ASSERT_NOT_NULL(g_sem);
	pid_t w[2];
	for (int i = 0; i < 2; i++) {
		w[i] = test_fork(sem_take, (void *)1);
		test_wait_asleep(w[i]);
	}
	ASSERT_OK(mp_semaphore_release(g_sem));
	pid_t victim = wait_stopped();
	double t0 = test_now();
	kill_reap(victim);
	ASSERT_EQ(wait_cont(victim == w[0] ? w[1] : w[0]), 0);
	double took = test_now() - t0;
	printf("# the other waiter had the unit %.0f ms after the death\n",
	       took * 1e3);
	/* Within one 40 ms sleep slice; leave room for load. */
	ASSERT(took < 2.0 * test_timeout_mult());
	ASSERT_EQ(mp_semaphore_get_value(g_sem), 0);
	ASSERT_OK(mp_semaphore_destroy(g_sem));
	mp_shared_free(g_sem);
}

/* Issue 18 #16b: waiters killed asleep do not make destroy fail, and the
 * semaphore still works for the living. */
TEST(sem_destroy_after_waiters_killed)
{
	g_sem = mp_semaphore_new(0);
	pid_t w[3];
	for (int i = 0; i < 3; i++) {
		w[i] = test_fork(sem_take, NULL);
		test_wait_asleep(w[i]);
	}
	kill_reap(w[0]);
	kill_reap(w[2]);
	ASSERT_OK(mp_semaphore_release(g_sem));
	ASSERT_EQ(test_wait(w[1]), 0);
	ASSERT_EQ(mp_semaphore_get_value(g_sem), 0);
	pid_t last = test_fork(sem_take, NULL);
	test_wait_asleep(last);
	kill_reap(last);
	ASSERT_OK(mp_semaphore_destroy(g_sem));
	mp_shared_free(g_sem);
}

/* ---- condition ---- */

struct gate {
	mp_condition cond;
	int open;
	int waiting;
};

static struct gate *g_gate;

static bool gate_open(void *arg)
{
	return ((struct gate *)arg)->open;
}

static int gate_wait(void *arg)
{
	struct gate *g = g_gate;
	if (arg)
		mp__fault_arm("cond.wait.woken", MP__FAULT_STOP, 1);
	if (mp_condition_acquire(&g->cond, MP_FOREVER))
		return 1;
	g->waiting++;
	int err = mp_condition_wait_for(&g->cond, gate_open, g, MP_FOREVER);
	if (mp_condition_release(&g->cond))
		return 2;
	return err ? 3 : 0;
}

/* Until n waiters have released the lock in wait and sleep. */
static void wait_gate_waiters(pid_t *pids, int n)
{
	for (;;) {
		ASSERT_OK(mp_condition_acquire(&g_gate->cond, MP_FOREVER));
		int k = g_gate->waiting;
		ASSERT_OK(mp_condition_release(&g_gate->cond));
		if (k == n)
			break;
		sched_yield();
	}
	for (int i = 0; i < n; i++)
		test_wait_asleep(pids[i]);
}

/* Issue 18 #9: notify(1) wakes a waiter that dies before it returns: the
 * notify goes to the other waiter. */
TEST(cond_woken_waiter_killed)
{
	g_gate = mp_shared_alloc(sizeof(*g_gate));
	ASSERT_OK(mp_condition_init(&g_gate->cond, NULL));
	pid_t w[2];
	for (int i = 0; i < 2; i++)
		w[i] = test_fork(gate_wait, (void *)1);
	wait_gate_waiters(w, 2);
	ASSERT_OK(mp_condition_acquire(&g_gate->cond, MP_FOREVER));
	g_gate->open = 1;
	ASSERT_OK(mp_condition_notify(&g_gate->cond, 1));
	ASSERT_OK(mp_condition_release(&g_gate->cond));
	pid_t victim = wait_stopped();
	double t0 = test_now();
	kill_reap(victim);
	ASSERT_EQ(wait_cont(victim == w[0] ? w[1] : w[0]), 0);
	double took = test_now() - t0;
	printf("# the other waiter returned %.0f ms after the death\n",
	       took * 1e3);
	ASSERT(took < 2.0 * test_timeout_mult());
	ASSERT_OK(mp_condition_destroy(&g_gate->cond));
	mp_shared_free(g_gate);
}

/* Issue 18 #16b for the condition. */
TEST(cond_destroy_after_waiter_killed)
{
	g_gate = mp_shared_alloc(sizeof(*g_gate));
	ASSERT_OK(mp_condition_init(&g_gate->cond, NULL));
	pid_t w[1];
	w[0] = test_fork(gate_wait, NULL);
	wait_gate_waiters(w, 1);
	kill_reap(w[0]);
	ASSERT_OK(mp_condition_destroy(&g_gate->cond));
	mp_shared_free(g_gate);
}

/* ---- event ---- */

static mp_event *g_event;

static int event_wait(void *arg)
{
	(void)arg;
	return mp_event_wait(g_event, MP_FOREVER) ? 1 : 0;
}

TEST(event_destroy_after_waiter_killed)
{
	g_event = mp_event_new();
	pid_t w = test_fork(event_wait, NULL);
	test_wait_asleep(w);
	kill_reap(w);
	ASSERT_OK(mp_event_destroy(g_event));
	mp_shared_free(g_event);
}

/* ---- barrier ---- */

static mp_barrier *g_barrier;

static int barrier_wait(void *arg)
{
	if (arg)
		mp__fault_arm("barrier.wait.locked", MP__FAULT_KILL, 1);
	int r = mp_barrier_wait(g_barrier, MP_FOREVER);
	return r == MP_EBROKEN ? 0 : 1;
}

/* The only waiter dies asleep: nobody is left to notice, and destroy
 * must not fail for it. */
TEST(barrier_destroy_after_lone_waiter_killed)
{
	g_barrier = mp_barrier_new(3);
	pid_t w = test_fork(barrier_wait, NULL);
	while (mp_barrier_n_waiting(g_barrier) != 1)
		sched_yield();
	test_wait_asleep(w);
	kill_reap(w);
	ASSERT_OK(mp_barrier_destroy(g_barrier));
	mp_shared_free(g_barrier);
}

/* A party dies holding the barrier's internal lock: destroy recovers it. */
TEST(barrier_destroy_after_holder_killed)
{
	g_barrier = mp_barrier_new(3);
	pid_t w = test_fork(barrier_wait, (void *)1);
	ASSERT_EQ(test_wait(w), -SIGKILL);
	ASSERT_OK(mp_barrier_destroy(g_barrier));
	mp_shared_free(g_barrier);
}

/* ---- kill storms ---- */

/*
 * Many processes wait and post while random ones are SIGKILLed at random
 * moments, and half of them are armed to die right after a wake-up (the
 * window a signal alone rarely hits).  The dead are replaced.  The parent
 * hands out work one step at a time and waits for it to be taken, so a
 * wake-up that a death swallowed would hang the case (the watchdog fails
 * it) instead of being absorbed by later ones.
 */
#define SLOTS 200
#define LIVE 6

static unsigned g_rng = 0x12345678u;

/* MP_TEST_SEED replays a run; the seed is printed. */
static void seed_rng(void)
{
	const char *e = getenv("MP_TEST_SEED");
	if (e)
		g_rng = (unsigned)strtoul(e, NULL, 0);
	printf("# seed 0x%x\n", g_rng);
}

static unsigned rnd(unsigned n)
{
	g_rng = g_rng * 1103515245u + 12345u;
	return (g_rng >> 8) % n;
}

struct crew {
	pid_t pid[SLOTS];
	bool live[SLOTS];
	bool killed[SLOTS]; /* died by SIGKILL */
	int n, nlive, nkilled;
	int (*fn)(void *);
};

static void crew_spawn(struct crew *c)
{
	if (c->n == SLOTS)
		FAIL("out of slots");
	int i = c->n++;
	c->pid[i] = test_fork(c->fn, (void *)(intptr_t)i);
	ASSERT(c->pid[i] > 0);
	c->live[i] = true;
	c->nlive++;
}

/* Record the end of pid; deaths must be SIGKILLs, exits 0. */
static void crew_ended(struct crew *c, pid_t pid, int st)
{
	for (int i = 0; i < c->n; i++) {
		if (c->pid[i] != pid || !c->live[i])
			continue;
		c->live[i] = false;
		c->nlive--;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			c->killed[i] = true;
			c->nkilled++;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			FAIL("slot %d: status 0x%x", i, st);
		}
		return;
	}
	FAIL("unknown child %d", (int)pid);
}

/* Reap whoever ended; with `refill`, replace them. */
static void crew_reap(struct crew *c, bool refill)
{
	int st;
	for (pid_t p; (p = waitpid(-1, &st, WNOHANG)) > 0;)
		crew_ended(c, p, st);
	while (refill && c->nlive < LIVE)
		crew_spawn(c);
}

/* Reap whoever ended; replace them only when nobody is left, so that a
 * newcomer does not take what a death left stranded. */
static void crew_reap_keep_one(struct crew *c)
{
	crew_reap(c, false);
	if (c->nlive == 0)
		crew_spawn(c);
}

/* Wait for one member to end. */
static void crew_reap_one(struct crew *c)
{
	int st;
	pid_t p;
	while ((p = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
		;
	ASSERT(p > 0);
	crew_ended(c, p, st);
}

/* SIGKILL a random live member, at a random moment. */
static void crew_strike(struct crew *c)
{
	usleep(rnd(1500));
	if (rnd(3) != 0 || c->nlive == 0)
		return;
	int k = (int)rnd((unsigned)c->nlive);
	for (int i = 0; i < c->n; i++)
		if (c->live[i] && k-- == 0) {
			kill(c->pid[i], SIGKILL);
			return;
		}
}

static void crew_init(struct crew *c, int (*fn)(void *))
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	seed_rng();
}

/* Semaphore: the parent releases, consumers take.  A consumer's state is
 * taken * 2 + (1 while inside acquire), one store each way, so a dead
 * consumer took exactly state / 2 units, or one more if it died inside
 * acquire. */
struct sem_storm {
	mp_semaphore sem;
	_Atomic int64_t state[SLOTS];
	_Atomic int stop;
};

static struct sem_storm *g_ss;

static int sem_consumer(void *arg)
{
	int slot = (int)(intptr_t)arg;
	int64_t taken = 0;

	if (slot % 2)
		mp__fault_arm("sem.acquire.woken", MP__FAULT_KILL,
			      1 + (unsigned)slot % 4);
	for (;;) {
		atomic_store(&g_ss->state[slot], taken * 2 + 1);
		if (mp_semaphore_acquire(&g_ss->sem, MP_FOREVER))
			return 1;
		taken++;
		atomic_store(&g_ss->state[slot], taken * 2);
		if (atomic_load(&g_ss->stop))
			return 0;
	}
}

TEST(sem_kill_storm)
{
	struct crew c;
	g_ss = mp_shared_alloc(sizeof(*g_ss));
	ASSERT_NOT_NULL(g_ss);
	ASSERT_OK(mp_semaphore_init(&g_ss->sem, 0));
	crew_init(&c, sem_consumer);
	crew_reap(&c, true);
	long released = 0;
	for (int step = 0; step < 150; step++) {
		for (unsigned k = 1 + rnd(2); k > 0; k--, released++)
			ASSERT_OK(mp_semaphore_release(&g_ss->sem));
		crew_strike(&c);
		/* Until every unit is taken: a unit stranded beside
		 * sleepers hangs us here. */
		while (mp_semaphore_get_value(&g_ss->sem) > 0) {
			crew_reap_keep_one(&c);
			sched_yield();
		}
		crew_reap(&c, true);
	}
	/* Wind down: a unit at a time, each for one consumer to leave with;
	 * none while one is there (a stranded unit hangs us here). */
	atomic_store(&g_ss->stop, 1);
	while (c.nlive > 0) {
		if (mp_semaphore_get_value(&g_ss->sem) == 0) {
			ASSERT_OK(mp_semaphore_release(&g_ss->sem));
			released++;
		}
		crew_reap_one(&c);
	}
	long taken = 0;
	int maybe = 0;
	for (int i = 0; i < c.n; i++) {
		int64_t st = atomic_load(&g_ss->state[i]);
		taken += st / 2;
		ASSERT(!(st & 1) || c.killed[i]);
		maybe += st & 1;
	}
	long lost = released - taken - mp_semaphore_get_value(&g_ss->sem);
	printf("# %d processes, %d killed, %ld released, %ld taken, "
	       "%ld taken by the dead in their last acquire (at most %d)\n",
	       c.n, c.nkilled, released, taken, lost, maybe);
	ASSERT(c.nkilled > 0);
	ASSERT_CMP(lost, >=, 0);
	ASSERT_CMP(lost, <=, maybe);
	ASSERT_OK(mp_semaphore_destroy(&g_ss->sem));
	mp_shared_free(g_ss);
}

/* Condition: the parent adds a unit and notifies one; a consumer takes a
 * unit by a single store under the lock, so the books are exact even
 * when it dies holding the lock. */
struct cond_storm {
	mp_lock lock;
	mp_condition cond;
	long released;
	long taken[SLOTS];
	int stop;
};

static struct cond_storm *g_cs;

static long cs_avail(void)
{
	long t = 0;
	for (int i = 0; i < SLOTS; i++)
		t += g_cs->taken[i];
	return g_cs->released - t;
}

static int cs_lock(void)
{
	int r = mp_lock_acquire(&g_cs->lock, MP_FOREVER);
	return r == -EOWNERDEAD ? 0 : r;
}

static int cond_consumer(void *arg)
{
	int slot = (int)(intptr_t)arg;

	if (slot % 2)
		mp__fault_arm("cond.wait.woken", MP__FAULT_KILL,
			      1 + (unsigned)slot % 4);
	for (;;) {
		if (cs_lock())
			return 1;
		while (!g_cs->stop && cs_avail() <= 0) {
			int r = mp_condition_wait(&g_cs->cond, MP_FOREVER);
			if (r && r != -EOWNERDEAD)
				return 2;
		}
		if (cs_avail() <= 0) {
			mp_lock_release(&g_cs->lock);
			return 0;
		}
		g_cs->taken[slot]++;
		mp_lock_release(&g_cs->lock);
	}
}

TEST(cond_kill_storm)
{
	struct crew c;
	g_cs = mp_shared_alloc(sizeof(*g_cs));
	ASSERT_NOT_NULL(g_cs);
	ASSERT_OK(mp_lock_init(&g_cs->lock));
	ASSERT_OK(mp_condition_init(&g_cs->cond, &g_cs->lock));
	crew_init(&c, cond_consumer);
	crew_reap(&c, true);
	for (int step = 0; step < 150; step++) {
		ASSERT_OK(cs_lock());
		g_cs->released++;
		ASSERT_OK(mp_condition_notify(&g_cs->cond, 1));
		ASSERT_OK(mp_lock_release(&g_cs->lock));
		crew_strike(&c);
		/* Until the unit is taken: a notify swallowed by a death
		 * hangs us here. */
		for (;;) {
			crew_reap_keep_one(&c);
			ASSERT_OK(cs_lock());
			long avail = cs_avail();
			ASSERT_OK(mp_lock_release(&g_cs->lock));
			ASSERT_CMP(avail, >=, 0);
			if (avail == 0)
				break;
			sched_yield();
		}
		crew_reap(&c, true);
	}
	ASSERT_OK(cs_lock());
	g_cs->stop = 1;
	ASSERT_OK(mp_condition_notify_all(&g_cs->cond));
	ASSERT_OK(mp_lock_release(&g_cs->lock));
	while (c.nlive > 0)
		crew_reap_one(&c);
	printf("# %d processes, %d killed, %ld units\n", c.n, c.nkilled,
	       g_cs->released);
	ASSERT(c.nkilled > 0);
	ASSERT_EQ(cs_avail(), 0);
	ASSERT_EQ(g_cs->released, 150);
	ASSERT_OK(mp_condition_destroy(&g_cs->cond));
	ASSERT_OK(cs_lock());
	ASSERT_OK(mp_lock_release(&g_cs->lock));
	ASSERT_OK(mp_lock_destroy(&g_cs->lock));
	mp_shared_free(g_cs);
}

/* Event: rounds; in round r everyone waits for go[r % 2], which the
 * parent sets once every live waiter has arrived, having cleared the
 * other one.  Every live waiter must pass every round.  At the end the
 * parent kills them all while they wait, as a pool shuts down, and the
 * events must still destroy. */
#define EV_ROUNDS 150

struct event_storm {
	mp_event go[2];
	_Atomic int start[SLOTS];
	_Atomic int arrived[SLOTS];
	_Atomic int passed[SLOTS];
};

static struct event_storm *g_es;

static int event_waiter(void *arg)
{
	int slot = (int)(intptr_t)arg;
	for (int r = atomic_load(&g_es->start[slot]);; r++) {
		atomic_store(&g_es->arrived[slot], r);
		if (mp_event_wait(&g_es->go[r % 2], MP_FOREVER))
			return 1;
		atomic_store(&g_es->passed[slot], r);
	}
}

/* Until every live waiter has reached `field` >= r. */
static void es_until(struct crew *c, _Atomic int *field, int r, int next)
{
	for (bool all = false; !all;) {
		crew_reap(c, false);
		while (c->nlive < LIVE) {
			atomic_store(&g_es->start[c->n], next);
			atomic_store(&g_es->arrived[c->n], next - 1);
			atomic_store(&g_es->passed[c->n], next - 1);
			crew_spawn(c);
		}
		all = true;
		for (int i = 0; i < c->n; i++)
			if (c->live[i] && atomic_load(&field[i]) < r &&
			    atomic_load(&g_es->start[i]) <= r)
				all = false;
		if (!all)
			sched_yield();
	}
}

TEST(event_kill_storm)
{
	struct crew c;
	g_es = mp_shared_alloc(sizeof(*g_es));
	ASSERT_NOT_NULL(g_es);
	ASSERT_OK(mp_event_init(&g_es->go[0]));
	ASSERT_OK(mp_event_init(&g_es->go[1]));
	crew_init(&c, event_waiter);
	for (int r = 0; r < EV_ROUNDS; r++) {
		es_until(&c, g_es->arrived, r, r);
		ASSERT_OK(mp_event_clear(&g_es->go[(r + 1) % 2]));
		crew_strike(&c);
		ASSERT_OK(mp_event_set(&g_es->go[r % 2]));
		crew_strike(&c);
		es_until(&c, g_es->passed, r, r + 1);
	}
	for (int i = 0; i < c.n; i++)
		if (c.live[i])
			ASSERT_EQ(atomic_load(&g_es->passed[i]), EV_ROUNDS - 1);
	printf("# %d processes, %d killed\n", c.n, c.nkilled);
	ASSERT(c.nkilled > 0);
	es_until(&c, g_es->arrived, EV_ROUNDS, EV_ROUNDS);
	/* (One struck last may still be dying: then it is reaped.) */
	for (int i = 0; i < c.n; i++)
		while (c.live[i] && !test_asleep(c.pid[i])) {
			crew_reap(&c, false);
			usleep(1000);
		}
	for (int i = 0; i < c.n; i++)
		if (c.live[i])
			kill(c.pid[i], SIGKILL);
	while (c.nlive > 0)
		crew_reap_one(&c);
	ASSERT_OK(mp_event_destroy(&g_es->go[0]));
	ASSERT_OK(mp_event_destroy(&g_es->go[1]));
	mp_shared_free(g_es);
}

/* Barrier: trials of PARTIES processes doing rounds; one is killed at a
 * random moment (asleep in a round, inside the barrier's lock, between
 * rounds), then the parent aborts, as a parent that joins a dead party
 * does.  Every survivor must end with MP_EBROKEN in the same round, every
 * round before it must have had each index once (the victim may have died
 * before writing down its last one), none after it.  At the end a round
 * of parties is killed while it waits, and the barrier must destroy. */
#define PARTIES 4
#define B_ROUNDS 400

struct barrier_storm {
	mp_barrier b;
	_Atomic int seen[B_ROUNDS][PARTIES];
	_Atomic int broken_at[SLOTS];
};

static struct barrier_storm *g_bs;

static int barrier_party(void *arg)
{
	int slot = (int)(intptr_t)arg;
	for (int r = 0; r < B_ROUNDS; r++) {
		int idx = mp_barrier_wait(&g_bs->b, MP_FOREVER);
		if (idx == MP_EBROKEN) {
			atomic_store(&g_bs->broken_at[slot], r);
			return 0;
		}
		if (idx < 0 || idx >= PARTIES)
			return 1;
		atomic_fetch_add(&g_bs->seen[r][idx], 1);
	}
	atomic_store(&g_bs->broken_at[slot], B_ROUNDS);
	return 0;
}

TEST(barrier_kill_storm)
{
	int killed = 0;
	g_bs = mp_shared_alloc(sizeof(*g_bs));
	ASSERT_NOT_NULL(g_bs);
	seed_rng();
	for (int trial = 0; trial < 40; trial++) {
		memset(g_bs, 0, sizeof(*g_bs));
		ASSERT_OK(mp_barrier_init(&g_bs->b, PARTIES));
		pid_t pid[PARTIES];
		for (int i = 0; i < PARTIES; i++)
			pid[i] = test_fork(barrier_party, (void *)(intptr_t)i);
		int victim = (int)rnd(PARTIES);
		usleep(rnd(3000));
		kill(pid[victim], SIGKILL);
		int vr = test_wait(pid[victim]);
		ASSERT(vr == -SIGKILL || vr == 0);
		killed += vr == -SIGKILL;
		ASSERT_OK(mp_barrier_abort(&g_bs->b));
		int rb = -1;
		for (int i = 0; i < PARTIES; i++) {
			if (i == victim)
				continue;
			ASSERT_EQ(test_wait(pid[i]), 0);
			int at = atomic_load(&g_bs->broken_at[i]);
			if (rb < 0)
				rb = at;
			ASSERT_EQ(at, rb);
		}
		for (int r = 0; r < B_ROUNDS; r++) {
			int n = 0;
			for (int idx = 0; idx < PARTIES; idx++) {
				int k = atomic_load(&g_bs->seen[r][idx]);
				ASSERT(k == 0 || k == 1);
				n += k;
			}
			if (r < rb - 1)
				ASSERT_EQ(n, PARTIES);
			else if (r == rb - 1)
				ASSERT(n == PARTIES || n == PARTIES - 1);
			else
				ASSERT_EQ(n, 0);
		}
		ASSERT_OK(mp_barrier_destroy(&g_bs->b));
	}
	printf("# 40 trials, %d parties killed\n", killed);
	ASSERT_OK(mp_barrier_init(&g_bs->b, PARTIES));
	pid_t pid[PARTIES - 1];
	for (int i = 0; i < PARTIES - 1; i++)
		pid[i] = test_fork(barrier_party, (void *)(intptr_t)i);
	while (mp_barrier_n_waiting(&g_bs->b) != PARTIES - 1)
		sched_yield();
	for (int i = 0; i < PARTIES - 1; i++)
		test_wait_asleep(pid[i]);
	for (int i = 0; i < PARTIES - 1; i++)
		kill_reap(pid[i]);
	ASSERT_OK(mp_barrier_destroy(&g_bs->b));
	mp_shared_free(g_bs);
}

TEST_MAIN(T_TIMEOUT(sem_woken_waiter_killed, 10),
	  T(sem_destroy_after_waiters_killed),
	  T_TIMEOUT(cond_woken_waiter_killed, 10),
	  T(cond_destroy_after_waiter_killed),
	  T(event_destroy_after_waiter_killed),
	  T(barrier_destroy_after_lone_waiter_killed),
	  T(barrier_destroy_after_holder_killed),
	  T_TIMEOUT(sem_kill_storm, 30), T_TIMEOUT(cond_kill_storm, 30),
	  T_TIMEOUT(event_kill_storm, 60), T_TIMEOUT(barrier_kill_storm, 60))
