/* SPDX-License-Identifier: MIT */
#ifndef MP_FUZZ_CONN_H
#define MP_FUZZ_CONN_H

/*
 * One fuzz input against the connection parsers, through the public API
 * and real sockets: the bytes are what a hostile peer sends.  Used by
 * tests/test-conn-fuzz.c (seeded, bounded, in ctest) and by the libFuzzer
 * target tests/fuzz/fuzz-conn.c.
 *
 *   byte 0 bit 0   0: the bytes follow a pipe's framing (data frames)
 *                  1: the bytes are a client's handshake, to a listener
 *   byte 0 bit 1   the listener has a key (no input can then pass)
 *
 * Every result must be one the API documents; a crash, a leak or an
 * out-of-bounds access (under ASan) is a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <multiproc.h>

#define FUZZ_MAX_INPUT 65536

static void fuzz_fail(const char *what, long v)
{
	fprintf(stderr, "fuzz: %s: %ld\n", what, v);
	abort();
}

/* Drain c: every item until the stream ends or breaks. */
static void fuzz_drain(mp_conn *c)
{
	char small[64];

	for (int i = 0; i < 10000; i++) {
		void *m = NULL;
		ssize_t n = i % 3 == 0 ? mp_conn_recv(c, small, sizeof(small), 0)
					: mp_conn_recv_alloc(c, &m, 0);
		free(m);
		if (n >= 0) {
			if ((size_t)n > FUZZ_MAX_INPUT)
				fuzz_fail("message longer than the input", n);
			continue;
		}
		if (n == -EMSGSIZE && i % 3 == 0)
			continue; /* the alloc next turn takes it */
		if (n == -ENOMSG) {
			int fd = mp_conn_recv_fd(c, 0);
			if (fd >= 0)
				fuzz_fail("a descriptor from plain bytes", fd);
			if (fd != -EPROTO)
				fuzz_fail("recv_fd", fd);
			return;
		}
		if (n == MP_ECLOSED || n == -EPROTO || n == -ETIMEDOUT)
			return;
		fuzz_fail("recv", n);
	}
}

static void fuzz_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return; /* the reader gave up: fine */
		p += w;
		n -= (size_t)w;
	}
}

static void fuzz_frames(const uint8_t *data, size_t n)
{
	mp_conn *a, *b;

	if (mp_pipe(&a, &b, true))
		fuzz_fail("mp_pipe", errno);
	fuzz_write_all(mp_conn_fileno(b), data, n);
	mp_conn_free(b);
	fuzz_drain(a);
	mp_conn_free(a);
}

static void fuzz_handshake(const uint8_t *data, size_t n, bool keyed)
{
	static mp_listener *ls[2];
	mp_listener **l = &ls[keyed];

	if (!*l) {
		char addr[64];
		snprintf(addr, sizeof(addr), "unix:@mp-fuzz-%d-%d",
			 (int)getpid(), keyed);
		*l = mp_listener_new(addr, keyed ? "k" : NULL, keyed);
		if (!*l)
			fuzz_fail("listener", errno);
	}
	const char *name = mp_listener_address(*l) + 6;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	memcpy(un.sun_path + 1, name, strlen(name));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un,
			      (socklen_t)(sizeof(sa_family_t) + 1 +
					  strlen(name))) < 0)
		fuzz_fail("connect", errno);
	fuzz_write_all(fd, data, n);
	shutdown(fd, SHUT_WR);
	mp_conn *c = mp_listener_accept(*l, 5);
	if (c && keyed)
		fuzz_fail("authenticated without the key", 0);
	if (!c && errno != EACCES)
		fuzz_fail("accept errno", errno);
	if (c) {
		fuzz_drain(c);
		mp_conn_free(c);
	}
	close(fd);
}

static void fuzz_one(const uint8_t *data, size_t n)
{
	if (n < 1 || n > FUZZ_MAX_INPUT)
		return;
	if (data[0] & 1)
		fuzz_handshake(data + 1, n - 1, data[0] & 2);
	else
		fuzz_frames(data + 1, n - 1);
}

#endif
