/* SPDX-License-Identifier: MIT */
/* Pipe (mp_conn): framing, directions, EOF on close and on peer death. */
#include "test.h"

TEST(pipe_duplex_roundtrip)
{
	mp_conn *a, *b;
	char buf[100];
	ASSERT_OK(mp_pipe(&a, &b, true));
	ASSERT_OK(mp_conn_send(a, "hello", 5));
	ASSERT_OK(mp_conn_send(a, "", 0));
	ASSERT_OK(mp_conn_send(a, "x", 1));
	ASSERT_EQ(mp_conn_poll(b, 0), 1);
	ASSERT_EQ(mp_conn_recv(b, buf, sizeof(buf), 1), 5);
	ASSERT(memcmp(buf, "hello", 5) == 0);
	ASSERT_EQ(mp_conn_recv(b, buf, sizeof(buf), 1), 0); /* not EOF */
	ASSERT_EQ(mp_conn_recv(b, NULL, 0, 1), -EMSGSIZE);
	ASSERT_EQ(mp_conn_recv(b, buf, 1, 1), 1);
	ASSERT_OK(mp_conn_send(b, "back", 4));
	ASSERT_EQ(mp_conn_recv(a, buf, sizeof(buf), 1), 4);
	ASSERT_EQ(mp_conn_poll(a, 0), 0);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 0), -ETIMEDOUT);
	ASSERT_ERR(mp_conn_recv(a, buf, sizeof(buf), 0.03), -ETIMEDOUT);
	ASSERT(mp_conn_fileno(a) >= 0);
	mp_conn_free(a);
	mp_conn_free(b);
}

TEST(pipe_bad_inputs_and_directions)
{
	mp_conn *a, *b;
	char buf[8];
	ASSERT_ERR(mp_pipe(NULL, &b, true), -EINVAL);
	ASSERT_ERR(mp_conn_send(NULL, "x", 1), -EINVAL);
	ASSERT_ERR(mp_conn_recv(NULL, buf, 8, 0), -EINVAL);
	ASSERT_ERR(mp_conn_poll(NULL, 0), -EINVAL);
	ASSERT_ERR(mp_conn_close(NULL), -EINVAL);
	mp_conn_free(NULL);
	ASSERT_OK(mp_pipe(&a, &b, false));
	ASSERT_ERR(mp_conn_send(a, "x", 1), -EBADF);
	ASSERT_ERR(mp_conn_recv(b, buf, 8, 0), -EBADF);
	ASSERT_ERR(mp_conn_send(b, NULL, 1), -EINVAL);
	/* Over the limit fails before the buffer is read: no 1 GiB needed. */
	ASSERT(MP_CONN_MAX_MSG >= ((size_t)1 << 30));
	ASSERT_ERR(mp_conn_send(b, buf, MP_CONN_MAX_MSG + 1), -EMSGSIZE);
	size_t n = 100000; /* over the old SEQPACKET limit of 64 KiB */
	char *big = calloc(1, n);
	ASSERT_OK(mp_conn_send(b, big, 9));
	ASSERT_ERR(mp_conn_recv(a, buf, 8, 0), -EMSGSIZE);
	ASSERT_EQ(mp_conn_recv(a, big, n, 0), 9);
	free(big);
	ASSERT_OK(mp_conn_close(a));
	ASSERT_OK(mp_conn_close(a));
	ASSERT_ERR(mp_conn_recv(a, buf, 8, 0), -EBADF);
	ASSERT_EQ(mp_conn_fileno(a), -1);
	mp_conn_free(a);
	mp_conn_free(b);
}

static mp_conn *g_a, *g_b;

static int child_echo(void *arg)
{
	(void)arg;
	char buf[256];
	mp_conn_close(g_a); /* the child uses b */
	for (;;) {
		ssize_t n = mp_conn_recv(g_b, buf, sizeof(buf), MP_FOREVER);
		if (n == MP_ECLOSED)
			return 0;
		if (n < 0 || mp_conn_send(g_b, buf, (size_t)n))
			return 1;
	}
}

/* A peer that never reads: it dies with the message unread (had it read
 * it, it could exit on its own before the kill). */
static int child_block(void *arg)
{
	(void)arg;
	mp_conn_close(g_a);
	pause();
	return 0;
}

TEST(pipe_between_processes_eof)
{
	char buf[256];
	ASSERT_OK(mp_pipe(&g_a, &g_b, true));
	pid_t pid = test_fork(child_echo, NULL);
	mp_conn_close(g_b); /* the parent uses a */
	for (int i = 0; i < 1000; i++) {
		int len = i % 200;
		memset(buf, i & 0xff, (size_t)len);
		ASSERT_OK(mp_conn_send(g_a, buf, (size_t)len));
		ASSERT_EQ(mp_conn_recv(g_a, buf, sizeof(buf), 5), len);
		for (int j = 0; j < len; j++)
			ASSERT_EQ((uint8_t)buf[j], i & 0xff);
	}
	/* Closing our end is EOF for the child. */
	mp_conn_close(g_a);
	ASSERT_EQ(test_wait(pid), 0);
	mp_conn_free(g_a);
	mp_conn_free(g_b);
}

TEST(pipe_eof_on_peer_death)
{
	char buf[8];
	ASSERT_OK(mp_pipe(&g_a, &g_b, true));
	pid_t pid = test_fork(child_block, NULL);
	mp_conn_close(g_b);
	ASSERT_OK(mp_conn_send(g_a, "leftover", 8));
	kill(pid, SIGKILL);
	ASSERT_EQ(test_wait(pid), -SIGKILL);
	/* The peer is gone: recv says EOF, poll says ready, send fails. */
	ASSERT_EQ(mp_conn_poll(g_a, 5), 1);
	ASSERT_ERR(mp_conn_recv(g_a, buf, sizeof(buf), 5), MP_ECLOSED);
	ASSERT_ERR(mp_conn_send(g_a, "x", 1), MP_ECLOSED);
	mp_conn_free(g_a);
	mp_conn_free(g_b);

	/* One-way pipe: the reader sees EOF when the writer dies. */
	ASSERT_OK(mp_pipe(&g_a, &g_b, false));
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		mp_conn_close(g_a);
		mp_conn_send(g_b, "hi", 2);
		pause();
		_exit(0);
	}
	mp_conn_close(g_b);
	ASSERT_EQ(mp_conn_recv(g_a, buf, sizeof(buf), 5), 2);
	kill(pid, SIGKILL);
	test_wait(pid);
	ASSERT_ERR(mp_conn_recv(g_a, buf, sizeof(buf), 5), MP_ECLOSED);
	mp_conn_free(g_a);
	mp_conn_free(g_b);
}

TEST_MAIN(T(pipe_duplex_roundtrip), T(pipe_bad_inputs_and_directions),
	  T(pipe_between_processes_eof), T(pipe_eof_on_peer_death))
