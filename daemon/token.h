/*
 * token: the tokens the broker mints and checks with the keys it holds
 * (SPEC sections 9.3 to 9.5): the partner access token, JWS compact
 * tokens signed with RS256 or PS256, and the check of an RS256 JWT.
 * Pure functions over EVP_PKEYs and jansson values: no store, no loop.
 * Tokens are secrets and are only ever written to wiping buffers.
 */
#ifndef CB_TOKEN_H
#define CB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cb_error.h"
#include "secbuf.h"

#define TOKEN_EMBED_SERVICE	"YC_DATALENS_EMBEDDING_SERVICE_MARK"
#define TOKEN_EMBED_TTL		600	/* token.embed's default ttl, s */
#define TOKEN_EMBED_TTL_MAX	36000	/* exp - iat at most (10 hours) */
#define TOKEN_SSO_TTL		300	/* token.sso's default ttl, s */
#define TOKEN_SSO_TTL_MAX	86400	/* token.sso's longest ttl */
#define TOKEN_LEEWAY		30	/* token.verify's default leeway, s */
#define TOKEN_LEEWAY_MAX	600
/*
 * The message of token_jws_verify when a well-formed token's signature
 * does not verify with the key given: the one refusal after which another
 * version of the peer key may still accept the token.
 */
#define TOKEN_BAD_SIGNATURE	"token signature does not verify with the " \
				"peer key"
#define TOKEN_MAX		16384	/* longest token token.verify reads */

enum token_alg {
	TOKEN_RS256,	/* RSASSA-PKCS1-v1_5 with SHA-256 */
	TOKEN_PS256	/* RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 */
};

/* base64url without padding (RFC 7515 section 2) of n bytes, appended. */
int	 token_b64url_encode(const uint8_t *p, size_t n, struct secbuf *out,
	    struct cb_error *err);
/*
 * Decode base64url without padding (padding, whitespace and characters
 * outside the alphabet are -CB_EBADREQ), appended to out.
 */
int	 token_b64url_decode(const char *s, size_t n, struct secbuf *out,
	    struct cb_error *err);

/*
 * The partner access token (SPEC 9.3), appended to out:
 * "<peer_version>:<kp_version>:<base64(C)>:<base64(S)>", C the RSA
 * PKCS#1 v1.5 encryption of the len bytes of json under peer, S the RSA
 * PKCS#1 v1.5 SHA-1 signature of C with kp; standard base64 with padding.
 * -CB_ETOOLARGE when json does not fit in one block of peer (its size in
 * bytes less 11).
 */
int	 token_partner(EVP_PKEY *kp, uint32_t kp_version, EVP_PKEY *peer,
	    uint32_t peer_version, const char *json, size_t len,
	    struct secbuf *out, struct cb_error *err);

/*
 * A JWS compact token, appended to out: header {"alg":..,"typ":"JWT"},
 * payload the compact JSON of claims (an object; keys in their order),
 * signed with k under alg.
 */
int	 token_jws_sign(EVP_PKEY *k, enum token_alg alg, const json_t *claims,
	    struct secbuf *out, struct cb_error *err);

/*
 * Check the JWS compact token tok (len bytes) against peer and return its
 * payload object in *claims (a new reference).  Only {"alg":"RS256"} is
 * accepted: none, HS*, PS*, ES* and any other alg are -CB_EBADREQ naming
 * the alg; so are a malformed token, a header or payload that is not a
 * JSON object, a crit header, a bad signature, "exp" <= now - leeway,
 * "nbf" > now + leeway, and "exp"/"nbf"/"iat" that are not numbers.
 * Messages never quote the token.
 */
int	 token_jws_verify(EVP_PKEY *peer, const char *tok, size_t len,
	    int64_t now, int64_t leeway, json_t **claims, struct cb_error *err);

#endif
