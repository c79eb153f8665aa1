#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

/* Declarations shared inside the library (mp__ prefix); never installed. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "multiproc.h"

#define MP__HIDDEN __attribute__((visibility("hidden")))
#define MP__LIKELY(x) __builtin_expect(!!(x), 1)
#define MP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MP__CACHELINE 64

/* Only impossible states come here: it prints file:line and aborts. */
_Noreturn void mp__fatal(const char *file, int line, const char *what);
#define MP__FATAL(what) mp__fatal(__FILE__, __LINE__, (what))

/* Identity of the calling thread, cached (gettid is a system call, and
 * system calls cost a microsecond on the VMs we run on).  The cache is reset
 * in the child of every fork().  Inline: a lock's fast path reads it. */
#define MP__TLS __attribute__((tls_model("initial-exec"))) __thread
extern MP__TLS pid_t mp__self_tid MP__HIDDEN;
extern MP__TLS uint64_t mp__self_start_time MP__HIDDEN;
extern MP__TLS uint32_t mp__self_lock_id MP__HIDDEN;
pid_t mp__tid_slow(void);
uint64_t mp__self_start_slow(void);
uint32_t mp__lock_id_slow(void);

static inline pid_t mp__tid(void)
{
	pid_t t = mp__self_tid;
	return MP__LIKELY(t != 0) ? t : mp__tid_slow();
}

/* The start time of task `tid` (clock ticks since boot, /proc stat field 22)
 * or 0 when it is gone.  Together with the tid it names a task for good:
 * a recycled tid has a later start time. */
uint64_t mp__task_start(pid_t tid);

/* The calling thread's own start time, cached like mp__tid(). */
static inline uint64_t mp__self_start(void)
{
	uint64_t s = mp__self_start_time;
	return MP__LIKELY(s != 0) ? s : mp__self_start_slow();
}

/* The calling thread as a lock owner: tid | (start time & 0x1ff) << 22
 * (see lock.c), cached like mp__tid(). */
static inline uint32_t mp__lock_id(void)
{
	uint32_t id = mp__self_lock_id;
	return MP__LIKELY(id != 0) ? id : mp__lock_id_slow();
}

/* Whether task `tid` still runs and the low 9 bits of its start time are
 * `tag`: false when it is gone, a zombie, or a younger task with its tid. */
bool mp__task_alive_tag(pid_t tid, uint32_t tag);

/* Whether task `tid` still runs: false when it is gone, a zombie, or its
 * tid now names a younger task than the one that started at `start` (when
 * start is not 0). */
bool mp__task_alive(pid_t tid, uint64_t start);

/* The shared arena exists once this returns 0; process.c calls it before
 * every fork so that children share it. */
int mp__arena_ensure(void);

/* For tests: the arena's lock, and how often its free lists were rebuilt
 * after a process died holding it. */
mp_lock *mp__arena_lock(void);
uint64_t mp__arena_rebuilds(void);

/* Hooks run in the child after fork() (registered once by self.c). */
void mp__process_atfork_child(void);

/* Whether l is an initialized lock. */
bool mp__lock_is_valid(mp_lock *l);

/* Whether the calling thread holds l (false when l is not valid).  Only
 * the answer "true" is stable: the holder alone can change it. */
bool mp__lock_is_mine(mp_lock *l);

/* For tests of queue.c: take the producer (side 0) or consumer (side 1)
 * lock of a queue and return holding it, as a process killed inside a put
 * or get would; with side 0 also scribble a half record past the tail. */
int mp__queue_test_hold(mp_queue *q, int side);

#endif
