/*
 * fuzz_template: libFuzzer target for daemon/template.c, the code where
 * decrypted values meet the request that carries them out.
 *
 * Input layout (tests/fuzz/make_corpus.py writes seeds in it):
 *
 *	byte 0		flags (bit 0: leave stale bytes in the output;
 *			bits 1-2: substitute.syntax, 0 both, 1 angle,
 *			2 brace, 3 both)
 *	bytes 1-2	template length L, big-endian (at most what is left)
 *	L bytes		the template
 *	then values	[len][len bytes], used in turn for each lookup and
 *			cycled; len 0xff is a lookup that fails (not_found)
 *
 * For each input: tpl_parse_syntax, then tpl_check_url_template,
 * tpl_check_literal and tpl_render_bound, then tpl_render in all four
 * contexts; the text also goes through url_routing_header and
 * url_authority_matches.  Every result is checked against an independent
 * model written here from template.h (not from template.c):
 *
 *  - parse: on error the tpl is empty and some placeholder attempt
 *    ("<<", whitespace, '.'; or "{{", whitespace, ".credentials.") exists;
 *    on success the placeholders are in order, inside the text, start
 *    with "<<" and end with ">>" or start with "{{" and end with "}}", are
 *    of a form the syntax accepts, have valid ids and filters, and every
 *    attempt outside them is one of them;
 *  - the URL check accepts exactly the templates the header describes;
 *  - the literal check refuses exactly the templates whose text outside
 *    placeholders holds a byte the context forbids;
 *  - a rendering is never longer than tpl_render_bound said;
 *  - a Host value accepted for https://api.example.com is that host,
 *    with no userinfo, path or control character;
 *  - render gives exactly the model's output (literal text plus each
 *    value through its filters), or fails with the model's error code
 *    after the model's number of lookups; on failure the output is empty
 *    (all or nothing);
 *  - error messages are one line of printable ASCII.
 *
 * Lookup values live in buffers of exactly their size, freed when the next
 * lookup comes (template.h says they need not live longer), so a read
 * past a value or after its time shows up under ASan.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb_error.h"
#include "secbuf.h"
#include "template.h"
#include "url.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_ASSERT(x)	do { if (!(x)) fz_fail(#x, __LINE__); } while (0)

/* An invariant does not hold: say which, then crash for libFuzzer. */
static void
fz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_template: invariant violated at line %d: %s\n",
	    line, what);
	__builtin_trap();
}

#define FZ_NOTFOUND	0xff
#define FZ_MAXVALS	64

struct fz_vals {
	const uint8_t	*v[FZ_MAXVALS];	/* NULL: the lookup fails */
	size_t		 len[FZ_MAXVALS];
	size_t		 n;
	size_t		 next;		/* lookups made */
	uint8_t		*cur;	/* the value handed out last */
};

/* The value of the i-th lookup (NULL: fails); cycles through the list. */
static const uint8_t *
fz_val(const struct fz_vals *fv, size_t i, size_t *len)
{
	if (fv->n == 0) {
		*len = 0;
		return (const uint8_t *)"";
	}
	*len = fv->len[i % fv->n];
	return fv->v[i % fv->n];
}

/* tpl_lookup_fn: hand out the next value in a buffer of its exact size. */
static int
fz_lookup(void *arg, const char *id, const uint8_t **val, size_t *len,
    struct cb_error *err)
{
	struct fz_vals	*fv = arg;
	const uint8_t	*v;
	size_t		 n;

	FZ_ASSERT(id != NULL && *id != '\0' && strlen(id) <= TPL_ID_MAX);
	free(fv->cur);
	fv->cur = NULL;
	v = fz_val(fv, fv->next++, &n);
	if (v == NULL)
		return cb_error_set(err, CB_ENOTFOUND, "credential '%s' is "
		    "not set", id);
	FZ_ASSERT((fv->cur = malloc(n > 0 ? n : 1)) != NULL);
	memcpy(fv->cur, v, n);
	*val = fv->cur;
	*len = n;
	return 0;
}

/* --- the model --- */

static bool
fz_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
fz_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Length of the UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if invalid. */
static size_t
fz_utf8_seq(const uint8_t *s, size_t n)
{
	size_t	k, i;
	uint8_t	lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	if (s[0] == 0xed)
		hi = 0x9f;
	if (s[0] == 0xf0)
		lo = 0x90;
	if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

static bool
fz_utf8(const uint8_t *s, size_t n)
{
	size_t	i, k;

	for (i = 0; i < n; i += k)
		if ((k = fz_utf8_seq(s + i, n - i)) == 0)
			return false;
	return true;
}

/* Append n bytes to b. */
static void
fz_put(struct secbuf *b, const void *p, size_t n)
{
	FZ_ASSERT(secbuf_append(b, p, n) == 0);
}

/* Filter s into out (emptied first); 0, or -CB_EBADREQ (json, bad UTF-8). */
static int
fz_filter(int f, const uint8_t *s, size_t n, struct secbuf *out)
{
	static const char	b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char	hexu[] = "0123456789ABCDEF";
	static const char	hexl[] = "0123456789abcdef";
	char			 e[8];
	size_t			 i, k;
	uint32_t		 v;

	secbuf_reset(out);
	switch (f) {
	case TPL_F_URLQUERY:
	case TPL_F_URLPATH:
		for (i = 0; i < n; i++) {
			if (fz_alpha(s[i]) || fz_digit(s[i]) || s[i] == '-' ||
			    s[i] == '.' || s[i] == '_' || s[i] == '~')
				fz_put(out, s + i, 1);
			else {
				e[0] = '%';
				e[1] = hexu[s[i] >> 4];
				e[2] = hexu[s[i] & 0xf];
				fz_put(out, e, 3);
			}
		}
		return 0;
	case TPL_F_BASE64:
		for (i = 0; i < n; i += 3) {
			v = (uint32_t)s[i] << 16;
			if (i + 1 < n)
				v |= (uint32_t)s[i + 1] << 8;
			if (i + 2 < n)
				v |= s[i + 2];
			e[0] = b64[(v >> 18) & 63];
			e[1] = b64[(v >> 12) & 63];
			e[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
			e[3] = i + 2 < n ? b64[v & 63] : '=';
			fz_put(out, e, 4);
		}
		return 0;
	case TPL_F_JSON:
		for (i = 0; i < n; i += k) {
			if ((k = fz_utf8_seq(s + i, n - i)) == 0)
				return -CB_EBADREQ;
			if (k == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
			    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
				fz_put(out, s[i + 2] == 0xa8 ? "\\u2028" :
				    "\\u2029", 6);
			else if (k > 1)
				fz_put(out, s + i, k);
			else if (s[i] == '"' || s[i] == '\\') {
				e[0] = '\\';
				e[1] = (char)s[i];
				fz_put(out, e, 2);
			} else if (s[i] == '\b')
				fz_put(out, "\\b", 2);
			else if (s[i] == '\f')
				fz_put(out, "\\f", 2);
			else if (s[i] == '\n')
				fz_put(out, "\\n", 2);
			else if (s[i] == '\r')
				fz_put(out, "\\r", 2);
			else if (s[i] == '\t')
				fz_put(out, "\\t", 2);
			else if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '<' ||
			    s[i] == '>' || s[i] == '&') {
				memcpy(e, "\\u00", 4);
				e[4] = hexl[s[i] >> 4];
				e[5] = hexl[s[i] & 0xf];
				fz_put(out, e, 6);
			} else
				fz_put(out, s + i, 1);
		}
		return 0;
	}
	fz_fail("unknown filter", __LINE__);
	return -1;
}

/* Whether a filtered value may go into ctx (template.h's table). */
static bool
fz_ctx_ok(enum tpl_ctx ctx, const uint8_t *s, size_t n)
{
	size_t	i;

	switch (ctx) {
	case TPL_URL:
		for (i = 0; i < n; i++)
			if (s[i] < 0x21 || s[i] > 0x7e)
				return false;
		return true;
	case TPL_HEADER:
		for (i = 0; i < n; i++)
			if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
				return false;
		return fz_utf8(s, n);
	case TPL_TEXT:
		return fz_utf8(s, n);
	case TPL_BODY:
		return true;
	}
	return false;
}

/*
 * What tpl_render must do: the output into out, or the error code; *calls
 * the number of lookups it makes.
 */
static int
fz_model_render(const struct tpl *t, enum tpl_ctx ctx,
    const struct fz_vals *fv, struct secbuf *out, size_t *calls)
{
	struct secbuf	 a = SECBUF_INIT, b = SECBUF_INIT;
	struct secbuf	*cur, *nxt, *tmp;
	const uint8_t	*v;
	size_t		 i, n, pos = 0;
	int		 k, rc = 0;

	secbuf_reset(out);
	*calls = 0;
	for (i = 0; i < t->nph && rc == 0; i++) {
		const struct tpl_ph *ph = &t->ph[i];

		fz_put(out, t->text + pos, ph->start - pos);
		pos = ph->end;
		v = fz_val(fv, (*calls)++, &n);
		if (v == NULL) {
			rc = -CB_ENOTFOUND;
			break;
		}
		secbuf_reset(&a);
		fz_put(&a, v, n);
		cur = &a;
		nxt = &b;
		for (k = 0; k < ph->nfilters && rc == 0; k++) {
			rc = fz_filter(ph->filters[k], cur->data, cur->len,
			    nxt);
			tmp = cur;
			cur = nxt;
			nxt = tmp;
		}
		if (rc == 0 && !fz_ctx_ok(ctx, cur->data, cur->len))
			rc = -CB_EBADREQ;
		if (rc == 0)
			fz_put(out, cur->data, cur->len);
	}
	if (rc == 0)
		fz_put(out, t->text + pos, t->len - pos);
	else
		secbuf_reset(out);
	secbuf_free(&a);
	secbuf_free(&b);
	return rc;
}

/* What tpl_check_literal must answer for t in ctx. */
static int
fz_model_literal(const struct tpl *t, enum tpl_ctx ctx)
{
	size_t	i, k = 0;
	uint8_t	c;

	if (ctx != TPL_URL && ctx != TPL_HEADER)
		return 0;
	for (i = 0; i < t->len; i++) {
		if (k < t->nph && i == t->ph[k].start) {
			i = t->ph[k++].end - 1;
			continue;
		}
		c = (uint8_t)t->text[i];
		if (c == 0x7f || (c < 0x20 && !(ctx == TPL_HEADER &&
		    c == '\t')) || (c == ' ' && ctx == TPL_URL))
			return -CB_EBADREQ;
	}
	return 0;
}

/* url_authority_matches accepts only the origin's own host. */
static void
fz_check_host(const char *text, size_t len)
{
	static const char	host[] = "api.example.com";
	size_t			i, b = 0, e = len;

	(void)url_routing_header(text, len);
	if (!url_authority_matches("https://api.example.com", text, len))
		return;
	while (b < e && (text[b] == ' ' || text[b] == '\t'))
		b++;
	while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t'))
		e--;
	FZ_ASSERT(e - b >= sizeof(host) - 1);
	FZ_ASSERT(strncasecmp(text + b, host, sizeof(host) - 1) == 0);
	for (i = b; i < e; i++)
		FZ_ASSERT(text[i] != '@' && text[i] != '/' &&
		    (uint8_t)text[i] > 0x20 && text[i] != 0x7f);
}

/*
 * Is there a placeholder attempt at i: "<<", whitespace, '.'; or "{{",
 * whitespace, ".credentials."?
 */
static bool
fz_attempt(const char *s, size_t len, size_t i)
{
	size_t	j;

	if (i + 1 >= len || s[i] != s[i + 1] || (s[i] != '<' && s[i] != '{'))
		return false;
	for (j = i + 2; j < len && (s[j] == ' ' || s[j] == '\t' ||
	    s[j] == '\r' || s[j] == '\n' || s[j] == '\v' || s[j] == '\f'); j++)
		;
	if (s[i] == '{')
		return len - j >= 13 && memcmp(s + j, ".credentials.", 13) == 0;
	return j < len && s[j] == '.';
}

/* A message must be one line of printable ASCII. */
static void
fz_check_msg(const struct cb_error *err)
{
	size_t	i;

	FZ_ASSERT(err->code != 0 && err->msg[0] != '\0');
	for (i = 0; err->msg[i] != '\0'; i++)
		FZ_ASSERT(err->msg[i] >= 0x20 && err->msg[i] < 0x7f);
}

/* Check a successful parse against the grammar of template.h. */
static void
fz_check_parse(const struct tpl *t, enum tpl_syntax syntax)
{
	const struct tpl_ph	*ph;
	size_t			 i, j, k;
	bool			 brace;

	for (i = 0; i < t->nph; i++) {
		ph = &t->ph[i];
		FZ_ASSERT(ph->start + 4 < ph->end && ph->end <= t->len);
		FZ_ASSERT(i == 0 || t->ph[i - 1].end <= ph->start);
		brace = t->text[ph->start] == '{';
		FZ_ASSERT(memcmp(t->text + ph->start, brace ? "{{" : "<<",
		    2) == 0);
		FZ_ASSERT(memcmp(t->text + ph->end - 2, brace ? "}}" : ">>",
		    2) == 0);
		FZ_ASSERT(!(brace && syntax == TPL_SYNTAX_ANGLE));
		FZ_ASSERT(!(!brace && syntax == TPL_SYNTAX_BRACE));
		k = strlen(ph->id);
		FZ_ASSERT(k >= 1 && k <= TPL_ID_MAX);
		FZ_ASSERT(fz_alpha((uint8_t)ph->id[0]) || ph->id[0] == '_');
		for (j = 1; j < k; j++)
			FZ_ASSERT(fz_alpha((uint8_t)ph->id[j]) ||
			    fz_digit((uint8_t)ph->id[j]) || ph->id[j] == '_' ||
			    ph->id[j] == '-');
		/* The id is in the placeholder's text. */
		FZ_ASSERT(memmem(t->text + ph->start, ph->end - ph->start,
		    ph->id, k) != NULL);
		FZ_ASSERT(ph->nfilters >= 0 && ph->nfilters <= TPL_FILTERS_MAX);
		for (j = 0; j < (size_t)ph->nfilters; j++)
			FZ_ASSERT(tpl_filter_name(ph->filters[j]) != NULL);
	}
	/* Every attempt outside the placeholders is one of them. */
	for (i = 0, k = 0; i < t->len; i++) {
		while (k < t->nph && t->ph[k].end <= i)
			k++;
		if (k < t->nph && i > t->ph[k].start)
			continue;	/* inside placeholder k */
		if (k < t->nph && i == t->ph[k].start)
			continue;
		FZ_ASSERT(!fz_attempt(t->text, t->len, i));
	}
}

/* What tpl_check_url_template must answer. */
static int
fz_model_url(const struct tpl *t)
{
	size_t	a, e;

	if (t->len >= 8 && strncasecmp(t->text, "https://", 8) == 0)
		a = 8;
	else if (t->len >= 7 && strncasecmp(t->text, "http://", 7) == 0)
		a = 7;
	else
		return -CB_EBADREQ;
	for (e = a; e < t->len; e++)
		if (t->text[e] == '/' || t->text[e] == '?' ||
		    t->text[e] == '#')
			break;
	return t->nph > 0 && t->ph[0].start < e ? -CB_EBADREQ : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum tpl_ctx ctxs[] = {
		TPL_URL, TPL_HEADER, TPL_TEXT, TPL_BODY
	};
	struct fz_vals	 fv;
	struct tpl	 t = TPL_INIT;
	struct secbuf	 out = SECBUF_INIT, want = SECBUF_INIT;
	struct cb_error	 err;
	char		*text;
	size_t		 tlen, pos, i, calls, n, bound = 0;
	uint8_t		 flags;
	enum tpl_syntax	 syntax;
	int		 rc, mrc, brc;

	if (size < 3)
		return 0;
	flags = data[0];
	switch ((flags >> 1) & 3) {
	case 1:
		syntax = TPL_SYNTAX_ANGLE;
		break;
	case 2:
		syntax = TPL_SYNTAX_BRACE;
		break;
	default:
		syntax = TPL_SYNTAX_BOTH;
		break;
	}
	tlen = (size_t)data[1] << 8 | data[2];
	if (tlen > size - 3)
		tlen = size - 3;
	/* The text in a buffer of its exact size: overreads show. */
	FZ_ASSERT((text = malloc(tlen > 0 ? tlen : 1)) != NULL);
	memcpy(text, data + 3, tlen);

	memset(&fv, 0, sizeof(fv));
	for (pos = 3 + tlen; pos < size && fv.n < FZ_MAXVALS; ) {
		n = data[pos++];
		if (n == FZ_NOTFOUND) {
			fv.v[fv.n] = NULL;
			fv.len[fv.n++] = 0;
			continue;
		}
		if (n > size - pos)
			n = size - pos;
		fv.v[fv.n] = data + pos;
		fv.len[fv.n++] = n;
		pos += n;
	}

	cb_error_clear(&err);
	rc = tpl_parse_syntax(text, tlen, syntax, &t, &err);
	if (rc != 0) {
		FZ_ASSERT(rc == -CB_EBADREQ);
		fz_check_msg(&err);
		FZ_ASSERT(t.ph == NULL && t.nph == 0);
		/* An error comes from a placeholder attempt. */
		for (i = 0; i < tlen && !fz_attempt(text, tlen, i); i++)
			;
		FZ_ASSERT(i < tlen);
		tpl_free(&t);
		goto done;
	}
	FZ_ASSERT(t.text == text && t.len == tlen);
	fz_check_parse(&t, syntax);
	fz_check_host(text, tlen);
	for (i = 0; i < sizeof(ctxs) / sizeof(ctxs[0]); i++) {
		cb_error_clear(&err);
		rc = tpl_check_literal(&t, ctxs[i], "request.url", &err);
		FZ_ASSERT(rc == fz_model_literal(&t, ctxs[i]));
		if (rc != 0)
			fz_check_msg(&err);
	}
	fv.next = 0;
	cb_error_clear(&err);
	brc = tpl_render_bound(&t, fz_lookup, &fv, &bound, &err);
	free(fv.cur);
	fv.cur = NULL;
	FZ_ASSERT(brc == 0 || brc == -CB_ENOTFOUND);

	cb_error_clear(&err);
	rc = tpl_check_url_template(&t, &err);
	FZ_ASSERT(rc == fz_model_url(&t));
	if (rc != 0)
		fz_check_msg(&err);

	for (i = 0; i < sizeof(ctxs) / sizeof(ctxs[0]); i++) {
		secbuf_reset(&out);
		if (flags & 1)
			fz_put(&out, "stale output", 12);
		fv.next = 0;
		cb_error_clear(&err);
		rc = tpl_render(&t, ctxs[i], fz_lookup, &fv, &out, &err);
		free(fv.cur);
		fv.cur = NULL;
		mrc = fz_model_render(&t, ctxs[i], &fv, &want, &calls);
		FZ_ASSERT(rc == mrc);
		FZ_ASSERT(fv.next == calls);
		if (rc != 0) {
			/* All or nothing. */
			FZ_ASSERT(out.len == 0);
			fz_check_msg(&err);
			continue;
		}
		FZ_ASSERT(out.len == want.len);
		FZ_ASSERT(brc != 0 || out.len <= bound);
		FZ_ASSERT(out.len == 0 ||
		    memcmp(out.data, want.data, out.len) == 0);
		if (t.nph == 0)
			FZ_ASSERT(out.len == tlen &&
			    (tlen == 0 || memcmp(out.data, text, tlen) == 0));
	}
	tpl_free(&t);
	FZ_ASSERT(t.ph == NULL && t.nph == 0);
done:
	secbuf_free(&out);
	secbuf_free(&want);
	free(text);
	return 0;
}
