/*
 * The credbroker wire contract (SPEC section 6), shared by the daemon and
 * its clients: msgpack-rpc envelopes, the method table, permissions, and
 * small helpers to read named parameters out of a msgpack map.
 *
 * Request:  [0, msgid, method, [ {params} ]]
 * Response: [1, msgid, error, result]   error = nil | {code, message}
 */
#ifndef CB_PROTO_H
#define CB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cb_error.h"

#define CB_MSG_REQUEST		0
#define CB_MSG_RESPONSE		1
#define CB_MSG_NOTIFICATION	2

/* Default cap on one message, in bytes (server.max_message_size). */
#define CB_DEFAULT_MAX_MESSAGE	(1024 * 1024)
/* Default server.max_reply_size: this many times server.max_message_size. */
#define CB_REPLY_FACTOR		4

/* Limits of the Vault settings (vault.set), for the broker and credctl. */
#define CB_VAULT_TIMEOUT_MAX	600000	/* timeout_ms */
#define CB_VAULT_CACHE_MAX	3600	/* cache_seconds */

enum cb_perm {
#define CB_PERMDEF(sym, name) sym,
#include "perms.def"
#undef CB_PERMDEF
	CB_PERM_COUNT,
	CB_PERM_NONE = -1
};
#define CB_PERM_BIT(p)		(1u << (p))
#define CB_PERM_ALL		((1u << CB_PERM_COUNT) - 1)

#define CB_MF_AUDIT		0x01
#define CB_MF_SECRET_IN		0x02
#define CB_MF_SECRET_OUT	0x04
#define CB_MF_SECRET_KEY	0x08	/* opens a private key */

enum cb_method {
#define CB_METHODDEF(sym, name, perm, flags) sym,
#include "methods.def"
#undef CB_METHODDEF
	CB_M_COUNT
};

struct cb_method_info {
	const char	*name;
	int		 perm;		/* enum cb_perm or CB_PERM_NONE */
	int		 flags;		/* CB_MF_* */
};

extern const struct cb_method_info cb_methods[CB_M_COUNT];

/* Method index for a name, or -1. */
int		 proto_method_lookup(const char *name, size_t len);
/*
 * Quote len bytes a client sent into buf for a message: at most
 * bufsz - 4 of them, each byte outside printable ASCII (and a space,
 * unless space) as '?', then "..." when cut.  Returns buf.
 */
const char	*proto_quote(const char *s, size_t len, char *buf, size_t bufsz,
		    bool space);
/* Wire name of a permission, NULL if out of range. */
const char	*proto_perm_name(int perm);
/* Permission index for a name, or -1. */
int		 proto_perm_lookup(const char *name, size_t len);

/* A decoded request envelope; pointers refer into the unpacked object. */
struct proto_request {
	uint32_t		 msgid;
	const char		*method;
	size_t			 method_len;
	const msgpack_object	*params;	/* a map, possibly empty */
};

/*
 * Check that obj is a well-formed request and fill req.  An empty params
 * array, or nil, means an empty map.  On failure *msgid_ok says whether
 * req->msgid could be read (so an error response can still be sent).
 */
int	 proto_parse_request(const msgpack_object *obj, struct proto_request *req,
	    bool *msgid_ok, struct cb_error *err);

/*
 * Whether obj is a msgpack-rpc notification [2, method, params]: returns
 * 1 and sets req->method (req->params is left NULL: a notification's
 * params are never read), 0 when obj does not have that shape (an array
 * of three elements whose first is 2), or -CB_EBADREQ when it has it but
 * method is neither a str nor a bin, or params is not an array.
 */
int	 proto_parse_notification(const msgpack_object *obj,
	    struct proto_request *req, struct cb_error *err);
/*
 * Check that every map in the tree under obj has string keys, as named
 * parameters must; otherwise -CB_EBADREQ with a message naming the kind
 * of key found and where (params.request.headers[0], ...).
 */
int	 proto_check_key_types(const msgpack_object *obj,
	    struct cb_error *err);

/* Pack the response head [1, msgid, error, ...] with a nil or error slot. */
void	 proto_pack_response_head(msgpack_packer *pk, uint32_t msgid,
	    const struct cb_error *err);
/* Pack a complete error response. */
void	 proto_pack_error_response(msgpack_packer *pk, uint32_t msgid,
	    const struct cb_error *err);
/* Pack a request head [0, msgid, method, [ ...]]; the caller packs 1 map. */
void	 proto_pack_request_head(msgpack_packer *pk, uint32_t msgid,
	    const char *method);

/*
 * Pack a NUL-terminated string (nil when s is NULL).  For names and other
 * text that is never secret: a short one is staged on the stack.
 */
#define PROTO_FIXSTR_MAX	31
void	 proto_pack_cstr(msgpack_packer *pk, const char *s);
/* Pack key (a C string) then a C string value (nil when NULL). */
void	 proto_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void	 proto_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void	 proto_pack_kv_bool(msgpack_packer *pk, const char *k, bool v);

/* Value of key in a map, or NULL when absent (or when map is not a map). */
const msgpack_object *proto_map_get(const msgpack_object *map, const char *key);

/*
 * Typed parameter readers.  Each returns 0 on success, 1 when the key is
 * absent and not required, or -CB_EBADREQ with a message naming the key.
 * String results are copied into malloc'd NUL-terminated strings; a string
 * containing a NUL byte is refused.
 */
int	 proto_get_str(const msgpack_object *map, const char *key, bool required,
	    char **out, struct cb_error *err);
/*
 * proto_get_str without the copy: *out points at the len bytes of the
 * string inside map (not NUL-terminated), for a caller that only looks.
 */
int	 proto_get_strref(const msgpack_object *map, const char *key,
	    bool required, const char **out, size_t *len,
	    struct cb_error *err);
int	 proto_get_bool(const msgpack_object *map, const char *key,
	    bool required, bool *out, struct cb_error *err);
int	 proto_get_int(const msgpack_object *map, const char *key, bool required,
	    int64_t *out, struct cb_error *err);
/* Refuse keys not in the NULL-terminated list allowed. */
int	 proto_check_keys(const msgpack_object *map, const char *const *allowed,
	    struct cb_error *err);

/*
 * Incremental framing scanner.  msgpack_unpack_next() allocates the
 * element arrays of a container as soon as it reads the header, so a
 * five-byte message declaring 2^32 elements would make it try to allocate
 * 96 GiB.  The scanner walks headers only, says when one complete object
 * is buffered and how long it is, and refuses objects longer than max.
 * Since every element takes at least one byte, a complete object within
 * max bytes cannot declare more than max elements.  State carries over
 * between calls so that a peer sending one byte at a time costs O(n).
 */
struct proto_scan {
	size_t		off;	/* bytes of the current object scanned */
	uint64_t	need;	/* objects still to read */
};

#define PROTO_SCAN_MORE		0	/* incomplete, call again with more */
#define PROTO_SCAN_DONE		1	/* complete: scan->off is its length */
#define PROTO_SCAN_BAD		(-1)	/* not msgpack (0xc1) */
#define PROTO_SCAN_TOOBIG	(-2)	/* longer than max */

void	 proto_scan_reset(struct proto_scan *s);
int	 proto_scan(struct proto_scan *s, const uint8_t *buf, size_t len,
	    size_t max);

#endif
