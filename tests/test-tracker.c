/* SPDX-License-Identifier: MIT */
/* The resource tracker: a segment whose creator dies without unlinking it
 * disappears from /dev/shm soon after (whatever start method made the
 * creator); an attacher's exit or death leaves it; a creator may opt out. */
#include <poll.h>

#include "test.h"

static char *seg_name(const char *tag)
{
	static char buf[8][64];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 64, "/mp-trk-%d-%s", (int)getpid(), tag);
	return b;
}

static bool exists(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	return access(path, F_OK) == 0;
}

/* Poll until the name is gone (the watchdog bounds it too). */
static bool gone_within(const char *name, double secs)
{
	double end = test_now() + secs * test_timeout_mult();
	while (exists(name)) {
		if (test_now() > end)
			return false;
		usleep(1000);
	}
	return true;
}

struct job {
	char name[64];
	int fd;      /* write end: "made" */
	bool keep;   /* opt out */
	bool attach; /* attach instead of create */
};

static int creator(void *arg)
{
	struct job *j = arg;
	mp_shm *s = j->attach ? mp_shm_attach(j->name)
			      : mp_shm_create(j->name, 4096);
	if (!s)
		return 1;
	if (j->keep && mp_shm_set_tracked(s, false))
		return 2;
	if (write(j->fd, "m", 1) != 1)
		return 3;
	for (;;)
		pause();
}

static mp_process *run(int method, const char *name, bool keep, bool attach,
		       int fds[2])
{
	struct job j = {.fd = fds[1], .keep = keep, .attach = attach};
	snprintf(j.name, sizeof(j.name), "%s", name);
	mp_process *p = mp_process_new_args(creator, &j, sizeof(j));
	ASSERT_NOT_NULL(p);
	ASSERT_OK(mp_process_set_start_method(p, method));
	ASSERT_OK(mp_process_start(p));
	char c;
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	return p;
}

static void kill_and_join(mp_process *p)
{
	ASSERT_OK(mp_process_kill(p));
	ASSERT_OK(mp_process_join(p, 30));
	ASSERT_EQ(mp_process_exitcode(p), -SIGKILL);
	mp_process_free(p);
}

/* A creator of another segment killed: once its segment is gone, the
 * tracker has read every message and seen every death before it. */
static void tracker_caught_up(int fds[2])
{
	const char *probe = seg_name("probe");
	mp_process *c = run(MP_START_FORK, probe, false, false, fds);
	kill_and_join(c);
	ASSERT(gone_within(probe, 10));
}

static void killed_creator(int method)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	const char *name = seg_name("a");
	mp_process *p = run(method, name, false, false, fds);
	ASSERT(exists(name));
	kill_and_join(p);
	ASSERT(gone_within(name, 10));
}

TEST(killed_creator_fork) { killed_creator(MP_START_FORK); }
TEST(killed_creator_forkserver) { killed_creator(MP_START_FORKSERVER); }
TEST(killed_creator_spawn) { killed_creator(MP_START_SPAWN); }

TEST(attacher_exit_leaves_it)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	const char *name = seg_name("b");
	mp_shm *s = mp_shm_create(name, 4096);
	ASSERT_NOT_NULL(s);
	/* An attacher killed, then a creator of another segment killed:
	 * once that one is gone the tracker has seen both deaths. */
	mp_process *a = run(MP_START_FORK, name, false, true, fds);
	kill_and_join(a);
	tracker_caught_up(fds);
	ASSERT(exists(name));
	ASSERT_ERR(mp_shm_set_tracked(NULL, false), -EINVAL);
	mp_shm *att = mp_shm_attach(name);
	ASSERT_NOT_NULL(att);
	ASSERT_ERR(mp_shm_set_tracked(att, false), MP_ESTATE);
	ASSERT_OK(mp_shm_detach(att));
	ASSERT_OK(mp_shm_unlink(name));
	ASSERT_OK(mp_shm_detach(s));
}

TEST(creator_may_opt_out)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	/* The parent's tracker, shared by the fork children below. */
	mp_shm *mine = mp_shm_create(NULL, 4096);
	ASSERT_NOT_NULL(mine);
	const char *kept = seg_name("kept");
	mp_process *k = run(MP_START_FORK, kept, true, false, fds);
	kill_and_join(k);
	tracker_caught_up(fds);
	ASSERT(exists(kept));
	ASSERT_OK(mp_shm_unlink(kept));
	ASSERT(exists(mp_shm_name(mine))); /* its creator lives */
	ASSERT_OK(mp_shm_unlink(mp_shm_name(mine)));
	ASSERT_OK(mp_shm_detach(mine));
}

pid_t mp__tracker_pid(void); /* src/tracker.h */

/* The creator is killed and reaped while the tracker is stopped, so the
 * tracker reads "created" from a process already gone (no pidfd to be
 * had): what the creator said after it (keep) still counts, and without it
 * the segment is unlinked all the same. */
static void reaped_before_read(bool keep)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_shm *mine = mp_shm_create(NULL, 4096);
	ASSERT_NOT_NULL(mine);
	pid_t trk = mp__tracker_pid();
	ASSERT(trk > 0);
	const char *name = seg_name(keep ? "late-kept" : "late");
	ASSERT_OK(kill(trk, SIGSTOP));
	mp_process *k = run(MP_START_FORK, name, keep, false, fds);
	kill_and_join(k);
	ASSERT_OK(kill(trk, SIGCONT));
	tracker_caught_up(fds);
	if (keep) {
		ASSERT(exists(name));
		ASSERT_OK(mp_shm_unlink(name));
	} else {
		ASSERT(gone_within(name, 10));
	}
	ASSERT_OK(mp_shm_unlink(mp_shm_name(mine)));
	ASSERT_OK(mp_shm_detach(mine));
	close(fds[0]);
	close(fds[1]);
}

TEST(keep_counts_when_the_creator_was_reaped_first)
{
	reaped_before_read(true);
}

TEST(unkept_goes_when_the_creator_was_reaped_first)
{
	reaped_before_read(false);
}

static int create_and_exit(void *arg)
{
	mp_shm *s = mp_shm_create((const char *)arg, 4096);
	return s ? 0 : 1; /* exits without unlinking or detaching */
}

TEST(creator_that_exits_is_cleaned)
{
	const char *name = seg_name("exit");
	pid_t pid = test_fork(create_and_exit, (void *)name);
	ASSERT_EQ(test_wait(pid), 0);
	ASSERT(gone_within(name, 10));
}

TEST_MAIN(T(killed_creator_fork), T(killed_creator_forkserver),
	  T(killed_creator_spawn), T(attacher_exit_leaves_it),
	  T(creator_may_opt_out),
	  T(keep_counts_when_the_creator_was_reaped_first),
	  T(unkept_goes_when_the_creator_was_reaped_first),
	  T(creator_that_exits_is_cleaned))
