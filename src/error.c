/* SPDX-License-Identifier: MIT */
/* Error names and messages, the CPU count and the version. */
#include <sched.h>
#include <string.h>

#include "internal.h"

static const struct {
	int code;
	const char *name;
	const char *text;
} own[] = {
	{MP_ECLOSED, "MP_ECLOSED", "closed"},
	{MP_EBROKEN, "MP_EBROKEN", "barrier is broken"},
	{MP_EWORKER, "MP_EWORKER", "worker process died during the task"},
	{MP_ESTATE, "MP_ESTATE", "not in a state for this call"},
};

const char *mp_strerror(int err)
{
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (own[i].code == err)
			return own[i].text;
	if (err == 0)
		return "success";
	const char *s = strerrordesc_np(err < 0 ? -err : err);
	return s ? s : "unknown error";
}

const char *mp_err_name(int err)
{
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (own[i].code == err)
			return own[i].name;
	const char *s = err ? strerrorname_np(err < 0 ? -err : err) : "OK";
	return s ? s : "UNKNOWN";
}

int mp_cpu_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	return 1;
}

unsigned mp_version(void)
{
	return MP_VERSION_HEX;
}
