/*
 * Unit tests for daemon/subject.c: component_parse and subject_resolve,
 * table-driven.  Every row of the SPEC 5.1 table (who the subject is for
 * each kind, with every combination of initiator, run_as and
 * system_account), external-service inheritance (own declarations first,
 * an id declared by both sides keeps the component's own type, order
 * kept), and everything component_parse must refuse: unknown kinds and
 * keys, wrong types at every level, invalid ids and uuids, duplicate ids
 * within one list, and more than COMP_CREDS_MAX declarations.
 *
 * Components are written in a small JSON-like notation (below), packed
 * with msgpack-c and unpacked again, so component_parse sees exactly the
 * objects the daemon's unpacker would hand it.
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

#include <msgpack.h>

#include "cb_error.h"
#include "subject.h"

/*
 * Notation for msgpack values, so the tables stay readable:
 *
 *	{k: v, ...}	map (keys are any value, so 7: 1 is an int key)
 *	[v, ...]	array
 *	'text'		str; escapes \\ \' \xHH (so '\x00' is a NUL byte)
 *	b'text'		bin, same escapes
 *	word		str: a bare [A-Za-z_][A-Za-z0-9_-]* other than the
 *			three below
 *	true false null	bool and nil
 *	-12		integer
 *	@N(text)	str of N copies of text, for length limits
 */
enum node_type { N_MAP, N_ARRAY, N_STR, N_BIN, N_INT, N_BOOL, N_NIL };

struct node {
	int		 type;
	char		*s;		/* str/bin bytes (malloc'd) */
	size_t		 len;
	int64_t		 i;		/* int, bool */
	struct node	*kids;		/* array items; map keys and values */
	size_t		 n;		/* items; for a map 2 * pairs */
};

struct parser {
	const char	*p;
	const char	*text;		/* for messages */
};

static void	 node_free(struct node *);

static void
parse_fail(struct parser *ps, const char *what)
{
	print_error("notation error (%s) at offset %zu of: %s\n", what,
	    (size_t)(ps->p - ps->text), ps->text);
	fail();
}

static void
skip_ws(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n')
		ps->p++;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
push_byte(char **buf, size_t *len, size_t *cap, char c)
{
	if (*len + 1 >= *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*buf = realloc(*buf, *cap);
		assert_non_null(*buf);
	}
	(*buf)[(*len)++] = c;
	(*buf)[*len] = '\0';
}

static void
parse_quoted(struct parser *ps, struct node *nd)
{
	char	*buf = NULL;
	size_t	 len = 0, cap = 0;
	int	 h, l = 0;

	ps->p++;			/* the opening quote */
	push_byte(&buf, &len, &cap, 'x');
	len = 0;
	while (*ps->p != '\'') {
		if (*ps->p == '\0')
			parse_fail(ps, "unterminated string");
		if (*ps->p == '\\') {
			ps->p++;
			if (*ps->p == 'x') {
				if ((h = hexval(ps->p[1])) < 0 ||
				    (l = hexval(ps->p[2])) < 0)
					parse_fail(ps, "bad \\x escape");
				push_byte(&buf, &len, &cap, (char)(h * 16 + l));
				ps->p += 3;
				continue;
			}
			if (*ps->p != '\\' && *ps->p != '\'')
				parse_fail(ps, "bad escape");
		}
		push_byte(&buf, &len, &cap, *ps->p++);
	}
	ps->p++;
	nd->s = buf;
	nd->len = len;
}

static void
parse_value(struct parser *ps, struct node *nd)
{
	struct node	*k;
	size_t		 cap = 0, count;
	char		 close;

	memset(nd, 0, sizeof(*nd));
	skip_ws(ps);
	if (*ps->p == '{' || *ps->p == '[') {
		nd->type = *ps->p == '{' ? N_MAP : N_ARRAY;
		close = *ps->p == '{' ? '}' : ']';
		ps->p++;
		skip_ws(ps);
		if (*ps->p == close) {
			ps->p++;
			return;
		}
		for (;;) {
			count = nd->type == N_MAP ? 2 : 1;
			if (nd->n + count > cap) {
				cap = cap ? cap * 2 : 8;
				nd->kids = realloc(nd->kids,
				    cap * sizeof(*nd->kids));
				assert_non_null(nd->kids);
			}
			k = &nd->kids[nd->n];
			parse_value(ps, k);
			nd->n++;
			if (nd->type == N_MAP) {
				skip_ws(ps);
				if (*ps->p != ':')
					parse_fail(ps, "expected ':'");
				ps->p++;
				parse_value(ps, k + 1);
				nd->n++;
			}
			skip_ws(ps);
			if (*ps->p == ',') {
				ps->p++;
				continue;
			}
			if (*ps->p != close)
				parse_fail(ps, "expected ',' or close");
			ps->p++;
			return;
		}
	}
	if (*ps->p == '\'') {
		nd->type = N_STR;
		parse_quoted(ps, nd);
		return;
	}
	if (ps->p[0] == 'b' && ps->p[1] == '\'') {
		nd->type = N_BIN;
		ps->p++;
		parse_quoted(ps, nd);
		return;
	}
	if (*ps->p == '@') {
		char	*end, *buf = NULL;
		size_t	 len = 0, bcap = 0, reps, i;
		const char *t0, *t1;

		reps = strtoul(ps->p + 1, &end, 10);
		if (*end != '(' || (t1 = strchr(end, ')')) == NULL)
			parse_fail(ps, "bad @N(text)");
		t0 = end + 1;
		push_byte(&buf, &len, &bcap, 'x');
		len = 0;
		for (i = 0; i < reps; i++) {
			const char *q;
			for (q = t0; q < t1; q++)
				push_byte(&buf, &len, &bcap, *q);
		}
		nd->type = N_STR;
		nd->s = buf;
		nd->len = len;
		ps->p = t1 + 1;
		return;
	}
	if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
		char *end;

		nd->type = N_INT;
		nd->i = strtoll(ps->p, &end, 10);
		ps->p = end;
		return;
	}
	if ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' &&
	    *ps->p <= 'Z') || *ps->p == '_') {
		const char	*s = ps->p;
		size_t		 n;

		while ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' &&
		    *ps->p <= 'Z') || (*ps->p >= '0' && *ps->p <= '9') ||
		    *ps->p == '_' || *ps->p == '-')
			ps->p++;
		n = (size_t)(ps->p - s);
		if (n == 4 && memcmp(s, "true", 4) == 0) {
			nd->type = N_BOOL;
			nd->i = 1;
		} else if (n == 5 && memcmp(s, "false", 5) == 0)
			nd->type = N_BOOL;
		else if (n == 4 && memcmp(s, "null", 4) == 0)
			nd->type = N_NIL;
		else {
			nd->type = N_STR;
			nd->s = malloc(n + 1);
			assert_non_null(nd->s);
			memcpy(nd->s, s, n);
			nd->s[n] = '\0';
			nd->len = n;
		}
		return;
	}
	parse_fail(ps, "unexpected character");
}

static void
node_pack(msgpack_packer *pk, const struct node *nd)
{
	size_t	i;

	switch (nd->type) {
	case N_MAP:
		msgpack_pack_map(pk, nd->n / 2);
		for (i = 0; i < nd->n; i++)
			node_pack(pk, &nd->kids[i]);
		break;
	case N_ARRAY:
		msgpack_pack_array(pk, nd->n);
		for (i = 0; i < nd->n; i++)
			node_pack(pk, &nd->kids[i]);
		break;
	case N_STR:
		msgpack_pack_str(pk, nd->len);
		msgpack_pack_str_body(pk, nd->s, nd->len);
		break;
	case N_BIN:
		msgpack_pack_bin(pk, nd->len);
		msgpack_pack_bin_body(pk, nd->s, nd->len);
		break;
	case N_INT:
		msgpack_pack_int64(pk, nd->i);
		break;
	case N_BOOL:
		if (nd->i)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	default:
		msgpack_pack_nil(pk);
	}
}

static void
node_free(struct node *nd)
{
	size_t	i;

	for (i = 0; i < nd->n; i++)
		node_free(&nd->kids[i]);
	free(nd->kids);
	free(nd->s);
	memset(nd, 0, sizeof(*nd));
}

/* A packed and unpacked value; obj points into up. */
struct mp {
	msgpack_sbuffer		 sb;
	msgpack_unpacked	 up;
	const msgpack_object	*obj;
};

/* Build text into m (the notation above); fails the test on bad text. */
static void
mp_build(struct mp *m, const char *text)
{
	struct parser	 ps = { text, text };
	struct node	 root;
	msgpack_packer	 pk;
	size_t		 off = 0;

	parse_value(&ps, &root);
	skip_ws(&ps);
	if (*ps.p != '\0')
		parse_fail(&ps, "trailing text");
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&pk, &m->sb, msgpack_sbuffer_write);
	node_pack(&pk, &root);
	node_free(&root);
	msgpack_unpacked_init(&m->up);
	assert_int_equal(msgpack_unpack_next(&m->up, m->sb.data, m->sb.size,
	    &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, m->sb.size);
	m->obj = &m->up.data;
}

static void
mp_free(struct mp *m)
{
	msgpack_unpacked_destroy(&m->up);
	msgpack_sbuffer_destroy(&m->sb);
}

/* Test the notation itself on a few values. */
static void
test_notation(void **state)
{
	struct mp	m;

	mp_build(&m, "{kind: 'a\\x00b', 7: [true, null, -3, b'\\xff'], "
	    "s: @3(ab)}");
	assert_int_equal(m.obj->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(m.obj->via.map.size, 3);
	assert_int_equal(m.obj->via.map.ptr[0].val.via.str.size, 3);
	assert_memory_equal(m.obj->via.map.ptr[0].val.via.str.ptr, "a\0b", 3);
	assert_int_equal(m.obj->via.map.ptr[1].key.type,
	    MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(m.obj->via.map.ptr[1].val.via.array.size, 4);
	assert_int_equal(m.obj->via.map.ptr[1].val.via.array.ptr[3].type,
	    MSGPACK_OBJECT_BIN);
	assert_int_equal(m.obj->via.map.ptr[2].val.via.str.size, 6);
	mp_free(&m);
}

/* Users, as notation strings. */
#define U_INIT	"'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'"
#define U_RUN	"'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'"
#define U_SYS	"'cccccccc-cccc-4ccc-8ccc-cccccccccccc'"
#define S_INIT	"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define S_RUN	"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define S_SYS	"cccccccc-cccc-4ccc-8ccc-cccccccccccc"

#define CREDS	"credentials: [{id: gh, type: github}]"

/*
 * SPEC 5.1, every row: which user is the subject.  want is the expected
 * subject, or NULL with skip (status check skipped) or an error (rc).
 */
static const struct subject_case {
	const char	*name;
	const char	*comp;
	int		 rc;
	const char	*want;
	bool		 skip;
	const char	*msg;	/* in the error message or skip reason */
} subject_cases[] = {
	/* action: run_as when given, else initiator; nothing else. */
	{ "action run_as+initiator", "{kind: action, initiator: " U_INIT
	    ", run_as: " U_RUN ", " CREDS "}", 0, S_RUN, false, NULL },
	{ "action run_as+initiator+system_account", "{kind: action, "
	    "system_account: " U_SYS ", initiator: " U_INIT ", run_as: "
	    U_RUN ", " CREDS "}", 0, S_RUN, false, NULL },
	{ "action run_as only", "{kind: action, run_as: " U_RUN ", " CREDS
	    "}", 0, S_RUN, false, NULL },
	{ "action initiator only", "{kind: action, initiator: " U_INIT ", "
	    CREDS "}", 0, S_INIT, false, NULL },
	{ "action initiator+system_account", "{kind: action, initiator: "
	    U_INIT ", system_account: " U_SYS ", " CREDS "}", 0, S_INIT, false,
	    NULL },
	{ "action run_as nil, initiator", "{kind: action, run_as: null, "
	    "initiator: " U_INIT ", " CREDS "}", 0, S_INIT, false, NULL },
	{ "action neither", "{kind: action, " CREDS "}", -CB_EBADREQ, NULL,
	    false, "neither was given" },
	{ "action system_account only", "{kind: action, system_account: "
	    U_SYS ", " CREDS "}", -CB_EBADREQ, NULL, false,
	    "neither was given" },
	{ "action neither, nils", "{kind: action, run_as: null, initiator: "
	    "null, " CREDS "}", -CB_EBADREQ, NULL, false, "action" },

	/* widget: the same rule. */
	{ "widget run_as+initiator", "{kind: widget, initiator: " U_INIT
	    ", run_as: " U_RUN ", " CREDS "}", 0, S_RUN, false, NULL },
	{ "widget run_as+initiator+system_account", "{kind: widget, "
	    "run_as: " U_RUN ", initiator: " U_INIT ", system_account: " U_SYS
	    ", " CREDS "}", 0, S_RUN, false, NULL },
	{ "widget run_as only", "{kind: widget, run_as: " U_RUN ", " CREDS
	    "}", 0, S_RUN, false, NULL },
	{ "widget initiator only", "{kind: widget, initiator: " U_INIT ", "
	    CREDS "}", 0, S_INIT, false, NULL },
	{ "widget initiator+system_account", "{kind: widget, "
	    "system_account: " U_SYS ", initiator: " U_INIT ", " CREDS "}", 0,
	    S_INIT, false, NULL },
	{ "widget neither", "{kind: widget, " CREDS "}", -CB_EBADREQ, NULL,
	    false, "widget" },
	{ "widget system_account only", "{kind: widget, system_account: "
	    U_SYS ", " CREDS "}", -CB_EBADREQ, NULL, false,
	    "neither was given" },

	/* data_source: system_account, always; never the initiator. */
	{ "data_source system_account", "{kind: data_source, "
	    "system_account: " U_SYS ", " CREDS "}", 0, S_SYS, false, NULL },
	{ "data_source system_account+initiator", "{kind: data_source, "
	    "initiator: " U_INIT ", system_account: " U_SYS ", " CREDS "}", 0,
	    S_SYS, false, NULL },
	{ "data_source all three", "{kind: data_source, initiator: " U_INIT
	    ", run_as: " U_RUN ", system_account: " U_SYS ", " CREDS "}", 0,
	    S_SYS, false, NULL },
	{ "data_source initiator only", "{kind: data_source, initiator: "
	    U_INIT ", " CREDS "}", -CB_EBADREQ, NULL, false,
	    "system_account" },
	{ "data_source run_as only", "{kind: data_source, run_as: " U_RUN
	    ", " CREDS "}", -CB_EBADREQ, NULL, false, "system_account" },
	{ "data_source initiator+run_as", "{kind: data_source, initiator: "
	    U_INIT ", run_as: " U_RUN ", " CREDS "}", -CB_EBADREQ, NULL, false,
	    "system_account" },
	{ "data_source nothing", "{kind: data_source, " CREDS "}",
	    -CB_EBADREQ, NULL, false, "data_source" },
	{ "data_source nil system_account", "{kind: data_source, "
	    "system_account: null, initiator: " U_INIT ", " CREDS "}",
	    -CB_EBADREQ, NULL, false, "system_account" },

	/* status_check: system_account, else skipped (not an error). */
	{ "status_check system_account", "{kind: status_check, "
	    "system_account: " U_SYS ", " CREDS "}", 0, S_SYS, false, NULL },
	{ "status_check all three", "{kind: status_check, initiator: " U_INIT
	    ", run_as: " U_RUN ", system_account: " U_SYS ", " CREDS "}", 0,
	    S_SYS, false, NULL },
	{ "status_check nothing", "{kind: status_check, " CREDS "}", 0, NULL,
	    true, "system account" },
	{ "status_check initiator+run_as", "{kind: status_check, initiator: "
	    U_INIT ", run_as: " U_RUN ", " CREDS "}", 0, NULL, true,
	    "system account" },
	{ "status_check initiator only", "{kind: status_check, initiator: "
	    U_INIT ", credentials: []}", 0, NULL, true, "system account" },
};

/* Run one subject case; false (with a message printed) if it fails. */
static bool
subject_case_run(const struct subject_case *t)
{
	struct component	 c;
	struct cb_error		 err;
	struct mp		 m;
	const char		*subject, *skip, *junk = "junk";
	bool			 ok;
	int			 rc;

	mp_build(&m, t->comp);
	cb_error_clear(&err);
	if ((rc = component_parse(m.obj, &c, &err)) != 0) {
		print_error("%s: component_parse: %s\n", t->name, err.msg);
		mp_free(&m);
		return false;
	}
	subject = skip = junk;		/* must be overwritten */
	cb_error_clear(&err);
	rc = subject_resolve(&c, &subject, &skip, &err);
	if (t->rc != 0)
		ok = rc == t->rc && err.code == -t->rc && subject == NULL &&
		    skip == NULL && strstr(err.msg, t->msg) != NULL;
	else if (t->skip)
		ok = rc == 0 && subject == NULL && skip != NULL &&
		    skip != junk && strstr(skip, t->msg) != NULL &&
		    err.code == 0;
	else
		ok = rc == 0 && skip == NULL && subject != NULL &&
		    subject != junk && strcmp(subject, t->want) == 0 &&
		    err.code == 0 &&
		    /* Points into the component, which owns it. */
		    subject >= (const char *)&c &&
		    subject < (const char *)(&c + 1);
	if (!ok)
		print_error("%s: rc %d subject %s skip %s err '%s'; want rc %d "
		    "subject %s skip %d '%s'\n", t->name, rc,
		    subject ? subject : "(null)", skip ? skip : "(null)",
		    err.msg, t->rc, t->want ? t->want : "(null)", (int)t->skip,
		    t->msg ? t->msg : "");
	component_free(&c);
	mp_free(&m);
	return ok;
}

static void
test_subject_table(void **state)
{
	size_t	i, failed = 0;

	for (i = 0; i < sizeof(subject_cases) / sizeof(subject_cases[0]);
	    i++)
		if (!subject_case_run(&subject_cases[i]))
			failed++;
	assert_int_equal(failed, 0);
}

/* A kind value outside the enum (only reachable by a bug) is refused. */
static void
test_subject_bad_kind(void **state)
{
	struct component	 c;
	struct cb_error		 err;
	const char		*subject, *skip;

	memset(&c, 0, sizeof(c));
	memcpy(c.initiator, S_INIT, 37);
	memcpy(c.system_account, S_SYS, 37);
	c.kind = 42;
	cb_error_clear(&err);
	assert_true(subject_resolve(&c, &subject, &skip, &err) < 0);
	assert_null(subject);
	assert_null(skip);
	assert_int_not_equal(err.code, 0);
	c.kind = -1;
	assert_true(subject_resolve(&c, &subject, &skip, &err) < 0);
	assert_null(subject);
}

/*
 * component_parse: accepted components and the declarations they yield
 * ("id=type" in order, '*' marking an inherited one), and refused ones
 * with a piece of the message.
 */
static const struct parse_case {
	const char	*name;
	const char	*comp;
	const char	*decls;		/* NULL: must fail with msg */
	const char	*msg;
} parse_cases[] = {
	/* Kinds. */
	{ "kind action", "{kind: action, initiator: " U_INIT ", " CREDS "}",
	    "gh=github", NULL },
	{ "kind widget", "{kind: widget, initiator: " U_INIT ", " CREDS "}",
	    "gh=github", NULL },
	{ "kind data_source", "{kind: data_source, system_account: " U_SYS
	    ", " CREDS "}", "gh=github", NULL },
	{ "kind status_check", "{kind: status_check, " CREDS "}",
	    "gh=github", NULL },
	{ "kind unknown", "{kind: runner, " CREDS "}", NULL,
	    "component.kind must be action, widget, data_source or "
	    "status_check" },
	{ "kind wrong case", "{kind: Action, " CREDS "}", NULL,
	    "component.kind" },
	{ "kind dash", "{kind: status-check, " CREDS "}", NULL,
	    "component.kind" },
	{ "kind plural", "{kind: actions, " CREDS "}", NULL,
	    "component.kind" },
	{ "kind empty", "{kind: '', " CREDS "}", NULL, "component.kind" },
	{ "kind prefix with NUL", "{kind: 'action\\x00x', " CREDS "}", NULL,
	    "kind" },
	{ "kind missing", "{initiator: " U_INIT ", " CREDS "}", NULL,
	    "kind" },
	{ "kind nil", "{kind: null, " CREDS "}", NULL, "kind" },
	{ "kind int", "{kind: 1, " CREDS "}", NULL, "kind" },
	{ "kind bin", "{kind: b'action', " CREDS "}", NULL, "kind" },
	{ "kind array", "{kind: [action], " CREDS "}", NULL, "kind" },

	/* The component itself and its keys. */
	{ "unknown key", "{kind: action, initiator: " U_INIT ", " CREDS
	    ", subject: " U_RUN "}", NULL, "subject" },
	{ "unknown key case", "{Kind: action, " CREDS "}", NULL, "Kind" },
	{ "key not a string", "{kind: action, " CREDS ", 7: 1}", NULL,
	    "must be strings" },
	{ "key bin", "{kind: action, " CREDS ", b'run_as': " U_RUN "}", NULL,
	    "must be strings" },
	{ "empty map", "{}", NULL, "kind" },
	{ "not a map: array", "[action]", NULL, "component" },
	{ "not a map: string", "action", NULL, "component" },
	{ "not a map: nil", "null", NULL, "component" },

	/* Users: lower-case RFC 4122 text form, nothing else. */
	{ "initiator upper case", "{kind: action, initiator: "
	    "'AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA', " CREDS "}", NULL,
	    "component.initiator must be a UUID" },
	{ "initiator mixed case", "{kind: action, initiator: "
	    "'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaA', " CREDS "}", NULL,
	    "component.initiator" },
	{ "run_as upper case", "{kind: action, initiator: " U_INIT
	    ", run_as: 'BBBBBBBB-BBBB-4BBB-8BBB-BBBBBBBBBBBB', " CREDS "}",
	    NULL, "component.run_as must be a UUID" },
	{ "system_account upper case", "{kind: data_source, system_account: "
	    "'CCCCCCCC-CCCC-4CCC-8CCC-CCCCCCCCCCCC', " CREDS "}", NULL,
	    "component.system_account must be a UUID" },
	{ "initiator 35 chars", "{kind: action, initiator: "
	    "'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator 37 chars", "{kind: action, initiator: "
	    "'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator no hyphens", "{kind: action, initiator: "
	    "'aaaaaaaaaaaa4aaa8aaaaaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator hyphen moved", "{kind: action, initiator: "
	    "'aaaaaaa-aaaaa-4aaa-8aaa-aaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator braces", "{kind: action, initiator: "
	    "'{aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa}', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator urn", "{kind: action, initiator: "
	    "'urn:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator non-hex", "{kind: action, initiator: "
	    "'gaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator trailing newline", "{kind: action, initiator: "
	    "'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\\x0a', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator leading space", "{kind: action, initiator: "
	    "' aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator NUL then junk", "{kind: action, initiator: "
	    "'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\\x00junk', " CREDS "}", NULL,
	    "initiator" },
	{ "initiator path", "{kind: action, initiator: '../../etc/passwd', "
	    CREDS "}", NULL, "component.initiator" },
	{ "initiator empty", "{kind: action, initiator: '', " CREDS "}", NULL,
	    "component.initiator" },
	{ "initiator int", "{kind: action, initiator: 5, " CREDS "}", NULL,
	    "initiator" },
	{ "initiator bin", "{kind: action, initiator: b'aaaaaaaa-aaaa-4aaa-"
	    "8aaa-aaaaaaaaaaaa', " CREDS "}", NULL, "initiator" },
	{ "run_as array", "{kind: action, run_as: [" U_RUN "], " CREDS "}",
	    NULL, "run_as" },
	{ "system_account bool", "{kind: data_source, system_account: true, "
	    CREDS "}", NULL, "system_account" },
	{ "bad system_account refused even for action", "{kind: action, "
	    "initiator: " U_INIT ", system_account: 'nope', " CREDS "}", NULL,
	    "component.system_account" },
	{ "bad initiator refused even for data_source", "{kind: data_source, "
	    "system_account: " U_SYS ", initiator: 'nope', " CREDS "}", NULL,
	    "component.initiator" },

	/* Declarations. */
	{ "several, order kept", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: b, type: beta}, {id: a, type: alpha}, "
	    "{type: gamma, id: c}]}", "b=beta,a=alpha,c=gamma", NULL },
	{ "type by uuid", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: '0b5e1c2a-1111-4222-8333-"
	    "444455556666'}]}", "a=0b5e1c2a-1111-4222-8333-444455556666",
	    NULL },
	{ "empty list", "{kind: action, initiator: " U_INIT ", "
	    "credentials: []}", "", NULL },
	{ "ids of every shape", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: t}, {id: _, type: t}, {id: Z, "
	    "type: t}, {id: A-b_9, type: t}, {id: _-, type: t}, {id: gh, "
	    "type: t}, {id: GH, type: t}]}",
	    "a=t,_=t,Z=t,A-b_9=t,_-=t,gh=t,GH=t", NULL },
	{ "id of 64 chars", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: @64(x), type: t}]}",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=t",
	    NULL },
	{ "id of 65 chars", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: @65(x), type: t}]}", NULL,
	    "component.credentials[0].id must match" },
	{ "id empty", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: '', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id starts with digit", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: t}, {id: '9a', type: t}]}", NULL,
	    "component.credentials[1].id" },
	{ "id starts with dash", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: '-a', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id with dot", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'a.b', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id with space", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'a b', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id with pipe", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'a|json', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id with >>", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'a>>', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id non-ASCII", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'p\\xc3\\xa4ss', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id with NUL", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 'a\\x00b', type: t}]}", NULL,
	    "component.credentials[0].id" },
	{ "id int", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: 1, type: t}]}", NULL,
	    "component.credentials[0] must be a map {id: str, type: str}" },
	{ "id bin", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: b'a', type: t}]}", NULL,
	    "component.credentials[0] must be a map" },
	{ "id nil", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: null, type: t}]}", NULL,
	    "component.credentials[0] must be a map" },
	{ "id missing", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{type: t}]}", NULL,
	    "component.credentials[0] must be a map" },
	{ "type missing", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a}]}", NULL,
	    "component.credentials[0] must be a map" },
	{ "type int", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: 3}]}", NULL,
	    "component.credentials[0] must be a map" },
	{ "type empty", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: ''}]}", NULL,
	    "component.credentials[0].type must be a type ident or uuid" },
	{ "type of 64 chars", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: @64(t)}]}",
	    "a=tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt",
	    NULL },
	{ "type of 65 chars", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: @65(t)}]}", NULL,
	    "component.credentials[0].type" },
	{ "type with NUL", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: 'gh\\x00x'}]}", NULL,
	    "component.credentials[0].type" },
	{ "extra key in a declaration", "{kind: action, initiator: " U_INIT
	    ", credentials: [{id: a, type: t, optional: true}]}", NULL,
	    "component.credentials[0]" },
	{ "declaration not a map", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [a]}", NULL, "component.credentials[0] must be a "
	    "map" },
	{ "declaration a pair", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [[a, t]]}", NULL, "component.credentials[0]" },
	{ "credentials a map", "{kind: action, initiator: " U_INIT ", "
	    "credentials: {id: a, type: t}}", NULL,
	    "component.credentials must be an array of {id, type}" },
	{ "credentials a string", "{kind: action, initiator: " U_INIT ", "
	    "credentials: a}", NULL, "component.credentials must be an "
	    "array" },
	{ "credentials an int", "{kind: action, initiator: " U_INIT ", "
	    "credentials: 0}", NULL, "component.credentials" },
	{ "duplicate id", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: alpha}, {id: b, type: beta}, "
	    "{id: a, type: alpha}]}", NULL,
	    "component.credentials declares credential id 'a' twice" },
	{ "duplicate id, other type", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: alpha}, {id: a, type: beta}]}", NULL,
	    "declares credential id 'a' twice" },
	{ "ids differ in case only", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: a, type: alpha}, {id: A, type: beta}]}",
	    "a=alpha,A=beta", NULL },

	/* External service: inheritance. */
	{ "inherited added after own", "{kind: action, initiator: " U_INIT
	    ", credentials: [{id: own, type: alpha}], external_service: "
	    "{credentials: [{id: ext1, type: beta}, {id: ext2, type: gamma}]}}",
	    "own=alpha,ext1=beta*,ext2=gamma*", NULL },
	{ "own declaration wins", "{kind: action, initiator: " U_INIT ", "
	    "credentials: [{id: tok, type: alpha}, {id: x, type: xt}], "
	    "external_service: {credentials: [{id: e, type: et}, "
	    "{id: tok, type: beta}]}}", "tok=alpha,x=xt,e=et*", NULL },
	{ "three own, three inherited", "{kind: action, initiator: " U_INIT
	    ", credentials: [{id: a, type: at}, {id: b, type: bt}, {id: c, "
	    "type: ct}], external_service: {credentials: [{id: d, type: dt}, "
	    "{id: b, type: xt}, {id: e, type: et}]}}",
	    "a=at,b=bt,c=ct,d=dt*,e=et*", NULL },
	{ "own wins whatever the order", "{kind: widget, initiator: " U_INIT
	    ", external_service: {credentials: [{id: tok, type: beta}]}, "
	    "credentials: [{id: tok, type: alpha}]}", "tok=alpha", NULL },
	{ "everything inherited", "{kind: data_source, system_account: " U_SYS
	    ", credentials: [], external_service: {credentials: [{id: a, "
	    "type: alpha}]}}", "a=alpha*", NULL },
	{ "no own list", "{kind: status_check, external_service: "
	    "{credentials: [{id: a, type: alpha}]}}", "a=alpha*", NULL },
	{ "same id, other case, both kept", "{kind: action, initiator: "
	    U_INIT ", credentials: [{id: tok, type: alpha}], "
	    "external_service: {credentials: [{id: TOK, type: beta}]}}",
	    "tok=alpha,TOK=beta*", NULL },
	{ "external_service nil", "{kind: action, initiator: " U_INIT ", "
	    CREDS ", external_service: null}", "gh=github", NULL },
	{ "external_service empty", "{kind: action, initiator: " U_INIT ", "
	    CREDS ", external_service: {}}", "gh=github", NULL },
	{ "external_service empty list", "{kind: action, initiator: " U_INIT
	    ", " CREDS ", external_service: {credentials: []}}", "gh=github",
	    NULL },
	{ "external_service an array", "{kind: action, initiator: " U_INIT
	    ", " CREDS ", external_service: [{credentials: []}]}", NULL,
	    "component.external_service must be a map" },
	{ "external_service a string", "{kind: action, initiator: " U_INIT
	    ", " CREDS ", external_service: github}", NULL,
	    "component.external_service must be a map" },
	{ "external_service unknown key", "{kind: action, initiator: " U_INIT
	    ", " CREDS ", external_service: {credentials: [], name: x}}",
	    NULL, "name" },
	{ "external_service credentials a map", "{kind: action, initiator: "
	    U_INIT ", " CREDS ", external_service: {credentials: {id: a, "
	    "type: t}}}", NULL, "component.external_service.credentials must "
	    "be an array" },
	{ "external_service bad id", "{kind: action, initiator: " U_INIT ", "
	    CREDS ", external_service: {credentials: [{id: '1x', "
	    "type: t}]}}", NULL,
	    "component.external_service.credentials[0].id" },
	{ "external_service bad declaration", "{kind: action, initiator: "
	    U_INIT ", " CREDS ", external_service: {credentials: [{id: a}]}}",
	    NULL, "component.external_service.credentials[0] must be a map" },
	{ "external_service duplicate id", "{kind: action, initiator: " U_INIT
	    ", " CREDS ", external_service: {credentials: [{id: e, type: t}, "
	    "{id: e, type: u}]}}", NULL,
	    "component.external_service.credentials declares credential id "
	    "'e' twice" },
};

/* "id=type,..." of c, '*' after inherited ones, into buf. */
static void
decls_text(const struct component *c, char *buf, size_t bufsz)
{
	size_t	i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < c->ncreds; i++)
		n += (size_t)snprintf(buf + n, bufsz - n, "%s%s=%s%s",
		    i ? "," : "", c->creds[i].id, c->creds[i].type,
		    c->creds[i].inherited ? "*" : "");
	assert_true(n < bufsz);
}

/* Run one parse case; false (with a message printed) if it fails. */
static bool
parse_case_run(const struct parse_case *t)
{
	struct component	 c;
	struct cb_error		 err;
	struct mp		 m;
	char			 got[4096];
	bool			 ok = true;
	int			 rc;

	mp_build(&m, t->comp);
	cb_error_clear(&err);
	memset(&c, 0xa5, sizeof(c));	/* parse must initialise it */
	rc = component_parse(m.obj, &c, &err);
	if (t->decls != NULL) {
		if (rc != 0) {
			print_error("%s: unexpected error '%s'\n", t->name,
			    err.msg);
			ok = false;
		} else {
			decls_text(&c, got, sizeof(got));
			if (strcmp(got, t->decls) != 0) {
				print_error("%s: got '%s' want '%s'\n",
				    t->name, got, t->decls);
				ok = false;
			}
			component_free(&c);
			if (c.creds != NULL || c.ncreds != 0) {
				print_error("%s: not freed\n", t->name);
				ok = false;
			}
		}
	} else {
		if (rc != -CB_EBADREQ || err.code != CB_EBADREQ ||
		    strstr(err.msg, t->msg) == NULL) {
			print_error("%s: rc %d '%s', want bad_request '%s'\n",
			    t->name, rc, err.msg, t->msg);
			ok = false;
		}
		if (rc == 0)
			component_free(&c);
		/* Nothing left to free, and nothing half-filled. */
		else if (c.creds != NULL || c.ncreds != 0) {
			print_error("%s: failed parse left declarations\n",
			    t->name);
			ok = false;
		}
	}
	mp_free(&m);
	return ok;
}

/* Every case runs, so one failure does not hide another. */
static void
test_parse_table(void **state)
{
	size_t	i, failed = 0;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++)
		if (!parse_case_run(&parse_cases[i]))
			failed++;
	assert_int_equal(failed, 0);
}

/*
 * A list that names an id twice is a mistake in that list (as for the
 * component's own list and for an external service's list otherwise),
 * whether or not the component also declares the id.
 */
static void
test_parse_ext_duplicate_overridden(void **state)
{
	static const struct parse_case c[] = {
		{ "external_service duplicate of an overridden id",
		    "{kind: action, initiator: " U_INIT ", credentials: "
		    "[{id: e, type: own}], external_service: {credentials: "
		    "[{id: e, type: t}, {id: e, type: u}]}}", NULL,
		    "component.external_service.credentials declares "
		    "credential id 'e' twice" },
		{ "external_service duplicate of an overridden id, apart",
		    "{kind: data_source, system_account: " U_SYS ", "
		    "credentials: [{id: a, type: own}], external_service: "
		    "{credentials: [{id: a, type: t}, {id: b, type: u}, "
		    "{id: a, type: t}]}}", NULL,
		    "declares credential id 'a' twice" },
	};
	size_t	i, failed = 0;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (!parse_case_run(&c[i]))
			failed++;
	assert_int_equal(failed, 0);
}

/* A NULL object (absent "component" parameter) is refused. */
static void
test_parse_null(void **state)
{
	struct component	c;
	struct cb_error		err;

	cb_error_clear(&err);
	assert_int_equal(component_parse(NULL, &c, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "component"));
	assert_null(c.creds);
	assert_int_equal(c.ncreds, 0);
}

/* The parsed user fields. */
static void
test_parse_users(void **state)
{
	struct component	c;
	struct cb_error		err;
	struct mp		m;

	mp_build(&m, "{kind: widget, initiator: " U_INIT ", run_as: " U_RUN
	    ", system_account: " U_SYS ", " CREDS "}");
	assert_int_equal(component_parse(m.obj, &c, &err), 0);
	assert_int_equal(c.kind, COMP_WIDGET);
	assert_string_equal(c.initiator, S_INIT);
	assert_string_equal(c.run_as, S_RUN);
	assert_string_equal(c.system_account, S_SYS);
	component_free(&c);
	mp_free(&m);

	mp_build(&m, "{kind: status_check, initiator: null, " CREDS "}");
	assert_int_equal(component_parse(m.obj, &c, &err), 0);
	assert_int_equal(c.kind, COMP_STATUS_CHECK);
	assert_string_equal(c.initiator, "");
	assert_string_equal(c.run_as, "");
	assert_string_equal(c.system_account, "");
	component_free(&c);
	mp_free(&m);
}

/* Build a component with nown own and next inherited declarations. */
static char *
many_text(const char *kind, int nown, int next, int overlap)
{
	size_t	cap = 64 + (size_t)(nown + next) * 40, n;
	char	*s = malloc(cap);
	int	 i;

	assert_non_null(s);
	n = (size_t)snprintf(s, cap, "{kind: %s, initiator: " U_INIT
	    ", system_account: " U_SYS ", credentials: [", kind);
	for (i = 0; i < nown; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s{id: c%d, type: t}",
		    i ? ", " : "", i);
	n += (size_t)snprintf(s + n, cap - n, "]");
	if (next >= 0) {
		n += (size_t)snprintf(s + n, cap - n,
		    ", external_service: {credentials: [");
		/* The first overlap ids repeat own ones. */
		for (i = 0; i < next; i++)
			n += (size_t)snprintf(s + n, cap - n,
			    "%s{id: %s%d, type: u}", i ? ", " : "",
			    i < overlap ? "c" : "e", i);
		n += (size_t)snprintf(s + n, cap - n, "]}");
	}
	n += (size_t)snprintf(s + n, cap - n, "}");
	assert_true(n < cap);
	return s;
}

/* At most COMP_CREDS_MAX (64) declarations, own and inherited together. */
static void
test_parse_limit(void **state)
{
	static const struct {
		int	nown, next, overlap;
		int	ok;
		size_t	ncreds;
	} c[] = {
		{ 64, -1, 0, 1, 64 },
		{ 65, -1, 0, 0, 0 },
		{ 200, -1, 0, 0, 0 },
		{ 64, 0, 0, 1, 64 },
		{ 0, 64, 0, 1, 64 },
		{ 0, 65, 0, 0, 0 },
		{ 32, 32, 0, 1, 64 },
		{ 63, 1, 0, 1, 64 },
		{ 64, 1, 0, 0, 0 },
		{ 33, 32, 0, 0, 0 },
		{ 1, 64, 0, 0, 0 },
		{ 10, 20, 10, 1, 20 },	/* 10 inherited ids overridden */
	};
	struct component	comp;
	struct cb_error		err;
	struct mp		m;
	char			*text;
	size_t			i;
	int			rc;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		text = many_text("action", c[i].nown, c[i].next, c[i].overlap);
		mp_build(&m, text);
		cb_error_clear(&err);
		rc = component_parse(m.obj, &comp, &err);
		if ((rc == 0) != c[i].ok)
			print_error("case %zu (%d own, %d inherited): rc %d "
			    "'%s'\n", i, c[i].nown, c[i].next, rc, err.msg);
		if (c[i].ok) {
			assert_int_equal(rc, 0);
			assert_int_equal(comp.ncreds, c[i].ncreds);
			component_free(&comp);
		} else {
			assert_int_equal(rc, -CB_EBADREQ);
			assert_non_null(strstr(err.msg,
			    "at most 64 credentials per component"));
			assert_null(comp.creds);
		}
		mp_free(&m);
		free(text);
	}
}

/* component_find: exact id match by length; own before inherited. */
static void
test_find(void **state)
{
	const struct comp_cred	*d;
	struct component	 c;
	struct cb_error		 err;
	struct mp		 m;

	mp_build(&m, "{kind: action, initiator: " U_INIT ", credentials: "
	    "[{id: ab, type: alpha}, {id: tok, type: own}], "
	    "external_service: {credentials: [{id: tok, type: ext}, "
	    "{id: abc, type: gamma}]}}");
	assert_int_equal(component_parse(m.obj, &c, &err), 0);
	assert_int_equal(c.ncreds, 3);

	assert_non_null(d = component_find(&c, "ab", 2));
	assert_string_equal(d->type, "alpha");
	assert_false(d->inherited);
	assert_non_null(d = component_find(&c, "abc", 3));
	assert_string_equal(d->type, "gamma");
	assert_true(d->inherited);
	/* Not NUL-terminated: the first two bytes of "abc" are "ab". */
	assert_non_null(d = component_find(&c, "abcdef", 2));
	assert_string_equal(d->id, "ab");
	assert_null(component_find(&c, "a", 1));
	assert_null(component_find(&c, "abcd", 4));
	assert_null(component_find(&c, "AB", 2));
	assert_null(component_find(&c, "", 0));
	assert_non_null(d = component_find(&c, "tok", 3));
	assert_string_equal(d->type, "own");
	assert_false(d->inherited);
	component_free(&c);
	component_free(&c);		/* harmless twice */
	mp_free(&m);
}

static void
test_id_valid(void **state)
{
	static const char *const good[] = { "a", "Z", "_", "a1", "a-b",
	    "_-_", "GitHub_Token-2",
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
	};
	static const char *const bad[] = { "", "1", "1a", "-", "-a", "a.b",
	    "a b", "a/b", "a|b", "a>", "<a", "a\t", "\xc3\xa4", "a\xc3\xa4",
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-x",
	};
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!component_id_valid(good[i], strlen(good[i])))
			print_error("'%s' should be valid\n", good[i]);
		assert_true(component_id_valid(good[i], strlen(good[i])));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (component_id_valid(bad[i], strlen(bad[i])))
			print_error("'%s' should be invalid\n", bad[i]);
		assert_false(component_id_valid(bad[i], strlen(bad[i])));
	}
	/* Length, not NUL, ends the id. */
	assert_false(component_id_valid("a\0b", 3));
	assert_true(component_id_valid("ab!", 2));
}

static void
test_kind_name(void **state)
{
	assert_string_equal(component_kind_name(COMP_ACTION), "action");
	assert_string_equal(component_kind_name(COMP_WIDGET), "widget");
	assert_string_equal(component_kind_name(COMP_DATA_SOURCE),
	    "data_source");
	assert_string_equal(component_kind_name(COMP_STATUS_CHECK),
	    "status_check");
	assert_string_equal(component_kind_name(-1), "unknown");
	assert_string_equal(component_kind_name(COMP_STATUS_CHECK + 1),
	    "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notation),
		cmocka_unit_test(test_subject_table),
		cmocka_unit_test(test_subject_bad_kind),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_ext_duplicate_overridden),
		cmocka_unit_test(test_parse_null),
		cmocka_unit_test(test_parse_users),
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_kind_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
