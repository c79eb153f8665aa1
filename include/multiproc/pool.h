/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_POOL_H
#define MULTIPROC_POOL_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Pool: worker processes that run tasks, as Python's multiprocessing.Pool,
 * except that it survives its workers dying.
 *
 * Who may call: the pool is driven by the process that created it, from one
 * thread at a time (the calls are not thread-safe; use your own mutex if
 * several threads share a pool).  Workers are forked from that process, so
 * task functions are plain function pointers: any function linked into the
 * program (or loaded before the pool was made) works; arguments travel as
 * bytes.  A pool inherited by a forked child is unusable there; do not call
 * it.  Workers are daemon processes: they die with the thread that made the
 * pool.
 *
 * The driver is the caller: there is no hidden thread.  Worker deaths are
 * noticed, and dead or retired workers replaced, inside the pool calls (every
 * wait, and every submission).  A task that a dead worker was running fails
 * with MP_EWORKER; the pool stays usable.  A replacement that cannot be
 * forked (EAGAIN under RLIMIT_NPROC, ENOMEM, no descriptor) is retried
 * inside the calls, 10 ms after the failure, then twice as late each time,
 * at most 1 s apart; with no worker left and 10 failures in a row (about
 * 3.3 s) the pool is broken: pending tasks fail with MP_EBROKEN, so do
 * later calls.
 *
 * Ordering: tasks start in submission order (a map's chunks in index order);
 * the pool holds at most MP_POOL_MAX_JOBS unfinished submissions, and a
 * submission beyond that waits for the oldest to finish.
 */
typedef struct mp_pool mp_pool;

/* Unfinished submissions (maps, applies) a pool holds at once. */
#define MP_POOL_MAX_JOBS 1024

/*
 * Task errors: a task (map, apply or buf function) returns 0 for success
 * or a negative error: a -errno value (-EINVAL, -ENOENT, ...) or a code of
 * your own below -20000 (clear of errno values and of the library's MP_E*
 * codes).  The value is reported as is, as the item's error and as the
 * map's result; mp_strerror() names errno values and MP_E* codes and says
 * "Unknown error" for your own.  A positive value also fails the item (and
 * is reported as is), but mp_strerror cannot name it: do not use one.
 */

/* A map function: read one item at `in`, write one result at `out`.
 * Return 0, or a negative error for a failed item (see Task errors). */
typedef int (*mp_map_fn)(const void *in, void *out);

/* An apply function: `len` argument bytes in, at most `cap` result bytes
 * out.  Return the result's length (0..cap) or a negative error. */
typedef ssize_t (*mp_apply_fn)(const void *arg, size_t len, void *out,
			       size_t cap);

typedef struct mp_pool_opts {
	int processes;              /* 0 = mp_cpu_count() */
	void (*initializer)(void *arg); /* run once in each worker, or NULL */
	void *initargs;             /* its argument (copied by fork; under
				       forkserver and spawn it must point
				       into the shared arena) */
	unsigned maxtasksperchild;  /* replace a worker after this many tasks
				       (a map chunk is a task); 0 = never */
	unsigned retries;           /* run a task whose worker died again, up
				       to this many times (0..100), before it
				       fails with MP_EWORKER.  Only for tasks
				       that are safe to run twice: the dead
				       run may have done part of its work.
				       0 = never (Python's behaviour, less
				       the hang) */
	double task_timeout;        /* seconds one task (a map chunk, an
				       apply) may run; 0 = no limit.  A
				       task that runs longer has its worker
				       killed (SIGKILL) and replaced; the
				       task fails with -ETIMEDOUT (each item
				       of the chunk), or runs again under
				       retries, as after a death.  Measured
				       from when the worker took the task,
				       on CLOCK_MONOTONIC, and enforced by
				       the parent inside its pool calls
				       (waits wake for it): while the
				       parent waits in a pool call, the
				       task fails a few ms after its limit
				       (poll(2)'s 1 ms rounding, scheduling,
				       the kill and reap: 2 to 5 ms on a
				       busy 2-CPU VM); else at the next pool
				       call.  Workers' initializers are not
				       timed.  NaN, < 0 or > MP_TIMEOUT_MAX:
				       EINVAL */
	int start_method;           /* MP_START_* for the workers (replacements
				       too); 0 = MP_START_DEFAULT, the
				       process-wide default when the pool is
				       made.  Under forkserver and spawn task
				       functions and the initializer are
				       found in the worker's image by
				       build-id and offset (a task whose
				       function the worker lacks fails with
				       -ENOENT); initargs is passed as a
				       pointer value (see mp_process_new).
				       Unknown: EINVAL */
} mp_pool_opts;

/* A pool of `processes` workers (0 = mp_cpu_count()), started now.
 * Return: the pool, owned by the caller (mp_pool_free), or NULL with errno
 * EINVAL (processes < 0 or > 4096), ENOMEM, or fork's errno.
 * Safety: any thread; forks. */
MP_EXTERN mp_pool *mp_pool_new(int processes);

/* The same with options (NULL = defaults; EINVAL also for retries > 100).
 * If the initializer crashes
 * every worker again and again, the pool gives up: it is broken, pending
 * tasks fail with MP_EWORKER and new ones with MP_EBROKEN. */
MP_EXTERN mp_pool *mp_pool_new_opts(const mp_pool_opts *opts);

/* Number of workers, and their pids now (fills up to cap; returns the
 * number of workers).  Return: count, or -EINVAL. */
MP_EXTERN int mp_pool_processes(const mp_pool *pool);
MP_EXTERN int mp_pool_worker_pids(const mp_pool *pool, pid_t *pids, int cap);

/* out[i] = fn(in[i]) for i < n: items of in_size bytes, results of
 * out_size bytes (either size may be 0, and the pointer NULL then).  Inputs
 * are copied into shared memory and results back, chunksize items per task
 * (0 = auto: ceil(n / (4 * workers)), Python's rule).  Blocks until every
 * item is done.
 * Return: 0; MP_EWORKER if a worker died running a chunk, as many times as
 * opts.retries allows and once more (its items' results are missing, every
 * other result is in out); else the error of the
 * lowest-index failed item (as Python raises the first exception; the
 * others are in out); -EINVAL (NULL pool or fn, NULL buffer with a size,
 * size overflow), -ENOMEM, MP_ESTATE (closed), MP_EBROKEN.  n = 0 returns 0.
 * Safety: the pool's process, one thread; blocks in poll(2) on the workers'
 * pidfds and an eventfd, after a short spin.
 * Memory: the pool keeps the shared block of its largest map so far (1 MiB
 * from its creation, pre-faulted in the workers; up to 16 MiB) for the
 * next, so a map pays no page faults for memory an earlier one used. */
MP_EXTERN int mp_pool_map(mp_pool *pool, mp_map_fn fn, const void *in,
			  size_t in_size, void *out, size_t out_size, size_t n,
			  size_t chunksize);

/* mp_pool_map that also stores each item's error in errs[i] (0 for
 * success, MP_EWORKER for the items of a chunk a dead worker held). */
MP_EXTERN int mp_pool_map_errors(mp_pool *pool, mp_map_fn fn, const void *in,
				 size_t in_size, void *out, size_t out_size,
				 int *errs, size_t n, size_t chunksize);

/*
 * imap / imap_unordered: an iterator over the results of a map, delivered
 * as they are ready, one call per item:
 *
 *     mp_imap *it = mp_pool_imap_unordered(pool, fn, in, sizeof(*in),
 *                                          sizeof(res), n, 0);
 *     size_t i;
 *     int r;
 *     while ((r = mp_imap_next(it, &i, &res, MP_FOREVER)) != MP_ECLOSED)
 *             ... item i: r is 0 or its error ...
 *     mp_imap_free(it);
 *
 * imap delivers in index order, imap_unordered in completion order (chunk
 * by chunk).  Inputs are copied at the call; the tasks run meanwhile.
 */
typedef struct mp_imap mp_imap;
typedef struct mp_buf mp_buf; /* below */
typedef struct mp_out mp_out;
typedef int (*mp_task_fn)(const void *in, size_t len, mp_out *out);

/* Return: the iterator (free with mp_imap_free), or NULL with errno EINVAL,
 * ENOMEM, or MP_ESTATE / MP_EBROKEN negated (errno = -MP_ESTATE...).
 * Safety: the pool's process, one thread; may wait if the pool is full. */
MP_EXTERN mp_imap *mp_pool_imap(mp_pool *pool, mp_map_fn fn, const void *in,
				size_t in_size, size_t out_size, size_t n,
				size_t chunksize);
MP_EXTERN mp_imap *mp_pool_imap_unordered(mp_pool *pool, mp_map_fn fn,
					  const void *in, size_t in_size,
					  size_t out_size, size_t n,
					  size_t chunksize);

/* The next result: copies it to out (out_size bytes; out may be NULL) and
 * sets *index (may be NULL) to its item.
 * Return: 0; the item's error (its fn's non-zero value, or MP_EWORKER) with
 * *index set; MP_ECLOSED once every item was delivered (or the pool was
 * terminated); -ETIMEDOUT; -EINVAL (also for a stream's iterator: use
 * mp_imap_next_buf).  *index is SIZE_MAX when no item was delivered, which
 * tells an item error from a timeout.
 * Safety: the pool's process, one thread; blocks like mp_pool_map. */
MP_EXTERN int mp_imap_next(mp_imap *it, size_t *index, void *out,
			   double timeout_s);

/* Free the iterator; unfinished tasks still run, their results are dropped.
 * Valid after the pool was freed.  NULL is ignored. */
MP_EXTERN void mp_imap_free(mp_imap *it);

/*
 * Streams: items come from a source function as the pool has room for
 * them, so memory stays bounded whatever the number of items:
 *
 *     static int next_line(void *ctx, mp_buf *item)   (1, 0 or < 0)
 *     ...
 *     mp_imap *it = mp_pool_imap_source(pool, task, next_line, &state, 0,
 *                                       true);
 *     mp_buf res;
 *     size_t i;
 *     int r;
 *     while ((r = mp_imap_next_buf(it, &i, &res, MP_FOREVER)) !=
 *            MP_ECLOSED) {
 *             ... r is 0 or item i's error (i is SIZE_MAX for a source
 *                 error or a timeout) ...
 *             free(res.data);
 *     }
 *     mp_imap_free(it);
 *
 * The window: the iterator calls the source (in the caller's thread,
 * inside mp_pool_imap_source and mp_imap_next_buf) only while fewer than
 * 2 * workers + 2 batches of chunksize items are in flight (submitted, not
 * yet being delivered) and their inputs hold fewer than
 * MP_POOL_STREAM_BYTES bytes.  So a stream holds at most
 * (2 * workers + 3) * chunksize items not yet delivered (the window and
 * the batch being delivered), about MP_POOL_STREAM_BYTES input bytes plus
 * two batches, and the results of those items, in the shared arena and
 * in the caller; 2,000,000 items of 16 bytes raise the peak resident
 * size by under 1 MiB (tests/test-pool-stream.c).  When the arena has no
 * room for the next item, the stream waits for a batch to be delivered
 * instead (the window is then what the arena holds); it fails with
 * -ENOMEM only for an item that does not fit with nothing else in flight.
 */

/* Return 1 with *item set to the next item (its data valid until the next
 * call), 0 when there are no more, or a negative error that ends the
 * stream. */
typedef int (*mp_source_fn)(void *ctx, mp_buf *item);

/* Input bytes in flight past which a stream stops calling its source. */
#define MP_POOL_STREAM_BYTES ((size_t)16 << 20)
/* The largest chunksize a stream takes. */
#define MP_POOL_STREAM_CHUNK_MAX ((size_t)1 << 16)

/* Run fn on every item of source, chunksize items per task (0: adaptive,
 * the first batch 64 items, each next one twice as many up to 1024, so
 * the window's bound above is that of chunksize 1024),
 * delivered in source order (ordered) or as batches finish.  Starts pulling
 * and submitting at once.
 * Return: the iterator (mp_imap_free), or NULL with errno EINVAL (NULL
 * pool, fn or source; chunksize > MP_POOL_STREAM_CHUNK_MAX), ENOMEM, or
 * -MP_ESTATE / -MP_EBROKEN.  Safety: as mp_pool_imap. */
MP_EXTERN mp_imap *mp_pool_imap_source(mp_pool *pool, mp_task_fn fn,
				       mp_source_fn source, void *ctx,
				       size_t chunksize, bool ordered);

/* The next result of a stream: out->data malloc()ed (NULL for an empty
 * result or a failed item), *index (may be NULL) its item's position in
 * the source's order.
 * Return: 0; the item's error, *index set; the source's error (or the
 * error that stopped a submission: -ENOMEM, MP_ESTATE after close or
 * terminate), once, after the items before it, *index SIZE_MAX; then
 * MP_ECLOSED; -ETIMEDOUT; -EINVAL (NULL it or out, an iterator not from
 * mp_pool_imap_source).  Safety: as mp_imap_next. */
MP_EXTERN int mp_imap_next_buf(mp_imap *it, size_t *index, mp_buf *out,
			       double timeout_s);

/*
 * apply_async / map_async: submit and get a handle; the handle is owned by
 * the caller (mp_async_free) and stays valid after the pool is freed.
 */
typedef struct mp_async mp_async;

/* Run fn(arg, len, out, result_cap) in a worker.  The argument bytes are
 * copied now; the result (at most result_cap bytes) waits in shared memory
 * for mp_async_get.
 * Return: the handle, or NULL with errno EINVAL, ENOMEM, or -MP_ESTATE
 * (closed) / -MP_EBROKEN.  Safety: as mp_imap. */
MP_EXTERN mp_async *mp_pool_apply_async(mp_pool *pool, mp_apply_fn fn,
					const void *arg, size_t len,
					size_t result_cap);

/* mp_pool_map without waiting: out must stay valid until the handle is
 * ready or freed; the results are in out once mp_async_ready() is true or
 * mp_async_wait/get returned 0. */
MP_EXTERN mp_async *mp_pool_map_async(mp_pool *pool, mp_map_fn fn,
				      const void *in, size_t in_size, void *out,
				      size_t out_size, size_t n,
				      size_t chunksize);

/* Whether the task finished (successfully or not).  Never blocks. */
MP_EXTERN bool mp_async_ready(mp_async *a);

/* Wait until ready.  Return: 0 (ready: not the task's result), -ETIMEDOUT,
 * -EINVAL.  Safety: the pool's process, one thread; blocks like map. */
MP_EXTERN int mp_async_wait(mp_async *a, double timeout_s);

/* Wait, then for an apply copy the result into buf.
 * Return: the result's length (apply) or 0 (map); the task's error (the
 * apply fn's negative value; for a map what mp_pool_map returns);
 * MP_EWORKER (the worker died); MP_EBROKEN (the pool broke before it ran:
 * no worker could be started); MP_ECLOSED (the pool was terminated or
 * freed before it ran); -EMSGSIZE (cap too small: nothing copied, ask
 * again); -ETIMEDOUT; -EINVAL.  May be called again. */
MP_EXTERN ssize_t mp_async_get(mp_async *a, void *buf, size_t cap,
			       double timeout_s);

/* Free the handle; a task still running goes on and its result is dropped.
 * NULL is ignored. */
MP_EXTERN void mp_async_free(mp_async *a);

/* apply_async + get + free: run one task and wait for it.  Return: as
 * mp_async_get, or the submission's error. */
MP_EXTERN ssize_t mp_pool_apply(mp_pool *pool, mp_apply_fn fn,
				const void *arg, size_t len, void *out,
				size_t cap);

/*
 * Variable-size items: mp_pool_map_bufs runs fn on each of n items of any
 * length (0 included) and collects results of any length:
 *
 *     static int upper(const void *in, size_t len, mp_out *out)
 *     {
 *             char buf[256];
 *             for (size_t k = 0; k < len; k += sizeof(buf)) {
 *                     size_t m = len - k < sizeof(buf) ? len - k
 *                                                      : sizeof(buf);
 *                     for (size_t i = 0; i < m; i++)
 *                             buf[i] = toupper(((const char *)in)[k + i]);
 *                     int e = mp_out_write(out, buf, m);
 *                     if (e)
 *                             return e;
 *             }
 *             return 0;
 *     }
 *
 * The items' bytes are copied into the shared arena (so data made after
 * the pool was created works; the workers map the arena from their fork)
 * and the results come back through it, with no system call per item.
 * The map is an ordered stream over the array (mp_pool_imap_source): the
 * inputs go in batches of chunksize items while the workers run the
 * earlier ones, so only a window of them is in the arena at a time and a
 * map of any total size works.
 */
struct mp_buf {
	void *data;
	size_t len;
};

/* free() each b[i].data and zero b[i] (NULL b is ignored). */
MP_EXTERN void mp_bufs_free(mp_buf *b, size_t n);

/* mp_out: where a task writes its result (opaque; valid during the task
 * only).  mp_task_fn: a task on one variable-size item: read len bytes at
 * in (never NULL, even for len 0), write the result with mp_out_write, in
 * as many pieces as you like.  Return 0 or a negative error (see Task
 * errors); a failed item's result is dropped. */

/* The most bytes one item's result may have: 16 MiB. */
#define MP_POOL_RESULT_MAX ((size_t)16 << 20)

/* Append len bytes to the task's result.  Return: 0; -EMSGSIZE when the
 * result would pass MP_POOL_RESULT_MAX, -ENOMEM when the arena is full:
 * then the item fails with that error whatever the task returns (later
 * writes fail the same way); -EINVAL (NULL out, or NULL data with len).
 * Safety: in the task that got out, while it runs. */
MP_EXTERN int mp_out_write(mp_out *out, const void *data, size_t len);

/* out[i] = fn(in[i]) for i < n; out[i].data is malloc()ed (free with
 * mp_bufs_free), NULL with len 0 for an empty result or a failed item.
 * errs (may be NULL) gets each item's error (0, the task's error, -EMSGSIZE,
 * -ENOMEM, -ETIMEDOUT, MP_EWORKER).  chunksize: items per batch, as
 * mp_pool_imap_source (0: the pool's choice; past
 * MP_POOL_STREAM_CHUNK_MAX taken as that).
 * Return: as mp_pool_map: 0; MP_EWORKER; the lowest-index item's error;
 * -EINVAL (NULL pool, fn, or in / out with n > 0, NULL data with a length,
 * lengths whose sum overflows), -ENOMEM (an item larger than the arena
 * can hold), MP_ESTATE, MP_EBROKEN.  Every
 * out[i] is set, also on failure.  n = 0 returns 0.
 * Safety: as mp_pool_map. */
MP_EXTERN int mp_pool_map_bufs(mp_pool *pool, mp_task_fn fn,
			       const mp_buf *in, size_t n, mp_buf *out,
			       int *errs, size_t chunksize);

/*
 * Completion callbacks, and waiting for many handles.  There is no hidden
 * thread: a callback runs in the caller's thread, at the end of a pool
 * call that noticed its handle finish (any wait, submission or poll on the
 * pool: mp_pool_map*, mp_imap_next*, mp_async_*, mp_pool_poll,
 * mp_pool_join, mp_pool_terminate, mp_pool_free), or at once in
 * mp_async_set_callback if the handle is ready.  Each callback runs exactly
 * once (the handle is ready, whatever its result: a killed worker's task,
 * a terminated pool's), unless its handle is freed first (that cancels
 * it).  A callback may call the pool again (submit, wait, free its own
 * handle); it must not call mp_pool_free (that aborts).
 */

/* Run cb(a, ctx) once, when a is ready (now if it is); replaces a callback
 * not run yet; cb NULL removes it.  Return: 0, -EINVAL. */
MP_EXTERN int mp_async_set_callback(mp_async *a,
				    void (*cb)(mp_async *a, void *ctx),
				    void *ctx);

/* Wait up to timeout_s for handles with a callback to finish, and run the
 * callbacks of those that did.  Returns at once when no handle with a
 * callback is unfinished.  Return: how many callbacks ran (0 when none was
 * ready in time), -EINVAL.  Safety: as mp_async_wait. */
MP_EXTERN int mp_pool_poll(mp_pool *pool, double timeout_s);

/* Wait until one of as[0..n) is ready (concurrent.futures'
 * FIRST_COMPLETED); all unfinished ones must come from the same pool.
 * Return: the lowest index of a ready handle, -ETIMEDOUT, -EINVAL (NULL as
 * or entry, n = 0, handles of two pools). */
MP_EXTERN int mp_async_wait_any(mp_async *const *as, size_t n,
				double timeout_s);

/*
 * No starmap: in C an item is already any struct, so a map over structs is
 * what starmap is in Python.
 */

/* No more submissions (Python's close()); running tasks go on.
 * Return: 0, -EINVAL. */
MP_EXTERN int mp_pool_close(mp_pool *pool);

/* After close: wait for every task, then for the workers to exit.  After
 * terminate: reap the workers.  Return: 0, -EINVAL, MP_ESTATE (neither
 * closed nor terminated).  Safety: the pool's process; blocks. */
MP_EXTERN int mp_pool_join(mp_pool *pool);

/* Kill the workers now (SIGKILL) and reap them; unfinished tasks fail with
 * MP_ECLOSED.  Return: 0, -EINVAL. */
MP_EXTERN int mp_pool_terminate(mp_pool *pool);

/* Free the pool.  With work in flight it terminates first (unfinished tasks
 * fail with MP_ECLOSED, handles and iterators stay valid to read and free);
 * after close+join it only frees.  No worker stays behind, none as a zombie.
 * NULL is ignored. */
MP_EXTERN void mp_pool_free(mp_pool *pool);

MP_END_DECLS

#endif
