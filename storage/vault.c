/*
 * vault: the Vault KV v2 client (see vault.h for the behaviour).
 *
 * State machine of the token:
 *
 *	IDLE --(a call arrives, or settings enable Vault)--> LOGIN
 *	LOGIN --ok--> READY (timer: renew or re-login at ~2/3 of the lease)
 *	LOGIN --fail--> BACKOFF (timer: exponential with jitter, capped)
 *	BACKOFF --timer--> LOGIN
 *	READY --renew ok--> READY;  renew failed / capped / 403 --> LOGIN
 *
 * Calls that arrive during LOGIN wait in a queue and are sent once the
 * login succeeds, or fail with the login's error.  Calls that arrive during
 * BACKOFF fail at once, so a broken AppRole cannot turn traffic into a
 * login storm.  Every callback carries the settings generation it was
 * started under; a reply from before vault_configure() is ignored.
 *
 * Outstanding requests are capped (vault_set_limits, vault.max_pending):
 * an operation takes a slot when it is first sent and keeps it until it
 * ends, across the steps of a write and the retry after a new login, so a
 * call never waits twice.  Operations beyond the cap wait in v->ops, in
 * arrival order, and vault_pump() sends them as slots come free.  That is
 * the only road to vault_send() for a new operation, so the order holds
 * whatever completes in between.  A waiting operation holds no request
 * and no connection: one whose caller has gone costs its turn only.
 *
 * Shutdown.  vault_close() marks the client closing before it fails what
 * is left, so that a callback run from there (a call finishing, a chain
 * starting its next step) cannot start a request, a login or a cache hit
 * on a client about to be freed: new operations fail at once.  Every
 * request this module starts is its own (see http.c, "Ownership"): it is
 * freed by its answer or by our http_cancel(), even when the HTTP client
 * was closed first.
 *
 * Tokens, role_id and secret_id are secrets: they live in wiping buffers,
 * and jansson's allocator is replaced so that every JSON document parsed
 * here (login answers carry the token) is wiped when freed.
 *
 * The read cache is in vault-cache.c, the connection test (vault.test) in
 * vault-test.c; they share this client's internals through vault-int.h.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <uv.h>

#include "cb_error.h"
#include "http.h"
#include "proto.h"

#include "secbuf.h"
#include "vault.h"
#include "vault-int.h"

/*
 * jansson allocator that wipes, from the locked pool: login answers carry
 * the token.  The block's real size sits in a 16-byte header.
 */
static void *
vault_json_malloc(size_t n)
{
	size_t	*p, cap;

	if (n > SIZE_MAX - 16 || (p = secmem_alloc(n + 16, &cap)) == NULL)
		return NULL;
	p[0] = cap;
	return (uint8_t *)p + 16;
}

static void
vault_json_free(void *ptr)
{
	size_t	*p;

	if (ptr == NULL)
		return;
	p = (size_t *)(void *)((uint8_t *)ptr - 16);
	secmem_free(p, p[0]);
}

void
vault_json_release(void *ptr)
{
	vault_json_free(ptr);
}

void
vault_json_setup(void)
{
	json_set_alloc_funcs(vault_json_malloc, vault_json_free);
}

const struct vault_meta vault_nometa;

static void	vault_login(struct vault *);
static void	vault_send(struct vault *, struct vop *);
static void	vault_pump(struct vault *);

/* Uniform random in [0, n). */
static unsigned
vault_rand(unsigned n)
{
	uint32_t	r = 0;

	if (n == 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0;
	return r % n;
}

/* ms scaled by a random factor in [1 - pct/100, 1 + pct/100]. */
static uint64_t
vault_jitter(uint64_t ms, unsigned pct)
{
	uint64_t	span = ms * pct / 100;

	if (span == 0)
		return ms;
	return ms - span + vault_rand((unsigned)(2 * span + 1));
}

/* Copy the first of Vault's {"errors": [...]} into buf, or the status. */
static void
vault_errors(const struct secbuf *body, long status, char *buf, size_t sz)
{
	json_t		*root, *errs, *e;
	size_t		 i, n = 0;

	buf[0] = '\0';
	root = body != NULL && body->len > 0 ? json_loadb((const char *)
	    body->data, body->len, 0, NULL) : NULL;
	errs = root != NULL ? json_object_get(root, "errors") : NULL;
	if (json_is_array(errs)) {
		json_array_foreach(errs, i, e) {
			if (!json_is_string(e))
				continue;
			n += (size_t)snprintf(buf + n, n < sz ? sz - n : 0,
			    "%s%s", n > 0 ? "; " : "", json_string_value(e));
			if (n >= sz)
				break;
		}
	}
	json_decref(root);
	if (buf[0] == '\0')
		snprintf(buf, sz, "HTTP status %ld", status);
}

/* Map a Vault answer to a call's error (SPEC 4.2: unavailable, says why). */
static int
vault_fail_status(long status, const struct secbuf *body, struct cb_error *err)
{
	char	why[200];

	vault_errors(body, status, why, sizeof(why));
	if (status == 503)
		return cb_error_set(err, CB_EUNAVAILABLE, "Vault is "
		    "unavailable (503): %s", why);
	if (status == 403)
		return cb_error_set(err, CB_EUNAVAILABLE, "Vault denied "
		    "permission: %s", why);
	if (status >= 500)
		return cb_error_set(err, CB_EUNAVAILABLE, "Vault failed "
		    "(%ld): %s", status, why);
	return cb_error_set(err, CB_EUNAVAILABLE, "Vault refused the request "
	    "(%ld): %s", status, why);
}

/* Remember the last Vault error for health. */
static void
vault_note(struct vault *v, const char *msg)
{
	snprintf(v->last_error, sizeof(v->last_error), "%.*s",
	    (int)sizeof(v->last_error) - 1, msg);
}

/* Complete an operation and free it. */
static void
vault_op_end(struct vault *v, struct vop *op, int rc, const char *value,
    const struct vault_meta *meta, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct vwaiter	*w, *next;
	struct vop	*o;

	TAILQ_REMOVE(&v->ops, op, entry);
	v->stats.ops[rc < 0 && -rc < CB_ERR_MAX ? -rc : 0]++;
	/*
	 * Its slot goes to the next waiting operation now, before the
	 * callbacks: they may close v, after which v is not looked at.
	 */
	if (op->slot) {
		op->slot = false;
		v->nslots--;
		vault_pump(v);
	}
	/*
	 * A read that was already under way may answer with what was there
	 * before this write or delete.  Once the change is acknowledged, no
	 * new caller may share such a read.
	 */
	if (op->kind == VOP_WRITE || op->kind == VOP_DESTROY) {
		TAILQ_FOREACH(o, &v->ops, entry)
			if (o->kind == VOP_READ &&
			    strcmp(o->relpath, op->relpath) == 0)
				o->nojoin = true;
		/* Done, failed or refused: what we had may be stale now. */
		vault_cache_drop(v, op->relpath);
	}
	switch (op->kind) {
	case VOP_READ:
		for (w = op->readers; w != NULL; w = next) {
			next = w->next;
			w->fn(w->arg, rc, value, meta, err);
			free(w);
		}
		break;
	case VOP_LIST:
		op->list_done(op->arg, rc, keys, nkeys, err);
		break;
	default:
		op->done(op->arg, rc, err);
		break;
	}
	free(op->relpath);
	free(op->sealed);
	free(op);
}

/* Fail every operation; drop in-flight requests. */
static void
vault_fail_all(struct vault *v, int code, const char *msg)
{
	struct cb_error	 err;
	struct vop	*op;

	cb_error_set(&err, code, "%s", msg);
	while ((op = TAILQ_FIRST(&v->ops)) != NULL) {
		if (op->req != NULL) {
			http_cancel(op->req);
			op->req = NULL;
		}
		vault_op_end(v, op, -code, NULL, &vault_nometa, NULL, 0, &err);
	}
}

/* Whether a token is there to send operations with. */
static bool
vault_ready(const struct vault *v)
{
	return v->state == VS_READY && v->token.len > 0 &&
	    uv_now(v->loop) < v->expiry;
}

/*
 * Send waiting operations, oldest first, while slots are free (an
 * operation that already holds one, waiting for a new login, always
 * goes).  The search starts again from the front after every send: a
 * send that fails ends its operation, whose callbacks may end or add
 * others.  Not re-entered: an inner call leaves the work to this loop.
 */
static void
vault_pump(struct vault *v)
{
	struct vop	*op;

	if (v->pumping || v->resetting || v->closing || !vault_ready(v))
		return;
	v->pumping = true;
	for (;;) {
		TAILQ_FOREACH(op, &v->ops, entry)
			if (!op->inflight && (op->slot || v->max_pending == 0 ||
			    v->nslots < v->max_pending))
				break;
		if (op == NULL || !vault_ready(v))
			break;
		if (!op->slot) {
			op->slot = true;
			v->nslots++;
		}
		vault_send(v, op);
	}
	v->pumping = false;
}

/* Send every operation that waited for a login, as slots allow. */
static void
vault_flush(struct vault *v)
{
	vault_pump(v);
}

/* Forget the token. */
static void
vault_drop_token(struct vault *v)
{
	secbuf_free(&v->token);
	v->lease = 0;
	v->expiry = 0;
	v->renewable = false;
}

/* Timer: renew, log in again, or end a backoff. */
static void
vault_timer_fired(uv_timer_t *t)
{
	struct vault	*v = t->data;

	if (!v->configured || !v->conf.enabled)
		return;
	if (v->state == VS_READY && v->renewable && v->token.len > 0)
		vault_login(v);		/* vault_login renews when it can */
	else if (v->state == VS_READY || v->state == VS_BACKOFF ||
	    v->state == VS_IDLE)
		vault_login(v);
}

/* Arm the timer for ms from now. */
static void
vault_timer_arm(struct vault *v, uint64_t ms)
{
	uv_timer_start(v->timer, vault_timer_fired, ms, 0);
}

/* Build "{url}/v1/{path}" into a new string. */
static char *
vault_url(const struct vault *v, const char *path)
{
	char	*u = NULL;
	size_t	 n = strlen(v->conf.url);

	while (n > 0 && v->conf.url[n - 1] == '/')
		n--;
	if (asprintf(&u, "%.*s/v1/%s", (int)n, v->conf.url, path) < 0)
		return NULL;
	return u;
}

/* Fill the common request options: token and namespace headers. */
static void
vault_opts(const struct vault *v, struct http_opts *o, const char *method,
    const char *url, char *tokhdr, size_t tokhdrsz, char *nshdr, size_t nshdrsz,
    bool with_token)
{
	memset(o, 0, sizeof(*o));
	o->method = method;
	o->url = url;
	o->ca_file = v->conf.ca_file;
	o->timeout_ms = v->conf.timeout_ms ? v->conf.timeout_ms :
	    VAULT_TIMEOUT_DEFAULT;
	if (with_token && v->token.len > 0) {
		snprintf(tokhdr, tokhdrsz, "X-Vault-Token: %s",
		    (const char *)v->token.data);
		o->headers[o->nheaders++] = tokhdr;
	}
	if (v->conf.namespace != NULL && *v->conf.namespace != '\0') {
		snprintf(nshdr, nshdrsz, "X-Vault-Namespace: %s",
		    v->conf.namespace);
		o->headers[o->nheaders++] = nshdr;
	}
}

/* Parse the "auth" block of a login or renew answer. */
static int
vault_parse_auth(const struct secbuf *body, struct vault *v, bool login,
    struct cb_error *err)
{
	json_t		*root, *auth, *tok, *lease, *ren;
	const char	*t;
	int		 rc = 0;

	root = json_loadb((const char *)body->data, body->len, 0, NULL);
	auth = root != NULL ? json_object_get(root, "auth") : NULL;
	tok = auth != NULL ? json_object_get(auth, "client_token") : NULL;
	lease = auth != NULL ? json_object_get(auth, "lease_duration") : NULL;
	ren = auth != NULL ? json_object_get(auth, "renewable") : NULL;
	if (!json_is_object(auth) || !json_is_integer(lease) ||
	    json_integer_value(lease) < 0 || (login && !json_is_string(tok))) {
		rc = cb_error_set(err, CB_EUNAVAILABLE,
		    "malformed answer from Vault: no auth block");
		goto done;
	}
	if (login) {
		t = json_string_value(tok);
		if (*t == '\0' || strlen(t) > 4096 ||
		    strpbrk(t, "\r\n") != NULL) {
			rc = cb_error_set(err, CB_EUNAVAILABLE,
			    "malformed answer from Vault: bad client_token");
			goto done;
		}
		secbuf_free(&v->token);
		if (secbuf_append(&v->token, t, strlen(t) + 1) != 0) {
			rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		v->token.len--;		/* keep the NUL out of len */
		v->token_gen++;
	}
	v->lease = json_integer_value(lease);
	v->renewable = json_is_true(ren);
	v->expiry = uv_now(v->loop) + (uint64_t)v->lease * 1000;
done:
	json_decref(root);
	return rc;
}

/* Login or renewal answered. */
static void
vault_auth_done(void *arg, long status, const struct secbuf *body,
    const struct cb_error *terr)
{
	struct vault	*v = arg;
	struct cb_error	 err;
	bool		 renew = v->token.len > 0;
	int64_t		 before = v->lease;
	char		 why[200];
	uint64_t	 at;

	v->auth_req = NULL;
	cb_error_clear(&err);
	if (terr->code != 0)
		cb_error_set(&err, terr->code, "%s", terr->msg);
	else if (status != 200) {
		vault_errors(body, status, why, sizeof(why));
		cb_error_set(&err, CB_EUNAVAILABLE, "%s (%ld): %s",
		    renew ? "token renewal failed" : "login failed", status,
		    why);
	} else
		vault_parse_auth(body, v, !renew, &err);

	if (err.code != 0 && renew) {
		/* A failed renewal is followed by a fresh login at once. */
		v->stats.renewal_failures++;
		vault_note(v, err.msg);
		vault_drop_token(v);
		v->state = VS_IDLE;
		vault_login(v);
		return;
	}
	if (err.code != 0) {
		char msg[CB_ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "Vault %.400s", err.msg);
		vault_note(v, msg);
		v->stats.login_failures++;
		v->state = VS_BACKOFF;
		at = vault_jitter(v->backoff, 25);
		v->backoff = v->backoff * 2 > VAULT_BACKOFF_MAX ?
		    VAULT_BACKOFF_MAX : v->backoff * 2;
		vault_timer_arm(v, at);
		if (v->login_hook != NULL)
			v->login_hook(v->login_hook_arg, false, msg);
		vault_fail_all(v, CB_EUNAVAILABLE, msg);
		return;
	}
	if (renew)
		v->renewals++;
	v->state = VS_READY;
	v->backoff = VAULT_BACKOFF_MIN;
	v->last_error[0] = '\0';
	/*
	 * Renew at about two thirds of the lease.  When the lease did not
	 * grow back on renewal, the max TTL caps it: log in again instead,
	 * before it runs out.  A token that is not renewable is replaced by a
	 * new login the same way.
	 */
	at = vault_jitter((uint64_t)v->lease * 1000 * 2 / 3, 10);
	if (renew && v->lease < before)
		v->renewable = false;
	if (v->lease > 0)
		vault_timer_arm(v, at);
	if (v->login_hook != NULL && !renew)
		v->login_hook(v->login_hook_arg, true, "logged in");
	vault_flush(v);
}

/*
 * Log in (or renew when the token is renewable and still valid).  Waiting
 * operations are sent when it succeeds.
 */
static void
vault_login(struct vault *v)
{
	struct http_opts o;
	struct secbuf	 body = SECBUF_INIT;
	struct cb_error	 err;
	char		*url = NULL, tokhdr[4200], nshdr[300];
	bool		 renew;

	if (v->auth_req != NULL || v->closing)
		return;
	renew = v->state == VS_READY && v->renewable && v->token.len > 0 &&
	    uv_now(v->loop) < v->expiry;
	if (!renew) {
		vault_drop_token(v);
		v->logins++;
		url = vault_url(v, "auth/approle/login");
		/* role_id and secret_id are checked: no JSON escaping needed. */
		if (secbuf_append(&body, "{\"role_id\":\"", 12) != 0 ||
		    secbuf_append(&body, secbuf_str(&v->conf.role_id),
		    strlen(secbuf_str(&v->conf.role_id))) != 0 ||
		    secbuf_append(&body, "\",\"secret_id\":\"", 15) != 0 ||
		    secbuf_append(&body, secbuf_str(&v->conf.secret_id),
		    strlen(secbuf_str(&v->conf.secret_id))) != 0 ||
		    secbuf_append(&body, "\"}", 2) != 0) {
			free(url);
			url = NULL;
		}
	} else
		url = vault_url(v, "auth/token/renew-self");
	v->state = renew ? VS_READY : VS_LOGIN;
	if (url == NULL) {
		secbuf_free(&body);
		cb_error_set(&err, CB_EINTERNAL, "out of memory");
		vault_auth_done(v, 0, NULL, &err);
		return;
	}
	vault_opts(v, &o, "POST", url, tokhdr, sizeof(tokhdr), nshdr,
	    sizeof(nshdr), renew);
	if (!renew) {
		o.body = body.data;
		o.body_len = body.len;
	} else {
		o.body = "{}";
		o.body_len = 2;
	}
	if (http_start(v->http, &o, vault_auth_done, v, &v->auth_req,
	    &err) != 0) {
		v->auth_req = NULL;
		cb_wipe(tokhdr, sizeof(tokhdr));
		secbuf_free(&body);
		free(url);
		vault_auth_done(v, 0, NULL, &err);
		return;
	}
	cb_wipe(tokhdr, sizeof(tokhdr));
	secbuf_free(&body);
	free(url);
}

/*
 * The "/data" that ends the mount in "mount/data[/prefix]": the first
 * segment that is exactly "data", after at least one segment (so neither
 * "team/database/data" nor "data/..." fools it).
 */
static const char *
vault_data_segment(const char *p)
{
	const char	*d;

	for (d = strchr(p, '/'); d != NULL; d = strchr(d + 1, '/'))
		if (strncmp(d, "/data", 5) == 0 && (d[5] == '/' ||
		    d[5] == '\0'))
			return d;
	return NULL;
}

/* Split "mount/data/prefix" into the data and metadata URL paths of rel. */
static char *
vault_kv_path(const struct vault *v, const char *rel, bool metadata)
{
	const char	*p = v->conf.path, *d = vault_data_segment(p);
	char		*out = NULL;

	if (d == NULL)
		return NULL;
	if (asprintf(&out, "%.*s/%s%s/%s", (int)(d - p), p,
	    metadata ? "metadata" : "data", d + 5, rel) < 0)
		return NULL;
	/* "mount/data/" + "/" would double the slash; squeeze it. */
	for (char *q = out; (q = strstr(q, "//")) != NULL;)
		memmove(q, q + 1, strlen(q));
	return out;
}

/* Parse a KV v2 read answer: data.data.value and metadata.created_time. */
static int
vault_parse_read(const struct secbuf *body, char **value,
    struct vault_meta *m, struct cb_error *err)
{
	json_t		*root, *data, *inner, *val, *meta, *ct, *dt;
	int		 rc = 0;

	*value = NULL;
	memset(m, 0, sizeof(*m));
	root = json_loadb((const char *)body->data, body->len, 0, NULL);
	data = root != NULL ? json_object_get(root, "data") : NULL;
	if (!json_is_object(data)) {
		rc = cb_error_set(err, CB_EUNAVAILABLE,
		    "malformed answer from Vault: no data");
		goto done;
	}
	inner = json_object_get(data, "data");
	meta = json_object_get(data, "metadata");
	dt = json_is_object(meta) ? json_object_get(meta, "deletion_time") :
	    NULL;
	/* A soft-deleted or destroyed latest version means "not set". */
	if (json_is_null(inner) || (json_is_string(dt) &&
	    *json_string_value(dt) != '\0') ||
	    (json_is_object(meta) &&
	    json_is_true(json_object_get(meta, "destroyed")))) {
		rc = -CB_ENOTFOUND;
		goto done;
	}
	val = json_is_object(inner) ? json_object_get(inner, "value") : NULL;
	if (!json_is_string(val)) {
		rc = cb_error_set(err, CB_EUNAVAILABLE, "malformed secret in "
		    "Vault: no string \"value\"");
		goto done;
	}
	if ((*value = strdup(json_string_value(val))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (json_is_object(meta) &&
	    json_is_integer(json_object_get(meta, "version")))
		m->version = json_integer_value(json_object_get(meta,
		    "version"));
	ct = json_is_object(meta) ? json_object_get(meta, "created_time") :
	    NULL;
	if (json_is_string(ct)) {
		struct tm	tm;
		const char	*s = json_string_value(ct);

		memset(&tm, 0, sizeof(tm));
		if (strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) != NULL)
			m->created = (int64_t)timegm(&tm);
	}
done:
	json_decref(root);
	return rc;
}

/* Parse a LIST answer: data.keys. */
static int
vault_parse_list(const struct secbuf *body, char ***keys, size_t *n,
    struct cb_error *err)
{
	json_t		*root, *data, *k, *e;
	size_t		 i;
	int		 rc = 0;

	*keys = NULL;
	*n = 0;
	root = json_loadb((const char *)body->data, body->len, 0, NULL);
	data = root != NULL ? json_object_get(root, "data") : NULL;
	k = json_is_object(data) ? json_object_get(data, "keys") : NULL;
	if (!json_is_array(k)) {
		rc = cb_error_set(err, CB_EUNAVAILABLE,
		    "malformed answer from Vault: no data.keys");
		goto done;
	}
	if ((*keys = calloc(json_array_size(k) + 1, sizeof(char *))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	json_array_foreach(k, i, e) {
		if (!json_is_string(e))
			continue;
		if (((*keys)[*n] = strdup(json_string_value(e))) == NULL) {
			rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		(*n)++;
	}
done:
	json_decref(root);
	return rc;
}

/* An operation's request was answered. */
static void
vault_op_answered(void *arg, long status, const struct secbuf *body,
    const struct cb_error *terr)
{
	struct vop	*op = arg;
	struct vault	*v = op->v;
	struct cb_error	 err;
	char		*value = NULL, **keys = NULL;
	size_t		 nkeys = 0, i;
	struct vault_meta meta;
	int		 rc = 0;

	op->req = NULL;
	op->inflight = false;
	cb_error_clear(&err);
	memset(&meta, 0, sizeof(meta));
	if (terr->code != 0) {
		rc = cb_error_set(&err, terr->code, "Vault unreachable: %s",
		    terr->msg);
		vault_note(v, err.msg);
		goto end;
	}
	/*
	 * 403 "invalid token" with a token we believed valid: it expired or
	 * was revoked.  Log in again and retry this call once.
	 */
	if (status == 403 && !op->retried) {
		char why[200];

		vault_errors(body, status, why, sizeof(why));
		/*
		 * Only "invalid token" means the token is gone; a bare
		 * "permission denied" is a policy refusal, and logging in
		 * again for each of those would turn refusals into a login
		 * storm.
		 */
		if (strstr(why, "invalid token") != NULL) {
			op->retried = true;
			/*
			 * Sent with a token that a login has since replaced:
			 * just send it again with the new one.
			 */
			if (op->token_gen != v->token_gen &&
			    v->state == VS_READY && v->token.len > 0) {
				vault_send(v, op);
				return;
			}
			vault_drop_token(v);
			v->state = VS_IDLE;
			/* Out of the queue, so a failed login cannot free it. */
			TAILQ_REMOVE(&v->ops, op, entry);
			vault_login(v);
			TAILQ_INSERT_TAIL(&v->ops, op, entry);
			if (v->auth_req != NULL)
				return;		/* sent again by vault_flush */
			rc = cb_error_set(&err, CB_EUNAVAILABLE, "%s",
			    v->last_error[0] ? v->last_error :
			    "Vault login failed");
			goto end;
		}
	}
	if (status == 404) {
		if (op->kind == VOP_READ)
			rc = -CB_ENOTFOUND;
		else if (op->kind == VOP_LIST)
			rc = 0;		/* an empty folder does not exist */
		else if (op->kind == VOP_DESTROY)
			rc = 0;
		else
			rc = vault_fail_status(status, body, &err);
		goto end;
	}
	if (status == 400 && op->kind == VOP_WRITE && op->cas >= 0) {
		char why[200];

		vault_errors(body, status, why, sizeof(why));
		if (strstr(why, "check-and-set") != NULL) {
			rc = cb_error_set(&err, CB_ECONFLICT, "the secret "
			    "changed meanwhile: %s", why);
			goto end;
		}
	}
	if (status != 200 && status != 204) {
		rc = vault_fail_status(status, body, &err);
		if (op->kind == VOP_WRITE && !op->meta_done) {
			char why[CB_ERRMSG_MAX];

			memcpy(why, err.msg, sizeof(why));
			cb_error_set(&err, err.code, "cannot limit the secret "
			    "to one version (POST metadata, max_versions; the "
			    "broker's policy needs create and update on the "
			    "metadata path): %.300s", why);
		}
		vault_note(v, err.msg);
		goto end;
	}
	/* The first step of a write is done: now the value itself. */
	if (op->kind == VOP_WRITE && !op->meta_done) {
		op->meta_done = true;
		op->retried = false;
		vault_send(v, op);
		return;
	}
	if (op->kind == VOP_READ)
		rc = vault_parse_read(body, &value, &meta, &err);
	else if (op->kind == VOP_LIST)
		rc = vault_parse_list(body, &keys, &nkeys, &err);
	if (rc != 0 && rc != -CB_ENOTFOUND)
		vault_note(v, err.msg);
end:
	/* Before the callbacks, which may change the path or close v. */
	if (op->kind == VOP_READ)
		vault_cache_put(v, op, rc, value, &meta);
	vault_op_end(v, op, rc, value, &meta, keys, nkeys, &err);
	free(value);
	for (i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
}

/* Send one operation with the current token. */
static void
vault_send(struct vault *v, struct vop *op)
{
	static const char *const methods[] = {
		[VOP_READ] = "GET", [VOP_WRITE] = "POST",
		[VOP_DESTROY] = "DELETE", [VOP_LIST] = "LIST"
	};
	struct http_opts o;
	struct cb_error	 err;
	char		*path, *url = NULL, *body = NULL, tokhdr[4200], nshdr[300];
	int		 rc = -1;

	path = vault_kv_path(v, op->relpath, op->kind == VOP_DESTROY ||
	    op->kind == VOP_LIST || (op->kind == VOP_WRITE && !op->meta_done));
	if (path != NULL)
		url = vault_url(v, path);
	if (url == NULL) {
		cb_error_set(&err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	vault_opts(v, &o, methods[op->kind], url, tokhdr, sizeof(tokhdr), nshdr,
	    sizeof(nshdr), true);
	if (op->kind == VOP_WRITE) {
		json_t *doc;

		/*
		 * First keep one version only: a replaced value, and after a
		 * key rotation the text sealed with the retired key, must not
		 * stay readable in the secret's version history.  Then the
		 * value, with check-and-set when asked.
		 */
		if (!op->meta_done)
			doc = json_pack("{s:i}", "max_versions", 1);
		else if (op->cas >= 0)
			doc = json_pack("{s:{s:I}, s:{s:s}}", "options", "cas",
			    (json_int_t)op->cas, "data", "value", op->sealed);
		else
			doc = json_pack("{s:{s:s}}", "data", "value",
			    op->sealed);
		/* jansson's allocator: vault_json_free() below frees it. */
		body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
		json_decref(doc);
		if (body == NULL) {
			cb_error_set(&err, CB_EINTERNAL, "out of memory");
			goto fail;
		}
		o.body = body;
		o.body_len = strlen(body);
	}
	op->gen = v->gen;
	op->token_gen = v->token_gen;
	rc = http_start(v->http, &o, vault_op_answered, op, &op->req, &err);
	if (rc == 0)
		op->inflight = true;
fail:
	cb_wipe(tokhdr, sizeof(tokhdr));
	vault_json_free(body);
	free(url);
	free(path);
	if (rc != 0) {
		op->req = NULL;
		vault_op_end(v, op, -CB_EUNAVAILABLE, NULL, &vault_nometa, NULL, 0,
		    &err);
	}
}

/* Free an operation that never got queued. */
static void
vault_op_free(struct vop *op)
{
	struct vwaiter	*w, *next;

	for (w = op->readers; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	free(op->relpath);
	free(op->sealed);
	free(op);
}

/* Queue an operation; sends it now when logged in. */
static int
vault_submit(struct vault *v, struct vop *op, struct cb_error *err)
{
	if (!vault_usable(v, err)) {
		vault_op_free(op);
		return -err->code;
	}
	if (v->closing) {
		vault_op_free(op);
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the broker is shutting down");
	}
	if (v->state == VS_BACKOFF) {
		cb_error_set(err, CB_EUNAVAILABLE, "%s; retrying later",
		    v->last_error[0] ? v->last_error : "Vault login failed");
		vault_op_free(op);
		return -CB_EUNAVAILABLE;
	}
	op->v = v;
	op->cache_epoch = v->cache_epoch;
	TAILQ_INSERT_TAIL(&v->ops, op, entry);
	if (vault_ready(v)) {
		/* Behind those already waiting for a slot. */
		vault_pump(v);
		return 0;
	}
	/* No valid token: the call waits for a login. */
	if (v->state == VS_READY)
		v->state = VS_IDLE;
	vault_login(v);
	return 0;
}

/* A new operation for relpath. */
static struct vop *
vault_op_new(int kind, const char *relpath, struct cb_error *err)
{
	struct vop	*op;

	if ((op = calloc(1, sizeof(*op))) == NULL ||
	    (op->relpath = strdup(relpath)) == NULL) {
		free(op);
		cb_error_set(err, CB_EINTERNAL, "out of memory");
		return NULL;
	}
	op->kind = kind;
	op->cas = -1;
	return op;
}

int
vault_read(struct vault *v, const char *relpath, vault_read_fn done,
    void *arg, struct cb_error *err)
{
	struct vop	*op;
	struct vwaiter	*w;
	struct vcache	*e;
	bool		 usable = vault_usable(v, NULL) &&
			    v->state != VS_BACKOFF && !v->closing;

	/*
	 * A recent answer, when the cache is on.  Not while logins fail:
	 * then calls fail at once, cached or not.
	 */
	if (usable && v->conf.cache_seconds > 0) {
		if ((e = vault_cache_find(v, relpath)) != NULL) {
			v->stats.cache_hits++;
			return vault_hit(v, e, done, arg, err);
		}
		v->stats.cache_misses++;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	w->fn = done;
	w->arg = arg;
	/* Identical reads in flight share one request. */
	if (usable)
	    TAILQ_FOREACH(op, &v->ops, entry)
		if (op->kind == VOP_READ && !op->nojoin &&
		    strcmp(op->relpath, relpath) == 0) {
			w->next = op->readers;
			op->readers = w;
			v->stats.joined++;
			return 0;
		}
	if ((op = vault_op_new(VOP_READ, relpath, err)) == NULL) {
		free(w);
		return -CB_EINTERNAL;
	}
	op->readers = w;
	return vault_submit(v, op, err);
}

int
vault_write(struct vault *v, const char *relpath, const char *sealed,
    vault_done_fn done, void *arg, struct cb_error *err)
{
	return vault_write_cas(v, relpath, sealed, -1, done, arg, err);
}

int
vault_write_cas(struct vault *v, const char *relpath, const char *sealed,
    int64_t cas, vault_done_fn done, void *arg, struct cb_error *err)
{
	struct vop	*op;

	/* Nobody may read the old value from the cache from now on. */
	if (v != NULL)
		vault_cache_drop(v, relpath);
	if ((op = vault_op_new(VOP_WRITE, relpath, err)) == NULL)
		return -CB_EINTERNAL;
	if ((op->sealed = strdup(sealed)) == NULL) {
		free(op->relpath);
		free(op);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	op->cas = cas;		/* -1: no check-and-set */
	op->done = done;
	op->arg = arg;
	return vault_submit(v, op, err);
}

int
vault_destroy(struct vault *v, const char *relpath, vault_done_fn done,
    void *arg, struct cb_error *err)
{
	struct vop	*op;

	if (v != NULL)
		vault_cache_drop(v, relpath);
	if ((op = vault_op_new(VOP_DESTROY, relpath, err)) == NULL)
		return -CB_EINTERNAL;
	op->done = done;
	op->arg = arg;
	return vault_submit(v, op, err);
}

int
vault_list(struct vault *v, const char *relpath, vault_list_fn done,
    void *arg, struct cb_error *err)
{
	struct vop	*op;

	if (v != NULL)
		vault_cache_drop_folder(v, relpath);
	if ((op = vault_op_new(VOP_LIST, relpath, err)) == NULL)
		return -CB_EINTERNAL;
	op->list_done = done;
	op->arg = arg;
	return vault_submit(v, op, err);
}

/* Segments of [A-Za-z0-9_.-] separated by single slashes; no "." or "..". */
static bool
vault_path_ok(const char *p)
{
	const char	*seg = p;
	size_t		 n;

	for (;; p++) {
		if (*p == '/' || *p == '\0') {
			n = (size_t)(p - seg);
			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return false;
			if (*p == '\0')
				return true;
			seg = p + 1;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
		    *p == '.'))
			return false;
	}
}

/* role_id / secret_id: what Vault issues (uuids), nothing to escape. */
static bool
vault_id_ok(const char *s)
{
	size_t	n = strlen(s), i;

	if (n == 0 || n > VAULT_ID_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

int
vault_conf_check(const struct vault_conf *c, struct cb_error *err)
{
	const char	*d;

	if (c->url == NULL || (strncmp(c->url, "https://", 8) != 0 &&
	    strncmp(c->url, "http://", 7) != 0) ||
	    strpbrk(c->url, " \t\r\n?#@") != NULL || strlen(c->url) > 512)
		return cb_error_set(err, CB_EBADREQ, "url must be an http:// "
		    "or https:// address without userinfo, query or fragment");
	if (c->path == NULL || !vault_path_ok(c->path))
		return cb_error_set(err, CB_EBADREQ, "path must be segments "
		    "of [A-Za-z0-9_.-] separated by '/', without '.' or '..'");
	d = vault_data_segment(c->path);
	if (d == NULL)
		return cb_error_set(err, CB_EBADREQ, "path '%s' has no /data/ "
		    "segment: KV v2 paths look like mount/data/prefix "
		    "(for example secrets/data/ddp)", c->path);
	if (secbuf_str(&c->role_id) != NULL &&
	    !vault_id_ok(secbuf_str(&c->role_id)))
		return cb_error_set(err, CB_EBADREQ, "role_id must be 1 to %d "
		    "characters of [A-Za-z0-9_.-]", VAULT_ID_MAX);
	if (secbuf_str(&c->secret_id) != NULL &&
	    !vault_id_ok(secbuf_str(&c->secret_id)))
		return cb_error_set(err, CB_EBADREQ, "secret_id must be 1 to "
		    "%d characters of [A-Za-z0-9_.-]", VAULT_ID_MAX);
	if (c->namespace != NULL && *c->namespace != '\0' &&
	    !vault_path_ok(c->namespace))
		return cb_error_set(err, CB_EBADREQ, "namespace must be "
		    "segments of [A-Za-z0-9_.-] separated by '/'");
	if (c->ca_file != NULL && *c->ca_file != '/')
		return cb_error_set(err, CB_EBADREQ,
		    "ca_file must be an absolute path");
	if (c->timeout_ms > CB_VAULT_TIMEOUT_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "timeout_ms must be at most %d", CB_VAULT_TIMEOUT_MAX);
	if (c->cache_seconds > CB_VAULT_CACHE_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "cache_seconds must be at most %d", CB_VAULT_CACHE_MAX);
	if (c->enabled && (secbuf_str(&c->role_id) == NULL ||
	    secbuf_str(&c->secret_id) == NULL))
		return cb_error_set(err, CB_EBADREQ,
		    "role_id and secret_id are needed to enable Vault");
	return 0;
}

/* strdup that keeps NULL. */
static int
vault_dup(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) == NULL ? -1 : 0;
}

/* Copy an id: the same string, or none. */
static int
vault_id_dup(struct secbuf *dst, const struct secbuf *src)
{
	const char	*s = secbuf_str(src);

	return secbuf_set_str(dst, s, s != NULL ? strlen(s) : 0);
}

int
vault_conf_copy(struct vault_conf *dst, const struct vault_conf *c)
{
	memset(dst, 0, sizeof(*dst));
	dst->enabled = c->enabled;
	dst->timeout_ms = c->timeout_ms;
	dst->cache_seconds = c->cache_seconds;
	if (vault_dup(&dst->url, c->url) != 0 ||
	    vault_id_dup(&dst->role_id, &c->role_id) != 0 ||
	    vault_id_dup(&dst->secret_id, &c->secret_id) != 0 ||
	    vault_dup(&dst->path, c->path) != 0 ||
	    vault_dup(&dst->ca_file, c->ca_file) != 0 ||
	    vault_dup(&dst->namespace, c->namespace) != 0) {
		vault_conf_free(dst);
		return -CB_EINTERNAL;
	}
	return 0;
}

/* Two optional strings (or ids) are the same. */
static bool
vault_str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strlen(a) == strlen(b) && CRYPTO_memcmp(a, b, strlen(a)) == 0;
}

bool
vault_conf_is(const struct vault *v, const struct vault_conf *c)
{
	const struct vault_conf	*o = &v->conf;

	return v->configured && o->enabled == c->enabled &&
	    o->timeout_ms == c->timeout_ms &&
	    o->cache_seconds == c->cache_seconds &&
	    vault_str_same(o->url, c->url) &&
	    vault_str_same(o->path, c->path) &&
	    vault_str_same(o->ca_file, c->ca_file) &&
	    vault_str_same(o->namespace, c->namespace) &&
	    vault_str_same(secbuf_str(&o->role_id), secbuf_str(&c->role_id)) &&
	    vault_str_same(secbuf_str(&o->secret_id),
	    secbuf_str(&c->secret_id));
}

void
vault_conf_free(struct vault_conf *c)
{
	free(c->url);
	secbuf_free(&c->role_id);
	secbuf_free(&c->secret_id);
	free(c->path);
	free(c->ca_file);
	free(c->namespace);
	memset(c, 0, sizeof(*c));
}

int
vault_init(uv_loop_t *loop, struct http *http, struct vault **out,
    struct cb_error *err)
{
	struct vault	*v;
	json_malloc_t	 jm;
	json_free_t	 jf;

	json_get_alloc_funcs(&jm, &jf);
	if (jm != vault_json_malloc || jf != vault_json_free)
		return cb_error_set(err, CB_EINTERNAL, "the wiping JSON "
		    "allocator is not installed (vault_json_setup)");
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->timer = calloc(1, sizeof(*v->timer))) == NULL ||
	    (v->hit_timer = calloc(1, sizeof(*v->hit_timer))) == NULL) {
		if (v != NULL)
			free(v->timer);
		free(v);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	v->loop = loop;
	v->http = http;
	v->backoff = VAULT_BACKOFF_MIN;
	v->max_pending = VAULT_MAX_PENDING_DEFAULT;
	TAILQ_INIT(&v->ops);
	TAILQ_INIT(&v->cache_order);
	TAILQ_INIT(&v->hits);
	/* Without randomness the hash is merely unkeyed; it still works. */
	RAND_bytes(v->cache_key, sizeof(v->cache_key));
	uv_timer_init(loop, v->timer);
	v->timer->data = v;
	uv_timer_init(loop, v->hit_timer);
	v->hit_timer->data = v;
	v->nhandles = 2;
	*out = v;
	return 0;
}

void
vault_reset(struct vault *v, int code, const char *msg)
{
	v->gen++;
	uv_timer_stop(v->timer);
	if (v->auth_req != NULL) {
		http_cancel(v->auth_req);
		v->auth_req = NULL;
	}
	/* First, so that no callback below can be answered from it. */
	vault_cache_flush(v);
	/*
	 * Slots freed here must not send what is about to fail; and what a
	 * callback submits meanwhile waits unsent, so it fails here too,
	 * rather than wait for a login that may never come.
	 */
	v->resetting = true;
	while (!TAILQ_EMPTY(&v->ops) || !TAILQ_EMPTY(&v->hits)) {
		vault_fail_all(v, code, msg);
		vault_hits_fail(v, code, msg);
	}
	v->resetting = false;
	vault_drop_token(v);
	v->state = VS_IDLE;
	v->backoff = VAULT_BACKOFF_MIN;
}

/* Hand src's settings to dst (empty); src is left empty. */
static void
vault_conf_move(struct vault_conf *dst, struct vault_conf *src)
{
	dst->enabled = src->enabled;
	dst->timeout_ms = src->timeout_ms;
	dst->cache_seconds = src->cache_seconds;
	dst->url = src->url;
	dst->path = src->path;
	dst->ca_file = src->ca_file;
	dst->namespace = src->namespace;
	secbuf_move(&dst->role_id, &src->role_id);
	secbuf_move(&dst->secret_id, &src->secret_id);
	src->url = src->path = src->ca_file = src->namespace = NULL;
}

int
vault_configure(struct vault *v, const struct vault_conf *c,
    struct cb_error *err)
{
	struct vault_conf	nc;

	if (c != NULL && vault_conf_check(c, err) != 0)
		return -CB_EBADREQ;
	if (c != NULL && vault_conf_copy(&nc, c) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	vault_reset(v, CB_EUNAVAILABLE, "Vault settings changed");
	vault_conf_free(&v->conf);
	v->configured = c != NULL;
	v->last_error[0] = '\0';
	if (c == NULL)
		return 0;
	vault_conf_move(&v->conf, &nc);
	if (v->conf.enabled)
		vault_login(v);
	return 0;
}

void
vault_set_limits(struct vault *v, unsigned max_pending)
{
	v->max_pending = max_pending;
	/* A raised cap lets waiting operations go now. */
	vault_pump(v);
}

bool
vault_usable(const struct vault *v, struct cb_error *err)
{
	if (v == NULL || !v->configured) {
		cb_error_set(err, CB_ENOTCONFIGURED,
		    "Vault is not configured");
		return false;
	}
	if (!v->conf.enabled) {
		cb_error_set(err, CB_ENOTCONFIGURED, "Vault is disabled");
		return false;
	}
	return true;
}

void
vault_get_status(const struct vault *v, struct vault_status *st)
{
	uint64_t	now;

	memset(st, 0, sizeof(*st));
	if (v == NULL)
		return;
	now = uv_now(v->loop);
	st->configured = v->configured;
	st->enabled = v->configured && v->conf.enabled;
	st->authenticated = v->state == VS_READY && v->token.len > 0 &&
	    now < v->expiry;
	/* Rounded up: a token with 0.4 s left is still a valid token. */
	st->token_ttl = st->authenticated ?
	    (int64_t)((v->expiry - now + 999) / 1000) : 0;
	st->logins = v->logins;
	st->renewals = v->renewals;
	snprintf(st->last_error, sizeof(st->last_error), "%s", v->last_error);
}

void
vault_get_stats(const struct vault *v, struct vault_stats *st)
{
	const struct vop	*op;

	memset(st, 0, sizeof(*st));
	if (v == NULL)
		return;
	*st = v->stats;
	st->logins = v->logins;
	st->renewals = v->renewals;
	st->cache_entries = v->ncache;
	/* Bounded by the operations queued; stats is not on a hot path. */
	TAILQ_FOREACH(op, &v->ops, entry) {
		if (op->inflight)
			st->in_flight++;
		else
			st->waiting++;
	}
}

/*
 * The timer handle is freed once closed, and v with the last one: never
 * synchronously, since vault_close() can be reached from a callback run
 * by a loop of this very client (failing calls, sending waiting ones),
 * which looks at v again when the callback returns.
 */
static void
vault_timer_closed(uv_handle_t *h)
{
	struct vault	*v = h->data;

	free(h);
	if (--v->nhandles == 0)
		free(v);
}

void
vault_close(struct vault *v)
{
	if (v == NULL)
		return;
	/* Before the callbacks below: none may start anything on v. */
	v->closing = true;
	vault_reset(v, CB_EUNAVAILABLE, "the broker is shutting down");
	uv_close((uv_handle_t *)v->timer, vault_timer_closed);
	uv_close((uv_handle_t *)v->hit_timer, vault_timer_closed);
	vault_conf_free(&v->conf);
	v->configured = false;
	secbuf_free(&v->token);
}
