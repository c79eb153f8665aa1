/* SPDX-License-Identifier: MIT */
/*
 * bench-queue: messages per second through mp_queue and its peers, in the
 * same run: a pipe, a SOCK_SEQPACKET socket pair, a POSIX message queue, a
 * spinning lock-free SPSC ring (the physical best: no syscalls, no
 * sleeping), and Python's multiprocessing.Queue when python3 is present.
 *
 * Every peer moves the same fixed-size messages between real processes;
 * with P producers and C consumers each producer sends n/P, each consumer
 * takes n/C.  Time runs from releasing the started children to the last
 * exit.  Each contender runs 7 times interleaved with its peers (bench.h):
 * medians, min and max; ratios of medians.  Usage: bench-queue [scale]
 * [ours|all [scenario]]: scale (default 1.0) scales the counts; "ours"
 * runs mp_queue alone, for interleaved A/B runs, "all" every contender;
 * either then runs only the scenarios whose name starts with `scenario`
 * (or, ending with '$', the one so named).  MP_BENCH_VERBOSE=1 prints
 * each run's rate and context switches on stderr.
 *
 * Left to the scheduler, 1 -> 1 is bimodal: the two processes share one
 * CPU (the ring fills, then drains, in slices) or run on two (each
 * message's lines cross between the caches, and the consumer may sleep
 * per message).  The scenarios labelled "one CPU" and "two CPUs" pin
 * both children to CPU 0, or one to each, so that both modes are
 * measured on their own; the unlabelled ones are what users get.  "round
 * trip" sends one message at a time there and back: the latency that the
 * consumer's batching (its slip, see queue-wait.h) must not cost.
 */
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

enum impl { MPQ, PIPE, SEQPACKET, MQUEUE, SPSC };
static const char *impl_name[] = {"mp_queue", "pipe", "socketpair seqpacket",
				  "POSIX mqueue", "spinning SPSC ring"};

struct spsc {
	_Atomic uint64_t head;
	char pad[56];
	_Atomic uint64_t tail;
	char pad2[56];
	uint64_t slots;
	size_t size;
	uint8_t data[];
};

struct run {
	_Atomic int ready;
	_Atomic int go;
	mp_queue *q;
	struct spsc *ring;
	int fds[2];
	mqd_t mq;
};

static struct run *R;

static void wait_go(void)
{
	atomic_fetch_add(&R->ready, 1);
	while (!atomic_load_explicit(&R->go, memory_order_acquire))
		sched_yield();
}

static void spsc_put(struct spsc *r, const void *m)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	static uint64_t head_cache;
	while (t - head_cache >= r->slots) {
		head_cache =
		    atomic_load_explicit(&r->head, memory_order_acquire);
		if (t - head_cache >= r->slots)
			__builtin_ia32_pause();
	}
	memcpy(r->data + (t & (r->slots - 1)) * r->size, m, r->size);
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

static void spsc_get(struct spsc *r, void *m)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	static uint64_t tail_cache;
	while (h == tail_cache) {
		tail_cache =
		    atomic_load_explicit(&r->tail, memory_order_acquire);
		if (h == tail_cache)
			__builtin_ia32_pause();
	}
	memcpy(m, r->data + (h & (r->slots - 1)) * r->size, r->size);
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static int xfer(enum impl im, bool put, uint8_t *buf, size_t size)
{
	ssize_t n;
	switch (im) {
	case MPQ:
		if (put)
			return mp_queue_put(R->q, buf, size, MP_FOREVER);
		n = mp_queue_get(R->q, buf, size, MP_FOREVER);
		return n == (ssize_t)size ? 0 : -1;
	case PIPE:
	case SEQPACKET:
		if (put)
			n = write(R->fds[1], buf, size);
		else
			n = read(R->fds[0], buf, size);
		return n == (ssize_t)size ? 0 : -1;
	case MQUEUE:
		if (put)
			return mq_send(R->mq, (char *)buf, size, 0);
		n = mq_receive(R->mq, (char *)buf, size, NULL);
		return n == (ssize_t)size ? 0 : -1;
	case SPSC:
		if (put)
			spsc_put(R->ring, buf);
		else
			spsc_get(R->ring, buf);
		return 0;
	}
	return -1;
}

/* The scenario's placement, as MP_BENCH_PIN (which overrides it). */
static const char *placement;

/* MP_BENCH_PIN="0101": pin the k-th child (consumers first, then
 * producers) to that CPU, to measure one placement at a time. */
static void pin(int k)
{
	const char *p = getenv("MP_BENCH_PIN");
	cpu_set_t set;

	if (!p)
		p = placement;

	if (!p || (int)strlen(p) <= k || p[k] < '0' || p[k] > '9')
		return;
	CPU_ZERO(&set);
	CPU_SET(p[k] - '0', &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void child(enum impl im, bool put, long n, size_t size)
{
	uint8_t *buf = calloc(1, size);
	wait_go();
	for (long i = 0; i < n; i++) {
		buf[0] = (uint8_t)i;
		if (xfer(im, put, buf, size))
			_exit(1);
	}
	_exit(0);
}

/* Messages per second, or 0 if something failed. */
static double run(enum impl im, int np, int nc, size_t size, long n)
{
	R = mp_shared_alloc(sizeof(*R));
	if (!R)
		return 0;
	switch (im) {
	case MPQ:
		R->q = mp_queue_new(256 << 10);
		break;
	case PIPE:
		if (pipe(R->fds))
			return 0;
		fcntl(R->fds[1], F_SETPIPE_SZ, 256 << 10);
		break;
	case SEQPACKET:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, R->fds))
			return 0;
		break;
	case MQUEUE: {
		struct mq_attr a = {.mq_maxmsg = 10, .mq_msgsize = (long)size};
		mq_unlink("/mp-bench-queue");
		R->mq = mq_open("/mp-bench-queue", O_RDWR | O_CREAT, 0600, &a);
		mq_unlink("/mp-bench-queue");
		if (R->mq == (mqd_t)-1)
			return 0;
		break;
	}
	case SPSC: {
		uint64_t slots = (256 << 10) / size;
		R->ring = mp_shared_alloc(sizeof(struct spsc) + slots * size);
		R->ring->slots = slots;
		R->ring->size = size;
		break;
	}
	}
	pid_t pids[64];
	int k = 0;
	fflush(NULL);
	for (int i = 0; i < nc; i++)
		if ((pids[k++] = fork()) == 0) {
			pin(k - 1);
			child(im, false, n / nc, size);
		}
	for (int i = 0; i < np; i++)
		if ((pids[k++] = fork()) == 0) {
			pin(k - 1);
			child(im, true, n / np, size);
		}
	while (atomic_load(&R->ready) < k)
		sched_yield();
	double t0 = bench_now();
	atomic_store_explicit(&R->go, 1, memory_order_release);
	bool ok = true;
	long vcs = 0, ivcs = 0;
	for (int i = 0; i < k; i++) {
		int st;
		struct rusage ru;
		wait4(pids[i], &st, 0, &ru);
		ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		vcs += ru.ru_nvcsw;
		ivcs += ru.ru_nivcsw;
	}
	double dt = bench_now() - t0;
	/* Which mode a run was in: its rate beside the children's context
	 * switches (voluntary: slept or yielded; involuntary: preempted). */
	if (getenv("MP_BENCH_VERBOSE"))
		fprintf(stderr, "%s %zu B: %.3f M msg/s, %ld+%ld switches\n",
			impl_name[im], size, (double)n / dt / 1e6, vcs, ivcs);
	switch (im) {
	case MPQ:
		mp_queue_free(R->q);
		break;
	case PIPE:
	case SEQPACKET:
		close(R->fds[0]);
		close(R->fds[1]);
		break;
	case MQUEUE:
		mq_close(R->mq);
		break;
	case SPSC:
		mp_shared_free(R->ring);
		break;
	}
	mp_shared_free(R);
	return ok ? (double)n / dt : 0;
}

static const char *only;

struct job {
	enum impl im;
	int np, nc;
	size_t size;
	long n;
};

static double run_job(void *arg)
{
	const struct job *j = arg;
	return run(j->im, j->np, j->nc, j->size, j->n);
}

static void scenario(const char *name, int np, int nc, size_t size,
		     double scale, bool peers, struct bench_stat *ours_out)
{
	size_t len = only ? strlen(only) : 0;
	if (len && only[len - 1] == '$' ? strlen(name) != len - 1 ||
						  strncmp(name, only, len - 1)
					: only && strncmp(name, only, len))
		return;
	placement = strstr(name, "one CPU")    ? "00"
		    : strstr(name, "two CPUs") ? "01"
					       : NULL;
	if (placement && mp_cpu_count() < 2)
		return;
	long fast = (long)((size <= 64 ? 4000000 : 400000) * scale);
	long slow = (long)((size <= 64 ? 200000 : 100000) * scale);
	fast -= fast % 24;
	slow -= slow % 24;
	if (fast < 24)
		fast = 24;
	if (slow < 24)
		slow = 24;

	/* Where the scheduler puts the processes swings every contender
	 * between a slow and a fast mode (3x apart here), as it does for
	 * users: the contenders run interleaved, and the median, min and
	 * max show both modes rather than the best run hiding the slow
	 * one. */
	struct job jobs[5];
	struct bench_contender c[6] = {{0}};
	struct bench_py py;
	for (int im = 0; im < 5; im++) {
		long n = (im == MPQ || im == SPSC) ? fast : slow;
		jobs[im] = (struct job){(enum impl)im, np, nc, size, n};
		c[im] = (struct bench_contender){
		    .name = impl_name[im], .run = run_job, .arg = &jobs[im]};
		if (im != MPQ && !peers)
			c[im].run = NULL;
		if (im == SPSC && (np != 1 || nc != 1))
			c[im].run = NULL;
	}
	c[5].name = "Python multiprocessing.Queue";
	if (peers && size <= 64 && np == 1 && nc == 1)
		bench_py_contender(&c[5], &py, "queue_mp.py", "%ld %zu",
				   (long)(100000 * scale), size);
	bench_interleave(c, 6, bench_runs(7));
	bench_rows("queue", name, c, 6, 1e-6, "M msg/s");
	/* The README's few: what users get (unpinned), 1 -> 1. */
	bool one = np == 1 && nc == 1 && !placement;
	for (int im = 1; im < 5; im++)
		if (c[im].run)
			bench_vs(name, "mp_queue", &c[MPQ].st, impl_name[im],
				 &c[im].st,
				 one && im == PIPE ? BENCH_HEADLINE : 0);
	if (c[PIPE].run && np == 1 && nc == 1)
		bench_vs_worst(name, "mp_queue", &c[MPQ].st, impl_name[PIPE],
			       &c[PIPE].st, 0);
	if (c[5].run)
		bench_vs(name, "mp_queue", &c[MPQ].st, "Python Queue", &c[5].st,
			 one ? BENCH_HEADLINE : 0);
	if (ours_out)
		*ours_out = c[MPQ].st;
}

/* Round trips: the parent sends a message, the child sends it back on a
 * second channel.  What a lone message costs (the consumer is waiting:
 * spinning, yielding or asleep), which batching in the queue must not
 * make worse; unpinned, 64 bytes. */
struct rtt {
	mp_queue *q[2];
	int fd[2][2];
};

static int hop(enum impl im, struct rtt *t, int dir, bool put, uint8_t *m)
{
	ssize_t n;
	if (im == MPQ) {
		if (put)
			return mp_queue_put(t->q[dir], m, 64, MP_FOREVER);
		n = mp_queue_get(t->q[dir], m, 64, MP_FOREVER);
	} else {
		n = put ? write(t->fd[dir][1], m, 64) : read(t->fd[dir][0], m, 64);
	}
	return n == 64 ? 0 : -1;
}

static double rtt_run(void *arg)
{
	const struct job *j = arg;
	struct rtt *t = mp_shared_alloc(sizeof(*t));
	uint8_t m[64] = {0};
	bool ok;

	if (!t)
		return 0;
	if (j->im == MPQ) {
		t->q[0] = mp_queue_new(0);
		t->q[1] = mp_queue_new(0);
		ok = t->q[0] && t->q[1];
	} else {
		ok = !pipe(t->fd[0]) && !pipe(t->fd[1]);
	}
	if (!ok)
		return 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		for (long i = 0; i < j->n; i++)
			if (hop(j->im, t, 0, false, m) || hop(j->im, t, 1, true, m))
				_exit(1);
		_exit(0);
	}
	double t0 = bench_now();
	for (long i = 0; ok && i < j->n; i++)
		ok = !hop(j->im, t, 0, true, m) && !hop(j->im, t, 1, false, m);
	double dt = bench_now() - t0;
	int st;
	waitpid(pid, &st, 0);
	ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (j->im == MPQ) {
		mp_queue_free(t->q[0]);
		mp_queue_free(t->q[1]);
	} else {
		for (int d = 0; d < 2; d++) {
			close(t->fd[d][0]);
			close(t->fd[d][1]);
		}
	}
	mp_shared_free(t);
	return ok ? (double)j->n / dt : 0;
}

static void round_trips(const char *name, double scale)
{
	size_t len = only ? strlen(only) : 0;
	if (len && only[len - 1] == '$' ? strlen(name) != len - 1 ||
						  strncmp(name, only, len - 1)
					: only && strncmp(name, only, len))
		return;
	long n = (long)(100000 * scale);
	struct job jobs[2] = {{MPQ, 1, 1, 64, n > 1 ? n : 1},
			      {PIPE, 1, 1, 64, n / 4 > 1 ? n / 4 : 1}};
	struct bench_contender c[2] = {
	    {.name = impl_name[MPQ], .run = rtt_run, .arg = &jobs[0]},
	    {.name = impl_name[PIPE], .run = rtt_run, .arg = &jobs[1]}};
	bench_interleave(c, 2, bench_runs(7));
	bench_rows("queue", name, c, 2, 1e-3, "k round trips/s");
	bench_vs(name, "mp_queue", &c[0].st, impl_name[PIPE], &c[1].st, 0);
}

int main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	struct bench_stat one = {0}, four = {0}, two = {0};
	bool peers = !(argc > 2 && !strcmp(argv[2], "ours"));

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("usage: %s [scale] [ours|all [scenario]]\n", argv[0]);
		return 0;
	}
	if (argc > 3)
		only = argv[3];

	if (scale <= 0)
		scale = 1.0;
	if (bench_quick())
		scale /= 20;
	signal(SIGPIPE, SIG_IGN);
	bench_header("queue", "messages per second between processes");
	scenario("1x1, 64 B", 1, 1, 64, scale, peers, &one);
	scenario("1x1, 4 KiB", 1, 1, 4096, scale, peers, NULL);
	scenario("1x1, 64 B, one CPU", 1, 1, 64, scale, peers, NULL);
	scenario("1x1, 64 B, two CPUs", 1, 1, 64, scale, peers, NULL);
	scenario("1x1, 4 KiB, one CPU", 1, 1, 4096, scale, peers, NULL);
	scenario("1x1, 4 KiB, two CPUs", 1, 1, 4096, scale, peers, NULL);
	scenario("2x2, 64 B", 2, 2, 64, scale, peers, &two);
	scenario("4x4, 64 B", 4, 4, 64, scale, peers, &four);
	if (peers)
		round_trips("1x1, 64 B round trip", scale);
	bench_vs("2x2 vs 1x1, 64 B", "mp_queue 2x2", &two, "mp_queue 1x1", &one,
		 0);
	bench_vs("4x4 vs 1x1, 64 B", "mp_queue 4x4", &four, "mp_queue 1x1",
		 &one, 0);
	return 0;
}
