/* SPDX-License-Identifier: MIT */
/* Start methods: every case runs under fork, forkserver and spawn (the
 * _fork, _forkserver and _spawn cases), with the same expectations except
 * where the method is the point (the threaded-parent hazard, a function
 * the child's image lacks, a killed forkserver). */
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "start.h"
#include "test.h"

static mp_process *start(int method, int (*fn)(void *), const void *arg,
			 size_t len)
{
	mp_process *p = mp_process_new_args(fn, arg, len);
	ASSERT_NOT_NULL(p);
	ASSERT_OK(mp_process_set_start_method(p, method));
	ASSERT_OK(mp_process_start(p));
	return p;
}

static int join_code(mp_process *p)
{
	ASSERT_OK(mp_process_join(p, 30));
	int c = mp_process_exitcode(p);
	mp_process_free(p);
	return c;
}

/* ---- argument bytes ---- */

#define NARG 4099

static int check_bytes(void *arg)
{
	const unsigned char *b = arg;
	if ((uintptr_t)b % 16)
		return 3;
	for (int i = 0; i < NARG; i++)
		if (b[i] != (unsigned char)(i * 7 + 1))
			return 1;
	return 0;
}

static void args_exact(int m)
{
	unsigned char *buf = malloc(NARG);
	for (int i = 0; i < NARG; i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	mp_process *p = mp_process_new_args(check_bytes, buf, NARG);
	ASSERT_NOT_NULL(p);
	memset(buf, 0, NARG); /* copied at new_args: the child never sees this */
	free(buf);
	ASSERT_OK(mp_process_set_start_method(p, m));
	ASSERT_EQ(mp_process_start_method(p), m);
	ASSERT_OK(mp_process_start(p));
	ASSERT_EQ(join_code(p), 0);
	/* No bytes at all. */
	ASSERT_EQ(join_code(start(m, check_bytes, NULL, 0)) != 0, 1);
}

/* ---- exit codes and signals ---- */

static int return_int(void *arg)
{
	return *(int *)arg;
}

static int raise_sig(void *arg)
{
	raise(*(int *)arg);
	return 100;
}

static _Noreturn int sleep_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
}

static void exit_codes(int m)
{
	int codes[] = {0, 1, 42, 255, 256, 300};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		ASSERT_EQ(join_code(start(m, return_int, &codes[i],
					  sizeof(int))),
			  codes[i] & 0xff);
}

static void signals(int m)
{
	int sigs[] = {SIGTERM, SIGKILL, SIGABRT, SIGUSR1}; /* no SEGV: ASan takes it */
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		ASSERT_EQ(join_code(start(m, raise_sig, &sigs[i], sizeof(int))),
			  -sigs[i]);
	mp_process *p = start(m, sleep_forever, NULL, 0);
	ASSERT(mp_process_is_alive(p));
	ASSERT_ERR(mp_process_join(p, 0.05), -ETIMEDOUT);
	ASSERT_EQ(mp_process_exitcode(p), MP_EXITCODE_NONE);
	struct pollfd pfd = {.fd = mp_process_sentinel(p), .events = POLLIN};
	ASSERT(pfd.fd >= 0);
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	ASSERT_OK(mp_process_terminate(p));
	ASSERT_EQ(poll(&pfd, 1, 30000), 1);
	ASSERT_EQ(join_code(p), -SIGTERM);
	p = start(m, sleep_forever, NULL, 0);
	ASSERT_OK(mp_process_kill(p));
	ASSERT_EQ(join_code(p), -SIGKILL);
}

/* ---- names and parents ---- */

struct who {
	char name[64];
	pid_t parent;
};

static int tell_who(void *arg)
{
	struct who *w = *(struct who **)arg; /* in the shared arena */
	snprintf(w->name, sizeof(w->name), "%s", mp_current_process_name());
	w->parent = mp_parent_pid();
	return 0;
}

static void names(int m)
{
	struct who *w = mp_shared_alloc(sizeof(*w));
	ASSERT_NOT_NULL(w);
	mp_process *p = mp_process_new_args(tell_who, &w, sizeof(w));
	ASSERT_OK(mp_process_set_start_method(p, m));
	ASSERT_OK(mp_process_set_name(p, "indexer"));
	ASSERT_OK(mp_process_start(p));
	ASSERT_EQ(join_code(p), 0);
	ASSERT(strcmp(w->name, "indexer") == 0);
	ASSERT_EQ(w->parent, getpid()); /* a forkserver child is ours too */
	mp_shared_free(w);
}

/* ---- daemon children die with their parent ---- */

static int parent_of(void *arg)
{
	int *fds = arg; /* [1] write end, [2] method */
	if (fds[2] == MP_START_FORKSERVER && mp_set_start_method(fds[2]))
		return 1;
	mp_process *c = mp_process_new(sleep_forever, NULL);
	mp_process_set_daemon(c, true);
	mp_process_set_start_method(c, fds[2]);
	if (mp_process_start(c))
		return 1;
	pid_t pid = mp_process_pid(c);
	if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid))
		return 1;
	pause();
	return 0;
}

static void daemon_dies(int m)
{
	int fds[3];
	ASSERT_OK(pipe(fds));
	fds[2] = m;
	pid_t parent = test_fork(parent_of, fds);
	pid_t child;
	ASSERT_EQ(read(fds[0], &child, sizeof(child)), sizeof(child));
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	ASSERT(pfd >= 0);
	kill(parent, SIGKILL);
	ASSERT_EQ(test_wait(parent), -SIGKILL);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	ASSERT_EQ(poll(&p, 1, 20000), 1); /* gone, not left running */
	close(pfd);
	close(fds[0]);
	close(fds[1]);
}

/* ---- a shared lock and counter ---- */

struct counter {
	mp_lock *lock;
	long n;
};

static int add_many(void *arg)
{
	struct counter *c = *(struct counter **)arg;
	for (int i = 0; i < 20000; i++) {
		if (mp_lock_acquire(c->lock, MP_FOREVER))
			return 1;
		c->n++;
		mp_lock_release(c->lock);
	}
	return 0;
}

static void shared_counter(int m)
{
	struct counter *c = mp_shared_alloc(sizeof(*c));
	ASSERT_NOT_NULL(c);
	c->lock = mp_lock_new();
	ASSERT_NOT_NULL(c->lock);
	mp_process *p[4];
	for (int i = 0; i < 4; i++)
		p[i] = start(m, add_many, &c, sizeof(c));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(join_code(p[i]), 0);
	ASSERT_EQ(c->n, 80000);
	mp_lock_free(c->lock);
	mp_shared_free(c);
}

/* ---- a thread holds a mutex while the child starts ---- */

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int held[2], go[2];

static void *logger(void *arg)
{
	(void)arg;
	char c;
	pthread_mutex_lock(&log_mutex);
	ASSERT_EQ(write(held[1], "h", 1), 1);
	ASSERT_EQ(read(go[0], &c, 1), 1);
	pthread_mutex_unlock(&log_mutex);
	return NULL;
}

static int take_log_mutex(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&log_mutex);
	pthread_mutex_unlock(&log_mutex);
	return 7;
}

static void threaded_parent(int m)
{
	if (m == MP_START_FORKSERVER)
		ASSERT_OK(mp_set_start_method(m)); /* before the thread */
	ASSERT_OK(pipe(held));
	ASSERT_OK(pipe(go));
	pthread_t t;
	ASSERT_OK(pthread_create(&t, NULL, logger, NULL));
	char c;
	ASSERT_EQ(read(held[0], &c, 1), 1);
	mp_process *p = start(m, take_log_mutex, NULL, 0);
	int r = mp_process_join(p, m == MP_START_FORK ? 0.5 : 30);
	if (m == MP_START_FORK) {
		/* The fork copied a mutex its holder never releases. */
		ASSERT_ERR(r, -ETIMEDOUT);
		ASSERT_OK(mp_process_kill(p));
		ASSERT_EQ(join_code(p), -SIGKILL);
	} else {
		ASSERT_OK(r);
		ASSERT_EQ(join_code(p), 7);
	}
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_OK(pthread_join(t, NULL));
}

/* ---- a function the child's image lacks ---- */

static void dlopened_target(int m)
{
	if (m == MP_START_FORKSERVER)
		ASSERT_OK(mp_set_start_method(m)); /* before the dlopen */
	void *h = dlopen(MP_TEST_PLUGIN, RTLD_NOW);
	ASSERT_NOT_NULL(h);
	int (*fn)(void *) = (int (*)(void *))dlsym(h, "mp_test_plugin_target");
	ASSERT_NOT_NULL(fn);
	mp_process *p = mp_process_new_args(fn, NULL, 0);
	ASSERT_OK(mp_process_set_start_method(p, m));
	if (m == MP_START_FORK) {
		ASSERT_OK(mp_process_start(p));
		ASSERT_EQ(join_code(p), 77);
	} else {
		ASSERT_ERR(mp_process_start(p), -ENOENT);
		ASSERT_EQ(mp_process_pid(p), 0);
		mp_process_free(p);
		/* The parent goes on, and so do other starts. */
		int code = 5;
		ASSERT_EQ(join_code(start(m, return_int, &code, sizeof(code))),
			  5);
	}
	ASSERT_EQ(mp_active_children(NULL, 0), 0);
	dlclose(h);
}

/* ---- pools ---- */

struct item {
	long v;
	_Atomic int *died; /* in the shared arena: die on item 7, once */
};

static int square(const void *in, void *out)
{
	const struct item *it = in;
	if (it->v == 7 && it->died && atomic_exchange(it->died, 1) == 0)
		raise(SIGKILL);
	*(long *)out = it->v * it->v;
	return 0;
}

static int plugin_task(const void *in, void *out)
{
	(void)in;
	*(long *)out = 1;
	return 0;
}

#define NITEMS 1000

static void pool_map(int m)
{
	_Atomic int *died = mp_shared_alloc(sizeof(*died));
	ASSERT_NOT_NULL(died);
	struct item *in = calloc(NITEMS, sizeof(*in));
	long *out = calloc(NITEMS, sizeof(*out));
	for (int i = 0; i < NITEMS; i++)
		in[i].v = i;
	mp_pool_opts o = {.processes = 2, .start_method = m, .retries = 1};
	mp_pool *pool = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(pool);
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
			      sizeof(*out), NITEMS, 0));
	for (int i = 0; i < NITEMS; i++)
		ASSERT_EQ(out[i], (long)i * i);
	/* A worker dies on item 7: its chunk runs again on a new one. */
	pid_t before[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, before, 2), 2);
	memset(out, 0, NITEMS * sizeof(*out));
	for (int i = 0; i < NITEMS; i++)
		in[i].died = died;
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
			      sizeof(*out), NITEMS, 10));
	ASSERT_EQ(atomic_load(died), 1);
	for (int i = 0; i < NITEMS; i++)
		ASSERT_EQ(out[i], (long)i * i);
	pid_t after[2];
	ASSERT_EQ(mp_pool_worker_pids(pool, after, 2), 2);
	ASSERT(after[0] != before[0] || after[1] != before[1]);
	/* And again, without retries left to spend: the pool goes on. */
	for (int i = 0; i < NITEMS; i++)
		in[i].died = NULL;
	ASSERT_OK(mp_pool_map(pool, square, in, sizeof(*in), out,
			      sizeof(*out), NITEMS, 0));
	ASSERT_EQ(out[NITEMS - 1], (long)(NITEMS - 1) * (NITEMS - 1));
	mp_pool_free(pool);
	free(in);
	free(out);
	mp_shared_free((void *)died);
}

static void pool_plugin_task(int m)
{
	/* The pool exists before the dlopen: its workers lack the library
	 * unless they are forks made after it (a replaced fork worker). */
	mp_pool_opts o = {.processes = 1, .start_method = m};
	mp_pool *pool = mp_pool_new_opts(&o);
	ASSERT_NOT_NULL(pool);
	void *h = dlopen(MP_TEST_PLUGIN, RTLD_NOW);
	ASSERT_NOT_NULL(h);
	long in = 0, out = 0;
	int r = mp_pool_map(pool, plugin_task, &in, sizeof(in), &out,
			    sizeof(out), 1, 1);
	ASSERT_OK(r); /* plugin_task is ours: always found */
	ASSERT_EQ(out, 1);
	mp_map_fn fn = (mp_map_fn)dlsym(h, "mp_test_plugin_map");
	ASSERT_NOT_NULL(fn);
	r = mp_pool_map(pool, fn, &in, sizeof(in), &out, sizeof(out), 1, 1);
	if (m == MP_START_FORK) {
		/* A fork worker made before the dlopen: the address is
		 * unmapped there, so it would crash; not tried here. */
		(void)r;
	} else {
		ASSERT_ERR(r, -ENOENT);
	}
	mp_pool_free(pool);
	dlclose(h);
}

#define PER_METHOD(name)                                                   \
	TEST(name##_fork) { name(MP_START_FORK); }                         \
	TEST(name##_forkserver) { name(MP_START_FORKSERVER); }             \
	TEST(name##_spawn) { name(MP_START_SPAWN); }
#define T3(name) T(name##_fork), T(name##_forkserver), T(name##_spawn)

PER_METHOD(args_exact)
PER_METHOD(exit_codes)
PER_METHOD(signals)
PER_METHOD(names)
PER_METHOD(daemon_dies)
PER_METHOD(shared_counter)
PER_METHOD(threaded_parent)
PER_METHOD(dlopened_target)
PER_METHOD(pool_map)
TEST(pool_plugin_task_forkserver) { pool_plugin_task(MP_START_FORKSERVER); }
TEST(pool_plugin_task_spawn) { pool_plugin_task(MP_START_SPAWN); }

/* ---- the method API ---- */

TEST(bad_input)
{
	ASSERT_EQ(mp_get_start_method(), MP_START_FORK);
	ASSERT_ERR(mp_set_start_method(0), -EINVAL);
	ASSERT_ERR(mp_set_start_method(4), -EINVAL);
	ASSERT_ERR(mp_set_start_method(-1), -EINVAL);
	ASSERT_EQ(mp_get_start_method(), MP_START_FORK);
	ASSERT_OK(mp_set_start_method(MP_START_SPAWN));
	ASSERT_EQ(mp_get_start_method(), MP_START_SPAWN);
	errno = 0;
	ASSERT(mp_process_new_args(NULL, NULL, 0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_process_new_args(return_int, NULL, 4) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_process_set_start_method(NULL, MP_START_FORK), -EINVAL);
	int code = 9;
	mp_process *p = mp_process_new_args(return_int, &code, sizeof(code));
	ASSERT_ERR(mp_process_set_start_method(p, 4), -EINVAL);
	ASSERT_ERR(mp_process_set_start_method(p, -1), -EINVAL);
	ASSERT_EQ(mp_process_start_method(p), MP_START_SPAWN); /* default */
	ASSERT_OK(mp_process_start(p));
	ASSERT_ERR(mp_process_set_start_method(p, MP_START_FORK), MP_ESTATE);
	ASSERT_EQ(join_code(p), 9);
	ASSERT_ERR(mp_process_start_method(NULL), -EINVAL);
}

TEST(pool_bad_method)
{
	mp_pool_opts o = {.processes = 1, .start_method = 4};
	errno = 0;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
	o.start_method = -1;
	ASSERT(mp_pool_new_opts(&o) == NULL);
	ASSERT_EQ(errno, EINVAL);
}

TEST(forkserver_killed_is_replaced)
{
	ASSERT_OK(mp_set_start_method(MP_START_FORKSERVER));
	pid_t server = mp__forkserver_pid();
	ASSERT(server > 0);
	int code = 3;
	ASSERT_EQ(join_code(start(MP_START_FORKSERVER, return_int, &code,
				  sizeof(code))), 3);
	ASSERT_OK(kill(server, SIGKILL));
	siginfo_t info;
	ASSERT_OK(waitid(P_PID, (id_t)server, &info, WEXITED | WNOWAIT));
	for (int i = 0; i < 3; i++) {
		code = 10 + i;
		ASSERT_EQ(join_code(start(MP_START_FORKSERVER, return_int,
					  &code, sizeof(code))), code);
	}
	pid_t again = mp__forkserver_pid();
	ASSERT(again > 0 && again != server);
	/* Killed while nobody looks, a stopped one errs out (bounded). */
	ASSERT_OK(kill(again, SIGKILL));
	code = 20;
	ASSERT_EQ(join_code(start(MP_START_FORKSERVER, return_int, &code,
				  sizeof(code))), 20);
}

TEST(fork_children_lose_the_server)
{
	/* A fork child must not drive its parent's server. */
	ASSERT_OK(mp_set_start_method(MP_START_FORKSERVER));
	pid_t server = mp__forkserver_pid();
	mp_process *p = mp_process_new(return_int, &(int){0});
	ASSERT_OK(mp_process_set_start_method(p, MP_START_FORK));
	ASSERT_OK(mp_process_start(p));
	ASSERT_EQ(join_code(p), 0);
	ASSERT_EQ(mp__forkserver_pid(), server);
}

TEST_MAIN(T3(args_exact), T3(exit_codes), T3(signals), T3(names),
	  T3(daemon_dies), T3(shared_counter), T3(threaded_parent),
	  T3(dlopened_target), T(bad_input), T(forkserver_killed_is_replaced),
	  T(fork_children_lose_the_server), T3(pool_map),
	  T(pool_plugin_task_forkserver), T(pool_plugin_task_spawn),
	  T(pool_bad_method))
