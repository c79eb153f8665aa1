/* SPDX-License-Identifier: MIT */
#ifndef MP_POOL_INTERNAL_H
#define MP_POOL_INTERNAL_H

/*
 * What the pool's files share: pool.c (the lifecycle and the public
 * calls), pool-ring.c (requests over the shared ring, the parent's
 * waits), pool-supervise.c (workers' starts, deaths, respawns and
 * timeouts), pool-worker.c (the worker loop),
 * pool-bufs.c (variable-size items), pool-async.c (handles, callbacks,
 * waiting for many), pool-imap.c (iterators and streams), pool-stage.c
 * (the staging block of synchronous maps).  The design is described at
 * the top of pool.c.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <poll.h>
#include <string.h>

#include "clock.h"
#include "internal.h"
#include "nt-copy.h"

#define POOL_MAGIC 0x504f4f4cu /* "POOL" */
#define RING MP_POOL_MAX_JOBS
#define MAX_WORKERS 4096
#define WORKER_SPIN_NS (50 * 1000)
#define PARENT_SPIN_NS (20 * 1000)
#define SUSPECT_SLICE_MS 10
#define BLIND_SLICE_MS 10 /* workers without a pidfd are polled so */
#define REDO_CAP 256
#define MAX_RETRIES 100
#define SPAWN_RETRY_NS (10 * 1000 * 1000)        /* first retry, see DESIGN */
#define SPAWN_RETRY_MAX_NS (1000 * 1000 * 1000) /* the longest gap */
#define SPAWN_TRIES 10 /* failed forks in a row, no worker left: broken */

enum job_kind { JOB_MAP = 1, JOB_APPLY = 2, JOB_BUFS = 3, JOB_STREAM = 4 };
/* A map's workers zero each chunk's results before running it: the block
 * is not zeroed by the parent (pool-ring.c, mp__submit_map). */
#define JOB_ZERO_OUT 1u
#define JOB_NT_OUT 2u /* JOB_BUFS: results with streaming stores */
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

/* One variable-size item (JOB_BUFS): its input in the job's block, as
 * an offset (written by the parent), and its result in the block of its
 * chunk (blks[chunk]), in an array of its own (written by the worker),
 * so that no line of records is written from both sides. */
struct buf_item {
	uint64_t in_off, in_len;
};

struct buf_out {
	uint64_t off, len;
};

struct job {
	_Alignas(MP__CACHELINE) _Atomic uint64_t id; /* 0: retired */
	_Atomic uint64_t next;  /* next chunk to claim */
	_Atomic uint64_t ndone; /* hint, see DESIGN */
	uint32_t kind;
	uint32_t flags; /* JOB_ZERO_OUT, JOB_NT_OUT */
	uintptr_t fn;
	uint64_t n, chunksize, nchunks;
	uint64_t in_size, out_size; /* apply: argument length, result cap */
	int64_t in_off, out_off, recs_off, errs_off; /* 0: none */
	int64_t items_off, blks_off;                /* JOB_BUFS */
};

struct wslot {
	_Alignas(MP__CACHELINE) _Atomic uint64_t job; /* hazard: job id */
	_Atomic uint64_t chunk;                     /* chunk + 1, 0: none */
	_Atomic uint32_t state;                     /* enum worker_state */
	_Atomic uint32_t asleep;                    /* counted in sleepers */
	_Atomic int64_t started;  /* ns the chunk started, 0: none */
	_Atomic int64_t blk;      /* result block not yet committed */
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
	_Atomic int64_t stage_off; /* pool-stage.c */
	_Atomic uint64_t stage_size;
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
	bool timed; /* stamp each chunk's start (opts.task_timeout) */
	bool crowded; /* workers + parent > CPUs: yield while spinning */
	void (*init)(void *arg);
	void *initargs;
};

struct worker {
	mp_process *proc; /* NULL: no process in this slot */
	int pidfd;
	bool timed_out; /* killed by the parent for its task's time */
	int64_t killed_stamp; /* the start stamp of that task */
};

struct stream;
struct req;

/*
 * The back-end seam.  A pool's workers are either the forked processes of
 * this file's shared ring (ops NULL: the local back end, the code below
 * as it was) or something else behind a table of operations (ops set:
 * libmultiproc-mpi, src/mpi/).  The calls that touch the workers dispatch
 * on ops once per pool call, never per item: submitting a request,
 * pumping completions, waiting, stopping, freeing.  Everything above them
 * (requests, handles, callbacks, iterators, streams) is shared: a back
 * end completes a request's chunks by writing their records (recs[c],
 * state last) and results where the request says, as a local worker does.
 */
struct mp__pool_ops {
	/* Before r is published: refuse what cannot run (a function the
	 * workers could not find).  Return: 0 or an error for the caller. */
	int (*prepare)(struct mp_pool *p, struct req *r, uintptr_t fn);
	/* r is published (r->id set, in p->active): start its chunks. */
	void (*submit)(struct mp_pool *p, struct req *r);
	/* Take in what completed, start what can start; never blocks. */
	void (*pump)(struct mp_pool *p);
	/* mp__pool_wait for this back end. */
	int (*wait)(struct mp_pool *p, bool (*cond)(struct mp_pool *, void *),
		    void *ctx, mp__deadline deadline);
	/* Stop the workers: no chunk starts later; the ones running are
	 * taken in (or failed) before it returns. */
	void (*stop)(struct mp_pool *p);
	/* The pool is being freed (stopped before): release the back end. */
	void (*destroy)(struct mp_pool *p);
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
	bool cb_queued; /* in the pool's callback queue */
	bool zero_out;  /* JOB_ZERO_OUT */
	bool nt_out;    /* JOB_NT_OUT */
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
	struct buf_item *items; /* JOB_BUFS */
	struct buf_out *outs;   /* JOB_BUFS */
	int64_t *blks;          /* JOB_BUFS: per chunk, result block */
	/* completion callback (mp_async) */
	void (*cb)(mp_async *a, void *ctx);
	void *cb_ctx;
	struct req *cb_next;
	/* imap */
	size_t next_item;
	size_t cur, cur_end; /* unordered: items being delivered */
	size_t from;         /* unordered: chunks below were looked at */
	size_t *holes;       /* unordered: looked at before they were done */
	size_t nholes, holes_cap;
	struct stream *stream; /* JOB_STREAM */
	struct req *st_next;   /* a stream's batches, oldest first */
	size_t base;           /* a stream batch: index of its first item */
	size_t bytes;          /* a stream batch: its input bytes */
	size_t cap, in_cap;    /* a batch being gathered: room for items
				  and for input bytes */
	size_t block_size;     /* bytes of block used */
	/* back ends other than the local one (mp__pool_ops) */
	uintptr_t fn;        /* the task function */
	size_t sent;         /* chunks handed to workers */
	struct req *be_next; /* the back end's queue of requests to send */
};

struct mp_async {
	struct req r;
};

struct mp_imap {
	struct req r;
};

struct mp_pool {
	struct pool_shared *s;
	const struct mp__pool_ops *ops; /* NULL: the local back end */
	void *be;                       /* the other back end's state */
	int nworkers;
	unsigned maxtasks;
	unsigned retries;
	int64_t task_timeout; /* ns, 0: none */
	int start_method;     /* MP_START_* of the workers, never 0 */
	int nkilled;          /* killed for their time, not yet reaped */
	bool closed, terminated, joined, stopping, broken;
	int efd;
	uint64_t pub;
	uint32_t retired_seen;
	unsigned init_failures;
	unsigned nsuspect;
	int nmissing;            /* empty worker slots (not while stopping) */
	int nblind;              /* workers without a pidfd (see DESIGN) */
	unsigned spawn_failures; /* failed spawns in a row */
	int64_t spawn_retry_at;  /* no spawn before (after a failure) */
	unsigned in_callback;    /* depth of callbacks running */
	uint64_t callbacks_run;  /* by dispatches, for mp_pool_poll */
	struct req *cbq, *cbq_tail; /* finished handles with a callback */
	struct stream *streams;     /* open mp_pool_imap_source iterators */
	void *stage;                /* pool-stage.c */
	size_t stage_size;
	bool stage_busy;
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

static inline size_t align16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

/* Overflow-checked a * b + c; SIZE_MAX on overflow. */
static inline size_t mul_add(size_t a, size_t b, size_t c)
{
	size_t m;

	if (__builtin_mul_overflow(a, b, &m) || m > SIZE_MAX / 2 - 64 ||
	    c > SIZE_MAX / 2 - 64)
		return SIZE_MAX;
	return m + c;
}

/* Where a JOB_BUFS task writes its results (pool-bufs.c): w NULL for a
 * back end whose worker keeps its results in malloc()ed memory (the block
 * then grows with realloc). */
struct mp_out {
	struct wslot *w;
	char *blk;    /* the chunk's result area, or a block of its own */
	size_t cap;   /* its size */
	bool own;     /* blk is an arena block of this worker's (w set) */
	bool nt;      /* write with streaming stores (JOB_NT_OUT) */
	size_t used;  /* bytes written, every item so far */
	size_t start; /* where the current item's result begins */
	int err;      /* the current item failed: later writes fail too */
};

/* What libmultiproc-mpi uses of the core: exported under the
 * MULTIPROC_PRIVATE version (cmake/multiproc.map), no ABI promise. */
#define MP__PRIVATE __attribute__((visibility("default")))

/* A pool of nworkers workers behind ops (with state be), none started:
 * opts as mp_pool_new_opts (processes ignored).  NULL + errno. */
MP__PRIVATE struct mp_pool *mp__pool_new_ops(int nworkers,
					     const mp_pool_opts *opts,
					     const struct mp__pool_ops *ops,
					     void *be);
/* The first item (lo) and the end (hi) of chunk c of r. */
static inline void mp__chunk_span(const struct req *r, size_t c, size_t *lo,
				  size_t *hi)
{
	*lo = c * r->chunksize;
	*hi = *lo + r->chunksize < r->n ? *lo + r->chunksize : r->n;
}

/* pool-worker.c: a worker process's main (its arg: a struct warg) */
int mp__worker_main(void *arg);
/* pool-worker.c: the (unstarted) process for worker i, by the pool's
 * start method; NULL with errno. */
mp_process *mp__worker_process(struct mp_pool *p, int i);

/* pool-supervise.c: the workers' lives, parent side */
int mp__spawn_worker(struct mp_pool *p, int i);
/* Fail chunk c of r with code (its items' errors set). */
void mp__mark_failed(struct mp_pool *p, struct req *r, size_t c, int code);
/* Queue chunk c of r to run again; false: it has no tries left. */
bool mp__redo_push(struct mp_pool *p, struct req *r, size_t c);
int mp__watch_workers(struct mp_pool *p, int n);
/* Reap the workers without a pidfd that ended (nblind > 0). */
void mp__reap_blind(struct mp_pool *p); /* pidfds to poll */
void mp__respawn(struct mp_pool *p);          /* fill the empty slots */
void mp__handle_death(struct mp_pool *p, int i); /* worker i exited */
/* Kill workers past task_timeout; when to look again (MP__NEVER). */
int64_t mp__check_timeouts(struct mp_pool *p);
void mp__fail_all(struct mp_pool *p, int code);
void mp__stop_workers(struct mp_pool *p, bool kill_them);

/* pool-ring.c: requests over the shared ring, the parent's waits */
void mp__req_finish(struct mp_pool *p, struct req *r);
void mp__pool_pump(struct mp_pool *p);
bool mp__req_poll(struct mp_pool *p, struct req *r);
bool mp__cond_req(struct mp_pool *p, void *ctx); /* ctx: the req */
int mp__pool_wait(struct mp_pool *p, bool (*cond)(struct mp_pool *, void *),
		  void *ctx, uint64_t wait_id, int mode,
		  mp__deadline deadline);
int mp__submit_check(struct mp_pool *p);
int mp__publish(struct mp_pool *p, struct req *r, uintptr_t fn);
int mp__submit_map(struct mp_pool *p, mp_map_fn fn, const void *in,
		   size_t in_size, void *user_out, size_t out_size, size_t n,
		   size_t chunksize, bool want_errs, bool staged,
		   struct req **out_r);
size_t mp__auto_chunksize(struct mp_pool *p, size_t n);
void mp__check_workers(struct mp_pool *p);
void mp__req_release(struct req *r);
void mp__req_drop(struct req *r);

/* pool-async.c: run the callbacks of handles that finished (only at the
 * top of a public call, where the pool's state is whole). */
int mp__pool_dispatch(struct mp_pool *p); /* how many ran */

/* pool-bufs.c */
/* Worker side: run chunk c of a JOB_BUFS job; its first error (and in
 * *value the item), its results in blks[c]. */
int32_t mp__run_bufs(struct pool_shared *s, struct wslot *w, struct job *j,
		     uint64_t c, int64_t *value);
/* Parent side: worker slot ws died or was stopped holding chunk c1 - 1 of
 * r (r may be NULL): free its result blocks not committed. */
void mp__bufs_drop_dead(struct pool_shared *s, struct wslot *ws,
			struct req *r, uint64_t c1);
/* A stream's batch, gathered in place (see pool-bufs.c): room for cap
 * items and at least in_min input bytes, in the block spare (of
 * spare_size bytes; the request owns it if r->block == spare) or a new
 * one.  Add items with mp__batch_add, then set chunksize to n. */
int mp__batch_open(size_t cap, size_t in_min,
		   void *spare, size_t spare_size, struct req **out_r);
/* Move the batch to a block with room for len more input bytes. */
int mp__batch_grow(struct req *r, size_t len);

/* Copy a small item without a call: the common case of a stream's
 * 8-byte items, where memcpy's call was a tenth of the parent's time. */
static inline void copy_small(void *dst, const void *src, size_t len)
{
	if (len == 8)
		memcpy(dst, src, 8); /* inlined */
	else if (len) /* src may be NULL then */
		memcpy(dst, src, len);
}

/* Add an item to a batch being gathered.  Its bytes start 8-aligned and
 * both they and its record are written with streaming stores (nt-copy.h:
 * the block is recycled, so its lines were last read by a worker on
 * another CPU).  The batch's submit fences them.  Measured with 2 M
 * 8-byte items and 2 workers, interleaved runs: 23-24 -> 28 M items/s,
 * and 34-35 once the workers stream their results too (JOB_NT_OUT); with
 * everything pinned to one CPU 17.3 -> 16.5.  Not for mp_pool_map_bufs:
 * its blocks are large, their lines have left the worker's own cache by
 * the next map, and streaming them made 100,000 strings 9.5 -> 6.2 M
 * items/s. */
static inline int mp__batch_add(struct req *r, const void *data, size_t len)
{
	size_t at = (r->bytes + 7) & ~(size_t)7;
	size_t padded = (len + 7) & ~(size_t)7; /* len <= SIZE_MAX / 16 */

	if (MP__UNLIKELY(at > r->in_cap || padded > r->in_cap - at)) {
		int e = mp__batch_grow(r, at - r->bytes + padded);
		if (e)
			return e;
	}
	uint64_t *rec = (uint64_t *)(void *)&r->items[r->n++];
	mp__nt_store8(rec, at);
	mp__nt_store8(rec + 1, len);
	if (len) /* data may be NULL then */
		mp__nt_copy_words((uint8_t *)r->sh_in + at, data, len);
	r->bytes = at + len;
	return 0;
}

/* Free the chunks' result blocks (again: a no-op). */
void mp__bufs_release(struct req *r);
/* Free the result blocks and take the request's block (*size bytes) out
 * of it, to be reused. */
void *mp__bufs_keep_block(struct req *r, size_t *size);

/* pool-stage.c: the staging block of synchronous maps */
void mp__stage_init(struct mp_pool *p);
void *mp__stage_take(struct mp_pool *p, size_t total); /* NULL: allocate */
void mp__stage_give(struct mp_pool *p, struct req *r, size_t total);
void mp__stage_free(struct mp_pool *p);
bool mp__stage_drop_idle(struct mp_pool *p); /* the arena is full */
void mp__stage_worker(struct pool_shared *s); /* as a worker starts */

/* pool-imap.c */
void mp__stream_release(struct req *r);
void mp__pool_forget_streams(struct mp_pool *p); /* the pool is freed */

#endif
