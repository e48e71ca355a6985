/*
 * keys-seal: which key seals and which opens (SPEC section 3).  Every
 * sealed value names the key version that sealed it (CB1:<v>:...; the
 * legacy GCM: format means the configured key).  During a rotation
 * (rotate.c) the broker holds two keys: new values are sealed with the new
 * one, and a value is opened with whichever key its version names.
 */
#include <stdbool.h>
#include <string.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "seal.h"
#include "secbuf.h"

uint32_t
keys_text_version(const char *text)
{
	const char	*end;
	uint32_t	 v;

	if (strncmp(text, "CB1:", 4) != 0 ||
	    seal_parse_keyver(text + 4, &v, &end) != 0)
		return 0;
	return v;
}

int
keys_seal(struct broker *b, const char *context, const uint8_t *pt,
    size_t n, char **out, struct cb_error *err)
{
	return seal_seal(b->key_next != NULL ? b->key_next : b->key, context,
	    pt, n, out, err);
}

int
keys_open(struct broker *b, const char *context, const char *text,
    struct secbuf *out, struct cb_error *err)
{
	const struct seal_key	*k = b->key;

	if (b->key_next != NULL &&
	    keys_text_version(text) == b->key_next->version)
		k = b->key_next;
	return seal_open(k, context, text, out, err);
}

/*
 * Only GCM: text is taken: CB1 values are the broker's own and are bound
 * to their place, so they are never imported.  Each failed attempt's
 * partial output is wiped by seal_open; the message names no key and no
 * part of the value.
 */
int
keys_open_import(struct broker *b, const char *text, struct secbuf *out,
    bool *legacy, struct cb_error *err)
{
	const struct seal_key	*keys[3];
	size_t			 i, n = 0;
	struct cb_error		 e;

	*legacy = false;
	if (strncmp(text, "GCM:", 4) != 0)
		return cb_error_set(err, CB_EBADREQ, "sealed value must be "
		    "GCM: text");
	keys[n++] = b->key;
	if (b->key_next != NULL)
		keys[n++] = b->key_next;
	if (b->key_legacy != NULL)
		keys[n++] = b->key_legacy;
	for (i = 0; i < n; i++) {
		secbuf_reset(out);
		if (seal_open(keys[i], "", text, out, &e) == 0) {
			*legacy = keys[i] == b->key_legacy;
			return 0;
		}
	}
	secbuf_reset(out);
	return cb_error_set(err, CB_EBADREQ, "%s (tried the master key%s)",
	    e.msg, b->key_legacy != NULL ? " and the legacy key" : "");
}
