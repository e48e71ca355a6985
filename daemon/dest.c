/*
 * dest: validation and normalisation of destination origins, by the one
 * origin parser (origin.h).
 */
#include <string.h>

#include "cb_error.h"
#include "dest.h"
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
