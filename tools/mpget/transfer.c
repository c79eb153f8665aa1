/* SPDX-License-Identifier: MIT */
/*
 * One slot's libcurl easy handle: its options, the header and body
 * callbacks, and starting a request.
 *
 * A resumed request is a Range request with If-Range, and the 206 must
 * start where we asked and carry the same validator (a cache that
 * ignores If-Range); otherwise, and on a 200, the .part starts over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"

/* The response's validator: a strong ETag, else Last-Modified (If-Range
 * takes no weak ETag), else "". */
const char *pick_validator(const char *etag, const char *lastmod)
{
	if (etag[0] && strncmp(etag, "W/", 2))
		return etag;
	return lastmod;
}

static const char *response_validator(const struct xfer *x)
{
	return pick_validator(x->etag, x->lastmod);
}

int xfer_check_response(struct xfer *x)
{
	struct engine *e = x->e;
	const char *v = response_validator(x);
	curl_off_t cl = -1;

	x->checked = true;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->code);
	if (x->ftp) {
		/* FTP: a failure is libcurl's error, not a status here.  The
		 * validator is the file's time: a resumed .part goes on only
		 * when it is the same (libcurl sent REST at our offset). */
		curl_off_t t = -1;

		curl_easy_getinfo(x->easy, CURLINFO_FILETIME_T, &t);
		snprintf(x->ftp_time, sizeof(x->ftp_time), t >= 0 ?
			 "ftp-mdtm:%lld" : "", (long long)t);
		v = x->ftp_time;
		x->code = 200;
		if (x->offset && strcmp(v, x->validator)) {
			x->fail = F_RANGE;
			return -1;
		}
	} else if (x->code == 206) {
		/* The rest of the same file, or nothing: a 206 of another
		 * range, or of a file that changed (a server or cache that
		 * ignored If-Range), starts the .part over. */
		if (x->cr_start != (int64_t)x->offset ||
		    (x->offset && strcmp(v, x->validator))) {
			x->fail = F_RANGE;
			return -1;
		}
	} else if (x->code >= 200 && x->code < 300) {
		if (x->offset && part_restart(x) < 0)
			return -1;
	} else {
		x->discard = true;
		return 0;
	}
	if (strcmp(x->validator, v)) {
		snprintf(x->validator, sizeof(x->validator), "%s", v);
		part_store_validator(x);
	}
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (cl > 0) {
		if (e->o->max_filesize &&
		    (int64_t)x->offset + cl > e->o->max_filesize) {
			x->fail = F_TOOBIG;
			return -1;
		}
		e->expected += (uint64_t)cl;
		x->size = x->offset + (uint64_t)cl;
	}
	if (seg_wanted(x, cl)) {
		/* Stop the probe here: the pieces fetch the body. */
		x->fail = F_SPLIT;
		return -1;
	}
	return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct engine *e = x->e;
	size_t n = size * nmemb;

	if (x->fail)
		return 0; /* data handed back on resume after a failure */
	if (!x->checked && xfer_check_response(x) < 0)
		return 0;
	if (x->discard)
		return n;
	if (e->rate && !rate_take(e->rate, n)) {
		/* libcurl keeps the chunk and gives it again on resume. */
		x->paused = true;
		e->npaused++;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (e->o->max_filesize &&
	    x->offset + x->got + n > (uint64_t)e->o->max_filesize) {
		x->fail = F_TOOBIG;
		return 0;
	}
	if (x->md)
		EVP_DigestUpdate(x->md, data, n);
	if (n >= DIRECT_WRITE) {
		/* Chunks this big go straight to the file: a copy costs
		 * more than the system call it would save. */
		int r = part_flush(x);

		if (r == 0 && x->fd < 0) {
			/* The whole body in one chunk (a 16 KiB file): it
			 * is placed as soon as the response ends. */
			x->at_once = x->offset == 0 && x->size &&
				     x->got + n == x->size;
			r = part_open(x);
		}
		if (r == 0)
			r = write_all(x->fd, data, n);
		if (r < 0) {
			x->fail = F_IO;
			x->fail_errno = -r;
			return 0;
		}
	} else {
		if (x->len + n > BUF_SIZE && part_flush(x) < 0)
			return 0;
		memcpy(x->buf + x->len, data, n);
		x->len += n;
	}
	x->got += n;
	x->t_last = e->now;
	e->bytes += n;
	atomic_store_explicit(&e->stat->bytes, e->bytes, memory_order_relaxed);
	return n;
}

/* Whether header line h (n bytes, with CRLF) is "name: ...". */
const char *header_value(const char *h, size_t n, const char *name,
				size_t *vlen)
{
	size_t k = strlen(name);

	if (n <= k || h[k] != ':' || strncasecmp(h, name, k))
		return NULL;
	h += k + 1;
	n -= k + 1;
	while (n && (*h == ' ' || *h == '\t')) {
		h++;
		n--;
	}
	while (n && (h[n - 1] == '\r' || h[n - 1] == '\n' || h[n - 1] == ' '))
		n--;
	*vlen = n;
	return h;
}

void copy_header(char *dst, size_t cap, const char *v, size_t n)
{
	if (n >= cap)
		n = 0; /* too long to be trusted as a validator */
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *h, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	const char *v;
	size_t vn;

	x->t_last = x->e->now;
	/* Each response (redirects, 100 Continue) starts anew. */
	if (n > 5 && !memcmp(h, "HTTP/", 5)) {
		x->etag[0] = '\0';
		x->lastmod[0] = '\0';
		x->ranges = false;
		x->cr_start = -1;
		x->cr_total = -1;
		free(x->cd_name);
		x->cd_name = NULL;
		return n;
	}
	switch (h[0] | 0x20) {
	case 'a':
		if ((v = header_value(h, n, "accept-ranges", &vn)))
			x->ranges = vn == 5 && !strncasecmp(v, "bytes", 5);
		break;
	case 'e':
		if ((v = header_value(h, n, "etag", &vn)))
			copy_header(x->etag, sizeof(x->etag), v, vn);
		break;
	case 'l':
		if ((v = header_value(h, n, "last-modified", &vn)))
			copy_header(x->lastmod, sizeof(x->lastmod), v, vn);
		break;
	case 'c':
		if ((v = header_value(h, n, "content-range", &vn))) {
			char tmp[128];
			long long a, b, t;

			copy_header(tmp, sizeof(tmp), v, vn);
			if (sscanf(tmp, "bytes %lld-%lld/%lld", &a, &b, &t) ==
			    3) {
				x->cr_start = a;
				x->cr_total = t;
			} else if (sscanf(tmp, "bytes */%lld", &t) == 1) {
				x->cr_total = t;
			}
		} else if (x->e->o->content_disposition &&
			   (v = header_value(h, n, "content-disposition",
					     &vn))) {
			free(x->cd_name);
			x->cd_name = name_from_disposition(v, vn);
		}
		break;
	}
	return n;
}

static struct curl_slist *if_range(struct curl_slist *headers,
				   const char *v)
{
	struct curl_slist *l = NULL;
	char h[256];

	for (struct curl_slist *s = headers; s; s = s->next) {
		struct curl_slist *t = curl_slist_append(l, s->data);

		if (!t)
			goto fail;
		l = t;
	}
	snprintf(h, sizeof(h), "If-Range: %s", v);
	struct curl_slist *t = curl_slist_append(l, h);

	if (t)
		return t;
fail:
	curl_slist_free_all(l);
	return NULL;
}

int xfer_start(struct engine *e, struct xfer *x)
{
	CURL *c = x->easy;
	/* The -H headers and --user: for the job's own host only, unless
	 * trusted. */
	bool own = !x->hop || e->o->location_trusted ||
		   same_origin(x->url, x->hop);
	struct curl_slist *headers = own ? e->o->headers : NULL;
	CURLMcode mc;

	x->attempts++;
	x->exit = 0;
	x->size = 0;
	x->ftp = !strncasecmp(x->hop ? x->hop : x->url, "ftp", 3);
	x->checked = false;
	x->at_once = false;
	x->discard = false;
	x->fail = F_NONE;
	x->code = 0;
	x->got = 0;
	x->len = 0;
	x->cr_start = -1;
	x->cr_total = -1;
	x->errbuf[0] = '\0';
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	/* CURLOPT_RANGE rather than RESUME_FROM: libcurl then leaves a
	 * 200 answer to us, and we start the .part over in place. */
	if (x->offset) {
		char range[32];

		snprintf(range, sizeof(range), "%llu-",
			 (unsigned long long)x->offset);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
		if (x->validator[0])
			x->hdrs = if_range(headers, x->validator);
	} else {
		curl_easy_setopt(c, CURLOPT_RANGE, NULL);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs ? x->hdrs : headers);
	/* --user, like -H, to the URL's own host only (we follow the
	 * redirects, so libcurl cannot tell). */
	curl_easy_setopt(c, CURLOPT_USERPWD, own ? e->o->user : NULL);
	curl_easy_setopt(c, CURLOPT_URL, x->hop ? x->hop : x->url);
	/* FTP's validator for -c is the file's time (MDTM).  Over HTTP
	 * the validator is our own pick of the headers, and libcurl's
	 * date parsing of Last-Modified (eight sscanf calls) was a tenth
	 * of a small file's instructions (callgrind). */
	curl_easy_setopt(c, CURLOPT_FILETIME, (long)x->ftp);
	/* Over TLS, wait to learn whether the connection multiplexes
	 * (HTTP/2) rather than open another.  Plain http is HTTP/1.1 here,
	 * and waiting would serialize the transfers on one connection. */
	curl_easy_setopt(c, CURLOPT_PIPEWAIT,
			 (long)(strncasecmp(x->url, "https:", 6) == 0));
	mc = curl_multi_add_handle(e->multi, c);
	if (mc != CURLM_OK)
		return -1;
	x->state = XS_ACTIVE;
	x->t_last = e->now;
	e->active++;
	return 0;
}

int xfer_setup(struct engine *e, struct xfer *x)
{
	CURL *c = curl_easy_init();

	if (!c)
		return -ENOMEM;
	x->easy = c;
	x->buf = malloc(BUF_SIZE);
	if (!x->buf)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	easy_options(e, c);
	return 0;
}

/* Whether a variable names a proxy that libcurl would use. */
static bool env_proxy(void)
{
	static const char *const vars[] = {
		"http_proxy", "https_proxy", "HTTPS_PROXY", "ftp_proxy",
		"FTP_PROXY", "ftps_proxy", "FTPS_PROXY", "all_proxy",
		"ALL_PROXY",
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);

		if (v && *v)
			return true;
	}
	return false;
}

/* What every request of the run shares: timeouts, TLS, proxy, agent. */
void easy_options(struct engine *e, CURL *c)
{
	const struct opts *o = e->o;

	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* No CURLOPT_FOLLOWLOCATION: redirect_follow() does it, for the
	 * headers. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,ftp,ftps");
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE,
			 (long)(e->rate ? rate_chunk(e->rate->limit, BUF_SIZE)
					: BUF_SIZE));
	if (o->connect_timeout > 0)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(o->connect_timeout * 1000));
	if (o->timeout > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
				 (long)(o->timeout * 1000));
	if (o->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
	if (o->capath)
		curl_easy_setopt(c, CURLOPT_CAPATH, o->capath);
	if (o->cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
	if (o->key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
	/* Unset, libcurl reads http_proxy, https_proxy and no_proxy. */
	if (o->proxy)
		curl_easy_setopt(c, CURLOPT_PROXY, o->proxy);
	else if (!env_proxy())
		/* None: "" says so, and libcurl stops reading the
		 * environment for every request (a few getenv calls a
		 * file). */
		curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (o->noproxy)
		curl_easy_setopt(c, CURLOPT_NOPROXY, o->noproxy);
	if (o->max_filesize)
		curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
				 (curl_off_t)o->max_filesize);
	curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent);
	if (e->share) {
		/* One cookie store for the worker: what a server sets is
		 * sent by every later request.  "" turns the engine on. */
		curl_easy_setopt(c, CURLOPT_SHARE, e->share);
		curl_easy_setopt(c, CURLOPT_COOKIEFILE,
				 o->load_cookies ? o->load_cookies : "");
	}
	if (o->netrc) {
		curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		if (o->netrc_file)
			curl_easy_setopt(c, CURLOPT_NETRC_FILE, o->netrc_file);
	}
}
