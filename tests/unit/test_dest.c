/*
 * Unit tests for daemon/dest.c dest_normalize(): destination origins
 * (SPEC sections 2 and 5.2) are scheme://host[:port] with scheme http or
 * https; the normal form is lower case, without a default port, a
 * trailing slash or a trailing dot.  Anything that is not a bare origin
 * (userinfo, path, query, fragment, bad ports, bad host names, bad IP
 * literals, overlong input) is refused with a message that quotes it.
 * Address blocks in brackets ("https://[10.0.0.0/8]"), and
 * dest_address_allowed, which says whether destinations name a resolved
 * address exactly or by a block.
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

#define MSG_FMT		"destination '%.*s' is not an origin of the form " \
			"https://host[:port] (host may start with '*.')"
#define MSG_LENGTH	"destination must be 1 to 512 characters"

static void
ok(const char *in, const char *want)
{
	struct cb_error	 err;
	char		*out = NULL;

	cb_error_clear(&err);
	if (dest_normalize(in, &out, &err) != 0)
		fail_msg("'%s' refused: %s", in, err.msg);
	assert_non_null(out);
	if (strcmp(out, want) != 0) {
		char got[600];

		snprintf(got, sizeof(got), "%s", out);
		free(out);
		fail_msg("'%s' -> '%s', expected '%s'", in, got, want);
	}
	assert_int_equal(err.code, 0);
	/* The normal form is a fixed point. */
	free(out);
	assert_int_equal(dest_normalize(want, &out, &err), 0);
	assert_string_equal(out, want);
	free(out);
}

static void
bad(const char *in)
{
	struct cb_error	 err;
	char		*out = (char *)"sentinel";
	char		 want[CB_ERRMSG_MAX];
	size_t		 n = strlen(in);
	int		 rc;

	cb_error_clear(&err);
	rc = dest_normalize(in, &out, &err);
	if (rc == 0) {
		char got[600];

		snprintf(got, sizeof(got), "%s", out);
		free(out);
		fail_msg("'%s' accepted as '%s'", in, got);
	}
	assert_int_equal(rc, -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_null(out);
	if (n == 0 || n > 512)
		assert_string_equal(err.msg, MSG_LENGTH);
	else {
		/* The input is quoted as given (before trimming). */
		if (n > 0 && in[n - 1] == '/')
			n--;
		snprintf(want, sizeof(want), MSG_FMT, (int)(n > 100 ? 100 : n),
		    in);
		assert_string_equal(err.msg, want);
	}
	assert_int_equal(dest_normalize(in, &out, NULL), -CB_EBADREQ);
}

static void
test_lower_case(void **state)
{
	(void)state;
	ok("https://API.GitHub.com", "https://api.github.com");
	ok("HTTPS://X.EXAMPLE", "https://x.example");
	ok("Http://Example.ORG:8080", "http://example.org:8080");
	ok("https://api.github.com", "https://api.github.com");
}

static void
test_ports(void **state)
{
	(void)state;
	/* Default ports are dropped. */
	ok("https://x.example:443", "https://x.example");
	ok("http://x:80", "http://x");
	ok("https://x.example:0443", "https://x.example");
	/* Other ports are kept, including the other scheme's default. */
	ok("https://x.example:8443", "https://x.example:8443");
	ok("http://x:443", "http://x:443");
	ok("https://x:80", "https://x:80");
	ok("https://x:1", "https://x:1");
	ok("https://x:65535", "https://x:65535");
}

static void
test_trailing_slash_and_dot(void **state)
{
	(void)state;
	ok("https://api.github.com/", "https://api.github.com");
	ok("https://api.github.com.", "https://api.github.com");
	ok("https://api.github.com./", "https://api.github.com");
	ok("https://api.github.com.:8443/", "https://api.github.com:8443");
	ok("https://api.github.com:443/", "https://api.github.com");
	bad("https://api.github.com//");
	bad("https://api.github.com..");
	/* A wildcard over a top-level domain matches far too much. */
	bad("https://*.com");
	bad("https://*.com:8443");
}

static void
test_hosts(void **state)
{
	char	host[200], in[260];

	(void)state;
	ok("https://*.example.com", "https://*.example.com");
	ok("https://*.Example.com:8443", "https://*.example.com:8443");
	ok("https://*.example.com:443/", "https://*.example.com");
	ok("https://localhost", "https://localhost");
	ok("https://a-b.c-d.example", "https://a-b.c-d.example");
	ok("https://xn--bcher-kva.example", "https://xn--bcher-kva.example");
	ok("https://1.example", "https://1.example");
	/* IPv4 literals. */
	ok("http://192.168.1.10:8080", "http://192.168.1.10:8080");
	ok("https://127.0.0.1", "https://127.0.0.1");
	ok("https://10.0.0.1:443", "https://10.0.0.1");
	/* IPv6 literals. */
	ok("https://[::1]:8443", "https://[::1]:8443");
	ok("https://[::1]:443", "https://[::1]");
	ok("http://[::1]:80/", "http://[::1]");
	/* IPv6 literals take their standard short form, as url_origin gives. */
	ok("https://[0:0:0:0:0:0:0:1]", "https://[::1]");
	ok("https://[2001:DB8:0::1]:8443", "https://[2001:db8::1]:8443");
	ok("https://[2001:DB8::A]", "https://[2001:db8::a]");
	ok("https://[::ffff:192.0.2.1]", "https://[::ffff:192.0.2.1]");

	/* A label of 63 characters is fine, 64 is not. */
	memset(host, 'a', 64);
	host[63] = '\0';
	snprintf(in, sizeof(in), "https://%s.example", host);
	ok(in, in);
	host[63] = 'a';
	host[64] = '\0';
	snprintf(in, sizeof(in), "https://%s.example", host);
	bad(in);
	snprintf(in, sizeof(in), "https://%s", host);
	bad(in);
}

static void
test_refused(void **state)
{
	static const char *const cases[] = {
		/* scheme */
		"api.github.com", "//api.github.com", "ftp://x.example",
		"https:/x.example", "https:x.example", "httpx://x",
		"wss://x.example", "file:///etc/passwd",
		/* userinfo, path, query, fragment */
		"https://user@host", "https://user:pw@host",
		"https://@host", "https://h/x", "https://h/x/",
		"https://h?", "https://h?q=1", "https://h#", "https://h#frag",
		"https://h:443/x", "https://h\\x",
		/* ports */
		"https://h:0", "https://h:65536", "https://h:99999999999999999999",
		"https://h:", "https://h:http", "https://h:-1", "https://h:+1",
		"https://h:1.5", "https://h:80:80", "https://h: 80",
		"https://h:0x50",
		/* empty host */
		"https://", "http://", "https:///", "https://:443",
		"https://.", "https://..",
		/* spaces and control characters */
		"https://a b", " https://h", "https://h ", "https://h\t",
		"https://h\n", "https://h\r", "https://h\x01",
		/* labels */
		"https://a..b", "https://.a", "https://-a.example",
		"https://a-.example", "https://a.-b", "https://a.b-",
		"https://a_b.example", "https://a%41.example",
		"https://b\xc3\xbc" "cher.example",
		/* wildcards */
		"https://*", "https://*.", "https://*..com", "https://a.*.com",
		"https://*example.com", "https://**.example.com",
		"https://*.*.example.com", "https://x*.example.com",
		/* IP literals */
		"https://[]", "https://[::1", "https://::1", "https://[::1]x",
		"https://[::1]:", "https://[::1]:0", "https://[g::1]",
		"https://[::1%25eth0]", "https://[::1]]",
		"https://[[::1]]", "https://x[::1]",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad(cases[i]);
}

/*
 * Whatever the brackets hold must be an IPv6 address: inet_pton() is the
 * reference.  dest.c only checks the character set (hex digits, ':' and
 * '.'), so "[:]" or "[1.2.3.4]" pass as "IPv6 literals".
 */
static void
test_ipv6_literal_is_an_address(void **state)
{
	static const char *const cases[] = {
		"[:]", "[.]", "[1.2.3.4]", "[12345::1]", "[1:2:3:4:5:6:7:8:9]",
		"[:::]", "[1::2::3]", "[ffff]",
	};
	struct cb_error	 err;
	unsigned char	 addr[16];
	char		 in[64], lit[64], *out;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* The test's own premise: these are not addresses. */
		snprintf(lit, sizeof(lit), "%.*s", (int)strlen(cases[i]) - 2,
		    cases[i] + 1);
		assert_int_equal(inet_pton(AF_INET6, lit, addr), 0);
		snprintf(in, sizeof(in), "https://%s", cases[i]);
		out = NULL;
		if (dest_normalize(in, &out, &err) == 0) {
			free(out);
			fail_msg("'%s' accepted as an IPv6 literal", in);
		}
	}
}

/* Input longer than 512 characters is refused for its length. */
static void
test_length(void **state)
{
	char	in[600];
	size_t	i;

	(void)state;
	bad("");

	/* 513 characters: refused for length, even with valid parts. */
	memcpy(in, "https://", 8);
	for (i = 8; i < 513; i++)
		in[i] = (i - 8) % 64 == 63 ? '.' : 'a';
	in[513] = '\0';
	bad(in);
	memset(in, 'x', 599);
	in[599] = '\0';
	bad(in);

	/*
	 * 512 characters: not refused for its length; this one is refused
	 * because it has a path (the message quotes the first 100 chars).
	 */
	memcpy(in, "https://h/", 10);
	memset(in + 10, 'p', 502);
	in[512] = '\0';
	bad(in);
}

/* A block destination refused with why: "destination 'IN': WHY". */
static void
bad_block(const char *in, const char *why)
{
	struct cb_error	 err;
	char		*out = (char *)"sentinel";
	char		 want[CB_ERRMSG_MAX];
	size_t		 n = strlen(in);

	cb_error_clear(&err);
	if (dest_normalize(in, &out, &err) == 0) {
		free(out);
		fail_msg("'%s' accepted", in);
	}
	assert_int_equal(err.code, CB_EBADREQ);
	assert_null(out);
	if (n > 0 && in[n - 1] == '/')
		n--;
	snprintf(want, sizeof(want), "destination '%.*s': %s", (int)n, in,
	    why);
	assert_string_equal(err.msg, want);
}

/* Address blocks in brackets, in their normal form. */
static void
test_address_block_destinations(void **state)
{
	(void)state;
	ok("https://[10.0.0.0/8]", "https://[10.0.0.0/8]");
	ok("HTTPS://[10.0.0.0/8]:443/", "https://[10.0.0.0/8]");
	ok("http://[fd00::/8]:8080", "http://[fd00::/8]:8080");
	ok("http://[FD00:0:0::/8]:08080/", "http://[fd00::/8]:8080");
	ok("https://[127.0.0.1/32]:9443", "https://[127.0.0.1/32]:9443");
	ok("https://[::1/128]", "https://[::1/128]");
	ok("https://[0.0.0.0/0]", "https://[0.0.0.0/0]");
	ok("https://[::/0]:8443", "https://[::/0]:8443");
	ok("https://[0:0:0:0:0:ffff:a00:0/104]",
	    "https://[::ffff:10.0.0.0/104]");
	/* An exact address stays an address, not a block. */
	ok("http://127.0.0.1:8080", "http://127.0.0.1:8080");
	ok("https://[0::1]:8443", "https://[::1]:8443");

	/* Host bits: refused, with the block to write instead. */
	bad_block("https://[10.0.0.1/8]",
	    "10.0.0.1/8 has host bits set; write 10.0.0.0/8");
	bad_block("http://[fd00::1/8]:8080/",
	    "fd00::1/8 has host bits set; write fd00::/8");
	bad_block("https://[172.31.0.0/12]",
	    "172.31.0.0/12 has host bits set; write 172.16.0.0/12");
	bad_block("https://[10.0.0.0/33]", "address block '10.0.0.0/33' "
	    "needs a prefix length from 0 to 32 after '/'");
	bad_block("https://[::/129]", "address block '::/129' needs a prefix "
	    "length from 0 to 128 after '/'");
	bad_block("https://[10.0.0.0/]", "address block '10.0.0.0/' needs a "
	    "prefix length from 0 to 32 after '/'");
	bad_block("https://[10.0.0/8]",
	    "'10.0.0' is not a numeric IPv4 or IPv6 address");
	bad_block("https://[0x0a.0.0.0/8]",
	    "'0x0a.0.0.0' is not a numeric IPv4 or IPv6 address");
	bad_block("https://[example.com/8]",
	    "'example.com' is not a numeric IPv4 or IPv6 address");

	/* A wildcard and a block do not combine; nothing else may follow. */
	bad("https://*.[10.0.0.0/8]");
	bad("https://*.[fd00::/8]:8443");
	bad("https://10.0.0.0/8");
	bad("https://[10.0.0.0/8]/x");
	bad("https://[10.0.0.0/8]x");
	bad("https://[10.0.0.0/8]:");
	bad("https://[10.0.0.0/8]:0");
	bad("https://[10.0.0.0/8");
	bad("https://[10.0.0.0]");
	bad("https://[10.0.0.0/8]?q");
	bad("https://x@[10.0.0.0/8]");
}

/* dest_address_allowed for address a (text) and scheme/port. */
static bool
allowed(const char *const *dl, size_t n, const char *scheme, unsigned port,
    const char *as)
{
	struct netaddr	a;

	assert_int_equal(netaddr_parse(as, strlen(as), &a, NULL), 0);
	return dest_address_allowed((char *const *)dl, n, scheme, port, &a);
}

/* Destinations name a resolved address exactly, by a block, or not. */
static void
test_allowed_by_exact_ip_or_block_and_port(void **state)
{
	static const char *const exact[] = {
		"https://127.0.0.1:9443", "http://[::1]:8080",
	};
	static const char *const blocks[] = {
		"https://[10.0.0.0/8]", "http://[fd00::/8]:8080",
		"https://[169.254.169.254/32]:8443",
	};
	static const char *const names[] = {
		"https://localhost", "https://*.internal.example",
		"https://metadata.google.internal", "https://10.0.0.1.nip.io",
	};
	static const char *const mapped[] = {
		"https://[::ffff:127.0.0.1]",
		"https://[::ffff:192.168.0.0/112]",
	};
	char	*normal[3];
	size_t	 i;

	(void)state;
	/* Exact IP: same address, scheme and port. */
	assert_true(allowed(exact, 2, "https", 9443, "127.0.0.1"));
	assert_true(allowed(exact, 2, "https", 9443, "::ffff:127.0.0.1"));
	assert_false(allowed(exact, 2, "https", 443, "127.0.0.1"));
	assert_false(allowed(exact, 2, "http", 9443, "127.0.0.1"));
	assert_false(allowed(exact, 2, "https", 9443, "127.0.0.2"));
	assert_false(allowed(exact, 2, "https", 9443, "::127.0.0.1"));
	assert_true(allowed(exact, 2, "http", 8080, "::1"));
	assert_true(allowed(exact, 2, "http", 8080, "0:0::1"));
	assert_false(allowed(exact, 2, "https", 8080, "::1"));
	assert_false(allowed(exact, 2, "http", 80, "::1"));
	assert_false(allowed(exact, 2, "http", 8080, "::2"));

	/* Blocks: at the edges, same scheme and port. */
	assert_true(allowed(blocks, 3, "https", 443, "10.0.0.0"));
	assert_true(allowed(blocks, 3, "https", 443, "10.255.255.255"));
	assert_true(allowed(blocks, 3, "https", 443, "::ffff:10.1.2.3"));
	assert_false(allowed(blocks, 3, "https", 443, "11.0.0.0"));
	assert_false(allowed(blocks, 3, "https", 443, "9.255.255.255"));
	assert_false(allowed(blocks, 3, "http", 443, "10.0.0.1"));
	assert_false(allowed(blocks, 3, "https", 8443, "10.0.0.1"));
	assert_true(allowed(blocks, 3, "http", 8080, "fd12::1"));
	assert_false(allowed(blocks, 3, "http", 8080, "fc00::1"));
	assert_false(allowed(blocks, 3, "https", 8080, "fd12::1"));
	assert_true(allowed(blocks, 3, "https", 8443, "169.254.169.254"));
	assert_false(allowed(blocks, 3, "https", 443, "169.254.169.254"));
	assert_false(allowed(blocks, 3, "https", 8443, "169.254.169.253"));

	/* Names and wildcards never name an address; nor does nothing. */
	for (i = 0; i < 4; i++)
		assert_false(allowed(names, 4, "https", 443, i % 2 ?
		    "127.0.0.1" : "10.0.0.1"));
	assert_false(allowed(names, 0, "https", 443, "127.0.0.1"));

	/* Mapped destinations are their IPv4 address too. */
	assert_true(allowed(mapped, 2, "https", 443, "127.0.0.1"));
	assert_true(allowed(mapped, 2, "https", 443, "192.168.255.255"));
	assert_false(allowed(mapped, 2, "https", 443, "192.169.0.0"));

	/* Destinations as dest_normalize writes them, and NULL entries. */
	assert_int_equal(dest_normalize("HTTPS://[10.0.0.0/8]:443/",
	    &normal[0], NULL), 0);
	normal[1] = NULL;
	assert_int_equal(dest_normalize("https://[::1]", &normal[2], NULL), 0);
	assert_true(allowed((const char *const *)normal, 3, "https", 443,
	    "10.9.9.9"));
	assert_true(allowed((const char *const *)normal, 3, "https", 443,
	    "::1"));
	assert_false(allowed((const char *const *)normal, 3, "https", 443,
	    "127.0.0.1"));
	free(normal[0]);
	free(normal[2]);
}

/* NULL err is allowed, and *out is always set. */
static void
test_out_and_err(void **state)
{
	char	*out = (char *)"sentinel";

	(void)state;
	assert_int_equal(dest_normalize("https://A.example", &out, NULL), 0);
	assert_string_equal(out, "https://a.example");
	free(out);
	out = (char *)"sentinel";
	assert_int_equal(dest_normalize("ftp://a", &out, NULL), -CB_EBADREQ);
	assert_null(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lower_case),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_trailing_slash_and_dot),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_ipv6_literal_is_an_address),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_out_and_err),
		cmocka_unit_test(test_address_block_destinations),
		cmocka_unit_test(test_allowed_by_exact_ip_or_block_and_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
