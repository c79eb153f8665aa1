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
	if (!it || !mp__timeout_ok(timeout_s))
		return -EINVAL;
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

