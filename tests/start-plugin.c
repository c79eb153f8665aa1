/* SPDX-License-Identifier: MIT */
/* A library test-start dlopen()s: a spawn child (a fresh exec of the test)
 * does not have it loaded, so a target in it cannot be found there. */
__attribute__((visibility("default"))) int mp_test_plugin_target(void *arg);

__attribute__((visibility("default"))) int mp_test_plugin_target(void *arg)
{
	(void)arg;
	return 77;
}
