/* SPDX-License-Identifier: MIT */
/* 12. Start methods: a child of a threaded parent, by fork, forkserver and
 * spawn. */
/*
 * A program with a logging thread.  The thread holds its mutex while it
 * writes a batch; a child forked at that moment gets a copy of the mutex,
 * locked, with no thread in the child to unlock it: the child's first log
 * line waits forever.  The example bounds that wait with a join timeout and
 * kills the child.  A forkserver child is forked by a server started before
 * the thread existed, a spawn child is a fresh run of the program: both have
 * a free mutex and log.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static sem_t holding, release_it;

static void log_line(const char *who, const char *what)
{
	pthread_mutex_lock(&log_mutex);
	printf("[log] %s: %s\n", who, what);
	pthread_mutex_unlock(&log_mutex);
}

/* Three batches, one per child below: the mutex is held while each child
 * starts (a semaphore pair makes that moment certain, not likely). */
static void *logger(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		pthread_mutex_lock(&log_mutex);
		sem_post(&holding);
		sem_wait(&release_it); /* "writing the batch to disk" */
		pthread_mutex_unlock(&log_mutex);
	}
	return NULL;
}

static int child(void *arg)
{
	log_line(arg, "hello from the child");
	return 0;
}

int main(void)
{
	/* First, while the program has one thread: the server is a copy of
	 * the program as it is now. */
	if (mp_set_start_method(MP_START_FORKSERVER) != 0)
		return 1;
	sem_init(&holding, 0, 0);
	sem_init(&release_it, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, logger, NULL);

	const int methods[] = {MP_START_FORK, MP_START_FORKSERVER,
			       MP_START_SPAWN};
	const char *names[] = {"fork", "forkserver", "spawn"};
	for (int i = 0; i < 3; i++) {
		sem_wait(&holding); /* the logger holds its mutex now */
		mp_process *p = mp_process_new_args(child, names[i],
						    strlen(names[i]) + 1);
		mp_process_set_start_method(p, methods[i]);
		mp_process_start(p);
		sem_post(&release_it);
		if (mp_process_join(p, 1.0) == -ETIMEDOUT) {
			printf("%s: the child hangs on the copied mutex "
			       "(no exit after 1 s); killing it\n", names[i]);
			mp_process_kill(p);
			mp_process_join(p, MP_FOREVER);
		}
		printf("%s: exit code %d\n", names[i], mp_process_exitcode(p));
		mp_process_free(p);
	}
	pthread_join(t, NULL);
	return 0;
}
