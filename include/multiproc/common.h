/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_COMMON_H
#define MULTIPROC_COMMON_H

/*
 * Conventions shared by the whole library.
 *
 * Errors: a function returns 0 (or a non-negative count) on success and a
 * negative error code on failure: -errno values (-EINVAL, -ETIMEDOUT,
 * -EOWNERDEAD, ...) or one of the library's own MP_E* codes below, which lie
 * far below any errno value.  Constructors (*_new) return NULL and set errno.
 *
 * Time: every blocking call takes `double timeout_s`.  MP_FOREVER (any
 * negative value) and +INFINITY block, 0 tries once, a positive value up
 * to MP_TIMEOUT_MAX is a relative timeout measured on CLOCK_MONOTONIC.  A
 * NaN, or a finite value above MP_TIMEOUT_MAX, is a bad argument: the call
 * returns -EINVAL at once, without trying.  A call that runs out of time,
 * including a try that would have to wait, returns -ETIMEDOUT.  Signals
 * (EINTR) never extend or cut short a wait.
 *
 * Threads, processes and fork: every object that lives in shared memory may
 * be used from any thread of any process that maps it.  Process-local
 * handles (mp_process, mp_shm) belong to the process and thread that made
 * them.  The library installs no signal handlers.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <multiproc/version.h>

#if defined(MP_BUILDING_LIBRARY)
#define MP_EXTERN __attribute__((visibility("default")))
#else
#define MP_EXTERN
#endif

#ifdef __cplusplus
#define MP_BEGIN_DECLS extern "C" {
#define MP_END_DECLS }
#else
#define MP_BEGIN_DECLS
#define MP_END_DECLS
#endif

MP_BEGIN_DECLS

/* Block until the call can complete. */
#define MP_FOREVER (-1.0)

/* The longest finite timeout, in seconds (about 31.7 years); a longer
 * finite one is -EINVAL (see Time above), +INFINITY waits forever. */
#define MP_TIMEOUT_MAX 1e9

/* The library's own error codes.  Values are stable. */
#define MP_ECLOSED (-10001)  /* the queue or pipe was closed */
#define MP_EBROKEN (-10002)  /* the barrier is broken */
#define MP_EWORKER (-10003)  /* a pool worker died while running the task */
#define MP_ESTATE (-10004)   /* the object is not in a state for this call */

/* A short English sentence for any code this library returns (negative),
 * or for an errno value given either way.  Never NULL.
 * Safety: any thread; async-signal-safe. */
MP_EXTERN const char *mp_strerror(int err);

/* The code's symbolic name: "ETIMEDOUT", "MP_ECLOSED", ..., "OK" for 0,
 * "UNKNOWN" for anything else.  Safety: any thread; async-signal-safe. */
MP_EXTERN const char *mp_err_name(int err);

/* How many CPUs this process may run on (its affinity mask), at least 1. */
MP_EXTERN int mp_cpu_count(void);

/* The library's version, MP_VERSION_HEX of the build it runs. */
MP_EXTERN unsigned mp_version(void);

MP_END_DECLS

#endif
