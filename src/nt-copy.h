/* SPDX-License-Identifier: MIT */
#ifndef MP_NT_COPY_H
#define MP_NT_COPY_H
/*
 * Copies with non-temporal (streaming) stores, for bytes that another
 * process reads next, in shared memory that is written over and over: a
 * queue's ring, a stream's recycled batch blocks.
 *
 * WHY: the lines such a copy writes were last read by the other side, so
 * each ordinary store first fetches its line back from the reader's cache
 * (a read-for-ownership, ~100 ns across CPUs here).  The store buffer
 * fills with stores waiting for them and the writer stalls: perf put 29%
 * of a stream's parent in the first instruction after a call (the call's
 * push of the return address waiting for a store-buffer entry).  A
 * streaming store takes no line: it combines into a whole line and goes
 * to memory, invalidating the reader's copy, and the reader's sequential
 * reads are prefetched from memory.  The writer must fence (mp__nt_fence)
 * before the release store that publishes the bytes: streaming stores are
 * not ordered by it.
 *
 * Elsewhere than x86-64 these are plain copies.
 */
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

static inline void mp__nt_store8(void *dst, uint64_t v)
{
#if defined(__x86_64__)
	_mm_stream_si64((long long *)dst, (long long)v);
#else
	memcpy(dst, &v, 8);
#endif
}

static inline void mp__nt_store4(void *dst, uint32_t v)
{
#if defined(__x86_64__)
	_mm_stream_si32((int *)dst, (int)v);
#else
	memcpy(dst, &v, 4);
#endif
}

static inline void mp__nt_fence(void)
{
#if defined(__x86_64__)
	_mm_sfence();
#endif
}

/* Copy len bytes to dst, exactly: the whole lines in between streamed,
 * the partial lines at either end with ordinary stores.  Streaming only
 * whole, aligned lines matters: a line written partly by streaming
 * stores and partly by ordinary ones, or streamed in pieces that straddle
 * two lines, leaves the write-combining buffers before it is whole.  A
 * queue's 4 KiB records (8 bytes past a line's start, then 16, ...),
 * one side per CPU: streamed from 16-aligned addresses 1.9-2.2 M msg/s,
 * whole lines 2.8-3.5, interleaved. */
static inline void mp__nt_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
#if defined(__x86_64__)
	size_t head = (64 - ((uintptr_t)dst & 63)) & 63;

	if (len < 64 + head) {
		memcpy(dst, src, len);
		return;
	}
	memcpy(dst, src, head);
	dst += head;
	src += head;
	len -= head;
	for (; len >= 64; dst += 64, src += 64, len -= 64) {
		const __m128i *from = (const __m128i *)(const void *)src;
		__m128i *to = (__m128i *)(void *)dst;
		__m128i v0 = _mm_loadu_si128(from);
		__m128i v1 = _mm_loadu_si128(from + 1);
		__m128i v2 = _mm_loadu_si128(from + 2);
		__m128i v3 = _mm_loadu_si128(from + 3);
		_mm_stream_si128(to, v0);
		_mm_stream_si128(to + 1, v1);
		_mm_stream_si128(to + 2, v2);
		_mm_stream_si128(to + 3, v3);
	}
#endif
	memcpy(dst, src, len);
}

/* Copy len bytes to an 8-aligned dst in whole streamed words: writes
 * (len + 7) & ~7 bytes, the last word padded with zeros.  Never reads
 * past src + len.  Every store streams, also in the partial lines at the
 * ends, which the items before and after stream too. */
static inline void mp__nt_copy_words(uint8_t *dst, const uint8_t *src,
				     size_t len)
{
	uint64_t w;

	if (len == 8) { /* a stream's common item: one store, no loop */
		memcpy(&w, src, 8);
		mp__nt_store8(dst, w);
		return;
	}
	if (len >= 256) { /* long: whole lines beat words */
		for (; (uintptr_t)dst & 63; dst += 8, src += 8, len -= 8) {
			memcpy(&w, src, 8);
			mp__nt_store8(dst, w);
		}
		size_t body = len & ~(size_t)63;
		mp__nt_copy(dst, src, body);
		dst += body;
		src += body;
		len -= body;
	}
	for (; len >= 8; dst += 8, src += 8, len -= 8) {
		memcpy(&w, src, 8);
		mp__nt_store8(dst, w);
	}
	if (len) {
		w = 0;
		memcpy(&w, src, len);
		mp__nt_store8(dst, w);
	}
}

#endif
