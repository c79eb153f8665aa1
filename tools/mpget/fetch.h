/* SPDX-License-Identifier: MIT */
#ifndef MPGET_FETCH_H
#define MPGET_FETCH_H

/*
 * The insides of the transfer engine, shared by its files:
 *
 *   fetch.c     the engine: slots, the multi handle, outcomes, retries
 *   transfer.c  the libcurl easy handle, its callbacks, starting a request
 *   part.c      NAME.part: creating, writing, validators, resuming, placing
 *   redirect.c  following redirects ourselves
 *
 * Nothing outside these files sees struct xfer or struct engine.
 */
#include <sys/types.h>

#include <openssl/evp.h>

#include "mpget.h"

#define BUF_SIZE (256 * 1024)
#define DIRECT_WRITE (16 * 1024)
#define VALIDATOR_XATTR "user.mpget.validator"
#define MAX_BACKOFF 60.0
#define MAX_RETRY_AFTER 600.0

/* XS_SEG: split into pieces (segments.c), which are in the multi handle
 * in its place. */
enum { XS_FREE, XS_ACTIVE, XS_WAIT, XS_SEG };

/* Failures found by our own callbacks rather than by libcurl. */
enum { F_NONE, F_RANGE, F_TOOBIG, F_IO, F_SPLIT, F_NORANGE, F_CHANGED,
       F_HTTP, F_SIZE };

struct seg;

struct xfer {
	struct engine *e;
	CURL *easy;
	int state;
	/* the job */
	uint32_t index;
	char *text;           /* owns the job's text: URLs, then name */
	const char *url;      /* the mirror in use */
	const char *mirror[MAX_MIRRORS];
	int nmirrors;
	int cur;              /* url == mirror[cur] */
	unsigned tried;       /* mirrors that failed since the last retry */
	const char *name;
	char *hop;            /* where a redirect led, NULL: url itself */
	long hops;            /* redirects followed */
	char part[MAX_NAME_LEN + 8];
	uint8_t sum_type;     /* SUM_* */
	uint8_t sum[SUM_MAX];
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
	struct seg *seg;      /* split into pieces, or resuming pieces */
	bool no_split;        /* fetch it whole: splitting failed */
	/* this attempt */
	bool checked;         /* the response code was looked at */
	bool at_once;         /* the whole body is in buf: the .part is
				 created, written and placed in one go */
	bool paused;          /* by the rate limit: libcurl holds a chunk */
	bool discard;         /* an error response: its body is dropped */
	int fail;
	int fail_errno;
	int exit;             /* EXIT_* of a failure, 0: found in xfer_fail */
	long code;
	uint64_t got;         /* body bytes of this response */
	uint64_t size;        /* the whole file's, when known */
	size_t len;           /* buffered */
	char *buf;
	int64_t cr_start, cr_total;
	char etag[160];
	char lastmod[64];
	bool ranges;          /* Accept-Ranges: bytes */
	bool ftp;             /* an ftp:// or ftps:// URL */
	char ftp_time[32];    /* its validator */
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
};

struct engine {
	const struct opts *o;
	int dirfd;
	CURLM *multi;
	CURLSH *share;        /* the cookies of every handle, when any */
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
	const char *die_after;   /* test hook, see part_place() */
	int (*report)(void *ctx, const struct result_msg *r, const char *final,
		      const char *error);
	void *ctx;
};
/* fetch.c */
void xfer_report(struct engine *e, struct xfer *x, int kind, int status,
		 double secs, const char *final, const char *error);
void xfer_release(struct engine *e, struct xfer *x);
/* The job fails; its .part is kept (for -c) or removed. */
void xfer_fail(struct engine *e, struct xfer *x, const char *why,
	       bool keep_part);

/* transfer.c */
int xfer_setup(struct engine *e, struct xfer *x);
void easy_options(struct engine *e, CURL *c);
const char *pick_validator(const char *etag, const char *lastmod);
/* Header line h (n bytes, with CRLF) is "name: value": the value. */
const char *header_value(const char *h, size_t n, const char *name,
			 size_t *vlen);
void copy_header(char *dst, size_t cap, const char *v, size_t n);
/* Put the slot's request (again) into the multi handle. */
int xfer_start(struct engine *e, struct xfer *x);
/* The response's code and headers are in: may it go to the .part? */
int xfer_check_response(struct xfer *x);

/* part.c */
int write_all(int fd, const char *p, size_t n);
void part_store_validator(struct xfer *x);
int part_open(struct xfer *x);
int part_flush(struct xfer *x);
int part_restart(struct xfer *x);
void part_resume(struct engine *e, struct xfer *x);
bool part_verify_sum(struct xfer *x);
/* Start the checksum over (a .part that starts over). */
int part_sum_init(struct xfer *x);
/* Verified and complete: rename it to its name, and report. */
void part_place(struct engine *e, struct xfer *x);

/* segments.c */
/* Whether the response now in (a 200 of cl bytes) is to be split. */
bool seg_wanted(struct xfer *x, int64_t cl);
/* The probe was stopped: fetch the file in pieces; -1: fetch it whole. */
int seg_start(struct engine *e, struct xfer *x);
/* -c: pick up NAME.part and its control file, if they are usable. */
bool seg_resume(struct engine *e, struct xfer *x);
/* Whether a handle's private pointer is a piece's; then it ends. */
bool seg_collect(struct engine *e, void *priv, CURLcode rc);
void seg_check_stalls(struct engine *e, struct xfer *x);
/* Stop the pieces: record what is on disk (interrupt), or not. */
void seg_checkpoint(struct xfer *x);
void seg_free(struct engine *e, struct xfer *x, bool keep);
/* The file's bytes on disk so far (the pieces', resumed ones too). */
uint64_t seg_have(const struct xfer *x);
uint64_t seg_size(const struct xfer *x);

/* redirect.c */
bool same_origin(const char *a, const char *b);
/* 1 when followed, 0 when this is no redirect, -1 when it cannot be
 * followed (why says so). */
int redirect_follow(struct engine *e, struct xfer *x, char *why,
		    size_t size);

#endif
