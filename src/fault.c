/* SPDX-License-Identifier: MIT */
/*
 * Fault-injection points (see fault.h).  Compiled to nothing unless
 * MP_FAULT_POINTS is defined.  One stop-or-kill point and one fail point
 * are armed at a time (a test may need both: stop where a wait starts,
 * and make a condition inside it fail); mp__fault_armed says whether any
 * is, which keeps the hit path to one relaxed load when off.
 */
#ifdef MP_FAULT_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

/* Bits of mp__fault_armed: which slot is armed. */
#define STOP_ARMED 1
#define FAIL_ARMED 2

_Atomic int mp__fault_armed;
static char armed_name[64];
static enum mp__fault_action armed_action;
static _Atomic unsigned armed_left; /* hits still to skip, then act */
static char fail_name[64];
static _Atomic unsigned fail_left; /* MP__FAULT_FAIL hits still to fail */
static bool fail_always;           /* MP__FAULT_FAIL with nth 0 */

/* Arm a point in its slot (replacing that slot's point); OFF disarms
 * both. */
void mp__fault_arm(const char *name, enum mp__fault_action action,
		   unsigned nth)
{
	if (!name || action == MP__FAULT_OFF) {
		atomic_store_explicit(&mp__fault_armed, 0,
				      memory_order_relaxed);
		return;
	}
	if (action == MP__FAULT_FAIL) {
		atomic_fetch_and_explicit(&mp__fault_armed, ~FAIL_ARMED,
					  memory_order_relaxed);
		strncpy(fail_name, name, sizeof(fail_name) - 1);
		fail_always = nth == 0;
		atomic_store_explicit(&fail_left, nth, memory_order_relaxed);
		atomic_fetch_or_explicit(&mp__fault_armed, FAIL_ARMED,
					 memory_order_release);
		return;
	}
	atomic_fetch_and_explicit(&mp__fault_armed, ~STOP_ARMED,
				  memory_order_relaxed);
	strncpy(armed_name, name, sizeof(armed_name) - 1);
	armed_action = action;
	atomic_store_explicit(&armed_left, nth > 0 ? nth - 1 : 0,
			      memory_order_relaxed);
	atomic_fetch_or_explicit(&mp__fault_armed, STOP_ARMED,
				 memory_order_release);
}

/* MP_FAULT="name[@nth]=stop|kill|fail", read at start after exec. */
__attribute__((constructor)) static void fault_from_env(void)
{
	const char *spec = getenv("MP_FAULT");
	char name[64];
	if (!spec)
		return;
	const char *eq = strchr(spec, '=');
	if (!eq || (size_t)(eq - spec) >= sizeof(name))
		return;
	memcpy(name, spec, (size_t)(eq - spec));
	name[eq - spec] = '\0';
	unsigned nth = 1;
	char *at = strchr(name, '@');
	if (at) {
		*at = '\0';
		nth = (unsigned)strtoul(at + 1, NULL, 10);
	}
	const char *what = eq + 1;
	enum mp__fault_action a = strcmp(what, "kill") == 0   ? MP__FAULT_KILL
				  : strcmp(what, "stop") == 0 ? MP__FAULT_STOP
				  : strcmp(what, "fail") == 0 ? MP__FAULT_FAIL
							      : MP__FAULT_OFF;
	mp__fault_arm(name, a, nth);
}

void mp__fault_hit(const char *name)
{
	if (!(atomic_load_explicit(&mp__fault_armed, memory_order_acquire) &
	      STOP_ARMED) ||
	    strcmp(name, armed_name) != 0)
		return;
	unsigned left = atomic_load_explicit(&armed_left, memory_order_relaxed);
	while (left > 0)
		if (atomic_compare_exchange_weak_explicit(
			    &armed_left, &left, left - 1, memory_order_relaxed,
			    memory_order_relaxed))
			return;
	/* This hit acts; later hits go by. */
	if (!(atomic_fetch_and_explicit(&mp__fault_armed, ~STOP_ARMED,
					memory_order_acq_rel) &
	      STOP_ARMED))
		return;
	raise(armed_action == MP__FAULT_KILL ? SIGKILL : SIGSTOP);
}

bool mp__fault_fails(const char *name)
{
	if (!(atomic_load_explicit(&mp__fault_armed, memory_order_acquire) &
	      FAIL_ARMED) ||
	    strcmp(name, fail_name) != 0)
		return false;
	if (fail_always)
		return true;
	unsigned left = atomic_load_explicit(&fail_left, memory_order_relaxed);
	while (left > 0)
		if (atomic_compare_exchange_weak_explicit(
			    &fail_left, &left, left - 1, memory_order_relaxed,
			    memory_order_relaxed)) {
			if (left == 1) /* the last failure: disarm */
				atomic_fetch_and_explicit(&mp__fault_armed,
							  ~FAIL_ARMED,
							  memory_order_relaxed);
			return true;
		}
	return false;
}
#else
typedef int mp__fault_unused; /* ISO C wants a translation unit to declare something */
#endif
