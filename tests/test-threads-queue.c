/* SPDX-License-Identifier: MIT */
/* Queue from threads of one process (TSan sees these; `make tsan`). */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

#define THREADS 3
#define PER 20000

static mp_queue *g_q;
static _Atomic uint64_t g_sum;
static _Atomic uint8_t g_seen[THREADS * PER];

static void *prod(void *arg)
{
	uint32_t p = (uint32_t)(uintptr_t)arg;
	for (uint32_t i = 0; i < PER; i++) {
		uint32_t m[2] = {p, i};
		if (mp_queue_put(g_q, m, sizeof(m), MP_FOREVER))
			abort();
	}
	return NULL;
}

static void *cons(void *arg)
{
	(void)arg;
	uint32_t m[2], last[THREADS] = {0};
	bool any[THREADS] = {false};
	for (;;) {
		ssize_t n = mp_queue_get(g_q, m, sizeof(m), MP_FOREVER);
		if (n == MP_ECLOSED)
			return NULL;
		if (n != sizeof(m) || m[0] >= THREADS || m[1] >= PER)
			abort();
		if (any[m[0]] && m[1] <= last[m[0]])
			abort(); /* out of order */
		any[m[0]] = true;
		last[m[0]] = m[1];
		if (atomic_exchange(&g_seen[m[0] * PER + m[1]], 1))
			abort(); /* twice */
		atomic_fetch_add(&g_sum, 1);
	}
}

TEST(threads_queue_mpmc)
{
	pthread_t p[THREADS], c[THREADS];
	g_q = mp_queue_new(128);
	ASSERT_NOT_NULL(g_q);
	for (int i = 0; i < THREADS; i++) {
		pthread_create(&c[i], NULL, cons, NULL);
		pthread_create(&p[i], NULL, prod, (void *)(uintptr_t)i);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(p[i], NULL);
	ASSERT_OK(mp_queue_close(g_q));
	for (int i = 0; i < THREADS; i++)
		pthread_join(c[i], NULL);
	ASSERT_EQ(atomic_load(&g_sum), THREADS * PER);
	mp_queue_free(g_q);
}

TEST_MAIN(T_TIMEOUT(threads_queue_mpmc, 60))
