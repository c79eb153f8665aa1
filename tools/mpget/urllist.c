/* SPDX-License-Identifier: MIT */
/*
 * The URL list: command-line arguments and -i files (or "-" for stdin).
 *
 * One URL per line, or several separated by TABs: mirrors of one file.
 * Blank lines and lines starting with '#' are skipped.  Indented lines
 * under a URL carry options for it, as aria2's input files do: "out=NAME"
 * and "checksum=TYPE=HEX" (md5, sha-1, sha-256, sha-512).  A line that
 * cannot be used is reported with its file and line number and skipped;
 * the caller decides (--strict) whether that stops the run.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpget.h"

/* The length of "scheme://authority/" in url, 0 when there is none or
 * when the authority is not plainly one (empty, as in "http:///x" which
 * libcurl reads leniently; or with characters such as ?#%[] that could
 * make a longer URL parse another way), so that only a plain origin is
 * reused by url_is_acceptable's shortcut. */
static size_t origin_len(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return 0;
	const char *a = p + 3, *e = a;
	while (*e && *e != '/') {
		if (!isalnum((unsigned char)*e) && !strchr("-._:@", *e))
			return 0;
		e++;
	}
	return *e == '/' && e > a ? (size_t)(e - url) + 1 : 0;
}

/* Whether what follows an accepted origin is a path no parser refuses:
 * letters, digits and -._~/ only. */
static bool plain_path(const char *p)
{
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._~/", *p))
			return false;
	return true;
}

/* Only http, https, ftp and ftps, no whitespace or control characters,
 * and a host.  libcurl's URL parser has the last word, except for a
 * plain path on the origin of the URL it accepted last: a list of
 * thousands of files from one server is mostly that, and parsing each
 * cost the parent 5,000 instructions a URL (callgrind) before the
 * first worker started. */
bool url_is_acceptable(const char *url, const char **why)
{
	static char last[512]; /* the last accepted URL's origin */
	static size_t last_len;
	CURLU *u;
	CURLUcode rc;
	char *host = NULL;
	bool ok;

	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8) &&
	    strncasecmp(url, "ftp://", 6) && strncasecmp(url, "ftps://", 7)) {
		*why = "not an http://, https://, ftp:// or ftps:// URL";
		return false;
	}
	if (strlen(url) >= MAX_URL_LEN) {
		*why = "URL too long";
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f) {
			*why = "space or control character in URL";
			return false;
		}
	}
	if (last_len && !strncmp(url, last, last_len) &&
	    plain_path(url + last_len))
		return true;
	u = curl_url();
	if (!u) {
		*why = "out of memory";
		return false;
	}
	rc = curl_url_set(u, CURLUPART_URL, url, 0);
	ok = rc == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host &&
	     *host;
	if (!ok)
		*why = rc != CURLUE_OK ? curl_url_strerror(rc) : "no host";
	last_len = 0;
	if (ok && (last_len = origin_len(url)) < sizeof(last))
		memcpy(last, url, last_len);
	else
		last_len = 0;
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static int push(struct joblist *jl, const char *url, int line)
{
	struct job *j;

	if (jl->n == jl->cap) {
		size_t cap = jl->cap ? 2 * jl->cap : 64;
		struct job *v = realloc(jl->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		jl->v = v;
		jl->cap = cap;
	}
	j = &jl->v[jl->n];
	memset(j, 0, sizeof(*j));
	j->url = strdup(url);
	if (!j->url)
		return -ENOMEM;
	j->line = line;
	jl->n++;
	return 0;
}

int urllist_add_url(struct joblist *jl, const char *url, const char *src,
		    int line)
{
	const char *why;

	if (!url_is_acceptable(url, &why)) {
		if (line)
			errorf("%s:%d: %s: %s", src, line, why, url);
		else
			errorf("%s: %s", why, url);
		jl->bad_lines++;
		return -EINVAL;
	}
	return push(jl, url, line);
}

/* The rest of a line after its first URL and a TAB: more URLs of the
 * same file (aria2's input files).  A bad one makes the line bad. */
static int add_mirrors(struct joblist *jl, const char *rest,
		       const char *src, int line)
{
	struct job *j = &jl->v[jl->n - 1];
	char *copy = strdup(rest), *save = NULL, *u;
	size_t len = strlen(j->url), n = 1;
	const char *why = NULL;

	if (!copy)
		return -ENOMEM;
	free(j->mirrors);
	j->mirrors = malloc(strlen(rest) + 1);
	if (!j->mirrors) {
		free(copy);
		return -ENOMEM;
	}
	j->mirrors[0] = '\0';
	for (u = strtok_r(copy, "\t", &save); u;
	     u = strtok_r(NULL, "\t", &save)) {
		if (!*u)
			continue;
		len += strlen(u) + 1;
		if (++n > MAX_MIRRORS)
			why = "too many mirrors on one line (at most 16 URLs)";
		else if (len >= MAX_URL_LEN)
			why = "line too long";
		else
			url_is_acceptable(u, &why);
		if (why) {
			errorf("%s:%d: %s: %s", src, line, why, u);
			break;
		}
		if (j->mirrors[0])
			strcat(j->mirrors, "\t");
		strcat(j->mirrors, u);
	}
	free(copy);
	if (why) {
		/* The whole line goes: its URL too. */
		free(j->url);
		free(j->mirrors);
		jl->n--;
		jl->bad_lines++;
		return -EINVAL;
	}
	if (!j->mirrors[0]) {
		free(j->mirrors);
		j->mirrors = NULL;
	}
	return 0;
}

static const struct {
	const char *name, *alias;
	size_t len;
} sums[] = {
	[SUM_MD5] = {"md5", "md5", 16},
	[SUM_SHA1] = {"sha-1", "sha1", 20},
	[SUM_SHA256] = {"sha-256", "sha256", 32},
	[SUM_SHA512] = {"sha-512", "sha512", 64},
};

const char *sum_name(int type)
{
	return type > SUM_NONE && type <= SUM_SHA512 ? sums[type].name : "";
}

size_t sum_len(int type)
{
	return type > SUM_NONE && type <= SUM_SHA512 ? sums[type].len : 0;
}

static int parse_hex(const char *s, uint8_t *out, size_t len)
{
	if (strlen(s) != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* An indented "key=value" line for job j.  Return: NULL, or why not. */
static const char *apply_option(struct job *j, char *opt)
{
	char *eq = strchr(opt, '=');
	char *val;

	if (!eq)
		return "option line without '='";
	*eq = '\0';
	val = eq + 1;
	if (!strcmp(opt, "out")) {
		if (!name_is_safe(val))
			return "out= must be a plain file name (no '/', "
			       "'..', control characters)";
		free(j->name);
		j->name = strdup(val);
		return j->name ? NULL : "out of memory";
	}
	if (!strcmp(opt, "checksum")) {
		char *hex = strchr(val, '=');

		if (!hex)
			return "checksum= wants TYPE=HEX";
		*hex++ = '\0';
		for (int t = SUM_MD5; t <= SUM_SHA512; t++) {
			if (strcasecmp(val, sums[t].name) &&
			    strcasecmp(val, sums[t].alias))
				continue;
			if (parse_hex(hex, j->sum, sums[t].len)) {
				static char why[64]; /* one thread */

				snprintf(why, sizeof(why),
					 "%s wants %zu hex digits",
					 sums[t].name, 2 * sums[t].len);
				return why;
			}
			j->sum_type = (uint8_t)t;
			return NULL;
		}
		return "checksum types: md5, sha-1, sha-256, sha-512";
	}
	return "unknown option (known: out=, checksum=)";
}

int urllist_read(struct joblist *jl, const char *path, bool strict)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	const char *src = strcmp(path, "-") ? path : "<stdin>";
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	int ret = 0;
	bool owner_ok = false; /* the URL above option lines was accepted */

	if (!f) {
		errorf("%s: %s", path, strerror(errno));
		return -errno;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *s = line;
		bool indented = *s == ' ' || *s == '\t';
		const char *why;

		lineno++;
		while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
				   s[len - 1] == ' ' || s[len - 1] == '\t'))
			s[--len] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (!indented) {
			char *tab = strchr(s, '\t');
			int r;

			if (tab)
				*tab++ = '\0';
			r = urllist_add_url(jl, s, src, lineno);
			if (r == 0 && tab)
				r = add_mirrors(jl, tab, src, lineno);

			owner_ok = r == 0;
			if (r == -ENOMEM) {
				ret = r;
				break;
			}
			if (r && strict) {
				ret = r;
				break;
			}
			continue;
		}
		if (!owner_ok) {
			errorf("%s:%d: option line without a URL above it: %s",
			       src, lineno, s);
			jl->bad_lines++;
		} else if ((why = apply_option(&jl->v[jl->n - 1], s))) {
			struct job *j = &jl->v[jl->n - 1];
			char buf[128];

			/* Never fetch a URL with options half applied: a
			 * checksum that did not parse must not become a
			 * download that is not verified. */
			errorf("%s:%d: %s", src, lineno, why);
			jl->bad_lines++;
			snprintf(buf, sizeof(buf), "bad option on line %d",
				 lineno);
			if (j->status == ST_PENDING) {
				j->status = ST_FAILED;
				j->error = strdup(buf);
			}
		} else {
			continue;
		}
		if (strict) {
			ret = -EINVAL;
			break;
		}
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return ret;
}

void joblist_free(struct joblist *jl)
{
	for (size_t i = 0; i < jl->n; i++) {
		free(jl->v[i].url);
		free(jl->v[i].mirrors);
		free(jl->v[i].name);
		free(jl->v[i].final);
		free(jl->v[i].error);
	}
	free(jl->v);
	memset(jl, 0, sizeof(*jl));
}
