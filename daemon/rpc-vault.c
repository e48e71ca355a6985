/*
 * rpc-vault: the Vault settings (SPEC sections 4.2 and 6): vault.get,
 * vault.set and vault.test, and their persistence; and vault.adopt
 * (SPEC section 11), which re-seals in place the values the platform the
 * broker replaces left in Vault.
 *
 * The settings are one row of the settings table, a JSON document, so a
 * change is all or nothing.  role_id and secret_id are sealed in it like
 * credential values; no method ever returns them, only whether they are
 * set.
 *
 * The stored ids go only to the Vault they were stored for.  Two things
 * keep it so:
 *  - vault.set and vault.test refuse a url, namespace or ca_file other
 *    than the stored one unless the call brings role_id and secret_id
 *    itself (rpc_vault_endpoint_check): a stored id is never combined with
 *    another endpoint;
 *  - the seal context of each id names the url, namespace and ca_file it
 *    was saved with (rpc_vault_id_context), so a settings row whose endpoint
 *    was changed behind the broker's back cannot open its ids.  Documents
 *    written before this binding (no "ids_bound" member; contexts
 *    "vault/role_id" and "vault/secret_id") are still read, and are
 *    sealed with the binding by the next save or key rotation.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"
#include "vault.h"

#define RPC_VAULT_SETTING	"vault"

/* The seal context of an id (sealctx.h), bound to c's endpoint or not. */
static char *
rpc_vault_id_context(const char *key, const struct vault_conf *c, bool bound)
{
	return sealctx_vault_id(key, c->url, c->namespace, c->ca_file, bound);
}

/*
 * Open a sealed id from the settings document into a new string.  c holds
 * the endpoint read from the same document.
 */
static int
rpc_vault_open_id(struct broker *b, json_t *doc, const struct vault_conf *c,
    const char *key, struct secbuf *out, struct cb_error *err)
{
	struct secbuf	 plain = SECBUF_INIT;
	json_t		*j = json_object_get(doc, key);
	char		*context;
	bool		 bound = json_is_true(json_object_get(doc, "ids_bound"));
	int		 rc;

	secbuf_free(out);
	if (!json_is_string(j))
		return 0;
	if ((context = rpc_vault_id_context(key, c, bound)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	/* GCM: text has no context at all: never for a bound id. */
	if (bound && strncmp(json_string_value(j), "CB1:", 4) != 0)
		rc = -CB_EINTERNAL;
	else
		rc = keys_open(b, context, json_string_value(j), &plain, err);
	free(context);
	if (rc != 0) {
		secbuf_free(&plain);
		if (bound)
			return cb_error_set(err, CB_EINTERNAL, "the stored "
			    "Vault %s cannot be opened: it is bound to the url, "
			    "namespace and ca_file it was stored with, and the "
			    "stored settings no longer match them (or the "
			    "master key differs); give role_id and secret_id "
			    "again with vault.set", key);
		return rc;
	}
	if (secbuf_set_str(out, (const char *)plain.data, plain.len) != 0) {
		secbuf_free(&plain);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	secbuf_free(&plain);
	return 0;
}

/* Copy an optional string member. */
static int
rpc_vault_json_str(json_t *doc, const char *key, char **out)
{
	json_t	*j = json_object_get(doc, key);

	*out = NULL;
	if (!json_is_string(j))
		return 0;
	return (*out = strdup(json_string_value(j))) == NULL ? -1 : 0;
}

/*
 * Read the stored settings.  When strict is false, ids that cannot be
 * opened are logged and left unset: the settings stay readable and can be
 * replaced, and without its ids Vault cannot be enabled.
 */
static int
rpc_vault_load_conf(struct broker *b, struct vault_conf *c, bool *found,
    bool strict, struct cb_error *err)
{
	struct cb_error	 oerr;
	json_t		*doc = NULL;
	char		*text = NULL;
	int		 rc;

	memset(c, 0, sizeof(*c));
	*found = false;
	if ((rc = store_setting_get(b->store, RPC_VAULT_SETTING, &text,
	    err)) != 0)
		return rc;
	if (text == NULL)
		return 0;
	if ((doc = json_loads(text, 0, NULL)) == NULL ||
	    !json_is_object(doc)) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "stored Vault settings are not valid JSON");
		goto done;
	}
	c->enabled = json_is_true(json_object_get(doc, "enabled"));
	c->timeout_ms = (unsigned)json_integer_value(json_object_get(doc,
	    "timeout_ms"));
	/* Absent from documents saved before it existed: 0, off. */
	c->cache_seconds = (unsigned)json_integer_value(json_object_get(doc,
	    "cache_seconds"));
	if (rpc_vault_json_str(doc, "url", &c->url) != 0 ||
	    rpc_vault_json_str(doc, "path", &c->path) != 0 ||
	    rpc_vault_json_str(doc, "ca_file", &c->ca_file) != 0 ||
	    rpc_vault_json_str(doc, "namespace", &c->namespace) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	cb_error_clear(&oerr);
	if ((rc = rpc_vault_open_id(b, doc, c, "role_id", &c->role_id,
	    &oerr)) != 0 || (rc = rpc_vault_open_id(b, doc, c, "secret_id",
	    &c->secret_id, &oerr)) != 0) {
		if (strict) {
			*err = oerr;
			goto done;
		}
		log_warnx("Vault settings: %s", oerr.msg);
		secbuf_free(&c->role_id);
		rc = 0;
	}
	*found = true;
done:
	json_decref(doc);
	free(text);
	if (rc != 0)
		vault_conf_free(c);
	return rc;
}

int
rpc_vault_load(struct broker *b, struct vault_conf *c, bool *found,
    struct cb_error *err)
{
	return rpc_vault_load_conf(b, c, found, false, err);
}

/* Seal an id, bound to the endpoint in c, and put it into the document. */
static int
rpc_vault_seal_id(struct broker *b, json_t *doc, const struct vault_conf *c,
    const char *key, const char *value, struct cb_error *err)
{
	char	*context, *sealed = NULL;
	int	 rc;

	if (value == NULL)
		return 0;
	if ((context = rpc_vault_id_context(key, c, true)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	rc = keys_seal(b, context, (const uint8_t *)value, strlen(value),
	    &sealed, err);
	free(context);
	if (rc != 0)
		return rc;
	rc = json_object_set_new(doc, key, json_string(sealed));
	free(sealed);
	return rc == 0 ? 0 : cb_error_set(err, CB_EINTERNAL, "out of memory");
}

/*
 * The settings row of c, its ids sealed (*out: free with
 * vault_json_release); the writer stores it (one row: all or nothing).
 */
static int
rpc_vault_doc(struct broker *b, const struct vault_conf *c, char **out,
    struct cb_error *err)
{
	json_t	*doc;
	char	*text = NULL;
	int	 rc;

	*out = NULL;
	doc = json_pack("{s:b, s:s, s:s, s:i, s:i, s:b}", "enabled",
	    c->enabled, "url", c->url, "path", c->path, "timeout_ms",
	    (int)c->timeout_ms, "cache_seconds", (int)c->cache_seconds,
	    "ids_bound", 1);
	if (doc == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if (c->ca_file != NULL)
		json_object_set_new(doc, "ca_file", json_string(c->ca_file));
	if (c->namespace != NULL)
		json_object_set_new(doc, "namespace",
		    json_string(c->namespace));
	if ((rc = rpc_vault_seal_id(b, doc, c, "role_id",
	    secbuf_str(&c->role_id), err)) != 0 ||
	    (rc = rpc_vault_seal_id(b, doc, c, "secret_id",
	    secbuf_str(&c->secret_id), err)) != 0)
		goto done;
	if ((text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	*out = text;
done:
	json_decref(doc);
	return rc;
}

int
rpc_vault_setting_write(struct store *wst, const char *text,
    struct cb_error *err)
{
	return store_setting_set(wst, RPC_VAULT_SETTING, text, err);
}

/*
 * A url in the form that decides whether it names another endpoint:
 * scheme and host in lower case, the scheme's default port (80, 443)
 * dropped, trailing slashes dropped.  Anything else (another host, port,
 * scheme or path) is another endpoint.  false when it does not fit.
 */
static bool
rpc_vault_url_norm(const char *url, char *buf, size_t bufsz)
{
	const char	*auth, *end, *port;
	size_t		 n, plen, i, hostlen;
	bool		 https;

	if (strncasecmp(url, "https://", 8) == 0) {
		https = true;
		auth = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		https = false;
		auth = url + 7;
	} else
		return false;
	end = auth + strcspn(auth, "/");
	/* The port follows the last ':' after any IPv6 literal's ']'. */
	port = memchr(auth, ']', (size_t)(end - auth));
	port = memchr(port != NULL ? port : auth, ':',
	    (size_t)(end - (port != NULL ? port : auth)));
	hostlen = (size_t)((port != NULL ? port : end) - auth);
	if (port != NULL && (port + 1 == end ||
	    ((size_t)(end - port - 1) == strlen(https ? "443" : "80") &&
	    strncmp(port + 1, https ? "443" : "80",
	    (size_t)(end - port - 1)) == 0)))
		port = NULL;		/* empty or default port */
	plen = strlen(end);
	while (plen > 0 && end[plen - 1] == '/')
		plen--;
	n = (size_t)snprintf(buf, bufsz, "%s://%.*s%.*s%.*s",
	    https ? "https" : "http", (int)hostlen, auth,
	    port != NULL ? (int)(end - port) : 0, port != NULL ? port : "",
	    (int)plen, end);
	if (n >= bufsz)
		return false;
	n = strlen(https ? "https://" : "http://");
	for (i = n; i < n + hostlen; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	return true;
}

/* Do urls a and b (either may be NULL) name the same endpoint? */
static bool
rpc_vault_url_same(const char *a, const char *b)
{
	char	na[640], nb[640];

	if (a == NULL || b == NULL)
		return a == b;
	if (!rpc_vault_url_norm(a, na, sizeof(na)) ||
	    !rpc_vault_url_norm(b, nb, sizeof(nb)))
		return strcmp(a, b) == 0;
	return strcmp(na, nb) == 0;
}

/* Equal optional strings, NULL and "" alike. */
static bool
rpc_vault_opt_same(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/*
 * The stored ids go only to the endpoint they were stored for: a call
 * that changes url, namespace or ca_file must bring role_id and
 * secret_id itself (had_role, had_secret), or it is refused and nothing
 * changes.
 */
static int
rpc_vault_endpoint_check(const struct vault_conf *base,
    const struct vault_conf *c, bool had_role, bool had_secret,
    struct cb_error *err)
{
	char	 what[32];
	bool	 url, ns, ca;

	url = !rpc_vault_url_same(base->url, c->url);
	ns = !rpc_vault_opt_same(base->namespace, c->namespace);
	ca = !rpc_vault_opt_same(base->ca_file, c->ca_file);
	if (!url && !ns && !ca)
		return 0;
	if ((had_role || secbuf_str(&base->role_id) == NULL) &&
	    (had_secret || secbuf_str(&base->secret_id) == NULL))
		return 0;
	snprintf(what, sizeof(what), "%s%s%s%s%s", url ? "url" : "",
	    url && (ns || ca) ? ", " : "", ns ? "namespace" : "",
	    ns && ca ? ", " : "", ca ? "ca_file" : "");
	return cb_error_set(err, CB_EBADREQ, "changing %s needs role_id "
	    "and secret_id again in the same call: the stored ones are only "
	    "sent to the endpoint they were stored for (missing: %s); "
	    "nothing was changed", what, !had_role && !had_secret ?
	    "role_id and secret_id" : !had_role ? "role_id" : "secret_id");
}

/*
 * Read vault.set/vault.test parameters over base (the stored settings):
 * absent keys keep the stored value, except that the stored ids are not
 * kept for another endpoint (rpc_vault_endpoint_check).  role_id and
 * secret_id are secrets: the copies are wiped by vault_conf_free.
 */
static int
rpc_vault_params(const msgpack_object *params, const struct vault_conf *base,
    struct vault_conf *c, bool require, struct cb_error *err)
{
	static const char *const keys[] = { "enabled", "url", "role_id",
	    "secret_id", "path", "ca_file", "namespace", "timeout_ms",
	    "cache_seconds", NULL };
	static const char *const strs[] = { "url", "role_id", "secret_id",
	    "path", "ca_file", "namespace" };
	char		**slots[6];
	struct secbuf	*ids[6] = { NULL };
	char		*s;
	int64_t		 t;
	size_t		 i;
	bool		 given[6] = { false };
	int		 rc;

	if (vault_conf_copy(c, base) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	slots[0] = &c->url;
	slots[1] = slots[2] = NULL;	/* secrets: in buffers */
	ids[1] = &c->role_id;
	ids[2] = &c->secret_id;
	slots[3] = &c->path;
	slots[4] = &c->ca_file;
	slots[5] = &c->namespace;
	if ((rc = proto_check_keys(params, keys, err)) != 0)
		goto fail;
	if ((rc = proto_get_bool(params, "enabled", require, &c->enabled,
	    err)) < 0)
		goto fail;
	for (i = 0; i < 6; i++) {
		bool req = require && (i == 0 || i == 3);

		if ((rc = proto_get_str(params, strs[i], req, &s, err)) < 0)
			goto fail;
		if (rc == 0 && ids[i] != NULL) {
			given[i] = true;
			rc = secbuf_set_str(ids[i], s, strlen(s));
			cb_strfree_wipe(s);
			if (rc != 0) {
				rc = cb_error_set(err, CB_EINTERNAL,
				    "out of memory");
				goto fail;
			}
		} else if (rc == 0) {
			given[i] = true;
			cb_strfree_wipe(*slots[i]);
			/* An empty ca_file or namespace clears it. */
			if (*s == '\0' && (i == 4 || i == 5)) {
				free(s);
				s = NULL;
			}
			*slots[i] = s;
		}
	}
	if ((rc = proto_get_int(params, "timeout_ms", false, &t, err)) < 0)
		goto fail;
	if (rc == 0) {
		if (t < 0 || t > CB_VAULT_TIMEOUT_MAX) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "timeout_ms must be 0 to %d",
			    CB_VAULT_TIMEOUT_MAX);
			goto fail;
		}
		c->timeout_ms = (unsigned)t;
	}
	if ((rc = proto_get_int(params, "cache_seconds", false, &t, err)) < 0)
		goto fail;
	if (rc == 0) {
		if (t < 0 || t > CB_VAULT_CACHE_MAX) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "cache_seconds must be 0 to %d",
			    CB_VAULT_CACHE_MAX);
			goto fail;
		}
		c->cache_seconds = (unsigned)t;
	}
	/* vault.test checks completeness first: see rpc_vault_test. */
	if (require && (rc = vault_conf_check(c, err)) != 0)
		goto fail;
	if ((rc = rpc_vault_endpoint_check(base, c, given[1], given[2],
	    err)) != 0)
		goto fail;
	return 0;
fail:
	vault_conf_free(c);
	return rc < 0 ? rc : -CB_EBADREQ;
}

/* vault.get {} -> settings without the secrets */
int
rpc_vault_get(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };
	struct vault_conf	 c;
	msgpack_packer		*pk = &call->pk;
	bool			 found;
	int			 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_vault_load(call->broker, &c, &found, err)) != 0)
		return rc;
	msgpack_pack_map(pk, 10);
	proto_pack_kv_bool(pk, "configured", found);
	proto_pack_kv_bool(pk, "enabled", c.enabled);
	proto_pack_kv_str(pk, "url", c.url);
	proto_pack_kv_str(pk, "path", c.path);
	proto_pack_kv_str(pk, "ca_file", c.ca_file);
	proto_pack_kv_str(pk, "namespace", c.namespace);
	proto_pack_kv_int(pk, "timeout_ms", c.timeout_ms ? c.timeout_ms :
	    VAULT_TIMEOUT_DEFAULT);
	proto_pack_kv_int(pk, "cache_seconds", c.cache_seconds);
	proto_pack_kv_bool(pk, "role_id_set", secbuf_str(&c.role_id) != NULL);
	proto_pack_kv_bool(pk, "secret_id_set",
	    secbuf_str(&c.secret_id) != NULL);
	vault_conf_free(&c);
	return 0;
}

/* vault.set waiting for its write: the settings, applied once durable. */
struct vset_ctx {
	struct dbwrite		 w;	/* first */
	struct rpc_call		*call;
	struct vault_conf	 c;
	char			*text;
};

static void
vset_free(struct vset_ctx *x)
{
	vault_conf_free(&x->c);
	vault_json_release(x->text);
	free(x);
}

/* On the writer's thread: the settings row. */
static int
vset_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct vset_ctx	*x = (struct vset_ctx *)w;

	return rpc_vault_setting_write(wst, x->text, err);
}

static void
vset_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct vset_ctx	*x = (struct vset_ctx *)w;
	struct rpc_call	*call = x->call;
	struct cb_error	 e;

	if (rc == 0) {
		if ((rc = vault_configure(call->broker->vault, &x->c,
		    &e)) == 0)
			msgpack_pack_map(&call->pk, 0);
		else
			err = &e;
	}
	rpc_finish(call, rc, err);
	vset_free(x);
}

/* vault.set {enabled, url, path, role_id?, secret_id?, ...} -> {} */
int
rpc_vault_set(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	struct broker		*b = call->broker;
	struct vault_conf	 base;
	struct vset_ctx		*x;
	bool			 found;
	int			 rc;

	if ((rc = rpc_vault_load(b, &base, &found, err)) != 0)
		return rc;
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		vault_conf_free(&base);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	rc = rpc_vault_params(params, &base, &x->c, true, err);
	vault_conf_free(&base);
	if (rc != 0) {
		free(x);
		return rc;
	}
	x->call = call;
	x->w.run = vset_run;
	x->w.done = vset_done;
	if ((rc = rpc_vault_doc(b, &x->c, &x->text, err)) != 0 ||
	    (rc = rpc_write(call, &x->w, err)) != 0) {
		vset_free(x);
		return rc;
	}
	return RPC_WAIT;
}

/* vault.test finished: {ok, steps: [{step, ok, message}]} */
static void
rpc_vault_tested(void *arg, const struct vault_test_step *steps, size_t n)
{
	struct rpc_call	*call = arg;
	msgpack_packer	*pk = &call->pk;
	bool		 ok = n == 4;
	size_t		 i;

	for (i = 0; i < n; i++)
		ok = ok && steps[i].ok;
	msgpack_pack_map(pk, 2);
	proto_pack_kv_bool(pk, "ok", ok);
	proto_pack_cstr(pk, "steps");
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++) {
		msgpack_pack_map(pk, 3);
		proto_pack_kv_str(pk, "step", steps[i].step);
		proto_pack_kv_bool(pk, "ok", steps[i].ok);
		proto_pack_kv_str(pk, "message", steps[i].message);
	}
	rpc_finish(call, 0, NULL);
}

/* vault.test {} or settings -> {ok, steps} (waits on Vault) */
int
rpc_vault_test(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	struct broker		*b = call->broker;
	struct vault_conf	 base, c;
	bool			 found;
	int			 rc;

	if ((rc = rpc_vault_load(b, &base, &found, err)) != 0)
		return rc;
	/* Unset keys come from the stored settings. */
	rc = rpc_vault_params(params, &base, &c, false, err);
	vault_conf_free(&base);
	if (rc != 0)
		return rc;
	if (c.url == NULL || c.path == NULL ||
	    secbuf_str(&c.role_id) == NULL ||
	    secbuf_str(&c.secret_id) == NULL) {
		vault_conf_free(&c);
		return cb_error_set(err, CB_ENOTCONFIGURED, "Vault settings "
		    "are incomplete: url, path, role_id and secret_id are "
		    "needed");
	}
	rc = vault_test(b->loop, b->http, &c, rpc_vault_tested, call, err);
	vault_conf_free(&c);
	return rc == 0 ? RPC_WAIT : rc;
}

int
rpc_vault_reseal(struct broker *b, char **text, struct cb_error *err)
{
	struct vault_conf	 c;
	bool			 found;
	int			 rc;

	*text = NULL;
	/* Strict: ids that cannot be opened stop the rotation, not vanish. */
	if ((rc = rpc_vault_load_conf(b, &c, &found, true, err)) != 0)
		return rc;
	if (found)
		rc = rpc_vault_doc(b, &c, text, err);
	vault_conf_free(&c);
	return rc;
}

/*
 * vault.adopt {type}: the platform the broker replaces kept the values of
 * a Vault-stored type at the same paths, sealed in its GCM: format.  Each
 * is opened (master key or legacy key), sealed in the bound format and
 * written back in place, one user at a time.  Values already in the
 * broker's format are left and counted; values no key opens are left as
 * they are and reported by user.  Running it again is harmless: an
 * interrupted adoption resumes where values are still GCM: text.  The
 * walk goes through the type's values backend, so a type stored in the
 * database has its GCM: values there re-sealed the same way.
 */
struct adopt_ctx {
	struct rpc_call		*call;
	struct values		*vs;
	char			 uuid[STORE_UUID_LEN + 1];
	int64_t			 generation;
	char			**users;
	size_t			 nusers;
	size_t			 next;
	int64_t			 adopted;
	int64_t			 already;
	size_t			*failed;	/* indexes into users */
	size_t			 nfailed;
};

static void	adopt_next(struct adopt_ctx *);

/* Free the adoption's context. */
static void
adopt_free(struct adopt_ctx *x)
{
	size_t	i;

	for (i = 0; i < x->nusers; i++)
		free(x->users[i]);
	free(x->users);
	free(x->failed);
	free(x);
}

/* Answer {adopted, already, failed, failed_users} and end the call. */
static void
adopt_finish(struct adopt_ctx *x, int rc, const struct cb_error *err)
{
	msgpack_packer	*pk = &x->call->pk;
	size_t		 i;

	if (rc == 0) {
		msgpack_pack_map(pk, 4);
		proto_pack_kv_int(pk, "adopted", x->adopted);
		proto_pack_kv_int(pk, "already", x->already);
		proto_pack_kv_int(pk, "failed", (int64_t)x->nfailed);
		proto_pack_cstr(pk, "failed_users");
		msgpack_pack_array(pk, x->nfailed);
		for (i = 0; i < x->nfailed; i++)
			proto_pack_cstr(pk, x->users[x->failed[i]]);
	}
	rpc_finish(x->call, rc, err);
	adopt_free(x);
}

/* One value written back. */
static void
adopt_written(void *arg, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct adopt_ctx	*x = arg;

	(void)updated_at;
	if (rc != 0) {
		adopt_finish(x, rc, err);
		return;
	}
	x->adopted++;
	x->next++;
	adopt_next(x);
}

/* One value read: re-seal a GCM: one, leave the others. */
static void
adopt_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *gerr)
{
	struct adopt_ctx	*x = arg;
	struct values_ref	 ref = { 0 };
	struct secbuf		 pt = SECBUF_INIT;
	struct cb_error		 e;
	char			 context[VALUES_CONTEXT_MAX];
	char			*resealed = NULL;
	bool			 legacy;

	(void)updated_at;
	if (rc == -CB_ENOTFOUND || (rc == 0 && strncmp(sealed, "GCM:",
	    4) != 0)) {
		/* Gone since listed, or the broker's own format. */
		if (rc == 0)
			x->already++;
		x->next++;
		adopt_next(x);
		return;
	}
	if (rc != 0) {
		adopt_finish(x, rc, gerr);
		return;
	}
	ref.type_uuid = x->uuid;
	ref.user_uuid = x->users[x->next];
	ref.generation = x->generation;
	values_context(x->vs, context, sizeof(context), &ref);
	if (keys_open_import(x->call->broker, sealed, &pt, &legacy,
	    &e) != 0 || pt.len == 0 ||
	    keys_seal(x->call->broker, context, pt.data, pt.len, &resealed,
	    &e) != 0) {
		secbuf_free(&pt);
		log_warnx("vault.adopt: the value of user %s cannot be "
		    "adopted; left as it is", x->users[x->next]);
		x->failed[x->nfailed++] = x->next;
		x->next++;
		adopt_next(x);
		return;
	}
	secbuf_free(&pt);
	rc = x->vs->ops->set(x->vs, &ref, resealed, adopt_written, x, &e);
	free(resealed);
	if (rc != 0)
		adopt_finish(x, rc, &e);
}

/* Read the next user's value, or answer when all are done. */
static void
adopt_next(struct adopt_ctx *x)
{
	struct values_ref	 ref = { 0 };
	struct cb_error		 e;
	int			 rc;

	if (x->next == x->nusers) {
		adopt_finish(x, 0, NULL);
		return;
	}
	ref.type_uuid = x->uuid;
	ref.user_uuid = x->users[x->next];
	ref.generation = x->generation;
	if ((rc = x->vs->ops->get(x->vs, &ref, adopt_got, x, &e)) != 0)
		adopt_finish(x, rc, &e);
}

/* The users holding a value of the type: copy them, then walk them. */
static void
adopt_listed(void *arg, int rc, char *const *users, size_t n,
    const struct cb_error *lerr)
{
	struct adopt_ctx	*x = arg;
	struct cb_error		 e;
	size_t			 i;

	if (rc != 0) {
		adopt_finish(x, rc, lerr);
		return;
	}
	if ((x->users = calloc(n + 1, sizeof(*x->users))) == NULL ||
	    (x->failed = calloc(n + 1, sizeof(*x->failed))) == NULL) {
		adopt_finish(x, cb_error_set(&e, CB_EINTERNAL,
		    "out of memory"), &e);
		return;
	}
	for (i = 0; i < n; i++) {
		if ((x->users[i] = strdup(users[i])) == NULL) {
			adopt_finish(x, cb_error_set(&e, CB_EINTERNAL,
			    "out of memory"), &e);
			return;
		}
		x->nusers++;
	}
	adopt_next(x);
}

/* vault.adopt {type} -> {adopted, already, failed, failed_users} */
int
rpc_vault_adopt(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", NULL };
	struct store_type	 t;
	struct adopt_ctx	*x = NULL;
	struct cb_error		 why;
	char			*ref = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "type", true, &ref, err)) != 0)
		goto done;
	rpc_audit(call, ref, NULL);
	if ((rc = store_type_get(call->broker->store, ref, &t, err)) != 0)
		goto done;
	rpc_audit(call, t.ident, NULL);
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	x->vs = values_for(call->broker, &t);
	if (!x->vs->ops->usable(x->vs, &why)) {
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in %s: %s", t.ident, x->vs->ops->where, why.msg);
		goto done;
	}
	memcpy(x->uuid, t.uuid, sizeof(x->uuid));
	x->generation = t.generation;
	if ((rc = x->vs->ops->list_users(x->vs, x->uuid, adopt_listed, x,
	    err)) != 0)
		goto done;
	x = NULL;			/* adopt_listed owns it now */
	rc = RPC_WAIT;
done:
	if (x != NULL)
		adopt_free(x);
	free(ref);
	store_type_free(&t);
	return rc;
}
