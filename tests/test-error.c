/* SPDX-License-Identifier: MIT */
/* Error codes and messages, version, CPU count. */
#include <sched.h>

#include "test.h"

TEST(error_own_codes_are_distinct_and_named)
{
	const int codes[] = {MP_ECLOSED, MP_EBROKEN, MP_EWORKER, MP_ESTATE};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		ASSERT_CMP(codes[i], <, -4096);
		ASSERT(strncmp(mp_err_name(codes[i]), "MP_E", 4) == 0);
		ASSERT(strcmp(mp_strerror(codes[i]), "unknown error") != 0);
		for (size_t j = 0; j < i; j++)
			ASSERT(codes[i] != codes[j]);
	}
}

TEST(error_errno_codes_either_sign)
{
	ASSERT(strcmp(mp_err_name(-ETIMEDOUT), "ETIMEDOUT") == 0);
	ASSERT(strcmp(mp_err_name(EOWNERDEAD), "EOWNERDEAD") == 0);
	ASSERT(strcmp(mp_strerror(-EINVAL), strerror(EINVAL)) == 0);
	ASSERT(strcmp(mp_strerror(0), "success") == 0);
	ASSERT(strcmp(mp_strerror(-99999), "unknown error") == 0);
	ASSERT(strcmp(mp_err_name(-99999), "UNKNOWN") == 0);
}

TEST(version_matches_header)
{
	ASSERT_EQ(mp_version(), MP_VERSION_HEX);
}

TEST(cpu_count_follows_affinity)
{
	cpu_set_t set;
	ASSERT_OK(sched_getaffinity(0, sizeof(set), &set));
	ASSERT_EQ(mp_cpu_count(), CPU_COUNT(&set));
	int first = 0;
	while (!CPU_ISSET(first, &set))
		first++;
	CPU_ZERO(&set);
	CPU_SET(first, &set);
	ASSERT_OK(sched_setaffinity(0, sizeof(set), &set));
	ASSERT_EQ(mp_cpu_count(), 1);
}

TEST_MAIN(T(error_own_codes_are_distinct_and_named),
	  T(error_errno_codes_either_sign), T(version_matches_header),
	  T(cpu_count_follows_affinity))
