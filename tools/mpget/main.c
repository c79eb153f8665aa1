/* SPDX-License-Identifier: MIT */
/*
 * mpget's command line: options, --help, and the URL list; run.c does
 * the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mpget.h"

static const char usage_text[] =
"Usage: mpget [OPTIONS] [URL...]\n"
"Download many files over HTTP(S) and FTP(S) at once, with worker\n"
"processes.\n"
"\n"
"Input:\n"
"  URL...                   URLs to fetch: http://, https://, ftp://, ftps://\n"
"  -o, --output NAME        save the one URL given as NAME (a path: its\n"
"                           directory is used as -d)\n"
"  -i, --input-file FILE    read URLs from FILE, or from stdin with '-':\n"
"                           one URL per line; blank lines and '#' comments\n"
"                           are skipped; indented lines under a URL set\n"
"                           options for it:  out=NAME  checksum=TYPE=HEX\n"
"                           (TYPE: md5, sha-1, sha-256, sha-512); several\n"
"                           URLs on a line, TAB-separated: mirrors of one\n"
"                           file (failover; -s spreads pieces over them)\n"
"      --strict             stop at the first bad input line (exit 2)\n"
"                           instead of reporting it and going on\n"
"\n"
"Where files go:\n"
"  -d, --dir DIR            save into DIR (created; default: .)\n"
"                           names come from the URL path (percent-decoded)\n"
"                           or out=; mpget never writes outside DIR\n"
"      --content-disposition  use the server's Content-Disposition name\n"
"      --no-clobber         skip a file whose name exists in DIR\n"
"      --overwrite          replace existing files (default: NAME.1.EXT)\n"
"      --no-fsync           do not flush each file to disk before its\n"
"                           rename (faster for many small files; after a\n"
"                           power loss a file may be empty or cut)\n"
"  -c, --continue           resume NAME.part files left by an earlier run;\n"
"                           files already in DIR are skipped\n"
"\n"
"Concurrency:\n"
"  -j, --jobs N             transfers at once, in all (default 16)\n"
"      --processes N        worker processes (default: CPUs, at most -j)\n"
"      --max-per-host N     connections to one host, in total\n"
"      --limit-rate RATE    total download rate, e.g. 500K, 10M\n"
"                           (a file is not split under a rate limit)\n"
"  -s, --split N            fetch a file of at least 2 x min-split-size\n"
"                           in N pieces over several connections, when\n"
"                           its server takes Range (default 1: whole)\n"
"  -x, --max-connection-per-server N  connections for one file (default:\n"
"                           -s; -x alone sets -s to N too)\n"
"  -k SIZE, --min-split-size SIZE  smallest piece (default 1M); -k with a\n"
"                           size is aria2c's, -k alone is --insecure\n"
"\n"
"Network:\n"
"      --retries N          retries of transient failures: connect errors,\n"
"                           timeouts, 5xx, 408, 429 (default 5)\n"
"      --retry-wait SECS    first backoff; doubles, with jitter (default 1);\n"
"                           Retry-After is honoured\n"
"      --connect-timeout SECS  (default 30)\n"
"      --timeout SECS       limit for one transfer (default: none)\n"
"      --stall-timeout SECS give up on a transfer that receives nothing\n"
"                           for this long (default 60; 0: never)\n"
"      --max-redirs N       redirects to follow (default 10); only to\n"
"                           http:// and https://\n"
"      --max-filesize SIZE  refuse bigger files, e.g. 100M\n"
"  -H, --header 'NAME: VALUE'  extra request header (repeatable), sent\n"
"                           to the URL's host only, not where it redirects\n"
"      --location-trusted   send -H headers to redirects' hosts too\n"
"  -A, --user-agent STRING\n"
"  -k, --insecure           do not verify TLS certificates (warns)\n"
"      --cacert FILE        trust the CA certificates in FILE (PEM)\n"
"      --capath DIR         trust the CA certificates in DIR (c_rehash)\n"
"      --cert FILE          client certificate (PEM)\n"
"      --key FILE           its private key (default: in --cert)\n"
"      --proxy URL          proxy for every URL (default: the variables\n"
"                           http_proxy, https_proxy, as in curl; '' none)\n"
"      --noproxy LIST       hosts reached directly, comma-separated\n"
"                           (default: no_proxy)\n"
"  -u, --user USER:PASS     HTTP (basic, digest...) or FTP login, sent to\n"
"                           the URL's host only, not where it redirects\n"
"  -n, --netrc              logins from ~/.netrc, by host\n"
"      --netrc-file FILE    logins from FILE\n"
"      --load-cookies FILE  send the cookies of FILE (Netscape format, as\n"
"                           curl and aria2c; a bad line: exit 2)\n"
"      --save-cookies FILE  write every cookie at the end, FILE's and the\n"
"                           servers', in the same format\n"
"\n"
"Output:\n"
"  -q, --quiet              nothing at all when every file succeeds;\n"
"                           otherwise only the failures\n"
"  -v, --verbose            also retries and a line per file\n"
"      --progress MODE      auto (default), bar, lines or none\n"
"      --report FILE        write per-URL results as JSON ('-': stdout)\n"
"  -h, --help               this text\n"
"  -V, --version\n"
"\n"
"Every file is written to NAME.part and renamed to NAME only when it is\n"
"complete: its size matches Content-Length (and Content-Range) and, when\n"
"given, its sha-256.  A failed download leaves no file behind.\n"
"\n"
"Exit status (when several files fail, the first failed file in list\n"
"order decides; bad input lines come before every file):\n"
"    0  every file ok (or skipped)\n"
"    1  a file failed otherwise (HTTP 403, 5xx after retries, ...)\n"
"    2  bad command line or bad input list\n"
"    3  a file was not found (HTTP 404 or 410)\n"
"    4  network or TLS error (connect, DNS, reset, timeout, certificate,\n"
"       proxy)\n"
"    5  checksum mismatch\n"
"    6  local write error (disk full, permission)\n"
"  130  interrupted (Ctrl-C; 143 for SIGTERM): .part files are kept\n"
"       for -c\n";

enum {
	OPT_PROCESSES = 256,
	OPT_MAX_PER_HOST,
	OPT_CD,
	OPT_NO_CLOBBER,
	OPT_OVERWRITE,
	OPT_NO_FSYNC,
	OPT_RETRIES,
	OPT_RETRY_WAIT,
	OPT_CONNECT_TIMEOUT,
	OPT_TIMEOUT,
	OPT_STALL_TIMEOUT,
	OPT_MAX_REDIRS,
	OPT_LOCATION_TRUSTED,
	OPT_MAX_FILESIZE,
	OPT_LIMIT_RATE,
	OPT_REPORT,
	OPT_STRICT,
	OPT_PROGRESS,
	OPT_CACERT,
	OPT_CAPATH,
	OPT_CERT,
	OPT_KEY,
	OPT_PROXY,
	OPT_NOPROXY,
	OPT_MIN_SPLIT,
	OPT_LOAD_COOKIES,
	OPT_SAVE_COOKIES,
	OPT_NETRC_FILE,
};

static const struct option longopts[] = {
	{"input-file", required_argument, NULL, 'i'},
	{"dir", required_argument, NULL, 'd'},
	{"jobs", required_argument, NULL, 'j'},
	{"processes", required_argument, NULL, OPT_PROCESSES},
	{"max-per-host", required_argument, NULL, OPT_MAX_PER_HOST},
	{"continue", no_argument, NULL, 'c'},
	{"content-disposition", no_argument, NULL, OPT_CD},
	{"no-clobber", no_argument, NULL, OPT_NO_CLOBBER},
	{"overwrite", no_argument, NULL, OPT_OVERWRITE},
	{"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
	{"retries", required_argument, NULL, OPT_RETRIES},
	{"retry-wait", required_argument, NULL, OPT_RETRY_WAIT},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT},
	{"max-redirs", required_argument, NULL, OPT_MAX_REDIRS},
	{"location-trusted", no_argument, NULL, OPT_LOCATION_TRUSTED},
	{"max-filesize", required_argument, NULL, OPT_MAX_FILESIZE},
	{"limit-rate", required_argument, NULL, OPT_LIMIT_RATE},
	{"header", required_argument, NULL, 'H'},
	{"user-agent", required_argument, NULL, 'A'},
	{"insecure", no_argument, NULL, 'k'},
	{"cacert", required_argument, NULL, OPT_CACERT},
	{"capath", required_argument, NULL, OPT_CAPATH},
	{"cert", required_argument, NULL, OPT_CERT},
	{"key", required_argument, NULL, OPT_KEY},
	{"proxy", required_argument, NULL, OPT_PROXY},
	{"noproxy", required_argument, NULL, OPT_NOPROXY},
	{"output", required_argument, NULL, 'o'},
	{"split", required_argument, NULL, 's'},
	{"max-connection-per-server", required_argument, NULL, 'x'},
	{"min-split-size", required_argument, NULL, OPT_MIN_SPLIT},
	{"load-cookies", required_argument, NULL, OPT_LOAD_COOKIES},
	{"save-cookies", required_argument, NULL, OPT_SAVE_COOKIES},
	{"user", required_argument, NULL, 'u'},
	{"netrc", no_argument, NULL, 'n'},
	{"netrc-file", required_argument, NULL, OPT_NETRC_FILE},
	{"quiet", no_argument, NULL, 'q'},
	{"verbose", no_argument, NULL, 'v'},
	{"progress", required_argument, NULL, OPT_PROGRESS},
	{"report", required_argument, NULL, OPT_REPORT},
	{"strict", no_argument, NULL, OPT_STRICT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* A number is written as one: strtod() and strtol() would also skip
 * leading white space and take "nan", "inf" and hex. */
static bool number_start(const char *s)
{
	return (*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' &&
					    s[1] <= '9');
}

/* "123", "10K", "1.5M", "2G" (powers of 1024). */
int parse_size(const char *s, int64_t *out)
{
	char *end;
	double v;

	if (!number_start(s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v >= 0)) /* NaN too */
		return -1;
	switch (*end) {
	case 'k': case 'K':
		v *= 1024;
		end++;
		break;
	case 'm': case 'M':
		v *= 1024 * 1024;
		end++;
		break;
	case 'g': case 'G':
		v *= 1024.0 * 1024 * 1024;
		end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end || v > 9e18)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int parse_int(const char *s, const char *opt, int min, int max,
		     int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!number_start(s) || errno || end == s || *end || v < min ||
	    v > max) {
		errorf("%s wants a number from %d to %d, not '%s'", opt, min,
		       max, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int parse_secs(const char *s, const char *opt, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* Written so that NaN fails too: it compares false with anything,
	 * and a NaN timeout never expires. */
	if (!number_start(s) || errno || end == s || *end ||
	    !(v >= 0 && v <= 1e6)) {
		errorf("%s wants seconds from 0 to 1e6, not '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int usage_error(void)
{
	outf("Try 'mpget --help'.\n");
	return EXIT_USAGE;
}

/*
 * -o NAME: the one URL's name.  With a '/', as in curl, the directory
 * part is where it goes (under -d when relative), so the name itself is
 * still a plain file name and mpget still writes nowhere else.
 */
static int set_output(struct opts *o, struct joblist *jl, char **outdir)
{
	const char *slash = strrchr(o->output, '/');
	const char *name = slash ? slash + 1 : o->output;

	if (jl->n != 1) {
		errorf("-o names one file, but there are %zu URLs", jl->n);
		return usage_error();
	}
	if (!name_is_safe(name)) {
		errorf("-o %s: not a usable file name", o->output);
		return usage_error();
	}
	if (slash) {
		int dlen = slash == o->output ? 1 : (int)(slash - o->output);
		int n = o->output[0] == '/' || !strcmp(o->dir, ".")
				? asprintf(outdir, "%.*s", dlen, o->output)
				: asprintf(outdir, "%s/%.*s", o->dir, dlen,
					   o->output);

		if (n < 0) {
			*outdir = NULL;
			errorf("out of memory");
			return EXIT_SOME_FAILED;
		}
		o->dir = *outdir;
	}
	free(jl->v[0].name);
	jl->v[0].name = strdup(name);
	if (!jl->v[0].name) {
		errorf("out of memory");
		return EXIT_SOME_FAILED;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.dir = ".",
		.jobs = 16,
		.retries = 5,
		.retry_wait = 1,
		.connect_timeout = 30,
		.stall_timeout = 60,
		.max_redirs = 10,
		.user_agent = "mpget/" MPGET_VERSION,
		.verbosity = 1,
	};
	struct joblist jl = {0};
	const char *inputs[64];
	int ninputs = 0;
	char *outdir = NULL;
	int c, v, ret;

	while ((c = getopt_long(argc, argv, "i:d:j:cH:A:kqvhVo:s:x:u:n",
				longopts, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 'i':
			if (ninputs == 64) {
				errorf("too many -i options");
				return usage_error();
			}
			inputs[ninputs++] = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'j':
			bad = parse_int(optarg, "-j", 1, 10000, &o.jobs);
			break;
		case OPT_PROCESSES:
			bad = parse_int(optarg, "--processes", 1, MAX_WORKERS,
					&o.processes);
			break;
		case OPT_MAX_PER_HOST:
			bad = parse_int(optarg, "--max-per-host", 1, 10000,
					&o.max_per_host);
			break;
		case 'c':
			o.cont = true;
			break;
		case OPT_CD:
			o.content_disposition = true;
			break;
		case OPT_NO_CLOBBER:
			o.no_clobber = true;
			break;
		case OPT_NO_FSYNC:
			o.no_fsync = true;
			break;
		case OPT_OVERWRITE:
			o.overwrite = true;
			break;
		case OPT_RETRIES:
			bad = parse_int(optarg, "--retries", 0, 1000,
					&o.retries);
			break;
		case OPT_RETRY_WAIT:
			bad = parse_secs(optarg, "--retry-wait", &o.retry_wait);
			break;
		case OPT_CONNECT_TIMEOUT:
			bad = parse_secs(optarg, "--connect-timeout",
					 &o.connect_timeout);
			break;
		case OPT_TIMEOUT:
			bad = parse_secs(optarg, "--timeout", &o.timeout);
			break;
		case OPT_STALL_TIMEOUT:
			bad = parse_secs(optarg, "--stall-timeout",
					 &o.stall_timeout);
			break;
		case OPT_MAX_REDIRS:
			bad = parse_int(optarg, "--max-redirs", 0, 1000, &v);
			o.max_redirs = v;
			break;
		case OPT_LOCATION_TRUSTED:
			o.location_trusted = true;
			break;
		case OPT_MAX_FILESIZE:
			bad = parse_size(optarg, &o.max_filesize);
			if (bad)
				errorf("--max-filesize wants a size, not '%s'",
				       optarg);
			break;
		case OPT_LIMIT_RATE:
			bad = parse_size(optarg, &o.limit_rate) ||
			      o.limit_rate < 1;
			if (bad)
				errorf("--limit-rate wants a rate of at least "
				       "1 byte/s, not '%s'", optarg);
			break;
		case 'H': {
			struct curl_slist *l;

			if (!strchr(optarg, ':') && !strchr(optarg, ';')) {
				errorf("-H wants 'Name: value', not '%s'",
				       optarg);
				bad = -1;
				break;
			}
			l = curl_slist_append(o.headers, optarg);
			if (!l) {
				errorf("out of memory");
				return EXIT_SOME_FAILED;
			}
			o.headers = l;
			break;
		}
		case 'A':
			o.user_agent = optarg;
			break;
		case 'k':
			/* aria2c's -k SIZE (min-split-size) or curl's -k
			 * (--insecure): a size next is aria2c's.  URLs are
			 * never sizes, so nothing is taken by mistake. */
			if (optind < argc && argv[optind][0] != '-' &&
			    parse_size(argv[optind], &o.min_split) == 0) {
				if (o.min_split < 1) {
					errorf("-k wants a size of at least 1");
					bad = -1;
				}
				optind++;
				break;
			}
			o.insecure = true;
			break;
		case OPT_MIN_SPLIT:
			bad = parse_size(optarg, &o.min_split) ||
			      o.min_split < 1;
			if (bad)
				errorf("--min-split-size wants a size, not "
				       "'%s'", optarg);
			break;
		case OPT_LOAD_COOKIES:
			o.load_cookies = optarg;
			break;
		case OPT_SAVE_COOKIES:
			o.save_cookies = optarg;
			break;
		case 'u':
			if (!strchr(optarg, ':')) {
				errorf("--user wants USER:PASSWORD");
				bad = -1;
			}
			o.user = optarg;
			break;
		case 'n':
			o.netrc = true;
			break;
		case OPT_NETRC_FILE:
			o.netrc = true;
			o.netrc_file = optarg;
			break;
		case 's':
			bad = parse_int(optarg, "-s", 1, 10000, &o.split);
			break;
		case 'x':
			bad = parse_int(optarg, "-x", 1, 10000, &o.conns);
			break;
		case OPT_CACERT:
			o.cacert = optarg;
			break;
		case OPT_CAPATH:
			o.capath = optarg;
			break;
		case OPT_CERT:
			o.cert = optarg;
			break;
		case OPT_KEY:
			o.key = optarg;
			break;
		case OPT_PROXY:
			o.proxy = optarg;
			break;
		case OPT_NOPROXY:
			o.noproxy = optarg;
			break;
		case 'o':
			o.output = optarg;
			break;
		case 'q':
			o.verbosity = 0;
			break;
		case 'v':
			o.verbosity = 2;
			break;
		case OPT_PROGRESS:
			if (!strcmp(optarg, "auto"))
				o.progress = PROGRESS_AUTO;
			else if (!strcmp(optarg, "bar"))
				o.progress = PROGRESS_BAR;
			else if (!strcmp(optarg, "lines"))
				o.progress = PROGRESS_LINES;
			else if (!strcmp(optarg, "none"))
				o.progress = PROGRESS_NONE;
			else {
				errorf("--progress wants auto, bar, lines or "
				       "none");
				bad = -1;
			}
			break;
		case OPT_REPORT:
			o.report = optarg;
			break;
		case OPT_STRICT:
			o.strict = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'V':
			printf("mpget %s (multiproc %u.%u.%u, %s)\n",
			       MPGET_VERSION, mp_version() >> 16 & 0xff,
			       mp_version() >> 8 & 0xff, mp_version() & 0xff,
			       curl_version());
			return EXIT_OK;
		default:
			return usage_error();
		}
		if (bad)
			return usage_error();
	}
	msg_verbosity = o.verbosity;
	if (o.conns > 0 && o.split == 0)
		o.split = o.conns; /* -x alone: use the connections */
	if (o.split == 0)
		o.split = 1;
	if (o.no_clobber && o.overwrite) {
		errorf("--no-clobber and --overwrite contradict each other");
		return usage_error();
	}
	if (optind == argc && ninputs == 0) {
		errorf("no URLs (give them as arguments or with -i FILE)");
		return usage_error();
	}
	if (o.load_cookies && cookies_check(o.load_cookies) < 0)
		return EXIT_USAGE; /* a bad list: of cookies */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		errorf("libcurl failed to initialize");
		return EXIT_SOME_FAILED;
	}
	if (o.insecure)
		warnf("--insecure: TLS certificates are not verified; anyone "
		      "on the path can change what you download");
	ret = 0;
	for (int i = optind; i < argc && ret == 0; i++) {
		ret = urllist_add_url(&jl, argv[i], NULL, 0);
		if (ret == -EINVAL && !o.strict)
			ret = 0;
	}
	for (int i = 0; i < ninputs && ret == 0; i++)
		ret = urllist_read(&jl, inputs[i], o.strict);
	if (ret == -ENOMEM) {
		errorf("out of memory");
		ret = EXIT_SOME_FAILED;
		goto out;
	}
	if (ret) {
		ret = EXIT_USAGE; /* a bad list, or one not read */
		goto out;
	}
	if (o.output && (ret = set_output(&o, &jl, &outdir)) != 0)
		goto out;
	if (o.processes == 0)
		o.processes = mp_cpu_count();
	if (o.processes > o.jobs)
		o.processes = o.jobs;
	if (o.processes > MAX_WORKERS)
		o.processes = MAX_WORKERS;
	/* --max-per-host is a total: the workers split it, one at least. */
	if (o.max_per_host > 0 && o.processes > o.max_per_host)
		o.processes = o.max_per_host;
	ret = run(&o, &jl);
out:
	free(outdir);
	joblist_free(&jl);
	curl_slist_free_all(o.headers);
	curl_global_cleanup();
	return ret;
}
