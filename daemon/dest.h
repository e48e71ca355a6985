/*
 * dest: destinations, the origins a credential type's values may be sent
 * to (SPEC sections 2 and 5.2).  An origin is scheme://host[:port] with
 * scheme http or https, a host name (optionally starting with "*." to match
 * any subdomain), an IPv4 literal, a bracketed IPv6 literal, or an address
 * block in brackets ("https://[10.0.0.0/8]", "http://[fd00::/8]:8080").
 * Normal form: lower case, no trailing dot, no default port, no trailing
 * slash, a block in its canonical text.  The parsing and the normal form
 * are those of origin.h (ORIGIN_DEST).
 */
#ifndef CB_DEST_H
#define CB_DEST_H

#include <stdbool.h>
#include <stddef.h>

#include "cb_error.h"
#include "netaddr.h"

/* Check an origin and return its normal form in *out (malloc'd). */
int	 dest_normalize(const char *in, char **out, struct cb_error *err);

/*
 * May the broker connect to address a, resolved for a request to scheme
 * ("http" or "https") and port, under these destinations (normal form,
 * from dest_normalize)?  Yes when one of them, with the same scheme and
 * port, is the exact IP literal a (an IPv4-mapped address equal to its
 * IPv4 address) or an address block containing a (netblock_contains).
 * Host names and wildcards never allow an address; n == 0 allows none.
 * Only for special addresses: the caller classifies a first
 * (netaddr_classify) and needs no allowance for a public one.
 */
bool	 dest_address_allowed(char *const *destinations, size_t n,
	    const char *scheme, unsigned port, const struct netaddr *a);

#endif
