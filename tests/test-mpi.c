/* SPDX-License-Identifier: MIT */
/*
 * The pool over MPI ranks (libmultiproc-mpi).  Each case runs mpirun on
 * this binary in helper mode (`--helper MODE`): the helper calls
 * mp_mpi_pool_new on every rank, rank 0 checks the pool's calls and frees
 * it, the other ranks leave inside the call.  Every rank says when it
 * exits (atexit), so a case sees that all of them ended, and mpirun's
 * exit status is that of the job.  Skipped (7) without libmultiproc-mpi
 * or mpirun.
 */
#include "test.h"

#ifdef MP_HAVE_MPI
#include <multiproc/mpi.h>

#define N_MAP 100000

static int ranks_env(void)
{
	const char *s = getenv("OMPI_COMM_WORLD_SIZE");
	return s ? atoi(s) : -1;
}

static void say_exit(void)
{
	const char *r = getenv("OMPI_COMM_WORLD_RANK");
	printf("rank %s: exit\n", r ? r : "?");
	fflush(stdout);
}

static int sq(const void *in, void *out)
{
	int64_t x = *(const int64_t *)in;
	if (x < 0)
		return -EDOM;
	*(int64_t *)out = x * x;
	return 0;
}

static ssize_t inc(const void *arg, size_t len, void *out, size_t cap)
{
	int64_t x;
	if (len != sizeof(x) || cap < sizeof(x))
		return -EINVAL;
	memcpy(&x, arg, sizeof(x));
	if (x == 13)
		return -ERANGE;
	x++;
	memcpy(out, &x, sizeof(x));
	return sizeof(x);
}

/* Item "k": k copies of 'a' + k % 26 (0 to 9 copies), "bad" fails. */
static int rep(const void *in, size_t len, mp_out *out)
{
	char s[32];
	if (len == 3 && memcmp(in, "bad", 3) == 0)
		return -ENOENT;
	if (len >= sizeof(s))
		return -EINVAL;
	memcpy(s, in, len);
	s[len] = 0;
	long k = atol(s);
	char c = (char)('a' + k % 26);
	for (long i = 0; i < k % 10; i++) {
		int e = mp_out_write(out, &c, 1);
		if (e)
			return e;
	}
	return 0;
}

static bool rep_ok(long k, const mp_buf *b)
{
	if (b->len != (size_t)(k % 10))
		return false;
	for (size_t i = 0; i < b->len; i++)
		if (((char *)b->data)[i] != (char)('a' + k % 26))
			return false;
	return true;
}

struct src {
	long next, n;
	char buf[32];
};

static int source(void *ctx, mp_buf *item)
{
	struct src *s = ctx;
	if (s->next >= s->n)
		return 0;
	int len = snprintf(s->buf, sizeof(s->buf), "%ld", s->next++);
	*item = (mp_buf){s->buf, (size_t)len};
	return 1;
}

static void on_done(mp_async *a, void *ctx)
{
	(void)a;
	++*(int *)ctx;
}

static const char not_code[16];

static void check_map(mp_pool *pool)
{
	int64_t *in = malloc(N_MAP * sizeof(*in));
	int64_t *out = calloc(N_MAP, sizeof(*out));
	int *errs = malloc(N_MAP * sizeof(*errs));
	ASSERT(in && out && errs);
	for (size_t i = 0; i < N_MAP; i++)
		in[i] = (int64_t)i;
	size_t sizes[] = {0, 1, 7, 1000};
	for (size_t k = 0; k < 4; k++) {
		size_t n = sizes[k] == 1 ? 3000 : N_MAP;
		memset(out, 0, N_MAP * sizeof(*out));
		ASSERT_OK(mp_pool_map(pool, sq, in, sizeof(*in), out,
				      sizeof(*out), n, sizes[k]));
		for (size_t i = 0; i < n; i++)
			if (out[i] != (int64_t)(i * i))
				FAIL("map chunksize %zu: out[%zu] = %lld",
				     sizes[k], i, (long long)out[i]);
	}
	in[700] = -1;
	in[500] = -1;
	ASSERT_ERR(mp_pool_map_errors(pool, sq, in, sizeof(*in), out,
				      sizeof(*out), errs, N_MAP, 0),
		   -EDOM);
	for (size_t i = 0; i < N_MAP; i++)
		ASSERT_EQ(errs[i], i == 500 || i == 700 ? -EDOM : 0);
	ASSERT_ERR(mp_pool_map(pool, sq, in, sizeof(*in), out, sizeof(*out),
			       N_MAP, 0),
		   -EDOM);
	ASSERT_EQ(out[499], 499 * 499);
	in[500] = 500;
	in[700] = 700;
	/* map_async: results in out once ready. */
	memset(out, 0, N_MAP * sizeof(*out));
	mp_async *a = mp_pool_map_async(pool, sq, in, sizeof(*in), out,
					sizeof(*out), N_MAP, 0);
	ASSERT_NOT_NULL(a);
	ASSERT_EQ(mp_async_get(a, NULL, 0, MP_FOREVER), 0);
	mp_async_free(a);
	for (size_t i = 0; i < N_MAP; i++)
		ASSERT_EQ(out[i], (int64_t)(i * i));
	/* imap, both orders. */
	for (int unordered = 0; unordered < 2; unordered++) {
		mp_imap *it = unordered
				      ? mp_pool_imap_unordered(pool, sq, in,
							       sizeof(*in),
							       sizeof(*out),
							       10000, 0)
				      : mp_pool_imap(pool, sq, in, sizeof(*in),
						     sizeof(*out), 10000, 37);
		ASSERT_NOT_NULL(it);
		char *seen = calloc(10000, 1);
		size_t idx, count = 0;
		int64_t v;
		int r;
		while ((r = mp_imap_next(it, &idx, &v, MP_FOREVER)) !=
		       MP_ECLOSED) {
			ASSERT_OK(r);
			ASSERT(idx < 10000 && !seen[idx]);
			if (!unordered)
				ASSERT_EQ(idx, count);
			ASSERT_EQ(v, (int64_t)(idx * idx));
			seen[idx] = 1;
			count++;
		}
		ASSERT_EQ(count, 10000);
		free(seen);
		mp_imap_free(it);
	}
	free(in);
	free(out);
	free(errs);
	printf("map: ok\n");
}

static void check_bufs(mp_pool *pool)
{
	mp_buf *in = calloc(N_MAP, sizeof(*in));
	mp_buf *out = calloc(N_MAP, sizeof(*out));
	int *errs = calloc(N_MAP, sizeof(*errs));
	ASSERT(in && out && errs);
	for (size_t i = 0; i < N_MAP; i++) {
		char s[32];
		int len = snprintf(s, sizeof(s), "%zu", i);
		in[i].data = strdup(i == 4242 ? "bad" : s);
		in[i].len = i == 4242 ? 3 : (size_t)len;
	}
	ASSERT_ERR(mp_pool_map_bufs(pool, rep, in, N_MAP, out, errs, 0),
		   -ENOENT);
	for (size_t i = 0; i < N_MAP; i++) {
		if (i == 4242) {
			ASSERT_EQ(errs[i], -ENOENT);
			ASSERT(out[i].data == NULL && out[i].len == 0);
			continue;
		}
		ASSERT_EQ(errs[i], 0);
		if (!rep_ok((long)i, &out[i]))
			FAIL("map_bufs: item %zu: %zu bytes", i, out[i].len);
	}
	mp_bufs_free(out, N_MAP);
	ASSERT_OK(mp_pool_map_bufs(pool, rep, in, 4000, out, NULL, 1));
	for (size_t i = 0; i < 4000; i++)
		ASSERT(rep_ok((long)i, &out[i]));
	mp_bufs_free(out, N_MAP);
	mp_bufs_free(in, N_MAP);
	free(in);
	free(out);
	free(errs);
	/* A stream, in order and as it comes. */
	for (int ordered = 0; ordered < 2; ordered++) {
		struct src s = {0, 20000, {0}};
		mp_imap *it = mp_pool_imap_source(pool, rep, source, &s, 0,
						  ordered);
		ASSERT_NOT_NULL(it);
		char *seen = calloc(20000, 1);
		size_t idx, count = 0;
		mp_buf b;
		int r;
		while ((r = mp_imap_next_buf(it, &idx, &b, MP_FOREVER)) !=
		       MP_ECLOSED) {
			ASSERT_OK(r);
			ASSERT(idx < 20000 && !seen[idx]);
			if (ordered)
				ASSERT_EQ(idx, count);
			ASSERT(rep_ok((long)idx, &b));
			seen[idx] = 1;
			count++;
			free(b.data);
		}
		ASSERT_EQ(count, 20000);
		free(seen);
		mp_imap_free(it);
	}
	printf("bufs: ok\n");
}

static void check_apply(mp_pool *pool)
{
	enum { N = 1000 };
	mp_async *as[N];
	int called = 0;
	for (int64_t i = 0; i < N; i++) {
		as[i] = mp_pool_apply_async(pool, inc, &i, sizeof(i), 8);
		ASSERT_NOT_NULL(as[i]);
		if (i % 10 == 0)
			ASSERT_OK(mp_async_set_callback(as[i], on_done,
							&called));
	}
	int first = mp_async_wait_any(as, N, MP_FOREVER);
	ASSERT(first >= 0 && first < N);
	ASSERT(mp_async_ready(as[first]));
	for (int64_t i = 0; i < N; i++) {
		int64_t v = 0;
		ssize_t r = mp_async_get(as[i], &v, sizeof(v), MP_FOREVER);
		if (i == 13) {
			ASSERT_ERR(r, -ERANGE);
		} else {
			ASSERT_EQ(r, 8);
			ASSERT_EQ(v, i + 1);
		}
		mp_async_free(as[i]);
	}
	ASSERT_EQ(called, N / 10);
	int64_t x = 41, y = 0;
	ASSERT_EQ(mp_pool_apply(pool, inc, &x, sizeof(x), &y, sizeof(y)), 8);
	ASSERT_EQ(y, 42);
	/* A callback set on a pending handle runs in mp_pool_poll. */
	called = 0;
	mp_async *a = mp_pool_apply_async(pool, inc, &x, sizeof(x), 8);
	ASSERT_OK(mp_async_set_callback(a, on_done, &called));
	while (!called)
		ASSERT(mp_pool_poll(pool, 10.0) >= 0);
	mp_async_free(a);
	printf("apply: ok\n");
}

static void check_bad_input(mp_pool *pool)
{
	int64_t v = 3, o;
	ASSERT_ERR(mp_pool_map(pool, NULL, &v, 8, &o, 8, 1, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, sq, &v, 8, NULL, 8, 1, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, sq, NULL, 8, &o, 8, 1, 0), -EINVAL);
	ASSERT_ERR(mp_pool_map(pool, sq, &v, 8, &o, 8, 0, 0), 0);
	ASSERT_ERR(mp_pool_map_bufs(pool, NULL, NULL, 0, NULL, NULL, 0),
		   -EINVAL);
	errno = 0;
	ASSERT(mp_pool_apply_async(pool, NULL, NULL, 0, 0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_pool_imap_source(pool, rep, NULL, NULL, 0, true) == NULL);
	ASSERT_ERR(mp_async_wait(NULL, 0), -EINVAL);
	/* A "function" that is no code of the program is refused. */
	ASSERT_ERR(mp_pool_map(pool, (mp_map_fn)(void *)not_code, &v, 8, &o,
			       8, 1, 0),
		   -ENOENT);
	/* A chunk past an MPI message (2 GiB) is refused before anything
	 * is read or sent. */
	ASSERT_ERR(mp_pool_map(pool, sq, &v, (size_t)1 << 31, &o, 8, 1, 0),
		   -EMSGSIZE);
	printf("bad input: ok\n");
}

static int helper_suite(void)
{
	atexit(say_exit);
	mp_pool *pool = mp_mpi_pool_new(NULL, NULL);
	ASSERT_NOT_NULL(pool);
	ASSERT_EQ(mp_pool_processes(pool), ranks_env() - 1);
	check_bad_input(pool);
	check_map(pool);
	check_bufs(pool);
	check_apply(pool);
	ASSERT_OK(mp_pool_close(pool));
	ASSERT_ERR(mp_pool_map(pool, sq, NULL, 0, NULL, 0, 0, 0),
		   MP_ESTATE);
	ASSERT_OK(mp_pool_join(pool));
	mp_pool_free(pool);
	printf("suite: ok\n");
	return 0;
}

static int helper_one_rank(void)
{
	errno = 0;
	mp_pool *pool = mp_mpi_pool_new(NULL, NULL);
	if (pool || errno != EINVAL) {
		printf("1 rank: pool %p errno %d\n", (void *)pool, errno);
		return 1;
	}
	printf("1 rank: EINVAL\n");
	return 0;
}

static ssize_t hang(const void *arg, size_t len, void *out, size_t cap)
{
	(void)arg, (void)len, (void)out, (void)cap;
	sleep(3600);
	return 0;
}

static int helper_timeout(void)
{
	mp_pool_opts o = {.task_timeout = 0.3};
	mp_pool *pool = mp_mpi_pool_new_opts(NULL, NULL, &o);
	ASSERT_NOT_NULL(pool);
	int64_t x = 1, y;
	ASSERT_EQ(mp_pool_apply(pool, inc, &x, 8, &y, 8), 8);
	mp_pool_apply(pool, hang, NULL, 0, NULL, 0);
	printf("timeout: the hung task returned\n");
	return 1;
}

static int slow(const void *in, void *out)
{
	(void)in;
	usleep(5000); /* the work: 5 ms */
	*(int64_t *)out = 1;
	return 0;
}

/* Terminate with work in flight: the chunks the ranks hold finish, the
 * others fail with MP_ECLOSED; the pool refuses more; free ends every
 * rank. */
static int helper_terminate(void)
{
	atexit(say_exit);
	mp_pool *pool = mp_mpi_pool_new(NULL, NULL);
	ASSERT_NOT_NULL(pool);
	enum { N = 400 };
	static int64_t in[N], out[N];
	mp_async *a = mp_pool_map_async(pool, slow, in, 8, out, 8, N, 1);
	ASSERT_NOT_NULL(a);
	ASSERT_OK(mp_pool_terminate(pool));
	ASSERT(mp_async_ready(a));
	ASSERT_ERR(mp_async_get(a, NULL, 0, 0), MP_ECLOSED);
	int done = 0;
	for (int i = 0; i < N; i++)
		done += out[i] == 1;
	ASSERT(done < N);
	errno = 0;
	ASSERT(mp_pool_apply_async(pool, inc, &in[0], 8, 8) == NULL);
	ASSERT_EQ(errno, -MP_ESTATE);
	mp_async_free(a);
	ASSERT_OK(mp_pool_join(pool));
	mp_pool_free(pool);
	printf("terminate: ok (%d of %d items ran)\n", done, N);
	return 0;
}

int test_helper(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "terminate") == 0)
		return helper_terminate();
	if (argc < 1)
		return 2;
	if (strcmp(argv[0], "suite") == 0)
		return helper_suite();
	if (strcmp(argv[0], "one") == 0)
		return helper_one_rank();
	if (strcmp(argv[0], "timeout") == 0)
		return helper_timeout();
	return 2;
}

/* Run `mpirun -np n` on this binary's helper mode; its output in buf. */
static int mpirun(int n, const char *mode, char *buf, size_t cap)
{
	char self[4096], cmd[8192];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		FAIL("readlink: %s", strerror(errno));
	self[len] = 0;
	if (system("command -v mpirun >/dev/null 2>&1") != 0)
		SKIP("no mpirun");
	/* Under ASan the ranks do not look for leaks: Open MPI leaves
	 * thousands of blocks (its plugins' strings) at MPI_Finalize. */
	const char *asan = getenv("ASAN_OPTIONS");
	snprintf(cmd, sizeof(cmd),
		 "ASAN_OPTIONS='%s%sdetect_leaks=0' "
		 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
		 "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np %d "
		 "'%s' --helper %s 2>&1",
		 asan ? asan : "", asan ? ":" : "", n, self, mode);
	FILE *f = popen(cmd, "r");
	ASSERT_NOT_NULL(f);
	size_t got = fread(buf, 1, cap - 1, f);
	buf[got] = 0;
	int st = pclose(f);
	fprintf(stderr, "%s", buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *buf, const char *needle)
{
	int n = 0;
	for (const char *p = buf; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static char out_buf[1 << 16];

static void run_suite(int n)
{
	ASSERT_EQ(mpirun(n, "suite", out_buf, sizeof(out_buf)), 0);
	ASSERT(strstr(out_buf, "suite: ok"));
	ASSERT_EQ(count_lines(out_buf, ": exit\n"), n);
}

TEST(mpi_pool_four_ranks)
{
	run_suite(4);
}

TEST(mpi_pool_two_ranks)
{
	run_suite(2);
}

TEST(mpi_pool_one_rank_einval)
{
	ASSERT_EQ(mpirun(1, "one", out_buf, sizeof(out_buf)), 0);
	ASSERT(strstr(out_buf, "1 rank: EINVAL"));
}

TEST(mpi_pool_terminate_then_free)
{
	ASSERT_EQ(mpirun(3, "terminate", out_buf, sizeof(out_buf)), 0);
	ASSERT(strstr(out_buf, "terminate: ok"));
	ASSERT_EQ(count_lines(out_buf, ": exit\n"), 3);
}

TEST(mpi_pool_task_timeout_ends_job)
{
	double t0 = test_now();
	ASSERT(mpirun(3, "timeout", out_buf, sizeof(out_buf)) != 0);
	ASSERT(strstr(out_buf, "past task_timeout"));
	ASSERT(!strstr(out_buf, "the hung task returned"));
	ASSERT(test_now() - t0 < 30);
}

#define CASES                                                              \
	T_TIMEOUT(mpi_pool_four_ranks, 300), T_TIMEOUT(mpi_pool_two_ranks, 300), \
		T_TIMEOUT(mpi_pool_one_rank_einval, 60),                   \
		T_TIMEOUT(mpi_pool_terminate_then_free, 60),               \
		T_TIMEOUT(mpi_pool_task_timeout_ends_job, 60)
#else
TEST(mpi_not_built)
{
	SKIP("libmultiproc-mpi is not built (MP_WITH_MPI, MPI not found)");
}
#define CASES T(mpi_not_built)
#endif

TEST_MAIN(CASES)
