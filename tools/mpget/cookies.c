/* SPDX-License-Identifier: MIT */
/*
 * Cookie files in the Netscape format that curl and aria2c read and
 * write: one cookie per line, seven TAB-separated fields (domain,
 * include-subdomains, path, secure, expiry, name, value); '#' starts a
 * comment, except "#HttpOnly_" which marks an HttpOnly cookie's domain.
 *
 * libcurl reads and writes them; this file checks a --load-cookies file
 * first (libcurl skips a bad line silently, and a cookie that silently
 * does not load is a login that silently fails), and merges the workers'
 * jars into the --save-cookies file: each worker process has its own
 * cookie store, and the last cookie of a name, domain and path wins.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mpget.h"

static bool is_bool(const char *s)
{
	return !strcasecmp(s, "TRUE") || !strcasecmp(s, "FALSE");
}

/* Whether line (no newline) is a cookie; comments are not. */
static const char *bad_line(char *line)
{
	char *f[8];
	int n = 0;
	char *p = line, *end;

	if (!strncmp(p, "#HttpOnly_", 10))
		p += 10;
	else if (*p == '#' || *p == '\0')
		return NULL;
	while (n < 8) {
		f[n++] = p;
		p = strchr(p, '\t');
		if (!p)
			break;
		*p++ = '\0';
	}
	if (n != 7)
		return "not a cookie line (7 TAB-separated fields)";
	if (!*f[0])
		return "no domain";
	if (!is_bool(f[1]) || !is_bool(f[3]))
		return "fields 2 and 4 must be TRUE or FALSE";
	strtoll(f[4], &end, 10);
	if (!*f[4] || *end)
		return "field 5 (expiry) must be a number";
	if (!*f[5])
		return "no cookie name";
	return NULL;
}

int cookies_check(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, bad = 0;

	if (!f) {
		errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		const char *why;

		lineno++;
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if ((why = bad_line(line))) {
			errorf("%s:%d: %s", path, lineno, why);
			bad++;
		}
	}
	free(line);
	fclose(f);
	return bad ? -1 : 0;
}

int cookies_jar_name(const char *save, int w, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s.mpget-w%d", save, w);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The key of a cookie line: its domain, path and name fields. */
static void key_of(const char *line, char *key, size_t size)
{
	char tmp[4096];
	char *f[7] = {0};
	int n = 0;

	snprintf(tmp, sizeof(tmp), "%s", line);
	for (char *p = tmp; p && n < 7; n++) {
		f[n] = p;
		p = strchr(p, '\t');
		if (p)
			*p++ = '\0';
	}
	snprintf(key, size, "%s\t%s\t%s", f[0] ? f[0] : "",
		 f[2] ? f[2] : "", f[5] ? f[5] : "");
}

int cookies_merge(const char *save, int workers)
{
	char **lines = NULL;
	size_t n = 0, cap = 0;
	char tmp[4096], jar[4096], k1[4096], k2[4096];
	FILE *out;
	int ret = 0;

	for (int w = 0; w < workers; w++) {
		FILE *f;
		char *line = NULL;
		size_t lcap = 0;

		if (cookies_jar_name(save, w, jar, sizeof(jar)) < 0 ||
		    !(f = fopen(jar, "r")))
			continue;
		while (getline(&line, &lcap, f) >= 0) {
			line[strcspn(line, "\r\n")] = '\0';
			if (!*line || (*line == '#' &&
				       strncmp(line, "#HttpOnly_", 10)))
				continue;
			if (n == cap) {
				size_t c = cap ? 2 * cap : 64;
				char **v = realloc(lines, c * sizeof(*v));

				if (!v)
					break;
				lines = v;
				cap = c;
			}
			lines[n++] = strdup(line);
		}
		free(line);
		fclose(f);
		unlink(jar);
	}
	snprintf(tmp, sizeof(tmp), "%s.mpget-new", save);
	out = fopen(tmp, "w");
	if (!out) {
		errorf("--save-cookies %s: %s", save, strerror(errno));
		ret = -1;
		goto done;
	}
	fputs("# Netscape HTTP Cookie File\n# Written by mpget.\n\n", out);
	for (size_t i = 0; i < n; i++) {
		bool later = false;

		if (!lines[i])
			continue;
		key_of(lines[i], k1, sizeof(k1));
		for (size_t j = i + 1; j < n && !later; j++) {
			if (!lines[j])
				continue;
			key_of(lines[j], k2, sizeof(k2));
			later = !strcmp(k1, k2);
		}
		if (!later)
			fprintf(out, "%s\n", lines[i]);
	}
	if (fclose(out) != 0 || rename(tmp, save) < 0) {
		errorf("--save-cookies %s: %s", save, strerror(errno));
		unlink(tmp);
		ret = -1;
	}
done:
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	return ret;
}
