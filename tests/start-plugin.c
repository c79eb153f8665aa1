/* SPDX-License-Identifier: MIT */
/* A library test-start dlopen()s: a spawn child (a fresh exec of the test)
 * does not have it loaded, so a target in it cannot be found there. */
__attribute__((visibility("default"))) int mp_test_plugin_target(void *arg);

__attribute__((visibility("default"))) int mp_test_plugin_target(void *arg)
{
	(void)arg;
	return 77;
}

/* A pool task (mp_map_fn) in the library. */
__attribute__((visibility("default"))) int mp_test_plugin_map(const void *in,
							       void *out);

__attribute__((visibility("default"))) int mp_test_plugin_map(const void *in,
							       void *out)
{
	(void)in;
	*(long *)out = 2;
	return 0;
}
