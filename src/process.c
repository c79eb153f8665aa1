/* SPDX-License-Identifier: MIT */
/*
 * Processes: fork, a pidfd for waiting, waitid for the status.
 *
 * Each started, unreaped child sits in a process-local registry (a list
 * under a mutex), so active_children can report it and so a handle freed
 * while its child runs does not leave a zombie: the freed handle stays in
 * the registry, marked orphaned, and is reaped and released by the next
 * start or active_children once the child has ended.
 *
 * The pid is safe to signal and wait for until we reap it: an unreaped
 * child's pid is never recycled.  After the reap only the stored exit code
 * is used.  For the same reason the pidfd can be opened lazily, only when a
 * timed join or the sentinel needs one: most joins wait forever, and those
 * block in waitid(WNOWAIT) with no pidfd and without the registry mutex.
 * A timed join that cannot open one (no descriptor left) still works: it
 * polls waitid(WNOHANG) in short naps instead.  Opening the pidfd at start
 * would not help there and would cost every child a descriptor.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fault.h"
#include "internal.h"
#include "start.h"
#include "tracker.h"

struct mp_process {
	int (*target)(void *arg);
	void *arg;
	bool has_copy; /* arg is our malloc()ed copy of arglen bytes */
	size_t arglen;
	int method;    /* MP_START_*, 0: the default at start */
	int keep_fd;   /* for the child at the same number, or -1 */
	char *name;
	bool daemon;
	bool started;
	bool reaped;
	bool orphaned; /* freed by its owner while the child ran */
	char *ident; /* "1:2": the child's own prefix for its children */
	pid_t pid;
	int pidfd;
	int exitcode;
	struct mp_process *prev, *next; /* registry, while unreaped */
};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct mp_process *registry;
static unsigned children_made;      /* for default names */
static const char *identity = "";   /* "" in the main process, "1:2" deeper */
static const char *self_name = "MainProcess";

static void registry_add(struct mp_process *p)
{
	p->prev = NULL;
	p->next = registry;
	if (registry)
		registry->prev = p;
	registry = p;
}

static void registry_remove(struct mp_process *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		registry = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

void mp__process_atfork_child(void)
{
	/* The parent's children are not ours: drop their pidfds here. */
	for (struct mp_process *p = registry; p; p = p->next)
		if (p->pidfd >= 0)
			close(p->pidfd);
	registry = NULL;
	pthread_mutex_init(&registry_mutex, NULL);
	mp__forkserver_atfork_child();
	mp__tracker_atfork_child();
	mp__cow_atfork_child();
	mp__xlate_reset();
}

mp_process *mp_process_new(int (*target)(void *arg), void *arg)
{
	if (!target) {
		errno = EINVAL;
		return NULL;
	}
	mp_process *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pthread_mutex_lock(&registry_mutex);
	unsigned n = ++children_made;
	pthread_mutex_unlock(&registry_mutex);
	if (asprintf(&p->ident, "%s%s%u", identity, identity[0] ? ":" : "",
		     n) < 0) {
		free(p);
		return NULL;
	}
	if (asprintf(&p->name, "Process-%s", p->ident) < 0) {
		free(p->ident);
		free(p);
		return NULL;
	}
	p->target = target;
	p->arg = arg;
	p->pidfd = -1;
	p->keep_fd = -1;
	p->exitcode = MP_EXITCODE_NONE;
	return p;
}

mp_process *mp_process_new_args(int (*target)(void *arg), const void *arg,
				size_t len)
{
	if (!target || (len && !arg)) {
		errno = EINVAL;
		return NULL;
	}
	void *copy = malloc(len ? len : 1);
	if (!copy)
		return NULL;
	if (len)
		memcpy(copy, arg, len);
	mp_process *p = mp_process_new(target, copy);
	if (!p) {
		int e = errno;
		free(copy);
		errno = e;
		return NULL;
	}
	p->has_copy = true;
	p->arglen = len;
	return p;
}

int mp_process_set_start_method(mp_process *p, int method)
{
	if (!p || method < MP_START_DEFAULT || method > MP_START_SPAWN)
		return -EINVAL;
	if (p->started)
		return MP_ESTATE;
	p->method = method;
	return 0;
}

int mp__process_keep_fd(mp_process *p, int fd)
{
	if (!p || fd < 0)
		return -EINVAL;
	p->keep_fd = fd;
	return 0;
}

int mp_process_start_method(const mp_process *p)
{
	if (!p)
		return -EINVAL;
	return p->method ? p->method : mp_get_start_method();
}

int mp_process_set_name(mp_process *p, const char *name)
{
	if (!p || !name)
		return -EINVAL;
	if (p->started)
		return MP_ESTATE;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(p->name);
	p->name = copy;
	return 0;
}

const char *mp_process_name(const mp_process *p)
{
	return p ? p->name : NULL;
}

int mp_process_set_daemon(mp_process *p, bool daemon)
{
	if (!p)
		return -EINVAL;
	if (p->started)
		return MP_ESTATE;
	p->daemon = daemon;
	return 0;
}

bool mp_process_daemon(const mp_process *p)
{
	return p && p->daemon;
}

/* Record how the child ended.  `info` from waitid, or NULL when someone
 * else reaped it (ECHILD): then its status is lost. */
static void set_reaped(struct mp_process *p, const siginfo_t *info)
{
	if (info) {
		if (info->si_code == CLD_EXITED)
			p->exitcode = info->si_status;
		else
			p->exitcode = -info->si_status;
	}
	p->reaped = true;
	registry_remove(p);
}

/* Reap p if it has ended.  Return: true when it has. Registry locked. */
static bool try_reap(struct mp_process *p)
{
	siginfo_t info;

	if (p->reaped)
		return true;
	memset(&info, 0, sizeof(info));
	int r;
	do
		r = waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		set_reaped(p, NULL);
		return true;
	}
	if (info.si_pid == 0)
		return false;
	set_reaped(p, &info);
	return true;
}

static void release(struct mp_process *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p->name);
	free(p->ident);
	if (p->has_copy)
		free(p->arg);
	free(p);
}

/* Reap and release children whose handles were freed.  Registry locked. */
static void reap_orphans(void)
{
	struct mp_process *next;

	for (struct mp_process *p = registry; p; p = next) {
		next = p->next;
		if (p->orphaned && try_reap(p))
			release(p);
	}
}

/*
 * Flush stdout and stderr if they hold output, as Python does around its
 * children.  Not fflush(NULL): it locks every FILE, and every page it
 * writes while a child runs is copied (copy-on-write), a fault each.  Other
 * streams are the caller's to flush; a child leaves with _exit, so it never
 * writes out a copy of its parent's buffers.
 */
static void flush_std(void)
{
	if (__fpending(stdout))
		fflush(stdout);
	if (__fpending(stderr))
		fflush(stderr);
}

_Noreturn void mp__child_run(const struct mp__child *c)
{
	if (c->daemon) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The parent may have died before prctl took effect. */
		if (getppid() != c->parent)
			_exit(1);
	}
	identity = c->ident;
	self_name = c->name;
	children_made = 0;
	int rc = c->target(c->arg);
	flush_std();
	_exit(rc & 0xff);
}

static _Noreturn void run_child(struct mp_process *p, pid_t parent)
{
	struct mp__child c = {.target = p->target, .arg = p->arg,
			      .name = p->name, .ident = p->ident,
			      .daemon = p->daemon, .parent = parent};
	mp__child_run(&c);
}

/* Start p by spawn or forkserver: the launcher makes the child (ours in
 * both cases) and hands back its pid and pidfd.  The registry is not held
 * meanwhile: a spawn takes a millisecond and more. */
static int start_other(struct mp_process *p, int method)
{
	struct mp__launch l = {.target = p->target, .arg = p->arg,
			       .argbuf = p->arg, .arglen = p->arglen,
			       .has_copy = p->has_copy, .name = p->name,
			       .ident = p->ident, .daemon = p->daemon,
			       .keep_fd = p->keep_fd};
	pid_t pid = 0;
	int fd = -1;
	flush_std();
	int r = method == MP_START_SPAWN ? mp__spawn_launch(&l, &pid, &fd)
					 : mp__forkserver_launch(&l, &pid, &fd);
	if (r)
		return r;
	pthread_mutex_lock(&registry_mutex);
	reap_orphans();
	p->started = true;
	p->pid = pid;
	p->pidfd = fd;
	registry_add(p);
	pthread_mutex_unlock(&registry_mutex);
	return 0;
}

int mp_process_start(mp_process *p)
{
	if (!p)
		return -EINVAL;
	if (p->started)
		return MP_ESTATE;
	int r = mp__arena_ensure();
	if (r)
		return r;
	int method = p->method ? p->method : mp_get_start_method();
	if (method != MP_START_FORK)
		return start_other(p, method);
	pid_t parent = getpid();
	flush_std();
	pthread_mutex_lock(&registry_mutex);
	reap_orphans();
	/* Write what we can before the fork: a page we write while the
	 * child runs is copied (copy-on-write), at a few microseconds each. */
	p->started = true;
	registry_add(p);
	pid_t pid = MP__FAULT_FAILS("process.fork") ? (errno = EAGAIN, -1)
						   : fork();
	if (pid < 0) {
		r = -errno;
		p->started = false;
		registry_remove(p);
		pthread_mutex_unlock(&registry_mutex);
		return r;
	}
	if (pid == 0)
		run_child(p, parent);
	p->pid = pid;
	pthread_mutex_unlock(&registry_mutex);
	return 0;
}

/* Wait until p has ended with no descriptor (pidfd_open failed: EMFILE,
 * ENFILE, ENOMEM): look with waitid(WNOHANG | WNOWAIT) between naps that
 * double from 50 us to 10 ms, so a long join wakes at most 100 times a
 * second and a short one is not late by much.  Return: 0, -ETIMEDOUT. */
static int poll_for_end(struct mp_process *p, mp__deadline deadline)
{
	int64_t nap = 50 * 1000;

	for (;;) {
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		int r = waitid(P_PID, (id_t)p->pid, &info,
			       WEXITED | WNOHANG | WNOWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || info.si_pid != 0)
			return 0; /* ended (ECHILD: try_reap sorts it out) */
		int64_t left = mp__remaining_ns(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		struct timespec ts = {0, (long)(nap < left ? nap : left)};
		nanosleep(&ts, NULL);
		if (nap < 10 * 1000 * 1000)
			nap *= 2;
	}
}

int mp_process_join(mp_process *p, double timeout_s)
{
	if (!p || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (!p->started)
		return MP_ESTATE;
	if (p->reaped)
		return 0;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	if (deadline == MP__NEVER) {
		siginfo_t info;
		while (waitid(P_PID, (id_t)p->pid, &info,
			      WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
	} else {
		int fd = mp_process_sentinel(p);
		int r;
		if (fd < 0) {
			if ((r = poll_for_end(p, deadline)))
				return r;
		} else {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			while ((r = poll(&pfd, 1,
					 mp__remaining_ms(deadline))) < 0 &&
			       errno == EINTR)
				;
			if (r == 0)
				return -ETIMEDOUT;
		}
	}
	pthread_mutex_lock(&registry_mutex);
	try_reap(p);
	pthread_mutex_unlock(&registry_mutex);
	return 0;
}

bool mp_process_is_alive(mp_process *p)
{
	if (!p || !p->started || p->reaped)
		return false;
	pthread_mutex_lock(&registry_mutex);
	bool ended = try_reap(p);
	pthread_mutex_unlock(&registry_mutex);
	return !ended;
}

int mp_process_exitcode(const mp_process *p)
{
	return p ? p->exitcode : MP_EXITCODE_NONE;
}

pid_t mp_process_pid(const mp_process *p)
{
	return p && p->started ? p->pid : 0;
}

int mp_process_sentinel(mp_process *p)
{
	if (!p || !p->started)
		return -1;
	if (p->pidfd < 0) {
		/* Safe after the reap too: then the pid may name another
		 * process, so hand out a descriptor that is readable at
		 * once instead. */
		if (p->reaped)
			p->pidfd = eventfd(1, EFD_CLOEXEC);
		else
			p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	}
	return p->pidfd;
}

static int send_signal(mp_process *p, int sig)
{
	if (!p)
		return -EINVAL;
	if (!p->started)
		return MP_ESTATE;
	if (p->reaped)
		return 0;
	return kill(p->pid, sig) ? -errno : 0;
}

int mp_process_terminate(mp_process *p)
{
	return send_signal(p, SIGTERM);
}

int mp_process_kill(mp_process *p)
{
	return send_signal(p, SIGKILL);
}

void mp_process_free(mp_process *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&registry_mutex);
	bool running = p->started && !try_reap(p);
	if (running)
		p->orphaned = true;
	pthread_mutex_unlock(&registry_mutex);
	if (!running)
		release(p);
}

int mp_active_children(mp_process **out, int cap)
{
	if (!out && cap > 0)
		return -EINVAL;
	int n = 0;
	int filled = 0;
	pthread_mutex_lock(&registry_mutex);
	reap_orphans();
	struct mp_process *next;
	for (struct mp_process *p = registry; p; p = next) {
		next = p->next;
		if (try_reap(p))
			continue;
		n++;
		if (!p->orphaned && filled < cap)
			out[filled++] = p;
	}
	pthread_mutex_unlock(&registry_mutex);
	return n;
}

const char *mp_current_process_name(void)
{
	return self_name;
}

pid_t mp_parent_pid(void)
{
	return getppid();
}
