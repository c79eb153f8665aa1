/* SPDX-License-Identifier: MIT */
/* Pool streams: mp_pool_imap_source / mp_imap_next_buf, exact results in
 * both orders, source errors, the window, and bounded memory. */
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

struct src {
	size_t n;       /* items to give, SIZE_MAX: endless */
	size_t given;
	int fail_at;    /* return this error after n items, 0: end */
	char buf[300];
};

/* Item k: k % 250 bytes, byte j = k + j. */
static int numbers(void *ctx, mp_buf *item)
{
	struct src *s = ctx;

	if (s->given >= s->n)
		return s->fail_at;
	size_t k = s->given++;
	size_t len = k % 250;
	for (size_t j = 0; j < len; j++)
		s->buf[j] = (char)(k + j);
	item->data = s->buf;
	item->len = len;
	return 1;
}

/* Result: the input reversed, then its length as 8 bytes. */
static int reverse(const void *in, size_t len, mp_out *out)
{
	const char *b = in;

	for (size_t j = len; j-- > 0;)
		ASSERT_OK(mp_out_write(out, &b[j], 1));
	uint64_t l = len;
	return mp_out_write(out, &l, sizeof(l));
}

static void check_item(size_t k, const mp_buf *res)
{
	size_t len = k % 250;

	ASSERT_EQ(res->len, len + 8);
	const char *b = res->data;
	for (size_t j = 0; j < len; j++)
		ASSERT_EQ(b[j], (char)(k + len - 1 - j));
	uint64_t l;
	memcpy(&l, b + len, sizeof(l));
	ASSERT_EQ(l, len);
}

static void run_stream(bool ordered, size_t chunksize)
{
	const size_t n = 5003;
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	size_t used = mp_shared_used();
	struct src s = {.n = n};
	mp_imap *it = mp_pool_imap_source(p, reverse, numbers, &s, chunksize,
					  ordered);
	ASSERT_NOT_NULL(it);
	uint8_t *seen = calloc(n, 1);
	mp_buf res;
	size_t i, got = 0;
	int r;
	while ((r = mp_imap_next_buf(it, &i, &res, MP_FOREVER)) !=
	       MP_ECLOSED) {
		ASSERT_EQ(r, 0);
		ASSERT_CMP(i, <, n);
		if (ordered)
			ASSERT_EQ(i, got);
		ASSERT_EQ(seen[i], 0);
		seen[i] = 1;
		check_item(i, &res);
		free(res.data);
		got++;
	}
	ASSERT_EQ(got, n);
	ASSERT_EQ(i, SIZE_MAX);
	ASSERT_EQ(mp_imap_next_buf(it, &i, &res, 0), MP_ECLOSED);
	mp_imap_free(it);
	ASSERT_EQ(mp_shared_used(), used);
	free(seen);
	mp_pool_free(p);
}

TEST(pool_stream_ordered_exact)
{
	run_stream(true, 0);
	run_stream(true, 7);
}

TEST(pool_stream_unordered_exact)
{
	run_stream(false, 0);
	run_stream(false, 1);
}

/* Items far larger than a batch's first block (which moves to larger
 * ones as it fills), one past a quarter of MP_POOL_STREAM_BYTES (which
 * ends its batch), among small and empty ones: each arrives whole. */
static const size_t big_len[] = {0, 3, 1 << 20, 5, 5 << 20, 0, 70000, 9};
#define NBIG (sizeof(big_len) / sizeof(big_len[0]))

struct big_src {
	size_t given;
	uint8_t *buf;
};

static int big_items(void *ctx, mp_buf *item)
{
	struct big_src *s = ctx;

	if (s->given == NBIG)
		return 0;
	size_t k = s->given++;
	for (size_t j = 0; j < big_len[k]; j++)
		s->buf[j] = (uint8_t)(k * 31 + j * 7);
	item->data = s->buf;
	item->len = big_len[k];
	return 1;
}

/* Result: the length and a position-weighted sum of the bytes. */
static int weigh(const void *in, size_t len, mp_out *out)
{
	const uint8_t *b = in;
	uint64_t r[2] = {len, 0};

	for (size_t j = 0; j < len; j++)
		r[1] += (uint64_t)b[j] * (j + 1);
	return mp_out_write(out, r, sizeof(r));
}

TEST(pool_stream_items_larger_than_a_batch)
{
	mp_pool *pool = mp_pool_new(2);
	ASSERT_NOT_NULL(pool);
	struct big_src s = {0, malloc(5 << 20)};
	ASSERT_NOT_NULL(s.buf);
	for (size_t chunk = 0; chunk <= 3; chunk += 3) {
		s.given = 0;
		mp_imap *it = mp_pool_imap_source(pool, weigh, big_items, &s,
						  chunk, true);
		ASSERT_NOT_NULL(it);
		mp_buf res;
		size_t i, k = 0;
		int e;
		while ((e = mp_imap_next_buf(it, &i, &res, 30)) != MP_ECLOSED) {
			ASSERT_OK(e);
			ASSERT_EQ(i, k);
			ASSERT_EQ(res.len, 16);
			uint64_t r[2], want = 0;
			memcpy(r, res.data, sizeof(r));
			for (size_t j = 0; j < big_len[k]; j++)
				want += (uint64_t)(uint8_t)(k * 31 + j * 7) *
					(j + 1);
			ASSERT_EQ(r[0], big_len[k]);
			ASSERT_EQ(r[1], want);
			free(res.data);
			k++;
		}
		ASSERT_EQ(k, NBIG);
		mp_imap_free(it);
	}
	free(s.buf);
	mp_pool_free(pool);
}

TEST(pool_stream_source_error_once_then_closed)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct src s = {.n = 1000, .fail_at = -EPROTO};
	mp_imap *it = mp_pool_imap_source(p, reverse, numbers, &s, 0, true);
	ASSERT_NOT_NULL(it);
	mp_buf res;
	size_t i;
	for (size_t k = 0; k < 1000; k++) {
		ASSERT_OK(mp_imap_next_buf(it, &i, &res, MP_FOREVER));
		ASSERT_EQ(i, k);
		check_item(k, &res);
		free(res.data);
	}
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, MP_FOREVER), -EPROTO);
	ASSERT_EQ(i, SIZE_MAX);
	ASSERT(res.data == NULL);
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, MP_FOREVER), MP_ECLOSED);
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, MP_FOREVER), MP_ECLOSED);
	ASSERT_EQ(s.given, 1000);
	mp_imap_free(it);
	/* An empty source ends at once. */
	struct src e = {.n = 0};
	it = mp_pool_imap_source(p, reverse, numbers, &e, 0, false);
	ASSERT_NOT_NULL(it);
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, 0), MP_ECLOSED);
	mp_imap_free(it);
	mp_pool_free(p);
}

TEST(pool_stream_window_bounds_the_source)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct src s = {.n = SIZE_MAX};
	mp_imap *it = mp_pool_imap_source(p, reverse, numbers, &s, 10, true);
	ASSERT_NOT_NULL(it);
	/* 2 * 2 + 2 batches of 10 items, not one more. */
	ASSERT_EQ(s.given, 60);
	mp_buf res;
	size_t i;
	for (size_t k = 0; k < 1000; k++) {
		ASSERT_OK(mp_imap_next_buf(it, &i, &res, MP_FOREVER));
		ASSERT_EQ(i, k);
		free(res.data);
		/* The window, and the batch being delivered. */
		ASSERT_CMP(s.given - (k + 1), <=, 60 + 10);
	}
	mp_imap_free(it); /* an endless source: the rest is dropped */
	mp_pool_free(p);
}

static int kill_at_33(const void *in, size_t len, mp_out *out)
{
	(void)in;
	(void)out;
	if (len == 33)
		kill(getpid(), SIGKILL);
	return 0;
}

TEST(pool_stream_worker_death_and_bad_arguments)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct src s = {.n = 100};
	mp_imap *it = mp_pool_imap_source(p, kill_at_33, numbers, &s, 10,
					  true);
	ASSERT_NOT_NULL(it);
	mp_buf res;
	size_t i;
	for (size_t k = 0; k < 100; k++) {
		int want = k >= 30 && k < 40 ? MP_EWORKER : 0;
		ASSERT_ERR(mp_imap_next_buf(it, &i, &res, MP_FOREVER), want);
		ASSERT_EQ(i, k);
		ASSERT_EQ(res.len, 0);
	}
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, 0), MP_ECLOSED);
	ASSERT_ERR(mp_imap_next(it, &i, &res, 0), -EINVAL);
	mp_imap_free(it);

	errno = 0;
	ASSERT(mp_pool_imap_source(NULL, reverse, numbers, &s, 0, 1) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_pool_imap_source(p, NULL, numbers, &s, 0, 1) == NULL);
	ASSERT(mp_pool_imap_source(p, reverse, NULL, &s, 0, 1) == NULL);
	ASSERT(mp_pool_imap_source(p, reverse, numbers, &s, (size_t)1 << 40,
				   1) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_imap_next_buf(NULL, &i, &res, 0), -EINVAL);
	int32_t x = 1;
	mp_imap *fixed = mp_pool_imap(p, NULL, &x, 4, 4, 1, 1);
	ASSERT(fixed == NULL); /* NULL fn */

	/* The pool freed under an open stream: what was in flight is
	 * delivered (done, or failed as closed), then the stream ends. */
	struct src e = {.n = SIZE_MAX};
	it = mp_pool_imap_source(p, reverse, numbers, &e, 10, false);
	ASSERT_NOT_NULL(it);
	mp_pool_free(p);
	size_t left = 0;
	int r;
	while ((r = mp_imap_next_buf(it, &i, &res, 0)) != MP_ECLOSED ||
	       i != SIZE_MAX) {
		ASSERT(r == 0 || r == MP_ECLOSED);
		if (r == 0)
			check_item(i, &res);
		free(res.data);
		left++;
	}
	ASSERT_EQ(left, 60);
	ASSERT_EQ(e.given, 60);
	ASSERT_ERR(mp_imap_next_buf(it, &i, &res, 0), MP_ECLOSED);
	mp_imap_free(it);
}

static long vm_kib(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	ASSERT_NOT_NULL(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = atol(line + strlen(key));
	fclose(f);
	return v;
}

struct tiny {
	size_t given, n;
	uint64_t v[2];
};

static int tiny_items(void *ctx, mp_buf *item)
{
	struct tiny *t = ctx;

	if (t->given >= t->n)
		return 0;
	t->v[0] = t->given++;
	t->v[1] = ~t->v[0];
	*item = (mp_buf){t->v, sizeof(t->v)};
	return 1;
}

static int swap(const void *in, size_t len, mp_out *out)
{
	const uint64_t *v = in;
	uint64_t w[2] = {v[1], v[0]};

	(void)len;
	return mp_out_write(out, w, sizeof(w));
}

/* 2,000,000 items through a stream: the peak resident size grows by far
 * less than 64 MiB (the items alone are 32 MB in, 32 MB out). */
TEST(pool_stream_two_million_items_bounded_memory)
{
	mp_pool *p = mp_pool_new(2);
	ASSERT_NOT_NULL(p);
	struct tiny t = {.n = 2000000};
	long hwm0 = vm_kib("VmHWM:");
	mp_imap *it = mp_pool_imap_source(p, swap, tiny_items, &t, 0, false);
	ASSERT_NOT_NULL(it);
	mp_buf res;
	size_t i, got = 0;
	uint64_t sum = 0;
	while (mp_imap_next_buf(it, &i, &res, MP_FOREVER) == 0) {
		const uint64_t *w = res.data;
		if (res.len != 16 || w[1] != i || w[0] != ~(uint64_t)i)
			FAIL("item %zu: bad result", i);
		sum += i;
		got++;
		free(res.data);
	}
	mp_imap_free(it);
	long hwm1 = vm_kib("VmHWM:");
	ASSERT_EQ(got, 2000000);
	ASSERT_EQ(sum, (uint64_t)1999999 * 2000000 / 2);
	fprintf(stderr, "# VmHWM %ld -> %ld KiB (+%ld KiB)\n", hwm0, hwm1,
		hwm1 - hwm0);
#ifndef __SANITIZE_ADDRESS__
	ASSERT_CMP(hwm1 - hwm0, <, 64L << 10);
#endif /* ASan's quarantine keeps freed blocks resident: no bound */
	mp_pool_free(p);
}

TEST_MAIN(T(pool_stream_ordered_exact), T(pool_stream_unordered_exact),
	  T(pool_stream_items_larger_than_a_batch),
	  T(pool_stream_source_error_once_then_closed),
	  T(pool_stream_window_bounds_the_source),
	  T(pool_stream_worker_death_and_bad_arguments),
	  T_TIMEOUT(pool_stream_two_million_items_bounded_memory, 120))
