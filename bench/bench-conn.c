/* SPDX-License-Identifier: MIT */
/*
 * bench-conn: bytes per second through connections and their peers, in
 * the same run:
 *
 *   1 GiB in 64 KiB messages over a unix: Listener/Client connection
 *   (with a key) against a raw AF_UNIX stream socketpair with write/read
 *   loops; the same over tcp:127.0.0.1 against a raw loopback TCP
 *   connection; 16 MiB messages through mp_pipe against Python's
 *   Pipe().send_bytes/recv_bytes (when python3 is present).
 *
 * A child sends, the parent receives; time runs from the parent's "go"
 * (the connection made, the child waiting) to the last byte received.
 * Runs of ours and the peer alternate; each row is the median of the
 * runs, with min and max.  Usage: bench-conn [scale] (default 1.0 scales
 * the bytes moved; the repeat count is fixed).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

#include "bench.h"

#define REPS 5
#define CHUNK ((size_t)64 << 10)

enum kind { OURS_UNIX, RAW_UNIX, OURS_TCP, RAW_TCP, OURS_PIPE };

static size_t g_total, g_msg;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			die("write");
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* The sender, in the child: wait for go, then send g_total bytes. */
static void send_side(enum kind k, mp_conn *c, int fd, int go)
{
	char *buf = calloc(1, g_msg);
	char ch;
	if (read(go, &ch, 1) != 1)
		_exit(1);
	for (size_t sent = 0; sent < g_total; sent += g_msg) {
		if (k == RAW_UNIX || k == RAW_TCP)
			write_all(fd, buf, g_msg);
		else if (mp_conn_send(c, buf, g_msg))
			_exit(2);
	}
	_exit(0);
}

static int raw_tcp_listener(struct sockaddr_in *in)
{
	socklen_t len = sizeof(*in);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	*in = (struct sockaddr_in){.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s < 0 || bind(s, (struct sockaddr *)in, sizeof(*in)) ||
	    listen(s, 4) || getsockname(s, (struct sockaddr *)in, &len))
		die("tcp listener");
	return s;
}

static double run_once(enum kind k)
{
	int go[2], fds[2] = {-1, -1};
	mp_listener *l = NULL;
	mp_conn *a = NULL, *b = NULL;
	struct sockaddr_in in;
	int ls = -1;
	char addr[128];

	if (pipe(go))
		die("pipe");
	if (k == OURS_UNIX || k == OURS_TCP) {
		snprintf(addr, sizeof(addr), k == OURS_UNIX ?
			 "unix:@mp-bench-conn-%d" : "tcp:127.0.0.1:0",
			 (int)getpid());
		l = mp_listener_new(addr, "bench key", 9);
		if (!l)
			die("mp_listener_new");
		snprintf(addr, sizeof(addr), "%s", mp_listener_address(l));
	} else if (k == RAW_UNIX) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds))
			die("socketpair");
	} else if (k == RAW_TCP) {
		ls = raw_tcp_listener(&in);
	} else if (mp_pipe(&a, &b, false)) {
		die("mp_pipe");
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (k == OURS_UNIX || k == OURS_TCP) {
			mp_conn *c = mp_client(addr, "bench key", 9, 10);
			if (!c)
				_exit(3);
			send_side(k, c, -1, go[0]);
		}
		if (k == RAW_TCP) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &(int){1},
				   sizeof(int));
			if (connect(s, (struct sockaddr *)&in, sizeof(in)))
				_exit(3);
			send_side(k, NULL, s, go[0]);
		}
		mp_conn_free(a);
		send_side(k, b, fds[1], go[0]);
	}
	close(go[0]);
	close(fds[1]);
	mp_conn_free(b);
	mp_conn *c = a;
	int fd = fds[0];
	if (l && !(c = mp_listener_accept(l, 10)))
		die("mp_listener_accept");
	if (ls >= 0 && (fd = accept(ls, NULL, NULL)) < 0)
		die("accept");
	char *buf = malloc(g_msg);
	double t0 = bench_now();
	write_all(go[1], "g", 1);
	size_t got = 0;
	while (got < g_total) {
		ssize_t n;
		if (k == OURS_PIPE) {
			/* As recv_bytes: a new buffer per message. */
			void *m;
			n = mp_conn_recv_alloc(c, &m, MP_FOREVER);
			free(m);
		} else {
			n = c ? mp_conn_recv(c, buf, g_msg, MP_FOREVER) :
				read(fd, buf, g_msg);
		}
		if (n <= 0)
			die("receive");
		got += (size_t)n;
	}
	double t = bench_now() - t0;
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("sender failed");
	free(buf);
	close(go[1]);
	mp_conn_free(c);
	mp_listener_free(l);
	if (fd >= 0)
		close(fd);
	if (ls >= 0)
		close(ls);
	return (double)g_total / t / 1e6;
}

static enum kind g_kinds[] = {OURS_UNIX, RAW_UNIX, OURS_TCP, RAW_TCP,
			      OURS_PIPE};

static double run_kind(void *arg)
{
	return run_once(*(enum kind *)arg);
}

/* Ours and a peer, interleaved, then their rows and the ratio of medians. */
static void pair(const char *scenario, struct bench_contender *c)
{
	bench_interleave(c, 2, bench_runs(REPS));
	bench_rows("conn", scenario, c, 2, 1, "MB/s");
	bench_vs(scenario, c[0].name, &c[0].st, c[1].name, &c[1].st, 0);
}

static struct bench_contender ours_vs(const char *name, enum kind *k)
{
	return (struct bench_contender){.name = name, .run = run_kind,
					.arg = k};
}

int main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	if (scale <= 0)
		scale = 1.0;
	signal(SIGPIPE, SIG_IGN);
	bench_header("bench-conn", "MB/s received, sender in another process");

	g_msg = CHUNK;
	g_total = (size_t)((double)((size_t)1 << 30) * scale) / CHUNK * CHUNK;
	if (!g_total)
		g_total = CHUNK;
	struct bench_contender c[2];
	c[0] = ours_vs("mp_listener unix:", &g_kinds[0]);
	c[1] = ours_vs("raw socketpair", &g_kinds[1]);
	pair("1 GiB in 64 KiB, unix", c);
	c[0] = ours_vs("mp_listener tcp:127.0.0.1", &g_kinds[2]);
	c[1] = ours_vs("raw TCP", &g_kinds[3]);
	pair("1 GiB in 64 KiB, tcp", c);

	g_msg = (size_t)16 << 20;
	size_t count = (size_t)(16 * scale) < 1 ? 1 : (size_t)(16 * scale);
	g_total = g_msg * count;
	struct bench_py py;
	c[0] = ours_vs("mp_pipe", &g_kinds[4]);
	c[1] = (struct bench_contender){.name = "Python Pipe.send_bytes"};
	bench_py_contender(&c[1], &py, "pipe_bytes.py", "%zu %zu", count,
			   g_msg);
	pair("16 MiB messages, pipe", c);
	return 0;
}
