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

static size_t job_msg_build(const struct job *j, uint32_t index, char *buf,
			    size_t cap)
{
	struct job_msg *m = (struct job_msg *)buf;
	size_t a = strlen(j->url);
	size_t b = strlen(j->name);
	size_t len = sizeof(*m) + a + b + 2;

	if (len > cap)
		return 0;
	m->index = index;
	m->has_sum = j->has_sum;
	memcpy(m->sum, j->sum, sizeof(m->sum));
	memcpy(m->text, j->url, a + 1);
	memcpy(m->text + a + 1, j->name, b + 1);
	return len;
}

static void set_text(char **dst, const char *s)
{
	free(*dst);
	*dst = s && *s ? strdup(s) : NULL;
}

static void take_result(const struct opts *o, struct joblist *jl,
			struct progress *pg, const char *buf, size_t len,
			size_t *received)
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
	if (m->kind == RES_RETRY) {
		verbosef("retry %d of %d in %.1fs: %s: %s", m->attempts,
			 o->retries, m->secs, j->url, error);
		return;
	}
	if (j->status != ST_PENDING)
		return;
	j->status = (enum status)m->status;
	j->http = m->http;
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

/* Poll the workers' sentinels for up to ms; reap those that ended.
 * Return: how many still run. */
static int wait_workers(mp_process **proc, int n, bool *done, int ms)
{
	struct pollfd pfd[MAX_WORKERS];
	int map[MAX_WORKERS];
	int k = 0;
	int alive = 0;

	for (int i = 0; i < n; i++) {
		int fd = done[i] ? -1 : mp_process_sentinel(proc[i]);

		if (fd < 0)
			continue;
		pfd[k] = (struct pollfd){.fd = fd, .events = POLLIN};
		map[k++] = i;
	}
	if (k == 0)
		return 0;
	if (poll(pfd, (nfds_t)k, ms) > 0) {
		for (int i = 0; i < k; i++)
			if (pfd[i].revents &&
			    mp_process_join(proc[map[i]], 0) == 0)
				done[map[i]] = true;
	}
	for (int i = 0; i < n; i++)
		alive += !done[i];
	return alive;
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
	struct worker_ctx ctx[MAX_WORKERS];
	mp_process *proc[MAX_WORKERS] = {0};
	char *buf = malloc(MSG_MAX);
	struct progress *pg = NULL;
	struct shared *sh = NULL;
	mp_queue *jobs = NULL, *results = NULL;
	size_t todo, received = 0, next = 0, qbytes = 0;
	bool closed = false, stopping = false, killed = false;
	int nworkers, slots, alive = 1, dirfd, ret = EXIT_SOME_FAILED, r;
	double t0 = now_mono();
	bool done_w[MAX_WORKERS] = {0};

	if (!buf)
		return EXIT_SOME_FAILED;
	if ((r = mkdirs(o->dir)) < 0) {
		errorf("cannot create %s: %s", o->dir, strerror(-r));
		free(buf);
		return EXIT_SOME_FAILED;
	}
	dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		errorf("%s: %s", o->dir, strerror(errno));
		free(buf);
		return EXIT_SOME_FAILED;
	}
	if (names_assign(jl) < 0) {
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
			  strlen(jl->v[i].name) + 2 + MSG_OVERHEAD;
	if (qbytes < 65536)
		qbytes = 65536;
	if (qbytes > JOB_QUEUE_MAX)
		qbytes = JOB_QUEUE_MAX;
	sh = mp_shared_alloc(sizeof(*sh));
	jobs = mp_queue_new(qbytes);
	results = mp_queue_new(RESULT_QUEUE_BYTES);
	if (!sh || !jobs || !results) {
		errorf("shared memory: %s", strerror(errno));
		goto out;
	}
	install_signals();
	for (int i = 0; i < nworkers; i++) {
		ctx[i] = (struct worker_ctx){
			.o = o, .index = i, .slots = slots, .dirfd = dirfd,
			.jobs = jobs, .results = results, .sh = sh,
		};
		proc[i] = mp_process_new(worker_main, &ctx[i]);
		if (!proc[i] || mp_process_set_daemon(proc[i], true) ||
		    (r = mp_process_start(proc[i])) < 0) {
			errorf("cannot start worker %d: %s", i,
			       proc[i] ? mp_strerror(r) : strerror(errno));
			mp_process_free(proc[i]);
			proc[i] = NULL;
			if (i == 0)
				goto out;
			nworkers = i;
			break;
		}
	}
	verbosef("%zu files, %d worker processes, %d transfers each", todo,
		 nworkers, slots);
	pg = progress_new(o, sh, nworkers, todo);
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
			for (int i = 0; i < nworkers; i++)
				mp_process_kill(proc[i]);
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
			if (r < 0) {
				j->status = ST_FAILED;
				set_text(&j->error, mp_strerror(r));
				received++;
			}
			next++;
		}
		if (next == jl->n && !closed) {
			mp_queue_close(jobs);
			closed = true;
		}
		/* Take every result there is, without waiting. */
		while ((n = mp_queue_get(results, buf, MSG_MAX, 0)) >= 0)
			take_result(o, jl, pg, buf, (size_t)n, &received);
		if (received >= todo && !stopping)
			break;
		progress_tick(pg, false);
		if (alive == 0) {
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
		alive = wait_workers(proc, nworkers, done_w,
				     closed ? TICK_MS : FEED_TICK_MS);
	}
	for (int i = 0; i < nworkers; i++) {
		int code;

		mp_process_join(proc[i], MP_FOREVER);
		code = mp_process_exitcode(proc[i]);
		if (code != 0 && !stopping)
			warnf("worker %d ended with %s %d", i,
			      code < 0 ? "signal" : "code",
			      code < 0 ? -code : code);
	}
	progress_end(pg);
	for (size_t i = 0; i < jl->n; i++) {
		struct job *j = &jl->v[i];

		if (j->status == ST_PENDING && !stopping) {
			j->status = ST_FAILED;
			set_text(&j->error, "lost: its worker process died");
		}
	}
done:
	report_summary(jl, now_mono() - t0, stopping);
	ret = EXIT_OK;
	if (o->report && report_json(o->report, jl, now_mono() - t0) < 0)
		ret = EXIT_SOME_FAILED;
	for (size_t i = 0; i < jl->n; i++)
		if (jl->v[i].status == ST_FAILED)
			ret = EXIT_SOME_FAILED;
	if (jl->bad_lines)
		ret = EXIT_SOME_FAILED;
	if (stopping)
		ret = last_signal == SIGTERM ? 128 + SIGTERM : EXIT_INTERRUPTED;
out:
	for (int i = 0; i < MAX_WORKERS; i++)
		mp_process_free(proc[i]);
	progress_free(pg);
	if (jobs)
		mp_queue_free(jobs);
	if (results)
		mp_queue_free(results);
	mp_shared_free(sh);
	close(dirfd);
	free(buf);
	return ret;
}
