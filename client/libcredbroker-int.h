/*
 * libcredbroker-int.h: what the parts of libcredbroker share
 * (libcredbroker.c, the call core; libcredbroker-substitute.c, the
 * runner's API).  Hidden: the shared library exports only the API of
 * credbroker.h.
 */
#ifndef CB_LIBCREDBROKER_INT_H
#define CB_LIBCREDBROKER_INT_H

#include "credbroker.h"

#pragma GCC visibility push(hidden)

/* Fill err (which may be NULL) with a code and a formatted message. */
int	 cb_fail(struct credbroker_error *err, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Mark err as "no error". */
void	 cb_err_clear(struct credbroker_error *err);

#pragma GCC visibility pop

#endif
