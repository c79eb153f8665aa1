/* SPDX-License-Identifier: MIT */
/* Value and Array: shared typed memory with a lock, and the raw kind. */
#include "test.h"

/* Children start together, so that they really contend. */
static mp_event *go;

TEST(value_bad_input)
{
	errno = 0;
	ASSERT(mp_value_new(0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	errno = 0;
	ASSERT(mp_array_new(0, 4) == NULL);
	ASSERT_EQ(errno, EINVAL);
	errno = 0;
	ASSERT(mp_array_new(16, SIZE_MAX / 8) == NULL);
	ASSERT_EQ(errno, ENOMEM);
	errno = 0;
	ASSERT(mp_raw_array_new(16, SIZE_MAX / 8) == NULL);
	ASSERT_EQ(errno, ENOMEM);
	ASSERT(mp_raw_array_new(0, 1) == NULL);
	ASSERT(mp_raw_value_new(0) == NULL);
	ASSERT(mp_value_ptr(NULL) == NULL);
	ASSERT(mp_value_get_lock(NULL) == NULL);
	ASSERT_EQ(mp_value_size(NULL), 0);
	ASSERT(mp_array_ptr(NULL) == NULL);
	ASSERT(mp_array_get_lock(NULL) == NULL);
	ASSERT_EQ(mp_array_len(NULL), 0);
	ASSERT_EQ(mp_array_elem_size(NULL), 0);
	mp_value_free(NULL);
	mp_array_free(NULL);
}

TEST(value_shape)
{
	mp_value *v = mp_value_new(sizeof(int));
	ASSERT_NOT_NULL(v);
	int *n = mp_value_ptr(v);
	ASSERT_EQ(*n, 0);
	ASSERT_EQ((uintptr_t)n % 64, 0);
	ASSERT_EQ(mp_value_size(v), sizeof(int));
	ASSERT_OK(mp_lock_acquire(mp_value_get_lock(v), 0));
	ASSERT_OK(mp_lock_release(mp_value_get_lock(v)));
	mp_value_free(v);

	mp_array *a = mp_array_new(sizeof(double), 1000);
	ASSERT_NOT_NULL(a);
	double *d = mp_array_ptr(a);
	ASSERT_EQ(mp_array_len(a), 1000);
	ASSERT_EQ(mp_array_elem_size(a), sizeof(double));
	for (int i = 0; i < 1000; i++)
		ASSERT(d[i] == 0.0);
	ASSERT_NOT_NULL(mp_array_get_lock(a));
	mp_array_free(a);

	mp_array *empty = mp_array_new(8, 0);
	ASSERT_NOT_NULL(empty);
	ASSERT_EQ(mp_array_len(empty), 0);
	mp_array_free(empty);
}

#define PROCS 6
#define ITERS 100000

static int add_value(void *arg)
{
	if (mp_event_wait(go, 20))
		return 99;
	mp_value *v = arg;
	long *n = mp_value_ptr(v);
	mp_lock *l = mp_value_get_lock(v);
	for (int i = 0; i < ITERS; i++) {
		if (mp_lock_acquire(l, MP_FOREVER))
			return 1;
		(*n)++;
		if (mp_lock_release(l))
			return 2;
	}
	return 0;
}

TEST(value_exact_count_processes)
{
	mp_value *v = mp_value_new(sizeof(long));
	go = mp_event_new();
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_value, v);
	ASSERT_OK(mp_event_set(go));
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(*(long *)mp_value_ptr(v), (long)PROCS * ITERS);
	mp_value_free(v);
}

#define LEN 16

static int add_array(void *arg)
{
	if (mp_event_wait(go, 20))
		return 99;
	mp_array *a = arg;
	double *d = mp_array_ptr(a);
	for (int i = 0; i < ITERS / 10; i++) {
		if (mp_lock_acquire(mp_array_get_lock(a), MP_FOREVER))
			return 1;
		for (size_t k = 0; k < mp_array_len(a); k++)
			d[k] += (double)k;
		mp_lock_release(mp_array_get_lock(a));
	}
	return 0;
}

TEST(array_exact_sums_processes)
{
	mp_array *a = mp_array_new(sizeof(double), LEN);
	go = mp_event_new();
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = test_fork(add_array, a);
	ASSERT_OK(mp_event_set(go));
	for (int i = 0; i < PROCS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	double *d = mp_array_ptr(a);
	for (int k = 0; k < LEN; k++)
		ASSERT_EQ(d[k], (double)k * PROCS * (ITERS / 10));
	mp_array_free(a);
}

static int write_raw(void *arg)
{
	long *r = arg;
	for (int i = 0; i < 8; i++)
		r[i] = i * 11;
	return 0;
}

TEST(raw_value_and_array_are_shared)
{
	long *r = mp_raw_array_new(sizeof(long), 8);
	ASSERT_NOT_NULL(r);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(r[i], 0);
	ASSERT_EQ(test_wait(test_fork(write_raw, r)), 0);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(r[i], i * 11);
	mp_shared_free(r);
	int *v = mp_raw_value_new(sizeof(int));
	ASSERT_NOT_NULL(v);
	ASSERT_EQ(*v, 0);
	mp_shared_free(v);
}

TEST_MAIN(T(value_bad_input), T(value_shape),
	  T_TIMEOUT(value_exact_count_processes, 60),
	  T_TIMEOUT(array_exact_sums_processes, 60),
	  T(raw_value_and_array_are_shared))
