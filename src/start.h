/* SPDX-License-Identifier: MIT */
#ifndef MP_START_H
#define MP_START_H

/*
 * Start methods, inside the library: what process.c hands to the spawn and
 * forkserver launchers, the request they send (a flat blob: the same bytes
 * go down a forkserver's socket and into a spawn child's memfd), and the
 * translation of the parent's code addresses in a child whose image may
 * lie elsewhere (pool task functions stored as pointers in shared memory).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fnid.h"

/* What to run in the child, as process.c knows it. */
struct mp__launch {
	int (*target)(void *arg);
	void *arg;          /* the pointer itself (mp_process_new) */
	const void *argbuf; /* or bytes to copy (mp_process_new_args) */
	size_t arglen;
	bool has_copy;
	const char *name;
	const char *ident;
	bool daemon;
	int keep_fd; /* a descriptor the child needs at this number, or -1 */
};

/* The child's side of a request, pointing into the blob. */
struct mp__child {
	int (*target)(void *arg);
	void *arg;
	const char *name;
	const char *ident;
	bool daemon;
	pid_t parent;
	int keep_fd;
};

/* One loaded object of the parent, for mp__xlate. */
struct mp__objent {
	uint64_t base;   /* load base (dlpi_addr) */
	uint64_t lo, hi; /* its executable bytes, absolute, [lo, hi) */
	uint8_t id_len;
	uint8_t build_id[MP__FNID_BUILD_ID_MAX];
};

#define MP__MAX_OBJS 128

/* start.c: the request.  mp__blob_make returns a malloc()ed blob or NULL
 * with *err (-ENOENT, -ENOTSUP: the target has no name across images;
 * -ENOMEM).  mp__blob_parse checks it, resolves the target in this image
 * (-ENOENT: not loaded here, -EFAULT: no code there, -EPROTO: not a blob)
 * and installs the parent's object map for mp__xlate. */
void *mp__blob_make(const struct mp__launch *l, size_t *len, int *err);
int mp__blob_parse(void *blob, size_t len, struct mp__child *c);

/* process.c: a descriptor (one) the child must have at the same number,
 * whatever the method (a fork child has them all). */
struct mp_process;
int mp__process_keep_fd(struct mp_process *p, int fd);

/* process.c: become the child described by c and run its target; never
 * returns (flushes stdout/stderr and _exit()s with the target's code). */
_Noreturn void mp__child_run(const struct mp__child *c);

/* spawn.c / forkserver.c: start the child; on success *pid is a child of
 * this process (waitid works on it) and *pidfd its pidfd. */
int mp__spawn_launch(const struct mp__launch *l, pid_t *pid, int *pidfd);
int mp__forkserver_launch(const struct mp__launch *l, pid_t *pid, int *pidfd);
int mp__forkserver_ensure(void);
pid_t mp__forkserver_pid(void); /* for tests: 0 when none runs */
void mp__forkserver_atfork_child(void);

/* xlate.c: the parent's loaded objects (up to cap; returns how many),
 * installing a parent's map in a child, and the translation itself: the
 * address in this image of the function at parent address `fn`, or NULL
 * when it cannot be found (never a guess).  Without an installed map (a
 * fork child, the main process) the address is returned as it is. */
int mp__objmap_collect(struct mp__objent *out, int cap);
void mp__xlate_install(const struct mp__objent *map, uint32_t n);
void mp__xlate_reset(void);
void *mp__xlate(const void *fn);

#endif
