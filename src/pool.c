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
 * stored as they are: every worker is a fork of the parent, so code
 * addresses agree.
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

#include "clock.h"
#include "futex.h"
#include "internal.h"

#define POOL_MAGIC 0x504f4f4cu /* "POOL" */
#define RING MP_POOL_MAX_JOBS
#define MAX_WORKERS 4096
#define WORKER_SPIN_NS (50 * 1000)
#define PARENT_SPIN_NS (20 * 1000)
#define SUSPECT_SLICE_MS 10
#define REDO_CAP 256
#define MAX_RETRIES 100
#define SPAWN_RETRY_NS (10 * 1000 * 1000)        /* first retry, see DESIGN */
#define SPAWN_RETRY_MAX_NS (1000 * 1000 * 1000) /* the longest gap */
#define SPAWN_TRIES 10 /* failed forks in a row, no worker left: broken */

enum job_kind { JOB_MAP = 1, JOB_APPLY = 2 };
enum wait_mode { WAIT_ALL = 0, WAIT_ANY = 1 };
enum worker_state { W_STARTING = 0, W_READY = 1, W_RETIRING = 2 };

/* The outcome of one chunk.  state 0: not done; 1: done (err and value
 * are valid).  value: the first failed item (map) or the result length
 * (apply). */
struct chunk_rec {
	_Atomic uint32_t state;
	int32_t err;
	int64_t value;
};

_Static_assert(sizeof(struct chunk_rec) == 16, "chunk_rec layout");

struct job {
	_Alignas(MP__CACHELINE) _Atomic uint64_t id; /* 0: retired */
	_Atomic uint64_t next;  /* next chunk to claim */
	_Atomic uint64_t ndone; /* hint, see DESIGN */
	uint32_t kind;
	uint32_t pad;
	uintptr_t fn;
	uint64_t n, chunksize, nchunks;
	uint64_t in_size, out_size; /* apply: argument length, result cap */
	int64_t in_off, out_off, recs_off, errs_off; /* 0: none */
};

struct wslot {
	_Alignas(MP__CACHELINE) _Atomic uint64_t job; /* hazard: job id */
	_Atomic uint64_t chunk;                     /* chunk + 1, 0: none */
	_Atomic uint32_t state;                     /* enum worker_state */
	_Atomic uint32_t asleep;                    /* counted in sleepers */
};

struct pool_shared {
	uint32_t magic;
	uint32_t nworkers;
	int efd;
	_Atomic uint32_t stop;
	_Alignas(MP__CACHELINE) _Atomic uint64_t pub;
	_Atomic uint32_t work_seq;
	_Alignas(MP__CACHELINE) _Atomic uint64_t head;
	_Atomic uint32_t sleepers;
	_Alignas(MP__CACHELINE) _Atomic uint32_t parent_waiting;
	_Atomic uint32_t wait_mode;
	_Atomic uint64_t wait_id; /* 0: any completion */
	_Atomic uint32_t retired;
	_Alignas(MP__CACHELINE) _Atomic uint64_t redo_head;
	_Atomic uint64_t redo_tail;
	struct redo {
		_Atomic uint64_t id;
		_Atomic uint64_t chunk;
	} redo[REDO_CAP];
	struct job ring[RING];
	struct wslot slots[];
};

/* What a worker gets from fork: a copy of the parent's struct. */
struct warg {
	struct pool_shared *s;
	uint32_t index;
	unsigned maxtasks;
	void (*init)(void *arg);
	void *initargs;
};

struct worker {
	mp_process *proc; /* NULL: no process in this slot */
	int pidfd;
};

/* A submission, parent side: the handle behind mp_async and mp_imap. */
struct req {
	struct mp_pool *pool;
	struct req *prev, *next; /* pool's unfinished list */
	uint64_t id;
	int kind;
	bool finished; /* every chunk done; slot retired */
	bool orphan;   /* handle freed: free on finish */
	bool suspect;
	bool unordered;
	bool broken; /* a chunk failed with MP_EBROKEN */
	int err;
	ssize_t len;
	size_t n, chunksize, nchunks, in_size, out_size;
	size_t scan; /* chunks below are done */
	size_t lost;
	uint8_t *tries;      /* per chunk: times queued to run again */
	uint64_t redo_last;  /* redo position after r's last entry; 0: none */
	void *block;
	struct chunk_rec *recs;
	int32_t *errs;
	char *sh_in, *sh_out;
	void *user_out;
	/* imap */
	size_t next_item;
	size_t cur, cur_end; /* unordered: items being delivered */
	size_t from;         /* unordered: chunks below were looked at */
	size_t *holes;       /* unordered: looked at before they were done */
	size_t nholes, holes_cap;
};

struct mp_async {
	struct req r;
};

struct mp_imap {
	struct req r;
};

struct mp_pool {
	struct pool_shared *s;
	int nworkers;
	unsigned maxtasks;
	unsigned retries;
	bool closed, terminated, joined, stopping, broken;
	int efd;
	uint64_t pub;
	uint32_t retired_seen;
	unsigned init_failures;
	unsigned nsuspect;
	int nmissing;            /* empty worker slots (not while stopping) */
	unsigned spawn_failures; /* failed spawns in a row */
	int64_t spawn_retry_at;  /* no spawn before (after a failure) */
	struct worker *w;
	struct warg *wargs;
	struct pollfd *pfds;
	int *pfd_worker;
	struct req *active;
	struct req *slot_req[RING];
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline void *at(struct pool_shared *s, int64_t off)
{
	return off ? (char *)s + off : NULL;
}

static inline int64_t off_of(struct pool_shared *s, const void *p)
{
	return p ? (int64_t)((const char *)p - (const char *)s) : 0;
}

/* ---- worker side ---- */

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

static void run_chunk(struct pool_shared *s, struct job *j, uint64_t c)
{
	struct chunk_rec *rec = (struct chunk_rec *)at(s, j->recs_off) + c;
	int32_t err = 0;
	int64_t value = 0;

	if (j->kind == JOB_APPLY) {
		mp_apply_fn fn = (mp_apply_fn)j->fn;
		ssize_t r = fn(at(s, j->in_off), j->in_size, at(s, j->out_off),
			       j->out_size);
		if (r > (ssize_t)j->out_size)
			err = -EOVERFLOW;
		else if (r < 0)
			err = r < INT32_MIN ? -EINVAL : (int32_t)r;
		else
			value = r;
	} else {
		mp_map_fn fn = (mp_map_fn)j->fn;
		const char *in = at(s, j->in_off);
		char *out = at(s, j->out_off);
		int32_t *errs = at(s, j->errs_off);
		uint64_t lo = c * j->chunksize;
		uint64_t hi = lo + j->chunksize < j->n ? lo + j->chunksize
							: j->n;
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

static bool spin_for_work(struct pool_shared *s)
{
	int64_t end = mp__now_ns() + WORKER_SPIN_NS;

	for (unsigned i = 1;; i++) {
		if (has_work(s) ||
		    atomic_load_explicit(&s->stop, memory_order_relaxed))
			return true;
		cpu_relax();
		if ((i & 63) == 0 && mp__now_ns() >= end)
			return false;
	}
}

static int worker_main(void *arg)
{
	const struct warg *a = arg;
	struct pool_shared *s = a->s;
	struct wslot *w = &s->slots[a->index];
	unsigned tasks = 0;

	if (a->init)
		a->init(a->initargs);
	atomic_store_explicit(&w->state, W_READY, memory_order_release);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&s->work_seq,
						    memory_order_acquire);
		if (atomic_load_explicit(&s->stop, memory_order_acquire))
			break;
		struct job *j;
		uint64_t c;
		if (claim(s, w, &j, &c)) {
			run_chunk(s, j, c);
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
		if (spin_for_work(s))
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

/* ---- parent side: workers ---- */

static int spawn(struct mp_pool *p, int i)
{
	struct worker *w = &p->w[i];
	mp_process *proc = mp_process_new(worker_main, &p->wargs[i]);

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

	mp_process_join(w->proc, MP_FOREVER);
	mp_process_free(w->proc);
	w->proc = NULL;
	w->pidfd = -1;
	p->nmissing++;

	uint32_t st = atomic_load_explicit(&ws->state, memory_order_acquire);
	uint64_t id = atomic_load_explicit(&ws->job, memory_order_acquire);
	uint64_t c1 = atomic_load_explicit(&ws->chunk, memory_order_acquire);
	struct req *r = req_of(p, id);
	if (r && c1 && c1 <= r->nchunks &&
	    !atomic_load_explicit(&r->recs[c1 - 1].state,
				  memory_order_acquire)) {
		if (!redo_push(p, r, (size_t)(c1 - 1)))
			mark_failed(p, r, (size_t)(c1 - 1), MP_EWORKER);
	} else if (r)
		set_suspect(p, r); /* see DESIGN: a chunk may be unaccounted */
	if (atomic_load_explicit(&ws->asleep, memory_order_relaxed))
		atomic_fetch_sub_explicit(&p->s->sleepers, 1,
					  memory_order_relaxed);
	atomic_store_explicit(&ws->asleep, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->job, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->chunk, 0, memory_order_relaxed);
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

/* Reap whatever workers ended, without waiting; respawn missing ones. */
static void check_workers(struct mp_pool *p)
{
	int n = 0;

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

static void req_release(struct req *r)
{
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
	if (r->user_out && r->sh_out)
		memcpy(r->user_out, r->sh_out, r->n * r->out_size);
	if (r->orphan)
		req_release(r);
}

/* Whether every chunk of r is done; finishes r the first time. */
static bool req_poll(struct mp_pool *p, struct req *r)
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
	req_poll(p, r);
}

static void pump(struct mp_pool *p)
{
	if (atomic_load_explicit(&p->s->retired, memory_order_acquire) !=
	    p->retired_seen)
		check_workers(p);
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
static int pool_wait(struct mp_pool *p, bool (*cond)(struct mp_pool *, void *),
		     void *ctx, uint64_t wait_id, int mode,
		     mp__deadline deadline)
{
	struct pool_shared *s = p->s;
	bool spun = false;

	for (;;) {
		pump(p);
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

static bool cond_req(struct mp_pool *p, void *ctx)
{
	return req_poll(p, ctx);
}

static bool cond_slot_free(struct mp_pool *p, void *ctx)
{
	uint64_t old = *(uint64_t *)ctx;
	struct req *r = p->slot_req[old % RING];

	return !r || req_poll(p, r);
}

/* Fail every unfinished chunk with code and finish every request. */
static void fail_all(struct mp_pool *p, int code)
{
	struct req *next;

	for (struct req *r = p->active; r; r = next) {
		next = r->next;
		for (size_t c = r->scan; c < r->nchunks; c++)
			mark_failed(p, r, c, code);
		req_poll(p, r);
	}
}

static void stop_workers(struct mp_pool *p, bool kill_them)
{
	p->stopping = true;
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

static int submit_check(struct mp_pool *p)
{
	if (p->broken)
		return MP_EBROKEN;
	if (p->closed)
		return MP_ESTATE;
	return 0;
}

/* Publish r as the next job.  Waits while the ring is full. */
static int publish(struct mp_pool *p, struct req *r, uintptr_t fn)
{
	struct pool_shared *s = p->s;
	uint64_t id = p->pub + 1;
	uint64_t old = id > RING ? id - RING : 0;

	pump(p);
	if (p->slot_req[id % RING]) {
		int e = pool_wait(p, cond_slot_free, &old, old, WAIT_ALL,
				  MP__NEVER);
		if (e)
			return e;
		if (p->broken)
			return MP_EBROKEN;
	}
	/* A worker may still hold a hazard on the old job for a moment. */
	for (int i = 0; i < p->nworkers; i++) {
		while (old && p->w[i].proc &&
		       atomic_load_explicit(&s->slots[i].job,
					    memory_order_seq_cst) == old) {
			sched_yield();
			check_workers(p);
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

static size_t align16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

/* Overflow-checked a * b + c; SIZE_MAX on overflow. */
static size_t mul_add(size_t a, size_t b, size_t c)
{
	size_t m;

	if (__builtin_mul_overflow(a, b, &m) || m > SIZE_MAX / 2 - 64 ||
	    c > SIZE_MAX / 2 - 64)
		return SIZE_MAX;
	return m + c;
}

/* Submit a map.  Return: 0 and *out_r, or an error. */
static int submit_map(struct mp_pool *p, mp_map_fn fn, const void *in,
		      size_t in_size, void *user_out, size_t out_size,
		      size_t n, size_t chunksize, bool want_errs,
		      struct req **out_r)
{
	if (!p || !fn || (in_size && !in && n))
		return -EINVAL;
	int e = submit_check(p);
	if (e)
		return e;
	if (chunksize == 0) {
		size_t parts = 4 * (size_t)p->nworkers;
		chunksize = n ? (n + parts - 1) / parts : 1;
	}
	size_t nchunks = n ? (n - 1) / chunksize + 1 : 0;
	size_t recs_sz = mul_add(nchunks, sizeof(struct chunk_rec), 0);
	size_t errs_sz = want_errs ? mul_add(n, sizeof(int32_t), 0) : 0;
	size_t in_sz = mul_add(n, in_size, 0);
	size_t out_sz = mul_add(n, out_size, 0);
	if (recs_sz == SIZE_MAX || errs_sz == SIZE_MAX || in_sz == SIZE_MAX ||
	    out_sz == SIZE_MAX)
		return -EINVAL;
	size_t total = align16(recs_sz) + align16(errs_sz) + align16(in_sz);
	if (total > SIZE_MAX / 2 - out_sz)
		return -EINVAL;
	total += out_sz;

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
	if (total) {
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
	r->sh_in = in_sz ? b : NULL;
	b += align16(in_sz);
	r->sh_out = out_sz ? b : NULL;
	if (in_sz)
		memcpy(r->sh_in, in, in_sz);
	if (nchunks == 0) {
		r->finished = true;
		*out_r = r;
		return 0;
	}
	e = publish(p, r, (uintptr_t)fn);
	if (e) {
		req_release(r);
		return e;
	}
	*out_r = r;
	return 0;
}

/* ---- public API ---- */

mp_pool *mp_pool_new_opts(const mp_pool_opts *opts)
{
	mp_pool_opts def = {0};
	if (!opts)
		opts = &def;
	int nw = opts->processes ? opts->processes : mp_cpu_count();
	if (nw < 1 || nw > MAX_WORKERS || opts->retries > MAX_RETRIES) {
		errno = EINVAL;
		return NULL;
	}
	struct mp_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->nworkers = nw;
	p->maxtasks = opts->maxtasksperchild;
	p->retries = opts->retries;
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
	atomic_store_explicit(&s->head, 1, memory_order_relaxed);
	atomic_store_explicit(&s->pub, 0, memory_order_release);
	p->s = s;
	for (int i = 0; i < nw; i++) {
		p->w[i].pidfd = -1;
		p->wargs[i] = (struct warg){.s = s,
					    .index = (uint32_t)i,
					    .maxtasks = opts->maxtasksperchild,
					    .init = opts->initializer,
					    .initargs = opts->initargs};
	}
	for (int i = 0; i < nw; i++) {
		int e = spawn(p, i);
		if (e) {
			stop_workers(p, true);
			errno = -e;
			goto err_free_shared;
		}
	}
	return p;

err_free_shared:
	mp_shared_free(s);
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
		check_workers(p);
	struct req *r;
	int e = submit_map(p, fn, in, in_size, NULL, out_size, n, chunksize,
			   errs != NULL, &r);
	if (e)
		return e;
	e = pool_wait(p, cond_req, r, r->id, WAIT_ALL, MP__NEVER);
	if (e) /* cannot happen without a deadline */
		MP__FATAL("pool: map wait failed");
	if (!p->stopping)
		check_workers(p);
	if (r->sh_out)
		memcpy(out, r->sh_out, n * out_size);
	if (errs)
		for (size_t i = 0; i < n; i++)
			errs[i] = r->errs[i];
	e = r->err;
	req_release(r);
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

static mp_imap *imap_new(mp_pool *pool, mp_map_fn fn, const void *in,
			 size_t in_size, size_t out_size, size_t n,
			 size_t chunksize, bool unordered)
{
	struct req *r;
	int e = submit_map(pool, fn, in, in_size, NULL, out_size, n,
			   chunksize, true, &r);
	if (e) {
		errno = -e;
		return NULL;
	}
	r->unordered = unordered;
	return (mp_imap *)r;
}

mp_imap *mp_pool_imap(mp_pool *pool, mp_map_fn fn, const void *in,
		      size_t in_size, size_t out_size, size_t n,
		      size_t chunksize)
{
	return imap_new(pool, fn, in, in_size, out_size, n, chunksize, false);
}

mp_imap *mp_pool_imap_unordered(mp_pool *pool, mp_map_fn fn, const void *in,
				size_t in_size, size_t out_size, size_t n,
				size_t chunksize)
{
	return imap_new(pool, fn, in, in_size, out_size, n, chunksize, true);
}

static bool cond_chunk(struct mp_pool *p, void *ctx)
{
	struct req *r = ctx;
	size_t c = r->next_item / r->chunksize;

	if (req_poll(p, r))
		return true;
	return atomic_load_explicit(&r->recs[c].state, memory_order_acquire);
}

static void take_chunk(struct req *r, size_t c)
{
	r->cur = c * r->chunksize;
	r->cur_end = r->cur + r->chunksize < r->n ? r->cur + r->chunksize
						  : r->n;
}

/* Unordered: find a done chunk not yet delivered; it becomes current.
 * A cursor walks the chunks once, up to those claimed so far; the ones it
 * passed before they were done wait in `holes` (about as many as there
 * are workers, plus lost chunks not yet swept), so each call costs
 * O(holes), not O(chunks). */
static bool cond_any_chunk(struct mp_pool *p, void *ctx)
{
	struct req *r = ctx;
	size_t hi = r->nchunks;

	if (!r->finished && p) {
		uint64_t next = atomic_load_explicit(
			&p->s->ring[r->id % RING].next, memory_order_acquire);
		if (!req_poll(p, r) && next < hi)
			hi = next;
	}
	for (size_t k = 0; k < r->nholes; k++) {
		size_t c = r->holes[k];
		if (atomic_load_explicit(&r->recs[c].state,
					 memory_order_acquire)) {
			r->holes[k] = r->holes[--r->nholes];
			take_chunk(r, c);
			return true;
		}
	}
	while (r->from < hi) {
		size_t c = r->from;
		if (atomic_load_explicit(&r->recs[c].state,
					 memory_order_acquire)) {
			r->from++;
			take_chunk(r, c);
			return true;
		}
		if (r->nholes == r->holes_cap) {
			size_t cap = r->holes_cap * 2 + 16;
			size_t *h = realloc(r->holes, cap * sizeof(*h));
			if (!h)
				return false; /* retried at the next wake-up */
			r->holes = h;
			r->holes_cap = cap;
		}
		r->holes[r->nholes++] = c;
		r->from++;
	}
	return false;
}

static int imap_deliver(struct req *r, size_t i, size_t *index, void *out)
{
	if (out && r->out_size)
		memcpy(out, r->sh_out + i * r->out_size, r->out_size);
	if (index)
		*index = i;
	return r->errs[i];
}

int mp_imap_next(mp_imap *it, size_t *index, void *out, double timeout_s)
{
	if (index)
		*index = SIZE_MAX;
	if (!it || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct req *r = &it->r;
	struct mp_pool *p = r->finished ? NULL : r->pool;
	mp__deadline deadline = mp__deadline_in(timeout_s);

	if (!r->unordered) {
		if (r->next_item >= r->n)
			return MP_ECLOSED;
		if (p) {
			int e = pool_wait(p, cond_chunk, r, r->id, WAIT_ANY,
					  deadline);
			if (e)
				return e;
		}
		return imap_deliver(r, r->next_item++, index, out);
	}
	if (r->cur >= r->cur_end) {
		if (r->next_item >= r->n)
			return MP_ECLOSED;
		if (p) {
			int e = pool_wait(p, cond_any_chunk, r, r->id,
					  WAIT_ANY, deadline);
			if (e)
				return e;
		} else if (!cond_any_chunk(NULL, r)) {
			MP__FATAL("pool: finished imap without a chunk");
		}
	}
	r->next_item++;
	return imap_deliver(r, r->cur++, index, out);
}

static void req_drop(struct req *r)
{
	if (r->finished)
		req_release(r);
	else
		r->orphan = true;
}

void mp_imap_free(mp_imap *it)
{
	if (it)
		req_drop(&it->r);
}

mp_async *mp_pool_apply_async(mp_pool *pool, mp_apply_fn fn, const void *arg,
			      size_t len, size_t result_cap)
{
	if (!pool || !fn || (len && !arg) || len > SIZE_MAX / 4 ||
	    result_cap > SIZE_MAX / 4) {
		errno = EINVAL;
		return NULL;
	}
	int e = submit_check(pool);
	if (e) {
		errno = -e;
		return NULL;
	}
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->kind = JOB_APPLY;
	r->n = 1;
	r->chunksize = 1;
	r->nchunks = 1;
	r->in_size = len;
	r->out_size = result_cap;
	size_t total = sizeof(struct chunk_rec) + align16(len) + result_cap;
	r->block = mp_shared_alloc(total);
	if (!r->block) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	r->recs = r->block;
	r->sh_in = len ? (char *)r->block + sizeof(struct chunk_rec) : NULL;
	r->sh_out = result_cap ? (char *)r->block + sizeof(struct chunk_rec) +
					 align16(len)
			       : NULL;
	if (len)
		memcpy(r->sh_in, arg, len);
	e = publish(pool, r, (uintptr_t)fn);
	if (e) {
		req_release(r);
		errno = -e;
		return NULL;
	}
	return (mp_async *)r;
}

mp_async *mp_pool_map_async(mp_pool *pool, mp_map_fn fn, const void *in,
			    size_t in_size, void *out, size_t out_size,
			    size_t n, size_t chunksize)
{
	if (out_size && !out && n) {
		errno = EINVAL;
		return NULL;
	}
	struct req *r;
	int e = submit_map(pool, fn, in, in_size, out, out_size, n, chunksize,
			   false, &r);
	if (e) {
		errno = -e;
		return NULL;
	}
	return (mp_async *)r;
}

bool mp_async_ready(mp_async *a)
{
	if (!a)
		return false;
	struct req *r = &a->r;
	if (r->finished)
		return true;
	pump(r->pool);
	return req_poll(r->pool, r);
}

int mp_async_wait(mp_async *a, double timeout_s)
{
	if (!a || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct req *r = &a->r;
	if (r->finished)
		return 0;
	return pool_wait(r->pool, cond_req, r, r->id, WAIT_ALL,
			 mp__deadline_in(timeout_s));
}

ssize_t mp_async_get(mp_async *a, void *buf, size_t cap, double timeout_s)
{
	int e = mp_async_wait(a, timeout_s);
	if (e)
		return e;
	struct req *r = &a->r;
	if (r->err)
		return r->err;
	if (r->kind != JOB_APPLY)
		return 0;
	if ((size_t)r->len > cap)
		return -EMSGSIZE;
	if (r->len)
		memcpy(buf, r->sh_out, (size_t)r->len);
	return r->len;
}

void mp_async_free(mp_async *a)
{
	if (a)
		req_drop(&a->r);
}

ssize_t mp_pool_apply(mp_pool *pool, mp_apply_fn fn, const void *arg,
		      size_t len, void *out, size_t cap)
{
	if (cap && !out)
		return -EINVAL;
	mp_async *a = mp_pool_apply_async(pool, fn, arg, len, cap);
	if (!a)
		return -errno;
	ssize_t r = mp_async_get(a, out, cap, MP_FOREVER);
	mp_async_free(a);
	return r;
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
		if (!req_poll(p, r))
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
		pool_wait(pool, cond_idle, NULL, 0, WAIT_ANY, MP__NEVER);
		stop_workers(pool, false);
	}
	pool->joined = true;
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
	return 0;
}

void mp_pool_free(mp_pool *pool)
{
	if (!pool)
		return;
	if (!pool->joined) {
		mp_pool_terminate(pool);
		mp_pool_join(pool);
	}
	/* Every request is finished now: handles no longer need the pool. */
	fail_all(pool, MP_ECLOSED);
	close(pool->efd);
	mp_shared_free(pool->s);
	free(pool->w);
	free(pool->wargs);
	free(pool->pfds);
	free(pool->pfd_worker);
	free(pool);
}
