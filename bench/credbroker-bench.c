/*
 * credbroker-bench: load generator for credbrokerd (docs/performance.md).
 *
 * Opens N connections to the broker's UNIX socket and keeps a pipelining
 * depth of P requests in flight on each: whenever replies arrive on a
 * connection, as many new requests are written (in one write) as it takes
 * to have P outstanding again.  It reports throughput, the p50, p99 and
 * p99.9 of the per-request latency (send to receive, CLOCK_MONOTONIC), the
 * shares of the machine's CPU time that were idle and that the host took
 * (steal, /proc/stat) over the measured window, and, given the daemon's
 * pid, the daemon's CPU time, resident memory and read system calls per
 * request (/proc/PID/io).
 *
 * It is built not to be the bottleneck: one thread, one libuv loop polling
 * plain non-blocking sockets, requests packed once per kind with msgpack-c
 * and then copied and patched in place (msgid, user uuid, value), and
 * replies framed with the broker's own header scanner (proto_scan) and
 * checked by their first bytes only ([1, msgid, nil, ...]).  --verify
 * unpacks every reply fully and checks the substituted values instead.
 *
 * Workloads (-w):
 *	hello	hello {}
 *	status	cred.status {user}
 *	sub1	substitute, 1 placeholder (Authorization header), db or vault
 *	sub5	substitute, 5 placeholders (URL query with urlquery, 3 headers,
 *		JSON body with json)
 *	mix	90% sub1, 10% cred.set (--set-percent)
 *	request	request: the broker substitutes 1 placeholder (as sub1) and
 *		sends a GET to --target itself (credbroker-bench-httpd)
 *	sub+curl what a runner does without "request": substitute (as sub1),
 *		then send the substituted GET to --target with libcurl (one
 *		easy handle per request slot, reused; connections kept
 *		alive); a request counts once the HTTP answer is in
 *	none	no load (with --idle: memory of idle connections only)
 *
 * Users are uuids derived deterministically from an index (0 .. --users-1)
 * and every request picks one uniformly at random, so --setup in one run
 * and a measurement in another agree on who has which value.  Values are
 * 40 alphanumeric characters, also derived from (user, type).
 *
 * Test hook: CB_BENCH_PROC_STAT, when not empty, names a file read instead
 * of /proc/stat; its Nth line serves the Nth reading (the last line every
 * later one), so a file of two "cpu ..." lines gives the window's shares.
 *
 * Exit status: 0, 1 when any request failed (the first error is shown),
 * 2 on usage errors, 3 when the broker cannot be reached.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <msgpack.h>
#include <uv.h>

#include "proto.h"

#define BENCH_MAX_REPLY		(16 * 1024 * 1024)
#define BENCH_READ_MIN		(64 * 1024)
#define BENCH_VALUE_LEN		40
#define BENCH_UUID_LEN		36
#define BENCH_TYPES_MAX		64
#define BENCH_DEST		"https://api.example.com"
#define BENCH_TICK_MS		10
#define BENCH_DRAIN_S		30.0
#define BENCH_IDLE_WAIT_S	60.0

/* Marker strings packed into templates, found again and patched. */
#define MARK_USER	"ffffffff-ffff-4fff-bfff-fffffffffffe"
#define MARK_VALUE	"VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV"

enum workload { W_NONE, W_HELLO, W_STATUS, W_SUB1, W_SUB5, W_MIX,
	W_REQUEST, W_SUBCURL, W_SEED };
static const char *const workload_names[] = {
	[W_NONE] = "none", [W_HELLO] = "hello", [W_STATUS] = "status",
	[W_SUB1] = "sub1", [W_SUB5] = "sub5", [W_MIX] = "mix",
	[W_REQUEST] = "request", [W_SUBCURL] = "sub+curl",
	[W_SEED] = "seed",
};

/* Request kinds: one packed template each (cred.set: one per type). */
enum kind { K_HELLO, K_STATUS, K_SUB1, K_SUB5, K_SET, K_REQ, K_SUBCURL,
	K_COUNT };
static const char *const kind_names[] = {
	[K_HELLO] = "hello", [K_STATUS] = "cred.status",
	[K_SUB1] = "substitute/1", [K_SUB5] = "substitute/5",
	[K_SET] = "cred.set", [K_REQ] = "request",
	[K_SUBCURL] = "substitute+curl",
};

/* ------------------------------------------------------------------ */
/* Options and global state                                           */

static struct {
	const char	*sock;
	unsigned	 conns;
	unsigned	 depth;
	double		 duration;
	uint64_t	 nreq;
	double		 warmup;
	int		 workload;
	bool		 setup;
	bool		 setup_only;
	uint64_t	 users;
	unsigned	 types;
	bool		 vault;
	const char	*prefix;
	unsigned	 set_pct;
	long		 pid;
	unsigned	 idle;
	bool		 json;
	bool		 verify;
	unsigned	 seed_conns;
	unsigned	 seed_depth;
	uint64_t	 rng_seed;
	const char	*target;	/* http://127.0.0.1:PORT */
} opt = {
	.conns = 50, .depth = 1, .duration = 10, .warmup = 1,
	.workload = W_SUB1, .users = 1000, .types = 5, .set_pct = 10,
	.seed_conns = 4, .seed_depth = 32, .rng_seed = 1,
};

static char	*cmdline;
static uv_loop_t *loop;
static CURLM	*cm;		/* -w sub+curl */

static inline uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "credbroker-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(3);
}

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static void *
xcalloc(size_t n, size_t sz)
{
	void	*p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

/* ------------------------------------------------------------------ */
/* Deterministic users and values                                     */

/* splitmix64 finaliser. */
static inline uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* xorshift64* for request choices; per process, seeded by --seed. */
static uint64_t	rng_state = 0x2545f4914f6cdd1dULL;

static inline uint64_t
rng_next(void)
{
	uint64_t	x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n) (n < 2^32 in practice; the bias is negligible). */
static inline uint64_t
rng_below(uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next() * n) >> 64);
}

/* User i's uuid: lower-case RFC 4122 version 4 text, 36 bytes, no NUL. */
static void
user_uuid(uint64_t i, char out[BENCH_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t	a = mix64(i ^ 0x6372656462726f6bULL);
	uint64_t	b = mix64(a ^ (i * 0x9e3779b97f4a7c15ULL));
	int		pos = 0, n;

	for (n = 0; n < 32; n++) {
		unsigned v;

		if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
			out[pos++] = '-';
		v = n < 16 ? (unsigned)(a >> (60 - 4 * n)) & 15 :
		    (unsigned)(b >> (60 - 4 * (n - 16))) & 15;
		if (n == 12)
			v = 4;			/* version 4 */
		else if (n == 16)
			v = 8 | (v & 3);	/* RFC 4122 variant */
		out[pos++] = hex[v];
	}
}

/* The value of user i for type k (1-based): BENCH_VALUE_LEN alnum bytes. */
static void
user_value(uint64_t i, unsigned k, char out[BENCH_VALUE_LEN])
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t	h = mix64(i * 131 + k);
	int		n;

	out[0] = 'v';
	for (n = 1; n < BENCH_VALUE_LEN; n++) {
		if (n % 10 == 0)
			h = mix64(h);
		out[n] = al[h % 62];
		h /= 62;
	}
}

/* ------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets, 1/128 relative resolution.  */

#define H_SUB_BITS	7
#define H_SUB		(1u << H_SUB_BITS)
#define H_MAX_EXP	44		/* up to 2^44 ns, about 4.9 hours */
#define H_BUCKETS	((H_MAX_EXP - H_SUB_BITS + 2) * H_SUB)

struct hist {
	uint64_t	 count;
	uint64_t	 sum;
	uint64_t	 max;
	uint64_t	 b[H_BUCKETS];
};

static inline unsigned
hist_index(uint64_t v)
{
	unsigned	e, shift;

	if (v < H_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	if (e > H_MAX_EXP)
		return H_BUCKETS - 1;
	shift = e - H_SUB_BITS;
	return (shift + 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* Middle of bucket idx, in ns. */
static double
hist_value(unsigned idx)
{
	unsigned	block = idx / H_SUB, sub = idx % H_SUB, shift;
	double		lo, w;

	if (block == 0)
		return idx;
	shift = block - 1;
	lo = (double)((uint64_t)(H_SUB + sub) << shift);
	w = (double)((uint64_t)1 << shift);
	return lo + (w - 1) / 2;
}

static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction q of the samples lie, in ns. */
static double
hist_pct(const struct hist *h, double q)
{
	uint64_t	target, acc = 0;
	unsigned	i;

	if (h->count == 0)
		return 0;
	target = (uint64_t)(q * (double)h->count);
	if ((double)target < q * (double)h->count)
		target++;
	if (target == 0)
		target = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= target) {
			double v = hist_value(i);
			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* ------------------------------------------------------------------ */
/* Request templates                                                  */

struct tmpl {
	uint8_t		*buf;
	size_t		 len;
	size_t		 msgid_off;		/* 4 bytes, big-endian */
	size_t		 user_off;		/* BENCH_UUID_LEN bytes */
	size_t		 value_off;		/* 0: none */
};

static struct tmpl	 tmpls[K_COUNT];
static struct tmpl	 set_tmpls[BENCH_TYPES_MAX + 1];	/* by type */

static void
pk_str(msgpack_packer *pk, const char *s)
{
	size_t	n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void
pk_kv(msgpack_packer *pk, const char *k, const char *v)
{
	pk_str(pk, k);
	pk_str(pk, v);
}

/* Type ident of type k (1-based). */
static void
type_ident(unsigned k, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s%u", opt.prefix, k);
}

/* Start [0, msgid, method, [ ... ]]; the caller packs the one map. */
static void
pk_head(msgpack_packer *pk, const char *method)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, 0);
	msgpack_pack_fix_uint32(pk, 0x01020304);
	pk_str(pk, method);
	msgpack_pack_array(pk, 1);
}

/* Finish a template: find where msgid, user and value sit. */
static void
tmpl_finish(struct tmpl *t, msgpack_sbuffer *sb)
{
	uint8_t	*p;

	t->buf = (uint8_t *)sb->data;
	t->len = sb->size;
	sb->data = NULL;
	sb->size = sb->alloc = 0;
	/* 0x94 0x00 0xce msgid */
	if (t->len < 7 || t->buf[0] != 0x94 || t->buf[2] != 0xce)
		die("internal: bad template");
	t->msgid_off = 3;
	p = memmem(t->buf, t->len, MARK_USER, BENCH_UUID_LEN);
	t->user_off = p != NULL ? (size_t)(p - t->buf) : 0;
	p = memmem(t->buf, t->len, MARK_VALUE, BENCH_VALUE_LEN);
	t->value_off = p != NULL ? (size_t)(p - t->buf) : 0;
}

static void
pk_cred(msgpack_packer *pk, const char *id, unsigned k)
{
	char	ident[80];

	type_ident(k, ident, sizeof(ident));
	msgpack_pack_map(pk, 2);
	pk_kv(pk, "id", id);
	pk_kv(pk, "type", ident);
}

static void
pk_header(msgpack_packer *pk, const char *name, const char *value)
{
	msgpack_pack_array(pk, 2);
	pk_str(pk, name);
	pk_str(pk, value);
}

/* The params of sub1 (component and a GET of url) as one map. */
static void
pk_sub1_params(msgpack_packer *pk, const char *url)
{
	msgpack_pack_map(pk, 2);
	pk_str(pk, "component");
	msgpack_pack_map(pk, 3);
	pk_kv(pk, "kind", "action");
	pk_kv(pk, "initiator", MARK_USER);
	pk_str(pk, "credentials");
	msgpack_pack_array(pk, 1);
	pk_cred(pk, "c1", 1);
	pk_str(pk, "request");
	msgpack_pack_map(pk, 3);
	pk_kv(pk, "method", "GET");
	pk_kv(pk, "url", url);
	pk_str(pk, "headers");
	msgpack_pack_array(pk, 2);
	pk_header(pk, "Authorization", "Bearer <<.credentials.c1>>");
	pk_header(pk, "Accept", "application/json");
}

static void
tmpls_build(void)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;
	char		ident[80];
	unsigned	k;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	pk_head(&pk, "hello");
	msgpack_pack_map(&pk, 0);
	tmpl_finish(&tmpls[K_HELLO], &sb);

	pk_head(&pk, "cred.status");
	msgpack_pack_map(&pk, 1);
	pk_kv(&pk, "user", MARK_USER);
	tmpl_finish(&tmpls[K_STATUS], &sb);

	/* One placeholder, in a header: the common runner request. */
	pk_head(&pk, "substitute");
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "component");
	msgpack_pack_map(&pk, 3);
	pk_kv(&pk, "kind", "action");
	pk_kv(&pk, "initiator", MARK_USER);
	pk_str(&pk, "credentials");
	msgpack_pack_array(&pk, 1);
	pk_cred(&pk, "c1", 1);
	pk_str(&pk, "request");
	msgpack_pack_map(&pk, 3);
	pk_kv(&pk, "method", "GET");
	pk_kv(&pk, "url", BENCH_DEST "/v1/items?page=1");
	pk_str(&pk, "headers");
	msgpack_pack_array(&pk, 2);
	pk_header(&pk, "Authorization", "Bearer <<.credentials.c1>>");
	pk_header(&pk, "Accept", "application/json");
	tmpl_finish(&tmpls[K_SUB1], &sb);

	/* Five placeholders: URL query, three headers, a JSON body. */
	pk_head(&pk, "substitute");
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "component");
	msgpack_pack_map(&pk, 3);
	pk_kv(&pk, "kind", "action");
	pk_kv(&pk, "initiator", MARK_USER);
	pk_str(&pk, "credentials");
	msgpack_pack_array(&pk, 5);
	pk_cred(&pk, "c1", 1);
	pk_cred(&pk, "c2", 2);
	pk_cred(&pk, "c3", 3);
	pk_cred(&pk, "c4", 4);
	pk_cred(&pk, "c5", 5);
	pk_str(&pk, "request");
	msgpack_pack_map(&pk, 4);
	pk_kv(&pk, "method", "POST");
	pk_kv(&pk, "url", BENCH_DEST
	    "/v1/items?api_key=<<.credentials.c2 | urlquery>>&page=1");
	pk_str(&pk, "headers");
	msgpack_pack_array(&pk, 4);
	pk_header(&pk, "Authorization", "Bearer <<.credentials.c1>>");
	pk_header(&pk, "X-Api-Key", "<<.credentials.c3>>");
	pk_header(&pk, "X-Client-Secret", "<<.credentials.c4>>");
	pk_header(&pk, "Content-Type", "application/json");
	pk_kv(&pk, "body", "{\"token\":\"<<.credentials.c5 | json>>\","
	    "\"page\":1}");
	tmpl_finish(&tmpls[K_SUB5], &sb);

	/*
	 * request and sub+curl: the GET of sub1 to --target; the first
	 * header is the one --verify checks.
	 */
	if (opt.target != NULL) {
		char url[512];

		snprintf(url, sizeof(url), "%s/v1/items?page=1", opt.target);
		pk_head(&pk, "request");
		pk_sub1_params(&pk, url);
		tmpl_finish(&tmpls[K_REQ], &sb);
		pk_head(&pk, "substitute");
		pk_sub1_params(&pk, url);
		tmpl_finish(&tmpls[K_SUBCURL], &sb);
	}

	for (k = 1; k <= opt.types; k++) {
		type_ident(k, ident, sizeof(ident));
		pk_head(&pk, "cred.set");
		msgpack_pack_map(&pk, 3);
		pk_kv(&pk, "type", ident);
		pk_kv(&pk, "user", MARK_USER);
		pk_kv(&pk, "value", MARK_VALUE);
		tmpl_finish(&set_tmpls[k], &sb);
	}
	tmpls[K_SET] = set_tmpls[1];
	msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------ */
/* /proc figures                                                      */

/* utime + stime of pid in seconds, or -1. */
static double
proc_cpu(long pid)
{
	char		 path[64], buf[2048], *p;
	unsigned long	 ut = 0, st = 0;
	ssize_t		 n;
	int		 fd, field;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* Fields after ") ": 3 state ... 14 utime 15 stime. */
	p += 2;
	for (field = 3; field < 14 && p != NULL; field++)
		if ((p = strchr(p, ' ')) != NULL)
			p++;
	if (p == NULL || sscanf(p, "%lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * The number of a "name: N ..." line of /proc/PID/file, or -1 when pid is
 * not given, the file cannot be read or has no such line.
 */
static long long
proc_field(long pid, const char *file, const char *name)
{
	char		 path[64], line[256];
	FILE		*f;
	long long	 v = -1;
	size_t		 nl = strlen(name);

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			v = strtoll(line + nl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A "Name: N kB" line of /proc/pid/status in KiB, or -1. */
static long
proc_status_kib(long pid, const char *name)
{
	return (long)proc_field(pid, "status", name);
}

/*
 * Read-type system calls of pid so far (syscr of /proc/PID/io: read,
 * pread64, readv, preadv of every thread, sockets included; recv and
 * recvmsg are not counted), or -1 when the file cannot be read (it needs
 * the right to trace the process).
 */
static long long
proc_reads(long pid)
{
	return proc_field(pid, "io", "syscr");
}

/* The machine's CPU time so far, in ticks, from the "cpu" line. */
struct ticks {
	bool			 ok;
	unsigned long long	 total, idle, steal;
};

/*
 * The first line of /proc/stat: user nice system idle iowait irq softirq
 * steal (guest and guest_nice are counted in user and nice already).
 * With CB_BENCH_PROC_STAT, the Nth call reads line N of that file.
 */
static struct ticks
machine_ticks(void)
{
	static unsigned		 nread;
	const char		*hook = getenv("CB_BENCH_PROC_STAT");
	char			 line[512], cur[512] = "";
	unsigned long long	 v[8] = { 0 };
	struct ticks		 t = { .ok = false };
	unsigned		 n = 0;
	FILE			*f;
	int			 i, nv;

	nread++;
	if (hook != NULL && *hook == '\0')
		hook = NULL;
	if ((f = fopen(hook != NULL ? hook : "/proc/stat", "re")) == NULL)
		return t;
	while (fgets(line, sizeof(line), f) != NULL) {
		memcpy(cur, line, strlen(line) + 1);
		if (hook == NULL || ++n == nread)
			break;
	}
	fclose(f);
	if (strncmp(cur, "cpu ", 4) != 0)
		return t;
	nv = sscanf(cur + 4, "%llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	if (nv < 4)
		return t;
	for (i = 0; i < 8; i++)
		t.total += v[i];
	t.idle = v[3] + v[4];		/* idle and iowait */
	t.steal = v[7];
	t.ok = true;
	return t;
}

/* What rose from x0 to x1 over the window a..b, in percent of it, or -1. */
static double
ticks_pct(const struct ticks *a, const struct ticks *b,
    unsigned long long x0, unsigned long long x1)
{
	if (!a->ok || !b->ok || b->total <= a->total || x1 < x0)
		return -1;
	return 100.0 * (double)(x1 - x0) / (double)(b->total - a->total);
}

static double
self_cpu(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

struct bconn;

struct slot {
	uint32_t	 msgid;		/* 0: free */
	uint8_t		 kind;
	uint8_t		 type;		/* cred.set: type index */
	uint64_t	 user;
	uint64_t	 sent;
	/* sub+curl: the HTTP request made with the substituted one */
	struct bconn	*conn;
	CURL		*easy;		/* kept for the slot's next request */
	struct curl_slist *hdrs;
	bool		 vbad;		/* --verify failed on substitute */
};

struct bconn {
	uv_poll_t	 poll;
	int		 fd;
	unsigned	 id;
	bool		 idle;		/* one hello, then only kept open */
	bool		 closed;
	int		 events;
	uint8_t		*out;
	size_t		 outlen, outoff, outcap;
	uint8_t		*in;
	size_t		 inlen, incap;
	struct proto_scan scan;
	unsigned	 depth;
	unsigned	 inflight;
	unsigned	 slotbits;
	uint32_t	 seq;
	struct slot	*slots;
	unsigned	*freeslots;
	unsigned	 nfree;
};

enum phase { PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

/* One run of the engine: a workload over a set of connections. */
static struct run {
	int		 workload;
	enum phase	 phase;
	struct bconn	*conns;
	unsigned	 nconns;
	unsigned	 depth;
	unsigned	 open;
	uint64_t	 inflight;
	/* W_SEED: the (user, type) pairs still to send */
	uint64_t	 seed_next, seed_total;
	/* measurement */
	uint64_t	 t_start, t_measure, t_end, t_drain_deadline;
	uint64_t	 measured_target;	/* -n */
	uint64_t	 ok, errors, by_kind[K_COUNT], err_by_kind[K_COUNT];
	uint64_t	 verify_failed;
	uint64_t	 sent;
	double		 cpu0, cpu1, ccpu0, ccpu1;
	long long	 reads0, reads1;	/* the daemon's syscr */
	struct ticks	 mach0, mach1;		/* not for W_SEED */
	struct hist	 hist;
	char		 first_error[512];
	bool		 conn_lost;
} R;

/* Idle connections: how many answered their hello. */
static unsigned	 idle_ready;
static unsigned	 idle_lost;

static void	conn_poll_cb(uv_poll_t *, int, int);

static void
conn_set_events(struct bconn *c, int ev)
{
	if (c->closed || ev == c->events)
		return;
	c->events = ev;
	uv_poll_start(&c->poll, ev, conn_poll_cb);
}

static void
conn_close(struct bconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	uv_poll_stop(&c->poll);
	uv_close((uv_handle_t *)&c->poll, NULL);
	close(c->fd);
	c->fd = -1;
}

static int
sock_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		die("connect %s: %s", path, strerror(errno));
	return fd;
}

static void
conn_init(struct bconn *c, unsigned id, unsigned depth, bool idle)
{
	unsigned	i;

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->idle = idle;
	c->depth = depth;
	c->fd = sock_connect(opt.sock);
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0)
		die("fcntl: %s", strerror(errno));
	proto_scan_reset(&c->scan);
	while ((1u << c->slotbits) < depth)
		c->slotbits++;
	c->slots = xcalloc(depth, sizeof(*c->slots));
	c->freeslots = xcalloc(depth, sizeof(*c->freeslots));
	for (i = 0; i < depth; i++)
		c->freeslots[c->nfree++] = depth - 1 - i;
	c->seq = 1;
	if (uv_poll_init(loop, &c->poll, c->fd) != 0)
		die("uv_poll_init failed");
	c->poll.data = c;
}

static void	subcurl_free(struct bconn *);

static void
conn_free(struct bconn *c)
{
	if (cm != NULL)
		subcurl_free(c);
	free(c->out);
	free(c->in);
	free(c->slots);
	free(c->freeslots);
}

static void
out_reserve(struct bconn *c, size_t n)
{
	if (c->outoff > 0 && c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + n <= c->outcap)
		return;
	if (c->outoff > 0) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	while (c->outlen + n > c->outcap)
		c->outcap = c->outcap ? c->outcap * 2 : 4096;
	if ((c->out = realloc(c->out, c->outcap)) == NULL)
		die("out of memory");
}

/* Append one request of kind k for user/type with msgid on c. */
static void
conn_append(struct bconn *c, const struct tmpl *t, uint32_t msgid,
    uint64_t user, unsigned type)
{
	uint8_t	*p;

	out_reserve(c, t->len);
	p = c->out + c->outlen;
	memcpy(p, t->buf, t->len);
	p[t->msgid_off] = (uint8_t)(msgid >> 24);
	p[t->msgid_off + 1] = (uint8_t)(msgid >> 16);
	p[t->msgid_off + 2] = (uint8_t)(msgid >> 8);
	p[t->msgid_off + 3] = (uint8_t)msgid;
	if (t->user_off)
		user_uuid(user, (char *)p + t->user_off);
	if (t->value_off)
		user_value(user, type, (char *)p + t->value_off);
	c->outlen += t->len;
}

/* Write what is buffered; poll for writability when the socket is full. */
static void
conn_flush(struct bconn *c)
{
	ssize_t	n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n > 0) {
			c->outoff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_set_events(c, UV_READABLE | UV_WRITABLE);
			return;
		}
		/* EPIPE etc.: the read side sees the EOF and reports it. */
		c->outoff = c->outlen;
		break;
	}
	c->outoff = c->outlen = 0;
	conn_set_events(c, UV_READABLE);
}

/* Choose the next request; false when there is nothing more to send. */
static bool
next_request(int *kind, uint64_t *user, unsigned *type)
{
	switch (R.workload) {
	case W_HELLO:
		*kind = K_HELLO;
		break;
	case W_STATUS:
		*kind = K_STATUS;
		break;
	case W_SUB1:
		*kind = K_SUB1;
		break;
	case W_SUB5:
		*kind = K_SUB5;
		break;
	case W_MIX:
		*kind = rng_below(100) < opt.set_pct ? K_SET : K_SUB1;
		break;
	case W_REQUEST:
		*kind = K_REQ;
		break;
	case W_SUBCURL:
		*kind = K_SUBCURL;
		break;
	case W_SEED:
		if (R.seed_next >= R.seed_total)
			return false;
		*kind = K_SET;
		*user = R.seed_next / opt.types;
		*type = (unsigned)(R.seed_next % opt.types) + 1;
		R.seed_next++;
		return true;
	default:
		return false;
	}
	*user = rng_below(opt.users);
	*type = 1;
	return true;
}

/* Top c up to its depth with new requests and write them. */
static void
conn_fill(struct bconn *c)
{
	uint64_t	now;
	int		kind;
	uint64_t	user;
	unsigned	type, s;
	uint32_t	msgid;
	bool		any = false;

	if (c->closed || c->idle || R.phase >= PH_DRAIN)
		goto flush;
	now = now_ns();
	while (c->inflight < c->depth && c->nfree > 0) {
		if (!next_request(&kind, &user, &type)) {
			if (R.workload == W_SEED && R.inflight == 0 &&
			    R.phase < PH_DRAIN) {
				R.t_end = now;
				R.phase = PH_DONE;
			}
			break;
		}
		s = c->freeslots[--c->nfree];
		msgid = (c->seq << c->slotbits) | s;
		if (++c->seq >= ((uint64_t)1 << (32 - c->slotbits)))
			c->seq = 1;
		c->slots[s].msgid = msgid;
		c->slots[s].kind = (uint8_t)kind;
		c->slots[s].type = (uint8_t)type;
		c->slots[s].user = user;
		c->slots[s].sent = now;
		conn_append(c, kind == K_SET ? &set_tmpls[type] : &tmpls[kind],
		    msgid, user, type);
		c->inflight++;
		R.inflight++;
		R.sent++;
		any = true;
	}
flush:
	if (any || c->outlen > c->outoff)
		conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* Replies                                                            */

/* Read a msgpack unsigned at p (positive fixint, uint8/16/32). */
static int
read_uint(const uint8_t *p, size_t len, uint32_t *v, size_t *used)
{
	if (len < 1)
		return -1;
	if (p[0] <= 0x7f) {
		*v = p[0];
		*used = 1;
	} else if (p[0] == 0xcc && len >= 2) {
		*v = p[1];
		*used = 2;
	} else if (p[0] == 0xcd && len >= 3) {
		*v = (uint32_t)p[1] << 8 | p[2];
		*used = 3;
	} else if (p[0] == 0xce && len >= 5) {
		*v = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
		    (uint32_t)p[3] << 8 | p[4];
		*used = 5;
	} else
		return -1;
	return 0;
}

static bool
obj_is(const msgpack_object *o, const char *s, size_t n)
{
	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

/* Note the error of a reply (its code and message), the first time. */
static void
note_error(const uint8_t *msg, size_t len, const char *what)
{
	msgpack_unpacked	 up;
	const msgpack_object	*e, *code, *m;
	size_t			 off = 0;

	if (R.first_error[0] != '\0')
		return;
	msgpack_unpacked_init(&up);
	if (msg != NULL && msgpack_unpack_next(&up, (const char *)msg, len,
	    &off) == MSGPACK_UNPACK_SUCCESS &&
	    up.data.type == MSGPACK_OBJECT_ARRAY &&
	    up.data.via.array.size == 4) {
		e = &up.data.via.array.ptr[2];
		code = proto_map_get(e, "code");
		m = proto_map_get(e, "message");
		snprintf(R.first_error, sizeof(R.first_error),
		    "%s: %.*s: %.*s", what,
		    code && code->type == MSGPACK_OBJECT_STR ?
		    (int)code->via.str.size : 1,
		    code && code->type == MSGPACK_OBJECT_STR ?
		    code->via.str.ptr : "?",
		    m && m->type == MSGPACK_OBJECT_STR ?
		    (int)m->via.str.size : 1,
		    m && m->type == MSGPACK_OBJECT_STR ? m->via.str.ptr : "?");
	} else
		snprintf(R.first_error, sizeof(R.first_error), "%s", what);
	msgpack_unpacked_destroy(&up);
}

/* --verify: unpack a successful reply and check what it says. */
static bool
verify_reply(const uint8_t *msg, size_t len, const struct slot *s)
{
	msgpack_unpacked	 up;
	const msgpack_object	*res, *req, *h, *v;
	char			 want[BENCH_VALUE_LEN + 8];
	size_t			 off = 0;
	bool			 ok = false;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)msg, len, &off) !=
	    MSGPACK_UNPACK_SUCCESS || up.data.type != MSGPACK_OBJECT_ARRAY ||
	    up.data.via.array.size != 4)
		goto done;
	res = &up.data.via.array.ptr[3];
	switch (s->kind) {
	case K_HELLO:
		v = proto_map_get(res, "protocol");
		ok = v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    v->via.u64 == 1;
		break;
	case K_STATUS:
		ok = res->type == MSGPACK_OBJECT_ARRAY &&
		    res->via.array.size >= opt.types;
		break;
	case K_SET:
		ok = proto_map_get(res, "updated_at") != NULL;
		break;
	case K_REQ:
		/* credbroker-bench-httpd answers 200 to everything. */
		v = proto_map_get(res, "status");
		ok = v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    v->via.u64 == 200;
		break;
	case K_SUB1:
	case K_SUB5:
	case K_SUBCURL:
		/* headers[0] is "Authorization: Bearer <value of type 1>". */
		memcpy(want, "Bearer ", 7);
		user_value(s->user, 1, want + 7);
		req = proto_map_get(res, "request");
		h = proto_map_get(req, "headers");
		if (h == NULL || h->type != MSGPACK_OBJECT_ARRAY ||
		    h->via.array.size < 1 ||
		    h->via.array.ptr[0].type != MSGPACK_OBJECT_ARRAY ||
		    h->via.array.ptr[0].via.array.size != 2)
			break;
		ok = obj_is(&h->via.array.ptr[0].via.array.ptr[1], want,
		    7 + BENCH_VALUE_LEN);
		if (ok) {
			char u[BENCH_UUID_LEN];

			user_uuid(s->user, u);
			ok = obj_is(proto_map_get(res, "subject"), u,
			    BENCH_UUID_LEN);
		}
		break;
	}
done:
	msgpack_unpacked_destroy(&up);
	return ok;
}

static void	run_measure_end(uint64_t);
static int	subcurl_start(struct bconn *, struct slot *, const uint8_t *,
		    size_t);

/*
 * Count the outcome of the request in slot s of c (in the measurement
 * window) and free the slot.  err: it failed (msg/len, when not NULL, is
 * the broker's reply holding the error; what names it); vbad: --verify
 * found the reply wrong.
 */
static void
slot_done(struct bconn *c, struct slot *s, bool err, bool vbad,
    const uint8_t *msg, size_t len, const char *what, uint64_t now)
{
	if (R.phase == PH_MEASURE || R.workload == W_SEED) {
		if (err) {
			R.errors++;
			R.err_by_kind[s->kind]++;
			note_error(msg, len, what);
		} else {
			R.ok++;
			R.by_kind[s->kind]++;
			if (vbad) {
				R.verify_failed++;
				if (R.first_error[0] == '\0')
					snprintf(R.first_error,
					    sizeof(R.first_error), "%s: the "
					    "reply does not hold the expected "
					    "values", kind_names[s->kind]);
			}
		}
		if (R.workload != W_SEED)
			hist_add(&R.hist, now - s->sent);
	} else if (err)
		note_error(msg, len, what);
	s->msgid = 0;
	c->freeslots[c->nfree++] = (unsigned)(s - c->slots);
	c->inflight--;
	R.inflight--;
	if (R.phase == PH_MEASURE && R.measured_target > 0 &&
	    R.ok + R.errors >= R.measured_target)
		run_measure_end(now);
}

/* One complete reply of len bytes at msg, received at now. */
static void
conn_reply(struct bconn *c, const uint8_t *msg, size_t len, uint64_t now)
{
	struct slot	*s;
	uint32_t	 msgid;
	size_t		 used;
	bool		 err, vbad = false;

	if (c->idle) {
		idle_ready++;
		return;
	}
	if (len < 4 || msg[0] != 0x94 || msg[1] != 0x01 ||
	    read_uint(msg + 2, len - 2, &msgid, &used) != 0) {
		note_error(NULL, 0, "a reply that is not [1, msgid, ...]");
		R.errors++;
		return;
	}
	s = &c->slots[msgid & ((1u << c->slotbits) - 1)];
	if ((msgid & ((1u << c->slotbits) - 1)) >= c->depth ||
	    s->msgid != msgid) {
		/* msgid 0: the broker could not read a request; it closes. */
		note_error(msg, len, msgid == 0 ? "connection-level error" :
		    "a reply with an unknown msgid");
		R.errors++;
		return;
	}
	err = 2 + used >= len || msg[2 + used] != 0xc0;
	if (!err && opt.verify)
		vbad = !verify_reply(msg, len, s);
	if (s->kind == K_SUBCURL && !err) {
		/* The slot is done when the HTTP answer is in. */
		s->vbad = vbad;
		if (subcurl_start(c, s, msg, len) == 0)
			return;
		slot_done(c, s, true, false, NULL, 0, "substitute+curl: "
		    "cannot start the HTTP request", now);
		return;
	}
	slot_done(c, s, err, vbad, msg, len, kind_names[s->kind], now);
}

/* ------------------------------------------------------------------ */
/* sub+curl: libcurl's multi interface on the loop (curl's multi-uv)   */

static uv_timer_t	 cm_timer;

/* A socket libcurl asked to watch. */
struct csock {
	uv_poll_t	 poll;
	curl_socket_t	 fd;
};

/* libcurl's write callback: the body is read and dropped. */
static size_t
cm_write(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

/* Finished transfers: account for them and refill their connections. */
static void
cm_drain(void)
{
	struct slot	*s;
	struct bconn	*c;
	CURLMsg		*m;
	CURLcode	 cc;
	long		 status = 0;
	char		 what[160];
	int		 left;
	uint64_t	 now;

	while ((m = curl_multi_info_read(cm, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		cc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
		    (char **)&s);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE,
		    &status);
		curl_multi_remove_handle(cm, m->easy_handle);
		curl_slist_free_all(s->hdrs);
		s->hdrs = NULL;
		c = s->conn;
		now = now_ns();
		if (cc != CURLE_OK)
			snprintf(what, sizeof(what), "substitute+curl: %s",
			    curl_easy_strerror(cc));
		else
			snprintf(what, sizeof(what), "substitute+curl: HTTP "
			    "%ld", status);
		slot_done(c, s, cc != CURLE_OK || status != 200, s->vbad,
		    NULL, 0, what, now);
		conn_fill(c);
	}
}

static void
cm_poll_cb(uv_poll_t *h, int status, int events)
{
	struct csock	*cs = h->data;
	int		 flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(cm, cs->fd, flags, &running);
	cm_drain();
}

static void
cm_timeout_cb(uv_timer_t *t)
{
	int	running;

	(void)t;
	curl_multi_socket_action(cm, CURL_SOCKET_TIMEOUT, 0, &running);
	cm_drain();
}

static void
cm_sock_closed(uv_handle_t *h)
{
	free(h->data);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching a socket. */
static int
cm_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct csock	*cs = socketp;
	int		 ev = 0;

	(void)e;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			uv_poll_stop(&cs->poll);
			uv_close((uv_handle_t *)&cs->poll, cm_sock_closed);
			curl_multi_assign(cm, fd, NULL);
		}
		return 0;
	}
	if (cs == NULL) {
		cs = xcalloc(1, sizeof(*cs));
		cs->fd = fd;
		if (uv_poll_init_socket(loop, &cs->poll, fd) != 0)
			die("uv_poll_init_socket failed");
		cs->poll.data = cs;
		curl_multi_assign(cm, fd, cs);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&cs->poll, ev, cm_poll_cb);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer, run from the loop. */
static int
cm_timer_set(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0)
		uv_timer_stop(&cm_timer);
	else
		uv_timer_start(&cm_timer, cm_timeout_cb, (uint64_t)ms, 0);
	return 0;
}

static void
cm_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (cm = curl_multi_init()) == NULL)
		die("cannot initialise libcurl");
	uv_timer_init(loop, &cm_timer);
	cm_timer.data = NULL;
	curl_multi_setopt(cm, CURLMOPT_SOCKETFUNCTION, cm_socket);
	curl_multi_setopt(cm, CURLMOPT_TIMERFUNCTION, cm_timer_set);
	/* Every connection of the run stays open for the next request. */
	curl_multi_setopt(cm, CURLMOPT_MAXCONNECTS, 100000L);
}

/* A str object as a new C string. */
static char *
obj_strdup(const msgpack_object *o)
{
	char	*p;

	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	p = xmalloc(o->via.str.size + 1);
	memcpy(p, o->via.str.ptr, o->via.str.size);
	p[o->via.str.size] = '\0';
	return p;
}

/*
 * Send the request that a substitute reply holds, on the slot's own easy
 * handle (created once, then reused: libcurl keeps its connection in the
 * multi handle's pool).  0, or -1 when the reply does not hold a request
 * or libcurl refuses it.
 */
static int
subcurl_start(struct bconn *c, struct slot *s, const uint8_t *msg,
    size_t len)
{
	msgpack_unpacked	 up;
	const msgpack_object	*req, *h, *pair;
	struct curl_slist	*n;
	char			*url = NULL, *method = NULL, *line;
	size_t			 off = 0, nl, vl;
	uint32_t		 i;
	int			 rc = -1;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)msg, len, &off) !=
	    MSGPACK_UNPACK_SUCCESS || up.data.type != MSGPACK_OBJECT_ARRAY ||
	    up.data.via.array.size != 4)
		goto done;
	req = proto_map_get(&up.data.via.array.ptr[3], "request");
	url = obj_strdup(proto_map_get(req, "url"));
	method = obj_strdup(proto_map_get(req, "method"));
	h = proto_map_get(req, "headers");
	if (url == NULL || method == NULL)
		goto done;
	for (i = 0; h != NULL && h->type == MSGPACK_OBJECT_ARRAY &&
	    i < h->via.array.size; i++) {
		pair = &h->via.array.ptr[i];
		if (pair->type != MSGPACK_OBJECT_ARRAY ||
		    pair->via.array.size != 2 ||
		    pair->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
		    pair->via.array.ptr[1].type != MSGPACK_OBJECT_STR)
			goto done;
		nl = pair->via.array.ptr[0].via.str.size;
		vl = pair->via.array.ptr[1].via.str.size;
		line = xmalloc(nl + 2 + vl + 1);
		memcpy(line, pair->via.array.ptr[0].via.str.ptr, nl);
		memcpy(line + nl, ": ", 2);
		memcpy(line + nl + 2, pair->via.array.ptr[1].via.str.ptr, vl);
		line[nl + 2 + vl] = '\0';
		n = curl_slist_append(s->hdrs, line);
		free(line);
		if (n == NULL)
			goto done;
		s->hdrs = n;
	}
	if (s->easy == NULL) {
		if ((s->easy = curl_easy_init()) == NULL)
			goto done;
		curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, cm_write);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	}
	s->conn = c;
	if (curl_easy_setopt(s->easy, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method) !=
	    CURLE_OK ||
	    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs) !=
	    CURLE_OK ||
	    curl_multi_add_handle(cm, s->easy) != CURLM_OK)
		goto done;
	rc = 0;
done:
	if (rc != 0) {
		curl_slist_free_all(s->hdrs);
		s->hdrs = NULL;
	}
	free(url);
	free(method);
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* Release the easy handles of a connection's slots. */
static void
subcurl_free(struct bconn *c)
{
	unsigned	i;

	for (i = 0; i < c->depth; i++) {
		if (c->slots[i].easy == NULL)
			continue;
		curl_multi_remove_handle(cm, c->slots[i].easy);
		curl_easy_cleanup(c->slots[i].easy);
		curl_slist_free_all(c->slots[i].hdrs);
		c->slots[i].easy = NULL;
		c->slots[i].hdrs = NULL;
	}
}

static void
conn_lost(struct bconn *c, const char *why)
{
	if (c->idle) {
		idle_lost++;
	} else {
		if (!R.conn_lost)
			fprintf(stderr, "credbroker-bench: connection %u: %s\n",
			    c->id, why);
		R.conn_lost = true;
		R.inflight -= c->inflight;
		c->inflight = 0;
		if (R.open > 0)
			R.open--;
	}
	conn_close(c);
}

static void
conn_readable(struct bconn *c)
{
	size_t		 consumed = 0;
	ssize_t		 n;
	uint64_t	 now;
	int		 rc;

	for (;;) {
		if (c->incap - c->inlen < BENCH_READ_MIN / 2) {
			c->incap = c->incap ? c->incap * 2 : BENCH_READ_MIN;
			if ((c->in = realloc(c->in, c->incap)) == NULL)
				die("out of memory");
		}
		n = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
		if (n > 0) {
			c->inlen += (size_t)n;
			if ((size_t)n < c->incap - (c->inlen - (size_t)n))
				break;		/* drained for now */
			continue;
		}
		if (n == 0) {
			conn_lost(c, "closed by the broker");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		conn_lost(c, strerror(errno));
		return;
	}
	now = now_ns();
	while (consumed < c->inlen) {
		rc = proto_scan(&c->scan, c->in + consumed, c->inlen - consumed,
		    BENCH_MAX_REPLY);
		if (rc == PROTO_SCAN_MORE)
			break;
		if (rc != PROTO_SCAN_DONE) {
			conn_lost(c, "malformed or oversized reply");
			return;
		}
		conn_reply(c, c->in + consumed, c->scan.off, now);
		consumed += c->scan.off;
		proto_scan_reset(&c->scan);
	}
	if (consumed > 0) {
		memmove(c->in, c->in + consumed, c->inlen - consumed);
		c->inlen -= consumed;
	}
	conn_fill(c);
}

static void
conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct bconn	*c = h->data;

	if (c->closed)
		return;
	if (status < 0) {
		conn_lost(c, uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
		conn_flush(c);
	if (!c->closed && (events & (UV_READABLE | UV_DISCONNECT)))
		conn_readable(c);
}

/* ------------------------------------------------------------------ */
/* Runs                                                               */

static void
run_measure_start(uint64_t now)
{
	memset(&R.hist, 0, sizeof(R.hist));
	R.ok = R.errors = R.verify_failed = 0;
	memset(R.by_kind, 0, sizeof(R.by_kind));
	memset(R.err_by_kind, 0, sizeof(R.err_by_kind));
	R.cpu0 = proc_cpu(opt.pid);
	R.ccpu0 = self_cpu();
	R.reads0 = proc_reads(opt.pid);
	if (R.workload != W_SEED)
		R.mach0 = machine_ticks();
	R.t_measure = now;
	R.phase = PH_MEASURE;
}

static void
run_measure_end(uint64_t now)
{
	R.t_end = now;
	R.cpu1 = proc_cpu(opt.pid);
	R.ccpu1 = self_cpu();
	R.reads1 = proc_reads(opt.pid);
	if (R.workload != W_SEED)
		R.mach1 = machine_ticks();
	R.phase = PH_DRAIN;
	R.t_drain_deadline = R.t_end + (uint64_t)(BENCH_DRAIN_S * 1e9);
}

static void
run_tick(uv_timer_t *t)
{
	uint64_t	now = now_ns();

	if (R.phase == PH_WARMUP &&
	    now - R.t_start >= (uint64_t)(opt.warmup * 1e9))
		run_measure_start(now);
	if (R.phase == PH_MEASURE && R.measured_target == 0 &&
	    R.workload != W_SEED && now - R.t_measure >= (uint64_t)(opt.duration * 1e9))
		run_measure_end(now);
	if (R.phase == PH_DRAIN &&
	    (R.inflight == 0 || R.open == 0 || now > R.t_drain_deadline))
		R.phase = PH_DONE;
	if (R.open == 0 && R.phase < PH_DRAIN) {
		run_measure_end(now);
		R.phase = PH_DONE;
	}
	if (R.phase == PH_DONE)
		uv_stop(t->loop);
}

/*
 * Run workload w on nconns new connections of depth each; for W_SEED the
 * run ends when every value is set, otherwise after warm-up and then
 * opt.duration seconds (or opt.nreq replies).
 */
static void
run(int w, unsigned nconns, unsigned depth, uint64_t seed_total)
{
	uv_timer_t	tick;
	unsigned	i;

	memset(&R, 0, sizeof(R));
	R.workload = w;
	R.nconns = nconns;
	R.depth = depth;
	R.conns = xcalloc(nconns, sizeof(*R.conns));
	R.seed_total = seed_total;
	R.measured_target = w == W_SEED ? 0 : opt.nreq;
	for (i = 0; i < nconns; i++)
		conn_init(&R.conns[i], i, depth, false);
	R.open = nconns;
	R.t_start = now_ns();
	if (w == W_SEED || opt.warmup <= 0)
		run_measure_start(R.t_start);
	else
		R.phase = PH_WARMUP;
	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, run_tick, BENCH_TICK_MS, BENCH_TICK_MS);
	for (i = 0; i < nconns; i++) {
		conn_set_events(&R.conns[i], UV_READABLE);
		conn_fill(&R.conns[i]);
	}
	while (R.phase != PH_DONE) {
		uv_run(loop, UV_RUN_DEFAULT);
		if (w == W_SEED && R.phase == PH_DONE)
			break;
	}
	if (w == W_SEED) {
		R.t_end = now_ns();
		R.cpu1 = proc_cpu(opt.pid);
		R.ccpu1 = self_cpu();
	}
	uv_timer_stop(&tick);
	uv_close((uv_handle_t *)&tick, NULL);
	for (i = 0; i < nconns; i++)
		conn_close(&R.conns[i]);
	uv_run(loop, UV_RUN_NOWAIT);
	for (i = 0; i < nconns; i++)
		conn_free(&R.conns[i]);
	free(R.conns);
	R.conns = NULL;
}

/* A tick that only wakes the loop up, for waits with a deadline. */
static void
wake_tick(uv_timer_t *t)
{
	(void)t;
}

/* ------------------------------------------------------------------ */
/* Blocking calls (type.create during --setup)                        */

/* Send one request and wait for its reply; returns 0, 1 (error) or -1. */
static int
sync_call(int fd, const char *method, const uint8_t *params, size_t plen,
    char *errbuf, size_t errsz)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	struct proto_scan	 scan;
	uint8_t			*buf = NULL;
	size_t			 len = 0, cap = 0, off = 0, w = 0;
	ssize_t			 n;
	int			 rc = -1, sr;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 7);
	pk_str(&pk, method);
	msgpack_pack_array(&pk, 1);
	msgpack_sbuffer_write(&sb, (const char *)params, plen);
	while (w < sb.size) {
		n = write(fd, sb.data + w, sb.size - w);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto done;
		w += (size_t)n;
	}
	proto_scan_reset(&scan);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			if ((buf = realloc(buf, cap)) == NULL)
				die("out of memory");
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto done;
		len += (size_t)n;
		sr = proto_scan(&scan, buf, len, BENCH_MAX_REPLY);
		if (sr == PROTO_SCAN_DONE)
			break;
		if (sr != PROTO_SCAN_MORE)
			goto done;
	}
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)buf, scan.off, &off) ==
	    MSGPACK_UNPACK_SUCCESS && up.data.type == MSGPACK_OBJECT_ARRAY &&
	    up.data.via.array.size == 4) {
		const msgpack_object *e = &up.data.via.array.ptr[2];

		if (e->type == MSGPACK_OBJECT_NIL)
			rc = 0;
		else {
			const msgpack_object *code = proto_map_get(e, "code");
			const msgpack_object *m = proto_map_get(e, "message");

			rc = 1;
			snprintf(errbuf, errsz, "%.*s: %.*s",
			    code && code->type == MSGPACK_OBJECT_STR ?
			    (int)code->via.str.size : 1,
			    code && code->type == MSGPACK_OBJECT_STR ?
			    code->via.str.ptr : "?",
			    m && m->type == MSGPACK_OBJECT_STR ?
			    (int)m->via.str.size : 1,
			    m && m->type == MSGPACK_OBJECT_STR ?
			    m->via.str.ptr : "?");
		}
	}
	msgpack_unpacked_destroy(&up);
done:
	free(buf);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/*
 * The destinations of the bench types: BENCH_DEST, and --target (a
 * loopback origin, which the broker's request method accepts only when a
 * type names it).
 */
static void
bench_destinations(msgpack_packer *pk)
{
	msgpack_pack_array(pk, opt.target != NULL ? 2 : 1);
	pk_str(pk, BENCH_DEST);
	if (opt.target != NULL)
		pk_str(pk, opt.target);
}

/* Create the bench types (an existing one is fine, --target is added). */
static void
setup_types(void)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;
	char		ident[80], name[96], err[600];
	unsigned	k;
	int		fd = sock_connect(opt.sock), rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (k = 1; k <= opt.types; k++) {
		type_ident(k, ident, sizeof(ident));
		snprintf(name, sizeof(name), "Benchmark type %u", k);
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_map(&pk, 5);
		pk_kv(&pk, "ident", ident);
		pk_kv(&pk, "name", name);
		pk_kv(&pk, "description", "credbroker-bench");
		pk_kv(&pk, "storage", opt.vault ? "vault" : "db");
		pk_str(&pk, "destinations");
		bench_destinations(&pk);
		err[0] = '\0';
		rc = sync_call(fd, "type.create", (const uint8_t *)sb.data,
		    sb.size, err, sizeof(err));
		if (rc < 0)
			die("type.create %s: no answer from the broker", ident);
		if (rc > 0 && strncmp(err, "conflict", 8) != 0)
			die("type.create %s: %s", ident, err);
		if (rc == 0 || opt.target == NULL)
			continue;
		/* An existing type: add --target to its destinations. */
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_map(&pk, 2);
		pk_kv(&pk, "type", ident);
		pk_str(&pk, "destinations");
		bench_destinations(&pk);
		if ((rc = sync_call(fd, "type.update", (const uint8_t *)sb.data,
		    sb.size, err, sizeof(err))) != 0)
			die("type.update %s: %s", ident, rc < 0 ? "no answer "
			    "from the broker" : err);
	}
	msgpack_sbuffer_destroy(&sb);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Output                                                             */

static struct utsname	uts;
static char		cpu_model[256] = "unknown";
static long		ncpu;

static void
machine_info(void)
{
	char	 line[512], *p;
	FILE	*f;

	uname(&uts);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if ((f = fopen("/proc/cpuinfo", "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "model name", 10) == 0 &&
			    (p = strchr(line, ':')) != NULL) {
				p++;
				while (*p == ' ' || *p == '\t')
					p++;
				p[strcspn(p, "\n")] = '\0';
				snprintf(cpu_model, sizeof(cpu_model), "%s", p);
				break;
			}
		fclose(f);
	}
}

/* argv as one shell-quoted line. */
static char *
join_argv(int argc, char **argv)
{
	size_t	 n = 1;
	char	*s, *p;
	int	 i;

	for (i = 0; i < argc; i++)
		n += 4 * strlen(argv[i]) + 3;
	s = p = xmalloc(n);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool plain = *a != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@") ==
		    strlen(a);

		if (i > 0)
			*p++ = ' ';
		if (plain) {
			p = stpcpy(p, a);
			continue;
		}
		*p++ = '\'';
		for (; *a != '\0'; a++) {
			if (*a == '\'')
				p = stpcpy(p, "'\\''");
			else
				*p++ = *a;
		}
		*p++ = '\'';
	}
	*p = '\0';
	return s;
}

/* Print s as a JSON string. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Print key, then v with prec decimals, or null when v is negative. */
static void
json_num(const char *key, int prec, double v)
{
	fputs(key, stdout);
	if (v >= 0)
		printf("%.*f", prec, v);
	else
		fputs("null", stdout);
}

struct result {
	/* setup */
	bool		 did_setup;
	uint64_t	 seeded;
	double		 seed_s;
	uint64_t	 seed_errors;
	/* idle */
	long		 idle_rss_before, idle_rss_after;
	/* load */
	bool		 did_load;
	uint64_t	 ok, errors, verify_failed;
	double		 secs, rps;
	double		 p50, p99, p999, pmax, mean;
	double		 dcpu, ccpu;
	double		 steal, idle;		/* % of the machine, or -1 */
	double		 reads;			/* per request, or -1 */
	/* daemon memory at the end */
	long		 rss, hwm;
	char		 first_error[512];
};

static void
print_text(const struct result *r)
{
	if (r->did_setup)
		printf("setup      %" PRIu64 " values (%u types x %" PRIu64
		    " users) in %.2f s, %.0f cred.set/s%s\n", r->seeded,
		    opt.types, opt.users, r->seed_s,
		    r->seed_s > 0 ? (double)r->seeded / r->seed_s : 0,
		    r->seed_errors ? " (WITH ERRORS)" : "");
	if (opt.idle > 0)
		printf("idle       %u connections open (%u answered hello, %u "
		    "lost); daemon rss %.1f MiB before, %.1f MiB after\n",
		    opt.idle, idle_ready, idle_lost,
		    r->idle_rss_before / 1024.0, r->idle_rss_after / 1024.0);
	if (r->did_load) {
		printf("workload   %s, %u connections, depth %u, %" PRIu64
		    " users%s\n", workload_names[opt.workload], opt.conns,
		    opt.depth, opt.users, opt.vault ? ", vault-stored types" :
		    "");
		printf("requests   %" PRIu64 " ok, %" PRIu64 " errors",
		    r->ok, r->errors);
		if (opt.verify)
			printf(", %" PRIu64 " failed verification",
			    r->verify_failed);
		if (opt.workload == W_MIX)
			printf(" (%" PRIu64 " substitute, %" PRIu64
			    " cred.set)", R.by_kind[K_SUB1], R.by_kind[K_SET]);
		printf(" in %.3f s\n", r->secs);
		printf("throughput %.0f requests/s\n", r->rps);
		printf("latency    p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  "
		    "max %.3f ms  mean %.3f ms\n", r->p50 / 1e6, r->p99 / 1e6,
		    r->p999 / 1e6, r->pmax / 1e6, r->mean / 1e6);
		if (r->dcpu >= 0)
			printf("daemon     cpu %.2f s (%.0f%% of one core, %.1f "
			    "us/request)\n", r->dcpu, 100 * r->dcpu / r->secs,
			    r->ok + r->errors ? 1e6 * r->dcpu /
			    (double)(r->ok + r->errors) : 0);
		printf("client     cpu %.2f s (%.0f%% of one core)\n", r->ccpu,
		    100 * r->ccpu / r->secs);
		if (r->steal >= 0)
			printf("machine    steal %.1f%%, idle %.0f%%", r->steal,
			    r->idle);
		else
			printf("machine    steal and idle unknown (/proc/stat)");
		if (opt.pid > 0 && r->reads >= 0)
			printf("; daemon %.2f reads/request", r->reads);
		else if (opt.pid > 0)
			printf("; daemon reads/request unknown (/proc/%ld/io)",
			    opt.pid);
		printf("\n");
	}
	if (opt.pid > 0)
		printf("memory     daemon rss %.1f MiB, peak rss (VmHWM) %.1f "
		    "MiB\n", r->rss / 1024.0, r->hwm / 1024.0);
	if (r->first_error[0] != '\0')
		printf("error      %s\n", r->first_error);
}

static void
print_json(const struct result *r)
{
	printf("{\"command\":");
	json_str(stdout, cmdline);
	printf(",\"machine\":{\"arch\":");
	json_str(stdout, uts.machine);
	printf(",\"cpu\":");
	json_str(stdout, cpu_model);
	printf(",\"nproc\":%ld,\"kernel\":", ncpu);
	json_str(stdout, uts.release);
	if (r->did_load) {
		json_num(",\"steal_pct\":", 2, r->steal);
		json_num(",\"idle_pct\":", 2, r->idle);
	}
	printf("},\"workload\":\"%s\",\"connections\":%u,\"depth\":%u,"
	    "\"users\":%" PRIu64 ",\"types\":%u,\"storage\":\"%s\"",
	    workload_names[opt.workload], opt.conns, opt.depth, opt.users,
	    opt.types, opt.vault ? "vault" : "db");
	if (opt.target != NULL) {
		printf(",\"target\":");
		json_str(stdout, opt.target);
	}
	if (r->did_setup)
		printf(",\"setup\":{\"values\":%" PRIu64 ",\"seconds\":%.3f,"
		    "\"errors\":%" PRIu64 "}", r->seeded, r->seed_s,
		    r->seed_errors);
	if (opt.idle > 0)
		printf(",\"idle\":{\"connections\":%u,\"answered\":%u,"
		    "\"lost\":%u,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld}",
		    opt.idle, idle_ready, idle_lost, r->idle_rss_before,
		    r->idle_rss_after);
	if (r->did_load) {
		printf(",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
		    ",\"verify_failed\":%" PRIu64 ",\"seconds\":%.6f,"
		    "\"rps\":%.1f,\"latency_ms\":{\"p50\":%.4f,\"p99\":%.4f,"
		    "\"p999\":%.4f,\"max\":%.4f,\"mean\":%.4f}",
		    r->ok, r->errors, r->verify_failed, r->secs, r->rps,
		    r->p50 / 1e6, r->p99 / 1e6, r->p999 / 1e6, r->pmax / 1e6,
		    r->mean / 1e6);
		if (opt.workload == W_MIX)
			printf(",\"by_method\":{\"substitute\":%" PRIu64
			    ",\"cred.set\":%" PRIu64 "}", R.by_kind[K_SUB1],
			    R.by_kind[K_SET]);
		printf(",\"client_cpu_s\":%.3f", r->ccpu);
	}
	if (opt.pid > 0) {
		printf(",\"daemon\":{\"pid\":%ld,\"rss_kib\":%ld,"
		    "\"hwm_kib\":%ld", opt.pid, r->rss, r->hwm);
		if (r->did_load && r->dcpu >= 0)
			printf(",\"cpu_s\":%.3f,\"cpu_us_per_request\":%.2f",
			    r->dcpu, r->ok + r->errors ? 1e6 * r->dcpu /
			    (double)(r->ok + r->errors) : 0);
		if (r->did_load)
			json_num(",\"reads_per_request\":", 3, r->reads);
		printf("}");
	}
	if (r->first_error[0] != '\0') {
		printf(",\"first_error\":");
		json_str(stdout, r->first_error);
	}
	printf("}\n");
}

/* ------------------------------------------------------------------ */

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
"usage: credbroker-bench [-s SOCKET] [-c N] [-P DEPTH] [-d SECONDS | -n REQUESTS]\n"
"                        [-w hello|status|sub1|sub5|mix|request|sub+curl|none]\n"
"                        [--warmup SECONDS] [--target http://127.0.0.1:PORT]\n"
"                        [--setup [--setup-only]] [--users U] [--types K]\n"
"                        [--vault] [--pid PID] [--idle N] [--verify] [--json]\n"
"  -s, --socket PATH     broker socket ($CREDBROKER_SOCKET, else %s)\n"
"  -c, --connections N   connections carrying load (default 50)\n"
"  -P, --pipeline DEPTH  requests kept in flight per connection (default 1)\n"
"  -d, --duration S      measure for S seconds after the warm-up (default 10)\n"
"  -n, --requests N      measure N replies instead of a duration\n"
"      --warmup S        seconds of load before measuring (default 1)\n"
"  -w, --workload W      what to send (default sub1)\n"
"      --set-percent P   share of cred.set in -w mix (default 10)\n"
"      --target ORIGIN   the HTTP service of -w request and -w sub+curl\n"
"                        (credbroker-bench-httpd); --setup adds it to the\n"
"                        types' destinations\n"
"      --setup           create types PREFIX1..K and set U x K values first\n"
"      --setup-only      exit after --setup\n"
"      --seed-connections N, --seed-depth P   how --setup sends (4, 32)\n"
"      --users U         users (deterministic uuids) to set and use (1000)\n"
"      --types K         bench types to create and fill (default 5)\n"
"      --vault           the types are Vault-stored (prefix bench_v)\n"
"      --type-prefix P   type ident prefix (default bench_t, bench_v)\n"
"      --pid PID         the daemon: report its CPU time, its memory and\n"
"                        its read-type system calls per request (syscr of\n"
"                        /proc/PID/io: read, pread, readv of every thread,\n"
"                        socket reads included)\n"
"      --idle N          open N more connections that stay idle (after one\n"
"                        hello) and report the daemon's memory with them\n"
"      --verify          unpack every reply and check the values in it\n"
"      --seed N          random seed for the choice of users (default 1)\n"
"      --json            one JSON object instead of text\n"
"The machine's steal and idle shares of the measured window are read from\n"
"/proc/stat (CB_BENCH_PROC_STAT: a file read instead, line N for the Nth\n"
"reading).\n",
	    "/run/credbroker/credbroker.sock");
	exit(status);
}

static uint64_t
parse_u64(const char *s, const char *what, uint64_t min, uint64_t max)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "credbroker-bench: %s: expected an integer "
		    "from %" PRIu64 " to %" PRIu64 ", got '%s'\n", what, min,
		    max, s);
		exit(2);
	}
	return v;
}

static double
parse_secs(const char *s, const char *what)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e6) {
		fprintf(stderr, "credbroker-bench: %s: expected seconds, got "
		    "'%s'\n", what, s);
		exit(2);
	}
	return v;
}

enum {
	O_WARMUP = 256, O_SETUP, O_SETUP_ONLY, O_USERS, O_TYPES, O_VAULT,
	O_PREFIX, O_PID, O_IDLE, O_JSON, O_VERIFY, O_SEED, O_SETPCT,
	O_SEEDC, O_SEEDP, O_TARGET
};

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "connections", required_argument, NULL, 'c' },
		{ "pipeline", required_argument, NULL, 'P' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'n' },
		{ "workload", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "setup", no_argument, NULL, O_SETUP },
		{ "setup-only", no_argument, NULL, O_SETUP_ONLY },
		{ "users", required_argument, NULL, O_USERS },
		{ "types", required_argument, NULL, O_TYPES },
		{ "vault", no_argument, NULL, O_VAULT },
		{ "type-prefix", required_argument, NULL, O_PREFIX },
		{ "pid", required_argument, NULL, O_PID },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "json", no_argument, NULL, O_JSON },
		{ "verify", no_argument, NULL, O_VERIFY },
		{ "seed", required_argument, NULL, O_SEED },
		{ "set-percent", required_argument, NULL, O_SETPCT },
		{ "seed-connections", required_argument, NULL, O_SEEDC },
		{ "seed-depth", required_argument, NULL, O_SEEDP },
		{ "target", required_argument, NULL, O_TARGET },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;
	size_t	i;
	bool	have_w = false;

	while ((ch = getopt_long(argc, argv, "s:c:P:d:n:w:h", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			opt.sock = optarg;
			break;
		case 'c':
			opt.conns = (unsigned)parse_u64(optarg, "-c", 1, 100000);
			break;
		case 'P':
			opt.depth = (unsigned)parse_u64(optarg, "-P", 1, 4096);
			break;
		case 'd':
			opt.duration = parse_secs(optarg, "-d");
			break;
		case 'n':
			opt.nreq = parse_u64(optarg, "-n", 1, UINT64_MAX / 2);
			break;
		case 'w':
			for (i = 0; i < W_SEED; i++)
				if (strcmp(optarg, workload_names[i]) == 0)
					break;
			if (i == W_SEED) {
				fprintf(stderr, "credbroker-bench: unknown "
				    "workload '%s'\n", optarg);
				exit(2);
			}
			opt.workload = (int)i;
			have_w = true;
			break;
		case 'h':
			usage(0);
			break;
		case O_WARMUP:
			opt.warmup = parse_secs(optarg, "--warmup");
			break;
		case O_SETUP:
			opt.setup = true;
			break;
		case O_SETUP_ONLY:
			opt.setup = opt.setup_only = true;
			break;
		case O_USERS:
			opt.users = parse_u64(optarg, "--users", 1,
			    UINT64_C(1) << 40);
			break;
		case O_TYPES:
			opt.types = (unsigned)parse_u64(optarg, "--types", 1,
			    BENCH_TYPES_MAX);
			break;
		case O_VAULT:
			opt.vault = true;
			break;
		case O_PREFIX:
			opt.prefix = optarg;
			break;
		case O_PID:
			opt.pid = (long)parse_u64(optarg, "--pid", 1, INT32_MAX);
			break;
		case O_IDLE:
			opt.idle = (unsigned)parse_u64(optarg, "--idle", 0,
			    1000000);
			break;
		case O_JSON:
			opt.json = true;
			break;
		case O_VERIFY:
			opt.verify = true;
			break;
		case O_SEED:
			opt.rng_seed = parse_u64(optarg, "--seed", 0,
			    UINT64_MAX);
			break;
		case O_SETPCT:
			opt.set_pct = (unsigned)parse_u64(optarg,
			    "--set-percent", 0, 100);
			break;
		case O_SEEDC:
			opt.seed_conns = (unsigned)parse_u64(optarg,
			    "--seed-connections", 1, 1000);
			break;
		case O_SEEDP:
			opt.seed_depth = (unsigned)parse_u64(optarg,
			    "--seed-depth", 1, 4096);
			break;
		case O_TARGET:
			opt.target = optarg;
			if (strncmp(optarg, "http://", 7) != 0 ||
			    strlen(optarg) > 200 ||
			    strchr(optarg + 7, '/') != NULL) {
				fprintf(stderr, "credbroker-bench: --target "
				    "wants an origin, http://HOST:PORT\n");
				exit(2);
			}
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (opt.sock == NULL) {
		const char *e = getenv("CREDBROKER_SOCKET");

		opt.sock = e != NULL && *e != '\0' ? e :
		    "/run/credbroker/credbroker.sock";
	}
	if (opt.prefix == NULL)
		opt.prefix = opt.vault ? "bench_v" : "bench_t";
	if (strlen(opt.prefix) == 0 || strlen(opt.prefix) > 60) {
		fprintf(stderr, "credbroker-bench: bad --type-prefix\n");
		exit(2);
	}
	if (opt.workload == W_SUB5 && opt.types < 5) {
		fprintf(stderr, "credbroker-bench: -w sub5 needs --types 5 "
		    "or more\n");
		exit(2);
	}
	if ((opt.workload == W_REQUEST || opt.workload == W_SUBCURL) &&
	    opt.target == NULL) {
		fprintf(stderr, "credbroker-bench: -w %s needs --target\n",
		    workload_names[opt.workload]);
		exit(2);
	}
	if (opt.setup_only && !have_w)
		opt.workload = W_NONE;
	if (opt.nreq > 0)
		opt.duration = 0;
}

int
main(int argc, char **argv)
{
	struct result	 r;
	struct rlimit	 rl;
	struct bconn	*idle = NULL;
	uv_timer_t	 wake;
	uint64_t	 t0;
	unsigned	 i;

	cmdline = join_argv(argc, argv);
	parse_args(argc, argv);
	machine_info();
	signal(SIGPIPE, SIG_IGN);
	rng_state ^= mix64(opt.rng_seed);
	if (rng_state == 0)
		rng_state = 1;
	/* Connections need descriptors: take the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&r, 0, sizeof(r));
	r.dcpu = r.steal = r.idle = r.reads = -1;
	loop = uv_default_loop();
	tmpls_build();
	if (opt.workload == W_SUBCURL)
		cm_init();
	if (!opt.json) {
		/* At the top, before a long --setup. */
		printf("# %s\n", cmdline);
		printf("# machine: %s, %s, %ld CPUs, %s %s\n", uts.machine,
		    cpu_model, ncpu, uts.sysname, uts.release);
		fflush(stdout);
	}

	if (opt.setup) {
		setup_types();
		run(W_SEED, opt.seed_conns, opt.seed_depth,
		    opt.users * opt.types);
		r.did_setup = true;
		r.seeded = R.ok;
		r.seed_errors = R.errors;
		r.seed_s = (double)(R.t_end - R.t_measure) / 1e9;
		if (R.errors > 0 || R.conn_lost) {
			snprintf(r.first_error, sizeof(r.first_error),
			    "setup: %.400s", R.first_error[0] ? R.first_error :
			    "connection lost");
			if (opt.json)
				print_json(&r);
			else
				print_text(&r);
			return 1;
		}
	}

	if (opt.idle > 0) {
		r.idle_rss_before = proc_status_kib(opt.pid, "VmRSS");
		idle = xcalloc(opt.idle, sizeof(*idle));
		for (i = 0; i < opt.idle; i++) {
			conn_init(&idle[i], i, 1, true);
			conn_set_events(&idle[i], UV_READABLE);
			conn_append(&idle[i], &tmpls[K_HELLO], 1, 0, 0);
			conn_flush(&idle[i]);
		}
		uv_timer_init(loop, &wake);
		uv_timer_start(&wake, wake_tick, 50, 50);
		t0 = now_ns();
		while (idle_ready + idle_lost < opt.idle &&
		    now_ns() - t0 < (uint64_t)(BENCH_IDLE_WAIT_S * 1e9))
			uv_run(loop, UV_RUN_ONCE);
		uv_timer_stop(&wake);
		uv_close((uv_handle_t *)&wake, NULL);
		r.idle_rss_after = proc_status_kib(opt.pid, "VmRSS");
		if (idle_ready < opt.idle)
			snprintf(r.first_error, sizeof(r.first_error),
			    "only %u of %u idle connections answered hello",
			    idle_ready, opt.idle);
	}

	if (opt.workload != W_NONE && !opt.setup_only) {
		run(opt.workload, opt.conns, opt.depth, 0);
		r.did_load = true;
		r.ok = R.ok;
		r.errors = R.errors;
		r.verify_failed = R.verify_failed;
		r.secs = (double)(R.t_end - R.t_measure) / 1e9;
		if (r.secs <= 0)
			r.secs = 1e-9;
		r.rps = (double)(R.ok + R.errors) / r.secs;
		r.p50 = hist_pct(&R.hist, 0.50);
		r.p99 = hist_pct(&R.hist, 0.99);
		r.p999 = hist_pct(&R.hist, 0.999);
		r.pmax = (double)R.hist.max;
		r.mean = R.hist.count ? (double)R.hist.sum /
		    (double)R.hist.count : 0;
		r.dcpu = R.cpu0 >= 0 && R.cpu1 >= 0 ? R.cpu1 - R.cpu0 : -1;
		r.ccpu = R.ccpu1 - R.ccpu0;
		r.steal = ticks_pct(&R.mach0, &R.mach1, R.mach0.steal,
		    R.mach1.steal);
		r.idle = ticks_pct(&R.mach0, &R.mach1, R.mach0.idle,
		    R.mach1.idle);
		r.reads = R.reads0 < 0 || R.reads1 < R.reads0 ? -1 :
		    R.ok + R.errors == 0 ? 0 :
		    (double)(R.reads1 - R.reads0) / (double)(R.ok + R.errors);
		if (R.first_error[0] != '\0' && r.first_error[0] == '\0')
			snprintf(r.first_error, sizeof(r.first_error), "%s",
			    R.first_error);
		if (R.conn_lost && r.first_error[0] == '\0')
			snprintf(r.first_error, sizeof(r.first_error),
			    "a connection was lost");
	}

	r.rss = proc_status_kib(opt.pid, "VmRSS");
	r.hwm = proc_status_kib(opt.pid, "VmHWM");
	if (opt.json)
		print_json(&r);
	else
		print_text(&r);
	for (i = 0; idle != NULL && i < opt.idle; i++)
		conn_close(&idle[i]);
	uv_run(loop, UV_RUN_NOWAIT);
	for (i = 0; idle != NULL && i < opt.idle; i++)
		conn_free(&idle[i]);
	free(idle);
	return r.errors > 0 || r.verify_failed > 0 || R.conn_lost ||
	    r.first_error[0] != '\0' ? 1 : 0;
}
