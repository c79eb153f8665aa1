/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_PROCESS_H
#define MULTIPROC_PROCESS_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Processes, as Python's multiprocessing.Process with the fork start
 * method: the child is a copy of the parent that runs target(arg) and exits
 * with its return value (masked to 0..255, as exit() does).
 *
 * An mp_process is a process-local handle owned by the process that made
 * it.  Only that process may start, join, signal or free it.  Calls on one
 * handle must not race each other; different handles are independent.
 *
 * The library installs no SIGCHLD handler and waits only for the children
 * it started, so a program's own waitpid(-1, ...) would steal their status:
 * use waitpid on specific pids if you mix the two.  Needs Linux 5.3 or later
 * (pidfd).
 */
typedef struct mp_process mp_process;

/* Exit code of a process that has not finished (or not started). */
#define MP_EXITCODE_NONE (-1000)

/* A handle for a process that will run target(arg).  Nothing starts yet.
 * Return: NULL with errno EINVAL (target NULL) or ENOMEM. */
MP_EXTERN mp_process *mp_process_new(int (*target)(void *arg), void *arg);

/* Before start: the name shown by mp_process_name() and, in the child,
 * mp_current_process_name().  The default is Python's: "Process-N", where N
 * counts the processes this process made ("Process-1:2" in a child).
 * Return: 0, -EINVAL (NULL), -ENOMEM, MP_ESTATE once started. */
MP_EXTERN int mp_process_set_name(mp_process *p, const char *name);
MP_EXTERN const char *mp_process_name(const mp_process *p);

/* Before start: a daemon child is killed (SIGKILL) when the thread that
 * started it ends: when the parent exits, crashes or is killed.  A
 * non-daemon child outlives its parent.
 * Return: 0, -EINVAL (NULL), MP_ESTATE once started. */
MP_EXTERN int mp_process_set_daemon(mp_process *p, bool daemon);
MP_EXTERN bool mp_process_daemon(const mp_process *p);

/* Fork and run the target in the child.  stdout and stderr are flushed
 * first so nothing is printed twice; the child flushes them again when the
 * target returns and leaves with _exit(), so the parent's atexit handlers
 * do not run twice and copies of other streams' buffers are never written
 * (as in Python: flush or close other FILEs in the target yourself).
 * Return: 0, -EINVAL (NULL), MP_ESTATE (already started), or -errno of
 * fork (-EAGAIN, -ENOMEM) or of making the shared arena (mmap). */
MP_EXTERN int mp_process_start(mp_process *p);

/* Wait for the process to end, then reap it.  Joining again is harmless.
 * Return: 0, -ETIMEDOUT, -EINVAL (NULL; timeout_s NaN or above
 * MP_TIMEOUT_MAX), MP_ESTATE (never started).
 * Safety: blocks in waitid(2) (MP_FOREVER) or in poll(2) on the child's
 * pidfd; no busy waiting.  With no descriptor left for the pidfd (EMFILE)
 * a timed join polls waitid(WNOHANG) between sleeps of 50 us to 10 ms. */
MP_EXTERN int mp_process_join(mp_process *p, double timeout_s);

/* True between start and the end of the process (reaps it if it ended). */
MP_EXTERN bool mp_process_is_alive(mp_process *p);

/* 0..255 as the target returned it, -SIGNUM when a signal ended it, or
 * MP_EXITCODE_NONE while it runs or before start.  Only a join or an
 * is_alive that saw the end updates it. */
MP_EXTERN int mp_process_exitcode(const mp_process *p);

/* The child's pid once started, else 0. */
MP_EXTERN pid_t mp_process_pid(const mp_process *p);

/* A file descriptor that polls readable once the process has ended (its
 * pidfd, Python's sentinel), opened on first use; -1 before start (or with
 * errno set if it could not be opened).  Owned by the handle: do not close
 * it.  Wait on several processes at once with poll(2) on their sentinels. */
MP_EXTERN int mp_process_sentinel(mp_process *p);

/* Send SIGTERM / SIGKILL.  Return: 0, also when the process already ended;
 * -EINVAL (NULL); MP_ESTATE (never started). */
MP_EXTERN int mp_process_terminate(mp_process *p);
MP_EXTERN int mp_process_kill(mp_process *p);

/* Free the handle.  A child that still runs is not killed and not lost: it
 * goes on, and the library reaps it once it ends (at the next
 * mp_process_start or mp_active_children in this process), so no zombie
 * stays.  NULL is ignored. */
MP_EXTERN void mp_process_free(mp_process *p);

/* The children this process started that still run, reaping those that
 * ended (as Python's active_children()).  Fills up to `cap` handles (not
 * counting children whose handle was freed) and returns how many run in all.
 * Return: count >= 0, -EINVAL (out NULL with cap > 0). */
MP_EXTERN int mp_active_children(mp_process **out, int cap);

/* This process's name: "MainProcess" in a program's first process, the
 * mp_process name in a child the library started. */
MP_EXTERN const char *mp_current_process_name(void);

/* The pid of the process that started this one (getppid()). */
MP_EXTERN pid_t mp_parent_pid(void);

MP_END_DECLS

#endif
