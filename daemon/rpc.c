/*
 * rpc: where every request enters.  rpc_dispatch() checks the envelope,
 * finds the method in the shared table (proto/methods.def), checks the
 * caller's permission, runs the handler, and queues the reply.  Handlers
 * only ever see a well-formed request from a caller who may make it.
 *
 * Replies are packed into a secbuf from the start, so a reply that carries
 * a secret is wiped after it is written like any other.
 *
 * A call owns its request: the bytes of the message (a secbuf, since a
 * cred.set request carries a plaintext value) and the msgpack zone of the
 * object unpacked from them.  A handler that waits (on Vault) keeps using
 * its parsed request until it finishes; the bytes are wiped when the call
 * ends, and at once for a message that makes no call.
 *
 * Answers go through the caller's sink (struct rpc_sink: conn.c's
 * connection, or a test's), never to the server directly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "keep.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"

/* Ended calls are kept for the next ones (keep.h). */
static struct keep	rpc_calls_kept;

/* At shutdown: give the kept calls back. */
void
rpc_release_kept(void)
{
	keep_release(&rpc_calls_kept, sizeof(struct rpc_call));
}

static const rpc_handler rpc_handlers[CB_M_COUNT] = {
	[CB_M_HELLO] =		rpc_hello,
	[CB_M_HEALTH] =		rpc_health,
	[CB_M_STATS] =		rpc_stats,
	[CB_M_TYPE_CREATE] =	rpc_type_create,
	[CB_M_TYPE_GET] =	rpc_type_get,
	[CB_M_TYPE_LIST] =	rpc_type_list,
	[CB_M_TYPE_UPDATE] =	rpc_type_update,
	[CB_M_TYPE_DELETE] =	rpc_type_delete,
	[CB_M_TYPE_CLEAR] =	rpc_type_clear,
	[CB_M_CRED_SET] =	rpc_cred_set,
	[CB_M_CRED_IMPORT] =	rpc_cred_import,
	[CB_M_CRED_STATUS] =	rpc_cred_status,
	[CB_M_CRED_LIST] =	rpc_cred_list,
	[CB_M_CRED_DELETE] =	rpc_cred_delete,
	[CB_M_CRED_LINK] =	rpc_cred_link,
	[CB_M_CRED_UNLINK] =	rpc_cred_unlink,
	[CB_M_SUBSTITUTE] =	rpc_substitute,
	[CB_M_REQUEST] =	rpc_request,
	[CB_M_VAULT_GET] =	rpc_vault_get,
	[CB_M_VAULT_SET] =	rpc_vault_set,
	[CB_M_VAULT_TEST] =	rpc_vault_test,
	[CB_M_VAULT_ADOPT] =	rpc_vault_adopt,
	[CB_M_KEY_STATUS] =	rpc_key_status,
	[CB_M_KEY_ROTATE] =	rpc_key_rotate,
	[CB_M_KEYPAIR_GENERATE] = rpc_keypair_generate,
	[CB_M_KEYPAIR_IMPORT] =	rpc_keypair_import,
	[CB_M_KEYPAIR_GET] =	rpc_keypair_get,
	[CB_M_KEYPAIR_LIST] =	rpc_keypair_list,
	[CB_M_KEYPAIR_DELETE] =	rpc_keypair_delete,
	[CB_M_PEERKEY_SET] =	rpc_peerkey_set,
	[CB_M_PEERKEY_GET] =	rpc_peerkey_get,
	[CB_M_PEERKEY_LIST] =	rpc_peerkey_list,
	[CB_M_PEERKEY_DELETE] =	rpc_peerkey_delete,
	[CB_M_TOKEN_PARTNER] =	rpc_token_partner,
	[CB_M_TOKEN_EMBED] =	rpc_token_embed,
	[CB_M_TOKEN_SSO] =	rpc_token_sso,
	[CB_M_TOKEN_VERIFY] =	rpc_token_verify,
};

/*
 * What each byte becomes in the audit line: letters, digits, '_', '-' and
 * '.' stand for themselves, anything else (which could forge a field) is
 * '?'.  A table, since every call puts at least its subject through it.
 */
static const char rpc_audit_map[256] = {
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '-', '.', '?',
	'0', '1', '2', '3', '4', '5', '6', '7',
	'8', '9', '?', '?', '?', '?', '?', '?',
	'?', 'A', 'B', 'C', 'D', 'E', 'F', 'G',
	'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W',
	'X', 'Y', 'Z', '?', '?', '?', '?', '_',
	'?', 'a', 'b', 'c', 'd', 'e', 'f', 'g',
	'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w',
	'x', 'y', 'z', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
	'?', '?', '?', '?', '?', '?', '?', '?',
};

/* Append s to dst, keeping only characters that cannot forge a field. */
static void
rpc_audit_append(char *dst, size_t dstsz, const char *s, bool list)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 n = strlen(dst), i;

	if (list && n > 0 && n + 1 < dstsz)
		dst[n++] = ',';
	for (i = 0; u[i] != '\0' && n + 1 < dstsz && i < 64; i++)
		dst[n++] = rpc_audit_map[u[i]];
	dst[n] = '\0';
}

void
rpc_audit(struct rpc_call *call, const char *type, const char *user)
{
	if (user != NULL) {
		call->audit_subject[0] = '\0';
		rpc_audit_append(call->audit_subject,
		    sizeof(call->audit_subject), user, false);
	}
	if (type != NULL)
		rpc_audit_append(call->audit_types, sizeof(call->audit_types),
		    type, true);
}

void
rpc_audit_source(struct rpc_call *call, const char *ident,
    const char *source, const char *account)
{
	char		 item[2 * STORE_IDENT_MAX + 16];
	const char	*p, *e;
	size_t		 n = strlen(call->audit_sources), len = 0, il, sl, al;

	if (!ids_type_ident_valid(ident) || (account != NULL &&
	    !ids_ident_valid(account)))
		return;
	il = strlen(ident);
	sl = strlen(source);
	al = account != NULL ? strlen(account) : 0;
	if (il + sl + al + 3 > sizeof(item))
		return;
	/* "ident/source" or "ident/source/account", without stdio. */
	memcpy(item, ident, il);
	len = il;
	item[len++] = '/';
	memcpy(item + len, source, sl);
	len += sl;
	if (account != NULL) {
		item[len++] = '/';
		memcpy(item + len, account, al);
		len += al;
	}
	/* Once per type and source, however many ids use it. */
	for (p = call->audit_sources; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) == len && memcmp(p, item, len) == 0)
			return;
	}
	/* Whole items only: a cut one would name another account. */
	if (n + len + 2 > sizeof(call->audit_sources))
		return;
	if (n > 0)
		call->audit_sources[n++] = ',';
	memcpy(call->audit_sources + n, item, len);
	call->audit_sources[n + len] = '\0';
}

void
rpc_audit_origin(struct rpc_call *call, const char *origin)
{
	char	item[sizeof(call->audit_origins)];
	char	list[sizeof(call->audit_origins) + 2];
	size_t	n = strlen(call->audit_origins), i;

	/* Normal form only holds these; anything else could forge a field. */
	for (i = 0; origin[i] != '\0' && i + 3 < sizeof(item); i++)
		item[i + 1] = strchr("abcdefghijklmnopqrstuvwxyz"
		    "0123456789.-_:/[]", origin[i]) != NULL ? origin[i] : '?';
	item[0] = ',';
	item[i + 1] = ',';
	item[i + 2] = '\0';
	snprintf(list, sizeof(list), ",%s,", call->audit_origins);
	if (strstr(list, item) != NULL)
		return;
	item[i + 1] = '\0';
	if (n + strlen(item) + 1 > sizeof(call->audit_origins))
		return;
	snprintf(call->audit_origins + n, sizeof(call->audit_origins) - n,
	    "%s", n > 0 ? item : item + 1);
}

/* The audit line being made: text, and how much of it is used. */
struct rpc_line {
	char	buf[2048];
	size_t	len;
};

/* Append s (n bytes) to l, as much as fits. */
static void
rpc_line_put(struct rpc_line *l, const char *s, size_t n)
{
	if (n > sizeof(l->buf) - l->len)
		n = sizeof(l->buf) - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
rpc_line_str(struct rpc_line *l, const char *s)
{
	rpc_line_put(l, s, strlen(s));
}

/* Append v in decimal, with a '-' when neg. */
static void
rpc_line_num(struct rpc_line *l, bool neg, uint64_t v)
{
	char	d[24];
	size_t	i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	if (neg)
		d[--i] = '-';
	rpc_line_put(l, d + i, sizeof(d) - i);
}

static void
rpc_line_int(struct rpc_line *l, int64_t v)
{
	rpc_line_num(l, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

/*
 * Log the audit line of a call that reads or changes credentials, and
 * append it to the audit file (audit.c).  The line is put together by
 * hand, without stdio: every audited call makes one.
 */
static void
rpc_audit_log(struct broker *b, const struct rpc_call *call,
    const struct peer *peer, const char *outcome)
{
	struct rpc_line	l;

	if (log_enabled(LOG_LVL_INFO)) {
		l.len = 0;
		rpc_line_str(&l, "audit: method=");
		rpc_line_str(&l, cb_methods[call->method].name);
		rpc_line_str(&l, " uid=");
		rpc_line_num(&l, false, (unsigned)peer->uid);
		rpc_line_str(&l, " pid=");
		rpc_line_int(&l, (int)peer->pid);
		rpc_line_str(&l, " subject=");
		rpc_line_str(&l, call->audit_subject[0] ?
		    call->audit_subject : "-");
		rpc_line_str(&l, " types=");
		rpc_line_str(&l, call->audit_types[0] ?
		    call->audit_types : "-");
		if (call->audit_keys[0]) {
			rpc_line_str(&l, " keys=");
			rpc_line_str(&l, call->audit_keys);
		}
		if (call->audit_sources[0]) {
			rpc_line_str(&l, " sources=");
			rpc_line_str(&l, call->audit_sources);
		}
		if (call->audit_dry_run)
			rpc_line_str(&l, " dry_run=true");
		if (call->audit_origins[0]) {
			rpc_line_str(&l, " origins=");
			rpc_line_str(&l, call->audit_origins);
		}
		if (call->audit_status != 0) {
			rpc_line_str(&l, " status=");
			rpc_line_int(&l, call->audit_status);
		}
		rpc_line_str(&l, " outcome=");
		rpc_line_str(&l, outcome);
		rpc_line_str(&l, " ms=");
		rpc_line_num(&l, false, uv_now(b->loop) - call->start_ms);
		log_text(LOG_LVL_INFO, l.buf, l.len);
	}
	audit_write(b, call, peer, outcome);
}

const char *
rpc_time(int64_t t, char buf[32])
{
	time_t		tt = (time_t)t;
	struct tm	tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%" PRId64, t);
	return buf;
}

void
rpc_pack_kv_time(msgpack_packer *pk, const char *k, int64_t t)
{
	char	buf[32];

	proto_pack_kv_str(pk, k, t != 0 ? rpc_time(t, buf) : NULL);
}

/*
 * Error messages may quote what a client sent (a parameter name, a path):
 * keep them printable ASCII, so that every client can decode the reply's
 * message string.
 */
static void
rpc_clean_message(struct cb_error *e)
{
	unsigned char	*p;

	for (p = (unsigned char *)e->msg; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

/* Queue the reply (or the error) of a call, write the audit line, free. */
static void
rpc_reply(struct rpc_call *call, int rc, const struct cb_error *err)
{
	struct broker		*b = call->broker;
	const struct cb_method_info *mi = &cb_methods[call->method];
	const struct peer	*peer = call->peer;
	const struct rpc_sink	*sink = &call->sink;
	struct cb_error		 e, oom;

	/* A result that could not be packed whole is never sent. */
	if (rc == 0 && secbuf_failed(&call->reply)) {
		rc = cb_error_set(&oom, CB_EINTERNAL,
		    "out of memory packing the reply");
		err = &oom;
	}
	if (rc == 0) {
		rpc_stats_call(call->method, 0,
		    (uv_hrtime() - call->start_ns) / 1000);
		if (mi->flags & CB_MF_AUDIT)
			rpc_audit_log(b, call, peer, "ok");
	} else {
		e = *err;
		rpc_clean_message(&e);
		if (e.code == 0)
			cb_error_set(&e, -rc, "%s failed", mi->name);
		rpc_stats_call(call->method, e.code,
		    (uv_hrtime() - call->start_ns) / 1000);
		if (mi->flags & CB_MF_AUDIT)
			rpc_audit_log(b, call, peer, cb_error_name(e.code));
		else
			log_debug("uid %u pid %d: %s: %s: %s",
			    (unsigned)peer->uid, (int)peer->pid, mi->name,
			    cb_error_name(e.code), e.msg);
		secbuf_reset(&call->reply);
		proto_pack_error_response(&call->pk, call->msgid, &e);
	}
	/*
	 * A reply for a sink that has gone is wiped, never sent; so is an
	 * error that could not be packed, and the sink is closed.
	 */
	if (secbuf_failed(&call->reply) && !sink->ops->is_closed(sink->ctx))
		sink->ops->close(sink->ctx);
	if (sink->ops->is_closed(sink->ctx))
		secbuf_free(&call->reply);
	else
		sink->ops->write(sink->ctx, &call->reply);
	/* The request goes last: the reply may have quoted from it. */
	msgpack_unpacked_destroy(&call->up);
	secbuf_free(&call->req);
	keep_put(&rpc_calls_kept, call, sizeof(*call));
}

void
rpc_finish(struct rpc_call *call, int rc, const struct cb_error *err)
{
	struct rpc_sink	 sink = call->sink;
	bool		 secret = cb_methods[call->method].flags &
			    (CB_MF_SECRET_IN | CB_MF_SECRET_OUT | CB_MF_SECRET_KEY);
	bool		 held = call->held;

	rpc_reply(call, rc, err);
	if (held)
		sink.ops->hold(sink.ctx, false);
	sink.ops->unref(sink.ctx);
	if (secret)
		sink.ops->scrub(sink.ctx);
}

int
rpc_write(struct rpc_call *call, struct dbwrite *w, struct cb_error *err)
{
	int	rc;

	if ((rc = dbwrite_submit(call->broker, w, err)) != 0)
		return rc;
	if (call->sink.ops->hold != NULL) {
		call->sink.ops->hold(call->sink.ctx, true);
		call->held = true;
	}
	return 0;
}

void
rpc_dispatch(struct broker *b, const struct rpc_sink *sink,
    struct secbuf *msg)
{
	struct proto_request	 req;
	struct rpc_call		*call;
	struct cb_error		 err;
	struct secbuf		 out = SECBUF_INIT;
	msgpack_unpacked	 up;
	msgpack_unpack_return	 ret;
	msgpack_packer		 pk;
	const struct peer	*peer = sink->ops->peer(sink->ctx);
	const struct cb_method_info *mi;
	char			 name[80];
	size_t			 off = 0;
	bool			 msgid_ok;
	int			 m, rc;

	cb_error_clear(&err);
	msgpack_unpacked_init(&up);
	ret = msgpack_unpack_next(&up, (const char *)msg->data, msg->len,
	    &off);
	if (ret != MSGPACK_UNPACK_SUCCESS || off != msg->len) {
		log_info("uid %u pid %d: malformed msgpack (%d); closing",
		    (unsigned)peer->uid, (int)peer->pid, (int)ret);
		sink->ops->close(sink->ctx);
		goto done;
	}
	/*
	 * A notification [2, method, params] is legal msgpack-rpc, but no
	 * method of ours means anything without its answer, and a
	 * notification gets none: it is counted and dropped unexecuted.
	 * Stock clients send one unasked (pynvim's nvim_set_client_info),
	 * so this is no reason to close.  Its name is logged, once per
	 * connection, never its params.
	 */
	if ((rc = proto_parse_notification(&up.data, &req, &err)) > 0) {
		rpc_stats_notification();
		if (sink->ops->notified == NULL ||
		    sink->ops->notified(sink->ctx))
			log_debug("uid %u pid %d: notification '%s' ignored "
			    "(the broker executes requests only; further "
			    "notifications on this connection are not logged)",
			    (unsigned)peer->uid, (int)peer->pid,
			    proto_quote(req.method, req.method_len, name,
			    sizeof(name), true));
		goto done;
	}
	if (rc < 0) {
		/* Malformed: nothing to answer, as with a bad request. */
		log_info("uid %u pid %d: %s; closing",
		    (unsigned)peer->uid, (int)peer->pid, err.msg);
		rpc_stats_refused(CB_EBADREQ);
		sink->ops->close(sink->ctx);
		goto done;
	}
	if (proto_parse_request(&up.data, &req, &msgid_ok, &err) != 0) {
		if (!msgid_ok) {
			/* Not a msgpack-rpc request: nothing to answer. */
			log_info("uid %u pid %d: %s; closing",
			    (unsigned)peer->uid, (int)peer->pid, err.msg);
			rpc_stats_refused(CB_EBADREQ);
			sink->ops->close(sink->ctx);
			goto done;
		}
		goto early;
	}
	if ((m = proto_method_lookup(req.method, req.method_len)) < 0 ||
	    rpc_handlers[m] == NULL) {
		cb_error_set(&err, CB_EBADREQ, "unknown method '%s'",
		    proto_quote(req.method, req.method_len, name, sizeof(name),
		    true));
		goto early;
	}
	if ((call = keep_take(&rpc_calls_kept, sizeof(*call))) == NULL) {
		cb_error_set(&err, CB_EINTERNAL, "out of memory");
		goto early;
	}
	call->broker = b;
	call->sink = *sink;
	call->peer = peer;
	call->method = m;
	call->msgid = req.msgid;
	call->start_ms = uv_now(b->loop);
	call->start_ns = uv_hrtime();
	/* The request moves into the call; req.params points into it. */
	call->req = *msg;
	*msg = (struct secbuf)SECBUF_INIT;
	call->up = up;
	msgpack_unpacked_init(&up);
	msgpack_packer_init(&call->pk, &call->reply, secbuf_msgpack_write);
	mi = &cb_methods[m];
	call->perms = access_perms(b->conf->grants, b->conf->ngrants, peer);
	if (mi->perm != CB_PERM_NONE &&
	    (call->perms & CB_PERM_BIT(mi->perm)) == 0) {
		rc = cb_error_set(&err, CB_EFORBIDDEN,
		    "%s needs permission %s, which uid %u does not have",
		    mi->name, proto_perm_name(mi->perm), (unsigned)peer->uid);
		rpc_reply(call, rc, &err);
		goto done;
	}
	/*
	 * Names are strings all the way down: a bin key (what some clients
	 * pack bytes as) would otherwise read as a missing parameter.
	 */
	if ((rc = proto_check_key_types(req.params, &err)) != 0) {
		rpc_reply(call, rc, &err);
		goto done;
	}
	proto_pack_response_head(&call->pk, call->msgid, NULL);
	/*
	 * The sink is held before the handler runs, so that a handler which
	 * waits (RPC_WAIT) and one that fails at once leave it in the same
	 * state.
	 */
	sink->ops->ref(sink->ctx);
	rc = rpc_handlers[m](call, req.params, &err);
	if (rc != RPC_WAIT)
		rpc_finish(call, rc, &err);
	goto done;

early:
	/* Refused before a call existed: bad envelope or unknown method. */
	rpc_stats_refused(err.code);
	log_debug("uid %u pid %d: %s: %s", (unsigned)peer->uid,
	    (int)peer->pid, cb_error_name(err.code), err.msg);
	msgpack_packer_init(&pk, &out, secbuf_msgpack_write);
	rpc_clean_message(&err);
	proto_pack_error_response(&pk, req.msgid, &err);
	if (secbuf_failed(&out)) {
		secbuf_free(&out);
		sink->ops->close(sink->ctx);
	} else
		sink->ops->write(sink->ctx, &out);
done:
	msgpack_unpacked_destroy(&up);
	secbuf_free(msg);
}
