/*
 * Error codes and the error struct that every fallible function takes last.
 *
 * Functions return 0 on success or a negative CB_E* code; when they fail
 * they may fill a struct cb_error with a human-readable message.  Messages
 * go to callers and logs, so they must never contain a secret value.
 */
#ifndef CB_ERROR_H
#define CB_ERROR_H

#include <stddef.h>

enum cb_errcode {
	CB_OK = 0,
#define CB_ERRDEF(sym, name) sym,
#include "errors.def"
#undef CB_ERRDEF
	CB_ERR_MAX
};

#define CB_ERRMSG_MAX 512

struct cb_error {
	int	code;			/* enum cb_errcode, positive; 0 = none */
	char	msg[CB_ERRMSG_MAX];
};

/* Record code and message in err (which may be NULL); returns -code. */
int		 cb_error_set(struct cb_error *err, int code, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* Clear err. */
void		 cb_error_clear(struct cb_error *err);
/* Wire name of an error code ("bad_request"), "internal" if unknown. */
const char	*cb_error_name(int code);
/* Error code for a wire name, or 0 if unknown. */
int		 cb_error_from_name(const char *name, size_t len);

#endif
