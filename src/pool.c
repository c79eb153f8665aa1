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
 * once, so the other chunks complete and the pool stays usable.
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

/* ---- parent side: workers ---- */

static int spawn(struct mp_pool *p, int i)
{
	struct worker *w = &p->w[i];
	mp_process *proc = mp__worker_process(p, i);

	if (!proc)
		return -errno;
	mp_process_set_daemon(proc, true);
	int r = mp_process_start(proc);
	if (r) {
		mp_process_free(proc);
		return r;
	}
	int fd = mp_process_sentinel(proc);
	if (fd < 0) {
		/* Without its pidfd we could not see it die: give up on it. */
		r = -errno;
		mp_process_kill(proc);
		mp_process_join(proc, MP_FOREVER);
		mp_process_free(proc);
		return r;
	}
	w->proc = proc;
	w->pidfd = fd;
	return 0;
}

/* Mark chunk c of r done with `code` (the parent does this only for
 * chunks no live worker runs). */
static void mark_failed(struct mp_pool *p, struct req *r, size_t c, int code)
{
	struct chunk_rec *rec = &r->recs[c];

	if (atomic_load_explicit(&rec->state, memory_order_acquire))
		return;
	size_t lo = c * r->chunksize;
	size_t hi = lo + r->chunksize < r->n ? lo + r->chunksize : r->n;
	if (r->errs)
		for (size_t i = lo; i < hi; i++)
			r->errs[i] = code;
	rec->err = code;
	rec->value = (int64_t)lo;
	atomic_store_explicit(&rec->state, 1, memory_order_release);
	if (code == MP_EWORKER)
		r->lost++;
	if (code == MP_EBROKEN)
		r->broken = true;
	if (!r->finished)
		atomic_fetch_add_explicit(&p->s->ring[r->id % RING].ndone, 1,
					  memory_order_relaxed);
}

static struct req *req_of(struct mp_pool *p, uint64_t id)
{
	struct req *r = id ? p->slot_req[id % RING] : NULL;

	return r && r->id == id && !r->finished ? r : NULL;
}

static void set_suspect(struct mp_pool *p, struct req *r)
{
	if (!r->suspect) {
		r->suspect = true;
		p->nsuspect++;
	}
}

/* Queue chunk c of r to run again, if the pool retries and c has tries
 * left.  Return: whether it was queued (else the caller fails it). */
static bool redo_push(struct mp_pool *p, struct req *r, size_t c)
{
	struct pool_shared *s = p->s;

	if (!p->retries || p->stopping || p->broken)
		return false;
	if (!r->tries && !(r->tries = calloc(r->nchunks, 1)))
		return false;
	uint64_t t = atomic_load_explicit(&s->redo_tail, memory_order_relaxed);
	if (r->tries[c] >= p->retries ||
	    t - atomic_load_explicit(&s->redo_head, memory_order_acquire) >=
		    REDO_CAP)
		return false;
	r->tries[c]++;
	atomic_store_explicit(&s->redo[t % REDO_CAP].id, r->id,
			      memory_order_relaxed);
	atomic_store_explicit(&s->redo[t % REDO_CAP].chunk, c,
			      memory_order_relaxed);
	atomic_store_explicit(&s->redo_tail, t + 1, memory_order_seq_cst);
	r->redo_last = t + 1;
	atomic_fetch_add_explicit(&s->work_seq, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&s->sleepers, memory_order_seq_cst))
		mp__futex_wake(&s->work_seq, 1);
	return true;
}

static void break_pool(struct mp_pool *p, int code);

/* Fill the empty worker slots, unless the last failure is too recent;
 * break the pool after too many failures with no worker left (see
 * DESIGN). */
static void respawn(struct mp_pool *p)
{
	if (!p->nmissing || p->stopping || p->broken)
		return;
	int64_t now = mp__now_ns();
	if (p->spawn_failures && now < p->spawn_retry_at)
		return;
	for (int i = 0; i < p->nworkers && p->nmissing; i++) {
		if (p->w[i].proc)
			continue;
		if (spawn(p, i) == 0) {
			p->nmissing--;
			p->spawn_failures = 0;
			continue;
		}
		p->spawn_failures++;
		if (p->spawn_failures >= SPAWN_TRIES &&
		    p->nmissing == p->nworkers) {
			break_pool(p, MP_EBROKEN);
			return;
		}
		int64_t gap = SPAWN_RETRY_NS;
		for (unsigned k = 1; k < p->spawn_failures &&
				     gap < SPAWN_RETRY_MAX_NS; k++)
			gap *= 2;
		if (gap > SPAWN_RETRY_MAX_NS)
			gap = SPAWN_RETRY_MAX_NS;
		p->spawn_retry_at = now + gap;
		return;
	}
}

/* Worker i ended (its pidfd is readable): reap it, fail what it held,
 * replace it. */
static void handle_death(struct mp_pool *p, int i)
{
	struct worker *w = &p->w[i];
	struct wslot *ws = &p->s->slots[i];

	/* Killed for its task's time: the task fails as timed out, unless
	 * the chunk it held is not the one that ran too long (that one
	 * ended, and the worker took the next, as the kill was sent). */
	int64_t t0 = atomic_load_explicit(&ws->started, memory_order_acquire);
	int code = MP_EWORKER;
	if (w->timed_out && t0 == w->killed_stamp)
		code = -ETIMEDOUT;

	if (w->timed_out)
		p->nkilled--;
	mp_process_join(w->proc, MP_FOREVER);
	mp_process_free(w->proc);
	w->proc = NULL;
	w->pidfd = -1;
	w->timed_out = false;
	p->nmissing++;

	uint32_t st = atomic_load_explicit(&ws->state, memory_order_acquire);
	uint64_t id = atomic_load_explicit(&ws->job, memory_order_acquire);
	uint64_t c1 = atomic_load_explicit(&ws->chunk, memory_order_acquire);
	struct req *r = req_of(p, id);
	mp__bufs_drop_dead(p->s, ws, r, c1);
	if (r && c1 && c1 <= r->nchunks &&
	    !atomic_load_explicit(&r->recs[c1 - 1].state,
				  memory_order_acquire)) {
		if (!redo_push(p, r, (size_t)(c1 - 1)))
			mark_failed(p, r, (size_t)(c1 - 1), code);
	} else if (r)
		set_suspect(p, r); /* see DESIGN: a chunk may be unaccounted */
	if (atomic_load_explicit(&ws->asleep, memory_order_relaxed))
		atomic_fetch_sub_explicit(&p->s->sleepers, 1,
					  memory_order_relaxed);
	atomic_store_explicit(&ws->asleep, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->job, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->chunk, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->started, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->state, W_STARTING, memory_order_release);

	if (st == W_RETIRING)
		p->retired_seen++;
	else if (st == W_STARTING)
		p->init_failures++;
	else
		p->init_failures = 0;
	if (p->stopping || p->broken)
		return;
	if (p->init_failures >= 3 * (unsigned)p->nworkers + 3) {
		break_pool(p, MP_EWORKER);
		return;
	}
	respawn(p);
}

/* opts.task_timeout: kill the workers whose chunk ran past it (their
 * death is then handled as any other, with -ETIMEDOUT for the chunk).
 * Return: when the parent must look again: when the next running chunk
 * times out, and at the latest one timeout from now, since a chunk that
 * starts while the parent sleeps does not wake it (it cannot time out
 * before then); MP__NEVER without timeouts. */
static int64_t check_timeouts(struct mp_pool *p)
{
	if (!p->task_timeout || p->stopping)
		return MP__NEVER;
	int64_t now = mp__now_ns();
	int64_t next = now + p->task_timeout;
	for (int i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->w[i];
		if (!w->proc || w->timed_out)
			continue;
		int64_t t0 = atomic_load_explicit(&p->s->slots[i].started,
						  memory_order_acquire);
		if (!t0)
			continue;
		int64_t end = t0 + p->task_timeout;
		if (now >= end) {
			w->timed_out = true;
			w->killed_stamp = t0;
			p->nkilled++;
			mp_process_kill(w->proc);
		} else if (end < next) {
			next = end;
		}
	}
	return next;
}

/* Reap whatever workers ended, without waiting; respawn missing ones. */
void mp__check_workers(struct mp_pool *p)
{
	int n = 0;

	if (MP__UNLIKELY(p->ops)) {
		p->ops->pump(p);
		return;
	}
	respawn(p);
	for (int i = 0; i < p->nworkers; i++) {
		if (!p->w[i].proc)
			continue;
		p->pfds[n].fd = p->w[i].pidfd;
		p->pfds[n].events = POLLIN;
		p->pfds[n].revents = 0;
		p->pfd_worker[n++] = i;
	}
	if (n == 0 || poll(p->pfds, (nfds_t)n, 0) <= 0)
		return;
	for (int k = 0; k < n; k++) /* a break may have reaped the rest */
		if (p->pfds[k].revents && p->w[p->pfd_worker[k]].proc)
			handle_death(p, p->pfd_worker[k]);
}

/* ---- parent side: requests ---- */

static void req_unlink(struct mp_pool *p, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else if (p->active == r)
		p->active = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

void mp__req_release(struct req *r)
{
	if (r->kind == JOB_BUFS)
		mp__bufs_release(r);
	if (r->kind == JOB_STREAM)
		mp__stream_release(r);
	mp_shared_free(r->block);
	free(r->tries);
	free(r->holes);
	free(r);
}

static void req_finish(struct mp_pool *p, struct req *r)
{
	r->finished = true;
	if (p->slot_req[r->id % RING] == r) {
		atomic_store_explicit(&p->s->ring[r->id % RING].id, 0,
				      memory_order_seq_cst);
		p->slot_req[r->id % RING] = NULL;
	}
	if (r->suspect) {
		r->suspect = false;
		p->nsuspect--;
	}
	req_unlink(p, r);
	if (r->kind == JOB_APPLY) {
		r->err = r->recs[0].err;
		r->len = (ssize_t)r->recs[0].value;
	} else if (r->broken) {
		r->err = MP_EBROKEN;
	} else if (r->lost) {
		r->err = MP_EWORKER;
	} else {
		r->err = 0;
		for (size_t c = 0; c < r->nchunks; c++) {
			if (r->recs[c].err) {
				r->err = r->recs[c].err;
				break;
			}
		}
	}
	if (r->user_out && r->sh_out && r->user_out != r->sh_out)
		memcpy(r->user_out, r->sh_out, r->n * r->out_size);
	if (r->orphan) {
		mp__req_release(r);
	} else if (r->cb) {
		/* Run at the end of the pool call (mp__pool_dispatch), where
		 * a callback may call the pool again. */
		r->cb_queued = true;
		r->cb_next = NULL;
		if (p->cbq_tail)
			p->cbq_tail->cb_next = r;
		else
			p->cbq = r;
		p->cbq_tail = r;
	}
}

/* Whether every chunk of r is done; finishes r the first time. */
bool mp__req_poll(struct mp_pool *p, struct req *r)
{
	if (r->finished)
		return true;
	while (r->scan < r->nchunks &&
	       atomic_load_explicit(&r->recs[r->scan].state,
				    memory_order_acquire))
		r->scan++;
	if (r->scan < r->nchunks)
		return false;
	req_finish(p, r);
	return true;
}

/* A suspect job is settled once all its chunks were taken and no live
 * worker looks at it: what is not done then was lost with its worker. */
static void sweep(struct mp_pool *p, struct req *r)
{
	struct job *j = &p->s->ring[r->id % RING];

	if (atomic_load_explicit(&j->next, memory_order_acquire) < r->nchunks)
		return;
	/* Entries for r still queued: a worker will claim them. */
	if (atomic_load_explicit(&p->s->redo_head, memory_order_seq_cst) <
	    r->redo_last)
		return;
	for (int i = 0; i < p->nworkers; i++)
		if (p->w[i].proc && atomic_load_explicit(&p->s->slots[i].job,
							 memory_order_seq_cst) ==
					    r->id)
			return;
	for (size_t c = r->scan; c < r->nchunks; c++)
		if (atomic_load_explicit(&r->recs[c].state,
					 memory_order_acquire) == 0 &&
		    !redo_push(p, r, c))
			mark_failed(p, r, c, MP_EWORKER);
	r->suspect = false;
	p->nsuspect--;
	mp__req_poll(p, r);
}

void mp__pool_pump(struct mp_pool *p)
{
	if (MP__UNLIKELY(p->ops)) {
		p->ops->pump(p);
		return;
	}
	check_timeouts(p);
	/* A worker killed for its time is reaped here too, so a caller that
	 * only polls (mp_async_ready) sees its task fail. */
	if (p->nkilled ||
	    atomic_load_explicit(&p->s->retired, memory_order_acquire) !=
		    p->retired_seen)
		mp__check_workers(p);
	else if (p->nmissing)
		respawn(p);
	if (p->nsuspect) {
		struct req *next;
		for (struct req *r = p->active; r; r = next) {
			next = r->next;
			if (r->suspect)
				sweep(p, r);
		}
	}
}

/* Wait until cond(p, ctx) holds, reaping and replacing dead workers. */
int mp__pool_wait(struct mp_pool *p, bool (*cond)(struct mp_pool *, void *),
		  void *ctx, uint64_t wait_id, int mode,
		  mp__deadline deadline)
{
	struct pool_shared *s = p->s;
	bool spun = false;

	if (MP__UNLIKELY(p->ops))
		return p->ops->wait(p, cond, ctx, deadline);
	for (;;) {
		mp__pool_pump(p);
		if (cond(p, ctx))
			return 0;
		if (!spun) {
			spun = true;
			int64_t end = mp__now_ns() + PARENT_SPIN_NS;
			if (end > deadline)
				end = deadline;
			for (unsigned i = 1;; i++) {
				if (cond(p, ctx))
					return 0;
				cpu_relax();
				if ((i & 31) == 0 && mp__now_ns() >= end)
					break;
			}
		}
		if (deadline != MP__NEVER && mp__now_ns() >= deadline)
			return -ETIMEDOUT;
		atomic_store_explicit(&s->wait_id, wait_id,
				      memory_order_relaxed);
		atomic_store_explicit(&s->wait_mode, (uint32_t)mode,
				      memory_order_relaxed);
		atomic_store_explicit(&s->parent_waiting, 1,
				      memory_order_seq_cst);
		atomic_thread_fence(memory_order_seq_cst);
		if (cond(p, ctx)) {
			atomic_store_explicit(&s->parent_waiting, 0,
					      memory_order_relaxed);
			return 0;
		}
		int n = 0;
		p->pfds[n].fd = p->efd;
		p->pfds[n].events = POLLIN;
		p->pfds[n++].revents = 0;
		for (int i = 0; i < p->nworkers; i++) {
			if (!p->w[i].proc)
				continue;
			p->pfds[n].fd = p->w[i].pidfd;
			p->pfds[n].events = POLLIN;
			p->pfds[n].revents = 0;
			p->pfd_worker[n++] = i;
		}
		int ms = mp__remaining_ms(deadline);
		if (p->nsuspect && (ms < 0 || ms > SUSPECT_SLICE_MS))
			ms = SUSPECT_SLICE_MS;
		if (p->nmissing && p->spawn_failures && !p->stopping &&
		    !p->broken) {
			/* Wake for the next respawn (see DESIGN). */
			int retry = mp__remaining_ms(p->spawn_retry_at);
			if (ms < 0 || ms > retry)
				ms = retry;
		}
		int64_t tmo = check_timeouts(p);
		if (tmo != MP__NEVER) {
			/* Wake when the oldest running chunk times out. */
			int left = mp__remaining_ms(tmo);
			if (ms < 0 || ms > left)
				ms = left;
		}
		int r = poll(p->pfds, (nfds_t)n, ms);
		atomic_store_explicit(&s->parent_waiting, 0,
				      memory_order_relaxed);
		if (r <= 0)
			continue;
		if (p->pfds[0].revents) {
			uint64_t v;
			ssize_t got = read(p->efd, &v, sizeof(v));
			(void)got;
		}
		for (int k = 1; k < n; k++)
			if (p->pfds[k].revents && p->w[p->pfd_worker[k]].proc)
				handle_death(p, p->pfd_worker[k]);
	}
}

bool mp__cond_req(struct mp_pool *p, void *ctx)
{
	return mp__req_poll(p, ctx);
}

static bool cond_slot_free(struct mp_pool *p, void *ctx)
{
	uint64_t old = *(uint64_t *)ctx;
	struct req *r = p->slot_req[old % RING];

	return !r || mp__req_poll(p, r);
}

/* Fail every unfinished chunk with code and finish every request. */
static void fail_all(struct mp_pool *p, int code)
{
	struct req *next;

	for (struct req *r = p->active; r; r = next) {
		next = r->next;
		for (size_t c = r->scan; c < r->nchunks; c++)
			mark_failed(p, r, c, code);
		mp__req_poll(p, r);
	}
}

static void stop_workers(struct mp_pool *p, bool kill_them)
{
	p->stopping = true;
	if (MP__UNLIKELY(p->ops)) { /* remote workers: cannot be killed */
		p->ops->stop(p);
		return;
	}
	atomic_store_explicit(&p->s->stop, 1, memory_order_seq_cst);
	atomic_fetch_add_explicit(&p->s->work_seq, 1, memory_order_seq_cst);
	mp__futex_wake(&p->s->work_seq, INT32_MAX);
	for (int i = 0; i < p->nworkers; i++)
		if (kill_them && p->w[i].proc)
			mp_process_kill(p->w[i].proc);
	for (int i = 0; i < p->nworkers; i++) {
		if (!p->w[i].proc)
			continue;
		mp_process_join(p->w[i].proc, MP_FOREVER);
		mp_process_free(p->w[i].proc);
		p->w[i].proc = NULL;
		p->w[i].pidfd = -1;
		if (p->w[i].timed_out)
			p->nkilled--;
		p->w[i].timed_out = false;
		struct wslot *ws = &p->s->slots[i];
		uint64_t id = atomic_load_explicit(&ws->job,
						   memory_order_acquire);
		mp__bufs_drop_dead(p->s, ws, req_of(p, id),
				   atomic_load_explicit(&ws->chunk,
							memory_order_acquire));
	}
}

/* Give up on the pool: unfinished tasks fail with `code` (MP_EWORKER when
 * the workers kept dying, MP_EBROKEN when none could be started). */
static void break_pool(struct mp_pool *p, int code)
{
	p->broken = true;
	stop_workers(p, true);
	fail_all(p, code);
}

int mp__submit_check(struct mp_pool *p)
{
	if (p->broken)
		return MP_EBROKEN;
	if (p->closed)
		return MP_ESTATE;
	return 0;
}

/* Publish r as the next job.  Waits while the ring is full. */
int mp__publish(struct mp_pool *p, struct req *r, uintptr_t fn)
{
	struct pool_shared *s = p->s;
	uint64_t id = p->pub + 1;
	uint64_t old = id > RING ? id - RING : 0;

	if (MP__UNLIKELY(p->ops)) {
		int e = p->ops->prepare(p, r, fn);
		if (e)
			return e;
	}
	mp__pool_pump(p);
	if (p->slot_req[id % RING]) {
		int e = mp__pool_wait(p, cond_slot_free, &old, old, WAIT_ALL,
				  MP__NEVER);
		if (e)
			return e;
		if (p->broken)
			return MP_EBROKEN;
	}
	/* A worker may still hold a hazard on the old job for a moment. */
	for (int i = 0; i < p->nworkers && !p->ops; i++) {
		while (old && p->w[i].proc &&
		       atomic_load_explicit(&s->slots[i].job,
					    memory_order_seq_cst) == old) {
			sched_yield();
			mp__check_workers(p);
		}
	}
	struct job *j = &s->ring[id % RING];
	j->kind = (uint32_t)r->kind;
	j->fn = fn;
	j->n = r->n;
	j->chunksize = r->chunksize;
	j->nchunks = r->nchunks;
	j->in_size = r->in_size;
	j->out_size = r->out_size;
	j->in_off = off_of(s, r->sh_in);
	j->out_off = off_of(s, r->sh_out);
	j->recs_off = off_of(s, r->recs);
	j->errs_off = off_of(s, r->errs);
	j->items_off = off_of(s, r->items);
	j->blks_off = off_of(s, r->blks);
	atomic_store_explicit(&j->next, 0, memory_order_relaxed);
	atomic_store_explicit(&j->ndone, 0, memory_order_relaxed);
	atomic_store_explicit(&j->id, id, memory_order_release);
	r->id = id;
	r->pool = p;
	r->prev = NULL;
	r->next = p->active;
	if (p->active)
		p->active->prev = r;
	p->active = r;
	p->slot_req[id % RING] = r;
	p->pub = id;
	if (MP__UNLIKELY(p->ops)) {
		r->fn = fn;
		p->ops->submit(p, r);
		return 0;
	}
	atomic_store_explicit(&s->pub, id, memory_order_release);
	atomic_fetch_add_explicit(&s->work_seq, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&s->sleepers, memory_order_seq_cst)) {
		size_t k = r->nchunks < (size_t)p->nworkers
				   ? r->nchunks
				   : (size_t)p->nworkers;
		mp__futex_wake(&s->work_seq, (int)k);
	}
	return 0;
}

/* Submit a map.  Return: 0 and *out_r, or an error. */
size_t mp__auto_chunksize(struct mp_pool *p, size_t n)
{
	size_t parts = 4 * (size_t)p->nworkers;

	return n ? (n + parts - 1) / parts : 1;
}

int mp__submit_map(struct mp_pool *p, mp_map_fn fn, const void *in,
		   size_t in_size, void *user_out, size_t out_size, size_t n,
		   size_t chunksize, bool want_errs, bool staged,
		   struct req **out_r)
{
	if (!p || !fn || (in_size && !in && n))
		return -EINVAL;
	int e = mp__submit_check(p);
	if (e)
		return e;
	if (chunksize == 0)
		chunksize = mp__auto_chunksize(p, n);
	size_t nchunks = n ? (n - 1) / chunksize + 1 : 0;
	size_t recs_sz = mul_add(nchunks, sizeof(struct chunk_rec), 0);
	size_t errs_sz = want_errs ? mul_add(n, sizeof(int32_t), 0) : 0;
	size_t in_sz = mul_add(n, in_size, 0);
	size_t out_sz = mul_add(n, out_size, 0);
	if (recs_sz == SIZE_MAX || errs_sz == SIZE_MAX || in_sz == SIZE_MAX ||
	    out_sz == SIZE_MAX)
		return -EINVAL;
	/* The local back end's workers see only the shared block, so
	 * inputs and results go through it (map_common copies the results
	 * out).  Another back end's messages come from and land in the
	 * caller's arrays: a synchronous map's input as it is, results in
	 * out (sync map or map_async). */
	const char *direct_in = p->ops && staged ? in : NULL;
	if (!p->ops && staged)
		user_out = NULL;
	size_t blk_in = direct_in ? 0 : in_sz;
	size_t blk_out = p->ops && user_out ? 0 : out_sz;
	size_t total = align16(recs_sz) + align16(errs_sz) + align16(blk_in);
	if (total > SIZE_MAX / 2 - blk_out)
		return -EINVAL;
	total += blk_out;

	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = JOB_MAP;
	r->n = n;
	r->chunksize = chunksize;
	r->nchunks = nchunks;
	r->in_size = in_size;
	r->out_size = out_size;
	r->user_out = user_out;
	r->cur = r->cur_end = 0;
	r->block_size = total;
	if (total && staged && (r->block = mp__stage_take(p, total))) {
		/* Reused: zero what the workers do not overwrite. */
		memset(r->block, 0, align16(recs_sz) + align16(errs_sz));
		if (blk_out)
			memset((char *)r->block + total - blk_out, 0, blk_out);
	} else if (total) {
		r->block = mp_shared_alloc(total);
		if (!r->block && mp__stage_drop_idle(p))
			r->block = mp_shared_alloc(total);
		if (!r->block) {
			free(r);
			return -ENOMEM;
		}
	}
	char *b = r->block;
	r->recs = (struct chunk_rec *)b;
	b += align16(recs_sz);
	r->errs = want_errs ? (int32_t *)b : NULL;
	b += align16(errs_sz);
	r->sh_in = blk_in ? b : (char *)direct_in;
	b += align16(blk_in);
	r->sh_out = blk_out ? b : out_sz ? user_out : NULL;
	if (blk_in)
		memcpy(r->sh_in, in, in_sz);
	if (nchunks == 0) {
		r->finished = true;
		*out_r = r;
		return 0;
	}
	e = mp__publish(p, r, (uintptr_t)fn);
	if (e) {
		mp__req_release(r);
		return e;
	}
	*out_r = r;
	return 0;
}

/* ---- public API ---- */

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
		int e = spawn(p, i);
		if (e) {
			stop_workers(p, true);
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
	if (r->sh_out && r->sh_out != out)
		memcpy(out, r->sh_out, n * out_size);
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
		stop_workers(pool, false);
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
	stop_workers(pool, true);
	fail_all(pool, MP_ECLOSED);
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
	fail_all(pool, MP_ECLOSED);
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
