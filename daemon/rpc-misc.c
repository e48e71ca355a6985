/*
 * rpc-misc: hello and health, the two methods that touch no credential.
 */
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "cb_version.h"
#include "credbrokerd.h"
#include "log.h"
#include "pg.h"
#include "proto.h"
#include "vault.h"

/* hello {} -> {protocol, server, permissions, uid} */
int
rpc_hello(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };
	msgpack_packer	*pk = &call->pk;
	int		 i, n = 0;

	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	for (i = 0; i < CB_PERM_COUNT; i++)
		if (call->perms & CB_PERM_BIT(i))
			n++;
	msgpack_pack_map(pk, 4);
	proto_pack_kv_int(pk, "protocol", CB_PROTOCOL_VERSION);
	proto_pack_kv_str(pk, "server", "credbroker " CB_VERSION);
	proto_pack_cstr(pk, "permissions");
	msgpack_pack_array(pk, (size_t)n);
	for (i = 0; i < CB_PERM_COUNT; i++)
		if (call->perms & CB_PERM_BIT(i))
			proto_pack_cstr(pk, proto_perm_name(i));
	proto_pack_kv_int(pk, "uid", (int64_t)call->peer->uid);
	return 0;
}

/* health {} -> {status, version, uptime, connections, store, vault, audit} */
int
rpc_health(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };
	msgpack_packer	*pk = &call->pk;
	struct broker	*b = call->broker;
	struct vault_status vs;
	struct pg_status ps;
	char		 head[AUDIT_HASH_HEX + 1];
	uint64_t	 seq, failures;

	vault_get_status(b->vault, &vs);
	audit_head(b->audit, &seq, head, &failures);
	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	msgpack_pack_map(pk, 7);
	proto_pack_kv_str(pk, "status", "ok");
	proto_pack_kv_str(pk, "version", CB_VERSION);
	proto_pack_kv_int(pk, "uptime",
	    (int64_t)((uv_now(b->loop) - b->started_ms) / 1000));
	proto_pack_kv_int(pk, "connections", b->nconns);
	proto_pack_cstr(pk, "store");
	if (b->pgs != NULL) {
		/*
		 * The database as the loop's connection sees it, and the
		 * other brokers of the fleet seen within the last hour.
		 */
		pgstore_status(b, &ps);
		msgpack_pack_map(pk, 4);
		proto_pack_kv_str(pk, "backend", "postgresql");
		proto_pack_kv_str(pk, "status", ps.connected ? "ok" :
		    "unavailable");
		proto_pack_cstr(pk, "database");
		fleet_pack_database(pk, b, &ps);
		proto_pack_cstr(pk, "brokers");
		fleet_pack_brokers(pk, b, false, false);
	} else {
		msgpack_pack_map(pk, 2);
		proto_pack_kv_str(pk, "backend", "sqlite");
		proto_pack_kv_str(pk, "status", "ok");
	}
	proto_pack_cstr(pk, "vault");
	msgpack_pack_map(pk, 7);
	proto_pack_kv_bool(pk, "configured", vs.configured);
	proto_pack_kv_bool(pk, "enabled", vs.enabled);
	proto_pack_kv_bool(pk, "authenticated", vs.authenticated);
	proto_pack_kv_int(pk, "token_ttl", vs.token_ttl);
	proto_pack_kv_str(pk, "last_error",
	    vs.last_error[0] ? vs.last_error : NULL);
	proto_pack_kv_int(pk, "logins", (int64_t)vs.logins);
	proto_pack_kv_int(pk, "renewals", (int64_t)vs.renewals);
	/*
	 * The head of the audit chain, for monitoring to record, and the
	 * audit records that did not make it whole: lines the audit file
	 * refused (failures), and log lines, the journal's copy of the
	 * audit lines among them, that stderr did not take.
	 */
	proto_pack_cstr(pk, "audit");
	msgpack_pack_map(pk, 5);
	proto_pack_kv_bool(pk, "enabled", b->audit != NULL);
	proto_pack_kv_int(pk, "seq", (int64_t)seq);
	proto_pack_kv_str(pk, "hash", b->audit != NULL ? head : NULL);
	proto_pack_kv_int(pk, "failures", (int64_t)failures);
	proto_pack_kv_int(pk, "log_lines_lost", (int64_t)log_lines_lost());
	return 0;
}
