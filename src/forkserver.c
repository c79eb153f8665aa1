/* SPDX-License-Identifier: MIT */
/*
 * The forkserver start method.
 *
 * The server is a fork of the program made at
 * mp_set_start_method(MP_START_FORKSERVER) (or at the first forkserver
 * start), while the program is small and, the caller says, has one thread.
 * It waits on its end of a UNIX socketpair; only the program holds the
 * other end (close-on-exec, and closed in every fork child by our atfork
 * hook), and the server checks the peer's credentials (SO_PEERCRED at
 * start, SCM_CREDENTIALS on each request: the program's pid and uid) as
 * Python checks its authkey.
 *
 * For each request (start.c's blob) the server resolves the target in its
 * own image and clones a child with CLONE_PARENT, so the child is a child
 * of the program itself, not of the server: the program waits for it with
 * waitid, gets its exit status and SIGCHLD, and a daemon child's
 * PR_SET_PDEATHSIG watches the program, exactly as for a fork child.  The
 * server sends back the pid and the pidfd (CLONE_PIDFD, SCM_RIGHTS).  A
 * server that died (SIGKILL, a crash) shows as EPIPE or end-of-file on the
 * socket: the program reaps it, forks a new server from what the program is
 * now, and tries once more; a server that does not answer within
 * REPLY_TIMEOUT_MS is an -ETIMEDOUT, never a hang.
 *
 * The server's children come from a raw clone (glibc has no fork with
 * clone flags), so no pthread_atfork handler runs in them and glibc's
 * cached thread id of the main thread (pthread_self()) is the server's;
 * gettid(), getpid() and the library's own ids are right.  The server is
 * single-threaded and holds no lock when it clones, which is why this is
 * safe at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "start.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#define REPLY_TIMEOUT_MS 30000
#define MAX_REQUEST ((uint64_t)1 << 31)

static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t fs_pid;
static int fs_sock = -1;

struct reply {
	int32_t status;
	int32_t pid;
};

void mp__forkserver_atfork_child(void)
{
	/* The server answers the program only; a fork child makes its
	 * own if it wants one. */
	if (fs_sock >= 0)
		close(fs_sock);
	fs_sock = -1;
	fs_pid = 0;
	pthread_mutex_init(&fs_lock, NULL);
}

pid_t mp__forkserver_pid(void)
{
	pthread_mutex_lock(&fs_lock);
	pid_t p = fs_pid;
	pthread_mutex_unlock(&fs_lock);
	return p;
}

/* ---- the server ---- */

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* sendmsg of len bytes with fd passed along (SCM_RIGHTS) when fd >= 0;
 * retried on EINTR.  Return: sendmsg's. */
static ssize_t send_with_fd(int sock, void *buf, size_t len, int fd)
{
	struct iovec iov = {buf, len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n;
}

/* recvmsg of len bytes (MSG_WAITALL), retried on EINTR; *fd is the
 * descriptor that came along (SCM_RIGHTS, close-on-exec) or -1, and with
 * cr set, *cr_ok says whether SCM_CREDENTIALS came and *cr holds them.
 * Return: recvmsg's. */
static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd,
			    struct ucred *cr, bool *cr_ok)
{
	struct iovec iov = {buf, len};
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
			 CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	while ((n = recvmsg(sock, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	*fd = -1;
	if (cr_ok)
		*cr_ok = false;
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS && cr) {
			memcpy(cr, CMSG_DATA(c), sizeof(*cr));
			*cr_ok = true;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			memcpy(fd, CMSG_DATA(c), sizeof(int));
		}
	}
	return n;
}

static void send_reply(int sock, int32_t status, pid_t pid, int pidfd)
{
	struct reply rep = {status, (int32_t)pid};
	(void)send_with_fd(sock, &rep, sizeof(rep), pidfd);
}

/* One request: its length (with the sender's credentials), then the blob.
 * Return: the blob (malloc()ed) or NULL at end-of-file or a bad peer. */
static void *recv_request(int sock, pid_t parent, size_t *lenp, int *fdp)
{
	uint64_t len;
	struct ucred cr;
	bool have_cr;
	ssize_t n = recv_with_fd(sock, &len, sizeof(len), fdp, &cr, &have_cr);
	if (n != (ssize_t)sizeof(len) || !have_cr || cr.pid != parent ||
	    cr.uid != getuid()) {
		if (*fdp >= 0)
			close(*fdp);
		return NULL;
	}
	void *blob = len && len <= MAX_REQUEST ? malloc(len) : NULL;
	if (!blob || read_full(sock, blob, len)) {
		free(blob);
		if (*fdp >= 0)
			close(*fdp);
		return NULL;
	}
	*lenp = len;
	return blob;
}

static _Noreturn void serve(int sock, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "mp-forkserver");
	/* A terminal's ^C is the program's to handle, not a reason for
	 * the server to die (Python's server ignores it too); children get
	 * the program's disposition back. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, saved_int;
	sigaction(SIGINT, &ign, &saved_int);
	struct ucred peer;
	socklen_t sl = sizeof(peer);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &sl) ||
	    peer.pid != parent || peer.uid != getuid())
		_exit(1);
	for (;;) {
		size_t len;
		int kfd;
		void *blob = recv_request(sock, parent, &len, &kfd);
		if (!blob)
			_exit(0);
		struct mp__child c;
		int r = mp__blob_parse(blob, len, &c);
		if (!r && (c.keep_fd >= 0) != (kfd >= 0))
			r = -EPROTO;
		if (r) {
			free(blob);
			if (kfd >= 0)
				close(kfd);
			send_reply(sock, r, 0, -1);
			continue;
		}
		int pidfd = -1;
		long pid = syscall(SYS_clone,
				   CLONE_PARENT | CLONE_PIDFD | SIGCHLD, 0,
				   &pidfd, 0, 0);
		if (pid == 0) {
			close(sock);
			/* At the number the parent has it (what shared
			 * memory names it by). */
			if (kfd >= 0 && kfd != c.keep_fd) {
				if (dup3(kfd, c.keep_fd, O_CLOEXEC) < 0)
					_exit(127);
				close(kfd);
			}
			sigaction(SIGINT, &saved_int, NULL);
			mp__self_tid = 0;
			mp__self_lock_id = 0;
			mp__child_run(&c);
		}
		if (kfd >= 0)
			close(kfd);
		free(blob);
		mp__xlate_reset();
		if (pid < 0) {
			send_reply(sock, -errno, 0, -1);
			continue;
		}
		send_reply(sock, 0, (pid_t)pid, pidfd);
		close(pidfd);
	}
}

/* ---- the program's side ---- */

/* Forget a server that died (or is dying: it closed its end). */
static void drop_server(void)
{
	if (fs_sock >= 0)
		close(fs_sock);
	fs_sock = -1;
	if (fs_pid > 0) {
		kill(fs_pid, SIGKILL);
		while (waitpid(fs_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	fs_pid = 0;
}

static int ensure_locked(void)
{
	if (fs_pid > 0) {
		/* Reaped by a waitid of ours?  Gone: start another. */
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		if (waitid(P_PID, (id_t)fs_pid, &info,
			   WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    info.si_pid != 0)
			drop_server();
		else
			return 0;
	}
	int r = mp__arena_ensure();
	if (r)
		return r;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	/* Before the fork: a request may come before the server runs. */
	int one = 1;
	if (setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one))) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	pid_t parent = getpid();
	if (__fpending(stdout))
		fflush(stdout);
	if (__fpending(stderr))
		fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1], parent);
	}
	close(sv[1]);
	fs_sock = sv[0];
	fs_pid = pid;
	return 0;
}

int mp__forkserver_ensure(void)
{
	pthread_mutex_lock(&fs_lock);
	int r = ensure_locked();
	pthread_mutex_unlock(&fs_lock);
	return r;
}

static int send_all(int sock, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The length, with the descriptor to hand on (SCM_RIGHTS), if any. */
static int send_len(int sock, uint64_t len, int fd)
{
	ssize_t n = send_with_fd(sock, &len, sizeof(len), fd);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	return n == (ssize_t)sizeof(len) ? 0 : -EPIPE;
}

static int transact(const void *blob, size_t len, int keep_fd, pid_t *pid,
		    int *pidfd)
{
	int r = send_len(fs_sock, len, keep_fd);
	if (!r)
		r = send_all(fs_sock, blob, len);
	if (r)
		return r;
	struct pollfd pfd = {.fd = fs_sock, .events = POLLIN};
	int pr;
	while ((pr = poll(&pfd, 1, REPLY_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (pr == 0)
		return -ETIMEDOUT;
	struct reply rep;
	int fd;
	ssize_t n = recv_with_fd(fs_sock, &rep, sizeof(rep), &fd, NULL, NULL);
	if (n <= 0)
		return -EPIPE; /* the server died */
	if (n != (ssize_t)sizeof(rep)) {
		if (fd >= 0)
			close(fd);
		return -EPIPE;
	}
	if (rep.status != 0) {
		if (fd >= 0)
			close(fd);
		return rep.status;
	}
	if (fd < 0) {
		/* Our descriptor table was full (MSG_CTRUNC): open it
		 * ourselves; the child is ours and not reaped yet. */
		fd = (int)syscall(SYS_pidfd_open, rep.pid, 0);
		if (fd < 0) {
			r = -errno;
			kill(rep.pid, SIGKILL);
			waitpid(rep.pid, NULL, 0);
			return r;
		}
	}
	*pid = rep.pid;
	*pidfd = fd;
	return 0;
}

int mp__forkserver_launch(const struct mp__launch *l, pid_t *pid, int *pidfd)
{
	int err = 0;
	size_t len;
	void *blob = mp__blob_make(l, &len, &err);
	if (!blob)
		return err;
	pthread_mutex_lock(&fs_lock);
	int r = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		r = ensure_locked();
		if (r)
			break;
		r = transact(blob, len, l->keep_fd, pid, pidfd);
		if (r != -EPIPE)
			break;
		drop_server();
	}
	if (r == -ETIMEDOUT)
		drop_server(); /* a stopped server: do not wait on it twice */
	pthread_mutex_unlock(&fs_lock);
	free(blob);
	return r;
}
