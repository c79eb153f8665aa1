/* SPDX-License-Identifier: MIT */
/*
 * Timeouts that are not numbers: every public call that takes timeout_s
 * refuses a NaN (either sign) and a finite value above MP_TIMEOUT_MAX with
 * -EINVAL, at once and without touching the object, also where its fast
 * path would have succeeded without looking at the timeout.  +INFINITY is
 * forever and MP_TIMEOUT_MAX itself is a valid timeout.  (A NaN used to
 * block forever where the call had to wait, and to be ignored where it did
 * not.)
 */
#include <float.h>
#include <math.h>

#include "test.h"

static const double bad[] = {NAN, -NAN, MP_TIMEOUT_MAX * 2, 1e300, DBL_MAX,
			     INFINITY - INFINITY};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

TEST(timeout_lock_and_rlock)
{
	mp_lock *l = mp_lock_new();
	ASSERT_NOT_NULL(l);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_lock_acquire(l, bad[i]), -EINVAL); /* free */
	ASSERT_OK(mp_lock_acquire(l, 0)); /* nothing was taken */
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_lock_acquire(l, bad[i]), -EINVAL); /* held */
	ASSERT_OK(mp_lock_release(l));
	ASSERT_OK(mp_lock_acquire(l, INFINITY));
	ASSERT_OK(mp_lock_release(l));
	ASSERT_OK(mp_lock_acquire(l, MP_TIMEOUT_MAX));
	ASSERT_OK(mp_lock_release(l));
	ASSERT_OK(mp_lock_acquire(l, -INFINITY));
	ASSERT_OK(mp_lock_release(l));
	mp_lock_free(l);

	mp_rlock *r = mp_rlock_new();
	ASSERT_NOT_NULL(r);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_rlock_acquire(r, bad[i]), -EINVAL);
	ASSERT_OK(mp_rlock_acquire(r, 0));
	for (size_t i = 0; i < NBAD; i++) /* the recursive path too */
		ASSERT_ERR(mp_rlock_acquire(r, bad[i]), -EINVAL);
	ASSERT_OK(mp_rlock_release(r));
	ASSERT_ERR(mp_rlock_release(r), -EPERM); /* count was 1 */
	ASSERT_OK(mp_rlock_acquire(r, INFINITY));
	ASSERT_OK(mp_rlock_release(r));
	mp_rlock_free(r);
}

TEST(timeout_semaphore)
{
	mp_semaphore *s = mp_semaphore_new(1);
	ASSERT_NOT_NULL(s);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_semaphore_acquire(s, bad[i]), -EINVAL);
	ASSERT_EQ(mp_semaphore_get_value(s), 1);
	ASSERT_OK(mp_semaphore_acquire(s, 0));
	for (size_t i = 0; i < NBAD; i++) /* would have to wait */
		ASSERT_ERR(mp_semaphore_acquire(s, bad[i]), -EINVAL);
	ASSERT_OK(mp_semaphore_release(s));
	ASSERT_OK(mp_semaphore_acquire(s, INFINITY));
	mp_semaphore_free(s);
}

TEST(timeout_event)
{
	mp_event *e = mp_event_new();
	ASSERT_NOT_NULL(e);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_event_wait(e, bad[i]), -EINVAL); /* clear */
	ASSERT_OK(mp_event_set(e));
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_event_wait(e, bad[i]), -EINVAL); /* set */
	ASSERT_OK(mp_event_wait(e, INFINITY));
	mp_event_free(e);
}

static bool always(void *arg)
{
	(void)arg;
	return true;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

TEST(timeout_condition)
{
	mp_condition *c = mp_condition_new(NULL);
	ASSERT_NOT_NULL(c);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_condition_acquire(c, bad[i]), -EINVAL);
	ASSERT_OK(mp_condition_acquire(c, 0));
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_condition_wait(c, bad[i]), -EINVAL);
		ASSERT_ERR(mp_condition_wait_for(c, always, NULL, bad[i]),
			   -EINVAL);
		ASSERT_ERR(mp_condition_wait_for(c, never, NULL, bad[i]),
			   -EINVAL);
	}
	ASSERT_OK(mp_condition_wait_for(c, always, NULL, INFINITY));
	ASSERT_OK(mp_condition_release(c)); /* still ours: never let go */
	ASSERT_ERR(mp_condition_release(c), -EPERM);
	mp_condition_free(c);
}

TEST(timeout_barrier)
{
	mp_barrier *one = mp_barrier_new(1);
	mp_barrier *two = mp_barrier_new(2);
	ASSERT_NOT_NULL(one);
	ASSERT_NOT_NULL(two);
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_barrier_wait(one, bad[i]), -EINVAL);
		ASSERT_ERR(mp_barrier_wait(two, bad[i]), -EINVAL);
	}
	ASSERT_EQ(mp_barrier_n_waiting(two), 0);
	ASSERT(!mp_barrier_broken(two));
	ASSERT_OK(mp_barrier_wait(one, INFINITY)); /* index 0 */
	mp_barrier_free(one);
	mp_barrier_free(two);
}

TEST(timeout_queue)
{
	mp_queue *q = mp_joinable_queue_new(256);
	ASSERT_NOT_NULL(q);
	char buf[16];
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_queue_get(q, buf, sizeof(buf), bad[i]),
			   -EINVAL); /* empty */
		ASSERT_ERR(mp_queue_join(q, bad[i]), -EINVAL); /* idle */
		ASSERT_ERR(mp_queue_put(q, "x", 1, bad[i]), -EINVAL);
	}
	ASSERT(mp_queue_empty(q));
	ASSERT_OK(mp_queue_put(q, "ab", 2, INFINITY));
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_queue_get(q, buf, sizeof(buf), bad[i]),
			   -EINVAL); /* a message waits */
		ASSERT_ERR(mp_queue_join(q, bad[i]), -EINVAL); /* busy */
		void *m = NULL;
		ASSERT_ERR(mp_queue_get_alloc(q, &m, bad[i]), -EINVAL);
	}
	ASSERT_EQ(mp_queue_get(q, buf, sizeof(buf), 0), 2);
	ASSERT(memcmp(buf, "ab", 2) == 0);
	ASSERT(mp_queue_empty(q)); /* the refused calls took nothing */
	mp_queue_free(q);
}

TEST(timeout_pipe)
{
	mp_conn *a, *b;
	ASSERT_OK(mp_pipe(&a, &b, true));
	char buf[16];
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), bad[i]), -EINVAL);
		ASSERT_ERR(mp_conn_poll(a, bad[i]), -EINVAL);
	}
	ASSERT_OK(mp_conn_send(b, "hi", 2));
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_conn_poll(a, bad[i]), -EINVAL);
		ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), bad[i]), -EINVAL);
	}
	ASSERT_EQ(mp_conn_poll(a, INFINITY), 1);
	ASSERT_EQ(mp_conn_recv(a, buf, sizeof(buf), 0), 2);
	ASSERT(memcmp(buf, "hi", 2) == 0);
	void *m = NULL;
	ASSERT_OK(mp_conn_send(b, "hi", 2));
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_conn_recv_alloc(a, &m, bad[i]), -EINVAL);
		ASSERT_ERR(mp_conn_recv_fd(a, bad[i]), -EINVAL);
		mp_wait_item w = {.kind = MP_WAIT_CONN, .conn = a};
		ASSERT_ERR(mp_wait(&w, 1, bad[i]), -EINVAL);
	}
	ASSERT_EQ(mp_conn_recv_alloc(a, &m, 0), 2);
	free(m);
	mp_conn_free(a);
	mp_conn_free(b);

	mp_listener *l = mp_listener_new("unix:@mp-test-timeouts", NULL, 0);
	ASSERT_NOT_NULL(l);
	for (size_t i = 0; i < NBAD; i++) {
		errno = 0;
		ASSERT(mp_listener_accept(l, bad[i]) == NULL);
		ASSERT_EQ(errno, EINVAL);
		errno = 0;
		ASSERT(mp_client(mp_listener_address(l), NULL, 0, bad[i]) ==
		       NULL);
		ASSERT_EQ(errno, EINVAL);
	}
	mp_listener_free(l);
}

static int wait_pipe(void *arg)
{
	int *fds = arg;
	char c;
	close(fds[1]);
	while (read(fds[0], &c, 1) > 0)
		;
	return 5;
}

TEST(timeout_process_join)
{
	int fds[2];
	ASSERT_OK(pipe(fds));
	mp_process *p = mp_process_new(wait_pipe, fds);
	ASSERT_NOT_NULL(p);
	ASSERT_OK(mp_process_start(p));
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_process_join(p, bad[i]), -EINVAL); /* runs */
	close(fds[1]);
	ASSERT_OK(mp_process_join(p, INFINITY));
	ASSERT_EQ(mp_process_exitcode(p), 5);
	for (size_t i = 0; i < NBAD; i++)
		ASSERT_ERR(mp_process_join(p, bad[i]), -EINVAL); /* reaped */
	close(fds[0]);
	mp_process_free(p);
}

static ssize_t echo(const void *arg, size_t len, void *out, size_t cap)
{
	if (len > cap)
		return -EMSGSIZE;
	memcpy(out, arg, len);
	return (ssize_t)len;
}

static int twice(const void *in, void *out)
{
	*(int *)out = 2 * *(const int *)in;
	return 0;
}

TEST(timeout_pool_waits)
{
	mp_pool *pool = mp_pool_new(1);
	ASSERT_NOT_NULL(pool);
	mp_async *a = mp_pool_apply_async(pool, echo, "abc", 3, 8);
	ASSERT_NOT_NULL(a);
	char buf[8];
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_async_wait(a, bad[i]), -EINVAL);
		ASSERT_ERR(mp_async_get(a, buf, sizeof(buf), bad[i]), -EINVAL);
	}
	ASSERT_EQ(mp_async_get(a, buf, sizeof(buf), INFINITY), 3);
	ASSERT(memcmp(buf, "abc", 3) == 0);
	for (size_t i = 0; i < NBAD; i++) { /* ready now */
		ASSERT_ERR(mp_async_wait(a, bad[i]), -EINVAL);
		ASSERT_ERR(mp_async_get(a, buf, sizeof(buf), bad[i]), -EINVAL);
	}
	mp_async_free(a);

	int in[3] = {1, 2, 3}, out;
	mp_imap *it = mp_pool_imap(pool, twice, in, sizeof(int), sizeof(int),
				   3, 1);
	ASSERT_NOT_NULL(it);
	size_t index = 0;
	for (size_t i = 0; i < NBAD; i++) {
		ASSERT_ERR(mp_imap_next(it, &index, &out, bad[i]), -EINVAL);
		ASSERT_EQ(index, SIZE_MAX);
	}
	for (int k = 0; k < 3; k++) { /* nothing was skipped */
		ASSERT_OK(mp_imap_next(it, &index, &out, INFINITY));
		ASSERT_EQ(index, k);
		ASSERT_EQ(out, 2 * (k + 1));
	}
	ASSERT_ERR(mp_imap_next(it, &index, &out, NAN), -EINVAL);
	ASSERT_ERR(mp_imap_next(it, &index, &out, 0), MP_ECLOSED);
	mp_imap_free(it);
	mp_pool_free(pool);
}

TEST_MAIN(T(timeout_lock_and_rlock), T(timeout_semaphore), T(timeout_event),
	  T(timeout_condition), T(timeout_barrier), T(timeout_queue),
	  T(timeout_pipe), T(timeout_process_join), T(timeout_pool_waits))
