/*
 * scrub: echo scrubbing of responses to broker-executed requests (SPEC
 * section 13).  Every occurrence, in a response's status text, header
 * values or body, of a credential value used by the call -- raw, or in any
 * form a filter chain can give it -- is replaced with "[REDACTED:<id>]".
 *
 * Patterns for each value added with scrub_add_value():
 *	the raw value; urlquery(v) (the same bytes as urlpath(v)); json(v)
 *	when v is valid UTF-8; base64(v);
 *	and, for every ordered pair (a, b) of distinct values added,
 *	base64(a ":" b) (an HTTP Basic credential made of two values),
 *	replaced with "[REDACTED:<id of a>+<id of b>]".
 * scrub_add_rendered() adds one more literal pattern: what a placeholder's
 * whole filter chain actually produced (e.g. base64 then urlquery).
 * The encodings are made by tpl_filter_apply(), the code tpl_render uses,
 * so what is looked for is exactly what a filter produces.
 * Empty patterns and patterns shorter than SCRUB_MIN_LEN are not matched
 * (a 1-byte value would redact every occurrence of that byte); they are
 * counted in scrub_skipped().  The length that counts is that of the
 * plaintext: a value shorter than SCRUB_MIN_LEN gets none of its forms
 * (its base64 would be 4 bytes long, but carries no more than the value),
 * and counts once; a pair counts once when a ":" b is shorter; a rendered
 * pattern counts once when it is shorter.  Adding the same id and value
 * again changes nothing.  When two patterns are the same bytes, the first
 * added names the replacement.
 *
 * Matching is leftmost-longest and non-overlapping, one pass, linear in the
 * input length (Aho-Corasick), and streaming: a match split across calls
 * of scrub_feed() is found.  A stream is one field (the status text, one
 * header value, or the body): matches never span two streams.  Between
 * calls a stream holds back at most the longest pattern minus one bytes,
 * those that may still begin a match, and releases the others.
 *
 * Limits: at most SCRUB_VALUES_MAX values, SCRUB_RENDERED_MAX rendered
 * patterns, SCRUB_IDS_MAX distinct ids, and SCRUB_BYTES_MAX bytes of
 * patterns in all (pairs included); more is refused with -CB_ETOOLARGE.
 *
 * Every pattern is plaintext or a reversible encoding of it: the automaton,
 * the patterns and any held-back bytes are kept in wiping memory and wiped
 * by scrub_free() and scrub_stream_end().
 */
#ifndef CB_SCRUB_H
#define CB_SCRUB_H

#include <stddef.h>
#include <stdint.h>

#include "cb_error.h"
#include "secbuf.h"

struct scrub;
struct scrub_stream;

#define SCRUB_MIN_LEN	4	/* shorter values are not scrubbed */
#define SCRUB_VALUES_MAX	32	/* values per scrubber */
#define SCRUB_RENDERED_MAX	256	/* rendered patterns per scrubber */
#define SCRUB_IDS_MAX		64	/* distinct ids per scrubber */
#define SCRUB_BYTES_MAX		((size_t)1 << 20)	/* pattern bytes */

int	 scrub_new(struct scrub **out, struct cb_error *err);
/*
 * id: the credential id of the call ("github"), 1 to TPL_ID_MAX bytes of
 * [A-Za-z0-9_-] (-CB_EBADREQ otherwise); val/len copied.  Before
 * scrub_compile only.
 */
int	 scrub_add_value(struct scrub *s, const char *id, const uint8_t *val,
	    size_t len, struct cb_error *err);
int	 scrub_add_rendered(struct scrub *s, const char *id, const uint8_t *p,
	    size_t len, struct cb_error *err);
/* After the last add and before the first stream. */
int	 scrub_compile(struct scrub *s, struct cb_error *err);
/* Start a stream; its output is appended to out (a wiping buffer). */
int	 scrub_stream_begin(struct scrub *s, struct scrub_stream **st,
	    struct cb_error *err);
/*
 * Scrub len more bytes of the stream into out.  On error (-CB_EINTERNAL:
 * memory) the stream can only be freed.
 */
int	 scrub_feed(struct scrub_stream *st, const void *in, size_t len,
	    struct secbuf *out, struct cb_error *err);
/* Flush the held-back tail into out and free st (wiped). */
int	 scrub_stream_end(struct scrub_stream *st, struct secbuf *out,
	    struct cb_error *err);
void	 scrub_stream_free(struct scrub_stream *st);	/* abandon, wiped */
/* Bytes the stream holds back now (less than the longest pattern). */
size_t	 scrub_stream_held(const struct scrub_stream *st);
/* Replacements made so far in every stream of s. */
size_t	 scrub_count(const struct scrub *s);
size_t	 scrub_skipped(const struct scrub *s);
/*
 * Automaton steps taken so far in every stream of s (transitions, failure
 * links and match bookkeeping): a measure of work, for tests.
 */
uint64_t scrub_steps(const struct scrub *s);
void	 scrub_free(struct scrub *s);

#endif
