/* SPDX-License-Identifier: MIT */
/* The shared arena: a buddy allocator every forked process shares. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

#include "test.h"

TEST(arena_bad_sizes)
{
	errno = 0;
	ASSERT(mp_shared_alloc(0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_shared_set_size(100), -EINVAL);
	ASSERT_OK(mp_shared_set_size(1 << 20));
	ASSERT(mp_shared_alloc((size_t)2 << 20) == NULL);
	ASSERT_EQ(errno, ENOMEM);
	ASSERT(mp_shared_alloc(SIZE_MAX) == NULL);
	ASSERT_EQ(errno, ENOMEM);
	ASSERT_ERR(mp_shared_set_size(2 << 20), -EBUSY);
	ASSERT_EQ(mp_shared_capacity(), 1 << 20);
	mp_shared_free(NULL);
	int local;
	mp_shared_free(&local); /* not ours: ignored */
}

TEST(arena_alignment_zeroing_and_reuse)
{
	for (size_t size = 1; size <= 65536; size = size * 3 + 1) {
		unsigned char *p = mp_shared_alloc(size);
		ASSERT_NOT_NULL(p);
		ASSERT_EQ((uintptr_t)p % 16, 0);
		for (size_t i = 0; i < size; i++)
			ASSERT_EQ(p[i], 0);
		memset(p, 0xa5, size);
		mp_shared_free(p);
		unsigned char *q = mp_shared_alloc(size);
		ASSERT(q == p); /* the freed block is reused */
		for (size_t i = 0; i < size; i++)
			ASSERT_EQ(q[i], 0);
		mp_shared_free(q);
	}
	ASSERT_EQ(mp_shared_used(), 0);
	void *page = mp_shared_alloc(4096);
	ASSERT_EQ((uintptr_t)page % 4096, 0);
	mp_shared_free(page);
	mp_shared_free(page); /* double free: ignored */
	ASSERT_EQ(mp_shared_used(), 0);
}

TEST(arena_fills_then_coalesces)
{
	ASSERT_OK(mp_shared_set_size(1 << 20));
	size_t cap = mp_shared_capacity();
	size_t n = cap / 64;
	void **ptrs = malloc((n + 1) * sizeof(*ptrs)); /* + the NULL */
	size_t got = 0;
	while ((ptrs[got] = mp_shared_alloc(64)) != NULL)
		got++;
	ASSERT_EQ(errno, ENOMEM);
	ASSERT_EQ(got, n);
	ASSERT_EQ(mp_shared_used(), cap);
	/* Free in an order that makes every merge wait for its buddy. */
	for (size_t i = 0; i < got; i += 2)
		mp_shared_free(ptrs[i]);
	for (size_t i = 1; i < got; i += 2)
		mp_shared_free(ptrs[i]);
	ASSERT_EQ(mp_shared_used(), 0);
	void *all = mp_shared_alloc(cap);
	ASSERT_NOT_NULL(all);
	mp_shared_free(all);
	free(ptrs);
}

TEST(arena_shared_with_children)
{
	int *counter = mp_shared_alloc(sizeof(int));
	ASSERT_NOT_NULL(counter);
	*counter = 41;
	pid_t pid = fork();
	if (pid == 0) {
		(*counter)++;
		_exit(0);
	}
	ASSERT_EQ(test_wait(pid), 0);
	ASSERT_EQ(*counter, 42);
	mp_shared_free(counter);
}

/* Each worker allocates and frees random sizes, filling its blocks with
 * its own tag and checking them before it frees: an overlap between two
 * processes' blocks shows as a foreign tag. */
#define WORKERS 6
#define ROUNDS 3000
#define SLOTS 32

static int churn(void *arg)
{
	unsigned tag = (unsigned)(uintptr_t)arg;
	unsigned seed = tag * 2654435761u;
	unsigned *blocks[SLOTS] = {0};
	size_t sizes[SLOTS] = {0};

	for (int round = 0; round < ROUNDS; round++) {
		int slot = (int)(rand_r(&seed) % SLOTS);
		if (blocks[slot]) {
			for (size_t i = 0; i < sizes[slot]; i++)
				if (blocks[slot][i] != tag)
					return 10;
			mp_shared_free(blocks[slot]);
			blocks[slot] = NULL;
		} else {
			size_t n = 1 + rand_r(&seed) % 300;
			blocks[slot] = mp_shared_alloc(n * sizeof(unsigned));
			if (!blocks[slot])
				return 11;
			for (size_t i = 0; i < n; i++)
				blocks[slot][i] = tag;
			sizes[slot] = n;
		}
	}
	for (int s = 0; s < SLOTS; s++)
		mp_shared_free(blocks[s]);
	return 0;
}

TEST(arena_many_processes_no_overlap_no_loss)
{
	ASSERT_OK(mp_shared_set_size(8 << 20));
	ASSERT_EQ(mp_shared_used(), 0);
	pid_t pids[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		pids[i] = test_fork(churn, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < WORKERS; i++)
		ASSERT_EQ(test_wait(pids[i]), 0);
	ASSERT_EQ(mp_shared_used(), 0);
}

static _Atomic long *progress;

static _Noreturn int churn_forever(void *arg)
{
	(void)arg;
	for (;;) {
		churn((void *)(uintptr_t)getpid());
		atomic_fetch_add(progress, 1);
	}
}

static int die_holding_arena_lock(void *arg)
{
	(void)arg;
	if (mp_lock_acquire(mp__arena_lock(), MP_FOREVER))
		return 1;
	raise(SIGKILL);
	return 2;
}

/* A process that dies holding the arena lock: the next user recovers the
 * lock and rebuilds the free lists from the side table. */
TEST(arena_recovers_from_dead_lock_holder)
{
	void *before = mp_shared_alloc(100);
	pid_t pid = test_fork(die_holding_arena_lock, NULL);
	ASSERT_EQ(test_wait(pid), -SIGKILL);
	ASSERT_EQ(mp__arena_rebuilds(), 0);
	void *after = mp_shared_alloc(100);
	ASSERT_NOT_NULL(after);
	ASSERT_EQ(mp__arena_rebuilds(), 1);
	ASSERT(after != before);
	ASSERT_EQ(mp_shared_used(), 256);
	mp_shared_free(before);
	mp_shared_free(after);
	ASSERT_EQ(mp_shared_used(), 0);
	void *all = mp_shared_alloc(mp_shared_capacity());
	ASSERT_NOT_NULL(all); /* the lists coalesce back to one block */
	mp_shared_free(all);
}

/* Processes killed wherever they are in the allocator, over and over: the
 * arena stays usable and consistent. */
TEST(arena_survives_killed_allocators)
{
	ASSERT_OK(mp_shared_set_size(16 << 20));
	progress = mp_shared_alloc(sizeof(*progress));
	for (int round = 0; round < 30; round++) {
		long start = atomic_load(progress);
		pid_t a = test_fork(churn_forever, NULL);
		pid_t b = test_fork(churn_forever, NULL);
		/* Both run the allocator flat out, then die mid-flight. */
		while (atomic_load(progress) < start + 2)
			sched_yield();
		kill(a, SIGKILL);
		kill(b, SIGKILL);
		ASSERT_EQ(test_wait(a), -SIGKILL);
		ASSERT_EQ(test_wait(b), -SIGKILL);
	}
	/* Still usable, and what we allocate now comes back. */
	size_t before = mp_shared_used();
	void *p = mp_shared_alloc(1000);
	ASSERT_NOT_NULL(p);
	ASSERT_EQ(mp_shared_used(), before + 1024);
	mp_shared_free(p);
	ASSERT_EQ(mp_shared_used(), before);
	ASSERT_CMP(before, <=, mp_shared_capacity());
	fprintf(stderr, "# %llu rebuilds in 30 rounds\n",
		(unsigned long long)mp__arena_rebuilds());
}

TEST_MAIN(T(arena_bad_sizes), T(arena_alignment_zeroing_and_reuse),
	  T(arena_fills_then_coalesces), T(arena_shared_with_children),
	  T_TIMEOUT(arena_many_processes_no_overlap_no_loss, 60),
	  T(arena_recovers_from_dead_lock_holder),
	  T_TIMEOUT(arena_survives_killed_allocators, 60))
