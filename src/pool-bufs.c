/* SPDX-License-Identifier: MIT */
/*
 * Pool maps over variable-size items (mp_pool_map_bufs, and the batches of
 * mp_pool_imap_source).
 *
 * Inputs: the parent copies the items of a batch into one block of the
 * shared arena (the arena is mapped before any worker is forked, at the
 * same address in every process, so workers forked long ago see blocks
 * allocated now): per item a struct buf_item (offset and length), then the
 * bytes.  One copy per item, no system call.  mp_pool_map_bufs is a
 * stream over its array (see there).
 *
 * Results: a batch's inputs are followed in the same block by a result
 * area as large as they are plus 8 bytes an item (results are often about
 * as long as their items: a transform, a digest, a count).  A worker
 * writes its chunk's results there (mp_out_write appends) and, only when
 * they outgrow it, moves them to a block of its own from the arena (which
 * doubles when full), names it in blks[chunk] and commits the chunk.  The
 * parent copies each result into a malloc()ed buffer and frees the
 * worker's blocks (never the areas: they are part of the job's block).
 * The block a worker is filling is named in its slot (wslot.blk) once it
 * is its own, so when the worker dies or is killed (task_timeout) the
 * parent frees it; a death inside the arena's allocator loses at most that
 * one block (see arena.c).
 *
 * WHY the areas, and reused blocks (bench-pool-data, 100,000 strings of
 * 10-100 bytes, perf): a map in one job took 20-25 ms, of which the
 * workers spent 10 ms growing result blocks from 4 KiB by doubling, each
 * zeroed and copied, and faulting in fresh pages.  So a stream recycles
 * the blocks of the batches it delivered (pool-imap.c): only the records,
 * the block pointers and the errors are zeroed, the rest is written
 * before it is read, with streaming stores (mp__batch_add, JOB_NT_OUT).
 *
 * A result may be up to MP_POOL_RESULT_MAX bytes: past that the item fails
 * with -EMSGSIZE (its partial result is dropped) and the chunk goes on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool-internal.h"
#include "start.h"

#define OUT_MIN 4096

void mp_bufs_free(mp_buf *b, size_t n)
{
	if (!b)
		return;
	for (size_t i = 0; i < n; i++) {
		free(b[i].data);
		b[i].data = NULL;
		b[i].len = 0;
	}
}

static int out_grow(mp_out *o, size_t need)
{
	size_t cap = o->cap ? o->cap : OUT_MIN;

	while (cap < need)
		cap *= 2; /* need <= used + MP_POOL_RESULT_MAX: no overflow */
	if (!o->w) { /* another back end's worker: its own memory */
		char *rb = realloc(o->blk, cap);
		if (!rb)
			return -ENOMEM;
		o->blk = rb;
		o->cap = cap;
		return 0;
	}
	char *nb = mp_shared_alloc(cap);
	if (!nb)
		return -ENOMEM;
	if (o->used)
		memcpy(nb, o->blk, o->used);
	/* Name the new block before the old one goes: a death in between
	 * leaks the old one, never frees a block twice. */
	atomic_store_explicit(&o->w->blk, (int64_t)(intptr_t)nb,
			      memory_order_release);
	if (o->own)
		mp_shared_free(o->blk);
	o->blk = nb;
	o->cap = cap;
	o->own = true;
	return 0;
}

int mp_out_write(mp_out *out, const void *data, size_t len)
{
	if (!out || (len && !data))
		return -EINVAL;
	if (out->err)
		return out->err;
	if (len > MP_POOL_RESULT_MAX - (out->used - out->start))
		return out->err = -EMSGSIZE;
	if (!len)
		return 0;
	if (out->used + len > out->cap) {
		int e = out_grow(out, out->used + len);
		if (e)
			return out->err = e;
	}
	if (out->nt && !(out->used & 7)) /* see mp__run_bufs */
		mp__nt_copy_words((uint8_t *)out->blk + out->used, data, len);
	else
		memcpy(out->blk + out->used, data, len);
	out->used += len;
	return 0;
}

/* The result area of the chunk of items lo..hi (hi > lo): after the
 * chunk's inputs, which are contiguous; both sides compute it from the
 * items' input offsets, which only the parent writes. */
static size_t area_of(const struct buf_item *items, uint64_t lo, uint64_t hi,
		      size_t *cap)
{
	uint64_t start = items[lo].in_off;
	uint64_t end = items[hi - 1].in_off + items[hi - 1].in_len;

	*cap = align16((end - start) + 8 * (hi - lo));
	return align16(end);
}

/* Whether p lies in the request's own block (a result area). */
static bool in_block(const struct req *r, const void *p)
{
	const char *b = r->block, *x = p;
	return b && x >= b && x < b + r->block_size;
}

int32_t mp__run_bufs(struct pool_shared *s, struct wslot *w, struct job *j,
		     uint64_t c, int64_t *value)
{
	mp_task_fn fn = (mp_task_fn)mp__xlate((const void *)j->fn);
	struct buf_item *items = at(s, j->items_off);
	struct buf_out *outs = at(s, j->out_off);
	int64_t *blks = at(s, j->blks_off);
	int32_t *errs = at(s, j->errs_off);
	const char *in = at(s, j->in_off);
	uint64_t lo = c * j->chunksize;
	uint64_t hi = lo + j->chunksize < j->n ? lo + j->chunksize : j->n;
	mp_out o = {.w = w, .nt = j->flags & JOB_NT_OUT};
	int32_t err = 0;

	if (hi > lo) {
		size_t off = area_of(items, lo, hi, &o.cap);
		o.blk = (char *)in + off;
	}

	/* A stream's results, their records and errors are written with
	 * streaming stores (JOB_NT_OUT, nt-copy.h).  Each result then starts
	 * 8-aligned, so that mp_out_write can stream whole words (the area's
	 * 8 bytes an item leave room for the padding). */
	size_t align = o.nt ? 7 : 0;
	for (uint64_t i = lo; i < hi; i++) {
		o.used = (o.used + align) & ~align;
		o.start = o.used;
		o.err = 0;
		int r = fn(in + items[i].in_off, items[i].in_len, &o);
		int e = o.err ? o.err : r;
		struct buf_out rec = {0, 0};
		if (e) {
			o.used = o.start; /* drop what it wrote */
			if (!err) {
				err = e;
				*value = (int64_t)i;
			}
		} else {
			rec = (struct buf_out){o.start, o.used - o.start};
		}
		if (o.nt) {
			mp__nt_store4(&errs[i], (uint32_t)e);
			mp__nt_store8(&outs[i].off, rec.off);
			mp__nt_store8(&outs[i].len, rec.len);
		} else {
			errs[i] = e;
			outs[i] = rec;
		}
	}
	if (o.nt)
		mp__nt_fence(); /* before the commit's release store */
	/* Hand the block to the chunk, then forget it (see mp__bufs_drop_dead
	 * for a death between the two). */
	blks[c] = (int64_t)(intptr_t)o.blk;
	atomic_store_explicit(&w->blk, 0, memory_order_release);
	return err;
}

void mp__bufs_drop_dead(struct pool_shared *s, struct wslot *ws,
			struct req *r, uint64_t c1)
{
	void *blk = (void *)(intptr_t)atomic_load_explicit(
		&ws->blk, memory_order_acquire);

	(void)s;
	atomic_store_explicit(&ws->blk, 0, memory_order_relaxed);
	if (r && r->blks && c1 && c1 <= r->nchunks &&
	    !atomic_load_explicit(&r->recs[c1 - 1].state,
				  memory_order_acquire)) {
		/* Not committed: the chunk will run again or fail. */
		void *b = (void *)(intptr_t)r->blks[c1 - 1];
		r->blks[c1 - 1] = 0;
		if (b != blk && !in_block(r, b))
			mp_shared_free(b);
	}
	mp_shared_free(blk);
}

/* The head of a job's block for n items in chunks of chunksize: the
 * chunk records, result block pointers and errors (zeroed), then the
 * items' records and their results' (written before they are read); the
 * inputs and result areas follow it. */
struct layout {
	size_t nchunks, zeroed, outs_at, head;
};

static int layout_of(size_t n, size_t chunksize, struct layout *l)
{
	l->nchunks = n ? (n - 1) / chunksize + 1 : 0;
	size_t recs_sz = mul_add(l->nchunks, sizeof(struct chunk_rec), 0);
	size_t blks_sz = mul_add(l->nchunks, sizeof(int64_t), 0);
	size_t errs_sz = mul_add(n, sizeof(int32_t), 0);
	size_t items_sz = mul_add(n, sizeof(struct buf_item), 0);
	size_t outs_sz = mul_add(n, sizeof(struct buf_out), 0);
	if (recs_sz == SIZE_MAX || blks_sz == SIZE_MAX ||
	    errs_sz == SIZE_MAX || items_sz == SIZE_MAX ||
	    outs_sz == SIZE_MAX)
		return -EINVAL;
	l->zeroed = align16(recs_sz) + align16(blks_sz) + align16(errs_sz);
	l->outs_at = l->zeroed + align16(items_sz);
	l->head = l->outs_at + align16(outs_sz);
	return l->head > SIZE_MAX / 4 ? -EINVAL : 0;
}

/* Point r's arrays into its block, laid out as l. */
static void point_into(struct req *r, const struct layout *l)
{
	char *b = r->block;

	r->recs = (struct chunk_rec *)b;
	b += align16(l->nchunks * sizeof(struct chunk_rec));
	r->blks = (int64_t *)b;
	b += align16(l->nchunks * sizeof(int64_t));
	r->errs = (int32_t *)b;
	r->items = (struct buf_item *)(void *)((char *)r->block + l->zeroed);
	r->outs = (struct buf_out *)(void *)((char *)r->block + l->outs_at);
	r->sh_in = (char *)r->block + l->head;
}

/*
 * A stream's batch is one chunk, gathered in place: each item the source
 * gives is copied straight into the block's input area (its record
 * written beside it), so the parent touches an item's bytes once on the
 * way in, not twice through a staging buffer (bench-pool-data's stream,
 * 8-byte items: the staging copy, and two passes over the records, were
 * ~25% of the parent's time).
 * The block is laid out for `cap` items and in_cap input bytes with
 * their result area; a batch that outgrows in_cap moves to a block twice
 * as large (its head and inputs copied: they are position-independent,
 * offsets from the block).
 */
static size_t batch_total(size_t head, size_t cap, size_t in_cap)
{
	return head + align16(in_cap) + align16(in_cap + 8 * cap) + 16;
}

/* The input bytes a block of `size` bytes has room for. */
static size_t batch_in_cap(size_t size, size_t head, size_t cap)
{
	size_t fixed = head + 8 * cap + 64; /* two align16s and the 16 */
	return size > fixed ? (size - fixed) / 2 : 0;
}

int mp__batch_open(size_t cap, size_t in_min,
		   void *spare, size_t spare_size, struct req **out_r)
{
	struct layout l;
	size_t in_cap = in_min > 32 * cap ? in_min : 32 * cap;

	if (!cap || layout_of(cap, cap, &l) || in_min > SIZE_MAX / 8)
		return -EINVAL;
	size_t total = batch_total(l.head, cap, in_cap);
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (spare && spare_size >= total) { /* all of it */
		r->block = spare;
		total = spare_size;
		memset(r->block, 0, l.zeroed); /* reused: see the top */
	} else {
		r->block = mp_shared_alloc(total);
	}
	if (!r->block) {
		free(r);
		return -ENOMEM;
	}
	r->kind = JOB_BUFS;
	r->chunksize = cap;
	r->nchunks = l.nchunks;
	r->block_size = total;
	r->in_cap = batch_in_cap(total, l.head, cap);
	r->cap = cap;
	point_into(r, &l);
	*out_r = r;
	return 0;
}

int mp__batch_grow(struct req *r, size_t len)
{
	struct layout l;
	size_t need = r->bytes + len, in_cap = 2 * r->in_cap + 64;

	(void)layout_of(r->cap, r->cap, &l); /* was fine at open */
	if (need > SIZE_MAX / 8)
		return -EINVAL;
	while (in_cap < need)
		in_cap *= 2;
	size_t total = batch_total(l.head, r->cap, in_cap);
	void *nb = mp_shared_alloc(total);
	if (!nb)
		return -ENOMEM;
	memcpy(nb, r->block, l.head + r->bytes);
	mp_shared_free(r->block);
	r->block = nb;
	r->block_size = total;
	r->in_cap = batch_in_cap(total, l.head, r->cap);
	point_into(r, &l);
	return 0;
}

void mp__bufs_release(struct req *r)
{
	for (size_t c = 0; r->blks && c < r->nchunks; c++) {
		void *b = (void *)(intptr_t)r->blks[c];
		if (!in_block(r, b))
			mp_shared_free(b);
	}
	r->blks = NULL;
}

void *mp__bufs_keep_block(struct req *r, size_t *size)
{
	void *b = r->block;

	mp__bufs_release(r);
	*size = r->block_size;
	r->block = NULL;
	return b;
}

/*
 * mp_pool_map_bufs is an ordered stream over the array (pool-imap.c), not
 * one job with every input copied in before the first task runs.  WHY
 * (100,000 strings of 10-100 bytes, 2 workers, interleaved runs): the
 * stream overlaps the parent's copying in with the workers and its
 * copying out, keeps a few small blocks hot instead of one 11 MB block,
 * and streams their stores (mp__batch_add): 8-10 -> 11-13 M items/s warm,
 * 4-5 -> 9-10 on the first call.  And the inputs of one map no longer
 * have to fit in the arena at once.
 */
struct array_source {
	const mp_buf *in;
	size_t i, n;
};

static int array_next(void *ctx, mp_buf *item)
{
	struct array_source *a = ctx;

	if (a->i == a->n)
		return 0;
	*item = a->in[a->i++];
	return 1;
}

int mp_pool_map_bufs(mp_pool *pool, mp_task_fn fn, const mp_buf *in,
		     size_t n, mp_buf *out, int *errs, size_t chunksize)
{
	size_t total = 0;

	if (!pool || !fn || (n && (!in || !out)))
		return -EINVAL;
	int e = mp__submit_check(pool);
	if (e)
		return e;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) /* fail before anything runs */
		if ((in[i].len && !in[i].data) ||
		    __builtin_add_overflow(total, in[i].len, &total) ||
		    total > SIZE_MAX / 16)
			return -EINVAL;
	if (chunksize > MP_POOL_STREAM_CHUNK_MAX)
		chunksize = MP_POOL_STREAM_CHUNK_MAX;
	if (!pool->stopping)
		mp__check_workers(pool); /* as mp_pool_map */
	struct array_source src = {in, 0, n};
	mp_imap *it = mp_pool_imap_source(pool, fn, array_next, &src,
					  chunksize, true);
	if (!it)
		return -errno;
	/* Ordered: the results come in index order, so those delivered are
	 * out[0 .. got). */
	size_t got = 0;
	int first = 0, stop = 0;
	bool lost = false, broken = false;
	for (;;) {
		size_t i;
		mp_buf b;
		int r = mp_imap_next_buf(it, &i, &b, MP_FOREVER);
		if (r == MP_ECLOSED)
			break;
		if (i >= n) { /* the stream stopped: -ENOMEM, MP_ESTATE */
			stop = r;
			continue;
		}
		out[i] = b;
		if (errs)
			errs[i] = r;
		got = i + 1;
		lost |= r == MP_EWORKER;
		broken |= r == MP_EBROKEN;
		if (r && !first)
			first = r;
	}
	mp_imap_free(it);
	if (!pool->stopping)
		mp__check_workers(pool);
	if (got < n && !stop)
		stop = MP_EBROKEN; /* terminated under us */
	for (size_t i = got; i < n; i++) {
		out[i] = (mp_buf){NULL, 0};
		if (errs)
			errs[i] = stop;
	}
	/* As mp_pool_map: a broken pool, then a lost chunk, then the
	 * lowest-index item's error. */
	return stop ? stop : broken ? MP_EBROKEN : lost ? MP_EWORKER : first;
}
