/* SPDX-License-Identifier: MIT */
#ifndef MP_FUTEX_H
#define MP_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
	       "futex words must be lock-free to be address-free");

/* Sleep while *word == expected, until woken or the deadline passes.
 * Return: 0 (woken, or the word differed: re-check), -ETIMEDOUT.
 * EINTR and spurious wake-ups return 0: callers loop on their condition. */
int mp__futex_wait(_Atomic uint32_t *word, uint32_t expected,
		   mp__deadline deadline);

/* Wake up to n sleepers on word (INT32_MAX: all).  Return: how many woke. */
int mp__futex_wake(_Atomic uint32_t *word, int n);

#endif
