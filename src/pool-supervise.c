/* SPDX-License-Identifier: MIT */
/*
 * The pool's worker supervision, parent side: starting workers, noticing
 * their deaths (pidfds) and what they held, redoing or failing those
 * chunks, respawning under a back-off, killing tasks past their
 * task_timeout, stopping the workers and breaking a pool that cannot go
 * on.  The design is described at the top of pool.c.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fault.h"
#include "futex.h"
#include "pool-internal.h"


/* ---- parent side: workers ---- */

int mp__spawn_worker(struct mp_pool *p, int i)
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
	int fd = MP__FAULT_FAILS("pool.no_pidfd") ? (errno = ENOSYS, -1)
						   : mp_process_sentinel(proc);
	if (fd < 0 && errno == ENOSYS) {
		/* No pidfds here (a kernel before 5.3, or valgrind 3.19,
		 * which does not know pidfd_open): watch it by polling. */
		p->nblind++;
	} else if (fd < 0) {
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
void mp__mark_failed(struct mp_pool *p, struct req *r, size_t c, int code)
{
	struct chunk_rec *rec = &r->recs[c];

	if (atomic_load_explicit(&rec->state, memory_order_acquire))
		return;
	size_t lo = c * r->chunksize;
	size_t hi = lo + r->chunksize < r->n ? lo + r->chunksize : r->n;
	if (r->errs)
		for (size_t i = lo; i < hi; i++)
			r->errs[i] = code;
	if (r->zero_out) /* it may never have run: see JOB_ZERO_OUT */
		memset(r->sh_out + lo * r->out_size, 0,
		       (hi - lo) * r->out_size);
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
bool mp__redo_push(struct mp_pool *p, struct req *r, size_t c)
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
void mp__respawn(struct mp_pool *p)
{
	if (!p->nmissing || p->stopping || p->broken)
		return;
	int64_t now = mp__now_ns();
	if (p->spawn_failures && now < p->spawn_retry_at)
		return;
	for (int i = 0; i < p->nworkers && p->nmissing; i++) {
		if (p->w[i].proc)
			continue;
		if (mp__spawn_worker(p, i) == 0) {
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
void mp__handle_death(struct mp_pool *p, int i)
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
	if (w->pidfd < 0)
		p->nblind--;
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
		if (!mp__redo_push(p, r, (size_t)(c1 - 1)))
			mp__mark_failed(p, r, (size_t)(c1 - 1), code);
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
	mp__respawn(p);
}

/* opts.task_timeout: kill the workers whose chunk ran past it (their
 * death is then handled as any other, with -ETIMEDOUT for the chunk).
 * Return: when the parent must look again: when the next running chunk
 * times out, and at the latest one timeout from now, since a chunk that
 * starts while the parent sleeps does not wake it (it cannot time out
 * before then); MP__NEVER without timeouts. */
int64_t mp__check_timeouts(struct mp_pool *p)
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

/* Each live worker's pidfd into p->pfds from slot n on (pfd_worker says
 * whose it is); the next free slot. */
int mp__watch_workers(struct mp_pool *p, int n)
{
	for (int i = 0; i < p->nworkers; i++) {
		if (!p->w[i].proc)
			continue;
		p->pfds[n].fd = p->w[i].pidfd;
		p->pfds[n].events = POLLIN;
		p->pfds[n].revents = 0;
		p->pfd_worker[n++] = i;
	}
	return n;
}

void mp__reap_blind(struct mp_pool *p)
{
	for (int i = 0; i < p->nworkers; i++)
		if (p->w[i].proc && p->w[i].pidfd < 0 &&
		    !mp_process_is_alive(p->w[i].proc))
			mp__handle_death(p, i);
}

/* Reap whatever workers ended, without waiting; respawn missing ones. */
void mp__check_workers(struct mp_pool *p)
{
	int n = 0;

	if (MP__UNLIKELY(p->ops)) {
		p->ops->pump(p);
		return;
	}
	mp__respawn(p);
	if (p->nblind)
		mp__reap_blind(p);
	n = mp__watch_workers(p, n);
	if (n == 0 || poll(p->pfds, (nfds_t)n, 0) <= 0)
		return;
	for (int k = 0; k < n; k++) /* a break may have reaped the rest */
		if (p->pfds[k].revents && p->w[p->pfd_worker[k]].proc)
			mp__handle_death(p, p->pfd_worker[k]);
}

/* ---- parent side: requests ---- */
void mp__fail_all(struct mp_pool *p, int code)
{
	struct req *next;

	for (struct req *r = p->active; r; r = next) {
		next = r->next;
		for (size_t c = r->scan; c < r->nchunks; c++)
			mp__mark_failed(p, r, c, code);
		mp__req_poll(p, r);
	}
}

void mp__stop_workers(struct mp_pool *p, bool kill_them)
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
		if (p->w[i].pidfd < 0)
			p->nblind--;
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
	mp__stop_workers(p, true);
	mp__fail_all(p, code);
}

