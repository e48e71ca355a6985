/*
 * url: the origin of an outgoing request's URL, and whether a credential
 * type's destinations allow it (SPEC sections 2 and 5.2).
 *
 * Every origin here is parsed by the one origin parser (origin.h) and
 * written in its normal form, the same as dest_normalize's (dest.h):
 * "scheme://host[:port]", scheme "http" or "https", host lower case with
 * no trailing dot, port only when it is not the scheme's default.  IPv6
 * literals are written bracketed in the canonical text form of RFC 5952
 * and compared by address, so "[0:0::1]" and "[::1]" are the same host.
 *
 * Decisions, each refusing what another parser might read differently:
 *  - userinfo ("user@", "user:pass@") is refused, not dropped: it is the
 *    classic trick for making "https://api.github.com@evil.example/" look
 *    like a trusted origin;
 *  - a backslash, whitespace, a control character, '%' (percent-encoded
 *    host) or any non-ASCII byte in the authority is refused;
 *  - IDNA: hosts must be given in ASCII, internationalised names in their
 *    punycode A-label form ("xn--..."); destinations are ASCII too
 *    (dest_normalize), so no Unicode mapping is needed to compare them and
 *    no mapping table can disagree with the resolver's;
 *  - a host whose last label is numeric (all digits, or "0x" and hex) must
 *    be a dotted-decimal IPv4 address of four parts without leading zeros;
 *    forms such as "2130706433", "127.1" or "0x7f.0.0.1", which resolvers
 *    and URL parsers turn into addresses differently, are refused;
 *  - a port must be 1..65535; an empty port ("host:") is refused.
 */
#ifndef CB_URL_H
#define CB_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "cb_error.h"
#include "origin.h"

/*
 * Parse the absolute http(s) URL of len bytes (need not be NUL-terminated)
 * and return its origin in *origin (malloc'd, normal form above).  The
 * path, query and fragment are not examined.  -CB_EBADREQ with a message
 * on any refusal ("URL must not contain userinfo", ...); messages may
 * quote the authority, so call this on the template text after
 * tpl_check_url_template (the authority then holds no value, and the
 * origin equals that of the rendered URL) or on a URL without secrets.
 */
int	 url_origin(const char *url, size_t len, char **origin,
	    struct cb_error *err);

/*
 * May a value be sent to origin (normal form, from url_origin)?  n == 0:
 * yes, the type has no restriction.  Otherwise yes only if some
 * destination (normal form, from dest_normalize) has the same scheme and
 * the same port (default ports applied) and either the same host, or a
 * wildcard host "*.suffix" where the origin's host ends in ".suffix" with
 * at least one more label before it (any number of labels; "suffix"
 * itself does not match, nor does an IP address), or an address block
 * "[address/prefix]" containing the origin's host, which must be an IP
 * literal (a host name never matches a block).  An unparsable origin or
 * destination never matches.
 */
bool	 url_origin_allowed(const char *origin, char *const *destinations,
	    size_t n);

/*
 * url_origin_allowed for an origin already parsed from a URL
 * (origin_parse with ORIGIN_URL): a call that checks one URL against
 * several things parses it once.
 */
bool	 url_origin_allowed_parsed(const struct origin *o,
	    char *const *destinations, size_t n);

/*
 * Is the header name (n bytes, any case) one that says where a request
 * goes or how it is framed on the way: Host and the HTTP/2 pseudo-headers,
 * the forwarding and override headers that proxies, ingresses and
 * frameworks read as the request's host, scheme, port, path or method
 * (Forwarded, X-Forwarded-Host, X-Forwarded-Server, X-Forwarded-Proto,
 * X-Forwarded-Port, X-Forwarded-Scheme, X-Forwarded-Prefix, X-Host,
 * X-HTTP-Host-Override, X-Original-Host, X-Original-URL, X-Rewrite-URL,
 * X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override), every
 * Proxy-* header (Proxy-Authorization would hand a credential to a
 * proxy), and the hop-by-hop headers Connection, Keep-Alive, TE,
 * Transfer-Encoding and Upgrade.
 */
bool	 url_routing_header(const char *name, size_t n);

/*
 * Does the value of a Host or :authority header (n bytes, optional
 * spaces or tabs around it) name exactly the host and port of origin
 * (normal form, from url_origin)?  It is parsed as the authority of a URL
 * of origin's scheme, so case, a default port, a trailing dot and the
 * spelling of an IPv6 address do not matter; userinfo, a path or anything
 * url_origin refuses never matches.
 */
bool	 url_authority_matches(const char *origin, const char *value,
	    size_t n);
/* url_authority_matches for an origin already parsed from a URL. */
bool	 url_authority_matches_parsed(const struct origin *o,
	    const char *value, size_t n);

#endif
