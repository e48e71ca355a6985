/*
 * libcredbroker-int.h: what the parts of libcredbroker share
 * (libcredbroker.c, the call core; libcredbroker-substitute.c and
 * libcredbroker-request.c, the runner's API).  Hidden: the shared
 * library exports only the API of credbroker.h.
 */
#ifndef CB_LIBCREDBROKER_INT_H
#define CB_LIBCREDBROKER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "credbroker.h"
#include "secbuf.h"

#pragma GCC visibility push(hidden)

/* A packer into a wiping buffer (which remembers a failed append). */
struct cb_pack {
	struct secbuf	buf;
	msgpack_packer	pk;
};

/* Fill err (which may be NULL) with a code and a formatted message. */
int	 cb_fail(struct credbroker_error *err, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Mark err as "no error". */
void	 cb_err_clear(struct credbroker_error *err);

/* libcredbroker-substitute.c: shared by substitute and request. */
void	 cb_pack_strn(msgpack_packer *, const char *, size_t);
void	 cb_pack_cstr(msgpack_packer *, const char *);
int	 cb_check_subst_args(const struct credbroker_component *,
	    const struct credbroker_request *, struct credbroker_error *);
void	 cb_pack_subst(msgpack_packer *, const struct credbroker_component *,
	    const struct credbroker_request *, uint32_t);
bool	 cb_is_str(const msgpack_object *, bool);
bool	 cb_is_none(const msgpack_object *);
size_t	 cb_align(size_t);
size_t	 cb_obj_len(const msgpack_object *);
size_t	 cb_opt_len(const msgpack_object *);
char	*cb_put(char **, const msgpack_object *);
const char *cb_put_opt(char **, const msgpack_object *);
int	 cb_used_check(const msgpack_object *, const char *,
	    struct credbroker_error *);
size_t	 cb_used_strlen(const msgpack_object *);
void	 cb_used_copy(const msgpack_object *, struct credbroker_used *,
	    char **);

#pragma GCC visibility pop

#endif
