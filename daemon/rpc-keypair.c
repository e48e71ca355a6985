/*
 * rpc-keypair: the key pairs the broker holds and the peer public keys it
 * trusts (SPEC sections 9.1 and 9.2): keypair.generate, import, get,
 * list, delete and peerkey.set, get, list, delete, all under the
 * edit:keys permission.
 *
 * A key pair's private key is stored as PKCS#8 DER sealed with the master
 * key under the context "keypair/<ident>/<version>" (storage/sealctx.c),
 * so a sealed key moved to another ident or version does not open.  It is
 * decrypted only for the call that needs it, parsed into OpenSSL's secure
 * heap, and freed when the call ends; no method returns it.  keypair.get
 * derives the public keys it returns from the sealed private keys, so
 * whoever can write the database cannot make the broker hand out a public
 * key of their own.  Peer keys are sealed the same way ("peerkey/..."):
 * they are public, but they decide which tokens token.verify accepts, so
 * the database must not be able to swap them either.
 *
 * keypair.generate runs the RSA key generation (tens to hundreds of
 * milliseconds) on libuv's thread pool, so the loop keeps serving other
 * callers; at most RPC_KEYGEN_MAX generations run at once.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "pkey.h"
#include "proto.h"
#include "sealctx.h"
#include "secbuf.h"
#include "store.h"

/* Key generations running on the thread pool at once, at most. */
#define RPC_KEYGEN_MAX		2

static unsigned	rpc_keygen_running;

unsigned
rpc_keygen_count(void)
{
	return rpc_keygen_running;
}

/* The class's name in messages and in the audit trail. */
static const char *
rpc_key_class(int keyclass)
{
	return keyclass == STORE_KEYPAIR ? "keypair" : "peerkey";
}

static void
rpc_key_context(int keyclass, char *buf, size_t sz, const char *ident,
    uint32_t version)
{
	if (keyclass == STORE_KEYPAIR)
		sealctx_keypair(buf, sz, ident, version);
	else
		sealctx_peerkey(buf, sz, ident, version);
}

void
rpc_audit_key(struct rpc_call *call, int keyclass, const char *ident,
    uint32_t version)
{
	size_t	n = strlen(call->audit_keys);

	if (!ids_ident_valid(ident))
		return;
	snprintf(call->audit_keys + n, sizeof(call->audit_keys) - n,
	    "%s%s/%s/%u", n > 0 ? "," : "", rpc_key_class(keyclass), ident,
	    version);
}

int
rpc_key_ident(const msgpack_object *params, const char *key, char **out,
    struct cb_error *err)
{
	int	rc;

	if ((rc = proto_get_str(params, key, true, out, err)) != 0)
		return rc;
	if (!ids_ident_valid(*out)) {
		free(*out);
		*out = NULL;
		return cb_error_set(err, CB_EBADREQ, "%s must match "
		    "[a-z][a-z0-9_]{0,63}", key);
	}
	return 0;
}

/* A version parameter: 1 to INT32_MAX; *out 0 when absent and optional. */
int
rpc_key_version(const msgpack_object *params, const char *key,
    bool required, uint32_t *out, struct cb_error *err)
{
	int64_t	v;
	int	rc;

	*out = 0;
	if ((rc = proto_get_int(params, key, required, &v, err)) < 0)
		return rc;
	if (rc == 1)
		return 0;
	if (v < 1 || v > INT32_MAX)
		return cb_error_set(err, CB_EBADREQ, "%s must be an integer "
		    "from 1 to %d", key, INT32_MAX);
	*out = (uint32_t)v;
	return 0;
}

/*
 * A PEM parameter, read in place from the request (which the call owns
 * and wipes when it ends): no copy of a private key's text is made here.
 */
static int
rpc_key_pem(const msgpack_object *params, const char **pem, size_t *len,
    struct cb_error *err)
{
	const msgpack_object	*o = proto_map_get(params, "pem");

	if (o == NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "missing required parameter 'pem'");
	if (o->type != MSGPACK_OBJECT_STR)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter 'pem' must be a string");
	if (o->via.str.size > PKEY_PEM_MAX)
		return cb_error_set(err, CB_ETOOLARGE, "pem is %u bytes; at "
		    "most %d are accepted", o->via.str.size, PKEY_PEM_MAX);
	*pem = o->via.str.ptr;
	*len = o->via.str.size;
	return 0;
}

/*
 * Open one stored key: version 0 is the current one; *got the version
 * found.  A private key for STORE_KEYPAIR, a public one for STORE_PEERKEY.
 */
int
rpc_key_load(struct broker *b, int keyclass, const char *ident,
    uint32_t version, uint32_t *got, EVP_PKEY **out, struct cb_error *err)
{
	struct secbuf	 der = SECBUF_INIT;
	char		*sealed = NULL, ctx[SEALCTX_KEY_MAX];
	int		 rc;

	*out = NULL;
	if ((rc = store_key_sealed(b->store, keyclass, ident, version, got,
	    &sealed, err)) != 0)
		goto done;
	rpc_key_context(keyclass, ctx, sizeof(ctx), ident, *got);
	if ((rc = keys_open(b, ctx, sealed, &der, err)) != 0) {
		log_warnx("%s %s version %u does not open: %s",
		    rpc_key_class(keyclass), ident, *got, err->msg);
		rc = cb_error_set(err, CB_EINTERNAL, "%s '%s' version %u "
		    "cannot be opened (see the broker's log)",
		    rpc_key_class(keyclass), ident, *got);
		goto done;
	}
	if (keyclass == STORE_KEYPAIR)
		rc = pkey_private_from_der(der.data, der.len, out, err);
	else
		rc = pkey_public_from_der(der.data, der.len, out, err);
	if (rc != 0)
		rc = cb_error_set(err, CB_EINTERNAL, "%s '%s' version %u: "
		    "stored key does not parse", rpc_key_class(keyclass),
		    ident, *got);
done:
	secbuf_free(&der);
	free(sealed);
	return rc;
}

/*
 * Pack a key pair or peer key: {ident, current, versions: [{version,
 * bits, algorithm, created_at, public_pem, public_pem_base64}],
 * created_at, updated_at}, the public keys taken from the sealed keys.
 * version (not 0) is added as "version": the version a call just added.
 */
static int
rpc_key_pack(struct rpc_call *call, int keyclass, const char *ident,
    uint32_t version, struct cb_error *err)
{
	struct broker		*b = call->broker;
	struct store_keyset	 ks;
	msgpack_packer		*pk = &call->pk;
	EVP_PKEY		*k = NULL;
	char			**pems = NULL, *b64 = NULL;
	uint32_t		 got;
	size_t			 i, n;
	int			 rc;

	memset(&ks, 0, sizeof(ks));
	if ((rc = store_key_get(b->store, keyclass, ident, &ks, err)) != 0)
		return rc;
	if ((pems = calloc(ks.nversions + 1, sizeof(*pems))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	for (i = 0; i < ks.nversions; i++) {
		if ((rc = rpc_key_load(b, keyclass, ident,
		    ks.versions[i].version, &got, &k, err)) != 0 ||
		    (rc = pkey_public_pem(k, &pems[i], err)) != 0)
			goto done;
		EVP_PKEY_free(k);
		k = NULL;
	}
	msgpack_pack_map(pk, version != 0 ? 6 : 5);
	proto_pack_kv_str(pk, "ident", ks.ident);
	proto_pack_kv_int(pk, "current",
	    ks.versions[ks.nversions - 1].version);
	if (version != 0)
		proto_pack_kv_int(pk, "version", version);
	proto_pack_cstr(pk, "versions");
	msgpack_pack_array(pk, ks.nversions);
	for (i = 0; i < ks.nversions; i++) {
		n = strlen(pems[i]);
		if ((b64 = malloc(4 * ((n + 2) / 3) + 1)) == NULL) {
			rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		EVP_EncodeBlock((unsigned char *)b64,
		    (const unsigned char *)pems[i], (int)n);
		msgpack_pack_map(pk, 6);
		proto_pack_kv_int(pk, "version", ks.versions[i].version);
		proto_pack_kv_str(pk, "algorithm", "RSA");
		proto_pack_kv_int(pk, "bits", ks.versions[i].bits);
		rpc_pack_kv_time(pk, "created_at", ks.versions[i].created_at);
		proto_pack_kv_str(pk, "public_pem", pems[i]);
		proto_pack_kv_str(pk, "public_pem_base64", b64);
		free(b64);
		b64 = NULL;
	}
	rpc_pack_kv_time(pk, "created_at", ks.created_at);
	rpc_pack_kv_time(pk, "updated_at", ks.updated_at);
done:
	EVP_PKEY_free(k);
	if (pems != NULL) {
		for (i = 0; i < ks.nversions; i++)
			free(pems[i]);
		free(pems);
	}
	store_keyset_free(&ks);
	return rc;
}

/* Pack the keys of a class: [{ident, current, versions: [N...], ...}]. */
static int
rpc_key_list(struct rpc_call *call, int keyclass, struct cb_error *err)
{
	struct store_keyset	*v = NULL;
	msgpack_packer		*pk = &call->pk;
	size_t			 n = 0, i, j;
	int			 rc;

	if ((rc = store_key_list(call->broker->store, keyclass, &v, &n,
	    err)) != 0)
		return rc;
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++) {
		msgpack_pack_map(pk, 6);
		proto_pack_kv_str(pk, "ident", v[i].ident);
		proto_pack_kv_int(pk, "current",
		    v[i].nversions > 0 ?
		    v[i].versions[v[i].nversions - 1].version : 0);
		proto_pack_kv_int(pk, "bits", v[i].nversions > 0 ?
		    v[i].versions[v[i].nversions - 1].bits : 0);
		proto_pack_cstr(pk, "versions");
		msgpack_pack_array(pk, v[i].nversions);
		for (j = 0; j < v[i].nversions; j++)
			msgpack_pack_uint32(pk, v[i].versions[j].version);
		rpc_pack_kv_time(pk, "created_at", v[i].created_at);
		rpc_pack_kv_time(pk, "updated_at", v[i].updated_at);
	}
	store_keyset_list_free(v, n);
	return 0;
}

/*
 * A write of a key, waiting for the writer: a key pair's new version
 * (KEYW_KEYPAIR), a peer key's (KEYW_PEERKEY), or a deletion.  The key
 * stays here (der) until the answer: a key pair's sealed text is bound
 * to its version, and a version taken meanwhile by another call means
 * sealing it again under the next one; a peer key's version set
 * meanwhile by another call is compared with it.
 */
#define KEYW_KEYPAIR	0
#define KEYW_PEERKEY	1
#define KEYW_DELETE	2
#define KEYW_TRIES	16

struct keyw {
	struct dbwrite	 w;		/* first */
	struct rpc_call	*call;
	int		 op;		/* KEYW_* */
	int		 keyclass;
	char		 ident[STORE_IDENT_MAX + 1];
	uint32_t	 version;
	int		 bits;
	char		*sealed;
	struct secbuf	 der;		/* a key pair's private key */
	int64_t		 removed;
	int		 tries;
};

static void	rpc_keyw_done(struct dbwrite *, int, const struct cb_error *);
static int	rpc_peerkey_same(struct broker *, const char *, uint32_t,
		    const struct secbuf *, struct cb_error *);

static void
rpc_keyw_free(struct keyw *x)
{
	secbuf_free(&x->der);
	free(x->sealed);
	free(x);
}

/* On the writer's thread: the write itself. */
static int
rpc_keyw_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct keyw	*x = (struct keyw *)w;
	int64_t		 now = (int64_t)time(NULL);

	switch (x->op) {
	case KEYW_KEYPAIR:
		return store_keypair_add(wst, x->ident, x->version, x->bits,
		    x->sealed, now, err);
	case KEYW_PEERKEY:
		return store_peerkey_add(wst, x->ident, x->version, x->bits,
		    x->sealed, now, err);
	default:
		return store_key_delete(wst, x->keyclass, x->ident,
		    x->version, &x->removed, err);
	}
}

/*
 * Seal the key pair's private key under (ident, the next version) and
 * send it to the writer, which answers the call.
 */
static int
rpc_keyw_keypair(struct keyw *x, struct cb_error *err)
{
	struct broker	*b = x->call->broker;
	char		 ctx[SEALCTX_KEY_MAX];
	int		 rc;

	free(x->sealed);
	x->sealed = NULL;
	if ((rc = store_keypair_next(b->store, x->ident, &x->version,
	    err)) != 0)
		return rc;
	sealctx_keypair(ctx, sizeof(ctx), x->ident, x->version);
	if ((rc = keys_seal(b, ctx, x->der.data, x->der.len, &x->sealed,
	    err)) != 0)
		return rc;
	x->w.run = rpc_keyw_run;
	x->w.done = rpc_keyw_done;
	return rpc_write(x->call, &x->w, err);
}

/* On the loop: the key's write is durable (or failed); answer. */
static void
rpc_keyw_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct keyw		*x = (struct keyw *)w;
	struct rpc_call		*call = x->call;
	const char		*name = rpc_key_class(x->keyclass);
	struct cb_error		 e;

	cb_error_clear(&e);
	/*
	 * Another call took the version meanwhile (writes are made in
	 * turn, the version was read before): seal again under the next.
	 */
	if (rc == -CB_ECONFLICT && x->op == KEYW_KEYPAIR &&
	    ++x->tries < KEYW_TRIES) {
		if (x->call->held) {
			x->call->held = false;
			call->sink.ops->hold(call->sink.ctx, false);
		}
		if ((rc = rpc_keyw_keypair(x, &e)) == 0)
			return;
		err = &e;
	}
	/*
	 * Another call set this peer key's version meanwhile: to the same
	 * key that is no change, as when it was set before; to another, a
	 * conflict.
	 */
	if (rc == -CB_ECONFLICT && x->op == KEYW_PEERKEY) {
		if ((rc = rpc_peerkey_same(call->broker, x->ident, x->version,
		    &x->der, &e)) == 0)
			rc = rpc_key_pack(call, x->keyclass, x->ident,
			    x->version, &e);
		err = &e;
		goto done;
	}
	if (rc != 0)
		goto done;
	switch (x->op) {
	case KEYW_KEYPAIR:
	case KEYW_PEERKEY:
		if (x->op == KEYW_KEYPAIR)
			rpc_audit_key(call, x->keyclass, x->ident,
			    x->version);
		log_info("%s %s: version %u (RSA-%d) %s", name, x->ident,
		    x->version, x->bits, x->op == KEYW_KEYPAIR ? "added" :
		    "set");
		rc = rpc_key_pack(call, x->keyclass, x->ident, x->version,
		    &e);
		err = &e;
		break;
	default:
		log_info("%s %s: %s deleted (%lld)", name, x->ident,
		    x->version != 0 ? "one version" : "every version",
		    (long long)x->removed);
		msgpack_pack_map(&call->pk, 1);
		proto_pack_kv_int(&call->pk, "removed", x->removed);
		break;
	}
done:
	rpc_finish(call, rc, err);	/* err may be the job's */
	rpc_keyw_free(x);
}

/* {keypair|peerkey, version?} -> {removed} */
static int
rpc_key_delete(struct rpc_call *call, int keyclass,
    const msgpack_object *params, struct cb_error *err)
{
	const char	*name = rpc_key_class(keyclass);
	const char	*keys[] = { name, "version", NULL };
	struct keyw	*x = NULL;
	char		*ident = NULL;
	uint32_t	 version;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_key_ident(params, name, &ident, err)) != 0 ||
	    (rc = rpc_key_version(params, "version", false, &version,
	    err)) != 0)
		goto done;
	rpc_audit_key(call, keyclass, ident, version);
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	x->op = KEYW_DELETE;
	x->keyclass = keyclass;
	x->version = version;
	snprintf(x->ident, sizeof(x->ident), "%s", ident);
	x->w.run = rpc_keyw_run;
	x->w.done = rpc_keyw_done;
	if ((rc = rpc_write(call, &x->w, err)) != 0) {
		rpc_keyw_free(x);
		goto done;
	}
	rc = RPC_WAIT;
done:
	free(ident);
	return rc;
}

/*
 * Seal k's private key under (ident, the next version) and store it as
 * the key pair's new current version; the answer packs the key pair.
 * 0: the writer answers the call.
 */
static int
rpc_keypair_add(struct rpc_call *call, const char *ident, EVP_PKEY *k,
    struct cb_error *err)
{
	struct keyw	*x;
	int		 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	x->op = KEYW_KEYPAIR;
	x->keyclass = STORE_KEYPAIR;
	x->bits = pkey_bits(k);
	x->der = (struct secbuf)SECBUF_INIT;
	snprintf(x->ident, sizeof(x->ident), "%s", ident);
	if ((rc = pkey_private_der(k, &x->der, err)) != 0 ||
	    (rc = rpc_keyw_keypair(x, err)) != 0)
		rpc_keyw_free(x);
	return rc;
}

/* keypair.import {ident, pem} -> the key pair, with the new version */
int
rpc_keypair_import(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "ident", "pem", NULL };
	EVP_PKEY	*k = NULL;
	const char	*pem = NULL;
	char		*ident = NULL;
	size_t		 len = 0;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_key_ident(params, "ident", &ident, err)) != 0 ||
	    (rc = rpc_key_pem(params, &pem, &len, err)) != 0 ||
	    (rc = pkey_private_from_pem(pem, len, &k, err)) != 0)
		goto done;
	if ((rc = rpc_keypair_add(call, ident, k, err)) == 0)
		rc = RPC_WAIT;
done:
	EVP_PKEY_free(k);
	free(ident);
	return rc;
}

/* A key generation on the thread pool. */
struct keygen {
	uv_work_t	 work;
	struct rpc_call	*call;
	char		*ident;
	EVP_PKEY	*key;
	int		 rc;
	struct cb_error	 err;
};

static void
rpc_keygen_work(uv_work_t *w)
{
	struct keygen	*g = w->data;

	g->rc = pkey_generate(PKEY_BITS_GENERATE, &g->key, &g->err);
	/*
	 * The generation's stack frames held the key's numbers; and this
	 * pool thread's OpenSSL state (its random generators) goes now, as
	 * the thread outlives every call and would keep it to the end.
	 */
	cb_stack_scrub();
	OPENSSL_thread_stop();
}

static void
rpc_keygen_done(uv_work_t *w, int status)
{
	struct keygen	*g = w->data;
	struct rpc_call	*call = g->call;
	struct cb_error	 err;
	int		 rc = g->rc;

	rpc_keygen_running--;
	cb_error_clear(&err);
	if (status != 0)
		rc = cb_error_set(&err, CB_EINTERNAL, "key generation did not "
		    "run: %s", uv_strerror(status));
	else if (rc != 0)
		err = g->err;
	else
		rc = rpc_keypair_add(call, g->ident, g->key, &err);
	EVP_PKEY_free(g->key);
	free(g->ident);
	free(g);
	if (rc != 0)		/* else the key's write answers */
		rpc_finish(call, rc, &err);
}

/* keypair.generate {ident} -> the key pair, with the new version */
int
rpc_keypair_generate(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "ident", NULL };
	struct keygen	*g = NULL;
	char		*ident = NULL;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_key_ident(params, "ident", &ident, err)) != 0)
		goto fail;
	if (rpc_keygen_running >= RPC_KEYGEN_MAX) {
		rc = cb_error_set(err, CB_EUNAVAILABLE, "%d key generations "
		    "are running already; try again shortly", RPC_KEYGEN_MAX);
		goto fail;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	g->call = call;
	g->ident = ident;
	g->work.data = g;
	cb_error_clear(&g->err);
	if ((rc = uv_queue_work(call->broker->loop, &g->work, rpc_keygen_work,
	    rpc_keygen_done)) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "cannot start the key "
		    "generation: %s", uv_strerror(rc));
		goto fail;
	}
	rpc_keygen_running++;
	return RPC_WAIT;
fail:
	free(g);
	free(ident);
	return rc;
}

/* keypair.get {keypair} */
int
rpc_keypair_get(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "keypair", NULL };
	char	*ident = NULL;
	int	 rc;

	if ((rc = proto_check_keys(params, keys, err)) == 0 &&
	    (rc = rpc_key_ident(params, "keypair", &ident, err)) == 0)
		rc = rpc_key_pack(call, STORE_KEYPAIR, ident, 0, err);
	free(ident);
	return rc;
}

/* keypair.list {} */
int
rpc_keypair_list(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };

	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	return rpc_key_list(call, STORE_KEYPAIR, err);
}

/* keypair.delete {keypair, version?} -> {removed} */
int
rpc_keypair_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	return rpc_key_delete(call, STORE_KEYPAIR, params, err);
}

/*
 * Whether version of peer key ident is the key whose public DER is der:
 * 0, or -CB_ECONFLICT (another key), or the failure to load it.
 */
static int
rpc_peerkey_same(struct broker *b, const char *ident, uint32_t version,
    const struct secbuf *der, struct cb_error *err)
{
	struct secbuf	 old = SECBUF_INIT;
	EVP_PKEY	*cur = NULL;
	uint32_t	 got;
	int		 rc;

	if ((rc = rpc_key_load(b, STORE_PEERKEY, ident, version, &got, &cur,
	    err)) != 0 || (rc = pkey_public_der(cur, &old, err)) != 0)
		goto done;
	if (old.len != der->len ||
	    CRYPTO_memcmp(old.data, der->data, der->len) != 0)
		rc = cb_error_set(err, CB_ECONFLICT, "peer key %s version %u "
		    "is already set to another key; delete that version "
		    "first", ident, version);
done:
	EVP_PKEY_free(cur);
	secbuf_free(&old);
	return rc;
}

/*
 * peerkey.set {ident, version, pem} -> the peer key.  Setting a version
 * to the key it already holds changes nothing; setting it to another key
 * is a conflict (a version names one key: delete it first).
 */
int
rpc_peerkey_set(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "ident", "version", "pem", NULL };
	struct broker	*b = call->broker;
	struct secbuf	 der = SECBUF_INIT;
	struct cb_error	 e;
	struct keyw	*x;
	EVP_PKEY	*k = NULL;
	const char	*pem = NULL;
	char		*ident = NULL, *sealed = NULL, ctx[SEALCTX_KEY_MAX];
	uint32_t	 version;
	size_t		 len = 0;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_key_ident(params, "ident", &ident, err)) != 0 ||
	    (rc = rpc_key_version(params, "version", true, &version,
	    err)) != 0 ||
	    (rc = rpc_key_pem(params, &pem, &len, err)) != 0 ||
	    (rc = pkey_public_from_pem(pem, len, &k, err)) != 0 ||
	    (rc = pkey_public_der(k, &der, err)) != 0)
		goto done;
	rpc_audit_key(call, STORE_PEERKEY, ident, version);
	cb_error_clear(&e);
	rc = rpc_peerkey_same(b, ident, version, &der, &e);
	if (rc == 0) {
		rc = rpc_key_pack(call, STORE_PEERKEY, ident, version, err);
		goto done;
	}
	if (rc != -CB_ENOTFOUND) {
		*err = e;
		goto done;
	}
	sealctx_peerkey(ctx, sizeof(ctx), ident, version);
	if ((rc = keys_seal(b, ctx, der.data, der.len, &sealed, err)) != 0)
		goto done;
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	x->op = KEYW_PEERKEY;
	x->keyclass = STORE_PEERKEY;
	x->version = version;
	x->bits = pkey_bits(k);
	x->der = der;		/* the public key, to compare */
	der = (struct secbuf)SECBUF_INIT;
	x->sealed = sealed;
	sealed = NULL;
	snprintf(x->ident, sizeof(x->ident), "%s", ident);
	x->w.run = rpc_keyw_run;
	x->w.done = rpc_keyw_done;
	if ((rc = rpc_write(call, &x->w, err)) != 0) {
		rpc_keyw_free(x);
		goto done;
	}
	rc = RPC_WAIT;
done:
	EVP_PKEY_free(k);
	secbuf_free(&der);
	free(sealed);
	free(ident);
	return rc;
}

/* peerkey.get {peerkey} */
int
rpc_peerkey_get(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "peerkey", NULL };
	char	*ident = NULL;
	int	 rc;

	if ((rc = proto_check_keys(params, keys, err)) == 0 &&
	    (rc = rpc_key_ident(params, "peerkey", &ident, err)) == 0)
		rc = rpc_key_pack(call, STORE_PEERKEY, ident, 0, err);
	free(ident);
	return rc;
}

/* peerkey.list {} */
int
rpc_peerkey_list(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };

	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	return rpc_key_list(call, STORE_PEERKEY, err);
}

/* peerkey.delete {peerkey, version?} -> {removed} */
int
rpc_peerkey_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	return rpc_key_delete(call, STORE_PEERKEY, params, err);
}
