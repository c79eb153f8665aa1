/* SPDX-License-Identifier: MIT */
/*
 * Progress, drawn by the parent from the workers' shared counters and the
 * results it has received.  On a terminal: one line redrawn a few times a
 * second (files done/total, bytes, rate, ETA, active transfers), and
 * under it a line for each of the biggest files under way (percent and
 * rate), from what the workers publish (struct top_file).  Otherwise: one
 * line per finished file.  -q shows neither.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpget.h"

#define REDRAW_SECS 0.2
#define FILE_LINES 3         /* per-file lines at most */
#define FILE_MIN (1 << 20)   /* smaller files get none */

/* A file shown on a line of its own, and its rate. */
struct shown {
	uint32_t index;
	uint64_t have;
	double t;
	double rate;
};

struct progress {
	const struct opts *o;
	struct shared *sh;
	const struct joblist *jl;
	struct shown shown[FILE_LINES];
	int workers;
	size_t total;
	size_t done;
	bool live;
	bool lines;
	double t0;
	double last_draw;
	/* a short window for the current rate */
	double win_t;
	uint64_t win_bytes;
	double rate;
};

struct progress *progress_new(const struct opts *o, struct shared *sh,
			      const struct joblist *jl, int workers,
			      size_t total)
{
	struct progress *p = calloc(1, sizeof(*p));
	int mode = o->progress;

	if (!p)
		return NULL;
	p->o = o;
	p->sh = sh;
	p->jl = jl;
	for (int i = 0; i < FILE_LINES; i++)
		p->shown[i].index = NO_JOB;
	p->workers = workers;
	p->total = total;
	p->t0 = now_mono();
	p->win_t = p->t0;
	if (mode == PROGRESS_AUTO)
		mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_LINES;
	if (o->verbosity < 1)
		mode = PROGRESS_NONE;
	p->live = mode == PROGRESS_BAR;
	p->lines = mode == PROGRESS_LINES || (p->live && o->verbosity > 1);
	return p;
}

double progress_elapsed(const struct progress *p)
{
	return now_mono() - p->t0;
}

static void totals(const struct progress *p, uint64_t *bytes,
		   uint64_t *expected, unsigned *active)
{
	*bytes = 0;
	*expected = 0;
	*active = 0;
	for (int i = 0; i < p->workers; i++) {
		const struct worker_stat *w = &p->sh->w[i];

		*bytes += atomic_load_explicit(&w->bytes, memory_order_relaxed);
		*expected += atomic_load_explicit(&w->expected,
						  memory_order_relaxed);
		*active += atomic_load_explicit(&w->active,
						memory_order_relaxed);
	}
}

void progress_job_done(struct progress *p, const struct job *j)
{
	char b[32];

	p->done++;
	if (!p->lines)
		return;
	if (j->status == ST_OK)
		infof("[%zu/%zu] ok %s (%s)", p->done, p->total, j->final,
		      human_bytes((double)j->bytes, b, sizeof(b)));
	else if (j->status == ST_SKIPPED)
		infof("[%zu/%zu] skipped %s: %s", p->done, p->total,
		      j->final ? j->final : j->name, j->error);
	else if (j->status == ST_FAILED)
		infof("[%zu/%zu] FAILED %s: %s", p->done, p->total, j->url,
		      j->error);
}

uint64_t progress_received(const struct progress *p)
{
	uint64_t bytes, expected;
	unsigned active;

	if (!p)
		return 0;
	totals(p, &bytes, &expected, &active);
	return bytes;
}

/* The biggest files under way, at most FILE_LINES of them, at least
 * FILE_MIN each; a line each in buf. */
static size_t file_lines(struct progress *p, double now, char *buf,
			 size_t cap, int *lines)
{
	struct top_file best[FILE_LINES];
	int n = 0;
	size_t len = 0;
	struct shown next[FILE_LINES];

	for (int w = 0; w < p->workers; w++) {
		for (int k = 0; k < TOP_FILES; k++) {
			const struct top_file *t = &p->sh->w[w].top[k];
			uint32_t index = atomic_load_explicit(
				&t->index, memory_order_relaxed);
			uint64_t size = atomic_load_explicit(
				&t->size, memory_order_relaxed);
			int at;

			if (index >= p->jl->n || size < FILE_MIN ||
			    p->jl->v[index].status != ST_PENDING)
				continue;
			for (at = n; at > 0 && atomic_load_explicit(
						  &best[at - 1].size,
						  memory_order_relaxed) < size;
			     at--)
				;
			if (at == FILE_LINES)
				continue;
			if (n < FILE_LINES)
				n++;
			memmove(&best[at + 1], &best[at],
				(size_t)(n - 1 - at) * sizeof(best[0]));
			atomic_init(&best[at].index, index);
			atomic_init(&best[at].size, size);
			atomic_init(&best[at].have,
				    atomic_load_explicit(&t->have,
							 memory_order_relaxed));
		}
	}
	for (int i = 0; i < n; i++) {
		uint32_t index = atomic_load(&best[i].index);
		uint64_t have = atomic_load(&best[i].have);
		uint64_t size = atomic_load(&best[i].size);
		struct shown s = {index, have, now, 0};
		char r[32];

		for (int k = 0; k < FILE_LINES; k++) {
			const struct shown *o = &p->shown[k];

			if (o->index != index || now <= o->t || have < o->have)
				continue;
			s.rate = (double)(have - o->have) / (now - o->t);
			if (o->rate > 0)
				s.rate = 0.8 * o->rate + 0.2 * s.rate;
		}
		next[i] = s;
		if (have > size)
			have = size;
		len += (size_t)snprintf(buf + len, cap - len,
					"\n  %-40.40s %3d%%  %s/s",
					p->jl->v[index].name,
					(int)(100.0 * (double)have /
					      (double)size),
					human_bytes(s.rate, r, sizeof(r)));
		if (len >= cap)
			len = cap - 1;
	}
	for (int i = 0; i < FILE_LINES; i++)
		p->shown[i] = i < n ? next[i]
				    : (struct shown){.index = NO_JOB};
	*lines = n;
	return len;
}

void progress_tick(struct progress *p, bool force)
{
	double now = now_mono();
	uint64_t bytes, expected;
	unsigned active;
	double eta = -1;
	char b[32], r[32], e[32];

	if (!p->live || (!force && now - p->last_draw < REDRAW_SECS))
		return;
	p->last_draw = now;
	totals(p, &bytes, &expected, &active);
	if (now > p->win_t) {
		/* A moving average: steady, yet it follows a change within a
		 * couple of seconds. */
		double inst = (double)(bytes - p->win_bytes) / (now - p->win_t);

		p->rate = p->rate == 0 ? inst : 0.8 * p->rate + 0.2 * inst;
		p->win_t = now;
		p->win_bytes = bytes;
	}
	if (p->done < p->total) {
		/* By files done, or by bytes when the sizes say more. */
		if (p->done > 0)
			eta = (now - p->t0) / (double)p->done *
			      (double)(p->total - p->done);
		if (expected > bytes && p->rate > 0) {
			double by_bytes = (double)(expected - bytes) / p->rate;

			if (by_bytes > eta)
				eta = by_bytes;
		}
	}
	{
		char files[FILE_LINES * 128];
		int extra = 0;

		files[0] = '\0';
		file_lines(p, now, files, sizeof(files), &extra);
		/* Up to the first line of what was drawn, clearing. */
		outf("\r\033[K");
		for (int i = 1; i < msg_live(); i++)
			outf("\033[A\033[K");
		outf("%zu/%s  %s  %s/s  ETA %s  %u active%s", p->done,
		     plural(p->total, "file"),
		     human_bytes((double)bytes, b, sizeof(b)),
		     human_bytes(p->rate, r, sizeof(r)),
		     human_eta(eta, e, sizeof(e)), active, files);
		msg_set_live(1 + extra);
	}
	msg_flush();
}

void progress_end(struct progress *p)
{
	if (p->live) {
		progress_tick(p, true);
		outf("\n");
		msg_set_live(0);
	}
}

void progress_free(struct progress *p)
{
	free(p);
}
