/*
 * url: origins of request URLs and the destination check (SPEC 5.2), on
 * top of the one origin parser (origin.h): a URL's origin, a type's
 * destinations and a Host header are all parsed by it and compared as
 * parsed origins, never as prefixes, so "https://api.github.com.evil.example"
 * is not "https://api.github.com".
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "origin.h"
#include "url.h"

#define URL_HOST_MAX	253	/* a DNS name; also bounds IPv6 text */
#define URL_AUTH_MAX	(URL_HOST_MAX + 8)	/* host, [], ":port" */

/* Headers that route or frame a request; see url_routing_header. */
#define URL_HDR(s)	{ s, sizeof(s) - 1 }
static const struct {
	const char	*name;
	size_t		 len;
} url_routing[] = {
	URL_HDR("host"), URL_HDR(":authority"), URL_HDR(":scheme"),
	URL_HDR(":path"), URL_HDR(":method"), URL_HDR(":protocol"),
	URL_HDR("forwarded"), URL_HDR("x-forwarded-host"),
	URL_HDR("x-forwarded-server"), URL_HDR("x-forwarded-proto"),
	URL_HDR("x-forwarded-port"), URL_HDR("x-forwarded-scheme"),
	URL_HDR("x-forwarded-prefix"), URL_HDR("x-host"),
	URL_HDR("x-http-host-override"), URL_HDR("x-original-host"),
	URL_HDR("x-original-url"), URL_HDR("x-rewrite-url"),
	URL_HDR("x-http-method-override"), URL_HDR("x-http-method"),
	URL_HDR("x-method-override"), URL_HDR("connection"),
	URL_HDR("keep-alive"), URL_HDR("te"), URL_HDR("transfer-encoding"),
	URL_HDR("upgrade"),
	{ NULL, 0 }
};
#undef URL_HDR

/* Parse an absolute http(s) URL and return its normalised origin. */
int
url_origin(const char *url, size_t len, char **origin, struct cb_error *err)
{
	struct origin	o;
	int		rc;

	*origin = NULL;
	if ((rc = origin_parse(url, len, ORIGIN_URL, &o, err)) != 0)
		return rc;
	return origin_format(&o, origin, err);
}

/*
 * Match an origin against a type's destinations.  Both sides are parsed
 * as normal forms (ORIGIN_NORMAL): anything not of the shape url_origin
 * and dest_normalize produce is "no match".
 */
bool
url_origin_allowed(const char *origin, char *const *destinations, size_t n)
{
	struct origin	o;

	if (n == 0)
		return true;
	if (origin_parse(origin, strlen(origin), ORIGIN_URL | ORIGIN_NORMAL,
	    &o, NULL) != 0)
		return false;
	return url_origin_allowed_parsed(&o, destinations, n);
}

/* The same check of an origin that is already parsed. */
bool
url_origin_allowed_parsed(const struct origin *o, char *const *destinations,
    size_t n)
{
	struct origin	d;
	size_t		i;

	if (n == 0)
		return true;
	for (i = 0; i < n; i++) {
		if (destinations[i] == NULL ||
		    origin_parse(destinations[i], strlen(destinations[i]),
		    ORIGIN_DEST | ORIGIN_NORMAL, &d, NULL) != 0)
			continue;
		if (origin_match(&d, o))
			return true;
	}
	return false;
}

/* Is this a routing or hop-by-hop header? */
bool
url_routing_header(const char *name, size_t n)
{
	size_t	i;

	/*
	 * Every name here starts with one of these, in either case (| 0x20
	 * lowers a letter and keeps ':'): most headers stop at this.
	 */
	if (n == 0 || strchr("h:fxcktup", name[0] | 0x20) == NULL)
		return false;
	if (n >= 6 && origin_ascii_caseeq(name, "proxy-", 6))
		return true;
	/* The lengths first: this runs for every header of every call. */
	for (i = 0; url_routing[i].name != NULL; i++)
		if (url_routing[i].len == n &&
		    origin_ascii_caseeq(name, url_routing[i].name, n))
			return true;
	return false;
}

/* Does a Host value name the origin's own host and port? */
bool
url_authority_matches(const char *origin, const char *value, size_t n)
{
	struct origin	 o;

	if (origin_parse(origin, strlen(origin), ORIGIN_URL | ORIGIN_NORMAL,
	    &o, NULL) != 0)
		return false;
	return url_authority_matches_parsed(&o, value, n);
}

/* The same check against an origin that is already parsed. */
bool
url_authority_matches_parsed(const struct origin *o, const char *value,
    size_t n)
{
	struct origin	 h;
	char		 buf[sizeof("https://") + URL_AUTH_MAX];
	size_t		 i;
	int		 len;

	while (n > 0 && (value[0] == ' ' || value[0] == '\t')) {
		value++;
		n--;
	}
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0 || n > URL_AUTH_MAX)
		return false;
	/*
	 * Only an authority: the parser would stop at '/', '?' or '#' and
	 * ignore what follows, and "%.*s" would stop at a NUL.
	 */
	for (i = 0; i < n; i++)
		if (value[i] == '/' || value[i] == '?' || value[i] == '#' ||
		    (unsigned char)value[i] <= 0x20 || value[i] == 0x7f)
			return false;
	len = snprintf(buf, sizeof(buf), "%s://%.*s", o->scheme, (int)n,
	    value);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return false;
	if (origin_parse(buf, (size_t)len, ORIGIN_URL, &h, NULL) != 0)
		return false;
	return origin_equal(&h, o);
}
