/* SPDX-License-Identifier: MIT */
/*
 * Start methods: the process-wide default, and the request that tells a
 * spawn or forkserver child what to run.
 *
 * A child that is not a fork of its parent cannot be handed pointers: its
 * target is named by function identity (fnid.h: build-id and offset), its
 * argument travels as bytes (mp_process_new_args) or as a bare pointer
 * value (mp_process_new, meaningful only into the shared arena, which every
 * child maps at the parent's address), and its name and identity as
 * strings.  The request is one flat blob, built here and read here, so the
 * forkserver and spawn paths cannot disagree on it.  The parent's list of
 * loaded objects rides along for pool workers (xlate.c).
 *
 * The blob is checked as untrusted input anyway (lengths against the
 * buffer), though only this program's own processes can send one.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "start.h"

#define BLOB_MAGIC 0x4d505354u /* "MPST" */
#define BLOB_VERSION 1
#define F_DAEMON 1u
#define F_COPY 2u

struct blob_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	int32_t parent;
	struct mp__fnid target;
	uint64_t arg; /* the pointer value, without F_COPY */
	uint64_t arglen;
	uint32_t namelen; /* with their NULs */
	uint32_t identlen;
	uint32_t nobj;
	int32_t keep_fd;
};

static _Atomic int default_method;

static int parse_env(void)
{
	const char *e = getenv("MP_START_METHOD");
	if (!e)
		return MP_START_FORK;
	if (strcmp(e, "forkserver") == 0)
		return MP_START_FORKSERVER;
	if (strcmp(e, "spawn") == 0)
		return MP_START_SPAWN;
	return MP_START_FORK;
}

int mp_get_start_method(void)
{
	int m = atomic_load_explicit(&default_method, memory_order_acquire);
	if (m == 0) {
		int want = parse_env();
		int zero = 0;
		atomic_compare_exchange_strong(&default_method, &zero, want);
		m = atomic_load(&default_method);
	}
	return m;
}

int mp_set_start_method(int method)
{
	if (method < MP_START_FORK || method > MP_START_SPAWN)
		return -EINVAL;
	if (method == MP_START_FORKSERVER) {
		/* Now, while the caller says the program is small. */
		int r = mp__forkserver_ensure();
		if (r)
			return r;
	} else if (method == MP_START_SPAWN) {
		/* Spawn children map the arena: make it now, at an
		 * address chosen while the program is small. */
		int r = mp__arena_ensure();
		if (r)
			return r;
	}
	atomic_store_explicit(&default_method, method, memory_order_release);
	return 0;
}

static size_t pad16(size_t x)
{
	return (x + 15) & ~(size_t)15;
}

void *mp__blob_make(const struct mp__launch *l, size_t *len, int *err)
{
	struct blob_hdr h;
	memset(&h, 0, sizeof(h));
	int r = mp__fnid_of((mp__fn)l->target, &h.target);
	if (r) {
		*err = r;
		return NULL;
	}
	struct mp__objent *objs = malloc(MP__MAX_OBJS * sizeof(*objs));
	if (!objs) {
		*err = -ENOMEM;
		return NULL;
	}
	int nobj = mp__objmap_collect(objs, MP__MAX_OBJS);
	h.magic = BLOB_MAGIC;
	h.version = BLOB_VERSION;
	h.flags = (l->daemon ? F_DAEMON : 0) | (l->has_copy ? F_COPY : 0);
	h.parent = (int32_t)getpid();
	h.arg = l->has_copy ? 0 : (uint64_t)(uintptr_t)l->arg;
	h.arglen = l->has_copy ? l->arglen : 0;
	h.namelen = (uint32_t)strlen(l->name) + 1;
	h.identlen = (uint32_t)strlen(l->ident) + 1;
	h.nobj = (uint32_t)nobj;
	h.keep_fd = l->keep_fd;
	size_t strs = pad16((size_t)h.namelen + h.identlen);
	size_t total = sizeof(h) + strs + pad16(h.arglen) +
		       (size_t)nobj * sizeof(*objs);
	char *b = calloc(1, total);
	if (!b) {
		free(objs);
		*err = -ENOMEM;
		return NULL;
	}
	char *p = b;
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memcpy(p, l->name, h.namelen);
	memcpy(p + h.namelen, l->ident, h.identlen);
	p += strs;
	if (h.arglen)
		memcpy(p, l->argbuf, h.arglen);
	p += pad16(h.arglen);
	memcpy(p, objs, (size_t)nobj * sizeof(*objs));
	free(objs);
	*len = total;
	return b;
}

int mp__blob_parse(void *blob, size_t len, struct mp__child *c)
{
	struct blob_hdr h;
	if (len < sizeof(h))
		return -EPROTO;
	memcpy(&h, blob, sizeof(h));
	if (h.magic != BLOB_MAGIC || h.version != BLOB_VERSION ||
	    h.namelen == 0 || h.identlen == 0 || h.nobj > MP__MAX_OBJS ||
	    h.arglen > len)
		return -EPROTO;
	size_t strs = pad16((size_t)h.namelen + h.identlen);
	size_t need = sizeof(h) + strs + pad16(h.arglen) +
		      (size_t)h.nobj * sizeof(struct mp__objent);
	if (need != len)
		return -EPROTO;
	char *p = (char *)blob + sizeof(h);
	if (p[h.namelen - 1] != '\0' || p[h.namelen + h.identlen - 1] != '\0')
		return -EPROTO;
	mp__fn fn;
	int r = mp__fnid_resolve(&h.target, &fn);
	if (r)
		return r;
	c->target = (int (*)(void *))fn;
	c->name = p;
	c->ident = p + h.namelen;
	p += strs;
	c->arg = (h.flags & F_COPY) ? (void *)p : (void *)(uintptr_t)h.arg;
	p += pad16(h.arglen);
	c->daemon = h.flags & F_DAEMON;
	c->parent = (pid_t)h.parent;
	c->keep_fd = h.keep_fd;
	struct mp__objent *objs = malloc(h.nobj * sizeof(*objs) + 1);
	if (!objs)
		return -ENOMEM;
	memcpy(objs, p, h.nobj * sizeof(*objs)); /* p may be unaligned */
	mp__xlate_install(objs, h.nobj);
	free(objs);
	return 0;
}
