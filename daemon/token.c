/*
 * token: the partner access token (RSA PKCS#1 v1.5 encryption under the
 * peer's key, then a SHA-1 PKCS#1 v1.5 signature with ours), JWS compact
 * tokens signed with RS256 or PS256, and the check of an RS256 JWT (SPEC
 * sections 9.3 to 9.5).
 *
 * Tokens and the claims inside them are secrets: every intermediate text
 * (encoded parts, the signing input, decoded JSON) sits in a wiping
 * buffer, and what a failed call had appended to the caller's buffer is
 * wiped and cut off again.  Base64 is OpenSSL's (EVP_EncodeBlock,
 * EVP_DecodeBlock); base64url is that with the two characters swapped and
 * no padding.  Messages never quote a token.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "cb_error.h"
#include "proto.h"
#include "secbuf.h"
#include "token.h"

#define TOKEN_HDR_RS256		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define TOKEN_HDR_PS256		"{\"alg\":\"PS256\",\"typ\":\"JWT\"}"
#define TOKEN_PKCS1_OVERHEAD	11	/* PKCS#1 v1.5 padding, bytes */
#define TOKEN_PSS_SALT		32
#define TOKEN_SIG_MAX		1024	/* largest signature, bytes */

/* Wipe what was appended to b since it held start bytes, and cut it off. */
static void
token_cut(struct secbuf *b, size_t start)
{
	if (b->len > start) {
		cb_wipe(b->data + start, b->len - start);
		b->len = start;
	}
}

/* Standard base64 with padding of n bytes, appended to out; 0 or -1. */
static int
token_b64_append(const uint8_t *p, size_t n, struct secbuf *out)
{
	size_t	enc;
	int	m;

	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return -1;
	enc = (n + 2) / 3 * 4;
	/* EVP_EncodeBlock writes a NUL after the text. */
	if (secbuf_reserve(out, enc + 1) != 0)
		return -1;
	m = EVP_EncodeBlock(out->data + out->len, p, (int)n);
	if (m < 0 || (size_t)m != enc)
		return -1;
	out->len += enc;
	return 0;
}

int
token_b64url_encode(const uint8_t *p, size_t n, struct secbuf *out,
    struct cb_error *err)
{
	size_t	start = out->len, i;

	if (token_b64_append(p, n, out) != 0) {
		token_cut(out, start);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	for (i = start; i < out->len; i++) {
		if (out->data[i] == '+')
			out->data[i] = '-';
		else if (out->data[i] == '/')
			out->data[i] = '_';
	}
	while (out->len > start && out->data[out->len - 1] == '=')
		out->data[--out->len] = '\0';
	return 0;
}

/* Value of a base64url character, or -1. */
static int
token_b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int
token_b64url_decode(const char *s, size_t n, struct secbuf *out,
    struct cb_error *err)
{
	struct secbuf	 std = SECBUF_INIT;
	size_t		 start = out->len, i, pad, dec;
	int		 v = 0, m, r;

	/*
	 * Only the alphabet, no padding, and no length or last character
	 * that a padded encoding could not have (the unused low bits of the
	 * last character are zero): one text per byte string.
	 */
	for (i = 0; i < n; i++)
		if ((v = token_b64url_val((unsigned char)s[i])) < 0) {
			r = cb_error_set(err, CB_EBADREQ, "text is not "
			    "base64url: a character at offset %zu is outside "
			    "the alphabet", i);
			goto done;
		}
	pad = (4 - n % 4) % 4;
	if (pad == 3 || (pad == 2 && (v & 0x0f) != 0) ||
	    (pad == 1 && (v & 0x03) != 0)) {
		r = cb_error_set(err, CB_EBADREQ, "text is not base64url: "
		    "it ends in the middle of a byte");
		goto done;
	}
	if (n == 0) {
		r = 0;
		goto done;
	}
	if (n > (size_t)INT_MAX - 3) {
		r = cb_error_set(err, CB_ETOOLARGE, "text is too long");
		goto done;
	}
	/* The standard alphabet, padded, for EVP_DecodeBlock. */
	if (secbuf_reserve(&std, n + pad) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++)
		std.data[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' :
		    (uint8_t)s[i];
	memset(std.data + n, '=', pad);
	std.len = n + pad;
	dec = std.len / 4 * 3;
	if (secbuf_reserve(out, dec) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	m = EVP_DecodeBlock(out->data + out->len, std.data, (int)std.len);
	if (m < 0 || (size_t)m != dec) {
		r = cb_error_set(err, CB_EBADREQ, "text is not base64url");
		goto done;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	out->len += dec - pad;
	cb_wipe(out->data + out->len, pad);
	r = 0;
 done:
	if (r != 0)
		token_cut(out, start);
	secbuf_free(&std);
	return r;
}

/*
 * Sign the n bytes at msg with k: SHA-1 or SHA-256 under RSA PKCS#1 v1.5,
 * or SHA-256 under RSASSA-PSS (MGF1-SHA-256, salt 32) when pss.  The
 * signature goes to sig[*siglen] (*siglen its size on entry); 0 or -1.
 */
static int
token_sign(EVP_PKEY *k, const char *md, bool pss, const uint8_t *msg,
    size_t n, uint8_t *sig, size_t *siglen)
{
	EVP_MD_CTX	*mctx = NULL;
	EVP_PKEY_CTX	*pctx = NULL;
	size_t		 need = 0;
	int		 r = -1;

	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(mctx, &pctx, md, NULL, NULL, k, NULL) != 1)
		goto done;
	if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx,
	    RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, TOKEN_PSS_SALT) != 1))
		goto done;
	if (!pss && EVP_PKEY_CTX_set_rsa_padding(pctx,
	    RSA_PKCS1_PADDING) != 1)
		goto done;
	if (EVP_DigestSign(mctx, NULL, &need, msg, n) != 1 || need > *siglen)
		goto done;
	if (EVP_DigestSign(mctx, sig, siglen, msg, n) != 1)
		goto done;
	r = 0;
 done:
	EVP_MD_CTX_free(mctx);		/* frees pctx */
	return r;
}

int
token_partner(EVP_PKEY *kp, uint32_t kp_version, EVP_PKEY *peer,
    uint32_t peer_version, const char *json, size_t len,
    struct secbuf *out, struct cb_error *err)
{
	EVP_PKEY_CTX	*ectx = NULL;
	uint8_t		 ct[TOKEN_SIG_MAX], sig[TOKEN_SIG_MAX];
	size_t		 start = out->len, ctlen = sizeof(ct);
	size_t		 siglen = sizeof(sig), max;
	char		 head[32];
	int		 size, n, r;

	size = EVP_PKEY_get_size(peer);
	if (size <= TOKEN_PKCS1_OVERHEAD || (size_t)size > sizeof(ct)) {
		r = cb_error_set(err, CB_EINTERNAL, "the peer key cannot "
		    "encrypt a partner token");
		goto done;
	}
	max = (size_t)size - TOKEN_PKCS1_OVERHEAD;
	if (len > max) {
		r = cb_error_set(err, CB_ETOOLARGE, "payload is %zu bytes; a "
		    "partner token holds at most %zu", len, max);
		goto done;
	}
	if ((ectx = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(ectx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ectx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_encrypt(ectx, ct, &ctlen, (const uint8_t *)json,
	    len) != 1) {
		r = cb_error_set(err, CB_EINTERNAL, "could not encrypt the "
		    "partner token under the peer key");
		goto done;
	}
	if (token_sign(kp, "SHA1", false, ct, ctlen, sig, &siglen) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not sign the "
		    "partner token");
		goto done;
	}
	n = snprintf(head, sizeof(head), "%u:%u:", peer_version, kp_version);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    secbuf_append(out, head, (size_t)n) != 0 ||
	    token_b64_append(ct, ctlen, out) != 0 ||
	    secbuf_append(out, ":", 1) != 0 ||
	    token_b64_append(sig, siglen, out) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	r = 0;
 done:
	if (r != 0)
		token_cut(out, start);
	/* Both are parts of the token. */
	cb_wipe(ct, sizeof(ct));
	cb_wipe(sig, sizeof(sig));
	EVP_PKEY_CTX_free(ectx);
	ERR_clear_error();
	return r;
}

/* The compact JSON of v (keys in their order), appended to out; 0 or -1. */
static int
token_json_append(const json_t *v, struct secbuf *out)
{
	size_t	n;

	if ((n = json_dumpb(v, NULL, 0, JSON_COMPACT)) == 0)
		return -1;
	if (secbuf_reserve(out, n) != 0)
		return -1;
	if (json_dumpb(v, (char *)out->data + out->len, n, JSON_COMPACT) != n)
		return -1;
	out->len += n;
	return 0;
}

int
token_jws_sign(EVP_PKEY *k, enum token_alg alg, const json_t *claims,
    struct secbuf *out, struct cb_error *err)
{
	static const char	 rs256[] = TOKEN_HDR_RS256;
	static const char	 ps256[] = TOKEN_HDR_PS256;
	struct secbuf		 json = SECBUF_INIT;
	uint8_t			 sig[TOKEN_SIG_MAX];
	size_t			 start = out->len, siglen = sizeof(sig);
	const char		*hdr;
	int			 r;

	if (!json_is_object(claims)) {
		r = cb_error_set(err, CB_EBADREQ, "token claims must be a map");
		goto done;
	}
	hdr = alg == TOKEN_PS256 ? ps256 : rs256;
	if (token_json_append(claims, &json) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not write the token "
		    "claims as JSON");
		goto done;
	}
	if (token_b64url_encode((const uint8_t *)hdr, strlen(hdr), out,
	    NULL) != 0 || secbuf_append(out, ".", 1) != 0 ||
	    token_b64url_encode(json.data, json.len, out, NULL) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (token_sign(k, "SHA256", alg == TOKEN_PS256, out->data + start,
	    out->len - start, sig, &siglen) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not sign the token");
		goto done;
	}
	if (secbuf_append(out, ".", 1) != 0 ||
	    token_b64url_encode(sig, siglen, out, NULL) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	r = 0;
 done:
	if (r != 0)
		token_cut(out, start);
	cb_wipe(sig, sizeof(sig));
	secbuf_free(&json);
	ERR_clear_error();
	return r;
}

/*
 * The JSON object in the base64url text s[0..n), in *objp; what decodes
 * goes through buf, which the caller wipes.  0 or -1.
 */
static int
token_json_part(const char *s, size_t n, struct secbuf *buf, json_t **objp)
{
	json_t	*v;

	*objp = NULL;
	if (token_b64url_decode(s, n, buf, NULL) != 0)
		return -1;
	v = json_loadb((const char *)buf->data, buf->len,
	    JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return -1;
	}
	*objp = v;
	return 0;
}

/*
 * The time claim name of o: 0 when absent (*present false) or a number
 * (in *ival, or in *rval when *real), -1 when present and not a number.
 */
static int
token_time_claim(json_t *o, const char *name, bool *present, json_int_t *ival,
    double *rval, bool *real)
{
	json_t	*v;

	*present = false;
	if ((v = json_object_get(o, name)) == NULL)
		return 0;
	if (json_is_integer(v)) {
		*ival = json_integer_value(v);
		*real = false;
	} else if (json_is_real(v)) {
		*rval = json_real_value(v);
		*real = true;
	} else
		return -1;
	*present = true;
	return 0;
}

/* Whether the time claim (integer ival or real rval) is <= t. */
static bool
token_time_le(bool real, json_int_t ival, double rval, int64_t t)
{
	if (real)
		return rval <= (double)t;
	return (int64_t)ival <= t;
}

int
token_jws_verify(EVP_PKEY *peer, const char *tok, size_t len,
    int64_t now, int64_t leeway, json_t **claims, struct cb_error *err)
{
	static const char *const times[] = { "exp", "nbf", "iat" };
	struct secbuf	 buf = SECBUF_INIT;
	EVP_MD_CTX	*mctx = NULL;
	EVP_PKEY_CTX	*pctx = NULL;
	json_t		*hdr = NULL, *payload = NULL, *alg;
	const char	*d1, *d2, *p;
	json_int_t	 ival[3] = { 0, 0, 0 };
	double		 rval[3] = { 0, 0, 0 };
	bool		 present[3], real[3];
	char		 q[64];
	size_t		 i;
	int		 r;

	*claims = NULL;
	if (len > TOKEN_MAX) {
		r = cb_error_set(err, CB_ETOOLARGE, "token is %zu bytes; at "
		    "most %d are accepted", len, TOKEN_MAX);
		goto done;
	}
	if (leeway < 0 || leeway > INT64_MAX / 4 || now > INT64_MAX / 4 ||
	    now < INT64_MIN / 4) {
		r = cb_error_set(err, CB_EBADREQ, "token check: leeway or "
		    "time out of range");
		goto done;
	}
	d1 = d2 = NULL;
	for (p = tok; p < tok + len; p++)
		if (*p == '.') {
			if (d1 == NULL)
				d1 = p;
			else if (d2 == NULL)
				d2 = p;
			else {
				d2 = NULL;
				break;
			}
		}
	if (d1 == NULL || d2 == NULL) {
		r = cb_error_set(err, CB_EBADREQ, "token is not a JWS compact "
		    "token (three base64url parts separated by dots)");
		goto done;
	}

	/* The header, and its alg before anything else of it is trusted. */
	if (token_json_part(tok, (size_t)(d1 - tok), &buf, &hdr) != 0) {
		r = cb_error_set(err, CB_EBADREQ, "token header is not "
		    "base64url of a JSON object");
		goto done;
	}
	secbuf_reset(&buf);
	if ((alg = json_object_get(hdr, "alg")) == NULL) {
		r = cb_error_set(err, CB_EBADREQ, "token algorithm (none "
		    "given) is not accepted; only RS256");
		goto done;
	}
	if (!json_is_string(alg)) {
		r = cb_error_set(err, CB_EBADREQ, "token algorithm (not a "
		    "string) is not accepted; only RS256");
		goto done;
	}
	if (json_string_length(alg) != 5 ||
	    memcmp(json_string_value(alg), "RS256", 5) != 0) {
		r = cb_error_set(err, CB_EBADREQ, "token algorithm \"%s\" is "
		    "not accepted; only RS256", proto_quote(
		    json_string_value(alg), json_string_length(alg), q,
		    sizeof(q), false));
		goto done;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		r = cb_error_set(err, CB_EBADREQ, "token header has a \"crit\" "
		    "member; no critical extensions are supported");
		goto done;
	}

	/* The signature, RSASSA-PKCS1-v1_5 with SHA-256, over h.p. */
	if (token_b64url_decode(d2 + 1, (size_t)(tok + len - d2 - 1), &buf,
	    NULL) != 0 || buf.len == 0) {
		r = cb_error_set(err, CB_EBADREQ, "token signature is not "
		    "base64url");
		goto done;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(mctx, &pctx, "SHA256", NULL, NULL, peer,
	    NULL) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
		r = cb_error_set(err, CB_EINTERNAL, "could not set up the "
		    "token signature check");
		goto done;
	}
	if (EVP_DigestVerify(mctx, buf.data, buf.len, (const uint8_t *)tok,
	    (size_t)(d2 - tok)) != 1) {
		r = cb_error_set(err, CB_EBADREQ, TOKEN_BAD_SIGNATURE);
		goto done;
	}
	secbuf_reset(&buf);

	if (token_json_part(d1 + 1, (size_t)(d2 - d1 - 1), &buf,
	    &payload) != 0) {
		r = cb_error_set(err, CB_EBADREQ, "token payload is not "
		    "base64url of a JSON object");
		goto done;
	}

	/* exp, nbf and iat: numbers when present; then PyJWT's rules. */
	for (i = 0; i < 3; i++)
		if (token_time_claim(payload, times[i], &present[i], &ival[i],
		    &rval[i], &real[i]) != 0) {
			r = cb_error_set(err, CB_EBADREQ, "token claim \"%s\" "
			    "is not a number", times[i]);
			goto done;
		}
	if (present[0] && token_time_le(real[0], ival[0], rval[0],
	    now - leeway)) {
		r = cb_error_set(err, CB_EBADREQ, "token has expired "
		    "(\"exp\" is at or before now less %lld s of leeway)",
		    (long long)leeway);
		goto done;
	}
	if (present[1] && !token_time_le(real[1], ival[1], rval[1],
	    now + leeway)) {
		r = cb_error_set(err, CB_EBADREQ, "token is not valid yet "
		    "(\"nbf\" is after now plus %lld s of leeway)",
		    (long long)leeway);
		goto done;
	}
	*claims = payload;
	payload = NULL;
	r = 0;
 done:
	json_decref(hdr);
	json_decref(payload);
	EVP_MD_CTX_free(mctx);
	secbuf_free(&buf);
	ERR_clear_error();
	return r;
}
