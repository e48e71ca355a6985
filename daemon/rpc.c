/*
 * rpc: where every request enters.  rpc_dispatch() checks the envelope,
 * finds the method in the shared table (proto/methods.def), checks the
 * caller's permission, runs the handler, and queues the reply.  Handlers
 * only ever see a well-formed request from a caller who may make it.
 *
 * Replies are packed into a secbuf from the start, so a reply that carries
 * a secret is wiped after it is written like any other.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"

static const rpc_handler rpc_handlers[CB_M_COUNT] = {
	[CB_M_HELLO] =		rpc_hello,
	[CB_M_HEALTH] =		rpc_health,
	[CB_M_TYPE_CREATE] =	rpc_type_create,
	[CB_M_TYPE_GET] =	rpc_type_get,
	[CB_M_TYPE_LIST] =	rpc_type_list,
	[CB_M_TYPE_UPDATE] =	rpc_type_update,
	[CB_M_TYPE_DELETE] =	rpc_type_delete,
	[CB_M_TYPE_CLEAR] =	rpc_type_clear,
	[CB_M_CRED_SET] =	rpc_cred_set,
	[CB_M_CRED_STATUS] =	rpc_cred_status,
	[CB_M_CRED_DELETE] =	rpc_cred_delete,
	[CB_M_SUBSTITUTE] =	rpc_substitute,
};

/* Append s to dst, keeping only characters that cannot forge a field. */
static void
rpc_audit_append(char *dst, size_t dstsz, const char *s, bool list)
{
	size_t	n = strlen(dst), i;

	if (list && n > 0 && n + 1 < dstsz)
		dst[n++] = ',';
	for (i = 0; s[i] != '\0' && n + 1 < dstsz && i < 64; i++) {
		char ch = s[i];

		dst[n++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' &&
		    ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		    ch == '-' || ch == '.') ? ch : '?';
	}
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

/* Log the audit line of a call that reads or changes credentials. */
static void
rpc_audit_log(struct broker *b, const struct rpc_call *call,
    const struct peer *peer, const char *outcome)
{
	log_info("audit: method=%s uid=%u pid=%d subject=%s types=%s "
	    "outcome=%s ms=%" PRIu64, cb_methods[call->method].name,
	    (unsigned)peer->uid, (int)peer->pid,
	    call->audit_subject[0] ? call->audit_subject : "-",
	    call->audit_types[0] ? call->audit_types : "-", outcome,
	    uv_now(b->loop) - call->start_ms);
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

/* Copy a client-supplied name into buf, printable characters only. */
static const char *
rpc_printable(const char *s, size_t len, char *buf, size_t bufsz)
{
	size_t	i, n = 0;

	for (i = 0; i < len && n + 4 < bufsz; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

void
rpc_dispatch(struct broker *b, struct conn *c, const msgpack_object *obj)
{
	struct proto_request	 req;
	struct rpc_call		 call;
	struct cb_error		 err;
	const struct peer	*peer = conn_peer(c);
	const struct cb_method_info *mi = NULL;
	char			 name[80];
	bool			 msgid_ok;
	int			 m, rc;

	memset(&call, 0, sizeof(call));
	cb_error_clear(&err);
	call.broker = b;
	call.conn = c;
	call.start_ms = uv_now(b->loop);
	msgpack_packer_init(&call.pk, &call.reply, secbuf_msgpack_write);

	if (proto_parse_request(obj, &req, &msgid_ok, &err) != 0) {
		if (!msgid_ok) {
			/* Not a msgpack-rpc request: nothing to answer. */
			log_info("uid %u pid %d: %s; closing",
			    (unsigned)peer->uid, (int)peer->pid, err.msg);
			conn_close(c);
			return;
		}
		call.msgid = req.msgid;
		goto fail;
	}
	call.msgid = req.msgid;
	if ((m = proto_method_lookup(req.method, req.method_len)) < 0 ||
	    rpc_handlers[m] == NULL) {
		cb_error_set(&err, CB_EBADREQ, "unknown method '%s'",
		    rpc_printable(req.method, req.method_len, name,
		    sizeof(name)));
		goto fail;
	}
	call.method = m;
	mi = &cb_methods[m];
	call.perms = access_perms(b->conf->grants, b->conf->ngrants, peer);
	if (mi->perm != CB_PERM_NONE &&
	    (call.perms & CB_PERM_BIT(mi->perm)) == 0) {
		cb_error_set(&err, CB_EFORBIDDEN,
		    "%s needs permission %s, which uid %u does not have",
		    mi->name, proto_perm_name(mi->perm), (unsigned)peer->uid);
		goto fail;
	}

	proto_pack_response_head(&call.pk, call.msgid, NULL);
	if ((rc = rpc_handlers[m](&call, req.params, &err)) != 0) {
		if (err.code == 0)
			cb_error_set(&err, -rc, "%s failed", mi->name);
		secbuf_reset(&call.reply);
		goto fail;
	}
	if (mi->flags & CB_MF_AUDIT)
		rpc_audit_log(b, &call, peer, "ok");
	conn_write(c, &call.reply);
	return;

fail:
	if (mi != NULL && (mi->flags & CB_MF_AUDIT))
		rpc_audit_log(b, &call, peer, cb_error_name(err.code));
	else
		log_debug("uid %u pid %d: %s: %s", (unsigned)peer->uid,
		    (int)peer->pid, cb_error_name(err.code), err.msg);
	proto_pack_error_response(&call.pk, call.msgid, &err);
	conn_write(c, &call.reply);
}
