/*
 * Who is this thread, and is that other task still alive?
 *
 * Locks store their owner as a tid (for a single-threaded process, its pid)
 * and the owner's start time.  A waiter that suspects the owner died reads
 * /proc/<tid>/stat: gone, or a zombie, is dead; a different start time means
 * the tid was recycled, so the owner is dead too.  /proc is read only on
 * slow paths (a waiter that has slept for a while).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

MP__TLS pid_t mp__self_tid;
MP__TLS uint64_t mp__self_start_time;
MP__TLS uint32_t mp__self_lock_id;

#define TAG_BITS 0x1ffu

_Noreturn void mp__fatal(const char *file, int line, const char *what)
{
	fprintf(stderr, "multiproc: fatal: %s (%s:%d)\n", what, file, line);
	abort();
}

static void atfork_child(void)
{
	/* Only the forking thread lives on in the child. */
	mp__self_tid = 0;
	mp__self_start_time = 0;
	mp__self_lock_id = 0;
	mp__process_atfork_child();
}

__attribute__((constructor)) static void self_init(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

pid_t mp__tid_slow(void)
{
	mp__self_tid = gettid();
	return mp__self_tid;
}

/* Read state and start time from /proc/<tid>/stat.  Return: 0, or -1 when
 * the task is gone or /proc cannot tell. */
static int read_stat(pid_t tid, char *state, uint64_t *start)
{
	char path[64];
	char buf[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
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

uint64_t mp__self_start_slow(void)
{
	mp__self_start_time = mp__task_start(mp__tid());
	return mp__self_start_time;
}

uint32_t mp__lock_id_slow(void)
{
	uint32_t tag = (uint32_t)(mp__self_start() & TAG_BITS);
	mp__self_lock_id = (uint32_t)mp__tid() | tag << 22;
	return mp__self_lock_id;
}

bool mp__task_alive_tag(pid_t tid, uint32_t tag)
{
	char state;
	uint64_t start;

	if (tid <= 0)
		return false;
	if (read_stat(tid, &state, &start) != 0)
		return kill(tid, 0) == 0 || errno == EPERM;
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	return (start & TAG_BITS) == tag;
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
	return start == 0 || start == now_start;
}
