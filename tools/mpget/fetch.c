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
 * The body goes to NAME.part, created only when the first byte of a
 * successful response arrives (an error response leaves nothing on disk)
 * and written from a buffer in large writes.  NAME.part is always a new
 * file (unlink, then O_CREAT|O_EXCL): whatever was planted there, a hard
 * link to a file elsewhere or a FIFO, is never opened.  When the transfer
 * is complete and verified (Content-Length, Content-Range, sha-256) the
 * file is synced, checked to be still the inode we wrote, and renamed to
 * its name with RENAME_NOREPLACE, numbered if the name is taken: an
 * existing file is never overwritten unless --overwrite, and no name
 * another job owns (its NAME or NAME.part) is ever used.
 *
 * Redirects are followed here, not by libcurl, so that the -H headers go
 * to the URL's own host only (libcurl would send them to any host but for
 * Authorization and Cookie); --location-trusted sends them everywhere.
 *
 * Resuming (-c): a .part is only continued when it carries the validator
 * (ETag, else Last-Modified) its bytes came with, in the
 * user.mpget.validator extended attribute, which every .part gets as soon
 * as it is created, -c or not.  Without one (no xattrs here, a server
 * that sends neither header) it starts over: bytes of unknown origin are
 * never spliced to new ones.  The Range request carries If-Range, and the
 * 206 must start where we asked and carry the same validator (a cache
 * that ignores If-Range); otherwise, and on a 200, the .part starts over.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mpget.h"

#define BUF_SIZE (256 * 1024)
#define DIRECT_WRITE (16 * 1024)
#define VALIDATOR_XATTR "user.mpget.validator"
#define MAX_BACKOFF 60.0
#define MAX_RETRY_AFTER 600.0

enum { XS_FREE, XS_ACTIVE, XS_WAIT };

/* Failures found by our own callbacks rather than by libcurl. */
enum { F_NONE, F_RANGE, F_TOOBIG, F_IO };

struct xfer {
	struct engine *e;
	CURL *easy;
	int state;
	/* the job */
	uint32_t index;
	char *url;            /* owns the job's text: url, then name */
	const char *name;
	char *hop;            /* where a redirect led, NULL: url itself */
	long hops;            /* redirects followed */
	char part[MAX_NAME_LEN + 8];
	bool has_sum;
	uint8_t sum[32];
	int attempts;
	double t_start;
	double t_due;         /* when a waiting slot tries again */
	double t_last;        /* when the last byte came (stall timeout) */
	/* the .part file, kept across attempts */
	int fd;
	bool part_exists;     /* we created or resumed a .part */
	uint64_t offset;      /* bytes in the .part before this response */
	dev_t dev;            /* the .part we created or resumed */
	ino_t ino;
	EVP_MD_CTX *md;
	char validator[192];  /* "ETag" or date the .part's bytes came with */
	char *cd_name;        /* from Content-Disposition */
	/* this attempt */
	bool checked;         /* the response code was looked at */
	bool paused;          /* by the rate limit: libcurl holds a chunk */
	bool discard;         /* an error response: its body is dropped */
	int fail;
	int fail_errno;
	long code;
	uint64_t got;         /* body bytes of this response */
	size_t len;           /* buffered */
	char *buf;
	int64_t cr_start, cr_total;
	char etag[160];
	char lastmod[64];
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
};

struct engine {
	const struct opts *o;
	int dirfd;
	CURLM *multi;
	struct worker_stat *stat;
	struct rate *rate;    /* NULL: no --limit-rate */
	int npaused;
	int resume_from;      /* where resume_paused starts: fairness */
	struct xfer *x;
	int nslots;
	int used;             /* slots not free */
	int active;           /* slots in the multi handle */
	uint64_t bytes;
	uint64_t expected;
	double now;           /* cached at each engine_run */
	unsigned seed;
	const struct reserved *names;
	struct placing *placing; /* our record of the rename under way */
	const char *die_after;   /* test hook, see place() */
	int (*report)(void *ctx, const struct result_msg *r, const char *final,
		      const char *error);
	void *ctx;
};

static void stat_update(struct engine *e)
{
	atomic_store_explicit(&e->stat->bytes, e->bytes, memory_order_relaxed);
	atomic_store_explicit(&e->stat->expected, e->expected,
			      memory_order_relaxed);
	atomic_store_explicit(&e->stat->active, (uint32_t)e->active,
			      memory_order_relaxed);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Remember what the .part's bytes belong to, for -c and If-Range. */
static void store_validator(struct xfer *x)
{
	if (x->fd < 0)
		return;
	if (x->validator[0])
		fsetxattr(x->fd, VALIDATOR_XATTR, x->validator,
			  strlen(x->validator), 0);
	else
		fremovexattr(x->fd, VALIDATOR_XATTR);
}

/* Create NAME.part, always a new regular file (only called at offset 0:
 * a .part with bytes in it is open already). */
static int open_part(struct xfer *x)
{
	struct stat st;

	/* NAME.part is this job's name: what is there is a leftover of an
	 * earlier run, or planted.  Opening it could write through a hard
	 * link to a file outside DIR, or block forever on a FIFO; so it
	 * goes, and O_EXCL makes sure we write to the file we create.
	 * O_NONBLOCK: even a FIFO raced in cannot block us. */
	unlinkat(x->e->dirfd, x->part, 0);
	x->fd = openat(x->e->dirfd, x->part,
		       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
			       O_CLOEXEC,
		       0644);
	if (x->fd < 0)
		return -errno;
	if (fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(x->fd);
		x->fd = -1;
		return -EEXIST;
	}
	x->dev = st.st_dev;
	x->ino = st.st_ino;
	x->part_exists = true;
	x->offset = 0;
	store_validator(x);
	return 0;
}

static int flush(struct xfer *x)
{
	int r;

	if (x->len == 0)
		return 0;
	if (x->fd < 0 && (r = open_part(x)) < 0)
		goto fail;
	r = write_all(x->fd, x->buf, x->len);
	x->len = 0;
	if (r == 0)
		return 0;
fail:
	x->fail = F_IO;
	x->fail_errno = -r;
	x->len = 0;
	return r;
}

/* Start the .part over: the server is sending the whole file. */
static int restart_part(struct xfer *x)
{
	x->offset = 0;
	x->len = 0;
	if (x->md)
		EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
	if (x->fd >= 0 &&
	    (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)) {
		x->fail = F_IO;
		x->fail_errno = errno;
		return -1;
	}
	return 0;
}

/* The response's validator: a strong ETag, else Last-Modified (If-Range
 * takes no weak ETag), else "". */
static const char *response_validator(const struct xfer *x)
{
	if (x->etag[0] && strncmp(x->etag, "W/", 2))
		return x->etag;
	return x->lastmod;
}

static int check_response(struct xfer *x)
{
	struct engine *e = x->e;
	const char *v = response_validator(x);
	curl_off_t cl = -1;

	x->checked = true;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->code);
	if (x->code == 206) {
		/* The rest of the same file, or nothing: a 206 of another
		 * range, or of a file that changed (a server or cache that
		 * ignored If-Range), starts the .part over. */
		if (x->cr_start != (int64_t)x->offset ||
		    (x->offset && strcmp(v, x->validator))) {
			x->fail = F_RANGE;
			return -1;
		}
	} else if (x->code >= 200 && x->code < 300) {
		if (x->offset && restart_part(x) < 0)
			return -1;
	} else {
		x->discard = true;
		return 0;
	}
	if (strcmp(x->validator, v)) {
		snprintf(x->validator, sizeof(x->validator), "%s", v);
		store_validator(x);
	}
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (cl > 0) {
		if (e->o->max_filesize &&
		    (int64_t)x->offset + cl > e->o->max_filesize) {
			x->fail = F_TOOBIG;
			return -1;
		}
		e->expected += (uint64_t)cl;
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
	if (!x->checked && check_response(x) < 0)
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
		int r = flush(x);

		if (r == 0 && x->fd < 0)
			r = open_part(x);
		if (r == 0)
			r = write_all(x->fd, data, n);
		if (r < 0) {
			x->fail = F_IO;
			x->fail_errno = -r;
			return 0;
		}
	} else {
		if (x->len + n > BUF_SIZE && flush(x) < 0)
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
static const char *header_value(const char *h, size_t n, const char *name,
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

static void copy_header(char *dst, size_t cap, const char *v, size_t n)
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
		x->cr_start = -1;
		x->cr_total = -1;
		free(x->cd_name);
		x->cd_name = NULL;
		return n;
	}
	switch (h[0] | 0x20) {
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

static void send_result(struct engine *e, struct xfer *x, int kind,
			int status, double secs, const char *final,
			const char *error)
{
	struct result_msg r = {
		.index = x->index,
		.kind = (uint8_t)kind,
		.status = (uint8_t)status,
		.attempts = (uint16_t)x->attempts,
		.http = (int32_t)x->code,
		.bytes = x->offset + x->got,
		.secs = secs,
	};

	e->report(e->ctx, &r, final, error);
}

static void release(struct engine *e, struct xfer *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	free(x->url);
	x->url = NULL;
	free(x->hop);
	x->hop = NULL;
	x->hops = 0;
	free(x->cd_name);
	x->cd_name = NULL;
	x->state = XS_FREE;
	e->used--;
}

static void fail_job(struct engine *e, struct xfer *x, const char *why,
		     bool keep_part)
{
	if (keep_part)
		flush(x);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (x->part_exists && !keep_part)
		unlinkat(e->dirfd, x->part, 0);
	send_result(e, x, RES_DONE, ST_FAILED, now_mono() - x->t_start, NULL,
		    why);
	release(e, x);
}

/*
 * A name the server suggests must not be a .part (ours or another job's:
 * another download would write into it, or take it away) nor another
 * job's name.
 */
static bool server_name_ok(const struct engine *e, const struct xfer *x,
			   const char *name)
{
	size_t n = strlen(name);

	return !(n >= 5 && !strcmp(name + n - 5, ".part")) &&
	       !name_reserved(e->names, name, x->index);
}

/* Before the rename: the .part on disk is still the file we wrote and
 * synced.  Returns 0, or an error text in why. */
static int check_part(struct engine *e, struct xfer *x, char *why,
		      size_t size)
{
	struct stat st;

	/* The data first, then the name that points to it: after a crash
	 * NAME is whole or absent, never a file of holes or zeros.
	 * fdatasync is enough: it writes the size too. */
	if (!e->o->no_fsync && fdatasync(x->fd) < 0) {
		snprintf(why, size, "fsync %s: %s", x->part, strerror(errno));
		return -1;
	}
	if (fstatat(e->dirfd, x->part, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_dev != x->dev || st.st_ino != x->ino) {
		/* Not ours any more: leave it where it is. */
		x->part_exists = false;
		snprintf(why, size, "%s was replaced during the download",
			 x->part);
		return -1;
	}
	return 0;
}

/* Tell the parent which rename is under way (struct placing). */
static void placing(struct engine *e, struct xfer *x, const char *name)
{
	struct placing *p = e->placing;

	if (!p)
		return;
	if (!name) {
		atomic_store_explicit(&p->index, NO_JOB, memory_order_release);
		return;
	}
	p->http = (int32_t)x->code;
	p->attempts = (uint16_t)x->attempts;
	p->dev = x->dev;
	p->ino = x->ino;
	p->secs = now_mono() - x->t_start;
	snprintf(p->name, sizeof(p->name), "%s", name);
	atomic_store_explicit(&p->index, x->index, memory_order_release);
}

/* Rename the complete .part to its name, numbering it when taken. */
static void place(struct engine *e, struct xfer *x)
{
	const struct opts *o = e->o;
	const char *want = x->cd_name && server_name_ok(e, x, x->cd_name)
				   ? x->cd_name
				   : x->name;
	char name[MAX_NAME_LEN + 64];
	char why[512];
	int r = 0;

	if (x->fd < 0 && open_part(x) < 0) {
		snprintf(why, sizeof(why), "create %s: %s", x->part,
			 strerror(errno));
		fail_job(e, x, why, false);
		return;
	}
	if (check_part(e, x, why, sizeof(why)) < 0) {
		fail_job(e, x, why, false);
		return;
	}
	close(x->fd);
	x->fd = -1;
	snprintf(name, sizeof(name), "%s", want);
	for (unsigned k = 1;; k++) {
		/* Another job's name or .part is taken, even before that
		 * job gets to it. */
		if (name_reserved(e->names, name, x->index)) {
			r = -1;
			errno = EEXIST;
			goto next;
		}
		placing(e, x, name);
		if (o->overwrite)
			r = renameat(e->dirfd, x->part, e->dirfd, name);
		else
			r = renameat2(e->dirfd, x->part, e->dirfd, name,
				      RENAME_NOREPLACE);
		if (r < 0 && errno == EINVAL && !o->overwrite) {
			/* No RENAME_NOREPLACE here: link() also refuses
			 * to replace. */
			r = linkat(e->dirfd, x->part, e->dirfd, name, 0);
			if (r == 0)
				unlinkat(e->dirfd, x->part, 0);
		}
		if (r == 0 || errno != EEXIST || k > 100000)
			break;
		if (o->no_clobber) {
			placing(e, x, NULL);
			unlinkat(e->dirfd, x->part, 0);
			send_result(e, x, RES_DONE, ST_SKIPPED,
				    now_mono() - x->t_start, name,
				    "file exists (--no-clobber)");
			release(e, x);
			return;
		}
next:
		if (k > 100000 ||
		    name_numbered(want, k, name, sizeof(name)) < 0)
			break;
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "rename to %s: %s", name,
			 strerror(errno));
		placing(e, x, NULL);
		fail_job(e, x, why, false);
		return;
	}
	/* The name, before we say it is there: a crash after the report
	 * keeps the file.  A failure here loses nothing the rename did not
	 * already risk. */
	if (!o->no_fsync)
		fsync(e->dirfd);
	/* Test hook: MPGET_TEST_DIE_AFTER_RENAME=NAME kills the worker
	 * right after NAME is placed and before it is reported, the window
	 * a crash or the OOM killer can hit.  Unset, it costs one compare;
	 * undocumented, for tests/test_mpget.py only. */
	if (e->die_after && !strcmp(e->die_after, name))
		raise(SIGKILL);
	send_result(e, x, RES_DONE, ST_OK, now_mono() - x->t_start, name,
		    NULL);
	placing(e, x, NULL);
	release(e, x);
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

static int start(struct engine *e, struct xfer *x);

/* A transient failure: try again later, resuming when -c allows it. */
static void retry_later(struct engine *e, struct xfer *x, const char *why,
			long retry_after)
{
	double d = backoff(e, x, retry_after);

	if (e->o->cont && x->fail == F_NONE && x->validator[0] &&
	    flush(x) == 0)
		x->offset += x->got;
	else if (restart_part(x) < 0)
		return fail_job(e, x, why, false);
	free(x->hop); /* a retry starts from the job's URL again */
	x->hop = NULL;
	x->hops = 0;
	x->state = XS_WAIT;
	x->t_due = now_mono() + d;
	send_result(e, x, RES_RETRY, ST_PENDING, d, NULL, why);
}

static bool verify_sum(struct xfer *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_DigestFinal_ex(x->md, md, &len);
	return len == 32 && !memcmp(md, x->sum, 32);
}

/* Whether two URLs have the same scheme, host and port. */
static bool same_origin(const char *a, const char *b)
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
static int follow(struct engine *e, struct xfer *x, char *why, size_t size)
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
	hop = strdup(loc); /* loc is the handle's, and start() reuses it */
	if (!hop) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	free(x->hop);
	x->hop = hop;
	x->hops++;
	x->attempts--; /* the same attempt goes on */
	if (start(e, x) == 0)
		return 1;
	snprintf(why, size, "could not follow the redirect");
	return -1;
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
		int f = follow(e, x, why, sizeof(why));

		if (f > 0)
			return;
		if (f < 0)
			return fail_job(e, x, why, false);
	}
	if (rc == CURLE_OK && x->checked && !x->discard && !x->fail) {
		flush(x);
	}
	if (rc == CURLE_OK && x->checked && !x->discard && !x->fail) {
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				  &cl);
		if (cl >= 0 && (uint64_t)cl != x->got) {
			snprintf(why, sizeof(why),
				 "got %llu bytes of %lld (Content-Length)",
				 (unsigned long long)x->got, (long long)cl);
			transient = true;
		} else if (x->code == 206 && x->cr_total >= 0 &&
			   x->offset + x->got != (uint64_t)x->cr_total) {
			snprintf(why, sizeof(why),
				 "got %llu bytes of %lld (Content-Range)",
				 (unsigned long long)(x->offset + x->got),
				 (long long)x->cr_total);
			transient = true;
		} else if (x->md && !verify_sum(x)) {
			fail_job(e, x, "sha-256 checksum mismatch", false);
			return;
		} else {
			place(e, x);
			return;
		}
	} else if (rc == CURLE_OK && x->code >= 200 && x->code < 300 &&
		   x->code != 206 && !x->checked) {
		/* An empty body: no write callback ran. */
		x->checked = true;
		check_response(x);
		if (x->fail == F_NONE && (!x->md || verify_sum(x))) {
			place(e, x);
			return;
		}
		snprintf(why, sizeof(why), "%s",
			 x->fail ? "empty file refused" :
				   "sha-256 checksum mismatch");
	} else if (x->fail == F_RANGE) {
		/* The server answered a different range: start over at
		 * once, this does not count as an attempt. */
		bool resumed = x->offset > 0;

		x->fail = F_NONE;
		if (resumed && restart_part(x) == 0) {
			x->attempts--;
			if (start(e, x) == 0)
				return;
		}
		snprintf(why, sizeof(why), "bad Content-Range");
	} else if (x->fail == F_TOOBIG) {
		snprintf(why, sizeof(why), "larger than --max-filesize");
	} else if (x->fail == F_IO) {
		snprintf(why, sizeof(why), "write %s: %s", x->part,
			 strerror(x->fail_errno));
	} else if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		transient = transient_curl_error(rc);
		if (rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(why, sizeof(why),
				 "larger than --max-filesize");
	} else if (x->code == 416 && x->offset > 0) {
		if (x->cr_total == (int64_t)x->offset &&
		    (!x->md || verify_sum(x))) {
			/* The .part was already complete. */
			x->got = 0;
			place(e, x);
			return;
		}
		x->attempts--;
		if (restart_part(x) == 0 && start(e, x) == 0)
			return;
		snprintf(why, sizeof(why), "HTTP 416");
	} else {
		snprintf(why, sizeof(why), "HTTP %ld", x->code);
		transient = x->code == 408 || x->code == 429 || x->code >= 500;
		curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after);
	}
	if (transient && x->attempts <= o->retries) {
		retry_later(e, x, why, retry_after);
		return;
	}
	/* With -c a transient failure keeps its bytes for the next run. */
	fail_job(e, x, why,
		 transient && o->cont && x->fail == F_NONE &&
			 x->offset + x->got > 0);
}

static int hash_existing(struct xfer *x)
{
	char *buf = x->buf;
	uint64_t left = x->offset;

	if (lseek(x->fd, 0, SEEK_SET) < 0)
		return -1;
	while (left > 0) {
		size_t want = left < BUF_SIZE ? (size_t)left : BUF_SIZE;
		ssize_t n = read(x->fd, buf, want);

		if (n <= 0)
			return -1;
		EVP_DigestUpdate(x->md, buf, (size_t)n);
		left -= (uint64_t)n;
	}
	return 0;
}

/* -c: pick up NAME.part from an earlier run. */
static void resume_part(struct engine *e, struct xfer *x)
{
	struct stat st;
	ssize_t n;

	/* O_NONBLOCK: a FIFO must not block the open.  Only a regular
	 * file of one link is ours to append to (a hard link would let us
	 * write to a file outside DIR), and only with its validator. */
	x->fd = openat(e->dirfd, x->part,
		       O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (x->fd < 0)
		return;
	if (fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || st.st_size == 0)
		goto fresh;
	n = fgetxattr(x->fd, VALIDATOR_XATTR, x->validator,
		      sizeof(x->validator) - 1);
	if (n <= 0)
		goto fresh;
	x->validator[n] = '\0';
	x->dev = st.st_dev;
	x->ino = st.st_ino;
	x->part_exists = true;
	x->offset = (uint64_t)st.st_size;
	if (x->md && hash_existing(x) < 0)
		goto fresh;
	if (lseek(x->fd, (off_t)x->offset, SEEK_SET) < 0)
		goto fresh;
	return;
fresh:
	close(x->fd);
	x->fd = -1;
	x->part_exists = false;
	x->offset = 0;
	x->validator[0] = '\0';
	if (x->md)
		EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
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

static int start(struct engine *e, struct xfer *x)
{
	CURL *c = x->easy;
	/* The -H headers: for the job's own host only, unless trusted. */
	struct curl_slist *headers =
		!x->hop || e->o->location_trusted ||
				same_origin(x->url, x->hop)
			? e->o->headers
			: NULL;
	CURLMcode mc;

	x->attempts++;
	x->checked = false;
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
	curl_easy_setopt(c, CURLOPT_URL, x->hop ? x->hop : x->url);
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
	x->url = malloc(tlen + 1);
	if (!x->url)
		return -ENOMEM;
	memcpy(x->url, m->text, tlen);
	x->url[tlen] = '\0';
	name = x->url + strlen(x->url) + 1;
	if (name >= x->url + tlen || !name_is_safe(name)) {
		free(x->url);
		x->url = NULL;
		return -EINVAL;
	}
	x->name = name;
	snprintf(x->part, sizeof(x->part), "%s.part", name);
	x->index = m->index;
	x->has_sum = m->has_sum;
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
	if (x->has_sum) {
		if (!x->md)
			x->md = EVP_MD_CTX_new();
		if (!x->md || !EVP_DigestInit_ex(x->md, EVP_sha256(), NULL)) {
			free(x->url);
			x->url = NULL;
			return -ENOMEM;
		}
	} else if (x->md) {
		EVP_MD_CTX_free(x->md);
		x->md = NULL;
	}
	x->state = XS_WAIT;
	e->used++;
	if (e->o->cont)
		resume_part(e, x);
	if (start(e, x) < 0) {
		fail_job(e, x, "could not start the transfer", true);
		return 0;
	}
	stat_update(e);
	return 0;
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
			if (start(e, x) < 0)
				fail_job(e, x, "could not restart", true);
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
				flush(x);
		}
		if (x->fd >= 0 && x->validator[0])
			fsetxattr(x->fd, VALIDATOR_XATTR, x->validator,
				  strlen(x->validator), 0);
		send_result(e, x, RES_DONE, ST_INTERRUPTED,
			    now_mono() - x->t_start,
			    x->part_exists ? x->part : NULL, "interrupted");
		release(e, x);
	}
	stat_update(e);
}

static int setup_easy(struct engine *e, struct xfer *x)
{
	const struct opts *o = e->o;
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
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* No CURLOPT_FOLLOWLOCATION: follow() does it, for the headers. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
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
	if (o->max_filesize)
		curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
				 (curl_off_t)o->max_filesize);
	curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent);
	return 0;
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
	e->x = calloc((size_t)slots, sizeof(*e->x));
	if (!e->multi || !e->x)
		goto fail;
	curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)slots);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)slots);
	if (o->max_per_host > 0)
		curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				  (long)o->max_per_host);
	for (int i = 0; i < slots; i++) {
		e->x[i].e = e;
		e->x[i].fd = -1;
		if (setup_easy(e, &e->x[i]) < 0)
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
			release(e, x);
		if (x->easy)
			curl_easy_cleanup(x->easy);
		EVP_MD_CTX_free(x->md);
		free(x->buf);
	}
	if (e->multi)
		curl_multi_cleanup(e->multi);
	free(e->x);
	free(e);
}
