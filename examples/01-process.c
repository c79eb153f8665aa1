/* SPDX-License-Identifier: MIT */
/* 1. A process that runs a function: start it, wait for it, go on. */
/*
 * The tutorial's first example:
 *
 *     process = multiprocessing.Process(target=print_numbers)
 *     process.start()
 *     process.join()
 *     print('进程执行完毕')
 *
 * mp_process_new() takes the target and its argument, start() forks a
 * child that runs it, join() waits for the child to end.
 */
#include <stdio.h>

#include <multiproc.h>

static int print_numbers(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5; i++)
		printf("%d\n", i);
	return 0; /* the child's exit code */
}

int main(void)
{
	mp_process *process = mp_process_new(print_numbers, NULL);
	if (!process || mp_process_start(process) != 0) {
		perror("start");
		return 1;
	}
	mp_process_join(process, MP_FOREVER);
	printf("进程执行完毕 (the process has finished, exit code %d)\n",
	       mp_process_exitcode(process));
	mp_process_free(process);
	return 0;
}
