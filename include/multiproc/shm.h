/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_SHM_H
#define MULTIPROC_SHM_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * The shared arena: one MAP_SHARED mapping, made by the first call into the
 * library that needs it and at the latest by the first mp_process_start(),
 * so every process forked afterwards sees the same bytes at the same
 * address.  Its size is reserved, not committed: pages cost memory only once
 * touched.  The default is 256 MiB; set MP_SHARED_SIZE (bytes, or with a K,
 * M or G suffix) in the environment, or call mp_shared_set_size() before
 * the arena exists.  The size is rounded down to a power of two; a size in
 * the environment outside 64 KiB..64 GiB is ignored (the default is used).
 *
 * The allocator is a buddy allocator under a process-shared lock: blocks are
 * powers of two from 64 bytes, freed blocks coalesce with their buddies and
 * are reused, and any process that maps the arena may allocate or free.
 */

/* A block of at least `size` zeroed bytes, 16-byte aligned, shared with
 * every process forked from now on.  Return: NULL with errno ENOMEM when the
 * arena is full, EINVAL when size is 0.
 * Safety: any thread of any process that shares the arena; may block
 * briefly on the arena's lock. */
MP_EXTERN void *mp_shared_alloc(size_t size);

/* Give back a block from mp_shared_alloc; NULL is ignored, so is a pointer
 * the arena did not hand out.  Any process may free any block. */
MP_EXTERN void mp_shared_free(void *p);

/* Set the arena's size before it exists.  Return: 0, -EBUSY once the arena
 * exists, -EINVAL for a size under 64 KiB or over 64 GiB. */
MP_EXTERN int mp_shared_set_size(size_t bytes);

/* Bytes the arena can hand out in all, and bytes now handed out (block
 * sizes, so a 100-byte request counts 128). */
MP_EXTERN size_t mp_shared_capacity(void);
MP_EXTERN size_t mp_shared_used(void);

/*
 * Named segments, like Python's multiprocessing.shared_memory: POSIX shared
 * memory that unrelated processes open by name.  An mp_shm is a
 * process-local handle: each process creates or attaches its own.  The
 * segment itself lives until it is unlinked and every process has detached.
 */
typedef struct mp_shm mp_shm;

/* Create a new segment of `size` bytes (zeroed), mode 0600, failing if the
 * name exists.  `name` is a POSIX shm name with or without its leading '/',
 * at most 250 characters and no other '/'; NULL picks a fresh unique name.
 * The pages are reserved now (posix_fallocate), so a segment /dev/shm
 * cannot hold fails here rather than with SIGBUS at the first write.
 * Return: the handle, or NULL with errno EEXIST (the name is taken), EINVAL
 * (bad name or size 0), ENOSPC (no room in /dev/shm), or whatever
 * shm_open/posix_fallocate/mmap said. */
MP_EXTERN mp_shm *mp_shm_create(const char *name, size_t size);

/* Whether the resource tracker unlinks the segment when its creator dies
 * without unlinking it (mp_shm_unlink): on by default for the handle
 * mp_shm_create returned, off to let a segment outlive its creator on
 * purpose (Python's track=False).  Segments are tracked by a small process
 * ("mp-tracker") forked at the first mp_shm_create of a process and shared
 * with its fork children; it unlinks a dead creator's segments within
 * milliseconds of the death, and the rest when every process of the
 * program has ended.  An attacher's exit never unlinks anything.  A
 * creator that could not start the tracker (fork failed) has untracked
 * segments.  Queues and other objects placed in a named segment go with it.
 * Return: 0, -EINVAL (NULL), MP_ESTATE (an attached handle: only the
 * creator decides), or the error of reaching the tracker. */
MP_EXTERN int mp_shm_set_tracked(mp_shm *shm, bool tracked);

/* Attach an existing segment, read-write.  Return: NULL with errno ENOENT
 * when no segment has that name, EINVAL for a bad name. */
MP_EXTERN mp_shm *mp_shm_attach(const char *name);

MP_EXTERN void *mp_shm_addr(const mp_shm *shm);
MP_EXTERN size_t mp_shm_size(const mp_shm *shm);
/* The name with its leading '/', as another process passes it to attach. */
MP_EXTERN const char *mp_shm_name(const mp_shm *shm);

/* Unmap the segment and free the handle (Python's close()).  The segment
 * stays for the others.  Return: 0, -EINVAL for NULL. */
MP_EXTERN int mp_shm_detach(mp_shm *shm);

/* Remove the name; mappings stay valid until detached.  Return: 0,
 * -ENOENT, -EINVAL for a bad name. */
MP_EXTERN int mp_shm_unlink(const char *name);

MP_END_DECLS

#endif
