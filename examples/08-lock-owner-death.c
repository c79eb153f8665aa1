/* SPDX-License-Identifier: MIT */
/* 8. Beyond Python: a process dies holding the lock; the next one is told. */
/*
 * In Python, a process killed while it holds a multiprocessing.Lock leaves
 * the lock locked forever: everyone who wants it hangs.  Here the next
 * acquirer gets the lock with -EOWNERDEAD, a signal that the data the lock
 * guards may be half-updated, so it can check or repair it and go on.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include <multiproc.h>

struct account {
	mp_lock lock;
	long balance;
	long pending; /* set while a transfer is half done */
};

static int die_mid_update(void *arg)
{
	struct account *a = arg;

	mp_lock_acquire(&a->lock, MP_FOREVER);
	a->pending = 100;
	a->balance += 100; /* ...and the matching debit never happens */
	printf("child: holding the lock, mid-update, and now killed\n");
	fflush(stdout);
	raise(SIGKILL);
	return 0;
}

int main(void)
{
	struct account *a = mp_shared_alloc(sizeof(*a));
	if (!a || mp_lock_init(&a->lock) != 0)
		return 1;
	a->balance = 1000;

	mp_process *p = mp_process_new(die_mid_update, a);
	mp_process_start(p);
	mp_process_join(p, MP_FOREVER);
	printf("child exit code: %d (killed by SIGKILL)\n",
	       mp_process_exitcode(p));

	int r = mp_lock_acquire(&a->lock, 5.0);
	if (r == -EOWNERDEAD) {
		printf("parent: lock acquired with EOWNERDEAD: "
		       "the holder died, checking the data\n");
		if (a->pending) {
			a->balance -= a->pending; /* roll the half update back */
			a->pending = 0;
		}
	} else if (r != 0) {
		printf("parent: %s\n", mp_strerror(r));
		return 1;
	}
	printf("parent: balance %ld, and the lock still works\n", a->balance);
	mp_lock_release(&a->lock);
	mp_process_free(p);
	mp_shared_free(a);
	return 0;
}
