/* SPDX-License-Identifier: MIT */
/*
 * Pool handles (apply_async, map_async), their completion callbacks,
 * mp_pool_poll and mp_async_wait_any.
 *
 * Callbacks run only at the end of a public pool call (mp__pool_dispatch),
 * never inside the machinery of a wait: there the pool's bookkeeping is
 * half done (a submission may be between picking its ring slot and taking
 * it), so a callback that submits would corrupt it.  At the end of a call
 * the state is whole, and a callback may call any pool function except
 * mp_pool_free (its caller still uses the pool).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool-internal.h"

/* Take r out of its pool's callback queue (its handle is freed). */
static void cbq_remove(struct mp_pool *p, struct req *r)
{
	struct req **pp = &p->cbq, *prev = NULL;

	while (*pp && *pp != r) {
		prev = *pp;
		pp = &(*pp)->cb_next;
	}
	if (!*pp)
		return;
	*pp = r->cb_next;
	if (p->cbq_tail == r)
		p->cbq_tail = prev;
	r->cb_queued = false;
}

int mp__pool_dispatch(struct mp_pool *p)
{
	struct req *r;
	int ran = 0;

	/* Each one is taken off the queue before it runs: a callback that
	 * waits (and so dispatches again) or frees its handle is fine. */
	while ((r = p->cbq)) {
		p->cbq = r->cb_next;
		if (!p->cbq)
			p->cbq_tail = NULL;
		r->cb_queued = false;
		void (*cb)(mp_async *, void *) = r->cb;
		r->cb = NULL;
		p->in_callback++;
		cb((mp_async *)r, r->cb_ctx);
		p->in_callback--;
		p->callbacks_run++;
		ran++;
	}
	return ran;
}

void mp__req_drop(struct req *r)
{
	if (r->cb_queued)
		cbq_remove(r->pool, r);
	r->cb = NULL;
	if (r->finished)
		mp__req_release(r);
	else
		r->orphan = true;
}

mp_async *mp_pool_apply_async(mp_pool *pool, mp_apply_fn fn, const void *arg,
			      size_t len, size_t result_cap)
{
	if (!pool || !fn || (len && !arg) || len > SIZE_MAX / 4 ||
	    result_cap > SIZE_MAX / 4) {
		errno = EINVAL;
		return NULL;
	}
	int e = mp__submit_check(pool);
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
	e = mp__publish(pool, r, (uintptr_t)fn);
	if (e) {
		mp__req_release(r);
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
	int e = mp__submit_map(pool, fn, in, in_size, out, out_size, n,
			       chunksize, false, false, &r);
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
	struct mp_pool *p = r->pool;
	mp__pool_pump(p);
	bool ready = mp__req_poll(p, r);
	mp__pool_dispatch(p); /* may free a */
	return ready;
}

int mp_async_wait(mp_async *a, double timeout_s)
{
	if (!a || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct req *r = &a->r;
	if (r->finished)
		return 0;
	struct mp_pool *p = r->pool;
	int e = mp__pool_wait(p, mp__cond_req, r, r->id, WAIT_ALL,
			      mp__deadline_in(timeout_s));
	mp__pool_dispatch(p); /* may free a */
	return e;
}

/* mp_async_wait without the callbacks, for mp_async_get: a's own callback
 * may free a, so get reads the result first. */
static int wait_quiet(mp_async *a, double timeout_s)
{
	if (!a || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct req *r = &a->r;
	if (r->finished)
		return 0;
	return mp__pool_wait(r->pool, mp__cond_req, r, r->id, WAIT_ALL,
			     mp__deadline_in(timeout_s));
}

static ssize_t get_result(struct req *r, void *buf, size_t cap)
{
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

ssize_t mp_async_get(mp_async *a, void *buf, size_t cap, double timeout_s)
{
	struct mp_pool *p = a && !a->r.finished ? a->r.pool : NULL;
	ssize_t e = wait_quiet(a, timeout_s);
	if (!e)
		e = get_result(&a->r, buf, cap);
	if (p)
		mp__pool_dispatch(p); /* may free a */
	return e;
}

void mp_async_free(mp_async *a)
{
	if (a)
		mp__req_drop(&a->r);
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


int mp_async_set_callback(mp_async *a, void (*cb)(mp_async *a, void *ctx),
			  void *ctx)
{
	if (!a)
		return -EINVAL;
	struct req *r = &a->r;
	if (r->cb_queued) /* finished, its callback not run yet: replace it */
		cbq_remove(r->pool, r);
	r->cb = cb;
	r->cb_ctx = ctx;
	if (!cb)
		return 0;
	if (!r->finished) {
		mp__pool_pump(r->pool);
		mp__req_poll(r->pool, r); /* queues it if it just finished */
		if (!r->finished)
			return 0;
		if (r->cb_queued)
			cbq_remove(r->pool, r);
	}
	/* Ready already: run it now (the pool may be gone: not used). */
	r->cb = NULL;
	cb(a, ctx);
	return 0;
}

/* Whether some unfinished request with a callback is in the pool. */
static bool any_callback(struct mp_pool *p, void *ctx)
{
	bool *pending = ctx;
	struct req *next;

	*pending = false;
	if (p->cbq)
		return true;
	for (struct req *r = p->active; r; r = next) {
		next = r->next;
		if (!r->cb)
			continue;
		mp__req_poll(p, r);
		if (p->cbq)
			return true;
		*pending = true;
	}
	return false;
}

int mp_pool_poll(mp_pool *pool, double timeout_s)
{
	if (!pool || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	bool pending;

	mp__pool_pump(pool);
	if (!any_callback(pool, &pending) && pending)
		mp__pool_wait(pool, any_callback, &pending, 0, WAIT_ANY,
			      mp__deadline_in(timeout_s));
	/* Count those that ran in callbacks' own pool calls too. */
	uint64_t before = pool->callbacks_run;
	mp__pool_dispatch(pool);
	uint64_t ran = pool->callbacks_run - before;
	return ran > INT32_MAX ? INT32_MAX : (int)ran;
}

struct any_ctx {
	mp_async *const *as;
	size_t n;
	size_t found;
};

static bool cond_any(struct mp_pool *p, void *ctx)
{
	struct any_ctx *c = ctx;

	for (size_t i = 0; i < c->n; i++) {
		struct req *r = &c->as[i]->r;
		if (r->finished || mp__req_poll(p, r)) {
			c->found = i;
			return true;
		}
	}
	return false;
}

int mp_async_wait_any(mp_async *const *as, size_t n, double timeout_s)
{
	if (!as || !n || n > INT32_MAX || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	struct mp_pool *p = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!as[i])
			return -EINVAL;
		if (as[i]->r.finished)
			return (int)i; /* its pool may be gone: not used */
		if (p && as[i]->r.pool != p)
			return -EINVAL; /* one wait cannot serve two pools */
		p = as[i]->r.pool;
	}
	struct any_ctx c = {.as = as, .n = n};
	int e = mp__pool_wait(p, cond_any, &c, 0, WAIT_ANY,
			      mp__deadline_in(timeout_s));
	mp__pool_dispatch(p);
	return e ? e : (int)c.found;
}
