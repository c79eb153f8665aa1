/* SPDX-License-Identifier: MIT */
/* JoinableQueue: task_done / join across processes. */
#include "test.h"

static mp_queue *g_q;

static int worker(void *arg)
{
	(void)arg;
	char buf[64];
	for (;;) {
		ssize_t n = mp_queue_get(g_q, buf, sizeof(buf), MP_FOREVER);
		if (n == MP_ECLOSED)
			return 0;
		if (n < 0 || mp_queue_task_done(g_q))
			return 1;
	}
}

TEST(joinable_join_waits_for_all)
{
	g_q = mp_joinable_queue_new(256);
	ASSERT_NOT_NULL(g_q);
	ASSERT_OK(mp_queue_join(g_q, 0)); /* nothing put yet */
	ASSERT_EQ(mp_queue_unfinished(g_q), 0);
	pid_t w[3];
	for (int i = 0; i < 3; i++)
		w[i] = test_fork(worker, NULL);
	for (int i = 0; i < 5000; i++)
		ASSERT_OK(mp_queue_put(g_q, &i, sizeof(i), MP_FOREVER));
	ASSERT_OK(mp_queue_join(g_q, 20));
	ASSERT_EQ(mp_queue_unfinished(g_q), 0);
	ASSERT(mp_queue_empty(g_q));
	ASSERT_OK(mp_queue_close(g_q));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(test_wait(w[i]), 0);
	mp_queue_free(g_q);
}

TEST(joinable_timeout_and_too_many)
{
	char buf[8];
	mp_queue *q = mp_joinable_queue_new(0);
	ASSERT_ERR(mp_queue_task_done(q), -EINVAL);
	ASSERT_OK(mp_queue_put(q, "a", 1, 0));
	ASSERT_OK(mp_queue_put(q, "b", 1, 0));
	ASSERT_EQ(mp_queue_unfinished(q), 2);
	ASSERT_ERR(mp_queue_join(q, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_queue_join(q, 0.03), -ETIMEDOUT);
	ASSERT_EQ(mp_queue_get(q, buf, sizeof(buf), 0), 1);
	ASSERT_OK(mp_queue_task_done(q));
	ASSERT_ERR(mp_queue_join(q, 0), -ETIMEDOUT);
	ASSERT_EQ(mp_queue_get(q, buf, sizeof(buf), 0), 1);
	ASSERT_OK(mp_queue_task_done(q));
	ASSERT_OK(mp_queue_join(q, 0));
	ASSERT_ERR(mp_queue_task_done(q), -EINVAL);
	ASSERT_ERR(mp_queue_task_done(NULL), -EINVAL);
	ASSERT_ERR(mp_queue_join(NULL, 0), -EINVAL);
	mp_queue_free(q);

	/* Placed in caller memory, joinable too. */
	size_t need = mp_queue_size_for(100);
	void *mem = mp_shared_alloc(need);
	q = mp_queue_init(mem, need, true);
	ASSERT_NOT_NULL(q);
	ASSERT_OK(mp_queue_put(q, "c", 1, 0));
	ASSERT_EQ(mp_queue_unfinished(q), 1);
	ASSERT_EQ(mp_queue_get(q, buf, sizeof(buf), 0), 1);
	ASSERT_OK(mp_queue_task_done(q));
	ASSERT_OK(mp_queue_destroy(q));
	mp_shared_free(mem);
}

TEST(simple_queue_alias)
{
	char buf[8];
	mp_simple_queue *q = mp_simple_queue_new();
	ASSERT_NOT_NULL(q);
	ASSERT(mp_simple_queue_empty(q));
	ASSERT_OK(mp_simple_queue_put(q, "hi", 2));
	ASSERT_EQ(mp_simple_queue_get(q, buf, sizeof(buf)), 2);
	ASSERT_OK(mp_simple_queue_close(q));
	ASSERT_ERR(mp_simple_queue_get(q, buf, sizeof(buf)), MP_ECLOSED);
	mp_simple_queue_free(q);
}

TEST_MAIN(T(joinable_join_waits_for_all), T(joinable_timeout_and_too_many),
	  T(simple_queue_alias))
