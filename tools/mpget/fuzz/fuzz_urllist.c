/* SPDX-License-Identifier: MIT */
/*
 * The URL list parser on arbitrary input: the input is the -i file (read
 * through a memfd, as urllist_read reads any file), parsed leniently and
 * with --strict.  Every job it keeps must be an acceptable URL, an out=
 * name must be safe, and names_assign must give distinct safe names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

static void parse(const char *path, bool strict)
{
	struct joblist jl = {0};
	const char *why;

	if (urllist_read(&jl, path, strict) == -ENOMEM)
		abort();
	for (size_t i = 0; i < jl.n; i++) {
		if (!url_is_acceptable(jl.v[i].url, &why))
			abort();
		check_name(jl.v[i].name);
	}
	if (names_assign(&jl) < 0)
		abort();
	check_names(&jl);
	joblist_free(&jl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = memfd_create("urllist", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	parse(path, false);
	parse(path, true);
	return 0;
}
