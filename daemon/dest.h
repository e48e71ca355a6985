/*
 * dest: destinations, the origins a credential type's values may be sent
 * to (SPEC sections 2 and 5.2).  An origin is scheme://host[:port] with
 * scheme http or https, a host name (optionally starting with "*." to match
 * any subdomain), an IPv4 literal or a bracketed IPv6 literal.  Normal form:
 * lower case, no trailing dot, no default port, no trailing slash.  The
 * parsing and the normal form are those of origin.h (ORIGIN_DEST).
 */
#ifndef CB_DEST_H
#define CB_DEST_H

#include "cb_error.h"

/* Check an origin and return its normal form in *out (malloc'd). */
int	 dest_normalize(const char *in, char **out, struct cb_error *err);

#endif
