/*
 * claims: JSON values from msgpack and back for the token methods, and
 * the user attributes of a login JWT (SPEC 9.5, seed 004): user id,
 * name, UPN, email, the groups (never ADMINISTRATORS, USERS by default)
 * and the additional attributes, each found by a claim name or an RFC
 * 6901 JSON pointer.  Claims can carry personal data, so no message
 * quotes a claim's value: messages name the attribute or the reference.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "cb_error.h"
#include "claims.h"
#include "proto.h"

#define CLAIMS_REF_MAX		1024	/* bytes of a reference */
#define CLAIMS_ADDITIONAL_MAX	64	/* names in "additional" */
#define CLAIMS_QUOTE		80	/* a reference quoted in a message */

/* The attributes that take one reference, in the order of the answer. */
static const char *const claims_refs[] = {
	"user_id", "user_name", "roles", "upn", "email"
};
#define CLAIMS_NREFS	(sizeof(claims_refs) / sizeof(claims_refs[0]))
#define CLAIMS_ROLES	2	/* index of "roles" in claims_refs */

/* The error of a failed allocation while converting or reading claims. */
static int
claims_nomem(const char *what, struct cb_error *err)
{
	return cb_error_set(err, CB_EINTERNAL, "out of memory %s", what);
}

/*
 * A JSON string of the n bytes at s into *out: json_stringn refuses text
 * that is not UTF-8, and the copy without the check tells that apart
 * from a failed allocation.
 */
static int
claims_string(const char *s, size_t n, const char *name, const char *what,
    json_t **out, struct cb_error *err)
{
	json_t	*v;

	if (n == 0)
		s = "";		/* msgpack-c may leave ptr NULL */
	if ((*out = json_stringn(s, n)) != NULL)
		return 0;
	if ((v = json_stringn_nocheck(s, n)) == NULL)
		return claims_nomem("converting a value", err);
	json_decref(v);
	return cb_error_set(err, CB_EBADREQ, "%s holds a %s that is not "
	    "valid UTF-8", name, what);
}

static int
claims_value(const msgpack_object *o, const char *name, int depth,
    json_t **out, struct cb_error *err);

/* A msgpack map as a JSON object, into *out. */
static int
claims_map(const msgpack_object *o, const char *name, int depth,
    json_t **out, struct cb_error *err)
{
	const msgpack_object_kv	*kv;
	json_t			*obj, *key = NULL, *v = NULL;
	uint32_t		 i;
	int			 rc = 0;

	if ((obj = json_object()) == NULL) {
		rc = claims_nomem("converting a value", err);
		goto done;
	}
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR) {
			rc = cb_error_set(err, CB_EBADREQ, "%s holds a map "
			    "key that is not a string", name);
			goto done;
		}
		if ((rc = claims_string(kv->key.via.str.ptr,
		    kv->key.via.str.size, name, "map key", &key, err)) < 0)
			goto done;
		/* The copy: msgpack-c may leave an empty key's ptr NULL. */
		if (json_object_getn(obj, json_string_value(key),
		    json_string_length(key)) != NULL) {
			rc = cb_error_set(err, CB_EBADREQ, "%s holds a map "
			    "with a duplicate key", name);
			goto done;
		}
		if ((rc = claims_value(&kv->val, name, depth, &v, err)) < 0)
			goto done;
		/* The key was checked above; set_new takes v either way. */
		if (json_object_setn_new_nocheck(obj, json_string_value(key),
		    json_string_length(key), v) != 0) {
			v = NULL;
			rc = claims_nomem("converting a value", err);
			goto done;
		}
		v = NULL;
		json_decref(key);
		key = NULL;
	}
done:
	json_decref(key);
	json_decref(v);
	if (rc < 0) {
		json_decref(obj);
		obj = NULL;
	}
	*out = obj;
	return rc;
}

/* A msgpack array as a JSON array, into *out. */
static int
claims_array(const msgpack_object *o, const char *name, int depth,
    json_t **out, struct cb_error *err)
{
	json_t		*arr, *v;
	uint32_t	 i;
	int		 rc = 0;

	if ((arr = json_array()) == NULL) {
		rc = claims_nomem("converting a value", err);
		goto done;
	}
	for (i = 0; i < o->via.array.size; i++) {
		if ((rc = claims_value(&o->via.array.ptr[i], name, depth, &v,
		    err)) < 0)
			goto done;
		if (json_array_append_new(arr, v) != 0) {
			rc = claims_nomem("converting a value", err);
			goto done;
		}
	}
done:
	if (rc < 0) {
		json_decref(arr);
		arr = NULL;
	}
	*out = arr;
	return rc;
}

/* One msgpack value inside depth containers as JSON, into *out. */
static int
claims_value(const msgpack_object *o, const char *name, int depth,
    json_t **out, struct cb_error *err)
{
	json_t	*v = NULL;

	*out = NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_MAP:
	case MSGPACK_OBJECT_ARRAY:
		if (depth >= CLAIMS_DEPTH_MAX)
			return cb_error_set(err, CB_EBADREQ, "%s is nested "
			    "deeper than %d maps and arrays", name,
			    CLAIMS_DEPTH_MAX);
		if (o->type == MSGPACK_OBJECT_MAP)
			return claims_map(o, name, depth + 1, out, err);
		return claims_array(o, name, depth + 1, out, err);
	case MSGPACK_OBJECT_STR:
		return claims_string(o->via.str.ptr, o->via.str.size, name,
		    "string", out, err);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return cb_error_set(err, CB_EBADREQ, "%s holds an "
			    "integer above the signed 64-bit range", name);
		v = json_integer((json_int_t)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v = json_integer((json_int_t)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return cb_error_set(err, CB_EBADREQ, "%s holds a "
			    "number that is not finite (NaN or infinity)",
			    name);
		v = json_real(o->via.f64);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		v = json_boolean(o->via.boolean);
		break;
	case MSGPACK_OBJECT_NIL:
		v = json_null();
		break;
	case MSGPACK_OBJECT_BIN:
		return cb_error_set(err, CB_EBADREQ, "%s holds binary data, "
		    "which JSON cannot carry", name);
	default:
		return cb_error_set(err, CB_EBADREQ, "%s holds a msgpack "
		    "extension type, which JSON cannot carry", name);
	}
	if (v == NULL)
		return claims_nomem("converting a value", err);
	*out = v;
	return 0;
}

int
claims_from_msgpack(const msgpack_object *o, const char *name, json_t **out,
    struct cb_error *err)
{
	return claims_value(o, name, 0, out, err);
}

void
claims_pack(msgpack_packer *pk, const json_t *v)
{
	const char	*key;
	json_t		*item;
	size_t		 i, klen;

	switch (v == NULL ? JSON_NULL : json_typeof(v)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(v));
		/* jansson keeps the order in which keys were added. */
		json_object_keylen_foreach((json_t *)v, key, klen, item) {
			msgpack_pack_str(pk, klen);
			msgpack_pack_str_body(pk, key, klen);
			claims_pack(pk, item);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		json_array_foreach(v, i, item)
			claims_pack(pk, item);
		break;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(v));
		msgpack_pack_str_body(pk, json_string_value(v),
		    json_string_length(v));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(v));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(v));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

/*
 * Whether every "~" of the JSON pointer p (n bytes) starts "~0" or "~1",
 * the only escapes of RFC 6901.
 */
static bool
claims_escapes_ok(const char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] == '~' && (i + 1 == n ||
		    (p[i + 1] != '0' && p[i + 1] != '1')))
			return false;
	return true;
}

/*
 * Whether the reference token t (n bytes, escapes checked) names the key
 * k (klen bytes).  Unescaping in one pass from the left gives what RFC
 * 6901's order ("~1" then "~0") gives: "~01" is "~1", never "/".
 */
static bool
claims_token_is(const char *t, size_t n, const char *k, size_t klen)
{
	size_t	i, j;
	char	c;

	for (i = 0, j = 0; i < n; i++, j++) {
		c = t[i];
		if (c == '~')
			c = t[++i] == '1' ? '/' : '~';
		if (j == klen || k[j] != c)
			return false;
	}
	return j == klen;
}

/* The member of obj that token t (n bytes) names, or NULL. */
static const json_t *
claims_member(const json_t *obj, const char *t, size_t n)
{
	const char	*key;
	json_t		*v;
	size_t		 klen;

	if (memchr(t, '~', n) == NULL)
		return json_object_getn(obj, t, n);
	json_object_keylen_foreach((json_t *)obj, key, klen, v)
		if (claims_token_is(t, n, key, klen))
			return v;
	return NULL;
}

/*
 * The element of arr that token t (n bytes) names: a decimal index
 * without leading zeros ("0" is one, "01" and "-" are none), or NULL.
 */
static const json_t *
claims_element(const json_t *arr, const char *t, size_t n)
{
	size_t	i, idx = 0, size = json_array_size(arr);

	if (n == 0 || (t[0] == '0' && n > 1))
		return NULL;
	for (i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return NULL;
		idx = idx * 10 + (size_t)(t[i] - '0');
		if (idx >= size)
			return NULL;	/* also stops any overflow */
	}
	return json_array_get(arr, idx);
}

const json_t *
claims_lookup(const json_t *claims, const char *ref)
{
	const json_t	*cur = claims;
	const char	*t, *end;
	size_t		 n;

	if (claims == NULL || ref == NULL)
		return NULL;
	if (ref[0] != '/')
		return json_is_object(claims) ? json_object_get(claims, ref) :
		    NULL;
	n = strlen(ref);
	if (!claims_escapes_ok(ref, n))
		return NULL;
	/* Each token follows a "/": "/" alone is the member "" of the root. */
	for (t = ref + 1; cur != NULL; t = end + 1) {
		if ((end = strchr(t, '/')) == NULL)
			end = ref + n;
		if (json_is_object(cur))
			cur = claims_member(cur, t, (size_t)(end - t));
		else if (json_is_array(cur))
			cur = claims_element(cur, t, (size_t)(end - t));
		else
			cur = NULL;
		if (*end == '\0')
			break;
	}
	return cur;
}

/* The reference r of attribute name checked (SPEC 9.5): 0 or -CB_EBADREQ. */
static int
claims_check_ref(const char *name, const json_t *r, struct cb_error *err)
{
	const char	*s;
	size_t		 n;

	if (!json_is_string(r))
		return cb_error_set(err, CB_EBADREQ, "attributes.%s must be a "
		    "string (a claim name or a JSON pointer)", name);
	s = json_string_value(r);
	n = json_string_length(r);
	if (n == 0)
		return cb_error_set(err, CB_EBADREQ, "attributes.%s must not "
		    "be empty", name);
	if (n > CLAIMS_REF_MAX)
		return cb_error_set(err, CB_EBADREQ, "attributes.%s is longer "
		    "than %d bytes", name, CLAIMS_REF_MAX);
	if (memchr(s, '\0', n) != NULL)
		return cb_error_set(err, CB_EBADREQ, "attributes.%s holds a "
		    "NUL byte", name);
	if (s[0] == '/' && !claims_escapes_ok(s, n))
		return cb_error_set(err, CB_EBADREQ, "attributes.%s is a JSON "
		    "pointer with a \"~\" not followed by \"0\" or \"1\" "
		    "(RFC 6901 escapes \"~\" as \"~0\" and \"/\" as \"~1\")",
		    name);
	return 0;
}

/* The "additional" list a checked: 0 or -CB_EBADREQ. */
static int
claims_check_additional(const json_t *a, struct cb_error *err)
{
	const json_t	*v, *w;
	size_t		 i, j;

	if (!json_is_array(a))
		return cb_error_set(err, CB_EBADREQ, "attributes.additional "
		    "must be an array of claim names");
	if (json_array_size(a) > CLAIMS_ADDITIONAL_MAX)
		return cb_error_set(err, CB_EBADREQ, "attributes.additional "
		    "names more than %d claims", CLAIMS_ADDITIONAL_MAX);
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return cb_error_set(err, CB_EBADREQ, "attributes."
			    "additional[%zu] must be a non-empty string", i);
		for (j = 0; j < i; j++) {
			w = json_array_get(a, j);
			if (json_string_length(w) == json_string_length(v) &&
			    memcmp(json_string_value(w), json_string_value(v),
			    json_string_length(v)) == 0)
				return cb_error_set(err, CB_EBADREQ,
				    "attributes.additional[%zu] repeats "
				    "additional[%zu]", i, j);
		}
	}
	return 0;
}

/*
 * The spec checked before any claim is read; refs[] gets the reference
 * of each attribute of claims_refs (NULL: none), *additional the list
 * (NULL: none).
 */
static int
claims_check_spec(const json_t *spec, const char *refs[CLAIMS_NREFS],
    const json_t **additional, struct cb_error *err)
{
	char		 q[CLAIMS_QUOTE];
	const char	*key;
	json_t		*v;
	size_t		 i, klen;
	int		 rc;

	for (i = 0; i < CLAIMS_NREFS; i++)
		refs[i] = NULL;
	*additional = NULL;
	if (spec == NULL)
		return 0;
	if (!json_is_object(spec))
		return cb_error_set(err, CB_EBADREQ, "attributes must be a map "
		    "of attribute names to claim references");
	json_object_keylen_foreach((json_t *)spec, key, klen, v) {
		if (strlen(key) == klen && strcmp(key, "additional") == 0) {
			if ((rc = claims_check_additional(v, err)) < 0)
				return rc;
			*additional = v;
			continue;
		}
		for (i = 0; i < CLAIMS_NREFS; i++)
			if (strlen(key) == klen &&
			    strcmp(key, claims_refs[i]) == 0)
				break;
		if (i == CLAIMS_NREFS)
			return cb_error_set(err, CB_EBADREQ, "attributes has "
			    "an unknown key \"%s\" (user_id, user_name, roles, "
			    "upn, email, additional)", proto_quote(key, klen,
			    q, sizeof(q), false));
		if ((rc = claims_check_ref(claims_refs[i], v, err)) < 0)
			return rc;
		refs[i] = json_string_value(v);
	}
	return 0;
}

/* Whether s (n bytes) is "ADMINISTRATORS" in any ASCII case, untrimmed. */
static bool
claims_is_admin(const char *s, size_t n)
{
	const char	*a = CLAIMS_ROLE_ADMIN;
	size_t		 i;
	char		 c;

	if (n != strlen(a))
		return false;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != a[i])
			return false;
	}
	return true;
}

/*
 * Whether the string v holds a NUL byte: a group name that a reader
 * stopping at NUL would take for another (say, ADMINISTRATORS).
 */
static bool
claims_has_nul(const json_t *v)
{
	return memchr(json_string_value(v), '\0', json_string_length(v)) !=
	    NULL;
}

/*
 * The roles (SPEC 9.5): the claim v that ref found (NULL: missing) as a
 * new array in *out.
 */
static int
claims_roles(const json_t *v, const char *ref, json_t **out,
    struct cb_error *err)
{
	static const char	 forbidden[] = "the login token grants the "
	    CLAIMS_ROLE_ADMIN " group, which a login token may not grant";
	char			 q[CLAIMS_QUOTE];
	const json_t		*e;
	size_t			 i;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		*out = json_pack("[s]", CLAIMS_ROLE_DEFAULT);
	else if (json_is_string(v)) {
		if (claims_is_admin(json_string_value(v),
		    json_string_length(v)))
			return cb_error_set(err, CB_EFORBIDDEN, "%s",
			    forbidden);
		if (claims_has_nul(v))
			return cb_error_set(err, CB_EBADREQ, "the roles claim "
			    "(\"%s\") holds a NUL byte", proto_quote(ref,
			    strlen(ref), q, sizeof(q), false));
		*out = json_pack("[O]", v);
	} else if (json_is_array(v)) {
		/* ADMINISTRATORS is refused wherever it stands. */
		json_array_foreach(v, i, e)
			if (json_is_string(e) && claims_is_admin(
			    json_string_value(e), json_string_length(e)))
				return cb_error_set(err, CB_EFORBIDDEN, "%s",
				    forbidden);
		json_array_foreach(v, i, e)
			if (!json_is_string(e) || claims_has_nul(e))
				return cb_error_set(err, CB_EBADREQ,
				    "the roles claim (\"%s\") holds a %s at "
				    "index %zu",
				    proto_quote(ref, strlen(ref), q, sizeof(q),
				    false), json_is_string(e) ? "string with a "
				    "NUL byte" : "non-string", i);
		*out = json_copy((json_t *)v);
	} else
		return cb_error_set(err, CB_EBADREQ, "the roles claim (\"%s\") "
		    "is neither a string nor an array of strings",
		    proto_quote(ref, strlen(ref), q, sizeof(q), false));
	return *out == NULL ? claims_nomem("reading the roles", err) : 0;
}

int
claims_attributes(const json_t *claims, const json_t *spec, json_t **out,
    struct cb_error *err)
{
	char		 q[CLAIMS_QUOTE];
	const char	*refs[CLAIMS_NREFS];
	const json_t	*additional, *v, *name;
	json_t		*res = NULL, *roles = NULL, *add = NULL;
	size_t		 i;
	int		 rc;

	*out = NULL;
	if ((rc = claims_check_spec(spec, refs, &additional, err)) < 0)
		goto done;
	if ((res = json_object()) == NULL) {
		rc = claims_nomem("reading the attributes", err);
		goto done;
	}
	for (i = 0; i < CLAIMS_NREFS; i++) {
		v = refs[i] != NULL ? claims_lookup(claims, refs[i]) : NULL;
		if (i == CLAIMS_ROLES) {
			if ((rc = claims_roles(v, refs[i], &roles, err)) < 0)
				goto done;
			/* set_new takes roles, even when it fails. */
			rc = json_object_set_new(res, "roles", roles);
			roles = NULL;
		} else if (v == NULL)
			continue;
		else if (!json_is_string(v) && !json_is_number(v)) {
			rc = cb_error_set(err, CB_EBADREQ, "the %s claim "
			    "(\"%s\") is neither a string nor a number",
			    claims_refs[i], proto_quote(refs[i],
			    strlen(refs[i]), q, sizeof(q), false));
			goto done;
		} else
			rc = json_object_set(res, claims_refs[i], (json_t *)v);
		if (rc != 0) {
			rc = claims_nomem("reading the attributes", err);
			goto done;
		}
	}
	if ((add = json_object()) == NULL) {
		rc = claims_nomem("reading the attributes", err);
		goto done;
	}
	if (json_is_object(claims) && additional != NULL)
		json_array_foreach(additional, i, name) {
			v = json_object_getn(claims, json_string_value(name),
			    json_string_length(name));
			if (v != NULL && json_object_setn(add,
			    json_string_value(name), json_string_length(name),
			    (json_t *)v) != 0) {
				rc = claims_nomem("reading the attributes",
				    err);
				goto done;
			}
		}
	rc = json_object_set_new(res, "additional", add);
	add = NULL;
	if (rc != 0) {
		rc = claims_nomem("reading the attributes", err);
		goto done;
	}
	*out = res;
	res = NULL;
done:
	json_decref(add);
	json_decref(res);
	return rc;
}
