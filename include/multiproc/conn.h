/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_CONN_H
#define MULTIPROC_CONN_H

#include "common.h"
#include "process.h"
#include "queue.h"

MP_BEGIN_DECLS

/*
 * Connections: Python's multiprocessing.Pipe() and
 * multiprocessing.connection (Listener, Client, wait).
 *
 * An mp_conn is one end of a byte stream (a UNIX or TCP socket) that
 * carries whole messages of 0 up to MP_CONN_MAX_MSG bytes: each message is
 * framed as an 8-byte header (kind, length) and its payload.  A message is
 * delivered whole or not at all: a peer that dies in the middle of one
 * gives MP_ECLOSED, never a short message.  A receive that times out in
 * the middle of a message keeps what it read and the next receive goes on
 * from there.  A peer that breaks the framing (a bad header, a message
 * over this end's limit) fails the connection with -EPROTO, before any
 * memory is allocated for the message.
 *
 * Fork after mp_pipe() and each process keeps the end it uses and calls
 * mp_conn_close() on the other (the parent usually keeps `a`, the child
 * `b`): EOF is only seen once every copy of the peer end is closed, which
 * also happens when its process exits or dies.  An mp_conn is not in
 * shared memory: each process frees its own copy.  Two processes must not
 * both read (or both write) the same end: the stream has no locks.
 */
typedef struct mp_conn mp_conn;

/* Largest message mp_conn_send() takes and a receiver accepts by default:
 * 1 GiB. */
#define MP_CONN_MAX_MSG ((size_t)1 << 30)

/* Make a connected pair (a UNIX stream socket pair).  duplex: both ends
 * send and receive; otherwise *a only receives and *b only sends (as
 * Python's Pipe(duplex=False)).
 * Return: 0; -EINVAL (NULL); -EMFILE, -ENFILE, -ENOMEM from socketpair.
 * Safety: any thread. */
MP_EXTERN int mp_pipe(mp_conn **a, mp_conn **b, bool duplex);

/* Send one message (0..MP_CONN_MAX_MSG bytes); blocks while the socket
 * buffer is full.  Return: 0; MP_ECLOSED (the peer end is closed, or its
 * process died; no SIGPIPE is raised); -EMSGSIZE (too long); -EBADF (this
 * end was closed or does not send); -EPIPE (an earlier send failed half
 * way: the stream is broken); -EINVAL.
 * Safety: one thread per end at a time; blocks. */
MP_EXTERN int mp_conn_send(mp_conn *c, const void *buf, size_t len);

/* Receive one message into buf[0..cap).
 * Return: its length; -EMSGSIZE when it is longer than cap: it stays
 * queued (mp_conn_recv with a bigger buffer, or mp_conn_recv_alloc, gets
 * it); MP_ECLOSED at EOF (every copy of the peer end closed and nothing
 * left), also when the peer went away in the middle of a message;
 * -ETIMEDOUT; -EPROTO (the peer broke the framing: every later receive
 * fails too); -ENOMSG (the next message is a descriptor: see
 * mp_conn_recv_fd); -EBADF (closed, or an end that does not receive);
 * -EINVAL.
 * Safety: one thread per end at a time; blocks (poll). */
MP_EXTERN ssize_t mp_conn_recv(mp_conn *c, void *buf, size_t cap,
			       double timeout_s);

/* Receive one message of any length (up to this end's limit) into a buffer
 * from malloc(); the caller frees *msg (non-NULL also for 0 bytes).
 * Return: its length; -ENOMEM (the message stays queued); the other errors
 * of mp_conn_recv() but -EMSGSIZE. */
MP_EXTERN ssize_t mp_conn_recv_alloc(mp_conn *c, void **msg,
				     double timeout_s);

/* The largest message this end accepts (default MP_CONN_MAX_MSG); a peer
 * that announces a longer one fails the connection (-EPROTO) before any
 * memory is allocated.  Return: 0; -EINVAL (NULL, or over
 * MP_CONN_MAX_MSG). */
MP_EXTERN int mp_conn_set_max_msg(mp_conn *c, size_t max);

/* Wait until mp_conn_recv() has something to return (data of a message,
 * EOF, or an error).  Like Python's poll(), data of a message that has
 * not fully arrived counts.
 * Return: 1 ready, 0 not ready in time, -EBADF, -EINVAL.
 * Safety: any thread; blocks up to timeout_s. */
MP_EXTERN int mp_conn_poll(mp_conn *c, double timeout_s);

/* Hand an open file descriptor to the peer (Python's
 * reduction.send_handle): the peer gets its own descriptor for the same
 * open file with mp_conn_recv_fd().  Messages and descriptors keep their
 * order.  Only over UNIX connections (pipes, unix: addresses).
 * Return: 0; -EOPNOTSUPP (a TCP connection); -EBADF (fd or c); the errors
 * of mp_conn_send(). */
MP_EXTERN int mp_conn_send_fd(mp_conn *c, int fd);

/* Receive a descriptor sent with mp_conn_send_fd() (close-on-exec set).
 * Return: the new descriptor (the caller closes it); -ENOMSG (the next
 * item is a message, which stays queued); the errors of mp_conn_recv(). */
MP_EXTERN int mp_conn_recv_fd(mp_conn *c, double timeout_s);

/* Close this process's copy of the end (idempotent).  The handle stays
 * allocated until mp_conn_free().  Return: 0, -EINVAL. */
MP_EXTERN int mp_conn_close(mp_conn *c);

/* The socket's file descriptor, to poll alongside others; -1 once closed.
 * A connection may hold the start of a message it has already read: use
 * mp_conn_poll() or mp_wait(), which know, rather than poll(2) alone. */
MP_EXTERN int mp_conn_fileno(const mp_conn *c);

/* Close if still open and free the handle; NULL is ignored. */
MP_EXTERN void mp_conn_free(mp_conn *c);

/*
 * Listener and Client: connections between unrelated processes by
 * address, as Python's multiprocessing.connection.  Addresses:
 *
 *   unix:/path        a socket file, created with mode 0600 (owner only)
 *                     and removed by mp_listener_free() in the process
 *                     that created it; at most 107 bytes of path
 *   unix:@name        a Linux abstract socket (no file; any local process
 *                     can connect: use a key)
 *   tcp:HOST:PORT     HOST a name or an IPv4 literal, or an IPv6 literal
 *                     in brackets (tcp:[::1]:PORT); PORT 0 in a listener
 *                     takes any free port (mp_listener_address tells
 *                     which).  The listener binds exactly HOST, never all
 *                     addresses unless HOST says so (0.0.0.0, [::]).
 *
 * Authentication: with a key, both sides prove they know it without
 * sending it: each sends a 32-byte random nonce (getrandom(2)) and
 * answers the other's with HMAC-SHA256(key, label | nonces) (OpenSSL's
 * libcrypto), compared in constant time.  A wrong key, or a key on one
 * side only, is EACCES on both sides; the listener goes on.  Until the
 * handshake succeeded the server only reads handshake frames of at most
 * 128 bytes: a client that was not authenticated cannot send it a message.
 * A peer that sends garbage or stalls in the handshake costs the accepting
 * side at most the accept's timeout (MP_HANDSHAKE_MAX_S when it waits
 * forever).  Without any key the connection is not authenticated (Python's
 * authkey=None); TCP is not encrypted either way.
 */
typedef struct mp_listener mp_listener;

/* The longest a handshake may take in mp_listener_accept(MP_FOREVER). */
#define MP_HANDSHAKE_MAX_S 10.0

/* Listen on address; authkey[0..keylen) is the key, NULL (keylen 0) for
 * none.  Return: the listener, or NULL with errno EINVAL (malformed
 * address, unknown scheme, path too long, NULL key with keylen > 0, or a
 * key of 0 bytes), EADDRINUSE, EACCES, ENOMEM, or bind/listen's errno. */
MP_EXTERN mp_listener *mp_listener_new(const char *address,
				       const void *authkey, size_t keylen);

/* The address as bound, in the syntax above (a tcp port 0 replaced by the
 * port the kernel chose); NULL for NULL. */
MP_EXTERN const char *mp_listener_address(const mp_listener *l);

/* Take the next client and authenticate it.
 * Return: the connection, or NULL with errno ETIMEDOUT (no client in time,
 * or the client stalled in the handshake), EACCES (the client failed the
 * authentication or broke the handshake; the listener goes on), EINVAL,
 * or accept's errno.  Safety: one thread per listener at a time. */
MP_EXTERN mp_conn *mp_listener_accept(mp_listener *l, double timeout_s);

/* The listening socket, to poll for a waiting client; -1 for NULL. */
MP_EXTERN int mp_listener_fileno(const mp_listener *l);

/* Close the listener (connections it made stay open) and remove its socket
 * file when this process created it.  NULL is ignored. */
MP_EXTERN void mp_listener_free(mp_listener *l);

/* Connect to a listener and authenticate (both sides must have the same
 * key, or both none).  timeout_s bounds the connect and the handshake
 * (the server answers once it accepts).
 * Return: the connection, or NULL with errno EINVAL (as mp_listener_new),
 * ECONNREFUSED or ENOENT (nobody listens), EACCES (wrong key, a key on one
 * side only, or a server that broke the handshake), ETIMEDOUT, or
 * connect's errno. */
MP_EXTERN mp_conn *mp_client(const char *address, const void *authkey,
			     size_t keylen, double timeout_s);

/*
 * Waiting on many: Python's multiprocessing.connection.wait().  Fill an
 * array of items, each a connection, listener, process, queue or plain
 * file descriptor; mp_wait() sets .ready on those that are ready:
 *
 *   MP_WAIT_CONN      mp_conn_poll() would return 1
 *   MP_WAIT_LISTENER  a client waits to be accepted
 *   MP_WAIT_PROCESS   the process has ended (its sentinel)
 *   MP_WAIT_QUEUE     a message is queued, or the queue is closed
 *   MP_WAIT_FD        the descriptor polls readable (POLLIN or an error)
 *
 * Everything but queues is a descriptor and the wait is one poll(2) that
 * sleeps until something happens.  Queues are futexes in shared memory,
 * not descriptors, and a poll cannot sleep on them: when the array holds a
 * queue, poll sleeps in slices of 1 ms doubling up to MP_WAIT_QUEUE_SLICE_MS
 * and the queues are checked at every wake, so a message put in a queue is
 * noticed within that slice (the CPU stays idle between slices).
 */
enum {
	MP_WAIT_CONN = 1,
	MP_WAIT_LISTENER,
	MP_WAIT_PROCESS,
	MP_WAIT_QUEUE,
	MP_WAIT_FD,
};

#define MP_WAIT_QUEUE_SLICE_MS 16

typedef struct mp_wait_item {
	int kind;		/* MP_WAIT_* */
	union {
		mp_conn *conn;
		mp_listener *listener;
		mp_process *process;
		mp_queue *queue;
		int fd;
	};
	bool ready;		/* set by mp_wait() */
} mp_wait_item;

/* Wait until at least one item is ready, or timeout_s.
 * Return: how many items are ready (their .ready is true, the others
 * false); 0 when none was in time; -EINVAL (NULL with n > 0, an unknown
 * kind, a NULL object, a process never started); -EBADF (a closed
 * connection or a negative fd); -ENOMEM.
 * Safety: any thread; blocks in poll(2). */
MP_EXTERN int mp_wait(mp_wait_item *items, size_t n, double timeout_s);

MP_END_DECLS

#endif
