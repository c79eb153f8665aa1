/* SPDX-License-Identifier: MIT */
/* How a put writes a long record in a wide lap (src/queue-stores.h): the
 * chooser follows the faster way, tries the other every STORES_TRIAL
 * windows without counting the window after a change, survives foreign
 * values; a queue counts its windows; and streamed copies (nt-copy.h) are
 * exact at every alignment, whichever way a record goes. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nt-copy.h"
#include "queue-stores.h"
#include "spin.h"
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

TEST(trials_that_lose_change_nothing)
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
	/* In a steady host: 2 streamed windows in every STORES_TRIAL + 3. */
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
	/* And fast again: back to ordinary stores at the next trial (a
	 * trial's rate is its own window's). */
	host(&st, rate, 9000, 3000, STORES_TRIAL + 3);
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

static uint8_t in[5000], out[5000];

/* One put and one get of a 4000-byte record, the consumer faked to be
 * elsewhere (far) or left where it ran, here; returns the record's
 * crossings of a multiple of the span. */
static int move_one(mp_queue *q, bool far)
{
	struct queue_shared *s = shared(q);
	uint64_t lap, span, tail = atomic_load(&s->prod.pos);

	if (far)
		ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
	ASSERT_OK(mp_queue_put(q, in, 4000, 0));
	ASSERT_EQ(mp_queue_get(q, out, sizeof(out), 0), 4000);
	ASSERT(!memcmp(in, out, 4000));
	return ((tail + HDR + 4000) ^ tail) >= s->ring_size;
}

/* A queue whose consumer is elsewhere counts a window per wide lap (the
 * first only starts the clock) and tries the other way at the
 * STORES_TRIAL-th; windows of a compact lap, of a producer that paused,
 * or whose clock went back count nothing. */
TEST(queue_counts_wide_laps)
{
	cpu_set_t old;
	test_pin_here(&old);
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	uint64_t lap, span;
	ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
	ASSERT_CMP(span, >, s->limit);
	for (int i = 0; i < (int)sizeof(in); i++)
		in[i] = (uint8_t)i;

	/* Until the first trial was measured; a window dropped as idle on a
	 * loaded machine only delays it. */
	int crossings = 0;
	while (!atomic_load(&s->prod.stores_rate[1]) &&
	       crossings < 8 * STORES_TRIAL)
		crossings += move_one(q, true);
	ASSERT_CMP(atomic_load(&s->prod.stores_rate[1]), >, 0);
	ASSERT_CMP(atomic_load(&s->prod.stores_rate[0]), >, 0);
	/* Windows ended: crossings - 1, of which two were the trial's. */
	uint32_t counted = atomic_load(&s->prod.stores) / STORES_COUNT;
	ASSERT_CMP(counted, >=, (uint32_t)STORES_TRIAL);
	ASSERT_CMP(counted, <=, (uint32_t)crossings - 3);

	/* A window that began 0.2 s ago, or in the future: not counted. */
	const int64_t shifts[] = {-200 * 1000 * 1000, 1000000000000};
	for (int k = 0; k < 2; k++) {
		uint32_t before = atomic_load(&s->prod.stores) & ~STORES_SEEN;
		atomic_store(&s->prod.stores_ns,
			     (uint64_t)(mp__now_ns() + shifts[k]));
		while (!move_one(q, true))
			;
		ASSERT_EQ(atomic_load(&s->prod.stores) & ~STORES_SEEN, before);
	}

	/* Consumer on our CPU: compact laps (from the lap after next), whose
	 * windows count nothing. */
	do {
		move_one(q, false);
		ASSERT_EQ(mp__queue_test_lap(q, -1, &lap, &span), 0);
	} while (lap & LAP_WIDE);
	uint32_t before = atomic_load(&s->prod.stores);
	uint32_t r0 = atomic_load(&s->prod.stores_rate[0]);
	uint32_t r1 = atomic_load(&s->prod.stores_rate[1]);
	for (crossings = 0; crossings < 8;)
		crossings += move_one(q, false);
	ASSERT_EQ(mp__queue_test_lap(q, -1, &lap, &span), 0);
	ASSERT(!(lap & LAP_WIDE));
	ASSERT_EQ(atomic_load(&s->prod.stores), before);
	ASSERT_EQ(atomic_load(&s->prod.stores_rate[0]), r0);
	ASSERT_EQ(atomic_load(&s->prod.stores_rate[1]), r1);
	mp_queue_free(q);
	ASSERT_EQ(sched_setaffinity(0, sizeof(old), &old), 0);
}

/* A queue of short messages never marks a window seen, so it reads no
 * clock: its windows start nothing. */
TEST(short_messages_count_nothing)
{
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	uint64_t lap, span, moved = 0;

	while (moved < 4 * s->ring_size) {
		ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
		ASSERT_OK(mp_queue_put(q, in, NT_MIN - 1, 0));
		ASSERT_EQ(mp_queue_get(q, out, sizeof(out), 0),
			  (ssize_t)NT_MIN - 1);
		moved += HDR + align8(NT_MIN - 1);
	}
	ASSERT_EQ(atomic_load(&s->prod.stores), 0u);
	ASSERT_EQ(atomic_load(&s->prod.stores_ns), 0u);
	mp_queue_free(q);
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Message seq of len bytes: its number, then bytes that depend on both. */
static void fill(uint8_t *m, uint32_t seq, size_t len)
{
	memcpy(m, &seq, sizeof(seq));
	for (size_t i = sizeof(seq); i < len; i++)
		m[i] = (uint8_t)(seq * 131 + i * 7);
}

/* The number of a whole message, or UINT32_MAX for a damaged one. */
static uint32_t check(const uint8_t *m, ssize_t n)
{
	uint32_t seq;

	if (n < (ssize_t)sizeof(seq))
		return UINT32_MAX;
	memcpy(&seq, m, sizeof(seq));
	for (ssize_t i = sizeof(seq); i < n; i++)
		if (m[i] != (uint8_t)(seq * 131 + (size_t)i * 7))
			return UINT32_MAX;
	return seq;
}

/* Records of 1-5 KB at every alignment, wrapping around the span, for a
 * consumer elsewhere, while the chooser's word takes random values: each
 * way writes thousands of records, and every byte arrives, in order. */
TEST(either_way_keeps_every_byte)
{
	cpu_set_t old;
	test_pin_here(&old);
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	uint32_t x = 2026, seq_in = 0, seq_out = 0, ways[2] = {0, 0};
	uint64_t lap, span;

	for (int round = 0; round < 100000; round++) {
		uint32_t r = rnd(&x);
		ASSERT_EQ(mp__queue_test_lap(q, 1, &lap, &span), 0);
		atomic_store(&s->prod.stores, r);
		if (r % 3 < 2) {
			size_t len = NT_MIN + (r >> 8) % (sizeof(in) - NT_MIN);
			fill(in, seq_in, len);
			uint64_t tail = atomic_load(&s->prod.pos);
			bool way = stream_for(s, mask_at(s, tail), len,
					      mp__cpu_here());
			int e = mp_queue_put(q, in, len, 0);
			if (e == 0) {
				seq_in++;
				ways[way]++;
			} else {
				ASSERT_EQ(e, -ETIMEDOUT);
			}
		} else {
			ssize_t n = mp_queue_get(q, out, sizeof(out), 0);
			if (n == -ETIMEDOUT)
				continue;
			ASSERT_CMP(n, >=, (ssize_t)NT_MIN);
			ASSERT_EQ(check(out, n), seq_out);
			seq_out++;
		}
	}
	for (ssize_t n; (n = mp_queue_get(q, out, sizeof(out), 0)) >= 0;) {
		ASSERT_EQ(check(out, n), seq_out);
		seq_out++;
	}
	ASSERT_EQ(seq_out, seq_in);
	ASSERT_CMP(ways[0], >, 5000);
	ASSERT_CMP(ways[1], >, 5000);
	mp_queue_free(q);
	ASSERT_EQ(sched_setaffinity(0, sizeof(old), &old), 0);
}

/* The same between two processes, the consumer on the other CPU where
 * there is one: what a consumer sees of a streamed record after the tail
 * that published it is the whole record (the producer's fence). */
TEST(either_way_between_processes)
{
	enum { N = 40000 };
	mp_queue *q = mp_queue_new(64 << 10);
	ASSERT_NOT_NULL(q);
	struct queue_shared *s = shared(q);
	cpu_set_t old;
	ASSERT_EQ(sched_getaffinity(0, sizeof(old), &old), 0);
	int cpus = CPU_COUNT(&old);

	pid_t pid = fork();
	ASSERT_CMP(pid, >=, 0);
	if (pid == 0) {
		if (cpus > 1) {
			cpu_set_t one;
			CPU_ZERO(&one);
			for (int c = CPU_SETSIZE - 1; c >= 0; c--)
				if (CPU_ISSET(c, &old)) {
					CPU_SET(c, &one);
					break;
				}
			sched_setaffinity(0, sizeof(one), &one);
		}
		for (uint32_t i = 0; i < N; i++) {
			ssize_t n = mp_queue_get(q, out, sizeof(out), 30);
			if (check(out, n) != i)
				_exit(1);
		}
		_exit(0);
	}
	uint32_t x = 99;
	for (uint32_t i = 0; i < N; i++) {
		uint32_t r = rnd(&x);
		/* A trial or either steady way, as a dead producer or the
		 * chooser may leave it. */
		atomic_store(&s->prod.stores, r & (STORES_STREAM | STORES_PHASE));
		size_t len = NT_MIN + (r >> 8) % (sizeof(in) - NT_MIN);
		fill(in, i, len);
		ASSERT_OK(mp_queue_put(q, in, len, 30));
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mp_queue_free(q);
}

/* The streamed copies write exactly their bytes at every alignment and
 * length (the partial lines at either end with ordinary stores), and the
 * word copy pads its last word with zeros and writes nothing past it.
 * The source ends at an unmapped page: neither reads past its end. */
TEST(nt_copies_are_exact)
{
	static uint8_t dst[4400] __attribute__((aligned(64)));
	static uint8_t want[4400];
	long page = sysconf(_SC_PAGESIZE);
	size_t room = 2 * (size_t)page;
	uint8_t *map = mmap(NULL, room + (size_t)page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT(map != MAP_FAILED);
	ASSERT_EQ(mprotect(map + room, (size_t)page, PROT_NONE), 0);
	uint32_t x = 7;

	for (size_t i = 0; i < room; i++)
		map[i] = (uint8_t)rnd(&x);
	const size_t lens[] = {0, 1, 15, 63, 64, 65, 127, 128, 200, 255,
			       256, 257, 300, 1024, 4095, 4096, 4104, 4160};
	for (size_t o = 0; o < 64; o++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t len = lens[k];
			const uint8_t *src = map + room - len;
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
	ASSERT_EQ(munmap(map, room + (size_t)page), 0);
}

TEST_MAIN(T(trials_that_lose_change_nothing), T(follows_the_host_both_ways),
	  T(foreign_state_is_harmless), T_TIMEOUT(queue_counts_wide_laps, 60),
	  T(short_messages_count_nothing),
	  T_TIMEOUT(either_way_keeps_every_byte, 60),
	  T_TIMEOUT(either_way_between_processes, 60), T(nt_copies_are_exact))
