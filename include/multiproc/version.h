#ifndef MULTIPROC_VERSION_H
#define MULTIPROC_VERSION_H

/* Versions with the same major number are ABI stable, including the layout
 * of every object that lives in shared memory. */
#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION_HEX                                                      \
	((MP_VERSION_MAJOR << 16) | (MP_VERSION_MINOR << 8) | MP_VERSION_PATCH)

#endif
