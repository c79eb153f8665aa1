/* SPDX-License-Identifier: MIT */
/*
 * mp_wait: Python's multiprocessing.connection.wait over poll(2).
 *
 * Connections, listeners, process sentinels (pidfds) and plain fds are
 * descriptors: one poll sleeps on all of them.  A connection may hold a
 * whole item already read (conn.c's read-ahead), which no poll would
 * report: those are ready before any poll.  Queues are futexes in shared
 * memory, and a thread can sleep on one futex or in one poll, not both;
 * rather than a helper thread per queue, the poll sleeps in short slices
 * (1 ms, doubling up to MP_WAIT_QUEUE_SLICE_MS) and the queues are looked
 * at on every wake.  Without a queue there are no slices.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "conn.h"

#define ON_STACK 16

/* The descriptor an item polls; -EINVAL, -EBADF. */
static int item_fd(mp_wait_item *it)
{
	int fd;

	switch (it->kind) {
	case MP_WAIT_CONN:
		if (!it->conn)
			return -EINVAL;
		fd = mp_conn_fileno(it->conn);
		break;
	case MP_WAIT_LISTENER:
		if (!it->listener)
			return -EINVAL;
		fd = mp_listener_fileno(it->listener);
		break;
	case MP_WAIT_PROCESS:
		if (!it->process)
			return -EINVAL;
		fd = mp_process_sentinel(it->process);
		if (fd < 0)
			return -EINVAL;
		break;
	case MP_WAIT_FD:
		fd = it->fd;
		break;
	default:
		return -EINVAL;
	}
	return fd < 0 ? -EBADF : fd;
}

/* Mark the ready items from what is known without sleeping. */
static int mark(mp_wait_item *items, size_t n, struct pollfd *p)
{
	int ready = 0;

	for (size_t i = 0; i < n; i++) {
		mp_wait_item *it = &items[i];
		if (it->kind == MP_WAIT_QUEUE)
			it->ready = !mp_queue_empty(it->queue) ||
				    mp_queue_is_closed(it->queue);
		else if (it->kind == MP_WAIT_CONN && mp__conn_buffered(it->conn))
			it->ready = true;
		else
			it->ready = p[i].revents != 0;
		ready += it->ready;
	}
	return ready;
}

int mp_wait(mp_wait_item *items, size_t n, double timeout_s)
{
	struct pollfd stack[ON_STACK], *p = stack;
	bool queues = false;
	int r;

	if ((!items && n) || !mp__timeout_ok(timeout_s))
		return -EINVAL;
	if (n > ON_STACK && !(p = calloc(n, sizeof(*p))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		p[i] = (struct pollfd){.fd = -1, .events = POLLIN};
		if (items[i].kind == MP_WAIT_QUEUE) {
			if (!items[i].queue) {
				r = -EINVAL;
				goto out;
			}
			queues = true;
			continue;
		}
		r = item_fd(&items[i]);
		if (r < 0)
			goto out;
		p[i].fd = r;
	}
	mp__deadline deadline = mp__deadline_in(timeout_s);
	int64_t slice_ns = 1000000;
	for (;;) {
		r = mark(items, n, p);
		if (r)
			break;
		mp__deadline until = deadline;
		if (queues) {
			until = mp__deadline_min_slice(deadline, slice_ns);
			if (slice_ns < MP_WAIT_QUEUE_SLICE_MS * 1000000LL)
				slice_ns *= 2;
		}
		int pr = poll(p, (nfds_t)n, mp__remaining_ms(until));
		if (pr < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (pr > 0)
			continue;
		for (size_t i = 0; i < n; i++)
			p[i].revents = 0;
		if (deadline != MP__NEVER && mp__now_ns() >= deadline) {
			r = mark(items, n, p);
			break;
		}
	}
out:
	if (p != stack)
		free(p);
	return r;
}
