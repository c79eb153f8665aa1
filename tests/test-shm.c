/* SPDX-License-Identifier: MIT */
/* Named shared memory segments. */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "test.h"

static void unique(char *buf, size_t n, const char *what)
{
	snprintf(buf, n, "mp-test-%s-%d", what, (int)getpid());
}

TEST(shm_bad_input)
{
	errno = 0;
	ASSERT(mp_shm_create("a/b", 10) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_shm_create("", 10) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_shm_create("x", 0) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT(mp_shm_attach(NULL) == NULL);
	ASSERT_EQ(errno, EINVAL);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ASSERT(mp_shm_create(longname, 10) == NULL);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_ERR(mp_shm_detach(NULL), -EINVAL);
	ASSERT_ERR(mp_shm_unlink("a/b"), -EINVAL);
	ASSERT(mp_shm_addr(NULL) == NULL);
	ASSERT_EQ(mp_shm_size(NULL), 0);
}

TEST(shm_create_attach_exclusive)
{
	char name[64];
	unique(name, sizeof(name), "excl");
	mp_shm *a = mp_shm_create(name, 1000);
	ASSERT_NOT_NULL(a);
	ASSERT_EQ(mp_shm_size(a), 1000);
	ASSERT_EQ(mp_shm_name(a)[0], '/');
	ASSERT(strcmp(mp_shm_name(a) + 1, name) == 0);
	unsigned char *p = mp_shm_addr(a);
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(p[i], 0);
	/* 0600, as Python's SharedMemory. */
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	ASSERT_OK(stat(path, &st));
	ASSERT_EQ(st.st_mode & 0777, 0600);
	errno = 0;
	ASSERT(mp_shm_create(name, 1000) == NULL);
	ASSERT_EQ(errno, EEXIST);
	mp_shm *b = mp_shm_attach(mp_shm_name(a)); /* with the slash too */
	ASSERT_NOT_NULL(b);
	ASSERT_EQ(mp_shm_size(b), 1000);
	strcpy(mp_shm_addr(a), "shared");
	ASSERT(strcmp(mp_shm_addr(b), "shared") == 0);
	ASSERT_OK(mp_shm_unlink(name));
	ASSERT_ERR(mp_shm_unlink(name), -ENOENT);
	errno = 0;
	ASSERT(mp_shm_attach(name) == NULL);
	ASSERT_EQ(errno, ENOENT);
	/* Unlinked, yet the mappings stay. */
	ASSERT(strcmp(mp_shm_addr(b), "shared") == 0);
	ASSERT_OK(mp_shm_detach(b));
	ASSERT_OK(mp_shm_detach(a));
}

TEST(shm_fresh_names_are_unique)
{
	mp_shm *a = mp_shm_create(NULL, 64);
	mp_shm *b = mp_shm_create(NULL, 64);
	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	ASSERT(strcmp(mp_shm_name(a), mp_shm_name(b)) != 0);
	ASSERT_OK(mp_shm_unlink(mp_shm_name(a)));
	ASSERT_OK(mp_shm_unlink(mp_shm_name(b)));
	ASSERT_OK(mp_shm_detach(a));
	ASSERT_OK(mp_shm_detach(b));
}

/* Run as `test-shm --helper NAME`: an unrelated program (exec'ed) attaches
 * the segment, checks the parent's bytes, answers in the same memory. */
int test_helper(int argc, char **argv)
{
	if (argc != 1)
		return 2;
	mp_shm *s = mp_shm_attach(argv[0]);
	if (!s)
		return 3;
	char *p = mp_shm_addr(s);
	if (strcmp(p, "ping") != 0)
		return 4;
	strcpy(p + 100, "pong");
	mp_shm_detach(s);
	return 0;
}

TEST(shm_across_exec)
{
	char name[64];
	unique(name, sizeof(name), "exec");
	mp_shm *s = mp_shm_create(name, 4096);
	ASSERT_NOT_NULL(s);
	strcpy(mp_shm_addr(s), "ping");
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "test-shm", "--helper", name,
		      (char *)NULL);
		_exit(127);
	}
	ASSERT_EQ(test_wait(pid), 0);
	ASSERT(strcmp((char *)mp_shm_addr(s) + 100, "pong") == 0);
	ASSERT_OK(mp_shm_unlink(name));
	ASSERT_OK(mp_shm_detach(s));
}

/* A segment that /dev/shm cannot hold fails at create with ENOSPC, not
 * with SIGBUS at the first write.  Asking for more than the whole of
 * /dev/shm makes tmpfs refuse before it allocates a page, so the test
 * consumes nothing (before the fix the sparse create succeeded). */
TEST(shm_create_larger_than_dev_shm_is_enospc)
{
	struct statvfs v;
	ASSERT_OK(statvfs("/dev/shm", &v));
	if (v.f_blocks == 0)
		SKIP("/dev/shm has no size limit");
	size_t total = (size_t)v.f_blocks * v.f_frsize;
	size_t want = total + ((size_t)1 << 30);
	char name[64], path[128];
	unique(name, sizeof(name), "nospc");
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	errno = 0;
	mp_shm *s = mp_shm_create(name, want);
	if (s) {
		mp_shm_detach(s);
		mp_shm_unlink(name);
		FAIL("created %zu bytes on a %zu-byte /dev/shm", want, total);
	}
	ASSERT_EQ(errno, ENOSPC);
	struct stat st;
	ASSERT(stat(path, &st) < 0 && errno == ENOENT); /* nothing left */
}

/* The pages of a segment that fits are reserved at create. */
TEST(shm_create_reserves_its_pages)
{
	char name[64];
	unique(name, sizeof(name), "resv");
	mp_shm *s = mp_shm_create(name, 1 << 20);
	ASSERT_NOT_NULL(s);
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	int r = stat(path, &st);
	ASSERT_OK(mp_shm_unlink(name)); /* first: leave nothing behind */
	ASSERT_OK(r);
	ASSERT_EQ(st.st_size, 1 << 20);
	ASSERT_CMP((long long)st.st_blocks * 512, >=, 1 << 20);
	unsigned char *p = mp_shm_addr(s);
	ASSERT_EQ(p[0] | p[(1 << 20) - 1], 0);
	ASSERT_OK(mp_shm_detach(s));
}

TEST_MAIN(T(shm_bad_input), T(shm_create_attach_exclusive),
	  T(shm_fresh_names_are_unique), T(shm_across_exec),
	  T(shm_create_larger_than_dev_shm_is_enospc),
	  T(shm_create_reserves_its_pages))
