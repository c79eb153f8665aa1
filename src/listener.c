/* SPDX-License-Identifier: MIT */
/*
 * Listener and Client: connections by address (conn.h has the syntax).
 *
 * The listening socket is non-blocking so that an accept woken by poll
 * but beaten to the client (another process sharing the listener) waits
 * again instead of blocking past its timeout; accepted and connected
 * sockets are blocking, as conn.c expects.  A unix socket file gets mode
 * 0600 from the socket's own inode (fchmod before bind), so it is never
 * reachable by others, not even for an instant.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"

struct mp_listener {
	int fd;
	char *address;	/* as bound */
	char *path;	/* the socket file to remove, or NULL */
	pid_t owner;	/* the process that created it */
	void *key;
	size_t keylen;
};

static int parse_unix(const char *s, struct mp__addr *a)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
	size_t n = strlen(s);

	un->sun_family = AF_UNIX;
	if (s[0] == '@') {
		/* Abstract: a leading NUL, then the name, no terminator. */
		if (n < 2 || n > sizeof(un->sun_path))
			return -EINVAL;
		un->sun_path[0] = '\0';
		memcpy(un->sun_path + 1, s + 1, n - 1);
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		a->abstract = true;
		return 0;
	}
	if (n == 0 || n >= sizeof(un->sun_path))
		return -EINVAL;
	memcpy(un->sun_path, s, n + 1);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static int parse_tcp(const char *s, struct mp__addr *a)
{
	const char *colon = strrchr(s, ':');
	char host[256];

	if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
		return -EINVAL;
	unsigned long port = 0;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		return -EINVAL;
	size_t hl = (size_t)(colon - s);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -EINVAL;
		s++;
		hl -= 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags = AI_NUMERICHOST;
	} else if (memchr(s, ':', hl) || memchr(s, ']', hl)) {
		return -EINVAL; /* an IPv6 literal needs its brackets */
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) || !res)
		return -EINVAL;
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
	else if (a->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port =
			htons((uint16_t)port);
	else
		return -EINVAL;
	return 0;
}

int mp__addr_parse(const char *address, struct mp__addr *out)
{
	if (!address || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!strncmp(address, "unix:", 5))
		return parse_unix(address + 5, out);
	if (!strncmp(address, "tcp:", 4))
		return parse_tcp(address + 4, out);
	return -EINVAL;
}

static bool key_ok(const void *key, size_t keylen)
{
	return key ? keylen > 0 && keylen <= INT32_MAX : keylen == 0;
}

/* "tcp:HOST:PORT" of a bound socket, the port as the kernel chose it. */
static char *tcp_name(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], *out = NULL;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return NULL;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		if (asprintf(&out, "tcp:%s:%u", host, ntohs(in->sin_port)) < 0)
			return NULL;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		if (asprintf(&out, "tcp:[%s]:%u", host,
			     ntohs(in6->sin6_port)) < 0)
			return NULL;
	}
	return out;
}

static void listener_drop(mp_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->path && l->owner == getpid())
		unlink(l->path);
	free(l->path);
	free(l->address);
	free(l->key);
	free(l);
}

mp_listener *mp_listener_new(const char *address, const void *authkey,
			     size_t keylen)
{
	struct mp__addr a;
	int e = mp__addr_parse(address, &a);

	if (!e && !key_ok(authkey, keylen))
		e = -EINVAL;
	if (e) {
		errno = -e;
		return NULL;
	}
	mp_listener *l = calloc(1, sizeof(*l));
	if (!l) {
		errno = ENOMEM;
		return NULL;
	}
	l->owner = getpid();
	l->fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
			SOCK_NONBLOCK, 0);
	if (l->fd < 0)
		goto fail;
	bool is_unix = a.ss.ss_family == AF_UNIX;
	if (is_unix && fchmod(l->fd, 0600) < 0)
		goto fail;
	if (!is_unix)
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &(int){1},
			   sizeof(int));
	if (bind(l->fd, (struct sockaddr *)&a.ss, a.len) < 0)
		goto fail;
	if (is_unix && !a.abstract) {
		l->path = strdup(address + 5);
		if (!l->path) {
			unlink(address + 5);
			errno = ENOMEM;
			goto fail;
		}
	}
	if (listen(l->fd, SOMAXCONN) < 0)
		goto fail;
	l->address = is_unix ? strdup(address) : tcp_name(l->fd);
	if (authkey) {
		l->key = malloc(keylen);
		if (l->key)
			memcpy(l->key, authkey, keylen);
		l->keylen = keylen;
	}
	if (!l->address || (authkey && !l->key)) {
		errno = ENOMEM;
		goto fail;
	}
	return l;
fail:
	e = errno;
	listener_drop(l);
	errno = e;
	return NULL;
}

const char *mp_listener_address(const mp_listener *l)
{
	return l ? l->address : NULL;
}

int mp_listener_fileno(const mp_listener *l)
{
	return l ? l->fd : -1;
}

static void nodelay(int fd)
{
	/* Fails harmlessly on unix sockets. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
}

mp_conn *mp_listener_accept(mp_listener *l, double timeout_s)
{
	if (!l || !mp__timeout_ok(timeout_s)) {
		errno = EINVAL;
		return NULL;
	}
	mp__deadline deadline = mp__deadline_in(timeout_s);
	int fd;
	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN)
			return NULL;
		int w = mp__wait_fd(l->fd, POLLIN, deadline);
		if (w <= 0) {
			errno = w ? -w : ETIMEDOUT;
			return NULL;
		}
	}
	nodelay(fd);
	mp_conn *c = mp__conn_new(fd, true, true);
	if (!c)
		return NULL;
	/* A stalled client costs at most the caller's timeout. */
	if (deadline == MP__NEVER)
		deadline = mp__deadline_in(MP_HANDSHAKE_MAX_S);
	int r = mp__auth_serve(c, l->key, l->keylen, deadline);
	if (r) {
		mp_conn_free(c);
		errno = -r;
		return NULL;
	}
	return c;
}

void mp_listener_free(mp_listener *l)
{
	if (l)
		listener_drop(l);
}

/* A non-blocking connect bounded by the deadline; the socket is left
 * blocking.  Return: 0, -errno. */
static int connect_until(int fd, const struct mp__addr *a,
			 mp__deadline deadline)
{
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		if (errno != EINPROGRESS && errno != EINTR)
			return -errno;
		int w = mp__wait_fd(fd, POLLOUT, deadline);
		if (w < 0)
			return w;
		if (w == 0)
			return -ETIMEDOUT;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return -errno;
		if (err)
			return -err;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

mp_conn *mp_client(const char *address, const void *authkey, size_t keylen,
		   double timeout_s)
{
	struct mp__addr a;
	int e = mp__addr_parse(address, &a);

	if (!e && (!key_ok(authkey, keylen) || !mp__timeout_ok(timeout_s)))
		e = -EINVAL;
	if (e) {
		errno = -e;
		return NULL;
	}
	mp__deadline deadline = mp__deadline_in(timeout_s);
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
			SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	e = connect_until(fd, &a, deadline);
	if (e) {
		close(fd);
		errno = -e;
		return NULL;
	}
	nodelay(fd);
	mp_conn *c = mp__conn_new(fd, true, true);
	if (!c)
		return NULL;
	e = mp__auth_answer(c, authkey, keylen, deadline);
	if (e) {
		mp_conn_free(c);
		errno = -e;
		return NULL;
	}
	return c;
}
