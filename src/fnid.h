/* SPDX-License-Identifier: MIT */
#ifndef MP_FNID_H
#define MP_FNID_H

/*
 * Function identity across images: a function of the program named so that
 * another process running the same executable and libraries can find it,
 * whatever addresses its loader chose (ASLR, an exec'd spawn child, an MPI
 * rank on another machine).  The name is the loaded object's GNU build-id
 * and the function's offset from the object's load base.
 *
 * Exported (not hidden) under the MULTIPROC_PRIVATE symbol version for
 * libmultiproc-mpi; never installed, no stable ABI.
 */

#include <link.h>
#include <stddef.h>
#include <stdint.h>

#define MP__FNID_BUILD_ID_MAX 32

struct mp__fnid {
	uint64_t offset;     /* from the object's load base */
	uint8_t id_len;      /* bytes of build_id used (20 for sha1) */
	uint8_t build_id[MP__FNID_BUILD_ID_MAX];
};

/* Any function, as a generic code pointer. */
typedef void (*mp__fn)(void);

/* Name the function fn.  Return: 0, -EINVAL (NULL), -ENOENT (fn is not
 * in the executable code of any loaded object), -ENOTSUP (its object has
 * no build-id: link with -Wl,--build-id, the default on Debian). */
__attribute__((visibility("default"))) int
mp__fnid_of(mp__fn fn, struct mp__fnid *id);

/* The address of the function named id in this process.  Return: 0,
 * -EINVAL (NULL, bad length), -ENOENT (no loaded object has that build-id:
 * another program, a library not loaded here), -EFAULT (the offset is not
 * in the object's executable code: a forged or damaged name). */
__attribute__((visibility("default"))) int
mp__fnid_resolve(const struct mp__fnid *id, mp__fn *fn);

/* The GNU build-id note of a loaded object: its length (0: none) and,
 * in *out, its bytes in the object's mapped notes. */
__attribute__((visibility("hidden"))) size_t
mp__fnid_build_id(const struct dl_phdr_info *info, const uint8_t **out);

#endif
