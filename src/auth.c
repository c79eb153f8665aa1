/* SPDX-License-Identifier: MIT */
/*
 * The connection handshake: mutual challenge-response, the shape of
 * Python's multiprocessing.connection (deliver_challenge and
 * answer_challenge, both ways), in framed messages of at most
 * MP__AUTH_MAX_FRAME bytes:
 *
 *   server: HELLO   "MPCONN1" mode [Ns]       mode 0 no key, 1 HMAC-SHA256
 *   client: ANSWER  "MPCONN1" mode [Nc R_c]   R_c = HMAC(K, "client" Ns Nc)
 *   server: WELCOME "MPCONN1" 'W' [R_s]       R_s = HMAC(K, "server" Nc Ns)
 *       or  FAILURE "MPCONN1" 'F'
 *
 * Nonces are 32 bytes from getrandom(2); the HMAC is libcrypto's.  The
 * key is never sent; answers are compared in constant time
 * (CRYPTO_memcmp).  The two directions use different labels, so a
 * server's challenge reflected back to it does not answer itself.  Each
 * side checks the other's mode first: a key on one side only fails on
 * both (the client sends nothing and closes; the server reads EOF).
 *
 * While the handshake runs the connection's limit is MP__AUTH_MAX_FRAME:
 * a peer announcing a larger frame fails it before anything is allocated.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conn.h"

#define MAGIC "MPCONN1"
#define MAGIC_LEN 7
#define NONCE 32
#define MAC 32

static int nonce(uint8_t *n)
{
	size_t got = 0;

	while (got < NONCE) {
		ssize_t r = getrandom(n + got, NONCE - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	return 0;
}

static int mac(const void *key, size_t keylen, const char *label,
	       const uint8_t *n1, const uint8_t *n2, uint8_t *out)
{
	uint8_t msg[6 + 2 * NONCE];
	unsigned int outlen = 0;

	memcpy(msg, label, 6);
	memcpy(msg + 6, n1, NONCE);
	memcpy(msg + 6 + NONCE, n2, NONCE);
	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, sizeof(msg), out,
		  &outlen) || outlen != MAC)
		return -ENOMEM;
	return 0;
}

/* Receive one handshake frame; every failure but a timeout is EACCES. */
static ssize_t get(mp_conn *c, uint8_t *buf, mp__deadline deadline)
{
	ssize_t n = mp__conn_recv_until(c, buf, MP__AUTH_MAX_FRAME, deadline);

	if (n == -ETIMEDOUT || n >= MAGIC_LEN + 1)
		return n;
	return -EACCES;
}

static bool magic_ok(const uint8_t *buf)
{
	return memcmp(buf, MAGIC, MAGIC_LEN) == 0;
}

static int put(mp_conn *c, const uint8_t *buf, size_t len)
{
	int r = mp_conn_send(c, buf, len);

	return r == MP_ECLOSED ? -EACCES : r;
}

int mp__auth_serve(mp_conn *c, const void *key, size_t keylen,
		   mp__deadline deadline)
{
	uint8_t out[MAGIC_LEN + 1 + MAC], in[MP__AUTH_MAX_FRAME];
	uint8_t ns[NONCE], want[MAC];
	uint8_t mode = key ? 1 : 0;
	int r;

	mp_conn_set_max_msg(c, MP__AUTH_MAX_FRAME);
	memcpy(out, MAGIC, MAGIC_LEN);
	out[MAGIC_LEN] = mode;
	if (mode && (r = nonce(ns)))
		return r;
	if (mode)
		memcpy(out + MAGIC_LEN + 1, ns, NONCE);
	r = put(c, out, MAGIC_LEN + 1 + (mode ? NONCE : 0));
	if (r)
		return r;
	ssize_t n = get(c, in, deadline);
	if (n < 0)
		return (int)n;
	bool ok = magic_ok(in) && in[MAGIC_LEN] == mode &&
		  (size_t)n == MAGIC_LEN + 1 + (mode ? NONCE + MAC : 0);
	const uint8_t *nc = in + MAGIC_LEN + 1;
	if (ok && mode) {
		if ((r = mac(key, keylen, "client", ns, nc, want)))
			return r;
		ok = CRYPTO_memcmp(want, nc + NONCE, MAC) == 0;
	}
	out[MAGIC_LEN] = ok ? 'W' : 'F';
	if (ok && mode && (r = mac(key, keylen, "server", nc, ns,
				   out + MAGIC_LEN + 1)))
		return r;
	r = put(c, out, MAGIC_LEN + 1 + (ok && mode ? MAC : 0));
	if (r)
		return r;
	if (!ok)
		return -EACCES;
	return mp_conn_set_max_msg(c, MP_CONN_MAX_MSG);
}

int mp__auth_answer(mp_conn *c, const void *key, size_t keylen,
		    mp__deadline deadline)
{
	uint8_t out[MAGIC_LEN + 1 + NONCE + MAC], in[MP__AUTH_MAX_FRAME];
	uint8_t nc[NONCE], want[MAC];
	uint8_t mode = key ? 1 : 0;
	int r;

	mp_conn_set_max_msg(c, MP__AUTH_MAX_FRAME);
	ssize_t n = get(c, in, deadline);
	if (n < 0)
		return (int)n;
	if (!magic_ok(in) || in[MAGIC_LEN] != mode ||
	    (size_t)n != MAGIC_LEN + 1 + (mode ? NONCE : 0))
		return -EACCES; /* a key on one side only, or not our server */
	memcpy(out, MAGIC, MAGIC_LEN);
	out[MAGIC_LEN] = mode;
	if (mode) {
		const uint8_t *ns = in + MAGIC_LEN + 1;
		if ((r = nonce(nc)))
			return r;
		memcpy(out + MAGIC_LEN + 1, nc, NONCE);
		if ((r = mac(key, keylen, "client", ns, nc,
			     out + MAGIC_LEN + 1 + NONCE)))
			return r;
		if ((r = mac(key, keylen, "server", nc, ns, want)))
			return r;
	}
	r = put(c, out, MAGIC_LEN + 1 + (mode ? NONCE + MAC : 0));
	if (r)
		return r;
	n = get(c, in, deadline);
	if (n < 0)
		return (int)n;
	if (!magic_ok(in) || in[MAGIC_LEN] != 'W' ||
	    (size_t)n != MAGIC_LEN + 1 + (mode ? MAC : 0))
		return -EACCES;
	if (mode && CRYPTO_memcmp(want, in + MAGIC_LEN + 1, MAC) != 0)
		return -EACCES; /* the server does not know the key */
	return mp_conn_set_max_msg(c, MP_CONN_MAX_MSG);
}
