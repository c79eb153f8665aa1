/*
 * The URL list: command-line arguments and -i files (or "-" for stdin).
 *
 * One URL per line; blank lines and lines starting with '#' are skipped.
 * Indented lines under a URL carry options for it, as aria2's input files
 * do: "out=NAME" and "checksum=sha-256=HEX".  A line that cannot be used
 * is reported with its file and line number and skipped; the caller
 * decides (--strict) whether that stops the run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpget.h"

/* Only http and https, no whitespace or control characters, and a host.
 * libcurl's URL parser has the last word. */
bool url_is_acceptable(const char *url, const char **why)
{
	CURLU *u;
	CURLUcode rc;
	char *host = NULL;
	bool ok;

	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
		*why = "not an http:// or https:// URL";
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

static int parse_hex32(const char *s, uint8_t out[32])
{
	if (strlen(s) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
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
		if (strcasecmp(val, "sha-256") && strcasecmp(val, "sha256"))
			return "only sha-256 checksums are supported";
		if (parse_hex32(hex, j->sum))
			return "sha-256 wants 64 hex digits";
		j->has_sum = true;
		return NULL;
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
			int r = urllist_add_url(jl, s, src, lineno);

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
		free(jl->v[i].name);
		free(jl->v[i].final);
		free(jl->v[i].error);
	}
	free(jl->v);
	memset(jl, 0, sizeof(*jl));
}
