/* SPDX-License-Identifier: MIT */
#ifndef MP_BENCH_H
#define MP_BENCH_H

/*
 * What every benchmark shares.  Machines here are shared and noisy, and a
 * contender can have a slow mode that a best-of-N hides, so: every
 * contender of a scenario runs `runs` times, interleaved with its peers
 * (bench_interleave), and the tables show the median, the min and the max
 * of those runs; ratios are of medians (bench_vs).  Nothing is pinned
 * unless a row says so: users do not pin.
 *
 * A contender is a function that measures once and returns one sample
 * (seconds per operation, or operations per second; <= 0 when it failed).
 *
 * BENCH_QUICK=1 makes every benchmark small (bench_quick_runs runs,
 * bench_size sizes): a smoke test that the benchmarks work, not figures.
 * BENCH_RUNS=N overrides the number of runs.
 *
 * The rows are Markdown; when MP_BENCH_CSV names a file, each one is
 * appended to it too, as "bench,scenario,impl,median,unit,min,max" (a
 * ratio: "ratio,scenario,comparison,value,x", "headline" instead of
 * "ratio" for the few that scripts/bench.sh puts in the README).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_RUNS 32

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool bench_quick(void)
{
	const char *q = getenv("BENCH_QUICK");
	return q && *q && strcmp(q, "0");
}

/* How many runs of each contender: `full`, 3 in quick mode, BENCH_RUNS
 * when set. */
static inline int bench_runs(int full)
{
	const char *r = getenv("BENCH_RUNS");
	int n = bench_quick() ? 3 : full;

	if (r && atoi(r) > 0)
		n = atoi(r);
	return n < BENCH_MAX_RUNS ? n : BENCH_MAX_RUNS;
}

/* A problem size: `full`, or a 20th of it (at least 1) in quick mode. */
static inline long bench_size(long full)
{
	if (!bench_quick())
		return full;
	return full / 20 > 0 ? full / 20 : 1;
}

struct bench_stat {
	double med, min, max;
	int n; /* samples that did not fail; 0: no figures */
};

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median (the mean of the middle two for an even count), min and max of
 * the samples > 0 in v[0..n). */
static inline struct bench_stat bench_stat_of(const double *v, int n)
{
	double s[BENCH_MAX_RUNS];
	struct bench_stat st = {0, 0, 0, 0};

	for (int i = 0; i < n && st.n < BENCH_MAX_RUNS; i++)
		if (v[i] > 0)
			s[st.n++] = v[i];
	if (!st.n)
		return st;
	qsort(s, (size_t)st.n, sizeof(*s), bench_cmp);
	st.min = s[0];
	st.max = s[st.n - 1];
	st.med = st.n % 2 ? s[st.n / 2] : (s[st.n / 2 - 1] + s[st.n / 2]) / 2;
	return st;
}

struct bench_contender {
	const char *name;
	double (*run)(void *arg); /* NULL: not in this scenario */
	void *arg;
	double v[BENCH_MAX_RUNS]; /* the samples, in run order */
	struct bench_stat st;
};

/* Run every contender `runs` times: round r runs each of them once,
 * starting at a different one each round so that no contender always
 * follows the same neighbour (the one after a Python peer, say).  Then
 * fill in each one's statistics. */
static inline void bench_interleave(struct bench_contender *c, int nc, int runs)
{
	if (runs > BENCH_MAX_RUNS)
		runs = BENCH_MAX_RUNS;
	for (int r = 0; r < runs; r++)
		for (int k = 0; k < nc; k++) {
			struct bench_contender *x = &c[(r + k) % nc];
			x->v[r] = x->run ? x->run(x->arg) : 0;
		}
	for (int k = 0; k < nc; k++)
		c[k].st = bench_stat_of(c[k].v, runs);
}

static inline void bench_header(const char *bench, const char *what)
{
	printf("\n### %s: %s\n\n", bench, what);
	printf("| scenario | implementation | median | min | max | unit "
	       "| runs |\n");
	printf("| --- | --- | ---: | ---: | ---: | --- | ---: |\n");
	fflush(stdout);
}

/* A CSV field: commas become semicolons ("1x1, 64 B" is one field). */
static inline void bench_csv_field(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(*s == ',' ? ';' : *s, f);
	fputc(',', f);
}

static inline void bench_csv(const char *bench, const char *scenario,
			     const char *impl, double value, const char *unit,
			     const struct bench_stat *st, double scale)
{
	const char *csv = getenv("MP_BENCH_CSV");
	FILE *f = csv && *csv ? fopen(csv, "a") : NULL;

	if (!f)
		return;
	bench_csv_field(f, bench);
	bench_csv_field(f, scenario);
	bench_csv_field(f, impl);
	fprintf(f, "%.6g,%s", value, unit);
	if (st)
		fprintf(f, ",%.6g,%.6g", st->min * scale, st->max * scale);
	fputc('\n', f);
	fclose(f);
}

/* One contender's row: its statistics times `scale`, in `unit`. */
static inline void bench_row(const char *bench, const char *scenario,
			     const char *impl, const struct bench_stat *st,
			     double scale, const char *unit)
{
	if (!st->n) {
		printf("| %s | %s | failed | | | %s | 0 |\n", scenario, impl,
		       unit);
		fflush(stdout);
		return;
	}
	printf("| %s | %s | %.4g | %.4g | %.4g | %s | %d |\n", scenario, impl,
	       st->med * scale, st->min * scale, st->max * scale, unit, st->n);
	fflush(stdout);
	bench_csv(bench, scenario, impl, st->med * scale, unit, st, scale);
}

/* The rows of every contender in the scenario (run set). */
static inline void bench_rows(const char *bench, const char *scenario,
			      const struct bench_contender *c, int nc,
			      double scale, const char *unit)
{
	for (int k = 0; k < nc; k++)
		if (c[k].run)
			bench_row(bench, scenario, c[k].name, &c[k].st, scale,
				  unit);
}

enum {
	BENCH_LOWER = 1,    /* the samples are costs: lower is better */
	BENCH_HEADLINE = 2, /* one of the README's few headline ratios */
};

/* "ours is RATIO x the peer" where more is better for us; the chart of
 * scripts/bench.sh shows these (unit "x"). */
static inline void bench_ratio(const char *scenario, const char *ours,
			       const char *peer, double ratio, int flags)
{
	char impl[160];

	printf("| %s | **%s vs %s** | **%.2fx** | | | ratio of medians | "
	       "|\n",
	       scenario, ours, peer, ratio);
	fflush(stdout);
	snprintf(impl, sizeof(impl), "%s vs %s", ours, peer);
	bench_csv(flags & BENCH_HEADLINE ? "headline" : "ratio", scenario, impl,
		  ratio, "x", NULL, 1);
}

/* The ratio of the medians of ours and a peer, oriented so that more is
 * better for us; nothing when either has no figures. */
static inline void bench_vs(const char *scenario, const char *ours,
			    const struct bench_stat *o, const char *peer,
			    const struct bench_stat *p, int flags)
{
	if (!o->n || !p->n)
		return;
	bench_ratio(scenario, ours, peer,
		    flags & BENCH_LOWER ? p->med / o->med : o->med / p->med,
		    flags);
}

/* The worst of our runs against the peer's median (more is better for
 * us): what issue 17's "worst run" targets mean.  scenario gets
 * ", worst run" appended. */
static inline void bench_vs_worst(const char *scenario, const char *ours,
				  const struct bench_stat *o, const char *peer,
				  const struct bench_stat *p, int flags)
{
	char scen[160];

	if (!o->n || !p->n)
		return;
	snprintf(scen, sizeof(scen), "%s, worst run", scenario);
	bench_ratio(scen, ours, peer,
		    flags & BENCH_LOWER ? p->med / o->max : o->min / p->med,
		    flags & ~BENCH_HEADLINE);
}

/* Whether python3 can run multiprocessing here (a peer when present). */
static inline bool bench_have_python(void)
{
	static int have = -1;

	if (have < 0)
		have = system("python3 -c 'import multiprocessing' "
			      ">/dev/null 2>&1") == 0;
	return have;
}

/* Run the Python peer bench/python/SCRIPT with ARGS (the benchmarks run
 * from the source tree) and read the one number it prints.
 * Return: that number, or -1 when python3 or the script failed. */
static inline double bench_python(const char *script, const char *args)
{
	char cmd[512];
	double v = -1;

	snprintf(cmd, sizeof(cmd), "python3 bench/python/%s %s 2>/dev/null",
		 script, args);
	FILE *f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		if (pclose(f))
			v = -1;
	}
	return v;
}

/* A Python peer as a contender: run = bench_py_run, arg = a bench_py. */
struct bench_py {
	const char *script;
	char args[192];
};

static inline double bench_py_run(void *arg)
{
	const struct bench_py *p = arg;
	return bench_python(p->script, p->args);
}

/* Make c a contender for the Python peer SCRIPT with printf-style
 * arguments, or leave it out (run NULL) when there is no python3. */
static inline __attribute__((format(printf, 4, 5))) void
bench_py_contender(struct bench_contender *c, struct bench_py *py,
		   const char *script, const char *args_fmt, ...)
{
	va_list ap;

	py->script = script;
	va_start(ap, args_fmt);
	vsnprintf(py->args, sizeof(py->args), args_fmt, ap);
	va_end(ap);
	c->arg = py;
	c->run = bench_have_python() ? bench_py_run : NULL;
}

#endif
