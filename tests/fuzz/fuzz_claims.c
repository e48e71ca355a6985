/*
 * fuzz_claims: libFuzzer target for daemon/claims.c, which reads the
 * user attributes out of a verified login token's claims.
 *
 * Input layout (tests/fuzz/make_corpus.py writes seeds in it):
 *
 *	claims JSON text, a NUL byte, spec JSON text
 *
 * Either text that json_loadb does not take (any JSON value is taken,
 * "\u0000" too) skips the input, and so does one without a NUL byte.
 * For each input: claims_lookup of every string the spec holds (its
 * values, its keys, the spec itself when it is a string),
 * claims_attributes, and claims_pack followed by claims_from_msgpack.
 * Every result is checked against what claims.h says, through a model
 * written here (not from claims.c):
 *
 *  - lookup: RFC 6901 read literally: the pointer split at "/", each
 *    token unescaped by replacing "~1" then "~0", objects by member,
 *    arrays by a decimal index without leading zeros; a "~" not followed
 *    by "0" or "1" finds nothing; a plain name is a member of the root;
 *  - attributes: success, bad_request or forbidden exactly as a model
 *    of the spec checks and of the claims' types says (ADMINISTRATORS,
 *    in any case, alone or anywhere in a list, is forbidden; a group
 *    name with a NUL byte is bad_request); on success every attribute
 *    is the claim its reference finds (the same value), roles are
 *    strings without NUL bytes and never ADMINISTRATORS, ["USERS"] when
 *    missing or null, additional holds exactly the named claims
 *    present; a failure leaves *out NULL and says why in one line of
 *    printable ASCII that does not quote "CANARY" from the claims
 *    (unless the spec holds it too);
 *  - msgpack: a value nested at most CLAIMS_DEPTH_MAX deep comes back
 *    equal, a deeper one is -CB_EBADREQ.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "cb_error.h"
#include "claims.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_ASSERT(x)	do { if (!(x)) fz_fail(#x, __LINE__); } while (0)

#define FZ_MARK		"CANARY"

/* An invariant does not hold: say which, then crash for libFuzzer. */
static void
fz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_claims: invariant violated at line %d: %s\n",
	    line, what);
	__builtin_trap();
}

/* Replace every "from" (2 bytes) in s (*n bytes) by the byte to. */
static void
fz_replace(char *s, size_t *n, const char *from, char to)
{
	size_t	i, j;

	for (i = 0, j = 0; i < *n; i++, j++) {
		if (i + 1 < *n && s[i] == from[0] && s[i + 1] == from[1]) {
			s[j] = to;
			i++;
		} else
			s[j] = s[i];
	}
	*n = j;
}

/* What claims_lookup must find for ref in doc. */
static const json_t *
fz_model_lookup(const json_t *doc, const char *ref)
{
	const json_t	*cur = doc;
	const char	*p, *end;
	char		*tok;
	size_t		 n, i, idx;

	if (ref[0] != '/')
		return json_is_object(doc) ? json_object_get(doc, ref) : NULL;
	for (p = ref; *p != '\0'; p++)
		if (*p == '~' && p[1] != '0' && p[1] != '1')
			return NULL;
	for (p = ref + 1; cur != NULL; p = end + 1) {
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		FZ_ASSERT((tok = malloc(n + 1)) != NULL);
		memcpy(tok, p, n);
		fz_replace(tok, &n, "~1", '/');
		fz_replace(tok, &n, "~0", '~');
		if (json_is_object(cur))
			cur = json_object_getn(cur, tok, n);
		else if (json_is_array(cur)) {
			idx = 0;
			for (i = 0; i < n && tok[i] >= '0' && tok[i] <= '9' &&
			    idx < SIZE_MAX / 10 - 10; i++)
				idx = idx * 10 + (size_t)(tok[i] - '0');
			if (n == 0 || i < n || (n > 1 && tok[0] == '0'))
				cur = NULL;
			else
				cur = json_array_get(cur, idx);
		} else
			cur = NULL;
		free(tok);
		if (*end == '\0')
			break;
	}
	return cur;
}

/* Check claims_lookup against the model for ref. */
static void
fz_lookup(const json_t *doc, const char *ref)
{
	FZ_ASSERT(claims_lookup(doc, ref) == fz_model_lookup(doc, ref));
}

/* Look up every string s holds, as a value or a key. */
static void
fz_lookup_all(const json_t *doc, const json_t *s)
{
	const char	*key;
	json_t		*v;
	size_t		 i;

	if (json_is_string(s) &&
	    strlen(json_string_value(s)) == json_string_length(s))
		fz_lookup(doc, json_string_value(s));
	if (json_is_object(s))
		json_object_foreach((json_t *)s, key, v) {
			fz_lookup(doc, key);
			fz_lookup_all(doc, v);
		}
	if (json_is_array(s))
		json_array_foreach(s, i, v)
			fz_lookup_all(doc, v);
}

/* Whether s (n bytes) is ADMINISTRATORS in any ASCII case. */
static bool
fz_admin(const char *s, size_t n)
{
	static const char	a[] = "administrators";
	size_t			i;

	if (n != sizeof(a) - 1)
		return false;
	for (i = 0; i < n; i++)
		if ((s[i] | 0x20) != a[i])
			return false;
	return true;
}

/* Whether a JSON value holds a string or a key containing FZ_MARK. */
static bool
fz_marked(const json_t *v)
{
	const char	*key;
	json_t		*e;
	size_t		 i, klen;

	if (json_is_string(v))
		return memmem(json_string_value(v), json_string_length(v),
		    FZ_MARK, sizeof(FZ_MARK) - 1) != NULL;
	if (json_is_array(v))
		json_array_foreach(v, i, e)
			if (fz_marked(e))
				return true;
	if (json_is_object(v))
		json_object_keylen_foreach((json_t *)v, key, klen, e)
			if (memmem(key, klen, FZ_MARK, sizeof(FZ_MARK) - 1) !=
			    NULL || fz_marked(e))
				return true;
	return false;
}

/* Nesting of maps and arrays in v. */
static int
fz_depth(const json_t *v)
{
	json_t	*e;
	size_t	 i;
	int	 d, max = 0;

	if (json_is_array(v))
		json_array_foreach(v, i, e)
			if ((d = fz_depth(e)) > max)
				max = d;
	if (json_is_object(v)) {
		const char *key;

		json_object_foreach((json_t *)v, key, e)
			if ((d = fz_depth(e)) > max)
				max = d;
	}
	return json_is_array(v) || json_is_object(v) ? max + 1 : 0;
}

/* The roles attribute: what the claim found must have given. */
static void
fz_check_roles(const json_t *doc, const json_t *spec, const json_t *roles)
{
	const json_t	*ref, *v, *e;
	size_t		 i;

	FZ_ASSERT(json_is_array(roles));
	json_array_foreach(roles, i, e) {
		FZ_ASSERT(json_is_string(e));
		FZ_ASSERT(strlen(json_string_value(e)) ==
		    json_string_length(e));
		FZ_ASSERT(!fz_admin(json_string_value(e),
		    json_string_length(e)));
	}
	ref = json_object_get(spec, "roles");
	v = ref != NULL ? fz_model_lookup(doc, json_string_value(ref)) : NULL;
	if (v == NULL || json_is_null(v)) {
		FZ_ASSERT(json_array_size(roles) == 1);
		FZ_ASSERT(strcmp(json_string_value(json_array_get(roles, 0)),
		    CLAIMS_ROLE_DEFAULT) == 0);
	} else if (json_is_string(v)) {
		FZ_ASSERT(json_array_size(roles) == 1);
		FZ_ASSERT(json_array_get(roles, 0) == v);
	} else
		FZ_ASSERT(json_equal((json_t *)v, (json_t *)roles));
}

/* Whether the spec is one claims.h and SPEC 9.5 accept. */
static bool
fz_model_spec_ok(const json_t *spec)
{
	static const char *const refs[] = {
		"user_id", "user_name", "roles", "upn", "email"
	};
	const char	*key, *r;
	json_t		*v, *e, *f;
	size_t		 klen, i, j, n;

	if (!json_is_object(spec))
		return false;
	json_object_keylen_foreach((json_t *)spec, key, klen, v) {
		if (klen == 10 && memcmp(key, "additional", 10) == 0) {
			if (!json_is_array(v) || json_array_size(v) > 64)
				return false;
			json_array_foreach(v, i, e) {
				if (!json_is_string(e) ||
				    json_string_length(e) == 0)
					return false;
				for (j = 0; j < i; j++) {
					f = json_array_get(v, j);
					if (json_string_length(f) ==
					    json_string_length(e) &&
					    memcmp(json_string_value(f),
					    json_string_value(e),
					    json_string_length(e)) == 0)
						return false;
				}
			}
			continue;
		}
		for (i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
			if (strlen(refs[i]) == klen &&
			    memcmp(refs[i], key, klen) == 0)
				break;
		if (i == sizeof(refs) / sizeof(refs[0]) || !json_is_string(v))
			return false;
		r = json_string_value(v);
		n = json_string_length(v);
		if (n == 0 || n > 1024 || strlen(r) != n)
			return false;
		for (j = 0; r[0] == '/' && j < n; j++)
			if (r[j] == '~' && r[j + 1] != '0' && r[j + 1] != '1')
				return false;
	}
	return true;
}

/*
 * Which answers claims_attributes may give: *ok (success), *bad
 * (bad_request), *forbidden, from the spec and what the claims hold.
 */
static void
fz_model_attributes(const json_t *doc, const json_t *spec, bool *ok,
    bool *bad, bool *forbidden)
{
	static const char *const names[] = {
		"user_id", "user_name", "upn", "email"
	};
	const json_t	*ref, *v, *e;
	size_t		 i;

	*ok = *bad = *forbidden = false;
	if (spec != NULL && !fz_model_spec_ok(spec)) {
		*bad = true;
		return;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ref = json_object_get(spec, names[i]);
		v = ref != NULL ? fz_model_lookup(doc, json_string_value(ref)) :
		    NULL;
		if (v != NULL && !json_is_string(v) && !json_is_number(v))
			*bad = true;
	}
	ref = json_object_get(spec, "roles");
	v = ref != NULL ? fz_model_lookup(doc, json_string_value(ref)) : NULL;
	if (json_is_string(v)) {
		if (fz_admin(json_string_value(v), json_string_length(v)))
			*forbidden = true;
		else if (strlen(json_string_value(v)) != json_string_length(v))
			*bad = true;
	} else if (json_is_array(v)) {
		/* ADMINISTRATORS anywhere is refused as such. */
		json_array_foreach(v, i, e)
			if (json_is_string(e) && fz_admin(json_string_value(e),
			    json_string_length(e)))
				*forbidden = true;
		json_array_foreach(v, i, e)
			if (!*forbidden && (!json_is_string(e) ||
			    strlen(json_string_value(e)) !=
			    json_string_length(e)))
				*bad = true;
	} else if (v != NULL && !json_is_null(v))
		*bad = true;
	*ok = !*bad && !*forbidden;
}

/* A successful claims_attributes answer, against the spec and claims. */
static void
fz_check_attributes(const json_t *doc, const json_t *spec, const json_t *out)
{
	static const char *const names[] = {
		"user_id", "user_name", "upn", "email"
	};
	const json_t	*ref, *v, *add, *names_add, *e;
	const char	*key;
	size_t		 i, nadd = 0;

	FZ_ASSERT(json_is_object(out));
	FZ_ASSERT(spec == NULL || json_is_object(spec));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ref = json_object_get(spec, names[i]);
		v = ref != NULL ? fz_model_lookup(doc, json_string_value(ref)) :
		    NULL;
		FZ_ASSERT(json_object_get(out, names[i]) == v);
		FZ_ASSERT(v == NULL || json_is_string(v) || json_is_number(v));
	}
	fz_check_roles(doc, spec, json_object_get(out, "roles"));
	add = json_object_get(out, "additional");
	FZ_ASSERT(json_is_object(add));
	names_add = json_object_get(spec, "additional");
	FZ_ASSERT(names_add == NULL || json_array_size(names_add) <= 64);
	json_array_foreach(names_add, i, e) {
		FZ_ASSERT(json_is_string(e) && json_string_length(e) > 0);
		v = json_is_object(doc) ? json_object_getn(doc,
		    json_string_value(e), json_string_length(e)) : NULL;
		FZ_ASSERT(json_object_getn(add, json_string_value(e),
		    json_string_length(e)) == v);
		if (v != NULL)
			nadd++;
	}
	FZ_ASSERT(json_object_size(add) == nadd);
	json_object_foreach((json_t *)out, key, v)
		FZ_ASSERT(strcmp(key, "roles") == 0 ||
		    strcmp(key, "additional") == 0 ||
		    json_object_get(spec, key) != NULL);
}

/* A failed call: *out NULL, one printable line, no marked value. */
static void
fz_check_error(const struct cb_error *err, const json_t *out, bool marked)
{
	size_t	i;

	FZ_ASSERT(out == NULL);
	FZ_ASSERT(err->code == CB_EBADREQ || err->code == CB_EFORBIDDEN);
	FZ_ASSERT(err->msg[0] != '\0');
	for (i = 0; err->msg[i] != '\0'; i++)
		FZ_ASSERT(err->msg[i] >= 0x20 && err->msg[i] < 0x7f);
	if (marked)
		FZ_ASSERT(strstr(err->msg, FZ_MARK) == NULL);
}

/* claims_pack then claims_from_msgpack gives doc back, or the depth error. */
static void
fz_round_trip(const json_t *doc)
{
	msgpack_sbuffer		 buf;
	msgpack_packer		 pk;
	msgpack_unpacked	 u;
	struct cb_error		 err;
	json_t			*back = NULL;
	size_t			 off = 0;
	int			 rc;

	msgpack_sbuffer_init(&buf);
	msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
	claims_pack(&pk, doc);
	msgpack_unpacked_init(&u);
	FZ_ASSERT(msgpack_unpack_next(&u, buf.data, buf.size, &off) ==
	    MSGPACK_UNPACK_SUCCESS && off == buf.size);
	cb_error_clear(&err);
	rc = claims_from_msgpack(&u.data, "claims", &back, &err);
	if (fz_depth(doc) <= CLAIMS_DEPTH_MAX) {
		FZ_ASSERT(rc == 0);
		FZ_ASSERT(json_equal((json_t *)doc, back));
	} else {
		FZ_ASSERT(rc == -CB_EBADREQ && back == NULL);
		FZ_ASSERT(strstr(err.msg, "claims") != NULL);
	}
	json_decref(back);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*nul;
	struct cb_error	 err;
	json_t		*doc = NULL, *spec = NULL, *out = NULL;
	size_t		 clen;
	bool		 marked, ok, bad, forbidden;
	int		 rc;

	if ((nul = memchr(data, '\0', size)) == NULL)
		return 0;
	clen = (size_t)(nul - data);
	doc = json_loadb((const char *)data, clen, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL);
	spec = json_loadb((const char *)nul + 1, size - clen - 1,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (doc == NULL || spec == NULL)
		goto done;

	fz_lookup_all(doc, spec);

	cb_error_clear(&err);
	rc = claims_attributes(doc, spec, &out, &err);
	marked = fz_marked(doc) && !fz_marked(spec);
	fz_model_attributes(doc, spec, &ok, &bad, &forbidden);
	if (rc == 0) {
		FZ_ASSERT(ok);
		fz_check_attributes(doc, spec, out);
	} else {
		/* With two faults in the claims, either may be named. */
		FZ_ASSERT((rc == -CB_EBADREQ && bad) ||
		    (rc == -CB_EFORBIDDEN && forbidden));
		FZ_ASSERT(rc == -err.code);
		fz_check_error(&err, out, marked);
	}
	/* Without a spec, nothing is read but the defaults. */
	json_decref(out);
	out = NULL;
	FZ_ASSERT(claims_attributes(doc, NULL, &out, &err) == 0);
	FZ_ASSERT(json_object_size(out) == 2 &&
	    json_object_size(json_object_get(out, "additional")) == 0);
	fz_check_roles(doc, NULL, json_object_get(out, "roles"));

	fz_round_trip(doc);
done:
	json_decref(out);
	json_decref(doc);
	json_decref(spec);
	return 0;
}
