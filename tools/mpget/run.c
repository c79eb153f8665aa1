/* SPDX-License-Identifier: MIT */
/*
 * The parent process: it prepares the jobs, starts the workers, feeds the
 * job queue, collects results, draws progress and ends the run.
 *
 * It never touches the network.  The job queue holds the whole list when
 * it fits (then it is closed at once, and the workers end when it runs
 * dry); a longer list is fed as the workers make room.  Ctrl-C raises the
 * stop flag in shared memory: the workers keep their .part files, report
 * what they had under way and exit; a second Ctrl-C kills them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpget.h"

#define RESULT_QUEUE_BYTES (1 << 20)
#define JOB_QUEUE_MAX (8 << 20)
#define MSG_OVERHEAD 64 /* our guess at the queue's cost per message */
#define TICK_MS 50      /* results and progress, once the jobs are out */
#define FEED_TICK_MS 5  /* while jobs wait for room in the queue */

static volatile sig_atomic_t signals;
static volatile sig_atomic_t last_signal;

static void on_signal(int sig)
{
	signals++;
	last_signal = sig;
}

static int mkdirs(const char *dir)
{
	char *p = strdup(dir);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return ret;
}

size_t job_msg_build(const struct job *j, uint32_t index, char *buf,
		     size_t cap)
{
	struct job_msg *m = (struct job_msg *)buf;
	size_t a = strlen(j->url);
	size_t am = j->mirrors ? strlen(j->mirrors) + 1 : 0;
	size_t b = strlen(j->name);
	size_t len = sizeof(*m) + a + am + b + 2;

	if (len > cap)
		return 0;
	m->index = index;
	m->sum_type = j->sum_type;
	memcpy(m->sum, j->sum, sizeof(m->sum));
	/* The URL, then its mirrors after TABs: one string. */
	memcpy(m->text, j->url, a);
	if (am) {
		m->text[a] = '\t';
		memcpy(m->text + a + 1, j->mirrors, am - 1);
	}
	m->text[a + am] = '\0';
	memcpy(m->text + a + am + 1, j->name, b + 1);
	return len;
}

static size_t name_hash(const char *s, size_t n)
{
	size_t h = 14695981039346656037ULL;

	while (n--)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* The job that owns name (n bytes), or NO_JOB. */
static uint32_t name_owner(const struct reserved *r, const char *name,
			   size_t n)
{
	for (size_t i = name_hash(name, n) & r->mask;; i = (i + 1) & r->mask) {
		uint32_t k = r->slot[i];

		if (k == NO_JOB)
			return NO_JOB;
		if (!strncmp(r->jl->v[k].name, name, n) &&
		    r->jl->v[k].name[n] == '\0')
			return k;
	}
}

bool name_reserved(const struct reserved *r, const char *name,
		   uint32_t self)
{
	size_t n = strlen(name);
	uint32_t k;

	if (!r || !r->slot)
		return false;
	k = name_owner(r, name, n);
	if (k != NO_JOB && k != self)
		return true;
	/* NAME.part: any job's, ours too (it is where we write). */
	return n > 5 && !strcmp(name + n - 5, ".part") &&
	       name_owner(r, name, n - 5) != NO_JOB;
}

/* A hash set of the jobs' names; the workers inherit it with fork(). */
static int reserve_names(struct reserved *r, const struct joblist *jl)
{
	size_t cap = 16;

	while (cap < 2 * jl->n)
		cap *= 2;
	r->jl = jl;
	r->mask = cap - 1;
	r->slot = malloc(cap * sizeof(*r->slot));
	if (!r->slot)
		return -ENOMEM;
	memset(r->slot, 0xff, cap * sizeof(*r->slot)); /* NO_JOB */
	for (size_t j = 0; j < jl->n; j++) {
		const char *name = jl->v[j].name;
		size_t i = name_hash(name, strlen(name)) & r->mask;

		while (r->slot[i] != NO_JOB)
			i = (i + 1) & r->mask;
		r->slot[i] = (uint32_t)j;
	}
	return 0;
}

static void set_text(char **dst, const char *s)
{
	free(*dst);
	*dst = s && *s ? strdup(s) : NULL;
}

static void take_result(const struct opts *o, struct joblist *jl,
			struct progress *pg, const char *buf, size_t len,
			size_t *received, bool stopping)
{
	const struct result_msg *m = (const struct result_msg *)buf;
	const char *final;
	const char *error;
	struct job *j;

	if (len < sizeof(*m) + 2 || m->index >= jl->n)
		return;
	final = m->text;
	error = final + strlen(final) + 1;
	j = &jl->v[m->index];
	if (m->kind == RES_WARN) {
		warnf("%s: %s", j->url, error);
		return;
	}
	if (m->kind == RES_RETRY) {
		verbosef("retry %d of %d in %.1fs: %s: %s", m->attempts,
			 o->retries, m->secs, j->url, error);
		return;
	}
	if (j->status != ST_PENDING)
		return;
	/* A worker stopped by a signal of its own, not by us: it ends with
	 * an error, and its replacement redoes the file. */
	if (m->status == ST_INTERRUPTED && !stopping)
		return;
	j->status = (enum status)m->status;
	j->http = m->http;
	j->exit = m->exit;
	j->bytes = m->bytes;
	j->attempts = m->attempts;
	j->secs = m->secs;
	set_text(&j->final, final);
	set_text(&j->error, error);
	(*received)++;
	progress_job_done(pg, j);
}

/* Before any download: what -c or --no-clobber would skip anyway. */
static size_t precheck(const struct opts *o, struct joblist *jl, int dirfd)
{
	size_t todo = 0;

	for (size_t i = 0; i < jl->n; i++) {
		struct job *j = &jl->v[i];
		struct stat st;

		if (j->status != ST_PENDING)
			continue;
		if ((o->cont || o->no_clobber) &&
		    fstatat(dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			j->status = ST_SKIPPED;
			set_text(&j->final, j->name);
			set_text(&j->error, "file exists");
			if (S_ISREG(st.st_mode))
				j->bytes = (uint64_t)st.st_size;
			continue;
		}
		todo++;
	}
	return todo;
}

/*
 * The worker processes.  A worker that dies (a signal, the OOM killer, a
 * crash in a library) is replaced, and the jobs it held (owner[] names
 * them) go to its replacement first: nothing is lost to one death.  A job
 * whose worker dies twice fails as lost, so that a URL that kills its
 * worker cannot kill them all in turn.
 */
struct crew {
	struct joblist *jl;
	struct worker_ctx ctx[MAX_WORKERS];
	mp_process *proc[MAX_WORKERS];
	uint32_t *held[MAX_WORKERS]; /* room for a replacement's retry list */
	bool ended[MAX_WORKERS];     /* joined */
	bool handled[MAX_WORKERS];   /* its end was looked at */
	int n;
	int alive;
	uint32_t serials;            /* workers started so far */
	int idle_respawns;           /* replacements that had no job to redo */
};

/* The exit code of a finished run: the class of the first failure in
 * list order (mpget.h), bad input lines first of all. */
int run_exit(const struct joblist *jl)
{
	if (jl->bad_lines)
		return EXIT_USAGE;
	for (size_t i = 0; i < jl->n; i++)
		if (jl->v[i].status == ST_FAILED)
			return jl->v[i].exit ? jl->v[i].exit
					     : EXIT_SOME_FAILED;
	return EXIT_OK;
}

static int crew_start(struct crew *c, int i)
{
	int r;

	c->ctx[i].serial = ++c->serials;
	c->proc[i] = mp_process_new(worker_main, &c->ctx[i]);
	if (!c->proc[i])
		return -errno;
	r = mp_process_set_daemon(c->proc[i], true);
	if (r == 0)
		r = mp_process_start(c->proc[i]);
	if (r < 0) {
		mp_process_free(c->proc[i]);
		c->proc[i] = NULL;
		return r;
	}
	c->ended[i] = false;
	c->handled[i] = false;
	c->alive++;
	return 0;
}

static void fail_job(struct job *j, const char *why, struct progress *pg,
		     size_t *received)
{
	j->status = ST_FAILED;
	set_text(&j->error, why);
	(*received)++;
	progress_job_done(pg, j);
}

/* A job whose worker died: it fails, and its .part goes too (no worker
 * holds it any more, and a failed download leaves nothing). */
static void lose_job(struct job *j, int dirfd, const char *why,
		     struct progress *pg, size_t *received)
{
	char part[MAX_NAME_LEN + 8];

	if (snprintf(part, sizeof(part), "%s.part", j->name) <
	    (int)sizeof(part))
		unlinkat(dirfd, part, 0);
	if (pg)
		fail_job(j, why, pg, received);
	else {
		j->status = ST_FAILED;
		set_text(&j->error, why);
	}
}

/*
 * Worker i died: did it die in a rename (struct placing)?  If the name
 * holds the inode it was renaming, the file is placed, and only the
 * report was lost: the job is done, not redone (it would be fetched
 * again under a numbered name).
 */
static void crew_placed(struct crew *c, int i, struct progress *pg,
			size_t *received)
{
	struct placing *p = &c->ctx[i].sh->placing[i];
	uint32_t index = atomic_load_explicit(&p->index,
					      memory_order_acquire);
	struct stat st;
	struct job *j;

	atomic_store_explicit(&p->index, NO_JOB, memory_order_relaxed);
	if (index >= c->jl->n)
		return;
	j = &c->jl->v[index];
	if (j->status != ST_PENDING ||
	    atomic_load_explicit(&c->ctx[i].owner[index],
				 memory_order_relaxed) != c->ctx[i].serial)
		return;
	p->name[sizeof(p->name) - 1] = '\0';
	if (fstatat(c->ctx[i].dirfd, p->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (uint64_t)st.st_dev != p->dev || (uint64_t)st.st_ino != p->ino)
		return;
	j->status = ST_OK;
	j->http = p->http;
	j->attempts = p->attempts;
	j->bytes = (uint64_t)st.st_size;
	j->secs = p->secs;
	set_text(&j->final, p->name);
	(*received)++;
	progress_job_done(pg, j);
}

/* Worker i died: its held jobs go to a replacement (once each). */
static void crew_replace(struct crew *c, int i, bool work_left,
			 struct progress *pg, size_t *received)
{
	uint32_t serial = c->ctx[i].serial;
	size_t k = 0, cap = (size_t)c->ctx[i].slots;
	int dirfd = c->ctx[i].dirfd;
	int r;

	for (size_t j = 0; j < c->jl->n; j++) {
		struct job *job = &c->jl->v[j];

		if (job->status != ST_PENDING ||
		    atomic_load_explicit(&c->ctx[i].owner[j],
					 memory_order_relaxed) != serial)
			continue;
		if (job->lost++ > 0)
			lose_job(job, dirfd,
				 "lost: its worker process died twice", pg,
				 received);
		else if (k == cap) /* cannot happen: a worker holds <= cap */
			lose_job(job, dirfd, "lost: its worker process died",
				 pg, received);
		else
			c->held[i][k++] = (uint32_t)j;
	}
	if (k == 0 && (c->alive > 0 || !work_left ||
		       c->idle_respawns++ >= c->n))
		return;
	mp_process_free(c->proc[i]);
	c->proc[i] = NULL;
	c->ctx[i].retry = c->held[i];
	c->ctx[i].nretry = k;
	/* The replacement holds them from now on, even if it dies before it
	 * gets to them (crew_start gives it serial + 1). */
	for (size_t h = 0; h < k; h++)
		atomic_store_explicit(&c->ctx[i].owner[c->held[i][h]],
				      c->serials + 1, memory_order_relaxed);
	r = crew_start(c, i);
	if (r == 0) {
		verbosef("worker %d replaced, %zu job(s) to redo", i, k);
		return;
	}
	errorf("cannot replace worker %d: %s", i, mp_strerror(r));
	while (k > 0)
		lose_job(&c->jl->v[c->held[i][--k]], dirfd,
			 "lost: its worker process died", pg, received);
}

/* Look at the workers that ended since the last call. */
static void crew_check(struct crew *c, bool stopping, bool work_left,
		       struct progress *pg, size_t *received)
{
	for (int i = 0; i < c->n; i++) {
		int code;

		if (!c->ended[i] || c->handled[i])
			continue;
		c->handled[i] = true;
		code = mp_process_exitcode(c->proc[i]);
		crew_placed(c, i, pg, received);
		if (code == 0 || stopping)
			continue;
		warnf("worker %d ended with %s %d", i,
		      code < 0 ? "signal" : "code", code < 0 ? -code : code);
		crew_replace(c, i, work_left, pg, received);
	}
}

/* Poll the workers' sentinels for up to ms; reap those that ended. */
static void crew_wait(struct crew *c, int ms)
{
	struct pollfd pfd[MAX_WORKERS];
	int map[MAX_WORKERS];
	int k = 0;

	for (int i = 0; i < c->n; i++) {
		int fd = c->ended[i] ? -1 : mp_process_sentinel(c->proc[i]);

		if (fd < 0) {
			/* No pidfd (no file descriptor left?): look now. */
			if (!c->ended[i] && c->proc[i] &&
			    mp_process_join(c->proc[i], 0) == 0) {
				c->ended[i] = true;
				c->alive--;
			}
			continue;
		}
		pfd[k] = (struct pollfd){.fd = fd, .events = POLLIN};
		map[k++] = i;
	}
	if (k == 0 || poll(pfd, (nfds_t)k, ms) <= 0)
		return;
	for (int i = 0; i < k; i++) {
		int w = map[i];

		if (pfd[i].revents && mp_process_join(c->proc[w], 0) == 0) {
			c->ended[w] = true;
			c->alive--;
		}
	}
}

static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int run(const struct opts *o, struct joblist *jl)
{
	struct crew *c = calloc(1, sizeof(*c));
	char *buf = malloc(MSG_MAX);
	struct progress *pg = NULL;
	struct reserved names = {0};
	struct shared *sh = NULL;
	_Atomic uint32_t *owner = NULL;
	mp_queue *jobs = NULL, *results = NULL;
	size_t todo, received = 0, next = 0, qbytes = 0;
	bool closed = false, stopping = false, killed = false;
	int nworkers, slots, dirfd = -1, ret = EXIT_SOME_FAILED, r;
	double t0 = now_mono();

	if (!buf || !c)
		goto out;
	if ((r = mkdirs(o->dir)) < 0) {
		errorf("cannot create %s: %s", o->dir, strerror(-r));
		goto out;
	}
	dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		errorf("%s: %s", o->dir, strerror(errno));
		goto out;
	}
	if (names_assign(jl) < 0 || reserve_names(&names, jl) < 0) {
		errorf("out of memory");
		goto out;
	}
	todo = precheck(o, jl, dirfd);
	if (todo == 0)
		goto done;

	nworkers = o->processes;
	if ((size_t)nworkers > todo)
		nworkers = (int)todo;
	slots = (o->jobs + nworkers - 1) / nworkers;
	for (size_t i = 0; i < jl->n; i++)
		qbytes += sizeof(struct job_msg) + strlen(jl->v[i].url) +
			  (jl->v[i].mirrors ? strlen(jl->v[i].mirrors) : 0) +
			  strlen(jl->v[i].name) + 2 + MSG_OVERHEAD;
	if (qbytes < 65536)
		qbytes = 65536;
	if (qbytes > JOB_QUEUE_MAX)
		qbytes = JOB_QUEUE_MAX;
	sh = mp_shared_alloc(sizeof(*sh));
	owner = mp_shared_alloc(jl->n * sizeof(*owner));
	jobs = mp_queue_new(qbytes);
	results = mp_queue_new(RESULT_QUEUE_BYTES);
	if (!sh || !owner || !jobs || !results) {
		errorf("shared memory: %s", strerror(errno));
		goto out;
	}
	rate_init(&sh->rate, o->limit_rate);
	for (int i = 0; i < MAX_WORKERS; i++)
		atomic_init(&sh->placing[i].index, NO_JOB);
	install_signals();
	c->jl = jl;
	for (int i = 0; i < nworkers; i++) {
		c->ctx[i] = (struct worker_ctx){
			.o = o, .index = i, .slots = slots, .dirfd = dirfd,
			.jobs = jobs, .results = results, .sh = sh,
			.owner = owner, .jl = jl, .redoing = NO_JOB,
			.names = &names,
			/* Shares that add up to --max-per-host. */
			.max_per_host = o->max_per_host
				? o->max_per_host / nworkers +
					  (i < o->max_per_host % nworkers)
				: 0,
		};
		c->held[i] = malloc((size_t)slots * sizeof(uint32_t));
		r = c->held[i] ? crew_start(c, i) : -ENOMEM;
		if (r < 0) {
			errorf("cannot start worker %d: %s", i, mp_strerror(r));
			free(c->held[i]);
			c->held[i] = NULL;
			if (i == 0)
				goto out;
			break;
		}
		c->n = i + 1;
	}
	verbosef("%s, %d worker processes, %d transfers each",
		 plural(todo, "file"), c->n, slots);
	pg = progress_new(o, sh, jl, c->n, todo);
	if (!pg)
		goto out;

	for (;;) {
		ssize_t n;

		if (signals && !stopping) {
			stopping = true;
			atomic_store(&sh->stop, 1);
			if (!closed)
				mp_queue_close(jobs);
			closed = true;
		}
		if (signals > 1 && !killed) {
			for (int i = 0; i < c->n; i++)
				mp_process_kill(c->proc[i]);
			killed = true;
		}
		while (!stopping && next < jl->n) {
			struct job *j = &jl->v[next];
			size_t len;

			if (j->status != ST_PENDING) {
				next++;
				continue;
			}
			len = job_msg_build(j, (uint32_t)next, buf, MSG_MAX);
			r = mp_queue_put(jobs, buf, len, 0);
			if (r == -ETIMEDOUT)
				break;
			if (r < 0)
				fail_job(j, mp_strerror(r), pg, &received);
			next++;
		}
		if (next == jl->n && !closed) {
			mp_queue_close(jobs);
			closed = true;
		}
		/* Take every result there is, without waiting, and only then
		 * look at who died: what a dead worker reported is not
		 * redone. */
		while ((n = mp_queue_get(results, buf, MSG_MAX, 0)) >= 0)
			take_result(o, jl, pg, buf, (size_t)n, &received,
				    stopping);
		crew_check(c, stopping, received < todo, pg, &received);
		if (received >= todo && !stopping)
			break;
		progress_tick(pg, false);
		if (c->alive == 0) {
			/* All gone: whatever they said last was taken
			 * just above. */
			break;
		}
		/*
		 * Sleep until a worker ends (the end of the run), a signal
		 * comes, or a tick passes; never once per result: waking
		 * the parent for every file would cost a context switch
		 * per file on machines that have none to spare.
		 */
		crew_wait(c, closed ? TICK_MS : FEED_TICK_MS);
	}
	for (int i = 0; i < c->n; i++) {
		if (!c->proc[i])
			continue;
		mp_process_join(c->proc[i], MP_FOREVER);
	}
	progress_end(pg);
	if (o->save_cookies)
		cookies_merge(o->save_cookies, c->n);
	for (size_t i = 0; i < jl->n; i++) {
		struct job *j = &jl->v[i];

		if (j->status == ST_PENDING && !stopping)
			lose_job(j, dirfd, "lost: its worker process died",
				 NULL, NULL);
	}
done:
	report_summary(jl, now_mono() - t0, stopping, progress_received(pg));
	ret = run_exit(jl);
	if (ret == EXIT_OK && o->report &&
	    report_json(o->report, jl, now_mono() - t0) < 0)
		ret = EXIT_WRITE;
	else if (ret != EXIT_OK && o->report)
		report_json(o->report, jl, now_mono() - t0);
	if (stopping)
		ret = last_signal == SIGTERM ? 128 + SIGTERM : EXIT_INTERRUPTED;
out:
	for (int i = 0; c && i < MAX_WORKERS; i++) {
		mp_process_free(c->proc[i]);
		free(c->held[i]);
	}
	free(c);
	free(names.slot);
	progress_free(pg);
	if (jobs)
		mp_queue_free(jobs);
	if (results)
		mp_queue_free(results);
	mp_shared_free(owner);
	mp_shared_free(sh);
	if (dirfd >= 0)
		close(dirfd);
	free(buf);
	return ret;
}
