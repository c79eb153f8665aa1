/*
 * Pipe: Python's multiprocessing.Pipe over a UNIX SOCK_SEQPACKET pair.
 *
 * The kernel keeps message boundaries and wakes the reader; we add one
 * framing byte in front of every message (sent with sendmsg from two
 * iovecs, so the payload is not copied twice) because a 0-byte datagram and
 * EOF both read as 0 from recv(): with the byte, 0 means EOF only.  recv
 * first peeks with MSG_TRUNC to learn the length, so a message longer than
 * the caller's buffer stays queued (-EMSGSIZE).  A non-duplex pair is the
 * same socket pair with the unused directions shut down.
 *
 * EOF comes from the kernel: once every copy of the peer's descriptor is
 * closed (explicitly, at exit, or by a SIGKILL) recv reads 0 and send gets
 * EPIPE (MSG_NOSIGNAL: no SIGPIPE).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"

#define FRAME 0x4du /* 'M': a message follows */

struct mp_conn {
	int fd;
	bool readable;
	bool writable;
};

static mp_conn *conn_new(int fd, bool readable, bool writable)
{
	mp_conn *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->readable = readable;
	c->writable = writable;
	return c;
}

int mp_pipe(mp_conn **a, mp_conn **b, bool duplex)
{
	int fds[2];

	if (!a || !b)
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	/* Room for the largest message plus its framing byte. */
	int sz = (int)(MP_CONN_MAX_MSG * 2);
	for (int i = 0; i < 2; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	if (!duplex) {
		shutdown(fds[0], SHUT_WR);
		shutdown(fds[1], SHUT_RD);
	}
	*a = conn_new(fds[0], true, duplex);
	*b = conn_new(fds[1], duplex, true);
	if (!*a || !*b) {
		free(*a);
		free(*b);
		*a = *b = NULL;
		close(fds[0]);
		close(fds[1]);
		return -ENOMEM;
	}
	return 0;
}

int mp_conn_send(mp_conn *c, const void *buf, size_t len)
{
	if (!c || (!buf && len))
		return -EINVAL;
	if (c->fd < 0 || !c->writable)
		return -EBADF;
	if (len > MP_CONN_MAX_MSG)
		return -EMSGSIZE;
	uint8_t frame = FRAME;
	struct iovec iov[2] = {
		{.iov_base = &frame, .iov_len = 1},
		{.iov_base = (void *)buf, .iov_len = len},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	for (;;) {
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return MP_ECLOSED;
		return -errno;
	}
}

/* Wait for the socket to be readable.  Return: 1, 0 (timed out), -errno. */
static int wait_readable(int fd, mp__deadline deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	for (;;) {
		int r = poll(&p, 1, mp__remaining_ms(deadline));
		if (r > 0)
			return 1;
		if (r == 0) {
			if (deadline == MP__NEVER || mp__now_ns() < deadline)
				continue; /* rounding: not yet */
			return 0;
		}
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t mp_conn_recv(mp_conn *c, void *buf, size_t cap, double timeout_s)
{
	if (!c || (!buf && cap))
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (c->fd < 0 || !c->readable)
		return -EBADF;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	for (;;) {
		uint8_t frame;
		ssize_t n = recv(c->fd, &frame, 1,
				 MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (n == 0)
			return MP_ECLOSED;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return MP_ECLOSED;
			if (errno != EAGAIN)
				return -errno;
			int r = wait_readable(c->fd, deadline);
			if (r < 0)
				return r;
			if (r == 0)
				return -ETIMEDOUT;
			continue;
		}
		size_t len = (size_t)n - 1;
		if (len > cap)
			return -EMSGSIZE;
		struct iovec iov[2] = {
			{.iov_base = &frame, .iov_len = 1},
			{.iov_base = buf, .iov_len = len},
		};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* another thread took it: wait again */
		if (n < 0)
			return -errno;
		if (n == 0)
			return MP_ECLOSED;
		return (ssize_t)n - 1;
	}
}

int mp_conn_poll(mp_conn *c, double timeout_s)
{
	if (!c)
		return -EINVAL;
	if (!mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (c->fd < 0 || !c->readable)
		return -EBADF;
	return wait_readable(c->fd, mp__deadline_in(timeout_s));
}

int mp_conn_close(mp_conn *c)
{
	if (!c)
		return -EINVAL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return 0;
}

int mp_conn_fileno(const mp_conn *c)
{
	return c ? c->fd : -1;
}

void mp_conn_free(mp_conn *c)
{
	if (!c)
		return;
	mp_conn_close(c);
	free(c);
}
