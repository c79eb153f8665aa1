#ifndef MP_BENCH_H
#define MP_BENCH_H

/*
 * What every benchmark shares.  Machines here are shared and noisy, so a
 * benchmark runs its peers in the same run and reports ratios.
 *
 * bench_row() prints one measurement as a Markdown table row and, when
 * MP_BENCH_CSV names a file, appends "bench,scenario,impl,value,unit" to it
 * for scripts/bench.sh to chart.  bench_ratio() prints how we compare.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_header(const char *bench, const char *what)
{
	printf("\n### %s: %s\n\n", bench, what);
	printf("| scenario | implementation | value | unit |\n");
	printf("| --- | --- | ---: | --- |\n");
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
			     const char *impl, double value, const char *unit)
{
	const char *csv = getenv("MP_BENCH_CSV");
	FILE *f = csv && *csv ? fopen(csv, "a") : NULL;

	if (f) {
		bench_csv_field(f, bench);
		bench_csv_field(f, scenario);
		bench_csv_field(f, impl);
		fprintf(f, "%.6g,%s\n", value, unit);
		fclose(f);
	}
}

static inline void bench_row(const char *bench, const char *scenario,
			     const char *impl, double value, const char *unit)
{
	printf("| %s | %s | %.4g | %s |\n", scenario, impl, value, unit);
	fflush(stdout);
	bench_csv(bench, scenario, impl, value, unit);
}

/* "ours is RATIO x the peer" where more is better for us; the chart of
 * scripts/bench.sh shows these (unit "x"). */
static inline void bench_ratio(const char *scenario, const char *ours,
			       const char *peer, double ratio)
{
	char impl[160];

	printf("| %s | **%s vs %s** | **%.2fx** | ratio |\n", scenario, ours,
	       peer, ratio);
	fflush(stdout);
	snprintf(impl, sizeof(impl), "%s vs %s", ours, peer);
	bench_csv("ratio", scenario, impl, ratio, "x");
}

/* Whether python3 can run multiprocessing here (a peer when present). */
static inline int bench_have_python(void)
{
	return system("python3 -c 'import multiprocessing' >/dev/null 2>&1") ==
	       0;
}

/* Run the Python peer bench/python/SCRIPT with the printf-style arguments
 * (the benchmarks run from the source tree) and read the one number it
 * prints.  Return: that number, or -1 when python3 or the script failed. */
static inline __attribute__((format(printf, 2, 3))) double
bench_python(const char *script, const char *args_fmt, ...)
{
	char args[256], cmd[512];
	double v = -1;
	va_list ap;

	va_start(ap, args_fmt);
	vsnprintf(args, sizeof(args), args_fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "python3 bench/python/%s %s 2>/dev/null",
		 script, args);
	FILE *f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		pclose(f);
	}
	return v;
}

#endif
