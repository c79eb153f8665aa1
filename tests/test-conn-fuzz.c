/* SPDX-License-Identifier: MIT */
/* Connections: the frame and handshake parsers against hostile bytes, a
 * seeded, bounded fuzz (tests/fuzz-conn.h; tests/fuzz/fuzz-conn.c is the
 * libFuzzer target for longer runs). */
#include "fuzz-conn.h"
#include "test.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 16);
}

static size_t put_frame(uint8_t *p, char kind, const void *pay, uint32_t len)
{
	memset(p, 0, 8);
	p[0] = (uint8_t)kind;
	p[4] = (uint8_t)(len >> 24);
	p[5] = (uint8_t)(len >> 16);
	p[6] = (uint8_t)(len >> 8);
	p[7] = (uint8_t)len;
	memcpy(p + 8, pay, len);
	return 8 + len;
}

/* A well-formed stream (after the selector byte), to be mutated. */
static size_t seed(uint8_t *p, uint8_t mode)
{
	size_t n = 0;
	uint8_t pay[300];

	p[n++] = mode;
	if (mode & 1) {
		/* The no-key answer; a keyed one gets a random "answer". */
		uint8_t ans[72] = "MPCONN1";
		for (int i = 8; i < 72; i++)
			ans[i] = (uint8_t)rnd();
		ans[7] = mode & 2 ? 1 : 0;
		n += put_frame(p + n, 'M', ans, mode & 2 ? 72 : 8);
	}
	int frames = (int)(rnd() % 6);
	for (int f = 0; f < frames; f++) {
		uint32_t len = rnd() % sizeof(pay);
		for (uint32_t i = 0; i < len; i++)
			pay[i] = (uint8_t)rnd();
		n += rnd() % 5 ? put_frame(p + n, 'M', pay, len) :
				 put_frame(p + n, 'F', pay, 0);
	}
	return n;
}

static size_t mutate(uint8_t *p, size_t n, size_t cap)
{
	int k = (int)(rnd() % 4);
	for (int i = 0; i < k && n > 1; i++) {
		size_t at = 1 + rnd() % (n - 1);
		switch (rnd() % 4) {
		case 0:
			p[at] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			p[at] = (uint8_t)rnd();
			break;
		case 2:
			n = at; /* truncate */
			break;
		default:
			if (n < cap)
				p[n++] = (uint8_t)rnd();
		}
	}
	return n;
}

TEST(fuzz_frames_and_handshakes)
{
	static uint8_t buf[8192];
	double t0 = test_now();
	int runs = 0;

	for (int i = 0; i < 4000 && test_now() - t0 < 15; i++, runs++) {
		size_t n;
		if (i % 10 == 0) {
			n = 1 + rnd() % 600; /* plain noise */
			for (size_t j = 0; j < n; j++)
				buf[j] = (uint8_t)rnd();
		} else {
			n = seed(buf, (uint8_t)(rnd() % 4));
			n = mutate(buf, n, sizeof(buf));
		}
		fuzz_one(buf, n);
	}
	ASSERT(runs >= 200);
	printf("# %d inputs\n", runs);
}

TEST_MAIN(T_TIMEOUT(fuzz_frames_and_handshakes, 60))
