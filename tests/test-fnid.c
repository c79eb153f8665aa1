/* SPDX-License-Identifier: MIT */
/* Function identity across images (src/fnid.h): a name made here finds the
 * same function in a fresh exec of this program, whose load addresses ASLR
 * chose anew; names that point nowhere are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fnid.h"
#include "test.h"

static int triple(int x)
{
	return 3 * x;
}

static void hex(const struct mp__fnid *id, char *out)
{
	out += sprintf(out, "%llx:", (unsigned long long)id->offset);
	for (int i = 0; i < id->id_len; i++)
		out += sprintf(out, "%02x", id->build_id[i]);
}

static int unhex(const char *s, struct mp__fnid *id)
{
	memset(id, 0, sizeof(*id));
	char *end;
	id->offset = strtoull(s, &end, 16);
	if (*end++ != ':')
		return -1;
	while (end[0] && end[1] && id->id_len < MP__FNID_BUILD_ID_MAX) {
		unsigned b;
		if (sscanf(end, "%2x", &b) != 1)
			return -1;
		id->build_id[id->id_len++] = (uint8_t)b;
		end += 2;
	}
	return 0;
}

/* In the exec'd image: resolve argv[0] and call it with 14; print the
 * result and where the function lives here. */
int test_helper(int argc, char **argv)
{
	struct mp__fnid id;
	mp__fn fn;
	if (argc < 1 || unhex(argv[0], &id) != 0)
		return 2;
	int rc = mp__fnid_resolve(&id, &fn);
	if (rc != 0)
		return 3;
	int (*f)(int) = (int (*)(int))fn;
	printf("%d %p\n", f(14), (void *)fn);
	return 0;
}

TEST(roundtrip_in_process)
{
	struct mp__fnid id;
	mp__fn fn;
	ASSERT_OK(mp__fnid_of((mp__fn)triple, &id));
	ASSERT_CMP(id.id_len, >=, 8);
	ASSERT_OK(mp__fnid_resolve(&id, &fn));
	ASSERT(fn == (mp__fn)triple);
	/* A library's function: its own object, its own build-id. */
	struct mp__fnid lib;
	ASSERT_OK(mp__fnid_of((mp__fn)getpid, &lib));
	ASSERT(lib.id_len != id.id_len ||
	       memcmp(lib.build_id, id.build_id, id.id_len) != 0);
	ASSERT_OK(mp__fnid_resolve(&lib, &fn));
	ASSERT(fn == (mp__fn)getpid);
}

TEST(found_in_a_fresh_image)
{
	struct mp__fnid id;
	ASSERT_OK(mp__fnid_of((mp__fn)triple, &id));
	char arg[2 * MP__FNID_BUILD_ID_MAX + 32];
	hex(&id, arg);
	int fds[2];
	ASSERT_OK(pipe(fds));
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		execl("/proc/self/exe", "test-fnid", "--helper", arg, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char out[128] = {0};
	ssize_t n = 0, r;
	while ((r = read(fds[0], out + n, sizeof(out) - 1 - (size_t)n)) > 0)
		n += r;
	close(fds[0]);
	int status;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	int result;
	void *there;
	ASSERT_EQ(sscanf(out, "%d %p", &result, &there), 2);
	ASSERT_EQ(result, 42);
	/* Not a test of ASLR, but when it moved the image the name still held. */
	if (there != (void *)triple)
		printf("# moved from %p to %p\n", (void *)triple, there);
}

TEST(bad_names_are_refused)
{
	struct mp__fnid id;
	mp__fn fn;
	static int data;
	ASSERT_ERR(mp__fnid_of(NULL, &id), -EINVAL);
	ASSERT_ERR(mp__fnid_of((mp__fn)triple, NULL), -EINVAL);
	/* Data is not code. */
	ASSERT_ERR(mp__fnid_of((mp__fn)(void *)&data, &id), -ENOENT);
	ASSERT_ERR(mp__fnid_of((mp__fn)(void *)&id, &id), -ENOENT);

	ASSERT_OK(mp__fnid_of((mp__fn)triple, &id));
	struct mp__fnid bad = id;
	bad.offset = (uint64_t)1 << 40; /* far outside the code */
	ASSERT_ERR(mp__fnid_resolve(&bad, &fn), -EFAULT);
	bad = id;
	bad.build_id[0] ^= 0xff; /* another program's */
	ASSERT_ERR(mp__fnid_resolve(&bad, &fn), -ENOENT);
	bad = id;
	bad.id_len = 0;
	ASSERT_ERR(mp__fnid_resolve(&bad, &fn), -EINVAL);
	bad.id_len = MP__FNID_BUILD_ID_MAX + 1;
	ASSERT_ERR(mp__fnid_resolve(&bad, &fn), -EINVAL);
	ASSERT_ERR(mp__fnid_resolve(NULL, &fn), -EINVAL);
	ASSERT_ERR(mp__fnid_resolve(&id, NULL), -EINVAL);
}

TEST_MAIN(T(roundtrip_in_process), T(found_in_a_fresh_image),
	  T(bad_names_are_refused))
