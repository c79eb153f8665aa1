/* SPDX-License-Identifier: MIT */
#ifndef MULTIPROC_H
#define MULTIPROC_H

/*
 * multiproc: Python's multiprocessing for C on Linux.
 *
 * The one header programs include.  Conventions (errors as negative return
 * values, timeouts in seconds, what may be shared between processes and
 * threads) are in multiproc/common.h; each area has its own section:
 */
#include "multiproc/common.h"
#include "multiproc/shm.h"
#include "multiproc/process.h"
#include "multiproc/sync.h"
#include "multiproc/queue.h"
#include "multiproc/conn.h"
#include "multiproc/pool.h"

#endif
