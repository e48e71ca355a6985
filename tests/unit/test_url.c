/*
 * Unit tests for daemon/url.c: origins of request URLs (normal form,
 * default and explicit ports, trailing dots, IPv4 and IPv6 literals) and
 * every refusal (userinfo tricks, backslashes, percent-encoding,
 * non-ASCII hosts, ambiguous numeric hosts, bad ports), then destination
 * matching (exact, wildcard depth, look-alike hosts, scheme and port
 * mismatches) including destinations produced by dest_normalize.
 */
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
#include "url.h"

/* url_origin of the NUL-terminated url must be want. */
static void
check_origin(const char *url, const char *want)
{
	struct cb_error	 err;
	char		*o = NULL;
	int		 rc;

	cb_error_clear(&err);
	rc = url_origin(url, strlen(url), &o, &err);
	if (rc != 0 || strcmp(o, want) != 0)
		print_error("url '%s': rc %d '%s' origin '%s' want '%s'\n",
		    url, rc, err.msg, o ? o : "(null)", want);
	assert_int_equal(rc, 0);
	assert_string_equal(o, want);
	free(o);
}

/* url_origin of len bytes must fail with a message containing msg. */
static void
check_refused_n(const char *url, size_t len, const char *msg)
{
	struct cb_error	 err;
	char		*o = (char *)"junk";
	int		 rc;

	cb_error_clear(&err);
	rc = url_origin(url, len, &o, &err);
	if (rc != -CB_EBADREQ || strstr(err.msg, msg) == NULL)
		print_error("url '%s': rc %d '%s', want '%s'\n", url, rc,
		    err.msg, msg);
	assert_int_equal(rc, -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_non_null(strstr(err.msg, msg));
	assert_null(o);
}

#define check_refused(url, msg)	check_refused_n(url, strlen(url), msg)

/* Normal forms of accepted URLs. */
static void
test_origin_ok(void **state)
{
	check_origin("https://api.github.com/x", "https://api.github.com");
	check_origin("https://api.github.com", "https://api.github.com");
	check_origin("HTTPS://API.GitHub.COM/Repos", "https://api.github.com");
	check_origin("Http://Example.COM?q", "http://example.com");
	check_origin("https://api.github.com#frag", "https://api.github.com");
	/* Default port dropped, others kept. */
	check_origin("https://api.github.com:443/x", "https://api.github.com");
	check_origin("https://api.github.com:00443/x",
	    "https://api.github.com");
	check_origin("https://api.github.com:8443/x",
	    "https://api.github.com:8443");
	check_origin("http://api.github.com:80/", "http://api.github.com");
	check_origin("http://h:443/", "http://h:443");
	check_origin("https://h:80/", "https://h:80");
	check_origin("https://h:65535/", "https://h:65535");
	check_origin("https://h:1/", "https://h:1");
	/* One trailing dot dropped. */
	check_origin("https://api.github.com./x", "https://api.github.com");
	check_origin("https://api.github.com.:443/x", "https://api.github.com");
	/* Literals. */
	check_origin("https://127.0.0.1:8080/", "https://127.0.0.1:8080");
	check_origin("http://10.0.0.1/x", "http://10.0.0.1");
	check_origin("http://0.0.0.0/", "http://0.0.0.0");
	check_origin("https://[2001:DB8::1]/x", "https://[2001:db8::1]");
	check_origin("https://[2001:db8:0:0:0:0:0:1]:8443/",
	    "https://[2001:db8::1]:8443");
	check_origin("https://[::1]:443", "https://[::1]");
	check_origin("https://[::ffff:192.0.2.1]/",
	    "https://[::ffff:192.0.2.1]");
	/* Punycode, underscores, digits in names. */
	check_origin("https://xn--e1afmkfd.xn--p1ai/",
	    "https://xn--e1afmkfd.xn--p1ai");
	check_origin("https://a_b.internal/", "https://a_b.internal");
	check_origin("https://1password.com/", "https://1password.com");
	check_origin("https://a.1b/", "https://a.1b");
	check_origin("https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaa.com/", "https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com");
	/* '@' and '\' after the authority are path, query or fragment. */
	check_origin("https://api.github.com/@evil.example",
	    "https://api.github.com");
	check_origin("https://api.github.com?@evil.example",
	    "https://api.github.com");
	check_origin("https://api.github.com#@evil.example",
	    "https://api.github.com");
	check_origin("https://api.github.com/x\\y", "https://api.github.com");
}

/* Everything that is refused, with its message. */
static void
test_origin_refused(void **state)
{
	/* Scheme. */
	check_refused("ftp://h/", "URL must start with http:// or https://");
	check_refused("https:/h/", "URL must start with http");
	check_refused("https:h", "URL must start with http");
	check_refused("//h/x", "URL must start with http");
	check_refused("/x", "URL must start with http");
	check_refused("", "URL must start with http");
	check_refused("httpx://h/", "URL must start with http");
	/* Userinfo, in every disguise. */
	check_refused("https://api.github.com@evil.example/",
	    "URL must not contain userinfo");
	check_refused("https://user:pw@api.github.com/",
	    "URL must not contain userinfo");
	check_refused("https://@api.github.com/", "must not contain userinfo");
	check_refused("https://evil.example\\@api.github.com",
	    "must not contain userinfo");
	check_refused("https://evil.example\\@api.github.com/x",
	    "must not contain userinfo");
	check_refused("https://a@b@api.github.com/", "userinfo");
	/* Backslash, whitespace, controls, percent, non-ASCII. */
	check_refused("https://evil.example\\.api.github.com/",
	    "must not contain a backslash");
	check_refused("https://evil.example\\api.github.com",
	    "must not contain a backslash");
	check_refused("https://a b.com/", "whitespace or control characters");
	check_refused("https://a\tb.com/", "whitespace or control");
	check_refused("https://ab.com\r\n/", "whitespace or control");
	check_refused("https://ab\x7f.com/", "whitespace or control");
	check_refused_n("https://a\0b.com/", 16, "whitespace or control");
	check_refused("https://a%2eb.com/", "must not be percent-encoded");
	check_refused("https://[fe80::1%25eth0]/", "percent-encoded");
	check_refused("https://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1"
	    "\x80.\xd1\x80\xd1\x84/", "is not ASCII: write an "
	    "internationalised domain name in its punycode form (xn--...)");
	check_refused("https://api.github.co\xef\xbd\x8d/", "punycode");
	/* Host shape. */
	check_refused("https:///x", "URL has no host");
	check_refused("https://", "URL has no host");
	check_refused("https://?q", "URL has no host");
	check_refused("https://:443/", "is not a valid host name");
	check_refused("https://a..b/", "is not a valid host name");
	check_refused("https://.a.b/", "is not a valid host name");
	check_refused("https://api.github.com../", "is not a valid host name");
	check_refused("https://a*b.com/", "is not a valid host name");
	check_refused("https://*.github.com/", "is not a valid host name");
	check_refused("https://a;b.com/", "is not a valid host name");
	check_refused("https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaa.com/", "is not a valid host name");
	/* Ambiguous numeric hosts. */
	check_refused("https://2130706433/", "is not a valid IPv4 address");
	check_refused("https://127.1/", "is not a valid IPv4 address");
	check_refused("https://0x7f.0.0.1/", "is not a valid IPv4 address");
	check_refused("https://127.0.0.0x1/", "is not a valid IPv4 address");
	check_refused("https://127.000.0.1/", "is not a valid IPv4 address");
	check_refused("https://010.0.0.1/", "is not a valid IPv4 address");
	check_refused("https://1.2.3.256/", "is not a valid IPv4 address");
	check_refused("https://1.2.3.4.5/", "is not a valid IPv4 address");
	check_refused("https://evil.example.1/", "is not a valid IPv4");
	/* IPv6. */
	check_refused("https://[::1/", "is not a valid host name or address");
	check_refused("https://[::1]x/", "is not a valid host name or address");
	check_refused("https://[]/", "is not a valid host name or address");
	check_refused("https://[1:2:3:4:5:6:7:8:9]/", "not a valid host");
	check_refused("https://[api.github.com]/", "not a valid host");
	check_refused("https://::1/", "is not a valid host name");
	/* Ports. */
	check_refused("https://h:/", "URL port in 'h:' must be a number from "
	    "1 to 65535");
	check_refused("https://h:0/", "must be a number from 1 to 65535");
	check_refused("https://h:65536/", "must be a number from 1 to 65535");
	check_refused("https://h:99999999999999999999/", "must be a number");
	check_refused("https://h:8a/", "must be a number");
	check_refused("https://h:-1/", "must be a number");
	check_refused("https://h:+443/", "must be a number");
	check_refused("https://h:443:443/", "must be a number");
	check_refused("https://[::1]:/", "must be a number");
	check_refused("https://[::1]:0/", "must be a number");
}

/* The URL need not be NUL-terminated; only len bytes count. */
static void
test_origin_len(void **state)
{
	static const char url[] = "https://api.github.com@evil.example/";
	struct cb_error	 err;
	char		*o;

	assert_int_equal(url_origin(url, 22, &o, &err), 0);
	assert_string_equal(o, "https://api.github.com");
	free(o);
	assert_int_equal(url_origin("https://a.bc", 11, &o, &err), 0);
	assert_string_equal(o, "https://a.b");
	free(o);
}

/* dest_normalize a list of destinations; frees with free_dests. */
static char **
mk_dests(const char *const *in, size_t n)
{
	struct cb_error	  err;
	char		**d;
	size_t		  i;

	if ((d = calloc(n, sizeof(*d))) == NULL)
		fail();
	for (i = 0; i < n; i++) {
		if (dest_normalize(in[i], &d[i], &err) != 0)
			print_error("dest '%s': %s\n", in[i], err.msg);
		assert_non_null(d[i]);
	}
	return d;
}

/* Free a list from mk_dests. */
static void
free_dests(char **d, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(d[i]);
	free(d);
}

/*
 * url_origin(url), then the destination check against d; the check of
 * the origin parsed from the URL (what substitute uses) must agree, and
 * its normal form must be url_origin's.
 */
static bool
allowed(const char *url, char **d, size_t n)
{
	struct cb_error	 err;
	struct origin	 po;
	char		*o, text[ORIGIN_TEXT_MAX];
	bool		 ok;

	if (url_origin(url, strlen(url), &o, &err) != 0) {
		print_error("url '%s': %s\n", url, err.msg);
		fail();
	}
	assert_int_equal(origin_parse(url, strlen(url), ORIGIN_URL, &po,
	    &err), 0);
	assert_int_equal(origin_text(&po, text), strlen(o));
	assert_string_equal(o, text);
	ok = url_origin_allowed(o, d, n);
	assert_int_equal(url_origin_allowed_parsed(&po, d, n), ok);
	free(o);
	return ok;
}

/* Exact destinations: scheme, host and port must all agree. */
static void
test_allowed_exact(void **state)
{
	static const char *const in[] = {
		"https://api.github.com",
		"HTTP://Internal.Example:8080/",
		"https://10.0.0.1",
		"http://[0:0:0:0:0:0:0:1]:8080",
		"https://[2001:DB8::1]",
	};
	size_t	 n = sizeof(in) / sizeof(in[0]);
	char	**d = mk_dests(in, n);

	/* No destinations: anywhere. */
	assert_true(allowed("https://evil.example/", NULL, 0));
	assert_true(allowed("http://10.1.2.3:81/", d, 0));

	assert_true(allowed("https://api.github.com/repos", d, n));
	assert_true(allowed("https://API.GITHUB.COM/repos", d, n));
	assert_true(allowed("https://api.github.com:443/x", d, n));
	assert_true(allowed("https://api.github.com./x", d, n));
	assert_false(allowed("https://api.github.com:8443/x", d, n));
	assert_false(allowed("http://api.github.com/x", d, n));
	assert_false(allowed("http://api.github.com:443/x", d, n));
	/* Look-alikes. */
	assert_false(allowed("https://api.github.com.evil.example/", d, n));
	assert_false(allowed("https://evilapi.github.com/", d, n));
	assert_false(allowed("https://x.api.github.com/", d, n));
	assert_false(allowed("https://github.com/", d, n));
	assert_false(allowed("https://api.github.co/", d, n));
	assert_false(allowed("https://api.github.com.evil.example/"
	    "https://api.github.com", d, n));
	assert_false(allowed("https://evil.example/?https://api.github.com",
	    d, n));

	assert_true(allowed("http://internal.example:8080/x", d, n));
	assert_false(allowed("http://internal.example/x", d, n));
	assert_false(allowed("https://internal.example:8080/x", d, n));

	assert_true(allowed("https://10.0.0.1/", d, n));
	assert_true(allowed("https://10.0.0.1:443/", d, n));
	assert_false(allowed("https://10.0.0.10/", d, n));
	assert_false(allowed("https://10.0.0.1.evil.example/", d, n));
	assert_false(allowed("http://10.0.0.1/", d, n));

	/* IPv6 compared by address. */
	assert_true(allowed("http://[::1]:8080/", d, n));
	assert_true(allowed("http://[0::1]:8080/", d, n));
	assert_false(allowed("http://[::1]/", d, n));
	assert_false(allowed("http://[::2]:8080/", d, n));
	assert_true(allowed("https://[2001:db8::1]/", d, n));
	assert_true(allowed("https://[2001:db8:0::0:1]:443/", d, n));
	assert_false(allowed("https://[2001:db8::1:0]/", d, n));
	free_dests(d, n);
}

/* Wildcards: any depth below the suffix, never the suffix itself. */
static void
test_allowed_wildcard(void **state)
{
	static const char *const in[] = {
		"https://*.github.com",
		"https://*.example.com:8443",
		"http://*.0.0.1",
	};
	size_t	 n = sizeof(in) / sizeof(in[0]);
	char	**d = mk_dests(in, n);

	assert_true(allowed("https://api.github.com/", d, n));
	assert_true(allowed("https://a.b.github.com/", d, n));
	assert_true(allowed("https://x.y.z.github.com:443/", d, n));
	assert_true(allowed("https://API.GitHub.com./", d, n));
	assert_false(allowed("https://github.com/", d, n));
	assert_false(allowed("https://evilgithub.com/", d, n));
	assert_false(allowed("https://github.com.evil.example/", d, n));
	assert_false(allowed("https://api.github.com.evil.example/", d, n));
	assert_false(allowed("https://api.github.co/", d, n));
	assert_false(allowed("http://api.github.com/", d, n));
	assert_false(allowed("https://api.github.com:8443/", d, n));

	assert_true(allowed("https://a.example.com:8443/", d, n));
	assert_true(allowed("https://a.b.example.com:8443/", d, n));
	assert_false(allowed("https://example.com:8443/", d, n));
	assert_false(allowed("https://a.example.com/", d, n));
	assert_false(allowed("https://a.example.com:443/", d, n));
	assert_false(allowed("http://a.example.com:8443/", d, n));
	assert_false(allowed("https://aexample.com:8443/", d, n));

	/* An address is never a subdomain. */
	assert_false(allowed("http://127.0.0.1/", d, n));
	assert_false(allowed("http://10.0.0.1/", d, n));
	free_dests(d, n);
}

/* Odd strings given as origins or destinations never match. */
static void
test_allowed_garbage(void **state)
{
	char	*d[] = { (char *)"https://api.github.com", NULL,
	    (char *)"garbage", (char *)"https://", (char *)"https://*.",
	    (char *)"https://h:0", (char *)"https://h:99999",
	    (char *)"https://[::1", (char *)"https://h/x" };
	size_t	 n = sizeof(d) / sizeof(d[0]);

	assert_true(url_origin_allowed("https://api.github.com", d, n));
	assert_false(url_origin_allowed("https://h", d, n));
	assert_false(url_origin_allowed("https://h:0", d, n));
	assert_false(url_origin_allowed("garbage", d, n));
	assert_false(url_origin_allowed("https://*.github.com", d, n));
	assert_false(url_origin_allowed("https://api.github.com/", d, n));
	assert_false(url_origin_allowed("ftp://api.github.com", d, n));
	assert_false(url_origin_allowed("", d, n));
	assert_false(url_origin_allowed("https://[::1]", d + 7, 1));
	/* Hosts of destinations are lower-cased defensively; schemes not. */
	d[0] = (char *)"HTTPS://API.github.com";
	assert_false(url_origin_allowed("https://api.github.com", d, 1));
	d[0] = (char *)"https://API.github.com";
	assert_true(url_origin_allowed("https://api.github.com", d, 1));
}

/*
 * Every routing and hop-by-hop header is recognised in any case, Proxy-*
 * as a family; ordinary headers are not.
 */
static void
test_routing_headers_recognised_in_any_case(void **state)
{
	static const char *const routing[] = {
		"Host", "host", "HOST", "hOsT", ":authority", ":Authority",
		":scheme", ":path", ":method", "Forwarded", "X-Forwarded-Host",
		"x-forwarded-host", "X-Forwarded-Server", "X-Forwarded-Proto",
		"X-FORWARDED-PORT", "X-Forwarded-Scheme", "X-Forwarded-Prefix",
		"X-Host", "X-HTTP-Host-Override", "X-Original-Host",
		"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
		"X-HTTP-Method", "X-Method-Override", "Proxy-Authorization",
		"proxy-connection", "Proxy-", "PROXY-Anything", "Connection",
		"Keep-Alive", "TE", "te", "Transfer-Encoding", "Upgrade",
	};
	static const char *const ordinary[] = {
		"Authorization", "X-Api-Key", "Content-Type", "Accept",
		"Hostname", "X-Host-Id", "Hos", "Proxy", "Proxyx-A", "Tee",
		"Connections", "X-Forwarded-For", "Cookie", "Te-", "",
	};
	size_t	i;

	for (i = 0; i < sizeof(routing) / sizeof(routing[0]); i++) {
		if (!url_routing_header(routing[i], strlen(routing[i])))
			print_error("'%s' not routing\n", routing[i]);
		assert_true(url_routing_header(routing[i],
		    strlen(routing[i])));
	}
	for (i = 0; i < sizeof(ordinary) / sizeof(ordinary[0]); i++) {
		if (url_routing_header(ordinary[i], strlen(ordinary[i])))
			print_error("'%s' is routing\n", ordinary[i]);
		assert_false(url_routing_header(ordinary[i],
		    strlen(ordinary[i])));
	}
	/* Length, not NUL, ends the name. */
	assert_false(url_routing_header("Host\0", 5));
	assert_true(url_routing_header("Hostname", 4));
}

/*
 * A Host value matches the URL's origin only when it names the same host
 * and port after normalisation.
 */
static void
test_host_value_matches_only_the_origin(void **state)
{
	static const struct {
		const char	*origin;
		const char	*value;
		bool		 match;
	} cases[] = {
		{ "https://api.example.com", "api.example.com", true },
		{ "https://api.example.com", "API.Example.COM", true },
		{ "https://api.example.com", "api.example.com:443", true },
		{ "https://api.example.com", "api.example.com.", true },
		{ "https://api.example.com", " api.example.com\t", true },
		{ "https://api.example.com:8443", "api.example.com:8443",
		    true },
		{ "http://api.example.com", "api.example.com:80", true },
		{ "https://[::1]", "[0:0::1]", true },
		{ "https://[::1]:8443", "[::1]:8443", true },
		{ "https://10.0.0.1", "10.0.0.1:443", true },
		{ "https://api.example.com", "evil.example", false },
		{ "https://api.example.com", "api.example.com:80", false },
		{ "https://api.example.com", "api.example.com:8443", false },
		{ "https://api.example.com:8443", "api.example.com", false },
		{ "http://api.example.com", "api.example.com:443", false },
		{ "https://api.example.com", "api.example.com.evil.example",
		    false },
		{ "https://api.example.com", "evil.example@api.example.com",
		    false },
		{ "https://api.example.com", "api.example.com@evil.example",
		    false },
		{ "https://api.example.com", "api.example.com/x", false },
		{ "https://api.example.com", "api.example.com?x", false },
		{ "https://api.example.com", "api.example.com#x", false },
		{ "https://api.example.com", "api.example.com evil.example",
		    false },
		{ "https://api.example.com", "api.example.com:", false },
		{ "https://api.example.com", "", false },
		{ "https://api.example.com", "  ", false },
		{ "https://api.example.com", "https://api.example.com", false },
		{ "https://[::1]", "::1", false },
		{ "https://[::1]", "[::2]", false },
	};
	size_t	i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool m = url_authority_matches(cases[i].origin, cases[i].value,
		    strlen(cases[i].value));
		struct origin o;

		if (m != cases[i].match)
			print_error("origin '%s' Host '%s': %d\n",
			    cases[i].origin, cases[i].value, m);
		assert_int_equal(m, cases[i].match);
		/* The same against the parsed origin, as substitute asks. */
		assert_int_equal(origin_parse(cases[i].origin,
		    strlen(cases[i].origin), ORIGIN_URL, &o, NULL), 0);
		assert_int_equal(url_authority_matches_parsed(&o,
		    cases[i].value, strlen(cases[i].value)), m);
	}
	/* A NUL ends nothing: "api.example.com\0evil" is not the host. */
	assert_false(url_authority_matches("https://api.example.com",
	    "api.example.com\0evil", 20));
	assert_false(url_authority_matches("https://api.example.com",
	    "api.example.com\r\nX: 1", 21));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_ok),
		cmocka_unit_test(test_origin_refused),
		cmocka_unit_test(test_origin_len),
		cmocka_unit_test(test_allowed_exact),
		cmocka_unit_test(test_allowed_wildcard),
		cmocka_unit_test(test_allowed_garbage),
		cmocka_unit_test(test_routing_headers_recognised_in_any_case),
		cmocka_unit_test(test_host_value_matches_only_the_origin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
