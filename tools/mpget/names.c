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

/* Cut at a UTF-8 character boundary so a long name stays valid text. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
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
 */
int name_numbered(const char *name, unsigned k, char *buf, size_t size)
{
	size_t len = strlen(name);
	const char *dot = strrchr(name, '.');
	int n;

	if (len >= 5 && !strcmp(name + len - 5, ".part"))
		dot = NULL;
	if (!dot || dot == name || len - (size_t)(dot - name) > 10)
		n = snprintf(buf, size, "%s.%u", name, k);
	else
		n = snprintf(buf, size, "%.*s.%u%s", (int)(dot - name), name,
			     k, dot);
	return n < 0 || (size_t)n >= size ? -1 : 0;
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

/* An open-addressing set of names for one run. */
struct nameset {
	char **slot;
	size_t cap, used;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static bool set_has(const struct nameset *set, const char *s)
{
	for (size_t i = hash(s) & (set->cap - 1); set->slot[i];
	     i = (i + 1) & (set->cap - 1))
		if (!strcmp(set->slot[i], s))
			return true;
	return false;
}

static int set_add(struct nameset *set, char *s)
{
	size_t i = hash(s) & (set->cap - 1);

	while (set->slot[i])
		i = (i + 1) & (set->cap - 1);
	set->slot[i] = s;
	set->used++;
	return 0;
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
 * Give every job a distinct name (numbered in list order), so the same
 * list gives the same names on every run: -c finds its .part files again.
 */
int names_assign(struct joblist *jl)
{
	struct nameset set = {0};
	int ret = 0;

	set.cap = 16;
	while (set.cap < 4 * jl->n + 16)
		set.cap *= 2;
	set.slot = calloc(set.cap, sizeof(*set.slot));
	if (!set.slot)
		return -1;
	for (size_t i = 0; i < jl->n && ret == 0; i++) {
		struct job *j = &jl->v[i];
		char buf[MAX_NAME_LEN + 64];
		unsigned k = 1;

		if (!j->name)
			j->name = name_from_url(j->url);
		if (!j->name) {
			ret = -1;
			break;
		}
		if (name_taken(&set, j->name)) {
			do {
				name_numbered(j->name, k++, buf, sizeof(buf));
			} while (name_taken(&set, buf));
			free(j->name);
			j->name = strdup(buf);
			if (!j->name) {
				ret = -1;
				break;
			}
		}
		ret = reserve(&set, j->name);
	}
	for (size_t i = 0; i < set.cap; i++)
		free(set.slot[i]);
	free(set.slot);
	return ret;
}
