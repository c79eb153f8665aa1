/* SPDX-License-Identifier: MIT */
#ifndef MP_MPI_INTERNAL_H
#define MP_MPI_INTERNAL_H

/*
 * The wire protocol between rank 0 and the worker ranks (mpi-pool.c,
 * mpi-worker.c), all on MPI_COMM_WORLD.
 *
 * rank 0 -> worker, TAG_TASK: one chunk:
 *	struct task_hdr
 *	JOB_BUFS only: count struct buf_item (in_len used)
 *	the chunk's input bytes
 * rank 0 -> worker, TAG_STOP: no bytes; the worker finalizes and exits.
 * worker -> rank 0, in the order the chunks came:
 *	TAG_RES (JOB_MAP, JOB_APPLY): struct chunk_rec (state 0), then the
 *	results (a map: count * out_size bytes; an apply: its result's
 *	length, at most cap), then for a map with want_errs count int32
 *	errors
 *	TAG_BUFS (JOB_BUFS): struct bufs_hdr, count struct bufs_res, then
 *	the results' bytes one after the other
 * Both sides are the same program built from the same tree, so the
 * structs travel as bytes.
 */
#include <mpi.h>

#include "../fnid.h"
#include "../pool-internal.h"

enum { TAG_TASK = 1, TAG_STOP = 2, TAG_RES = 3, TAG_BUFS = 4 };

struct task_hdr {
	uint32_t kind; /* JOB_MAP, JOB_APPLY, JOB_BUFS */
	uint32_t want_errs;
	uint64_t lo, count;         /* first item, items */
	uint64_t in_size, out_size; /* map: per item; apply: len, cap */
	uint64_t seq;               /* echoed in a bufs result */
	struct mp__fnid fn;
};

struct bufs_hdr {
	struct chunk_rec rec;
	uint64_t seq;
};

struct bufs_res {
	int32_t err;
	uint32_t pad;
	uint64_t len;
};

/* mpi-worker.c: serve rank 0 until TAG_STOP. */
void mp__mpi_serve(const mp_pool_opts *opts);

/* Idle waiting, both sides: spin, then yield, then nap (see DESIGN in
 * mpi-pool.c).  ns: how long we have been idle. */
void mp__mpi_idle(int64_t idle_ns);

#endif
