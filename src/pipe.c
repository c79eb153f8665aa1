/* SPDX-License-Identifier: MIT */
/*
 * Pipe: Python's multiprocessing.Pipe over a UNIX stream socket pair.
 *
 * The framing (conn.c) keeps message boundaries on the stream, so a
 * message may be larger than the socket buffer; a non-duplex pair is the
 * same socket pair with the unused directions shut down.
 *
 * EOF comes from the kernel: once every copy of the peer's descriptor is
 * closed (explicitly, at exit, or by a SIGKILL) recv reads 0 and send gets
 * EPIPE (MSG_NOSIGNAL: no SIGPIPE).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

int mp_pipe(mp_conn **a, mp_conn **b, bool duplex)
{
	int fds[2];

	if (!a || !b)
		return -EINVAL;
	*a = *b = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	if (!duplex) {
		shutdown(fds[0], SHUT_WR);
		shutdown(fds[1], SHUT_RD);
	}
	*a = mp__conn_new(fds[0], true, duplex);
	*b = mp__conn_new(fds[1], duplex, true);
	if (!*a || !*b) {
		/* mp__conn_new closed the fd of the one that failed. */
		mp_conn_free(*a);
		mp_conn_free(*b);
		*a = *b = NULL;
		return -ENOMEM;
	}
	return 0;
}
