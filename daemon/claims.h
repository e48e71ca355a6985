/*
 * claims: the user attributes token.verify reads from a login JWT's
 * claims (SPEC 9.5, the login service document of seed 004), and the
 * conversion between msgpack objects and jansson values that the token
 * methods use for payloads, claims and attributes.
 */
#ifndef CB_CLAIMS_H
#define CB_CLAIMS_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#include "cb_error.h"

#define CLAIMS_DEPTH_MAX	16	/* nesting of maps and arrays */
#define CLAIMS_ROLE_ADMIN	"ADMINISTRATORS"
#define CLAIMS_ROLE_DEFAULT	"USERS"

/*
 * Convert a msgpack value to JSON: maps with string keys, arrays,
 * strings (valid UTF-8), integers, floats, booleans, nil.  Binary,
 * extension types, non-string keys, duplicate keys, nesting deeper than
 * CLAIMS_DEPTH_MAX and integers outside int64 are -CB_EBADREQ naming
 * what (name: the parameter's name, for the message).
 */
int	 claims_from_msgpack(const msgpack_object *o, const char *name,
	    json_t **out, struct cb_error *err);
/* Pack a JSON value as msgpack (the inverse; real numbers as float64). */
void	 claims_pack(msgpack_packer *pk, const json_t *v);

/*
 * Resolve a reference to a claim: a claim name ("groups"), or a JSON
 * pointer starting with "/" ("/path/to/groups", RFC 6901: "~1" is "/",
 * "~0" is "~", array elements by decimal index).  NULL when absent.
 */
const json_t *claims_lookup(const json_t *claims, const char *ref);

/*
 * The attributes (SPEC 9.5): spec is an object mapping user_id,
 * user_name, roles, upn and email to a reference (string), and
 * additional to an array of claim names; any other key, or a value of
 * the wrong type, is -CB_EBADREQ.  *out is an object with:
 *   user_id, user_name, upn, email: the referenced claim when it is a
 *     string or a number (as given), absent when the claim is missing or
 *     when no reference was given; another type is -CB_EBADREQ;
 *   roles: the referenced claim as an array of strings (a single string
 *     is a one-element array); ["USERS"] when roles has no reference or
 *     the claim is missing; an array holding anything but strings is
 *     -CB_EBADREQ; one holding "ADMINISTRATORS" is -CB_EFORBIDDEN saying
 *     the administrators group may not be granted by a login token;
 *   additional: an object of each named claim present (any JSON value).
 * spec NULL means no references: {roles: ["USERS"], additional: {}}.
 */
int	 claims_attributes(const json_t *claims, const json_t *spec,
	    json_t **out, struct cb_error *err);

#endif
