/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_PROCESS_H
#define MULTIPROC_PROCESS_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Processes, as Python's multiprocessing.Process: the child runs
 * target(arg) and exits with its return value (masked to 0..255, as exit()
 * does).  How the child comes to be is its start method (below); by
 * default it is a fork, a copy of the parent.
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

/*
 * Start methods (Python's set_start_method / get_context):
 *
 * MP_START_FORK: the child is a fork() of the parent at mp_process_start,
 *   a copy of everything, the state of other threads' locks included: a
 *   lock another thread held at that moment stays held forever in the
 *   child (a logger's mutex, malloc's in some libcs), so a threaded parent
 *   risks a child that hangs.  The initial default.
 * MP_START_FORKSERVER: the child is forked by a server process that
 *   mp_set_start_method(MP_START_FORKSERVER) (or the first forkserver
 *   start) forks from the program, so it is a copy of the program as it
 *   was then, not now: make that call early, while the program has one
 *   thread.  The server clones the child with CLONE_PARENT, so it is a
 *   child of the program (join, exit codes, signals, pidfd, daemon as for
 *   fork).  The server dies with the thread that started it; one that died
 *   is replaced at the next start (forked from the program as it is then).
 *   No pthread_atfork handler runs in its children.
 * MP_START_SPAWN: the child is a fresh exec of the program
 *   (/proc/self/exe) that runs the target from the library's constructor
 *   (after the constructors of the libraries loaded before it; main() never
 *   runs) and exits.  Nothing of the parent's memory is there but the
 *   shared arena.  The environment is the parent's at start; signal
 *   dispositions are reset by exec, except ignored ones, as with posix_spawn.
 *
 * Under every method the shared arena (mp_X_new objects, mp_shared_alloc)
 * is shared with the child at the same address, and the target may be any
 * function of the program or of a library loaded in the child too; under
 * forkserver and spawn it is found in the child's image by build-id and
 * offset, and a function the child's image lacks (a library the parent
 * dlopen()ed) makes the start fail with -ENOENT.  The environment variable
 * MP_START_METHOD=fork|forkserver|spawn sets the initial default.
 */
#define MP_START_DEFAULT 0    /* in mp_pool_opts and per process: the
				 process-wide default at start */
#define MP_START_FORK 1       /* a copy of the parent (initial default) */
#define MP_START_FORKSERVER 2 /* forked by a server process started while
				 the program was small and had one thread */
#define MP_START_SPAWN 3      /* a fresh image of the program (exec) */

/* The default for processes (and pools) made from now on; processes already
 * made keep theirs.  Allowed at any time: children that exist are not
 * affected.  MP_START_FORKSERVER starts the server now (if none runs) and
 * MP_START_SPAWN makes the shared arena now.
 * Return: 0, -EINVAL (not FORK, FORKSERVER or SPAWN), or the error of
 * starting the server (fork, socketpair) or making the arena. */
MP_EXTERN int mp_set_start_method(int method);
MP_EXTERN int mp_get_start_method(void);

/* A handle for a process that will run target(arg).  Nothing starts yet.
 * What the pointer arg means in the child depends on the start method: under
 * fork it is the parent's pointer in a copy of the parent's memory (the
 * child sees what it pointed to at start; writes stay in the child); under
 * forkserver and spawn only its value travels, so it must be NULL, an
 * integer cast to a pointer, or point into the shared arena (the same
 * address in every process); a pointer to the parent's stack, heap or
 * globals points at garbage there.  Use mp_process_new_args to send data.
 * Return: NULL with errno EINVAL (target NULL) or ENOMEM. */
MP_EXTERN mp_process *mp_process_new(int (*target)(void *arg), void *arg);

/* A handle for a process whose target gets its own copy of the `len` bytes
 * at arg (copied now: arg may be freed after this call), whatever the start
 * method.  The copy is 16-byte aligned and the child may write it.  len 0
 * passes a pointer to no bytes.
 * Return: NULL with errno EINVAL (target NULL, arg NULL with len > 0) or
 * ENOMEM. */
MP_EXTERN mp_process *mp_process_new_args(int (*target)(void *arg),
					  const void *arg, size_t len);

/* Before start: how this process will be started (MP_START_*;
 * MP_START_DEFAULT: the process-wide default at start, the initial value).
 * Return: 0, -EINVAL (NULL or unknown method), MP_ESTATE once started. */
MP_EXTERN int mp_process_set_start_method(mp_process *p, int method);

/* The method p is (or will be, if the default does not change) started
 * with; -EINVAL for NULL. */
MP_EXTERN int mp_process_start_method(const mp_process *p);

/* Before start: the name shown by mp_process_name() and, in the child,
 * mp_current_process_name().  The default is Python's: "Process-N", where N
 * counts the processes this process made ("Process-1:2" in a child).
 * Return: 0, -EINVAL (NULL), -ENOMEM, MP_ESTATE once started. */
MP_EXTERN int mp_process_set_name(mp_process *p, const char *name);
MP_EXTERN const char *mp_process_name(const mp_process *p);

/* Before start: a daemon child is killed (SIGKILL) when the thread that
 * started it ends: when the parent exits, crashes or is killed.  Under
 * forkserver, the thread that started the server.  A
 * non-daemon child outlives its parent.
 * Return: 0, -EINVAL (NULL), MP_ESTATE once started. */
MP_EXTERN int mp_process_set_daemon(mp_process *p, bool daemon);
MP_EXTERN bool mp_process_daemon(const mp_process *p);

/* Start the child by its start method and run the target in it.  stdout
 * and stderr are flushed first so nothing is printed twice; the child
 * flushes them again when the target returns and leaves with _exit(), so
 * the parent's atexit handlers do not run twice and copies of other
 * streams' buffers are never written (as in Python: flush or close other
 * FILEs in the target yourself).  Under spawn and forkserver the call
 * returns once the child has found its target.
 * Return: 0, -EINVAL (NULL), MP_ESTATE (already started), or -errno of
 * fork (-EAGAIN, -ENOMEM) or of making the shared arena (mmap); under
 * forkserver and spawn also -ENOENT (the target is in no object the child
 * has loaded, or in none with a build-id: -ENOTSUP), -EEXIST (spawn: the
 * arena's address was taken in the new image, four times), -ECHILD (spawn:
 * the child died before it ran the target, e.g. no /proc/self/exe),
 * -ETIMEDOUT (forkserver: the server did not answer in 30 s; it is killed
 * and the next start makes another). */
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
