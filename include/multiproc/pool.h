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

/* A map function: read one item at `in`, write one result at `out`.
 * Return 0, or non-zero for a failed item (the value is reported as is). */
typedef int (*mp_map_fn)(const void *in, void *out);

/* An apply function: `len` argument bytes in, at most `cap` result bytes
 * out.  Return the result's length (0..cap) or a negative error. */
typedef ssize_t (*mp_apply_fn)(const void *arg, size_t len, void *out,
			       size_t cap);

typedef struct mp_pool_opts {
	int processes;              /* 0 = mp_cpu_count() */
	void (*initializer)(void *arg); /* run once in each worker, or NULL */
	void *initargs;             /* its argument (copied by fork) */
	unsigned maxtasksperchild;  /* replace a worker after this many tasks
				       (a map chunk is a task); 0 = never */
	unsigned retries;           /* run a task whose worker died again, up
				       to this many times (0..100), before it
				       fails with MP_EWORKER.  Only for tasks
				       that are safe to run twice: the dead
				       run may have done part of its work.
				       0 = never (Python's behaviour, less
				       the hang) */
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
 * pidfds and an eventfd, after a short spin. */
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
 * terminated); -ETIMEDOUT; -EINVAL.  *index is SIZE_MAX when no item was
 * delivered, which tells an item error from a timeout.
 * Safety: the pool's process, one thread; blocks like mp_pool_map. */
MP_EXTERN int mp_imap_next(mp_imap *it, size_t *index, void *out,
			   double timeout_s);

/* Free the iterator; unfinished tasks still run, their results are dropped.
 * Valid after the pool was freed.  NULL is ignored. */
MP_EXTERN void mp_imap_free(mp_imap *it);

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
