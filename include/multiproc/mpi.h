/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_MPI_H
#define MULTIPROC_MPI_H

/*
 * The pool beyond one machine: libmultiproc-mpi (pkg-config
 * multiproc-mpi, CMake multiproc::mpi), over Open MPI.
 *
 * Run the same program on N ranks (mpirun -np N ./app, a hostfile for
 * several machines).  mp_mpi_pool_new is collective over MPI_COMM_WORLD:
 * on rank 0 it returns an mp_pool whose N - 1 workers are the other ranks,
 * and every mp_pool_* call works on it as on a local pool (map, map_bufs,
 * imap, imap_source, apply_async, map_async, callbacks, poll, wait_any,
 * close, join, terminate, free).  On the other ranks it never returns: they
 * run the tasks rank 0 sends and, once rank 0 frees the pool, finalize MPI
 * and exit(0) inside the call.
 *
 * Task functions travel as (build-id, offset) of the function in its
 * object, so every rank must run the same executable and libraries (the
 * same files, not just the same version).  Inputs and results travel as
 * bytes: a chunk of a map is one message each way; a synchronous map's
 * input is sent from the caller's array and its results land in out.
 *
 * Faults: with Open MPI a rank that dies ends the whole job (mpirun kills
 * the other ranks and exits non-zero); there is no MP_EWORKER and no
 * replacement, so opts.retries and maxtasksperchild have no effect.
 * opts.task_timeout still bounds a task: rank 0 measures each chunk from
 * when its rank took it (the result of the one before came back) and,
 * past the limit, prints which rank and how long and ends the job
 * (MPI_Abort, exit status 124): a hung rank cannot be killed or replaced
 * from rank 0, and MPI cannot finalize with it.
 *
 * Threads: rank 0 drives the pool from one thread, as a local pool; MPI is
 * initialized with MPI_Init (MPI_THREAD_SINGLE) unless the program did it
 * itself before.  If this call initialized MPI, freeing the pool
 * finalizes it on rank 0 too (free the pool before exiting, or the other
 * ranks wait for it forever).
 */
#include <multiproc.h>

MP_BEGIN_DECLS

/* The pool over MPI_COMM_WORLD; argc and argv as for MPI_Init (may be
 * NULL).
 * Return: on rank 0 the pool (mp_pool_free), with mp_pool_processes() ==
 * ranks - 1; on other ranks no return (exit(0) after rank 0 freed the
 * pool).  NULL with errno EINVAL (a 1-rank job: no worker; every rank of a
 * job with bad opts), ENOMEM, EIO (MPI failed).
 * Safety: the main thread, once per program, on every rank. */
MP_EXTERN mp_pool *mp_mpi_pool_new(int *argc, char ***argv);

/* The same with options (NULL = defaults): processes must be 0 or ranks -
 * 1; initializer runs on each worker rank (with that rank's initargs)
 * before it serves; task_timeout as above; retries and maxtasksperchild
 * are accepted and have no effect. */
MP_EXTERN mp_pool *mp_mpi_pool_new_opts(int *argc, char ***argv,
					const mp_pool_opts *opts);

MP_END_DECLS

#endif
