/* SPDX-License-Identifier: MIT */
/*
 * Pool maps over variable-size items (mp_pool_map_bufs, and the batches of
 * mp_pool_imap_source).
 *
 * Inputs: the parent copies every item of a job into one block of the
 * shared arena (the arena is mapped before any worker is forked, at the
 * same address in every process, so workers forked long ago see blocks
 * allocated now): per item a struct buf_item (offset and length), then the
 * bytes.  One allocation and one memcpy per item, no system call.
 *
 * Results: each chunk's inputs are followed in the same block by a result
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
 * 10-100 bytes, perf): the map took 20-25 ms, of which the parent spent
 * 3 ms making the job (mp_shared_alloc zeroes the 11 MB block, and its
 * pages fault in) and the workers 10 ms, mostly growing result blocks
 * from 4 KiB by doubling, each zeroed and copied, and faulting in fresh
 * pages.  So a synchronous map takes the pool's staging block when it
 * fits (pool-stage.c: kept, not zeroed again, its pages already mapped in
 * every process that touched it), and a stream recycles the blocks of
 * the batches it delivered (pool-imap.c); only the records, the block
 * pointers and the errors are zeroed, the rest is written before it is
 * read.
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
	mp_out o = {.w = w};
	int32_t err = 0;

	if (hi > lo) {
		size_t off = area_of(items, lo, hi, &o.cap);
		o.blk = (char *)in + off;
	}

	for (uint64_t i = lo; i < hi; i++) {
		o.start = o.used;
		o.err = 0;
		int r = fn(in + items[i].in_off, items[i].in_len, &o);
		int e = o.err ? o.err : r;
		errs[i] = e;
		if (e) {
			o.used = o.start; /* drop what it wrote */
			outs[i] = (struct buf_out){0, 0};
			if (!err) {
				err = e;
				*value = (int64_t)i;
			}
		} else {
			outs[i] = (struct buf_out){o.start, o.used - o.start};
		}
	}
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

/* A JOB_BUFS request (n items, chunksize) in a block of at least total
 * bytes: spare when it is that large, else the stage when staged and it
 * fits, else a new block; its head zeroed. */
static int bufs_req(struct mp_pool *p, const struct layout *l, size_t n,
		    size_t chunksize, size_t total, bool staged, void *spare,
		    size_t spare_size, struct req **out_r)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->block_size = total;
	if (spare && spare_size >= total) {
		r->block = spare;
		r->block_size = spare_size;
	} else if (staged) {
		r->block = mp__stage_take(p, total);
	}
	if (r->block) {
		memset(r->block, 0, l->zeroed); /* reused: see the top */
	} else {
		r->block = mp_shared_alloc(total);
		if (!r->block && staged && mp__stage_drop_idle(p))
			r->block = mp_shared_alloc(total);
	}
	if (!r->block) {
		free(r);
		return -ENOMEM;
	}
	r->kind = JOB_BUFS;
	r->n = n;
	r->chunksize = chunksize;
	r->nchunks = l->nchunks;
	point_into(r, l);
	*out_r = r;
	return 0;
}

int mp__bufs_prepare(struct mp_pool *p, const mp_buf *in, size_t n,
		     size_t chunksize, bool staged, struct req **out_r)
{
	size_t total_in = 0, data = 0;

	if (n && !in)
		return -EINVAL;
	if (chunksize == 0)
		chunksize = mp__auto_chunksize(p, n);
	/* k counts the items of the current chunk: no division per item
	 * (two of them were most of this loop's time at 8-byte items). */
	for (size_t i = 0, chunk = 0, k = 0; i < n; i++) {
		if (in[i].len && !in[i].data)
			return -EINVAL;
		if (__builtin_add_overflow(total_in, in[i].len, &total_in) ||
		    total_in > SIZE_MAX / 8)
			return -EINVAL;
		chunk += in[i].len;
		if (++k == chunksize || i + 1 == n) {
			/* inputs, then the result area (area_of) */
			data += align16(chunk) + align16(chunk + 8 * k);
			chunk = 0;
			k = 0;
		}
	}
	struct layout l;
	if (layout_of(n, chunksize, &l) || data > SIZE_MAX / 4)
		return -EINVAL;
	struct req *r;
	/* Always some data bytes: an empty item points at them. */
	int e = bufs_req(p, &l, n, chunksize, l.head + data + 16, staged,
			 NULL, 0, &r);
	if (e)
		return e;
	r->bytes = total_in;
	char *b = r->sh_in;
	/* Items that lie end to end in the caller's memory (one big
	 * allocation cut in pieces) are copied in one memcpy per run of
	 * them, not one per item. */
	size_t off = 0, lo = 0, k = 0;
	const char *run = NULL;
	size_t run_len = 0, run_off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = in[i].len;
		r->items[i] = (struct buf_item){off, len};
		if (len) {
			const char *d = in[i].data;
			if (run && d == run + run_len) {
				run_len += len;
			} else {
				if (run_len)
					memcpy(b + run_off, run, run_len);
				run = d;
				run_len = len;
				run_off = off;
			}
		}
		off += len;
		if (++k == chunksize || i + 1 == n) {
			if (run_len)
				memcpy(b + run_off, run, run_len);
			run = NULL;
			run_len = 0;
			size_t cap;
			off = area_of(r->items, lo, i + 1, &cap) + cap;
			lo = i + 1;
			k = 0;
		}
	}
	if (l.nchunks == 0)
		r->finished = true;
	*out_r = r;
	return 0;
}

/*
 * A stream's batch is one chunk, gathered in place: each item the source
 * gives is copied straight into the block's input area (its record
 * written beside it), so the parent touches an item's bytes once on the
 * way in, not twice through a staging buffer (bench-pool-data's stream,
 * 8-byte items: the staging copy, and the two passes of
 * mp__bufs_prepare over the records, were ~25% of the parent's time).
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

int mp__batch_open(struct mp_pool *p, size_t cap, size_t in_min,
		   void *spare, size_t spare_size, struct req **out_r)
{
	struct layout l;
	size_t in_cap = in_min > 32 * cap ? in_min : 32 * cap;

	if (!cap || layout_of(cap, cap, &l) || in_min > SIZE_MAX / 8)
		return -EINVAL;
	size_t total = batch_total(l.head, cap, in_cap);
	if (spare && spare_size > total)
		total = spare_size; /* use all of it */
	int e = bufs_req(p, &l, 0, cap, total, false, spare, spare_size,
			 out_r);
	if (e)
		return e;
	(*out_r)->in_cap = batch_in_cap((*out_r)->block_size, l.head, cap);
	(*out_r)->cap = cap;
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

int mp__bufs_collect(struct req *r, size_t lo, size_t hi, mp_buf *out,
		     int *errs)
{
	int first = 0;
	size_t c = lo / r->chunksize, c_end = (c + 1) * r->chunksize;
	const char *blk =
		lo < hi ? (const char *)(intptr_t)r->blks[c] : NULL;

	for (size_t i = lo; i < hi; i++) {
		int e = r->errs[i];
		mp_buf *o = &out[i - lo];
		if (i == c_end) { /* the next chunk: no division per item */
			c++;
			c_end += r->chunksize;
			blk = (const char *)(intptr_t)r->blks[c];
		}
		o->data = NULL;
		o->len = 0;
		/* The records and results were written by workers, on
		 * other CPUs: ask for them ahead of the copies (see
		 * mp_imap_next_buf). */
		__builtin_prefetch(&r->errs[i + 32]);
		__builtin_prefetch(&r->outs[i + 8]);
		if (!e && r->outs[i].len) {
			size_t len = r->outs[i].len;
			__builtin_prefetch(blk + r->outs[i].off + 256);
			o->data = malloc(len);
			if (o->data) {
				memcpy(o->data, blk + r->outs[i].off, len);
				o->len = len;
			} else {
				e = -ENOMEM;
			}
		}
		if (errs)
			errs[i - lo] = e;
		if (e && !first)
			first = e;
	}
	return first;
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

/* Collecting as chunks finish: a synchronous map's results are copied
 * chunk by chunk while the workers run the later chunks, so the parent's
 * share (a malloc and a copy per item: 40-70 ns an item, most of the
 * parent's time) overlaps theirs instead of following it. */
struct chunk_wait {
	struct req *r;
	size_t c;
};

static bool cond_chunk_done(struct mp_pool *p, void *ctx)
{
	struct chunk_wait *cw = ctx;

	if (mp__req_poll(p, cw->r))
		return true;
	return atomic_load_explicit(&cw->r->recs[cw->c].state,
				    memory_order_acquire);
}

int mp_pool_map_bufs(mp_pool *pool, mp_task_fn fn, const mp_buf *in,
		     size_t n, mp_buf *out, int *errs, size_t chunksize)
{
	if (!pool || !fn || (n && (!in || !out)))
		return -EINVAL;
	int e = mp__submit_check(pool);
	if (e)
		return e;
	if (n == 0)
		return 0;
	if (!pool->stopping)
		mp__check_workers(pool); /* as mp_pool_map */
	struct req *r;
	e = mp__bufs_prepare(pool, in, n, chunksize, true, &r);
	if (e)
		return e;
	e = mp__publish(pool, r, (uintptr_t)fn);
	if (e) {
		mp__req_release(r);
		return e;
	}
	/* A chunk is final once committed (state) or once the request is
	 * finished (a lost chunk's errors are set then). */
	int ce = 0;
	for (size_t c = 0; c < r->nchunks; c++) {
		struct chunk_wait cw = {r, c};
		e = mp__pool_wait(pool, cond_chunk_done, &cw, r->id, WAIT_ANY,
				  MP__NEVER);
		if (e) /* cannot happen without a deadline */
			MP__FATAL("pool: map wait failed");
		size_t lo = c * r->chunksize;
		size_t hi = lo + r->chunksize < n ? lo + r->chunksize : n;
		int ec = mp__bufs_collect(r, lo, hi, out + lo,
					  errs ? errs + lo : NULL);
		if (!ce)
			ce = ec;
	}
	e = mp__pool_wait(pool, mp__cond_req, r, r->id, WAIT_ALL, MP__NEVER);
	if (e)
		MP__FATAL("pool: map wait failed");
	if (!pool->stopping)
		mp__check_workers(pool);
	e = r->err ? r->err : ce;
	mp__bufs_release(r); /* before the block may become the stage */
	mp__stage_give(pool, r, r->block_size);
	mp__req_release(r);
	mp__pool_dispatch(pool);
	return e;
}
