/* SPDX-License-Identifier: MIT */
/*
 * Pool workers: what runs in each worker process.  A worker claims chunks
 * from the shared ring (or the redo queue), runs them, commits their
 * records, wakes the parent when it waits for them, and sleeps on a futex
 * when there is no work.  The protocol is described at the top of pool.c.
 *
 * Start methods: a worker is an mp_process of the pool's method.  Its
 * struct warg travels as bytes (mp_process_new_args) and names only shared
 * memory and the parent's eventfd, which the process layer hands to
 * forkserver and spawn workers at the same number.  Code pointers (the
 * tasks' functions in the ring, the initializer) are the parent's: the
 * worker turns them into its own with mp__xlate, which is the identity in
 * a fork worker; one it cannot find fails its chunk with -ENOENT.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "futex.h"
#include "pool-internal.h"
#include "start.h"

mp_process *mp__worker_process(struct mp_pool *p, int i)
{
	mp_process *proc = mp_process_new_args(mp__worker_main, &p->wargs[i],
					       sizeof(p->wargs[i]));
	if (!proc)
		return NULL;
	int r = mp_process_set_start_method(proc, p->start_method);
	if (!r && p->start_method != MP_START_FORK)
		r = mp__process_keep_fd(proc, p->s->efd);
	if (r) {
		mp_process_free(proc);
		errno = -r;
		return NULL;
	}
	return proc;
}

static bool has_work(struct pool_shared *s)
{
	return atomic_load_explicit(&s->head, memory_order_acquire) <=
		       atomic_load_explicit(&s->pub, memory_order_acquire) ||
	       atomic_load_explicit(&s->redo_head, memory_order_acquire) <
		       atomic_load_explicit(&s->redo_tail,
					    memory_order_acquire);
}

/* Take a chunk from the redo queue (see DESIGN).  Return: as claim. */
static bool claim_redo(struct pool_shared *s, struct wslot *w,
		       struct job **jp, uint64_t *cp)
{
	uint64_t h = atomic_load_explicit(&s->redo_head, memory_order_acquire);

	while (h < atomic_load_explicit(&s->redo_tail, memory_order_acquire)) {
		struct redo *e = &s->redo[h % REDO_CAP];
		uint64_t id = atomic_load_explicit(&e->id, memory_order_relaxed);
		uint64_t c = atomic_load_explicit(&e->chunk,
						  memory_order_relaxed);

		atomic_store_explicit(&w->job, id, memory_order_seq_cst);
		if (!atomic_compare_exchange_weak_explicit(
			    &s->redo_head, &h, h + 1, memory_order_acq_rel,
			    memory_order_acquire))
			continue; /* h reloaded */
		struct job *j = &s->ring[id % RING];
		if (atomic_load_explicit(&j->id, memory_order_seq_cst) == id &&
		    c < j->nchunks) {
			atomic_store_explicit(&w->chunk, c + 1,
					      memory_order_relaxed);
			*jp = j;
			*cp = c;
			return true;
		}
		h++; /* its job was retired: skip the entry */
	}
	return false;
}

/* Take the next chunk.  Return: true with *jp, *cp set and the chunk
 * recorded in w; false when there is no work (hazard cleared). */
static bool claim(struct pool_shared *s, struct wslot *w, struct job **jp,
		  uint64_t *cp)
{
	if (claim_redo(s, w, jp, cp))
		return true;
	for (;;) {
		uint64_t h = atomic_load_explicit(&s->head,
						  memory_order_acquire);
		if (h > atomic_load_explicit(&s->pub, memory_order_acquire)) {
			atomic_store_explicit(&w->job, 0,
					      memory_order_release);
			return false;
		}
		struct job *j = &s->ring[h % RING];
		atomic_store_explicit(&w->job, h, memory_order_seq_cst);
		if (atomic_load_explicit(&j->id, memory_order_seq_cst) == h) {
			uint64_t c = atomic_fetch_add_explicit(
				&j->next, 1, memory_order_relaxed);
			if (c < j->nchunks) {
				atomic_store_explicit(&w->chunk, c + 1,
						      memory_order_relaxed);
				*jp = j;
				*cp = c;
				return true;
			}
		}
		/* Job h is exhausted (or retired): move on. */
		atomic_compare_exchange_strong_explicit(
			&s->head, &h, h + 1, memory_order_acq_rel,
			memory_order_relaxed);
	}
}

static void notify_parent(struct pool_shared *s, uint64_t id, bool all_done)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&s->parent_waiting, memory_order_relaxed))
		return;
	uint64_t want = atomic_load_explicit(&s->wait_id,
					     memory_order_relaxed);
	uint32_t mode = atomic_load_explicit(&s->wait_mode,
					     memory_order_relaxed);
	if (want && (want != id || (mode == WAIT_ALL && !all_done)))
		return;
	if (atomic_exchange_explicit(&s->parent_waiting, 0,
				     memory_order_acq_rel)) {
		uint64_t one = 1;
		ssize_t r = write(s->efd, &one, sizeof(one));
		(void)r; /* EAGAIN: the counter is already non-zero */
	}
}

static void run_chunk(struct pool_shared *s, struct wslot *w, struct job *j,
		      uint64_t c)
{
	struct chunk_rec *rec = (struct chunk_rec *)at(s, j->recs_off) + c;
	int32_t err = 0;
	int64_t value = 0;

	void *code = mp__xlate((const void *)j->fn);
	if (MP__UNLIKELY(!code)) {
		err = -ENOENT; /* not in this image: never a wild jump */
	} else if (j->kind == JOB_APPLY) {
		mp_apply_fn fn = (mp_apply_fn)code;
		ssize_t r = fn(at(s, j->in_off), j->in_size, at(s, j->out_off),
			       j->out_size);
		if (r > (ssize_t)j->out_size)
			err = -EOVERFLOW;
		else if (r < 0)
			err = r < INT32_MIN ? -EINVAL : (int32_t)r;
		else
			value = r;
	} else if (j->kind == JOB_BUFS) {
		err = mp__run_bufs(s, w, j, c, &value);
	} else {
		mp_map_fn fn = (mp_map_fn)code;
		const char *in = at(s, j->in_off);
		char *out = at(s, j->out_off);
		int32_t *errs = at(s, j->errs_off);
		uint64_t lo = c * j->chunksize;
		uint64_t hi = lo + j->chunksize < j->n ? lo + j->chunksize
							: j->n;
		if ((j->flags & JOB_ZERO_OUT) && out)
			memset(out + lo * j->out_size, 0,
			       (hi - lo) * j->out_size);
		for (uint64_t i = lo; i < hi; i++) {
			int r = fn(in ? in + i * j->in_size : NULL,
				   out ? out + i * j->out_size : NULL);
			if (MP__UNLIKELY(r)) {
				if (errs)
					errs[i] = r;
				if (!err) {
					err = r;
					value = (int64_t)i;
				}
			}
		}
	}
	rec->err = err;
	rec->value = value;
	atomic_store_explicit(&rec->state, 1, memory_order_release);
	uint64_t d = atomic_fetch_add_explicit(&j->ndone, 1,
					       memory_order_relaxed) + 1;
	notify_parent(s, atomic_load_explicit(&j->id, memory_order_relaxed),
		      d >= j->nchunks);
}

/* Spin a while before sleeping: the next chunk usually comes within
 * microseconds.  When the workers and the parent are more than the CPUs
 * (crowded), a spinning worker takes the CPU of the parent that would
 * publish that chunk or take in the results (bench-pool-data, 2 workers
 * on 2 CPUs: the workers' spin was ~40% of the samples of a stream), so
 * it yields instead of pausing: the parent runs, the worker still wakes
 * without a futex call. */
static bool spin_for_work(struct pool_shared *s, bool crowded)
{
	int64_t end = mp__now_ns() + WORKER_SPIN_NS;
	unsigned mask = crowded ? 7 : 63;

	for (unsigned i = 1;; i++) {
		if (has_work(s) ||
		    atomic_load_explicit(&s->stop, memory_order_relaxed))
			return true;
		if (crowded)
			sched_yield();
		else
			cpu_relax();
		if ((i & mask) == 0 && mp__now_ns() >= end)
			return false;
	}
}

int mp__worker_main(void *arg)
{
	const struct warg *a = arg;
	struct pool_shared *s = a->s;
	struct wslot *w = &s->slots[a->index];
	unsigned tasks = 0;

	if (a->init) {
		void (*init)(void *) = (void (*)(void *))mp__xlate(
			(const void *)a->init);
		if (!init)
			return 127; /* dies before ready: as a crashing init */
		init(a->initargs);
	}
	mp__stage_worker(s);
	atomic_store_explicit(&w->state, W_READY, memory_order_release);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&s->work_seq,
						    memory_order_acquire);
		if (atomic_load_explicit(&s->stop, memory_order_acquire))
			break;
		struct job *j;
		uint64_t c;
		if (claim(s, w, &j, &c)) {
			/* The parent's clock for opts.task_timeout: the
			 * monotonic clock is the same in every process. */
			if (a->timed)
				atomic_store_explicit(&w->started,
						      mp__now_ns(),
						      memory_order_release);
			run_chunk(s, w, j, c);
			atomic_store_explicit(&w->started, 0,
					      memory_order_release);
			atomic_store_explicit(&w->chunk, 0,
					      memory_order_release);
			if (a->maxtasks && ++tasks >= a->maxtasks) {
				atomic_store_explicit(&w->job, 0,
						      memory_order_release);
				atomic_store_explicit(&w->state, W_RETIRING,
						      memory_order_release);
				atomic_fetch_add_explicit(&s->retired, 1,
							  memory_order_release);
				return 0;
			}
			continue;
		}
		if (spin_for_work(s, a->crowded))
			continue;
		/* `asleep` brackets the time we count in `sleepers`, so the
		 * parent can uncount a worker killed in its sleep (else every
		 * later submission would pay a futex_wake). */
		atomic_fetch_add_explicit(&s->sleepers, 1,
					  memory_order_seq_cst);
		atomic_store_explicit(&w->asleep, 1, memory_order_relaxed);
		if (!has_work(s) &&
		    !atomic_load_explicit(&s->stop, memory_order_seq_cst))
			mp__futex_wait(&s->work_seq, seq, MP__NEVER);
		atomic_store_explicit(&w->asleep, 0, memory_order_relaxed);
		atomic_fetch_sub_explicit(&s->sleepers, 1,
					  memory_order_relaxed);
	}
	atomic_store_explicit(&w->job, 0, memory_order_release);
	return 0;
}
