/* SPDX-License-Identifier: MIT */
/*
 * Value and Array: a block of the shared arena with a header and the data.
 *
 *   offset 0   struct value_hdr: the lock, the sizes, a magic word
 *   offset 64  the data, zeroed, on its own cache line(s)
 *
 * A value is an array of one element of `size` bytes; the two public
 * types are the same object under different names, so that each keeps its
 * own accessors.  The handle is the block's address, which is the same in
 * every process forked after the arena exists, and nothing inside the
 * block points anywhere.
 */
#include <errno.h>
#include <stdatomic.h>

#include "internal.h"

#define VALUE_MAGIC 0x56414c55u /* "VALU" */
#define HDR_SIZE 64

struct value_hdr {
	mp_lock lock;
	uint64_t elem_size;
	uint64_t len;
	uint32_t magic;
};

_Static_assert(sizeof(struct value_hdr) <= HDR_SIZE, "header fits");

static struct value_hdr *make(size_t elem_size, size_t n)
{
	if (elem_size == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (n > (SIZE_MAX - HDR_SIZE) / elem_size) {
		errno = ENOMEM;
		return NULL;
	}
	struct value_hdr *h = mp_shared_alloc(HDR_SIZE + elem_size * n);
	if (!h)
		return NULL;
	mp_lock_init(&h->lock);
	h->elem_size = elem_size;
	h->len = n;
	h->magic = VALUE_MAGIC;
	return h;
}

static inline struct value_hdr *hdr(const void *p)
{
	struct value_hdr *h = (struct value_hdr *)p;
	return h && h->magic == VALUE_MAGIC ? h : NULL;
}

static void drop(void *p)
{
	struct value_hdr *h = hdr(p);
	if (!h)
		return;
	h->magic = 0;
	mp_shared_free(h);
}

mp_value *mp_value_new(size_t size)
{
	return (mp_value *)make(size, 1);
}

void mp_value_free(mp_value *v)
{
	drop(v);
}

void *mp_value_ptr(mp_value *v)
{
	struct value_hdr *h = hdr(v);
	return h ? (char *)h + HDR_SIZE : NULL;
}

size_t mp_value_size(const mp_value *v)
{
	struct value_hdr *h = hdr(v);
	return h ? (size_t)h->elem_size : 0;
}

mp_lock *mp_value_get_lock(mp_value *v)
{
	struct value_hdr *h = hdr(v);
	return h ? &h->lock : NULL;
}

mp_array *mp_array_new(size_t elem_size, size_t n)
{
	return (mp_array *)make(elem_size, n);
}

void mp_array_free(mp_array *a)
{
	drop(a);
}

void *mp_array_ptr(mp_array *a)
{
	struct value_hdr *h = hdr(a);
	return h ? (char *)h + HDR_SIZE : NULL;
}

size_t mp_array_len(const mp_array *a)
{
	struct value_hdr *h = hdr(a);
	return h ? (size_t)h->len : 0;
}

size_t mp_array_elem_size(const mp_array *a)
{
	struct value_hdr *h = hdr(a);
	return h ? (size_t)h->elem_size : 0;
}

mp_lock *mp_array_get_lock(mp_array *a)
{
	struct value_hdr *h = hdr(a);
	return h ? &h->lock : NULL;
}

void *mp_raw_value_new(size_t size)
{
	return mp_shared_alloc(size);
}

void *mp_raw_array_new(size_t elem_size, size_t n)
{
	if (elem_size == 0 || n == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (n > SIZE_MAX / elem_size) {
		errno = ENOMEM;
		return NULL;
	}
	return mp_shared_alloc(elem_size * n);
}
