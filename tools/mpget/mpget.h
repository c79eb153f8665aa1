/* SPDX-License-Identifier: MIT */
#ifndef MPGET_H
#define MPGET_H

/*
 * mpget: a batch downloader on worker processes.
 *
 * The parent (run.c) reads the URL list (urllist.c), gives every job a safe
 * file name (names.c) and starts a fixed set of worker processes
 * (worker.c).  Jobs go to the workers through one mp_queue, results come
 * back through another; each worker drives many transfers at once with one
 * libcurl multi handle (fetch.c and the files fetch.h lists).  Byte
 * counters live in shared memory that the parent renders (progress.c);
 * the summary and the JSON report are report.c.  Every message to the
 * user goes through msg.c.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <multiproc.h>

#define MPGET_VERSION MP_VERSION_STRING

/*
 * Exit codes (documented in --help and mpget(1)).  A failed file carries
 * the code of its class; when several fail, the first in the list decides
 * (list order, not time order: the same run gives the same code however
 * the transfers interleave).  Bad input lines come before every file.
 */
#define EXIT_OK 0
#define EXIT_SOME_FAILED 1  /* any other failure (HTTP 403, 5xx, ...) */
#define EXIT_USAGE 2        /* bad command line or list */
#define EXIT_NOT_FOUND 3    /* HTTP 404 or 410, FTP file not found */
#define EXIT_NETWORK 4      /* connect, DNS, reset, timeout, TLS, proxy */
#define EXIT_CHECKSUM 5     /* checksum= mismatch */
#define EXIT_WRITE 6        /* local write: disk full, permission */
#define EXIT_INTERRUPTED 130

/* checksum= types. */
enum { SUM_NONE, SUM_MD5, SUM_SHA1, SUM_SHA256, SUM_SHA512 };
#define SUM_MAX 64 /* bytes of the longest digest, sha-512 */

#define MAX_WORKERS 64
#define MAX_URL_LEN 16384 /* a list line: a URL and its mirrors */
#define MAX_MIRRORS 16
#define MAX_NAME_LEN 200 /* leaves room for ".part" and a number */

struct opts {
	const char *dir;
	int jobs;          /* concurrent transfers in all */
	int processes;     /* worker processes */
	int max_per_host;  /* 0: no limit beyond jobs */
	int split;         /* -s: pieces per file, 1: no splitting */
	int conns;         /* -x: connections per file */
	int64_t min_split; /* -k SIZE: the smallest piece */
	bool cont;
	bool no_clobber;
	bool overwrite;
	bool content_disposition;
	bool insecure;
	const char *cacert;     /* --cacert FILE */
	const char *capath;     /* --capath DIR */
	const char *cert;       /* --cert FILE: client certificate */
	const char *key;        /* --key FILE */
	const char *proxy;      /* --proxy URL, NULL: the environment's */
	const char *noproxy;    /* --noproxy LIST */
	const char *output;     /* -o NAME, one URL only */
	const char *load_cookies; /* Netscape cookie file, read */
	const char *save_cookies; /* written at the end */
	const char *user;       /* --user USER:PASS */
	bool netrc;             /* --netrc, or --netrc-file given */
	const char *netrc_file;
	bool strict;
	bool location_trusted;  /* -H headers also to redirects' hosts */
	bool no_fsync;          /* --no-fsync: no fdatasync before rename */
	int retries;
	double retry_wait;      /* first backoff, seconds */
	double connect_timeout; /* seconds, 0 = libcurl's default */
	double timeout;         /* whole transfer, 0 = none */
	double stall_timeout;   /* seconds without a byte, 0 = none */
	long max_redirs;
	int64_t max_filesize;   /* 0 = no limit */
	int64_t limit_rate;     /* bytes/s in all, 0 = none */
	struct curl_slist *headers;
	const char *user_agent;
	int verbosity;          /* 0 quiet, 1 normal, 2 verbose */
	const char *report;
	int progress;           /* PROGRESS_* */
};

enum { PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_LINES, PROGRESS_NONE };

enum status {
	ST_PENDING,
	ST_OK,
	ST_FAILED,
	ST_SKIPPED,
	ST_INTERRUPTED,
};

/* One URL to fetch, as the parent keeps it. */
struct job {
	char *url;
	char *mirrors;    /* more URLs of the same file, TAB-separated */
	char *name;       /* file name inside DIR, safe (names.c) */
	uint8_t sum_type; /* SUM_* */
	uint8_t sum[SUM_MAX]; /* the expected digest */
	int line;         /* input line, 0 for a command-line argument */
	/* outcome */
	enum status status;
	int http;
	int exit;         /* EXIT_* of a failure */
	int attempts;
	int lost;         /* times a worker died holding it */
	uint64_t bytes;
	double secs;
	char *final;      /* the name it was saved under */
	char *error;      /* why it failed or was skipped */
};

struct joblist {
	struct job *v;
	size_t n, cap;
	int bad_lines;    /* lines reported and skipped */
};

/*
 * Messages between the processes.  A job message is struct job_msg then
 * the URL and the name, each NUL-terminated.  A result message is struct
 * result_msg then the final name and the error text, each NUL-terminated.
 */
struct job_msg {
	uint32_t index;
	uint8_t sum_type;
	uint8_t sum[SUM_MAX];
	char text[];
};

enum { RES_DONE, RES_RETRY, RES_WARN };

struct result_msg {
	uint32_t index;
	uint8_t kind;     /* RES_* */
	uint8_t status;   /* enum status, for RES_DONE */
	uint8_t exit;     /* EXIT_* of a failure */
	uint16_t attempts;
	int32_t http;
	uint64_t bytes;
	double secs;      /* RES_DONE: time taken; RES_RETRY: the delay */
	char text[];
};

#define MSG_MAX (sizeof(struct result_msg) + MAX_URL_LEN + 2 * 1024)

/*
 * Shared memory (mp_shared_alloc), written by workers and read by the
 * parent.  Each worker owns one cache line of counters, so the hot path
 * is a relaxed store nobody else writes.
 */
#define TOP_FILES 3
struct top_file {
	_Atomic uint32_t index;     /* NO_JOB: none */
	_Atomic uint64_t have;      /* bytes of it on disk, resumed too */
	_Atomic uint64_t size;
};
struct worker_stat {
	_Atomic uint64_t bytes;     /* body bytes received */
	_Atomic uint64_t expected;  /* announced sizes of started transfers */
	_Atomic uint32_t active;    /* transfers under way */
	/* Its biggest transfers under way, for the per-file lines: read
	 * while written, and a torn entry only shows for one redraw. */
	struct top_file top[TOP_FILES];
} __attribute__((aligned(64)));

/* rate.c: --limit-rate, shared by every worker (the algorithm is there). */
struct rate {
	_Atomic int64_t tat;        /* ns, CLOCK_MONOTONIC */
	int64_t limit;              /* bytes per second */
};
void rate_init(struct rate *r, int64_t limit);
/* Whether n bytes may be taken now; if so, they are counted. */
bool rate_take(struct rate *r, size_t n);
/* Nanoseconds until rate_take may succeed; 0: now. */
int64_t rate_wait_ns(struct rate *r);
/* The receive chunk size that suits the limit, at most max. */
size_t rate_chunk(int64_t limit, size_t max);

/*
 * The rename a worker is doing (one at a time: a worker is one thread).
 * It is written before the rename and cleared after the report, so that
 * when the worker dies in between the parent can see that the file was
 * placed (the name holds the inode the worker wrote) and not fetch it
 * again.
 */
struct placing {
	_Atomic uint32_t index;     /* the job, NO_JOB when none */
	int32_t http;
	uint16_t attempts;
	uint64_t dev, ino;          /* of the .part being renamed */
	double secs;
	char name[MAX_NAME_LEN + 64];
};

struct shared {
	_Atomic int stop;           /* the parent asks the workers to stop */
	struct rate rate;           /* used when o->limit_rate is set */
	struct worker_stat w[MAX_WORKERS];
	struct placing placing[MAX_WORKERS];
};

/*
 * run.c: the names the run's jobs own, NAME and NAME.part, built before
 * the workers start.  No file is placed under another job's name or
 * .part, whatever a server suggests.
 */
struct reserved {
	const struct joblist *jl;
	uint32_t *slot;             /* job indexes, NO_JOB when empty */
	size_t mask;
};
/* Whether name is another job's (not job self's) NAME or NAME.part. */
bool name_reserved(const struct reserved *r, const char *name,
		   uint32_t self);

/* msg.c: every line mpget prints goes through these. */
extern int msg_verbosity;
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void infof(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void verbosef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Plain text to stderr, for the progress line and the summary. */
void outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A live line is on screen: messages erase it first. */
void msg_set_live(int lines);
int msg_live(void);
void msg_flush(void);
const char *human_bytes(double bytes, char *buf, size_t size);
const char *human_secs(double secs, char *buf, size_t size);
/* An ETA: always [h:]mm:ss, "--:--" when unknown. */
const char *human_eta(double secs, char *buf, size_t size);
/* "1 file", "2 files". */
const char *plural(size_t n, const char *word);

/* urllist.c */
int urllist_add_url(struct joblist *jl, const char *url, const char *src,
		    int line);
int urllist_read(struct joblist *jl, const char *path, bool strict);
/* The checksum type's name ("sha-256") and digest length. */
const char *sum_name(int type);
size_t sum_len(int type);
void joblist_free(struct joblist *jl);
bool url_is_acceptable(const char *url, const char **why);

/* names.c */
char *name_from_url(const char *url);
char *name_sanitize(const char *raw, size_t len);
bool name_is_safe(const char *name);
int name_numbered(const char *name, unsigned k, char *buf, size_t size);
char *name_from_disposition(const char *value, size_t len);
int names_assign(struct joblist *jl);

/* cookies.c: Netscape cookie files (curl's and aria2c's format). */
/* Check FILE; each bad line is reported as FILE:LINE.  0 or -1. */
int cookies_check(const char *path);
/* Worker w's cookie jar, merged into the --save-cookies file at the end. */
int cookies_jar_name(const char *save, int w, char *buf, size_t size);
int cookies_merge(const char *save, int workers);

/* fetch.c: one engine per worker process. */
struct engine;
struct engine *engine_new(const struct opts *o, int dirfd,
			  struct worker_stat *stat, struct rate *rate,
			  const struct reserved *names,
			  struct placing *placing, int slots,
			  int (*report)(void *ctx, const struct result_msg *r,
					const char *final, const char *error),
			  void *ctx);
bool engine_has_free_slot(const struct engine *e);
bool engine_idle(const struct engine *e);
int engine_add(struct engine *e, const struct job_msg *m, size_t len);
/* Runs transfers for at most timeout_ms; returns how many ended. */
int engine_run(struct engine *e, int timeout_ms);
/* Stop every transfer, keep their .part files, report them. */
void engine_interrupt(struct engine *e);
void engine_free(struct engine *e);
/* --save-cookies: write the worker's cookies to its jar. */
void engine_save_cookies(struct engine *e, const char *jar);

/* worker.c */
struct worker_ctx {
	const struct opts *o;
	int index;
	int slots;
	int max_per_host;           /* this worker's share, 0 = no limit */
	int dirfd;
	mp_queue *jobs;
	mp_queue *results;
	struct shared *sh;
	const struct reserved *names;
	/* Who holds which job: owner[job index] = the serial of the worker
	 * that took it, so the parent knows what a dead worker held. */
	_Atomic uint32_t *owner;
	uint32_t serial;
	/* A replacement worker's first jobs: what its predecessor held. */
	const struct joblist *jl;
	const uint32_t *retry;
	size_t nretry;
	uint32_t redoing;           /* the retry job under way, or NO_JOB */
};
#define NO_JOB UINT32_MAX
int worker_main(void *arg);

/* progress.c */
struct progress;
struct progress *progress_new(const struct opts *o, struct shared *sh,
			      const struct joblist *jl, int workers,
			      size_t total);
void progress_job_done(struct progress *p, const struct job *j);
void progress_tick(struct progress *p, bool force);
void progress_end(struct progress *p);
/* Body bytes received in this run (resumed ones are not). */
uint64_t progress_received(const struct progress *p);
double progress_elapsed(const struct progress *p);
void progress_free(struct progress *p);

/* report.c */
/* received: body bytes downloaded in this run (resumed ones are not). */
void report_summary(const struct joblist *jl, double secs, bool interrupted,
		    uint64_t received);
int report_json(const char *path, const struct joblist *jl, double secs);

/* run.c */
int run(const struct opts *o, struct joblist *jl);
int run_exit(const struct joblist *jl);
/* Job jl->v[index] as a job message in buf; 0 when it does not fit. */
size_t job_msg_build(const struct job *j, uint32_t index, char *buf,
		     size_t cap);

double now_mono(void);
int parse_size(const char *s, int64_t *out);

#endif
