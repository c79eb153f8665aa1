/* SPDX-License-Identifier: MIT */
/*
 * The spawn start method: a fresh image of the program (/proc/self/exe)
 * that runs one target and _exit()s, never reaching main().
 *
 * Parent: the request (start.c's blob) goes into a memfd; posix_spawn
 * (clone(CLONE_VM | CLONE_VFORK) in glibc: safe in a threaded parent, and
 * no page-table copy) execs the program with the blob's, the arena's and a
 * status pipe's descriptors kept open, named in MP_SPAWN_FDS.  The parent
 * then reads the status: 0 once the child mapped the arena and found its
 * target, or the child's -errno (the child leaves with 127 and is reaped
 * here), or end-of-file when it died before (-ECHILD).  So a start that
 * returns 0 has a child that runs the target.
 *
 * Child: a constructor of the library (spawn_child below) sees
 * MP_SPAWN_FDS before main, removes it from the environment (its own
 * children are not spawn children), maps the arena at the parent's address
 * (MAP_FIXED_NOREPLACE), resolves the target, reports and runs it.  If the
 * parent's address is taken in the new image (ASLR put a library there:
 * rare, the arena is one range in 128 TiB), the child reports -EEXIST and
 * the parent tries again with a new image, up to SPAWN_TRIES times.
 *
 * The constructor runs after those of the objects loaded before the
 * library (libc, shared libraries the program links; with the static
 * library, the program's own constructors too), before those after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "start.h"

#define ENV_NAME "MP_SPAWN_FDS"
#define SPAWN_TRIES 4

extern char **environ;

/* environ with ours first (and any stale MP_SPAWN_FDS left out). */
static char **make_env(const char *ours)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = malloc((n + 2) * sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	env[k++] = (char *)ours;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], ENV_NAME "=", sizeof(ENV_NAME)) != 0)
			env[k++] = environ[i];
	env[k] = NULL;
	return env;
}

static int spawn_once(int blobfd, int arenafd, void *base, size_t len,
		      int keep_fd, pid_t *pidp, int *pidfdp)
{
	int st[2];
	if (pipe2(st, O_CLOEXEC))
		return -errno;
	char ours[160];
	snprintf(ours, sizeof(ours), ENV_NAME "=%d,%d,%d,%lx,%zx", blobfd,
		 arenafd, st[1], (unsigned long)(uintptr_t)base, len);
	char **env = make_env(ours);
	posix_spawn_file_actions_t fa;
	int r = -ENOMEM;
	if (!env || posix_spawn_file_actions_init(&fa)) {
		free(env);
		close(st[0]);
		close(st[1]);
		return -ENOMEM;
	}
	/* dup2 onto itself clears close-on-exec in the child only. */
	posix_spawn_file_actions_adddup2(&fa, blobfd, blobfd);
	posix_spawn_file_actions_adddup2(&fa, arenafd, arenafd);
	posix_spawn_file_actions_adddup2(&fa, st[1], st[1]);
	if (keep_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, keep_fd, keep_fd);
	char *argv[] = {(char *)"multiproc-spawn", NULL};
	pid_t pid;
	r = -posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(st[1]);
	if (r) {
		close(st[0]);
		return r;
	}
	int32_t status;
	ssize_t n;
	while ((n = read(st[0], &status, sizeof(status))) < 0 && errno == EINTR)
		;
	close(st[0]);
	if (n != (ssize_t)sizeof(status))
		status = -ECHILD; /* died before it could say */
	if (status == 0) {
		int fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (fd < 0) {
			r = -errno;
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return r;
		}
		*pidp = pid;
		*pidfdp = fd;
		return 0;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return status;
}

int mp__spawn_launch(const struct mp__launch *l, pid_t *pid, int *pidfd)
{
	void *base;
	size_t len;
	int arenafd = mp__arena_share(&base, &len);
	if (arenafd < 0)
		return arenafd;
	int err = 0;
	size_t blen;
	void *blob = mp__blob_make(l, &blen, &err);
	if (!blob)
		return err;
	int blobfd = memfd_create("multiproc-spawn", MFD_CLOEXEC);
	if (blobfd < 0) {
		err = -errno;
		free(blob);
		return err;
	}
	ssize_t w = pwrite(blobfd, blob, blen, 0);
	free(blob);
	if (w != (ssize_t)blen) {
		close(blobfd);
		return w < 0 ? -errno : -EIO;
	}
	int r = -EEXIST;
	for (int i = 0; i < SPAWN_TRIES && r == -EEXIST; i++)
		r = spawn_once(blobfd, arenafd, base, len, l->keep_fd, pid,
			       pidfd);
	close(blobfd);
	return r;
}

/* ---- in the child ---- */

static void report(int fd, int32_t status)
{
	ssize_t n = write(fd, &status, sizeof(status));
	(void)n; /* the parent is gone: nobody to tell */
}

__attribute__((constructor)) static void spawn_child(void)
{
	const char *e = getenv(ENV_NAME);
	if (!e)
		return;
	int blobfd, arenafd, stfd;
	unsigned long base;
	size_t len;
	if (sscanf(e, "%d,%d,%d,%lx,%zx", &blobfd, &arenafd, &stfd, &base,
		   &len) != 5)
		_exit(127);
	unsetenv(ENV_NAME);
	fcntl(stfd, F_SETFD, FD_CLOEXEC);
	int r = mp__arena_adopt(arenafd, (void *)(uintptr_t)base, len);
	fcntl(arenafd, F_SETFD, FD_CLOEXEC); /* kept: for its own spawns */
	if (r) {
		report(stfd, r);
		_exit(127);
	}
	struct stat sb;
	void *blob = NULL;
	if (fstat(blobfd, &sb) == 0 && sb.st_size > 0)
		blob = malloc((size_t)sb.st_size);
	if (!blob || pread(blobfd, blob, (size_t)sb.st_size, 0) != sb.st_size) {
		report(stfd, -EIO);
		_exit(127);
	}
	close(blobfd);
	struct mp__child c;
	r = mp__blob_parse(blob, (size_t)sb.st_size, &c);
	if (r) {
		report(stfd, r);
		_exit(127);
	}
	if (c.keep_fd >= 0)
		fcntl(c.keep_fd, F_SETFD, FD_CLOEXEC);
	report(stfd, 0);
	close(stfd);
	mp__child_run(&c); /* blob stays: c points into it */
}
