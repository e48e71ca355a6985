/*
 * template: credential placeholders in outgoing request templates (SPEC
 * section 5.2): parsing, filters, and rendering with structure protection.
 *
 * Grammar (spaces are ' ' or '\t'):
 *
 *	placeholder = angle / brace
 *	angle       = "<<" body ">>"
 *	brace       = "{{" body "}}"
 *	body        = *SP ".credentials." ID *SP *( "|" *SP FILTER *SP )
 *	ID          = [A-Za-z_][A-Za-z0-9_-]{0,63}
 *	FILTER      = "urlquery" / "urlpath" / "json" / "base64"
 *
 * The two forms are the same placeholder; the brace form is the one the
 * platform that the broker replaces writes (SPEC section 11).
 *
 * What "looks like a placeholder": every "<<" that is followed by optional
 * whitespace (' ', '\t', '\r', '\n', '\v', '\f') and then a '.', and
 * every "{{" followed by optional whitespace and then ".credentials.", is a
 * placeholder attempt and must parse completely, or the whole template is
 * refused (so "<<.credential.x>>", "<< .creds.a >>", "<<.credentials.a",
 * "<<\n.credentials.a>>", "{{.credentials.a>>" and "{{ .credentials.}}"
 * are errors, never passed through).  Any other "<<" or "{{" is literal
 * text: "a << b", "cat <<EOF", "{{ .vars.x }}", "{{.credential.x}}" (the
 * last two belong to the platform's own templating).  Scanning resumes one
 * byte later, so in "<<<.credentials.a>>" the first '<' is literal and the
 * rest is a placeholder.  A lone ">>" or "}}" is literal.
 *
 * tpl_parse_syntax refuses, as an error naming it, a well-formed
 * placeholder of a form that its syntax argument does not accept
 * (substitute.syntax in credbroker.conf(5)); tpl_parse accepts both.
 *
 * Filters, applied left to right:
 *	urlquery  percent-encode every byte but A-Z a-z 0-9 - . _ ~
 *		  (space is %20, '+' is %2B), upper-case hex
 *	urlpath   the same set, so '/' becomes %2F: the value stays one segment
 *	json	  the inside of a JSON string: '"' and '\' escaped, control
 *		  characters as \b \f \n \r \t or \u00XX, and also 0x7f, '<',
 *		  '>', '&', U+2028 and U+2029 as \uXXXX so that JSON embedded
 *		  in HTML or JavaScript stays safe; other non-ASCII UTF-8 passes
 *		  unchanged; a value that is not valid UTF-8 is an error
 *	base64	  standard alphabet with padding, no line breaks
 *
 * Rendering is one pass: literal text and values are copied to the output
 * and never scanned again, so a value that contains "<<.credentials.x>>"
 * ends up as that literal text.  Error messages name the placeholder by its
 * text in the template (at most TPL_QUOTE_MAX bytes, non-printable bytes
 * shown as '?'), never by a value.
 */
#ifndef CB_TEMPLATE_H
#define CB_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb_error.h"
#include "secbuf.h"

#define TPL_ID_MAX	64	/* bytes in a credential id */
#define TPL_FILTERS_MAX	4	/* filters in one chain */
#define TPL_QUOTE_MAX	80	/* bytes of placeholder text in a message */

enum tpl_filter {
	TPL_F_URLQUERY = 1,
	TPL_F_URLPATH,
	TPL_F_JSON,
	TPL_F_BASE64
};

/*
 * Where the rendered text goes, which decides what a value may contain
 * after its filters:
 *	TPL_URL		printable ASCII only (0x21..0x7e): no whitespace, no
 *			control characters, and no raw non-ASCII bytes
 *			(Unicode spaces and C1 controls are multi-byte)
 *	TPL_HEADER	no CR, LF or NUL, and valid UTF-8 (a header value;
 *			names take no placeholders: callers refuse any)
 *	TPL_TEXT	valid UTF-8 (a body sent as a msgpack str)
 *	TPL_BODY	anything (a body sent as msgpack bin)
 */
enum tpl_ctx {
	TPL_URL,
	TPL_HEADER,
	TPL_TEXT,
	TPL_BODY
};

/* Which placeholder forms a template may use (substitute.syntax). */
enum tpl_syntax {
	TPL_SYNTAX_BOTH,	/* <<.credentials.ID>> and {{.credentials.ID}} */
	TPL_SYNTAX_ANGLE,	/* <<.credentials.ID>> only */
	TPL_SYNTAX_BRACE	/* {{.credentials.ID}} only */
};

struct tpl_ph {
	size_t		 start;		/* offset of "<<" or "{{" */
	size_t		 end;		/* offset just past ">>" or "}}" */
	char		 id[TPL_ID_MAX + 1];
	int		 filters[TPL_FILTERS_MAX];	/* enum tpl_filter */
	int		 nfilters;
};

struct tpl {
	const char	*text;		/* not owned: must outlive the tpl */
	size_t		 len;
	struct tpl_ph	*ph;		/* in text order */
	size_t		 nph;
};

#define TPL_INIT { NULL, 0, NULL, 0 }

/*
 * Parse len bytes of text (which may contain NULs) in one pass.  On
 * success out->ph lists every placeholder in order (nph may be 0); out
 * points into text, which must stay alive and unchanged.  On error
 * (-CB_EBADREQ for malformed text, -CB_EINTERNAL for memory) out is left
 * empty and needs no tpl_free, though calling it is harmless.
 */
int	 tpl_parse(const char *text, size_t len, struct tpl *out,
	    struct cb_error *err);
/*
 * tpl_parse accepts both forms; tpl_parse_syntax refuses a placeholder of
 * a form that syntax does not accept (-CB_EBADREQ naming it).
 */
int	 tpl_parse_syntax(const char *text, size_t len,
	    enum tpl_syntax syntax, struct tpl *out, struct cb_error *err);
/* "both", "angle", "brace"; and back (-1 for any other name). */
const char *tpl_syntax_name(enum tpl_syntax syntax);
int	 tpl_syntax_from_name(const char *name);
/* Release what tpl_parse allocated; t may be reused afterwards. */
void	 tpl_free(struct tpl *t);

/*
 * Look up the plaintext value of a credential id for tpl_render.  On
 * success *val and *len describe bytes owned by the caller of tpl_render
 * (tpl_render neither keeps nor wipes them); they must stay valid until the
 * lookup function is called again or tpl_render returns.  On failure
 * return a negative CB_E* code with err filled; tpl_render returns it.
 */
typedef int (*tpl_lookup_fn)(void *arg, const char *id, const uint8_t **val,
	    size_t *len, struct cb_error *err);

/*
 * Render t into out for context ctx: out's previous contents are wiped and
 * replaced.  lookup is called once per placeholder, in order.  On error
 * (lookup failure, a value refused by ctx, invalid UTF-8 for json) the
 * call fails as a whole: out is wiped and left with len 0 (all or
 * nothing), and every scratch buffer that held value bytes is wiped.
 */
int	 tpl_render(const struct tpl *t, enum tpl_ctx ctx,
	    tpl_lookup_fn lookup, void *arg, struct secbuf *out,
	    struct cb_error *err);

/*
 * Check a parsed URL template: its literal text must start with
 * "http://" or "https://" (any case), and no placeholder may start before
 * the end of the authority (the first '/', '?' or '#' after "//", or the
 * end of the text), so a placeholder can never form the scheme, host, port
 * or userinfo -- not even "https://<<.credentials.x>>".  -CB_EBADREQ with
 * "placeholder <<...>> may not form the scheme, host, port or userinfo of
 * the URL", or "URL must start with http:// or https://".  The origin of
 * the rendered URL (url_origin) then equals that of the template.
 */
int	 tpl_check_url_template(const struct tpl *t, struct cb_error *err);

/*
 * Check the literal text of a parsed template (everything outside its
 * placeholders; a value is checked by tpl_render) for the place it goes:
 *	TPL_URL		no control character, DEL or space (0x00-0x20, 0x7f)
 *	TPL_HEADER	no control character but HTAB, and no DEL
 *	TPL_TEXT, TPL_BODY	anything
 * -CB_EBADREQ naming what (e.g. "request.url"), the byte and its offset.
 */
int	 tpl_check_literal(const struct tpl *t, enum tpl_ctx ctx,
	    const char *what, struct cb_error *err);

/*
 * An upper bound, in bytes, of what tpl_render makes of t: the literal
 * text plus, for each placeholder, its value's length grown by the
 * largest expansion of each of its filters (urlquery and urlpath 3 times,
 * json 6 times, base64 4/3 rounded up).  lookup gives the lengths and
 * nothing is rendered or allocated.  SIZE_MAX when the sum overflows.
 */
int	 tpl_render_bound(const struct tpl *t, tpl_lookup_fn lookup,
	    void *arg, size_t *bound, struct cb_error *err);

/*
 * Run one filter (enum tpl_filter) over len bytes at in, appending the
 * result to out, with exactly the code tpl_render uses.  -CB_EBADREQ for
 * json of a value that is not valid UTF-8, -CB_ETOOLARGE for a value too
 * large for base64, -CB_EINTERNAL for memory or an unknown filter.  On
 * error out->len is unchanged (bytes written past it are wiped with out).
 */
int	 tpl_filter_apply(int filter, const uint8_t *in, size_t len,
	    struct secbuf *out, struct cb_error *err);

/* Name of a filter ("urlquery"), or NULL if f is not one. */
const char *tpl_filter_name(int f);

/* Whether n bytes at s are valid UTF-8 (ASCII included). */
bool	 tpl_utf8_valid(const uint8_t *s, size_t n);

#endif
