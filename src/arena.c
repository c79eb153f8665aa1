/* SPDX-License-Identifier: MIT */
/*
 * The shared arena and its allocator.
 *
 * One MAP_SHARED | MAP_NORESERVE mapping: a header page, a side table with
 * one byte per 64-byte unit, then the data area, whose size is a power of
 * two.  Blocks are buddies: a block of order k is 2^k bytes at an offset
 * that is a multiple of 2^k, so blocks are naturally aligned (a 4 KiB
 * request is page-aligned, a 64-byte one sits on its own cache line).
 *
 * The side table is the truth: the byte of a block's first unit says
 * USED | order or FREE | order; other bytes are stale and ignored.  The free
 * lists (doubly linked through the free blocks, by unit index) are only an
 * index over it.  Every change writes the table in an order that a scan
 * walking block by block from offset 0 always reads as a consistent
 * partition, so when a process dies holding the arena lock (we get
 * -EOWNERDEAD), the next one rebuilds the free lists from the table and
 * loses nothing but the one block the dead process was allocating.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define ARENA_MAGIC 0x4d50414eu /* "MPAN" */
#define ARENA_LAYOUT 1
#define UNIT_SHIFT 6
#define MIN_ORDER UNIT_SHIFT
#define MAX_ORDERS 40
#define NIL UINT32_MAX
#define FREE 0x80
#define USED 0x40
#define ORDER_MASK 0x3f
#define DEFAULT_SIZE ((size_t)256 << 20)
#define MIN_SIZE ((size_t)64 << 10)
#define MAX_SIZE ((size_t)64 << 30)

struct arena_hdr {
	uint32_t magic;
	uint32_t layout;
	uint32_t max_order;
	uint32_t pad;
	uint64_t data_off; /* from the header, page aligned */
	uint64_t used;
	uint64_t rebuilds;
	mp_lock lock;
	uint32_t free_head[MAX_ORDERS];
};

struct free_links {
	uint32_t next;
	uint32_t prev;
};

static struct arena_hdr *arena;
static uint8_t *table;
static uint8_t *data;
static size_t requested_size;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int create_error;
static int arena_fd = -1; /* the memfd behind the mapping, or -1 */
static size_t arena_len;  /* bytes mapped, header included */

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; break;
	case 'm': case 'M': v <<= 20; break;
	case 'g': case 'G': v <<= 30; break;
	default: break;
	}
	return (size_t)v;
}

static void create(void)
{
	if (arena)
		return; /* adopted from the parent (a spawn child) */
	size_t want = requested_size;
	const char *env = getenv("MP_SHARED_SIZE");

	if (!want && env)
		want = parse_size(env);
	if (want < MIN_SIZE || want > MAX_SIZE)
		want = DEFAULT_SIZE;
	uint32_t order = MIN_ORDER;
	while (((size_t)2 << order) <= want)
		order++;
	size_t data_size = (size_t)1 << order;
	size_t table_size = data_size >> UNIT_SHIFT;
	size_t data_off = (4096 + table_size + 4095) & ~(size_t)4095;
	size_t total = data_off + data_size;
	/* A memfd rather than anonymous memory: a spawn child (exec) gets
	 * the descriptor and maps the same pages at the same address.
	 * Without memfd (seccomp, old kernels) fork children still share. */
	int fd = memfd_create("multiproc-arena", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, (off_t)total) != 0) {
		close(fd);
		fd = -1;
	}
	void *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0),
		       fd, 0);
	if (m == MAP_FAILED) {
		create_error = errno;
		if (fd >= 0)
			close(fd);
		return;
	}
	arena_fd = fd;
	arena_len = total;
	struct arena_hdr *h = m;
	h->layout = ARENA_LAYOUT;
	h->max_order = order;
	h->data_off = data_off;
	mp_lock_init(&h->lock);
	for (int i = 0; i < MAX_ORDERS; i++)
		h->free_head[i] = NIL;
	table = (uint8_t *)m + 4096;
	data = (uint8_t *)m + data_off;
	/* One free block covers all the data. */
	table[0] = (uint8_t)(FREE | order);
	((struct free_links *)data)->next = NIL;
	((struct free_links *)data)->prev = NIL;
	h->free_head[order] = 0;
	h->magic = ARENA_MAGIC;
	arena = h;
}

int mp__arena_ensure(void)
{
	pthread_once(&once, create);
	return arena ? 0 : -create_error;
}

int mp_shared_set_size(size_t bytes)
{
	if (arena)
		return -EBUSY;
	if (bytes < MIN_SIZE || bytes > MAX_SIZE)
		return -EINVAL;
	requested_size = bytes;
	return 0;
}

static inline struct free_links *links(uint32_t unit)
{
	return (struct free_links *)(data + ((size_t)unit << UNIT_SHIFT));
}

static void push(uint32_t order, uint32_t unit)
{
	struct free_links *b = links(unit);
	uint32_t head = arena->free_head[order];

	b->next = head;
	b->prev = NIL;
	if (head != NIL)
		links(head)->prev = unit;
	arena->free_head[order] = unit;
}

static void unlink_block(uint32_t order, uint32_t unit)
{
	struct free_links *b = links(unit);

	if (b->prev != NIL)
		links(b->prev)->next = b->next;
	else
		arena->free_head[order] = b->next;
	if (b->next != NIL)
		links(b->next)->prev = b->prev;
}

/* After a holder died mid-update: the lists may be torn, the table is not. */
static void rebuild(void)
{
	size_t units = (size_t)1 << (arena->max_order - UNIT_SHIFT);
	uint64_t used = 0;

	for (int i = 0; i < MAX_ORDERS; i++)
		arena->free_head[i] = NIL;
	for (size_t u = 0; u < units;) {
		uint8_t t = table[u];
		uint32_t order = t & ORDER_MASK;
		if (order < MIN_ORDER || order > arena->max_order)
			MP__FATAL("shared arena table is corrupt");
		if (t & FREE)
			push(order, (uint32_t)u);
		else
			used += (uint64_t)1 << order;
		u += (size_t)1 << (order - UNIT_SHIFT);
	}
	arena->used = used;
	arena->rebuilds++;
}

static void lock_arena(void)
{
	int r = mp_lock_acquire(&arena->lock, MP_FOREVER);
	if (r == -EOWNERDEAD)
		rebuild();
	else if (r != 0)
		MP__FATAL("shared arena lock");
}

static void *shared_alloc(size_t size, bool zero)
{
	if (size == 0) {
		errno = EINVAL;
		return NULL;
	}
	int r = mp__arena_ensure();
	if (r) {
		errno = -r;
		return NULL;
	}
	uint32_t order = MIN_ORDER;
	while (order <= arena->max_order && ((size_t)1 << order) < size)
		order++;
	if (order > arena->max_order) {
		errno = ENOMEM;
		return NULL;
	}
	lock_arena();
	uint32_t k = order;
	while (k <= arena->max_order && arena->free_head[k] == NIL)
		k++;
	if (k > arena->max_order) {
		mp_lock_release(&arena->lock);
		errno = ENOMEM;
		return NULL;
	}
	uint32_t unit = arena->free_head[k];
	unlink_block(k, unit);
	while (k > order) {
		k--;
		uint32_t buddy = unit + (1u << (k - UNIT_SHIFT));
		/* Buddy first, then shrink: a scan sees either the whole
		 * block or both halves. */
		table[buddy] = (uint8_t)(FREE | k);
		push(k, buddy);
		table[unit] = (uint8_t)(FREE | k);
	}
	table[unit] = (uint8_t)(USED | order);
	arena->used += (uint64_t)1 << order;
	mp_lock_release(&arena->lock);
	void *p = data + ((size_t)unit << UNIT_SHIFT);
	if (zero)
		memset(p, 0, size);
	return p;
}

void *mp_shared_alloc(size_t size)
{
	return shared_alloc(size, true);
}

void *mp__shared_alloc_raw(size_t size)
{
	return shared_alloc(size, false);
}

void mp_shared_free(void *p)
{
	if (!p || !arena)
		return;
	uint8_t *b = p;
	size_t size = (size_t)1 << arena->max_order;
	if (b < data || b >= data + size)
		return;
	size_t off = (size_t)(b - data);
	if (off & (((size_t)1 << UNIT_SHIFT) - 1))
		return;
	uint32_t unit = (uint32_t)(off >> UNIT_SHIFT);
	lock_arena();
	uint8_t t = table[unit];
	if (!(t & USED)) {
		/* A double free or a pointer we never handed out. */
		mp_lock_release(&arena->lock);
		return;
	}
	uint32_t order = t & ORDER_MASK;
	arena->used -= (uint64_t)1 << order;
	while (order < arena->max_order) {
		uint32_t buddy = unit ^ (1u << (order - UNIT_SHIFT));
		if (table[buddy] != (FREE | order))
			break;
		unlink_block(order, buddy);
		uint32_t low = unit < buddy ? unit : buddy;
		uint32_t high = unit ^ buddy ^ low;
		/* Grow the low block first: a scan then skips the high one. */
		table[low] = (uint8_t)((low == unit ? USED : FREE) | (order + 1));
		table[high] = 0;
		unit = low;
		order++;
	}
	table[unit] = (uint8_t)(FREE | order);
	push(order, unit);
	mp_lock_release(&arena->lock);
}

size_t mp_shared_capacity(void)
{
	if (mp__arena_ensure())
		return 0;
	return (size_t)1 << arena->max_order;
}

size_t mp_shared_used(void)
{
	if (mp__arena_ensure())
		return 0;
	lock_arena();
	size_t used = arena->used;
	mp_lock_release(&arena->lock);
	return used;
}

mp_lock *mp__arena_lock(void)
{
	return mp__arena_ensure() ? NULL : &arena->lock;
}

uint64_t mp__arena_rebuilds(void)
{
	return mp__arena_ensure() ? 0 : arena->rebuilds;
}

int mp__arena_share(void **base, size_t *len)
{
	int r = mp__arena_ensure();
	if (r)
		return r;
	if (arena_fd < 0)
		return -ENOTSUP;
	*base = arena;
	*len = arena_len;
	return arena_fd;
}

int mp__arena_adopt(int fd, void *base, size_t len)
{
	if (arena)
		return -EBUSY;
	void *m = mmap(base, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
	if (m == MAP_FAILED)
		return -errno; /* EEXIST: something of ours sits there */
	if (m != base) {
		/* A kernel before 4.17 takes the flag as a mere hint. */
		munmap(m, len);
		return -EEXIST;
	}
	struct arena_hdr *h = m;
	if (h->magic != ARENA_MAGIC || h->layout != ARENA_LAYOUT) {
		munmap(m, len);
		return -EPROTO;
	}
	table = (uint8_t *)m + 4096;
	data = (uint8_t *)m + h->data_off;
	arena_fd = fd;
	arena_len = len;
	arena = h;
	return 0;
}
