/* SPDX-License-Identifier: MIT */
/*
 * The parent's code addresses in a child with another image.
 *
 * A pool stores its task functions in shared memory as the parent's
 * pointers.  A fork child has the parent's image, so they are right as they
 * are; a spawn child (exec) has its objects wherever ASLR put them, and a
 * forkserver child has the server's, which lacks what the parent dlopen()ed
 * later.  So such a child is given the parent's list of loaded objects (base,
 * executable range, build-id) at start, and turns a parent pointer into a
 * function identity (fnid.h) and that into a local address.  An address in
 * no listed object, or in an object this image does not have, is NULL: the
 * caller fails the task rather than jump anywhere.  A few recent answers
 * are cached, as a pool runs the same function chunk after chunk.
 */
#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "start.h"

static struct mp__objent *map;
static uint32_t nmap;
static bool installed;

#define CACHE 8
static struct {
	const void *from;
	void *to;
} cache[CACHE];
static unsigned cache_next;

struct collect {
	struct mp__objent *out;
	int cap, n;
};

static int collect_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct collect *c = arg;
	(void)size;
	if (c->n >= c->cap)
		return 1;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			uint64_t a = info->dlpi_addr + ph->p_vaddr;
			if (a < lo)
				lo = a;
			if (a + ph->p_memsz > hi)
				hi = a + ph->p_memsz;
		}
	}
	if (hi == 0)
		return 0;
	const uint8_t *bid;
	size_t blen = mp__fnid_build_id(info, &bid);
	if (blen == 0)
		return 0;
	struct mp__objent *e = &c->out[c->n++];
	memset(e, 0, sizeof(*e));
	e->base = info->dlpi_addr;
	e->lo = lo;
	e->hi = hi;
	e->id_len = (uint8_t)blen;
	memcpy(e->build_id, bid, blen);
	return 0;
}

int mp__objmap_collect(struct mp__objent *out, int cap)
{
	struct collect c = {.out = out, .cap = cap};
	dl_iterate_phdr(collect_one, &c);
	return c.n;
}

void mp__xlate_install(const struct mp__objent *m, uint32_t n)
{
	mp__xlate_reset();
	map = n ? malloc(n * sizeof(*map)) : NULL;
	if (n && !map) {
		n = 0; /* nothing translates: tasks fail, never misjump */
	} else if (n) {
		memcpy(map, m, n * sizeof(*map));
	}
	nmap = n;
	installed = true;
}

void mp__xlate_reset(void)
{
	free(map);
	map = NULL;
	nmap = 0;
	installed = false;
	memset(cache, 0, sizeof(cache));
}

void *mp__xlate(const void *fn)
{
	if (!installed || !fn)
		return (void *)fn;
	for (unsigned i = 0; i < CACHE; i++)
		if (cache[i].from == fn)
			return cache[i].to;
	uint64_t a = (uint64_t)(uintptr_t)fn;
	for (uint32_t i = 0; i < nmap; i++) {
		if (a < map[i].lo || a >= map[i].hi)
			continue;
		struct mp__fnid id;
		memset(&id, 0, sizeof(id));
		id.offset = a - map[i].base;
		id.id_len = map[i].id_len;
		memcpy(id.build_id, map[i].build_id, id.id_len);
		mp__fn out;
		if (mp__fnid_resolve(&id, &out) != 0)
			return NULL;
		unsigned k = cache_next++ % CACHE;
		cache[k].from = fn;
		cache[k].to = (void *)out;
		return (void *)out;
	}
	return NULL;
}
