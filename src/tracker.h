/* SPDX-License-Identifier: MIT */
#ifndef MP_TRACKER_H
#define MP_TRACKER_H

#include <sys/types.h>

/* The resource tracker (tracker.c): named segments unlinked when their
 * creator dies without unlinking them. */

#define MP__TRACK_CREATED 1
#define MP__TRACK_UNLINKED 2
#define MP__TRACK_KEEP 3

/* Tell the tracker (started on the first "created").  Return: 0 or the
 * error of starting it or of send (the segment is then untracked). */
int mp__tracker_send(int op, const char *name);
void mp__tracker_atfork_child(void);
/* The tracker's pid (0: none started), for tests. */
pid_t mp__tracker_pid(void);

#endif
