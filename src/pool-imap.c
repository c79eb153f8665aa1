/* SPDX-License-Identifier: MIT */
/*
 * Pool iterators: imap and imap_unordered over fixed-size items, and
 * streams (mp_pool_imap_source) over variable-size items from a source.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool-internal.h"

static mp_imap *imap_new(mp_pool *pool, mp_map_fn fn, const void *in,
			 size_t in_size, size_t out_size, size_t n,
			 size_t chunksize, bool unordered)
{
	struct req *r;
	int e = mp__submit_map(pool, fn, in, in_size, NULL, out_size, n,
			       chunksize, true, false, &r);
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

	if (mp__req_poll(p, r))
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
		if (!mp__req_poll(p, r) && next < hi)
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
	if (!it || it->r.kind == JOB_STREAM || !mp__timeout_ok(timeout_s))
		return -EINVAL; /* a stream's results: mp_imap_next_buf */
	struct req *r = &it->r;
	struct mp_pool *p = r->finished ? NULL : r->pool;
	mp__deadline deadline = mp__deadline_in(timeout_s);

	if (!r->unordered) {
		if (r->next_item >= r->n)
			return MP_ECLOSED;
		if (p) {
			int e = mp__pool_wait(p, cond_chunk, r, r->id, WAIT_ANY,
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
			int e = mp__pool_wait(p, cond_any_chunk, r, r->id,
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

void mp_imap_free(mp_imap *it)
{
	if (it)
		mp__req_drop(&it->r);
}


/*
 * Streams (mp_pool_imap_source).  The iterator pulls items from the source
 * only while its window has room: at most `window` batches in flight (a
 * batch is one chunk of chunksize items, a JOB_BUFS job of its own) and
 * at most MP_POOL_STREAM_BYTES input bytes in them.  Each item is copied
 * at once (the source's data is valid until its next call only) into the
 * shared block of the batch being gathered (mp__batch_add); a full batch
 * is published.  Results wait in the arena until delivered; a delivered
 * batch's block is kept for a later batch (up to SPARES of them: a fresh
 * block is zeroed by the arena and faults its pages in, in the parent and
 * in the worker, which cost more than the batch's own work at 8-byte
 * items).  So the memory a stream holds is bounded by its window,
 * whatever the number of items.  Items pulled before a source error are
 * delivered first, then the error once, then MP_ECLOSED.
 */
struct stream {
	struct mp_pool *pool; /* NULL once the pool is freed */
	struct stream *pool_next;
	mp_task_fn fn;
	mp_source_fn source;
	void *ctx;
	size_t chunksize;
	size_t chunk_max; /* chunksize 0: batches grow to this */
	size_t window;
	bool ordered;
	bool src_done;
	int src_err;        /* to report once the batches are delivered */
	/* The arena had no room for the next item while batches were in
	 * flight: it waits in pending until one is delivered. */
	bool mem_full, has_pending;
	mp_buf pending;
	size_t pulled;      /* items taken from the source */
	struct req *head, *tail; /* batches, oldest first */
	size_t nbatches, bytes;
	struct req *cur;    /* the batch being delivered */
	size_t cur_pos;
	struct req *gather; /* the batch being gathered, or NULL */
	/* blocks of delivered batches, for the next ones */
	void *spare[4];
	size_t spare_size[4];
	int nspare;
};

/* chunksize 0: the first batch has STREAM_CHUNK items and each next one
 * twice as many, up to STREAM_CHUNK_AUTO.  Small first batches give the
 * first results (and work for every worker) soon; large later ones cost
 * the parent less per item (bench-pool-data, 8-byte items: 1000 runs
 * about twice as fast as 64). */
#define STREAM_CHUNK 64
#define STREAM_CHUNK_AUTO 1024
#define SPARES 4

/* Keep the block of a delivered batch for a later one, then free it. */
static void stream_done(struct stream *st, struct req *r)
{
	size_t size;
	void *b = mp__bufs_keep_block(r, &size);

	st->mem_full = false;
	if (b && st->nspare < SPARES) {
		st->spare[st->nspare] = b;
		st->spare_size[st->nspare++] = size;
	} else {
		mp_shared_free(b);
	}
	mp__req_release(r);
}

/* Publish the batch gathered so far. */
static int stream_submit(struct stream *st)
{
	struct req *r = st->gather;

	st->gather = NULL;
	r->chunksize = r->n;
	r->nt_out = true; /* a small block, recycled: see mp__batch_add */
	mp__nt_fence(); /* mp__batch_add's stores, before the publish */
	int e = mp__publish(st->pool, r, (uintptr_t)st->fn);
	if (e) {
		mp__req_release(r);
		return e;
	}
	r->base = st->pulled - r->n;
	r->st_next = NULL;
	if (st->tail)
		st->tail->st_next = r;
	else
		st->head = r;
	st->tail = r;
	st->nbatches++;
	st->bytes += r->bytes;
	if (st->chunksize < st->chunk_max)
		st->chunksize = 2 * st->chunksize < st->chunk_max
					? 2 * st->chunksize
					: st->chunk_max;
	return 0;
}

/* A batch to gather into, in the last spare block if it is large enough
 * (one kept from smaller batches is dropped); with the arena full, the
 * spares are given back and a new block tried once. */
static int stream_open(struct stream *st, size_t in_min)
{
	void *spare = st->nspare ? st->spare[st->nspare - 1] : NULL;
	size_t size = st->nspare ? st->spare_size[st->nspare - 1] : 0;
	int e = mp__batch_open(st->chunksize, in_min, spare, size,
			       &st->gather);

	if (!e && spare) {
		st->nspare--;
		if (st->gather->block != spare)
			mp_shared_free(spare);
	}
	if (e == -ENOMEM && st->nspare) {
		while (st->nspare)
			mp_shared_free(st->spare[--st->nspare]);
		e = mp__batch_open(st->chunksize, in_min, NULL, 0,
				   &st->gather);
	}
	return e;
}

/* Gather items from the source into the current batch until it is full
 * (chunksize items, or a quarter of MP_POOL_STREAM_BYTES).  Return: 1
 * (full), 0 (no more), < 0 (an error of the source or ours).  An item
 * the arena has no room for while other batches are in flight is kept
 * (its data stays valid: the source is not called again) and sets
 * mem_full: the window is then as large as the arena allows, and the
 * item goes in once a batch is delivered.  A stream under a small arena
 * waits instead of failing with -ENOMEM. */
static int stream_gather(struct stream *st)
{
	size_t pulled = 0;
	int r = 1;

	for (;;) {
		struct req *g = st->gather;
		if (g && (g->n >= st->chunksize ||
			  g->bytes >= MP_POOL_STREAM_BYTES / 4))
			break;
		mp_buf it = {0};
		if (st->has_pending) {
			it = st->pending;
			st->has_pending = false;
		} else {
			r = st->source(st->ctx, &it);
			if (r <= 0)
				break;
			if (MP__UNLIKELY((it.len && !it.data) ||
					 it.len > SIZE_MAX / 16)) {
				r = -EINVAL;
				break;
			}
		}
		r = 0;
		if (MP__UNLIKELY(!g)) {
			r = stream_open(st, it.len);
			g = st->gather;
		}
		if (!r)
			r = mp__batch_add(g, it.data, it.len);
		if (MP__UNLIKELY(r)) {
			if (r == -ENOMEM && (st->head || st->cur ||
					     (st->gather && st->gather->n))) {
				st->pending = it;
				st->has_pending = true;
				st->mem_full = true;
				r = 1;
			}
			break;
		}
		pulled++;
		r = 1;
	}
	st->pulled += pulled;
	return r < 0 ? r : r > 0;
}

/* Pull and submit while the window has room. */
static void stream_fill(struct stream *st)
{
	while (!st->src_done && !st->mem_full && st->pool &&
	       st->nbatches < st->window && st->bytes < MP_POOL_STREAM_BYTES) {
		int r = stream_gather(st);
		if (r <= 0) {
			st->src_done = true;
			st->src_err = r;
		}
		if (st->gather && st->gather->n) {
			int e = stream_submit(st);
			if (e) {
				st->src_done = true;
				st->src_err = st->src_err ? st->src_err : e;
			}
		}
	}
}

static void stream_unlink(struct stream *st, struct req *r)
{
	struct req **pp = &st->head, *prev = NULL;

	while (*pp != r) {
		prev = *pp;
		pp = &(*pp)->st_next;
	}
	*pp = r->st_next;
	if (st->tail == r)
		st->tail = prev;
	st->nbatches--;
	st->bytes -= r->bytes;
}

static bool cond_any_batch(struct mp_pool *p, void *ctx)
{
	struct stream *st = ctx;

	for (struct req *r = st->head; r; r = r->st_next)
		if (r->finished || mp__req_poll(p, r))
			return true;
	return false;
}

/* Make the next batch to deliver current.  Return: 0, or an error of the
 * wait. */
static int stream_next_batch(struct stream *st, mp__deadline deadline)
{
	struct req *r = NULL;

	if (st->ordered) {
		r = st->head;
		if (!r->finished && st->pool) {
			int e = mp__pool_wait(st->pool, mp__cond_req, r, r->id,
					      WAIT_ALL, deadline);
			if (e)
				return e;
		}
	} else {
		if (st->pool) {
			int e = mp__pool_wait(st->pool, cond_any_batch, st, 0,
					      WAIT_ANY, deadline);
			if (e)
				return e;
		}
		for (r = st->head; r && !r->finished; r = r->st_next)
			;
		if (!r) /* the pool is gone: every batch is finished */
			MP__FATAL("pool: stream without a finished batch");
	}
	stream_unlink(st, r);
	st->cur = r;
	st->cur_pos = 0;
	return 0;
}

mp_imap *mp_pool_imap_source(mp_pool *pool, mp_task_fn fn,
			     mp_source_fn source, void *ctx,
			     size_t chunksize, bool ordered)
{
	if (!pool || !fn || !source) {
		errno = EINVAL;
		return NULL;
	}
	int e = mp__submit_check(pool);
	if (e) {
		errno = -e;
		return NULL;
	}
	size_t chunk_max = chunksize;
	if (chunksize == 0) {
		chunksize = STREAM_CHUNK;
		chunk_max = STREAM_CHUNK_AUTO;
	}
	if (chunksize > MP_POOL_STREAM_CHUNK_MAX) {
		errno = EINVAL;
		return NULL;
	}
	struct req *r = calloc(1, sizeof(*r));
	struct stream *st = calloc(1, sizeof(*st));
	if (!r || !st) {
		free(r);
		free(st);
		errno = ENOMEM;
		return NULL;
	}
	r->kind = JOB_STREAM;
	r->finished = true; /* never published: mp_imap_free releases it */
	r->pool = pool;
	r->stream = st;
	st->pool = pool;
	st->fn = fn;
	st->source = source;
	st->ctx = ctx;
	st->chunksize = chunksize;
	st->chunk_max = chunk_max;
	st->window = 2 * (size_t)pool->nworkers + 2;
	st->ordered = ordered;
	st->pool_next = pool->streams;
	pool->streams = st;
	stream_fill(st);
	return (mp_imap *)r;
}

/* Deliver the next item of the current batch. */
static int deliver(struct stream *st, size_t *index, mp_buf *out)
{
	/* A batch is one chunk: its results are all in blks[0]. */
	struct req *b = st->cur;
	size_t i = st->cur_pos++;
	size_t len = b->outs[i].len;
	int ret = b->errs[i];

	if (index)
		*index = b->base + i;
	*out = (mp_buf){NULL, 0};
	if (!ret && len) {
		out->data = malloc(len);
		if (MP__UNLIKELY(!out->data))
			return -ENOMEM;
		const char *blk = (const char *)(intptr_t)b->blks[0];
		copy_small(out->data, blk + b->outs[i].off, len);
		out->len = len;
	}
	return ret;
}

/* Everything but the next result of the batch being delivered. */
static __attribute__((noinline)) int
next_buf_slow(mp_imap *it, size_t *index, mp_buf *out, double timeout_s)
{
	if (!it || !out || it->r.kind != JOB_STREAM ||
	    !mp__timeout_ok(timeout_s)) {
		if (index)
			*index = SIZE_MAX;
		if (out)
			*out = (mp_buf){NULL, 0};
		return -EINVAL;
	}
	struct stream *st = it->r.stream;
	struct mp_pool *p = st->pool;
	int ret;

	/* The window only gains room when a batch leaves it: the source is
	 * pulled then, in a batch's worth, not at every item. */
	if (st->cur && st->cur_pos >= st->cur->n) {
		stream_done(st, st->cur);
		st->cur = NULL;
	}
	if (!st->cur) {
		stream_fill(st);
		if (!st->head) {
			ret = st->src_err ? st->src_err : MP_ECLOSED;
			st->src_err = 0;
			goto none;
		}
		ret = stream_next_batch(st, mp__deadline_in(timeout_s));
		if (ret)
			goto none;
		stream_fill(st);
	}
	ret = deliver(st, index, out);
	goto out;
none:
	if (index)
		*index = SIZE_MAX;
	*out = (mp_buf){NULL, 0};
out:
	if (p && p->cbq)
		mp__pool_dispatch(p);
	return ret;
}

/* Most calls take the next result of the batch being delivered: that path
 * is kept to a few loads, the malloc and the copy (bench-pool-data's
 * stream: the call was a quarter of the parent's instructions). */
int mp_imap_next_buf(mp_imap *it, size_t *index, mp_buf *out,
		     double timeout_s)
{
	if (MP__LIKELY(it && out && it->r.kind == JOB_STREAM &&
		       mp__timeout_ok(timeout_s))) {
		struct stream *st = it->r.stream;
		struct req *b = st->cur;
		size_t i = st->cur_pos;
		if (MP__LIKELY(b && i < b->n && !b->errs[i] &&
			       b->outs[i].len &&
			       !(st->pool && st->pool->cbq))) {
			size_t len = b->outs[i].len;
			const char *src = (const char *)(intptr_t)b->blks[0] +
					  b->outs[i].off;
			/* Workers on other CPUs wrote these: ask for the
			 * lines ahead, or each first read of one waits for
			 * it (bench-pool-data's stream: 80 -> 70 ms for 2 M
			 * items; 4x further ahead was no better). */
			__builtin_prefetch(&b->errs[i + 32]);
			__builtin_prefetch(&b->outs[i + 8]);
			__builtin_prefetch(src + 256);
			void *d = malloc(len);
			if (MP__LIKELY(d)) {
				copy_small(d, src, len);
				st->cur_pos = i + 1;
				if (index)
					*index = b->base + i;
				*out = (mp_buf){d, len};
				return 0;
			}
		}
	}
	return next_buf_slow(it, index, out, timeout_s);
}

void mp__stream_release(struct req *r)
{
	struct stream *st = r->stream;
	struct req *b, *next;

	if (!st)
		return;
	if (st->pool) {
		struct stream **pp = &st->pool->streams;
		while (*pp != st)
			pp = &(*pp)->pool_next;
		*pp = st->pool_next;
	}
	if (st->cur)
		mp__req_release(st->cur);
	for (b = st->head; b; b = next) {
		next = b->st_next;
		mp__req_drop(b); /* one still running is freed when done */
	}
	while (st->nspare)
		mp_shared_free(st->spare[--st->nspare]);
	if (st->gather)
		mp__req_release(st->gather);
	free(st);
}

void mp__pool_forget_streams(struct mp_pool *p)
{
	for (struct stream *st = p->streams; st; st = st->pool_next)
		st->pool = NULL;
	p->streams = NULL;
}
