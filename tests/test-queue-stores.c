/* SPDX-License-Identifier: MIT */
/* How a put writes a long record in a wide lap (src/queue-stores.h): the
 * chooser follows the faster way, tries the other every STORES_TRIAL
 * windows without counting the window after a change, survives foreign
 * values; a queue counts its windows; and streamed copies (nt-copy.h) are
 * exact at every alignment, whichever way a record goes. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "nt-copy.h"
#include "queue-stores.h"
#include "test.h"

/* A host where ordinary stores move `fast` MB/s and streamed ones `nt`:
 * run `windows` counted windows and return how many streamed. */
static int host(uint32_t *st, uint32_t rate[2], uint32_t fast, uint32_t nt,
		int windows)
{
	int streamed = 0;

	for (int i = 0; i < windows; i++) {
		bool s = stores_stream(*st);
		streamed += s;
		*st = stores_next(*st, rate, s ? nt : fast);
	}
	return streamed;
}

TEST(ordinary_until_a_trial_wins)
{
	uint32_t st = 0, rate[2] = {0, 0};

	/* Steady and ordinary for STORES_TRIAL - 1 windows, then two
	 * streamed (the first not counted), then one ordinary window back
	 * that is not counted either. */
	ASSERT_EQ(host(&st, rate, 9000, 3000, STORES_TRIAL - 1), 0);
	ASSERT_EQ(rate[0], 9000u);
	ASSERT_EQ(rate[1], 0u);
	ASSERT_EQ(host(&st, rate, 9000, 3000, 1), 0);
	ASSERT_EQ(st & STORES_PHASE, STORES_TRY_FIRST);
	ASSERT(stores_stream(st));
	/* The first trial window measures the change: its rate is not kept. */
	ASSERT_EQ(host(&st, rate, 9000, 1, 1), 1);
	ASSERT_EQ(rate[1], 0u);
	ASSERT_EQ(host(&st, rate, 9000, 3000, 1), 1);
	ASSERT_EQ(rate[1], 3000u);
	ASSERT_EQ(st & STORES_PHASE, STORES_BACK);
	ASSERT(!stores_stream(st));
	ASSERT_EQ(host(&st, rate, 1, 3000, 1), 0);
	ASSERT_EQ(rate[0], 9000u);
	ASSERT_EQ(st & (STORES_PHASE | STORES_STREAM), 0u);
	/* In a steady host: 2 streamed windows in every STORES_TRIAL + 2. */
	ASSERT_EQ(host(&st, rate, 9000, 3000, 100 * (STORES_TRIAL + 3)),
		  200);
}

TEST(follows_the_host_both_ways)
{
	uint32_t st = 0, rate[2] = {0, 0};

	host(&st, rate, 9000, 3000, 200);
	ASSERT(!(st & STORES_STREAM));
	/* The host turns slow for ordinary stores: the next trial that
	 * comes round streams, and streaming stays. */
	host(&st, rate, 1000, 3000, STORES_TRIAL + 3);
	ASSERT(st & STORES_STREAM);
	int n = host(&st, rate, 1000, 3000, 10 * (STORES_TRIAL + 3));
	ASSERT_EQ(n, 10 * (STORES_TRIAL + 3) - 20);
	/* And fast again: back to ordinary stores within two trials (the
	 * mean of the last two rates of each way). */
	host(&st, rate, 9000, 3000, 2 * (STORES_TRIAL + 3));
	ASSERT(!(st & STORES_STREAM));
}

/* Whatever a dead producer left in the word or the rates: a phase is one
 * of four, each goes somewhere, and no rate overflows. */
TEST(foreign_state_is_harmless)
{
	const uint32_t odd[] = {0xffffffffu, 0x80000007u, 7, 6, 5, 3};

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		uint32_t st = odd[i];
		uint32_t rate[2] = {0xffffffffu, 0xfffffffeu};
		host(&st, rate, 0xffffffffu, 0xffffffffu, 3 * STORES_TRIAL);
		ASSERT(rate[0] >= 0xfffffffeu && rate[1] >= 0xfffffffeu);
		host(&st, rate, 1000, 9000, 10 * STORES_TRIAL);
		ASSERT(st & STORES_STREAM);
	}
}

/* A queue whose consumer is elsewhere counts a window per wide lap (the
 * first only starts the clock), not in a compact lap, and tries the other
 * way at the STORES_TRIAL-th. */
TEST(queue_counts_wide_laps)
{
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	uint64_t lap, span;
	ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
	ASSERT_CMP(span, >, s->limit);
	static uint8_t in[4000], out[4000];
	uint64_t moved = 0;

	for (int i = 0; i < (int)sizeof(in); i++)
		in[i] = (uint8_t)i;
	while (moved < (STORES_TRIAL + 3) * span) {
		ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
		ASSERT_OK(mp_queue_put(q, in, sizeof(in), 0));
		ASSERT_EQ(mp_queue_get(q, out, sizeof(out), 0),
			  (ssize_t)sizeof(out));
		ASSERT(!memcmp(in, out, sizeof(in)));
		moved += HDR + sizeof(in);
	}
	ASSERT_CMP(atomic_load(&s->prod.stores_ns), >, 0);
	ASSERT_CMP(atomic_load(&s->prod.stores_rate[0]), >, 0);
	ASSERT_CMP(atomic_load(&s->prod.stores_rate[1]), >, 0);

	/* Consumer on our CPU: compact laps (from the lap after next), whose
	 * windows count nothing. */
	do {
		ASSERT_OK(mp_queue_put(q, in, sizeof(in), 0));
		ASSERT_EQ(mp_queue_get(q, out, sizeof(out), 0),
			  (ssize_t)sizeof(out));
		ASSERT_EQ(mp__queue_test_lap(q, -1, &lap, &span), 0);
	} while (lap & LAP_WIDE);
	uint32_t before = atomic_load(&s->prod.stores);
	uint32_t r0 = atomic_load(&s->prod.stores_rate[0]);
	uint32_t r1 = atomic_load(&s->prod.stores_rate[1]);
	for (moved = 0; moved < 8 * span; moved += HDR + sizeof(in)) {
		ASSERT_OK(mp_queue_put(q, in, sizeof(in), 0));
		ASSERT_EQ(mp_queue_get(q, out, sizeof(out), 0),
			  (ssize_t)sizeof(out));
	}
	ASSERT_EQ(mp__queue_test_lap(q, -1, &lap, &span), 0);
	ASSERT(!(lap & LAP_WIDE));
	ASSERT_EQ(atomic_load(&s->prod.stores), before);
	ASSERT_EQ(atomic_load(&s->prod.stores_rate[0]), r0);
	ASSERT_EQ(atomic_load(&s->prod.stores_rate[1]), r1);
	mp_queue_free(q);
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Records of 1-5 KB at every alignment, wrapping around the span, for a
 * consumer elsewhere, while the chooser's word takes random values (so
 * each record goes either way): every byte arrives, in order. */
TEST(either_way_keeps_every_byte)
{
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	static uint8_t in[5000], out[5000];
	uint32_t x = 2026, seq_in = 0, seq_out = 0, streamed = 0;
	uint64_t lap, span;

	for (int round = 0; round < 100000; round++) {
		uint32_t r = rnd(&x);
		ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
		atomic_store(&s->prod.stores, r);
		if (r % 3 < 2) {
			size_t len = NT_MIN + (r >> 8) % (sizeof(in) - NT_MIN);
			for (size_t i = 0; i < len; i++)
				in[i] = (uint8_t)(seq_in * 131 + i * 7);
			memcpy(in, &seq_in, sizeof(seq_in));
			int e = mp_queue_put(q, in, len, 0);
			if (e == 0) {
				seq_in++;
				streamed += (lap & LAP_WIDE) && stores_stream(r);
			} else {
				ASSERT_EQ(e, -ETIMEDOUT);
			}
		} else {
			ssize_t n = mp_queue_get(q, out, sizeof(out), 0);
			if (n == -ETIMEDOUT)
				continue;
			ASSERT_CMP(n, >=, (ssize_t)NT_MIN);
			uint32_t seq;
			memcpy(&seq, out, sizeof(seq));
			ASSERT_EQ(seq, seq_out);
			for (ssize_t i = sizeof(seq); i < n; i++)
				ASSERT_EQ(out[i], (uint8_t)(seq * 131 + i * 7));
			seq_out++;
		}
	}
	for (ssize_t n; (n = mp_queue_get(q, out, sizeof(out), 0)) >= 0;) {
		uint32_t seq;
		memcpy(&seq, out, sizeof(seq));
		ASSERT_EQ(seq, seq_out);
		seq_out++;
	}
	ASSERT_EQ(seq_out, seq_in);
	ASSERT_CMP(seq_in, >, 30000);
	ASSERT_CMP(streamed, >, 5000);
	mp_queue_free(q);
}

/* The streamed copies write exactly their bytes at every alignment and
 * length (the partial lines at either end with ordinary stores), and the
 * word copy pads its last word with zeros and writes nothing past it. */
TEST(nt_copies_are_exact)
{
	static uint8_t src[4200], dst[4400] __attribute__((aligned(64)));
	static uint8_t want[4400];
	uint32_t x = 7;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)rnd(&x);
	const size_t lens[] = {0, 1, 15, 63, 64, 65, 127, 128, 200, 255,
			       256, 257, 300, 1024, 4095, 4096, 4104, 4160};
	for (size_t o = 0; o < 64; o++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t len = lens[k];
			memset(dst, 0xa5, sizeof(dst));
			memcpy(want, dst, sizeof(want));
			memcpy(want + o, src, len);
			mp__nt_copy(dst + o, src, len);
			mp__nt_fence();
			ASSERT(!memcmp(dst, want, sizeof(dst)));
			if (o % 8)
				continue;
			memset(dst, 0xa5, sizeof(dst));
			memcpy(want, dst, sizeof(want));
			memset(want + o, 0, (len + 7) & ~(size_t)7);
			memcpy(want + o, src, len);
			mp__nt_copy_words(dst + o, src, len);
			mp__nt_fence();
			ASSERT(!memcmp(dst, want, sizeof(dst)));
		}
	}
}

TEST_MAIN(T(ordinary_until_a_trial_wins), T(follows_the_host_both_ways),
	  T(foreign_state_is_harmless), T_TIMEOUT(queue_counts_wide_laps, 60),
	  T_TIMEOUT(either_way_keeps_every_byte, 60), T(nt_copies_are_exact))
