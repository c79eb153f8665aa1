/* SPDX-License-Identifier: MIT */
/* Processes: start, join, exit codes, signals, names, daemons. */
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "test.h"

static int return_arg(void *arg)
{
	return (int)(intptr_t)arg;
}

/* Block until the pipe's write end closes (every writer gone). */
static int wait_pipe(void *arg)
{
	int *fds = arg;
	char c;
	close(fds[1]);
	while (read(fds[0], &c, 1) > 0)
		;
	return 3;
}

static void wait_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return; /* already gone */
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ASSERT_EQ(poll(&pfd, 1, -1), 1);
	close(fd);
}

TEST(process_bad_input)
{
	errno = 0;
	ASSERT(mp_process_new(NULL, NULL) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_process_start(NULL), -EINVAL);
	ASSERT_ERR(mp_process_join(NULL, 1), -EINVAL);
	ASSERT_ERR(mp_process_terminate(NULL), -EINVAL);
	ASSERT_ERR(mp_process_kill(NULL), -EINVAL);
	ASSERT_ERR(mp_process_set_daemon(NULL, true), -EINVAL);
	ASSERT_ERR(mp_process_set_name(NULL, "x"), -EINVAL);
	ASSERT(!mp_process_is_alive(NULL));
	ASSERT_EQ(mp_process_exitcode(NULL), MP_EXITCODE_NONE);
	ASSERT_ERR(mp_active_children(NULL, 3), -EINVAL);
	mp_process_free(NULL);

	mp_process *p = mp_process_new(return_arg, (void *)7);
	ASSERT_NOT_NULL(p);
	ASSERT_ERR(mp_process_set_name(p, NULL), -EINVAL);
	ASSERT_ERR(mp_process_join(p, 0), MP_ESTATE); /* join before start */
	ASSERT_ERR(mp_process_terminate(p), MP_ESTATE);
	ASSERT_EQ(mp_process_exitcode(p), MP_EXITCODE_NONE);
	ASSERT_EQ(mp_process_pid(p), 0);
	ASSERT_EQ(mp_process_sentinel(p), -1);
	ASSERT(!mp_process_is_alive(p));
	ASSERT_OK(mp_process_start(p));
	ASSERT_ERR(mp_process_start(p), MP_ESTATE);
	ASSERT_ERR(mp_process_set_daemon(p, true), MP_ESTATE);
	ASSERT_ERR(mp_process_set_name(p, "late"), MP_ESTATE);
	ASSERT_OK(mp_process_join(p, MP_FOREVER));
	ASSERT_OK(mp_process_join(p, MP_FOREVER)); /* twice is fine */
	ASSERT_EQ(mp_process_exitcode(p), 7);
	ASSERT_OK(mp_process_kill(p)); /* already ended: a no-op */
	mp_process_free(p);
}

TEST(process_exit_codes_0_to_255)
{
	for (int code = 0; code < 256; code++) {
		mp_process *p = mp_process_new(return_arg, (void *)(intptr_t)code);
		ASSERT_OK(mp_process_start(p));
		ASSERT_OK(mp_process_join(p, MP_FOREVER));
		ASSERT_EQ(mp_process_exitcode(p), code);
		ASSERT(!mp_process_is_alive(p));
		mp_process_free(p);
	}
	/* Masked to 8 bits, as exit() does. */
	mp_process *p = mp_process_new(return_arg, (void *)(intptr_t)(256 + 9));
	ASSERT_OK(mp_process_start(p));
	ASSERT_OK(mp_process_join(p, MP_FOREVER));
	ASSERT_EQ(mp_process_exitcode(p), 9);
	mp_process_free(p);
}

static int segfault(void *arg)
{
	(void)arg;
	/* A sanitizer's own SIGSEGV handler would turn this into exit(1). */
	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	return 0;
}

TEST(process_killed_by_signals)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *k = mp_process_new(wait_pipe, fds);
	mp_process *t = mp_process_new(wait_pipe, fds);
	mp_process *s = mp_process_new(segfault, NULL);
	ASSERT_OK(mp_process_start(k));
	ASSERT_OK(mp_process_start(t));
	ASSERT_OK(mp_process_start(s));
	ASSERT(mp_process_is_alive(k));
	ASSERT_OK(mp_process_kill(k));
	ASSERT_OK(mp_process_terminate(t));
	ASSERT_OK(mp_process_join(k, MP_FOREVER));
	ASSERT_OK(mp_process_join(t, MP_FOREVER));
	ASSERT_OK(mp_process_join(s, MP_FOREVER));
	ASSERT_EQ(mp_process_exitcode(k), -SIGKILL);
	ASSERT_EQ(mp_process_exitcode(t), -SIGTERM);
	ASSERT_EQ(mp_process_exitcode(s), -SIGSEGV);
	mp_process_free(k);
	mp_process_free(t);
	mp_process_free(s);
	close(fds[0]);
	close(fds[1]);
}

TEST(process_join_times_out)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p = mp_process_new(wait_pipe, fds);
	ASSERT_OK(mp_process_start(p));
	ASSERT_ERR(mp_process_join(p, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_process_join(p, 0.2), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.2);
	ASSERT(waited < 5.0);
	ASSERT(mp_process_is_alive(p));
	ASSERT_EQ(mp_process_exitcode(p), MP_EXITCODE_NONE);
	close(fds[1]); /* the child sees EOF and returns 3 */
	ASSERT_OK(mp_process_join(p, 30));
	ASSERT_EQ(mp_process_exitcode(p), 3);
	close(fds[0]);
	mp_process_free(p);
}

TEST(process_1000_cycles_no_zombie_no_fd_leak)
{
	/* The arena keeps its memfd (for spawn children) from its start. */
	ASSERT(mp_shared_capacity() > 0);
	int fds_before = test_count_fds();
	for (int i = 0; i < 1000; i++) {
		mp_process *p = mp_process_new(return_arg, (void *)1);
		ASSERT_OK(mp_process_start(p));
		ASSERT_OK(mp_process_join(p, MP_FOREVER));
		ASSERT_EQ(mp_process_exitcode(p), 1);
		mp_process_free(p);
	}
	ASSERT_EQ(test_count_fds(), fds_before);
	ASSERT_EQ(test_count_zombies(), 0);
	ASSERT_EQ(mp_active_children(NULL, 0), 0);
}

TEST(process_free_while_running_is_reaped)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p = mp_process_new(wait_pipe, fds);
	ASSERT_OK(mp_process_start(p));
	pid_t pid = mp_process_pid(p);
	mp_process_free(p); /* the child goes on */
	ASSERT_EQ(mp_active_children(NULL, 0), 1);
	mp_process *out[4];
	ASSERT_EQ(mp_active_children(out, 4), 1); /* counted, not handed out */
	close(fds[1]);
	wait_pidfd(pid);
	ASSERT_EQ(mp_active_children(NULL, 0), 0);
	ASSERT_EQ(test_count_zombies(), 0);
	close(fds[0]);
}

TEST(process_active_children)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p[3];
	for (int i = 0; i < 3; i++) {
		p[i] = mp_process_new(wait_pipe, fds);
		ASSERT_OK(mp_process_start(p[i]));
	}
	mp_process *out[8];
	ASSERT_EQ(mp_active_children(out, 8), 3);
	ASSERT_OK(mp_process_kill(p[1]));
	wait_pidfd(mp_process_pid(p[1]));
	ASSERT_EQ(mp_active_children(out, 8), 2); /* reaps p[1] */
	ASSERT(out[0] != p[1] && out[1] != p[1]);
	ASSERT_EQ(mp_process_exitcode(p[1]), -SIGKILL);
	close(fds[1]);
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(mp_process_join(p[i], 30));
		mp_process_free(p[i]);
	}
	ASSERT_EQ(mp_active_children(out, 8), 0);
	close(fds[0]);
}

static int write_own_name(void *arg)
{
	int fd = *(int *)arg;
	const char *n = mp_current_process_name();
	return write(fd, n, strlen(n) + 1) > 0 ? 0 : 1;
}

static int start_grandchild(void *arg)
{
	mp_process *g = mp_process_new(write_own_name, arg);
	if (mp_process_start(g) || mp_process_join(g, 30))
		return 1;
	return mp_process_exitcode(g);
}

TEST(process_names)
{
	int fds[2];
	char buf[256];
	ASSERT_OK(pipe(fds));
	ASSERT(strcmp(mp_current_process_name(), "MainProcess") == 0);
	mp_process *a = mp_process_new(write_own_name, &fds[1]);
	mp_process *b = mp_process_new(start_grandchild, &fds[1]);
	ASSERT(strcmp(mp_process_name(a), "Process-1") == 0);
	ASSERT(strcmp(mp_process_name(b), "Process-2") == 0);
	ASSERT_OK(mp_process_start(a));
	ASSERT_OK(mp_process_join(a, 30));
	ASSERT(read(fds[0], buf, sizeof(buf)) > 0);
	ASSERT(strcmp(buf, "Process-1") == 0);
	ASSERT_OK(mp_process_start(b));
	ASSERT_OK(mp_process_join(b, 30));
	ASSERT_EQ(mp_process_exitcode(b), 0);
	ASSERT(read(fds[0], buf, sizeof(buf)) > 0);
	ASSERT(strcmp(buf, "Process-2:1") == 0);
	mp_process *c = mp_process_new(write_own_name, &fds[1]);
	ASSERT_OK(mp_process_set_name(c, "downloader"));
	ASSERT_OK(mp_process_start(c));
	ASSERT_OK(mp_process_join(c, 30));
	ASSERT(read(fds[0], buf, sizeof(buf)) > 0);
	ASSERT(strcmp(buf, "downloader") == 0);
	mp_process_free(a);
	mp_process_free(b);
	mp_process_free(c);
	ASSERT_EQ(mp_parent_pid(), getppid());
}

static _Noreturn int sleep_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
}

/* A parent that starts one child (daemon or not), reports its pid, and
 * waits to be killed. */
static int parent_of(void *arg)
{
	int *fds = arg; /* [0] unused, [1] write end, [2] daemon flag */
	mp_process *c = mp_process_new(sleep_forever, NULL);
	mp_process_set_daemon(c, fds[2] != 0);
	if (mp_process_start(c))
		return 1;
	pid_t pid = mp_process_pid(c);
	if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid))
		return 1;
	pause();
	return 0;
}

static pid_t child_of_killed_parent(bool daemon)
{
	int fds[3];
	ASSERT_OK(pipe(fds));
	fds[2] = daemon;
	pid_t parent = test_fork(parent_of, fds);
	pid_t child;
	ASSERT_EQ(read(fds[0], &child, sizeof(child)), sizeof(child));
	kill(parent, SIGKILL);
	ASSERT_EQ(test_wait(parent), -SIGKILL);
	close(fds[0]);
	close(fds[1]);
	return child;
}

TEST(process_daemon_dies_with_parent)
{
	pid_t child = child_of_killed_parent(true);
	wait_pidfd(child); /* the watchdog fails us if it never dies */
}

TEST(process_non_daemon_outlives_parent)
{
	pid_t child = child_of_killed_parent(false);
	ASSERT_OK(kill(child, 0));
	int fd = (int)syscall(SYS_pidfd_open, child, 0);
	ASSERT(fd >= 0);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ASSERT_EQ(poll(&pfd, 1, 0), 0); /* still running */
	kill(child, SIGKILL);
	ASSERT_EQ(poll(&pfd, 1, -1), 1);
	close(fd);
}

static int print_child(void *arg)
{
	(void)arg;
	printf("child;");
	return 0;
}

TEST(process_stdio_flushed_once)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	fflush(stdout);
	ASSERT(dup2(fds[1], STDOUT_FILENO) >= 0);
	setvbuf(stdout, NULL, _IOFBF, 4096);
	printf("before;");
	mp_process *p = mp_process_new(print_child, NULL);
	ASSERT_OK(mp_process_start(p));
	ASSERT_OK(mp_process_join(p, 30));
	printf("after;");
	fflush(stdout);
	close(STDOUT_FILENO);
	close(fds[1]);
	char buf[256] = {0};
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	if (strcmp(buf, "before;child;after;") != 0)
		FAIL("output was '%s'", buf);
	mp_process_free(p);
}

TEST(process_sentinel_polls_on_exit)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p = mp_process_new(wait_pipe, fds);
	ASSERT_OK(mp_process_start(p));
	struct pollfd pfd = {.fd = mp_process_sentinel(p), .events = POLLIN};
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	close(fds[1]);
	ASSERT_EQ(poll(&pfd, 1, -1), 1);
	ASSERT_OK(mp_process_join(p, 0));
	ASSERT_EQ(mp_process_exitcode(p), 3);
	mp_process_free(p);
	close(fds[0]);
}

static struct rlimit saved_nofile;
static int filler[4096], nfiller;

/* Lower RLIMIT_NOFILE to the open descriptors and fill the holes below,
 * so that the next descriptor anyone asks for fails with EMFILE. */
static void exhaust_fds(void)
{
	int hi = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			hi = fd + 1;
	ASSERT_OK(getrlimit(RLIMIT_NOFILE, &saved_nofile));
	struct rlimit rl = saved_nofile;
	rl.rlim_cur = (rlim_t)hi;
	ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
	int fd;
	while ((fd = dup(0)) >= 0)
		filler[nfiller++] = fd;
	ASSERT_EQ(errno, EMFILE);
}

/* Undo exhaust_fds (LeakSanitizer needs descriptors at exit). */
static void release_fds(void)
{
	while (nfiller > 0)
		close(filler[--nfiller]);
	ASSERT_OK(setrlimit(RLIMIT_NOFILE, &saved_nofile));
}

/* A timed join needs no descriptor: with none left (no pidfd can be
 * opened) it still times out and still sees the end.  It used to return
 * -EMFILE. */
TEST(process_timed_join_without_descriptors)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p = mp_process_new(wait_pipe, fds);
	ASSERT_OK(mp_process_start(p));
	exhaust_fds();
	errno = 0;
	ASSERT_EQ(mp_process_sentinel(p), -1);
	ASSERT_EQ(errno, EMFILE);
	ASSERT_ERR(mp_process_join(p, 0), -ETIMEDOUT);
	double t0 = test_now();
	ASSERT_ERR(mp_process_join(p, 0.1), -ETIMEDOUT);
	double waited = test_now() - t0;
	ASSERT(waited >= 0.1);
	ASSERT(waited < 5.0);
	ASSERT(mp_process_is_alive(p));
	/* End it by a signal: closing our pipe end would free a slot. */
	ASSERT_OK(mp_process_terminate(p));
	ASSERT_OK(mp_process_join(p, 30));
	ASSERT_EQ(mp_process_exitcode(p), -SIGTERM);
	ASSERT(dup(0) < 0 && errno == EMFILE); /* still none left */
	release_fds();
	mp_process_free(p);
}

TEST_MAIN(T(process_bad_input), T_TIMEOUT(process_exit_codes_0_to_255, 60),
	  T(process_killed_by_signals), T(process_join_times_out),
	  T_TIMEOUT(process_1000_cycles_no_zombie_no_fd_leak, 120),
	  T(process_free_while_running_is_reaped), T(process_active_children),
	  T(process_names), T(process_daemon_dies_with_parent),
	  T(process_non_daemon_outlives_parent), T(process_stdio_flushed_once),
	  T(process_sentinel_polls_on_exit),
	  T(process_timed_join_without_descriptors))
