/* SPDX-License-Identifier: MIT */
/*
 * Pool: worker processes that run map chunks and apply tasks, fed through
 * one shared-memory ring, and a parent that notices when a worker dies.
 *
 * DESIGN
 *
 * Shared state (struct pool_shared, one mp_shared_alloc block): a ring of
 * MP_POOL_MAX_JOBS job descriptors, indexed by job id (ids count from 1;
 * id % RING is the slot), and one slot per worker.  A job is a map (n
 * items in nchunks chunks) or an apply (one chunk); its inputs, outputs and
 * per-chunk records live in a separate shared block the submission
 * allocates, named by offsets from the pool's base.  Function pointers are
 * stored as they are: a fork worker has the parent's addresses, and a
 * forkserver or spawn worker translates them (xlate.c, in the worker).
 *
 * Claiming work: `pub` is the newest published job, `head` the oldest that
 * may have unclaimed chunks.  A worker publishes the job id it looks at in
 * its slot (a hazard), checks that the ring slot still holds that id, then
 * takes a chunk with one fetch-add on the job's `next` and records the
 * chunk in its slot before running it.  So a map costs one atomic
 * operation per chunk, never a system call per item.  Chunks are handed out
 * in submission order and, within a map, in index order (FIFO, no
 * priorities); any idle worker takes the next one, so a long chunk does not
 * hold up the others.
 *
 * Completion: the worker writes the chunk's record (first error, result
 * length) and then its `state` word (the commit), then bumps the job's
 * `ndone`.  The parent learns completion only from the state words (a
 * cursor over them), so a worker dying at any point never makes a chunk
 * look done twice or not at all; `ndone` is only a hint that tells a
 * worker whether the parent, waiting for the whole job, wants a wake-up.
 *
 * Blocking: an idle worker spins about 50 us, then sleeps on the futex
 * `work_seq` (an event count read before it looked for work, so a
 * submission between the look and the sleep is never missed); the parent
 * bumps it and wakes as many sleepers as there are new chunks.  The parent
 * waits by spinning about 20 us and then in poll(2) on an eventfd and the
 * workers' pidfds, after publishing what it waits for (`parent_waiting`,
 * `wait_id`, `wait_mode`).  A worker that completes a matching chunk and
 * sees the flag clears it and writes the eventfd: one system call per
 * parent sleep, none while the parent is busy.  A futex could not be polled
 * together with the pidfds, hence the eventfd.
 *
 * Worker death: a pidfd turns readable, the parent reaps the worker and
 * reads its slot.  The chunk it recorded fails with MP_EWORKER (every item
 * of it, in the per-item error array too); if it died between taking a
 * chunk and recording it (a window of a few instructions), the job is
 * marked suspect: once all its chunks are taken and no live worker looks at
 * it, every chunk still not done fails with MP_EWORKER; meanwhile the
 * parent polls in 10 ms slices.  A new worker replaces the dead one at
 * once, so the other chunks complete and the pool stays usable.  Where
 * pidfd_open does not exist (kernels before 5.3; valgrind 3.19, which
 * fails it with ENOSYS) a worker is watched without one: the parent's
 * waits sleep at most BLIND_SLICE_MS (10 ms) and then look whether such a
 * worker ended (waitid, WNOHANG), so a death is seen within 10 ms instead
 * of at once, and the pool works under valgrind.
 *
 * Retries (opts.retries): instead of failing a dead worker's chunk, the
 * parent appends (job id, chunk) to the redo queue, a ring in the shared
 * block that only the parent writes (at redo_tail) and workers claim from
 * with a CAS on redo_head, before any new chunk.  A worker publishes its
 * hazard on the job before the CAS, so a death right after it is seen as
 * for a normal claim; a suspect job is not swept while it has redo entries
 * nobody claimed yet.  The job keeps its ring slot until every chunk is
 * done, so an entry names a live job (a worker skips an entry whose job was
 * retired by terminate).  A chunk runs at most 1 + retries times.  Workers
 * that leave after maxtasksperchild tasks are replaced the same way, at the
 * next pool call.  Workers that keep dying before their initializer
 * returns break the pool (rather than respawn forever).
 *
 * Replacing a worker can fail (fork: EAGAIN under RLIMIT_NPROC, ENOMEM; no
 * descriptor for its pidfd).  The slot then stays empty and every pool
 * call, waits included, tries again on a schedule: the first retry 10 ms
 * after the failure, each later one twice as late, at most 1 s apart; a
 * wait with an empty slot sleeps no longer than the next retry.  After
 * SPAWN_TRIES failures in a row with no worker left at all, nothing would
 * ever run the pending tasks: the pool is broken, they fail with
 * MP_EBROKEN and so do later calls.  While some worker lives the pool
 * works, short-handed, and keeps retrying once a second.
 *
 * Task timeouts (opts.task_timeout): a worker stamps the time it took a
 * chunk in its slot (`started`, CLOCK_MONOTONIC, the same clock in every
 * process) and clears it when the chunk is done.  The parent looks at the
 * stamps in every pump and before every sleep: a chunk past the limit has
 * its worker killed (SIGKILL, the flag timed_out on our side), and the
 * death is handled as any other, except that the chunk fails with
 * -ETIMEDOUT (or goes to the redo queue under retries).  A sleep ends by
 * the earliest running chunk's limit, and at the latest one timeout from
 * now, since a chunk that starts while the parent sleeps does not wake it.
 * No thread and no timer: outside the pool calls nothing is enforced.
 *
 * Variable-size items (pool-bufs.c), handles and callbacks
 * (pool-async.c) and iterators and streams (pool-imap.c) build on this
 * file through pool-internal.h.
 *
 * Ring slots are retired when the parent sees their job complete; a slot
 * is reused only when no worker's hazard still names its old job.
 *
 * Only the creating process drives the pool, one thread at a time: the
 * parent-local bookkeeping (struct mp_pool, struct req) has no lock.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "futex.h"
#include "pool-internal.h"



/* A pool of nw workers, none started yet. */
static struct mp_pool *pool_alloc(int nw, const mp_pool_opts *opts)
{
	if (nw < 1 || nw > MAX_WORKERS || opts->retries > MAX_RETRIES ||
	    opts->start_method < MP_START_DEFAULT ||
	    opts->start_method > MP_START_SPAWN ||
	    !(opts->task_timeout >= 0) || opts->task_timeout > MP_TIMEOUT_MAX) {
		errno = EINVAL;
		return NULL;
	}
	struct mp_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->nworkers = nw;
	p->maxtasks = opts->maxtasksperchild;
	p->retries = opts->retries;
	p->start_method = opts->start_method ? opts->start_method
					     : mp_get_start_method();
	p->task_timeout = (int64_t)(opts->task_timeout * 1e9);
	if (opts->task_timeout > 0 && p->task_timeout < 1)
		p->task_timeout = 1;
	p->w = calloc((size_t)nw, sizeof(*p->w));
	p->wargs = calloc((size_t)nw, sizeof(*p->wargs));
	p->pfds = calloc((size_t)nw + 1, sizeof(*p->pfds));
	p->pfd_worker = calloc((size_t)nw + 1, sizeof(*p->pfd_worker));
	if (!p->w || !p->wargs || !p->pfds || !p->pfd_worker)
		goto err_free_local;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0)
		goto err_free_local;
	size_t size = sizeof(struct pool_shared) +
		      (size_t)nw * sizeof(struct wslot);
	struct pool_shared *s = mp_shared_alloc(size);
	if (!s)
		goto err_close_efd;
	s->magic = POOL_MAGIC;
	s->nworkers = (uint32_t)nw;
	s->efd = p->efd;
	p->s = s;
	mp__stage_init(p);
	atomic_store_explicit(&s->head, 1, memory_order_relaxed);
	atomic_store_explicit(&s->pub, 0, memory_order_release);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	bool crowded = ncpu > 0 && nw + 1 > ncpu;
	for (int i = 0; i < nw; i++) {
		p->w[i].pidfd = -1;
		p->wargs[i] = (struct warg){.s = s,
					    .index = (uint32_t)i,
					    .maxtasks = opts->maxtasksperchild,
					    .timed = p->task_timeout != 0,
					    .crowded = crowded,
					    .init = opts->initializer,
					    .initargs = opts->initargs};
	}
	return p;

err_close_efd:
	close(p->efd);
err_free_local: {
	int saved = errno ? errno : ENOMEM;
	free(p->w);
	free(p->wargs);
	free(p->pfds);
	free(p->pfd_worker);
	free(p);
	errno = saved;
	return NULL;
}
}

mp_pool *mp_pool_new_opts(const mp_pool_opts *opts)
{
	mp_pool_opts def = {0};
	if (!opts)
		opts = &def;
	struct mp_pool *p = pool_alloc(
		opts->processes ? opts->processes : mp_cpu_count(), opts);
	if (!p)
		return NULL;
	for (int i = 0; i < p->nworkers; i++) {
		int e = mp__spawn_worker(p, i);
		if (e) {
			mp__stop_workers(p, true);
			p->joined = true;
			mp_pool_free(p);
			errno = -e;
			return NULL;
		}
	}
	return p;
}

struct mp_pool *mp__pool_new_ops(int nworkers, const mp_pool_opts *opts,
				 const struct mp__pool_ops *ops, void *be)
{
	mp_pool_opts def = {0};
	if (!ops) {
		errno = EINVAL;
		return NULL;
	}
	struct mp_pool *p = pool_alloc(nworkers, opts ? opts : &def);
	if (!p)
		return NULL;
	p->ops = ops;
	p->be = be;
	return p;
}

mp_pool *mp_pool_new(int processes)
{
	if (processes < 0) {
		errno = EINVAL;
		return NULL;
	}
	mp_pool_opts o = {.processes = processes};
	return mp_pool_new_opts(&o);
}

int mp_pool_processes(const mp_pool *pool)
{
	return pool ? pool->nworkers : -EINVAL;
}

int mp_pool_worker_pids(const mp_pool *pool, pid_t *pids, int cap)
{
	if (!pool || (!pids && cap > 0))
		return -EINVAL;
	int k = 0;
	for (int i = 0; i < pool->nworkers && k < cap; i++)
		pids[k++] = pool->w[i].proc ? mp_process_pid(pool->w[i].proc)
					    : 0;
	return pool->nworkers;
}

static int map_common(mp_pool *p, mp_map_fn fn, const void *in,
		      size_t in_size, void *out, size_t out_size, int *errs,
		      size_t n, size_t chunksize)
{
	if (out_size && !out && n)
		return -EINVAL;
	/* A map is worth two poll(2) calls: reap and replace workers that
	 * died idle, before the work starts and after it ends. */
	if (p && !p->stopping)
		mp__check_workers(p);
	struct req *r;
	int e = mp__submit_map(p, fn, in, in_size, out, out_size, n,
			       chunksize, errs != NULL, true, &r);
	if (e)
		return e;
	e = mp__pool_wait(p, mp__cond_req, r, r->id, WAIT_ALL, MP__NEVER);
	if (e) /* cannot happen without a deadline */
		MP__FATAL("pool: map wait failed");
	if (!p->stopping)
		mp__check_workers(p);
	if (r->sh_out && r->sh_out != out) {
		mp__cow_prepare_overwrite(out, n * out_size);
		memcpy(out, r->sh_out, n * out_size);
	}
	if (errs)
		for (size_t i = 0; i < n; i++)
			errs[i] = r->errs[i];
	e = r->err;
	mp__stage_give(p, r, r->block_size);
	mp__req_release(r);
	mp__pool_dispatch(p);
	return e;
}

int mp_pool_map(mp_pool *pool, mp_map_fn fn, const void *in, size_t in_size,
		void *out, size_t out_size, size_t n, size_t chunksize)
{
	return map_common(pool, fn, in, in_size, out, out_size, NULL, n,
			  chunksize);
}

int mp_pool_map_errors(mp_pool *pool, mp_map_fn fn, const void *in,
		       size_t in_size, void *out, size_t out_size, int *errs,
		       size_t n, size_t chunksize)
{
	if (!errs && n)
		return -EINVAL;
	return map_common(pool, fn, in, in_size, out, out_size,
			  n ? errs : NULL, n, chunksize);
}

int mp_pool_close(mp_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pool->closed = true;
	return 0;
}

static bool cond_idle(struct mp_pool *p, void *ctx)
{
	(void)ctx;
	struct req *next;
	for (struct req *r = p->active; r; r = next) {
		next = r->next;
		if (!mp__req_poll(p, r))
			return false;
	}
	return true;
}

int mp_pool_join(mp_pool *pool)
{
	if (!pool)
		return -EINVAL;
	if (!pool->closed && !pool->terminated)
		return MP_ESTATE;
	if (pool->joined)
		return 0;
	if (!pool->stopping) {
		/* Wake for any completion: several jobs may be running. */
		mp__pool_wait(pool, cond_idle, NULL, 0, WAIT_ANY, MP__NEVER);
		mp__stop_workers(pool, false);
	}
	pool->joined = true;
	mp__pool_dispatch(pool);
	return 0;
}

int mp_pool_terminate(mp_pool *pool)
{
	if (!pool)
		return -EINVAL;
	pool->closed = true;
	if (pool->terminated)
		return 0;
	pool->terminated = true;
	mp__stop_workers(pool, true);
	mp__fail_all(pool, MP_ECLOSED);
	mp__pool_dispatch(pool);
	return 0;
}

void mp_pool_free(mp_pool *pool)
{
	if (!pool)
		return;
	if (pool->in_callback) /* the callback's caller still uses it */
		MP__FATAL("pool: mp_pool_free inside a callback");
	if (!pool->joined) {
		mp_pool_terminate(pool);
		mp_pool_join(pool);
	}
	/* Every request is finished now: handles no longer need the pool. */
	mp__fail_all(pool, MP_ECLOSED);
	mp__pool_dispatch(pool);
	mp__pool_forget_streams(pool);
	if (pool->ops)
		pool->ops->destroy(pool);
	mp__stage_free(pool);
	close(pool->efd);
	mp_shared_free(pool->s);
	free(pool->w);
	free(pool->wargs);
	free(pool->pfds);
	free(pool->pfd_worker);
	free(pool);
}
