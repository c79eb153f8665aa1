/* SPDX-License-Identifier: MIT */
/*
 * Connection framing: whole messages of any size over a byte stream.
 *
 * Every item on the stream is an 8-byte header, then its payload:
 *
 *   byte 0     kind: 'M' a message, 'F' a descriptor (SCM_RIGHTS rides on
 *              the header's bytes; no payload)
 *   bytes 1-3  zero
 *   bytes 4-7  payload length, big-endian, at most the receiver's limit
 *
 * A stream socket (not SOCK_SEQPACKET, whose messages must fit in the
 * socket buffer) lets a message be any size; the header keeps the
 * boundaries and says how much to allocate before the payload is read, so
 * mp_conn_recv_alloc() makes one allocation of the exact size and a header
 * over the limit fails before any.
 *
 * State kept between calls makes every receive resumable: a header read
 * in part (hdr_have), a header parsed whose message was not taken (cur:
 * -EMSGSIZE leaves it there), and a payload read in part when a timeout
 * struck in the middle (part).  So a message is delivered whole or not at
 * all.  The payload is read with one readv that also asks for the next
 * header: a stream of messages costs about one system call each way.
 *
 * Descriptors that arrive (on a header's bytes) wait in fds[] until
 * mp_conn_recv_fd() takes them; the kernel hands them to whichever read
 * touches those bytes first, which may be the read-ahead of a payload.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"

#define HDR 8
#define KIND_MSG 'M'
#define KIND_FD 'F'
#define MAX_FDS 16

struct mp_conn {
	int fd;
	bool readable;
	bool writable;
	bool unix_family;
	int rerr;	/* sticky receive error: the stream is broken */
	int werr;	/* sticky send error: a send stopped half way */
	size_t limit;	/* largest payload this end accepts */
	uint8_t hdr[HDR];
	size_t hdr_have;
	bool cur;	/* a parsed header whose item is not taken yet */
	uint8_t cur_kind;
	size_t cur_len;
	uint8_t *part;	/* cur's payload read so far, after a timeout */
	size_t part_have;
	int fds[MAX_FDS];
	int nfds;
};

mp_conn *mp__conn_new(int fd, bool readable, bool writable)
{
	mp_conn *c = calloc(1, sizeof(*c));
	int dom = 0;
	socklen_t dl = sizeof(dom);

	if (!c) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->fd = fd;
	c->readable = readable;
	c->writable = writable;
	c->limit = MP_CONN_MAX_MSG;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) == 0)
		c->unix_family = dom == AF_UNIX;
	return c;
}

int mp__wait_fd(int fd, short events, mp__deadline deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

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

/* The stream is unusable from here on: say why at every later receive. */
static int fail(mp_conn *c, int err)
{
	c->rerr = err;
	free(c->part);
	c->part = NULL;
	return err;
}

static void keep_fds(mp_conn *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
	     cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (c->nfds < MAX_FDS)
				c->fds[c->nfds++] = fd;
			else
				close(fd); /* more than headers: garbage */
		}
	}
}

/* One read into iov, waiting until the deadline.  A receive that waits
 * forever blocks in the kernel (one system call per read, as a plain read
 * loop); with a deadline it polls first.
 * Return: bytes read, 0 at EOF, -ETIMEDOUT, -errno. */
static ssize_t read_some(mp_conn *c, struct iovec *iov, int n,
			 mp__deadline deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} u;
	int flags = MSG_CMSG_CLOEXEC |
		    (deadline == MP__NEVER ? 0 : MSG_DONTWAIT);

	for (;;) {
		struct msghdr mh = {
			.msg_iov = iov,
			.msg_iovlen = (size_t)n,
			.msg_control = c->unix_family ? u.buf : NULL,
			.msg_controllen = c->unix_family ? sizeof(u.buf) : 0,
		};
		ssize_t r = recvmsg(c->fd, &mh, flags);
		if (r >= 0) {
			if (mh.msg_controllen)
				keep_fds(c, &mh);
			return r;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		int w = mp__wait_fd(c->fd, POLLIN, deadline);
		if (w < 0)
			return w;
		if (w == 0)
			return -ETIMEDOUT;
	}
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Make c->cur the next item's header.  Return: 0, or an error. */
static int next_header(mp_conn *c, mp__deadline deadline)
{
	if (c->cur)
		return 0;
	while (c->hdr_have < HDR) {
		struct iovec iov = {c->hdr + c->hdr_have, HDR - c->hdr_have};
		ssize_t n = read_some(c, &iov, 1, deadline);
		if (n == 0)
			return c->hdr_have ? fail(c, MP_ECLOSED) : MP_ECLOSED;
		if (n < 0)
			return n == -ETIMEDOUT ? n : fail(c, (int)n);
		c->hdr_have += (size_t)n;
	}
	uint8_t kind = c->hdr[0];
	size_t len = get_be32(c->hdr + 4);
	if ((kind != KIND_MSG && kind != KIND_FD) || c->hdr[1] || c->hdr[2] ||
	    c->hdr[3] || (kind == KIND_FD && len))
		return fail(c, -EPROTO);
	if (len > c->limit)
		return fail(c, -EPROTO); /* before any allocation */
	c->cur = true;
	c->cur_kind = kind;
	c->cur_len = len;
	c->hdr_have = 0;
	return 0;
}

/* Read cur's payload into dst until *have == cur_len, reading ahead into
 * the next header.  Return: 0, or an error (-ETIMEDOUT: *have is how far
 * it got). */
static int read_payload(mp_conn *c, uint8_t *dst, size_t *have,
			mp__deadline deadline)
{
	while (*have < c->cur_len) {
		size_t want = c->cur_len - *have;
		struct iovec iov[2] = {
			{dst + *have, want},
			{c->hdr, HDR},
		};
		ssize_t n = read_some(c, iov, 2, deadline);
		if (n == 0)
			return fail(c, MP_ECLOSED); /* the peer died mid-way */
		if (n < 0)
			return n == -ETIMEDOUT ? n : fail(c, (int)n);
		if ((size_t)n > want) {
			c->hdr_have = (size_t)n - want;
			n = (ssize_t)want;
		}
		*have += (size_t)n;
	}
	return 0;
}

static int recv_check(mp_conn *c)
{
	if (c->fd < 0 || !c->readable)
		return -EBADF;
	return c->rerr;
}

ssize_t mp__conn_recv_until(mp_conn *c, void *buf, size_t cap,
			    mp__deadline deadline)
{
	int r = recv_check(c);

	if (r)
		return r;
	r = next_header(c, deadline);
	if (r)
		return r;
	if (c->cur_kind != KIND_MSG)
		return -ENOMSG;
	if (c->cur_len > cap)
		return -EMSGSIZE;
	size_t have = 0;
	if (c->part) {
		memcpy(buf, c->part, c->part_have);
		have = c->part_have;
	}
	r = read_payload(c, buf, &have, deadline);
	if (r == -ETIMEDOUT && have) {
		/* Keep what came, for the next receive (any buffer). */
		if (!c->part)
			c->part = malloc(c->cur_len);
		if (!c->part)
			return fail(c, -ENOMEM);
		memcpy(c->part, buf, have);
		c->part_have = have;
	}
	if (r)
		return r;
	free(c->part);
	c->part = NULL;
	c->cur = false;
	return (ssize_t)c->cur_len;
}

ssize_t mp_conn_recv(mp_conn *c, void *buf, size_t cap, double timeout_s)
{
	if (!c || (!buf && cap) || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	return mp__conn_recv_until(c, buf, cap, mp__deadline_in(timeout_s));
}

ssize_t mp_conn_recv_alloc(mp_conn *c, void **msg, double timeout_s)
{
	if (!c || !msg || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	*msg = NULL;
	int r = recv_check(c);
	if (r)
		return r;
	mp__deadline deadline = mp__deadline_in(timeout_s);
	r = next_header(c, deadline);
	if (r)
		return r;
	if (c->cur_kind != KIND_MSG)
		return -ENOMSG;
	uint8_t *m = c->part;
	size_t have = c->part_have;
	if (!m) {
		m = malloc(c->cur_len ? c->cur_len : 1);
		have = 0;
	}
	if (!m)
		return -ENOMEM;
	c->part = NULL;
	r = read_payload(c, m, &have, deadline);
	if (r == -ETIMEDOUT) {
		c->part = m;
		c->part_have = have;
		return r;
	}
	if (r) {
		free(m);
		return r;
	}
	c->cur = false;
	*msg = m;
	return (ssize_t)c->cur_len;
}

int mp_conn_set_max_msg(mp_conn *c, size_t max)
{
	if (!c || max > MP_CONN_MAX_MSG)
		return -EINVAL;
	c->limit = max;
	return 0;
}

int mp_conn_recv_fd(mp_conn *c, double timeout_s)
{
	if (!c || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	int r = recv_check(c);
	if (r)
		return r;
	r = next_header(c, mp__deadline_in(timeout_s));
	if (r)
		return r;
	if (c->cur_kind != KIND_FD)
		return -ENOMSG;
	if (!c->nfds)
		return fail(c, -EPROTO); /* a header without its descriptor */
	int fd = c->fds[0];
	memmove(c->fds, c->fds + 1, (size_t)--c->nfds * sizeof(int));
	c->cur = false;
	return fd;
}

static void put_header(uint8_t *h, uint8_t kind, size_t len)
{
	memset(h, 0, HDR);
	h[0] = kind;
	h[4] = (uint8_t)(len >> 24);
	h[5] = (uint8_t)(len >> 16);
	h[6] = (uint8_t)(len >> 8);
	h[7] = (uint8_t)len;
}

/* sendmsg until every byte of iov is out; mh may carry a descriptor
 * (sent with the first bytes only). */
static int send_all(mp_conn *c, struct msghdr *mh)
{
	bool started = false;

	for (;;) {
		ssize_t n = sendmsg(c->fd, mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno == EPIPE || errno == ECONNRESET ?
					MP_ECLOSED : -errno;
			if (started && e != MP_ECLOSED)
				c->werr = -EPIPE; /* the peer would misparse */
			return e;
		}
		started = true;
		mh->msg_control = NULL;
		mh->msg_controllen = 0;
		while (mh->msg_iovlen && (size_t)n >= mh->msg_iov->iov_len) {
			n -= (ssize_t)mh->msg_iov->iov_len;
			mh->msg_iov++;
			mh->msg_iovlen--;
		}
		if (!mh->msg_iovlen)
			return 0;
		mh->msg_iov->iov_base = (uint8_t *)mh->msg_iov->iov_base + n;
		mh->msg_iov->iov_len -= (size_t)n;
	}
}

static int send_check(mp_conn *c)
{
	if (c->fd < 0 || !c->writable)
		return -EBADF;
	return c->werr;
}

int mp_conn_send(mp_conn *c, const void *buf, size_t len)
{
	if (!c || (!buf && len))
		return -EINVAL;
	int r = send_check(c);
	if (r)
		return r;
	if (len > MP_CONN_MAX_MSG)
		return -EMSGSIZE;
	uint8_t h[HDR];
	put_header(h, KIND_MSG, len);
	struct iovec iov[2] = {
		{.iov_base = h, .iov_len = HDR},
		{.iov_base = (void *)buf, .iov_len = len},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	return send_all(c, &mh);
}

int mp_conn_send_fd(mp_conn *c, int fd)
{
	if (!c)
		return -EINVAL;
	int r = send_check(c);
	if (r)
		return r;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (!c->unix_family)
		return -EOPNOTSUPP;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	uint8_t h[HDR];
	put_header(h, KIND_FD, 0);
	struct iovec iov = {.iov_base = h, .iov_len = HDR};
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return send_all(c, &mh);
}

bool mp__conn_buffered(const mp_conn *c)
{
	if (c->rerr || (c->cur && (c->cur_len == 0 || c->cur_kind != KIND_MSG)))
		return true;
	return c->hdr_have == HDR && c->hdr[0] != KIND_MSG ? true :
	       c->hdr_have == HDR && get_be32(c->hdr + 4) == 0;
}

int mp_conn_poll(mp_conn *c, double timeout_s)
{
	if (!c || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (c->fd < 0 || !c->readable)
		return -EBADF;
	if (mp__conn_buffered(c))
		return 1;
	return mp__wait_fd(c->fd, POLLIN, mp__deadline_in(timeout_s));
}

int mp_conn_close(mp_conn *c)
{
	if (!c)
		return -EINVAL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while (c->nfds)
		close(c->fds[--c->nfds]);
	free(c->part);
	c->part = NULL;
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
