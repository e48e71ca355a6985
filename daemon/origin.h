/*
 * origin: the one parser of origins, scheme://host[:port] (SPEC sections
 * 2 and 5.2).  Destinations (dest.h), the origins of request URLs and of
 * Host headers (url.h) and the destination check all go through it, so
 * they cannot disagree about what an origin is.
 *
 * An origin in normal form: scheme "http" or "https"; host in lower-case
 * ASCII without a trailing dot (internationalised names in their punycode
 * A-label form "xn--..."), or a dotted-decimal IPv4 address, or an IPv6
 * address in brackets in the canonical text form of RFC 5952; ":port"
 * only when it is not the scheme's default.  A destination may start its
 * host with "*." (any subdomain), or be an address block in brackets,
 * "[10.0.0.0/8]" or "[fd00::/8]" (netaddr.h; written in its normal form,
 * host bits clear).  The parser is locale-independent.
 */
#ifndef CB_ORIGIN_H
#define CB_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "cb_error.h"
#include "netaddr.h"

#define ORIGIN_HOST_MAX	512

/* A parsed origin; two origins are the same iff origin_equal. */
struct origin {
	char		 scheme[6];	/* "http" or "https" */
	char		 host[ORIGIN_HOST_MAX + 1];	/* without "*." */
	unsigned	 port;		/* explicit or the scheme's default */
	bool		 wild;		/* a destination "*.host" */
	bool		 ipv4;		/* the last label is numeric */
	bool		 ipv6;		/* a bracketed IPv6 literal */
	bool		 block;		/* a destination "[address/prefix]" */
	struct netblock	 net;		/* the block, when block */
};

/*
 * What origin_parse reads (one of ORIGIN_URL and ORIGIN_DEST, optionally
 * with ORIGIN_NORMAL):
 *  - ORIGIN_URL: an absolute http(s) URL; the authority ends at '/', '?'
 *    or '#' and the rest is not examined.  Userinfo, whitespace, controls,
 *    '%', '\' and non-ASCII bytes are refused; host labels of [a-z0-9_-];
 *    at most 253 bytes; a host whose last label is numeric must be a
 *    dotted-decimal IPv4 address without leading zeros.  Messages name
 *    the part refused ("URL must not contain userinfo ...").
 *  - ORIGIN_DEST: a destination as a user writes it: at most 512 bytes,
 *    one trailing '/' allowed, nothing else after the authority; host
 *    labels of [a-z0-9-] not starting or ending in '-', optionally after
 *    "*." when at least two labels follow; or an address block in
 *    brackets, "[10.0.0.0/8]", "[fd00::/8]" (netblock_parse), which can
 *    not follow "*.".  One message for every refusal, except a block
 *    with host bits set ("destination '...': 10.0.0.1/8 has host bits
 *    set; write 10.0.0.0/8").
 *  - ORIGIN_NORMAL: the text is already in normal form, as origin_format
 *    writes it: the scheme in lower case, no trailing dot, nothing after
 *    the authority.
 */
#define ORIGIN_URL	0x01
#define ORIGIN_DEST	0x02
#define ORIGIN_NORMAL	0x04

/*
 * Parse len bytes of s (need not be NUL-terminated) into *o.  0, or
 * -CB_EBADREQ with a message quoting at most the authority (err may be
 * NULL); *o is zeroed on failure.
 */
int	 origin_parse(const char *s, size_t len, int flags, struct origin *o,
	    struct cb_error *err);

/* Write o in normal form into *out (malloc'd; NULL on failure). */
int	 origin_format(const struct origin *o, char **out,
	    struct cb_error *err);
/* Room for any origin in normal form, with its NUL. */
#define ORIGIN_TEXT_MAX	(sizeof("https://*.") + ORIGIN_HOST_MAX + 6)
/* Write o in normal form into buf[ORIGIN_TEXT_MAX]; its length. */
size_t	 origin_text(const struct origin *o, char *buf);

/* Same scheme, host, port and wildcard? */
bool	 origin_equal(const struct origin *a, const struct origin *b);

/*
 * Does destination d allow origin o?  Same scheme and port, and either the
 * same host, or d a wildcard "*.suffix" and o's host ends in ".suffix"
 * with at least one label before it and is not an address, or d an
 * address block and o's host an IP literal inside it (netblock_contains;
 * a host name never matches a block).  A wildcard or block o never
 * matches.  For a d without wildcard or block this is origin_equal.
 */
bool	 origin_match(const struct origin *d, const struct origin *o);

/*
 * The address of o's host into *a: 0 when the host is an IPv4 or IPv6
 * literal, -CB_EBADREQ otherwise (a name, a wildcard or a block).
 */
int	 origin_addr(const struct origin *o, struct netaddr *a);

/* Are the n bytes of a and b equal, ignoring ASCII case (not locale)? */
bool	 origin_ascii_caseeq(const char *a, const char *b, size_t n);

#endif
