/*
 * Unit tests for daemon/claims.c: claim lookup by name and by RFC 6901
 * JSON pointer (every pointer form with its exact result), the login
 * token attributes of SPEC 9.5 (the ADMINISTRATORS rule in every case
 * spelling, the USERS default, the checks of the spec made before any
 * claim is read, messages that never quote a claim's value), and the
 * conversion from msgpack to JSON and back: round trips for every type,
 * and each value claims_from_msgpack must refuse.
 *
 * Claims and specs are written as JSON text and parsed with jansson;
 * msgpack inputs are written byte for byte, so each test says exactly
 * what the daemon's unpacker would hand the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>

#include "cb_error.h"
#include "claims.h"

#define S(lit)		(lit), (sizeof(lit) - 1)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A value planted in claims that no message may quote. */
#define CANARY		"CANARY-7f3a9c"

static const char forbidden_msg[] = "the login token grants the "
    "ADMINISTRATORS group, which a login token may not grant";

/* Parse JSON text (any value, NULs allowed), failing the test if bad. */
static json_t *
load(const char *text)
{
	json_error_t	 jerr;
	json_t		*v;

	v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL |
	    JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL)
		print_error("bad test JSON '%s': %s\n", text, jerr.text);
	assert_non_null(v);
	return v;
}

/* Compact JSON of v ("(absent)" for NULL), malloc'd. */
static char *
dump(const json_t *v)
{
	if (v == NULL)
		return strdup("(absent)");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Assert that got is the JSON value want (text; NULL: absent). */
static void
assert_json(const json_t *got, const char *want, const char *what)
{
	json_t	*w = want != NULL ? load(want) : NULL;
	char	*g;

	if (want == NULL ? got != NULL : !json_equal((json_t *)got, w)) {
		g = dump(got);
		print_error("%s: got %s, want %s\n", what, g,
		    want != NULL ? want : "(absent)");
		free(g);
		fail();
	}
	json_decref(w);
}

/* --- claims_lookup --- */

/*
 * Members named to tell each pointer form apart: "a/b" against a.b,
 * "~1" against "/" (the unescape order), "" against the root, "a~b"
 * for "/a~2b" to find if bad escapes were read as "~0".
 */
static const char lookup_doc[] = "{"
    "\"name\": \"alice\","
    "\"a\": {\"b\": \"nested\"},"
    "\"a/b\": \"slash-member\","
    "\"m~n\": \"tilde-member\","
    "\"a~b\": \"what a bad escape would find\","
    "\"~1\": \"tilde-one\","
    "\"/\": \"slash\","
    "\"arr\": [\"zero\", \"one\", {\"k\": \"in-array\"}],"
    "\"\": \"empty-name\","
    "\"s\": \"string\","
    "\"deep\": {\"\": {\"x\": 7}},"
    "\"n\": null"
    "}";

static const struct {
	const char	*ref;
	const char	*want;		/* JSON text; NULL: absent */
} lookup_cases[] = {
	{ "name",		"\"alice\"" },
	{ "/name",		"\"alice\"" },
	{ "a",			"{\"b\": \"nested\"}" },
	{ "/a/b",		"\"nested\"" },
	{ "a/b",		"\"slash-member\"" },	/* a name, not a path */
	{ "/a~1b",		"\"slash-member\"" },
	{ "/m~0n",		"\"tilde-member\"" },
	{ "/~01",		"\"tilde-one\"" },	/* not "/" */
	{ "/~1",		"\"slash\"" },
	{ "/arr/0",		"\"zero\"" },
	{ "/arr/1",		"\"one\"" },
	{ "/arr/2/k",		"\"in-array\"" },
	{ "/arr/01",		NULL },
	{ "/arr/00",		NULL },
	{ "/arr/-",		NULL },
	{ "/arr/9",		NULL },
	{ "/arr/3",		NULL },
	{ "/arr/+1",		NULL },
	{ "/arr/ 1",		NULL },
	{ "/arr/1x",		NULL },
	{ "/arr/",		NULL },
	{ "/arr/99999999999999999999999999", NULL },
	{ "/arr/18446744073709551617", NULL },
	{ "/",			"\"empty-name\"" },
	{ "/deep//x",		"7" },
	{ "/deep/",		"{\"x\": 7}" },
	{ "//",			NULL },		/* "" is a string */
	{ "/s/0",		NULL },		/* through a string */
	{ "/s/x",		NULL },
	{ "/a/b/c",		NULL },
	{ "/arr/0/0",		NULL },
	{ "/n",			"null" },
	{ "/n/x",		NULL },
	{ "/missing",		NULL },
	{ "missing",		NULL },
	{ "/A/b",		NULL },		/* names are case-sensitive */
	{ "/a~2b",		NULL },		/* bad escapes find nothing */
	{ "/m~",		NULL },
	{ "/a/b~",		NULL },
	{ "/~",			NULL },
	{ "/a~1",		NULL },
};

static void
test_lookup_pointer_forms(void **state)
{
	json_t	*doc = load(lookup_doc);
	char	 what[128];
	size_t	 i;

	(void)state;
	for (i = 0; i < NELEM(lookup_cases); i++) {
		snprintf(what, sizeof(what), "lookup '%s'",
		    lookup_cases[i].ref);
		assert_json(claims_lookup(doc, lookup_cases[i].ref),
		    lookup_cases[i].want, what);
	}
	json_decref(doc);
}

static void
test_lookup_in_array_root_and_scalars(void **state)
{
	json_t	*arr = load("[\"x\", [\"y\"]]");
	json_t	*str = load("\"text\"");
	json_t	*doc = load(lookup_doc);

	(void)state;
	assert_json(claims_lookup(arr, "/0"), "\"x\"", "array root /0");
	assert_json(claims_lookup(arr, "/1/0"), "\"y\"", "array root /1/0");
	assert_json(claims_lookup(arr, "0"), NULL, "array root, name 0");
	assert_json(claims_lookup(arr, "/"), NULL, "array root, /");
	assert_json(claims_lookup(str, "/"), NULL, "string root");
	assert_json(claims_lookup(str, "text"), NULL, "string root, name");
	assert_null(claims_lookup(NULL, "/a"));
	assert_null(claims_lookup(NULL, "a"));
	assert_null(claims_lookup(doc, NULL));
	json_decref(arr);
	json_decref(str);
	json_decref(doc);
}

/* The value found is the claim itself, not a copy. */
static void
test_lookup_returns_the_claim(void **state)
{
	json_t	*doc = load(lookup_doc);

	(void)state;
	assert_ptr_equal(claims_lookup(doc, "/a/b"),
	    json_object_get(json_object_get(doc, "a"), "b"));
	assert_ptr_equal(claims_lookup(doc, "/a~1b"),
	    json_object_get(doc, "a/b"));
	json_decref(doc);
}

/* --- claims_attributes --- */

/* Run claims_attributes on JSON texts (spec NULL: none). */
static int
attrs(const char *claims, const char *spec, json_t **out,
    struct cb_error *err)
{
	json_t	*c = load(claims);
	json_t	*s = spec != NULL ? load(spec) : NULL;
	int	 rc;

	cb_error_clear(err);
	*out = (json_t *)0x1;	/* must be overwritten */
	rc = claims_attributes(c, s, out, err);
	json_decref(c);
	json_decref(s);
	return rc;
}

/* Expect success with exactly the attributes want. */
static void
attrs_ok(const char *claims, const char *spec, const char *want)
{
	struct cb_error	 err;
	json_t		*out;
	int		 rc;

	rc = attrs(claims, spec, &out, &err);
	if (rc != 0)
		print_error("claims %s spec %s: %s\n", claims,
		    spec != NULL ? spec : "(none)", err.msg);
	assert_int_equal(rc, 0);
	assert_json(out, want, spec != NULL ? spec : "(no spec)");
	json_decref(out);
}

/*
 * Expect failure with code and a message holding msg; no message may
 * quote CANARY, which the tests plant in claim values.
 */
static void
attrs_err(const char *claims, const char *spec, int code, const char *msg)
{
	struct cb_error	 err;
	json_t		*out;
	int		 rc;

	rc = attrs(claims, spec, &out, &err);
	if (rc != -code || strstr(err.msg, msg) == NULL)
		print_error("claims %s spec %s: rc %d '%s', want %d '%s'\n",
		    claims, spec != NULL ? spec : "(none)", rc, err.msg, -code,
		    msg);
	assert_int_equal(rc, -code);
	assert_int_equal(err.code, code);
	assert_null(out);
	assert_non_null(strstr(err.msg, msg));
	assert_null(strstr(err.msg, CANARY));
}

static void
test_attributes_plain_names(void **state)
{
	(void)state;
	attrs_ok("{\"sub\": \"u-1\", \"name\": \"Alice\", \"groups\": "
	    "[\"g1\", \"g2\"], \"upn\": \"alice@corp\", \"mail\": \"a@x\", "
	    "\"other\": 1}",
	    "{\"user_id\": \"sub\", \"user_name\": \"name\", \"roles\": "
	    "\"groups\", \"upn\": \"upn\", \"email\": \"mail\"}",
	    "{\"user_id\": \"u-1\", \"user_name\": \"Alice\", \"roles\": "
	    "[\"g1\", \"g2\"], \"upn\": \"alice@corp\", \"email\": \"a@x\", "
	    "\"additional\": {}}");
}

static void
test_attributes_json_pointers(void **state)
{
	(void)state;
	attrs_ok("{\"path\": {\"to\": {\"given_name\": \"gn\", \"name\": "
	    "\"N\", \"groups\": [\"x\"], \"u/p\": \"upn\", \"m~l\": "
	    "[\"first@x\", \"second@x\"]}}}",
	    "{\"user_id\": \"/path/to/given_name\", \"user_name\": "
	    "\"/path/to/name\", \"roles\": \"/path/to/groups\", \"upn\": "
	    "\"/path/to/u~1p\", \"email\": \"/path/to/m~0l/1\"}",
	    "{\"user_id\": \"gn\", \"user_name\": \"N\", \"roles\": [\"x\"], "
	    "\"upn\": \"upn\", \"email\": \"second@x\", \"additional\": {}}");
}

static void
test_attributes_number_user_id_kept_as_number(void **state)
{
	struct cb_error	 err;
	json_t		*out;

	(void)state;
	attrs_ok("{\"uid\": 42, \"name\": 1.5}",
	    "{\"user_id\": \"uid\", \"user_name\": \"name\"}",
	    "{\"user_id\": 42, \"user_name\": 1.5, \"roles\": [\"USERS\"], "
	    "\"additional\": {}}");
	assert_int_equal(attrs("{\"uid\": 42}", "{\"user_id\": \"uid\"}",
	    &out, &err), 0);
	assert_true(json_is_integer(json_object_get(out, "user_id")));
	json_decref(out);
}

static void
test_attributes_missing_claims_are_absent(void **state)
{
	(void)state;
	attrs_ok("{\"x\": 1}",
	    "{\"user_id\": \"sub\", \"user_name\": \"/a/b\", \"upn\": "
	    "\"/x/y\", \"email\": \"mail\"}",
	    "{\"roles\": [\"USERS\"], \"additional\": {}}");
}

static void
test_attributes_wrong_type_claims_refused(void **state)
{
	(void)state;
	attrs_err("{\"sub\": true}", "{\"user_id\": \"sub\"}", CB_EBADREQ,
	    "user_id claim (\"sub\")");
	attrs_err("{\"sub\": {\"v\": \"" CANARY "\"}}",
	    "{\"user_id\": \"sub\"}", CB_EBADREQ, "user_id");
	attrs_err("{\"p\": {\"n\": [\"" CANARY "\"]}}",
	    "{\"user_name\": \"/p/n\"}", CB_EBADREQ,
	    "user_name claim (\"/p/n\")");
	attrs_err("{\"upn\": null}", "{\"upn\": \"upn\"}", CB_EBADREQ,
	    "upn");
	attrs_err("{\"m\": [\"" CANARY "\"]}", "{\"email\": \"m\"}",
	    CB_EBADREQ, "email");
}

static void
test_attributes_administrators_forbidden(void **state)
{
	static const char *const claims[] = {
		"{\"groups\": [\"g1\", \"ADMINISTRATORS\"]}",
		"{\"groups\": [\"ADMINISTRATORS\"]}",
		"{\"groups\": \"ADMINISTRATORS\"}",
		"{\"groups\": \"administrators\"}",
		"{\"groups\": [\"x\", \"AdMiNiStRaToRs\", \"y\"]}",
		/* ADMINISTRATORS wins over a bad element. */
		"{\"groups\": [7, \"administrators\"]}",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(claims); i++)
		attrs_err(claims[i], "{\"roles\": \"groups\"}", CB_EFORBIDDEN,
		    forbidden_msg);
	attrs_err("{\"p\": {\"g\": [\"ADMINISTRATORS\"]}}",
	    "{\"roles\": \"/p/g\"}", CB_EFORBIDDEN, forbidden_msg);
}

/* Only the exact name, in any ASCII case, is the administrators group. */
static void
test_attributes_administrators_lookalikes_kept(void **state)
{
	(void)state;
	attrs_ok("{\"g\": [\" ADMINISTRATORS\", \"ADMINISTRATORS \", "
	    "\"ADMINISTRATOR\", \"ADMINISTRATORS2\", \"АДМИНИСТРАТОРЫ\"]}",
	    "{\"roles\": \"g\"}",
	    "{\"roles\": [\" ADMINISTRATORS\", \"ADMINISTRATORS \", "
	    "\"ADMINISTRATOR\", \"ADMINISTRATORS2\", \"АДМИНИСТРАТОРЫ\"], "
	    "\"additional\": {}}");
	/* The rule is about roles: other attributes may hold the word. */
	attrs_ok("{\"sub\": \"ADMINISTRATORS\"}", "{\"user_id\": \"sub\"}",
	    "{\"user_id\": \"ADMINISTRATORS\", \"roles\": [\"USERS\"], "
	    "\"additional\": {}}");
}

static void
test_attributes_roles_default_users(void **state)
{
	static const char want[] = "{\"roles\": [\"USERS\"], "
	    "\"additional\": {}}";

	(void)state;
	attrs_ok("{\"other\": [\"g\"]}", "{\"roles\": \"groups\"}", want);
	attrs_ok("{\"groups\": null}", "{\"roles\": \"groups\"}", want);
	attrs_ok("{\"p\": {\"groups\": null}}", "{\"roles\": \"/p/groups\"}",
	    want);
	attrs_ok("{\"groups\": [\"g\"]}", "{\"user_id\": \"sub\"}", want);
	attrs_ok("{\"groups\": [\"ADMINISTRATORS\"]}", "{}", want);
	attrs_ok("{\"groups\": [\"ADMINISTRATORS\"]}", NULL, want);
}

static void
test_attributes_roles_forms(void **state)
{
	(void)state;
	attrs_ok("{\"groups\": []}", "{\"roles\": \"groups\"}",
	    "{\"roles\": [], \"additional\": {}}");
	attrs_ok("{\"groups\": \"analysts\"}", "{\"roles\": \"groups\"}",
	    "{\"roles\": [\"analysts\"], \"additional\": {}}");
	attrs_ok("{\"groups\": \"\"}", "{\"roles\": \"groups\"}",
	    "{\"roles\": [\"\"], \"additional\": {}}");
}

static void
test_attributes_roles_bad_types_refused(void **state)
{
	(void)state;
	attrs_err("{\"groups\": [\"" CANARY "\", 3]}",
	    "{\"roles\": \"groups\"}", CB_EBADREQ,
	    "roles claim (\"groups\") holds a non-string at index 1");
	attrs_err("{\"groups\": [\"g\", null]}", "{\"roles\": \"groups\"}",
	    CB_EBADREQ, "index 1");
	attrs_err("{\"groups\": [[\"" CANARY "\"]]}",
	    "{\"roles\": \"groups\"}", CB_EBADREQ, "index 0");
	attrs_err("{\"groups\": {\"g\": \"" CANARY "\"}}",
	    "{\"roles\": \"groups\"}", CB_EBADREQ,
	    "roles claim (\"groups\") is neither");
	attrs_err("{\"groups\": 12}", "{\"roles\": \"groups\"}", CB_EBADREQ,
	    "roles");
	attrs_err("{\"groups\": false}", "{\"roles\": \"/groups\"}",
	    CB_EBADREQ, "roles claim (\"/groups\")");
}

/* A group name with a NUL byte could pass for another where C reads it. */
static void
test_attributes_roles_with_nul_refused(void **state)
{
	(void)state;
	attrs_err("{\"groups\": \"ADMINISTRATORS\\u0000x\"}",
	    "{\"roles\": \"groups\"}", CB_EBADREQ,
	    "roles claim (\"groups\") holds a NUL byte");
	attrs_err("{\"groups\": [\"g\", \"administrators\\u0000\"]}",
	    "{\"roles\": \"groups\"}", CB_EBADREQ,
	    "holds a string with a NUL byte at index 1");
}

static void
test_attributes_additional_present_and_absent(void **state)
{
	(void)state;
	attrs_ok("{\"dept\": \"sales\", \"n\": null, \"obj\": {\"a\": [1]}, "
	    "\"/x\": 2, \"x\": 3}",
	    "{\"additional\": [\"dept\", \"absent\", \"n\", \"obj\", \"/x\"]}",
	    "{\"roles\": [\"USERS\"], \"additional\": {\"dept\": \"sales\", "
	    "\"n\": null, \"obj\": {\"a\": [1]}, \"/x\": 2}}");
	attrs_ok("{\"dept\": \"sales\"}", "{\"additional\": []}",
	    "{\"roles\": [\"USERS\"], \"additional\": {}}");
}

/* A name with a NUL byte is a name like any other (JSON text cannot
 * carry one in a key, msgpack can). */
static void
test_attributes_additional_name_with_nul(void **state)
{
	struct cb_error	 err;
	json_t		*c, *s, *out, *add;

	(void)state;
	c = load("{\"a\": 2}");
	assert_int_equal(json_object_setn_new(c, "a\0b", 3, json_integer(1)),
	    0);
	s = load("{\"additional\": [\"a\\u0000b\", \"a\\u0000c\"]}");
	assert_int_equal(claims_attributes(c, s, &out, &err), 0);
	add = json_object_get(out, "additional");
	assert_int_equal(json_object_size(add), 1);
	assert_json(json_object_getn(add, "a\0b", 3), "1", "a\\0b");
	json_decref(c);
	json_decref(s);
	json_decref(out);
}

static void
test_attributes_spec_must_be_object(void **state)
{
	static const char *const specs[] = {
		"[\"user_id\"]", "\"sub\"", "1", "null", "true"
	};
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(specs); i++)
		attrs_err("{}", specs[i], CB_EBADREQ,
		    "attributes must be a map");
}

static void
test_attributes_unknown_spec_key_refused(void **state)
{
	(void)state;
	attrs_err("{}", "{\"user_id\": \"sub\", \"groups\": \"g\"}",
	    CB_EBADREQ, "unknown key \"groups\"");
	attrs_err("{}", "{\"USER_ID\": \"sub\"}", CB_EBADREQ,
	    "unknown key \"USER_ID\"");
}

/* A key with a NUL byte is not the key before it. */
static void
test_attributes_spec_key_with_nul_refused(void **state)
{
	struct cb_error	 err;
	json_t		*s, *out;

	(void)state;
	s = json_object();
	assert_non_null(s);
	assert_int_equal(json_object_setn_new(s, "user_id\0x", 9,
	    json_string("sub")), 0);
	assert_int_equal(claims_attributes(NULL, s, &out, &err), -CB_EBADREQ);
	assert_null(out);
	assert_non_null(strstr(err.msg, "unknown key \"user_id?x\""));
	json_decref(s);
}

static void
test_attributes_reference_checks(void **state)
{
	char	*spec, *ref;
	size_t	 n;

	(void)state;
	attrs_err("{}", "{\"user_id\": 1}", CB_EBADREQ,
	    "attributes.user_id must be a string");
	attrs_err("{}", "{\"roles\": [\"groups\"]}", CB_EBADREQ,
	    "attributes.roles must be a string");
	attrs_err("{}", "{\"email\": null}", CB_EBADREQ,
	    "attributes.email must be a string");
	attrs_err("{}", "{\"upn\": \"\"}", CB_EBADREQ,
	    "attributes.upn must not be empty");
	attrs_err("{}", "{\"user_name\": \"a\\u0000b\"}", CB_EBADREQ,
	    "attributes.user_name holds a NUL byte");
	attrs_err("{}", "{\"user_id\": \"/a~2b\"}", CB_EBADREQ,
	    "attributes.user_id is a JSON pointer with a \"~\" not followed "
	    "by \"0\" or \"1\"");
	attrs_err("{}", "{\"roles\": \"/groups~\"}", CB_EBADREQ,
	    "attributes.roles is a JSON pointer");
	attrs_err("{}", "{\"email\": \"/~/x\"}", CB_EBADREQ,
	    "attributes.email is a JSON pointer");
	/* A name is not a pointer: its "~" means itself. */
	attrs_ok("{\"a~2\": \"v\"}", "{\"user_id\": \"a~2\"}",
	    "{\"user_id\": \"v\", \"roles\": [\"USERS\"], "
	    "\"additional\": {}}");

	/* 1024 bytes is the longest reference. */
	n = 1025;
	ref = malloc(n + 1);
	spec = malloc(n + 32);
	assert_non_null(ref);
	assert_non_null(spec);
	memset(ref, 'a', n);
	ref[n] = '\0';
	snprintf(spec, n + 32, "{\"user_id\": \"%s\"}", ref);
	attrs_err("{}", spec, CB_EBADREQ, "attributes.user_id is longer than "
	    "1024 bytes");
	ref[0] = '/';
	ref[1024] = '\0';
	snprintf(spec, n + 32, "{\"user_id\": \"%s\"}", ref);
	attrs_ok("{}", spec, "{\"roles\": [\"USERS\"], \"additional\": {}}");
	free(ref);
	free(spec);
}

static void
test_attributes_additional_checks(void **state)
{
	char	 spec[1024];
	size_t	 i, off;

	(void)state;
	attrs_err("{}", "{\"additional\": \"dept\"}", CB_EBADREQ,
	    "attributes.additional must be an array");
	attrs_err("{}", "{\"additional\": {\"dept\": 1}}", CB_EBADREQ,
	    "attributes.additional must be an array");
	attrs_err("{}", "{\"additional\": [\"a\", \"\"]}", CB_EBADREQ,
	    "attributes.additional[1] must be a non-empty string");
	attrs_err("{}", "{\"additional\": [3]}", CB_EBADREQ,
	    "attributes.additional[0] must be a non-empty string");
	attrs_err("{}", "{\"additional\": [\"a\", \"b\", \"a\"]}", CB_EBADREQ,
	    "attributes.additional[2] repeats additional[0]");

	/* 64 names are the most. */
	off = (size_t)snprintf(spec, sizeof(spec), "{\"additional\": [");
	for (i = 0; i < 64; i++)
		off += (size_t)snprintf(spec + off, sizeof(spec) - off,
		    "%s\"c%zu\"", i > 0 ? ", " : "", i);
	snprintf(spec + off, sizeof(spec) - off, "]}");
	attrs_ok("{\"c63\": 1}", spec, "{\"roles\": [\"USERS\"], "
	    "\"additional\": {\"c63\": 1}}");
	snprintf(spec + off, sizeof(spec) - off, ", \"c64\"]}");
	attrs_err("{}", spec, CB_EBADREQ, "attributes.additional names more "
	    "than 64 claims");
}

/* The whole spec is checked before any claim is read. */
static void
test_attributes_spec_checked_before_claims(void **state)
{
	(void)state;
	attrs_err("{\"groups\": \"ADMINISTRATORS\"}",
	    "{\"roles\": \"groups\", \"additional\": [\"\"]}", CB_EBADREQ,
	    "attributes.additional[0]");
	attrs_err("{\"groups\": \"ADMINISTRATORS\"}",
	    "{\"roles\": \"groups\", \"email\": \"/~9\"}", CB_EBADREQ,
	    "attributes.email");
	attrs_err("{\"sub\": true}",
	    "{\"user_id\": \"sub\", \"bogus\": \"x\"}", CB_EBADREQ,
	    "unknown key \"bogus\"");
}

/* Claims that are not an object have no members to find. */
static void
test_attributes_claims_not_object(void **state)
{
	(void)state;
	attrs_ok("[\"ADMINISTRATORS\"]",
	    "{\"user_id\": \"sub\", \"roles\": \"0\", \"additional\": [\"0\"]}",
	    "{\"roles\": [\"USERS\"], \"additional\": {}}");
	attrs_err("[\"ADMINISTRATORS\"]", "{\"roles\": \"/0\"}",
	    CB_EFORBIDDEN, forbidden_msg);
}

/* The answer holds new references: it outlives the claims. */
static void
test_attributes_outlive_claims(void **state)
{
	struct cb_error	 err;
	json_t		*c, *s, *out;

	(void)state;
	c = load("{\"sub\": \"u\", \"g\": [\"a\", \"b\"], \"d\": {\"k\": 1}}");
	s = load("{\"user_id\": \"sub\", \"roles\": \"g\", \"additional\": "
	    "[\"d\"]}");
	assert_int_equal(claims_attributes(c, s, &out, &err), 0);
	json_decref(c);
	json_decref(s);
	assert_json(out, "{\"user_id\": \"u\", \"roles\": [\"a\", \"b\"], "
	    "\"additional\": {\"d\": {\"k\": 1}}}", "after the claims went");
	json_decref(out);
}

/* --- claims_from_msgpack and claims_pack --- */

/* Unpack n bytes (exactly one value) and convert them as "payload". */
static int
from_mp(const char *p, size_t n, json_t **out, struct cb_error *err)
{
	msgpack_unpacked	 u;
	size_t			 off = 0;
	int			 rc;

	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, p, n, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, n);
	if (err != NULL)
		cb_error_clear(err);
	*out = (json_t *)0x1;
	rc = claims_from_msgpack(&u.data, "payload", out, err);
	msgpack_unpacked_destroy(&u);
	return rc;
}

/* Pack v and return the bytes in *buf (an sbuffer the caller destroys). */
static void
pack(const json_t *v, msgpack_sbuffer *buf)
{
	msgpack_packer	pk;

	msgpack_sbuffer_init(buf);
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	claims_pack(&pk, v);
}

/* msgpack bytes -> JSON -> msgpack gives the same bytes. */
static void
round_trip(const char *p, size_t n, const char *want_json)
{
	struct cb_error	 err;
	msgpack_sbuffer	 buf;
	json_t		*v;
	size_t		 i;

	if (from_mp(p, n, &v, &err) != 0)
		print_error("round trip: %s\n", err.msg);
	assert_non_null(v);
	assert_ptr_not_equal(v, (json_t *)0x1);
	if (want_json != NULL)
		assert_json(v, want_json, "converted");
	pack(v, &buf);
	if (buf.size != n || memcmp(buf.data, p, n) != 0) {
		print_error("round trip: %zu bytes in, %zu out:", n, buf.size);
		for (i = 0; i < buf.size; i++)
			print_error(" %02x", (unsigned char)buf.data[i]);
		print_error("\n");
	}
	assert_int_equal(buf.size, n);
	assert_memory_equal(buf.data, p, n);
	msgpack_sbuffer_destroy(&buf);
	json_decref(v);
}

static void
test_msgpack_round_trip_scalars(void **state)
{
	static const struct {
		const char	*mp;
		size_t		 n;
		const char	*json;
	} cases[] = {
		{ S("\xc0"), "null" },
		{ S("\xc3"), "true" },
		{ S("\xc2"), "false" },
		{ S("\x00"), "0" },
		{ S("\x7f"), "127" },
		{ S("\xcc\x80"), "128" },
		{ S("\xcc\xff"), "255" },
		{ S("\xcd\xea\x60"), "60000" },
		{ S("\xce\xee\x6b\x28\x00"), "4000000000" },
		{ S("\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), "4294967296" },
		{ S("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"),
		    "9223372036854775807" },
		{ S("\xff"), "-1" },
		{ S("\xe0"), "-32" },
		{ S("\xd0\x9c"), "-100" },
		{ S("\xd1\x8a\xd0"), "-30000" },
		{ S("\xd2\x88\xca\x6c\x00"), "-2000000000" },
		{ S("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
		    "-9223372036854775808" },
		{ S("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"), "1.5" },
		{ S("\xcb\xbf\xd0\x00\x00\x00\x00\x00\x00"), "-0.25" },
		{ S("\xcb\x00\x00\x00\x00\x00\x00\x00\x00"), "0.0" },
		{ S("\xcb\x7f\xef\xff\xff\xff\xff\xff\xff"),
		    "1.7976931348623157e308" },
		{ S("\xa0"), "\"\"" },
		{ S("\xa5hello"), "\"hello\"" },
		{ S("\xa6h\xc3\xa9llo"), "\"h\\u00e9llo\"" },
		{ S("\xa3" "a\x00" "b"), "\"a\\u0000b\"" },
		{ S("\xa4\xf0\x9f\x94\x91"), "\"\\ud83d\\udd11\"" },
		{ S("\xd9\x20" "0123456789abcdef0123456789abcdef"),
		    "\"0123456789abcdef0123456789abcdef\"" },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++)
		round_trip(cases[i].mp, cases[i].n, cases[i].json);
}

static void
test_msgpack_round_trip_containers(void **state)
{
	(void)state;
	round_trip(S("\x90"), "[]");
	round_trip(S("\x80"), "{}");
	/* Keys in their order, not sorted. */
	round_trip(S("\x83\xa1z\x01\xa1" "a\x02\xa1m\x03"),
	    "{\"z\": 1, \"a\": 2, \"m\": 3}");
	round_trip(S("\x94\x01\xa1x\x90\x80"), "[1, \"x\", [], {}]");
	/* A key with a NUL byte (no JSON text has one), and an empty key. */
	round_trip(S("\x82\xa3k\x00z\xc3\xa0\xc0"), NULL);
	/* Every type in one claims map. */
	round_trip(S("\x89"
	    "\xa3sub\xa5u-123"
	    "\xa3" "exp\xce\x6a\x3b\x4c\x00"
	    "\xa3neg\xd0\x80"
	    "\xa5score\xcb\x40\x09\x21\xf9\xf0\x1b\x86\x6e"
	    "\xa2ok\xc3"
	    "\xa2no\xc2"
	    "\xa3nil\xc0"
	    "\xa6groups\x92\xa2g1\xa2g2"
	    "\xa6nested\x81\xa1" "a\x91\x81\xa1" "b\x90"),
	    "{\"sub\": \"u-123\", \"exp\": 1782270976, \"neg\": -128, "
	    "\"score\": 3.14159, \"ok\": true, \"no\": false, \"nil\": null, "
	    "\"groups\": [\"g1\", \"g2\"], "
	    "\"nested\": {\"a\": [{\"b\": []}]}}");
}

/* A float32 comes back as the same number in float64. */
static void
test_msgpack_float32_becomes_float64(void **state)
{
	struct cb_error	 err;
	msgpack_sbuffer	 buf;
	json_t		*v;

	(void)state;
	assert_int_equal(from_mp(S("\xca\x3f\xc0\x00\x00"), &v, &err), 0);
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 1.5);
	pack(v, &buf);
	assert_int_equal(buf.size, 9);
	assert_memory_equal(buf.data, "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00",
	    9);
	msgpack_sbuffer_destroy(&buf);
	json_decref(v);
}

/* JSON text -> msgpack -> JSON gives the same value. */
static void
test_json_round_trip(void **state)
{
	static const char *const docs[] = {
		"{\"embedId\": \"e-1\", \"iat\": 1700000000, \"exp\": "
		"1700000600, \"dlEmbedService\": \"YC\", \"params\": "
		"{\"a\": \"1\", \"b\": [\"x\", \"y\"]}}",
		"[1e300, -1e-300, 0.5, -9223372036854775808, "
		"9223372036854775807, null, true, false, \"\", [[[]]], {}]",
		"\"\\u0000\\u2028\\ud83d\\udd11\"",
		"{\"z\": {\"y\": {\"x\": 1}}, \"a\": 0}",
	};
	struct cb_error		 err;
	msgpack_sbuffer		 buf;
	json_t			*in, *out;
	char			*a, *b;
	size_t			 i;

	(void)state;
	for (i = 0; i < NELEM(docs); i++) {
		in = load(docs[i]);
		pack(in, &buf);
		assert_int_equal(from_mp(buf.data, buf.size, &out, &err), 0);
		/* Same text: same types, same numbers, same key order. */
		a = dump(in);
		b = dump(out);
		assert_string_equal(a, b);
		assert_true(json_equal(in, out));
		free(a);
		free(b);
		json_decref(in);
		json_decref(out);
		msgpack_sbuffer_destroy(&buf);
	}
}

/* NULL packs as nil. */
static void
test_pack_null_pointer_is_nil(void **state)
{
	msgpack_sbuffer	buf;

	(void)state;
	pack(NULL, &buf);
	assert_int_equal(buf.size, 1);
	assert_int_equal((unsigned char)buf.data[0], 0xc0);
	msgpack_sbuffer_destroy(&buf);
}

/* Expect claims_from_msgpack to refuse with -CB_EBADREQ and msg. */
static void
mp_refused(const char *p, size_t n, const char *msg)
{
	struct cb_error	 err;
	json_t		*v;
	int		 rc;

	rc = from_mp(p, n, &v, &err);
	if (rc != -CB_EBADREQ || strstr(err.msg, msg) == NULL)
		print_error("rc %d '%s', want bad_request '%s'\n", rc, err.msg,
		    msg);
	assert_int_equal(rc, -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_null(v);
	assert_non_null(strstr(err.msg, "payload"));
	assert_non_null(strstr(err.msg, msg));
	assert_null(strstr(err.msg, CANARY));
	/* Without an error struct too. */
	assert_int_equal(from_mp(p, n, &v, NULL), -CB_EBADREQ);
	assert_null(v);
}

static void
test_msgpack_refusals(void **state)
{
	(void)state;
	mp_refused(S("\xc4\x03" "abc"), "binary data");
	mp_refused(S("\x91\xc4\x00"), "binary data");
	mp_refused(S("\xd4\x01\x00"), "extension type");
	mp_refused(S("\xc7\x02\x05xy"), "extension type");
	mp_refused(S("\x81\x01\x02"), "map key that is not a string");
	mp_refused(S("\x81\xc4\x01k\x01"), "map key that is not a string");
	mp_refused(S("\x81\xc0\x01"), "map key that is not a string");
	mp_refused(S("\x81\x90\x01"), "map key that is not a string");
	mp_refused(S("\x82\xa1k\x01\xa1k\x02"), "duplicate key");
	mp_refused(S("\x83\xa1" "a\x01\xa2k\x00\x02\xa2k\x00\x03"),
	    "duplicate key");
	mp_refused(S("\x82\xa0\x01\xa0\x02"), "duplicate key");
	mp_refused(S("\x82\xa0\x01\xd9\x00\x02"), "duplicate key");
	mp_refused(S("\xa2\xc3\x28"), "string that is not valid UTF-8");
	mp_refused(S("\xa3\xed\xa0\x80"), "string that is not valid UTF-8");
	mp_refused(S("\xa2\xc0\xaf"), "string that is not valid UTF-8");
	mp_refused(S("\xa4\xf4\x90\x80\x80"),
	    "string that is not valid UTF-8");
	mp_refused(S("\xa1\xff"), "string that is not valid UTF-8");
	mp_refused(S("\x81\xa2\xc3\x28\x01"), "map key that is not valid "
	    "UTF-8");
	mp_refused(S("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "not finite");
	mp_refused(S("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"), "not finite");
	mp_refused(S("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"), "not finite");
	mp_refused(S("\xca\x7f\xc0\x00\x00"), "not finite");
	mp_refused(S("\xca\x7f\x80\x00\x00"), "not finite");
	mp_refused(S("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"),
	    "above the signed 64-bit range");
	mp_refused(S("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	    "above the signed 64-bit range");
	/* A refusal deep inside is the whole value's. */
	mp_refused(S("\x82\xa1" "a\xad" CANARY "\xa1" "b\x92\x01\x81\xa1"
	    "c\xc4\x00"), "binary data");
}

/* Build n nested arrays (or maps under key "k") around nil. */
static char *
nested(size_t n, bool maps, size_t *len)
{
	char	*p, *q;
	size_t	 i;

	*len = (maps ? 3 : 1) * n + 1;
	p = malloc(*len);
	assert_non_null(p);
	for (i = 0, q = p; i < n; i++)
		if (maps) {
			memcpy(q, "\x81\xa1k", 3);
			q += 3;
		} else
			*q++ = '\x91';
	*q = '\xc0';
	return p;
}

static void
test_msgpack_depth_limit(void **state)
{
	struct cb_error	 err;
	json_t		*v;
	char		*p;
	size_t		 n;
	int		 maps;

	(void)state;
	for (maps = 0; maps < 2; maps++) {
		p = nested(CLAIMS_DEPTH_MAX, maps, &n);
		assert_int_equal(from_mp(p, n, &v, &err), 0);
		json_decref(v);
		free(p);
		p = nested(CLAIMS_DEPTH_MAX + 1, maps, &n);
		mp_refused(p, n, "nested deeper than 16");
		free(p);
	}
	/* Depth is nesting, not the number of containers. */
	p = malloc(2 * CLAIMS_DEPTH_MAX + 3);
	assert_non_null(p);
	p[0] = '\xdc';
	p[1] = 0;
	p[2] = (char)(2 * CLAIMS_DEPTH_MAX);
	memset(p + 3, '\x90', 2 * CLAIMS_DEPTH_MAX);
	assert_int_equal(from_mp(p, 2 * CLAIMS_DEPTH_MAX + 3, &v, &err), 0);
	assert_int_equal(json_array_size(v), 2 * CLAIMS_DEPTH_MAX);
	json_decref(v);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_pointer_forms),
		cmocka_unit_test(test_lookup_in_array_root_and_scalars),
		cmocka_unit_test(test_lookup_returns_the_claim),
		cmocka_unit_test(test_attributes_plain_names),
		cmocka_unit_test(test_attributes_json_pointers),
		cmocka_unit_test(test_attributes_number_user_id_kept_as_number),
		cmocka_unit_test(test_attributes_missing_claims_are_absent),
		cmocka_unit_test(test_attributes_wrong_type_claims_refused),
		cmocka_unit_test(test_attributes_administrators_forbidden),
		cmocka_unit_test(
		    test_attributes_administrators_lookalikes_kept),
		cmocka_unit_test(test_attributes_roles_default_users),
		cmocka_unit_test(test_attributes_roles_forms),
		cmocka_unit_test(test_attributes_roles_bad_types_refused),
		cmocka_unit_test(test_attributes_roles_with_nul_refused),
		cmocka_unit_test(test_attributes_additional_present_and_absent),
		cmocka_unit_test(test_attributes_additional_name_with_nul),
		cmocka_unit_test(test_attributes_spec_must_be_object),
		cmocka_unit_test(test_attributes_unknown_spec_key_refused),
		cmocka_unit_test(test_attributes_spec_key_with_nul_refused),
		cmocka_unit_test(test_attributes_reference_checks),
		cmocka_unit_test(test_attributes_additional_checks),
		cmocka_unit_test(test_attributes_spec_checked_before_claims),
		cmocka_unit_test(test_attributes_claims_not_object),
		cmocka_unit_test(test_attributes_outlive_claims),
		cmocka_unit_test(test_msgpack_round_trip_scalars),
		cmocka_unit_test(test_msgpack_round_trip_containers),
		cmocka_unit_test(test_msgpack_float32_becomes_float64),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_pack_null_pointer_is_nil),
		cmocka_unit_test(test_msgpack_refusals),
		cmocka_unit_test(test_msgpack_depth_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
