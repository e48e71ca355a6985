/*
 * netaddr: parsing, printing and classification of IP addresses and
 * address blocks (see netaddr.h).
 *
 * The class decides whether the broker may connect to a resolved address
 * on its own, so an IPv6 address that reaches an IPv4 host (mapped,
 * compatible, NAT64, 6to4) is judged by that host: "::ffff:127.0.0.1" is
 * loopback, not a public IPv6 address.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cb_error.h"
#include "netaddr.h"
#include "proto.h"

#define NETADDR_QUOTE_MAX	64	/* bytes of input quoted in a message */

/* A special range: family, base, prefix length, class. */
struct netaddr_range {
	int			family;
	unsigned char		base[16];
	unsigned		prefix;
	enum netaddr_class	cls;
};

static const struct netaddr_range netaddr_ranges[] = {
	{ AF_INET, { 0 }, 8, NETADDR_UNSPECIFIED },
	{ AF_INET, { 10 }, 8, NETADDR_PRIVATE },
	{ AF_INET, { 100, 64 }, 10, NETADDR_PRIVATE },
	{ AF_INET, { 127 }, 8, NETADDR_LOOPBACK },
	{ AF_INET, { 169, 254 }, 16, NETADDR_LINKLOCAL },
	{ AF_INET, { 172, 16 }, 12, NETADDR_PRIVATE },
	{ AF_INET, { 192, 0, 0 }, 24, NETADDR_RESERVED },
	{ AF_INET, { 192, 0, 2 }, 24, NETADDR_RESERVED },
	{ AF_INET, { 192, 168 }, 16, NETADDR_PRIVATE },
	{ AF_INET, { 198, 18 }, 15, NETADDR_RESERVED },
	{ AF_INET, { 198, 51, 100 }, 24, NETADDR_RESERVED },
	{ AF_INET, { 203, 0, 113 }, 24, NETADDR_RESERVED },
	{ AF_INET, { 224 }, 4, NETADDR_MULTICAST },
	{ AF_INET, { 240 }, 4, NETADDR_RESERVED },
	{ AF_INET6, { 0 }, 128, NETADDR_UNSPECIFIED },
	{ AF_INET6, { [15] = 1 }, 128, NETADDR_LOOPBACK },
	{ AF_INET6, { 0xfe, 0x80 }, 10, NETADDR_LINKLOCAL },
	{ AF_INET6, { 0xfe, 0xc0 }, 10, NETADDR_RESERVED },
	{ AF_INET6, { 0xfc }, 7, NETADDR_UNIQUELOCAL },
	{ AF_INET6, { 0xff }, 8, NETADDR_MULTICAST },
	{ AF_INET6, { 0x20, 0x01, 0x0d, 0xb8 }, 32, NETADDR_RESERVED },
};

static const char *const netaddr_class_names[] = {
	[NETADDR_PUBLIC] = "public",
	[NETADDR_LOOPBACK] = "loopback",
	[NETADDR_LINKLOCAL] = "link-local",
	[NETADDR_PRIVATE] = "private",
	[NETADDR_UNIQUELOCAL] = "unique-local",
	[NETADDR_MULTICAST] = "multicast",
	[NETADDR_UNSPECIFIED] = "unspecified",
	[NETADDR_RESERVED] = "reserved",
};

/* Do the first bits bits of a and b agree? */
static bool
netaddr_prefix_eq(const unsigned char *a, const unsigned char *b,
    unsigned bits)
{
	unsigned	full = bits / 8, rest = bits % 8;
	unsigned char	mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

/* Is the IPv6 address b IPv4-mapped, ::ffff:0:0/96? */
static bool
netaddr_is_mapped(const unsigned char *b)
{
	static const unsigned char pfx[12] = { [10] = 0xff, [11] = 0xff };

	return memcmp(b, pfx, sizeof(pfx)) == 0;
}

/* The class of family's address b by the table alone. */
static enum netaddr_class
netaddr_lookup(int family, const unsigned char *b)
{
	size_t	i;

	for (i = 0; i < sizeof(netaddr_ranges) / sizeof(netaddr_ranges[0]);
	    i++)
		if (netaddr_ranges[i].family == family &&
		    netaddr_prefix_eq(b, netaddr_ranges[i].base,
		    netaddr_ranges[i].prefix))
			return netaddr_ranges[i].cls;
	return NETADDR_PUBLIC;
}

/* Parse a numeric address. */
int
netaddr_parse(const char *s, size_t len, struct netaddr *a,
    struct cb_error *err)
{
	char	buf[NETADDR_STRLEN], qb[NETADDR_QUOTE_MAX + 4];

	memset(a, 0, sizeof(*a));
	if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
		goto bad;
	memcpy(buf, s, len);
	buf[len] = '\0';
	a->family = memchr(buf, ':', len) != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(a->family, buf, a->bytes) == 1)
		return 0;
 bad:
	memset(a, 0, sizeof(*a));
	return cb_error_set(err, CB_EBADREQ, "'%s' is not a numeric IPv4 or "
	    "IPv6 address", proto_quote(s, len > NETADDR_QUOTE_MAX ?
	    NETADDR_QUOTE_MAX : len, qb, sizeof(qb), true));
}

/* The address of a sockaddr. */
int
netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *a,
    struct cb_error *err)
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	memset(a, 0, sizeof(*a));
	switch (sa->sa_family) {
	case AF_INET:
		s4 = (const struct sockaddr_in *)(const void *)sa;
		a->family = AF_INET;
		memcpy(a->bytes, &s4->sin_addr, 4);
		return 0;
	case AF_INET6:
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		a->family = AF_INET6;
		memcpy(a->bytes, &s6->sin6_addr, 16);
		return 0;
	default:
		return cb_error_set(err, CB_EBADREQ, "address family %d is "
		    "not IPv4 or IPv6", (int)sa->sa_family);
	}
}

/* Print an address. */
void
netaddr_format(const struct netaddr *a, char *buf, size_t len)
{
	if (len == 0)
		return;
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		buf[0] = '\0';
}

/* Replace an IPv4-mapped address by its IPv4 address. */
void
netaddr_unmap(const struct netaddr *a, struct netaddr *out)
{
	struct netaddr	t;

	if (a->family == AF_INET6 && netaddr_is_mapped(a->bytes)) {
		memset(&t, 0, sizeof(t));
		t.family = AF_INET;
		memcpy(t.bytes, a->bytes + 12, 4);
		*out = t;
	} else if (out != a)
		*out = *a;
}

/* Same address, mapped IPv4 as IPv4? */
bool
netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
	struct netaddr	x, y;

	netaddr_unmap(a, &x);
	netaddr_unmap(b, &y);
	return x.family == y.family && memcmp(x.bytes, y.bytes,
	    x.family == AF_INET ? 4 : 16) == 0;
}

/*
 * The class of an address.  An IPv6 address that embeds an IPv4 address
 * takes the IPv4 address's class when that is special: a packet to it
 * reaches (or, through a translator or relay, may reach) that IPv4 host.
 */
enum netaddr_class
netaddr_classify(const struct netaddr *a)
{
	static const unsigned char	 nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	static const unsigned char	 zero[12];
	const unsigned char		*b = a->bytes, *v4 = NULL;
	enum netaddr_class		 own, emb;

	if (a->family == AF_INET)
		return netaddr_lookup(AF_INET, b);
	if (a->family != AF_INET6)
		return NETADDR_RESERVED;
	/* :: and ::1 are found here, before the compatible form. */
	if ((own = netaddr_lookup(AF_INET6, b)) != NETADDR_PUBLIC)
		return own;
	if (netaddr_is_mapped(b) || memcmp(b, zero, 12) == 0 ||
	    memcmp(b, nat64, 12) == 0)
		v4 = b + 12;
	else if (b[0] == 0x20 && b[1] == 0x02)
		v4 = b + 2;
	if (v4 != NULL && (emb = netaddr_lookup(AF_INET, v4)) !=
	    NETADDR_PUBLIC)
		return emb;
	return own;
}

/* A class's name. */
const char *
netaddr_class_name(enum netaddr_class c)
{
	if ((unsigned)c >= sizeof(netaddr_class_names) /
	    sizeof(netaddr_class_names[0]))
		return "unknown";
	return netaddr_class_names[c];
}

/* Parse an address block. */
int
netblock_parse(const char *s, size_t len, struct netblock *b,
    struct cb_error *err)
{
	struct netblock	 m;
	const char	*slash;
	char		 qb[NETADDR_QUOTE_MAX + 4], want[NETBLOCK_STRLEN];
	size_t		 alen, i, plen;
	unsigned	 max, prefix = 0;
	int		 rc;

	memset(b, 0, sizeof(*b));
	slash = memchr(s, '/', len);
	alen = slash != NULL ? (size_t)(slash - s) : len;
	if ((rc = netaddr_parse(s, alen, &b->addr, err)) != 0)
		return rc;
	max = b->addr.family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		b->prefix = max;
		return 0;
	}
	plen = len - alen - 1;
	if (plen == 0 || plen > 3 || (plen > 1 && slash[1] == '0'))
		goto badprefix;
	for (i = 0; i < plen; i++) {
		if (slash[1 + i] < '0' || slash[1 + i] > '9')
			goto badprefix;
		prefix = prefix * 10 + (unsigned)(slash[1 + i] - '0');
	}
	if (prefix > max)
		goto badprefix;
	b->prefix = prefix;

	/* The base must be the block's first address, as printed. */
	memset(&m, 0, sizeof(m));
	m.addr.family = b->addr.family;
	m.prefix = prefix;
	memcpy(m.addr.bytes, b->addr.bytes, prefix / 8);
	if (prefix % 8 != 0)
		m.addr.bytes[prefix / 8] = (unsigned char)(b->addr.bytes[
		    prefix / 8] & (0xff << (8 - prefix % 8)));
	if (memcmp(m.addr.bytes, b->addr.bytes, sizeof(m.addr.bytes)) != 0) {
		netblock_format(&m, want, sizeof(want));
		memset(b, 0, sizeof(*b));
		/* Both parts parsed, so the input is safe to quote. */
		return cb_error_set(err, CB_EBADREQ, "%.*s has host bits set; "
		    "write %s", (int)len, s, want);
	}
	return 0;

 badprefix:
	memset(b, 0, sizeof(*b));
	return cb_error_set(err, CB_EBADREQ, "address block '%s' needs a "
	    "prefix length from 0 to %u after '/'", proto_quote(s,
	    len > NETADDR_QUOTE_MAX ? NETADDR_QUOTE_MAX : len, qb, sizeof(qb),
	    true), max);
}

/* Is a inside b? */
bool
netblock_contains(const struct netblock *b, const struct netaddr *a)
{
	struct netaddr	x, base;
	unsigned	prefix = b->prefix;

	netaddr_unmap(a, &x);
	base = b->addr;
	if (base.family == AF_INET6 && prefix >= 96 &&
	    netaddr_is_mapped(base.bytes)) {
		netaddr_unmap(&b->addr, &base);
		prefix -= 96;
	}
	if (x.family != base.family)
		return false;
	return netaddr_prefix_eq(x.bytes, base.bytes, prefix);
}

/* Print a block. */
void
netblock_format(const struct netblock *b, char *buf, size_t len)
{
	char	t[NETADDR_STRLEN];

	netaddr_format(&b->addr, t, sizeof(t));
	snprintf(buf, len, "%s/%u", t, b->prefix);
}
