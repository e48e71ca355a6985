/*
 * origin: parsing, printing and matching of origins (see origin.h).
 *
 * This decides where a decrypted value may be sent, so it is strict in
 * the way that matters: anything in the authority that two URL parsers
 * might read differently (userinfo, backslashes, percent-encoding,
 * non-ASCII, odd numeric hosts) is refused outright rather than
 * interpreted, and matching compares parsed components, never prefixes,
 * so "https://api.github.com.evil.example" is not "https://api.github.com".
 * Only ASCII helpers are used: no ctype.h function depends on the locale
 * here.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "netaddr.h"
#include "origin.h"
#include "proto.h"

#define ORIGIN_DEST_MAX		512	/* a destination as given */
#define ORIGIN_URL_HOST_MAX	253	/* a DNS name in a URL */
#define ORIGIN_LABEL_MAX	63
#define ORIGIN_QUOTE_MAX	80	/* bytes of a URL quoted in a message */
#define ORIGIN_DEST_QUOTE_MAX	100	/* bytes of a destination quoted */

/* Why origin_scan refused its input. */
enum origin_fault {
	ORIGIN_OK,
	ORIGIN_FSCHEME,		/* not http:// or https:// */
	ORIGIN_FUSERINFO,	/* '@' in the authority */
	ORIGIN_FSPACE,		/* whitespace or a control character */
	ORIGIN_FNONASCII,
	ORIGIN_FPERCENT,
	ORIGIN_FBACKSLASH,
	ORIGIN_FNOHOST,		/* empty authority */
	ORIGIN_FLITERAL,	/* bad bracketed literal */
	ORIGIN_FBLOCK,		/* bad address block (quotes the block) */
	ORIGIN_FNAME,		/* bad host name (quotes the host) */
	ORIGIN_FIPV4,		/* ambiguous numeric host (quotes the host) */
	ORIGIN_FPORT,
	ORIGIN_FTRAILER		/* text after the authority */
};

/*
 * Byte classes of the authority scan, one table lookup per byte: what
 * ends the authority of a URL, and what is refused in it (whitespace
 * and controls, non-ASCII bytes, '%' and '\\'; origin_scan says which).
 */
#define ORIGIN_CEND	0x01
#define ORIGIN_CBAD	0x02

#define CB	ORIGIN_CBAD
#define CE	ORIGIN_CEND
static const unsigned char origin_cls[256] = {
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, 0, 0, CE, 0, CB, 0, 0, 0, 0, 0, 0, 0, 0, 0, CE,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, CE,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, CB, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
	CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB, CB,
};
#undef CB
#undef CE

/*
 * A host name's bytes in lower case (letters, digits, '-' and '_'; the
 * caller refuses '_' in a destination), 0 for any other byte.
 */
static const char origin_hostc[256] = {
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, '-', 0, 0,
	'0', '1', '2', '3', '4', '5', '6', '7',
	'8', '9', 0, 0, 0, 0, 0, 0,
	0, 'a', 'b', 'c', 'd', 'e', 'f', 'g',
	'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w',
	'x', 'y', 'z', 0, 0, 0, 0, '_',
	0, 'a', 'b', 'c', 'd', 'e', 'f', 'g',
	'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w',
	'x', 'y', 'z', 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
};

/* ASCII lower case, independent of the locale. */
static char
origin_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ASCII digit test, independent of the locale. */
static bool
origin_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ASCII hex digit test, independent of the locale. */
static bool
origin_is_xdigit(char c)
{
	return origin_is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* Compare n bytes ignoring ASCII case. */
bool
origin_ascii_caseeq(const char *a, const char *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (origin_lower(a[i]) != origin_lower(b[i]))
			return false;
	return true;
}

/* Is s a dotted-decimal IPv4 address: 4 parts, 0..255, no leading 0s? */
static bool
origin_ipv4_strict(const char *s)
{
	unsigned	v;
	int		parts = 0;
	size_t		d;

	for (;;) {
		for (d = 0, v = 0; origin_is_digit(s[d]); d++) {
			if (d == 3)
				return false;
			v = v * 10 + (unsigned)(s[d] - '0');
		}
		if (d == 0 || v > 255 || (d > 1 && s[0] == '0'))
			return false;
		parts++;
		s += d;
		if (*s == '\0')
			break;
		if (*s != '.' || parts == 4)
			return false;
		s++;
	}
	return parts == 4;
}

/*
 * Is the label of n bytes numeric in the sense of URL host parsers (all
 * digits, or "0x" followed by hex digits)?  Such a last label makes the
 * whole host an IPv4 address to them.
 */
static bool
origin_label_numeric(const char *s, size_t n)
{
	size_t	i;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!origin_is_xdigit(s[i]))
				return false;
		return true;
	}
	for (i = 0; i < n; i++)
		if (!origin_is_digit(s[i]))
			return false;
	return n > 0;
}

/*
 * Check and normalise a host name or IPv4 address of n bytes into o->host:
 * lower case, one trailing dot dropped (a normal form has none).  URLs
 * allow '_' in labels (underscores occur in real internal names;
 * destinations never contain one, so such hosts only pass types without
 * destinations) and refuse ambiguous numeric hosts; destinations allow a
 * leading "*." and refuse labels that start or end with '-'.  *qn: the
 * length to quote.
 */
static enum origin_fault
origin_name(const char *s, size_t n, int flags, struct origin *o, size_t *qn)
{
	size_t	i, lstart, last = 0;
	char	c;

	*qn = n;
	if (n > 0 && s[n - 1] == '.') {
		if (flags & ORIGIN_NORMAL)
			return ORIGIN_FNAME;
		*qn = --n;
	}
	if (flags & ORIGIN_DEST) {
		/* A wildcard must leave at least two labels: no "*.com". */
		if (n >= 2 && s[0] == '*' && s[1] == '.') {
			if (memchr(s + 2, '.', n - 2) == NULL)
				return ORIGIN_FNAME;
			o->wild = true;
			s += 2;
			n -= 2;
		}
		if (n == 0 || n > ORIGIN_HOST_MAX)
			return ORIGIN_FNAME;
	} else if (n == 0 || n > ORIGIN_URL_HOST_MAX)
		return ORIGIN_FNAME;
	lstart = 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (i == lstart || i - lstart > ORIGIN_LABEL_MAX)
				return ORIGIN_FNAME;
			if ((flags & ORIGIN_DEST) &&
			    (s[lstart] == '-' || s[i - 1] == '-'))
				return ORIGIN_FNAME;
			last = lstart;
			lstart = i + 1;
			if (i < n)
				o->host[i] = '.';
			continue;
		}
		c = origin_hostc[(unsigned char)s[i]];
		if (c == '\0' || (c == '_' && (flags & ORIGIN_DEST)))
			return ORIGIN_FNAME;
		o->host[i] = c;
	}
	o->host[n] = '\0';

	/*
	 * URL parsers read a host whose last label is numeric as an IPv4
	 * address, in forms resolvers disagree about; a URL may use only the
	 * one unambiguous form.
	 */
	if (origin_label_numeric(o->host + last, n - last)) {
		if (!(flags & ORIGIN_DEST) && !origin_ipv4_strict(o->host))
			return ORIGIN_FIPV4;
		o->ipv4 = true;
	}
	return ORIGIN_OK;
}

/*
 * A bracketed IPv6 literal, or in a destination an address block, at the
 * start of the authority (alen bytes) into o->host in canonical form;
 * *rest: the byte after ']'; *q, *qn: the block refused.
 */
static enum origin_fault
origin_literal(const char *auth, size_t alen, int flags, struct origin *o,
    const char **rest, const char **q, size_t *qn)
{
	char		 v6[INET6_ADDRSTRLEN], nb[NETBLOCK_STRLEN];
	struct in6_addr	 a6;
	const char	*rb;
	size_t		 hlen;

	if ((rb = memchr(auth, ']', alen)) == NULL)
		return ORIGIN_FLITERAL;
	hlen = (size_t)(rb - auth - 1);
	if ((flags & ORIGIN_DEST) && memchr(auth + 1, '/', hlen) != NULL) {
		if (netblock_parse(auth + 1, hlen, &o->net, NULL) != 0) {
			*q = auth + 1;
			*qn = hlen;
			return ORIGIN_FBLOCK;
		}
		netblock_format(&o->net, nb, sizeof(nb));
		snprintf(o->host, sizeof(o->host), "[%s]", nb);
		o->block = true;
		*rest = rb + 1;
		return ORIGIN_OK;
	}
	if (hlen == 0 || hlen >= sizeof(v6))
		return ORIGIN_FLITERAL;
	memcpy(v6, auth + 1, hlen);
	v6[hlen] = '\0';
	if (inet_pton(AF_INET6, v6, &a6) != 1 ||
	    inet_ntop(AF_INET6, &a6, v6, sizeof(v6)) == NULL)
		return ORIGIN_FLITERAL;
	snprintf(o->host, sizeof(o->host), "[%s]", v6);
	o->ipv6 = true;
	*rest = rb + 1;
	return ORIGIN_OK;
}

/*
 * Parse len bytes of s into *o (see origin_parse); on failure, *q and *qn
 * say what a message should quote.
 */
static enum origin_fault
origin_scan(const char *s, size_t len, int flags, struct origin *o,
    const char **q, size_t *qn)
{
	const char		*auth, *pp = NULL, *rest;
	size_t			 a, i, alen, hlen, plen = 0, hq;
	unsigned long		 port = 0;
	enum origin_fault	 f;

	*q = s;
	*qn = 0;
	if (len >= 8 && ((flags & ORIGIN_NORMAL) ?
	    memcmp(s, "https://", 8) == 0 :
	    origin_ascii_caseeq(s, "https://", 8))) {
		memcpy(o->scheme, "https", 6);
		o->port = 443;
		a = 8;
	} else if (len >= 7 && ((flags & ORIGIN_NORMAL) ?
	    memcmp(s, "http://", 7) == 0 :
	    origin_ascii_caseeq(s, "http://", 7))) {
		memcpy(o->scheme, "http", 5);
		o->port = 80;
		a = 7;
	} else
		return ORIGIN_FSCHEME;

	/* The '/' of a destination's "[address/prefix]" is not a path. */
	i = a;
	if ((flags & ORIGIN_DEST) && i < len && s[i] == '[' &&
	    (rest = memchr(s + i, ']', len - i)) != NULL)
		i = (size_t)(rest - s);
	for (; i < len; i++)
		if (origin_cls[(unsigned char)s[i]] & ORIGIN_CEND)
			break;
	auth = s + a;
	alen = i - a;
	*q = auth;
	*qn = alen;
	if (i < len && (!(flags & ORIGIN_URL) || (flags & ORIGIN_NORMAL)))
		return ORIGIN_FTRAILER;

	/*
	 * Refuse, rather than strip, userinfo: the destination check must
	 * see the host that the HTTP client will connect to, and "a@b"
	 * (or "a\@b") is exactly where parsers have disagreed.
	 */
	if (memchr(auth, '@', alen) != NULL)
		return ORIGIN_FUSERINFO;
	for (i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)auth[i];

		if (!(origin_cls[c] & ORIGIN_CBAD))
			continue;
		if (c <= 0x20 || c == 0x7f)
			return ORIGIN_FSPACE;
		if (c >= 0x80)
			return ORIGIN_FNONASCII;
		if (c == '%')
			return ORIGIN_FPERCENT;
		if (c == '\\')
			return ORIGIN_FBACKSLASH;
	}
	if (alen == 0)
		return ORIGIN_FNOHOST;

	if (auth[0] == '[') {
		if ((f = origin_literal(auth, alen, flags, o, &rest, q,
		    qn)) != ORIGIN_OK)
			return f;
		if (rest < auth + alen) {
			if (*rest != ':')
				return ORIGIN_FLITERAL;
			pp = rest + 1;
			plen = (size_t)(auth + alen - pp);
		}
	} else {
		if ((pp = memchr(auth, ':', alen)) != NULL) {
			hlen = (size_t)(pp - auth);
			pp++;
			plen = (size_t)(auth + alen - pp);
		} else
			hlen = alen;
		if ((f = origin_name(auth, hlen, flags, o, &hq)) !=
		    ORIGIN_OK) {
			*qn = hq;
			return f;
		}
	}

	if (pp != NULL) {
		if (plen == 0)
			return ORIGIN_FPORT;
		for (i = 0; i < plen; i++) {
			if (!origin_is_digit(pp[i]))
				return ORIGIN_FPORT;
			port = port * 10 + (unsigned long)(pp[i] - '0');
			if (port > 65535)
				return ORIGIN_FPORT;
		}
		if (port == 0)
			return ORIGIN_FPORT;
		o->port = (unsigned)port;
	}
	return ORIGIN_OK;
}

/* Parse an origin, a destination or a URL's origin. */
int
origin_parse(const char *s, size_t len, int flags, struct origin *o,
    struct cb_error *err)
{
	char			 qb[ORIGIN_QUOTE_MAX + 4];
	struct cb_error		 berr;
	struct netblock		 nb;
	const char		*q;
	size_t			 qn;
	enum origin_fault	 f;

	memset(o, 0, sizeof(*o));
	if (flags & ORIGIN_DEST) {
		if (len == 0 || len > ORIGIN_DEST_MAX)
			return cb_error_set(err, CB_EBADREQ, "destination "
			    "must be 1 to %d characters", ORIGIN_DEST_MAX);
		if (!(flags & ORIGIN_NORMAL) && s[len - 1] == '/')
			len--;
		if ((f = origin_scan(s, len, flags, o, &q, &qn)) == ORIGIN_OK)
			return 0;
		memset(o, 0, sizeof(*o));
		/* Say why a block is refused: "... has host bits set". */
		if (f == ORIGIN_FBLOCK &&
		    netblock_parse(q, qn, &nb, &berr) != 0)
			return cb_error_set(err, CB_EBADREQ, "destination "
			    "'%.*s': %s", (int)(len > ORIGIN_DEST_QUOTE_MAX ?
			    ORIGIN_DEST_QUOTE_MAX : len), s, berr.msg);
		return cb_error_set(err, CB_EBADREQ, "destination '%.*s' is "
		    "not an origin of the form https://host[:port] (host may "
		    "start with '*.')", (int)(len > ORIGIN_DEST_QUOTE_MAX ?
		    ORIGIN_DEST_QUOTE_MAX : len), s);
	}

	if ((f = origin_scan(s, len, flags, o, &q, &qn)) == ORIGIN_OK)
		return 0;
	memset(o, 0, sizeof(*o));
	switch (f) {
	case ORIGIN_FSCHEME:
		return cb_error_set(err, CB_EBADREQ,
		    "URL must start with http:// or https://");
	case ORIGIN_FUSERINFO:
		return cb_error_set(err, CB_EBADREQ,
		    "URL must not contain userinfo (user@ or user:password@)");
	case ORIGIN_FSPACE:
		return cb_error_set(err, CB_EBADREQ, "URL authority '%s' "
		    "contains whitespace or control characters",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FNONASCII:
		return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not "
		    "ASCII: write an internationalised domain name in its "
		    "punycode form (xn--...)",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FPERCENT:
		return cb_error_set(err, CB_EBADREQ, "URL host '%s' must not "
		    "be percent-encoded",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FBACKSLASH:
		return cb_error_set(err, CB_EBADREQ, "URL authority '%s' must "
		    "not contain a backslash",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FNOHOST:
		return cb_error_set(err, CB_EBADREQ, "URL has no host");
	case ORIGIN_FLITERAL:
		return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not a "
		    "valid host name or address",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FNAME:
		return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not a "
		    "valid host name",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FIPV4:
		return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not a "
		    "valid IPv4 address: write it as four decimal numbers (0 "
		    "to 255) without leading zeros",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FPORT:
		return cb_error_set(err, CB_EBADREQ, "URL port in '%s' must "
		    "be a number from 1 to 65535",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	case ORIGIN_FTRAILER:
		return cb_error_set(err, CB_EBADREQ, "origin '%s' has a path, "
		    "query or fragment",
		    proto_quote(q, qn, qb, sizeof(qb), true));
	default:
		return cb_error_set(err, CB_EINTERNAL, "origin parser fault");
	}
}

/* Write an origin in normal form, malloc'd. */
int
origin_format(const struct origin *o, char **out, struct cb_error *err)
{
	char	buf[ORIGIN_TEXT_MAX];
	size_t	n;

	n = origin_text(o, buf);
	if ((*out = malloc(n + 1)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	memcpy(*out, buf, n + 1);
	return 0;
}

/* The same into a buffer (by hand: this runs for every call). */
size_t
origin_text(const struct origin *o, char *buf)
{
	char		 port[8];
	size_t		 slen, hlen, plen = 0, i;
	unsigned	 defport, v;
	char		*p = buf;

	defport = strcmp(o->scheme, "https") == 0 ? 443 : 80;
	if (o->port != defport) {
		i = sizeof(port);
		v = o->port;
		do {
			port[--i] = (char)('0' + v % 10);
			v /= 10;
		} while (v > 0 && i > 1);
		port[--i] = ':';
		plen = sizeof(port) - i;
		memmove(port, port + i, plen);
	}
	slen = strlen(o->scheme);
	hlen = strlen(o->host);
	memcpy(p, o->scheme, slen);
	p += slen;
	memcpy(p, "://", 3);
	p += 3;
	if (o->wild) {
		memcpy(p, "*.", 2);
		p += 2;
	}
	memcpy(p, o->host, hlen);
	p += hlen;
	memcpy(p, port, plen);
	p[plen] = '\0';
	return (size_t)(p + plen - buf);
}

/* Same origin? */
bool
origin_equal(const struct origin *a, const struct origin *b)
{
	return strcmp(a->scheme, b->scheme) == 0 &&
	    strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    a->wild == b->wild && a->block == b->block;
}

/* Does destination d allow origin o? */
bool
origin_match(const struct origin *d, const struct origin *o)
{
	struct netaddr	a;
	size_t		hl, sl;

	if (o->wild || o->block || strcmp(o->scheme, d->scheme) != 0 ||
	    o->port != d->port)
		return false;
	/* A block allows the IP literals inside it, never a host name. */
	if (d->block)
		return origin_addr(o, &a) == 0 &&
		    netblock_contains(&d->net, &a);
	if (!d->wild)
		return strcmp(o->host, d->host) == 0;
	/*
	 * "*.suffix": the host must end in ".suffix" -- the dot is what
	 * keeps "evilgithub.com" out of "*.github.com" -- with a label
	 * before it.  An address is never a subdomain.
	 */
	if (o->ipv4 || o->ipv6)
		return false;
	hl = strlen(o->host);
	sl = strlen(d->host);
	return hl > sl + 1 && o->host[hl - sl - 1] == '.' &&
	    strcmp(o->host + hl - sl, d->host) == 0;
}

/* The address of an IP literal host. */
int
origin_addr(const struct origin *o, struct netaddr *a)
{
	size_t	n = strlen(o->host);

	memset(a, 0, sizeof(*a));
	if (o->wild || o->block || !(o->ipv4 || o->ipv6))
		return -CB_EBADREQ;
	if (o->ipv6)	/* "[...]" */
		return n < 2 ? -CB_EBADREQ :
		    netaddr_parse(o->host + 1, n - 2, a, NULL);
	return netaddr_parse(o->host, n, a, NULL);
}
