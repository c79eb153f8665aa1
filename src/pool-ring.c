/* SPDX-License-Identifier: MIT */
/*
 * The pool's task transport over the shared ring, parent side: the
 * requests (struct req) from publication to their last chunk, taking in
 * completions (pump, sweep), the parent's waits (spin, then sleep on the
 * eventfd with the workers' pidfds and the task timer) and submitting
 * maps.  The design is described at the top of pool.c.
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

void mp__req_finish(struct mp_pool *p, struct req *r)
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
	if (r->user_out && r->sh_out && r->user_out != r->sh_out) {
		mp__cow_prepare_overwrite(r->user_out, r->n * r->out_size);
		memcpy(r->user_out, r->sh_out, r->n * r->out_size);
	}
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
	mp__req_finish(p, r);
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
		    !mp__redo_push(p, r, c))
			mp__mark_failed(p, r, c, MP_EWORKER);
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
	mp__check_timeouts(p);
	/* A worker killed for its time is reaped here too, so a caller that
	 * only polls (mp_async_ready) sees its task fail. */
	if (p->nkilled ||
	    atomic_load_explicit(&p->s->retired, memory_order_acquire) !=
		    p->retired_seen)
		mp__check_workers(p);
	else if (p->nmissing)
		mp__respawn(p);
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
		n = mp__watch_workers(p, n);
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
		if (p->nblind && (ms < 0 || ms > BLIND_SLICE_MS))
			ms = BLIND_SLICE_MS;
		int64_t tmo = mp__check_timeouts(p);
		if (tmo != MP__NEVER) {
			/* Wake when the oldest running chunk times out. */
			int left = mp__remaining_ms(tmo);
			if (ms < 0 || ms > left)
				ms = left;
		}
		int r = poll(p->pfds, (nfds_t)n, ms);
		atomic_store_explicit(&s->parent_waiting, 0,
				      memory_order_relaxed);
		if (p->nblind)
			mp__reap_blind(p);
		if (r <= 0)
			continue;
		if (p->pfds[0].revents) {
			uint64_t v;
			ssize_t got = read(p->efd, &v, sizeof(v));
			(void)got;
		}
		for (int k = 1; k < n; k++)
			if (p->pfds[k].revents && p->w[p->pfd_worker[k]].proc)
				mp__handle_death(p, p->pfd_worker[k]);
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
	j->flags = (r->zero_out ? JOB_ZERO_OUT : 0) |
		   (r->nt_out && !p->ops ? JOB_NT_OUT : 0);
	j->fn = fn;
	j->n = r->n;
	j->chunksize = r->chunksize;
	j->nchunks = r->nchunks;
	j->in_size = r->in_size;
	j->out_size = r->out_size;
	j->in_off = off_of(s, r->sh_in);
	/* a JOB_BUFS job has no fixed-size results: its out_off names the
	 * per-item result records instead */
	j->out_off = off_of(s, r->kind == JOB_BUFS ? (void *)r->outs
						   : (void *)r->sh_out);
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
	/* The local back end's workers zero each chunk's results as they
	 * take it (JOB_ZERO_OUT): the parent zeroes only the records and
	 * errors, not the results, which was most of a cold map's time (its
	 * page faults and zeroing in the parent, one CPU, then the workers'
	 * faults again); now the workers fault the result pages in, in
	 * parallel, and the parent copies them out. */
	r->zero_out = !p->ops && blk_out;
	if (total && staged && (r->block = mp__stage_take(p, total))) {
		memset(r->block, 0, align16(recs_sz) + align16(errs_sz));
		if (blk_out && !r->zero_out)
			memset((char *)r->block + total - blk_out, 0, blk_out);
	} else if (total) {
		void *(*alloc)(size_t) =
			r->zero_out ? mp__shared_alloc_raw : mp_shared_alloc;
		r->block = alloc(total);
		if (!r->block && mp__stage_drop_idle(p))
			r->block = alloc(total);
		if (!r->block) {
			free(r);
			return -ENOMEM;
		}
		if (r->zero_out)
			memset(r->block, 0, align16(recs_sz) + align16(errs_sz));
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
