#ifndef MULTIPROC_POOL_H
#define MULTIPROC_POOL_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Pool: worker processes that run tasks.  (Contract from ARCHITECTURE.md;
 * the pool module documents the rest.)
 */
typedef struct mp_pool mp_pool;

/* Non-zero = the item failed. */
typedef int (*mp_map_fn)(const void *in, void *out);

/* processes 0 = mp_cpu_count(). */
MP_EXTERN mp_pool *mp_pool_new(int processes);
/* Returns 0, the first item error, or MP_EWORKER if a worker died; the pool
 * replaces dead workers and stays usable.  chunksize 0 = auto. */
MP_EXTERN int mp_pool_map(mp_pool *pool, mp_map_fn fn, const void *in,
			  size_t in_size, void *out, size_t out_size, size_t n,
			  size_t chunksize);
MP_EXTERN int mp_pool_close(mp_pool *pool);
MP_EXTERN int mp_pool_join(mp_pool *pool);
MP_EXTERN int mp_pool_terminate(mp_pool *pool);
MP_EXTERN void mp_pool_free(mp_pool *pool);

MP_END_DECLS

#endif
