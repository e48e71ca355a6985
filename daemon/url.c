/*
 * url: origins of request URLs and the destination check (SPEC 5.2).
 *
 * This decides where a decrypted value may be sent, so it is strict in
 * the way that matters: anything in the authority that two URL parsers
 * might read differently (userinfo, backslashes, percent-encoding,
 * non-ASCII, odd numeric hosts) is refused outright rather than
 * interpreted, and matching compares parsed components, never prefixes,
 * so "https://api.github.com.evil.example" is not "https://api.github.com".
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb_error.h"
#include "url.h"

#define URL_HOST_MAX	253	/* a DNS name; also bounds IPv6 text */
#define URL_LABEL_MAX	63
#define URL_QUOTE_MAX	80	/* bytes of authority quoted in a message */
#define URL_AUTH_MAX	(URL_HOST_MAX + 8)	/* host, [], ":port" */

/* Headers that route or frame a request; see url_routing_header. */
static const char *const url_routing[] = {
	"host", ":authority", ":scheme", ":path", ":method", ":protocol",
	"forwarded", "x-forwarded-host", "x-forwarded-server",
	"x-forwarded-proto", "x-forwarded-port", "x-forwarded-scheme",
	"x-forwarded-prefix", "x-host", "x-http-host-override",
	"x-original-host", "x-original-url", "x-rewrite-url",
	"x-http-method-override", "x-http-method", "x-method-override",
	"connection", "keep-alive", "te", "transfer-encoding", "upgrade",
	NULL
};

/* The parts of an origin in normal form. */
struct url_parts {
	char	 scheme[6];		/* "http" or "https" */
	char	 host[URL_HOST_MAX + 3];	/* IPv6 with brackets */
	unsigned port;			/* explicit or default */
	bool	 wild;			/* host was "*.host" */
	bool	 ipv4;
	bool	 ipv6;
};

/* ASCII lower case, independent of the locale. */
static char
url_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ASCII digit test, independent of the locale. */
static bool
url_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ASCII hex digit test, independent of the locale. */
static bool
url_is_xdigit(char c)
{
	return url_is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* Copy n bytes into buf (URL_QUOTE_MAX + 4) for a message, '?' for odd. */
static const char *
url_quote(const char *s, size_t n, char *buf)
{
	size_t	i, m;

	m = n > URL_QUOTE_MAX ? URL_QUOTE_MAX : n;
	for (i = 0; i < m; i++)
		buf[i] = ((unsigned char)s[i] >= 0x20 &&
		    (unsigned char)s[i] < 0x7f) ? s[i] : '?';
	if (m < n) {
		memcpy(buf + m, "...", 3);
		m += 3;
	}
	buf[m] = '\0';
	return buf;
}

/* Does s (n bytes) start with the ASCII prefix p, ignoring case? */
static bool
url_has_prefix(const char *s, size_t n, const char *p)
{
	size_t	pl = strlen(p);

	return n >= pl && strncasecmp(s, p, pl) == 0;
}

/* Is s a dotted-decimal IPv4 address: 4 parts, 0..255, no leading 0s? */
static bool
url_ipv4_strict(const char *s)
{
	unsigned	v;
	int		parts = 0;
	size_t		d;

	for (;;) {
		for (d = 0, v = 0; url_is_digit(s[d]); d++) {
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
url_label_numeric(const char *s, size_t n)
{
	size_t	i = 0;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!url_is_xdigit(s[i]))
				return false;
		return true;
	}
	for (i = 0; i < n; i++)
		if (!url_is_digit(s[i]))
			return false;
	return n > 0;
}

/*
 * Check and normalise a reg-name or IPv4 host of n bytes into out
 * (URL_HOST_MAX + 1): lower case, one trailing dot dropped, labels of
 * [a-z0-9_-] (underscores occur in real internal names; destinations
 * never contain one, so such hosts only pass types without destinations).
 */
static int
url_host_name(const char *s, size_t n, char *out, bool *ipv4,
    struct cb_error *err)
{
	char	 q[URL_QUOTE_MAX + 4];
	size_t	 i, lstart, last = 0;

	*ipv4 = false;
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > URL_HOST_MAX)
		goto bad;
	lstart = 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (i == lstart || i - lstart > URL_LABEL_MAX)
				goto bad;
			last = lstart;
			lstart = i + 1;
			if (i < n)
				out[i] = '.';
			continue;
		}
		out[i] = url_lower(s[i]);
		if (!url_is_digit(s[i]) && !(out[i] >= 'a' && out[i] <= 'z') &&
		    s[i] != '-' && s[i] != '_')
			goto bad;
	}
	out[n] = '\0';

	/*
	 * URL parsers read a host whose last label is numeric as an IPv4
	 * address, in forms resolvers disagree about; accept only the one
	 * unambiguous form.
	 */
	if (url_label_numeric(out + last, n - last)) {
		if (!url_ipv4_strict(out))
			return cb_error_set(err, CB_EBADREQ, "URL host '%s' is "
			    "not a valid IPv4 address: write it as four "
			    "decimal numbers (0 to 255) without leading zeros",
			    url_quote(s, n, q));
		*ipv4 = true;
	}
	return 0;
bad:
	return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not a valid "
	    "host name", url_quote(s, n, q));
}

/* Parse an absolute http(s) URL and return its normalised origin. */
int
url_origin(const char *url, size_t len, char **origin, struct cb_error *err)
{
	char		 q[URL_QUOTE_MAX + 4];
	char		 host[URL_HOST_MAX + 3], v6[INET6_ADDRSTRLEN];
	struct in6_addr	 a6;
	const char	*scheme, *auth, *hp, *pp = NULL, *rb;
	size_t		 i, a, alen, hlen, plen = 0;
	unsigned long	 port = 0, defport;
	bool		 ipv4;
	int		 rc, r;

	*origin = NULL;
	if (url_has_prefix(url, len, "https://")) {
		scheme = "https";
		defport = 443;
		a = 8;
	} else if (url_has_prefix(url, len, "http://")) {
		scheme = "http";
		defport = 80;
		a = 7;
	} else
		return cb_error_set(err, CB_EBADREQ,
		    "URL must start with http:// or https://");

	for (i = a; i < len; i++)
		if (url[i] == '/' || url[i] == '?' || url[i] == '#')
			break;
	auth = url + a;
	alen = i - a;

	/*
	 * Refuse, rather than strip, userinfo: the destination check must
	 * see the host that the HTTP client will connect to, and "a@b"
	 * (or "a\@b") is exactly where parsers have disagreed.
	 */
	if (memchr(auth, '@', alen) != NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "URL must not contain userinfo (user@ or user:password@)");
	for (i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)auth[i];
		if (c <= 0x20 || c == 0x7f)
			return cb_error_set(err, CB_EBADREQ, "URL authority "
			    "'%s' contains whitespace or control characters",
			    url_quote(auth, alen, q));
		if (c >= 0x80)
			return cb_error_set(err, CB_EBADREQ, "URL host '%s' "
			    "is not ASCII: write an internationalised domain "
			    "name in its punycode form (xn--...)",
			    url_quote(auth, alen, q));
		if (c == '%')
			return cb_error_set(err, CB_EBADREQ, "URL host '%s' "
			    "must not be percent-encoded",
			    url_quote(auth, alen, q));
		if (c == '\\')
			return cb_error_set(err, CB_EBADREQ, "URL authority "
			    "'%s' must not contain a backslash",
			    url_quote(auth, alen, q));
	}
	if (alen == 0)
		return cb_error_set(err, CB_EBADREQ, "URL has no host");

	if (auth[0] == '[') {
		if ((rb = memchr(auth, ']', alen)) == NULL)
			goto badhost;
		hp = auth + 1;
		hlen = (size_t)(rb - hp);
		if (hlen == 0 || hlen >= sizeof(v6))
			goto badhost;
		memcpy(v6, hp, hlen);
		v6[hlen] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1 ||
		    inet_ntop(AF_INET6, &a6, v6, sizeof(v6)) == NULL)
			goto badhost;
		snprintf(host, sizeof(host), "[%s]", v6);
		if (rb + 1 < auth + alen) {
			if (rb[1] != ':')
				goto badhost;
			pp = rb + 2;
			plen = (size_t)(auth + alen - pp);
		}
	} else {
		hp = auth;
		if ((pp = memchr(auth, ':', alen)) != NULL) {
			hlen = (size_t)(pp - auth);
			pp++;
			plen = (size_t)(auth + alen - pp);
		} else
			hlen = alen;
		if ((rc = url_host_name(hp, hlen, host, &ipv4, err)) != 0)
			return rc;
	}

	if (pp != NULL) {
		if (plen == 0)
			goto badport;
		for (i = 0; i < plen; i++) {
			if (!url_is_digit(pp[i]))
				goto badport;
			port = port * 10 + (unsigned long)(pp[i] - '0');
			if (port > 65535)
				goto badport;
		}
		if (port == 0)
			goto badport;
	}
	if (pp == NULL || port == defport)
		r = asprintf(origin, "%s://%s", scheme, host);
	else
		r = asprintf(origin, "%s://%s:%lu", scheme, host, port);
	if (r < 0) {
		*origin = NULL;
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	return 0;
badhost:
	return cb_error_set(err, CB_EBADREQ, "URL host '%s' is not a valid "
	    "host name or address", url_quote(auth, alen, q));
badport:
	return cb_error_set(err, CB_EBADREQ, "URL port in '%s' must be a "
	    "number from 1 to 65535", url_quote(auth, alen, q));
}

/*
 * Split an origin in normal form into p.  Lenient about nothing: returns
 * false for anything not of the shape dest_normalize/url_origin produce,
 * and the caller then treats it as "no match".
 */
static bool
url_split(const char *s, struct url_parts *p)
{
	const char	*h, *e;
	unsigned long	 port = 0;
	size_t		 n, i;

	memset(p, 0, sizeof(*p));
	if (strncmp(s, "https://", 8) == 0) {
		memcpy(p->scheme, "https", 6);
		p->port = 443;
		h = s + 8;
	} else if (strncmp(s, "http://", 7) == 0) {
		memcpy(p->scheme, "http", 5);
		p->port = 80;
		h = s + 7;
	} else
		return false;
	if (*h == '[') {
		if ((e = strchr(h, ']')) == NULL)
			return false;
		e++;
		p->ipv6 = true;
	} else
		e = h + strcspn(h, ":");
	n = (size_t)(e - h);
	if (n == 0 || n >= sizeof(p->host))
		return false;
	for (i = 0; i < n; i++)
		p->host[i] = url_lower(h[i]);
	p->host[n] = '\0';
	if (*e == ':') {
		for (e++, i = 0; url_is_digit(e[i]); i++)
			if ((port = port * 10 + (unsigned long)(e[i] - '0')) >
			    65535)
				return false;
		if (i == 0 || e[i] != '\0' || port == 0)
			return false;
		p->port = (unsigned)port;
	} else if (*e != '\0')
		return false;
	if (strncmp(p->host, "*.", 2) == 0) {
		p->wild = true;
		memmove(p->host, p->host + 2, n - 1);
		if (p->host[0] == '\0')
			return false;
	}
	if (!p->ipv6) {
		const char *last = strrchr(p->host, '.');
		last = last ? last + 1 : p->host;
		p->ipv4 = url_label_numeric(last, strlen(last));
	}
	return true;
}

/* Same IPv6 address, whatever text form each side was written in? */
static bool
url_same_ipv6(const char *a, const char *b)
{
	char		x[INET6_ADDRSTRLEN + 2], y[INET6_ADDRSTRLEN + 2];
	struct in6_addr	xa, ya;
	size_t		la = strlen(a), lb = strlen(b);

	if (la < 3 || lb < 3 || la - 2 >= sizeof(x) || lb - 2 >= sizeof(y))
		return false;
	memcpy(x, a + 1, la - 2);
	x[la - 2] = '\0';
	memcpy(y, b + 1, lb - 2);
	y[lb - 2] = '\0';
	return inet_pton(AF_INET6, x, &xa) == 1 &&
	    inet_pton(AF_INET6, y, &ya) == 1 &&
	    memcmp(&xa, &ya, sizeof(xa)) == 0;
}

/* Match an origin against a type's destinations. */
bool
url_origin_allowed(const char *origin, char *const *destinations, size_t n)
{
	struct url_parts	o, d;
	size_t			i, hl, sl;

	if (n == 0)
		return true;
	if (!url_split(origin, &o) || o.wild)
		return false;
	hl = strlen(o.host);
	for (i = 0; i < n; i++) {
		if (destinations[i] == NULL || !url_split(destinations[i], &d))
			continue;
		if (strcmp(o.scheme, d.scheme) != 0 || o.port != d.port)
			continue;
		if (d.wild) {
			/*
			 * "*.suffix": the host must end in ".suffix" -- the
			 * dot is what keeps "evilgithub.com" out of
			 * "*.github.com" -- with a label before it.  An
			 * address is never a subdomain.
			 */
			if (o.ipv4 || o.ipv6)
				continue;
			sl = strlen(d.host);
			if (hl > sl + 1 && o.host[hl - sl - 1] == '.' &&
			    strcmp(o.host + hl - sl, d.host) == 0)
				return true;
		} else if (o.ipv6 || d.ipv6) {
			if (o.ipv6 && d.ipv6 && url_same_ipv6(o.host, d.host))
				return true;
		} else if (strcmp(o.host, d.host) == 0)
			return true;
	}
	return false;
}

/* Is this a routing or hop-by-hop header? */
bool
url_routing_header(const char *name, size_t n)
{
	size_t	i;

	if (url_has_prefix(name, n, "proxy-"))
		return true;
	for (i = 0; url_routing[i] != NULL; i++)
		if (strlen(url_routing[i]) == n &&
		    strncasecmp(name, url_routing[i], n) == 0)
			return true;
	return false;
}

/* Does a Host value name the origin's own host and port? */
bool
url_authority_matches(const char *origin, const char *value, size_t n)
{
	struct cb_error	 e;
	char		 buf[sizeof("https://") + URL_AUTH_MAX];
	char		*o = NULL;
	size_t		 i;
	int		 len;
	bool		 ok;

	while (n > 0 && (value[0] == ' ' || value[0] == '\t')) {
		value++;
		n--;
	}
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0 || n > URL_AUTH_MAX)
		return false;
	/*
	 * Only an authority: url_origin would stop at '/', '?' or '#' and
	 * ignore what follows, and "%.*s" would stop at a NUL.
	 */
	for (i = 0; i < n; i++)
		if (value[i] == '/' || value[i] == '?' || value[i] == '#' ||
		    (unsigned char)value[i] <= 0x20 || value[i] == 0x7f)
			return false;
	len = snprintf(buf, sizeof(buf), "%s://%.*s",
	    strncmp(origin, "https://", 8) == 0 ? "https" : "http", (int)n,
	    value);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return false;
	if (url_origin(buf, (size_t)len, &o, &e) != 0)
		return false;
	ok = strcmp(o, origin) == 0;
	free(o);
	return ok;
}
