/* SPDX-License-Identifier: MIT */
/* What names.c promises, checked after every fuzz input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

void check_name(const char *name)
{
	if (name && (!name_is_safe(name) || strlen(name) > MAX_NAME_LEN))
		abort();
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void check_names(const struct joblist *jl)
{
	char **v = malloc((jl->n + 1) * sizeof(*v));
	char part[MAX_NAME_LEN + 8];

	if (!v)
		abort();
	for (size_t i = 0; i < jl->n; i++) {
		if (!jl->v[i].name)
			abort();
		check_name(jl->v[i].name);
		v[i] = jl->v[i].name;
	}
	qsort(v, jl->n, sizeof(*v), cmp);
	for (size_t i = 0; i < jl->n; i++) {
		char *key = part;

		if (i > 0 && !strcmp(v[i - 1], v[i]))
			abort(); /* two jobs, one name */
		strcpy(part, v[i]);
		strcat(part, ".part");
		if (bsearch(&key, v, jl->n, sizeof(*v), cmp))
			abort(); /* a name is another job's .part */
	}
	free(v);
}
