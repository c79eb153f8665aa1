/* SPDX-License-Identifier: MIT */
/*
 * NAME.part, the file a download is written to.
 *
 * The body goes to NAME.part, created only when the first byte of a
 * successful response arrives (an error response leaves nothing on disk)
 * and written from a buffer in large writes.  NAME.part is always a new
 * file (O_CREAT|O_EXCL, after removing what is in the way): whatever was
 * planted there, a hard link to a file elsewhere or a FIFO, is never
 * opened.  A small file, whose whole body fits the buffer, costs openat,
 * write, fstat, fdatasync, renameat2, fsync of the folder and close:
 * no validator, no look at the name (x->at_once).  When the transfer
 * is complete and verified (Content-Length, Content-Range, checksum) the
 * file is synced, checked to be still the inode we wrote, and renamed to
 * its name with RENAME_NOREPLACE, numbered if the name is taken: an
 * existing file is never overwritten unless --overwrite, and no name
 * another job owns (its NAME or NAME.part) is ever used.
 *
 * Resuming (-c): a .part is only continued when it carries the validator
 * (ETag, else Last-Modified) its bytes came with, in the
 * user.mpget.validator extended attribute, which every .part gets as soon
 * as it is created, -c or not.  Without one (no xattrs here, a server
 * that sends neither header) it starts over: bytes of unknown origin are
 * never spliced to new ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fetch.h"

int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Remember what the .part's bytes belong to, for -c and If-Range. */
void part_store_validator(struct xfer *x)
{
	if (x->fd < 0)
		return;
	if (x->validator[0])
		fsetxattr(x->fd, VALIDATOR_XATTR, x->validator,
			  strlen(x->validator), 0);
	else
		fremovexattr(x->fd, VALIDATOR_XATTR);
}

/* Create NAME.part, always a new regular file (only called at offset 0:
 * a .part with bytes in it is open already). */
int part_open(struct xfer *x)
{
	const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
			  O_CLOEXEC;
	struct stat st;

	/* NAME.part is this job's name: what is there is a leftover of an
	 * earlier run, or planted.  Opening it could write through a hard
	 * link to a file outside DIR, or block forever on a FIFO; so
	 * O_EXCL makes sure we write to the file we create, and what is
	 * in the way goes (tried first: a leftover is rare, and the
	 * unlink would be one more system call per file).  O_NONBLOCK:
	 * even a FIFO raced in cannot block us. */
	x->fd = openat(x->e->dirfd, x->part, flags, 0644);
	if (x->fd < 0 && errno == EEXIST) {
		unlinkat(x->e->dirfd, x->part, 0);
		x->fd = openat(x->e->dirfd, x->part, flags, 0644);
	}
	if (x->fd < 0)
		return -errno;
	if (fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(x->fd);
		x->fd = -1;
		return -EEXIST;
	}
	x->dev = st.st_dev;
	x->ino = st.st_ino;
	x->part_exists = true;
	x->offset = 0;
	/* A body that is whole in the buffer is placed right after this:
	 * no later run resumes it, so it needs no validator. */
	if (!x->at_once)
		part_store_validator(x);
	return 0;
}

int part_flush(struct xfer *x)
{
	int r;

	if (x->len == 0)
		return 0;
	if (x->fd < 0 && (r = part_open(x)) < 0)
		goto fail;
	r = write_all(x->fd, x->buf, x->len);
	x->len = 0;
	if (r == 0)
		return 0;
fail:
	x->fail = F_IO;
	x->fail_errno = -r;
	x->len = 0;
	return r;
}

/* Start the .part over: the server is sending the whole file. */
int part_restart(struct xfer *x)
{
	x->offset = 0;
	x->len = 0;
	if (x->md)
		part_sum_init(x);
	if (x->fd >= 0 &&
	    (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)) {
		x->fail = F_IO;
		x->fail_errno = errno;
		return -1;
	}
	return 0;
}

/*
 * A name the server suggests must not be a .part (ours or another job's:
 * another download would write into it, or take it away) nor another
 * job's name.
 */
static bool server_name_ok(const struct engine *e, const struct xfer *x,
			   const char *name)
{
	size_t n = strlen(name);

	return !(n >= 5 && !strcmp(name + n - 5, ".part")) &&
	       !name_reserved(e->names, name, x->index);
}

/* Before the rename: the .part on disk is still the file we wrote and
 * synced.  Returns 0, or an error text in why. */
static int check_part(struct engine *e, struct xfer *x, char *why,
		      size_t size)
{
	struct stat st;

	/* The data first, then the name that points to it: after a crash
	 * NAME is whole or absent, never a file of holes or zeros.
	 * fdatasync is enough: it writes the size too. */
	if (!e->o->no_fsync && fdatasync(x->fd) < 0) {
		snprintf(why, size, "fsync %s: %s", x->part, strerror(errno));
		x->exit = EXIT_WRITE;
		return -1;
	}
	/* A .part made at once, just now, has had no download during
	 * which to be replaced: a look at its name would narrow no window
	 * that the look itself does not leave open until the rename. */
	if (x->at_once)
		return 0;
	if (fstatat(e->dirfd, x->part, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_dev != x->dev || st.st_ino != x->ino) {
		/* Not ours any more: leave it where it is. */
		x->part_exists = false;
		snprintf(why, size, "%s was replaced during the download",
			 x->part);
		return -1;
	}
	return 0;
}

/* Tell the parent which rename is under way (struct placing). */
static void placing(struct engine *e, struct xfer *x, const char *name)
{
	struct placing *p = e->placing;

	if (!p)
		return;
	if (!name) {
		atomic_store_explicit(&p->index, NO_JOB, memory_order_release);
		return;
	}
	p->http = (int32_t)x->code;
	p->attempts = (uint16_t)x->attempts;
	p->dev = x->dev;
	p->ino = x->ino;
	p->secs = now_mono() - x->t_start;
	snprintf(p->name, sizeof(p->name), "%s", name);
	atomic_store_explicit(&p->index, x->index, memory_order_release);
}

/* Rename the complete .part to its name, numbering it when taken. */
void part_place(struct engine *e, struct xfer *x)
{
	const struct opts *o = e->o;
	const char *want = x->cd_name && server_name_ok(e, x, x->cd_name)
				   ? x->cd_name
				   : x->name;
	char name[MAX_NAME_LEN + 64];
	char why[512];
	int r = 0;

	if (x->fd < 0 && part_open(x) < 0) {
		snprintf(why, sizeof(why), "create %s: %s", x->part,
			 strerror(errno));
		x->exit = EXIT_WRITE;
		xfer_fail(e, x, why, false);
		return;
	}
	if (check_part(e, x, why, sizeof(why)) < 0) {
		xfer_fail(e, x, why, false);
		return;
	}
	close(x->fd);
	x->fd = -1;
	snprintf(name, sizeof(name), "%s", want);
	for (unsigned k = 1;; k++) {
		/* Another job's name or .part is taken, even before that
		 * job gets to it. */
		if (name_reserved(e->names, name, x->index)) {
			r = -1;
			errno = EEXIST;
			goto next;
		}
		placing(e, x, name);
		if (o->overwrite)
			r = renameat(e->dirfd, x->part, e->dirfd, name);
		else
			r = renameat2(e->dirfd, x->part, e->dirfd, name,
				      RENAME_NOREPLACE);
		if (r < 0 && errno == EINVAL && !o->overwrite) {
			/* No RENAME_NOREPLACE here: link() also refuses
			 * to replace. */
			r = linkat(e->dirfd, x->part, e->dirfd, name, 0);
			if (r == 0)
				unlinkat(e->dirfd, x->part, 0);
		}
		if (r == 0 || errno != EEXIST || k > 100000)
			break;
		if (o->no_clobber) {
			placing(e, x, NULL);
			unlinkat(e->dirfd, x->part, 0);
			xfer_report(e, x, RES_DONE, ST_SKIPPED,
				    now_mono() - x->t_start, name,
				    "file exists (--no-clobber)");
			xfer_release(e, x);
			return;
		}
next:
		if (k > 100000 ||
		    name_numbered(want, k, name, sizeof(name)) < 0)
			break;
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "rename to %s: %s", name,
			 strerror(errno));
		placing(e, x, NULL);
		x->exit = EXIT_WRITE;
		xfer_fail(e, x, why, false);
		return;
	}
	/* The name, before we say it is there: a crash after the report
	 * keeps the file.  A failure here loses nothing the rename did not
	 * already risk. */
	if (!o->no_fsync)
		fsync(e->dirfd);
	/* Test hook: MPGET_TEST_DIE_AFTER_RENAME=NAME kills the worker
	 * right after NAME is placed and before it is reported, the window
	 * a crash or the OOM killer can hit.  Unset, it costs one compare;
	 * undocumented, for tests/test_mpget.py only. */
	if (e->die_after && !strcmp(e->die_after, name))
		raise(SIGKILL);
	xfer_report(e, x, RES_DONE, ST_OK, now_mono() - x->t_start, name,
		    NULL);
	placing(e, x, NULL);
	xfer_release(e, x);
}

static const EVP_MD *sum_md(int type)
{
	switch (type) {
	case SUM_MD5:
		return EVP_md5();
	case SUM_SHA1:
		return EVP_sha1();
	case SUM_SHA512:
		return EVP_sha512();
	default:
		return EVP_sha256();
	}
}

int part_sum_init(struct xfer *x)
{
	return EVP_DigestInit_ex(x->md, sum_md(x->sum_type), NULL) ? 0 : -1;
}

bool part_verify_sum(struct xfer *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_DigestFinal_ex(x->md, md, &len);
	if (len != sum_len(x->sum_type) || memcmp(md, x->sum, len)) {
		x->exit = EXIT_CHECKSUM;
		return false;
	}
	return true;
}

static int hash_existing(struct xfer *x)
{
	char *buf = x->buf;
	uint64_t left = x->offset;

	if (lseek(x->fd, 0, SEEK_SET) < 0)
		return -1;
	while (left > 0) {
		size_t want = left < BUF_SIZE ? (size_t)left : BUF_SIZE;
		ssize_t n = read(x->fd, buf, want);

		if (n <= 0)
			return -1;
		EVP_DigestUpdate(x->md, buf, (size_t)n);
		left -= (uint64_t)n;
	}
	return 0;
}

/* -c: pick up NAME.part from an earlier run. */
void part_resume(struct engine *e, struct xfer *x)
{
	struct stat st;
	ssize_t n;

	/* O_NONBLOCK: a FIFO must not block the open.  Only a regular
	 * file of one link is ours to append to (a hard link would let us
	 * write to a file outside DIR), and only with its validator. */
	x->fd = openat(e->dirfd, x->part,
		       O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (x->fd < 0)
		return;
	if (fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || st.st_size == 0)
		goto fresh;
	n = fgetxattr(x->fd, VALIDATOR_XATTR, x->validator,
		      sizeof(x->validator) - 1);
	if (n <= 0)
		goto fresh;
	x->validator[n] = '\0';
	x->dev = st.st_dev;
	x->ino = st.st_ino;
	x->part_exists = true;
	x->offset = (uint64_t)st.st_size;
	if (x->md && hash_existing(x) < 0)
		goto fresh;
	if (lseek(x->fd, (off_t)x->offset, SEEK_SET) < 0)
		goto fresh;
	return;
fresh:
	close(x->fd);
	x->fd = -1;
	x->part_exists = false;
	x->offset = 0;
	x->validator[0] = '\0';
	if (x->md)
		part_sum_init(x);
}
