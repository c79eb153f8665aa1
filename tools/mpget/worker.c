/* SPDX-License-Identifier: MIT */
/*
 * A worker process: takes jobs from the job queue as long as it has free
 * slots, runs them on its engine (fetch.c), and puts every outcome on the
 * result queue.  It ends when the job queue is closed and drained and its
 * last transfer is done, or when the parent raises the stop flag (Ctrl-C):
 * then it keeps its .part files, reports what it had under way and leaves.
 *
 * libcurl handles are made here, after fork(), and never shared.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpget.h"

/* How long a worker waits on an empty queue or a quiet network before it
 * looks at the stop flag again: the latency of Ctrl-C. */
#define TICK_MS 100

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

static int report(void *ctx, const struct result_msg *r, const char *final,
		  const char *error)
{
	struct worker_ctx *w = ctx;
	char buf[MSG_MAX];
	struct result_msg *m = (struct result_msg *)buf;
	size_t a = final ? strlen(final) : 0;
	size_t b = error ? strlen(error) : 0;
	int rc;

	if (a > MAX_NAME_LEN + 32)
		a = MAX_NAME_LEN + 32;
	if (b > 1024)
		b = 1024;
	if (r->kind == RES_DONE && r->index == w->redoing)
		w->redoing = NO_JOB;
	*m = *r;
	memcpy(m->text, final ? final : "", a);
	m->text[a] = '\0';
	memcpy(m->text + a + 1, error ? error : "", b);
	m->text[a + 1 + b] = '\0';
	/* Wait as long as it takes: the parent always drains results. */
	do {
		rc = mp_queue_put(w->results, m, sizeof(*m) + a + b + 2,
				  TICK_MS / 1000.0);
	} while (rc == -ETIMEDOUT && !got_signal);
	return rc;
}

/* Mark a job as ours, so that if we die the parent knows to give it to
 * our replacement.  A job taken from the queue is ours from the get; if
 * we die between the get and this store the job is reported lost, never
 * silently dropped (the parent fails every job without a result). */
static void take(struct worker_ctx *w, uint32_t index)
{
	atomic_store_explicit(&w->owner[index], w->serial,
			      memory_order_relaxed);
}

/* A job that cannot be started fails by itself: were the worker to exit
 * instead, the job would be redone and fail again, then be reported as
 * lost to a worker death that never was. */
static void refuse(struct worker_ctx *w, uint32_t index, int err)
{
	struct result_msg r = {
		.index = index, .kind = RES_DONE, .status = ST_FAILED,
	};
	char why[128];

	snprintf(why, sizeof(why), "cannot start the transfer: %s",
		 mp_strerror(err));
	report(w, &r, NULL, why);
}

static void add(struct worker_ctx *w, struct engine *e, const char *msg,
		size_t len)
{
	int r = engine_add(e, (const struct job_msg *)msg, len);

	if (r < 0)
		refuse(w, ((const struct job_msg *)msg)->index, r);
}

static bool stopping(const struct worker_ctx *w)
{
	return got_signal ||
	       atomic_load_explicit(&w->sh->stop, memory_order_relaxed);
}

int worker_main(void *arg)
{
	struct worker_ctx *w = arg;
	struct sigaction sa = {.sa_handler = on_signal};
	char msg[sizeof(struct job_msg) + MAX_URL_LEN + MAX_NAME_LEN + 16];
	struct opts o = *w->o;
	struct engine *e;
	bool input_done = false;
	int ret = 0;

	/* Ctrl-C reaches the whole process group: finish cleanly. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* libcurl mallocs a receive buffer (CURLOPT_BUFFERSIZE, 256 KiB)
	 * per transfer and frees it at the end; with glibc's defaults the
	 * free gives the pages back, and the next transfer takes a page
	 * fault per 4 KiB again (a few per cent of a small file's cost,
	 * perf says).  Keep them: a heap of a few MiB per worker. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	o.max_per_host = w->max_per_host;
	e = engine_new(&o, w->dirfd, &w->sh->w[w->index],
		       w->o->limit_rate ? &w->sh->rate : NULL, w->names,
		       &w->sh->placing[w->index], w->slots, report, w);
	if (!e)
		return 3;
	while (!stopping(w)) {
		/* A predecessor's jobs first, one at a time: if one of
		 * them kills us too, it alone is blamed for it. */
		if (w->nretry > 0 && w->redoing == NO_JOB &&
		    engine_has_free_slot(e)) {
			uint32_t index = *w->retry++;
			size_t len;

			w->nretry--;
			len = job_msg_build(&w->jl->v[index], index, msg,
					    sizeof(msg));
			take(w, index);
			w->redoing = index;
			if (len == 0)
				refuse(w, index, -EMSGSIZE);
			else
				add(w, e, msg, len);
		}
		while (!input_done && engine_has_free_slot(e)) {
			/* Block only when there is nothing else to do. */
			double t = engine_idle(e) ? TICK_MS / 1000.0 : 0;
			ssize_t n = mp_queue_get(w->jobs, msg, sizeof(msg), t);

			if (n == -ETIMEDOUT)
				break;
			if (n < 0) {
				/* MP_ECLOSED: all jobs are out.  Anything
				 * else is as final. */
				if (n != MP_ECLOSED)
					ret = 4;
				input_done = true;
				break;
			}
			take(w, ((struct job_msg *)msg)->index);
			add(w, e, msg, (size_t)n);
		}
		if (engine_idle(e)) {
			if (input_done && w->nretry == 0)
				break;
			continue;
		}
		engine_run(e, TICK_MS);
	}
	if (stopping(w))
		engine_interrupt(e);
	if (o.save_cookies) {
		char jar[4096];

		if (cookies_jar_name(o.save_cookies, w->index, jar,
				     sizeof(jar)) == 0)
			engine_save_cookies(e, jar);
	}
	engine_free(e);
	/* Stopped by a signal that was not the parent's stop: say so, so
	 * that the parent replaces us and redoes what we held. */
	if (got_signal && !atomic_load(&w->sh->stop))
		ret = 6;
	return ret;
}
