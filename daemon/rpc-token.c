/*
 * rpc-token: the tokens minted and checked with the keys the broker holds
 * (SPEC sections 9.3 to 9.5), under the use:keys permission:
 *
 *   token.partner  the partner access token of the DataLens connector;
 *   token.embed    the PS256 embed JWT of DataLens private embedding;
 *   token.sso      an RS256 login JWT for a platform that trusts our key;
 *   token.verify   the check of an RS256 login JWT against a peer key,
 *                  and the user attributes it carries.
 *
 * Each call opens the key it names for that call only (rpc_key_load) and
 * frees it before it returns.  Tokens are secrets: they are built in
 * wiping buffers, packed into the wiping reply, and never logged; the
 * audit line names the keys and versions used (rpc_audit_key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cb_error.h"
#include "claims.h"
#include "credbrokerd.h"
#include "pkey.h"
#include "proto.h"
#include "secbuf.h"
#include "store.h"
#include "token.h"
#include "vault.h"

#define RPC_URL_BASE_MAX	2048

/* An optional integer parameter within lo..hi; def when absent. */
static int
rpc_token_int(const msgpack_object *params, const char *key, int64_t lo,
    int64_t hi, int64_t def, int64_t *out, struct cb_error *err)
{
	int	rc;

	if ((rc = proto_get_int(params, key, false, out, err)) < 0)
		return rc;
	if (rc == 1) {
		*out = def;
		return 0;
	}
	if (*out < lo || *out > hi)
		return cb_error_set(err, CB_EBADREQ, "%s must be from %lld to "
		    "%lld", key, (long long)lo, (long long)hi);
	return 0;
}

/*
 * Open key pair (param "keypair", version "keypair_version") for the
 * call: *k the private key, *version the version used.
 */
static int
rpc_token_keypair(struct rpc_call *call, const msgpack_object *params,
    EVP_PKEY **k, uint32_t *version, struct cb_error *err)
{
	char		*ident = NULL;
	uint32_t	 want;
	int		 rc;

	if ((rc = rpc_key_ident(params, "keypair", &ident, err)) != 0 ||
	    (rc = rpc_key_version(params, "keypair_version", false, &want,
	    err)) != 0)
		goto done;
	rc = rpc_key_load(call->broker, STORE_KEYPAIR, ident, want, version,
	    k, err);
	/* The audit line names the version used (or asked for). */
	rpc_audit_key(call, STORE_KEYPAIR, ident, rc == 0 ? *version : want);
done:
	free(ident);
	return rc;
}

/* Pack the {token, iat, exp} common to the JWT methods (map of n). */
static void
rpc_token_pack_jwt(struct rpc_call *call, size_t n,
    const struct secbuf *tok, int64_t iat, int64_t exp)
{
	msgpack_packer	*pk = &call->pk;

	msgpack_pack_map(pk, n);
	proto_pack_cstr(pk, "token");
	msgpack_pack_str(pk, tok->len);
	msgpack_pack_str_body(pk, tok->data, tok->len);
	proto_pack_kv_int(pk, "iat", iat);
	proto_pack_kv_int(pk, "exp", exp);
}

/*
 * A JSON object parameter (a map): *out a new reference, NULL when the
 * parameter is absent and optional.
 */
static int
rpc_token_object(const msgpack_object *params, const char *key,
    bool required, json_t **out, struct cb_error *err)
{
	const msgpack_object	*o = proto_map_get(params, key);

	*out = NULL;
	if (o == NULL) {
		if (!required)
			return 0;
		return cb_error_set(err, CB_EBADREQ,
		    "missing required parameter '%s'", key);
	}
	if (o->type != MSGPACK_OBJECT_MAP)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter '%s' must be a map", key);
	return claims_from_msgpack(o, key, out, err);
}

/*
 * token.partner {keypair, peerkey, payload, keypair_version?,
 * peerkey_version?} -> {token, keypair_version, peerkey_version}
 */
int
rpc_token_partner(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "keypair", "peerkey", "payload",
	    "keypair_version", "peerkey_version", NULL };
	struct secbuf	 tok = SECBUF_INIT;
	EVP_PKEY	*kp = NULL, *peer = NULL;
	json_t		*payload = NULL;
	char		*ident = NULL, *text = NULL;
	uint32_t	 kv, pv, want;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_token_object(params, "payload", true, &payload,
	    err)) != 0 ||
	    (rc = rpc_key_ident(params, "peerkey", &ident, err)) != 0 ||
	    (rc = rpc_key_version(params, "peerkey_version", false, &want,
	    err)) != 0 ||
	    (rc = rpc_token_keypair(call, params, &kp, &kv, err)) != 0 ||
	    (rc = rpc_key_load(call->broker, STORE_PEERKEY, ident, want, &pv,
	    &peer, err)) != 0)
		goto done;
	rpc_audit_key(call, STORE_PEERKEY, ident, pv);
	if ((text = json_dumps(payload, JSON_COMPACT)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((rc = token_partner(kp, kv, peer, pv, text, strlen(text), &tok,
	    err)) != 0)
		goto done;
	msgpack_pack_map(&call->pk, 3);
	proto_pack_cstr(&call->pk, "token");
	msgpack_pack_str(&call->pk, tok.len);
	msgpack_pack_str_body(&call->pk, tok.data, tok.len);
	proto_pack_kv_int(&call->pk, "keypair_version", kv);
	proto_pack_kv_int(&call->pk, "peerkey_version", pv);
done:
	vault_json_release(text);
	json_decref(payload);
	EVP_PKEY_free(kp);
	EVP_PKEY_free(peer);
	secbuf_free(&tok);
	free(ident);
	return rc;
}

/*
 * params of token.embed: a map of string to string or to an array of
 * strings (what the chart's signed parameters are).
 */
static int
rpc_token_check_params(const json_t *params, struct cb_error *err)
{
	const char	*k;
	json_t		*v, *e;
	size_t		 i;

	json_object_foreach((json_t *)params, k, v) {
		if (json_is_string(v))
			continue;
		if (!json_is_array(v))
			return cb_error_set(err, CB_EBADREQ, "params: each "
			    "value must be a string or an array of strings");
		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				return cb_error_set(err, CB_EBADREQ, "params: "
				    "each value must be a string or an array "
				    "of strings");
		}
	}
	return 0;
}

/*
 * url_base of token.embed: http(s)://..., printable ASCII without spaces,
 * fragment or query; a trailing '/' is dropped.  *out malloc'd.
 */
static int
rpc_token_url_base(const msgpack_object *params, char **out,
    struct cb_error *err)
{
	char	*s;
	size_t	 i, n;
	int	 rc;

	if ((rc = proto_get_str(params, "url_base", false, &s, err)) != 0)
		return rc;
	n = strlen(s);
	if (n > RPC_URL_BASE_MAX ||
	    (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0))
		goto bad;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '#' ||
		    s[i] == '?' || s[i] == '"' || s[i] == '\\')
			goto bad;
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	/* A host after the scheme. */
	if (strlen(s) <= strlen(s[4] == 's' ? "https://" : "http://"))
		goto bad;
	*out = s;
	return 0;
bad:
	free(s);
	return cb_error_set(err, CB_EBADREQ, "url_base must be an http or "
	    "https URL of at most %d printable characters, without query or "
	    "fragment", RPC_URL_BASE_MAX);
}

/*
 * token.embed {keypair, embed_id, ttl?, params?, url_base?, kind?,
 * keypair_version?} -> {token, iat, exp, keypair_version, url?}
 */
int
rpc_token_embed(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "keypair", "embed_id", "ttl",
	    "params", "url_base", "kind", "keypair_version", NULL };
	struct secbuf	 tok = SECBUF_INIT, url = SECBUF_INIT;
	EVP_PKEY	*kp = NULL;
	json_t		*claims = NULL, *eparams = NULL;
	char		*embed_id = NULL, *url_base = NULL, *kind = NULL;
	int64_t		 ttl, iat, exp;
	uint32_t	 kv;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "embed_id", true, &embed_id,
	    err)) != 0)
		goto done;
	if (*embed_id == '\0' || strlen(embed_id) > 256) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "embed_id must be 1 to 256 bytes");
		goto done;
	}
	if ((rc = proto_get_int(params, "ttl", false, &ttl, err)) < 0)
		goto done;
	if (rc == 1)
		ttl = TOKEN_EMBED_TTL;
	if (ttl < 1 || ttl > TOKEN_EMBED_TTL_MAX) {
		rc = cb_error_set(err, CB_EBADREQ, "ttl %lld s: an embed token "
		    "lives 1 to %d s (exp - iat at most 10 hours)",
		    (long long)ttl, TOKEN_EMBED_TTL_MAX);
		goto done;
	}
	if ((rc = rpc_token_object(params, "params", false, &eparams,
	    err)) != 0 ||
	    (eparams != NULL &&
	    (rc = rpc_token_check_params(eparams, err)) != 0) ||
	    (rc = rpc_token_url_base(params, &url_base, err)) < 0 ||
	    (rc = proto_get_str(params, "kind", false, &kind, err)) < 0)
		goto done;
	if (kind != NULL && strcmp(kind, "chart") != 0 &&
	    strcmp(kind, "dash") != 0) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "kind must be \"chart\" or \"dash\"");
		goto done;
	}
	if ((kind == NULL) != (url_base == NULL)) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "url_base and kind go together: give both or neither");
		goto done;
	}
	if ((rc = rpc_token_keypair(call, params, &kp, &kv, err)) != 0)
		goto done;
	iat = (int64_t)time(NULL);
	exp = iat + ttl;
	claims = json_pack("{s:s, s:I, s:I, s:s}", "embedId", embed_id,
	    "iat", (json_int_t)iat, "exp", (json_int_t)exp,
	    "dlEmbedService", TOKEN_EMBED_SERVICE);
	if (claims == NULL || (eparams != NULL &&
	    json_object_set(claims, "params", eparams) != 0)) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((rc = token_jws_sign(kp, TOKEN_PS256, claims, &tok, err)) != 0)
		goto done;
	if (kind != NULL &&
	    (secbuf_append(&url, url_base, strlen(url_base)) != 0 ||
	    secbuf_append(&url, "/embeds/", 8) != 0 ||
	    secbuf_append(&url, kind, strlen(kind)) != 0 ||
	    secbuf_append(&url, "#dl_embed_token=", 16) != 0 ||
	    secbuf_append(&url, tok.data, tok.len) != 0)) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	rpc_token_pack_jwt(call, kind != NULL ? 5 : 4, &tok, iat, exp);
	proto_pack_kv_int(&call->pk, "keypair_version", kv);
	if (kind != NULL) {
		proto_pack_cstr(&call->pk, "url");
		msgpack_pack_str(&call->pk, url.len);
		msgpack_pack_str_body(&call->pk, url.data, url.len);
	}
done:
	json_decref(claims);
	json_decref(eparams);
	EVP_PKEY_free(kp);
	secbuf_free(&tok);
	secbuf_free(&url);
	free(embed_id);
	free(url_base);
	free(kind);
	return rc;
}

/* token.sso {keypair, claims, ttl?, keypair_version?} -> {token, iat, exp} */
int
rpc_token_sso(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "keypair", "claims", "ttl",
	    "keypair_version", NULL };
	struct secbuf	 tok = SECBUF_INIT;
	EVP_PKEY	*kp = NULL;
	json_t		*claims = NULL;
	int64_t		 ttl, iat;
	uint32_t	 kv;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_token_object(params, "claims", true, &claims,
	    err)) != 0 ||
	    (rc = rpc_token_int(params, "ttl", 1, TOKEN_SSO_TTL_MAX,
	    TOKEN_SSO_TTL, &ttl, err)) != 0)
		goto done;
	if (json_object_get(claims, "iat") != NULL ||
	    json_object_get(claims, "exp") != NULL) {
		rc = cb_error_set(err, CB_EBADREQ, "claims must not hold iat "
		    "or exp: the broker sets them (give ttl)");
		goto done;
	}
	if ((rc = rpc_token_keypair(call, params, &kp, &kv, err)) != 0)
		goto done;
	iat = (int64_t)time(NULL);
	if (json_object_set_new(claims, "iat", json_integer(iat)) != 0 ||
	    json_object_set_new(claims, "exp", json_integer(iat + ttl)) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((rc = token_jws_sign(kp, TOKEN_RS256, claims, &tok, err)) != 0)
		goto done;
	rpc_token_pack_jwt(call, 4, &tok, iat, iat + ttl);
	proto_pack_kv_int(&call->pk, "keypair_version", kv);
done:
	json_decref(claims);
	EVP_PKEY_free(kp);
	secbuf_free(&tok);
	return rc;
}

/*
 * token.verify {peerkey, token, attributes?, leeway?, peerkey_version?}
 * -> {claims, attributes, peerkey_version}.  Without peerkey_version the
 * token is checked against each version of the peer key, newest first,
 * so that tokens signed before the counterpart's key rotation still pass
 * while both versions are set.
 */
int
rpc_token_verify(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "peerkey", "token", "attributes",
	    "leeway", "peerkey_version", NULL };
	struct broker		*b = call->broker;
	struct store_keyset	 ks;
	const msgpack_object	*t;
	EVP_PKEY		*peer = NULL;
	json_t			*spec = NULL, *claims = NULL, *attrs = NULL;
	char			*ident = NULL;
	uint32_t		 want, got = 0;
	int64_t			 leeway, now;
	size_t			 i;
	int			 rc;

	memset(&ks, 0, sizeof(ks));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_key_ident(params, "peerkey", &ident, err)) != 0 ||
	    (rc = rpc_key_version(params, "peerkey_version", false, &want,
	    err)) != 0 ||
	    (rc = rpc_token_int(params, "leeway", 0, TOKEN_LEEWAY_MAX,
	    TOKEN_LEEWAY, &leeway, err)) != 0 ||
	    (rc = rpc_token_object(params, "attributes", false, &spec,
	    err)) != 0)
		goto done;
	if ((t = proto_map_get(params, "token")) == NULL ||
	    t->type != MSGPACK_OBJECT_STR) {
		rc = cb_error_set(err, CB_EBADREQ, "parameter 'token' must be "
		    "a string");
		goto done;
	}
	if (t->via.str.size > TOKEN_MAX) {
		rc = cb_error_set(err, CB_ETOOLARGE, "token is %u bytes; at "
		    "most %d are read", t->via.str.size, TOKEN_MAX);
		goto done;
	}
	now = (int64_t)time(NULL);
	if (want != 0) {
		rpc_audit_key(call, STORE_PEERKEY, ident, want);
		if ((rc = rpc_key_load(b, STORE_PEERKEY, ident, want, &got,
		    &peer, err)) != 0 ||
		    (rc = token_jws_verify(peer, t->via.str.ptr,
		    t->via.str.size, now, leeway, &claims, err)) != 0)
			goto done;
	} else {
		if ((rc = store_key_get(b->store, STORE_PEERKEY, ident, &ks,
		    err)) != 0)
			goto done;
		rc = -CB_EBADREQ;
		for (i = ks.nversions; i-- > 0 && rc != 0; ) {
			EVP_PKEY_free(peer);
			peer = NULL;
			got = ks.versions[i].version;
			if ((rc = rpc_key_load(b, STORE_PEERKEY, ident, got,
			    &got, &peer, err)) != 0)
				break;
			rc = token_jws_verify(peer, t->via.str.ptr,
			    t->via.str.size, now, leeway, &claims, err);
			/* Only a bad signature moves on to the next key. */
			if (rc != 0 &&
			    strcmp(err->msg, TOKEN_BAD_SIGNATURE) != 0)
				break;
		}
		rpc_audit_key(call, STORE_PEERKEY, ident, rc == 0 ? got : 0);
		if (rc != 0)
			goto done;
	}
	if ((rc = claims_attributes(claims, spec, &attrs, err)) != 0)
		goto done;
	msgpack_pack_map(&call->pk, 3);
	proto_pack_cstr(&call->pk, "claims");
	claims_pack(&call->pk, claims);
	proto_pack_cstr(&call->pk, "attributes");
	claims_pack(&call->pk, attrs);
	proto_pack_kv_int(&call->pk, "peerkey_version", got);
done:
	store_keyset_free(&ks);
	json_decref(spec);
	json_decref(claims);
	json_decref(attrs);
	EVP_PKEY_free(peer);
	free(ident);
	return rc;
}
