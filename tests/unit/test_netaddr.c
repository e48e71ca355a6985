/*
 * Unit tests for daemon/netaddr.c: numeric address parsing (inet_pton
 * only, no inet_aton forms), printing, the class of every special range
 * at its edges, IPv6 forms that embed an IPv4 address, and address
 * blocks (parse, normal form, host bits, containment at the edges).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cb_error.h"
#include "netaddr.h"

/* Parse s, which must be an address. */
static struct netaddr
addr(const char *s)
{
	struct cb_error	err;
	struct netaddr	a;

	cb_error_clear(&err);
	if (netaddr_parse(s, strlen(s), &a, &err) != 0)
		fail_msg("'%s' refused: %s", s, err.msg);
	return a;
}

/* s must be of class want. */
static void
is(const char *s, enum netaddr_class want)
{
	struct netaddr		a = addr(s);
	enum netaddr_class	got = netaddr_classify(&a);

	if (got != want)
		fail_msg("'%s' is %s, expected %s", s, netaddr_class_name(got),
		    netaddr_class_name(want));
}

/* s must print as want. */
static void
prints(const char *s, const char *want)
{
	struct netaddr	a = addr(s);
	char		b[NETADDR_STRLEN];

	netaddr_format(&a, b, sizeof(b));
	assert_string_equal(b, want);
}

/* s must be refused as an address, with a message. */
static void
not_addr(const char *s, size_t len)
{
	struct cb_error	err;
	struct netaddr	a;

	cb_error_clear(&err);
	if (netaddr_parse(s, len, &a, &err) == 0)
		fail_msg("'%.*s' parsed as an address", (int)len, s);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_non_null(strstr(err.msg, "is not a numeric IPv4 or IPv6"));
	assert_int_equal(a.family, 0);
}

/* Parse s, which must be a block. */
static struct netblock
block(const char *s)
{
	struct cb_error	err;
	struct netblock	b;

	cb_error_clear(&err);
	if (netblock_parse(s, strlen(s), &b, &err) != 0)
		fail_msg("block '%s' refused: %s", s, err.msg);
	return b;
}

/* Does block bs contain address as? */
static bool
contains(const char *bs, const char *as)
{
	struct netblock	b = block(bs);
	struct netaddr	a = addr(as);

	return netblock_contains(&b, &a);
}

static void
test_ipv4_class_boundaries(void **state)
{
	(void)state;
	is("0.0.0.0", NETADDR_UNSPECIFIED);
	is("0.255.255.255", NETADDR_UNSPECIFIED);
	is("1.0.0.0", NETADDR_PUBLIC);
	is("8.8.8.8", NETADDR_PUBLIC);
	is("9.255.255.255", NETADDR_PUBLIC);
	is("10.0.0.0", NETADDR_PRIVATE);
	is("10.255.255.255", NETADDR_PRIVATE);
	is("11.0.0.0", NETADDR_PUBLIC);
	is("100.63.255.255", NETADDR_PUBLIC);
	is("100.64.0.0", NETADDR_PRIVATE);
	is("100.127.255.255", NETADDR_PRIVATE);
	is("100.128.0.0", NETADDR_PUBLIC);
	is("126.255.255.255", NETADDR_PUBLIC);
	is("127.0.0.0", NETADDR_LOOPBACK);
	is("127.0.0.1", NETADDR_LOOPBACK);
	is("127.255.255.255", NETADDR_LOOPBACK);
	is("128.0.0.0", NETADDR_PUBLIC);
	is("169.253.255.255", NETADDR_PUBLIC);
	is("169.254.0.0", NETADDR_LINKLOCAL);
	is("169.254.169.254", NETADDR_LINKLOCAL);
	is("169.254.255.255", NETADDR_LINKLOCAL);
	is("169.255.0.0", NETADDR_PUBLIC);
	is("172.15.255.255", NETADDR_PUBLIC);
	is("172.16.0.0", NETADDR_PRIVATE);
	is("172.31.255.255", NETADDR_PRIVATE);
	is("172.32.0.0", NETADDR_PUBLIC);
	is("191.255.255.255", NETADDR_PUBLIC);
	is("192.0.0.0", NETADDR_RESERVED);
	is("192.0.0.255", NETADDR_RESERVED);
	is("192.0.1.0", NETADDR_PUBLIC);
	is("192.0.1.255", NETADDR_PUBLIC);
	is("192.0.2.0", NETADDR_RESERVED);
	is("192.0.2.255", NETADDR_RESERVED);
	is("192.0.3.0", NETADDR_PUBLIC);
	is("192.167.255.255", NETADDR_PUBLIC);
	is("192.168.0.0", NETADDR_PRIVATE);
	is("192.168.255.255", NETADDR_PRIVATE);
	is("192.169.0.0", NETADDR_PUBLIC);
	is("198.17.255.255", NETADDR_PUBLIC);
	is("198.18.0.0", NETADDR_RESERVED);
	is("198.19.255.255", NETADDR_RESERVED);
	is("198.20.0.0", NETADDR_PUBLIC);
	is("198.51.99.255", NETADDR_PUBLIC);
	is("198.51.100.0", NETADDR_RESERVED);
	is("198.51.100.255", NETADDR_RESERVED);
	is("198.51.101.0", NETADDR_PUBLIC);
	is("203.0.112.255", NETADDR_PUBLIC);
	is("203.0.113.0", NETADDR_RESERVED);
	is("203.0.113.255", NETADDR_RESERVED);
	is("203.0.114.0", NETADDR_PUBLIC);
	is("223.255.255.255", NETADDR_PUBLIC);
	is("224.0.0.0", NETADDR_MULTICAST);
	is("239.255.255.255", NETADDR_MULTICAST);
	is("240.0.0.0", NETADDR_RESERVED);
	is("255.255.255.254", NETADDR_RESERVED);
	is("255.255.255.255", NETADDR_RESERVED);
}

static void
test_ipv6_class_boundaries(void **state)
{
	(void)state;
	is("::", NETADDR_UNSPECIFIED);
	is("::1", NETADDR_LOOPBACK);
	is("2606:4700::1111", NETADDR_PUBLIC);
	is("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_LINKLOCAL);
	is("fe80::", NETADDR_LINKLOCAL);
	is("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_PUBLIC);
	is("fec0::", NETADDR_RESERVED);
	is("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_RESERVED);
	is("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_PUBLIC);
	is("fc00::", NETADDR_UNIQUELOCAL);
	is("fd00::1", NETADDR_UNIQUELOCAL);
	is("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_UNIQUELOCAL);
	is("fe00::", NETADDR_PUBLIC);
	is("ff00::", NETADDR_MULTICAST);
	is("ff02::1", NETADDR_MULTICAST);
	is("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_MULTICAST);
	is("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_PUBLIC);
	is("2001:db8::", NETADDR_RESERVED);
	is("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", NETADDR_RESERVED);
	is("2001:db9::", NETADDR_PUBLIC);
}

/*
 * Every IPv6 form that reaches an IPv4 host is judged by that host, in
 * any spelling; with a public IPv4 address inside it stays public.
 */
static void
test_embedded_ipv4_takes_its_class(void **state)
{
	static const struct {
		const char		*v4;
		enum netaddr_class	 cls;
		const char		*forms[8];
	} t[] = {
		{ "127.0.0.1", NETADDR_LOOPBACK, {
		    "::ffff:127.0.0.1", "::ffff:7f00:1", "::FFFF:7F00:0001",
		    "0:0:0:0:0:ffff:7f00:1", "::127.0.0.1", "::7f00:1",
		    "64:ff9b::127.0.0.1", "2002:7f00:1::" } },
		{ "169.254.169.254", NETADDR_LINKLOCAL, {
		    "::ffff:169.254.169.254", "::ffff:a9fe:a9fe",
		    "::169.254.169.254", "::a9fe:a9fe",
		    "64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254",
		    "2002:a9fe:a9fe::", "2002:a9fe:a9fe:1:2:3:4:5" } },
		{ "10.0.0.1", NETADDR_PRIVATE, {
		    "::ffff:10.0.0.1", "::ffff:a00:1", "::10.0.0.1",
		    "::a00:1", "64:ff9b::10.0.0.1", "64:ff9b::a00:1",
		    "2002:a00:1::", "2002:0a00:0001:ffff::1" } },
		{ "0.0.0.0", NETADDR_UNSPECIFIED, {
		    "::ffff:0.0.0.0", "64:ff9b::", "2002::", "::0.0.0.2",
		    NULL } },
		{ "192.0.2.1", NETADDR_RESERVED, {
		    "::ffff:192.0.2.1", "64:ff9b::c000:201", "2002:c000:201::",
		    NULL } },
		{ "224.0.0.1", NETADDR_MULTICAST, {
		    "::ffff:224.0.0.1", "2002:e000:1::", NULL } },
		{ "8.8.8.8", NETADDR_PUBLIC, {
		    "::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::8.8.8.8",
		    "2002:808:808::", NULL } },
	};
	size_t	i, j;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		is(t[i].v4, t[i].cls);
		for (j = 0; j < 8 && t[i].forms[j] != NULL; j++)
			is(t[i].forms[j], t[i].cls);
	}
	/* Not an embedding: :: and ::1 are themselves; others public. */
	is("::", NETADDR_UNSPECIFIED);
	is("::1", NETADDR_LOOPBACK);
	is("::fffe:7f00:1", NETADDR_PUBLIC);
	is("64:ff9c::7f00:1", NETADDR_PUBLIC);
	is("64:ff9b:0:0:0:1:7f00:1", NETADDR_PUBLIC);
	is("2003:7f00:1::", NETADDR_PUBLIC);
	is("2002:808:808::7f00:1", NETADDR_PUBLIC);
}

static void
test_class_names(void **state)
{
	(void)state;
	assert_string_equal(netaddr_class_name(NETADDR_PUBLIC), "public");
	assert_string_equal(netaddr_class_name(NETADDR_LOOPBACK), "loopback");
	assert_string_equal(netaddr_class_name(NETADDR_LINKLOCAL),
	    "link-local");
	assert_string_equal(netaddr_class_name(NETADDR_PRIVATE), "private");
	assert_string_equal(netaddr_class_name(NETADDR_UNIQUELOCAL),
	    "unique-local");
	assert_string_equal(netaddr_class_name(NETADDR_MULTICAST),
	    "multicast");
	assert_string_equal(netaddr_class_name(NETADDR_UNSPECIFIED),
	    "unspecified");
	assert_string_equal(netaddr_class_name(NETADDR_RESERVED), "reserved");
	assert_string_equal(netaddr_class_name((enum netaddr_class)99),
	    "unknown");
}

/* Only the numeric forms inet_pton takes; never a name or inet_aton's. */
static void
test_only_numeric_addresses_parse(void **state)
{
	static const char *const refused[] = {
		"", "0x7f.1", "0x7f.0.0.1", "127.1", "127.0.1", "2130706433",
		"017700000001", "0177.0.0.1", "127.000.0.1", "010.0.0.1",
		"1.2.3.256", "1.2.3.4.5", "1.2.3.", ".1.2.3.4", "1.2.3.4 ",
		" 1.2.3.4", "localhost", "example.com", "[::1]", "::1%eth0",
		"fe80::1%25eth0", "::ffff:127.1", "::ffff:0x7f.0.0.1",
		"1::2::3", "12345::1", ":::", "1:2:3:4:5:6:7:8:9", "g::1",
		"::1/128", "1.2.3.4/32", "+1.2.3.4", "1.2.3.-4",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x",
		"0000:0000:0000:0000:0000:0000:0000:0000:0",
	};
	struct netaddr	a;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		not_addr(refused[i], strlen(refused[i]));
	/* A NUL inside the given length, and an overlong input. */
	not_addr("1.2.3.4\0", 8);
	not_addr("0000:0000:0000:0000:0000:0000:0000:0000:0000:0000", 49);

	/* The length is honoured: no NUL terminator needed. */
	assert_int_equal(netaddr_parse("10.0.0.1x", 8, &a, NULL), 0);
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, "\x0a\x00\x00\x01", 4);

	a = addr("::ffff:127.0.0.1");
	assert_int_equal(a.family, AF_INET6);
	assert_memory_equal(a.bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x7f\0\0\1",
	    16);
	a = addr("255.255.255.255");
	assert_int_equal(a.family, AF_INET);
}

/* Printing: dotted decimal, and RFC 5952 for IPv6. */
static void
test_format_is_canonical(void **state)
{
	(void)state;
	prints("10.0.0.1", "10.0.0.1");
	prints("0:0:0:0:0:0:0:1", "::1");
	prints("0::0", "::");
	prints("2001:DB8:0:0:0:0:0:1", "2001:db8::1");
	prints("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1");
	prints("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1");
	prints("2001:0db8:00aa::0001", "2001:db8:aa::1");
	prints("fe80:0000::0", "fe80::");
	prints("::FFFF:7F00:1", "::ffff:127.0.0.1");
}

static void
test_from_sockaddr(void **state)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	struct sockaddr		 sx;
	struct netaddr		 a, want;
	struct cb_error		 err;

	(void)state;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = htons(443);
	assert_int_equal(inet_pton(AF_INET, "169.254.169.254", &s4.sin_addr),
	    1);
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&s4, &a,
	    NULL), 0);
	want = addr("169.254.169.254");
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, want.bytes, 4);
	assert_int_equal(netaddr_classify(&a), NETADDR_LINKLOCAL);

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3",
	    &s6.sin6_addr), 1);
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&s6, &a,
	    NULL), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(netaddr_classify(&a), NETADDR_PRIVATE);
	want = addr("10.1.2.3");
	assert_true(netaddr_equal(&a, &want));

	memset(&sx, 0, sizeof(sx));
	sx.sa_family = AF_UNIX;
	cb_error_clear(&err);
	assert_int_equal(netaddr_from_sockaddr(&sx, &a, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
}

/* Equality: by address, a mapped address being its IPv4 address. */
static void
test_equal_compares_mapped_as_ipv4(void **state)
{
	struct netaddr	a, b;

	(void)state;
	a = addr("127.0.0.1");
	b = addr("::ffff:127.0.0.1");
	assert_true(netaddr_equal(&a, &b));
	assert_true(netaddr_equal(&b, &a));
	b = addr("::127.0.0.1");
	assert_false(netaddr_equal(&a, &b));
	b = addr("127.0.0.2");
	assert_false(netaddr_equal(&a, &b));
	a = addr("2001:db8::1");
	b = addr("2001:DB8:0::1");
	assert_true(netaddr_equal(&a, &b));
	b = addr("2001:db8::2");
	assert_false(netaddr_equal(&a, &b));
	netaddr_unmap(&a, &b);
	assert_int_equal(b.family, AF_INET6);
	a = addr("::ffff:1.2.3.4");
	netaddr_unmap(&a, &a);
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, "\1\2\3\4", 4);
}

/* Blocks: parse and normal form. */
static void
test_block_parse_and_normal_form(void **state)
{
	static const struct {
		const char	*in, *want;
	} t[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "172.16.0.0/12", "172.16.0.0/12" },
		{ "127.0.0.1/32", "127.0.0.1/32" },
		{ "127.0.0.1", "127.0.0.1/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "fd00::/8", "fd00::/8" },
		{ "FD00:0::/8", "fd00::/8" },
		{ "::1", "::1/128" },
		{ "::/0", "::/0" },
		{ "2001:db8:0:0:0:0:0:1/128", "2001:db8::1/128" },
		{ "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104" },
		{ "100.64.0.0/10", "100.64.0.0/10" },
	};
	struct netblock	b;
	char		out[NETBLOCK_STRLEN];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		b = block(t[i].in);
		netblock_format(&b, out, sizeof(out));
		if (strcmp(out, t[i].want) != 0)
			fail_msg("block '%s' -> '%s', expected '%s'", t[i].in,
			    out, t[i].want);
		/* The normal form is a fixed point. */
		b = block(out);
		netblock_format(&b, out, sizeof(out));
		assert_string_equal(out, t[i].want);
	}
	b = block("10.0.0.0/8");
	assert_int_equal(b.prefix, 8);
	assert_int_equal(b.addr.family, AF_INET);
	b = block("fd00::1");
	assert_int_equal(b.prefix, 128);
	assert_int_equal(b.addr.family, AF_INET6);
}

static void
test_block_host_bits_refused(void **state)
{
	static const struct {
		const char	*in, *msg;
	} t[] = {
		{ "10.0.0.1/8",
		    "10.0.0.1/8 has host bits set; write 10.0.0.0/8" },
		{ "172.31.0.0/12",
		    "172.31.0.0/12 has host bits set; write 172.16.0.0/12" },
		{ "0.0.0.1/0", "0.0.0.1/0 has host bits set; write 0.0.0.0/0" },
		{ "fd00::1/8", "fd00::1/8 has host bits set; write fd00::/8" },
		{ "FD00::1/8", "FD00::1/8 has host bits set; write fd00::/8" },
		{ "::1/127", "::1/127 has host bits set; write ::/127" },
		{ "10.0.0.129/25",
		    "10.0.0.129/25 has host bits set; write 10.0.0.128/25" },
	};
	struct cb_error	err;
	struct netblock	b;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cb_error_clear(&err);
		assert_int_equal(netblock_parse(t[i].in, strlen(t[i].in), &b,
		    &err), -CB_EBADREQ);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_string_equal(err.msg, t[i].msg);
		assert_int_equal(b.addr.family, 0);
	}
	/* The last bit of the prefix is not a host bit. */
	block("10.0.0.128/25");
	block("::2/127");
}

static void
test_block_bad_syntax_refused(void **state)
{
	static const char *const refused[] = {
		"10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-8",
		"10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/1000",
		"::/129", "::/0128", "/8", "10.0.0/8", "0x0a.0.0.0/8",
		"10.0.0.0/8 ", "fd00::/8x", "host.example/8", "[fd00::]/8",
		"10.0.0.0/0x8",
	};
	struct cb_error	err;
	struct netblock	b;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		cb_error_clear(&err);
		if (netblock_parse(refused[i], strlen(refused[i]), &b,
		    &err) == 0)
			fail_msg("block '%s' accepted", refused[i]);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_true(strlen(err.msg) > 0);
	}
	cb_error_clear(&err);
	assert_int_equal(netblock_parse("10.0.0.0/33", 11, &b, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "address block '10.0.0.0/33' needs a "
	    "prefix length from 0 to 32 after '/'");
}

/* Containment at the first and last address and just outside. */
static void
test_block_contains_at_the_edges(void **state)
{
	(void)state;
	assert_false(contains("10.0.0.0/8", "9.255.255.255"));
	assert_true(contains("10.0.0.0/8", "10.0.0.0"));
	assert_true(contains("10.0.0.0/8", "10.255.255.255"));
	assert_false(contains("10.0.0.0/8", "11.0.0.0"));
	assert_false(contains("172.16.0.0/12", "172.15.255.255"));
	assert_true(contains("172.16.0.0/12", "172.16.0.0"));
	assert_true(contains("172.16.0.0/12", "172.31.255.255"));
	assert_false(contains("172.16.0.0/12", "172.32.0.0"));
	assert_true(contains("10.0.0.128/25", "10.0.0.128"));
	assert_true(contains("10.0.0.128/25", "10.0.0.255"));
	assert_false(contains("10.0.0.128/25", "10.0.0.127"));
	assert_true(contains("127.0.0.1/32", "127.0.0.1"));
	assert_false(contains("127.0.0.1/32", "127.0.0.2"));
	assert_false(contains("127.0.0.1/32", "127.0.0.0"));
	assert_true(contains("0.0.0.0/0", "0.0.0.0"));
	assert_true(contains("0.0.0.0/0", "255.255.255.255"));
	assert_false(contains("0.0.0.0/0", "::1"));

	assert_false(contains("fd00::/8", "fcff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff:ffff"));
	assert_true(contains("fd00::/8", "fd00::"));
	assert_true(contains("fd00::/8", "fdff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff:ffff"));
	assert_false(contains("fd00::/8", "fe00::"));
	assert_true(contains("::1/128", "::1"));
	assert_false(contains("::1/128", "::2"));
	assert_false(contains("::1/128", "::"));
	assert_true(contains("::/0", "::"));
	assert_true(contains("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff"));
	assert_false(contains("::/0", "10.0.0.1"));

	/* Mapped addresses are their IPv4 address, both ways. */
	assert_true(contains("10.0.0.0/8", "::ffff:10.0.0.1"));
	assert_false(contains("10.0.0.0/8", "::ffff:11.0.0.0"));
	assert_true(contains("127.0.0.1/32", "::ffff:127.0.0.1"));
	assert_true(contains("::ffff:10.0.0.0/104", "10.255.255.255"));
	assert_false(contains("::ffff:10.0.0.0/104", "11.0.0.0"));
	assert_true(contains("::ffff:10.0.0.0/104", "::ffff:10.0.0.1"));
	assert_true(contains("::ffff:0.0.0.0/96", "1.2.3.4"));
	/* Other embeddings are different addresses. */
	assert_false(contains("10.0.0.0/8", "::10.0.0.1"));
	assert_false(contains("10.0.0.0/8", "64:ff9b::10.0.0.1"));
	assert_false(contains("10.0.0.0/8", "2002:a00:1::"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_class_boundaries),
		cmocka_unit_test(test_ipv6_class_boundaries),
		cmocka_unit_test(test_embedded_ipv4_takes_its_class),
		cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_only_numeric_addresses_parse),
		cmocka_unit_test(test_format_is_canonical),
		cmocka_unit_test(test_from_sockaddr),
		cmocka_unit_test(test_equal_compares_mapped_as_ipv4),
		cmocka_unit_test(test_block_parse_and_normal_form),
		cmocka_unit_test(test_block_host_bits_refused),
		cmocka_unit_test(test_block_bad_syntax_refused),
		cmocka_unit_test(test_block_contains_at_the_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
