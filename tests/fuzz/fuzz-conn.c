/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the connection framing and handshake parsers
 * (tests/fuzz-conn.h says what an input means).  `make fuzz` builds it
 * (CMake -DMP_FUZZ=ON with clang) and runs it with mpget's targets.
 */
#include "fuzz-conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);
	return 0;
}
