/* SPDX-License-Identifier: MIT */
/*
 * The transfer engine of one worker process: a libcurl multi handle and a
 * fixed number of slots, each with its own easy handle made after fork()
 * and reused for every file the slot fetches (libcurl keeps the
 * connections, TLS sessions and DNS answers in the multi handle).
 *
 * A job's life in a slot:
 *
 *   free -> active (in the multi handle) -> done: placed under its name
 *                 |                      -> failed: .part removed
 *                 +-> waiting (backoff) -> active ...   (transient errors)
 *
 * This file decides what an ended transfer means (done, retry, fail);
 * transfer.c talks to libcurl, part.c to the file system, redirect.c
 * follows redirects (fetch.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fetch.h"

/* Our biggest transfers under way, for the parent's per-file lines. */
static void publish_top(struct engine *e)
{
	struct xfer *top[TOP_FILES] = {0};

	for (int i = 0; i < e->nslots; i++) {
		struct xfer *x = &e->x[i];
		int at;

		if (x->state == XS_SEG)
			x->size = seg_size(x);
		if ((x->state != XS_ACTIVE && x->state != XS_SEG) || !x->size)
			continue;
		for (at = TOP_FILES; at > 0; at--)
			if (top[at - 1] && top[at - 1]->size >= x->size)
				break;
		if (at == TOP_FILES)
			continue;
		memmove(&top[at + 1], &top[at],
			(TOP_FILES - 1 - (size_t)at) * sizeof(top[0]));
		top[at] = x;
	}
	for (int k = 0; k < TOP_FILES; k++) {
		struct top_file *t = &e->stat->top[k];
		struct xfer *x = top[k];

		atomic_store_explicit(&t->index, x ? x->index : NO_JOB,
				      memory_order_relaxed);
		if (!x)
			continue;
		atomic_store_explicit(&t->size, x->size, memory_order_relaxed);
		atomic_store_explicit(&t->have,
				      x->state == XS_SEG ? seg_have(x)
							 : x->offset + x->got,
				      memory_order_relaxed);
	}
}

static void stat_update(struct engine *e)
{
	publish_top(e);
	atomic_store_explicit(&e->stat->bytes, e->bytes, memory_order_relaxed);
	atomic_store_explicit(&e->stat->expected, e->expected,
			      memory_order_relaxed);
	atomic_store_explicit(&e->stat->active, (uint32_t)e->active,
			      memory_order_relaxed);
}

void xfer_report(struct engine *e, struct xfer *x, int kind, int status,
		 double secs, const char *final, const char *error)
{
	struct result_msg r = {
		.index = x->index,
		.kind = (uint8_t)kind,
		.status = (uint8_t)status,
		.attempts = (uint16_t)x->attempts,
		.http = (int32_t)x->code,
		.exit = (uint8_t)(status == ST_FAILED ? x->exit : 0),
		.bytes = x->offset + x->got,
		.secs = secs,
	};

	e->report(e->ctx, &r, final, error);
}

void xfer_release(struct engine *e, struct xfer *x)
{
	seg_free(e, x, true);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	free(x->text);
	x->text = NULL;
	x->url = NULL;
	free(x->hop);
	x->hop = NULL;
	x->hops = 0;
	free(x->cd_name);
	x->cd_name = NULL;
	x->state = XS_FREE;
	e->used--;
}

void xfer_fail(struct engine *e, struct xfer *x, const char *why,
	       bool keep_part)
{
	if (keep_part)
		part_flush(x);
	seg_free(e, x, keep_part);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (x->part_exists && !keep_part)
		unlinkat(e->dirfd, x->part, 0);
	if (!x->exit)
		x->exit = EXIT_SOME_FAILED;
	xfer_report(e, x, RES_DONE, ST_FAILED, now_mono() - x->t_start, NULL,
		    why);
	xfer_release(e, x);
}

static bool transient_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* What the user is told with the exit code: the network failed (or TLS,
 * or the proxy), not the server or us. */
static bool network_curl_error(CURLcode rc)
{
	if (transient_curl_error(rc)) /* every one is the network's */
		return true;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_PROXY:
	case CURLE_FTP_ACCEPT_FAILED:
	case CURLE_FTP_ACCEPT_TIMEOUT:
	case CURLE_FTP_WEIRD_PASV_REPLY:
	case CURLE_FTP_CANT_GET_HOST:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

static double backoff(struct engine *e, struct xfer *x, long retry_after)
{
	double d = e->o->retry_wait;
	double jitter = (double)rand_r(&e->seed) / RAND_MAX;

	for (int i = 1; i < x->attempts && d < MAX_BACKOFF; i++)
		d *= 2;
	if (d > MAX_BACKOFF)
		d = MAX_BACKOFF;
	d *= 0.5 + jitter; /* spread the herd */
	if (retry_after > 0) {
		/* The server said when: never earlier, a little later. */
		d = (double)retry_after;
		if (d > MAX_RETRY_AFTER)
			d = MAX_RETRY_AFTER;
		d += jitter * 0.1 * d;
	}
	return d;
}

/* A transient failure: try again later, resuming when -c allows it. */
static void retry_later(struct engine *e, struct xfer *x, const char *why,
			long retry_after)
{
	double d = backoff(e, x, retry_after);

	if (e->o->cont && x->fail == F_NONE && x->validator[0] &&
	    part_flush(x) == 0)
		x->offset += x->got;
	else if (part_restart(x) < 0)
		return xfer_fail(e, x, why, false);
	free(x->hop); /* a retry starts from the job's URL again */
	x->hop = NULL;
	x->hops = 0;
	x->state = XS_WAIT;
	x->t_due = now_mono() + d;
	xfer_report(e, x, RES_RETRY, ST_PENDING, d, NULL, why);
}

/*
 * Mirrors: a failure on one that is not ours (not a local write) moves
 * the file to the next mirror not tried since the last retry, at once and
 * from the start: another server's bytes are not spliced to these.
 * Returns whether it did.
 */
static bool failover(struct engine *e, struct xfer *x, const char *why)
{
	char msg[CURL_ERROR_SIZE + 512];

	if (x->nmirrors < 2 || x->exit == EXIT_WRITE || x->seg)
		return false;
	x->tried |= 1u << x->cur;
	for (int k = 1; k < x->nmirrors; k++) {
		int i = (x->cur + k) % x->nmirrors;

		if (x->tried & (1u << i))
			continue;
		snprintf(msg, sizeof(msg), "%.*s; trying the mirror %.*s",
			 CURL_ERROR_SIZE, why, 400, x->mirror[i]);
		xfer_report(e, x, RES_RETRY, ST_PENDING, 0, NULL, msg);
		x->cur = i;
		x->url = x->mirror[i];
		free(x->hop);
		x->hop = NULL;
		x->hops = 0;
		x->validator[0] = '\0';
		if (part_restart(x) < 0)
			return false;
		x->attempts--;
		return xfer_start(e, x) == 0;
	}
	return false;
}

static void finish(struct engine *e, struct xfer *x, CURLcode rc)
{
	const struct opts *o = e->o;
	char why[CURL_ERROR_SIZE + 64];
	bool transient = false;
	long retry_after = 0;
	curl_off_t cl = -1;

	curl_multi_remove_handle(e->multi, x->easy);
	e->active--;
	if (x->paused) {
		x->paused = false;
		e->npaused--;
	}
	if (!x->checked)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->code);
	if (rc == CURLE_OK && !x->fail) {
		int f = redirect_follow(e, x, why, sizeof(why));

		if (f > 0)
			return;
		if (f < 0)
			return xfer_fail(e, x, why, false);
	}
	if (rc == CURLE_OK && x->checked && !x->discard && !x->fail) {
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				  &cl);
		/* A body that came whole into the buffer (a small file)
		 * is created, written and placed in one go (part.c). */
		if (x->fd < 0)
			x->at_once = cl < 0 || (uint64_t)cl == x->got;
		part_flush(x);
	}
	if (rc == CURLE_OK && x->checked && !x->discard && !x->fail) {
		if (cl >= 0 && (uint64_t)cl != x->got) {
			snprintf(why, sizeof(why),
				 "got %llu bytes of %lld (Content-Length)",
				 (unsigned long long)x->got, (long long)cl);
			transient = true;
			x->exit = EXIT_NETWORK;
		} else if (x->code == 206 && x->cr_total >= 0 &&
			   x->offset + x->got != (uint64_t)x->cr_total) {
			snprintf(why, sizeof(why),
				 "got %llu bytes of %lld (Content-Range)",
				 (unsigned long long)(x->offset + x->got),
				 (long long)x->cr_total);
			transient = true;
			x->exit = EXIT_NETWORK;
		} else if (x->md && !part_verify_sum(x)) {
			snprintf(why, sizeof(why), "%s checksum mismatch",
				 sum_name(x->sum_type));
			if (!failover(e, x, why))
				xfer_fail(e, x, why, false);
			return;
		} else {
			part_place(e, x);
			return;
		}
	} else if (rc == CURLE_OK && x->code >= 200 && x->code < 300 &&
		   x->code != 206 && !x->checked) {
		/* An empty body: no write callback ran. */
		x->checked = true;
		xfer_check_response(x);
		x->at_once = x->fd < 0;
		if (x->fail == F_NONE && (!x->md || part_verify_sum(x))) {
			part_place(e, x);
			return;
		}
		if (x->fail)
			snprintf(why, sizeof(why), "empty file refused");
		else
			snprintf(why, sizeof(why), "%s checksum mismatch",
				 sum_name(x->sum_type));
	} else if (x->fail == F_SPLIT) {
		/* The probe said: in pieces.  If they cannot start, the
		 * file comes whole, on the same attempt. */
		x->fail = F_NONE;
		if (seg_start(e, x) == 0)
			return;
		x->no_split = true;
		x->attempts--;
		if (part_restart(x) == 0 && xfer_start(e, x) == 0)
			return;
		snprintf(why, sizeof(why), "could not restart");
	} else if (x->fail == F_RANGE) {
		/* The server answered a different range: start over at
		 * once, this does not count as an attempt. */
		bool resumed = x->offset > 0;

		x->fail = F_NONE;
		if (resumed && part_restart(x) == 0) {
			x->attempts--;
			if (xfer_start(e, x) == 0)
				return;
		}
		snprintf(why, sizeof(why), "bad Content-Range");
	} else if (x->fail == F_TOOBIG) {
		snprintf(why, sizeof(why), "larger than --max-filesize");
	} else if (x->fail == F_IO) {
		snprintf(why, sizeof(why), "write %s: %s", x->part,
			 strerror(x->fail_errno));
		x->exit = EXIT_WRITE;
	} else if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		transient = transient_curl_error(rc);
		if (network_curl_error(rc))
			x->exit = EXIT_NETWORK;
		if (rc == CURLE_REMOTE_FILE_NOT_FOUND)
			x->exit = EXIT_NOT_FOUND;
		if (rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(why, sizeof(why),
				 "larger than --max-filesize");
	} else if (x->code == 416 && x->offset > 0) {
		if (x->cr_total == (int64_t)x->offset &&
		    (!x->md || part_verify_sum(x))) {
			/* The .part was already complete. */
			x->got = 0;
			part_place(e, x);
			return;
		}
		x->attempts--;
		if (part_restart(x) == 0 && xfer_start(e, x) == 0)
			return;
		snprintf(why, sizeof(why), "HTTP 416");
	} else {
		snprintf(why, sizeof(why), "HTTP %ld", x->code);
		transient = x->code == 408 || x->code == 429 || x->code >= 500;
		if (x->code == 404 || x->code == 410)
			x->exit = EXIT_NOT_FOUND;
		curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after);
	}
	if (failover(e, x, why))
		return;
	if (transient && x->attempts <= o->retries) {
		x->tried = 0; /* every mirror again, after the backoff */
		retry_later(e, x, why, retry_after);
		return;
	}
	/* With -c a transient failure keeps its bytes for the next run. */
	xfer_fail(e, x, why,
		  transient && o->cont && x->fail == F_NONE &&
			  x->offset + x->got > 0);
}

int engine_add(struct engine *e, const struct job_msg *m, size_t len)
{
	struct xfer *x = NULL;
	size_t tlen = len - sizeof(*m);
	const char *name;

	for (int i = 0; i < e->nslots; i++) {
		if (e->x[i].state == XS_FREE) {
			x = &e->x[i];
			break;
		}
	}
	if (!x || len <= sizeof(*m))
		return -EINVAL;
	x->text = malloc(tlen + 1);
	if (!x->text)
		return -ENOMEM;
	memcpy(x->text, m->text, tlen);
	x->text[tlen] = '\0';
	name = x->text + strlen(x->text) + 1;
	if (name >= x->text + tlen || !name_is_safe(name)) {
		free(x->text);
		x->text = NULL;
		return -EINVAL;
	}
	x->nmirrors = 0;
	for (char *u = x->text, *t; u && x->nmirrors < MAX_MIRRORS; u = t) {
		t = strchr(u, '\t');
		if (t)
			*t++ = '\0';
		x->mirror[x->nmirrors++] = u;
	}
	x->cur = 0;
	x->tried = 0;
	x->url = x->mirror[0];
	x->name = name;
	snprintf(x->part, sizeof(x->part), "%s.part", name);
	x->index = m->index;
	x->sum_type = m->sum_type;
	memcpy(x->sum, m->sum, sizeof(x->sum));
	x->attempts = 0;
	x->t_start = now_mono();
	e->now = x->t_start;
	x->fd = -1;
	x->part_exists = false;
	x->offset = 0;
	x->validator[0] = '\0';
	x->etag[0] = '\0';
	x->lastmod[0] = '\0';
	x->cd_name = NULL;
	x->seg = NULL;
	x->no_split = false;
	if (x->sum_type) {
		if (!x->md)
			x->md = EVP_MD_CTX_new();
		if (!x->md || part_sum_init(x) < 0) {
			free(x->text);
			x->text = NULL;
			return -ENOMEM;
		}
	} else if (x->md) {
		EVP_MD_CTX_free(x->md);
		x->md = NULL;
	}
	x->state = XS_WAIT;
	e->used++;
	if (e->o->cont && !seg_resume(e, x))
		part_resume(e, x);
	if (xfer_start(e, x) < 0) {
		xfer_fail(e, x, "could not start the transfer", true);
		return 0;
	}
	stat_update(e);
	return 0;
}

void engine_save_cookies(struct engine *e, const char *jar)
{
	CURL *c = e->nslots > 0 ? e->x[0].easy : NULL;

	if (!c || !e->share)
		return;
	curl_easy_setopt(c, CURLOPT_COOKIEJAR, jar);
	curl_easy_setopt(c, CURLOPT_COOKIELIST, "FLUSH");
	curl_easy_setopt(c, CURLOPT_COOKIEJAR, NULL);
}

bool engine_has_free_slot(const struct engine *e)
{
	return e->used < e->nslots;
}

bool engine_idle(const struct engine *e)
{
	return e->used == 0;
}

static int collect(struct engine *e)
{
	CURLMsg *msg;
	int left;
	int n = 0;

	while ((msg = curl_multi_info_read(e->multi, &left))) {
		char *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (!seg_collect(e, priv, msg->data.result))
			finish(e, (struct xfer *)priv, msg->data.result);
		n++;
	}
	return n;
}

/*
 * Our own stall timeout rather than libcurl's low-speed limit: that one
 * averages over several seconds, so a transfer that stops after a burst
 * is noticed late.  Here any transfer that has received nothing, headers
 * or body, for stall_timeout seconds is given up as timed out.
 */
static int check_stalls(struct engine *e)
{
	double limit = e->o->stall_timeout;
	int n = 0;

	for (int i = 0; limit > 0 && i < e->nslots; i++) {
		struct xfer *x = &e->x[i];

		if (x->state == XS_SEG)
			seg_check_stalls(e, x);
		if (x->paused)
			x->t_last = e->now; /* waiting for us, not the server */
		if (x->state != XS_ACTIVE || e->now - x->t_last < limit)
			continue;
		snprintf(x->errbuf, sizeof(x->errbuf),
			 "stalled: nothing received for %.1f s", limit);
		finish(e, x, CURLE_OPERATION_TIMEDOUT);
		n++;
	}
	return n;
}

/* Give the rate limit's paused transfers their chunk, if it is time. */
static void resume_paused(struct engine *e)
{
	/* Round robin from where the last pass stopped, so that no slot
	 * starves when the budget allows one chunk at a time. */
	for (int k = 0; e->npaused > 0 && k < e->nslots; k++) {
		int i = (e->resume_from + k) % e->nslots;
		struct xfer *x = &e->x[i];
		CURLcode rc;

		if (!x->paused)
			continue;
		if (rate_wait_ns(e->rate) > 0)
			break;
		x->paused = false;
		e->npaused--;
		e->resume_from = (i + 1) % e->nslots;
		/* This may call on_write at once, which may pause again, or
		 * fail the transfer. */
		rc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
		if (rc != CURLE_OK)
			finish(e, x, rc);
	}
}

int engine_run(struct engine *e, int timeout_ms)
{
	double now = now_mono();
	double due = -1;
	int running;
	int n;

	e->now = now;
	for (int i = 0; i < e->nslots; i++) {
		struct xfer *x = &e->x[i];

		if (x->state != XS_WAIT)
			continue;
		if (x->t_due <= now) {
			if (xfer_start(e, x) < 0)
				xfer_fail(e, x, "could not restart", true);
		} else if (due < 0 || x->t_due < due) {
			due = x->t_due;
		}
	}
	resume_paused(e);
	curl_multi_perform(e->multi, &running);
	n = collect(e);
	if (n == 0) {
		if (due >= 0 && (due - now) * 1000 < timeout_ms)
			timeout_ms = (int)((due - now) * 1000) + 1;
		if (e->npaused > 0) {
			int64_t ms = rate_wait_ns(e->rate) / 1000000 + 1;

			if (ms < timeout_ms)
				timeout_ms = (int)ms;
		}
		curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
		e->now = now_mono();
		resume_paused(e);
		curl_multi_perform(e->multi, &running);
		n = collect(e);
	}
	n += check_stalls(e);
	stat_update(e);
	return n;
}

void engine_interrupt(struct engine *e)
{
	for (int i = 0; i < e->nslots; i++) {
		struct xfer *x = &e->x[i];

		if (x->state == XS_FREE)
			continue;
		if (x->state == XS_ACTIVE) {
			curl_multi_remove_handle(e->multi, x->easy);
			e->active--;
			if (x->checked && !x->discard && !x->fail)
				part_flush(x);
		}
		if (x->seg)
			seg_checkpoint(x); /* the pieces' bytes, recorded */
		else if (x->fd >= 0 && x->validator[0])
			fsetxattr(x->fd, VALIDATOR_XATTR, x->validator,
				  strlen(x->validator), 0);
		xfer_report(e, x, RES_DONE, ST_INTERRUPTED,
			    now_mono() - x->t_start,
			    x->part_exists ? x->part : NULL, "interrupted");
		xfer_release(e, x);
	}
	stat_update(e);
}

struct engine *engine_new(const struct opts *o, int dirfd,
			  struct worker_stat *stat, struct rate *rate,
			  const struct reserved *names,
			  struct placing *placing, int slots,
			  int (*report)(void *ctx, const struct result_msg *r,
					const char *final, const char *error),
			  void *ctx)
{
	struct engine *e = calloc(1, sizeof(*e));
	int conns = slots;

	if (!e)
		return NULL;
	e->o = o;
	e->dirfd = dirfd;
	e->stat = stat;
	e->rate = rate;
	e->names = names;
	e->placing = placing;
	/* A replacement worker goes on from its predecessor's counts, so
	 * the progress line never runs backwards. */
	e->bytes = atomic_load_explicit(&stat->bytes, memory_order_relaxed);
	e->expected = atomic_load_explicit(&stat->expected,
					   memory_order_relaxed);
	e->report = report;
	e->ctx = ctx;
	e->nslots = slots;
	e->now = now_mono();
	e->seed = (unsigned)getpid() ^ (unsigned)(e->now * 1e6);
	e->die_after = getenv("MPGET_TEST_DIE_AFTER_RENAME");
	e->multi = curl_multi_init();
	if (o->load_cookies || o->save_cookies) {
		e->share = curl_share_init();
		if (!e->share)
			goto fail;
		curl_share_setopt(e->share, CURLSHOPT_SHARE,
				  CURL_LOCK_DATA_COOKIE);
	}
	e->x = calloc((size_t)slots, sizeof(*e->x));
	if (!e->multi || !e->x)
		goto fail;
	/* Room for one split file's pieces besides the slots. */
	if (o->split > 1)
		conns = slots + (o->conns > o->split ? o->conns : o->split);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)conns);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)conns);
	if (o->max_per_host > 0)
		curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				  (long)o->max_per_host);
	for (int i = 0; i < slots; i++) {
		e->x[i].e = e;
		e->x[i].fd = -1;
		if (xfer_setup(e, &e->x[i]) < 0)
			goto fail;
	}
	return e;
fail:
	engine_free(e);
	return NULL;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (int i = 0; e->x && i < e->nslots; i++) {
		struct xfer *x = &e->x[i];

		if (x->state == XS_ACTIVE)
			curl_multi_remove_handle(e->multi, x->easy);
		if (x->state != XS_FREE)
			xfer_release(e, x);
		if (x->easy)
			curl_easy_cleanup(x->easy);
		EVP_MD_CTX_free(x->md);
		free(x->buf);
	}
	if (e->multi)
		curl_multi_cleanup(e->multi);
	if (e->share)
		curl_share_cleanup(e->share);
	free(e->x);
	free(e);
}
