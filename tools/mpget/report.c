/* SPDX-License-Identifier: MIT */
/*
 * The end of a run: the summary on stderr (counts, bytes, time, rate, and
 * every failure with its reason) and, with --report, the per-URL results
 * as JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mpget.h"

static const char *status_name(enum status s)
{
	switch (s) {
	case ST_OK:
		return "ok";
	case ST_FAILED:
		return "failed";
	case ST_SKIPPED:
		return "skipped";
	case ST_INTERRUPTED:
		return "interrupted";
	default:
		return "not started";
	}
}

void report_summary(const struct joblist *jl, double secs, bool interrupted,
		    uint64_t received)
{
	size_t n[ST_INTERRUPTED + 1] = {0};
	char b[32], r[32], t[32];
	size_t shown = 0;

	for (size_t i = 0; i < jl->n; i++)
		n[jl->v[i].status]++;
	for (size_t i = 0; i < jl->n; i++) {
		const struct job *j = &jl->v[i];

		if (j->status != ST_FAILED)
			continue;
		if (shown++ == 0)
			outf("failed:\n");
		if (shown > 100) {
			outf("  ... and %zu more (see --report)\n",
			     n[ST_FAILED] - 100);
			break;
		}
		outf("  %s: %s\n", j->url, j->error ? j->error : "?");
	}
	/* -q: the failures above, and nothing when there are none. */
	if (msg_verbosity < 1) {
		msg_flush();
		return;
	}
	/* The bytes are those downloaded now: a resumed file's earlier
	 * bytes are not counted again, nor a skipped file's. */
	outf("%s%s: %zu ok, %zu failed, %zu skipped", interrupted ?
	     "interrupted: " : "", plural(jl->n, "file"), n[ST_OK],
	     n[ST_FAILED], n[ST_SKIPPED]);
	if (n[ST_INTERRUPTED] + n[ST_PENDING])
		outf(", %zu not finished", n[ST_INTERRUPTED] + n[ST_PENDING]);
	outf("; %s downloaded in %s (%s/s, %.0f files/s)\n",
	     human_bytes((double)received, b, sizeof(b)),
	     human_secs(secs, t, sizeof(t)),
	     human_bytes(secs > 0 ? (double)received / secs : 0, r, sizeof(r)),
	     secs > 0 ? (double)n[ST_OK] / secs : 0);
	if (jl->bad_lines)
		outf("%d bad input line%s skipped\n", jl->bad_lines,
		     jl->bad_lines == 1 ? "" : "s");
	msg_flush();
}

static void json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int report_json(const char *path, const struct joblist *jl, double secs)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
	size_t n[ST_INTERRUPTED + 1] = {0};

	if (!f) {
		errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < jl->n; i++)
		n[jl->v[i].status]++;
	fprintf(f, "{\n  \"ok\": %zu,\n  \"failed\": %zu,\n"
		"  \"skipped\": %zu,\n"
		"  \"not_finished\": %zu,\n  \"bad_lines\": %d,\n"
		"  \"seconds\": %.3f,\n  \"files\": [\n",
		n[ST_OK], n[ST_FAILED], n[ST_SKIPPED],
		n[ST_INTERRUPTED] + n[ST_PENDING], jl->bad_lines, secs);
	for (size_t i = 0; i < jl->n; i++) {
		const struct job *j = &jl->v[i];

		fputs("    {\"url\": ", f);
		json_str(f, j->url);
		fputs(", \"file\": ", f);
		json_str(f, j->status == ST_OK || j->status == ST_SKIPPED ?
				    (j->final ? j->final : j->name) : NULL);
		fprintf(f, ", \"status\": \"%s\", \"http\": %d, "
			"\"bytes\": %llu, \"attempts\": %d, "
			"\"seconds\": %.3f, \"error\": ",
			status_name(j->status), j->http,
			(unsigned long long)j->bytes, j->attempts, j->secs);
		json_str(f, j->status == ST_OK ? NULL : j->error);
		fprintf(f, "}%s\n", i + 1 < jl->n ? "," : "");
	}
	fputs("  ]\n}\n", f);
	if (f == stdout)
		return fflush(f) ? -1 : 0;
	if (fclose(f)) {
		errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
