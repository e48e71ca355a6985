/*
 * dest: validation and normalisation of destination origins, by the one
 * origin parser (origin.h), and whether they name a resolved address.
 */
#include <stdbool.h>
#include <string.h>

#include "cb_error.h"
#include "dest.h"
#include "netaddr.h"
#include "origin.h"

int
dest_normalize(const char *in, char **out, struct cb_error *err)
{
	struct origin	o;
	int		rc;

	*out = NULL;
	if ((rc = origin_parse(in, strlen(in), ORIGIN_DEST, &o, err)) != 0)
		return rc;
	return origin_format(&o, out, err);
}

/* Does a destination name address a (exactly or by a block)? */
bool
dest_address_allowed(char *const *destinations, size_t n, const char *scheme,
    unsigned port, const struct netaddr *a)
{
	struct origin	d;
	struct netaddr	da;
	size_t		i;

	for (i = 0; i < n; i++) {
		if (destinations[i] == NULL ||
		    origin_parse(destinations[i], strlen(destinations[i]),
		    ORIGIN_DEST | ORIGIN_NORMAL, &d, NULL) != 0)
			continue;
		if (strcmp(d.scheme, scheme) != 0 || d.port != port)
			continue;
		if (d.block) {
			if (netblock_contains(&d.net, a))
				return true;
		} else if (origin_addr(&d, &da) == 0 && netaddr_equal(&da, a))
			return true;
	}
	return false;
}
