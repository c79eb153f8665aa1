/* SPDX-License-Identifier: MIT */
/* Connections: listener/client by address, authentication, messages of any
 * size, death mid-message, descriptor passing, mp_wait, get_alloc. */
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "test.h"

static const char KEY[] = "secret key";

static char g_addr[200];
static const void *g_key;
static size_t g_keylen;

static void pattern(uint8_t *p, size_t n, size_t seed)
{
	uint32_t x = (uint32_t)seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 24);
	}
}

static bool pattern_ok(const uint8_t *p, size_t n, size_t seed)
{
	uint32_t x = (uint32_t)seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		if (p[i] != (uint8_t)(x >> 24))
			return false;
	}
	return true;
}

/* A client that echoes every message until EOF. */
static int client_echo(void *arg)
{
	(void)arg;
	mp_conn *c = mp_client(g_addr, g_key, g_keylen, 10);
	if (!c)
		return 10 + errno % 100;
	for (;;) {
		void *m;
		ssize_t n = mp_conn_recv_alloc(c, &m, 10);
		if (n == MP_ECLOSED)
			break;
		if (n < 0 || mp_conn_send(c, m, (size_t)n))
			return 2;
		free(m);
	}
	mp_conn_free(c);
	return 0;
}

static void roundtrip_over(const char *address)
{
	mp_listener *l = mp_listener_new(address, KEY, sizeof(KEY));
	ASSERT_NOT_NULL(l);
	snprintf(g_addr, sizeof(g_addr), "%s", mp_listener_address(l));
	g_key = KEY;
	g_keylen = sizeof(KEY);
	pid_t pid = test_fork(client_echo, NULL);
	mp_conn *c = mp_listener_accept(l, 10);
	ASSERT_NOT_NULL(c);
	char buf[300];
	for (int i = 0; i < 50; i++) {
		ASSERT_OK(mp_conn_send(c, buf, (size_t)i * 5));
		ASSERT_EQ(mp_conn_recv(c, buf, sizeof(buf), 10), i * 5);
	}
	mp_conn_free(c);
	ASSERT_EQ(test_wait(pid), 0);
	mp_listener_free(l);
}

TEST(conn_each_address_kind)
{
	char path[100];
	snprintf(path, sizeof(path), "unix:/tmp/mp-test-conn-%d.sock",
		 (int)getpid());
	/* unix: the file is the owner's only, and removed by free. */
	mp_listener *l = mp_listener_new(path, NULL, 0);
	ASSERT_NOT_NULL(l);
	struct stat st;
	ASSERT_OK(stat(path + 5, &st));
	ASSERT(S_ISSOCK(st.st_mode));
	ASSERT_EQ(st.st_mode & 0777, 0600);
	ASSERT(!strcmp(mp_listener_address(l), path));
	mp_listener_free(l);
	ASSERT_EQ(stat(path + 5, &st), -1);
	roundtrip_over(path);

	char abs[100];
	snprintf(abs, sizeof(abs), "unix:@mp-test-conn-%d", (int)getpid());
	roundtrip_over(abs);

	/* tcp port 0: the address names the port chosen, and only loopback
	 * is bound. */
	l = mp_listener_new("tcp:127.0.0.1:0", NULL, 0);
	ASSERT_NOT_NULL(l);
	ASSERT(!strncmp(mp_listener_address(l), "tcp:127.0.0.1:", 14));
	ASSERT(atoi(mp_listener_address(l) + 14) > 0);
	struct sockaddr_in in;
	socklen_t len = sizeof(in);
	ASSERT_OK(getsockname(mp_listener_fileno(l), (struct sockaddr *)&in,
			      &len));
	ASSERT_EQ(in.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	mp_listener_free(l);
	roundtrip_over("tcp:127.0.0.1:0");
	roundtrip_over("tcp:localhost:0");

	l = mp_listener_new("tcp:[::1]:0", NULL, 0);
	if (!l) {
		ASSERT(errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT);
		return; /* no IPv6 loopback here */
	}
	ASSERT(!strncmp(mp_listener_address(l), "tcp:[::1]:", 10));
	mp_listener_free(l);
	roundtrip_over("tcp:[::1]:0");
}

TEST(conn_bad_addresses)
{
	char longp[200] = "unix:/tmp/";
	memset(longp + 10, 'x', 108);
	char longabs[200] = "unix:@";
	memset(longabs + 6, 'y', 108);
	const char *bad[] = {
		"", "unix:", "unix:@", "tcp:", "tcp:127.0.0.1",
		"tcp:127.0.0.1:", "tcp:127.0.0.1:65536", "tcp:127.0.0.1:8x",
		"tcp::80", "tcp:::1:80", "tcp:[::1:80", "tcp:[::1]x:80",
		"tcp:[]:80", "tcp:[127.0.0.1]:80", "tcp:127.0.0.1:-1",
		"udp:127.0.0.1:80", "UNIX:/tmp/x", "/tmp/x", "tcp:no.such.host.invalid:80",
		longp, longabs,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (mp_listener_new(bad[i], NULL, 0) || errno != EINVAL)
			FAIL("listener %s: errno %d", bad[i], errno);
		errno = 0;
		if (mp_client(bad[i], NULL, 0, 1) || errno != EINVAL)
			FAIL("client %s: errno %d", bad[i], errno);
	}
	errno = 0;
	ASSERT(!mp_listener_new(NULL, NULL, 0) && errno == EINVAL);
	ASSERT(!mp_listener_new("unix:@k", NULL, 3) && errno == EINVAL);
	ASSERT(!mp_listener_new("unix:@k", "", 0) && errno == EINVAL);
	ASSERT(!mp_client("unix:@k", NULL, 3, 1) && errno == EINVAL);
	ASSERT(!mp_listener_accept(NULL, 0) && errno == EINVAL);
	ASSERT(mp_listener_address(NULL) == NULL);
	mp_listener_free(NULL);

	/* Nobody listening. */
	ASSERT(!mp_client("unix:/tmp/mp-test-conn-none.sock", NULL, 0, 1));
	ASSERT_EQ(errno, ENOENT);
	mp_listener *l = mp_listener_new("tcp:127.0.0.1:0", NULL, 0);
	ASSERT_NOT_NULL(l);
	char addr[64];
	snprintf(addr, sizeof(addr), "%s", mp_listener_address(l));
	mp_listener_free(l);
	ASSERT(!mp_client(addr, NULL, 0, 1));
	ASSERT_EQ(errno, ECONNREFUSED);
	/* An address in use. */
	l = mp_listener_new("unix:@mp-test-conn-busy", NULL, 0);
	ASSERT_NOT_NULL(l);
	ASSERT(!mp_listener_new("unix:@mp-test-conn-busy", NULL, 0));
	ASSERT_EQ(errno, EADDRINUSE);
	mp_listener_free(l);
}

static const size_t SIZES[] = {
	0, 1, 7, 8, 9, 4095, 65535, 65536, 65537, (1 << 20) + 3, 16 << 20,
	256 << 20,
};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

static int client_sizes(void *arg)
{
	(void)arg;
	mp_conn *c = mp_client(g_addr, KEY, sizeof(KEY), 10);
	if (!c)
		return 3;
	uint8_t *p = malloc(256 << 20);
	for (size_t i = 0; i < NSIZES; i++) {
		pattern(p, SIZES[i], i);
		if (mp_conn_send(c, p, SIZES[i]))
			return 4;
	}
	mp_conn_free(c);
	return 0;
}

TEST(conn_sizes_0_to_256mib_byte_exact)
{
	snprintf(g_addr, sizeof(g_addr), "unix:@mp-test-sizes-%d",
		 (int)getpid());
	mp_listener *l = mp_listener_new(g_addr, KEY, sizeof(KEY));
	ASSERT_NOT_NULL(l);
	pid_t pid = test_fork(client_sizes, NULL);
	mp_conn *c = mp_listener_accept(l, 10);
	ASSERT_NOT_NULL(c);
	for (size_t i = 0; i < NSIZES; i++) {
		void *m = NULL;
		ssize_t n;
		if (i % 2) {
			n = mp_conn_recv_alloc(c, &m, 30);
		} else {
			/* One byte short leaves it; the exact size takes it. */
			m = malloc(SIZES[i] ? SIZES[i] : 1);
			if (SIZES[i])
				ASSERT_ERR(mp_conn_recv(c, m, SIZES[i] - 1, 30),
					   -EMSGSIZE);
			n = mp_conn_recv(c, m, SIZES[i], 30);
		}
		ASSERT_EQ(n, (ssize_t)SIZES[i]);
		ASSERT_NOT_NULL(m);
		ASSERT(pattern_ok(m, SIZES[i], i));
		free(m);
	}
	void *m;
	ASSERT_ERR(mp_conn_recv_alloc(c, &m, 10), MP_ECLOSED);
	ASSERT_EQ(test_wait(pid), 0);
	mp_conn_free(c);
	mp_listener_free(l);
}

static mp_conn *g_a, *g_b;

static int child_send_16m(void *arg)
{
	(void)arg;
	mp_conn_close(g_a);
	size_t n = 16 << 20;
	uint8_t *p = malloc(n);
	pattern(p, n, 99);
	return mp_conn_send(g_b, p, n) ? 1 : 0;
}

TEST(pipe_16mib_message)
{
	ASSERT_OK(mp_pipe(&g_a, &g_b, false));
	pid_t pid = test_fork(child_send_16m, NULL);
	mp_conn_close(g_b);
	void *m;
	ASSERT_EQ(mp_conn_recv_alloc(g_a, &m, 30), 16 << 20);
	ASSERT(pattern_ok(m, 16 << 20, 99));
	free(m);
	ASSERT_EQ(test_wait(pid), 0);
	mp_conn_free(g_a);
	mp_conn_free(g_b);
}

/* A client with key arg (NULL: none) that must be refused. */
static int client_refused(void *arg)
{
	const char *key = arg;
	mp_conn *c = mp_client(g_addr, key, key ? strlen(key) : 0, 10);
	if (c)
		return 1;
	return errno == EACCES ? 0 : 10 + errno % 100;
}

static void refused(mp_listener *l, const char *client_key)
{
	pid_t pid = test_fork(client_refused, (void *)client_key);
	errno = 0;
	ASSERT(mp_listener_accept(l, 10) == NULL);
	ASSERT_EQ(errno, EACCES);
	ASSERT_EQ(test_wait(pid), 0);
}

TEST(conn_wrong_key_and_key_on_one_side)
{
	snprintf(g_addr, sizeof(g_addr), "unix:@mp-test-key-%d",
		 (int)getpid());
	mp_listener *l = mp_listener_new(g_addr, "right", 5);
	ASSERT_NOT_NULL(l);
	refused(l, "wrong");
	refused(l, "righ");
	refused(l, NULL);
	/* The listener goes on: the right key still gets in. */
	g_key = "right";
	g_keylen = 5;
	pid_t pid = test_fork(client_echo, NULL);
	mp_conn *c = mp_listener_accept(l, 10);
	ASSERT_NOT_NULL(c);
	char buf[8];
	ASSERT_OK(mp_conn_send(c, "ok", 2));
	ASSERT_EQ(mp_conn_recv(c, buf, sizeof(buf), 10), 2);
	mp_conn_free(c);
	ASSERT_EQ(test_wait(pid), 0);
	mp_listener_free(l);

	/* A listener without a key refuses a client that has one. */
	l = mp_listener_new(g_addr, NULL, 0);
	ASSERT_NOT_NULL(l);
	refused(l, "right");
	mp_listener_free(l);
}

/* The server speaks first, so a client and its listener in one thread
 * need the accept in another. */
static void *accept_main(void *l)
{
	return mp_listener_accept(l, 10);
}

static mp_conn *client_with_accept(mp_listener *l, mp_conn **server)
{
	pthread_t t;
	ASSERT_OK(pthread_create(&t, NULL, accept_main, l));
	mp_conn *c = mp_client(mp_listener_address(l), NULL, 0, 10);
	void *s;
	pthread_join(t, &s);
	*server = s;
	return c;
}

static int raw_connect(const char *abstract_name)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	size_t n = strlen(abstract_name);
	memcpy(un.sun_path + 1, abstract_name, n);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT(fd >= 0);
	ASSERT_OK(connect(fd, (struct sockaddr *)&un,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				      1 + n)));
	return fd;
}

static void put_hdr(uint8_t *h, char kind, uint32_t len)
{
	memset(h, 0, 8);
	h[0] = (uint8_t)kind;
	h[4] = (uint8_t)(len >> 24);
	h[5] = (uint8_t)(len >> 16);
	h[6] = (uint8_t)(len >> 8);
	h[7] = (uint8_t)len;
}

TEST(conn_garbage_and_stalled_handshakes)
{
	char name[64];
	snprintf(name, sizeof(name), "mp-test-hs-%d", (int)getpid());
	snprintf(g_addr, sizeof(g_addr), "unix:@%s", name);
	mp_listener *l = mp_listener_new(g_addr, KEY, sizeof(KEY));
	ASSERT_NOT_NULL(l);
	uint8_t h[8];

	/* Garbage bytes. */
	int fd = raw_connect(name);
	ASSERT_EQ(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	errno = 0;
	ASSERT(!mp_listener_accept(l, 10) && errno == EACCES);
	close(fd);

	/* A frame announcing 1 GiB: refused without reading (allocating)
	 * it. */
	fd = raw_connect(name);
	put_hdr(h, 'M', 1u << 30);
	ASSERT_EQ(write(fd, h, 8), 8);
	errno = 0;
	ASSERT(!mp_listener_accept(l, 10) && errno == EACCES);
	close(fd);

	/* An unauthenticated client's message is never returned. */
	fd = raw_connect(name);
	uint8_t msg[13];
	put_hdr(msg, 'M', 5);
	memcpy(msg + 8, "hello", 5);
	ASSERT_EQ(write(fd, msg, 13), 13);
	errno = 0;
	ASSERT(!mp_listener_accept(l, 10) && errno == EACCES);
	close(fd);

	/* Stalled: costs the accept its timeout, no more. */
	fd = raw_connect(name);
	double t0 = test_now();
	errno = 0;
	ASSERT(!mp_listener_accept(l, 0.3) && errno == ETIMEDOUT);
	double took = test_now() - t0;
	ASSERT(took >= 0.25 && took < 3);
	close(fd);

	/* And the listener still serves a real client. */
	g_key = KEY;
	g_keylen = sizeof(KEY);
	pid_t pid = test_fork(client_echo, NULL);
	mp_conn *c = mp_listener_accept(l, 10);
	ASSERT_NOT_NULL(c);
	mp_conn_free(c);
	ASSERT_EQ(test_wait(pid), 0);
	mp_listener_free(l);

	/* The client side: a server that never answers costs the client its
	 * timeout; one that sends garbage is EACCES. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	memcpy(un.sun_path + 1, name, strlen(name));
	socklen_t ul = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				   strlen(name));
	ASSERT_OK(bind(s, (struct sockaddr *)&un, ul));
	ASSERT_OK(listen(s, 4));
	t0 = test_now();
	errno = 0;
	ASSERT(!mp_client(g_addr, KEY, sizeof(KEY), 0.3) && errno == ETIMEDOUT);
	ASSERT(test_now() - t0 < 3);
	int a = accept(s, NULL, NULL); /* the timed-out one */
	close(a);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int b = accept(s, NULL, NULL);
		put_hdr(h, 'M', 3);
		ssize_t w = write(b, h, 8);
		w += write(b, "abc", 3);
		_exit(w == 11 ? 0 : 1);
	}
	errno = 0;
	ASSERT(!mp_client(g_addr, KEY, sizeof(KEY), 10) && errno == EACCES);
	ASSERT_EQ(test_wait(pid), 0);
	close(s);
}

static int child_send_64m(void *arg)
{
	(void)arg;
	mp_conn_close(g_a);
	size_t n = 64 << 20;
	uint8_t *p = calloc(1, n);
	mp_conn_send(g_b, p, n); /* killed in here */
	return 1;
}

TEST(conn_peer_killed_mid_message)
{
	ASSERT_OK(mp_pipe(&g_a, &g_b, true));
	pid_t pid = test_fork(child_send_64m, NULL);
	mp_conn_close(g_b);
	/* Readable: the message has begun; 64 MiB cannot fit in the socket
	 * buffer, so it has not ended. */
	ASSERT_EQ(mp_conn_poll(g_a, 10), 1);
	kill(pid, SIGKILL);
	ASSERT_EQ(test_wait(pid), -SIGKILL);
	void *m = (void *)1;
	ASSERT_ERR(mp_conn_recv_alloc(g_a, &m, 10), MP_ECLOSED);
	ASSERT(m == NULL);
	ASSERT_ERR(mp_conn_recv_alloc(g_a, &m, 10), MP_ECLOSED);
	mp_conn_free(g_a);
	mp_conn_free(g_b);
}

TEST(conn_partial_message_timeout_resumes)
{
	mp_conn *a, *b;
	char buf[200];
	uint8_t h[8];
	ASSERT_OK(mp_pipe(&a, &b, true));
	int fd = mp_conn_fileno(b);

	/* A header in two pieces, then the payload in two: each receive
	 * that times out keeps what it read. */
	put_hdr(h, 'M', 100);
	ASSERT_EQ(write(fd, h, 3), 3);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 0.02), -ETIMEDOUT);
	ASSERT_EQ(write(fd, h + 3, 5), 5);
	uint8_t pay[100];
	pattern(pay, 100, 5);
	ASSERT_EQ(write(fd, pay, 40), 40);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 0.02), -ETIMEDOUT);
	void *m;
	ASSERT_ERR(mp_conn_recv_alloc(a, &m, 0.02), -ETIMEDOUT);
	ASSERT_EQ(write(fd, pay + 40, 60), 60);
	ASSERT_EQ(mp_conn_recv(a, buf, sizeof(buf), 1), 100);
	ASSERT(pattern_ok((uint8_t *)buf, 100, 5));

	/* The same through recv_alloc. */
	ASSERT_EQ(write(fd, h, 8), 8);
	ASSERT_EQ(write(fd, pay, 10), 10);
	ASSERT_ERR(mp_conn_recv_alloc(a, &m, 0.02), -ETIMEDOUT);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 0.02), -ETIMEDOUT);
	ASSERT_EQ(write(fd, pay + 10, 90), 90);
	ASSERT_EQ(mp_conn_recv_alloc(a, &m, 1), 100);
	ASSERT(pattern_ok(m, 100, 5));
	free(m);

	/* The writer goes away half way: EOF, never a short message. */
	ASSERT_EQ(write(fd, h, 8), 8);
	ASSERT_EQ(write(fd, pay, 30), 30);
	mp_conn_close(b);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 1), MP_ECLOSED);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 1), MP_ECLOSED);
	mp_conn_free(a);
	mp_conn_free(b);
}

TEST(conn_bad_frames_fail_the_connection)
{
	mp_conn *a, *b;
	char buf[16];
	uint8_t h[8];
	void *m;

	/* Over MP_CONN_MAX_MSG. */
	ASSERT_OK(mp_pipe(&a, &b, true));
	put_hdr(h, 'M', 0x80000000u);
	ASSERT_EQ(write(mp_conn_fileno(b), h, 8), 8);
	ASSERT_ERR(mp_conn_recv_alloc(a, &m, 1), -EPROTO);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 1), -EPROTO);
	ASSERT_EQ(mp_conn_poll(a, 0), 1);
	mp_conn_free(a);
	mp_conn_free(b);

	/* Over the receiver's own limit. */
	ASSERT_OK(mp_pipe(&a, &b, true));
	ASSERT_ERR(mp_conn_set_max_msg(a, MP_CONN_MAX_MSG + 1), -EINVAL);
	ASSERT_ERR(mp_conn_set_max_msg(NULL, 1), -EINVAL);
	ASSERT_OK(mp_conn_set_max_msg(a, 1000));
	static char k1[1000];
	ASSERT_OK(mp_conn_send(b, k1, 1000));
	ASSERT_EQ(mp_conn_recv_alloc(a, &m, 1), 1000);
	free(m);
	put_hdr(h, 'M', 1001);
	ASSERT_EQ(write(mp_conn_fileno(b), h, 8), 8);
	ASSERT_ERR(mp_conn_recv_alloc(a, &m, 1), -EPROTO);
	mp_conn_free(a);
	mp_conn_free(b);

	/* An unknown kind, reserved bytes set, a descriptor header with a
	 * length or without its descriptor. */
	const uint8_t bad[][8] = {
		{'X', 0, 0, 0, 0, 0, 0, 1},
		{'M', 1, 0, 0, 0, 0, 0, 1},
		{'F', 0, 0, 0, 0, 0, 0, 1},
	};
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(mp_pipe(&a, &b, true));
		ASSERT_EQ(write(mp_conn_fileno(b), bad[i], 8), 8);
		ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 1), -EPROTO);
		mp_conn_free(a);
		mp_conn_free(b);
	}
	ASSERT_OK(mp_pipe(&a, &b, true));
	put_hdr(h, 'F', 0);
	ASSERT_EQ(write(mp_conn_fileno(b), h, 8), 8);
	ASSERT_ERR(mp_conn_recv_fd(a, 1), -EPROTO);
	mp_conn_free(a);
	mp_conn_free(b);
}

static int child_take_fd(void *arg)
{
	(void)arg;
	char buf[64];
	mp_conn_close(g_a);
	if (mp_conn_recv(g_b, buf, sizeof(buf), 10) != 6)
		return 2;
	if (mp_conn_recv(g_b, buf, sizeof(buf), 10) != -ENOMSG)
		return 3;
	int fd = mp_conn_recv_fd(g_b, 10);
	if (fd < 0)
		return 4;
	if (mp_conn_recv_fd(g_b, 10) != -ENOMSG)
		return 5;
	if (mp_conn_recv(g_b, buf, sizeof(buf), 10) != 5)
		return 6;
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	return n >= 0 && !mp_conn_send(g_b, buf, (size_t)n) ? 0 : 7;
}

TEST(conn_pass_descriptor)
{
	char path[] = "/tmp/mp-test-fd-XXXXXX";
	int fd = mkstemp(path);
	ASSERT(fd >= 0);
	unlink(path);
	ASSERT_EQ(write(fd, "handed over", 11), 11);
	ASSERT_OK(mp_pipe(&g_a, &g_b, true));
	pid_t pid = test_fork(child_take_fd, NULL);
	mp_conn_close(g_b);
	ASSERT_OK(mp_conn_send(g_a, "before", 6));
	ASSERT_OK(mp_conn_send_fd(g_a, fd));
	ASSERT_OK(mp_conn_send(g_a, "after", 5));
	close(fd);
	char buf[64];
	ASSERT_EQ(mp_conn_recv(g_a, buf, sizeof(buf), 10), 11);
	ASSERT(!memcmp(buf, "handed over", 11));
	ASSERT_EQ(test_wait(pid), 0);
	ASSERT_ERR(mp_conn_send_fd(g_a, -1), -EBADF);
	ASSERT_ERR(mp_conn_send_fd(NULL, 0), -EINVAL);
	mp_conn_free(g_a);
	mp_conn_free(g_b);

	/* Over a unix listener too, and several in a row. */
	snprintf(g_addr, sizeof(g_addr), "unix:@mp-test-fd-%d", (int)getpid());
	mp_listener *l = mp_listener_new(g_addr, NULL, 0);
	ASSERT_NOT_NULL(l);
	mp_conn *s;
	mp_conn *c = client_with_accept(l, &s);
	ASSERT_NOT_NULL(c);
	ASSERT_NOT_NULL(s);
	int p[2];
	ASSERT_OK(pipe(p));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(mp_conn_send_fd(c, p[1]));
	for (int i = 0; i < 3; i++) {
		int got = mp_conn_recv_fd(s, 10);
		ASSERT(got >= 0);
		ASSERT_EQ(write(got, "z", 1), 1);
		close(got);
	}
	close(p[1]);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 3);
	close(p[0]);
	mp_conn_free(c);
	mp_conn_free(s);
	mp_listener_free(l);

	/* Not over TCP. */
	l = mp_listener_new("tcp:127.0.0.1:0", NULL, 0);
	ASSERT_NOT_NULL(l);
	c = client_with_accept(l, &s);
	ASSERT_NOT_NULL(c);
	ASSERT_NOT_NULL(s);
	ASSERT_ERR(mp_conn_send_fd(c, 0), -EOPNOTSUPP);
	mp_conn_free(c);
	mp_conn_free(s);
	mp_listener_free(l);
}

static int proc_wait_for_byte(void *arg)
{
	(void)arg;
	char ch;
	mp_conn_close(g_a);
	return mp_conn_recv(g_b, &ch, 1, 10) == 1 ? 3 : 4;
}

TEST(conn_wait_on_many)
{
	mp_conn *a1, *b1, *a2, *b2;
	ASSERT_OK(mp_pipe(&a1, &b1, true));
	ASSERT_OK(mp_pipe(&a2, &b2, true));
	ASSERT_OK(mp_pipe(&g_a, &g_b, true));
	mp_queue *q = mp_queue_new(0);
	ASSERT_NOT_NULL(q);
	mp_process *p = mp_process_new(proc_wait_for_byte, NULL);
	ASSERT_NOT_NULL(p);
	ASSERT_OK(mp_process_start(p));
	mp_conn_close(g_b);
	snprintf(g_addr, sizeof(g_addr), "unix:@mp-test-wait-%d",
		 (int)getpid());
	mp_listener *l = mp_listener_new(g_addr, NULL, 0);
	ASSERT_NOT_NULL(l);

	mp_wait_item it[5] = {
		{.kind = MP_WAIT_CONN, .conn = a1},
		{.kind = MP_WAIT_CONN, .conn = a2},
		{.kind = MP_WAIT_PROCESS, .process = p},
		{.kind = MP_WAIT_QUEUE, .queue = q},
		{.kind = MP_WAIT_LISTENER, .listener = l},
	};
	ASSERT_EQ(mp_wait(it, 5, 0), 0);
	double t0 = test_now();
	ASSERT_EQ(mp_wait(it, 5, 0.1), 0);
	ASSERT(test_now() - t0 >= 0.09);

	ASSERT_OK(mp_conn_send(b2, "x", 1));
	ASSERT_EQ(mp_wait(it, 5, 10), 1);
	ASSERT(!it[0].ready && it[1].ready && !it[2].ready && !it[3].ready);
	char buf[8];
	ASSERT_EQ(mp_conn_recv(a2, buf, sizeof(buf), 0), 1);

	ASSERT_OK(mp_queue_put(q, "q", 1, 0));
	ASSERT_EQ(mp_wait(it, 5, 10), 1);
	ASSERT(it[3].ready);
	ASSERT_EQ(mp_queue_get(q, buf, sizeof(buf), 0), 1);

	ASSERT_OK(mp_conn_send(g_a, "go", 1));
	ASSERT_EQ(mp_wait(it, 5, 10), 1);
	ASSERT(it[2].ready);
	ASSERT_OK(mp_process_join(p, 10));
	ASSERT_EQ(mp_process_exitcode(p), 3);

	/* An empty message read ahead with the one before it is in no socket
	 * any more: the wait must still see it. */
	ASSERT_OK(mp_conn_send(b1, "abc", 3));
	ASSERT_OK(mp_conn_send(b1, "", 0));
	ASSERT_EQ(mp_conn_recv(a1, buf, sizeof(buf), 1), 3);
	it[2].kind = MP_WAIT_FD; /* the joined process is ready for good */
	it[2].fd = mp_conn_fileno(a2);
	ASSERT_EQ(mp_wait(it, 5, 1), 1);
	ASSERT(it[0].ready);
	ASSERT_EQ(mp_conn_poll(a1, 0), 1);
	ASSERT_EQ(mp_conn_recv(a1, buf, sizeof(buf), 0), 0);

	/* A raw connect: the handshake waits for the accept. */
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	memcpy(un.sun_path + 1, g_addr + 6, strlen(g_addr + 6));
	ASSERT_OK(connect(c, (struct sockaddr *)&un,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				      1 + strlen(g_addr + 6))));
	ASSERT_EQ(mp_wait(it, 5, 10), 1);
	ASSERT(it[4].ready);

	/* A queue put by another process while we sleep in the wait. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		mp_conn_recv(b2, buf, 1, 10);
		_exit(mp_queue_put(q, "later", 5, 10) ? 1 : 0);
	}
	mp_wait_item qi = {.kind = MP_WAIT_QUEUE, .queue = q};
	ASSERT_EQ(mp_wait(&qi, 1, 0), 0);
	ASSERT_OK(mp_conn_send(a2, "g", 1));
	ASSERT_EQ(mp_wait(&qi, 1, 10), 1);
	ASSERT_EQ(test_wait(pid), 0);

	/* Bad items. */
	mp_wait_item bad = {.kind = 99};
	ASSERT_ERR(mp_wait(&bad, 1, 0), -EINVAL);
	bad = (mp_wait_item){.kind = MP_WAIT_CONN};
	ASSERT_ERR(mp_wait(&bad, 1, 0), -EINVAL);
	bad = (mp_wait_item){.kind = MP_WAIT_FD, .fd = -1};
	ASSERT_ERR(mp_wait(&bad, 1, 0), -EBADF);
	ASSERT_ERR(mp_wait(NULL, 1, 0), -EINVAL);
	ASSERT_EQ(mp_wait(NULL, 0, 0), 0);

	close(c);
	mp_listener_free(l);
	mp_process_free(p);
	mp_queue_free(q);
	mp_conn_free(a1);
	mp_conn_free(b1);
	mp_conn_free(a2);
	mp_conn_free(b2);
	mp_conn_free(g_a);
	mp_conn_free(g_b);
}

TEST(queue_get_alloc_any_length)
{
	mp_queue *q = mp_queue_new(1 << 20);
	ASSERT_NOT_NULL(q);
	size_t cap = mp_queue_capacity(q);
	const size_t sizes[] = {0, 10, 4096, 4097, 5000, cap};
	uint8_t *p = malloc(cap);
	for (size_t i = 0; i < 6; i++) {
		pattern(p, sizes[i], i);
		ASSERT_OK(mp_queue_put(q, p, sizes[i], 1));
		void *m = NULL;
		ASSERT_EQ(mp_queue_get_alloc(q, &m, 1), (ssize_t)sizes[i]);
		ASSERT_NOT_NULL(m);
		ASSERT(pattern_ok(m, sizes[i], i));
		free(m);
	}
	free(p);
	void *m;
	ASSERT_ERR(mp_queue_get_alloc(q, &m, 0), -ETIMEDOUT);
	ASSERT_ERR(mp_queue_get_alloc(q, &m, 0.02), -ETIMEDOUT);
	ASSERT_ERR(mp_queue_get_alloc(NULL, &m, 0), -EINVAL);
	ASSERT_ERR(mp_queue_get_alloc(q, NULL, 0), -EINVAL);
	ASSERT_OK(mp_queue_close(q));
	ASSERT_ERR(mp_queue_get_alloc(q, &m, 1), MP_ECLOSED);
	mp_queue_free(q);
}

TEST_MAIN(T(conn_each_address_kind), T(conn_bad_addresses),
	  T_TIMEOUT(conn_sizes_0_to_256mib_byte_exact, 120),
	  T(pipe_16mib_message), T(conn_wrong_key_and_key_on_one_side),
	  T(conn_garbage_and_stalled_handshakes),
	  T(conn_peer_killed_mid_message),
	  T(conn_partial_message_timeout_resumes),
	  T(conn_bad_frames_fail_the_connection), T(conn_pass_descriptor),
	  T(conn_wait_on_many), T(queue_get_alloc_any_length))
