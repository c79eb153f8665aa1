/* SPDX-License-Identifier: MIT */
/*
 * Redirects are followed here, not by libcurl, so that the -H headers go
 * to the URL's own host only (libcurl would send them to any host but for
 * Authorization and Cookie); --location-trusted sends them everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"

/* Whether two URLs have the same scheme, host and port. */
bool same_origin(const char *a, const char *b)
{
	static const CURLUPart part[] = {CURLUPART_SCHEME, CURLUPART_HOST,
					 CURLUPART_PORT};
	CURLU *ua = curl_url(), *ub = curl_url();
	bool same = ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) &&
		    !curl_url_set(ub, CURLUPART_URL, b, 0);

	for (size_t i = 0; same && i < sizeof(part) / sizeof(part[0]); i++) {
		char *pa = NULL, *pb = NULL;

		same = !curl_url_get(ua, part[i], &pa, CURLU_DEFAULT_PORT) &&
		       !curl_url_get(ub, part[i], &pb, CURLU_DEFAULT_PORT) &&
		       !strcasecmp(pa, pb);
		curl_free(pa);
		curl_free(pb);
	}
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}

/* A redirect: 1 when followed, 0 when this is no redirect, -1 when it
 * cannot be followed (why says so). */
int redirect_follow(struct engine *e, struct xfer *x, char *why,
		    size_t size)
{
	char *loc = NULL;
	char *hop;

	if (x->code < 300 || x->code > 399 || x->code == 304 ||
	    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc) ||
	    !loc)
		return 0;
	if (x->hops >= e->o->max_redirs) {
		snprintf(why, size, "more than %ld redirects", x->hops);
		return -1;
	}
	if (strncasecmp(loc, "http://", 7) && strncasecmp(loc, "https://", 8)) {
		snprintf(why, size, "redirect to a URL that is not http(s)");
		return -1;
	}
	hop = strdup(loc); /* loc is the handle's, and xfer_start() reuses it */
	if (!hop) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	free(x->hop);
	x->hop = hop;
	x->hops++;
	x->attempts--; /* the same attempt goes on */
	if (xfer_start(e, x) == 0)
		return 1;
	snprintf(why, size, "could not follow the redirect");
	return -1;
}
