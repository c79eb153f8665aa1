/* SPDX-License-Identifier: MIT */
#ifndef MP_CONN_INTERNAL_H
#define MP_CONN_INTERNAL_H

/* What the connection files share: the framing (conn.c), the handshake
 * (auth.c), addresses and sockets (listener.c). */

#include <sys/socket.h>

#include "clock.h"
#include "internal.h"

/* A connection over socket fd (blocking mode), NULL + errno ENOMEM; the
 * fd is closed on failure. */
mp_conn *mp__conn_new(int fd, bool readable, bool writable);

/* mp_conn_recv with an absolute deadline. */
ssize_t mp__conn_recv_until(mp_conn *c, void *buf, size_t cap,
			    mp__deadline deadline);

/* Whether a receive returns at once from what c already buffered (a whole
 * empty message, a descriptor, an error): poll(2) on the socket cannot
 * tell. */
bool mp__conn_buffered(const mp_conn *c);

/* Wait for fd to poll readable (events: POLLIN) or writable (POLLOUT).
 * Return: 1, 0 (the deadline passed), -errno. */
int mp__wait_fd(int fd, short events, mp__deadline deadline);

/* The handshake, on a fresh connection.  The server speaks first.
 * Return: 0; -EACCES (wrong key, a key on one side only, or a broken
 * handshake); -ETIMEDOUT; another negative errno (allocation, socket). */
int mp__auth_serve(mp_conn *c, const void *key, size_t keylen,
		   mp__deadline deadline);
int mp__auth_answer(mp_conn *c, const void *key, size_t keylen,
		    mp__deadline deadline);

/* Largest handshake frame a peer may send. */
#define MP__AUTH_MAX_FRAME 128

/* An address of the syntax in conn.h, resolved. */
struct mp__addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool abstract; /* unix:@name */
};

/* Return: 0, -EINVAL (malformed), or a resolver failure as -EINVAL too
 * (errno-less: "no such host" is a bad address). */
int mp__addr_parse(const char *address, struct mp__addr *out);

#endif
