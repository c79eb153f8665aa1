/* SPDX-License-Identifier: MIT */
/*
 * Fault-injection points (see fault.h).  Compiled to nothing unless
 * MP_FAULT_POINTS is defined.  One point is armed at a time: that is all a
 * test needs, and it keeps the hit path to one relaxed load when off.
 */
#ifdef MP_FAULT_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "internal.h"

_Atomic int mp__fault_armed;
static char armed_name[64];
static enum mp__fault_action armed_action;
static _Atomic unsigned armed_left; /* hits still to skip, then act; for
				       MP__FAULT_FAIL hits still to fail */
static bool fail_always;            /* MP__FAULT_FAIL with nth 0 */

void mp__fault_arm(const char *name, enum mp__fault_action action,
		   unsigned nth)
{
	atomic_store_explicit(&mp__fault_armed, 0, memory_order_relaxed);
	if (!name || action == MP__FAULT_OFF)
		return;
	strncpy(armed_name, name, sizeof(armed_name) - 1);
	armed_action = action;
	fail_always = action == MP__FAULT_FAIL && nth == 0;
	if (action == MP__FAULT_FAIL)
		atomic_store_explicit(&armed_left, nth, memory_order_relaxed);
	else
		atomic_store_explicit(&armed_left, nth > 0 ? nth - 1 : 0,
				      memory_order_relaxed);
	atomic_store_explicit(&mp__fault_armed, 1, memory_order_release);
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
	if (!atomic_load_explicit(&mp__fault_armed, memory_order_acquire) ||
	    armed_action == MP__FAULT_FAIL || strcmp(name, armed_name) != 0)
		return;
	unsigned left = atomic_load_explicit(&armed_left, memory_order_relaxed);
	while (left > 0)
		if (atomic_compare_exchange_weak_explicit(
			    &armed_left, &left, left - 1, memory_order_relaxed,
			    memory_order_relaxed))
			return;
	/* This hit acts; later hits go by. */
	int was = 1;
	if (!atomic_compare_exchange_strong_explicit(
		    &mp__fault_armed, &was, 0, memory_order_acq_rel,
		    memory_order_relaxed))
		return;
	raise(armed_action == MP__FAULT_KILL ? SIGKILL : SIGSTOP);
}

bool mp__fault_fails(const char *name)
{
	if (!atomic_load_explicit(&mp__fault_armed, memory_order_acquire) ||
	    armed_action != MP__FAULT_FAIL || strcmp(name, armed_name) != 0)
		return false;
	if (fail_always)
		return true;
	unsigned left = atomic_load_explicit(&armed_left, memory_order_relaxed);
	while (left > 0)
		if (atomic_compare_exchange_weak_explicit(
			    &armed_left, &left, left - 1, memory_order_relaxed,
			    memory_order_relaxed)) {
			if (left == 1) /* the last failure: disarm */
				atomic_store_explicit(&mp__fault_armed, 0,
						      memory_order_relaxed);
			return true;
		}
	return false;
}
#else
typedef int mp__fault_unused; /* ISO C wants a translation unit to declare something */
#endif
