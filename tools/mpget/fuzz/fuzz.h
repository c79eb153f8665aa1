/* SPDX-License-Identifier: MIT */
#ifndef MPGET_FUZZ_H
#define MPGET_FUZZ_H

/*
 * mpget's fuzz targets (libFuzzer): the URL list parser and the file name
 * code.  Each target checks the promises of the code it drives, not just
 * that it does not crash: see invariants.c.
 */
#include <stddef.h>
#include <stdint.h>

#include "../mpget.h"

/* abort() unless every job's name is safe, at most MAX_NAME_LEN bytes,
 * and unlike every other job's name and its NAME.part. */
void check_names(const struct joblist *jl);
/* abort() unless name is NULL or a safe name. */
void check_name(const char *name);

#endif
