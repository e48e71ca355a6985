/*
 * Unit tests for daemon/origin.c, the one origin parser: a round-trip
 * property over a generated corpus (random schemes, host names, IDNA
 * A-labels, IPv4 and IPv6 literals in several spellings, wildcards,
 * ports, case, trailing dots and slashes, paths, and junk) plus the
 * inputs of test_dest.c and test_url.c.  For every input the parser
 * accepts: printing the origin and parsing it again (as a normal form, and
 * as ordinary input) gives the same origin, and printing is a fixed point;
 * other spellings of the same origin parse to it; and matching a
 * destination against an origin is exactly equality of the normalised
 * origins (for a wildcard: equality with the origin of some parent
 * domain; for an address block: the origin's host is an IP literal inside
 * it), also through dest_normalize, url_origin and url_origin_allowed.
 */
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cb_error.h"
#include "dest.h"
#include "netaddr.h"
#include "origin.h"
#include "url.h"

#define CORPUS_N	6000	/* generated inputs */
#define POOL_N		400	/* origins kept for the pairwise checks */

/* The inputs of test_dest.c and test_url.c, accepted or not. */
static const char *const tables[] = {
	"https://API.GitHub.com", "HTTPS://X.EXAMPLE",
	"Http://Example.ORG:8080", "https://x.example:443", "http://x:80",
	"https://x.example:0443", "https://x.example:8443", "http://x:443",
	"https://x:80", "https://x:1", "https://x:65535",
	"https://api.github.com/", "https://api.github.com.",
	"https://api.github.com./", "https://api.github.com.:8443/",
	"https://api.github.com//", "https://api.github.com..",
	"https://*.com", "https://*.com:8443", "https://*.example.com",
	"https://*.Example.com:8443", "https://*.example.com:443/",
	"https://localhost", "https://a-b.c-d.example",
	"https://xn--bcher-kva.example", "https://1.example",
	"http://192.168.1.10:8080", "https://127.0.0.1", "https://10.0.0.1:443",
	"https://[::1]:8443", "https://[::1]:443", "http://[::1]:80/",
	"https://[0:0:0:0:0:0:0:1]", "https://[2001:DB8:0::1]:8443",
	"https://[2001:DB8::A]", "https://[::ffff:192.0.2.1]",
	"api.github.com", "//api.github.com", "ftp://x.example",
	"https:/x.example", "https:x.example", "httpx://x", "wss://x.example",
	"file:///etc/passwd", "https://user@host", "https://user:pw@host",
	"https://@host", "https://h/x", "https://h/x/", "https://h?",
	"https://h?q=1", "https://h#", "https://h#frag", "https://h:443/x",
	"https://h\\x", "https://h:0", "https://h:65536",
	"https://h:99999999999999999999", "https://h:", "https://h:http",
	"https://h:-1", "https://h:+1", "https://h:1.5", "https://h:80:80",
	"https://h: 80", "https://h:0x50", "https://", "http://", "https:///",
	"https://:443", "https://.", "https://..", "https://a b", " https://h",
	"https://h ", "https://h\t", "https://h\n", "https://h\r",
	"https://h\x01", "https://a..b", "https://.a", "https://-a.example",
	"https://a-.example", "https://a.-b", "https://a.b-",
	"https://a_b.example", "https://a%41.example",
	"https://b\xc3\xbc" "cher.example", "https://*", "https://*.",
	"https://*..com", "https://a.*.com", "https://*example.com",
	"https://**.example.com", "https://*.*.example.com",
	"https://x*.example.com", "https://[]", "https://[::1",
	"https://::1", "https://[::1]x", "https://[::1]:", "https://[::1]:0",
	"https://[g::1]", "https://[::1%25eth0]", "https://[::1]]",
	"https://[[::1]]", "https://x[::1]", "https://[:]", "https://[.]",
	"https://[1.2.3.4]", "https://[12345::1]",
	"https://[1:2:3:4:5:6:7:8:9]", "https://[:::]", "https://[1::2::3]",
	"https://[ffff]",
	"https://api.github.com/x", "HTTPS://API.GitHub.COM/Repos",
	"Http://Example.COM?q", "https://api.github.com#frag",
	"https://api.github.com:00443/x", "http://0.0.0.0/",
	"https://[2001:db8:0:0:0:0:0:1]:8443/",
	"https://xn--e1afmkfd.xn--p1ai/",
	"https://a_b.internal/", "https://1password.com/", "https://a.1b/",
	"https://api.github.com/@evil.example",
	"https://api.github.com?@evil.example", "https://api.github.com/x\\y",
	"https://api.github.com@evil.example/", "https://a@b@api.github.com/",
	"https://evil.example\\@api.github.com",
	"https://evil.example\\.api.github.com/", "https://ab\x7f.com/",
	"https://a%2eb.com/", "https://[fe80::1%25eth0]/",
	"https://api.github.co\xef\xbd\x8d/", "https://?q", "https://a*b.com/",
	"https://*.github.com/", "https://a;b.com/", "https://2130706433/",
	"https://127.1/", "https://0x7f.0.0.1/", "https://127.0.0.0x1/",
	"https://127.000.0.1/", "https://010.0.0.1/", "https://1.2.3.256/",
	"https://1.2.3.4.5/", "https://evil.example.1/",
	"https://[api.github.com]/", "https://h:8a/", "https://h:443:443/",
	"HTTP://Internal.Example:8080/", "http://[0:0:0:0:0:0:0:1]:8080",
	"https://*.example.com:8443", "http://*.0.0.1",
	"https://api.github.com.evil.example/", "https://evilgithub.com/",
	"https://a.b.github.com/", "http://[0::1]:8080/",
	"https://[2001:db8:0::0:1]:443/", "https://[2001:db8::1:0]/",
	"https://[10.0.0.0/8]", "http://[FD00::/8]:8080",
	"https://[127.0.0.1/32]:9443", "https://[10.0.0.1/8]",
	"https://[::/0]", "https://[0.0.0.0/0]:443/", "https://*.[10.0.0.0/8]",
	"https://[10.0.0.0/8]/x", "https://[10.0.0.0/33]",
	"https://10.0.0.0/8", "https://10.1.2.3", "https://10.255.255.255",
	"https://11.0.0.0", "http://[fd00::1]:8080", "http://[fe00::]:8080",
	"https://[::ffff:10.0.0.1]", "https://127.0.0.1:9443",
	"https://10.0.0.1.nip.io", "https://[::1]/",
};

/* xorshift64*: a fixed sequence, so a failure can be reproduced. */
static uint64_t	rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 33) % n;
}

/* Append to a NUL-terminated buffer of size n (truncating). */
static void
cat(char *b, size_t n, const char *fmt, ...)
{
	va_list	ap;
	size_t	l = strlen(b);

	if (l + 1 >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(b + l, n - l, fmt, ap);
	va_end(ap);
}

/* Flip the case of ASCII letters at random. */
static void
mixcase(char *s)
{
	for (; *s != '\0'; s++) {
		if (rng(2) == 0)
			continue;
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
		else if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* A label: mostly valid, sometimes with odd characters or lengths. */
static void
gen_label(char *b, size_t n)
{
	static const char	ok[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
	static const char	odd[] = "_*%@\\ :[]./?#\x01\x7f\xc3";
	char			l[80];
	size_t			len, i;

	switch (rng(8)) {
	case 0:
		/* An IDNA A-label. */
		snprintf(l, sizeof(l), "xn--%c%c%c-%c%c%c", 'a' + rng(26),
		    'a' + rng(26), 'a' + rng(26), 'a' + rng(26), '0' + rng(10),
		    'a' + rng(26));
		break;
	case 1:
		/* Numeric. */
		snprintf(l, sizeof(l), "%u", rng(300));
		break;
	default:
		len = rng(20) == 0 ? 60 + rng(6) : 1 + rng(8);
		for (i = 0; i < len; i++)
			l[i] = ok[rng(sizeof(ok) - 1)];
		if (rng(25) == 0)
			l[rng((uint32_t)len)] = odd[rng(sizeof(odd) - 1)];
		l[len] = '\0';
		break;
	}
	cat(b, n, "%s", l);
}

/* An IPv6 literal in one of its spellings. */
static void
gen_ipv6(char *b, size_t n)
{
	unsigned char	 a[16];
	char		 t[INET6_ADDRSTRLEN];
	size_t		 i;

	memset(a, 0, sizeof(a));
	for (i = 0; i < 16; i++)
		if (rng(3) == 0)
			a[i] = (unsigned char)rng(256);
	if (rng(4) == 0)
		a[15] = 1;
	switch (rng(3)) {
	case 0:
		inet_ntop(AF_INET6, a, t, sizeof(t));
		break;
	case 1:
		/* The full form, without "::". */
		snprintf(t, sizeof(t), "%x:%x:%x:%x:%x:%x:%x:%x",
		    a[0] << 8 | a[1], a[2] << 8 | a[3], a[4] << 8 | a[5],
		    a[6] << 8 | a[7], a[8] << 8 | a[9], a[10] << 8 | a[11],
		    a[12] << 8 | a[13], a[14] << 8 | a[15]);
		break;
	default:
		/* Leading zeros, "::" in another place, or junk. */
		snprintf(t, sizeof(t), "%04x:0::%x", a[0] << 8 | a[1],
		    a[14] << 8 | a[15]);
		if (rng(6) == 0)
			t[rng((uint32_t)strlen(t))] = "g:.]%"[rng(5)];
		break;
	}
	if (rng(2))
		mixcase(t);
	cat(b, n, "[%s]", t);
}

/* One generated input: a URL, a destination or something in between. */
static void
gen(char *b, size_t n)
{
	static const char *const schemes[] = {
		"https://", "http://", "HTTPS://", "Http://", "hTtPs://",
		"ftp://", "https:/", "https:", "", "wss://",
	};
	size_t	i, labels;

	b[0] = '\0';
	cat(b, n, "%s", schemes[rng(10) < 8 ? rng(5) : 5 + rng(5)]);
	if (rng(40) == 0)
		cat(b, n, "user%s@", rng(2) ? ":pw" : "");
	switch (rng(6)) {
	case 0:
		gen_ipv6(b, n);
		break;
	case 1:
		cat(b, n, "%u.%u.%u.%u", rng(256), rng(256), rng(256),
		    rng(rng(10) == 0 ? 300 : 256));
		break;
	default:
		if (rng(5) == 0)
			cat(b, n, "*.");
		labels = 1 + rng(4);
		for (i = 0; i < labels; i++) {
			if (i > 0)
				cat(b, n, ".");
			gen_label(b, n);
		}
		if (rng(10) == 0)
			cat(b, n, ".");
		break;
	}
	switch (rng(6)) {
	case 0:
		cat(b, n, ":%u", rng(70000));
		break;
	case 1:
		cat(b, n, ":%s", rng(2) ? "443" : "80");
		break;
	case 2:
		cat(b, n, ":0%u", 1 + rng(65535));
		break;
	default:
		break;
	}
	switch (rng(8)) {
	case 0:
		cat(b, n, "/");
		break;
	case 1:
		cat(b, n, "/p%u?q=%u#f", rng(10), rng(10));
		break;
	default:
		break;
	}
	if (rng(3) == 0)
		mixcase(b);
}

/* A kept origin: what was parsed and how it prints. */
struct kept {
	struct origin	 o;
	char		*text;
	int		 flags;
};

static struct kept	pool[POOL_N];
static size_t		npool;

/*
 * The round trip for one input s read with flags: if accepted, printing
 * and parsing the print (as a normal form and as ordinary input) gives
 * the same origin; the print is a fixed point; and the string interfaces
 * (dest_normalize, url_origin) give the same print.
 */
static void
round_trip(const char *s, size_t len, int flags)
{
	struct cb_error	 err;
	struct origin	 o, o2;
	char		*t = NULL, *t2 = NULL, *legacy = NULL;
	int		 rc;

	rc = origin_parse(s, len, flags, &o, &err);
	if (flags & ORIGIN_DEST) {
		char *z = strndup(s, len);

		assert_non_null(z);
		/* Only a NUL-free input is a destination string. */
		if (strlen(z) == len)
			assert_int_equal(dest_normalize(z, &legacy, NULL), rc);
		free(z);
	} else
		assert_int_equal(url_origin(s, len, &legacy, NULL), rc);
	if (rc != 0) {
		assert_int_equal(rc, -CB_EBADREQ);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_null(legacy);
		return;
	}
	assert_int_equal(origin_format(&o, &t, NULL), 0);
	if (legacy != NULL)
		assert_string_equal(legacy, t);
	free(legacy);

	if (origin_parse(t, strlen(t), flags | ORIGIN_NORMAL, &o2, &err) != 0)
		fail_msg("'%.*s' prints as '%s', refused as a normal form: %s",
		    (int)len, s, t, err.msg);
	assert_true(origin_equal(&o, &o2));
	assert_int_equal(origin_parse(t, strlen(t), flags, &o2, NULL), 0);
	assert_true(origin_equal(&o, &o2));
	assert_int_equal(origin_format(&o2, &t2, NULL), 0);
	assert_string_equal(t, t2);
	free(t2);
	/* A destination is a URL's origin too unless it is a wildcard. */
	if ((flags & ORIGIN_DEST) && !o.wild && !o.block && !o.ipv4 &&
	    strlen(o.host) <= 253) {
		assert_int_equal(origin_parse(t, strlen(t), ORIGIN_URL |
		    ORIGIN_NORMAL, &o2, NULL), 0);
		assert_true(origin_equal(&o, &o2));
	}

	if (npool < POOL_N && rng(4) == 0) {
		pool[npool].o = o;
		pool[npool].text = t;
		pool[npool].flags = flags;
		npool++;
		/* A URL that a kept destination allows, kept too. */
		if ((flags & ORIGIN_DEST) && npool < POOL_N) {
			char	u[700];

			snprintf(u, sizeof(u), "%s/x", t);
			if (o.wild)
				memcpy(u + strlen(o.scheme) + 3, "w.", 2);
			if (origin_parse(u, strlen(u), ORIGIN_URL, &o2,
			    NULL) == 0) {
				pool[npool].o = o2;
				assert_int_equal(origin_format(&o2,
				    &pool[npool].text, NULL), 0);
				pool[npool].flags = ORIGIN_URL;
				npool++;
			}
		}
		/* And a look-alike of a wildcard's suffix, without the dot. */
		if (o.wild && npool < POOL_N &&
		    strlen(o.host) < ORIGIN_HOST_MAX) {
			o2 = o;
			o2.wild = false;
			o2.host[0] = 'w';
			memcpy(o2.host + 1, o.host, strlen(o.host) + 1);
			assert_int_equal(origin_format(&o2, &t2, NULL), 0);
			if (origin_parse(t2, strlen(t2), ORIGIN_URL, &o2,
			    NULL) == 0) {
				pool[npool].o = o2;
				pool[npool].text = t2;
				pool[npool].flags = ORIGIN_URL;
				npool++;
			} else
				free(t2);
		}
	} else
		free(t);
}

/*
 * Other spellings of an accepted origin o (printed as t) parse to o: the
 * scheme and host in any case, the default port written out, ports with
 * leading zeros, a trailing dot, a trailing slash (destinations), a path
 * (URLs), IPv6 in its full form.
 */
static void
spellings(const struct origin *o, const char *t, int flags)
{
	struct origin	 v;
	unsigned char	 a6[16];
	char		 b[700], host[ORIGIN_HOST_MAX + 8], six[64];
	int		 k;

	for (k = 0; k < 8; k++) {
		snprintf(host, sizeof(host), "%s%s", o->wild ? "*." : "",
		    o->host);
		if (o->ipv6 && rng(2)) {
			snprintf(six, sizeof(six), "%.*s",
			    (int)strlen(o->host) - 2, o->host + 1);
			assert_int_equal(inet_pton(AF_INET6, six, a6), 1);
			snprintf(host, sizeof(host),
			    "[%x:%x:%x:%x:%x:%x:%x:%x]", a6[0] << 8 | a6[1],
			    a6[2] << 8 | a6[3], a6[4] << 8 | a6[5],
			    a6[6] << 8 | a6[7], a6[8] << 8 | a6[9],
			    a6[10] << 8 | a6[11], a6[12] << 8 | a6[13],
			    a6[14] << 8 | a6[15]);
		} else if (!o->ipv6 && !o->block && rng(2))
			cat(host, sizeof(host), ".");
		b[0] = '\0';
		cat(b, sizeof(b), "%s://%s", o->scheme, host);
		if (rng(2))
			cat(b, sizeof(b), ":%0*u", 1 + (int)rng(6), o->port);
		else if (o->port != (strcmp(o->scheme, "https") == 0 ?
		    443u : 80u))
			cat(b, sizeof(b), ":%u", o->port);
		if ((flags & ORIGIN_DEST) && rng(2))
			cat(b, sizeof(b), "/");
		if ((flags & ORIGIN_URL) && rng(2))
			cat(b, sizeof(b), "/%s?x#y", rng(2) ? "P" : "");
		mixcase(b);
		if (strlen(b) > 512 && (flags & ORIGIN_DEST))
			continue;
		if (origin_parse(b, strlen(b), flags, &v, NULL) != 0)
			fail_msg("'%s' (a spelling of '%s') refused", b, t);
		if (!origin_equal(&v, o))
			fail_msg("'%s' is not the same origin as '%s'", b, t);
	}
}

/*
 * The independent reading of a match: d without a wildcard allows o iff
 * their normal forms are equal; "*.suffix" allows o iff o is a name (not
 * an address) and the origin of some proper parent domain of o's host,
 * with o's scheme and port, prints as d without its "*.".  A block allows
 * o iff o's scheme and port are d's and o's host is an IP literal whose
 * first prefix bits (compared as inet_pton bytes; a mapped address as
 * its IPv4 address) are the block's.
 */
static bool
oracle(const struct kept *d, const struct kept *o)
{
	struct origin	 p;
	char		*pt, *dt;
	const char	*h;
	bool		 m = false;

	if (o->o.wild || o->o.block)
		return false;
	if (d->o.block) {
		char		 t[ORIGIN_HOST_MAX + 1], *sl;
		unsigned char	 base[16], a[16];
		const char	*oh = o->o.host;
		int		 fb, fa;
		unsigned	 bits, i;

		if (strcmp(d->o.scheme, o->o.scheme) != 0 ||
		    d->o.port != o->o.port)
			return false;
		snprintf(t, sizeof(t), "%s", d->o.host + 1);
		t[strlen(t) - 1] = '\0';
		sl = strchr(t, '/');
		*sl = '\0';
		bits = (unsigned)atoi(sl + 1);
		fb = strchr(t, ':') ? AF_INET6 : AF_INET;
		assert_int_equal(inet_pton(fb, t, base), 1);
		if (o->o.ipv6) {
			snprintf(t, sizeof(t), "%.*s", (int)strlen(oh) - 2,
			    oh + 1);
			fa = AF_INET6;
		} else {
			snprintf(t, sizeof(t), "%s", oh);
			fa = AF_INET;
		}
		if (inet_pton(fa, t, a) != 1)
			return false;
		if (fa == AF_INET6 && memcmp(a, "\0\0\0\0\0\0\0\0\0\0"
		    "\xff\xff", 12) == 0) {
			memmove(a, a + 12, 4);
			fa = AF_INET;
		}
		if (fb == AF_INET6 && bits >= 96 && memcmp(base,
		    "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
			memmove(base, base + 12, 4);
			fb = AF_INET;
			bits -= 96;
		}
		if (fa != fb)
			return false;
		for (i = 0; i < bits; i++)
			if (((a[i / 8] ^ base[i / 8]) >> (7 - i % 8)) & 1)
				return false;
		return true;
	}
	if (!d->o.wild)
		return strcmp(d->text, o->text) == 0;
	if (o->o.ipv4 || o->o.ipv6)
		return false;
	p = d->o;
	p.wild = false;
	assert_int_equal(origin_format(&p, &dt, NULL), 0);
	for (h = strchr(o->o.host, '.'); h != NULL; h = strchr(h + 1, '.')) {
		p = o->o;
		memmove(p.host, h + 1, strlen(h + 1) + 1);
		assert_int_equal(origin_format(&p, &pt, NULL), 0);
		if (strcmp(pt, dt) == 0)
			m = true;
		free(pt);
	}
	free(dt);
	return m;
}

/* Round trip over the tables and the generated corpus, then matching. */
static void
test_origin_round_trip_and_match_consistency(void **state)
{
	static const int	 modes[] = { ORIGIN_URL, ORIGIN_DEST };
	char			 b[700];
	size_t			 i, j, m, matches = 0, wildmatches = 0;
	size_t			 blockmatches = 0;
	size_t			 spelled = 0;
	bool			 want, got;

	(void)state;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		for (m = 0; m < 2; m++)
			round_trip(tables[i], strlen(tables[i]), modes[m]);
	for (i = 0; i < CORPUS_N; i++) {
		gen(b, sizeof(b));
		for (m = 0; m < 2; m++)
			round_trip(b, strlen(b), modes[m]);
	}
	/* The corpus must exercise both outcomes of every kind. */
	assert_true(npool > POOL_N / 2);

	for (i = 0; i < npool; i++) {
		spellings(&pool[i].o, pool[i].text, pool[i].flags);
		spelled++;
	}
	for (i = 0; i < npool; i++) {
		for (j = 0; j < npool; j++) {
			struct kept *d = &pool[i], *o = &pool[j];
			char *const dl[1] = { d->text };

			if (!(d->flags & ORIGIN_DEST) ||
			    !(o->flags & ORIGIN_URL))
				continue;
			want = oracle(d, o);
			got = origin_match(&d->o, &o->o);
			if (want != got)
				fail_msg("destination '%s', origin '%s': "
				    "match %d, normal forms say %d", d->text,
				    o->text, got, want);
			/* The string interface agrees. */
			assert_int_equal(url_origin_allowed(o->text, dl, 1),
			    got);
			if (!d->o.wild && !d->o.block)
				assert_int_equal(origin_equal(&d->o, &o->o),
				    got);
			if (got && d->o.block)
				blockmatches++;
			else if (got)
				*(d->o.wild ? &wildmatches : &matches) += 1;
		}
	}
	/* Also every kept origin against itself as a destination. */
	for (i = 0; i < npool; i++) {
		if (pool[i].o.wild || pool[i].o.block) {
			assert_false(origin_match(&pool[i].o, &pool[i].o));
			continue;
		}
		assert_true(origin_match(&pool[i].o, &pool[i].o));
		matches++;
	}
	assert_true(spelled > 0);
	assert_true(matches > 0);
	print_message("%zu kept origins, %zu exact, %zu wildcard and %zu "
	    "block matches across modes\n", npool, matches, wildmatches,
	    blockmatches);
	for (i = 0; i < npool; i++)
		free(pool[i].text);
}

/*
 * Wildcards against generated subdomains: "*.suffix" allows every name
 * below the suffix at any depth, never the suffix itself, a look-alike
 * ending in "suffix" without the dot, another port or another scheme.
 */
static void
test_wildcard_matches_exactly_the_subdomains(void **state)
{
	struct origin	 d, o;
	char		 suffix[200], in[400], lab[80];
	int		 k, depth, i;

	(void)state;
	for (k = 0; k < 500; k++) {
		suffix[0] = '\0';
		do {
			suffix[0] = '\0';
			for (i = 0, depth = 2 + (int)rng(3); i < depth; i++) {
				if (i > 0)
					cat(suffix, sizeof(suffix), ".");
				cat(suffix, sizeof(suffix), "%c",
				    'a' + rng(26));
				gen_label(suffix, sizeof(suffix));
			}
			snprintf(in, sizeof(in), "https://*.%s:8443", suffix);
		} while (strlen(suffix) > 200 || origin_parse(in, strlen(in),
		    ORIGIN_DEST, &d, NULL) != 0);
		lab[0] = '\0';
		cat(lab, sizeof(lab), "%c", 'a' + rng(26));
		snprintf(in, sizeof(in), "https://%s.%s:8443/x", lab, suffix);
		if (origin_parse(in, strlen(in), ORIGIN_URL, &o, NULL) != 0)
			continue;
		assert_true(origin_match(&d, &o));
		snprintf(in, sizeof(in), "HTTPS://%s.x-y.%s:8443", lab,
		    suffix);
		assert_int_equal(origin_parse(in, strlen(in), ORIGIN_URL, &o,
		    NULL), 0);
		assert_true(origin_match(&d, &o));
		snprintf(in, sizeof(in), "https://%s:8443", suffix);
		assert_int_equal(origin_parse(in, strlen(in), ORIGIN_URL, &o,
		    NULL), 0);
		assert_false(origin_match(&d, &o));
		/* A look-alike (refused if its first label grows too long). */
		snprintf(in, sizeof(in), "https://%s%s:8443", lab, suffix);
		if (origin_parse(in, strlen(in), ORIGIN_URL, &o, NULL) == 0)
			assert_false(origin_match(&d, &o));
		snprintf(in, sizeof(in), "https://%s.%s", lab, suffix);
		assert_int_equal(origin_parse(in, strlen(in), ORIGIN_URL, &o,
		    NULL), 0);
		assert_false(origin_match(&d, &o));
		snprintf(in, sizeof(in), "http://%s.%s:8443", lab, suffix);
		assert_int_equal(origin_parse(in, strlen(in), ORIGIN_URL, &o,
		    NULL), 0);
		assert_false(origin_match(&d, &o));
	}
}

/*
 * An address block allows the IP literals inside it with the same scheme
 * and port, and never a host name, whatever the name looks like.
 */
static void
test_block_matches_only_ip_literals_inside(void **state)
{
	static const char *const d4[] = { "https://[10.0.0.0/8]" };
	static const char *const d6[] = { "http://[fd00::/8]:8080" };
	static const char *const all[] = {
		"https://[0.0.0.0/0]", "https://[::/0]",
	};
	static const char *const h[] = { "https://[127.0.0.1/32]:9443" };
	struct origin	 d, o;

	(void)state;
#define ALLOWED(url, dl) url_origin_allowed(url, (char *const *)(dl), \
	    sizeof(dl) / sizeof((dl)[0]))
	assert_true(ALLOWED("https://10.0.0.0", d4));
	assert_true(ALLOWED("https://10.255.255.255", d4));
	assert_true(ALLOWED("https://[::ffff:10.0.0.1]", d4));
	assert_false(ALLOWED("https://11.0.0.0", d4));
	assert_false(ALLOWED("https://9.255.255.255", d4));
	assert_false(ALLOWED("http://10.0.0.1", d4));
	assert_false(ALLOWED("https://10.0.0.1:8443", d4));
	assert_false(ALLOWED("https://[::10.0.0.1]", d4));
	assert_true(ALLOWED("http://[fd00::]:8080", d6));
	assert_true(ALLOWED("http://[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]"
	    ":8080", d6));
	assert_false(ALLOWED("http://[fe00::]:8080", d6));
	assert_false(ALLOWED("http://[fcff:ffff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff]:8080", d6));
	assert_false(ALLOWED("http://[fd00::1]", d6));
	assert_true(ALLOWED("https://127.0.0.1:9443", h));
	assert_false(ALLOWED("https://127.0.0.2:9443", h));
	assert_false(ALLOWED("https://localhost:9443", h));

	/* Names never match, even the widest block. */
	assert_true(ALLOWED("https://93.184.216.34", all));
	assert_true(ALLOWED("https://[2606:2800::1]", all));
	assert_false(ALLOWED("https://example.com", all));
	assert_false(ALLOWED("https://localhost", all));
	assert_false(ALLOWED("https://10.0.0.1.nip.io", d4));
	assert_false(ALLOWED("https://a.10.0.0.0", d4));
#undef ALLOWED

	/* Through origin_match: a block origin never matches. */
	assert_int_equal(origin_parse("https://[10.0.0.0/8]", 20, ORIGIN_DEST,
	    &d, NULL), 0);
	assert_true(d.block);
	assert_false(d.ipv4 || d.ipv6 || d.wild);
	assert_false(origin_match(&d, &d));
	assert_int_equal(origin_parse("https://a.example", 17, ORIGIN_URL,
	    &o, NULL), 0);
	assert_false(origin_match(&d, &o));
	/* A URL can never hold a block. */
	assert_int_equal(origin_parse("https://[10.0.0.0/8]", 20, ORIGIN_URL,
	    &o, NULL), -CB_EBADREQ);
	assert_int_equal(origin_parse("https://[fd00::/8]", 18,
	    ORIGIN_URL | ORIGIN_NORMAL, &o, NULL), -CB_EBADREQ);
}

/*
 * A failed parse leaves a zeroed origin and the message in err; a normal
 * form is read strictly (lower-case scheme, no trailing dot or slash).
 */
static void
test_refusal_zeroes_the_origin(void **state)
{
	struct cb_error	 err;
	struct origin	 o;
	static const struct origin zero;

	(void)state;
	assert_int_equal(origin_parse("https://a.example:99999", 23,
	    ORIGIN_URL, &o, &err), -CB_EBADREQ);
	assert_memory_equal(&o, &zero, sizeof(o));
	assert_string_equal(err.msg, "URL port in 'a.example:99999' must be "
	    "a number from 1 to 65535");
	assert_int_equal(origin_parse("https://a.example/", 18,
	    ORIGIN_URL | ORIGIN_NORMAL, &o, NULL), -CB_EBADREQ);
	assert_int_equal(origin_parse("HTTPS://a.example", 17,
	    ORIGIN_URL | ORIGIN_NORMAL, &o, NULL), -CB_EBADREQ);
	assert_int_equal(origin_parse("https://a.example/", 18,
	    ORIGIN_DEST | ORIGIN_NORMAL, &o, NULL), -CB_EBADREQ);
	assert_int_equal(origin_parse("https://a.example.", 18,
	    ORIGIN_URL | ORIGIN_NORMAL, &o, NULL), -CB_EBADREQ);
	assert_int_equal(origin_parse("https://a.example.", 18,
	    ORIGIN_URL, &o, NULL), 0);
	assert_int_equal(origin_parse("HTTPS://a.example/", 18,
	    ORIGIN_DEST, &o, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_round_trip_and_match_consistency),
		cmocka_unit_test(test_wildcard_matches_exactly_the_subdomains),
		cmocka_unit_test(test_refusal_zeroes_the_origin),
		cmocka_unit_test(test_block_matches_only_ip_literals_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
