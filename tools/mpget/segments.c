/* SPDX-License-Identifier: MIT */
/*
 * Segmented downloads (-s, -x): one file over several connections.
 *
 * A job starts with a plain GET, the probe.  When its answer says the
 * file can be split (200, at least twice --min-split-size, Accept-Ranges:
 * bytes, a validator to hold every piece to), the probe is stopped after
 * its headers and the file is fetched in pieces, each a Range request of
 * its own on its own easy handle in the engine's multi handle, and
 * written in place with pwrite() into NAME.part, which has its final size
 * from the start.  When a piece ends and a connection is free, the piece
 * with the longest time left is split in two (work stealing): the last
 * seconds are not one slow connection.  The file is renamed only when
 * every byte is in and the checksum, if any, matches.
 *
 * Every piece's answer must be a 206 that starts where we asked and
 * carries the probe's validator.  A 206 elsewhere is refetched (never
 * written at the wrong offset); a 200 (Range ignored) or another
 * validator (the file changed) gives up the pieces: the file is fetched
 * whole again, with a warning.
 *
 * With mirrors (several URLs on a list line), each piece goes to the
 * mirror that has been fastest so far (one not tried yet counts as the
 * fastest, the least busy first), and a mirror that fails a piece gets no
 * more.  Each mirror's pieces are held to the validator of its own first
 * answer (servers differ in ETags), and every mirror must agree on the
 * size, or the file fails.
 *
 * The control file NAME.part.ctl says which bytes of NAME.part are in:
 * its first lines are the size and the validator, then a line "START END"
 * per range done, appended only after fdatasync() of NAME.part, so a
 * record never names bytes that are not on disk, even after SIGKILL or a
 * power cut.  -c reads it back and fetches only what it does not name,
 * if the server still has the same file.  NAME.part carries no validator
 * xattr meanwhile: without its control file it is never resumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fetch.h"

#define CKPT_BYTES (2 << 20) /* a piece records its progress this often */
#define CTL_MAGIC "mpget-segments 1"

enum { P_TODO, P_ACTIVE, P_DONE };

struct piece {
	struct xfer *x;
	CURL *easy;
	int state;
	uint64_t pos, end;   /* [pos, end) is still to fetch */
	uint64_t rec;        /* [rec, pos) is written, not yet recorded */
	uint64_t pos0;       /* pos when this request started */
	bool checked;
	bool cut;            /* stopped at its end on purpose */
	int bad;             /* F_* */
	int err;             /* errno of F_IO */
	long code;
	int64_t cr_start, cr_total;
	int m;               /* the mirror it is fetched from */
	char etag[160];
	char lastmod[64];
	double t_start, t_last;
	char errbuf[CURL_ERROR_SIZE];
};

struct mirror_stat {
	uint64_t bytes;      /* of the pieces that ended */
	double secs;         /* that they took */
	int active;
	bool bad;            /* failed a piece: no more pieces */
	bool seen;           /* validator below is its own */
	char validator[192];
};

struct seg {
	struct piece **p;
	int n, cap;
	int active;
	int conns;
	int fails;
	bool resumed;        /* pieces from a control file, not yet probed */
	uint64_t size;
	char validator[192];
	int ctl;
	char ctl_name[MAX_NAME_LEN + 16];
	struct mirror_stat ms[MAX_MIRRORS];
};

static int64_t min_split(const struct opts *o)
{
	return o->min_split > 0 ? o->min_split : 1 << 20;
}

static int conns(const struct opts *o)
{
	int n = o->conns > 0 ? o->conns : o->split;

	return o->split > 0 && o->split < n ? o->split : n;
}

static struct seg *seg_new(struct xfer *x)
{
	struct seg *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->ctl = -1;
	snprintf(s->ctl_name, sizeof(s->ctl_name), "%s.ctl", x->part);
	s->conns = conns(x->e->o);
	return s;
}

static struct piece *add_piece(struct seg *s, struct xfer *x, uint64_t a,
			       uint64_t b)
{
	struct piece *p;

	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 16;
		struct piece **v = realloc(s->p, (size_t)cap * sizeof(*v));

		if (!v)
			return NULL;
		s->p = v;
		s->cap = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->x = x;
	p->pos = p->rec = a;
	p->end = b;
	s->p[s->n++] = p;
	return p;
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* [p->rec, p->pos) is on disk: say so in the control file. */
static void record(struct piece *p)
{
	struct xfer *x = p->x;
	struct seg *s = x->seg;
	char line[64];
	int n;

	if (p->pos <= p->rec || s->ctl < 0)
		return;
	if (!x->e->o->no_fsync && fdatasync(x->fd) < 0)
		return; /* not on disk: not recorded, fetched again */
	n = snprintf(line, sizeof(line), "%llu %llu\n",
		     (unsigned long long)p->rec, (unsigned long long)p->pos);
	/* One write of one line, O_APPEND: a record is whole or absent. */
	if (write(s->ctl, line, (size_t)n) == n)
		p->rec = p->pos;
}

void seg_checkpoint(struct xfer *x)
{
	for (int i = 0; x->seg && i < x->seg->n; i++)
		record(x->seg->p[i]);
}

static void piece_stop(struct engine *e, struct piece *p)
{
	if (!p->easy)
		return;
	curl_multi_remove_handle(e->multi, p->easy);
	curl_easy_cleanup(p->easy);
	p->easy = NULL;
	if (p->state == P_ACTIVE) {
		p->state = P_TODO;
		p->x->seg->active--;
		p->x->seg->ms[p->m].active--;
	}
}

void seg_free(struct engine *e, struct xfer *x, bool keep)
{
	struct seg *s = x->seg;

	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		piece_stop(e, s->p[i]);
		free(s->p[i]);
	}
	free(s->p);
	if (s->ctl >= 0)
		close(s->ctl);
	if (!keep)
		unlinkat(e->dirfd, s->ctl_name, 0);
	free(s);
	x->seg = NULL;
}

/* Whether the control file's name is free for us to use. */
static bool ctl_name_ok(const struct xfer *x, const char *name)
{
	return !name_reserved(x->e->names, name, x->index);
}

bool seg_wanted(struct xfer *x, int64_t cl)
{
	const struct opts *o = x->e->o;
	char ctl[MAX_NAME_LEN + 16];

	if (x->seg && x->seg->resumed) {
		if ((uint64_t)cl == x->seg->size &&
		    !strcmp(x->validator, x->seg->validator))
			return true;
		/* Another file now: what the pieces hold is of no use. */
		xfer_report(x->e, x, RES_WARN, ST_PENDING, 0, NULL,
			    "changed on the server since the last run: "
			    "fetched whole again");
		seg_free(x->e, x, false);
		close(x->fd);
		x->fd = -1;
		unlinkat(x->e->dirfd, x->part, 0);
		x->part_exists = false;
	}
	snprintf(ctl, sizeof(ctl), "%s.ctl", x->part);
	return o->split > 1 && !x->no_split && !x->e->rate && x->ranges &&
	       x->code == 200 && x->offset == 0 && x->validator[0] &&
	       cl >= 2 * min_split(o) && ctl_name_ok(x, ctl);
}

static size_t on_piece_header(char *h, size_t size, size_t nmemb, void *ud)
{
	struct piece *p = ud;
	size_t n = size * nmemb;
	const char *v;
	size_t vn;

	p->t_last = p->x->e->now;
	if (n > 5 && !memcmp(h, "HTTP/", 5)) {
		p->etag[0] = '\0';
		p->lastmod[0] = '\0';
		p->cr_start = -1;
		p->cr_total = -1;
	} else if ((v = header_value(h, n, "etag", &vn))) {
		copy_header(p->etag, sizeof(p->etag), v, vn);
	} else if ((v = header_value(h, n, "last-modified", &vn))) {
		copy_header(p->lastmod, sizeof(p->lastmod), v, vn);
	} else if ((v = header_value(h, n, "content-range", &vn))) {
		char tmp[128];
		long long a, b, t;

		copy_header(tmp, sizeof(tmp), v, vn);
		if (sscanf(tmp, "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
			p->cr_start = a;
			p->cr_total = t;
		}
	}
	return n;
}

/* The piece's answer: the bytes we asked for, of the same file. */
static int piece_check(struct piece *p)
{
	struct xfer *x = p->x;
	struct seg *s = x->seg;
	struct mirror_stat *ms = &s->ms[p->m];
	const char *v = pick_validator(p->etag, p->lastmod);

	p->checked = true;
	curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &p->code);
	if (p->m != x->cur && !ms->seen && p->code == 206) {
		snprintf(ms->validator, sizeof(ms->validator), "%s", v);
		ms->seen = true;
	}
	if (p->code == 200)
		p->bad = F_NORANGE;
	else if (p->code != 206)
		p->bad = F_HTTP;
	else if (p->cr_total >= 0 && (uint64_t)p->cr_total != s->size)
		p->bad = F_SIZE;
	else if (!*v || strcmp(v, p->m == x->cur ? s->validator
						  : ms->validator))
		p->bad = F_CHANGED;
	else if (p->cr_start != (int64_t)p->pos)
		p->bad = F_RANGE;
	return p->bad ? -1 : 0;
}

static size_t on_piece_write(char *data, size_t size, size_t nmemb,
			     void *ud)
{
	struct piece *p = ud;
	struct xfer *x = p->x;
	struct engine *e = x->e;
	size_t n = size * nmemb;
	size_t take;
	int r;

	if (!p->checked && piece_check(p) < 0)
		return 0;
	take = p->end - p->pos < n ? (size_t)(p->end - p->pos) : n;
	if (take && (r = pwrite_all(x->fd, data, take, p->pos)) < 0) {
		p->bad = F_IO;
		p->err = -r;
		return 0;
	}
	p->pos += take;
	p->t_last = e->now;
	e->bytes += take;
	atomic_store_explicit(&e->stat->bytes, e->bytes, memory_order_relaxed);
	if (p->pos - p->rec >= CKPT_BYTES)
		record(p);
	if (take < n) {
		/* Its end moved (stolen): the rest is another piece's. */
		p->cut = true;
		return 0;
	}
	return n;
}

/* The mirror for a piece: the fastest so far, its pieces under way
 * included, that has not failed one. */
static int pick_mirror(struct xfer *x)
{
	struct seg *s = x->seg;
	double now = x->e->now;
	int best = -1;
	double best_rate = -1;

	for (int i = 0; i < x->nmirrors; i++) {
		struct mirror_stat *ms = &s->ms[i];
		double bytes = (double)ms->bytes, secs = ms->secs, rate;

		if (ms->bad)
			continue;
		for (int k = 0; k < s->n; k++) {
			struct piece *p = s->p[k];

			if (p->state == P_ACTIVE && p->m == i) {
				bytes += (double)(p->pos - p->pos0);
				secs += now - p->t_start;
			}
		}
		/* Untried: try it.  Just started: no figure yet either. */
		rate = secs > 0.05 ? bytes / secs : 1e30;
		if (rate > best_rate ||
		    (rate == best_rate && ms->active < s->ms[best].active)) {
			best = i;
			best_rate = rate;
		}
	}
	return best < 0 ? x->cur : best;
}

static int piece_start(struct engine *e, struct xfer *x, struct piece *p)
{
	const struct opts *o = e->o;
	CURL *c = curl_easy_init();
	char range[64];
	const char *url;

	if (!c)
		return -1;
	p->m = pick_mirror(x);
	url = p->m == x->cur && x->hop ? x->hop : x->mirror[p->m];
	p->easy = c;
	p->checked = p->cut = false;
	p->bad = F_NONE;
	p->code = 0;
	p->cr_start = -1;
	p->errbuf[0] = '\0';
	p->pos0 = p->pos;
	p->t_start = p->t_last = e->now;
	easy_options(e, c);
	curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)p);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_piece_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_piece_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->errbuf);
	/* One connection per piece: over HTTP/2 the pieces would share
	 * one, and a limit per connection is what splitting is for. */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	/* The -H headers: to the URL's own host (a mirror is one), not
	 * where it redirected, unless trusted. */
	if (url != x->hop || o->location_trusted ||
	    same_origin(x->url, x->hop)) {
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->headers);
		curl_easy_setopt(c, CURLOPT_USERPWD, o->user);
	}
	snprintf(range, sizeof(range), "%llu-%llu",
		 (unsigned long long)p->pos, (unsigned long long)p->end - 1);
	curl_easy_setopt(c, CURLOPT_RANGE, range);
	if (curl_multi_add_handle(e->multi, c) != CURLM_OK) {
		curl_easy_cleanup(c);
		p->easy = NULL;
		return -1;
	}
	p->state = P_ACTIVE;
	x->seg->active++;
	x->seg->ms[p->m].active++;
	return 0;
}

/* The active piece with the longest time left, if it is worth a split. */
static struct piece *slowest(struct engine *e, struct seg *s)
{
	struct piece *best = NULL;
	double worst = 0;
	uint64_t least = 2 * (uint64_t)min_split(e->o);

	for (int i = 0; i < s->n; i++) {
		struct piece *p = s->p[i];
		double secs = e->now - p->t_start;
		double rate = secs > 0 ? (double)(p->pos - p->pos0) / secs : 0;
		double left;

		if (p->state != P_ACTIVE || p->end - p->pos < least)
			continue;
		left = (double)(p->end - p->pos) / (rate > 1 ? rate : 1);
		if (!best || left > worst) {
			best = p;
			worst = left;
		}
	}
	return best;
}

static void seg_done(struct engine *e, struct xfer *x);

/* Keep every connection busy: waiting pieces first, then steal. */
static int schedule(struct engine *e, struct xfer *x)
{
	struct seg *s = x->seg;
	bool left = false;

	for (int i = 0; i < s->n && s->active < s->conns; i++) {
		struct piece *p = s->p[i];

		if (p->state == P_TODO && piece_start(e, x, p) < 0)
			return -1;
	}
	while (s->active < s->conns) {
		struct piece *v = slowest(e, s);
		uint64_t mid;
		struct piece *p;

		if (!v)
			break;
		mid = v->pos + (v->end - v->pos) / 2;
		p = add_piece(s, x, mid, v->end);
		if (!p)
			return -1;
		v->end = mid; /* it stops there (on_piece_write) */
		if (piece_start(e, x, p) < 0)
			return -1;
	}
	for (int i = 0; i < s->n; i++)
		left |= s->p[i]->state != P_DONE;
	if (!left)
		seg_done(e, x);
	return 0;
}

static int open_ctl(struct engine *e, struct xfer *x)
{
	struct seg *s = x->seg;
	char head[512];
	int n;

	unlinkat(e->dirfd, s->ctl_name, 0);
	s->ctl = openat(e->dirfd, s->ctl_name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
				O_APPEND | O_CLOEXEC,
			0644);
	if (s->ctl < 0)
		return -1;
	n = snprintf(head, sizeof(head), "%s %llu\n%s\n", CTL_MAGIC,
		     (unsigned long long)s->size, s->validator);
	if (write(s->ctl, head, (size_t)n) != n)
		return -1;
	/* The control file exists, durably, before NAME.part grows to its
	 * size: a .part with holes is never without it. */
	if (!e->o->no_fsync && fsync(s->ctl) < 0)
		return -1;
	return 0;
}

int seg_start(struct engine *e, struct xfer *x)
{
	const struct opts *o = e->o;
	curl_off_t cl = -1;
	struct seg *s = x->seg;
	uint64_t k, step;

	if (s && s->resumed) {
		/* The same file: go on with the pieces not recorded. */
		s->resumed = false;
		s->ctl = openat(e->dirfd, s->ctl_name,
				O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK |
					O_CLOEXEC);
		if (s->ctl < 0)
			goto fail;
		x->state = XS_SEG;
		return schedule(e, x) < 0 ? -1 : 0;
	}
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	s = x->seg = seg_new(x);
	if (!s || cl <= 0)
		goto fail;
	s->size = (uint64_t)cl;
	snprintf(s->validator, sizeof(s->validator), "%s", x->validator);
	if (x->fd < 0 && part_open(x) < 0)
		goto fail;
	/* No validator on the .part itself: only the control file says
	 * which of its bytes are good. */
	fremovexattr(x->fd, VALIDATOR_XATTR);
	if (open_ctl(e, x) < 0 || ftruncate(x->fd, (off_t)s->size) < 0)
		goto fail;
	k = (uint64_t)(o->split > 0 ? o->split : 1);
	if (k > s->size / (uint64_t)min_split(o))
		k = s->size / (uint64_t)min_split(o);
	step = s->size / k;
	for (uint64_t i = 0; i < k; i++)
		if (!add_piece(s, x, i * step,
			       i + 1 == k ? s->size : (i + 1) * step))
			goto fail;
	x->state = XS_SEG;
	if (schedule(e, x) < 0)
		goto fail;
	return 0;
fail:
	seg_free(e, x, false);
	return -1;
}

/* Read the control file back: the ranges it does not name are pieces. */
static int read_ctl(struct engine *e, struct xfer *x, struct seg *s)
{
	int fd = openat(e->dirfd, s->ctl_name,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f;
	char line[256];
	unsigned long long size, a, b;
	uint64_t *done = NULL; /* pairs, sorted below */
	size_t nd = 0, cap = 0;
	int ret = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    !(f = fdopen(fd, "r"))) {
		close(fd);
		return -1;
	}
	if (!fgets(line, sizeof(line), f) ||
	    sscanf(line, CTL_MAGIC " %llu", &size) != 1 || size == 0 ||
	    !fgets(s->validator, sizeof(s->validator), f))
		goto out;
	s->validator[strcspn(s->validator, "\n")] = '\0';
	s->size = size;
	while (fgets(line, sizeof(line), f)) {
		if (!strchr(line, '\n') ||
		    sscanf(line, "%llu %llu", &a, &b) != 2 || a >= b ||
		    b > size)
			break; /* a torn last line: not recorded */
		if (nd == cap) {
			size_t c = cap ? 2 * cap : 64;
			uint64_t *v = realloc(done, 2 * c * sizeof(*v));

			if (!v)
				goto out;
			done = v;
			cap = c;
		}
		done[2 * nd] = a;
		done[2 * nd + 1] = b;
		nd++;
	}
	/* The gaps between the recorded ranges, in order of offset. */
	for (size_t i = 1; i < nd; i++)
		for (size_t j = i; j > 0 && done[2 * j] < done[2 * j - 2];
		     j--) {
			uint64_t t0 = done[2 * j], t1 = done[2 * j + 1];

			done[2 * j] = done[2 * j - 2];
			done[2 * j + 1] = done[2 * j - 1];
			done[2 * j - 2] = t0;
			done[2 * j - 1] = t1;
		}
	{
		uint64_t at = 0;

		for (size_t i = 0; i <= nd; i++) {
			uint64_t to = i < nd ? done[2 * i] : size;

			if (to > at && !add_piece(s, x, at, to))
				goto out;
			if (i < nd && done[2 * i + 1] > at)
				at = done[2 * i + 1];
		}
	}
	ret = 0;
out:
	free(done);
	fclose(f);
	return ret;
}

bool seg_resume(struct engine *e, struct xfer *x)
{
	struct seg *s;
	struct stat st;

	if (e->o->split <= 1 || e->rate)
		return false;
	s = seg_new(x);
	if (!s)
		return false;
	x->seg = s;
	if (!ctl_name_ok(x, s->ctl_name) || read_ctl(e, x, s) < 0)
		goto fresh;
	x->fd = openat(e->dirfd, x->part,
		       O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (x->fd < 0 || fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || (uint64_t)st.st_size != s->size)
		goto fresh;
	x->dev = st.st_dev;
	x->ino = st.st_ino;
	x->part_exists = true;
	s->resumed = true;
	snprintf(x->validator, sizeof(x->validator), "%s", s->validator);
	return true;
fresh:
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	/* A control file we cannot use: nothing is resumed (a .part of
	 * pieces is never taken as a contiguous one).  None: the .part, if
	 * any, is a plain one for part_resume(). */
	if (faccessat(e->dirfd, s->ctl_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		unlinkat(e->dirfd, x->part, 0);
		seg_free(e, x, false);
	} else {
		seg_free(e, x, true);
	}
	return false;
}

/* Every piece is in: verify, then place it as any download. */
static void seg_done(struct engine *e, struct xfer *x)
{
	struct seg *s = x->seg;
	uint64_t at = 0;
	char why[512];

	if (x->md) {
		part_sum_init(x);
		while (at < s->size) {
			size_t want = s->size - at < BUF_SIZE
					      ? (size_t)(s->size - at)
					      : BUF_SIZE;
			ssize_t n = pread(x->fd, x->buf, want, (off_t)at);

			if (n <= 0) {
				snprintf(why, sizeof(why), "read %s: %s",
					 x->part, strerror(errno));
				x->exit = EXIT_WRITE;
				return xfer_fail(e, x, why, false);
			}
			EVP_DigestUpdate(x->md, x->buf, (size_t)n);
			at += (uint64_t)n;
		}
		if (!part_verify_sum(x)) {
			snprintf(why, sizeof(why), "%s checksum mismatch",
				 sum_name(x->sum_type));
			return xfer_fail(e, x, why, false);
		}
	}
	x->offset = s->size;
	x->got = 0;
	x->code = 200;
	/* Whole now: the validator goes back on the .part (a crash before
	 * the rename leaves a complete .part that -c places), and the
	 * control file goes. */
	part_store_validator(x);
	seg_free(e, x, false);
	part_place(e, x);
}

/* The pieces cannot be trusted: the whole file again, from the start. */
static void whole_again(struct engine *e, struct xfer *x, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s: fetched whole again", why);
	xfer_report(e, x, RES_WARN, ST_PENDING, 0, NULL, msg);
	seg_free(e, x, false);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	unlinkat(e->dirfd, x->part, 0);
	x->part_exists = false;
	x->offset = 0;
	x->no_split = true;
	if (x->md)
		part_sum_init(x);
	x->attempts--;
	if (xfer_start(e, x) < 0)
		xfer_fail(e, x, "could not restart", false);
}

/* Whether a mirror other than m may still get pieces. */
static bool other_mirror(const struct xfer *x, int m)
{
	for (int i = 0; i < x->nmirrors; i++)
		if (i != m && !x->seg->ms[i].bad)
			return true;
	return false;
}

static void piece_end(struct engine *e, struct piece *p, CURLcode rc)
{
	struct xfer *x = p->x;
	struct seg *s = x->seg;
	const struct opts *o = e->o;
	char why[CURL_ERROR_SIZE + 1024];

	curl_multi_remove_handle(e->multi, p->easy);
	if (!p->checked && rc == CURLE_OK)
		piece_check(p);
	curl_easy_cleanup(p->easy);
	p->easy = NULL;
	p->state = P_TODO;
	s->active--;
	s->ms[p->m].active--;
	s->ms[p->m].bytes += p->pos - p->pos0;
	s->ms[p->m].secs += e->now - p->t_start;
	if (p->bad == F_SIZE) {
		snprintf(why, sizeof(why),
			 "mirrors disagree on the size: %.400s has %lld "
			 "bytes, %.400s has %llu", x->mirror[p->m],
			 (long long)p->cr_total, x->url,
			 (unsigned long long)s->size);
		return xfer_fail(e, x, why, false);
	}
	if (p->bad != F_NONE && p->bad != F_IO && p->bad != F_RANGE &&
	    other_mirror(x, p->m)) {
		/* That mirror is no good for this file: the others. */
		s->ms[p->m].bad = true;
		p->bad = F_NONE;
		record(p);
		if (schedule(e, x) < 0)
			xfer_fail(e, x, "out of memory", o->cont);
		return;
	}
	if (p->bad == F_NORANGE)
		return whole_again(e, x, "the server ignored Range");
	if (p->bad == F_CHANGED)
		return whole_again(e, x, "changed on the server");
	if (p->bad == F_IO) {
		snprintf(why, sizeof(why), "write %s: %s", x->part,
			 strerror(p->err));
		x->exit = EXIT_WRITE;
		return xfer_fail(e, x, why, false);
	}
	record(p);
	if (p->pos >= p->end && (rc == CURLE_OK || p->cut)) {
		p->state = P_DONE;
	} else if (p->bad == F_NONE && rc != CURLE_OK &&
		   other_mirror(x, p->m)) {
		/* A network failure on this mirror: the others. */
		s->ms[p->m].bad = true;
	} else if (++s->fails > (o->retries + 1) * s->conns) {
		/* It goes on from p->pos next time, bad range or not. */
		if (p->bad == F_HTTP)
			snprintf(why, sizeof(why), "HTTP %ld", p->code);
		else if (p->bad == F_RANGE)
			snprintf(why, sizeof(why), "bad Content-Range");
		else
			snprintf(why, sizeof(why), "%s",
				 p->errbuf[0] ? p->errbuf
					      : curl_easy_strerror(rc));
		if (p->bad == F_NONE && rc != CURLE_OK)
			x->exit = EXIT_NETWORK;
		if (p->bad == F_HTTP && (p->code == 404 || p->code == 410))
			x->exit = EXIT_NOT_FOUND;
		return xfer_fail(e, x, why, o->cont);
	}
	if (schedule(e, x) < 0)
		xfer_fail(e, x, "out of memory", o->cont);
}

bool seg_collect(struct engine *e, void *priv, CURLcode rc)
{
	struct xfer *x = priv;

	if (x >= e->x && x < e->x + e->nslots)
		return false;
	piece_end(e, priv, rc);
	return true;
}

uint64_t seg_size(const struct xfer *x)
{
	return x->seg->size;
}

uint64_t seg_have(const struct xfer *x)
{
	uint64_t left = 0;

	for (int i = 0; i < x->seg->n; i++)
		left += x->seg->p[i]->end - x->seg->p[i]->pos;
	return x->seg->size - left;
}

void seg_check_stalls(struct engine *e, struct xfer *x)
{
	double limit = e->o->stall_timeout;
	struct seg *s = x->seg;

	for (int i = 0; limit > 0 && s && i < s->n; i++) {
		struct piece *p = s->p[i];

		if (p->state != P_ACTIVE || e->now - p->t_last < limit)
			continue;
		snprintf(p->errbuf, sizeof(p->errbuf),
			 "stalled: nothing received for %.1f s", limit);
		piece_end(e, p, CURLE_OPERATION_TIMEDOUT);
		s = x->seg; /* it may be gone */
	}
}
