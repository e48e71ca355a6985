/*
 * Unit tests for daemon/template.c: the placeholder grammar (spacing,
 * chains, adjacency, every malformed shape an error naming the
 * placeholder, literal "<<" that is not an attempt), the {{.credentials.ID}}
 * form and the platform's other {{ }} text, substitute.syntax's refusal of
 * the form it does not accept, every filter on
 * hostile values with exact expected output, one-pass rendering (values
 * are never expanded), structure protection for headers and URLs, the URL
 * template rule, and all-or-nothing rendering with wiped output on error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cb_error.h"
#include "secbuf.h"
#include "template.h"

#define S(lit)	(lit), (sizeof(lit) - 1)

/* The credential values the test lookup knows. */
static const struct {
	const char	*id;
	const char	*val;
	size_t		 len;
} vals[] = {
	{ "plain",	S("s3cr3t") },
	{ "hostile",	S("q\"b\\s/&%+ <>\r\n\tx~._-=?#") },
	{ "ru",		S("\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c") },
	{ "ph",		S("<<.credentials.plain>>") },
	{ "phbad",	S("<<.credentials.>> << .x") },
	{ "ctl",	S("\x01\x7f\x00\x08\x0c") },
	{ "crlf",	S("tok\r\nX-Evil: 1") },
	{ "lf",		S("a\nb") },
	{ "nul",	S("a\0b") },
	{ "space",	S("a b") },
	{ "tab",	S("a\tb") },
	{ "nonascii",	S("caf\xc3\xa9") },
	{ "nbsp",	S("a\xc2\xa0" "b") },
	{ "bad8",	S("ok\xff\xfe") },
	{ "overlong",	S("\xc0\xaf") },
	{ "surrogate",	S("\xed\xa0\x80") },
	{ "truncated",	S("ab\xd0") },
	{ "above",	S("\xf4\x90\x80\x80") },
	{ "emoji",	S("\xf0\x9f\x94\x91") },
	{ "ls",		S("a\xe2\x80\xa8" "b\xe2\x80\xa9") },
	{ "empty",	S("") },
	{ "id-with_dash", S("dash") },
	{ "_u",		S("under") },
};

struct lkarg {
	int	calls;
	int	fail_at;	/* fail on this call (1-based); 0 = never */
};

/* Test lookup: the table above; unknown ids are not_found. */
static int
lookup(void *arg, const char *id, const uint8_t **val, size_t *len,
    struct cb_error *err)
{
	struct lkarg	*a = arg;
	size_t		 i;

	if (a != NULL && ++a->calls == a->fail_at)
		return cb_error_set(err, CB_EUNAVAILABLE, "vault is sealed");
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (strcmp(vals[i].id, id) == 0) {
			*val = (const uint8_t *)vals[i].val;
			*len = vals[i].len;
			return 0;
		}
	return cb_error_set(err, CB_ENOTFOUND, "credential '%s' not filled",
	    id);
}

/* Parse and render text (len bytes) in ctx into out. */
static int
render_n(const char *text, size_t len, enum tpl_ctx ctx, struct lkarg *a,
    struct secbuf *out, struct cb_error *err)
{
	struct tpl	t;
	int		rc;

	if ((rc = tpl_parse(text, len, &t, err)) != 0)
		return rc;
	rc = tpl_render(&t, ctx, lookup, a, out, err);
	tpl_free(&t);
	return rc;
}

/* Render and compare with the exact expected bytes. */
static void
check_n(const char *text, size_t tlen, enum tpl_ctx ctx, const char *want,
    size_t wlen)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err;
	int		rc;

	cb_error_clear(&err);
	rc = render_n(text, tlen, ctx, NULL, &out, &err);
	if (rc != 0)
		print_error("template '%s': %s\n", text, err.msg);
	assert_int_equal(rc, 0);
	if (out.len != wlen ||
	    (wlen > 0 && memcmp(out.data, want, wlen) != 0))
		print_error("template '%s': got '%.*s' want '%s'\n", text,
		    (int)out.len, out.data ? (char *)out.data : "", want);
	assert_int_equal(out.len, wlen);
	assert_memory_equal(out.len ? out.data : (uint8_t *)"", want, wlen);
	secbuf_free(&out);
}

#define check(text, ctx, want)	check_n(S(text), ctx, S(want))

/*
 * Expect parsing or rendering to fail with code; the message must contain
 * msg and must not contain secret (a value), when given.
 */
static void
check_err_n(const char *text, size_t tlen, enum tpl_ctx ctx, int code,
    const char *msg, const char *secret)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err;
	int		rc;

	cb_error_clear(&err);
	rc = render_n(text, tlen, ctx, NULL, &out, &err);
	if (rc != -code || strstr(err.msg, msg) == NULL)
		print_error("template '%s': rc %d msg '%s', want '%s'\n",
		    text, rc, err.msg, msg);
	assert_int_equal(rc, -code);
	assert_int_equal(err.code, code);
	assert_non_null(strstr(err.msg, msg));
	if (secret != NULL)
		assert_null(strstr(err.msg, secret));
	assert_int_equal(out.len, 0);
	secbuf_free(&out);
}

#define check_err(text, ctx, code, msg) \
	check_err_n(S(text), ctx, code, msg, NULL)

/* Text without placeholder attempts passes through unchanged. */
static void
test_literal(void **state)
{
	check("", TPL_BODY, "");
	check("no placeholders here", TPL_BODY, "no placeholders here");
	check("std::cout << x << y;", TPL_BODY, "std::cout << x << y;");
	check("a << b", TPL_BODY, "a << b");
	check("cat <<EOF\nhi\nEOF\n", TPL_BODY, "cat <<EOF\nhi\nEOF\n");
	check("ends with <<", TPL_BODY, "ends with <<");
	check("ends with << ", TPL_BODY, "ends with << ");
	check("<", TPL_BODY, "<");
	check("<<", TPL_BODY, "<<");
	check("x >> y >>", TPL_BODY, "x >> y >>");
	check("<<credentials.plain>>", TPL_BODY, "<<credentials.plain>>");
	check("{{.credentials}}", TPL_BODY, "{{.credentials}}");
	check_n(S("bin\0<<\0.x"), TPL_BODY, S("bin\0<<\0.x"));
	/* The first '<' is literal, the rest a placeholder. */
	check("<<<.credentials.plain>>", TPL_BODY, "<s3cr3t");
	check("<< <<.credentials.plain>>", TPL_BODY, "<< s3cr3t");
	check("<<.credentials.plain>>>", TPL_BODY, "s3cr3t>");
}

/* Spaces around tokens, ids of every allowed shape. */
static void
test_spaces(void **state)
{
	check("<<.credentials.plain>>", TPL_BODY, "s3cr3t");
	check("<< .credentials.plain >>", TPL_BODY, "s3cr3t");
	check("<<   .credentials.plain   >>", TPL_BODY, "s3cr3t");
	check("<<\t.credentials.plain\t>>", TPL_BODY, "s3cr3t");
	check("<<.credentials.plain|base64>>", TPL_BODY, "czNjcjN0");
	check("<<.credentials.plain | base64>>", TPL_BODY, "czNjcjN0");
	check("<< .credentials.plain  |  base64  >>", TPL_BODY, "czNjcjN0");
	check("<<.credentials.plain\t|\tbase64\t>>", TPL_BODY, "czNjcjN0");
	check("<<.credentials.id-with_dash>>", TPL_BODY, "dash");
	check("<<.credentials._u>>", TPL_BODY, "under");
}

/* Several, adjacent and repeated placeholders; the parsed spans. */
static void
test_multiple(void **state)
{
	static const char text[] =
	    "u=<<.credentials.plain>>&p=<< .credentials.ru | urlquery >>";
	struct tpl	 t;
	struct cb_error	 err;

	check("u=<<.credentials.plain>>&v=<<.credentials._u>>!", TPL_BODY,
	    "u=s3cr3t&v=under!");
	check("<<.credentials.plain>><<.credentials._u>>", TPL_BODY,
	    "s3cr3tunder");
	check("<<.credentials.plain>><<.credentials.plain>>", TPL_BODY,
	    "s3cr3ts3cr3t");
	check("<<.credentials.plain|base64>>:<<.credentials.plain>>",
	    TPL_BODY, "czNjcjN0:s3cr3t");

	assert_int_equal(tpl_parse(S(text), &t, &err), 0);
	assert_int_equal(t.nph, 2);
	assert_string_equal(t.ph[0].id, "plain");
	assert_int_equal(t.ph[0].start, 2);
	assert_int_equal(t.ph[0].end, 24);
	assert_int_equal(t.ph[0].nfilters, 0);
	assert_string_equal(t.ph[1].id, "ru");
	assert_int_equal(t.ph[1].start, 27);
	assert_int_equal(t.ph[1].end, sizeof(text) - 1);
	assert_int_equal(t.ph[1].nfilters, 1);
	assert_int_equal(t.ph[1].filters[0], TPL_F_URLQUERY);
	assert_string_equal(tpl_filter_name(t.ph[1].filters[0]), "urlquery");
	assert_null(tpl_filter_name(0));
	tpl_free(&t);
	tpl_free(&t);		/* harmless twice */
}

/* Every malformed attempt is an error naming it. */
static void
test_malformed(void **state)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} c[] = {
		{ "<<.credentials.>>", "malformed placeholder "
		    "<<.credentials.>>: the credential id must be" },
		{ "<<.credentials.a", "unterminated placeholder "
		    "<<.credentials.a: missing '>>'" },
		{ "x <<.credentials.a b", "malformed placeholder "
		    "<<.credentials.a b: expected '|' or '>>'" },
		{ "x <<.credentials.a   ", "unterminated placeholder "
		    "<<.credentials.a   : missing '>>'" },
		{ "<< .creds.a >>", "malformed placeholder << .creds.a >>: "
		    "expected <<.credentials.ID>>" },
		{ "<<.credentials.a | nope>>", "unknown filter 'nope' in "
		    "placeholder <<.credentials.a | nope>>" },
		{ "<<.credentials.a | Base64>>", "unknown filter 'Base64'" },
		{ "<<.credentials.a | basic:b>>", "unknown filter 'basic'" },
		{ "<<.credentials.a |>>", "malformed placeholder "
		    "<<.credentials.a |>>: missing filter name after '|'" },
		{ "<<.credentials.a | >>", "missing filter name" },
		{ "<<.credentials.a ||json>>", "missing filter name" },
		{ "<<.credentials.a | json x>>", "malformed placeholder "
		    "<<.credentials.a | json x>>: expected '|' or '>>'" },
		{ "<<.credentials.a>", "malformed placeholder "
		    "<<.credentials.a>: expected '|' or '>>'" },
		{ "<<.credentials.a.b>>", "expected '|' or '>>'" },
		{ "<<.credentials.a b>>", "expected '|' or '>>'" },
		{ "<<.credentials.1a>>", "the credential id must be" },
		{ "<<.credentials.-a>>", "the credential id must be" },
		{ "<<.credentials.a$>>", "expected '|' or '>>'" },
		{ "<<.Credentials.a>>", "malformed placeholder "
		    "<<.Credentials.a>>: expected <<.credentials.ID>>" },
		{ "<<.credential.a>>", "expected <<.credentials.ID>>" },
		{ "<<.>>", "malformed placeholder <<.>>" },
		{ "<<.", "malformed placeholder <<." },
		{ "<<  .", "malformed placeholder <<  ." },
		{ "<<.foo>>", "malformed placeholder <<.foo>>" },
		{ "<<\n.credentials.a>>", "malformed placeholder "
		    "<<?.credentials.a>>: expected" },
		{ "<<\r\n  .credentials.a>>", "malformed placeholder" },
		{ "<<.credentials.a | json | base64 | json | base64 | json>>",
		    "too many filters in placeholder" },
		{ "ok <<.credentials.plain>> bad <<.credentials.>> tail",
		    "malformed placeholder <<.credentials.>>:" },
		{ "x<< .credentials.a | url query >>", "unknown filter 'url'" },
	};
	size_t	i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		check_err_n(c[i].text, strlen(c[i].text), TPL_BODY,
		    CB_EBADREQ, c[i].msg, NULL);
	/* The same in every context. */
	check_err("https://h/<<.credentials.a | nope>>", TPL_URL, CB_EBADREQ,
	    "unknown filter 'nope'");
	check_err("Bearer <<.credentials.>>", TPL_HEADER, CB_EBADREQ,
	    "malformed placeholder <<.credentials.>>");
	/* NUL inside: shown as '?'. */
	check_err_n(S("<<.credentials.a\0>>"), TPL_BODY, CB_EBADREQ,
	    "malformed placeholder <<.credentials.a?>>", NULL);
}

/* Parse text with syntax: 0, or the error code with err filled. */
static int
parse_syntax(const char *text, enum tpl_syntax syntax, struct cb_error *err)
{
	struct tpl	t;
	int		rc;

	cb_error_clear(err);
	rc = tpl_parse_syntax(text, strlen(text), syntax, &t, err);
	tpl_free(&t);
	return rc;
}

/* {{.credentials.ID}} is the same placeholder, spaces and filters too. */
static void
test_brace_form_is_the_same_placeholder(void **state)
{
	static const char text[] =
	    "u={{.credentials.plain}}&p={{ .credentials.ru | urlquery }}";
	struct tpl	 t;
	struct cb_error	 err;

	check("{{.credentials.plain}}", TPL_BODY, "s3cr3t");
	check("{{ .credentials.plain }}", TPL_BODY, "s3cr3t");
	check("{{\t.credentials.plain\t}}", TPL_BODY, "s3cr3t");
	check("{{.credentials.plain|base64}}", TPL_BODY, "czNjcjN0");
	check("{{ .credentials.plain  |  base64  }}", TPL_BODY, "czNjcjN0");
	check("{{.credentials.hostile | json}}", TPL_BODY,
	    "q\\\"b\\\\s/\\u0026%+ \\u003c\\u003e\\r\\n\\tx~._-=?#");
	check("{{ .credentials.hostile | urlquery }}", TPL_URL,
	    "q%22b%5Cs%2F%26%25%2B%20%3C%3E%0D%0A%09x~._-%3D%3F%23");
	check("{{.credentials.id-with_dash}}{{.credentials._u}}", TPL_BODY,
	    "dashunder");
	check("<<.credentials.plain>>:{{.credentials.plain | base64}}",
	    TPL_BODY, "s3cr3t:czNjcjN0");
	/* The first '{' is literal, the rest a placeholder. */
	check("{{{.credentials.plain}}}", TPL_BODY, "{s3cr3t}");
	/* One pass: a value that spells a placeholder stays text. */
	check("{{.credentials.ph}}", TPL_BODY, "<<.credentials.plain>>");
	/* Structure protection holds for the brace form. */
	check_err("{{.credentials.crlf}}", TPL_HEADER, CB_EBADREQ,
	    "placeholder {{.credentials.crlf}} would put a line break");

	assert_int_equal(tpl_parse(S(text), &t, &err), 0);
	assert_int_equal(t.nph, 2);
	assert_string_equal(t.ph[0].id, "plain");
	assert_int_equal(t.ph[0].start, 2);
	assert_int_equal(t.ph[0].end, 24);
	assert_string_equal(t.ph[1].id, "ru");
	assert_int_equal(t.ph[1].start, 27);
	assert_int_equal(t.ph[1].end, sizeof(text) - 1);
	assert_int_equal(t.ph[1].nfilters, 1);
	assert_int_equal(t.ph[1].filters[0], TPL_F_URLQUERY);
	tpl_free(&t);
}

/* The platform's own {{ ... }} templating is literal text. */
static void
test_other_brace_text_passes_through(void **state)
{
	check("{{ .vars.x }}", TPL_BODY, "{{ .vars.x }}");
	check("{{.vars.x}} {{ .credentials.plain }}", TPL_BODY,
	    "{{.vars.x}} s3cr3t");
	check("{{.credential.x}}", TPL_BODY, "{{.credential.x}}");
	check("{{.Credentials.x}}", TPL_BODY, "{{.Credentials.x}}");
	check("{{ if .ok }}y{{ end }}", TPL_BODY, "{{ if .ok }}y{{ end }}");
	check("{{< alert level=\"warning\" >}}", TPL_BODY,
	    "{{< alert level=\"warning\" >}}");
	check("{{credentials.x}}", TPL_BODY, "{{credentials.x}}");
	check("{{ printf \"%s\" .credentials.x }}", TPL_BODY,
	    "{{ printf \"%s\" .credentials.x }}");
	check("{{", TPL_BODY, "{{");
	check("{{ .", TPL_BODY, "{{ .");
	check("}} {", TPL_BODY, "}} {");
	check("{\"a\":{\"b\":1}}", TPL_BODY, "{\"a\":{\"b\":1}}");
}

/* Text that starts a {{.credentials. placeholder must parse. */
static void
test_malformed_brace_placeholder_is_an_error(void **state)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} c[] = {
		{ "{{.credentials.}}", "malformed placeholder "
		    "{{.credentials.}}: the credential id must be" },
		{ "{{.credentials.a", "unterminated placeholder "
		    "{{.credentials.a: missing '}}'" },
		{ "x {{.credentials.a b}}", "malformed placeholder "
		    "{{.credentials.a b}}: expected '|' or '}}'" },
		{ "{{.credentials.a>>", "malformed placeholder "
		    "{{.credentials.a>>: expected '|' or '}}'" },
		{ "<<.credentials.a}}", "malformed placeholder "
		    "<<.credentials.a}}: expected '|' or '>>'" },
		{ "{{.credentials.a}", "expected '|' or '}}'" },
		{ "{{ .credentials.a | nope }}", "unknown filter 'nope' in "
		    "placeholder {{ .credentials.a | nope }}" },
		{ "{{.credentials.a | }}", "missing filter name after '|'" },
		{ "{{.credentials.1a}}", "the credential id must be" },
		{ "{{.credentials.a.b}}", "expected '|' or '}}'" },
		{ "{{\n.credentials.a}}", "malformed placeholder "
		    "{{?.credentials.a}}: expected {{.credentials.ID}}" },
		{ "ok {{.credentials.plain}} bad {{ .credentials. }}",
		    "malformed placeholder {{ .credentials. }}:" },
	};
	size_t	i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		check_err_n(c[i].text, strlen(c[i].text), TPL_BODY,
		    CB_EBADREQ, c[i].msg, NULL);
}

/* substitute.syntax: angle refuses the brace form, brace the angle form. */
static void
test_syntax_setting_refuses_the_other_form(void **state)
{
	struct cb_error	err;

	assert_int_equal(parse_syntax("<<.credentials.a>>{{.credentials.b}}",
	    TPL_SYNTAX_BOTH, &err), 0);

	assert_int_equal(parse_syntax("<< .credentials.a | json >>",
	    TPL_SYNTAX_ANGLE, &err), 0);
	assert_int_equal(parse_syntax("{{ .vars.x }} {{ .credential.a }}",
	    TPL_SYNTAX_ANGLE, &err), 0);
	assert_int_equal(parse_syntax("x {{ .credentials.a | json }} y",
	    TPL_SYNTAX_ANGLE, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, "placeholder {{ .credentials.a | json }}: "
	    "the {{.credentials.ID}} form is not accepted here "
	    "(substitute.syntax = angle)");
	/* Malformed stays malformed whatever the setting. */
	assert_int_equal(parse_syntax("{{.credentials.}}", TPL_SYNTAX_ANGLE,
	    &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "malformed placeholder"));

	assert_int_equal(parse_syntax("{{ .credentials.a | json }}",
	    TPL_SYNTAX_BRACE, &err), 0);
	assert_int_equal(parse_syntax("a << b {{ .vars.x }}",
	    TPL_SYNTAX_BRACE, &err), 0);
	assert_int_equal(parse_syntax("{{.credentials.a}}<<.credentials.b>>",
	    TPL_SYNTAX_BRACE, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "placeholder <<.credentials.b>>: "
	    "the <<.credentials.ID>> form is not accepted here "
	    "(substitute.syntax = brace)");

	assert_string_equal(tpl_syntax_name(TPL_SYNTAX_BOTH), "both");
	assert_int_equal(tpl_syntax_from_name("both"), TPL_SYNTAX_BOTH);
	assert_int_equal(tpl_syntax_from_name("angle"), TPL_SYNTAX_ANGLE);
	assert_int_equal(tpl_syntax_from_name("brace"), TPL_SYNTAX_BRACE);
	assert_int_equal(tpl_syntax_from_name("Brace"), -1);
	assert_int_equal(tpl_syntax_from_name(""), -1);
}

/* Id length limit, and a long attempt is quoted truncated. */
static void
test_id_length(void **state)
{
	char		text[256], want[128];
	struct cb_error	err;
	struct tpl	t;
	size_t		i;

	/* 64 characters: fine, and not found by the lookup. */
	memcpy(text, "<<.credentials.", 15);
	for (i = 0; i < 64; i++)
		text[15 + i] = 'a';
	memcpy(text + 79, ">>", 3);
	assert_int_equal(tpl_parse(text, strlen(text), &t, &err), 0);
	assert_int_equal(t.nph, 1);
	assert_int_equal(strlen(t.ph[0].id), 64);
	tpl_free(&t);
	check_err_n(text, strlen(text), TPL_BODY, CB_ENOTFOUND,
	    "not filled", NULL);

	/* 65: too long; the message quotes 80 bytes and "...". */
	memcpy(text, "<<.credentials.", 15);
	for (i = 0; i < 65; i++)
		text[15 + i] = 'a';
	memcpy(text + 80, ">>", 3);
	cb_error_clear(&err);
	t.ph = (void *)&t;	/* must be reset by tpl_parse */
	assert_int_equal(tpl_parse(text, strlen(text), &t, &err),
	    -CB_EBADREQ);
	assert_null(t.ph);
	assert_int_equal(t.nph, 0);
	memcpy(want, text, 80);
	memcpy(want + 80, "...:", 5);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, "the credential id must be 1 to 64"));
}

/* Each filter on hostile values, exact output. */
static void
test_filters(void **state)
{
	/* urlquery and urlpath: everything but unreserved is %XX. */
	check("<<.credentials.hostile|urlquery>>", TPL_BODY,
	    "q%22b%5Cs%2F%26%25%2B%20%3C%3E%0D%0A%09x~._-%3D%3F%23");
	check("<<.credentials.hostile|urlpath>>", TPL_BODY,
	    "q%22b%5Cs%2F%26%25%2B%20%3C%3E%0D%0A%09x~._-%3D%3F%23");
	check("<<.credentials.ru|urlquery>>", TPL_BODY,
	    "%D0%BF%D0%B0%D1%80%D0%BE%D0%BB%D1%8C");
	check("<<.credentials.ph|urlpath>>", TPL_BODY,
	    "%3C%3C.credentials.plain%3E%3E");
	check("<<.credentials.ctl|urlquery>>", TPL_BODY, "%01%7F%00%08%0C");
	check("<<.credentials.crlf|urlquery>>", TPL_BODY,
	    "tok%0D%0AX-Evil%3A%201");
	check("<<.credentials.plain|urlquery>>", TPL_BODY, "s3cr3t");
	check("[<<.credentials.empty|urlquery>>]", TPL_BODY, "[]");

	/* json */
	check("<<.credentials.hostile|json>>", TPL_BODY,
	    "q\\\"b\\\\s/\\u0026%+ \\u003c\\u003e\\r\\n\\tx~._-=?#");
	check("<<.credentials.ru|json>>", TPL_BODY,
	    "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
	check("<<.credentials.ctl|json>>", TPL_BODY,
	    "\\u0001\\u007f\\u0000\\b\\f");
	check("<<.credentials.ph|json>>", TPL_BODY,
	    "\\u003c\\u003c.credentials.plain\\u003e\\u003e");
	check("<<.credentials.emoji|json>>", TPL_BODY, "\xf0\x9f\x94\x91");
	check("<<.credentials.ls|json>>", TPL_BODY, "a\\u2028b\\u2029");
	check("<<.credentials.nonascii|json>>", TPL_BODY, "caf\xc3\xa9");
	check("{\"k\":\"<<.credentials.crlf|json>>\"}", TPL_BODY,
	    "{\"k\":\"tok\\r\\nX-Evil: 1\"}");
	check("[<<.credentials.empty|json>>]", TPL_BODY, "[]");

	/* base64 */
	check("<<.credentials.hostile|base64>>", TPL_BODY,
	    "cSJiXHMvJiUrIDw+DQoJeH4uXy09PyM=");
	check("<<.credentials.ru|base64>>", TPL_BODY, "0L/QsNGA0L7Qu9GM");
	check("<<.credentials.ph|base64>>", TPL_BODY,
	    "PDwuY3JlZGVudGlhbHMucGxhaW4+Pg==");
	check("<<.credentials.ctl|base64>>", TPL_BODY, "AX8ACAw=");
	check("<<.credentials.bad8|base64>>", TPL_BODY, "b2v//g==");
	check("[<<.credentials.empty|base64>>]", TPL_BODY, "[]");

	/* Chains, left to right. */
	check("<<.credentials.hostile | json | base64>>", TPL_BODY,
	    "cVwiYlxccy9cdTAwMjYlKyBcdTAwM2NcdTAwM2VcclxuXHR4fi5fLT0/Iw==");
	check("<<.credentials.plain|base64|base64>>", TPL_BODY,
	    "Y3pOamNqTjA=");
	check("<<.credentials.plain|base64|urlquery>>", TPL_BODY, "czNjcjN0");
	check("<<.credentials.hostile|base64|urlquery>>", TPL_BODY,
	    "cSJiXHMvJiUrIDw%2BDQoJeH4uXy09PyM%3D");
	check("<<.credentials.bad8|base64|json>>", TPL_BODY, "b2v//g==");
	check("<<.credentials.plain|urlquery|json|base64|urlpath>>",
	    TPL_BODY, "czNjcjN0");
}

/* json refuses what is not UTF-8, naming the placeholder only. */
static void
test_json_utf8(void **state)
{
	static const char *const bad[] = {
		"<<.credentials.bad8|json>>",
		"<<.credentials.overlong|json>>",
		"<<.credentials.surrogate|json>>",
		"<<.credentials.truncated|json>>",
		"<<.credentials.above|json>>",
	};
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_err_n(bad[i], strlen(bad[i]), TPL_BODY, CB_EBADREQ,
		    "is not valid UTF-8", NULL);
	check_err("x <<.credentials.bad8 | json >> y", TPL_BODY, CB_EBADREQ,
	    "placeholder <<.credentials.bad8 | json >>: the value is not "
	    "valid UTF-8, so the json filter cannot encode it; use base64");
	/* Raw, without json, the body takes any bytes. */
	check("<<.credentials.bad8>>", TPL_BODY, "ok\xff\xfe");
}

/* One pass: values are copied, never expanded or parsed. */
static void
test_no_rescan(void **state)
{
	check("<<.credentials.ph>>", TPL_BODY, "<<.credentials.plain>>");
	check("a <<.credentials.ph>> b", TPL_HEADER,
	    "a <<.credentials.plain>> b");
	check("<<.credentials.phbad>>", TPL_BODY,
	    "<<.credentials.>> << .x");
	check("<<.credentials.ph>><<.credentials.plain>>", TPL_BODY,
	    "<<.credentials.plain>>s3cr3t");
	check_n(S("<<.credentials.nul>>"), TPL_BODY, S("a\0b"));
}

/* Header values: no CR, LF or NUL unless a filter removes them. */
static void
test_header(void **state)
{
	check_err_n(S("Bearer <<.credentials.crlf>>"), TPL_HEADER, CB_EBADREQ,
	    "placeholder <<.credentials.crlf>> would put a line break or NUL "
	    "into a header; use a filter such as base64 or urlquery",
	    "X-Evil");
	check_err_n(S("<<.credentials.lf>>"), TPL_HEADER, CB_EBADREQ,
	    "placeholder <<.credentials.lf>> would put a line break", NULL);
	check_err_n(S("<<.credentials.nul>>"), TPL_HEADER, CB_EBADREQ,
	    "would put a line break or NUL into a header", NULL);
	check_err_n(S("<<.credentials.hostile>>"), TPL_HEADER, CB_EBADREQ,
	    "placeholder <<.credentials.hostile>>", "q\"b");
	check("Bearer <<.credentials.crlf|urlquery>>", TPL_HEADER,
	    "Bearer tok%0D%0AX-Evil%3A%201");
	check("Basic <<.credentials.crlf|base64>>", TPL_HEADER,
	    "Basic dG9rDQpYLUV2aWw6IDE=");
	check("<<.credentials.crlf|json>>", TPL_HEADER,
	    "tok\\r\\nX-Evil: 1");
	check("<<.credentials.nul|json>>", TPL_HEADER, "a\\u0000b");
	/* Other bytes are fine in a header. */
	check("<<.credentials.space>> <<.credentials.tab>>", TPL_HEADER,
	    "a b a\tb");
	check("<<.credentials.ru>>", TPL_HEADER,
	    "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
	/* The body takes them as they are. */
	check("<<.credentials.crlf>>", TPL_BODY, "tok\r\nX-Evil: 1");
}

/* URL: printable ASCII only unless a filter makes it so. */
static void
test_url_values(void **state)
{
	check_err_n(S("https://h/x?q=<<.credentials.space>>"), TPL_URL,
	    CB_EBADREQ, "placeholder <<.credentials.space>> would put "
	    "whitespace, control or non-ASCII characters into the URL; use "
	    "a filter such as urlquery or urlpath", "a b");
	check_err("https://h/<<.credentials.tab>>", TPL_URL, CB_EBADREQ,
	    "placeholder <<.credentials.tab>> would put whitespace");
	check_err("https://h/<<.credentials.crlf>>", TPL_URL, CB_EBADREQ,
	    "placeholder <<.credentials.crlf>>");
	check_err_n(S("https://h/<<.credentials.nul>>"), TPL_URL, CB_EBADREQ,
	    "into the URL", NULL);
	check_err("https://h/<<.credentials.ctl>>", TPL_URL, CB_EBADREQ,
	    "into the URL");
	check_err("https://h/<<.credentials.ru>>", TPL_URL, CB_EBADREQ,
	    "non-ASCII characters into the URL");
	check_err("https://h/<<.credentials.nbsp>>", TPL_URL, CB_EBADREQ,
	    "into the URL");
	/* json leaves a space a space. */
	check_err("https://h/?q=<<.credentials.space|json>>", TPL_URL,
	    CB_EBADREQ, "placeholder <<.credentials.space|json>>");
	check("https://h/x?q=<<.credentials.space|urlquery>>", TPL_URL,
	    "https://h/x?q=a%20b");
	check("https://h/<<.credentials.hostile|urlpath>>/x", TPL_URL,
	    "https://h/q%22b%5Cs%2F%26%25%2B%20%3C%3E%0D%0A%09x~._-%3D%3F%23"
	    "/x");
	check("https://h/<<.credentials.ru|urlpath>>", TPL_URL,
	    "https://h/%D0%BF%D0%B0%D1%80%D0%BE%D0%BB%D1%8C");
	check("https://h/?t=<<.credentials.plain>>", TPL_URL,
	    "https://h/?t=s3cr3t");
	check("https://h/?t=<<.credentials.hostile|base64>>", TPL_URL,
	    "https://h/?t=cSJiXHMvJiUrIDw+DQoJeH4uXy09PyM=");
}

/* Expect tpl_check_url_template to accept (msg NULL) or refuse. */
static void
check_url_tpl(const char *text, const char *msg)
{
	struct tpl	t;
	struct cb_error	err;
	int		rc;

	cb_error_clear(&err);
	assert_int_equal(tpl_parse(text, strlen(text), &t, &err), 0);
	rc = tpl_check_url_template(&t, &err);
	if ((msg == NULL) != (rc == 0) ||
	    (msg != NULL && strstr(err.msg, msg) == NULL))
		print_error("url template '%s': rc %d '%s'\n", text, rc,
		    err.msg);
	if (msg == NULL)
		assert_int_equal(rc, 0);
	else {
		assert_int_equal(rc, -CB_EBADREQ);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_non_null(strstr(err.msg, msg));
	}
	tpl_free(&t);
}

#define NOFORM	"may not form the scheme, host, port or userinfo of the URL"

/* Placeholders may not form the scheme or authority of the URL. */
static void
test_url_template(void **state)
{
	check_url_tpl("https://api.github.com/", NULL);
	check_url_tpl("HTTPS://API.github.com", NULL);
	check_url_tpl("http://h:8080/x", NULL);
	check_url_tpl("https://api.github.com/repos/<<.credentials.x|urlpath>>",
	    NULL);
	check_url_tpl("https://api.github.com/x?token=<<.credentials.x>>",
	    NULL);
	check_url_tpl("https://h?<<.credentials.x>>", NULL);
	check_url_tpl("hTTp://h#<<.credentials.x>>", NULL);
	check_url_tpl("https://h/<<.credentials.a>>/<<.credentials.b>>", NULL);

	check_url_tpl("https://<<.credentials.x>>/",
	    "placeholder <<.credentials.x>> " NOFORM);
	check_url_tpl("https://<<.credentials.x>>", NOFORM);
	check_url_tpl("https://api.<<.credentials.x>>.com/", NOFORM);
	check_url_tpl("https://<<.credentials.u>>@api.github.com/", NOFORM);
	check_url_tpl("https://user:<<.credentials.p>>@api.github.com/",
	    NOFORM);
	check_url_tpl("https://api.github.com:<<.credentials.p>>/", NOFORM);
	check_url_tpl("https://api.github.com:<<.credentials.p>>", NOFORM);
	check_url_tpl("https://api.github.com\\<<.credentials.x>>/", NOFORM);
	check_url_tpl("<<.credentials.s>>://api.github.com/",
	    "placeholder <<.credentials.s>> " NOFORM);
	check_url_tpl("http<<.credentials.s>>://api.github.com/", NOFORM);
	check_url_tpl("https:<<.credentials.s>>//api.github.com/", NOFORM);
	check_url_tpl("<<.credentials.url>>", NOFORM);
	check_url_tpl("<< .credentials.url | urlpath >>/x",
	    "placeholder << .credentials.url | urlpath >> " NOFORM);

	check_url_tpl("ftp://h/<<.credentials.x>>",
	    "URL must start with http:// or https://");
	check_url_tpl("ftp://h/", "URL must start with http:// or https://");
	check_url_tpl("/relative/<<.credentials.x>>", "URL must start with");
	check_url_tpl("", "URL must start with");
	check_url_tpl("https:/h/", "URL must start with");
}

/* A failing lookup fails the call with its own code and message. */
static void
test_lookup_error(void **state)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err;

	check_err("a <<.credentials.missing>> b", TPL_BODY, CB_ENOTFOUND,
	    "credential 'missing' not filled");
	check_err("<<.credentials.missing|base64>>", TPL_HEADER, CB_ENOTFOUND,
	    "credential 'missing' not filled");

	/* Previous contents of out are wiped and replaced. */
	assert_int_equal(secbuf_append(&out, "old", 3), 0);
	assert_int_equal(render_n(S("x<<.credentials.missing>>"), TPL_BODY,
	    NULL, &out, &err), -CB_ENOTFOUND);
	assert_int_equal(out.len, 0);
	assert_int_equal(render_n(S("<<.credentials.plain>>"), TPL_BODY,
	    NULL, &out, &err), 0);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "s3cr3t", 6);
	secbuf_free(&out);
}

/* A lookup error without a message still gets one. */
static int
lookup_silent(void *arg, const char *id, const uint8_t **val, size_t *len,
    struct cb_error *err)
{
	return -CB_EINTERNAL;
}

/* ... and a positive return is treated as internal. */
static int
lookup_positive(void *arg, const char *id, const uint8_t **val, size_t *len,
    struct cb_error *err)
{
	return 1;
}

/* Lookup functions that misbehave still produce a clean error. */
static void
test_lookup_silent(void **state)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err;
	struct tpl	t;

	assert_int_equal(tpl_parse(S("x<<.credentials.a>>"), &t, &err), 0);
	cb_error_set(&err, CB_EFORBIDDEN, "stale");
	assert_int_equal(tpl_render(&t, TPL_BODY, lookup_silent, NULL, &out,
	    &err), -CB_EINTERNAL);
	assert_int_equal(err.code, CB_EINTERNAL);
	assert_string_equal(err.msg, "could not get the value for "
	    "placeholder <<.credentials.a>>");
	assert_int_equal(tpl_render(&t, TPL_BODY, lookup_positive, NULL, &out,
	    &err), -CB_EINTERNAL);
	assert_int_equal(out.len, 0);
	/* err may be NULL. */
	assert_int_equal(tpl_render(&t, TPL_BODY, lookup_silent, NULL, &out,
	    NULL), -CB_EINTERNAL);
	tpl_free(&t);
	secbuf_free(&out);
}

/*
 * All or nothing: when the second placeholder fails (lookup or structure
 * check), nothing is returned and what was rendered has been wiped.
 */
static void
test_all_or_nothing(void **state)
{
	static const char text[] = "A<<.credentials.plain>>B<<.credentials."
	    "plain>>C";
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err;
	struct lkarg	a = { 0, 2 };
	size_t		i;

	assert_int_equal(render_n(S(text), TPL_BODY, &a, &out, &err),
	    -CB_EUNAVAILABLE);
	assert_int_equal(a.calls, 2);
	assert_int_equal(err.code, CB_EUNAVAILABLE);
	assert_string_equal(err.msg, "vault is sealed");
	assert_int_equal(out.len, 0);
	/* "As3cr3tB" had been written: the bytes are now zero. */
	assert_true(out.cap >= 8);
	for (i = 0; i < 8; i++)
		assert_int_equal(out.data[i], 0);

	a.calls = 0;
	a.fail_at = 0;
	assert_int_equal(render_n(S(text), TPL_BODY, &a, &out, &err), 0);
	assert_int_equal(out.len, 15);
	assert_memory_equal(out.data, "As3cr3tBs3cr3tC", 15);

	/* Structure refusal at the second placeholder. */
	assert_int_equal(render_n(S("A<<.credentials.plain>>B"
	    "<<.credentials.crlf>>C"), TPL_HEADER, NULL, &out, &err),
	    -CB_EBADREQ);
	assert_int_equal(out.len, 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(out.data[i], 0);
	/* A json failure after a good one. */
	assert_int_equal(render_n(S("<<.credentials.plain|json>>"
	    "<<.credentials.bad8|json>>"), TPL_BODY, NULL, &out, &err),
	    -CB_EBADREQ);
	assert_int_equal(out.len, 0);
	secbuf_free(&out);
}

/* Large values go through the filters and the buffers grow. */
static void
test_large(void **state)
{
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	struct tpl	 t;
	char		*text;
	size_t		 i, n = 3000;

	/* Many placeholders: the array grows. */
	if ((text = malloc(n * 22 + 1)) == NULL)
		fail();
	for (i = 0; i < n; i++)
		memcpy(text + i * 22, "<<.credentials.plain>>", 22);
	text[n * 22] = '\0';
	assert_int_equal(tpl_parse(text, n * 22, &t, &err), 0);
	assert_int_equal(t.nph, n);
	assert_int_equal(tpl_render(&t, TPL_URL, lookup, NULL, &out, &err),
	    0);
	assert_int_equal(out.len, n * 6);
	for (i = 0; i < n; i++)
		assert_memory_equal(out.data + i * 6, "s3cr3t", 6);
	tpl_free(&t);
	free(text);
	secbuf_free(&out);
}

/* tpl_check_literal of len bytes of text in ctx: 0, or refused with msg. */
static void
check_literal_n(const char *text, size_t len, enum tpl_ctx ctx,
    const char *msg)
{
	struct cb_error	err;
	struct tpl	t;
	int		rc;

	cb_error_clear(&err);
	assert_int_equal(tpl_parse(text, len, &t, &err), 0);
	rc = tpl_check_literal(&t, ctx, "request.thing", &err);
	if (msg == NULL ? rc != 0 : (rc != -CB_EBADREQ ||
	    strstr(err.msg, msg) == NULL))
		print_error("literal '%.*s' ctx %d: rc %d '%s', want '%s'\n",
		    (int)len, text, (int)ctx, rc, err.msg, msg ? msg : "ok");
	if (msg == NULL)
		assert_int_equal(rc, 0);
	else {
		assert_int_equal(rc, -CB_EBADREQ);
		assert_non_null(strstr(err.msg, "request.thing"));
		assert_non_null(strstr(err.msg, msg));
	}
	tpl_free(&t);
}

#define check_literal(text, ctx, msg)	check_literal_n(S(text), ctx, msg)

/*
 * The template's own text: control characters, DEL and (in a URL) space
 * are refused in the literal text, wherever they are, while placeholders
 * keep their optional spaces and values are left to tpl_render.
 */
static void
test_template_text_control_characters_refused(void **state)
{
	static const struct {
		const char	*text;
		size_t		 len;
		enum tpl_ctx	 ctx;
		const char	*msg;	/* NULL: accepted */
	} cases[] = {
		{ S("1\r\nHost: evil.example"), TPL_HEADER,
		    "0x0d at offset 1" },
		{ S("1\nHost: evil.example"), TPL_HEADER, "0x0a at offset 1" },
		{ S("a\0b"), TPL_HEADER, "0x00 at offset 1" },
		{ S("a\x7f"), TPL_HEADER, "0x7f at offset 1" },
		{ S("a\x01"), TPL_HEADER, "0x01" },
		{ S("Bearer <<.credentials.plain>>\r\nX: 1"), TPL_HEADER,
		    "0x0d" },
		{ S("a\tb c"), TPL_HEADER, NULL },
		{ S("Bearer << .credentials.plain | base64 >>"), TPL_HEADER,
		    NULL },
		{ S("caf\xc3\xa9"), TPL_HEADER, NULL },
		{ S("https://h.example/a b"), TPL_URL, "space at offset 19" },
		{ S("https://h.example/a\0b"), TPL_URL, "0x00" },
		{ S("https://h.example/a\r\nb"), TPL_URL, "0x0d" },
		{ S("https://h.example/a\nb"), TPL_URL, "0x0a" },
		{ S("https://h.example/a\tb"), TPL_URL, "0x09" },
		{ S("https://h.example/a\x7f"), TPL_URL, "0x7f" },
		{ S("https://h.example/?q=<<.credentials.plain>> x"), TPL_URL,
		    "space at offset 43" },
		{ S("https://h.example/?q=<< .credentials.plain | urlquery >>"),
		    TPL_URL, NULL },
		{ S("https://h.example/?q=<<.credentials.plain>>&r=1"),
		    TPL_URL, NULL },
		{ S("a\r\nb\0"), TPL_TEXT, NULL },
		{ S("a\r\nb\0"), TPL_BODY, NULL },
	};
	size_t	i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_literal_n(cases[i].text, cases[i].len, cases[i].ctx,
		    cases[i].msg);
	check_literal("", TPL_URL, NULL);
	check_literal("x", TPL_HEADER, NULL);
}

/*
 * tpl_render_bound is never below what tpl_render makes, for every
 * value and filter chain, and is the filters' worst case where the value
 * reaches it.
 */
static void
test_render_bound_covers_every_filter(void **state)
{
	static const char *const chains[] = { "", "|urlquery", "|urlpath",
	    "|json", "|base64", "|base64|urlquery", "|json|base64",
	    "|urlquery|json|base64|base64" };
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	struct tpl	 t;
	char		 text[256];
	size_t		 i, j, bound;
	int		 n;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		for (j = 0; j < sizeof(chains) / sizeof(chains[0]); j++) {
			n = snprintf(text, sizeof(text), "a=<<.credentials.%s"
			    "%s>>&b=<<.credentials.%s>>", vals[i].id,
			    chains[j], vals[i].id);
			assert_true(n > 0 && (size_t)n < sizeof(text));
			assert_int_equal(tpl_parse(text, (size_t)n, &t, &err),
			    0);
			assert_int_equal(tpl_render_bound(&t, lookup, NULL,
			    &bound, &err), 0);
			if (tpl_render(&t, TPL_BODY, lookup, NULL, &out,
			    &err) == 0 && out.len > bound)
				print_error("'%s': rendered %zu > bound %zu\n",
				    text, out.len, bound);
			assert_true(out.len <= bound);
			tpl_free(&t);
		}
	/* Worst cases are reached: "\x01" is 6 bytes in json. */
	assert_int_equal(tpl_parse(S("<<.credentials.ctl|json>>"), &t, &err),
	    0);
	assert_int_equal(tpl_render_bound(&t, lookup, NULL, &bound, &err), 0);
	assert_int_equal(bound, 5 * 6);
	tpl_free(&t);
	assert_int_equal(tpl_parse(S("x<<.credentials.plain|base64>>y"), &t,
	    &err), 0);
	assert_int_equal(tpl_render_bound(&t, lookup, NULL, &bound, &err), 0);
	assert_int_equal(bound, 2 + 8);
	tpl_free(&t);
	/* A lookup failure is passed on. */
	assert_int_equal(tpl_parse(S("<<.credentials.missing>>"), &t, &err),
	    0);
	assert_int_equal(tpl_render_bound(&t, lookup, NULL, &bound, &err),
	    -CB_ENOTFOUND);
	tpl_free(&t);
	secbuf_free(&out);
}

/* 2,000 copies of a large value: the bound says so without rendering. */
static void
test_render_bound_of_repeated_large_value(void **state)
{
	struct cb_error	 err;
	struct tpl	 t;
	char		*text;
	size_t		 i, n = 2000, bound;

	if ((text = malloc(n * 29)) == NULL)
		fail();
	for (i = 0; i < n; i++)
		memcpy(text + i * 29, "<<.credentials.plain|base64>>", 29);
	assert_int_equal(tpl_parse(text, n * 29, &t, &err), 0);
	assert_int_equal(tpl_render_bound(&t, lookup, NULL, &bound, &err), 0);
	assert_int_equal(bound, n * 8);
	tpl_free(&t);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_spaces),
		cmocka_unit_test(test_multiple),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_brace_form_is_the_same_placeholder),
		cmocka_unit_test(test_other_brace_text_passes_through),
		cmocka_unit_test(test_malformed_brace_placeholder_is_an_error),
		cmocka_unit_test(test_syntax_setting_refuses_the_other_form),
		cmocka_unit_test(test_id_length),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_no_rescan),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_url_values),
		cmocka_unit_test(test_url_template),
		cmocka_unit_test(test_lookup_error),
		cmocka_unit_test(test_lookup_silent),
		cmocka_unit_test(test_all_or_nothing),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_template_text_control_characters_refused),
		cmocka_unit_test(test_render_bound_covers_every_filter),
		cmocka_unit_test(test_render_bound_of_repeated_large_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
