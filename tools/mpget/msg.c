/* SPDX-License-Identifier: MIT */
/*
 * Messages: the one place mpget writes text for people.  Everything goes
 * to stderr so that stdout stays free; when a live progress line is on
 * the terminal, a message first erases it and the next tick redraws it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mpget.h"

int msg_verbosity = 1;
static int live; /* lines of the live display on screen */

static void vprint(const char *prefix, const char *fmt, va_list ap)
{
	char line[4096];
	int n = 0;

	/* Erase the live display (the cursor is on its last line); the
	 * next tick draws it again below the message. */
	if (live)
		n = snprintf(line, sizeof(line), "\r\033[K");
	for (int i = 1; i < live && n < 200; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "\033[A\033[K");
	live = 0; /* gone: the next tick draws it afresh */
	if (prefix)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s", prefix);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One fputs per message: lines from different calls never mix. */
	fputs(line, stderr);
	fputc('\n', stderr);
}

void errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint("mpget: error: ", fmt, ap);
	va_end(ap);
}

void warnf(const char *fmt, ...)
{
	va_list ap;

	/* -q prints failures only; a warning is not one. */
	if (msg_verbosity < 1)
		return;
	va_start(ap, fmt);
	vprint("mpget: warning: ", fmt, ap);
	va_end(ap);
}

void infof(const char *fmt, ...)
{
	va_list ap;

	if (msg_verbosity < 1)
		return;
	va_start(ap, fmt);
	vprint(NULL, fmt, ap);
	va_end(ap);
}

void verbosef(const char *fmt, ...)
{
	va_list ap;

	if (msg_verbosity < 2)
		return;
	va_start(ap, fmt);
	vprint(NULL, fmt, ap);
	va_end(ap);
}

void outf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void msg_set_live(int lines)
{
	live = lines;
}

int msg_live(void)
{
	return live;
}

void msg_flush(void)
{
	fflush(stderr);
}

const char *human_bytes(double bytes, char *buf, size_t size)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.0f B", bytes);
	else
		snprintf(buf, size, "%.1f %s", bytes, unit[u]);
	return buf;
}

const char *human_eta(double secs, char *buf, size_t size)
{
	if (secs < 0 || secs > 1e7)
		snprintf(buf, size, "--:--");
	else if (secs < 3600)
		snprintf(buf, size, "%d:%02d", (int)secs / 60, (int)secs % 60);
	else
		snprintf(buf, size, "%d:%02d:%02d", (int)secs / 3600,
			 (int)secs / 60 % 60, (int)secs % 60);
	return buf;
}

const char *plural(size_t n, const char *word)
{
	static char buf[4][64]; /* one thread; a few in one printf */
	static int k;
	char *b = buf[k++ % 4];

	snprintf(b, sizeof(buf[0]), "%zu %s%s", n, word, n == 1 ? "" : "s");
	return b;
}

const char *human_secs(double secs, char *buf, size_t size)
{
	if (secs < 0 || secs > 1e7)
		snprintf(buf, size, "--:--");
	else if (secs < 10)
		snprintf(buf, size, "%.2fs", secs);
	else if (secs < 3600)
		snprintf(buf, size, "%d:%02d", (int)secs / 60, (int)secs % 60);
	else
		snprintf(buf, size, "%d:%02d:%02d", (int)secs / 3600,
			 (int)secs / 60 % 60, (int)secs % 60);
	return buf;
}

double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
