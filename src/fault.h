/* SPDX-License-Identifier: MIT */
#ifndef MP_FAULT_H
#define MP_FAULT_H

/*
 * Fault-injection points for the windows that signals alone hit rarely
 * (between a snapshot and the action taken on it, between two stores that
 * must both land).  A point is a name:
 *
 *	MP__FAULT("queue.recover.snapshot");
 *
 * In a normal build it is nothing.  In the test build (MP_FAULT_POINTS,
 * the static library multiproc_fault that only tests link) a point armed
 * with mp__fault_arm() stops the process (SIGSTOP: the test sees it with
 * waitpid(WUNTRACED), acts, then SIGCONTs it) or kills it (SIGKILL) on its
 * nth hit.  Arming is per process and is inherited across fork(), so a
 * test arms a point in the child it is about to run.  The environment
 * variable MP_FAULT="name[@nth]=stop|kill|fail" arms one in a program the
 * test execs.
 *
 * A point on an error path that the system rarely takes on demand (fork
 * failing with EAGAIN: root is exempt from RLIMIT_NPROC) is a condition
 * instead:
 *
 *	pid_t pid = MP__FAULT_FAILS("process.fork") ? (errno = EAGAIN, -1)
 *						   : fork();
 *
 * It is false in a normal build; armed with MP__FAULT_FAIL it is true on
 * the point's next nth hits (nth = 0: on every hit until disarmed), so the
 * code takes its error path as if the call had failed.
 */

enum mp__fault_action {
	MP__FAULT_OFF,
	MP__FAULT_STOP, /* raise(SIGSTOP), then go on when continued */
	MP__FAULT_KILL, /* raise(SIGKILL) */
	MP__FAULT_FAIL, /* MP__FAULT_FAILS() is true, nth times (0: always) */
};

#include <stdbool.h>

#ifdef MP_FAULT_POINTS
#include <stdatomic.h>
extern _Atomic int mp__fault_armed;
void mp__fault_hit(const char *name);
bool mp__fault_fails(const char *name);
void mp__fault_arm(const char *name, enum mp__fault_action action,
		   unsigned nth);
#define MP__FAULT(name)                                                    \
	do {                                                               \
		if (__builtin_expect(atomic_load_explicit(                 \
					     &mp__fault_armed,             \
					     memory_order_relaxed),        \
				     0))                                   \
			mp__fault_hit(name);                               \
	} while (0)
#define MP__FAULT_FAILS(name)                                              \
	(__builtin_expect(atomic_load_explicit(&mp__fault_armed,           \
					       memory_order_relaxed),      \
			  0) &&                                            \
	 mp__fault_fails(name))
#else
#define MP__FAULT(name) ((void)0)
#define MP__FAULT_FAILS(name) false
#endif

#endif
