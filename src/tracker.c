/* SPDX-License-Identifier: MIT */
/*
 * The resource tracker: named segments whose creator died without
 * unlinking them are unlinked (Python's resource_tracker, without its
 * bpo-82300 bug: only the creator's registration counts, so an attacher's
 * exit never removes a segment).
 *
 * Where it lives: a small process of its own, forked at the first
 * mp_shm_create of a process that has no tracker yet, and shared by that
 * process's fork children (and forkserver children, when the server was
 * forked after it) through one end of a SOCK_SEQPACKET socketpair they all
 * inherit.  Not in the forkserver: the tracker must outlive the program's
 * main process, which the server does not (it dies with it), and fork-only
 * programs need it too.  A spawn child (exec) has its own tracker, as the
 * end is close-on-exec.
 *
 * Messages: "created NAME", "unlinked NAME", "keep NAME" (the creator opts
 * out: forget it, never unlink).  The tracker learns the sender from the
 * kernel (SCM_CREDENTIALS), never from the message, and watches each
 * creator with a pidfd: when the creator ends, what it still had
 * registered is unlinked.  When every process holding the other end is
 * gone (end-of-file), whatever is left is unlinked and the tracker exits,
 * which for a program whose children all ended is when its main process
 * exits.  A segment whose creator still runs is not unlinked because the
 * main process exited.
 *
 * The tracker is forked from a program that may have threads; it uses
 * only system calls and malloc (which glibc makes safe across fork).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tracker.h"

#define NAME_LEN 256

struct msg {
	uint32_t op;
	char name[NAME_LEN];
};

static pthread_mutex_t trk_lock = PTHREAD_MUTEX_INITIALIZER;
static int trk_fd = -1;
static pid_t trk_pid; /* for tests: the tracker of this process */

void mp__tracker_atfork_child(void)
{
	/* The end stays: fork children report to the same tracker. */
	pthread_mutex_init(&trk_lock, NULL);
}

/* ---- the tracker process ---- */

struct entry {
	char name[NAME_LEN];
	pid_t pid;
	int pidfd;
	bool dead; /* its pidfd was readable, or it was gone before we
		      looked: unlink once the queued messages are read */
};

static struct entry *ents;
static size_t nents, capents;

static void drop(size_t i, bool unlink_it)
{
	if (unlink_it)
		shm_unlink(ents[i].name);
	if (ents[i].pidfd >= 0)
		close(ents[i].pidfd);
	ents[i] = ents[--nents];
}

static void on_msg(const struct msg *m, pid_t from)
{
	if (m->op == MP__TRACK_CREATED) {
		if (nents == capents) {
			size_t c = capents ? 2 * capents : 16;
			struct entry *e = realloc(ents, c * sizeof(*e));
			if (!e)
				return;
			ents = e;
			capents = c;
		}
		struct entry *e = &ents[nents++];
		memcpy(e->name, m->name, NAME_LEN);
		e->pid = from;
		e->dead = false;
		e->pidfd = (int)syscall(SYS_pidfd_open, from, 0);
		/* Already gone (ESRCH: dead and reaped before we got here):
		 * unlinked like any dead creator's, once every queued
		 * message is read, not now: its "keep" may be next. */
		e->dead = e->pidfd < 0;
		return;
	}
	/* Unlinked (by anyone) or kept (by its creator): forget it. */
	for (size_t i = 0; i < nents; i++)
		if (strcmp(ents[i].name, m->name) == 0 &&
		    (m->op == MP__TRACK_UNLINKED || ents[i].pid == from)) {
			drop(i, false);
			return;
		}
}

/* Every message queued on sock, without blocking.  End-of-file (nobody
 * holds the other end) unlinks what is left and ends the tracker. */
static void read_messages(int sock)
{
	for (;;) {
		struct msg m;
		struct iovec iov = {&m, sizeof(m)};
		union {
			char buf[CMSG_SPACE(sizeof(struct ucred))];
			struct cmsghdr align;
		} u;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf)};
		ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* Nobody left to unlink anything: all of it goes. */
			while (nents)
				drop(nents - 1, true);
			_exit(0);
		}
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (n != (ssize_t)sizeof(m) || !c ||
		    c->cmsg_type != SCM_CREDENTIALS)
			continue;
		struct ucred cr;
		memcpy(&cr, CMSG_DATA(c), sizeof(cr));
		m.name[NAME_LEN - 1] = '\0';
		if (m.name[0] == '/')
			on_msg(&m, cr.pid);
	}
}

static _Noreturn void track(int sock)
{
	prctl(PR_SET_NAME, "mp-tracker");
	/* Not killed with the program's terminal signals: it must run
	 * after them to clean up. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	struct pollfd *pfds = NULL;
	for (;;) {
		pfds = realloc(pfds, (nents + 1) * sizeof(*pfds));
		if (!pfds)
			_exit(1);
		pfds[0] = (struct pollfd){.fd = sock, .events = POLLIN};
		for (size_t i = 0; i < nents; i++)
			pfds[i + 1] = (struct pollfd){.fd = ents[i].pidfd,
						      .events = POLLIN};
		if (poll(pfds, nents + 1, -1) < 0)
			continue;
		/* Deaths seen by this poll are acted on only after every
		 * message queued so far is read: a creator's last "keep" or
		 * "unlinked" was queued before its pidfd became readable, so
		 * it is read here and honoured (else a creator that unlinked
		 * and died could take a namesake made since with it). */
		for (size_t i = 0; i < nents; i++)
			if (pfds[i + 1].revents)
				ents[i].dead = true;
		/* Always: poll may have looked at sock before a message
		 * that a death it saw later came after. */
		read_messages(sock);
		for (size_t i = nents; i-- > 0;) /* drop moves the last */
			if (ents[i].dead)
				drop(i, true);
	}
}

/* ---- the program's side ---- */

static int start_locked(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	int one = 1;
	if (setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one))) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		/* Only the socket: no other descriptor of the program
		 * (a pipe's write end) is kept open by the tracker. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != sv[1])
				close(fd);
		/* Reparented at once: the program need not reap it. */
		pid_t g = fork();
		if (g != 0)
			_exit(g < 0);
		pid_t me = getpid();
		if (send(sv[1], &me, sizeof(me), MSG_NOSIGNAL) != sizeof(me))
			_exit(1);
		track(sv[1]);
	}
	close(sv[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	/* Its first message is its pid (end-of-file: it did not start). */
	pid_t tp;
	ssize_t n;
	while ((n = recv(sv[0], &tp, sizeof(tp), 0)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(tp)) {
		close(sv[0]);
		return -EIO;
	}
	trk_pid = tp;
	trk_fd = sv[0];
	return 0;
}

pid_t mp__tracker_pid(void)
{
	pthread_mutex_lock(&trk_lock);
	pid_t p = trk_fd >= 0 ? trk_pid : 0;
	pthread_mutex_unlock(&trk_lock);
	return p;
}

int mp__tracker_send(int op, const char *name)
{
	struct msg m;
	memset(&m, 0, sizeof(m));
	m.op = (uint32_t)op;
	size_t len = strlen(name);
	if (len >= NAME_LEN)
		return -EINVAL;
	memcpy(m.name, name, len);
	pthread_mutex_lock(&trk_lock);
	int r = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (trk_fd < 0) {
			if (op != MP__TRACK_CREATED)
				break; /* nothing tracked here */
			if ((r = start_locked()))
				break;
		}
		ssize_t n = send(trk_fd, &m, sizeof(m), MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof(m)) {
			r = 0;
			break;
		}
		r = n < 0 ? -errno : -EIO;
		/* The tracker died: what it knew is lost; start anew. */
		close(trk_fd);
		trk_fd = -1;
	}
	pthread_mutex_unlock(&trk_lock);
	return r;
}
