/*
 * template: placeholders in request templates (SPEC section 5.2).  This is
 * where decrypted values meet the request that carries them out of the
 * broker, so it is written to three rules:
 *
 *  - Nothing that looks like a placeholder is passed through silently:
 *    tpl_parse refuses every malformed attempt (template.h defines which
 *    text is an attempt).
 *  - One pass: tpl_render copies literal text and values into the output
 *    and never looks at the output again, so a value cannot pull in another
 *    credential, however it is spelt.
 *  - A value cannot change the request's structure: after its filters, each
 *    value is checked against the context it lands in (URL, header value,
 *    body), and tpl_check_url_template keeps placeholders out of the
 *    scheme and authority of the URL.
 *
 * Every buffer that holds value bytes is a struct secbuf, wiped on every
 * path; messages name placeholders by their template text, never a value.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "cb_error.h"
#include "secbuf.h"
#include "template.h"

#define TPL_PREFIX	".credentials."
#define TPL_PREFIX_LEN	(sizeof(TPL_PREFIX) - 1)
#define TPL_FNAME_SHOW	32	/* bytes of an unknown filter name shown */

/* Room for a quoted placeholder: text, "...", NUL. */
#define TPL_QUOTE_BUF	(TPL_QUOTE_MAX + 4)

static const struct {
	const char	*name;
	int		 f;
} tpl_filters[] = {
	{ "urlquery",	TPL_F_URLQUERY },
	{ "urlpath",	TPL_F_URLPATH },
	{ "json",	TPL_F_JSON },
	{ "base64",	TPL_F_BASE64 },
};

static const char tpl_hex[] = "0123456789ABCDEF";	/* %XX, RFC 3986 */
static const char tpl_hexlc[] = "0123456789abcdef";	/* JSON escapes */

/* Spaces allowed between the tokens of a placeholder. */
static int
tpl_is_sp(char c)
{
	return c == ' ' || c == '\t';
}

/* Whitespace that may sit between "<<" and '.' in a placeholder attempt. */
static int
tpl_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\v' || c == '\f';
}

/* ASCII letter test that does not depend on the locale. */
static int
tpl_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII digit test that does not depend on the locale. */
static int
tpl_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Copy n bytes of template text into buf (TPL_QUOTE_BUF) for a message:
 * at most TPL_QUOTE_MAX bytes, then "...", and every byte outside printable
 * ASCII shown as '?', so a message stays one clean line.
 */
static const char *
tpl_quote(const char *s, size_t n, char *buf)
{
	size_t	i, m;

	m = n > TPL_QUOTE_MAX ? TPL_QUOTE_MAX : n;
	for (i = 0; i < m; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (m < n) {
		memcpy(buf + m, "...", 3);
		m += 3;
	}
	buf[m] = '\0';
	return buf;
}

/*
 * Quote a malformed placeholder attempt starting at start: up to and
 * including the next close (">>" or "}}"), or as much as tpl_quote shows.
 */
static const char *
tpl_quote_attempt(const char *text, size_t len, size_t start, char close,
    char *buf)
{
	size_t	e;

	for (e = start + 2; e < len; e++) {
		if (text[e] == close && e + 1 < len && text[e + 1] == close) {
			e += 2;
			break;
		}
		if (e - start > TPL_QUOTE_MAX)
			break;
	}
	return tpl_quote(text + start, e - start, buf);
}

/* Quote a parsed placeholder by its text in the template. */
static const char *
tpl_quote_ph(const struct tpl *t, const struct tpl_ph *ph, char *buf)
{
	return tpl_quote(t->text + ph->start, ph->end - ph->start, buf);
}

/* Name of filter f, for messages and tools. */
const char *
tpl_filter_name(int f)
{
	size_t	i;

	for (i = 0; i < sizeof(tpl_filters) / sizeof(tpl_filters[0]); i++)
		if (tpl_filters[i].f == f)
			return tpl_filters[i].name;
	return NULL;
}

/* Filter code for a name of n bytes, or 0. */
static int
tpl_filter_lookup(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < sizeof(tpl_filters) / sizeof(tpl_filters[0]); i++)
		if (strlen(tpl_filters[i].name) == n &&
		    memcmp(tpl_filters[i].name, s, n) == 0)
			return tpl_filters[i].f;
	return 0;
}

/*
 * Parse the placeholder attempt at text[start] ("<<" or "{{", whitespace,
 * '.' already seen) into ph.  Either it is well formed, or it is an error:
 * the caller never falls back to treating it as literal text.
 */
static int
tpl_parse_one(const char *text, size_t len, size_t start, struct tpl_ph *ph,
    struct cb_error *err)
{
	char		 q[TPL_QUOTE_BUF];
	const char	*form;
	size_t		 j, idstart, nstart;
	int		 f;
	char		 close;

	if (text[start] == '{') {
		close = '}';
		form = "{{.credentials.ID}}";
	} else {
		close = '>';
		form = "<<.credentials.ID>>";
	}

	memset(ph, 0, sizeof(*ph));
	ph->start = start;
	j = start + 2;
	while (j < len && tpl_is_sp(text[j]))
		j++;
	if (len - j < TPL_PREFIX_LEN ||
	    memcmp(text + j, TPL_PREFIX, TPL_PREFIX_LEN) != 0)
		return cb_error_set(err, CB_EBADREQ, "malformed placeholder "
		    "%s: expected %s",
		    tpl_quote_attempt(text, len, start, close, q), form);
	j += TPL_PREFIX_LEN;

	idstart = j;
	if (j < len && (tpl_is_alpha(text[j]) || text[j] == '_'))
		for (j++; j < len; j++)
			if (!tpl_is_alpha(text[j]) && !tpl_is_digit(text[j]) &&
			    text[j] != '_' && text[j] != '-')
				break;
	if (j == idstart || j - idstart > TPL_ID_MAX)
		return cb_error_set(err, CB_EBADREQ, "malformed placeholder "
		    "%s: the credential id must be 1 to %d characters of "
		    "[A-Za-z0-9_-], not starting with a digit or '-'",
		    tpl_quote_attempt(text, len, start, close, q), TPL_ID_MAX);
	memcpy(ph->id, text + idstart, j - idstart);
	ph->id[j - idstart] = '\0';

	for (;;) {
		while (j < len && tpl_is_sp(text[j]))
			j++;
		if (j >= len)
			return cb_error_set(err, CB_EBADREQ, "unterminated "
			    "placeholder %s: missing '%c%c'",
			    tpl_quote_attempt(text, len, start, close, q),
			    close, close);
		if (text[j] == close && j + 1 < len && text[j + 1] == close) {
			ph->end = j + 2;
			return 0;
		}
		if (text[j] != '|')
			return cb_error_set(err, CB_EBADREQ, "malformed "
			    "placeholder %s: expected '|' or '%c%c'",
			    tpl_quote_attempt(text, len, start, close, q),
			    close, close);
		for (j++; j < len && tpl_is_sp(text[j]); j++)
			;
		nstart = j;
		while (j < len && (tpl_is_alpha(text[j]) ||
		    tpl_is_digit(text[j]) || text[j] == '_'))
			j++;
		if (j == nstart)
			return cb_error_set(err, CB_EBADREQ, "malformed "
			    "placeholder %s: missing filter name after '|'",
			    tpl_quote_attempt(text, len, start, close, q));
		if ((f = tpl_filter_lookup(text + nstart, j - nstart)) == 0)
			return cb_error_set(err, CB_EBADREQ, "unknown filter "
			    "'%.*s' in placeholder %s (filters: urlquery, "
			    "urlpath, json, base64)",
			    (int)(j - nstart > TPL_FNAME_SHOW ? TPL_FNAME_SHOW :
			    j - nstart), text + nstart,
			    tpl_quote_attempt(text, len, start, close, q));
		if (ph->nfilters == TPL_FILTERS_MAX)
			return cb_error_set(err, CB_EBADREQ, "too many filters "
			    "in placeholder %s (at most %d)",
			    tpl_quote_attempt(text, len, start, close, q),
			    TPL_FILTERS_MAX);
		ph->filters[ph->nfilters++] = f;
	}
}

/*
 * Length of the placeholder attempt opener at text[i] ("<<" or "{{" up to
 * the '.' that follows it), or 0 when the text there is literal.  "<<" then
 * whitespace then '.' is an attempt; "{{" is one only when the whitespace
 * is followed by ".credentials.", so that the rest of a platform's own
 * "{{ ... }}" templating stays literal text.
 */
static size_t
tpl_attempt(const char *text, size_t len, size_t i)
{
	size_t	j;

	if (text[i] != text[i + 1] || (text[i] != '<' && text[i] != '{'))
		return 0;
	for (j = i + 2; j < len && tpl_is_ws(text[j]); j++)
		;
	if (j >= len || text[j] != '.')
		return 0;
	if (text[i] == '{' && (len - j < TPL_PREFIX_LEN ||
	    memcmp(text + j, TPL_PREFIX, TPL_PREFIX_LEN) != 0))
		return 0;
	return j - i;
}

/* Find and check every placeholder in one pass over text. */
int
tpl_parse(const char *text, size_t len, struct tpl *out, struct cb_error *err)
{
	return tpl_parse_syntax(text, len, TPL_SYNTAX_BOTH, out, err);
}

/* The same, accepting only the placeholder forms syntax allows. */
int
tpl_parse_syntax(const char *text, size_t len, enum tpl_syntax syntax,
    struct tpl *out, struct cb_error *err)
{
	struct tpl_ph	 ph, *nph;
	char		 q[TPL_QUOTE_BUF];
	size_t		 i, cap = 0;
	int		 rc;

	memset(out, 0, sizeof(*out));
	out->text = text;
	out->len = len;
	i = 0;
	while (len >= 2 && i < len - 1) {
		/*
		 * Anything that is not an attempt (C++ shifts, heredocs,
		 * "{{ .vars.x }}") is literal text; move on by one byte so
		 * that "<<<.credentials.x>>" still finds the placeholder
		 * that starts at the second '<'.
		 */
		if ((text[i] != '<' && text[i] != '{') ||
		    tpl_attempt(text, len, i) == 0) {
			i++;
			continue;
		}
		if ((rc = tpl_parse_one(text, len, i, &ph, err)) != 0)
			goto fail;
		if ((syntax == TPL_SYNTAX_ANGLE && text[i] == '{') ||
		    (syntax == TPL_SYNTAX_BRACE && text[i] == '<')) {
			rc = cb_error_set(err, CB_EBADREQ, "placeholder %s: "
			    "the %s form is not accepted here "
			    "(substitute.syntax = %s)",
			    tpl_quote(text + i, ph.end - i, q),
			    text[i] == '{' ? "{{.credentials.ID}}" :
			    "<<.credentials.ID>>", tpl_syntax_name(syntax));
			goto fail;
		}
		if (out->nph == cap) {
			if (cap > SIZE_MAX / 2 / sizeof(*nph)) {
				rc = -CB_EINTERNAL;
				goto oom;
			}
			cap = cap ? cap * 2 : 4;
			if ((nph = reallocarray(out->ph, cap,
			    sizeof(*nph))) == NULL) {
				rc = -CB_EINTERNAL;
				goto oom;
			}
			out->ph = nph;
		}
		out->ph[out->nph++] = ph;
		i = ph.end;
	}
	return 0;
oom:
	cb_error_set(err, CB_EINTERNAL, "out of memory");
fail:
	tpl_free(out);
	return rc;
}

/* Name of a syntax setting, as written in the configuration. */
const char *
tpl_syntax_name(enum tpl_syntax syntax)
{
	switch (syntax) {
	case TPL_SYNTAX_BOTH:
		return "both";
	case TPL_SYNTAX_ANGLE:
		return "angle";
	case TPL_SYNTAX_BRACE:
		return "brace";
	}
	return NULL;
}

/* A syntax setting from its name, or -1. */
int
tpl_syntax_from_name(const char *name)
{
	if (strcmp(name, "both") == 0)
		return TPL_SYNTAX_BOTH;
	if (strcmp(name, "angle") == 0)
		return TPL_SYNTAX_ANGLE;
	if (strcmp(name, "brace") == 0)
		return TPL_SYNTAX_BRACE;
	return -1;
}

/* Release the placeholder list. */
void
tpl_free(struct tpl *t)
{
	free(t->ph);
	t->ph = NULL;
	t->nph = 0;
}

/*
 * Percent-encode n bytes into dst: every byte but the RFC 3986 unreserved
 * set, so the result is one query component or one path segment and
 * carries no delimiter ('&', '=', '/', '?', '#', '+', '%') of its own.
 */
static int
tpl_f_percent(const uint8_t *s, size_t n, struct secbuf *dst)
{
	uint8_t	*o;
	size_t	 i;

	if (n == 0)
		return 0;
	if (n > SIZE_MAX / 3 || secbuf_reserve(dst, 3 * n) != 0)
		return -CB_EINTERNAL;
	o = dst->data + dst->len;
	for (i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (tpl_is_alpha((char)c) || tpl_is_digit((char)c) ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			*o++ = c;
		else {
			*o++ = '%';
			*o++ = (uint8_t)tpl_hex[c >> 4];
			*o++ = (uint8_t)tpl_hex[c & 0xf];
		}
	}
	dst->len = (size_t)(o - dst->data);
	return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
tpl_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t	lo = 0x80, hi = 0xbf;
	size_t	k, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		k = 3;
		/* No overlong forms, no UTF-16 surrogates. */
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		k = 4;
		/* No overlong forms, nothing above U+10FFFF. */
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

/*
 * Escape n bytes as the inside of a JSON string into dst.  Besides what
 * JSON requires, '<', '>', '&', DEL, U+2028 and U+2029 are escaped: the
 * first three so that JSON inside HTML cannot close a <script> element or
 * start an entity, the last two because JavaScript before ES2019 treats
 * them as line terminators inside string literals.  -CB_EBADREQ if the
 * value is not valid UTF-8: a JSON string cannot carry it.
 */
static int
tpl_f_json(const uint8_t *s, size_t n, struct secbuf *dst)
{
	uint8_t	*o;
	size_t	 i, k;

	if (n == 0)
		return 0;
	if (n > SIZE_MAX / 6 || secbuf_reserve(dst, 6 * n) != 0)
		return -CB_EINTERNAL;
	o = dst->data + dst->len;
	for (i = 0; i < n; i += k) {
		uint8_t c = s[i];
		k = 1;
		if (c >= 0x80) {
			if ((k = tpl_utf8_len(s + i, n - i)) == 0)
				return -CB_EBADREQ;
			if (k == 3 && c == 0xe2 && s[i + 1] == 0x80 &&
			    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
				memcpy(o, s[i + 2] == 0xa8 ? "\\u2028" :
				    "\\u2029", 6);
				o += 6;
			} else {
				memcpy(o, s + i, k);
				o += k;
			}
			continue;
		}
		switch (c) {
		case '"':
		case '\\':
			*o++ = '\\';
			*o++ = c;
			continue;
		case '\b':
			*o++ = '\\';
			*o++ = 'b';
			continue;
		case '\f':
			*o++ = '\\';
			*o++ = 'f';
			continue;
		case '\n':
			*o++ = '\\';
			*o++ = 'n';
			continue;
		case '\r':
			*o++ = '\\';
			*o++ = 'r';
			continue;
		case '\t':
			*o++ = '\\';
			*o++ = 't';
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
			memcpy(o, "\\u00", 4);
			o[4] = (uint8_t)tpl_hexlc[c >> 4];
			o[5] = (uint8_t)tpl_hexlc[c & 0xf];
			o += 6;
		} else
			*o++ = c;
	}
	dst->len = (size_t)(o - dst->data);
	return 0;
}

/* Standard base64 with padding into dst. */
static int
tpl_f_base64(const uint8_t *s, size_t n, struct secbuf *dst)
{
	size_t	olen;
	int	r;

	if (n > (size_t)(INT_MAX / 4) * 3)
		return -CB_ETOOLARGE;
	olen = (n + 2) / 3 * 4;
	/* EVP_EncodeBlock writes a NUL after the text. */
	if (secbuf_reserve(dst, olen + 1) != 0)
		return -CB_EINTERNAL;
	if (n == 0)
		return 0;
	r = EVP_EncodeBlock(dst->data + dst->len, s, (int)n);
	if (r < 0 || (size_t)r != olen)
		return -CB_EINTERNAL;
	dst->len += olen;
	return 0;
}

/* Run one filter over n bytes at s, appending to dst. */
static int
tpl_apply(int f, const uint8_t *s, size_t n, struct secbuf *dst)
{
	switch (f) {
	case TPL_F_URLQUERY:
	case TPL_F_URLPATH:
		return tpl_f_percent(s, n, dst);
	case TPL_F_JSON:
		return tpl_f_json(s, n, dst);
	case TPL_F_BASE64:
		return tpl_f_base64(s, n, dst);
	}
	return -CB_EINTERNAL;
}

/*
 * One filter over n bytes at s, appended to out: the code tpl_render runs,
 * for callers that must know what a filter makes of a value (the echo
 * scrubber).  The messages name no value.
 */
int
tpl_filter_apply(int filter, const uint8_t *in, size_t len,
    struct secbuf *out, struct cb_error *err)
{
	int	rc;

	if (tpl_filter_name(filter) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "unknown filter %d",
		    filter);
	if ((rc = tpl_apply(filter, in, len, out)) == 0)
		return 0;
	if (rc == -CB_EBADREQ)
		return cb_error_set(err, CB_EBADREQ, "the value is not valid "
		    "UTF-8, so the json filter cannot encode it");
	if (rc == -CB_ETOOLARGE)
		return cb_error_set(err, CB_ETOOLARGE, "the value is too large "
		    "for the %s filter", tpl_filter_name(filter));
	return cb_error_set(err, CB_EINTERNAL, "out of memory");
}

bool
tpl_utf8_valid(const uint8_t *s, size_t n)
{
	size_t	i = 0, k;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = tpl_utf8_len(s + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * Check a value, after its filters, against the place it goes.  This is
 * what keeps a value from adding a header or a second request (CR/LF),
 * truncating a header (NUL), or splitting the request line or smuggling
 * characters that URL parsers disagree about (whitespace, controls, raw
 * non-ASCII such as U+0085 or U+00A0) into the URL.
 */
static int
tpl_check_ctx(const struct tpl *t, const struct tpl_ph *ph, enum tpl_ctx ctx,
    const uint8_t *s, size_t n, struct cb_error *err)
{
	char	q[TPL_QUOTE_BUF];
	size_t	i;

	switch (ctx) {
	case TPL_HEADER:
		for (i = 0; i < n; i++)
			if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
				return cb_error_set(err, CB_EBADREQ,
				    "placeholder %s would put a line break or "
				    "NUL into a header; use a filter such as "
				    "base64 or urlquery",
				    tpl_quote_ph(t, ph, q));
		break;
	case TPL_URL:
		for (i = 0; i < n; i++)
			if (s[i] <= 0x20 || s[i] >= 0x7f)
				return cb_error_set(err, CB_EBADREQ,
				    "placeholder %s would put whitespace, "
				    "control or non-ASCII characters into the "
				    "URL; use a filter such as urlquery or "
				    "urlpath", tpl_quote_ph(t, ph, q));
		break;
	case TPL_TEXT:
		/* A msgpack str must stay valid UTF-8 for every client. */
		if (!tpl_utf8_valid(s, n))
			return cb_error_set(err, CB_EBADREQ,
			    "placeholder %s would put bytes that are not "
			    "UTF-8 into text; use the base64 filter or send "
			    "the body as binary", tpl_quote_ph(t, ph, q));
		break;
	case TPL_BODY:
		break;
	}
	if (ctx == TPL_HEADER && !tpl_utf8_valid(s, n))
		return cb_error_set(err, CB_EBADREQ, "placeholder %s would put "
		    "bytes that are not UTF-8 into a header; use a filter such "
		    "as base64", tpl_quote_ph(t, ph, q));
	return 0;
}

/* Substitute every placeholder, all or nothing, into out. */
int
tpl_render(const struct tpl *t, enum tpl_ctx ctx, tpl_lookup_fn lookup,
    void *arg, struct secbuf *out, struct cb_error *err)
{
	struct secbuf		 scratch[2] = { SECBUF_INIT, SECBUF_INIT };
	struct secbuf		*dst;
	const struct tpl_ph	*ph;
	const uint8_t		*val, *cur;
	char			 q[TPL_QUOTE_BUF];
	size_t			 i, k, pos = 0, vlen, curlen;
	int			 rc = 0;

	secbuf_reset(out);
	for (i = 0; i < t->nph; i++) {
		ph = &t->ph[i];
		if (secbuf_append(out, t->text + pos, ph->start - pos) != 0)
			goto oom;
		pos = ph->end;

		val = NULL;
		vlen = 0;
		cb_error_clear(err);
		if ((rc = lookup(arg, ph->id, &val, &vlen, err)) != 0) {
			if (rc > 0)
				rc = -CB_EINTERNAL;
			if (err != NULL && err->code == 0)
				cb_error_set(err, -rc, "could not get the "
				    "value for placeholder %s",
				    tpl_quote_ph(t, ph, q));
			goto done;
		}

		/*
		 * Filters alternate between two scratch secbufs; the input
		 * of the first is the caller's value, which we do not own.
		 */
		cur = val;
		curlen = vlen;
		for (k = 0; k < (size_t)ph->nfilters; k++) {
			dst = &scratch[k % 2];
			secbuf_reset(dst);
			if ((rc = tpl_apply(ph->filters[k], cur, curlen,
			    dst)) != 0) {
				if (rc == -CB_EBADREQ)
					cb_error_set(err, CB_EBADREQ,
					    "placeholder %s: the value is not "
					    "valid UTF-8, so the json filter "
					    "cannot encode it; use base64",
					    tpl_quote_ph(t, ph, q));
				else if (rc == -CB_ETOOLARGE)
					cb_error_set(err, CB_ETOOLARGE,
					    "placeholder %s: the value is too "
					    "large", tpl_quote_ph(t, ph, q));
				else
					goto oom;
				goto done;
			}
			cur = dst->data;
			curlen = dst->len;
		}
		if ((rc = tpl_check_ctx(t, ph, ctx, cur, curlen, err)) != 0)
			goto done;
		if (secbuf_append(out, cur, curlen) != 0)
			goto oom;
	}
	if (secbuf_append(out, t->text + pos, t->len - pos) != 0)
		goto oom;
	rc = 0;
	goto done;
oom:
	rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
done:
	secbuf_free(&scratch[0]);
	secbuf_free(&scratch[1]);
	if (rc != 0)
		secbuf_reset(out);	/* all or nothing: no partial request */
	return rc;
}

/*
 * Check the template's own text: a literal CR or LF in a header value
 * would add a header or a request of the caller's choosing after the
 * destination check, and whitespace or a control character in the URL
 * splits the request line or is read differently by URL parsers.
 */
int
tpl_check_literal(const struct tpl *t, enum tpl_ctx ctx, const char *what,
    struct cb_error *err)
{
	size_t	i, k = 0, end;

	if (ctx != TPL_URL && ctx != TPL_HEADER)
		return 0;
	for (i = 0; i < t->len; i = end) {
		end = k < t->nph ? t->ph[k].start : t->len;
		for (; i < end; i++) {
			unsigned char c = (unsigned char)t->text[i];

			if (c == 0x7f || (c < 0x20 && !(ctx == TPL_HEADER &&
			    c == '\t')))
				return cb_error_set(err, CB_EBADREQ, "%s "
				    "contains the control character 0x%02x "
				    "at offset %zu", what, c, i);
			if (c == ' ' && ctx == TPL_URL)
				return cb_error_set(err, CB_EBADREQ, "%s "
				    "contains a space at offset %zu; write "
				    "it as %%20", what, i);
		}
		if (k < t->nph)
			end = t->ph[k++].end;
	}
	return 0;
}

/* a + b, or SIZE_MAX if that overflows. */
static size_t
tpl_sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* a * b, or SIZE_MAX if that overflows. */
static size_t
tpl_sat_mul(size_t a, size_t b)
{
	return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* Bound the rendered size of t from the value lengths alone. */
int
tpl_render_bound(const struct tpl *t, tpl_lookup_fn lookup, void *arg,
    size_t *bound, struct cb_error *err)
{
	const struct tpl_ph	*ph;
	const uint8_t		*val;
	size_t			 i, k, n, total;
	int			 rc;

	total = t->len;
	for (i = 0; i < t->nph; i++) {
		ph = &t->ph[i];
		total -= ph->end - ph->start;
		val = NULL;
		n = 0;
		if ((rc = lookup(arg, ph->id, &val, &n, err)) != 0)
			return rc > 0 ? -CB_EINTERNAL : rc;
		for (k = 0; k < (size_t)ph->nfilters; k++) {
			switch (ph->filters[k]) {
			case TPL_F_URLQUERY:
			case TPL_F_URLPATH:
				n = tpl_sat_mul(n, 3);
				break;
			case TPL_F_JSON:
				n = tpl_sat_mul(n, 6);
				break;
			case TPL_F_BASE64:
				n = tpl_sat_mul(tpl_sat_add(n, 2) / 3, 4);
				break;
			}
		}
		total = tpl_sat_add(total, n);
	}
	*bound = total;
	return 0;
}

/* Does s (n bytes) start with the ASCII prefix p, ignoring case? */
static int
tpl_has_prefix(const char *s, size_t n, const char *p)
{
	size_t	pl = strlen(p);

	return n >= pl && strncasecmp(s, p, pl) == 0;
}

/* Keep placeholders out of the scheme and authority of a URL. */
int
tpl_check_url_template(const struct tpl *t, struct cb_error *err)
{
	char	 q[TPL_QUOTE_BUF];
	size_t	 a, e;

	if (tpl_has_prefix(t->text, t->len, "https://"))
		a = 8;
	else if (tpl_has_prefix(t->text, t->len, "http://"))
		a = 7;
	else {
		/*
		 * No literal scheme.  A placeholder before any '/', '?' or
		 * '#' is (part of) the scheme, as in "http<<...>>://": say
		 * so, that is the more useful message.
		 */
		if (t->nph > 0) {
			for (e = 0; e < t->ph[0].start; e++)
				if (t->text[e] == '/' || t->text[e] == '?' ||
				    t->text[e] == '#')
					break;
			if (e == t->ph[0].start)
				goto placeholder;
		}
		return cb_error_set(err, CB_EBADREQ,
		    "URL must start with http:// or https://");
	}

	/*
	 * The authority runs to the first '/', '?' or '#' of the literal
	 * text (placeholder text cannot contain any of them).  A backslash
	 * does not end it here: some parsers read it as '/', others as part
	 * of the host, so a placeholder after one is still refused, and
	 * url_origin refuses the backslash itself.
	 */
	for (e = a; e < t->len; e++)
		if (t->text[e] == '/' || t->text[e] == '?' ||
		    t->text[e] == '#')
			break;
	if (t->nph > 0 && t->ph[0].start < e)
		goto placeholder;
	return 0;
placeholder:
	return cb_error_set(err, CB_EBADREQ, "placeholder %s may not form the "
	    "scheme, host, port or userinfo of the URL",
	    tpl_quote_ph(t, &t->ph[0], q));
}
