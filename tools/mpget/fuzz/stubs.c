/* SPDX-License-Identifier: MIT */
/*
 * msg.c's errorf() for the fuzz targets: it formats the message, so a bad
 * argument is still found, and prints nothing.
 */
#include <stdarg.h>
#include <stdio.h>

#include "fuzz.h"

void errorf(const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}
