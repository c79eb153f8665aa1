/* SPDX-License-Identifier: MIT */
#ifndef MP_TEST_H
#define MP_TEST_H

/*
 * A small test runner.  Each case runs in its own forked child, in its own
 * process group, under an alarm() watchdog: a hang or a crash fails that
 * case alone, and whatever processes it left behind are killed and reaped.
 * Output is TAP plus a closing "N passed, N failed" line.
 *
 *   TEST(name) { ASSERT_EQ(...); }
 *   TEST_MAIN(T(name), T_TIMEOUT(slow_name, 60))
 *
 * `prog CASE` runs one case; `prog --helper ARGS...` calls the file's
 * test_helper() (for cases that exec the test binary as another program).
 * MP_TEST_TIMEOUT_MULT scales every watchdog (sanitizers, valgrind).
 */

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

struct test {
	const char *name;
	void (*fn)(void);
	unsigned timeout_s;
};

#define TEST(name) static void test_##name(void)
#define T(name) {#name, test_##name, 30}
#define T_TIMEOUT(name, secs) {#name, test_##name, (secs)}
#define TEST_SKIP_CODE 7

#define FAIL(...)                                                          \
	do {                                                               \
		fprintf(stderr, "# %s:%d: ", __FILE__, __LINE__);          \
		fprintf(stderr, __VA_ARGS__);                              \
		fprintf(stderr, "\n");                                     \
		exit(1);                                                   \
	} while (0)

#define SKIP(why)                                                          \
	do {                                                               \
		fprintf(stderr, "# skip: %s\n", (why));                    \
		exit(TEST_SKIP_CODE);                                      \
	} while (0)

#define ASSERT(cond)                                                       \
	do {                                                               \
		if (!(cond))                                               \
			FAIL("assertion failed: %s", #cond);               \
	} while (0)

#define ASSERT_EQ(a, b)                                                    \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ != b_)                                              \
			FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);    \
	} while (0)

#define ASSERT_CMP(a, op, b)                                               \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (!(a_ op b_))                                           \
			FAIL("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_); \
	} while (0)

/* An mp_* call's result: 0, or a named error. */
#define ASSERT_ERR(expr, want)                                             \
	do {                                                               \
		long long r_ = (long long)(expr), w_ = (long long)(want);  \
		if (r_ != w_)                                              \
			FAIL("%s: got %lld (%s), want %lld (%s)", #expr,   \
			     r_, mp_err_name((int)r_), w_,                 \
			     mp_err_name((int)w_));                        \
	} while (0)
#define ASSERT_OK(expr) ASSERT_ERR(expr, 0)

#define ASSERT_NOT_NULL(p)                                                 \
	do {                                                               \
		if ((p) == NULL)                                           \
			FAIL("%s is NULL (errno %d: %s)", #p, errno,       \
			     strerror(errno));                             \
	} while (0)

int test_helper(int argc, char **argv) __attribute__((weak));

static inline double test_timeout_mult(void)
{
	const char *m = getenv("MP_TEST_TIMEOUT_MULT");
	double v = m ? atof(m) : 1.0;
	return v > 0 ? v : 1.0;
}

/* Run a case in a child; return 0 pass, 1 fail, 2 skip. */
static inline int test_run_one(const struct test *t)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		alarm((unsigned)(t->timeout_s * test_timeout_mult() + 0.5));
		t->fn();
		fflush(NULL);
		exit(0);
	}
	setpgid(pid, pid);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* Kill what the case left running, then reap what came to us. */
	kill(-pid, SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP_CODE)
		return 2;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		fprintf(stderr, "# %s: watchdog: no result after %u s\n",
			t->name, t->timeout_s);
	else if (WIFSIGNALED(status))
		fprintf(stderr, "# %s: killed by signal %d\n", t->name,
			WTERMSIG(status));
	return 1;
}

static inline int test_main(int argc, char **argv, const struct test *tests,
			    size_t n)
{
	if (argc > 1 && strcmp(argv[1], "--helper") == 0)
		return test_helper ? test_helper(argc - 2, argv + 2) : 2;
	/* Orphans of a case come back to us to be reaped. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	int passed = 0, failed = 0, skipped = 0, num = 0;
	printf("TAP version 13\n");
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
			continue;
		num++;
		int r = test_run_one(&tests[i]);
		if (r == 0) {
			passed++;
			printf("ok %d %s\n", num, tests[i].name);
		} else if (r == 2) {
			skipped++;
			printf("ok %d %s # SKIP\n", num, tests[i].name);
		} else {
			failed++;
			printf("not ok %d %s\n", num, tests[i].name);
		}
		fflush(stdout);
	}
	printf("1..%d\n", num);
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	if (num == 0) {
		fprintf(stderr, "no such test case\n");
		return 1;
	}
	if (failed)
		return 1;
	return passed == 0 && skipped > 0 ? TEST_SKIP_CODE : 0;
}

#define TEST_MAIN(...)                                                     \
	int main(int argc, char **argv)                                    \
	{                                                                  \
		static const struct test tests_[] = {__VA_ARGS__};         \
		return test_main(argc, argv, tests_,                       \
				 sizeof(tests_) / sizeof(tests_[0]));      \
	}

/* Helpers most test files want. */

/* Seconds on CLOCK_MONOTONIC, for checking how long a wait took. */
static inline double test_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fork a child running fn(arg) and exiting with its result. */
static inline pid_t test_fork(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

/* Wait for pid; return its exit code or -signal. */
static inline int test_wait(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1000;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Open file descriptors of this process. */
static inline int test_count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* Whether process pid is asleep ('S' in /proc/<pid>/stat). */
static inline bool test_asleep(pid_t pid)
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

/* Poll until pid sleeps (in a futex wait, say): what a test waits for
 * before it acts on a sleeper.  The case's watchdog bounds it. */
static inline void test_wait_asleep(pid_t pid)
{
	while (!test_asleep(pid))
		usleep(1000);
}

/* Pin the caller to the CPU it is on, saving its affinity in *old for
 * sched_setaffinity to restore: for tests that fake where a peer runs,
 * which a migration would undo. */
static inline void test_pin_here(cpu_set_t *old)
{
	cpu_set_t one;

	ASSERT_EQ(sched_getaffinity(0, sizeof(*old), old), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
}

/* Children of this process that are zombies. */
static inline int test_count_zombies(void)
{
	char path[300], line[512];
	int n = 0;
	pid_t me = getpid();
	DIR *d = opendir("/proc");

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *s = fopen(path, "r");
		if (!s)
			continue;
		if (fgets(line, sizeof(line), s)) {
			char *p = strrchr(line, ')');
			char state;
			int ppid;
			if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 &&
			    ppid == me && state == 'Z')
				n++;
		}
		fclose(s);
	}
	closedir(d);
	return n;
}

#endif
