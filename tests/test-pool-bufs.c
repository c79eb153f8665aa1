/* SPDX-License-Identifier: MIT */
/* Pool maps over variable-size items: exact bytes, errors per item, the
 * result size limit, bad arguments, deaths and timeouts. */
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define N 300
#define MAXLEN (64 << 10)

static uint64_t rng = 88172645463325252ull;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* The result of an item of len bytes: another length, bytes made from
 * the input and the position. */
static size_t result_len(const uint8_t *in, size_t len)
{
	return (len * 7 + (len ? in[0] : 0) * 13 + 5) % (MAXLEN + 1000);
}

static uint8_t result_byte(const uint8_t *in, size_t len, size_t k)
{
	return (uint8_t)((len ? in[k % len] : 0x5a) ^ (k * 31));
}

/* Writes its result in pieces of 1..4096 bytes. */
static int transform(const void *in, size_t len, mp_out *out)
{
	const uint8_t *b = in;
	size_t rl = result_len(b, len);
	uint8_t piece[4096];
	size_t k = 0, step = len % 4096 + 1;

	while (k < rl) {
		size_t m = rl - k < step ? rl - k : step;
		for (size_t i = 0; i < m; i++)
			piece[i] = result_byte(b, len, k + i);
		int e = mp_out_write(out, piece, m);
		if (e)
			return e;
		k += m;
	}
	return 0;
}

static mp_buf *random_items(size_t n)
{
	mp_buf *in = calloc(n, sizeof(*in));
	ASSERT_NOT_NULL(in);
	for (size_t i = 0; i < n; i++) {
		size_t len = next_rand() % (MAXLEN + 1);
		if (i % 17 == 0)
			len = 0;
		in[i].len = len;
		in[i].data = malloc(len + 1);
		ASSERT_NOT_NULL(in[i].data);
		for (size_t k = 0; k < len; k++)
			((uint8_t *)in[i].data)[k] = (uint8_t)next_rand();
	}
	return in;
}

static void check_result(const mp_buf *in, const mp_buf *out, size_t i)
{
	size_t rl = result_len(in->data, in->len);

	if (out->len != rl)
		FAIL("item %zu: len %zu, want %zu", i, out->len, rl);
	if (rl == 0 && out->data != NULL)
		FAIL("item %zu: data for an empty result", i);
	for (size_t k = 0; k < rl; k++)
		if (((uint8_t *)out->data)[k] !=
		    result_byte(in->data, in->len, k))
			FAIL("item %zu: byte %zu differs", i, k);
}

TEST(pool_bufs_random_lengths_exact)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	/* Made after the pool: the library copies them to the workers. */
	mp_buf *in = random_items(N);
	mp_buf *out = calloc(N, sizeof(*out));
	int *errs = calloc(N, sizeof(*errs));
	size_t sizes[] = {1, 0, 7, N};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		memset(errs, 0x55, N * sizeof(*errs));
		ASSERT_OK(mp_pool_map_bufs(p, transform, in, N, out, errs,
					   sizes[s]));
		for (size_t i = 0; i < N; i++) {
			ASSERT_EQ(errs[i], 0);
			check_result(&in[i], &out[i], i);
		}
		mp_bufs_free(out, N);
		for (size_t i = 0; i < N; i++)
			ASSERT(out[i].data == NULL && out[i].len == 0);
	}
	ASSERT_OK(mp_pool_map_bufs(p, transform, in, N, out, NULL, 0));
	for (size_t i = 0; i < N; i++)
		check_result(&in[i], &out[i], i);
	mp_bufs_free(out, N);
	ASSERT_EQ(mp_shared_used(), used); /* every result block freed */
	mp_bufs_free(in, N);
	free(in);
	free(out);
	free(errs);
	mp_pool_free(p);
}

/* Item i fails with -(1000 + i) when i % 5 == 3, after writing. */
static int some_fail(const void *in, size_t len, mp_out *out)
{
	uint32_t i;
	memcpy(&i, in, sizeof(i));
	(void)len;
	ASSERT_OK(mp_out_write(out, &i, sizeof(i)));
	return i % 5 == 3 ? -(int)(1000 + i) : 0;
}

TEST(pool_bufs_errors_per_item)
{
	uint32_t idx[50];
	mp_buf in[50], out[50];
	int errs[50];
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	for (uint32_t i = 0; i < 50; i++) {
		idx[i] = i;
		in[i] = (mp_buf){&idx[i], sizeof(idx[i])};
	}
	ASSERT_ERR(mp_pool_map_bufs(p, some_fail, in, 50, out, errs, 4),
		   -1003);
	for (uint32_t i = 0; i < 50; i++) {
		if (i % 5 == 3) {
			ASSERT_EQ(errs[i], -(int)(1000 + i));
			ASSERT(out[i].data == NULL && out[i].len == 0);
		} else {
			ASSERT_EQ(errs[i], 0);
			ASSERT_EQ(out[i].len, sizeof(uint32_t));
			ASSERT_EQ(*(uint32_t *)out[i].data, i);
		}
	}
	mp_bufs_free(out, 50);
	mp_pool_free(p);
}

/* Item 2 writes MP_POOL_RESULT_MAX + 1 bytes, item 4 exactly the limit. */
static int big(const void *in, size_t len, mp_out *out)
{
	static char mib[1 << 20];
	uint32_t i;
	memcpy(&i, in, sizeof(i));
	(void)len;
	size_t want = i == 2 ? MP_POOL_RESULT_MAX + 1
		    : i == 4 ? MP_POOL_RESULT_MAX
			     : i;
	memset(mib, (int)i, sizeof(mib));
	for (size_t k = 0; k < want; k += sizeof(mib)) {
		size_t m = want - k < sizeof(mib) ? want - k : sizeof(mib);
		int e = mp_out_write(out, mib, m);
		if (e) {
			ASSERT_EQ(e, -EMSGSIZE);
			ASSERT_EQ(mp_out_write(out, "x", 1), -EMSGSIZE);
			return 0; /* the item fails anyway */
		}
	}
	return 0;
}

TEST(pool_bufs_result_too_large_fails_only_that_item)
{
	uint32_t idx[6];
	mp_buf in[6], out[6];
	int errs[6];
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	for (uint32_t i = 0; i < 6; i++) {
		idx[i] = i;
		in[i] = (mp_buf){&idx[i], sizeof(idx[i])};
	}
	ASSERT_ERR(mp_pool_map_bufs(p, big, in, 6, out, errs, 6), -EMSGSIZE);
	for (uint32_t i = 0; i < 6; i++) {
		if (i == 2) {
			ASSERT_EQ(errs[i], -EMSGSIZE);
			ASSERT_EQ(out[i].len, 0);
			continue;
		}
		ASSERT_EQ(errs[i], 0);
		size_t want = i == 4 ? MP_POOL_RESULT_MAX : i;
		ASSERT_EQ(out[i].len, want);
		for (size_t k = 0; k < want; k += 4093)
			ASSERT_EQ(((uint8_t *)out[i].data)[k], i);
	}
	mp_bufs_free(out, 6);
	ASSERT_EQ(mp_shared_used(), used);
	mp_pool_free(p);
}

static int echo(const void *in, size_t len, mp_out *out)
{
	return mp_out_write(out, in, len);
}

TEST(pool_bufs_empty_and_bad_arguments)
{
	mp_pool *p = mp_pool_new(1);
	ASSERT_NOT_NULL(p);
	char x = 'x';
	mp_buf in[3] = {{NULL, 0}, {&x, 1}, {&x, 0}}, out[3];
	int errs[3];
	ASSERT_OK(mp_pool_map_bufs(p, echo, in, 3, out, errs, 1));
	ASSERT(out[0].data == NULL && out[0].len == 0 && errs[0] == 0);
	ASSERT(out[1].len == 1 && *(char *)out[1].data == 'x');
	ASSERT(out[2].data == NULL && out[2].len == 0 && errs[2] == 0);
	mp_bufs_free(out, 3);
	ASSERT_OK(mp_pool_map_bufs(p, echo, NULL, 0, NULL, NULL, 0));
	ASSERT_ERR(mp_pool_map_bufs(NULL, echo, in, 3, out, NULL, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map_bufs(p, NULL, in, 3, out, NULL, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map_bufs(p, echo, NULL, 3, out, NULL, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map_bufs(p, echo, in, 3, NULL, NULL, 0), -EINVAL);
	mp_buf bad[2] = {{NULL, 5}, {&x, 1}};
	ASSERT_ERR(mp_pool_map_bufs(p, echo, bad, 2, out, NULL, 0), -EINVAL);
	mp_buf over[2] = {{&x, SIZE_MAX}, {&x, 2}};
	ASSERT_ERR(mp_pool_map_bufs(p, echo, over, 2, out, NULL, 0), -EINVAL);
	mp_buf huge[1] = {{&x, (size_t)1 << 40}}; /* never read: too big */
	ASSERT_ERR(mp_pool_map_bufs(p, echo, huge, 1, out, NULL, 0), -ENOMEM);
	ASSERT_ERR(mp_out_write(NULL, "a", 1), -EINVAL);
	mp_bufs_free(NULL, 3);
	ASSERT_OK(mp_pool_close(p));
	ASSERT_ERR(mp_pool_map_bufs(p, echo, in, 3, out, NULL, 0), MP_ESTATE);
	mp_pool_free(p);
}

static _Atomic uint32_t *kills_left;

/* Item 7 kills its worker (while kills_left lasts) after writing. */
static int die_at_7(const void *in, size_t len, mp_out *out)
{
	uint32_t i;
	memcpy(&i, in, sizeof(i));
	(void)len;
	char blob[10000];
	memset(blob, (int)i, sizeof(blob));
	ASSERT_OK(mp_out_write(out, blob, sizeof(blob)));
	uint32_t left = atomic_load(kills_left);
	if (i == 7)
		while (left > 0)
			if (atomic_compare_exchange_weak(kills_left, &left,
							 left - 1))
				kill(getpid(), SIGKILL);
	return 0;
}

static void map_with_kills(unsigned retries, uint32_t kills, int want)
{
	kills_left = mp_shared_alloc(64);
	ASSERT_NOT_NULL(kills_left);
	atomic_store(kills_left, kills);
	mp_pool_opts o = {.processes = 2, .retries = retries};
	mp_pool *p = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	uint32_t idx[20];
	mp_buf in[20], out[20];
	int errs[20];
	for (uint32_t i = 0; i < 20; i++) {
		idx[i] = i;
		in[i] = (mp_buf){&idx[i], sizeof(idx[i])};
	}
	/* Chunks of 3: items 6..8 die together. */
	ASSERT_ERR(mp_pool_map_bufs(p, die_at_7, in, 20, out, errs, 3), want);
	for (uint32_t i = 0; i < 20; i++) {
		bool lost = want && i >= 6 && i <= 8;
		ASSERT_EQ(errs[i], lost ? want : 0);
		ASSERT_EQ(out[i].len, lost ? 0 : 10000);
		if (!lost)
			ASSERT_EQ(((uint8_t *)out[i].data)[9999], i);
	}
	mp_bufs_free(out, 20);
	/* The dead workers' result blocks were given back. */
	ASSERT_EQ(mp_shared_used(), used);
	mp_pool_free(p);
}

TEST(pool_bufs_worker_death_fails_its_chunk)
{
	map_with_kills(0, 1, MP_EWORKER);
}

TEST(pool_bufs_worker_death_redone_under_retries)
{
	map_with_kills(2, 2, 0);
}

static int hang_at_7(const void *in, size_t len, mp_out *out)
{
	uint32_t i;
	memcpy(&i, in, sizeof(i));
	(void)len;
	ASSERT_OK(mp_out_write(out, &i, sizeof(i)));
	if (i == 7)
		for (;;)
			pause();
	return 0;
}

TEST(pool_bufs_timeout)
{
	mp_pool_opts o = {.processes = 2, .task_timeout = 0.1};
	mp_pool *p = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	uint32_t idx[20];
	mp_buf in[20], out[20];
	int errs[20];
	for (uint32_t i = 0; i < 20; i++) {
		idx[i] = i;
		in[i] = (mp_buf){&idx[i], sizeof(idx[i])};
	}
	ASSERT_ERR(mp_pool_map_bufs(p, hang_at_7, in, 20, out, errs, 2),
		   -ETIMEDOUT);
	for (uint32_t i = 0; i < 20; i++) {
		bool lost = i == 6 || i == 7;
		ASSERT_EQ(errs[i], lost ? -ETIMEDOUT : 0);
		ASSERT_EQ(out[i].len, lost ? 0 : 4);
	}
	mp_bufs_free(out, 20);
	ASSERT_EQ(mp_shared_used(), used);
	mp_pool_free(p);
}

static int worker_tag;

static void set_tag(void *arg)
{
	worker_tag = *(int *)arg;
}

/* The result: the worker's tag (set by the initializer), then the
 * input. */
static int tagged(const void *in, size_t len, mp_out *out)
{
	int e = mp_out_write(out, &worker_tag, sizeof(worker_tag));
	return e ? e : mp_out_write(out, in, len);
}

TEST(pool_bufs_initializer_and_maxtasksperchild)
{
	int tag = 4242;
	mp_pool_opts o = {.processes = 2,
			  .initializer = set_tag,
			  .initargs = &tag,
			  .maxtasksperchild = 2};
	mp_pool *p = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(p);
	size_t used = 0;
	mp_buf *in = random_items(100);
	mp_buf out[100];
	int errs[100];
	/* Twice: the first map's block stays as the pool's stage (see
	 * pool-stage.c), the second must leave the arena as it found it. */
	for (int round = 0; round < 2; round++) {
		/* 100 chunks: about 50 workers come and go. */
		ASSERT_OK(mp_pool_map_bufs(p, tagged, in, 100, out, errs, 1));
		for (size_t i = 0; i < 100; i++) {
			ASSERT_EQ(errs[i], 0);
			ASSERT_EQ(out[i].len, sizeof(int) + in[i].len);
			ASSERT_EQ(*(int *)out[i].data, 4242);
			ASSERT(memcmp((char *)out[i].data + sizeof(int),
				      in[i].data, in[i].len) == 0);
		}
		mp_bufs_free(out, 100);
		if (round)
			ASSERT_EQ(mp_shared_used(), used);
		used = mp_shared_used();
	}
	mp_bufs_free(in, 100);
	free(in);
	mp_pool_free(p);
}

/* Every byte counts, at its place (len a multiple of 8). */
static uint64_t weigh_words(const uint8_t *b, size_t len)
{
	uint64_t h = 0, w;
	for (size_t k = 0; k + 8 <= len; k += 8) {
		memcpy(&w, b + k, 8);
		h += w * (2 * k + 1);
	}
	return h;
}

static int digest(const void *in, size_t len, mp_out *out)
{
	uint64_t h = weigh_words(in, len);
	return mp_out_write(out, &h, sizeof(h));
}

/* A map streams its inputs in batches, as many as the arena has room
 * for: six times the arena's size in inputs (48 MiB through 8 MiB: less
 * than a stream's window, MP_POOL_STREAM_BYTES; the items are views of
 * one 1 MiB buffer) are mapped, every result exact, and the arena is as
 * it was after. */
TEST(pool_bufs_inputs_larger_than_the_arena)
{
	const size_t n = 768, len = 64 << 10, span = 1 << 20;
	ASSERT_OK(mp_shared_set_size(8 << 20));
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	ASSERT(n * len > 4 * mp_shared_capacity());
	uint8_t *pattern = malloc(span);
	mp_buf *in = calloc(n, sizeof(*in)), *out = calloc(n, sizeof(*out));
	int *errs = calloc(n, sizeof(*errs));
	ASSERT(pattern && in && out && errs);
	for (size_t k = 0; k < span; k++)
		pattern[k] = (uint8_t)next_rand();
	for (size_t i = 0; i < n; i++)
		in[i] = (mp_buf){pattern + 8 * (i * 4099 % ((span - len) / 8)),
				 len};
	ASSERT_OK(mp_pool_map_bufs(p, digest, in, n, out, errs, 0));
	for (size_t i = 0; i < n; i++) {
		uint64_t h;
		ASSERT_EQ(errs[i], 0);
		ASSERT_EQ(out[i].len, sizeof(h));
		memcpy(&h, out[i].data, sizeof(h));
		ASSERT_EQ(h, weigh_words(in[i].data, len));
	}
	mp_bufs_free(out, n);
	ASSERT_EQ(mp_shared_used(), used);
	mp_pool_free(p);
	free(errs);
	free(out);
	free(in);
	free(pattern);
}

TEST_MAIN(T(pool_bufs_random_lengths_exact),
	  T(pool_bufs_initializer_and_maxtasksperchild), T(pool_bufs_errors_per_item),
	  T(pool_bufs_result_too_large_fails_only_that_item),
	  T(pool_bufs_empty_and_bad_arguments),
	  T(pool_bufs_worker_death_fails_its_chunk),
	  T(pool_bufs_worker_death_redone_under_retries),
	  T(pool_bufs_timeout), T(pool_bufs_inputs_larger_than_the_arena))
