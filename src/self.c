/* SPDX-License-Identifier: MIT */
/*
 * Who is this thread, and is that other task still alive?
 *
 * An owner (of a lock, a queue side, a barrier round) is named by its tid
 * and its start time, as an owner id (internal.h): 22 bits of tid and 39
 * bits of start time in clock ticks, one 64-bit word that lock.c and
 * queue.c store whole in their lock words.  A task that was given a dead
 * owner's tid started later, so the pair cannot be forged by recycling
 * pids, however many forks one makes: the new task would have to start in
 * the very tick (10 ms) the owner started in, so the owner would have to
 * live less than a tick and its tid come round the whole pid space in
 * that time (39 bits of ticks wrap after 174 years of uptime).  Only a
 * privileged process that picks pids (clone3 set_tid, ns_last_pid) could
 * do that.  And as the pair is one atomic value, a waiter's snapshot of it
 * names one task, whatever the word holds by the time the waiter acts on
 * it: a task found dead stays dead.
 *
 * A waiter that suspects the owner died reads /proc/<tid>/stat: gone, a
 * zombie, or another start time is dead.  /proc is read only on slow paths
 * (a waiter that has slept for a while, a thread's first lock).
 *
 * A thread reads its own start time from /proc too, once, at its first
 * use of an id.  That open must not fail for want of a descriptor (a
 * process that ran out of them would take locks under an id that calls it
 * dead): one descriptor is kept in reserve, its slot lent to that open
 * when open() says EMFILE or ENFILE.  If the start time still cannot be
 * read, the id says MP__START_UNKNOWN, which the checkers take as alive
 * while the tid lives, and it is not cached: the next call tries again.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

MP__TLS pid_t mp__self_tid;
MP__TLS uint64_t mp__self_lock_id;

/* The reserve slot (an O_PATH descriptor of "/"), what it is, and the
 * lock that orders its lending. */
static int spare_fd = -1;
static dev_t spare_dev;
static ino_t spare_ino;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

_Noreturn void mp__fatal(const char *file, int line, const char *what)
{
	fprintf(stderr, "multiproc: fatal: %s (%s:%d)\n", what, file, line);
	abort();
}

/* Called with spare_lock held (or before any thread). */
static void take_spare(void)
{
	struct stat st;

	spare_fd = open("/", O_PATH | O_CLOEXEC);
	if (spare_fd >= 0 && fstat(spare_fd, &st) == 0) {
		spare_dev = st.st_dev;
		spare_ino = st.st_ino;
	} else if (spare_fd >= 0) {
		close(spare_fd);
		spare_fd = -1;
	}
}

/* Whether spare_fd is still ours: a program may have closed all its
 * descriptors (and reused the number) or dup2()ed onto it.  Never close
 * a descriptor that is not ours. */
static bool spare_is_ours(void)
{
	struct stat st;
	int flags = fcntl(spare_fd, F_GETFL);

	return flags >= 0 && (flags & O_PATH) && fstat(spare_fd, &st) == 0 &&
	       st.st_dev == spare_dev && st.st_ino == spare_ino;
}

/* The child must not inherit the spare lock held by a thread that is not
 * there: hold it across fork(). */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&spare_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&spare_lock);
}

static void atfork_child(void)
{
	pthread_mutex_unlock(&spare_lock);
	/* Only the forking thread lives on in the child. */
	mp__self_tid = 0;
	mp__self_lock_id = 0;
	mp__process_atfork_child();
}

__attribute__((constructor)) static void self_init(void)
{
	take_spare();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

pid_t mp__tid_slow(void)
{
	mp__self_tid = gettid();
	return mp__self_tid;
}

static ssize_t read_path(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size);
	close(fd);
	return n;
}

/* Read a small file whole.  Out of descriptors, lend the spare's slot:
 * the lowest free one, so ours unless another thread opens something in
 * between (then we fail, as we would have). */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	ssize_t n = read_path(path, buf, size);
	if (n >= 0 || (errno != EMFILE && errno != ENFILE))
		return n;
	pthread_mutex_lock(&spare_lock);
	if (spare_fd >= 0 && spare_is_ours()) {
		close(spare_fd);
		n = read_path(path, buf, size);
		take_spare();
	} else {
		spare_fd = -1;
	}
	pthread_mutex_unlock(&spare_lock);
	return n;
}

/* Read state and start time from /proc/<tid>/stat.  Return: 0, or -1 when
 * the task is gone or /proc cannot tell. */
static int read_stat(pid_t tid, char *state, uint64_t *start)
{
	char path[64];
	char buf[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	ssize_t n = read_small(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'.  Then come field 3 (state) ... field 22 (starttime). */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

uint64_t mp__task_start(pid_t tid)
{
	char state;
	uint64_t start;

	return read_stat(tid, &state, &start) == 0 ? start : 0;
}

uint64_t mp__lock_id_slow(void)
{
	pid_t tid = mp__tid();
	uint64_t start = mp__task_start(tid);

	if (start == 0 || start >= MP__START_UNKNOWN)
		return mp__id_make(tid, MP__START_UNKNOWN);
	mp__self_lock_id = mp__id_make(tid, start);
	/* Without a spare, the next thread out of descriptors is unknown:
	 * try to get it back while we can (once a thread). */
	pthread_mutex_lock(&spare_lock);
	if (spare_fd < 0 || !spare_is_ours())
		take_spare();
	pthread_mutex_unlock(&spare_lock);
	return mp__self_lock_id;
}

bool mp__task_alive(pid_t tid, uint64_t start)
{
	char state;
	uint64_t now_start;

	if (tid <= 0)
		return false;
	if (read_stat(tid, &state, &now_start) != 0) {
		/* Without /proc, fall back to kill(): it cannot see zombies
		 * or recycled pids, but never calls a live task dead. */
		return kill(tid, 0) == 0 || errno == EPERM;
	}
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	start &= MP__START_UNKNOWN;
	return start == 0 || start == MP__START_UNKNOWN ||
	       start == (now_start & MP__START_UNKNOWN);
}
