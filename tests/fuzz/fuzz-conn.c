/*
 * libFuzzer target for the connection framing and handshake parsers
 * (tests/fuzz-conn.h says what an input means).  Build and run from the
 * top of the tree (Debian: apt-get install clang libssl-dev):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -DMP_BUILDING_LIBRARY -Iinclude -Isrc -Itests \
 *     tests/fuzz/fuzz-conn.c $(ls src/[a-z]*.c) -lcrypto -lpthread -lrt \
 *     -o build/fuzz-conn
 *   mkdir -p build/fuzz-corpus
 *   build/fuzz-conn -max_total_time=60 -max_len=4096 build/fuzz-corpus
 */
#include "fuzz-conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);
	return 0;
}
