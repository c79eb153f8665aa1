/* SPDX-License-Identifier: MIT */
/*
 * The MPI back end of the pool (rank 0's side) and mp_mpi_pool_new.
 *
 * DESIGN
 *
 * The pool's requests, handles, callbacks, iterators and streams are the
 * core's (pool.c and its files); this file is the other side of its
 * back-end seam (struct mp__pool_ops): it hands the chunks of published
 * requests to the worker ranks and completes them by writing their
 * records and results, as a local worker does in shared memory.
 *
 * Sending: requests wait in a FIFO (submission order, a map's chunks in
 * index order).  Each worker rank has DEPTH slots: up to DEPTH chunks in
 * flight, so a rank always has its next chunk queued when it finishes
 * one.  Chunks go out one rank at a time, round robin, to whichever rank
 * has a free slot.  A chunk is one MPI_Isend whose datatype gathers the
 * header and the input straight from the request (the caller's array for
 * a synchronous map), and its result one message back: for a map or an
 * apply an MPI_Irecv posted with the send, whose datatype scatters the
 * record, the per-item errors and the results straight into the request
 * (the caller's out for mp_pool_map and mp_pool_map_async); a
 * variable-size result is probed (MPI_Improbe) and received into one
 * arena block, which the core's stream reads as a worker's.
 *
 * Waiting: MPI has no wait with a timeout that also sees probes, so a wait
 * polls (MPI_Testsome, MPI_Improbe): it spins 100 us (yielding the CPU at
 * each turn when this machine runs more ranks than it has CPUs), then
 * yields until 2 ms, then naps 50 us at a time (a rank that waits is
 * cheap for the others on a shared machine, at up to 50 us of latency
 * after a long idle spell).  Worker ranks wait for tasks the same way.
 *
 * Faults: a dead rank ends the job (Open MPI's default error handler);
 * opts.task_timeout ends it too, from rank 0, with a message (see
 * <multiproc/mpi.h>).  A chunk starts on its rank when the one before it
 * there came back (or when it was sent, if the rank was idle), so rank 0
 * knows each rank's running chunk and when it started, to the latency of
 * a message.
 *
 * Stopping: no chunk is sent after stop; the ones in flight are waited
 * for (a worker rank cannot be killed from here), then each rank gets
 * TAG_STOP, finalizes and exits.
 *
 * Progress: Open MPI moves messages only inside MPI calls, so a large
 * chunk (one past the eager limit, some KiB) that rank 0 sent goes on
 * once rank 0 is back in a pool call; the small ones of a busy rank were
 * already delivered.  Messages are counted in int bytes: a chunk (input
 * or results) past INT_MAX - 4096 bytes is -EMSGSIZE at submission.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi-internal.h"
#include "multiproc/mpi.h"

#define DEPTH 8
#define FN_CACHE 16

struct slot {
	struct req *r; /* NULL: free */
	size_t c;
	struct task_hdr hdr;
	MPI_Request send;
	int64_t sent_at;
};

struct wrank {
	uint64_t seq_sent, seq_done; /* slots seq_done..seq_sent in flight */
	int64_t head_since;          /* when the oldest in flight could start */
	struct slot s[DEPTH];
};

struct mpi_be {
	int nworkers;
	bool own_init; /* we called MPI_Init */
	bool stopped;
	struct wrank *w;
	MPI_Request *recv; /* nworkers * DEPTH, MPI_REQUEST_NULL when idle */
	int *done_idx;
	struct req *qhead, *qtail; /* requests with chunks to send */
	int inflight;
	struct {
		uintptr_t fn;
		struct mp__fnid id;
	} fns[FN_CACHE];
	unsigned nfns, next_fn;
};

static struct mpi_be *be_of(struct mp_pool *p)
{
	return p->be;
}

static const struct mp__fnid *fnid_cached(struct mpi_be *b, uintptr_t fn,
					  int *err)
{
	for (unsigned i = 0; i < b->nfns; i++)
		if (b->fns[i].fn == fn)
			return &b->fns[i].id;
	struct mp__fnid id;
	*err = mp__fnid_of((mp__fn)fn, &id);
	if (*err)
		return NULL;
	unsigned k = b->nfns < FN_CACHE ? b->nfns++ : b->next_fn++ % FN_CACHE;
	b->fns[k].fn = fn;
	b->fns[k].id = id;
	return &b->fns[k].id;
}

/* Whether every message of r fits an MPI count (int) of bytes. */
static bool fits(const struct req *r)
{
	const size_t max = INT_MAX - 4096;
	size_t cs = r->chunksize;

	if (r->kind == JOB_APPLY)
		return r->in_size <= max && r->out_size <= max;
	if (r->kind == JOB_MAP)
		return (!r->in_size || cs <= max / r->in_size) &&
		       (!r->out_size || cs <= max / (r->out_size + 4));
	if (cs > max / sizeof(struct buf_item))
		return false;
	for (size_t c = 0; c < r->nchunks; c++) {
		size_t lo, hi;
		mp__chunk_span(r, c, &lo, &hi);
		uint64_t bytes = r->items[hi - 1].in_off +
				 r->items[hi - 1].in_len - r->items[lo].in_off;
		if (bytes > max - (hi - lo) * sizeof(struct buf_item))
			return false;
	}
	return true;
}

static int be_prepare(struct mp_pool *p, struct req *r, uintptr_t fn)
{
	int e = 0;
	if (!fits(r))
		return -EMSGSIZE;
	if (!fnid_cached(be_of(p), fn, &e)) {
		fprintf(stderr,
			"multiproc-mpi: a task function outside the program's "
			"loaded objects cannot be sent to another rank (%s)\n",
			strerror(-e));
		return e;
	}
	return 0;
}

static void be_submit(struct mp_pool *p, struct req *r)
{
	struct mpi_be *b = be_of(p);

	r->sent = 0;
	r->be_next = NULL;
	if (b->qtail)
		b->qtail->be_next = r;
	else
		b->qhead = r;
	b->qtail = r;
	p->ops->pump(p);
}

/* An hindexed datatype over absolute addresses (used with MPI_BOTTOM). */
static MPI_Datatype gather_type(int n, void *const *addr, const size_t *len)
{
	int lens[3];
	MPI_Aint disp[3];
	int k = 0;
	MPI_Datatype t;

	for (int i = 0; i < n; i++) {
		if (!len[i])
			continue;
		lens[k] = (int)len[i];
		MPI_Get_address(addr[i], &disp[k]);
		k++;
	}
	MPI_Type_create_hindexed(k, lens, disp, MPI_BYTE, &t);
	MPI_Type_commit(&t);
	return t;
}

/* Send chunk c of r to worker rank wi (slot free). */
static void send_chunk(struct mp_pool *p, struct mpi_be *b, int wi,
		       struct req *r, size_t c)
{
	struct wrank *w = &b->w[wi];
	uint64_t seq = w->seq_sent++;
	struct slot *s = &w->s[seq % DEPTH];
	int dest = wi + 1;
	size_t lo, hi;
	int e = 0;

	mp__chunk_span(r, c, &lo, &hi);
	s->r = r;
	s->c = c;
	s->sent_at = mp__now_ns();
	if (seq == w->seq_done)
		w->head_since = s->sent_at;
	s->hdr = (struct task_hdr){.kind = (uint32_t)r->kind,
				   .want_errs = r->errs != NULL,
				   .lo = lo,
				   .count = hi - lo,
				   .in_size = r->in_size,
				   .out_size = r->out_size,
				   .seq = seq};
	s->hdr.fn = *fnid_cached(b, r->fn, &e); /* cached by prepare */

	void *a[3] = {&s->hdr, NULL, NULL};
	size_t l[3] = {sizeof(s->hdr), 0, 0};
	if (r->kind == JOB_BUFS) {
		s->hdr.in_size = s->hdr.out_size = 0;
		a[1] = &r->items[lo];
		l[1] = (hi - lo) * sizeof(struct buf_item);
		a[2] = r->sh_in + r->items[lo].in_off;
		l[2] = r->items[hi - 1].in_off + r->items[hi - 1].in_len -
		       r->items[lo].in_off;
	} else if (r->kind == JOB_APPLY) {
		a[1] = r->sh_in;
		l[1] = r->in_size;
	} else if (r->in_size) {
		a[1] = r->sh_in + lo * r->in_size;
		l[1] = (hi - lo) * r->in_size;
	}
	MPI_Datatype t = gather_type(3, a, l);
	MPI_Isend(MPI_BOTTOM, 1, t, dest, TAG_TASK, MPI_COMM_WORLD, &s->send);
	MPI_Type_free(&t);

	MPI_Request *rq = &b->recv[wi * DEPTH + (int)(seq % DEPTH)];
	if (r->kind == JOB_BUFS) {
		*rq = MPI_REQUEST_NULL; /* probed: its size is not known */
	} else {
		void *ra[3] = {&r->recs[c], NULL, NULL};
		size_t rl[3] = {sizeof(struct chunk_rec), 0, 0};
		if (r->kind == JOB_APPLY) {
			ra[1] = r->sh_out;
			rl[1] = r->out_size;
		} else {
			if (r->out_size) {
				ra[1] = r->sh_out + lo * r->out_size;
				rl[1] = (hi - lo) * r->out_size;
			}
			if (r->errs) {
				ra[2] = &r->errs[lo];
				rl[2] = (hi - lo) * sizeof(int32_t);
			}
		}
		MPI_Datatype rt = gather_type(3, ra, rl);
		MPI_Irecv(MPI_BOTTOM, 1, rt, dest, TAG_RES, MPI_COMM_WORLD, rq);
		MPI_Type_free(&rt);
	}
	b->inflight++;
	r->sent = c + 1;
	/* pool-imap.c's unordered iterator looks at what was handed out. */
	atomic_store_explicit(&p->s->ring[r->id % RING].next, r->sent,
			      memory_order_relaxed);
}

/* Hand out chunks while some rank has a free slot: each to the rank
 * with the fewest in flight, the lowest first among equals.  So a map's
 * chunks spread evenly, while one task at a time (apply round trips)
 * keeps going to the same rank, whose CPU is warm, and the others idle
 * down to naps (see DESIGN: on a shared machine they would otherwise
 * take the CPU from it). */
static void fill(struct mp_pool *p, struct mpi_be *b)
{
	while (b->qhead && !b->stopped) {
		int wi = -1;
		uint64_t least = DEPTH;
		for (int k = 0; k < b->nworkers; k++) {
			uint64_t n = b->w[k].seq_sent - b->w[k].seq_done;
			if (n < least) {
				least = n;
				wi = k;
				if (!n)
					break;
			}
		}
		if (wi < 0)
			return;
		struct req *r = b->qhead;
		send_chunk(p, b, wi, r, r->sent);
		if (r->sent >= r->nchunks) {
			b->qhead = r->be_next;
			if (!b->qhead)
				b->qtail = NULL;
			r->be_next = NULL;
		}
	}
}

/* Slot s of worker wi has its result: commit the chunk. */
static void slot_done(struct mpi_be *b, int wi, struct slot *s)
{
	struct wrank *w = &b->w[wi];
	struct req *r = s->r;

	MPI_Wait(&s->send, MPI_STATUS_IGNORE);
	atomic_store_explicit(&r->recs[s->c].state, 1, memory_order_release);
	s->r = NULL;
	b->inflight--;
	int64_t now = mp__now_ns();
	while (w->seq_done < w->seq_sent && !w->s[w->seq_done % DEPTH].r) {
		w->seq_done++;
		w->head_since = now;
	}
}

/* A variable-size result is waiting: receive it into an arena block. */
static void take_bufs(struct mpi_be *b, MPI_Message *m, MPI_Status *st)
{
	int len = 0;
	MPI_Get_count(st, MPI_BYTE, &len);
	char *blk = mp_shared_alloc((size_t)len);
	if (!blk) {
		fprintf(stderr, "multiproc-mpi: rank 0: no arena memory for "
				"a result of %d bytes\n",
			len);
		MPI_Abort(MPI_COMM_WORLD, 12);
	}
	MPI_Mrecv(blk, len, MPI_BYTE, m, MPI_STATUS_IGNORE);
	struct bufs_hdr bh;
	memcpy(&bh, blk, sizeof(bh));
	int wi = st->MPI_SOURCE - 1;
	struct slot *s = &b->w[wi].s[bh.seq % DEPTH];
	struct req *r = s->r;
	size_t lo, hi;
	mp__chunk_span(r, s->c, &lo, &hi);
	const struct bufs_res *res = (const void *)(blk + sizeof(bh));
	uint64_t off = sizeof(bh) + (hi - lo) * sizeof(*res);
	for (size_t i = lo; i < hi; i++) {
		const struct bufs_res *x = &res[i - lo];
		r->errs[i] = x->err;
		r->outs[i].off = x->err ? 0 : off;
		r->outs[i].len = x->err ? 0 : x->len;
		off += x->err ? 0 : x->len;
	}
	r->blks[s->c] = (int64_t)(intptr_t)blk;
	r->recs[s->c].err = bh.rec.err;
	r->recs[s->c].value = bh.rec.value;
	slot_done(b, wi, s);
}

/* Take in what arrived.  Return: how many chunks completed. */
static int take(struct mpi_be *b)
{
	int n = b->nworkers * DEPTH;
	int got = 0;
	int done = 0;

	if (!b->inflight)
		return 0;
	MPI_Testsome(n, b->recv, &got, b->done_idx, MPI_STATUSES_IGNORE);
	for (int k = 0; got != MPI_UNDEFINED && k < got; k++) {
		int wi = b->done_idx[k] / DEPTH;
		slot_done(b, wi, &b->w[wi].s[b->done_idx[k] % DEPTH]);
		done++;
	}
	for (;;) {
		int flag = 0;
		MPI_Message m;
		MPI_Status st;
		MPI_Improbe(MPI_ANY_SOURCE, TAG_BUFS, MPI_COMM_WORLD, &flag, &m,
			    &st);
		if (!flag)
			break;
		take_bufs(b, &m, &st);
		done++;
	}
	return done;
}

/* opts.task_timeout: end the job when a rank's chunk runs too long. */
static void check_timeouts(struct mp_pool *p, struct mpi_be *b)
{
	if (!p->task_timeout)
		return;
	int64_t now = mp__now_ns();
	for (int wi = 0; wi < b->nworkers; wi++) {
		struct wrank *w = &b->w[wi];
		if (w->seq_done == w->seq_sent)
			continue;
		struct slot *s = &w->s[w->seq_done % DEPTH];
		int64_t t0 = s->sent_at > w->head_since ? s->sent_at
							: w->head_since;
		if (now - t0 < p->task_timeout)
			continue;
		fprintf(stderr,
			"multiproc-mpi: a task on rank %d has run %.3f s, past "
			"task_timeout (%.3f s): ending the job (a rank cannot "
			"be stopped from another)\n",
			wi + 1, (double)(now - t0) / 1e9,
			(double)p->task_timeout / 1e9);
		fflush(stderr);
		MPI_Abort(MPI_COMM_WORLD, 124);
	}
}

static int pump_count(struct mp_pool *p)
{
	struct mpi_be *b = be_of(p);
	int done = take(b);
	fill(p, b);
	check_timeouts(p, b);
	return done;
}

static void be_pump(struct mp_pool *p)
{
	pump_count(p);
}

static int be_wait(struct mp_pool *p, bool (*cond)(struct mp_pool *, void *),
		   void *ctx, mp__deadline deadline)
{
	int64_t idle_from = mp__now_ns();

	for (;;) {
		if (pump_count(p))
			idle_from = mp__now_ns();
		if (cond(p, ctx))
			return 0;
		int64_t now = mp__now_ns();
		if (deadline != MP__NEVER && now >= deadline)
			return -ETIMEDOUT;
		mp__mpi_idle(now - idle_from);
	}
}

static void be_stop(struct mp_pool *p)
{
	struct mpi_be *b = be_of(p);

	if (b->stopped)
		return;
	for (struct req *r = b->qhead, *next; r; r = next) {
		next = r->be_next;
		r->be_next = NULL;
	}
	b->qhead = b->qtail = NULL;
	int64_t idle_from = mp__now_ns();
	while (b->inflight) {
		if (take(b))
			idle_from = mp__now_ns();
		check_timeouts(p, b);
		mp__mpi_idle(mp__now_ns() - idle_from);
	}
	b->stopped = true;
	for (int wi = 0; wi < b->nworkers; wi++)
		MPI_Send(NULL, 0, MPI_BYTE, wi + 1, TAG_STOP, MPI_COMM_WORLD);
}

static void be_destroy(struct mp_pool *p)
{
	struct mpi_be *b = be_of(p);

	be_stop(p);
	if (b->own_init)
		MPI_Finalize();
	free(b->w);
	free(b->recv);
	free(b->done_idx);
	free(b);
	p->be = NULL;
}

static const struct mp__pool_ops mpi_ops = {
	.prepare = be_prepare,
	.submit = be_submit,
	.pump = be_pump,
	.wait = be_wait,
	.stop = be_stop,
	.destroy = be_destroy,
};

static struct mpi_be *be_new(int nworkers)
{
	struct mpi_be *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->nworkers = nworkers;
	b->w = calloc((size_t)nworkers, sizeof(*b->w));
	b->recv = malloc((size_t)nworkers * DEPTH * sizeof(*b->recv));
	b->done_idx = malloc((size_t)nworkers * DEPTH * sizeof(int));
	if (!b->w || !b->recv || !b->done_idx) {
		free(b->w);
		free(b->recv);
		free(b->done_idx);
		free(b);
		return NULL;
	}
	for (int i = 0; i < nworkers * DEPTH; i++)
		b->recv[i] = MPI_REQUEST_NULL;
	return b;
}

mp_pool *mp_mpi_pool_new_opts(int *argc, char ***argv,
			      const mp_pool_opts *opts)
{
	int inited = 0, finalized = 0, own = 0, rank = 0, size = 0;

	if (MPI_Initialized(&inited) != MPI_SUCCESS ||
	    MPI_Finalized(&finalized) != MPI_SUCCESS) {
		errno = EIO;
		return NULL;
	}
	if (finalized) { /* a second pool after the first finalized MPI */
		errno = EINVAL;
		return NULL;
	}
	if (!inited) {
		if (MPI_Init(argc, argv) != MPI_SUCCESS) {
			errno = EIO;
			return NULL;
		}
		own = 1;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	/* The same checks on every rank (the same program, the same
	 * options), so that all of them fail together. */
	if (size < 2 || (opts && opts->processes &&
			 opts->processes != size - 1) ||
	    (opts && (opts->processes < 0 || !(opts->task_timeout >= 0) ||
		      opts->task_timeout > MP_TIMEOUT_MAX))) {
		if (own)
			MPI_Finalize();
		errno = EINVAL;
		return NULL;
	}
	if (rank != 0) {
		mp__mpi_serve(opts);
		MPI_Finalize();
		exit(0);
	}
	struct mpi_be *b = be_new(size - 1);
	mp_pool_opts o = opts ? *opts : (mp_pool_opts){0};
	o.processes = size - 1;
	o.initializer = NULL; /* it runs on the worker ranks */
	o.retries = 0;
	o.maxtasksperchild = 0;
	mp_pool *p = b ? mp__pool_new_ops(size - 1, &o, &mpi_ops, b) : NULL;
	if (!p) {
		int e = errno ? errno : ENOMEM;
		for (int wi = 1; wi < size; wi++)
			MPI_Send(NULL, 0, MPI_BYTE, wi, TAG_STOP,
				 MPI_COMM_WORLD);
		if (b) {
			free(b->w);
			free(b->recv);
			free(b->done_idx);
			free(b);
		}
		if (own)
			MPI_Finalize();
		errno = e;
		return NULL;
	}
	b->own_init = own;
	return p;
}

mp_pool *mp_mpi_pool_new(int *argc, char ***argv)
{
	return mp_mpi_pool_new_opts(argc, argv, NULL);
}
