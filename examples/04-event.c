/* SPDX-License-Identifier: MIT */
/* 4. An Event: one process waits until another one sets it. */
/*
 * The tutorial's Event example:
 *
 *     def wait_for_event(event):
 *         print('等待事件')
 *         event.wait()
 *         print('事件发生了')
 *
 *     def set_event(event):
 *         time.sleep(2)  # 假设在这之前做了一些操作
 *         print('事件设置')
 *         event.set()
 *
 * The event lives in the shared arena (mp_event_new), so both children
 * see the same flag.  The setter works for half a second here instead of
 * two, to keep the demo quick.
 */
#include <stdio.h>
#include <time.h>

#include <multiproc.h>

static int wait_for_event(void *arg)
{
	mp_event *event = arg;
	printf("等待事件 (waiting for the event)\n");
	fflush(stdout);
	mp_event_wait(event, MP_FOREVER);
	printf("事件发生了 (the event happened)\n");
	return 0;
}

static int set_event(void *arg)
{
	mp_event *event = arg;
	struct timespec work = {0, 500 * 1000 * 1000};
	nanosleep(&work, NULL); /* 假设在这之前做了一些操作 (some work) */
	printf("事件设置 (setting the event)\n");
	fflush(stdout);
	mp_event_set(event);
	return 0;
}

int main(void)
{
	mp_event *event = mp_event_new();
	if (!event) {
		perror("mp_event_new");
		return 1;
	}
	mp_process *process1 = mp_process_new(wait_for_event, event);
	mp_process *process2 = mp_process_new(set_event, event);
	if (!process1 || !process2 || mp_process_start(process1) ||
	    mp_process_start(process2)) {
		perror("start");
		return 1;
	}
	mp_process_join(process1, MP_FOREVER);
	mp_process_join(process2, MP_FOREVER);
	mp_process_free(process1);
	mp_process_free(process2);
	mp_event_free(event);
	return 0;
}
