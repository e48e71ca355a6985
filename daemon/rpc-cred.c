/*
 * rpc-cred: credential values (SPEC section 2): cred.set, cred.status and
 * cred.delete.  Values are write-only: cred.set seals the value here, and
 * nothing in this file ever decrypts one.
 *
 * The plaintext of cred.set is never copied: it is read where it lies in
 * the connection's read buffer, sealed, and the read buffer is wiped by the
 * connection as soon as the request has been dispatched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"

#define RPC_CONTEXT_LEN	(2 * STORE_UUID_LEN + 2)

/* Read params.user and check it is a lower-case RFC 4122 uuid. */
static int
rpc_user(struct rpc_call *call, const msgpack_object *params, char **user,
    struct cb_error *err)
{
	int	rc;

	if ((rc = proto_get_str(params, "user", true, user, err)) != 0)
		return rc;
	if (!store_uuid_valid(*user)) {
		free(*user);
		*user = NULL;
		return cb_error_set(err, CB_EBADREQ, "user must be a UUID in "
		    "lower-case RFC 4122 text form");
	}
	rpc_audit(call, NULL, *user);
	return 0;
}

/* Look up params.type and params.user; refuse vault-stored types. */
static int
rpc_cred_target(struct rpc_call *call, const msgpack_object *params,
    struct store_type *t, char **user, struct cb_error *err)
{
	char	*ref = NULL;
	int	 rc;

	if ((rc = proto_get_str(params, "type", true, &ref, err)) != 0 ||
	    (rc = rpc_user(call, params, user, err)) != 0 ||
	    (rc = store_type_get(call->broker->store, ref, t, err)) != 0) {
		if (ref != NULL)
			rpc_audit(call, ref, NULL);
		goto done;
	}
	rpc_audit(call, t->ident, NULL);
	if (t->storage == STORE_VAULT)
		rc = cb_error_set(err, CB_ENOTCONFIGURED, "credential type "
		    "'%s' is stored in Vault, and Vault is not configured",
		    t->ident);
done:
	free(ref);
	return rc;
}

/* cred.set {type, user, value} -> {updated_at} */
int
rpc_cred_set(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "value", NULL };
	const msgpack_object	*v;
	struct store_type	 t;
	char			*user = NULL, *sealed = NULL;
	char			 context[RPC_CONTEXT_LEN];
	const uint8_t		*pt;
	size_t			 ptlen;
	int64_t			 now;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0)
		goto done;
	v = proto_map_get(params, "value");
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "missing required parameter 'value'");
		goto done;
	}
	if (v->type == MSGPACK_OBJECT_STR) {
		pt = (const uint8_t *)v->via.str.ptr;
		ptlen = v->via.str.size;
	} else if (v->type == MSGPACK_OBJECT_BIN) {
		pt = (const uint8_t *)v->via.bin.ptr;
		ptlen = v->via.bin.size;
	} else {
		rc = cb_error_set(err, CB_EBADREQ,
		    "parameter 'value' must be a string or binary");
		goto done;
	}
	if (ptlen == 0) {
		rc = cb_error_set(err, CB_EBADREQ, "value must not be empty");
		goto done;
	}
	if ((rc = rpc_cred_target(call, params, &t, &user, err)) != 0)
		goto done;
	snprintf(context, sizeof(context), "%s/%s", t.uuid, user);
	if ((rc = seal_seal(call->broker->key, context, pt, ptlen, &sealed,
	    err)) != 0)
		goto done;
	now = (int64_t)time(NULL);
	if ((rc = store_value_set(call->broker->store, t.uuid, user, sealed,
	    now, err)) != 0)
		goto done;
	msgpack_pack_map(&call->pk, 1);
	rpc_pack_kv_time(&call->pk, "updated_at", now);
done:
	free(sealed);
	free(user);
	store_type_free(&t);
	return rc;
}

/* cred.status {user} -> [{type, ident, name, storage, filled, updated_at}] */
int
rpc_cred_status(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "user", NULL };
	struct store_type	*types = NULL;
	struct store_status	*vals = NULL;
	size_t			 ntypes = 0, nvals = 0, i, j;
	char			*user = NULL;
	int64_t			 updated;
	int			 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_user(call, params, &user, err)) != 0 ||
	    (rc = store_type_list(call->broker->store, &types, &ntypes,
	    err)) != 0 ||
	    (rc = store_value_list_user(call->broker->store, user, &vals,
	    &nvals, err)) != 0)
		goto done;
	msgpack_pack_array(&call->pk, ntypes);
	for (i = 0; i < ntypes; i++) {
		updated = 0;
		if (types[i].storage == STORE_DB)
			for (j = 0; j < nvals; j++)
				if (strcmp(vals[j].type_uuid,
				    types[i].uuid) == 0)
					updated = vals[j].updated_at;
		msgpack_pack_map(&call->pk, 6);
		proto_pack_kv_str(&call->pk, "type", types[i].uuid);
		proto_pack_kv_str(&call->pk, "ident", types[i].ident);
		proto_pack_kv_str(&call->pk, "name", types[i].name);
		proto_pack_kv_str(&call->pk, "storage",
		    types[i].storage == STORE_VAULT ? "vault" : "db");
		proto_pack_kv_bool(&call->pk, "filled", updated != 0);
		rpc_pack_kv_time(&call->pk, "updated_at", updated);
	}
done:
	free(vals);
	store_type_list_free(types, ntypes);
	free(user);
	return rc;
}

/* cred.delete {type, user} -> {} */
int
rpc_cred_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", NULL };
	struct store_type	 t;
	char			*user = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, err)) != 0)
		goto done;
	if ((rc = store_value_delete(call->broker->store, t.uuid, user,
	    err)) != 0) {
		if (rc == -CB_ENOTFOUND)
			rc = cb_error_set(err, CB_ENOTFOUND, "user %s has no "
			    "value of credential type '%s'", user, t.ident);
		goto done;
	}
	msgpack_pack_map(&call->pk, 0);
done:
	free(user);
	store_type_free(&t);
	return rc;
}
