/* SPDX-License-Identifier: MIT */
/*
 * The file name code on arbitrary bytes: a URL path segment, a
 * Content-Disposition value, a name to number, and a list of names that
 * names_assign must make distinct.  Input: a first byte that picks the
 * number for name_numbered, then lines.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static void one(const char *s, size_t len, unsigned k)
{
	char buf[MAX_NAME_LEN + 64];
	char url[MAX_NAME_LEN * 3 + 32];
	char *n;

	n = name_sanitize(s, len);
	check_name(n);
	free(n);
	n = name_from_disposition(s, len);
	check_name(n);
	free(n);
	if (len < sizeof(url) - 16 && !memchr(s, '\0', len)) {
		memcpy(url, "http://h/", 9);
		memcpy(url + 9, s, len);
		url[9 + len] = '\0';
		n = name_from_url(url);
		if (!n)
			abort();
		check_name(n);
		/* A numbered name: safe, short, new, and never a .part. */
		if (name_numbered(n, k, buf, sizeof(buf)) < 0)
			abort();
		check_name(buf);
		if (!strcmp(buf, n))
			abort();
		len = strlen(buf);
		if (len >= 5 && !strcmp(buf + len - 5, ".part"))
			abort();
		free(n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *end = p + size;
	struct joblist jl = {0};
	unsigned k;

	if (size < 1)
		return 0;
	k = (unsigned)data[0] * 0x01010101u + 1;
	if (k == 0)
		k = 1;
	p++;
	/* Each line is a name; with a 'u' first, the path of a URL. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		struct job *j;

		one(p, len, k);
		jl.v = realloc(jl.v, (jl.n + 1) * sizeof(*jl.v));
		if (!jl.v)
			abort();
		j = &jl.v[jl.n++];
		memset(j, 0, sizeof(*j));
		j->url = malloc(len + 16);
		if (!j->url)
			abort();
		memcpy(j->url, "http://h/", 9);
		memcpy(j->url + 9, p, len);
		j->url[9 + len] = '\0';
		j->name = strndup(p, len);
		if (!j->name || !name_is_safe(j->name) ||
		    (len > 0 && p[0] == 'u')) {
			free(j->name);
			j->name = NULL;
		}
		p += len + 1;
	}
	if (names_assign(&jl) < 0)
		abort();
	check_names(&jl);
	joblist_free(&jl);
	return 0;
}
