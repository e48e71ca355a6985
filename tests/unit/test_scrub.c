/*
 * Unit tests for daemon/scrub.c: every encoding of a value with exact
 * expected output, HTTP Basic pairs in both orders, nested and overlapping
 * patterns (leftmost-longest), matches split at every point across feeds
 * and fed a byte at a time, streams that do not join, short values skipped
 * and counted, limits, allocation failures, a bounded held-back tail, work
 * linear in the input, and a differential test against a naive model
 * written here from scrub.h.
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

#include "cb_error.h"
#include "scrub.h"
#include "secbuf.h"
#include "template.h"

#define S(lit)	(const uint8_t *)(lit), (sizeof(lit) - 1)
#define P(id, lit, r)	{ (id), (lit), sizeof(lit) - 1, (r) }

/* A compiled scrubber over values (id, value) and rendered patterns. */
struct pat {
	const char	*id;
	const char	*val;
	size_t		 len;
	bool		 rendered;
};

static struct scrub *
mk(const struct pat *p, size_t n)
{
	struct scrub	*s;
	struct cb_error	 err;
	size_t		 i;

	assert_int_equal(scrub_new(&s, &err), 0);
	for (i = 0; i < n; i++) {
		if (p[i].rendered)
			assert_int_equal(scrub_add_rendered(s, p[i].id,
			    (const uint8_t *)p[i].val, p[i].len, &err), 0);
		else
			assert_int_equal(scrub_add_value(s, p[i].id,
			    (const uint8_t *)p[i].val, p[i].len, &err), 0);
	}
	assert_int_equal(scrub_compile(s, &err), 0);
	return s;
}

/* One stream over text, fed in chunks of at most chunk bytes (0: whole). */
static void
run(struct scrub *s, const void *text, size_t len, size_t chunk,
    struct secbuf *out)
{
	struct scrub_stream	*st;
	struct cb_error		 err;
	const uint8_t		*t = text;
	size_t			 off = 0, n;

	secbuf_reset(out);
	assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
	if (chunk == 0)
		chunk = len == 0 ? 1 : len;
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(scrub_feed(st, t + off, n, out, &err), 0);
		off += n;
	}
	assert_int_equal(scrub_stream_end(st, out, &err), 0);
}

/* Scrub text in one piece and compare with want. */
static void
expect(struct scrub *s, const char *text, const char *want)
{
	struct secbuf	out = SECBUF_INIT;

	run(s, text, strlen(text), 0, &out);
	if (out.len != strlen(want) ||
	    (out.len > 0 && memcmp(out.data, want, out.len) != 0))
		fail_msg("scrubbed \"%s\": got \"%.*s\", want \"%s\"", text,
		    (int)out.len, (const char *)out.data, want);
	secbuf_free(&out);
}

static void
test_scrub_raw_value_is_redacted(void **state)
{
	struct pat	 p[] = { P("github", "s3cr3t-token", false) };
	struct scrub	*s = mk(p, 1);

	(void)state;
	expect(s, "token s3cr3t-token here", "token [REDACTED:github] here");
	expect(s, "s3cr3t-token", "[REDACTED:github]");
	expect(s, "s3cr3t-toke", "s3cr3t-toke");
	expect(s, "", "");
	assert_int_equal(scrub_count(s), 2);
	assert_int_equal(scrub_skipped(s), 0);
	scrub_free(s);
}

static void
test_scrub_urlquery_form_is_redacted(void **state)
{
	/* '/', ' ', '+', non-ASCII: upper-case %XX. */
	struct pat	 p[] = { P("k", "a/b c+d\xc3\xa9~", false) };
	struct scrub	*s = mk(p, 1);

	(void)state;
	expect(s, "?q=a%2Fb%20c%2Bd%C3%A9~&x=1", "?q=[REDACTED:k]&x=1");
	/* Other spellings are not filter output: left alone. */
	expect(s, "a%2fb%20c%2bd%c3%a9~", "a%2fb%20c%2bd%c3%a9~");
	expect(s, "a/b+c+d", "a/b+c+d");
	assert_int_equal(scrub_count(s), 1);
	scrub_free(s);
}

static void
test_scrub_json_form_is_redacted(void **state)
{
	/* Quote, backslash, a control character, '<', non-ASCII. */
	struct pat	 p[] = { P("j", "q\"b\\s\x01<x\xc3\xa9\n", false) };
	struct scrub	*s = mk(p, 1);

	(void)state;
	expect(s, "{\"t\":\"q\\\"b\\\\s\\u0001\\u003cx\xc3\xa9\\n\"}",
	    "{\"t\":\"[REDACTED:j]\"}");
	/* The raw value too. */
	expect(s, "<q\"b\\s\x01<x\xc3\xa9\n>", "<[REDACTED:j]>");
	assert_int_equal(scrub_count(s), 2);
	scrub_free(s);
}

static void
test_scrub_base64_form_with_padding_is_redacted(void **state)
{
	struct pat	 p[] = {
		P("two", "hello!!", false),
		P("one", "hello!!!", false),
		P("none", "hello!!!!", false),
	};
	struct scrub	*s = mk(p, 3);

	(void)state;
	expect(s, "a aGVsbG8hIQ== b", "a [REDACTED:two] b");
	expect(s, "a aGVsbG8hISE= b", "a [REDACTED:one] b");
	expect(s, "a aGVsbG8hISEh b", "a [REDACTED:none] b");
	assert_int_equal(scrub_count(s), 3);
	scrub_free(s);
}

static void
test_scrub_basic_pair_in_both_orders(void **state)
{
	struct pat	 p[] = {
		P("user", "alice01", false),
		P("pass", "pw-secret", false),
	};
	struct scrub	*s = mk(p, 2);

	(void)state;
	expect(s, "Authorization: Basic YWxpY2UwMTpwdy1zZWNyZXQ=",
	    "Authorization: Basic [REDACTED:user+pass]");
	expect(s, "Basic cHctc2VjcmV0OmFsaWNlMDE= x",
	    "Basic [REDACTED:pass+user] x");
	/* Each alone, raw, still. */
	expect(s, "alice01:pw-secret",
	    "[REDACTED:user]:[REDACTED:pass]");
	assert_int_equal(scrub_count(s), 4);
	scrub_free(s);
}

static void
test_scrub_rendered_chain_is_redacted(void **state)
{
	/* urlquery(base64("tok3n/x")): not one of the value's own forms. */
	struct pat	 p[] = {
		P("t", "tok3n/x", false),
		P("t", "dG9rM24veA%3D%3D", true),
	};
	struct scrub	*s = mk(p, 2);

	(void)state;
	expect(s, "q=dG9rM24veA%3D%3D&", "q=[REDACTED:t]&");
	expect(s, "dG9rM24veA==", "[REDACTED:t]");
	scrub_free(s);
}

static void
test_scrub_leftmost_longest_among_nested_patterns(void **state)
{
	struct pat	 p[] = {
		P("short", "abcd", true),
		P("long", "abcdefgh", true),
		P("suffix", "efgh", true),
		P("inner", "cdef", true),
		P("late", "ghijklmn", true),
	};
	struct scrub	*s = mk(p, 5);

	(void)state;
	/* Prefix: the longer wins. */
	expect(s, "xxabcdefghyy", "xx[REDACTED:long]yy");
	/* The long one does not complete: the prefix, then what follows. */
	expect(s, "abcdefgX", "[REDACTED:short]efgX");
	expect(s, "abcdefg", "[REDACTED:short]efg");
	/* Suffix and substring alone. */
	expect(s, "..efgh..cdef..", "..[REDACTED:suffix]..[REDACTED:inner]..");
	/* Leftmost beats a longer one starting later, and no overlap. */
	expect(s, "abcdefghijklmn", "[REDACTED:long]ijklmn");
	expect(s, "abcdeghijklmn", "[REDACTED:short]e[REDACTED:late]");
	/* A match inside a rejected longer attempt is found. */
	expect(s, "abcdefXefgh", "[REDACTED:short]efX[REDACTED:suffix]");
	expect(s, "abcdefgefgh", "[REDACTED:short]efg[REDACTED:suffix]");
	scrub_free(s);
}

static void
test_scrub_match_after_a_short_one_inside_a_longer_attempt(void **state)
{
	/*
	 * While "ABCDEFGHIJ" is still possible, "ABCD" and then "EFGH"
	 * (which starts where ABCD ends) are both tentative; when the long
	 * one fails, both are written.
	 */
	struct pat	 p[] = {
		P("a", "ABCD", true),
		P("b", "ABCDEFGHIJ", true),
		P("c", "EFGH", true),
		P("d", "CDEFGHI", true),
	};
	struct scrub	*s = mk(p, 4);

	(void)state;
	expect(s, "ABCDEFGHIX", "[REDACTED:a][REDACTED:c]IX");
	expect(s, "ABCDEFGHIJ", "[REDACTED:b]");
	expect(s, "xCDEFGHIx", "x[REDACTED:d]x");
	expect(s, "ABCDEFGHI", "[REDACTED:a][REDACTED:c]I");
	scrub_free(s);
}

static void
test_scrub_shorter_match_after_one_that_overlaps_the_first(void **state)
{
	/*
	 * At "H" the longest match ending there, "CDEFGH", overlaps the
	 * tentative "ABCD"; the shorter "EFGH" that ends there too starts
	 * after it and is the next match.
	 */
	struct pat	 p[] = {
		P("a", "ABCD", true),
		P("b", "ABCDEFGHIJ", true),
		P("c", "CDEFGH", true),
		P("d", "EFGH", true),
	};
	struct scrub	*s = mk(p, 4);

	(void)state;
	expect(s, "ABCDEFGHX", "[REDACTED:a][REDACTED:d]X");
	expect(s, "ABCDEFGH", "[REDACTED:a][REDACTED:d]");
	expect(s, "xCDEFGHx", "x[REDACTED:c]x");
	expect(s, "ABCDEFGHIJ", "[REDACTED:b]");
	scrub_free(s);
}

static void
test_scrub_value_occurring_many_times(void **state)
{
	struct pat	 p[] = { P("v", "V4lue", false) };
	struct scrub	*s = mk(p, 1);
	struct secbuf	 out = SECBUF_INIT;
	char		*text, *want;
	size_t		 i, tl = 0, wl = 0;

	(void)state;
	text = malloc(1000 * 7);
	want = malloc(1000 * 18);
	assert_non_null(text);
	assert_non_null(want);
	for (i = 0; i < 1000; i++) {
		memcpy(text + tl, "V4lueV4lue" + (i % 2) * 5, 5);
		tl += 5;
		memcpy(want + wl, "[REDACTED:v]", 12);
		wl += 12;
		if (i % 3 == 0) {
			text[tl++] = ',';
			want[wl++] = ',';
		}
	}
	run(s, text, tl, 7, &out);
	assert_int_equal(out.len, wl);
	assert_memory_equal(out.data, want, wl);
	assert_int_equal(scrub_count(s), 1000);
	secbuf_free(&out);
	free(text);
	free(want);
	scrub_free(s);
}

static void
test_scrub_match_split_at_every_point(void **state)
{
	struct pat	 p[] = {
		P("a", "abcd", true),
		P("b", "abcdefgh", true),
		P("c", "efgh", true),
		P("pw", "pa55word", false),
	};
	struct scrub	*s = mk(p, 4);
	struct scrub_stream *st;
	struct secbuf	 out = SECBUF_INIT, one = SECBUF_INIT;
	struct cb_error	 err;
	const char	*text = "x abcdefgh abcdefgX cGE1NXdvcmQ= pa55word "
			    "abcdabcdefghefgh!";
	const char	*want = "x [REDACTED:b] [REDACTED:a]efgX "
			    "[REDACTED:pw] [REDACTED:pw] [REDACTED:a]"
			    "[REDACTED:b][REDACTED:c]!";
	size_t		 len = strlen(text), k, before;

	(void)state;
	run(s, text, len, 0, &one);
	assert_int_equal(one.len, strlen(want));
	assert_memory_equal(one.data, want, one.len);
	for (k = 0; k <= len; k++) {
		before = scrub_count(s);
		secbuf_reset(&out);
		assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
		assert_int_equal(scrub_feed(st, text, k, &out, &err), 0);
		assert_int_equal(scrub_feed(st, text + k, len - k, &out, &err),
		    0);
		assert_int_equal(scrub_stream_end(st, &out, &err), 0);
		if (out.len != one.len || memcmp(out.data, one.data,
		    one.len) != 0)
			fail_msg("split at %zu: \"%.*s\"", k, (int)out.len,
			    (const char *)out.data);
		assert_int_equal(scrub_count(s) - before, 7);
	}
	run(s, text, len, 1, &out);
	assert_int_equal(out.len, one.len);
	assert_memory_equal(out.data, one.data, one.len);
	secbuf_free(&out);
	secbuf_free(&one);
	scrub_free(s);
}

static void
test_scrub_matches_do_not_span_streams(void **state)
{
	struct pat	 p[] = { P("x", "abcd", false) };
	struct scrub	*s = mk(p, 1);
	struct scrub_stream *st;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;

	(void)state;
	assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
	assert_int_equal(scrub_feed(st, "xxab", 4, &out, &err), 0);
	assert_int_equal(scrub_stream_end(st, &out, &err), 0);
	assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
	assert_int_equal(scrub_feed(st, "cdxx", 4, &out, &err), 0);
	assert_int_equal(scrub_stream_end(st, &out, &err), 0);
	assert_int_equal(out.len, 8);
	assert_memory_equal(out.data, "xxabcdxx", 8);
	assert_int_equal(scrub_count(s), 0);
	/* Two streams at once keep their own state. */
	{
		struct scrub_stream *s1, *s2;
		struct secbuf o1 = SECBUF_INIT, o2 = SECBUF_INIT;

		assert_int_equal(scrub_stream_begin(s, &s1, &err), 0);
		assert_int_equal(scrub_stream_begin(s, &s2, &err), 0);
		assert_int_equal(scrub_feed(s1, "ab", 2, &o1, &err), 0);
		assert_int_equal(scrub_feed(s2, "cd", 2, &o2, &err), 0);
		assert_int_equal(scrub_feed(s1, "cd", 2, &o1, &err), 0);
		assert_int_equal(scrub_stream_end(s1, &o1, &err), 0);
		assert_int_equal(scrub_stream_end(s2, &o2, &err), 0);
		assert_int_equal(o1.len, 12);
		assert_memory_equal(o1.data, "[REDACTED:x]", 12);
		assert_int_equal(o2.len, 2);
		assert_memory_equal(o2.data, "cd", 2);
		secbuf_free(&o1);
		secbuf_free(&o2);
	}
	assert_int_equal(scrub_count(s), 1);
	secbuf_free(&out);
	scrub_free(s);
}

static void
test_scrub_short_values_are_skipped_and_counted(void **state)
{
	struct pat	 p[] = {
		P("one", "a", false),
		P("three", "abc", false),
		P("empty", "", false),
		P("rshort", "xyz", true),
		P("ok", "abcd", false),
	};
	struct scrub	*s = mk(p, 5);

	(void)state;
	/*
	 * Three short values, a short rendered pattern, and the pairs
	 * "a" ":" "" and "" ":" "a".
	 */
	assert_int_equal(scrub_skipped(s), 6);
	expect(s, "banana abc xyz YQ== YWJj", "banana abc xyz YQ== YWJj");
	expect(s, "abcd", "[REDACTED:ok]");
	/* A pair with a long value is long enough: base64("a:abcd"). */
	expect(s, "YTphYmNk", "[REDACTED:one+ok]");
	scrub_free(s);
}

static void
test_scrub_invalid_utf8_value_has_no_json_form_but_the_others(void **state)
{
	struct pat	 p[] = { P("b", "ok\xff\xfe<a b>", false) };
	struct scrub	*s = mk(p, 1);

	(void)state;
	expect(s, "1 ok\xff\xfe<a b> 2", "1 [REDACTED:b] 2");
	expect(s, "ok%FF%FE%3Ca%20b%3E", "[REDACTED:b]");
	expect(s, "b2v//jxhIGI+", "[REDACTED:b]");
	assert_int_equal(scrub_count(s), 3);
	assert_int_equal(scrub_skipped(s), 0);
	scrub_free(s);
}

static void
test_scrub_count_is_exact_across_streams(void **state)
{
	struct pat	 p[] = {
		P("a", "tok-aaaa", false),
		P("b", "tok-bbbb", false),
	};
	struct scrub	*s = mk(p, 2);

	(void)state;
	assert_int_equal(scrub_count(s), 0);
	expect(s, "tok-aaaatok-bbbb tok-aaaa", "[REDACTED:a][REDACTED:b] "
	    "[REDACTED:a]");
	assert_int_equal(scrub_count(s), 3);
	expect(s, "tok-aaa tok-bbb", "tok-aaa tok-bbb");
	assert_int_equal(scrub_count(s), 3);
	expect(s, "dG9rLWFhYWE=", "[REDACTED:a]");
	assert_int_equal(scrub_count(s), 4);
	scrub_free(s);
}

static void
test_scrub_same_value_twice_and_equal_patterns(void **state)
{
	struct pat	 p[] = {
		P("first", "same-value", false),
		P("first", "same-value", false),
		P("second", "same-value", false),
	};
	struct scrub	*s = mk(p, 3);

	(void)state;
	/* The first added names the replacement. */
	expect(s, "same-value", "[REDACTED:first]");
	scrub_free(s);
}

static void
test_scrub_limits_refused(void **state)
{
	struct scrub	*s;
	struct cb_error	 err;
	char		 id[32];
	uint8_t		*big;
	size_t		 i;

	(void)state;
	/* Too many values. */
	assert_int_equal(scrub_new(&s, &err), 0);
	for (i = 0; i < SCRUB_VALUES_MAX; i++) {
		snprintf(id, sizeof(id), "v%zu", i);
		assert_int_equal(scrub_add_value(s, id, (const uint8_t *)id,
		    strlen(id), &err), 0);
	}
	assert_int_equal(scrub_add_value(s, "last", S("value"), &err),
	    -CB_ETOOLARGE);
	assert_int_equal(err.code, CB_ETOOLARGE);
	assert_non_null(strstr(err.msg, "credential values"));
	scrub_free(s);

	/* Too many rendered patterns. */
	assert_int_equal(scrub_new(&s, &err), 0);
	for (i = 0; i < SCRUB_RENDERED_MAX; i++)
		assert_int_equal(scrub_add_rendered(s, "r", S("rendered"),
		    &err), 0);
	assert_int_equal(scrub_add_rendered(s, "r", S("rendered"), &err),
	    -CB_ETOOLARGE);
	scrub_free(s);

	/* Too many ids; invalid ids. */
	assert_int_equal(scrub_new(&s, &err), 0);
	for (i = 0; i < SCRUB_IDS_MAX; i++) {
		snprintf(id, sizeof(id), "id%zu", i);
		assert_int_equal(scrub_add_rendered(s, id, S("pattern"),
		    &err), 0);
	}
	assert_int_equal(scrub_add_rendered(s, "more", S("pattern"), &err),
	    -CB_ETOOLARGE);
	assert_int_equal(scrub_add_rendered(s, "", S("pattern"), &err),
	    -CB_EBADREQ);
	assert_int_equal(scrub_add_value(s, "a]b", S("pattern"), &err),
	    -CB_EBADREQ);
	scrub_free(s);

	/* One value too large for its own patterns. */
	big = malloc(SCRUB_BYTES_MAX + 1);
	assert_non_null(big);
	memset(big, 'z', SCRUB_BYTES_MAX + 1);
	assert_int_equal(scrub_new(&s, &err), 0);
	assert_int_equal(scrub_add_value(s, "big", big, SCRUB_BYTES_MAX + 1,
	    &err), -CB_ETOOLARGE);
	/* Its encodings overflow the budget: refused, and nothing kept. */
	assert_int_equal(scrub_add_value(s, "big", big, SCRUB_BYTES_MAX / 2,
	    &err), -CB_ETOOLARGE);
	assert_int_equal(scrub_add_value(s, "ok", S("fine-value"), &err), 0);
	assert_int_equal(scrub_compile(s, &err), 0);
	expect(s, "fine-value zzzz", "[REDACTED:ok] zzzz");
	scrub_free(s);

	/* The pairs overflow it: refused by scrub_compile. */
	assert_int_equal(scrub_new(&s, &err), 0);
	for (i = 0; i < 8; i++) {
		memset(big, (int)('a' + i), 20000);
		snprintf(id, sizeof(id), "p%zu", i);
		assert_int_equal(scrub_add_value(s, id, big, 20000, &err), 0);
	}
	assert_int_equal(scrub_compile(s, &err), -CB_ETOOLARGE);
	assert_int_equal(err.code, CB_ETOOLARGE);
	free(big);
	{
		struct scrub_stream *st;

		assert_int_equal(scrub_stream_begin(s, &st, &err),
		    -CB_EINTERNAL);
		assert_null(st);
	}
	scrub_free(s);
}

/* Allocation failure injection: fail the n-th secmem allocation. */
static int	fail_countdown;

static bool
fail_nth(size_t n)
{
	(void)n;
	return fail_countdown > 0 && --fail_countdown == 0;
}

static void
test_scrub_allocation_failures_are_errors(void **state)
{
	struct scrub	*s;
	struct scrub_stream *st;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	int		 nth, rc, failed = 0;

	(void)state;
	for (nth = 1; nth < 200; nth++) {
		fail_countdown = nth;
		secmem_set_fail_hook(fail_nth);
		if ((rc = scrub_new(&s, &err)) != 0)
			assert_null(s);
		else if ((rc = scrub_add_value(s, "u", S("user-01"),
		    &err)) == 0 &&
		    (rc = scrub_add_value(s, "p", S("pass\"word"), &err)) == 0 &&
		    (rc = scrub_add_rendered(s, "p", S("cGFzcyJ3b3Jk"),
		    &err)) == 0 && (rc = scrub_compile(s, &err)) == 0 &&
		    (rc = scrub_stream_begin(s, &st, &err)) == 0) {
			secbuf_reset(&out);
			if ((rc = scrub_feed(st, "x user-01 pass\\\"word y", 22,
			    &out, &err)) == 0)
				rc = scrub_stream_end(st, &out, &err);
			else
				scrub_stream_free(st);
		}
		secmem_set_fail_hook(NULL);
		if (rc != 0) {
			failed++;
			assert_int_equal(rc, -CB_EINTERNAL);
			assert_int_equal(err.code, CB_EINTERNAL);
		} else {
			assert_int_equal(out.len, 29);
			assert_memory_equal(out.data,
			    "x [REDACTED:u] [REDACTED:p] y", 29);
		}
		scrub_free(s);
		if (rc == 0 && fail_countdown > 0)
			break;	/* every allocation has been made to fail */
	}
	assert_true(failed > 5);
	secbuf_free(&out);
}

static void
test_scrub_held_back_tail_is_bounded(void **state)
{
	static char	 longpat[1000];
	struct pat	 p[] = {
		P("ten", "abcdefghij", true),
		{ "long", longpat, sizeof(longpat), true },
	};
	struct scrub	*s;
	struct scrub_stream *st;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	size_t		 i, total = 0;

	(void)state;
	memset(longpat, 'L', sizeof(longpat));
	longpat[sizeof(longpat) - 1] = '!';
	s = mk(p, 2);
	assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
	for (i = 0; i < 500; i++) {
		assert_int_equal(scrub_feed(st, "abcdefghi", 9, &out, &err),
		    0);
		total += 9;
		/* Only a possible start of a match is held back. */
		assert_true(scrub_stream_held(st) <= 9);
		assert_int_equal(out.len + scrub_stream_held(st), total);
	}
	for (i = 0; i < 2000; i++) {
		assert_int_equal(scrub_feed(st, "LLLLLLL", 7, &out, &err), 0);
		total += 7;
		assert_true(scrub_stream_held(st) < sizeof(longpat));
		assert_int_equal(out.len + scrub_stream_held(st), total);
	}
	assert_int_equal(scrub_feed(st, "x", 1, &out, &err), 0);
	assert_int_equal(scrub_stream_held(st), 0);
	/* A whole pattern that nothing extends is written at once. */
	assert_int_equal(scrub_feed(st, longpat, sizeof(longpat), &out,
	    &err), 0);
	assert_int_equal(scrub_stream_held(st), 0);
	assert_int_equal(out.len, total + 1 + 15);
	assert_memory_equal(out.data + total + 1, "[REDACTED:long]", 15);
	assert_int_equal(scrub_stream_end(st, &out, &err), 0);
	assert_int_equal(out.len, total + 1 + 15);
	assert_int_equal(scrub_count(s), 1);
	secbuf_free(&out);
	scrub_free(s);
}

/* A small deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

/*
 * The model: from each position, the longest pattern that starts at the
 * leftmost position where any does (the first added among equal ones),
 * then on from its end.
 */
static size_t
naive(char pats[][16], const size_t *plen, char ids[][24], size_t np,
    const char *text, size_t len, char *out)
{
	size_t	i = 0, o = 0, k, best, bl, cnt = 0;

	while (i < len) {
		best = np;
		bl = 0;
		for (k = 0; k < np; k++)
			if (plen[k] >= SCRUB_MIN_LEN && plen[k] > bl &&
			    plen[k] <= len - i &&
			    memcmp(text + i, pats[k], plen[k]) == 0) {
				best = k;
				bl = plen[k];
			}
		if (best == np) {
			out[o++] = text[i++];
			continue;
		}
		o += (size_t)sprintf(out + o, "[REDACTED:%s]", ids[best]);
		i += bl;
		cnt++;
	}
	out[o] = '\0';
	return cnt;
}

static void
test_scrub_differential_against_naive_model(void **state)
{
	char		 pats[10][16], ids[10][24], text[300], want[300 * 16];
	char		 base[16];
	size_t		 plen[10], np, len, i, j, k, m, cnt, before, off, n;
	const char	*alpha;
	struct scrub	*s;
	struct scrub_stream *st;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	int		 iter, mode;

	(void)state;
	for (iter = 0; iter < 5000; iter++) {
		alpha = iter % 2 == 0 ? "ab" : iter % 4 == 1 ? "abc" : "abcd";
		np = 1 + rnd(10);
		for (i = 0; i < sizeof(base); i++)
			base[i] = alpha[rnd((uint32_t)strlen(alpha))];
		assert_int_equal(scrub_new(&s, &err), 0);
		for (k = 0; k < np; k++) {
			plen[k] = 2 + rnd(11);
			for (i = 0; i < plen[k]; i++)
				pats[k][i] = alpha[rnd((uint32_t)strlen(alpha))];
			/*
			 * Mostly related to an earlier one: an extension of
			 * it, a suffix, a piece of its end followed by more
			 * (patterns that overlap), or a copy.
			 */
			if (k > 0 && rnd(3) != 0) {
				j = rnd((uint32_t)k);
				m = 1 + rnd((uint32_t)plen[j]);
				switch (rnd(4)) {
				case 0:		/* pats[j] + more */
					memcpy(pats[k], pats[j], plen[j]);
					if (plen[k] < plen[j])
						plen[k] = plen[j];
					break;
				case 1:		/* suffix of pats[j] */
					plen[k] = m;
					memcpy(pats[k], pats[j] + plen[j] - m,
					    m);
					break;
				case 2:		/* its last m bytes + more */
					if (plen[k] < m)
						plen[k] = m;
					memcpy(pats[k], pats[j] + plen[j] - m,
					    m);
					break;
				default:
					plen[k] = plen[j];
					memcpy(pats[k], pats[j], plen[j]);
					break;
				}
			}
			/*
			 * Or, every other round, all pieces of one string:
			 * prefixes, suffixes and inner parts of each other.
			 */
			if (iter % 2 == 1) {
				j = rnd(12);
				plen[k] = 2 + rnd((uint32_t)(14 - j));
				memcpy(pats[k], base + j, plen[k]);
			}
			snprintf(ids[k], sizeof(ids[k]), "p%zu", k);
			assert_int_equal(scrub_add_rendered(s, ids[k],
			    (const uint8_t *)pats[k], plen[k], &err), 0);
		}
		assert_int_equal(scrub_compile(s, &err), 0);

		len = rnd(2) == 0 ? rnd(40) : rnd(sizeof(text));
		for (i = 0; i < len; i++) {
			/* Text made mostly of pattern pieces. */
			if (iter % 2 == 1 && rnd(2) == 0 && i + 16 < len) {
				/* A piece of the base string. */
				j = rnd(16);
				n = 1 + rnd((uint32_t)(16 - j));
				memcpy(text + i, base + j, n);
				i += n - 1;
			} else if (rnd(2) == 0 && i + 15 < len) {
				k = rnd((uint32_t)np);
				n = 1 + rnd((uint32_t)plen[k]);
				if (rnd(2) == 0)	/* a prefix */
					memcpy(text + i, pats[k], n);
				else			/* a suffix */
					memcpy(text + i, pats[k] + plen[k] - n,
					    n);
				i += n - 1;
			} else
				text[i] = (char)(rnd(8) == 0 ? 'x' :
				    alpha[rnd((uint32_t)strlen(alpha))]);
		}
		cnt = naive(pats, plen, ids, np, text, len, want);

		for (mode = 0; mode < 3; mode++) {
			before = scrub_count(s);
			secbuf_reset(&out);
			assert_int_equal(scrub_stream_begin(s, &st, &err), 0);
			for (off = 0; off < len; off += n) {
				n = mode == 0 ? len : mode == 1 ? 1 :
				    rnd(20);
				if (n > len - off)
					n = len - off;
				assert_int_equal(scrub_feed(st, text + off, n,
				    &out, &err), 0);
			}
			assert_int_equal(scrub_stream_end(st, &out, &err), 0);
			if (out.len != strlen(want) || (out.len > 0 &&
			    memcmp(out.data, want, out.len) != 0)) {
				fprintf(stderr, "iteration %d mode %d\n",
				    iter, mode);
				for (k = 0; k < np; k++)
					fprintf(stderr, "pattern %s: %.*s\n",
					    ids[k], (int)plen[k], pats[k]);
				fail_msg("text \"%.*s\": got \"%.*s\", want "
				    "\"%s\"", (int)len, text, (int)out.len,
				    (const char *)out.data, want);
			}
			assert_int_equal(scrub_count(s) - before, cnt);
		}
		scrub_free(s);
	}
	secbuf_free(&out);
}

/* The model's patterns for values: bytes and replacement text. */
struct mpat {
	char	 b[64];
	size_t	 len;
	char	 name[48];
};

/* Append filter f of n bytes at v to the model (none for bad json). */
static void
mpat_add(struct mpat *mp, size_t *n, int f, const char *v, size_t len,
    const char *name)
{
	struct secbuf	b = SECBUF_INIT;
	int		rc;

	if (f == 0)
		assert_int_equal(secbuf_append(&b, v, len), 0);
	else if ((rc = tpl_filter_apply(f, (const uint8_t *)v, len, &b,
	    NULL)) != 0) {
		assert_int_equal(rc, -CB_EBADREQ);
		assert_int_equal(f, TPL_F_JSON);
		secbuf_free(&b);
		return;
	}
	assert_true(b.len < sizeof(mp[*n].b));
	memcpy(mp[*n].b, b.data, b.len);
	mp[*n].len = b.len;
	snprintf(mp[*n].name, sizeof(mp[*n].name), "%s", name);
	(*n)++;
	secbuf_free(&b);
}

/*
 * Values, each encoding and the pairs, against the same naive model over
 * the patterns scrub.h lists, in the order it lists them.
 */
static void
test_scrub_differential_values_encodings_and_pairs(void **state)
{
	static const char alpha[] = "ab/ \"\xc3\xff";
	char		 vals[4][8], name[48], text[400], want[400 * 16];
	size_t		 vlen[4], nv, np, i, j, k, n, bl, len, o, cnt;
	struct mpat	 mp[4 * 4 + 4 * 3];
	struct scrub	*s;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	int		 iter;

	(void)state;
	for (iter = 0; iter < 1500; iter++) {
		nv = 1 + rnd(4);
		np = 0;
		assert_int_equal(scrub_new(&s, &err), 0);
		for (k = 0; k < nv; k++) {
			vlen[k] = 2 + rnd(6);
			for (i = 0; i < vlen[k]; i++)
				vals[k][i] = alpha[rnd(sizeof(alpha) - 1)];
			snprintf(name, sizeof(name), "v%zu", k);
			assert_int_equal(scrub_add_value(s, name,
			    (const uint8_t *)vals[k], vlen[k], &err), 0);
			if (vlen[k] < SCRUB_MIN_LEN)
				continue;
			mpat_add(mp, &np, 0, vals[k], vlen[k], name);
			mpat_add(mp, &np, TPL_F_URLQUERY, vals[k], vlen[k],
			    name);
			mpat_add(mp, &np, TPL_F_JSON, vals[k], vlen[k], name);
			mpat_add(mp, &np, TPL_F_BASE64, vals[k], vlen[k], name);
		}
		for (i = 0; i < nv; i++)
			for (j = 0; j < nv; j++) {
				char	pair[20];

				if (i == j)
					continue;
				memcpy(pair, vals[i], vlen[i]);
				pair[vlen[i]] = ':';
				memcpy(pair + vlen[i] + 1, vals[j], vlen[j]);
				snprintf(name, sizeof(name), "v%zu+v%zu", i, j);
				mpat_add(mp, &np, TPL_F_BASE64, pair,
				    vlen[i] + 1 + vlen[j], name);
			}
		assert_int_equal(scrub_compile(s, &err), 0);

		/* Text: pieces of the patterns and of the values. */
		len = 0;
		while (len < 300) {
			k = rnd((uint32_t)np + 1);
			if (k == np || rnd(4) == 0) {
				text[len++] = alpha[rnd(sizeof(alpha) - 1)];
				continue;
			}
			n = rnd(3) == 0 ? 1 + rnd((uint32_t)mp[k].len) :
			    mp[k].len;
			memcpy(text + len, mp[k].b, n);
			len += n;
		}

		/* The model. */
		o = cnt = 0;
		for (i = 0; i < len;) {
			bl = 0;
			for (k = 0, j = np; k < np; k++)
				if (mp[k].len > bl && mp[k].len <= len - i &&
				    memcmp(text + i, mp[k].b, mp[k].len) == 0) {
					j = k;
					bl = mp[k].len;
				}
			if (j == np) {
				want[o++] = text[i++];
				continue;
			}
			o += (size_t)sprintf(want + o, "[REDACTED:%s]",
			    mp[j].name);
			i += bl;
			cnt++;
		}

		n = scrub_count(s);
		run(s, text, len, 1 + rnd(40), &out);
		if (out.len != o || memcmp(out.data, want, o) != 0)
			fail_msg("iteration %d: got \"%.*s\", want \"%.*s\"",
			    iter, (int)out.len, (const char *)out.data,
			    (int)o, want);
		assert_int_equal(scrub_count(s) - n, cnt);
		scrub_free(s);
	}
	secbuf_free(&out);
}

/* A random value of n bytes from the alphabet. */
static void
rnd_value(char *v, size_t n, const char *alpha)
{
	size_t	i;

	for (i = 0; i < n; i++)
		v[i] = alpha[rnd((uint32_t)strlen(alpha))];
	v[n] = '\0';
}

static void
test_scrub_one_mib_with_twenty_values_is_linear(void **state)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789";
	char		 vals[20][41], ids[20][24];
	struct scrub	*s;
	struct cb_error	 err;
	struct secbuf	 out = SECBUF_INIT;
	char		*text, *want;
	size_t		 tl = 0, wl = 0, k, cnt = 0, total = 1 << 20;

	(void)state;
	assert_int_equal(scrub_new(&s, &err), 0);
	for (k = 0; k < 20; k++) {
		rnd_value(vals[k], 8 + rnd(33), alnum);
		snprintf(ids[k], sizeof(ids[k]), "v%zu", k);
		assert_int_equal(scrub_add_value(s, ids[k],
		    (const uint8_t *)vals[k], strlen(vals[k]), &err), 0);
	}
	assert_int_equal(scrub_compile(s, &err), 0);
	text = malloc(total + 64);
	want = malloc(total + 64);
	assert_non_null(text);
	assert_non_null(want);
	/* Filler that no pattern contains, and values between. */
	while (tl < total) {
		if (rnd(50) == 0) {
			k = rnd(20);
			memcpy(text + tl, vals[k], strlen(vals[k]));
			tl += strlen(vals[k]);
			wl += (size_t)sprintf(want + wl, "[REDACTED:%s]",
			    ids[k]);
			cnt++;
		} else {
			text[tl++] = " ,.;!*\n"[rnd(7)];
			want[wl++] = text[tl - 1];
		}
	}
	run(s, text, tl, 16384, &out);
	assert_int_equal(out.len, wl);
	assert_memory_equal(out.data, want, wl);
	assert_int_equal(scrub_count(s), cnt);
	assert_true(scrub_steps(s) <= 4 * (uint64_t)tl);
	secbuf_free(&out);
	free(text);
	free(want);
	scrub_free(s);
}

static void
test_scrub_adversarial_input_is_linear(void **state)
{
	static char	 longpat[300];
	struct pat	 p[] = {
		P("a", "aaaa", true),
		{ "long", longpat, sizeof(longpat), true },
		P("mid", "aaaaaaab", true),
	};
	struct scrub	*s;
	struct secbuf	 out = SECBUF_INIT;
	char		*text;
	size_t		 n = 1 << 20, i;

	(void)state;
	/*
	 * A short pattern, and a long one that it starts and that the
	 * text keeps almost completing: restarting the search after each
	 * short match would take n * 300 / 4 steps.
	 */
	memset(longpat, 'a', sizeof(longpat));
	longpat[sizeof(longpat) - 1] = 'b';
	s = mk(p, 3);
	text = malloc(n);
	assert_non_null(text);
	memset(text, 'a', n);
	run(s, text, n, 4093, &out);
	assert_int_equal(out.len, n / 4 * 12);
	for (i = 0; i < out.len; i += 12)
		assert_memory_equal(out.data + i, "[REDACTED:a]", 12);
	assert_int_equal(scrub_count(s), n / 4);
	assert_true(scrub_steps(s) <= 8 * (uint64_t)n);
	secbuf_free(&out);
	free(text);
	scrub_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scrub_raw_value_is_redacted),
		cmocka_unit_test(test_scrub_urlquery_form_is_redacted),
		cmocka_unit_test(test_scrub_json_form_is_redacted),
		cmocka_unit_test(
		    test_scrub_base64_form_with_padding_is_redacted),
		cmocka_unit_test(test_scrub_basic_pair_in_both_orders),
		cmocka_unit_test(test_scrub_rendered_chain_is_redacted),
		cmocka_unit_test(
		    test_scrub_leftmost_longest_among_nested_patterns),
		cmocka_unit_test(
		    test_scrub_match_after_a_short_one_inside_a_longer_attempt),
		cmocka_unit_test(
		    test_scrub_shorter_match_after_one_that_overlaps_the_first),
		cmocka_unit_test(test_scrub_value_occurring_many_times),
		cmocka_unit_test(test_scrub_match_split_at_every_point),
		cmocka_unit_test(test_scrub_matches_do_not_span_streams),
		cmocka_unit_test(
		    test_scrub_short_values_are_skipped_and_counted),
		cmocka_unit_test(
		    test_scrub_invalid_utf8_value_has_no_json_form_but_the_others),
		cmocka_unit_test(test_scrub_count_is_exact_across_streams),
		cmocka_unit_test(test_scrub_same_value_twice_and_equal_patterns),
		cmocka_unit_test(test_scrub_limits_refused),
		cmocka_unit_test(test_scrub_allocation_failures_are_errors),
		cmocka_unit_test(test_scrub_held_back_tail_is_bounded),
		cmocka_unit_test(test_scrub_differential_against_naive_model),
		cmocka_unit_test(
		    test_scrub_differential_values_encodings_and_pairs),
		cmocka_unit_test(test_scrub_one_mib_with_twenty_values_is_linear),
		cmocka_unit_test(test_scrub_adversarial_input_is_linear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
