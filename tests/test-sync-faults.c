/* Sync faults (MP_TEST_FAULTS): processes that die at any point inside a
 * semaphore, condition, event or barrier wait never leave the others
 * asleep, never lose a unit or a notify, and never make destroy fail. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fault.h"
#include "test.h"

/* Whether process pid is asleep ('S' in /proc/<pid>/stat). */
static bool asleep(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool s = false;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');
		s = p && p[1] == ' ' && p[2] == 'S';
	}
	fclose(f);
	return s;
}

static void wait_asleep(pid_t pid)
{
	while (!asleep(pid))
		usleep(1000);
}

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
		wait_asleep(w[i]);
	}
	ASSERT_OK(mp_semaphore_release(g_sem));
	pid_t victim = wait_stopped();
	kill_reap(victim);
	ASSERT_EQ(wait_cont(victim == w[0] ? w[1] : w[0]), 0);
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
		wait_asleep(w[i]);
	}
	kill_reap(w[0]);
	kill_reap(w[2]);
	ASSERT_OK(mp_semaphore_release(g_sem));
	ASSERT_EQ(test_wait(w[1]), 0);
	ASSERT_EQ(mp_semaphore_get_value(g_sem), 0);
	pid_t last = test_fork(sem_take, NULL);
	wait_asleep(last);
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
		wait_asleep(pids[i]);
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
	kill_reap(victim);
	ASSERT_EQ(wait_cont(victim == w[0] ? w[1] : w[0]), 0);
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
	wait_asleep(w);
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
	wait_asleep(w);
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

TEST_MAIN(T_TIMEOUT(sem_woken_waiter_killed, 10),
	  T(sem_destroy_after_waiters_killed),
	  T_TIMEOUT(cond_woken_waiter_killed, 10),
	  T(cond_destroy_after_waiter_killed),
	  T(event_destroy_after_waiter_killed),
	  T(barrier_destroy_after_lone_waiter_killed),
	  T(barrier_destroy_after_holder_killed))
