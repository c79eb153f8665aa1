/*
 * Progress, drawn by the parent from the workers' shared counters and the
 * results it has received.  On a terminal: one line redrawn a few times a
 * second (files done/total, bytes, rate, ETA, active transfers).
 * Otherwise: one line per finished file.  -q shows neither.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mpget.h"

#define REDRAW_SECS 0.2

struct progress {
	const struct opts *o;
	struct shared *sh;
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
			      int workers, size_t total)
{
	struct progress *p = calloc(1, sizeof(*p));
	int mode = o->progress;

	if (!p)
		return NULL;
	p->o = o;
	p->sh = sh;
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
	outf("\r\033[K%zu/%zu files  %s  %s/s  ETA %s  %u active", p->done,
	     p->total, human_bytes((double)bytes, b, sizeof(b)),
	     human_bytes(p->rate, r, sizeof(r)), human_secs(eta, e, sizeof(e)),
	     active);
	msg_set_live(true);
	msg_flush();
}

void progress_end(struct progress *p)
{
	if (p->live) {
		progress_tick(p, true);
		outf("\n");
		msg_set_live(false);
	}
}

void progress_free(struct progress *p)
{
	free(p);
}
