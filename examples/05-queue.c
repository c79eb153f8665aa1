/* SPDX-License-Identifier: MIT */
/* 5. A Queue between processes: a producer puts, a consumer gets. */
/*
 * The tutorial's producer/consumer:
 *
 *     def producer(queue):
 *         for i in range(5):
 *             print(f'生产者生产了产品{i}')
 *             queue.put(i)
 *     def consumer(queue):
 *         while True:
 *             item = queue.get()
 *             if item is None:
 *                 break
 *             print(f'消费者消费了产品{item}')
 *     ...
 *     producer_process.join()
 *     queue.put(None)  # 发送结束信号 (send the end signal)
 *
 * The end signal: Python sends None.  Here the idiomatic signal is
 * mp_queue_close(): once every message put before it has been taken, every
 * get returns MP_ECLOSED, so it ends ANY number of consumers at once (one
 * None per consumer is a classic bug), it cannot be mistaken for data, and
 * a consumer that comes late still sees it.  An empty message works too,
 * as a 0-length put is a real message here; use it when the queue must
 * stay open for other traffic.
 */
#include <stdio.h>

#include <multiproc.h>

static int producer(void *arg)
{
	mp_queue *queue = arg;

	for (int i = 0; i < 5; i++) {
		printf("生产者生产了产品%d (the producer made item %d)\n", i, i);
		fflush(stdout);
		mp_queue_put(queue, &i, sizeof(i), MP_FOREVER);
	}
	return 0;
}

static int consumer(void *arg)
{
	mp_queue *queue = arg;
	int item;

	for (;;) {
		ssize_t n = mp_queue_get(queue, &item, sizeof(item), MP_FOREVER);
		if (n == MP_ECLOSED)
			break; /* closed and drained: the end signal */
		if (n != sizeof(item)) {
			fprintf(stderr, "get: %s\n", mp_strerror((int)n));
			return 1;
		}
		printf("消费者消费了产品%d (the consumer used item %d)\n", item,
		       item);
		fflush(stdout);
	}
	return 0;
}

int main(void)
{
	/* In the shared arena: the children forked below see the same queue. */
	mp_queue *queue = mp_queue_new(0);
	if (!queue) {
		perror("mp_queue_new");
		return 1;
	}
	mp_process *producer_process = mp_process_new(producer, queue);
	mp_process *consumer_process = mp_process_new(consumer, queue);
	if (!producer_process || !consumer_process ||
	    mp_process_start(producer_process) != 0 ||
	    mp_process_start(consumer_process) != 0) {
		perror("start");
		return 1;
	}
	mp_process_join(producer_process, MP_FOREVER);
	mp_queue_close(queue); /* 发送结束信号 (send the end signal) */
	mp_process_join(consumer_process, MP_FOREVER);
	int rc = mp_process_exitcode(consumer_process);
	mp_process_free(producer_process);
	mp_process_free(consumer_process);
	mp_queue_free(queue);
	return rc;
}
