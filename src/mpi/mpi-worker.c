/* SPDX-License-Identifier: MIT */
/*
 * A worker rank: take chunks from rank 0 in the order they come, run
 * them, send each chunk's results back as one message, until rank 0 says
 * stop.  Results go out with MPI_Isend from one of two buffers, so the
 * next chunk runs while the last one's results are still on the wire.
 * Functions are resolved from their (build-id, offset) once and cached.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi-internal.h"

#define FN_CACHE 16
#define SPIN_NS (100 * 1000)
#define YIELD_NS (2 * 1000 * 1000)
#define NAP_NS (50 * 1000)

struct fn_cache {
	struct mp__fnid id[FN_CACHE];
	mp__fn fn[FN_CACHE];
	unsigned n, next;
};

struct outbuf {
	char *b;
	size_t cap;
	MPI_Request req;
};

/* More ranks on this machine than CPUs: a spinning rank would hold the
 * CPU that the rank it waits for needs. */
static bool oversubscribed(void)
{
	static int v = -1;

	if (v < 0) {
		const char *s = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
		v = s && atoi(s) > mp_cpu_count();
	}
	return v;
}

void mp__mpi_idle(int64_t idle_ns)
{
	if (idle_ns < SPIN_NS && !oversubscribed())
		return;
	if (idle_ns < YIELD_NS) {
		sched_yield();
		return;
	}
	struct timespec ts = {0, NAP_NS};
	nanosleep(&ts, NULL);
}

/* Return: 0 and *fn, or -ENOENT / -EFAULT (said once on stderr). */
static int resolve(struct fn_cache *c, const struct mp__fnid *id, mp__fn *fn)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->id[i].offset == id->offset &&
		    c->id[i].id_len == id->id_len &&
		    memcmp(c->id[i].build_id, id->build_id, id->id_len) == 0) {
			*fn = c->fn[i];
			return 0;
		}
	}
	int e = mp__fnid_resolve(id, fn);
	if (e) {
		static int said;
		if (!said++) {
			int rank = -1;
			MPI_Comm_rank(MPI_COMM_WORLD, &rank);
			fprintf(stderr,
				"multiproc-mpi: rank %d cannot find a task "
				"function (%s): every rank must run the same "
				"executable and libraries\n",
				rank, strerror(-e));
		}
		return e;
	}
	unsigned k = c->n < FN_CACHE ? c->n++ : c->next++ % FN_CACHE;
	c->id[k] = *id;
	c->fn[k] = *fn;
	return 0;
}

/* The result buffer to fill next, at least cap bytes, its last send
 * done. */
static char *out_take(struct outbuf *o, size_t cap)
{
	MPI_Wait(&o->req, MPI_STATUS_IGNORE);
	if (o->cap < cap) {
		free(o->b);
		o->b = malloc(cap);
		o->cap = o->b ? cap : 0;
	}
	return o->b;
}

static void send_fixed(struct outbuf *o, const struct task_hdr *h,
		       const char *in, mp__fn f, int ferr)
{
	size_t count = h->kind == JOB_APPLY ? 1 : h->count;
	size_t errs = h->kind == JOB_MAP && h->want_errs ? count * 4 : 0;
	size_t outs = h->kind == JOB_APPLY ? h->out_size : count * h->out_size;
	size_t total = sizeof(struct chunk_rec) + errs + outs;
	char *b = out_take(o, total);
	if (!b) {
		fprintf(stderr, "multiproc-mpi: out of memory for results\n");
		MPI_Abort(MPI_COMM_WORLD, 12);
	}
	struct chunk_rec rec = {0};
	/* The results right after the record (16-byte aligned, as in the
	 * local pool's blocks), then the errors, written with memcpy (at
	 * any alignment). */
	char *out = b + sizeof(rec);
	char *ev = out + outs;
	size_t len = total;

	if (outs)
		memset(out, 0, outs);
	if (errs)
		memset(ev, 0, errs);
	if (ferr) {
		rec.err = ferr;
		rec.value = (int64_t)h->lo;
		for (size_t i = 0; errs && i < count; i++)
			memcpy(ev + i * 4, &ferr, 4);
	} else if (h->kind == JOB_APPLY) {
		mp_apply_fn fn = (mp_apply_fn)f;
		ssize_t r = fn(in, h->in_size, out, h->out_size);
		if (r > (ssize_t)h->out_size)
			rec.err = -EOVERFLOW;
		else if (r < 0)
			rec.err = r < INT32_MIN ? -EINVAL : (int32_t)r;
		else
			rec.value = r;
		len = sizeof(rec) + (size_t)rec.value;
	} else {
		mp_map_fn fn = (mp_map_fn)f;
		for (size_t i = 0; i < count; i++) {
			int r = fn(h->in_size ? in + i * h->in_size : NULL,
				   h->out_size ? out + i * h->out_size : NULL);
			if (MP__UNLIKELY(r)) {
				if (errs)
					memcpy(ev + i * 4, &r, 4);
				if (!rec.err) {
					rec.err = r;
					rec.value = (int64_t)(h->lo + i);
				}
			}
		}
	}
	memcpy(b, &rec, sizeof(rec));
	MPI_Isend(b, (int)len, MPI_BYTE, 0, TAG_RES, MPI_COMM_WORLD, &o->req);
}

/* A JOB_BUFS chunk: the results gather in one block behind the headers
 * (an mp_out without a worker slot grows it with realloc). */
static void send_bufs(struct outbuf *o, const struct task_hdr *h,
		      const char *msg, mp__fn f, int ferr)
{
	const struct buf_item *items = (const void *)(msg + sizeof(*h));
	const char *in = (const char *)(items + h->count);
	size_t head = sizeof(struct bufs_hdr) +
		      h->count * sizeof(struct bufs_res);
	MPI_Wait(&o->req, MPI_STATUS_IGNORE);
	mp_out out = {.w = NULL, .blk = o->b, .cap = o->cap, .used = head};
	if (out.cap < head + 4096) {
		char *nb = realloc(out.blk, head + 4096);
		if (!nb) {
			fprintf(stderr, "multiproc-mpi: out of memory\n");
			MPI_Abort(MPI_COMM_WORLD, 12);
		}
		out.blk = nb;
		out.cap = head + 4096;
	}
	struct bufs_hdr bh = {.seq = h->seq};
	mp_task_fn fn = (mp_task_fn)f;
	for (size_t i = 0; i < h->count; i++) {
		/* Offsets, not a running sum: a stream's items are 8-aligned
		 * in their batch (mp__batch_add), not end to end. */
		size_t off = items[i].in_off - items[0].in_off;
		struct bufs_res res = {0};
		out.start = out.used;
		out.err = 0;
		int e = ferr;
		if (!e) {
			int r = fn(in + off, items[i].in_len, &out);
			e = out.err ? out.err : r;
		}
		res.err = e;
		if (e) {
			out.used = out.start;
			if (!bh.rec.err) {
				bh.rec.err = e;
				bh.rec.value = (int64_t)(h->lo + i);
			}
		} else {
			res.len = out.used - out.start;
		}
		memcpy(out.blk + sizeof(bh) + i * sizeof(res), &res,
		       sizeof(res));
	}
	if (out.used > INT_MAX) {
		fprintf(stderr, "multiproc-mpi: the results of one chunk "
				"pass 2 GiB: use a smaller chunksize\n");
		MPI_Abort(MPI_COMM_WORLD, 7);
	}
	memcpy(out.blk, &bh, sizeof(bh));
	o->b = out.blk;
	o->cap = out.cap;
	MPI_Isend(o->b, (int)out.used, MPI_BYTE, 0, TAG_BUFS, MPI_COMM_WORLD,
		  &o->req);
}

void mp__mpi_serve(const mp_pool_opts *opts)
{
	struct fn_cache cache = {0};
	struct outbuf outs[2] = {{.req = MPI_REQUEST_NULL},
				 {.req = MPI_REQUEST_NULL}};
	unsigned turn = 0;
	char *in = NULL;
	size_t in_cap = 0;

	if (opts && opts->initializer)
		opts->initializer(opts->initargs);
	for (;;) {
		MPI_Message m;
		MPI_Status st;
		int got = 0;
		int64_t t0 = 0;
		for (;;) {
			MPI_Improbe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &got, &m,
				    &st);
			if (got)
				break;
			int64_t now = mp__now_ns();
			if (!t0)
				t0 = now;
			mp__mpi_idle(now - t0);
		}
		int len = 0;
		MPI_Get_count(&st, MPI_BYTE, &len);
		if ((size_t)len > in_cap) {
			free(in);
			in_cap = (size_t)len;
			in = malloc(in_cap);
			if (!in) {
				fprintf(stderr, "multiproc-mpi: out of memory "
						"for a task of %d bytes\n",
					len);
				MPI_Abort(MPI_COMM_WORLD, 12);
			}
		}
		MPI_Mrecv(in, len, MPI_BYTE, &m, &st);
		if (st.MPI_TAG == TAG_STOP)
			break;
		struct task_hdr h;
		memcpy(&h, in, sizeof(h));
		mp__fn f = NULL;
		int ferr = resolve(&cache, &h.fn, &f);
		struct outbuf *o = &outs[turn++ & 1];
		if (h.kind == JOB_BUFS)
			send_bufs(o, &h, in, f, ferr);
		else
			send_fixed(o, &h, in + sizeof(h), f, ferr);
	}
	for (int i = 0; i < 2; i++) {
		MPI_Wait(&outs[i].req, MPI_STATUS_IGNORE);
		free(outs[i].b);
	}
	free(in);
}
