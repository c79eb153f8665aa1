#ifndef MULTIPROC_QUEUE_H
#define MULTIPROC_QUEUE_H

#include "common.h"

MP_BEGIN_DECLS

/*
 * Queue: bounded by bytes, many producers and many consumers, messages of
 * any length from 0 up to the queue's capacity, FIFO per producer.
 * (Contract from ARCHITECTURE.md; the queue module documents the rest.)
 */
typedef struct mp_queue mp_queue;

/* capacity_bytes 0 = a sensible default.  NULL + errno on failure. */
MP_EXTERN mp_queue *mp_queue_new(size_t capacity_bytes);
MP_EXTERN int mp_queue_put(mp_queue *q, const void *msg, size_t len,
			   double timeout_s);
/* Length of the message; -EMSGSIZE leaves it queued; MP_ECLOSED once
 * closed and drained. */
MP_EXTERN ssize_t mp_queue_get(mp_queue *q, void *buf, size_t cap,
			       double timeout_s);
/* No more puts. */
MP_EXTERN int mp_queue_close(mp_queue *q);
MP_EXTERN void mp_queue_free(mp_queue *q);

MP_END_DECLS

#endif
