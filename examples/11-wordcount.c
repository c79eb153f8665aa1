/* SPDX-License-Identifier: MIT */
/* 11. Word count over files: paths in, counts out, items of any size. */
/*
 * wc(1) in parallel.  The items are paths (strings of any length) and each
 * result is a record of any length too: three counts, then the longest
 * word of the file.  In Python:
 *
 *     with multiprocessing.Pool() as pool:
 *         for counts in pool.imap(wordcount, paths): ...
 *
 * mp_pool_map_bufs() takes an array of mp_buf (pointer + length) and
 * gives back one malloc()ed mp_buf per item; the task writes its result
 * with mp_out_write(), in pieces if it likes.  mp_pool_imap_source() does
 * the same for items that come one at a time from a function, here the
 * same paths again, with memory bounded however many there are.
 *
 * Usage: 11-wordcount [FILE...]; with no files it writes a few of its own
 * into a temporary directory, counts them, and removes them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <multiproc.h>

struct counts {
	uint64_t lines, words, bytes;
};

/* The task: count a file (its path is the item, not NUL-terminated).
 * The result: struct counts, then the longest word's bytes. */
static int wordcount(const void *in, size_t len, mp_out *out)
{
	char path[4096];
	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, in, len);
	path[len] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno; /* a task returns 0 or a negative error */

	struct counts c = {0};
	char word[256], best[256];
	size_t wlen = 0, blen = 0;
	int ch;
	while ((ch = getc(f)) != EOF) {
		c.bytes++;
		if (ch == '\n')
			c.lines++;
		if (!isspace(ch)) {
			if (wlen < sizeof(word))
				word[wlen] = (char)ch;
			wlen++;
			continue;
		}
		if (wlen) {
			c.words++;
			if (wlen > blen && wlen <= sizeof(word)) {
				blen = wlen;
				memcpy(best, word, wlen);
			}
		}
		wlen = 0;
	}
	if (wlen)
		c.words++;
	fclose(f);
	int e = mp_out_write(out, &c, sizeof(c));
	return e ? e : mp_out_write(out, best, blen);
}

static void print_result(const char *path, int err, const mp_buf *res,
			 struct counts *total)
{
	if (err) {
		printf("%8s %8s %8s  %s: %s\n", "-", "-", "-", path,
		       mp_strerror(err));
		return;
	}
	struct counts c;
	memcpy(&c, res->data, sizeof(c));
	printf("%8llu %8llu %8llu  %s (longest word: %.*s)\n",
	       (unsigned long long)c.lines, (unsigned long long)c.words,
	       (unsigned long long)c.bytes, path,
	       (int)(res->len - sizeof(c)), (char *)res->data + sizeof(c));
	total->lines += c.lines;
	total->words += c.words;
	total->bytes += c.bytes;
}

/* A source over the paths: hands out one path per call. */
struct path_source {
	char **paths;
	int n, next;
};

static int next_path(void *ctx, mp_buf *item)
{
	struct path_source *s = ctx;

	if (s->next >= s->n)
		return 0;
	const char *p = s->paths[s->next++];
	*item = (mp_buf){(void *)p, strlen(p)};
	return 1;
}

/* Our own input when none is given: deterministic text. */
static char dir[] = "/tmp/mp-wordcount-XXXXXX";
static char *made[4];

static int make_files(void)
{
	static const char *words[] = {"pool", "worker", "fork", "shared",
				      "memory", "process", "multiprocessing"};
	if (!mkdtemp(dir))
		return -1;
	for (int k = 0; k < 3; k++) {
		made[k] = malloc(sizeof(dir) + 16);
		sprintf(made[k], "%s/file%d.txt", dir, k);
		FILE *f = fopen(made[k], "w");
		if (!f)
			return -1;
		for (int l = 0; l < 100 * (k + 1); l++) {
			for (int w = 0; w <= l % 7; w++)
				fprintf(f, "%s%s", w ? " " : "",
					words[(l + w * k) % (5 + k)]);
			fputc('\n', f);
		}
		fclose(f);
	}
	made[3] = malloc(sizeof(dir) + 16);
	sprintf(made[3], "%s/missing.txt", dir); /* to show an item error */
	return 4;
}

int main(int argc, char **argv)
{
	char **paths = argv + 1;
	int n = argc - 1;
	if (n == 0) {
		n = make_files();
		if (n < 0) {
			perror("temporary files");
			return 1;
		}
		paths = made;
	}

	mp_pool *pool = mp_pool_new(0);
	if (!pool)
		return 1;

	/* All at once: n paths in, n results out. */
	mp_buf *in = calloc((size_t)n, sizeof(*in));
	mp_buf *out = calloc((size_t)n, sizeof(*out));
	int *errs = calloc((size_t)n, sizeof(*errs));
	if (!in || !out || !errs)
		return 1;
	for (int i = 0; i < n; i++)
		in[i] = (mp_buf){paths[i], strlen(paths[i])};
	int r = mp_pool_map_bufs(pool, wordcount, in, (size_t)n, out, errs, 1);
	printf("map_bufs: %s\n", mp_err_name(r));
	struct counts total = {0};
	for (int i = 0; i < n; i++) {
		/* Our own files by their name: the directory varies. */
		const char *name = paths[i];
		if (paths == made)
			name = strrchr(name, '/') + 1;
		print_result(name, errs[i], &out[i], &total);
	}
	printf("%8llu %8llu %8llu  total\n", (unsigned long long)total.lines,
	       (unsigned long long)total.words,
	       (unsigned long long)total.bytes);
	mp_bufs_free(out, (size_t)n);

	/* One at a time from a source: the same totals. */
	struct path_source src = {paths, n, 0};
	mp_imap *it = mp_pool_imap_source(pool, wordcount, next_path, &src, 1,
					  false);
	if (!it)
		return 1;
	struct counts again = {0};
	mp_buf res;
	size_t i;
	while ((r = mp_imap_next_buf(it, &i, &res, MP_FOREVER)) != MP_ECLOSED) {
		if (r == 0) {
			struct counts c;
			memcpy(&c, res.data, sizeof(c));
			again.words += c.words;
		}
		free(res.data);
	}
	mp_imap_free(it);
	printf("imap_source: %llu words in all\n",
	       (unsigned long long)again.words);

	mp_pool_close(pool);
	mp_pool_join(pool);
	mp_pool_free(pool);
	if (paths == made) {
		for (int k = 0; k < 4; k++) {
			unlink(made[k]);
			free(made[k]);
		}
		rmdir(dir);
	}
	free(in);
	free(out);
	free(errs);
	return 0;
}
