/* SPDX-License-Identifier: MIT */
/* 3. The shared counter with an mp_lock: exactly 0, every time. */
/*
 * The tutorial's fix:
 *
 *     lock = multiprocessing.Lock()
 *     def increase_count():
 *         lock.acquire()  # 获取锁
 *         count += 1
 *         lock.release()  # 释放锁
 *
 * The same shared counter as example 2, but each update happens with the
 * lock held.  Only one process at a time can be between acquire and
 * release, so the load-add-store of one update can no longer interleave
 * with the other process's: no update is lost and the result is exactly 0.
 * The lock itself lives in shared memory too (mp_lock_new), or the two
 * processes would each lock a private copy and exclude nobody.
 */
#include <stdio.h>

#include <multiproc.h>

#define TIMES 200000

struct shared {
	mp_lock lock;
	long count;
};

static struct shared *s;

static int increase_count(void *arg)
{
	(void)arg;
	for (int i = 0; i < TIMES; i++) {
		mp_lock_acquire(&s->lock, MP_FOREVER); /* 获取锁 */
		s->count += 1;
		mp_lock_release(&s->lock); /* 释放锁 */
	}
	return 0;
}

static int decrease_count(void *arg)
{
	(void)arg;
	for (int i = 0; i < TIMES; i++) {
		mp_lock_acquire(&s->lock, MP_FOREVER);
		s->count -= 1;
		mp_lock_release(&s->lock);
	}
	return 0;
}

int main(void)
{
	s = mp_shared_alloc(sizeof(*s));
	if (!s || mp_lock_init(&s->lock)) {
		perror("mp_shared_alloc");
		return 1;
	}
	mp_process *process1 = mp_process_new(increase_count, NULL);
	mp_process *process2 = mp_process_new(decrease_count, NULL);
	if (!process1 || !process2 || mp_process_start(process1) ||
	    mp_process_start(process2)) {
		perror("start");
		return 1;
	}
	mp_process_join(process1, MP_FOREVER);
	mp_process_join(process2, MP_FOREVER);
	printf("%ld\n", s->count);
	printf("现在得到的结果是 0 (now the result is 0: expected 0, got %ld, "
	       "%d increments and %d decrements under the lock)\n",
	       s->count, TIMES, TIMES);
	mp_process_free(process1);
	mp_process_free(process2);
	int bad = s->count != 0;
	mp_shared_free(s);
	return bad;
}
