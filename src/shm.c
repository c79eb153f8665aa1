/* SPDX-License-Identifier: MIT */
/*
 * Named shared memory segments (POSIX shm_open), Python's SharedMemory.
 * The handle is process-local; the bytes are the caller's, with no header
 * of ours, so any program that maps the name sees exactly what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "tracker.h"

#define NAME_MAX_LEN 251 /* with the leading '/', as NAME_MAX allows */

struct mp_shm {
	void *addr;
	size_t size;
	bool creator; /* made by mp_shm_create: the tracker knows it */
	bool tracked;
	char name[NAME_MAX_LEN + 1];
};

/* Normalize to "/name".  Return: 0 or -EINVAL. */
static int normalize(const char *name, char out[NAME_MAX_LEN + 1])
{
	if (!name)
		return -EINVAL;
	if (name[0] == '/')
		name++;
	size_t len = strlen(name);
	if (len == 0 || len >= NAME_MAX_LEN || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	out[0] = '/';
	memcpy(out + 1, name, len + 1);
	return 0;
}

static void fresh_name(char out[NAME_MAX_LEN + 1])
{
	static _Atomic unsigned counter;
	unsigned n = atomic_fetch_add(&counter, 1);

	snprintf(out, NAME_MAX_LEN + 1, "/mp-%d-%u-%llx", (int)getpid(), n,
		 (unsigned long long)mp__now_ns());
}

static mp_shm *map_fd(int fd, const char *name, size_t size)
{
	mp_shm *shm = malloc(sizeof(*shm));
	if (!shm)
		return NULL;
	shm->addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shm->addr == MAP_FAILED) {
		free(shm);
		return NULL;
	}
	shm->size = size;
	shm->creator = false;
	shm->tracked = false;
	strcpy(shm->name, name);
	return shm;
}

mp_shm *mp_shm_create(const char *name, size_t size)
{
	char norm[NAME_MAX_LEN + 1];
	int r = name ? normalize(name, norm) : 0;

	if (r || size == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (!name)
		fresh_name(norm);
	int fd = shm_open(norm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	/* Reserve the pages, not just the size: a sparse segment larger than
	 * what /dev/shm has free would be created fine and then kill the
	 * first process that touches a page it cannot get (SIGBUS).  So a
	 * segment that does not fit fails here, with ENOSPC. */
	mp_shm *shm = NULL;
	r = size > (size_t)INT64_MAX ? EFBIG
				     : posix_fallocate(fd, 0, (off_t)size);
	if (r == 0)
		shm = map_fd(fd, norm, size);
	else
		errno = r;
	int saved = errno;
	close(fd);
	if (!shm) {
		shm_unlink(norm);
		errno = saved;
		return NULL;
	}
	shm->creator = true;
	/* Untracked if the tracker cannot start: the segment still works. */
	shm->tracked = mp__tracker_send(MP__TRACK_CREATED, norm) == 0;
	errno = saved;
	return shm;
}

int mp_shm_set_tracked(mp_shm *shm, bool tracked)
{
	if (!shm)
		return -EINVAL;
	if (!shm->creator)
		return MP_ESTATE;
	if (tracked == shm->tracked)
		return 0;
	int r = mp__tracker_send(tracked ? MP__TRACK_CREATED : MP__TRACK_KEEP,
				 shm->name);
	if (r == 0)
		shm->tracked = tracked;
	return r;
}

mp_shm *mp_shm_attach(const char *name)
{
	char norm[NAME_MAX_LEN + 1];
	struct stat st;

	if (normalize(name, norm)) {
		errno = EINVAL;
		return NULL;
	}
	int fd = shm_open(norm, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	mp_shm *shm = NULL;
	if (fstat(fd, &st) == 0) {
		if (st.st_size > 0)
			shm = map_fd(fd, norm, (size_t)st.st_size);
		else
			errno = EINVAL;
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return shm;
}

void *mp_shm_addr(const mp_shm *shm)
{
	return shm ? shm->addr : NULL;
}

size_t mp_shm_size(const mp_shm *shm)
{
	return shm ? shm->size : 0;
}

const char *mp_shm_name(const mp_shm *shm)
{
	return shm ? shm->name : NULL;
}

int mp_shm_detach(mp_shm *shm)
{
	if (!shm)
		return -EINVAL;
	munmap(shm->addr, shm->size);
	free(shm);
	return 0;
}

int mp_shm_unlink(const char *name)
{
	char norm[NAME_MAX_LEN + 1];

	if (normalize(name, norm))
		return -EINVAL;
	if (shm_unlink(norm))
		return -errno;
	mp__tracker_send(MP__TRACK_UNLINKED, norm);
	return 0;
}
