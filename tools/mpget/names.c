/* SPDX-License-Identifier: MIT */
/*
 * File names: where a download may be saved.
 *
 * The rule is that a name is one path component inside DIR and nothing
 * else: no '/', no "." or "..", no control characters, not empty, at most
 * MAX_NAME_LEN bytes.  Names that come from the network (the URL path, a
 * Content-Disposition header) are repaired to fit the rule; a name the
 * user gave (out=) must already fit it.  Files are then opened relative to
 * a directory descriptor with O_NOFOLLOW, so DIR is the only place written.
 *
 * Within one run every job gets a distinct name, and no name is another
 * job's "NAME.part"; a name taken on disk is numbered when the file is
 * renamed into place (fetch.c), never overwritten unless asked.
 */
#include <stdlib.h>
#include <string.h>

#include "mpget.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Cut at a UTF-8 character boundary so a long name stays valid text.  A
 * character has at most 3 continuation bytes: past that the bytes are not
 * UTF-8, and any cut will do. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t cut = max;

	if (len <= max)
		return len;
	while (cut > 0 && max - cut < 3 &&
	       ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	return ((unsigned char)s[cut] & 0xc0) == 0x80 ? max : cut;
}

bool name_is_safe(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MAX_NAME_LEN)
		return false;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return false;
	return true;
}

/*
 * Percent-decode raw[0..len) and repair it into a safe name: separators
 * and control characters become '_', "." and ".." become "_", and a name
 * that ends up empty is refused (NULL).
 */
static char *sanitize(const char *raw, size_t len, bool decode)
{
	char *out = malloc(len + 2);
	size_t n = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)raw[i];

		if (decode && c == '%' && i + 2 < len &&
		    hexval(raw[i + 1]) >= 0 && hexval(raw[i + 2]) >= 0) {
			c = hexval(raw[i + 1]) * 16 + hexval(raw[i + 2]);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
			c = '_';
		out[n++] = (char)c;
	}
	out[n] = '\0';
	n = utf8_cut(out, n, MAX_NAME_LEN);
	out[n] = '\0';
	if (n == 0) {
		free(out);
		return NULL;
	}
	if (!strcmp(out, ".") || !strcmp(out, ".."))
		strcpy(out, "_");
	return out;
}

char *name_sanitize(const char *raw, size_t len)
{
	return sanitize(raw, len, true);
}

/* The last segment of the URL's path, decoded; "index.html" for a path
 * that ends in '/'. */
char *name_from_url(const char *url)
{
	const char *p = strstr(url, "://");
	const char *end;
	const char *seg;
	char *name;

	p = p ? p + 3 : url;
	p += strcspn(p, "/?#");          /* skip the authority */
	end = p + strcspn(p, "?#");      /* the path ends at query/fragment */
	seg = end;
	while (seg > p && seg[-1] != '/')
		seg--;
	name = name_sanitize(seg, (size_t)(end - seg));
	return name ? name : strdup("index.html");
}

/*
 * "NAME.K.EXT" for the K-th alternative to "NAME.EXT" (the extension
 * stays last, as image viewers want it), "NAME.K" without an extension,
 * and "NAME.part.K" so that a numbered name never looks like a .part file.
 * NAME is cut (on a character boundary) so that the result is at most
 * MAX_NAME_LEN bytes, like every name: a name that fills the limit can
 * still be numbered.
 */
int name_numbered(const char *name, unsigned k, char *buf, size_t size)
{
	size_t len = strlen(name);
	const char *dot = strrchr(name, '.');
	char num[16];
	size_t stem, ext, room;
	int n;

	if (len >= 5 && !strcmp(name + len - 5, ".part"))
		dot = NULL;
	if (!dot || dot == name || len - (size_t)(dot - name) > 10)
		dot = name + len;
	stem = (size_t)(dot - name);
	ext = len - stem;
	n = snprintf(num, sizeof(num), ".%u", k);
	room = MAX_NAME_LEN - ext - (size_t)n; /* ext <= 10, n <= 11 */
	for (size_t full = stem;; room = stem - 1) {
		stem = utf8_cut(name, full, room);
		if (stem == 0 || stem + (size_t)n + ext >= size)
			return -1;
		memcpy(buf, name, stem);
		memcpy(buf + stem, num, (size_t)n);
		memcpy(buf + stem + (size_t)n, dot, ext + 1);
		/* "x...ab.1.c" cut to fit can be "x...a" + ".1.c" again: one
		 * character less makes it shorter than the name. */
		if (strcmp(buf, name))
			return 0;
	}
}

/*
 * The file name in a Content-Disposition value: filename*=UTF-8''...
 * (RFC 6266, preferred) or filename="..." / filename=....  Only its last
 * path component is kept, then repaired like any network name.
 */
char *name_from_disposition(const char *v, size_t len)
{
	char tmp[1024];
	const char *best = NULL;
	size_t best_len = 0;
	bool ext = false;

	if (len >= sizeof(tmp))
		return NULL;
	memcpy(tmp, v, len);
	tmp[len] = '\0';
	for (char *p = tmp; (p = strcasestr(p, "filename")) != NULL;) {
		bool star = false;
		const char *val;
		size_t vlen;

		p += 8;
		if (*p == '*') {
			star = true;
			p++;
		}
		while (*p == ' ')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ')
			p++;
		if (*p == '"') {
			val = ++p;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			vlen = (size_t)(p - val);
		} else {
			val = p;
			vlen = strcspn(p, ";");
			while (vlen && val[vlen - 1] == ' ')
				vlen--;
		}
		if (star) {
			const char *q = memchr(val, '\'', vlen);
			const char *r = NULL;

			if (q)
				r = memchr(q + 1, '\'',
					   vlen - (size_t)(q + 1 - val));

			if (!r)
				continue;
			vlen -= (size_t)(r + 1 - val);
			val = r + 1;
			best = val;
			best_len = vlen;
			ext = true;
		} else if (!ext) {
			best = val;
			best_len = vlen;
		}
	}
	if (!best)
		return NULL;
	/* Keep only the last component, whatever the separator. */
	for (size_t i = best_len; i > 0; i--) {
		if (best[i - 1] == '/' || best[i - 1] == '\\') {
			best_len -= i;
			best += i;
			break;
		}
	}
	return sanitize(best, best_len, ext);
}

/*
 * An open-addressing table of names for one run: the names taken, and
 * for each name that had to be numbered, the next number to try.
 */
struct entry {
	char *name;
	unsigned next;
};

struct nameset {
	struct entry *slot;
	size_t cap;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static int set_init(struct nameset *set, size_t n)
{
	set->cap = 16;
	while (set->cap < 2 * n + 16)
		set->cap *= 2;
	set->slot = calloc(set->cap, sizeof(*set->slot));
	return set->slot ? 0 : -1;
}

static void set_free(struct nameset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i].name);
	free(set->slot);
}

/* The entry of s, or the free slot where it goes. */
static struct entry *set_find(const struct nameset *set, const char *s)
{
	size_t i = hash(s) & (set->cap - 1);

	while (set->slot[i].name && strcmp(set->slot[i].name, s))
		i = (i + 1) & (set->cap - 1);
	return &set->slot[i];
}

static bool set_has(const struct nameset *set, const char *s)
{
	return set_find(set, s)->name != NULL;
}

/* Add s (taken over) unless it is there; the table never fills: it has
 * room for twice what the caller said it would add. */
static struct entry *set_add(struct nameset *set, char *s)
{
	struct entry *e = set_find(set, s);

	if (e->name)
		free(s);
	else
		e->name = s;
	return e;
}

static bool name_taken(const struct nameset *set, const char *name)
{
	char part[MAX_NAME_LEN + 80];

	snprintf(part, sizeof(part), "%.*s.part", MAX_NAME_LEN + 64, name);
	return set_has(set, name) || set_has(set, part);
}

/* Reserve NAME and NAME.part for this job. */
static int reserve(struct nameset *set, const char *name)
{
	char *a = strdup(name);
	char *b = malloc(strlen(name) + 6);

	if (!a || !b) {
		free(a);
		free(b);
		return -1;
	}
	strcpy(b, name);
	strcat(b, ".part");
	set_add(set, a);
	set_add(set, b);
	return 0;
}

/*
 * The first free numbered form of a taken name.  Numbers only ever get
 * taken, so the search for a name goes on where its last one stopped: n
 * copies of one URL cost O(n), not O(n^2).
 */
static char *number_name(struct nameset *next, const struct nameset *set,
			 const char *name)
{
	char buf[MAX_NAME_LEN + 64];
	char *key = strdup(name);
	struct entry *e;
	unsigned k;

	if (!key)
		return NULL;
	e = set_add(next, key);
	k = e->next ? e->next : 1;
	do {
		if (k == 0 || name_numbered(name, k++, buf, sizeof(buf)) < 0)
			return NULL; /* cannot happen: names are short */
	} while (name_taken(set, buf));
	e->next = k;
	return strdup(buf);
}

/*
 * Give every job a distinct name (numbered in list order), so the same
 * list gives the same names on every run: -c finds its .part files again.
 */
int names_assign(struct joblist *jl)
{
	struct nameset set = {0}, next = {0};
	int ret = 0;

	if (set_init(&set, 2 * jl->n) < 0 || set_init(&next, jl->n) < 0) {
		free(set.slot);
		return -1;
	}
	for (size_t i = 0; i < jl->n && ret == 0; i++) {
		struct job *j = &jl->v[i];

		if (!j->name)
			j->name = name_from_url(j->url);
		if (!j->name) {
			ret = -1;
			break;
		}
		if (name_taken(&set, j->name)) {
			char *numbered = number_name(&next, &set, j->name);

			if (!numbered) {
				ret = -1;
				break;
			}
			free(j->name);
			j->name = numbered;
		}
		ret = reserve(&set, j->name);
	}
	set_free(&set);
	set_free(&next);
	return ret;
}
